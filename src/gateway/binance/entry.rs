//! Order entry: the request behind each order command, and what its answer does to
//! the order.
//!
//! - A new order is `POST /api/v3/order` (`order.place`) with
//!   `newOrderRespType=FULL`, so the answer carries the order's state and its
//!   immediate fills; post-only quotes are `LIMIT_MAKER` (the venue rejects one that
//!   would take, `-2010`), the rest `LIMIT` with `GTC` or `IOC`. The order is tracked
//!   before it is sent.
//! - A cancel is `DELETE /api/v3/order` (`order.cancel`) by our client order id. One
//!   the venue refuses (`-2011`: already final, or not there yet; any other code: not
//!   executed) queries the order instead, and is sent again if the order turns out
//!   live; one that was not sent is queued and retried from `poll`. A cancel of an
//!   order of unknown state is sent all the same, and again should the order turn out
//!   live later.
//! - A cancel-all is `DELETE /api/v3/openOrders` (`openOrders.cancelAll`) per symbol;
//!   tracked orders it did not close are settled by query, and a symbol it could not
//!   cancel makes `poll` send the cancel-all again.
//! - [`BinanceSpot::cancel_replace`] is one `POST /api/v3/order/cancelReplace`
//!   (`order.cancelReplace`) with `STOP_ON_FAILURE`: if the cancel fails the new
//!   order is not attempted.
//! - Settling an order is `GET /api/v3/order` (`order.status`): the venue's snapshot
//!   is applied, and an order the venue does not know (`-2013`) once the request can
//!   no longer arrive is never placed (or, if it was acknowledged before, gone:
//!   cancelled).
//!
//! Each command is built as a transport-neutral request (an `Op` and its parameters)
//! and sent by `BinanceSpot::submit`: over REST it blocks until the answer, over the
//! WebSocket API ([`super::wsapi`]) it returns at once and the answer is handled when
//! it arrives. Either way the answer, as a `Call`, goes through the same
//! `BinanceSpot::on_answer`, so both transports share one state machine.
//!
//! Weights and signing: [`super::rest`], [`super::wsapi`]; what the answers become:
//! [`super::orders`].

use serde_json::Value;

use super::config::OrderEntry;
use super::ids::{client_order_id, parse_client_order_id};
use super::orders::{OrderState, Tracked};
use super::rest::{
    Call, Method, CODE_CANCEL_REJECTED, CODE_NOT_SENT, CODE_NO_SUCH_ORDER, W_CANCEL, W_CANCEL_ALL, W_ORDER, W_QUERY,
};
use super::{i64_of, ms_ns, side_str, str_of, wall_ns, BinanceSpot};
use crate::event::{ExecKind, ExecReport, NewOrder, OrderId, RejectMsg, Tif};
use crate::gateway::sign::Query;
use crate::types::{InstId, Side};

/// What an order-entry request does, and so what its answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Place order `id`.
    Place(OrderId),
    /// Cancel order `id` on `inst`.
    Cancel(OrderId, InstId),
    /// Cancel `old` and place `new` on `inst` (`STOP_ON_FAILURE`).
    Replace { old: OrderId, new: OrderId, inst: InstId },
    /// Query order `id` (settle it).
    Status(OrderId),
    /// Cancel every open order on `inst`.
    CancelAll(InstId),
}

impl Op {
    /// REST method and path.
    pub(super) fn rest(self) -> (Method, &'static str) {
        match self {
            Op::Place(_) => (Method::Post, "/api/v3/order"),
            Op::Cancel(..) => (Method::Delete, "/api/v3/order"),
            Op::Replace { .. } => (Method::Post, "/api/v3/order/cancelReplace"),
            Op::Status(_) => (Method::Get, "/api/v3/order"),
            Op::CancelAll(_) => (Method::Delete, "/api/v3/openOrders"),
        }
    }

    /// WebSocket API method.
    pub(super) fn ws_method(self) -> &'static str {
        match self {
            Op::Place(_) => "order.place",
            Op::Cancel(..) => "order.cancel",
            Op::Replace { .. } => "order.cancelReplace",
            Op::Status(_) => "order.status",
            Op::CancelAll(_) => "openOrders.cancelAll",
        }
    }

    /// Request weight and new orders placed (the same on both transports).
    pub(super) fn cost(self) -> (u32, u32) {
        match self {
            Op::Place(_) | Op::Replace { .. } => (W_ORDER, 1),
            Op::Cancel(..) => (W_CANCEL, 0),
            Op::Status(_) => (W_QUERY, 0),
            Op::CancelAll(_) => (W_CANCEL_ALL, 0),
        }
    }
}

/// Request parameters in order, before `recvWindow`, `timestamp` and the signature.
pub(super) type Params = Vec<(&'static str, String)>;

/// `type` (and `timeInForce`) of a new order: post-only quotes are `LIMIT_MAKER`.
fn push_order_type(q: &mut Params, tif: Tif) {
    match tif {
        Tif::PostOnly => q.push(("type", "LIMIT_MAKER".into())),
        Tif::Gtc => q.extend([("type", "LIMIT".into()), ("timeInForce", "GTC".into())]),
        Tif::Ioc => q.extend([("type", "LIMIT".into()), ("timeInForce", "IOC".into())]),
    }
}

/// The REST query string of `params`.
fn query_of(params: &Params) -> Query {
    let mut q = Query::new();
    for (k, v) in params {
        q.push(k, v);
    }
    q
}

impl BinanceSpot {
    /// Sends one request on the configured transport. REST: blocks and handles the
    /// answer before returning. WebSocket API: returns once it is on the wire; the
    /// answer is handled by a later poll.
    pub(super) fn submit(&mut self, op: Op, params: Params, out: &mut Vec<ExecReport>) {
        if self.entry == OrderEntry::Ws {
            return self.ws_submit(op, params, out);
        }
        let (method, path) = op.rest();
        let (weight, orders) = op.cost();
        let (call, sent_ms) = self.rest.call_ts(&mut self.stats, method, path, query_of(&params), weight, orders);
        self.on_answer(op, call, sent_ms, out);
    }

    /// What an answer (or its absence) does to the orders `op` is about; `sent_ms` is
    /// the `timestamp` of the request (0 if it was not sent).
    pub(super) fn on_answer(&mut self, op: Op, call: Call, sent_ms: i64, out: &mut Vec<ExecReport>) {
        match op {
            Op::Place(id) => {
                self.set_sent_ms(id, sent_ms);
                self.place_answer(id, call, out);
            }
            Op::Cancel(id, inst) => self.cancel_answer(id, inst, call, out),
            Op::Replace { old, new, inst } => {
                self.set_sent_ms(new, sent_ms);
                self.replace_answer(old, new, inst, call, out);
            }
            Op::Status(id) => self.settle_answer(id, call, out),
            Op::CancelAll(inst) => self.cancel_all_answer(inst, call, out),
        }
    }

    fn set_sent_ms(&mut self, id: OrderId, sent_ms: i64) {
        if let Some(t) = self.orders.get_mut(&id) {
            if sent_ms != 0 {
                t.sent_ms = sent_ms;
            }
        }
    }

    pub(super) fn new_order(&mut self, n: &NewOrder, out: &mut Vec<ExecReport>) {
        let Some(ins) = self.instruments.get(n.inst as usize) else {
            self.stats.rejects += 1;
            self.rejects_push(n.id, CODE_NOT_SENT, format!("unknown instrument {}", n.inst));
            out.push(ExecReport::rejected(n.id, n.inst, n.side, n.px, CODE_NOT_SENT, RejectMsg::new(), 0));
            return;
        };
        let mut q: Params = vec![("symbol", ins.symbol.clone()), ("side", side_str(n.side).into())];
        push_order_type(&mut q, n.tif);
        q.extend([
            ("quantity", ins.qty_decimal(n.qty).to_string()),
            ("price", ins.price_decimal(n.px).to_string()),
            ("newClientOrderId", client_order_id(n.id)),
            ("newOrderRespType", "FULL".into()),
        ]);
        self.orders.insert(n.id, Tracked::new(n));
        self.stats.orders_sent += 1;
        self.submit(Op::Place(n.id), q, out);
    }

    fn place_answer(&mut self, id: OrderId, call: Call, out: &mut Vec<ExecReport>) {
        match call {
            Call::Ok(v) => self.apply_new_answer(id, &v, out),
            Call::Api { code, msg, .. } | Call::NotSent { code, msg } => self.reject(id, code, msg, wall_ns(), out),
            Call::Unknown(_) => self.mark_unknown(id),
        }
    }

    pub(super) fn cancel(&mut self, id: OrderId, inst: InstId, out: &mut Vec<ExecReport>) {
        let Some(ins) = self.instruments.get(inst as usize) else { return };
        let q: Params = vec![("symbol", ins.symbol.clone()), ("origClientOrderId", client_order_id(id))];
        match self.orders.get_mut(&id) {
            Some(t) if t.state == OrderState::Done => return,
            Some(t) if t.state == OrderState::Unknown => {
                // Placement outcome unknown: cancel once it is known to be live.
                t.cancel_wanted = true;
            }
            _ => {}
        }
        self.submit(Op::Cancel(id, inst), q, out);
    }

    fn cancel_answer(&mut self, id: OrderId, inst: InstId, call: Call, out: &mut Vec<ExecReport>) {
        match call {
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
        self.pending_cancel_all = false;
        for inst in 0..self.instruments.len() as InstId {
            let q: Params = vec![("symbol", self.instruments[inst as usize].symbol.clone())];
            self.submit(Op::CancelAll(inst), q, out);
        }
    }

    fn cancel_all_answer(&mut self, inst: InstId, call: Call, out: &mut Vec<ExecReport>) {
        match call {
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
            Call::Api { .. } | Call::NotSent { .. } => self.pending_cancel_all = true,
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

    /// Cancels `old` and places `new` in one request (`cancelReplaceMode=STOP_ON_FAILURE`):
    /// reports `Canceled` for `old` and `New` (and fills) for `new`; if the cancel fails
    /// the new order is not attempted and is reported `Rejected` with `-2022`; if the
    /// new order fails it is `Rejected` with its own code (e.g. `-2010`). Over the
    /// WebSocket API the reports come with the answer, from a later poll.
    pub fn cancel_replace(&mut self, old: OrderId, new: &NewOrder, out: &mut Vec<ExecReport>) {
        let Some(ins) = self.instruments.get(new.inst as usize) else { return };
        let mut q: Params = vec![("symbol", ins.symbol.clone()), ("side", side_str(new.side).into())];
        push_order_type(&mut q, new.tif);
        q.extend([
            ("cancelReplaceMode", "STOP_ON_FAILURE".into()),
            ("cancelOrigClientOrderId", client_order_id(old)),
            ("quantity", ins.qty_decimal(new.qty).to_string()),
            ("price", ins.price_decimal(new.px).to_string()),
            ("newClientOrderId", client_order_id(new.id)),
            ("newOrderRespType", "FULL".into()),
        ]);
        self.orders.insert(new.id, Tracked::new(new));
        self.stats.orders_sent += 1;
        self.submit(Op::Replace { old, new: new.id, inst: new.inst }, q, out);
    }

    fn replace_answer(&mut self, old: OrderId, new: OrderId, inst: InstId, call: Call, out: &mut Vec<ExecReport>) {
        let ts = wall_ns();
        match call {
            Call::Ok(v) => {
                if let Some(c) = v.get("cancelResponse") {
                    if let Some(s) = self.snapshot_of(inst, c) {
                        self.apply_snapshot(old, s, out);
                    }
                }
                match v.get("newOrderResponse") {
                    Some(n) => self.apply_new_answer(new, n, out),
                    None => self.mark_unknown(new),
                }
            }
            Call::Api { code, msg, data, .. } => {
                let data = data.unwrap_or(Value::Null);
                let cancel_ok = str_of(&data, "cancelResult") == Some("SUCCESS");
                let c = data.get("cancelResponse").cloned().unwrap_or(Value::Null);
                if cancel_ok {
                    if let Some(s) = self.snapshot_of(inst, &c) {
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
                self.reject(new, ncode, nmsg, ts, out);
            }
            Call::NotSent { code, msg } => self.reject(new, code, msg, ts, out),
            Call::Unknown(_) => {
                self.mark_unknown(new);
                if self.orders.contains_key(&old) {
                    self.mark_unknown(old);
                }
            }
        }
    }

    /// Queries one order (`GET /api/v3/order`, `order.status`) and applies the answer.
    pub(super) fn settle(&mut self, id: OrderId, out: &mut Vec<ExecReport>) {
        let Some(t) = self.orders.get_mut(&id) else { return };
        // No second query before this one is answered (or the interval passed).
        t.next_query = wall_ns().saturating_add(ms_ns(self.cfg.settle_interval_ms));
        let inst = t.inst;
        let ins = &self.instruments[inst as usize];
        let q: Params = vec![("symbol", ins.symbol.clone()), ("origClientOrderId", client_order_id(id))];
        self.stats.settle_queries += 1;
        self.submit(Op::Status(id), q, out);
    }

    fn settle_answer(&mut self, id: OrderId, call: Call, out: &mut Vec<ExecReport>) {
        let Some(t) = self.orders.get(&id).cloned() else { return };
        match call {
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
            tt.next_query = wall_ns().saturating_add(ms_ns(self.cfg.settle_interval_ms));
        }
    }
}
