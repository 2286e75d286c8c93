//! Pre-trade risk controls. Every new order passes [`Risk::check`] before it leaves the
//! strategy; every refusal has a [`Reject`] reason and increments that reason's counter.
//!
//! Checks, cheapest first: kill switch, stale market (a leg's last update older than
//! `stale_ms`), a valid two-sided market, price band around the mid, order notional,
//! worst-case position (position plus every open order on the same side filled), open
//! order count, and the order rate. The rate limit is a GCRA (generic cell rate
//! algorithm, ITU-T I.371), the integer-exact form of a token bucket: an order is
//! allowed when `now >= tat - tau`, after which `tat = max(tat, now) + T`, with
//! `T = 1/rate` and `tau = (burst - 1) * T`. Only an order that passes every other check
//! consumes rate.
//!
//! Market data is screened too, before it reaches a book (the counters are the core's,
//! see [`crate::book::DataReject`]): `data_band_bps` bounds a price's distance from the
//! leg's last good mid, `max_clock_jump_ms` how far an exchange time may run ahead of
//! the local receive time.
//!
//! Time: staleness is judged on the local receive clock (`OrderCheck::local`), the
//! order rate on the strategy clock (`OrderCheck::now`), which is the same clock except
//! with `feed.clock = "exchange"` (see [`crate::core::Clocks`]).

use serde::Deserialize;
use thiserror::Error;

use crate::types::{ms_to_ns, Instrument, Px, Qty, Side, Ts, NS_PER_SEC};

/// Limits from config `[risk]` (per-leg position limits live with the legs).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskParams {
    /// Largest notional of one order, in the quote asset.
    pub max_order_notional: f64,
    /// Most orders open at once, all legs together.
    pub max_open_orders: usize,
    /// Sustained new orders per second.
    pub orders_per_sec: f64,
    /// Orders allowed back to back above the sustained rate.
    pub burst: u32,
    /// Largest distance of an order price from the mid, in basis points of the mid.
    pub price_band_bps: f64,
    /// A leg whose last market update is older than this (ms) is stale: no quotes.
    pub stale_ms: u64,
    /// Net loss (quote asset) at which the kill switch trips; `None` for no limit.
    #[serde(default)]
    pub max_loss: Option<f64>,
    /// Largest distance of a market event's price from its leg's last good mid, in
    /// basis points of that mid; a price beyond it is refused as bad data (a zero or
    /// `i64::MAX` print, a misplaced decimal point). Generous by default, 2 000 bps =
    /// 20 %: it is there to catch absurd values, not fast markets.
    #[serde(default = "default_data_band_bps")]
    pub data_band_bps: f64,
    /// Largest lead of a market event's exchange time over its local receive time,
    /// ms; an event stamped further ahead is refused as bad data (a clock cannot run
    /// ahead of the moment its message arrived by more than the skew between the two
    /// clocks), so one stamp in the year 2100 cannot move the exchange clock.
    /// Default 60 000; at most 86 400 000 (one day).
    #[serde(default = "default_max_clock_jump_ms")]
    pub max_clock_jump_ms: u64,
}

/// Default of [`RiskParams::data_band_bps`]: 20 %.
pub const DEFAULT_DATA_BAND_BPS: f64 = 2_000.0;
/// Default of [`RiskParams::max_clock_jump_ms`]: one minute.
pub const DEFAULT_MAX_CLOCK_JUMP_MS: u64 = 60_000;
/// Largest [`RiskParams::max_clock_jump_ms`]: one day.
pub const MAX_CLOCK_JUMP_MS: u64 = 86_400_000;

fn default_data_band_bps() -> f64 {
    DEFAULT_DATA_BAND_BPS
}
fn default_max_clock_jump_ms() -> u64 {
    DEFAULT_MAX_CLOCK_JUMP_MS
}

/// Largest `stale_ms`: seven days, for daily bars; far inside the range whose
/// nanoseconds fit an `i64`.
pub const MAX_STALE_MS: u64 = 7 * 86_400_000;

/// Invalid risk parameters; the message names the key.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("risk.{key}: {msg}")]
pub struct RiskParamError {
    /// Offending key.
    pub key: &'static str,
    /// What is wrong.
    pub msg: String,
}

impl RiskParams {
    /// Checks that every limit is positive and finite.
    pub fn validate(&self) -> Result<(), RiskParamError> {
        let pos = |key: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(RiskParamError { key, msg: format!("must be > 0, got {v}") })
            }
        };
        pos("max_order_notional", self.max_order_notional)?;
        pos("max_open_orders", self.max_open_orders as f64)?;
        pos("orders_per_sec", self.orders_per_sec)?;
        pos("burst", self.burst as f64)?;
        pos("price_band_bps", self.price_band_bps)?;
        pos("stale_ms", self.stale_ms as f64)?;
        if self.stale_ms > MAX_STALE_MS {
            return Err(RiskParamError {
                key: "stale_ms",
                msg: format!("must be <= {MAX_STALE_MS} (7 days), got {}", self.stale_ms),
            });
        }
        if let Some(l) = self.max_loss {
            pos("max_loss", l)?;
        }
        pos("data_band_bps", self.data_band_bps)?;
        if !(1..=MAX_CLOCK_JUMP_MS).contains(&self.max_clock_jump_ms) {
            return Err(RiskParamError {
                key: "max_clock_jump_ms",
                msg: format!("must be 1 ..= {MAX_CLOCK_JUMP_MS}, got {}", self.max_clock_jump_ms),
            });
        }
        Ok(())
    }

    /// [`RiskParams::data_band_bps`] as a fraction of the mid, for
    /// [`crate::book::Book::screen`].
    #[inline]
    pub fn data_band(&self) -> f64 {
        self.data_band_bps * 1e-4
    }

    /// [`RiskParams::max_clock_jump_ms`] in ns (validated, so the product fits).
    #[inline]
    pub fn max_clock_jump_ns(&self) -> i64 {
        ms_to_ns(self.max_clock_jump_ms).unwrap_or(Ts::MAX)
    }
}

/// Why an order was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reject {
    /// The kill switch is on.
    Killed = 0,
    /// The leg's market data is older than `stale_ms` or unsynced.
    Stale,
    /// No two-sided market to price against.
    NoMarket,
    /// The price is outside the band around the mid.
    PriceBand,
    /// The order's notional is above `max_order_notional`.
    Notional,
    /// Filling this and every open order on its side would breach the position limit.
    Position,
    /// `max_open_orders` are already open.
    OpenOrders,
    /// The order rate limit is exhausted.
    RateLimit,
    /// The exchange refused the order.
    Exchange,
    /// A leg that had a mid has had none (a `Clear`, a one-sided book) for longer than
    /// `stale_ms`: its position is marked at the last good mid and its quotes are
    /// pulled. Counted once per gap.
    Unmarked,
}

impl Reject {
    /// Every reason, in counter order.
    pub const ALL: [Reject; 10] = [
        Reject::Killed,
        Reject::Stale,
        Reject::NoMarket,
        Reject::PriceBand,
        Reject::Notional,
        Reject::Position,
        Reject::OpenOrders,
        Reject::RateLimit,
        Reject::Exchange,
        Reject::Unmarked,
    ];

    /// A stable snake_case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::Killed => "killed",
            Reject::Stale => "stale",
            Reject::NoMarket => "no_market",
            Reject::PriceBand => "price_band",
            Reject::Notional => "notional",
            Reject::Position => "position",
            Reject::OpenOrders => "open_orders",
            Reject::RateLimit => "rate_limit",
            Reject::Exchange => "exchange",
            Reject::Unmarked => "unmarked",
        }
    }
}

/// Everything [`Risk::check`] needs to know about one proposed order.
#[derive(Debug, Clone, Copy)]
pub struct OrderCheck<'a> {
    /// The instrument.
    pub inst: &'a Instrument,
    /// Side.
    pub side: Side,
    /// Limit price in ticks.
    pub px: Px,
    /// Size in lots.
    pub qty: Qty,
    /// Best bid and ask in ticks, if both exist.
    pub top: Option<(Px, Px)>,
    /// Current position in lots.
    pub position: Qty,
    /// Open size on the same side, in lots.
    pub open_same_side: Qty,
    /// The leg's position limit in lots (absolute).
    pub max_position: Qty,
    /// Orders open now, all legs.
    pub open_orders: usize,
    /// Local receive time of the leg's last accepted market update.
    pub last_update: Ts,
    /// Now on the strategy clock (the order rate is counted on it).
    pub now: Ts,
    /// Now on the local receive clock (staleness is judged on it).
    pub local: Ts,
}

/// Risk state: kill switch, rate limiter and rejection counters.
#[derive(Debug, Clone)]
pub struct Risk {
    params: RiskParams,
    stale_ns: i64,
    /// GCRA emission interval `T` in ns.
    interval_ns: i64,
    /// GCRA tolerance `tau` in ns.
    tolerance_ns: i64,
    /// GCRA theoretical arrival time.
    tat: Ts,
    killed: bool,
    counts: [u64; Reject::ALL.len()],
}

impl Risk {
    /// Risk state for validated parameters.
    pub fn new(params: RiskParams) -> Self {
        let interval_ns = ((NS_PER_SEC as f64) / params.orders_per_sec).round().max(1.0) as i64;
        Risk {
            params,
            // Validated <= MAX_STALE_MS; saturating for unvalidated input, so that a
            // huge value means "never stale" rather than wrapping to almost nothing.
            stale_ns: ms_to_ns(params.stale_ms).unwrap_or(Ts::MAX),
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(params.burst.saturating_sub(1) as i64),
            tat: i64::MIN / 2,
            killed: false,
            counts: [0; Reject::ALL.len()],
        }
    }

    /// The parameters.
    pub fn params(&self) -> &RiskParams {
        &self.params
    }

    /// True if the leg's data is too old to quote on: both times on the local receive
    /// clock.
    #[inline]
    pub fn is_stale(&self, last_update: Ts, now: Ts) -> bool {
        now.saturating_sub(last_update) > self.stale_ns
    }

    /// Checks one order; on refusal counts and returns the reason.
    #[inline]
    pub fn check(&mut self, c: &OrderCheck<'_>) -> Result<(), Reject> {
        let r = self.evaluate(c);
        if let Err(reason) = r {
            self.count(reason);
        }
        r
    }

    #[inline]
    fn evaluate(&mut self, c: &OrderCheck<'_>) -> Result<(), Reject> {
        if self.killed {
            return Err(Reject::Killed);
        }
        if self.is_stale(c.last_update, c.local) {
            return Err(Reject::Stale);
        }
        let (bid, ask) = c.top.ok_or(Reject::NoMarket)?;
        let mid = (bid + ask) as f64 * 0.5;
        if (c.px as f64 - mid).abs() > mid * self.params.price_band_bps * 1e-4 {
            return Err(Reject::PriceBand);
        }
        if c.inst.px_f64(c.px) * c.inst.qty_f64(c.qty) > self.params.max_order_notional {
            return Err(Reject::Notional);
        }
        let worst = c.position + c.side.sign() * (c.open_same_side + c.qty);
        if worst.abs() > c.max_position && worst.abs() > c.position.abs() {
            return Err(Reject::Position);
        }
        if c.open_orders >= self.params.max_open_orders {
            return Err(Reject::OpenOrders);
        }
        if c.now < self.tat - self.tolerance_ns {
            return Err(Reject::RateLimit);
        }
        self.tat = self.tat.max(c.now) + self.interval_ns;
        Ok(())
    }

    /// Counts a rejection decided elsewhere (stale cancels, exchange rejects).
    #[inline]
    pub fn count(&mut self, reason: Reject) {
        self.counts[reason as usize] += 1;
    }

    /// Trips the kill switch: every later order is refused.
    pub fn kill(&mut self) {
        self.killed = true;
    }

    /// True once the kill switch has tripped.
    #[inline]
    pub fn killed(&self) -> bool {
        self.killed
    }

    /// Trips the kill switch if `net_pnl` is below `-max_loss`. Returns true if it
    /// tripped now.
    #[inline]
    pub fn check_loss(&mut self, net_pnl: f64) -> bool {
        match self.params.max_loss {
            Some(l) if !self.killed && net_pnl < -l => {
                self.killed = true;
                true
            }
            _ => false,
        }
    }

    /// Rejections so far, indexed like [`Reject::ALL`].
    pub fn counts(&self) -> &[u64; Reject::ALL.len()] {
        &self.counts
    }

    /// Rejections for one reason.
    pub fn count_of(&self, reason: Reject) -> u64 {
        self.counts[reason as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NS_PER_MS;
    use proptest::prelude::*;

    fn params() -> RiskParams {
        RiskParams {
            max_order_notional: 1_000.0,
            max_open_orders: 4,
            orders_per_sec: 10.0,
            burst: 3,
            price_band_bps: 50.0,
            stale_ms: 1_000,
            max_loss: Some(100.0),
            data_band_bps: DEFAULT_DATA_BAND_BPS,
            max_clock_jump_ms: DEFAULT_MAX_CLOCK_JUMP_MS,
        }
    }

    fn inst() -> Instrument {
        Instrument::new("ETHUSDT", "0.01".parse().unwrap(), "0.0001".parse().unwrap())
    }

    fn check(i: &Instrument) -> OrderCheck<'_> {
        OrderCheck {
            inst: i,
            side: Side::Buy,
            px: 250_000,
            qty: 1_000, // 0.1 ETH at 2500 = 250 USDT
            top: Some((250_000, 250_001)),
            position: 0,
            open_same_side: 0,
            max_position: 5_000,
            open_orders: 0,
            last_update: 0,
            now: 0,
            local: 0,
        }
    }

    #[test]
    fn each_limit_rejects_with_its_reason_and_counts() {
        let i = inst();
        let mut r = Risk::new(params());
        let cases: [(OrderCheck, Reject); 6] = [
            (OrderCheck { local: 2 * NS_PER_SEC, ..check(&i) }, Reject::Stale),
            (OrderCheck { top: None, ..check(&i) }, Reject::NoMarket),
            (OrderCheck { px: 240_000, ..check(&i) }, Reject::PriceBand),
            (OrderCheck { qty: 5_000, ..check(&i) }, Reject::Notional),
            (OrderCheck { position: 3_500, open_same_side: 1_000, ..check(&i) }, Reject::Position),
            (OrderCheck { open_orders: 4, ..check(&i) }, Reject::OpenOrders),
        ];
        for (c, want) in cases {
            assert_eq!(r.check(&c), Err(want));
            assert_eq!(r.count_of(want), 1);
        }
        assert_eq!(r.check(&check(&i)), Ok(()));
        r.kill();
        assert_eq!(r.check(&check(&i)), Err(Reject::Killed));
        assert_eq!(r.counts().iter().sum::<u64>(), 7);
    }

    #[test]
    fn reducing_orders_pass_even_beyond_the_limit() {
        let i = inst();
        let mut r = Risk::new(params());
        let c = OrderCheck { side: Side::Sell, position: 9_000, ..check(&i) };
        assert_eq!(r.check(&c), Ok(()));
    }

    #[test]
    fn gcra_allows_burst_then_the_rate() {
        let i = inst();
        let mut r = Risk::new(params());
        let at = |now| OrderCheck { now, last_update: now, local: now, ..check(&i) };
        for _ in 0..3 {
            assert_eq!(r.check(&at(0)), Ok(()));
        }
        assert_eq!(r.check(&at(0)), Err(Reject::RateLimit));
        // One interval (100 ms) later exactly one more order is allowed.
        assert_eq!(r.check(&at(100 * NS_PER_MS)), Ok(()));
        assert_eq!(r.check(&at(100 * NS_PER_MS)), Err(Reject::RateLimit));
    }

    #[test]
    fn max_loss_trips_the_kill_switch_once() {
        let mut r = Risk::new(params());
        assert!(!r.check_loss(-99.0));
        assert!(r.check_loss(-101.0));
        assert!(r.killed());
        assert!(!r.check_loss(-500.0));
    }

    #[test]
    fn validation_names_the_key() {
        let e = RiskParams { orders_per_sec: 0.0, ..params() }.validate().unwrap_err();
        assert_eq!(e.key, "orders_per_sec");
        assert!(e.to_string().starts_with("risk.orders_per_sec"));
        let e = RiskParams { data_band_bps: f64::NAN, ..params() }.validate().unwrap_err();
        assert_eq!(e.key, "data_band_bps");
        for ms in [0, MAX_CLOCK_JUMP_MS + 1, u64::MAX] {
            let e = RiskParams { max_clock_jump_ms: ms, ..params() }.validate().unwrap_err();
            assert_eq!(e.key, "max_clock_jump_ms", "{ms}");
        }
        assert_eq!(
            RiskParams { max_clock_jump_ms: MAX_CLOCK_JUMP_MS, ..params() }.max_clock_jump_ns(),
            86_400 * NS_PER_SEC
        );
    }

    #[test]
    fn data_keys_default_when_absent_and_parse_when_given() {
        let base = "max_order_notional = 1.0\nmax_open_orders = 1\norders_per_sec = 1.0\nburst = 1\nprice_band_bps = 1.0\nstale_ms = 1\n";
        let p: RiskParams = toml::from_str(base).unwrap();
        assert_eq!((p.data_band_bps, p.max_clock_jump_ms), (2_000.0, 60_000));
        assert_eq!(p.data_band(), 0.2);
        let p: RiskParams =
            toml::from_str(&format!("{base}data_band_bps = 500.0\nmax_clock_jump_ms = 5000\n")).unwrap();
        assert_eq!((p.data_band_bps, p.max_clock_jump_ns()), (500.0, 5 * NS_PER_SEC));
    }

    #[test]
    fn staleness_is_judged_on_the_local_clock_not_the_strategy_clock() {
        let i = inst();
        let mut r = Risk::new(params());
        // The strategy clock (an exchange clock during a stall) has not moved; the
        // local clock has run 2 s past the last update.
        let stalled = OrderCheck { now: 0, last_update: 0, local: 2 * NS_PER_SEC, ..check(&i) };
        assert_eq!(r.check(&stalled), Err(Reject::Stale));
        let fresh = OrderCheck { now: 5 * NS_PER_SEC, last_update: 0, local: 0, ..check(&i) };
        assert_eq!(r.check(&fresh), Ok(()));
    }

    proptest! {
        /// Whatever the sequence of requests, accepted orders never exceed
        /// `burst + rate * elapsed`, and worst-case positions never exceed the limit.
        #[test]
        fn limits_never_breached(reqs in prop::collection::vec((0i64..50_000_000, any::<bool>(), 1i64..3_000), 1..300)) {
            let i = inst();
            let mut r = Risk::new(params());
            let (mut now, mut pos, mut accepted) = (0i64, 0i64, 0u64);
            for (dt, buy, qty) in reqs {
                now += dt;
                let side = if buy { Side::Buy } else { Side::Sell };
                let c = OrderCheck { side, qty: qty.min(3_999), now, last_update: now, local: now, position: pos, ..check(&i) };
                if r.check(&c).is_ok() {
                    accepted += 1;
                    pos += side.sign() * c.qty; // filled at once
                    prop_assert!(pos.abs() <= c.max_position);
                }
                let allowed = 3 + (now as f64 / 1e8).floor() as u64;
                prop_assert!(accepted <= allowed, "{accepted} > {allowed}");
            }
        }
    }
}
