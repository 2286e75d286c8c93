//! Event-driven backtester: single-threaded, deterministic replay of market events
//! through the same [`crate::core::Core`] as live, against an L2 matching engine with
//! feed and order latency and FIFO queue position.
//!
//! # The event loop
//!
//! One thread, no clock: every action happens at a simulated time, and the loop always
//! performs the earliest pending one. Five sources:
//!
//! | source | time | action |
//! |---|---|---|
//! | market data, exchange side | the event's exchange time | [`MatchingEngine::on_market_at`] |
//! | orders in flight | sent + entry latency | [`MatchingEngine::on_order_at`] |
//! | reports in flight | engine time + response latency | [`Core::on_exec`] |
//! | market data, local side | the event's local time | [`Core::on_market`] |
//! | timer | every [`BacktestConfig::timer_ms`] of local time | [`Core::on_timer`] |
//!
//! The same events are read by two cursors (two clones of one [`EventSource`]'s
//! iterator: a slice, or a [`Dataset`] of mapped files merged on the fly, so that
//! nothing is copied and memory does not grow with the data): the engine sees each event at its
//! exchange time, the Core at its local time (recorded, or exchange time plus a modelled
//! feed latency). Ties at one nanosecond go down the table: the engine takes market
//! data, then orders; the exchange side acts before the local side, so an event is in
//! the engine's book before the Core hears of it; the Core takes reports, then market
//! data, then the timer. Orders and reports travel in FIFO queues: each arrival is
//! raised to the previous one's on its path (one TCP connection each way), which keeps
//! the queues sorted, so no heap is needed. Consecutive actions of one cursor run in
//! an inner loop for as long as no other source is due.
//!
//! Times are made nondecreasing per cursor: events are taken in file order (the order
//! they were received); the exchange time of an event is the running maximum of the
//! exchange stamps, capped at its local time when local times come from the data (a
//! venue clock ahead of ours would otherwise deliver an event before it happened);
//! with a modelled feed latency the local time is `max(previous local, exch +
//! latency)`. Every adjustment of a recorded stamp is counted in [`ReplayStats`].
//! Nothing is reordered: a random feed latency that would deliver an event before the
//! one received earlier delivers it at the same time instead, so each cursor is a
//! single streaming pass with O(1) state and no reorder buffer (the threaded replay's
//! local times come from the same clock, [`Backtest::local_iter`]).
//! An exchange stamp more than `risk.max_clock_jump_ms` ahead of its event's recorded
//! local time is not believed (one message stamped in the year 2100 would otherwise
//! carry both cursors' clocks there): the event takes the cursor's current exchange
//! time (its local time for a first event), and is counted
//! ([`ReplayStats::clock_jumps`]). The Core refuses such an event itself
//! ([`crate::book::DataReject::ClockJump`]). The threaded replay of `statarb latency`
//! takes both cursors' times from here: its venue ([`venue::ReplayVenue`]) the engine
//! cursor's, its hot thread the Core cursor's ([`Backtest::local_events`]).
//!
//! Bad data: the Core and the engine each screen every event
//! ([`crate::book::Book::screen`], with `risk.data_band_bps`), so a refused trade fills
//! nothing; the Core's refusals per reason are in [`Trace::data_rejects`], the
//! engine's in [`MatchStats::data_rejects`].
//!
//! The timer skips ticks while the Core has no open order: [`Core::on_timer`] only
//! pulls resting quotes, so those calls would do nothing. At the end of the data the
//! Core is shut down ([`Core::shutdown`]: cancel everything, never quote again) at the
//! time of the last event, and the loop runs on until no message is in flight.
//!
//! # What a run leaves
//!
//! An [`Outcome`]: the Core (positions, PnL, counters), the [`Trace`] (a [`Sample`]
//! at every [`BacktestConfig::sample_ms`] boundary of local time, with the state just
//! before it; a [`FillRecord`] per fill as the Core received it, with the leg's mid,
//! position and target then; a record per accepted signal and per change of the
//! pair's spread state, targets or kill switch; the unhedged notional integrated over
//! time), the engine's [`MatchStats`], the per-fill timings, and the digest.
//!
//! A [`trace::Recorder`] reads the Core after every Core call for the signal and
//! decision records: on the common path it compares the signal counter, the two
//! targets and the kill switch with their last values. It updates the hedge error
//! after every report and timer call and at the end of every exchange message (a
//! complete book state): one comparison while flat, the two books' tops otherwise. It
//! allocates only the amortised growth of its vectors; on the built-in 1M events it
//! adds about 30 instructions per event (callgrind), some 3-4 % of the loop. [`stats`]
//! turns the trace into the report, its PnL attribution (signal, execution, fees) and
//! the round trips of `trades.csv`.
//!
//! # Digest
//!
//! 64-bit FNV-1a (Fowler, Noll, Vo; offset basis `0xcbf29ce484222325`, prime
//! `0x100000001b3`) over, in this order: for every fill report the Core received, the
//! little-endian bytes of `id (u64), inst (u16), side (u8), px (i64), qty (i64), leaves
//! (i64), fee (f64 bits), maker (u8), exch_ts (i64), receive time (i64)`; then for
//! each leg (y, x) `qty (i64), avg_px, realized, fees, cash (f64 bits), fills (u64)`;
//! then the net PnL at the final marks (f64 bits); then, as `u64`, the Core's counters
//! `events, signals, quote_updates, orders, cancels, fills, unknown_reports` and the
//! engine's `accepted, rejected, canceled, unknown_cancels, expired, fills,
//! level_changes`. Printed as 16 hex digits. Two runs of the same data and
//! configuration give the same digest; a change in a fill, its time, the final state,
//! or the order traffic changes it.

pub mod latency;
pub mod matching;
pub mod paper;
pub mod plot;
pub mod queue;
pub mod stats;
pub mod trace;
pub mod venue;
pub mod window;

use std::collections::VecDeque;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::core::{Commands, Core, CoreParams, LEG_X, LEG_Y};
use crate::event::{ExecKind, ExecReport, MarketEvent, OrderCmd, OrderId};
pub use crate::feed::evmap::TableError as MergeError;
use crate::feed::evmap::{Dataset, Merge, Source};
use crate::fees::Fees;
use crate::signal::pairs::Targets;
use crate::types::{InstId, Instrument, Ts, NS_PER_MS};

use latency::{FeedLatencyConfig, Latency, LatencyConfig, LatencyError, LatencyModel};
use matching::{MatchStats, MatchingEngine};
use queue::{ProbLog, ProbPower, QueueConfig, QueueError, QueueModel, RiskAverse};
use trace::{EndState, FillRecord, Recorder, Sample, Trace};
use venue::ReplayVenue;

/// Seed offsets of the three latency streams, so that changing one model leaves the
/// others' draws alone.
const SEED_FEED: u64 = 0x6665_6564; // "feed"
const SEED_ENTRY: u64 = 0x0065_6e74_7279; // "entry"
const SEED_RESPONSE: u64 = 0x7265_7370; // "resp"
/// A gap in the data longer than this many sampling intervals gets two samples (its
/// first and last boundary) instead of one per boundary.
const MAX_GAP_SAMPLES: i64 = 1_000;
/// The progress callback is called every this many events.
const PROGRESS_EVERY: usize = 1 << 16;

/// Backtest settings, config `[backtest]`. Every field has a default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BacktestConfig {
    /// Exchange to local time of market data (default: `{ kind = "data" }`, the
    /// recorded local times).
    pub feed_latency: FeedLatencyConfig,
    /// Order entry, Core to matching engine (default: constant 1 ms).
    pub entry_latency: LatencyConfig,
    /// Reports, matching engine to Core (default: constant 1 ms).
    pub response_latency: LatencyConfig,
    /// Queue-position model (default: `prob_power`, `n = 2`, see
    /// [`QueueConfig::default`]).
    pub queue: QueueConfig,
    /// Sampling interval of the trace, ms of local time, `>= 1` (default: 1 000).
    pub sample_ms: u64,
    /// Timer interval, ms of local time, `>= 1` (default: 100, the granularity at
    /// which a stale leg's quotes are pulled).
    pub timer_ms: u64,
    /// Seed of the latency draws (default: 1).
    pub seed: u64,
}

impl Default for BacktestConfig {
    /// Latencies: the recorded feed times, and 1 ms each way for orders, which is
    /// the floor of the built-in data set's feed latency (`latency_min_ns`): the same
    /// network path to the venue. Binance Spot from a nearby cloud region is around
    /// that; a colocated venue is tens of microseconds.
    fn default() -> Self {
        BacktestConfig {
            feed_latency: FeedLatencyConfig::Data {},
            entry_latency: LatencyConfig::Constant { ns: NS_PER_MS },
            response_latency: LatencyConfig::Constant { ns: NS_PER_MS },
            queue: QueueConfig::default(),
            sample_ms: 1_000,
            timer_ms: 100,
            seed: 1,
        }
    }
}

/// A backtest configuration that cannot run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BacktestError {
    /// A latency model is invalid or its series file unreadable.
    #[error("backtest.{which}: {error}")]
    Latency {
        /// `feed_latency`, `entry_latency` or `response_latency`.
        which: &'static str,
        /// What is wrong.
        error: LatencyError,
    },
    /// The queue model is invalid.
    #[error("backtest.queue: {0}")]
    Queue(#[from] QueueError),
    /// An interval is zero or too large.
    #[error("backtest.{name} = {value} must be 1 ..= 86400000 ms")]
    Interval {
        /// Field name.
        name: &'static str,
        /// Its value.
        value: u64,
    },
}

impl BacktestConfig {
    /// Checks every field (series files are read by [`Backtest::new`]).
    pub fn validate(&self) -> Result<(), BacktestError> {
        let lat = |which, c: &LatencyConfig| c.validate().map_err(|error| BacktestError::Latency { which, error });
        if let Some(m) = self.feed_latency.model() {
            lat("feed_latency", &m)?;
        }
        lat("entry_latency", &self.entry_latency)?;
        lat("response_latency", &self.response_latency)?;
        self.queue.validate()?;
        for (name, value) in [("sample_ms", self.sample_ms), ("timer_ms", self.timer_ms)] {
            if !(1..=86_400_000).contains(&value) {
                return Err(BacktestError::Interval { name, value });
            }
        }
        Ok(())
    }
}

/// Counters of the replay loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplayStats {
    /// Market events replayed.
    pub events: u64,
    /// Events whose exchange time was raised to keep exchange time nondecreasing, or
    /// capped at their local time.
    pub exch_ts_adjusted: u64,
    /// Events whose local time was raised to keep local time nondecreasing.
    pub local_ts_adjusted: u64,
    /// Events whose exchange time was more than `risk.max_clock_jump_ms` ahead of
    /// their local time (not followed by the clocks; refused by the Core).
    pub clock_jumps: u64,
    /// Commands the Core sent (new orders, cancels, cancel-alls).
    pub commands: u64,
    /// Reports delivered to the Core.
    pub reports: u64,
    /// Timer calls made.
    pub timer_calls: u64,
    /// Local time of the first event (0 without events).
    pub first_ts: Ts,
    /// Local time of the last event.
    pub last_ts: Ts,
    /// Local time of the last report delivered (the end of the drain).
    pub end_ts: Ts,
}

/// When one filled order was sent, reached the engine, filled and was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FillTiming {
    /// Client order id.
    pub id: OrderId,
    /// Local time the Core sent the order.
    pub sent: Ts,
    /// Engine time the order arrived.
    pub arrived: Ts,
    /// Engine time of the fill.
    pub filled: Ts,
    /// Local time the Core received the fill.
    pub received: Ts,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The Core at the end: positions, PnL, counters.
    pub core: Core,
    /// Samples and fills for the report and plots.
    pub trace: Trace,
    /// Matching engine counters.
    pub matching: MatchStats,
    /// Replay loop counters.
    pub replay: ReplayStats,
    /// One entry per fill, parallel to [`Trace::fills`].
    pub fill_timings: Vec<FillTiming>,
    /// FNV-1a digest of the fills and the final state (see the module docs).
    pub digest: u64,
}

impl Outcome {
    /// The digest as 16 lowercase hex digits.
    pub fn digest_hex(&self) -> String {
        format!("{:016x}", self.digest)
    }
}

/// Market data a replay reads: any number of times, from any number of threads at
/// once (a sweep's workers share one), each read a fresh iterator. The replay clones
/// the iterator once for its second cursor.
pub trait EventSource: Sync {
    /// The events in replay order.
    type Iter<'a>: Iterator<Item = MarketEvent> + Clone
    where
        Self: 'a;
    /// A new iterator over all the events.
    fn events(&self) -> Self::Iter<'_>;
    /// The exact number of events the iterator yields.
    fn event_count(&self) -> usize;
    /// Local time of the first and the last event (`None` without events): only sizes
    /// the trace's vectors, so an estimate does no harm.
    fn local_span(&self) -> Option<(Ts, Ts)>;
}

impl EventSource for [MarketEvent] {
    type Iter<'a> = std::iter::Copied<std::slice::Iter<'a, MarketEvent>>;
    fn events(&self) -> Self::Iter<'_> {
        self.iter().copied()
    }
    fn event_count(&self) -> usize {
        self.len()
    }
    fn local_span(&self) -> Option<(Ts, Ts)> {
        Some((self.first()?.local_ts, self.last()?.local_ts))
    }
}

impl EventSource for Dataset {
    type Iter<'a> = Merge<'a>;
    fn events(&self) -> Merge<'_> {
        self.iter()
    }
    fn event_count(&self) -> usize {
        self.len()
    }
    fn local_span(&self) -> Option<(Ts, Ts)> {
        Dataset::local_span(self)
    }
}

/// A configured backtest; [`Backtest::run`] replays data through it, any number of
/// times, with the same result each time.
#[derive(Debug, Clone)]
pub struct Backtest {
    cfg: BacktestConfig,
    fees: Fees,
    entry_z: f64,
    exit_z: f64,
    /// The Core's signal interval, ns (for the capacity of the signal records).
    signal_ns: i64,
    feed: Option<LatencyModel>,
    entry: LatencyModel,
    response: LatencyModel,
    /// `risk.data_band_bps`, for the engine's bad-data check.
    data_band_bps: f64,
    /// `risk.max_clock_jump_ms` in ns.
    max_clock_jump_ns: i64,
}

impl Backtest {
    /// Validates `bt` and loads its latency series. `core` is what the replayed
    /// [`Core`] is built from: the trace takes its entry and exit thresholds and signal
    /// interval, the matching engine its bad-data band, the replay loop its clock-jump
    /// limit. `fees` are the simulated venue's.
    pub fn new(bt: &BacktestConfig, core: &CoreParams, fees: Fees) -> Result<Backtest, BacktestError> {
        bt.validate()?;
        let build = |which, c: &LatencyConfig, salt: u64| {
            c.build(bt.seed ^ salt).map_err(|error| BacktestError::Latency { which, error })
        };
        let feed = match bt.feed_latency.model() {
            Some(m) => Some(build("feed_latency", &m, SEED_FEED)?),
            None => None,
        };
        Ok(Backtest {
            cfg: bt.clone(),
            fees,
            entry_z: core.pairs.entry_z,
            exit_z: core.pairs.exit_z,
            signal_ns: core.sample_ns.max(1),
            feed,
            entry: build("entry_latency", &bt.entry_latency, SEED_ENTRY)?,
            response: build("response_latency", &bt.response_latency, SEED_RESPONSE)?,
            data_band_bps: core.risk.data_band_bps,
            max_clock_jump_ns: core.risk.max_clock_jump_ns(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &BacktestConfig {
        &self.cfg
    }

    /// Replays `events` (in file order) for `core`, whose instrument ids index
    /// `instruments` (the data's table). Never fails: bad events are counted.
    pub fn run(&self, core: Core, instruments: &[Instrument], events: &[MarketEvent]) -> Outcome {
        self.run_with_progress(core, instruments, events, |_, _| ControlFlow::Continue(()))
    }

    /// [`Self::run`] over any [`EventSource`] (a [`Dataset`] of mapped files), streamed:
    /// the same events give the same outcome and digest as from a slice.
    pub fn run_source<S: EventSource + ?Sized>(&self, core: Core, instruments: &[Instrument], events: &S) -> Outcome {
        self.run_source_with_progress(core, instruments, events, |_, _| ControlFlow::Continue(()))
    }

    /// [`Self::run`], calling `progress(done, total)` every 65 536 events and once at
    /// the end. A `Break` ends the data there (a user's Ctrl-C): the core shuts down as
    /// at the end of the data, and what is in flight is delivered, so the outcome is
    /// that of a replay of the first `done` events.
    pub fn run_with_progress<P: FnMut(usize, usize) -> ControlFlow<()>>(
        &self,
        core: Core,
        instruments: &[Instrument],
        events: &[MarketEvent],
        progress: P,
    ) -> Outcome {
        self.run_source_with_progress(core, instruments, events, progress)
    }

    /// [`Self::run_with_progress`] over any [`EventSource`].
    pub fn run_source_with_progress<S: EventSource + ?Sized, P: FnMut(usize, usize) -> ControlFlow<()>>(
        &self,
        core: Core,
        instruments: &[Instrument],
        events: &S,
        progress: P,
    ) -> Outcome {
        // The queue model is picked here, once; the loop is compiled per model.
        match self.cfg.queue {
            QueueConfig::RiskAverse {} => self.run_model(RiskAverse, core, instruments, events, progress),
            QueueConfig::ProbPower { n } => self.run_model(ProbPower::new(n), core, instruments, events, progress),
            QueueConfig::ProbLog {} => self.run_model(ProbLog, core, instruments, events, progress),
        }
    }

    fn run_model<Q: QueueModel, S: EventSource + ?Sized, P: FnMut(usize, usize) -> ControlFlow<()>>(
        &self,
        queue: Q,
        core: Core,
        instruments: &[Instrument],
        events: &S,
        progress: P,
    ) -> Outcome {
        let mut r = Replay::new(
            self,
            core,
            self.engine(instruments, queue),
            events.events(),
            events.event_count(),
            events.local_span(),
        );
        r.run(progress);
        r.finish()
    }

    /// The matching engine a replay runs against: `instruments` (the data's table),
    /// the fees and the bad-data band of the configuration, and `queue`.
    pub fn engine<Q: QueueModel>(&self, instruments: &[Instrument], queue: Q) -> MatchingEngine<Q> {
        let mut engine = MatchingEngine::new(instruments.to_vec(), self.fees, queue);
        engine.set_data_band_bps(self.data_band_bps);
        engine
    }

    /// The paper venue of a live run (`gateway.venue = "paper"`): [`Self::engine`]
    /// behind this configuration's entry and response latency, with the draws of a
    /// replay (see [`paper::Lagged`]).
    pub fn paper_venue<Q: QueueModel>(&self, instruments: &[Instrument], queue: Q) -> paper::Lagged<MatchingEngine<Q>> {
        paper::Lagged::new(self.engine(instruments, queue), self.entry.clone(), self.response.clone())
    }

    /// The venue of a threaded replay of `events` (`statarb latency`): [`Self::engine`]
    /// reading the data itself at the exchange times a replay applies it at (see
    /// [`venue::ReplayVenue`]).
    pub fn replay_venue<'a, Q: QueueModel>(
        &self,
        instruments: &[Instrument],
        events: &'a [MarketEvent],
        queue: Q,
    ) -> ReplayVenue<'a, Q> {
        ReplayVenue::new(self.engine(instruments, queue), events, self.exchange_clock())
    }

    /// `events` as the Core hears them in a replay: each with the local time the
    /// replay gives it (the recorded one made nondecreasing, or exchange time plus the
    /// modelled feed latency, with the same draws), for the hot thread of a threaded
    /// replay. `None` if that is every recorded local time unchanged. In memory: see
    /// [`Self::local_iter`] for the stream.
    pub fn local_events(&self, events: &[MarketEvent]) -> Option<Vec<MarketEvent>> {
        if self.feed.is_none() && events.windows(2).all(|w| w[0].local_ts <= w[1].local_ts) {
            return None;
        }
        Some(self.local_iter(events.iter().copied()).collect())
    }

    /// `events` (in file order) as the Core hears them in a replay, streamed: each with
    /// the local time [`Self::local_events`] gives it. O(1) state, no reordering (see
    /// the module docs), nothing allocated.
    pub fn local_iter<I: Iterator<Item = MarketEvent>>(&self, events: I) -> impl Iterator<Item = MarketEvent> {
        let mut clock = self.local_clock();
        events.map(move |ev| MarketEvent { local_ts: clock.next(&ev), ..ev })
    }

    fn exchange_clock(&self) -> ExchangeClock {
        ExchangeClock::new(self.feed.is_none(), self.max_clock_jump_ns)
    }

    fn local_clock(&self) -> LocalClock {
        LocalClock::new(self.feed.clone(), self.max_clock_jump_ns)
    }
}

/// Merges event sets, each as read from one event file (its instrument table and its
/// events in receive order), into one replayable set: one instrument table (symbols in
/// order of first appearance; a symbol in several files must have the same tick and
/// lot) and the events in local-time order. Each file's own order is kept, and ties
/// in local time go to the earlier file. An event whose instrument is outside its
/// file's table gets id [`InstId::MAX`], which the Core and the engine count as
/// unknown. One source is returned unchanged. In memory: a [`Dataset`] merges mapped
/// files the same way, streamed.
pub fn merge_sources(
    mut sources: Vec<(Vec<Instrument>, Vec<MarketEvent>)>,
) -> Result<(Vec<Instrument>, Vec<MarketEvent>), MergeError> {
    if sources.len() == 1 {
        return Ok(sources.swap_remove(0));
    }
    let d = Dataset::new(
        sources.into_iter().map(|(instruments, events)| Source::Memory { instruments, events }).collect(),
    )?;
    let events = d.to_vec();
    Ok((d.instruments().to_vec(), events))
}

/// An order on its way to the engine.
#[derive(Debug, Clone, Copy)]
struct InFlightOrder {
    at: Ts,
    cmd: OrderCmd,
}

/// A report on its way to the Core.
#[derive(Debug, Clone, Copy)]
struct InFlightReport {
    at: Ts,
    rep: ExecReport,
    sent: Ts,
    arrived: Ts,
}

/// When an order still open in the engine was sent and arrived.
#[derive(Debug, Clone, Copy)]
struct OrderTimes {
    id: OrderId,
    sent: Ts,
    arrived: Ts,
}

/// The running maxima that make one cursor's times nondecreasing.
#[derive(Debug, Clone, Copy)]
struct Clock {
    exch: Ts,
    local: Ts,
}

impl Clock {
    const START: Clock = Clock { exch: Ts::MIN, local: Ts::MIN };
}

/// The engine cursor's clock: the exchange time at which the matching engine applies
/// each event (see the module docs). Shared by the replay loop and
/// [`venue::ReplayVenue`], so that both apply the data at the same times.
#[derive(Debug, Clone, Copy)]
struct ExchangeClock {
    clock: Clock,
    /// True if local times come from the data (no feed-latency model): exchange times
    /// are capped at them.
    cap_at_local: bool,
    max_jump: i64,
}

impl ExchangeClock {
    fn new(cap_at_local: bool, max_jump: i64) -> Self {
        ExchangeClock { clock: Clock::START, cap_at_local, max_jump }
    }

    /// The exchange time of `ev`, the next event in file order (call once per event,
    /// in order), and whether its stamp was not believed (a clock jump).
    #[inline]
    fn next(&mut self, ev: &MarketEvent) -> (Ts, bool) {
        let stamp = believed_exch(ev, self.max_jump, self.clock.exch);
        let c = &mut self.clock;
        let mut t = c.exch.max(stamp);
        if self.cap_at_local {
            c.local = c.local.max(ev.local_ts);
            t = t.min(c.local);
        }
        c.exch = t;
        (t, stamp != ev.exch_ts)
    }
}

/// The Core cursor's clock: the local time at which the Core hears each event, the
/// recorded one made nondecreasing, or exchange time plus a modelled feed latency.
#[derive(Debug, Clone)]
struct LocalClock {
    clock: Clock,
    feed: Option<LatencyModel>,
    max_jump: i64,
}

impl LocalClock {
    fn new(feed: Option<LatencyModel>, max_jump: i64) -> Self {
        LocalClock { clock: Clock::START, feed, max_jump }
    }

    /// The local time of `ev`, the next event in file order (call once per event, in
    /// order: a modelled feed latency draws here).
    #[inline]
    fn next(&mut self, ev: &MarketEvent) -> Ts {
        let c = &mut self.clock;
        let t = match &mut self.feed {
            None => c.local.max(ev.local_ts),
            Some(model) => {
                c.exch = c.exch.max(believed_exch(ev, self.max_jump, c.exch));
                c.local.max(c.exch.saturating_add(model.sample(c.exch)))
            }
        };
        c.local = t;
        t
    }
}

/// FNV-1a, 64 bit.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
    fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
}

/// The state of one run.
struct Replay<Q: QueueModel, I: Iterator<Item = MarketEvent>> {
    /// Events in the data (exactly what each cursor's iterator yields).
    total: usize,
    core: Core,
    cmds: Commands,
    engine: MatchingEngine<Q>,
    out: Vec<ExecReport>,
    entry: LatencyModel,
    response: LatencyModel,
    /// Engine cursor: the rest of the data, the index of its next event, that event
    /// (valid while `ie < total`), its exchange time, its clock.
    eng: I,
    ie: usize,
    e_ev: MarketEvent,
    te: Ts,
    eclock: ExchangeClock,
    /// Core cursor: the same for the Core, at local time.
    cor: I,
    ic: usize,
    c_ev: MarketEvent,
    tc: Ts,
    cclock: LocalClock,
    orders: VecDeque<InFlightOrder>,
    last_order_at: Ts,
    reports: VecDeque<InFlightReport>,
    last_report_at: Ts,
    times: Vec<OrderTimes>,
    timer_ns: i64,
    next_timer: Ts,
    sample_ns: i64,
    next_sample: Ts,
    shut_down: bool,
    trace: Trace,
    rec: Recorder,
    fill_timings: Vec<FillTiming>,
    digest: Fnv,
    stats: ReplayStats,
}

/// The exchange time of `ev` the replay clocks follow: its stamp, unless that is more
/// than `max_jump` ns ahead of its local time; then the cursor's exchange time `prev`
/// (the event's local time if there is none yet).
#[inline]
fn believed_exch(ev: &MarketEvent, max_jump: i64, prev: Ts) -> Ts {
    if ev.exch_ts.saturating_sub(ev.local_ts) <= max_jump {
        ev.exch_ts
    } else if prev == Ts::MIN {
        ev.local_ts
    } else {
        prev
    }
}

/// First multiple of `step` at or after `t`.
#[inline]
fn grid_ceil(t: Ts, step: i64) -> Ts {
    let r = t.rem_euclid(step);
    if r == 0 {
        t
    } else {
        t.saturating_add(step - r)
    }
}

/// A placeholder for a cursor's event slot before the first event.
const NO_EVENT: MarketEvent = MarketEvent {
    exch_ts: 0,
    local_ts: 0,
    px: 0,
    qty: 0,
    inst: InstId::MAX,
    kind: crate::event::EventKind::Clear,
    flags: 0,
};

impl<Q: QueueModel, I: Iterator<Item = MarketEvent> + Clone> Replay<Q, I> {
    fn new(
        bt: &Backtest,
        core: Core,
        engine: MatchingEngine<Q>,
        events: I,
        total: usize,
        span: Option<(Ts, Ts)>,
    ) -> Self {
        let sample_ns = bt.cfg.sample_ms as i64 * NS_PER_MS;
        let symbols = [core.instrument(LEG_Y).symbol.clone(), core.instrument(LEG_X).symbol.clone()];
        let span_ns = match span {
            Some((a, b)) => b.saturating_sub(a),
            None => 0,
        };
        let span = (span_ns / sample_ns).clamp(0, 1 << 20) as usize;
        let signals = (span_ns / bt.signal_ns).clamp(0, 1 << 20) as usize;
        let trace = Trace {
            symbols,
            entry_z: bt.entry_z,
            exit_z: bt.exit_z,
            sample_interval_ns: sample_ns,
            samples: Vec::with_capacity(span + 2),
            signals: Vec::with_capacity(signals + 2),
            ..Trace::default()
        };
        let rec = Recorder::new(&core);
        let mut r = Replay {
            total,
            core,
            cmds: Commands::new(),
            engine,
            out: Vec::with_capacity(256),
            entry: bt.entry.clone(),
            response: bt.response.clone(),
            eng: events.clone(),
            ie: 0,
            e_ev: NO_EVENT,
            te: Ts::MAX,
            eclock: bt.exchange_clock(),
            cor: events,
            ic: 0,
            c_ev: NO_EVENT,
            tc: Ts::MAX,
            cclock: bt.local_clock(),
            orders: VecDeque::with_capacity(256),
            last_order_at: Ts::MIN,
            reports: VecDeque::with_capacity(256),
            last_report_at: Ts::MIN,
            times: Vec::with_capacity(256),
            timer_ns: bt.cfg.timer_ms as i64 * NS_PER_MS,
            next_timer: Ts::MAX,
            sample_ns,
            next_sample: Ts::MAX,
            shut_down: false,
            trace,
            rec,
            fill_timings: Vec::new(),
            digest: Fnv(Fnv::OFFSET),
            stats: ReplayStats { events: total as u64, ..ReplayStats::default() },
        };
        if total > 0 {
            r.advance_engine();
            r.advance_core();
            r.next_timer = grid_ceil(r.tc, r.timer_ns);
            r.next_sample = grid_ceil(r.tc, r.sample_ns);
            r.stats.first_ts = r.tc;
            r.trace.hedge.start(r.tc);
        }
        r
    }

    /// Reads the engine cursor's next event (call once per event while `ie < total`)
    /// and its time.
    #[inline]
    fn advance_engine(&mut self) {
        if let Some(ev) = self.eng.next() {
            self.e_ev = ev;
            self.te = self.engine_time(&ev);
        }
    }

    /// Reads the Core cursor's next event (call once per event while `ic < total`)
    /// and its time.
    #[inline]
    fn advance_core(&mut self) {
        if let Some(ev) = self.cor.next() {
            self.c_ev = ev;
            self.tc = self.core_time(&ev);
        }
    }

    /// Exchange time of `ev`, the engine cursor's next event (call once per event, in
    /// order).
    #[inline]
    fn engine_time(&mut self, ev: &MarketEvent) -> Ts {
        let (t, jumped) = self.eclock.next(ev);
        if jumped {
            self.stats.clock_jumps += 1;
        }
        if t != ev.exch_ts {
            self.stats.exch_ts_adjusted += 1;
        }
        t
    }

    /// Local time of `ev`, the Core cursor's next event (call once per event, in
    /// order: a modelled feed latency draws here).
    #[inline]
    fn core_time(&mut self, ev: &MarketEvent) -> Ts {
        let t = self.cclock.next(ev);
        if self.cclock.feed.is_none() && t != ev.local_ts {
            self.stats.local_ts_adjusted += 1;
        }
        t
    }

    fn run<P: FnMut(usize, usize) -> ControlFlow<()>>(&mut self, mut progress: P) {
        let total = self.total;
        // The events replayed: all of them, unless `progress` breaks.
        let mut n = total;
        if n == 0 {
            self.shutdown(0);
        }
        loop {
            let t_eng = if self.ie < n { self.te } else { Ts::MAX };
            let t_ord = self.orders.front().map_or(Ts::MAX, |m| m.at);
            let t_rep = self.reports.front().map_or(Ts::MAX, |m| m.at);
            let t_core = if self.ic < n { self.tc } else { Ts::MAX };
            let t_timer = if self.shut_down { Ts::MAX } else { self.next_timer };
            let t_local = t_rep.min(t_core).min(t_timer);
            if t_eng <= t_ord && t_eng <= t_local && self.ie < n {
                // A run of engine events: nothing else moves until the next order
                // arrival or local action, unless the engine reports something.
                let limit = t_ord.min(t_local);
                while !self.engine_market() && self.ie < n && self.te <= limit {}
                continue;
            }
            if t_ord <= t_local && t_ord != Ts::MAX {
                self.engine_order();
                continue;
            }
            if t_local == Ts::MAX {
                break;
            }
            if t_local >= self.next_sample {
                self.take_samples(t_local);
            }
            if t_rep == t_local {
                self.deliver_report();
            } else if t_core == t_local {
                // A run of Core events: strictly before the engine's next event, the
                // next order arrival and the next report (they win ties), not after
                // the timer or a sampling boundary, and until the Core sends anything.
                let before = t_eng.min(t_ord).min(t_rep);
                loop {
                    let sent = self.core_market();
                    if self.ic.is_multiple_of(PROGRESS_EVERY) && progress(self.ic, total).is_break() {
                        n = self.ic;
                    }
                    if self.ic == n {
                        self.shutdown(self.stats.last_ts);
                        break;
                    }
                    if sent || self.tc >= before || self.tc > t_timer || self.tc >= self.next_sample {
                        break;
                    }
                }
            } else {
                self.timer(t_rep.min(t_core));
            }
        }
        let _ = progress(n, total);
    }

    /// Gives the engine its next event; true if it reported something.
    #[inline]
    fn engine_market(&mut self) -> bool {
        let mut ev = self.e_ev;
        ev.exch_ts = self.te;
        self.engine.on_market_at(&ev, self.te, &mut self.out);
        self.ie += 1;
        if self.ie < self.total {
            self.advance_engine();
        }
        if self.out.is_empty() {
            return false;
        }
        self.dispatch_reports();
        true
    }

    fn engine_order(&mut self) {
        let Some(m) = self.orders.pop_front() else { return };
        if let OrderCmd::New(n) | OrderCmd::Replace { new: n, .. } = m.cmd {
            if let Some(t) = self.times.iter_mut().rev().find(|t| t.id == n.id) {
                t.arrived = m.at;
            }
        }
        self.engine.on_order_at(&m.cmd, m.at, &mut self.out);
        self.dispatch_reports();
    }

    /// Sends the engine's reports on their way to the Core.
    fn dispatch_reports(&mut self) {
        let now = self.engine.now();
        for k in 0..self.out.len() {
            let rep = self.out[k];
            let at = now.saturating_add(self.response.sample(now)).max(self.last_report_at);
            self.last_report_at = at;
            let (mut sent, mut arrived) = (Ts::MIN, Ts::MIN);
            if let Some(i) = self.times.iter().position(|t| t.id == rep.id) {
                (sent, arrived) = (self.times[i].sent, self.times[i].arrived);
                if rep.is_final() {
                    self.times.swap_remove(i);
                }
            }
            self.reports.push_back(InFlightReport { at, rep, sent, arrived });
        }
        self.out.clear();
    }

    /// Gives the Core its next event; true if it sent commands.
    #[inline]
    fn core_market(&mut self) -> bool {
        let mut ev = self.c_ev;
        let now = self.tc;
        ev.local_ts = now;
        self.core.on_market(&ev, now, &mut self.cmds);
        // The hedge error moves with the books: it is taken at the end of each
        // exchange message, a complete book state (where the Core acts).
        self.rec.observe(&self.core, now, &mut self.trace);
        if ev.is_batch_end() {
            self.rec.update_hedge(&self.core, now, &mut self.trace);
        }
        self.stats.last_ts = now;
        self.ic += 1;
        if self.ic < self.total {
            self.advance_core();
        }
        if self.cmds.is_empty() {
            return false;
        }
        self.send_commands(now);
        true
    }

    fn deliver_report(&mut self) {
        let Some(m) = self.reports.pop_front() else { return };
        let rep = m.rep;
        self.stats.reports += 1;
        self.stats.end_ts = m.at;
        let filled = matches!(rep.kind, ExecKind::Fill | ExecKind::PartialFill) && rep.qty > 0;
        let targets = self.core.targets();
        self.core.on_exec(&rep, m.at, &mut self.cmds);
        if filled {
            self.record_fill(&m, targets);
        }
        self.rec.after_call(&self.core, m.at, &mut self.trace);
        if !self.cmds.is_empty() {
            self.send_commands(m.at);
        }
    }

    /// Records a fill the Core has just applied; `targets` are the ones in force when
    /// it arrived.
    fn record_fill(&mut self, m: &InFlightReport, targets: Targets) {
        let rep = &m.rep;
        let leg = if rep.inst == self.core.instrument_id(LEG_Y) { LEG_Y } else { LEG_X };
        let inst = self.core.instrument(leg);
        let after = self.core.portfolio().position(leg).qty;
        let before = after - rep.side.sign() * rep.qty;
        let target = if leg == LEG_Y { targets.y } else { targets.x };
        self.trace.fills.push(FillRecord {
            ts: m.at,
            leg,
            order_id: rep.id,
            side: rep.side,
            px: inst.px_f64(rep.px),
            qty: inst.qty_f64(rep.qty),
            fee: rep.fee,
            maker: rep.maker,
            queue_wait_ns: if rep.maker && m.arrived != Ts::MIN { rep.exch_ts - m.arrived } else { 0 },
            mid: self.core.mid(leg),
            position: inst.qty_f64(after),
            target: inst.qty_f64(target),
            signal_mid: self.rec.signal_mid(leg),
            toward_target: (after - target).abs() < (before - target).abs(),
        });
        self.fill_timings.push(FillTiming {
            id: rep.id,
            sent: m.sent,
            arrived: m.arrived,
            filled: rep.exch_ts,
            received: m.at,
        });
        let d = &mut self.digest;
        d.u64(rep.id);
        d.bytes(&rep.inst.to_le_bytes());
        d.bytes(&[rep.side as u8]);
        d.i64(rep.px);
        d.i64(rep.qty);
        d.i64(rep.leaves);
        d.f64(rep.fee);
        d.bytes(&[rep.maker as u8]);
        d.i64(rep.exch_ts);
        d.i64(m.at);
    }

    /// A timer tick at `next_timer`; `t_next` is the time of the next Core input.
    fn timer(&mut self, t_next: Ts) {
        let now = self.next_timer;
        if self.core.open_orders() == 0 {
            // Nothing to pull until the Core hears something: skip the idle ticks.
            self.next_timer = grid_ceil(t_next, self.timer_ns);
            return;
        }
        self.stats.timer_calls += 1;
        self.core.on_timer(now, &mut self.cmds);
        self.rec.after_call(&self.core, now, &mut self.trace);
        self.next_timer = now.saturating_add(self.timer_ns);
        if !self.cmds.is_empty() {
            self.send_commands(now);
        }
    }

    fn shutdown(&mut self, now: Ts) {
        self.shut_down = true;
        self.core.shutdown(&mut self.cmds);
        self.rec.after_call(&self.core, now, &mut self.trace);
        self.send_commands(now);
    }

    /// Puts the Core's commands on their way to the engine.
    fn send_commands(&mut self, now: Ts) {
        for k in 0..self.cmds.len() {
            let cmd = self.cmds[k];
            let at = now.saturating_add(self.entry.sample(now)).max(self.last_order_at);
            self.last_order_at = at;
            if let OrderCmd::New(n) | OrderCmd::Replace { new: n, .. } = cmd {
                self.times.push(OrderTimes { id: n.id, sent: now, arrived: Ts::MAX });
            }
            self.orders.push_back(InFlightOrder { at, cmd });
        }
        self.stats.commands += self.cmds.len() as u64;
        self.cmds.clear();
    }

    /// Samples at every boundary up to `t` (two per long gap, see
    /// [`MAX_GAP_SAMPLES`]).
    fn take_samples(&mut self, t: Ts) {
        let k = t.saturating_sub(self.next_sample) / self.sample_ns + 1;
        if k > MAX_GAP_SAMPLES {
            self.push_sample(self.next_sample);
            self.next_sample = self.next_sample.saturating_add((k - 1).saturating_mul(self.sample_ns));
        }
        while self.next_sample <= t {
            self.push_sample(self.next_sample);
            match self.next_sample.checked_add(self.sample_ns) {
                Some(next) => self.next_sample = next,
                None => {
                    self.next_sample = Ts::MAX;
                    break;
                }
            }
        }
    }

    fn push_sample(&mut self, ts: Ts) {
        let c = &self.core;
        let marks = c.marks();
        let p = c.portfolio();
        let sig = c.last_signal();
        let targets = c.targets();
        let (iy, ix) = (c.instrument(LEG_Y), c.instrument(LEG_X));
        let gross = p.gross_pnl(&marks);
        let fees = p.fees();
        self.trace.samples.push(Sample {
            ts,
            mid: [c.mid(LEG_Y).unwrap_or(f64::NAN), c.mid(LEG_X).unwrap_or(f64::NAN)],
            beta: sig.map_or(f64::NAN, |s| s.beta),
            z: sig.map_or(f64::NAN, |s| s.z),
            position: [iy.qty_f64(p.position(LEG_Y).qty), ix.qty_f64(p.position(LEG_X).qty)],
            target: [iy.qty_f64(targets.y), ix.qty_f64(targets.x)],
            gross_pnl: gross,
            fees,
            net_pnl: gross - fees,
        });
    }

    fn finish(mut self) -> Outcome {
        let end = self.stats.last_ts.max(self.stats.end_ts);
        if self.total > 0 && self.trace.samples.last().is_none_or(|s| s.ts < end) {
            self.push_sample(end);
        }
        if self.total > 0 {
            self.rec.after_call(&self.core, end, &mut self.trace);
            // The hedge error's clock runs to the end, also when flat.
            self.trace.hedge.update(end, self.trace.hedge.value);
        }
        let (iy, ix) = (self.core.instrument(LEG_Y), self.core.instrument(LEG_X));
        let p = self.core.portfolio();
        self.trace.end = EndState {
            data_end_ts: self.stats.last_ts,
            ts: end,
            mid: self.rec.mids(&self.core),
            position: [iy.qty_f64(p.position(LEG_Y).qty), ix.qty_f64(p.position(LEG_X).qty)],
        };
        let m = self.engine.stats();
        self.trace.orders = m.accepted + m.rejected;
        self.trace.rejects = m.rejected;
        self.trace.cancels = m.canceled;
        self.trace.data_rejects = self.core.stats().data_rejects;
        let d = &mut self.digest;
        let p = self.core.portfolio();
        for l in [LEG_Y, LEG_X] {
            let pos = p.position(l);
            d.i64(pos.qty);
            d.f64(pos.avg_px);
            d.f64(pos.realized);
            d.f64(pos.fees);
            d.f64(pos.cash);
            d.u64(pos.fills);
        }
        d.f64(self.core.net_pnl());
        let c = self.core.stats();
        for v in [c.events, c.signals, c.quote_updates, c.orders, c.cancels, c.fills, c.unknown_reports] {
            d.u64(v);
        }
        for v in [m.accepted, m.rejected, m.canceled, m.unknown_cancels, m.expired, m.fills, m.level_changes] {
            d.u64(v);
        }
        Outcome {
            digest: self.digest.0,
            core: self.core,
            trace: self.trace,
            matching: m,
            replay: self.stats,
            fill_timings: self.fill_timings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        // Published FNV-1a 64 test vectors: "" and "a".
        let mut h = Fnv(Fnv::OFFSET);
        assert_eq!(h.0, 0xcbf29ce484222325);
        h.bytes(b"a");
        assert_eq!(h.0, 0xaf63dc4c8601ec8c);
        let mut h = Fnv(Fnv::OFFSET);
        h.bytes(b"foobar");
        assert_eq!(h.0, 0x85944171f73967e8);
    }

    #[test]
    fn merge_unions_tables_and_interleaves_by_local_time() {
        use crate::event::EventKind;
        let d = |s: &str| s.parse().unwrap();
        let btc = Instrument::new("BTCUSDT", d("0.01"), d("0.00001"));
        let eth = Instrument::new("ETHUSDT", d("0.01"), d("0.0001"));
        let ev = |inst: InstId, local_ts: Ts, px| MarketEvent {
            exch_ts: local_ts,
            local_ts,
            px,
            qty: 1,
            inst,
            kind: EventKind::BestBid,
            flags: 1,
        };
        let a = (vec![btc.clone()], vec![ev(0, 10, 1), ev(0, 20, 2), ev(0, 30, 3)]);
        let b = (vec![eth.clone(), btc.clone()], vec![ev(1, 5, 4), ev(0, 20, 5), ev(0, 25, 6), ev(7, 40, 7)]);
        let (table, evs) = merge_sources(vec![a.clone(), b]).unwrap();
        assert_eq!(table, vec![btc.clone(), eth.clone()]);
        let got: Vec<(InstId, Ts, i64)> = evs.iter().map(|e| (e.inst, e.local_ts, e.px)).collect();
        assert_eq!(
            got,
            vec![(0, 5, 4), (0, 10, 1), (0, 20, 2), (1, 20, 5), (1, 25, 6), (0, 30, 3), (InstId::MAX, 40, 7)]
        );
        assert_eq!(merge_sources(vec![a.clone()]).unwrap(), a);
        let other = Instrument::new("BTCUSDT", d("0.1"), d("0.00001"));
        assert!(matches!(merge_sources(vec![a, (vec![other], vec![])]), Err(MergeError::Increments { .. })));
    }

    #[test]
    fn grid() {
        assert_eq!(grid_ceil(1_000, 100), 1_000);
        assert_eq!(grid_ceil(1_001, 100), 1_100);
        assert_eq!(grid_ceil(-50, 100), 0);
    }

    #[test]
    fn config_defaults_parse_and_validate() {
        let d = BacktestConfig::default();
        assert!(d.validate().is_ok());
        let c: BacktestConfig = toml::from_str("timer_ms = 50\nqueue = { kind = \"risk_averse\" }").unwrap();
        assert_eq!(c.timer_ms, 50);
        assert_eq!(c.queue, QueueConfig::RiskAverse {});
        assert_eq!(c.entry_latency, d.entry_latency, "unset fields keep their defaults");
        assert!(toml::from_str::<BacktestConfig>("timer = 50").is_err(), "unknown field");
        let zero = BacktestConfig { sample_ms: 0, ..d.clone() };
        assert_eq!(zero.validate(), Err(BacktestError::Interval { name: "sample_ms", value: 0 }));
        let neg = BacktestConfig { entry_latency: LatencyConfig::Constant { ns: -1 }, ..d.clone() };
        assert!(matches!(neg.validate(), Err(BacktestError::Latency { which: "entry_latency", .. })));
        let q = BacktestConfig { queue: QueueConfig::ProbPower { n: -1.0 }, ..d };
        assert!(matches!(q.validate(), Err(BacktestError::Queue(_))));
    }
}
