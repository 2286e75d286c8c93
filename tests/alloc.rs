//! Zero allocation on the hot path, proven with a counting global allocator.
//!
//! Drives the hot loop body (`HotLoop::turn`: drain reports, core, rings) over the
//! built-in data set, with the gateway's side (the simulated venue, the matching engine) served from the same
//! thread between turns. Only allocations made inside `turn` are counted: after a
//! warm-up there must be none for at least 100k events.

use statarb::backtest::matching::MatchingEngine;
use statarb::backtest::queue::ProbPower;
use statarb::config::Config;
use statarb::core::Core;
use statarb::event::ExecReport;
use statarb::feed::gen;
use statarb::gateway::Exchange;
use statarb::live::{HotLoop, SliceSource, ToGateway};
use statarb::ring::ring;

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

/// Market making: both legs quote both sides all the time, the busiest order traffic.
#[test]
fn hot_loop_allocates_nothing_after_warm_up() {
    let (cs, st) = hot_loop_allocations(&common::market_make_config());
    assert!(
        cs.orders > 100 && cs.fills > 10 && st.reports > 100,
        "the run must exercise orders and fills: {cs:?} {st:?}"
    );
}

/// The built-in strategy (execute mode, IOC completion), with a short warm-up and a low
/// entry threshold so that the measured window holds several entries and exits.
#[test]
fn execute_mode_allocates_nothing_after_warm_up() {
    let text = "extends = \"default\"\n[pairs]\nwarmup = 30\nentry_z = 1.0\nexit_z = 0.0\n[quote]\nhorizon_secs = 5\n";
    let (cs, st) = hot_loop_allocations(&Config::from_toml(text, "<test>").unwrap());
    assert!(cs.orders > 20 && cs.fills > 10 && st.reports > 20, "the run must trade: {cs:?} {st:?}");
}

/// Runs the hot loop over generated data with `cfg`, the gateway's side simulated
/// outside the counted region; asserts no allocation after the warm-up.
fn hot_loop_allocations(cfg: &Config) -> (statarb::core::CoreStats, statarb::live::LoopStats) {
    const WARM: u64 = 50_000;
    const MEASURED: u64 = 150_000;
    let ds = gen::generate(&gen::GenParams { events: (WARM + MEASURED) as usize, ..gen::GenParams::default() });
    let core = Core::new(&cfg.core_params().unwrap(), &ds.instruments, 1).unwrap();
    let mut venue = MatchingEngine::new(ds.instruments.clone(), cfg.fees, ProbPower::new(2.0));
    let (to_gw, mut gw_rx) = ring::<ToGateway>(4096);
    let (mut gw_tx, from_gw) = ring::<ExecReport>(4096);
    let mut hl = HotLoop::new(core, SliceSource::new(&ds.events), to_gw, from_gw, true);
    let mut reports = Vec::with_capacity(1024);

    let mut allocs_measured = 0;
    loop {
        let measuring = hl.stats().events >= WARM;
        let (more, allocs) = common::counted(|| hl.turn());
        if measuring {
            allocs_measured += allocs;
        }
        if !more {
            break;
        }
        // The gateway's side, outside the counted region.
        while let Some(msg) = gw_rx.pop() {
            match msg {
                ToGateway::Order(cmd, _) => venue.on_order(&cmd, 0, &mut reports),
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
    assert_eq!(allocs_measured, 0, "allocations on the hot path over {MEASURED} events");
    (cs, st)
}
