//! A compact binary event file: the instrument table plus fixed-size event records, for
//! fast repeated replays without re-parsing exchange JSON or re-running the generator.
//!
//! # Layout (version 1)
//!
//! Every integer is little-endian. The header has a variable length (symbols); the
//! records after it are fixed-size, so a reader streams them with one reused buffer.
//!
//! | Offset          | Size   | Field                                                  |
//! |-----------------|--------|--------------------------------------------------------|
//! | 0               | 8      | magic `b"STATARB\0"`                                   |
//! | 8               | 4      | `u32` format version, `1`                              |
//! | 12              | 4      | `u32` instrument count `n` (at most 65 536: [`InstId`] is `u16`) |
//! | 16              | var.   | `n` instrument entries, see below                      |
//! | H               | 8      | `u64` event count `m`                                  |
//! | H + 8 + 40*i    | 40     | event record `i`, `0 <= i < m`, see below              |
//!
//! Instrument entry (26 bytes + symbol):
//!
//! | Size | Field                                              |
//! |------|----------------------------------------------------|
//! | 2    | `u16` symbol length `k` in bytes                   |
//! | k    | symbol, UTF-8                                      |
//! | 8    | tick size mantissa, `i64` (> 0)                    |
//! | 4    | tick size scale (fractional digits), `u32` (<= 18) |
//! | 8    | lot size mantissa, `i64` (> 0)                     |
//! | 4    | lot size scale, `u32` (<= 18)                      |
//!
//! Event record (40 bytes, one [`MarketEvent`]):
//!
//! | Offset | Size | Field                                                    |
//! |--------|------|----------------------------------------------------------|
//! | 0      | 8    | `exch_ts`, `i64` ns since the Unix epoch                 |
//! | 8      | 8    | `local_ts`, `i64` ns since the Unix epoch                |
//! | 16     | 8    | `px`, `i64` ticks                                        |
//! | 24     | 8    | `qty`, `i64` lots                                        |
//! | 32     | 2    | `inst`, `u16` index into the instrument table            |
//! | 34     | 1    | `kind`, the [`EventKind`] discriminant (1..=7)           |
//! | 35     | 1    | `flags` ([`MarketEvent::END_OF_BATCH`] = bit 0)          |
//! | 36     | 4    | reserved: written as zero, ignored on read               |
//!
//! Bytes after record `m - 1` are not read. A change to any of the above bumps the
//! version; readers refuse versions they do not know rather than guess.
//!
//! # Buffering
//!
//! [`write()`] wraps the caller's writer in a [`BufWriter`] and flushes it before
//! returning; [`Reader`] wraps the caller's reader in a [`BufReader`]. Pass a plain
//! [`std::fs::File`]: no extra buffering is needed (a second buffer is harmless, only
//! redundant).
//!
//! # Robustness
//!
//! The reader never panics and never trusts a count from the file for an allocation:
//! any byte string yields either the events or an [`EvFileError`]. [`read_file`] also
//! checks the event count against the file's length before reading a record.
//!
//! Records are checked as the importers check rows ([`crate::import::Limits`]): a
//! price or size event ([`EventKind`] other than `Clear`) needs a price in
//! `1..=`[`MAX_TICKS`] ticks and a size in `0..=MAX_TICKS` lots (`> 0` for a trade),
//! and both times must lie in [`MIN_TS`]..[`MAX_TS`] (2009 to 2100): one record at
//! `local_ts = i64::MAX` made a 787 s backtest end after 17 s. A record that fails is
//! [`EvFileError::BadRecord`]: an event file is written by `import` or `gen` from
//! checked data, so a bad record means a damaged or foreign file, not data to skip.

use std::io::{self, BufReader, BufWriter, Read, Write};

use thiserror::Error;

use crate::event::{EventKind, MarketEvent};
use crate::import::{MAX_TICKS, MAX_TS, MIN_TS};
use crate::types::{Decimal, InstId, Instrument, MAX_SCALE};

/// File magic: the first 8 bytes of every event file.
pub const MAGIC: [u8; 8] = *b"STATARB\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Size of one event record in bytes.
pub const RECORD_LEN: usize = 40;
/// Most instruments a file may hold: instrument indices are `u16`.
pub const MAX_INSTRUMENTS: usize = InstId::MAX as usize + 1;

/// Largest number of events [`read_all`] reserves up front, whatever the header
/// claims (40 MB); beyond that the vector grows as records actually arrive.
const MAX_PREALLOC_EVENTS: u64 = 1 << 20;
/// Buffer size of the internal reader and writer.
const BUF_LEN: usize = 1 << 16;

/// Errors from writing or reading an event file.
#[derive(Debug, Error)]
pub enum EvFileError {
    /// The underlying reader or writer failed (other than by ending early).
    #[error("event file i/o: {0}")]
    Io(#[from] io::Error),
    /// The first 8 bytes are not [`MAGIC`]: not an event file.
    #[error("not a statarb event file (bad magic)")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported event file version {0} (this build reads version {VERSION})")]
    UnsupportedVersion(u32),
    /// The file ends inside the header (before the event count is complete).
    #[error("event file truncated in the header")]
    TruncatedHeader,
    /// The file ends inside or before event record `index` of `count`.
    #[error("event file truncated at event {index} of {count}")]
    Truncated {
        /// Index of the first record that is incomplete.
        index: u64,
        /// Event count announced by the header.
        count: u64,
    },
    /// Event record `index` holds a kind byte that is no [`EventKind`].
    #[error("event {index}: unknown event kind byte {byte}")]
    UnknownKind {
        /// Index of the record.
        index: u64,
        /// The stored byte.
        byte: u8,
    },
    /// Event `index` names an instrument the table does not have (on write: the
    /// `index`-th event of the slice).
    #[error("event {index}: instrument index {inst} out of range ({count} instruments)")]
    InstrumentOutOfRange {
        /// Index of the event.
        index: u64,
        /// The instrument index it holds.
        inst: InstId,
        /// Size of the instrument table.
        count: usize,
    },
    /// Event record `index` holds a value no market has (see the module docs).
    #[error("event {index}: {reason}")]
    BadRecord {
        /// Index of the record.
        index: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The header announces more events than the file's length can hold.
    #[error("the header announces {count} events, but the file holds at most {fit}")]
    CountBeyondFile {
        /// Events announced.
        count: u64,
        /// Whole records after the header.
        fit: u64,
    },
    /// More instruments than [`MAX_INSTRUMENTS`].
    #[error("{0} instruments, at most {MAX_INSTRUMENTS} fit an event file")]
    TooManyInstruments(u64),
    /// Instrument entry `index` is malformed (symbol not UTF-8 or too long, increment
    /// not positive, scale above [`MAX_SCALE`]).
    #[error("instrument {index}: {reason}")]
    BadInstrument {
        /// Position in the instrument table.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Writes `instruments` and `events` as an event file (see the module docs for the
/// layout). Everything is validated before the first byte is written, so an error
/// leaves `w` untouched. `w` is buffered internally and flushed on success.
pub fn write<W: Write>(w: W, instruments: &[Instrument], events: &[MarketEvent]) -> Result<(), EvFileError> {
    if instruments.len() > MAX_INSTRUMENTS {
        return Err(EvFileError::TooManyInstruments(instruments.len() as u64));
    }
    for (index, inst) in instruments.iter().enumerate() {
        if inst.symbol.len() > u16::MAX as usize {
            return Err(EvFileError::BadInstrument { index, reason: "symbol longer than 65535 bytes" });
        }
        check_increment(index, inst.tick)?;
        check_increment(index, inst.lot)?;
    }
    if let Some((index, ev)) = events.iter().enumerate().find(|(_, e)| e.inst as usize >= instruments.len()) {
        return Err(EvFileError::InstrumentOutOfRange { index: index as u64, inst: ev.inst, count: instruments.len() });
    }
    for (index, ev) in events.iter().enumerate() {
        check(ev).map_err(|reason| EvFileError::BadRecord { index: index as u64, reason })?;
    }

    let mut w = BufWriter::with_capacity(BUF_LEN, w);
    w.write_all(&MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&(instruments.len() as u32).to_le_bytes())?;
    for inst in instruments {
        w.write_all(&(inst.symbol.len() as u16).to_le_bytes())?;
        w.write_all(inst.symbol.as_bytes())?;
        for d in [inst.tick, inst.lot] {
            w.write_all(&d.mantissa().to_le_bytes())?;
            w.write_all(&d.scale().to_le_bytes())?;
        }
    }
    w.write_all(&(events.len() as u64).to_le_bytes())?;
    let mut rec = [0u8; RECORD_LEN];
    for ev in events {
        encode(ev, &mut rec);
        w.write_all(&rec)?;
    }
    w.flush()?;
    Ok(())
}

/// Reads a whole event file: its instrument table and all its events.
pub fn read_all<R: Read>(r: R) -> Result<(Vec<Instrument>, Vec<MarketEvent>), EvFileError> {
    let mut reader = Reader::new(r)?;
    let mut events = Vec::with_capacity(reader.len().min(MAX_PREALLOC_EVENTS) as usize);
    while let Some(ev) = reader.next_event()? {
        events.push(ev);
    }
    Ok((reader.instruments, events))
}

/// Reads a whole event file from disk ([`read_all`]), first checking the header's event
/// count against the file's length ([`EvFileError::CountBeyondFile`]).
pub fn read_file(f: std::fs::File) -> Result<(Vec<Instrument>, Vec<MarketEvent>), EvFileError> {
    let len = f.metadata()?.len();
    let mut reader = Reader::new(f)?;
    let fit = len.saturating_sub(reader.header_len) / RECORD_LEN as u64;
    if reader.count > fit {
        return Err(EvFileError::CountBeyondFile { count: reader.count, fit });
    }
    let mut events = Vec::with_capacity(reader.count as usize);
    while let Some(ev) = reader.next_event()? {
        events.push(ev);
    }
    Ok((reader.instruments, events))
}

/// A streaming reader: the header is read and checked by [`Reader::new`], then
/// [`Reader::next_event`] decodes one record at a time from a reused buffer.
///
/// After an error the reader's position is unspecified: stop reading.
#[derive(Debug)]
pub struct Reader<R> {
    inner: BufReader<R>,
    instruments: Vec<Instrument>,
    count: u64,
    index: u64,
    /// Bytes of the header, the event count included.
    header_len: u64,
    buf: [u8; RECORD_LEN],
}

impl<R: Read> Reader<R> {
    /// Reads and validates the header (magic, version, instrument table, event count).
    pub fn new(r: R) -> Result<Self, EvFileError> {
        let mut inner = BufReader::with_capacity(BUF_LEN, r);
        let mut magic = [0u8; 8];
        read_header(&mut inner, &mut magic)?;
        if magic != MAGIC {
            return Err(EvFileError::BadMagic);
        }
        let version = u32::from_le_bytes(read_array(&mut inner)?);
        if version != VERSION {
            return Err(EvFileError::UnsupportedVersion(version));
        }
        let n = u32::from_le_bytes(read_array(&mut inner)?) as usize;
        if n > MAX_INSTRUMENTS {
            return Err(EvFileError::TooManyInstruments(n as u64));
        }
        // Each entry takes at least 26 bytes, so a lying count fails on truncation
        // long before the vector grows large; reserve modestly all the same.
        let mut instruments = Vec::with_capacity(n.min(64));
        let mut header_len = 16 + 8;
        for index in 0..n {
            let len = u16::from_le_bytes(read_array(&mut inner)?) as usize;
            let mut sym = vec![0u8; len];
            read_header(&mut inner, &mut sym)?;
            let symbol = String::from_utf8(sym)
                .map_err(|_| EvFileError::BadInstrument { index, reason: "symbol is not UTF-8" })?;
            let tick = read_decimal(&mut inner, index)?;
            let lot = read_decimal(&mut inner, index)?;
            instruments.push(Instrument::new(symbol, tick, lot));
            header_len += 26 + len as u64;
        }
        let count = u64::from_le_bytes(read_array(&mut inner)?);
        Ok(Reader { inner, instruments, count, index: 0, header_len, buf: [0u8; RECORD_LEN] })
    }

    /// The instrument table; an event's `inst` indexes it.
    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    /// Number of events the header announces.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True if the file holds no events.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The next event, `Ok(None)` after the last one. Allocation-free.
    pub fn next_event(&mut self) -> Result<Option<MarketEvent>, EvFileError> {
        if self.index >= self.count {
            return Ok(None);
        }
        let index = self.index;
        if let Err(e) = self.inner.read_exact(&mut self.buf) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                EvFileError::Truncated { index, count: self.count }
            } else {
                EvFileError::Io(e)
            });
        }
        let ev = decode(&self.buf, index, self.instruments.len())?;
        self.index += 1;
        Ok(Some(ev))
    }
}

/// Encodes one event into a record.
#[inline]
fn encode(ev: &MarketEvent, rec: &mut [u8; RECORD_LEN]) {
    rec[0..8].copy_from_slice(&ev.exch_ts.to_le_bytes());
    rec[8..16].copy_from_slice(&ev.local_ts.to_le_bytes());
    rec[16..24].copy_from_slice(&ev.px.to_le_bytes());
    rec[24..32].copy_from_slice(&ev.qty.to_le_bytes());
    rec[32..34].copy_from_slice(&ev.inst.to_le_bytes());
    rec[34] = ev.kind as u8;
    rec[35] = ev.flags;
    rec[36..40].fill(0);
}

/// Decodes record `index`, checking its kind byte and instrument index.
#[inline]
fn decode(rec: &[u8; RECORD_LEN], index: u64, n_inst: usize) -> Result<MarketEvent, EvFileError> {
    let i64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rec[o..o + 8]);
        i64::from_le_bytes(b)
    };
    let inst = u16::from_le_bytes([rec[32], rec[33]]);
    if inst as usize >= n_inst {
        return Err(EvFileError::InstrumentOutOfRange { index, inst, count: n_inst });
    }
    let kind = EventKind::from_u8(rec[34]).ok_or(EvFileError::UnknownKind { index, byte: rec[34] })?;
    let ev = MarketEvent {
        exch_ts: i64_at(0),
        local_ts: i64_at(8),
        px: i64_at(16),
        qty: i64_at(24),
        inst,
        kind,
        flags: rec[35],
    };
    check(&ev).map_err(|reason| EvFileError::BadRecord { index, reason })?;
    Ok(ev)
}

/// The value checks of a record (see the module docs).
#[inline]
fn check(ev: &MarketEvent) -> Result<(), &'static str> {
    let window = MIN_TS..MAX_TS;
    if !window.contains(&ev.exch_ts) || !window.contains(&ev.local_ts) {
        return Err("time stamp outside 2009..2100");
    }
    if ev.kind == EventKind::Clear {
        return Ok(());
    }
    if ev.px <= 0 || ev.px > MAX_TICKS {
        return Err("price not in 1..=2^53 ticks");
    }
    let trade = matches!(ev.kind, EventKind::TradeBuy | EventKind::TradeSell);
    if ev.qty < i64::from(trade) || ev.qty > MAX_TICKS {
        return Err("size out of range");
    }
    Ok(())
}

/// An increment the reader would accept: positive mantissa, scale within range.
fn check_increment(index: usize, d: Decimal) -> Result<(), EvFileError> {
    if d.mantissa() <= 0 {
        return Err(EvFileError::BadInstrument { index, reason: "tick or lot size not positive" });
    }
    if d.scale() > MAX_SCALE {
        return Err(EvFileError::BadInstrument { index, reason: "tick or lot scale above 18" });
    }
    Ok(())
}

/// Reads an `(i64 mantissa, u32 scale)` increment, validating it before building the
/// [`Decimal`] (whose constructor asserts the scale).
fn read_decimal<R: Read>(r: &mut R, index: usize) -> Result<Decimal, EvFileError> {
    let mantissa = i64::from_le_bytes(read_array(r)?);
    let scale = u32::from_le_bytes(read_array(r)?);
    if mantissa <= 0 {
        return Err(EvFileError::BadInstrument { index, reason: "tick or lot size not positive" });
    }
    if scale > MAX_SCALE {
        return Err(EvFileError::BadInstrument { index, reason: "tick or lot scale above 18" });
    }
    Ok(Decimal::new(mantissa, scale))
}

/// `read_exact` inside the header: an early end is [`EvFileError::TruncatedHeader`].
fn read_header<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), EvFileError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            EvFileError::TruncatedHeader
        } else {
            EvFileError::Io(e)
        }
    })
}

/// Reads a fixed-size header field.
fn read_array<R: Read, const N: usize>(r: &mut R) -> Result<[u8; N], EvFileError> {
    let mut b = [0u8; N];
    read_header(r, &mut b)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn instruments() -> Vec<Instrument> {
        vec![
            Instrument::new("BTCUSDT", Decimal::new(1, 2), Decimal::new(1, 5)),
            Instrument::new("ETHUSDT", Decimal::new(1, 2), Decimal::new(1, 4)),
        ]
    }

    fn ev(i: i64, inst: InstId, kind: EventKind, flags: u8) -> MarketEvent {
        MarketEvent {
            exch_ts: 1_723_161_600_000_000_000 + i * 1_000,
            local_ts: 1_723_161_600_002_000_000 + i * 1_000,
            px: 6_100_000 + i,
            qty: 17 * i,
            inst,
            kind,
            flags,
        }
    }

    fn sample_events() -> Vec<MarketEvent> {
        let kinds = [
            EventKind::BidLevel,
            EventKind::AskLevel,
            EventKind::BestBid,
            EventKind::BestAsk,
            EventKind::TradeBuy,
            EventKind::TradeSell,
            EventKind::Clear,
        ];
        let mut v: Vec<_> =
            (0..100).map(|i| ev(i, (i % 2) as InstId, kinds[i as usize % kinds.len()], (i % 3 == 0) as u8)).collect();
        // The extremes a reader accepts survive the trip.
        v.push(MarketEvent { exch_ts: MIN_TS, local_ts: MAX_TS - 1, px: MAX_TICKS, qty: MAX_TICKS, ..v[0] });
        v.push(MarketEvent { px: 1, qty: 0, kind: EventKind::BidLevel, ..v[0] });
        v
    }

    fn file(events: &[MarketEvent]) -> Vec<u8> {
        let mut buf = Vec::new();
        write(&mut buf, &instruments(), events).unwrap();
        buf
    }

    #[test]
    fn roundtrip() {
        let events = sample_events();
        let buf = file(&events);
        let header = 16 + (2 + 7 + 24) * 2 + 8;
        assert_eq!(Reader::new(buf.as_slice()).unwrap().header_len, header as u64);
        assert_eq!(buf.len(), header + RECORD_LEN * events.len());
        let (insts, back) = read_all(buf.as_slice()).unwrap();
        assert_eq!(insts, instruments());
        assert_eq!(back, events);

        let mut r = Reader::new(buf.as_slice()).unwrap();
        assert_eq!(r.len(), events.len() as u64);
        assert_eq!(r.instruments()[1].symbol, "ETHUSDT");
        assert_eq!(r.next_event().unwrap(), Some(events[0]));
    }

    #[test]
    fn empty_file_roundtrips() {
        let mut buf = Vec::new();
        write(&mut buf, &[], &[]).unwrap();
        let r = Reader::new(buf.as_slice()).unwrap();
        assert!(r.is_empty());
        assert_eq!(read_all(buf.as_slice()).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn layout_is_as_documented() {
        let e = MarketEvent {
            exch_ts: MIN_TS + 1,
            local_ts: MIN_TS + 2,
            px: 3,
            qty: 4,
            inst: 1,
            kind: EventKind::TradeSell,
            flags: MarketEvent::END_OF_BATCH,
        };
        let buf = file(&[e]);
        assert_eq!(&buf[..8], b"STATARB\0");
        assert_eq!(&buf[8..16], &[1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&buf[16..18], &[7, 0]);
        assert_eq!(&buf[18..25], b"BTCUSDT");
        assert_eq!(&buf[25..37], &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
        let rec = &buf[buf.len() - RECORD_LEN..];
        assert_eq!(&buf[buf.len() - RECORD_LEN - 8..buf.len() - RECORD_LEN], &1u64.to_le_bytes());
        assert_eq!(rec[0..8], (MIN_TS + 1).to_le_bytes());
        assert_eq!(rec[8..16], (MIN_TS + 2).to_le_bytes());
        assert_eq!(rec[16], 3);
        assert_eq!(rec[24], 4);
        assert_eq!(&rec[32..40], &[1, 0, 6, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn header_errors() {
        let good = file(&sample_events());
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(read_all(bad.as_slice()), Err(EvFileError::BadMagic)));
        let mut bad = good.clone();
        bad[8] = 2;
        assert!(matches!(read_all(bad.as_slice()), Err(EvFileError::UnsupportedVersion(2))));
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_all(bad.as_slice()), Err(EvFileError::TooManyInstruments(_))));
        // Tick scale 19 would make `Decimal::new` assert: it must be an error instead.
        let mut bad = good.clone();
        bad[33..37].copy_from_slice(&19u32.to_le_bytes());
        assert!(matches!(read_all(bad.as_slice()), Err(EvFileError::BadInstrument { index: 0, .. })));
        let mut bad = good.clone();
        bad[18] = 0xff;
        assert!(matches!(read_all(bad.as_slice()), Err(EvFileError::BadInstrument { index: 0, .. })));
        assert!(matches!(read_all(&good[..20]), Err(EvFileError::TruncatedHeader)));
        assert!(matches!(read_all(&[][..]), Err(EvFileError::TruncatedHeader)));
    }

    #[test]
    fn record_errors_name_the_index() {
        let events = sample_events();
        let good = file(&events);
        let first = good.len() - RECORD_LEN * events.len();
        let at = |i: usize| first + RECORD_LEN * i;

        let mut bad = good.clone();
        bad[at(5) + 34] = 0;
        assert!(matches!(read_all(bad.as_slice()), Err(EvFileError::UnknownKind { index: 5, byte: 0 })));
        let mut bad = good.clone();
        bad[at(7) + 32] = 2;
        assert!(matches!(
            read_all(bad.as_slice()),
            Err(EvFileError::InstrumentOutOfRange { index: 7, inst: 2, count: 2 })
        ));
        let cut = &good[..at(9) + 13];
        assert!(matches!(read_all(cut), Err(EvFileError::Truncated { index: 9, .. })));
        // A count larger than the records present is truncation, not a huge allocation.
        let mut bad = good.clone();
        bad[first - 8..first].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(read_all(bad.as_slice()), Err(EvFileError::Truncated { index: 102, count: u64::MAX })));
    }

    #[test]
    fn absurd_records_are_errors() {
        let base = sample_events()[1];
        let cases = [
            (MarketEvent { local_ts: i64::MAX, ..base }, "time stamp outside 2009..2100"),
            (MarketEvent { exch_ts: 0, ..base }, "time stamp outside 2009..2100"),
            (MarketEvent { exch_ts: MAX_TS, ..base }, "time stamp outside 2009..2100"),
            (MarketEvent { px: 0, ..base }, "price not in 1..=2^53 ticks"),
            (MarketEvent { px: -5, ..base }, "price not in 1..=2^53 ticks"),
            (MarketEvent { px: i64::MAX, ..base }, "price not in 1..=2^53 ticks"),
            (MarketEvent { qty: -1, ..base }, "size out of range"),
            (MarketEvent { qty: 0, kind: EventKind::TradeSell, ..base }, "size out of range"),
        ];
        for (bad, why) in cases {
            let mut events = sample_events();
            events[3] = bad;
            let mut buf = Vec::new();
            assert!(matches!(write(&mut buf, &instruments(), &events), Err(EvFileError::BadRecord { index: 3, .. })));
            assert!(buf.is_empty());
            // Written as a foreign writer would: the reader refuses it.
            let mut bytes = file(&sample_events());
            let at = bytes.len() - RECORD_LEN * (events.len() - 3);
            let mut rec = [0u8; RECORD_LEN];
            encode(&bad, &mut rec);
            bytes[at..at + RECORD_LEN].copy_from_slice(&rec);
            match read_all(bytes.as_slice()) {
                Err(EvFileError::BadRecord { index: 3, reason }) => assert_eq!(reason, why, "{bad:?}"),
                r => panic!("{bad:?}: {r:?}"),
            }
        }
        // A `Clear` carries no price.
        let clear = MarketEvent { px: 0, qty: 0, kind: EventKind::Clear, ..base };
        assert!(read_all(file(&[clear]).as_slice()).is_ok());
    }

    #[test]
    fn a_count_beyond_the_file_is_refused_before_reading() {
        let events = sample_events();
        let good = file(&events);
        let first = good.len() - RECORD_LEN * events.len();
        let mut bad = good.clone();
        bad[first - 8..first].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&bad).unwrap();
        f.flush().unwrap();
        io::Seek::rewind(&mut f).unwrap();
        match read_file(f) {
            Err(EvFileError::CountBeyondFile { count, fit }) => {
                assert_eq!((count, fit), (1 << 40, events.len() as u64))
            }
            r => panic!("{r:?}"),
        }
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&good).unwrap();
        io::Seek::rewind(&mut f).unwrap();
        assert_eq!(read_file(f).unwrap().1, events);
    }

    #[test]
    fn write_validates_first() {
        let mut buf = Vec::new();
        let mut events = sample_events();
        events[3].inst = 9;
        let err = write(&mut buf, &instruments(), &events).unwrap_err();
        assert!(matches!(err, EvFileError::InstrumentOutOfRange { index: 3, inst: 9, .. }));
        assert!(buf.is_empty());
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        let good = file(&sample_events()[..5]);
        for n in 0..good.len() {
            assert!(read_all(&good[..n]).is_err(), "prefix {n}");
        }
        assert!(read_all(good.as_slice()).is_ok());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_all(bytes.as_slice());
        }

        #[test]
        fn random_bytes_after_magic_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..512),
            version_ok in any::<bool>(),
        ) {
            let mut bytes = MAGIC.to_vec();
            if version_ok {
                bytes.extend_from_slice(&VERSION.to_le_bytes());
            }
            bytes.extend_from_slice(&tail);
            let _ = read_all(bytes.as_slice());
        }

        #[test]
        fn corrupted_files_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = file(&sample_events()[..20]);
            for (pos, val) in flips {
                let n = bytes.len();
                bytes[pos % n] = val;
            }
            let n = cut % (bytes.len() + 1);
            let _ = read_all(&bytes[..n]);
        }
    }
}
