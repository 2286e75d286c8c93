//! `statarb walkforward`: out-of-sample evaluation of a grid. On each training window
//! the grid's best point by `--metric`, then that point on the test window after it,
//! warm from the training window (see [`statarb::walkforward`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use statarb::backtest::plot;
use statarb::backtest::EventSource;
use statarb::feed::gen;
use statarb::sweep::{self, Grid, Shard};
use statarb::types::Ts;
use statarb::utc::{parse_duration_arg, UtcMs};
use statarb::walkforward::{self, Spec, WalkForward};

use super::data::{load_data, WindowArgs};

/// Arguments of `statarb walkforward`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Grid file (see `config/sweep.toml`); a `data.seed` axis is not allowed (the
    /// data is one set; use `--seed`).
    #[arg(long)]
    grid: PathBuf,
    /// Data files, as for `replay`; default: the built-in set.
    #[arg(long, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Seed of the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().seed, conflicts_with = "data")]
    seed: u64,
    /// Events in the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().events, conflicts_with = "data")]
    events: usize,
    #[command(flatten)]
    window: WindowArgs,
    /// Training window: a duration such as 6h, 45m, 90s.
    #[arg(long, value_parser = parse_duration_arg)]
    train: Ts,
    /// Test window, after each training window.
    #[arg(long, value_parser = parse_duration_arg)]
    test: Ts,
    /// Shift from one fold to the next (default: the test window).
    #[arg(long, value_parser = parse_duration_arg)]
    step: Option<Ts>,
    /// The metric a training window is judged by: a column of the sweep CSV (pnl_net,
    /// sharpe, trade_t, return_over_drawdown, ...; max_drawdown, fees and
    /// hedge_error_mean rank lowest first).
    #[arg(long, default_value = "pnl_net")]
    metric: String,
    /// Worker threads for the training windows; default `SLURM_CPUS_PER_TASK` when
    /// set, else every CPU.
    #[arg(long)]
    threads: Option<usize>,
    /// Directory for walkforward.csv (one row per fold), oos_equity.csv (the stitched
    /// out-of-sample equity) and oos_equity.svg.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `statarb walkforward`.
pub fn run(args: Args) -> Result<()> {
    let threads = sweep::threads(args.threads, std::env::var("SLURM_CPUS_PER_TASK").ok().as_deref())?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    pool.install(|| walk(&args))
}

fn walk(args: &Args) -> Result<()> {
    let stop = super::signals::stop_flag()?;
    let grid = Grid::load(&args.grid)?;
    let points = grid.points(Shard { index: 0, count: 1 })?;
    if points.iter().any(|p| p.seed.is_some()) {
        bail!(
            "{}: the grid varies {}; a walk-forward runs on one data set (--seed)",
            args.grid.display(),
            sweep::SEED_KEY
        );
    }
    let Some(base) = points.first().map(|p| p.config.clone()) else {
        bail!("{}: the grid has no points", args.grid.display())
    };
    // The folds cut windows from the data many times over: it is read into memory.
    let data = load_data(&base, &args.data, args.seed, args.events, args.window.window()?)?;
    let instruments = data.inner().instruments().to_vec();
    let events: Vec<_> = data.events().collect();
    let spec = Spec { train: args.train, test: args.test, step: args.step.unwrap_or(args.test) };
    if spec.step < spec.test {
        eprintln!("warning: --step is shorter than --test: the test windows overlap, and the totals count the overlap more than once");
    }
    eprintln!(
        "walkforward: {} points, {} events, train {} s, test {} s, step {} s, by {}, {} threads",
        points.len(),
        events.len(),
        spec.train / 1_000_000_000,
        spec.test / 1_000_000_000,
        spec.step / 1_000_000_000,
        args.metric,
        rayon::current_num_threads()
    );
    let t = std::time::Instant::now();
    let wf = walkforward::run(&points, &instruments, &events, &spec, &args.metric, &stop, |k, n| {
        eprintln!("walkforward: fold {}/{n} ({:.1?})", k + 1, t.elapsed());
    })?;
    print(&wf, &args.metric);
    eprintln!("walkforward: {} folds in {:.2?}", wf.folds.len(), t.elapsed());
    if let Some(dir) = &args.out {
        write(&wf, &args.metric, dir)?;
    }
    Ok(())
}

/// The per-fold table and the totals, on stdout.
fn print(wf: &WalkForward, metric: &str) {
    let opt = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.2}"));
    println!(
        "fold  test from (UTC)            point  {:>12} {:>10} | {:>9} {:>8} {:>6} {:>6} {:>8}  chosen",
        format!("is {metric}"),
        "is net",
        "oos net",
        "oos fees",
        "fills",
        "trades",
        "oos dd"
    );
    for f in &wf.folds {
        let point = f.chosen.map_or_else(|| "-".to_string(), |p| p.to_string());
        let is_net = f.in_sample.as_ref().and_then(|r| r.pnl_net);
        let o = f.out_of_sample.clone().unwrap_or_default();
        println!(
            "{:>4}  {:<24}{} {point:>6}  {:>12} {:>10} | {:>9.2} {:>8.2} {:>6} {:>6} {:>8.2}  {}",
            f.fold.index,
            UtcMs(f.fold.test_from()).to_string(),
            if f.fold.partial { "*" } else { " " },
            opt(f.in_sample_metric),
            opt(is_net),
            o.pnl_net,
            o.fees,
            o.fills,
            o.trades,
            o.max_drawdown,
            f.label
        );
    }
    let t = &wf.totals;
    println!(
        "out of sample: net {:.2}, fees {:.2}, {} fills, {} signal trades, max drawdown {:.2}, {}",
        wf.pnl_net,
        wf.fees,
        wf.fills,
        wf.trades,
        t.max_drawdown,
        match t.sharpe {
            Some(s) => format!("daily Sharpe {s:.2} over {} days", t.days),
            None => format!("{} UTC day(s): too short to annualise", t.days),
        }
    );
    if wf.folds.iter().any(|f| f.fold.partial) {
        println!("* the data ends inside this test window");
    }
}

/// `walkforward.csv`, `oos_equity.csv` and `oos_equity.svg` in `dir`.
fn write(wf: &WalkForward, metric: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("walkforward.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| format!("creating {}", path.display()))?;
    w.write_record([
        "fold",
        "train_from",
        "test_from",
        "test_to",
        "partial",
        "point",
        "params",
        &format!("is_{metric}"),
        "is_pnl_net",
        "oos_pnl_net",
        "oos_fees",
        "oos_fills",
        "oos_trades",
        "oos_trades_pnl",
        "oos_max_drawdown",
    ])?;
    let cell = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for f in &wf.folds {
        let o = f.out_of_sample.as_ref();
        w.write_record([
            f.fold.index.to_string(),
            UtcMs(f.fold.train_from()).to_string(),
            UtcMs(f.fold.test_from()).to_string(),
            UtcMs(f.fold.test_to()).to_string(),
            f.fold.partial.to_string(),
            f.chosen.map(|p| p.to_string()).unwrap_or_default(),
            f.label.clone(),
            cell(f.in_sample_metric),
            cell(f.in_sample.as_ref().and_then(|r| r.pnl_net)),
            cell(o.map(|o| o.pnl_net)),
            cell(o.map(|o| o.fees)),
            o.map(|o| o.fills.to_string()).unwrap_or_default(),
            o.map(|o| o.trades.to_string()).unwrap_or_default(),
            cell(o.map(|o| o.trades_pnl)),
            cell(o.map(|o| o.max_drawdown)),
        ])?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))?;
    let eq = dir.join("oos_equity.csv");
    let mut w = csv::Writer::from_path(&eq).with_context(|| format!("creating {}", eq.display()))?;
    w.write_record(["time", "ts", "oos_pnl_net"])?;
    for &(t, v) in &wf.equity {
        w.write_record([UtcMs(t).to_string(), t.to_string(), v.to_string()])?;
    }
    w.flush().with_context(|| format!("writing {}", eq.display()))?;
    let svg = dir.join("oos_equity.svg");
    plot::write_equity_curve(&svg, &wf.equity, "Walk-forward: stitched out-of-sample net PnL")?;
    eprintln!("wrote {}, {} and {}", path.display(), eq.display(), svg.display());
    Ok(())
}
