//! Streaming import: each input is staged to a temporary event file next to the
//! output, the staged files are memory-mapped and merged batch by batch, so that the
//! merge holds one batch and the trade dedup keys of a bounded time horizon instead of
//! every event of every input.
//!
//! The output is exactly that of [`super::merge_counted`] over the same inputs:
//! batches ordered by the `local_ts` of their first event, ties to the earlier input,
//! and a trade that overlapping inputs both hold kept once. A k-way merge of the
//! staged streams equals the stable sort of all batches of `merge_counted` when each
//! stream's batches are in order; a stream that is not (rows out of time order within
//! one input) is put in order while it is staged, in memory.
//!
//! Memory: every input is staged as it is read ([`StageSink`]: one event held), so its
//! size does not matter, unless its batches come out of time order, when it is put in
//! order in memory. Recordings are staged together, as one session; a second pass of
//! their book synchronisation starts the staged file over. The merge itself is bounded
//! (a batch, the mapped pages it reads, the dedup keys of the measured lag horizon).

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{
    detect, import_file_into, import_recordings_into, EventSink, FileReport, Format, ImportError, ImportOptions,
    ImportStats,
};
use crate::event::{EventKind, MarketEvent};
use crate::feed::evfile::{self, EvFileError};
use crate::feed::evmap::{EventMap, Events};
use crate::types::{InstId, Instrument, Ts};

/// Errors of a streaming import. Every one names its file.
#[derive(Debug, Error)]
pub enum StreamError {
    /// An input could not be imported.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A staged file could not be written or mapped.
    #[error(transparent)]
    EvFile(#[from] EvFileError),
}

/// Temporary staged files, removed when dropped (on success and on error).
#[derive(Debug, Default)]
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

/// The inputs of an import staged as mapped event files, ready to merge.
#[derive(Debug)]
pub struct Staged {
    maps: Vec<EventMap>,
    /// How far behind its batch's first `local_ts` a trade's `exch_ts` can be, at
    /// most, over all staged streams: dedup keys older than this horizon can never
    /// match again and are purged.
    lag: Ts,
    /// Per input (all recordings are one), what the import did. Duplicates are added
    /// by the merge ([`Merge::duplicates`]).
    pub reports: Vec<FileReport>,
    total: u64,
    // Last: the maps are unmapped before the files go.
    _temps: TempFiles,
}

impl Staged {
    /// Events over all staged streams, before the dedup.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The merged events, read from the mapped files as they are iterated.
    pub fn merge(&self) -> Merge<'_> {
        Merge {
            streams: self.maps.iter().map(|m| m.iter().peekable()).collect(),
            dedup: self.maps.len() > 1,
            lag: self.lag,
            kept: HashMap::new(),
            seen: HashMap::new(),
            purge_at: PURGE_MIN,
            dups: vec![0; self.maps.len()],
            batch: Vec::new(),
            pos: 0,
        }
    }
}

/// Dedup maps are purged when they grow past twice their size after the last purge,
/// and never below this size.
const PURGE_MIN: usize = 1 << 16;

/// Imports every input of `paths` (like [`super::import_files`]) to a temporary event
/// file `.<name>.<pid>.<k>.tmp` beside `out`, and maps them.
pub fn stage(
    paths: &[PathBuf],
    instruments: &[Instrument],
    opts: &ImportOptions,
    out: &Path,
) -> Result<Staged, StreamError> {
    if paths.is_empty() {
        return Err(ImportError::NoInput.into());
    }
    let mut formats = Vec::with_capacity(paths.len());
    for p in paths {
        formats.push(match opts.format {
            Some(f) => f,
            None => detect(p)?,
        });
    }
    let recordings: Vec<PathBuf> =
        paths.iter().zip(&formats).filter(|(_, f)| **f == Format::Recording).map(|(p, _)| p.clone()).collect();
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let mut temps = TempFiles::default();
    let mut reports = Vec::new();
    let mut lag = Ts::MIN;
    let mut total = 0u64;
    let mut recordings_done = false;
    for (p, &f) in paths.iter().zip(&formats) {
        let mut stats = ImportStats::default();
        if f == Format::Recording && recordings_done {
            continue;
        }
        let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), temps.0.len()));
        temps.0.push(tmp.clone());
        let mut sink = StageSink::create(&tmp, instruments).map_err(|e| e.in_file(&tmp))?;
        if f == Format::Recording {
            recordings_done = true;
            import_recordings_into(&recordings, instruments, opts, &mut stats, &mut sink)?;
            reports.push(FileReport { paths: recordings.clone(), format: f, stats });
        } else {
            import_file_into(p, f, instruments, opts, &mut stats, &mut sink)?;
            reports.push(FileReport { paths: vec![p.clone()], format: f, stats });
        }
        let (n, l) = sink.finish().map_err(|e| e.in_file(&tmp))?;
        total += n;
        lag = lag.max(l);
    }
    let mut maps = Vec::with_capacity(temps.0.len());
    for t in &temps.0 {
        maps.push(EventMap::open(t)?);
    }
    Ok(Staged { maps, lag, reports, total, _temps: temps })
}

/// Writes one stream, its batches put in order of their first `local_ts` (stably) if
/// they are not, its last event closing a batch. Returns the number of events and the
/// largest lag of a trade's `exch_ts` behind its batch's first `local_ts`.
fn write_stream(
    path: &Path,
    instruments: &[Instrument],
    mut events: Vec<MarketEvent>,
) -> Result<(u64, Ts), EvFileError> {
    if let Some(last) = events.last_mut() {
        last.flags |= MarketEvent::END_OF_BATCH;
    }
    let mut batches: Vec<(Ts, usize, usize)> = Vec::new();
    let mut start = 0;
    for (i, e) in events.iter().enumerate() {
        if e.is_batch_end() {
            batches.push((events[start].local_ts, start, i + 1));
            start = i + 1;
        }
    }
    if !batches.windows(2).all(|w| w[0].0 <= w[1].0) {
        batches.sort_by_key(|b| b.0);
    }
    let mut w = evfile::Writer::new(File::create(path)?, instruments)?;
    let mut lag = Ts::MIN;
    for &(head, a, b) in &batches {
        for e in &events[a..b] {
            if is_trade(e) {
                lag = lag.max(head.saturating_sub(e.exch_ts));
            }
            w.push(e)?;
        }
    }
    let n = w.len();
    w.finish()?;
    Ok((n, lag))
}

/// An [`EventSink`] that writes one CSV input's events to its staged file as they are
/// read, so that staging holds one event whatever the input's size. It holds back the
/// event pushed last (the importer may still flag it as its batch's end) and notes
/// what the merge needs: the largest lag of a trade's `exch_ts` behind its batch's first
/// `local_ts`, and whether the batches come in order of their first `local_ts`. A write
/// error is kept and returned by [`StageSink::finish`]; later events are dropped.
struct StageSink {
    path: PathBuf,
    instruments: Vec<Instrument>,
    w: evfile::Writer<File>,
    held: Option<MarketEvent>,
    /// `local_ts` of the open batch's first event; `None` between batches.
    head: Option<Ts>,
    last_head: Ts,
    in_order: bool,
    lag: Ts,
    pushed: u64,
    err: Option<EvFileError>,
}

impl StageSink {
    fn create(path: &Path, instruments: &[Instrument]) -> Result<Self, EvFileError> {
        Ok(StageSink {
            path: path.to_path_buf(),
            instruments: instruments.to_vec(),
            w: evfile::Writer::new(File::create(path)?, instruments)?,
            held: None,
            head: None,
            last_head: Ts::MIN,
            in_order: true,
            lag: Ts::MIN,
            pushed: 0,
            err: None,
        })
    }

    /// Writes a final event (its flags can no longer change).
    fn write(&mut self, e: &MarketEvent) {
        if self.err.is_some() {
            return;
        }
        let head = match self.head {
            Some(h) => h,
            None => {
                self.in_order &= e.local_ts >= self.last_head;
                self.last_head = e.local_ts;
                self.head = Some(e.local_ts);
                e.local_ts
            }
        };
        if is_trade(e) {
            self.lag = self.lag.max(head.saturating_sub(e.exch_ts));
        }
        if e.is_batch_end() {
            self.head = None;
        }
        if let Err(err) = self.w.push(e) {
            self.err = Some(err);
        }
    }

    /// Closes the last batch and the file. Batches that came out of order are put in
    /// order (stably) by reading the staged file back into memory and writing it again,
    /// as [`write_stream`] does: only such an input costs memory in proportion to its
    /// size. Returns the events written and the trade lag.
    fn finish(mut self) -> Result<(u64, Ts), EvFileError> {
        if let Some(mut e) = self.held.take() {
            e.flags |= MarketEvent::END_OF_BATCH;
            self.write(&e);
        }
        if let Some(err) = self.err.take() {
            return Err(err);
        }
        let (lag, in_order) = (self.lag, self.in_order);
        let n = self.w.len();
        self.w.finish()?;
        if in_order {
            return Ok((n, lag));
        }
        let events: Vec<MarketEvent> = EventMap::open(&self.path)?.iter().collect();
        write_stream(&self.path, &self.instruments, events)
    }
}

impl EventSink for StageSink {
    #[inline]
    fn push(&mut self, ev: MarketEvent) {
        if let Some(prev) = self.held.replace(ev) {
            self.write(&prev);
        }
        self.pushed += 1;
    }

    #[inline]
    fn last_mut(&mut self) -> Option<&mut MarketEvent> {
        self.held.as_mut()
    }

    #[inline]
    fn count(&self) -> u64 {
        self.pushed
    }

    /// Starts the staged file over (truncated, a new header).
    fn clear(&mut self) {
        match Self::create(&self.path, &self.instruments) {
            Ok(fresh) => *self = fresh,
            Err(e) => self.err = Some(e),
        }
    }
}

#[inline]
fn is_trade(e: &MarketEvent) -> bool {
    matches!(e.kind, EventKind::TradeBuy | EventKind::TradeSell)
}

/// A trade's identity across inputs, as in [`super::merge_counted`].
type TradeKey = (InstId, EventKind, Ts, i64, i64);

/// The staged streams merged: an iterator of the events of [`super::merge_counted`].
#[derive(Debug)]
pub struct Merge<'a> {
    streams: Vec<std::iter::Peekable<Events<'a>>>,
    dedup: bool,
    lag: Ts,
    kept: HashMap<TradeKey, u32>,
    seen: HashMap<(TradeKey, usize), u32>,
    purge_at: usize,
    dups: Vec<u64>,
    batch: Vec<MarketEvent>,
    pos: usize,
}

impl Merge<'_> {
    /// Per staged stream, the trades dropped as duplicates so far.
    pub fn duplicates(&self) -> &[u64] {
        &self.dups
    }

    /// Fills `batch` with the kept events of the next batch; false at the end.
    fn next_batch(&mut self) -> bool {
        loop {
            let mut best: Option<(Ts, usize)> = None;
            for (s, it) in self.streams.iter_mut().enumerate() {
                if let Some(e) = it.peek() {
                    if best.is_none_or(|(t, _)| e.local_ts < t) {
                        best = Some((e.local_ts, s));
                    }
                }
            }
            let Some((head, s)) = best else { return false };
            if self.dedup {
                self.purge(head);
            }
            self.batch.clear();
            self.pos = 0;
            for e in self.streams[s].by_ref() {
                let end = e.is_batch_end();
                if self.dedup && is_trade(&e) {
                    let key = (e.inst, e.kind, e.exch_ts, e.px, e.qty);
                    let mine = self.seen.entry((key, s)).or_insert(0);
                    *mine += 1;
                    let k = self.kept.entry(key).or_insert(0);
                    if *mine <= *k {
                        self.dups[s] += 1;
                    } else {
                        *k = *mine;
                        self.batch.push(e);
                    }
                } else {
                    self.batch.push(e);
                }
                if end {
                    break;
                }
            }
            if let Some(last) = self.batch.last_mut() {
                last.flags |= MarketEvent::END_OF_BATCH;
                return true;
            }
        }
    }

    /// Drops the dedup keys no later trade can match: every later batch starts at or
    /// after `head`, so its trades have `exch_ts >= head - lag`.
    fn purge(&mut self, head: Ts) {
        if self.seen.len() < self.purge_at {
            return;
        }
        let horizon = head.saturating_sub(self.lag);
        self.kept.retain(|k, _| k.2 >= horizon);
        self.seen.retain(|k, _| k.0 .2 >= horizon);
        self.purge_at = (self.seen.len() * 2).max(PURGE_MIN);
    }
}

impl Iterator for Merge<'_> {
    type Item = MarketEvent;

    fn next(&mut self) -> Option<MarketEvent> {
        if self.pos == self.batch.len() && !self.next_batch() {
            return None;
        }
        let e = self.batch[self.pos];
        self.pos += 1;
        Some(e)
    }
}
