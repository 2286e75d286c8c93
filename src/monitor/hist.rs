//! A single-writer, lock-free latency histogram that another thread can read while it
//! is written: the hot thread records tick-to-quote into it, and the monitor reads it
//! for the status line's interval quantiles and the `/metrics` summary.
//!
//! [`hdrhistogram::Histogram`] is the precise, end-of-run record; it is a plain
//! struct, so no other thread may look at it mid-run. This one trades precision for
//! sharing: log-linear buckets ([`SUB_BITS`] bits of mantissa per power of two) held
//! in `AtomicU64`s.
//!
//! Bucketing, with `S = 2^SUB_BITS = 32` sub-buckets per octave:
//!
//! ```text
//! v <  S:  index = v                                (exact)
//! v >= S:  e = floor(log2 v),  m = v >> (e - SUB_BITS)  in [S, 2S)
//!          index = S + (e - SUB_BITS) * S + (m - S)
//! bucket of index i >= S covers [m << (e - SUB_BITS), ((m + 1) << (e - SUB_BITS)) - 1]
//! ```
//!
//! A quantile is reported as the top of its bucket (as HdrHistogram's
//! `highest_equivalent`), so it overstates by less than `1/S` = 3.1 %.
//!
//! Writer contract: exactly one thread records. [`AtomicHist::record`] is then a
//! relaxed load and store per counter, with no read-modify-write instruction and no
//! allocation. Readers see each counter as some value it had; a snapshot taken while
//! the writer runs may be off by the few samples recorded during the read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bits of mantissa per octave: 32 sub-buckets, under 3.1 % relative error.
pub const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Buckets for every `u64`: the exact ones below [`SUB`] and [`SUB`] per octave above.
pub const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// The bucket of `v`.
#[inline]
pub fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let m = (v >> (e - SUB_BITS)) as usize;
    SUB + (e - SUB_BITS) as usize * SUB + (m - SUB)
}

/// The highest value that falls in bucket `i`.
#[inline]
pub fn bucket_top(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let octave = ((i - SUB) / SUB) as u32;
    let m = (SUB + (i - SUB) % SUB) as u64;
    // For the last bucket, (m + 1) << 58 = 2^64 drops out of the word as 0, and the
    // wrapping subtraction gives u64::MAX, its true top.
    ((m + 1) << octave).wrapping_sub(1)
}

/// The shared histogram. See the module doc for the writer contract.
#[derive(Debug)]
pub struct AtomicHist {
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Default for AtomicHist {
    fn default() -> Self {
        Self::new()
    }
}

impl AtomicHist {
    /// Allocates every bucket now, so that recording never does.
    pub fn new() -> Self {
        AtomicHist {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one value. Single writer only (see the module doc).
    #[inline]
    pub fn record(&self, v: u64) {
        bump(&self.counts[bucket_of(v)], 1);
        bump(&self.count, 1);
        bump(&self.sum, v);
    }

    /// Copies the counters into `into`, reusing its buffer.
    pub fn snapshot_into(&self, into: &mut HistCounts) {
        into.counts.resize(BUCKETS, 0);
        for (dst, src) in into.counts.iter_mut().zip(self.counts.iter()) {
            *dst = src.load(Relaxed);
        }
        into.count = self.count.load(Relaxed);
        into.sum = self.sum.load(Relaxed);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> HistCounts {
        let mut h = HistCounts::default();
        self.snapshot_into(&mut h);
        h
    }
}

/// `c += by` for a counter only this thread writes: a load and a store.
#[inline]
fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Relaxed).wrapping_add(by), Relaxed);
}

/// A copy of an [`AtomicHist`]'s counters, for quantiles over the whole run or, as the
/// difference of two copies ([`HistCounts::since`]), over an interval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistCounts {
    counts: Vec<u64>,
    /// Values recorded.
    pub count: u64,
    /// Their sum (wraps after 2^64 ns, 584 years of latency).
    pub sum: u64,
}

impl HistCounts {
    /// The counts recorded after `earlier` was taken: `self - earlier`, bucket by bucket
    /// (saturating, in case a racing read saw a counter ahead of its total).
    pub fn since(&self, earlier: &HistCounts) -> HistCounts {
        let at = |h: &HistCounts, i: usize| h.counts.get(i).copied().unwrap_or(0);
        HistCounts {
            counts: (0..self.counts.len()).map(|i| at(self, i).saturating_sub(at(earlier, i))).collect(),
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.wrapping_sub(earlier.sum),
        }
    }

    /// The value at quantile `q` in `[0, 1]`: the top of the bucket holding the
    /// `ceil(q * n)`-th smallest value (at least the first); `None` if empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let n: u64 = self.counts.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_top(i));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_tile_the_u64_range_in_order() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(31), 31);
        assert_eq!(bucket_of(32), 32);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_top(BUCKETS - 1), u64::MAX);
        for i in 1..BUCKETS {
            assert_eq!(bucket_top(i - 1) + 1, bottom(i), "bucket {i} starts where {} ends", i - 1);
            assert_eq!(bucket_of(bottom(i)), i);
            assert_eq!(bucket_of(bucket_top(i)), i);
        }
    }

    fn bottom(i: usize) -> u64 {
        if i == 0 {
            0
        } else {
            bucket_top(i - 1) + 1
        }
    }

    proptest! {
        /// Against the exact quantile of the sorted sample: never below it, and above
        /// it by under 1/32.
        #[test]
        fn quantiles_are_within_a_bucket_of_the_exact(mut xs in proptest::collection::vec(1u64..50_000_000, 1..400), q in 0.0f64..=1.0) {
            let h = AtomicHist::new();
            for &x in &xs {
                h.record(x);
            }
            xs.sort_unstable();
            let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
            let exact = xs[rank - 1];
            let got = h.snapshot().quantile(q).unwrap();
            prop_assert!(got >= exact, "{got} < {exact}");
            prop_assert!((got - exact) as f64 <= exact as f64 / 32.0, "{got} vs {exact}");
        }
    }

    #[test]
    fn an_interval_is_the_difference_of_two_snapshots() {
        let h = AtomicHist::new();
        for v in 1..=100 {
            h.record(v * 1_000);
        }
        let first = h.snapshot();
        for _ in 0..10 {
            h.record(7);
        }
        let now = h.snapshot();
        let interval = now.since(&first);
        assert_eq!(interval.count, 10);
        assert_eq!(interval.sum, 70);
        assert_eq!(interval.quantile(0.5), Some(7));
        assert_eq!(interval.quantile(1.0), Some(7));
        assert_eq!(first.count, 100);
        assert_eq!(HistCounts::default().quantile(0.5), None);
        assert_eq!(now.since(&now).quantile(0.99), None);
    }
}
