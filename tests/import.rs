//! The importers on fixtures of each format (see tests/data/README.md):
//!
//! - recordings: `binance_btcusdt_slice.txt.gz`, `binance_ethusdt_slice.txt.gz` (first
//!   600 lines of the 2024-08-08 hftbacktest recordings, one REST snapshot each) and
//!   `binance_btcusdt_0809_slice.txt.gz` (first 300 lines of the next day, no snapshot);
//! - Tardis: `tardis_binance_{incremental_book_L2,quotes,trades}.csv`, rows built from
//!   those recordings in Tardis' documented layout, with other-symbol and bad rows added;
//! - Binance public data: `BTCUSDT-trades-2024-08-08.csv`,
//!   `ETHUSDT-aggTrades-2024-08-08.csv`, `BTCUSDT-bookTicker-2024-08-08.csv`, likewise.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use statarb::book::Book;
use statarb::event::{EventKind, MarketEvent};
use statarb::feed::binance::{BinanceParser, DepthLevel, Parsed};
use statarb::feed::evfile;
use statarb::feed::sync::DepthSync;
use statarb::import::{
    detect, import_file, import_files, merge, Format, ImportError, ImportOptions, ImportStats, RecordingBook,
};
use statarb::types::{Decimal, Instrument, Ts, NS_PER_MS};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn insts() -> Vec<Instrument> {
    vec![Instrument::new("BTCUSDT", d("0.01"), d("0.00001")), Instrument::new("ETHUSDT", d("0.01"), d("0.0001"))]
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn import(path: &Path) -> (Vec<MarketEvent>, ImportStats) {
    import_with(path, &ImportOptions::default())
}

fn import_with(path: &Path, opts: &ImportOptions) -> (Vec<MarketEvent>, ImportStats) {
    let format = detect(path).unwrap();
    let mut st = ImportStats::default();
    let evs = import_file(path, format, &insts(), opts, &mut st).unwrap();
    assert_eq!(st.events, evs.len() as u64);
    (evs, st)
}

fn read_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut v).unwrap();
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn count(evs: &[MarketEvent], f: impl Fn(&MarketEvent) -> bool) -> usize {
    evs.iter().filter(|e| f(e)).count()
}

fn batch_ends(evs: &[MarketEvent]) -> usize {
    count(evs, MarketEvent::is_batch_end)
}

/// The events of one instrument, books applied: the final top of book.
fn top(evs: &[MarketEvent], inst: u16) -> Option<(i64, i64)> {
    let mut b = Book::default();
    for e in evs.iter().filter(|e| e.inst == inst) {
        b.apply(e);
    }
    b.top()
}

fn local_monotonic(evs: &[MarketEvent]) -> bool {
    evs.windows(2).all(|w| w[0].local_ts <= w[1].local_ts)
}

// ---------------------------------------------------------------------------------------
// Recordings

/// The live feed's handling (crate::feed::source::BinanceFeed::pump), written out plainly
/// for one file: parser, synchroniser, tickers only when synced and not older than the
/// book, trades always; `local_ts` then made monotonic as the importer documents.
fn live_reference(path: &Path, insts: &[Instrument]) -> Vec<MarketEvent> {
    let text = String::from_utf8(gunzip(path)).unwrap();
    let mut p = BinanceParser::new(insts, 16 * 1024);
    let mut syncs: Vec<DepthSync> = (0..insts.len()).map(|i| DepthSync::new(i as u16, 4096)).collect();
    let mut lv: Vec<DepthLevel> = Vec::new();
    let mut out = Vec::new();
    let mut last_inst = None;
    for l in text.lines() {
        let (ts, msg) = l.split_once(' ').unwrap();
        let ts: Ts = ts.parse().unwrap();
        if msg.starts_with("{\"lastUpdateId\"") {
            let i: u16 = last_inst.unwrap();
            let id = p.parse_snapshot(msg.as_bytes(), i, &mut lv).unwrap();
            syncs[i as usize].on_snapshot(id, &lv, ts, &mut |e| out.push(e));
            continue;
        }
        match p.parse(msg.as_bytes(), ts, &mut lv).unwrap() {
            Parsed::Depth { inst, exch_ts, first_id, last_id } => {
                last_inst = Some(inst);
                syncs[inst as usize].on_depth(first_id, last_id, exch_ts, &lv, ts, &mut |e| out.push(e));
            }
            q @ Parsed::BookTicker { inst, update_id, .. } => {
                last_inst = Some(inst);
                let s = &syncs[inst as usize];
                if s.is_synced() && update_id >= s.last_update_id() {
                    q.emit(&lv, ts, &mut |e| out.push(e));
                }
            }
            q @ Parsed::Trade { inst, .. } => {
                last_inst = Some(inst);
                q.emit(&lv, ts, &mut |e| out.push(e));
            }
            Parsed::Ignored => {}
        }
    }
    let mut t = Ts::MIN;
    for e in &mut out {
        t = t.max(e.local_ts);
        e.local_ts = t;
    }
    out
}

#[test]
fn recording_equals_the_live_pipeline() {
    let path = data("binance_btcusdt_slice.txt.gz");
    assert_eq!(detect(&path).unwrap(), Format::Recording);
    let (evs, st) = import(&path);
    assert_eq!(evs, live_reference(&path, &insts()));

    let text = String::from_utf8(gunzip(&path)).unwrap();
    let trades = text.lines().filter(|l| l.contains("@trade")).count();
    let sells = text.lines().filter(|l| l.contains("@trade") && l.contains("\"m\":true")).count();
    assert_eq!((trades, sells), (89, 71));
    assert_eq!(count(&evs, |e| e.kind.is_trade()), trades);
    assert_eq!(count(&evs, |e| e.kind == EventKind::TradeSell), sells);
    assert_eq!((st.rows, st.skipped_bad_row, st.snapshots, st.sync.syncs), (600, 0, 1, 1));
    assert!(st.diffs_only.is_empty());
    assert!(st.skipped_stale_ticker > 0);

    // Line 4, a trade before the sync: m = true, E = 1723161255343 ms.
    assert_eq!(evs[0].kind, EventKind::TradeSell);
    assert_eq!((evs[0].px, evs[0].qty), (6_183_763, 2_000));
    assert_eq!((evs[0].exch_ts, evs[0].local_ts), (1_723_161_255_343 * NS_PER_MS, 1_723_161_254_087_896_568));
    // Line 8, the snapshot: Clear and its 2000 levels at its receive time, in one batch
    // with the diffs buffered while it was fetched (the sync is one batch).
    let clear = evs.iter().position(|e| e.kind == EventKind::Clear).unwrap();
    let snap = &evs[clear..clear + 2001];
    assert!(snap.iter().all(|e| e.local_ts == 1_723_161_254_206_652_067));
    let end = clear + evs[clear..].iter().position(MarketEvent::is_batch_end).unwrap();
    assert!(end >= clear + 2000, "the sync batch ends inside the snapshot");
    assert_eq!(batch_ends(snap), usize::from(end == clear + 2000));
    assert_eq!((snap[1].kind, snap[1].px, snap[1].qty), (EventKind::BidLevel, 6_183_763, 378_826));
    assert!(local_monotonic(&evs));
    assert_eq!(evs.last().map(MarketEvent::is_batch_end), Some(true));
}

#[test]
fn gzip_and_plain_recordings_are_equal() {
    let dir = tempfile::tempdir().unwrap();
    let gz = data("binance_btcusdt_slice.txt.gz");
    let plain = write(dir.path(), "btc.txt", &gunzip(&gz));
    assert_eq!(detect(&plain).unwrap(), Format::Recording);
    assert_eq!(import(&plain), import(&gz));
}

#[test]
fn recordings_of_two_symbols_are_one_session() {
    let btc = data("binance_btcusdt_slice.txt.gz");
    let eth = data("binance_ethusdt_slice.txt.gz");
    let imp = import_files(&[btc.clone(), eth.clone()], &insts(), &ImportOptions::default()).unwrap();
    assert_eq!(imp.reports.len(), 1);
    assert_eq!(imp.reports[0].paths, [btc.clone(), eth.clone()]);
    let st = &imp.reports[0].stats;
    assert_eq!((st.rows, st.snapshots, st.skipped_bad_row), (1200, 2, 0));
    assert!(local_monotonic(&imp.events));
    // Each instrument's events are those of its file imported alone.
    for (inst, path) in [(0u16, &btc), (1, &eth)] {
        let alone: Vec<_> = import(path).0.into_iter().filter(|e| e.inst == inst).collect();
        let joint: Vec<_> = imp.events.iter().copied().filter(|e| e.inst == inst).collect();
        assert_eq!(joint, alone);
        assert!(!alone.is_empty());
    }
    let (b, a) = top(&imp.events, 1).unwrap();
    assert!(b < a && b > 260_000 && a < 275_000, "{b} {a}");
}

#[test]
fn a_recording_without_snapshot_builds_from_diffs() {
    let path = data("binance_btcusdt_0809_slice.txt.gz");
    let text = String::from_utf8(gunzip(&path)).unwrap();
    assert!(!text.contains("lastUpdateId"));
    let mut levels = 0;
    let mut tickers = 0;
    let mut trades = 0;
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l.split_once(' ').unwrap().1).unwrap();
        let s = v["stream"].as_str().unwrap();
        if s.ends_with("@depth@100ms") {
            levels += v["data"]["b"].as_array().unwrap().len() + v["data"]["a"].as_array().unwrap().len();
        } else if s.ends_with("@bookTicker") {
            tickers += 1;
        } else {
            trades += 1;
        }
    }
    let (evs, st) = import(&path);
    assert_eq!(st.diffs_only, ["BTCUSDT"]);
    assert_eq!(evs.len(), levels + 2 * tickers + trades);
    assert_eq!(count(&evs, |e| e.kind == EventKind::Clear), 0);
    assert_eq!(st.gaps, 0);
    let (b, a) = top(&evs, 0).unwrap();
    assert!(b < a);

    // The live procedure alone: no book at all, trades only.
    let opts = ImportOptions { recording_book: RecordingBook::Sync, ..Default::default() };
    let (evs, st) = import_with(&path, &opts);
    assert!(evs.iter().all(|e| e.kind.is_trade()));
    assert_eq!(evs.len(), trades);
    assert_eq!(st.skipped_stale_ticker, tickers as u64);
    assert!(st.diffs_only.is_empty());
}

#[test]
fn a_gap_after_the_last_snapshot() {
    // The 08-08 slice syncs; the 08-09 slice starts 11 minutes later: a gap, and no
    // snapshot to resync from.
    let a = data("binance_btcusdt_slice.txt.gz");
    let b = data("binance_btcusdt_0809_slice.txt.gz");
    let t0809 = 1_723_161_600_000_000_000;
    let paths = [b.clone(), a.clone()];

    // The live procedure alone: the book is cleared for good.
    let opts = ImportOptions { recording_book: RecordingBook::Sync, ..Default::default() };
    let sync = import_files(&paths, &insts(), &opts).unwrap();
    let st = &sync.reports[0].stats;
    assert_eq!((st.gaps, st.snapshots), (1, 1));
    let after: Vec<_> = sync.events.iter().filter(|e| e.local_ts >= t0809).collect();
    assert_eq!(after[0].kind, EventKind::Clear);
    assert!(after.len() > 1 && after[1..].iter().all(|e| e.kind.is_trade()));
    assert_eq!(top(&sync.events, 0), None);

    // Auto: synced as live up to the gap, then the book follows the diffs and tickers.
    let auto = import_files(&paths, &insts(), &ImportOptions::default()).unwrap();
    let st = &auto.reports[0].stats;
    assert_eq!((st.gaps, st.snapshots), (1, 1));
    assert_eq!(st.diffs_after_gap, ["BTCUSDT"]);
    assert!(st.diffs_only.is_empty());
    let n = sync.events.iter().position(|e| e.local_ts >= t0809).unwrap();
    assert_eq!(auto.events[..n], sync.events[..n]);
    assert!(auto.events[n..].iter().all(|e| e.kind != EventKind::Clear));
    assert!(auto.events[n..].iter().any(|e| e.kind == EventKind::BidLevel));
    let (bid, ask) = top(&auto.events, 0).unwrap();
    assert!(bid < ask);
}

#[test]
fn truncated_gzip_is_read_up_to_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let full = read_bytes(&data("binance_btcusdt_slice.txt.gz"));
    let cut = write(dir.path(), "cut.gz", &full[..full.len() * 6 / 10]);
    let (evs, st) = import(&cut);
    assert!(st.truncated);
    assert!(st.rows > 100 && st.rows < 600, "{}", st.rows);
    let all = import(&data("binance_btcusdt_slice.txt.gz")).0;
    assert_eq!(evs[..], all[..evs.len()]);
}

// ---------------------------------------------------------------------------------------
// Tardis

#[test]
fn tardis_book_l2() {
    let path = data("tardis_binance_incremental_book_L2.csv");
    assert_eq!(detect(&path).unwrap(), Format::TardisBookL2);
    let (evs, st) = import(&path);
    // 57 rows: 2 before the first snapshot, ETH snapshot 6 + diffs 6, BTC snapshot 10 +
    // diffs 24 (4 messages), 2 BNBUSDT, 3 bad, a second BTC snapshot of 4.
    assert_eq!(st.rows, 57);
    assert_eq!((st.skipped_before_snapshot, st.skipped_other_symbol, st.skipped_bad_row), (2, 2, 3));
    assert_eq!(st.snapshots, 3);
    assert_eq!(evs.len(), 7 + 6 + 11 + 24 + 5);
    assert_eq!(batch_ends(&evs), 9);
    let lines: Vec<_> = st.bad_rows.iter().map(|b| b.line).collect();
    assert_eq!(lines, [52, 53, 54]);
    assert!(st.bad_rows[0].reason.contains("tick 0.01"), "{}", st.bad_rows[0].reason);
    assert!(st.bad_rows[1].reason.contains("side"));
    assert!(st.bad_rows[2].reason.contains("columns"));

    let e = |i: usize| (evs[i].inst, evs[i].kind, evs[i].px, evs[i].qty, evs[i].flags);
    use EventKind::*;
    assert_eq!(e(0), (1, Clear, 0, 0, 0));
    assert_eq!(e(1), (1, BidLevel, 268_380, 30_292, 0));
    assert_eq!(e(6), (1, AskLevel, 268_400, 99_803, 1));
    assert_eq!((evs[0].exch_ts, evs[0].local_ts), (1_723_161_254_152_322_000, 1_723_161_254_152_322_000));
    assert_eq!(e(7), (0, Clear, 0, 0, 0));
    assert_eq!(e(8), (0, BidLevel, 6_183_763, 378_826, 0));
    // The BTC message around the two BNBUSDT rows is one batch of 6.
    let batch: Vec<_> = evs.iter().filter(|e| e.local_ts == 1_723_161_254_236_551_000).collect();
    assert_eq!(batch.len(), 6);
    assert!(batch[..5].iter().all(|e| !e.is_batch_end()) && batch[5].is_batch_end());
    assert_eq!(batch[0].exch_ts, 1_723_161_255_508_000_000);
    // Zero amounts delete; the last snapshot replaces the BTC book.
    assert_eq!(count(&evs, |e| e.qty == 0 && e.kind != Clear), 12);
    assert_eq!(top(&evs, 0), Some((6_182_661, 6_182_662)));
    assert_eq!(top(&evs, 1), Some((268_380, 268_381)));
}

#[test]
fn tardis_quotes() {
    let path = data("tardis_binance_quotes.csv");
    assert_eq!(detect(&path).unwrap(), Format::TardisQuotes);
    let (evs, st) = import(&path);
    assert_eq!((st.rows, st.skipped_other_symbol, st.skipped_bad_row, st.one_sided_quotes), (33, 1, 1, 1));
    assert_eq!(st.bad_rows[0].line, 34);
    assert_eq!(evs.len(), 2 * 30 + 1);
    assert_eq!(batch_ends(&evs), 31);
    let t = 1_723_161_254_024_619_000;
    assert_eq!(
        evs[0],
        MarketEvent { exch_ts: t, local_ts: t, px: 268_380, qty: 30_292, inst: 1, kind: EventKind::BestBid, flags: 0 }
    );
    assert_eq!((evs[1].kind, evs[1].px, evs[1].qty, evs[1].flags), (EventKind::BestAsk, 268_381, 314_395, 1));
    assert_eq!((evs[2].inst, evs[2].px, evs[3].px), (0, 6_183_763, 6_183_764));
    let last = evs.last().unwrap();
    assert_eq!((last.kind, last.px, last.qty, last.flags), (EventKind::BestBid, 6_183_763, 150_000, 1));
}

#[test]
fn tardis_trades() {
    let path = data("tardis_binance_trades.csv");
    assert_eq!(detect(&path).unwrap(), Format::TardisTrades);
    let (evs, st) = import(&path);
    assert_eq!((st.rows, st.unknown_side, st.skipped_other_symbol, st.skipped_bad_row), (28, 1, 1, 1));
    assert_eq!(st.bad_rows[0].line, 29);
    assert_eq!(evs.len(), 25);
    assert_eq!(batch_ends(&evs), 25);
    assert_eq!(count(&evs, |e| e.inst == 0 && e.kind == EventKind::TradeSell), 12);
    assert_eq!(count(&evs, |e| e.inst == 1 && e.kind == EventKind::TradeSell), 5);
    assert_eq!(count(&evs, |e| e.kind == EventKind::TradeBuy), 8);
    assert_eq!(
        evs[0],
        MarketEvent {
            exch_ts: 1_723_161_255_745_000_000,
            local_ts: 1_723_161_254_476_369_000,
            px: 6_182_801,
            qty: 1,
            inst: 0,
            kind: EventKind::TradeSell,
            flags: 1
        }
    );
}

#[test]
fn gzip_and_plain_csv_are_equal() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tardis_binance_incremental_book_L2.csv", "tardis_binance_quotes.csv", "BTCUSDT-trades-2024-08-08.csv"]
    {
        let plain = data(name);
        let gz = write(dir.path(), &format!("{name}.gz"), &gzip(&read_bytes(&plain)));
        assert_eq!(detect(&gz).unwrap(), detect(&plain).unwrap());
        let (ge, mut gs) = import(&gz);
        let (pe, ps) = import(&plain);
        assert_eq!(ge, pe, "{name}");
        for b in &mut gs.bad_rows {
            b.path = plain.clone();
        }
        assert_eq!(gs, ps, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Binance public data

#[test]
fn binance_spot_trades() {
    let path = data("BTCUSDT-trades-2024-08-08.csv");
    assert_eq!(detect(&path).unwrap(), Format::BinanceTrades);
    let (evs, st) = import(&path);
    assert_eq!((st.rows, st.skipped_bad_row), (90, 1));
    assert_eq!(st.bad_rows[0].line, 11);
    assert!(st.bad_rows[0].reason.contains("lot 0.00001"), "{}", st.bad_rows[0].reason);
    assert_eq!(evs.len(), 89);
    assert_eq!(count(&evs, |e| e.kind == EventKind::TradeSell), 71);
    let t = 1_723_161_255_342 * NS_PER_MS;
    assert_eq!(
        evs[0],
        MarketEvent {
            exch_ts: t,
            local_ts: t,
            px: 6_183_763,
            qty: 2_000,
            inst: 0,
            kind: EventKind::TradeSell,
            flags: 1
        }
    );
    // The same trades as the recording they were built from.
    let rec = import(&data("binance_btcusdt_slice.txt.gz")).0;
    let key = |e: &MarketEvent| (e.kind, e.px, e.qty);
    let from_rec: Vec<_> = rec.iter().filter(|e| e.kind.is_trade()).map(key).collect();
    assert_eq!(evs.iter().map(key).collect::<Vec<_>>(), from_rec);

    // A caller-given symbol wins over the file name.
    let opts = ImportOptions { symbol: Some("ethusdt".into()), ..Default::default() };
    let (evs, _) = import_with(&path, &opts);
    assert!(!evs.is_empty() && evs.iter().all(|e| e.inst == 1));
    let opts = ImportOptions { symbol: Some("BNBUSDT".into()), ..Default::default() };
    let (evs, st) = import_with(&path, &opts);
    assert!(evs.is_empty());
    assert_eq!((st.rows, st.skipped_other_symbol), (90, 90));
}

#[test]
fn binance_agg_trades_ms_and_us() {
    let path = data("ETHUSDT-aggTrades-2024-08-08.csv");
    assert_eq!(detect(&path).unwrap(), Format::BinanceAggTrades);
    let (evs, st) = import(&path);
    assert_eq!((st.rows, st.skipped_bad_row, evs.len()), (39, 0, 39));
    assert_eq!(count(&evs, |e| e.kind == EventKind::TradeSell), 29);
    assert!(evs.iter().all(|e| e.inst == 1 && e.is_batch_end()));
    assert_eq!((evs[0].px, evs[0].qty, evs[0].exch_ts), (268_380, 391, 1_723_161_255_611 * NS_PER_MS));
    // Aggregates of the recording's trades: the same total size per side.
    let rec = import(&data("binance_ethusdt_slice.txt.gz")).0;
    for kind in [EventKind::TradeBuy, EventKind::TradeSell] {
        let sum = |v: &[MarketEvent]| v.iter().filter(|e| e.kind == kind).map(|e| e.qty).sum::<i64>();
        assert_eq!(sum(&evs), sum(&rec));
    }
    // Spot files from 2025 on are in µs: the same rows in µs give the same events.
    let text = String::from_utf8(read_bytes(&path)).unwrap();
    let us: String = text
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(str::to_owned).collect();
            f[5] = format!("{}000", f[5]);
            f.join(",") + "\n"
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ETHUSDT-aggTrades-2025-01-01.csv", us.as_bytes());
    assert_eq!(import(&p).0, evs);
}

#[test]
fn binance_futures_book_ticker() {
    let path = data("BTCUSDT-bookTicker-2024-08-08.csv");
    assert_eq!(detect(&path).unwrap(), Format::BinanceFuturesBookTicker);
    let (evs, st) = import(&path);
    assert_eq!((st.rows, st.skipped_bad_row, evs.len(), batch_ends(&evs)), (30, 0, 60, 30));
    let t = 1_723_161_254_087 * NS_PER_MS;
    assert_eq!(
        (evs[0].kind, evs[0].px, evs[0].qty, evs[0].exch_ts, evs[0].local_ts, evs[0].flags),
        (EventKind::BestBid, 6_183_763, 378_826, t, t, 0)
    );
    assert_eq!((evs[1].kind, evs[1].px, evs[1].qty, evs[1].flags), (EventKind::BestAsk, 6_183_764, 154_698, 1));
}

#[test]
fn binance_file_without_symbol_in_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "trades.csv", &read_bytes(&data("BTCUSDT-trades-2024-08-08.csv")));
    assert_eq!(detect(&p).unwrap(), Format::BinanceTrades, "by the row shape");
    let mut st = ImportStats::default();
    let r = import_file(&p, Format::BinanceTrades, &insts(), &ImportOptions::default(), &mut st);
    assert!(matches!(r, Err(ImportError::NoSymbol { .. })));
    let opts = ImportOptions { symbol: Some("BTCUSDT".into()), ..Default::default() };
    assert_eq!(import_with(&p, &opts).0.len(), 89);
}

// ---------------------------------------------------------------------------------------
// Errors, merge and the event file

#[test]
fn zips_and_unknown_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zip = write(dir.path(), "BTCUSDT-trades-2024-08-08.zip", b"PK\x03\x04\x14\x00\x00\x00rest of a zip");
    let err = detect(&zip).unwrap_err();
    assert!(matches!(err, ImportError::Zip { .. }));
    assert!(err.to_string().contains("unzip"), "{err}");
    let mut st = ImportStats::default();
    let r = import_file(&zip, Format::BinanceTrades, &insts(), &ImportOptions::default(), &mut st);
    assert!(matches!(r, Err(ImportError::Zip { .. })));
    let other = write(dir.path(), "notes.txt", b"hello, world\n");
    assert!(matches!(detect(&other), Err(ImportError::UnknownFormat { .. })));
    let empty = write(dir.path(), "empty.csv", b"");
    assert!(matches!(detect(&empty), Err(ImportError::UnknownFormat { reason, .. }) if reason == "empty file"));
    assert!(matches!(detect(&dir.path().join("missing.csv")), Err(ImportError::Io { .. })));
    assert!(matches!(import_files(&[], &insts(), &ImportOptions::default()), Err(ImportError::NoInput)));
}

#[test]
fn everything_merges_and_roundtrips_through_the_event_file() {
    let names = [
        "binance_btcusdt_slice.txt.gz",
        "tardis_binance_incremental_book_L2.csv",
        "tardis_binance_quotes.csv",
        "tardis_binance_trades.csv",
        "BTCUSDT-trades-2024-08-08.csv",
        "ETHUSDT-aggTrades-2024-08-08.csv",
        "BTCUSDT-bookTicker-2024-08-08.csv",
        "binance_ethusdt_slice.txt.gz",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| data(n)).collect();
    let imp = import_files(&paths, &insts(), &ImportOptions::default()).unwrap();
    assert_eq!(imp.reports.len(), 7, "the two recordings are one report");
    let formats: Vec<_> = imp.reports.iter().map(|r| r.format).collect();
    assert_eq!(formats[0], Format::Recording);
    let total = imp.total();
    // The Tardis and Binance trade files were built from the recordings: their common
    // trades are kept once.
    assert!(total.duplicates > 0);
    assert_eq!(total.events, imp.events.len() as u64 + total.duplicates);
    assert_eq!(total.skipped_bad_row, 3 + 1 + 1 + 1);
    // Ordered by local time, batch by batch; every batch closed.
    let mut last = Ts::MIN;
    let mut start = true;
    for e in &imp.events {
        if start {
            assert!(e.local_ts >= last);
            last = e.local_ts;
        }
        start = e.is_batch_end();
    }
    assert!(imp.events.last().unwrap().is_batch_end());
    // Merging the per-file streams again changes nothing.
    assert_eq!(merge(vec![imp.events.clone()]), imp.events);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imported.evt");
    evfile::write(std::fs::File::create(&path).unwrap(), &insts(), &imp.events).unwrap();
    let back = statarb::feed::evmap::EventMap::open(&path).unwrap();
    assert_eq!(back.instruments(), insts());
    assert!(back.iter().eq(imp.events.iter().copied()));
}
