//! The paper venue: the matching engine behind the backtest's order entry and response
//! latency, on the gateway thread of a live run (`gateway.venue = "paper"`).
//!
//! Without a delay the paper venue would fill an order against the book of the moment
//! the gateway pops it, and answer at once: sooner than a real venue could, so paper
//! results would flatter the strategy. [`Lagged`] holds each command for an entry
//! latency and each report for a response latency, drawn from the models of
//! `backtest.entry_latency` and `backtest.response_latency` with the seeds `replay`
//! uses ([`super::Backtest::paper_venue`]).
//!
//! # Which clock
//!
//! A delay runs on two clocks at once, and a held message is due when either has run
//! it out:
//!
//! - the **data clock**, the latest exchange time of the market events the hot thread
//!   forwards: a command sent at data time `T` reaches the engine before the first
//!   event stamped after `T + entry` (at equal times after it), as in `replay`, whose
//!   engine takes an order at its arrival time and market data first on a tie. Against
//!   a replay server sending faster than real time (`statarb run` on the built-in
//!   data) this is the only clock that keeps the delay's meaning;
//! - the **wall clock** of the gateway thread: a live feed's data clock stands still
//!   while the market is quiet, and at the end of a replay it stops, but a real venue
//!   would still answer after the delay.
//!
//! Delivery is FIFO on each path, as in the backtest ([`super::latency`]): each due
//! time is raised to the previous one's, so a cancel never overtakes its order.
//! Reports are delayed from the moment the engine produced them (at the data clock
//! then, and the wall clock then).

use std::collections::VecDeque;
use std::time::Instant;

use crate::event::{ExecReport, MarketEvent, OrderCmd};
use crate::gateway::{Balance, Exchange, OpenOrder, VenueError};
use crate::types::Ts;

use super::latency::{Latency, LatencyModel};

/// Commands and reports held at once before the queues grow (they may grow beyond:
/// every message of a burst is kept; this sizes the preallocation).
const HELD_CAPACITY: usize = 256;

/// A message held until both due times are known and one of them has passed.
#[derive(Debug, Clone, Copy)]
struct Held<T> {
    /// Due on the data clock; `Ts::MAX` when sent before any market event.
    data: Ts,
    /// Due on the wall clock (ns since the venue's epoch).
    wall: Ts,
    msg: T,
}

/// The due times of the last message queued on one path (FIFO floors).
#[derive(Debug, Clone, Copy)]
struct Floor {
    data: Ts,
    wall: Ts,
}

impl Floor {
    const START: Floor = Floor { data: Ts::MIN, wall: Ts::MIN };
}

/// What the delays did, for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LagStats {
    /// Commands delayed (all commands).
    pub commands: u64,
    /// Reports delayed.
    pub reports: u64,
    /// Commands released by the wall clock before the data clock got there.
    pub commands_by_wall: u64,
    /// Reports released by the wall clock before the data clock got there.
    pub reports_by_wall: u64,
    /// Most commands held at once.
    pub peak_commands: u64,
    /// Most reports held at once.
    pub peak_reports: u64,
}

/// A venue behind entry and response latency; see the module docs.
#[derive(Debug)]
pub struct Lagged<E> {
    inner: E,
    entry: LatencyModel,
    response: LatencyModel,
    epoch: Instant,
    /// Latest exchange time of the forwarded market events; `Ts::MIN` before the first.
    data_now: Ts,
    commands: VecDeque<Held<OrderCmd>>,
    reports: VecDeque<Held<ExecReport>>,
    command_floor: Floor,
    report_floor: Floor,
    /// The inner venue's output, before it is held.
    scratch: Vec<ExecReport>,
    stats: LagStats,
}

impl<E: Exchange> Lagged<E> {
    /// `inner` behind `entry` and `response` latency.
    pub fn new(inner: E, entry: LatencyModel, response: LatencyModel) -> Self {
        Lagged {
            inner,
            entry,
            response,
            epoch: Instant::now(),
            data_now: Ts::MIN,
            commands: VecDeque::with_capacity(HELD_CAPACITY),
            reports: VecDeque::with_capacity(HELD_CAPACITY),
            command_floor: Floor::START,
            report_floor: Floor::START,
            scratch: Vec::with_capacity(HELD_CAPACITY),
            stats: LagStats::default(),
        }
    }

    /// The venue behind the delays.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// What the delays did.
    pub fn lag_stats(&self) -> LagStats {
        self.stats
    }

    #[inline]
    fn wall_now(&self) -> Ts {
        self.epoch.elapsed().as_nanos().min(i64::MAX as u128) as Ts
    }

    /// The due times of a message sent now with a delay drawn from `model`, raised to
    /// `floor` (FIFO), which becomes them.
    #[inline]
    fn due(model: &mut LatencyModel, floor: &mut Floor, data_now: Ts, wall_now: Ts) -> Floor {
        let (data, wall) = if data_now == Ts::MIN {
            (Ts::MAX, wall_now.saturating_add(model.sample(wall_now)))
        } else {
            let d = model.sample(data_now);
            (data_now.saturating_add(d), wall_now.saturating_add(d))
        };
        *floor = Floor { data: data.max(floor.data), wall: wall.max(floor.wall) };
        *floor
    }

    /// Moves the inner venue's new reports into the held queue.
    fn hold_scratch(&mut self) {
        if self.scratch.is_empty() {
            return;
        }
        let wall = self.wall_now();
        for rep in self.scratch.drain(..) {
            let d = Self::due(&mut self.response, &mut self.report_floor, self.data_now, wall);
            self.reports.push_back(Held { data: d.data, wall: d.wall, msg: rep });
            self.stats.reports += 1;
        }
        self.stats.peak_reports = self.stats.peak_reports.max(self.reports.len() as u64);
    }

    /// Hands the inner venue every command due before data time `before` (or by the
    /// wall clock), then releases the reports due, into `out`.
    fn release(&mut self, before: Ts, out: &mut Vec<ExecReport>) {
        let wall = self.wall_now();
        while let Some(h) = self.commands.front().copied() {
            let by_data = h.data < before;
            if !by_data && h.wall > wall {
                break;
            }
            self.commands.pop_front();
            self.stats.commands_by_wall += u64::from(!by_data);
            self.inner.submit(&h.msg, wall, &mut self.scratch);
            self.hold_scratch();
        }
        while let Some(h) = self.reports.front() {
            let by_data = h.data < before;
            if !by_data && h.wall > wall {
                break;
            }
            self.stats.reports_by_wall += u64::from(!by_data);
            out.push(h.msg);
            self.reports.pop_front();
        }
    }
}

impl<E: Exchange> Exchange for Lagged<E> {
    fn needs_market(&self) -> bool {
        self.inner.needs_market()
    }

    /// Holds the command (a replace whole: the inner venue splits it if it must).
    fn on_order(&mut self, cmd: &OrderCmd, _now: Ts, out: &mut Vec<ExecReport>) {
        let wall = self.wall_now();
        let d = Self::due(&mut self.entry, &mut self.command_floor, self.data_now, wall);
        self.commands.push_back(Held { data: d.data, wall: d.wall, msg: *cmd });
        self.stats.commands += 1;
        self.stats.peak_commands = self.stats.peak_commands.max(self.commands.len() as u64);
        let due_now = self.data_now.saturating_add(1);
        self.release(due_now, out);
    }

    fn supports_replace(&self) -> bool {
        self.inner.supports_replace()
    }

    /// Commands due before the event's exchange time reach the engine first, then the
    /// event, then whatever is due at its time.
    fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>) {
        self.release(ev.exch_ts, out);
        self.inner.on_market(ev, &mut self.scratch);
        self.data_now = self.data_now.max(ev.exch_ts);
        self.hold_scratch();
        let due_now = self.data_now.saturating_add(1);
        self.release(due_now, out);
    }

    fn poll(&mut self, now: Ts, out: &mut Vec<ExecReport>) {
        self.inner.poll(now, &mut self.scratch);
        self.hold_scratch();
        let due_now = self.data_now.saturating_add(1);
        self.release(due_now, out);
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight() + self.commands.len() + self.reports.len()
    }

    fn open_orders(&mut self) -> Result<Vec<OpenOrder>, VenueError> {
        self.inner.open_orders()
    }

    fn balances(&mut self) -> Result<Vec<Balance>, VenueError> {
        self.inner.balances()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::latency::Constant;
    use crate::event::{EventKind, ExecKind, NewOrder, RejectMsg, Tif};
    use crate::types::{Side, NS_PER_MS};

    /// A venue that acknowledges every command at once and counts market events.
    #[derive(Default)]
    struct Echo {
        seen: Vec<OrderCmd>,
        events: u64,
    }

    impl Exchange for Echo {
        fn needs_market(&self) -> bool {
            true
        }
        fn on_order(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>) {
            self.seen.push(*cmd);
            if let OrderCmd::New(o) = cmd {
                let mut r = ExecReport::rejected(o.id, o.inst, o.side, o.px, 0, RejectMsg::new(), now);
                r.kind = ExecKind::New;
                out.push(r);
            }
        }
        fn on_market(&mut self, _ev: &MarketEvent, _out: &mut Vec<ExecReport>) {
            self.events += 1;
        }
    }

    fn lagged(ms: i64) -> Lagged<Echo> {
        let m = LatencyModel::Constant(Constant::new(ms * NS_PER_MS));
        Lagged::new(Echo::default(), m.clone(), m)
    }

    fn tick(exch_ms: i64) -> MarketEvent {
        MarketEvent {
            exch_ts: exch_ms * NS_PER_MS,
            local_ts: exch_ms * NS_PER_MS,
            kind: EventKind::BestBid,
            px: 100,
            qty: 1,
            inst: 0,
            flags: MarketEvent::END_OF_BATCH,
        }
    }

    fn order(id: u64) -> OrderCmd {
        OrderCmd::New(NewOrder { id, inst: 0, side: Side::Buy, px: 99, qty: 1, tif: Tif::PostOnly })
    }

    #[test]
    fn a_command_waits_for_the_data_clock_and_its_answer_again() {
        // An hour: the wall clock never runs it out during the test.
        let mut v = lagged(3_600_000 / 2);
        let mut out = Vec::new();
        v.on_market(&tick(1_000), &mut out);
        v.on_order(&order(1), 0, &mut out);
        assert!(v.inner().seen.is_empty(), "held for the entry latency");
        // Data clock at +1.8e6 ms - 1: not yet.
        v.on_market(&tick(1_000 + 1_800_000 - 1), &mut out);
        assert!(v.inner().seen.is_empty());
        // An event at exactly the due time: the event first, then the order.
        v.on_market(&tick(1_000 + 1_800_000), &mut out);
        assert_eq!(v.inner().seen.len(), 1);
        assert_eq!(v.inner().events, 3);
        assert!(out.is_empty(), "the acknowledgement is held for the response latency");
        assert_eq!(v.in_flight(), 1);
        v.on_market(&tick(1_000 + 3_600_000 + 1), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, ExecKind::New);
        assert_eq!(v.in_flight(), 0);
        assert_eq!(v.lag_stats().commands_by_wall + v.lag_stats().reports_by_wall, 0);
    }

    #[test]
    fn the_wall_clock_releases_what_the_data_clock_does_not() {
        let mut v = lagged(1);
        let mut out = Vec::new();
        v.on_order(&order(1), 0, &mut out);
        v.on_order(&OrderCmd::Cancel { id: 1, inst: 0 }, 0, &mut out);
        let t0 = Instant::now();
        while out.is_empty() && t0.elapsed().as_secs() < 5 {
            v.poll(0, &mut out);
        }
        assert_eq!(out.len(), 1, "acknowledged after both delays by the wall clock alone");
        assert!(t0.elapsed().as_nanos() >= 2 * NS_PER_MS as u128 - NS_PER_MS as u128);
        // FIFO: the cancel reached the venue after its order.
        assert!(matches!(v.inner().seen[..], [OrderCmd::New(_), OrderCmd::Cancel { .. }]));
        assert_eq!(v.lag_stats().commands_by_wall, 2);
    }

    #[test]
    fn zero_latency_passes_through() {
        let mut v = lagged(0);
        let mut out = Vec::new();
        v.on_market(&tick(5), &mut out);
        v.on_order(&order(7), 0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, 7);
    }
}
