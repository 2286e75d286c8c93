//! AFL target `tardis`: feeds each input to [`statarb_fuzz::tardis`].

fn main() {
    afl::fuzz!(|data: &[u8]| statarb_fuzz::tardis(data));
}
