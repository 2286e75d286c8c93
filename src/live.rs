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
//! reads for a network source; none for an in-memory one). Time stamps and the local
//! clock come from the [`StampClock`] (the TSC, or a vDSO read of `CLOCK_MONOTONIC`),
//! not a system call. Every command
//! is delivered: a full ring is waited out by spinning (and counted), never dropped.
//! The gateway never waits on the report ring (it queues overflow off the ring, see
//! `Outbox`), so the two rings cannot deadlock: whatever their capacities, the
//! gateway keeps popping commands, and the hot thread's push completes.
//!
//! Clocks: the core's strategy clock is the source's (`MarketSource::now`, the event's
//! `local_ts`), which with `feed.clock = "exchange"` is the feed's exchange clock;
//! staleness is judged on the local receive clock ([`crate::core::Clocks`]), which for
//! a live source is the hot loop's own (the wall clock at start-up plus the monotonic
//! clock's advance, read once per event anyway for the latency stamps), so that a
//! stalled feed goes stale whatever its exchange clock says. A replay of recorded
//! events ([`MarketSource::RECORDED`]) keeps its recorded receive times.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Stamp, StampClock};
use crate::core::{Clocks, Commands, Core};
use crate::event::{ExecKind, ExecReport, MarketEvent, OrderCmd};
use crate::feed::source::FeedStamps;
use crate::gateway::Exchange;
use crate::metrics::{Latencies, Stage};
use crate::monitor::telemetry::{LegSample, Sample, Telemetry, PUBLISH_EVERY};
use crate::ring::{ring, Consumer, Full, Producer};
use crate::types::Ts;

/// What the hot thread sends to the gateway thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ToGateway {
    /// An order command, with the stamps of the tick that made it.
    Order(OrderCmd, OrderStamps),
    /// A market event, forwarded for simulated venues before the orders it caused.
    Market(MarketEvent),
    /// No more messages: finish and exit.
    Stop,
}

pub use crate::feed::source::{MarketSource, Polled};

/// When the tick behind an order passed the hot thread's stages, on the
/// [`StampClock`], for the gateway's stages ([`Stage::Hop`], [`Stage::Send`] and the
/// totals to the wire). 0: not stamped (commands not made by a market tick, such as
/// the answers to reports and the shutdown's cancels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderStamps {
    /// The message left the server (its send stamp) or, without one, its bytes were
    /// in hand (network sources only).
    pub wire: Stamp,
    /// The hot loop had the event in hand.
    pub tick: Stamp,
    /// The order was pushed into the ring.
    pub pushed: Stamp,
}

/// How a replay feeds events to the hot thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the hot thread takes them; the gateway lags behind in event time by
    /// however long it takes, so results depend on thread timing.
    Max,
    /// Before each event the hot thread waits until the gateway has handled everything
    /// sent so far and the reports are drained; then it forwards the event to a
    /// simulated venue and waits for its answer again before the core hears the event
    /// ([`HotLoop::turn_lockstep`]): the venue acts first, as in a replay at equal
    /// times. Zero simulated latency, and the same fills on every run.
    ///
    /// It waits only while the core has orders open: with none, every report has come
    /// back and nothing can (a venue reports on our orders only), so the gateway may lag
    /// without changing anything the core hears.
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
    const RECORDED: bool = true;

    /// One event per poll: a replay interleaves events and execution reports finely.
    #[inline]
    fn poll(&mut self, on_event: &mut impl FnMut(&MarketEvent)) -> Polled {
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
        on_event(ev);
        Polled::Events
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
    outlet: Outlet,
    from_gateway: Consumer<ExecReport>,
    forward_market: bool,
    cmds: Commands,
    latencies: Latencies,
    stats: LoopStats,
    local: LocalClock,
    telemetry: Arc<Telemetry>,
    /// Samples published to `telemetry`.
    published: u64,
    clock: StampClock,
}

/// The hot loop's local receive clock: the wall clock at start-up plus the stamp
/// clock's advance since (no wall-clock steps, and no clock read beyond the stamps the
/// latency stages take anyway).
#[derive(Debug, Clone)]
struct LocalClock {
    wall0: Ts,
    t0: Stamp,
    clock: StampClock,
}

impl LocalClock {
    fn start(clock: StampClock) -> Self {
        LocalClock { wall0: crate::feed::snapshot::wall_ns(), t0: clock.raw(), clock }
    }

    /// Local time at stamp `t`.
    #[inline]
    fn at(&self, t: Stamp) -> Ts {
        self.wall0.saturating_add(i64::try_from(self.clock.nanos(self.t0, t)).unwrap_or(i64::MAX))
    }

    /// Local time now.
    #[inline]
    fn now(&self) -> Ts {
        self.at(self.clock.raw())
    }
}

/// The hot thread's end of the gateway ring, with its counters.
#[derive(Debug)]
struct Outlet {
    ring: Producer<ToGateway>,
    /// Messages pushed so far.
    sent: u64,
    /// Order commands pushed so far.
    commands: u64,
    /// Spins waiting for room.
    backpressure_spins: u64,
}

impl Outlet {
    /// Pushes every command in `cmds`, unstamped, and clears it.
    #[inline]
    fn flush(&mut self, cmds: &mut Commands) {
        self.flush_stamped(cmds, OrderStamps::default());
    }

    /// Pushes every command in `cmds` with the stamps of their tick, and clears it.
    #[inline]
    fn flush_stamped(&mut self, cmds: &mut Commands, stamps: OrderStamps) {
        for i in 0..cmds.len() {
            self.send(ToGateway::Order(cmds[i], stamps));
            self.commands += 1;
        }
        cmds.clear();
    }

    /// Pushes one message, spinning while the ring is full: never drops.
    #[inline]
    fn send(&mut self, msg: ToGateway) {
        let mut msg = msg;
        while let Err(Full(back)) = self.ring.push(msg) {
            msg = back;
            self.backpressure_spins += 1;
            std::hint::spin_loop();
        }
        self.sent += 1;
    }
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
        let clock = StampClock::new();
        let mut core = core;
        core.enable_stamps(clock.clone());
        HotLoop {
            core,
            source,
            outlet: Outlet { ring: to_gateway, sent: 0, commands: 0, backpressure_spins: 0 },
            from_gateway,
            forward_market,
            cmds: Commands::new(),
            latencies: Latencies::new(),
            stats: LoopStats::default(),
            local: LocalClock::start(clock.clone()),
            telemetry: Arc::new(Telemetry::new()),
            published: 0,
            clock,
        }
    }

    /// The same loop publishing into `telemetry`, for a monitor to read
    /// ([`crate::monitor`]). Without it the loop publishes into a telemetry of its own
    /// that nobody reads.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Stores a [`Sample`] of the core and the source into the telemetry: plain reads
    /// and relaxed stores, no allocation (see [`crate::monitor::telemetry`]).
    #[inline]
    pub fn publish(&mut self) {
        self.published += 1;
        let core = &self.core;
        let local = self.clocks().local;
        let marks = core.marks();
        let leg = |l: usize| {
            let p = core.portfolio().position(l);
            let inst = core.instrument(l);
            LegSample {
                position: inst.qty_f64(p.qty),
                pnl: p.realized + p.unrealized(inst, marks[l]) - p.fees,
                mark: marks[l],
                fresh: core.leg_fresh(l, local),
            }
        };
        let cs = core.stats();
        self.telemetry.store(&Sample {
            seq: self.published,
            turns: self.stats.turns,
            events: self.stats.events,
            reports: self.stats.reports,
            commands: self.outlet.commands,
            fills: cs.fills,
            quotes: self.latencies.get(Stage::TickToQuote).len(),
            feed: self.source.counters(),
            legs: [leg(0), leg(1)],
            net_pnl: core.portfolio().net_pnl(&marks),
            open_orders: core.open_orders() as u64,
            killed: core.risk().killed(),
            risk_rejects: *core.risk().counts(),
        });
    }

    /// The core's clocks now, between events.
    #[inline]
    fn clocks(&self) -> Clocks {
        clocks_now(&self.source, &self.local)
    }

    /// One turn: drain execution reports, then hand every ready market event to the
    /// core. Returns false once the source has ended.
    #[inline]
    pub fn turn(&mut self) -> bool {
        self.turn_with(None)
    }

    /// One turn of [`Pacing::Lockstep`]: [`Self::sync`] first, then as [`Self::turn`],
    /// but each market event goes to the gateway first, and the hot thread waits until
    /// the gateway has handled it (`handled`, as in [`Self::sync`]) and feeds its
    /// reports to the core, at the event's clocks, before the core hears the event.
    /// Both waits happen only while the core has orders open (see [`Pacing::Lockstep`]).
    #[inline]
    pub fn turn_lockstep(&mut self, handled: &AtomicU64) -> bool {
        if self.core.open_orders() > 0 {
            self.sync(handled);
        }
        self.turn_with(Some(handled))
    }

    #[inline]
    fn turn_with(&mut self, handled: Option<&AtomicU64>) -> bool {
        self.stats.turns += 1;
        if self.stats.turns.is_multiple_of(PUBLISH_EVERY) {
            self.publish();
        }
        self.drain_reports();
        let HotLoop {
            core,
            source,
            outlet,
            from_gateway,
            forward_market,
            cmds,
            latencies,
            stats,
            local,
            telemetry,
            clock,
            ..
        } = self;
        let handled = handled.filter(|_| *forward_market);
        let polled = source.poll_stamped(&mut |ev: &MarketEvent, fs: FeedStamps| {
            stats.events += 1;
            if handled.is_some() {
                outlet.send(ToGateway::Market(*ev));
            }
            if let Some(handled) = handled.filter(|_| core.open_orders() > 0) {
                let clocks = || Clocks { now: ev.local_ts, local: if S::RECORDED { ev.local_ts } else { local.now() } };
                settle(handled, outlet, from_gateway, core, cmds, &mut stats.reports, telemetry, clocks);
            }
            let t_read = clock.raw();
            if *forward_market && handled.is_none() {
                outlet.send(ToGateway::Market(*ev));
            }
            let t = Clocks { now: ev.local_ts, local: if S::RECORDED { ev.local_ts } else { local.at(t_read) } };
            core.on_market_at(ev, t, cmds);
            if ev.is_batch_end() {
                let t_done = clock.raw();
                latencies.record(Stage::Strategy, clock.nanos(t_read, t_done));
                record_core_stages(latencies, clock, fs, t_read, core);
                // The wire: the server's send stamp where it sends one, else the bytes read.
                let wire = if fs.sent != 0 { fs.sent } else { fs.read };
                if !cmds.is_empty() {
                    outlet.flush_stamped(cmds, OrderStamps { wire, tick: t_read, pushed: t_done });
                    let t_pushed = clock.raw();
                    latencies.record(Stage::Push, clock.nanos(t_done, t_pushed));
                    let t2q = clock.nanos(t_read, t_pushed);
                    latencies.record(Stage::TickToQuote, t2q);
                    telemetry.tick_to_quote.record(t2q);
                    if wire != 0 {
                        latencies.record(Stage::WireToQuote, clock.nanos(wire, t_pushed));
                    }
                }
            }
            outlet.flush(cmds);
        });
        match polled {
            Polled::Events => true,
            Polled::Idle => {
                self.stats.idle_turns += 1;
                let t = self.clocks();
                self.core.on_timer_at(t, &mut self.cmds);
                self.outlet.flush(&mut self.cmds);
                true
            }
            Polled::End => false,
        }
    }

    /// Drains every report waiting in the ring into the core.
    #[inline]
    pub fn drain_reports(&mut self) {
        let HotLoop { core, source, outlet, from_gateway, cmds, stats, local, telemetry, .. } = self;
        drain(from_gateway, core, cmds, outlet, &mut stats.reports, telemetry, || clocks_now(source, local));
    }

    /// Lockstep: waits until the gateway has handled every message sent so far
    /// (`handled`, published by [`gateway_loop`] after it has pushed their reports),
    /// feeds the reports to the core, and repeats until nothing is in flight.
    #[inline]
    pub fn sync(&mut self, handled: &AtomicU64) {
        let HotLoop { core, source, outlet, from_gateway, cmds, stats, local, telemetry, .. } = self;
        settle(handled, outlet, from_gateway, core, cmds, &mut stats.reports, telemetry, || clocks_now(source, local));
    }

    /// Shuts the core down (cancel all, no more quotes) and tells the gateway to finish
    /// once it has handled the cancels.
    pub fn stop(&mut self) {
        self.core.shutdown(&mut self.cmds);
        self.outlet.flush(&mut self.cmds);
        self.outlet.send(ToGateway::Stop);
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
    pub fn stats(&self) -> LoopStats {
        LoopStats { commands: self.outlet.commands, backpressure_spins: self.outlet.backpressure_spins, ..self.stats }
    }

    /// True once the gateway has dropped its end of the report ring.
    pub fn gateway_gone(&self) -> bool {
        self.from_gateway.is_abandoned()
    }
}

/// Records the feed's and the core's stages of a batch end the core has just handled:
/// parse (network sources), book, signal, quote and risk (when the core ran them for
/// this event: its book stamp is after `t_read`).
#[inline]
fn record_core_stages(latencies: &mut Latencies, clock: &StampClock, fs: FeedStamps, t_read: Stamp, core: &Core) {
    if fs.sent != 0 {
        latencies.record(Stage::Network, clock.nanos(fs.sent, fs.read));
    }
    if fs.read != 0 {
        latencies.record(Stage::Parse, clock.nanos(fs.read, fs.parsed));
    }
    let cs = core.stamps();
    if cs.book < t_read {
        return;
    }
    let from = if fs.parsed != 0 { fs.parsed } else { t_read };
    latencies.record(Stage::Book, clock.nanos(from, cs.book));
    latencies.record(Stage::Signal, clock.nanos(cs.book, cs.signal));
    // A requote that computed no quote (flat target, stale leg) has no quote stage.
    if cs.quote_ns > 0 {
        latencies.record(Stage::Quote, cs.quote_ns);
    }
    if cs.risk_ns > 0 {
        latencies.record(Stage::Risk, cs.risk_ns);
    }
}

/// The core's clocks now, between events: the source's, and the local receive clock.
#[inline]
fn clocks_now<S: MarketSource>(source: &S, local: &LocalClock) -> Clocks {
    let now = source.now();
    Clocks { now, local: if S::RECORDED { now } else { local.now() } }
}

/// Drains every report waiting in the ring into the core at `clocks()`, pushing the
/// commands it answers with. Rejects also go to the monitor, with their codes.
#[inline]
fn drain(
    from_gateway: &mut Consumer<ExecReport>,
    core: &mut Core,
    cmds: &mut Commands,
    outlet: &mut Outlet,
    reports: &mut u64,
    telemetry: &Telemetry,
    clocks: impl Fn() -> Clocks,
) {
    while let Some(rep) = from_gateway.pop() {
        *reports += 1;
        if rep.kind == ExecKind::Rejected {
            telemetry.notice_reject(&rep);
        }
        core.on_exec_at(&rep, clocks(), cmds);
        outlet.flush(cmds);
    }
}

/// Spins of the lockstep wait before it yields the CPU on each further spin. The wait
/// is for the gateway thread: on cores of their own the answer comes within a few
/// hundred spins, and spinning is fastest; when the two threads share a core (another
/// process took the other one, or no pinning on a busy host), only yielding lets the
/// gateway run at all, instead of each spin burning the rest of a scheduler slice.
const LOCKSTEP_SPINS: u32 = 1 << 12;

/// A bounded spin, then `yield_now`: the waits of [`Pacing::Lockstep`], a measurement
/// mode. The production loop ([`Pacing::Max`]) never yields.
#[derive(Debug, Default)]
struct Backoff {
    spins: u32,
}

impl Backoff {
    /// One wait step.
    #[inline]
    fn snooze(&mut self) {
        if self.spins < LOCKSTEP_SPINS {
            self.spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// The lockstep wait ([`HotLoop::sync`]): until the gateway has handled every message
/// sent, feeding its reports to the core at `clocks()`, and again for the commands
/// those make, until nothing is in flight. Spins, then yields ([`Backoff`]).
#[allow(clippy::too_many_arguments)]
#[inline]
fn settle(
    handled: &AtomicU64,
    outlet: &mut Outlet,
    from_gateway: &mut Consumer<ExecReport>,
    core: &mut Core,
    cmds: &mut Commands,
    reports: &mut u64,
    telemetry: &Telemetry,
    clocks: impl Fn() -> Clocks,
) {
    let mut backoff = Backoff::default();
    loop {
        while handled.load(Ordering::Acquire) < outlet.sent {
            // The gateway publishes `handled` once its reports are in the ring; a full
            // ring must be drained for that to happen.
            if from_gateway.is_full() {
                drain(from_gateway, core, cmds, outlet, reports, telemetry, &clocks);
            }
            backoff.snooze();
        }
        if from_gateway.is_empty() {
            return;
        }
        drain(from_gateway, core, cmds, outlet, reports, telemetry, &clocks);
    }
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
    /// Reports that came from [`Exchange::poll`] (a venue's own stream, settled
    /// queries), not as the answer to a command.
    pub polled_reports: u64,
    /// Orders still in flight or open when the shutdown wait ended: 0 unless the venue
    /// did not confirm every cancel within the timeout.
    pub unconfirmed_at_stop: u64,
    /// True if the shutdown wait for cancel confirmations timed out.
    pub stop_timed_out: bool,
    /// Most reports waiting for room in the report ring at once (see `Outbox`): 0
    /// unless the hot thread fell a whole ring behind.
    pub backlog_peak: u64,
}

/// An idle gateway polls its venue ([`Exchange::poll`]) every this many empty ring
/// polls: a real venue's poll is a syscall, and so is reading the clock on VMs whose
/// clock source has no vDSO path, so neither happens on every spin.
const VENUE_POLL_EVERY: u32 = 256;

/// The gateway's end of the report ring, with an overflow queue.
///
/// The gateway never waits for room in the report ring: a report that does not fit goes
/// to `backlog` (the gateway thread may allocate) and moves into the ring as the hot
/// thread frees slots. Waiting instead would deadlock: with the command ring full too,
/// the hot thread spins in its own push and never drains reports, while the gateway
/// waits and never pops commands. With the backlog the gateway always goes on popping,
/// so the hot thread's push always completes. The backlog is bounded in practice by the
/// reports of the commands one full command ring holds; its high-water mark is
/// [`GatewayStats::backlog_peak`].
struct Outbox {
    tx: Producer<ExecReport>,
    backlog: VecDeque<ExecReport>,
    peak: usize,
}

impl Outbox {
    /// Queues every report in `reports` (emptying it), in order; returns how many.
    fn push(&mut self, reports: &mut Vec<ExecReport>) -> u64 {
        let n = reports.len() as u64;
        self.flush();
        for rep in reports.drain(..) {
            if !self.backlog.is_empty() {
                self.backlog.push_back(rep);
            } else if let Err(Full(rep)) = self.tx.push(rep) {
                self.backlog.push_back(rep);
            }
        }
        self.peak = self.peak.max(self.backlog.len());
        n
    }

    /// Moves backlog into the ring while it has room; true when nothing is left over.
    fn flush(&mut self) -> bool {
        while let Some(rep) = self.backlog.pop_front() {
            if let Err(Full(rep)) = self.tx.push(rep) {
                self.backlog.push_front(rep);
                return false;
            }
        }
        true
    }

    /// Waits until the backlog is in the ring (at stop, when the hot thread drains).
    fn flush_all(&mut self) {
        while !self.flush() {
            if self.tx.is_abandoned() {
                return;
            }
            std::thread::yield_now();
        }
    }
}

/// The gateway thread's loop: pops commands and market events until [`ToGateway::Stop`],
/// hands them to the exchange, and pushes its reports back. `handled` counts the
/// messages whose reports are all in the ring (for [`Pacing::Lockstep`]). While idle it
/// polls the venue every [`VENUE_POLL_EVERY`] empty polls for reports of its own (fills
/// from a user data stream), spins, and yields the CPU after a run of empty polls.
///
/// On `Stop` (sent after the core's final cancel-all) it keeps polling until the venue
/// has nothing in flight ([`Exchange::in_flight`]), then asks the venue for open
/// orders and cancels any that remain once more; it gives up after `cancel_timeout`
/// and reports what was left in [`GatewayStats`].
///
/// Stamped commands ([`OrderStamps`]) have their gateway stages recorded into
/// `latencies`: [`Stage::Hop`], [`Stage::Send`], [`Stage::TickToOrder`] and
/// [`Stage::WireToOrder`].
pub fn gateway_loop<E: Exchange>(
    exchange: &mut E,
    mut rx: Consumer<ToGateway>,
    tx: Producer<ExecReport>,
    handled: &AtomicU64,
    clock: impl Fn() -> Ts,
    cancel_timeout: Duration,
    latencies: &mut Latencies,
) -> GatewayStats {
    let stamps = StampClock::new();
    let mut stats = GatewayStats::default();
    let mut reports = Vec::with_capacity(256);
    let mut out = Outbox { tx, backlog: VecDeque::with_capacity(256), peak: 0 };
    // Messages handled, and how many of them `handled` shows.
    let (mut done, mut published) = (0u64, 0u64);
    let mut idle = 0u32;
    loop {
        if published < done && out.flush() {
            handled.store(done, Ordering::Release);
            published = done;
        }
        let Some(msg) = rx.pop() else {
            if idle % VENUE_POLL_EVERY == VENUE_POLL_EVERY - 1 {
                exchange.poll(clock(), &mut reports);
                let n = out.push(&mut reports);
                stats.polled_reports += n;
                stats.reports += n;
            }
            idle = idle.wrapping_add(1);
            if idle > 1_000 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            continue;
        };
        idle = 0;
        let stop = match msg {
            ToGateway::Order(cmd, st) => {
                stats.commands += 1;
                let popped = stamps.raw();
                exchange.submit(&cmd, clock(), &mut reports);
                if st.pushed != 0 {
                    let written = stamps.raw();
                    latencies.record(Stage::Hop, stamps.nanos(st.pushed, popped));
                    latencies.record(Stage::Send, stamps.nanos(popped, written));
                    latencies.record(Stage::TickToOrder, stamps.nanos(st.tick, written));
                    if st.wire != 0 {
                        latencies.record(Stage::WireToOrder, stamps.nanos(st.wire, written));
                    }
                }
                false
            }
            ToGateway::Market(ev) => {
                stats.market += 1;
                exchange.on_market(&ev, &mut reports);
                false
            }
            ToGateway::Stop => true,
        };
        stats.reports += out.push(&mut reports);
        done += 1;
        if stop {
            settle_at_stop(exchange, &mut out, &mut reports, &clock, cancel_timeout, &mut stats);
            out.flush_all();
            handled.store(done, Ordering::Release);
            stats.backlog_peak = out.peak as u64;
            return stats;
        }
    }
}

/// The shutdown wait of [`gateway_loop`].
fn settle_at_stop<E: Exchange>(
    exchange: &mut E,
    out: &mut Outbox,
    reports: &mut Vec<ExecReport>,
    clock: &impl Fn() -> Ts,
    timeout: Duration,
    stats: &mut GatewayStats,
) {
    let deadline = Instant::now() + timeout;
    let mut recancelled = false;
    loop {
        while exchange.in_flight() > 0 && Instant::now() < deadline {
            exchange.poll(clock(), reports);
            stats.reports += out.push(reports);
            std::thread::sleep(Duration::from_millis(1));
        }
        let open = match exchange.open_orders() {
            Ok(o) => o.iter().filter(|o| o.id.is_some()).count(),
            // The venue cannot say: count what is in flight as unconfirmed.
            Err(_) => exchange.in_flight(),
        };
        if open == 0 && exchange.in_flight() == 0 {
            return;
        }
        if recancelled || Instant::now() >= deadline {
            stats.unconfirmed_at_stop = open.max(exchange.in_flight()) as u64;
            stats.stop_timed_out = true;
            return;
        }
        recancelled = true;
        exchange.on_order(&OrderCmd::CancelAll, clock(), reports);
        stats.reports += out.push(reports);
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
pub struct RunOutcome<S, E> {
    /// The core after the run (positions, counters, last signal).
    pub core: Core,
    /// Hot-thread latency histograms.
    pub latencies: Latencies,
    /// Hot-loop counters.
    pub loop_stats: LoopStats,
    /// Gateway counters.
    pub gateway_stats: GatewayStats,
    /// The market source after the run (its counters).
    pub source: S,
    /// The exchange after the run.
    pub exchange: E,
    /// Pinning warnings, for the caller to log.
    pub warnings: Vec<String>,
    /// Wall time of the hot loop.
    pub elapsed: Duration,
}

impl<S, E> RunOutcome<S, E> {
    /// The same outcome with the source replaced by `f(source)` (e.g. once its
    /// venue-specific counters have been read).
    pub fn map_source<T>(self, f: impl FnOnce(S) -> T) -> RunOutcome<T, E> {
        let RunOutcome { core, latencies, loop_stats, gateway_stats, source, exchange, warnings, elapsed } = self;
        RunOutcome { core, latencies, loop_stats, gateway_stats, source: f(source), exchange, warnings, elapsed }
    }

    /// The same outcome with the exchange replaced by `f(exchange)` (e.g. a wrapper's
    /// venue, once the wrapper's counters have been read).
    pub fn map_exchange<T>(self, f: impl FnOnce(E) -> T) -> RunOutcome<S, T> {
        let RunOutcome { core, latencies, loop_stats, gateway_stats, source, exchange, warnings, elapsed } = self;
        RunOutcome { core, latencies, loop_stats, gateway_stats, source, exchange: f(exchange), warnings, elapsed }
    }
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
    /// How long the gateway waits at shutdown for the venue to confirm the cancels.
    pub cancel_timeout: Duration,
}

/// Runs `core` over `source` on a pinned hot thread with a gateway thread driving
/// `exchange`, until the source ends or `stop` is set (SIGINT); then shuts the core
/// down (cancel all), lets the gateway drain, and processes its last reports.
pub fn run<S, E>(core: Core, source: S, exchange: E, opts: &RunOptions, stop: &AtomicBool) -> RunOutcome<S, E>
where
    S: MarketSource + Send,
    E: Exchange,
{
    run_observed(core, source, exchange, opts, stop, Arc::new(Telemetry::new()))
}

/// [`run`], with the hot thread publishing into `telemetry` for a monitor
/// ([`crate::monitor::Monitor`]); its last sample is published after the final reports.
pub fn run_observed<S, E>(
    core: Core,
    source: S,
    mut exchange: E,
    opts: &RunOptions,
    stop: &AtomicBool,
    telemetry: Arc<Telemetry>,
) -> RunOutcome<S, E>
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
    let cancel_timeout = opts.cancel_timeout;
    // Allocates: done once, here, before the threads start.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (hl, elapsed, gateway_stats, gw_latencies, warnings) = std::thread::scope(|s| {
        let cores = &cores;
        let exchange = &mut exchange;
        let gw_handled = Arc::clone(&handled);
        let gateway = s.spawn(move || {
            let warn = pinning.gateway.and_then(|c| pin_current(Some(c), cores, "gateway thread"));
            let epoch = Instant::now();
            let mut latencies = Latencies::new();
            let stats = gateway_loop(
                exchange,
                gw_rx,
                gw_tx,
                &gw_handled,
                move || epoch.elapsed().as_nanos() as Ts,
                cancel_timeout,
                &mut latencies,
            );
            (stats, latencies, warn)
        });
        let hot = s.spawn(move || {
            let warn = pin_current(pinning.hot, cores, "hot thread");
            let mut hl = HotLoop::new(core, source, to_gw, from_gw, forward).with_telemetry(telemetry);
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let more = if lockstep { hl.turn_lockstep(&handled) } else { hl.turn() };
                if !more {
                    break;
                }
            }
            hl.stop();
            while !hl.gateway_gone() {
                hl.drain_reports();
                std::hint::spin_loop();
            }
            hl.drain_reports();
            hl.publish();
            (hl, t0.elapsed(), warn)
        });
        let (hl, elapsed, hot_warn) = hot.join().expect("hot thread panicked");
        let (gateway_stats, gw_latencies, gw_warn) = gateway.join().expect("gateway thread panicked");
        (hl, elapsed, gateway_stats, gw_latencies, hot_warn.into_iter().chain(gw_warn).collect())
    });
    let loop_stats = hl.stats();
    let HotLoop { core, source, mut latencies, .. } = hl;
    // The gateway recorded only its own stages, the hot thread only the others.
    latencies.merge(&gw_latencies);
    RunOutcome { core, latencies, loop_stats, gateway_stats, source, exchange, warnings, elapsed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ExecKind, OrderId, RejectMsg};
    use crate::types::Side;
    use std::sync::mpsc;

    /// A venue that answers every command with `per_cmd` reports.
    struct Chatty {
        per_cmd: usize,
    }

    impl Exchange for Chatty {
        fn needs_market(&self) -> bool {
            false
        }
        fn on_order(&mut self, _cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>) {
            for i in 0..self.per_cmd {
                out.push(ExecReport::rejected(i as OrderId, 0, Side::Buy, 1, -1, RejectMsg::new(), now));
            }
        }
        fn on_market(&mut self, _ev: &MarketEvent, _out: &mut Vec<ExecReport>) {}
    }

    /// Both rings are driven to full: the "hot" side pushes 2,000 commands into a ring of
    /// 4 without reading a report until it is done, and each command makes 8 reports for
    /// a report ring of 4. Before the gateway queued its overflow off the ring, it waited
    /// for room in the report ring while the hot side waited for room in the command
    /// ring, and neither moved.
    #[test]
    fn full_rings_in_both_directions_do_not_deadlock() {
        const COMMANDS: u64 = 2_000;
        const PER_CMD: usize = 8;
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut to_gw, gw_rx) = ring::<ToGateway>(4);
            let (gw_tx, mut from_gw) = ring::<ExecReport>(4);
            let handled = Arc::new(AtomicU64::new(0));
            let gw_handled = Arc::clone(&handled);
            let gateway = std::thread::spawn(move || {
                let mut venue = Chatty { per_cmd: PER_CMD };
                gateway_loop(&mut venue, gw_rx, gw_tx, &gw_handled, || 0, Duration::from_secs(1), &mut Latencies::new())
            });
            let mut send = |mut msg: ToGateway| {
                while let Err(Full(back)) = to_gw.push(msg) {
                    msg = back;
                    std::hint::spin_loop();
                }
            };
            for _ in 0..COMMANDS {
                send(ToGateway::Order(OrderCmd::CancelAll, OrderStamps::default()));
            }
            send(ToGateway::Stop);
            let mut reports = 0u64;
            while !gateway.is_finished() || !from_gw.is_empty() {
                while let Some(r) = from_gw.pop() {
                    assert_eq!(r.kind, ExecKind::Rejected);
                    reports += 1;
                }
                std::hint::spin_loop();
            }
            let stats = gateway.join().expect("gateway thread");
            let _ = done_tx.send((reports, stats, handled.load(Ordering::Acquire)));
        });
        let (reports, stats, handled) =
            done_rx.recv_timeout(Duration::from_secs(60)).expect("the two threads deadlocked on full rings");
        assert_eq!(reports, COMMANDS * PER_CMD as u64, "every report delivered, none dropped");
        assert_eq!(stats.reports, reports);
        assert_eq!(handled, COMMANDS + 1);
        assert!(stats.backlog_peak > 0, "the report ring did overflow into the backlog");
    }
}
