//! The user data stream: execution reports pushed by the venue over the WebSocket API.
//!
//! Binance deprecated the REST `listenKey` endpoints (`/api/v3/userDataStream`) and
//! moved Spot user data to the WebSocket API. This gateway opens `ws_url` (the
//! WebSocket API, `wss://ws-api.testnet.binance.vision/ws-api/v3` on the testnet) and
//! sends `userDataStream.subscribe.signature` with `apiKey`, `recvWindow`, `timestamp`
//! and a signature over those parameters sorted by name. Events arrive as
//! `{"subscriptionId":N,"event":{...}}`; `executionReport` events are mapped to
//! [`ExecReport`]s ([`map_execution`]). The socket is the project's non-blocking
//! [`WsClient`] (reconnects with backoff); after every reconnect the subscription is
//! re-sent with a fresh signature and every tracked order is queried, since events may
//! have been lost meanwhile.
//!
//! A refused subscription is sent again, with a fresh signature, after a second; a
//! `-1021` refusal re-synchronises the clock first. The stream is optional (an empty
//! `ws_url`, with `orders = "rest"`): orders then settle by queries only.
//!
//! With an Ed25519 key ([`BinanceSpot::logon_ed25519`]) every connection first sends
//! `session.logon` (signed with it); once accepted the subscription is the unsigned
//! `userDataStream.subscribe` and order requests carry no `apiKey` or signature.
//!
//! With `orders = "ws"` the same connection carries order entry ([`super::wsapi`]):
//! answers to its requests are told from events and the subscribe answer by their `id`.

use std::collections::HashMap;
use std::time::Duration;

use mio::{Events, Poll, Token};
use serde_json::Value;
use thiserror::Error;

use super::config::BinanceGatewayConfig;
use super::error::GatewayError;
use super::ids::parse_client_order_id;
use super::orders::OrderState;
use super::rest::CODE_TIMESTAMP;
use super::wsapi::{request_text, Auth};
use super::{i64_of, side_of, str_of, wall_ns, BinanceSpot};
use crate::event::{ExecReport, OrderId};
use crate::feed::ws::{tls_config, WsClient, WsConfig};
use crate::gateway::sign::Ed25519Key;
use crate::types::{InstId, Instrument, Px, Qty, Side, Ts, NS_PER_MS};

/// The user data stream connection.
pub(super) struct UserStream {
    poll: Poll,
    events: Events,
    pub(super) ws: WsClient,
    /// Connection generation the last subscribe request was sent on (0: none, or
    /// it failed and must be sent again).
    sent_gen: u64,
    /// No subscribe request before this (wall ns): back-off after a refusal.
    retry_at: Ts,
    pub(super) subscribed: bool,
    /// A subscription existed before: after the next one is confirmed, query every
    /// open order (events may have been lost in between).
    ever: bool,
    resync: bool,
    next_req: u64,
    buf: Vec<Vec<u8>>,
    /// Messages read while a blocking WebSocket API query waited for its answer
    /// ([`BinanceSpot::ws_call`]): handled, in order, by the next poll.
    pub(super) backlog: Vec<Vec<u8>>,
    /// Sequence of blocking queries' request ids.
    pub(super) next_call: u64,
    /// Ed25519 key for `session.logon` (None: every request signed with HMAC).
    pub(super) logon: Option<Ed25519Key>,
    /// Connection generation the last `session.logon` was sent on (0: none, or
    /// refused: send again).
    logon_sent_gen: u64,
    /// Connection generation logged on (the logon was accepted on it).
    pub(super) logon_gen: u64,
    /// Request id of the last `session.logon`.
    logon_req: u64,
}

impl UserStream {
    /// True if requests on the current connection go without `apiKey` and signature:
    /// its session is logged on.
    pub(super) fn logged_on(&self) -> bool {
        self.logon.is_some() && self.logon_gen == self.ws.generation()
    }

    /// Drives the connection once (connect, handshake, reads), waiting at most `wait`
    /// for socket readiness; appends the messages read to `msgs`. For a blocking
    /// query ([`BinanceSpot::ws_call`]), outside [`BinanceSpot::poll_stream`].
    pub(super) fn read_into(&mut self, wait: Duration, msgs: &mut Vec<Vec<u8>>) {
        if self.poll.poll(&mut self.events, Some(wait)).is_ok() {
            for ev in self.events.iter() {
                self.ws.on_event(ev);
            }
        }
        self.ws.poll(self.poll.registry(), wall_ns(), |m| msgs.push(m.to_vec()));
    }
}

impl std::fmt::Debug for UserStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStream")
            .field("state", &self.ws.state())
            .field("subscribed", &self.subscribed)
            .field("generation", &self.sent_gen)
            .finish()
    }
}

impl UserStream {
    /// A client for `cfg.ws_url` (not empty); nothing is connected until the first
    /// poll.
    pub(super) fn new(cfg: &BinanceGatewayConfig) -> Result<Self, GatewayError> {
        let mut wc = WsConfig::new(cfg.ws_url.clone());
        wc.connect_timeout_ms = cfg.connect_timeout_ms;
        wc.backoff_min_ms = 200;
        wc.backoff_max_ms = 10_000;
        let tls = tls_config(&[]).map_err(GatewayError::Stream)?;
        let ws = WsClient::new(wc, tls, Token(0)).map_err(GatewayError::Stream)?;
        let poll = Poll::new().map_err(GatewayError::Poll)?;
        Ok(UserStream {
            poll,
            events: Events::with_capacity(16),
            ws,
            sent_gen: 0,
            retry_at: 0,
            subscribed: false,
            ever: false,
            resync: false,
            next_req: 1,
            buf: Vec::new(),
            backlog: Vec::new(),
            next_call: 0,
            logon: None,
            logon_sent_gen: 0,
            logon_gen: 0,
            logon_req: 0,
        })
    }
}

/// One execution report event, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Our order id.
    pub id: OrderId,
    /// Instrument.
    pub inst: InstId,
    /// Side.
    pub side: Side,
    /// `x`: NEW, TRADE, CANCELED, REJECTED, EXPIRED, TRADE_PREVENTION, REPLACED.
    pub exec_type: String,
    /// Order price in ticks.
    pub px: Px,
    /// Order size in lots.
    pub qty: Qty,
    /// `l`: last executed size in lots.
    pub last_qty: Qty,
    /// `L`: last executed price in ticks.
    pub last_px: Px,
    /// `z`: cumulative executed size in lots.
    pub cum: Qty,
    /// `n`, `N`: commission and its asset.
    pub commission: Option<(f64, String)>,
    /// `m`: the fill added liquidity.
    pub maker: bool,
    /// `r`: reject reason.
    pub reason: String,
    /// `T` (or `E`) in ns.
    pub ts: Ts,
}

/// Why an event was not mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MapSkip {
    /// Not an `executionReport`.
    #[error("not an executionReport")]
    NotExecution,
    /// Not our symbol or not our client id format.
    #[error("not our symbol or client order id")]
    Foreign,
    /// Malformed: the field (`s`, `c`, `p` ...) is missing or cannot be read.
    #[error("executionReport: bad or missing {0}")]
    Bad(&'static str),
}

/// Parses an `executionReport` event (the object inside `"event"`). For cancels the
/// order's own id is in `C` (original client order id); `c` is then the cancel's.
pub fn map_execution(
    ev: &Value,
    by_symbol: &HashMap<String, InstId>,
    instruments: &[Instrument],
) -> Result<Execution, MapSkip> {
    if str_of(ev, "e") != Some("executionReport") {
        return Err(MapSkip::NotExecution);
    }
    let sym = str_of(ev, "s").ok_or(MapSkip::Bad("s"))?;
    let Some(&inst) = by_symbol.get(sym) else {
        return Err(MapSkip::Foreign);
    };
    let Some(ins) = instruments.get(inst as usize) else {
        return Err(MapSkip::Foreign);
    };
    let orig = str_of(ev, "C").unwrap_or("");
    let cid = if orig.is_empty() { str_of(ev, "c").ok_or(MapSkip::Bad("c"))? } else { orig };
    let Some(id) = parse_client_order_id(cid) else {
        return Err(MapSkip::Foreign);
    };
    let side = str_of(ev, "S").and_then(side_of).ok_or(MapSkip::Bad("S"))?;
    let px_ = |k: &'static str| str_of(ev, k).and_then(|s| ins.parse_price(s.as_bytes()).ok()).ok_or(MapSkip::Bad(k));
    let qty_ = |k: &'static str| str_of(ev, k).and_then(|s| ins.parse_qty(s.as_bytes()).ok()).ok_or(MapSkip::Bad(k));
    let commission = match (str_of(ev, "n").and_then(|s| s.parse::<f64>().ok()), str_of(ev, "N")) {
        (Some(n), Some(a)) if n != 0.0 => Some((n, a.to_string())),
        _ => None,
    };
    let ts_ms = i64_of(ev, "T").or_else(|| i64_of(ev, "E")).unwrap_or(0);
    Ok(Execution {
        id,
        inst,
        side,
        exec_type: str_of(ev, "x").ok_or(MapSkip::Bad("x"))?.to_string(),
        px: px_("p")?,
        qty: qty_("q")?,
        last_qty: qty_("l")?,
        last_px: px_("L").unwrap_or(0),
        cum: qty_("z")?,
        commission,
        maker: ev.get("m").and_then(Value::as_bool).unwrap_or(false),
        reason: str_of(ev, "r").unwrap_or("").to_string(),
        ts: ts_ms.saturating_mul(NS_PER_MS),
    })
}

impl BinanceSpot {
    /// Drives the user data stream: connect, (re)subscribe with a fresh signature,
    /// read every message.
    pub(super) fn poll_stream(&mut self, out: &mut Vec<ExecReport>) {
        let Some(s) = self.stream.as_mut() else { return };
        if s.poll.poll(&mut s.events, Some(Duration::ZERO)).is_ok() {
            for ev in s.events.iter() {
                s.ws.on_event(ev);
            }
        }
        let mut buf = std::mem::take(&mut s.buf);
        // What a blocking query read first: it came before anything read now.
        buf.append(&mut s.backlog);
        s.ws.poll(s.poll.registry(), wall_ns(), |m| buf.push(m.to_vec()));
        let gen = s.ws.generation();
        if !s.ws.is_open() {
            s.subscribed = false;
        }
        let now = wall_ns();
        let ts = (now / NS_PER_MS).saturating_add(self.rest.offset_ms);
        let logged_on = s.logged_on();
        if s.ws.is_open() && now >= s.retry_at && !logged_on && s.logon_sent_gen != gen {
            if let Some(key) = &s.logon {
                // Ed25519: log the session on first; the subscription follows it.
                s.logon_sent_gen = gen;
                s.logon_req = s.next_req;
                s.next_req += 1;
                let msg =
                    request_text(Auth::Ed25519(key), self.cfg.recv_window_ms, s.logon_req, "session.logon", &[], ts);
                if s.ws.send_text(&msg).is_err() {
                    s.logon_sent_gen = 0;
                }
            }
        }
        let may_subscribe = s.logon.is_none() || logged_on;
        if s.ws.is_open() && gen != s.sent_gen && now >= s.retry_at && may_subscribe {
            s.sent_gen = gen;
            s.subscribed = false;
            s.resync |= s.ever;
            let id = s.next_req;
            s.next_req += 1;
            let msg = if logged_on {
                format!("{{\"id\":{id},\"method\":\"userDataStream.subscribe\"}}")
            } else {
                let method = "userDataStream.subscribe.signature";
                request_text(Auth::Hmac(&self.rest.creds), self.cfg.recv_window_ms, id, method, &[], ts)
            };
            if s.ws.send_text(&msg).is_err() {
                s.sent_gen = 0;
            }
        }
        for m in buf.drain(..) {
            self.on_stream_message(&m, out);
        }
        if let Some(s) = self.stream.as_mut() {
            s.buf = buf;
        }
    }

    /// Handles one stream message (`{"subscriptionId":N,"event":{..}}` or an answer).
    fn on_stream_message(&mut self, msg: &[u8], out: &mut Vec<ExecReport>) {
        self.stats.stream_messages += 1;
        let mut v: Value = match serde_json::from_slice(msg) {
            Ok(v) => v,
            Err(_) => {
                self.stats.parse_errors += 1;
                return;
            }
        };
        if self.on_ws_answer(&mut v, out) {
            return;
        }
        if let Some(ev) = v.get("event") {
            match map_execution(ev, &self.by_symbol, &self.instruments) {
                Ok(x) => self.on_execution(&x, out),
                Err(MapSkip::NotExecution) => {}
                Err(MapSkip::Foreign) => self.stats.foreign += 1,
                Err(MapSkip::Bad(_)) => self.stats.parse_errors += 1,
            }
            return;
        }
        // An answer to our logon or subscribe request.
        let Some(status) = v.get("status").and_then(Value::as_i64) else { return };
        let now = wall_ns();
        let id = v.get("id").and_then(Value::as_u64);
        if let Some(s) = self.stream.as_mut().filter(|s| s.logon.is_some() && id == Some(s.logon_req)) {
            if status == 200 {
                s.logon_gen = s.logon_sent_gen;
                return;
            }
            // Refused: log on again with a fresh signature, after a pause.
            s.logon_sent_gen = 0;
            s.retry_at = now + 1_000 * NS_PER_MS;
            let code = v.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64).unwrap_or(0);
            if code == CODE_TIMESTAMP as i64 {
                self.stats.timestamp_errors += 1;
                let _ = self.sync_time();
            }
            return;
        }
        if status == 200 {
            if v.get("result").and_then(|r| r.get("subscriptionId")).is_none() {
                return;
            }
            self.stats.stream_subscriptions += 1;
            let Some(s) = self.stream.as_mut() else { return };
            s.subscribed = true;
            s.ever = true;
            if std::mem::take(&mut s.resync) {
                // Subscribed again: what happened meanwhile is learnt by querying
                // every open order (events from now on are not lost).
                for t in self.orders.values_mut() {
                    if t.state != OrderState::Done {
                        t.state = OrderState::Unknown;
                        t.next_query = now;
                    }
                }
            }
        } else {
            let code = v.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64).unwrap_or(0);
            if code == CODE_TIMESTAMP as i64 {
                self.stats.timestamp_errors += 1;
                let _ = self.sync_time();
            }
            // Subscribe again with a fresh signature, after a pause.
            if let Some(s) = self.stream.as_mut() {
                s.sent_gen = 0;
                s.retry_at = now + 1_000 * NS_PER_MS;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc() -> Instrument {
        Instrument::new("BTCUSDT", "0.01".parse().unwrap(), "0.00001".parse().unwrap())
    }

    #[test]
    fn maps_documented_execution_report() {
        // The documented `executionReport` example with our symbol and client id.
        let ev: Value = serde_json::from_str(
            r#"{"e":"executionReport","E":1499405658658,"s":"BTCUSDT","c":"sa-0000000700000003","S":"BUY",
            "o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10000000","P":"0.00000000","F":"0.00000000","g":-1,
            "C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":4293153,"l":"0.25000000","z":"0.25000000",
            "L":"0.10000000","n":"0.00002500","N":"BTC","T":1499405658657,"t":7,"I":8641984,"w":false,"m":true,
            "M":true,"O":1499405658657,"Z":"0.02500000","Y":"0.02500000","Q":"0.00000000","W":1499405658657,"V":"NONE"}"#,
        )
        .unwrap();
        let by: HashMap<String, InstId> = [("BTCUSDT".to_string(), 0)].into();
        let x = map_execution(&ev, &by, &[btc()]).unwrap();
        assert_eq!(x.id, (7 << 32) | 3);
        assert_eq!((x.side, x.px, x.qty, x.last_qty, x.cum, x.last_px), (Side::Buy, 10, 100_000, 25_000, 25_000, 10));
        assert_eq!(x.exec_type, "TRADE");
        assert!(x.maker);
        assert_eq!(x.commission, Some((0.000025, "BTC".to_string())));
        assert_eq!(x.ts, 1_499_405_658_657 * NS_PER_MS);
        // A cancel carries our id in C.
        let mut c = ev.clone();
        c["x"] = "CANCELED".into();
        c["c"] = "cancelReqXyz".into();
        c["C"] = "sa-0000000700000003".into();
        assert_eq!(map_execution(&c, &by, &[btc()]).unwrap().id, (7 << 32) | 3);
        let mut f = ev.clone();
        f["c"] = "web_123".into();
        assert_eq!(map_execution(&f, &by, &[btc()]), Err(MapSkip::Foreign));
        let mut f = ev.clone();
        f["s"] = "ETHBTC".into();
        assert_eq!(map_execution(&f, &by, &[btc()]), Err(MapSkip::Foreign));
        // A symbol map naming an instrument that is not there: foreign, not a panic.
        assert_eq!(map_execution(&ev, &by, &[]), Err(MapSkip::Foreign));
        // A hostile timestamp saturates rather than overflowing.
        let mut f = ev.clone();
        f["T"] = i64::MAX.into();
        assert_eq!(map_execution(&f, &by, &[btc()]).unwrap().ts, i64::MAX);
        let mut f = ev;
        f["p"] = "0.001".into();
        assert_eq!(map_execution(&f, &by, &[btc()]), Err(MapSkip::Bad("p")));
    }
}
