//! The Binance parser and local-book synchroniser on real recordings.
//!
//! Fixtures (see tests/data/README.md):
//! - `binance_btcusdt_slice.txt.gz`: the first 600 lines of `btcusdt_20240808.gz`
//!   (hftbacktest examples (MIT), via ../shared/data/binance-spot); each line is
//!   `<local receive ns> <message as received>`, including one REST depth snapshot.
//! - `binance_sync_nknusdt.{ws,http}.gz`: the NKNUSDT lines of `BINANCE.ws.1.0` and
//!   `BINANCE.http.0.0` (cryptofeed sample data via ../shared/data/binance-sync).
//!
//! Neither recording holds a second snapshot of the same symbol, so the rebuilt book is
//! checked against the recorded book tickers instead: for a book at update id `u`, the
//! latest book ticker with update id `<= u` states its top of book.

use std::io::Read;

use statarb::book::Book;
use statarb::event::{EventKind, MarketEvent};
use statarb::feed::binance::{BinanceParser, DepthLevel, Parsed};
use statarb::feed::sync::{DepthSync, SyncAction};
use statarb::types::{Decimal, Instrument, Ts, NS_PER_SEC};

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn gz_lines(name: &str) -> Vec<String> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()).read_to_string(&mut s).unwrap();
    s.lines().map(str::to_owned).collect()
}

/// `(local ns, message)` of the hftbacktest recording.
fn btc_lines() -> Vec<(Ts, String)> {
    gz_lines("binance_btcusdt_slice.txt.gz")
        .into_iter()
        .map(|l| {
            let (ts, msg) = l.split_once(' ').unwrap();
            (ts.parse().unwrap(), msg.to_owned())
        })
        .collect()
}

/// `<epoch seconds>: <message>` (cryptofeed) to `(local ns, message)`.
fn cf_line(l: &str) -> (Ts, String) {
    let (head, msg) = l.split_once(": ").unwrap();
    let ts = head.rsplit(' ').next().unwrap();
    ((ts.parse::<f64>().unwrap() * NS_PER_SEC as f64) as Ts, msg.to_owned())
}

fn btc() -> Vec<Instrument> {
    vec![Instrument::new("BTCUSDT", d("0.01"), d("0.00001"))]
}

const MAX_LEVELS: usize = 8192;

#[derive(Debug, Default)]
struct Counts {
    tickers: u64,
    depth: u64,
    trades: u64,
    sells: u64,
    snapshots: u64,
    ignored: u64,
}

#[test]
fn recorded_slice_parses_without_errors() {
    let mut p = BinanceParser::new(&btc(), MAX_LEVELS);
    let mut lv = Vec::with_capacity(MAX_LEVELS);
    let mut c = Counts::default();
    for (ts, msg) in btc_lines() {
        if msg.starts_with("{\"lastUpdateId\"") {
            let id = p.parse_snapshot(msg.as_bytes(), 0, &mut lv).unwrap();
            assert_eq!(id, 50093239218);
            assert!(lv.len() > 1000, "{}", lv.len());
            // Bids best first, then asks best first, and not crossed.
            let bids: Vec<_> = lv.iter().filter(|l| l.side == statarb::types::Side::Buy).collect();
            let asks: Vec<_> = lv.iter().filter(|l| l.side == statarb::types::Side::Sell).collect();
            assert!(bids.windows(2).all(|w| w[0].px > w[1].px));
            assert!(asks.windows(2).all(|w| w[0].px < w[1].px));
            assert!(bids[0].px < asks[0].px);
            c.snapshots += 1;
            continue;
        }
        let r = p.parse(msg.as_bytes(), ts, &mut lv).unwrap_or_else(|e| panic!("{e}: {msg}"));
        let mut evs = Vec::new();
        r.emit(&lv, ts, &mut |e| evs.push(e));
        if let Some(last) = evs.last() {
            assert!(last.is_batch_end());
            assert_eq!(evs.iter().filter(|e| e.is_batch_end()).count(), 1);
        }
        match r {
            Parsed::BookTicker { bid, ask, .. } => {
                c.tickers += 1;
                assert!(bid < ask);
                assert_eq!(evs[0].exch_ts, ts, "book ticker uses the local time");
            }
            Parsed::Depth { first_id, last_id, .. } => {
                c.depth += 1;
                assert!(first_id <= last_id);
                assert_eq!(evs.len(), lv.len());
            }
            Parsed::Trade { buyer_is_maker, .. } => {
                c.trades += 1;
                if buyer_is_maker {
                    c.sells += 1;
                    assert_eq!(evs[0].kind, EventKind::TradeSell);
                } else {
                    assert_eq!(evs[0].kind, EventKind::TradeBuy);
                }
            }
            Parsed::Ignored => c.ignored += 1,
        }
    }
    assert_eq!(c.snapshots, 1);
    assert_eq!(c.ignored, 0);
    assert!(c.tickers > 100 && c.depth > 10 && c.trades > 50, "{c:?}");
    assert!(c.sells > 0 && c.sells < c.trades, "{c:?}");
    assert_eq!(p.stats().errors, 0);
    assert_eq!(p.stats().unknown_fields, 0);
}

#[test]
fn parse_and_sync_allocate_nothing_after_warm_up() {
    let lines = btc_lines();
    let mut p = BinanceParser::new(&btc(), MAX_LEVELS);
    let mut sync = DepthSync::new(0, 256);
    let mut lv = Vec::with_capacity(MAX_LEVELS);
    let mut out: Vec<MarketEvent> = Vec::with_capacity(4 * MAX_LEVELS);
    let mut parse_allocs = 0;
    let mut sync_allocs = 0;
    let mut parsed = 0;
    for pass in 0..2 {
        sync.reset(0, &mut |_| {});
        for (ts, msg) in &lines {
            let measuring = pass == 1;
            if msg.starts_with("{\"lastUpdateId\"") {
                let (r, n) = common::counted(|| p.parse_snapshot(msg.as_bytes(), 0, &mut lv));
                let id = r.unwrap();
                out.clear();
                let (_, m) = common::counted(|| sync.on_snapshot(id, &lv, *ts, &mut |e| out.push(e)));
                if measuring {
                    parse_allocs += n;
                    sync_allocs += m;
                }
                continue;
            }
            let (r, n) = common::counted(|| p.parse(msg.as_bytes(), *ts, &mut lv));
            out.clear();
            let (_, m) = common::counted(|| match r {
                Ok(Parsed::Depth { first_id, last_id, exch_ts, .. }) => {
                    sync.on_depth(first_id, last_id, exch_ts, &lv, *ts, &mut |e| out.push(e));
                }
                Ok(other) => other.emit(&lv, *ts, &mut |e| out.push(e)),
                Err(e) => panic!("{e}"),
            });
            if measuring {
                parse_allocs += n;
                sync_allocs += m;
                parsed += 1;
            }
        }
        assert!(sync.is_synced());
    }
    assert!(parsed > 500);
    assert_eq!(parse_allocs, 0, "allocations in {parsed} parse calls after warm-up");
    assert_eq!(sync_allocs, 0, "allocations in the synchroniser after warm-up");
}

/// The book ticker with the highest update id `<= id`, if any is newer than `since`.
fn ticker_at(tickers: &[(u64, i64, i64, i64, i64)], id: u64, since: u64) -> Option<(u64, i64, i64, i64, i64)> {
    let i = tickers.partition_point(|t| t.0 <= id);
    let t = *tickers.get(i.checked_sub(1)?)?;
    (t.0 > since).then_some(t)
}

/// Replays `(local ts, message)` lines through parser + synchroniser into a book,
/// optionally skipping the `skip`-th depth message after sync. Returns the book-ticker
/// comparisons (matched, compared) and the events.
struct Replay {
    matched: usize,
    compared: usize,
    events: Vec<MarketEvent>,
    actions: Vec<(usize, SyncAction)>,
    sync: DepthSync,
    book: Book,
}

fn replay(
    insts: &[Instrument],
    lines: &[(Ts, String)],
    is_snapshot: impl Fn(&str) -> bool,
    skip_depth_after_sync: Option<usize>,
) -> Replay {
    let mut p = BinanceParser::new(insts, MAX_LEVELS);
    let mut lv = Vec::with_capacity(MAX_LEVELS);
    // All book tickers of the recording, by update id.
    let mut tickers = Vec::new();
    for (ts, msg) in lines {
        if let Ok(Parsed::BookTicker { update_id, bid, bid_qty, ask, ask_qty, .. }) =
            p.parse(msg.as_bytes(), *ts, &mut lv)
        {
            tickers.push((update_id, bid, bid_qty, ask, ask_qty));
        }
    }
    tickers.sort_unstable();
    let mut r = Replay {
        matched: 0,
        compared: 0,
        events: Vec::new(),
        actions: Vec::new(),
        sync: DepthSync::new(0, 256),
        book: Book::new(64),
    };
    let mut synced_from = None;
    let mut depth_after_sync = 0;
    for (n, (ts, msg)) in lines.iter().enumerate() {
        let Replay { events, book, sync, .. } = &mut r;
        let mut out = |e: MarketEvent| {
            book.apply(&e);
            events.push(e);
        };
        let action = if is_snapshot(msg) {
            let id = p.parse_snapshot(msg.as_bytes(), 0, &mut lv).unwrap();
            synced_from = Some(id);
            sync.on_snapshot(id, &lv, *ts, &mut out)
        } else {
            match p.parse(msg.as_bytes(), *ts, &mut lv).unwrap() {
                Parsed::Depth { first_id, last_id, exch_ts, .. } => {
                    if sync.is_synced() {
                        depth_after_sync += 1;
                        if Some(depth_after_sync) == skip_depth_after_sync {
                            continue;
                        }
                    }
                    sync.on_depth(first_id, last_id, exch_ts, &lv, *ts, &mut out)
                }
                _ => continue,
            }
        };
        r.actions.push((n, action));
        if r.sync.is_synced() {
            let since = synced_from.unwrap();
            if let Some((_, bid, bid_qty, ask, ask_qty)) = ticker_at(&tickers, r.sync.last_update_id(), since) {
                r.compared += 1;
                let (b, a) = (r.book.best_bid().unwrap(), r.book.best_ask().unwrap());
                if (b.px, b.qty, a.px, a.qty) == (bid, bid_qty, ask, ask_qty) {
                    r.matched += 1;
                } else {
                    eprintln!("line {n}: book {b:?} {a:?}, ticker {bid} {bid_qty} {ask} {ask_qty}");
                }
            }
        }
    }
    r
}

#[test]
fn btc_book_from_snapshot_and_diffs_matches_book_tickers() {
    let lines = btc_lines();
    let r = replay(&btc(), &lines, |m| m.starts_with("{\"lastUpdateId\""), None);
    assert!(r.sync.is_synced());
    let st = *r.sync.stats();
    assert_eq!((st.gaps, st.syncs, st.snapshot_requests, st.stale_snapshots), (0, 1, 1, 0), "{st:?}");
    assert!(st.dropped >= 1, "diffs before lastUpdateId are dropped: {st:?}");
    // Nothing reaches the book before the snapshot; then Clear first.
    assert_eq!(r.events[0].kind, EventKind::Clear);
    assert_eq!(r.events.iter().filter(|e| e.kind == EventKind::Clear).count(), 1);
    assert!(r.compared > 20, "{} comparisons", r.compared);
    assert_eq!(r.matched, r.compared, "top of book vs book ticker at the same update id");
}

#[test]
fn btc_injected_gap_clears_and_requests_a_snapshot() {
    let lines = btc_lines();
    let r = replay(&btc(), &lines, |m| m.starts_with("{\"lastUpdateId\""), Some(5));
    assert!(!r.sync.is_synced());
    assert_eq!(r.sync.stats().gaps, 1);
    let clears: Vec<_> = r.events.iter().filter(|e| e.kind == EventKind::Clear).collect();
    assert_eq!(clears.len(), 2, "one on sync, one on the gap");
    assert!(clears[1].is_batch_end());
    assert_eq!(r.events.last().unwrap().kind, EventKind::Clear, "nothing after losing sync");
    assert!(r.book.top().is_none());
    assert_eq!(r.actions.iter().filter(|a| a.1 == SyncAction::NeedSnapshot).count(), 2);
}

fn nkn() -> (Vec<Instrument>, Vec<(Ts, String)>) {
    let insts = vec![Instrument::new("NKNUSDT", d("0.00001"), d("0.1"))];
    let mut lines: Vec<_> = gz_lines("binance_sync_nknusdt.ws.gz").iter().map(|l| cf_line(l)).collect();
    lines.extend(gz_lines("binance_sync_nknusdt.http.gz").iter().map(|l| cf_line(l)));
    lines.sort_by_key(|l| l.0);
    (insts, lines)
}

#[test]
fn cryptofeed_sample_syncs_and_matches_book_tickers() {
    let (insts, lines) = nkn();
    let r = replay(&insts, &lines, |m| m.starts_with("{\"lastUpdateId\""), None);
    assert!(r.sync.is_synced());
    let st = *r.sync.stats();
    assert_eq!((st.gaps, st.syncs), (0, 1), "{st:?}");
    // The first diff (U 499869750, u 499869752) is inside the snapshot (499869752).
    assert_eq!(st.dropped, 1);
    assert!(r.compared > 20, "{} comparisons", r.compared);
    assert_eq!(r.matched, r.compared);
    // The aggTrade parses; the kline is ignored.
    let mut p = BinanceParser::new(&insts, 64);
    let mut lv: Vec<DepthLevel> = Vec::new();
    let kinds: Vec<_> = lines
        .iter()
        .filter(|l| l.1.contains("@aggTrade") || l.1.contains("@kline"))
        .map(|l| p.parse(l.1.as_bytes(), l.0, &mut lv).unwrap())
        .collect();
    assert!(matches!(kinds[..], [Parsed::Trade { buyer_is_maker: false, px: 35280, qty: 580, .. }, Parsed::Ignored]));
}

#[test]
fn cryptofeed_sample_gap_then_resync_from_a_later_snapshot_is_refused_as_stale() {
    let (insts, lines) = nkn();
    let r = replay(&insts, &lines, |m| m.starts_with("{\"lastUpdateId\""), Some(3));
    assert_eq!(r.sync.stats().gaps, 1);
    assert!(!r.sync.is_synced());
    assert!(r.book.top().is_none());
    // Replaying the recording's only snapshot after the gap: it is older than the
    // buffered diffs, so another one is requested (the recording has no later one).
    let (_, snap) = lines.iter().find(|l| l.1.starts_with("{\"lastUpdateId\"")).unwrap();
    let mut p = BinanceParser::new(&insts, MAX_LEVELS);
    let mut lv = Vec::new();
    let id = p.parse_snapshot(snap.as_bytes(), 0, &mut lv).unwrap();
    let mut sync = r.sync;
    assert_eq!(sync.on_snapshot(id, &lv, 0, &mut |_| panic!("nothing while unsynced")), SyncAction::NeedSnapshot);
    assert_eq!(sync.stats().stale_snapshots, 1);
}
