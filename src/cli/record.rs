//! `statarb record`: raw market-data messages with their local receive times (gzip,
//! flushed every second, rotated), until Ctrl-C, `--seconds` or the server closes. On
//! Binance the live feed runs (its book sync fetches REST depth snapshots off the
//! reading thread), and every snapshot is recorded as a tagged line, so that the
//! recording replays with the live book procedure ([`statarb::feed::record`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use statarb::config::{RecordConfig, Venue};
use statarb::feed::source::{stream_url, AlpacaFeed, BinanceFeed, MarketSource, Polled};

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
    // The feed itself, so that its book sync fetches the REST snapshots the recording
    // needs to replay with `--book sync`; its snapshot thread records them.
    let mut feed = BinanceFeed::new(feed_cfg, &instruments, Some(tap))?;
    let deadline = seconds.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
    eprintln!("recording {url} into {}", out.display());
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| std::time::Instant::now() < d) {
        match feed.wait(std::time::Duration::from_millis(1)) {
            Ok(()) => {}
            // A signal arrived during the wait (Ctrl-C): the loop condition sees it.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("polling the feed socket"),
        }
        // Events are not needed: the tap records every message and snapshot.
        let mut ended = false;
        loop {
            match feed.poll(&mut |_| {}) {
                Polled::Events => {}
                Polled::Idle => break,
                Polled::End => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            break;
        }
    }
    let fs = feed.stats();
    eprintln!(
        "feed: {} messages, {} snapshots requested ({} failed, {} stale)",
        fs.messages, fs.snapshots_requested, fs.snapshot_errors, fs.snapshot_stale
    );
    // Stops the snapshot thread before the writer, so that its last snapshot is written.
    drop(feed);
    let st = handle.stop()?;
    eprintln!("recorded {} messages ({} dropped, {} bytes) into {} files", st.recorded, st.dropped, st.bytes, st.files);
    Ok(())
}
