//! Per-stage and end-to-end benches of the hot path.
//!
//! - `kalman/update`: one 2x2 filter step.
//! - `quote/as`, `quote/glft`: one closed-form quote, rounded and clamped.
//! - `core/on_market/batch_end`: `Core::on_market` on a book-ticker event that closes a
//!   batch (book update, sigma, quote, order diff) alternating between two prices.
//! - `core/on_market/replay`: `Core::on_market` over 10k consecutive events of the
//!   built-in data set, reported per event (signal samples, requotes, risk included).
//!
//! Run: `cargo bench --bench hot_path`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use statarb::config::Config;
use statarb::core::{Commands, Core};
use statarb::event::{EventKind, MarketEvent};
use statarb::feed::gen;
use statarb::quote::{QuoteModel, QuoteParams, Quoter};
use statarb::signal::kalman::{Kalman, KalmanParams};
use statarb::types::Instrument;

fn kalman(c: &mut Criterion) {
    let mut k = Kalman::new(&KalmanParams::default()).unwrap();
    let mut i = 0u64;
    c.bench_function("kalman/update", |b| {
        b.iter(|| {
            i += 1;
            let x = 50.0 + (i % 97) as f64 * 0.01;
            let y = 1.5 * x + 0.3 + (i % 13) as f64 * 0.001;
            black_box(k.update(black_box(x), black_box(y)))
        })
    });
}

fn quote(c: &mut Criterion) {
    let inst = Instrument::new("ETHUSDT", "0.01".parse().unwrap(), "0.0001".parse().unwrap());
    let p = QuoteParams { gamma: 0.05, k: 2.0, a: 1.0, sigma0: 0.3 };
    for (name, model) in [("quote/as", QuoteModel::As), ("quote/glft", QuoteModel::Glft)] {
        let q = Quoter::new(model, p).unwrap();
        let mut i = 0i64;
        c.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let mid = 2600.005 + (i % 7) as f64 * 0.01;
                black_box(q.quote(&inst, black_box(mid), black_box(-3.0), 0.3, 600.0, 260_000, 260_001))
            })
        });
    }
}

fn core(c: &mut Criterion) {
    let cfg = Config::builtin();
    let ds = gen::generate(&gen::GenParams { events: 200_000, ..gen::GenParams::default() });
    let mut warm = Core::new(&cfg.core_params().unwrap(), &ds.instruments, 1).unwrap();
    let mut out = Commands::new();
    let (warmup, rest) = ds.events.split_at(100_000);
    for ev in warmup {
        warm.on_market(ev, ev.local_ts, &mut out);
        out.clear();
    }

    let mut g = c.benchmark_group("core/on_market");
    let last = *warmup.last().unwrap();
    let eth = warm.instrument_id(statarb::core::LEG_Y);
    let ask = warm.book(statarb::core::LEG_Y).best_ask().unwrap();
    let mut core = warm.clone();
    let mut flip = false;
    let mut ts = last.local_ts;
    g.throughput(Throughput::Elements(1));
    g.bench_function("batch_end", |b| {
        b.iter(|| {
            flip = !flip;
            ts += 1_000;
            let ev = MarketEvent {
                exch_ts: ts,
                local_ts: ts,
                px: ask.px,
                qty: if flip { ask.qty } else { ask.qty + 1 },
                inst: eth,
                kind: EventKind::BestAsk,
                flags: MarketEvent::END_OF_BATCH,
            };
            core.on_market(black_box(&ev), ts, &mut out);
            out.clear();
        })
    });

    const N: usize = 10_000;
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("replay", |b| {
        b.iter_batched_ref(
            || warm.clone(),
            |core| {
                for ev in &rest[..N] {
                    core.on_market(ev, ev.local_ts, &mut out);
                    out.clear();
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, kalman, quote, core);
criterion_main!(benches);
