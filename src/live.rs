//! The live driver: a pinned hot thread busy-polls its market source, runs the
//! [`Core`], and pushes orders through an SPSC ring to a gateway thread, which talks to
//! the [`Exchange`] and pushes execution reports back through a second ring.
//!
//! ```text
//!  hot thread (pinned, busy-poll)                      gateway thread
//!  source.poll() -> Core::on_market -> ToGateway ring ->  Exchange::on_order / on_market
//!  Core::on_exec <- ExecReport ring <----------------------  reports
//! ```
//!
//! Hot-thread contract: after start-up it allocates nothing, takes no locks, logs and
//! formats nothing, and makes no system calls beyond what its source needs (socket
//! reads for a network source; none for an in-memory one). Time stamps come from
//! `Instant::now()`, a vDSO read of `CLOCK_MONOTONIC`, not a system call. Every command
//! is delivered: a full ring is waited out by spinning (and counted), never dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::{Commands, Core};
use crate::event::{ExecReport, MarketEvent, OrderCmd};
use crate::gateway::Exchange;
use crate::metrics::{Latencies, Stage};
use crate::ring::{ring, Consumer, Full, Producer};
use crate::types::Ts;

/// What the hot thread sends to the gateway thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ToGateway {
    /// An order command.
    Order(OrderCmd),
    /// A market event, forwarded for simulated venues before the orders it caused.
    Market(MarketEvent),
    /// No more messages: finish and exit.
    Stop,
}

/// One poll of a market source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// An event is ready.
    Event(MarketEvent),
    /// Nothing ready now.
    Idle,
    /// The source is finished (end of a recording).
    End,
}

/// A source of market events for the hot thread: a socket feed, or a recording.
pub trait MarketSource {
    /// The next event if one is ready; must not block.
    fn poll(&mut self) -> Polled;
    /// Local time now: the wall clock for a live feed, the event clock for a replay.
    fn now(&self) -> Ts;
}

/// How a replay feeds events to the hot thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the hot thread takes them; the gateway lags behind in event time by
    /// however long it takes, so results depend on thread timing.
    Max,
    /// Before each event the hot thread waits until the gateway has handled everything
    /// sent so far and the reports are drained: zero simulated latency, and the same
    /// fills on every run.
    Lockstep,
    /// Event time runs this many times faster than wall time.
    Speed(f64),
}

impl std::str::FromStr for Pacing {
    type Err = String;
    /// `max`, `lockstep`, or a speed factor such as `1000` or `1000x`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "max" => Ok(Pacing::Max),
            "lockstep" => Ok(Pacing::Lockstep),
            _ => match s.trim_end_matches('x').parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(Pacing::Speed(v)),
                _ => Err(format!("pacing must be max, lockstep or a positive speed factor, got {s:?}")),
            },
        }
    }
}

/// Replays events from memory; the clock is the last event's local time. With a speed
/// factor, an event is released only once wall time has caught up with it.
#[derive(Debug)]
pub struct SliceSource<'a> {
    events: &'a [MarketEvent],
    next: usize,
    now: Ts,
    /// Wall-clock ns per event-time ns (0: no pacing).
    wall_per_event_ns: f64,
    start: Option<Instant>,
}

impl<'a> SliceSource<'a> {
    /// A source over `events` (sorted by `local_ts`), as fast as it is polled.
    pub fn new(events: &'a [MarketEvent]) -> Self {
        SliceSource {
            events,
            next: 0,
            now: events.first().map_or(0, |e| e.local_ts),
            wall_per_event_ns: 0.0,
            start: None,
        }
    }

    /// A source whose event time runs `speed` times faster than wall time.
    pub fn paced(events: &'a [MarketEvent], speed: f64) -> Self {
        SliceSource { wall_per_event_ns: 1.0 / speed, ..SliceSource::new(events) }
    }
}

impl MarketSource for SliceSource<'_> {
    #[inline]
    fn poll(&mut self) -> Polled {
        let Some(ev) = self.events.get(self.next) else {
            return Polled::End;
        };
        if self.wall_per_event_ns > 0.0 {
            let start = *self.start.get_or_insert_with(Instant::now);
            let due = (ev.local_ts - self.events[0].local_ts) as f64 * self.wall_per_event_ns;
            if (start.elapsed().as_nanos() as f64) < due {
                return Polled::Idle;
            }
        }
        self.next += 1;
        self.now = ev.local_ts;
        Polled::Event(*ev)
    }

    #[inline]
    fn now(&self) -> Ts {
        self.now
    }
}

/// Counters of the hot loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoopStats {
    /// Loop turns.
    pub turns: u64,
    /// Turns on which the source had nothing.
    pub idle_turns: u64,
    /// Market events processed.
    pub events: u64,
    /// Execution reports processed.
    pub reports: u64,
    /// Commands pushed to the gateway.
    pub commands: u64,
    /// Spins waiting for room in the gateway ring.
    pub backpressure_spins: u64,
}

/// The hot thread's state and one turn of its loop. Built on the hot thread's side of
/// the rings; everything it needs is allocated in [`HotLoop::new`].
#[derive(Debug)]
pub struct HotLoop<S> {
    core: Core,
    source: S,
    to_gateway: Producer<ToGateway>,
    from_gateway: Consumer<ExecReport>,
    forward_market: bool,
    cmds: Commands,
    latencies: Latencies,
    stats: LoopStats,
    /// Messages pushed to the gateway so far.
    sent: u64,
}

impl<S: MarketSource> HotLoop<S> {
    /// A hot loop over its rings. With `forward_market` every market event is sent to
    /// the gateway too (for a simulated venue).
    pub fn new(
        core: Core,
        source: S,
        to_gateway: Producer<ToGateway>,
        from_gateway: Consumer<ExecReport>,
        forward_market: bool,
    ) -> Self {
        HotLoop {
            core,
            source,
            to_gateway,
            from_gateway,
            forward_market,
            cmds: Commands::new(),
            latencies: Latencies::new(),
            stats: LoopStats::default(),
            sent: 0,
        }
    }

    /// One turn: drain execution reports, then take at most one market event. Returns
    /// false once the source has ended.
    #[inline]
    pub fn turn(&mut self) -> bool {
        self.stats.turns += 1;
        self.drain_reports();
        match self.source.poll() {
            Polled::Event(ev) => {
                let t_read = Instant::now();
                self.stats.events += 1;
                if self.forward_market {
                    self.send(ToGateway::Market(ev));
                }
                self.core.on_market(&ev, ev.local_ts, &mut self.cmds);
                if ev.is_batch_end() {
                    let t_done = Instant::now();
                    self.latencies.record(Stage::Strategy, nanos(t_done - t_read));
                    if !self.cmds.is_empty() {
                        self.flush();
                        let t_pushed = Instant::now();
                        self.latencies.record(Stage::Push, nanos(t_pushed - t_done));
                        self.latencies.record(Stage::TickToQuote, nanos(t_pushed - t_read));
                    }
                }
                self.flush();
                true
            }
            Polled::Idle => {
                self.stats.idle_turns += 1;
                self.core.on_timer(self.source.now(), &mut self.cmds);
                self.flush();
                true
            }
            Polled::End => false,
        }
    }

    /// Drains every report waiting in the ring into the core.
    #[inline]
    pub fn drain_reports(&mut self) {
        while let Some(rep) = self.from_gateway.pop() {
            self.stats.reports += 1;
            self.core.on_exec(&rep, self.source.now(), &mut self.cmds);
            self.flush();
        }
    }

    /// Lockstep: waits until the gateway has handled every message sent so far
    /// (`handled`, published by [`gateway_loop`] after it has pushed their reports),
    /// feeds the reports to the core, and repeats until nothing is in flight.
    #[inline]
    pub fn sync(&mut self, handled: &AtomicU64) {
        loop {
            while handled.load(Ordering::Acquire) < self.sent {
                std::hint::spin_loop();
            }
            if self.from_gateway.is_empty() {
                return;
            }
            self.drain_reports();
        }
    }

    /// Shuts the core down (cancel all, no more quotes) and tells the gateway to finish
    /// once it has handled the cancels.
    pub fn stop(&mut self) {
        self.core.shutdown(&mut self.cmds);
        self.flush();
        self.send(ToGateway::Stop);
    }

    #[inline]
    fn flush(&mut self) {
        for i in 0..self.cmds.len() {
            let cmd = self.cmds[i];
            self.send(ToGateway::Order(cmd));
            self.stats.commands += 1;
        }
        self.cmds.clear();
    }

    #[inline]
    fn send(&mut self, msg: ToGateway) {
        let mut msg = msg;
        while let Err(Full(back)) = self.to_gateway.push(msg) {
            msg = back;
            self.stats.backpressure_spins += 1;
            std::hint::spin_loop();
        }
        self.sent += 1;
    }

    /// The core.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Latency histograms.
    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }

    /// Loop counters.
    pub fn stats(&self) -> &LoopStats {
        &self.stats
    }

    /// True once the gateway has dropped its end of the report ring.
    pub fn gateway_gone(&self) -> bool {
        self.from_gateway.is_abandoned()
    }
}

#[inline]
fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Counters of the gateway loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GatewayStats {
    /// Commands handled.
    pub commands: u64,
    /// Market events handled.
    pub market: u64,
    /// Reports pushed back.
    pub reports: u64,
}

/// The gateway thread's loop: pops commands and market events until [`ToGateway::Stop`],
/// hands them to the exchange, and pushes its reports back. After each message and its
/// reports, `handled` counts it (for [`Pacing::Lockstep`]). Spins while idle and yields
/// the CPU after a run of empty polls.
pub fn gateway_loop<E: Exchange>(
    exchange: &mut E,
    mut rx: Consumer<ToGateway>,
    mut tx: Producer<ExecReport>,
    handled: &AtomicU64,
    clock: impl Fn() -> Ts,
) -> GatewayStats {
    let mut stats = GatewayStats::default();
    let mut reports = Vec::with_capacity(256);
    let mut idle = 0u32;
    loop {
        let Some(msg) = rx.pop() else {
            idle += 1;
            if idle > 1_000 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            continue;
        };
        idle = 0;
        let stop = match msg {
            ToGateway::Order(cmd) => {
                stats.commands += 1;
                exchange.on_order(&cmd, clock(), &mut reports);
                false
            }
            ToGateway::Market(ev) => {
                stats.market += 1;
                exchange.on_market(&ev, &mut reports);
                false
            }
            ToGateway::Stop => true,
        };
        for rep in reports.drain(..) {
            let mut rep = rep;
            while let Err(Full(back)) = tx.push(rep) {
                rep = back;
                std::thread::yield_now();
            }
            stats.reports += 1;
        }
        handled.fetch_add(1, Ordering::Release);
        if stop {
            return stats;
        }
    }
}

/// Which cores the threads go on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pinning {
    /// Core for the hot thread (`None`: the last core).
    pub hot: Option<usize>,
    /// Core for the gateway thread (`None`: unpinned).
    pub gateway: Option<usize>,
}

/// Pins the calling thread to `core` (or the last core). Returns a warning text when
/// pinning is impossible; running unpinned is allowed, just slower and noisier.
pub fn pin_current(core: Option<usize>, cores: &[core_affinity::CoreId], who: &str) -> Option<String> {
    let id = match core {
        Some(c) => match cores.iter().find(|id| id.id == c) {
            Some(id) => *id,
            None => {
                return Some(format!(
                    "{who}: core {c} is not available ({} cores visible); running unpinned",
                    cores.len()
                ))
            }
        },
        None => match cores.last() {
            Some(id) => *id,
            None => return Some(format!("{who}: no core ids visible; running unpinned")),
        },
    };
    if core_affinity::set_for_current(id) {
        None
    } else {
        Some(format!("{who}: pinning to core {} failed; running unpinned", id.id))
    }
}

/// What a threaded run returns.
#[derive(Debug)]
pub struct RunOutcome<E> {
    /// The core after the run (positions, counters, last signal).
    pub core: Core,
    /// Hot-thread latency histograms.
    pub latencies: Latencies,
    /// Hot-loop counters.
    pub loop_stats: LoopStats,
    /// Gateway counters.
    pub gateway_stats: GatewayStats,
    /// The exchange after the run.
    pub exchange: E,
    /// Pinning warnings, for the caller to log.
    pub warnings: Vec<String>,
    /// Wall time of the hot loop.
    pub elapsed: Duration,
}

/// Options of a threaded run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Capacity of each ring.
    pub ring_capacity: usize,
    /// Cores for the threads.
    pub pinning: Pinning,
    /// Wait for the gateway before each event ([`Pacing::Lockstep`]).
    pub lockstep: bool,
}

/// Runs `core` over `source` on a pinned hot thread with a gateway thread driving
/// `exchange`, until the source ends or `stop` is set (SIGINT); then shuts the core
/// down (cancel all), lets the gateway drain, and processes its last reports.
pub fn run<S, E>(core: Core, source: S, mut exchange: E, opts: &RunOptions, stop: &AtomicBool) -> RunOutcome<E>
where
    S: MarketSource + Send,
    E: Exchange,
{
    let (to_gw, gw_rx) = ring::<ToGateway>(opts.ring_capacity);
    let (gw_tx, from_gw) = ring::<ExecReport>(opts.ring_capacity);
    let forward = exchange.needs_market();
    let handled = Arc::new(AtomicU64::new(0));
    let pinning = opts.pinning;
    let lockstep = opts.lockstep;
    // Allocates: done once, here, before the threads start.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (hl, elapsed, gateway_stats, warnings) = std::thread::scope(|s| {
        let cores = &cores;
        let exchange = &mut exchange;
        let gw_handled = Arc::clone(&handled);
        let gateway = s.spawn(move || {
            let warn = pinning.gateway.and_then(|c| pin_current(Some(c), cores, "gateway thread"));
            let epoch = Instant::now();
            let stats = gateway_loop(exchange, gw_rx, gw_tx, &gw_handled, move || epoch.elapsed().as_nanos() as Ts);
            (stats, warn)
        });
        let hot = s.spawn(move || {
            let warn = pin_current(pinning.hot, cores, "hot thread");
            let mut hl = HotLoop::new(core, source, to_gw, from_gw, forward);
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if lockstep {
                    hl.sync(&handled);
                }
                if !hl.turn() {
                    break;
                }
            }
            hl.stop();
            while !hl.gateway_gone() {
                hl.drain_reports();
                std::hint::spin_loop();
            }
            hl.drain_reports();
            (hl, t0.elapsed(), warn)
        });
        let (hl, elapsed, hot_warn) = hot.join().expect("hot thread panicked");
        let (gateway_stats, gw_warn) = gateway.join().expect("gateway thread panicked");
        (hl, elapsed, gateway_stats, hot_warn.into_iter().chain(gw_warn).collect())
    });
    let HotLoop { core, latencies, stats, .. } = hl;
    RunOutcome { core, latencies, loop_stats: stats, gateway_stats, exchange, warnings, elapsed }
}
