//! Issue 10, item 2: a small file must not take unbounded memory. One test per binary
//! process, so that the peak RSS it reads (`VmHWM`) is this test's alone.

use std::fs::File;
use std::io::{BufWriter, Write};

use flate2::write::GzEncoder;
use statarb::import::{import_file, Format, ImportError, ImportOptions, ImportStats};
use statarb::lines::DEFAULT_MAX_LINE_BYTES;
use statarb::types::{Decimal, Instrument};

/// Peak resident memory of this process, bytes (Linux `/proc/self/status`).
fn peak_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// Streams `head`, `n` MiB of `b'a'` without a newline, then `tail` through gzip into
/// a file: nothing of the size of the line is held in memory.
fn gzip_with_huge_line(path: &std::path::Path, head: &[u8], mib: usize, tail: &[u8]) {
    let mut gz = GzEncoder::new(BufWriter::new(File::create(path).unwrap()), flate2::Compression::fast());
    gz.write_all(head).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..mib {
        gz.write_all(&chunk).unwrap();
    }
    gz.write_all(tail).unwrap();
    gz.finish().unwrap().flush().unwrap();
}

#[test]
fn a_gzip_of_one_huge_line_is_skipped_or_refused_without_buffering_it() {
    let dir = tempfile::tempdir().unwrap();
    let insts = vec![Instrument::new("BTCUSDT", "0.01".parse::<Decimal>().unwrap(), "0.00001".parse().unwrap())];
    let trade = br#"1723161254476369000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161254476,"s":"BTCUSDT","t":1,"p":"61828.01","q":"0.001","T":1723161254476,"m":false,"M":true}}"#;

    // A recording: the 200 MiB line (line 2) is a counted bad row; the lines around it import.
    let rec = dir.path().join("huge.txt.gz");
    let mut head = trade.to_vec();
    head.extend_from_slice(b"\n1723161254476369001 {\"x\":\"");
    let mut tail = b"\"}\n".to_vec();
    tail.extend_from_slice(trade);
    tail.push(b'\n');
    gzip_with_huge_line(&rec, &head, 200, &tail);
    assert!(std::fs::metadata(&rec).unwrap().len() < 4 << 20, "a small file");
    let mut st = ImportStats::default();
    let evs = import_file(&rec, Format::Recording, &insts, &ImportOptions::default(), &mut st).unwrap();
    assert_eq!(evs.len(), 2, "{st}");
    assert_eq!((st.rows, st.skipped_bad_row, st.rejected.too_long), (3, 1, 1), "{st}");
    assert_eq!(st.bad_rows[0].line, 2);
    assert!(st.bad_rows[0].reason.contains(&format!("longer than {DEFAULT_MAX_LINE_BYTES}")), "{st}");
    assert!(st.to_string().contains("1 line too long"), "{st}");

    // A Tardis CSV: the over-long row is an error naming the file and the line.
    let csv = dir.path().join("trades.csv.gz");
    let head = b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\nbinance,BTCUSDT,";
    gzip_with_huge_line(&csv, head, 200, b"\n");
    let mut st = ImportStats::default();
    let err = import_file(&csv, Format::TardisTrades, &insts, &ImportOptions::default(), &mut st).unwrap_err();
    assert!(matches!(err, ImportError::LineTooLong { line: 2, max: 65536, .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("{}:2: a row longer than 65536 bytes", csv.display())), "{err}");

    // Before the fix the recording alone took more than 200 MiB (the line, buffered).
    let peak = peak_rss();
    assert!(peak < 120 << 20, "peak RSS {} MiB", peak >> 20);
}
