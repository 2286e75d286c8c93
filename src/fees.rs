//! Venue fees: what a fill costs, in basis points of its notional.
//!
//! A leaf module, from config `[fees]`: the simulated venues (the backtester's
//! matching engine, the `sim` gateway) charge these rates, and the Binance gateway
//! estimates with them the fee of a fill it inferred or whose commission is in a third
//! asset. A negative maker rate is a rebate.

use serde::Deserialize;
use thiserror::Error;

use crate::types::{Instrument, Px, Qty};

/// The most negative rate accepted, bps: a rebate of more than 1 % is no venue's.
pub const MIN_FEE_BPS: f64 = -100.0;
/// The largest rate accepted, bps: a fee of more than 10 % is no venue's.
pub const MAX_FEE_BPS: f64 = 1_000.0;

/// Fees of the simulated venue, in basis points of notional.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fees {
    /// Fee for adding liquidity (negative for a rebate).
    pub maker_bps: f64,
    /// Fee for taking liquidity.
    pub taker_bps: f64,
}

/// A fee rate outside [`MIN_FEE_BPS`] ..= [`MAX_FEE_BPS`], or not finite: a typo, not a
/// venue's schedule. The message names the key.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("fees.{key}: {msg}")]
pub struct FeesError {
    /// The offending field, `maker_bps` or `taker_bps`.
    pub key: &'static str,
    /// What is wrong.
    pub msg: String,
}

impl Fees {
    /// Fee of a fill in the quote asset: `px * qty * bps * 1e-4`, with the maker or
    /// taker rate, price and size in units of `inst`.
    #[inline]
    pub fn of(&self, inst: &Instrument, px: Px, qty: Qty, maker: bool) -> f64 {
        let bps = if maker { self.maker_bps } else { self.taker_bps };
        inst.px_f64(px) * inst.qty_f64(qty) * bps * 1e-4
    }

    /// Checks that both rates are finite and in [`MIN_FEE_BPS`] ..= [`MAX_FEE_BPS`].
    pub fn validate(&self) -> Result<(), FeesError> {
        for (key, bps) in [("maker_bps", self.maker_bps), ("taker_bps", self.taker_bps)] {
            if !(bps.is_finite() && (MIN_FEE_BPS..=MAX_FEE_BPS).contains(&bps)) {
                return Err(FeesError {
                    key,
                    msg: format!("must be in [{MIN_FEE_BPS}, {MAX_FEE_BPS}] bps, got {bps}"),
                });
            }
        }
        Ok(())
    }
}

impl Default for Fees {
    fn default() -> Self {
        // Binance Spot regular tier.
        Fees { maker_bps: 10.0, taker_bps: 10.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_out_of_range_are_refused_by_name() {
        assert!(Fees::default().validate().is_ok());
        assert!(Fees { maker_bps: -100.0, taker_bps: 1_000.0 }.validate().is_ok());
        let e = Fees { maker_bps: -100.5, taker_bps: 1.0 }.validate().unwrap_err();
        assert_eq!(e.key, "maker_bps");
        let e = Fees { maker_bps: 1.0, taker_bps: f64::NAN }.validate().unwrap_err();
        assert_eq!(e.key, "taker_bps");
        assert!(e.to_string().starts_with("fees.taker_bps: must be in [-100, 1000] bps"), "{e}");
    }
}
