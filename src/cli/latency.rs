//! `statarb latency`: tick-to-quote latency of the live thread model (pinned hot
//! thread, SPSC rings, gateway thread, `replay`'s matching engine as the venue) over a
//! data set, the built-in one by default.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use statarb::backtest::queue::{ProbLog, ProbPower, QueueConfig, QueueModel, RiskAverse};
use statarb::backtest::Backtest;
use statarb::core::Core;
use statarb::event::MarketEvent;
use statarb::feed::gen;
use statarb::live::{self, Pacing, RunOptions, SliceSource};
use statarb::metrics::Latencies;
use statarb::report::Summary;
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
}

/// Runs `statarb latency`.
pub fn run(args: Args) -> Result<()> {
    let Args { config, data, seed, events, out, pace } = args;
    latency(config.as_deref(), &data, seed, events, pace, out.as_deref())
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
