//! End-to-end tests of the `statarb` binary: the main job, its summary file, the data
//! generator round trip, the kalman command, and clear errors on bad input.

use std::path::Path;
use std::process::{Command, Output};

fn statarb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statarb")).args(args).output().expect("run statarb")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

#[test]
fn replay_writes_the_summary_with_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = statarb(&["replay", "--events", "300000", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for line in ["events", "orders", "fills", "pnl net", "tick-to-quote"] {
        assert!(text.contains(line), "summary lacks {line}: {text}");
    }
    let s = summary(&out);
    for key in ["events", "orders", "fills", "pnl", "fees", "positions", "tick_to_quote_ns"] {
        assert!(s.get(key).is_some(), "summary.json lacks {key}");
    }
    for key in ["p50", "p99", "p999", "max"] {
        assert!(s["tick_to_quote_ns"][key].as_u64().is_some(), "tick_to_quote_ns.{key}");
    }
    assert_eq!(s["events"], 300_000);
    assert!(s["orders"].as_u64().unwrap() > 100);
    assert!(s["fills"].as_u64().unwrap() > 10);
    assert!(s["pnl"].as_f64().unwrap().is_finite());
    // Positions are exact decimal strings on the lot grid.
    assert!(s["positions"]["ETHUSDT"].as_str().unwrap().contains('.'));
    assert!(out.join("tick_to_quote.hgrm").exists());
}

#[test]
fn lockstep_replays_are_identical_and_gen_files_replay_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let evt = dir.path().join("d.evt");
    let o = statarb(&["gen", "--seed", "3", "--events", "200000", "--out", evt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let runs: Vec<serde_json::Value> = [
        vec!["replay", "--seed", "3", "--events", "200000"],
        vec!["replay", "--seed", "3", "--events", "200000"],
        vec!["replay", "--data", evt.to_str().unwrap()],
    ]
    .iter()
    .enumerate()
    .map(|(i, args)| {
        let out = dir.path().join(format!("r{i}"));
        let mut args = args.clone();
        args.extend(["--out", out.to_str().unwrap()]);
        let o = statarb(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        summary(&out)
    })
    .collect();
    for key in ["events", "orders", "cancels", "fills", "pnl", "fees", "positions", "rejects"] {
        assert_eq!(runs[0][key], runs[1][key], "{key} differs between two lockstep runs");
        assert_eq!(runs[0][key], runs[2][key], "{key} differs between generated and file data");
    }
}

#[test]
fn bad_config_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = statarb::config::DEFAULT_TOML.replace("[risk]", "[risk]\nmax_loses = 1.0");
    std::fs::write(&path, text).unwrap();
    let o = statarb(&["replay", "--events", "1000", "--config", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("bad.toml") && e.contains("max_loses"), "{e}");
    assert!(!e.contains("panicked"), "{e}");

    let text = statarb::config::DEFAULT_TOML.replace("stale_ms = 2000", "stale_ms = 0");
    std::fs::write(&path, text).unwrap();
    let o = statarb(&["replay", "--events", "1000", "--config", path.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("risk.stale_ms"), "{}", stderr(&o));
}

#[test]
fn corrupt_event_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let evt = dir.path().join("d.evt");
    assert!(statarb(&["gen", "--events", "1000", "--out", evt.to_str().unwrap()]).status.success());
    let mut bytes = std::fs::read(&evt).unwrap();
    bytes.truncate(bytes.len() - 17);
    std::fs::write(&evt, &bytes).unwrap();
    let o = statarb(&["replay", "--data", evt.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("d.evt") && !e.contains("panicked"), "{e}");
}

#[test]
fn kalman_command_streams_the_csv_with_five_columns() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chan_ewa_ewc.csv");
    let output = dir.path().join("k.csv");
    let o = statarb(&[
        "kalman",
        "--input",
        input.to_str().unwrap(),
        "--y",
        "EWC",
        "--x",
        "EWA",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&output).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.ends_with(",beta,alpha,e,q,z"), "{header}");
    let input_rows = std::fs::read_to_string(&input).unwrap().lines().count() - 1;
    assert_eq!(lines.count(), input_rows);

    // To stdout without --output.
    let o = statarb(&["kalman", "--input", input.to_str().unwrap(), "--y", "EWC", "--x", "EWA"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), text);
}

#[test]
fn kalman_command_names_the_bad_line_and_column_or_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "date,a,b\n1,10.0,20.0\n2,11.0,oops\n3,12.0,24.0\n").unwrap();
    let o = statarb(&["kalman", "--input", input.to_str().unwrap(), "--y", "b", "--x", "a"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("line 3") && e.contains("column `b`") && e.contains("oops"), "{e}");
    assert!(!e.contains("panicked"), "{e}");

    let o = statarb(&["kalman", "--input", input.to_str().unwrap(), "--y", "b", "--x", "a", "--skip-bad"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 3);
    assert!(stderr(&o).contains("skipped 1"), "{}", stderr(&o));

    let o = statarb(&["kalman", "--input", input.to_str().unwrap(), "--y", "nope", "--x", "a"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
}
