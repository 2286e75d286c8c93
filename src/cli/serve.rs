//! `statarb serve`: a recording, or the built-in data set, as Binance combined streams
//! on `ws://127.0.0.1:PORT/stream` plus the REST depth snapshot endpoint, with optional
//! faults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Result;
use statarb::feed::gen;
use statarb::serve;

/// Arguments of `statarb serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Recording files (`<ns> <message>` lines, gzip or plain), merged by time;
    /// default: the built-in data set.
    #[arg(long, num_args = 1..)]
    recording: Vec<PathBuf>,
    /// Seed of the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().seed)]
    seed: u64,
    /// Events in the built-in data set.
    #[arg(long, default_value_t = gen::GenParams::default().events)]
    events: usize,
    /// WebSocket (and HTTP) port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 9100)]
    port: u16,
    /// Extra port serving only the HTTP snapshot endpoint.
    #[arg(long, default_value_t = 9101)]
    http_port: u16,
    /// `max` (as fast as the client reads), `recorded`, or a factor such as `10x`.
    #[arg(long, default_value = "max")]
    pace: serve::Pacing,
    /// Fault: close the connection abruptly after every N messages.
    #[arg(long)]
    drop_every: Option<u64>,
    /// Fault: skip one depth message every N (a sequence gap).
    #[arg(long)]
    gap_every: Option<u64>,
    /// Fault: send a malformed frame after every N messages.
    #[arg(long)]
    malformed_every: Option<u64>,
    /// Fault: stall for --stall-ms after every N messages.
    #[arg(long)]
    stall_every: Option<u64>,
    /// Length of a stall, ms.
    #[arg(long, default_value_t = 0)]
    stall_ms: u64,
}

/// Runs `statarb serve` until Ctrl-C.
pub fn run(args: Args) -> Result<()> {
    let Args {
        recording,
        seed,
        events,
        port,
        http_port,
        pace,
        drop_every,
        gap_every,
        malformed_every,
        stall_every,
        stall_ms,
    } = args;

    let cfg = serve::ServeConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], port)),
        http_bind: Some(SocketAddr::from(([127, 0, 0, 1], http_port))),
        pacing: pace,
        faults: serve::Faults { drop_every, gap_every, malformed_every, stall_every, stall_ms },
        ..serve::ServeConfig::default()
    };
    let source = if recording.is_empty() {
        serve::Source::Generated(Arc::new(gen::generate(&super::gen_params(seed, events)?)))
    } else {
        serve::Source::Recording(recording)
    };
    let stop = super::signals::stop_flag()?;
    let handle = serve::spawn(cfg, source)?;
    eprintln!(
        "serving on ws://{}/stream, snapshots on http://{}/api/v3/depth; Ctrl-C to stop",
        handle.ws_addr(),
        handle.http_addr().unwrap_or(handle.ws_addr())
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    handle.stop();
    eprintln!("serve: stopped");
    Ok(())
}
