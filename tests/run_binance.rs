//! `statarb run` end to end against Binance-shaped services on loopback: the replay
//! server (market data: combined streams + REST snapshots) and the mock Binance Spot
//! venue (signed REST, WebSocket API user data stream, balances). The test plays the
//! rest of the market: it trades against the engine's resting quotes on the mock, so
//! fills reach the engine through the user data stream. Then it stops the engine with
//! SIGINT and checks that every order was cancelled, that the engine's positions equal
//! the mock's balance changes, and that the keys appear nowhere in the output.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use statarb::config::Config;
use statarb::feed::gen::{self, GenParams};
use statarb::gateway::sign::Credentials;
use statarb::mock::{MockBinance, MockConfig};
use statarb::serve::{self, Pacing, ServeConfig, Source};
use statarb::types::Side;

const KEY: &str = "e2e-key-4f1c9a7d0b";
const SECRET: &str = "e2e-secret-8be2d95f3a";

#[test]
fn quotes_fill_and_are_cancelled_on_sigint_and_positions_match_balances() {
    // 100k events span about 400 s of market time: at 100x, about 4 s.
    let ds = Arc::new(gen::generate(&GenParams { events: 100_000, ..GenParams::default() }));
    let market = serve::spawn(
        ServeConfig { pacing: Pacing::Speed(100.0), ..ServeConfig::default() },
        Source::Generated(Arc::clone(&ds)),
    )
    .unwrap();
    let cfg = Config::builtin();
    let instruments = vec![cfg.y.instrument(), cfg.x.instrument()];
    let start = [("USDT", 1_000_000.0), ("ETH", 100.0), ("BTC", 10.0)];
    let mock = MockBinance::spawn(MockConfig {
        creds: Credentials::new(KEY, SECRET),
        instruments: instruments.clone(),
        balances: start.iter().map(|(a, v)| (a.to_string(), *v)).collect(),
        maker_bps: 1.0,
        taker_bps: 4.0,
    })
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ws = market.ws_addr();
    let config = format!(
        r#"extends = "default"
[feed]
venue = "binance"
ws_url = "ws://{ws}/stream"
rest_url = "http://{ws}"
end_on_close = true
clock = "exchange"

[gateway]
venue = "binance"
cancel_timeout_ms = 5000

[gateway.binance]
rest_url = "{rest}"
ws_url = "{wsapi}"
key_env = "STATARB_E2E_KEY"
secret_env = "STATARB_E2E_SECRET"

[gateway.binance.limits]
orders_per_10s = 1000000
orders_per_day = 100000000
weight_per_minute = 100000000
{mm}"#,
        rest = mock.rest_url(),
        wsapi = mock.ws_url(),
        mm = common::market_make_tables(),
    );
    let cfg_path = dir.path().join("e2e.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(["run", "--config"])
        .arg(&cfg_path)
        .arg("--out")
        .arg(&out)
        .env("STATARB_E2E_KEY", KEY)
        .env("STATARB_E2E_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The rest of the market: every 20 ms, lift or hit one resting quote per symbol at
    // its price, for its whole size.
    let t0 = Instant::now();
    let mut filled = 0;
    while t0.elapsed() < Duration::from_millis(2_500) {
        for inst in &instruments {
            if let Some(o) = mock.open_orders(&inst.symbol).first() {
                let px = inst.price_decimal(o.px).to_string();
                let qty = inst.qty_decimal(o.qty - o.executed).to_string();
                filled += mock.trade(&inst.symbol, o.side.opposite(), &px, &qty);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGINT, as a user's Ctrl-C.
    let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -INT");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "statarb did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "statarb failed: {stderr}");
    assert!(filled > 0, "the test filled nothing; stderr: {stderr}");

    // Every order is gone from the venue.
    for inst in &instruments {
        assert!(mock.open_orders(&inst.symbol).is_empty(), "{} orders left open: {stderr}", inst.symbol);
    }
    // The engine's positions are the venue's balance changes.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["orders"].as_u64().unwrap() > 0);
    assert!(summary["fills"].as_u64().unwrap() > 0, "{summary}");
    for (inst, asset, start) in [(&instruments[0], "ETH", 100.0), (&instruments[1], "BTC", 10.0)] {
        let pos: f64 = summary["positions"][&inst.symbol].as_str().unwrap().parse().unwrap();
        // Binance takes a buyer's commission in the asset bought.
        let leg = summary["legs"].as_array().unwrap().iter().find(|l| l["symbol"] == inst.symbol.as_str()).unwrap();
        let fees_base = leg["fees_base"].as_f64().unwrap();
        let (free, locked) = mock.balance(asset);
        assert_eq!(locked, 0.0, "{asset} still locked");
        assert!(
            (free - start - (pos - fees_base)).abs() < inst.lot_f64() / 2.0,
            "{asset}: balance {free}, engine position {pos}, base fees {fees_base}"
        );
    }
    assert!(stderr.contains("match") && !stderr.contains("MISMATCH"), "{stderr}");
    assert!(!stderr.contains("orders not confirmed"), "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(KEY) && !text.contains(SECRET), "a key in the output");
    }
    // The engine's own side of a fill: the mock saw both sides of the book quoted.
    let sides: Vec<Side> = mock.orders().iter().map(|o| o.side).collect();
    assert!(sides.contains(&Side::Buy) && sides.contains(&Side::Sell));
    market.stop();
    mock.stop();
}

/// The paper venue: live data from the replay server, fills from the backtester's
/// matching engine on the gateway thread.
#[test]
fn paper_venue_fills_from_the_matching_engine() {
    let ds = Arc::new(gen::generate(&GenParams { events: 100_000, ..GenParams::default() }));
    let market = serve::spawn(ServeConfig::default(), Source::Generated(Arc::clone(&ds))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = market.ws_addr();
    let cfg_path = dir.path().join("paper.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "extends = \"default\"\n[feed]\nvenue = \"binance\"\nws_url = \"ws://{ws}/stream\"\nrest_url = \"http://{ws}\"\nend_on_close = true\nclock = \"exchange\"\n[gateway]\nvenue = \"paper\"\n{}",
            common::market_make_tables()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(["run", "--config"])
        .arg(&cfg_path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("paper venue: MatchStats"), "{stderr}");
    // Every command went through the entry latency (1 ms by default).
    let delayed: u64 = stderr
        .split("paper latency: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no paper latency line: {stderr}"));
    assert!(delayed > 0, "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["orders"].as_u64().unwrap() > 0);
    assert!(summary["fills"].as_u64().unwrap() > 0, "{summary}");
    // The summary carries the matching engine's counters, as for every simulated venue.
    assert_eq!(summary["venue"]["fills"], summary["fills"], "{summary}");
    market.stop();
}

/// Starts `statarb mock-binance` with `args` and the account's key and secret in the
/// variables `key_env` and `secret_env`; returns the child, the rest of its stderr
/// (kept open, so that its last lines have somewhere to go) and its first line (the
/// URLs it serves on).
fn mock_program(
    args: &[&str],
    key_env: &str,
    secret_env: &str,
) -> (std::process::Child, std::io::BufReader<std::process::ChildStderr>, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_statarb"))
        .arg("mock-binance")
        .args(args)
        .args(["--key-env", key_env, "--secret-env", secret_env])
        .env(key_env, KEY)
        .env(secret_env, SECRET)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    (child, err, line)
}

/// `statarb mock-binance` as a program, for a user's dry run: it serves on the port
/// it prints, answers signed requests with the keys from the named variables, and ends
/// with exit 0 on SIGINT.
#[test]
fn mock_binance_runs_as_a_program_for_dry_runs() {
    use statarb::gateway::Exchange;
    use std::io::Write;
    let (mut child, _err, line) = mock_program(&["--port", "0", "--balance", "ETH=7"], "DRY_KEY", "DRY_SECRET");
    assert!(line.contains("ETH=7") && !line.contains(KEY) && !line.contains(SECRET), "{line}");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("a REST url").to_string();
    let addr = url.trim_start_matches("http://");
    // A signed account read, with the client the engine uses.
    let cfg = Config::builtin();
    let gw = statarb::gateway::binance::BinanceGatewayConfig {
        rest_url: url.clone(),
        ws_url: String::new(),
        orders: "rest".into(),
        ..Default::default()
    };
    let mut venue = statarb::gateway::binance::BinanceSpot::with_credentials(
        gw,
        Credentials::new(KEY, SECRET),
        vec![cfg.y.instrument(), cfg.x.instrument()],
        cfg.fees,
    )
    .unwrap();
    let bals = venue.balances().unwrap();
    let eth = bals.iter().find(|b| b.asset == "ETH").expect("ETH");
    assert_eq!(eth.free.to_f64(), 7.0);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET /api/v3/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success());
}

/// `statarb mock-binance --ws-port 0`: the WebSocket API on a port of its own, printed
/// at start; our gateway with `orders = "ws"` places and cancels an order through it
/// (its REST calls on the REST port), and the WebSocket API port answers plain HTTP
/// with 404, as a WebSocket-only host does.
#[test]
fn mock_binance_serves_the_ws_api_on_its_own_port() {
    use statarb::event::{ExecKind, NewOrder, OrderCmd, Tif};
    use statarb::gateway::Exchange;
    use std::io::Write;
    let (mut child, _err, line) = mock_program(&["--port", "0", "--ws-port", "0"], "WS_KEY", "WS_SECRET");
    let word = |p: &str| line.split_whitespace().find(|w| w.starts_with(p)).map(str::to_string);
    let rest = word("http://").unwrap_or_else(|| panic!("no REST url: {line}"));
    let ws = word("ws://").unwrap_or_else(|| panic!("no WebSocket API url: {line}"));
    let port = |u: &str| u.split("://").nth(1).and_then(|a| a.split(['/', ':']).nth(1)).map(str::to_string);
    assert!(ws.ends_with("/ws-api/v3"), "{line}");
    assert_ne!(port(&rest), port(&ws), "the WebSocket API on the REST port: {line}");

    let cfg = Config::builtin();
    let instruments = vec![cfg.y.instrument(), cfg.x.instrument()];
    let gw_cfg = statarb::gateway::binance::BinanceGatewayConfig {
        rest_url: rest.clone(),
        ws_url: ws.clone(),
        orders: "ws".into(),
        timeout_ms: 2_000,
        ..Default::default()
    };
    let mut gw = statarb::gateway::binance::BinanceSpot::with_credentials(
        gw_cfg,
        Credentials::new(KEY, SECRET),
        instruments.clone(),
        cfg.fees,
    )
    .unwrap();
    gw.start().unwrap();
    let mut out = Vec::new();
    let poll_until = |gw: &mut statarb::gateway::binance::BinanceSpot,
                      out: &mut Vec<statarb::event::ExecReport>,
                      pred: &dyn Fn(&[statarb::event::ExecReport]) -> bool| {
        let t0 = Instant::now();
        while !pred(out) {
            assert!(t0.elapsed() < Duration::from_secs(5), "timed out: {out:?}; {gw:?}");
            gw.poll(0, out);
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let t0 = Instant::now();
    while !gw.stream_ready() {
        assert!(t0.elapsed() < Duration::from_secs(5), "user data stream not subscribed: {gw:?}");
        gw.poll(0, &mut out);
        std::thread::sleep(Duration::from_millis(1));
    }
    let eth = &instruments[0];
    let id = (1_764_000_000u64 << 32) | 1;
    let px = eth.parse_price(b"100.00").unwrap();
    let qty = eth.parse_qty(b"0.5").unwrap();
    gw.on_order(&OrderCmd::New(NewOrder { id, inst: 0, side: Side::Buy, px, qty, tif: Tif::PostOnly }), 0, &mut out);
    poll_until(&mut gw, &mut out, &|o| !o.is_empty());
    assert_eq!((out[0].id, out[0].kind, out[0].px, out[0].leaves), (id, ExecKind::New, px, qty), "{out:?}");
    // The venue holds it (asked over REST).
    let open = gw.open_orders().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    out.clear();
    gw.on_order(&OrderCmd::Cancel { id, inst: 0 }, 0, &mut out);
    poll_until(&mut gw, &mut out, &|o| o.iter().any(|r| r.kind == ExecKind::Canceled));
    assert!(gw.open_orders().unwrap().is_empty());
    let st = gw.stats();
    assert!(st.ws_requests >= 2 && st.ws_answers >= 2, "{st:?}");

    // Plain HTTP on the WebSocket API port: 404.
    let ws_addr = ws.trim_start_matches("ws://").trim_end_matches("/ws-api/v3").to_string();
    let mut s = std::net::TcpStream::connect(&ws_addr).unwrap();
    write!(s, "GET /api/v3/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
}
