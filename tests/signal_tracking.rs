//! The filter against the generator's ground truth: on the built-in data set with the
//! built-in config, the Core's hedge ratio tracks the true beta, sees the break, and
//! its z is a calibrated score (issue 9's acceptance figures).
//!
//! Relative error `|beta - beta_true| / beta_true` at every signal sample, averaged
//! over time after the warm-up; "back after the break" is the first sample after
//! which the error is within 3 % and stays within 3 % on average for the rest of the
//! run.

use statarb::config::Config;
use statarb::core::{Commands, Core};
use statarb::feed::gen::{generate_with_truth, GenParams};
use statarb::types::NS_PER_SEC;

struct Tracking {
    mean_error: f64,
    back_after_s: f64,
    z_sd: f64,
    samples: usize,
}

fn track(seed: u64) -> Tracking {
    let cfg = Config::builtin();
    let (ds, truth) = generate_with_truth(&GenParams { seed, ..GenParams::default() });
    let brk = truth.beta_break.expect("the default data set has a break").ts;
    let mut core = Core::new(&cfg.core_params().unwrap(), &ds.instruments, 1).expect("core");
    let mut out = Commands::new();
    let t0 = ds.events[0].local_ts;
    let warm = cfg.pairs.warmup as i64 * cfg.signal.sample_ms as i64 * 1_000_000;
    let (mut rows, mut zs) = (Vec::new(), Vec::new());
    let mut seen = 0;
    for ev in &ds.events {
        core.on_market(ev, ev.local_ts, &mut out);
        out.clear();
        if core.stats().signals == seen {
            continue;
        }
        seen = core.stats().signals;
        let s = core.last_signal().expect("a signal was taken");
        if ev.local_ts - t0 < warm {
            continue;
        }
        let b = truth.beta_at(ev.exch_ts).expect("truth covers the run");
        rows.push((ev.local_ts, (s.beta - b).abs() / b));
        zs.push(s.z);
    }
    let mean = |v: &[(i64, f64)]| v.iter().map(|r| r.1).sum::<f64>() / v.len() as f64;
    let post: Vec<_> = rows.iter().copied().filter(|r| r.0 >= brk).collect();
    let back = (0..post.len()).find(|&i| post[i].1 <= 0.03 && mean(&post[i..]) <= 0.03);
    let zm = zs.iter().sum::<f64>() / zs.len() as f64;
    let z_sd = (zs.iter().map(|z| (z - zm) * (z - zm)).sum::<f64>() / zs.len() as f64).sqrt();
    Tracking {
        mean_error: mean(&rows),
        back_after_s: back.map_or(f64::INFINITY, |i| (post[i].0 - brk) as f64 / NS_PER_SEC as f64),
        z_sd,
        samples: rows.len(),
    }
}

#[test]
fn beta_tracks_the_truth_and_sees_the_break() {
    let t = track(1);
    println!(
        "seed 1: mean error {:.4}, back within 3 % after {:.0} s, sd(z) {:.3}, {} samples",
        t.mean_error, t.back_after_s, t.z_sd, t.samples
    );
    assert!(t.samples > 7_000, "{} samples", t.samples);
    assert!(t.mean_error <= 0.02, "time-averaged relative error {:.4}", t.mean_error);
    assert!(t.back_after_s <= 1_200.0, "back within 3 % only after {:.0} s", t.back_after_s);
    assert!((0.8..=1.25).contains(&t.z_sd), "sd(z) {:.3}", t.z_sd);
}
