//! Issue 12, item 1: event files are memory-mapped and replayed streamed, with the
//! same outcome as from memory. The built-in data set written as version-2 event files
//! (whole, split in time over several files, split by instrument) and replayed from
//! the maps gives the digest of the in-memory replay, with a random feed latency too;
//! the workers of a sweep share one mapping.

use std::fs::File;
use std::path::{Path, PathBuf};

use statarb::backtest::latency::FeedLatencyConfig;
use statarb::backtest::{Backtest, BacktestConfig};
use statarb::config::Config;
use statarb::core::Core;
use statarb::event::MarketEvent;
use statarb::feed::evfile;
use statarb::feed::evmap::{Dataset, EventMap};
use statarb::feed::gen;
use statarb::types::Instrument;

const EVENTS: usize = 200_000;

fn write(dir: &Path, name: &str, insts: &[Instrument], events: &[MarketEvent]) -> PathBuf {
    let p = dir.join(name);
    let mut w = evfile::Writer::new(File::create(&p).unwrap(), insts).unwrap();
    for e in events {
        w.push(e).unwrap();
    }
    w.finish().unwrap();
    p
}

fn digests(bt: &BacktestConfig, ds: &gen::Dataset, data: &Dataset) -> (String, String) {
    let cfg = Config::builtin();
    let params = cfg.core_params().unwrap();
    let b = Backtest::new(bt, &params, cfg.fees).unwrap();
    let mem = b.run(Core::new(&params, &ds.instruments, 1).unwrap(), &ds.instruments, &ds.events);
    let map = b.run_source(Core::new(&params, data.instruments(), 1).unwrap(), data.instruments(), data);
    assert_eq!(map.replay, mem.replay);
    assert_eq!(map.trace.fills.len(), mem.trace.fills.len());
    (mem.digest_hex(), map.digest_hex())
}

#[test]
fn mapped_replays_match_the_in_memory_replay() {
    let ds = gen::generate(&gen::GenParams { events: EVENTS, ..gen::GenParams::default() });
    let dir = tempfile::tempdir().unwrap();
    let whole = write(dir.path(), "whole.evt", &ds.instruments, &ds.events);
    let (a, b, c) = (60_000, 130_001, EVENTS);
    let parts = [
        write(dir.path(), "p0.evt", &ds.instruments, &ds.events[..a]),
        write(dir.path(), "p1.evt", &ds.instruments, &ds.events[a..b]),
        write(dir.path(), "p2.evt", &ds.instruments, &ds.events[b..c]),
    ];
    let random_feed = BacktestConfig {
        feed_latency: FeedLatencyConfig::Lognormal { median_ns: 1_500_000, sigma: 0.5 },
        ..BacktestConfig::default()
    };
    for bt in [BacktestConfig::default(), random_feed] {
        let one = Dataset::open(&[&whole]).unwrap();
        assert_eq!(one.len(), EVENTS);
        let (mem, map) = digests(&bt, &ds, &one);
        assert_eq!(mem, map, "one file");
        // Consecutive pieces: the merge by local time puts them back in file order
        // (ties at a boundary go to the earlier file, which is the original order).
        let split = Dataset::open(&parts).unwrap();
        let (mem, map) = digests(&bt, &ds, &split);
        assert_eq!(mem, map, "three files");
    }
    assert!(Dataset::open(&parts).unwrap().iter().eq(ds.events.iter().copied()));
}

#[test]
fn one_file_per_leg_merges_by_local_time() {
    let ds = gen::generate(&gen::GenParams { events: 50_000, ..gen::GenParams::default() });
    let dir = tempfile::tempdir().unwrap();
    // Leg files each with a one-instrument table: the merge remaps by symbol.
    let mut paths = Vec::new();
    for (i, inst) in ds.instruments.iter().enumerate() {
        let evs: Vec<MarketEvent> =
            ds.events.iter().filter(|e| e.inst as usize == i).map(|e| MarketEvent { inst: 0, ..*e }).collect();
        paths.push(write(dir.path(), &format!("{}.evt", inst.symbol), std::slice::from_ref(inst), &evs));
    }
    paths.reverse();
    let d = Dataset::open(&paths).unwrap();
    let names: Vec<&str> = d.instruments().iter().map(|i| i.symbol.as_str()).collect();
    let expected: Vec<&str> = ds.instruments.iter().rev().map(|i| i.symbol.as_str()).collect();
    assert_eq!(names, expected);
    let merged: Vec<MarketEvent> = d.iter().collect();
    assert_eq!(merged.len(), ds.events.len());
    assert!(merged.windows(2).all(|w| w[0].local_ts <= w[1].local_ts));
    // Per instrument, the same events in the same order.
    for (i, inst) in ds.instruments.iter().enumerate() {
        let id = d.instruments().iter().position(|x| x.symbol == inst.symbol).unwrap() as u16;
        let a = merged.iter().filter(|e| e.inst == id).map(|e| (e.local_ts, e.px, e.qty));
        let b = ds.events.iter().filter(|e| e.inst as usize == i).map(|e| (e.local_ts, e.px, e.qty));
        assert!(a.eq(b), "{}", inst.symbol);
    }
}

#[test]
fn sweep_workers_share_one_mapping() {
    let ds = gen::generate(&gen::GenParams { events: 100_000, ..gen::GenParams::default() });
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "d.evt", &ds.instruments, &ds.events);
    let data = Dataset::open(&[&p]).unwrap();
    let cfg = Config::builtin();
    let params = cfg.core_params().unwrap();
    let bt = Backtest::new(&cfg.backtest, &params, cfg.fees).unwrap();
    let run = || bt.run_source(Core::new(&params, data.instruments(), 1).unwrap(), data.instruments(), &data).digest;
    let want = run();
    let got: Vec<u64> = {
        use rayon::prelude::*;
        (0..4).into_par_iter().map(|_| run()).collect()
    };
    assert!(got.iter().all(|&d| d == want), "{got:x?} vs {want:x}");
}

#[test]
fn damaged_files_are_errors_naming_the_file() {
    let ds = gen::generate(&gen::GenParams { events: 1_000, ..gen::GenParams::default() });
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "d.evt", &ds.instruments, &ds.events);
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 40 + 34] = 0;
    let bad = dir.path().join("bad.evt");
    std::fs::write(&bad, &bytes).unwrap();
    let e = EventMap::open(&bad).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: event 999: unknown event kind byte 0", bad.display()));
    std::fs::write(&bad, &bytes[..n - 1]).unwrap();
    let e = EventMap::open(&bad).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: event file truncated at event 999 of 1000", bad.display()));
}
