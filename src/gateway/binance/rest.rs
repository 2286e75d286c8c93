//! The signed REST client: every request to `/api/v3`, signed, rate limited, and
//! timed against the server clock.
//!
//! # Requests (`SIGNED`)
//!
//! | what | request | weight |
//! |---|---|---|
//! | place | `POST /api/v3/order` `type=LIMIT_MAKER` (post-only) or `type=LIMIT&timeInForce=GTC|IOC`, `newClientOrderId`, `newOrderRespType=FULL` | 1 (+1 order) |
//! | cancel | `DELETE /api/v3/order` `origClientOrderId` | 1 |
//! | cancel all | `DELETE /api/v3/openOrders` per symbol | 1 |
//! | cancel-replace | `POST /api/v3/order/cancelReplace` `cancelReplaceMode=STOP_ON_FAILURE` | 1 (+1 order) |
//! | query | `GET /api/v3/order` `origClientOrderId` | 4 |
//! | open orders | `GET /api/v3/openOrders` per symbol | 6 |
//! | balances | `GET /api/v3/account` `omitZeroBalances=true` | 20 |
//! | server time | `GET /api/v3/time` (not signed) | 1 |
//! | instrument filters | `GET /api/v3/exchangeInfo` `symbol` (not signed, at start: [`super::filters`]) | 20 |
//!
//! Every parameter goes in the query string (the body is empty), followed by
//! `recvWindow`, `timestamp` (server time estimate, ms) and `signature` = hex
//! HMAC-SHA256 of that exact query string ([`crate::gateway::sign`]); the API key
//! travels in the `X-MBX-APIKEY` header. Prices and sizes are exact decimals printed
//! from ticks and lots ([`Instrument::price_decimal`](crate::types::Instrument::price_decimal)).
//!
//! A call ends in one of four ways: answered (2xx), refused by the venue (an error
//! code: not executed), not sent (our limiter, a server back-off, connection
//! refused), or unknown (sent and no answer, or a 5XX, which Binance documents as
//! "execution status unknown").
//!
//! # Failures
//!
//! HTTP 429/418 block every request on the IP for `Retry-After` seconds, capped at
//! `retry_after_cap_s` ([`RateLimiter`], whose weight budget the feed's snapshot thread
//! may share: [`BinanceSpot::share_budget`](super::BinanceSpot::share_budget)); `-1021`
//! (timestamp outside `recvWindow`) re-synchronises the clock offset from
//! `GET /api/v3/time` (offset = server time - midpoint of the round trip) and retries
//! the request once. A `serverTime` more than `max_clock_skew_ms` away from the local
//! clock is refused ([`GatewayError::ClockSkew`]) and the previous offset kept: a
//! broken or hostile venue must not make us sign requests with a nonsense
//! `timestamp`. Keys and signatures never appear in errors, logs or `Debug` output:
//! every venue text (error messages, reasons, transport errors, answers quoted in
//! parse errors) goes through [`Credentials::redact`] first, since a venue may echo
//! the request.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::config::BinanceGatewayConfig;
use super::error::GatewayError;
use super::{i64_of, ms_ns, str_of, wall_ns, BinanceStats};
use crate::gateway::limits::{RateLimited, RateLimiter};
use crate::gateway::sign::{Credentials, Query};
use crate::types::{Ts, NS_PER_MS};

/// Binance: timestamp outside `recvWindow` (or 1 s ahead of the server).
pub const CODE_TIMESTAMP: i32 = -1021;
/// Binance: too many requests (HTTP 429/418); also used for requests our own limiter
/// refuses before sending.
pub const CODE_TOO_MANY_REQUESTS: i32 = -1003;
/// Binance: new order rejected (would take as post-only, insufficient balance, ...).
pub const CODE_NEW_ORDER_REJECTED: i32 = -2010;
/// Binance: cancel rejected (unknown order).
pub const CODE_CANCEL_REJECTED: i32 = -2011;
/// Binance: order does not exist (query).
pub const CODE_NO_SUCH_ORDER: i32 = -2013;
/// Binance: cancel-replace failed (cancel failed, new order not attempted).
pub const CODE_CANCEL_REPLACE_FAILED: i32 = -2022;
/// Local: the request failed before it was sent (connection refused, bad symbol).
pub const CODE_NOT_SENT: i32 = -9001;

/// Request weight of a new order (and of a cancel-replace).
pub(super) const W_ORDER: u32 = 1;
/// Request weight of a cancel.
pub(super) const W_CANCEL: u32 = 1;
/// Request weight of a cancel-all of one symbol.
pub(super) const W_CANCEL_ALL: u32 = 1;
/// Request weight of an order query.
pub(super) const W_QUERY: u32 = 4;
/// Request weight of the open orders of one symbol.
pub(super) const W_OPEN_ORDERS: u32 = 6;
/// Request weight of the account (balances).
pub(super) const W_ACCOUNT: u32 = 20;
/// Request weight of the server time.
pub(super) const W_TIME: u32 = 1;

/// How a signed call ended.
#[derive(Debug)]
pub(super) enum Call {
    /// 2xx with a JSON body.
    Ok(Value),
    /// The venue answered with an error code (request not executed, except 409 of a
    /// cancel-replace, whose `data` says which half ran).
    Api { status: u16, code: i32, msg: String, data: Option<Value> },
    /// Not sent: limiter, back-off, connection refused.
    NotSent { code: i32, msg: String },
    /// Sent, no answer: outcome unknown.
    Unknown(String),
}

/// HTTP method of a signed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Delete,
}

/// True for failures that happen before any byte of the request is sent.
fn not_sent(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::BadUri(_) => true,
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Resolve | ureq::Timeout::Connect),
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::NotFound
        ),
        _ => false,
    }
}

/// The signed REST client: credentials, HTTP agent, rate limiter and the server
/// clock offset. Counts into the gateway's [`BinanceStats`].
pub(super) struct Rest {
    pub(super) creds: Credentials,
    agent: ureq::Agent,
    /// REST base URL without a trailing `/`.
    pub(super) base: String,
    pub(super) limiter: RateLimiter,
    recv_window_ms: u64,
    max_clock_skew_ms: u64,
    time_sync_interval_s: u64,
    /// Server time - local wall time, ms.
    pub(super) offset_ms: i64,
    /// Next periodic clock sync (wall ns; 0: none).
    pub(super) next_time_sync: Ts,
}

impl Rest {
    /// A client for `cfg` (validated) signing with `creds`. No I/O yet.
    pub(super) fn new(cfg: &BinanceGatewayConfig, creds: Credentials) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(cfg.timeout_ms)))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Rest {
            creds,
            agent,
            base: cfg.rest_url.trim_end_matches('/').to_string(),
            limiter: RateLimiter::with_budget(&cfg.limits, Arc::new(cfg.ip_budget())),
            recv_window_ms: cfg.recv_window_ms,
            max_clock_skew_ms: cfg.max_clock_skew_ms,
            time_sync_interval_s: cfg.time_sync_interval_s,
            offset_ms: 0,
            next_time_sync: 0,
        }
    }

    /// The server time estimate, ms.
    pub(super) fn server_ms(&self) -> i64 {
        (wall_ns() / NS_PER_MS).saturating_add(self.offset_ms)
    }

    /// A venue text with every secret it may echo redacted ([`Credentials::redact`]).
    pub(super) fn venue_text(&self, text: &str) -> String {
        self.creds.redact(text)
    }

    /// `{"code":-2010,"msg":"..."}` -> (code, redacted msg); anything else -> (0, text).
    pub(super) fn api_error(&self, v: &Value) -> (i32, String) {
        let code = i64_of(v, "code").and_then(|c| i32::try_from(c).ok()).unwrap_or(0);
        let msg = str_of(v, "msg").map_or_else(|| "no error message".to_string(), |m| self.venue_text(m));
        (code, msg)
    }

    /// A transport error as redacted text (ureq's `BadUri` would quote the signed URL).
    fn transport_msg(&self, e: &ureq::Error) -> String {
        match e {
            ureq::Error::BadUri(_) => "bad URL".to_string(),
            other => self.venue_text(&other.to_string()),
        }
    }

    /// Measures the clock offset with `GET /api/v3/time`: server time minus the
    /// midpoint of the round trip. A `serverTime` more than `max_clock_skew_ms` from
    /// the local clock is refused ([`GatewayError::ClockSkew`]); the offset stays.
    pub(super) fn sync_time(&mut self, stats: &mut BinanceStats) -> Result<i64, GatewayError> {
        let path = "/api/v3/time";
        let now = wall_ns();
        if let Err(e) = self.limiter.try_acquire(now, W_TIME, 0) {
            return Err(GatewayError::Limited { path, limit: e.limit, retry_at: e.retry_at });
        }
        let t0 = wall_ns();
        stats.requests += 1;
        let url = format!("{}{path}", self.base);
        let mut resp =
            self.agent.get(&url).call().map_err(|e| GatewayError::Transport { path, msg: self.transport_msg(&e) })?;
        let t1 = wall_ns();
        self.observe_headers(&resp, t1, stats);
        let status = resp.status().as_u16();
        let body =
            resp.body_mut().read_to_vec().map_err(|e| GatewayError::Transport { path, msg: self.transport_msg(&e) })?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| GatewayError::Parse { path, msg: e.to_string() })?;
        if status != 200 {
            let (code, msg) = self.api_error(&v);
            return Err(GatewayError::Api { path, status, code, msg });
        }
        self.apply_server_time(stats, path, &v, t0, t1)
    }

    /// Takes the offset from a `{"serverTime": ms}` answer to a request sent at `t0`
    /// and answered at `t1` (wall ns; REST `GET /api/v3/time` or the WebSocket API's
    /// `time`): server time minus the midpoint of the round trip, unless more than
    /// `max_clock_skew_ms` from the local clock ([`GatewayError::ClockSkew`]; the
    /// offset stays). Schedules the next periodic sync.
    pub(super) fn apply_server_time(
        &mut self,
        stats: &mut BinanceStats,
        path: &'static str,
        v: &Value,
        t0: Ts,
        t1: Ts,
    ) -> Result<i64, GatewayError> {
        let server =
            i64_of(v, "serverTime").ok_or_else(|| GatewayError::Parse { path, msg: "no serverTime".into() })?;
        let mid_ms = (t0 + (t1 - t0) / 2) / NS_PER_MS;
        let skew = server.saturating_sub(mid_ms);
        if skew.unsigned_abs() > self.max_clock_skew_ms {
            stats.clock_rejects += 1;
            return Err(GatewayError::ClockSkew {
                path,
                server_ms: server,
                skew_ms: skew,
                max_ms: self.max_clock_skew_ms,
            });
        }
        self.offset_ms = skew;
        stats.time_syncs += 1;
        if self.time_sync_interval_s > 0 {
            let every = ms_ns(self.time_sync_interval_s.saturating_mul(1_000));
            self.next_time_sync = t1.saturating_add(every);
        }
        Ok(self.offset_ms)
    }

    /// An unsigned `GET {path}?{query}` of weight `weight` (limiter first, usage headers
    /// after), its JSON answer; the body is read up to `max_bytes`. A non-2xx answer is
    /// [`GatewayError::Api`] with the venue's code.
    pub(super) fn get_public(
        &mut self,
        stats: &mut BinanceStats,
        path: &'static str,
        query: &str,
        weight: u32,
        max_bytes: u64,
    ) -> Result<Value, GatewayError> {
        if let Err(e) = self.limiter.try_acquire(wall_ns(), weight, 0) {
            return Err(GatewayError::Limited { path, limit: e.limit, retry_at: e.retry_at });
        }
        stats.requests += 1;
        let url =
            if query.is_empty() { format!("{}{path}", self.base) } else { format!("{}{path}?{query}", self.base) };
        let mut resp =
            self.agent.get(&url).call().map_err(|e| GatewayError::Transport { path, msg: self.transport_msg(&e) })?;
        self.observe_headers(&resp, wall_ns(), stats);
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(max_bytes)
            .read_to_vec()
            .map_err(|e| GatewayError::Transport { path, msg: self.transport_msg(&e) })?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| GatewayError::Parse { path, msg: e.to_string() })?;
        if !(200..300).contains(&status) {
            let (code, msg) = self.api_error(&v);
            return Err(GatewayError::Api { path, status, code, msg });
        }
        Ok(v)
    }

    /// Feeds the venue's usage headers to the limiter; a 429/418 starts a back-off
    /// (`Retry-After`, capped).
    fn observe_headers(&mut self, resp: &ureq::http::Response<ureq::Body>, now: Ts, stats: &mut BinanceStats) {
        let h =
            |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u32>().ok());
        self.limiter.observe(now, h("x-mbx-used-weight-1m"), h("x-mbx-order-count-10s"), h("x-mbx-order-count-1d"));
        let status = resp.status().as_u16();
        if status == 429 || status == 418 {
            stats.backoffs += 1;
            let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok());
            self.limiter.back_off(now, status, retry_after);
        }
    }

    /// Admits a request of `weight` placing `orders` orders at `now`, or says why not
    /// as the call's end (not sent, [`CODE_TOO_MANY_REQUESTS`]). REST and the
    /// WebSocket API draw on the same limiter.
    pub(super) fn acquire(&mut self, stats: &mut BinanceStats, now: Ts, weight: u32, orders: u32) -> Result<(), Call> {
        self.limiter.try_acquire(now, weight, orders).map_err(|RateLimited { limit, retry_at }| {
            stats.limited += 1;
            let msg = format!("rate limited ({limit:?}) for {} ms", (retry_at.saturating_sub(now)) / NS_PER_MS);
            Call::NotSent { code: CODE_TOO_MANY_REQUESTS, msg }
        })
    }

    /// One signed request: limiter, `recvWindow` + `timestamp` + signature, send,
    /// headers, and on `-1021` one clock re-sync and retry. Returns how it ended and
    /// the `timestamp` of the last attempt (0 if none was sent).
    pub(super) fn call_ts(
        &mut self,
        stats: &mut BinanceStats,
        method: Method,
        path: &'static str,
        params: Query,
        weight: u32,
        orders: u32,
    ) -> (Call, i64) {
        let mut sent_ms = 0;
        for attempt in 0..2 {
            if let Err(call) = self.acquire(stats, wall_ns(), weight, orders) {
                return (call, sent_ms);
            }
            let mut q = params.clone();
            let ts = self.server_ms();
            sent_ms = ts;
            q.push("recvWindow", self.recv_window_ms).push("timestamp", ts);
            let url = format!("{}{path}?{}", self.base, q.signed(&self.creds));
            stats.requests += 1;
            let key = self.creds.api_key();
            let res = match method {
                Method::Get => self.agent.get(&url).header("X-MBX-APIKEY", key).call(),
                Method::Delete => self.agent.delete(&url).header("X-MBX-APIKEY", key).call(),
                Method::Post => self.agent.post(&url).header("X-MBX-APIKEY", key).send_empty(),
            };
            let mut resp = match res {
                Ok(r) => r,
                Err(e) => {
                    let msg = self.transport_msg(&e);
                    let call =
                        if not_sent(&e) { Call::NotSent { code: CODE_NOT_SENT, msg } } else { Call::Unknown(msg) };
                    return (call, sent_ms);
                }
            };
            self.observe_headers(&resp, wall_ns(), stats);
            let status = resp.status().as_u16();
            let body = match resp.body_mut().read_to_vec() {
                Ok(b) => b,
                Err(e) => {
                    let msg = format!("{path}: reading the answer: {}", self.transport_msg(&e));
                    return (Call::Unknown(msg), sent_ms);
                }
            };
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    if (200..300).contains(&status) {
                        stats.parse_errors += 1;
                        return (Call::Unknown(format!("{path}: unreadable answer: {e}")), sent_ms);
                    }
                    Value::Null
                }
            };
            if (200..300).contains(&status) {
                return (Call::Ok(v), sent_ms);
            }
            let (code, msg) = self.api_error(&v);
            if code == CODE_TIMESTAMP {
                stats.timestamp_errors += 1;
                if attempt == 0 && self.sync_time(stats).is_ok() {
                    continue;
                }
            }
            if status >= 500 {
                // Binance: 5XX means the execution status is unknown.
                return (Call::Unknown(format!("{path}: HTTP {status}: {msg}")), sent_ms);
            }
            return (Call::Api { status, code, msg, data: v.get("data").cloned() }, sent_ms);
        }
        (Call::NotSent { code: CODE_TIMESTAMP, msg: "timestamp rejected after a clock re-sync".into() }, sent_ms)
    }

    /// [`Self::call_ts`] without the timestamp.
    pub(super) fn call(
        &mut self,
        stats: &mut BinanceStats,
        method: Method,
        path: &'static str,
        params: Query,
        weight: u32,
        orders: u32,
    ) -> Call {
        self.call_ts(stats, method, path, params, weight, orders).0
    }
}
