//! The Binance Spot gateway against the mock venue over real loopback HTTP and
//! WebSocket: signing, order round trips, execution reports from the user data
//! stream, rejects with codes, 429/418 back-off, -1021 clock re-sync, unknown orders
//! settled by queries, reconciliation, and secrets kept out of every output. Order
//! entry here is `orders = "rest"`.

use std::time::{Duration, Instant};

use statarb::event::{ExecKind, NewOrder, OrderCmd, Tif};
use statarb::gateway::binance::{
    client_order_id, BinanceGatewayConfig, BinanceSpot, GatewayError, OrderState, CODE_CANCEL_REPLACE_FAILED,
    CODE_NEW_ORDER_REJECTED, CODE_NO_SUCH_ORDER, CODE_TOO_MANY_REQUESTS,
};
use statarb::gateway::sign::{Credentials, Query};
use statarb::gateway::Exchange;
use statarb::mock::{Fault, MockBinance, MockConfig, MockHandle};
use statarb::types::{Instrument, Side};

mod binance_support;
use binance_support::*;

fn config(m: &MockHandle) -> BinanceGatewayConfig {
    // These tests drive the blocking REST transport; tests/binance_ws_orders.rs
    // drives the WebSocket API one (the default).
    BinanceGatewayConfig { orders: "rest".into(), ..gateway_config(m) }
}

fn gateway(m: &MockHandle) -> BinanceSpot {
    started(config(m), SECRET)
}

/// Binance's documented request (`POST /api/v3/order` with the example key, secret,
/// query string and signature) is accepted byte for byte by the mock, whose clock is
/// set to the example's time; a changed byte or a late clock is refused as documented.
#[test]
fn documented_example_request_is_accepted() {
    const DOC_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const DOC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    const QUERY: &str =
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    const SIG: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
    let c = Credentials::new(DOC_KEY, DOC_SECRET);
    assert_eq!(c.sign(QUERY.as_bytes()), SIG);
    let mut q = Query::new();
    for (k, v) in QUERY.split('&').map(|kv| kv.split_once('=').unwrap()) {
        q.push(k, v);
    }
    assert_eq!(q.signed(&c), format!("{QUERY}&signature={SIG}"));

    let m = MockBinance::spawn(MockConfig {
        creds: Credentials::new(DOC_KEY, DOC_SECRET),
        instruments: vec![Instrument::new("LTCBTC", "0.000001".parse().unwrap(), "0.001".parse().unwrap())],
        balances: vec![("BTC".into(), 1.0)],
        maker_bps: 0.0,
        taker_bps: 0.0,
    })
    .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let post = |query: &str, key: &str| {
        let mut r = agent
            .post(format!("{}/api/v3/order?{query}", m.rest_url()))
            .header("X-MBX-APIKEY", key)
            .send_empty()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
        (r.status().as_u16(), body)
    };
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // Server time 100 ms after the example's timestamp.
    m.set_clock_offset_ms(1_499_827_319_659 - now_ms);
    let (status, body) = post(&format!("{QUERY}&signature={SIG}"), DOC_KEY);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "NEW");
    assert_eq!(body["origQty"], "1.00000000");
    // Upper-case hex is accepted too (HMAC signatures are case-blind).
    let (status, body) =
        post(&format!("{}&signature={}", QUERY.replace("price=0.1", "price=0.2"), SIG.to_uppercase()), DOC_KEY);
    assert_eq!((status, body["code"].as_i64()), (400, Some(-1022)), "{body}");
    let (status, body) = post(&format!("{QUERY}&signature={SIG}"), "wrong-key");
    assert_eq!((status, body["code"].as_i64()), (401, Some(-2015)));
    let (_, body) = post(QUERY, DOC_KEY);
    assert_eq!(body["code"].as_i64(), Some(-1102));
    // 5.1 s later the request is outside its recvWindow.
    m.set_clock_offset_ms(1_499_827_319_559 + 5_100 - now_ms);
    let (_, body) = post(&format!("{QUERY}&signature={SIG}"), DOC_KEY);
    assert_eq!(body["code"].as_i64(), Some(-1021));
    assert_eq!(body["msg"], "Timestamp for this request is outside of the recvWindow.");
    // 1 s ahead of the server is refused too.
    m.set_clock_offset_ms(1_499_827_319_559 - 1_100 - now_ms);
    let (_, body) = post(&format!("{QUERY}&signature={SIG}"), DOC_KEY);
    assert_eq!(body["code"].as_i64(), Some(-1021));
    assert_eq!(m.stats().orders_placed, 1);
}

#[test]
fn place_cancel_open_orders_and_balances_round_trip() {
    let m = mock();
    let mut gw = gateway(&m);
    // Post-only buy of 0.001 BTC at 50000.00.
    let r = send(&mut gw, order(1, BTC, Side::Buy, 5_000_000, 100, Tif::PostOnly));
    assert_eq!(kinds(&r), [(oid(1), ExecKind::New)]);
    assert_eq!((r[0].px, r[0].leaves, r[0].code), (5_000_000, 100, 0));
    let sent = m.requests().into_iter().find(|l| l.starts_with("POST /api/v3/order?")).unwrap();
    assert!(sent.contains("type=LIMIT_MAKER&quantity=0.00100&price=50000.00&newClientOrderId=sa-"), "{sent}");
    assert!(!sent.contains("timeInForce"), "{sent}");

    let open = m.open_orders("BTCUSDT");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].client_id, client_order_id(oid(1)));
    let venue_open = gw.open_orders().unwrap();
    assert_eq!(venue_open.len(), 1);
    assert_eq!((venue_open[0].id, venue_open[0].px, venue_open[0].leaves), (Some(oid(1)), 5_000_000, 100));
    let usdt = gw.balances().unwrap().into_iter().find(|b| b.asset == "USDT").unwrap();
    assert_eq!(usdt.locked.to_string(), "50.00000000");
    assert_eq!(usdt.free.to_string(), "99950.00000000");

    let r = send(&mut gw, OrderCmd::Cancel { id: oid(1), inst: BTC });
    assert_eq!(kinds(&r), [(oid(1), ExecKind::Canceled)]);
    assert_eq!(r[0].leaves, 100);
    assert!(m.open_orders("BTCUSDT").is_empty());
    assert!(gw.open_orders().unwrap().is_empty());
    assert_eq!(m.balance("USDT"), (100_000.0, 0.0));
    assert_eq!(gw.in_flight(), 0);
    // The stream's NEW and CANCELED events for the same order are duplicates.
    let late = drain(&mut gw, 150);
    assert!(late.is_empty(), "{late:?}");
    assert!(gw.stats().duplicates >= 2, "{:?}", gw.stats());
    // Cancelling again: the venue no longer knows it as open; the order stays final.
    assert!(send(&mut gw, OrderCmd::Cancel { id: oid(1), inst: BTC }).is_empty());
}

#[test]
fn fills_arrive_as_execution_reports() {
    let m = mock();
    let mut gw = gateway(&m);
    // Post-only sell of 1.0000 ETH at 3000.00.
    let r = send(&mut gw, order(2, ETH, Side::Sell, 300_000, 10_000, Tif::PostOnly));
    assert_eq!(kinds(&r), [(oid(2), ExecKind::New)]);
    assert_eq!(m.trade("ETHUSDT", Side::Buy, "3000.50", "0.4"), 4_000);
    let mut out = Vec::new();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(2), ExecKind::PartialFill)]);
    let f = out[0];
    assert_eq!((f.px, f.qty, f.leaves, f.maker, f.side), (300_000, 4_000, 6_000, true, Side::Sell));
    // A sell pays commission in USDT: 3000 * 0.4 * 10 bps.
    assert!((f.fee - 1.2).abs() < 1e-9, "{}", f.fee);
    assert!(f.exch_ts > 0);
    // A trade below our price does not fill; one through it fills the rest.
    assert_eq!(m.trade("ETHUSDT", Side::Buy, "2999.99", "5"), 0);
    assert_eq!(m.trade("ETHUSDT", Side::Buy, "3001", "5"), 6_000);
    out.clear();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(2), ExecKind::Fill)]);
    assert_eq!((out[0].qty, out[0].leaves), (6_000, 0));
    assert_eq!(gw.order_state(oid(2)), Some(OrderState::Done));
    assert_eq!(gw.in_flight(), 0);

    // A resting buy pays commission in BTC, reported in USDT at the fill price.
    send(&mut gw, order(3, BTC, Side::Buy, 4_000_000, 1_000, Tif::PostOnly));
    assert_eq!(m.trade("BTCUSDT", Side::Sell, "39000", "1"), 1_000);
    out.clear();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(3), ExecKind::Fill)]);
    // 0.01 BTC * 10 bps = 0.00001 BTC = 0.4 USDT at 40000.
    assert!((out[0].fee - 0.4).abs() < 1e-9, "{}", out[0].fee);
    assert!((m.balance("BTC").0 - (1.0 + 0.01 - 0.00001)).abs() < 1e-12);
    assert!(drain(&mut gw, 100).is_empty());
}

#[test]
fn marketable_limit_takes_and_ioc_remainder_expires() {
    let m = mock();
    let mut gw = gateway(&m);
    m.set_book("BTCUSDT", Some(("49990", "1")), Some(("50010", "0.002")));
    // IOC buy 0.005 at 50010: takes the 0.002 offered, the rest expires.
    let r = send(&mut gw, order(4, BTC, Side::Buy, 5_001_000, 500, Tif::Ioc));
    assert_eq!(kinds(&r), [(oid(4), ExecKind::New), (oid(4), ExecKind::PartialFill), (oid(4), ExecKind::Expired)]);
    assert_eq!((r[1].px, r[1].qty, r[1].leaves, r[1].maker), (5_001_000, 200, 300, false));
    // Taker commission in BTC (0.002 * 10 bps) valued at 50010.
    assert!((r[1].fee - 0.002 * 1e-3 * 50_010.0).abs() < 1e-9, "{}", r[1].fee);
    assert_eq!(r[2].leaves, 300);
    // The stream's NEW, TRADE and EXPIRED are duplicates of the REST answer.
    assert!(drain(&mut gw, 150).is_empty());
    // A GTC sell through the bid takes 1 BTC... of which we sell 0.5, the rest rests.
    let r = send(&mut gw, order(5, BTC, Side::Sell, 4_990_000, 50_000, Tif::Gtc));
    assert_eq!(kinds(&r), [(oid(5), ExecKind::New), (oid(5), ExecKind::Fill)]);
    assert_eq!(gw.in_flight(), 0);
}

#[test]
fn post_only_cross_is_rejected_with_code_and_message() {
    let m = mock();
    let mut gw = gateway(&m);
    m.set_book("BTCUSDT", Some(("49990", "1")), Some(("50000", "1")));
    let r = send(&mut gw, order(6, BTC, Side::Buy, 5_000_000, 100, Tif::PostOnly));
    assert_eq!(kinds(&r), [(oid(6), ExecKind::Rejected)]);
    assert_eq!((r[0].code, r[0].qty, r[0].leaves), (CODE_NEW_ORDER_REJECTED, 0, 0));
    let last = gw.rejects().back().unwrap();
    assert_eq!((last.id, last.code, last.msg.as_str()), (oid(6), -2010, "Order would immediately match and take."));
    // The report that reaches the core carries the message too.
    assert_eq!(r[0].msg.as_str(), "Order would immediately match and take.");
    // Insufficient balance is -2010 too, with its own message.
    let r = send(&mut gw, order(7, BTC, Side::Sell, 6_000_000, 500_000, Tif::PostOnly));
    assert_eq!(r[0].code, -2010);
    assert_eq!(r[0].msg.as_str(), "Account has insufficient balance for requested action.");
    assert_eq!(gw.rejects().back().unwrap().msg, "Account has insufficient balance for requested action.");
    assert_eq!(gw.take_rejects().len(), 2);
    assert!(gw.rejects().is_empty());
    assert_eq!(gw.in_flight(), 0);
    assert!(drain(&mut gw, 100).is_empty());
}

#[test]
fn cancel_replace_success_and_both_failures() {
    let m = mock();
    let mut gw = gateway(&m);
    send(&mut gw, order(10, BTC, Side::Buy, 5_000_000, 100, Tif::PostOnly));
    let new = NewOrder { id: oid(11), inst: BTC, side: Side::Buy, px: 5_000_100, qty: 100, tif: Tif::PostOnly };
    let mut out = Vec::new();
    gw.cancel_replace(oid(10), &new, &mut out);
    assert_eq!(kinds(&out), [(oid(10), ExecKind::Canceled), (oid(11), ExecKind::New)]);
    let open = m.open_orders("BTCUSDT");
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].client_id.as_str(), open[0].px), (client_order_id(oid(11)).as_str(), 5_000_100));

    // The order to cancel is gone: nothing is placed, the new one is rejected (-2022).
    let new = NewOrder { id: oid(12), ..new };
    out.clear();
    gw.cancel_replace(oid(10), &new, &mut out);
    assert_eq!(kinds(&out), [(oid(12), ExecKind::Rejected)]);
    assert_eq!(out[0].code, CODE_CANCEL_REPLACE_FAILED);
    assert_eq!(m.open_orders("BTCUSDT").len(), 1);

    // The cancel works but the new order would take: old cancelled, new rejected -2010.
    m.set_book("BTCUSDT", None, Some(("50002", "1")));
    let new = NewOrder { id: oid(13), px: 5_000_300, ..new };
    out.clear();
    gw.cancel_replace(oid(11), &new, &mut out);
    assert_eq!(kinds(&out), [(oid(11), ExecKind::Canceled), (oid(13), ExecKind::Rejected)]);
    assert_eq!(out[1].code, CODE_NEW_ORDER_REJECTED);
    assert!(m.open_orders("BTCUSDT").is_empty());
    assert!(drain(&mut gw, 150).is_empty());
    assert_eq!(gw.in_flight(), 0);
}

#[test]
fn http_429_and_418_back_off_as_retry_after_says() {
    let m = mock();
    let mut gw = gateway(&m);
    send(&mut gw, order(20, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    m.inject(Fault::Http429 { retry_after_s: 1 }, 1, Some("POST /api/v3/order"));
    let t429 = Instant::now();
    let r = send(&mut gw, order(21, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    assert_eq!(kinds(&r), [(oid(21), ExecKind::Rejected)]);
    assert_eq!(r[0].code, CODE_TOO_MANY_REQUESTS);
    let posts = count(&m, "POST /api/v3/order?");
    // During the back-off nothing is sent: orders are refused, cancels queued.
    let r = send(&mut gw, order(22, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    assert_eq!((r[0].kind, r[0].code), (ExecKind::Rejected, CODE_TOO_MANY_REQUESTS));
    assert!(send(&mut gw, OrderCmd::Cancel { id: oid(20), inst: BTC }).is_empty());
    assert_eq!(gw.in_flight(), 2, "order 20 open and its cancel queued");
    assert_eq!(count(&m, "POST /api/v3/order?"), posts);
    assert_eq!(count(&m, "DELETE /api/v3/order?"), 0);
    // The queued cancel goes out once Retry-After has passed.
    let mut out = Vec::new();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert!(t429.elapsed() >= Duration::from_millis(990), "{:?}", t429.elapsed());
    assert_eq!(kinds(&out), [(oid(20), ExecKind::Canceled)]);
    let r = send(&mut gw, order(23, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    assert_eq!(kinds(&r), [(oid(23), ExecKind::New)]);
    assert_eq!(gw.stats().backoffs, 1);

    // 418 on a query: an error with the code, and no request until Retry-After.
    m.inject(Fault::Http418 { retry_after_s: 1 }, 1, Some("/api/v3/openOrders"));
    let e = gw.open_orders().unwrap_err();
    assert_eq!(e.code, CODE_TOO_MANY_REQUESTS, "{e}");
    let n = m.stats().requests;
    assert_eq!(gw.balances().unwrap_err().code, CODE_TOO_MANY_REQUESTS);
    assert_eq!(m.stats().requests, n);
    std::thread::sleep(Duration::from_millis(1_050));
    assert_eq!(gw.open_orders().unwrap().len(), 1);
}

#[test]
fn timestamp_error_resyncs_the_clock_then_succeeds() {
    let m = mock();
    let mut gw = gateway(&m);
    assert!(gw.clock_offset_ms().abs() < 1_000);
    let syncs = gw.stats().time_syncs;
    // The server clock jumps 30 s ahead: our timestamps fall outside recvWindow.
    m.set_clock_offset_ms(30_000);
    let r = send(&mut gw, order(30, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    assert_eq!(kinds(&r), [(oid(30), ExecKind::New)]);
    assert_eq!(m.stats().timestamp_rejects, 1);
    assert_eq!(gw.stats().timestamp_errors, 1);
    assert_eq!(gw.stats().time_syncs, syncs + 1);
    assert!((gw.clock_offset_ms() - 30_000).abs() < 1_000, "{}", gw.clock_offset_ms());
    // An injected -1021 is handled the same way.
    m.inject(Fault::Timestamp, 1, Some("DELETE /api/v3/order"));
    let r = send(&mut gw, OrderCmd::Cancel { id: oid(30), inst: BTC });
    assert_eq!(kinds(&r), [(oid(30), ExecKind::Canceled)]);
    assert_eq!(gw.stats().timestamp_errors, 2);
    // The stream subscription signs with the corrected clock after a reconnect.
    m.drop_streams();
    let mut out = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) && !(gw.stream_ready() && m.stats().subscriptions >= 2) {
        gw.poll(0, &mut out);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(gw.stream_ready() && m.stats().subscriptions >= 2, "{gw:?}");
}

#[test]
fn timeout_leaves_the_order_unknown_until_a_query_settles_it() {
    let m = mock();
    // No stream: only queries can settle.
    let mut cfg = config(&m);
    cfg.ws_url = String::new();
    cfg.timeout_ms = 300;
    cfg.recv_window_ms = 1_000;
    let mut gw = started(cfg, SECRET);

    // Executed, but the answer comes after our timeout.
    m.inject(Fault::SlowAnswer { ms: 700 }, 1, Some("POST /api/v3/order"));
    let r = send(&mut gw, order(40, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    assert!(r.is_empty(), "neither filled nor dead: {r:?}");
    assert_eq!(gw.order_state(oid(40)), Some(OrderState::Unknown));
    assert_eq!(gw.in_flight(), 1);
    assert_eq!(m.open_orders("BTCUSDT").len(), 1);
    let mut out = Vec::new();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(40), ExecKind::New)]);
    assert_eq!(gw.order_state(oid(40)), Some(OrderState::Live));
    assert!(gw.stats().settle_queries >= 1);

    // Lost before execution: the venue does not know it. It stays unknown until the
    // server clock passes timestamp + recvWindow, then it is a reject (-2013).
    m.inject(Fault::Lost { ms: 50 }, 1, Some("POST /api/v3/order"));
    let t0 = Instant::now();
    let r = send(&mut gw, order(41, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(gw.order_state(oid(41)), Some(OrderState::Unknown));
    out.clear();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(900), "{:?}", t0.elapsed());
    assert_eq!(kinds(&out), [(oid(41), ExecKind::Rejected)]);
    assert_eq!(out[0].code, CODE_NO_SUCH_ORDER);
    assert!(count(&m, "GET /api/v3/order?") >= 2);

    // A cancel whose answer is lost: the order is queried until its state is known.
    m.inject(Fault::SlowAnswer { ms: 700 }, 1, Some("DELETE /api/v3/order"));
    assert!(send(&mut gw, OrderCmd::Cancel { id: oid(40), inst: BTC }).is_empty());
    assert_eq!(gw.order_state(oid(40)), Some(OrderState::Unknown));
    out.clear();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(40), ExecKind::Canceled)]);
    assert_eq!(gw.in_flight(), 0);
}

#[test]
fn cancel_all_clears_every_symbol() {
    let m = mock();
    let mut gw = gateway(&m);
    send(&mut gw, order(50, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    send(&mut gw, order(51, BTC, Side::Sell, 6_000_000, 100, Tif::PostOnly));
    send(&mut gw, order(52, ETH, Side::Buy, 200_000, 10_000, Tif::PostOnly));
    assert_eq!(gw.in_flight(), 3);
    let mut r = send(&mut gw, OrderCmd::CancelAll);
    r.sort_by_key(|r| r.id);
    assert_eq!(
        kinds(&r),
        [(oid(50), ExecKind::Canceled), (oid(51), ExecKind::Canceled), (oid(52), ExecKind::Canceled)]
    );
    assert_eq!(gw.in_flight(), 0);
    assert!(m.open_orders("BTCUSDT").is_empty() && m.open_orders("ETHUSDT").is_empty());
    assert!(drain(&mut gw, 150).is_empty());
}

#[test]
fn reconcile_at_start_cancels_leftovers_and_refuses_id_collisions() {
    let m = mock();
    let mut gw = gateway(&m);
    send(&mut gw, order(60, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    drop(gw);
    // A restart in the same second would reuse ids: refused.
    let mut gw = gateway(&m);
    match gw.reconcile(SESSION as u32) {
        Err(GatewayError::SessionCollision(id)) => assert_eq!(id, client_order_id(oid(60))),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.open_orders("BTCUSDT").len(), 1);
    // A later session cancels what the previous one left open.
    let open = gw.reconcile(SESSION as u32 + 5).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, Some(oid(60)));
    assert!(m.open_orders("BTCUSDT").is_empty());
    assert!(gw.reconcile(SESSION as u32 + 5).unwrap().is_empty());
}

#[test]
fn stream_reconnect_resubscribes_and_recovers_missed_fills() {
    let m = mock();
    let mut gw = gateway(&m);
    send(&mut gw, order(70, BTC, Side::Sell, 6_000_000, 100, Tif::PostOnly));
    m.drop_streams();
    // Filled while the stream is down: the event is lost.
    assert_eq!(m.trade("BTCUSDT", Side::Buy, "60000", "1"), 100);
    let mut out = Vec::new();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(70), ExecKind::Fill)]);
    assert_eq!((out[0].px, out[0].qty, out[0].leaves), (6_000_000, 100, 0));
    let t0 = Instant::now();
    while !gw.stream_ready() {
        assert!(t0.elapsed() < Duration::from_secs(5));
        gw.poll(0, &mut out);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(out.len(), 1);
    assert!(m.stats().subscriptions >= 2);
    assert!(drain(&mut gw, 150).is_empty());
    // The new subscription delivers events again.
    send(&mut gw, order(71, BTC, Side::Sell, 6_000_000, 100, Tif::PostOnly));
    m.trade("BTCUSDT", Side::Buy, "60000", "1");
    out.clear();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(71), ExecKind::Fill)]);
    assert!(out[0].fee > 0.0, "the stream's fill carries the real commission");
}

#[test]
fn keys_never_appear_in_any_output() {
    let m = mock();
    let mut text = String::new();
    // A gateway with a wrong secret: every signed request is refused with -1022.
    let mut cfg = config(&m);
    cfg.ws_url = String::new();
    let mut bad = started(cfg, "not-the-secret");
    let r = send(&mut bad, order(80, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    assert_eq!((r[0].kind, r[0].code), (ExecKind::Rejected, -1022));
    text += &format!("{bad:?} {r:?} {:?}", bad.rejects());
    text += &format!("{}", bad.open_orders().unwrap_err());
    text += &format!("{}", bad.balances().unwrap_err());
    // A working gateway, its reports, errors and counters.
    let mut gw = gateway(&m);
    let r = send(&mut gw, order(81, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    text += &format!("{gw:?} {r:?} {:?} {:?}", gw.stats(), gw.limiter());
    // Credentials from the environment: errors name the variable only.
    let mut cfg = config(&m);
    cfg.key_env = "STATARB_TEST_GW_KEY_UNSET".into();
    cfg.secret_env = "STATARB_TEST_GW_SECRET_UNSET".into();
    let e = BinanceSpot::new(cfg.clone(), instruments(), fees()).unwrap_err();
    assert!(e.to_string().contains("STATARB_TEST_GW_KEY_UNSET"));
    text += &format!("{e} {e:?}");
    std::env::set_var("STATARB_TEST_GW_KEY", KEY);
    std::env::set_var("STATARB_TEST_GW_SECRET", SECRET);
    cfg.key_env = "STATARB_TEST_GW_KEY".into();
    cfg.secret_env = "STATARB_TEST_GW_SECRET".into();
    cfg.ws_url = String::new();
    let mut env_gw = BinanceSpot::new(cfg, instruments(), fees()).unwrap();
    env_gw.start().unwrap();
    let r = send(&mut env_gw, order(82, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    assert_eq!(kinds(&r), [(oid(82), ExecKind::New)]);
    text += &format!("{env_gw:?}");
    // What the venue saw in its request lines, and the mock itself.
    text += &m.requests().join("\n");
    text += &format!("{m:?}");
    assert!(text.len() > 1_000);
    assert!(!text.contains(KEY), "API key leaked");
    assert!(!text.contains(SECRET), "secret leaked");
}

#[test]
fn a_cancel_refused_by_429_is_sent_again_after_the_back_off() {
    let m = mock();
    let mut gw = gateway(&m);
    send(&mut gw, order(90, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    m.inject(Fault::Http429 { retry_after_s: 1 }, 1, Some("DELETE /api/v3/order"));
    let r = send(&mut gw, OrderCmd::Cancel { id: oid(90), inst: BTC });
    assert!(r.is_empty(), "not cancelled, not dead: {r:?}");
    assert_eq!(m.open_orders("BTCUSDT").len(), 1);
    assert_eq!(gw.in_flight(), 1);
    let mut out = Vec::new();
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(90), ExecKind::Canceled)]);
    assert!(m.open_orders("BTCUSDT").is_empty());
    assert_eq!(count(&m, "DELETE /api/v3/order?"), 2);
    assert_eq!(gw.in_flight(), 0);
}

#[test]
fn a_refused_stream_subscription_is_retried_slowly() {
    let m = mock();
    let mut gw =
        BinanceSpot::with_credentials(config(&m), Credentials::new(KEY, "wrong secret"), instruments(), fees())
            .unwrap();
    gw.start().unwrap();
    let out = drain(&mut gw, 1_500);
    assert!(out.is_empty());
    assert!(!gw.stream_ready());
    let refused = m.stats().auth_failures;
    assert!((1..=2).contains(&refused), "{refused} subscribe attempts in 1.5 s");
}
