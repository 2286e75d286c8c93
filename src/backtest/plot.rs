//! SVG plots of a backtest [`Trace`], drawn with `plotters` (SVG backend only).
//!
//! Four files: `equity.svg` (net and gross PnL, and the signal PnL of
//! [`super::stats::signal_pnl`] marked at each sample's mids), `prices.svg` (each leg's mid in its
//! own panel, in price units), `signal.svg` (hedge ratio beta; z-score with the entry
//! and exit thresholds) and `inventory.svg` (position and target, one panel per leg).
//! The time axis is seconds from the first sample, or hours for runs of two hours and
//! more. Given the generator's [`Truth`], `signal.svg` also draws the true beta and a
//! vertical marker at the break on both panels.
//!
//! Tick labels carry as many decimals as the axis needs to tell its ticks apart
//! ([`tick_decimals`]): a beta around 0.0434 that moves by 0.001 is labelled
//! `0.0430, 0.0435, ...`, not `0.04` five times.
//!
//! Text: the crate enables no font backend of plotters (no `ttf`, no `ab_glyph`), so
//! plotters lays text out with its "naive" font metrics (a width estimate per
//! character) and the SVG backend writes plain `<text>` elements that the viewer
//! renders with its own fonts. Captions, axis descriptions, tick labels and legends
//! therefore all work; only their bounding boxes are estimates.
//!
//! Size: each series is reduced to at most [`MAX_POINTS`] points by keeping the
//! minimum and the maximum of each of `MAX_POINTS / 2` buckets of consecutive samples,
//! so spikes survive downsampling and a file stays around 100 kB whatever the run
//! length. `NaN` values are gaps: the line is broken there (a gap shorter than a
//! bucket disappears at that resolution).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use thiserror::Error;

use super::trace::Trace;
use crate::types::{Ts, NS_PER_SEC};

/// The true hedge ratio of a generated data set, drawn over the estimate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// `(time, beta)` samples in time order (exchange time of the generator).
    pub beta: Vec<(Ts, f64)>,
    /// Time of the structural break of beta, if the data reaches it.
    pub break_ts: Option<Ts>,
}

/// Most points drawn per series (per panel line).
pub const MAX_POINTS: usize = 2000;

/// Width and height of every figure, pixels.
const SIZE: (u32, u32) = (1200, 700);

/// Errors from [`write_plots`].
#[derive(Debug, Error)]
pub enum PlotError {
    /// The trace has no samples: there is nothing to draw.
    #[error("the trace has no samples to plot")]
    NoSamples,
    /// The output directory could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The directory.
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
        self.segments.iter().flatten().map(|p| p.1).fold(None, |r, y| match r {
            None => Some((y, y)),
            Some((lo, hi)) => Some((f64::min(lo, y), f64::max(hi, y))),
        })
    }
}

/// A horizontal reference line across a panel.
struct HLine {
    label: String,
    color: RGBColor,
    y: f64,
}

/// A vertical marker across a panel, at `x` on the time axis.
struct VLine {
    label: String,
    color: RGBColor,
    x: f64,
}

/// One chart: a caption, an y axis description, lines and reference lines.
struct Panel {
    caption: String,
    y_desc: String,
    lines: Vec<Line>,
    hlines: Vec<HLine>,
    vlines: Vec<VLine>,
}

/// Decimals that tell apart the tick labels of an axis spanning `lo..hi`. plotters
/// (`compute_f64_key_points`, at most 11 labels on an y axis) puts its ticks on the
/// smallest step of the form 1, 2 or 5 times a power of ten that gives at most 11 of
/// them, so the step is at least `(hi - lo) / 11` rounded up to that form; a step
/// `c * 10^k` needs `max(0, -k)` decimals. At most 12; 2 for an empty or non-finite
/// span.
fn tick_decimals(lo: f64, hi: f64) -> usize {
    let raw = (hi - lo) / 11.0;
    if !(raw.is_finite() && raw > 0.0) {
        return 2;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let step = p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    // The nudge keeps an exact power of ten computed a hair low from asking for one
    // more decimal.
    (-(step.log10() + 1e-6).floor()).clamp(0.0, 12.0) as usize
}

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

/// `(lo, hi)` widened by 5 % on each side, or by 1 when it is a single value; `(-1, 1)`
/// when there is nothing.
fn padded(range: Option<(f64, f64)>) -> (f64, f64) {
    match range {
        None => (-1.0, 1.0),
        Some((lo, hi)) if hi - lo <= f64::EPSILON * (lo.abs() + hi.abs()) => (lo - 1.0, hi + 1.0),
        Some((lo, hi)) => {
            let pad = 0.05 * (hi - lo);
            (lo - pad, hi + pad)
        }
    }
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

/// Merges two optional ranges.
fn union(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Draws one panel on `area`, x from 0 to `x_max`.
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel,
    x_desc: &str,
    x_max: f64,
) -> Result<(), String> {
    let range =
        panel.lines.iter().map(Line::y_range).chain(panel.hlines.iter().map(|h| Some((h.y, h.y)))).fold(None, union);
    let (y0, y1) = padded(range);
    let (dx, dy) = (tick_decimals(0.0, x_max), tick_decimals(y0, y1));
    let x_fmt = move |v: &f64| format!("{v:.dx$}");
    let y_fmt = move |v: &f64| format!("{v:.dy$}");
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(&panel.y_desc)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| e.to_string())?;
    let mut labelled = false;
    for line in &panel.lines {
        for (k, seg) in line.segments.iter().enumerate() {
            let color = line.color;
            let series = chart
                .draw_series(LineSeries::new(seg.iter().copied(), color.stroke_width(1)))
                .map_err(|e| e.to_string())?;
            if k == 0 {
                labelled = true;
                series
                    .label(line.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for h in &panel.hlines {
        let color = h.color;
        let series = chart
            .draw_series(DashedLineSeries::new(vec![(0.0, h.y), (x_max, h.y)], 6, 4, color.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        if !seen.contains(&h.label.as_str()) {
            seen.push(&h.label);
            labelled = true;
            series
                .label(h.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1)));
        }
    }
    for v in &panel.vlines {
        let color = v.color;
        let series = chart
            .draw_series(DashedLineSeries::new(vec![(v.x, y0), (v.x, y1)], 6, 4, color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        labelled = true;
        series
            .label(v.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if labelled {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Writes one figure of `panels` stacked vertically to `path`.
fn figure(path: &Path, panels: &[Panel], x_desc: &str, x_max: f64) -> Result<(), PlotError> {
    let err = |msg: String| PlotError::Draw { path: path.to_path_buf(), msg };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(area, panel, x_desc, x_max).map_err(err)?;
    }
    root.present().map_err(|e| err(e.to_string()))
}

/// Writes `equity.svg`, `prices.svg`, `signal.svg` and `inventory.svg` into `dir`
/// (created if missing) and returns their paths. See the module docs for what each
/// shows; `truth`, for generated data, adds the true beta and its break.
pub fn write_plots(trace: &Trace, dir: &Path, truth: Option<&Truth>) -> Result<Vec<PathBuf>, PlotError> {
    let samples = &trace.samples;
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) => (f.ts, l.ts),
        _ => return Err(PlotError::NoSamples),
    };
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Io { path: dir.to_path_buf(), source })?;

    let span_s = (last - first) as f64 / NS_PER_SEC as f64;
    let (unit, x_desc) = if span_s >= 7200.0 { (3600.0, "time from start (h)") } else { (1.0, "time from start (s)") };
    let t: Vec<f64> = samples.iter().map(|s| (s.ts - first) as f64 / NS_PER_SEC as f64 / unit).collect();
    let x_max = if span_s > 0.0 { span_s / unit } else { 1.0 };
    let col = |f: &dyn Fn(&super::trace::Sample) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
    let [y_sym, x_sym] = &trace.symbols;
    let legs = [(0usize, y_sym.as_str(), "y"), (1, x_sym.as_str(), "x")];

    let equity = [Panel {
        caption: "Equity: PnL marked at the mids".into(),
        y_desc: "PnL (quote asset)".into(),
        lines: vec![
            Line::new("net (after fees)", BLUE, &t, &col(&|s| s.net_pnl)),
            Line::new("gross (before fees)", RED, &t, &col(&|s| s.gross_pnl)),
            Line::new("signal (targets at the mids, no costs)", RGBColor(0, 140, 0), &t, &signal_equity(trace)),
        ],
        hlines: vec![],
        vlines: vec![],
    }];
    let prices: Vec<Panel> = legs
        .iter()
        .map(|&(leg, sym, role)| Panel {
            caption: format!("{sym} ({role} leg) mid"),
            y_desc: "price".into(),
            lines: vec![Line::new(format!("{sym} mid"), BLUE, &t, &col(&|s| s.mid[leg]))],
            hlines: vec![],
            vlines: vec![],
        })
        .collect();
    let mut z_lines = Vec::new();
    for (z, label, color) in [(trace.entry_z, "+/- entry z", RED), (trace.exit_z, "+/- exit z", GREEN)] {
        if z.is_finite() {
            for y in [z, -z] {
                z_lines.push(HLine { label: label.into(), color, y });
            }
        }
    }
    let x_of = |ts: Ts| (ts - first) as f64 / NS_PER_SEC as f64 / unit;
    // The filter starts from its prior, far from any hedge ratio: an axis scaled to
    // that transient would flatten the whole run. The axis spans the 1st to 99th
    // percentile of the estimate (and the truth), and values outside are drawn at the
    // edge.
    let betas = col(&|s| s.beta);
    let mut sorted: Vec<f64> = betas.iter().copied().filter(|b| b.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut beta_range = (!sorted.is_empty()).then(|| (sorted[sorted.len() / 100], sorted[sorted.len() * 99 / 100]));
    if let Some(truth) = truth {
        for &(_, b) in &truth.beta {
            beta_range = union(beta_range, Some((b, b)));
        }
    }
    let clipped: Vec<f64> = match beta_range {
        Some((lo, hi)) => {
            let pad = 0.1 * (hi - lo).max(hi.abs() * 1e-3);
            betas.iter().map(|b| b.clamp(lo - pad, hi + pad)).collect()
        }
        None => betas,
    };
    let mut beta_lines = vec![Line::new("beta (Kalman)", BLUE, &t, &clipped)];
    let mut breaks = Vec::new();
    if let Some(truth) = truth {
        let (tt, tb): (Vec<f64>, Vec<f64>) = truth.beta.iter().map(|&(ts, b)| (x_of(ts), b)).unzip();
        beta_lines.push(Line::new("true beta", RED, &tt, &tb));
        if let Some(b) = truth.break_ts.map(x_of).filter(|x| (0.0..=x_max).contains(x)) {
            breaks.push(b);
        }
    }
    let break_marks =
        || -> Vec<VLine> { breaks.iter().map(|&x| VLine { label: "beta break".into(), color: MAGENTA, x }).collect() };
    let signal = [
        Panel {
            caption: format!("Hedge ratio beta ({y_sym} = alpha + beta * {x_sym})"),
            y_desc: "beta".into(),
            lines: beta_lines,
            hlines: vec![],
            vlines: break_marks(),
        },
        Panel {
            caption: "z-score with entry and exit thresholds".into(),
            y_desc: "z".into(),
            lines: vec![Line::new("z", BLACK, &t, &col(&|s| s.z))],
            hlines: z_lines,
            vlines: break_marks(),
        },
    ];
    let inventory: Vec<Panel> = legs
        .iter()
        .map(|&(leg, sym, role)| Panel {
            caption: format!("{sym} ({role} leg) inventory"),
            y_desc: "base units".into(),
            lines: vec![
                Line::new("target", RED, &t, &col(&|s| s.target[leg])),
                Line::new("position", BLUE, &t, &col(&|s| s.position[leg])),
            ],
            hlines: vec![],
            vlines: vec![],
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
        figure(&path, panels, x_desc, x_max)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::trace::Sample;

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

    #[test]
    fn writes_four_small_svgs_with_lines_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("plots");
        let trace = synthetic(100_000);
        let first = trace.samples[0].ts;
        let truth = Truth {
            beta: (0..10_000)
                .map(|i| (first + i * NS_PER_SEC, 0.0434 + if i < 6_000 { 0.0 } else { -0.003 }))
                .collect(),
            break_ts: Some(first + 6_000 * NS_PER_SEC),
        };
        let paths = write_plots(&trace, &out, Some(&truth)).unwrap();
        let names: Vec<_> = paths.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["equity.svg", "prices.svg", "signal.svg", "inventory.svg"]);
        for p in &paths {
            let svg = std::fs::read_to_string(p).unwrap();
            assert!(svg.trim_start().starts_with("<svg"), "{p:?}");
            assert!(svg.trim_end().ends_with("</svg>"), "{p:?}");
            assert!(svg.contains("<polyline") || svg.contains("<path"), "{p:?}");
            assert!(svg.contains("<text"), "{p:?}: no labels");
            assert!(svg.len() < 400_000, "{p:?}: {} bytes", svg.len());
        }
        let signal = std::fs::read_to_string(&paths[2]).unwrap();
        for label in ["entry z", "exit z", "beta (Kalman)", "true beta", "beta break", "time from start (h)"] {
            assert!(signal.contains(label), "{label}");
        }
        assert!(std::fs::read_to_string(&paths[1]).unwrap().contains("ETHUSDT (y leg) mid"));
        assert!(std::fs::read_to_string(&paths[0]).unwrap().contains("signal (targets at the mids"));
    }

    #[test]
    fn short_and_all_nan_traces_still_plot() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = synthetic(1);
        t.samples[0].beta = f64::NAN;
        t.entry_z = f64::NAN;
        let paths = write_plots(&t, dir.path(), None).unwrap();
        assert_eq!(paths.len(), 4);
        assert!(std::fs::read_to_string(&paths[0]).unwrap().contains("time from start (s)"));
        assert!(matches!(write_plots(&Trace::default(), dir.path(), None), Err(PlotError::NoSamples)));
        // A break outside the plotted span draws no marker.
        let truth = Truth { beta: vec![], break_ts: Some(t.samples[0].ts - NS_PER_SEC) };
        let paths = write_plots(&t, dir.path(), Some(&truth)).unwrap();
        assert!(!std::fs::read_to_string(&paths[2]).unwrap().contains("beta break"));
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
        assert_eq!(tick_decimals(0.0, 1e-300), 12);
    }

    /// Long 1 y / short 2 x at [100, 50] at 10 s, flat at [104, 51] at 20 s: the samples
    /// at 5, 15 (mids [102, 50.5]) and 25 s give 0, `2 - 1 = 1`, and `4 - 2 = 2`.
    #[test]
    fn signal_equity_marks_the_paper_portfolio() {
        use crate::backtest::trace::{Decision, Spread};
        let d = |ts: i64, state, target, mid| Decision {
            ts: ts * NS_PER_SEC,
            fills_before: 0,
            signal: true,
            state,
            killed: false,
            z: 0.0,
            beta: 2.0,
            target,
            mid,
            position: [0.0; 2],
        };
        let mut t = synthetic(3);
        for (s, (ts, mid)) in t.samples.iter_mut().zip([(5, [99.0, 49.0]), (15, [102.0, 50.5]), (25, [110.0, 60.0])]) {
            s.ts = ts * NS_PER_SEC;
            s.mid = mid;
        }
        t.decisions =
            vec![d(10, Spread::Long, [1.0, -2.0], [100.0, 50.0]), d(20, Spread::Flat, [0.0, 0.0], [104.0, 51.0])];
        assert_eq!(signal_equity(&t), vec![0.0, 1.0, 2.0]);
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
}
