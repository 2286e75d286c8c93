//! `statarb latency`: tick-to-quote latency of the live thread model (pinned hot
//! thread, SPSC rings, gateway thread, `replay`'s matching engine as the venue) over a
//! data set, the built-in one by default.
//!
//! `--wire` measures from the wire instead: the replay server on loopback sends the
//! built-in data at `--rate` messages per second, each message preceded by its send
//! stamp (same host, same TSC), and the engine runs against it as `statarb run` does,
//! with the configured venue, for `--seconds`. The stage table then starts at the
//! server's send (`network`, `wire_to_quote`, `wire_to_order`).
//! `--compare-blocking` runs the same workload again with the feed blocking in epoll
//! (`feed.busy_poll = false`) and prints both side by side with their ratio.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use statarb::backtest::queue::{ProbLog, ProbPower, QueueConfig, QueueModel, RiskAverse};
use statarb::backtest::Backtest;
use statarb::core::Core;
use statarb::event::MarketEvent;
use statarb::feed::gen;
use statarb::feed::snapshot::wall_ns;
use statarb::feed::source::BinanceFeed;
use statarb::live::{self, Pacing, RunOptions, SliceSource};
use statarb::metrics::{write_hgrm, write_percentile_plot, write_stage_table, Latencies, Stage};
use statarb::report::Summary;
use statarb::serve;
use statarb::session::{run_live, LiveResult};
use statarb::types::{Instrument, NS_PER_SEC};

/// Arguments of `statarb latency`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (default: the built-in config/default.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Event files (from `gen` or `import`), one or more legs, merged by local time;
    /// default: generate the built-in set.
    #[arg(long, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Seed of the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().seed)]
    seed: u64,
    /// Events in the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().events)]
    events: usize,
    /// Directory for summary.json and the latency histograms (.hgrm).
    #[arg(long)]
    out: Option<PathBuf>,
    /// `lockstep` (the hot thread waits for the gateway before each event: the same
    /// fills every run, and with zero feed latency those of `replay` with zero
    /// latency), `max` (no waiting), or a speed factor such as `1000x`.
    #[arg(long, default_value = "lockstep")]
    pace: Pacing,
    /// Measure from the wire: the replay server on loopback at `--rate`, send-stamped.
    #[arg(long, conflicts_with_all = ["data", "pace"])]
    wire: bool,
    /// Messages per second the server sends with `--wire`.
    #[arg(long, default_value_t = 10_000.0, requires = "wire")]
    rate: f64,
    /// How long each `--wire` run is paced and measured, seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0, requires = "wire")]
    seconds: f64,
    /// With `--wire`: messages sent first as fast as the engine reads, unstamped, so
    /// that the signal is warm and quoting when the paced, stamped part begins.
    #[arg(long, default_value_t = 300_000, requires = "wire")]
    warmup_messages: u64,
    /// With `--wire`: run again with the feed blocking in epoll, and compare.
    #[arg(long, requires = "wire")]
    compare_blocking: bool,
}

/// Runs `statarb latency`.
pub fn run(args: Args) -> Result<()> {
    let Args { config, data, seed, events, out, pace, wire, rate, seconds, warmup_messages, compare_blocking } = args;
    if wire {
        let w = WireRun { rate, seconds, warmup_messages, compare_blocking };
        return wire_latency(config.as_deref(), seed, events, w, out.as_deref());
    }
    latency(config.as_deref(), &data, seed, events, pace, out.as_deref())
}

/// The settings of `--wire`.
#[derive(Debug, Clone, Copy)]
struct WireRun {
    rate: f64,
    seconds: f64,
    warmup_messages: u64,
    compare_blocking: bool,
}

/// One `--wire` pass: what it measured.
struct WirePass {
    name: &'static str,
    latencies: Latencies,
    messages: u64,
    elapsed: Duration,
}

/// `statarb latency --wire`: see the module docs.
fn wire_latency(config: Option<&Path>, seed: u64, events: usize, w: WireRun, out: Option<&Path>) -> Result<()> {
    if !(w.rate.is_finite() && w.rate > 0.0) {
        bail!("--rate {} must be > 0 messages per second", w.rate);
    }
    if !(w.seconds.is_finite() && w.seconds > 0.0 && w.seconds <= 86_400.0) {
        bail!("--seconds {} must be in (0, 86400]", w.seconds);
    }
    let sigint = super::signals::stop_flag()?;
    let base = super::load_config(config)?;
    let mut logging = base.monitor.clone();
    logging.log_level = statarb::config::LogLevel::Warn;
    super::init_logging(&logging)?;
    let ds = Arc::new(gen::generate(&super::gen_params(seed, events)?));
    let mut passes = Vec::new();
    let modes: &[(&'static str, bool)] =
        if w.compare_blocking { &[("busy-poll", true), ("blocking epoll", false)] } else { &[("busy-poll", true)] };
    for &(name, busy_poll) in modes {
        let scfg = serve::ServeConfig {
            pacing: serve::Pacing::Rate(w.rate),
            wire_stamps: true,
            warmup_messages: w.warmup_messages,
            ..Default::default()
        };
        let server = serve::spawn(scfg, serve::Source::Generated(Arc::clone(&ds)))?;
        let ws = server.ws_addr();
        let mut cfg = base.clone();
        cfg.feed = Some(toml::from_str(&format!(
            "venue = \"binance\"\nws_url = \"ws://{ws}/stream\"\nrest_url = \"http://{ws}\"\nend_on_close = true\n\
             clock = \"exchange\"\nwire_stamps = true\nbusy_poll = {busy_poll}\n"
        ))?);
        cfg.monitor.status_secs = 0;
        cfg.monitor.metrics_addr = None;
        let instruments = cfg.instruments();
        let session_id = (wall_ns() / NS_PER_SEC) as u32;
        let core = Core::new(&cfg.core_params()?, &instruments, session_id)?;
        let budget = Arc::new(cfg.gateway.binance.ip_budget());
        let feed_cfg = cfg.feed.as_ref().expect("set above");
        let feed = BinanceFeed::with_budget(feed_cfg, &instruments, None, Arc::clone(&budget))?;
        // The pass ends `seconds` after the warm-up (the server's message count says when
        // it is over), at the end of the data, or at SIGINT.
        let stop = AtomicBool::new(false);
        eprintln!(
            "wire ({name}): {} msgs/s over ws://{ws} for {} s after {} unpaced",
            w.rate, w.seconds, w.warmup_messages
        );
        let opts = cfg.run_options(false);
        let mut note = |line: &str| tracing::info!(target: "statarb::session", "{line}");
        let (result, paced_since) = std::thread::scope(|s| {
            let timer = s.spawn(|| {
                let limit = Duration::from_secs_f64(w.seconds);
                let mut paced_since: Option<Instant> = None;
                while !sigint.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    if paced_since.is_none() && server.stats().messages >= w.warmup_messages {
                        paced_since = Some(Instant::now());
                    }
                    if paced_since.is_some_and(|t| t.elapsed() >= limit) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                stop.store(true, Ordering::Relaxed);
                paced_since
            });
            let result = run_live(&cfg, core, feed, session_id, &opts, &stop, &budget, &mut note);
            let ended = Instant::now();
            stop.store(true, Ordering::Relaxed);
            (result, timer.join().expect("timer thread").map(|t| ended.saturating_duration_since(t)))
        });
        let paced = paced_since.unwrap_or_default();
        let sent = server.stop().messages.saturating_sub(w.warmup_messages);
        let LiveResult { latencies, .. } = result?;
        println!(
            "\n{name}: {sent} paced messages in {:.2} s ({:.0} msgs/s sent) after {} unpaced",
            paced.as_secs_f64(),
            sent as f64 / paced.as_secs_f64().max(1e-9),
            w.warmup_messages
        );
        println!("stages (clock: {}):", statarb::clock::source_name());
        write_stage_table(&latencies, std::io::stdout().lock())?;
        passes.push(WirePass { name, latencies, messages: sent, elapsed: paced });
        if sigint.load(Ordering::Relaxed) {
            break;
        }
    }
    if let [busy, blocking] = &passes[..] {
        println!("\n{:<14} {:>28} {:>28} {:>18}", "p50/p99/p99.9", busy.name, blocking.name, "ratio (p50, p99)");
        for stage in [Stage::Network, Stage::WireToQuote, Stage::TickToQuote, Stage::WireToOrder] {
            let (a, b) = (busy.latencies.get(stage), blocking.latencies.get(stage));
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let q = |h: &hdrhistogram::Histogram<u64>| {
                format!("{} / {} / {}", h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.value_at_quantile(0.999))
            };
            let r = |p: f64| b.value_at_quantile(p) as f64 / a.value_at_quantile(p).max(1) as f64;
            println!("{:<14} {:>28} {:>28} {:>8.2}x {:>8.2}x", stage.name(), q(a), q(b), r(0.5), r(0.99));
        }
        let (ra, rb) = (
            busy.messages as f64 / busy.elapsed.as_secs_f64(),
            blocking.messages as f64 / blocking.elapsed.as_secs_f64(),
        );
        println!("(ns; messages/s sent: {ra:.0} and {rb:.0})");
    }
    if let Some(dir) = out {
        for p in &passes {
            let sub = dir.join(p.name.replace(' ', "_"));
            std::fs::create_dir_all(&sub)?;
            for stage in Stage::ALL.into_iter().filter(|s| !p.latencies.get(*s).is_empty()) {
                let f = std::fs::File::create(sub.join(format!("{}.hgrm", stage.name())))?;
                write_hgrm(p.latencies.get(stage), std::io::BufWriter::new(f))?;
            }
            let title = format!("latency by stage from the wire, {} msgs/s, {}", w.rate, p.name);
            write_percentile_plot(&p.latencies, &sub.join("stages.svg"), &title)?;
        }
        eprintln!("wrote {}", dir.display());
    }
    Ok(())
}

fn latency(
    config: Option<&Path>,
    data: &[PathBuf],
    seed: u64,
    events: usize,
    pace: Pacing,
    out: Option<&Path>,
) -> Result<()> {
    let stop = super::signals::stop_flag()?;
    let cfg = super::load_config(config)?;
    let (instruments, events) = super::data::load_one(data, seed, events)?;
    let session_id = (events[0].local_ts / NS_PER_SEC) as u32;
    let params = cfg.core_params()?;
    let core = Core::new(&params, &instruments, session_id)?;
    let bt = Backtest::new(&cfg.backtest, &params, cfg.fees)?;
    let opts = cfg.run_options(pace == Pacing::Lockstep);
    // The queue model is picked here, once; each is its own monomorphised run.
    let (summary, latencies) = match cfg.backtest.queue {
        QueueConfig::RiskAverse {} => latency_run(&bt, core, &instruments, &events, RiskAverse, pace, &opts, &stop),
        QueueConfig::ProbPower { n } => {
            latency_run(&bt, core, &instruments, &events, ProbPower::new(n), pace, &opts, &stop)
        }
        QueueConfig::ProbLog {} => latency_run(&bt, core, &instruments, &events, ProbLog, pace, &opts, &stop),
    };
    super::write_run_report(&summary, &latencies, out)
}

/// The threaded run of `statarb latency` with queue model `queue`: the hot thread reads
/// `events` at the local times `replay` gives them, the venue on the gateway thread
/// ([`Backtest::replay_venue`]) reads them at exchange time; `stop` (SIGINT) ends it.
#[allow(clippy::too_many_arguments)]
fn latency_run<Q: QueueModel>(
    bt: &Backtest,
    core: Core,
    instruments: &[Instrument],
    events: &[MarketEvent],
    queue: Q,
    pace: Pacing,
    opts: &RunOptions,
    stop: &AtomicBool,
) -> (Summary, Latencies) {
    let local = bt.local_events(events);
    let heard = local.as_deref().unwrap_or(events);
    let venue = bt.replay_venue(instruments, events, queue);
    let source = match pace {
        Pacing::Speed(x) => SliceSource::paced(heard, x),
        Pacing::Max | Pacing::Lockstep => SliceSource::new(heard),
    };
    let outcome = live::run(core, source, venue, opts, stop);
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    let mut summary = Summary::of_run(&outcome);
    summary.venue = Some(outcome.exchange.stats());
    (summary, outcome.latencies)
}
