//! `statarb fit`: the Kalman noise parameters by maximum likelihood on the pair as the
//! `Core` samples it from the data.

use std::path::PathBuf;

use anyhow::{Context, Result};
use statarb::backtest::window::TimeWindow;
use statarb::backtest::EventSource;
use statarb::config::Config;
use statarb::core::{Commands, Core, LEG_X, LEG_Y};
use statarb::signal::fit::{fit, FitOptions, FitResult, DEFAULT_BURN};

use super::data::{load_data, DataArgs};
use super::signals::Outputs;

/// Arguments of `statarb fit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    input: DataArgs,
    /// Samples filtered but left out of the likelihood (default: the config's
    /// pairs.warmup, at least 10).
    #[arg(long)]
    burn: Option<usize>,
    /// Estimate the spread half-life too (else held at kalman.spread_halflife).
    #[arg(long)]
    fit_halflife: bool,
}

/// Runs `statarb fit`.
pub fn run(args: Args) -> Result<()> {
    let Args { input: DataArgs { config, data, seed, events, window }, burn, fit_halflife } = args;
    let cfg = super::load_config(config.as_deref())?;
    fit_data(&cfg, &data, seed, events, window.window()?, burn, fit_halflife)
}

/// `statarb fit`: the data through a `Core` built from `cfg` (no venue: its orders
/// are dropped), taking `(mid x, mid y)` whenever the Core fed its filter (an update
/// accepted or skipped), then the fit from `cfg.kalman`.
fn fit_data(
    cfg: &Config,
    data: &[PathBuf],
    seed: u64,
    events: usize,
    window: TimeWindow,
    burn: Option<usize>,
    fit_halflife: bool,
) -> Result<()> {
    let _signals = Outputs::watch()?;
    let source = if data.is_empty() {
        format!("the built-in data set (seed {seed}, {events} events)")
    } else {
        data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    };
    let events = load_data(cfg, data, seed, events, window)?;
    let instruments = events.inner().instruments().to_vec();
    let mut core = Core::new(&cfg.core_params()?, &instruments, 0).with_context(|| source.clone())?;
    let mut out = Commands::new();
    let mut fed = 0;
    let mut samples = Vec::new();
    for ev in events.events() {
        out.clear();
        core.on_market(&ev, ev.local_ts, &mut out);
        let st = core.stats();
        if st.signals + st.signals_skipped > fed {
            fed = st.signals + st.signals_skipped;
            if let (Some(x), Some(y)) = (core.mid(LEG_X), core.mid(LEG_Y)) {
                samples.push((x, y));
            }
        }
    }
    eprintln!(
        "{source}: {} events, {} samples of ({}, {}) every {} ms",
        events.event_count(),
        samples.len(),
        cfg.x.symbol,
        cfg.y.symbol,
        cfg.signal.sample_ms
    );
    let burn = burn.unwrap_or((cfg.pairs.warmup as usize).max(DEFAULT_BURN));
    let r = fit(&samples, &cfg.kalman, &FitOptions { burn, fit_halflife, ..FitOptions::default() })
        .with_context(|| source.clone())?;
    print_fit(&r);
    Ok(())
}

/// The estimates, a blank line, and the `[kalman]` snippet, on stdout.
pub fn print_fit(r: &FitResult) {
    println!("{r}");
    print!("{}", r.to_toml());
}
