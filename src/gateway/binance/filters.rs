//! The start-up check of the instruments against the venue's trading rules.
//!
//! # Why
//!
//! Prices and sizes are integer ticks and lots of the configured `tick` and `lot`
//! ([`Instrument`]); an order printed from a tick finer than the venue's `tickSize` is
//! rejected (`-1013`, `PRICE_FILTER`), one from a coarser tick quotes prices the
//! strategy did not mean, and the same holds for the lot and `stepSize` (`LOT_SIZE`).
//! A config that disagrees with the venue must stop the gateway at start, with an error
//! that says what to fix, not turn into a stream of rejects in the session.
//!
//! # How
//!
//! For each instrument, `GET /api/v3/exchangeInfo?symbol=SYMBOL` (unsigned, weight
//! [`W_EXCHANGE_INFO`], the answer read up to [`MAX_EXCHANGE_INFO_BYTES`]), one
//! request per symbol so that a symbol the venue does not list (`-1121`, which Binance
//! answers for a `symbols=[..]` list without naming the culprit) is named. In the
//! symbol's `filters`, `PRICE_FILTER.tickSize` must equal the instrument's `tick` and
//! `LOT_SIZE.stepSize` its `lot`, as exact decimals (`"0.01000000"` equals `0.01`).
//! Errors are [`FilterError`]s naming the symbol and, for a mismatch, the config key
//! (`y.tick`: instrument 0 is the `y` leg, 1 the `x` leg, the order in which the
//! configuration lists its instruments) with both values.

use serde_json::Value;
use thiserror::Error;

use super::error::GatewayError;
use super::rest::Rest;
use super::BinanceStats;
use crate::types::{Decimal, Instrument};

/// Request weight of `GET /api/v3/exchangeInfo` (Binance Spot).
pub const W_EXCHANGE_INFO: u32 = 20;
/// Largest `exchangeInfo` answer read, bytes (one symbol's is about 5 KB).
pub const MAX_EXCHANGE_INFO_BYTES: u64 = 4 << 20;
/// The endpoint.
const PATH: &str = "/api/v3/exchangeInfo";
/// Binance: "Invalid symbol."
const CODE_INVALID_SYMBOL: i32 = -1121;

/// Why the instruments do not pass the venue's filters.
#[derive(Debug, Error)]
pub enum FilterError {
    /// The configured increment is not the venue's.
    #[error("{symbol}: config {key} = {config}, but the venue's {filter} {field} is {venue}")]
    Mismatch {
        /// The instrument's symbol.
        symbol: String,
        /// The config key (`y.tick`, `x.lot`, ...).
        key: String,
        /// The configured value.
        config: Decimal,
        /// `PRICE_FILTER` or `LOT_SIZE`.
        filter: &'static str,
        /// `tickSize` or `stepSize`.
        field: &'static str,
        /// The venue's value.
        venue: Decimal,
    },
    /// The venue does not list the symbol (`-1121`, or an answer without it).
    #[error("{symbol}: not listed by the venue (GET /api/v3/exchangeInfo)")]
    NotListed {
        /// The instrument's symbol.
        symbol: String,
    },
    /// The symbol's entry has no such filter, or the filter no such field.
    #[error("{symbol}: exchangeInfo has no {filter} with a {field}")]
    MissingFilter {
        /// The instrument's symbol.
        symbol: String,
        /// The filter type.
        filter: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A filter value that is not an exact decimal.
    #[error("{symbol}: exchangeInfo {filter} {field} {text:?} is not a decimal")]
    BadValue {
        /// The instrument's symbol.
        symbol: String,
        /// The filter type.
        filter: &'static str,
        /// The field.
        field: &'static str,
        /// The value as sent.
        text: String,
    },
    /// The request failed (transport, rate limit, another venue error).
    #[error("{symbol}: GET /api/v3/exchangeInfo failed")]
    Request {
        /// The instrument's symbol.
        symbol: String,
        /// The cause.
        #[source]
        source: Box<GatewayError>,
    },
}

/// The config key of instrument `index`'s `field` (`tick` or `lot`).
fn config_key(index: usize, field: &str) -> String {
    match index {
        0 => format!("y.{field}"),
        1 => format!("x.{field}"),
        i => format!("instrument {i} {field}"),
    }
}

/// Asks the venue for each instrument's filters and checks them (see the module docs).
pub(super) fn check(rest: &mut Rest, stats: &mut BinanceStats, instruments: &[Instrument]) -> Result<(), FilterError> {
    for (i, inst) in instruments.iter().enumerate() {
        let symbol = || inst.symbol.clone();
        let query = format!("symbol={}", inst.symbol);
        let info = match rest.get_public(stats, PATH, &query, W_EXCHANGE_INFO, MAX_EXCHANGE_INFO_BYTES) {
            Ok(v) => v,
            Err(GatewayError::Api { code: CODE_INVALID_SYMBOL, .. }) => {
                return Err(FilterError::NotListed { symbol: symbol() })
            }
            Err(e) => return Err(FilterError::Request { symbol: symbol(), source: Box::new(e) }),
        };
        check_symbol(i, inst, &info)?;
    }
    Ok(())
}

/// Checks instrument `index` against an `exchangeInfo` answer.
pub fn check_symbol(index: usize, inst: &Instrument, info: &Value) -> Result<(), FilterError> {
    let entry = info
        .get("symbols")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().find(|e| e.get("symbol").and_then(Value::as_str) == Some(inst.symbol.as_str())))
        .ok_or_else(|| FilterError::NotListed { symbol: inst.symbol.clone() })?;
    let filters = entry.get("filters").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (filter, field, config, name) in
        [("PRICE_FILTER", "tickSize", inst.tick, "tick"), ("LOT_SIZE", "stepSize", inst.lot, "lot")]
    {
        let missing = || FilterError::MissingFilter { symbol: inst.symbol.clone(), filter, field };
        let f =
            filters.iter().find(|f| f.get("filterType").and_then(Value::as_str) == Some(filter)).ok_or_else(missing)?;
        let text = f.get(field).and_then(Value::as_str).ok_or_else(missing)?;
        let venue: Decimal = text.parse().map_err(|_| FilterError::BadValue {
            symbol: inst.symbol.clone(),
            filter,
            field,
            text: text.chars().take(64).collect(),
        })?;
        // Exactly equal as numbers: the venue's value is one configured increment.
        if venue.to_increments(config) != Ok(1) {
            return Err(FilterError::Mismatch {
                symbol: inst.symbol.clone(),
                key: config_key(index, name),
                config,
                filter,
                field,
                venue,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn info(tick: &str, step: &str) -> Value {
        json!({ "symbols": [{ "symbol": "BTCUSDT", "filters": [
            { "filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick },
            { "filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step }
        ]}]})
    }

    #[test]
    fn equal_decimals_pass_and_mismatches_name_key_and_values() {
        let btc = Instrument::new("BTCUSDT", d("0.01"), d("0.00001"));
        assert!(check_symbol(1, &btc, &info("0.01000000", "0.00001000")).is_ok());
        let e = check_symbol(1, &btc, &info("0.10000000", "0.00001000")).unwrap_err();
        assert_eq!(e.to_string(), "BTCUSDT: config x.tick = 0.01, but the venue's PRICE_FILTER tickSize is 0.10000000");
        let e = check_symbol(0, &btc, &info("0.01", "0.0001")).unwrap_err();
        assert!(matches!(e, FilterError::Mismatch { ref key, field: "stepSize", .. } if key == "y.lot"), "{e}");
        // A finer venue tick is a mismatch too (a multiple is not enough).
        assert!(check_symbol(0, &btc, &info("0.001", "0.00001")).is_err());
        assert!(check_symbol(0, &btc, &info("0", "0.00001")).is_err());
    }

    #[test]
    fn missing_symbols_filters_and_bad_values_are_errors() {
        let eth = Instrument::new("ETHUSDT", d("0.01"), d("0.0001"));
        assert!(matches!(check_symbol(0, &eth, &info("0.01", "0.0001")), Err(FilterError::NotListed { .. })));
        let btc = Instrument::new("BTCUSDT", d("0.01"), d("0.00001"));
        let no_lot = json!({ "symbols": [{ "symbol": "BTCUSDT", "filters": [
            { "filterType": "PRICE_FILTER", "tickSize": "0.01" }] }] });
        assert!(matches!(check_symbol(0, &btc, &no_lot), Err(FilterError::MissingFilter { filter: "LOT_SIZE", .. })));
        assert!(matches!(check_symbol(0, &btc, &info("x", "0.00001")), Err(FilterError::BadValue { .. })));
        assert!(matches!(check_symbol(0, &btc, &json!({})), Err(FilterError::NotListed { .. })));
        assert!(matches!(
            check_symbol(0, &btc, &json!({"symbols": [{"symbol": "BTCUSDT"}]})),
            Err(FilterError::MissingFilter { .. })
        ));
    }
}
