//! The data of a backtest, as `replay`, `sweep` and `fit` take it: the built-in set
//! (generated from a seed), or files (event files read directly, anything else through
//! the importers with the config's legs), merged by time.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use statarb::config::Config;
use statarb::event::MarketEvent;
use statarb::feed::{evfile, gen};
use statarb::types::Instrument;

/// The configuration and the data of `replay` and `fit`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Configuration file (default: the built-in config/default.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data files: event files (from `gen` or `import`), or anything `import` reads
    /// (converted on the fly); several are merged by time. Default: the built-in set.
    #[arg(long, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Seed of the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().seed, conflicts_with = "data")]
    pub seed: u64,
    /// Events in the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().events, conflicts_with = "data")]
    pub events: usize,
}

/// The events of `data` (or of the built-in set of `seed` with `events` events when
/// `data` is empty) and their instruments.
pub fn load_data(
    cfg: &Config,
    data: &[PathBuf],
    seed: u64,
    events: usize,
) -> Result<(Vec<Instrument>, Vec<MarketEvent>)> {
    load_data_with_truth(cfg, data, seed, events).map(|(i, e, _)| (i, e))
}

/// [`load_data`], with the generator's truth when the data is the built-in set.
pub fn load_data_with_truth(
    cfg: &Config,
    data: &[PathBuf],
    seed: u64,
    events: usize,
) -> Result<(Vec<Instrument>, Vec<MarketEvent>, Option<gen::Truth>)> {
    if data.is_empty() {
        let t = std::time::Instant::now();
        let (ds, truth) = gen::generate_with_truth(&super::gen_params(seed, events)?);
        if ds.events.is_empty() {
            bail!("--events {events}: the built-in data set needs at least one event");
        }
        eprintln!("generated the built-in data set: {} events, seed {seed}, in {:.2?}", ds.events.len(), t.elapsed());
        return Ok((ds.instruments, ds.events, Some(truth)));
    }
    let mut sources = Vec::with_capacity(data.len());
    let mut others = Vec::new();
    for p in data {
        let mut magic = [0u8; 8];
        let is_evfile = File::open(p)
            .and_then(|mut f| io::Read::read_exact(&mut f, &mut magic))
            .map(|()| magic == evfile::MAGIC)
            .unwrap_or(false);
        if is_evfile {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            sources.push(evfile::read_file(f).with_context(|| format!("reading {}", p.display()))?);
        } else {
            others.push(p.clone());
        }
    }
    if !others.is_empty() {
        let instruments = cfg.instruments();
        let imp = statarb::import::import_files(&others, &instruments, &Default::default())?;
        for r in &imp.reports {
            let names: Vec<String> = r.paths.iter().map(|p| p.display().to_string()).collect();
            eprintln!("{} ({}): {}", names.join(", "), r.format.name(), r.stats);
        }
        sources.push((instruments, imp.events));
    }
    let (instruments, events) = statarb::backtest::merge_sources(sources)?;
    if events.is_empty() {
        bail!("the data has no events");
    }
    Ok((instruments, events, None))
}

/// The data set of a threaded run (`latency`): one event file, or the built-in set.
pub fn load_one(
    data: Option<&std::path::Path>,
    seed: u64,
    events: usize,
) -> Result<(Vec<Instrument>, Vec<MarketEvent>)> {
    let (instruments, events) = match data {
        Some(p) => {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            evfile::read_file(f).with_context(|| format!("reading {}", p.display()))?
        }
        None => {
            let t = std::time::Instant::now();
            let ds = gen::generate(&super::gen_params(seed, events)?);
            eprintln!(
                "generated the built-in data set: {} events, seed {seed}, in {:.2?}",
                ds.events.len(),
                t.elapsed()
            );
            (ds.instruments, ds.events)
        }
    };
    if events.is_empty() {
        bail!("the data set has no events");
    }
    Ok((instruments, events))
}
