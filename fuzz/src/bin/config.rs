//! AFL target `config`: feeds each input to [`statarb_fuzz::config`].

fn main() {
    afl::fuzz!(|data: &[u8]| statarb_fuzz::config(data));
}
