//! A compact binary event file: the instrument table plus fixed-size event records laid
//! out so that a memory map of the file can be read as a slice of [`RawEvent`]s with no
//! copy ([`crate::feed::evmap`]), for fast repeated replays of data of any length
//! without re-parsing exchange JSON or re-running the generator.
//!
//! # Layout (version 2)
//!
//! Every integer is little-endian, and the records are read in place: the host must be
//! little-endian too (x86-64, AArch64 as commonly run); a big-endian host gets
//! [`EvFileError::BigEndianHost`] from the writer and the reader rather than swapped
//! numbers.
//!
//! | Offset          | Size   | Field                                                  |
//! |-----------------|--------|--------------------------------------------------------|
//! | 0               | 8      | magic `b"STATARB\0"`                                   |
//! | 8               | 4      | `u32` format version, `2`                              |
//! | 12              | 4      | `u32` instrument count `n` (at most 65 536: [`InstId`] is `u16`) |
//! | 16              | 8      | `u64` event count `m` ([`UNFINISHED`] while being written) |
//! | 24              | var.   | `n` instrument entries, see below                      |
//! | ..H             | 0..=7  | zero padding, so that `H`, the first record's offset, is a multiple of 8 |
//! | H + 40*i        | 40     | event record `i`, `0 <= i < m`: a [`RawEvent`]         |
//!
//! The file ends exactly after record `m - 1`: a length that is not `H + 40*m` is an
//! error (truncated, not a whole number of records, or more records than counted).
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
//! Event record (40 bytes, `#[repr(C)]` [`RawEvent`], 8-byte aligned, no implicit
//! padding, so [`bytemuck`] casts the mapped bytes to `&[RawEvent]`):
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
//! A change to any of the above bumps the version; readers refuse versions they do not
//! know rather than guess. Version 1 (the event count after the instrument table,
//! records unaligned, read whole into memory) is no longer read: write the data again
//! with `statarb import` or `statarb gen`.
//!
//! # Writing: streamed, count patched at the end
//!
//! [`Writer`] writes the header with the event count [`UNFINISHED`] (`u64::MAX`), then
//! each record as it is pushed through a [`BufWriter`], and [`Writer::finish`] seeks
//! back to offset 16 and writes the real count. Memory does not depend on the number
//! of events. The count sits before the variable-length table so that its offset is
//! fixed. A file whose writer died before `finish` keeps `UNFINISHED`, which no file
//! length matches: the reader refuses it ([`EvFileError::Unfinished`]) instead of
//! replaying a partial file. A trailer would do as well, but would leave the header
//! unable to say how many records follow.
//!
//! # Robustness
//!
//! The reader ([`parse_header`], [`records`], [`validate`]) never panics and never
//! trusts a count from the file for an allocation: any byte string yields either the
//! events or an [`EvFileError`].
//!
//! Records are checked as the importers check rows ([`crate::import::Limits`]): a known
//! kind byte, an instrument index inside the table, and for a price or size event
//! ([`EventKind`] other than `Clear`) a price in `1..=`[`MAX_TICKS`] ticks and a size in
//! `0..=MAX_TICKS` lots (`> 0` for a trade); both times must lie in
//! [`MIN_TS`]..[`MAX_TS`] (2009 to 2100): one record at `local_ts = i64::MAX` made a
//! 787 s backtest end after 17 s. A record that fails is an error naming its index
//! ([`EvFileError::BadRecord`], [`EvFileError::UnknownKind`],
//! [`EvFileError::InstrumentOutOfRange`]): an event file is written by `import` or `gen`
//! from checked data, so a bad record means a damaged or foreign file, not data to skip.

use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytemuck::{Pod, Zeroable};
use thiserror::Error;

use crate::event::{EventKind, MarketEvent};
use crate::import::{MAX_TICKS, MAX_TS, MIN_TS};
use crate::types::{Decimal, InstId, Instrument, MAX_SCALE};

/// File magic: the first 8 bytes of every event file.
pub const MAGIC: [u8; 8] = *b"STATARB\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 2;
/// Size of one event record in bytes.
pub const RECORD_LEN: usize = 40;
/// Alignment of the first record (and so of every record), bytes.
pub const RECORD_ALIGN: usize = 8;
/// Most instruments a file may hold: instrument indices are `u16`.
pub const MAX_INSTRUMENTS: usize = InstId::MAX as usize + 1;
/// The event count of a file whose writer has not finished ([`Writer::finish`]).
pub const UNFINISHED: u64 = u64::MAX;
/// Offset of the event count in the header.
const COUNT_AT: u64 = 16;
/// Buffer size of the writer.
const BUF_LEN: usize = 1 << 16;

/// One event record as stored: 40 bytes, `#[repr(C)]`, no implicit padding (the
/// layout table in the module docs). Read in place from a mapped file.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct RawEvent {
    /// Exchange time, ns since the Unix epoch.
    pub exch_ts: i64,
    /// Local receive time, ns since the Unix epoch.
    pub local_ts: i64,
    /// Price, ticks.
    pub px: i64,
    /// Size, lots.
    pub qty: i64,
    /// Index into the file's instrument table.
    pub inst: u16,
    /// [`EventKind`] discriminant.
    pub kind: u8,
    /// [`MarketEvent`] flags.
    pub flags: u8,
    /// Reserved, zero.
    pub _pad: u32,
}

const _: () = assert!(std::mem::size_of::<RawEvent>() == RECORD_LEN);
const _: () = assert!(std::mem::align_of::<RawEvent>() == RECORD_ALIGN);

impl RawEvent {
    /// The record of `ev`.
    #[inline]
    pub fn from_event(ev: &MarketEvent) -> RawEvent {
        RawEvent {
            exch_ts: ev.exch_ts,
            local_ts: ev.local_ts,
            px: ev.px,
            qty: ev.qty,
            inst: ev.inst,
            kind: ev.kind as u8,
            flags: ev.flags,
            _pad: 0,
        }
    }

    /// The event of a record, `None` if its kind byte is no [`EventKind`].
    #[inline]
    pub fn to_event(&self) -> Option<MarketEvent> {
        Some(MarketEvent {
            exch_ts: self.exch_ts,
            local_ts: self.local_ts,
            px: self.px,
            qty: self.qty,
            inst: self.inst,
            kind: EventKind::from_u8(self.kind)?,
            flags: self.flags,
        })
    }
}

/// Errors from writing or reading an event file.
#[derive(Debug, Error)]
pub enum EvFileError {
    /// The underlying reader or writer failed.
    #[error("event file i/o: {0}")]
    Io(#[from] io::Error),
    /// An error in the file at `path`.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: Box<EvFileError>,
    },
    /// This host is big-endian: the records are little-endian and read in place.
    #[error("event files are little-endian and read in place; this host is big-endian")]
    BigEndianHost,
    /// The first 8 bytes are not [`MAGIC`]: not an event file.
    #[error("not a statarb event file (bad magic)")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported event file version {0} (this build reads version {VERSION}; write the data again with `statarb import` or `statarb gen`)")]
    UnsupportedVersion(u32),
    /// The file ends inside the header.
    #[error("event file truncated in the header")]
    TruncatedHeader,
    /// The writer of the file did not finish (the count is [`UNFINISHED`]).
    #[error("unfinished event file (its writer stopped before writing the event count)")]
    Unfinished,
    /// The file holds fewer whole records than the header counts.
    #[error("event file truncated at event {index} of {count}")]
    Truncated {
        /// Index of the first record that is missing or incomplete.
        index: u64,
        /// Event count announced by the header.
        count: u64,
    },
    /// The bytes after the header are not a whole number of records.
    #[error("{bytes} bytes of records are not a whole number of {RECORD_LEN}-byte records")]
    Misaligned {
        /// Bytes after the header.
        bytes: u64,
    },
    /// The file holds more records than the header counts.
    #[error("the header counts {count} events, but the file holds {records}")]
    CountMismatch {
        /// Events announced.
        count: u64,
        /// Whole records after the header.
        records: u64,
    },
    /// The records do not start at an 8-byte aligned address (an in-memory buffer that
    /// is not 8-byte aligned; a memory map always is).
    #[error("the records are not 8-byte aligned in memory")]
    UnalignedBuffer,
    /// Event record `index` holds a kind byte that is no [`EventKind`].
    #[error("event {index}: unknown event kind byte {byte}")]
    UnknownKind {
        /// Index of the record.
        index: u64,
        /// The stored byte.
        byte: u8,
    },
    /// Event `index` names an instrument the table does not have.
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

impl EvFileError {
    /// This error, naming `path`.
    pub fn in_file(self, path: impl Into<PathBuf>) -> EvFileError {
        EvFileError::InFile { path: path.into(), error: Box::new(self) }
    }

    /// The error without the file name, if it has one.
    pub fn kind(&self) -> &EvFileError {
        match self {
            EvFileError::InFile { error, .. } => error.kind(),
            e => e,
        }
    }
}

/// [`EvFileError::BigEndianHost`] on a big-endian host.
#[inline]
pub fn check_host() -> Result<(), EvFileError> {
    if cfg!(target_endian = "big") {
        Err(EvFileError::BigEndianHost)
    } else {
        Ok(())
    }
}

/// A streaming event-file writer: [`Writer::new`] writes the header (count
/// [`UNFINISHED`]), [`Writer::push`] one record at a time through a [`BufWriter`],
/// [`Writer::finish`] patches the count. Memory is the 64 KiB buffer whatever the
/// number of events. After an error the file is not a valid event file: discard it.
#[derive(Debug)]
pub struct Writer<W: Write + Seek> {
    inner: BufWriter<W>,
    n_inst: usize,
    count: u64,
}

impl<W: Write + Seek> Writer<W> {
    /// Validates `instruments` and writes the header at the current position of `w`,
    /// which must be the start of the file (the count is patched at offset 16).
    pub fn new(w: W, instruments: &[Instrument]) -> Result<Self, EvFileError> {
        check_host()?;
        check_instruments(instruments)?;
        let mut inner = BufWriter::with_capacity(BUF_LEN, w);
        let mut len = 24usize;
        inner.write_all(&MAGIC)?;
        inner.write_all(&VERSION.to_le_bytes())?;
        inner.write_all(&(instruments.len() as u32).to_le_bytes())?;
        inner.write_all(&UNFINISHED.to_le_bytes())?;
        for inst in instruments {
            inner.write_all(&(inst.symbol.len() as u16).to_le_bytes())?;
            inner.write_all(inst.symbol.as_bytes())?;
            for d in [inst.tick, inst.lot] {
                inner.write_all(&d.mantissa().to_le_bytes())?;
                inner.write_all(&d.scale().to_le_bytes())?;
            }
            len += 26 + inst.symbol.len();
        }
        inner.write_all(&[0u8; RECORD_ALIGN][..pad_len(len)])?;
        Ok(Writer { inner, n_inst: instruments.len(), count: 0 })
    }

    /// Checks and appends one event (see the module docs for the checks; the error's
    /// index is the number of events pushed before it). Allocation-free.
    #[inline]
    pub fn push(&mut self, ev: &MarketEvent) -> Result<(), EvFileError> {
        let index = self.count;
        if ev.inst as usize >= self.n_inst {
            return Err(EvFileError::InstrumentOutOfRange { index, inst: ev.inst, count: self.n_inst });
        }
        check(ev).map_err(|reason| EvFileError::BadRecord { index, reason })?;
        self.inner.write_all(bytemuck::bytes_of(&RawEvent::from_event(ev)))?;
        self.count += 1;
        Ok(())
    }

    /// Events pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True if no event was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Flushes the records, writes the event count into the header, flushes again and
    /// returns the inner writer (positioned after the count).
    pub fn finish(mut self) -> Result<W, EvFileError> {
        self.inner.flush()?;
        let mut w = self.inner.into_inner().map_err(|e| EvFileError::Io(e.into_error()))?;
        w.seek(SeekFrom::Start(COUNT_AT))?;
        w.write_all(&self.count.to_le_bytes())?;
        w.flush()?;
        Ok(w)
    }
}

/// Writes `instruments` and `events` as a whole event file. Everything is validated
/// before the first byte is written, so an error leaves `w` untouched. `w` is buffered
/// internally and flushed on success.
pub fn write<W: Write + Seek>(w: W, instruments: &[Instrument], events: &[MarketEvent]) -> Result<(), EvFileError> {
    check_host()?;
    check_instruments(instruments)?;
    for (index, ev) in events.iter().enumerate() {
        if ev.inst as usize >= instruments.len() {
            return Err(EvFileError::InstrumentOutOfRange {
                index: index as u64,
                inst: ev.inst,
                count: instruments.len(),
            });
        }
        check(ev).map_err(|reason| EvFileError::BadRecord { index: index as u64, reason })?;
    }
    let mut wr = Writer::new(w, instruments)?;
    for ev in events {
        wr.push(ev)?;
    }
    wr.finish()?;
    Ok(())
}

/// What the header of a file says.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The instrument table; an event's `inst` indexes it.
    pub instruments: Vec<Instrument>,
    /// Number of records.
    pub count: u64,
    /// Offset of the first record, a multiple of [`RECORD_ALIGN`].
    pub records_at: usize,
}

/// Parses and checks the header of the file `bytes` (magic, version, instrument table,
/// count), and checks the file's length against the count: exactly `count` whole
/// records after the header.
pub fn parse_header(bytes: &[u8]) -> Result<Header, EvFileError> {
    check_host()?;
    let mut r = Cursor { bytes, at: 0 };
    if r.take(8)? != MAGIC {
        return Err(EvFileError::BadMagic);
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(EvFileError::UnsupportedVersion(version));
    }
    let n = r.u32()? as usize;
    if n > MAX_INSTRUMENTS {
        return Err(EvFileError::TooManyInstruments(n as u64));
    }
    let count = r.u64()?;
    // Each entry takes at least 26 bytes, so a lying count fails on truncation long
    // before the vector grows large; reserve modestly all the same.
    let mut instruments = Vec::with_capacity(n.min(64));
    for index in 0..n {
        let len = r.u16()? as usize;
        let symbol = std::str::from_utf8(r.take(len)?)
            .map_err(|_| EvFileError::BadInstrument { index, reason: "symbol is not UTF-8" })?
            .to_string();
        let tick = r.decimal(index)?;
        let lot = r.decimal(index)?;
        instruments.push(Instrument::new(symbol, tick, lot));
    }
    r.take(pad_len(r.at))?;
    let records_at = r.at;
    if count == UNFINISHED {
        return Err(EvFileError::Unfinished);
    }
    let body = (bytes.len() - records_at) as u64;
    let records = body / RECORD_LEN as u64;
    if !body.is_multiple_of(RECORD_LEN as u64) {
        if records < count {
            return Err(EvFileError::Truncated { index: records, count });
        }
        return Err(EvFileError::Misaligned { bytes: body });
    }
    if records < count {
        return Err(EvFileError::Truncated { index: records, count });
    }
    if records > count {
        return Err(EvFileError::CountMismatch { count, records });
    }
    Ok(Header { instruments, count, records_at })
}

/// The records of the file `bytes` whose header is `h` ([`parse_header`]), cast in
/// place (no copy). Not yet checked: see [`validate`].
pub fn records<'a>(bytes: &'a [u8], h: &Header) -> Result<&'a [RawEvent], EvFileError> {
    let body = bytes.get(h.records_at..).ok_or(EvFileError::TruncatedHeader)?;
    bytemuck::try_cast_slice(body).map_err(|e| match e {
        bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned => EvFileError::UnalignedBuffer,
        _ => EvFileError::Misaligned { bytes: body.len() as u64 },
    })
}

/// The records of the file `bytes` whose header is `h`, copied out one at a time with
/// no alignment requirement (a buffer that is not a map: a read of a pipe, a fuzzer's
/// input). Not yet checked: see [`validate`]. Streams; allocates nothing.
pub fn read_records<'a>(bytes: &'a [u8], h: &Header) -> impl Iterator<Item = RawEvent> + 'a {
    let body = bytes.get(h.records_at..).unwrap_or(&[]);
    body.chunks_exact(RECORD_LEN).map(bytemuck::pod_read_unaligned::<RawEvent>)
}

/// Checks every record of `recs`, the first of which is record `first` of its file,
/// against a table of `n_inst` instruments (see the module docs). After it returns `Ok`,
/// [`RawEvent::to_event`] is `Some` for every record.
pub fn validate(recs: &[RawEvent], first: u64, n_inst: usize) -> Result<(), EvFileError> {
    for (k, r) in recs.iter().enumerate() {
        let index = first + k as u64;
        if r.inst as usize >= n_inst {
            return Err(EvFileError::InstrumentOutOfRange { index, inst: r.inst, count: n_inst });
        }
        let ev = r.to_event().ok_or(EvFileError::UnknownKind { index, byte: r.kind })?;
        check(&ev).map_err(|reason| EvFileError::BadRecord { index, reason })?;
    }
    Ok(())
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

/// Zero bytes after a header of `len` bytes up to the next multiple of 8.
fn pad_len(len: usize) -> usize {
    (RECORD_ALIGN - len % RECORD_ALIGN) % RECORD_ALIGN
}

/// The table a writer accepts: at most [`MAX_INSTRUMENTS`], symbols up to 65 535
/// bytes, increments the reader accepts.
fn check_instruments(instruments: &[Instrument]) -> Result<(), EvFileError> {
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

/// A read position in the header bytes; reading past the end is
/// [`EvFileError::TruncatedHeader`].
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EvFileError> {
        let end = self.at.checked_add(n).ok_or(EvFileError::TruncatedHeader)?;
        let b = self.bytes.get(self.at..end).ok_or(EvFileError::TruncatedHeader)?;
        self.at = end;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EvFileError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u16(&mut self) -> Result<u16, EvFileError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, EvFileError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, EvFileError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// An `(i64 mantissa, u32 scale)` increment, validated before building the
    /// [`Decimal`] (whose constructor asserts the scale).
    fn decimal(&mut self, index: usize) -> Result<Decimal, EvFileError> {
        let mantissa = i64::from_le_bytes(self.array()?);
        let scale = self.u32()?;
        if mantissa <= 0 {
            return Err(EvFileError::BadInstrument { index, reason: "tick or lot size not positive" });
        }
        if scale > MAX_SCALE {
            return Err(EvFileError::BadInstrument { index, reason: "tick or lot scale above 18" });
        }
        Ok(Decimal::new(mantissa, scale))
    }
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
        let mut buf = io::Cursor::new(Vec::new());
        write(&mut buf, &instruments(), events).unwrap();
        buf.into_inner()
    }

    /// Reads a whole file from bytes, as the map does, through an aligned copy.
    fn read(bytes: &[u8]) -> Result<(Vec<Instrument>, Vec<MarketEvent>), EvFileError> {
        let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
        let buf: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut aligned)[..bytes.len()];
        buf.copy_from_slice(bytes);
        let h = parse_header(buf)?;
        let recs = records(buf, &h)?;
        validate(recs, 0, h.instruments.len())?;
        Ok((h.instruments, recs.iter().filter_map(RawEvent::to_event).collect()))
    }

    #[test]
    fn roundtrip() {
        let events = sample_events();
        let buf = file(&events);
        let header = 24 + (2 + 7 + 24) * 2;
        let h = parse_header(&buf).unwrap();
        assert_eq!(h.records_at, header + pad_len(header));
        assert_eq!(h.records_at % 8, 0);
        assert_eq!(buf.len(), h.records_at + RECORD_LEN * events.len());
        let (insts, back) = read(&buf).unwrap();
        assert_eq!(insts, instruments());
        assert_eq!(back, events);
    }

    #[test]
    fn empty_file_roundtrips() {
        let mut buf = io::Cursor::new(Vec::new());
        write(&mut buf, &[], &[]).unwrap();
        let buf = buf.into_inner();
        assert_eq!(buf.len(), 24);
        assert_eq!(read(&buf).unwrap(), (vec![], vec![]));
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
        assert_eq!(&buf[8..16], &[2, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&buf[16..24], &1u64.to_le_bytes());
        assert_eq!(&buf[24..26], &[7, 0]);
        assert_eq!(&buf[26..33], b"BTCUSDT");
        assert_eq!(&buf[33..45], &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
        // 24 + 2 * 33 = 90 header bytes, padded to 96.
        assert_eq!(&buf[90..96], &[0; 6]);
        assert_eq!(buf.len(), 96 + RECORD_LEN);
        let rec = &buf[96..];
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
        assert!(matches!(read(&bad), Err(EvFileError::BadMagic)));
        let mut bad = good.clone();
        bad[8] = 1;
        assert!(matches!(read(&bad), Err(EvFileError::UnsupportedVersion(1))));
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read(&bad), Err(EvFileError::TooManyInstruments(_))));
        // Tick scale 19 would make `Decimal::new` assert: it must be an error instead.
        let mut bad = good.clone();
        bad[41..45].copy_from_slice(&19u32.to_le_bytes());
        assert!(matches!(read(&bad), Err(EvFileError::BadInstrument { index: 0, .. })));
        let mut bad = good.clone();
        bad[26] = 0xff;
        assert!(matches!(read(&bad), Err(EvFileError::BadInstrument { index: 0, .. })));
        assert!(matches!(read(&good[..20]), Err(EvFileError::TruncatedHeader)));
        assert!(matches!(read(&[]), Err(EvFileError::TruncatedHeader)));
        let mut bad = good.clone();
        bad[16..24].copy_from_slice(&UNFINISHED.to_le_bytes());
        assert!(matches!(read(&bad), Err(EvFileError::Unfinished)));
    }

    #[test]
    fn length_must_match_the_count() {
        let events = sample_events();
        let good = file(&events);
        let first = good.len() - RECORD_LEN * events.len();
        let cut = &good[..first + RECORD_LEN * 9 + 13];
        assert!(matches!(read(cut), Err(EvFileError::Truncated { index: 9, .. })));
        let cut = &good[..first + RECORD_LEN * 9];
        assert!(matches!(read(cut), Err(EvFileError::Truncated { index: 9, count: 102 })));
        let mut long = good.clone();
        long.extend_from_slice(&[0; 7]);
        assert!(matches!(read(&long), Err(EvFileError::Misaligned { bytes: 4087 })));
        let mut long = good.clone();
        long.extend_from_slice(&[0; RECORD_LEN]);
        assert!(matches!(read(&long), Err(EvFileError::CountMismatch { count: 102, records: 103 })));
        // A huge count is a length mismatch, not an allocation.
        let mut bad = good.clone();
        bad[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(read(&bad), Err(EvFileError::Truncated { index: 102, count: 1099511627776 })));
    }

    #[test]
    fn unaligned_bytes_read_record_by_record() {
        let events = sample_events();
        let good = file(&events);
        let mut shifted = vec![0u8; good.len() + 1];
        shifted[1..].copy_from_slice(&good);
        let h = parse_header(&shifted[1..]).unwrap();
        let back: Vec<_> = read_records(&shifted[1..], &h).filter_map(|r| r.to_event()).collect();
        assert_eq!(back, events);
    }

    #[test]
    fn an_unaligned_buffer_is_an_error() {
        let good = file(&sample_events());
        let mut aligned = vec![0u64; good.len() / 8 + 2];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut aligned);
        bytes[1..1 + good.len()].copy_from_slice(&good);
        let shifted = &bytes[1..1 + good.len()];
        let h = parse_header(shifted).unwrap();
        assert!(matches!(records(shifted, &h), Err(EvFileError::UnalignedBuffer)));
    }

    #[test]
    fn record_errors_name_the_index() {
        let events = sample_events();
        let good = file(&events);
        let first = good.len() - RECORD_LEN * events.len();
        let at = |i: usize| first + RECORD_LEN * i;

        let mut bad = good.clone();
        bad[at(5) + 34] = 0;
        assert!(matches!(read(&bad), Err(EvFileError::UnknownKind { index: 5, byte: 0 })));
        let mut bad = good.clone();
        bad[at(7) + 32] = 2;
        assert!(matches!(read(&bad), Err(EvFileError::InstrumentOutOfRange { index: 7, inst: 2, count: 2 })));
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
            let mut buf = io::Cursor::new(Vec::new());
            assert!(matches!(write(&mut buf, &instruments(), &events), Err(EvFileError::BadRecord { index: 3, .. })));
            assert!(buf.get_ref().is_empty());
            // Written as a foreign writer would: the reader refuses it.
            let mut bytes = file(&sample_events());
            let at = bytes.len() - RECORD_LEN * (events.len() - 3);
            bytes[at..at + RECORD_LEN].copy_from_slice(bytemuck::bytes_of(&RawEvent::from_event(&bad)));
            match read(&bytes) {
                Err(EvFileError::BadRecord { index: 3, reason }) => assert_eq!(reason, why, "{bad:?}"),
                r => panic!("{bad:?}: {r:?}"),
            }
        }
        // A `Clear` carries no price.
        let clear = MarketEvent { px: 0, qty: 0, kind: EventKind::Clear, ..base };
        assert!(read(&file(&[clear])).is_ok());
    }

    #[test]
    fn write_validates_first() {
        let mut buf = io::Cursor::new(Vec::new());
        let mut events = sample_events();
        events[3].inst = 9;
        let err = write(&mut buf, &instruments(), &events).unwrap_err();
        assert!(matches!(err, EvFileError::InstrumentOutOfRange { index: 3, inst: 9, .. }));
        assert!(buf.get_ref().is_empty());
    }

    #[test]
    fn the_streaming_writer_patches_the_count() {
        let events = sample_events();
        let mut w = Writer::new(io::Cursor::new(Vec::new()), &instruments()).unwrap();
        for e in &events {
            w.push(e).unwrap();
        }
        assert_eq!(w.len(), events.len() as u64);
        let bytes = w.finish().unwrap().into_inner();
        assert_eq!(bytes, file(&events));
        // Without `finish`, the count says unfinished.
        let mut w = Writer::new(io::Cursor::new(Vec::new()), &instruments()).unwrap();
        w.push(&events[0]).unwrap();
        let inner = w.inner.into_inner().unwrap().into_inner();
        assert!(matches!(read(&inner), Err(EvFileError::Unfinished)));
        let mut w = Writer::new(io::Cursor::new(Vec::new()), &instruments()).unwrap();
        let err = w.push(&MarketEvent { inst: 5, ..events[0] }).unwrap_err();
        assert!(matches!(err, EvFileError::InstrumentOutOfRange { index: 0, inst: 5, .. }));
    }

    #[test]
    fn errors_name_the_file() {
        let e = EvFileError::BadMagic.in_file("/data/x.evt");
        assert_eq!(e.to_string(), "/data/x.evt: not a statarb event file (bad magic)");
        assert!(matches!(e.kind(), EvFileError::BadMagic));
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        let good = file(&sample_events()[..5]);
        for n in 0..good.len() {
            assert!(read(&good[..n]).is_err(), "prefix {n}");
        }
        assert!(read(&good).is_ok());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read(&bytes);
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
            let _ = read(&bytes);
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
            let _ = read(&bytes[..n]);
        }
    }
}
