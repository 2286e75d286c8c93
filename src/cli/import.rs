//! `statarb import`: data normalised into a binary event file: our recordings (raw
//! Binance messages), Tardis.dev CSV and Binance public-data CSV, plain or gzip, merged
//! by time.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use statarb::backtest::window::TimeWindow;
use statarb::config::Config;
use statarb::feed::evfile;
use statarb::import::{stream, ImportOptions, Limits};
use statarb::types::{Instrument, Ts};

use super::data::{report_window, WindowArgs};
use super::signals::Outputs;

/// Arguments of `statarb import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration whose legs name the instruments (symbol, tick, lot).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output event file.
    #[arg(long)]
    out: PathBuf,
    /// Format of every input (default: detected per file): recording, tardis-book,
    /// tardis-quotes, tardis-trades, binance-trades, binance-aggtrades,
    /// binance-bookticker.
    #[arg(long)]
    format: Option<statarb::import::Format>,
    /// Symbol of Binance public-data files whose name does not carry it.
    #[arg(long)]
    symbol: Option<String>,
    /// Recordings: `sync` (the live procedure, snapshots required), `diffs` (diffs
    /// only), `auto` (sync where the recording has snapshots, else diffs).
    #[arg(long, default_value = "auto")]
    book: statarb::import::RecordingBook,
    /// Fail if more than this many rows are bad (default: report them, go on).
    #[arg(long)]
    max_bad: Option<u64>,
    /// Longest recording line or CSV row, bytes (default: 1 MiB for recording lines,
    /// which are skipped and counted beyond it; 64 KiB for CSV rows, an error).
    #[arg(long)]
    max_line_bytes: Option<usize>,
    #[command(flatten)]
    window: WindowArgs,
    /// Input files.
    #[arg(required = true, num_args = 1..)]
    inputs: Vec<PathBuf>,
}

/// Runs `statarb import`.
pub fn run(args: Args) -> Result<()> {
    let Args { config, out, format, symbol, book, max_bad, max_line_bytes, window, inputs } = args;
    let cfg = super::load_config(config.as_deref())?;
    let limits = Limits { max_line_bytes, ..Default::default() };
    let opts = ImportOptions { format, symbol, recording_book: book, limits };
    import(&cfg, &inputs, &opts, max_bad, window.window()?, &out)
}

fn import(
    cfg: &Config,
    inputs: &[PathBuf],
    opts: &ImportOptions,
    max_bad: Option<u64>,
    window: TimeWindow,
    out: &Path,
) -> Result<()> {
    let outputs = Outputs::watch()?;
    let instruments = cfg.instruments();
    let t = std::time::Instant::now();
    let staged = stream::stage(inputs, &instruments, opts, out)?;
    let bad: u64 = staged.reports.iter().map(|r| r.stats.skipped_bad_row).sum();
    if let Some(max) = max_bad {
        if bad > max {
            bail!("{bad} bad rows, more than --max-bad {max}; nothing written");
        }
    }
    if staged.total() == 0 {
        bail!("no events for {} or {} in the inputs; nothing written", instruments[0].symbol, instruments[1].symbol);
    }
    let written = write(&outputs, &staged, window, &instruments, out);
    let (n, dups) = match written {
        Ok(v) => v,
        Err(e) => {
            outputs.abandon();
            return Err(e);
        }
    };
    for (r, d) in staged.reports.iter().zip(dups) {
        let names: Vec<String> = r.paths.iter().map(|p| p.display().to_string()).collect();
        let mut stats = r.stats.clone();
        stats.duplicates += d;
        eprintln!("{} ({}): {}", names.join(", "), r.format.name(), stats);
    }
    outputs.commit(out)?;
    eprintln!("wrote {n} events to {} in {:.2?}", out.display(), t.elapsed());
    Ok(())
}

/// Streams the merge of `staged`, cut to `window`, into `out`; the number of events
/// written and the duplicates dropped per staged stream.
fn write(
    outputs: &Outputs,
    staged: &stream::Staged,
    window: TimeWindow,
    instruments: &[Instrument],
    out: &Path,
) -> Result<(u64, Vec<u64>)> {
    let mut w = evfile::Writer::new(outputs.create(out)?, instruments).map_err(|e| e.in_file(out))?;
    let mut merge = staged.merge();
    if window.is_all() {
        for e in merge.by_ref() {
            w.push(&e).map_err(|e| e.in_file(out))?;
        }
    } else {
        let mut span: Option<(Ts, Ts)> = None;
        let mut cut = window.cut(
            merge.by_ref().inspect(|e| {
                span = Some(span.map_or((e.local_ts, e.local_ts), |(a, _)| (a, e.local_ts)));
            }),
            instruments.len(),
        );
        for e in cut.by_ref() {
            w.push(&e).map_err(|e| e.in_file(out))?;
        }
        let stats = cut.stats();
        drop(cut);
        if stats.passed == 0 {
            // The message names the data's whole span.
            for e in merge.by_ref() {
                span = Some(span.map_or((e.local_ts, e.local_ts), |(a, _)| (a, e.local_ts)));
            }
        }
        report_window(stats, span)?;
    }
    let n = w.len();
    w.finish().map_err(|e| e.in_file(out))?;
    Ok((n, merge.duplicates().to_vec()))
}
