//! The command-line driver: `main.rs` parses the arguments and dispatches; each command
//! is a module here with its `Args` and its `run`; session logic (live runs,
//! reconciliation) is in the library ([`statarb::session`]), where tests reach it.
//! What several commands share is in this module and [`data`].

pub mod as_sim;
pub mod data;
pub mod fit;
pub mod gen;
pub mod import;
pub mod kalman;
pub mod latency;
#[cfg(feature = "mock")]
pub mod mock_binance;
pub mod record;
pub mod replay;
pub mod run;
pub mod serve;
pub mod signals;
pub mod sweep;
pub mod walkforward;

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};
use statarb::config::{Config, LogFormat, LogLevel, MonitorConfig, RecordConfig};
use statarb::feed::gen::GenParams;
use statarb::feed::record::{RecordTap, Recorder, RecorderHandle, RotatePolicy};
use statarb::metrics::{write_hgrm, write_percentile_plot, write_stage_table, Latencies, Stage};
use statarb::report::Summary;

/// The configuration at `path`, or the built-in `config/default.toml`.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::builtin(),
    })
}

/// The generator's parameters for the built-in data set of `seed` with `events` events.
pub fn gen_params(seed: u64, events: usize) -> Result<GenParams> {
    let p = GenParams { seed, events, ..GenParams::default() };
    p.validate()?;
    Ok(p)
}

/// Installs the process's log subscriber as `[monitor]` says: lines at `log_level` and
/// above, timestamped (RFC 3339, UTC), as text with `key=value` fields or as JSON, to
/// stderr or appended to a file.
pub fn init_logging(m: &MonitorConfig) -> Result<()> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let level = match m.log_level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    let writer = if m.log == "stderr" {
        BoxMakeWriter::new(std::io::stderr)
    } else {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .with_context(|| format!("monitor.log: opening {}", m.log))?;
        BoxMakeWriter::new(std::sync::Mutex::new(f))
    };
    let builder = tracing_subscriber::fmt().with_max_level(level).with_writer(writer);
    let installed = match m.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A second call in one process (tests) keeps the first subscriber.
    drop(installed);
    Ok(())
}

/// Starts the recorder of `[record]`.
pub fn spawn_recorder(r: &RecordConfig) -> Result<(RecordTap, RecorderHandle)> {
    let policy = RotatePolicy { max_bytes: r.rotate_mb << 20, max_age_secs: r.rotate_secs };
    Ok(Recorder::spawn_with_pool(&r.dir, &r.prefix, policy, r.pool)?)
}

/// Prints the summary of a threaded run and its stage table, and writes `summary.json`,
/// one `.hgrm` per stage with samples and `stages.svg` (their percentile plot) into
/// `out`.
pub fn write_run_report(summary: &Summary, latencies: &Latencies, out: Option<&Path>) -> Result<()> {
    println!("{summary}");
    println!("\nstages (clock: {}):", statarb::clock::source_name());
    write_stage_table(latencies, std::io::stdout().lock())?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("summary.json");
        std::fs::write(&path, serde_json::to_string_pretty(summary)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        for stage in Stage::ALL.into_iter().filter(|s| !latencies.get(*s).is_empty() || *s == Stage::TickToQuote) {
            let path = dir.join(format!("{}.hgrm", stage.name()));
            let f = File::create(&path).with_context(|| format!("writing {}", path.display()))?;
            write_hgrm(latencies.get(stage), BufWriter::new(f))?;
        }
        write_percentile_plot(latencies, &dir.join("stages.svg"), "latency by stage")?;
        eprintln!("wrote {}", dir.join("summary.json").display());
    }
    Ok(())
}
