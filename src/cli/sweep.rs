//! `statarb sweep`: a parameter grid of backtests in parallel (rayon), one CSV row per
//! point, and the best points by a metric.

use std::collections::btree_map::{BTreeMap, Entry};
use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use statarb::backtest::stats::Report as BacktestReport;
use statarb::backtest::{Backtest, EventSource};
use statarb::config::Config;
use statarb::core::Core;
use statarb::feed::gen;
use statarb::sweep::{self, Point, Shard};

use super::data::{load_data, session_id, WindowArgs};

/// Arguments of `statarb sweep`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Grid file (see `config/sweep.toml`).
    #[arg(long, required_unless_present = "merge")]
    grid: Option<PathBuf>,
    /// Instead of running a grid, merge the CSVs of its shards (`--shard i/n`, one file
    /// each) into the whole table in point order, to `--out` or stdout.
    #[arg(long, num_args = 1.., conflicts_with_all = ["grid", "data", "shard"])]
    merge: Vec<PathBuf>,
    /// This process's share: points with number = i modulo n.
    #[arg(long, default_value = "0/1")]
    shard: Shard,
    /// Data files, as for `replay`; default: the built-in set.
    #[arg(long, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Events in the built-in data set (an error with `--data`).
    #[arg(long, default_value_t = gen::GenParams::default().events, conflicts_with = "data")]
    events: usize,
    #[command(flatten)]
    window: WindowArgs,
    /// Output CSV (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads; default `SLURM_CPUS_PER_TASK` when set, else every CPU.
    #[arg(long)]
    threads: Option<usize>,
    /// Print the best points by this column of the CSV (higher is better, except
    /// `max_drawdown`, `fees` and `hedge_error_mean`, for which lower is).
    #[arg(long, default_value = "pnl_net")]
    rank: String,
    /// How many points `--rank` prints.
    #[arg(long, default_value_t = 5)]
    top: usize,
}

/// Runs `statarb sweep` on a rayon pool of `--threads`, else `SLURM_CPUS_PER_TASK`,
/// else every CPU.
pub fn run(args: Args) -> Result<()> {
    if !args.merge.is_empty() {
        return merge(&args.merge, args.out.as_deref());
    }
    let threads = sweep::threads(args.threads, std::env::var("SLURM_CPUS_PER_TASK").ok().as_deref())?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    pool.install(|| run_grid(&args))
}

fn run_grid(args: &Args) -> Result<()> {
    let Args { grid, shard, data, events, window, out, rank, top, .. } = args;
    let (shard, events, top, out, window) = (*shard, *events, *top, out.as_deref(), window.window()?);
    let stop = super::signals::stop_flag()?;
    let Some(grid) = grid else { bail!("--grid is required") };
    let grid = sweep::Grid::load(grid)?;
    let points = grid.points(shard)?;
    // The data is read once per seed; every point of a seed replays the same events.
    let base = points.first().map(|p| p.config.clone()).unwrap_or_else(Config::builtin);
    let default_seed = gen::GenParams::default().seed;
    let seed_of = |p: &Point| p.seed.unwrap_or(default_seed);
    if !data.is_empty() && points.iter().any(|p| p.seed.is_some()) {
        bail!("the grid varies {}: that is the built-in data's seed, and --data was given", sweep::SEED_KEY);
    }
    let mut sets = BTreeMap::new();
    for p in &points {
        if let Entry::Vacant(slot) = sets.entry(seed_of(p)) {
            slot.insert(load_data(&base, data, seed_of(p), events, window)?);
        }
    }
    eprintln!(
        "sweep: {} of {} points (shard {}/{}), {} events each over {} data set(s), {} threads",
        points.len(),
        grid.len(),
        shard.index,
        shard.count,
        sets.values().next().map_or(0, |d| d.event_count()),
        sets.len(),
        rayon::current_num_threads()
    );
    let t = std::time::Instant::now();
    // A progress bar on a terminal only: a log or a Slurm output file gets none.
    let bar = if io::IsTerminal::is_terminal(&io::stderr()) {
        let b = indicatif::ProgressBar::new(points.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} points {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let rows = sweep::run(&points, |p| -> Result<(BacktestReport, String)> {
        let _tick = Tick(&bar);
        // Every point's seed was loaded above.
        let events = &sets[&seed_of(p)];
        let instruments = events.inner().instruments();
        let session_id = session_id(events);
        // After a signal, the points not finished are rows marked interrupted.
        let interrupted = || anyhow::anyhow!("interrupted");
        if stop.load(Ordering::Relaxed) {
            return Err(interrupted());
        }
        let params = p.config.core_params()?;
        let core = Core::new(&params, instruments, session_id)?;
        let bt = Backtest::new(&p.config.backtest, &params, p.config.fees)?;
        let o = bt.run_source_with_progress(core, instruments, events, |_, _| {
            if stop.load(Ordering::Relaxed) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if stop.load(Ordering::Relaxed) {
            return Err(interrupted());
        }
        Ok((BacktestReport::from_trace(&o.trace), o.digest_hex()))
    });
    bar.finish_and_clear();
    let sink: Box<dyn io::Write> = match out {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(io::stdout().lock()),
    };
    let mut w = csv::Writer::from_writer(sink);
    let metrics = sweep::METRICS;
    let rank_col = metrics
        .iter()
        .position(|m| *m == rank)
        .with_context(|| format!("--rank {rank}: not a column; one of {}", metrics[..metrics.len() - 2].join(", ")))?;
    let mut header = vec!["point".to_string()];
    header.extend(grid.keys().iter().map(|k| k.to_string()));
    header.extend(metrics.iter().map(|m| m.to_string()));
    w.write_record(&header)?;
    let mut ranked: Vec<(f64, String)> = Vec::new();
    for (p, row) in points.iter().zip(rows) {
        let mut rec = vec![p.index.to_string()];
        rec.extend(p.value_strings());
        match row {
            Ok((r, digest)) => {
                let cells = sweep::metric_cells(&r, digest);
                if let Some(v) = cells[rank_col].parse::<f64>().ok().filter(|v| v.is_finite()) {
                    ranked.push((v, format!("point {:>4}  {}", p.index, p.label())));
                }
                rec.extend(cells);
            }
            Err(e) => {
                rec.extend(std::iter::repeat_n(String::new(), metrics.len() - 1));
                rec.push(format!("{e:#}"));
            }
        }
        w.write_record(&rec)?;
    }
    let lower_is_better = sweep::lower_is_better(rank);
    ranked.sort_by(|a, b| if lower_is_better { a.0.total_cmp(&b.0) } else { b.0.total_cmp(&a.0) });
    eprintln!("sweep: top {} of {} by {rank}:", top.min(ranked.len()), ranked.len());
    for (v, label) in ranked.iter().take(top) {
        eprintln!("  {rank} {v:>12.4}  {label}");
    }
    w.flush()?;
    eprintln!("sweep: {} points in {:.2?}", points.len(), t.elapsed());
    if stop.load(Ordering::Relaxed) {
        eprintln!("sweep: interrupted; the points not finished have `interrupted` in the error column");
    }
    Ok(())
}

/// Advances the progress bar when a point ends, however it ends.
struct Tick<'a>(&'a indicatif::ProgressBar);

impl Drop for Tick<'_> {
    fn drop(&mut self) {
        self.0.inc(1);
    }
}

/// `statarb sweep --merge`: the shards' CSVs as one table.
fn merge(inputs: &[PathBuf], out: Option<&std::path::Path>) -> Result<()> {
    let st = match out {
        Some(p) => sweep::merge(inputs, File::create(p).with_context(|| format!("creating {}", p.display()))?)?,
        None => sweep::merge(inputs, io::stdout().lock())?,
    };
    eprintln!("sweep: merged {} points from {} files", st.rows, st.files);
    if st.missing > 0 {
        eprintln!(
            "warning: {} points below the highest are in none of the files (a shard not run or not given)",
            st.missing
        );
    }
    Ok(())
}
