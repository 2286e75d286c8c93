//! Zero allocation on the hot path, proven with a counting global allocator.
//!
//! Drives the hot loop body (`HotLoop::turn`: drain reports, core, rings) over the
//! built-in data set, with the gateway's side (a simulated venue) served from the same
//! thread between turns. Only allocations made inside `turn` are counted: after a
//! warm-up there must be none for at least 100k events.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use statarb::config::Config;
use statarb::core::Core;
use statarb::event::ExecReport;
use statarb::feed::gen;
use statarb::gateway::sim::SimExchange;
use statarb::gateway::Exchange;
use statarb::live::{HotLoop, SliceSource, ToGateway};
use statarb::ring::ring;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = COUNT.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator; the bookkeeping
// touches only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System.alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn hot_loop_allocates_nothing_after_warm_up() {
    const WARM: u64 = 50_000;
    const MEASURED: u64 = 150_000;
    let cfg = Config::builtin();
    let ds = gen::generate(&gen::GenParams { events: (WARM + MEASURED) as usize, ..gen::GenParams::default() });
    let core = Core::new(&cfg, &ds.instruments, 1).unwrap();
    let mut venue = SimExchange::new(ds.instruments.clone(), cfg.fees);
    let (to_gw, mut gw_rx) = ring::<ToGateway>(4096);
    let (mut gw_tx, from_gw) = ring::<ExecReport>(4096);
    let mut hl = HotLoop::new(core, SliceSource::new(&ds.events), to_gw, from_gw, true);
    let mut reports = Vec::with_capacity(1024);

    let mut allocs_measured = 0;
    loop {
        let measuring = hl.stats().events >= WARM;
        COUNT.with(|n| n.set(0));
        COUNTING.with(|c| c.set(measuring));
        let more = hl.turn();
        COUNTING.with(|c| c.set(false));
        allocs_measured += COUNT.with(|n| n.get());
        if !more {
            break;
        }
        // The gateway's side, outside the counted region.
        while let Some(msg) = gw_rx.pop() {
            match msg {
                ToGateway::Order(cmd) => venue.on_order(&cmd, 0, &mut reports),
                ToGateway::Market(ev) => venue.on_market(&ev, &mut reports),
                ToGateway::Stop => {}
            }
            for r in reports.drain(..) {
                gw_tx.push(r).unwrap();
            }
        }
    }
    let st = hl.stats();
    let cs = *hl.core().stats();
    assert_eq!(st.events, WARM + MEASURED);
    assert!(
        cs.orders > 100 && cs.fills > 10 && st.reports > 100,
        "the run must exercise orders and fills: {cs:?} {st:?}"
    );
    assert_eq!(allocs_measured, 0, "allocations on the hot path over {MEASURED} events");
}
