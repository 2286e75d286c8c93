//! The Binance gateway's start-up check of `tick` and `lot` against the venue's
//! `exchangeInfo` filters, against the mock venue over loopback; and the mock's
//! `exchangeInfo` itself (Binance's shape, its `symbol` / `symbols` forms and errors).

use statarb::fees::Fees;
use statarb::gateway::binance::config::BinanceGatewayConfig;
use statarb::gateway::binance::error::GatewayError;
use statarb::gateway::binance::filters::FilterError;
use statarb::gateway::binance::BinanceSpot;
use statarb::gateway::sign::Credentials;
use statarb::mock::{MockBinance, MockConfig, MockHandle};
use statarb::types::Instrument;

const KEY: &str = "test-key";
const SECRET: &str = "test-secret";

fn inst(symbol: &str, tick: &str, lot: &str) -> Instrument {
    Instrument::new(symbol, tick.parse().unwrap(), lot.parse().unwrap())
}

fn venue() -> Vec<Instrument> {
    vec![inst("ETHUSDT", "0.01", "0.0001"), inst("BTCUSDT", "0.01", "0.00001")]
}

fn mock() -> MockHandle {
    MockBinance::spawn(MockConfig {
        creds: Credentials::new(KEY, SECRET),
        instruments: venue(),
        balances: vec![("USDT".into(), 10_000.0)],
        maker_bps: 10.0,
        taker_bps: 10.0,
    })
    .unwrap()
}

/// Starts a gateway for `instruments` (no user data stream) on the mock.
fn start(m: &MockHandle, instruments: Vec<Instrument>) -> Result<BinanceSpot, GatewayError> {
    let cfg = BinanceGatewayConfig {
        rest_url: m.rest_url(),
        ws_url: String::new(),
        orders: "rest".into(),
        timeout_ms: 2_000,
        ..Default::default()
    };
    let fees = Fees { maker_bps: 10.0, taker_bps: 10.0 };
    let mut gw = BinanceSpot::with_credentials(cfg, Credentials::new(KEY, SECRET), instruments, fees)?;
    gw.start()?;
    Ok(gw)
}

#[test]
fn matching_filters_start() {
    let m = mock();
    start(&m, venue()).expect("the config's tick and lot are the venue's");
    // Equal as numbers, however written.
    start(&m, vec![inst("ETHUSDT", "0.010", "0.00010")]).unwrap();
}

#[test]
fn a_wrong_tick_or_lot_is_an_error_naming_symbol_key_and_values() {
    let m = mock();
    let e = start(&m, vec![inst("ETHUSDT", "0.1", "0.0001"), inst("BTCUSDT", "0.01", "0.00001")]).unwrap_err();
    assert_eq!(e.to_string(), "ETHUSDT: config y.tick = 0.1, but the venue's PRICE_FILTER tickSize is 0.01000000");
    let e = start(&m, vec![inst("ETHUSDT", "0.01", "0.0001"), inst("BTCUSDT", "0.01", "0.0001")]).unwrap_err();
    let GatewayError::Filters(f) = e else { panic!("{e}") };
    match *f {
        FilterError::Mismatch { symbol, key, config, venue, filter, .. } => {
            assert_eq!((symbol.as_str(), key.as_str(), filter), ("BTCUSDT", "x.lot", "LOT_SIZE"));
            assert_eq!((config.to_string(), venue.to_string()), ("0.0001".into(), "0.00001000".into()));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_symbol_missing_from_exchange_info_is_an_error() {
    let m = mock();
    let e = start(&m, vec![inst("ETHUSDT", "0.01", "0.0001"), inst("SOLUSDT", "0.01", "0.001")]).unwrap_err();
    let listed = matches!(&e, GatewayError::Filters(f) if matches!(&**f, FilterError::NotListed { symbol } if symbol == "SOLUSDT"));
    assert!(listed, "{e}");
    assert!(e.to_string().contains("SOLUSDT"), "{e}");
}

#[test]
fn exchange_info_has_binance_shape_and_forms() {
    let m = mock();
    let get = |q: &str| {
        let url = format!("{}/api/v3/exchangeInfo{q}", m.rest_url());
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut r = agent.get(&url).call().unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value = serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
        (status, v)
    };
    let (st, all) = get("");
    assert_eq!(st, 200);
    assert_eq!(all["timezone"], "UTC");
    assert!(all["serverTime"].as_i64().unwrap() > 0);
    let limits = all["rateLimits"].as_array().unwrap();
    assert!(limits
        .iter()
        .any(|l| l["rateLimitType"] == "REQUEST_WEIGHT" && l["limit"] == 6000 && l["interval"] == "MINUTE"));
    assert!(limits.iter().any(|l| l["rateLimitType"] == "ORDERS" && l["intervalNum"] == 10));
    let syms: Vec<&str> = all["symbols"].as_array().unwrap().iter().map(|s| s["symbol"].as_str().unwrap()).collect();
    assert_eq!(syms, ["ETHUSDT", "BTCUSDT"]);
    let btc = &all["symbols"][1];
    assert_eq!((btc["baseAsset"].as_str(), btc["quoteAsset"].as_str()), (Some("BTC"), Some("USDT")));
    let filter = |t: &str| btc["filters"].as_array().unwrap().iter().find(|f| f["filterType"] == t).unwrap().clone();
    assert_eq!(filter("PRICE_FILTER")["tickSize"], "0.01000000");
    let lot = filter("LOT_SIZE");
    assert_eq!((lot["stepSize"].as_str(), lot["minQty"].as_str()), (Some("0.00001000"), Some("0.00001000")));
    assert!(lot["maxQty"].as_str().is_some());

    let (st, one) = get("?symbol=BTCUSDT");
    assert_eq!((st, one["symbols"].as_array().unwrap().len()), (200, 1));
    let (st, two) = get("?symbols=%5B%22BTCUSDT%22,%22ETHUSDT%22%5D");
    let syms: Vec<&str> = two["symbols"].as_array().unwrap().iter().map(|s| s["symbol"].as_str().unwrap()).collect();
    assert_eq!((st, syms), (200, vec!["BTCUSDT", "ETHUSDT"]));
    let (st, e) = get("?symbol=SOLUSDT");
    assert_eq!((st, e["code"].as_i64()), (400, Some(-1121)));
    let (st, e) = get("?symbols=%5B%22BTCUSDT%22,%22SOLUSDT%22%5D");
    assert_eq!((st, e["code"].as_i64()), (400, Some(-1121)));
    let (st, e) = get("?symbol=BTCUSDT&symbols=%5B%22BTCUSDT%22%5D");
    assert_eq!((st, e["code"].as_i64()), (400, Some(-1128)));
    let (st, e) = get("?symbols=BTCUSDT");
    assert_eq!((st, e["code"].as_i64()), (400, Some(-1100)));
}
