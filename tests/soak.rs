//! Chaos soak: the live market-data path and the strategy under every fault at once.
//!
//! The replay server (`serve`, real WebSocket and HTTP on loopback) sends the built-in
//! data at full speed (bursts) while it drops connections, skips depth messages
//! (update-id gaps), sends malformed frames and stalls. The feed (`BinanceFeed`: mio,
//! tungstenite, simd-json, book sync with REST snapshots) hands every event to the
//! core; a venue that answers like a struggling Binance (rejects with -1003 "too many
//! requests" and -1021 "timestamp outside recvWindow", and holds some acks back as a
//! timed-out request would) answers the core's orders. Throughout it checks:
//!
//! - nothing panics, and the books resync after every gap and reconnect;
//! - no order is sent for a leg whose book is unsynced, one-sided or crossed, or on the
//!   wrong side of the market;
//! - no risk limit is breached: positions within `max_position`, open orders within
//!   `max_open_orders`;
//! - snapshot requests stay within the per-IP weight budget;
//! - every order is accounted for: placed = filled + cancelled + rejected + expired +
//!   open;
//! - the core (`on_market`, `on_exec`, `on_timer`) allocates nothing after warm-up.
//!
//! `SOAK_MESSAGES` sets the number of messages (default 250 000, the CI run);
//! `tools/soak.sh` runs the long one (1 000 000) and prints the figures.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use statarb::backtest::matching::MatchingEngine;
use statarb::backtest::queue::ProbPower;
use statarb::book::Book;
use statarb::core::{Commands, Core};
use statarb::event::{EventKind, ExecKind, ExecReport, MarketEvent, OrderCmd, OrderId, RejectMsg};
use statarb::feed::config::FeedClock;
use statarb::feed::gen::{self, GenParams};
use statarb::feed::source::BinanceFeed;
use statarb::gateway::Exchange;
use statarb::live::{MarketSource, Polled};
use statarb::serve::{self, Faults, ServeConfig, Source};
use statarb::types::{Side, Ts};

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

/// Binance's request weight of `GET /api/v3/depth` with `limit <= 100`.
const SNAPSHOT_WEIGHT: u64 = 5;
/// The per-IP request weight budget per minute (Binance Spot `REQUEST_WEIGHT`).
const WEIGHT_PER_MINUTE: u64 = 6_000;

/// A venue in trouble, around the simulated one (the matching engine): of the new orders, about 3 % are
/// refused with -1003 (HTTP 429), 2 % with -1021, and 2 % are accepted but their
/// reports held back for 200 events, as when a request timed out and only a later
/// query settles it.
struct TroubledVenue {
    inner: MatchingEngine<ProbPower>,
    rng: u64,
    /// Reports held back: (release at event number, report).
    held: Vec<(u64, ExecReport)>,
    /// Ids whose reports are being held.
    slow: Vec<OrderId>,
    events: u64,
    placed: u64,
    refused_429: u64,
    refused_1021: u64,
    timeouts: u64,
}

impl TroubledVenue {
    fn new(inner: MatchingEngine<ProbPower>) -> Self {
        TroubledVenue {
            inner,
            rng: 0x9e37_79b9_7f4a_7c15,
            held: Vec::new(),
            slow: Vec::new(),
            events: 0,
            placed: 0,
            refused_429: 0,
            refused_1021: 0,
            timeouts: 0,
        }
    }

    /// xorshift64*: a uniform draw in [0, 100).
    fn percent(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % 100
    }

    /// New orders, the new halves of replaces included, meet the faults: a refused
    /// replace is refused whole (the old order still rests) and a slow one holds the
    /// reports of both halves.
    fn on_order(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>) {
        let (new, old) = match cmd {
            OrderCmd::New(o) => (Some(o), None),
            OrderCmd::Replace { old, new } => (Some(new), Some(*old)),
            _ => (None, None),
        };
        if let Some(o) = new {
            self.placed += 1;
            let draw = self.percent();
            let refuse = |code| ExecReport::rejected(o.id, o.inst, o.side, o.px, code, RejectMsg::new(), now);
            match draw {
                0..=2 => {
                    self.refused_429 += 1;
                    out.push(refuse(-1003));
                    return;
                }
                3..=4 => {
                    self.refused_1021 += 1;
                    out.push(refuse(-1021));
                    return;
                }
                5..=6 => {
                    self.timeouts += 1;
                    self.slow.push(o.id);
                    self.slow.extend(old);
                }
                _ => {}
            }
        }
        let start = out.len();
        self.inner.on_order(cmd, now, out);
        self.hold(out, start);
    }

    fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>) {
        self.events += 1;
        let start = out.len();
        self.inner.on_market(ev, out);
        self.hold(out, start);
        let due = self.events;
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].0 <= due {
                out.push(self.held.remove(i).1);
            } else {
                i += 1;
            }
        }
    }

    /// Moves the reports of slow orders (from `out[start..]`) into `held`.
    fn hold(&mut self, out: &mut Vec<ExecReport>, start: usize) {
        let mut i = start;
        while i < out.len() {
            if self.slow.contains(&out[i].id) {
                let r = out.remove(i);
                if r.is_final() {
                    self.slow.retain(|&id| id != r.id);
                }
                self.held.push((self.events + 200, r));
            } else {
                i += 1;
            }
        }
    }

    /// Every held report, now (the end of the soak).
    fn release_all(&mut self, out: &mut Vec<ExecReport>) {
        out.extend(self.held.drain(..).map(|(_, r)| r));
        self.slow.clear();
    }
}

/// What the soak saw, for the assertions and the printed summary.
#[derive(Debug, Default)]
struct Tally {
    orders: u64,
    /// Orders by how they ended (the first final report of each order id).
    final_kinds: HashMap<&'static str, u64>,
    finished: HashSet<OrderId>,
    /// Final reports about an order that had ended already (a cancel refused because
    /// the order had filled).
    late_finals: u64,
    max_abs_position: [i64; 2],
    max_open_orders: usize,
    allocations_after_warmup: u64,
}

#[test]
fn chaos_soak() {
    let target: u64 = std::env::var("SOAK_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(250_000);
    let ds = Arc::new(gen::generate(&GenParams { events: 120_000, ..GenParams::default() }));
    let faults = Faults {
        drop_every: Some(40_000),
        gap_every: Some(700),
        malformed_every: Some(5_000),
        stall_every: Some(30_000),
        stall_ms: 300,
    };
    let server = serve::spawn(ServeConfig { faults, ..ServeConfig::default() }, Source::Generated(Arc::clone(&ds)))
        .expect("start the replay server");
    // Quote actively, so that the venue's faults meet real order traffic.
    let cfg = common::market_make_config();
    // Not end_on_close: a dropped connection must reconnect, not end the run.
    let fc = common::binance_feed(server.ws_addr(), server.ws_addr(), false, FeedClock::Exchange);
    let mut feed = BinanceFeed::new(&fc, &ds.instruments, None).unwrap();
    let mut core = Core::new(&cfg.core_params().unwrap(), &ds.instruments, 1).unwrap();
    let mut venue = TroubledVenue::new(MatchingEngine::new(ds.instruments.clone(), cfg.fees, ProbPower::new(2.0)));
    let max_position = [cfg.y.max_position_lots(), cfg.x.max_position_lots()];

    let mut books = [Book::default(), Book::default()];
    let mut synced = [false, false];
    // Per leg: times its book was cleared (gap, reconnect) and times it synced again.
    let (mut clears, mut resyncs) = ([0u64; 2], [0u64; 2]);
    let mut cmds = Commands::new();
    let mut reports: Vec<ExecReport> = Vec::with_capacity(4096);
    let mut tally = Tally::default();
    let mut events = 0u64;
    const WARM_UP_EVENTS: u64 = 50_000;
    let t0 = Instant::now();
    let limit = Duration::from_secs(600);

    // Hands commands to the venue and reports to the core until both are quiet,
    // checking every new order against the books the feed has built.
    let settle = |core: &mut Core,
                  venue: &mut TroubledVenue,
                  cmds: &mut Commands,
                  reports: &mut Vec<ExecReport>,
                  books: &[Book; 2],
                  synced: &[bool; 2],
                  now: Ts,
                  tally: &mut Tally,
                  measuring: bool| {
        while !cmds.is_empty() || !reports.is_empty() {
            for r in reports.drain(..) {
                if r.is_final() && !tally.finished.insert(r.id) {
                    tally.late_finals += 1;
                } else if r.is_final() {
                    let k = match r.kind {
                        ExecKind::Fill => "filled",
                        ExecKind::Canceled => "cancelled",
                        ExecKind::Rejected => "rejected",
                        _ => "expired",
                    };
                    *tally.final_kinds.entry(k).or_default() += 1;
                }
                let (_, allocs) = common::counted(|| core.on_exec(&r, now, cmds));
                if measuring {
                    tally.allocations_after_warmup += allocs;
                }
            }
            let Some(c) = cmds.pop_at(0) else { continue };
            if let OrderCmd::New(o) | OrderCmd::Replace { new: o, .. } = c {
                tally.orders += 1;
                let l = o.inst as usize;
                assert!(synced[l], "an order for an unsynced book: {o:?}");
                let (bid, ask) = books[l].top().expect("an order without a two-sided book");
                assert!(bid < ask, "an order on a crossed book");
                match o.side {
                    Side::Buy => assert!(o.px < ask, "bid {} at or above the ask {ask}", o.px),
                    Side::Sell => assert!(o.px > bid, "ask {} at or below the bid {bid}", o.px),
                }
            }
            venue.on_order(&c, now, reports);
        }
        for (l, (&limit, peak)) in max_position.iter().zip(tally.max_abs_position.iter_mut()).enumerate() {
            let p = core.portfolio().position(l).qty;
            assert!(p.abs() <= limit, "leg {l} position {p} beyond its limit {limit}");
            *peak = (*peak).max(p.abs());
        }
        let open = core.open_orders();
        assert!(open <= cfg.risk.max_open_orders, "{open} open orders");
        tally.max_open_orders = tally.max_open_orders.max(open);
    };

    while server.stats().messages < target && t0.elapsed() < limit {
        let mut on_event = |ev: &MarketEvent| {
            events += 1;
            let i = ev.inst as usize;
            books[i].apply(ev);
            match ev.kind {
                EventKind::Clear if synced[i] => {
                    synced[i] = false;
                    clears[i] += 1;
                }
                EventKind::BidLevel | EventKind::AskLevel if !synced[i] => {
                    synced[i] = true;
                    resyncs[i] += 1;
                }
                _ => {}
            }
            let measuring = events > WARM_UP_EVENTS;
            venue.on_market(ev, &mut reports);
            let (_, allocs) = common::counted(|| core.on_market(ev, ev.local_ts, &mut cmds));
            if measuring {
                tally.allocations_after_warmup += allocs;
            }
            settle(&mut core, &mut venue, &mut cmds, &mut reports, &books, &synced, ev.local_ts, &mut tally, measuring);
        };
        match feed.poll(&mut on_event) {
            Polled::End => break,
            Polled::Events => {}
            Polled::Idle => {
                let now = feed.now();
                let (_, allocs) = common::counted(|| core.on_timer(now, &mut cmds));
                if events > WARM_UP_EVENTS {
                    tally.allocations_after_warmup += allocs;
                }
                assert!(cmds.iter().all(|c| !matches!(c, OrderCmd::New(_))), "the timer only ever cancels");
                settle(&mut core, &mut venue, &mut cmds, &mut reports, &books, &synced, now, &mut tally, false);
            }
        }
    }
    let elapsed = t0.elapsed();
    let st = server.stop();
    venue.release_all(&mut reports);
    let now = feed.now();
    settle(&mut core, &mut venue, &mut cmds, &mut reports, &books, &synced, now, &mut tally, false);

    let fs = feed.stats();
    let gaps: u64 = (0..2).map(|i| feed.sync(i).stats().gaps).sum();
    let syncs: u64 = (0..2).map(|i| feed.sync(i).stats().syncs).sum();
    let ws = feed.ws().stats();
    eprintln!(
        "soak: {} messages ({} drops, {} gaps, {} malformed, {} stalls) in {elapsed:.1?}; \
         feed: {} reconnects, {} book gaps, {} syncs, {} snapshots, {} parse errors; \
         venue: {} placed, {} refused 429, {} refused -1021, {} timed out; finals {:?}; \
         max |position| {:?}, max open orders {}, allocations after warm-up {}; clears {:?}, resyncs {:?}; late finals {}",
        st.messages,
        st.drops,
        st.gaps,
        st.malformed,
        st.stalls,
        ws.reconnects,
        gaps,
        syncs,
        fs.snapshots_requested,
        fs.parse_errors,
        venue.placed,
        venue.refused_429,
        venue.refused_1021,
        venue.timeouts,
        tally.final_kinds,
        tally.max_abs_position,
        tally.max_open_orders,
        tally.allocations_after_warmup,
        clears,
        resyncs,
        tally.late_finals,
    );

    assert!(st.messages >= target, "the soak must drive {target} messages, sent {}", st.messages);
    assert!(st.drops >= 2 && st.gaps >= 10 && st.malformed >= 10 && st.stalls >= 2, "{st:?}");
    // Every fault showed up on the client side, and every gap and reconnect resynced.
    assert!(ws.reconnects >= st.drops.min(2), "{ws:?}");
    assert!(gaps >= 10, "book gaps detected: {gaps}");
    // Every clear of a synced book was followed by a resync, except one per leg still
    // under way when the soak stopped.
    for l in 0..2 {
        assert!(clears[l] >= 5, "leg {l} was cleared {} times", clears[l]);
        assert!(resyncs[l] >= clears[l], "leg {l}: {} clears, {} resyncs after the first sync", clears[l], resyncs[l]);
        assert!(resyncs[l] <= clears[l] + 1);
    }
    // (Book gaps may outnumber syncs: a second gap while a leg waits for its snapshot
    // is covered by the same resync.)
    assert!(syncs >= resyncs.iter().sum::<u64>(), "{syncs} syncs, resyncs {resyncs:?}");
    assert!(fs.parse_errors >= 10, "{fs:?}");
    // Snapshot weight within the per-IP budget, pro rata for the soak's length.
    let minutes = elapsed.as_secs_f64() / 60.0;
    let weight = fs.snapshots_requested * SNAPSHOT_WEIGHT;
    assert!(
        (weight as f64) <= WEIGHT_PER_MINUTE as f64 * minutes.max(1.0),
        "snapshot weight {weight} in {minutes:.2} min is beyond the budget"
    );
    // The venue's faults met real traffic, and every order is accounted for.
    assert!(tally.orders > 100 && venue.refused_429 > 0 && venue.refused_1021 > 0 && venue.timeouts > 0);
    let finals: u64 = tally.final_kinds.values().sum();
    let open = venue.inner.resting().len() as u64;
    assert_eq!(venue.placed, tally.orders);
    assert_eq!(
        venue.placed,
        finals + open,
        "placed = filled + cancelled + rejected + expired + open: {:?}, open {open}",
        tally.final_kinds
    );
    assert_eq!(tally.allocations_after_warmup, 0, "the core allocated after warm-up");
}
