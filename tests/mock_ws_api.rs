//! The mock venue's WebSocket API trading methods, driven by a plain blocking
//! tungstenite client over loopback (no gateway code): `order.place`, `order.cancel`,
//! `order.cancelReplace`, `openOrders.status`, `account.status`, signed as Binance's
//! WebSocket API docs say (sorted parameters, HMAC-SHA256); faults; and a burst of 16
//! cancels that the mock answers only once all 16 arrived, so all were in flight
//! together.

use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use statarb::gateway::sign::{ws_payload, Credentials};
use statarb::mock::{Fault, MockBinance, MockConfig, MockHandle};
use statarb::types::Instrument;
use tungstenite::{Message, WebSocket};

const KEY: &str = "mockApiKeyQ7w9E2r4T6y8U0i1O3p5A7s9D2f4G6h8J0k1L3z5X7c9V2b4N6m8";
const SECRET: &str = "mockSecretZ1x3C5v7B9n2M4q6W8e0R2t4Y6u8I0o2P4a6S8d0F2g4H6j8K0l2";

fn mock() -> MockHandle {
    MockBinance::spawn(MockConfig {
        creds: Credentials::new(KEY, SECRET),
        instruments: vec![Instrument::new("BTCUSDT", "0.01".parse().unwrap(), "0.00001".parse().unwrap())],
        balances: vec![("USDT".into(), 100_000.0), ("BTC".into(), 1.0)],
        maker_bps: 10.0,
        taker_bps: 10.0,
    })
    .unwrap()
}

type Ws = WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

fn connect(m: &MockHandle) -> Ws {
    tungstenite::connect(m.ws_url()).unwrap().0
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The request text: `params` plus apiKey, timestamp, recvWindow and the signature.
fn signed(id: u64, method: &str, params: &[(&str, &str)], secret: &str) -> String {
    let ts = now_ms().to_string();
    let mut kv: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, v.to_string())).collect();
    kv.push(("apiKey", KEY.into()));
    kv.push(("timestamp", ts));
    kv.push(("recvWindow", "5000".into()));
    let sig = Credentials::new(KEY, secret).sign(ws_payload(&kv).as_bytes());
    kv.push(("signature", sig));
    let p: serde_json::Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_string(), Value::String(v))).collect();
    json!({ "id": id, "method": method, "params": p }).to_string()
}

fn send(ws: &mut Ws, text: String) {
    ws.send(Message::text(text)).unwrap();
}

fn recv(ws: &mut Ws) -> Value {
    loop {
        if let Message::Text(t) = ws.read().unwrap() {
            return serde_json::from_str(t.as_ref()).unwrap();
        }
    }
}

fn call(ws: &mut Ws, id: u64, method: &str, params: &[(&str, &str)]) -> Value {
    send(ws, signed(id, method, params, SECRET));
    let v = recv(ws);
    assert_eq!(v["id"], json!(id), "{v}");
    v
}

fn place(ws: &mut Ws, id: u64, cid: &str, price: &str) -> Value {
    call(
        ws,
        id,
        "order.place",
        &[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "LIMIT_MAKER"),
            ("quantity", "0.001"),
            ("price", price),
            ("newClientOrderId", cid),
        ],
    )
}

#[test]
fn trading_methods_over_the_ws_api() {
    let m = mock();
    let mut ws = connect(&m);
    let v = place(&mut ws, 1, "a1", "100.00");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["result"]["clientOrderId"], "a1", "{v}");
    assert_eq!(v["rateLimits"][0]["rateLimitType"], "REQUEST_WEIGHT", "{v}");
    assert!(v["rateLimits"][0]["count"].as_u64().unwrap() >= 1, "{v}");

    let v = call(&mut ws, 2, "openOrders.status", &[("symbol", "BTCUSDT")]);
    assert_eq!(v["result"].as_array().unwrap().len(), 1, "{v}");

    let v = call(
        &mut ws,
        3,
        "order.cancelReplace",
        &[
            ("symbol", "BTCUSDT"),
            ("cancelReplaceMode", "STOP_ON_FAILURE"),
            ("cancelOrigClientOrderId", "a1"),
            ("side", "BUY"),
            ("type", "LIMIT_MAKER"),
            ("quantity", "0.001"),
            ("price", "101.00"),
            ("newClientOrderId", "a2"),
        ],
    );
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["result"]["cancelResult"], "SUCCESS", "{v}");
    assert_eq!(v["result"]["newOrderResult"], "SUCCESS", "{v}");
    let open = m.open_orders("BTCUSDT");
    assert_eq!(open.len(), 1);

    // STOP_ON_FAILURE: cancelling an order that is gone fails, no new order is placed.
    let v = call(
        &mut ws,
        4,
        "order.cancelReplace",
        &[
            ("symbol", "BTCUSDT"),
            ("cancelReplaceMode", "STOP_ON_FAILURE"),
            ("cancelOrigClientOrderId", "a1"),
            ("side", "BUY"),
            ("type", "LIMIT_MAKER"),
            ("quantity", "0.001"),
            ("price", "102.00"),
            ("newClientOrderId", "a3"),
        ],
    );
    assert_eq!(v["status"], 400, "{v}");
    assert_eq!(v["error"]["code"], -2022, "{v}");
    assert_eq!(m.open_orders("BTCUSDT").len(), 1);

    let v = call(&mut ws, 5, "order.cancel", &[("symbol", "BTCUSDT"), ("origClientOrderId", "a2")]);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["result"]["status"], "CANCELED", "{v}");
    let v = call(&mut ws, 6, "order.cancel", &[("symbol", "BTCUSDT"), ("origClientOrderId", "a2")]);
    assert_eq!(v["error"]["code"], -2011, "{v}");

    let v = call(&mut ws, 7, "account.status", &[]);
    assert_eq!(v["status"], 200, "{v}");
    assert!(v["result"]["balances"].as_array().unwrap().iter().any(|b| b["asset"] == "USDT"), "{v}");
}

#[test]
fn ws_api_checks_signature_key_and_time() {
    let m = mock();
    let mut ws = connect(&m);
    send(&mut ws, signed(1, "account.status", &[], "wrong secret"));
    let v = recv(&mut ws);
    assert_eq!(v["error"]["code"], -1022, "{v}");
    assert!(!v.to_string().contains(SECRET));
    m.set_clock_offset_ms(-60_000);
    let v = call(&mut ws, 2, "account.status", &[]);
    assert_eq!(v["error"]["code"], -1021, "{v}");
    m.set_clock_offset_ms(0);
    assert_eq!(call(&mut ws, 3, "account.status", &[])["status"], 200);
}

#[test]
fn ws_api_fault_injection() {
    let m = mock();
    let mut ws = connect(&m);
    m.inject(Fault::Http429 { retry_after_s: 2 }, 1, Some("order.place"));
    let v = place(&mut ws, 1, "f1", "100.00");
    assert_eq!(v["status"], 429, "{v}");
    assert_eq!(v["error"]["code"], -1003, "{v}");
    let d = &v["error"]["data"];
    assert_eq!(d["retryAfter"].as_i64().unwrap() - d["serverTime"].as_i64().unwrap(), 2000, "{v}");
    m.inject(Fault::Http418 { retry_after_s: 5 }, 1, Some("order.place"));
    assert_eq!(place(&mut ws, 2, "f2", "100.00")["status"], 418);
    m.inject(Fault::Timestamp, 1, Some("POST /api/v3/order"));
    assert_eq!(place(&mut ws, 3, "f3", "100.00")["error"]["code"], -1021);
    assert!(m.open_orders("BTCUSDT").is_empty(), "faulted requests are not executed");
    m.inject(Fault::SlowAnswer { ms: 200 }, 1, Some("order.place"));
    let t = std::time::Instant::now();
    assert_eq!(place(&mut ws, 4, "f4", "100.00")["status"], 200);
    assert!(t.elapsed().as_millis() >= 200);
    // Lost: not executed, the connection is dropped without an answer.
    m.inject(Fault::Lost { ms: 10 }, 1, Some("order.place"));
    send(&mut ws, signed(5, "order.place", &[("symbol", "BTCUSDT")], SECRET));
    let closed = loop {
        match ws.read() {
            Ok(Message::Text(t)) => panic!("answered: {t}"),
            Ok(_) => {}
            Err(_) => break true,
        }
    };
    assert!(closed);
    let mut ws = connect(&m);
    assert_eq!(call(&mut ws, 6, "openOrders.status", &[("symbol", "BTCUSDT")])["result"].as_array().unwrap().len(), 1);
}

/// 16 cancels sent back to back; the mock holds every answer until the 16th request
/// arrived, so receiving all 16 answers proves they were all in flight at once.
#[test]
fn burst_of_16_cancels_all_in_flight() {
    let m = mock();
    let mut ws = connect(&m);
    for i in 0..16u64 {
        let price = format!("{}.00", 100 + i);
        assert_eq!(place(&mut ws, i, &format!("b{i}"), &price)["status"], 200);
    }
    drop(ws);
    m.hold_ws_answers(16);
    let mut ws = connect(&m);
    for i in 0..16u64 {
        let cid = format!("b{i}");
        send(&mut ws, signed(100 + i, "order.cancel", &[("symbol", "BTCUSDT"), ("origClientOrderId", &cid)], SECRET));
    }
    let mut ids: Vec<u64> = (0..16)
        .map(|_| recv(&mut ws))
        .map(|v| {
            assert_eq!(v["status"], 200, "{v}");
            v["id"].as_u64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (100..116).collect::<Vec<_>>());
    assert!(m.open_orders("BTCUSDT").is_empty());
}

/// `time` needs no key or signature and answers the (skewed) server clock; a
/// `ServerTime` fault applies to it as to `GET /api/v3/time`. `openOrders.status` has
/// `account.status`'s checks: a wrong signature is -1022, a stale timestamp -1021.
#[test]
fn ws_api_time_and_open_orders_checks() {
    let m = mock();
    let mut ws = connect(&m);
    m.set_clock_offset_ms(7_000);
    send(&mut ws, json!({ "id": 1, "method": "time" }).to_string());
    let v = recv(&mut ws);
    assert_eq!((v["id"].as_u64(), v["status"].as_u64()), (Some(1), Some(200)), "{v}");
    let server = v["result"]["serverTime"].as_i64().unwrap();
    assert!((server - now_ms() - 7_000).abs() < 1_000, "{v}");
    assert!(v["rateLimits"].as_array().is_some_and(|l| !l.is_empty()), "{v}");
    m.inject(Fault::ServerTime { ms: 42 }, 1, Some("time"));
    send(&mut ws, json!({ "id": 2, "method": "time" }).to_string());
    assert_eq!(recv(&mut ws)["result"]["serverTime"], 42);
    m.set_clock_offset_ms(0);

    send(&mut ws, signed(3, "openOrders.status", &[("symbol", "BTCUSDT")], "wrong secret"));
    assert_eq!(recv(&mut ws)["error"]["code"], -1022);
    m.set_clock_offset_ms(-60_000);
    assert_eq!(call(&mut ws, 4, "openOrders.status", &[("symbol", "BTCUSDT")])["error"]["code"], -1021);
    m.set_clock_offset_ms(0);
    let v = call(&mut ws, 5, "openOrders.status", &[("symbol", "BTCUSDT")]);
    assert_eq!(v["result"], json!([]), "{v}");
    assert_eq!(m.stats().auth_failures, 1);
}
