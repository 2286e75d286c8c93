//! `statarb record` against the replay server on loopback: Ctrl-C and SIGTERM end it
//! with exit 0 and a readable recording, and a max-pace replay is recorded whole, with
//! the feed's REST snapshots.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use statarb::feed::gen::{self, GenParams};
use statarb::feed::record::parse_snapshot_line;
use statarb::serve::{self, Pacing, ServeConfig, Source};

fn config(dir: &Path, ws: std::net::SocketAddr, end_on_close: bool, extra: &str) -> PathBuf {
    let p = dir.join("rec.toml");
    let text = format!(
        "extends = \"default\"\n[feed]\nvenue = \"binance\"\nws_url = \"ws://{ws}/stream\"\nrest_url = \"http://{ws}\"\nend_on_close = {end_on_close}\n{extra}"
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn record(cfg: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(["record", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start statarb record")
}

fn wait(child: &mut Child, limit: Duration) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("statarb record did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every line of every recording file under `dir` (reading to each file's end).
fn recorded_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut lines = Vec::new();
    for f in files.iter().filter(|p| p.extension().is_some_and(|e| e == "gz")) {
        let r = BufReader::new(MultiGzDecoder::new(std::fs::File::open(f).unwrap()));
        lines.extend(r.lines().map(|l| l.expect("a finished, readable gzip file")));
    }
    lines
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut s).unwrap();
    s
}

/// The poll used to fail with EINTR when the signal arrived during its wait (exit 1 on
/// 5 of 6 tries); each signal must now end the command in order.
#[test]
fn sigint_and_sigterm_end_record_with_exit_0_and_a_readable_file() {
    let ds = Arc::new(gen::generate(&GenParams { events: 200_000, ..GenParams::default() }));
    let server = serve::spawn(
        ServeConfig { pacing: Pacing::Speed(1.0), ..ServeConfig::default() },
        Source::Generated(Arc::clone(&ds)),
    )
    .unwrap();
    for sig in ["-INT", "-INT", "-INT", "-TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), server.ws_addr(), false, "");
        let out = dir.path().join("rec");
        let mut child = record(&cfg, &out);
        // Let it connect and record for a while.
        std::thread::sleep(Duration::from_millis(1_500));
        let killed = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let st = wait(&mut child, Duration::from_secs(20));
        let err = stderr_of(&mut child);
        assert!(st.success(), "kill {sig}: {st:?}\n{err}");
        assert!(err.contains("recorded "), "{err}");
        let lines = recorded_lines(&out);
        assert!(!lines.is_empty(), "kill {sig}: nothing recorded\n{err}");
    }
    server.stop();
}

/// The replay server at full speed over loopback, the fastest feed this machine
/// delivers: every message it sent is in the recording, none dropped, and
/// the REST snapshots are recorded too.
///
/// The pool holds the whole replay (about 140k messages, each under 1 KiB), so that
/// the test checks what reaches the file and not how fast the writer is: on a loaded
/// 2-core CI machine the writer shares the cores with the server, the reader and the
/// other tests of this file, and a default pool (16k buffers) once ran out there
/// (2,236 of 139,019 dropped, and counted). The writer's rate is a figure for the
/// benches, not a timed test.
#[test]
fn a_max_pace_replay_is_recorded_without_a_drop() {
    let ds = Arc::new(gen::generate(&GenParams { events: 400_000, ..GenParams::default() }));
    let server = serve::spawn(ServeConfig::default(), Source::Generated(ds)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = "[record]\ndir = \"unused: --out names it\"\n[record.pool]\nbuffers = 160000\nbuffer_bytes = 1024\n";
    let cfg = config(dir.path(), server.ws_addr(), true, pool);
    let out = dir.path().join("rec");
    let mut child = record(&cfg, &out);
    let st = wait(&mut child, Duration::from_secs(300));
    let err = stderr_of(&mut child);
    assert!(st.success(), "{st:?}\n{err}");
    let sent = server.stop().messages;
    assert!(err.contains(" messages (0 dropped"), "{err}");
    let lines = recorded_lines(&out);
    assert!(lines.iter().all(|l| !l.contains("statarb_gap")), "a gap marker in a lossless recording");
    // The feed's REST snapshots are recorded too, one tagged line each, one per leg
    // at least (the feed syncs both books).
    let is_snapshot =
        |l: &String| l.split_once(' ').is_some_and(|(_, m)| matches!(parse_snapshot_line(m.as_bytes()), Some(Ok(_))));
    let snapshots = lines.iter().filter(|l| is_snapshot(l)).count() as u64;
    assert!(snapshots >= 2, "{snapshots} snapshot lines\n{err}");
    assert_eq!(lines.len() as u64 - snapshots, sent, "every message sent is recorded\n{err}");
}

/// kill -9 in the middle of a live session: the recording up to the recorder's last
/// flush (at most a second old) is readable, and imports as an event file.
#[test]
fn a_recording_cut_by_kill_9_is_readable_and_imports() {
    let ds = Arc::new(gen::generate(&GenParams { events: 200_000, ..GenParams::default() }));
    let server = serve::spawn(
        ServeConfig { pacing: Pacing::Speed(1.0), ..ServeConfig::default() },
        Source::Generated(Arc::clone(&ds)),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let cfg = dir.path().join("run.toml");
    let ws = server.ws_addr();
    std::fs::write(
        &cfg,
        format!(
            "extends = \"default\"\n[feed]\nvenue = \"binance\"\nws_url = \"ws://{ws}/stream\"\nrest_url = \"http://{ws}\"\nclock = \"exchange\"\n[record]\ndir = \"{}\"\n",
            rec.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_statarb"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3_000));
    assert!(Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap().success());
    let st = wait(&mut child, Duration::from_secs(10));
    assert!(!st.success(), "killed: {st:?}");
    server.stop();

    let mut files: Vec<PathBuf> = std::fs::read_dir(&rec).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no recording file");
    // A file cut by the kill decompresses up to its last sync flush.
    let mut lines = 0;
    for f in &files {
        let r = BufReader::new(MultiGzDecoder::new(std::fs::File::open(f).unwrap()));
        lines += r.lines().map_while(Result::ok).filter(|l| !l.is_empty()).count();
    }
    assert!(lines > 100, "{lines} lines survived the kill");
    let evt = dir.path().join("cut.evt");
    let mut args = vec!["import".to_string(), "--out".into(), evt.display().to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let o = Command::new(env!("CARGO_BIN_EXE_statarb")).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::metadata(&evt).unwrap().len() > 0);
}
