//! The Binance feed against hostile loopback servers (issue 10, network side):
//!
//! - a REST endpoint that always answers a snapshot older than the diffs gets a bounded
//!   number of requests (exponential back-off with jitter), not a storm;
//! - a 429 with `Retry-After` (absurdly large, or short) blocks snapshot requests on
//!   the shared per-IP budget, capped, and the gateway's limiter sees the same block;
//! - the shared budget's weight limit holds snapshot requests back before sending;
//! - the books are cleared when the connection drops, not when the next one opens;
//! - with `end_on_close`, a TCP reset reconnects; only a clean close ends the data.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use statarb::event::EventKind;
use statarb::feed::config::{FeedClock, FeedConfig};
use statarb::feed::source::BinanceFeed;
use statarb::gateway::limits::{Limit, RateLimiter, RateLimits};
use statarb::live::{MarketSource, Polled};
use statarb::ratelimit::IpBudget;
use statarb::types::{Instrument, Ts};
use tungstenite::Message;

fn btc() -> Vec<Instrument> {
    vec![Instrument::new("BTCUSDT", "0.01".parse().unwrap(), "0.00001".parse().unwrap())]
}

fn wall_ns() -> Ts {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as Ts
}

/// A depth diff with update id `u` (`U` = `u`), one level a side.
fn depth(u: u64) -> String {
    format!(
        r#"{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":{},"s":"BTCUSDT","U":{u},"u":{u},"b":[["100.00","1.00000"]],"a":[["101.00","2.00000"]]}}}}"#,
        1_700_000_000_000u64 + u
    )
}

fn feed_config(ws: SocketAddr, rest: SocketAddr, end_on_close: bool) -> FeedConfig {
    common::binance_feed(ws, rest, end_on_close, FeedClock::Wall)
}

/// A loopback HTTP server answering every request with `answer` (status line and
/// extra headers, body), one request per connection; counts the requests.
struct Http {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Http {
    fn spawn(head: &'static str, body: &'static str) -> Http {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, st) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Acquire) {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                n.fetch_add(1, Ordering::AcqRel);
                let _ = write!(
                    s,
                    "{head}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Http { addr, requests, stop, thread: Some(thread) }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Acquire)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One scripted WebSocket connection: what the server does with it.
type Script = Box<dyn FnOnce(tungstenite::WebSocket<TcpStream>, &AtomicBool) + Send>;

/// A loopback WebSocket server running `scripts` on its consecutive connections.
struct Ws {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ws {
    fn spawn(scripts: Vec<Script>) -> Ws {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            for script in scripts {
                let s = loop {
                    if st.load(Ordering::Acquire) {
                        return;
                    }
                    match l.accept() {
                        Ok((s, _)) => break s,
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                };
                s.set_nonblocking(false).unwrap();
                let ws = tungstenite::accept(s).unwrap();
                script(ws, &st);
            }
        });
        Ws { addr, stop, thread: Some(thread) }
    }
}

impl Drop for Ws {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends a diff every 5 ms (ids from `first`) until stopped.
fn stream_diffs(first: u64) -> Script {
    Box::new(move |mut ws, stop| {
        let mut u = first;
        while !stop.load(Ordering::Acquire) {
            if ws.send(Message::text(depth(u))).is_err() {
                return;
            }
            u += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

fn run_for(feed: &mut BinanceFeed, limit: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if feed.poll(&mut |_| {}) == Polled::Idle {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The storm of issue 10: a snapshot endpoint that always answers an id older than the
/// first buffered diff drew 5,117 requests in 12 s. With the back-off (500 ms doubling,
/// equal jitter) 4 s hold at most 1 + 4 requests.
#[test]
fn old_snapshots_back_off_instead_of_storming() {
    let http = Http::spawn("HTTP/1.1 200 OK", r#"{"lastUpdateId":5,"bids":[["99.00","1"]],"asks":[["102.00","1"]]}"#);
    let ws = Ws::spawn(vec![stream_diffs(1_000)]);
    let mut feed = BinanceFeed::new(&feed_config(ws.addr, http.addr, false), &btc(), None).unwrap();
    run_for(&mut feed, Duration::from_secs(4));
    let st = feed.stats();
    let n = http.requests();
    assert!((2..=5).contains(&n), "{n} snapshot requests in 4 s: {st:?}");
    assert_eq!(st.snapshots_requested as usize, n, "{st:?}");
    assert!(st.snapshot_stale >= 1 && st.snapshot_retries >= st.snapshot_stale, "{st:?}");
    assert!(!feed.sync(0).is_synced());
}

/// `Retry-After: 4294967295` (136 years) on a snapshot: capped at the budget's cap, and
/// the block is the gateway's too, since they share the per-IP budget.
#[test]
fn snapshot_429_blocks_the_shared_budget_capped() {
    let http = Http::spawn(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 4294967295",
        r#"{"code":-1003,"msg":"Too much request weight used"}"#,
    );
    let ws = Ws::spawn(vec![stream_diffs(1_000)]);
    let budget = Arc::new(IpBudget::new(6_000, 300));
    let gateway = RateLimiter::with_budget(&RateLimits::default(), budget.clone());
    let mut feed =
        BinanceFeed::with_budget(&feed_config(ws.addr, http.addr, false), &btc(), None, budget.clone()).unwrap();
    let t0 = wall_ns();
    run_for(&mut feed, Duration::from_secs(3));
    let st = feed.stats();
    assert_eq!(http.requests(), 1, "{st:?}");
    assert_eq!(st.snapshot_backoffs, 1, "{st:?}");
    let until = budget.blocked_until();
    assert!(until > t0 && until <= wall_ns() + 300 * 1_000_000_000, "blocked until {until}");
    let mut gateway = gateway;
    assert_eq!(gateway.try_acquire(wall_ns(), 1, 1).unwrap_err().limit, Limit::Backoff);
    assert_eq!(budget.stats().capped, 1);
}

/// A short `Retry-After` is honoured and then the feed asks again.
#[test]
fn snapshot_429_retry_after_is_honoured() {
    let http = Http::spawn(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1",
        r#"{"code":-1003,"msg":"Too much request weight used"}"#,
    );
    let ws = Ws::spawn(vec![stream_diffs(1_000)]);
    let mut feed = BinanceFeed::new(&feed_config(ws.addr, http.addr, false), &btc(), None).unwrap();
    run_for(&mut feed, Duration::from_secs(3));
    let n = http.requests();
    let st = feed.stats();
    // At 0 s, then not before 1 s, then not before 2 s (and each back-off doubling).
    assert!((2..=3).contains(&n), "{n} requests: {st:?}");
    assert_eq!(st.snapshot_backoffs as usize, n, "{st:?}");
}

/// Snapshot weight counts against the shared budget before sending: with 10 weight a
/// minute, two 5-weight snapshots pass and the rest are held back, not sent.
#[test]
fn snapshot_weight_is_counted_against_the_budget() {
    let http = Http::spawn("HTTP/1.1 200 OK", r#"{"lastUpdateId":5,"bids":[],"asks":[]}"#);
    let ws = Ws::spawn(vec![stream_diffs(1_000)]);
    let budget = Arc::new(IpBudget::new(10, 300));
    let mut feed =
        BinanceFeed::with_budget(&feed_config(ws.addr, http.addr, false), &btc(), None, budget.clone()).unwrap();
    run_for(&mut feed, Duration::from_secs(3));
    let st = feed.stats();
    assert_eq!(http.requests(), 2, "{st:?}");
    assert!(st.snapshot_limited >= 1, "{st:?}");
    assert_eq!(budget.used_weight(wall_ns()), 10);
}

/// Connection 1 syncs the book and then goes quiet before it drops (FIN); connection 2
/// is held open without data. The book's `Clear` comes at the drop, while the client
/// is disconnected, not when connection 2 opens.
#[test]
fn books_clear_when_the_connection_drops() {
    let http =
        Http::spawn("HTTP/1.1 200 OK", r#"{"lastUpdateId":1005,"bids":[["99.00","1"]],"asks":[["102.00","1"]]}"#);
    let first: Script = Box::new(|mut ws, _| {
        for u in 1_001..1_100 {
            ws.send(Message::text(depth(u))).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(200));
        drop(ws);
    });
    let hold: Script = Box::new(|_ws, stop| {
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let ws = Ws::spawn(vec![first, hold]);
    let mut cfg = feed_config(ws.addr, http.addr, false);
    cfg.clock = FeedClock::Wall;
    let mut feed = BinanceFeed::new(&cfg, &btc(), None).unwrap();
    let (mut synced, mut clears_after_sync) = (false, Vec::new());
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) && clears_after_sync.is_empty() {
        let mut clear = false;
        feed.poll(&mut |ev| match ev.kind {
            EventKind::BidLevel | EventKind::AskLevel => synced = true,
            EventKind::Clear if synced => clear = true,
            _ => {}
        });
        if clear {
            clears_after_sync.push((feed.ws().generation(), feed.ws().is_open()));
        }
    }
    assert!(synced, "{:?}", feed.stats());
    assert_eq!(clears_after_sync, [(1, false)], "cleared at the drop of connection 1, not at connection 2");
    assert!(!feed.sync(0).is_synced());
}

/// With `end_on_close`, connection 1 ends in a TCP reset (closed with unread data: the
/// client's pong): a disconnect, so the feed reconnects. Connection 2 ends with a Close
/// frame: the end of the data.
#[test]
fn reset_reconnects_and_only_a_clean_close_ends_the_data() {
    let http = Http::spawn("HTTP/1.1 200 OK", r#"{"lastUpdateId":1000,"bids":[],"asks":[]}"#);
    let reset: Script = Box::new(|mut ws, _| {
        for u in 1_001..1_010 {
            ws.send(Message::text(depth(u))).unwrap();
        }
        ws.send(Message::Ping(Vec::new().into())).unwrap();
        // The client answers with a pong, which stays unread: closing the socket now
        // sends RST rather than FIN.
        std::thread::sleep(Duration::from_millis(300));
        drop(ws);
    });
    let clean: Script = Box::new(|mut ws, _| {
        for u in 2_001..2_010 {
            ws.send(Message::text(depth(u))).unwrap();
        }
        let _ = ws.close(None);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) && ws.read().is_ok() {}
    });
    let ws = Ws::spawn(vec![reset, clean]);
    let mut feed = BinanceFeed::new(&feed_config(ws.addr, http.addr, true), &btc(), None).unwrap();
    let t0 = Instant::now();
    let mut ended = false;
    while t0.elapsed() < Duration::from_secs(10) {
        if feed.poll(&mut |_| {}) == Polled::End {
            ended = true;
            break;
        }
    }
    let w = feed.ws().stats();
    assert!(ended, "{w:?}");
    assert_eq!(w.connects, 2, "the reset reconnected: {w:?} {:?}", feed.ws().last_error());
    assert_eq!(feed.ws().peer_end(), Some(statarb::feed::ws::PeerEnd::Close));
    assert_eq!(feed.stats().messages, 18);
}
