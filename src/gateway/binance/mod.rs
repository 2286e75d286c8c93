//! Binance Spot order gateway: order entry over the WebSocket API (pipelined, the
//! default) or REST (blocking), and the WebSocket API user data stream.
//!
//! [`BinanceSpot`] is the [`Exchange`] the gateway thread drives. It owns one part per
//! job and glues them; each module documents its own:
//!
//! | module | job |
//! |---|---|
//! | [`config`] | `[gateway.binance]`: URLs, key variables, timeouts, limits, and their checks |
//! | [`rest`] | the signed REST client: signing, rate limits, `Retry-After`, the server clock offset |
//! | [`entry`] | order entry: the request behind each [`OrderCmd`] and what its answer does |
//! | [`wsapi`] | the WebSocket API transport of order entry: signed requests, the in-flight table |
//! | [`orders`] | the order state machine: tracked orders, unknown outcomes, what reaches the core |
//! | [`stream`] | the user data stream: the WebSocket API subscription and its `executionReport`s |
//! | [`commission`] | fee accounting: commissions in the quote, the base or a third asset |
//! | [`account`] | reconciliation: open orders and balances at the venue |
//! | [`ids`] | client order ids |
//! | [`error`] | [`GatewayError`] |
//!
//! Every public item is also re-exported here (`gateway::binance::BinanceSpot`,
//! `gateway::binance::CODE_NO_SUCH_ORDER`, ...).
//!
//! `gateway.binance.orders` picks the transport of order entry: `"ws"` writes each
//! request to the WebSocket API connection and returns (answers are handled by later
//! polls), `"rest"` blocks until answered (at most `timeout_ms`). Either way the
//! gateway runs on the gateway thread, never on the hot one. In `"ws"` mode the clock
//! sync (`time`) and reconciliation (`openOrders.status`, `account.status`,
//! `order.status`, `openOrders.cancelAll`) go over the WebSocket API too, as blocking
//! queries ([`wsapi`]); REST is left for what must come before the connection is
//! used, [`BinanceSpot::start`]'s first clock sync and the exchangeInfo filter check,
//! and for any query while the connection is down. Its wall clock is its own (Binance
//! needs server time), not the `now` the gateway loop passes in.

pub mod account;
pub mod commission;
pub mod config;
pub mod entry;
pub mod error;
pub mod filters;
pub mod ids;
pub mod orders;
pub mod rest;
pub mod stream;
pub mod wsapi;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

pub use commission::split_symbol;
pub use config::{BinanceConfigError, BinanceGatewayConfig, OrderEntry, TESTNET_REST_URL, TESTNET_WS_API_URL};
pub use error::GatewayError;
pub use ids::{client_order_id, parse_client_order_id};
pub use orders::{OrderState, RejectInfo};
pub use rest::{
    CODE_CANCEL_REJECTED, CODE_CANCEL_REPLACE_FAILED, CODE_NEW_ORDER_REJECTED, CODE_NOT_SENT, CODE_NO_SUCH_ORDER,
    CODE_TIMESTAMP, CODE_TOO_MANY_REQUESTS,
};
pub use stream::{map_execution, Execution, MapSkip};
pub use wsapi::MAX_IN_FLIGHT;

use super::limits::RateLimiter;
use super::sign::{Credentials, Ed25519Key};
use super::{Balance, Exchange, OpenOrder, VenueError};
use crate::event::{ExecReport, MarketEvent, OrderCmd, OrderId};
use crate::fees::Fees;
use crate::ratelimit::IpBudget;
use crate::types::{InstId, Instrument, Side, Ts, NS_PER_MS};
use commission::Commission;
use orders::{Tracked, KEEP_DONE_NS};
use rest::Rest;
use stream::UserStream;
use wsapi::InFlight;

/// Counters of the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BinanceStats {
    /// Signed requests sent (REST and WebSocket API).
    pub requests: u64,
    /// WebSocket API order-entry requests written.
    pub ws_requests: u64,
    /// WebSocket API answers matched to a request in flight.
    pub ws_answers: u64,
    /// WebSocket API requests refused because [`MAX_IN_FLIGHT`] were in flight.
    pub ws_table_full: u64,
    /// WebSocket API requests given up: no answer in `timeout_ms`, or the connection
    /// was lost.
    pub ws_timeouts: u64,
    /// WebSocket API answers that came after their request was given up.
    pub ws_late_answers: u64,
    /// WebSocket API queries answered (`time`, `openOrders.status`, `account.status`,
    /// `order.status` and `openOrders.cancelAll` of reconciliation).
    pub ws_calls: u64,
    /// Queries sent over REST with `orders = "ws"` because the WebSocket API
    /// connection was not open.
    pub ws_rest_fallbacks: u64,
    /// New orders sent.
    pub orders_sent: u64,
    /// Rejected reports pushed.
    pub rejects: u64,
    /// Fill reports pushed.
    pub fills: u64,
    /// Fills inferred from an order snapshot (limit price, estimated fee).
    pub inferred_fills: u64,
    /// Requests without an answer (orders left unknown).
    pub unknown: u64,
    /// Settle queries sent.
    pub settle_queries: u64,
    /// Clock offset measurements.
    pub time_syncs: u64,
    /// `serverTime` answers refused as too far from the local clock.
    pub clock_rejects: u64,
    /// `-1021` answers.
    pub timestamp_errors: u64,
    /// HTTP 429 / 418 answers.
    pub backoffs: u64,
    /// Requests refused by our limiter.
    pub limited: u64,
    /// Cancels queued for retry.
    pub cancels_queued: u64,
    /// User data stream messages.
    pub stream_messages: u64,
    /// Execution reports mapped.
    pub stream_reports: u64,
    /// Stream (re)subscriptions confirmed.
    pub stream_subscriptions: u64,
    /// Duplicate events skipped.
    pub duplicates: u64,
    /// Events about orders not in our id format or symbols not ours.
    pub foreign: u64,
    /// Answers or events that could not be parsed.
    pub parse_errors: u64,
    /// Commissions in an asset that is neither base nor quote (fee estimated).
    pub fee_estimates: u64,
}

/// The Binance Spot gateway. Run it on the gateway thread (REST calls block).
pub struct BinanceSpot {
    cfg: BinanceGatewayConfig,
    entry: OrderEntry,
    in_flight_ws: InFlight,
    rest: Rest,
    instruments: Vec<Instrument>,
    by_symbol: HashMap<String, InstId>,
    commission: Commission,
    orders: HashMap<OrderId, Tracked>,
    pending_cancels: VecDeque<(OrderId, InstId)>,
    pending_cancel_all: bool,
    rejects: VecDeque<RejectInfo>,
    stream: Option<UserStream>,
    stats: BinanceStats,
}

impl std::fmt::Debug for BinanceSpot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinanceSpot")
            .field("rest_url", &self.rest.base)
            .field("creds", &self.rest.creds)
            .field("offset_ms", &self.rest.offset_ms)
            .field("orders", &self.orders.len())
            .field("entry", &self.entry)
            .field("ws_in_flight", &self.in_flight_ws.len())
            .field("stream", &self.stream)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Wall-clock ns since the epoch.
#[inline]
fn wall_ns() -> Ts {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as Ts)
}

/// Milliseconds to nanoseconds, saturating.
#[inline]
fn ms_ns(ms: u64) -> Ts {
    i64::try_from(ms).unwrap_or(i64::MAX).saturating_mul(NS_PER_MS)
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn i64_of(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

fn side_of(s: &str) -> Option<Side> {
    match s {
        "BUY" => Some(Side::Buy),
        "SELL" => Some(Side::Sell),
        _ => None,
    }
}

fn side_str(s: Side) -> &'static str {
    match s {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

impl BinanceSpot {
    /// A gateway for `instruments` (their index is their [`InstId`]) with credentials
    /// read from the environment variables the config names (and, if it names them,
    /// the Ed25519 key of [`Self::logon_ed25519`]). No I/O yet: call [`Self::start`].
    pub fn new(cfg: BinanceGatewayConfig, instruments: Vec<Instrument>, fees: Fees) -> Result<Self, GatewayError> {
        let creds = Credentials::from_env(&cfg.key_env, &cfg.secret_env)?;
        let ed = if cfg.ed25519_pem_env.is_empty() {
            None
        } else {
            Some(Ed25519Key::from_env(&cfg.ed25519_key_env, &cfg.ed25519_pem_env)?)
        };
        let mut gw = Self::with_credentials(cfg, creds, instruments, fees)?;
        if let Some(key) = ed {
            gw.logon_ed25519(key);
        }
        Ok(gw)
    }

    /// As [`Self::new`] with explicit credentials (tests).
    pub fn with_credentials(
        cfg: BinanceGatewayConfig,
        creds: Credentials,
        instruments: Vec<Instrument>,
        fees: Fees,
    ) -> Result<Self, GatewayError> {
        cfg.validate()?;
        let entry = cfg.order_entry()?;
        let commission = Commission::new(&instruments, fees)?;
        let by_symbol = instruments.iter().enumerate().map(|(i, ins)| (ins.symbol.clone(), i as InstId)).collect();
        let stream = if cfg.ws_url.is_empty() { None } else { Some(UserStream::new(&cfg)?) };
        Ok(BinanceSpot {
            rest: Rest::new(&cfg, creds),
            cfg,
            entry,
            in_flight_ws: InFlight::new(),
            instruments,
            by_symbol,
            commission,
            orders: HashMap::new(),
            pending_cancels: VecDeque::new(),
            pending_cancel_all: false,
            rejects: VecDeque::new(),
            stream,
            stats: BinanceStats::default(),
        })
    }

    /// Logs every WebSocket API connection on with `key` (`session.logon`, Ed25519)
    /// before anything else is sent on it: the user data stream subscription and order
    /// requests then carry no `apiKey` and no signature. REST requests (clock sync,
    /// reconciliation) stay HMAC-signed with the credentials. Call before
    /// [`Self::start`]; without a WebSocket API connection (`ws_url` empty) it does
    /// nothing.
    pub fn logon_ed25519(&mut self, key: Ed25519Key) {
        if let Some(s) = self.stream.as_mut() {
            s.logon = Some(key);
        }
    }

    /// Draws request weight from `budget` from now on (the per-IP budget shared with the
    /// feed's snapshot thread) instead of the gateway's own.
    pub fn share_budget(&mut self, budget: Arc<IpBudget>) {
        self.rest.limiter = RateLimiter::with_budget(&self.cfg.limits, budget);
    }

    /// Measures the clock offset, checks each instrument's tick and lot against the venue's
    /// filters ([`filters`]) and connects the user data stream (the subscription
    /// completes on later [`Exchange::poll`]s; see [`Self::stream_ready`]).
    ///
    /// Both first steps are REST even with `orders = "ws"`: the WebSocket API
    /// connection is only started here, after them, and its first requests (logon,
    /// subscription) are signed with the timestamp this clock sync makes good, so the
    /// offset must be known before the connection is used; and `start` does not wait
    /// for the connection (nothing here blocks on the WebSocket handshake).
    pub fn start(&mut self) -> Result<(), GatewayError> {
        self.rest.sync_time(&mut self.stats)?;
        filters::check(&mut self.rest, &mut self.stats, &self.instruments)?;
        let mut out = Vec::new();
        self.poll_stream(&mut out);
        Ok(())
    }

    /// True once the user data stream is subscribed (always true without a stream).
    pub fn stream_ready(&self) -> bool {
        self.stream.as_ref().is_none_or(|s| s.subscribed)
    }

    /// The gateway's state of order `id`, if tracked.
    pub fn order_state(&self, id: OrderId) -> Option<OrderState> {
        self.orders.get(&id).map(|t| t.state)
    }

    /// Recent rejects with the venue's messages (oldest first, at most 256).
    pub fn rejects(&self) -> &VecDeque<RejectInfo> {
        &self.rejects
    }

    /// Takes the recent rejects for logging (the gateway thread logs them; the core
    /// only sees the codes).
    pub fn take_rejects(&mut self) -> Vec<RejectInfo> {
        self.rejects.drain(..).collect()
    }

    /// Counters.
    pub fn stats(&self) -> BinanceStats {
        self.stats
    }

    /// The limiter (its counters).
    pub fn limiter(&self) -> &RateLimiter {
        &self.rest.limiter
    }

    /// Server time minus local wall time, ms, as last measured.
    pub fn clock_offset_ms(&self) -> i64 {
        self.rest.offset_ms
    }

    /// Measures the clock offset: server time minus the midpoint of the round trip of
    /// the WebSocket API's `time` (`orders = "ws"` with the connection open), else of
    /// `GET /api/v3/time`. A `serverTime` more than `max_clock_skew_ms` from the local
    /// clock is refused ([`GatewayError::ClockSkew`]); the offset stays.
    pub fn sync_time(&mut self) -> Result<i64, GatewayError> {
        if self.query_over_ws(false) {
            let t0 = wall_ns();
            let v = self.ws_call("time", &[], false, rest::W_TIME)?;
            let t1 = wall_ns();
            return self.rest.apply_server_time(&mut self.stats, "time", &v, t0, t1);
        }
        self.rest.sync_time(&mut self.stats)
    }
}

impl Exchange for BinanceSpot {
    fn needs_market(&self) -> bool {
        false
    }

    /// `now` is not used: Binance needs wall-clock (server) time, which the gateway
    /// keeps itself.
    fn on_order(&mut self, cmd: &OrderCmd, _now: Ts, out: &mut Vec<ExecReport>) {
        // Stream events first, so that a cancel sees the latest fills.
        self.poll_stream(out);
        match *cmd {
            OrderCmd::New(n) => self.new_order(&n, out),
            OrderCmd::Cancel { id, inst } => self.cancel(id, inst, out),
            OrderCmd::Replace { old, new } => self.cancel_replace(old, &new, out),
            OrderCmd::CancelAll => self.cancel_all(out),
        }
    }

    /// True: [`OrderCmd::Replace`] is `order.cancelReplace` (or
    /// `POST /api/v3/order/cancelReplace`) with `cancelReplaceMode = STOP_ON_FAILURE`
    /// ([`BinanceSpot::cancel_replace`]).
    fn supports_replace(&self) -> bool {
        true
    }

    fn on_market(&mut self, _ev: &MarketEvent, _out: &mut Vec<ExecReport>) {}

    /// Stream events and WebSocket API answers (and requests given up), queued cancels (once the limiter allows), settle queries of
    /// unknown orders (every `settle_interval_ms`), periodic clock sync, and pruning
    /// of final orders after a minute.
    fn poll(&mut self, _now: Ts, out: &mut Vec<ExecReport>) {
        self.poll_stream(out);
        self.ws_expire(out);
        let now = wall_ns();
        if now < self.rest.limiter.blocked_until() {
            return;
        }
        if self.pending_cancel_all {
            self.pending_cancel_all = false;
            self.cancel_all(out);
        }
        for _ in 0..self.pending_cancels.len() {
            let Some((id, inst)) = self.pending_cancels.pop_front() else { break };
            self.cancel(id, inst, out);
            if wall_ns() < self.rest.limiter.blocked_until() {
                break;
            }
        }
        let due: Vec<OrderId> = self
            .orders
            .iter()
            .filter(|(_, t)| t.state == OrderState::Unknown && t.next_query <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.settle(id, out);
        }
        if self.rest.next_time_sync > 0 && now >= self.rest.next_time_sync {
            let _ = self.sync_time();
        }
        self.orders.retain(|_, t| !(t.state == OrderState::Done && now - t.done_at > KEEP_DONE_NS));
    }

    fn in_flight(&self) -> usize {
        self.orders.values().filter(|t| t.state != OrderState::Done).count()
            + self.pending_cancels.len()
            + self.pending_cancel_all as usize
    }

    fn open_orders(&mut self) -> Result<Vec<OpenOrder>, VenueError> {
        self.fetch_open_orders().map_err(VenueError::from)
    }

    fn balances(&mut self) -> Result<Vec<Balance>, VenueError> {
        self.fetch_balances().map_err(VenueError::from)
    }
}
