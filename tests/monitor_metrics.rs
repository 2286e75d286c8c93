//! Live observability end to end: `statarb run` (the local demo: the replay server on
//! loopback and the engine against it over real sockets) with the `/metrics` endpoint
//! on a free port and a status line every second. The test reads the endpoint's
//! address from the log, scrapes it with a real HTTP client (ureq) while the run goes
//! on, parses the exposition text, and checks the log lines the monitor wrote.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The samples of an exposition text: `name{labels}` to value. Fails on a line that is
/// neither a comment nor `name value`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let v =
            if value == "NaN" { f64::NAN } else { value.parse().unwrap_or_else(|_| panic!("not a number: {line}")) };
        out.insert(key.to_string(), v);
    }
    out
}

fn scrape(addr: &str) -> HashMap<String, f64> {
    let mut resp = ureq::get(&format!("http://{addr}/metrics")).call().expect("GET /metrics");
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "content type {ct}");
    parse(&resp.body_mut().read_to_string().expect("body"))
}

#[test]
fn metrics_are_scraped_during_a_loopback_run_and_the_monitor_logs_what_happens() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(["run", "--events", "1500000", "--metrics-addr", "127.0.0.1:0", "--status-secs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start statarb run");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    // The endpoint's address, from the monitor's first line.
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the metrics line");
        if let Some(rest) = line.split("metrics endpoint on http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    // Scrape until the book is in sync and quotes have been made, while the run goes on.
    let mut scrapes = Vec::new();
    while Instant::now() < deadline {
        let Ok(mut resp) = ureq::get(&format!("http://{addr}/metrics")).call() else { break };
        scrapes.push(parse(&resp.body_mut().read_to_string().unwrap()));
        let m = scrapes.last().unwrap();
        if m["statarb_tick_to_quote_seconds_count"] > 0.0 && scrapes.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = scrape(&addr);
    let status = child.wait().expect("wait");
    let log = reader.join().unwrap().join("\n");
    assert!(status.success(), "{log}");

    let first = &scrapes[0];
    for name in [
        "statarb_events_total",
        "statarb_feed_messages_total",
        "statarb_feed_connects_total",
        "statarb_open_orders",
        "statarb_net_pnl",
        "statarb_kill_switch",
        "statarb_risk_rejects_total{reason=\"stale\"}",
        "statarb_book_synced{leg=\"ETHUSDT\"}",
        "statarb_position{leg=\"BTCUSDT\"}",
        "statarb_tick_to_quote_seconds{quantile=\"0.99\"}",
        "statarb_tick_to_quote_seconds_sum",
    ] {
        assert!(first.contains_key(name), "no {name} in {first:?}");
    }
    // Counters only go up between scrapes, and the run was seen moving.
    for (a, b) in scrapes.iter().zip(&scrapes[1..]) {
        for k in ["statarb_events_total", "statarb_feed_messages_total", "statarb_tick_to_quote_seconds_count"] {
            assert!(b[k] >= a[k], "{k} went down: {} then {}", a[k], b[k]);
        }
    }
    assert!(m["statarb_events_total"] > 0.0 && m["statarb_feed_connects_total"] == 1.0, "{m:?}");
    assert_eq!(m["statarb_book_synced{leg=\"ETHUSDT\"}"], 1.0);
    assert_eq!(m["statarb_book_synced{leg=\"BTCUSDT\"}"], 1.0);
    assert_eq!(m["statarb_kill_switch"], 0.0);
    let (p50, p99) =
        (m["statarb_tick_to_quote_seconds{quantile=\"0.5\"}"], m["statarb_tick_to_quote_seconds{quantile=\"0.99\"}"]);
    assert!(m["statarb_tick_to_quote_seconds_count"] > 0.0 && p50 > 0.0 && p50 <= p99 && p99 < 1.0, "{p50} {p99}");

    // The monitor's lines: timestamped, levelled, structured.
    for needle in ["INFO statarb::monitor: feed connected", "book in sync leg=ETHUSDT", "book in sync leg=BTCUSDT"] {
        assert!(log.contains(needle), "no `{needle}` in the log:\n{log}");
    }
    let status_lines: Vec<&str> = log.lines().filter(|l| l.contains("INFO statarb::status: status ")).collect();
    assert!(status_lines.len() >= 2, "status lines: {status_lines:?}");
    for key in ["msgs_per_s=", "y_book=", "y_pos=", "x_pnl=", "open_orders=", "t2q_p50_ns=", "t2q_p99_ns="] {
        assert!(status_lines[0].contains(key), "{key} not in {}", status_lines[0]);
    }
    let stamp = &status_lines[0][..27];
    assert!(stamp.starts_with("20") && stamp.ends_with('Z') && stamp.contains('T'), "timestamp {stamp}");
    assert!(log.contains("metrics: ") && log.contains("scrapes answered"), "{log}");
}

/// An operator's first run with no market to reach: the feed's address refuses every
/// connect. The monitor says so while the engine retries, each line with the failure's
/// reason (the OS error), not only its count; SIGINT then ends the run in order.
#[test]
fn the_monitor_logs_why_the_feed_cannot_connect() {
    let dir = tempfile::tempdir().unwrap();
    // A port that refuses: bound for a moment to find it free, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.path().join("refused.toml");
    std::fs::write(
        &cfg,
        format!(
            "extends = \"default\"\n[feed]\nvenue = \"binance\"\nws_url = \"ws://127.0.0.1:{port}/stream\"\nrest_url = \"http://127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(["run", "--config", cfg.to_str().unwrap(), "--status-secs", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start statarb run");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("a feed failure line");
        if line.contains("feed connection failed") {
            break line;
        }
    };
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().expect("wait");
    let log = reader.join().unwrap().join("\n");
    assert!(status.success(), "{log}");
    assert!(failed.contains("WARN statarb::monitor") && failed.contains("errors="), "{failed}");
    assert!(failed.contains("reason=io: Connection refused"), "no reason in `{failed}`\n{log}");
}
