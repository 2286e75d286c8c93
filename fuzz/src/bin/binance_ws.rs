//! AFL target `binance_ws`: feeds each input to [`statarb_fuzz::binance_ws`].

fn main() {
    afl::fuzz!(|data: &[u8]| statarb_fuzz::binance_ws(data));
}
