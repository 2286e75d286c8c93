//! Event-driven backtester: single-threaded, deterministic replay of market events
//! through the same [`crate::core::Core`] as live, against an L2 matching engine with
//! feed and order latency and FIFO queue position.

pub mod plot;
pub mod stats;
pub mod trace;
