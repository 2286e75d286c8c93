//! Issue 12, item 1: `import` streams, so its memory does not depend on the input's
//! size. A 4M-row Binance trades CSV (160 MB of events in memory, 200 MB of text) is
//! staged, merged and written as `statarb import` does, and the peak resident set grows
//! by far less than the events' size. One test in this binary, so that the peak RSS it
//! reads (`VmHWM`) is this test's alone.

use std::io::{BufWriter, Write};

use statarb::feed::evfile;
use statarb::import::{stream, ImportOptions};
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
fn importing_a_4m_row_csv_keeps_the_resident_set_small() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("BTCUSDT-trades-2024-08-08.csv");
    let n = 4_000_000u64;
    {
        let mut w = BufWriter::new(std::fs::File::create(&csv).unwrap());
        for i in 0..n {
            // Three trades a millisecond, prices on the tick, sizes on the lot.
            writeln!(w, "{i},61837.{:02},0.0{},1.0,{},True,True", i % 100, i % 9 + 1, 1_723_161_255_342 + i / 3)
                .unwrap();
        }
        w.flush().unwrap();
    }
    let inst = vec![
        Instrument::new("BTCUSDT", "0.01".parse::<Decimal>().unwrap(), "0.00001".parse::<Decimal>().unwrap()),
        Instrument::new("ETHUSDT", "0.01".parse::<Decimal>().unwrap(), "0.0001".parse::<Decimal>().unwrap()),
    ];
    let out = dir.path().join("out.evt");
    let before = peak_rss();
    let staged = stream::stage(&[csv], &inst, &ImportOptions::default(), &out).unwrap();
    let mut w = evfile::Writer::new(std::fs::File::create(&out).unwrap(), &inst).unwrap();
    for e in staged.merge() {
        w.push(&e).unwrap();
    }
    assert_eq!(w.len(), n);
    w.finish().unwrap();
    drop(staged);
    let grew = peak_rss().saturating_sub(before);
    let events_mib = (n * 40) >> 20;
    assert!(grew < 48 << 20, "peak RSS grew by {} MiB importing {events_mib} MiB of events", grew >> 20);
}
