//! Exchange APIs behind the gateway thread.
//!
//! [`Exchange`] is the seam between the gateway thread and a venue: the gateway pops
//! [`OrderCmd`]s from the hot thread's ring, hands them to its exchange, and pushes the
//! [`ExecReport`]s the exchange produces into the ring back. Implementations are used
//! monomorphised (the gateway loop is generic), never as trait objects.

pub mod sim;

use crate::event::{ExecReport, MarketEvent, OrderCmd};
use crate::types::Ts;

/// A venue the gateway thread talks to.
pub trait Exchange: Send {
    /// True if the venue needs the market data stream (a simulator matching against
    /// the book); the hot thread then forwards every market event ahead of the orders
    /// it caused.
    fn needs_market(&self) -> bool;

    /// Handles one command at local time `now`, appending reports to `out`.
    fn on_order(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>);

    /// Handles one market event (simulators only), appending reports to `out`.
    fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>);
}
