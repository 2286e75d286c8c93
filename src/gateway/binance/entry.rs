//! Order entry: the request behind each order command, and what its answer does to
//! the order.
//!
//! - A new order is `POST /api/v3/order` with `newOrderRespType=FULL`, so the answer
//!   carries the order's state and its immediate fills; post-only quotes are
//!   `LIMIT_MAKER` (the venue rejects one that would take, `-2010`), the rest `LIMIT`
//!   with `GTC` or `IOC`. The order is tracked before it is sent.
//! - A cancel is `DELETE /api/v3/order` by our client order id. One the venue refuses
//!   (`-2011`: already final, or not there yet; any other code: not executed) queries
//!   the order instead, and is sent again if the order turns out live; one that was
//!   not sent is queued and retried from `poll`. A cancel of an order of unknown state
//!   is sent all the same, and again should the order turn out live later.
//! - A cancel-all is `DELETE /api/v3/openOrders` per symbol; tracked orders it did not
//!   close are settled by query, and a symbol it could not cancel makes `poll` send
//!   the cancel-all again.
//! - [`BinanceSpot::cancel_replace`] is one `POST /api/v3/order/cancelReplace` with
//!   `STOP_ON_FAILURE`: if the cancel fails the new order is not attempted.
//! - Settling an order is `GET /api/v3/order`: the venue's snapshot is applied, and an
//!   order the venue does not know (`-2013`) once the request can no longer arrive is
//!   never placed (or, if it was acknowledged before, gone: cancelled).
//!
//! Weights and signing: [`super::rest`]; what the answers become: [`super::orders`].

use serde_json::Value;

use super::ids::{client_order_id, parse_client_order_id};
use super::orders::{OrderState, Tracked};
use super::rest::{
    Call, Method, CODE_CANCEL_REJECTED, CODE_NOT_SENT, CODE_NO_SUCH_ORDER, W_CANCEL, W_CANCEL_ALL, W_ORDER, W_QUERY,
};
use super::{i64_of, ms_ns, side_str, str_of, wall_ns, BinanceSpot};
use crate::event::{ExecKind, ExecReport, NewOrder, OrderId, RejectMsg, Tif};
use crate::gateway::sign::Query;
use crate::types::{InstId, Side};

/// `type` (and `timeInForce`) of a new order: post-only quotes are `LIMIT_MAKER`.
fn push_order_type(q: &mut Query, tif: Tif) {
    match tif {
        Tif::PostOnly => q.push("type", "LIMIT_MAKER"),
        Tif::Gtc => q.push("type", "LIMIT").push("timeInForce", "GTC"),
        Tif::Ioc => q.push("type", "LIMIT").push("timeInForce", "IOC"),
    };
}

impl BinanceSpot {
    pub(super) fn new_order(&mut self, n: &NewOrder, out: &mut Vec<ExecReport>) {
        let Some(ins) = self.instruments.get(n.inst as usize).cloned() else {
            self.stats.rejects += 1;
            self.rejects_push(n.id, CODE_NOT_SENT, format!("unknown instrument {}", n.inst));
            out.push(ExecReport::rejected(n.id, n.inst, n.side, n.px, CODE_NOT_SENT, RejectMsg::new(), 0));
            return;
        };
        self.orders.insert(n.id, Tracked::new(n));
        let mut q = Query::new();
        q.push("symbol", &ins.symbol).push("side", side_str(n.side));
        push_order_type(&mut q, n.tif);
        q.push("quantity", ins.qty_decimal(n.qty))
            .push("price", ins.price_decimal(n.px))
            .push("newClientOrderId", client_order_id(n.id))
            .push("newOrderRespType", "FULL");
        self.stats.orders_sent += 1;
        let (res, sent_ms) = self.rest.call_ts(&mut self.stats, Method::Post, "/api/v3/order", q, W_ORDER, 1);
        if let Some(t) = self.orders.get_mut(&n.id) {
            t.sent_ms = sent_ms;
        }
        match res {
            Call::Ok(v) => self.apply_new_answer(n.id, &v, out),
            Call::Api { code, msg, .. } | Call::NotSent { code, msg } => self.reject(n.id, code, msg, wall_ns(), out),
            Call::Unknown(_) => self.mark_unknown(n.id),
        }
    }

    pub(super) fn cancel(&mut self, id: OrderId, inst: InstId, out: &mut Vec<ExecReport>) {
        let Some(ins) = self.instruments.get(inst as usize).cloned() else { return };
        match self.orders.get_mut(&id) {
            Some(t) if t.state == OrderState::Done => return,
            Some(t) if t.state == OrderState::Unknown => {
                // Placement outcome unknown: cancel once it is known to be live.
                t.cancel_wanted = true;
            }
            _ => {}
        }
        let mut q = Query::new();
        q.push("symbol", &ins.symbol).push("origClientOrderId", client_order_id(id));
        match self.rest.call(&mut self.stats, Method::Delete, "/api/v3/order", q, W_CANCEL, 0) {
            Call::Ok(v) => match self.snapshot_of(inst, &v) {
                Some(s) => self.apply_snapshot(id, s, out),
                None => {
                    self.stats.parse_errors += 1;
                    self.mark_unknown(id);
                }
            },
            Call::Api { code, msg, .. } => {
                if let Some(t) = self.orders.get_mut(&id) {
                    // -2011: already final at the venue (a fill on its way) or not
                    // there yet; other codes (-1003 ...): not executed. Either way ask
                    // the venue what the order is; if it is live the cancel is sent
                    // again (`cancel_wanted`).
                    t.cancel_wanted = true;
                    self.rejects_push(id, code, msg);
                    self.mark_unknown(id);
                    self.settle(id, out);
                } else {
                    // Not ours to track (pruned or never placed): answer as the
                    // simulator does, so that the core can forget it.
                    out.push(ExecReport::rejected(id, inst, Side::Buy, 0, code, RejectMsg::new(), wall_ns()));
                    self.stats.rejects += 1;
                    self.rejects_push(id, code, msg);
                }
            }
            Call::NotSent { .. } => {
                self.pending_cancels.push_back((id, inst));
                self.stats.cancels_queued += 1;
            }
            Call::Unknown(_) => {
                if let Some(t) = self.orders.get_mut(&id) {
                    t.cancel_wanted = true;
                }
                self.mark_unknown(id);
            }
        }
    }

    pub(super) fn cancel_all(&mut self, out: &mut Vec<ExecReport>) {
        let mut failed = false;
        for inst in 0..self.instruments.len() as InstId {
            let symbol = self.instruments[inst as usize].symbol.clone();
            let mut q = Query::new();
            q.push("symbol", &symbol);
            match self.rest.call(&mut self.stats, Method::Delete, "/api/v3/openOrders", q, W_CANCEL_ALL, 0) {
                Call::Ok(v) => {
                    let arr = v.as_array().cloned().unwrap_or_default();
                    for o in &arr {
                        let id = str_of(o, "origClientOrderId").and_then(parse_client_order_id);
                        let (Some(id), Some(s)) = (id, self.snapshot_of(inst, o)) else { continue };
                        self.apply_snapshot(id, s, out);
                    }
                }
                // -2011: nothing open on this symbol.
                Call::Api { code: CODE_CANCEL_REJECTED, .. } => {}
                // Not executed (back-off, limiter): send it again from `poll`.
                Call::Api { .. } | Call::NotSent { .. } => failed = true,
                Call::Unknown(_) => {}
            }
            // Tracked orders of this symbol still not final: filled meanwhile, or the
            // answer was lost. Settle them by query.
            let open: Vec<OrderId> = self
                .orders
                .iter()
                .filter(|(_, t)| t.inst == inst && t.state != OrderState::Done)
                .map(|(&id, _)| id)
                .collect();
            for id in open {
                if let Some(t) = self.orders.get_mut(&id) {
                    t.cancel_wanted = true;
                }
                self.mark_unknown(id);
            }
        }
        self.pending_cancel_all = failed;
    }

    /// Cancels `old` and places `new` in one request (`cancelReplaceMode=STOP_ON_FAILURE`):
    /// reports `Canceled` for `old` and `New` (and fills) for `new`; if the cancel fails
    /// the new order is not attempted and is reported `Rejected` with `-2022`; if the
    /// new order fails it is `Rejected` with its own code (e.g. `-2010`).
    pub fn cancel_replace(&mut self, old: OrderId, new: &NewOrder, out: &mut Vec<ExecReport>) {
        let Some(ins) = self.instruments.get(new.inst as usize).cloned() else { return };
        self.orders.insert(new.id, Tracked::new(new));
        let mut q = Query::new();
        q.push("symbol", &ins.symbol).push("side", side_str(new.side));
        push_order_type(&mut q, new.tif);
        q.push("cancelReplaceMode", "STOP_ON_FAILURE")
            .push("cancelOrigClientOrderId", client_order_id(old))
            .push("quantity", ins.qty_decimal(new.qty))
            .push("price", ins.price_decimal(new.px))
            .push("newClientOrderId", client_order_id(new.id))
            .push("newOrderRespType", "FULL");
        self.stats.orders_sent += 1;
        let (res, sent_ms) =
            self.rest.call_ts(&mut self.stats, Method::Post, "/api/v3/order/cancelReplace", q, W_ORDER, 1);
        if let Some(t) = self.orders.get_mut(&new.id) {
            t.sent_ms = sent_ms;
        }
        let ts = wall_ns();
        match res {
            Call::Ok(v) => {
                if let Some(c) = v.get("cancelResponse") {
                    if let Some(s) = self.snapshot_of(new.inst, c) {
                        self.apply_snapshot(old, s, out);
                    }
                }
                match v.get("newOrderResponse") {
                    Some(n) => self.apply_new_answer(new.id, n, out),
                    None => self.mark_unknown(new.id),
                }
            }
            Call::Api { code, msg, data, .. } => {
                let data = data.unwrap_or(Value::Null);
                let cancel_ok = str_of(&data, "cancelResult") == Some("SUCCESS");
                let c = data.get("cancelResponse").cloned().unwrap_or(Value::Null);
                if cancel_ok {
                    if let Some(s) = self.snapshot_of(new.inst, &c) {
                        self.apply_snapshot(old, s, out);
                    }
                } else if i64_of(&c, "code").is_some() && self.orders.contains_key(&old) {
                    self.mark_unknown(old);
                    self.settle(old, out);
                }
                let nr = data.get("newOrderResponse").cloned().unwrap_or(Value::Null);
                let (ncode, nmsg) = match i64_of(&nr, "code") {
                    Some(_) => self.rest.api_error(&nr),
                    None => (code, msg),
                };
                self.reject(new.id, ncode, nmsg, ts, out);
            }
            Call::NotSent { code, msg } => self.reject(new.id, code, msg, ts, out),
            Call::Unknown(_) => {
                self.mark_unknown(new.id);
                if self.orders.contains_key(&old) {
                    self.mark_unknown(old);
                }
            }
        }
    }

    /// Queries one order (`GET /api/v3/order`) and applies the answer.
    pub(super) fn settle(&mut self, id: OrderId, out: &mut Vec<ExecReport>) {
        let Some(t) = self.orders.get(&id).cloned() else { return };
        let ins = &self.instruments[t.inst as usize];
        let mut q = Query::new();
        q.push("symbol", &ins.symbol).push("origClientOrderId", client_order_id(id));
        self.stats.settle_queries += 1;
        let settle = ms_ns(self.cfg.settle_interval_ms);
        match self.rest.call(&mut self.stats, Method::Get, "/api/v3/order", q, W_QUERY, 0) {
            Call::Ok(v) => match self.snapshot_of(t.inst, &v) {
                Some(s) => self.apply_snapshot(id, s, out),
                None => self.stats.parse_errors += 1,
            },
            // Not (yet) at the venue. Once the server clock is past timestamp +
            // recvWindow the request can no longer be accepted: never placed.
            Call::Api { code: CODE_NO_SUCH_ORDER, msg, .. }
                if self.rest.server_ms() > t.sent_ms.saturating_add(self.cfg.recv_window_ms as i64) =>
            {
                let ts = wall_ns();
                if t.acked {
                    // It was live before and is gone without a trace (archived):
                    // treat it as cancelled.
                    if let Some(tt) = self.orders.get_mut(&id) {
                        tt.state = OrderState::Done;
                        tt.done_at = ts;
                    }
                    out.push(t.report(id, ExecKind::Canceled, t.px, 0, 0.0, false, 0, ts));
                } else {
                    self.reject(id, CODE_NO_SUCH_ORDER, msg, ts, out);
                }
            }
            _ => {}
        }
        if let Some(tt) = self.orders.get_mut(&id) {
            tt.next_query = wall_ns().saturating_add(settle);
        }
    }
}
