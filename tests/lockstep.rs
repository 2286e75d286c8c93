//! The threaded run paced in lockstep against `replay`: with zero feed, entry and
//! response latency in `[backtest]`, `statarb latency` (hot thread, rings, the
//! simulated venue on the gateway thread) gives the same fills as `statarb replay`,
//! one by one, and the same end state.
//!
//! Two checks on the built-in data: the library path of `statarb latency`
//! ([`Backtest::local_events`], [`Backtest::replay_venue`], [`live::run`] in lockstep)
//! against [`Backtest::run`], fill by fill, for the default strategy and for the busy
//! market-making one; and the two commands themselves, through their output files.

mod common;

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use statarb::backtest::queue::ProbPower;
use statarb::backtest::Backtest;
use statarb::config::Config;
use statarb::core::Core;
use statarb::event::{ExecKind, ExecReport, MarketEvent, OrderCmd};
use statarb::feed::gen;
use statarb::gateway::Exchange;
use statarb::live::{self, Pinning, RunOptions, SliceSource};
use statarb::report::Summary;
use statarb::types::{Instrument, Side, Ts, NS_PER_SEC};

/// Events of the built-in data set: enough for the default strategy to trade.
const EVENTS: usize = 300_000;

/// `[backtest]` with no latency anywhere.
const ZERO_LATENCY: &str = "[backtest]\nfeed_latency = { kind = \"constant\", ns = 0 }\nentry_latency = { kind = \"constant\", ns = 0 }\nresponse_latency = { kind = \"constant\", ns = 0 }\n";

/// One fill as a venue reported it: id, side, price and size in asset units, fee,
/// maker, exchange time.
type Fill = (u64, Side, f64, f64, f64, bool, Ts);

/// A venue that records the fills the one inside it reports.
struct Recording<E> {
    inner: E,
    instruments: Vec<Instrument>,
    fills: Vec<Fill>,
}

impl<E: Exchange> Recording<E> {
    fn record(&mut self, reports: &[ExecReport]) {
        for r in reports.iter().filter(|r| matches!(r.kind, ExecKind::Fill | ExecKind::PartialFill) && r.qty > 0) {
            let inst = &self.instruments[r.inst as usize];
            self.fills.push((r.id, r.side, inst.px_f64(r.px), inst.qty_f64(r.qty), r.fee, r.maker, r.exch_ts));
        }
    }
}

impl<E: Exchange> Exchange for Recording<E> {
    fn needs_market(&self) -> bool {
        self.inner.needs_market()
    }
    fn supports_replace(&self) -> bool {
        self.inner.supports_replace()
    }
    fn on_order(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>) {
        let k = out.len();
        self.inner.on_order(cmd, now, out);
        self.record(&out[k..]);
    }
    fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>) {
        let k = out.len();
        self.inner.on_market(ev, out);
        self.record(&out[k..]);
    }
}

fn config(tables: &str) -> Config {
    Config::from_toml(&format!("extends = \"default\"\n{tables}{ZERO_LATENCY}"), "<lockstep test>").unwrap()
}

/// Replays `events` with `cfg` and runs them through the threaded pipeline in
/// lockstep; asserts the same fills and end state; returns the number of fills.
fn compare(cfg: &Config, instruments: &[Instrument], events: &[MarketEvent]) -> usize {
    assert_eq!(cfg.backtest.queue, statarb::backtest::queue::QueueConfig::ProbPower { n: 2.0 });
    let session_id = (events[0].local_ts / NS_PER_SEC) as u32;
    let params = cfg.core_params().unwrap();
    let bt = Backtest::new(&cfg.backtest, &params, cfg.fees).unwrap();

    let replay = bt.run(Core::new(&params, instruments, session_id).unwrap(), instruments, events);
    let replayed: Vec<Fill> = replay
        .trace
        .fills
        .iter()
        .zip(&replay.fill_timings)
        .map(|(f, t)| (t.id, f.side, f.px, f.qty, f.fee, f.maker, t.filled))
        .collect();

    // As `statarb latency --pace lockstep` runs it.
    let local = bt.local_events(events);
    let heard = local.as_deref().unwrap_or(events);
    let venue = Recording {
        inner: bt.replay_venue(instruments, events, ProbPower::new(2.0)),
        instruments: instruments.to_vec(),
        fills: Vec::new(),
    };
    let opts = RunOptions {
        ring_capacity: cfg.live.ring_capacity,
        pinning: Pinning::default(),
        lockstep: true,
        cancel_timeout: Duration::from_secs(10),
    };
    let core = Core::new(&cfg.core_params().unwrap(), instruments, session_id).unwrap();
    let run = live::run(core, SliceSource::new(heard), venue, &opts, &AtomicBool::new(false));

    let threaded = &run.exchange.fills;
    if let Some(k) = (0..replayed.len().max(threaded.len())).find(|&k| replayed.get(k) != threaded.get(k)) {
        panic!(
            "fill {k} of {} (replay) / {} (lockstep) differs:\n replay   {:?}\n lockstep {:?}",
            replayed.len(),
            threaded.len(),
            replayed.get(k),
            threaded.get(k)
        );
    }
    // The whole end state: positions, PnL, fees, and every counter of the Core.
    let a = serde_json::to_value(Summary::of_core(&replay.core)).unwrap();
    let b = serde_json::to_value(Summary::of_core(&run.core)).unwrap();
    assert_eq!(a, b, "the Core's end state differs");
    // And of the venue: orders accepted, rejected, cancelled, fills by cause.
    assert_eq!(replay.matching, run.exchange.inner.stats(), "the matching engine's counters differ");
    replayed.len()
}

#[test]
fn lockstep_latency_fills_as_replay_with_zero_latency() {
    let ds = gen::generate(&gen::GenParams { events: EVENTS, ..gen::GenParams::default() });
    let fills = compare(&config(""), &ds.instruments, &ds.events);
    assert!(fills >= 10, "the default strategy must trade in the test: {fills} fills");
    let mm = compare(&config(&common::market_make_tables()), &ds.instruments, &ds.events);
    assert!(mm >= 500, "market making fills often: {mm} fills");
}

#[test]
fn the_commands_agree() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zero.toml");
    std::fs::write(&cfg, format!("extends = \"default\"\n{ZERO_LATENCY}")).unwrap();
    let events = EVENTS.to_string();
    let run = |args: &[&str], out: &str| -> serde_json::Value {
        let out = dir.path().join(out);
        let o = Command::new(env!("CARGO_BIN_EXE_statarb"))
            .args(args)
            .args(["--config", cfg.to_str().unwrap(), "--events", &events, "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let file = if args[0] == "replay" { "report.json" } else { "summary.json" };
        serde_json::from_str(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap()
    };
    let latency = run(&["latency", "--pace", "lockstep"], "latency");
    let replay = run(&["replay"], "replay");
    let summary = &replay["summary"];
    assert!(latency["fills"].as_u64().unwrap() >= 10, "{latency}");
    for key in ["events", "orders", "cancels", "fills", "pnl", "pnl_gross", "fees", "positions", "legs", "core"] {
        assert_eq!(latency[key], summary[key], "{key}: latency vs replay");
    }
    assert_eq!(latency["venue"], replay["matching"], "the venue's counters: latency vs replay");
}
