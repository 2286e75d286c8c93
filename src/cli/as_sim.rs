//! `statarb as-sim`: the Avellaneda-Stoikov (2008) Monte Carlo, the inventory strategy
//! against the symmetric one quoting the same spread.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use statarb::assim::AsSimParams;

use super::signals::Outputs;

/// Arguments of `statarb as-sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Risk aversion.
    #[arg(long, default_value_t = AsSimParams::default().gamma)]
    gamma: f64,
    /// Number of paths.
    #[arg(long, default_value_t = AsSimParams::default().paths)]
    paths: u64,
    /// Seed.
    #[arg(long, default_value_t = AsSimParams::default().seed)]
    seed: u64,
    /// Volatility of the mid.
    #[arg(long, default_value_t = AsSimParams::default().sigma)]
    sigma: f64,
    /// Fill-intensity decay k.
    #[arg(long, default_value_t = AsSimParams::default().k)]
    k: f64,
    /// Fill intensity A at zero distance.
    #[arg(long, default_value_t = AsSimParams::default().a)]
    a: f64,
    /// Write the results as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `statarb as-sim`.
pub fn run(args: Args) -> Result<()> {
    let Args { gamma, paths, seed, sigma, k, a, out } = args;

    let outputs = Outputs::watch()?;
    let p = AsSimParams { gamma, paths, seed, sigma, k, a, ..AsSimParams::default() };
    let r = statarb::assim::simulate(&p)?;
    println!("{r}");
    if let Some(path) = out {
        let mut f = outputs.create(&path)?;
        f.write_all((serde_json::to_string_pretty(&r)? + "\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        drop(f);
        outputs.commit(&path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
