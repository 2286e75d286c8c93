//! Recordings that replay with their snapshots, end to end over loopback: the replay
//! server serves depth and REST snapshots; the live feed, recording through a tap,
//! syncs its books; the recording holds every snapshot the feed fetched as a tagged
//! line. Then:
//!
//! - importing the recording with `RecordingBook::Sync` (the live procedure only, no
//!   diffs fallback) gives books equal to the live ones;
//! - the same holds for the recording with the depth messages that each symbol's first
//!   snapshot already contains cut out (a recording started just before the feed's
//!   first snapshot): only the snapshot line can give the book their levels;
//! - `serve` replays that cut recording (its tagged snapshots seed the server's books)
//!   and a second live feed syncs from the server's snapshot endpoint to the same books.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use statarb::book::{Book, Level};
use statarb::event::MarketEvent;
use statarb::feed::config::FeedClock;
use statarb::feed::gen::{self, GenParams};
use statarb::feed::record::{parse_snapshot_line, Recorder, RotatePolicy};
use statarb::feed::source::BinanceFeed;
use statarb::import::{import_recordings, ImportOptions, ImportStats, Limits, RecordingBook};
use statarb::live::{MarketSource, Polled};
use statarb::serve::{self, ServeConfig, Source};
use statarb::types::Instrument;

type Books = Vec<(Vec<Level>, Vec<Level>)>;

fn books_of(n: usize, events: impl IntoIterator<Item = MarketEvent>) -> Books {
    let mut b = vec![Book::default(); n];
    for e in events {
        b[e.inst as usize].apply(&e);
    }
    b.iter().map(|b| (b.bids().to_vec(), b.asks().to_vec())).collect()
}

/// Runs a live feed on `ws` (snapshots from the same port) until the server ends the
/// replay; returns its events and the feed.
fn live(
    ws: std::net::SocketAddr,
    instruments: &[Instrument],
    tap: Option<statarb::feed::record::RecordTap>,
) -> (Vec<MarketEvent>, BinanceFeed) {
    let mut feed =
        BinanceFeed::new(&common::binance_feed(ws, ws, true, FeedClock::Exchange), instruments, tap).unwrap();
    let mut evs = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(120) {
        if feed.poll(&mut |e| evs.push(*e)) == Polled::End {
            return (evs, feed);
        }
    }
    panic!("the feed did not end: {:?}", feed.stats());
}

fn read_lines(files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let r = BufReader::new(MultiGzDecoder::new(std::fs::File::open(f).unwrap()));
        out.extend(r.lines().map(|l| l.unwrap()));
    }
    out
}

/// Symbol of a tagged snapshot line, upper case.
fn snapshot_symbol(line: &str) -> Option<String> {
    let msg = line.split_once(' ')?.1;
    let (sym, _) = parse_snapshot_line(msg.as_bytes())?.ok()?;
    Some(String::from_utf8_lossy(sym).to_ascii_uppercase())
}

fn import_sync(files: &[PathBuf], instruments: &[Instrument]) -> (Vec<MarketEvent>, ImportStats) {
    let mut st = ImportStats::default();
    // The generated data's exchange times are of 2024, the receive times of today.
    let opts = ImportOptions { recording_book: RecordingBook::Sync, limits: Limits::any_time(), ..Default::default() };
    let evs = import_recordings(files, instruments, &opts, &mut st).unwrap();
    (evs, st)
}

fn write_plain(path: &Path, lines: &[String]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
}

#[test]
fn a_recording_with_its_snapshots_replays_to_the_live_books() {
    let ds = Arc::new(gen::generate(&GenParams { events: 60_000, ..GenParams::default() }));
    let n = ds.instruments.len();
    let server = serve::spawn(ServeConfig::default(), Source::Generated(Arc::clone(&ds))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tap, rec) = Recorder::spawn(dir.path().join("rec"), "rec", RotatePolicy::default()).unwrap();
    let (live_evs, feed) = live(server.ws_addr(), &ds.instruments, Some(tap));
    let fs = feed.stats();
    for i in 0..n {
        assert!(
            feed.sync(i as statarb::types::InstId).is_synced(),
            "{}: live book not synced",
            ds.instruments[i].symbol
        );
    }
    // The snapshot thread stops before the writer: its last snapshot is written.
    drop(feed);
    let files = rec.files();
    let rs = rec.stop().unwrap();
    server.stop();
    assert_eq!(rs.dropped, 0, "{rs:?}");
    let live_books = books_of(n, live_evs);
    assert!(live_books.iter().all(|(b, a)| b.len() > 3 && a.len() > 3), "live books are thin");

    let lines = read_lines(&files);
    let tagged: Vec<String> = lines.iter().filter_map(|l| snapshot_symbol(l)).collect();
    assert_eq!(tagged.len() as u64, fs.snapshots_requested - fs.snapshot_errors, "{fs:?}");
    for inst in ds.instruments.iter() {
        assert!(tagged.contains(&inst.symbol.to_ascii_uppercase()), "no snapshot line of {}", inst.symbol);
    }
    assert!(!lines.iter().any(|l| l.contains("\"lastUpdateId\"") && snapshot_symbol(l).is_none()));

    // The whole recording, live procedure only.
    let (evs, st) = import_sync(&files, &ds.instruments);
    assert_eq!(st.skipped_bad_row, 0, "{:?}", st.bad_rows);
    assert!(st.snapshots >= n as u64, "{st:?}");
    assert!(st.diffs_only.is_empty() && st.diffs_after_gap.is_empty());
    assert_eq!(books_of(n, evs), live_books, "imported books differ from the live ones");

    // Cut, for each symbol, the depth messages before its first snapshot line that the
    // snapshot already contains, keeping the contiguous run of diffs from the last one
    // the snapshot can start from (first update id `U` <= its `lastUpdateId`, as the
    // live procedure needs a buffered diff to check a snapshot against): only the
    // snapshot line can give the book what the cut diffs carried. Which diffs those are
    // depends on when the feed's snapshot came back, so the cut is computed; a symbol
    // whose first snapshot no diff before it can start from (it came back stale) is
    // left whole.
    let depth_sym = |l: &str| {
        ds.instruments
            .iter()
            .map(|i| i.symbol.to_ascii_uppercase())
            .find(|s| l.contains("depthUpdate") && l.contains(&format!("\"{}@depth", s.to_ascii_lowercase())))
    };
    let json = |l: &str| -> serde_json::Value { serde_json::from_str(l.split_once(' ').unwrap().1).unwrap() };
    let mut keep = vec![true; lines.len()];
    for inst in &ds.instruments {
        let sym = inst.symbol.to_ascii_uppercase();
        let first_snap = lines.iter().position(|l| snapshot_symbol(l).as_deref() == Some(&sym)).unwrap();
        let last_id = json(&lines[first_snap])["data"]["lastUpdateId"].as_u64().expect("lastUpdateId");
        let depth: Vec<usize> = (0..first_snap).filter(|&k| depth_sym(&lines[k]).as_deref() == Some(&sym)).collect();
        let first_id = |k: usize| json(&lines[k])["data"]["U"].as_u64().expect("U");
        if let Some(from) = depth.iter().rposition(|&k| first_id(k) <= last_id) {
            for &k in &depth[..from] {
                keep[k] = false;
            }
        }
    }
    let cut: Vec<String> = lines.iter().zip(&keep).filter(|(_, k)| **k).map(|(l, _)| l.clone()).collect();
    assert!(cut.len() < lines.len(), "nothing was cut");
    let cut_file = dir.path().join("cut.txt");
    write_plain(&cut_file, &cut);
    let (evs, st) = import_sync(std::slice::from_ref(&cut_file), &ds.instruments);
    assert_eq!(st.skipped_bad_row, 0, "{:?}", st.bad_rows);
    assert_eq!(books_of(n, evs), live_books, "the cut recording's imported books differ");

    // `serve` replays the cut recording; a client syncs from its snapshot endpoint.
    let server = serve::spawn(ServeConfig::default(), Source::Recording(vec![cut_file])).unwrap();
    let (evs, feed) = live(server.ws_addr(), &ds.instruments, None);
    for i in 0..n {
        assert!(
            feed.sync(i as statarb::types::InstId).is_synced(),
            "{}: replayed book not synced",
            ds.instruments[i].symbol
        );
    }
    assert!(feed.stats().snapshots_requested >= n as u64);
    drop(feed);
    let ss = server.stop();
    assert_eq!(ss.bad_lines, 0, "{ss:?}");
    assert_eq!(books_of(n, evs), live_books, "the replayed books differ from the live ones");
}
