//! `statarb gen`: the built-in data set into a binary event file, and/or the
//! generator's true hedge ratio and intercept as CSV.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use statarb::feed::{evfile, gen};

use super::signals::Outputs;

/// Arguments of `statarb gen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seed.
    #[arg(long, default_value_t = gen::GenParams::default().seed)]
    seed: u64,
    /// Number of events.
    #[arg(long, default_value_t = gen::GenParams::default().events)]
    events: usize,
    /// Output event file.
    #[arg(long, required_unless_present = "truth")]
    out: Option<PathBuf>,
    /// Output CSV of the generator's truth, `ts_ns,beta,alpha`, one row per truth
    /// sample (1 s of exchange time).
    #[arg(long)]
    truth: Option<PathBuf>,
}

/// Runs `statarb gen`.
pub fn run(args: Args) -> Result<()> {
    generate(args.seed, args.events, args.out.as_deref(), args.truth.as_deref())
}

fn generate(seed: u64, events: usize, out: Option<&Path>, truth_out: Option<&Path>) -> Result<()> {
    let outputs = Outputs::watch()?;
    let (ds, truth) = gen::generate_with_truth(&super::gen_params(seed, events)?);
    if let Some(out) = out {
        let mut w = BufWriter::new(outputs.create(out)?);
        evfile::write(&mut w, &ds.instruments, &ds.events)?;
        w.flush().with_context(|| format!("writing {}", out.display()))?;
        drop(w);
        outputs.commit(out)?;
        eprintln!("wrote {} events to {}", ds.events.len(), out.display());
    }
    if let Some(path) = truth_out {
        let mut w = csv::Writer::from_writer(BufWriter::new(outputs.create(path)?));
        w.write_record(["ts_ns", "beta", "alpha"])?;
        for s in &truth.samples {
            w.write_record([s.ts.to_string(), s.beta.to_string(), s.alpha.to_string()])?;
        }
        w.flush().with_context(|| format!("writing {}", path.display()))?;
        drop(w);
        outputs.commit(path)?;
        let at = truth.beta_break.map_or_else(|| "not reached".to_string(), |b| format!("at {} ns", b.ts));
        eprintln!("wrote {} truth samples to {} (beta break {at})", truth.samples.len(), path.display());
    }
    Ok(())
}
