//! AFL target `alpaca`: feeds each input to [`statarb_fuzz::alpaca`].

fn main() {
    afl::fuzz!(|data: &[u8]| statarb_fuzz::alpaca(data));
}
