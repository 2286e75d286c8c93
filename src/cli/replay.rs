//! `statarb replay`: the backtester. The data through the `Core` and the L2 matching
//! engine with feed and order latency and queue position, single-threaded and
//! deterministic; the report and the digest, and with `--out` the CSVs and the plots.

use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use statarb::backtest::stats::Report as BacktestReport;
use statarb::backtest::window::TimeWindow;
use statarb::backtest::{Backtest, EventSource};
use statarb::config::Config;
use statarb::core::Core;
use statarb::report::Summary;
use statarb::types::Instrument;

use super::data::{load_data_with_truth, session_id, Data, DataArgs};

/// Arguments of `statarb replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    input: DataArgs,
    /// Directory for report.json, fills.csv, equity.csv, trades.csv, signal.csv and
    /// the plots.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also replay at 0x and 2x the fees and at 0.5x and 2x the order latency (entry
    /// and response), in parallel, and print the five runs as one table.
    #[arg(long)]
    sensitivity: bool,
}

/// Runs `statarb replay`.
pub fn run(args: Args) -> Result<()> {
    let Args { input: DataArgs { config, data, seed, events, window }, out, sensitivity } = args;
    let cfg = super::load_config(config.as_deref())?;
    replay(&cfg, &data, seed, events, window.window()?, out.as_deref(), sensitivity)
}

fn replay(
    cfg: &Config,
    data: &[PathBuf],
    seed: u64,
    events: usize,
    window: TimeWindow,
    out: Option<&Path>,
    sensitivity: bool,
) -> Result<()> {
    let stop = super::signals::stop_flag()?;
    let (events, truth) = load_data_with_truth(cfg, data, seed, events, window)?;
    let instruments = events.inner().instruments().to_vec();
    let session_id = session_id(&events);
    let params = cfg.core_params()?;
    let core = Core::new(&params, &instruments, session_id)?;
    let bt = Backtest::new(&cfg.backtest, &params, cfg.fees)?;
    let t = std::time::Instant::now();
    // A progress bar only for runs long enough to want one, and only on a terminal.
    let tty = io::IsTerminal::is_terminal(&io::stdout());
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut interrupted = None;
    let outcome = bt.run_source_with_progress(core, &instruments, &events, |done, total| {
        if stop.load(Ordering::Relaxed) {
            interrupted.get_or_insert(done);
            return ControlFlow::Break(());
        }
        if !tty {
            return ControlFlow::Continue(());
        }
        if bar.is_none() && t.elapsed() > std::time::Duration::from_secs(1) {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar = Some(b);
        }
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
        ControlFlow::Continue(())
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let elapsed = t.elapsed();
    let report = BacktestReport::from_trace(&outcome.trace);
    println!("{report}");
    let m = outcome.matching;
    println!(
        "matching: {} accepted, {} rejected ({} post-only), {} cancelled, {} fills",
        m.accepted, m.rejected, m.rejected_post_only, m.canceled, m.fills
    );
    println!(
        "replay: {} events in {:.2?} ({:.2} M events/s)",
        outcome.replay.events,
        elapsed,
        outcome.replay.events as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!("digest: {}", outcome.digest_hex());
    if let Some(done) = interrupted {
        println!("interrupted: the report is of the first {done} of {} events", events.event_count());
    } else if sensitivity {
        print_sensitivity(cfg, &instruments, &events, session_id, &report)?;
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::json!({
            "digest": outcome.digest_hex(),
            "report": report,
            "matching": outcome.matching,
            "replay": outcome.replay,
            "core": outcome.core.stats(),
            "summary": Summary::of_core(&outcome.core),
        });
        let path = dir.join("report.json");
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        let trace = &outcome.trace;
        let csvs = write_replay_csvs(trace, dir)?;
        // The truth is in the generator's exchange time; only the built-in data has one.
        let truth = truth.map(|t| statarb::backtest::plot::Truth {
            beta: t.samples.iter().map(|s| (s.ts, s.beta)).collect(),
            break_ts: t.beta_break.map(|b| b.ts),
        });
        let plot_params = statarb::backtest::plot::PlotParams::from_pairs(&cfg.pairs);
        let plots = statarb::backtest::plot::write_plots(trace, dir, truth.as_ref(), &plot_params)?;
        eprintln!("wrote {}, {} and {} plots in {}", path.display(), csvs.join(", "), plots.len(), dir.display());
    }
    Ok(())
}

/// The fee and latency sensitivity of a replay: the same data and config at 0x and 2x
/// the fees and at 0.5x and 2x the order latency (entry and response together), run in
/// parallel, printed with the base run as one table.
fn print_sensitivity(
    cfg: &Config,
    instruments: &[Instrument],
    events: &Data,
    session_id: u32,
    base: &BacktestReport,
) -> Result<()> {
    let bt = &cfg.backtest;
    let latency = |f: f64| -> Option<Config> {
        let mut c = cfg.clone();
        c.backtest.entry_latency = bt.entry_latency.scaled(f)?;
        c.backtest.response_latency = bt.response_latency.scaled(f)?;
        Some(c)
    };
    let fees = |f: f64| {
        let mut c = cfg.clone();
        c.fees.maker_bps *= f;
        c.fees.taker_bps *= f;
        Some(c)
    };
    let variants =
        [("fees 0x", fees(0.0)), ("fees 2x", fees(2.0)), ("latency 0.5x", latency(0.5)), ("latency 2x", latency(2.0))];
    let reports: Vec<(&str, Option<Result<BacktestReport>>)> = {
        use rayon::prelude::*;
        variants
            .into_par_iter()
            .map(|(name, c)| {
                let run = |c: Config| -> Result<BacktestReport> {
                    let params = c.core_params()?;
                    let core = Core::new(&params, instruments, session_id)?;
                    let o = Backtest::new(&c.backtest, &params, c.fees)?.run_source(core, instruments, events);
                    Ok(BacktestReport::from_trace(&o.trace))
                };
                (name, c.map(run))
            })
            .collect()
    };
    let opt = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.2}"));
    println!(
        "sensitivity     {:>10} {:>10} {:>10} {:>8} {:>11} {:>10}",
        "pnl net", "gross", "fees", "fills", "trade mean", "max dd"
    );
    let row = |name: &str, r: &BacktestReport| {
        println!(
            "  {name:<13} {:>10} {:>10} {:>10} {:>8} {:>11} {:>10.2}",
            opt(r.pnl_net),
            opt(r.pnl_gross),
            opt(r.fees),
            r.fills,
            r.trades.mean.map_or_else(|| "n/a".to_string(), |x| format!("{x:.3}")),
            r.max_drawdown
        )
    };
    row("base", base);
    for (name, r) in reports {
        match r {
            Some(Ok(r)) => row(name, &r),
            Some(Err(e)) => println!("  {name:<13} failed: {e:#}"),
            None => println!("  {name:<13} n/a (a latency series file cannot be scaled)"),
        }
    }
    Ok(())
}

/// Writes `fills.csv`, `equity.csv`, `trades.csv` and `signal.csv` of a replay into
/// `dir`; returns their names.
fn write_replay_csvs(trace: &statarb::backtest::trace::Trace, dir: &Path) -> Result<[&'static str; 4]> {
    use statarb::backtest::{stats, trace as tr};
    tr::write_csv(&dir.join("fills.csv"), &tr::FILLS_HEADER, trace.fill_rows())?;
    tr::write_csv(&dir.join("equity.csv"), &trace.equity_header(), trace.equity_rows())?;
    tr::write_csv(&dir.join("trades.csv"), &stats::TRADES_HEADER, stats::round_trips(trace))?;
    tr::write_csv(&dir.join("signal.csv"), &tr::SIGNAL_HEADER, &trace.signals)?;
    Ok(["fills.csv", "equity.csv", "trades.csv", "signal.csv"])
}
