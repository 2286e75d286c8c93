//! Test support shared by the Binance gateway tests (`tests/binance_gateway.rs`, REST
//! order entry; `tests/binance_ws_orders.rs`, WebSocket API order entry): the mock
//! venue's key and instruments, order ids, and polling helpers.

// Each test crate uses only part of this module.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use statarb::event::{ExecKind, ExecReport, NewOrder, OrderCmd, OrderId, Tif};
use statarb::fees::Fees;
use statarb::gateway::binance::{BinanceGatewayConfig, BinanceSpot};
use statarb::gateway::sign::Credentials;
use statarb::gateway::Exchange;
use statarb::mock::{MockBinance, MockConfig, MockHandle};
use statarb::types::{Instrument, Side};

pub const KEY: &str = "mockApiKeyQ7w9E2r4T6y8U0i1O3p5A7s9D2f4G6h8J0k1L3z5X7c9V2b4N6m8";
pub const SECRET: &str = "mockSecretZ1x3C5v7B9n2M4q6W8e0R2t4Y6u8I0o2P4a6S8d0F2g4H6j8K0l2";
pub const BTC: u16 = 0;
pub const ETH: u16 = 1;
pub const SESSION: u64 = 1_764_000_000;

/// The gateway's configuration against the mock `m`, with the defaults' order path
/// (the WebSocket API), a 1 s timeout and a 100 ms settle interval.
pub fn gateway_config(m: &MockHandle) -> BinanceGatewayConfig {
    BinanceGatewayConfig {
        rest_url: m.rest_url(),
        ws_url: m.ws_url(),
        timeout_ms: 1_000,
        settle_interval_ms: 100,
        ..BinanceGatewayConfig::default()
    }
}

pub fn instruments() -> Vec<Instrument> {
    vec![
        Instrument::new("BTCUSDT", "0.01".parse().unwrap(), "0.00001".parse().unwrap()),
        Instrument::new("ETHUSDT", "0.01".parse().unwrap(), "0.0001".parse().unwrap()),
    ]
}

pub fn fees() -> Fees {
    Fees { maker_bps: 10.0, taker_bps: 10.0 }
}

pub fn mock() -> MockHandle {
    MockBinance::spawn(MockConfig {
        creds: Credentials::new(KEY, SECRET),
        instruments: instruments(),
        balances: vec![("USDT".into(), 100_000.0), ("BTC".into(), 1.0), ("ETH".into(), 10.0)],
        maker_bps: 10.0,
        taker_bps: 10.0,
    })
    .unwrap()
}

/// A gateway for `cfg` signing with `secret`, started, its user data stream subscribed
/// (with `orders = "ws"`: its WebSocket API connection open).
pub fn started(cfg: BinanceGatewayConfig, secret: &str) -> BinanceSpot {
    let mut gw = BinanceSpot::with_credentials(cfg, Credentials::new(KEY, secret), instruments(), fees()).unwrap();
    gw.start().unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    while !gw.stream_ready() {
        assert!(t0.elapsed() < Duration::from_secs(5), "user data stream not subscribed: {gw:?}");
        gw.poll(0, &mut out);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(out.is_empty());
    gw
}

pub fn oid(n: u64) -> OrderId {
    (SESSION << 32) | n
}

pub fn order(n: u64, inst: u16, side: Side, px: i64, qty: i64, tif: Tif) -> OrderCmd {
    OrderCmd::New(NewOrder { id: oid(n), inst, side, px, qty, tif })
}

pub fn send(gw: &mut BinanceSpot, cmd: OrderCmd) -> Vec<ExecReport> {
    let mut out = Vec::new();
    gw.on_order(&cmd, 0, &mut out);
    out
}

/// Polls until `pred` holds on everything reported so far (at most 5 s).
pub fn poll_until(gw: &mut BinanceSpot, out: &mut Vec<ExecReport>, pred: impl Fn(&[ExecReport]) -> bool) {
    let t0 = Instant::now();
    while !pred(out) {
        assert!(t0.elapsed() < Duration::from_secs(5), "timed out; reports so far: {out:?}; {gw:?}");
        gw.poll(0, out);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls for `ms` and returns what arrived.
pub fn drain(gw: &mut BinanceSpot, ms: u64) -> Vec<ExecReport> {
    let mut out = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(ms) {
        gw.poll(0, &mut out);
        std::thread::sleep(Duration::from_millis(1));
    }
    out
}

pub fn kinds(r: &[ExecReport]) -> Vec<(OrderId, ExecKind)> {
    r.iter().map(|r| (r.id, r.kind)).collect()
}

/// Requests the mock logged that start with `line` (`"POST /api/v3/order?"`, `"WS order.place"`).
pub fn count(m: &MockHandle, line: &str) -> usize {
    m.requests().iter().filter(|r| r.starts_with(line)).count()
}
