//! Configuration: TOML in, a validated [`Config`] out.
//!
//! Unknown keys are errors (`deny_unknown_fields` on every table), so a typo cannot
//! silently fall back to a default. Parse errors carry the file name and TOML's own
//! line, column and key; range errors name the full key (`risk.orders_per_sec`).
//! Exact decimals (tick, lot, sizes) are TOML strings: a TOML float `0.01` is already
//! inexact when it is read.
//!
//! The built-in default (`config/default.toml`, compiled in) is tuned to the built-in
//! data set, so `statarb replay` runs with no file at all.
//!
//! # Layering
//!
//! Config sits above the modules it configures: each table is a type of the module it
//! configures ([`crate::risk::RiskParams`], [`crate::backtest::BacktestConfig`],
//! [`FeedConfig`], [`Fees`], ...), which also checks its own ranges, and
//! [`Config::core_params`] builds the [`CoreParams`] that [`crate::core::Core::new`]
//! takes. Only the drivers (`main`, [`crate::sweep`]) import this module; no module
//! below it does (`tests/layering.rs` checks).

use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

use crate::core::{CoreParams, LegParams, MAX_ORDERS};
use crate::live::{Pinning, RunOptions};
use crate::monitor::MonitorOptions;
use crate::quote::{Complete, QuoteMode, QuoteModel, QuoteParams};
use crate::risk::RiskParams;
use crate::signal::kalman::KalmanParams;
use crate::signal::pairs::PairsParams;
use crate::types::{ms_to_ns, secs_to_ns, Decimal, DecimalError, Instrument, Qty, NS_PER_SEC};

// The types of `[feed]` and `[fees]` are defined by their modules; re-exported because
// they are part of `Config`, so that a driver can name its whole configuration from here.
pub use crate::feed::config::{FeedClock, FeedConfig, Venue};
pub use crate::fees::Fees;

/// The compiled-in default configuration.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Errors loading or validating a configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {error}")]
    Io {
        /// The file.
        file: String,
        /// The cause (shown in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// Not valid TOML, an unknown key, a missing key or a wrong type.
    #[error("{file}: {error}")]
    Parse {
        /// The file.
        file: String,
        /// TOML's error, with line, column and key (shown in the message).
        error: toml::de::Error,
    },
    /// The file is longer than [`MAX_CONFIG_BYTES`] (a config is a page of TOML; an
    /// endless file such as `/dev/zero` must not be read into memory).
    #[error("{file}: longer than {max} bytes; not a config file")]
    TooLarge {
        /// The file.
        file: String,
        /// The limit.
        max: u64,
    },
    /// A key has a value out of range.
    #[error("{file}: {key}: {msg}")]
    Invalid {
        /// The file.
        file: String,
        /// Full key, e.g. `y.order_qty`.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// A duration key does not convert to 64-bit nanoseconds (only for a [`Config`]
    /// changed after its validation: a validated one always converts).
    #[error("{key}: out of range as 64-bit nanoseconds")]
    Duration {
        /// Full key, e.g. `signal.sample_ms`.
        key: &'static str,
    },
    /// A size is not a whole number of lots (only for a [`Config`] changed after its
    /// validation).
    #[error("{key}: {error}")]
    Lots {
        /// Full key, e.g. `y.order_qty`.
        key: String,
        /// Why it does not convert (shown in the message, so not chained as a source).
        error: DecimalError,
    },
}

/// One leg of the pair: the instrument and how it is quoted and limited.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegConfig {
    /// Exchange symbol.
    pub symbol: String,
    /// Price increment, exact (`"0.01"`).
    pub tick: Decimal,
    /// Size increment, exact (`"0.00001"`).
    pub lot: Decimal,
    /// Size of each quote, in units of the asset, exact.
    pub order_qty: Decimal,
    /// Absolute position limit, in units of the asset, exact.
    pub max_position: Decimal,
    /// A-S risk aversion, per (price unit x order unit).
    pub gamma: f64,
    /// Order-book liquidity: fill intensity `A exp(-k delta)`, per price unit.
    pub k: f64,
    /// GLFT arrival intensity `A`, per second (GLFT only).
    #[serde(default)]
    pub a: f64,
    /// Initial volatility, price units per sqrt(second).
    pub sigma0: f64,
    /// The symbol on the market-data venue when it differs (Alpaca: `ETH/USD`).
    #[serde(default)]
    pub feed_symbol: Option<String>,
    /// This leg's quoting mode, when it differs from `quote.mode`.
    #[serde(default)]
    pub mode: Option<QuoteMode>,
}

impl LegConfig {
    /// The instrument of this leg.
    pub fn instrument(&self) -> Instrument {
        Instrument::new(self.symbol.clone(), self.tick, self.lot)
    }

    /// Quote parameters of this leg.
    pub fn quote_params(&self) -> QuoteParams {
        QuoteParams { gamma: self.gamma, k: self.k, a: self.a, sigma0: self.sigma0 }
    }

    /// Quote size in lots.
    pub fn order_lots(&self) -> Qty {
        self.order_qty.to_increments(self.lot).unwrap_or(0)
    }

    /// Position limit in lots.
    pub fn max_position_lots(&self) -> Qty {
        self.max_position.to_increments(self.lot).unwrap_or(0)
    }

    /// The core's parameters of this leg, named `name` (`y` or `x`) in errors; its mode
    /// is `default_mode` (`quote.mode`) unless the leg sets its own.
    pub fn leg_params(&self, name: &str, default_mode: QuoteMode) -> Result<LegParams, ConfigError> {
        let lots = |key: &str, v: Decimal| {
            v.to_increments(self.lot).map_err(|error| ConfigError::Lots { key: format!("{name}.{key}"), error })
        };
        Ok(LegParams {
            instrument: self.instrument(),
            quote: self.quote_params(),
            order_lots: lots("order_qty", self.order_qty)?,
            max_position_lots: lots("max_position", self.max_position)?,
            mode: self.mode.unwrap_or(default_mode),
        })
    }
}

/// When the signal is sampled.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalConfig {
    /// Kalman update interval in ms of event time (0: every market batch).
    pub sample_ms: u64,
    /// Refresh-time sampling: a sample due at `t` waits until both legs have data
    /// with exchange time `>= t`, for at most this many ms of local time (0: sample
    /// at the first batch end after `t`).
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
}

fn default_refresh_ms() -> u64 {
    200
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig { sample_ms: 1_000, refresh_ms: default_refresh_ms() }
    }
}

/// Execution settings shared by both legs.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteConfig {
    /// `as` (Avellaneda-Stoikov) or `glft`.
    pub model: QuoteModel,
    /// `execute` (work each leg toward its target) or `market_make` (two-sided quotes
    /// around the target); a leg's own `mode` overrides it.
    #[serde(default)]
    pub mode: QuoteMode,
    /// Execution horizon `T`, seconds: starts when the pair's targets change; the A-S
    /// `T - t` of `execute` legs, and when the remainder is completed.
    #[serde(default = "default_horizon_secs")]
    pub horizon_secs: f64,
    /// What `execute` legs do with the remainder at the horizon (default: `taker`).
    #[serde(default)]
    pub complete: Option<Complete>,
    /// Length of the rolling session `T` of `market_make` legs, seconds.
    pub session_secs: u64,
    /// A resting quote is replaced only when its price moves by at least this many ticks
    /// (or its size changes).
    pub min_replace_ticks: i64,
    /// Half-life of the volatility EWMA, seconds.
    pub sigma_halflife_s: f64,
}

impl QuoteConfig {
    /// The completion rule of `execute` legs (`taker` unless configured).
    pub fn complete(&self) -> Complete {
        self.complete.unwrap_or(Complete::Taker)
    }
}

fn default_horizon_secs() -> f64 {
    60.0
}

/// Threads and rings of the live driver.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// Core to pin the hot thread to (`None`: the last core).
    #[serde(default)]
    pub hot_core: Option<usize>,
    /// Core to pin the gateway thread to (`None`: unpinned).
    #[serde(default)]
    pub gateway_core: Option<usize>,
    /// Capacity of each ring.
    pub ring_capacity: usize,
    /// Lock all memory (current and future mappings) and prefault it at start
    /// ([`crate::mlock::lock_all`]), so the hot thread never takes a page fault or a swap-in.
    /// Needs `LimitMEMLOCK=infinity` (config/statarb.service) or CAP_IPC_LOCK.
    #[serde(default)]
    pub mlock: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig { hot_core: None, gateway_core: None, ring_capacity: 65_536, mlock: false }
    }
}

/// The venue behind the gateway thread of `run`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayVenue {
    /// The simulated venue (paper trading): the market data of the run, fills from the
    /// backtester's matching engine ([`crate::backtest::matching`]) with
    /// `backtest.queue`, `[fees]` and `risk.data_band_bps`, on the gateway thread.
    /// `"sim"`, the name of an earlier, simpler simulated venue, is accepted for it.
    #[default]
    #[serde(alias = "sim")]
    Paper,
    /// Binance Spot (signed REST + WebSocket API user data stream), `[gateway.binance]`.
    Binance,
}

/// Order gateway, from config `[gateway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Which venue `run` trades on.
    #[serde(default)]
    pub venue: GatewayVenue,
    /// Binance Spot settings (the Spot testnet by default; keys from the environment).
    #[serde(default)]
    pub binance: crate::gateway::binance::BinanceGatewayConfig,
    /// How long shutdown waits for the venue to confirm the final cancels, ms.
    #[serde(default = "default_cancel_timeout_ms")]
    pub cancel_timeout_ms: u64,
    /// The position journal ([`crate::journal`]): orders and fills written ahead, so
    /// that a restarted engine reconciles its positions with the venue before it
    /// quotes. Binance only; none by default (each session then starts flat).
    #[serde(default)]
    pub journal: Option<std::path::PathBuf>,
    /// `fdatasync` the journal after every batch with a fill (power-loss safety, at
    /// the cost of a disk sync on the gateway thread); without it a record survives a
    /// crash of the process, not of the machine.
    #[serde(default)]
    pub journal_fsync: bool,
}

fn default_cancel_timeout_ms() -> u64 {
    10_000
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            venue: GatewayVenue::Paper,
            binance: Default::default(),
            cancel_timeout_ms: default_cancel_timeout_ms(),
            journal: None,
            journal_fsync: false,
        }
    }
}

/// The raw-message recorder, from config `[record]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// Directory for the recording files.
    pub dir: String,
    /// File name prefix.
    #[serde(default = "default_record_prefix")]
    pub prefix: String,
    /// Rotate after this many MiB of compressed output.
    #[serde(default = "default_rotate_mb")]
    pub rotate_mb: u64,
    /// Rotate after this many seconds.
    #[serde(default = "default_rotate_secs")]
    pub rotate_secs: u64,
    /// The buffer pool between the hot thread and the writer (`[record.pool]`).
    #[serde(default)]
    pub pool: crate::feed::record::PoolConfig,
}

impl RecordConfig {
    /// Default prefix and rotation, writing into `dir`.
    pub fn in_dir(dir: impl Into<String>) -> Self {
        RecordConfig {
            dir: dir.into(),
            prefix: default_record_prefix(),
            rotate_mb: default_rotate_mb(),
            rotate_secs: default_rotate_secs(),
            pool: Default::default(),
        }
    }
}

fn default_record_prefix() -> String {
    "md".into()
}
fn default_rotate_mb() -> u64 {
    256
}
fn default_rotate_secs() -> u64 {
    3600
}

/// Live observability, from config `[monitor]` ([`crate::monitor`]): the log, the
/// status line and the Prometheus endpoint of `statarb run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Seconds between status lines; 0 for none.
    #[serde(default = "default_status_secs")]
    pub status_secs: u64,
    /// Address of the `/metrics` endpoint, such as `"127.0.0.1:9184"` (port 0: a free
    /// port, logged at start); absent for none. Keep it on loopback or a private
    /// interface: it has no authentication.
    #[serde(default)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Where log lines go: `"stderr"`, or a file path (appended to, created if missing).
    #[serde(default = "default_log")]
    pub log: String,
    /// `"text"` (timestamp, level, message, `key=value` fields) or `"json"` (one object
    /// per line).
    #[serde(default)]
    pub log_format: LogFormat,
    /// The lowest level logged: `"error"`, `"warn"`, `"info"`, `"debug"` or `"trace"`.
    #[serde(default)]
    pub log_level: LogLevel,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            status_secs: default_status_secs(),
            metrics_addr: None,
            log: default_log(),
            log_format: LogFormat::default(),
            log_level: LogLevel::default(),
        }
    }
}

/// The format of the log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines with `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn default_status_secs() -> u64 {
    10
}
fn default_log() -> String {
    "stderr".into()
}
/// The lowest level logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The dependent leg `y` of `y = alpha + beta*x + e`.
    pub y: LegConfig,
    /// The hedge leg `x`.
    pub x: LegConfig,
    /// Signal sampling.
    #[serde(default)]
    pub signal: SignalConfig,
    /// Kalman filter.
    #[serde(default)]
    pub kalman: KalmanParams,
    /// Entry and exit.
    pub pairs: PairsParams,
    /// Execution.
    pub quote: QuoteConfig,
    /// Pre-trade limits.
    pub risk: RiskParams,
    /// Venue fees for the simulated exchange.
    #[serde(default)]
    pub fees: Fees,
    /// Live driver threads.
    #[serde(default)]
    pub live: LiveConfig,
    /// Live market data (needed by `run` and `record`).
    #[serde(default)]
    pub feed: Option<FeedConfig>,
    /// Where `run` sends orders.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// The backtester's latency and queue models (`replay`, `sweep`, paper trading).
    #[serde(default)]
    pub backtest: crate::backtest::BacktestConfig,
    /// Raw-message recording while running.
    #[serde(default)]
    pub record: Option<RecordConfig>,
    /// Logs, status line and metrics endpoint of `run`.
    #[serde(default)]
    pub monitor: MonitorConfig,
}

impl Config {
    /// The compiled-in default.
    pub fn builtin() -> Config {
        Config::from_toml(DEFAULT_TOML, "<builtin config/default.toml>").expect("the built-in config is valid")
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = match read_bounded(path, MAX_CONFIG_BYTES) {
            Ok(Some(text)) => text,
            Ok(None) => return Err(ConfigError::TooLarge { file, max: MAX_CONFIG_BYTES }),
            Err(error) => return Err(ConfigError::Io { file, error }),
        };
        Config::from_toml(&text, &file)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    ///
    /// A file whose first key is `extends = "default"` is an overlay: its tables are
    /// merged key by key over the built-in default, so a deployment file states only
    /// what differs (`config/local.toml` adds a `[feed]` and nothing else).
    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        let parse_err = |error| ConfigError::Parse { file: file.into(), error };
        let table: toml::Table = toml::from_str(text).map_err(parse_err)?;
        if !table.contains_key("extends") {
            // A whole file: parse the text itself, so errors carry line and column.
            let cfg: Config = toml::from_str(text).map_err(parse_err)?;
            cfg.validate().map_err(|(key, msg)| ConfigError::Invalid { file: file.into(), key, msg })?;
            return Ok(cfg);
        }
        Config::from_table(Config::resolve(table, file)?, file)
    }

    /// The complete table of a parsed file: an `extends = "default"` overlay merged over
    /// the built-in default, any other file as it is. Sweeps edit this table key by key
    /// and build each point's config with [`Config::from_table`].
    pub fn resolve(mut table: toml::Table, file: &str) -> Result<toml::Table, ConfigError> {
        match table.remove("extends") {
            None => Ok(table),
            Some(base) if base.as_str() == Some("default") => {
                let mut merged: toml::Table = toml::from_str(DEFAULT_TOML).expect("the built-in config is valid TOML");
                overlay(&mut merged, table);
                Ok(merged)
            }
            Some(base) => Err(ConfigError::Invalid {
                file: file.into(),
                key: "extends".into(),
                msg: format!("only \"default\" (the built-in config) can be extended, got {base}"),
            }),
        }
    }

    /// Deserialises and validates a complete table (see [`Config::resolve`]).
    pub fn from_table(table: toml::Table, file: &str) -> Result<Config, ConfigError> {
        let cfg = Config::deserialize(table).map_err(|error| ConfigError::Parse { file: file.into(), error })?;
        cfg.validate().map_err(|(key, msg)| ConfigError::Invalid { file: file.into(), key, msg })?;
        Ok(cfg)
    }

    /// The legs' instruments, Y then X: index 0 and 1 are the instrument ids.
    pub fn instruments(&self) -> Vec<Instrument> {
        vec![self.y.instrument(), self.x.instrument()]
    }

    /// The monitor thread's options ([`crate::monitor`]), from `[monitor]`.
    pub fn monitor_options(&self) -> MonitorOptions {
        MonitorOptions {
            status_every: (self.monitor.status_secs > 0)
                .then(|| std::time::Duration::from_secs(self.monitor.status_secs)),
            metrics_addr: self.monitor.metrics_addr,
            legs: [self.y.symbol.clone(), self.x.symbol.clone()],
        }
    }

    /// The options of a threaded run (`[live]` and the gateway's cancel timeout);
    /// `lockstep` paces the hot thread by the gateway ([`crate::live::Pacing::Lockstep`]).
    pub fn run_options(&self, lockstep: bool) -> RunOptions {
        RunOptions {
            ring_capacity: self.live.ring_capacity,
            pinning: Pinning { hot: self.live.hot_core, gateway: self.live.gateway_core },
            lockstep,
            cancel_timeout: std::time::Duration::from_millis(self.gateway.cancel_timeout_ms),
        }
    }

    /// The legs' instruments under their market-data symbols (`feed_symbol`, e.g.
    /// Alpaca's `BTC/USD`); the index, which is the instrument id, stays the leg's.
    pub fn feed_instruments(&self) -> Vec<Instrument> {
        [&self.y, &self.x]
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

    /// The parameters of the strategy core: the legs in lots, each component's
    /// parameters, and every interval in nanoseconds. Infallible for a config as
    /// loaded (its validation bounds every key converted here); an error names the key
    /// of a config changed since.
    pub fn core_params(&self) -> Result<CoreParams, ConfigError> {
        let ns = |key, v: Option<i64>| v.ok_or(ConfigError::Duration { key });
        let horizon_ns = self.quote.horizon_secs * NS_PER_SEC as f64;
        if !(horizon_ns.is_finite() && horizon_ns > 0.0 && horizon_ns <= i64::MAX as f64) {
            return Err(ConfigError::Duration { key: "quote.horizon_secs" });
        }
        Ok(CoreParams {
            legs: [self.y.leg_params("y", self.quote.mode)?, self.x.leg_params("x", self.quote.mode)?],
            kalman: self.kalman,
            pairs: self.pairs,
            risk: self.risk,
            model: self.quote.model,
            sigma_halflife_s: self.quote.sigma_halflife_s,
            session_ns: ns("quote.session_secs", secs_to_ns(self.quote.session_secs))?,
            // Truncated, as it always was: a horizon under 1 ns is 0, completion at once.
            horizon_ns: horizon_ns as i64,
            complete: self.quote.complete(),
            sample_ns: ns("signal.sample_ms", ms_to_ns(self.signal.sample_ms))?,
            refresh_ns: ns("signal.refresh_ms", ms_to_ns(self.signal.refresh_ms))?,
            min_replace_ticks: self.quote.min_replace_ticks,
        })
    }

    fn validate(&self) -> Result<(), (String, String)> {
        for (name, leg) in [("y", &self.y), ("x", &self.x)] {
            let key = |k: &str| format!("{name}.{k}");
            if leg.symbol.is_empty() {
                return Err((key("symbol"), "must not be empty".into()));
            }
            for (k, v) in [("order_qty", leg.order_qty), ("max_position", leg.max_position)] {
                match v.to_increments(leg.lot) {
                    Ok(n) if n > 0 => {}
                    Ok(_) => return Err((key(k), "must be > 0".into())),
                    Err(_) => return Err((key(k), format!("{v} is not a multiple of lot {}", leg.lot))),
                }
            }
            leg.quote_params().validate(self.quote.model).map_err(|e| (key("quote"), e.to_string()))?;
        }
        if self.y.symbol == self.x.symbol {
            return Err(("x.symbol".into(), "must differ from y.symbol".into()));
        }
        self.kalman.validate().map_err(|e| ("kalman".into(), e.to_string()))?;
        self.pairs.validate().map_err(|e| ("pairs".into(), e.to_string()))?;
        self.risk.validate().map_err(|e| (format!("risk.{}", e.key), e.msg))?;
        if self.quote.session_secs == 0 {
            return Err(("quote.session_secs".into(), "must be > 0".into()));
        }
        self.check_durations()?;
        if !(self.quote.horizon_secs.is_finite()
            && self.quote.horizon_secs > 0.0
            && self.quote.horizon_secs <= 86_400.0)
        {
            return Err(("quote.horizon_secs".into(), "must be in (0, 86400]".into()));
        }
        for (name, leg) in [("y", &self.y), ("x", &self.x)] {
            let mode = leg.mode.unwrap_or(self.quote.mode);
            if mode == QuoteMode::MarketMake && self.quote.complete == Some(Complete::Taker) {
                let key = if leg.mode.is_some() { format!("{name}.mode") } else { "quote.mode".into() };
                return Err((
                    "quote.complete".into(),
                    format!("\"taker\" completes an execution; it contradicts {key} = \"market_make\""),
                ));
            }
        }
        if self.quote.min_replace_ticks < 1 {
            return Err(("quote.min_replace_ticks".into(), "must be >= 1".into()));
        }
        if !(self.quote.sigma_halflife_s.is_finite() && self.quote.sigma_halflife_s > 0.0) {
            return Err(("quote.sigma_halflife_s".into(), "must be > 0".into()));
        }
        self.fees.validate().map_err(|e| (format!("fees.{}", e.key), e.msg))?;
        if self.gateway.journal.is_some() && self.gateway.venue != GatewayVenue::Binance {
            return Err((
                "gateway.journal".into(),
                "journals positions held at a venue: it needs gateway.venue = \"binance\"".into(),
            ));
        }
        if let Some(f) = &self.feed {
            f.validate().map_err(|e| (format!("feed.{}", e.key), e.msg))?;
        }
        self.backtest.validate().map_err(|e| {
            let text = e.to_string();
            match text.split_once(": ") {
                Some((key, msg)) => (key.to_string(), msg.to_string()),
                None => ("backtest".to_string(), text),
            }
        })?;
        if self.gateway.venue == GatewayVenue::Binance {
            self.gateway.binance.validate().map_err(|e| (e.key().to_string(), e.reason().to_string()))?;
        }
        if self.gateway.cancel_timeout_ms == 0 {
            return Err(("gateway.cancel_timeout_ms".into(), "must be > 0".into()));
        }
        if let Some(r) = &self.record {
            if r.dir.is_empty() || r.rotate_mb == 0 || r.rotate_secs == 0 {
                return Err(("record".into(), "dir must be set and rotate_mb, rotate_secs > 0".into()));
            }
            if r.rotate_mb > MAX_ROTATE_MB {
                return Err(("record.rotate_mb".into(), format!("must be <= {MAX_ROTATE_MB} (1 TiB)")));
            }
            r.pool.validate().map_err(|e| ("record.pool".to_string(), e.to_string()))?;
        }
        if self.risk.max_open_orders > MAX_ORDERS {
            return Err(("risk.max_open_orders".into(), format!("must be <= {MAX_ORDERS}")));
        }
        if !(16..=1 << 24).contains(&self.live.ring_capacity) {
            return Err(("live.ring_capacity".into(), "must be in 16..=16777216".into()));
        }
        if self.monitor.log.trim().is_empty() {
            return Err(("monitor.log".into(), "must be \"stderr\" or a file path".into()));
        }
        Ok(())
    }
}

/// Longest config or grid file read: 1 MiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads a UTF-8 text file of at most `max` bytes; `Ok(None)` if it is longer. Reads at
/// most `max + 1` bytes whatever the file is (a FIFO, `/dev/zero`).
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?.take(max + 1).read_to_string(&mut text)?;
    Ok((text.len() as u64 <= max).then_some(text))
}

/// Largest `record.rotate_mb`: 1 TiB, so that the byte count (`rotate_mb << 20`) fits.
pub const MAX_ROTATE_MB: u64 = 1 << 20;

/// One day in milliseconds.
const DAY_MS: u64 = 86_400_000;

impl Config {
    /// Range-checks every duration key the config itself holds, so that each one's
    /// conversion to nanoseconds (`types::ms_to_ns`, `types::secs_to_ns`) cannot
    /// fail downstream: a value that would wrap (a `stale_ms` of 9.3e12 gave zero
    /// orders; one of 1.8e13 behaved like 0.45 ms) is a config error naming its key.
    /// `risk.stale_ms` and the backtester's intervals are checked by their own
    /// modules' `validate`.
    fn check_durations(&self) -> Result<(), (String, String)> {
        let mut keys: Vec<(&str, u64, u64)> = vec![
            // (key, value in its unit, largest value in that unit)
            ("signal.sample_ms", self.signal.sample_ms, DAY_MS),
            ("signal.refresh_ms", self.signal.refresh_ms, 60_000),
            ("quote.session_secs", self.quote.session_secs, 365 * 86_400),
            ("gateway.cancel_timeout_ms", self.gateway.cancel_timeout_ms, 3_600_000),
        ];
        if let Some(r) = &self.record {
            keys.push(("record.rotate_secs", r.rotate_secs, 30 * 86_400));
        }
        for (key, value, max) in keys {
            if value > max {
                return Err((key.into(), format!("must be <= {max}, got {value}")));
            }
        }
        Ok(())
    }
}

/// Merges `top` into `base`: tables recursively, any other value replaced. A table
/// with a `kind` key is a choice of variant (`queue = { kind = "risk_averse" }`), not
/// settings to merge: it replaces the base's table whole, so the base variant's fields
/// do not leak into another variant.
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) if !t.contains_key("kind") => overlay(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let files = [
            "default.toml",
            "local.toml",
            "binance.toml",
            "alpaca.toml",
            "paper.toml",
            "binance-testnet.toml",
            "latency-binance-mock.toml",
        ];
        for f in files {
            let c = Config::load(&dir.join(f)).unwrap_or_else(|e| panic!("{e}"));
            let p = c.core_params().unwrap_or_else(|e| panic!("{f}: {e}"));
            p.validate().unwrap_or_else(|e| panic!("{f}: {e}"));
            // The latency harness sets its own feed (the replay server it starts).
            if f != "default.toml" && f != "latency-binance-mock.toml" {
                assert!(c.feed.is_some(), "{f} has a feed");
            }
        }
    }

    #[test]
    fn overlay_files_change_only_what_they_state() {
        let text = "extends = \"default\"\n[risk]\nstale_ms = 750\n[feed]\nvenue = \"binance\"\nws_url = \"ws://127.0.0.1:1/stream\"\nrest_url = \"http://127.0.0.1:2\"\n";
        let c = Config::from_toml(text, "o.toml").unwrap();
        let d = Config::builtin();
        assert_eq!(c.risk.stale_ms, 750);
        assert_eq!(c.risk.max_open_orders, d.risk.max_open_orders);
        assert_eq!(c.y.symbol, d.y.symbol);
        assert_eq!(c.feed.unwrap().depth_levels, 20);
        // A variant table replaces the default's whole: no `n` left over from prob_power.
        let text = "extends = \"default\"\n[backtest]\nqueue = { kind = \"risk_averse\" }\n";
        let c = Config::from_toml(text, "o.toml").unwrap();
        assert_eq!(c.backtest.queue, crate::backtest::queue::QueueConfig::RiskAverse {});
        let e = Config::from_toml("extends = \"prod\"", "o.toml").unwrap_err().to_string();
        assert!(e.contains("extends"), "{e}");
        let e = Config::from_toml("extends = \"default\"\n[risk]\nstale = 1", "o.toml").unwrap_err().to_string();
        assert!(e.contains("o.toml") && e.contains("stale"), "{e}");
    }

    #[test]
    fn sim_is_another_name_of_the_paper_venue() {
        for name in ["sim", "paper"] {
            let text = format!("extends = \"default\"\n[gateway]\nvenue = \"{name}\"\n");
            assert_eq!(Config::from_toml(&text, "g.toml").unwrap().gateway.venue, GatewayVenue::Paper);
        }
        assert_eq!(Config::builtin().gateway.venue, GatewayVenue::Paper);
    }

    #[test]
    fn builtin_is_valid() {
        let c = Config::builtin();
        assert_eq!(c.y.symbol, "ETHUSDT");
        assert_eq!(c.x.symbol, "BTCUSDT");
        assert!(c.y.order_lots() > 0 && c.x.order_lots() > 0);
    }

    #[test]
    fn core_params_are_in_lots_and_nanoseconds() {
        let c = Config::builtin();
        let p = c.core_params().unwrap();
        assert_eq!(p.legs[crate::core::LEG_Y].instrument.symbol, "ETHUSDT");
        assert_eq!((p.legs[0].order_lots, p.legs[0].max_position_lots), (2_500, 20_000));
        assert_eq!(p.legs[0].mode, QuoteMode::Execute);
        assert_eq!((p.sample_ns, p.refresh_ns), (1_000_000_000, 200_000_000));
        assert_eq!((p.session_ns, p.horizon_ns), (900 * NS_PER_SEC, 60 * NS_PER_SEC));
        assert_eq!(p.complete, Complete::Taker);
        // A config changed after its validation: the error names the key.
        let mut bad = c.clone();
        bad.signal.sample_ms = u64::MAX;
        assert!(matches!(bad.core_params(), Err(ConfigError::Duration { key: "signal.sample_ms" })));
        let mut bad = c.clone();
        bad.quote.horizon_secs = f64::NAN;
        assert!(matches!(bad.core_params(), Err(ConfigError::Duration { key: "quote.horizon_secs" })));
        let mut bad = c;
        bad.x.order_qty = "0.000001".parse().unwrap();
        let e = bad.core_params().unwrap_err();
        assert!(matches!(&e, ConfigError::Lots { key, .. } if key == "x.order_qty"), "{e}");
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let text = DEFAULT_TOML.replace("[risk]", "[risk]\nmax_ordr_notional = 5.0");
        let e = Config::from_toml(&text, "my.toml").unwrap_err().to_string();
        assert!(e.starts_with("my.toml") && e.contains("max_ordr_notional"), "{e}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let text = DEFAULT_TOML.replace("orders_per_sec = ", "orders_per_sec = -");
        let e = Config::from_toml(&text, "my.toml").unwrap_err().to_string();
        assert!(e.contains("risk.orders_per_sec"), "{e}");
        let text = DEFAULT_TOML.replacen("tick = \"0.01\"", "tick = 0.01", 1);
        let e = Config::from_toml(&text, "my.toml").unwrap_err().to_string();
        assert!(e.contains("tick"), "{e}");
    }

    #[test]
    fn off_lot_size_is_refused() {
        let text = DEFAULT_TOML.replacen("order_qty = \"", "order_qty = \"0.000001", 1);
        let e = Config::from_toml(&text, "my.toml").unwrap_err().to_string();
        assert!(e.contains("order_qty"), "{e}");
    }

    #[test]
    fn durations_of_the_signal_and_the_horizon_are_bounded() {
        for (table, key, value) in [
            ("signal", "refresh_ms", "9223372036854775807"),
            // The values that wrapped into nanoseconds before they were bounded.
            ("signal", "sample_ms", "18446744073710"),
            ("quote", "session_secs", "9300000000"),
            ("risk", "stale_ms", "9300000000000"),
            ("risk", "stale_ms", "18446744073710"),
            ("gateway", "cancel_timeout_ms", "9223372036854775807"),
            ("fees", "maker_bps", "-100000"),
            ("fees", "taker_bps", "1e9"),
            ("quote", "horizon_secs", "nan"),
            ("quote", "horizon_secs", "-1.0"),
            ("quote", "horizon_secs", "1e300"),
        ] {
            let text = format!("extends = \"default\"\n[{table}]\n{key} = {value}\n");
            let e = Config::from_toml(&text, "d.toml").unwrap_err().to_string();
            assert!(e.contains(&format!("{table}.{key}")), "{e}");
        }
    }

    #[test]
    fn recorder_rotation_is_bounded() {
        for (key, value) in [("rotate_mb", "9223372036854775807"), ("rotate_secs", "9223372036854775807")] {
            let text = format!("extends = \"default\"\n[record]\ndir = \"rec\"\n{key} = {value}\n");
            let e = Config::from_toml(&text, "r.toml").unwrap_err().to_string();
            assert!(e.contains(&format!("record.{key}")), "{e}");
        }
    }

    #[test]
    fn an_endless_file_is_refused_without_reading_it_all() {
        let e = Config::load(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
        assert!(e.to_string().starts_with("/dev/zero: longer than 1048576 bytes"), "{e}");
    }

    #[test]
    fn missing_file_names_the_file() {
        let e = Config::load(Path::new("/nonexistent/statarb.toml")).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/statarb.toml"), "{e}");
    }
}
