//! `statarb import`: data normalised into a binary event file: our recordings (raw
//! Binance messages), Tardis.dev CSV and Binance public-data CSV, plain or gzip, merged
//! by time.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use statarb::backtest::window::TimeWindow;
use statarb::config::Config;
use statarb::feed::evfile;
use statarb::import::{import_files, ImportOptions, Limits};

use super::data::{apply_window, WindowArgs};
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
    let mut imp = import_files(inputs, &instruments, opts)?;
    for r in &imp.reports {
        let names: Vec<String> = r.paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!("{} ({}): {}", names.join(", "), r.format.name(), r.stats);
    }
    let bad = imp.total().skipped_bad_row;
    if let Some(max) = max_bad {
        if bad > max {
            bail!("{bad} bad rows, more than --max-bad {max}; nothing written");
        }
    }
    if imp.events.is_empty() {
        bail!("no events for {} or {} in the inputs; nothing written", instruments[0].symbol, instruments[1].symbol);
    }
    let events = apply_window(window, instruments.len(), std::mem::take(&mut imp.events))?;
    let mut w = BufWriter::new(outputs.create(out)?);
    let written = evfile::write(&mut w, &instruments, &events).map_err(anyhow::Error::from).and_then(|()| {
        w.flush().with_context(|| format!("writing {}", out.display()))?;
        Ok(())
    });
    if let Err(e) = written {
        outputs.abandon();
        return Err(e);
    }
    outputs.commit(out)?;
    eprintln!("wrote {} events to {} in {:.2?}", events.len(), out.display(), t.elapsed());
    Ok(())
}
