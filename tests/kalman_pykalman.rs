//! `signal::kalman::Kalman` against pykalman's `KalmanFilter.filter`, the independent
//! reference (fixtures from `tools/kalman_reference.py`, parameters in
//! `tests/data/kalman_pykalman.params.json`).
//!
//! Tolerances: `beta`, `alpha` and `Q` to 1e-9 relative; `e` and `z` to `1e-9 * |y|`
//! absolute (they are differences of numbers of the size of `y`, so their own relative
//! error is unbounded near zero).

use std::path::PathBuf;

use serde::Deserialize;
use statarb::signal::csv::{filter_csv, CsvOptions};
use statarb::signal::kalman::{Kalman, KalmanParams, ObsNoise};

const REL_TOL: f64 = 1e-9;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join(name)
}

/// The generator's parameters; extra keys (generator settings, versions) are ignored.
#[derive(Debug, Deserialize)]
struct FixtureParams {
    delta: f64,
    ve: f64,
    p0: f64,
    beta0: f64,
    alpha0: f64,
    seed: u64,
    n: usize,
    chan_rows: usize,
    chan_y: String,
    chan_x: String,
}

fn fixture_params() -> (FixtureParams, KalmanParams) {
    let text = std::fs::read_to_string(data("kalman_pykalman.params.json")).expect("read kalman_pykalman.params.json");
    let f: FixtureParams = serde_json::from_str(&text).expect("parse params json");
    let k = KalmanParams {
        delta: f.delta,
        ve: ObsNoise::Fixed(f.ve),
        p0: f.p0,
        beta0: f.beta0,
        alpha0: f.alpha0,
        ..KalmanParams::default()
    };
    (f, k)
}

/// One reference row: `x,y,beta,alpha,e,q,z`.
#[derive(Debug, Clone, Copy, Deserialize)]
struct Row {
    x: f64,
    y: f64,
    beta: f64,
    alpha: f64,
    e: f64,
    q: f64,
    z: f64,
}

fn reference(name: &str) -> Vec<Row> {
    let mut rdr = csv::Reader::from_path(data(name)).expect("open reference csv");
    let headers = rdr.headers().expect("header").clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), ["x", "y", "beta", "alpha", "e", "q", "z"]);
    rdr.deserialize().map(|r| r.expect("reference row")).collect()
}

/// Largest errors seen, for the report printed with `--nocapture`.
#[derive(Debug, Default)]
struct MaxErr {
    beta: f64,
    alpha: f64,
    q: f64,
    /// `|e - e_ref| / |y|`
    e: f64,
    /// `|z - z_ref| / |y|`
    z: f64,
}

fn rel(a: f64, b: f64) -> f64 {
    let scale = a.abs().max(b.abs());
    if scale == 0.0 {
        0.0
    } else {
        (a - b).abs() / scale
    }
}

/// Compares one step; panics with the step number and both values on a mismatch.
fn check(t: usize, got: [f64; 5], want: &Row, max: &mut MaxErr) {
    let [beta, alpha, e, q, z] = got;
    let errs = [
        ("beta", rel(beta, want.beta), beta, want.beta),
        ("alpha", rel(alpha, want.alpha), alpha, want.alpha),
        ("q", rel(q, want.q), q, want.q),
        ("e", (e - want.e).abs() / want.y.abs(), e, want.e),
        ("z", (z - want.z).abs() / want.y.abs(), z, want.z),
    ];
    for (name, err, g, w) in errs {
        assert!(err <= REL_TOL, "step {t}: {name} = {g:e}, pykalman {w:e} (error {err:e})");
    }
    max.beta = max.beta.max(errs[0].1);
    max.alpha = max.alpha.max(errs[1].1);
    max.q = max.q.max(errs[2].1);
    max.e = max.e.max(errs[3].1);
    max.z = max.z.max(errs[4].1);
}

fn run_against(rows: &[Row], params: &KalmanParams) -> MaxErr {
    let mut k = Kalman::new(params).expect("valid params");
    let mut max = MaxErr::default();
    for (t, r) in rows.iter().enumerate() {
        let o = k.update(r.x, r.y).unwrap_or_else(|| panic!("step {t} skipped"));
        check(t, [o.beta, o.alpha, o.e, o.q, o.z], r, &mut max);
        assert_eq!((o.beta, o.alpha), (k.beta(), k.alpha()));
    }
    assert_eq!((k.steps(), k.skipped()), (rows.len() as u64, 0));
    max
}

#[test]
fn synthetic_pair_with_beta_break_matches_pykalman() {
    let (f, params) = fixture_params();
    assert_eq!(params, KalmanParams::default(), "fixture made with Chan's defaults");
    assert_ne!(f.seed, 0);
    let rows = reference("kalman_pykalman.csv");
    assert_eq!(rows.len(), f.n);
    let max = run_against(&rows, &params);
    println!("synthetic, max errors: {max:?}");
    // The filter followed the break: beta ~1.5 before the middle, ~0.8 at the end.
    let mid = rows.len() / 2;
    assert!((rows[mid - 1].beta - 1.5).abs() < 0.05, "{:?}", rows[mid - 1]);
    assert!((rows[rows.len() - 1].beta - 0.8).abs() < 0.05, "{:?}", rows[rows.len() - 1]);
}

/// `(x, y)` from the Chan slice, by column name.
fn chan_slice(f: &FixtureParams) -> Vec<(f64, f64)> {
    let mut rdr = csv::Reader::from_path(data("chan_ewa_ewc.csv")).expect("open chan slice");
    let headers = rdr.headers().expect("header").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    let (xi, yi) = (col(&f.chan_x), col(&f.chan_y));
    rdr.records()
        .map(|r| {
            let r = r.expect("chan row");
            let num = |i: usize| r[i].trim().parse::<f64>().expect("number");
            (num(xi), num(yi))
        })
        .collect()
}

#[test]
fn chan_ewa_ewc_matches_pykalman() {
    let (f, params) = fixture_params();
    assert_eq!((f.chan_y.as_str(), f.chan_x.as_str()), ("EWC", "EWA"));
    let pairs = chan_slice(&f);
    let rows = reference("chan_ewa_ewc_pykalman.csv");
    assert_eq!(pairs.len(), f.chan_rows);
    assert_eq!(rows.len(), f.chan_rows);
    for (t, (&(x, y), r)) in pairs.iter().zip(&rows).enumerate() {
        assert_eq!((x, y), (r.x, r.y), "row {t}: slice and reference disagree on the input");
    }
    let max = run_against(&rows, &params);
    println!("chan EWA/EWC, max errors: {max:?}");
}

/// The CSV engine over the same slice: input columns pass through, and the appended
/// columns, printed in shortest round-trip form, carry the same numbers.
#[test]
fn filter_csv_on_chan_slice_matches_pykalman() {
    let (f, params) = fixture_params();
    let input = std::fs::read(data("chan_ewa_ewc.csv")).expect("read chan slice");
    let opts = CsvOptions { y: f.chan_y.clone(), x: f.chan_x.clone(), params, skip_bad: false };
    let mut out = Vec::new();
    let stats = filter_csv(&input[..], &mut out, &opts).expect("filter_csv");
    assert_eq!((stats.rows, stats.written, stats.skipped), (f.chan_rows as u64, f.chan_rows as u64, 0));

    let rows = reference("chan_ewa_ewc_pykalman.csv");
    let mut rdr = csv::Reader::from_reader(&out[..]);
    let headers = rdr.headers().expect("header").clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), ["Date", "EWA", "EWC", "beta", "alpha", "e", "q", "z"]);
    let mut inp = csv::Reader::from_reader(&input[..]);
    let mut max = MaxErr::default();
    let mut n = 0;
    for (t, ((rec, orig), want)) in rdr.records().zip(inp.records()).zip(&rows).enumerate() {
        let (rec, orig) = (rec.expect("output row"), orig.expect("input row"));
        assert_eq!(&rec.iter().take(3).collect::<Vec<_>>(), &orig.iter().collect::<Vec<_>>());
        let num = |i: usize| rec[i].parse::<f64>().expect("output number");
        check(t, [num(3), num(4), num(5), num(6), num(7)], want, &mut max);
        n += 1;
    }
    assert_eq!(n, f.chan_rows);
    println!("filter_csv chan EWA/EWC, max errors: {max:?}");
}
