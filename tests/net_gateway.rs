//! The Binance gateway against a hostile mock venue (issue 10, network side):
//!
//! - `Retry-After: 4294967295` is capped at `retry_after_cap_s` (it blocked the gateway
//!   for 136 years);
//! - a `serverTime` at the 64-bit limits, or hours away from the local clock, is refused
//!   with a typed error and the previous clock offset kept (it produced
//!   `timestamp=-9223372036854775763`);
//! - a venue echoing the request (API key header, signed query) into its error text
//!   never gets the key or a signature into rejects, reports or errors.

use std::time::{Duration, Instant};

use statarb::event::{ExecKind, ExecReport, NewOrder, OrderCmd, OrderId, Tif};
use statarb::fees::Fees;
use statarb::gateway::binance::{BinanceGatewayConfig, BinanceSpot, GatewayError, CODE_TOO_MANY_REQUESTS};
use statarb::gateway::sign::Credentials;
use statarb::gateway::Exchange;
use statarb::mock::{Fault, MockBinance, MockConfig, MockHandle};
use statarb::types::{Instrument, Side, Ts};

const KEY: &str = "netTestKeyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6A7b8";
const SECRET: &str = "netTestSecretZ9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2H1g0F9e8D7c6B5a4";

fn instruments() -> Vec<Instrument> {
    vec![Instrument::new("BTCUSDT", "0.01".parse().unwrap(), "0.00001".parse().unwrap())]
}

fn mock() -> MockHandle {
    MockBinance::spawn(MockConfig {
        creds: Credentials::new(KEY, SECRET),
        instruments: instruments(),
        balances: vec![("USDT".into(), 100_000.0), ("BTC".into(), 1.0)],
        maker_bps: 10.0,
        taker_bps: 10.0,
    })
    .unwrap()
}

fn gateway(m: &MockHandle, cfg: BinanceGatewayConfig) -> BinanceSpot {
    let cfg = BinanceGatewayConfig {
        rest_url: m.rest_url(),
        ws_url: String::new(),
        timeout_ms: 1_000,
        orders: "rest".into(),
        ..cfg
    };
    let fees = Fees { maker_bps: 10.0, taker_bps: 10.0 };
    let mut gw = BinanceSpot::with_credentials(cfg, Credentials::new(KEY, SECRET), instruments(), fees).unwrap();
    gw.start().unwrap();
    gw
}

fn oid(n: u64) -> OrderId {
    (1_764_000_000u64 << 32) | n
}

fn buy(n: u64) -> OrderCmd {
    OrderCmd::New(NewOrder { id: oid(n), inst: 0, side: Side::Buy, px: 5_000_000, qty: 100, tif: Tif::PostOnly })
}

fn send(gw: &mut BinanceSpot, cmd: OrderCmd) -> Vec<ExecReport> {
    let mut out = Vec::new();
    gw.on_order(&cmd, 0, &mut out);
    out
}

fn wall_ns() -> Ts {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as Ts
}

#[test]
fn retry_after_is_capped() {
    let m = mock();
    let mut gw = gateway(&m, BinanceGatewayConfig { retry_after_cap_s: 1, ..BinanceGatewayConfig::default() });
    m.inject(Fault::Http429 { retry_after_s: u32::MAX }, 1, Some("POST /api/v3/order"));
    let t0 = wall_ns();
    let r = send(&mut gw, buy(1));
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].kind, r[0].code), (ExecKind::Rejected, CODE_TOO_MANY_REQUESTS));
    let until = gw.limiter().blocked_until();
    assert!(until > t0 && until <= wall_ns() + 1_000_000_000, "blocked {} s", (until - t0) / 1_000_000_000);
    assert_eq!(gw.limiter().budget().stats().capped, 1);
    // Refused locally while blocked, accepted once the capped back-off is over.
    let r = send(&mut gw, buy(2));
    assert_eq!(r[0].code, CODE_TOO_MANY_REQUESTS);
    let t = Instant::now();
    while wall_ns() < until {
        assert!(t.elapsed() < Duration::from_secs(3));
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = send(&mut gw, buy(3));
    assert_eq!(r.iter().map(|r| r.kind).collect::<Vec<_>>(), [ExecKind::New]);
    assert!(toml::from_str::<BinanceGatewayConfig>("retry_after_cap_s = 0").unwrap().validate().is_err());
}

#[test]
fn server_time_far_from_the_local_clock_is_refused() {
    let m = mock();
    let mut gw = gateway(&m, BinanceGatewayConfig::default());
    let offset = gw.clock_offset_ms();
    assert!(offset.abs() < 1_000, "{offset}");
    let two_hours = 2 * 3_600_000;
    let now_ms = wall_ns() / 1_000_000;
    for ms in [i64::MAX, i64::MIN, 0, now_ms + two_hours, now_ms - two_hours] {
        m.inject(Fault::ServerTime { ms }, 1, Some("/api/v3/time"));
        match gw.sync_time() {
            Err(GatewayError::ClockSkew { server_ms, max_ms, .. }) => assert_eq!((server_ms, max_ms), (ms, 3_600_000)),
            other => panic!("serverTime {ms}: {other:?}"),
        }
        assert_eq!(gw.clock_offset_ms(), offset, "the previous offset is kept");
    }
    assert_eq!(gw.stats().clock_rejects, 5);
    // A -1021 whose re-sync meets a broken clock: not retried, and the next order is
    // signed with a sane timestamp the venue accepts.
    m.inject(Fault::Timestamp, 1, Some("POST /api/v3/order"));
    m.inject(Fault::ServerTime { ms: i64::MAX }, 1, Some("/api/v3/time"));
    let r = send(&mut gw, buy(1));
    assert_eq!(r[0].kind, ExecKind::Rejected);
    let r = send(&mut gw, buy(2));
    assert_eq!(r[0].kind, ExecKind::New, "{r:?}");
    let sent = m.requests().into_iter().rfind(|l| l.starts_with("POST /api/v3/order?")).unwrap();
    let ts: i64 = sent.split("timestamp=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    assert!((ts - wall_ns() / 1_000_000).abs() < 10_000, "timestamp={ts}");
    // Within the bound: taken.
    m.inject(Fault::ServerTime { ms: wall_ns() / 1_000_000 + 60_000 }, 1, Some("/api/v3/time"));
    let o = gw.sync_time().unwrap();
    assert!((o - 60_000).abs() < 1_000, "{o}");
}

#[test]
fn echoed_secrets_are_redacted_everywhere() {
    let m = mock();
    let mut gw = gateway(&m, BinanceGatewayConfig::default());
    m.inject(Fault::Echo, 1, Some("POST /api/v3/order"));
    let r = send(&mut gw, buy(1));
    assert_eq!((r[0].kind, r[0].code), (ExecKind::Rejected, -1100));
    let sent = m.requests().into_iter().rfind(|l| l.starts_with("POST /api/v3/order?")).unwrap();
    let sig = sent.split("signature=").nth(1).unwrap().to_string();
    assert_eq!(sig.len(), 64);
    let clean = |what: &str, text: &str| {
        assert!(!text.contains(KEY) && !text.contains(&sig) && !text.contains(&KEY[..32]), "{what}: {text}");
    };
    let rejects = gw.take_rejects();
    assert_eq!(rejects.len(), 1);
    clean("reject", &rejects[0].msg);
    assert!(rejects[0].msg.contains("X-MBX-APIKEY: <redacted>"), "{}", rejects[0].msg);
    clean("report", r[0].msg.as_str());
    // Errors returned by queries, in Display and Debug.
    m.inject(Fault::Echo, 1, Some("GET /api/v3/openOrders"));
    let e = gw.open_orders().unwrap_err();
    clean("error", &e.to_string());
    clean("error debug", &format!("{e:?}"));
    clean("gateway debug", &format!("{gw:?}"));
}
