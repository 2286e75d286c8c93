//! The `statarb` command line.
#![forbid(unsafe_code)]

mod cli;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use cli::signals::Outputs;

use statarb::assim::AsSimParams;
use statarb::backtest::stats::Report as BacktestReport;
use statarb::backtest::Backtest;
use statarb::config::{Config, GatewayVenue, RecordConfig, Venue};
use statarb::core::Core;
use statarb::event::MarketEvent;
use statarb::feed::evmap::{Dataset, EventMap, Source};
use statarb::feed::record::{RecordTap, Recorder, RecorderHandle, RotatePolicy};
use statarb::feed::snapshot::wall_ns;
use statarb::feed::source::{stream_url, AlpacaFeed, BinanceFeed};
use statarb::feed::ws::{tls_config, WsClient, WsConfig};
use statarb::feed::{evfile, gen};
use statarb::gateway::binance::BinanceSpot;
use statarb::gateway::Exchange;
use statarb::live::{self, MarketSource, Pacing, Pinning, RunOptions, SliceSource};
use statarb::metrics::{write_hgrm, Stage};
use statarb::ratelimit::IpBudget;
use statarb::report::Summary;
use statarb::serve;
use statarb::signal::csv::{filter_csv, read_xy, CsvOptions};
use statarb::signal::fit::{fit, FitOptions, FitResult, DEFAULT_BURN};
use statarb::signal::kalman::{KalmanParams, ObsNoise, Prices};
use statarb::types::Instrument;
use statarb::types::NS_PER_SEC;

#[derive(Parser)]
#[command(
    name = "statarb",
    version,
    about = "Low-latency pairs trading: Kalman hedge ratio, risk, Avellaneda-Stoikov execution"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Backtest: replay data through the Core and the L2 matching engine with feed and
    /// order latency and queue position, single-threaded and deterministic; prints the
    /// report and the digest; with --out writes report.json, fills.csv, trades.csv,
    /// signal.csv and SVG plots.
    Replay {
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
    },
    /// Run a parameter grid of backtests in parallel (rayon), one CSV row per point.
    Sweep {
        /// Grid file (see `config/sweep.toml`).
        #[arg(long)]
        grid: PathBuf,
        /// This process's share: points with number = i modulo n.
        #[arg(long, default_value = "0/1")]
        shard: statarb::sweep::Shard,
        /// Data files, as for `replay`; default: the built-in set.
        #[arg(long, num_args = 1..)]
        data: Vec<PathBuf>,
        /// Events in the built-in data set (an error with `--data`).
        #[arg(long, default_value_t = gen::GenParams::default().events, conflicts_with = "data")]
        events: usize,
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
    },
    /// Measure tick-to-quote latency: the live thread model (pinned hot thread, rings,
    /// gateway thread, simulated venue) over a data set, the built-in one by default.
    /// The venue is `replay`'s matching engine and reads the data at exchange time; the
    /// core hears it at `replay`'s local times (`backtest.feed_latency`); orders take no
    /// simulated time.
    Latency {
        /// Configuration file (default: the built-in config/default.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Binary event file (from `statarb gen`); default: generate the built-in set.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Seed of the built-in data set.
        #[arg(long, default_value_t = gen::GenParams::default().seed)]
        seed: u64,
        /// Events in the built-in data set.
        #[arg(long, default_value_t = gen::GenParams::default().events)]
        events: usize,
        /// Directory for summary.json and the latency histograms (.hgrm).
        #[arg(long)]
        out: Option<PathBuf>,
        /// `lockstep` (the hot thread waits for the gateway before each event: the same
        /// fills every run, and with zero feed latency those of `replay` with zero
        /// latency), `max` (no waiting), or a speed factor such as `1000x`.
        #[arg(long, default_value = "lockstep")]
        pace: Pacing,
    },
    /// The mock Binance Spot venue (signed REST and the WebSocket API user data stream)
    /// on 127.0.0.1, for a dry run of a live config: point `gateway.binance.rest_url`
    /// and `ws_url` at it. Built only with `--features mock`.
    #[cfg(feature = "mock")]
    MockBinance {
        /// Port (0: a free one, printed).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Config whose legs are the tradable symbols and whose `[fees]` the venue
        /// charges (default: the built-in config).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Environment variable holding the account's API key.
        #[arg(long, default_value = "BINANCE_API_KEY")]
        key_env: String,
        /// Environment variable holding the account's API secret.
        #[arg(long, default_value = "BINANCE_API_SECRET")]
        secret_env: String,
        /// A starting balance, `ASSET=AMOUNT` (repeatable; default 1,000,000 of each
        /// quote asset and 100 of each base asset).
        #[arg(long = "balance")]
        balances: Vec<String>,
    },
    /// Serve a recording, or the built-in data set, as Binance combined streams on
    /// ws://127.0.0.1:PORT/stream plus the REST depth snapshot endpoint.
    Serve {
        /// Recording files (`<ns> <message>` lines, gzip or plain), merged by time;
        /// default: the built-in data set.
        #[arg(long, num_args = 1..)]
        recording: Vec<PathBuf>,
        /// Seed of the built-in data set.
        #[arg(long, default_value_t = gen::GenParams::default().seed)]
        seed: u64,
        /// Events in the built-in data set.
        #[arg(long, default_value_t = gen::GenParams::default().events)]
        events: usize,
        /// WebSocket (and HTTP) port on 127.0.0.1; 0 picks a free one.
        #[arg(long, default_value_t = 9100)]
        port: u16,
        /// Extra port serving only the HTTP snapshot endpoint.
        #[arg(long, default_value_t = 9101)]
        http_port: u16,
        /// `max` (as fast as the client reads), `recorded`, or a factor such as `10x`.
        #[arg(long, default_value = "max")]
        pace: serve::Pacing,
        /// Fault: close the connection abruptly after every N messages.
        #[arg(long)]
        drop_every: Option<u64>,
        /// Fault: skip one depth message every N (a sequence gap).
        #[arg(long)]
        gap_every: Option<u64>,
        /// Fault: send a malformed frame after every N messages.
        #[arg(long)]
        malformed_every: Option<u64>,
        /// Fault: stall for --stall-ms after every N messages.
        #[arg(long)]
        stall_every: Option<u64>,
        /// Length of a stall, ms.
        #[arg(long, default_value_t = 0)]
        stall_ms: u64,
    },
    /// Run the engine on live market data (config `[feed]`) with the simulated venue.
    /// Without --config: start the replay server on loopback with the built-in data set
    /// and run against it over real sockets (the local demo).
    Run {
        /// Configuration with a `[feed]` section (e.g. config/local.toml, config/binance.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Events of the built-in data set for the local demo.
        #[arg(long, default_value_t = gen::GenParams::default().events)]
        events: usize,
        /// Directory for summary.json and the latency histograms.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Record raw market-data messages with their local receive times (gzip, flushed
    /// every second, rotated), until Ctrl-C or the server closes.
    Record {
        /// Configuration with a `[feed]` section.
        #[arg(long)]
        config: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Normalise data into a binary event file: our recordings (raw Binance messages),
    /// Tardis.dev CSV (incremental_book_L2, quotes, trades) and Binance public-data CSV
    /// (trades, aggTrades, futures bookTicker), plain or gzip, merged by time.
    Import {
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
        /// Input files.
        #[arg(required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
    },
    /// Generate the built-in data set into a binary event file, and/or its true hedge
    /// ratio and intercept as CSV.
    Gen {
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
    },
    /// The Avellaneda-Stoikov (2008) Monte Carlo: the inventory strategy against the
    /// symmetric one quoting the same spread (s0=100, T=1, sigma=2, dt=0.005, k=1.5,
    /// A=140 unless given).
    AsSim {
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
    },
    /// Run the Kalman hedge-ratio filter over a CSV: every row out with beta, alpha, e, q, z.
    /// With --fit: estimate its noise parameters by maximum likelihood instead.
    Kalman {
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
    },
    /// Estimate the Kalman noise parameters (delta_beta, delta_alpha, a fixed ve, and
    /// with --fit-halflife the spread half-life) by maximum likelihood on the pair as the
    /// Core samples it from the data; the config's [kalman] is the start and holds the
    /// rest. Prints the estimates and a [kalman] snippet.
    Fit {
        #[command(flatten)]
        input: DataArgs,
        /// Samples filtered but left out of the likelihood (default: the config's
        /// pairs.warmup, at least 10).
        #[arg(long)]
        burn: Option<usize>,
        /// Estimate the spread half-life too (else held at kalman.spread_halflife).
        #[arg(long)]
        fit_halflife: bool,
    },
}

/// The configuration and the data of `replay` and `fit`.
#[derive(Debug, clap::Args)]
struct DataArgs {
    /// Configuration file (default: the built-in config/default.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data files: event files (from `gen` or `import`), or anything `import` reads
    /// (converted on the fly); several are merged by time. Default: the built-in set.
    #[arg(long, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Seed of the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().seed, conflicts_with = "data")]
    seed: u64,
    /// Events in the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().events, conflicts_with = "data")]
    events: usize,
}

fn main() -> ExitCode {
    match dispatch(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the whole context chain on one line, no backtrace noise.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Latency { config, data, seed, events, out, pace } => {
            latency_cmd(config.as_deref(), data.as_deref(), seed, events, pace, out.as_deref())
        }
        Cmd::Replay { input: DataArgs { config, data, seed, events }, out, sensitivity } => {
            let cfg = load_config(config.as_deref())?;
            replay_cmd(&cfg, &data, seed, events, out.as_deref(), sensitivity)
        }
        Cmd::Sweep { grid, shard, data, events, out, threads, rank, top } => {
            let threads = statarb::sweep::threads(threads, std::env::var("SLURM_CPUS_PER_TASK").ok().as_deref())?;
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
            pool.install(|| sweep_cmd(&grid, shard, &data, events, out.as_deref(), &rank, top))
        }
        Cmd::Gen { seed, events, out, truth } => gen_cmd(seed, events, out.as_deref(), truth.as_deref()),
        Cmd::Import { config, out, format, symbol, book, max_bad, max_line_bytes, inputs } => {
            let cfg = load_config(config.as_deref())?;
            let limits = statarb::import::Limits { max_line_bytes, ..Default::default() };
            let opts = statarb::import::ImportOptions { format, symbol, recording_book: book, limits };
            import_cmd(&cfg, &inputs, &opts, max_bad, &out)
        }
        Cmd::Run { config, events, out } => run_cmd(config.as_deref(), events, out.as_deref()),
        #[cfg(feature = "mock")]
        Cmd::MockBinance { port, config, key_env, secret_env, balances } => {
            mock_binance_cmd(port, config.as_deref(), &key_env, &secret_env, &balances)
        }
        Cmd::Record { config, out, seconds } => record_cmd(&config, &out, seconds),
        Cmd::Serve {
            recording,
            seed,
            events,
            port,
            http_port,
            pace,
            drop_every,
            gap_every,
            malformed_every,
            stall_every,
            stall_ms,
        } => {
            let cfg = serve::ServeConfig {
                bind: SocketAddr::from(([127, 0, 0, 1], port)),
                http_bind: Some(SocketAddr::from(([127, 0, 0, 1], http_port))),
                pacing: pace,
                faults: serve::Faults { drop_every, gap_every, malformed_every, stall_every, stall_ms },
                ..serve::ServeConfig::default()
            };
            let source = if recording.is_empty() {
                serve::Source::Generated(Arc::new(gen::generate(&gen_params(seed, events)?)))
            } else {
                serve::Source::Recording(recording)
            };
            let stop = cli::signals::stop_flag()?;
            let handle = serve::spawn(cfg, source)?;
            eprintln!(
                "serving on ws://{}/stream, snapshots on http://{}/api/v3/depth; Ctrl-C to stop",
                handle.ws_addr(),
                handle.http_addr().unwrap_or(handle.ws_addr())
            );
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            handle.stop();
            eprintln!("serve: stopped");
            Ok(())
        }
        Cmd::AsSim { gamma, paths, seed, sigma, k, a, out } => {
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
        Cmd::Kalman {
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
        } => {
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
                kalman_fit_cmd(&input, &opts, FitOptions { burn, fit_halflife, ..FitOptions::default() })
            } else {
                kalman_cmd(&input, opts, output.as_deref())
            }
        }
        Cmd::Fit { input: DataArgs { config, data, seed, events }, burn, fit_halflife } => {
            let cfg = load_config(config.as_deref())?;
            fit_cmd(&cfg, &data, seed, events, burn, fit_halflife)
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::builtin(),
    })
}

fn latency_cmd(
    config: Option<&Path>,
    data: Option<&Path>,
    seed: u64,
    events: usize,
    pace: Pacing,
    out: Option<&Path>,
) -> Result<()> {
    let stop = cli::signals::stop_flag()?;
    let cfg = load_config(config)?;
    let (instruments, events) = match data {
        Some(p) => {
            let d = Dataset::open(&[p])?;
            (d.instruments().to_vec(), d.to_vec())
        }
        None => {
            let t = std::time::Instant::now();
            let ds = gen::generate(&gen_params(seed, events)?);
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
    let session_id = (events[0].local_ts / NS_PER_SEC) as u32;
    let params = cfg.core_params()?;
    let core = Core::new(&params, &instruments, session_id)?;
    let bt = Backtest::new(&cfg.backtest, &params, cfg.fees)?;
    let opts = RunOptions {
        ring_capacity: cfg.live.ring_capacity,
        pinning: Pinning { hot: cfg.live.hot_core, gateway: cfg.live.gateway_core },
        lockstep: pace == Pacing::Lockstep,
        cancel_timeout: std::time::Duration::from_millis(cfg.gateway.cancel_timeout_ms),
    };
    // The queue model is picked here, once; each is its own monomorphised run.
    use statarb::backtest::queue::{ProbLog, ProbPower, QueueConfig, RiskAverse};
    let (summary, latencies) = match cfg.backtest.queue {
        QueueConfig::RiskAverse {} => latency_run(&bt, core, &instruments, &events, RiskAverse, pace, &opts, &stop),
        QueueConfig::ProbPower { n } => {
            latency_run(&bt, core, &instruments, &events, ProbPower::new(n), pace, &opts, &stop)
        }
        QueueConfig::ProbLog {} => latency_run(&bt, core, &instruments, &events, ProbLog, pace, &opts, &stop),
    };
    report(&summary, &latencies, out)
}

/// The threaded run of `statarb latency` with queue model `queue`: the hot thread reads
/// `events` at the local times `replay` gives them, the venue on the gateway thread
/// ([`Backtest::replay_venue`]) reads them at exchange time; `stop` (SIGINT) ends it.
#[allow(clippy::too_many_arguments)]
fn latency_run<Q: statarb::backtest::queue::QueueModel>(
    bt: &Backtest,
    core: Core,
    instruments: &[Instrument],
    events: &[MarketEvent],
    queue: Q,
    pace: Pacing,
    opts: &RunOptions,
    stop: &AtomicBool,
) -> (Summary, statarb::metrics::Latencies) {
    let local = bt.local_events(events);
    let heard = local.as_deref().unwrap_or(events);
    let venue = bt.replay_venue(instruments, events, queue);
    let source = match pace {
        Pacing::Speed(x) => SliceSource::paced(heard, x),
        Pacing::Max | Pacing::Lockstep => SliceSource::new(heard),
    };
    let outcome = live::run(core, source, venue, opts, stop);
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    let mut summary = Summary::of_run(&outcome);
    summary.venue = Some(outcome.exchange.stats());
    (summary, outcome.latencies)
}

/// Prints the summary of a threaded run and writes `summary.json` and the `.hgrm`
/// histograms into `out`.
fn report(summary: &Summary, latencies: &statarb::metrics::Latencies, out: Option<&Path>) -> Result<()> {
    println!("{summary}");
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("summary.json");
        std::fs::write(&path, serde_json::to_string_pretty(summary)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        for stage in Stage::ALL {
            let path = dir.join(format!("{}.hgrm", stage.name()));
            let f = File::create(&path).with_context(|| format!("writing {}", path.display()))?;
            write_hgrm(latencies.get(stage), BufWriter::new(f))?;
        }
        eprintln!("wrote {}", dir.join("summary.json").display());
    }
    Ok(())
}

/// A live source's counters, for the end-of-run report.
trait FeedReport {
    fn report(&self, instruments: &[statarb::types::Instrument]) -> String;
}

impl FeedReport for BinanceFeed {
    fn report(&self, instruments: &[statarb::types::Instrument]) -> String {
        let syncs: Vec<String> = (0..instruments.len())
            .map(|i| {
                let s = self.sync(i as u16).stats();
                format!("{} syncs {} gaps {} overflows {}", instruments[i].symbol, s.syncs, s.gaps, s.overflows)
            })
            .collect();
        format!(
            "feed: {:?}\nwebsocket: {:?}{}\nbooks: {}",
            self.stats(),
            self.ws().stats(),
            self.ws().last_error().map(|e| format!(", last error: {e}")).unwrap_or_default(),
            syncs.join("; ")
        )
    }
}

impl FeedReport for AlpacaFeed {
    fn report(&self, _: &[statarb::types::Instrument]) -> String {
        format!(
            "feed: {:?} (session {:?})\nwebsocket: {:?}{}",
            self.stats(),
            self.state(),
            self.ws().stats(),
            self.ws().last_error().map(|e| format!(", last error: {e}")).unwrap_or_default(),
        )
    }
}

/// What a live run leaves for the report.
struct LiveResult {
    summary: Summary,
    latencies: statarb::metrics::Latencies,
}

/// Runs the engine on `source` with the configured venue behind the gateway thread;
/// a Binance gateway draws request weight from `budget`, the per-IP budget the feed's
/// snapshots also draw from.
fn run_live<S: live::MarketSource + Send + FeedReport>(
    cfg: &Config,
    core: Core,
    source: S,
    session_id: u32,
    opts: &RunOptions,
    stop: &AtomicBool,
    budget: &Arc<IpBudget>,
) -> Result<LiveResult> {
    let instruments = vec![cfg.y.instrument(), cfg.x.instrument()];
    match cfg.gateway.venue {
        GatewayVenue::Paper => {
            // The backtester's matching engine on the gateway thread, fed the live data:
            // queue position, partial fills and fees as in `replay`. The queue model is
            // picked here, once; each is its own monomorphised run.
            use statarb::backtest::queue::{ProbLog, ProbPower, QueueConfig, RiskAverse};
            match cfg.backtest.queue {
                QueueConfig::RiskAverse {} => run_paper(cfg, core, source, RiskAverse, opts, stop),
                QueueConfig::ProbPower { n } => run_paper(cfg, core, source, ProbPower::new(n), opts, stop),
                QueueConfig::ProbLog {} => run_paper(cfg, core, source, ProbLog, opts, stop),
            }
        }
        GatewayVenue::Binance => {
            let mut core = core;
            let mut venue = BinanceSpot::new(cfg.gateway.binance.clone(), instruments.clone(), cfg.fees)?;
            venue.share_budget(Arc::clone(budget));
            venue.start().context("starting the Binance gateway")?;
            // Before the first quote: leftover orders of earlier sessions are cancelled,
            // and the balances are the baseline the session's positions are counted from.
            let leftover = venue.reconcile(session_id).context("reconciling open orders")?;
            if !leftover.is_empty() {
                eprintln!("reconcile: {} open orders found at start (ours cancelled)", leftover.len());
            }
            // With a journal, the positions of earlier sessions, checked against the venue.
            let journal = match &cfg.gateway.journal {
                Some(path) => {
                    let (j, positions) = restore_from_journal(cfg, path, &mut venue, &instruments, session_id)?;
                    core.restore_positions(positions);
                    Some(j)
                }
                None => None,
            };
            let start = [*core.portfolio().position(0), *core.portfolio().position(1)];
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !venue.stream_ready() && std::time::Instant::now() < deadline {
                let mut reps = Vec::new();
                venue.poll(0, &mut reps);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if !venue.stream_ready() {
                eprintln!("warning: the user data stream is not subscribed; orders settle by queries");
            }
            let before = venue.balances().context("reading balances")?;
            let mut outcome = match journal {
                Some(j) => {
                    let o = live::run(core, source, statarb::journal::Journaled::new(venue, j), opts, stop);
                    let js = o.exchange.stats();
                    eprintln!(
                        "journal: {} records in {} writes, {} write errors, {} orders refused",
                        js.records, js.writes, js.write_errors, js.refused
                    );
                    o.map_exchange(|e| e.into_parts().0)
                }
                None => live::run(core, source, venue, opts, stop),
            };
            finish(cfg, &instruments, &outcome);
            for r in outcome.exchange.take_rejects() {
                eprintln!("venue reject: {r:?}");
            }
            eprintln!("binance gateway: {:?}", outcome.exchange.stats());
            match outcome.exchange.balances() {
                Ok(after) => print_reconciliation(&outcome.core, &instruments, &start, &before, &after),
                Err(e) => eprintln!("warning: final balances unavailable: {e}"),
            }
            let summary = Summary::of_run(&outcome);
            Ok(LiveResult { summary, latencies: outcome.latencies })
        }
    }
}

/// Opens the position journal at `path` (creating it with the venue's balances as the
/// baseline), recovers from the venue the fills of orders the journal left open, and
/// checks each leg's position against the venue's balance change since the baseline.
/// Returns the journal, open for the session, and the positions to start from; a
/// mismatch is an error: the engine does not quote on positions the venue does not hold.
fn restore_from_journal(
    cfg: &Config,
    path: &Path,
    venue: &mut BinanceSpot,
    instruments: &[Instrument],
    session_id: u32,
) -> Result<(statarb::journal::Journal, [statarb::portfolio::Position; 2])> {
    use statarb::journal::{reconcile, Journal};
    let insts = [instruments[0].clone(), instruments[1].clone()];
    let base = |i: &Instrument| {
        statarb::gateway::binance::split_symbol(&i.symbol)
            .map(|(b, _)| b)
            .with_context(|| format!("{}: no base asset in the symbol", i.symbol))
    };
    let assets = [base(&insts[0])?, base(&insts[1])?];
    let (mut journal, mut state) = Journal::open(
        path,
        &insts,
        [assets[0].as_str(), assets[1].as_str()],
        || venue.balances().map_err(|e| statarb::gateway::VenueError { code: 0, msg: e.to_string() }),
        session_id,
        cfg.gateway.journal_fsync,
        wall_ns().max(0) as u64,
    )
    .with_context(|| format!("opening the position journal {}", path.display()))?;
    let verb = if state.created { "created" } else { "read" };
    eprintln!(
        "journal {verb}: {} ({} earlier sessions, {} fills, {} orders to settle{})",
        path.display(),
        state.sessions,
        state.fills.len(),
        state.pending.len(),
        if state.torn_tail { ", a torn last line dropped" } else { "" }
    );
    let found = journal
        .recover(&mut state, &insts, (cfg.fees.maker_bps, cfg.fees.taker_bps), true, |p| venue.query_order(p.leg, p.id))
        .context("settling the journal's open orders with the venue")?;
    if found > 0 {
        eprintln!("journal: {found} fills found at the venue that no report carried (fees estimated)");
    }
    let positions = state.positions(insts.clone());
    let now = venue.balances().context("reading balances")?;
    let checks = reconcile(&state, &positions, &insts, &now)?;
    for c in &checks {
        eprintln!(
            "reconcile {} at start: journal position less base fees {} {} vs balance change since the journal began {}: {}",
            c.symbol,
            c.expected,
            c.asset,
            c.actual,
            if c.ok { "match" } else { "MISMATCH" }
        );
    }
    if let Some(c) = checks.iter().find(|c| !c.ok) {
        bail!(
            "{}: the journal's {} position ({} {}) is not the venue's ({}); not quoting on it. Settle the account or start a new journal",
            path.display(),
            c.symbol,
            c.expected,
            c.asset,
            c.actual
        );
    }
    Ok((journal, positions))
}

/// A live run against the paper venue with queue model `queue`.
fn run_paper<S: live::MarketSource + Send + FeedReport, Q: statarb::backtest::queue::QueueModel + Send>(
    cfg: &Config,
    core: Core,
    source: S,
    queue: Q,
    opts: &RunOptions,
    stop: &AtomicBool,
) -> Result<LiveResult> {
    let instruments = vec![cfg.y.instrument(), cfg.x.instrument()];
    // As `Backtest::engine` builds it for `replay`: the fees and the bad-data band.
    let mut venue = statarb::backtest::matching::MatchingEngine::new(instruments.clone(), cfg.fees, queue);
    venue.set_data_band_bps(cfg.risk.data_band_bps);
    let outcome = live::run(core, source, venue, opts, stop);
    finish(cfg, &instruments, &outcome);
    eprintln!("paper venue: {:?}", outcome.exchange.stats());
    let mut summary = Summary::of_run(&outcome);
    summary.venue = Some(outcome.exchange.stats());
    Ok(LiveResult { summary, latencies: outcome.latencies })
}

/// Prints the warnings and counters every live run ends with.
fn finish<S: FeedReport, E>(
    cfg: &Config,
    instruments: &[statarb::types::Instrument],
    outcome: &live::RunOutcome<S, E>,
) {
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!("{}", outcome.source.report(instruments));
    let g = &outcome.gateway_stats;
    if g.stop_timed_out {
        eprintln!(
            "warning: {} orders not confirmed cancelled within {} ms of the stop",
            g.unconfirmed_at_stop, cfg.gateway.cancel_timeout_ms
        );
    }
}

/// Compares each leg's position change over the session with the change of its base
/// asset's balance, the check that the portfolio and the venue agree.
fn print_reconciliation(
    core: &Core,
    instruments: &[statarb::types::Instrument],
    start: &[statarb::portfolio::Position; 2],
    before: &[statarb::gateway::Balance],
    after: &[statarb::gateway::Balance],
) {
    let total = |bals: &[statarb::gateway::Balance], asset: &str| {
        bals.iter().find(|b| b.asset == asset).map(|b| b.free.to_f64() + b.locked.to_f64()).unwrap_or(0.0)
    };
    for (l, inst) in instruments.iter().enumerate() {
        let Some((base, _)) = statarb::gateway::binance::split_symbol(&inst.symbol) else { continue };
        let delta = total(after, &base) - total(before, &base);
        let p = core.portfolio().position(l);
        // The session's trades: the position and fees less those it started with.
        let pos = inst.qty_f64(p.qty - start[l].qty);
        let fees_base = p.fees_base - start[l].fees_base;
        // The venue keeps base-asset commissions out of the balance.
        let ok = (delta - (pos - fees_base)).abs() <= inst.lot_f64() / 2.0;
        eprintln!(
            "reconcile {}: position change {pos} less {fees_base} {base} of fees vs {base} balance change {delta}: {}",
            inst.symbol,
            if ok { "match" } else { "MISMATCH" }
        );
    }
}

fn run_cmd(config: Option<&Path>, events: usize, out: Option<&Path>) -> Result<()> {
    let stop = cli::signals::stop_flag()?;
    let (cfg, server) = match config {
        Some(p) => (load_config(Some(p))?, None),
        None => {
            // The local demo: the replay server on free loopback ports, then the engine
            // against it exactly as against a venue.
            let ds = gen::generate(&gen_params(gen::GenParams::default().seed, events)?);
            let handle = serve::spawn(serve::ServeConfig::default(), serve::Source::Generated(Arc::new(ds)))?;
            let ws = handle.ws_addr();
            eprintln!("replay server on ws://{ws}/stream ({events} built-in events)");
            let overlay = format!(
                "extends = \"default\"\n[feed]\nvenue = \"binance\"\nws_url = \"ws://{ws}/stream\"\nrest_url = \"http://{ws}\"\nend_on_close = true\nclock = \"exchange\"\n"
            );
            (Config::from_toml(&overlay, "<local demo>")?, Some(handle))
        }
    };
    let Some(feed_cfg) = &cfg.feed else { bail!("the configuration has no [feed] section") };
    let instruments = vec![cfg.y.instrument(), cfg.x.instrument()];
    let (tap, rec_handle) = match &cfg.record {
        Some(r) => {
            let (t, h) = spawn_recorder(r)?;
            (Some(t), Some(h))
        }
        None => (None, None),
    };
    let session_id = (wall_ns() / NS_PER_SEC) as u32;
    let core = Core::new(&cfg.core_params()?, &instruments, session_id)?;
    let opts = RunOptions {
        ring_capacity: cfg.live.ring_capacity,
        pinning: Pinning { hot: cfg.live.hot_core, gateway: cfg.live.gateway_core },
        lockstep: false,
        cancel_timeout: std::time::Duration::from_millis(cfg.gateway.cancel_timeout_ms),
    };
    // One per-IP request-weight budget for the feed's snapshots and the gateway.
    let budget = Arc::new(cfg.gateway.binance.ip_budget());
    let result = match feed_cfg.venue {
        Venue::Binance => {
            let feed = BinanceFeed::with_budget(feed_cfg, &instruments, tap, Arc::clone(&budget))?;
            run_live(&cfg, core, feed, session_id, &opts, &stop, &budget)
        }
        Venue::Alpaca => {
            let feed = AlpacaFeed::new(feed_cfg, &feed_instruments(&cfg), tap)?;
            run_live(&cfg, core, feed, session_id, &opts, &stop, &budget)
        }
    };
    // The recording and the server end whatever happened to the run.
    if let Some(h) = rec_handle {
        let st = h.stop()?;
        eprintln!("recorded {} messages ({} dropped) into {} files", st.recorded, st.dropped, st.files);
    }
    if let Some(h) = server {
        h.stop();
    }
    let LiveResult { summary, latencies } = result?;
    report(&summary, &latencies, out)?;
    println!("\ntick-to-quote distribution (microseconds):");
    write_hgrm(latencies.get(Stage::TickToQuote), io::stdout().lock())?;
    Ok(())
}

/// The legs' instruments under their market-data symbols (`feed_symbol`, e.g. Alpaca's
/// `BTC/USD`); the index, which is the instrument id, stays the leg's.
fn feed_instruments(cfg: &Config) -> Vec<statarb::types::Instrument> {
    [&cfg.y, &cfg.x]
        .iter()
        .map(|l| {
            let mut i = l.instrument();
            if let Some(s) = &l.feed_symbol {
                i.symbol = s.clone();
            }
            i
        })
        .collect()
}

/// `statarb mock-binance`: the mock venue until SIGINT or SIGTERM.
#[cfg(feature = "mock")]
fn mock_binance_cmd(
    port: u16,
    config: Option<&Path>,
    key_env: &str,
    secret_env: &str,
    balances: &[String],
) -> Result<()> {
    use statarb::gateway::sign::Credentials;
    use statarb::mock::{MockBinance, MockConfig};
    let stop = cli::signals::stop_flag()?;
    let cfg = load_config(config)?;
    let instruments = vec![cfg.y.instrument(), cfg.x.instrument()];
    let var = |name: &str| std::env::var(name).with_context(|| format!("the environment variable {name} is not set"));
    let creds = Credentials::new(&var(key_env)?, &var(secret_env)?);
    let mut start: Vec<(String, f64)> = Vec::new();
    for inst in &instruments {
        if let Some((base, quote)) = statarb::gateway::binance::split_symbol(&inst.symbol) {
            for (asset, amount) in [(base, 100.0), (quote, 1_000_000.0)] {
                if !start.iter().any(|(a, _)| *a == asset) {
                    start.push((asset, amount));
                }
            }
        }
    }
    for b in balances {
        let (asset, amount) = b.split_once('=').with_context(|| format!("--balance {b}: not ASSET=AMOUNT"))?;
        let amount: f64 = amount
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .with_context(|| format!("--balance {b}: the amount is not a number >= 0"))?;
        start.retain(|(a, _)| a != asset);
        start.push((asset.to_string(), amount));
    }
    let mock = MockBinance::spawn_on(
        MockConfig {
            creds,
            instruments,
            balances: start.clone(),
            maker_bps: cfg.fees.maker_bps,
            taker_bps: cfg.fees.taker_bps,
        },
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
    .with_context(|| format!("starting the mock venue on 127.0.0.1:{port}"))?;
    let shown: Vec<String> = start.iter().map(|(a, v)| format!("{a}={v}")).collect();
    eprintln!(
        "mock Binance Spot: REST {} and WebSocket API {} (keys from {key_env}, {secret_env}; balances {}); Ctrl-C to stop",
        mock.rest_url(),
        mock.ws_url(),
        shown.join(" ")
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let st = mock.stats();
    mock.stop();
    eprintln!("mock Binance Spot stopped: {st:?}");
    Ok(())
}

fn spawn_recorder(r: &RecordConfig) -> Result<(RecordTap, RecorderHandle)> {
    let policy = RotatePolicy { max_bytes: r.rotate_mb << 20, max_age_secs: r.rotate_secs };
    Ok(Recorder::spawn_with_pool(&r.dir, &r.prefix, policy, r.pool)?)
}

fn record_cmd(config: &Path, out: &Path, seconds: Option<u64>) -> Result<()> {
    let cfg = load_config(Some(config))?;
    let Some(feed_cfg) = &cfg.feed else { bail!("{}: no [feed] section", config.display()) };
    let stop = cli::signals::stop_flag()?;
    let dir = out.display().to_string();
    let rc = match &cfg.record {
        Some(r) => RecordConfig { dir, ..r.clone() },
        None => RecordConfig::in_dir(dir),
    };
    let (tap, handle) = spawn_recorder(&rc)?;
    let instruments = vec![cfg.y.instrument(), cfg.x.instrument()];
    let url = match feed_cfg.venue {
        Venue::Binance => stream_url(&feed_cfg.ws_url, &instruments, feed_cfg.agg_trades),
        Venue::Alpaca => {
            // Alpaca needs the session (auth, subscribe): record through the feed itself.
            let mut feed = AlpacaFeed::new(feed_cfg, &feed_instruments(&cfg), Some(tap))?;
            eprintln!("recording {} into {}", feed_cfg.ws_url, out.display());
            let deadline = seconds.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
            while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| std::time::Instant::now() < d) {
                if let live::Polled::End = feed.poll(&mut |_| {}) {
                    break;
                }
            }
            eprintln!("feed: {:?} (session {:?})", feed.stats(), feed.state());
            drop(feed);
            let st = handle.stop()?;
            eprintln!(
                "recorded {} messages ({} dropped, {} bytes) into {} files",
                st.recorded, st.dropped, st.bytes, st.files
            );
            return Ok(());
        }
    };
    let mut ws_cfg = WsConfig::new(url);
    ws_cfg.read_buffer_size = feed_cfg.read_buffer_size;
    let mut ws = WsClient::new(ws_cfg, tls_config(&[])?, mio::Token(0))?;
    let mut poll = mio::Poll::new()?;
    let mut events = mio::Events::with_capacity(64);
    let deadline = seconds.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
    let mut opened = false;
    eprintln!("recording {} into {}", ws.config().url, out.display());
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| std::time::Instant::now() < d) {
        match poll.poll(&mut events, Some(std::time::Duration::from_millis(1))) {
            Ok(()) => {}
            // A signal arrived during the wait (Ctrl-C): the loop condition sees it.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("polling the feed socket"),
        }
        for ev in events.iter() {
            ws.on_event(ev);
        }
        let now = wall_ns();
        ws.poll(poll.registry(), now, |msg| {
            tap.record(now, msg);
        });
        opened |= ws.is_open();
        if feed_cfg.end_on_close && opened && !ws.is_open() {
            break;
        }
    }
    let st = handle.stop()?;
    eprintln!("recorded {} messages ({} dropped, {} bytes) into {} files", st.recorded, st.dropped, st.bytes, st.files);
    Ok(())
}

/// The data of a backtest: the built-in set, or files (event files read directly,
/// anything else through the importers with the config's legs), merged by time.
fn load_data(cfg: &Config, data: &[PathBuf], seed: u64, events: usize) -> Result<Dataset> {
    load_data_with_truth(cfg, data, seed, events).map(|(d, _)| d)
}

/// [`load_data`], with the generator's truth when the data is the built-in set.
fn load_data_with_truth(
    cfg: &Config,
    data: &[PathBuf],
    seed: u64,
    events: usize,
) -> Result<(Dataset, Option<gen::Truth>)> {
    if data.is_empty() {
        let t = std::time::Instant::now();
        let (ds, truth) = gen::generate_with_truth(&gen_params(seed, events)?);
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
        let instruments = vec![cfg.y.instrument(), cfg.x.instrument()];
        let imp = statarb::import::import_files(&others, &instruments, &Default::default())?;
        for r in &imp.reports {
            let names: Vec<String> = r.paths.iter().map(|p| p.display().to_string()).collect();
            eprintln!("{} ({}): {}", names.join(", "), r.format.name(), r.stats);
        }
        sources.push(Source::Memory { instruments, events: imp.events });
    }
    let d = Dataset::new(sources)?;
    if d.is_empty() {
        bail!("the data has no events");
    }
    Ok((d, None))
}

fn replay_cmd(
    cfg: &Config,
    data: &[PathBuf],
    seed: u64,
    events: usize,
    out: Option<&Path>,
    sensitivity: bool,
) -> Result<()> {
    let stop = cli::signals::stop_flag()?;
    let (events, truth) = load_data_with_truth(cfg, data, seed, events)?;
    let instruments = events.instruments().to_vec();
    let session_id = (events.iter().next().map_or(0, |e| e.local_ts) / NS_PER_SEC) as u32;
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
        println!("interrupted: the report is of the first {done} of {} events", events.len());
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
        let plots = statarb::backtest::plot::write_plots(trace, dir, truth.as_ref())?;
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
    events: &Dataset,
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

fn sweep_cmd(
    grid: &Path,
    shard: statarb::sweep::Shard,
    data: &[PathBuf],
    events: usize,
    out: Option<&Path>,
    rank: &str,
    top: usize,
) -> Result<()> {
    let stop = cli::signals::stop_flag()?;
    let grid = statarb::sweep::Grid::load(grid)?;
    let points = grid.points(shard)?;
    // The data is read once per seed; every point of a seed replays the same events.
    let base = points.first().map(|p| p.config.clone()).unwrap_or_else(Config::builtin);
    let default_seed = gen::GenParams::default().seed;
    let seed_of = |p: &statarb::sweep::Point| p.seed.unwrap_or(default_seed);
    if !data.is_empty() && points.iter().any(|p| p.seed.is_some()) {
        bail!("the grid varies {}: that is the built-in data's seed, and --data was given", statarb::sweep::SEED_KEY);
    }
    let mut sets = std::collections::BTreeMap::new();
    for p in &points {
        if let std::collections::btree_map::Entry::Vacant(slot) = sets.entry(seed_of(p)) {
            slot.insert(load_data(&base, data, seed_of(p), events)?);
        }
    }
    eprintln!(
        "sweep: {} of {} points (shard {}/{}), {} events each over {} data set(s), {} threads",
        points.len(),
        grid.len(),
        shard.index,
        shard.count,
        sets.values().next().map_or(0, Dataset::len),
        sets.len(),
        rayon::current_num_threads()
    );
    let t = std::time::Instant::now();
    let rows = statarb::sweep::run(&points, |p| -> Result<(BacktestReport, String)> {
        // Every point's seed was loaded above.
        // Every worker reads the same dataset: one mapping per file.
        let events = &sets[&seed_of(p)];
        let instruments = events.instruments();
        // The session id (the high half of order ids) as `replay` sets it: a point's
        // digest is the digest of a replay with the point's config.
        let session_id = (events.iter().next().map_or(0, |e| e.local_ts) / NS_PER_SEC) as u32;
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
    let sink: Box<dyn io::Write> = match out {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(io::stdout().lock()),
    };
    let mut w = csv::Writer::from_writer(sink);
    let metrics = statarb::sweep::METRICS;
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
                let cells = statarb::sweep::metric_cells(&r, digest);
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
    let lower_is_better = statarb::sweep::lower_is_better(rank);
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

fn gen_params(seed: u64, events: usize) -> Result<gen::GenParams> {
    let p = gen::GenParams { seed, events, ..gen::GenParams::default() };
    p.validate()?;
    Ok(p)
}

fn import_cmd(
    cfg: &Config,
    inputs: &[PathBuf],
    opts: &statarb::import::ImportOptions,
    max_bad: Option<u64>,
    out: &Path,
) -> Result<()> {
    let outputs = Outputs::watch()?;
    let instruments = vec![cfg.y.instrument(), cfg.x.instrument()];
    let t = std::time::Instant::now();
    let imp = statarb::import::import_files(inputs, &instruments, opts)?;
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
    let mut w = BufWriter::new(outputs.create(out)?);
    let written = evfile::write(&mut w, &instruments, &imp.events).map_err(anyhow::Error::from).and_then(|()| {
        w.flush().with_context(|| format!("writing {}", out.display()))?;
        Ok(())
    });
    if let Err(e) = written {
        outputs.abandon();
        return Err(e);
    }
    outputs.commit(out)?;
    eprintln!("wrote {} events to {} in {:.2?}", imp.events.len(), out.display(), t.elapsed());
    Ok(())
}

fn gen_cmd(seed: u64, events: usize, out: Option<&Path>, truth_out: Option<&Path>) -> Result<()> {
    let outputs = Outputs::watch()?;
    let (ds, truth) = gen::generate_with_truth(&gen_params(seed, events)?);
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

fn kalman_cmd(input: &Path, opts: CsvOptions, output: Option<&Path>) -> Result<()> {
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
fn kalman_fit_cmd(input: &Path, opts: &CsvOptions, fit_opts: FitOptions) -> Result<()> {
    let _signals = Outputs::watch()?;
    opts.params.validate()?;
    let name = input.display().to_string();
    let r = BufReader::new(File::open(input).with_context(|| format!("opening {name}"))?);
    let (pairs, stats) = read_xy(r, &opts.y, &opts.x, opts.skip_bad).with_context(|| name.clone())?;
    eprintln!("{name}: rows {}, read {}, skipped {}", stats.rows, stats.written, stats.skipped);
    let r = fit(&pairs, &opts.params, &fit_opts).with_context(|| name.clone())?;
    print_fit(&r);
    Ok(())
}

/// `statarb fit`: the data through a `Core` built from `cfg` (no venue: its orders
/// are dropped), taking `(mid x, mid y)` whenever the Core fed its filter (an update
/// accepted or skipped), then the fit from `cfg.kalman`.
fn fit_cmd(
    cfg: &Config,
    data: &[PathBuf],
    seed: u64,
    events: usize,
    burn: Option<usize>,
    fit_halflife: bool,
) -> Result<()> {
    let _signals = Outputs::watch()?;
    let source = if data.is_empty() {
        format!("the built-in data set (seed {seed}, {events} events)")
    } else {
        data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    };
    let events = load_data(cfg, data, seed, events)?;
    let instruments = events.instruments();
    let mut core = Core::new(&cfg.core_params()?, instruments, 0).with_context(|| source.clone())?;
    let mut out = statarb::core::Commands::new();
    let mut fed = 0;
    let mut samples = Vec::new();
    for ev in events.iter() {
        out.clear();
        core.on_market(&ev, ev.local_ts, &mut out);
        let st = core.stats();
        if st.signals + st.signals_skipped > fed {
            fed = st.signals + st.signals_skipped;
            if let (Some(x), Some(y)) = (core.mid(statarb::core::LEG_X), core.mid(statarb::core::LEG_Y)) {
                samples.push((x, y));
            }
        }
    }
    eprintln!(
        "{source}: {} events, {} samples of ({}, {}) every {} ms",
        events.len(),
        samples.len(),
        cfg.x.symbol,
        cfg.y.symbol,
        cfg.signal.sample_ms
    );
    let burn = burn.unwrap_or((cfg.pairs.warmup as usize).max(DEFAULT_BURN));
    let r = fit(&samples, &cfg.kalman, &FitOptions { burn, fit_halflife, ..FitOptions::default() })
        .with_context(|| source.clone())?;
    print_fit(&r);
    Ok(())
}

/// The estimates, a blank line, and the `[kalman]` snippet, on stdout.
fn print_fit(r: &FitResult) {
    println!("{r}");
    print!("{}", r.to_toml());
}

/// `--prices` of `statarb kalman`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PricesArg {
    /// Prices as they are.
    Levels,
    /// Natural logarithms of the prices.
    Log,
}
