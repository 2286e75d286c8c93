//! Walk-forward evaluation of a parameter grid: on each training window, the grid's
//! best point by a metric; then that point, out of sample, on the test window that
//! follows.
//!
//! # Folds
//!
//! With the data's local times spanning `[t0, t1]`, fold `k` trains on
//! `[t0 + k step, t0 + k step + train)` and tests on the `test` that follows it, for
//! every `k` whose test window starts before `t1` (the last test window may be cut
//! short by the end of the data; [`Fold::partial`] says so). `step` defaults to `test`,
//! so the test windows tile the data after the first training window.
//!
//! # In sample
//!
//! Every point replays the training window alone ([`TimeWindow::cut`]: the books
//! opened from the data before it), and the point with the best finite value of the
//! metric wins; ties go to the lower point number. A point whose metric is undefined
//! on the window (a Sharpe on a run too short to annualise, a trade mean with no
//! trades) cannot win; a fold where no point has one is skipped, with the reason.
//!
//! # Out of sample, as a live run
//!
//! The chosen point replays training and test window together, from the start of the
//! training window to the end of the test window: at the start of the test window its
//! Kalman filter, its spread state and its positions are those of a live engine that
//! has run the point since the training window began, not a cold start. The test
//! window's figures are the changes over it: net PnL and fees are the run's at its end
//! less those of the last sample before the test window; fills, and the signal's round
//! trips, are those from the test window's start on; the drawdown is that of the test
//! part of the equity curve.
//!
//! The stitched out-of-sample equity curve joins the test windows' curves, each
//! starting where the previous ended, and its statistics ([`curve_stats`]) are the
//! walk-forward's totals. The test windows do not overlap when `step >= test`; with a
//! shorter step they do, and the totals count the overlap more than once (a warning
//! says so).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use thiserror::Error;

use crate::backtest::stats::{curve_stats, round_trips, CurveStats, Report};
use crate::backtest::window::TimeWindow;
use crate::backtest::{Backtest, BacktestError};
use crate::core::{Core, CoreError};
use crate::event::MarketEvent;
use crate::sweep::{lower_is_better, metric_cells, Point, METRICS};
use crate::types::{Instrument, Ts, NS_PER_SEC};

/// Window lengths of a walk-forward, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Training window.
    pub train: Ts,
    /// Test window.
    pub test: Ts,
    /// Shift from one fold to the next.
    pub step: Ts,
}

/// Why a walk-forward cannot run.
#[derive(Debug, Error)]
pub enum WalkError {
    /// A window length that is not positive.
    #[error("--{0} must be a positive duration")]
    Length(&'static str),
    /// The data is shorter than one training window plus the start of a test window.
    #[error("the data spans {span_s:.0} s: too short for a {train_s:.0} s training window followed by a test window")]
    TooShort {
        /// Span of the data, seconds.
        span_s: f64,
        /// Training window, seconds.
        train_s: f64,
    },
    /// The metric is not a numeric column of the sweep's CSV.
    #[error("--metric {0}: not a metric; one of {list}", list = METRICS[..METRICS.len() - 2].join(", "))]
    Metric(String),
    /// The grid has no points.
    #[error("the grid has no points")]
    NoPoints,
    /// A point's Core or backtest could not be built.
    #[error("point {point}: {source}")]
    Core {
        /// Point number.
        point: usize,
        /// Why.
        #[source]
        source: Box<CoreError>,
    },
    /// A point's backtest settings are invalid.
    #[error("point {point}: {source}")]
    Backtest {
        /// Point number.
        point: usize,
        /// Why.
        #[source]
        source: Box<BacktestError>,
    },
    /// A point's configuration could not be turned into Core parameters.
    #[error("point {point}: {source}")]
    Params {
        /// Point number.
        point: usize,
        /// Why.
        #[source]
        source: Box<crate::config::ConfigError>,
    },
    /// Stopped by the user (SIGINT).
    #[error("interrupted")]
    Interrupted,
}

/// One fold's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fold {
    /// Fold number, from 0.
    pub index: usize,
    /// The training window.
    pub train: TimeWindow,
    /// The test window, which starts where the training window ends.
    pub test: TimeWindow,
    /// True if the data ends before the test window does.
    pub partial: bool,
}

impl Fold {
    /// The start of the training window.
    pub fn train_from(&self) -> Ts {
        self.train.from.unwrap_or(0)
    }

    /// The start of the test window.
    pub fn test_from(&self) -> Ts {
        self.test.from.unwrap_or(0)
    }

    /// The end of the test window.
    pub fn test_to(&self) -> Ts {
        self.test.to.unwrap_or(0)
    }
}

/// The folds over data whose local times span `[first, last]` (see the module doc).
pub fn folds(first: Ts, last: Ts, spec: &Spec) -> Result<Vec<Fold>, WalkError> {
    for (name, v) in [("train", spec.train), ("test", spec.test), ("step", spec.step)] {
        if v <= 0 {
            return Err(WalkError::Length(name));
        }
    }
    let too_short =
        || WalkError::TooShort { span_s: (last - first) as f64 / NS_PER_SEC as f64, train_s: spec.train as f64 / 1e9 };
    let mut out = Vec::new();
    for index in 0.. {
        let start = (index as i64).checked_mul(spec.step).and_then(|o| first.checked_add(o));
        let (Some(start), Some(test_from)) = (start, start.and_then(|s| s.checked_add(spec.train))) else { break };
        if test_from > last {
            break;
        }
        let test_to = test_from.saturating_add(spec.test);
        out.push(Fold {
            index,
            train: TimeWindow { from: Some(start), to: Some(test_from) },
            test: TimeWindow { from: Some(test_from), to: Some(test_to) },
            partial: test_to > last.saturating_add(1),
        });
    }
    if out.is_empty() {
        return Err(too_short());
    }
    Ok(out)
}

/// A fold's result.
#[derive(Debug, Clone)]
pub struct FoldResult {
    /// The fold.
    pub fold: Fold,
    /// The chosen point's number in the grid, or `None` for a skipped fold.
    pub chosen: Option<usize>,
    /// The chosen point's `key=value` label, or why the fold was skipped.
    pub label: String,
    /// The chosen point's metric on the training window.
    pub in_sample_metric: Option<f64>,
    /// The chosen point's report on the training window.
    pub in_sample: Option<Report>,
    /// The test window's figures.
    pub out_of_sample: Option<OutOfSample>,
}

/// The figures of a test window (the changes over it; see the module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutOfSample {
    /// Net PnL over the window, quote asset.
    pub pnl_net: f64,
    /// Fees over the window.
    pub fees: f64,
    /// Fills in the window.
    pub fills: u64,
    /// The signal's round trips entered in the window.
    pub trades: u64,
    /// Net PnL of those round trips.
    pub trades_pnl: f64,
    /// The largest fall of the window's equity from its running peak.
    pub max_drawdown: f64,
    /// The window's equity curve, `(local time, net PnL since the window began)`.
    pub equity: Vec<(Ts, f64)>,
}

/// The whole walk-forward.
#[derive(Debug, Clone)]
pub struct WalkForward {
    /// Each fold, in order.
    pub folds: Vec<FoldResult>,
    /// The stitched out-of-sample equity curve.
    pub equity: Vec<(Ts, f64)>,
    /// Its statistics.
    pub totals: CurveStats,
    /// Out-of-sample net PnL, summed over the folds.
    pub pnl_net: f64,
    /// Out-of-sample fees.
    pub fees: f64,
    /// Out-of-sample fills.
    pub fills: u64,
    /// Out-of-sample round trips of the signal.
    pub trades: u64,
}

/// The index in [`METRICS`] of `metric` (also accepting `net_pnl` for `pnl_net`), if
/// it is a numeric column.
pub fn metric_index(metric: &str) -> Result<usize, WalkError> {
    let name = if metric == "net_pnl" { "pnl_net" } else { metric };
    METRICS[..METRICS.len() - 2].iter().position(|m| *m == name).ok_or_else(|| WalkError::Metric(metric.into()))
}

/// The replay of `point` over `events` (already cut to a window).
fn replay(
    point: &Point,
    instruments: &[Instrument],
    events: &[MarketEvent],
    stop: &AtomicBool,
) -> Result<Report, WalkError> {
    Ok(Report::from_trace(&run_point(point, instruments, events, stop)?.trace))
}

fn run_point(
    point: &Point,
    instruments: &[Instrument],
    events: &[MarketEvent],
    stop: &AtomicBool,
) -> Result<crate::backtest::Outcome, WalkError> {
    let p = point.index;
    let params =
        point.config.core_params().map_err(|source| WalkError::Params { point: p, source: Box::new(source) })?;
    // The session id (the high half of order ids) as `replay` sets it.
    let session_id = events.first().map_or(0, |e| (e.local_ts / NS_PER_SEC) as u32);
    let core = Core::new(&params, instruments, session_id)
        .map_err(|source| WalkError::Core { point: p, source: Box::new(source) })?;
    let bt = Backtest::new(&point.config.backtest, &params, point.config.fees)
        .map_err(|source| WalkError::Backtest { point: p, source: Box::new(source) })?;
    let o = bt.run_with_progress(core, instruments, events, |_, _| {
        if stop.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if stop.load(Ordering::Relaxed) {
        return Err(WalkError::Interrupted);
    }
    Ok(o)
}

/// The test window's figures from the trace of a run from the start of the training
/// window to the end of the test window.
fn out_of_sample(outcome: &crate::backtest::Outcome, test_from: Ts) -> OutOfSample {
    let trace = &outcome.trace;
    let before = trace.samples.iter().rev().find(|s| s.ts < test_from && s.net_pnl.is_finite() && s.fees.is_finite());
    let (net0, fees0) = before.map_or((0.0, 0.0), |s| (s.net_pnl, s.fees));
    let report = Report::from_trace(trace);
    let end_net = report.pnl_net.unwrap_or(net0);
    let end_fees = report.fees.unwrap_or(fees0);
    let mut equity = vec![(test_from, 0.0)];
    equity.extend(
        trace.samples.iter().filter(|s| s.ts >= test_from && s.net_pnl.is_finite()).map(|s| (s.ts, s.net_pnl - net0)),
    );
    let end_ts = trace.samples.last().map_or(test_from, |s| s.ts.max(test_from));
    if equity.last().is_some_and(|&(t, v)| t < end_ts || v != end_net - net0) {
        equity.push((end_ts, end_net - net0));
    }
    let trips: Vec<_> = round_trips(trace).into_iter().filter(|t| t.entry_ns >= test_from).collect();
    OutOfSample {
        pnl_net: end_net - net0,
        fees: end_fees - fees0,
        fills: trace.fills.iter().filter(|f| f.ts >= test_from).count() as u64,
        trades: trips.len() as u64,
        trades_pnl: trips.iter().map(|t| t.net_pnl).filter(|v| v.is_finite()).sum(),
        max_drawdown: curve_stats(&equity).max_drawdown,
        equity,
    }
}

/// Runs the walk-forward of `points` over `events` (in receive order, with their
/// instrument table), choosing by `metric`; `progress(fold, folds)` is called as each
/// fold starts. `stop` (SIGINT) ends it with [`WalkError::Interrupted`].
pub fn run(
    points: &[Point],
    instruments: &[Instrument],
    events: &[MarketEvent],
    spec: &Spec,
    metric: &str,
    stop: &AtomicBool,
    mut progress: impl FnMut(usize, usize),
) -> Result<WalkForward, WalkError> {
    let col = metric_index(metric)?;
    let name = METRICS[col];
    if points.is_empty() {
        return Err(WalkError::NoPoints);
    }
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Err(WalkError::TooShort { span_s: 0.0, train_s: spec.train as f64 / 1e9 });
    };
    let folds = folds(first.local_ts, last.local_ts, spec)?;
    let cut = |w: TimeWindow| -> Vec<MarketEvent> { w.cut(events.iter().copied(), instruments.len()).collect() };
    let mut results = Vec::with_capacity(folds.len());
    for fold in &folds {
        progress(fold.index, folds.len());
        let train = cut(fold.train);
        let scored: Vec<Result<(Option<f64>, Report), WalkError>> = points
            .par_iter()
            .map(|p| {
                let r = replay(p, instruments, &train, stop)?;
                let v = metric_cells(&r, String::new())[col].parse::<f64>().ok().filter(|v| v.is_finite());
                Ok((v, r))
            })
            .collect();
        let mut best: Option<(usize, f64, Report)> = None;
        for (i, s) in scored.into_iter().enumerate() {
            let (v, r) = s?;
            let Some(v) = v else { continue };
            let better = match &best {
                None => true,
                Some((_, b, _)) if lower_is_better(name) => v < *b,
                Some((_, b, _)) => v > *b,
            };
            if better {
                best = Some((i, v, r));
            }
        }
        let Some((i, v, in_sample)) = best else {
            results.push(FoldResult {
                fold: *fold,
                chosen: None,
                label: format!("skipped: no point has a {name} on the training window"),
                in_sample_metric: None,
                in_sample: None,
                out_of_sample: None,
            });
            continue;
        };
        let both = cut(TimeWindow { from: fold.train.from, to: fold.test.to });
        let oos = out_of_sample(&run_point(&points[i], instruments, &both, stop)?, fold.test_from());
        results.push(FoldResult {
            fold: *fold,
            chosen: Some(points[i].index),
            label: points[i].label(),
            in_sample_metric: Some(v),
            in_sample: Some(in_sample),
            out_of_sample: Some(oos),
        });
    }
    Ok(stitch(results))
}

/// The totals and the stitched curve of the folds' results.
fn stitch(folds: Vec<FoldResult>) -> WalkForward {
    let mut equity: Vec<(Ts, f64)> = Vec::new();
    let (mut pnl_net, mut fees, mut fills, mut trades) = (0.0, 0.0, 0, 0);
    for f in &folds {
        let Some(o) = &f.out_of_sample else { continue };
        let offset = pnl_net;
        equity.extend(o.equity.iter().map(|&(t, v)| (t, offset + v)));
        pnl_net += o.pnl_net;
        fees += o.fees;
        fills += o.fills;
        trades += o.trades;
    }
    let totals = curve_stats(&equity);
    WalkForward { folds, equity, totals, pnl_net, fees, fills, trades }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Ts = 3600 * NS_PER_SEC;

    #[test]
    fn folds_tile_the_data_after_the_first_training_window() {
        let spec = Spec { train: 6 * H, test: H, step: H };
        let f = folds(0, 9 * H - 1, &spec).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].train, TimeWindow { from: Some(0), to: Some(6 * H) });
        assert_eq!(f[0].test, TimeWindow { from: Some(6 * H), to: Some(7 * H) });
        assert_eq!(f[2].test, TimeWindow { from: Some(8 * H), to: Some(9 * H) });
        assert!(f.iter().all(|x| !x.partial));
        // Half an hour more: a fourth, partial fold.
        let f = folds(0, 9 * H + H / 2, &spec).unwrap();
        assert_eq!(f.len(), 4);
        assert!(f[3].partial);
    }

    #[test]
    fn too_short_data_and_bad_lengths_are_errors() {
        let spec = Spec { train: 6 * H, test: H, step: H };
        assert!(matches!(folds(0, 5 * H, &spec), Err(WalkError::TooShort { .. })));
        assert!(matches!(folds(0, 9 * H, &Spec { step: 0, ..spec }), Err(WalkError::Length("step"))));
        assert!(matches!(folds(0, 9 * H, &Spec { train: -1, ..spec }), Err(WalkError::Length("train"))));
    }

    #[test]
    fn metrics_by_name() {
        assert_eq!(metric_index("pnl_net").unwrap(), 0);
        assert_eq!(metric_index("net_pnl").unwrap(), 0);
        assert!(metric_index("sharpe").is_ok());
        assert!(matches!(metric_index("digest"), Err(WalkError::Metric(_))));
        assert!(matches!(metric_index("pnl"), Err(WalkError::Metric(_))));
    }
}
