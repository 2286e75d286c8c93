//! The simulated venue of a threaded replay (`statarb latency`): the backtest's
//! [`MatchingEngine`] on the gateway thread, reading the data itself at exchange time,
//! as the replay loop's engine cursor does.
//!
//! # Why it reads the data itself
//!
//! In `replay` the engine applies each event at its exchange time and the Core hears
//! it at its local time, later by the feed latency: when the Core acts, the engine has
//! already applied every event stamped up to the Core's clock, including some the Core
//! has not heard of yet. A venue fed only the events the hot thread forwards would be
//! behind that by the feed latency, and a strategy's order would meet a book older
//! than its own view. So the venue has the data too, and uses the forwarded events
//! only as the Core's clock:
//!
//! - a forwarded event tells it the Core is at that event's local time `t`; it applies
//!   every event of its own cursor whose exchange time ([`super::Backtest`]'s rule:
//!   running maximum of the believed stamps, capped at the recorded local times) is at
//!   or before `t`, and reports the fills. The hot thread forwards an event before the
//!   Core handles it, so in lockstep the Core hears those fills first, as in `replay`,
//!   where at equal times the engine acts before the Core and reports reach the Core
//!   before market data;
//! - an order takes effect at once, at the Core's clock: after every event up to it
//!   and before the next one.
//!
//! # Order latency
//!
//! A threaded run does not model order entry or response latency: its order path is
//! the real one, the rings and the gateway thread, which take no simulated time (in
//! lockstep the hot thread waits for the gateway, so they take none at all). Modelling
//! them would need a clock the two threads share: a report due after the Core's clock
//! can only be released when a later event shows the Core has got there, which never
//! comes at the end of the data; and delaying orders alone would let the Core hear of
//! fills caused by events it has not seen. `backtest.entry_latency` and
//! `response_latency` are the replay's.
//!
//! # Against `replay`
//!
//! Paced in lockstep over the same events, with zero feed, entry and response latency
//! in `replay` (`tests/lockstep.rs`), the fills are the same, one by one: at every time
//! both apply the whole group of events stamped then before the Core hears the first
//! of them, the Core hears their fills before their market data, and its orders take
//! effect after the group. With a feed latency (recorded or modelled) they differ: a
//! fill the replay reports between two of the Core's events, at its own time, reaches
//! the Core of a threaded run just before its next event, so the Core answers it later
//! and on a later clock. Unpaced (`--pace max` or a speed factor) the venue still
//! applies data and orders in the same order, but when the Core hears a report depends
//! on thread timing.

use crate::event::{ExecReport, MarketEvent, OrderCmd};
use crate::gateway::Exchange;
use crate::types::Ts;

use super::matching::{MatchStats, MatchingEngine};
use super::queue::QueueModel;
use super::ExchangeClock;

/// The matching engine with its own cursor over the replayed data; see the module
/// docs. Built by [`super::Backtest::replay_venue`].
#[derive(Debug)]
pub struct ReplayVenue<'a, Q: QueueModel> {
    engine: MatchingEngine<Q>,
    events: &'a [MarketEvent],
    /// Next event to apply, and its exchange time.
    next: usize,
    next_ts: Ts,
    clock: ExchangeClock,
    /// The Core's clock: the latest local time forwarded.
    core_now: Ts,
}

impl<'a, Q: QueueModel> ReplayVenue<'a, Q> {
    pub(super) fn new(engine: MatchingEngine<Q>, events: &'a [MarketEvent], mut clock: ExchangeClock) -> Self {
        let next_ts = events.first().map_or(Ts::MAX, |ev| clock.next(ev).0);
        ReplayVenue { engine, events, next: 0, next_ts, clock, core_now: Ts::MIN }
    }

    /// The engine.
    pub fn engine(&self) -> &MatchingEngine<Q> {
        &self.engine
    }

    /// The engine's counters.
    pub fn stats(&self) -> MatchStats {
        self.engine.stats()
    }

    /// Events applied so far.
    pub fn applied(&self) -> usize {
        self.next
    }

    /// Applies every event due at or before `until`.
    #[inline]
    fn advance(&mut self, until: Ts, out: &mut Vec<ExecReport>) {
        while self.next < self.events.len() && self.next_ts <= until {
            let ev = MarketEvent { exch_ts: self.next_ts, ..self.events[self.next] };
            self.engine.on_market_at(&ev, self.next_ts, out);
            self.next += 1;
            if let Some(ev) = self.events.get(self.next) {
                self.next_ts = self.clock.next(ev).0;
            }
        }
    }
}

impl<Q: QueueModel> Exchange for ReplayVenue<'_, Q> {
    /// True: the forwarded events are the Core's clock.
    fn needs_market(&self) -> bool {
        true
    }

    /// True: the matching engine replaces atomically.
    fn supports_replace(&self) -> bool {
        true
    }

    /// At the Core's clock (the gateway's `now` is ignored).
    fn on_order(&mut self, cmd: &OrderCmd, _now: Ts, out: &mut Vec<ExecReport>) {
        self.engine.on_order_at(cmd, self.core_now, out);
    }

    /// The Core is at `ev.local_ts`: applies the data up to it.
    fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>) {
        self.core_now = self.core_now.max(ev.local_ts);
        self.advance(self.core_now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::queue::RiskAverse;
    use crate::backtest::Backtest;
    use crate::config::Config;
    use crate::event::{EventKind, ExecKind, NewOrder, Tif};
    use crate::types::{Instrument, Side};

    fn ev(kind: EventKind, px: i64, qty: i64, exch_ts: Ts, local_ts: Ts) -> MarketEvent {
        MarketEvent { exch_ts, local_ts, px, qty, inst: 0, kind, flags: MarketEvent::END_OF_BATCH }
    }

    #[test]
    fn applies_the_data_up_to_the_cores_clock_and_orders_at_it() {
        let cfg = Config::builtin();
        let bt = Backtest::new(&cfg.backtest, &cfg.core_params().unwrap(), cfg.fees).unwrap();
        let eth = Instrument::new("ETHUSDT", "0.01".parse().unwrap(), "0.0001".parse().unwrap());
        // Exchange times 10, 20, 30, 40; each heard 15 later.
        let data = [
            ev(EventKind::BidLevel, 100, 50, 10, 25),
            ev(EventKind::AskLevel, 101, 50, 20, 35),
            ev(EventKind::TradeSell, 100, 60, 30, 45),
            ev(EventKind::TradeSell, 100, 60, 40, 55),
        ];
        let mut v = bt.replay_venue(&[eth], &data, RiskAverse);
        let mut out = Vec::new();
        // The Core hears the first event at 25: the venue is at 20 by then.
        v.on_market(&data[0], &mut out);
        assert_eq!(v.applied(), 2);
        let bid = OrderCmd::New(NewOrder { id: 1, inst: 0, side: Side::Buy, px: 100, qty: 10, tif: Tif::PostOnly });
        v.on_order(&bid, 0, &mut out);
        assert_eq!(out.iter().map(|r| (r.kind, r.exch_ts)).collect::<Vec<_>>(), vec![(ExecKind::New, 25)]);
        out.clear();
        // At 35 the trade at 30 has cleared the 50 ahead of us and filled 10.
        v.on_market(&data[1], &mut out);
        assert_eq!(v.applied(), 3);
        assert_eq!(out.iter().map(|r| (r.kind, r.qty, r.exch_ts)).collect::<Vec<_>>(), vec![(ExecKind::Fill, 10, 30)]);
        v.on_market(&data[3], &mut out);
        assert_eq!(v.applied(), 4);
        assert_eq!(v.stats().queue_fills, 1);
    }
}
