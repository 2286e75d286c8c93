//! The live market-data path end to end over loopback: `serve` (replay server, real
//! WebSocket + HTTP) -> `BinanceFeed` (mio + tungstenite client, simd-json parser,
//! local-book sync with REST snapshots) -> books and the strategy core.
//!
//! - Without faults, the book built from the feed's events equals the book rebuilt
//!   offline from the same data set at every message boundary after it synced, and
//!   at the end.
//! - With each injected fault (dropped connections, sequence gaps, malformed frames,
//!   stalls), the feed reconnects or resyncs, nothing panics, the counters say what
//!   happened, and the core never sends a quote for a leg whose book is unsynced or
//!   crossed, or on the wrong side of the market.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use statarb::backtest::matching::MatchingEngine;
use statarb::backtest::queue::ProbPower;
use statarb::book::Book;
use statarb::config::Config;
use statarb::core::{Commands, Core};
use statarb::event::{EventKind, MarketEvent, OrderCmd};
use statarb::feed::config::{FeedClock, FeedConfig};
use statarb::feed::gen::{self, GenParams};
use statarb::feed::source::BinanceFeed;
use statarb::gateway::Exchange;
use statarb::live::{MarketSource, Polled};
use statarb::risk::Reject;
use statarb::serve::{self, Faults, ServeConfig, Source};
use statarb::types::Side;

fn dataset(events: usize) -> Arc<gen::Dataset> {
    Arc::new(gen::generate(&GenParams { events, ..GenParams::default() }))
}

fn feed_config(ws: std::net::SocketAddr, end_on_close: bool) -> FeedConfig {
    common::binance_feed(ws, ws, end_on_close, FeedClock::Exchange)
}

/// Polls `feed` until it ends or `limit` passes, handing every event to `f` and
/// calling `idle` with the feed's clock when nothing was ready.
fn drain_with(
    feed: &mut BinanceFeed,
    limit: Duration,
    mut f: impl FnMut(&MarketEvent),
    mut idle: impl FnMut(statarb::types::Ts),
) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        match feed.poll(&mut |ev| f(ev)) {
            Polled::End => return,
            Polled::Idle => idle(feed.now()),
            Polled::Events => {}
        }
    }
}

/// A fingerprint of every level of both sides (FNV-1a over prices and sizes).
fn book_state(b: &Book) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for l in b.bids().iter().chain(b.asks()) {
        for x in [l.px, l.qty] {
            h = (h ^ x as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^ b.bids().len() as u64
}

fn drain(feed: &mut BinanceFeed, limit: Duration, f: impl FnMut(&MarketEvent)) {
    drain_with(feed, limit, f, |_| {});
}

#[test]
fn feed_book_equals_the_offline_book() {
    let ds = dataset(60_000);
    let handle = serve::spawn(ServeConfig::default(), Source::Generated(Arc::clone(&ds))).unwrap();
    let mut feed = BinanceFeed::new(&feed_config(handle.ws_addr(), true), &ds.instruments, None).unwrap();
    let mut live = [Book::default(), Book::default()];
    // Per instrument, the live book's states at message boundaries since the last
    // (re)sync, consecutive repeats collapsed: each segment must be a run of the
    // offline states.
    let mut segments: [Vec<Vec<u64>>; 2] = [Vec::new(), Vec::new()];
    let mut checked = 0;
    drain(&mut feed, Duration::from_secs(60), |ev| {
        let i = ev.inst as usize;
        live[i].apply(ev);
        if ev.kind == EventKind::Clear {
            segments[i].push(Vec::new());
        }
        if ev.is_batch_end() && !ev.kind.is_trade() {
            if let Some((b, a)) = live[i].top() {
                assert!(b < a, "crossed live book");
                checked += 1;
                let seg = segments[i].last_mut().expect("the feed clears a book before it syncs it");
                let h = book_state(&live[i]);
                if seg.last() != Some(&h) {
                    seg.push(h);
                }
            }
        }
    });
    assert_eq!(feed.stats().parse_errors, 0);
    // One snapshot per book: the feed resets its books when the connection opens,
    // before any of its messages, so no diff of this connection is thrown away.
    assert_eq!(feed.stats().snapshots_requested, 2, "{:?}", feed.stats());
    assert!(checked > 5_000, "{checked} batch ends checked");
    let mut offline = [Book::default(), Book::default()];
    let mut states: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    for ev in &ds.events {
        let i = ev.inst as usize;
        offline[i].apply(ev);
        if ev.is_batch_end() && !ev.kind.is_trade() && offline[i].top().is_some() {
            let h = book_state(&offline[i]);
            if states[i].last() != Some(&h) {
                states[i].push(h);
            }
        }
    }
    for i in 0..2 {
        let mut compared = 0;
        for seg in segments[i].iter().filter(|s| !s.is_empty()) {
            // The first state is the sync: the snapshot with the diffs buffered while it
            // was fetched applied at once (the tickers of that interval were dropped), so
            // it may skip a few offline states; from there on, every message boundary.
            let start = states[i].iter().position(|h| *h == seg[0]);
            let start =
                start.unwrap_or_else(|| panic!("{}: the synced book is no offline state", ds.instruments[i].symbol));
            let rest = &seg[1..];
            let run = states[i][start..].windows(rest.len()).any(|w| w == rest);
            assert!(
                run,
                "{}: the {} states after the sync are not a run of the offline states",
                ds.instruments[i].symbol,
                rest.len()
            );
            compared += seg.len();
        }
        assert!(compared > 1_000, "{compared} states compared");
    }
    for i in 0..2 {
        // The generated book has 10 levels a side: compare all of them.
        assert_eq!(live[i].bids(), offline[i].bids(), "bids of {}", ds.instruments[i].symbol);
        assert_eq!(live[i].asks(), offline[i].asks(), "asks of {}", ds.instruments[i].symbol);
        assert_eq!(feed.sync(i as u16).stats().gaps, 0);
    }
    handle.stop();
}

/// Runs the core over a faulty server for `limit` and checks every order it sends
/// against the books the feed has built.
fn run_with_faults(faults: Faults, clock: FeedClock, limit: Duration, config: &Config) -> (BinanceFeed, Core, u64) {
    let ds = dataset(40_000);
    let cfg = ServeConfig { faults, ..ServeConfig::default() };
    let handle = serve::spawn(cfg, Source::Generated(Arc::clone(&ds))).unwrap();
    // Not end_on_close: a dropped connection must reconnect, not end the run.
    let fc = FeedConfig { clock, ..feed_config(handle.ws_addr(), false) };
    let mut feed = BinanceFeed::new(&fc, &ds.instruments, None).unwrap();
    let core = Core::new(&config.core_params().unwrap(), &ds.instruments, 1).unwrap();
    let mut books = [Book::default(), Book::default()];
    let mut synced = [false, false];
    let mut cmds = Commands::new();
    let mut orders = 0;
    let mut idle_cmds = Commands::new();
    let mut venue = MatchingEngine::new(ds.instruments.clone(), config.fees, ProbPower::new(2.0));
    let mut reports = Vec::new();
    let core = std::cell::RefCell::new(core);
    drain_with(
        &mut feed,
        limit,
        |ev| {
            let mut core = core.borrow_mut();
            let i = ev.inst as usize;
            books[i].apply(ev);
            match ev.kind {
                EventKind::Clear => synced[i] = false,
                EventKind::BidLevel | EventKind::AskLevel => synced[i] = true,
                _ => {}
            }
            venue.on_market(ev, &mut reports);
            core.on_market(ev, ev.local_ts, &mut cmds);
            // The venue answers at once; its reports may make the core send more.
            while !cmds.is_empty() || !reports.is_empty() {
                for r in reports.drain(..) {
                    core.on_exec(&r, ev.local_ts, &mut cmds);
                }
                let Some(c) = cmds.pop_at(0) else { continue };
                venue.on_order(&c, ev.local_ts, &mut reports);
                if let OrderCmd::New(o) = c {
                    orders += 1;
                    let l = o.inst as usize;
                    assert!(synced[l], "quote for an unsynced book");
                    let (bid, ask) = books[l].top().expect("quote without a two-sided book");
                    assert!(bid < ask, "crossed book");
                    match o.side {
                        Side::Buy => assert!(o.px < ask, "bid {} at or above the ask {ask}", o.px),
                        Side::Sell => assert!(o.px > bid, "ask {} at or below the bid {bid}", o.px),
                    }
                }
            }
        },
        |now| {
            core.borrow_mut().on_timer(now, &mut idle_cmds);
            assert!(idle_cmds.iter().all(|c| !matches!(c, OrderCmd::New(_))), "the timer only ever cancels");
            idle_cmds.clear();
        },
    );
    handle.stop();
    (feed, core.into_inner(), orders)
}

#[test]
fn sequence_gaps_resync_the_book() {
    let faults = Faults { gap_every: Some(500), ..Faults::default() };
    let (feed, _core, orders) =
        run_with_faults(faults, FeedClock::Exchange, Duration::from_secs(8), &common::market_make_config());
    let gaps: u64 = (0..2).map(|i| feed.sync(i).stats().gaps).sum();
    let syncs: u64 = (0..2).map(|i| feed.sync(i).stats().syncs).sum();
    assert!(gaps >= 2, "gaps {gaps}");
    assert!(syncs > 2, "resyncs after gaps: {syncs}");
    assert!(orders > 0);
}

#[test]
fn dropped_connections_reconnect_and_resync() {
    let faults = Faults { drop_every: Some(3_000), ..Faults::default() };
    let (feed, _core, orders) =
        run_with_faults(faults, FeedClock::Exchange, Duration::from_secs(4), &common::market_make_config());
    let ws = feed.ws().stats();
    assert!(ws.reconnects >= 2, "{ws:?}");
    let syncs: u64 = (0..2).map(|i| feed.sync(i).stats().syncs).sum();
    assert!(syncs >= 4, "every reconnect resyncs both books: {syncs}");
    assert!(orders > 0);
}

#[test]
fn malformed_frames_are_counted_and_skipped() {
    let faults = Faults { malformed_every: Some(100), ..Faults::default() };
    let (feed, core, _) =
        run_with_faults(faults, FeedClock::Exchange, Duration::from_secs(4), &common::market_make_config());
    assert!(feed.stats().parse_errors > 10, "{:?}", feed.stats());
    assert!(core.stats().events > 10_000);
}

#[test]
fn stalls_pull_quotes_and_the_feed_carries_on() {
    // The server pauses 600 ms every 5,000 messages. On the wall clock, with a 200 ms
    // stale limit, each stall makes both legs stale while quotes rest: the timer pulls
    // them (counted as `Stale`), and quoting resumes when data flows again. (The
    // exchange clock would not see a stall: no messages, no time.)
    let faults = Faults { stall_every: Some(5_000), stall_ms: 600, ..Faults::default() };
    let text = format!("extends = \"default\"\n[risk]\nstale_ms = 200\n{}", common::market_make_tables());
    let config = Config::from_toml(&text, "<test>").unwrap();
    let (feed, core, orders) = run_with_faults(faults, FeedClock::Wall, Duration::from_secs(8), &config);
    assert_eq!(feed.stats().parse_errors, 0);
    assert!(orders > 0 && core.stats().events > 10_000, "{:?}", core.stats());
    let stale = core.risk().count_of(Reject::Stale);
    // At least one stall must find quotes resting; how many do depends on thread timing
    // (a loaded CI host reads fewer messages, so meets fewer stalls, in the time limit).
    assert!(stale >= 1, "stale pulls: {stale}, {:?}", core.stats());
}
