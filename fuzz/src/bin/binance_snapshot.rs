//! AFL target `binance_snapshot`: feeds each input to [`statarb_fuzz::binance_snapshot`].

fn main() {
    afl::fuzz!(|data: &[u8]| statarb_fuzz::binance_snapshot(data));
}
