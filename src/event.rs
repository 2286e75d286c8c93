//! The three messages that cross layer boundaries: market events in, order commands
//! out, execution reports back. All are `Copy`, fixed-size and allocation-free so that
//! they travel through preallocated rings and binary files unchanged.

use crate::types::{InstId, Px, Qty, Side, Ts};

/// What a [`MarketEvent`] says about the book or the tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// A bid level's new total size (diff depth); size 0 deletes the level.
    BidLevel = 1,
    /// An ask level's new total size (diff depth); size 0 deletes the level.
    AskLevel = 2,
    /// The best bid and its size (book ticker): bids above it are gone.
    BestBid = 3,
    /// The best ask and its size (book ticker): asks below it are gone.
    BestAsk = 4,
    /// A trade whose aggressor bought (it lifted an ask).
    TradeBuy = 5,
    /// A trade whose aggressor sold (it hit a bid).
    TradeSell = 6,
    /// The book is invalid from here on (disconnect, gap): clear it until rebuilt.
    Clear = 7,
}

impl EventKind {
    /// The kind for a stored byte, or `None` for an unknown one.
    #[inline]
    pub const fn from_u8(b: u8) -> Option<EventKind> {
        Some(match b {
            1 => EventKind::BidLevel,
            2 => EventKind::AskLevel,
            3 => EventKind::BestBid,
            4 => EventKind::BestAsk,
            5 => EventKind::TradeBuy,
            6 => EventKind::TradeSell,
            7 => EventKind::Clear,
            _ => return None,
        })
    }

    /// True for the two trade kinds.
    #[inline]
    pub const fn is_trade(self) -> bool {
        matches!(self, EventKind::TradeBuy | EventKind::TradeSell)
    }
}

/// One atomic market update. An exchange message with several levels becomes several
/// events; the last carries [`MarketEvent::END_OF_BATCH`], and the strategy acts only on
/// batch ends so that it never quotes from a half-applied message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketEvent {
    /// Exchange time (event time where the venue sends one, else the local time).
    pub exch_ts: Ts,
    /// Local receive time.
    pub local_ts: Ts,
    /// Price in ticks.
    pub px: Px,
    /// Size in lots (level size, or trade size).
    pub qty: Qty,
    /// Instrument index.
    pub inst: InstId,
    /// What the event says.
    pub kind: EventKind,
    /// Bit flags, see the associated constants.
    pub flags: u8,
}

impl MarketEvent {
    /// Last event of an exchange message.
    pub const END_OF_BATCH: u8 = 1;

    /// True if this event closes its exchange message.
    #[inline]
    pub const fn is_batch_end(&self) -> bool {
        self.flags & Self::END_OF_BATCH != 0
    }
}

/// Session-unique client order id. The high 32 bits are the session's start time in
/// seconds, the low 32 a counter, so ids stay unique across restarts.
pub type OrderId = u64;

/// Time in force of a new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tif {
    /// Rest on the book; rejected if it would take liquidity (Binance `LIMIT_MAKER`).
    PostOnly,
    /// Good till cancelled; may take.
    Gtc,
    /// Immediate or cancel.
    Ioc,
}

/// A new limit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    /// Client order id.
    pub id: OrderId,
    /// Instrument index.
    pub inst: InstId,
    /// Side.
    pub side: Side,
    /// Limit price in ticks.
    pub px: Px,
    /// Size in lots.
    pub qty: Qty,
    /// Time in force.
    pub tif: Tif,
}

/// What the strategy asks the gateway to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderCmd {
    /// Place a new order.
    New(NewOrder),
    /// Cancel one order.
    Cancel {
        /// Client order id.
        id: OrderId,
        /// Instrument index.
        inst: InstId,
    },
    /// Cancel the resting order `old` and place `new` in its stead, as one message
    /// (Binance `cancelReplace` with `cancelReplaceMode = STOP_ON_FAILURE`): if the
    /// cancel fails (the order already filled or is unknown), `new` is not placed and
    /// is rejected (`-2022`). `old` is on `new.inst` (a cancel-replace is on one
    /// symbol), which keeps the command within the ring's 48-byte slot. The replacement
    /// is a new order: it joins the back of its level's queue, even at the old price.
    /// A venue without an atomic replace sees it as a cancel then a new order
    /// ([`crate::gateway::Exchange::submit`]).
    Replace {
        /// Client order id of the resting order to cancel, on `new.inst`.
        old: OrderId,
        /// The order that replaces it.
        new: NewOrder,
    },
    /// Cancel every open order (kill switch, shutdown, stale feed).
    CancelAll,
}

/// A venue's reject message, truncated to a fixed size so that reports stay `Copy`
/// and travel through the preallocated ring.
pub type RejectMsg = arrayvec::ArrayString<64>;

/// `text` as a [`RejectMsg`], cut at a character boundary if it is too long.
pub fn reject_msg(text: &str) -> RejectMsg {
    let mut m = RejectMsg::new();
    for c in text.chars() {
        if m.try_push(c).is_err() {
            break;
        }
    }
    m
}

/// The state an execution report announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecKind {
    /// Accepted and resting.
    New,
    /// Part filled; `leaves > 0`.
    PartialFill,
    /// Completely filled; `leaves == 0`.
    Fill,
    /// Cancelled (by us or the venue); `leaves` were not executed.
    Canceled,
    /// Refused; `code` carries the venue's error code.
    Rejected,
    /// Expired (IOC remainder, self-trade prevention).
    Expired,
}

/// A report about one of our orders, from the exchange through the gateway.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecReport {
    /// Client order id.
    pub id: OrderId,
    /// Instrument index.
    pub inst: InstId,
    /// Order side.
    pub side: Side,
    /// What happened.
    pub kind: ExecKind,
    /// Price of this fill in ticks (order price for non-fills).
    pub px: Px,
    /// Size of this fill in lots (0 for non-fills).
    pub qty: Qty,
    /// Size still open after this report.
    pub leaves: Qty,
    /// Fee of this fill in the quote asset (negative for a rebate): the PnL effect,
    /// whatever asset the venue charged it in.
    pub fee: f64,
    /// The part of the fee the venue took in the base asset, in base units (Binance
    /// charges a buyer's commission in the asset bought): the position's balance moves
    /// by the fill size minus this. 0 for venues that charge the quote asset.
    pub fee_base: f64,
    /// True if this fill added liquidity.
    pub maker: bool,
    /// Venue error code for rejects, else 0.
    pub code: i32,
    /// The venue's message for rejects (truncated to fit), else empty.
    pub msg: RejectMsg,
    /// Exchange time of the report.
    pub exch_ts: Ts,
}

impl ExecReport {
    /// A reject of order `id`: nothing filled, nothing left open, the venue's `code`
    /// and message.
    pub fn rejected(id: OrderId, inst: InstId, side: Side, px: Px, code: i32, msg: RejectMsg, exch_ts: Ts) -> Self {
        ExecReport {
            id,
            inst,
            side,
            kind: ExecKind::Rejected,
            px,
            qty: 0,
            leaves: 0,
            fee: 0.0,
            fee_base: 0.0,
            msg,
            maker: false,
            code,
            exch_ts,
        }
    }

    /// True for the kinds after which the order is no longer open.
    #[inline]
    pub const fn is_final(&self) -> bool {
        matches!(self.kind, ExecKind::Fill | ExecKind::Canceled | ExecKind::Rejected | ExecKind::Expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_roundtrip_through_bytes() {
        for b in 0..=255u8 {
            if let Some(k) = EventKind::from_u8(b) {
                assert_eq!(k as u8, b);
            }
        }
        assert_eq!(EventKind::from_u8(0), None);
    }

    #[test]
    fn reject_messages_are_cut_at_a_char_boundary() {
        assert_eq!(
            reject_msg("Order would immediately match and take.").as_str(),
            "Order would immediately match and take."
        );
        let long = "é".repeat(40);
        let m = reject_msg(&long);
        assert_eq!(m.len(), 64);
        assert!(long.starts_with(m.as_str()));
    }

    #[test]
    fn messages_stay_small() {
        assert!(std::mem::size_of::<MarketEvent>() <= 40);
        assert!(std::mem::size_of::<OrderCmd>() <= 48);
    }
}
