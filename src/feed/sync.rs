//! Local order book synchroniser for Binance Spot diff depth (`<symbol>@depth@100ms`).
//!
//! What: turns a diff stream plus REST snapshots into a consistent sequence of
//! `Clear` / `BidLevel` / `AskLevel` events, detecting gaps and asking for resyncs.
//!
//! Why and how: a diff is only meaningful on top of the book state it follows. Binance's
//! "How to manage a local order book correctly" (binance-spot-api-docs,
//! `web-socket-streams.md`; the current Spot procedure) says:
//!
//! 1. open the stream and buffer the events, noting the `U` of the first one;
//! 2. get a depth snapshot; if its `lastUpdateId` is strictly less than that first `U`,
//!    get another one;
//! 3. discard buffered events with `u <= lastUpdateId`; the first remaining event then
//!    has `lastUpdateId` within its `[U; u]` range (`U <= lastUpdateId + 1 <= u`);
//! 4. set the book to the snapshot, its update id being `lastUpdateId`, and apply the
//!    buffered and then all following events with the update procedure: ignore an event
//!    with `u` below (here: at or below) the book's update id; if its `U` is above the
//!    book's update id + 1 something was lost, so discard the book and start over;
//!    otherwise set each level's absolute size (0 removes it) and set the book's update
//!    id to `u`.
//!
//! [`DepthSync`] implements this as a state machine that the caller drives: it returns
//! [`SyncAction::NeedSnapshot`] when the caller must fetch `GET /api/v3/depth`, and it
//! writes events to a callback. While unsynced nothing reaches the callback except the
//! one `Clear` on losing sync; on (re)sync it emits `Clear`, the snapshot's levels, then
//! the buffered diffs, as one batch: only the last event is flagged
//! [`MarketEvent::END_OF_BATCH`]. The book is valid only once all of it is applied: the
//! states between the buffered diffs are history (newer diffs are already in hand, and
//! the book tickers that came between them were dropped while unsynced), so a consumer
//! that acts on batch ends (the strategy core) must not quote on them. Once synced, each
//! diff is its own batch. The buffer is preallocated and bounded (messages and
//! levels, set in the constructor); on overflow it is dropped and the process restarts
//! (counted), so nothing allocates after construction.
//!
//! The buffer is kept contiguous: a buffered diff whose `U` is not the previous buffered
//! `u + 1` drops the older ones, since any usable snapshot is newer than the new diff.

use crate::event::{EventKind, MarketEvent};
use crate::feed::binance::{emit_levels, DepthLevel};
use crate::types::{InstId, Side, Ts};

/// Average levels per buffered diff that [`DepthSync::new`] preallocates for
/// (a BTCUSDT `@depth@100ms` diff carries about 10-30).
pub const LEVELS_PER_BUFFERED_MSG: usize = 32;

/// What the caller must do after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAction {
    /// Nothing.
    None,
    /// Fetch a REST depth snapshot and pass it to [`DepthSync::on_snapshot`].
    NeedSnapshot,
}

/// Counters of the synchroniser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Gaps detected (while synced, or inside the buffer).
    pub gaps: u64,
    /// Snapshots requested (initial sync and every resync).
    pub snapshot_requests: u64,
    /// Times the book was (re)built from a snapshot.
    pub syncs: u64,
    /// Snapshots older than the first buffered diff (another one was requested).
    pub stale_snapshots: u64,
    /// Diffs discarded as already contained in the book or snapshot (`u <= id`).
    pub dropped: u64,
    /// Diffs put in the buffer while waiting for a snapshot.
    pub buffered: u64,
    /// Buffer overflows (buffer dropped, resync).
    pub overflows: u64,
}

struct Msg<'a> {
    exch_ts: Ts,
    first_id: u64,
    last_id: u64,
    levels: &'a [DepthLevel],
}

#[derive(Debug, Clone, Copy)]
struct Buffered {
    exch_ts: Ts,
    local_ts: Ts,
    first_id: u64,
    last_id: u64,
    start: usize,
    len: usize,
}

/// The synchroniser of one instrument's book (see the module docs).
#[derive(Debug)]
pub struct DepthSync {
    inst: InstId,
    depth: usize,
    synced: bool,
    awaiting_snapshot: bool,
    /// Update id of the book when synced.
    book_id: u64,
    msgs: Vec<Buffered>,
    levels: Vec<DepthLevel>,
    max_msgs: usize,
    max_levels: usize,
    stats: SyncStats,
}

impl DepthSync {
    /// A synchroniser for `inst` buffering at most `max_msgs` diffs (and
    /// `max_msgs *` [`LEVELS_PER_BUFFERED_MSG`] levels) while waiting for a snapshot, and
    /// emitting every snapshot level.
    pub fn new(inst: InstId, max_msgs: usize) -> Self {
        Self::with_caps(inst, usize::MAX, max_msgs, max_msgs.saturating_mul(LEVELS_PER_BUFFERED_MSG))
    }

    /// A synchroniser for `inst` that emits at most `depth` snapshot levels per side
    /// (the book keeps no more), buffering at most `max_msgs` diffs with `max_levels`
    /// levels in total while waiting for a snapshot.
    pub fn with_caps(inst: InstId, depth: usize, max_msgs: usize, max_levels: usize) -> Self {
        DepthSync {
            inst,
            depth,
            synced: false,
            awaiting_snapshot: false,
            book_id: 0,
            msgs: Vec::with_capacity(max_msgs),
            levels: Vec::with_capacity(max_levels),
            max_msgs,
            max_levels,
            stats: SyncStats::default(),
        }
    }

    /// True when the emitted events describe the venue's book.
    #[inline]
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The update id the book is at (meaningful when synced).
    #[inline]
    pub fn last_update_id(&self) -> u64 {
        self.book_id
    }

    /// Diffs currently buffered.
    #[inline]
    pub fn buffered_len(&self) -> usize {
        self.msgs.len()
    }

    /// Counters so far.
    #[inline]
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Forgets the book (e.g. on disconnect): emits `Clear` if it was synced; the next
    /// diff asks for a snapshot.
    pub fn reset(&mut self, local_ts: Ts, out: &mut impl FnMut(MarketEvent)) {
        if self.synced {
            out(self.clear_event(local_ts, local_ts, MarketEvent::END_OF_BATCH));
        }
        self.synced = false;
        self.awaiting_snapshot = false;
        self.drop_buffer();
    }

    /// Handles one diff message (`U` = `first_id`, `u` = `last_id`, event time
    /// `exch_ts`, its levels as parsed by [`crate::feed::binance::BinanceParser`]).
    #[inline]
    pub fn on_depth(
        &mut self,
        first_id: u64,
        last_id: u64,
        exch_ts: Ts,
        levels: &[DepthLevel],
        local_ts: Ts,
        out: &mut impl FnMut(MarketEvent),
    ) -> SyncAction {
        let msg = Msg { exch_ts, first_id, last_id, levels };
        let msg = &msg;
        if self.synced {
            if msg.last_id <= self.book_id {
                self.stats.dropped += 1;
                return SyncAction::None;
            }
            if msg.first_id > self.book_id.saturating_add(1) {
                // Lost updates: the book is wrong from here on.
                self.stats.gaps += 1;
                out(self.clear_event(msg.exch_ts, local_ts, MarketEvent::END_OF_BATCH));
                self.synced = false;
                self.awaiting_snapshot = false;
                self.drop_buffer();
                return self.buffer(msg, local_ts);
            }
            self.book_id = msg.last_id;
            emit_levels(self.inst, msg.exch_ts, local_ts, msg.levels, out);
            return SyncAction::None;
        }
        self.buffer(msg, local_ts)
    }

    /// Handles a REST snapshot (`lastUpdateId` and its levels, bids then asks, best
    /// first, as [`crate::feed::binance::BinanceParser::parse_snapshot`] returns them).
    pub fn on_snapshot(
        &mut self,
        last_update_id: u64,
        snapshot: &[DepthLevel],
        local_ts: Ts,
        out: &mut impl FnMut(MarketEvent),
    ) -> SyncAction {
        if self.synced {
            // Unrequested (late duplicate): the live book is newer.
            return SyncAction::None;
        }
        self.awaiting_snapshot = false;
        let Some(first) = self.msgs.first() else {
            // Nothing buffered to check it against: ask again on the next diff.
            return SyncAction::None;
        };
        if last_update_id < first.first_id {
            self.stats.stale_snapshots += 1;
            return self.request();
        }
        // Drop buffered diffs the snapshot already contains.
        let keep_from = self.msgs.iter().position(|m| m.last_id > last_update_id).unwrap_or(self.msgs.len());
        self.stats.dropped += keep_from as u64;
        if let Some(m) = self.msgs.get(keep_from) {
            if m.first_id > last_update_id.saturating_add(1) {
                // Cannot happen with a contiguous buffer and lastUpdateId >= first U;
                // kept as a guard.
                self.stats.gaps += 1;
                self.drop_buffer();
                return self.request();
            }
        }

        // Synced: Clear, the snapshot, then the remaining buffered diffs, as one batch:
        // each event goes out when the next one comes, without the batch-end flag, and
        // the last one with it.
        self.stats.syncs += 1;
        let mut held: Option<MarketEvent> = None;
        let mut emit = |ev: MarketEvent| {
            if let Some(prev) = held.replace(ev) {
                out(MarketEvent { flags: prev.flags & !MarketEvent::END_OF_BATCH, ..prev });
            }
        };
        let n_bids = snapshot.iter().filter(|l| l.side == Side::Buy).count();
        let emit_bids = n_bids.min(self.depth);
        let emit_asks = (snapshot.len() - n_bids).min(self.depth);
        emit(self.clear_event(local_ts, local_ts, 0));
        let (mut nb, mut na) = (0, 0);
        for l in snapshot {
            let (kind, take) = match l.side {
                Side::Buy => {
                    nb += 1;
                    (EventKind::BidLevel, nb <= emit_bids)
                }
                Side::Sell => {
                    na += 1;
                    (EventKind::AskLevel, na <= emit_asks)
                }
            };
            if !take {
                continue;
            }
            emit(MarketEvent { exch_ts: local_ts, local_ts, px: l.px, qty: l.qty, inst: self.inst, kind, flags: 0 });
        }
        self.book_id = last_update_id;
        self.synced = true;
        for m in &self.msgs[keep_from..] {
            // Contiguous and starting at or before lastUpdateId + 1 (checked above).
            let levels = self.levels.get(m.start..m.start + m.len).unwrap_or(&[]);
            emit_levels(self.inst, m.exch_ts, m.local_ts, levels, &mut emit);
            self.book_id = m.last_id;
        }
        if let Some(last) = held {
            out(MarketEvent { flags: last.flags | MarketEvent::END_OF_BATCH, ..last });
        }
        self.drop_buffer();
        SyncAction::None
    }

    #[inline]
    fn clear_event(&self, exch_ts: Ts, local_ts: Ts, flags: u8) -> MarketEvent {
        MarketEvent { exch_ts, local_ts, px: 0, qty: 0, inst: self.inst, kind: EventKind::Clear, flags }
    }

    #[inline]
    fn drop_buffer(&mut self) {
        self.msgs.clear();
        self.levels.clear();
    }

    #[inline]
    fn request(&mut self) -> SyncAction {
        self.awaiting_snapshot = true;
        self.stats.snapshot_requests += 1;
        SyncAction::NeedSnapshot
    }

    /// Buffers a diff while unsynced; asks for a snapshot if none is on its way.
    fn buffer(&mut self, msg: &Msg<'_>, local_ts: Ts) -> SyncAction {
        if let Some(last) = self.msgs.last() {
            if msg.last_id <= last.last_id {
                self.stats.dropped += 1;
                return self.pending();
            }
            if msg.first_id != last.last_id.saturating_add(1) {
                // Gap inside the buffer: only diffs after it can follow a snapshot.
                self.stats.gaps += 1;
                self.drop_buffer();
            }
        }
        if self.msgs.len() >= self.max_msgs || self.levels.len() + msg.levels.len() > self.max_levels {
            self.stats.overflows += 1;
            self.drop_buffer();
            if msg.levels.len() > self.max_levels || self.max_msgs == 0 {
                // Cannot even hold this one; retry from the next diff.
                self.awaiting_snapshot = false;
                return SyncAction::None;
            }
        }
        let start = self.levels.len();
        self.levels.extend_from_slice(msg.levels);
        self.msgs.push(Buffered {
            exch_ts: msg.exch_ts,
            local_ts,
            first_id: msg.first_id,
            last_id: msg.last_id,
            start,
            len: msg.levels.len(),
        });
        self.stats.buffered += 1;
        self.pending()
    }

    #[inline]
    fn pending(&mut self) -> SyncAction {
        if self.awaiting_snapshot {
            SyncAction::None
        } else {
            self.request()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Book;

    fn lv(side: Side, px: i64, qty: i64) -> DepthLevel {
        DepthLevel { side, px, qty }
    }

    fn run(
        s: &mut DepthSync,
        book: &mut Book,
        evs: &mut Vec<MarketEvent>,
        u0: u64,
        u1: u64,
        levels: &[DepthLevel],
    ) -> SyncAction {
        let mut out = |e: MarketEvent| {
            book.apply(&e);
            evs.push(e);
        };
        s.on_depth(u0, u1, 1, levels, 2, &mut out)
    }

    #[test]
    fn documented_procedure() {
        let mut s = DepthSync::with_caps(0, 10, 8, 64);
        let mut book = Book::new(10);
        let mut evs = Vec::new();
        // Diffs before the snapshot are buffered; the first asks for a snapshot.
        assert_eq!(run(&mut s, &mut book, &mut evs, 100, 105, &[lv(Side::Buy, 10, 1)]), SyncAction::NeedSnapshot);
        assert_eq!(run(&mut s, &mut book, &mut evs, 106, 110, &[lv(Side::Buy, 11, 2)]), SyncAction::None);
        assert!(evs.is_empty() && !s.is_synced());
        // A snapshot older than the first buffered U is refused.
        let snap = [lv(Side::Buy, 9, 5), lv(Side::Sell, 20, 5)];
        let mut out = |e: MarketEvent| {
            book.apply(&e);
            evs.push(e);
        };
        assert_eq!(s.on_snapshot(99, &snap, 3, &mut out), SyncAction::NeedSnapshot);
        assert_eq!(s.stats().stale_snapshots, 1);
        // lastUpdateId 107: diff 100..105 dropped, 106..110 applied.
        assert_eq!(s.on_snapshot(107, &snap, 3, &mut out), SyncAction::None);
        assert!(s.is_synced());
        assert_eq!(s.last_update_id(), 110);
        assert_eq!(s.stats().dropped, 1);
        // One batch: the snapshot alone (bid 9, ask 20) was never the book, diff 106..110
        // was already in hand.
        let kinds: Vec<_> = evs.iter().map(|e| (e.kind, e.flags)).collect();
        assert_eq!(
            kinds,
            [(EventKind::Clear, 0), (EventKind::BidLevel, 0), (EventKind::AskLevel, 0), (EventKind::BidLevel, 1)]
        );
        assert_eq!(book.top(), Some((11, 20)));
        // Old diff ignored, next contiguous one applied, a gap clears and resyncs.
        evs.clear();
        assert_eq!(run(&mut s, &mut book, &mut evs, 101, 110, &[lv(Side::Buy, 12, 1)]), SyncAction::None);
        assert!(evs.is_empty());
        assert_eq!(run(&mut s, &mut book, &mut evs, 111, 111, &[]), SyncAction::None);
        assert_eq!(run(&mut s, &mut book, &mut evs, 113, 114, &[lv(Side::Sell, 19, 1)]), SyncAction::NeedSnapshot);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].kind, EventKind::Clear);
        assert!(!s.is_synced() && book.top().is_none());
        assert_eq!(s.stats().gaps, 1);
        assert_eq!(s.buffered_len(), 1);
    }

    #[test]
    fn bounded_buffer_overflows_and_recovers() {
        let mut s = DepthSync::with_caps(0, 10, 2, 4);
        let mut book = Book::new(10);
        let mut evs = Vec::new();
        let l = [lv(Side::Buy, 10, 1)];
        assert_eq!(run(&mut s, &mut book, &mut evs, 1, 1, &l), SyncAction::NeedSnapshot);
        run(&mut s, &mut book, &mut evs, 2, 2, &l);
        run(&mut s, &mut book, &mut evs, 3, 3, &l);
        assert_eq!(s.stats().overflows, 1);
        assert_eq!(s.buffered_len(), 1);
        // A gap inside the buffer keeps only the newer diffs.
        run(&mut s, &mut book, &mut evs, 5, 5, &l);
        assert_eq!((s.buffered_len(), s.stats().gaps), (1, 1));
        let mut out = |e: MarketEvent| {
            book.apply(&e);
            evs.push(e);
        };
        // lastUpdateId 4 < first buffered U 5: refetch, as documented.
        assert_eq!(s.on_snapshot(4, &[], 0, &mut out), SyncAction::NeedSnapshot);
        assert_eq!(s.on_snapshot(5, &[], 0, &mut out), SyncAction::None);
        assert!(s.is_synced());
        assert_eq!(s.last_update_id(), 5);
        // Oversized message while unsynced: dropped, no panic.
        s.reset(0, &mut out);
        let big = [lv(Side::Buy, 1, 1); 5];
        assert_eq!(s.on_depth(9, 9, 0, &big, 0, &mut out), SyncAction::None);
        assert_eq!(s.buffered_len(), 0);
    }

    /// A sync over several buffered diffs (some without levels) is one batch: a
    /// consumer acting on batch ends sees only the whole, newest book.
    #[test]
    fn sync_with_buffered_diffs_is_one_batch() {
        let mut s = DepthSync::with_caps(0, 10, 8, 64);
        let mut evs = Vec::new();
        let mut out = |e: MarketEvent| evs.push(e);
        s.on_depth(1, 2, 0, &[lv(Side::Buy, 10, 1)], 0, &mut out);
        s.on_depth(3, 4, 0, &[lv(Side::Buy, 11, 1), lv(Side::Sell, 13, 2)], 0, &mut out);
        s.on_depth(5, 5, 0, &[lv(Side::Sell, 12, 1)], 0, &mut out);
        s.on_depth(6, 6, 0, &[], 0, &mut out);
        let snap = [lv(Side::Buy, 9, 5), lv(Side::Sell, 20, 5)];
        assert_eq!(s.on_snapshot(2, &snap, 0, &mut out), SyncAction::None);
        assert!(s.is_synced());
        assert_eq!(s.last_update_id(), 6);
        // Clear, 2 snapshot levels, 3 levels of the diffs 3..4 and 5..5.
        assert_eq!(evs.len(), 6);
        let ends: Vec<usize> = (0..evs.len()).filter(|&i| evs[i].is_batch_end()).collect();
        assert_eq!(ends, [5]);
        let mut book = Book::new(10);
        let mut seen = Vec::new();
        for e in &evs {
            book.apply(e);
            if e.is_batch_end() {
                seen.push(book.top());
            }
        }
        assert_eq!(seen, [Some((11, 12))]);
        // A snapshot with nothing to emit still ends its batch.
        let mut s = DepthSync::with_caps(0, 10, 8, 64);
        let mut evs = Vec::new();
        s.on_depth(1, 1, 0, &[], 0, &mut |e| evs.push(e));
        s.on_snapshot(1, &[], 0, &mut |e| evs.push(e));
        assert_eq!(evs.len(), 1);
        assert!(evs[0].kind == EventKind::Clear && evs[0].is_batch_end());
    }

    #[test]
    fn snapshot_depth_is_limited() {
        let mut s = DepthSync::with_caps(0, 2, 4, 16);
        let mut evs = Vec::new();
        s.on_depth(5, 6, 0, &[], 0, &mut |e| evs.push(e));
        let snap: Vec<_> =
            (0..5).map(|i| lv(Side::Buy, 100 - i, 1)).chain((0..5).map(|i| lv(Side::Sell, 200 + i, 1))).collect();
        s.on_snapshot(5, &snap, 0, &mut |e| evs.push(e));
        assert_eq!(evs.len(), 5);
        assert!(evs[4].is_batch_end() && evs[4].px == 201);
    }
}
