//! The streaming import (`import::stream`) against the in-memory path
//! (`import_files`, `TimeWindow::cut`, `evfile::write`): byte-identical event files on
//! the fixtures of tests/data (recording slices, Tardis, Binance CSV, overlapping inputs
//! with duplicates, a window cutting the middle), and a bad input in the middle leaves
//! no temp files and names the file.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use statarb::backtest::window::TimeWindow;
use statarb::event::MarketEvent;
use statarb::feed::evfile;
use statarb::import::{import_files, stream, Format, ImportOptions};
use statarb::types::{Decimal, Instrument};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn insts() -> Vec<Instrument> {
    vec![Instrument::new("BTCUSDT", d("0.01"), d("0.00001")), Instrument::new("ETHUSDT", d("0.01"), d("0.0001"))]
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The in-memory path: every event collected, merged, cut, written.
fn in_memory(paths: &[PathBuf], window: TimeWindow) -> (Vec<u8>, Vec<u64>) {
    let inst = insts();
    let imp = import_files(paths, &inst, &ImportOptions::default()).unwrap();
    let dups = imp.reports.iter().map(|r| r.stats.duplicates).collect();
    let events: Vec<MarketEvent> =
        if window.is_all() { imp.events } else { window.cut(imp.events.into_iter(), inst.len()).collect() };
    let mut buf = Cursor::new(Vec::new());
    evfile::write(&mut buf, &inst, &events).unwrap();
    (buf.into_inner(), dups)
}

/// The streamed path, as `statarb import` runs it.
fn streamed(paths: &[PathBuf], window: TimeWindow) -> (Vec<u8>, Vec<u64>) {
    let inst = insts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ev");
    let staged = stream::stage(paths, &inst, &ImportOptions::default(), &out).unwrap();
    let mut w = evfile::Writer::new(std::fs::File::create(&out).unwrap(), &inst).unwrap();
    let mut merge = staged.merge();
    if window.is_all() {
        for e in merge.by_ref() {
            w.push(&e).unwrap();
        }
    } else {
        for e in window.cut(merge.by_ref(), inst.len()) {
            w.push(&e).unwrap();
        }
    }
    w.finish().unwrap();
    let dups = merge.duplicates().to_vec();
    drop(merge);
    drop(staged);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("out.ev")], "temp files left behind");
    (std::fs::read(&out).unwrap(), dups)
}

fn check(names: &[&str], window: TimeWindow) {
    let paths: Vec<PathBuf> = names.iter().map(|n| data(n)).collect();
    let (a, da) = in_memory(&paths, window);
    let (b, db) = streamed(&paths, window);
    assert!(a.len() > 24, "{names:?}: no events");
    assert!(a == b, "{names:?} {window:?}: streamed output differs from the in-memory one");
    assert_eq!(da, db, "{names:?}: duplicate counts");
}

const ALL: TimeWindow = TimeWindow { from: None, to: None };

#[test]
fn recordings_stream_identically() {
    check(&["binance_btcusdt_slice.txt.gz", "binance_ethusdt_slice.txt.gz"], ALL);
    check(&["binance_btcusdt_slice.txt.gz", "binance_ethusdt_slice.txt.gz", "binance_btcusdt_0809_slice.txt.gz"], ALL);
    // Depth diffs and no snapshot: the first (sync) pass ends unsynced, and the second
    // (diffs) pass starts the staged file over.
    check(&["binance_btcusdt_0809_slice.txt.gz"], ALL);
}

#[test]
fn tardis_and_binance_csv_stream_identically() {
    check(&["tardis_binance_incremental_book_L2.csv"], ALL);
    check(&["tardis_binance_quotes.csv", "tardis_binance_trades.csv"], ALL);
    check(
        &["BTCUSDT-trades-2024-08-08.csv", "ETHUSDT-aggTrades-2024-08-08.csv", "BTCUSDT-bookTicker-2024-08-08.csv"],
        ALL,
    );
}

#[test]
fn overlapping_inputs_dedup_identically() {
    check(&["BTCUSDT-trades-2024-08-08.csv", "BTCUSDT-trades-2024-08-08.csv"], ALL);
    check(&["tardis_binance_trades.csv", "tardis_binance_trades.csv", "tardis_binance_quotes.csv"], ALL);
    let paths = vec![data("BTCUSDT-trades-2024-08-08.csv"), data("BTCUSDT-trades-2024-08-08.csv")];
    let (_, dups) = streamed(&paths, ALL);
    assert!(dups[1] > 0, "the second copy's trades are all duplicates: {dups:?}");
}

#[test]
fn window_cutting_the_middle_streams_identically() {
    let paths = vec![data("binance_btcusdt_slice.txt.gz"), data("binance_ethusdt_slice.txt.gz")];
    let inst = insts();
    let imp = import_files(&paths, &inst, &ImportOptions::default()).unwrap();
    let (a, b) = (imp.events[0].local_ts, imp.events.last().unwrap().local_ts);
    let w = TimeWindow { from: Some(a + (b - a) / 3), to: Some(a + 2 * (b - a) / 3) };
    check(&["binance_btcusdt_slice.txt.gz", "binance_ethusdt_slice.txt.gz"], w);
}

#[test]
fn bad_input_in_the_middle_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    // Absent: the import of it fails.
    let bad = dir.path().join("BTCUSDT-trades-2024-08-09.csv");
    let paths = vec![data("BTCUSDT-trades-2024-08-08.csv"), bad.clone(), data("BTCUSDT-trades-2024-08-08.csv")];
    let out = dir.path().join("out.ev");
    // The format is given, so the missing file fails after the first input was staged.
    let opts = ImportOptions { format: Some(Format::BinanceTrades), ..Default::default() };
    let err = stream::stage(&paths, &insts(), &opts, &out).unwrap_err();
    assert!(err.to_string().contains(&bad.display().to_string()), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A CSV whose rows go back in time: staged as read, then put in order from the staged
/// file, as the in-memory merge orders it.
#[test]
fn rows_out_of_time_order_stream_identically() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("BTCUSDT-trades-2024-08-08.csv");
    let rows = [
        "1,61837.63,0.02,1236.75,1723161255342,True,True",
        "2,61837.64,0.01,618.38,1723161255900,False,True",
        "3,61837.62,0.03,1855.13,1723161255617,True,True",
        "4,61837.61,0.04,2473.50,1723161255100,False,True",
        "5,61837.65,0.05,3091.88,1723161256000,True,True",
    ];
    std::fs::write(&p, rows.join("\n") + "\n").unwrap();
    let paths = vec![p, data("ETHUSDT-aggTrades-2024-08-08.csv")];
    let (a, da) = in_memory(&paths, ALL);
    let (b, db) = streamed(&paths, ALL);
    assert!(a.len() > 24);
    assert!(a == b, "streamed output differs from the in-memory one");
    assert_eq!(da, db);
}
