//! What a backtest leaves behind for its report and plots: a time series sampled at a
//! fixed event-time interval, and one record per fill. Filled by the replay loop,
//! read by [`super::stats`] and [`super::plot`]; never touched on the hot path of a
//! live run.

use serde::Serialize;

use crate::types::{Side, Ts};

/// The engine's state at one sampling instant (event time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Event time of the sample (local ns).
    pub ts: Ts,
    /// Mid price per leg `[y, x]` in price units; NaN while a book is one-sided.
    pub mid: [f64; 2],
    /// Kalman hedge ratio; NaN before the first signal.
    pub beta: f64,
    /// Kalman z-score of the last signal; NaN before the first signal.
    pub z: f64,
    /// Position per leg in base-asset units.
    pub position: [f64; 2],
    /// Target position per leg in base-asset units.
    pub target: [f64; 2],
    /// PnL before fees, marked at the mids, in the quote asset.
    pub gross_pnl: f64,
    /// Fees paid so far in the quote asset.
    pub fees: f64,
    /// `gross_pnl - fees`.
    pub net_pnl: f64,
}

/// One fill of one of our orders, as the Core saw it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FillRecord {
    /// Local time the Core received the fill.
    pub ts: Ts,
    /// Leg index (0 = y, 1 = x).
    pub leg: usize,
    /// Our side.
    pub side: Side,
    /// Fill price in price units.
    pub px: f64,
    /// Fill size in base-asset units.
    pub qty: f64,
    /// Fee in the quote asset (negative for a rebate).
    pub fee: f64,
    /// True if the fill added liquidity.
    pub maker: bool,
    /// Time from the order reaching the matching engine to this fill, ns (0 for a
    /// taker fill).
    pub queue_wait_ns: i64,
}

/// Everything a backtest recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trace {
    /// Symbols `[y, x]`.
    pub symbols: [String; 2],
    /// Entry threshold on |z|.
    pub entry_z: f64,
    /// Exit threshold on |z|.
    pub exit_z: f64,
    /// Sampling interval of [`Trace::samples`], ns.
    pub sample_interval_ns: i64,
    /// Samples in time order.
    pub samples: Vec<Sample>,
    /// Fills in the order the Core received them.
    pub fills: Vec<FillRecord>,
    /// New orders that reached the matching engine.
    pub orders: u64,
    /// Orders rejected by the matching engine.
    pub rejects: u64,
    /// Cancels confirmed by the matching engine.
    pub cancels: u64,
}
