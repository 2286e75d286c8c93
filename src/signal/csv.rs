//! The Kalman hedge ratio over a CSV file, streaming: the engine of
//! `statarb kalman --input FILE.csv --y COL --x COL [--delta D] [--ve V] [--p0 P]
//! [--output FILE.csv] [--skip-bad]`.
//!
//! The input has a header; `y` and `x` are chosen by column name. Every input row is
//! written back unchanged (all columns, in order) with five columns appended,
//! [`OUTPUT_COLUMNS`] = `beta,alpha,e,q,z`, the [`KalmanOutput`] of that row (see
//! [`Kalman::update`] for their meaning). Numbers are printed with Rust's `{}` for
//! `f64`, the shortest string that parses back to the same `f64`, so nothing is lost
//! between this output and any reader.
//!
//! Rows are handled one at a time through one reused [`csv::ByteRecord`] and one reused
//! number buffer, so memory does not grow with the file; a row (the header included)
//! longer than [`MAX_ROW_BYTES`] is [`CsvError::LineTooLong`], found before it is
//! buffered ([`CappedRecords`]), so that an endless header (`/dev/zero`) fails at once
//! instead of growing. Header names are matched trimmed of white space, and a UTF-8 byte
//! order mark before the header is dropped.
//!
//! - A row whose `x` or `y` is not a finite number (empty, text, `NaN`, `inf`), or whose
//!   field count differs from the header's, is an error naming its 1-based line (the
//!   header is line 1); with `skip_bad` it is dropped instead (not written) and counted.
//! - A row the filter rejects although its numbers are finite (its `Q` is not positive
//!   and finite, or the correction would break the covariance) is written with the five
//!   output fields empty and counted.
//!
//! [`read_xy`] reads the same two columns, with the same handling of bad rows, into
//! memory for `statarb kalman --fit` ([`crate::signal::fit`]).

use std::fmt::Write as _;
use std::io::{Read, Write};

use csv::{ReaderBuilder, WriterBuilder};
use thiserror::Error;

use crate::lines::{too_long, CappedRecords};
use crate::signal::kalman::{Kalman, KalmanError, KalmanOutput, KalmanParams};

/// Longest input row, the header included, in bytes.
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// Names of the appended columns, in order.
pub const OUTPUT_COLUMNS: [&str; 5] = ["beta", "alpha", "e", "q", "z"];

/// What to filter and how.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// Name of the dependent column (`y = beta * x + alpha`).
    pub y: String,
    /// Name of the regressor column.
    pub x: String,
    /// Filter parameters (validated by [`filter_csv`]).
    pub params: KalmanParams,
    /// Drop and count malformed rows instead of failing on the first one.
    pub skip_bad: bool,
}

/// Row counts of one run.
///
/// `rows - written` rows were malformed and dropped (only with `skip_bad`); `skipped`
/// counts every row without filter output: the dropped ones plus those written with
/// empty output fields because the filter rejected them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CsvStats {
    /// Data rows read (the header excluded).
    pub rows: u64,
    /// Rows written to the output (the header excluded).
    pub written: u64,
    /// Rows without filter output: malformed rows dropped under `skip_bad`, and rows
    /// the filter rejected.
    pub skipped: u64,
}

/// Why [`filter_csv`] stopped.
#[derive(Debug, Error)]
pub enum CsvError {
    /// The filter parameters are invalid.
    #[error(transparent)]
    Params(#[from] KalmanError),
    /// The header has no column of that name.
    #[error("no column `{column}` in the input header (columns: {available})")]
    MissingColumn {
        /// The requested name.
        column: String,
        /// The header's names, comma separated.
        available: String,
    },
    /// A value of the `x` or `y` column is not a finite number.
    #[error("line {line}: column `{column}`: `{value}` is not a finite number")]
    BadValue {
        /// 1-based line of the row in the input (the header is line 1).
        line: u64,
        /// Column name.
        column: String,
        /// The field as read (lossily decoded as UTF-8).
        value: String,
    },
    /// A row has a different number of fields than the header.
    #[error("line {line}: {found} fields, but the header has {expected}")]
    Ragged {
        /// 1-based line of the row in the input.
        line: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// A row (or the header) is longer than [`MAX_ROW_BYTES`].
    #[error("line {line}: a row longer than {max} bytes")]
    LineTooLong {
        /// 1-based line where the row starts.
        line: u64,
        /// The bound.
        max: usize,
    },
    /// Reading or writing CSV failed (I/O error, malformed quoting).
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// Flushing the output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the Kalman filter down `input` and writes `output`; see the module
/// documentation for the format and the handling of bad rows.
///
/// The output is flushed before returning; on error it holds the rows before the
/// failing one (as far as they left the CSV writer's buffer).
pub fn filter_csv<R: Read, W: Write>(input: R, output: W, opts: &CsvOptions) -> Result<CsvStats, CsvError> {
    let mut kalman = Kalman::new(&opts.params)?;
    // flexible: field counts are checked here, so that a ragged row can be skipped.
    let mut rdr = reader(input);
    let mut wtr = WriterBuilder::new().from_writer(output);

    let mut rec = rdr.byte_headers().map_err(read_err)?.clone();
    let width = rec.len();
    let yi = column(&rec, &opts.y)?;
    let xi = column(&rec, &opts.x)?;
    for name in OUTPUT_COLUMNS {
        rec.push_field(name.as_bytes());
    }
    wtr.write_byte_record(&rec)?;

    let mut stats = CsvStats::default();
    let mut num = String::with_capacity(32);
    while rdr.read_byte_record(&mut rec).map_err(read_err)? {
        stats.rows += 1;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() != width {
            if opts.skip_bad {
                stats.skipped += 1;
                continue;
            }
            return Err(CsvError::Ragged { line, expected: width, found: rec.len() });
        }
        let (y, x) = match (parse(&rec[yi]), parse(&rec[xi])) {
            (Some(y), Some(x)) => (y, x),
            (y, _) => {
                if opts.skip_bad {
                    stats.skipped += 1;
                    continue;
                }
                let (i, column) = if y.is_none() { (yi, &opts.y) } else { (xi, &opts.x) };
                return Err(CsvError::BadValue {
                    line,
                    column: column.clone(),
                    value: String::from_utf8_lossy(&rec[i]).into_owned(),
                });
            }
        };
        match kalman.update(x, y) {
            Some(KalmanOutput { beta, alpha, e, q, z, .. }) => {
                for v in [beta, alpha, e, q, z] {
                    num.clear();
                    // Writing into a String cannot fail.
                    let _ = write!(num, "{v}");
                    rec.push_field(num.as_bytes());
                }
            }
            None => {
                stats.skipped += 1;
                for _ in OUTPUT_COLUMNS {
                    rec.push_field(b"");
                }
            }
        }
        wtr.write_byte_record(&rec)?;
        stats.written += 1;
    }
    wtr.flush()?;
    Ok(stats)
}

/// Reads the `x` and `y` columns of `input` into pairs `(x, y)`, in row order, with
/// the header and the bad-row rules of [`filter_csv`]; in the stats, `written` counts
/// the pairs returned and `skipped` the rows dropped under `skip_bad`.
pub fn read_xy<R: Read>(input: R, y: &str, x: &str, skip_bad: bool) -> Result<(Vec<(f64, f64)>, CsvStats), CsvError> {
    let mut rdr = reader(input);
    let mut rec = rdr.byte_headers().map_err(read_err)?.clone();
    let width = rec.len();
    let yi = column(&rec, y)?;
    let xi = column(&rec, x)?;
    let mut stats = CsvStats::default();
    let mut pairs = Vec::new();
    while rdr.read_byte_record(&mut rec).map_err(read_err)? {
        stats.rows += 1;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() != width {
            if skip_bad {
                stats.skipped += 1;
                continue;
            }
            return Err(CsvError::Ragged { line, expected: width, found: rec.len() });
        }
        match (parse(&rec[yi]), parse(&rec[xi])) {
            (Some(yv), Some(xv)) => pairs.push((xv, yv)),
            _ if skip_bad => stats.skipped += 1,
            (yv, _) => {
                let (i, name) = if yv.is_none() { (yi, y) } else { (xi, x) };
                return Err(CsvError::BadValue {
                    line,
                    column: name.to_owned(),
                    value: String::from_utf8_lossy(&rec[i]).into_owned(),
                });
            }
        }
    }
    stats.written = pairs.len() as u64;
    Ok((pairs, stats))
}

/// The CSV reader of both entry points: rows bounded, BOM dropped, field counts
/// checked by the caller (flexible), so that a ragged row can be skipped.
fn reader<R: Read>(input: R) -> csv::Reader<CappedRecords<R>> {
    ReaderBuilder::new().has_headers(true).flexible(true).from_reader(CappedRecords::new(input, MAX_ROW_BYTES, true))
}

/// A read error: an over-long row is [`CsvError::LineTooLong`].
fn read_err(e: csv::Error) -> CsvError {
    match e.kind() {
        csv::ErrorKind::Io(io) => match too_long(io) {
            Some(t) => CsvError::LineTooLong { line: t.line, max: t.max },
            None => CsvError::Csv(e),
        },
        _ => CsvError::Csv(e),
    }
}

/// Index of the header field `name`, names compared trimmed of ASCII white space.
fn column(header: &csv::ByteRecord, name: &str) -> Result<usize, CsvError> {
    header.iter().position(|h| h.trim_ascii() == name.trim().as_bytes()).ok_or_else(|| CsvError::MissingColumn {
        column: name.to_owned(),
        available: header.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect::<Vec<_>>().join(", "),
    })
}

/// A field as a finite `f64`; surrounding ASCII whitespace is ignored.
#[inline]
fn parse(field: &[u8]) -> Option<f64> {
    let v: f64 = std::str::from_utf8(field).ok()?.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(skip_bad: bool) -> CsvOptions {
        CsvOptions { y: "b".into(), x: "a".into(), params: KalmanParams::default(), skip_bad }
    }

    fn run(input: &str, o: &CsvOptions) -> Result<(String, CsvStats), CsvError> {
        let mut out = Vec::new();
        let stats = filter_csv(input.as_bytes(), &mut out, o)?;
        Ok((String::from_utf8(out).expect("utf-8 output"), stats))
    }

    /// The filter's outputs for the given (x, y), as the five printed fields.
    fn expected(pairs: &[(f64, f64)]) -> Vec<String> {
        let mut k = Kalman::new(&KalmanParams::default()).expect("valid");
        pairs
            .iter()
            .map(|&(x, y)| {
                let o = k.update(x, y).expect("accepted");
                format!("{},{},{},{},{}", o.beta, o.alpha, o.e, o.q, o.z)
            })
            .collect()
    }

    #[test]
    fn passes_extra_columns_through_and_appends_outputs() {
        let input = "date,a,note,b\n20240101,10,\"x, quoted\",21\n20240102,11.5,,23.25\n";
        let (out, stats) = run(input, &opts(false)).expect("ok");
        let exp = expected(&[(10.0, 21.0), (11.5, 23.25)]);
        let want = format!(
            "date,a,note,b,beta,alpha,e,q,z\n\
             20240101,10,\"x, quoted\",21,{}\n\
             20240102,11.5,,23.25,{}\n",
            exp[0], exp[1]
        );
        assert_eq!(out, want);
        assert_eq!(stats, CsvStats { rows: 2, written: 2, skipped: 0 });
    }

    #[test]
    fn output_numbers_round_trip_exactly() {
        let input = "a,b\n16.1,22.95\n15.98,22.78\n16.1,22.94\n";
        let (out, _) = run(input, &opts(false)).expect("ok");
        let mut k = Kalman::new(&KalmanParams::default()).expect("valid");
        for (line, (x, y)) in out.lines().skip(1).zip([(16.1, 22.95), (15.98, 22.78), (16.1, 22.94)]) {
            let o = k.update(x, y).expect("accepted");
            let f: Vec<f64> = line.split(',').skip(2).map(|s| s.parse().expect("number")).collect();
            assert_eq!(f, [o.beta, o.alpha, o.e, o.q, o.z]);
        }
    }

    #[test]
    fn header_only_input_writes_the_header() {
        let (out, stats) = run("a,b\n", &opts(false)).expect("ok");
        assert_eq!(out, "a,b,beta,alpha,e,q,z\n");
        assert_eq!(stats, CsvStats::default());
        // Without a trailing newline too.
        let (out, _) = run("a,b", &opts(false)).expect("ok");
        assert_eq!(out, "a,b,beta,alpha,e,q,z\n");
    }

    #[test]
    fn missing_column_is_named() {
        let err = run("a,c\n1,2\n", &opts(false)).expect_err("no b");
        match &err {
            CsvError::MissingColumn { column, available } => {
                assert_eq!((column.as_str(), available.as_str()), ("b", "a, c"));
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(err.to_string(), "no column `b` in the input header (columns: a, c)");
        let o = CsvOptions { x: "zz".into(), ..opts(false) };
        let err = run("a,b\n", &o).expect_err("no zz");
        assert!(matches!(err, CsvError::MissingColumn { column, .. } if column == "zz"));
        // Completely empty input has no header at all.
        assert!(matches!(run("", &opts(false)), Err(CsvError::MissingColumn { .. })));
    }

    #[test]
    fn invalid_params_are_rejected() {
        let o = CsvOptions { params: KalmanParams { delta: 1.5, ..KalmanParams::default() }, ..opts(false) };
        let err = run("a,b\n", &o).expect_err("bad delta");
        assert_eq!(err.to_string(), "kalman.delta must be in (0,1), got 1.5");
    }

    #[test]
    fn bad_value_names_line_and_column() {
        let input = "a,b\n1,2\n2,3\n3,oops\n4,5\n";
        match run(input, &opts(false)).expect_err("bad b") {
            CsvError::BadValue { line, column, value } => {
                assert_eq!((line, column.as_str(), value.as_str()), (4, "b", "oops"));
            }
            e => panic!("{e:?}"),
        }
        for (bad, col) in [("a,b\n1,2\n,3\n", "a"), ("a,b\n1,2\nNaN,3\n", "a"), ("a,b\n1,2\n2,inf\n", "b")] {
            match run(bad, &opts(false)).expect_err(bad) {
                CsvError::BadValue { line, column, .. } => {
                    assert_eq!((line, column.as_str()), (3, col))
                }
                e => panic!("{e:?}"),
            }
        }
        let err = run("a,b\n1,x y\n", &opts(false)).expect_err("bad");
        assert_eq!(err.to_string(), "line 2: column `b`: `x y` is not a finite number");
        // Whitespace around a number is accepted, and passed through untouched.
        let (out, _) = run("a,b\n 1 , 2\n", &opts(false)).expect("ok");
        assert!(out.lines().nth(1).expect("row").starts_with(" 1 , 2,"), "{out}");
    }

    #[test]
    fn line_numbers_count_physical_lines() {
        // A quoted field spanning two lines pushes the following rows down one line.
        let input = "n,a,b\n\"two\nlines\",1,2\nx,2,bad\n";
        match run(input, &opts(false)).expect_err("bad") {
            CsvError::BadValue { line, .. } => assert_eq!(line, 4),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn skip_bad_drops_and_counts() {
        let input = "a,b\n10,21\nx,22\n11,\n1,2,3\n12,25\n";
        let (out, stats) = run(input, &opts(true)).expect("ok");
        let exp = expected(&[(10.0, 21.0), (12.0, 25.0)]);
        assert_eq!(out, format!("a,b,beta,alpha,e,q,z\n10,21,{}\n12,25,{}\n", exp[0], exp[1]));
        assert_eq!(stats, CsvStats { rows: 5, written: 2, skipped: 3 });
    }

    #[test]
    fn ragged_rows_are_errors() {
        match run("a,b\n1,2\n1,2,3\n", &opts(false)).expect_err("ragged") {
            CsvError::Ragged { line, expected, found } => {
                assert_eq!((line, expected, found), (3, 2, 3))
            }
            e => panic!("{e:?}"),
        }
        let err = run("a,b,c\n1,2,3\n4,5\n", &opts(false)).expect_err("short");
        assert_eq!(err.to_string(), "line 3: 2 fields, but the header has 3");
        let (out, stats) = run("a,b,c\n1,2,3\n4,5\n", &opts(true)).expect("skipped");
        assert_eq!(out.lines().count(), 2);
        assert_eq!(stats, CsvStats { rows: 2, written: 1, skipped: 1 });
    }

    #[test]
    fn read_xy_reads_the_pairs_with_the_same_rules() {
        let input = "date,a,note,b\n1,10,x,21\n2,11.5,,23.25\n";
        let (pairs, stats) = read_xy(input.as_bytes(), "b", "a", false).expect("ok");
        assert_eq!(pairs, [(10.0, 21.0), (11.5, 23.25)]);
        assert_eq!(stats, CsvStats { rows: 2, written: 2, skipped: 0 });
        let bad = "a,b\n10,21\nx,22\n1,2,3\n12,25\n";
        let err = read_xy(bad.as_bytes(), "b", "a", false).expect_err("bad a");
        assert_eq!(err.to_string(), "line 3: column `a`: `x` is not a finite number");
        let (pairs, stats) = read_xy(bad.as_bytes(), "b", "a", true).expect("skipped");
        assert_eq!(pairs, [(10.0, 21.0), (12.0, 25.0)]);
        assert_eq!(stats, CsvStats { rows: 4, written: 2, skipped: 2 });
        assert!(matches!(read_xy("a,c\n".as_bytes(), "b", "a", false), Err(CsvError::MissingColumn { .. })));
    }

    #[test]
    fn an_endless_header_is_an_error_not_growth() {
        let err = filter_csv(std::io::repeat(0), std::io::sink(), &opts(false)).expect_err("endless");
        assert!(matches!(err, CsvError::LineTooLong { line: 1, max: MAX_ROW_BYTES }), "{err:?}");
        let err = read_xy(std::io::repeat(b'a'), "b", "a", false).expect_err("endless");
        assert_eq!(err.to_string(), format!("line 1: a row longer than {MAX_ROW_BYTES} bytes"));
        // A long row after a good one names its line.
        let long = format!("a,b\n1,2\n{}\n", "9".repeat(MAX_ROW_BYTES + 1));
        let err = read_xy(long.as_bytes(), "b", "a", true).expect_err("long row");
        assert!(matches!(err, CsvError::LineTooLong { line: 3, .. }), "{err:?}");
    }

    #[test]
    fn header_names_are_trimmed_and_a_bom_dropped() {
        let (pairs, _) = read_xy("\u{feff} a , b \n1,2\n".as_bytes(), "b", "a", false).expect("trimmed");
        assert_eq!(pairs, [(1.0, 2.0)]);
        let (out, _) = run("\u{feff}a,b\r\n1,2\r\n", &opts(false)).expect("bom");
        assert!(out.starts_with("a,b,beta"), "{out}");
    }

    #[test]
    fn rows_the_filter_rejects_are_written_empty() {
        // x = 1e300 is finite but makes Q overflow: the filter skips it.
        let input = "a,b\n10,21\n1e300,1\n12,25\n";
        let (out, stats) = run(input, &opts(false)).expect("ok");
        let exp = expected(&[(10.0, 21.0), (12.0, 25.0)]);
        assert_eq!(out, format!("a,b,beta,alpha,e,q,z\n10,21,{}\n1e300,1,,,,,\n12,25,{}\n", exp[0], exp[1]));
        assert_eq!(stats, CsvStats { rows: 3, written: 3, skipped: 1 });
    }
}
