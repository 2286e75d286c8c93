//! AFL target `evfile`: feeds each input to [`statarb_fuzz::evfile`].

fn main() {
    afl::fuzz!(|data: &[u8]| statarb_fuzz::evfile(data));
}
