//! Fee accounting: what a fill cost, from the commission the venue reports.
//!
//! Binance charges a commission per fill in one asset (`N`, `commissionAsset`) and
//! amount (`n`, `commission`). An [`ExecReport`](crate::event::ExecReport) carries the
//! fee in the quote asset (`fee`) and the part paid in the base asset (`fee_base`,
//! which changes the position: a buyer paying in the asset bought receives less of
//! it). So:
//!
//! - a commission in the quote asset is the fee as it is;
//! - one in the base asset is worth `n * price` in quote, and is also `fee_base`;
//! - one in a third asset (BNB) is estimated from the configured bps
//!   ([`Fees`]) and counted in `fee_estimates`, since converting it would need that
//!   asset's price.
//!
//! Fills the gateway infers from an order snapshot carry no commission at all: they
//! are estimated at the maker rate, with the base part a buyer would pay (Binance
//! takes a buyer's commission in the asset bought unless it is paid in BNB).
//!
//! Which asset is the base and which the quote comes from the symbol
//! ([`split_symbol`]), by the known quote assets.

use crate::fees::Fees;
use crate::types::{InstId, Instrument, Px, Qty};

use super::error::GatewayError;

/// Quote assets recognised when splitting a symbol into base and quote.
const QUOTES: [&str; 12] = ["USDT", "FDUSD", "USDC", "TUSD", "BUSD", "DAI", "EUR", "TRY", "BTC", "ETH", "BNB", "USD"];

/// `BTCUSDT` -> (`BTC`, `USDT`) by the known quote assets; `None` if none matches.
pub fn split_symbol(symbol: &str) -> Option<(String, String)> {
    QUOTES.iter().find_map(|q| {
        let base = symbol.strip_suffix(q)?;
        (!base.is_empty()).then(|| (base.to_string(), q.to_string()))
    })
}

/// The fee of one fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Fee {
    /// In the quote asset: what the fill cost (`ExecReport::fee`).
    pub(super) quote: f64,
    /// The part paid in the base asset, in base units (`ExecReport::fee_base`).
    pub(super) base: f64,
    /// Estimated from the configured rate, the commission being in a third asset.
    pub(super) estimated: bool,
}

/// The base and quote asset of every instrument, and the configured fee rates for
/// what the venue does not report in either.
#[derive(Debug, Clone)]
pub(super) struct Commission {
    /// (base, quote) by [`InstId`].
    assets: Vec<(String, String)>,
    fees: Fees,
}

impl Commission {
    /// The assets of `instruments` (their index is their [`InstId`]); an error names
    /// the first symbol with no known quote asset.
    pub(super) fn new(instruments: &[Instrument], fees: Fees) -> Result<Self, GatewayError> {
        let mut assets = Vec::with_capacity(instruments.len());
        for ins in instruments {
            assets.push(split_symbol(&ins.symbol).ok_or_else(|| GatewayError::Symbol(ins.symbol.clone()))?);
        }
        Ok(Commission { assets, fees })
    }

    /// Fee of a fill of `qty` at `px` of an order we track, `ins` being instrument
    /// `inst`: quote commissions as they are, base ones at the fill price (and as the
    /// base part), others (BNB) estimated from the configured bps.
    #[inline]
    pub(super) fn of_fill(
        &self,
        inst: InstId,
        ins: &Instrument,
        px: Px,
        qty: Qty,
        maker: bool,
        commission: Option<(f64, &str)>,
    ) -> Fee {
        let (base, quote) = &self.assets[inst as usize];
        let (quote_fee, estimated) = match commission {
            Some((n, a)) if a == quote => (n, false),
            Some((n, a)) if a == base => (n * ins.px_f64(px), false),
            Some(_) => (self.fees.of(ins, px, qty, maker), true),
            None => (0.0, false),
        };
        let base_fee = match commission {
            Some((n, a)) if a == base => n,
            _ => 0.0,
        };
        Fee { quote: quote_fee, base: base_fee, estimated }
    }

    /// Fee of a fill at `px` of an order we do not track (an earlier session's):
    /// only what the venue reports in the base or quote asset, nothing estimated.
    #[inline]
    pub(super) fn of_untracked(&self, inst: InstId, ins: &Instrument, px: Px, commission: Option<(f64, &str)>) -> Fee {
        let (base, quote) = &self.assets[inst as usize];
        let (quote, base) = match commission {
            Some((n, a)) if a == quote => (n, 0.0),
            Some((n, a)) if a == base => (n * ins.px_f64(px), n),
            _ => (0.0, 0.0),
        };
        Fee { quote, base, estimated: false }
    }

    /// Estimated fee of an inferred fill of `qty` at the order's limit `px`: the maker
    /// rate in quote, and the base part a buyer pays (Binance takes a buyer's
    /// commission in the asset bought, unless paid in BNB). Not `estimated`: the
    /// inferred fill itself is what is counted.
    #[inline]
    pub(super) fn of_inferred(&self, ins: &Instrument, px: Px, qty: Qty) -> Fee {
        let units = ins.qty_f64(qty);
        Fee {
            quote: ins.px_f64(px) * units * self.fees.maker_bps * 1e-4,
            base: units * self.fees.maker_bps * 1e-4,
            estimated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_split() {
        assert_eq!(split_symbol("BTCUSDT"), Some(("BTC".into(), "USDT".into())));
        assert_eq!(split_symbol("ETHBTC"), Some(("ETH".into(), "BTC".into())));
        assert_eq!(split_symbol("USDT"), None);
    }
}
