//! Binance Spot's reject codes and messages, as the simulated venue answers with them
//! ([`crate::backtest::matching`], behind `replay` and the gateway thread's simulated
//! venue), so that the Core sees the same codes from the simulation as from Binance.
//!
//! A leaf module: it depends on [`crate::event`]'s message type only.

use crate::event::{reject_msg, RejectMsg};

/// Binance's code for a rejected new order; the simulated venue uses it for a
/// post-only order that would take ("Order would immediately match and take.") and
/// for a duplicate order id.
pub const REJECT_WOULD_TAKE: i32 = -2010;
/// Binance's code for cancelling an unknown order ("Unknown order sent.").
pub const REJECT_UNKNOWN_ORDER: i32 = -2011;
/// Binance's code for a cancel-replace whose cancel failed with `STOP_ON_FAILURE`, so
/// that the new order was not attempted ("Order cancel-replace failed."; the nested
/// `cancelResponse` carries the cancel's `-2011`). Binance's REST and WebSocket API
/// documentation, "Cancel an Existing Order and Send a New Order", and errors.md.
pub const REJECT_REPLACE_FAILED: i32 = -2022;
/// Binance's code for an order that fails a filter (here: size or price not positive).
pub const REJECT_INVALID: i32 = -1013;
/// Binance's code for an unknown symbol.
pub const REJECT_UNKNOWN_SYMBOL: i32 = -1121;

/// Binance's message for [`REJECT_WOULD_TAKE`], [`REJECT_UNKNOWN_ORDER`] and
/// [`REJECT_REPLACE_FAILED`]; empty
/// for other codes.
pub fn reject_text(code: i32) -> RejectMsg {
    match code {
        REJECT_WOULD_TAKE => reject_msg("Order would immediately match and take."),
        REJECT_UNKNOWN_ORDER => reject_msg("Unknown order sent."),
        REJECT_REPLACE_FAILED => reject_msg("Order cancel-replace failed."),
        _ => RejectMsg::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_of_the_codes() {
        assert_eq!(reject_text(REJECT_WOULD_TAKE).as_str(), "Order would immediately match and take.");
        assert_eq!(reject_text(REJECT_UNKNOWN_ORDER).as_str(), "Unknown order sent.");
        assert_eq!(reject_text(REJECT_REPLACE_FAILED).as_str(), "Order cancel-replace failed.");
        assert!(reject_text(REJECT_INVALID).is_empty() && reject_text(0).is_empty());
    }
}
