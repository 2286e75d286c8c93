//! Bounded reading: every reader of text input (recordings, Tardis and Binance CSV, the
//! `kalman` CSV) holds at most one line or record of a configured maximum length, so
//! that a small file cannot take unbounded memory (a 3 MB gzip can hold a 3 GiB line,
//! and `/dev/zero` is an endless one).
//!
//! - [`BoundedLines`] reads lines into one reused buffer of at most `max` bytes; the
//!   rest of a longer line is consumed and dropped without being buffered, and the line
//!   is reported as [`Line::TooLong`] so that the caller can count it and go on.
//! - [`CappedRecords`] is a [`Read`] adapter for the `csv` crate, which has no record
//!   limit of its own: it follows record boundaries (newlines outside quoted fields, as
//!   `csv-core` parses them) and fails the read with a [`LineTooLong`] (inside an
//!   [`io::Error`] of kind [`io::ErrorKind::InvalidData`], see [`too_long`]) as soon as
//!   a record passes `max` bytes, before the `csv` reader has buffered it.
//!
//! Both strip a UTF-8 byte order mark at the start of the input (Tardis files may carry
//! one; the Unicode standard, section 23.8, calls it a signature to be ignored).

use std::io::{self, BufRead, Read};

use thiserror::Error;

/// Default longest recording line: a REST snapshot of 5000 levels per side is about
/// 200 KiB, so 1 MiB leaves room.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// Default longest CSV record: the rows of every CSV format read here are under 200 bytes.
pub const DEFAULT_MAX_ROW_BYTES: usize = 64 << 10;

/// The UTF-8 encoding of U+FEFF, the byte order mark.
const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// A line or record longer than the reader's maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("line {line}: longer than {max} bytes")]
pub struct LineTooLong {
    /// 1-based line where the line or record starts.
    pub line: u64,
    /// The maximum in bytes.
    pub max: usize,
}

/// The [`LineTooLong`] inside an I/O error from a [`CappedRecords`] (also through the
/// `csv` crate, which passes the reader's errors on), if that is what it is.
pub fn too_long(e: &io::Error) -> Option<LineTooLong> {
    e.get_ref()?.downcast_ref::<LineTooLong>().copied()
}

/// One line from [`BoundedLines::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line without its `\n` or `\r\n`.
    Text(&'a [u8]),
    /// The line was longer than the maximum: its bytes were dropped.
    TooLong {
        /// Its length in bytes, its terminator included.
        len: u64,
    },
}

/// Lines of at most `max` bytes (the terminator not counted) from a [`BufRead`], through
/// one reused buffer of at most `max + 2` bytes.
#[derive(Debug)]
pub struct BoundedLines<R> {
    inner: R,
    buf: Vec<u8>,
    /// Length of the line last returned as [`Line::Text`] (0 otherwise).
    len: usize,
    max: usize,
    line: u64,
}

impl<R: BufRead> BoundedLines<R> {
    /// Lines of `inner`, each at most `max` bytes long.
    pub fn new(inner: R, max: usize) -> Self {
        BoundedLines { inner, buf: Vec::with_capacity(max.saturating_add(2).min(1 << 16)), len: 0, max, line: 0 }
    }

    /// The 1-based number of the line last returned (0 before the first).
    #[inline]
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The line last returned as [`Line::Text`], until the next call to
    /// [`BoundedLines::next_line`] (empty if that was no text line).
    #[inline]
    pub fn current(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Bytes the line buffer has reserved: never much more than `max + 2`, whatever the
    /// input.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The next line, `Ok(None)` at the end of the input. A last line without a
    /// terminator is a line. Interrupted reads are retried.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        self.len = 0;
        // Room for `\r\n`, and on the first line for a BOM.
        let cap = self.max.saturating_add(if self.line == 0 { 2 + BOM.len() } else { 2 });
        let mut len: u64 = 0;
        let mut over = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if len == 0 {
                    return Ok(None);
                }
                break;
            }
            let (take, done) = match chunk.iter().position(|&c| c == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if !over {
                let keep = take.min(cap - self.buf.len());
                self.buf.extend_from_slice(&chunk[..keep]);
                over = keep < take;
            }
            len = len.saturating_add(take as u64);
            self.inner.consume(take);
            if done {
                break;
            }
        }
        self.line += 1;
        if !over {
            if self.line == 1 && self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            }
            let mut end = self.buf.len();
            if end > 0 && self.buf[end - 1] == b'\n' {
                end -= 1;
                if end > 0 && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            if end <= self.max {
                self.len = end;
                return Ok(Some(Line::Text(&self.buf[..end])));
            }
        }
        self.buf.clear();
        Ok(Some(Line::TooLong { len }))
    }
}

/// Where a [`CappedRecords`] is in the CSV grammar (RFC 4180, as `csv-core` reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Csv {
    /// At the start of a field.
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field (newlines are data).
    Quoted,
    /// A quote inside a quoted field: the end of the field, or the first of `""`.
    QuoteInQuoted,
}

/// A [`Read`] adapter that fails once a CSV record passes `max` bytes, and strips a
/// leading UTF-8 byte order mark (see the module docs).
///
/// With `quoting` a record ends at a newline outside a quoted field; without, at every
/// newline (for readers that parse with quoting off, so that a record is a line). The
/// error is sticky: every later read fails the same way.
#[derive(Debug)]
pub struct CappedRecords<R> {
    inner: R,
    max: usize,
    quoting: bool,
    state: Csv,
    /// Bytes of the current record so far.
    run: usize,
    /// Physical line of the next byte.
    line: u64,
    /// Line where the current record started.
    start: u64,
    /// The BOM check at the start is still to do.
    at_start: bool,
    /// The first bytes, read for the BOM check and not yet handed out.
    head: [u8; 3],
    head_pos: usize,
    head_len: usize,
    failed: Option<LineTooLong>,
}

impl<R: Read> CappedRecords<R> {
    /// Wraps `inner`; records longer than `max` bytes fail the read.
    pub fn new(inner: R, max: usize, quoting: bool) -> Self {
        CappedRecords {
            inner,
            max,
            quoting,
            state: Csv::FieldStart,
            run: 0,
            line: 1,
            start: 1,
            at_start: true,
            head: [0; 3],
            head_pos: 0,
            head_len: 0,
            failed: None,
        }
    }

    /// Reads the first three bytes into `head`, dropping them if they are a BOM.
    fn read_start(&mut self) -> io::Result<()> {
        let mut n = 0;
        while n < self.head.len() {
            match self.inner.read(&mut self.head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.at_start = false;
        self.head_len = if &self.head[..n] == BOM { 0 } else { n };
        Ok(())
    }

    /// Scans `bytes` (just read) for record ends, failing past `max`.
    fn scan(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &c in bytes {
            let end = match (self.state, c) {
                (_, b'\n') if self.state != Csv::Quoted => true,
                (Csv::FieldStart, b'"') if self.quoting => {
                    self.state = Csv::Quoted;
                    false
                }
                (Csv::Quoted, b'"') => {
                    self.state = Csv::QuoteInQuoted;
                    false
                }
                (Csv::QuoteInQuoted, b'"') => {
                    self.state = Csv::Quoted;
                    false
                }
                (Csv::Quoted, _) => false,
                (_, b',') => {
                    self.state = Csv::FieldStart;
                    false
                }
                _ => {
                    self.state = Csv::Unquoted;
                    false
                }
            };
            if c == b'\n' {
                self.line += 1;
            }
            if end {
                self.state = Csv::FieldStart;
                self.run = 0;
                self.start = self.line;
                continue;
            }
            self.run += 1;
            if self.run > self.max {
                let e = LineTooLong { line: self.start, max: self.max };
                self.failed = Some(e);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for CappedRecords<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at_start {
            self.read_start()?;
        }
        let n = if self.head_pos < self.head_len {
            let k = (self.head_len - self.head_pos).min(buf.len());
            buf[..k].copy_from_slice(&self.head[self.head_pos..self.head_pos + k]);
            self.head_pos += k;
            k
        } else {
            self.inner.read(buf)?
        };
        self.scan(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<String, u64>> {
        let mut r = BoundedLines::new(input, max);
        let mut v = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            v.push(match l {
                Line::Text(t) => Ok(String::from_utf8(t.to_vec()).unwrap()),
                Line::TooLong { len } => Err(len),
            });
        }
        v
    }

    #[test]
    fn bounded_lines_skip_what_is_too_long() {
        let input = b"\xEF\xBB\xBFab\r\nabcd\nabcdef\n\nxyz";
        assert_eq!(lines(input, 4), [Ok("ab".into()), Ok("abcd".into()), Err(7), Ok(String::new()), Ok("xyz".into())]);
        assert_eq!(lines(b"", 4), []);
        assert_eq!(lines(b"abcde", 4), [Err(5)]);
        // `\r\n` does not count against the maximum.
        assert_eq!(lines(b"abcd\r\n", 4), [Ok("abcd".into())]);
    }

    #[test]
    fn bounded_lines_do_not_buffer_a_huge_line() {
        let mut r = BoundedLines::new(io::BufReader::new(io::repeat(b'a').take(50 << 20).chain(&b"\nok\n"[..])), 1000);
        assert_eq!(r.next_line().unwrap(), Some(Line::TooLong { len: (50 << 20) + 1 }));
        assert!(r.capacity() < 4096, "{}", r.capacity());
        assert_eq!(r.next_line().unwrap(), Some(Line::Text(b"ok")));
        assert_eq!(r.next_line().unwrap(), None);
        assert_eq!(r.line(), 2);
    }

    fn read_capped(input: &[u8], max: usize, quoting: bool, chunk: usize) -> Result<Vec<u8>, LineTooLong> {
        let mut r = CappedRecords::new(input, max, quoting);
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(too_long(&e).expect("a LineTooLong")),
            }
        }
    }

    #[test]
    fn capped_records_follow_quoted_fields() {
        for chunk in [1, 2, 7, 4096] {
            assert_eq!(read_capped(b"\xEF\xBB\xBFa,b\n1,2\n", 3, true, chunk), Ok(b"a,b\n1,2\n".to_vec()));
            assert_eq!(read_capped(b"\xEF\xBB", 3, true, chunk), Ok(b"\xEF\xBB".to_vec()));
            // A quoted newline does not end the record: line 2 starts a 10-byte record.
            let quoted = b"a,b\n\"x\ny\",1234\n";
            assert_eq!(read_capped(quoted, 10, true, chunk).map(|v| v.len()), Ok(quoted.len()));
            assert_eq!(read_capped(quoted, 9, true, chunk), Err(LineTooLong { line: 2, max: 9 }));
            // Without quoting every newline ends a record.
            assert_eq!(read_capped(quoted, 7, false, chunk).map(|v| v.len()), Ok(quoted.len()));
            // Escaped quotes stay inside the field; a quote inside an unquoted field is data.
            assert!(read_capped(b"\"a\"\"b\"\nab\"c\nz\n", 6, true, chunk).is_ok());
            assert_eq!(read_capped(b"ok\nab\"c\n12345\n", 4, true, chunk), Err(LineTooLong { line: 3, max: 4 }));
        }
    }

    #[test]
    fn an_endless_record_fails_without_growing() {
        let mut r = CappedRecords::new(io::repeat(0), 1 << 16, true);
        let mut sink = [0u8; 8192];
        let e = loop {
            if let Err(e) = r.read(&mut sink) {
                break e;
            }
        };
        assert_eq!(too_long(&e), Some(LineTooLong { line: 1, max: 1 << 16 }));
        assert_eq!(e.to_string(), "line 1: longer than 65536 bytes");
        assert!(r.read(&mut sink).is_err(), "sticky");
        assert_eq!(too_long(&io::Error::other("x")), None);
    }
}
