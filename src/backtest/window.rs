//! Time windows of event data (`--from`/`--to`): the events whose local (receive) time
//! `t` is in `[from, to)`, opened with a snapshot of each book as it stood at `from`.
//!
//! Cutting a stream of book diffs at `from` would start every book empty: the levels
//! set before `from` and not changed since would be missing, and the replay would run
//! silently on a wrong book. So the events before `from` are applied to one
//! [`Book`] per instrument (nothing else sees them: no strategy, no venue, no fills),
//! and the first event at or after `from` is preceded by those books written out as
//! level events: for each instrument, a [`EventKind::Clear`] and then every bid and
//! ask level, the last with [`MarketEvent::END_OF_BATCH`], all at local time `from`
//! and at the exchange time of the instrument's last event before it. What the window
//! replays is then what a client that synced its book at `from` would have seen.
//!
//! The books keep [`MAX_LEVELS`] levels a side, as the Core's do; trades before `from`
//! are dropped. The data must be in receive order (as event files and merges are): the
//! window ends at the first event at or after `to`. The adapter is streaming: memory
//! is the books, whatever the length of the data.

use super::EventSource;
use crate::book::{Book, MAX_LEVELS};
use crate::event::{EventKind, MarketEvent};
use crate::types::{InstId, Side, Ts};

/// A half-open interval of local time, `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    /// First local time in the window, ns; `None`: from the start of the data.
    pub from: Option<Ts>,
    /// First local time after the window, ns; `None`: to the end of the data.
    pub to: Option<Ts>,
}

impl TimeWindow {
    /// The whole data.
    pub const ALL: TimeWindow = TimeWindow { from: None, to: None };

    /// True if the window is the whole data.
    pub fn is_all(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// True if local time `t` is in the window.
    #[inline]
    pub fn contains(&self, t: Ts) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }

    /// True if the window holds no time at all (`to <= from`).
    pub fn is_empty(&self) -> bool {
        matches!((self.from, self.to), (Some(f), Some(t)) if t <= f)
    }

    /// `events` cut to the window, opened with the books at `from` (see the module
    /// doc). `instruments` is the number of instruments of the data's table: events of
    /// ids at or beyond it are passed through inside the window (the Core counts them
    /// as unknown) and ignored before it.
    pub fn cut<I: Iterator<Item = MarketEvent>>(self, events: I, instruments: usize) -> Windowed<I> {
        let n = if self.from.is_some() { instruments.min(InstId::MAX as usize) } else { 0 };
        Windowed {
            inner: events,
            window: self,
            books: (0..n).map(|_| Book::new(MAX_LEVELS)).collect(),
            last_exch: vec![None; n],
            snapshot: Vec::new(),
            opened: self.from.is_none(),
            done: false,
            stats: WindowStats::default(),
        }
    }
}

/// What cutting a window did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Events before `from`, applied to the books only.
    pub before: u64,
    /// Level events of the opening snapshot.
    pub snapshot_levels: u64,
    /// Events passed through.
    pub passed: u64,
}

/// An [`EventSource`] cut to a window: each replay cursor iterates `inner` through
/// [`TimeWindow::cut`], so a mapped file is windowed with no copy. The count and span
/// of the window are found once, by one pass, when it is made.
#[derive(Debug)]
pub struct WindowedSource<S> {
    inner: S,
    window: TimeWindow,
    instruments: usize,
    count: usize,
    span: Option<(Ts, Ts)>,
    stats: WindowStats,
}

impl<S: EventSource> WindowedSource<S> {
    /// `inner` (whose instrument table has `instruments` entries) cut to `window`.
    pub fn new(inner: S, window: TimeWindow, instruments: usize) -> WindowedSource<S> {
        let (mut count, mut span, mut stats) = (inner.event_count(), inner.local_span(), WindowStats::default());
        if !window.is_all() {
            let mut it = window.cut(inner.events(), instruments);
            let (mut first, mut last, mut n) = (None, None, 0usize);
            for ev in it.by_ref() {
                first.get_or_insert(ev.local_ts);
                last = Some(ev.local_ts);
                n += 1;
            }
            (count, span, stats) = (n, first.zip(last), it.stats());
        }
        WindowedSource { inner, window, instruments, count, span, stats }
    }

    /// What the window cut (all zero for the whole data).
    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// The source the window is cut from.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: EventSource> EventSource for WindowedSource<S> {
    type Iter<'a>
        = Windowed<S::Iter<'a>>
    where
        S: 'a;

    fn events(&self) -> Self::Iter<'_> {
        self.window.cut(self.inner.events(), self.instruments)
    }

    fn event_count(&self) -> usize {
        self.count
    }

    fn local_span(&self) -> Option<(Ts, Ts)> {
        self.span
    }
}

/// The iterator of [`TimeWindow::cut`].
#[derive(Debug, Clone)]
pub struct Windowed<I> {
    inner: I,
    window: TimeWindow,
    books: Vec<Book>,
    /// The exchange time of each instrument's last event before `from`.
    last_exch: Vec<Option<Ts>>,
    /// The opening snapshot, in reverse order (popped from the back).
    snapshot: Vec<MarketEvent>,
    opened: bool,
    done: bool,
    stats: WindowStats,
}

impl<I> Windowed<I> {
    /// The counters so far.
    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Writes the books out as the opening snapshot at local time `at`, then `first`.
    fn open(&mut self, at: Ts, first: MarketEvent) {
        let mut out = Vec::new();
        for (id, (book, exch)) in self.books.iter().zip(&self.last_exch).enumerate() {
            let Some(exch_ts) = *exch else { continue };
            let ev =
                |kind, px, qty, flags| MarketEvent { exch_ts, local_ts: at, px, qty, inst: id as InstId, kind, flags };
            out.push(ev(EventKind::Clear, 0, 0, 0));
            let levels = book.side(Side::Buy).iter().map(|l| (EventKind::BidLevel, l));
            let levels = levels.chain(book.side(Side::Sell).iter().map(|l| (EventKind::AskLevel, l)));
            for (kind, l) in levels {
                out.push(ev(kind, l.px, l.qty, 0));
                self.stats.snapshot_levels += 1;
            }
            if let Some(last) = out.last_mut() {
                last.flags |= MarketEvent::END_OF_BATCH;
            }
        }
        out.push(first);
        self.stats.passed += 1;
        out.reverse();
        self.snapshot = out;
        self.books = Vec::new();
        self.opened = true;
    }
}

impl<I: Iterator<Item = MarketEvent>> Iterator for Windowed<I> {
    type Item = MarketEvent;

    fn next(&mut self) -> Option<MarketEvent> {
        if let Some(ev) = self.snapshot.pop() {
            return Some(ev);
        }
        if self.done {
            return None;
        }
        loop {
            let ev = self.inner.next()?;
            if self.window.to.is_some_and(|t| ev.local_ts >= t) {
                self.done = true;
                return None;
            }
            if self.opened {
                self.stats.passed += 1;
                return Some(ev);
            }
            let from = self.window.from.unwrap_or(Ts::MIN);
            if ev.local_ts < from {
                self.stats.before += 1;
                if let Some(book) = self.books.get_mut(ev.inst as usize) {
                    book.apply(&ev);
                    self.last_exch[ev.inst as usize] = Some(ev.exch_ts);
                }
                continue;
            }
            self.open(from, ev);
            return self.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(local_ts: Ts, inst: InstId, kind: EventKind, px: i64, qty: i64) -> MarketEvent {
        MarketEvent { exch_ts: local_ts - 1, local_ts, px, qty, inst, kind, flags: MarketEvent::END_OF_BATCH }
    }

    fn data() -> Vec<MarketEvent> {
        vec![
            ev(10, 0, EventKind::BidLevel, 100, 5),
            ev(11, 0, EventKind::AskLevel, 102, 7),
            ev(12, 1, EventKind::BidLevel, 50, 1),
            ev(13, 0, EventKind::BidLevel, 99, 3),
            ev(14, 0, EventKind::TradeBuy, 102, 1),
            ev(15, 0, EventKind::BidLevel, 100, 0),
            ev(20, 0, EventKind::AskLevel, 103, 2),
            ev(25, 1, EventKind::AskLevel, 51, 4),
            ev(30, 0, EventKind::BidLevel, 98, 1),
        ]
    }

    #[test]
    fn the_whole_data_passes_unchanged() {
        let out: Vec<_> = TimeWindow::ALL.cut(data().into_iter(), 2).collect();
        assert_eq!(out, data());
    }

    #[test]
    fn a_window_opens_with_the_books_at_from_and_ends_before_to() {
        let w = TimeWindow { from: Some(18), to: Some(30) };
        let mut it = w.cut(data().into_iter(), 2);
        let out: Vec<_> = it.by_ref().collect();
        // Instrument 0 at 18: bid 99x3 (100 deleted at 15), ask 102x7; instrument 1: bid 50x1.
        let snap =
            |inst, kind, px, qty, flags, exch_ts| MarketEvent { exch_ts, local_ts: 18, px, qty, inst, kind, flags };
        let eob = MarketEvent::END_OF_BATCH;
        assert_eq!(
            out,
            vec![
                snap(0, EventKind::Clear, 0, 0, 0, 14),
                snap(0, EventKind::BidLevel, 99, 3, 0, 14),
                snap(0, EventKind::AskLevel, 102, 7, eob, 14),
                snap(1, EventKind::Clear, 0, 0, 0, 11),
                snap(1, EventKind::BidLevel, 50, 1, eob, 11),
                ev(20, 0, EventKind::AskLevel, 103, 2),
                ev(25, 1, EventKind::AskLevel, 51, 4),
            ]
        );
        assert_eq!(it.stats(), WindowStats { before: 6, snapshot_levels: 3, passed: 2 });
        // The snapshot rebuilds the books the data had at `from`.
        let mut books = [Book::new(MAX_LEVELS), Book::new(MAX_LEVELS)];
        for e in data().iter().filter(|e| e.local_ts < 18) {
            books[e.inst as usize].apply(e);
        }
        let mut rebuilt = [Book::new(MAX_LEVELS), Book::new(MAX_LEVELS)];
        for e in &out[..5] {
            rebuilt[e.inst as usize].apply(e);
        }
        for i in 0..2 {
            assert_eq!(books[i].bids(), rebuilt[i].bids());
            assert_eq!(books[i].asks(), rebuilt[i].asks());
        }
    }

    #[test]
    fn an_open_start_or_end_and_an_empty_window() {
        let to: Vec<_> = TimeWindow { from: None, to: Some(14) }.cut(data().into_iter(), 2).collect();
        assert_eq!(to, data()[..4].to_vec());
        let w = TimeWindow { from: Some(40), to: None };
        assert!(w.cut(data().into_iter(), 2).next().is_none(), "nothing at or after from: no snapshot either");
        assert!(TimeWindow { from: Some(5), to: Some(5) }.is_empty());
        assert!(TimeWindow { from: Some(5), to: Some(6) }.contains(5));
        assert!(!TimeWindow { from: Some(5), to: Some(6) }.contains(6));
    }

    #[test]
    fn unknown_instruments_are_ignored_before_and_passed_inside() {
        let mut d = data();
        d.insert(1, ev(10, 7, EventKind::BidLevel, 1, 1));
        d.push(ev(31, 7, EventKind::BidLevel, 1, 1));
        let out: Vec<_> = TimeWindow { from: Some(18), to: None }.cut(d.into_iter(), 2).collect();
        assert!(out[..5].iter().all(|e| e.inst < 2));
        assert_eq!(out.last().unwrap().inst, 7);
    }
}
