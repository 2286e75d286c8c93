//! `statarb record`: raw market-data messages with their local receive times (gzip,
//! flushed every second, rotated), until Ctrl-C, `--seconds` or the server closes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use statarb::config::{RecordConfig, Venue};
use statarb::feed::snapshot::wall_ns;
use statarb::feed::source::{stream_url, AlpacaFeed, MarketSource, Polled};
use statarb::feed::ws::{tls_config, WsClient, WsConfig};

/// Arguments of `statarb record`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration with a `[feed]` section.
    #[arg(long)]
    config: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<u64>,
}

/// Runs `statarb record`.
pub fn run(args: Args) -> Result<()> {
    record(&args.config, &args.out, args.seconds)
}

fn record(config: &Path, out: &Path, seconds: Option<u64>) -> Result<()> {
    let cfg = super::load_config(Some(config))?;
    let Some(feed_cfg) = &cfg.feed else { bail!("{}: no [feed] section", config.display()) };
    let stop = super::signals::stop_flag()?;
    let dir = out.display().to_string();
    let rc = match &cfg.record {
        Some(r) => RecordConfig { dir, ..r.clone() },
        None => RecordConfig::in_dir(dir),
    };
    let (tap, handle) = super::spawn_recorder(&rc)?;
    let instruments = cfg.instruments();
    let url = match feed_cfg.venue {
        Venue::Binance => stream_url(&feed_cfg.ws_url, &instruments, feed_cfg.agg_trades),
        Venue::Alpaca => {
            // Alpaca needs the session (auth, subscribe): record through the feed itself.
            let mut feed = AlpacaFeed::new(feed_cfg, &cfg.feed_instruments(), Some(tap))?;
            eprintln!("recording {} into {}", feed_cfg.ws_url, out.display());
            let deadline = seconds.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
            while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| std::time::Instant::now() < d) {
                if let Polled::End = feed.poll(&mut |_| {}) {
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
