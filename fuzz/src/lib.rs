//! Fuzz harnesses: one function per statarb parser, each taking the fuzzer's raw bytes.
//!
//! What: every public parser of untrusted input (Binance and Alpaca WebSocket messages,
//! Binance REST depth snapshots, recordings, Tardis and Binance public-data CSV, `.evt`
//! event files, TOML config files) behind a `fn(&[u8])` that must never panic, hang or
//! allocate without bound. Beyond "no panic", each harness checks the cheap invariants
//! its parser promises (levels within the cap, prices in ticks > 0, sizes >= 0,
//! instrument indices in range, an event file that reads back as it was written), so
//! a silent wrong result is a crash too.
//!
//! Why one file shared by two crates: the AFL targets in `fuzz/src/bin/` call these
//! functions, and the root crate's `tests/fuzz_corpora.rs` includes this very file
//! (`#[path]`) to replay the committed corpora and crash reproducers in `cargo test`.
//! So the CI pass runs exactly the code the fuzzer ran. It depends on `statarb` and
//! `std` only.
//!
//! Parsers that only take a file path (the importers) get the bytes through a file on
//! `/dev/shm` (a RAM disk; the system temp dir where there is none), one per process
//! and thread, rewritten for every input.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use statarb::config::Config;
use statarb::event::{EventKind, MarketEvent};
use statarb::feed::alpaca::{parse_rfc3339, AlpacaMsg, AlpacaParser};
use statarb::feed::binance::{BinanceParser, DepthLevel, Parsed};
use statarb::feed::evfile;
use statarb::import::{self, Format, ImportOptions, ImportStats, RecordingBook};
use statarb::types::{Decimal, Instrument};

/// Depth levels per message the Binance targets allow: small, so that the cap is hit.
const BINANCE_MAX_LEVELS: usize = 64;

/// A fuzz target: its name (the binary in `fuzz/src/bin/` and the folders under
/// `fuzz/corpus/` and `fuzz/crashes/`) and its harness.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("binance_ws", binance_ws),
    ("binance_snapshot", binance_snapshot),
    ("alpaca", alpaca),
    ("recording", recording),
    ("tardis", tardis),
    ("binance_csv", binance_csv),
    ("evfile", evfile),
    ("config", config),
];

fn d(s: &str) -> Decimal {
    s.parse().expect("a literal decimal")
}

/// The Binance instruments of the fixtures: three tick/lot grids, one with a lot of 1.
fn binance_instruments() -> Vec<Instrument> {
    vec![
        Instrument::new("BTCUSDT", d("0.01"), d("0.00001")),
        Instrument::new("ETHUSDT", d("0.01"), d("0.0001")),
        Instrument::new("BNBBTC", d("0.0001"), d("1")),
    ]
}

/// Alpaca symbols of the documented examples.
fn alpaca_instruments() -> Vec<Instrument> {
    vec![
        Instrument::new("BTC/USD", d("0.5"), d("0.000000001")),
        Instrument::new("BAT/USD", d("0.00001"), d("0.001")),
        Instrument::new("AVAX/USD", d("0.001"), d("0.000000001")),
    ]
}

/// Non-empty lines of `data` (`\n`-separated, a trailing `\r` kept: the parser sees it).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&c| c == b'\n').filter(|l| !l.is_empty())
}

fn check_levels(levels: &[DepthLevel], cap: usize) {
    assert!(levels.len() <= cap, "{} levels beyond the cap {cap}", levels.len());
    for l in levels {
        assert!(l.px > 0, "level price {} <= 0", l.px);
        assert!(l.qty >= 0, "level size {} < 0", l.qty);
    }
}

/// Binance WebSocket messages (bookTicker, depth diffs, trades, aggTrades), one per line,
/// through one parser (its per-instrument clock is state), each result emitted as events.
pub fn binance_ws(data: &[u8]) {
    let insts = binance_instruments();
    let mut p = BinanceParser::new(&insts, BINANCE_MAX_LEVELS);
    let mut levels = Vec::with_capacity(BINANCE_MAX_LEVELS);
    let mut n = 0u64;
    for (local_ts, msg) in lines(data).enumerate() {
        n += 1;
        let local_ts = local_ts as i64;
        let Ok(parsed) = p.parse(msg, local_ts, &mut levels) else {
            assert!(levels.is_empty(), "levels left behind by an error");
            continue;
        };
        check_levels(&levels, BINANCE_MAX_LEVELS);
        match parsed {
            Parsed::BookTicker { inst, bid, bid_qty, ask, ask_qty, .. } => {
                assert!((inst as usize) < insts.len());
                assert!(bid > 0 && ask > 0 && bid_qty >= 0 && ask_qty >= 0, "{parsed:?}");
            }
            Parsed::Depth { inst, first_id, last_id, .. } => {
                assert!((inst as usize) < insts.len());
                assert!(first_id <= last_id, "{parsed:?}");
            }
            Parsed::Trade { inst, px, qty, .. } => {
                assert!((inst as usize) < insts.len());
                assert!(px > 0 && qty >= 0, "{parsed:?}");
            }
            Parsed::Ignored => assert!(levels.is_empty()),
        }
        let mut events = 0usize;
        let mut last: Option<MarketEvent> = None;
        parsed.emit(&levels, local_ts, &mut |e| {
            events += 1;
            last = Some(e);
        });
        if let Some(e) = last {
            assert!(e.is_batch_end(), "the last event of a message ends its batch");
        }
        if matches!(parsed, Parsed::Depth { .. }) {
            assert_eq!(events, levels.len());
        }
    }
    let s = p.stats();
    assert_eq!(s.messages, n);
    assert!(s.errors <= n && s.ignored_streams + s.unknown_symbols <= n);
}

/// A Binance REST depth snapshot; the first byte picks the instrument (its grid).
pub fn binance_snapshot(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else { return };
    let insts = binance_instruments();
    let inst = (sel as usize % (insts.len() + 1)) as u16;
    let mut p = BinanceParser::new(&insts, BINANCE_MAX_LEVELS);
    let mut levels = Vec::with_capacity(BINANCE_MAX_LEVELS);
    match p.parse_snapshot(msg, inst, &mut levels) {
        Ok(_) => {
            assert!((inst as usize) < insts.len(), "a snapshot for an unknown instrument");
            check_levels(&levels, BINANCE_MAX_LEVELS);
        }
        Err(_) => assert!(levels.is_empty(), "levels left behind by an error"),
    }
    // The same parser keeps working on a message after a snapshot.
    let _ = p.parse(msg, 0, &mut levels);
}

/// Alpaca crypto messages, one per line, through one parser; every line is also given
/// to the RFC 3339 time parser.
pub fn alpaca(data: &[u8]) {
    let insts = alpaca_instruments();
    let mut p = AlpacaParser::new(&insts);
    for msg in lines(data) {
        let _ = parse_rfc3339(msg);
        let mut delivered = 0usize;
        let res = p.parse(msg, &mut |m| {
            delivered += 1;
            match m {
                AlpacaMsg::Quote { inst, bid, bid_qty, ask, ask_qty, .. } => {
                    assert!((inst as usize) < insts.len());
                    assert!(bid > 0 && ask > 0 && bid_qty >= 0 && ask_qty >= 0, "{m:?}");
                }
                AlpacaMsg::Trade { inst, px, qty, .. } => {
                    assert!((inst as usize) < insts.len());
                    assert!(px > 0 && qty >= 0, "{m:?}");
                }
                AlpacaMsg::Control(_) => {}
            }
            m.emit(0, &mut |e| assert!((e.inst as usize) < insts.len()));
        });
        if let Ok(n) = res {
            assert_eq!(n, delivered, "the count returned is the count delivered");
        }
    }
}

/// A file holding the input for the path-only importers: one per process and thread,
/// under `/dev/shm` where it exists, removed when the thread ends.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("statarb-fuzz-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch { dir }
    }

    /// Writes `data` to `name` in the scratch directory and returns its path.
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, data).expect("write the scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's scratch directory.
fn with_scratch<T>(f: impl FnOnce(&Scratch) -> T) -> T {
    SCRATCH.with(|s| f(s.borrow_mut().get_or_insert_with(Scratch::new)))
}

/// Checks an importer's output: every event names a known instrument, and a `Clear`
/// aside, carries a positive price and a non-negative size.
fn check_imported(events: &[MarketEvent], insts: &[Instrument], stats: &ImportStats) {
    for e in events {
        assert!((e.inst as usize) < insts.len(), "event for instrument {} of {}", e.inst, insts.len());
        if e.kind != EventKind::Clear {
            assert!(e.px > 0, "non-positive price imported: {e:?}");
            assert!(e.qty >= 0, "negative size imported: {e:?}");
        }
    }
    assert!(stats.bad_rows.len() <= import::MAX_REPORTED_BAD_ROWS);
}

/// A recording (`<local ns> <raw Binance message>` lines, plain or gzip). The first
/// byte picks the book mode and whether the lines are split over two files imported as
/// one session (the rest alternate between them by line).
pub fn recording(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else { return };
    let book = [RecordingBook::Auto, RecordingBook::Sync, RecordingBook::Diffs][sel as usize % 3];
    let opts =
        ImportOptions { format: Some(Format::Recording), symbol: None, recording_book: book, ..Default::default() };
    let insts = binance_instruments();
    with_scratch(|s| {
        let paths = if sel & 0x80 != 0 {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for (i, l) in body.split_inclusive(|&c| c == b'\n').enumerate() {
                if i % 2 == 0 {
                    a.extend_from_slice(l)
                } else {
                    b.extend_from_slice(l)
                }
            }
            vec![s.write("a.txt", &a), s.write("b.txt", &b)]
        } else {
            vec![s.write("a.txt", body)]
        };
        let mut stats = ImportStats::default();
        if let Ok(events) = import::import_recordings(&paths, &insts, &opts, &mut stats) {
            check_imported(&events, &insts, &stats);
            let mut last = i64::MIN;
            for e in &events {
                assert!(e.local_ts >= last, "recording events out of local order");
                last = e.local_ts;
            }
        }
    });
}

/// Imports `body` as `name` in the given format (`None`: detected, through
/// [`import::import_files`]).
fn import_one(name: &str, body: &[u8], format: Option<Format>, symbol: Option<&str>) {
    let insts = binance_instruments();
    with_scratch(|s| {
        let path = s.write(name, body);
        let opts = ImportOptions {
            format,
            symbol: symbol.map(str::to_string),
            recording_book: RecordingBook::Auto,
            ..Default::default()
        };
        match format {
            Some(f) => {
                let mut stats = ImportStats::default();
                if let Ok(events) = import::import_file(&path, f, &insts, &opts, &mut stats) {
                    check_imported(&events, &insts, &stats);
                }
            }
            None => {
                if let Ok(imported) = import::import_files(&[path], &insts, &opts) {
                    check_imported(&imported.events, &insts, &imported.total());
                }
            }
        }
    });
}

/// A Tardis CSV file; the first byte picks `incremental_book_L2`, `quotes`, `trades`, or
/// detection from the header.
pub fn tardis(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else { return };
    let format =
        [Some(Format::TardisBookL2), Some(Format::TardisQuotes), Some(Format::TardisTrades), None][sel as usize % 4];
    import_one("tardis.csv", body, format, None);
}

/// A Binance public-data CSV file; the first byte picks `trades`, `aggTrades`,
/// futures `bookTicker`, or detection (header, name, row shape) with the symbol taken
/// from the file name.
pub fn binance_csv(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else { return };
    match sel % 4 {
        0 => import_one("data.csv", body, Some(Format::BinanceTrades), Some("BTCUSDT")),
        1 => import_one("data.csv", body, Some(Format::BinanceAggTrades), Some("ETHUSDT")),
        2 => import_one("data.csv", body, Some(Format::BinanceFuturesBookTicker), Some("BTCUSDT")),
        _ => import_one("BTCUSDT-data.csv", body, None, None),
    }
}

/// A `.evt` event file: the header parsed, the records read and validated as the
/// memory map reads them (here copied out unaligned); whatever validates is written
/// again and must read back identical.
pub fn evfile(data: &[u8]) {
    let Ok(h) = evfile::parse_header(data) else { return };
    // In place, as a map would: either aligned records or an error, never a panic.
    let _ = evfile::records(data, &h);
    let recs: Vec<evfile::RawEvent> = evfile::read_records(data, &h).collect();
    assert_eq!(recs.len() as u64, h.count, "the header's count matches the length");
    if evfile::validate(&recs, 0, h.instruments.len()).is_err() {
        return;
    }
    let events: Vec<MarketEvent> = recs.iter().map(|r| r.to_event().expect("validated")).collect();
    assert!(events.iter().all(|e| (e.inst as usize) < h.instruments.len()));
    let mut out = std::io::Cursor::new(Vec::new());
    evfile::write(&mut out, &h.instruments, &events).expect("what was read can be written");
    let out = out.into_inner();
    let h2 = evfile::parse_header(&out).expect("what was written reads back");
    let events2: Vec<MarketEvent> = evfile::read_records(&out, &h2).filter_map(|r| r.to_event()).collect();
    assert_eq!(h.instruments, h2.instruments);
    assert_eq!(events, events2);
}

/// A TOML config file, parsed and validated; an accepted config's legs convert to
/// their instruments and parameters without panicking, and it builds core parameters
/// that pass [`statarb::core::CoreParams::validate`].
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = Config::from_toml(text, "fuzz.toml") {
        for leg in [&cfg.y, &cfg.x] {
            let _ = leg.instrument();
            let _ = leg.quote_params();
            assert!(leg.order_lots() > 0 && leg.max_position_lots() > 0, "validated sizes must be > 0");
        }
        let params = cfg.core_params().expect("a validated config builds core params");
        params.validate().expect("a validated config's core params pass the core's checks");
    }
}
