//! End-to-end tests of the backtester on the built-in data set: determinism, the
//! pinned digest, latency ordering of every fill, fee arithmetic, the trace, and no
//! allocation per event.

mod common;

use statarb::backtest::latency::{FeedLatencyConfig, Latency, LatencyConfig, Series};
use statarb::backtest::queue::QueueConfig;
use statarb::backtest::{Backtest, BacktestConfig, Outcome};
use statarb::config::Config;
use statarb::core::{Core, LEG_X, LEG_Y};
use statarb::event::MarketEvent;
use statarb::feed::gen;
use statarb::types::NS_PER_MS;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

/// Events of the data set used here: about 13 minutes of market time.
const EVENTS: usize = 200_000;

/// The pinned digest of the market-making configuration (`config/market_make.toml`:
/// both legs quote both sides, so the machinery sees thousands of orders) over the
/// built-in data set with `EVENTS` events (`GenParams { events: 200_000, ..default }`,
/// `BacktestConfig::default()`, session id 1).
///
/// Any change in behaviour of the generator, the Core or the backtester changes it. If
/// the change is intended, run `cargo test --release --test backtest -- --nocapture
/// pinned_digest`, check that the new fills make sense, and paste the printed digest
/// here in the same commit as the change, saying why it moved.
const PINNED_DIGEST: &str = "414d4d959a84e548";

fn data() -> gen::Dataset {
    gen::generate(&gen::GenParams { events: EVENTS, ..gen::GenParams::default() })
}

/// The built-in configuration over the whole built-in data set (what `statarb
/// replay` runs), session id 1: the demonstration of the strategy. Same procedure as
/// [`PINNED_DIGEST`].
const PINNED_DEFAULT_DIGEST: &str = "2731d07f32858b96";

fn run(ds: &gen::Dataset, bt: &BacktestConfig) -> Outcome {
    let cfg = common::market_make_config();
    let params = cfg.core_params().expect("core params");
    let core = Core::new(&params, &ds.instruments, 1).expect("core");
    Backtest::new(bt, &params, cfg.fees).expect("valid backtest config").run(core, &ds.instruments, &ds.events)
}

#[test]
fn pinned_digest() {
    let ds = data();
    let out = run(&ds, &BacktestConfig::default());
    println!(
        "digest {} | fills {} (maker {}), orders {}, rejects {}, cancels {}, net pnl {:.4}",
        out.digest_hex(),
        out.trace.fills.len(),
        out.trace.fills.iter().filter(|f| f.maker).count(),
        out.trace.orders,
        out.trace.rejects,
        out.trace.cancels,
        out.core.net_pnl(),
    );
    println!("{:?}", out.matching);
    println!("{:?}", out.replay);
    assert!(out.trace.fills.len() > 10, "the market-making run trades");
    assert_eq!(out.digest_hex(), PINNED_DIGEST, "behaviour changed: see PINNED_DIGEST's docs");
}

/// `statarb replay` with no arguments: the built-in strategy on the built-in data earns
/// what its signal finds, after fees.
#[test]
fn pinned_default_digest_and_the_default_run_earns() {
    let cfg = Config::builtin();
    let ds = gen::generate(&gen::GenParams::default());
    let params = cfg.core_params().expect("core params");
    let core = Core::new(&params, &ds.instruments, 1).expect("core");
    let out = Backtest::new(&cfg.backtest, &params, cfg.fees).expect("valid").run(core, &ds.instruments, &ds.events);
    let r = statarb::backtest::stats::Report::from_trace(&out.trace);
    println!(
        "digest {} | entries {} | fills {} | gross {:?} fees {:?} net {:?}",
        out.digest_hex(),
        out.core.entries(),
        out.trace.fills.len(),
        r.pnl_gross,
        r.fees,
        r.pnl_net
    );
    assert!(out.core.entries() >= 5, "{} entries", out.core.entries());
    assert!(r.pnl_gross.is_some_and(|p| p > 0.0), "gross {:?}", r.pnl_gross);
    assert!(r.pnl_net.is_some_and(|p| p > 0.0), "net {:?}", r.pnl_net);
    assert_eq!(out.digest_hex(), PINNED_DEFAULT_DIGEST, "behaviour changed: see PINNED_DIGEST's docs");
}

#[test]
fn two_runs_are_identical() {
    let ds = data();
    // A random latency model too: its draws are seeded.
    let bt = BacktestConfig {
        entry_latency: LatencyConfig::Lognormal { median_ns: 800_000, sigma: 0.6 },
        feed_latency: FeedLatencyConfig::Lognormal { median_ns: 1_500_000, sigma: 0.4 },
        ..BacktestConfig::default()
    };
    let a = run(&ds, &bt);
    let b = run(&ds, &bt);
    assert!(!a.trace.fills.is_empty());
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.trace.fills, b.trace.fills);
    assert_eq!(a.fill_timings, b.fill_timings);
    assert_eq!(a.matching, b.matching);
    assert_eq!(a.replay, b.replay);
    assert_eq!(a.trace.samples.len(), b.trace.samples.len());
    // The same configured backtest run twice: its random streams restart each run.
    let cfg = common::market_make_config();
    let params = cfg.core_params().unwrap();
    let once = Backtest::new(&bt, &params, cfg.fees).unwrap();
    let digests: Vec<u64> = (0..2)
        .map(|_| once.run(Core::new(&params, &ds.instruments, 1).unwrap(), &ds.instruments, &ds.events).digest)
        .collect();
    assert_eq!(digests, vec![a.digest, a.digest]);
    // Another seed draws other latencies: another history.
    let c = run(&ds, &BacktestConfig { seed: 2, ..bt });
    assert_ne!(a.digest, c.digest);
}

#[test]
fn fills_never_arrive_before_the_order_and_its_latencies() {
    let ds = data();
    let (entry, response) = (3 * NS_PER_MS, 2 * NS_PER_MS);
    let bt = BacktestConfig {
        entry_latency: LatencyConfig::Constant { ns: entry },
        response_latency: LatencyConfig::Constant { ns: response },
        ..BacktestConfig::default()
    };
    let out = run(&ds, &bt);
    assert!(out.fill_timings.len() > 10);
    for t in &out.fill_timings {
        assert!(t.arrived >= t.sent + entry, "{t:?}");
        assert!(t.filled >= t.arrived, "{t:?}");
        assert!(t.received >= t.filled + response, "{t:?}");
        assert!(t.received >= t.sent + entry + response, "{t:?}");
    }
    for (f, t) in out.trace.fills.iter().zip(&out.fill_timings) {
        assert_eq!(f.ts, t.received);
        if f.maker {
            assert_eq!(f.queue_wait_ns, t.filled - t.arrived);
        }
    }
    // Fills reach the Core in time order.
    assert!(out.trace.fills.windows(2).all(|w| w[0].ts <= w[1].ts));
    // A longer latency changes the history.
    assert_ne!(out.digest, run(&ds, &BacktestConfig::default()).digest);
}

#[test]
fn fees_are_bps_of_notional_and_reach_the_portfolio() {
    let ds = data();
    let out = run(&ds, &BacktestConfig::default());
    let fees = common::market_make_config().fees;
    let mut total = 0.0;
    for f in &out.trace.fills {
        let bps = if f.maker { fees.maker_bps } else { fees.taker_bps };
        let want = f.px * f.qty * bps * 1e-4;
        assert!((f.fee - want).abs() <= 1e-12 * want.abs().max(1.0), "{f:?}: want {want}");
        total += f.fee;
    }
    let p = out.core.portfolio();
    let booked = p.position(LEG_Y).fees + p.position(LEG_X).fees;
    assert!((total - booked).abs() < 1e-9, "{total} vs {booked}");
    // The last sample carries the same fees and a consistent net PnL.
    let last = out.trace.samples.last().expect("samples");
    assert!((last.fees - booked).abs() < 1e-9);
    assert!((last.net_pnl - (last.gross_pnl - last.fees)).abs() < 1e-9);
    // Position in the trace matches the portfolio.
    let y = out.core.instrument(LEG_Y).qty_f64(p.position(LEG_Y).qty);
    assert!((last.position[0] - y).abs() < 1e-12);
}

#[test]
fn trace_samples_on_the_grid_and_everything_is_cancelled_at_the_end() {
    let ds = data();
    let out = run(&ds, &BacktestConfig::default());
    let s = &out.trace.samples;
    let step = out.trace.sample_interval_ns;
    assert_eq!(step, 1_000 * NS_PER_MS);
    // All but the final sample sit on the grid, one per interval (no gap in this data).
    for w in s[..s.len() - 1].windows(2) {
        assert_eq!(w[1].ts - w[0].ts, step);
    }
    assert_eq!(s[0].ts % step, 0);
    let span = ds.events.last().unwrap().local_ts - ds.events[0].local_ts;
    assert!((s.len() as i64 - span / step).abs() <= 2, "{} samples over {span} ns", s.len());
    assert_eq!(out.trace.symbols, ["ETHUSDT".to_string(), "BTCUSDT".to_string()]);
    assert_eq!(out.core.open_orders(), 0, "shutdown cancelled everything and the drain delivered it");
    assert_eq!(out.replay.events, EVENTS as u64);
    assert!(out.replay.end_ts >= out.replay.last_ts);
}

#[test]
fn every_queue_model_runs_deterministically() {
    let ds = data();
    for queue in [QueueConfig::RiskAverse {}, QueueConfig::ProbPower { n: 3.0 }, QueueConfig::ProbLog {}] {
        let bt = BacktestConfig { queue, ..BacktestConfig::default() };
        let (a, b) = (run(&ds, &bt), run(&ds, &bt));
        println!("{queue:?}: digest {} {:?}", a.digest_hex(), a.matching);
        assert_eq!(a.digest, b.digest);
        assert!(a.matching.fills > 0);
        assert!(a.trace.fills.iter().all(|f| f.queue_wait_ns >= 0 && f.qty > 0.0));
    }
}

#[test]
fn progress_is_reported() {
    let ds = data();
    let cfg = Config::builtin();
    let params = cfg.core_params().unwrap();
    let core = Core::new(&params, &ds.instruments, 1).unwrap();
    let mut calls = Vec::new();
    let bt = Backtest::new(&BacktestConfig::default(), &params, cfg.fees).unwrap();
    bt.run_with_progress(core, &ds.instruments, &ds.events, |done, total| {
        calls.push((done, total));
        std::ops::ControlFlow::Continue(())
    });
    assert_eq!(calls.len(), EVENTS / 65_536 + 1);
    assert_eq!(calls.last(), Some(&(EVENTS, EVENTS)));
}

#[test]
fn empty_and_foreign_data_do_not_panic() {
    let cfg = common::market_make_config();
    let ds = data();
    let params = cfg.core_params().unwrap();
    let bt = Backtest::new(&BacktestConfig::default(), &params, cfg.fees).unwrap();
    let core = Core::new(&params, &ds.instruments, 1).unwrap();
    let out = bt.run(core, &ds.instruments, &[]);
    assert!(out.trace.fills.is_empty() && out.trace.samples.is_empty());
    // Events for an instrument outside the table, out of time order.
    let mut evs: Vec<MarketEvent> = ds.events[..1_000].to_vec();
    evs[10].inst = 99;
    evs.swap(20, 500);
    // Clocks gone wrong: a venue stamp far in the future, then the end of time.
    evs[30].exch_ts = i64::MAX;
    evs[998].local_ts = i64::MAX;
    evs[999].exch_ts = i64::MIN;
    let core = Core::new(&params, &ds.instruments, 1).unwrap();
    let out = bt.run(core, &ds.instruments, &evs);
    assert_eq!(out.matching.unknown_instrument, 1);
    assert!(out.replay.local_ts_adjusted > 0);
    assert!(out.replay.exch_ts_adjusted > 0);
    assert!(out.trace.samples.len() <= 2 * 1_000 + 10, "a huge gap gets two samples, not billions");
}

#[test]
fn recorded_entry_latency_series_is_applied() {
    // 0.5 ms, then a 20 ms spike from 300 s to 600 s into the data set.
    let path = "tests/data/latency_series.csv";
    let ds = data();
    let bt = BacktestConfig { entry_latency: LatencyConfig::Series { path: path.into() }, ..BacktestConfig::default() };
    let out = run(&ds, &bt);
    let mut series = Series::load(std::path::Path::new(path)).unwrap();
    let mut spiked = 0;
    for t in &out.fill_timings {
        let lat = series.sample(t.sent);
        assert!(t.arrived >= t.sent + lat, "{t:?}: latency {lat}");
        spiked += (lat == 20 * NS_PER_MS) as usize;
    }
    assert!(spiked > 0, "some fills were sent during the spike");
    // Same orders, other arrival times than with the default constant 1 ms.
    let base = run(&ds, &BacktestConfig::default());
    assert!(out.fill_timings.iter().zip(&base.fill_timings).any(|(a, b)| a.id == b.id && a.arrived != b.arrived));
    assert_ne!(out.digest, base.digest, "the digest covers the engine's counters");
    let missing = BacktestConfig { entry_latency: LatencyConfig::Series { path: "tests/data/nope.csv".into() }, ..bt };
    let cfg = Config::builtin();
    let err = Backtest::new(&missing, &cfg.core_params().unwrap(), cfg.fees).unwrap_err().to_string();
    assert!(err.contains("entry_latency") && err.contains("nope.csv"), "{err}");
}

#[test]
fn no_allocation_per_event() {
    let ds = data();
    let cfg = common::market_make_config();
    let params = cfg.core_params().unwrap();
    let bt = Backtest::new(&BacktestConfig::default(), &params, cfg.fees).unwrap();
    let run_counted = |events: &[MarketEvent]| {
        let core = Core::new(&params, &ds.instruments, 1).unwrap();
        common::counted(|| bt.run(core, &ds.instruments, events)).1
    };
    let half = run_counted(&ds.events[..EVENTS / 2]);
    let full = run_counted(&ds.events);
    println!("allocations: {half} for {} events, {full} for {EVENTS}", EVENTS / 2);
    // Set-up, and the amortised growth of the fill and sample vectors: a few dozen,
    // not one per event or per order.
    assert!(full < 200, "{full} allocations");
    assert!(full - half.min(full) < 50, "{half} -> {full}");
}

#[test]
fn trades_and_signal_csvs_match_the_core_and_the_attribution_adds_up() {
    use statarb::backtest::stats::{round_trips, Report, TRADES_HEADER};
    use statarb::backtest::trace::{write_csv, SIGNAL_HEADER};
    let ds = data();
    let out = run(&ds, &BacktestConfig::default());
    let trace = &out.trace;
    let dir = tempfile::tempdir().unwrap();
    let trips = round_trips(trace);
    write_csv(&dir.path().join("trades.csv"), &TRADES_HEADER, &trips).unwrap();
    write_csv(&dir.path().join("signal.csv"), &SIGNAL_HEADER, &trace.signals).unwrap();
    let read = |name: &str| -> (String, usize) {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let mut lines = text.lines();
        (lines.next().unwrap_or_default().to_string(), lines.count())
    };
    let (header, rows) = read("signal.csv");
    assert_eq!(header, "ts_ns,mid_y,mid_x,beta,alpha,e,q,z,state,target_y,target_x");
    assert_eq!(rows as u64, out.core.stats().signals, "one row per accepted Kalman update");
    let (header, rows) = read("trades.csv");
    assert!(
        header.starts_with("side,entry_time,entry_ns,exit_time,exit_ns,exit_reason,entry_z,entry_beta"),
        "{header}"
    );
    assert!(out.core.entries() > 0, "the built-in run enters the spread");
    assert_eq!(rows as u64, out.core.entries(), "one row per entry");
    for t in &trips {
        assert!(t.entry_ns <= t.exit_ns && t.exit_ns <= t.settle_ns, "{t:?}");
        assert!(t.gross_pnl.is_finite() && t.shortfall_y.is_finite() && t.shortfall_x.is_finite(), "{t:?}");
    }

    // Without a kill, the targets change only at signals: the paper portfolio rebuilt
    // from signal.csv alone gives the report's signal PnL.
    let r = Report::from_trace(trace);
    assert!(!out.core.risk().killed());
    let end = trace.end.mid;
    let (mut prev, mut paper) = ([0.0; 2], 0.0);
    for s in &trace.signals {
        let (t, m) = ([s.target_y, s.target_x], [s.mid_y, s.mid_x]);
        for l in 0..2 {
            paper += (t[l] - prev[l]) * (end[l] - m[l]);
        }
        prev = t;
    }
    let signal = r.pnl_signal.expect("finite signal PnL");
    assert!((signal - paper).abs() < 1e-9, "{signal} vs {paper}");
    let (gross, exec) = (r.pnl_gross.unwrap(), r.pnl_execution.unwrap());
    assert!((signal + exec - gross).abs() < 1e-9);
    assert!((r.execution_fill_edge + r.execution_tracking.unwrap() - exec).abs() < 1e-9);
    assert_eq!(r.signal_entries, out.core.entries());
    println!("{r}");

    // The hedge error, updated at every Core call, bounds the samples' and its time
    // average is close to theirs (the samples are equally spaced).
    let h: Vec<f64> = trace
        .samples
        .iter()
        .filter(|s| s.mid.iter().all(|m| m.is_finite()))
        .map(|s| (s.position[0] * s.mid[0] + s.position[1] * s.mid[1]).abs())
        .collect();
    let sample_max = h.iter().fold(0.0f64, |a, &b| a.max(b));
    let sample_mean = h.iter().sum::<f64>() / h.len() as f64;
    let mean = r.hedge_error_mean.unwrap();
    assert!(sample_max <= r.hedge_error_max + 1e-9, "{sample_max} > {}", r.hedge_error_max);
    assert!((mean - sample_mean).abs() <= 0.1 * sample_mean + 1.0, "{mean} vs {sample_mean}");
}
