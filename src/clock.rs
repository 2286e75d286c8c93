//! The stage stamps' clock: cheap, monotonic, comparable across threads.
//!
//! [`StampClock::raw`] reads the TSC (`rdtsc`) when the processor's TSC is invariant
//! (constant rate, running in every C-state: CPUID leaf 0x80000007 EDX bit 8) and
//! `rdtscp` exists; otherwise it reads `CLOCK_MONOTONIC` in ns. The raw value is
//! converted to ns only when a difference is recorded ([`StampClock::nanos`]), with
//! the ratio calibrated once per process against the monotonic clock. This is the
//! `quanta` crate's clock (its detection and calibration), wrapped so that the rest of
//! the engine names one type. An invariant TSC is synchronised across cores on every
//! processor that reports it, so a stamp taken on the hot thread and one taken on the
//! gateway thread can be subtracted.
//!
//! Cost: one `rdtsc`: 11.2 ns on this 2-core VM against 28.4 ns for `Instant::now`
//! (`cargo bench --bench stages -- clock`, medians); no allocation and no system
//! call. A leaf module.

/// A raw stamp: TSC ticks, or ns of `CLOCK_MONOTONIC`. 0 means "not stamped".
pub type Stamp = u64;

/// The clock. Cloning is cheap; every clone shares the process's calibration.
#[derive(Debug, Clone)]
pub struct StampClock {
    inner: quanta::Clock,
}

impl Default for StampClock {
    fn default() -> Self {
        Self::new()
    }
}

impl StampClock {
    /// The process's clock; the first call calibrates (tens of ms), later ones are free.
    pub fn new() -> Self {
        StampClock { inner: quanta::Clock::new() }
    }

    /// A raw stamp now, never 0.
    #[inline]
    pub fn raw(&self) -> Stamp {
        self.inner.raw().max(1)
    }

    /// ns from `start` to `end`; 0 if `end` is before `start` or either is unstamped.
    #[inline]
    pub fn nanos(&self, start: Stamp, end: Stamp) -> u64 {
        if start == 0 || end <= start {
            return 0;
        }
        self.inner.delta_as_nanos(start, end)
    }
}

/// What the stamps read, for reports: `"tsc"` when Linux reports an invariant TSC
/// (`constant_tsc` and `nonstop_tsc` in `/proc/cpuinfo`) with `rdtscp`, else
/// `"CLOCK_MONOTONIC"`. quanta makes the same decision from CPUID.
pub fn source_name() -> &'static str {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    if has("constant_tsc") && has("nonstop_tsc") && has("rdtscp") {
        "tsc"
    } else {
        "CLOCK_MONOTONIC"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_in_ns_and_track_the_monotonic_clock() {
        let c = StampClock::new();
        let (a, t0) = (c.raw(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (b, wall) = (c.raw(), t0.elapsed().as_nanos() as f64);
        let ns = c.nanos(a, b) as f64;
        assert!((ns - wall).abs() < 0.1 * wall + 2e6, "{ns} ns by the stamps, {wall} ns by Instant");
        assert_eq!(c.nanos(b, a), 0, "backwards is 0");
        assert_eq!(c.nanos(0, b), 0, "unstamped is 0");
    }
}
