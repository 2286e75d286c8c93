//! Test support shared by the integration tests: a counting global allocator, and the
//! market-making configuration for tests of the machinery.
//!
//! Each test crate that proves "no allocation" installs [`Counting`] with
//! `#[global_allocator]` and wraps the code under test in [`counted`]. Only allocations
//! on the calling thread while counting is on are counted, so helper threads (servers,
//! writers) do not disturb the measurement.

// Each test crate uses only part of this module.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting allocations on threads that asked for it.
pub struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = COUNT.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator; the bookkeeping
// touches only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System.alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

/// Runs `f` and returns its result and the allocations it made on this thread.
pub fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    COUNT.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, COUNT.with(|n| n.get()))
}

/// `config/market_make.toml` without its `extends` line, to append to a test's own
/// overlay of the built-in config: the busiest configuration (both legs quote both
/// sides all the time), for tests of the machinery rather than of the strategy.
pub fn market_make_tables() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/market_make.toml"))
        .expect("config/market_make.toml");
    text.lines().filter(|l| !l.starts_with("extends")).collect::<Vec<_>>().join("\n") + "\n"
}

/// The built-in config with [`market_make_tables`] over it.
pub fn market_make_config() -> statarb::config::Config {
    let text = format!("extends = \"default\"\n{}", market_make_tables());
    statarb::config::Config::from_toml(&text, "config/market_make.toml").expect("market_make.toml is valid")
}

/// A Binance feed on the replay server at `ws` (snapshots from `rest`): 20 levels,
/// snapshots of 100, no aggregate trades, no keys.
pub fn binance_feed(
    ws: std::net::SocketAddr,
    rest: std::net::SocketAddr,
    end_on_close: bool,
    clock: statarb::feed::config::FeedClock,
) -> statarb::feed::config::FeedConfig {
    statarb::feed::config::FeedConfig {
        venue: statarb::feed::config::Venue::Binance,
        ws_url: format!("ws://{ws}/stream"),
        rest_url: format!("http://{rest}"),
        depth_levels: 20,
        snapshot_limit: 100,
        agg_trades: false,
        read_buffer_size: 64 * 1024,
        end_on_close,
        clock,
        key_env: None,
        secret_env: None,
        wire_stamps: false,
        busy_poll: true,
    }
}
