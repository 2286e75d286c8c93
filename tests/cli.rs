//! End-to-end tests of the `statarb` binary: the backtester (report, plots, digest),
//! sweeps and their shards, the importer, the A-S simulation, the latency harness and
//! its summary file, the data generator round trip and its truth file, the kalman command, and clear
//! errors on bad input.

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

/// `latency --wire`: the replay server on loopback at a fixed rate with send stamps, the
/// engine against it, twice (busy-poll and blocking epoll), and the comparison.
#[test]
fn latency_wire_measures_from_the_server_send_and_compares_the_blocking_loop() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wire");
    let o = statarb(&[
        "latency",
        "--wire",
        "--rate",
        "20000",
        "--seconds",
        "1",
        "--warmup-messages",
        "60000",
        "--events",
        "400000",
        "--compare-blocking",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}\n{text}", stderr(&o));
    for needle in ["busy-poll:", "blocking epoll:", "paced messages", "stages (clock:", "ratio (p50, p99)"] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
    // The network stage (server send to bytes read) has a row in both passes and in
    // the comparison.
    assert_eq!(text.lines().filter(|l| l.starts_with("network ")).count(), 3, "{text}");
    for pass in ["busy-poll", "blocking_epoll"] {
        assert!(out.join(pass).join("network.hgrm").exists(), "{pass}/network.hgrm");
        assert!(out.join(pass).join("stages.svg").exists(), "{pass}/stages.svg");
    }
    let bad = statarb(&["latency", "--wire", "--rate", "0"]);
    assert!(!bad.status.success() && stderr(&bad).contains("--rate 0"), "{}", stderr(&bad));
}

#[test]
fn latency_writes_the_summary_with_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = statarb(&["latency", "--events", "300000", "--out", out.to_str().unwrap()]);
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
        vec!["latency", "--seed", "3", "--events", "200000"],
        vec!["latency", "--seed", "3", "--events", "200000"],
        vec!["latency", "--data", evt.to_str().unwrap()],
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

fn digest(o: &Output) -> String {
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().find(|l| l.starts_with("digest: ")).expect("a digest line");
    line["digest: ".len()..].to_string()
}

#[test]
fn replay_reports_plots_and_digests_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let evt = dir.path().join("d.evt");
    assert!(statarb(&["gen", "--seed", "5", "--events", "150000", "--out", evt.to_str().unwrap()]).status.success());
    let out = dir.path().join("bt");
    let a = statarb(&["replay", "--seed", "5", "--events", "150000", "--out", out.to_str().unwrap()]);
    assert!(a.status.success(), "{}", stderr(&a));
    let b = statarb(&["replay", "--data", evt.to_str().unwrap()]);
    assert!(b.status.success(), "{}", stderr(&b));
    assert_eq!(digest(&a), digest(&b), "the same data from a file replays the same");
    assert_eq!(digest(&a).len(), 16);
    let text = String::from_utf8_lossy(&a.stdout);
    for line in ["pnl net", "sharpe", "max drawdown", "turnover", "round trips", "maker share", "time flat"] {
        assert!(text.contains(line), "report lacks {line}: {text}");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["digest"].as_str().unwrap(), digest(&a));
    for key in ["pnl_net", "pnl_gross", "fees", "sharpe", "max_drawdown", "fills", "orders", "fill_ratio"] {
        assert!(r["report"].get(key).is_some(), "report.json lacks {key}");
    }
    for f in ["equity.svg", "prices.svg", "signal.svg", "inventory.svg", "fills.csv", "trades.csv", "signal.csv"] {
        assert!(out.join(f).exists(), "{f} not written");
    }
    for key in ["pnl_signal", "pnl_execution", "hedge_error_mean", "signal_entries", "trades_by_exit"] {
        assert!(r["report"].get(key).is_some(), "report.json lacks {key}");
    }
    let signal_svg = std::fs::read_to_string(out.join("signal.svg")).unwrap();
    assert!(signal_svg.contains("true beta"), "generated data: the true beta is drawn");
    // Not a terminal: no progress bar on stdout.
    assert!(!text.contains("eta"), "{text}");
}

#[test]
fn sweep_shards_partition_the_grid_and_rows_match_replays() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.toml");
    std::fs::write(&grid, "[params]\n\"pairs.entry_z\" = [1.5, 2.0]\n\"backtest.queue\" = [{ kind = \"risk_averse\" }, { kind = \"prob_log\" }]\n").unwrap();
    let all = statarb(&["sweep", "--grid", grid.to_str().unwrap(), "--events", "60000"]);
    assert!(all.status.success(), "{}", stderr(&all));
    let all = String::from_utf8_lossy(&all.stdout).into_owned();
    let rows: Vec<&str> = all.lines().collect();
    assert_eq!(rows.len(), 5, "header + 4 points: {all}");
    assert!(rows[0].starts_with("point,backtest.queue,pairs.entry_z,pnl_net"), "{}", rows[0]);
    let mut sharded: Vec<String> = Vec::new();
    let mut files = Vec::new();
    for i in 0..2 {
        let shard = format!("{i}/2");
        let o = statarb(&["sweep", "--grid", grid.to_str().unwrap(), "--events", "60000", "--shard", &shard]);
        assert!(o.status.success(), "{}", stderr(&o));
        sharded.extend(String::from_utf8_lossy(&o.stdout).lines().skip(1).map(String::from));
        let f = dir.path().join(format!("s_{i}.csv"));
        std::fs::write(&f, &o.stdout).unwrap();
        files.push(f.to_str().unwrap().to_string());
    }
    sharded.sort_by_key(|r| r.split(',').next().unwrap().parse::<usize>().unwrap());
    assert_eq!(sharded, rows[1..], "the shards' rows are the whole sweep's");
    // `sweep --merge` gives the unsharded table byte for byte, whatever the file order.
    let merged = dir.path().join("merged.csv");
    let o = statarb(&["sweep", "--merge", &files[1], &files[0], "--out", merged.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&merged).unwrap(), all);
    let o = statarb(&["sweep", "--merge", &files[0]]);
    assert!(stderr(&o).contains("points below the highest are in none of the files"), "{}", stderr(&o));
    // A point's digest is the digest of a plain replay with the same settings.
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        "extends = \"default\"\n[pairs]\nentry_z = 1.5\n[backtest]\nqueue = { kind = \"risk_averse\" }\n",
    )
    .unwrap();
    let o = statarb(&["replay", "--events", "60000", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let point0 = rows[1].split(',').collect::<Vec<_>>();
    assert!(point0.contains(&digest(&o).as_str()), "{} vs {}", rows[1], digest(&o));
}

/// The shipped grid trades (its points differ in PnL), the sweep prints the top points
/// by `--rank` in the CSV's order of that column, honours `--threads` and then
/// `SLURM_CPUS_PER_TASK`, and refuses `--events` with `--data`.
#[test]
fn sweep_ranks_points_and_honours_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(["sweep", "--grid", "config/sweep.toml", "--events", "300000", "--rank", "pnl_net", "--top", "3"])
        .args(["--out", out.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(", 1 threads"), "SLURM_CPUS_PER_TASK=1 gives one thread: {err}");
    let csv = std::fs::read_to_string(&out).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for name in [
        "signal_entries",
        "round_trips",
        "pnl_signal",
        "pnl_execution",
        "fees",
        "hedge_error_mean",
        "sharpe",
        "max_drawdown",
    ] {
        col(name);
    }
    // Parameter values with commas are quoted: parse with the csv crate.
    let mut rd = csv::Reader::from_path(&out).unwrap();
    let mut pnl: Vec<(f64, usize)> = rd
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[col("pnl_net")].parse::<f64>().unwrap(), r[0].parse::<usize>().unwrap())
        })
        .collect();
    assert_eq!(pnl.len(), 54);
    assert!(pnl.iter().any(|p| p.0 != pnl[0].0), "the shipped grid trades: its points differ");
    pnl.sort_by(|a, b| b.0.total_cmp(&a.0));
    let printed: Vec<usize> = err
        .lines()
        .filter(|l| l.trim_start().starts_with("pnl_net"))
        .map(|l| l.split("point").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(printed, pnl.iter().take(3).map(|p| p.1).collect::<Vec<_>>(), "{err}");

    let o = statarb(&["sweep", "--grid", "config/sweep.toml", "--events", "1000", "--threads", "0"]);
    assert!(!o.status.success() && stderr(&o).contains("--threads 0"), "{}", stderr(&o));
    let o = statarb(&["sweep", "--grid", "config/sweep.toml", "--events", "1000", "--rank", "nope"]);
    assert!(!o.status.success() && stderr(&o).contains("--rank nope"), "{}", stderr(&o));
    let o = statarb(&["sweep", "--grid", "config/sweep.toml", "--data", "x.evt", "--events", "1000"]);
    assert!(!o.status.success() && stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

/// A `data.seed` axis replays each point on the built-in data of its seed: each row's
/// digest is that of `replay --seed N`. With `--data` such a grid is an error.
#[test]
fn sweep_seed_axis_replays_each_seed() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("g.toml");
    std::fs::write(&grid, "[params]\n\"data.seed\" = [1, 2]\n").unwrap();
    let o = statarb(&["sweep", "--grid", grid.to_str().unwrap(), "--events", "100000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = String::from_utf8_lossy(&o.stdout).into_owned();
    for seed in ["1", "2"] {
        let r = statarb(&["replay", "--seed", seed, "--events", "100000"]);
        assert!(r.status.success(), "{}", stderr(&r));
        let row = rows.lines().find(|l| l.split(',').nth(1) == Some(seed)).unwrap();
        assert!(row.contains(&digest(&r)), "seed {seed}: {row} vs {}", digest(&r));
    }
    let o = statarb(&["sweep", "--grid", grid.to_str().unwrap(), "--data", "x.evt"]);
    assert!(!o.status.success() && stderr(&o).contains("data.seed"), "{}", stderr(&o));
}

/// `replay --sensitivity` prints the base run with 0x and 2x the fees and 0.5x and 2x
/// the order latency. Fees do not change the fills: at 0x net is the base gross, at 2x
/// it is gross less twice the base fees.
#[test]
fn replay_sensitivity_table() {
    let o = statarb(&["replay", "--events", "300000", "--sensitivity"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let cells = |name: &str| -> Vec<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_else(|| panic!("{name}: {text}"));
        line.trim_start()[name.len()..].split_whitespace().map(|c| c.parse().unwrap()).collect()
    };
    let (base, free, double) = (cells("base"), cells("fees 0x"), cells("fees 2x"));
    assert!(base[3] > 0.0, "the base run trades: {text}");
    assert_eq!((free[1], free[2], free[3]), (base[1], 0.0, base[3]), "{text}");
    assert!((free[0] - base[1]).abs() < 0.011, "{text}");
    assert!((double[0] - (base[1] - 2.0 * base[2])).abs() < 0.021, "{text}");
    cells("latency 0.5x");
    cells("latency 2x");
}

#[test]
fn import_then_replay_the_shared_recording_slices() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let cfg = dir.path().join("legs.toml");
    std::fs::write(&cfg, "extends = \"default\"\n[y]\nsymbol = \"ETHUSDT\"\n[x]\nsymbol = \"BTCUSDT\"\n").unwrap();
    let evt = dir.path().join("rec.evt");
    let o = statarb(&[
        "import",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        evt.to_str().unwrap(),
        data.join("binance_btcusdt_slice.txt.gz").to_str().unwrap(),
        data.join("binance_ethusdt_slice.txt.gz").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrote"), "{}", stderr(&o));
    let a = statarb(&["replay", "--config", cfg.to_str().unwrap(), "--data", evt.to_str().unwrap()]);
    assert!(a.status.success(), "{}", stderr(&a));
    // The raw recordings replay the same as their import.
    let b = statarb(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        data.join("binance_btcusdt_slice.txt.gz").to_str().unwrap(),
        data.join("binance_ethusdt_slice.txt.gz").to_str().unwrap(),
    ]);
    assert!(b.status.success(), "{}", stderr(&b));
    assert_eq!(digest(&a), digest(&b));
    // A zip is refused with advice, not a panic.
    let zip = dir.path().join("BTCUSDT-trades-2024-08-08.zip");
    std::fs::write(&zip, b"PK\x03\x04rest").unwrap();
    let o =
        statarb(&["import", "--config", cfg.to_str().unwrap(), "--out", evt.to_str().unwrap(), zip.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("unzip"), "{}", stderr(&o));
}

#[test]
fn as_sim_prints_and_writes_both_strategies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("as.json");
    let o = statarb(&["as-sim", "--gamma", "0.1", "--paths", "200", "--seed", "7", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("inventory") && text.contains("symmetric"), "{text}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for s in ["inventory", "symmetric"] {
        for k in ["spread_mean", "profit_mean", "profit_sd", "final_q_mean", "final_q_sd"] {
            assert!(r[s][k].as_f64().unwrap().is_finite(), "{s}.{k}");
        }
    }
    assert!(r["inventory"]["profit_sd"].as_f64() < r["symmetric"]["profit_sd"].as_f64());
    let o = statarb(&["as-sim", "--paths", "1"]);
    assert!(!o.status.success() && !stderr(&o).contains("panicked"), "{}", stderr(&o));
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

/// These aborted (exit 134): an empty generated data set indexed at 0, and a session
/// length that wrapped negative on its way to nanoseconds.
#[test]
fn empty_data_and_wrapping_durations_are_errors_not_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("g.toml");
    std::fs::write(&grid, "[params]\n\"pairs.entry_z\" = [2.0]\n").unwrap();
    for args in [&["replay", "--events", "0"][..], &["sweep", "--grid", grid.to_str().unwrap(), "--events", "0"][..]] {
        let o = statarb(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("--events 0"), "{}", stderr(&o));
    }
    let path = dir.path().join("d.toml");
    for (table, key, value, named) in [
        ("quote", "session_secs", "9300000000", "quote.session_secs"),
        ("risk", "stale_ms", "9300000000000", "risk.stale_ms"),
        ("risk", "stale_ms", "18446744073710", "risk.stale_ms"),
        ("signal", "sample_ms", "18446744073710", "signal.sample_ms"),
    ] {
        std::fs::write(&path, format!("extends = \"default\"\n[{table}]\n{key} = {value}\n")).unwrap();
        let o = statarb(&["replay", "--events", "1000", "--config", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{key} = {value}: {}", stderr(&o));
        assert!(stderr(&o).contains(named), "{}", stderr(&o));
    }
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
        "--plot",
        dir.path().join("k.svg").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The plot's time axis is the CSV's dates (20060426 is a day, not seconds).
    let svg = std::fs::read_to_string(dir.path().join("k.svg")).unwrap();
    assert!(svg.contains("2006-04-26 to 2007-07-05"), "the date span in the axis description");
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

#[test]
fn gen_writes_the_truth_csv() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.csv");
    let o = statarb(&["gen", "--events", "50000", "--truth", truth.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&truth).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ts_ns,beta,alpha"));
    let rows: Vec<(i64, f64, f64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert!(rows.len() > 60, "{} rows", rows.len());
    for w in rows.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 1_000_000_000, "one sample per second");
    }
    assert!(rows.iter().all(|r| r.1 > 0.0 && r.1 < 1.0 && r.2.is_finite()), "ETH per BTC is a small positive beta");
    // With --out too: the event file is written as before.
    let evt = dir.path().join("d.evt");
    let o = statarb(&["gen", "--events", "1000", "--out", evt.to_str().unwrap(), "--truth", truth.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(evt.exists());
    // Neither output: a usage error.
    assert!(!statarb(&["gen", "--events", "1000"]).status.success());
}

/// Starts `statarb args`, sends `sig` after `after`, and returns its output.
fn signalled(args: &[&str], sig: &str, after: std::time::Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
    child.wait_with_output().unwrap()
}

/// SIGINT and SIGTERM end the batch commands with exit 0: `replay` reports the events
/// it replayed and writes its outputs, `sweep` writes a row per point, and a command
/// that cannot stop part-way leaves no cut-short file.
#[test]
fn batch_commands_end_on_sigint_and_sigterm_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("replay");
    let o = signalled(
        &["replay", "--events", "4000000", "--out", out.to_str().unwrap()],
        "-INT",
        std::time::Duration::from_millis(400),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(text.contains("interrupted: the report is of the first"), "{text}");
    assert!(out.join("report.json").exists() && out.join("fills.csv").exists());

    let rows = dir.path().join("rows.csv");
    let o = signalled(
        &["sweep", "--grid", "config/sweep.toml", "--events", "2000000", "--out", rows.to_str().unwrap()],
        "-TERM",
        std::time::Duration::from_millis(400),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&rows).unwrap();
    assert!(csv.lines().count() > 1 && csv.contains("interrupted"), "{csv}");

    let evt = dir.path().join("big.evt");
    let o = signalled(
        &["gen", "--events", "5000000", "--out", evt.to_str().unwrap()],
        "-INT",
        std::time::Duration::from_millis(300),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("SIGINT: stopped"), "{}", stderr(&o));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!left.iter().any(|n| n.to_string_lossy().starts_with("big.evt")), "{left:?}");
}

#[test]
fn replay_windows_cut_the_data_and_an_open_window_changes_nothing() {
    let base = ["replay", "--events", "300000"];
    let whole = statarb(&base);
    assert!(whole.status.success(), "{}", stderr(&whole));
    // The built-in data starts at 2024-08-09T00:00:00Z: a window from then, to far
    // after the end, is the whole data, opened with no snapshot.
    let open = statarb(&[&base[..], &["--from", "2024-08-09T00:00:00Z", "--to", "2030-01-01T00:00:00Z"]].concat());
    assert!(open.status.success(), "{}", stderr(&open));
    assert_eq!(digest(&open), digest(&whole));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (from, to) = ("2024-08-09T00:05:00Z", "2024-08-09T00:40:00+00:00");
    let long = ["replay", "--events", "600000"];
    let cut = statarb(&[&long[..], &["--from", from, "--to", to, "--out", out]].concat());
    let err = stderr(&cut);
    assert!(cut.status.success(), "{err}");
    assert_ne!(digest(&cut), digest(&whole));
    assert!(err.contains("opened with") && err.contains("book levels built from"), "{err}");
    let (lo, hi) = (1_723_161_900_000_000_000_i64, 1_723_164_000_000_000_000_i64);
    let mut rd = csv::Reader::from_path(dir.path().join("fills.csv")).unwrap();
    let ts: Vec<i64> = rd.records().map(|r| r.unwrap()[1].parse().unwrap()).collect();
    assert!(!ts.is_empty(), "the window trades");
    assert!(ts.iter().all(|&t| (lo..hi + 5_000_000_000).contains(&t)), "fills inside the window (and its shutdown)");

    let bad = statarb(&[&base[..], &["--from", to, "--to", from]].concat());
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("is not before --to"), "{}", stderr(&bad));
    let bad = statarb(&[&base[..], &["--from", "yesterday"]].concat());
    assert!(stderr(&bad).contains("not a time"), "{}", stderr(&bad));
}

#[test]
fn walkforward_picks_a_point_per_fold_and_stitches_the_test_windows() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("g.toml");
    std::fs::write(&grid, "[params]\n\"pairs.entry_z\" = [1.5, 2.0]\n\"kalman.delta_beta\" = [5e-10, 8e-9]\n").unwrap();
    let out = dir.path().join("wf");
    let o = statarb(&[
        "walkforward",
        "--grid",
        grid.to_str().unwrap(),
        "--events",
        "600000",
        "--train",
        "15m",
        "--test",
        "10m",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (text, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), stderr(&o));
    assert!(o.status.success(), "{err}");
    assert!(text.contains("out of sample: net"), "{text}");
    let mut rd = csv::Reader::from_path(out.join("walkforward.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    // 600k events are about 41 minutes: test windows at 15, 25 and 35 minutes.
    assert_eq!(rows.len(), 3, "{text}");
    let mut oos_sum = 0.0;
    for (k, r) in rows.iter().enumerate() {
        assert_eq!(r[0].parse::<usize>().unwrap(), k);
        assert!(r[5].parse::<usize>().unwrap() < 4, "a point of the grid is chosen");
        oos_sum += r[9].parse::<f64>().unwrap();
    }
    assert!(rows[2][4].eq("true"), "the last test window is cut by the end of the data");
    // The stitched curve: in time order, starting at 0, ending at the folds' sum.
    let mut rd = csv::Reader::from_path(out.join("oos_equity.csv")).unwrap();
    let eq: Vec<(i64, f64)> =
        rd.records().map(|r| r.unwrap()).map(|r| (r[1].parse().unwrap(), r[2].parse().unwrap())).collect();
    assert_eq!(eq[0].1, 0.0);
    assert!(eq.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!((eq.last().unwrap().1 - oos_sum).abs() < 1e-6, "{:?} vs {oos_sum}", eq.last());
    assert!(std::fs::read_to_string(out.join("oos_equity.svg")).unwrap().contains("stitched out-of-sample"));

    let bad = statarb(&["walkforward", "--grid", grid.to_str().unwrap(), "--train", "1h", "--test", "0m"]);
    assert!(stderr(&bad).contains("not a duration"), "{}", stderr(&bad));
    let bad = statarb(&[
        "walkforward",
        "--grid",
        grid.to_str().unwrap(),
        "--events",
        "100000",
        "--train",
        "1h",
        "--test",
        "10m",
        "--metric",
        "digest",
    ]);
    assert!(stderr(&bad).contains("--metric digest: not a metric"), "{}", stderr(&bad));
}
