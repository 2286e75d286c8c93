//! End-to-end tests of the maximum-likelihood commands: `statarb kalman --fit` on a
//! CSV and `statarb fit` on the built-in data set, their output (estimates, the
//! log-likelihood, a `[kalman]` snippet that parses back into `KalmanParams`) and
//! their errors.

use std::path::Path;
use std::process::{Command, Output};

use statarb::signal::kalman::{KalmanParams, ObsNoise};

fn statarb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statarb")).args(args).output().expect("run statarb")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `[kalman]` section at the end of the output, parsed.
fn snippet(stdout: &str) -> KalmanParams {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        kalman: KalmanParams,
    }
    let at = stdout.find("[kalman]").unwrap_or_else(|| panic!("no [kalman] snippet: {stdout}"));
    let doc: Doc = toml::from_str(&stdout[at..]).unwrap_or_else(|e| panic!("{e}: {}", &stdout[at..]));
    doc.kalman.validate().expect("the snippet is valid");
    doc.kalman
}

/// The number after `key` on its line of the summary.
fn value(stdout: &str, key: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key}: {stdout}"));
    line[key.len()..].split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn kalman_fit_on_chans_pair_prints_the_likelihood_and_a_snippet_that_parses_back() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chan_ewa_ewc.csv");
    let input = input.to_str().unwrap();
    let o = statarb(&["kalman", "--input", input, "--y", "EWC", "--x", "EWA", "--fit"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let ll = value(&out, "log-likelihood");
    assert!(ll.is_finite(), "{out}");
    assert!(out.contains("samples         290 (after a burn-in of 10"), "{out}");
    assert!(out.contains("converged") && !out.contains("NOT converged"), "{out}");
    let p = snippet(&out);
    assert!(matches!(p.ve, ObsNoise::Fixed(v) if v > 0.0), "{p:?}");
    assert!(p.delta_beta.is_some() && p.delta_alpha.is_some(), "{p:?}");
    assert_eq!((p.spread_halflife, p.p0, p.beta0), (0.0, 1.0, 0.0), "held at the flags' defaults");

    // The snippet's parameters give the printed likelihood back (to its six digits).
    let at = statarb::signal::fit::log_likelihood(&chan_pairs(input), &p, 10).expect("valid");
    assert!((at - ll).abs() < 1e-3 * ll.abs().max(1.0), "{at} vs {ll}");

    // The half-life free: a likelihood at least as high, and it is in the snippet.
    let o =
        statarb(&["kalman", "--input", input, "--y", "EWC", "--x", "EWA", "--fit", "--fit-halflife", "--burn", "20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let free = String::from_utf8_lossy(&o.stdout);
    assert!(free.contains("after a burn-in of 20"), "{free}");
    assert!(value(&free, "log-likelihood") >= ll - 1e-6, "{free}");
    assert!(snippet(&free).spread_halflife > 0.0, "{free}");
}

fn chan_pairs(path: &str) -> Vec<(f64, f64)> {
    let f = std::fs::File::open(path).expect("open");
    statarb::signal::csv::read_xy(f, "EWC", "EWA", false).expect("reads").0
}

#[test]
fn kalman_fit_errors_name_the_file_and_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("short.csv");
    let rows: String = (0..15).map(|t| format!("{t},{},{}\n", 10.0 + t as f64, 20.0 + 2.1 * t as f64)).collect();
    std::fs::write(&input, format!("t,a,b\n{rows}")).unwrap();
    let o = statarb(&["kalman", "--input", input.to_str().unwrap(), "--y", "b", "--x", "a", "--fit"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("short.csv: 15 samples, need at least 20 (burn 10)"), "{e}");
    assert!(!e.contains("panicked"), "{e}");

    // --burn and --fit-halflife need --fit; --fit writes no CSV.
    let o = statarb(&["kalman", "--input", input.to_str().unwrap(), "--y", "b", "--x", "a", "--burn", "5"]);
    assert!(!o.status.success() && stderr(&o).contains("--fit"), "{}", stderr(&o));
    let o =
        statarb(&["kalman", "--input", input.to_str().unwrap(), "--y", "b", "--x", "a", "--fit", "--output", "x.csv"]);
    assert!(!o.status.success() && stderr(&o).contains("--output"), "{}", stderr(&o));
}

#[test]
fn fit_samples_the_built_in_data_as_the_core_does() {
    // 400,000 events are about 27 minutes of market time: ~1,640 one-second samples.
    let o = statarb(&["fit", "--events", "400000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(value(&out, "log-likelihood").is_finite(), "{out}");
    assert!(out.contains("after a burn-in of 600"), "the config's warm-up: {out}");
    let samples = value(&out, "samples");
    assert!((700.0..1400.0).contains(&samples), "{out}");
    assert!(stderr(&o).contains("samples of (BTCUSDT, ETHUSDT) every 1000 ms"), "{}", stderr(&o));
    snippet(&out);

    // Too little data: the error names the source and the counts.
    let o = statarb(&["fit", "--events", "20000"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("the built-in data set (seed") && e.contains("need at least 610 (burn 600)"), "{e}");
}
