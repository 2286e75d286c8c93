//! The `statarb` command line: argument parsing and dispatch. Each command is a module
//! of [`cli`] with its arguments and its `run`.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    Replay(cli::replay::Args),
    /// Run a parameter grid of backtests in parallel (rayon), one CSV row per point.
    Sweep(cli::sweep::Args),
    /// Walk-forward: on each training window the grid's best point by a metric, then
    /// that point out of sample on the test window after it, its filter and positions
    /// carried from the training window as a live run's; per-fold figures, the stitched
    /// out-of-sample equity and its totals.
    Walkforward(cli::walkforward::Args),
    /// Measure tick-to-quote latency: the live thread model (pinned hot thread, rings,
    /// gateway thread, simulated venue) over a data set, the built-in one by default.
    /// The venue is `replay`'s matching engine and reads the data at exchange time; the
    /// core hears it at `replay`'s local times (`backtest.feed_latency`); orders take no
    /// simulated time.
    Latency(cli::latency::Args),
    /// The mock Binance Spot venue (signed REST, the WebSocket API's trading methods and
    /// user data stream, on the REST port and, with `--ws-port`, on a port of its own)
    /// on 127.0.0.1, for a dry run of a live config: point `gateway.binance.rest_url`
    /// and `ws_url` at the URLs it prints. Built only with `--features mock`.
    #[cfg(feature = "mock")]
    MockBinance(cli::mock_binance::Args),
    /// Serve a recording, or the built-in data set, as Binance combined streams on
    /// ws://127.0.0.1:PORT/stream plus the REST depth snapshot endpoint.
    Serve(cli::serve::Args),
    /// Run the engine on live market data (config `[feed]`) with the configured venue.
    /// Without --config: start the replay server on loopback with the built-in data set
    /// and run against it over real sockets (the local demo).
    Run(cli::run::Args),
    /// Record raw market-data messages with their local receive times (gzip, flushed
    /// every second, rotated), until Ctrl-C or the server closes.
    Record(cli::record::Args),
    /// Normalise data into a binary event file: our recordings (raw Binance messages),
    /// Tardis.dev CSV (incremental_book_L2, quotes, trades) and Binance public-data CSV
    /// (trades, aggTrades, futures bookTicker), plain or gzip, merged by time.
    Import(cli::import::Args),
    /// Generate the built-in data set into a binary event file, and/or its true hedge
    /// ratio and intercept as CSV.
    Gen(cli::gen::Args),
    /// The Avellaneda-Stoikov (2008) Monte Carlo: the inventory strategy against the
    /// symmetric one quoting the same spread (s0=100, T=1, sigma=2, dt=0.005, k=1.5,
    /// A=140 unless given).
    AsSim(cli::as_sim::Args),
    /// Run the Kalman hedge-ratio filter over a CSV: every row out with beta, alpha, e, q, z.
    /// With --fit: estimate its noise parameters by maximum likelihood instead.
    Kalman(cli::kalman::Args),
    /// Estimate the Kalman noise parameters (delta_beta, delta_alpha, a fixed ve, and
    /// with --fit-halflife the spread half-life) by maximum likelihood on the pair as the
    /// Core samples it from the data; the config's [kalman] is the start and holds the
    /// rest. Prints the estimates and a [kalman] snippet.
    Fit(cli::fit::Args),
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
        Cmd::Replay(a) => cli::replay::run(a),
        Cmd::Sweep(a) => cli::sweep::run(a),
        Cmd::Walkforward(a) => cli::walkforward::run(a),
        Cmd::Latency(a) => cli::latency::run(a),
        #[cfg(feature = "mock")]
        Cmd::MockBinance(a) => cli::mock_binance::run(a),
        Cmd::Serve(a) => cli::serve::run(a),
        Cmd::Run(a) => cli::run::run(a),
        Cmd::Record(a) => cli::record::run(a),
        Cmd::Import(a) => cli::import::run(a),
        Cmd::Gen(a) => cli::gen::run(a),
        Cmd::AsSim(a) => cli::as_sim::run(a),
        Cmd::Kalman(a) => cli::kalman::run(a),
        Cmd::Fit(a) => cli::fit::run(a),
    }
}
