//! A local L2 order book in preallocated storage.
//!
//! Each side is an [`ArrayVec`] of levels sorted best first, so the top of book is index
//! 0 and an update is a binary search plus a short shift. The capacity is fixed at
//! compile time ([`MAX_LEVELS`]); the depth actually kept is set at run time and levels
//! beyond it are dropped (they are far from where we quote).
//!
//! Invariant, kept by construction: the book is never crossed. A newer level on one side
//! that reaches the other side's best removes the stale opposite levels it overlaps; the
//! newest information wins, as it does on the venue.
//!
//! # Screening
//!
//! [`Book::screen`] judges an event before it is applied, so that absurd but
//! well-formed data (a zero price, a trade at `i64::MAX` ticks) never reaches the book
//! or a fill: a price must be positive; a size positive (a level's may be 0, which
//! deletes it); and a price within a band around the book's last good mid,
//! `|px - mid| <= mid * band`. The last good mid is the mid of the last two-sided
//! state the book was in; it survives [`Book::clear`], so the first event after a gap
//! is judged against the market as it was, and only the very first events of a book,
//! before it was ever two-sided, are judged on positivity alone. A deletion (size 0)
//! is never out of band: removing a level cannot make the book wrong.

use arrayvec::ArrayVec;

use crate::event::{EventKind, MarketEvent};
use crate::types::{Px, Qty, Side};

/// Most levels a side can hold.
pub const MAX_LEVELS: usize = 64;

/// Why a market event was refused as bad data before it reached a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DataReject {
    /// The price is zero or negative.
    Price = 0,
    /// The size is negative, or zero for a trade or a best bid/ask.
    Size,
    /// The price is outside the band around the last good mid (`risk.data_band_bps`).
    Band,
    /// The exchange time is ahead of the local receive time by more than
    /// `risk.max_clock_jump_ms` (judged by the core, which knows the local time).
    ClockJump,
}

impl DataReject {
    /// Every reason, in counter order.
    pub const ALL: [DataReject; 4] = [DataReject::Price, DataReject::Size, DataReject::Band, DataReject::ClockJump];

    /// A stable snake_case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            DataReject::Price => "price",
            DataReject::Size => "size",
            DataReject::Band => "band",
            DataReject::ClockJump => "clock_jump",
        }
    }
}

/// Counters of refused market events, one per [`DataReject`] reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DataRejects {
    /// [`DataReject::Price`].
    pub price: u64,
    /// [`DataReject::Size`].
    pub size: u64,
    /// [`DataReject::Band`].
    pub band: u64,
    /// [`DataReject::ClockJump`].
    pub clock_jump: u64,
}

impl DataRejects {
    /// Counts one refusal.
    #[inline]
    pub fn count(&mut self, reason: DataReject) {
        match reason {
            DataReject::Price => self.price += 1,
            DataReject::Size => self.size += 1,
            DataReject::Band => self.band += 1,
            DataReject::ClockJump => self.clock_jump += 1,
        }
    }

    /// The count for one reason.
    pub fn get(&self, reason: DataReject) -> u64 {
        match reason {
            DataReject::Price => self.price,
            DataReject::Size => self.size,
            DataReject::Band => self.band,
            DataReject::ClockJump => self.clock_jump,
        }
    }

    /// Every refusal, all reasons.
    pub fn total(&self) -> u64 {
        self.price + self.size + self.band + self.clock_jump
    }
}

/// One price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Price in ticks.
    pub px: Px,
    /// Total size at the price in lots, > 0.
    pub qty: Qty,
}

/// An L2 book for one instrument.
#[derive(Debug, Clone)]
pub struct Book {
    /// Bids, highest price first.
    bids: ArrayVec<Level, MAX_LEVELS>,
    /// Asks, lowest price first.
    asks: ArrayVec<Level, MAX_LEVELS>,
    /// Levels kept per side, `1..=MAX_LEVELS`.
    depth: usize,
    /// Mid in ticks of the last two-sided state, kept through [`Book::clear`]; `None`
    /// until the book is first two-sided.
    last_mid: Option<f64>,
}

impl Default for Book {
    fn default() -> Self {
        Book::new(MAX_LEVELS)
    }
}

impl Book {
    /// An empty book keeping at most `depth` levels per side (clamped to
    /// `1..=MAX_LEVELS`).
    pub fn new(depth: usize) -> Self {
        Book { bids: ArrayVec::new(), asks: ArrayVec::new(), depth: depth.clamp(1, MAX_LEVELS), last_mid: None }
    }

    /// Judges `ev` before it is applied (see the module docs): `band` is the largest
    /// distance of its price from the last good mid as a fraction of that mid
    /// (`bps * 1e-4`; `f64::INFINITY` for none). A `Clear` always passes.
    #[inline]
    pub fn screen(&self, ev: &MarketEvent, band: f64) -> Result<(), DataReject> {
        let min_qty = match ev.kind {
            EventKind::Clear => return Ok(()),
            EventKind::BidLevel | EventKind::AskLevel => 0,
            _ => 1,
        };
        if ev.px <= 0 {
            return Err(DataReject::Price);
        }
        if ev.qty < min_qty {
            return Err(DataReject::Size);
        }
        if ev.qty > 0 {
            if let Some(mid) = self.last_mid {
                if (ev.px as f64 - mid).abs() > mid * band {
                    return Err(DataReject::Band);
                }
            }
        }
        Ok(())
    }

    /// Mid in ticks of the last two-sided state, also after [`Book::clear`]: the last
    /// good mark of the instrument. `None` until the book was first two-sided.
    #[inline]
    pub fn last_mid(&self) -> Option<f64> {
        self.last_mid
    }

    /// Removes every level (the last good mid is kept).
    #[inline]
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// Applies a market event. Trades leave the book alone (the venue's depth updates
    /// say what they consumed). Returns false for an event that was ignored as invalid
    /// (non-positive price, negative size); [`Book::screen`] is the full check.
    #[inline]
    pub fn apply(&mut self, ev: &MarketEvent) -> bool {
        if ev.kind == EventKind::Clear {
            self.clear();
            return true;
        }
        if ev.kind.is_trade() {
            return true;
        }
        if ev.px <= 0 || ev.qty < 0 {
            return false;
        }
        match ev.kind {
            EventKind::BidLevel => self.set(Side::Buy, ev.px, ev.qty),
            EventKind::AskLevel => self.set(Side::Sell, ev.px, ev.qty),
            EventKind::BestBid => {
                let n = self.bids.iter().take_while(|l| l.px > ev.px).count();
                self.bids.drain(..n);
                self.set(Side::Buy, ev.px, ev.qty);
            }
            EventKind::BestAsk => {
                let n = self.asks.iter().take_while(|l| l.px < ev.px).count();
                self.asks.drain(..n);
                self.set(Side::Sell, ev.px, ev.qty);
            }
            _ => {}
        }
        if let Some(mid) = self.mid_ticks() {
            self.last_mid = Some(mid);
        }
        true
    }

    /// Sets the total size at a price; 0 deletes the level.
    #[inline]
    pub fn set(&mut self, side: Side, px: Px, qty: Qty) {
        let depth = self.depth;
        let (levels, other) = match side {
            Side::Buy => (&mut self.bids, &mut self.asks),
            Side::Sell => (&mut self.asks, &mut self.bids),
        };
        // Best first: bids descending, asks ascending. `better(a, b)`: a ranks before b.
        let better = |a: Px, b: Px| match side {
            Side::Buy => a > b,
            Side::Sell => a < b,
        };
        let pos = levels.partition_point(|l| better(l.px, px));
        let exists = levels.get(pos).is_some_and(|l| l.px == px);
        if qty == 0 {
            if exists {
                levels.remove(pos);
            }
            return;
        }
        if exists {
            levels[pos].qty = qty;
        } else {
            if pos >= depth {
                return;
            }
            if levels.len() >= depth {
                levels.pop();
            }
            levels.insert(pos, Level { px, qty });
        }
        if pos == 0 {
            // Remove opposite levels this one crosses: they are stale.
            // (An opposite level at or through `px` is crossed: `!better(l.px, px)`.)
            let n = other.iter().take_while(|l| !better(l.px, px)).count();
            other.drain(..n);
        }
    }

    /// Best bid, if any.
    #[inline]
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.first().copied()
    }

    /// Best ask, if any.
    #[inline]
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.first().copied()
    }

    /// Best bid and ask prices when both sides exist.
    #[inline]
    pub fn top(&self) -> Option<(Px, Px)> {
        Some((self.bids.first()?.px, self.asks.first()?.px))
    }

    /// Mid price in ticks (a half-tick possible, hence `f64`).
    #[inline]
    pub fn mid_ticks(&self) -> Option<f64> {
        self.top().map(|(b, a)| (b + a) as f64 * 0.5)
    }

    /// Bid levels, best first.
    #[inline]
    pub fn bids(&self) -> &[Level] {
        &self.bids
    }

    /// Ask levels, best first.
    #[inline]
    pub fn asks(&self) -> &[Level] {
        &self.asks
    }

    /// Levels of one side, best first.
    #[inline]
    pub fn side(&self, side: Side) -> &[Level] {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// Size at a price on one side (0 if absent).
    #[inline]
    pub fn qty_at(&self, side: Side, px: Px) -> Qty {
        self.side(side).iter().find(|l| l.px == px).map_or(0, |l| l.qty)
    }

    /// True if either side is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() || self.asks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(kind: EventKind, px: Px, qty: Qty) -> MarketEvent {
        MarketEvent { exch_ts: 0, local_ts: 0, px, qty, inst: 0, kind, flags: 0 }
    }

    #[test]
    fn levels_sorted_best_first() {
        let mut b = Book::new(10);
        for (px, q) in [(100, 1), (102, 2), (101, 3)] {
            b.set(Side::Buy, px, q);
        }
        for (px, q) in [(105, 1), (103, 2), (104, 3)] {
            b.set(Side::Sell, px, q);
        }
        assert_eq!(b.bids().iter().map(|l| l.px).collect::<Vec<_>>(), vec![102, 101, 100]);
        assert_eq!(b.asks().iter().map(|l| l.px).collect::<Vec<_>>(), vec![103, 104, 105]);
        assert_eq!(b.top(), Some((102, 103)));
        assert_eq!(b.mid_ticks(), Some(102.5));
        b.set(Side::Buy, 102, 0);
        assert_eq!(b.best_bid(), Some(Level { px: 101, qty: 3 }));
        b.set(Side::Buy, 101, 7);
        assert_eq!(b.qty_at(Side::Buy, 101), 7);
        b.set(Side::Buy, 999, 0); // deleting an absent level is a no-op
        assert_eq!(b.bids().len(), 2);
    }

    #[test]
    fn depth_limit_keeps_the_best() {
        let mut b = Book::new(3);
        for px in [10, 11, 12, 13] {
            b.set(Side::Buy, px, 1);
        }
        assert_eq!(b.bids().iter().map(|l| l.px).collect::<Vec<_>>(), vec![13, 12, 11]);
        b.set(Side::Buy, 5, 1); // worse than everything kept: dropped
        assert_eq!(b.bids().len(), 3);
    }

    #[test]
    fn book_ticker_removes_better_stale_levels() {
        let mut b = Book::new(10);
        b.set(Side::Buy, 100, 1);
        b.set(Side::Buy, 99, 1);
        b.set(Side::Sell, 101, 1);
        b.apply(&ev(EventKind::BestBid, 99, 4));
        assert_eq!(b.best_bid(), Some(Level { px: 99, qty: 4 }));
        // A best ask below the book's bids removes those bids.
        b.apply(&ev(EventKind::BestAsk, 98, 2));
        assert!(b.bids().is_empty());
        assert_eq!(b.best_ask(), Some(Level { px: 98, qty: 2 }));
    }

    #[test]
    fn crossing_level_removes_stale_opposite_levels() {
        let mut b = Book::new(10);
        b.set(Side::Sell, 101, 1);
        b.set(Side::Sell, 102, 1);
        b.set(Side::Buy, 100, 1);
        b.set(Side::Buy, 101, 5);
        assert_eq!(b.top(), Some((101, 102)));
    }

    #[test]
    fn invalid_events_are_refused() {
        let mut b = Book::new(10);
        assert!(!b.apply(&ev(EventKind::BidLevel, 0, 1)));
        assert!(!b.apply(&ev(EventKind::AskLevel, 10, -1)));
        assert!(b.is_empty());
    }

    #[test]
    fn screen_refuses_absurd_data_and_keeps_the_last_good_mid() {
        let band = 2_000.0 * 1e-4;
        let mut b = Book::new(10);
        // Before the book was two-sided there is no mid: positivity only.
        assert_eq!(b.screen(&ev(EventKind::BidLevel, 1, 1), band), Ok(()));
        assert_eq!(b.screen(&ev(EventKind::TradeBuy, i64::MAX, 1), band), Ok(()));
        assert_eq!(b.screen(&ev(EventKind::BidLevel, 0, 1), band), Err(DataReject::Price));
        assert_eq!(b.screen(&ev(EventKind::TradeSell, 0, 1), band), Err(DataReject::Price));
        assert_eq!(b.screen(&ev(EventKind::AskLevel, 10, -1), band), Err(DataReject::Size));
        assert_eq!(b.screen(&ev(EventKind::TradeBuy, 10, 0), band), Err(DataReject::Size));
        assert_eq!(b.screen(&ev(EventKind::BestBid, 10, 0), band), Err(DataReject::Size));
        assert_eq!(b.last_mid(), None);
        b.apply(&ev(EventKind::BidLevel, 9_999, 1));
        b.apply(&ev(EventKind::AskLevel, 10_001, 1));
        assert_eq!(b.last_mid(), Some(10_000.0));
        // 20 % of 10 000 ticks: 8 000 and 12 000 pass, one tick beyond does not.
        assert_eq!(b.screen(&ev(EventKind::TradeBuy, 12_000, 1), band), Ok(()));
        assert_eq!(b.screen(&ev(EventKind::BidLevel, 8_000, 1), band), Ok(()));
        assert_eq!(b.screen(&ev(EventKind::TradeBuy, 12_001, 1), band), Err(DataReject::Band));
        assert_eq!(b.screen(&ev(EventKind::TradeSell, 922_337_203_685_477_580, 1), band), Err(DataReject::Band));
        assert_eq!(b.screen(&ev(EventKind::BestAsk, 7_999, 1), band), Err(DataReject::Band));
        // Deleting a level is never out of band; a Clear always passes.
        assert_eq!(b.screen(&ev(EventKind::AskLevel, 50_000, 0), band), Ok(()));
        assert_eq!(b.screen(&ev(EventKind::Clear, 0, 0), band), Ok(()));
        // The last good mid survives a gap: the first event after it is judged too.
        b.apply(&ev(EventKind::Clear, 0, 0));
        assert!(b.is_empty());
        assert_eq!(b.last_mid(), Some(10_000.0));
        assert_eq!(b.screen(&ev(EventKind::BidLevel, 20_000, 1), band), Err(DataReject::Band));
        assert_eq!(b.screen(&ev(EventKind::BidLevel, 20_000, 1), f64::INFINITY), Ok(()));
    }

    #[test]
    fn data_reject_counters_follow_the_reasons() {
        let mut c = DataRejects::default();
        for (k, r) in DataReject::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, k);
            for _ in 0..=k {
                c.count(r);
            }
            assert_eq!(c.get(r), k as u64 + 1, "{}", r.name());
        }
        assert_eq!(c.total(), 1 + 2 + 3 + 4);
    }

    proptest! {
        #[test]
        fn never_crossed_and_sorted(ops in prop::collection::vec((1u8..=4, 90i64..110, 0i64..5), 1..400)) {
            let mut b = Book::new(8);
            for (k, px, q) in ops {
                let kind = EventKind::from_u8(k).unwrap();
                let q = if matches!(kind, EventKind::BestBid | EventKind::BestAsk) { q.max(1) } else { q };
                b.apply(&ev(kind, px, q));
                if let Some((bid, ask)) = b.top() {
                    prop_assert!(bid < ask, "crossed {bid} {ask}");
                }
                prop_assert!(b.bids().windows(2).all(|w| w[0].px > w[1].px));
                prop_assert!(b.asks().windows(2).all(|w| w[0].px < w[1].px));
                prop_assert!(b.bids().iter().chain(b.asks()).all(|l| l.qty > 0));
                prop_assert!(b.bids().len() <= 8 && b.asks().len() <= 8);
            }
        }
    }
}
