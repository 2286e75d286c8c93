//! The order state machine: what the gateway knows about each of its orders, and how
//! venue answers, order snapshots and stream events move it.
//!
//! Every order the gateway sends is tracked ([`OrderState`]): `Live` once sent,
//! `Unknown` while a request about it went unanswered, `Done` once final. Final orders
//! are kept a minute to recognise late duplicate events, then pruned.
//!
//! # What reaches the core
//!
//! - `New` once per order (from the REST answer or the stream, whichever comes first),
//!   fills exactly once (a fill advances the order's cumulative quantity; stream events
//!   whose cumulative `z` is not beyond it are duplicates), then one final report.
//! - Venue rejects as `Rejected` with the venue's code (`-2010` ...); the message is
//!   kept in [`BinanceSpot::rejects`] (an [`ExecReport`] has no room for text).
//! - Requests refused before sending (rate limiter, a 429/418 back-off) as `Rejected`
//!   with code [`CODE_TOO_MANY_REQUESTS`](super::rest::CODE_TOO_MANY_REQUESTS) for new
//!   orders; cancels are never dropped: they are queued and retried from
//!   [`Exchange::poll`](crate::gateway::Exchange::poll).
//! - A request without an answer (timeout, connection lost after sending) leaves the
//!   order **unknown**: nothing is reported, and `poll` queries it every
//!   `settle_interval_ms` until the venue says what it is. An order the venue does not
//!   know (`-2013`) counts as never placed only once the server clock is past the
//!   request's `timestamp + recvWindow`, after which Binance would refuse it anyway.
//! - Fills the gateway has to infer from an order snapshot (a cancel answer showing
//!   more executed than reported) are reported at the order's limit price (a resting
//!   order fills at its own price) with the configured maker fee estimate
//!   ([`super::commission`]).

use serde_json::Value;

use super::rest::CODE_NEW_ORDER_REJECTED;
use super::stream::Execution;
use super::{i64_of, ms_ns, str_of, wall_ns, BinanceSpot};
use crate::event::{reject_msg, ExecKind, ExecReport, NewOrder, OrderId, RejectMsg};
use crate::types::{InstId, Px, Qty, Side, Ts, NS_PER_MS};

/// Final orders are kept this long to recognise late duplicate events.
pub(super) const KEEP_DONE_NS: Ts = 60_000 * NS_PER_MS;

/// What the gateway knows about one of its orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    /// Accepted (or sent and answered) and open at the venue.
    Live,
    /// A request about it went unanswered; queries will settle it.
    Unknown,
    /// Final: filled, cancelled, rejected or expired.
    Done,
}

/// One order the gateway sent and has not pruned.
#[derive(Debug, Clone)]
pub(super) struct Tracked {
    pub(super) inst: InstId,
    pub(super) side: Side,
    pub(super) px: Px,
    pub(super) qty: Qty,
    /// Lots reported as filled so far.
    pub(super) cum: Qty,
    pub(super) acked: bool,
    pub(super) state: OrderState,
    /// Server-time `timestamp` (ms) of the last request that may create it.
    pub(super) sent_ms: i64,
    /// A cancel was requested: send it again if the order turns out live.
    pub(super) cancel_wanted: bool,
    /// Next settle query (wall ns).
    pub(super) next_query: Ts,
    /// When it became final (wall ns).
    pub(super) done_at: Ts,
}

impl Tracked {
    /// A new order about to be sent: live until the venue says otherwise.
    pub(super) fn new(n: &NewOrder) -> Self {
        Tracked {
            inst: n.inst,
            side: n.side,
            px: n.px,
            qty: n.qty,
            cum: 0,
            acked: false,
            state: OrderState::Live,
            sent_ms: 0,
            cancel_wanted: false,
            next_query: 0,
            done_at: 0,
        }
    }

    /// A report about this order (`id`), `leaves` from what is reported filled.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn report(
        &self,
        id: OrderId,
        kind: ExecKind,
        px: Px,
        qty: Qty,
        fee: f64,
        maker: bool,
        code: i32,
        ts: Ts,
    ) -> ExecReport {
        ExecReport {
            id,
            inst: self.inst,
            side: self.side,
            kind,
            px,
            qty,
            leaves: (self.qty - self.cum).max(0),
            fee,
            fee_base: 0.0,
            msg: RejectMsg::new(),
            maker,
            code,
            exch_ts: ts,
        }
    }
}

/// A reject with the venue's message, kept for logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectInfo {
    /// Our order id.
    pub id: OrderId,
    /// Venue (or local) code.
    pub code: i32,
    /// Venue (or local) message.
    pub msg: String,
}

/// An order snapshot from a REST answer or a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Snapshot {
    pub(super) status: Status,
    pub(super) executed: Qty,
    pub(super) time_ms: i64,
}

/// Binance order status (`X`, `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Expired,
}

fn status_of(s: &str) -> Option<Status> {
    Some(match s {
        "NEW" | "PENDING_NEW" => Status::New,
        "PARTIALLY_FILLED" => Status::PartiallyFilled,
        "FILLED" => Status::Filled,
        "CANCELED" | "PENDING_CANCEL" => Status::Canceled,
        "REJECTED" => Status::Rejected,
        "EXPIRED" | "EXPIRED_IN_MATCH" => Status::Expired,
        _ => return None,
    })
}

impl BinanceSpot {
    pub(super) fn rejects_push(&mut self, id: OrderId, code: i32, msg: String) {
        if self.rejects.len() == 256 {
            self.rejects.pop_front();
        }
        // Venue texts are redacted where they are read; this catches any other path.
        let msg = self.rest.venue_text(&msg);
        self.rejects.push_back(RejectInfo { id, code, msg });
    }

    pub(super) fn reject(&mut self, id: OrderId, code: i32, msg: String, ts: Ts, out: &mut Vec<ExecReport>) {
        if let Some(t) = self.orders.get_mut(&id) {
            t.state = OrderState::Done;
            t.done_at = wall_ns();
            let t = t.clone();
            out.push(ExecReport {
                leaves: 0,
                msg: reject_msg(&msg),
                ..t.report(id, ExecKind::Rejected, t.px, 0, 0.0, false, code, ts)
            });
        }
        self.stats.rejects += 1;
        self.rejects_push(id, code, msg);
    }

    /// Pushes a fill of `qty` at `px` (if it advances the cumulative quantity).
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        id: OrderId,
        px: Px,
        qty: Qty,
        maker: bool,
        commission: Option<(f64, &str)>,
        ts: Ts,
        out: &mut Vec<ExecReport>,
    ) {
        if qty <= 0 {
            return;
        }
        let Some(inst) = self.orders.get(&id).map(|t| t.inst) else { return };
        let fee = self.commission.of_fill(inst, &self.instruments[inst as usize], px, qty, maker, commission);
        if fee.estimated {
            self.stats.fee_estimates += 1;
        }
        let Some(t) = self.orders.get_mut(&id) else { return };
        t.cum += qty;
        t.acked = true;
        let kind = if t.cum >= t.qty { ExecKind::Fill } else { ExecKind::PartialFill };
        if kind == ExecKind::Fill {
            t.state = OrderState::Done;
            t.done_at = wall_ns();
        }
        let t = t.clone();
        out.push(ExecReport { fee_base: fee.base, ..t.report(id, kind, px, qty, fee.quote, maker, 0, ts) });
        self.stats.fills += 1;
    }

    /// Brings a tracked order to a venue snapshot: `New` if not yet acknowledged,
    /// fills the snapshot shows beyond those reported (inferred: limit price, estimated
    /// maker fee), then the final report.
    pub(super) fn apply_snapshot(&mut self, id: OrderId, s: Snapshot, out: &mut Vec<ExecReport>) {
        let Some(t) = self.orders.get(&id).cloned() else { return };
        if t.state == OrderState::Done {
            self.stats.duplicates += 1;
            return;
        }
        let ts = s.time_ms.saturating_mul(NS_PER_MS);
        if let Some(t) = self.orders.get_mut(&id) {
            t.state = OrderState::Live;
        }
        if !t.acked && s.status != Status::Rejected {
            if let Some(t) = self.orders.get_mut(&id) {
                t.acked = true;
            }
            out.push(t.report(id, ExecKind::New, t.px, 0, 0.0, false, 0, ts));
        }
        if s.executed > t.cum {
            self.stats.inferred_fills += 1;
            let fee = self.commission.of_inferred(&self.instruments[t.inst as usize], t.px, s.executed - t.cum);
            self.fill(id, t.px, s.executed - t.cum, true, None, ts, out);
            if let Some(r) = out.last_mut() {
                r.fee = fee.quote;
                // Binance takes a buyer's commission in the asset bought (unless paid
                // in BNB): the estimate follows that rule.
                if t.side == Side::Buy {
                    r.fee_base = fee.base;
                }
            }
        }
        let kind = match s.status {
            Status::Canceled => ExecKind::Canceled,
            Status::Expired => ExecKind::Expired,
            Status::Rejected => ExecKind::Rejected,
            Status::New | Status::PartiallyFilled | Status::Filled => return self.after_live(id, out),
        };
        let Some(t) = self.orders.get_mut(&id) else { return };
        if t.state == OrderState::Done {
            return;
        }
        t.state = OrderState::Done;
        t.done_at = wall_ns();
        let t = t.clone();
        if kind == ExecKind::Rejected {
            self.stats.rejects += 1;
        }
        out.push(t.report(
            id,
            kind,
            t.px,
            0,
            0.0,
            false,
            if kind == ExecKind::Rejected { CODE_NEW_ORDER_REJECTED } else { 0 },
            ts,
        ));
    }

    /// An order turned out live: if a cancel was wanted, queue it again.
    fn after_live(&mut self, id: OrderId, _out: &mut [ExecReport]) {
        if let Some(t) = self.orders.get_mut(&id) {
            if t.cancel_wanted && t.state == OrderState::Live {
                t.cancel_wanted = false;
                let inst = t.inst;
                self.pending_cancels.push_back((id, inst));
                self.stats.cancels_queued += 1;
            }
        }
    }

    pub(super) fn snapshot_of(&self, inst: InstId, v: &Value) -> Option<Snapshot> {
        let ins = &self.instruments[inst as usize];
        Some(Snapshot {
            status: status_of(str_of(v, "status")?)?,
            executed: ins.parse_qty(str_of(v, "executedQty")?.as_bytes()).ok()?,
            time_ms: i64_of(v, "transactTime")
                .or_else(|| i64_of(v, "updateTime"))
                .or_else(|| i64_of(v, "time"))
                .unwrap_or(0),
        })
    }

    /// Applies a `newOrderRespType=FULL` answer: `New`, each fill of `fills` (taker),
    /// then the final state.
    pub(super) fn apply_new_answer(&mut self, id: OrderId, v: &Value, out: &mut Vec<ExecReport>) {
        let Some(inst) = self.orders.get(&id).map(|t| t.inst) else { return };
        let Some(snap) = self.snapshot_of(inst, v) else {
            self.stats.parse_errors += 1;
            // Accepted (2xx) but unreadable: settle by query.
            self.mark_unknown(id);
            return;
        };
        let ts = snap.time_ms.saturating_mul(NS_PER_MS);
        if let Some(t) = self.orders.get_mut(&id) {
            t.state = OrderState::Live;
            if !t.acked {
                t.acked = true;
                let t = t.clone();
                out.push(t.report(id, ExecKind::New, t.px, 0, 0.0, false, 0, ts));
            }
        }
        if let Some(fills) = v.get("fills").and_then(Value::as_array) {
            let ins = self.instruments[inst as usize].clone();
            for f in fills {
                let px = str_of(f, "price").and_then(|s| ins.parse_price(s.as_bytes()).ok());
                let qty = str_of(f, "qty").and_then(|s| ins.parse_qty(s.as_bytes()).ok());
                let (Some(px), Some(qty)) = (px, qty) else {
                    self.stats.parse_errors += 1;
                    continue;
                };
                let n = str_of(f, "commission").and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
                let a = str_of(f, "commissionAsset").unwrap_or("").to_string();
                let c = (n != 0.0).then_some((n, a.as_str()));
                self.fill(id, px, qty, false, c, ts, out);
            }
        }
        self.apply_snapshot(id, snap, out);
    }

    pub(super) fn mark_unknown(&mut self, id: OrderId) {
        let settle = ms_ns(self.cfg.settle_interval_ms);
        if let Some(t) = self.orders.get_mut(&id) {
            if t.state != OrderState::Done {
                t.state = OrderState::Unknown;
                t.next_query = wall_ns().saturating_add(settle);
            }
        }
        self.stats.unknown += 1;
    }

    /// Applies one `executionReport` of the user data stream.
    pub(super) fn on_execution(&mut self, x: &Execution, out: &mut Vec<ExecReport>) {
        self.stats.stream_reports += 1;
        let Some(t) = self.orders.get(&x.id).cloned() else {
            // Not tracked (an earlier session, or pruned): fills still move positions.
            if x.exec_type == "TRADE" && x.last_qty > 0 {
                let c = x.commission.as_ref().map(|(n, a)| (*n, a.as_str()));
                let fee = self.commission.of_untracked(x.inst, &self.instruments[x.inst as usize], x.last_px, c);
                let kind = if x.cum >= x.qty { ExecKind::Fill } else { ExecKind::PartialFill };
                out.push(ExecReport {
                    id: x.id,
                    inst: x.inst,
                    side: x.side,
                    kind,
                    px: x.last_px,
                    qty: x.last_qty,
                    leaves: (x.qty - x.cum).max(0),
                    fee: fee.quote,
                    fee_base: fee.base,
                    msg: RejectMsg::new(),
                    maker: x.maker,
                    code: 0,
                    exch_ts: x.ts,
                });
                self.stats.fills += 1;
            } else {
                self.stats.foreign += 1;
            }
            return;
        };
        if t.state == OrderState::Done && !(x.exec_type == "TRADE" && x.cum > t.cum) {
            self.stats.duplicates += 1;
            return;
        }
        if t.state == OrderState::Unknown {
            if let Some(tt) = self.orders.get_mut(&x.id) {
                tt.state = OrderState::Live;
            }
        }
        match x.exec_type.as_str() {
            "NEW" => {
                if t.acked {
                    self.stats.duplicates += 1;
                } else if let Some(tt) = self.orders.get_mut(&x.id) {
                    tt.acked = true;
                    let tt = tt.clone();
                    out.push(tt.report(x.id, ExecKind::New, x.px, 0, 0.0, false, 0, x.ts));
                }
                self.after_live(x.id, out);
            }
            "TRADE" => {
                if x.cum <= t.cum {
                    self.stats.duplicates += 1;
                    return;
                }
                // Normally `l == z - cum`; if events were lost, report the whole gap.
                let qty = x.cum - t.cum;
                let c = x.commission.as_ref().map(|(n, a)| (*n, a.as_str()));
                self.fill(x.id, x.last_px, qty, x.maker, c, x.ts, out);
                self.after_live(x.id, out);
            }
            "CANCELED" | "EXPIRED" | "TRADE_PREVENTION" | "REJECTED" => {
                if x.cum > t.cum {
                    let fee = 0.0;
                    self.fill(x.id, t.px, x.cum - t.cum, true, None, x.ts, out);
                    if let Some(r) = out.last_mut() {
                        r.fee = fee;
                    }
                    self.stats.inferred_fills += 1;
                }
                let Some(tt) = self.orders.get_mut(&x.id) else { return };
                if tt.state == OrderState::Done {
                    return;
                }
                tt.state = OrderState::Done;
                tt.done_at = wall_ns();
                let tt = tt.clone();
                let (kind, code) = match x.exec_type.as_str() {
                    "CANCELED" => (ExecKind::Canceled, 0),
                    "REJECTED" => (ExecKind::Rejected, CODE_NEW_ORDER_REJECTED),
                    _ => (ExecKind::Expired, 0),
                };
                if kind == ExecKind::Rejected {
                    self.stats.rejects += 1;
                    let reason = self.rest.venue_text(&x.reason);
                    self.rejects_push(x.id, code, reason);
                }
                out.push(tt.report(x.id, kind, x.px, 0, 0.0, false, code, x.ts));
            }
            _ => {}
        }
    }
}
