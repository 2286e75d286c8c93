//! SVG plots of a backtest [`Trace`], drawn with `plotters` (SVG backend only).
//!
//! Four files: `equity.svg` (net and gross PnL), `prices.svg` (each leg's mid in its
//! own panel, in price units), `signal.svg` (hedge ratio beta; z-score with the entry
//! and exit thresholds) and `inventory.svg` (position and target, one panel per leg).
//! The time axis is seconds from the first sample, or hours for runs of two hours and
//! more.
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
use crate::types::NS_PER_SEC;

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

/// One chart: a caption, an y axis description, lines and reference lines.
struct Panel {
    caption: String,
    y_desc: String,
    lines: Vec<Line>,
    hlines: Vec<HLine>,
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
/// shows.
pub fn write_plots(trace: &Trace, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
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
        ],
        hlines: vec![],
    }];
    let prices: Vec<Panel> = legs
        .iter()
        .map(|&(leg, sym, role)| Panel {
            caption: format!("{sym} ({role} leg) mid"),
            y_desc: "price".into(),
            lines: vec![Line::new(format!("{sym} mid"), BLUE, &t, &col(&|s| s.mid[leg]))],
            hlines: vec![],
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
    let signal = [
        Panel {
            caption: format!("Hedge ratio beta ({y_sym} = alpha + beta * {x_sym})"),
            y_desc: "beta".into(),
            lines: vec![Line::new("beta", BLUE, &t, &col(&|s| s.beta))],
            hlines: vec![],
        },
        Panel {
            caption: "z-score with entry and exit thresholds".into(),
            y_desc: "z".into(),
            lines: vec![Line::new("z", BLACK, &t, &col(&|s| s.z))],
            hlines: z_lines,
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
        let paths = write_plots(&synthetic(100_000), &out).unwrap();
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
        for label in ["entry z", "exit z", "beta", "time from start (h)"] {
            assert!(signal.contains(label), "{label}");
        }
        assert!(std::fs::read_to_string(&paths[1]).unwrap().contains("ETHUSDT (y leg) mid"));
    }

    #[test]
    fn short_and_all_nan_traces_still_plot() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = synthetic(1);
        t.samples[0].beta = f64::NAN;
        t.entry_z = f64::NAN;
        let paths = write_plots(&t, dir.path()).unwrap();
        assert_eq!(paths.len(), 4);
        assert!(std::fs::read_to_string(&paths[0]).unwrap().contains("time from start (s)"));
        assert!(matches!(write_plots(&Trace::default(), dir.path()), Err(PlotError::NoSamples)));
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
