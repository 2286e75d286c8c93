//! A simulated exchange for the live thread model and the default replay.
//!
//! It keeps its own copy of each book from the forwarded market data and our resting
//! orders. A resting order fills completely, as maker, when the market trades through
//! its price (a buy aggressor at a price above our ask, a sell aggressor below our
//! bid); a trade at our price does not fill it, since we do not know our place in the
//! queue (the backtester's queue models do that). Post-only orders that would cross
//! the book are rejected with Binance's code -2010; marketable GTC/IOC orders take the
//! best opposite level, as taker, up to its size. Fees are basis points of notional.

use crate::book::Book;
use crate::event::{EventKind, ExecKind, ExecReport, MarketEvent, NewOrder, OrderCmd, OrderId, RejectMsg, Tif};
use crate::fees::Fees;
use crate::gateway::Exchange;
use crate::types::{Instrument, Px, Qty, Side, Ts};

/// Binance's code for a rejected order ("Order would immediately match and take").
pub const REJECT_WOULD_TAKE: i32 = -2010;
/// Binance's code for cancelling an unknown order.
pub const REJECT_UNKNOWN_ORDER: i32 = -2011;

/// Binance's message for a simulated reject code (empty for other codes).
pub fn reject_text(code: i32) -> RejectMsg {
    match code {
        REJECT_WOULD_TAKE => crate::event::reject_msg("Order would immediately match and take."),
        REJECT_UNKNOWN_ORDER => crate::event::reject_msg("Unknown order sent."),
        _ => RejectMsg::new(),
    }
}

#[derive(Debug, Clone, Copy)]
struct Resting {
    id: OrderId,
    inst: u16,
    side: Side,
    px: Px,
    leaves: Qty,
}

/// Counters of the simulated venue.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct SimStats {
    /// Orders accepted.
    pub accepted: u64,
    /// Orders rejected.
    pub rejected: u64,
    /// Fills.
    pub fills: u64,
    /// Cancels confirmed.
    pub canceled: u64,
}

/// The simulated venue.
#[derive(Debug)]
pub struct SimExchange {
    instruments: Vec<Instrument>,
    books: Vec<Book>,
    resting: Vec<Resting>,
    fees: Fees,
    now: Ts,
    stats: SimStats,
}

impl SimExchange {
    /// A venue for the given instrument table and fees.
    pub fn new(instruments: Vec<Instrument>, fees: Fees) -> Self {
        let books = instruments.iter().map(|_| Book::default()).collect();
        SimExchange { instruments, books, resting: Vec::with_capacity(256), fees, now: 0, stats: SimStats::default() }
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Orders resting now.
    pub fn resting(&self) -> usize {
        self.resting.len()
    }

    fn report(&self, o: &Resting, kind: ExecKind, px: Px, qty: Qty, maker: bool, code: i32) -> ExecReport {
        let fee = if qty > 0 { self.fees.of(&self.instruments[o.inst as usize], px, qty, maker) } else { 0.0 };
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
            exch_ts: self.now,
        }
    }

    fn new_order(&mut self, n: &NewOrder, out: &mut Vec<ExecReport>) {
        let mut o = Resting { id: n.id, inst: n.inst, side: n.side, px: n.px, leaves: n.qty };
        let Some(book) = self.books.get(n.inst as usize) else {
            self.stats.rejected += 1;
            out.push(self.report(&o, ExecKind::Rejected, n.px, 0, false, REJECT_UNKNOWN_ORDER));
            return;
        };
        let opposite = match n.side {
            Side::Buy => book.best_ask().filter(|l| l.px <= n.px),
            Side::Sell => book.best_bid().filter(|l| l.px >= n.px),
        };
        match (opposite, n.tif) {
            (Some(_), Tif::PostOnly) => {
                self.stats.rejected += 1;
                out.push(self.report(&o, ExecKind::Rejected, n.px, 0, false, REJECT_WOULD_TAKE));
            }
            (Some(level), _) => {
                let qty = o.leaves.min(level.qty);
                o.leaves -= qty;
                self.stats.accepted += 1;
                self.stats.fills += 1;
                let kind = if o.leaves == 0 { ExecKind::Fill } else { ExecKind::PartialFill };
                out.push(self.report(&o, kind, level.px, qty, false, 0));
                if o.leaves > 0 {
                    if n.tif == Tif::Ioc {
                        out.push(self.report(&o, ExecKind::Expired, n.px, 0, false, 0));
                    } else {
                        self.resting.push(o);
                    }
                }
            }
            (None, Tif::Ioc) => {
                self.stats.accepted += 1;
                out.push(self.report(&o, ExecKind::Expired, n.px, 0, false, 0));
            }
            (None, _) => {
                self.stats.accepted += 1;
                out.push(self.report(&o, ExecKind::New, n.px, 0, false, 0));
                self.resting.push(o);
            }
        }
    }

    fn cancel(&mut self, id: OrderId, inst: u16, out: &mut Vec<ExecReport>) {
        match self.resting.iter().position(|o| o.id == id) {
            Some(i) => {
                let o = self.resting.swap_remove(i);
                self.stats.canceled += 1;
                out.push(self.report(&o, ExecKind::Canceled, o.px, 0, false, 0));
            }
            None => {
                // Already filled or never accepted: the venue says unknown order. The
                // core has already forgotten it, or will on the fill report.
                let o = Resting { id, inst, side: Side::Buy, px: 0, leaves: 0 };
                out.push(self.report(&o, ExecKind::Rejected, 0, 0, false, REJECT_UNKNOWN_ORDER));
            }
        }
    }
}

impl Exchange for SimExchange {
    fn needs_market(&self) -> bool {
        true
    }

    fn on_order(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>) {
        self.now = self.now.max(now);
        match cmd {
            OrderCmd::New(n) => self.new_order(n, out),
            OrderCmd::Cancel { id, inst } => self.cancel(*id, *inst, out),
            OrderCmd::CancelAll => {
                // Oldest first, as a venue would confirm them.
                let all = std::mem::take(&mut self.resting);
                for o in &all {
                    self.stats.canceled += 1;
                    out.push(self.report(o, ExecKind::Canceled, o.px, 0, false, 0));
                }
                // Keep the allocation for the orders to come.
                self.resting = all;
                self.resting.clear();
            }
        }
    }

    fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>) {
        self.now = self.now.max(ev.exch_ts);
        let Some(book) = self.books.get_mut(ev.inst as usize) else { return };
        book.apply(ev);
        let through = match ev.kind {
            EventKind::TradeBuy => Side::Sell,
            EventKind::TradeSell => Side::Buy,
            _ => return,
        };
        let mut i = 0;
        while i < self.resting.len() {
            let o = self.resting[i];
            let crossed = o.inst == ev.inst
                && o.side == through
                && match through {
                    Side::Sell => ev.px > o.px,
                    Side::Buy => ev.px < o.px,
                };
            if crossed {
                let mut done = self.resting.swap_remove(i);
                let qty = done.leaves;
                done.leaves = 0;
                self.stats.fills += 1;
                out.push(self.report(&done, ExecKind::Fill, done.px, qty, true, 0));
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue() -> SimExchange {
        let eth = Instrument::new("ETHUSDT", "0.01".parse().unwrap(), "0.0001".parse().unwrap());
        let mut v = SimExchange::new(vec![eth], Fees { maker_bps: 1.0, taker_bps: 5.0 });
        let mut out = Vec::new();
        for (kind, px) in [(EventKind::BestBid, 250_000), (EventKind::BestAsk, 250_001)] {
            v.on_market(&MarketEvent { exch_ts: 1, local_ts: 1, px, qty: 50_000, inst: 0, kind, flags: 1 }, &mut out);
        }
        v
    }

    fn order(id: u64, side: Side, px: Px, tif: Tif) -> OrderCmd {
        OrderCmd::New(NewOrder { id, inst: 0, side, px, qty: 1_000, tif })
    }

    fn trade(kind: EventKind, px: Px) -> MarketEvent {
        MarketEvent { exch_ts: 2, local_ts: 2, px, qty: 10, inst: 0, kind, flags: 1 }
    }

    #[test]
    fn rests_then_fills_only_when_traded_through() {
        let mut v = venue();
        let mut out = Vec::new();
        v.on_order(&order(1, Side::Sell, 250_005, Tif::PostOnly), 0, &mut out);
        assert_eq!(out[0].kind, ExecKind::New);
        out.clear();
        v.on_market(&trade(EventKind::TradeBuy, 250_005), &mut out);
        assert!(out.is_empty(), "a trade at our price does not fill");
        v.on_market(&trade(EventKind::TradeSell, 250_006), &mut out);
        assert!(out.is_empty(), "a sell aggressor never fills our ask");
        v.on_market(&trade(EventKind::TradeBuy, 250_006), &mut out);
        assert_eq!(out.len(), 1);
        let f = out[0];
        assert_eq!((f.kind, f.px, f.qty, f.leaves, f.maker), (ExecKind::Fill, 250_005, 1_000, 0, true));
        // 2500.05 * 0.1 * 1 bp
        assert!((f.fee - 2500.05 * 0.1 * 1e-4).abs() < 1e-12);
        assert_eq!(v.resting(), 0);
    }

    #[test]
    fn post_only_cross_is_rejected_taker_pays_taker_fee() {
        let mut v = venue();
        let mut out = Vec::new();
        v.on_order(&order(1, Side::Buy, 250_001, Tif::PostOnly), 0, &mut out);
        assert_eq!((out[0].kind, out[0].code), (ExecKind::Rejected, REJECT_WOULD_TAKE));
        out.clear();
        v.on_order(&order(2, Side::Buy, 250_003, Tif::Ioc), 0, &mut out);
        assert_eq!((out[0].kind, out[0].px, out[0].maker), (ExecKind::Fill, 250_001, false));
        assert!((out[0].fee - 2500.01 * 0.1 * 5e-4).abs() < 1e-12);
    }

    #[test]
    fn cancels() {
        let mut v = venue();
        let mut out = Vec::new();
        v.on_order(&order(1, Side::Buy, 249_000, Tif::PostOnly), 0, &mut out);
        v.on_order(&order(2, Side::Buy, 249_001, Tif::Gtc), 0, &mut out);
        out.clear();
        v.on_order(&OrderCmd::Cancel { id: 1, inst: 0 }, 0, &mut out);
        assert_eq!(out[0].kind, ExecKind::Canceled);
        v.on_order(&OrderCmd::Cancel { id: 1, inst: 0 }, 0, &mut out);
        assert_eq!((out[1].kind, out[1].code), (ExecKind::Rejected, REJECT_UNKNOWN_ORDER));
        v.on_order(&OrderCmd::CancelAll, 0, &mut out);
        assert_eq!(out[2].id, 2);
        assert_eq!(v.resting(), 0);
    }
}
