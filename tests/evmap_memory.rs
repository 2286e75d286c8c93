//! Issue 12, item 1: reading a mapped event file takes bounded resident memory, however
//! long the file: the pages a reader has left behind are dropped
//! ([`statarb::feed::evmap::RELEASE_EVERY`]). One test in this binary, so that the peak
//! RSS it reads (`VmHWM`) is this test's alone.

use std::fs::File;

use statarb::event::{EventKind, MarketEvent};
use statarb::feed::evfile;
use statarb::feed::evmap::Dataset;
use statarb::types::{Decimal, Instrument};

/// Peak resident memory of this process, bytes (Linux `/proc/self/status`).
fn peak_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

#[test]
fn reading_a_240_mb_file_keeps_the_resident_set_small() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("long.evt");
    let n = 6_000_000i64;
    let inst = Instrument::new("BTCUSDT", Decimal::new(1, 2), Decimal::new(1, 5));
    let mut w = evfile::Writer::new(File::create(&p).unwrap(), &[inst]).unwrap();
    let t0 = 1_723_161_600_000_000_000;
    for i in 0..n {
        let e = MarketEvent {
            exch_ts: t0 + i,
            local_ts: t0 + i,
            px: 1 + i,
            qty: 1,
            inst: 0,
            kind: EventKind::BidLevel,
            flags: 1,
        };
        w.push(&e).unwrap();
    }
    w.finish().unwrap();
    let before = peak_rss();
    let data = Dataset::open(&[&p]).unwrap();
    // Two cursors, as a replay's engine and Core cursors.
    let (a, mut b) = (data.iter(), data.iter());
    let mut sum = 0i64;
    for e in a {
        sum = sum.wrapping_add(e.px ^ b.next().map_or(0, |f| f.px));
    }
    assert_eq!(sum, 0);
    let grew = peak_rss().saturating_sub(before);
    assert!(grew < 80 << 20, "peak RSS grew by {} MiB reading a {} MiB file", grew >> 20, (n * 40) >> 20);
}
