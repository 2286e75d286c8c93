//! End to end through the live hot loop: with `feed.clock = "exchange"` the core's
//! clock is the feed's exchange clock, which stands still while the feed stalls; the
//! market must still go stale on local receive time, and the quotes be pulled.

mod common;

use std::time::{Duration, Instant};

use statarb::config::Config;
use statarb::core::{Core, LEG_X, LEG_Y};
use statarb::event::{EventKind, MarketEvent, OrderCmd};
use statarb::feed::gen::DEFAULT_START_TS;
use statarb::live::{HotLoop, MarketSource, Polled, ToGateway};
use statarb::ring::ring;
use statarb::types::{InstId, Ts};

/// A live source on an exchange clock: it delivers a two-sided market for both legs,
/// then stalls; its `now` is the last exchange time and never moves again.
struct StalledExchangeFeed {
    events: Vec<MarketEvent>,
    next: usize,
    now: Ts,
}

impl MarketSource for StalledExchangeFeed {
    fn poll(&mut self, on_event: &mut impl FnMut(&MarketEvent)) -> Polled {
        let Some(ev) = self.events.get(self.next) else {
            return Polled::Idle;
        };
        self.next += 1;
        self.now = ev.exch_ts;
        on_event(ev);
        Polled::Events
    }

    fn now(&self) -> Ts {
        self.now
    }
}

fn market(ids: [InstId; 2], mids: [i64; 2], exch: Ts) -> Vec<MarketEvent> {
    let mut evs = Vec::new();
    for (inst, mid) in ids.into_iter().zip(mids) {
        for (kind, px) in [(EventKind::BestBid, mid), (EventKind::BestAsk, mid + 1)] {
            // Exchange-clock mode stamps local_ts with the exchange clock too.
            evs.push(MarketEvent { exch_ts: exch, local_ts: exch, px, qty: 100_000, inst, kind, flags: 0 });
        }
        evs.last_mut().unwrap().flags = MarketEvent::END_OF_BATCH;
    }
    evs
}

#[test]
fn a_stalled_exchange_clock_still_goes_stale_on_local_time() {
    let cfg: Config = common::market_make_config();
    let instruments =
        statarb::feed::gen::generate(&statarb::feed::gen::GenParams { events: 10, ..Default::default() }).instruments;
    let core = Core::new(&cfg.core_params().unwrap(), &instruments, 1).unwrap();
    let ids = [core.instrument_id(LEG_Y), core.instrument_id(LEG_X)];
    let mids = [260_000, 6_100_000].map(|m| m as i64);
    let mids = if instruments[ids[0] as usize].symbol == "ETHUSDT" { mids } else { [mids[1], mids[0]] };
    let source = StalledExchangeFeed { events: market(ids, mids, DEFAULT_START_TS), next: 0, now: 0 };
    let (tx, mut from_hot) = ring::<ToGateway>(1024);
    let (_to_hot, rx) = ring(1024);
    let mut hot = HotLoop::new(core, source, tx, rx, false);
    let mut sent = Vec::new();
    let mut drain = |sent: &mut Vec<OrderCmd>| {
        while let Some(m) = from_hot.pop() {
            if let ToGateway::Order(c, _) = m {
                sent.push(c);
            }
        }
    };
    let t0 = Instant::now();
    for _ in 0..4 {
        hot.turn();
    }
    drain(&mut sent);
    let quotes = sent.iter().filter(|c| matches!(c, OrderCmd::New(_))).count();
    assert!(quotes > 0, "the market is quoted: {sent:?}");
    // The feed stalls: stale_ms of local time later the quotes are pulled, although
    // the exchange clock has not moved.
    let stale = Duration::from_millis(cfg.risk.stale_ms);
    let mut cancels = 0;
    while t0.elapsed() < stale * 5 && cancels < quotes {
        hot.turn();
        sent.clear();
        drain(&mut sent);
        cancels += sent.iter().filter(|c| matches!(c, OrderCmd::Cancel { .. })).count();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(cancels, quotes, "every quote pulled after a stall of {stale:?} of local time");
    assert!(t0.elapsed() >= stale, "not before stale_ms of local time");
    assert!(hot.core().risk().count_of(statarb::risk::Reject::Stale) >= 2);
}
