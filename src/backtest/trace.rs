//! What a backtest leaves behind for its report, plots and CSV files: a time series
//! sampled at a fixed event-time interval, one record per fill, one per accepted
//! signal, one per change of the pair's state, and the hedge error integrated over the
//! run. Filled by the replay loop through a [`Recorder`], read by [`super::stats`] and
//! [`super::plot`]; never touched on the hot path of a live run.
//!
//! # What the recorder looks at, and when
//!
//! After every Core call of the replay loop (market event, report, timer, shutdown)
//! the [`Recorder`] reads three things: the signal counter (`core.stats().signals`),
//! the targets (two lot counts) and the kill switch. Only when one of them moved does
//! it look further (the last signal, the spread state, mids, positions) and push a
//! [`SignalRecord`] and/or a [`Decision`]. The Core changes its spread state and targets
//! only at a signal sample or on a kill, so nothing is missed. The hedge error is
//! updated after every report and timer call and at the end of every exchange message
//! (a complete book state) from the two positions, and the two books' tops when a
//! position is open: a handful of loads and flops, no allocation.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::core::{Core, LEG_X, LEG_Y};
use crate::event::OrderId;
use crate::signal::pairs::{SpreadState, Targets};
use crate::types::{Side, Ts, NS_PER_SEC};
use crate::utc::UtcMs;

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

/// Header of `fills.csv`: the field names of [`FillRow`], in order.
pub const FILLS_HEADER: [&str; 15] = [
    "time",
    "ts",
    "symbol",
    "order_id",
    "side",
    "px",
    "qty",
    "fee",
    "liquidity",
    "position",
    "target",
    "mid",
    "signal_mid",
    "queue_wait_ns",
    "toward_target",
];

/// Maker or taker, as `fills.csv` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liquidity {
    /// The fill added liquidity (our order rested in the book).
    Maker,
    /// The fill took liquidity.
    Taker,
}

/// A row of `fills.csv`: a [`FillRecord`] with its UTC time and its leg's symbol, for
/// a user who loads the file without the run's config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FillRow<'a> {
    /// [`FillRecord::ts`] as UTC.
    pub time: UtcMs,
    /// [`FillRecord::ts`], ns since the Unix epoch.
    pub ts: Ts,
    /// The leg's symbol.
    pub symbol: &'a str,
    /// [`FillRecord::order_id`].
    pub order_id: OrderId,
    /// [`FillRecord::side`].
    pub side: Side,
    /// [`FillRecord::px`].
    pub px: f64,
    /// [`FillRecord::qty`].
    pub qty: f64,
    /// [`FillRecord::fee`].
    pub fee: f64,
    /// [`FillRecord::maker`].
    pub liquidity: Liquidity,
    /// [`FillRecord::position`]: the leg's position after the fill.
    pub position: f64,
    /// [`FillRecord::target`].
    pub target: f64,
    /// [`FillRecord::mid`].
    pub mid: Option<f64>,
    /// [`FillRecord::signal_mid`].
    pub signal_mid: Option<f64>,
    /// [`FillRecord::queue_wait_ns`].
    pub queue_wait_ns: i64,
    /// [`FillRecord::toward_target`].
    pub toward_target: bool,
}

impl Trace {
    /// The rows of `fills.csv`, in fill order; a fill of a leg index out of range
    /// (never recorded by the backtester) is named `?`.
    pub fn fill_rows(&self) -> impl Iterator<Item = FillRow<'_>> {
        self.fills.iter().map(|f| FillRow {
            time: UtcMs(f.ts),
            ts: f.ts,
            symbol: self.symbols.get(f.leg).map_or("?", String::as_str),
            order_id: f.order_id,
            side: f.side,
            px: f.px,
            qty: f.qty,
            fee: f.fee,
            liquidity: if f.maker { Liquidity::Maker } else { Liquidity::Taker },
            position: f.position,
            target: f.target,
            mid: f.mid,
            signal_mid: f.signal_mid,
            queue_wait_ns: f.queue_wait_ns,
            toward_target: f.toward_target,
        })
    }

    /// The rows of `equity.csv`, one per sample: the equity curve at the report's
    /// sampling ([`Trace::sample_interval_ns`]).
    pub fn equity_rows(&self) -> impl Iterator<Item = EquityRow> + '_ {
        self.samples.iter().map(|s| EquityRow {
            time: UtcMs(s.ts),
            ts: s.ts,
            net_pnl: s.net_pnl,
            gross_pnl: s.gross_pnl,
            fees: s.fees,
            position_y: s.position[0],
            mark_y: s.mid[0],
            position_x: s.position[1],
            mark_x: s.mid[1],
        })
    }

    /// The header of `equity.csv`, with the legs' symbols in the position and mark
    /// columns (`position_BTCUSDT`, `mark_BTCUSDT`, ...).
    pub fn equity_header(&self) -> [String; 9] {
        let [y, x] = &self.symbols;
        [
            "time".into(),
            "ts".into(),
            "net_pnl".into(),
            "gross_pnl".into(),
            "fees".into(),
            format!("position_{y}"),
            format!("mark_{y}"),
            format!("position_{x}"),
            format!("mark_{x}"),
        ]
    }
}

/// A row of `equity.csv`: PnL, positions and marks at one sample. Marks are the mids,
/// `NaN` while a book is one-sided (and so is the PnL marked at them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EquityRow {
    /// Sample time, UTC.
    pub time: UtcMs,
    /// Sample time, ns since the Unix epoch.
    pub ts: Ts,
    /// Net PnL, quote asset: `gross_pnl - fees`.
    pub net_pnl: f64,
    /// PnL before fees, marked at the mids.
    pub gross_pnl: f64,
    /// Fees paid so far.
    pub fees: f64,
    /// Y position, base units.
    pub position_y: f64,
    /// Y mark (mid), price units.
    pub mark_y: f64,
    /// X position, base units.
    pub position_x: f64,
    /// X mark (mid), price units.
    pub mark_x: f64,
}

/// One fill of one of our orders, as the Core saw it (written to `fills.csv` as a
/// [`FillRow`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FillRecord {
    /// Local time the Core received the fill.
    pub ts: Ts,
    /// Leg index (0 = y, 1 = x).
    pub leg: usize,
    /// The order that filled (the Core's id: session in the high 32 bits).
    pub order_id: OrderId,
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
    /// The leg's mid when the Core received the fill (price units; `None`, an empty
    /// field in CSV, if the book was one-sided).
    pub mid: Option<f64>,
    /// The leg's position after the fill, base units.
    pub position: f64,
    /// The leg's target in force when the fill arrived (the one the order was working
    /// towards), base units.
    pub target: f64,
    /// The leg's mid at the decision that set that target ([`Decision::mid`] of the
    /// last decision that changed the targets at a signal or by a kill); `None` before
    /// the first such decision.
    pub signal_mid: Option<f64>,
    /// True if the fill brought the position closer to the target:
    /// `|position - target| < |position - side * qty - target|` (in lots, exact).
    pub toward_target: bool,
}

/// The spread state, as written to `signal.csv` and `trades.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// No position.
    #[default]
    Flat,
    /// Long the spread: long Y, short X.
    Long,
    /// Short the spread: short Y, long X.
    Short,
    /// Stopped out, waiting for the spread to come back.
    Stopped,
}

impl From<SpreadState> for Spread {
    fn from(s: SpreadState) -> Spread {
        match s {
            SpreadState::Flat => Spread::Flat,
            SpreadState::Long => Spread::Long,
            SpreadState::Short => Spread::Short,
            SpreadState::Stopped => Spread::Stopped,
        }
    }
}

impl Spread {
    /// True for long or short: a position in the spread is wanted.
    pub fn is_open(self) -> bool {
        matches!(self, Spread::Long | Spread::Short)
    }
}

/// Header of `signal.csv`: the field names of [`SignalRecord`], in order.
pub const SIGNAL_HEADER: [&str; 11] =
    ["ts_ns", "mid_y", "mid_x", "beta", "alpha", "e", "q", "z", "state", "target_y", "target_x"];

/// One accepted Kalman update of the Core (the signal counter moved), with the pair's
/// state after the Core acted on it. A row of `signal.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SignalRecord {
    /// Local time of the market event that triggered the update, ns.
    pub ts_ns: Ts,
    /// Y leg's mid, price units (the observation `y` of the filter).
    pub mid_y: f64,
    /// X leg's mid, price units (the observation `x`).
    pub mid_x: f64,
    /// Hedge ratio after the update.
    pub beta: f64,
    /// Intercept after the update.
    pub alpha: f64,
    /// Innovation `e = y - (beta- * x + alpha-)`.
    pub e: f64,
    /// Innovation variance `Q`.
    pub q: f64,
    /// `z = e / sqrt(Q)`.
    pub z: f64,
    /// Spread state after the update.
    pub state: Spread,
    /// Y target after the update, base units.
    pub target_y: f64,
    /// X target after the update, base units.
    pub target_x: f64,
}

/// A change of the pair's spread state, targets or kill switch, seen after one Core
/// call, with the market and positions at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Decision {
    /// Local time of the Core call, ns.
    pub ts: Ts,
    /// Number of fills recorded before this decision: fills `..fills_before` of
    /// [`Trace::fills`] happened before it, the rest after. Orders the two streams
    /// exactly, ties in time included (a kill follows the fill that triggered it).
    pub fills_before: usize,
    /// True if the call accepted a Kalman update (a decision at a signal sample).
    pub signal: bool,
    /// Spread state after the call.
    pub state: Spread,
    /// Kill switch after the call.
    pub killed: bool,
    /// z of the last accepted signal (NaN before the first).
    pub z: f64,
    /// beta of the last accepted signal (NaN before the first).
    pub beta: f64,
    /// Targets `[y, x]` after the call, base units.
    pub target: [f64; 2],
    /// Mids `[y, x]`, price units; a one-sided book gives the leg's last known mid
    /// (NaN before the first).
    pub mid: [f64; 2],
    /// Positions `[y, x]`, base units.
    pub position: [f64; 2],
}

/// Time-weighted integral and maximum of the unhedged notional
/// `h(t) = |q_y(t) * m_y(t) + q_x(t) * m_x(t)|` (positions `q` in base units, mids `m`
/// in price units, so `h` is in the quote asset). `h` is a step function: the replay
/// updates it after every report and timer call and at the end of every exchange
/// message (see [`Recorder::update_hedge`]); each value holds until the next update. The mean over the run is
/// `sum_i h_i (t_{i+1} - t_i) / (t_last - t_first)`, `t_first` the [`HedgeTrack::start`]
/// of the clock. While both legs are flat, `h = 0` adds nothing to the sum, so those
/// updates may be skipped (the caller does: that is the common case of a pairs trade).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HedgeTrack {
    /// `sum_i h_i (t_{i+1} - t_i)`, quote asset x nanoseconds.
    pub integral: f64,
    /// Start of the clock, [`HedgeTrack::start`] (`Ts::MIN` before).
    pub first: Ts,
    /// Time of the last update that moved time forward (`Ts::MIN` before the start).
    pub since: Ts,
    /// `max h_i`, quote asset.
    pub max: f64,
    /// The value now held, quote asset.
    pub value: f64,
}

impl Default for HedgeTrack {
    fn default() -> Self {
        HedgeTrack { integral: 0.0, first: Ts::MIN, since: Ts::MIN, max: 0.0, value: 0.0 }
    }
}

impl HedgeTrack {
    /// Starts the clock at `now`, with `h = 0` (the Core starts flat).
    pub fn start(&mut self, now: Ts) {
        self.first = now;
        self.since = now;
    }

    /// The step function takes `value` at `now`: the previous value is integrated over
    /// `[since, now]`; a time before `since` adds no time, and so does any time before
    /// the start (`h` is 0 there). A non-finite `value` keeps the previous one.
    #[inline]
    pub fn update(&mut self, now: Ts, value: f64) {
        if now > self.since {
            self.integral += self.value * now.saturating_sub(self.since) as f64;
            self.since = now;
        }
        if value.is_finite() {
            self.value = value;
            self.max = self.max.max(value);
        }
    }

    /// Time covered, seconds.
    pub fn duration_s(&self) -> f64 {
        if self.first == Ts::MIN {
            0.0
        } else {
            self.since.saturating_sub(self.first) as f64 / NS_PER_SEC as f64
        }
    }

    /// Time-weighted mean, quote asset; `None` over no time (or without a start).
    pub fn mean(&self) -> Option<f64> {
        let d = self.since.saturating_sub(self.first);
        (self.first != Ts::MIN && d > 0).then(|| self.integral / d as f64)
    }
}

/// The state at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EndState {
    /// Local time of the last market event: the end of the data, where open trades
    /// end with reason `end`.
    pub data_end_ts: Ts,
    /// Local time of the end of the run (after the drain of messages in flight).
    pub ts: Ts,
    /// Mids `[y, x]` at the end (last known mid for a one-sided book), price units.
    pub mid: [f64; 2],
    /// Positions `[y, x]` at the end, base units.
    pub position: [f64; 2],
}

impl Default for EndState {
    fn default() -> Self {
        EndState { data_end_ts: 0, ts: 0, mid: [f64::NAN; 2], position: [0.0; 2] }
    }
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
    /// Every accepted signal, in order.
    pub signals: Vec<SignalRecord>,
    /// Every change of spread state, targets or kill switch, in order.
    pub decisions: Vec<Decision>,
    /// Unhedged notional over the run.
    pub hedge: HedgeTrack,
    /// The end of the run.
    pub end: EndState,
    /// New orders that reached the matching engine.
    pub orders: u64,
    /// Orders rejected by the matching engine.
    pub rejects: u64,
    /// Cancels confirmed by the matching engine.
    pub cancels: u64,
    /// Market events the Core refused as bad data, per reason.
    pub data_rejects: crate::book::DataRejects,
}

/// Watches the Core after each call of the replay loop and records signals, decisions
/// and the hedge error into a [`Trace`] (see the module docs).
#[derive(Debug, Clone)]
pub struct Recorder {
    signals: u64,
    targets: Targets,
    killed: bool,
    state: SpreadState,
    /// Per leg: the mid at the last decision that changed the targets at a signal or by
    /// a kill (NaN before).
    signal_mid: [f64; 2],
    /// Per leg: the last finite mid seen (NaN before).
    last_mid: [f64; 2],
    /// Per leg: `tick * lot / 2`, so that a position of `q` lots on a book `(bid,
    /// ask)` in ticks is worth `q * (bid + ask) * coef` in the quote asset.
    coef: [f64; 2],
}

impl Recorder {
    /// A recorder for `core`, fresh (no signal yet, flat targets, not killed).
    pub fn new(core: &Core) -> Recorder {
        let coef = |l: usize| {
            let i = core.instrument(l);
            0.5 * i.tick_f64() * i.lot_f64()
        };
        Recorder {
            signals: 0,
            targets: Targets::default(),
            killed: false,
            state: SpreadState::Flat,
            signal_mid: [f64::NAN; 2],
            last_mid: [f64::NAN; 2],
            coef: [coef(LEG_Y), coef(LEG_X)],
        }
    }

    /// After a Core call at local time `now`: [`Self::observe`], then
    /// [`Self::update_hedge`].
    #[inline]
    pub fn after_call(&mut self, core: &Core, now: Ts, trace: &mut Trace) {
        self.observe(core, now, trace);
        self.update_hedge(core, now, trace);
    }

    /// Records a signal and/or a decision if the Core's signal counter, targets or kill
    /// switch moved since the last call. The common path is three comparisons with
    /// the last values; O(1), no allocation.
    #[inline]
    pub fn observe(&mut self, core: &Core, now: Ts, trace: &mut Trace) {
        let signals = core.stats().signals;
        let targets = core.targets();
        let killed = core.risk().killed();
        if signals != self.signals || targets != self.targets || killed != self.killed {
            self.changed(core, now, signals, targets, killed, trace);
        }
    }

    /// Updates the hedge error at `now`. With both legs flat that is one comparison
    /// (`h = 0` adds nothing); otherwise `h` is computed from the two books' tops (a
    /// one-sided book keeps the last value). O(1), no allocation.
    #[inline]
    pub fn update_hedge(&self, core: &Core, now: Ts, trace: &mut Trace) {
        let p = core.portfolio();
        let (qy, qx) = (p.position(LEG_Y).qty, p.position(LEG_X).qty);
        if qy == 0 && qx == 0 {
            if trace.hedge.value != 0.0 {
                trace.hedge.update(now, 0.0);
            }
            return;
        }
        let (Some((by, ay)), Some((bx, ax))) = (core.book(LEG_Y).top(), core.book(LEG_X).top()) else {
            return;
        };
        let vy = qy as f64 * (by + ay) as f64 * self.coef[0];
        let vx = qx as f64 * (bx + ax) as f64 * self.coef[1];
        trace.hedge.update(now, (vy + vx).abs());
    }

    /// The slow path of [`Self::after_call`]: something moved.
    #[cold]
    #[inline(never)]
    fn changed(&mut self, core: &Core, now: Ts, signals: u64, targets: Targets, killed: bool, trace: &mut Trace) {
        let mid = self.mids(core);
        let state = core.spread_state();
        let sig = core.last_signal();
        let (iy, ix) = (core.instrument(LEG_Y), core.instrument(LEG_X));
        let target = [iy.qty_f64(targets.y), ix.qty_f64(targets.x)];
        let signal = signals != self.signals;
        if signal {
            if let Some(s) = sig {
                trace.signals.push(SignalRecord {
                    ts_ns: now,
                    mid_y: mid[0],
                    mid_x: mid[1],
                    beta: s.beta,
                    alpha: s.alpha,
                    e: s.e,
                    q: s.q,
                    z: s.z,
                    state: state.into(),
                    target_y: target[0],
                    target_x: target[1],
                });
            }
        }
        let kill_flip = killed != self.killed;
        if state != self.state || targets != self.targets || kill_flip {
            if targets != self.targets && (signal || kill_flip) {
                self.signal_mid = mid;
            }
            let p = core.portfolio();
            trace.decisions.push(Decision {
                ts: now,
                fills_before: trace.fills.len(),
                signal,
                state: state.into(),
                killed,
                z: sig.map_or(f64::NAN, |s| s.z),
                beta: sig.map_or(f64::NAN, |s| s.beta),
                target,
                mid,
                position: [iy.qty_f64(p.position(LEG_Y).qty), ix.qty_f64(p.position(LEG_X).qty)],
            });
        }
        self.signals = signals;
        self.targets = targets;
        self.killed = killed;
        self.state = state;
    }

    /// Both legs' mids, a one-sided book giving its last known mid; remembers them.
    pub fn mids(&mut self, core: &Core) -> [f64; 2] {
        for l in [LEG_Y, LEG_X] {
            if let Some(m) = core.mid(l) {
                self.last_mid[l] = m;
            }
        }
        self.last_mid
    }

    /// Leg `leg`'s mid at the decision that set its current target (`None` before).
    #[inline]
    pub fn signal_mid(&self, leg: usize) -> Option<f64> {
        self.signal_mid.get(leg).copied().filter(|m| m.is_finite())
    }
}

/// A CSV file could not be written.
#[derive(Debug, Error)]
#[error("writing {path}: {source}")]
pub struct CsvError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: csv::Error,
}

/// Writes `header`, then `rows`, to `path` as CSV. The header is given, not taken from
/// the field names, so that it can carry run data (the symbols of `equity.csv`) and is
/// written for zero rows too; the `*_header_matches_the_record` tests keep each fixed
/// header equal to its row's field names.
pub fn write_csv<T: Serialize, H: AsRef<[u8]>>(
    path: &Path,
    header: &[H],
    rows: impl IntoIterator<Item = T>,
) -> Result<(), CsvError> {
    let err = |source| CsvError { path: path.to_path_buf(), source };
    let mut w = csv::WriterBuilder::new().has_headers(false).from_path(path).map_err(err)?;
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.serialize(r).map_err(err)?;
    }
    w.flush().map_err(|e: io::Error| err(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions `[1, -2]` at mids `[10, 4]`: `h = |10 - 8| = 2` from 0 s to 3 s, then
    /// 6 (mid y 14) from 3 s to 4 s, then flat (0) to 10 s: integral `2*3 + 6*1 = 12`
    /// over 10 s, mean 1.2, max 6.
    #[test]
    fn hedge_error_is_a_time_weighted_step_function() {
        let mut h = HedgeTrack::default();
        assert_eq!(h.mean(), None);
        h.start(0);
        assert_eq!(h.mean(), None);
        h.update(0, 2.0);
        h.update(3 * NS_PER_SEC, 6.0);
        h.update(4 * NS_PER_SEC, 0.0);
        h.update(4 * NS_PER_SEC, f64::NAN);
        h.update(10 * NS_PER_SEC, 0.0);
        assert!((h.integral - 12.0 * NS_PER_SEC as f64).abs() < 1e-3);
        assert_eq!(h.duration_s(), 10.0);
        assert!((h.mean().unwrap() - 1.2).abs() < 1e-12);
        assert_eq!(h.max, 6.0);
        // Time going backwards adds nothing.
        h.update(5 * NS_PER_SEC, 1.0);
        assert_eq!(h.duration_s(), 10.0);
    }

    #[test]
    fn csv_with_rows_and_without() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        write_csv(&p, &["t", "n"], Vec::<UtcRow>::new()).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "t,n\n");
        write_csv(&p, &["t", "n"], &[UtcRow { t: UtcMs(0), n: None }, UtcRow { t: UtcMs(1), n: Some(2.5) }]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "t,n\n1970-01-01T00:00:00.000Z,\n1970-01-01T00:00:00.000Z,2.5\n"
        );
        assert!(write_csv(&dir.path().join("no/such/dir.csv"), &["t"], Vec::<UtcRow>::new()).is_err());
    }

    /// The header constant names the fields as serde writes them.
    #[test]
    fn signal_header_matches_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("signal.csv");
        let row = SignalRecord {
            ts_ns: 1,
            mid_y: 2.0,
            mid_x: 3.0,
            beta: 0.5,
            alpha: 1.0,
            e: 0.1,
            q: 0.2,
            z: 0.3,
            state: Spread::Stopped,
            target_y: 0.0,
            target_x: -0.0,
        };
        assert_eq!(serde_header(row), SIGNAL_HEADER.join(","));
        write_csv(&p, &SIGNAL_HEADER, [row]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(SIGNAL_HEADER.join(",").as_str()));
        assert_eq!(lines.next(), Some("1,2.0,3.0,0.5,1.0,0.1,0.2,0.3,stopped,0.0,-0.0"));
    }

    /// The field names serde gives `row`, as a CSV header line.
    fn serde_header<T: Serialize>(row: T) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        text.lines().next().unwrap().to_string()
    }

    fn fill_record() -> FillRecord {
        FillRecord {
            ts: 1_723_161_601_234_000_000,
            leg: 1,
            order_id: (7 << 32) | 3,
            side: Side::Sell,
            px: 10.5,
            qty: 0.25,
            fee: 0.001,
            maker: true,
            queue_wait_ns: 7,
            mid: Some(10.25),
            position: -0.25,
            target: -1.0,
            signal_mid: None,
            toward_target: true,
        }
    }

    #[test]
    fn fills_csv_names_the_symbol_order_and_liquidity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fills.csv");
        let trace = Trace { symbols: ["YYY".into(), "XXX".into()], fills: vec![fill_record()], ..Trace::default() };
        let row = trace.fill_rows().next().unwrap();
        assert_eq!(serde_header(row), FILLS_HEADER.join(","));
        write_csv(&p, &FILLS_HEADER, trace.fill_rows()).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(FILLS_HEADER.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some("2024-08-09T00:00:01.234Z,1723161601234000000,XXX,30064771075,sell,10.5,0.25,0.001,maker,-0.25,-1.0,10.25,,7,true")
        );
    }

    #[test]
    fn equity_csv_has_the_legs_positions_and_marks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("equity.csv");
        let sample = Sample {
            ts: 1_723_161_601_000_000_000,
            mid: [100.5, f64::NAN],
            beta: 0.5,
            z: 0.0,
            position: [0.5, -1.0],
            target: [0.5, -1.0],
            gross_pnl: 3.0,
            fees: 1.0,
            net_pnl: 2.0,
        };
        let trace = Trace { symbols: ["YYY".into(), "XXX".into()], samples: vec![sample], ..Trace::default() };
        let header = trace.equity_header();
        assert_eq!(header.join(","), "time,ts,net_pnl,gross_pnl,fees,position_YYY,mark_YYY,position_XXX,mark_XXX");
        write_csv(&p, &header, trace.equity_rows()).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text.lines().nth(1),
            Some("2024-08-09T00:00:01.000Z,1723161601000000000,2.0,3.0,1.0,0.5,100.5,-1.0,NaN")
        );
    }

    #[derive(Serialize)]
    struct UtcRow {
        t: UtcMs,
        n: Option<f64>,
    }
}
