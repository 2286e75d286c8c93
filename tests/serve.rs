//! The replay server through a real tungstenite client on 127.0.0.1.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;
use statarb::feed::gen::{generate, GenParams};
use statarb::serve::{spawn, Faults, Pacing, ServeConfig, ServerHandle, Source, END_OF_DATA};
use statarb::types::Decimal;
use tungstenite::Message;

const ALL: &str =
    "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade/ethusdt@depth@100ms/ethusdt@bookTicker/ethusdt@trade";

fn gen_source(events: usize) -> Source {
    Source::Generated(Arc::new(generate(&GenParams { events, ..GenParams::default() })))
}

fn server(source: Source, faults: Faults, pacing: Pacing) -> ServerHandle {
    let cfg = ServeConfig {
        http_bind: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        pacing,
        faults,
        ..ServeConfig::default()
    };
    spawn(cfg, source).unwrap()
}

#[derive(Debug, PartialEq)]
enum End {
    /// Close frame with this reason.
    Closed(String),
    /// The connection ended without a Close frame.
    Dropped,
}

/// Reads every text frame (with its arrival time) until the end.
fn read_all(addr: SocketAddr, streams: &str) -> (Vec<(Instant, String)>, End) {
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/stream?streams={streams}")).unwrap();
    let mut out = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => out.push((Instant::now(), t.to_string())),
            Ok(Message::Close(f)) => {
                let reason = f.map(|f| f.reason.to_string()).unwrap_or_default();
                // Drain the closing handshake.
                while ws.read().is_ok() {}
                return (out, End::Closed(reason));
            }
            Ok(_) => {}
            Err(_) => return (out, End::Dropped),
        }
    }
}

fn texts(v: Vec<(Instant, String)>) -> Vec<String> {
    v.into_iter().map(|(_, t)| t).collect()
}

fn http_get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status: u16 = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn key(p: &str) -> i128 {
    let d: Decimal = p.parse().unwrap();
    d.mantissa() as i128 * 10i128.pow(18 - d.scale())
}

type Side = BTreeMap<i128, (String, String)>;

fn apply(side: &mut Side, levels: &Value) {
    for l in levels.as_array().unwrap() {
        let (p, q) = (l[0].as_str().unwrap(), l[1].as_str().unwrap());
        let qd: Decimal = q.parse().unwrap();
        if qd.mantissa() == 0 {
            side.remove(&key(p));
        } else {
            side.insert(key(p), (p.to_string(), q.to_string()));
        }
    }
}

fn levels(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| (l[0].as_str().unwrap().to_string(), l[1].as_str().unwrap().to_string()))
        .collect()
}

fn is_decimal(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.parse::<Decimal>().is_ok())
}

#[test]
fn binance_format_ids_and_snapshot() {
    let h = server(gen_source(4_000), Faults::default(), Pacing::Max);
    let (msgs, end) = read_all(h.ws_addr(), ALL);
    assert_eq!(end, End::Closed(END_OF_DATA.into()));
    assert!(msgs.len() > 500, "{}", msgs.len());
    let mut last_u: HashMap<String, u64> = HashMap::new();
    let mut last_t: HashMap<String, u64> = HashMap::new();
    let mut books: HashMap<String, (Side, Side)> = HashMap::new();
    let mut kinds = HashMap::new();
    for t in texts(msgs) {
        let v: Value = serde_json::from_str(&t).unwrap();
        let stream = v["stream"].as_str().unwrap();
        let d = &v["data"];
        let sym = d["s"].as_str().unwrap().to_string();
        assert_eq!(stream.split('@').next().unwrap(), sym.to_lowercase());
        let kind = stream.split_once('@').unwrap().1.to_string();
        *kinds.entry(kind.clone()).or_insert(0) += 1;
        match kind.as_str() {
            "depth@100ms" => {
                assert_eq!(d["e"], "depthUpdate");
                assert!(d["E"].as_u64().unwrap() > 1_600_000_000_000);
                let (u0, u1) = (d["U"].as_u64().unwrap(), d["u"].as_u64().unwrap());
                let prev = last_u.get(&sym).copied().unwrap_or(0);
                assert_eq!(u0, prev + 1, "{sym}: consecutive update ids");
                let n = (d["b"].as_array().unwrap().len() + d["a"].as_array().unwrap().len()) as u64;
                assert_eq!(u1 - u0 + 1, n, "one id per level change");
                last_u.insert(sym.clone(), u1);
                let b = books.entry(sym).or_default();
                apply(&mut b.0, &d["b"]);
                apply(&mut b.1, &d["a"]);
            }
            "bookTicker" => {
                assert_eq!(d["u"].as_u64(), last_u.get(&sym).copied(), "ticker carries the book id");
                for f in ["b", "B", "a", "A"] {
                    assert!(is_decimal(&d[f]), "{t}");
                }
                assert!(key(d["b"].as_str().unwrap()) < key(d["a"].as_str().unwrap()));
            }
            "trade" => {
                assert_eq!(d["e"], "trade");
                assert!(is_decimal(&d["p"]) && is_decimal(&d["q"]));
                assert!(d["m"].is_boolean() && d["T"].is_u64() && d["E"].is_u64());
                let id = d["t"].as_u64().unwrap();
                assert_eq!(id, last_t.get(&sym).copied().unwrap_or(0) + 1);
                last_t.insert(sym, id);
            }
            k => panic!("unexpected stream kind {k}"),
        }
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    // The snapshot, on both ports, equals the book rebuilt from what we received.
    for (sym, (bids, asks)) in &books {
        for addr in [h.ws_addr(), h.http_addr().unwrap()] {
            let (status, body) = http_get(addr, &format!("/api/v3/depth?symbol={sym}&limit=5000"));
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["lastUpdateId"].as_u64(), last_u.get(sym).copied());
            let want_b: Vec<_> = bids.values().rev().cloned().collect();
            let want_a: Vec<_> = asks.values().cloned().collect();
            assert_eq!(levels(&v["bids"]), want_b);
            assert_eq!(levels(&v["asks"]), want_a);
            assert!(!want_b.is_empty() && !want_a.is_empty());
        }
        let (_, body) = http_get(h.ws_addr(), &format!("/api/v3/depth?symbol={}&limit=3", sym.to_lowercase()));
        let v: Value = serde_json::from_str(&body).unwrap();
        // At most `limit` levels (the end of the data may cut a diff and leave fewer).
        assert_eq!(v["bids"].as_array().unwrap().len(), bids.len().min(3));
    }
    assert_eq!(http_get(h.ws_addr(), "/api/v3/depth?symbol=NOPE").0, 400);
    assert_eq!(http_get(h.http_addr().unwrap(), "/api/v3/depth").0, 400);
    assert_eq!(http_get(h.ws_addr(), "/api/v3/other").0, 404);
    let s = h.stop();
    assert_eq!((s.sessions, s.completed), (1, 1));
    assert!(s.http_requests >= 7);
}

#[test]
fn sends_only_requested_streams_and_restarts() {
    let h = server(gen_source(2_000), Faults::default(), Pacing::Max);
    let (a, end) = read_all(h.ws_addr(), "ethusdt@trade");
    assert_eq!(end, End::Closed(END_OF_DATA.into()));
    assert!(!a.is_empty());
    assert!(a.iter().all(|(_, t)| t.starts_with(r#"{"stream":"ethusdt@trade","data":{"e":"trade""#)));
    // A new connection replays from the start.
    let (b, _) = read_all(h.ws_addr(), "ethusdt@trade");
    assert_eq!(texts(a), texts(b));
}

#[test]
fn drop_fault_closes_after_n_messages() {
    let faults = Faults { drop_every: Some(50), ..Faults::default() };
    let h = server(gen_source(3_000), faults, Pacing::Max);
    let (msgs, end) = read_all(h.ws_addr(), ALL);
    assert_eq!(end, End::Dropped);
    assert_eq!(msgs.len(), 50);
    assert_eq!(h.stats().drops, 1);
}

#[test]
fn gap_fault_skips_depth_messages() {
    let faults = Faults { gap_every: Some(5), ..Faults::default() };
    let h = server(gen_source(3_000), faults, Pacing::Max);
    let (msgs, end) = read_all(h.ws_addr(), "btcusdt@depth@100ms");
    assert_eq!(end, End::Closed(END_OF_DATA.into()));
    let mut last = 0;
    let mut gaps = 0;
    for t in texts(msgs) {
        let v: Value = serde_json::from_str(&t).unwrap();
        let (u0, u1) = (v["data"]["U"].as_u64().unwrap(), v["data"]["u"].as_u64().unwrap());
        assert!(u0 > last);
        if u0 > last + 1 {
            gaps += 1;
        }
        last = u1;
    }
    assert!(gaps >= 3, "{gaps}");
    // Every skipped message shows up as a gap, except one skipped at the very end.
    let skipped = h.stats().gaps;
    assert!(skipped == gaps || skipped == gaps + 1, "{skipped} vs {gaps}");
}

#[test]
fn malformed_fault_sends_broken_json() {
    let faults = Faults { malformed_every: Some(10), ..Faults::default() };
    let h = server(gen_source(2_000), faults, Pacing::Max);
    let (msgs, _) = read_all(h.ws_addr(), ALL);
    let bad = msgs.iter().filter(|(_, t)| serde_json::from_str::<Value>(t).is_err()).count();
    let good = msgs.len() - bad;
    assert!(bad >= 1);
    assert_eq!(bad, good / 10);
    assert_eq!(h.stats().malformed as usize, bad);
}

#[test]
fn stall_fault_pauses() {
    let faults = Faults { stall_every: Some(20), stall_ms: 300, ..Faults::default() };
    let h = server(gen_source(2_000), faults, Pacing::Max);
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/stream?streams={ALL}", h.ws_addr())).unwrap();
    let mut times = Vec::new();
    while times.len() < 45 {
        if let Message::Text(_) = ws.read().unwrap() {
            times.push(Instant::now());
        }
    }
    let gap = |i: usize| times[i] - times[i - 1];
    assert!(gap(20) >= Duration::from_millis(250), "{:?}", gap(20));
    assert!(gap(40) >= Duration::from_millis(250), "{:?}", gap(40));
    assert!(gap(10) < Duration::from_millis(100));
    assert!(h.stats().stalls >= 2);
}

#[test]
fn paced_replay_takes_recorded_time() {
    // 2 000 events span a few seconds of recorded time; at 10x that is a few hundred ms.
    let src = gen_source(2_000);
    let Source::Generated(ds) = &src else { unreachable!() };
    let span = (ds.events.last().unwrap().local_ts - ds.events[0].local_ts) as f64 / 1e9;
    let h = server(src, Faults::default(), Pacing::Speed(10.0));
    let t0 = Instant::now();
    let (_, end) = read_all(h.ws_addr(), ALL);
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(end, End::Closed(END_OF_DATA.into()));
    assert!(took >= span / 10.0 * 0.9, "took {took} s for {span} s at 10x");
    assert!(took < span / 10.0 + 2.0, "took {took} s for {span} s at 10x");
}

/// The first `n` lines of a committed recording slice (`tests/data/README.md` names the source).
fn head(file: &str, n: usize) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
    let f = std::fs::File::open(path).unwrap();
    BufReader::new(MultiGzDecoder::new(f)).lines().take(n).map(|l| l.unwrap()).collect()
}

#[test]
fn recording_slice_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut all: Vec<(i64, usize, String)> = Vec::new();
    for (fi, name) in ["binance_btcusdt_slice.txt.gz", "binance_ethusdt_slice.txt.gz"].iter().enumerate() {
        let lines = head(name, 300);
        let p = dir.path().join(name);
        let mut enc = GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::default());
        for l in &lines {
            writeln!(enc, "{l}").unwrap();
            let (ts, msg) = l.split_once(' ').unwrap();
            all.push((ts.parse().unwrap(), fi, msg.to_string()));
        }
        enc.finish().unwrap();
        paths.push(p);
    }
    // Expected: merged by time (stable), without the REST snapshot lines.
    all.sort_by_key(|(ts, fi, _)| (*ts, *fi));
    let expect: Vec<String> =
        all.into_iter().filter(|(_, _, m)| m.starts_with(r#"{"stream""#)).map(|(_, _, m)| m).collect();
    let h = server(Source::Recording(paths), Faults::default(), Pacing::Max);
    let (msgs, end) = read_all(h.ws_addr(), "");
    assert_eq!(end, End::Closed(END_OF_DATA.into()));
    let got = texts(msgs);
    assert_eq!(got.len(), expect.len());
    assert_eq!(got, expect);
    // The snapshot endpoint knows both symbols and reports the last depth id sent.
    for sym in ["BTCUSDT", "ETHUSDT"] {
        let last_u = got
            .iter()
            .filter_map(|t| {
                let v: Value = serde_json::from_str(t).unwrap();
                (v["data"]["e"] == "depthUpdate" && v["data"]["s"] == sym).then(|| v["data"]["u"].as_u64().unwrap())
            })
            .max()
            .unwrap();
        let (status, body) = http_get(h.ws_addr(), &format!("/api/v3/depth?symbol={sym}&limit=10"));
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["lastUpdateId"].as_u64().unwrap() >= last_u);
        assert_eq!(v["bids"].as_array().unwrap().len(), 10, "seeded by the recorded snapshot");
    }
}

#[test]
fn missing_recording_is_an_error() {
    let cfg = ServeConfig::default();
    assert!(spawn(cfg, Source::Recording(vec!["/nonexistent/x.gz".into()])).is_err());
}

#[test]
fn replays_our_own_recording() {
    use statarb::feed::record::{Recorder, RotatePolicy};
    let dir = tempfile::tempdir().unwrap();
    let (tap, rec) = Recorder::spawn(dir.path(), "rt", RotatePolicy::default()).unwrap();
    let lines = head("binance_ethusdt_slice.txt.gz", 40);
    let mut expect = Vec::new();
    for l in &lines {
        let (ts, msg) = l.split_once(' ').unwrap();
        assert!(tap.record(ts.parse().unwrap(), msg.as_bytes()));
        if msg.starts_with(r#"{"stream""#) {
            expect.push(msg.to_string());
        }
    }
    let handle_files = rec.files();
    rec.stop().unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(handle_files.len() <= files.len());
    let h = server(Source::Recording(files), Faults::default(), Pacing::Max);
    let (msgs, end) = read_all(h.ws_addr(), "");
    assert_eq!(end, End::Closed(END_OF_DATA.into()));
    assert_eq!(texts(msgs), expect);
}

/// Idle connections cannot grow the server's threads without bound: beyond
/// `max_connections` a connection is refused at once (503, counted), and a connection
/// that never sends its request head is closed after `handshake_timeout_ms` (counted).
/// Then the server serves again as usual.
#[test]
fn idle_connections_are_bounded_and_time_out() {
    let cfg = ServeConfig { max_connections: 4, handshake_timeout_ms: 300, ..ServeConfig::default() };
    let h = spawn(cfg, gen_source(2_000)).unwrap();
    let addr = h.ws_addr();
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Let the accept loop (10 ms poll) take all four.
    std::thread::sleep(Duration::from_millis(150));
    let mut extra = TcpStream::connect(addr).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut resp = String::new();
    let _ = extra.read_to_string(&mut resp);
    assert!(resp.is_empty() || resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert_eq!(h.stats().refused, 1, "{:?}", h.stats());
    // The idle four are closed by the server after the handshake timeout.
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed without an answer");
    }
    let t0 = Instant::now();
    while h.stats().handshake_timeouts < 4 && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(h.stats().handshake_timeouts, 4, "{:?}", h.stats());
    // The threads are gone: new connections are served.
    std::thread::sleep(Duration::from_millis(50));
    let (status, body) = http_get(addr, "/api/v3/nothing");
    assert_eq!((status, body.as_str()), (404, r#"{"code":-1,"msg":"Not found."}"#));
    assert_eq!(h.stats().refused, 1);
    h.stop();
}
