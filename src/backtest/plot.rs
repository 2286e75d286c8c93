//! SVG plots of a backtest [`Trace`], of `statarb kalman`'s output and of an equity
//! curve, drawn with `plotters` (SVG backend only).
//!
//! [`write_plots`] writes four files:
//!
//! - `equity.svg`: net, gross and signal PnL (the signal PnL of
//!   [`super::stats::signal_pnl`] marked at each sample's mids); each leg's net PnL
//!   ([`leg_pnl`]); the drawdown, net PnL minus its running maximum ([`drawdown`]).
//! - `prices.svg`: each leg's mid in its own panel, with our fills marked (buys as
//!   green up-triangles, sells as red down-triangles, at most [`MAX_MARKERS`] per leg
//!   and side, see [`thin_markers`]).
//! - `signal.svg`: the hedge ratio beta, and the z-score with the entry, exit and stop
//!   thresholds (both signs). Given the generator's [`Truth`], also the true beta and a
//!   vertical marker at its break on both panels.
//! - `inventory.svg`: position and target, one panel per leg.
//!
//! The prices and signal panels are shaded by the pair's spread state along time
//! ([`state_intervals`] of [`Trace::decisions`]): long spread, short spread and stopped
//! in light translucent colours, flat unshaded, and the warm-up of
//! [`PlotParams::warmup`] signal samples in grey ([`warmup_end`]).
//!
//! [`write_kalman_plot`] draws a [`KalmanSeries`] (the rows of `statarb kalman`'s
//! output, [`KalmanSeries::read_filtered_csv`]); [`write_equity_curve`] draws any
//! `(time, PnL)` series with its drawdown (the walk-forward's stitched out-of-sample
//! equity).
//!
//! # Axes
//!
//! Time axes are UTC clock time ([`TimeAxis`]): ticks on a clock-friendly step (1, 2,
//! 5, 10, 15, 30 s or min, 1, 2, 3, 6, 12 h, days), labelled `14:05` (`14:05:30` for
//! steps under a minute), `12-03 14:05` when the span crosses midnight and `12-03` for
//! steps of days, with the date(s) in the axis description. The date comes from the
//! ns-since-epoch [`Ts`] by H. Hinnant's `civil_from_days`
//! (<https://howardhinnant.github.io/date_algorithms.html>), no date crate.
//!
//! Value labels carry as many decimals as their axis needs to tell its ticks apart
//! ([`tick_decimals`]): a beta around 0.04344 that moves by 1e-5 is labelled
//! `0.043436, 0.043438, ...`, not `0.04344` five times.
//!
//! # Layout and text
//!
//! Each panel has a header strip with its caption and, below it, its legend in one or
//! more rows, so that no legend covers data. The crate enables no font backend of
//! plotters (no `ttf`, no `ab_glyph`), so plotters lays text out with its "naive" font
//! metrics (a width estimate per character) and the SVG backend writes plain `<text>`
//! elements that the viewer renders with its own fonts; the legend layout uses its own
//! width estimate ([`text_width`]).
//!
//! # Size
//!
//! Each line is reduced to at most [`MAX_POINTS`] points by keeping the minimum and
//! the maximum of each of `MAX_POINTS / 2` buckets of consecutive samples, so spikes
//! survive downsampling and a file stays a few hundred kB at most whatever the run
//! length. `NaN` values are gaps: the line is broken there (a gap shorter than a
//! bucket disappears at that resolution).

use std::io::Read;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use thiserror::Error;

use super::trace::{Decision, Spread, Trace};
use crate::signal::pairs::PairsParams;
use crate::types::{Side, Ts, NS_PER_SEC};

/// The true hedge ratio of a generated data set, drawn over the estimate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// `(time, beta)` samples in time order (exchange time of the generator).
    pub beta: Vec<(Ts, f64)>,
    /// Time of the structural break of beta, if the data reaches it.
    pub break_ts: Option<Ts>,
}

/// What [`write_plots`] needs beyond the [`Trace`]: the strategy settings the trace
/// does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PlotParams {
    /// `pairs.stop_z`: |z| of the stop, drawn at both signs on the z panel; `None`
    /// for no stop (nothing drawn).
    pub stop_z: Option<f64>,
    /// `pairs.warmup`: signal samples the pair ignores while the filter converges,
    /// shaded grey from the start ([`warmup_end`]).
    pub warmup: u32,
}

impl PlotParams {
    /// The stop and warm-up of `[pairs]`.
    pub fn from_pairs(p: &PairsParams) -> PlotParams {
        PlotParams { stop_z: p.stop_z, warmup: p.warmup }
    }
}

/// Most points drawn per series (per panel line).
pub const MAX_POINTS: usize = 2000;

/// Most fill markers drawn per leg and side (see [`thin_markers`]).
pub const MAX_MARKERS: usize = 1000;

/// Width of every figure, pixels.
const WIDTH: u32 = 1200;

/// Height of one panel, pixels (its header included).
const PANEL_HEIGHT: u32 = 340;

/// Height of a figure's title strip, pixels (figures with a title only).
const TITLE_HEIGHT: u32 = 34;

/// Most ticks on a time axis.
const MAX_TIME_TICKS: usize = 10;

/// Font of captions, legends and labels.
const FONT: &str = "sans-serif";

/// Colours: net / gross / signal PnL, beta, z, ...
const GREEN_DARK: RGBColor = RGBColor(0, 140, 0);
/// Buy fills.
const BUY: RGBColor = RGBColor(0, 150, 0);
/// Sell fills.
const SELL: RGBColor = RGBColor(215, 0, 0);
/// Stop thresholds.
const STOP: RGBColor = RGBColor(150, 0, 150);
/// Second leg lines.
const ORANGE: RGBColor = RGBColor(230, 120, 0);
/// Shade of a long spread.
const SHADE_LONG: RGBColor = RGBColor(40, 110, 255);
/// Shade of a short spread.
const SHADE_SHORT: RGBColor = RGBColor(255, 140, 0);
/// Shade of a stopped spread.
const SHADE_STOPPED: RGBColor = RGBColor(170, 0, 200);
/// Shade of the warm-up.
const SHADE_WARMUP: RGBColor = RGBColor(110, 110, 110);
/// Opacity of the shades.
const SHADE_ALPHA: f64 = 0.14;

/// Errors from the plot writers.
#[derive(Debug, Error)]
pub enum PlotError {
    /// There are no samples: there is nothing to draw.
    #[error("no samples to plot")]
    NoSamples,
    /// The output directory could not be created, or an input file read.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// plotters failed to draw or write a figure.
    #[error("cannot draw {path}: {msg}")]
    Draw {
        /// The figure's file.
        path: PathBuf,
        /// plotters' error, as text.
        msg: String,
    },
    /// A CSV input for [`KalmanSeries`] is malformed.
    #[error("{path}: line {line}: {msg}")]
    Csv {
        /// The input, as named by the caller.
        path: PathBuf,
        /// 1-based line (the header is line 1; 0 when unknown).
        line: u64,
        /// What is wrong.
        msg: String,
    },
    /// A CSV input for [`KalmanSeries`] lacks a column.
    #[error("{path}: no column `{column}` in the header (columns: {available})")]
    Column {
        /// The input, as named by the caller.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The header's columns, comma-separated.
        available: String,
    },
}

// ---------------------------------------------------------------------------------
// UTC time labels and the time axis
// ---------------------------------------------------------------------------------

/// The date part of a time label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePart {
    /// No date.
    None,
    /// `MM-DD`.
    MonthDay,
    /// `YYYY-MM-DD`.
    Full,
}

/// The clock part of a time label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockPart {
    /// No clock time.
    None,
    /// `HH:MM`.
    Minutes,
    /// `HH:MM:SS`.
    Seconds,
    /// `HH:MM:SS.f...` with this many decimals of the second (1 to 9).
    Fraction(u8),
}

/// How a time axis labels its ticks: a date part and a clock part, separated by a
/// space when both are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeFormat {
    /// The date.
    pub date: DatePart,
    /// The clock time.
    pub clock: ClockPart,
}

/// `(year, month, day, second of the day, nanosecond)` of `ts` (ns since the Unix
/// epoch), UTC, proleptic Gregorian; times before 1970 count back correctly
/// (Euclidean division). Days to date by H. Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
pub fn utc_parts(ts: Ts) -> (i64, u32, u32, i64, i64) {
    let secs = ts.div_euclid(NS_PER_SEC);
    let (y, m, d) = crate::utc::civil_from_days(secs.div_euclid(86_400));
    (y, m, d, secs.rem_euclid(86_400), ts.rem_euclid(NS_PER_SEC))
}

/// The UTC label of `ts` in `fmt`, e.g. `14:05`, `12-03 14:05`, `2026-12-03`,
/// `14:05:30.25`. Truncated toward the past, so a label never shows a later time than
/// `ts`.
pub fn utc_label(ts: Ts, fmt: TimeFormat) -> String {
    let (y, m, d, sod, ns) = utc_parts(ts);
    let date = match fmt.date {
        DatePart::None => String::new(),
        DatePart::MonthDay => format!("{m:02}-{d:02}"),
        DatePart::Full => format!("{y:04}-{m:02}-{d:02}"),
    };
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    let clock = match fmt.clock {
        ClockPart::None => String::new(),
        ClockPart::Minutes => format!("{h:02}:{mi:02}"),
        ClockPart::Seconds => format!("{h:02}:{mi:02}:{s:02}"),
        ClockPart::Fraction(k) => {
            let k = u32::from(k.clamp(1, 9));
            let frac = ns / 10i64.pow(9 - k);
            format!("{h:02}:{mi:02}:{s:02}.{frac:0w$}", w = k as usize)
        }
    };
    match (date.is_empty(), clock.is_empty()) {
        (false, false) => format!("{date} {clock}"),
        (true, _) => clock,
        (false, true) => date,
    }
}

/// Clock-friendly tick steps, ns: sub-second, seconds, minutes, hours, days.
const TIME_STEPS: [i64; 27] = {
    const S: i64 = NS_PER_SEC;
    const D: i64 = 86_400 * S;
    [
        S / 10,
        S / 5,
        S / 2,
        S,
        2 * S,
        5 * S,
        10 * S,
        15 * S,
        30 * S,
        60 * S,
        120 * S,
        300 * S,
        600 * S,
        900 * S,
        1800 * S,
        3600 * S,
        7200 * S,
        3 * 3600 * S,
        6 * 3600 * S,
        12 * 3600 * S,
        D,
        2 * D,
        7 * D,
        14 * D,
        28 * D,
        91 * D,
        182 * D,
    ]
};

/// The smallest step of [`TIME_STEPS`] (then whole multiples of 364 days) that puts at
/// most `max_ticks` ticks on `[t0, t1]`.
fn time_step(t0: Ts, t1: Ts, max_ticks: usize) -> i64 {
    let span = t1.saturating_sub(t0).max(1) as i128;
    let fits = |step: i64| span / (step as i128) < max_ticks.max(2) as i128;
    if let Some(&s) = TIME_STEPS.iter().find(|&&s| fits(s)) {
        return s;
    }
    let year = 364 * 86_400 * NS_PER_SEC;
    let mut scale = 1i64;
    loop {
        for m in [1, 2, 5] {
            let step = year.saturating_mul(scale * m);
            if fits(step) || step == i64::MAX {
                return step;
            }
        }
        scale = scale.saturating_mul(10);
    }
}

/// The ticks of a time axis over `[t0, t1]`: the multiples of `step` since the epoch
/// inside the span (for steps that divide a day, these fall on the UTC clock: 14:00,
/// 14:15, ...).
fn time_ticks(t0: Ts, t1: Ts, step: i64) -> Vec<Ts> {
    let step = step.max(1);
    let first = t0.div_euclid(step).saturating_add(i64::from(t0.rem_euclid(step) != 0)).saturating_mul(step);
    let mut out = Vec::new();
    let mut t = first;
    while t <= t1 && out.len() < 1_000 {
        out.push(t);
        match t.checked_add(step) {
            Some(n) => t = n,
            None => break,
        }
    }
    out
}

/// The label format for ticks `step` apart on `[t0, t1]`: the clock part as fine as
/// the step needs; a date part only when the span crosses midnight (`MM-DD`) or a
/// new year (`YYYY-MM-DD`), or for steps of days.
pub fn time_format(t0: Ts, t1: Ts, step: i64) -> TimeFormat {
    let (y0, m0, d0, _, _) = utc_parts(t0);
    let (y1, m1, d1, _, _) = utc_parts(t1);
    let day = 86_400 * NS_PER_SEC;
    let clock = if step >= day {
        ClockPart::None
    } else if step % (60 * NS_PER_SEC) == 0 {
        ClockPart::Minutes
    } else if step % NS_PER_SEC == 0 {
        ClockPart::Seconds
    } else {
        let mut k = 1u8;
        while k < 9 && step % 10i64.pow(9 - u32::from(k)) != 0 {
            k += 1;
        }
        ClockPart::Fraction(k)
    };
    let date = if y0 != y1 {
        DatePart::Full
    } else if (m0, d0) != (m1, d1) || step >= day {
        DatePart::MonthDay
    } else {
        DatePart::None
    };
    TimeFormat { date, clock }
}

/// A time axis: x values are seconds since `origin` (the UTC midnight before the
/// first time, so that f64 keeps sub-microsecond resolution), ticks on the UTC clock.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeAxis {
    /// Time of x = 0: UTC midnight on or before the first time.
    pub origin: Ts,
    /// First time.
    pub t0: Ts,
    /// Last time (`> t0`; a single instant is widened by one second).
    pub t1: Ts,
    /// Tick times.
    pub ticks: Vec<Ts>,
    /// Label format of the ticks.
    pub format: TimeFormat,
}

impl TimeAxis {
    /// The axis over `[t0, t1]`.
    pub fn new(t0: Ts, t1: Ts) -> TimeAxis {
        let t1 = if t1 > t0 { t1 } else { t0.saturating_add(NS_PER_SEC) };
        let day = 86_400 * NS_PER_SEC;
        let step = time_step(t0, t1, MAX_TIME_TICKS);
        TimeAxis {
            origin: t0.div_euclid(day) * day,
            t0,
            t1,
            ticks: time_ticks(t0, t1, step),
            format: time_format(t0, t1, step),
        }
    }

    /// x of `ts`: seconds since [`Self::origin`].
    pub fn x(&self, ts: Ts) -> f64 {
        ts.saturating_sub(self.origin) as f64 / NS_PER_SEC as f64
    }

    /// The time of `x` (to the nanosecond).
    fn ts_of(&self, x: f64) -> Ts {
        self.origin.saturating_add((x * NS_PER_SEC as f64).round() as i64)
    }

    /// The axis description: `UTC time, 2026-12-02` or `UTC time, 2026-12-01 to
    /// 2026-12-04`.
    pub fn description(&self) -> String {
        let full = TimeFormat { date: DatePart::Full, clock: ClockPart::None };
        let (a, b) = (utc_label(self.t0, full), utc_label(self.t1, full));
        if a == b {
            format!("UTC time, {a}")
        } else {
            format!("UTC time, {a} to {b}")
        }
    }
}

/// The horizontal axis of a figure: UTC time, or a row index when there is no time.
#[derive(Debug, Clone)]
enum XAxis {
    Time(TimeAxis),
    Index { n: usize },
}

impl XAxis {
    /// `(lo, hi)` of the x values.
    fn range(&self) -> (f64, f64) {
        match self {
            XAxis::Time(a) => (a.x(a.t0), a.x(a.t1)),
            XAxis::Index { n } => (0.0, (n.saturating_sub(1)).max(1) as f64),
        }
    }

    /// Tick positions, x values.
    fn ticks(&self) -> Vec<f64> {
        match self {
            XAxis::Time(a) => a.ticks.iter().map(|&t| a.x(t)).collect(),
            XAxis::Index { .. } => {
                let (lo, hi) = self.range();
                nice_ticks(lo, hi, MAX_TIME_TICKS)
            }
        }
    }

    /// The label of tick `x`.
    fn label(&self, x: f64) -> String {
        match self {
            XAxis::Time(a) => utc_label(a.ts_of(x), a.format),
            XAxis::Index { .. } => format!("{x:.0}"),
        }
    }

    fn description(&self) -> String {
        match self {
            XAxis::Time(a) => a.description(),
            XAxis::Index { .. } => "row".into(),
        }
    }
}

/// A linear f64 axis with its tick positions given (plotters' own `with_key_points`
/// wraps a coordinate without a label formatter).
#[derive(Debug, Clone)]
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        if !(span.is_finite() && span > 0.0) {
            return (limit.0 + limit.1) / 2;
        }
        let f = ((v - self.lo) / span).clamp(-1.0, 2.0);
        limit.0 + (f64::from(limit.1 - limit.0) * f).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

// ---------------------------------------------------------------------------------
// Value axes
// ---------------------------------------------------------------------------------

/// The tick step plotters uses on a value axis spanning `lo..hi` with at most `max`
/// ticks (`compute_f64_key_points`): the smallest of 1, 2 or 5 times a power of ten
/// that is at least `(hi - lo) / max`.
fn nice_step(lo: f64, hi: f64, max: usize) -> Option<f64> {
    let raw = (hi - lo) / max.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return None;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    Some(
        p * if m <= 1.0 {
            1.0
        } else if m <= 2.0 {
            2.0
        } else if m <= 5.0 {
            5.0
        } else {
            10.0
        },
    )
}

/// Multiples of [`nice_step`] inside `[lo, hi]`.
fn nice_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let Some(step) = nice_step(lo, hi, max) else { return vec![lo] };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).take(1_000).map(|k| k as f64 * step).collect()
}

/// Most labels plotters puts on a value axis (its mesh's default `y_labels`).
const Y_LABELS: usize = 11;

/// Decimals with which every tick label of an axis spanning `lo..hi` shows its value
/// exactly (to 1e-6 of the tick step), so no two labels are equal: the ticks are the
/// ones plotters draws there (`RangedCoordf64::key_points` with [`Y_LABELS`]: the
/// smallest step of 1, 2 or 5 times a power of ten that gives at most 11 of them), and
/// the answer is the fewest decimals, 0 to 12, that print each one back to its value.
/// Predicting the decimals from the step alone fails where the step's mantissa lands a
/// rounding error away from 2 or 5 (61000..61000.5 padded has ticks every 0.05, not
/// 0.1). 2 for an empty or non-finite span; 12 when even 12 are not enough.
fn tick_decimals(lo: f64, hi: f64) -> usize {
    use plotters::coord::types::RangedCoordf64;
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return 2;
    }
    let ticks = RangedCoordf64::from(lo..hi).key_points(Y_LABELS);
    let step = ticks.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    let tol = if step.is_finite() { step * 1e-6 } else { hi.abs().max(lo.abs()) * 1e-12 };
    (0..=12)
        .find(|&d| ticks.iter().all(|v| format!("{v:.d$}").parse::<f64>().is_ok_and(|back| (back - v).abs() <= tol)))
        .unwrap_or(12)
}

/// `(lo, hi)` widened by 5 % on each side, or by 1 (or 1e-3 of the value, if larger
/// than the value's scale allows) when it is a single value; `(-1, 1)` when there is
/// nothing.
fn padded(range: Option<(f64, f64)>) -> (f64, f64) {
    match range {
        None => (-1.0, 1.0),
        Some((lo, hi)) if hi - lo <= 1e-9 * (lo.abs() + hi.abs()) => {
            let pad = if lo.abs() > 0.0 && lo.abs() < 1.0 { lo.abs() * 0.01 } else { 1.0 };
            (lo - pad, hi + pad)
        }
        Some((lo, hi)) => {
            let pad = 0.05 * (hi - lo);
            (lo - pad, hi + pad)
        }
    }
}

/// Merges two optional ranges.
fn union(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Finite range of `values`.
fn range_of(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().filter(|v| v.is_finite()).fold(None, |r, v| union(r, Some((v, v))))
}

/// `values` clamped to their 1st..99th percentile (widened by 10 %, and joined with
/// `extra`): the filter starts from its prior, far from any hedge ratio, and an axis
/// scaled to that transient would flatten the whole run, so values outside are drawn
/// at the edge.
fn clip_to_bulk(values: &[f64], extra: Option<(f64, f64)>) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|b| b.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let bulk = (!sorted.is_empty()).then(|| (sorted[sorted.len() / 100], sorted[sorted.len() * 99 / 100]));
    match union(bulk, extra) {
        Some((lo, hi)) => {
            let pad = 0.1 * (hi - lo).max(hi.abs() * 1e-3);
            values.iter().map(|b| b.clamp(lo - pad, hi + pad)).collect()
        }
        None => values.to_vec(),
    }
}

// ---------------------------------------------------------------------------------
// Series reduction
// ---------------------------------------------------------------------------------

/// Splits `(t, y)` into runs of finite values, downsampled to at most `max_points`
/// points in total: when there are more samples, each of `max_points / 2` buckets of
/// consecutive samples contributes its minimum and maximum (in time order), and a
/// bucket without a finite value breaks the line.
fn segments(t: &[f64], y: &[f64], max_points: usize) -> Vec<Vec<(f64, f64)>> {
    let n = t.len().min(y.len());
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    let mut push = |p: Option<(f64, f64)>, cur: &mut Vec<(f64, f64)>| match p {
        Some(p) => cur.push(p),
        None if !cur.is_empty() => out.push(std::mem::take(cur)),
        None => {}
    };
    let ok = |i: usize| y[i].is_finite() && t[i].is_finite();
    if n <= max_points {
        for i in 0..n {
            push(ok(i).then(|| (t[i], y[i])), &mut cur);
        }
    } else {
        let buckets = (max_points / 2).max(1);
        let size = n.div_ceil(buckets);
        for start in (0..n).step_by(size) {
            let end = (start + size).min(n);
            let mut lo: Option<usize> = None;
            let mut hi: Option<usize> = None;
            for i in (start..end).filter(|&i| ok(i)) {
                if lo.is_none_or(|j| y[i] < y[j]) {
                    lo = Some(i);
                }
                if hi.is_none_or(|j| y[i] > y[j]) {
                    hi = Some(i);
                }
            }
            match (lo, hi) {
                (Some(a), Some(b)) => {
                    let (first, second) = if a <= b { (a, b) } else { (b, a) };
                    push(Some((t[first], y[first])), &mut cur);
                    if second != first {
                        push(Some((t[second], y[second])), &mut cur);
                    }
                }
                _ => push(None, &mut cur),
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// At most `max` of the markers `points` (`(x, y)`, in x order), for a legible and
/// small figure: all of them when there are few enough; otherwise `[x_lo, x_hi]` is
/// cut into `max / 2` equal time buckets and each keeps its lowest and its highest
/// marker (in x order), so the envelope of the fills survives. Non-finite points are
/// dropped.
pub fn thin_markers(points: &[(f64, f64)], x_lo: f64, x_hi: f64, max: usize) -> Vec<(f64, f64)> {
    let finite = || points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite());
    if finite().count() <= max {
        return finite().collect();
    }
    let buckets = (max / 2).max(1);
    let width = (x_hi - x_lo) / buckets as f64;
    let bucket = |x: f64| {
        if width > 0.0 {
            (((x - x_lo) / width).floor().max(0.0) as usize).min(buckets - 1)
        } else {
            0
        }
    };
    // (lowest, highest) per bucket, as indices into the finite points.
    let pts: Vec<(f64, f64)> = finite().collect();
    let mut best: Vec<Option<(usize, usize)>> = vec![None; buckets];
    for (i, p) in pts.iter().enumerate() {
        let b = &mut best[bucket(p.0)];
        *b = Some(match *b {
            None => (i, i),
            Some((lo, hi)) => (if p.1 < pts[lo].1 { i } else { lo }, if p.1 > pts[hi].1 { i } else { hi }),
        });
    }
    let mut out = Vec::with_capacity(max);
    for (lo, hi) in best.into_iter().flatten() {
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(pts[a]);
        if b != a {
            out.push(pts[b]);
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Trace-derived series
// ---------------------------------------------------------------------------------

/// A stretch of time in one spread state: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateInterval {
    /// Start, ns.
    pub from: Ts,
    /// End, ns.
    pub to: Ts,
    /// The state.
    pub state: Spread,
}

/// The spread state along `[start, end]`, as contiguous intervals in time order that
/// cover it: flat from `start` (the Core starts flat), then the state of each
/// [`Decision`] from its time (decisions before `start` set the state at `start`,
/// those after `end` are ignored). Consecutive decisions in the same state (a change
/// of targets or of the kill switch only) do not split an interval, and intervals of
/// no time are dropped.
pub fn state_intervals(decisions: &[Decision], start: Ts, end: Ts) -> Vec<StateInterval> {
    let mut out = Vec::new();
    if end <= start {
        return out;
    }
    let (mut from, mut state) = (start, Spread::Flat);
    for d in decisions {
        if d.ts > end {
            break;
        }
        if d.state == state {
            continue;
        }
        let at = d.ts.max(start);
        if at > from {
            out.push(StateInterval { from, to: at, state });
        }
        from = at;
        state = d.state;
    }
    out.push(StateInterval { from, to: end, state });
    out
}

/// End of the warm-up: the time of the first signal sample the pair acts on, signal
/// number `warmup` (0-based) of `signal_ts` (the Core's accepted updates; the pair
/// ignores its first `warmup` samples, see [`PairsParams::warmup`]). `None` for no
/// warm-up; `Some(Ts::MAX)` when the run has no more than `warmup` signals (the whole
/// run is warm-up).
pub fn warmup_end(signal_ts: &[Ts], warmup: u32) -> Option<Ts> {
    (warmup > 0).then(|| signal_ts.get(warmup as usize).copied().unwrap_or(Ts::MAX))
}

/// Each leg's PnL after fees at each sample, quote asset: from the fills before the
/// sample's time (a sample holds the state just before it, as the replay takes it),
/// `cash_l - fees_l + q_l * m_l` with `cash_l = -sum side * qty * px`, `q_l` the
/// position after the last such fill and `m_l` the sample's mid; `NaN` where a leg
/// with a position has no mid. The two legs add up to [`super::trace::Sample::net_pnl`]
/// wherever both mids are known.
pub fn leg_pnl(trace: &Trace) -> [Vec<f64>; 2] {
    let fills = &trace.fills;
    let (mut k, mut cash, mut pos) = (0, [0.0f64; 2], [0.0f64; 2]);
    let mut out = [Vec::with_capacity(trace.samples.len()), Vec::with_capacity(trace.samples.len())];
    for s in &trace.samples {
        while k < fills.len() && fills[k].ts < s.ts {
            let f = &fills[k];
            if let Some(l) = (f.leg < 2).then_some(f.leg) {
                let sign = if f.side == Side::Buy { 1.0 } else { -1.0 };
                cash[l] -= sign * f.qty * f.px + f.fee;
                pos[l] = f.position;
            }
            k += 1;
        }
        for l in 0..2 {
            out[l].push(if pos[l] == 0.0 { cash[l] } else { cash[l] + pos[l] * s.mid[l] });
        }
    }
    out
}

/// Drawdown at each point: `v(t) - max_{s <= t} v(s)` over the finite values (0 at a
/// new high, negative below it); `NaN` where `v` is not finite.
pub fn drawdown(v: &[f64]) -> Vec<f64> {
    let mut peak = f64::NEG_INFINITY;
    v.iter()
        .map(|&x| {
            if !x.is_finite() {
                return f64::NAN;
            }
            peak = peak.max(x);
            x - peak
        })
        .collect()
}

/// The signal PnL at each sample: the paper portfolio that jumps to the targets of
/// [`Trace::decisions`] at their mids (decisions before the sample's time; a sample
/// holds the state just before it), marked at the sample's mids:
/// `sum_legs T(t) m(t) - sum_{k: t_k < t} dT_k m_k`. At the last sample this is
/// [`super::stats::Report::pnl_signal`]. `NaN` where a leg with a target has no mid.
fn signal_equity(trace: &Trace) -> Vec<f64> {
    let d = &trace.decisions;
    let (mut k, mut target, mut cash) = (0, [0.0f64; 2], [0.0f64; 2]);
    trace
        .samples
        .iter()
        .map(|s| {
            while k < d.len() && d[k].ts < s.ts {
                for l in 0..2 {
                    let dt = d[k].target[l] - target[l];
                    if dt != 0.0 {
                        cash[l] -= dt * d[k].mid[l];
                    }
                }
                target = d[k].target;
                k += 1;
            }
            (0..2).map(|l| if target[l] == 0.0 { cash[l] } else { target[l] * s.mid[l] + cash[l] }).sum()
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Panels and figures
// ---------------------------------------------------------------------------------

/// What a legend entry shows.
#[derive(Debug, Clone, Copy)]
enum Key {
    /// A line segment, dashed or not.
    Line(RGBColor, bool),
    /// A shaded box.
    Shade(RGBColor),
    /// A triangle marker, up or down.
    Marker(RGBColor, bool),
}

/// One line of a panel: a legend label, a colour and its gap-free segments.
struct Line {
    label: String,
    color: RGBColor,
    segments: Vec<Vec<(f64, f64)>>,
}

impl Line {
    /// A line from the x values and `y`, downsampled and split at `NaN`s.
    fn new(label: impl Into<String>, color: RGBColor, t: &[f64], y: &[f64]) -> Line {
        Line { label: label.into(), color, segments: segments(t, y, MAX_POINTS) }
    }

    /// Finite y range of the line, if it has points.
    fn y_range(&self) -> Option<(f64, f64)> {
        range_of(self.segments.iter().flatten().map(|p| p.1))
    }
}

/// A horizontal reference line across a panel.
struct HLine {
    label: String,
    color: RGBColor,
    y: f64,
}

/// A vertical marker across a panel, at `x`.
struct VLine {
    label: String,
    color: RGBColor,
    x: f64,
}

/// A shaded stretch of x, `[from, to]`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Band {
    from: f64,
    to: f64,
    color: RGBColor,
}

/// Triangle markers: up (buys) or down (sells).
struct Markers {
    label: String,
    color: RGBColor,
    up: bool,
    points: Vec<(f64, f64)>,
}

/// One chart: a caption, an y axis description, and what it draws, back to front:
/// shaded bands, an area under `fill` (down to 0), lines, reference lines, markers.
#[derive(Default)]
struct Panel {
    caption: String,
    y_desc: String,
    bands: Vec<Band>,
    /// Legend entries of the bands.
    band_keys: Vec<(String, RGBColor)>,
    /// Index into `lines` of a line whose area down to 0 is filled.
    fill: Option<usize>,
    lines: Vec<Line>,
    hlines: Vec<HLine>,
    vlines: Vec<VLine>,
    markers: Vec<Markers>,
}

impl Panel {
    fn new(caption: impl Into<String>, y_desc: impl Into<String>) -> Panel {
        Panel { caption: caption.into(), y_desc: y_desc.into(), ..Panel::default() }
    }

    /// The legend: lines, reference lines (one entry per label), markers, bands.
    fn legend(&self) -> Vec<(Key, String)> {
        let mut keys: Vec<(Key, String)> = Vec::new();
        for l in self.lines.iter().filter(|l| !l.segments.is_empty()) {
            keys.push((Key::Line(l.color, false), l.label.clone()));
        }
        for h in &self.hlines {
            if !keys.iter().any(|k| k.1 == h.label) {
                keys.push((Key::Line(h.color, true), h.label.clone()));
            }
        }
        for v in &self.vlines {
            if !keys.iter().any(|k| k.1 == v.label) {
                keys.push((Key::Line(v.color, true), v.label.clone()));
            }
        }
        for m in &self.markers {
            keys.push((Key::Marker(m.color, m.up), m.label.clone()));
        }
        for (label, color) in &self.band_keys {
            keys.push((Key::Shade(*color), label.clone()));
        }
        keys
    }

    /// The y range of everything drawn, padded.
    fn y_range(&self) -> (f64, f64) {
        let mut r = self.lines.iter().map(Line::y_range).fold(None, union);
        r = union(r, range_of(self.hlines.iter().map(|h| h.y)));
        r = union(r, range_of(self.markers.iter().flat_map(|m| m.points.iter().map(|p| p.1))));
        if self.fill.is_some() {
            r = union(r, Some((0.0, 0.0)));
        }
        padded(r)
    }
}

/// Estimated width in pixels of `text` at font size `size` (DejaVu Sans, the usual
/// `sans-serif`: about 0.5 em per lower-case letter or punctuation, 0.64 em per
/// digit or capital, 0.32 em per space; a little over, so that labels never collide).
fn text_width(text: &str, size: f64) -> f64 {
    let em = |c: char| match c {
        ' ' => 0.32,
        c if c.is_ascii_uppercase() || c.is_ascii_digit() => 0.64,
        _ => 0.52,
    };
    text.chars().map(em).sum::<f64>() * size
}

/// Legend font size, in plotters' units: its SVG backend writes `font-size` as this
/// over 1.24, so 15 renders at about 12 px.
const LEGEND_FONT: f64 = 15.0;

/// Rendered pixels per plotters font unit (see [`LEGEND_FONT`]).
const FONT_PX: f64 = 1.0 / 1.24;
/// Height of a legend row, pixels.
const LEGEND_ROW: i32 = 18;
/// Height of the caption line, pixels.
const CAPTION_ROW: i32 = 26;

/// The legend entries laid out in rows of at most `width` pixels: `(x, row)` of each.
fn legend_layout(keys: &[(Key, String)], width: f64) -> Vec<(f64, usize)> {
    let (mut x, mut row) = (0.0, 0usize);
    keys.iter()
        .map(|(_, label)| {
            let w = 30.0 + text_width(label, LEGEND_FONT * FONT_PX) + 22.0;
            if x > 0.0 && x + w > width {
                x = 0.0;
                row += 1;
            }
            let at = (x, row);
            x += w;
            at
        })
        .collect()
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws a legend key's swatch with its left edge at `(x, y)` (`y` the row's middle).
fn draw_key(area: &Area<'_>, key: Key, x: i32, y: i32) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    match key {
        Key::Line(c, false) => area.draw(&PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))).map_err(e),
        Key::Line(c, true) => {
            for k in 0..3 {
                let a = x + k * 9;
                area.draw(&PathElement::new(vec![(a, y), (a + 5, y)], c.stroke_width(2))).map_err(e)?;
            }
            Ok(())
        }
        Key::Shade(c) => {
            area.draw(&Rectangle::new([(x, y - 6), (x + 24, y + 6)], c.mix(SHADE_ALPHA * 2.0).filled())).map_err(e)?;
            area.draw(&Rectangle::new([(x, y - 6), (x + 24, y + 6)], BLACK.mix(0.35).stroke_width(1))).map_err(e)
        }
        Key::Marker(c, up) => area.draw(&Polygon::new(triangle(x + 12, y, up), c.mix(0.85).filled())).map_err(e),
    }
}

/// The vertices of a triangle marker centred on `(x, y)` (pixels), pointing up or down.
fn triangle(x: i32, y: i32, up: bool) -> Vec<(i32, i32)> {
    if up {
        vec![(x, y - 5), (x + 4, y + 3), (x - 4, y + 3)]
    } else {
        vec![(x, y + 5), (x + 4, y - 3), (x - 4, y - 3)]
    }
}

/// Draws `panel` on `area`: header (caption, legend rows), then the chart.
fn draw_panel(area: &Area<'_>, panel: &Panel, x: &XAxis) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let (w, _) = area.dim_in_pixel();
    let keys = panel.legend();
    let layout = legend_layout(&keys, f64::from(w) - 110.0);
    let rows = layout.last().map_or(0, |l| l.1 + 1) as i32;
    let header = CAPTION_ROW + rows * LEGEND_ROW + 4;
    let (head, body) = area.split_vertically(header);
    head.draw(&Text::new(panel.caption.clone(), (96, 4), (FONT, 17).into_font().style(FontStyle::Bold).color(&BLACK)))
        .map_err(e)?;
    for ((key, label), (kx, row)) in keys.iter().zip(&layout) {
        let px = 96 + *kx as i32;
        let py = CAPTION_ROW + *row as i32 * LEGEND_ROW + LEGEND_ROW / 2;
        draw_key(&head, *key, px, py)?;
        head.draw(&Text::new(
            label.clone(),
            (px + 30, py - 7),
            (FONT, LEGEND_FONT).into_font().color(&BLACK.mix(0.85)),
        ))
        .map_err(e)?;
    }

    let (x0, x1) = x.range();
    let (y0, y1) = panel.y_range();
    let dy = tick_decimals(y0, y1);
    let y_fmt = move |v: &f64| format!("{v:.dy$}");
    let x_fmt = |v: &f64| x.label(*v);
    let mut chart = ChartBuilder::on(&body)
        .margin_left(6)
        .margin_right(44)
        .margin_top(2)
        .margin_bottom(4)
        .x_label_area_size(46)
        .y_label_area_size(90)
        .build_cartesian_2d(Ticked { lo: x0, hi: x1, ticks: x.ticks() }, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x.description())
        .y_desc(&panel.y_desc)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_label_style((FONT, 15))
        .y_label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| e.to_string())?;
    let m = |e: DrawingAreaErrorKind<_>| e.to_string();
    chart
        .draw_series(
            panel
                .bands
                .iter()
                .filter(|b| b.to > x0 && b.from < x1)
                .map(|b| Rectangle::new([(b.from.max(x0), y0), (b.to.min(x1), y1)], b.color.mix(SHADE_ALPHA).filled())),
        )
        .map_err(m)?;
    if let Some(line) = panel.fill.and_then(|i| panel.lines.get(i)) {
        let c = line.color;
        chart
            .draw_series(line.segments.iter().filter(|s| s.len() > 1).map(|seg| {
                let mut pts = seg.clone();
                pts.push((seg[seg.len() - 1].0, 0.0));
                pts.push((seg[0].0, 0.0));
                Polygon::new(pts, c.mix(0.18).filled())
            }))
            .map_err(m)?;
    }
    for line in &panel.lines {
        let color = line.color;
        for seg in &line.segments {
            chart.draw_series(LineSeries::new(seg.iter().copied(), color.stroke_width(1))).map_err(m)?;
        }
    }
    for h in &panel.hlines {
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, h.y), (x1, h.y)], 6, 4, h.color.stroke_width(1)))
            .map_err(m)?;
    }
    for v in panel.vlines.iter().filter(|v| (x0..=x1).contains(&v.x)) {
        chart
            .draw_series(DashedLineSeries::new(vec![(v.x, y0), (v.x, y1)], 6, 4, v.color.stroke_width(2)))
            .map_err(m)?;
    }
    for mk in &panel.markers {
        let (c, up) = (mk.color, mk.up);
        let shape = triangle(0, 0, up);
        chart
            .draw_series(
                mk.points.iter().map(|&p| EmptyElement::at(p) + Polygon::new(shape.clone(), c.mix(0.85).filled())),
            )
            .map_err(m)?;
    }
    Ok(())
}

/// Writes a figure of `panels` stacked vertically to `path`, under `title` if given.
fn figure(path: &Path, title: Option<&str>, panels: &[Panel], x: &XAxis) -> Result<(), PlotError> {
    let err = |msg: String| PlotError::Draw { path: path.to_path_buf(), msg };
    let n = panels.len().max(1) as u32;
    let top = if title.is_some() { TITLE_HEIGHT } else { 0 };
    let root = SVGBackend::new(path, (WIDTH, top + n * PANEL_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (head, body) = root.split_vertically(top);
    if let Some(t) = title {
        head.draw(&Text::new(t.to_string(), (96, 8), (FONT, 20).into_font().style(FontStyle::Bold).color(&BLACK)))
            .map_err(|e| err(e.to_string()))?;
    }
    let areas = body.split_evenly((panels.len().max(1), 1));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(area, panel, x).map_err(err)?;
    }
    root.present().map_err(|e| err(e.to_string()))
}

/// The spread-state and warm-up shading of a trace on the time axis `ax`, with its
/// legend entries (the states present, flat noted as unshaded).
fn state_bands(trace: &Trace, ax: &TimeAxis, params: &PlotParams) -> (Vec<Band>, Vec<(String, RGBColor)>) {
    let mut bands = Vec::new();
    let mut seen = [false; 4];
    for iv in state_intervals(&trace.decisions, ax.t0, ax.t1) {
        let (i, color) = match iv.state {
            Spread::Flat => continue,
            Spread::Long => (0, SHADE_LONG),
            Spread::Short => (1, SHADE_SHORT),
            Spread::Stopped => (2, SHADE_STOPPED),
        };
        seen[i] = true;
        bands.push(Band { from: ax.x(iv.from), to: ax.x(iv.to), color });
    }
    let signal_ts: Vec<Ts> = trace.signals.iter().map(|s| s.ts_ns).collect();
    if let Some(end) = warmup_end(&signal_ts, params.warmup) {
        seen[3] = true;
        bands.push(Band { from: ax.x(ax.t0), to: ax.x(end.min(ax.t1)), color: SHADE_WARMUP });
    }
    let names = [
        ("long spread".to_string(), SHADE_LONG),
        ("short spread".to_string(), SHADE_SHORT),
        ("stopped".to_string(), SHADE_STOPPED),
        (format!("warm-up ({} signals)", params.warmup), SHADE_WARMUP),
    ];
    let mut keys: Vec<(String, RGBColor)> =
        names.into_iter().zip(seen).filter(|(_, seen)| *seen).map(|(key, _)| key).collect();
    if !keys.is_empty() {
        keys.push(("flat: unshaded".into(), WHITE));
    }
    (bands, keys)
}

/// Writes `equity.svg`, `prices.svg`, `signal.svg` and `inventory.svg` into `dir`
/// (created if missing) and returns their paths. See the module docs for what each
/// shows; `truth`, for generated data, adds the true beta and its break; `params`
/// gives the stop threshold and the warm-up.
pub fn write_plots(
    trace: &Trace,
    dir: &Path,
    truth: Option<&Truth>,
    params: &PlotParams,
) -> Result<Vec<PathBuf>, PlotError> {
    let samples = &trace.samples;
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) => (f.ts, l.ts),
        _ => return Err(PlotError::NoSamples),
    };
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Io { path: dir.to_path_buf(), source })?;

    let ax = TimeAxis::new(first, last);
    let x_axis = XAxis::Time(ax.clone());
    let t: Vec<f64> = samples.iter().map(|s| ax.x(s.ts)).collect();
    let col = |f: &dyn Fn(&super::trace::Sample) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
    let [y_sym, x_sym] = &trace.symbols;
    let legs = [(0usize, y_sym.as_str(), "y"), (1, x_sym.as_str(), "x")];
    let (bands, band_keys) = state_bands(trace, &ax, params);
    let shaded = |mut p: Panel| {
        p.bands = bands.clone();
        p.band_keys = band_keys.clone();
        p
    };

    // Equity: totals, per leg, drawdown.
    let net = col(&|s| s.net_pnl);
    let mut totals = Panel::new("Equity: PnL marked at the mids", "PnL (quote asset)");
    totals.lines = vec![
        Line::new("net (after fees)", BLUE, &t, &net),
        Line::new("gross (before fees)", RED, &t, &col(&|s| s.gross_pnl)),
        Line::new("signal (targets at the mids, no costs)", GREEN_DARK, &t, &signal_equity(trace)),
    ];
    totals.hlines = vec![HLine { label: "zero".into(), color: RGBColor(120, 120, 120), y: 0.0 }];
    let [pnl_y, pnl_x] = leg_pnl(trace);
    let mut per_leg = Panel::new("PnL per leg, after its fees, marked at its mid", "PnL (quote asset)");
    per_leg.lines = vec![
        Line::new(format!("{y_sym} (y leg)"), BLUE, &t, &pnl_y),
        Line::new(format!("{x_sym} (x leg)"), ORANGE, &t, &pnl_x),
    ];
    per_leg.hlines = vec![HLine { label: "zero".into(), color: RGBColor(120, 120, 120), y: 0.0 }];
    let dd_panel = drawdown_panel(&ax, &t, &net, "Drawdown of the net PnL (net minus its running maximum)");
    let equity = [totals, per_leg, dd_panel];

    // Prices, with the fills and the state shading.
    let (x_lo, x_hi) = x_axis.range();
    let prices: Vec<Panel> = legs
        .iter()
        .map(|&(leg, sym, role)| {
            let mut p = shaded(Panel::new(format!("{sym} ({role} leg) mid and our fills"), "price"));
            p.lines = vec![Line::new(format!("{sym} mid"), RGBColor(40, 40, 40), &t, &col(&|s| s.mid[leg]))];
            for (side, up, color, name) in [(Side::Buy, true, BUY, "buy"), (Side::Sell, false, SELL, "sell")] {
                let pts: Vec<(f64, f64)> =
                    trace.fills.iter().filter(|f| f.leg == leg && f.side == side).map(|f| (ax.x(f.ts), f.px)).collect();
                if pts.is_empty() {
                    continue;
                }
                let shown = thin_markers(&pts, x_lo, x_hi, MAX_MARKERS);
                let label = if shown.len() < pts.len() {
                    format!("{name} fills ({}, {} shown)", pts.len(), shown.len())
                } else {
                    format!("{name} fills ({})", pts.len())
                };
                p.markers.push(Markers { label, color, up, points: shown });
            }
            p
        })
        .collect();

    // Signal: beta and z, with thresholds, truth and shading.
    let mut z_lines = Vec::new();
    let stop = params.stop_z.unwrap_or(f64::NAN);
    for (z, label, color) in
        [(trace.entry_z, "+/- entry z", RED), (trace.exit_z, "+/- exit z", GREEN_DARK), (stop, "+/- stop z", STOP)]
    {
        if z.is_finite() {
            // A negative exit holds through the mean: a long exits at z >= |exit|.
            let note = if z < 0.0 { ", past the mean" } else { "" };
            let label = format!("{label} ({}{note})", fmt_short(z.abs()));
            for y in [z, -z] {
                z_lines.push(HLine { label: label.clone(), color, y });
            }
        }
    }
    let truth_range = truth.and_then(|tr| range_of(tr.beta.iter().map(|b| b.1)));
    let clipped = clip_to_bulk(&col(&|s| s.beta), truth_range);
    let mut beta_lines = vec![Line::new("beta (Kalman)", BLUE, &t, &clipped)];
    let mut breaks = Vec::new();
    if let Some(truth) = truth {
        let (tt, tb): (Vec<f64>, Vec<f64>) = truth.beta.iter().map(|&(ts, b)| (ax.x(ts), b)).unzip();
        beta_lines.push(Line::new("true beta", RED, &tt, &tb));
        if let Some(b) = truth.break_ts.filter(|b| (first..=last).contains(b)) {
            breaks.push(ax.x(b));
        }
    }
    let break_marks =
        || -> Vec<VLine> { breaks.iter().map(|&x| VLine { label: "beta break".into(), color: MAGENTA, x }).collect() };
    let mut beta_panel = shaded(Panel::new(format!("Hedge ratio beta ({y_sym} = alpha + beta * {x_sym})"), "beta"));
    beta_panel.lines = beta_lines;
    beta_panel.vlines = break_marks();
    let mut z_panel = shaded(Panel::new("z-score with the entry, exit and stop thresholds", "z"));
    z_panel.lines = vec![Line::new("z", BLACK, &t, &col(&|s| s.z))];
    z_panel.hlines = z_lines;
    z_panel.vlines = break_marks();
    let signal = [beta_panel, z_panel];

    let inventory: Vec<Panel> = legs
        .iter()
        .map(|&(leg, sym, role)| {
            let mut p = Panel::new(format!("{sym} ({role} leg) inventory"), "base units");
            p.lines = vec![
                Line::new("target", RED, &t, &col(&|s| s.target[leg])),
                Line::new("position", BLUE, &t, &col(&|s| s.position[leg])),
            ];
            p
        })
        .collect();

    let mut written = Vec::new();
    for (name, panels) in [
        ("equity.svg", &equity[..]),
        ("prices.svg", &prices[..]),
        ("signal.svg", &signal[..]),
        ("inventory.svg", &inventory[..]),
    ] {
        let path = dir.join(name);
        figure(&path, None, panels, &x_axis)?;
        written.push(path);
    }
    Ok(written)
}

/// A number in a legend: up to 4 significant decimals, no trailing zeros.
fn fmt_short(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The drawdown panel of `v` sampled at `t`: the drawdown filled down from 0, its
/// maximum and when it happened in the legend.
fn drawdown_panel(ax: &TimeAxis, t: &[f64], v: &[f64], caption: &str) -> Panel {
    let dd = drawdown(v);
    let worst = dd.iter().enumerate().filter(|p| p.1.is_finite()).min_by(|a, b| a.1.total_cmp(b.1));
    let label = match worst {
        Some((i, &d)) if d < 0.0 => {
            let at = t.get(i).map_or(ax.t0, |&x| ax.ts_of(x));
            let when = utc_label(at, TimeFormat { date: DatePart::MonthDay, clock: ClockPart::Minutes });
            format!("drawdown (max {} at {when} UTC)", fmt_pnl(d))
        }
        _ => "drawdown (none)".into(),
    };
    let mut p = Panel::new(caption, "PnL (quote asset)");
    p.lines = vec![Line::new(label, RED, t, &dd)];
    p.fill = Some(0);
    p
}

/// A PnL figure for a legend: 2 decimals, more for small values.
fn fmt_pnl(v: f64) -> String {
    if v.abs() >= 1.0 || v == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Writes an equity curve to `path` (SVG): `points` (time, PnL in the quote asset,
/// `NaN` a gap) in time order (sorted here if not), and below it the drawdown, PnL
/// minus its running maximum, with its worst value and time in the legend. For the
/// walk-forward's stitched out-of-sample equity: the caller concatenates the test
/// windows' curves, each offset by the PnL at the end of the previous one.
pub fn write_equity_curve(path: &Path, points: &[(Ts, f64)], caption: &str) -> Result<(), PlotError> {
    let mut pts = points.to_vec();
    if !pts.windows(2).all(|w| w[0].0 <= w[1].0) {
        pts.sort_by_key(|p| p.0);
    }
    let (Some(first), Some(last)) = (pts.first(), pts.last()) else { return Err(PlotError::NoSamples) };
    let ax = TimeAxis::new(first.0, last.0);
    let t: Vec<f64> = pts.iter().map(|p| ax.x(p.0)).collect();
    let v: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let last_v = v.iter().rev().find(|x| x.is_finite()).copied();
    let mut eq = Panel::new(
        match last_v {
            Some(l) => format!("Equity (final {})", fmt_pnl(l)),
            None => "Equity".into(),
        },
        "PnL (quote asset)",
    );
    eq.lines = vec![Line::new("equity", BLUE, &t, &v)];
    eq.hlines = vec![HLine { label: "zero".into(), color: RGBColor(120, 120, 120), y: 0.0 }];
    let dd = drawdown_panel(&ax, &t, &v, "Drawdown (equity minus its running maximum)");
    figure(path, Some(caption), &[eq, dd], &XAxis::Time(ax))
}

// ---------------------------------------------------------------------------------
// statarb kalman --plot
// ---------------------------------------------------------------------------------

/// What `statarb kalman` filtered, row by row, for [`write_kalman_plot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KalmanSeries {
    /// Time of each row (ns since the epoch), or `None` to plot against the row index.
    pub time: Option<Vec<Ts>>,
    /// Name of the `y` column.
    pub y_name: String,
    /// Name of the `x` column.
    pub x_name: String,
    /// The `y` column.
    pub y: Vec<f64>,
    /// The `x` column.
    pub x: Vec<f64>,
    /// The filter's beta (`NaN` where the filter gave no output).
    pub beta: Vec<f64>,
    /// The filter's z (`NaN` where the filter gave no output).
    pub z: Vec<f64>,
}

/// Header names, lower case, taken as the time column of a [`KalmanSeries`] CSV
/// (the first present, in this order).
pub const TIME_COLUMNS: [&str; 8] = ["ts_ns", "ts", "timestamp", "time", "datetime", "date", "open_time", "ts_event"];

/// A time field to ns since the epoch: an integer or decimal number, in ns, us, ms or
/// s by its magnitude (`>= 1e17` ns, `>= 1e14` us, `>= 1e11` ms, else s), or
/// RFC 3339 UTC (`2024-08-09T00:00:01.234Z`), also with a space for the `T`, without
/// the `Z`, or a date alone (`2024-08-09`, or `20240809` as daily data such as Chan's
/// ETF closes writes it, midnight UTC). Eight digits that form a date in 1900..=2199
/// are that date, not seconds since the epoch (which would be 1970-04 to 1973).
/// `None` if it is none of these.
pub fn parse_time(field: &str) -> Option<Ts> {
    let f = field.trim();
    if let Some(ns) = parse_yyyymmdd(f) {
        return Some(ns);
    }
    if let Some(ns) = parse_epoch_number(f) {
        return Some(ns);
    }
    if !f.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut s = f.replace(' ', "T");
    if s.len() == 10 {
        s.push_str("T00:00:00");
    }
    if !s.ends_with(['Z', 'z']) {
        s.push('Z');
    }
    crate::utc::parse_rfc3339(s.as_bytes())
}

/// `YYYYMMDD` (eight digits, year 1900..=2199, a real month and day) at midnight UTC.
fn parse_yyyymmdd(f: &str) -> Option<Ts> {
    if f.len() != 8 || !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d) = (f[..4].parse::<i64>().ok()?, f[4..6].parse::<i64>().ok()?, f[6..].parse::<i64>().ok()?);
    if !(1900..=2199).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = crate::utc::days_from_civil(y, m, d);
    // A day that does not exist (20240231) comes back as another date: not a date.
    let (yy, mm, dd) = crate::utc::civil_from_days(days);
    if (yy, i64::from(mm), i64::from(dd)) != (y, m, d) {
        return None;
    }
    days.checked_mul(86_400 * crate::types::NS_PER_SEC)
}

/// `[-]digits[.digits]` since the epoch, its unit by the magnitude of the integer part
/// (see [`parse_time`]), exactly (fraction digits below the nanosecond dropped);
/// `None` if not such a number or out of range.
fn parse_epoch_number(f: &str) -> Option<Ts> {
    let (neg, body) = match f.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, f),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !(frac.is_empty() || digits(frac)) {
        return None;
    }
    let i: i128 = int.parse().ok()?;
    let scale: i128 = match i {
        i if i >= 100_000_000_000_000_000 => 1,
        i if i >= 100_000_000_000_000 => 1_000,
        i if i >= 100_000_000_000 => 1_000_000,
        _ => 1_000_000_000,
    };
    let mut ns = i.checked_mul(scale)?;
    let mut unit = scale;
    for b in frac.bytes() {
        unit /= 10;
        if unit == 0 {
            break;
        }
        ns += i128::from(b - b'0') * unit;
    }
    Ts::try_from(if neg { -ns } else { ns }).ok()
}

impl KalmanSeries {
    /// Reads the output of `statarb kalman` ([`crate::signal::csv::filter_csv`]: the
    /// input's columns and `beta,alpha,e,q,z`) from `path`: columns `y` and `x`,
    /// `beta` and `z`, and the time from the first of [`TIME_COLUMNS`] present if every
    /// row's parses ([`parse_time`]) and never goes back; otherwise rows are plotted
    /// by index. Empty output fields (rows the filter rejected) are `NaN`.
    pub fn read_filtered_csv(path: &Path, y: &str, x: &str) -> Result<KalmanSeries, PlotError> {
        let f = std::fs::File::open(path).map_err(|source| PlotError::Io { path: path.to_path_buf(), source })?;
        KalmanSeries::from_filtered_csv(std::io::BufReader::new(f), path, y, x)
    }

    /// [`Self::read_filtered_csv`] from a reader; `name` names it in errors.
    pub fn from_filtered_csv<R: Read>(input: R, name: &Path, y: &str, x: &str) -> Result<KalmanSeries, PlotError> {
        let csv_err = |line: u64, msg: String| PlotError::Csv { path: name.to_path_buf(), line, msg };
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
        let header: Vec<String> = rdr
            .headers()
            .map_err(|e| csv_err(1, e.to_string()))?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        let col = |want: &str| -> Result<usize, PlotError> {
            header.iter().rposition(|h| h == want).ok_or_else(|| PlotError::Column {
                path: name.to_path_buf(),
                column: want.to_string(),
                available: header.join(","),
            })
        };
        let (iy, ix, ib, iz) = (col(y)?, col(x)?, col("beta")?, col("z")?);
        let it = TIME_COLUMNS.iter().find_map(|c| header.iter().position(|h| h.to_ascii_lowercase() == *c));
        let mut s = KalmanSeries { y_name: y.to_string(), x_name: x.to_string(), ..KalmanSeries::default() };
        let mut times: Option<Vec<Ts>> = it.map(|_| Vec::new());
        let mut rec = csv::StringRecord::new();
        let mut line = 1u64;
        loop {
            match rdr.read_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(csv_err(line + 1, e.to_string())),
            }
            line = rec.position().map_or(line + 1, |p| p.line());
            let num = |i: usize| rec.get(i).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(f64::NAN);
            s.y.push(num(iy));
            s.x.push(num(ix));
            s.beta.push(num(ib));
            s.z.push(num(iz));
            if let (Some(i), Some(ts)) = (it, times.as_mut()) {
                match rec.get(i).and_then(parse_time) {
                    Some(t) if ts.last().is_none_or(|&p| p <= t) => ts.push(t),
                    _ => times = None,
                }
            }
        }
        s.time = times;
        Ok(s)
    }
}

/// Writes `statarb kalman --plot FILE.svg`: three panels over time (or row index):
/// `y` and `x` rebased to 100 at their first finite value (to compare their moves
/// on one axis), beta (its axis on the 1st..99th percentile, the filter's start from
/// its prior drawn at the edge), and z with `+/- 1` (Chan's entry, `|e| = sqrt(Q)`)
/// and `+/- 2`. `caption` heads the figure (e.g. the input file and the settings).
pub fn write_kalman_plot(path: &Path, s: &KalmanSeries, caption: &str) -> Result<(), PlotError> {
    let n = [s.y.len(), s.x.len(), s.beta.len(), s.z.len()].into_iter().min().unwrap_or(0);
    if n == 0 {
        return Err(PlotError::NoSamples);
    }
    let (x_axis, t): (XAxis, Vec<f64>) = match s.time.as_ref().filter(|t| t.len() >= n) {
        Some(ts) => {
            let ax = TimeAxis::new(ts[0], ts[n - 1]);
            let t = ts[..n].iter().map(|&v| ax.x(v)).collect();
            (XAxis::Time(ax), t)
        }
        None => (XAxis::Index { n }, (0..n).map(|i| i as f64).collect()),
    };
    let rebased = |v: &[f64]| -> Vec<f64> {
        match v[..n].iter().find(|x| x.is_finite() && **x != 0.0) {
            Some(&b) => v[..n].iter().map(|x| 100.0 * x / b).collect(),
            None => v[..n].to_vec(),
        }
    };
    let mut prices = Panel::new(format!("{} and {}, rebased to 100", s.y_name, s.x_name), "rebased price");
    prices.lines = vec![
        Line::new(format!("{} (y)", s.y_name), BLUE, &t, &rebased(&s.y)),
        Line::new(format!("{} (x)", s.x_name), ORANGE, &t, &rebased(&s.x)),
    ];
    let mut beta = Panel::new(format!("Hedge ratio beta ({} = alpha + beta * {})", s.y_name, s.x_name), "beta");
    beta.lines = vec![Line::new("beta (Kalman)", BLUE, &t, &clip_to_bulk(&s.beta[..n], None))];
    let mut z = Panel::new("z = e / sqrt(Q)", "z");
    z.lines = vec![Line::new("z", BLACK, &t, &s.z[..n])];
    for (lvl, label, color) in [(1.0, "+/- 1 (|e| = sqrt(Q))", RED), (2.0, "+/- 2", STOP)] {
        for y in [lvl, -lvl] {
            z.hlines.push(HLine { label: label.into(), color, y });
        }
    }
    figure(path, Some(caption), &[prices, beta, z], &x_axis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::trace::{FillRecord, Sample, SignalRecord};

    /// `n` samples 100 ms apart: sine-wave prices, a NaN prefix for the mids (books
    /// not yet two-sided) and for beta and z (no signal yet), a NaN gap in the middle
    /// of z, and step positions.
    fn synthetic(n: usize) -> Trace {
        let samples = (0..n)
            .map(|i| {
                let x = i as f64 / 500.0;
                let nan_if = |c: bool, v: f64| if c { f64::NAN } else { v };
                let pos = if (i / 1000) % 2 == 1 { 0.01 } else { 0.0 };
                Sample {
                    ts: 1_700_000_000_000_000_000 + i as i64 * 100_000_000,
                    mid: [nan_if(i < 10, 61_000.0 + 50.0 * x.sin()), nan_if(i < 10, 2_650.0 + 3.0 * x.cos())],
                    beta: nan_if(i < 100, 0.0434 + 0.001 * (x / 7.0).sin()),
                    z: nan_if(i < 100 || (n / 2..n / 2 + 5000).contains(&i), 2.5 * (x / 3.0).sin()),
                    position: [pos, -pos * 23.0],
                    target: [if pos > 0.0 { 0.01 } else { 0.0 }, -pos * 23.0],
                    gross_pnl: 0.01 * i as f64 + x.sin(),
                    fees: 0.001 * i as f64,
                    net_pnl: 0.009 * i as f64 + x.sin(),
                }
            })
            .collect();
        Trace {
            symbols: ["ETHUSDT".into(), "BTCUSDT".into()],
            entry_z: 2.0,
            exit_z: 0.5,
            sample_interval_ns: 100_000_000,
            samples,
            ..Trace::default()
        }
    }

    fn decision(ts: Ts, state: Spread) -> Decision {
        Decision {
            ts,
            fills_before: 0,
            signal: true,
            state,
            killed: false,
            z: 0.0,
            beta: 2.0,
            target: [0.0; 2],
            mid: [0.0; 2],
            position: [0.0; 2],
        }
    }

    fn fill(ts: Ts, leg: usize, side: Side, px: f64, qty: f64, fee: f64, position: f64) -> FillRecord {
        FillRecord {
            ts,
            leg,
            order_id: 1,
            side,
            px,
            qty,
            fee,
            maker: true,
            queue_wait_ns: 0,
            mid: None,
            position,
            target: position,
            signal_mid: None,
            toward_target: true,
        }
    }

    #[test]
    fn writes_four_small_svgs_with_lines_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("plots");
        let mut trace = synthetic(100_000);
        let first = trace.samples[0].ts;
        trace.decisions = vec![
            decision(first + 1_000 * NS_PER_SEC, Spread::Long),
            decision(first + 2_000 * NS_PER_SEC, Spread::Flat),
            decision(first + 3_000 * NS_PER_SEC, Spread::Short),
            decision(first + 4_000 * NS_PER_SEC, Spread::Stopped),
        ];
        trace.fills = (0..5_000)
            .map(|i| {
                let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
                fill(first + i * 2 * NS_PER_SEC, (i % 3 == 0) as usize, side, 61_000.0, 0.01, 0.01, 0.0)
            })
            .collect();
        trace.signals = (0..1_000)
            .map(|i| SignalRecord {
                ts_ns: first + i * NS_PER_SEC,
                mid_y: 1.0,
                mid_x: 1.0,
                beta: 0.04,
                alpha: 0.0,
                e: 0.0,
                q: 1.0,
                z: 0.0,
                state: Spread::Flat,
                target_y: 0.0,
                target_x: 0.0,
            })
            .collect();
        let truth = Truth {
            beta: (0..10_000)
                .map(|i| (first + i * NS_PER_SEC, 0.0434 + if i < 6_000 { 0.0 } else { -0.003 }))
                .collect(),
            break_ts: Some(first + 6_000 * NS_PER_SEC),
        };
        let params = PlotParams { stop_z: Some(4.0), warmup: 600 };
        let paths = write_plots(&trace, &out, Some(&truth), &params).unwrap();
        let names: Vec<_> = paths.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["equity.svg", "prices.svg", "signal.svg", "inventory.svg"]);
        for p in &paths {
            let svg = std::fs::read_to_string(p).unwrap();
            assert!(svg.trim_start().starts_with("<svg"), "{p:?}");
            assert!(svg.trim_end().ends_with("</svg>"), "{p:?}");
            assert!(svg.contains("<polyline") || svg.contains("<path"), "{p:?}");
            assert!(svg.contains("<text"), "{p:?}: no labels");
            assert!(svg.contains("UTC time, 2023-11-14 to 2023-11-15"), "{p:?}: no UTC axis");
            assert!(svg.len() < 600_000, "{p:?}: {} bytes", svg.len());
        }
        let signal = std::fs::read_to_string(&paths[2]).unwrap();
        for label in [
            "entry z",
            "exit z",
            "stop z (4)",
            "beta (Kalman)",
            "true beta",
            "beta break",
            "long spread",
            "short spread",
            "stopped",
            "warm-up (600 signals)",
        ] {
            assert!(signal.contains(label), "{label}");
        }
        let prices = std::fs::read_to_string(&paths[1]).unwrap();
        assert!(prices.contains("ETHUSDT (y leg) mid"));
        assert!(prices.contains("buy fills (") && prices.contains("sell fills ("));
        let equity = std::fs::read_to_string(&paths[0]).unwrap();
        for label in ["signal (targets at the mids", "ETHUSDT (y leg)", "BTCUSDT (x leg)", "drawdown ("] {
            assert!(equity.contains(label), "{label}");
        }
    }

    #[test]
    fn short_and_all_nan_traces_still_plot() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = synthetic(1);
        t.samples[0].beta = f64::NAN;
        t.entry_z = f64::NAN;
        let p = PlotParams::default();
        let paths = write_plots(&t, dir.path(), None, &p).unwrap();
        assert_eq!(paths.len(), 4);
        assert!(std::fs::read_to_string(&paths[0]).unwrap().contains("UTC time, 2023-11-14"));
        assert!(matches!(write_plots(&Trace::default(), dir.path(), None, &p), Err(PlotError::NoSamples)));
        // A break outside the plotted span draws no marker.
        let truth = Truth { beta: vec![], break_ts: Some(t.samples[0].ts - NS_PER_SEC) };
        let paths = write_plots(&t, dir.path(), Some(&truth), &p).unwrap();
        assert!(!std::fs::read_to_string(&paths[2]).unwrap().contains("beta break"));
    }

    /// Known instants, before the epoch too, a leap day, and each format.
    #[test]
    fn utc_labels() {
        let hm = TimeFormat { date: DatePart::None, clock: ClockPart::Minutes };
        let mdhm = TimeFormat { date: DatePart::MonthDay, clock: ClockPart::Minutes };
        let full = TimeFormat { date: DatePart::Full, clock: ClockPart::Seconds };
        // 2024-08-09T14:05:30.25Z
        let t = 1_723_161_600 * NS_PER_SEC + (14 * 3600 + 5 * 60 + 30) * NS_PER_SEC + 250_000_000;
        assert_eq!(utc_label(t, hm), "14:05");
        assert_eq!(utc_label(t, mdhm), "08-09 14:05");
        assert_eq!(utc_label(t, full), "2024-08-09 14:05:30");
        assert_eq!(utc_label(t, TimeFormat { date: DatePart::None, clock: ClockPart::Fraction(2) }), "14:05:30.25");
        assert_eq!(utc_label(t, TimeFormat { date: DatePart::MonthDay, clock: ClockPart::None }), "08-09");
        assert_eq!(utc_label(0, full), "1970-01-01 00:00:00");
        assert_eq!(utc_label(-1, full), "1969-12-31 23:59:59");
        assert_eq!(utc_label(951_868_799 * NS_PER_SEC, full), "2000-02-29 23:59:59");
        assert_eq!(utc_label(951_868_800 * NS_PER_SEC, full), "2000-03-01 00:00:00");
    }

    /// Steps, ticks on the clock, and the format each span gets.
    #[test]
    fn time_axis_ticks_on_the_clock() {
        let day0 = 1_723_161_600 * NS_PER_SEC; // 2024-08-09T00:00Z
        let at = |h: i64, m: i64| day0 + (h * 3600 + m * 60) * NS_PER_SEC;
        // 2.26 h from 14:03: every 15 min, 14:15 first, HH:MM, no date.
        let ax = TimeAxis::new(at(14, 3), at(16, 19));
        let labels: Vec<String> = ax.ticks.iter().map(|&t| utc_label(t, ax.format)).collect();
        assert_eq!(labels, ["14:15", "14:30", "14:45", "15:00", "15:15", "15:30", "15:45", "16:00", "16:15"]);
        assert_eq!(ax.description(), "UTC time, 2024-08-09");
        assert!((ax.x(at(14, 3)) - (14.0 * 3600.0 + 180.0)).abs() < 1e-6);
        assert_eq!(ax.ts_of(ax.x(at(15, 0))), at(15, 0));
        // Across midnight: MM-DD HH:MM.
        let ax = TimeAxis::new(at(20, 0), at(28, 0));
        assert_eq!(ax.format, TimeFormat { date: DatePart::MonthDay, clock: ClockPart::Minutes });
        assert_eq!(utc_label(ax.ticks[0], ax.format), "08-09 20:00");
        assert_eq!(ax.description(), "UTC time, 2024-08-09 to 2024-08-10");
        // Two weeks: daily ticks or coarser, dates only.
        let ax = TimeAxis::new(day0, day0 + 14 * 86_400 * NS_PER_SEC);
        assert_eq!(ax.format.clock, ClockPart::None);
        assert_eq!(utc_label(ax.ticks[0], ax.format), "08-09");
        // Across new year: full dates.
        let ax = TimeAxis::new(day0, day0 + 200 * 86_400 * NS_PER_SEC);
        assert_eq!(ax.format.date, DatePart::Full);
        // 90 s: every 10 s, with seconds; 2 s: every 0.5 s, one decimal.
        let ax = TimeAxis::new(at(9, 0), at(9, 0) + 90 * NS_PER_SEC);
        assert_eq!(ax.format.clock, ClockPart::Seconds);
        assert_eq!(utc_label(ax.ticks[1], ax.format), "09:00:10");
        let ax = TimeAxis::new(at(9, 0), at(9, 0) + 2 * NS_PER_SEC);
        assert_eq!(ax.format.clock, ClockPart::Fraction(1));
        assert_eq!(utc_label(ax.ticks[1], ax.format), "09:00:00.5");
        // Every axis: at most MAX_TIME_TICKS distinct labels, in order.
        for span_s in [1, 7, 59, 61, 600, 3599, 3601, 8136, 86_399, 86_401, 400_000, 3_000_000, 40_000_000, 400_000_000]
        {
            let ax = TimeAxis::new(at(13, 7), at(13, 7) + span_s * NS_PER_SEC);
            let labels: Vec<String> = ax.ticks.iter().map(|&t| utc_label(t, ax.format)).collect();
            assert!(!labels.is_empty() && labels.len() <= MAX_TIME_TICKS, "{span_s}: {labels:?}");
            let mut dedup = labels.clone();
            dedup.dedup();
            assert_eq!(dedup, labels, "{span_s}");
        }
        // A single instant gets a one-second axis.
        assert_eq!(TimeAxis::new(day0, day0).t1, day0 + NS_PER_SEC);
    }

    /// Enough decimals to tell the ticks apart, and no more than the step needs.
    #[test]
    fn tick_labels_resolve_the_step() {
        // Beta 0.0425 ..= 0.0445: ticks every 0.0002, 4 decimals.
        assert_eq!(tick_decimals(0.0425, 0.0445), 4);
        // z from -5.5 to 5.5: every 1, whole numbers; -3 to 3 too (0.5 gives 13 ticks).
        assert_eq!(tick_decimals(-5.5, 5.5), 0);
        assert_eq!(tick_decimals(-3.0, 3.0), 0);
        // 0 to 1: every 0.1.
        assert_eq!(tick_decimals(0.0, 1.0), 1);
        assert_eq!(tick_decimals(0.0, 0.001), 4);
        // BTC from 60 000 to 62 000: no decimals.
        assert_eq!(tick_decimals(60_000.0, 62_000.0), 0);
        assert_eq!(tick_decimals(1.0, 1.0), 2);
        assert_eq!(tick_decimals(0.0, f64::NAN), 2);
        assert_eq!(tick_decimals(0.0, 1e-9), 10);
        // 61000 ..= 61000.5, padded: ticks every 0.05 (a step predicted as 0.1).
        assert_eq!(tick_decimals(60_999.975, 61_000.525), 2);
    }

    /// The labels plotters puts on a value axis, formatted as the panels format them,
    /// are distinct: a beta axis around 0.04344 spanning 1e-5 (the case that printed
    /// `0.04344` twice), and a spread of other spans and offsets.
    #[test]
    fn value_axis_labels_are_distinct() {
        use plotters::coord::ranged1d::Ranged;
        use plotters::coord::types::RangedCoordf64;
        let labels = |lo: f64, hi: f64| -> Vec<String> {
            let (y0, y1) = padded(Some((lo, hi)));
            let d = tick_decimals(y0, y1);
            let r: RangedCoordf64 = (y0..y1).into();
            r.key_points(11usize).iter().map(|v| format!("{v:.d$}")).collect()
        };
        let beta = labels(0.043435, 0.043445);
        assert!(beta.len() >= 3, "{beta:?}");
        assert!(beta.iter().all(|l| l.starts_with("0.04343") || l.starts_with("0.04344")), "{beta:?}");
        let mut cases = vec![(0.043435, 0.043445), (61_000.0, 61_000.5), (-0.2, 15.0), (2650.0, 2650.01)];
        for k in 0..200 {
            let c = 10f64.powi(k % 13 - 6) * (1.0 + k as f64 * 0.37);
            cases.push((c, c + 10f64.powi(k % 7 - 5) * (1.0 + (k % 11) as f64 * 0.71)));
        }
        for (lo, hi) in cases {
            let l = labels(lo, hi);
            let mut d = l.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), l.len(), "{lo}..{hi}: {l:?}");
        }
    }

    /// Flat from the start, a state per decision, repeated states merged, decisions
    /// before the start setting it and after the end ignored.
    #[test]
    fn state_intervals_cover_the_span() {
        let s = 100;
        let d = [
            decision(50, Spread::Long),
            decision(150, Spread::Long),
            decision(200, Spread::Flat),
            decision(300, Spread::Short),
            decision(300, Spread::Stopped),
            decision(400, Spread::Flat),
            decision(900, Spread::Long),
        ];
        let iv = state_intervals(&d, s, 500);
        let got: Vec<(Ts, Ts, Spread)> = iv.iter().map(|i| (i.from, i.to, i.state)).collect();
        assert_eq!(
            got,
            [(100, 200, Spread::Long), (200, 300, Spread::Flat), (300, 400, Spread::Stopped), (400, 500, Spread::Flat)]
        );
        assert_eq!(state_intervals(&[], 0, 10), [StateInterval { from: 0, to: 10, state: Spread::Flat }]);
        assert!(state_intervals(&d, 10, 10).is_empty());
        // Warm-up: to the 3rd signal (0-based 2); none; the whole run.
        assert_eq!(warmup_end(&[10, 20, 30, 40], 2), Some(30));
        assert_eq!(warmup_end(&[10, 20], 0), None);
        assert_eq!(warmup_end(&[10, 20], 2), Some(Ts::MAX));
    }

    #[test]
    fn markers_are_thinned_to_the_envelope() {
        let pts: Vec<(f64, f64)> = (0..50_000).map(|i| (i as f64, (i as f64 / 300.0).sin())).collect();
        let mut with_spikes = pts.clone();
        with_spikes[1234].1 = 9.0;
        with_spikes[40_000].1 = -9.0;
        with_spikes[777].1 = f64::NAN;
        let out = thin_markers(&with_spikes, 0.0, 49_999.0, 1_000);
        assert!(out.len() <= 1_000 && out.len() > 900, "{}", out.len());
        assert!(out.contains(&(1234.0, 9.0)) && out.contains(&(40_000.0, -9.0)));
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "time order kept");
        assert!(out.iter().all(|p| p.1.is_finite()));
        // Few markers are kept whole (NaNs dropped); one bucket for a zero-width span.
        assert_eq!(thin_markers(&pts[..10], 0.0, 9.0, 1_000), &pts[..10]);
        assert_eq!(thin_markers(&[(0.0, f64::NAN), (1.0, 2.0)], 0.0, 1.0, 10), [(1.0, 2.0)]);
        assert_eq!(thin_markers(&[(5.0, 1.0), (5.0, 3.0), (5.0, 2.0)], 5.0, 5.0, 2), [(5.0, 1.0), (5.0, 3.0)]);
    }

    /// Long 1 y / short 2 x at [100, 50] at 10 s, flat at [104, 51] at 20 s: the samples
    /// at 5, 15 (mids [102, 50.5]) and 25 s give 0, `2 - 1 = 1`, and `4 - 2 = 2`.
    #[test]
    fn signal_equity_marks_the_paper_portfolio() {
        let d = |ts: i64, state, target, mid| Decision { target, mid, ..decision(ts * NS_PER_SEC, state) };
        let mut t = synthetic(3);
        for (s, (ts, mid)) in t.samples.iter_mut().zip([(5, [99.0, 49.0]), (15, [102.0, 50.5]), (25, [110.0, 60.0])]) {
            s.ts = ts * NS_PER_SEC;
            s.mid = mid;
        }
        t.decisions =
            vec![d(10, Spread::Long, [1.0, -2.0], [100.0, 50.0]), d(20, Spread::Flat, [0.0, 0.0], [104.0, 51.0])];
        assert_eq!(signal_equity(&t), vec![0.0, 1.0, 2.0]);
    }

    /// Buy 1 y at 100 (fee 0.1) at 10 s, sell 2 x at 50 (fee 0.2) at 10 s, sell the y at
    /// 103 (fee 0.1) at 20 s. At 15 s (mids 102, 51): y `-100.1 + 102 = 1.9`, x
    /// `99.8 - 102 = -2.2`; at 25 s (x mid 49): y `2.8`, x `1.8`. Drawdown from it.
    #[test]
    fn per_leg_pnl_and_drawdown() {
        let mut t = synthetic(3);
        for (s, (ts, mid)) in t.samples.iter_mut().zip([(5, [99.0, 49.0]), (15, [102.0, 51.0]), (25, [110.0, 49.0])]) {
            s.ts = ts * NS_PER_SEC;
            s.mid = mid;
        }
        t.fills = vec![
            fill(10 * NS_PER_SEC, 0, Side::Buy, 100.0, 1.0, 0.1, 1.0),
            fill(10 * NS_PER_SEC, 1, Side::Sell, 50.0, 2.0, 0.2, -2.0),
            fill(20 * NS_PER_SEC, 0, Side::Sell, 103.0, 1.0, 0.1, 0.0),
        ];
        let [y, x] = leg_pnl(&t);
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-9);
        assert!(close(&y, &[0.0, 1.9, 2.8]), "{y:?}");
        assert!(close(&x, &[0.0, -2.2, 1.8]), "{x:?}");
        assert_eq!(
            drawdown(&[1.0, 3.0, 2.0, f64::NAN, 0.5, 4.0]).iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            ["0", "0", "-1", "NaN", "-2.5", "0"]
        );
    }

    #[test]
    fn downsampling_keeps_extremes_and_gaps() {
        let n = 100_000;
        let t: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut y: Vec<f64> = (0..n).map(|i| (i as f64 / 1000.0).sin()).collect();
        y[12_345] = 50.0;
        y[54_321] = -50.0;
        for v in &mut y[70_000..71_000] {
            *v = f64::NAN;
        }
        let segs = segments(&t, &y, MAX_POINTS);
        let pts: Vec<(f64, f64)> = segs.iter().flatten().copied().collect();
        assert!(pts.len() <= MAX_POINTS);
        assert!(pts.contains(&(12_345.0, 50.0)) && pts.contains(&(54_321.0, -50.0)));
        assert_eq!(segs.len(), 2, "the NaN run spans whole buckets and breaks the line");
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0), "time order kept");
        // Short series are kept whole, NaNs splitting them.
        let segs = segments(&[0.0, 1.0, 2.0, 3.0], &[1.0, f64::NAN, 2.0, 3.0], MAX_POINTS);
        assert_eq!(segs, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
        assert!(segments(&[0.0], &[f64::NAN], MAX_POINTS).is_empty());
    }

    #[test]
    fn time_fields_parse() {
        assert_eq!(parse_time("1723161601234000000"), Some(1_723_161_601_234_000_000));
        assert_eq!(parse_time("1723161601234000"), Some(1_723_161_601_234_000_000));
        assert_eq!(parse_time("1723161601234"), Some(1_723_161_601_234_000_000));
        assert_eq!(parse_time("1723161601"), Some(1_723_161_601_000_000_000));
        assert_eq!(parse_time("1723161601.5"), Some(1_723_161_601_500_000_000));
        assert_eq!(parse_time("2024-08-09T00:00:01.234Z"), Some(1_723_161_601_234_000_000));
        assert_eq!(parse_time("2024-08-09 00:00:01"), Some(1_723_161_601_000_000_000));
        assert_eq!(parse_time("2024-08-09"), Some(1_723_161_600_000_000_000));
        assert_eq!(parse_time("20060426"), Some(1_146_009_600_000_000_000));
        // Eight digits that are no date are seconds.
        assert_eq!(parse_time("20240231"), Some(20_240_231_000_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("NaN"), None);
    }

    /// The output of `statarb kalman`, its time column, empty output fields, index
    /// fallback, a missing column; the plot and the equity curve written.
    #[test]
    fn kalman_plot_and_equity_curve() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("date,ewa,ewc,beta,alpha,e,q,z\n");
        for i in 0..500 {
            let day = 1_136_073_600 + i * 86_400; // from 2006-01-01
            let date = utc_label(day * NS_PER_SEC, TimeFormat { date: DatePart::Full, clock: ClockPart::None });
            let (b, z) = if i == 3 {
                (String::new(), String::new())
            } else {
                ("0.9".into(), format!("{}", (i as f64 / 20.0).sin()))
            };
            text.push_str(&format!("{date},{},{},{b},0.1,0.0,1.0,{z}\n", 10.0 + i as f64 * 0.01, 11.0));
        }
        let p = dir.path().join("k.csv");
        std::fs::write(&p, &text).unwrap();
        let s = KalmanSeries::read_filtered_csv(&p, "ewc", "ewa").unwrap();
        assert_eq!(s.y.len(), 500);
        assert_eq!(s.time.as_ref().unwrap()[1], 1_136_160_000 * NS_PER_SEC);
        assert!(s.beta[3].is_nan() && s.z[3].is_nan() && s.beta[4] == 0.9);
        let svg = dir.path().join("k.svg");
        write_kalman_plot(&svg, &s, "kalman k.csv").unwrap();
        let out = std::fs::read_to_string(&svg).unwrap();
        assert!(out.contains("UTC time, 2006-01-01 to 2007-05-15") && out.contains("beta (Kalman)"), "axis");
        // Bad times: by index.
        let bad = text.replacen("2006-01-03", "someday", 1);
        let s = KalmanSeries::from_filtered_csv(bad.as_bytes(), Path::new("b.csv"), "ewc", "ewa").unwrap();
        assert!(s.time.is_none());
        write_kalman_plot(&svg, &s, "by index").unwrap();
        let by_index = std::fs::read_to_string(&svg).unwrap();
        assert!(by_index.contains("row") && !by_index.contains("UTC time"));
        let e = KalmanSeries::from_filtered_csv(text.as_bytes(), Path::new("b.csv"), "nope", "ewa").unwrap_err();
        assert!(e.to_string().contains("b.csv: no column `nope`"), "{e}");
        assert!(matches!(write_kalman_plot(&svg, &KalmanSeries::default(), ""), Err(PlotError::NoSamples)));

        let t0 = 1_723_161_600 * NS_PER_SEC;
        let pts: Vec<(Ts, f64)> =
            (0..20_000).map(|i| (t0 + i * 30 * NS_PER_SEC, (i as f64 / 900.0).sin() * 5.0 + i as f64 * 1e-3)).collect();
        let eq = dir.path().join("wf.svg");
        write_equity_curve(&eq, &pts, "walk-forward: stitched out-of-sample equity").unwrap();
        let out = std::fs::read_to_string(&eq).unwrap();
        assert!(out.contains("walk-forward") && out.contains("drawdown (max -") && out.contains("Equity (final"));
        assert!(matches!(write_equity_curve(&eq, &[], ""), Err(PlotError::NoSamples)));
    }
}
