//! `statarb mock-binance`: the mock Binance Spot venue on 127.0.0.1 until SIGINT or
//! SIGTERM, for a dry run of a live config. Built only with `--features mock`. It
//! prints its REST URL and its WebSocket API URL: on the REST port, or with
//! `--ws-port` on a listener of its own, as Binance serves the WebSocket API from its
//! own host (the REST port keeps serving it as well).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use statarb::gateway::binance::split_symbol;
use statarb::gateway::sign::Credentials;
use statarb::mock::{MockBinance, MockConfig};

/// Arguments of `statarb mock-binance`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port (0: a free one, printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Also serve the WebSocket API on this port of its own (0: a free one, printed),
    /// as Binance serves it from its own host; the REST port keeps serving it too.
    #[arg(long)]
    ws_port: Option<u16>,
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
}

/// Runs `statarb mock-binance`.
pub fn run(args: Args) -> Result<()> {
    let Args { port, ws_port, config, key_env, secret_env, balances } = args;
    mock_binance(port, ws_port, config.as_deref(), &key_env, &secret_env, &balances)
}

/// `statarb mock-binance`: the mock venue until SIGINT or SIGTERM.
fn mock_binance(
    port: u16,
    ws_port: Option<u16>,
    config: Option<&Path>,
    key_env: &str,
    secret_env: &str,
    balances: &[String],
) -> Result<()> {
    let stop = super::signals::stop_flag()?;
    let cfg = super::load_config(config)?;
    let instruments = cfg.instruments();
    let var = |name: &str| std::env::var(name).with_context(|| format!("the environment variable {name} is not set"));
    let creds = Credentials::new(&var(key_env)?, &var(secret_env)?);
    let mut start: Vec<(String, f64)> = Vec::new();
    for inst in &instruments {
        if let Some((base, quote)) = split_symbol(&inst.symbol) {
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
    let local = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let mock = MockBinance::spawn_with_ws(
        MockConfig {
            creds,
            instruments,
            balances: start.clone(),
            maker_bps: cfg.fees.maker_bps,
            taker_bps: cfg.fees.taker_bps,
        },
        local(port),
        ws_port.map(local),
    )
    .with_context(|| match ws_port {
        Some(w) => format!("starting the mock venue on 127.0.0.1:{port} (WebSocket API on 127.0.0.1:{w})"),
        None => format!("starting the mock venue on 127.0.0.1:{port}"),
    })?;
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
