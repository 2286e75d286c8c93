//! Crash safety end to end: `statarb run` against the replay server and the mock
//! Binance venue, with a position journal and a recorder, is killed with SIGKILL in the
//! middle of its session. While it is dead the market trades what it left resting. The
//! restarted engine must, before its first order: cancel what the dead session left,
//! recover the fills no report carried, and find its positions equal to the venue's
//! balance changes since the journal began; at the end of the second session its
//! positions, carried over, still equal the venue's balances. The dead session's
//! recording, up to its last flush, is readable and imports.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use statarb::config::Config;
use statarb::feed::gen::{self, GenParams};
use statarb::gateway::sign::Credentials;
use statarb::mock::{MockBinance, MockConfig, MockHandle};
use statarb::serve::{self, Pacing, ServeConfig, Source};
use statarb::types::Instrument;

const KEY: &str = "crash-key-77a1c3";
const SECRET: &str = "crash-secret-4e09bd";

fn spawn_run(cfg: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(["run", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .env("STATARB_CRASH_KEY", KEY)
        .env("STATARB_CRASH_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The rest of the market: lifts or hits the first resting order of each symbol, for its
/// whole open size. Returns the lots filled.
fn trade_resting(mock: &MockHandle, instruments: &[Instrument]) -> i64 {
    let mut filled = 0;
    for inst in instruments {
        if let Some(o) = mock.open_orders(&inst.symbol).first() {
            let px = inst.price_decimal(o.px).to_string();
            let qty = inst.qty_decimal(o.qty - o.executed).to_string();
            filled += mock.trade(&inst.symbol, o.side.opposite(), &px, &qty);
        }
    }
    filled
}

fn journal_fills(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter(|l| l.contains("\"t\":\"fill\"")).count()
}

fn output(mut child: Child) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "statarb did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(!stdout.contains(KEY) && !stderr.contains(SECRET) && !stderr.contains(KEY), "a key in the output");
    (status, stderr)
}

#[test]
fn a_killed_session_restarts_on_its_positions_reconciled_with_the_venue() {
    let ds = Arc::new(gen::generate(&GenParams { events: 100_000, ..GenParams::default() }));
    let serve_at = |ds: &Arc<gen::Dataset>| {
        serve::spawn(
            ServeConfig { pacing: Pacing::Speed(100.0), ..ServeConfig::default() },
            Source::Generated(Arc::clone(ds)),
        )
        .unwrap()
    };
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
    let journal = dir.path().join("positions.journal");
    let rec_dir = dir.path().join("rec");
    let write_config = |market: &serve::ServerHandle, name: &str| {
        let ws = market.ws_addr();
        let text = format!(
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
journal = "{journal}"

[gateway.binance]
rest_url = "{rest}"
ws_url = "{wsapi}"
# The request-order checks below read the mock's REST log.
orders = "rest"
key_env = "STATARB_CRASH_KEY"
secret_env = "STATARB_CRASH_SECRET"

[gateway.binance.limits]
orders_per_10s = 1000000
orders_per_day = 100000000
weight_per_minute = 100000000

[record]
dir = "{rec}"
{mm}"#,
            journal = journal.display(),
            rest = mock.rest_url(),
            wsapi = mock.ws_url(),
            rec = rec_dir.display(),
            mm = common::market_make_tables(),
        );
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };

    // Session 1: trade against its quotes until the journal holds fills, then SIGKILL.
    let market = serve_at(&ds);
    let cfg1 = write_config(&market, "one.toml");
    let child = spawn_run(&cfg1, &dir.path().join("out1"));
    let t0 = Instant::now();
    while journal_fills(&journal) < 4 || t0.elapsed() < Duration::from_millis(1_500) {
        assert!(t0.elapsed() < Duration::from_secs(20), "no fills reached the journal");
        trade_resting(&mock, &instruments);
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id();
    let (status, stderr1) = {
        let ok = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success();
        assert!(ok, "kill -KILL");
        output(child)
    };
    assert!(!status.success(), "killed: {stderr1}");
    market.stop();
    assert!(stderr1.contains("journal created"), "{stderr1}");

    // While it is dead, the market fills what it left resting: fills no report carries.
    let orphans: usize = instruments.iter().map(|i| mock.open_orders(&i.symbol).len()).sum();
    let orphan_lots = trade_resting(&mock, &instruments);

    // The dead session's recording imports.
    let recs: Vec<_> = std::fs::read_dir(&rec_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!recs.is_empty(), "no recording files");
    let evt = dir.path().join("rec.evt");
    let o = Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(["import", "--config"])
        .arg(&cfg1)
        .arg("--out")
        .arg(&evt)
        .args(&recs)
        .output()
        .unwrap();
    assert!(o.status.success(), "import of the killed session's recording: {}", String::from_utf8_lossy(&o.stderr));

    // Session 2 on the same journal.
    let before_restart = mock.requests().len();
    let market = serve_at(&ds);
    let cfg2 = write_config(&market, "two.toml");
    let out2 = dir.path().join("out2");
    let child = spawn_run(&cfg2, &out2);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(2_000) {
        trade_resting(&mock, &instruments);
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -INT");
    let (status, stderr) = output(child);
    market.stop();
    assert!(status.success(), "restart failed: {stderr}");
    assert!(stderr.contains("journal read"), "{stderr}");
    if orphan_lots > 0 {
        assert!(stderr.contains("fills found at the venue that no report carried"), "orphans {orphans}: {stderr}");
    }
    for inst in &instruments {
        let line = format!("reconcile {} at start:", inst.symbol);
        let l = stderr.lines().find(|l| l.contains(&line)).unwrap_or_else(|| panic!("no `{line}`: {stderr}"));
        // A structured event: the verdict in the message and as the `ok` field.
        assert!(l.contains("INFO statarb::reconcile") && l.contains(": match ") && l.ends_with(" ok=true"), "{l}");
    }
    assert!(!stderr.contains("MISMATCH"), "{stderr}");

    // Before its first order, the restarted engine asked the venue about what it had.
    let reqs = mock.requests()[before_restart..].to_vec();
    let first_order = reqs.iter().position(|r| r.starts_with("POST /api/v3/order")).expect("session 2 placed orders");
    let last_account = reqs[..first_order].iter().rposition(|r| r.starts_with("GET /api/v3/account"));
    let open_orders = reqs[..first_order].iter().position(|r| r.starts_with("GET /api/v3/openOrders"));
    assert!(last_account.is_some() && open_orders.is_some(), "no reconciliation before the first order: {reqs:?}");

    // Everything is closed out, and the carried positions are the venue's balances.
    for inst in &instruments {
        assert!(mock.open_orders(&inst.symbol).is_empty(), "{} orders left open", inst.symbol);
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("summary.json")).unwrap()).unwrap();
    for (inst, asset, start) in [(&instruments[0], "ETH", 100.0), (&instruments[1], "BTC", 10.0)] {
        let pos: f64 = summary["positions"][&inst.symbol].as_str().unwrap().parse().unwrap();
        let leg = summary["legs"].as_array().unwrap().iter().find(|l| l["symbol"] == inst.symbol.as_str()).unwrap();
        let fees_base = leg["fees_base"].as_f64().unwrap();
        let (free, locked) = mock.balance(asset);
        assert_eq!(locked, 0.0, "{asset} still locked");
        assert!(
            (free - start - (pos - fees_base)).abs() < inst.lot_f64() / 2.0,
            "{asset}: balance {free} from {start}, carried position {pos}, base fees {fees_base}: {stderr}"
        );
    }
    assert!(summary["fills"].as_u64().unwrap() > 0, "{summary}");
    mock.stop();
}
