//! AFL target `recording`: feeds each input to [`statarb_fuzz::recording`].

fn main() {
    afl::fuzz!(|data: &[u8]| statarb_fuzz::recording(data));
}
