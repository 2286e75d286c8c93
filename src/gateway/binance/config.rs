//! `[gateway.binance]`: where the venue is, where the keys are, and the timeouts and
//! limits of the gateway, with their range checks.
//!
//! Every key has a default (the Spot testnet, keys in `BINANCE_API_KEY` /
//! `BINANCE_API_SECRET`), so the table may be empty. [`BinanceGatewayConfig::validate`]
//! names the first key out of range ([`BinanceConfigError`]); the config loader reports
//! it as `gateway.binance.<key>`.

use std::fmt;

use serde::Deserialize;
use thiserror::Error;

use crate::gateway::limits::RateLimits;
use crate::ratelimit::IpBudget;

/// The Spot testnet REST base URL (the default).
pub const TESTNET_REST_URL: &str = "https://testnet.binance.vision";
/// The Spot testnet WebSocket API URL (the default user data stream).
pub const TESTNET_WS_API_URL: &str = "wss://ws-api.testnet.binance.vision/ws-api/v3";

/// Gateway settings, from config `[gateway.binance]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinanceGatewayConfig {
    /// REST base URL.
    #[serde(default = "default_rest_url")]
    pub rest_url: String,
    /// WebSocket API URL for the user data stream; empty disables the stream (orders
    /// then settle by queries only).
    #[serde(default = "default_ws_url")]
    pub ws_url: String,
    /// Environment variable holding the API key.
    #[serde(default = "default_key_env")]
    pub key_env: String,
    /// Environment variable holding the API secret.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// `recvWindow` of every signed request, ms (Binance: default 5000, max 60000).
    #[serde(default = "default_recv_window")]
    pub recv_window_ms: u64,
    /// Limit for one REST call (connect, send, answer), ms.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Limit for the user data stream's connect and handshake, ms.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// How often an order of unknown state is queried, ms.
    #[serde(default = "default_settle")]
    pub settle_interval_ms: u64,
    /// How often the server clock offset is re-measured, s (0: only on `-1021`).
    #[serde(default = "default_time_sync")]
    pub time_sync_interval_s: u64,
    /// Cancel every open order on our symbols at start
    /// ([`BinanceSpot::reconcile`](super::BinanceSpot::reconcile)).
    #[serde(default = "default_true")]
    pub cancel_open_at_start: bool,
    /// Order and weight limits applied before sending.
    #[serde(default)]
    pub limits: RateLimits,
    /// Longest server-imposed back-off honoured, s: a `Retry-After` above it is cut to
    /// it (default 300; 1..=86400).
    #[serde(default = "default_retry_after_cap")]
    pub retry_after_cap_s: u64,
    /// Largest accepted difference between the venue's `serverTime` and the local
    /// clock, ms (default 1 h; 1..=86400000). A larger one is refused and the
    /// previous offset kept.
    #[serde(default = "default_max_clock_skew")]
    pub max_clock_skew_ms: u64,
    /// Order entry transport: `"ws"` (the default: pipelined requests over the
    /// WebSocket API connection at `ws_url`, [`super::wsapi`]) or `"rest"` (one
    /// blocking signed REST request at a time, [`super::rest`]). Read it with
    /// [`Self::order_entry`]; any other value is [`BinanceConfigError::Orders`].
    #[serde(default = "default_orders")]
    pub orders: String,
    /// Environment variable holding the API key of an Ed25519 key pair (empty: none).
    /// With [`Self::ed25519_pem_env`] it makes every WebSocket API connection log on
    /// with `session.logon`, so that its requests need no signature.
    #[serde(default)]
    pub ed25519_key_env: String,
    /// Environment variable holding that key's private key: the PKCS#8 PEM text, or
    /// the path of the PEM file (empty: none).
    #[serde(default)]
    pub ed25519_pem_env: String,
}

/// How the gateway sends orders (`gateway.binance.orders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEntry {
    /// WebSocket API requests, sent without waiting for earlier answers.
    Ws,
    /// Blocking REST requests, one at a time.
    Rest,
}

fn default_rest_url() -> String {
    TESTNET_REST_URL.into()
}
fn default_ws_url() -> String {
    TESTNET_WS_API_URL.into()
}
fn default_key_env() -> String {
    "BINANCE_API_KEY".into()
}
fn default_secret_env() -> String {
    "BINANCE_API_SECRET".into()
}
fn default_recv_window() -> u64 {
    5_000
}
fn default_timeout() -> u64 {
    5_000
}
fn default_connect_timeout() -> u64 {
    10_000
}
fn default_settle() -> u64 {
    1_000
}
fn default_time_sync() -> u64 {
    300
}
fn default_true() -> bool {
    true
}
fn default_retry_after_cap() -> u64 {
    crate::ratelimit::DEFAULT_RETRY_AFTER_CAP_S
}
fn default_max_clock_skew() -> u64 {
    3_600_000
}
fn default_orders() -> String {
    "ws".into()
}

impl Default for BinanceGatewayConfig {
    /// The Spot testnet, keys in `BINANCE_API_KEY` / `BINANCE_API_SECRET`: what an
    /// empty `[gateway.binance]` table gives.
    fn default() -> Self {
        BinanceGatewayConfig {
            rest_url: default_rest_url(),
            ws_url: default_ws_url(),
            key_env: default_key_env(),
            secret_env: default_secret_env(),
            recv_window_ms: default_recv_window(),
            timeout_ms: default_timeout(),
            connect_timeout_ms: default_connect_timeout(),
            settle_interval_ms: default_settle(),
            time_sync_interval_s: default_time_sync(),
            cancel_open_at_start: default_true(),
            limits: RateLimits::default(),
            retry_after_cap_s: default_retry_after_cap(),
            max_clock_skew_ms: default_max_clock_skew(),
            orders: default_orders(),
            ed25519_key_env: String::new(),
            ed25519_pem_env: String::new(),
        }
    }
}

/// A `[gateway.binance]` value out of range: one variant per key.
///
/// [`key`](Self::key) is the full key (`gateway.binance.recv_window_ms`),
/// [`reason`](Self::reason) what is wrong; the message is `key: reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BinanceConfigError {
    /// `rest_url` is not an `http://` or `https://` URL.
    RestUrl,
    /// `ws_url` is neither empty nor a `ws://` or `wss://` URL.
    WsUrl,
    /// `key_env` or `secret_env` is empty.
    KeyEnv,
    /// `recv_window_ms` is outside 1..=60000.
    RecvWindowMs,
    /// `timeout_ms` is 0.
    TimeoutMs,
    /// `connect_timeout_ms` is 0.
    ConnectTimeoutMs,
    /// `settle_interval_ms` is 0.
    SettleIntervalMs,
    /// A limit in `limits` is 0.
    Limits,
    /// `retry_after_cap_s` is outside 1..=86400.
    RetryAfterCapS,
    /// `max_clock_skew_ms` is outside 1..=86400000.
    MaxClockSkewMs,
    /// `orders` is neither `"ws"` nor `"rest"`.
    Orders,
    /// `orders = "ws"` with an empty `ws_url`: WebSocket order entry needs the
    /// WebSocket API connection.
    OrdersNeedWsUrl,
    /// One of `ed25519_key_env` and `ed25519_pem_env` is set without the other, or they
    /// are set with an empty `ws_url` (the logon is the WebSocket API's).
    Ed25519Env,
}

impl BinanceConfigError {
    /// The full config key, `gateway.binance.<key>`.
    pub fn key(self) -> &'static str {
        match self {
            Self::RestUrl => "gateway.binance.rest_url",
            Self::WsUrl => "gateway.binance.ws_url",
            Self::KeyEnv => "gateway.binance.key_env",
            Self::RecvWindowMs => "gateway.binance.recv_window_ms",
            Self::TimeoutMs => "gateway.binance.timeout_ms",
            Self::ConnectTimeoutMs => "gateway.binance.connect_timeout_ms",
            Self::SettleIntervalMs => "gateway.binance.settle_interval_ms",
            Self::Limits => "gateway.binance.limits",
            Self::RetryAfterCapS => "gateway.binance.retry_after_cap_s",
            Self::MaxClockSkewMs => "gateway.binance.max_clock_skew_ms",
            Self::Orders | Self::OrdersNeedWsUrl => "gateway.binance.orders",
            Self::Ed25519Env => "gateway.binance.ed25519_pem_env",
        }
    }

    /// What is wrong with the value.
    pub fn reason(self) -> &'static str {
        match self {
            Self::RestUrl => "must be an http:// or https:// URL",
            Self::WsUrl => "must be empty or a ws:// or wss:// URL",
            Self::KeyEnv => "key_env and secret_env must name variables",
            Self::RecvWindowMs => "must be in 1..=60000",
            Self::TimeoutMs | Self::ConnectTimeoutMs | Self::SettleIntervalMs => "must be > 0",
            Self::Limits => "every limit must be > 0",
            Self::RetryAfterCapS => "must be in 1..=86400",
            Self::MaxClockSkewMs => "must be in 1..=86400000",
            Self::Orders => "must be \"ws\" or \"rest\"",
            Self::OrdersNeedWsUrl => "\"ws\" needs a ws_url (the WebSocket API); use \"rest\" without one",
            Self::Ed25519Env => "ed25519_key_env and ed25519_pem_env go together, and need a ws_url",
        }
    }
}

impl fmt::Display for BinanceConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key(), self.reason())
    }
}

impl BinanceGatewayConfig {
    /// Range checks; the error names the key.
    pub fn validate(&self) -> Result<(), BinanceConfigError> {
        let http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        if !http(&self.rest_url) {
            return Err(BinanceConfigError::RestUrl);
        }
        if !(self.ws_url.is_empty() || self.ws_url.starts_with("ws://") || self.ws_url.starts_with("wss://")) {
            return Err(BinanceConfigError::WsUrl);
        }
        if self.key_env.is_empty() || self.secret_env.is_empty() {
            return Err(BinanceConfigError::KeyEnv);
        }
        if !(1..=60_000).contains(&self.recv_window_ms) {
            return Err(BinanceConfigError::RecvWindowMs);
        }
        for (e, v) in [
            (BinanceConfigError::TimeoutMs, self.timeout_ms),
            (BinanceConfigError::ConnectTimeoutMs, self.connect_timeout_ms),
            (BinanceConfigError::SettleIntervalMs, self.settle_interval_ms),
        ] {
            if v == 0 {
                return Err(e);
            }
        }
        let l = &self.limits;
        if l.orders_per_10s == 0 || l.orders_per_day == 0 || l.weight_per_minute == 0 {
            return Err(BinanceConfigError::Limits);
        }
        if !(1..=86_400).contains(&self.retry_after_cap_s) {
            return Err(BinanceConfigError::RetryAfterCapS);
        }
        if !(1..=86_400_000).contains(&self.max_clock_skew_ms) {
            return Err(BinanceConfigError::MaxClockSkewMs);
        }
        if self.order_entry()? == OrderEntry::Ws && self.ws_url.is_empty() {
            return Err(BinanceConfigError::OrdersNeedWsUrl);
        }
        let ed = (self.ed25519_key_env.is_empty(), self.ed25519_pem_env.is_empty());
        if ed.0 != ed.1 || (!ed.0 && self.ws_url.is_empty()) {
            return Err(BinanceConfigError::Ed25519Env);
        }
        Ok(())
    }

    /// The order entry transport `orders` names; [`BinanceConfigError::Orders`] for
    /// any other value.
    pub fn order_entry(&self) -> Result<OrderEntry, BinanceConfigError> {
        match self.orders.as_str() {
            "ws" => Ok(OrderEntry::Ws),
            "rest" => Ok(OrderEntry::Rest),
            _ => Err(BinanceConfigError::Orders),
        }
    }

    /// A per-IP budget for these limits (`limits.weight_per_minute`,
    /// `retry_after_cap_s`), to share between the gateway and the feed's snapshots.
    pub fn ip_budget(&self) -> IpBudget {
        IpBudget::new(self.limits.weight_per_minute, self.retry_after_cap_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_checks() {
        let c = BinanceGatewayConfig::default();
        assert_eq!(c.rest_url, TESTNET_REST_URL);
        assert_eq!(c.ws_url, TESTNET_WS_API_URL);
        assert_eq!(c.recv_window_ms, 5000);
        assert!(c.validate().is_ok());
        let c: BinanceGatewayConfig = toml::from_str("recv_window_ms = 70000").unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e, BinanceConfigError::RecvWindowMs);
        assert_eq!(e.key(), "gateway.binance.recv_window_ms");
        assert_eq!(e.to_string(), "gateway.binance.recv_window_ms: must be in 1..=60000");
        assert!(toml::from_str::<BinanceGatewayConfig>("typo = 1").is_err());
        let c: BinanceGatewayConfig = toml::from_str("[limits]\norders_per_10s = 10").unwrap();
        assert_eq!(c.limits.orders_per_10s, 10);
        assert_eq!(c.limits.weight_per_minute, 6000);
    }

    #[test]
    fn default_is_the_empty_table() {
        let empty: BinanceGatewayConfig = toml::from_str("").unwrap();
        assert_eq!(format!("{:?}", BinanceGatewayConfig::default()), format!("{empty:?}"));
    }

    #[test]
    fn every_check_names_its_key() {
        let bad = |toml: &str| toml::from_str::<BinanceGatewayConfig>(toml).unwrap().validate().unwrap_err().key();
        assert_eq!(bad("rest_url = \"ftp://x\""), "gateway.binance.rest_url");
        assert_eq!(bad("ws_url = \"http://x\""), "gateway.binance.ws_url");
        assert_eq!(bad("secret_env = \"\""), "gateway.binance.key_env");
        assert_eq!(bad("timeout_ms = 0"), "gateway.binance.timeout_ms");
        assert_eq!(bad("connect_timeout_ms = 0"), "gateway.binance.connect_timeout_ms");
        assert_eq!(bad("settle_interval_ms = 0"), "gateway.binance.settle_interval_ms");
        assert_eq!(bad("[limits]\nweight_per_minute = 0"), "gateway.binance.limits");
        assert_eq!(bad("retry_after_cap_s = 0"), "gateway.binance.retry_after_cap_s");
        assert_eq!(bad("max_clock_skew_ms = 86400001"), "gateway.binance.max_clock_skew_ms");
        assert_eq!(bad("orders = \"fix\""), "gateway.binance.orders");
        assert_eq!(bad("ws_url = \"\""), "gateway.binance.orders");
        assert_eq!(bad("ed25519_key_env = \"K\""), "gateway.binance.ed25519_pem_env");
        let ok = |toml: &str| toml::from_str::<BinanceGatewayConfig>(toml).unwrap().validate().is_ok();
        assert!(ok("ws_url = \"\"\norders = \"rest\""));
        assert_eq!(BinanceGatewayConfig::default().order_entry(), Ok(OrderEntry::Ws));
    }
}
