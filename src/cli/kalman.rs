//! `statarb kalman`: the Kalman hedge-ratio filter over a CSV, every row out with beta,
//! alpha, e, q and z; with `--fit`, its noise parameters estimated by maximum
//! likelihood instead.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use statarb::signal::csv::{filter_csv, read_xy, CsvOptions};
use statarb::signal::fit::{fit, FitOptions, DEFAULT_BURN};
use statarb::signal::kalman::{KalmanParams, ObsNoise, Prices};

use super::signals::Outputs;

/// Arguments of `statarb kalman`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input CSV with a header.
    #[arg(long)]
    input: PathBuf,
    /// Column of the dependent series y.
    #[arg(long)]
    y: String,
    /// Column of the hedge series x.
    #[arg(long)]
    x: String,
    /// State noise of both states: Vw = delta / (1 - delta) * I.
    #[arg(long, default_value_t = KalmanParams::default().delta)]
    delta: f64,
    /// State noise of beta alone (overrides --delta for beta).
    #[arg(long)]
    delta_beta: Option<f64>,
    /// State noise of the intercept alone (overrides --delta for alpha).
    #[arg(long)]
    delta_alpha: Option<f64>,
    /// Observation noise variance, or `adaptive`.
    #[arg(long, default_value_t = KalmanParams::default().ve)]
    ve: ObsNoise,
    /// Starting value of an adaptive ve.
    #[arg(long, default_value_t = KalmanParams::default().ve0)]
    ve0: f64,
    /// Half-life of the adaptive ve estimate, rows.
    #[arg(long, default_value_t = KalmanParams::default().ve_halflife)]
    ve_halflife: f64,
    /// Prior variance of beta (and alpha unless --p0-alpha); 0 is Chan's P = 0.
    #[arg(long, default_value_t = KalmanParams::default().p0)]
    p0: f64,
    /// Prior variance of the intercept.
    #[arg(long)]
    p0_alpha: Option<f64>,
    /// Prices as they are (`levels`) or their logarithms (`log`).
    #[arg(long, value_enum, default_value_t = PricesArg::Levels)]
    prices: PricesArg,
    /// Half-life of the spread's autocorrelation, rows (0: white noise, Chan).
    #[arg(long, default_value_t = 0.0)]
    spread_halflife: f64,
    /// Half-life of the running mean x is centred on, rows (0: no centring).
    #[arg(long, default_value_t = 0.0)]
    centre_halflife: f64,
    /// Output CSV (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Skip and count malformed rows instead of failing on the first.
    #[arg(long)]
    skip_bad: bool,
    /// Instead of filtering, estimate delta_beta, delta_alpha and a fixed ve by
    /// maximum likelihood (the other flags are the start and the held settings);
    /// print the estimates and a [kalman] snippet.
    #[arg(long, conflicts_with = "output")]
    fit: bool,
    /// With --fit: rows filtered but left out of the likelihood.
    #[arg(long, requires = "fit", default_value_t = DEFAULT_BURN)]
    burn: usize,
    /// With --fit: estimate the spread half-life too (else held at --spread-halflife).
    #[arg(long, requires = "fit")]
    fit_halflife: bool,
}

/// Runs `statarb kalman`.
pub fn run(args: Args) -> Result<()> {
    let Args {
        input,
        y,
        x,
        delta,
        delta_beta,
        delta_alpha,
        ve,
        ve0,
        ve_halflife,
        p0,
        p0_alpha,
        prices,
        spread_halflife,
        centre_halflife,
        output,
        skip_bad,
        fit,
        burn,
        fit_halflife,
    } = args;
    let params = KalmanParams {
        delta,
        delta_beta,
        delta_alpha,
        ve,
        ve0,
        ve_halflife,
        p0,
        p0_alpha,
        prices: match prices {
            PricesArg::Levels => Prices::Levels,
            PricesArg::Log => Prices::Log,
        },
        spread_halflife,
        centre_halflife,
        ..KalmanParams::default()
    };
    let opts = CsvOptions { y, x, params, skip_bad };
    if fit {
        fit_csv(&input, &opts, FitOptions { burn, fit_halflife, ..FitOptions::default() })
    } else {
        filter(&input, opts, output.as_deref())
    }
}

fn filter(input: &Path, opts: CsvOptions, output: Option<&Path>) -> Result<()> {
    let outputs = Outputs::watch()?;
    opts.params.validate()?;
    let r = BufReader::new(File::open(input).with_context(|| format!("opening {}", input.display()))?);
    let stats = match output {
        Some(p) => {
            let stats = filter_csv(r, BufWriter::new(outputs.create(p)?), &opts);
            match &stats {
                Ok(_) => outputs.commit(p)?,
                Err(_) => outputs.abandon(),
            }
            stats
        }
        None => filter_csv(r, BufWriter::new(io::stdout().lock()), &opts),
    }
    .with_context(|| format!("{}", input.display()))?;
    eprintln!("rows {}, written {}, skipped {}", stats.rows, stats.written, stats.skipped);
    Ok(())
}

/// `statarb kalman --fit`: the `x`, `y` columns of the CSV, fitted from `opts.params`.
fn fit_csv(input: &Path, opts: &CsvOptions, fit_opts: FitOptions) -> Result<()> {
    let _signals = Outputs::watch()?;
    opts.params.validate()?;
    let name = input.display().to_string();
    let r = BufReader::new(File::open(input).with_context(|| format!("opening {name}"))?);
    let (pairs, stats) = read_xy(r, &opts.y, &opts.x, opts.skip_bad).with_context(|| name.clone())?;
    eprintln!("{name}: rows {}, read {}, skipped {}", stats.rows, stats.written, stats.skipped);
    let r = fit(&pairs, &opts.params, &fit_opts).with_context(|| name.clone())?;
    super::fit::print_fit(&r);
    Ok(())
}

/// `--prices` of `statarb kalman`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PricesArg {
    /// Prices as they are.
    Levels,
    /// Natural logarithms of the prices.
    Log,
}
