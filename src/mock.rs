//! A mock Binance Spot venue on loopback for tests: real HTTP/1.1 (keep-alive) for the
//! REST API and a real WebSocket for the WebSocket API user data stream, on one port;
//! with [`MockBinance::spawn_with_ws`] the WebSocket API also on a port of its own, as
//! Binance serves it from its own host (`ws-api.binance.com`).
//!
//! # What it checks, as Binance documents it
//!
//! - `SIGNED` endpoints need the `X-MBX-APIKEY` header (missing: `-2014`, wrong:
//!   `-2015`, HTTP 401) and a `signature` parameter: the hex HMAC-SHA256 (either case)
//!   of the query string concatenated with the body, with the `signature` pair itself
//!   removed (it must be the last parameter of the part that carries it). Missing:
//!   `-1102`; wrong: `-1022`.
//! - `timestamp` (ms, or µs if it has 16 digits) and `recvWindow` (default 5000, at
//!   most 60000, else `-1131`): the request is processed only if
//!   `timestamp < serverTime + 1000` and `serverTime - timestamp <= recvWindow`,
//!   else `-1021`. The server clock can be skewed with [`MockHandle::set_clock_offset_ms`].
//! - The WebSocket API request `userDataStream.subscribe.signature` is checked the same
//!   way, its payload being every parameter but `signature`, sorted by name.
//!
//! # Endpoints
//!
//! `GET /api/v3/ping`, `GET /api/v3/time`, `GET /api/v3/exchangeInfo` (all symbols,
//! `symbol=` or `symbols=[..]`; per configured instrument its assets and the
//! `PRICE_FILTER` and `LOT_SIZE` filters of its tick and lot, and the venue's
//! `rateLimits`; `-1121` for an unknown symbol), `POST /api/v3/order` (`LIMIT` with
//! `timeInForce` GTC/IOC/FOK, `LIMIT_MAKER` without; `newOrderRespType`
//! ACK/RESULT/FULL), `DELETE /api/v3/order`, `DELETE /api/v3/openOrders`,
//! `POST /api/v3/order/cancelReplace` (`STOP_ON_FAILURE`: `-2022` with HTTP 400 when the
//! cancel fails, `-2021` with HTTP 409 when the new order fails after the cancel),
//! `GET /api/v3/order` (`-2013` when unknown), `GET /api/v3/openOrders`,
//! `GET /api/v3/account`. Answers carry `X-MBX-USED-WEIGHT-1M` (and
//! `X-MBX-ORDER-COUNT-10S` / `-1D` for order requests), counted in fixed, clock-aligned
//! intervals as Binance does. WebSocket: `ws://HOST:PORT/ws-api/v3`, methods
//! `userDataStream.subscribe.signature`, `ping` and `time` (not signed, `{serverTime}`;
//! [`Fault::ServerTime`] applies to it as to `GET /api/v3/time`), `session.logon` (Ed25519, with the
//! key of [`MockHandle::set_ed25519_key`]; the session's later requests, and
//! `userDataStream.subscribe`, then need no `apiKey` or `signature`), and the trading methods
//! `order.place`, `order.cancel`, `order.cancelReplace`, `order.status`,
//! `openOrders.status`, `openOrders.cancelAll` and `account.status`, which share the
//! REST routes' semantics and the same key, signature (sorted-parameter payload),
//! timestamp/recvWindow checks and fault queue (a filter may name the WS method); they
//! answer `{id, status, result | error, rateLimits}` (429/418 with
//! `error.data.retryAfter`, ms; a lost request closes the connection). With
//! [`MockHandle::hold_ws_answers`] a session answers only once N requests arrived
//! (proof of pipelining). Events are pushed as
//! `{"subscriptionId":N,"event":{...}}` text frames (`executionReport`,
//! `outboundAccountPosition`).
//!
//! # The market
//!
//! The venue holds our orders and per-asset balances (free, locked). The rest of the
//! market is a settable top of book per symbol ([`MockHandle::set_book`]): a
//! `LIMIT_MAKER` that would cross it is rejected with `-2010` ("Order would immediately
//! match and take."); a crossing `LIMIT` order takes the top at its price, as taker,
//! up to its size; an IOC remainder expires. [`MockHandle::trade`] plays a trade by
//! another participant, filling our resting orders at their own prices, as maker.
//! Commissions: buys pay in the base asset, sells in the quote asset, at the
//! configured bps.
//!
//! # Faults
//!
//! [`MockHandle::inject`] makes the next `count` requests matching a filter (a path, or
//! `"METHOD /path"`) answer with a [`Fault`]: HTTP 429 or 418 with `Retry-After`,
//! `-1021`, an answer delayed past the client's timeout (the request *is* executed), a
//! request lost (not executed, connection closed after a delay), a `serverTime` of
//! the caller's choosing (a broken venue clock), or an error that echoes the request
//! back, signed query string and `X-MBX-APIKEY` header included (a venue that leaks
//! what it was sent into its error text).
//! [`MockHandle::drop_streams`] closes every user data stream connection.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::Message;

use crate::gateway::sign::{percent_decode, ws_payload, Credentials};
use crate::types::{Decimal, Instrument, Px, Qty, Side};

const POLL: Duration = Duration::from_millis(5);

/// Mock venue configuration.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The one account's API key and secret (the `Debug` of [`Credentials`] redacts).
    pub creds: Credentials,
    /// Tradable symbols with their tick and lot sizes.
    pub instruments: Vec<Instrument>,
    /// Starting free balances, `(asset, amount)`.
    pub balances: Vec<(String, f64)>,
    /// Maker commission, bps.
    pub maker_bps: f64,
    /// Taker commission, bps.
    pub taker_bps: f64,
}

/// A fault to answer with instead of the normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429, code -1003, `Retry-After` seconds; not executed.
    Http429 {
        /// `Retry-After`, seconds.
        retry_after_s: u32,
    },
    /// HTTP 418 (IP banned), code -1003, `Retry-After` seconds; not executed.
    Http418 {
        /// `Retry-After`, seconds.
        retry_after_s: u32,
    },
    /// HTTP 400, code -1021 (timestamp outside recvWindow); not executed.
    Timestamp,
    /// Executed, but the answer is sent only after `ms`.
    SlowAnswer {
        /// Delay, ms.
        ms: u64,
    },
    /// Not executed; the connection is closed after `ms` without an answer.
    Lost {
        /// Delay, ms.
        ms: u64,
    },
    /// `GET /api/v3/time` answers `{"serverTime": ms}` (other requests: as usual).
    ServerTime {
        /// The server time to report, ms.
        ms: i64,
    },
    /// HTTP 400, code -1100, the message quoting the request line (with the signed
    /// query string) and the `X-MBX-APIKEY` header; not executed.
    Echo,
}

/// A view of one order held by the mock.
#[derive(Debug, Clone, PartialEq)]
pub struct MockOrder {
    /// Exchange order id.
    pub order_id: u64,
    /// Client order id.
    pub client_id: String,
    /// Symbol.
    pub symbol: String,
    /// Side.
    pub side: Side,
    /// Price in ticks.
    pub px: Px,
    /// Size in lots.
    pub qty: Qty,
    /// Executed lots.
    pub executed: Qty,
    /// Binance status (`NEW`, `FILLED`, ...).
    pub status: &'static str,
}

/// Counters of the mock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MockStats {
    /// HTTP requests received.
    pub requests: u64,
    /// Of which order placements (`POST /api/v3/order`) executed.
    pub orders_placed: u64,
    /// Requests refused for a bad or missing key or signature.
    pub auth_failures: u64,
    /// Requests refused with -1021 by the clock check.
    pub timestamp_rejects: u64,
    /// Faults fired.
    pub faults: u64,
    /// WebSocket sessions opened.
    pub ws_sessions: u64,
    /// User data subscriptions accepted.
    pub subscriptions: u64,
    /// WebSocket API `session.logon`s accepted (Ed25519).
    pub logons: u64,
    /// Events pushed to subscribers.
    pub events: u64,
}

#[derive(Debug, Clone)]
struct Order {
    order_id: u64,
    client_id: String,
    sym: usize,
    side: Side,
    typ: &'static str,
    tif: &'static str,
    px: Px,
    qty: Qty,
    executed: Qty,
    cum_quote: f64,
    status: &'static str,
    time_ms: i64,
    update_ms: i64,
}

impl Order {
    fn open(&self) -> bool {
        matches!(self.status, "NEW" | "PARTIALLY_FILLED")
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Top {
    bid: Option<(Px, Qty)>,
    ask: Option<(Px, Qty)>,
}

#[derive(Debug)]
struct State {
    orders: Vec<Order>,
    tops: Vec<Top>,
    balances: BTreeMap<String, (f64, f64)>,
    faults: VecDeque<(Fault, Option<String>)>,
    offset_ms: i64,
    subs: Vec<(u64, Sender<String>)>,
    next_sub: u64,
    next_order_id: u64,
    next_trade_id: u64,
    next_cancel: u64,
    weight: (i64, u64),
    orders_10s: (i64, u64),
    orders_1d: (i64, u64),
    log: Vec<String>,
    stats: MockStats,
    kick: u64,
    /// The Ed25519 API key registered for `session.logon`: its API key and public key.
    ed25519: Option<(String, [u8; 32])>,
}

#[derive(Debug)]
struct Shared {
    cfg: MockConfig,
    assets: Vec<(String, String)>,
    state: Mutex<State>,
    stop: AtomicBool,
    kick: AtomicU64,
    /// WebSocket API answers are held until this many requests arrived on the session
    /// (0: answer at once); see [`MockHandle::hold_ws_answers`].
    hold: AtomicU64,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Prints a decimal with at least 8 fractional digits, as Binance does.
fn fmt8(d: Decimal) -> String {
    let s = d.to_string();
    let frac = s.split_once('.').map_or(0, |(_, f)| f.len());
    if frac >= 8 {
        s
    } else if frac == 0 {
        format!("{s}.{}", "0".repeat(8))
    } else {
        format!("{s}{}", "0".repeat(8 - frac))
    }
}

fn fmt_amount(x: f64) -> String {
    format!("{:.8}", x.max(0.0) + 0.0)
}

fn err(code: i32, msg: &str) -> Value {
    json!({ "code": code, "msg": msg })
}

/// An HTTP answer and how to deliver it.
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<u32>,
    order_counts: bool,
    delay_ms: u64,
    lost: bool,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer { status: 200, body, retry_after: None, order_counts: false, delay_ms: 0, lost: false }
    }
    fn bad(code: i32, msg: &str) -> Self {
        Answer { status: 400, ..Answer::ok(err(code, msg)) }
    }
}

/// Handle of a running mock; stops it on drop.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    /// The WebSocket API's own listener, if asked for.
    ws_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    ws_thread: Option<JoinHandle<()>>,
}

/// The mock venue.
#[derive(Debug)]
pub struct MockBinance;

impl MockBinance {
    /// Binds `127.0.0.1:0` and starts serving.
    pub fn spawn(cfg: MockConfig) -> io::Result<MockHandle> {
        MockBinance::spawn_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// [`MockBinance::spawn`] on `addr` (port 0: a free port).
    pub fn spawn_on(cfg: MockConfig, addr: SocketAddr) -> io::Result<MockHandle> {
        MockBinance::spawn_with_ws(cfg, addr, None)
    }

    /// [`MockBinance::spawn_on`], and if `ws_addr` is given a second listener there
    /// (port 0: a free port) that serves only the WebSocket API (`/ws-api/v3`; any
    /// other request is HTTP 404), as Binance's separate WebSocket API host does. The
    /// REST port keeps serving the WebSocket API too. Both share one venue: orders,
    /// balances, faults and subscriptions.
    pub fn spawn_with_ws(cfg: MockConfig, addr: SocketAddr, ws_addr: Option<SocketAddr>) -> io::Result<MockHandle> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let ws_listener = match ws_addr {
            Some(a) => {
                let l = TcpListener::bind(a)?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        let ws_addr = ws_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let assets = cfg
            .instruments
            .iter()
            .map(|i| crate::gateway::binance::split_symbol(&i.symbol).unwrap_or((i.symbol.clone(), String::new())))
            .collect();
        let mut balances = BTreeMap::new();
        for (a, v) in &cfg.balances {
            balances.insert(a.clone(), (*v, 0.0));
        }
        let tops = vec![Top::default(); cfg.instruments.len()];
        let shared = Arc::new(Shared {
            cfg,
            assets,
            state: Mutex::new(State {
                orders: Vec::new(),
                tops,
                balances,
                faults: VecDeque::new(),
                offset_ms: 0,
                subs: Vec::new(),
                next_sub: 0,
                next_order_id: 1,
                next_trade_id: 1,
                next_cancel: 1,
                weight: (0, 0),
                orders_10s: (0, 0),
                orders_1d: (0, 0),
                log: Vec::new(),
                stats: MockStats::default(),
                kick: 0,
                ed25519: None,
            }),
            stop: AtomicBool::new(false),
            kick: AtomicU64::new(0),
            hold: AtomicU64::new(0),
        });
        let sh = shared.clone();
        let thread =
            std::thread::Builder::new().name("mock-binance".into()).spawn(move || accept_loop(listener, sh, false))?;
        let ws_thread = match ws_listener {
            Some(l) => {
                let sh = shared.clone();
                Some(
                    std::thread::Builder::new()
                        .name("mock-binance-ws".into())
                        .spawn(move || accept_loop(l, sh, true))?,
                )
            }
            None => None,
        };
        Ok(MockHandle { addr, ws_addr, shared, thread: Some(thread), ws_thread })
    }
}

impl MockHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The WebSocket API's own listener's address, if it has one
    /// ([`MockBinance::spawn_with_ws`]).
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// `ws://127.0.0.1:PORT/ws-api/v3`: on the WebSocket API's own port if it has
    /// one, else on the REST port.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws-api/v3", self.ws_addr.unwrap_or(self.addr))
    }

    /// The next `count` requests whose path (or `"METHOD /path"`) equals `filter`
    /// (any request if `None`) answer with `fault`.
    pub fn inject(&self, fault: Fault, count: usize, filter: Option<&str>) {
        let mut s = lock(&self.shared.state);
        for _ in 0..count {
            s.faults.push_back((fault, filter.map(str::to_string)));
        }
    }

    /// From now on each WebSocket API session holds its answers until `n` requests
    /// arrived on it, then sends them all (0: answer each at once). A test that sees
    /// all its answers proves all `n` requests were in flight together.
    pub fn hold_ws_answers(&self, n: u64) {
        self.shared.hold.store(n, Ordering::Release);
    }

    /// Registers an Ed25519 API key (`api_key` and its 32-byte public key) for the
    /// WebSocket API's `session.logon`: a session logged on with it sends requests
    /// without `apiKey` and `signature`.
    pub fn set_ed25519_key(&self, api_key: &str, public_key: [u8; 32]) {
        lock(&self.shared.state).ed25519 = Some((api_key.to_string(), public_key));
    }

    /// Server clock = local wall clock + `ms`.
    pub fn set_clock_offset_ms(&self, ms: i64) {
        lock(&self.shared.state).offset_ms = ms;
    }

    /// Sets the rest of the market's best bid and ask of `symbol` (exact decimal price
    /// and size strings; `None` for an empty side).
    pub fn set_book(&self, symbol: &str, bid: Option<(&str, &str)>, ask: Option<(&str, &str)>) {
        let Some(i) = self.shared.cfg.instruments.iter().position(|x| x.symbol == symbol) else { return };
        let ins = &self.shared.cfg.instruments[i];
        let lvl = |l: Option<(&str, &str)>| {
            l.and_then(|(p, q)| Some((ins.parse_price(p.as_bytes()).ok()?, ins.parse_qty(q.as_bytes()).ok()?)))
        };
        lock(&self.shared.state).tops[i] = Top { bid: lvl(bid), ask: lvl(ask) };
    }

    /// Another participant's aggressive order of `qty` at limit `px` on `aggressor`'s
    /// side: fills our resting orders of the other side whose price it reaches (best
    /// price first, then oldest), each at its own price, as maker. Returns the lots
    /// filled.
    pub fn trade(&self, symbol: &str, aggressor: Side, px: &str, qty: &str) -> Qty {
        let Some(i) = self.shared.cfg.instruments.iter().position(|x| x.symbol == symbol) else { return 0 };
        let ins = self.shared.cfg.instruments[i].clone();
        let (Ok(px), Ok(mut left)) = (ins.parse_price(px.as_bytes()), ins.parse_qty(qty.as_bytes())) else { return 0 };
        let mut s = lock(&self.shared.state);
        let mut idx: Vec<usize> = (0..s.orders.len())
            .filter(|&k| {
                let o = &s.orders[k];
                o.sym == i
                    && o.open()
                    && o.side == aggressor.opposite()
                    && match aggressor {
                        Side::Buy => o.px <= px,
                        Side::Sell => o.px >= px,
                    }
            })
            .collect();
        idx.sort_by_key(|&k| {
            let o = &s.orders[k];
            (if o.side == Side::Sell { o.px } else { -o.px }, o.order_id)
        });
        let mut filled = 0;
        for k in idx {
            if left == 0 {
                break;
            }
            let q = left.min(s.orders[k].qty - s.orders[k].executed);
            let opx = s.orders[k].px;
            execute(&self.shared, &mut s, k, opx, q, true);
            left -= q;
            filled += q;
        }
        filled
    }

    /// Our orders on `symbol` that are open.
    pub fn open_orders(&self, symbol: &str) -> Vec<MockOrder> {
        self.orders()
            .into_iter()
            .filter(|o| o.symbol == symbol && matches!(o.status, "NEW" | "PARTIALLY_FILLED"))
            .collect()
    }

    /// Every order the mock has seen.
    pub fn orders(&self) -> Vec<MockOrder> {
        let s = lock(&self.shared.state);
        s.orders
            .iter()
            .map(|o| MockOrder {
                order_id: o.order_id,
                client_id: o.client_id.clone(),
                symbol: self.shared.cfg.instruments[o.sym].symbol.clone(),
                side: o.side,
                px: o.px,
                qty: o.qty,
                executed: o.executed,
                status: o.status,
            })
            .collect()
    }

    /// `(free, locked)` of `asset`.
    pub fn balance(&self, asset: &str) -> (f64, f64) {
        lock(&self.shared.state).balances.get(asset).copied().unwrap_or((0.0, 0.0))
    }

    /// Counters.
    pub fn stats(&self) -> MockStats {
        lock(&self.shared.state).stats
    }

    /// Every request as `METHOD /path?query` (query strings carry signatures, never
    /// keys), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.state).log.clone()
    }

    /// Closes every WebSocket connection (clients must reconnect and resubscribe).
    pub fn drop_streams(&self) {
        self.shared.kick.fetch_add(1, Ordering::AcqRel);
        let mut s = lock(&self.shared.state);
        s.kick += 1;
        s.subs.clear();
    }

    /// Stops the server and waits for its accept thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for t in [self.thread.take(), self.ws_thread.take()].into_iter().flatten() {
            let _ = t.join();
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accepts connections until stopped, one thread each; `ws_only`: the WebSocket API's
/// own listener.
fn accept_loop(l: TcpListener, sh: Arc<Shared>, ws_only: bool) {
    while !sh.stop.load(Ordering::Acquire) {
        match l.accept() {
            Ok((s, _)) => {
                let sh2 = sh.clone();
                let _ = std::thread::Builder::new().name("mock-conn".into()).spawn(move || {
                    let _ = conn(s, &sh2, ws_only);
                });
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// A stream that first yields bytes already read (the upgrade request), then the
/// socket: hands a connection whose head we parsed to tungstenite.
#[derive(Debug)]
struct Prefixed {
    pre: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl Read for Prefixed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.pre.len() {
            let n = buf.len().min(self.pre.len() - self.pos);
            buf[..n].copy_from_slice(&self.pre[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
    }
}

/// Reads one request from `buf` + the socket; `None` at EOF, idle timeout or stop.
fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>, sh: &Shared) -> Option<Request> {
    let idle = Instant::now();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if sh.stop.load(Ordering::Acquire) || idle.elapsed() > Duration::from_secs(120) || buf.len() > 1 << 20 {
            return None;
        }
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let find = |k: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let chunked = find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    buf.drain(..head_end);
    let body: Vec<u8> = if chunked {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        let len: usize = find("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buf.len() < len {
            match s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
        buf.drain(..len).collect()
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    Some(Request { method, path, query, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// One connection: HTTP requests, or a WebSocket API session if the first request
/// upgrades to `/ws-api/v3`. On the WebSocket API's own listener (`ws_only`) anything
/// else is HTTP 404.
fn conn(mut s: TcpStream, sh: &Shared, ws_only: bool) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut first = true;
    while let Some(req) = read_request(&mut s, &mut buf, sh) {
        let upgrade = req.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if first && upgrade && req.path == "/ws-api/v3" {
            return ws_session(s, req, buf, sh);
        }
        first = false;
        let a = if ws_only { Answer { status: 404, ..Answer::bad(-1, "Not found.") } } else { answer(sh, &req) };
        if a.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(a.delay_ms));
        }
        if a.lost {
            let _ = s.shutdown(Shutdown::Both);
            return Ok(());
        }
        let weight = lock(&sh.state).weight.1;
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json;charset=UTF-8\r\nX-MBX-USED-WEIGHT-1M: {weight}\r\n",
            a.status,
            reason(a.status)
        );
        if a.order_counts {
            let st = lock(&sh.state);
            head.push_str(&format!(
                "X-MBX-ORDER-COUNT-10S: {}\r\nX-MBX-ORDER-COUNT-1D: {}\r\n",
                st.orders_10s.1, st.orders_1d.1
            ));
        }
        if let Some(r) = a.retry_after {
            head.push_str(&format!("Retry-After: {r}\r\n"));
        }
        let body = a.body.to_string();
        head.push_str(&format!("Content-Length: {}\r\nConnection: keep-alive\r\n\r\n", body.len()));
        s.write_all(head.as_bytes())?;
        s.write_all(body.as_bytes())?;
        s.flush()?;
        if req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            break;
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        _ => "Error",
    }
}

/// Endpoint weights (Binance Spot, at the time of writing).
fn weight_of(method: &str, path: &str) -> u64 {
    match (method, path) {
        ("GET", "/api/v3/order") => 4,
        ("GET", "/api/v3/openOrders") => 6,
        ("GET", "/api/v3/account") => 20,
        ("GET", "/api/v3/exchangeInfo") => 20,
        _ => 1,
    }
}

/// Counts in fixed, clock-aligned intervals: (interval start, count).
fn bump(c: &mut (i64, u64), now_ms: i64, len_ms: i64, n: u64) -> u64 {
    let start = now_ms - now_ms.rem_euclid(len_ms);
    if c.0 != start {
        *c = (start, 0);
    }
    c.1 += n;
    c.1
}

fn answer(sh: &Shared, req: &Request) -> Answer {
    let mut st = lock(&sh.state);
    st.stats.requests += 1;
    let line = if req.query.is_empty() {
        format!("{} {}", req.method, req.path)
    } else {
        format!("{} {}?{}", req.method, req.path, req.query)
    };
    st.log.push(line);
    let now = wall_ms() + st.offset_ms;
    bump(&mut st.weight, now, 60_000, weight_of(&req.method, &req.path));
    let key = format!("{} {}", req.method, req.path);
    if let Some(pos) = st.faults.iter().position(|(_, f)| f.as_deref().is_none_or(|f| f == req.path || f == key)) {
        let (fault, _) = st.faults.remove(pos).unwrap_or((Fault::Timestamp, None));
        st.stats.faults += 1;
        match fault {
            Fault::Http429 { retry_after_s } => {
                return Answer {
                    status: 429,
                    retry_after: Some(retry_after_s),
                    ..Answer::bad(-1003, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.")
                }
            }
            Fault::Http418 { retry_after_s } => {
                return Answer {
                    status: 418,
                    retry_after: Some(retry_after_s),
                    ..Answer::bad(-1003, "Way too much request weight used; IP banned. Please use WebSocket Streams for live updates to avoid bans.")
                }
            }
            Fault::Timestamp => return Answer::bad(-1021, "Timestamp for this request is outside of the recvWindow."),
            Fault::Lost { ms } => return Answer { delay_ms: ms, lost: true, ..Answer::ok(Value::Null) },
            Fault::ServerTime { ms } if req.path == "/api/v3/time" => return Answer::ok(json!({ "serverTime": ms })),
            Fault::ServerTime { .. } => {}
            Fault::Echo => {
                let msg = format!(
                    "Illegal characters found in a parameter. Request: {} {}?{} X-MBX-APIKEY: {}",
                    req.method,
                    req.path,
                    req.query,
                    req.header("X-MBX-APIKEY").unwrap_or("")
                );
                return Answer::bad(-1100, &msg);
            }
            Fault::SlowAnswer { ms } => {
                let mut a = route(sh, &mut st, req, now);
                a.delay_ms = ms;
                return a;
            }
        }
    }
    route(sh, &mut st, req, now)
}

fn route(sh: &Shared, st: &mut State, req: &Request, now: i64) -> Answer {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/api/v3/ping") => return Answer::ok(json!({})),
        ("GET", "/api/v3/time") => return Answer::ok(json!({ "serverTime": now })),
        ("GET", "/api/v3/exchangeInfo") => return exchange_info(sh, &req.query, now),
        _ => {}
    }
    let signed = matches!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/api/v3/order")
            | ("DELETE", "/api/v3/order")
            | ("GET", "/api/v3/order")
            | ("DELETE", "/api/v3/openOrders")
            | ("GET", "/api/v3/openOrders")
            | ("POST", "/api/v3/order/cancelReplace")
            | ("GET", "/api/v3/account")
    );
    if !signed {
        return Answer { status: 404, ..Answer::bad(-1, "Not found.") };
    }
    let params = match check_signed(sh, st, req, now) {
        Ok(p) => p,
        Err(a) => return a,
    };
    dispatch(sh, st, &req.method, &req.path, &params, now)
}

/// The venue's rate limits as `exchangeInfo` lists them (Binance Spot's).
fn rate_limits() -> Value {
    json!([
        { "rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000 },
        { "rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100 },
        { "rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000 },
        { "rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000 }
    ])
}

/// A decimal as Binance prints filter values: at least 8 decimals (`0.01000000`).
fn fixed8(d: Decimal) -> String {
    let s = d.to_string();
    let decimals = s.split_once('.').map_or(0, |(_, f)| f.len());
    let mut out = if decimals == 0 { format!("{s}.") } else { s };
    for _ in decimals..8 {
        out.push('0');
    }
    out
}

/// One symbol of `exchangeInfo`: its assets, its order types, and the `PRICE_FILTER`
/// (`tickSize` the configured tick) and `LOT_SIZE` (`stepSize` and `minQty` the
/// configured lot, `maxQty` 9000) filters.
fn symbol_info(sh: &Shared, k: usize) -> Value {
    let inst = &sh.cfg.instruments[k];
    let (base, quote) = &sh.assets[k];
    json!({
        "symbol": inst.symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER"],
        "icebergAllowed": false,
        "ocoAllowed": false,
        "cancelReplaceAllowed": true,
        "isSpotTradingAllowed": true,
        "isMarginTradingAllowed": false,
        "filters": [
            { "filterType": "PRICE_FILTER", "minPrice": fixed8(inst.tick), "maxPrice": "1000000.00000000", "tickSize": fixed8(inst.tick) },
            { "filterType": "LOT_SIZE", "minQty": fixed8(inst.lot), "maxQty": "9000.00000000", "stepSize": fixed8(inst.lot) }
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "NONE"]
    })
}

/// `GET /api/v3/exchangeInfo`, all symbols, `?symbol=S` or `?symbols=["A","B"]` (a
/// JSON array, URL-encoded): an unknown symbol is `-1121`, both parameters `-1128`, a
/// malformed `symbols` `-1100`, as on Binance.
fn exchange_info(sh: &Shared, query: &str, now: i64) -> Answer {
    let mut symbol = None;
    let mut symbols = None;
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let Some(v) = percent_decode(v) else {
            return Answer::bad(-1100, &format!("Illegal characters found in parameter '{k}'."));
        };
        match k {
            "symbol" => symbol = Some(v),
            "symbols" => symbols = Some(v),
            _ => {}
        }
    }
    let wanted: Vec<String> = match (symbol, symbols) {
        (Some(_), Some(_)) => return Answer::bad(-1128, "Combination of optional parameters invalid."),
        (Some(s), None) => vec![s],
        (None, Some(list)) => match serde_json::from_str::<Vec<String>>(&list) {
            Ok(v) if !v.is_empty() => v,
            _ => return Answer::bad(-1100, "Illegal characters found in parameter 'symbols'."),
        },
        (None, None) => sh.cfg.instruments.iter().map(|i| i.symbol.clone()).collect(),
    };
    let mut infos = Vec::with_capacity(wanted.len());
    for w in &wanted {
        match sh.cfg.instruments.iter().position(|i| &i.symbol == w) {
            Some(k) => infos.push(symbol_info(sh, k)),
            None => return Answer::bad(-1121, "Invalid symbol."),
        }
    }
    Answer::ok(json!({
        "timezone": "UTC",
        "serverTime": now,
        "rateLimits": rate_limits(),
        "exchangeFilters": [],
        "symbols": infos
    }))
}

/// Executes a signed request whose parameters were checked: shared by the REST routes
/// and the WebSocket API methods, so both sides keep one set of semantics.
fn dispatch(sh: &Shared, st: &mut State, method: &str, path: &str, params: &[(String, String)], now: i64) -> Answer {
    let p = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match (method, path) {
        ("POST", "/api/v3/order") => {
            let mut a = match validate_new(sh, st, &p) {
                Ok(n) => place(sh, st, n, now),
                Err(a) => a,
            };
            a.order_counts = true;
            a
        }
        ("DELETE", "/api/v3/order") => match find(sh, st, &p) {
            Ok(k) if st.orders[k].open() => Answer::ok(cancel(sh, st, k, p("newClientOrderId"), now)),
            _ => Answer::bad(-2011, "Unknown order sent."),
        },
        ("DELETE", "/api/v3/openOrders") => {
            let Some(sym) = p("symbol").and_then(|s| sh.cfg.instruments.iter().position(|i| i.symbol == s)) else {
                return Answer::bad(-1121, "Invalid symbol.");
            };
            let ks: Vec<usize> =
                (0..st.orders.len()).filter(|&k| st.orders[k].sym == sym && st.orders[k].open()).collect();
            if ks.is_empty() {
                return Answer::bad(-2011, "Unknown order sent.");
            }
            Answer::ok(Value::Array(ks.into_iter().map(|k| cancel(sh, st, k, None, now)).collect()))
        }
        ("GET", "/api/v3/order") => match find(sh, st, &p) {
            Ok(k) => Answer::ok(order_json(sh, &st.orders[k])),
            Err(a) => a,
        },
        ("GET", "/api/v3/openOrders") => {
            let sym = p("symbol");
            if sym.is_some_and(|s| !sh.cfg.instruments.iter().any(|i| i.symbol == s)) {
                return Answer::bad(-1121, "Invalid symbol.");
            }
            let v: Vec<Value> = st
                .orders
                .iter()
                .filter(|o| o.open() && sym.is_none_or(|s| sh.cfg.instruments[o.sym].symbol == s))
                .map(|o| order_json(sh, o))
                .collect();
            Answer::ok(Value::Array(v))
        }
        ("GET", "/api/v3/account") => {
            let omit = p("omitZeroBalances") == Some("true");
            let b: Vec<Value> = st
                .balances
                .iter()
                .filter(|(_, (f, l))| !omit || *f != 0.0 || *l != 0.0)
                .map(|(a, (f, l))| json!({ "asset": a, "free": fmt_amount(*f), "locked": fmt_amount(*l) }))
                .collect();
            Answer::ok(json!({
                "makerCommission": sh.cfg.maker_bps as i64, "takerCommission": sh.cfg.taker_bps as i64,
                "canTrade": true, "canWithdraw": true, "canDeposit": true, "updateTime": now,
                "accountType": "SPOT", "balances": b, "permissions": ["SPOT"], "uid": 1
            }))
        }
        ("POST", "/api/v3/order/cancelReplace") => {
            let mut a = cancel_replace(sh, st, &p, now);
            a.order_counts = true;
            a
        }
        _ => Answer { status: 404, ..Answer::bad(-1, "Not found.") },
    }
}

/// Key, signature and timestamp checks as documented; the decoded parameters.
fn check_signed(sh: &Shared, st: &mut State, req: &Request, now: i64) -> Result<Vec<(String, String)>, Answer> {
    let unauthorized = |st: &mut State, code, msg| {
        st.stats.auth_failures += 1;
        Err(Answer { status: 401, ..Answer::bad(code, msg) })
    };
    match req.header("X-MBX-APIKEY") {
        None => return unauthorized(st, -2014, "API-key format invalid."),
        Some(k) if k != sh.cfg.creds.api_key() => {
            return unauthorized(st, -2015, "Invalid API-key, IP, or permissions for action.")
        }
        Some(_) => {}
    }
    // The signature pair is removed from whichever part carries it (as its last pair).
    let strip = |part: &str| -> Option<(String, String)> {
        if let Some(i) = part.rfind("&signature=") {
            let sig = &part[i + 11..];
            return (!sig.contains('&')).then(|| (part[..i].to_string(), sig.to_string()));
        }
        part.strip_prefix("signature=").filter(|s| !s.contains('&')).map(|s| (String::new(), s.to_string()))
    };
    let (payload, sig) = match (strip(&req.query), strip(&req.body)) {
        (Some((q, s)), None) => (format!("{q}{}", req.body), s),
        (None, Some((b, s))) => (format!("{}{b}", req.query), s),
        _ => {
            st.stats.auth_failures += 1;
            return Err(Answer::bad(
                -1102,
                "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
            ));
        }
    };
    if !sh.cfg.creds.verify(payload.as_bytes(), &sig) {
        st.stats.auth_failures += 1;
        return Err(Answer::bad(-1022, "Signature for this request is not valid."));
    }
    let mut params = Vec::new();
    for part in [req.query.as_str(), req.body.as_str()] {
        for kv in part.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let Some(v) = percent_decode(v) else {
                return Err(Answer::bad(-1100, &format!("Illegal characters found in parameter '{k}'.")));
            };
            if k != "signature" {
                params.push((k.to_string(), v));
            }
        }
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    check_time(st, get("timestamp").as_deref(), get("recvWindow").as_deref(), now)?;
    Ok(params)
}

/// The documented timing rule: processed iff `timestamp < serverTime + 1000` and
/// `serverTime - timestamp <= recvWindow`.
fn check_time(st: &mut State, ts: Option<&str>, rw: Option<&str>, now: i64) -> Result<(), Answer> {
    let Some(ts) = ts.and_then(|t| t.parse::<i64>().ok()) else {
        return Err(Answer::bad(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."));
    };
    // 16 digits: microseconds.
    let ts_ms = if ts >= 100_000_000_000_000 { ts as f64 / 1000.0 } else { ts as f64 };
    let rw = match rw {
        None => 5000.0,
        Some(r) => match r.parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 60_000.0 => v,
            _ => return Err(Answer::bad(-1131, "recvWindow must be less than 60000")),
        },
    };
    let server = now as f64;
    if ts_ms >= server + 1000.0 {
        st.stats.timestamp_rejects += 1;
        return Err(Answer::bad(-1021, "Timestamp for this request was 1000ms ahead of the server's time."));
    }
    if server - ts_ms > rw {
        st.stats.timestamp_rejects += 1;
        return Err(Answer::bad(-1021, "Timestamp for this request is outside of the recvWindow."));
    }
    Ok(())
}

/// A validated new order.
struct NewReq {
    sym: usize,
    side: Side,
    typ: &'static str,
    tif: &'static str,
    px: Px,
    qty: Qty,
    client_id: Option<String>,
    resp: &'static str,
}

fn valid_client_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 36 && s.bytes().all(|c| c.is_ascii_alphanumeric() || b".:/_-".contains(&c))
}

fn validate_new<'a>(sh: &Shared, st: &State, p: &impl Fn(&str) -> Option<&'a str>) -> Result<NewReq, Answer> {
    let missing =
        |k: &str| Answer::bad(-1102, &format!("Mandatory parameter '{k}' was not sent, was empty/null, or malformed."));
    let sym = p("symbol").ok_or_else(|| missing("symbol"))?;
    let Some(i) = sh.cfg.instruments.iter().position(|x| x.symbol == sym) else {
        return Err(Answer::bad(-1121, "Invalid symbol."));
    };
    let ins = &sh.cfg.instruments[i];
    let side = match p("side") {
        Some("BUY") => Side::Buy,
        Some("SELL") => Side::Sell,
        _ => return Err(missing("side")),
    };
    let (typ, tif) = match (p("type"), p("timeInForce")) {
        (Some("LIMIT_MAKER"), None) => ("LIMIT_MAKER", "GTC"),
        (Some("LIMIT_MAKER"), Some(_)) => {
            return Err(Answer::bad(-1106, "Parameter 'timeInForce' sent when not required."))
        }
        (Some("LIMIT"), Some("GTC")) => ("LIMIT", "GTC"),
        (Some("LIMIT"), Some("IOC")) => ("LIMIT", "IOC"),
        (Some("LIMIT"), Some("FOK")) => ("LIMIT", "FOK"),
        (Some("LIMIT"), _) => return Err(missing("timeInForce")),
        (Some(_), _) => return Err(Answer::bad(-1116, "Invalid orderType.")),
        (None, _) => return Err(missing("type")),
    };
    let px = p("price").ok_or_else(|| missing("price"))?;
    let qty = p("quantity").ok_or_else(|| missing("quantity"))?;
    let px = match ins.parse_price(px.as_bytes()) {
        Ok(v) if v > 0 => v,
        _ => return Err(Answer::bad(-1013, "Filter failure: PRICE_FILTER")),
    };
    let qty = match ins.parse_qty(qty.as_bytes()) {
        Ok(v) if v > 0 => v,
        _ => return Err(Answer::bad(-1013, "Filter failure: LOT_SIZE")),
    };
    let client_id = p("newClientOrderId").map(str::to_string);
    if let Some(c) = &client_id {
        if !valid_client_id(c) {
            return Err(Answer::bad(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'."));
        }
        if st.orders.iter().any(|o| o.open() && &o.client_id == c) {
            return Err(Answer::bad(-2010, "Duplicate order sent."));
        }
    }
    let resp = match p("newOrderRespType") {
        Some("ACK") => "ACK",
        Some("RESULT") => "RESULT",
        _ => "FULL",
    };
    Ok(NewReq { sym: i, side, typ, tif, px, qty, client_id, resp })
}

fn emit(st: &mut State, ev: Value) {
    let mut sent = 0;
    st.subs.retain(|(id, tx)| {
        let ok = tx.send(json!({ "subscriptionId": id, "event": ev }).to_string()).is_ok();
        sent += ok as u64;
        ok
    });
    st.stats.events += sent;
}

#[allow(clippy::too_many_arguments)]
fn exec_event(
    sh: &Shared,
    o: &Order,
    x: &str,
    last: Option<(Px, Qty, f64, &str, bool, u64)>,
    cancel_id: Option<&str>,
    now: i64,
) -> Value {
    let ins = &sh.cfg.instruments[o.sym];
    let (lpx, lq, n, na, m, t) = last.unwrap_or((0, 0, 0.0, "", false, 0));
    let (c, cc) = match cancel_id {
        Some(cid) => (cid.to_string(), o.client_id.clone()),
        None => (o.client_id.clone(), String::new()),
    };
    json!({
        "e": "executionReport", "E": now, "s": ins.symbol, "c": c,
        "S": if o.side == Side::Buy { "BUY" } else { "SELL" }, "o": o.typ, "f": o.tif,
        "q": fmt8(ins.qty_decimal(o.qty)), "p": fmt8(ins.price_decimal(o.px)),
        "P": "0.00000000", "F": "0.00000000", "g": -1, "C": cc, "x": x, "X": o.status, "r": "NONE",
        "i": o.order_id, "l": fmt8(ins.qty_decimal(lq)), "z": fmt8(ins.qty_decimal(o.executed)),
        "L": fmt8(ins.price_decimal(lpx)), "n": fmt_amount(n), "N": if na.is_empty() { Value::Null } else { Value::from(na) },
        "T": now, "t": if t == 0 { -1 } else { t as i64 }, "I": now, "w": o.open(), "m": m, "M": false,
        "O": o.time_ms, "Z": fmt_amount(o.cum_quote), "Y": fmt_amount(ins.px_f64(lpx) * ins.qty_f64(lq)),
        "Q": "0.00000000", "W": o.time_ms, "V": "NONE"
    })
}

fn account_event(sh: &Shared, st: &mut State, sym: usize, now: i64) {
    let (b, q) = sh.assets[sym].clone();
    let bal: Vec<Value> = [b, q]
        .iter()
        .map(|a| {
            let (f, l) = st.balances.get(a).copied().unwrap_or((0.0, 0.0));
            json!({ "a": a, "f": fmt_amount(f), "l": fmt_amount(l) })
        })
        .collect();
    emit(st, json!({ "e": "outboundAccountPosition", "E": now, "u": now, "B": bal }));
}

fn add(st: &mut State, asset: &str, free: f64, locked: f64) {
    let e = st.balances.entry(asset.to_string()).or_insert((0.0, 0.0));
    e.0 += free;
    e.1 += locked;
}

/// Executes `q` lots of order `k` at `px`; `maker`: the order was resting (its funds
/// were locked). Emits the TRADE event.
fn execute(sh: &Shared, st: &mut State, k: usize, px: Px, q: Qty, maker: bool) {
    let now = wall_ms() + st.offset_ms;
    let o = st.orders[k].clone();
    let ins = &sh.cfg.instruments[o.sym];
    let (base, quote) = sh.assets[o.sym].clone();
    let notional = ins.px_f64(px) * ins.qty_f64(q);
    let bps = if maker { sh.cfg.maker_bps } else { sh.cfg.taker_bps } * 1e-4;
    let (comm, comm_asset) = match o.side {
        Side::Buy => (ins.qty_f64(q) * bps, base.clone()),
        Side::Sell => (notional * bps, quote.clone()),
    };
    match (o.side, maker) {
        (Side::Buy, true) => {
            add(st, &quote, 0.0, -ins.px_f64(o.px) * ins.qty_f64(q));
            add(st, &base, ins.qty_f64(q) - comm, 0.0);
        }
        (Side::Buy, false) => {
            add(st, &quote, -notional, 0.0);
            add(st, &base, ins.qty_f64(q) - comm, 0.0);
        }
        (Side::Sell, true) => {
            add(st, &base, 0.0, -ins.qty_f64(q));
            add(st, &quote, notional - comm, 0.0);
        }
        (Side::Sell, false) => {
            add(st, &base, -ins.qty_f64(q), 0.0);
            add(st, &quote, notional - comm, 0.0);
        }
    }
    let trade_id = st.next_trade_id;
    st.next_trade_id += 1;
    let ord = &mut st.orders[k];
    ord.executed += q;
    ord.cum_quote += notional;
    ord.status = if ord.executed >= ord.qty { "FILLED" } else { "PARTIALLY_FILLED" };
    ord.update_ms = now;
    let o = ord.clone();
    let ev = exec_event(sh, &o, "TRADE", Some((px, q, comm, &comm_asset, maker, trade_id)), None, now);
    emit(st, ev);
    account_event(sh, st, o.sym, now);
}

fn order_json(sh: &Shared, o: &Order) -> Value {
    let ins = &sh.cfg.instruments[o.sym];
    json!({
        "symbol": ins.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
        "price": fmt8(ins.price_decimal(o.px)), "origQty": fmt8(ins.qty_decimal(o.qty)),
        "executedQty": fmt8(ins.qty_decimal(o.executed)), "cummulativeQuoteQty": fmt_amount(o.cum_quote),
        "status": o.status, "timeInForce": o.tif, "type": o.typ,
        "side": if o.side == Side::Buy { "BUY" } else { "SELL" }, "stopPrice": "0.00000000",
        "icebergQty": "0.00000000", "time": o.time_ms, "updateTime": o.update_ms, "isWorking": true,
        "workingTime": o.time_ms, "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE"
    })
}

/// Places a validated order: balance and crossing checks, taker fills, rest or
/// expire. The answer per `newOrderRespType`.
fn place(sh: &Shared, st: &mut State, n: NewReq, now: i64) -> Answer {
    let ins = sh.cfg.instruments[n.sym].clone();
    let (base, quote) = sh.assets[n.sym].clone();
    let need = match n.side {
        Side::Buy => (quote.clone(), ins.px_f64(n.px) * ins.qty_f64(n.qty)),
        Side::Sell => (base.clone(), ins.qty_f64(n.qty)),
    };
    if st.balances.get(&need.0).map_or(0.0, |b| b.0) + 1e-12 < need.1 {
        return Answer::bad(-2010, "Account has insufficient balance for requested action.");
    }
    let top = st.tops[n.sym];
    let cross = match n.side {
        Side::Buy => top.ask.filter(|&(p, _)| n.px >= p),
        Side::Sell => top.bid.filter(|&(p, _)| n.px <= p),
    };
    if cross.is_some() && n.typ == "LIMIT_MAKER" {
        return Answer::bad(-2010, "Order would immediately match and take.");
    }
    let order_id = st.next_order_id;
    st.next_order_id += 1;
    let client_id = n.client_id.unwrap_or_else(|| format!("mock{order_id}"));
    st.orders.push(Order {
        order_id,
        client_id,
        sym: n.sym,
        side: n.side,
        typ: n.typ,
        tif: n.tif,
        px: n.px,
        qty: n.qty,
        executed: 0,
        cum_quote: 0.0,
        status: "NEW",
        time_ms: now,
        update_ms: now,
    });
    st.stats.orders_placed += 1;
    bump(&mut st.orders_10s, now, 10_000, 1);
    bump(&mut st.orders_1d, now, 86_400_000, 1);
    let k = st.orders.len() - 1;
    let o = st.orders[k].clone();
    let ev = exec_event(sh, &o, "NEW", None, None, now);
    emit(st, ev);
    let mut fills = Vec::new();
    if let Some((lp, lq)) = cross {
        let q = lq.min(n.qty);
        let bps = sh.cfg.taker_bps * 1e-4;
        let comm = match n.side {
            Side::Buy => (ins.qty_f64(q) * bps, base.clone()),
            Side::Sell => (ins.px_f64(lp) * ins.qty_f64(q) * bps, quote.clone()),
        };
        execute(sh, st, k, lp, q, false);
        let tid = st.next_trade_id - 1;
        let top = &mut st.tops[n.sym];
        let lvl = if n.side == Side::Buy { &mut top.ask } else { &mut top.bid };
        *lvl = (lq > q).then_some((lp, lq - q));
        fills.push(json!({
            "price": fmt8(ins.price_decimal(lp)), "qty": fmt8(ins.qty_decimal(q)),
            "commission": fmt_amount(comm.0), "commissionAsset": comm.1, "tradeId": tid
        }));
    }
    let rem = n.qty - st.orders[k].executed;
    if rem > 0 {
        if n.tif == "IOC" || n.tif == "FOK" {
            st.orders[k].status = "EXPIRED";
            let o = st.orders[k].clone();
            let ev = exec_event(sh, &o, "EXPIRED", None, None, now);
            emit(st, ev);
        } else {
            match n.side {
                Side::Buy => add(st, &quote, -ins.px_f64(n.px) * ins.qty_f64(rem), ins.px_f64(n.px) * ins.qty_f64(rem)),
                Side::Sell => add(st, &base, -ins.qty_f64(rem), ins.qty_f64(rem)),
            }
            account_event(sh, st, n.sym, now);
        }
    }
    let o = &st.orders[k];
    let mut v = json!({ "symbol": ins.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id, "transactTime": now });
    if n.resp != "ACK" {
        let q = order_json(sh, o);
        for f in [
            "price",
            "origQty",
            "executedQty",
            "cummulativeQuoteQty",
            "status",
            "timeInForce",
            "type",
            "side",
            "workingTime",
            "selfTradePreventionMode",
        ] {
            v[f] = q[f].clone();
        }
    }
    if n.resp == "FULL" {
        v["fills"] = Value::Array(fills);
    }
    Answer::ok(v)
}

/// The order named by `origClientOrderId` (latest with that id) or `orderId`.
fn find<'a>(sh: &Shared, st: &State, p: &impl Fn(&str) -> Option<&'a str>) -> Result<usize, Answer> {
    let Some(sym) = p("symbol").and_then(|s| sh.cfg.instruments.iter().position(|i| i.symbol == s)) else {
        return Err(Answer::bad(-1121, "Invalid symbol."));
    };
    let k = if let Some(c) = p("origClientOrderId") {
        st.orders.iter().rposition(|o| o.sym == sym && o.client_id == c)
    } else if let Some(id) = p("orderId").and_then(|s| s.parse::<u64>().ok()) {
        st.orders.iter().position(|o| o.sym == sym && o.order_id == id)
    } else {
        return Err(Answer::bad(
            -1102,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        ));
    };
    k.ok_or_else(|| Answer::bad(-2013, "Order does not exist."))
}

/// Cancels open order `k`; the cancel answer (Binance's format).
fn cancel(sh: &Shared, st: &mut State, k: usize, cancel_id: Option<&str>, now: i64) -> Value {
    let ins = sh.cfg.instruments[st.orders[k].sym].clone();
    let (base, quote) = sh.assets[st.orders[k].sym].clone();
    let o = st.orders[k].clone();
    let rem = o.qty - o.executed;
    match o.side {
        Side::Buy => add(st, &quote, ins.px_f64(o.px) * ins.qty_f64(rem), -ins.px_f64(o.px) * ins.qty_f64(rem)),
        Side::Sell => add(st, &base, ins.qty_f64(rem), -ins.qty_f64(rem)),
    }
    st.orders[k].status = "CANCELED";
    st.orders[k].update_ms = now;
    let cid = match cancel_id {
        Some(c) => c.to_string(),
        None => {
            st.next_cancel += 1;
            format!("mockcancel{}", st.next_cancel)
        }
    };
    let o = st.orders[k].clone();
    let ev = exec_event(sh, &o, "CANCELED", None, Some(&cid), now);
    emit(st, ev);
    account_event(sh, st, o.sym, now);
    let q = order_json(sh, &o);
    json!({
        "symbol": ins.symbol, "origClientOrderId": o.client_id, "orderId": o.order_id, "orderListId": -1,
        "clientOrderId": cid, "transactTime": now, "price": q["price"], "origQty": q["origQty"],
        "executedQty": q["executedQty"], "cummulativeQuoteQty": q["cummulativeQuoteQty"], "status": "CANCELED",
        "timeInForce": o.tif, "type": o.typ, "side": q["side"], "selfTradePreventionMode": "NONE"
    })
}

fn cancel_replace<'a>(sh: &Shared, st: &mut State, p: &impl Fn(&str) -> Option<&'a str>, now: i64) -> Answer {
    if p("cancelReplaceMode") != Some("STOP_ON_FAILURE") {
        return Answer::bad(
            -1102,
            "Mandatory parameter 'cancelReplaceMode' was not sent, was empty/null, or malformed.",
        );
    }
    // Filters are evaluated before anything is cancelled.
    let n = match validate_new(sh, st, p) {
        Ok(n) => n,
        Err(a) => return a,
    };
    let orig = |k: &str| match k {
        "origClientOrderId" => p("cancelOrigClientOrderId"),
        "orderId" => p("cancelOrderId"),
        other => p(other),
    };
    let k = match find(sh, st, &orig) {
        Ok(k) if st.orders[k].open() => k,
        _ => {
            return Answer::bad_data(
                -2022,
                "Order cancel-replace failed.",
                json!({
                    "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                    "cancelResponse": { "code": -2011, "msg": "Unknown order sent." }, "newOrderResponse": null
                }),
            )
        }
    };
    let c = cancel(sh, st, k, p("cancelNewClientOrderId"), now);
    let a = place(sh, st, n, now);
    if a.status == 200 {
        Answer::ok(
            json!({ "cancelResult": "SUCCESS", "newOrderResult": "SUCCESS", "cancelResponse": c, "newOrderResponse": a.body }),
        )
    } else {
        Answer {
            status: 409,
            ..Answer::bad_data(
                -2021,
                "Order cancel-replace partially failed.",
                json!({ "cancelResult": "SUCCESS", "newOrderResult": "FAILURE", "cancelResponse": c, "newOrderResponse": a.body }),
            )
        }
    }
}

impl Answer {
    fn bad_data(code: i32, msg: &str, data: Value) -> Self {
        Answer::bad_status(400, json!({ "code": code, "msg": msg, "data": data }))
    }
    fn bad_status(status: u16, body: Value) -> Self {
        Answer { status, ..Answer::ok(body) }
    }
}

/// One WebSocket API session: answers requests, pushes the events of its
/// subscriptions.
fn ws_session(s: TcpStream, req: Request, rest: Vec<u8>, sh: &Shared) -> io::Result<()> {
    // Re-create the upgrade request for tungstenite.
    let mut pre = format!(
        "{} {}{} HTTP/1.1\r\n",
        req.method,
        req.path,
        if req.query.is_empty() { String::new() } else { format!("?{}", req.query) }
    );
    for (k, v) in &req.headers {
        pre.push_str(&format!("{k}: {v}\r\n"));
    }
    pre.push_str("\r\n");
    let mut pre = pre.into_bytes();
    pre.extend_from_slice(&rest);
    let inner = s.try_clone()?;
    inner.set_read_timeout(Some(Duration::from_millis(2)))?;
    let mut ws = tungstenite::accept(Prefixed { pre, pos: 0, inner }).map_err(|e| io::Error::other(e.to_string()))?;
    let kick0 = sh.kick.load(Ordering::Acquire);
    lock(&sh.state).stats.ws_sessions += 1;
    let (tx, rx): (Sender<String>, Receiver<String>) = channel();
    let mut sub_ids: Vec<u64> = Vec::new();
    let mut held: Vec<String> = Vec::new();
    let mut seen = 0u64;
    // The API key this session is logged on with (`session.logon`), if any.
    let mut logon: Option<String> = None;
    loop {
        if sh.stop.load(Ordering::Acquire) || sh.kick.load(Ordering::Acquire) != kick0 {
            let _ = s.shutdown(Shutdown::Both);
            return Ok(());
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                seen += 1;
                match ws_request(sh, t.as_ref(), &tx, &mut sub_ids, &mut logon) {
                    WsReply::Now(v) => held.push(v.to_string()),
                    WsReply::After(ms, v) => {
                        std::thread::sleep(Duration::from_millis(ms));
                        held.push(v.to_string());
                    }
                    WsReply::Drop(ms) => {
                        std::thread::sleep(Duration::from_millis(ms));
                        let _ = s.shutdown(Shutdown::Both);
                        return Ok(());
                    }
                }
                if seen >= sh.hold.load(Ordering::Acquire) {
                    for r in held.drain(..) {
                        ws.send(Message::text(r)).map_err(|e| io::Error::other(e.to_string()))?;
                    }
                }
            }
            Ok(Message::Close(_)) => return Ok(()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => return Ok(()),
        }
        while let Ok(ev) = rx.try_recv() {
            ws.send(Message::text(ev)).map_err(|e| io::Error::other(e.to_string()))?;
        }
        let _ = ws.flush();
    }
}

/// What a WebSocket API session does with one request.
enum WsReply {
    /// Answer (in order; possibly held, see [`MockHandle::hold_ws_answers`]).
    Now(Value),
    /// Answer after a delay, ms (the request was executed).
    After(u64, Value),
    /// Close the connection after a delay, ms, without answering (not executed).
    Drop(u64),
}

/// The REST route each WebSocket API trading method shares its semantics with.
fn ws_route(method: &str) -> Option<(&'static str, &'static str)> {
    Some(match method {
        "order.place" => ("POST", "/api/v3/order"),
        "order.cancel" => ("DELETE", "/api/v3/order"),
        "order.cancelReplace" => ("POST", "/api/v3/order/cancelReplace"),
        "order.status" => ("GET", "/api/v3/order"),
        "openOrders.status" => ("GET", "/api/v3/openOrders"),
        "openOrders.cancelAll" => ("DELETE", "/api/v3/openOrders"),
        "account.status" => ("GET", "/api/v3/account"),
        // Not signed: no key, signature or timestamp.
        "time" => ("GET", "/api/v3/time"),
        _ => return None,
    })
}

/// A signed WebSocket API trading request: the key, signature (sorted-parameter payload)
/// and timing checks, the fault queue (filter: the WS method name or its REST route),
/// then the REST semantics ([`dispatch`]); the answer in the WS API shape
/// `{id, status, result | error, rateLimits}`. `time` is the one unsigned method
/// here: no checks, `{serverTime}` (or the time of a [`Fault::ServerTime`]).
fn ws_trade(sh: &Shared, id: &Value, method: &str, params: &serde_json::Map<String, Value>, logon: bool) -> WsReply {
    let Some((verb, path)) = ws_route(method) else {
        return WsReply::Now(json!({ "id": id, "status": 400, "error": { "code": -1100, "msg": "Unknown method." } }));
    };
    let kv = kv_of(params);
    let mut st = lock(&sh.state);
    st.stats.requests += 1;
    st.log.push(format!("WS {method}"));
    let now = wall_ms() + st.offset_ms;
    let used = bump(&mut st.weight, now, 60_000, weight_of(verb, path));
    let limits = json!([{ "rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": used }]);
    let out = |status: u16, body: Value| {
        if status == 200 {
            json!({ "id": id, "status": 200, "result": body, "rateLimits": limits })
        } else {
            json!({ "id": id, "status": status, "error": body, "rateLimits": limits })
        }
    };
    let key = format!("{verb} {path}");
    if let Some(pos) =
        st.faults.iter().position(|(_, f)| f.as_deref().is_none_or(|f| f == method || f == path || f == key))
    {
        let (fault, _) = st.faults.remove(pos).unwrap_or((Fault::Timestamp, None));
        st.stats.faults += 1;
        match fault {
            Fault::Http429 { retry_after_s } | Fault::Http418 { retry_after_s } => {
                let (status, msg) = if matches!(fault, Fault::Http429 { .. }) {
                    (429, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.")
                } else {
                    (418, "Way too much request weight used; IP banned. Please use WebSocket Streams for live updates to avoid bans.")
                };
                let retry = now + i64::from(retry_after_s) * 1000;
                return WsReply::Now(out(
                    status,
                    json!({ "code": -1003, "msg": msg, "data": { "serverTime": now, "retryAfter": retry } }),
                ));
            }
            Fault::Timestamp => {
                return WsReply::Now(out(400, err(-1021, "Timestamp for this request is outside of the recvWindow.")))
            }
            Fault::Lost { ms } => return WsReply::Drop(ms),
            Fault::Echo => {
                let msg = format!("Illegal characters found in a parameter. Request: {method} {params:?}");
                return WsReply::Now(out(400, err(-1100, &msg)));
            }
            Fault::SlowAnswer { ms } => {
                return match ws_checked(sh, &mut st, &kv, now, logon) {
                    Err(a) => WsReply::After(ms, out(a.status, a.body)),
                    Ok(p) => {
                        let a = dispatch(sh, &mut st, verb, path, &p, now);
                        WsReply::After(ms, out(a.status, a.body))
                    }
                };
            }
            Fault::ServerTime { ms } if method == "time" => {
                return WsReply::Now(out(200, json!({ "serverTime": ms })));
            }
            Fault::ServerTime { .. } => {}
        }
    }
    if method == "time" {
        return WsReply::Now(out(200, json!({ "serverTime": now })));
    }
    match ws_checked(sh, &mut st, &kv, now, logon) {
        Err(a) => WsReply::Now(out(a.status, a.body)),
        Ok(p) => {
            let a = dispatch(sh, &mut st, verb, path, &p, now);
            WsReply::Now(out(a.status, a.body))
        }
    }
}

/// Key, signature and timing checks of a WebSocket API request; the parameters but
/// `apiKey` and `signature`. On a session logged on (`logon`), a request without a
/// signature is the session's: only its timing is checked.
fn ws_checked(
    sh: &Shared,
    st: &mut State,
    kv: &[(&str, String)],
    now: i64,
    logon: bool,
) -> Result<Vec<(String, String)>, Answer> {
    let get = |k: &str| kv.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    if logon && get("signature").is_none() {
        check_time(st, get("timestamp").as_deref(), get("recvWindow").as_deref(), now)?;
        return Ok(kv.iter().filter(|(k, _)| *k != "apiKey").map(|(k, v)| (k.to_string(), v.clone())).collect());
    }
    if get("apiKey").as_deref() != Some(sh.cfg.creds.api_key()) {
        st.stats.auth_failures += 1;
        return Err(Answer { status: 401, ..Answer::bad(-2015, "Invalid API-key, IP, or permissions for action.") });
    }
    let Some(sig) = get("signature") else {
        st.stats.auth_failures += 1;
        return Err(Answer::bad(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."));
    };
    if !sh.cfg.creds.verify(ws_payload(kv).as_bytes(), &sig) {
        st.stats.auth_failures += 1;
        return Err(Answer::bad(-1022, "Signature for this request is not valid."));
    }
    check_time(st, get("timestamp").as_deref(), get("recvWindow").as_deref(), now)?;
    Ok(kv
        .iter()
        .filter(|(k, _)| *k != "apiKey" && *k != "signature")
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect())
}

fn ws_request(
    sh: &Shared,
    text: &str,
    tx: &Sender<String>,
    sub_ids: &mut Vec<u64>,
    logon: &mut Option<String>,
) -> WsReply {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return WsReply::Now(
            json!({ "id": null, "status": 400, "error": { "code": -1102, "msg": "Malformed request." } }),
        );
    };
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let method = v.get("method").and_then(Value::as_str).unwrap_or("");
    if ws_route(method).is_some() {
        let empty = serde_json::Map::new();
        let params = v.get("params").and_then(Value::as_object).unwrap_or(&empty);
        return ws_trade(sh, &id, method, params, logon.is_some());
    }
    WsReply::Now(ws_session_request(sh, &id, &v, tx, sub_ids, logon))
}

/// A WebSocket API request's parameters as `(name, text)` (numbers as their digits).
fn kv_of(params: &serde_json::Map<String, Value>) -> Vec<(&str, String)> {
    params.iter().map(|(k, v)| (k.as_str(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect()
}

/// A new user data stream subscription of this session: its answer.
fn ws_subscribe(st: &mut State, id: &Value, tx: &Sender<String>, sub_ids: &mut Vec<u64>) -> Value {
    let sub = st.next_sub;
    st.next_sub += 1;
    st.subs.push((sub, tx.clone()));
    st.stats.subscriptions += 1;
    sub_ids.push(sub);
    json!({ "id": id, "status": 200, "result": { "subscriptionId": sub },
        "rateLimits": [{ "rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 2 }] })
}

fn ws_session_request(
    sh: &Shared,
    id: &Value,
    v: &Value,
    tx: &Sender<String>,
    sub_ids: &mut Vec<u64>,
    logon: &mut Option<String>,
) -> Value {
    let fail = |code: i32, msg: &str| json!({ "id": id, "status": 400, "error": { "code": code, "msg": msg } });
    match v.get("method").and_then(Value::as_str) {
        Some("ping") => json!({ "id": id, "status": 200, "result": {} }),
        // Ed25519 only: apiKey, timestamp (recvWindow), signature = base64 Ed25519 of
        // the sorted parameters. Later requests of the session may omit apiKey and
        // signature.
        Some("session.logon") => {
            let empty = serde_json::Map::new();
            let kv = kv_of(v.get("params").and_then(Value::as_object).unwrap_or(&empty));
            let get = |k: &str| kv.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
            let mut st = lock(&sh.state);
            let Some((key, public)) = st.ed25519.clone() else {
                st.stats.auth_failures += 1;
                return fail(-2015, "Invalid API-key, IP, or permissions for action.");
            };
            if get("apiKey").as_deref() != Some(key.as_str()) {
                st.stats.auth_failures += 1;
                return fail(-2015, "Invalid API-key, IP, or permissions for action.");
            }
            let sig = get("signature").unwrap_or_default();
            if !crate::gateway::sign::ed25519_verify(&public, ws_payload(&kv).as_bytes(), &sig) {
                st.stats.auth_failures += 1;
                return fail(-1022, "Signature for this request is not valid.");
            }
            let now = wall_ms() + st.offset_ms;
            if let Err(a) = check_time(&mut st, get("timestamp").as_deref(), get("recvWindow").as_deref(), now) {
                return json!({ "id": id, "status": 400, "error": a.body });
            }
            st.stats.logons += 1;
            *logon = Some(key.clone());
            json!({ "id": id, "status": 200, "result": { "apiKey": key, "authorizedSince": now,
                "connectedSince": now, "returnRateLimits": true, "serverTime": now, "userDataStream": false } })
        }
        Some("userDataStream.subscribe") => {
            let mut st = lock(&sh.state);
            if logon.is_none() {
                st.stats.auth_failures += 1;
                return fail(-2015, "Invalid API-key, IP, or permissions for action.");
            }
            ws_subscribe(&mut st, id, tx, sub_ids)
        }
        Some("userDataStream.subscribe.signature") => {
            let empty = serde_json::Map::new();
            let kv = kv_of(v.get("params").and_then(Value::as_object).unwrap_or(&empty));
            let get = |k: &str| kv.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
            let mut st = lock(&sh.state);
            if get("apiKey").as_deref() != Some(sh.cfg.creds.api_key()) {
                st.stats.auth_failures += 1;
                return fail(-2015, "Invalid API-key, IP, or permissions for action.");
            }
            let Some(sig) = get("signature") else {
                st.stats.auth_failures += 1;
                return fail(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.");
            };
            if !sh.cfg.creds.verify(ws_payload(&kv).as_bytes(), &sig) {
                st.stats.auth_failures += 1;
                return fail(-1022, "Signature for this request is not valid.");
            }
            let now = wall_ms() + st.offset_ms;
            if let Err(a) = check_time(&mut st, get("timestamp").as_deref(), get("recvWindow").as_deref(), now) {
                return json!({ "id": id, "status": 400, "error": a.body });
            }
            ws_subscribe(&mut st, id, tx, sub_ids)
        }
        _ => fail(-1100, "Unknown method."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt8_pads() {
        assert_eq!(fmt8("0.01".parse().unwrap()), "0.01000000");
        assert_eq!(fmt8("7".parse().unwrap()), "7.00000000");
        assert_eq!(fmt8("0.123456789".parse().unwrap()), "0.123456789");
    }

    #[test]
    fn fixed_intervals() {
        let mut c = (0, 0);
        assert_eq!(bump(&mut c, 60_500, 60_000, 3), 3);
        assert_eq!(bump(&mut c, 119_999, 60_000, 1), 4);
        assert_eq!(bump(&mut c, 120_000, 60_000, 1), 1);
    }
}
