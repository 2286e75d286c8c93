//! Order entry over the WebSocket API (`gateway.binance.orders = "ws"`): pipelined,
//! non-blocking requests on the gateway thread.
//!
//! # Protocol
//!
//! Binance Spot WebSocket API
//! (<https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-api.md>):
//! one text frame per request, `{"id":ID,"method":M,"params":{...}}`, one answer per
//! request, `{"id":ID,"status":S,"result":{...}|"error":{"code":C,"msg":..,"data":..},
//! "rateLimits":[...]}`, in any order, matched by `id`. The methods are
//! `order.place`, `order.cancel`, `order.cancelReplace` (`STOP_ON_FAILURE`),
//! `order.status` and `openOrders.cancelAll`, with the parameters of their REST
//! twins ([`super::entry`]). A `SIGNED` request carries `apiKey`, `recvWindow`,
//! `timestamp` and `signature`: the hex HMAC-SHA256 of every parameter but
//! `signature`, sorted by name, as `k=v` joined by `&`
//! ([`ws_payload`](crate::gateway::sign::ws_payload)). With an Ed25519 key the
//! connection's session is logged on once (`session.logon`, the same payload signed
//! with Ed25519, base64; [`BinanceSpot::logon_ed25519`]) and later requests carry only
//! `recvWindow` and `timestamp`.
//!
//! # Queries
//!
//! Off the order path, `time` (the clock sync; not signed), `openOrders.status`,
//! `account.status` (`omitZeroBalances`), `order.status` and `openOrders.cancelAll` of
//! reconciliation are blocking calls (`BinanceSpot::ws_call`): sent on the same
//! connection with ids of their own, above the in-flight ones, and waited for (at most
//! `timeout_ms`) as their REST twins are. Whatever else is read meanwhile is kept for
//! the next poll, in order. REST stays for [`BinanceSpot::start`]'s first clock sync and
//! filter check, which come before the connection is used, and for any query while the
//! connection is down (`BinanceSpot::query_over_ws`).
//!
//! # Transport
//!
//! The connection is the user data stream's ([`super::stream`]): one persistent,
//! non-blocking [`WsClient`](crate::feed::ws::WsClient) (mio, tungstenite, rustls) that
//! answers pings and reconnects with backoff; answers are told from events by their
//! `id`. Every command is written to the socket at once, without waiting for earlier
//! answers. Requests in flight live in `InFlight`, a table of
//! [`MAX_IN_FLIGHT`] slots allocated once; a request id names its slot, so an answer
//! finds its request in O(1). A full table refuses the request (counted in
//! [`BinanceStats::ws_table_full`](super::BinanceStats::ws_table_full)) as the REST
//! limiter does: not sent.
//!
//! # Failures
//!
//! Shared with REST ([`super::entry`], [`super::orders`]): an answer becomes the same
//! `Call` a REST answer does. On top of it, here:
//!
//! - No answer within `timeout_ms`, or the connection lost with the request in flight:
//!   `Unknown` (the order is settled by `order.status` queries). A late answer, its
//!   slot gone, is counted and dropped: the query settles the order.
//! - 429 / 418: every request is blocked until `error.data.retryAfter` (server ms),
//!   capped at `retry_after_cap_s`.
//! - `-1021`: the clock offset is measured again and the request re-sent once, with a
//!   fresh timestamp and signature.
//! - `rateLimits` of every answer (`REQUEST_WEIGHT` per minute, `ORDERS` per 10 s and
//!   per day) feed the limiter as the REST usage headers do.
//! - Not connected: not sent.

use std::time::Duration;

use serde_json::Value;

use super::config::OrderEntry;
use super::entry::{Op, Params};
use super::error::GatewayError;
use super::rest::{Call, CODE_NOT_SENT, CODE_TIMESTAMP};
use super::{ms_ns, wall_ns, BinanceSpot};
use crate::event::ExecReport;
use crate::gateway::sign::{ws_payload, Credentials, Ed25519Key};
use crate::types::Ts;

/// Requests in flight at most: a burst beyond it is refused, not queued.
pub const MAX_IN_FLIGHT: usize = 256;

/// Low bits of a request id: its slot.
const SLOT_BITS: u32 = 16;

/// First request id of the blocking queries (`BinanceSpot::ws_call`): above every
/// in-flight id and every logon/subscribe id, so a query's late answer is counted and
/// dropped as a late order answer is.
const CALL_ID_BASE: u64 = 1 << 62;

/// Longest sleep of a blocking query between two reads of the socket.
const CALL_POLL: Duration = Duration::from_millis(1);

/// Parameters sent as JSON literals rather than strings: numbers and booleans, as
/// the WebSocket API documents them.
const RAW_PARAMS: [&str; 3] = ["recvWindow", "timestamp", "omitZeroBalances"];

/// One request in flight.
#[derive(Debug)]
struct Slot {
    /// Request id (0: free).
    req: u64,
    op: Op,
    params: Params,
    /// When it was written (wall ns).
    sent_ns: Ts,
    /// Its `timestamp` (server ms).
    sent_ms: i64,
    /// Connection generation it was sent on.
    gen: u64,
    /// 0, or 1 once re-sent after a `-1021`.
    attempt: u8,
}

/// The requests in flight: a fixed table of [`MAX_IN_FLIGHT`] slots and a free list,
/// both allocated once.
#[derive(Debug)]
pub(super) struct InFlight {
    slots: Vec<Slot>,
    free: Vec<u16>,
    seq: u64,
    /// Most requests in flight at once so far.
    pub(super) high_water: usize,
}

/// What [`InFlight::take`] gives back.
pub(super) struct Taken {
    pub(super) op: Op,
    pub(super) params: Params,
    pub(super) sent_ms: i64,
    pub(super) attempt: u8,
}

impl InFlight {
    /// An empty table.
    pub(super) fn new() -> Self {
        let slots = (0..MAX_IN_FLIGHT)
            .map(|_| Slot {
                req: 0,
                op: Op::CancelAll(0),
                params: Params::new(),
                sent_ns: 0,
                sent_ms: 0,
                gen: 0,
                attempt: 0,
            })
            .collect();
        InFlight { slots, free: (0..MAX_IN_FLIGHT as u16).rev().collect(), seq: 0, high_water: 0 }
    }

    /// Requests in flight.
    pub(super) fn len(&self) -> usize {
        MAX_IN_FLIGHT - self.free.len()
    }

    /// True if `id` is a request in flight.
    pub(super) fn owns(&self, id: u64) -> bool {
        let slot = (id & ((1 << SLOT_BITS) - 1)) as usize;
        id != 0 && self.slots.get(slot).is_some_and(|s| s.req == id)
    }

    /// Takes a free slot for `op`; `None` if the table is full. The id is unique
    /// (a sequence number above the slot bits) and never 0.
    fn insert(&mut self, op: Op, params: Params, sent_ns: Ts, sent_ms: i64, gen: u64, attempt: u8) -> Option<u64> {
        let slot = self.free.pop()?;
        self.seq += 1;
        let req = (self.seq << SLOT_BITS) | u64::from(slot);
        self.slots[slot as usize] = Slot { req, op, params, sent_ns, sent_ms, gen, attempt };
        self.high_water = self.high_water.max(self.len());
        Some(req)
    }

    /// The parameters of request `id` (in flight).
    fn params(&self, id: u64) -> &Params {
        &self.slots[(id & ((1 << SLOT_BITS) - 1)) as usize].params
    }

    /// Frees request `id` and returns what it was.
    pub(super) fn take(&mut self, id: u64) -> Option<Taken> {
        if !self.owns(id) {
            return None;
        }
        let slot = (id & ((1 << SLOT_BITS) - 1)) as u16;
        let s = &mut self.slots[slot as usize];
        s.req = 0;
        self.free.push(slot);
        Some(Taken { op: s.op, params: std::mem::take(&mut s.params), sent_ms: s.sent_ms, attempt: s.attempt })
    }

    /// The first request sent before `deadline` or on another connection generation
    /// than `gen` (answers that can no longer come).
    fn expired(&self, deadline: Ts, gen: u64) -> Option<u64> {
        self.slots.iter().find(|s| s.req != 0 && (s.sent_ns < deadline || s.gen != gen)).map(|s| s.req)
    }
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// How a WebSocket API request is authenticated.
pub(super) enum Auth<'a> {
    /// `apiKey` and an HMAC-SHA256 `signature` (hex).
    Hmac(&'a Credentials),
    /// `apiKey` and an Ed25519 `signature` (base64): `session.logon`.
    Ed25519(&'a Ed25519Key),
    /// Neither: the session is logged on.
    Session,
}

/// A WebSocket API request: `params` plus `recvWindow` and `timestamp` (numbers), and
/// unless the session is logged on `apiKey` and the `signature` of them all sorted by
/// name.
pub(super) fn request_text(
    auth: Auth<'_>,
    recv_window_ms: u64,
    id: u64,
    method: &str,
    params: &[(&'static str, String)],
    timestamp_ms: i64,
) -> String {
    let mut kv: Vec<(&str, String)> = Vec::with_capacity(params.len() + 3);
    kv.extend(params.iter().map(|(k, v)| (*k, v.clone())));
    match &auth {
        Auth::Hmac(c) => kv.push(("apiKey", c.api_key().to_string())),
        Auth::Ed25519(k) => kv.push(("apiKey", k.api_key().to_string())),
        Auth::Session => {}
    }
    kv.push(("recvWindow", recv_window_ms.to_string()));
    kv.push(("timestamp", timestamp_ms.to_string()));
    let payload = ws_payload(&kv);
    let sig = match auth {
        Auth::Hmac(c) => Some(c.sign(payload.as_bytes())),
        Auth::Ed25519(k) => Some(k.sign(payload.as_bytes())),
        Auth::Session => None,
    };
    let mut out = String::with_capacity(256);
    out.push_str("{\"id\":");
    out.push_str(&id.to_string());
    out.push_str(",\"method\":");
    push_json_str(&mut out, method);
    out.push_str(",\"params\":{");
    for (k, v) in &kv {
        push_json_str(&mut out, k);
        out.push(':');
        if RAW_PARAMS.contains(k) && (v == "true" || v == "false" || v.bytes().all(|b| b.is_ascii_digit())) {
            out.push_str(v);
        } else {
            push_json_str(&mut out, v);
        }
        out.push(',');
    }
    match sig {
        Some(sig) => {
            out.push_str("\"signature\":");
            push_json_str(&mut out, &sig);
        }
        None => {
            out.pop();
        }
    }
    out.push_str("}}");
    out
}

/// Limiter counts of a `rateLimits` array: (weight per minute, orders per 10 s,
/// orders per day), each if present.
fn rate_limit_counts(v: &Value) -> (Option<u32>, Option<u32>, Option<u32>) {
    let (mut w, mut o10, mut od) = (None, None, None);
    for l in v.get("rateLimits").and_then(Value::as_array).into_iter().flatten() {
        let count = l.get("count").and_then(Value::as_u64).and_then(|c| u32::try_from(c).ok());
        let kind = l.get("rateLimitType").and_then(Value::as_str);
        let interval = l.get("interval").and_then(Value::as_str);
        let num = l.get("intervalNum").and_then(Value::as_u64);
        match (kind, interval, num) {
            (Some("REQUEST_WEIGHT"), Some("MINUTE"), Some(1)) => w = count,
            (Some("ORDERS"), Some("SECOND"), Some(10)) => o10 = count,
            (Some("ORDERS"), Some("DAY"), Some(1)) => od = count,
            _ => {}
        }
    }
    (w, o10, od)
}

impl BinanceSpot {
    /// Writes one request to the WebSocket API (or refuses it: not connected, table
    /// full, limiter) without waiting for its answer.
    pub(super) fn ws_submit(&mut self, op: Op, params: Params, out: &mut Vec<ExecReport>) {
        self.ws_send(op, params, 0, out);
    }

    fn ws_send(&mut self, op: Op, params: Params, attempt: u8, out: &mut Vec<ExecReport>) {
        let Some((gen, session)) =
            self.stream.as_ref().filter(|s| s.ws.is_open()).map(|s| (s.ws.generation(), s.logged_on()))
        else {
            let msg = "WebSocket API not connected".to_string();
            return self.on_answer(op, Call::NotSent { code: CODE_NOT_SENT, msg }, 0, out);
        };
        if !session && self.stream.as_ref().is_some_and(|s| s.logon.is_some()) {
            let msg = "WebSocket API session not logged on yet".to_string();
            return self.on_answer(op, Call::NotSent { code: CODE_NOT_SENT, msg }, 0, out);
        }
        if self.in_flight_ws.len() == MAX_IN_FLIGHT {
            self.stats.ws_table_full += 1;
            let msg = format!("{MAX_IN_FLIGHT} WebSocket API requests in flight");
            return self.on_answer(op, Call::NotSent { code: CODE_NOT_SENT, msg }, 0, out);
        }
        let now = wall_ns();
        let (weight, orders) = op.cost();
        if let Err(call) = self.rest.acquire(&mut self.stats, now, weight, orders) {
            return self.on_answer(op, call, 0, out);
        }
        let ts = self.rest.server_ms();
        let Some(id) = self.in_flight_ws.insert(op, params, now, ts, gen, attempt) else { return };
        let auth = if session { Auth::Session } else { Auth::Hmac(&self.rest.creds) };
        let text = request_text(auth, self.cfg.recv_window_ms, id, op.ws_method(), self.in_flight_ws.params(id), ts);
        self.stats.requests += 1;
        self.stats.ws_requests += 1;
        let sent = self.stream.as_mut().is_some_and(|s| s.ws.send_text(&text).is_ok());
        if !sent {
            // Broken while writing: it may have left. Settle by query.
            if let Some(t) = self.in_flight_ws.take(id) {
                let msg = "WebSocket API send failed".to_string();
                self.on_answer(t.op, Call::Unknown(msg), t.sent_ms, out);
            }
        }
    }

    /// Handles a WebSocket API message if it answers a request in flight; false if it
    /// does not (an event, or the stream's own subscribe answer).
    pub(super) fn on_ws_answer(&mut self, v: &mut Value, out: &mut Vec<ExecReport>) -> bool {
        let Some(id) = v.get("id").and_then(Value::as_u64) else { return false };
        if !self.in_flight_ws.owns(id) {
            // A late answer of a request given up (timed out): its order is being
            // settled by query. Subscribe answers have small ids of their own.
            if id >> SLOT_BITS != 0 {
                self.stats.ws_late_answers += 1;
                return true;
            }
            return false;
        }
        let Some(t) = self.in_flight_ws.take(id) else { return false };
        self.stats.ws_answers += 1;
        let now = wall_ns();
        let (w, o10, od) = rate_limit_counts(v);
        self.rest.limiter.observe(now, w, o10, od);
        let status = v.get("status").and_then(Value::as_u64).unwrap_or(0);
        if status == 200 {
            let result = v.get_mut("result").map(Value::take).unwrap_or(Value::Null);
            self.on_answer(t.op, Call::Ok(result), t.sent_ms, out);
            return true;
        }
        let err = v.get_mut("error").map(Value::take).unwrap_or(Value::Null);
        let (code, msg) = self.rest.api_error(&err);
        let data = err.get("data").cloned();
        if status == 429 || status == 418 {
            self.stats.backoffs += 1;
            // `retryAfter`: server ms when requests are accepted again.
            let retry = data.as_ref().and_then(|d| d.get("retryAfter")).and_then(Value::as_i64);
            let secs = retry.map(|r| (r.saturating_sub(self.rest.server_ms()).max(0) + 999) / 1_000);
            self.rest.limiter.back_off(now, status as u16, secs.map(|s| s.to_string()).as_deref());
        }
        if code == CODE_TIMESTAMP {
            self.stats.timestamp_errors += 1;
            if t.attempt == 0 && self.sync_time().is_ok() {
                self.ws_send(t.op, t.params, 1, out);
                return true;
            }
        }
        let call = if status >= 500 {
            // Binance: 5XX means the execution status is unknown.
            Call::Unknown(format!("{}: status {status}: {msg}", t.op.ws_method()))
        } else {
            Call::Api { status: status as u16, code, msg, data }
        };
        self.on_answer(t.op, call, t.sent_ms, out);
        true
    }

    /// Gives up on requests unanswered for `timeout_ms`, or sent on a connection since
    /// lost: their outcome is unknown.
    pub(super) fn ws_expire(&mut self, out: &mut Vec<ExecReport>) {
        if self.in_flight_ws.len() == 0 {
            return;
        }
        let open = self.stream.as_ref().filter(|s| s.ws.is_open()).map(|s| s.ws.generation());
        let deadline = wall_ns().saturating_sub(ms_ns(self.cfg.timeout_ms));
        // A closed connection matches no generation: everything in flight is lost.
        let gen = open.unwrap_or(u64::MAX);
        while let Some(id) = self.in_flight_ws.expired(deadline, gen) {
            let Some(t) = self.in_flight_ws.take(id) else { break };
            self.stats.ws_timeouts += 1;
            let msg = format!("{}: no answer", t.op.ws_method());
            self.on_answer(t.op, Call::Unknown(msg), t.sent_ms, out);
        }
    }

    /// True if a query (clock sync, open orders, account, one order) goes over the
    /// WebSocket API: `orders = "ws"` and its connection open. With `wait` a closed
    /// connection is driven for up to `connect_timeout_ms` first (reconciliation, off
    /// the order path); without, it is not waited for (the clock sync on the gateway
    /// thread's polls). Else the query goes over REST, counted in
    /// [`BinanceStats::ws_rest_fallbacks`](super::BinanceStats::ws_rest_fallbacks).
    pub(super) fn query_over_ws(&mut self, wait: bool) -> bool {
        if self.entry != OrderEntry::Ws {
            return false;
        }
        let deadline = wall_ns().saturating_add(ms_ns(self.cfg.connect_timeout_ms));
        let Some(s) = self.stream.as_mut() else { return false };
        let mut msgs: Vec<Vec<u8>> = Vec::new();
        while wait && !s.ws.is_open() && wall_ns() < deadline {
            s.read_into(CALL_POLL, &mut msgs);
        }
        s.backlog.append(&mut msgs);
        if s.ws.is_open() {
            return true;
        }
        self.stats.ws_rest_fallbacks += 1;
        false
    }

    /// One WebSocket API request answered before this returns: a query off the order
    /// path (clock sync, reconciliation). `signed`: `params` plus `recvWindow`,
    /// `timestamp` and, unless the session is logged on, `apiKey` and the HMAC
    /// `signature` ([`request_text`]); else the bare `{"id","method"}` (`time`). The
    /// limiter admits it first (`weight`) and reads the answer's `rateLimits`; a 429 /
    /// 418 starts the back-off; a `-1021` re-syncs the clock and sends it once more.
    /// Messages read meanwhile (events, order answers) are kept, in order, for the
    /// next poll. Its `result`, or the error ([`GatewayError::Api`] with the venue's
    /// code; [`GatewayError::Transport`] if no answer came in `timeout_ms` or the
    /// connection was lost), `path` being the method.
    pub(super) fn ws_call(
        &mut self,
        method: &'static str,
        params: &[(&'static str, String)],
        signed: bool,
        weight: u32,
    ) -> Result<Value, GatewayError> {
        let first = self.ws_call_once(method, params, signed, weight);
        if !matches!(first, Err(GatewayError::Api { code: CODE_TIMESTAMP, .. })) {
            return first;
        }
        self.stats.timestamp_errors += 1;
        if signed && self.sync_time().is_ok() {
            return self.ws_call_once(method, params, signed, weight);
        }
        first
    }

    fn ws_call_once(
        &mut self,
        method: &'static str,
        params: &[(&'static str, String)],
        signed: bool,
        weight: u32,
    ) -> Result<Value, GatewayError> {
        let path = method;
        let lost = |msg: &str| GatewayError::Transport { path, msg: msg.to_string() };
        let now = wall_ns();
        if let Err(e) = self.rest.limiter.try_acquire(now, weight, 0) {
            return Err(GatewayError::Limited { path, limit: e.limit, retry_at: e.retry_at });
        }
        let ts = self.rest.server_ms();
        let Some(s) = self.stream.as_mut().filter(|s| s.ws.is_open()) else {
            return Err(lost("WebSocket API not connected"));
        };
        let id = CALL_ID_BASE + s.next_call;
        s.next_call += 1;
        let text = if signed {
            let auth = if s.logged_on() { Auth::Session } else { Auth::Hmac(&self.rest.creds) };
            request_text(auth, self.cfg.recv_window_ms, id, method, params, ts)
        } else {
            format!("{{\"id\":{id},\"method\":\"{method}\"}}")
        };
        self.stats.requests += 1;
        if s.ws.send_text(&text).is_err() {
            return Err(lost("WebSocket API send failed"));
        }
        let gen = s.ws.generation();
        let deadline = now.saturating_add(ms_ns(self.cfg.timeout_ms));
        let mut msgs: Vec<Vec<u8>> = Vec::new();
        let mut answer = None;
        while answer.is_none() {
            if !s.ws.is_open() || s.ws.generation() != gen {
                return Err(lost("WebSocket API connection lost before the answer"));
            }
            if wall_ns() > deadline {
                return Err(lost("no answer within timeout_ms"));
            }
            s.read_into(CALL_POLL, &mut msgs);
            for m in msgs.drain(..) {
                if answer.is_none() {
                    if let Ok(v) = serde_json::from_slice::<Value>(&m) {
                        if v.get("id").and_then(Value::as_u64) == Some(id) {
                            answer = Some(v);
                            continue;
                        }
                    }
                }
                s.backlog.push(m);
            }
        }
        let mut v = answer.unwrap_or(Value::Null);
        let now = wall_ns();
        let (w, o10, od) = rate_limit_counts(&v);
        self.rest.limiter.observe(now, w, o10, od);
        let status = v.get("status").and_then(Value::as_u64).unwrap_or(0);
        if status == 200 {
            self.stats.ws_calls += 1;
            return Ok(v.get_mut("result").map(Value::take).unwrap_or(Value::Null));
        }
        let err = v.get_mut("error").map(Value::take).unwrap_or(Value::Null);
        let (code, msg) = self.rest.api_error(&err);
        if status == 429 || status == 418 {
            self.stats.backoffs += 1;
            let retry = err.get("data").and_then(|d| d.get("retryAfter")).and_then(Value::as_i64);
            let secs = retry.map(|r| (r.saturating_sub(self.rest.server_ms()).max(0) + 999) / 1_000);
            self.rest.limiter.back_off(now, status as u16, secs.map(|s| s.to_string()).as_deref());
        }
        Err(GatewayError::Api { path, status: u16::try_from(status).unwrap_or(0), code, msg })
    }

    /// WebSocket API requests in flight now.
    pub fn ws_in_flight(&self) -> usize {
        self.in_flight_ws.len()
    }

    /// Most WebSocket API requests that were in flight at once.
    pub fn ws_in_flight_high_water(&self) -> usize {
        self.in_flight_ws.high_water
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_is_bounded_and_ids_name_their_slot() {
        let mut t = InFlight::new();
        let ids: Vec<u64> =
            (0..MAX_IN_FLIGHT).map(|i| t.insert(Op::Status(i as u64), Params::new(), 0, 0, 1, 0).unwrap()).collect();
        assert_eq!(t.len(), MAX_IN_FLIGHT);
        assert!(t.insert(Op::Status(0), Params::new(), 0, 0, 1, 0).is_none(), "full: refused");
        assert!(ids.iter().all(|&id| t.owns(id)));
        let x = t.take(ids[7]).unwrap();
        assert_eq!(x.op, Op::Status(7));
        assert!(!t.owns(ids[7]) && t.take(ids[7]).is_none());
        let again = t.insert(Op::Status(99), Params::new(), 0, 0, 1, 0).unwrap();
        assert_ne!(again, ids[7], "a reused slot gets a new id");
        assert!(!t.owns(0));
        assert_eq!(t.expired(1, 1), Some(ids[0]));
        assert_eq!(t.expired(0, 1), None);
        assert!(t.expired(0, 2).is_some());
        assert_eq!(t.high_water, MAX_IN_FLIGHT);
    }

    #[test]
    fn signed_request_is_the_documented_shape() {
        let c = Credentials::new("k", "s");
        let params = [("symbol", "BTCUSDT".to_string())];
        let text = request_text(Auth::Hmac(&c), 5000, 65_537, "order.cancel", &params, 1_700_000_000_000);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["id"], 65_537);
        assert_eq!(v["method"], "order.cancel");
        assert_eq!(v["params"]["timestamp"], 1_700_000_000_000_i64);
        assert_eq!(v["params"]["recvWindow"], 5000);
        assert_eq!(v["params"]["apiKey"], "k");
        let payload = "apiKey=k&recvWindow=5000&symbol=BTCUSDT&timestamp=1700000000000";
        assert_eq!(v["params"]["signature"], c.sign(payload.as_bytes()));
        let text = request_text(Auth::Session, 5000, 65_538, "order.cancel", &params, 1_700_000_000_000);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["params"].as_object().unwrap().len(), 3, "no apiKey, no signature: {text}");
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\n");
        assert_eq!(serde_json::from_str::<String>(&s).unwrap(), "a\"b\\c\n");
    }

    #[test]
    fn rate_limits_array_is_read() {
        let v = json!({"rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 12},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50, "count": 3},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000, "count": 9}
        ]});
        assert_eq!(rate_limit_counts(&v), (Some(12), Some(3), Some(9)));
        assert_eq!(rate_limit_counts(&json!({})), (None, None, None));
    }
}
