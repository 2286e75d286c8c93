//! statarb: a low-latency pairs-trading engine.
//!
//! Data flows one way through the modules: [`feed`] (market data, generated or
//! recorded) -> [`book`] -> [`signal`] (Kalman hedge ratio, z-score, pair targets) ->
//! [`risk`] -> [`quote`] (Avellaneda-Stoikov / GLFT) -> [`gateway`] (exchange APIs),
//! with fills flowing back into [`portfolio`]. [`core::Core`] is the deterministic
//! state machine that strings them together; [`live`] drives it from a pinned
//! busy-polling thread with SPSC rings to a gateway thread.
//!
//! Every import points down. Each module defines its own parameters; [`config`] reads
//! TOML, validates it and builds them (e.g. [`config::Config::core_params`]), and only
//! the drivers (the binary, [`sweep`]) import it. Leaf modules hold what many layers
//! share: [`types`], [`fees`], [`utc`] (calendar time), and [`detmath`] (the deterministic `ln`, `exp` and
//! random numbers of the generator, the backtester and the Monte Carlo).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod assim;
pub mod backtest;
pub mod book;
pub mod clock;
pub mod config;
pub mod core;
pub mod detmath;
pub mod event;
pub mod feed;
pub mod fees;
pub mod gateway;
pub mod import;
pub mod journal;
pub mod lines;
pub mod live;
pub mod metrics;
pub mod mlock;
#[cfg(feature = "mock")]
pub mod mock;
pub mod monitor;
pub mod portfolio;
pub mod quote;
pub mod ratelimit;
pub mod report;
pub mod ring;
pub mod risk;
pub mod serve;
pub mod session;
pub mod signal;
pub mod sweep;
pub mod types;
pub mod utc;
pub mod venue_codes;
pub mod walkforward;
