//! Live observability, off the hot thread.
//!
//! ```text
//!  hot thread --stores--> Telemetry (atomics, histogram, reject queue)
//!                             |                      |
//!                  monitor thread (logs)     metrics thread (/metrics)
//! ```
//!
//! The hot thread only writes counters, gauges and a histogram ([`telemetry`]); it
//! never formats, logs or blocks for the monitor. The monitor thread wakes every
//! [`TICK`], compares the sample with the one before, and logs what changed through
//! `tracing`: connects and disconnects, book resyncs and gaps, books leaving and
//! regaining sync, markets going stale (quotes pulled), risk refusals by reason, each
//! venue reject with its code and message, and the kill switch. Every
//! [`MonitorOptions::status_every`] it logs a status line: messages and events per
//! second, each leg's book, position and PnL, open orders, and tick-to-quote p50/p99
//! over the interval. The `/metrics` endpoint ([`prometheus`]) runs on a thread of
//! its own, so a slow scraper never delays a log line.
//!
//! Where the log lines go (stderr or a file, text or JSON) is the subscriber's
//! business: the binary installs one (`statarb run`), a library user installs their own.

pub mod hist;
pub mod prometheus;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use hist::HistCounts;
use prometheus::MetricsServer;
use telemetry::{Sample, Telemetry};

use crate::event::ExecReport;
use crate::risk::Reject;
use crate::venue_codes::{REJECT_REPLACE_FAILED, REJECT_UNKNOWN_ORDER};

/// How often the monitor looks at the telemetry for events to log.
pub const TICK: Duration = Duration::from_millis(100);

/// What the monitor does.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorOptions {
    /// Interval of the status line (`None`: no status line).
    pub status_every: Option<Duration>,
    /// Where `/metrics` listens (`None`: no endpoint). Port 0 takes a free port; the
    /// address is logged at start and given by [`Monitor::metrics_addr`].
    pub metrics_addr: Option<SocketAddr>,
    /// The legs' symbols, y then x, for labels and the status line.
    pub legs: [String; 2],
}

/// The running monitor (and metrics endpoint). Stop it with [`Monitor::stop`], which
/// logs a last status line.
#[derive(Debug)]
pub struct Monitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    metrics: Option<MetricsServer>,
}

impl Monitor {
    /// Starts the monitor thread over `telemetry`, and the endpoint if configured.
    /// Fails only if the endpoint's address cannot be bound or a thread cannot start.
    pub fn spawn(telemetry: Arc<Telemetry>, opts: MonitorOptions) -> std::io::Result<Self> {
        let metrics = match opts.metrics_addr {
            Some(addr) => {
                let server = MetricsServer::spawn(addr, Arc::clone(&telemetry), opts.legs.clone())?;
                info!(addr = %server.addr(), "metrics endpoint on http://{}/metrics", server.addr());
                Some(server)
            }
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("statarb-monitor".into()).spawn(move || {
            let mut w = Watch::new(opts);
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                w.tick(&telemetry, false);
            }
            w.tick(&telemetry, true);
        })?;
        Ok(Monitor { stop, thread: Some(thread), metrics })
    }

    /// Where `/metrics` listens, if it does.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::addr)
    }

    /// Stops both threads, after a last look at the telemetry and a last status line.
    /// Returns the scrapes the endpoint answered.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.metrics.take().map_or(0, MetricsServer::stop)
    }
}

/// The monitor thread's memory: the last sample and the histogram at the last status
/// line.
struct Watch {
    opts: MonitorOptions,
    last: Sample,
    status_at: Instant,
    status_sample: Sample,
    status_hist: HistCounts,
    hist: HistCounts,
    dropped_rejects: u64,
}

impl Watch {
    fn new(opts: MonitorOptions) -> Self {
        Watch {
            opts,
            last: Sample::default(),
            status_at: Instant::now(),
            status_sample: Sample::default(),
            status_hist: HistCounts::default(),
            hist: HistCounts::default(),
            dropped_rejects: 0,
        }
    }

    /// One look: the venue's rejects, what changed since the last look, and the status
    /// line when due (or `last`, at stop).
    fn tick(&mut self, t: &Telemetry, last: bool) {
        self.rejects(t);
        let dropped = t.rejects_dropped();
        if dropped > self.dropped_rejects {
            warn!(dropped = dropped - self.dropped_rejects, "venue rejects not logged: the notice queue was full");
            self.dropped_rejects = dropped;
        }
        let now = t.load();
        if now.seq != self.last.seq {
            self.changes(&self.last, &now);
            self.last = now;
        }
        let due = self.opts.status_every.is_some_and(|every| self.status_at.elapsed() >= every);
        if due || (last && self.opts.status_every.is_some()) {
            t.tick_to_quote.snapshot_into(&mut self.hist);
            self.status(&now);
        }
    }

    /// Logs the venue's rejects since the last look: one line per code, with how many,
    /// the last order and the venue's message. A cancel that finds its order already
    /// final (`-2011`; or `-2022`, a cancel-replace whose cancel failed so that no new
    /// order went out: the order filled or was cancelled on the way) is routine, so its
    /// line is `info`; every other code is `warn`.
    fn rejects(&mut self, t: &Telemetry) {
        // (code, count, last report); a handful of codes per look at most.
        let mut by_code: Vec<(i32, u64, ExecReport)> = Vec::new();
        while let Some(r) = t.next_reject() {
            match by_code.iter_mut().find(|(c, ..)| *c == r.code) {
                Some((_, n, last)) => {
                    *n += 1;
                    *last = r;
                }
                None => by_code.push((r.code, 1, r)),
            }
        }
        for (code, count, r) in by_code {
            let leg = self.opts.legs.get(r.inst as usize).map_or("?", String::as_str);
            if code == REJECT_UNKNOWN_ORDER || code == REJECT_REPLACE_FAILED {
                info!(code, count, leg, order = r.id, msg = %r.msg, "cancels found their orders already final");
            } else {
                warn!(code, count, leg, order = r.id, msg = %r.msg, "venue rejected orders");
            }
        }
    }

    /// Logs what changed from `a` to `b`.
    fn changes(&self, a: &Sample, b: &Sample) {
        let (fa, fb) = (&a.feed, &b.feed);
        if fb.connects > fa.connects {
            info!(connects = fb.connects, "feed connected");
        }
        if fb.disconnects > fa.disconnects {
            if fb.errors > fa.errors {
                warn!(disconnects = fb.disconnects, errors = fb.errors, reason = %fb.last_failure, "feed disconnected");
            } else {
                info!(disconnects = fb.disconnects, "feed disconnected (planned reconnect)");
            }
        } else if fb.errors > fa.errors {
            warn!(errors = fb.errors, reason = %fb.last_failure, "feed connection failed");
        }
        if fb.gaps > fa.gaps {
            warn!(gaps = fb.gaps - fa.gaps, "sequence gap: the book resyncs from a snapshot");
        }
        if fb.resyncs > fa.resyncs {
            info!(resyncs = fb.resyncs, "book built from a snapshot");
        }
        if fb.snapshot_errors > fa.snapshot_errors {
            warn!(
                failed = fb.snapshot_errors - fa.snapshot_errors,
                "depth snapshot failed or stale; retrying with back-off"
            );
        }
        if fb.parse_errors > fa.parse_errors {
            warn!(count = fb.parse_errors - fa.parse_errors, "feed messages failed to parse (skipped)");
        }
        for (l, leg) in self.opts.legs.iter().enumerate() {
            match (fa.synced[l], fb.synced[l]) {
                (true, false) if a.seq > 0 => warn!(leg = %leg, "book out of sync"),
                (false, true) => info!(leg = %leg, "book in sync"),
                _ => {}
            }
            match (a.legs[l].fresh, b.legs[l].fresh) {
                (true, false) => warn!(leg = %leg, "market stale or one-sided"),
                (false, true) if a.seq > 0 => info!(leg = %leg, "market fresh again"),
                _ => {}
            }
        }
        for r in Reject::ALL {
            let n = b.rejects(r).saturating_sub(a.rejects(r));
            match r {
                // Logged one by one, with their codes, from the reject queue.
                Reject::Exchange => {}
                _ if n == 0 => {}
                Reject::Stale | Reject::Unmarked => warn!(reason = r.name(), count = n, "stale market: quotes pulled"),
                _ => info!(reason = r.name(), count = n, "risk refused orders"),
            }
        }
        if b.killed && !a.killed {
            error!(net_pnl = b.net_pnl, "kill switch tripped: every order is refused from now on");
        }
    }

    /// The status line, over the interval since the last one.
    fn status(&mut self, s: &Sample) {
        let secs = self.status_at.elapsed().as_secs_f64().max(1e-9);
        let p = &self.status_sample;
        let rate = |a: u64, b: u64| (a.saturating_sub(b) as f64 / secs).round() as u64;
        let interval = self.hist.since(&self.status_hist);
        let q = |x: f64| interval.quantile(x).unwrap_or(0);
        let book = |l: usize| match (s.feed.synced[l], s.legs[l].fresh) {
            (false, _) => "unsynced",
            (true, false) => "stale",
            (true, true) => "live",
        };
        let [y, x] = &self.opts.legs;
        info!(
            target: "statarb::status",
            msgs_per_s = rate(s.feed.messages, p.feed.messages),
            events_per_s = rate(s.events, p.events),
            y = %y,
            y_book = book(0),
            y_pos = round_to(s.legs[0].position, 1e8),
            y_pnl = round_to(s.legs[0].pnl, 100.0),
            x = %x,
            x_book = book(1),
            x_pos = round_to(s.legs[1].position, 1e8),
            x_pnl = round_to(s.legs[1].pnl, 100.0),
            net_pnl = round_to(s.net_pnl, 100.0),
            open_orders = s.open_orders,
            fills = s.fills,
            quotes = interval.count,
            t2q_p50_ns = q(0.5),
            t2q_p99_ns = q(0.99),
            "status"
        );
        self.status_at = Instant::now();
        self.status_sample = *s;
        std::mem::swap(&mut self.status_hist, &mut self.hist);
    }
}

/// `v` rounded to `1/per` (cents: 100), so that a position of 0.02899 does not print
/// as 0.028990000000000002.
fn round_to(v: f64, per: f64) -> f64 {
    (v * per).round() / per
}
