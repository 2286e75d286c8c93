//! `statarb run`: the engine on live market data (`[feed]`) with the configured venue;
//! without `--config`, the local demo: the replay server on loopback with the built-in
//! data set, and the engine against it over real sockets.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use statarb::config::{Config, Venue};
use statarb::core::Core;
use statarb::feed::gen;
use statarb::feed::snapshot::wall_ns;
use statarb::feed::source::{AlpacaFeed, BinanceFeed};
use statarb::metrics::{write_hgrm, Stage};
use statarb::serve;
use statarb::session::{run_live, LiveResult};
use statarb::types::NS_PER_SEC;

/// Arguments of `statarb run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration with a `[feed]` section (e.g. config/local.toml, config/binance.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Events of the built-in data set for the local demo.
    #[arg(long, default_value_t = gen::GenParams::default().events)]
    events: usize,
    /// Directory for summary.json and the latency histograms.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (overrides `monitor.metrics_addr`;
    /// port 0 takes a free port, logged at start).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Seconds between status lines, 0 for none (overrides `monitor.status_secs`).
    #[arg(long, value_name = "SECS")]
    status_secs: Option<u64>,
}

/// Runs `statarb run`.
pub fn run(args: Args) -> Result<()> {
    run_session(&args)
}

fn run_session(args: &Args) -> Result<()> {
    let (config, events, out) = (args.config.as_deref(), args.events, args.out.as_deref());
    let stop = super::signals::stop_flag()?;
    let (mut cfg, server) = match config {
        Some(p) => (super::load_config(Some(p))?, None),
        None => {
            // The local demo: the replay server on free loopback ports, then the engine
            // against it exactly as against a venue.
            let ds = gen::generate(&super::gen_params(gen::GenParams::default().seed, events)?);
            let handle = serve::spawn(serve::ServeConfig::default(), serve::Source::Generated(Arc::new(ds)))?;
            let ws = handle.ws_addr();
            eprintln!("replay server on ws://{ws}/stream ({events} built-in events)");
            let overlay = format!(
                "extends = \"default\"\n[feed]\nvenue = \"binance\"\nws_url = \"ws://{ws}/stream\"\nrest_url = \"http://{ws}\"\nend_on_close = true\nclock = \"exchange\"\n"
            );
            (Config::from_toml(&overlay, "<local demo>")?, Some(handle))
        }
    };
    if let Some(a) = args.metrics_addr {
        cfg.monitor.metrics_addr = Some(a);
    }
    if let Some(s) = args.status_secs {
        cfg.monitor.status_secs = s;
    }
    super::init_logging(&cfg.monitor)?;
    let Some(feed_cfg) = &cfg.feed else { bail!("the configuration has no [feed] section") };
    if cfg.live.mlock {
        statarb::mlock::lock_all()?;
        eprintln!("memory locked (live.mlock)");
    }
    let instruments = cfg.instruments();
    let (tap, rec_handle) = match &cfg.record {
        Some(r) => {
            let (t, h) = super::spawn_recorder(r)?;
            (Some(t), Some(h))
        }
        None => (None, None),
    };
    let session_id = (wall_ns() / NS_PER_SEC) as u32;
    let core = Core::new(&cfg.core_params()?, &instruments, session_id)?;
    let opts = cfg.run_options(false);
    // One per-IP request-weight budget for the feed's snapshots and the gateway.
    let budget = Arc::new(cfg.gateway.binance.ip_budget());
    let mut note = |line: &str| tracing::info!(target: "statarb::session", "{line}");
    let result = match feed_cfg.venue {
        Venue::Binance => {
            let feed = BinanceFeed::with_budget(feed_cfg, &instruments, tap, Arc::clone(&budget))?;
            run_live(&cfg, core, feed, session_id, &opts, &stop, &budget, &mut note)
        }
        Venue::Alpaca => {
            let feed = AlpacaFeed::new(feed_cfg, &cfg.feed_instruments(), tap)?;
            run_live(&cfg, core, feed, session_id, &opts, &stop, &budget, &mut note)
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
    let LiveResult { summary, latencies, .. } = result?;
    super::write_run_report(&summary, &latencies, out)?;
    println!("\ntick-to-quote distribution (microseconds):");
    write_hgrm(latencies.get(Stage::TickToQuote), io::stdout().lock())?;
    Ok(())
}
