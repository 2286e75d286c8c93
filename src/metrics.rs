//! Latency histograms and their export.
//!
//! The live driver stamps each tick on the [`crate::clock::StampClock`] (the TSC where
//! invariant) at every stage it passes, and records the differences into
//! preallocated [`Histogram`]s: `new_with_bounds(1, 60 s, 3)` fixes the bucket array at
//! construction and `saturating_record` never resizes, so recording never allocates.
//!
//! ```text
//!  sent -> socket bytes -> parsed -> book -> signal -> quote -> risk -> pushed | popped -> written
//!  |Network-|-- Parse --|-- Book --|Signal-|-- Quote -|-- Risk -|-- Push --|- Hop -|- Send -|
//!            (hot thread)                                               (gateway thread)
//!  |------------------------------ WireToQuote ----------------------|
//!  |--------------------------------------- WireToOrder ----------------------------|
//!                      |---------------- TickToQuote ----------------|
//! ```
//!
//! `TickToQuote` and `Strategy` start when the hot loop has the event in hand (after
//! the feed parsed and synced it), as they always have, so that replays, which have no
//! socket, report the same figures. The wire stages exist only for a network source.
//! Stages of the core (`Book` to `Risk`) are recorded on the ticks where they ran.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// Highest trackable latency: 60 s in ns.
const MAX_NS: u64 = 60_000_000_000;

/// The stages recorded per tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The server's send stamp to the message's bytes in hand: loopback, kernel and
    /// WebSocket framing (`statarb latency --wire` only).
    Network = 0,
    /// Message bytes in hand to parsed.
    Parse,
    /// Parsed (or, for a replay, the event in hand) to the book applied.
    Book,
    /// Book applied to the signal sampled and the targets set.
    Signal,
    /// The A-S / GLFT quotes of the legs requoted.
    Quote,
    /// Risk checks and the order diff of the legs requoted.
    Risk,
    /// Event in hand to strategy done (book, signal, risk, quote, order diff).
    Strategy,
    /// Strategy done to the last order pushed into the ring.
    Push,
    /// Event in hand to the last order pushed: tick-to-quote.
    TickToQuote,
    /// From the wire to the last order pushed: wire-to-quote. The wire is the server's
    /// send stamp where it sends one (`latency --wire`), else the message's bytes in hand.
    WireToQuote,
    /// Pushed into the ring to popped by the gateway thread: the ring hop.
    Hop,
    /// Popped to the request handed to the venue (written to its socket for the
    /// WebSocket API; for REST the call returns with the answer, so it includes the
    /// round trip; for the paper venue, matched).
    Send,
    /// Event in hand to the request written.
    TickToOrder,
    /// From the wire (as [`Stage::WireToQuote`]) to the request written: wire-to-order.
    WireToOrder,
}

/// Number of stages.
pub const STAGES: usize = 14;

impl Stage {
    /// All stages, in the order of the pipeline.
    pub const ALL: [Stage; STAGES] = [
        Stage::Network,
        Stage::Parse,
        Stage::Book,
        Stage::Signal,
        Stage::Quote,
        Stage::Risk,
        Stage::Strategy,
        Stage::Push,
        Stage::TickToQuote,
        Stage::WireToQuote,
        Stage::Hop,
        Stage::Send,
        Stage::TickToOrder,
        Stage::WireToOrder,
    ];

    /// A stable name for reports and file names.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Network => "network",
            Stage::Parse => "parse",
            Stage::Book => "book",
            Stage::Signal => "signal",
            Stage::Quote => "quote",
            Stage::Risk => "risk",
            Stage::Strategy => "strategy",
            Stage::Push => "push",
            Stage::TickToQuote => "tick_to_quote",
            Stage::WireToQuote => "wire_to_quote",
            Stage::Hop => "ring_hop",
            Stage::Send => "send",
            Stage::TickToOrder => "tick_to_order",
            Stage::WireToOrder => "wire_to_order",
        }
    }
}

/// One histogram per [`Stage`], in nanoseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    hists: [Histogram<u64>; STAGES],
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// Allocates every bucket now, so that recording never does.
    pub fn new() -> Self {
        Latencies {
            hists: std::array::from_fn(|_| Histogram::new_with_bounds(1, MAX_NS, 3).expect("static bounds are valid")),
        }
    }

    /// Records `ns` for a stage; values outside the bounds saturate.
    #[inline]
    pub fn record(&mut self, stage: Stage, ns: u64) {
        self.hists[stage as usize].saturating_record(ns.max(1));
    }

    /// The histogram of a stage.
    pub fn get(&self, stage: Stage) -> &Histogram<u64> {
        &self.hists[stage as usize]
    }

    /// Adds another set of histograms into this one.
    pub fn merge(&mut self, other: &Latencies) {
        for (a, b) in self.hists.iter_mut().zip(&other.hists) {
            // Same bounds on both sides, so `add` cannot fail.
            let _ = a.add(b);
        }
    }
}

/// p50, p99, p99.9 and max of a histogram, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
    /// Number of samples.
    pub count: u64,
}

impl Percentiles {
    /// Reads the percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        Percentiles {
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            count: h.len(),
        }
    }
}

/// Writes the standard HdrHistogram percentile distribution text (`.hgrm`, as
/// `HistogramLogProcessor` prints and the online plotter reads), values in
/// microseconds, five ticks per half-distance.
pub fn write_hgrm<W: Write>(h: &Histogram<u64>, mut w: W) -> io::Result<()> {
    const SCALE: f64 = 1_000.0; // ns -> us
    writeln!(w, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    let mut total = 0;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 { format!("{:14.2}", 1.0 / (1.0 - q)) } else { format!("{:>14}", "") };
        writeln!(w, "{:12.3} {:2.12} {:10} {}", v.value_iterated_to() as f64 / SCALE, q, total, inv)?;
    }
    let mean = h.mean() / SCALE;
    let sd = h.stdev() / SCALE;
    writeln!(w, "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]")?;
    writeln!(w, "#[Max     = {:12.3}, Total count    = {:12}]", h.max() as f64 / SCALE, h.len())?;
    writeln!(w, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), h.distinct_values())?;
    Ok(())
}

/// The percentiles of the stage table.
const TABLE_QUANTILES: [(f64, &str); 6] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9"), (0.9999, "p99.99"), (1.0, "max")];

/// Writes the stage table: one row per stage with samples, its count and its
/// p50/p90/p99/p99.9/p99.99/max in ns.
pub fn write_stage_table<W: Write>(l: &Latencies, mut w: W) -> io::Result<()> {
    write!(w, "{:<14} {:>9}", "stage (ns)", "count")?;
    for (_, name) in TABLE_QUANTILES {
        write!(w, " {name:>9}")?;
    }
    writeln!(w)?;
    for stage in Stage::ALL {
        let h = l.get(stage);
        if h.is_empty() {
            continue;
        }
        write!(w, "{:<14} {:>9}", stage.name(), h.len())?;
        for (q, _) in TABLE_QUANTILES {
            let v = if q >= 1.0 { h.max() } else { h.value_at_quantile(q) };
            write!(w, " {v:>9}")?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// Draws the percentile distribution of every stage with samples into an SVG file:
/// latency (log scale) against the percentile on HdrHistogram's "nines" axis,
/// `x = log10(1 / (1 - q))`, so that p90, p99, p99.9 and p99.99 are evenly spaced.
pub fn write_percentile_plot(l: &Latencies, path: &std::path::Path, title: &str) -> io::Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| io::Error::other(format!("{}: {e}", path.display()));
    const MAX_NINES: f64 = 5.0;
    let series: Vec<(Stage, Vec<(f64, f64)>)> = Stage::ALL
        .iter()
        .filter(|s| !l.get(**s).is_empty())
        .map(|&s| {
            let h = l.get(s);
            let pts = (0..=100)
                .map(|i| {
                    let x = MAX_NINES * i as f64 / 100.0;
                    let q = 1.0 - 10f64.powf(-x);
                    (x, (h.value_at_quantile(q).max(1) as f64).log10())
                })
                .collect();
            (s, pts)
        })
        .collect();
    let (lo, hi) = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    let (lo, hi) = if lo.is_finite() { (lo.floor(), hi.ceil().max(lo.floor() + 1.0)) } else { (0.0, 1.0) };
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..MAX_NINES, lo..hi)
        .map_err(|e| err(&e))?;
    let nines = |x: &f64| match x.round() as i64 {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)).replace("99.%", "99%"),
    };
    let ns_label = |y: &f64| {
        let v = 10f64.powf(*y);
        if v >= 1e9 {
            format!("{:.0} s", v / 1e9)
        } else if v >= 1e6 {
            format!("{:.0} ms", v / 1e6)
        } else if v >= 1e3 {
            format!("{:.0} us", v / 1e3)
        } else {
            format!("{v:.0} ns")
        }
    };
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&nines)
        .x_desc("percentile")
        .y_labels((hi - lo) as usize + 1)
        .y_label_formatter(&ns_label)
        .y_desc("latency")
        .draw()
        .map_err(|e| err(&e))?;
    // Tableau's 20 colours, dark ones first: 14 stages stay apart.
    const COLORS: [(u8, u8, u8); 14] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (0, 0, 0),
        (188, 189, 34),
        (23, 190, 207),
        (127, 127, 127),
        (174, 199, 232),
        (152, 223, 138),
        (255, 187, 120),
    ];
    for (i, (stage, pts)) in series.iter().enumerate() {
        let (r, g, b) = COLORS[i % COLORS.len()];
        let color = RGBColor(r, g, b).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(stage.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_table_lists_the_stages_with_samples_and_the_plot_draws_them() {
        let mut l = Latencies::new();
        for v in 1..=10_000u64 {
            l.record(Stage::Hop, v);
            l.record(Stage::Parse, 2 * v);
        }
        let mut out = Vec::new();
        write_stage_table(&l, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        let rows: Vec<&str> = s.lines().collect();
        assert_eq!(rows.len(), 3, "{s}");
        assert!(rows[0].contains("p99.99") && rows[0].contains("max"), "{s}");
        // Pipeline order: parse before the ring hop; p50 of 1..=10000 is 5000 (+0.1 %).
        assert!(rows[1].starts_with("parse") && rows[2].starts_with("ring_hop"), "{s}");
        let cols: Vec<u64> = rows[2].split_whitespace().skip(1).map(|c| c.parse().unwrap()).collect();
        assert_eq!(cols[0], 10_000);
        assert!((5_000..=5_005).contains(&cols[1]) && cols[6] >= 10_000, "{cols:?}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stages.svg");
        write_percentile_plot(&l, &path, "t").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("ring_hop") && svg.contains("parse") && !svg.contains("wire_to_order"));
        assert!(svg.contains("99.9%") && svg.contains("10 us"), "axis labels");
    }

    #[test]
    fn percentiles_and_hgrm() {
        let mut l = Latencies::new();
        for v in 1..=1000u64 {
            l.record(Stage::TickToQuote, v * 100);
        }
        l.record(Stage::TickToQuote, u64::MAX); // saturates, never panics
        let p = Percentiles::of(l.get(Stage::TickToQuote));
        assert!((49_800..=50_200).contains(&p.p50), "{p:?}");
        assert!((98_700..=99_300).contains(&p.p99), "{p:?}");
        assert_eq!(p.count, 1001);
        let mut out = Vec::new();
        write_hgrm(l.get(Stage::TickToQuote), &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Percentile") && s.contains("#[Max"), "{s}");
    }
}
