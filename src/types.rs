//! Units shared by every layer: time, prices, sizes, sides and instruments.
//!
//! Prices and sizes are integers in ticks and lots of their instrument, so that a
//! book level, an order and a fill compare exactly. The tick and lot sizes are kept as
//! exact decimals ([`Decimal`]) because exchanges quote them as decimal strings
//! (`0.01`, `0.00001`) and an order must print its price as an exact decimal string.
//! Model maths (Kalman, Avellaneda-Stoikov) is `f64`; it meets the integer grid once,
//! in [`Instrument::price_to_ticks`], with an explicit rounding direction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use thiserror::Error;

/// Nanoseconds since the Unix epoch. Exchange time and local time are both `Ts` but are
/// never mixed: every struct names which one it holds.
pub type Ts = i64;
/// A price in integer ticks of its instrument.
pub type Px = i64;
/// A size in integer lots of its instrument.
pub type Qty = i64;
/// Index of an instrument in the session's fixed instrument table.
pub type InstId = u16;

/// Nanoseconds per second.
pub const NS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds per millisecond.
pub const NS_PER_MS: i64 = 1_000_000;

/// `ms` milliseconds in nanoseconds, or `None` if that does not fit a [`Ts`] (beyond
/// about 292 years). Every configured duration goes through this or [`secs_to_ns`]:
/// `ms as i64 * NS_PER_MS` wraps silently for `ms >= 2^63 / 10^6` (a `stale_ms` of
/// 18 446 744 073 710 became 0.45 ms).
#[inline]
pub const fn ms_to_ns(ms: u64) -> Option<Ts> {
    if ms > i64::MAX as u64 {
        return None;
    }
    (ms as i64).checked_mul(NS_PER_MS)
}

/// `secs` seconds in nanoseconds, or `None` if that does not fit a [`Ts`].
#[inline]
pub const fn secs_to_ns(secs: u64) -> Option<Ts> {
    if secs > i64::MAX as u64 {
        return None;
    }
    (secs as i64).checked_mul(NS_PER_SEC)
}

/// Order or aggressor side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Side {
    /// Bid / buy.
    Buy = 0,
    /// Ask / sell.
    Sell = 1,
}

impl Side {
    /// +1 for a buy, -1 for a sell: the sign of the position change of a fill.
    #[inline]
    pub const fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    /// The other side.
    #[inline]
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// `0` for buy, `1` for sell, for indexing per-side arrays.
    #[inline]
    pub const fn idx(self) -> usize {
        self as usize
    }
}

/// Rounding direction when a model price meets the tick grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Towards minus infinity (bids: never pay more than the model price).
    Down,
    /// Towards plus infinity (asks: never sell for less than the model price).
    Up,
    /// To the nearest tick, ties away from zero.
    Nearest,
}

/// Errors from parsing decimals and converting them to the tick or lot grid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecimalError {
    /// Not a decimal number (empty, sign in the wrong place, stray character).
    #[error("not a decimal number")]
    Syntax,
    /// More significant digits than an `i64` mantissa holds.
    #[error("decimal out of range")]
    Overflow,
    /// The value is not a whole multiple of the tick or lot size.
    #[error("value is not a multiple of the increment")]
    OffGrid,
}

/// Largest number of fractional digits a [`Decimal`] keeps (Binance uses 8).
pub const MAX_SCALE: u32 = 18;

/// `10^i` for `i` in `0..=MAX_SCALE`: the scales of [`Decimal`] and of the feed's
/// power-of-ten grids.
pub(crate) const POW10: [i64; 19] = {
    let mut p = [1i64; 19];
    let mut i = 1;
    while i < 19 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// An exact decimal `mantissa * 10^-scale`, used for tick and lot sizes and for printing
/// prices and sizes exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    mantissa: i64,
    scale: u32,
}

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal { mantissa: 0, scale: 0 };

    /// `mantissa * 10^-scale`. Panics in const context if `scale > MAX_SCALE`.
    pub const fn new(mantissa: i64, scale: u32) -> Self {
        assert!(scale <= MAX_SCALE);
        Decimal { mantissa, scale }
    }

    /// The integer mantissa.
    pub const fn mantissa(self) -> i64 {
        self.mantissa
    }

    /// The number of fractional digits.
    pub const fn scale(self) -> u32 {
        self.scale
    }

    /// Nearest `f64` (exact for the mantissa, one rounding for the division).
    #[inline]
    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 / POW10[self.scale as usize] as f64
    }

    /// Parses an ASCII decimal such as `-61234.56000000`, `0.00001` or `7`. Exponents
    /// are not accepted; trailing zeros are kept in the scale. Allocation-free.
    pub fn parse_bytes(s: &[u8]) -> Result<Self, DecimalError> {
        let (neg, digits) = match s.first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if digits.is_empty() {
            return Err(DecimalError::Syntax);
        }
        let mut mantissa: i64 = 0;
        let mut scale: u32 = 0;
        let mut seen_dot = false;
        let mut seen_digit = false;
        for &c in digits {
            match c {
                b'0'..=b'9' => {
                    seen_digit = true;
                    mantissa = mantissa
                        .checked_mul(10)
                        .and_then(|m| m.checked_add((c - b'0') as i64))
                        .ok_or(DecimalError::Overflow)?;
                    if seen_dot {
                        scale += 1;
                        if scale > MAX_SCALE {
                            return Err(DecimalError::Overflow);
                        }
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => return Err(DecimalError::Syntax),
            }
        }
        if !seen_digit {
            return Err(DecimalError::Syntax);
        }
        Ok(Decimal { mantissa: if neg { -mantissa } else { mantissa }, scale })
    }

    /// The value as an exact multiple of `increment`, or [`DecimalError::OffGrid`].
    /// `61234.56` with increment `0.01` is `6123456`.
    pub fn to_increments(self, increment: Decimal) -> Result<i64, DecimalError> {
        if increment.mantissa <= 0 {
            return Err(DecimalError::OffGrid);
        }
        // Bring both to the larger scale; i128 so that no realistic value overflows.
        let scale = self.scale.max(increment.scale);
        let a = self.mantissa as i128 * POW10[(scale - self.scale) as usize] as i128;
        let b = increment.mantissa as i128 * POW10[(scale - increment.scale) as usize] as i128;
        if a % b != 0 {
            return Err(DecimalError::OffGrid);
        }
        i64::try_from(a / b).map_err(|_| DecimalError::Overflow)
    }

    /// `self + other` exactly, at the larger scale; `None` if the mantissa overflows.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let a = self.mantissa.checked_mul(POW10[(scale - self.scale) as usize])?;
        let b = other.mantissa.checked_mul(POW10[(scale - other.scale) as usize])?;
        Some(Decimal { mantissa: a.checked_add(b)?, scale })
    }

    /// `n * increment`, exactly: the decimal value of `n` ticks or lots.
    pub fn from_increments(n: i64, increment: Decimal) -> Decimal {
        Decimal { mantissa: n * increment.mantissa, scale: increment.scale }
    }
}

impl fmt::Display for Decimal {
    /// Prints every fractional digit of the scale, so `from_increments(1, 0.010)` prints
    /// `0.010`; exchanges accept trailing zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.mantissa < 0;
        let abs = self.mantissa.unsigned_abs();
        let p = POW10[self.scale as usize] as u64;
        let (int, frac) = (abs / p, abs % p);
        if neg {
            f.write_str("-")?;
        }
        if self.scale == 0 {
            write!(f, "{int}")
        } else {
            write!(f, "{int}.{frac:0width$}", width = self.scale as usize)
        }
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::parse_bytes(s.trim().as_bytes())
    }
}

impl<'de> Deserialize<'de> for Decimal {
    /// Accepts a string (`"0.01"`, exact) only: a TOML float such as `0.01` is already
    /// inexact by the time it reaches us.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let v: Decimal = s.parse().map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))?;
        if v.mantissa <= 0 {
            return Err(serde::de::Error::custom(format!("`{s}` must be > 0")));
        }
        Ok(v)
    }
}

/// A tradable instrument: its symbol and its exact tick and lot sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Instrument {
    /// Exchange symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Price increment.
    pub tick: Decimal,
    /// Size increment.
    pub lot: Decimal,
    tick_f: f64,
    lot_f: f64,
}

impl Instrument {
    /// An instrument with the given exact increments.
    pub fn new(symbol: impl Into<String>, tick: Decimal, lot: Decimal) -> Self {
        Instrument { symbol: symbol.into(), tick, lot, tick_f: tick.to_f64(), lot_f: lot.to_f64() }
    }

    /// Tick size as `f64`.
    #[inline]
    pub fn tick_f64(&self) -> f64 {
        self.tick_f
    }

    /// Lot size as `f64`.
    #[inline]
    pub fn lot_f64(&self) -> f64 {
        self.lot_f
    }

    /// Price in ticks to price units.
    #[inline]
    pub fn px_f64(&self, px: Px) -> f64 {
        px as f64 * self.tick_f
    }

    /// Size in lots to units of the asset.
    #[inline]
    pub fn qty_f64(&self, qty: Qty) -> f64 {
        qty as f64 * self.lot_f
    }

    /// A model price to ticks in the given direction, or `None` for a non-finite price
    /// or one beyond `i64` ticks.
    ///
    /// `px / tick` is inexact in binary (100.07 / 0.01 = 10006.999...), so a quotient
    /// within 1e-12 relative of an integer (a few thousand ulps, far below a tick)
    /// counts as that integer before rounding: a price that is on the grid up to `f64`
    /// noise maps to its own tick in every direction.
    #[inline]
    pub fn price_to_ticks(&self, px: f64, round: Round) -> Option<Px> {
        to_grid(px, self.tick_f, round)
    }

    /// A model size to lots in the given direction (see [`Self::price_to_ticks`]).
    #[inline]
    pub fn qty_to_lots(&self, qty: f64, round: Round) -> Option<Qty> {
        to_grid(qty, self.lot_f, round)
    }

    /// Exact decimal price of `px` ticks, for printing and order messages.
    pub fn price_decimal(&self, px: Px) -> Decimal {
        Decimal::from_increments(px, self.tick)
    }

    /// Exact decimal size of `qty` lots.
    pub fn qty_decimal(&self, qty: Qty) -> Decimal {
        Decimal::from_increments(qty, self.lot)
    }

    /// Parses an exchange price string to ticks; an off-tick price is an error.
    #[inline]
    pub fn parse_price(&self, s: &[u8]) -> Result<Px, DecimalError> {
        Decimal::parse_bytes(s)?.to_increments(self.tick)
    }

    /// Parses an exchange size string to lots; an off-lot size is an error.
    #[inline]
    pub fn parse_qty(&self, s: &[u8]) -> Result<Qty, DecimalError> {
        Decimal::parse_bytes(s)?.to_increments(self.lot)
    }
}

#[inline]
fn to_grid(v: f64, inc: f64, round: Round) -> Option<i64> {
    let q = v / inc;
    if !q.is_finite() || q.abs() >= 9.0e18 {
        return None;
    }
    let n = q.round();
    let snapped = (q - n).abs() <= 1e-12 * n.abs().max(1.0);
    let r = if snapped {
        n
    } else {
        match round {
            Round::Down => q.floor(),
            Round::Up => q.ceil(),
            Round::Nearest => n,
        }
    };
    Some(r as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duration_conversions_refuse_to_wrap() {
        assert_eq!(ms_to_ns(750), Some(750 * NS_PER_MS));
        assert_eq!(secs_to_ns(3_600), Some(3_600 * NS_PER_SEC));
        // The values a hostile config used: each wrapped before.
        assert_eq!(ms_to_ns(9_300_000_000_000), None);
        assert_eq!(ms_to_ns(18_446_744_073_710), None);
        assert_eq!(secs_to_ns(9_300_000_000), None);
        assert_eq!(ms_to_ns(u64::MAX), None);
        assert_eq!(ms_to_ns((i64::MAX / NS_PER_MS) as u64), Some(i64::MAX / NS_PER_MS * NS_PER_MS));
        assert_eq!(ms_to_ns((i64::MAX / NS_PER_MS) as u64 + 1), None);
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn btc() -> Instrument {
        Instrument::new("BTCUSDT", d("0.01"), d("0.00001"))
    }

    #[test]
    fn parses_exchange_strings() {
        assert_eq!(d("61234.56000000"), Decimal::new(6123456000000, 8));
        assert_eq!(d("0.00001"), Decimal::new(1, 5));
        assert_eq!(d("-1.5"), Decimal::new(-15, 1));
        assert_eq!(d("7"), Decimal::new(7, 0));
        assert_eq!(d(".5"), Decimal::new(5, 1));
        for bad in ["", "-", ".", "1.2.3", "1e5", "abc", "1,5", " 1"] {
            assert!(Decimal::parse_bytes(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert_eq!(Decimal::parse_bytes(b"99999999999999999999"), Err(DecimalError::Overflow));
    }

    #[test]
    fn exact_grid_conversion() {
        let i = btc();
        assert_eq!(i.parse_price(b"61234.56000000"), Ok(6_123_456));
        assert_eq!(i.parse_price(b"61234.565"), Err(DecimalError::OffGrid));
        assert_eq!(i.parse_qty(b"0.12345000"), Ok(12_345));
        assert_eq!(i.parse_qty(b"0.00000"), Ok(0));
        assert_eq!(i.parse_qty(b"0.000001"), Err(DecimalError::OffGrid));
    }

    #[test]
    fn prints_exact_decimals() {
        let i = btc();
        assert_eq!(i.price_decimal(6_123_456).to_string(), "61234.56");
        assert_eq!(i.price_decimal(1).to_string(), "0.01");
        assert_eq!(i.qty_decimal(12_345).to_string(), "0.12345");
        assert_eq!(i.qty_decimal(-1).to_string(), "-0.00001");
        assert_eq!(Decimal::new(42, 0).to_string(), "42");
    }

    #[test]
    fn rounding_directions() {
        let i = btc();
        assert_eq!(i.price_to_ticks(100.074, Round::Down), Some(10_007));
        assert_eq!(i.price_to_ticks(100.074, Round::Up), Some(10_008));
        assert_eq!(i.price_to_ticks(100.074, Round::Nearest), Some(10_007));
        assert_eq!(i.price_to_ticks(100.076, Round::Nearest), Some(10_008));
        // On-grid prices that are inexact in binary keep their tick in every direction.
        for r in [Round::Down, Round::Up, Round::Nearest] {
            assert_eq!(i.price_to_ticks(100.07, r), Some(10_007));
            assert_eq!(i.price_to_ticks(0.3, r), Some(30));
        }
        assert_eq!(i.price_to_ticks(-0.015, Round::Down), Some(-2));
        assert_eq!(i.price_to_ticks(-0.015, Round::Up), Some(-1));
        assert_eq!(i.price_to_ticks(f64::NAN, Round::Down), None);
        assert_eq!(i.price_to_ticks(f64::INFINITY, Round::Up), None);
        assert_eq!(i.qty_to_lots(0.000019, Round::Down), Some(1));
    }

    proptest! {
        #[test]
        fn print_parse_roundtrip(px in -10_000_000_000i64..10_000_000_000) {
            let i = btc();
            let s = i.price_decimal(px).to_string();
            prop_assert_eq!(i.parse_price(s.as_bytes()), Ok(px));
        }

        #[test]
        fn down_le_model_le_up(v in 0.0f64..1.0e7) {
            let i = btc();
            let dn = i.price_to_ticks(v, Round::Down).unwrap();
            let up = i.price_to_ticks(v, Round::Up).unwrap();
            prop_assert!(up - dn <= 1);
            prop_assert!(i.px_f64(dn) <= v * (1.0 + 1e-12));
            prop_assert!(i.px_f64(up) >= v * (1.0 - 1e-12));
        }
    }
}
