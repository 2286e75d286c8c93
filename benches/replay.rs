//! Replay throughput: market events per second through the Core and the matching
//! engine, end to end (event loop, both cursors, latencies, queue model, trace).
//!
//! The built-in data set (1M events, seed 1) is written to an event file in memory and
//! read back, as `statarb replay --data FILE` does, then replayed with the built-in
//! configuration and each queue model. Reported as elements (events) per second.
//!
//! Run: `cargo bench --bench replay`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use statarb::backtest::queue::QueueConfig;
use statarb::backtest::{Backtest, BacktestConfig};
use statarb::config::Config;
use statarb::core::Core;
use statarb::feed::{evfile, gen};

fn replay(c: &mut Criterion) {
    let ds = gen::generate(&gen::GenParams::default());
    let mut file = Vec::new();
    evfile::write(&mut file, &ds.instruments, &ds.events).expect("write to memory");
    let (instruments, events) = evfile::read_all(file.as_slice()).expect("read back");
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
    g.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
