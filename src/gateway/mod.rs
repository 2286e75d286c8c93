//! Exchange APIs behind the gateway thread.
//!
//! [`Exchange`] is the seam between the gateway thread and a venue: the gateway pops
//! [`OrderCmd`]s from the hot thread's ring, hands them to its exchange, and pushes the
//! [`ExecReport`]s the exchange produces into the ring back. Implementations are used
//! monomorphised (the gateway loop is generic), never as trait objects.
//!
//! Venues: [`binance`] (Binance Spot REST + WebSocket API user data stream, with
//! [`sign`] and [`limits`]) and the simulated venue, which is the backtester's
//! [`crate::backtest::matching::MatchingEngine`] (fed the forwarded market data) or,
//! for a threaded replay of in-memory data, [`crate::backtest::venue::ReplayVenue`].

pub mod binance;
pub mod limits;
pub mod sign;

use thiserror::Error;

use crate::event::{ExecReport, MarketEvent, OrderCmd, OrderId};
use crate::types::{Decimal, InstId, Px, Qty, Side, Ts};

/// An order the venue holds open, from a reconciliation query.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenOrder {
    /// Our id, if the venue's client order id is in our format (else another client's).
    pub id: Option<OrderId>,
    /// The venue's client order id as it is.
    pub client_id: String,
    /// Instrument.
    pub inst: InstId,
    /// Side.
    pub side: Side,
    /// Limit price in ticks.
    pub px: Px,
    /// Original size in lots.
    pub qty: Qty,
    /// Size still open in lots.
    pub leaves: Qty,
}

/// What the venue says of one of our orders when asked (reconciliation at restart).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VenueOrder {
    /// Executed size, lots.
    pub executed: Qty,
    /// Executed notional in the quote asset (Binance's `cummulativeQuoteQty`).
    pub executed_quote: f64,
    /// True if the order can no longer fill (filled, cancelled, rejected, expired).
    pub done: bool,
    /// True if the order was post-only (every fill was maker).
    pub maker: bool,
}

/// One asset balance of the account.
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    /// Asset name (`BTC`, `USDT`).
    pub asset: String,
    /// Available.
    pub free: Decimal,
    /// Locked in open orders.
    pub locked: Decimal,
}

/// A venue query that failed: the venue's code (or a local negative code) and message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("venue error {code}: {msg}")]
pub struct VenueError {
    /// Venue error code (Binance: `-1021`, `-2010`, ...), 0 for transport failures.
    pub code: i32,
    /// What happened.
    pub msg: String,
}

/// A venue the gateway thread talks to.
pub trait Exchange: Send {
    /// True if the venue needs the market data stream (a simulator matching against
    /// the book); the hot thread then forwards every market event ahead of the orders
    /// it caused.
    fn needs_market(&self) -> bool;

    /// Handles one command at local time `now`, appending reports to `out`. An
    /// [`OrderCmd::Replace`] reaches it only if [`Exchange::supports_replace`] is true
    /// (the gateway loop calls [`Exchange::submit`]).
    fn on_order(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>);

    /// True if the venue cancels and replaces an order in one message, with
    /// `STOP_ON_FAILURE` semantics (see [`OrderCmd::Replace`]): the simulated venue
    /// and Binance. False by default: [`Exchange::submit`] then sends a replace as a
    /// cancel followed by the new order (two messages; the new one is placed even if
    /// the cancel fails, as the venue has no way to make it depend on the cancel).
    fn supports_replace(&self) -> bool {
        false
    }

    /// Hands one command to the venue: [`Exchange::on_order`], with an
    /// [`OrderCmd::Replace`] split into `Cancel` then `New` for a venue without
    /// [`Exchange::supports_replace`]. This is where a replace becomes two
    /// commands; the gateway loop calls it for every command it pops.
    #[inline]
    fn submit(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>) {
        match *cmd {
            OrderCmd::Replace { old, new } if !self.supports_replace() => {
                self.on_order(&OrderCmd::Cancel { id: old, inst: new.inst }, now, out);
                self.on_order(&OrderCmd::New(new), now, out);
            }
            _ => self.on_order(cmd, now, out),
        }
    }

    /// Handles one market event (simulators only), appending reports to `out`.
    fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>);

    /// Reports that arrive without a command (a real venue's execution reports, queries
    /// that settle orders of unknown state, retried cancels). The gateway loop calls it
    /// whenever its command ring is empty; it must not block for long.
    fn poll(&mut self, _now: Ts, _out: &mut Vec<ExecReport>) {}

    /// Orders the venue may still hold or whose outcome is not known yet, plus queued
    /// cancels: the gateway waits for this to reach 0 after a cancel-all at shutdown.
    fn in_flight(&self) -> usize {
        0
    }

    /// The venue's open orders on our instruments (reconciliation at start and end).
    fn open_orders(&mut self) -> Result<Vec<OpenOrder>, VenueError> {
        Ok(Vec::new())
    }

    /// The account's balances (reconciliation).
    fn balances(&mut self) -> Result<Vec<Balance>, VenueError> {
        Ok(Vec::new())
    }
}
