//! The live market-data feed's settings, config `[feed]`: which venue, where, and how
//! the feed's clock drives the engine.
//!
//! Defined next to the feeds that read them ([`crate::feed::source`]); the
//! configuration loader deserialises the table and calls [`FeedConfig::validate`].

use serde::Deserialize;
use thiserror::Error;

/// Market-data venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Venue {
    /// Binance Spot combined streams (book ticker, diff depth, trades) + REST snapshots.
    Binance,
    /// Alpaca crypto market data v1beta3 (quotes, trades).
    Alpaca,
}

/// Where the live driver's `now` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedClock {
    /// The local wall clock.
    #[default]
    Wall,
    /// The latest exchange event time seen.
    Exchange,
}

/// The live market-data feed, from config `[feed]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Venue protocol.
    pub venue: Venue,
    /// WebSocket URL. Binance: the combined-stream base (`wss://stream.binance.com:9443/stream`),
    /// to which `?streams=...` for both legs is appended. Alpaca: the full feed URL.
    pub ws_url: String,
    /// Binance REST base URL for depth snapshots (`https://api.binance.com`).
    #[serde(default)]
    pub rest_url: String,
    /// Book levels kept per side.
    #[serde(default = "default_depth_levels")]
    pub depth_levels: usize,
    /// Levels requested per REST snapshot.
    #[serde(default = "default_snapshot_limit")]
    pub snapshot_limit: u32,
    /// Subscribe to `aggTrade` instead of `trade`.
    #[serde(default)]
    pub agg_trades: bool,
    /// tungstenite's read buffer, bytes (it zero-fills this much before each read).
    #[serde(default = "default_read_buffer")]
    pub read_buffer_size: usize,
    /// Treat the server closing the connection as the end of the run (the replay
    /// server closes with "end of data"); otherwise reconnect.
    #[serde(default)]
    pub end_on_close: bool,
    /// The engine's clock: `wall` (live trading), or `exchange` (the messages' event
    /// times: for replay servers that send faster than real time, so that sampling,
    /// volatility and sessions keep their meaning).
    #[serde(default)]
    pub clock: FeedClock,
    /// Alpaca: environment variable holding the API key id.
    #[serde(default)]
    pub key_env: Option<String>,
    /// Alpaca: environment variable holding the API secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Read the replay server's send stamps (an 8-byte binary frame before each message,
    /// `statarb latency --wire`), for the wire stage of the latency table. Only for a
    /// server on the same host (the same TSC); a real venue sends none. Default false.
    #[serde(default)]
    pub wire_stamps: bool,
    /// Busy-poll the socket (true, the default: the hot thread never sleeps), or block
    /// in epoll for up to 1 ms when nothing is ready (false: `latency --compare-blocking`'s
    /// conventional event loop, which spares the core).
    #[serde(default = "default_busy_poll")]
    pub busy_poll: bool,
}

fn default_busy_poll() -> bool {
    true
}

fn default_depth_levels() -> usize {
    20
}
fn default_snapshot_limit() -> u32 {
    100
}
fn default_read_buffer() -> usize {
    64 * 1024
}

/// Invalid feed settings; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("feed.{key}: {msg}")]
pub struct FeedConfigError {
    /// Offending key under `[feed]`.
    pub key: &'static str,
    /// What is wrong.
    pub msg: String,
}

impl FeedConfig {
    /// Checks the URL schemes, the credentials a venue needs, the book depth (at most
    /// [`crate::book::MAX_LEVELS`]) and the read buffer size.
    pub fn validate(&self) -> Result<(), FeedConfigError> {
        let bad = |key, msg: String| Err(FeedConfigError { key, msg });
        if !(self.ws_url.starts_with("ws://") || self.ws_url.starts_with("wss://")) {
            return bad("ws_url", format!("must start with ws:// or wss://, got {:?}", self.ws_url));
        }
        let http = self.rest_url.starts_with("http://") || self.rest_url.starts_with("https://");
        if self.venue == Venue::Binance && !http {
            return bad("rest_url", "must be an http:// or https:// URL for venue binance".into());
        }
        if self.venue == Venue::Alpaca && (self.key_env.is_none() || self.secret_env.is_none()) {
            return bad("key_env", "venue alpaca needs key_env and secret_env".into());
        }
        if !(1..=crate::book::MAX_LEVELS).contains(&self.depth_levels) {
            return bad("depth_levels", format!("must be in 1..={}", crate::book::MAX_LEVELS));
        }
        if !(1024..=1 << 24).contains(&self.read_buffer_size) {
            return bad("read_buffer_size", "must be in 1024..=16777216".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binance() -> FeedConfig {
        toml::from_str("venue = \"binance\"\nws_url = \"ws://127.0.0.1:1/stream\"\nrest_url = \"http://127.0.0.1:2\"\n")
            .unwrap()
    }

    #[test]
    fn defaults_and_errors_name_their_key() {
        let f = binance();
        assert_eq!((f.depth_levels, f.snapshot_limit, f.read_buffer_size), (20, 100, 64 * 1024));
        assert_eq!(f.clock, FeedClock::Wall);
        assert!(f.validate().is_ok());
        for (f, key) in [
            (FeedConfig { ws_url: "http://x".into(), ..binance() }, "ws_url"),
            (FeedConfig { rest_url: String::new(), ..binance() }, "rest_url"),
            (FeedConfig { venue: Venue::Alpaca, ..binance() }, "key_env"),
            (FeedConfig { depth_levels: 0, ..binance() }, "depth_levels"),
            (FeedConfig { read_buffer_size: 1 << 25, ..binance() }, "read_buffer_size"),
        ] {
            let e = f.validate().unwrap_err();
            assert_eq!(e.key, key);
            assert!(e.to_string().starts_with(&format!("feed.{key}: ")), "{e}");
        }
    }
}
