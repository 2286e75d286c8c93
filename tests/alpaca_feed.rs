//! The Alpaca crypto source end to end over loopback: a scripted Alpaca server (real
//! WebSocket, the protocol of Alpaca's "Real-time Crypto Data" and "Real-time Stock
//! Pricing Data" pages: `connected` greeting, `auth`, `authenticated`, `subscribe`,
//! `subscription`, then arrays of quotes and trades) -> `AlpacaFeed` (mio + tungstenite
//! client on the caller's thread) -> books and the strategy core.

mod common;

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use statarb::backtest::matching::MatchingEngine;
use statarb::backtest::queue::ProbPower;
use statarb::book::Book;
use statarb::core::{Commands, Core};
use statarb::event::{EventKind, MarketEvent, OrderCmd};
use statarb::feed::config::{FeedClock, FeedConfig, Venue};
use statarb::feed::gen::{self, GenParams};
use statarb::feed::source::{AlpacaFeed, AlpacaState};
use statarb::gateway::Exchange;
use statarb::live::{MarketSource, Polled};
use statarb::types::{Instrument, Side};
use tungstenite::{Message, WebSocket};

/// The data set's instruments under Alpaca's symbols (same ticks and lots, same ids).
fn alpaca_instruments(ds: &gen::Dataset) -> Vec<Instrument> {
    ["BTC/USD", "ETH/USD"].iter().zip(&ds.instruments).map(|(s, i)| Instrument::new(*s, i.tick, i.lot)).collect()
}

/// The expected top `(inst, bid, ask)` after a message; `None` for trades.
type Top = Option<(usize, i64, i64)>;

/// The data set as Alpaca messages: after every non-trade batch, the book's top as a
/// quote; every trade as a trade with its taker side. Returns the messages and, per
/// message, the expected top `(inst, bid, ask)` for quotes.
fn render(ds: &gen::Dataset, insts: &[Instrument]) -> (Vec<String>, Vec<Top>) {
    let mut books = [Book::default(), Book::default()];
    let (mut msgs, mut tops) = (Vec::new(), Vec::new());
    let ts = |ns: i64| {
        let secs = ns.div_euclid(1_000_000_000);
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        // The generated data set starts on 2024-08-09 and spans hours, not days.
        format!("2024-08-09T{h:02}:{m:02}:{s:02}.{:09}Z", ns.rem_euclid(1_000_000_000))
    };
    for ev in &ds.events {
        let i = ev.inst as usize;
        let inst = &insts[i];
        if ev.kind.is_trade() {
            let tks = if ev.kind == EventKind::TradeBuy { "B" } else { "S" };
            msgs.push(format!(
                r#"[{{"T":"t","S":"{}","p":{},"s":{},"t":"{}","i":{},"tks":"{tks}"}}]"#,
                inst.symbol,
                inst.price_decimal(ev.px),
                inst.qty_decimal(ev.qty),
                ts(ev.exch_ts),
                msgs.len()
            ));
            tops.push(None);
            continue;
        }
        books[i].apply(ev);
        if !ev.is_batch_end() {
            continue;
        }
        let (Some(b), Some(a)) = (books[i].best_bid(), books[i].best_ask()) else { continue };
        msgs.push(format!(
            r#"[{{"T":"q","S":"{}","bp":{},"bs":{},"ap":{},"as":{},"t":"{}"}}]"#,
            inst.symbol,
            inst.price_decimal(b.px),
            inst.qty_decimal(b.qty),
            inst.price_decimal(a.px),
            inst.qty_decimal(a.qty),
            ts(ev.exch_ts)
        ));
        tops.push(Some((i, b.px, a.px)));
    }
    (msgs, tops)
}

/// What the server saw of one session.
#[derive(Debug)]
struct Session {
    auth_ok: bool,
    subscribed: Vec<String>,
}

fn read_text(ws: &mut WebSocket<TcpStream>) -> Option<String> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
    }
}

/// Serves `sessions.len()` connections: each greets, checks the credentials, takes the
/// subscription, then sends `msgs[range]` and either closes cleanly or drops the TCP
/// connection (`drop = true`).
fn serve(
    key: &'static str,
    secret: &'static str,
    msgs: Vec<String>,
    sessions: Vec<(std::ops::Range<usize>, bool)>,
) -> (u16, Receiver<Session>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for (range, drop_it) in sessions {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut ws = tungstenite::accept(s).unwrap();
            ws.send(Message::text(r#"[{"T":"success","msg":"connected"}]"#)).unwrap();
            let auth: serde_json::Value = serde_json::from_str(&read_text(&mut ws).unwrap()).unwrap();
            let auth_ok = auth["action"] == "auth" && auth["key"] == key && auth["secret"] == secret;
            if !auth_ok {
                ws.send(Message::text(r#"[{"T":"error","code":402,"msg":"auth failed"}]"#)).unwrap();
                let _ = ws.close(None);
                let _ = ws.flush();
                tx.send(Session { auth_ok, subscribed: Vec::new() }).unwrap();
                continue;
            }
            ws.send(Message::text(r#"[{"T":"success","msg":"authenticated"}]"#)).unwrap();
            let sub: serde_json::Value = serde_json::from_str(&read_text(&mut ws).unwrap()).unwrap();
            let subscribed: Vec<String> =
                sub["quotes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
            ws.send(Message::text(format!(
                r#"[{{"T":"subscription","trades":{0},"quotes":{0},"orderbooks":[],"bars":[]}}]"#,
                sub["quotes"]
            )))
            .unwrap();
            for m in &msgs[range] {
                ws.write(Message::text(m.clone())).unwrap();
            }
            ws.flush().unwrap();
            if drop_it {
                drop(ws);
            } else {
                let _ = ws.close(None);
                let _ = ws.flush();
                // Let the client finish the closing handshake.
                while ws.read().is_ok() {}
            }
            tx.send(Session { auth_ok, subscribed }).unwrap();
        }
    });
    (port, rx)
}

fn feed_config(port: u16, key_env: &str, secret_env: &str) -> FeedConfig {
    FeedConfig {
        venue: Venue::Alpaca,
        ws_url: format!("ws://127.0.0.1:{port}/v1beta3/crypto/us"),
        rest_url: String::new(),
        depth_levels: 20,
        snapshot_limit: 100,
        agg_trades: false,
        read_buffer_size: 64 * 1024,
        end_on_close: true,
        clock: FeedClock::Exchange,
        key_env: Some(key_env.into()),
        secret_env: Some(secret_env.into()),
        wire_stamps: false,
        busy_poll: true,
    }
}

/// Polls until the feed ends or `done` says so.
fn drain_until(feed: &mut AlpacaFeed, limit: Duration, mut f: impl FnMut(&MarketEvent) -> bool) {
    let t0 = Instant::now();
    let mut done = false;
    while t0.elapsed() < limit {
        if let Polled::End = feed.poll(&mut |ev| done |= f(ev)) {
            return;
        }
        if done {
            return;
        }
    }
    panic!("the feed did not end within {limit:?}");
}

fn drain(feed: &mut AlpacaFeed, limit: Duration, mut f: impl FnMut(&MarketEvent)) {
    drain_until(feed, limit, |ev| {
        f(ev);
        false
    });
}

#[test]
fn quotes_and_trades_reach_the_books_across_a_reconnect() {
    let ds = gen::generate(&GenParams { events: 20_000, ..GenParams::default() });
    let insts = alpaca_instruments(&ds);
    let (msgs, tops) = render(&ds, &insts);
    let half = msgs.len() / 2;
    // Session 1 is cut abruptly mid-stream; session 2 (after the backoff) sends the rest.
    let (port, rx) = serve("key-1", "secret-1", msgs.clone(), vec![(0..half, true), (half..msgs.len(), false)]);
    std::env::set_var("STATARB_TEST_ALPACA_KEY_1", "key-1");
    std::env::set_var("STATARB_TEST_ALPACA_SECRET_1", "secret-1");
    // Not end_on_close: the cut connection must reconnect, not end the run.
    let cfg = FeedConfig {
        end_on_close: false,
        ..feed_config(port, "STATARB_TEST_ALPACA_KEY_1", "STATARB_TEST_ALPACA_SECRET_1")
    };
    let total = msgs.len();
    let mut feed = AlpacaFeed::new(&cfg, &insts, None).unwrap();
    let mut books = [Book::default(), Book::default()];
    let (mut quotes, mut trades, mut clears) = (Vec::new(), 0usize, 0);
    drain_until(&mut feed, Duration::from_secs(30), |ev| {
        let i = ev.inst as usize;
        books[i].apply(ev);
        match ev.kind {
            EventKind::Clear => clears += 1,
            EventKind::BestAsk => {
                let (b, a) = books[i].top().expect("a quote leaves a two-sided book");
                quotes.push((i, b, a));
            }
            k if k.is_trade() => trades += 1,
            _ => {}
        }
        quotes.len() + trades == total
    });
    let s1 = rx.recv().unwrap();
    let s2 = rx.recv().unwrap();
    assert!(s1.auth_ok && s2.auth_ok);
    assert_eq!(s1.subscribed, ["BTC/USD", "ETH/USD"]);
    assert_eq!(s2.subscribed, s1.subscribed, "re-subscribed after the reconnect");
    let st = feed.stats();
    assert_eq!(st.authenticated, 2, "{st:?}");
    assert_eq!(st.parse_errors, 0);
    assert_eq!(feed.ws().stats().reconnects, 1);
    // Both connections start by clearing both books.
    assert_eq!(clears, 4);
    // Every message was delivered once, in order: the books' tops are the server's.
    let want: Vec<_> = tops.iter().flatten().copied().collect();
    assert_eq!(quotes, want);
    assert_eq!(trades, tops.iter().filter(|t| t.is_none()).count());
}

#[test]
fn refused_credentials_end_the_feed_without_market_data_or_leaks() {
    let ds = gen::generate(&GenParams { events: 2_000, ..GenParams::default() });
    let insts = alpaca_instruments(&ds);
    let (msgs, _) = render(&ds, &insts);
    let (port, rx) = serve("key-2", "right-secret", msgs, vec![(0..10, false)]);
    std::env::set_var("STATARB_TEST_ALPACA_KEY_2", "key-2");
    std::env::set_var("STATARB_TEST_ALPACA_SECRET_2", "wrong-secret-XYZ");
    let cfg = feed_config(port, "STATARB_TEST_ALPACA_KEY_2", "STATARB_TEST_ALPACA_SECRET_2");
    let mut feed = AlpacaFeed::new(&cfg, &insts, None).unwrap();
    let mut market = 0;
    drain(&mut feed, Duration::from_secs(10), |ev| market += (ev.kind != EventKind::Clear) as usize);
    assert!(!rx.recv().unwrap().auth_ok);
    assert_eq!(market, 0);
    assert_eq!(feed.state(), AlpacaState::Failed);
    assert_eq!(feed.stats().last_error_code, 402);
    let dbg = format!("{feed:?}");
    assert!(!dbg.contains("wrong-secret-XYZ") && !dbg.contains("key-2"), "credentials in Debug output");
}

#[test]
fn missing_credentials_are_a_clear_error() {
    let ds = gen::generate(&GenParams { events: 100, ..GenParams::default() });
    let cfg = feed_config(1, "STATARB_TEST_ALPACA_UNSET_KEY", "STATARB_TEST_ALPACA_UNSET_SECRET");
    let err = AlpacaFeed::new(&cfg, &alpaca_instruments(&ds), None).unwrap_err();
    assert_eq!(err.to_string(), "environment variable STATARB_TEST_ALPACA_UNSET_KEY is not set");
}

#[test]
fn the_core_quotes_from_alpaca_tops_and_never_inside_out() {
    let ds = gen::generate(&GenParams { events: 60_000, ..GenParams::default() });
    let insts = alpaca_instruments(&ds);
    let (msgs, _) = render(&ds, &insts);
    let n = msgs.len();
    let (port, _rx) = serve("key-3", "secret-3", msgs, vec![(0..n, false)]);
    std::env::set_var("STATARB_TEST_ALPACA_KEY_3", "key-3");
    std::env::set_var("STATARB_TEST_ALPACA_SECRET_3", "secret-3");
    let cfg = feed_config(port, "STATARB_TEST_ALPACA_KEY_3", "STATARB_TEST_ALPACA_SECRET_3");
    let mut feed = AlpacaFeed::new(&cfg, &insts, None).unwrap();
    // The core trades the configured (Binance-named) legs; ids are shared by position.
    let config = common::market_make_config();
    let mut core = Core::new(&config.core_params().unwrap(), &ds.instruments, 1).unwrap();
    let mut venue = MatchingEngine::new(ds.instruments.clone(), config.fees, ProbPower::new(2.0));
    let mut books = [Book::default(), Book::default()];
    let (mut cmds, mut reports, mut orders) = (Commands::new(), Vec::new(), 0);
    drain(&mut feed, Duration::from_secs(30), |ev| {
        books[ev.inst as usize].apply(ev);
        venue.on_market(ev, &mut reports);
        core.on_market(ev, ev.local_ts, &mut cmds);
        while !cmds.is_empty() || !reports.is_empty() {
            for r in reports.drain(..) {
                core.on_exec(&r, ev.local_ts, &mut cmds);
            }
            let Some(c) = cmds.pop_at(0) else { continue };
            venue.on_order(&c, ev.local_ts, &mut reports);
            if let OrderCmd::New(o) = c {
                orders += 1;
                let (bid, ask) = books[o.inst as usize].top().expect("quote without a two-sided book");
                match o.side {
                    Side::Buy => assert!(o.px < ask, "bid {} at or above the ask {ask}", o.px),
                    Side::Sell => assert!(o.px > bid, "ask {} at or below the bid {bid}", o.px),
                }
            }
        }
    });
    assert!(orders > 0, "the core quoted: {:?}", core.stats());
}
