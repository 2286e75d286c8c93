//! Per-stage benches of the live path, one figure per stage (issue 14, item 6).
//!
//! - `stage/parse_book_ticker`: `BinanceParser::parse` of one combined-stream
//!   `bookTicker` message (the example from Binance's Spot WebSocket docs), events emitted.
//!   Goal: <= 150 ns.
//! - `stage/depth_parse_apply`: `parse` of a 5+5-level `depthUpdate` diff plus
//!   `Book::apply` of each emitted level.
//! - `stage/risk_check`: one `Risk::check` of an order that passes every limit (the
//!   full path: staleness, band, notional, position, open orders, GCRA rate limit).
//! - `ring/hop/{crossbeam_array_queue,rtrb}`: one SPSC hop between two threads pinned to
//!   different cores (`core_affinity`), measured as a ping-pong round trip through two
//!   rings. Criterion's time is one round trip (two hops): one hop is its median / 2
//!   (`tools/bench-compare` reports it halved). Goal: <= 80 ns per hop.
//!   The engine's ring is `rtrb` (src/ring.rs), chosen on this figure over crossbeam's
//!   `ArrayQueue`, which is kept here for the comparison.
//! - `ring/hop/atomic_floor`: the same ping-pong through one atomic word per direction,
//!   each on its own cache line. A hop is then one cache-line transfer between the two
//!   cores and nothing else, the floor under any ring on the machine: a ring's hop moves
//!   at least its slot's line and its index's line.
//!
//! - `clock/{stamp_raw,instant_now}`: one stage stamp (`StampClock::raw`, the TSC where
//!   invariant) against `std::time::Instant::now` (a vDSO `CLOCK_MONOTONIC` read).
//!   Goal: a stamp under 20 ns.
//!
//! `core/on_market` and replay throughput are in `hot_path.rs` and `replay.rs`.
//!
//! Run: `cargo bench --bench stages`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use statarb::book::Book;
use statarb::clock::StampClock;
use statarb::config::Config;
use statarb::risk::{OrderCheck, Risk};
use statarb::types::{Instrument, Side};

use statarb::feed::binance::BinanceParser;

const BOOK_TICKER: &[u8] = br#"{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#;
const DEPTH: &[u8] = br#"{"stream":"bnbusdt@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBUSDT","U":157,"u":160,"b":[["25.3519","10"],["25.3518","0"],["25.3517","3.5"],["25.3510","7"],["25.3500","12"]],"a":[["25.3652","100"],["25.3653","0"],["25.3660","2"],["25.3670","9"],["25.3700","1.25"]]}}"#;

fn instruments() -> Vec<Instrument> {
    vec![Instrument::new("BNBUSDT", "0.0001".parse().unwrap(), "0.01".parse().unwrap())]
}

fn parse(c: &mut Criterion) {
    let inst = instruments();
    let mut p = BinanceParser::new(&inst, 64);
    let mut levels = Vec::with_capacity(64);
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    g.bench_function("parse_book_ticker", |b| {
        b.iter(|| {
            let parsed = p.parse(black_box(BOOK_TICKER), 1, &mut levels).unwrap();
            parsed.emit(&levels, 1, &mut |ev| n = n.wrapping_add(ev.px as u64));
        })
    });
    black_box(n);

    let mut book = Book::new(20);
    g.bench_function("depth_parse_apply", |b| {
        b.iter(|| {
            let parsed = p.parse(black_box(DEPTH), 1, &mut levels).unwrap();
            parsed.emit(&levels, 1, &mut |ev| {
                book.apply(&ev);
            });
        })
    });
    black_box(book.top());

    let cfg = Config::builtin();
    let mut risk = Risk::new(cfg.risk);
    let inst = &inst[0];
    let mut now = 1_000_000_000i64;
    g.bench_function("risk_check", |b| {
        b.iter(|| {
            // Spaced past the GCRA interval so every check passes the rate limit too.
            now += 1_000_000_000;
            let chk = OrderCheck {
                inst,
                side: Side::Buy,
                px: 253_519,
                qty: 1,
                top: Some((253_519, 253_652)),
                position: 0,
                open_same_side: 0,
                max_position: 100,
                open_orders: 1,
                last_update: now,
                now,
                local: now,
            };
            black_box(risk.check(black_box(&chk)))
        })
    });
    g.finish();
}

fn clock(c: &mut Criterion) {
    let mut g = c.benchmark_group("clock");
    let clock = StampClock::new();
    g.bench_function("stamp_raw", |b| b.iter(|| black_box(clock.raw())));
    g.bench_function("instant_now", |b| b.iter(|| black_box(std::time::Instant::now())));
    g.finish();
}

/// Two distinct cores for the ping-pong, if the machine has them.
fn two_cores() -> Option<(core_affinity::CoreId, core_affinity::CoreId)> {
    let ids = core_affinity::get_core_ids()?;
    (ids.len() >= 2).then(|| (ids[0], ids[1]))
}

/// A minimal SPSC interface so both rings run the same ping-pong.
trait Ring: Send + Sync + 'static {
    fn push(&self, v: u64) -> bool;
    fn pop(&self) -> Option<u64>;
}

impl Ring for crossbeam::queue::ArrayQueue<u64> {
    #[inline]
    fn push(&self, v: u64) -> bool {
        crossbeam::queue::ArrayQueue::push(self, v).is_ok()
    }
    #[inline]
    fn pop(&self) -> Option<u64> {
        crossbeam::queue::ArrayQueue::pop(self)
    }
}

fn hop_crossbeam(c: &mut Criterion, cores: (core_affinity::CoreId, core_affinity::CoreId)) {
    let ping = Arc::new(crossbeam::queue::ArrayQueue::<u64>::new(1024));
    let pong = Arc::new(crossbeam::queue::ArrayQueue::<u64>::new(1024));
    pingpong(c, "crossbeam_array_queue", cores, ping, pong);
}

fn pingpong<R: Ring>(
    c: &mut Criterion,
    name: &str,
    cores: (core_affinity::CoreId, core_affinity::CoreId),
    ping: Arc<R>,
    pong: Arc<R>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (ping, pong, stop) = (ping.clone(), pong.clone(), stop.clone());
        std::thread::spawn(move || {
            core_affinity::set_for_current(cores.1);
            while !stop.load(Ordering::Relaxed) {
                if let Some(v) = ping.pop() {
                    while !pong.push(v) {}
                }
            }
        })
    };
    core_affinity::set_for_current(cores.0);
    let mut g = c.benchmark_group("ring/hop");
    // One iteration = one round trip = two hops.
    g.throughput(Throughput::Elements(2));
    let mut i = 0u64;
    g.bench_function(name, |b| {
        b.iter(|| {
            i += 1;
            while !ping.push(i) {}
            loop {
                if let Some(v) = pong.pop() {
                    break black_box(v);
                }
            }
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
}

/// `rtrb` splits each ring into a producer and a consumer owned by one thread each, so
/// it gets its own ping-pong instead of the shared-reference [`Ring`] trait.
fn hop_rtrb(c: &mut Criterion, cores: (core_affinity::CoreId, core_affinity::CoreId)) {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            core_affinity::set_for_current(cores.1);
            while !stop.load(Ordering::Relaxed) {
                if let Ok(v) = ping_rx.pop() {
                    while pong_tx.push(v).is_err() {}
                }
            }
        })
    };
    core_affinity::set_for_current(cores.0);
    let mut g = c.benchmark_group("ring/hop");
    g.throughput(Throughput::Elements(2));
    let mut i = 0u64;
    g.bench_function("rtrb", |b| {
        b.iter(|| {
            i += 1;
            while ping_tx.push(i).is_err() {}
            loop {
                if let Ok(v) = pong_rx.pop() {
                    break black_box(v);
                }
            }
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
}

/// The core-to-core floor: `ping` carries the round number to the echo thread, `pong`
/// carries it back, each a lone atomic on its own cache line.
fn hop_floor(c: &mut Criterion, cores: (core_affinity::CoreId, core_affinity::CoreId)) {
    use crossbeam::utils::CachePadded;
    use std::sync::atomic::AtomicU64;
    let lines = Arc::new((CachePadded::new(AtomicU64::new(0)), CachePadded::new(AtomicU64::new(0))));
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (lines, stop) = (lines.clone(), stop.clone());
        std::thread::spawn(move || {
            core_affinity::set_for_current(cores.1);
            let mut seen = 0;
            while !stop.load(Ordering::Relaxed) {
                let v = lines.0.load(Ordering::Acquire);
                if v != seen {
                    seen = v;
                    lines.1.store(v, Ordering::Release);
                }
            }
        })
    };
    core_affinity::set_for_current(cores.0);
    let mut g = c.benchmark_group("ring/hop");
    g.throughput(Throughput::Elements(2));
    let mut i = 0u64;
    g.bench_function("atomic_floor", |b| {
        b.iter(|| {
            i += 1;
            lines.0.store(i, Ordering::Release);
            while lines.1.load(Ordering::Acquire) != i {}
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
}

fn ring(c: &mut Criterion) {
    let Some(cores) = two_cores() else {
        eprintln!("ring/hop: fewer than two cores, skipped");
        return;
    };
    hop_crossbeam(c, cores);
    hop_rtrb(c, cores);
    hop_floor(c, cores);
}

criterion_group!(benches, parse, clock, ring);
criterion_main!(benches);
