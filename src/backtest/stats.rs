//! The backtest report: performance, execution and inventory statistics computed from
//! a [`Trace`], written to `report.json` and printed as a summary.
//!
//! Every statistic is a plain function of the trace, defined in the doc of its
//! [`Report`] field. Conventions:
//!
//! - PnL, fees, drawdown and turnover are in the quote asset (USDT for the built-in
//!   pair), positions in base-asset units of their leg.
//! - Samples are taken at a fixed event-time interval, so an average over samples is a
//!   time average.
//! - Values that are undefined for the trace at hand (a Sharpe ratio without variance, a
//!   maker share without fills, ...) are `None` (`null` in JSON, `n/a` when printed),
//!   never `NaN` or infinity.
//! - Samples with a non-finite value are skipped for the statistics that need that
//!   value (mids and PnL are `NaN` while a book is one-sided); fills with a leg index
//!   out of range or a non-finite price, size or fee are skipped and counted in
//!   [`Report::invalid_fills`].
//!
//! # PnL attribution
//!
//! With fills `i` (side `s_i = +1` buy / `-1` sell, size `q_i`, price `p_i`, the leg's
//! mid `m_i` when the Core received it), target changes `k` (the change `dT_k` of a
//! leg's target, the leg's mid `m_k` then) and the mids `M` at the end, per leg:
//!
//! ```text
//! gross     = sum_i s_i q_i (M - p_i)                      realized + marked at M
//! signal    = sum_k dT_k (M - m_k)                         the targets, traded at the mids
//! execution = gross - signal
//!           = sum_i s_i q_i (m_i - p_i)                    fill edge (spread vs the mid)
//!           + [sum_i s_i q_i (M - m_i) - sum_k dT_k (M - m_k)]
//!                                                          tracking: (position - target)
//!                                                          carried through mid moves
//! net       = signal + execution - fees
//! ```
//!
//! The split of the execution line is exact (an identity); the report computes the
//! fill edge from the fills and the tracking term as `execution - fill edge`.
//!
//! Market making: a Core that quotes both sides around its target (`quote.mode =
//! "market_make"`) also fills orders it does not need; their PnL is part of the
//! execution line. The part that can be told apart without a model of the position
//! the Core would have held otherwise is the edge of the fills that moved the position
//! away from its target ([`FillRecord::toward_target`] false): reported as
//! [`Report::edge_away_from_target`]. The inventory those fills leave is carried in
//! the tracking term, with the rest of the distance to the target.
//!
//! # Round trips of the signal
//!
//! [`round_trips`] cuts the run into pair trades (`trades.csv`), one per entry of the
//! spread state into long or short (see [`RoundTrip`]).

use std::fmt;

use serde::Serialize;

use super::trace::{Decision, FillRecord, Spread, Trace};
use crate::types::{Ts, NS_PER_SEC};
use crate::utc::UtcMs;

/// Trading days in a year, for annualising daily ratios: crypto trades every day.
pub const DAYS_PER_YEAR: f64 = 365.0;

/// The shortest run, in UTC days, whose Sharpe and Sortino ratios are annualised.
pub const MIN_DAYS_TO_ANNUALISE: u64 = 5;

/// Nanoseconds in a day.
const NS_PER_DAY: i64 = 86_400 * NS_PER_SEC;

/// A position is flat when its magnitude is at most this fraction of the largest fill
/// size of its leg. Positions are rebuilt by summing fill sizes in `f64`, which leaves
/// a rounding residue (`0.1 + 0.2 - 0.3 != 0`) of a few ulps of the largest position;
/// a real non-zero position is at least one lot, orders of magnitude above this.
const FLAT_REL_TOL: f64 = 1e-9;

/// The backtest report. See the module docs for units and conventions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Symbols `[y, x]`.
    pub symbols: [String; 2],
    /// Number of samples in the trace.
    pub samples: usize,
    /// Time from the first to the last sample, seconds.
    pub duration_s: f64,
    /// Sampling interval of the equity curve, seconds: [`Trace::sample_interval_ns`]
    /// when positive, else the mean spacing of the samples; `None` if neither is
    /// positive.
    pub sample_interval_s: Option<f64>,
    /// PnL before fees at the last sample with finite PnL, marked at the mids (quote
    /// asset).
    pub pnl_gross: Option<f64>,
    /// Fees paid up to that same sample (quote asset; negative for net rebates).
    pub fees: Option<f64>,
    /// `pnl_gross - fees` at that same sample (quote asset).
    pub pnl_net: Option<f64>,
    /// Signal PnL: a paper portfolio that jumps to the Core's targets at the mids
    /// whenever they change, no costs, marked at the end mids: `sum_legs sum_k dT_k
    /// (M - m_k)` (see the module docs). Every change counts, also one the Core makes
    /// between signals (a kill; a hedge target that follows the other leg's fills).
    /// `None` if not finite (no mid at the end for a leg with a target).
    pub pnl_signal: Option<f64>,
    /// Execution PnL, `pnl_gross - pnl_signal`: what trading the targets through the
    /// book gained (positive) or cost (negative) against trading them at the mids.
    /// Includes the market-making residue (see the module docs).
    pub pnl_execution: Option<f64>,
    /// The fill edge, `sum_i s_i q_i (m_i - p_i)` over the fills with a mid: the spread
    /// earned (maker) or paid (taker) against the mid when the Core received the fill.
    pub execution_fill_edge: f64,
    /// `pnl_execution - execution_fill_edge`: the PnL of the distance between position
    /// and target through the mid moves (lagging, overshooting or leftover inventory).
    pub execution_tracking: Option<f64>,
    /// Fills that moved their leg's position away from its target.
    pub fills_away_from_target: u64,
    /// The fill edge of those fills: the identifiable market-making part of the
    /// execution line (quote asset).
    pub edge_away_from_target: f64,
    /// Implementation shortfall per leg, summed over the round trips (see
    /// [`RoundTrip::shortfall_y`]); positive is a cost.
    pub shortfall: [f64; 2],
    /// Time-weighted mean of the unhedged notional `|q_y m_y + q_x m_x|` (quote asset)
    /// over the run ([`super::trace::HedgeTrack`]: updated after every report and at
    /// the end of every exchange message). `None` for a run over no time.
    pub hedge_error_mean: Option<f64>,
    /// Largest unhedged notional (quote asset).
    pub hedge_error_max: f64,
    /// Accepted Kalman updates ([`Trace::signals`]).
    pub signals: u64,
    /// Entries of the spread state into long or short: the rows of `trades.csv`.
    pub signal_entries: u64,
    /// Those round trips by exit reason.
    pub trades_by_exit: ExitCounts,
    /// UTC days the run touches: the days from the first sample's to the last's,
    /// both included.
    pub days: u64,
    /// Annualised Sharpe ratio of the daily net PnL: with `d_j` the change of net PnL
    /// over UTC day `j` (the last finite sample of the day against the last of the day
    /// before; the first day against the first sample), `mean(d) / sd(d) * sqrt(365)`,
    /// `sd` the sample standard deviation (divisor `n - 1`). No risk-free rate (PnL is
    /// already an excess return on no capital). `None` unless the run spans at least
    /// [`MIN_DAYS_TO_ANNUALISE`] days (a ratio from intraday samples annualises their
    /// autocorrelation, not the strategy), or with zero variance. Shorter runs are
    /// judged by [`Report::trades`].
    pub sharpe: Option<f64>,
    /// Annualised Sortino ratio of the same daily PnL: `mean(d) / dd * sqrt(365)` with
    /// the downside deviation `dd = sqrt(sum_j min(d_j, 0)^2 / n)` (Sortino and Price
    /// 1994, target 0). `None` under the same conditions as [`Report::sharpe`], or
    /// without a losing day.
    pub sortino: Option<f64>,
    /// The signal's round trips as trades: count, mean and spread of their net PnL,
    /// hit rate and holding time (see [`TradeStats`]).
    pub trades: TradeStats,
    /// Largest peak-to-trough drop of net PnL over the samples: `max_j (max_{i <= j}
    /// net_i - net_j)`, quote asset, `>= 0` (0 if PnL never fell).
    pub max_drawdown: f64,
    /// Time of the peak that starts [`Report::max_drawdown`], seconds from the first
    /// sample; `None` if there was no drawdown.
    pub max_drawdown_peak_s: Option<f64>,
    /// Time of the trough that ends [`Report::max_drawdown`], seconds from the first
    /// sample; `None` if there was no drawdown.
    pub max_drawdown_trough_s: Option<f64>,
    /// Return on max drawdown, `pnl_net / max_drawdown`: how many of its worst
    /// losses the run earned. `None` without a drawdown or a net PnL.
    pub return_over_drawdown: Option<f64>,
    /// Traded notional, `sum |px * qty|` over the fills (quote asset).
    pub turnover: f64,
    /// [`Report::turnover`] per leg.
    pub turnover_per_leg: [f64; 2],
    /// Fills counted (one per fill record: a partly filled order can have several).
    pub fills: u64,
    /// [`Report::fills`] per leg.
    pub fills_per_leg: [u64; 2],
    /// New orders that reached the matching engine ([`Trace::orders`]).
    pub orders: u64,
    /// Orders rejected by the matching engine.
    pub rejects: u64,
    /// Cancels confirmed by the matching engine.
    pub cancels: u64,
    /// Pair round trips of the positions: times the pair went from flat (both legs'
    /// positions zero) to not flat and back to flat. Positions are rebuilt from the
    /// fills, starting flat. (The round trips of the signal are
    /// [`Report::signal_entries`].)
    pub round_trips: u64,
    /// Round trips per leg: times that leg's position went from zero to non-zero and
    /// back to zero (a sign flip without passing through zero does not end one).
    pub round_trips_per_leg: [u64; 2],
    /// `fills / orders`; can exceed 1 when orders fill in parts. `None` without orders.
    pub fill_ratio: Option<f64>,
    /// Maker fills / fills, by count. `None` without fills.
    pub maker_share: Option<f64>,
    /// Maker notional / total notional. `None` without turnover.
    pub maker_share_notional: Option<f64>,
    /// Mean of [`FillRecord::queue_wait_ns`] over maker fills, milliseconds. `None`
    /// without maker fills.
    pub mean_queue_wait_ms: Option<f64>,
    /// Mean `|position|` per leg over the samples with a finite position (base units):
    /// a time average, samples being equally spaced.
    pub inventory_mean_abs: [f64; 2],
    /// Largest `|position|` per leg over the samples (base units).
    pub inventory_max_abs: [f64; 2],
    /// Fraction of the samples (with finite positions) at which both legs are flat, in
    /// `[0, 1]`. `None` without such samples.
    pub time_flat: Option<f64>,
    /// Fills skipped: leg index out of range, or non-finite price, size or fee.
    pub invalid_fills: u64,
    /// Market events the Core refused as bad data, per reason ([`Trace::data_rejects`]).
    pub bad_data: crate::book::DataRejects,
}

/// `true` if a fill can be used: leg 0 or 1, finite price, size and fee.
#[inline]
fn fill_ok(f: &FillRecord) -> bool {
    f.leg < 2 && f.px.is_finite() && f.qty.is_finite() && f.fee.is_finite()
}

/// Seconds from `t0` to `t`.
#[inline]
fn secs(t: Ts, t0: Ts) -> f64 {
    (t - t0) as f64 / NS_PER_SEC as f64
}

/// Mean and sample standard deviation (divisor `n - 1`), two-pass; `None` for `n < 2`.
fn mean_sd(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.len() < 2 {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    Some((mean, var.sqrt()))
}

/// A running sum with Neumaier's compensation, so that a position rebuilt from many
/// fills returns to (almost exactly) zero when it should.
#[derive(Debug, Clone, Copy, Default)]
struct CompensatedSum {
    sum: f64,
    comp: f64,
}

impl CompensatedSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// Peak-to-trough analysis of a series: `(drawdown, peak index, trough index)`, the
/// indices `None` when the series never fell.
fn max_drawdown(points: &[(usize, f64)]) -> (f64, Option<(usize, usize)>) {
    let mut best = 0.0;
    let mut at = None;
    let mut peak: Option<(usize, f64)> = None;
    for &(i, v) in points {
        match peak {
            Some((_, p)) if p >= v => {
                if p - v > best {
                    best = p - v;
                    at = peak.map(|(pi, _)| (pi, i));
                }
            }
            _ => peak = Some((i, v)),
        }
    }
    (best, at)
}

/// Why a round trip ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitReason {
    /// The spread went from long or short to flat (z reverted), or straight to the
    /// other side.
    Exit,
    /// The spread was stopped out.
    Stop,
    /// The kill switch tripped and flattened the targets.
    Kill,
    /// The data ended with the spread open.
    End,
}

/// Round trips by exit reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExitCounts {
    /// [`ExitReason::Exit`].
    pub exit: u64,
    /// [`ExitReason::Stop`].
    pub stop: u64,
    /// [`ExitReason::Kill`].
    pub kill: u64,
    /// [`ExitReason::End`].
    pub end: u64,
}

/// Header of `trades.csv`: the field names of [`RoundTrip`], in order.
pub const TRADES_HEADER: [&str; 24] = [
    "side",
    "entry_time",
    "entry_ns",
    "exit_time",
    "exit_ns",
    "exit_reason",
    "entry_z",
    "entry_beta",
    "exit_z",
    "exit_beta",
    "target_y",
    "target_x",
    "reach_y_s",
    "reach_x_s",
    "fills_y",
    "fills_x",
    "fees_y",
    "fees_x",
    "gross_pnl",
    "net_pnl",
    "shortfall_y",
    "shortfall_x",
    "settle_time",
    "settle_ns",
];

/// One pair round trip of the signal: a row of `trades.csv`.
///
/// It opens at the entry decision (spread state into long or short), exits at the
/// decision that leaves that state (reason `exit`, `stop` or `kill`) or at the end of
/// the data (`end`), and settles, which closes its PnL window, at the first moment
/// after the exit at which both legs' positions equal their targets (flat), or at the
/// next entry, or at the end of the run, whichever comes first. So the unwinding after
/// the exit signal belongs to the trade.
///
/// PnL over the window `[entry, settle]`, per leg with position `q`, mid `m`, and the
/// fills `i` inside the window (after the entry decision, up to the settlement):
/// `gross = q(settle) m(settle) - q(entry) m(entry) - sum_i s_i q_i p_i`: the change of
/// the position's value at the mids plus the cash flows. Positions left over from
/// before the entry are valued at the entry mids, so the windows of consecutive trades
/// add up without double counting. `net = gross - fees` of the same fills.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RoundTrip {
    /// Long or short the spread.
    pub side: Spread,
    /// Entry decision time, UTC.
    pub entry_time: UtcMs,
    /// Entry decision time, ns.
    pub entry_ns: Ts,
    /// Exit decision time (or the end of the data), UTC.
    pub exit_time: UtcMs,
    /// Exit time, ns.
    pub exit_ns: Ts,
    /// Why it ended.
    pub exit_reason: ExitReason,
    /// z at the entry decision.
    pub entry_z: f64,
    /// beta at the entry decision.
    pub entry_beta: f64,
    /// z at the exit (the last signal's, for `kill` and `end`).
    pub exit_z: f64,
    /// beta at the exit.
    pub exit_beta: f64,
    /// Y target set at entry, base units.
    pub target_y: f64,
    /// X target set at entry, base units.
    pub target_x: f64,
    /// Seconds from the entry decision until the Y position first equalled its target
    /// (the one in force); empty if it did not before the exit.
    pub reach_y_s: Option<f64>,
    /// The same for X.
    pub reach_x_s: Option<f64>,
    /// Y fills in the window.
    pub fills_y: u64,
    /// X fills in the window.
    pub fills_x: u64,
    /// Y fees in the window, quote asset.
    pub fees_y: f64,
    /// X fees in the window, quote asset.
    pub fees_x: f64,
    /// Gross PnL over the window (see above), quote asset.
    pub gross_pnl: f64,
    /// `gross_pnl - fees_y - fees_x`.
    pub net_pnl: f64,
    /// Implementation shortfall of the Y leg: `sum_i s_i (p_i - m_sig,i) q_i` over
    /// the Y fills in the window, `m_sig,i` the Y mid at the decision that set the
    /// target fill `i` worked towards ([`FillRecord::signal_mid`]: the entry's mid while
    /// entering, the exit's while unwinding). Positive is a cost against trading at
    /// the signal's mid; fills without such a mid are left out.
    pub shortfall_y: f64,
    /// The same for X.
    pub shortfall_x: f64,
    /// End of the PnL window, UTC.
    pub settle_time: UtcMs,
    /// End of the PnL window, ns.
    pub settle_ns: Ts,
}

/// A round trip being built by [`round_trips`].
#[derive(Debug, Clone, Copy)]
struct OpenTrip {
    row: RoundTrip,
    exited: bool,
    /// Positions and mids at entry.
    q0: [f64; 2],
    m0: [f64; 2],
    /// Positions and targets now.
    pos: [f64; 2],
    target: [f64; 2],
    /// `-sum s_i q_i p_i` per leg.
    cash: [f64; 2],
    reach_ts: [Option<Ts>; 2],
}

/// `q * m`, 0 for a flat leg whatever its mark.
#[inline]
fn value(q: f64, m: f64) -> f64 {
    if q == 0.0 {
        0.0
    } else {
        q * m
    }
}

impl OpenTrip {
    fn new(d: &Decision) -> OpenTrip {
        let mut t = OpenTrip {
            row: RoundTrip {
                side: d.state,
                entry_time: UtcMs(d.ts),
                entry_ns: d.ts,
                exit_time: UtcMs(d.ts),
                exit_ns: d.ts,
                exit_reason: ExitReason::End,
                entry_z: d.z,
                entry_beta: d.beta,
                exit_z: f64::NAN,
                exit_beta: f64::NAN,
                target_y: d.target[0],
                target_x: d.target[1],
                reach_y_s: None,
                reach_x_s: None,
                fills_y: 0,
                fills_x: 0,
                fees_y: 0.0,
                fees_x: 0.0,
                gross_pnl: 0.0,
                net_pnl: 0.0,
                shortfall_y: 0.0,
                shortfall_x: 0.0,
                settle_time: UtcMs(d.ts),
                settle_ns: d.ts,
            },
            exited: false,
            q0: d.position,
            m0: d.mid,
            pos: d.position,
            target: d.target,
            cash: [0.0; 2],
            reach_ts: [None; 2],
        };
        t.check_reach(d.ts);
        t
    }

    /// Before the exit: marks the legs whose position equals their target at `ts`.
    fn check_reach(&mut self, ts: Ts) {
        if self.exited {
            return;
        }
        for l in 0..2 {
            if self.reach_ts[l].is_none() && self.pos[l] == self.target[l] {
                self.reach_ts[l] = Some(ts);
            }
        }
    }

    fn exit(&mut self, ts: Ts, z: f64, beta: f64, reason: ExitReason) {
        self.exited = true;
        self.row.exit_time = UtcMs(ts);
        self.row.exit_ns = ts;
        self.row.exit_z = z;
        self.row.exit_beta = beta;
        self.row.exit_reason = reason;
    }

    /// After the exit, both legs at their targets.
    fn settled(&self) -> bool {
        self.exited && self.pos == self.target
    }

    /// Takes a fill inside the window.
    fn fill(&mut self, f: &FillRecord) {
        let s = f.side.sign() as f64;
        let l = f.leg;
        self.cash[l] -= s * f.qty * f.px;
        let shortfall = f.signal_mid.map_or(0.0, |m| s * (f.px - m) * f.qty);
        if l == 0 {
            self.row.fills_y += 1;
            self.row.fees_y += f.fee;
            self.row.shortfall_y += shortfall;
        } else {
            self.row.fills_x += 1;
            self.row.fees_x += f.fee;
            self.row.shortfall_x += shortfall;
        }
        self.pos[l] = f.position;
        self.check_reach(f.ts);
    }

    /// The finished row, its window closing at `ts` with positions `q` at mids `m`.
    fn close(mut self, ts: Ts, q: [f64; 2], m: [f64; 2]) -> RoundTrip {
        let r = &mut self.row;
        r.settle_time = UtcMs(ts);
        r.settle_ns = ts;
        r.gross_pnl = (0..2).map(|l| value(q[l], m[l]) - value(self.q0[l], self.m0[l]) + self.cash[l]).sum();
        r.net_pnl = r.gross_pnl - r.fees_y - r.fees_x;
        let reach = |t: Option<Ts>| t.filter(|&t| t <= r.exit_ns).map(|t| secs(t, r.entry_ns));
        r.reach_y_s = reach(self.reach_ts[0]);
        r.reach_x_s = reach(self.reach_ts[1]);
        self.row
    }
}

/// Feeds `fills` to the open trip, closing it when it settles.
fn trip_fills(fills: &[FillRecord], open: &mut Option<OpenTrip>, mid: &mut [f64; 2], out: &mut Vec<RoundTrip>) {
    for f in fills.iter().filter(|f| fill_ok(f)) {
        if let Some(m) = f.mid.filter(|m| m.is_finite()) {
            mid[f.leg] = m;
        }
        if let Some(t) = open.as_mut() {
            t.fill(f);
            if t.settled() {
                let (q, m) = (t.pos, *mid);
                out.extend(open.take().map(|t| t.close(f.ts, q, m)));
            }
        }
    }
}

/// The round trips of the signal in a trace, in order (see [`RoundTrip`] for the
/// definitions). A pure function of [`Trace::decisions`], [`Trace::fills`],
/// [`Trace::signals`] (the last one gives z and beta at the end) and [`Trace::end`].
pub fn round_trips(trace: &Trace) -> Vec<RoundTrip> {
    let fills = &trace.fills;
    let mut out = Vec::new();
    let mut open: Option<OpenTrip> = None;
    let mut mid = [f64::NAN; 2];
    let (mut prev_state, mut prev_killed) = (Spread::Flat, false);
    let mut next = 0;
    for d in &trace.decisions {
        let upto = d.fills_before.clamp(next, fills.len());
        trip_fills(&fills[next..upto], &mut open, &mut mid, &mut out);
        next = upto;
        for (m, &dm) in mid.iter_mut().zip(&d.mid) {
            if dm.is_finite() {
                *m = dm;
            }
        }
        let killed_now = d.killed && !prev_killed;
        let left = prev_state.is_open() && d.state != prev_state;
        if let Some(t) = open.as_mut() {
            t.pos = d.position;
            t.target = d.target;
            if !t.exited && (left || killed_now) {
                let reason = if killed_now {
                    ExitReason::Kill
                } else if d.state == Spread::Stopped {
                    ExitReason::Stop
                } else {
                    ExitReason::Exit
                };
                t.exit(d.ts, d.z, d.beta, reason);
            }
            t.check_reach(d.ts);
        }
        if d.state.is_open() && d.state != prev_state && !d.killed {
            if let Some(mut t) = open.take() {
                if !t.exited {
                    t.exit(d.ts, d.z, d.beta, ExitReason::Exit);
                }
                out.push(t.close(d.ts, d.position, mid));
            }
            open = Some(OpenTrip::new(d));
        } else if open.as_ref().is_some_and(OpenTrip::settled) {
            out.extend(open.take().map(|t| t.close(d.ts, d.position, mid)));
        }
        prev_state = d.state;
        prev_killed = d.killed;
    }
    trip_fills(&fills[next.min(fills.len())..], &mut open, &mut mid, &mut out);
    if let Some(mut t) = open {
        if !t.exited {
            let (z, beta) = trace.signals.last().map_or((f64::NAN, f64::NAN), |s| (s.z, s.beta));
            t.exit(trace.end.data_end_ts.max(t.row.entry_ns), z, beta, ExitReason::End);
        }
        let end = trace.end;
        let m = [0, 1].map(|l| if end.mid[l].is_finite() { end.mid[l] } else { mid[l] });
        out.push(t.close(end.ts.max(t.row.entry_ns), end.position, m));
    }
    out
}

/// Signal PnL of the decisions' target path, marked at `end_mid`: `sum_legs sum_k
/// (T_k - T_{k-1}) (M - m_k)`, `T_{-1} = 0` (the Core starts flat). `None` if not
/// finite.
pub fn signal_pnl(decisions: &[Decision], end_mid: [f64; 2]) -> Option<f64> {
    let mut prev = [0.0; 2];
    let mut pnl = 0.0;
    for d in decisions {
        for l in 0..2 {
            let dt = d.target[l] - prev[l];
            if dt != 0.0 {
                pnl += dt * (end_mid[l] - d.mid[l]);
            }
        }
        prev = d.target;
    }
    pnl.is_finite().then_some(pnl)
}

/// The change of net PnL over each UTC day the samples touch: the last finite net PnL
/// of day `j` minus that of the last earlier day with one (the first finite sample for
/// the first day). Days without a finite sample give no change.
fn daily_changes(samples: impl IntoIterator<Item = (Ts, f64)>) -> Vec<f64> {
    let mut out = Vec::new();
    let mut finite = samples.into_iter().filter(|s| s.1.is_finite());
    let Some((first_ts, first)) = finite.next() else {
        return out;
    };
    let mut prev_close = first;
    let mut day = first_ts.div_euclid(NS_PER_DAY);
    let mut close = first;
    for (ts, v) in finite {
        let d = ts.div_euclid(NS_PER_DAY);
        if d != day {
            out.push(close - prev_close);
            prev_close = close;
            day = d;
        }
        close = v;
    }
    out.push(close - prev_close);
    out
}

/// The UTC days from the first to the last time, both counted.
fn days_spanned(first: Option<Ts>, last: Option<Ts>) -> u64 {
    match (first, last) {
        (Some(a), Some(b)) => (b.div_euclid(NS_PER_DAY) - a.div_euclid(NS_PER_DAY)) as u64 + 1,
        _ => 0,
    }
}

/// What [`curve_stats`] finds in an equity curve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CurveStats {
    /// UTC days the curve spans, as [`Report::days`].
    pub days: u64,
    /// Daily Sharpe ratio annualised by `sqrt(365)`, as [`Report::sharpe`]: only for
    /// curves of [`MIN_DAYS_TO_ANNUALISE`] days or more.
    pub sharpe: Option<f64>,
    /// Daily Sortino ratio, as [`Report::sortino`].
    pub sortino: Option<f64>,
    /// Largest fall from a running peak, as [`Report::max_drawdown`].
    pub max_drawdown: f64,
}

/// The statistics of an equity curve of `(time, net PnL)` points in time order (for
/// example a walk-forward's stitched out-of-sample curve) by the rules of [`Report`].
/// Non-finite values are skipped.
pub fn curve_stats(curve: &[(Ts, f64)]) -> CurveStats {
    let days = days_spanned(curve.first().map(|p| p.0), curve.last().map(|p| p.0));
    let (sharpe, sortino) =
        if days >= MIN_DAYS_TO_ANNUALISE { annualised(&daily_changes(curve.iter().copied())) } else { (None, None) };
    let finite: Vec<(usize, f64)> = curve.iter().map(|p| p.1).enumerate().filter(|p| p.1.is_finite()).collect();
    CurveStats { days, sharpe, sortino, max_drawdown: max_drawdown(&finite).0 }
}

/// `(Sharpe, Sortino)` of daily changes, annualised by `sqrt(365)`; see
/// [`Report::sharpe`] and [`Report::sortino`].
fn annualised(daily: &[f64]) -> (Option<f64>, Option<f64>) {
    let Some((mean, sd)) = mean_sd(daily) else {
        return (None, None);
    };
    let k = DAYS_PER_YEAR.sqrt();
    let sharpe = (sd > 0.0).then(|| mean / sd * k).filter(|x| x.is_finite());
    let downside = (daily.iter().map(|d| d.min(0.0).powi(2)).sum::<f64>() / daily.len() as f64).sqrt();
    let sortino = (downside > 0.0).then(|| mean / downside * k).filter(|x| x.is_finite());
    (sharpe, sortino)
}

/// The signal's round trips ([`round_trips`]) as a trade list: what a run too short to
/// annualise is judged by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TradeStats {
    /// Round trips with a finite net PnL.
    pub count: u64,
    /// Mean net PnL per trade, [`RoundTrip::net_pnl`] (quote asset).
    pub mean: Option<f64>,
    /// Sample standard deviation of the trades' net PnL (divisor `n - 1`).
    pub sd: Option<f64>,
    /// `mean / (sd / sqrt(n))`: the t-statistic of the mean against 0. With
    /// independent trades it is Student-t with `n - 1` degrees of freedom; above about
    /// 2 the mean is unlikely to be luck.
    pub t_stat: Option<f64>,
    /// Fraction of trades with a positive net PnL.
    pub hit_rate: Option<f64>,
    /// Mean net PnL of the winning trades.
    pub avg_win: Option<f64>,
    /// Mean net PnL of the losing trades (negative).
    pub avg_loss: Option<f64>,
    /// Mean holding time, entry decision to exit decision, seconds.
    pub mean_holding_s: Option<f64>,
}

impl TradeStats {
    /// The statistics of `trips`, skipping any with a non-finite net PnL.
    pub fn of(trips: &[RoundTrip]) -> TradeStats {
        let pnl: Vec<f64> = trips.iter().map(|t| t.net_pnl).filter(|x| x.is_finite()).collect();
        let n = pnl.len();
        let mean_of = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        let wins: Vec<f64> = pnl.iter().copied().filter(|&x| x > 0.0).collect();
        let losses: Vec<f64> = pnl.iter().copied().filter(|&x| x < 0.0).collect();
        let ms = mean_sd(&pnl);
        let holding: Vec<f64> = trips.iter().map(|t| secs(t.exit_ns, t.entry_ns)).collect();
        TradeStats {
            count: n as u64,
            mean: mean_of(&pnl),
            sd: ms.map(|(_, sd)| sd),
            t_stat: ms.and_then(|(m, sd)| (sd > 0.0).then(|| m / (sd / (n as f64).sqrt()))),
            hit_rate: (n > 0).then(|| wins.len() as f64 / n as f64),
            avg_win: mean_of(&wins),
            avg_loss: mean_of(&losses),
            mean_holding_s: mean_of(&holding),
        }
    }
}

impl Report {
    /// Computes the report of a trace. Never panics: empty traces, `NaN` samples and
    /// malformed fills give `None`s and counts, as documented on each field.
    pub fn from_trace(trace: &Trace) -> Report {
        let samples = &trace.samples;
        let t0 = samples.first().map_or(0, |s| s.ts);
        let duration_s = samples.last().map_or(0.0, |s| secs(s.ts, t0));

        // Sampling interval and annualisation.
        let sample_interval_s = if trace.sample_interval_ns > 0 {
            Some(trace.sample_interval_ns as f64 / NS_PER_SEC as f64)
        } else if samples.len() >= 2 && duration_s > 0.0 {
            Some(duration_s / (samples.len() - 1) as f64)
        } else {
            None
        };

        // PnL at the last sample with a finite PnL.
        let last_pnl =
            samples.iter().rev().find(|s| s.gross_pnl.is_finite() && s.net_pnl.is_finite() && s.fees.is_finite());
        let net: Vec<(usize, f64)> =
            samples.iter().enumerate().filter(|(_, s)| s.net_pnl.is_finite()).map(|(i, s)| (i, s.net_pnl)).collect();

        // Sharpe and Sortino over daily changes, for runs long enough to annualise.
        let days = days_spanned(samples.first().map(|s| s.ts), samples.last().map(|s| s.ts));
        let daily = daily_changes(samples.iter().map(|s| (s.ts, s.net_pnl)));
        let (sharpe, sortino) = if days >= MIN_DAYS_TO_ANNUALISE { annualised(&daily) } else { (None, None) };

        let (max_dd, dd_at) = max_drawdown(&net);

        // Fills: turnover, maker share, queue wait, positions and round trips.
        let mut turnover_per_leg = [0.0; 2];
        let mut fills_per_leg = [0u64; 2];
        let mut maker_fills = 0u64;
        let mut maker_notional = 0.0;
        let mut queue_wait_ns = 0.0;
        let mut invalid_fills = 0u64;
        let mut max_fill = [0.0f64; 2];
        for f in &trace.fills {
            if !fill_ok(f) {
                invalid_fills += 1;
                continue;
            }
            let notional = (f.px * f.qty).abs();
            turnover_per_leg[f.leg] += notional;
            fills_per_leg[f.leg] += 1;
            max_fill[f.leg] = max_fill[f.leg].max(f.qty.abs());
            if f.maker {
                maker_fills += 1;
                maker_notional += notional;
                queue_wait_ns += f.queue_wait_ns as f64;
            }
        }
        let eps = [max_fill[0] * FLAT_REL_TOL, max_fill[1] * FLAT_REL_TOL];
        let flat = |leg: usize, q: f64| q.abs() <= eps[leg];

        let mut pos = [CompensatedSum::default(); 2];
        let mut round_trips_per_leg = [0u64; 2];
        let mut round_trips = 0u64;
        for f in trace.fills.iter().filter(|f| fill_ok(f)) {
            let before = [pos[0].value(), pos[1].value()];
            pos[f.leg].add(f.side.sign() as f64 * f.qty);
            let after = [pos[0].value(), pos[1].value()];
            if !flat(f.leg, before[f.leg]) && flat(f.leg, after[f.leg]) {
                round_trips_per_leg[f.leg] += 1;
            }
            let pair_flat = |q: [f64; 2]| flat(0, q[0]) && flat(1, q[1]);
            if !pair_flat(before) && pair_flat(after) {
                round_trips += 1;
            }
        }
        let fills = fills_per_leg[0] + fills_per_leg[1];
        let turnover = turnover_per_leg[0] + turnover_per_leg[1];

        // Inventory over the samples.
        let mut inv_sum = [0.0; 2];
        let mut inv_n = [0usize; 2];
        let mut inv_max = [0.0f64; 2];
        let mut flat_samples = 0usize;
        let mut pos_samples = 0usize;
        for s in samples {
            for leg in 0..2 {
                let q = s.position[leg];
                if q.is_finite() {
                    inv_sum[leg] += q.abs();
                    inv_n[leg] += 1;
                    inv_max[leg] = inv_max[leg].max(q.abs());
                }
            }
            if s.position.iter().all(|q| q.is_finite()) {
                pos_samples += 1;
                if flat(0, s.position[0]) && flat(1, s.position[1]) {
                    flat_samples += 1;
                }
            }
        }
        let inventory_mean_abs = [0, 1].map(|leg| if inv_n[leg] > 0 { inv_sum[leg] / inv_n[leg] as f64 } else { 0.0 });

        // Attribution.
        let pnl_gross = last_pnl.map(|s| s.gross_pnl);
        let pnl_signal = signal_pnl(&trace.decisions, trace.end.mid);
        let pnl_execution = match (pnl_gross, pnl_signal) {
            (Some(g), Some(s)) => Some(g - s),
            _ => None,
        };
        let mut fill_edge = 0.0;
        let mut edge_away = 0.0;
        let mut fills_away = 0u64;
        for f in trace.fills.iter().filter(|f| fill_ok(f)) {
            let edge = f.mid.map_or(0.0, |m| f.side.sign() as f64 * (m - f.px) * f.qty);
            fill_edge += edge;
            if !f.toward_target {
                fills_away += 1;
                edge_away += edge;
            }
        }
        let trips = self::round_trips(trace);
        let mut by_exit = ExitCounts::default();
        let mut shortfall = [0.0; 2];
        for t in &trips {
            match t.exit_reason {
                ExitReason::Exit => by_exit.exit += 1,
                ExitReason::Stop => by_exit.stop += 1,
                ExitReason::Kill => by_exit.kill += 1,
                ExitReason::End => by_exit.end += 1,
            }
            shortfall[0] += t.shortfall_y;
            shortfall[1] += t.shortfall_x;
        }

        let ratio = |num: f64, den: f64| if den > 0.0 { Some(num / den) } else { None };
        Report {
            symbols: trace.symbols.clone(),
            samples: samples.len(),
            duration_s,
            sample_interval_s,
            pnl_gross,
            fees: last_pnl.map(|s| s.fees),
            pnl_net: last_pnl.map(|s| s.net_pnl),
            pnl_signal,
            pnl_execution,
            execution_fill_edge: fill_edge,
            execution_tracking: pnl_execution.map(|e| e - fill_edge),
            fills_away_from_target: fills_away,
            edge_away_from_target: edge_away,
            shortfall,
            hedge_error_mean: trace.hedge.mean(),
            hedge_error_max: trace.hedge.max,
            signals: trace.signals.len() as u64,
            signal_entries: trips.len() as u64,
            trades_by_exit: by_exit,
            days,
            sharpe,
            sortino,
            trades: TradeStats::of(&trips),
            max_drawdown: max_dd,
            return_over_drawdown: match last_pnl {
                Some(s) if max_dd > 0.0 => Some(s.net_pnl / max_dd),
                _ => None,
            },
            max_drawdown_peak_s: dd_at.map(|(p, _)| secs(samples[p].ts, t0)),
            max_drawdown_trough_s: dd_at.map(|(_, t)| secs(samples[t].ts, t0)),
            turnover,
            turnover_per_leg,
            fills,
            fills_per_leg,
            orders: trace.orders,
            rejects: trace.rejects,
            cancels: trace.cancels,
            round_trips,
            round_trips_per_leg,
            fill_ratio: ratio(fills as f64, trace.orders as f64),
            maker_share: ratio(maker_fills as f64, fills as f64),
            maker_share_notional: ratio(maker_notional, turnover),
            mean_queue_wait_ms: ratio(queue_wait_ns / 1e6, maker_fills as f64),
            inventory_mean_abs,
            inventory_max_abs: inv_max,
            time_flat: ratio(flat_samples as f64, pos_samples as f64),
            invalid_fills,
            bad_data: trace.data_rejects,
        }
    }
}

/// `value` with `prec` decimals, or `n/a`.
fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.prec$}"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [y, x] = &self.symbols;
        let interval = opt(self.sample_interval_s, 3);
        writeln!(
            f,
            "period          {:>14.1} s   ({:.2} h, {} samples every {} s)",
            self.duration_s,
            self.duration_s / 3600.0,
            self.samples,
            interval
        )?;
        writeln!(f, "pnl gross       {:>14}   (quote asset, marked at the mids)", opt(self.pnl_gross, 2))?;
        writeln!(f, "fees            {:>14}", opt(self.fees, 2))?;
        writeln!(f, "pnl net         {:>14}", opt(self.pnl_net, 2))?;
        writeln!(
            f,
            "pnl signal      {:>14}   (the targets traded at the mids when they change, no costs)",
            opt(self.pnl_signal, 2)
        )?;
        writeln!(
            f,
            "execution       {:>14}   (gross - signal) = fill edge {:.2} + tracking {}",
            opt(self.pnl_execution, 2),
            self.execution_fill_edge,
            opt(self.execution_tracking, 2)
        )?;
        writeln!(
            f,
            "away fills      {:>14}   fills away from the target, edge {:.2} (market making, in execution)",
            self.fills_away_from_target, self.edge_away_from_target
        )?;
        writeln!(
            f,
            "shortfall       {:>14.2}   vs the signal's mids ({y} {:.2}, {x} {:.2}; + is a cost)",
            self.shortfall[0] + self.shortfall[1],
            self.shortfall[0],
            self.shortfall[1]
        )?;
        writeln!(
            f,
            "hedge error     {:>14}   |q_y m_y + q_x m_x| time-weighted mean, max {:.2} (quote asset)",
            opt(self.hedge_error_mean, 2),
            self.hedge_error_max
        )?;
        let e = &self.trades_by_exit;
        writeln!(
            f,
            "signal trades   {:>14}   round trips of the spread from {} signals, ended by exit {}, stop {}, kill {}, end {}",
            self.signal_entries, self.signals, e.exit, e.stop, e.kill, e.end
        )?;
        if self.days >= MIN_DAYS_TO_ANNUALISE {
            writeln!(
                f,
                "sharpe          {:>14}   sortino {} (daily net PnL over {} UTC days, x sqrt(365))",
                opt(self.sharpe, 2),
                opt(self.sortino, 2),
                self.days
            )?;
        } else {
            writeln!(
                f,
                "sharpe          {:>14}   a run of {} UTC day(s) is too short to annualise (needs {}): see the trades",
                "n/a", self.days, MIN_DAYS_TO_ANNUALISE
            )?;
        }
        let t = &self.trades;
        writeln!(
            f,
            "trades          {:>14}   net per trade mean {}, sd {}, t {}; hit rate {}, avg win {}, avg loss {}, held {} s",
            t.count,
            opt(t.mean, 3),
            opt(t.sd, 3),
            opt(t.t_stat, 2),
            opt(t.hit_rate, 3),
            opt(t.avg_win, 3),
            opt(t.avg_loss, 3),
            opt(t.mean_holding_s, 1)
        )?;
        match (self.max_drawdown_peak_s, self.max_drawdown_trough_s) {
            (Some(p), Some(t)) => {
                writeln!(f, "max drawdown    {:>14.2}   (peak at {p:.1} s, trough at {t:.1} s)", self.max_drawdown)?
            }
            _ => writeln!(f, "max drawdown    {:>14.2}", self.max_drawdown)?,
        }
        writeln!(f, "return / max dd {:>14}   (pnl net / max drawdown)", opt(self.return_over_drawdown, 2))?;
        writeln!(
            f,
            "turnover        {:>14.2}   ({y} {:.2}, {x} {:.2})",
            self.turnover, self.turnover_per_leg[0], self.turnover_per_leg[1]
        )?;
        writeln!(f, "orders          {:>14}   rejects {}, cancels {}", self.orders, self.rejects, self.cancels)?;
        writeln!(
            f,
            "fills           {:>14}   ({y} {}, {x} {}), fill ratio {}",
            self.fills,
            self.fills_per_leg[0],
            self.fills_per_leg[1],
            opt(self.fill_ratio, 3)
        )?;
        writeln!(
            f,
            "maker share     {:>14}   by count; {} by notional; mean queue wait {} ms",
            opt(self.maker_share, 3),
            opt(self.maker_share_notional, 3),
            opt(self.mean_queue_wait_ms, 2)
        )?;
        writeln!(
            f,
            "round trips     {:>14}   positions flat to flat ({y} {}, {x} {})",
            self.round_trips, self.round_trips_per_leg[0], self.round_trips_per_leg[1]
        )?;
        for (leg, sym) in self.symbols.iter().enumerate() {
            writeln!(
                f,
                "inventory       {:>14.6}   {sym}: mean |position|, max {:.6} (base units)",
                self.inventory_mean_abs[leg], self.inventory_max_abs[leg]
            )?;
        }
        write!(f, "time flat       {:>14}   (fraction of samples with both legs flat)", opt(self.time_flat, 3))?;
        if self.invalid_fills > 0 {
            write!(f, "\ninvalid fills   {:>14}   (skipped)", self.invalid_fills)?;
        }
        let b = &self.bad_data;
        write!(
            f,
            "\nbad data        {:>14}   events refused: price {}, size {}, band {}, clock jump {}",
            b.total(),
            b.price,
            b.size,
            b.band,
            b.clock_jump
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::backtest::trace::Sample;
    use crate::types::Side;

    fn sample(ts: Ts, net: f64, position: [f64; 2]) -> Sample {
        Sample {
            ts,
            mid: [100.0, 50.0],
            beta: 0.5,
            z: 0.0,
            position,
            target: position,
            gross_pnl: net + 1.0,
            fees: 1.0,
            net_pnl: net,
        }
    }

    fn fill(leg: usize, side: Side, px: f64, qty: f64, maker: bool, wait_ms: i64) -> FillRecord {
        FillRecord {
            ts: 0,
            leg,
            order_id: 1,
            side,
            px,
            qty,
            fee: 0.01,
            maker,
            queue_wait_ns: wait_ms * 1_000_000,
            mid: None,
            position: 0.0,
            target: 0.0,
            signal_mid: None,
            toward_target: true,
        }
    }

    fn trace(samples: Vec<Sample>, fills: Vec<FillRecord>, orders: u64) -> Trace {
        Trace {
            symbols: ["YYY".into(), "XXX".into()],
            entry_z: 2.0,
            exit_z: 0.5,
            sample_interval_ns: NS_PER_SEC,
            samples,
            fills,
            orders,
            rejects: 1,
            cancels: 2,
            ..Trace::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    /// Net PnL 0, 10, 4, 8, 2 at 1 s intervals: drawdown from the peak 10 at 1 s to the
    /// trough 2 at 4 s, 8; return over drawdown 2 / 8. Four seconds are one UTC day, too
    /// short to annualise.
    #[test]
    fn five_sample_equity_drawdown_and_no_intraday_sharpe() {
        let nets = [0.0, 10.0, 4.0, 8.0, 2.0];
        let s = nets.iter().enumerate().map(|(i, &n)| sample(i as i64 * 1_000_000_000, n, [0.0; 2])).collect();
        let r = Report::from_trace(&trace(s, vec![], 0));
        assert_eq!((r.days, r.sharpe, r.sortino), (1, None, None));
        assert!(r.to_string().contains("too short to annualise"), "{r}");
        assert_eq!(r.sample_interval_s, Some(1.0));
        assert_eq!(r.max_drawdown, 8.0);
        assert_eq!(r.max_drawdown_peak_s, Some(1.0));
        assert_eq!(r.max_drawdown_trough_s, Some(4.0));
        assert_eq!(r.return_over_drawdown, Some(0.25));
        assert_eq!(r.pnl_net, Some(2.0));
        assert_eq!(r.pnl_gross, Some(3.0));
        assert_eq!(r.fees, Some(1.0));
        assert_eq!(r.duration_s, 4.0);
        assert_eq!(r.time_flat, Some(1.0));
    }

    /// Six UTC days, hourly samples. Each day's close (the last sample of the day) is
    /// 0, 10, 4, 8, 2, 5 after starting the first day at 0: daily changes 0, 10, -6, 4,
    /// -6, 3. Mean 5/6; squared deviations sum to 192.833..., sample variance 38.5667;
    /// Sharpe (5/6) / 6.21021 * sqrt(365) = 2.56365. Downside: sqrt((36 + 36) / 6) =
    /// 3.46410, Sortino (5/6) / 3.46410 * sqrt(365) = 4.59594.
    #[test]
    fn six_days_give_daily_sharpe_and_sortino() {
        let closes = [0.0, 10.0, 4.0, 8.0, 2.0, 5.0];
        let day0 = 20_000 * NS_PER_DAY; // 2024-10-04, a UTC midnight
        let hour = 3_600 * NS_PER_SEC;
        let mut s = Vec::new();
        for (d, &c) in closes.iter().enumerate() {
            for h in 0..24 {
                // Intraday noise that the daily figures must not see.
                let net = if h == 23 { c } else { c + if h % 2 == 0 { 50.0 } else { -50.0 } };
                let net = if d == 0 && h == 0 { 0.0 } else { net };
                s.push(sample(day0 + d as i64 * NS_PER_DAY + h * hour, net, [0.0; 2]));
            }
        }
        let r = Report::from_trace(&trace(s, vec![], 0));
        assert_eq!(r.days, 6);
        let d = [0.0, 10.0, -6.0, 4.0, -6.0, 3.0];
        let m = d.iter().sum::<f64>() / 6.0;
        let var = d.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 5.0;
        assert!(close(r.sharpe.unwrap(), m / var.sqrt() * 365f64.sqrt()));
        assert!((r.sharpe.unwrap() - 2.56365).abs() < 1e-5, "{:?}", r.sharpe);
        assert!((r.sortino.unwrap() - 4.59594).abs() < 1e-5, "{:?}", r.sortino);
        assert!(r.to_string().contains("over 6 UTC days"), "{r}");
    }

    /// Trades with net PnL 3, -1, 2, -2, 4 held 10, 20, 30, 40, 50 s: mean 1.2, sample
    /// variance 26.8 / 4 = 6.7, hit rate 3/5, average win 3, average loss -1.5, mean
    /// holding 30 s.
    #[test]
    fn trade_statistics_by_hand() {
        let trips: Vec<RoundTrip> = [3.0, -1.0, 2.0, -2.0, 4.0]
            .iter()
            .enumerate()
            .map(|(i, &pnl)| {
                let entry = i as i64 * 100 * NS_PER_SEC;
                let exit = entry + (i as i64 + 1) * 10 * NS_PER_SEC;
                RoundTrip {
                    side: Spread::Long,
                    entry_time: UtcMs(entry),
                    entry_ns: entry,
                    exit_time: UtcMs(exit),
                    exit_ns: exit,
                    exit_reason: ExitReason::Exit,
                    entry_z: 0.0,
                    entry_beta: 0.0,
                    exit_z: 0.0,
                    exit_beta: 0.0,
                    target_y: 0.0,
                    target_x: 0.0,
                    reach_y_s: None,
                    reach_x_s: None,
                    fills_y: 0,
                    fills_x: 0,
                    fees_y: 0.0,
                    fees_x: 0.0,
                    gross_pnl: pnl,
                    net_pnl: pnl,
                    shortfall_y: 0.0,
                    shortfall_x: 0.0,
                    settle_time: UtcMs(exit),
                    settle_ns: exit,
                }
            })
            .collect();
        let t = TradeStats::of(&trips);
        // Deviations from 1.2: 1.8, -2.2, 0.8, -3.2, 2.8; squares sum 26.8; var 6.7.
        let sd = 6.7f64.sqrt();
        assert_eq!(t.count, 5);
        assert!(close(t.mean.unwrap(), 1.2) && close(t.sd.unwrap(), sd));
        assert!(close(t.t_stat.unwrap(), 1.2 / (sd / 5f64.sqrt())));
        assert_eq!(
            (t.hit_rate, t.avg_win, t.avg_loss, t.mean_holding_s),
            (Some(0.6), Some(3.0), Some(-1.5), Some(30.0))
        );
        assert_eq!(TradeStats::of(&[]), TradeStats::default());
    }

    /// Two pair round trips. Fills, in order:
    /// 1. y buy 1 @ 100, maker, 2 ms     -> y 1,   x 0    (pair opens)
    /// 2. x sell 2 @ 50, taker           -> y 1,   x -2
    /// 3. y sell 1 @ 101, maker, 4 ms    -> y 0,   x -2   (y round trip 1)
    /// 4. x buy 2 @ 49, maker, 6 ms      -> y 0,   x 0    (x round trip 1, pair 1)
    /// 5. y buy 0.1 @ 10, taker
    /// 6. y buy 0.2 @ 10, taker
    /// 7. y sell 0.3 @ 10, taker         -> y 0 up to f64 rounding (0.1 + 0.2 - 0.3 is
    ///    5.6e-17 in f64): y round trip 2, pair 2.
    ///
    /// Turnover 100 + 100 + 101 + 98 + 1 + 2 + 3 = 405; maker 3 of 7 fills, notional
    /// 299 / 405; mean queue wait (2 + 4 + 6) / 3 = 4 ms; 14 orders -> fill ratio 0.5.
    /// Samples: positions [0,0], [1,-2], [1,-2], [0,-2], [0,0]: mean |y| 2/5, |x| 6/5,
    /// max 1 and 2, flat in 2 of 5 samples.
    #[test]
    fn fills_round_trips_and_inventory() {
        let fills = vec![
            fill(0, Side::Buy, 100.0, 1.0, true, 2),
            fill(1, Side::Sell, 50.0, 2.0, false, 0),
            fill(0, Side::Sell, 101.0, 1.0, true, 4),
            fill(1, Side::Buy, 49.0, 2.0, true, 6),
            fill(0, Side::Buy, 10.0, 0.1, false, 0),
            fill(0, Side::Buy, 10.0, 0.2, false, 0),
            fill(0, Side::Sell, 10.0, 0.3, false, 0),
        ];
        let pos = [[0.0, 0.0], [1.0, -2.0], [1.0, -2.0], [0.0, -2.0], [0.0, 0.0]];
        let s = pos.iter().enumerate().map(|(i, &p)| sample(i as i64 * 1_000_000_000, 0.0, p)).collect();
        let r = Report::from_trace(&trace(s, fills, 14));
        assert_eq!(r.fills, 7);
        assert_eq!(r.fills_per_leg, [5, 2]);
        assert!(close(r.turnover, 405.0));
        assert!(close(r.turnover_per_leg[0], 207.0));
        assert!(close(r.turnover_per_leg[1], 198.0));
        assert_eq!(r.fill_ratio, Some(0.5));
        assert!(close(r.maker_share.unwrap(), 3.0 / 7.0));
        assert!(close(r.maker_share_notional.unwrap(), 299.0 / 405.0));
        assert!(close(r.mean_queue_wait_ms.unwrap(), 4.0));
        assert_eq!(r.round_trips, 2);
        assert_eq!(r.round_trips_per_leg, [2, 1]);
        assert!(close(r.inventory_mean_abs[0], 0.4));
        assert!(close(r.inventory_mean_abs[1], 1.2));
        assert_eq!(r.inventory_max_abs, [1.0, 2.0]);
        assert_eq!(r.time_flat, Some(0.4));
        assert_eq!((r.orders, r.rejects, r.cancels, r.invalid_fills), (14, 1, 2, 0));
        // PnL is flat at 0: no variance, no Sharpe, no drawdown.
        assert_eq!(r.sharpe, None);
        assert_eq!(r.max_drawdown, 0.0);
        assert_eq!(r.max_drawdown_peak_s, None);
    }

    /// A sign flip (long to short in one fill) does not end a round trip.
    #[test]
    fn sign_flip_is_not_a_round_trip() {
        let fills = vec![
            fill(0, Side::Buy, 10.0, 1.0, false, 0),
            fill(0, Side::Sell, 10.0, 2.0, false, 0),
            fill(0, Side::Buy, 10.0, 1.0, false, 0),
        ];
        let r = Report::from_trace(&trace(vec![], fills, 3));
        assert_eq!(r.round_trips_per_leg, [1, 0]);
        assert_eq!(r.round_trips, 1);
    }

    #[test]
    fn empty_and_degenerate_traces_give_none_not_nan() {
        let r = Report::from_trace(&Trace::default());
        assert_eq!(r.samples, 0);
        assert_eq!((r.sharpe, r.sortino, r.sample_interval_s, r.days), (None, None, None, 0));
        assert_eq!(
            (r.pnl_net, r.fill_ratio, r.maker_share, r.mean_queue_wait_ms, r.time_flat),
            (None, None, None, None, None)
        );
        assert_eq!(r.max_drawdown, 0.0);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"sharpe\":null"));
        assert!(!r.to_string().contains("NaN"));

        // One sample, and two samples (a single change has no sample variance).
        for n in [1, 2] {
            let s = (0..n).map(|i| sample(i * 1_000_000_000, i as f64, [0.0; 2])).collect();
            assert_eq!(Report::from_trace(&trace(s, vec![], 0)).sharpe, None);
        }
        // Constant PnL: zero variance.
        let s = (0..10).map(|i| sample(i * 1_000_000_000, 5.0, [0.0; 2])).collect();
        assert_eq!(Report::from_trace(&trace(s, vec![], 0)).sharpe, None);
    }

    /// NaN PnL samples are skipped: no change is taken across them, the PnL comes from
    /// the last finite sample, bad fills are counted, and nothing prints as NaN.
    #[test]
    fn nan_samples_and_bad_fills_are_skipped() {
        let nets = [f64::NAN, 0.0, 2.0, f64::NAN, 10.0, 6.0, 7.0, f64::NAN];
        let mut s: Vec<Sample> =
            nets.iter().enumerate().map(|(i, &n)| sample(i as i64 * 1_000_000_000, n, [0.0; 2])).collect();
        s[2].position[1] = f64::NAN;
        let fills = vec![
            fill(0, Side::Buy, f64::NAN, 1.0, true, 1),
            fill(2, Side::Buy, 1.0, 1.0, true, 1),
            fill(1, Side::Buy, 5.0, 2.0, true, 3),
        ];
        let r = Report::from_trace(&trace(s, fills, 2));
        assert_eq!(r.invalid_fills, 2);
        assert_eq!(r.fills, 1);
        assert_eq!(r.turnover, 10.0);
        assert_eq!(r.mean_queue_wait_ms, Some(3.0));
        assert_eq!(r.pnl_net, Some(7.0));
        // Peak 10 at 4 s, trough 6 at 5 s.
        assert_eq!((r.max_drawdown, r.max_drawdown_peak_s, r.max_drawdown_trough_s), (4.0, Some(4.0), Some(5.0)));
        // Sample 2 has a NaN x position: 7 samples count for time flat, 7 for x.
        assert_eq!(r.time_flat, Some(1.0));
        assert!(!r.to_string().contains("NaN"));
        assert!(!serde_json::to_string(&r).unwrap().contains("NaN"));
    }

    /// Without a configured interval, the mean sample spacing is used.
    #[test]
    fn interval_falls_back_to_sample_spacing() {
        let s = [0.0, 1.0, 3.0].iter().enumerate().map(|(i, &n)| sample(i as i64 * 500_000_000, n, [0.0; 2])).collect();
        let mut t = trace(s, vec![], 0);
        t.sample_interval_ns = 0;
        let r = Report::from_trace(&t);
        assert_eq!(r.sample_interval_s, Some(0.5));
    }

    #[test]
    fn display_is_aligned_and_complete() {
        let s = (0..5).map(|i| sample(i * 1_000_000_000, (i % 3) as f64, [0.0; 2])).collect();
        let r = Report::from_trace(&trace(s, vec![fill(0, Side::Buy, 100.0, 1.0, true, 2)], 2));
        let text = r.to_string();
        for key in [
            "pnl gross",
            "fees",
            "pnl net",
            "sharpe",
            "max drawdown",
            "turnover",
            "fills",
            "maker share",
            "round trips",
            "inventory",
            "time flat",
        ] {
            assert!(text.contains(key), "{key} missing:\n{text}");
        }
        // Labels take 16 columns and values are right-aligned to column 30.
        for line in text.lines() {
            let b = line.as_bytes();
            assert!(b.len() >= 30 && b[15] == b' ' && b[29] != b' ', "{line}");
        }
        println!("{text}");
    }

    /// A decision at `ts` s.
    fn decision(
        ts: i64,
        fills_before: usize,
        state: Spread,
        target: [f64; 2],
        mid: [f64; 2],
        position: [f64; 2],
    ) -> Decision {
        Decision {
            ts: ts * NS_PER_SEC,
            fills_before,
            signal: true,
            state,
            killed: false,
            z: ts as f64,
            beta: 2.0,
            target,
            mid,
            position,
        }
    }

    /// A fill at `ts` s with fee 0.1.
    #[allow(clippy::too_many_arguments)]
    fn leg_fill(
        ts: i64,
        leg: usize,
        side: Side,
        px: f64,
        qty: f64,
        mid: f64,
        position: f64,
        target: f64,
        signal_mid: f64,
    ) -> FillRecord {
        FillRecord {
            ts: ts * NS_PER_SEC,
            order_id: 1,
            fee: 0.1,
            mid: Some(mid),
            position,
            target,
            signal_mid: Some(signal_mid),
            toward_target: true,
            ..fill(leg, side, px, qty, true, 0)
        }
    }

    /// Three trades of the signal over hand-made decisions and fills (times in s, y leg
    /// first, x second; every fill pays 0.1):
    ///
    /// | t | event | positions |
    /// |---|---|---|
    /// | 10 | long: targets [1, -2], mids [100, 50] | |
    /// | 11 | y buy 1 @ 99 (mid 100.5) | [1, 0] |
    /// | 12 | x sell 2 @ 51 (mid 50.5) | [1, -2] |
    /// | 20 | flat (exit): targets 0, mids [104, 51] | |
    /// | 21 | y sell 1 @ 104.5 (mid 104) | [0, -2] |
    /// | 23 | x buy 2 @ 51.5 (mid 51): settled | [0, 0] |
    /// | 30 | short: [-1, 2], mids [103, 52] | |
    /// | 31 | y sell 1 @ 103 (mid 103) | [-1, 0] |
    /// | 40 | stopped: targets 0, mids [106, 53] | |
    /// | 41 | y buy 1 @ 106 (mid 106): settled | [0, 0] |
    /// | 45 | y buy 0.5 @ 104 (mid 104.2), away from target 0 | [0.5, 0] |
    /// | 47 | y sell 0.5 @ 104.4 (mid 104.2) | [0, 0] |
    /// | 50 | stopped -> flat, no target change | |
    /// | 60 | long: [1, -2], mids [100, 50] | |
    /// | 70 / 71 | end of data / of the run, mids [101, 49] | [0, 0] |
    fn three_trades() -> Trace {
        use Side::{Buy, Sell};
        let fills = vec![
            leg_fill(11, 0, Buy, 99.0, 1.0, 100.5, 1.0, 1.0, 100.0),
            leg_fill(12, 1, Sell, 51.0, 2.0, 50.5, -2.0, -2.0, 50.0),
            leg_fill(21, 0, Sell, 104.5, 1.0, 104.0, 0.0, 0.0, 104.0),
            leg_fill(23, 1, Buy, 51.5, 2.0, 51.0, 0.0, 0.0, 51.0),
            leg_fill(31, 0, Sell, 103.0, 1.0, 103.0, -1.0, -1.0, 103.0),
            leg_fill(41, 0, Buy, 106.0, 1.0, 106.0, 0.0, 0.0, 106.0),
            FillRecord { toward_target: false, ..leg_fill(45, 0, Buy, 104.0, 0.5, 104.2, 0.5, 0.0, 106.0) },
            leg_fill(47, 0, Sell, 104.4, 0.5, 104.2, 0.0, 0.0, 106.0),
        ];
        let decisions = vec![
            decision(10, 0, Spread::Long, [1.0, -2.0], [100.0, 50.0], [0.0, 0.0]),
            decision(20, 2, Spread::Flat, [0.0, 0.0], [104.0, 51.0], [1.0, -2.0]),
            decision(30, 4, Spread::Short, [-1.0, 2.0], [103.0, 52.0], [0.0, 0.0]),
            decision(40, 5, Spread::Stopped, [0.0, 0.0], [106.0, 53.0], [-1.0, 0.0]),
            decision(50, 8, Spread::Flat, [0.0, 0.0], [104.2, 52.0], [0.0, 0.0]),
            decision(60, 8, Spread::Long, [1.0, -2.0], [100.0, 50.0], [0.0, 0.0]),
        ];
        let last_signal = crate::backtest::trace::SignalRecord {
            ts_ns: 69 * NS_PER_SEC,
            mid_y: 101.0,
            mid_x: 49.0,
            beta: 2.1,
            alpha: 0.0,
            e: -1.0,
            q: 1.0,
            z: -1.0,
            state: Spread::Long,
            target_y: 1.0,
            target_x: -2.0,
        };
        // Realized gross: y cash -99 + 104.5 + 103 - 106 - 52 + 52.2 = 2.7, x cash
        // 102 - 103 = -1, flat at the end: 1.7. Fees 8 x 0.1.
        let end = Sample { ts: 71 * NS_PER_SEC, gross_pnl: 1.7, fees: 0.8, net_pnl: 0.9, ..sample(0, 0.0, [0.0; 2]) };
        Trace {
            samples: vec![sample(0, 0.0, [0.0; 2]), end],
            fills,
            decisions,
            signals: vec![last_signal],
            end: crate::backtest::trace::EndState {
                data_end_ts: 70 * NS_PER_SEC,
                ts: 71 * NS_PER_SEC,
                mid: [101.0, 49.0],
                position: [0.0, 0.0],
            },
            ..trace(vec![], vec![], 8)
        }
    }

    /// Round trips of [`three_trades`]:
    /// 1. long 10 s -> exit 20 s, settled 23 s. Reach: y at 11 s (1 s), x at 12 s (2 s).
    ///    Cash y -99 + 104.5 = 5.5, x 102 - 103 = -1: gross 4.5, fees 0.4, net 4.1.
    ///    Shortfall y: +1 (99 - 100) 1 - 1 (104.5 - 104) 1 = -1.5; x: -1 (51 - 50) 2 +
    ///    1 (51.5 - 51) 2 = -1.
    /// 2. short 30 s -> stop 40 s, settled 41 s. y reaches -1 after 1 s, x never.
    ///    Cash y 103 - 106 = -3, fees 0.2: net -3.2; shortfall 0 (fills at the mids).
    /// 3. long 60 s -> end at 70 s (z -1, beta 2.1 of the last signal), window to 71 s:
    ///    no fills, PnL 0, targets never reached.
    ///
    /// The fills at 45 s and 47 s are outside every window.
    #[test]
    fn round_trips_of_a_hand_made_trace() {
        let t = round_trips(&three_trades());
        assert_eq!(t.len(), 3);
        let (a, b, c) = (&t[0], &t[1], &t[2]);
        assert_eq!((a.side, a.exit_reason), (Spread::Long, ExitReason::Exit));
        assert_eq!((a.entry_ns, a.exit_ns, a.settle_ns), (10 * NS_PER_SEC, 20 * NS_PER_SEC, 23 * NS_PER_SEC));
        assert_eq!((a.entry_z, a.exit_z, a.entry_beta), (10.0, 20.0, 2.0));
        assert_eq!((a.target_y, a.target_x), (1.0, -2.0));
        assert_eq!((a.reach_y_s, a.reach_x_s), (Some(1.0), Some(2.0)));
        assert_eq!((a.fills_y, a.fills_x), (2, 2));
        assert!(close(a.fees_y, 0.2) && close(a.fees_x, 0.2));
        assert!(close(a.gross_pnl, 4.5) && close(a.net_pnl, 4.1), "{a:?}");
        assert!(close(a.shortfall_y, -1.5) && close(a.shortfall_x, -1.0), "{a:?}");

        assert_eq!((b.side, b.exit_reason), (Spread::Short, ExitReason::Stop));
        assert_eq!((b.exit_ns, b.settle_ns), (40 * NS_PER_SEC, 41 * NS_PER_SEC));
        assert_eq!((b.reach_y_s, b.reach_x_s), (Some(1.0), None));
        assert_eq!((b.fills_y, b.fills_x), (2, 0));
        assert!(close(b.gross_pnl, -3.0) && close(b.net_pnl, -3.2), "{b:?}");
        assert_eq!((b.shortfall_y, b.shortfall_x), (0.0, 0.0));

        assert_eq!((c.side, c.exit_reason), (Spread::Long, ExitReason::End));
        assert_eq!((c.exit_ns, c.settle_ns), (70 * NS_PER_SEC, 71 * NS_PER_SEC));
        assert_eq!((c.exit_z, c.exit_beta), (-1.0, 2.1));
        assert_eq!((c.reach_y_s, c.reach_x_s, c.fills_y, c.gross_pnl), (None, None, 0, 0.0));
        assert_eq!(c.entry_time.to_string(), "1970-01-01T00:01:00.000Z");
    }

    /// The paper portfolio of [`three_trades`], marked at [101, 49]:
    /// `sum dT (M - m)` = 3 (long at [100, 50]) - 1 (flat at [104, 51]) - 4 (short at
    /// [103, 52]) + 3 (stopped at [106, 53]) + 3 (long at [100, 50]) = 4; by trades:
    /// +4 - 2, -3 + 2, +1 + 2. Gross 1.7: execution -2.3. Fill edge `s (m - p) q`:
    /// 1.5 + 1 + 0.5 - 1 + 0 + 0 + 0.1 + 0.1 = 2.2, tracking -4.5; one fill away from
    /// its target, edge 0.1.
    #[test]
    fn attribution_of_a_hand_made_trace() {
        let tr = three_trades();
        assert!(close(signal_pnl(&tr.decisions, tr.end.mid).unwrap(), 4.0));
        let r = Report::from_trace(&tr);
        assert!(close(r.pnl_signal.unwrap(), 4.0), "{r:?}");
        assert!(close(r.pnl_execution.unwrap(), -2.3));
        assert!(close(r.execution_fill_edge, 2.2));
        assert!(close(r.execution_tracking.unwrap(), -4.5));
        assert_eq!(r.fills_away_from_target, 1);
        assert!(close(r.edge_away_from_target, 0.1));
        assert!(close(r.shortfall[0], -1.5) && close(r.shortfall[1], -1.0));
        assert_eq!((r.signals, r.signal_entries), (1, 3));
        assert_eq!(r.trades_by_exit, ExitCounts { exit: 1, stop: 1, kill: 0, end: 1 });
        // The tracking term by its own formula, `sum s q (M - m_i) - signal`:
        // 0.5 + 3 + 3 - 4 + 2 - 5 - 1.6 + 1.6 - 4.
        assert!(close(r.execution_tracking.unwrap(), 0.5 + 3.0 + 3.0 - 4.0 + 2.0 - 5.0 - 1.6 + 1.6 - 4.0));
        // No mid at the end for a leg with a target: no signal PnL.
        assert_eq!(signal_pnl(&tr.decisions, [f64::NAN, 49.0]), None);
        let text = r.to_string();
        for key in ["pnl signal", "execution", "away fills", "shortfall", "hedge error", "signal trades"] {
            assert!(text.contains(key), "{key} missing:\n{text}");
        }
    }

    /// Long at 0 s, straight to short at 5 s (an exit and an entry), kill at 6 s with
    /// the y leg still short 1 at 100: the kill ends the trade, whose window runs to the
    /// end of the run (never flat), valued at the end mid 90: gross `-1 * 90 + 100 =
    /// 10`. A trace without fills or decisions has no trades.
    #[test]
    fn flip_and_kill() {
        let mut tr = trace(vec![], vec![leg_fill(5, 0, Side::Sell, 100.0, 1.0, 100.0, -1.0, -1.0, 100.0)], 1);
        tr.decisions = vec![
            decision(0, 0, Spread::Long, [1.0, -2.0], [100.0, 50.0], [0.0, 0.0]),
            decision(5, 0, Spread::Short, [-1.0, 2.0], [100.0, 50.0], [0.0, 0.0]),
            Decision { killed: true, ..decision(6, 1, Spread::Flat, [0.0, 0.0], [100.0, 50.0], [-1.0, 0.0]) },
        ];
        tr.end = crate::backtest::trace::EndState {
            data_end_ts: 9 * NS_PER_SEC,
            ts: 10 * NS_PER_SEC,
            mid: [90.0, 50.0],
            position: [-1.0, 0.0],
        };
        let t = round_trips(&tr);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].exit_reason, t[0].exit_ns, t[0].settle_ns, t[0].gross_pnl),
            (ExitReason::Exit, 5 * NS_PER_SEC, 5 * NS_PER_SEC, 0.0)
        );
        assert_eq!((t[1].side, t[1].exit_reason, t[1].exit_ns), (Spread::Short, ExitReason::Kill, 6 * NS_PER_SEC));
        assert_eq!(t[1].settle_ns, 10 * NS_PER_SEC);
        assert!(close(t[1].gross_pnl, 10.0), "{:?}", t[1]);
        assert_eq!(t[1].fills_y, 1);
        assert!(round_trips(&Trace::default()).is_empty());
    }

    /// `TRADES_HEADER` names the fields of [`RoundTrip`] as serde writes them.
    #[test]
    fn trades_header_matches_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trades.csv");
        crate::backtest::trace::write_csv(&p, &TRADES_HEADER, round_trips(&three_trades())).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], TRADES_HEADER.join(","));
        assert_eq!(lines.len(), 4);
        assert!(
            lines[1]
                .starts_with("long,1970-01-01T00:00:10.000Z,10000000000,1970-01-01T00:00:20.000Z,20000000000,exit,"),
            "{}",
            lines[1]
        );
        assert!(lines[3].contains(",end,") && lines[3].contains(",,,0,0,"), "{}", lines[3]);
    }

    proptest! {
        /// Drawdown invariants: `0 <= dd <= max - min`, zero for a non-decreasing
        /// series, and the Sharpe ratio is finite or `None`.
        #[test]
        fn drawdown_bounds(nets in proptest::collection::vec(-1e6f64..1e6, 0..60)) {
            let s: Vec<Sample> =
                nets.iter().enumerate().map(|(i, &n)| sample(i as i64 * 1_000_000_000, n, [0.0; 2])).collect();
            let r = Report::from_trace(&trace(s, vec![], 0));
            let (lo, hi) = nets.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
            prop_assert!(r.max_drawdown >= 0.0);
            if !nets.is_empty() {
                prop_assert!(r.max_drawdown <= hi - lo);
            }
            prop_assert!(r.sharpe.is_none_or(f64::is_finite));
            let mut sorted = nets.clone();
            sorted.sort_by(f64::total_cmp);
            let s: Vec<Sample> =
                sorted.iter().enumerate().map(|(i, &n)| sample(i as i64 * 1_000_000_000, n, [0.0; 2])).collect();
            prop_assert_eq!(Report::from_trace(&trace(s, vec![], 0)).max_drawdown, 0.0);
        }
    }
}
