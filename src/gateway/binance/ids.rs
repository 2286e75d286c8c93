//! Client order ids: how an [`OrderId`] is named at the venue.
//!
//! An [`OrderId`] (high 32 bits: session start in seconds; low 32: a counter) is sent
//! as `sa-` followed by its 16 lowercase hex digits (19 characters, within Binance's
//! `^[\.A-Z\:/a-z0-9_-]{1,36}$`), see [`client_order_id`] and [`parse_client_order_id`].
//! Ids stay unique across restarts as long as sessions start in different seconds;
//! [`BinanceSpot::reconcile`](super::BinanceSpot::reconcile) refuses to start when the
//! venue holds an open order of the same session. Any other client order id (the web
//! interface's, another program's) is foreign: its events are counted and skipped.

use crate::event::OrderId;

const ID_PREFIX: &str = "sa-";

/// The `sa-<16 hex digits>` client order id of `id`.
pub fn client_order_id(id: OrderId) -> String {
    format!("{ID_PREFIX}{id:016x}")
}

/// The [`OrderId`] of a client order id in our format, `None` for any other.
pub fn parse_client_order_id(s: &str) -> Option<OrderId> {
    let hex = s.strip_prefix(ID_PREFIX)?;
    if hex.len() != 16 || !hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_roundtrip_and_fit_binance() {
        for id in [0u64, 1, (1_764_000_000u64 << 32) | 42, u64::MAX] {
            let s = client_order_id(id);
            assert!(s.len() <= 36);
            assert!(s.bytes().all(|c| c.is_ascii_alphanumeric() || b".:/_-".contains(&c)), "{s}");
            assert_eq!(parse_client_order_id(&s), Some(id));
        }
        assert_eq!(client_order_id((7u64 << 32) | 3), "sa-0000000700000003");
        for bad in ["", "sa-", "sa-0000000700000003x", "sa-000000070000000G", "xx-0000000700000003", "web_abc"] {
            assert_eq!(parse_client_order_id(bad), None, "{bad}");
        }
    }
}
