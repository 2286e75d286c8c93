//! Reconciliation: what the venue holds for the account, queried at start and end
//! rather than tracked.
//!
//! - Open orders: `GET /api/v3/openOrders` per symbol, each with our id if its client
//!   order id is in our format ([`super::ids`]). At start
//!   [`BinanceSpot::reconcile`] refuses to go on if one carries this session's id
//!   (ids would collide) and cancels them all (`DELETE /api/v3/openOrders`) if
//!   `cancel_open_at_start`.
//! - Balances: `GET /api/v3/account` without the zero ones.
//! - One order: `GET /api/v3/order` by client order id, for the position journal's
//!   orders left open by an earlier session ([`BinanceSpot::query_order`]).
//!
//! With `orders = "ws"` each goes over the WebSocket API instead, as a blocking query
//! (`BinanceSpot::ws_call`) with the same parameters and answer: `openOrders.status`,
//! `openOrders.cancelAll`, `account.status`, `order.status`. The connection is waited
//! for up to `connect_timeout_ms` (reconciliation right after `start` comes before it
//! is open); if it still is not open, REST.
//!
//! Unlike order entry, a failed query is an error ([`GatewayError`]): the caller
//! decides whether to start.

use serde_json::Value;

use super::error::GatewayError;
use super::ids::{client_order_id, parse_client_order_id};
use super::orders::Status;
use super::rest::{Call, Method, CODE_NO_SUCH_ORDER, W_ACCOUNT, W_CANCEL_ALL, W_OPEN_ORDERS, W_QUERY};
use super::{side_of, str_of, BinanceSpot};
use crate::event::OrderId;
use crate::gateway::sign::Query;
use crate::gateway::{Balance, OpenOrder, VenueOrder};
use crate::types::{Decimal, InstId};

impl BinanceSpot {
    /// Reconciliation at start: the venue's open orders on our symbols; refuses to go
    /// on if one carries this session's id prefix (`session_id`, the high 32 bits of
    /// our [`OrderId`](crate::event::OrderId)s); cancels them all if
    /// `cancel_open_at_start`. Returns what was open.
    pub fn reconcile(&mut self, session_id: u32) -> Result<Vec<OpenOrder>, GatewayError> {
        let open = self.fetch_open_orders()?;
        if let Some(o) = open.iter().find(|o| o.id.is_some_and(|id| (id >> 32) as u32 == session_id)) {
            return Err(GatewayError::SessionCollision(o.client_id.clone()));
        }
        if self.cfg.cancel_open_at_start && !open.is_empty() {
            let mut insts: Vec<InstId> = open.iter().map(|o| o.inst).collect();
            insts.sort_unstable();
            insts.dedup();
            for inst in insts {
                let symbol = self.instruments[inst as usize].symbol.clone();
                if self.query_over_ws(true) {
                    self.ws_call("openOrders.cancelAll", &[("symbol", symbol)], true, W_CANCEL_ALL)?;
                    continue;
                }
                let path = "/api/v3/openOrders";
                let mut q = Query::new();
                q.push("symbol", &symbol);
                match self.rest.call(&mut self.stats, Method::Delete, path, q, W_CANCEL_ALL, 0) {
                    Call::Ok(_) => {}
                    Call::Api { status, code, msg, .. } => return Err(GatewayError::Api { path, status, code, msg }),
                    Call::NotSent { code, msg } => return Err(GatewayError::NotSent { path, code, msg }),
                    Call::Unknown(msg) => return Err(GatewayError::Transport { path, msg }),
                }
            }
        }
        Ok(open)
    }

    /// Asks the venue about our order `id` on instrument `inst` (reconciliation at
    /// restart): `None` if the venue does not know it.
    pub fn query_order(&mut self, inst: InstId, id: OrderId) -> Result<Option<VenueOrder>, GatewayError> {
        let ins = self.instruments[inst as usize].clone();
        let ws = self.query_over_ws(true);
        let path = if ws { "order.status" } else { "/api/v3/order" };
        let answer = if ws {
            let params = [("symbol", ins.symbol.clone()), ("origClientOrderId", client_order_id(id))];
            self.ws_call(path, &params, true, W_QUERY)
        } else {
            let mut q = Query::new();
            q.push("symbol", &ins.symbol).push("origClientOrderId", client_order_id(id));
            self.rest_signed(Method::Get, path, q, W_QUERY)
        };
        let v = match answer {
            Ok(v) => v,
            Err(GatewayError::Api { code: CODE_NO_SUCH_ORDER, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = || GatewayError::Parse { path, msg: self.rest.venue_text(&format!("bad order {v}")) };
        let snap = self.snapshot_of(inst, &v).ok_or_else(bad)?;
        let executed_quote = str_of(&v, "cummulativeQuoteQty").and_then(|s| s.parse::<f64>().ok()).ok_or_else(bad)?;
        let done = !matches!(snap.status, Status::New | Status::PartiallyFilled);
        let maker = str_of(&v, "type") == Some("LIMIT_MAKER");
        Ok(Some(VenueOrder { executed: snap.executed, executed_quote, done, maker }))
    }

    pub(super) fn fetch_open_orders(&mut self) -> Result<Vec<OpenOrder>, GatewayError> {
        let ws = self.query_over_ws(true);
        let path = if ws { "openOrders.status" } else { "/api/v3/openOrders" };
        let mut all = Vec::new();
        for inst in 0..self.instruments.len() as InstId {
            let ins = self.instruments[inst as usize].clone();
            let v = if ws {
                self.ws_call(path, &[("symbol", ins.symbol.clone())], true, W_OPEN_ORDERS)?
            } else {
                let mut q = Query::new();
                q.push("symbol", &ins.symbol);
                self.rest_signed(Method::Get, path, q, W_OPEN_ORDERS)?
            };
            let arr = v.as_array().ok_or_else(|| GatewayError::Parse { path, msg: "not an array".into() })?;
            for o in arr {
                let bad = || GatewayError::Parse { path, msg: self.rest.venue_text(&format!("bad order {o}")) };
                let client_id = str_of(o, "clientOrderId").ok_or_else(bad)?.to_string();
                let px = str_of(o, "price").and_then(|s| ins.parse_price(s.as_bytes()).ok()).ok_or_else(bad)?;
                let qty = str_of(o, "origQty").and_then(|s| ins.parse_qty(s.as_bytes()).ok()).ok_or_else(bad)?;
                let exec = str_of(o, "executedQty").and_then(|s| ins.parse_qty(s.as_bytes()).ok()).ok_or_else(bad)?;
                all.push(OpenOrder {
                    id: parse_client_order_id(&client_id),
                    client_id,
                    inst,
                    side: str_of(o, "side").and_then(side_of).ok_or_else(bad)?,
                    px,
                    qty,
                    leaves: qty.saturating_sub(exec),
                });
            }
        }
        Ok(all)
    }

    pub(super) fn fetch_balances(&mut self) -> Result<Vec<Balance>, GatewayError> {
        let ws = self.query_over_ws(true);
        let path = if ws { "account.status" } else { "/api/v3/account" };
        let v = if ws {
            self.ws_call(path, &[("omitZeroBalances", "true".to_string())], true, W_ACCOUNT)?
        } else {
            let mut q = Query::new();
            q.push("omitZeroBalances", "true");
            self.rest_signed(Method::Get, path, q, W_ACCOUNT)?
        };
        let arr = v
            .get("balances")
            .and_then(Value::as_array)
            .ok_or_else(|| GatewayError::Parse { path, msg: "no balances".into() })?;
        let mut out = Vec::with_capacity(arr.len());
        for b in arr {
            let bad = || GatewayError::Parse { path, msg: self.rest.venue_text(&format!("bad balance {b}")) };
            let dec = |k: &str| str_of(b, k).and_then(|s| s.parse::<Decimal>().ok()).ok_or_else(bad);
            out.push(Balance {
                asset: str_of(b, "asset").ok_or_else(bad)?.to_string(),
                free: dec("free")?,
                locked: dec("locked")?,
            });
        }
        Ok(out)
    }

    /// A signed REST query; its error as [`GatewayError`].
    fn rest_signed(
        &mut self,
        method: Method,
        path: &'static str,
        q: Query,
        weight: u32,
    ) -> Result<Value, GatewayError> {
        match self.rest.call(&mut self.stats, method, path, q, weight, 0) {
            Call::Ok(v) => Ok(v),
            Call::Api { status, code, msg, .. } => Err(GatewayError::Api { path, status, code, msg }),
            Call::NotSent { code, msg } => Err(GatewayError::NotSent { path, code, msg }),
            Call::Unknown(msg) => Err(GatewayError::Transport { path, msg }),
        }
    }
}
