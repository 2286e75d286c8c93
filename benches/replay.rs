//! Replay throughput: market events per second through the Core and the matching
//! engine, end to end (event loop, both cursors, latencies, queue model, trace).
//!
//! The built-in data set (2M events, seed 1) is written to an event file, mapped as
//! `statarb replay --data FILE` maps it, then replayed with the built-in configuration
//! and each queue model from memory (a slice); `mapped` replays the built-in queue
//! model streamed from the map ([`Dataset`]), to show the map costs nothing. Reported
//! as elements (events) per second.
//!
//! Run: `cargo bench --bench replay`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use statarb::backtest::queue::QueueConfig;
use statarb::backtest::{Backtest, BacktestConfig};
use statarb::config::Config;
use statarb::core::Core;
use statarb::feed::evmap::Dataset;
use statarb::feed::{evfile, gen};

fn replay(c: &mut Criterion) {
    let ds = gen::generate(&gen::GenParams::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.evt");
    evfile::write(std::fs::File::create(&path).expect("create"), &ds.instruments, &ds.events).expect("write");
    let data = Dataset::open(&[&path]).expect("map");
    let instruments = data.instruments().to_vec();
    let events = data.to_vec();
    let cfg = Config::builtin();
    let params = cfg.core_params().expect("core params");
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(10);
    for (name, queue) in [
        ("builtin", QueueConfig::default()),
        ("risk_averse", QueueConfig::RiskAverse {}),
        ("prob_log", QueueConfig::ProbLog {}),
    ] {
        let bt = Backtest::new(&BacktestConfig { queue, ..BacktestConfig::default() }, &params, cfg.fees)
            .expect("valid config");
        g.bench_function(name, |b| {
            b.iter(|| {
                let core = Core::new(&params, &instruments, 1).expect("core");
                black_box(bt.run(core, &instruments, &events).digest)
            })
        });
    }
    let bt = Backtest::new(&BacktestConfig::default(), &params, cfg.fees).expect("valid config");
    g.bench_function("mapped", |b| {
        b.iter(|| {
            let core = Core::new(&params, &instruments, 1).expect("core");
            black_box(bt.run_source(core, &instruments, &data).digest)
        })
    });
    g.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
