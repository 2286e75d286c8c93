//! The Binance Spot gateway with `orders = "ws"` (order entry over the WebSocket API)
//! against the mock venue over a real loopback WebSocket: place, cancel,
//! cancel-replace and fills; a burst of 16 cancels in flight together; 429/418
//! back-off, -1021 clock re-sync, a timeout leaving an order unknown until the venue
//! settles it, a dropped connection reconnecting with the lost order settled by query;
//! Ed25519 keys: `session.logon`, then requests without signatures.

use std::time::{Duration, Instant};

use statarb::event::{ExecKind, ExecReport, NewOrder, OrderCmd, Tif};
use statarb::gateway::binance::{
    BinanceGatewayConfig, BinanceSpot, OrderState, CODE_CANCEL_REPLACE_FAILED, CODE_NO_SUCH_ORDER,
    CODE_TOO_MANY_REQUESTS,
};
use statarb::gateway::sign::{Credentials, Ed25519Key};
use statarb::gateway::Exchange;
use statarb::mock::{Fault, MockHandle};
use statarb::types::Side;

mod binance_support;
use binance_support::*;

fn config(m: &MockHandle) -> BinanceGatewayConfig {
    gateway_config(m)
}

fn new_order(n: u64, inst: u16, side: Side, px: i64, qty: i64) -> NewOrder {
    NewOrder { id: oid(n), inst, side, px, qty, tif: Tif::PostOnly }
}

/// Sends `cmd` and polls until `n` reports came back.
fn round_trip(gw: &mut BinanceSpot, cmd: OrderCmd, n: usize) -> Vec<ExecReport> {
    let mut out = send(gw, cmd);
    poll_until(gw, &mut out, |o| o.len() >= n);
    out
}

#[test]
fn place_cancel_replace_and_fills_over_the_ws_api() {
    let m = mock();
    assert_eq!(config(&m).orders, "ws", "the default");
    let mut gw = started(config(&m), SECRET);
    let r = round_trip(&mut gw, OrderCmd::New(new_order(1, BTC, Side::Buy, 5_000_000, 100)), 1);
    assert_eq!(kinds(&r), [(oid(1), ExecKind::New)]);
    assert_eq!((r[0].px, r[0].leaves, r[0].code), (5_000_000, 100, 0));
    assert_eq!(count(&m, "WS order.place"), 1);
    assert_eq!(count(&m, "POST /api/v3/order"), 0, "no REST order entry: {:?}", m.requests());
    assert_eq!(m.open_orders("BTCUSDT").len(), 1);

    // Reprice: one order.cancelReplace.
    let new = new_order(2, BTC, Side::Buy, 5_000_100, 100);
    let r = round_trip(&mut gw, OrderCmd::Replace { old: oid(1), new }, 2);
    assert_eq!(kinds(&r), [(oid(1), ExecKind::Canceled), (oid(2), ExecKind::New)]);
    let open = m.open_orders("BTCUSDT");
    assert_eq!((open.len(), open[0].px), (1, 5_000_100));
    assert_eq!(count(&m, "WS order.cancelReplace"), 1);
    // STOP_ON_FAILURE: the order to cancel is gone, the new one is not placed.
    let new = new_order(3, BTC, Side::Buy, 5_000_200, 100);
    let r = round_trip(&mut gw, OrderCmd::Replace { old: oid(1), new }, 1);
    assert_eq!(kinds(&r), [(oid(3), ExecKind::Rejected)]);
    assert_eq!(r[0].code, CODE_CANCEL_REPLACE_FAILED);

    let r = round_trip(&mut gw, OrderCmd::Cancel { id: oid(2), inst: BTC }, 1);
    assert_eq!(kinds(&r), [(oid(2), ExecKind::Canceled)]);
    assert!(m.open_orders("BTCUSDT").is_empty());

    // A resting sell filled by another participant: the fill comes from the stream.
    let r = round_trip(&mut gw, OrderCmd::New(new_order(4, ETH, Side::Sell, 300_000, 10_000)), 1);
    assert_eq!(kinds(&r), [(oid(4), ExecKind::New)]);
    assert_eq!(m.trade("ETHUSDT", Side::Buy, "3000.50", "0.4"), 4_000);
    let mut out = Vec::new();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(4), ExecKind::PartialFill)]);
    assert_eq!((out[0].qty, out[0].leaves, out[0].maker), (4_000, 6_000, true));
    assert!((out[0].fee - 1.2).abs() < 1e-9, "{}", out[0].fee);
    // Cancel-all over the WebSocket API.
    let r = round_trip(&mut gw, OrderCmd::CancelAll, 1);
    assert_eq!(kinds(&r), [(oid(4), ExecKind::Canceled)]);
    assert_eq!(count(&m, "WS openOrders.cancelAll"), 2, "one per symbol");

    // Duplicates (the stream's events of the same orders) reach no one.
    assert!(drain(&mut gw, 100).is_empty());
    assert_eq!(gw.in_flight(), 0);
    assert_eq!(gw.ws_in_flight(), 0);
    let s = gw.stats();
    assert_eq!(s.ws_requests, s.ws_answers, "{s:?}");
    assert_eq!((s.ws_timeouts, s.ws_table_full, s.ws_late_answers), (0, 0, 0), "{s:?}");
}

/// 16 cancels in a burst: the mock holds every answer until all 16 requests arrived,
/// so they can only be answered if all 16 were on the wire, in flight together.
#[test]
fn burst_of_16_cancels_is_in_flight_together() {
    let m = mock();
    let mut gw = started(config(&m), SECRET);
    let mut out = Vec::new();
    for i in 0..16 {
        gw.on_order(&OrderCmd::New(new_order(10 + i, BTC, Side::Buy, 4_000_000 + i as i64, 100)), 0, &mut out);
    }
    poll_until(&mut gw, &mut out, |o| o.iter().filter(|r| r.kind == ExecKind::New).count() == 16);
    assert!(gw.ws_in_flight_high_water() >= 2, "the placements were pipelined too");
    // Text frames this session saw so far: the subscribe and our requests.
    let seen = 1 + gw.stats().ws_requests;
    m.hold_ws_answers(seen + 16);
    let answers = gw.stats().ws_answers;
    out.clear();
    for i in 0..16 {
        gw.on_order(&OrderCmd::Cancel { id: oid(10 + i), inst: BTC }, 0, &mut out);
    }
    assert_eq!(gw.ws_in_flight(), 16, "all 16 sent, none answered");
    poll_until(&mut gw, &mut out, |o| o.iter().filter(|r| r.kind == ExecKind::Canceled).count() == 16);
    let t0 = Instant::now();
    while gw.ws_in_flight() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        gw.poll(0, &mut out);
    }
    m.hold_ws_answers(0);
    assert_eq!(gw.stats().ws_answers, answers + 16);
    assert_eq!(gw.ws_in_flight_high_water(), 16);
    assert!(m.open_orders("BTCUSDT").is_empty());
    assert_eq!(gw.in_flight(), 0);
}

#[test]
fn ws_429_and_418_back_off_until_retry_after() {
    let m = mock();
    let mut gw = started(config(&m), SECRET);
    round_trip(&mut gw, OrderCmd::New(new_order(20, BTC, Side::Buy, 4_000_000, 100)), 1);
    m.inject(Fault::Http429 { retry_after_s: 1 }, 1, Some("order.place"));
    let t429 = Instant::now();
    let r = round_trip(&mut gw, OrderCmd::New(new_order(21, BTC, Side::Buy, 4_000_000, 100)), 1);
    assert_eq!((r[0].id, r[0].kind, r[0].code), (oid(21), ExecKind::Rejected, CODE_TOO_MANY_REQUESTS));
    let places = count(&m, "WS order.place");
    // During the back-off nothing is sent: orders refused at once, cancels queued.
    let r = send(&mut gw, OrderCmd::New(new_order(22, BTC, Side::Buy, 4_000_000, 100)));
    assert_eq!((r[0].kind, r[0].code), (ExecKind::Rejected, CODE_TOO_MANY_REQUESTS));
    assert!(send(&mut gw, OrderCmd::Cancel { id: oid(20), inst: BTC }).is_empty());
    assert_eq!(gw.in_flight(), 2, "order 20 open and its cancel queued");
    assert_eq!(count(&m, "WS order.place"), places);
    assert_eq!(count(&m, "WS order.cancel"), 0);
    let mut out = Vec::new();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert!(t429.elapsed() >= Duration::from_millis(950), "{:?}", t429.elapsed());
    assert_eq!(kinds(&out), [(oid(20), ExecKind::Canceled)]);

    // 418 (an IP ban) on a cancel: the same block, with the 418's retryAfter.
    round_trip(&mut gw, OrderCmd::New(new_order(23, BTC, Side::Buy, 4_000_000, 100)), 1);
    m.inject(Fault::Http418 { retry_after_s: 1 }, 1, Some("order.cancel"));
    let t418 = Instant::now();
    let mut out = send(&mut gw, OrderCmd::Cancel { id: oid(23), inst: BTC });
    poll_until(&mut gw, &mut out, |o| o.iter().any(|r| r.kind == ExecKind::Canceled));
    assert!(t418.elapsed() >= Duration::from_millis(950), "{:?}", t418.elapsed());
    assert_eq!(gw.stats().backoffs, 2);
    assert!(m.open_orders("BTCUSDT").is_empty());
}

#[test]
fn ws_timestamp_error_resyncs_the_clock_and_resends() {
    let m = mock();
    let mut gw = started(config(&m), SECRET);
    let syncs = gw.stats().time_syncs;
    m.set_clock_offset_ms(30_000);
    let r = round_trip(&mut gw, OrderCmd::New(new_order(30, BTC, Side::Buy, 4_000_000, 100)), 1);
    assert_eq!(kinds(&r), [(oid(30), ExecKind::New)]);
    assert_eq!(m.stats().timestamp_rejects, 1);
    assert_eq!(gw.stats().timestamp_errors, 1);
    assert_eq!(gw.stats().time_syncs, syncs + 1);
    assert!((gw.clock_offset_ms() - 30_000).abs() < 1_000, "{}", gw.clock_offset_ms());
    assert_eq!(count(&m, "WS order.place"), 2, "sent again once");
    m.inject(Fault::Timestamp, 1, Some("order.cancel"));
    let r = round_trip(&mut gw, OrderCmd::Cancel { id: oid(30), inst: BTC }, 1);
    assert_eq!(kinds(&r), [(oid(30), ExecKind::Canceled)]);
    assert_eq!(gw.stats().timestamp_errors, 2);
}

#[test]
fn ws_timeout_leaves_the_order_unknown_until_the_venue_settles_it() {
    let m = mock();
    let mut cfg = config(&m);
    cfg.timeout_ms = 300;
    let mut gw = started(cfg, SECRET);
    // Executed, but answered after our timeout.
    m.inject(Fault::SlowAnswer { ms: 800 }, 1, Some("order.place"));
    let mut out = send(&mut gw, OrderCmd::New(new_order(40, BTC, Side::Buy, 4_000_000, 100)));
    assert!(out.is_empty());
    assert_eq!(gw.order_state(oid(40)), Some(OrderState::Live), "sent, not yet late");
    let t0 = Instant::now();
    while gw.order_state(oid(40)) != Some(OrderState::Unknown) {
        assert!(t0.elapsed() < Duration::from_secs(2));
        gw.poll(0, &mut out);
    }
    assert!(t0.elapsed() >= Duration::from_millis(250), "{:?}", t0.elapsed());
    assert!(out.is_empty(), "neither live nor dead: {out:?}");
    assert_eq!(gw.stats().ws_timeouts, 1);
    assert_eq!(gw.in_flight(), 1);
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(40), ExecKind::New)]);
    assert_eq!(gw.order_state(oid(40)), Some(OrderState::Live));
    assert!(gw.stats().settle_queries >= 1, "{:?}", gw.stats());
    assert!(count(&m, "WS order.status") >= 1, "the query went over the WebSocket API");
    drain(&mut gw, 300);
    assert!(gw.stats().ws_late_answers >= 1, "the late answer is dropped: {:?}", gw.stats());
    let r = round_trip(&mut gw, OrderCmd::Cancel { id: oid(40), inst: BTC }, 1);
    assert_eq!(kinds(&r), [(oid(40), ExecKind::Canceled)]);
}

#[test]
fn dropped_connection_reconnects_and_the_lost_order_is_settled_by_query() {
    let m = mock();
    let mut cfg = config(&m);
    cfg.recv_window_ms = 1_000;
    let mut gw = started(cfg, SECRET);
    round_trip(&mut gw, OrderCmd::New(new_order(50, BTC, Side::Buy, 4_000_000, 100)), 1);
    // Lost: not executed, and the connection is dropped without an answer.
    m.inject(Fault::Lost { ms: 20 }, 1, Some("order.place"));
    let t0 = Instant::now();
    let mut out = send(&mut gw, OrderCmd::New(new_order(51, BTC, Side::Buy, 4_000_100, 100)));
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(900), "not before timestamp + recvWindow: {:?}", t0.elapsed());
    assert_eq!(kinds(&out), [(oid(51), ExecKind::Rejected)]);
    assert_eq!(out[0].code, CODE_NO_SUCH_ORDER);
    assert!(m.stats().subscriptions >= 2, "reconnected and subscribed again");
    assert!(gw.stats().ws_timeouts >= 1);
    assert!(count(&m, "WS order.status") >= 2, "{:?}", m.requests());
    // The order left live is still live (re-queried after the reconnect), and the new
    // connection carries orders.
    assert_eq!(gw.order_state(oid(50)), Some(OrderState::Live));
    let r = round_trip(&mut gw, OrderCmd::Cancel { id: oid(50), inst: BTC }, 1);
    assert_eq!(kinds(&r), [(oid(50), ExecKind::Canceled)]);
    let r = round_trip(&mut gw, OrderCmd::New(new_order(52, BTC, Side::Buy, 4_000_000, 100)), 1);
    assert_eq!(kinds(&r), [(oid(52), ExecKind::New)]);

    // Dropped by the venue with nothing in flight: reconnects, orders flow again.
    m.drop_streams();
    let t0 = Instant::now();
    let mut out = Vec::new();
    while !(gw.stream_ready() && m.stats().subscriptions >= 3) {
        assert!(t0.elapsed() < Duration::from_secs(5), "{gw:?}");
        gw.poll(0, &mut out);
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = round_trip(&mut gw, OrderCmd::Cancel { id: oid(52), inst: BTC }, 1);
    assert_eq!(kinds(&r), [(oid(52), ExecKind::Canceled)]);
    assert!(m.open_orders("BTCUSDT").is_empty());
}

/// Binance's published (illustrative) Ed25519 private key, FIX API docs.
const ED25519_PEM: &str =
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9m89u\n-----END PRIVATE KEY-----\n";
const ED25519_API_KEY: &str = "mockEd25519ApiKeyR4n7Wq2Zc8Vb1Nm5Kx9Lp3Jh6Gf0Ds4Aq7We2Rt5Yu8Io1P";

/// With an Ed25519 key each connection logs on once (`session.logon`); the
/// subscription and every order request after it carry no apiKey and no signature,
/// and a reconnect logs on again.
#[test]
fn ed25519_session_logon_then_unsigned_requests() {
    let m = mock();
    let key = Ed25519Key::from_pem(ED25519_API_KEY, ED25519_PEM, "test").unwrap();
    m.set_ed25519_key(ED25519_API_KEY, key.public_key());
    let cfg = config(&m);
    // An HMAC secret the venue refuses: the clock sync (unsigned REST) works, and any
    // request signed with HMAC would fail (-1022, an auth failure at the mock).
    let hmac = Credentials::new(KEY, "not the secret");
    let mut gw = BinanceSpot::with_credentials(cfg, hmac, instruments(), fees()).unwrap();
    gw.logon_ed25519(key);
    gw.start().unwrap();
    let mut out = Vec::new();
    let t0 = Instant::now();
    while !gw.stream_ready() {
        assert!(t0.elapsed() < Duration::from_secs(5), "not logged on and subscribed: {gw:?}");
        gw.poll(0, &mut out);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(m.stats().logons, 1);
    let auth = m.stats().auth_failures;
    let r = round_trip(&mut gw, OrderCmd::New(new_order(60, BTC, Side::Buy, 4_000_000, 100)), 1);
    assert_eq!(kinds(&r), [(oid(60), ExecKind::New)]);
    let new = new_order(61, BTC, Side::Buy, 4_000_100, 100);
    let r = round_trip(&mut gw, OrderCmd::Replace { old: oid(60), new }, 2);
    assert_eq!(kinds(&r), [(oid(60), ExecKind::Canceled), (oid(61), ExecKind::New)]);
    // Fills still come from the stream subscribed on the logged-on session.
    assert_eq!(m.trade("BTCUSDT", Side::Sell, "40000", "1"), 100);
    let mut out = Vec::new();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(61), ExecKind::Fill)]);
    assert_eq!(m.stats().auth_failures, auth);
    // A dropped connection logs on again before sending anything.
    m.drop_streams();
    let t0 = Instant::now();
    while !(gw.stream_ready() && m.stats().logons >= 2) {
        assert!(t0.elapsed() < Duration::from_secs(5), "{gw:?}");
        gw.poll(0, &mut out);
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = round_trip(&mut gw, OrderCmd::New(new_order(62, BTC, Side::Buy, 4_000_000, 100)), 1);
    assert_eq!(kinds(&r), [(oid(62), ExecKind::New)]);
    let r = round_trip(&mut gw, OrderCmd::Cancel { id: oid(62), inst: BTC }, 1);
    assert_eq!(kinds(&r), [(oid(62), ExecKind::Canceled)]);
    // The queries go on the logged-on session unsigned too (the HMAC secret is wrong).
    assert!(gw.balances().unwrap().iter().any(|b| b.asset == "USDT"));
    assert!(gw.open_orders().unwrap().is_empty());
    gw.sync_time().unwrap();
    assert_eq!(count(&m, "WS account.status"), 1);
    assert_eq!(count(&m, "WS openOrders.status"), 2);
    assert_eq!(m.stats().auth_failures, auth);
}

#[test]
fn orders_key_is_checked() {
    let m = mock();
    let fees = fees();
    let bad = BinanceGatewayConfig { orders: "fix".into(), ..config(&m) };
    let e = BinanceSpot::with_credentials(bad, Credentials::new(KEY, SECRET), instruments(), fees).unwrap_err();
    assert!(e.to_string().contains("gateway.binance.orders"), "{e}");
    let no_ws = BinanceGatewayConfig { ws_url: String::new(), ..config(&m) };
    let e = BinanceSpot::with_credentials(no_ws, Credentials::new(KEY, SECRET), instruments(), fees).unwrap_err();
    assert!(e.to_string().contains("gateway.binance.orders"), "{e}");
}
