//! AFL target `binance_csv`: feeds each input to [`statarb_fuzz::binance_csv`].

fn main() {
    afl::fuzz!(|data: &[u8]| statarb_fuzz::binance_csv(data));
}
