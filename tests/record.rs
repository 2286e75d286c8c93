//! The recorder: order, rotation, crash-readability, non-blocking drops.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::read::{GzDecoder, MultiGzDecoder};
use statarb::feed::record::{PoolConfig, RecordStats, Recorder, RotatePolicy};

fn msg(i: usize) -> String {
    format!(r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","t":{i},"p":"61000.{:02}"}}}}"#, i % 100)
}

fn gz_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .collect();
    // Names carry the sequence number last: sort by it.
    v.sort_by_key(|p| {
        let s = p.file_stem().unwrap().to_str().unwrap().to_string();
        s.rsplit('-').next().unwrap().parse::<u64>().unwrap()
    });
    v
}

/// Decompresses a whole, finished file (strictly).
fn read_gz(p: &Path) -> String {
    let mut s = String::new();
    GzDecoder::new(std::fs::File::open(p).unwrap()).read_to_string(&mut s).unwrap();
    s
}

#[test]
fn records_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (tap, h) = Recorder::spawn(dir.path(), "rec", RotatePolicy::default()).unwrap();
    let n = 5_000;
    let mut sent = 0;
    for i in 0..n {
        // Retry on a (rare) full pool: this test is about order, not drops.
        while !tap.record(1_000 + i as i64, msg(i).as_bytes()) {
            std::thread::sleep(Duration::from_micros(50));
        }
        sent += 1;
    }
    let stats: RecordStats = h.stop().unwrap();
    assert_eq!(stats.recorded, sent);
    assert_eq!(stats.files, 1);
    let files = gz_files(dir.path());
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_str().unwrap();
    // prefix-YYYYmmddTHHMMSS-N.gz
    assert!(
        name.starts_with("rec-") && name.ends_with("-0.gz") && name.len() == "rec-20240808T235413-0.gz".len(),
        "{name}"
    );
    let text = read_gz(&files[0]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("{} {}", 1_000 + i, msg(i)));
    }
    assert_eq!(stats.bytes, text.len() as u64);
}

#[test]
fn rotates_by_size_into_valid_files() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RotatePolicy { max_bytes: 20_000, max_age_secs: 0 };
    let (tap, h) = Recorder::spawn(dir.path(), "rot", policy).unwrap();
    let n = 3_000;
    for i in 0..n {
        while !tap.record(i as i64, msg(i).as_bytes()) {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let stats = h.stop().unwrap();
    let files = gz_files(dir.path());
    assert!(files.len() >= 5, "{} files", files.len());
    assert_eq!(stats.files as usize, files.len());
    let mut all = String::new();
    for f in &files {
        let t = read_gz(f); // each is a complete gzip member
        assert!(t.len() as u64 >= 20_000 || f == files.last().unwrap());
        assert!(t.len() < 20_000 + 200);
        all.push_str(&t);
    }
    let expect: String = (0..n).map(|i| format!("{} {}\n", i, msg(i))).collect();
    assert_eq!(all, expect);
}

#[test]
fn file_is_readable_while_writer_runs() {
    let dir = tempfile::tempdir().unwrap();
    let pool = PoolConfig::uniform(256, 4096);
    let (tap, h) = Recorder::spawn_with_pool(dir.path(), "live", RotatePolicy::default(), pool).unwrap();
    for i in 0..100 {
        assert!(tap.record(i, msg(i as usize).as_bytes()));
    }
    std::thread::sleep(Duration::from_millis(1_500));
    // Simulated crash: no stop; read what is on disk now.
    let files = gz_files(dir.path());
    assert_eq!(files.len(), 1);
    let mut buf = Vec::new();
    let res = MultiGzDecoder::new(std::fs::File::open(&files[0]).unwrap()).read_to_end(&mut buf);
    assert!(res.is_err(), "an unfinished gzip has no trailer yet");
    let text = String::from_utf8(buf).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 100, "everything up to the last sync flush is readable");
    assert_eq!(lines[99], format!("99 {}", msg(99)));
    assert!(h.stats().flushes >= 1);
    drop(tap);
    let s = h.stop().unwrap();
    assert_eq!(s.recorded, 100);
}

#[test]
fn exhausted_pool_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let pool = PoolConfig::uniform(4, 256);
    let (tap, h) = Recorder::spawn_with_pool(dir.path(), "ex", RotatePolicy::default(), pool).unwrap();
    let n = 200_000u64;
    let big = vec![b'x'; 300];
    let t0 = Instant::now();
    let mut ok = 0u64;
    let mut worst = Duration::ZERO;
    for i in 0..n {
        let t = Instant::now();
        if tap.record(i as i64, msg(i as usize).as_bytes()) {
            ok += 1;
        }
        worst = worst.max(t.elapsed());
    }
    assert!(!tap.record(0, &big));
    let elapsed = t0.elapsed();
    let s = h.stop().unwrap();
    assert!(s.dropped_full > 0, "a 4-buffer pool cannot keep up with a tight loop");
    assert_eq!(s.dropped_too_big, 1);
    assert_eq!(s.dropped, n - ok + 1);
    assert_eq!(s.recorded, ok);
    assert!(elapsed < Duration::from_secs(2), "record() must not block: {elapsed:?}");
    assert!(worst < Duration::from_millis(50), "worst record() call {worst:?}");
    // What was recorded is in order.
    let text = read_gz(&gz_files(dir.path())[0]);
    let (gaps, msgs): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.contains("statarb_gap"));
    let ts: Vec<i64> = msgs.iter().map(|l| l.split(' ').next().unwrap().parse().unwrap()).collect();
    assert_eq!(ts.len() as u64, ok);
    assert!(ts.windows(2).all(|w| w[0] < w[1]));
    // Every drop is accounted for by a gap marker in the file.
    let marked: u64 =
        gaps.iter().map(|l| l.rsplit(':').next().unwrap().trim_end_matches('}').parse::<u64>().unwrap()).sum();
    assert_eq!(marked, s.dropped);
    assert_eq!(gaps.len() as u64, s.gap_markers);
}
