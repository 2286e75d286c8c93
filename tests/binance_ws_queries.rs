//! The Binance Spot gateway with `orders = "ws"`: its queries off the order path go
//! over the WebSocket API too, against the mock venue on loopback. The clock sync is
//! `time` (after `start`'s first, REST, sync), the open orders `openOrders.status`, the
//! balances `account.status`, the journal's order query `order.status`; each with the
//! venue's checks (signature, timestamp, recvWindow), a `-1021` re-syncing the clock
//! and re-sending once, a refused `serverTime` keeping the offset, and events that
//! arrive while a query waits handled by the next poll. With `orders = "rest"` the
//! same queries stay REST.

use statarb::event::{ExecKind, NewOrder, OrderCmd, Tif};
use statarb::gateway::binance::{BinanceGatewayConfig, BinanceSpot, GatewayError};
use statarb::gateway::Exchange;
use statarb::mock::{Fault, MockHandle};
use statarb::types::Side;

mod binance_support;
use binance_support::*;

fn config(m: &MockHandle) -> BinanceGatewayConfig {
    gateway_config(m)
}

fn rest_count(m: &MockHandle) -> usize {
    m.requests().iter().filter(|r| !r.starts_with("WS ")).count()
}

fn place(gw: &mut BinanceSpot, n: u64, inst: u16, side: Side, px: i64, qty: i64) {
    let mut out = send(gw, OrderCmd::New(NewOrder { id: oid(n), inst, side, px, qty, tif: Tif::PostOnly }));
    poll_until(gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(n), ExecKind::New)]);
}

#[test]
fn clock_sync_is_the_ws_api_time_after_the_first() {
    let m = mock();
    let mut gw = started(config(&m), SECRET);
    // `start`'s sync is REST (before the connection is used) and so is the filter check.
    assert_eq!(count(&m, "GET /api/v3/time"), 1);
    let rest = rest_count(&m);
    let syncs = gw.stats().time_syncs;
    m.set_clock_offset_ms(12_000);
    let off = gw.sync_time().unwrap();
    assert!((off - 12_000).abs() < 1_000, "{off}");
    assert_eq!(gw.clock_offset_ms(), off);
    assert_eq!(gw.stats().time_syncs, syncs + 1);
    assert_eq!(count(&m, "WS time"), 1);
    assert_eq!(rest_count(&m), rest, "no REST: {:?}", m.requests());

    // A venue clock far from ours is refused; the offset stays.
    m.inject(Fault::ServerTime { ms: 1_000 }, 1, Some("time"));
    let e = gw.sync_time().unwrap_err();
    assert!(matches!(e, GatewayError::ClockSkew { path: "time", .. }), "{e}");
    assert_eq!(gw.clock_offset_ms(), off);
    assert_eq!(gw.stats().clock_rejects, 1);

    // A -1021 on an order re-syncs over the WebSocket API and re-sends.
    m.set_clock_offset_ms(-20_000);
    let mut out = send(&mut gw, order(1, BTC, Side::Buy, 4_000_000, 100, Tif::PostOnly));
    poll_until(&mut gw, &mut out, |o| !o.is_empty());
    assert_eq!(kinds(&out), [(oid(1), ExecKind::New)]);
    assert!((gw.clock_offset_ms() + 20_000).abs() < 1_000, "{}", gw.clock_offset_ms());
    assert_eq!(count(&m, "WS time"), 3);
    assert_eq!(rest_count(&m), rest, "no REST: {:?}", m.requests());
}

#[test]
fn open_orders_and_balances_are_ws_api_queries() {
    let m = mock();
    let mut gw = started(config(&m), SECRET);
    let rest = rest_count(&m);
    let b = gw.balances().unwrap();
    let usdt = b.iter().find(|b| b.asset == "USDT").expect("USDT");
    assert_eq!((usdt.free.to_f64(), usdt.locked.to_f64()), (100_000.0, 0.0));
    assert!(b.iter().any(|b| b.asset == "ETH") && b.iter().any(|b| b.asset == "BTC"), "{b:?}");
    assert_eq!(count(&m, "WS account.status"), 1);
    assert!(gw.open_orders().unwrap().is_empty());
    assert_eq!(count(&m, "WS openOrders.status"), 2, "one per symbol");

    place(&mut gw, 1, BTC, Side::Buy, 4_000_000, 100);
    place(&mut gw, 2, ETH, Side::Sell, 500_000, 20_000);
    let mut open = gw.open_orders().unwrap();
    open.sort_by_key(|o| o.inst);
    assert_eq!(open.len(), 2, "{open:?}");
    assert_eq!(
        (open[0].id, open[0].inst, open[0].side, open[0].px, open[0].leaves),
        (Some(oid(1)), BTC, Side::Buy, 4_000_000, 100)
    );
    assert_eq!(
        (open[1].id, open[1].inst, open[1].side, open[1].px, open[1].leaves),
        (Some(oid(2)), ETH, Side::Sell, 500_000, 20_000)
    );
    let b = gw.balances().unwrap();
    let usdt = b.iter().find(|b| b.asset == "USDT").unwrap();
    assert_eq!(usdt.locked.to_f64(), 40.0, "40000.00 x 0.00100 locked");
    // The journal's query of one order.
    let q = gw.query_order(BTC, oid(1)).unwrap().expect("known");
    assert!(!q.done && q.executed == 0, "{q:?}");
    assert!(gw.query_order(BTC, oid(99)).unwrap().is_none(), "-2013: unknown");
    assert_eq!(count(&m, "WS order.status"), 2);
    // At start: this session's order found open collides.
    let e = gw.reconcile(SESSION as u32).unwrap_err();
    assert!(matches!(e, GatewayError::SessionCollision(_)), "{e}");
    assert_eq!(rest_count(&m), rest, "no REST: {:?}", m.requests());
    assert_eq!(m.stats().auth_failures, 0);
}

#[test]
fn ws_api_queries_pass_the_venue_checks_and_resync_on_1021() {
    let m = mock();
    let mut gw = started(config(&m), SECRET);
    // The venue's clock moved: the stale timestamp is -1021, the clock is re-synced
    // (time) and the query re-sent once, with a fresh timestamp and signature.
    m.set_clock_offset_ms(25_000);
    let b = gw.balances().unwrap();
    assert!(b.iter().any(|b| b.asset == "USDT"));
    assert_eq!(m.stats().timestamp_rejects, 1);
    assert_eq!(gw.stats().timestamp_errors, 1);
    assert_eq!(count(&m, "WS account.status"), 2);
    assert_eq!(count(&m, "WS time"), 1);
    assert!((gw.clock_offset_ms() - 25_000).abs() < 1_000);
    // A second -1021 after the re-sync is the answer.
    m.inject(Fault::Timestamp, 2, Some("openOrders.status"));
    let e = gw.open_orders().unwrap_err();
    assert!(e.to_string().contains("-1021"), "{e}");
    // A 429 starts the back-off: the next query is not sent.
    m.inject(Fault::Http429 { retry_after_s: 2 }, 1, Some("account.status"));
    let e = gw.balances().unwrap_err();
    assert!(e.to_string().contains("HTTP 429"), "{e}");
    let sent = count(&m, "WS account.status");
    assert!(gw.balances().is_err(), "backed off");
    assert_eq!(count(&m, "WS account.status"), sent);
    assert_eq!(m.stats().auth_failures, 0);

    // A wrong secret: the venue refuses the signature (-1022).
    let m2 = mock();
    let mut wrong = BinanceSpot::with_credentials(
        config(&m2),
        statarb::gateway::sign::Credentials::new(KEY, "not the secret"),
        instruments(),
        fees(),
    )
    .unwrap();
    wrong.start().unwrap();
    let e = wrong.balances().unwrap_err();
    assert!(e.to_string().contains("-1022") && e.to_string().contains("account.status"), "{e}");
    assert!(!e.to_string().contains(SECRET));
}

#[test]
fn events_read_while_a_query_waits_reach_the_next_poll() {
    let m = mock();
    let mut gw = started(config(&m), SECRET);
    place(&mut gw, 1, BTC, Side::Buy, 4_000_000, 100);
    // The fill's events are on the socket before the account answer.
    assert_eq!(m.trade("BTCUSDT", Side::Sell, "40000", "0.001"), 100);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let b = gw.balances().unwrap();
    assert!(b.iter().any(|b| b.asset == "BTC"));
    assert_eq!(gw.stats().fills, 0, "kept for the poll, not handled inside the query");
    let mut out = Vec::new();
    gw.poll(0, &mut out);
    assert_eq!(kinds(&out), [(oid(1), ExecKind::Fill)], "{out:?}");
}

#[test]
fn with_rest_order_entry_the_queries_stay_rest() {
    let m = mock();
    let mut gw = started(BinanceGatewayConfig { orders: "rest".into(), ..config(&m) }, SECRET);
    gw.sync_time().unwrap();
    gw.balances().unwrap();
    gw.open_orders().unwrap();
    assert_eq!(count(&m, "GET /api/v3/time"), 2);
    assert_eq!(count(&m, "GET /api/v3/account"), 1);
    assert_eq!(count(&m, "GET /api/v3/openOrders"), 2);
    assert!(m.requests().iter().all(|r| !r.starts_with("WS ")), "{:?}", m.requests());
    assert_eq!(gw.stats().ws_calls, 0);
}

#[test]
fn reconcile_cancels_leftovers_with_open_orders_cancel_all() {
    let m = mock();
    // An earlier session's order, left open.
    let mut old = started(config(&m), SECRET);
    let id = ((SESSION - 1) << 32) | 5;
    let mut out = send(
        &mut old,
        OrderCmd::New(NewOrder { id, inst: ETH, side: Side::Buy, px: 100_000, qty: 10_000, tif: Tif::PostOnly }),
    );
    poll_until(&mut old, &mut out, |o| !o.is_empty());
    drop(old);
    let mut gw = started(BinanceGatewayConfig { cancel_open_at_start: true, ..config(&m) }, SECRET);
    let left = gw.reconcile(SESSION as u32).unwrap();
    assert_eq!(left.iter().map(|o| o.id).collect::<Vec<_>>(), [Some(id)]);
    assert!(m.open_orders("ETHUSDT").is_empty());
    assert_eq!(count(&m, "WS openOrders.cancelAll"), 1, "only the symbol with orders");
    assert_eq!(count(&m, "DELETE /api/v3/openOrders"), 0);
}

#[test]
fn without_the_ws_api_connection_the_queries_fall_back_to_rest() {
    let m = mock();
    // A WebSocket API URL nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = BinanceGatewayConfig {
        ws_url: format!("ws://127.0.0.1:{port}/ws-api/v3"),
        connect_timeout_ms: 200,
        ..config(&m)
    };
    let mut gw = BinanceSpot::with_credentials(
        cfg,
        statarb::gateway::sign::Credentials::new(KEY, SECRET),
        instruments(),
        fees(),
    )
    .unwrap();
    gw.start().unwrap();
    let t0 = std::time::Instant::now();
    assert!(gw.balances().unwrap().iter().any(|b| b.asset == "USDT"));
    assert!(t0.elapsed() < std::time::Duration::from_secs(3), "waited {:?}", t0.elapsed());
    gw.sync_time().unwrap();
    assert_eq!(count(&m, "GET /api/v3/account"), 1);
    assert_eq!(count(&m, "GET /api/v3/time"), 2);
    assert_eq!(gw.stats().ws_rest_fallbacks, 2);
    assert_eq!(gw.stats().ws_calls, 0);
}
