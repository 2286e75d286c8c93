//! The data of a backtest, as `replay`, `sweep` and `fit` take it: the built-in set
//! (generated from a seed), or files (event files read directly, anything else through
//! the importers with the config's legs), merged by time.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use anyhow::{bail, Result};
use statarb::backtest::window::{TimeWindow, WindowStats, WindowedSource};
use statarb::backtest::EventSource;
use statarb::config::Config;
use statarb::event::MarketEvent;
use statarb::feed::evmap::{Dataset, EventMap, Source};
use statarb::feed::{evfile, gen};
use statarb::types::{Instrument, Ts};
use statarb::utc::{parse_time_arg, UtcMs};

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
    #[command(flatten)]
    pub window: WindowArgs,
}

/// `--from` and `--to`: a window of local time.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WindowArgs {
    /// Only the data from this local time on (ns since the epoch, or RFC 3339 such as
    /// 2024-08-09T00:30:00Z), opened with a snapshot of the books at that time.
    #[arg(long, value_parser = parse_time_arg)]
    pub from: Option<Ts>,
    /// Only the data before this local time (ns since the epoch, or RFC 3339).
    #[arg(long, value_parser = parse_time_arg)]
    pub to: Option<Ts>,
}

impl WindowArgs {
    /// The window, or an error if it holds no time.
    pub fn window(&self) -> Result<TimeWindow> {
        let w = TimeWindow { from: self.from, to: self.to };
        if w.is_empty() {
            bail!("--from {} is not before --to {}", UtcMs(self.from.unwrap_or(0)), UtcMs(self.to.unwrap_or(0)));
        }
        Ok(w)
    }
}

/// The data of a backtest: the sources (mapped event files, imports and the built-in
/// set in memory), merged by local time as they are read, cut to the window.
pub type Data = WindowedSource<Dataset>;

/// The session id (the high half of order ids) of a replay of `data`, as `replay` sets
/// it: the second of its first event. A sweep point's digest is then the digest of a
/// replay with the point's config.
pub fn session_id(data: &Data) -> u32 {
    data.local_span().map_or(0, |s| (s.0 / statarb::types::NS_PER_SEC) as u32)
}

/// The events of `data` (or of the built-in set of `seed` with `events` events when
/// `data` is empty) in `window`. Event files are mapped, not read: a replay streams
/// them.
pub fn load_data(cfg: &Config, data: &[PathBuf], seed: u64, events: usize, window: TimeWindow) -> Result<Data> {
    load_data_with_truth(cfg, data, seed, events, window).map(|(d, _)| d)
}

/// [`load_data`], with the generator's truth when the data is the built-in set.
pub fn load_data_with_truth(
    cfg: &Config,
    data: &[PathBuf],
    seed: u64,
    events: usize,
    window: TimeWindow,
) -> Result<(Data, Option<gen::Truth>)> {
    let (set, truth) = load_all(cfg, data, seed, events)?;
    let span = set.local_span();
    let n = set.instruments().len();
    let data = WindowedSource::new(set, window, n);
    if !window.is_all() {
        report_window(data.stats(), span)?;
    }
    Ok((data, truth))
}

/// A note of what a window cut from data spanning `span` (local times), or an error if
/// it kept nothing.
pub fn report_window(st: WindowStats, span: Option<(Ts, Ts)>) -> Result<()> {
    if st.passed == 0 {
        let (first, last) =
            span.map_or_else(|| ("-".into(), "-".into()), |(a, b)| (UtcMs(a).to_string(), UtcMs(b).to_string()));
        bail!("the window holds none of the data's events (local times {first} to {last})");
    }
    eprintln!(
        "window: {} events, opened with {} book levels built from {} earlier events",
        st.passed, st.snapshot_levels, st.before
    );
    Ok(())
}

/// The whole of the data of [`load_data_with_truth`], merged, not yet windowed.
fn load_all(cfg: &Config, data: &[PathBuf], seed: u64, events: usize) -> Result<(Dataset, Option<gen::Truth>)> {
    if data.is_empty() {
        let t = std::time::Instant::now();
        let (ds, truth) = gen::generate_with_truth(&super::gen_params(seed, events)?);
        if ds.events.is_empty() {
            bail!("--events {events}: the built-in data set needs at least one event");
        }
        eprintln!("generated the built-in data set: {} events, seed {seed}, in {:.2?}", ds.events.len(), t.elapsed());
        return Ok((Dataset::memory(ds.instruments, ds.events), Some(truth)));
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
            sources.push(Source::Mapped(EventMap::open(p)?));
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
        sources.push(Source::Memory { instruments, events: imp.events });
    }
    let set = Dataset::new(sources)?;
    if set.is_empty() {
        bail!("the data has no events");
    }
    Ok((set, None))
}

/// The data set of a threaded run (`latency`): event files merged by local time, or
/// the built-in set. In memory: the threaded venue and source take slices.
pub fn load_one(data: &[PathBuf], seed: u64, events: usize) -> Result<(Vec<Instrument>, Vec<MarketEvent>)> {
    let (instruments, events) = match data {
        [_, ..] => {
            let d = Dataset::open(data)?;
            (d.instruments().to_vec(), d.to_vec())
        }
        [] => {
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
