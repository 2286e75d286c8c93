//! End to end: absurd but well-formed market data (zero prices, a trade at
//! 92233720368547758.07, an exchange stamp in the year 2100) injected into the
//! built-in data set changes no fill of a backtest, in the Core or in the matching
//! engine, and every refusal is counted per reason and shown in the report.

mod common;

use statarb::backtest::latency::FeedLatencyConfig;
use statarb::backtest::stats::Report;
use statarb::backtest::{Backtest, BacktestConfig, Outcome};
use statarb::core::{Core, LEG_Y};
use statarb::event::{EventKind, MarketEvent};
use statarb::feed::gen;
use statarb::types::{NS_PER_MS, NS_PER_SEC};

/// 2100-01-01T00:00:00Z.
const YEAR_2100: i64 = 4_102_444_800 * NS_PER_SEC;
/// One poisoned group every this many events.
const EVERY: usize = 4_000;

fn run(events: &[MarketEvent], ds: &gen::Dataset, bt: &BacktestConfig) -> Outcome {
    let cfg = common::market_make_config();
    let params = cfg.core_params().expect("core params");
    let core = Core::new(&params, &ds.instruments, 1).expect("core");
    Backtest::new(bt, &params, cfg.fees).expect("backtest").run(core, &ds.instruments, events)
}

/// The data set with, at the first best bid of the Y leg after every `EVERY`-th event,
/// four absurd events at its times: a buy print at `i64::MAX` ticks, a sell print at
/// 0, a best bid at 0, and a copy of the best bid stamped in the year 2100. Returns
/// the events and the number of groups.
fn poison(ds: &gen::Dataset, y: u16) -> (Vec<MarketEvent>, u64) {
    let mut out = Vec::with_capacity(ds.events.len() + ds.events.len() / EVERY * 4 + 4);
    let (mut groups, mut due) = (0, false);
    for (i, ev) in ds.events.iter().enumerate() {
        out.push(*ev);
        due |= i % EVERY == 0;
        if due && ev.inst == y && ev.kind == EventKind::BestBid {
            let f = MarketEvent::END_OF_BATCH;
            out.push(MarketEvent { kind: EventKind::TradeBuy, px: i64::MAX, qty: 5, flags: f, ..*ev });
            out.push(MarketEvent { kind: EventKind::TradeSell, px: 0, qty: 5, flags: f, ..*ev });
            out.push(MarketEvent { px: 0, flags: f, ..*ev });
            out.push(MarketEvent { exch_ts: YEAR_2100, ..*ev });
            groups += 1;
            due = false;
        }
    }
    (out, groups)
}

#[test]
fn absurd_events_change_no_fill_and_are_counted_per_reason() {
    let ds = gen::generate(&gen::GenParams { events: 120_000, ..gen::GenParams::default() });
    let y = {
        let cfg = common::market_make_config();
        Core::new(&cfg.core_params().unwrap(), &ds.instruments, 1).unwrap().instrument_id(LEG_Y)
    };
    let (events, groups) = poison(&ds, y);
    assert!(groups > 0, "no Y best bid at the poisoned positions");
    let bts = [
        BacktestConfig::default(),
        BacktestConfig { feed_latency: FeedLatencyConfig::Constant { ns: 2 * NS_PER_MS }, ..BacktestConfig::default() },
    ];
    for bt in &bts {
        let clean = run(&ds.events, &ds, bt);
        let dirty = run(&events, &ds, bt);
        assert!(!clean.trace.fills.is_empty(), "the clean run trades");
        let (d, c) = (&dirty.trace.fills, &clean.trace.fills);
        let first_diff = d.iter().zip(c).position(|(a, b)| a != b);
        assert!(
            d.len() == c.len() && first_diff.is_none(),
            "{:?}: the absurd events changed the fills: {} against {}, first difference at {first_diff:?}",
            bt.feed_latency,
            d.len(),
            c.len()
        );
        assert_eq!(dirty.core.net_pnl(), clean.core.net_pnl());
        let c = dirty.core.stats().data_rejects;
        assert_eq!((c.band, c.price, c.size, c.clock_jump), (groups, 2 * groups, 0, groups), "{c:?}");
        assert_eq!(dirty.core.stats().bad_events, 4 * groups);
        assert_eq!(clean.core.stats().bad_events, 0, "the built-in data has no absurd values");
        let m = dirty.matching.data_rejects;
        assert_eq!((m.band, m.price), (groups, 2 * groups), "the engine refuses the absurd prints: {m:?}");
        assert_eq!(dirty.replay.clock_jumps, groups);
        assert_eq!(dirty.trace.data_rejects, c);
        let report = Report::from_trace(&dirty.trace).to_string();
        let line = report.lines().find(|l| l.starts_with("bad data")).expect("a bad data line");
        assert!(line.contains(&format!("band {groups}")) && line.contains("clock jump"), "{line}");
    }
}
