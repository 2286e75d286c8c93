//! Event files read in place: a read-only memory map per file ([`EventMap`]), its
//! records as a `&[RawEvent]` with no copy, and the k-way merge by local time of any
//! number of files and in-memory event sets into one stream ([`Dataset`], [`Merge`]).
//!
//! # Memory
//!
//! A replay touches every page of the map once, front to back; a touched page of a map
//! counts in the process's resident set until it is unmapped, so a 4 GB file would end
//! with 4 GB resident. Each reader therefore drops the pages it has left behind
//! ([`mapfile::release`], `madvise(MADV_DONTNEED)`) every [`RELEASE_EVERY`] records,
//! keeping the last [`RELEASE_SLACK`] records mapped: the resident set of a reader is
//! at most about `(RELEASE_EVERY + RELEASE_SLACK) * 40` bytes = 20 MB per file,
//! whatever its length. A dropped page stays in the kernel's page cache: a second
//! reader of the same map behind the first (the engine and Core cursors of one replay,
//! the workers of a sweep) faults it back in from there, at the cost of a minor fault,
//! reading the same bytes. The two cursors of a replay are a feed latency apart, a few
//! thousand records, far inside the slack.
//!
//! # Validation
//!
//! [`EventMap::open`] checks the header and the file's length ([`evfile::parse_header`])
//! and then every record ([`evfile::validate`]: kind byte, instrument index, value
//! ranges), in one sequential pass that releases its pages as it goes; an error names
//! the file and the record index. After that iteration cannot fail: [`Events`] yields
//! [`MarketEvent`]s. The pass costs one read of the file (about a tenth of a replay's
//! time) and makes every replay of the map, and every worker of a sweep, free of
//! per-event error handling.
//!
//! # Merge
//!
//! [`Merge`] interleaves the sources of a [`Dataset`] by `local_ts`: at each step the
//! source whose next event has the smallest local time, the earliest source on ties,
//! so each source's own order is kept and the result is stable. The minimum is a
//! linear scan over the `k` heads (`k` is a handful of files: a heap's bookkeeping
//! would cost more). Instruments are remapped by symbol into one table
//! ([`union_instruments`]). Nothing is allocated per event; cloning a `Merge` (the
//! replay's second cursor) allocates its `k` heads once.

use std::fs::File;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::evfile::{self, EvFileError, RawEvent, RECORD_LEN};
use crate::event::{EventKind, MarketEvent};
use crate::types::{InstId, Instrument, Ts};

/// A reader drops the pages behind it every this many records (10 MB).
pub const RELEASE_EVERY: usize = 1 << 18;
/// Records behind a reader that stay mapped when it drops pages (10 MB).
pub const RELEASE_SLACK: usize = 1 << 18;

/// A validated event file, mapped read-only. `Sync`: any number of threads iterate it
/// at once, each with its own [`Events`].
#[derive(Debug)]
pub struct EventMap {
    path: PathBuf,
    map: mapfile::Mmap,
    instruments: Vec<Instrument>,
    records_at: usize,
    count: usize,
}

impl EventMap {
    /// Maps the event file at `path` and validates it (see the module docs). Every
    /// error names the file.
    pub fn open(path: impl AsRef<Path>) -> Result<EventMap, EvFileError> {
        let path = path.as_ref();
        Self::open_inner(path).map_err(|e| e.in_file(path))
    }

    fn open_inner(path: &Path) -> Result<EventMap, EvFileError> {
        evfile::check_host()?;
        let file = File::open(path)?;
        let map = mapfile::map_readonly(&file)?;
        let h = evfile::parse_header(&map)?;
        let count = usize::try_from(h.count).map_err(|_| EvFileError::Truncated { index: 0, count: h.count })?;
        let m = EventMap { path: path.to_path_buf(), map, instruments: h.instruments, records_at: h.records_at, count };
        // The records are aligned: the map starts on a page and `records_at` is a
        // multiple of 8 (checked by the cast, an error if it did not hold).
        evfile::records(&m.map, &evfile::Header { instruments: Vec::new(), count: h.count, records_at: m.records_at })?;
        let n_inst = m.instruments.len();
        for (k, chunk) in m.records().chunks(RELEASE_EVERY).enumerate() {
            evfile::validate(chunk, (k * RELEASE_EVERY) as u64, n_inst)?;
            m.release(k * RELEASE_EVERY, (k + 1) * RELEASE_EVERY);
        }
        Ok(m)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The instrument table; an event's `inst` indexes it.
    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if the file holds no events.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records, in place (no copy).
    pub fn records(&self) -> &[RawEvent] {
        let body = self.map.get(self.records_at..).unwrap_or(&[]);
        // Validated at open: aligned, a whole number of records.
        bytemuck::try_cast_slice(body).unwrap_or(&[])
    }

    /// The events in file order.
    pub fn iter(&self) -> Events<'_> {
        Events { map: self, records: self.records(), pos: 0, released: 0 }
    }

    /// Local time of the first and last record (`None` if empty).
    pub fn local_span(&self) -> Option<(Ts, Ts)> {
        let r = self.records();
        Some((r.first()?.local_ts, r.last()?.local_ts))
    }

    /// Drops the pages of records `from..to` from the resident set (see the module
    /// docs). A failure only leaves the pages resident, so it is ignored.
    fn release(&self, from: usize, to: usize) {
        let to = to.min(self.count);
        if from >= to {
            return;
        }
        let at = self.records_at + from * RECORD_LEN;
        let _ = mapfile::release(&self.map, at, (to - from) * RECORD_LEN);
    }
}

/// The events of one [`EventMap`], in file order, converted from the records in
/// place. Drops the pages behind it as it goes (see the module docs).
#[derive(Debug, Clone)]
pub struct Events<'a> {
    map: &'a EventMap,
    records: &'a [RawEvent],
    pos: usize,
    /// Records before this one have been released.
    released: usize,
}

impl Iterator for Events<'_> {
    type Item = MarketEvent;

    #[inline]
    fn next(&mut self) -> Option<MarketEvent> {
        let r = self.records.get(self.pos)?;
        self.pos += 1;
        if self.pos.is_multiple_of(RELEASE_EVERY) {
            self.release();
        }
        Some(convert(r))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.records.len() - self.pos;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Events<'_> {}

impl Events<'_> {
    #[cold]
    fn release(&mut self) {
        let to = self.pos.saturating_sub(RELEASE_SLACK);
        self.map.release(self.released, to);
        self.released = self.released.max(to);
    }
}

/// A validated record as an event: the kind byte was checked at open, so the fallback
/// never happens.
#[inline]
fn convert(r: &RawEvent) -> MarketEvent {
    MarketEvent {
        exch_ts: r.exch_ts,
        local_ts: r.local_ts,
        px: r.px,
        qty: r.qty,
        inst: r.inst,
        kind: EventKind::from_u8(r.kind).unwrap_or(EventKind::Clear),
        flags: r.flags,
    }
}

/// Why instrument tables cannot be joined into one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    /// One symbol with different increments in two sources.
    #[error("{symbol}: tick {tick_a} lot {lot_a} in one data file, tick {tick_b} lot {lot_b} in another")]
    Increments {
        /// Symbol.
        symbol: String,
        /// Tick in the first source that has the symbol.
        tick_a: String,
        /// Lot there.
        lot_a: String,
        /// Tick in the conflicting source.
        tick_b: String,
        /// Lot there.
        lot_b: String,
    },
    /// More distinct symbols than instrument ids (the last id is kept for events of
    /// unknown instruments).
    #[error("the data files hold more than {} instruments", InstId::MAX)]
    TooManyInstruments,
}

/// Joins instrument tables by symbol: the table (symbols in order of first appearance)
/// and, per input table, the new id of each of its instruments. A symbol in several
/// tables must have the same tick and lot.
pub fn union_instruments(tables: &[&[Instrument]]) -> Result<(Vec<Instrument>, Vec<Vec<InstId>>), TableError> {
    let mut table: Vec<Instrument> = Vec::new();
    let mut maps = Vec::with_capacity(tables.len());
    for instruments in tables {
        let mut map = Vec::with_capacity(instruments.len());
        for inst in *instruments {
            let id = match table.iter().position(|t| t.symbol == inst.symbol) {
                Some(i) if table[i].tick == inst.tick && table[i].lot == inst.lot => i,
                Some(i) => {
                    return Err(TableError::Increments {
                        symbol: inst.symbol.clone(),
                        tick_a: table[i].tick.to_string(),
                        lot_a: table[i].lot.to_string(),
                        tick_b: inst.tick.to_string(),
                        lot_b: inst.lot.to_string(),
                    })
                }
                None => {
                    if table.len() >= InstId::MAX as usize {
                        return Err(TableError::TooManyInstruments);
                    }
                    table.push(inst.clone());
                    table.len() - 1
                }
            };
            map.push(id as InstId);
        }
        maps.push(map);
    }
    Ok((table, maps))
}

/// Why a [`Dataset`] cannot be built.
#[derive(Debug, Error)]
pub enum DataError {
    /// An event file is unreadable or invalid (the error names it).
    #[error(transparent)]
    File(#[from] EvFileError),
    /// The files' instrument tables conflict.
    #[error(transparent)]
    Table(#[from] TableError),
}

/// One input of a [`Dataset`].
#[derive(Debug)]
pub enum Source {
    /// A mapped event file.
    Mapped(EventMap),
    /// Events in memory (the generator's data set, an import), in receive order, with
    /// their instrument table.
    Memory {
        /// The table the events' `inst` index.
        instruments: Vec<Instrument>,
        /// The events.
        events: Vec<MarketEvent>,
    },
}

impl Source {
    fn instruments(&self) -> &[Instrument] {
        match self {
            Source::Mapped(m) => m.instruments(),
            Source::Memory { instruments, .. } => instruments,
        }
    }

    fn len(&self) -> usize {
        match self {
            Source::Mapped(m) => m.len(),
            Source::Memory { events, .. } => events.len(),
        }
    }

    fn local_span(&self) -> Option<(Ts, Ts)> {
        match self {
            Source::Mapped(m) => m.local_span(),
            Source::Memory { events, .. } => Some((events.first()?.local_ts, events.last()?.local_ts)),
        }
    }
}

/// The data of a replay: any number of sources (mapped event files, in-memory sets) of
/// one or more instruments, joined into one instrument table and read as one stream by
/// [`Dataset::iter`], k-way merged by local time (see the module docs). `Sync`: the
/// workers of a sweep share one dataset, and so one mapping per file.
#[derive(Debug)]
pub struct Dataset {
    sources: Vec<Source>,
    table: Vec<Instrument>,
    /// Per source, the table id of each of its instruments.
    remap: Vec<Vec<InstId>>,
    len: usize,
}

impl Dataset {
    /// Joins `sources` (see [`union_instruments`]). An event of a [`Source::Memory`]
    /// whose instrument is outside its table gets id [`InstId::MAX`], which the Core and
    /// the engine count as unknown (a mapped file's were checked at open).
    pub fn new(sources: Vec<Source>) -> Result<Dataset, TableError> {
        let tables: Vec<&[Instrument]> = sources.iter().map(Source::instruments).collect();
        let (table, remap) = union_instruments(&tables)?;
        let len = sources.iter().map(Source::len).sum();
        Ok(Dataset { sources, table, remap, len })
    }

    /// Maps and validates the event files `paths` ([`EventMap::open`]) and joins them.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<Dataset, DataError> {
        let mut sources = Vec::with_capacity(paths.len());
        for p in paths {
            sources.push(Source::Mapped(EventMap::open(p)?));
        }
        Ok(Dataset::new(sources)?)
    }

    /// One in-memory source.
    pub fn memory(instruments: Vec<Instrument>, events: Vec<MarketEvent>) -> Dataset {
        let remap = vec![(0..instruments.len()).map(|i| i as InstId).collect()];
        Dataset {
            len: events.len(),
            sources: vec![Source::Memory { instruments: instruments.clone(), events }],
            table: instruments,
            remap,
        }
    }

    /// The joined instrument table; the merged events' `inst` index it.
    pub fn instruments(&self) -> &[Instrument] {
        &self.table
    }

    /// The sources, in the order given.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Events in all sources.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no source holds an event.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The smallest first and the largest last local time of the sources (`None`
    /// without events): the span of the merged stream when each source is in order.
    pub fn local_span(&self) -> Option<(Ts, Ts)> {
        self.sources.iter().filter_map(Source::local_span).reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }

    /// The merged events (see the module docs).
    pub fn iter(&self) -> Merge<'_> {
        let heads = self
            .sources
            .iter()
            .zip(&self.remap)
            .map(|(s, map)| {
                let cursor = match s {
                    Source::Mapped(m) => Cursor::Map(m.iter()),
                    Source::Memory { events, .. } => Cursor::Slice(events.iter()),
                };
                let identity = map.iter().enumerate().all(|(i, &id)| i == id as usize);
                let mut h = Head { cursor, next: None, map, identity };
                h.advance();
                h
            })
            .collect();
        Merge { heads, left: self.len }
    }

    /// The merged events collected into memory, for the callers that still need a
    /// slice (the threaded replay of `statarb latency`).
    pub fn to_vec(&self) -> Vec<MarketEvent> {
        let mut v = Vec::with_capacity(self.len);
        v.extend(self.iter());
        v
    }
}

/// The k-way merge of a [`Dataset`]'s sources by local time ([`Dataset::iter`]).
#[derive(Debug, Clone)]
pub struct Merge<'a> {
    heads: Vec<Head<'a>>,
    left: usize,
}

/// One source's read position and its next event, already remapped.
#[derive(Debug, Clone)]
struct Head<'a> {
    cursor: Cursor<'a>,
    next: Option<MarketEvent>,
    map: &'a [InstId],
    identity: bool,
}

#[derive(Debug, Clone)]
enum Cursor<'a> {
    Map(Events<'a>),
    Slice(std::slice::Iter<'a, MarketEvent>),
}

impl Head<'_> {
    /// Takes the next event and reads the one after it.
    #[inline]
    fn advance(&mut self) -> Option<MarketEvent> {
        let ev = match &mut self.cursor {
            Cursor::Map(it) => it.next(),
            Cursor::Slice(it) => it.next().copied(),
        };
        let ev = ev.map(|mut e| {
            if !self.identity {
                e.inst = self.map.get(e.inst as usize).copied().unwrap_or(InstId::MAX);
            }
            e
        });
        std::mem::replace(&mut self.next, ev)
    }
}

impl Iterator for Merge<'_> {
    type Item = MarketEvent;

    #[inline]
    fn next(&mut self) -> Option<MarketEvent> {
        let k = if self.heads.len() == 1 {
            0
        } else {
            // The head with the earliest next event; the first such on ties.
            let mut best: Option<(usize, Ts)> = None;
            for (k, h) in self.heads.iter().enumerate() {
                if let Some(ev) = &h.next {
                    if best.is_none_or(|(_, t)| ev.local_ts < t) {
                        best = Some((k, ev.local_ts));
                    }
                }
            }
            best?.0
        };
        let ev = self.heads.get_mut(k)?.advance()?;
        self.left -= 1;
        Some(ev)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Merge<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Decimal;
    use std::io::Write;

    fn inst(sym: &str) -> Instrument {
        Instrument::new(sym, Decimal::new(1, 2), Decimal::new(1, 4))
    }

    fn ev(local_ts: Ts, inst: InstId, px: i64) -> MarketEvent {
        MarketEvent {
            exch_ts: local_ts - 1_000,
            local_ts,
            px,
            qty: 1,
            inst,
            kind: EventKind::BidLevel,
            flags: MarketEvent::END_OF_BATCH,
        }
    }

    const T0: Ts = 1_723_161_600_000_000_000;

    fn write_file(dir: &Path, name: &str, insts: &[Instrument], events: &[MarketEvent]) -> PathBuf {
        let p = dir.join(name);
        evfile::write(File::create(&p).unwrap(), insts, events).unwrap();
        p
    }

    #[test]
    fn a_mapped_file_reads_back_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<_> = (0..1000).map(|i| ev(T0 + i, (i % 2) as InstId, 100 + i)).collect();
        let p = write_file(dir.path(), "a.evt", &[inst("A"), inst("B")], &events);
        let m = EventMap::open(&p).unwrap();
        assert_eq!(m.len(), 1000);
        assert_eq!(m.instruments()[1].symbol, "B");
        assert_eq!(m.records()[3], RawEvent::from_event(&events[3]));
        assert_eq!(m.iter().collect::<Vec<_>>(), events);
        assert_eq!(m.iter().len(), 1000);
        assert_eq!(m.local_span(), Some((T0, T0 + 999)));
        assert_eq!(m.path(), p);
    }

    #[test]
    fn open_errors_name_the_file_and_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<_> = (0..10).map(|i| ev(T0 + i, 0, 100 + i)).collect();
        let p = write_file(dir.path(), "a.evt", &[inst("A")], &events);
        let mut bytes = std::fs::read(&p).unwrap();
        let first = bytes.len() - 10 * RECORD_LEN;
        bytes[first + 4 * RECORD_LEN + 34] = 99;
        let bad = dir.path().join("bad.evt");
        std::fs::write(&bad, &bytes).unwrap();
        let e = EventMap::open(&bad).unwrap_err();
        assert!(matches!(e.kind(), EvFileError::UnknownKind { index: 4, byte: 99 }), "{e:?}");
        assert!(e.to_string().starts_with(&bad.display().to_string()), "{e}");

        let cut = dir.path().join("cut.evt");
        std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(EventMap::open(&cut).unwrap_err().kind(), EvFileError::Truncated { index: 9, count: 10 }));
        let empty = dir.path().join("empty.evt");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(EventMap::open(&empty).unwrap_err().kind(), EvFileError::TruncatedHeader));
        let missing = dir.path().join("missing.evt");
        let e = EventMap::open(&missing).unwrap_err();
        assert!(matches!(e.kind(), EvFileError::Io(_)) && e.to_string().contains("missing.evt"), "{e}");
    }

    #[test]
    fn merge_remaps_by_symbol_and_is_stable_on_ties() {
        let dir = tempfile::tempdir().unwrap();
        let a = vec![ev(T0 + 10, 0, 1), ev(T0 + 20, 0, 2), ev(T0 + 30, 0, 3)];
        let b = vec![ev(T0 + 5, 1, 4), ev(T0 + 20, 0, 5), ev(T0 + 40, 1, 6)];
        let pa = write_file(dir.path(), "a.evt", &[inst("A")], &a);
        let pb = write_file(dir.path(), "b.evt", &[inst("A"), inst("B")], &b);
        let mem = Source::Memory { instruments: vec![inst("B")], events: vec![ev(T0 + 20, 0, 7), ev(T0 + 1, 3, 8)] };
        let d = Dataset::new(vec![
            Source::Mapped(EventMap::open(&pa).unwrap()),
            Source::Mapped(EventMap::open(&pb).unwrap()),
            mem,
        ])
        .unwrap();
        assert_eq!(d.instruments().iter().map(|i| i.symbol.as_str()).collect::<Vec<_>>(), ["A", "B"]);
        let got: Vec<(i64, InstId)> = d.iter().map(|e| (e.px, e.inst)).collect();
        // Ties at +20: file a, then b, then memory; the memory source's +1 event comes
        // only after its +20 one (its own order), with an unknown instrument.
        assert_eq!(got, [(4, 1), (1, 0), (2, 0), (5, 0), (7, 1), (8, InstId::MAX), (3, 0), (6, 1)]);
        assert_eq!(d.len(), 8);
        assert_eq!(d.iter().len(), 8);
        assert_eq!(d.local_span(), Some((T0 + 5, T0 + 40)));
        // A clone is an independent cursor.
        let mut it = d.iter();
        it.next();
        let c = it.clone();
        assert_eq!(it.collect::<Vec<_>>(), c.collect::<Vec<_>>());
        assert_eq!(d.to_vec().len(), 8);

        let other = Instrument::new("A", Decimal::new(1, 1), Decimal::new(1, 4));
        let e = Dataset::new(vec![
            Source::Mapped(EventMap::open(&pa).unwrap()),
            Source::Memory { instruments: vec![other], events: vec![] },
        ])
        .unwrap_err();
        assert!(matches!(e, TableError::Increments { .. }));
        let e = Dataset::open(&[dir.path().join("nope.evt")]).unwrap_err();
        assert!(matches!(e, DataError::File(_)));
    }

    #[test]
    fn a_long_file_releases_pages_and_reads_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("long.evt");
        let n = 3 * RELEASE_EVERY + 17;
        let mut w = evfile::Writer::new(File::create(&p).unwrap(), &[inst("A")]).unwrap();
        for i in 0..n as i64 {
            w.push(&ev(T0 + i, 0, 1 + i)).unwrap();
        }
        w.finish().unwrap().flush().unwrap();
        let m = EventMap::open(&p).unwrap();
        let d = Dataset::new(vec![Source::Mapped(m)]).unwrap();
        // Two cursors apart, as a replay's.
        let (mut a, mut b) = (d.iter(), d.iter());
        for _ in 0..1000 {
            a.next();
        }
        let mut k = 0i64;
        for e in a {
            let f = b.next().unwrap();
            assert_eq!((e.px, f.px), (1001 + k, 1 + k));
            k += 1;
        }
        assert_eq!(k as usize, n - 1000);
        assert_eq!(b.count(), 1000);
    }
}
