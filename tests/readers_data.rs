//! Issue 10 (readers): absurd but well-formed values are refused and counted per
//! reason (item 6), overlapping inputs give each trade once (12d), CSV header names are
//! trimmed (12e) and a UTF-8 BOM is accepted (12f), and endless input is bounded (2).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use statarb::import::{detect, import_file, import_files, Format, ImportOptions, ImportStats, Limits};
use statarb::lines::DEFAULT_MAX_ROW_BYTES;
use statarb::types::{Decimal, Instrument};

fn insts() -> Vec<Instrument> {
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    vec![Instrument::new("BTCUSDT", d("0.01"), d("0.00001")), Instrument::new("ETHUSDT", d("0.01"), d("0.0001"))]
}

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(text).unwrap();
    p
}

const TRADES: &str = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n";

#[test]
fn absurd_values_are_rejected_and_counted_per_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        "binance,BTCUSDT,1723161255745000,1723161255746000,1,sell,61828.01,0.001", // good
        "binance,BTCUSDT,1723161255745000,1723161255746000,2,sell,0,0.001",        // zero price
        "binance,BTCUSDT,1723161255745000,1723161255746000,3,buy,92233720368547758.07,0.001",
        "binance,BTCUSDT,1723161255745000,1723161255746000,4,buy,61828.01,0", // zero size
        "binance,BTCUSDT,4102444800000000,1723161255746000,5,buy,61828.01,0.001", // E in 2100
        "binance,BTCUSDT,1723161255745000,1723161255746000,6,buy,99999999999999999999,1", // no fit
        "binance,BTCUSDT,1000,1000,7,buy,61828.01,0.001",                     // 1970
        "binance,BTCUSDT,1723171255745000,1723171255746000,8,buy,61828.01,0.001", // 10000 s jump
        "binance,BTCUSDT,1723161255745000,1723161255747000,9,buy,61828.01,0.001", // good again
        "binance,BTCUSDT,1723161255745000,1723175655747000,10,buy,61828.01,0.001", // 4 h skew
    ];
    let text = format!("{TRADES}{}\n", rows.join("\n"));
    let p = write(dir.path(), "trades.csv", text.as_bytes());
    let opts =
        ImportOptions { limits: Limits { max_jump: 3600 * 1_000_000_000, ..Limits::default() }, ..Default::default() };
    let mut st = ImportStats::default();
    let evs = import_file(&p, Format::TardisTrades, &insts(), &opts, &mut st).unwrap();
    assert_eq!(evs.len(), 2, "{st}");
    let r = st.rejected;
    assert_eq!((r.price, r.size, r.time, r.jump, r.skew), (3, 1, 2, 1, 1), "{st}");
    assert_eq!(st.skipped_bad_row, 8);
    let summary = st.to_string();
    assert!(
        summary.contains(
            "bad rows rejected for: 3 price, 1 size, 2 time out of range, 1 time jump, 1 exchange/receive skew"
        ),
        "{summary}"
    );

    // A recording message with `E` in the year 2100 and a trade at i64::MAX ticks.
    let rec = "1723161254476369000 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":4102444800000,\"s\":\"BTCUSDT\",\"t\":1,\"p\":\"61828.01\",\"q\":\"0.001\",\"T\":1,\"m\":false}}\n\
               1723161254476369001 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":1723161254476,\"s\":\"BTCUSDT\",\"t\":2,\"p\":\"92233720368547758.07\",\"q\":\"0.001\",\"T\":1,\"m\":false}}\n\
               1723161254476369002 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":1723161254476,\"s\":\"BTCUSDT\",\"t\":3,\"p\":\"61828.01\",\"q\":\"0.001\",\"T\":1,\"m\":false}}\n\
               9223372036854775807 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":1723161254476,\"s\":\"BTCUSDT\",\"t\":4,\"p\":\"61828.01\",\"q\":\"0.001\",\"T\":1,\"m\":false}}\n";
    let p = write(dir.path(), "rec.txt", rec.as_bytes());
    let mut st = ImportStats::default();
    let evs = import_file(&p, Format::Recording, &insts(), &ImportOptions::default(), &mut st).unwrap();
    assert_eq!(evs.len(), 1, "{st}");
    assert_eq!((st.rejected.time, st.rejected.price), (2, 1), "{st}");
}

#[test]
fn a_real_gap_longer_than_the_jump_bound_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    // Two days of data with a 2-day gap: the first row after the gap is refused, the
    // second confirms the gap and reading goes on.
    let day = 86_400_000_000i64;
    let t0 = 1723161255745000i64;
    let mut text = TRADES.to_string();
    for (i, t) in [t0, t0 + 1, t0 + 2 * day, t0 + 2 * day + 1, t0 + 2 * day + 2].iter().enumerate() {
        text.push_str(&format!("binance,BTCUSDT,{t},{t},{i},buy,61828.01,0.001\n"));
    }
    let p = write(dir.path(), "gap.csv", text.as_bytes());
    let mut st = ImportStats::default();
    let evs = import_file(&p, Format::TardisTrades, &insts(), &ImportOptions::default(), &mut st).unwrap();
    assert_eq!((evs.len(), st.rejected.jump), (4, 1), "{st}");
}

#[test]
fn overlapping_inputs_give_each_trade_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/BTCUSDT-trades-2024-08-08.csv");
    let text = std::fs::read(&src).unwrap();
    let a = write(dir.path(), "BTCUSDT-trades-2024-08-08.csv", &text);
    // The second file overlaps the first: its last half plus one trade of its own.
    let lines: Vec<&[u8]> = text.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    let mut second: Vec<u8> = lines[lines.len() / 2..].join(&b'\n');
    second.extend_from_slice(b"\n99,61837.63000000,0.02000000,1236.75260000,1723161299999,True,True\n");
    let b = write(dir.path(), "BTCUSDT-trades-2024-08-08b.csv", &second);
    let one = import_files(std::slice::from_ref(&a), &insts(), &ImportOptions::default()).unwrap();
    let two = import_files(std::slice::from_ref(&b), &insts(), &ImportOptions::default()).unwrap();
    let both = import_files(&[a, b], &insts(), &ImportOptions::default()).unwrap();
    assert_eq!(both.events.len(), one.events.len() + 1, "only the new trade is added");
    assert_eq!(both.reports[0].stats.duplicates, 0);
    assert_eq!(both.reports[1].stats.duplicates, two.events.len() as u64 - 1);
    assert_eq!(both.total().duplicates + both.events.len() as u64, both.total().events);
    assert!(both.reports[1].stats.to_string().contains("duplicate trades dropped"));
}

#[test]
fn tardis_headers_with_spaces_and_a_bom_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let row = "binance,BTCUSDT,1723161255745000,1723161255746000,1,sell,61828.01,0.001\n";
    let spaced = format!("exchange, symbol, timestamp , local_timestamp,id,side,price,amount\n{row}");
    let bom = format!("\u{feff}{TRADES}{row}");
    for (name, text) in [("spaced.csv", spaced), ("bom.csv", bom)] {
        let p = write(dir.path(), name, text.as_bytes());
        assert_eq!(detect(&p).unwrap(), Format::TardisTrades, "{name}");
        let mut st = ImportStats::default();
        let evs = import_file(&p, Format::TardisTrades, &insts(), &ImportOptions::default(), &mut st).unwrap();
        assert_eq!((evs.len(), st.skipped_bad_row), (1, 0), "{name}: {st}");
    }
    // Binance futures headers too.
    let p = write(
        dir.path(),
        "BTCUSDT-bookTicker-2024-08-08.csv",
        "\u{feff}update_id, best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n\
         9001,61837.63,3.78826,61837.64,1.54698,1723161255342,1723161255345\n"
            .as_bytes(),
    );
    assert_eq!(detect(&p).unwrap(), Format::BinanceFuturesBookTicker);
    let mut st = ImportStats::default();
    let evs = import_file(&p, Format::BinanceFuturesBookTicker, &insts(), &ImportOptions::default(), &mut st).unwrap();
    assert_eq!((evs.len(), st.rows), (2, 1), "{st}");
}

#[test]
fn endless_csv_input_is_an_error_at_line_one() {
    // `/dev/zero` as a Tardis or Binance file: an error, not growth.
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "zeros.csv", &vec![0u8; DEFAULT_MAX_ROW_BYTES * 4]);
    let mut st = ImportStats::default();
    for f in [Format::TardisTrades, Format::BinanceTrades] {
        let opts = ImportOptions { symbol: Some("BTCUSDT".into()), ..Default::default() };
        let err = import_file(&p, f, &insts(), &opts, &mut st).unwrap_err();
        assert!(err.to_string().ends_with(":1: a row longer than 65536 bytes (see --max-line-bytes)"), "{err}");
    }
}

#[test]
fn cli_import_takes_max_line_bytes_and_shows_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{TRADES}binance,BTCUSDT,1723161255745000,1723161255746000,1,sell,61828.01,0.001\n\
         binance,BTCUSDT,1723161255745000,1723161255746000,2,sell,0,0.001\n"
    );
    let p = write(dir.path(), "t.csv", text.as_bytes());
    let out = dir.path().join("o.evt");
    let run = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_statarb"));
        c.args(["import", "--out"]).arg(&out).args(extra).arg(&p);
        c.output().unwrap()
    };
    let o = run(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("bad rows rejected for: 1 price"), "{err}");
    let o = run(&["--max-line-bytes", "40"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("t.csv:1: a row longer than 40 bytes"), "{err}");
}
