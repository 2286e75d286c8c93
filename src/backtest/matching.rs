//! The simulated venue: an L2 book per instrument rebuilt from the market data at
//! exchange time, and our orders with their queue positions. The backtest's engine,
//! and, on the gateway thread, the venue of `run`, `latency` and paper trading
//! ([`Exchange`]; see [`super::venue`]).
//!
//! # Rules
//!
//! - **New orders** reach the engine after their entry latency (the driver's job) and
//!   are checked against the book as it is then. Invalid ones (size or price `<= 0`,
//!   duplicate id, unknown instrument) are rejected (`-1013`, `-2010`, `-1121`). A
//!   post-only order that would take (a buy at or above the best ask, a sell at or below
//!   the best bid) is rejected with `-2010`, as Binance's `LIMIT_MAKER`. Every accepted
//!   order is acknowledged with a `New` report first, as a venue's user stream does.
//! - **Marketable GTC/IOC orders** walk the opposite side level by level up to their
//!   limit, one taker fill per level at the level's price, and take the quantity they
//!   consume out of the engine's book (until the data next updates that level), so
//!   that two orders cannot take the same liquidity. An IOC remainder expires; a GTC
//!   remainder rests at its limit.
//! - **Resting orders** join the back of their level ([`QueueModel::place`]) and move up
//!   as the [`QueueModel`] says. They fill, as maker and at their own price:
//!   - *by the queue*: a trade at our price by an aggressor on the other side advances
//!     the queue; what it prints beyond the queue ahead fills us (partially, if less
//!     than our size). Several of our orders at one price share a trade in arrival
//!     order: the second gets what the first left of it.
//!   - *by a trade through*: a trade at a price better than ours (a buy above our ask,
//!     a sell below our bid), or at our price by an aggressor on our own side (a buyer
//!     lifting asks at our bid price means the asks reached our bid). Assumption: such
//!     a trade fills us **completely**; the market went through our price, so an
//!     aggressor took every order there, ours included. This is optimistic for a large
//!     order and a thin print; our orders are small next to the level sizes.
//!   - *by the book moving through*: the opposite best price reaches ours (our bid >=
//!     the best ask, our ask <= the best bid), for instance when a depth update shows
//!     the level gone and the other side there. Same assumption: a complete fill.
//! - **Cancels** remove the order (`Canceled`, with the unfilled size); an unknown id
//!   gets `Rejected` with `-2011`. `CancelAll` cancels every resting order, oldest first.
//! - **Replaces** ([`OrderCmd::Replace`]) are Binance's `cancelReplace` with
//!   `cancelReplaceMode = STOP_ON_FAILURE`, at one engine time (one message, one entry
//!   latency): the old order is cancelled, then the new one is a new order as above
//!   (it joins the back of the queue, even at the old price: no priority is kept). If
//!   the old order is no longer resting (filled, or unknown), nothing happens but a
//!   `Rejected` for the new id with `-2022` ("Order cancel-replace failed.").
//! - **Fees**: `notional * bps * 1e-4` with the maker or taker rate of
//!   [`crate::fees::Fees`] (a negative maker rate is a rebate).
//!
//! Our orders are not in the data, so they never change the data's book, and trades in
//! the data are assumed to have happened as printed (no market impact beyond the taker
//! walk above). Self-trades are not checked: a marketable order does not see our own
//! resting orders. The book keeps [`crate::book::MAX_LEVELS`] levels per side: an order
//! deeper than that sees its level as empty, and a level pushed out of the kept depth
//! by better ones keeps its last size for our order until the data updates it.
//!
//! **Bad data**: every market event passes [`Book::screen`] first, the same check as
//! the Core's (positive price and size, price within [`MatchingEngine::set_data_band_bps`]
//! of the engine book's last good mid; default
//! [`crate::risk::DEFAULT_DATA_BAND_BPS`]). A refused event is counted and ignored: it
//! changes no level and fills nothing, so a trade printed at `i64::MAX` ticks or at 0
//! cannot fill a quote. The engine judges with its own book, not the Core's verdict:
//! it sees each event earlier (at exchange time), it is also the venue behind paper
//! trading, where no Core verdict travels with the data, and a venue that trusts the
//! strategy's view of the market would not be a venue.
//!
//! After a [`EventKind::Clear`] (a gap in the data) our queue positions are unknown;
//! each is seeded again from its level's size when the rebuilt book next shows it
//! (the back of the queue: conservative).
//!
//! # Cost
//!
//! A market event costs one book update and a few comparisons against the price range
//! of our resting orders on its instrument, which dismiss it unless it trades at or
//! through one of our prices, resizes a level in our range, or moves the opposite best
//! price to one of our orders. Only then is each of our orders on that instrument
//! looked at: the opposite best price, and, if the update touched its price, its own
//! level (a scan from the top that stops at its price). Orders live in one
//! preallocated `Vec`, in arrival order; nothing allocates per event.

use serde::Serialize;

use crate::book::{Book, DataRejects};
use crate::event::{EventKind, ExecKind, ExecReport, MarketEvent, NewOrder, OrderCmd, OrderId, Tif};
use crate::fees::Fees;
use crate::gateway::Exchange;
use crate::types::{InstId, Instrument, Px, Qty, Side, Ts};
use crate::venue_codes::{
    reject_text, REJECT_INVALID, REJECT_REPLACE_FAILED, REJECT_UNKNOWN_ORDER, REJECT_UNKNOWN_SYMBOL, REJECT_WOULD_TAKE,
};

use super::queue::{QueueModel, QueuePos};

/// One of our orders resting in the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimOrder {
    /// Client order id.
    pub id: OrderId,
    /// Instrument index.
    pub inst: InstId,
    /// Side.
    pub side: Side,
    /// Limit price in ticks.
    pub px: Px,
    /// Size still open, lots, `> 0`.
    pub leaves: Qty,
    /// Queue position.
    pub pos: QueuePos,
    /// The data's size at our price when last looked at (0 if no level).
    pub level: Qty,
    /// Engine time the order arrived.
    pub arrived: Ts,
}

/// Counters of the matching engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MatchStats {
    /// Market events applied.
    pub events: u64,
    /// Market events for an instrument outside the table (ignored).
    pub unknown_instrument: u64,
    /// Market events refused as bad data (ignored): the total of
    /// [`MatchStats::data_rejects`].
    pub bad_events: u64,
    /// Refused market events per reason.
    pub data_rejects: DataRejects,
    /// New orders accepted.
    pub accepted: u64,
    /// New orders rejected (post-only crossing, invalid, duplicate, unknown symbol).
    pub rejected: u64,
    /// Of [`Self::rejected`], post-only orders that would have taken.
    pub rejected_post_only: u64,
    /// Cancels confirmed (by `Cancel` or `CancelAll`).
    pub canceled: u64,
    /// Cancels of an order the engine does not have.
    pub unknown_cancels: u64,
    /// Replaces done: the old order cancelled (also in [`Self::canceled`]) and the new
    /// one handled as a new order.
    pub replaced: u64,
    /// Replaces whose cancel failed (the old order already filled or unknown): the new
    /// order was not attempted and is rejected with `-2022`.
    pub replace_failed: u64,
    /// IOC orders or remainders expired.
    pub expired: u64,
    /// Fill reports (partial or full).
    pub fills: u64,
    /// Fills as taker (marketable orders).
    pub taker_fills: u64,
    /// Maker fills from the queue ahead being exhausted by trades at our price.
    pub queue_fills: u64,
    /// Maker fills from a trade through our price.
    pub trade_through_fills: u64,
    /// Maker fills from the opposite best price reaching ours.
    pub book_through_fills: u64,
    /// Lots filled as maker.
    pub maker_qty: i64,
    /// Lots filled as taker.
    pub taker_qty: i64,
    /// Most orders resting at once.
    pub max_resting: u64,
    /// Size changes at our price levels passed to the queue model.
    pub level_changes: u64,
}

/// Why a resting order filled (for the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FillCause {
    Queue,
    TradeThrough,
    BookThrough,
}

/// The matching engine, generic over the queue model (monomorphised).
#[derive(Debug)]
pub struct MatchingEngine<Q: QueueModel> {
    queue: Q,
    instruments: Vec<Instrument>,
    books: Vec<Book>,
    /// Resting orders, oldest first.
    orders: Vec<SimOrder>,
    /// Where our resting orders are, per instrument.
    spans: Vec<Span>,
    fees: Fees,
    /// [`Book::screen`]'s band, a fraction of the mid.
    data_band: f64,
    now: Ts,
    stats: MatchStats,
}

impl<Q: QueueModel> MatchingEngine<Q> {
    /// An engine for the data's instrument table, with fees and a queue model.
    pub fn new(instruments: Vec<Instrument>, fees: Fees, queue: Q) -> Self {
        let n = instruments.len();
        MatchingEngine {
            queue,
            instruments,
            books: vec![Book::default(); n],
            orders: Vec::with_capacity(256),
            spans: vec![Span::EMPTY; n],
            fees,
            data_band: crate::risk::DEFAULT_DATA_BAND_BPS * 1e-4,
            now: Ts::MIN,
            stats: MatchStats::default(),
        }
    }

    /// Sets the band of the bad-data check, in bps of the last good mid (the Core's
    /// `risk.data_band_bps`); `f64::INFINITY` for none.
    pub fn set_data_band_bps(&mut self, bps: f64) {
        self.data_band = bps * 1e-4;
    }

    /// Counters.
    pub fn stats(&self) -> MatchStats {
        self.stats
    }

    /// The engine's clock: the latest time it was given.
    pub fn now(&self) -> Ts {
        self.now
    }

    /// The engine's book of instrument `inst`.
    pub fn book(&self, inst: InstId) -> Option<&Book> {
        self.books.get(inst as usize)
    }

    /// Resting orders, oldest first.
    pub fn resting(&self) -> &[SimOrder] {
        &self.orders
    }

    /// The resting order `id`, if any.
    pub fn order(&self, id: OrderId) -> Option<&SimOrder> {
        self.orders.iter().find(|o| o.id == id)
    }

    /// Fee of a fill in the quote asset: `px * qty * bps * 1e-4` in price and asset
    /// units.
    #[inline]
    pub fn fee(&self, inst: InstId, px: Px, qty: Qty, maker: bool) -> f64 {
        self.fees.of(&self.instruments[inst as usize], px, qty, maker)
    }

    /// Applies a market event at engine time `ts`, appending fill reports to `out`.
    #[inline]
    pub fn on_market_at(&mut self, ev: &MarketEvent, ts: Ts, out: &mut Vec<ExecReport>) {
        self.now = self.now.max(ts);
        let i = ev.inst as usize;
        let Some(book) = self.books.get_mut(i) else {
            self.stats.unknown_instrument += 1;
            return;
        };
        self.stats.events += 1;
        if let Err(reason) = book.screen(ev, self.data_band) {
            self.stats.bad_events += 1;
            self.stats.data_rejects.count(reason);
            return;
        }
        match ev.kind {
            EventKind::TradeBuy | EventKind::TradeSell => {
                if self.spans[i].trade_reaches(ev.px) {
                    self.on_trade(ev, out);
                }
            }
            EventKind::Clear => {
                book.clear();
                for o in self.orders.iter_mut().filter(|o| o.inst == ev.inst) {
                    o.pos = QueuePos::UNKNOWN;
                    o.level = 0;
                }
            }
            _ => {
                if !book.apply(ev) {
                    self.stats.bad_events += 1;
                    return;
                }
                let span = &self.spans[i];
                if span.open > 0 {
                    let touch = match ev.kind {
                        EventKind::BidLevel => Touch::Level(Side::Buy, ev.px),
                        EventKind::AskLevel => Touch::Level(Side::Sell, ev.px),
                        EventKind::BestBid => Touch::Best(Side::Buy, ev.px),
                        _ => Touch::Best(Side::Sell, ev.px),
                    };
                    if span.touched(touch) || span.crossed(book) {
                        self.refresh(ev.inst, touch, out);
                    }
                }
            }
        }
    }

    /// Handles an order command arriving at engine time `ts`, appending reports to
    /// `out`.
    pub fn on_order_at(&mut self, cmd: &OrderCmd, ts: Ts, out: &mut Vec<ExecReport>) {
        self.now = self.now.max(ts);
        match cmd {
            OrderCmd::New(n) => self.new_order(n, out),
            OrderCmd::Cancel { id, inst } => self.cancel(*id, *inst, out),
            OrderCmd::Replace { old, new } => self.replace(*old, new, out),
            OrderCmd::CancelAll => {
                for o in &self.orders {
                    out.push(self.report(o, ExecKind::Canceled, o.px, 0, false, 0));
                }
                self.stats.canceled += self.orders.len() as u64;
                self.orders.clear();
                self.spans.iter_mut().for_each(|s| *s = Span::EMPTY);
            }
        }
    }

    #[inline]
    fn report(&self, o: &SimOrder, kind: ExecKind, px: Px, qty: Qty, maker: bool, code: i32) -> ExecReport {
        make_report(&self.instruments, &self.fees, self.now, o, kind, px, qty, maker, code)
    }

    fn reject(&mut self, n: &NewOrder, code: i32, out: &mut Vec<ExecReport>) {
        self.stats.rejected += 1;
        out.push(ExecReport::rejected(n.id, n.inst, n.side, n.px, code, reject_text(code), self.now));
    }

    fn new_order(&mut self, n: &NewOrder, out: &mut Vec<ExecReport>) {
        let i = n.inst as usize;
        if i >= self.books.len() {
            return self.reject(n, REJECT_UNKNOWN_SYMBOL, out);
        }
        if n.qty <= 0 || n.px <= 0 {
            return self.reject(n, REJECT_INVALID, out);
        }
        if self.orders.iter().any(|o| o.id == n.id) {
            return self.reject(n, REJECT_WOULD_TAKE, out);
        }
        let crosses = |book: &Book| match n.side {
            Side::Buy => book.best_ask().is_some_and(|l| l.px <= n.px),
            Side::Sell => book.best_bid().is_some_and(|l| l.px >= n.px),
        };
        if n.tif == Tif::PostOnly && crosses(&self.books[i]) {
            self.stats.rejected_post_only += 1;
            return self.reject(n, REJECT_WOULD_TAKE, out);
        }
        self.stats.accepted += 1;
        let mut o = SimOrder {
            id: n.id,
            inst: n.inst,
            side: n.side,
            px: n.px,
            leaves: n.qty,
            pos: QueuePos { ahead: 0.0, traded: 0.0 },
            level: 0,
            arrived: self.now,
        };
        out.push(self.report(&o, ExecKind::New, n.px, 0, false, 0));
        let mut took = false;
        while o.leaves > 0 && crosses(&self.books[i]) {
            let opposite = n.side.opposite();
            let Some(&level) = self.books[i].side(opposite).first() else { break };
            let qty = o.leaves.min(level.qty);
            o.leaves -= qty;
            self.books[i].set(opposite, level.px, level.qty - qty);
            self.stats.fills += 1;
            self.stats.taker_fills += 1;
            self.stats.taker_qty += qty;
            let kind = if o.leaves == 0 { ExecKind::Fill } else { ExecKind::PartialFill };
            out.push(self.report(&o, kind, level.px, qty, false, 0));
            took = true;
        }
        if took && self.spans[i].open > 0 {
            // Our resting orders on the side the walk consumed see their levels shrink.
            self.refresh(n.inst, Touch::Side(n.side.opposite()), out);
        }
        if o.leaves == 0 {
            return;
        }
        if n.tif == Tif::Ioc {
            self.stats.expired += 1;
            out.push(self.report(&o, ExecKind::Expired, n.px, 0, false, 0));
            return;
        }
        o.level = level_qty(&self.books[i], o.side, o.px);
        o.pos = self.queue.place(o.level);
        self.orders.push(o);
        self.respan(n.inst);
        self.stats.max_resting = self.stats.max_resting.max(self.orders.len() as u64);
    }

    fn cancel(&mut self, id: OrderId, inst: InstId, out: &mut Vec<ExecReport>) {
        match self.orders.iter().position(|o| o.id == id) {
            Some(k) => {
                let o = self.orders.remove(k);
                self.respan(o.inst);
                self.stats.canceled += 1;
                out.push(self.report(&o, ExecKind::Canceled, o.px, 0, false, 0));
            }
            None => {
                // Already filled or cancelled: the venue says unknown order.
                self.stats.unknown_cancels += 1;
                let text = reject_text(REJECT_UNKNOWN_ORDER);
                out.push(ExecReport::rejected(id, inst, Side::Buy, 0, REJECT_UNKNOWN_ORDER, text, self.now));
            }
        }
    }

    /// Cancel-replace with Binance's `STOP_ON_FAILURE`, at one engine time: `old` is
    /// cancelled (`Canceled`, with its unfilled size) and `new` then goes through
    /// [`Self::new_order`] like any new order, so it joins the back of its level's
    /// queue even at the old price. If `old` is not resting (it filled, or was never
    /// accepted) nothing is cancelled and `new` is not attempted: one `Rejected` for
    /// `new.id` with [`REJECT_REPLACE_FAILED`] (Binance's answer, whose nested cancel
    /// error is `-2011`).
    fn replace(&mut self, old: OrderId, new: &NewOrder, out: &mut Vec<ExecReport>) {
        if self.orders.iter().any(|o| o.id == old && o.inst == new.inst) {
            self.stats.replaced += 1;
            self.cancel(old, new.inst, out);
            self.new_order(new, out);
        } else {
            self.stats.replace_failed += 1;
            self.reject(new, REJECT_REPLACE_FAILED, out);
        }
    }

    /// Recomputes where our orders on `inst` are (after one was added or removed).
    fn respan(&mut self, inst: InstId) {
        let mut span = Span::EMPTY;
        for o in self.orders.iter().filter(|o| o.inst == inst) {
            span.open += 1;
            match o.side {
                Side::Buy => {
                    span.bid_lo = span.bid_lo.min(o.px);
                    span.bid_hi = span.bid_hi.max(o.px);
                }
                Side::Sell => {
                    span.ask_lo = span.ask_lo.min(o.px);
                    span.ask_hi = span.ask_hi.max(o.px);
                }
            }
        }
        self.spans[inst as usize] = span;
    }

    /// Fills `qty` of resting order `k` as maker at its price; removes it when done.
    /// Returns true if it was removed.
    #[inline]
    fn fill_resting(&mut self, k: usize, qty: Qty, cause: FillCause, out: &mut Vec<ExecReport>) -> bool {
        let o = &mut self.orders[k];
        o.leaves -= qty;
        let done = o.leaves == 0;
        let o = *o;
        self.stats.fills += 1;
        self.stats.maker_qty += qty;
        match cause {
            FillCause::Queue => self.stats.queue_fills += 1,
            FillCause::TradeThrough => self.stats.trade_through_fills += 1,
            FillCause::BookThrough => self.stats.book_through_fills += 1,
        }
        let kind = if done { ExecKind::Fill } else { ExecKind::PartialFill };
        out.push(self.report(&o, kind, o.px, qty, true, 0));
        if done {
            self.orders.remove(k);
            self.respan(o.inst);
        }
        done
    }

    /// A trade print: through fills and queue advances for our orders on its
    /// instrument.
    #[inline]
    fn on_trade(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>) {
        // The side whose resting orders the aggressor hit.
        let hit = if ev.kind == EventKind::TradeBuy { Side::Sell } else { Side::Buy };
        // Volume of this print still to be shared among our orders at its price.
        let mut budget = ev.qty.max(0);
        let mut k = 0;
        while k < self.orders.len() {
            let o = self.orders[k];
            if o.inst != ev.inst {
                k += 1;
                continue;
            }
            let better = match o.side {
                Side::Buy => ev.px < o.px,
                Side::Sell => ev.px > o.px,
            };
            if better || (ev.px == o.px && o.side != hit) {
                if !self.fill_resting(k, o.leaves, FillCause::TradeThrough, out) {
                    k += 1;
                }
                continue;
            }
            if ev.px == o.px && budget > 0 {
                let pos = &mut self.orders[k].pos;
                self.queue.trade(pos, budget);
                let qty = pos.take_fill(o.leaves);
                if qty > 0 {
                    budget -= qty;
                    if self.fill_resting(k, qty, FillCause::Queue, out) {
                        continue;
                    }
                }
            }
            k += 1;
        }
    }

    /// After a book update of `inst`: book-through fills, then level changes through
    /// the queue model at our prices the update may have changed (`touch`).
    #[inline]
    fn refresh(&mut self, inst: InstId, touch: Touch, out: &mut Vec<ExecReport>) {
        let book = &self.books[inst as usize];
        let best_bid = book.best_bid().map_or(Px::MIN, |l| l.px);
        let best_ask = book.best_ask().map_or(Px::MAX, |l| l.px);
        let mut k = 0;
        while k < self.orders.len() {
            let o = &mut self.orders[k];
            if o.inst != inst {
                k += 1;
                continue;
            }
            let through = match o.side {
                Side::Buy => best_ask <= o.px,
                Side::Sell => best_bid >= o.px,
            };
            if through {
                let leaves = o.leaves;
                if !self.fill_resting(k, leaves, FillCause::BookThrough, out) {
                    k += 1;
                }
                continue;
            }
            if touch.reaches(o.side, o.px) {
                let new = level_qty(&self.books[inst as usize], o.side, o.px);
                if new != o.level {
                    self.stats.level_changes += 1;
                    if o.pos.ahead.is_finite() {
                        self.queue.level_change(&mut o.pos, o.level, new);
                    } else if new > 0 {
                        o.pos = self.queue.place(new);
                    }
                    o.level = new;
                }
            }
            k += 1;
        }
    }
}

/// Which of our price levels a book change may have resized.
#[derive(Debug, Clone, Copy)]
enum Touch {
    /// One level (diff depth).
    Level(Side, Px),
    /// A new best level: it and every better level of its side (book ticker).
    Best(Side, Px),
    /// Any level of one side (our own taker walk).
    Side(Side),
}

impl Touch {
    /// True if a level at `px` on `side` may have changed. (A level on the other side
    /// removed because the update crossed it is behind a best price that reaches our
    /// order there, which fills it as a book-through instead.)
    #[inline]
    fn reaches(self, side: Side, px: Px) -> bool {
        match self {
            Touch::Level(s, p) => s == side && p == px,
            Touch::Best(s, p) => {
                s == side
                    && match side {
                        Side::Buy => px >= p,
                        Side::Sell => px <= p,
                    }
            }
            Touch::Side(s) => s == side,
        }
    }
}

/// The price range of our resting orders on one instrument, per side, so that most
/// market events can be dismissed with a few comparisons. An empty side has `lo > hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    open: u32,
    bid_lo: Px,
    bid_hi: Px,
    ask_lo: Px,
    ask_hi: Px,
}

impl Span {
    const EMPTY: Span = Span { open: 0, bid_lo: Px::MAX, bid_hi: Px::MIN, ask_lo: Px::MAX, ask_hi: Px::MIN };

    /// True if a trade at `px` may fill or advance one of our orders: at or below our
    /// highest bid, or at or above our lowest ask.
    #[inline]
    fn trade_reaches(&self, px: Px) -> bool {
        px <= self.bid_hi || px >= self.ask_lo
    }

    /// True if a book change may have resized one of our levels.
    #[inline]
    fn touched(&self, touch: Touch) -> bool {
        match touch {
            Touch::Level(Side::Buy, p) => self.bid_lo <= p && p <= self.bid_hi,
            Touch::Level(Side::Sell, p) => self.ask_lo <= p && p <= self.ask_hi,
            Touch::Best(Side::Buy, p) => self.bid_hi >= p,
            Touch::Best(Side::Sell, p) => self.ask_lo <= p,
            Touch::Side(_) => true,
        }
    }

    /// True if the book's opposite best price reaches one of our orders.
    #[inline]
    fn crossed(&self, book: &Book) -> bool {
        book.best_ask().is_some_and(|l| l.px <= self.bid_hi) || book.best_bid().is_some_and(|l| l.px >= self.ask_lo)
    }
}

/// Size at `px` on one side, scanning from the top and stopping at `px` (0 if no
/// level there).
#[inline]
fn level_qty(book: &Book, side: Side, px: Px) -> Qty {
    for l in book.side(side) {
        if l.px == px {
            return l.qty;
        }
        let passed = match side {
            Side::Buy => l.px < px,
            Side::Sell => l.px > px,
        };
        if passed {
            return 0;
        }
    }
    0
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn make_report(
    instruments: &[Instrument],
    fees: &Fees,
    now: Ts,
    o: &SimOrder,
    kind: ExecKind,
    px: Px,
    qty: Qty,
    maker: bool,
    code: i32,
) -> ExecReport {
    let fee = if qty > 0 { fees.of(&instruments[o.inst as usize], px, qty, maker) } else { 0.0 };
    ExecReport {
        id: o.id,
        inst: o.inst,
        side: o.side,
        kind,
        px,
        qty,
        leaves: o.leaves,
        fee,
        fee_base: 0.0,
        msg: reject_text(code),
        maker,
        code,
        exch_ts: now,
    }
}

impl<Q: QueueModel> Exchange for MatchingEngine<Q> {
    fn needs_market(&self) -> bool {
        true
    }

    /// True: [`OrderCmd::Replace`] is atomic here (see the module docs).
    fn supports_replace(&self) -> bool {
        true
    }

    /// `now` is the gateway's clock; the engine keeps the latest of the times it is
    /// given, so an order takes effect at the exchange time of the last market event
    /// (the gateway's own clock, counted from its start, is far behind it).
    fn on_order(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>) {
        self.on_order_at(cmd, now, out);
    }

    /// At the event's exchange time.
    fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>) {
        self.on_market_at(ev, ev.exch_ts, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::queue::{ProbPower, RiskAverse};

    const ETH: InstId = 0;

    fn eth() -> Instrument {
        Instrument::new("ETHUSDT", "0.01".parse().unwrap(), "0.0001".parse().unwrap())
    }

    fn ev(kind: EventKind, px: Px, qty: Qty) -> MarketEvent {
        MarketEvent { exch_ts: 10, local_ts: 10, px, qty, inst: ETH, kind, flags: MarketEvent::END_OF_BATCH }
    }

    /// Bids 100 x 30, 99 x 50; asks 101 x 20, 102 x 40.
    fn engine<Q: QueueModel>(q: Q) -> MatchingEngine<Q> {
        let mut m = MatchingEngine::new(vec![eth()], Fees { maker_bps: 1.0, taker_bps: 5.0 }, q);
        let mut out = Vec::new();
        for (kind, px, qty) in [
            (EventKind::BidLevel, 100, 30),
            (EventKind::BidLevel, 99, 50),
            (EventKind::AskLevel, 101, 20),
            (EventKind::AskLevel, 102, 40),
        ] {
            m.on_market_at(&ev(kind, px, qty), 1, &mut out);
        }
        assert!(out.is_empty());
        m
    }

    fn new(id: OrderId, side: Side, px: Px, qty: Qty, tif: Tif) -> OrderCmd {
        OrderCmd::New(NewOrder { id, inst: ETH, side, px, qty, tif })
    }

    fn kinds(out: &[ExecReport]) -> Vec<(ExecKind, Px, Qty, Qty, bool)> {
        out.iter().map(|r| (r.kind, r.px, r.qty, r.leaves, r.maker)).collect()
    }

    #[test]
    fn absurd_prints_are_refused_and_fill_nothing() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Sell, 102, 10, Tif::PostOnly), 5, &mut out);
        m.on_order_at(&new(2, Side::Buy, 100, 10, Tif::PostOnly), 5, &mut out);
        out.clear();
        // 92233720368547758.07 at a 0.01 tick is i64::MAX ticks: a buy "through" our
        // ask; a sell at 0 "through" our bid; zero sizes; a best bid at 0.
        m.on_market_at(&ev(EventKind::TradeBuy, i64::MAX, 5), 10, &mut out);
        m.on_market_at(&ev(EventKind::TradeSell, 0, 5), 10, &mut out);
        m.on_market_at(&ev(EventKind::TradeSell, 1, 5), 10, &mut out);
        m.on_market_at(&ev(EventKind::TradeBuy, 103, 0), 10, &mut out);
        m.on_market_at(&ev(EventKind::BestBid, 0, 5), 10, &mut out);
        m.on_market_at(&ev(EventKind::BestBid, 200, 5), 10, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(m.resting().len(), 2);
        assert_eq!(m.book(ETH).unwrap().top(), Some((100, 101)), "the book is untouched");
        let s = m.stats();
        assert_eq!((s.data_rejects.band, s.data_rejects.price, s.data_rejects.size), (3, 2, 1));
        assert_eq!(s.bad_events, 6);
        // A sane trade through still fills; without a band the absurd one would too.
        m.on_market_at(&ev(EventKind::TradeBuy, 103, 1), 11, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::Fill, 102, 10, 0, true)]);
    }

    #[test]
    fn joins_back_of_queue_and_is_advanced_by_trades() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Buy, 100, 10, Tif::PostOnly), 5, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::New, 100, 0, 10, false)]);
        assert_eq!(m.order(1).unwrap().pos.ahead, 30.0, "joins behind the 30 lots there");
        assert_eq!(m.order(1).unwrap().arrived, 5);
        out.clear();
        // 25 lots sold into the bid: 5 left ahead of us.
        m.on_market_at(&ev(EventKind::TradeSell, 100, 25), 10, &mut out);
        assert!(out.is_empty());
        assert_eq!(m.order(1).unwrap().pos.ahead, 5.0);
        // A buy aggressor at our bid price does not hit bids: a trade through, see below;
        // a sell at a lower price is through too. Here: 8 more sold at 100: 3 for us.
        m.on_market_at(&ev(EventKind::TradeSell, 100, 8), 11, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::PartialFill, 100, 3, 7, true)]);
        assert_eq!(out[0].exch_ts, 11);
        assert_eq!(m.order(1).unwrap().pos.ahead, 0.0);
        out.clear();
        m.on_market_at(&ev(EventKind::TradeSell, 100, 100), 12, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::Fill, 100, 7, 0, true)]);
        assert!(m.resting().is_empty());
        let s = m.stats();
        assert_eq!((s.queue_fills, s.fills, s.maker_qty), (2, 2, 10));
    }

    #[test]
    fn cancels_advance_the_queue_per_model() {
        // The same level history under two models: joiners go behind us in both;
        // cancels move us up only in the probabilistic one (beyond the cap by the
        // level's size, which binds both).
        let mut ra = engine(RiskAverse);
        let mut pp = engine(ProbPower::new(1.0));
        let mut out = Vec::new();
        ra.on_order_at(&new(1, Side::Buy, 100, 10, Tif::PostOnly), 5, &mut out);
        pp.on_order_at(&new(1, Side::Buy, 100, 10, Tif::PostOnly), 5, &mut out);
        // 5 more join behind us: 35; then 15 cancelled: 20.
        ra.on_market_at(&ev(EventKind::BidLevel, 100, 35), 6, &mut out);
        pp.on_market_at(&ev(EventKind::BidLevel, 100, 35), 6, &mut out);
        assert_eq!(ra.order(1).unwrap().pos.ahead, 30.0);
        assert_eq!(pp.order(1).unwrap().pos.ahead, 30.0);
        ra.on_market_at(&ev(EventKind::BidLevel, 100, 20), 7, &mut out);
        pp.on_market_at(&ev(EventKind::BidLevel, 100, 20), 7, &mut out);
        assert_eq!(ra.order(1).unwrap().pos.ahead, 20.0, "risk-averse: only the cap");
        // n = 1: front 30, back 5, chg 15: p = 5/35; ahead = 30 - (30/35) * 15 + min(5 - 15 * 5/35, 0)
        let p = 5.0 / 35.0;
        let want = 30.0 - (1.0 - p) * 15.0 + (5.0 - p * 15.0f64).min(0.0);
        assert!((pp.order(1).unwrap().pos.ahead - want).abs() < 1e-9);
        assert!(out.iter().all(|r| r.kind == ExecKind::New));
    }

    #[test]
    fn trade_through_fills_completely() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Sell, 102, 10, Tif::PostOnly), 5, &mut out);
        m.on_order_at(&new(2, Side::Buy, 99, 10, Tif::Gtc), 5, &mut out);
        out.clear();
        // A 1-lot buy at 103: through our ask at 102, whatever the queue (40 ahead).
        m.on_market_at(&ev(EventKind::TradeBuy, 103, 1), 20, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::Fill, 102, 10, 0, true)]);
        out.clear();
        // A buyer lifting asks at 99 means the asks came down to our bid at 99.
        m.on_market_at(&ev(EventKind::TradeBuy, 99, 1), 21, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::Fill, 99, 10, 0, true)]);
        assert_eq!(m.stats().trade_through_fills, 2);
        assert!(m.resting().is_empty());
    }

    #[test]
    fn book_moving_through_fills() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Buy, 100, 10, Tif::PostOnly), 5, &mut out);
        out.clear();
        // The best ask comes down to 100: our bid is hit.
        m.on_market_at(&ev(EventKind::BestAsk, 100, 7), 20, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::Fill, 100, 10, 0, true)]);
        assert_eq!(m.stats().book_through_fills, 1);
    }

    #[test]
    fn level_removed_puts_us_at_the_front() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Buy, 100, 10, Tif::PostOnly), 5, &mut out);
        // Book ticker: best bid now 99: the 100 level is gone (we are alone there).
        m.on_market_at(&ev(EventKind::BestBid, 99, 50), 6, &mut out);
        assert_eq!(m.order(1).unwrap().pos.ahead, 0.0);
        out.clear();
        m.on_market_at(&ev(EventKind::TradeSell, 100, 4), 7, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::PartialFill, 100, 4, 6, true)]);
    }

    #[test]
    fn orders_at_one_price_share_a_trade_in_arrival_order() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_market_at(&ev(EventKind::BidLevel, 100, 0), 2, &mut out);
        m.on_order_at(&new(1, Side::Buy, 100, 3, Tif::PostOnly), 5, &mut out); // ahead 0
        m.on_market_at(&ev(EventKind::BidLevel, 100, 5), 6, &mut out);
        m.on_order_at(&new(2, Side::Buy, 100, 10, Tif::PostOnly), 7, &mut out); // ahead 5
        out.clear();
        // 10 lots print: order 1 takes 3, 7 remain for order 2, 5 of them ahead of it.
        m.on_market_at(&ev(EventKind::TradeSell, 100, 10), 8, &mut out);
        let fills: Vec<_> = out.iter().map(|r| (r.id, r.qty)).collect();
        assert_eq!(fills, vec![(1, 3), (2, 2)]);
    }

    #[test]
    fn marketable_orders_walk_the_book_and_pay_taker() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        // Buy 30 up to 102: 20 at 101, 10 at 102.
        m.on_order_at(&new(1, Side::Buy, 102, 30, Tif::Ioc), 5, &mut out);
        assert_eq!(
            kinds(&out),
            vec![
                (ExecKind::New, 102, 0, 30, false),
                (ExecKind::PartialFill, 101, 20, 10, false),
                (ExecKind::Fill, 102, 10, 0, false),
            ]
        );
        // Fees: taker 5 bps of 1.01 * 0.002 and 1.02 * 0.001.
        assert!((out[1].fee - 1.01 * 0.002 * 5e-4).abs() < 1e-15);
        assert!((out[2].fee - 1.02 * 0.001 * 5e-4).abs() < 1e-15);
        // The liquidity taken is gone from the engine's book.
        assert_eq!(m.book(ETH).unwrap().best_ask().map(|l| (l.px, l.qty)), Some((102, 30)));
        out.clear();
        // IOC beyond the depth up to its limit: the remainder expires.
        m.on_order_at(&new(2, Side::Sell, 100, 40, Tif::Ioc), 6, &mut out);
        assert_eq!(
            kinds(&out),
            vec![
                (ExecKind::New, 100, 0, 40, false),
                (ExecKind::PartialFill, 100, 30, 10, false),
                (ExecKind::Expired, 100, 0, 10, false),
            ]
        );
        out.clear();
        // GTC remainder rests at its limit, at the front (nothing there any more):
        // sell 60 down to 99 takes the 50 at 99, 10 rest at 99.
        m.on_order_at(&new(3, Side::Sell, 99, 60, Tif::Gtc), 7, &mut out);
        assert_eq!(kinds(&out)[1..], [(ExecKind::PartialFill, 99, 50, 10, false)]);
        let o = m.order(3).unwrap();
        assert_eq!((o.leaves, o.pos.ahead, o.level), (10, 0.0, 0));
        assert!(m.book(ETH).unwrap().bids().is_empty());
        let s = m.stats();
        assert_eq!((s.taker_fills, s.taker_qty, s.expired), (4, 110, 1));
    }

    #[test]
    fn our_taker_walk_shrinks_the_level_of_our_resting_order() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Sell, 101, 10, Tif::PostOnly), 5, &mut out);
        assert_eq!(m.order(1).unwrap().pos.ahead, 20.0);
        m.on_order_at(&new(2, Side::Buy, 101, 5, Tif::Ioc), 6, &mut out);
        let o = m.order(1).unwrap();
        assert_eq!((o.level, o.pos.ahead), (15, 15.0));
    }

    #[test]
    fn updates_elsewhere_leave_the_queue_alone() {
        let mut m = engine(ProbPower::new(2.0));
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Buy, 99, 10, Tif::PostOnly), 5, &mut out);
        for (kind, px, qty) in [
            (EventKind::BidLevel, 100, 1),
            (EventKind::AskLevel, 99 + 3, 1),
            (EventKind::BestBid, 100, 2),
            (EventKind::BestAsk, 101, 2),
        ] {
            m.on_market_at(&ev(kind, px, qty), 6, &mut out);
        }
        assert_eq!(m.order(1).unwrap().pos.ahead, 50.0);
        m.on_market_at(&ev(EventKind::BestBid, 98, 2), 7, &mut out);
        assert_eq!(m.order(1).unwrap().pos.ahead, 0.0, "a best bid below us removes our level");
    }

    #[test]
    fn post_only_crossing_rejected_and_fees_are_bps_of_notional() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Buy, 101, 10, Tif::PostOnly), 5, &mut out);
        m.on_order_at(&new(2, Side::Sell, 100, 10, Tif::PostOnly), 5, &mut out);
        assert!(out.iter().all(|r| r.kind == ExecKind::Rejected && r.code == REJECT_WOULD_TAKE));
        assert_eq!(m.stats().rejected_post_only, 2);
        // Maker fee: 1 bp of 1.00 * 0.0010 = 1e-7.
        assert!((m.fee(ETH, 100, 10, true) - 1e-7).abs() < 1e-20);
        // A maker rebate is a negative fee.
        let mut r = MatchingEngine::new(vec![eth()], Fees { maker_bps: -0.5, taker_bps: 2.0 }, RiskAverse);
        assert!((r.fee(ETH, 250_000, 10_000, true) - -(2500.0 * 1.0 * 0.5e-4)).abs() < 1e-12);
        out.clear();
        r.on_order_at(&new(9, Side::Buy, 0, 1, Tif::Gtc), 1, &mut out);
        r.on_order_at(&new(9, Side::Buy, 1, 0, Tif::Gtc), 1, &mut out);
        r.on_order_at(
            &OrderCmd::New(NewOrder { id: 9, inst: 7, side: Side::Buy, px: 1, qty: 1, tif: Tif::Gtc }),
            1,
            &mut out,
        );
        let codes: Vec<i32> = out.iter().map(|r| r.code).collect();
        assert_eq!(codes, vec![REJECT_INVALID, REJECT_INVALID, REJECT_UNKNOWN_SYMBOL]);
    }

    #[test]
    fn cancels_unknown_cancels_and_cancel_all() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Buy, 98, 10, Tif::PostOnly), 5, &mut out);
        m.on_order_at(&new(2, Side::Sell, 103, 10, Tif::PostOnly), 5, &mut out);
        m.on_order_at(&new(3, Side::Sell, 104, 10, Tif::PostOnly), 5, &mut out);
        m.on_order_at(&new(3, Side::Sell, 104, 10, Tif::PostOnly), 5, &mut out);
        assert_eq!(out.last().unwrap().kind, ExecKind::Rejected, "duplicate id");
        out.clear();
        m.on_order_at(&OrderCmd::Cancel { id: 2, inst: ETH }, 6, &mut out);
        m.on_order_at(&OrderCmd::Cancel { id: 2, inst: ETH }, 6, &mut out);
        assert_eq!(kinds(&out)[0], (ExecKind::Canceled, 103, 0, 10, false));
        assert_eq!((out[1].kind, out[1].code), (ExecKind::Rejected, REJECT_UNKNOWN_ORDER));
        out.clear();
        m.on_order_at(&OrderCmd::CancelAll, 7, &mut out);
        assert_eq!(out.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 3], "oldest first");
        assert!(m.resting().is_empty());
        out.clear();
        // No orders left: a trade anywhere fills nothing.
        m.on_market_at(&ev(EventKind::TradeSell, 1, 1_000), 8, &mut out);
        assert!(out.is_empty());
    }

    fn replace(old: OrderId, id: OrderId, side: Side, px: Px, qty: Qty) -> OrderCmd {
        OrderCmd::Replace { old, new: NewOrder { id, inst: ETH, side, px, qty, tif: Tif::PostOnly } }
    }

    #[test]
    fn a_replace_at_the_same_price_goes_to_the_back_of_the_queue() {
        // Two engines, the same history: in one the bid is replaced at its own price.
        let (mut kept, mut replaced) = (engine(RiskAverse), engine(RiskAverse));
        let mut out = Vec::new();
        for m in [&mut kept, &mut replaced] {
            m.on_order_at(&new(1, Side::Buy, 100, 10, Tif::PostOnly), 5, &mut out);
            // 25 of the 30 lots ahead trade away: 5 left ahead.
            m.on_market_at(&ev(EventKind::TradeSell, 100, 25), 6, &mut out);
        }
        assert_eq!(replaced.order(1).unwrap().pos.ahead, 5.0);
        out.clear();
        replaced.on_order_at(&replace(1, 2, Side::Buy, 100, 10), 7, &mut out);
        assert_eq!(
            out.iter().map(|r| (r.id, r.kind, r.leaves)).collect::<Vec<_>>(),
            vec![(1, ExecKind::Canceled, 10), (2, ExecKind::New, 10)]
        );
        assert!(out.iter().all(|r| r.exch_ts == 7), "one venue time");
        assert!(replaced.order(1).is_none());
        let o = replaced.order(2).unwrap();
        assert_eq!((o.pos.ahead, o.arrived), (30.0, 7), "behind the whole level again: no priority kept");
        assert_eq!((replaced.stats().replaced, replaced.stats().canceled), (1, 1));
        // 8 more sold at 100: the kept bid gets 3, the replacement nothing.
        out.clear();
        kept.on_market_at(&ev(EventKind::TradeSell, 100, 8), 8, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::PartialFill, 100, 3, 7, true)]);
        out.clear();
        replaced.on_market_at(&ev(EventKind::TradeSell, 100, 8), 8, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(replaced.order(2).unwrap().pos.ahead, 22.0);
    }

    #[test]
    fn a_replace_whose_cancel_fails_leaves_the_new_order_unsent() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Sell, 102, 10, Tif::PostOnly), 5, &mut out);
        // A buy through 102 fills it completely before the replace arrives.
        m.on_market_at(&ev(EventKind::TradeBuy, 103, 1), 6, &mut out);
        assert_eq!(out.last().unwrap().kind, ExecKind::Fill);
        out.clear();
        m.on_order_at(&replace(1, 2, Side::Sell, 103, 10), 7, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let r = out[0];
        assert_eq!((r.id, r.kind, r.code, r.leaves, r.qty), (2, ExecKind::Rejected, REJECT_REPLACE_FAILED, 0, 0));
        assert_eq!(r.msg.as_str(), "Order cancel-replace failed.");
        assert!(m.resting().is_empty(), "the new order was not placed");
        // An id the engine never had, or one on another instrument, fails the same way.
        out.clear();
        m.on_order_at(&replace(99, 3, Side::Buy, 99, 1), 8, &mut out);
        m.on_order_at(&new(4, Side::Buy, 98, 1, Tif::PostOnly), 8, &mut out);
        m.on_order_at(
            &OrderCmd::Replace {
                old: 4,
                new: NewOrder { id: 5, inst: 1, side: Side::Buy, px: 97, qty: 1, tif: Tif::Gtc },
            },
            8,
            &mut out,
        );
        let codes: Vec<(OrderId, i32)> = out.iter().map(|r| (r.id, r.code)).collect();
        assert_eq!(codes, vec![(3, REJECT_REPLACE_FAILED), (4, 0), (5, REJECT_REPLACE_FAILED)]);
        assert_eq!(m.resting().iter().map(|o| o.id).collect::<Vec<_>>(), vec![4]);
        assert_eq!((m.stats().replace_failed, m.stats().replaced), (3, 0));
    }

    #[test]
    fn a_partly_filled_order_is_replaced_rest_cancelled_new_placed_in_full() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Buy, 100, 10, Tif::PostOnly), 5, &mut out);
        // 30 ahead, then 34 sold at 100: 4 for us.
        m.on_market_at(&ev(EventKind::TradeSell, 100, 34), 6, &mut out);
        assert_eq!(kinds(&out).last(), Some(&(ExecKind::PartialFill, 100, 4, 6, true)));
        out.clear();
        m.on_order_at(&replace(1, 2, Side::Buy, 99, 10), 7, &mut out);
        assert_eq!(kinds(&out), vec![(ExecKind::Canceled, 100, 0, 6, false), (ExecKind::New, 99, 0, 10, false)]);
        assert_eq!(m.resting().len(), 1);
        let o = m.order(2).unwrap();
        assert_eq!((o.px, o.leaves, o.pos.ahead), (99, 10, 50.0));
        // A replacement that would take is the venue's post-only reject, after the
        // cancel went through (Binance: -2021, cancel done, new order failed).
        out.clear();
        m.on_order_at(&replace(2, 3, Side::Buy, 101, 10), 8, &mut out);
        assert_eq!(
            out.iter().map(|r| (r.id, r.kind, r.code)).collect::<Vec<_>>(),
            vec![(2, ExecKind::Canceled, 0), (3, ExecKind::Rejected, REJECT_WOULD_TAKE)]
        );
        assert!(m.resting().is_empty());
    }

    #[test]
    fn clear_makes_the_position_unknown_until_the_level_is_seen() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        m.on_order_at(&new(1, Side::Buy, 100, 10, Tif::PostOnly), 5, &mut out);
        m.on_market_at(&ev(EventKind::TradeSell, 100, 20), 6, &mut out);
        assert_eq!(m.order(1).unwrap().pos.ahead, 10.0);
        m.on_market_at(&ev(EventKind::Clear, 0, 0), 7, &mut out);
        out.clear();
        m.on_market_at(&ev(EventKind::TradeSell, 100, 15), 8, &mut out);
        assert!(out.is_empty(), "unknown position: no queue fill");
        m.on_market_at(&ev(EventKind::BidLevel, 100, 12), 9, &mut out);
        assert_eq!(m.order(1).unwrap().pos.ahead, 12.0, "seeded at the back of the rebuilt level");
    }

    proptest::proptest! {
        /// Random market data and orders: sizes add up, prices respect limits, each
        /// order ends at most once, and the price spans stay exact.
        #[test]
        fn invariants_under_random_traffic(
            ops in proptest::collection::vec((0u8..11, 95i64..106, 0i64..50, proptest::bool::ANY), 1..300),
            prob in proptest::bool::ANY,
        ) {
            if prob {
                check_invariants(engine(ProbPower::new(2.0)), &ops)?;
            } else {
                check_invariants(engine(RiskAverse), &ops)?;
            }
        }
    }

    fn check_invariants<Q: QueueModel>(
        mut m: MatchingEngine<Q>,
        ops: &[(u8, Px, Qty, bool)],
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prop_assert;
        use std::collections::HashMap;
        // id -> (side, limit, qty, filled, finals)
        let mut sent: HashMap<OrderId, (Side, Px, Qty, Qty, u32)> = HashMap::new();
        let mut out = Vec::new();
        let mut next_id = 1;
        for (t, &(op, px, qty, flag)) in ops.iter().enumerate() {
            let t = t as Ts + 10;
            let side = if flag { Side::Buy } else { Side::Sell };
            out.clear();
            match op {
                0 => m.on_market_at(&ev(EventKind::BidLevel, px, qty), t, &mut out),
                1 => m.on_market_at(&ev(EventKind::AskLevel, px, qty), t, &mut out),
                2 => m.on_market_at(&ev(EventKind::BestBid, px, qty.max(1)), t, &mut out),
                3 => m.on_market_at(&ev(EventKind::BestAsk, px, qty.max(1)), t, &mut out),
                4 => m.on_market_at(&ev(EventKind::TradeBuy, px, qty), t, &mut out),
                5 => m.on_market_at(&ev(EventKind::TradeSell, px, qty), t, &mut out),
                6 | 7 => {
                    let tif = match (op, qty % 3) {
                        (6, _) => Tif::PostOnly,
                        (_, 0) => Tif::Ioc,
                        _ => Tif::Gtc,
                    };
                    let q = qty.max(1);
                    sent.insert(next_id, (side, px, q, 0, 0));
                    m.on_order_at(&new(next_id, side, px, q, tif), t, &mut out);
                    next_id += 1;
                }
                8 => m.on_order_at(&OrderCmd::Cancel { id: (qty as u64 % next_id.max(1)) + 1, inst: ETH }, t, &mut out),
                10 => {
                    // Replace an order sent before (live or not) with a new post-only.
                    let old = (qty as u64 % next_id.max(1)) + 1;
                    let was_live = m.order(old).is_some();
                    let q = qty.max(1);
                    sent.insert(next_id, (side, px, q, 0, 0));
                    m.on_order_at(&replace(old, next_id, side, px, q), t, &mut out);
                    // Never two live orders for one replace: the old one is gone, and
                    // the new one is live only if the old one was.
                    prop_assert!(m.order(old).is_none());
                    prop_assert!(was_live || m.order(next_id).is_none());
                    if !was_live {
                        prop_assert!(out.len() == 1 && out[0].id == next_id && out[0].code == REJECT_REPLACE_FAILED);
                    }
                    next_id += 1;
                }
                _ => {
                    m.on_order_at(&OrderCmd::CancelAll, t, &mut out);
                    prop_assert!(m.resting().is_empty());
                }
            }
            for r in &out {
                let Some(e) = sent.get_mut(&r.id) else {
                    prop_assert!(r.kind == ExecKind::Rejected && r.code == REJECT_UNKNOWN_ORDER, "{r:?}");
                    continue;
                };
                if r.kind == ExecKind::Rejected && r.code == REJECT_UNKNOWN_ORDER {
                    continue;
                }
                prop_assert!(e.4 == 0, "report after the final one: {r:?}");
                prop_assert!(r.exch_ts == t);
                if r.qty > 0 {
                    e.3 += r.qty;
                    prop_assert!(e.3 <= e.2, "overfilled: {r:?}");
                    prop_assert!(r.leaves == e.2 - e.3, "{r:?}");
                    match e.0 {
                        Side::Buy => prop_assert!(r.px <= e.1, "{r:?}"),
                        Side::Sell => prop_assert!(r.px >= e.1, "{r:?}"),
                    }
                    if r.maker {
                        prop_assert!(r.px == e.1);
                    }
                    let want = m.fee(ETH, r.px, r.qty, r.maker);
                    prop_assert!(r.fee == want);
                }
                if r.is_final() {
                    e.4 += 1;
                    if r.kind == ExecKind::Fill {
                        prop_assert!(e.3 == e.2);
                    }
                }
            }
            for o in m.resting() {
                let e = sent[&o.id];
                prop_assert!(e.4 == 0 && o.leaves == e.2 - e.3 && o.leaves > 0, "{o:?} {e:?}");
                prop_assert!(o.pos.ahead >= 0.0, "{o:?}");
                prop_assert!(o.pos.ahead.is_infinite() || o.pos.ahead <= o.level as f64 + 1e-9, "{o:?}");
            }
            let kept = m.spans[0];
            m.respan(ETH);
            prop_assert!(kept == m.spans[0], "span drifted: {kept:?} vs {:?}", m.spans[0]);
            // The book never crosses a resting order of ours.
            let book = m.book(ETH).unwrap();
            for o in m.resting() {
                match o.side {
                    Side::Buy => prop_assert!(book.best_ask().is_none_or(|l| l.px > o.px), "{o:?}"),
                    Side::Sell => prop_assert!(book.best_bid().is_none_or(|l| l.px < o.px), "{o:?}"),
                }
            }
        }
        Ok(())
    }

    #[test]
    fn exchange_trait_uses_exchange_time() {
        let mut m = engine(RiskAverse);
        let mut out = Vec::new();
        Exchange::on_order(&mut m, &new(1, Side::Buy, 100, 10, Tif::PostOnly), 50, &mut out);
        let trade = MarketEvent { exch_ts: 70, local_ts: 90, ..ev(EventKind::TradeSell, 99, 1) };
        Exchange::on_market(&mut m, &trade, &mut out);
        assert!(m.needs_market());
        assert_eq!(out.last().map(|r| (r.kind, r.exch_ts)), Some((ExecKind::Fill, 70)));
    }
}
