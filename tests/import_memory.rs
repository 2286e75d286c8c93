//! Issue 12, item 1: `import` streams, so its memory does not depend on the input's
//! size. A 4M-row Binance trades CSV (160 MB of events in memory, 200 MB of text) and a
//! 3M-line gzipped recording (120 MB of events, 470 MB of text) are each staged, merged
//! and written as `statarb import` does, and the peak resident set grows by far less
//! than either's events. One test in this binary, so that the peak RSS it reads
//! (`VmHWM`) is this test's alone.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

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

/// Imports `input` as `statarb import` does (stage, merge, write); returns the events.
fn import(input: PathBuf, inst: &[Instrument], out: &Path) -> u64 {
    let staged = stream::stage(&[input], inst, &ImportOptions::default(), out).unwrap();
    let mut w = evfile::Writer::new(std::fs::File::create(out).unwrap(), inst).unwrap();
    for e in staged.merge() {
        w.push(&e).unwrap();
    }
    let n = w.len();
    w.finish().unwrap();
    n
}

#[test]
fn importing_large_inputs_keeps_the_resident_set_small() {
    let dir = tempfile::tempdir().unwrap();
    let inst = vec![
        Instrument::new("BTCUSDT", "0.01".parse::<Decimal>().unwrap(), "0.00001".parse::<Decimal>().unwrap()),
        Instrument::new("ETHUSDT", "0.01".parse::<Decimal>().unwrap(), "0.0001".parse::<Decimal>().unwrap()),
    ];
    let csv = dir.path().join("BTCUSDT-trades-2024-08-08.csv");
    let n_csv = 4_000_000u64;
    {
        let mut w = BufWriter::new(std::fs::File::create(&csv).unwrap());
        for i in 0..n_csv {
            // Three trades a millisecond, prices on the tick, sizes on the lot.
            writeln!(w, "{i},61837.{:02},0.0{},1.0,{},True,True", i % 100, i % 9 + 1, 1_723_161_255_342 + i / 3)
                .unwrap();
        }
        w.flush().unwrap();
    }
    // A recording of trade messages, as `statarb record` writes them.
    let rec = dir.path().join("btcusdt_20240808.gz");
    let n_rec = 3_000_000u64;
    {
        let f = BufWriter::new(std::fs::File::create(&rec).unwrap());
        let mut w = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        for i in 0..n_rec {
            let t = 1_723_161_255_342 + i / 3;
            writeln!(
                w,
                "{} {{\"stream\":\"btcusdt@trade\",\"data\":{{\"e\":\"trade\",\"E\":{t},\"s\":\"BTCUSDT\",\"t\":{i},\
                 \"p\":\"61837.{:02}000000\",\"q\":\"0.0{}000000\",\"T\":{t},\"m\":true,\"M\":true}}}}",
                t * 1_000_000 + 250_000,
                i % 100,
                i % 9 + 1
            )
            .unwrap();
        }
        w.finish().unwrap().flush().unwrap();
    }
    let before = peak_rss();
    assert_eq!(import(csv, &inst, &dir.path().join("csv.evt")), n_csv);
    assert_eq!(import(rec, &inst, &dir.path().join("rec.evt")), n_rec);
    let grew = peak_rss().saturating_sub(before);
    let events_mib = (n_rec.min(n_csv) * 40) >> 20;
    assert!(grew < 48 << 20, "peak RSS grew by {} MiB importing {events_mib}+ MiB of events per input", grew >> 20);
}
