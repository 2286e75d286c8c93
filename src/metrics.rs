//! Latency histograms and their export.
//!
//! The hot thread stamps each tick with a monotonic clock at the stages the live
//! driver sees (event read, strategy done, order pushed) and records the differences
//! into preallocated [`Histogram`]s: `new_with_bounds(1, 60 s, 3)` fixes the bucket
//! array at construction and `saturating_record` never resizes, so recording never
//! allocates. Tick-to-quote is read-to-pushed for ticks that produced an order.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// Highest trackable latency: 60 s in ns.
const MAX_NS: u64 = 60_000_000_000;

/// The stages recorded per tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Event read to strategy done (book, signal, risk, quote, order diff).
    Strategy = 0,
    /// Strategy done to the last order pushed into the ring.
    Push,
    /// Event read to the last order pushed: tick-to-quote.
    TickToQuote,
}

impl Stage {
    /// All stages.
    pub const ALL: [Stage; 3] = [Stage::Strategy, Stage::Push, Stage::TickToQuote];

    /// A stable name for reports and file names.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Strategy => "strategy",
            Stage::Push => "push",
            Stage::TickToQuote => "tick_to_quote",
        }
    }
}

/// One histogram per [`Stage`], in nanoseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    hists: [Histogram<u64>; 3],
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// Allocates every bucket now, so that recording never does.
    pub fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, MAX_NS, 3).expect("static bounds are valid");
        Latencies { hists: [h(), h(), h()] }
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

#[cfg(test)]
mod tests {
    use super::*;

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
