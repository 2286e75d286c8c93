//! A non-blocking WebSocket client for a busy-polling hot thread.
//!
//! No async runtime and no threads: the owner runs a [`mio::Poll`] (usually with a zero
//! timeout), hands every event for this client's token to [`WsClient::on_event`], and
//! calls [`WsClient::poll`] once per spin. `poll` never blocks and never panics; every
//! failure is counted in [`WsStats`], the connection is dropped and a reconnect is
//! scheduled with exponential backoff and jitter.
//!
//! # State machine
//!
//! ```text
//! Disconnected(until) --now >= until--> Connecting (mio TcpStream::connect)
//! Connecting --WRITABLE, take_error() None, peer_addr() Ok--> Handshaking
//! Handshaking (TLS via rustls, then the HTTP upgrade; resumed on each poll) --> Open
//! Open --close frame / I/O error / EOF--> Disconnected(now + backoff)   (PeerEnd says which)
//! Open --max_lifetime--> Closing (we sent Close) --ack or timeout--> Disconnected(now)
//! Connecting | Handshaking --connect_timeout--> Disconnected(now + backoff)
//! ```
//!
//! On every transition to `Open` the configured subscribe messages are sent, the
//! connection generation ([`WsClient::generation`]) is bumped and
//! [`WsClient::connected_since_last_poll`] is true until the next `poll`: the caller
//! must resync its books then, since messages were lost while disconnected.
//!
//! # Readiness contract
//!
//! mio is edge-triggered. `poll` reads only after a READABLE event (or right after the
//! handshake, since tungstenite may already hold frames read together with the HTTP
//! response) and then reads until `WouldBlock`, because tungstenite and rustls buffer
//! several messages at once; but one `poll` delivers at most
//! [`WsConfig::max_messages_per_poll`] messages and then returns with the readiness
//! kept, so the next `poll` goes on reading without waiting for a new event. Without
//! that bound a caller slower than its peer would stay inside one `poll` until the peer
//! stopped sending, and its other work (snapshot requests and responses, timers, order
//! reports) would starve meanwhile. Pending writes (pongs, subscribes) are flushed after
//! each read burst and on WRITABLE. Connecting and handshaking are retried on every poll
//! (cheap and short-lived), so a lost event cannot stall them.
//!
//! # Syscalls and allocations
//!
//! * DNS resolution (`std::net::ToSocketAddrs` by default, which may block for
//!   seconds) never runs on the polling thread. A host that is an IP literal needs none.
//!   Otherwise [`WsClient::new`] starts a resolver thread for the host and asks it at
//!   once; its answers come back through an SPSC ring ([`crate::ring`]) as a fixed
//!   array of at most [`MAX_ADDRS`] addresses, which the client caches. A connection
//!   attempt uses the cached addresses (rotating through them on consecutive
//!   failures); a failed attempt asks for a fresh resolution in the background. With
//!   no address yet, `poll` just returns and looks again on the next call.
//! * How the peer ended the last connection is kept ([`WsClient::peer_end`]): a Close
//!   frame, an orderly EOF (FIN without a Close frame), or a reset / other failure,
//!   so that a caller treating the end of a connection as the end of its data can tell
//!   a clean end from a network failure.
//! * Connect/handshake allocate freely (request, response, rustls connection, the
//!   tungstenite buffers): off the steady-state path.
//! * Steady state: tungstenite's input buffer (a `BytesMut` of `read_buffer_size`) is
//!   allocated once per connection and reused. It zero-fills up to `read_buffer_size`
//!   before each socket read, hence the small default (8 KiB). tungstenite 0.29 splits
//!   each payload out of that buffer as `Bytes` (no copy); the buffer reclaims the space
//!   once the `Message` is dropped, which `poll` does right after the callback. Measured
//!   in `tests/ws_client.rs` (counting allocator, 20k 100-byte text messages after
//!   warm-up): **0 allocations per message on `ws://`** and **~1.0 per message on
//!   `wss://`**, the latter being rustls' buffered API allocating a `Vec` per received TLS
//!   record (one record per message there). Messages larger than the buffer, or a peer
//!   writing many frames per record, change these numbers. This module itself allocates
//!   nothing per message.
//! * [`WsClient::send_text`] allocates the message (subscribes/auth only).
//! * Errors are formatted into [`WsError`] only on the failure path.
//!
//! # Binance specifics
//!
//! Binance pings every 20 s and drops the connection without a pong within a minute:
//! tungstenite queues the pong when it reads the ping, and `poll` flushes it in the
//! same call. Binance closes connections after 24 h: `max_lifetime` (default 23 h 30 min)
//! closes and reopens the connection at a time of our choosing
//! ([`WsStats::planned_reconnects`]).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arrayvec::ArrayVec;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use thiserror::Error;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::ring::{ring, Consumer, Full, Producer};
use crate::types::{Ts, NS_PER_MS};

/// Most addresses of one host the client keeps.
pub const MAX_ADDRS: usize = 8;

/// A host name resolver: `(host, port)` to its addresses. Runs on the resolver thread,
/// never on the polling thread; may block.
pub type ResolveFn = fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

/// The system resolver (`getaddrinfo` through [`ToSocketAddrs`]).
pub fn system_resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// How the peer ended the last connection that was open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEnd {
    /// It sent a WebSocket Close frame.
    Close,
    /// It closed the TCP connection (FIN) without a Close frame.
    Eof,
    /// A reset, another I/O error or a protocol error.
    Error,
}

/// Errors of the WebSocket client. Failures of a live connection are not returned by
/// [`WsClient::poll`]; they are counted and the last one is kept in
/// [`WsClient::last_error`].
#[derive(Debug, Error)]
pub enum WsError {
    /// The URL is not `ws://host[:port][/path]` or `wss://...`.
    #[error("bad url: {0}")]
    Url(String),
    /// Building the TLS configuration failed (bad extra root, provider).
    #[error("tls config: {0}")]
    TlsConfig(String),
    /// The host did not resolve to any address.
    #[error("resolve {host}: {msg}")]
    Resolve {
        /// Host name from the URL.
        host: String,
        /// Resolver error.
        msg: String,
    },
    /// Socket error (connect, register, read, write).
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// TLS error while creating the connection.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// WebSocket handshake or protocol error.
    #[error("websocket: {0}")]
    Ws(#[from] tungstenite::Error),
    /// Connect + handshake, or the closing handshake, took too long.
    #[error("timeout while {0}")]
    Timeout(&'static str),
    /// The peer closed the connection.
    #[error("closed by peer")]
    Closed,
    /// `send_text` while not open.
    #[error("not open")]
    NotOpen,
}

/// What made the last connection fail, as a plain value: the [`WsError`]'s variant and
/// its detail (the OS error number of an I/O error, the phase of a timeout), kept in
/// [`WsStats::last_failure`] so that the polling thread can publish it for a monitor
/// without formatting or allocating, and packed into one word for that
/// ([`Failure::to_word`]). [`Display`](std::fmt::Display) names it (the OS error's text
/// for I/O), on the monitor's thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Failure {
    /// No connection has failed yet.
    #[default]
    None,
    /// [`WsError::Url`].
    Url,
    /// [`WsError::TlsConfig`].
    TlsConfig,
    /// [`WsError::Resolve`].
    Resolve,
    /// [`WsError::Io`], with the OS error number (0 when the error has none).
    Io(i32),
    /// [`WsError::Tls`].
    Tls,
    /// [`WsError::Ws`]: the WebSocket handshake or protocol.
    WebSocket,
    /// [`WsError::Timeout`], with its phase.
    Timeout(TimeoutPhase),
    /// [`WsError::Closed`].
    Closed,
    /// [`WsError::NotOpen`].
    NotOpen,
}

/// The phase a [`WsError::Timeout`] ran out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// TCP connect.
    Connecting,
    /// TLS and WebSocket handshakes.
    Handshaking,
    /// The closing handshake.
    Closing,
}

impl TimeoutPhase {
    const ALL: [TimeoutPhase; 3] = [TimeoutPhase::Connecting, TimeoutPhase::Handshaking, TimeoutPhase::Closing];

    /// The word [`WsError::Timeout`] carries.
    pub const fn name(self) -> &'static str {
        match self {
            TimeoutPhase::Connecting => "connecting",
            TimeoutPhase::Handshaking => "handshaking",
            TimeoutPhase::Closing => "closing",
        }
    }
}

impl Failure {
    /// The failure `e` is.
    pub fn of(e: &WsError) -> Failure {
        match e {
            WsError::Url(_) => Failure::Url,
            WsError::TlsConfig(_) => Failure::TlsConfig,
            WsError::Resolve { .. } => Failure::Resolve,
            WsError::Io(io) => Failure::Io(io.raw_os_error().unwrap_or(0)),
            WsError::Tls(_) => Failure::Tls,
            WsError::Ws(tungstenite::Error::Io(io)) => Failure::Io(io.raw_os_error().unwrap_or(0)),
            WsError::Ws(_) => Failure::WebSocket,
            WsError::Timeout(phase) => Failure::Timeout(
                TimeoutPhase::ALL.into_iter().find(|p| p.name() == *phase).unwrap_or(TimeoutPhase::Connecting),
            ),
            WsError::Closed => Failure::Closed,
            WsError::NotOpen => Failure::NotOpen,
        }
    }

    /// One word: the variant in the high 32 bits, its detail in the low 32.
    pub fn to_word(self) -> u64 {
        let (tag, detail): (u64, u32) = match self {
            Failure::None => (0, 0),
            Failure::Url => (1, 0),
            Failure::TlsConfig => (2, 0),
            Failure::Resolve => (3, 0),
            Failure::Io(errno) => (4, errno as u32),
            Failure::Tls => (5, 0),
            Failure::WebSocket => (6, 0),
            Failure::Timeout(p) => (7, p as u32),
            Failure::Closed => (8, 0),
            Failure::NotOpen => (9, 0),
        };
        tag << 32 | u64::from(detail)
    }

    /// The inverse of [`Failure::to_word`]; a word no failure packs to reads as `None`.
    pub fn from_word(w: u64) -> Failure {
        let detail = w as u32;
        match w >> 32 {
            1 => Failure::Url,
            2 => Failure::TlsConfig,
            3 => Failure::Resolve,
            4 => Failure::Io(detail as i32),
            5 => Failure::Tls,
            6 => Failure::WebSocket,
            7 => TimeoutPhase::ALL.get(detail as usize).map_or(Failure::None, |&p| Failure::Timeout(p)),
            8 => Failure::Closed,
            9 => Failure::NotOpen,
            _ => Failure::None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Failure::None => f.write_str("none"),
            Failure::Url => f.write_str("bad url"),
            Failure::TlsConfig => f.write_str("tls config"),
            Failure::Resolve => f.write_str("the host did not resolve"),
            Failure::Io(0) => f.write_str("io"),
            Failure::Io(errno) => write!(f, "io: {}", io::Error::from_raw_os_error(errno)),
            Failure::Tls => f.write_str("tls"),
            Failure::WebSocket => f.write_str("websocket handshake or protocol"),
            Failure::Timeout(p) => write!(f, "timeout while {}", p.name()),
            Failure::Closed => f.write_str("closed by peer"),
            Failure::NotOpen => f.write_str("not open"),
        }
    }
}

/// Client configuration. Durations are milliseconds.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// `ws://host[:port][/path][?query]` or `wss://...`.
    pub url: String,
    /// tungstenite's read chunk size; zero-filled before each socket read.
    pub read_buffer_size: usize,
    /// First reconnect delay after a failure.
    pub backoff_min_ms: u64,
    /// Cap of the exponential backoff.
    pub backoff_max_ms: u64,
    /// Jitter fraction in `[0, 1]`: the delay is drawn uniformly from
    /// `[d * (1 - jitter), d]`.
    pub jitter: f64,
    /// Planned reconnect after this long open (Binance drops at 24 h). 0 disables.
    pub max_lifetime_ms: u64,
    /// Limit for TCP connect + TLS + WebSocket handshake, and for the closing handshake.
    pub connect_timeout_ms: u64,
    /// Text messages sent after every (re)connect, in order (subscriptions, auth).
    pub subscribe: Vec<String>,
    /// Most messages one [`WsClient::poll`] delivers (at least 1); the rest wait for the
    /// next `poll` (see the module docs, readiness contract).
    pub max_messages_per_poll: usize,
    /// Resolves the URL's host (not an IP literal) on the resolver thread.
    pub resolve: ResolveFn,
}

impl WsConfig {
    /// Defaults for `url`: 8 KiB reads, backoff 100 ms .. 30 s with 30 % jitter,
    /// lifetime 23 h 30 min, 10 s connect timeout, no subscribe messages, at most 256
    /// messages per poll.
    pub fn new(url: impl Into<String>) -> Self {
        WsConfig {
            url: url.into(),
            read_buffer_size: 8 * 1024,
            backoff_min_ms: 100,
            backoff_max_ms: 30_000,
            jitter: 0.3,
            max_lifetime_ms: (23 * 60 + 30) * 60 * 1000,
            connect_timeout_ms: 10_000,
            subscribe: Vec::new(),
            max_messages_per_poll: 256,
            resolve: system_resolve,
        }
    }
}

/// Builds the rustls client configuration once: webpki roots (Mozilla's set), plus
/// `extra_roots` (DER, e.g. a test CA), certificate verification on, ring provider.
pub fn tls_config(extra_roots: &[CertificateDer<'_>]) -> Result<Arc<ClientConfig>, WsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in extra_roots {
        roots.add(der.clone().into_owned()).map_err(|e| WsError::TlsConfig(e.to_string()))?;
    }
    // Explicit provider: `ClientConfig::builder()` panics if several providers are
    // compiled in by other dependencies.
    let cfg = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| WsError::TlsConfig(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The transport under tungstenite: plain TCP or rustls over TCP.
#[derive(Debug)]
pub enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`. Boxed: the rustls connection is large.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The socket, for (de)registration.
    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &mut s.sock,
        }
    }
}

impl Read for Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Public view of the connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsState {
    /// No connection; the next attempt starts at `until` (ns).
    Disconnected {
        /// Time of the next connection attempt.
        until: Ts,
    },
    /// TCP connect in progress.
    Connecting,
    /// TLS and/or WebSocket upgrade in progress.
    Handshaking,
    /// Open: messages flow.
    Open,
    /// A close frame was sent or received; waiting for the peer to finish.
    Closing,
}

/// Counters, monotonic over the client's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Connection attempts started (TCP connect issued).
    pub attempts: u64,
    /// Connections that reached `Open`.
    pub connects: u64,
    /// `Open` reached again after a previous connection (`connects - 1` once started).
    pub reconnects: u64,
    /// Open connections lost or closed, for any reason (planned ones included).
    pub disconnects: u64,
    /// Pings received (each answered by a pong).
    pub pings: u64,
    /// Text and binary messages handed to the callback.
    pub messages: u64,
    /// Payload bytes handed to the callback.
    pub bytes: u64,
    /// Closes initiated because of `max_lifetime_ms`.
    pub planned_reconnects: u64,
    /// Failures: connect, TLS, handshake, I/O, protocol, timeouts, peer closes.
    pub errors: u64,
    /// What the last failure was ([`WsClient::last_error`] has its whole message).
    pub last_failure: Failure,
}

type Mid = MidHandshake<ClientHandshake<Stream>>;

enum Conn {
    Idle { until: Ts },
    Connecting { sock: Option<TcpStream>, deadline: Ts },
    Handshaking { mid: Option<Mid>, deadline: Ts },
    Open { ws: WebSocket<Stream>, since: Ts, closing: Option<Closing> },
}

#[derive(Clone, Copy)]
struct Closing {
    deadline: Ts,
    planned: bool,
}

/// How a connection ended, for counting and backoff.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Failure: count an error, back off.
    Failed,
    /// Closed by the peer after being open: count an error, back off.
    PeerClosed,
    /// Our planned lifetime close: reconnect immediately.
    Planned,
}

/// Parsed `ws[s]://host[:port]/path`.
#[derive(Debug, Clone)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
}

fn parse_url(url: &str) -> Result<Target, WsError> {
    let bad = || WsError::Url(url.to_owned());
    let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        // [v6]:port
        let close = r.find(']').ok_or_else(bad)?;
        let host = &r[..close];
        let after = &r[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, default_port),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Target { tls, host: host.to_owned(), port })
}

/// Tiny xorshift64* PRNG for the backoff jitter.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// What the resolver thread answers: the addresses, or the resolver's error text.
type Resolved = Result<ArrayVec<SocketAddr, MAX_ADDRS>, String>;

/// The resolver thread of one host and its two rings. The thread ends when the client
/// drops its request ring; it is not joined (a `getaddrinfo` call in progress may take
/// seconds, and nobody waits for it).
struct Resolver {
    requests: Producer<()>,
    answers: Consumer<Resolved>,
    /// A request is out, its answer not yet taken.
    pending: bool,
    _thread: JoinHandle<()>,
}

impl Resolver {
    fn spawn(host: String, port: u16, resolve: ResolveFn) -> io::Result<Resolver> {
        let (requests, mut rx) = ring::<()>(2);
        let (mut tx, answers) = ring::<Resolved>(2);
        let thread = std::thread::Builder::new().name("ws-resolve".into()).spawn(move || loop {
            if rx.pop().is_none() {
                if rx.is_abandoned() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let mut answer: Resolved = match resolve(&host, port) {
                Ok(all) => Ok(all.into_iter().take(MAX_ADDRS).collect()),
                Err(e) => Err(e.to_string()),
            };
            while let Err(Full(back)) = tx.push(answer) {
                if tx.is_abandoned() {
                    return;
                }
                answer = back;
                std::thread::sleep(Duration::from_millis(2));
            }
        })?;
        Ok(Resolver { requests, answers, pending: false, _thread: thread })
    }

    /// Asks for a resolution unless one is already out. Never blocks.
    #[inline]
    fn request(&mut self) {
        if !self.pending && self.requests.push(()).is_ok() {
            self.pending = true;
        }
    }

    /// The newest answer, if one arrived.
    #[inline]
    fn take(&mut self) -> Option<Resolved> {
        let mut last = None;
        while let Some(a) = self.answers.pop() {
            self.pending = false;
            last = Some(a);
        }
        last
    }
}

/// The client. See the module docs for the state machine and the readiness contract.
pub struct WsClient {
    cfg: WsConfig,
    target: Target,
    server_name: Option<ServerName<'static>>,
    tls: Arc<ClientConfig>,
    token: Token,
    conn: Conn,
    stats: WsStats,
    /// Consecutive failures, for the backoff exponent.
    failures: u32,
    rng: XorShift,
    readable: bool,
    writable: bool,
    /// Writes may be pending in tungstenite or rustls.
    want_flush: bool,
    connected_now: bool,
    generation: u64,
    last_error: Option<WsError>,
    /// The host's addresses as last resolved (empty: none yet).
    addrs: ArrayVec<SocketAddr, MAX_ADDRS>,
    /// `None` for an IP literal.
    resolver: Option<Resolver>,
    /// The resolver's last error, until a connection attempt reports it.
    resolve_error: Option<String>,
    /// How the peer ended the last open connection; `None` while open or if we ended it.
    peer_end: Option<PeerEnd>,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("url", &self.cfg.url)
            .field("token", &self.token)
            .field("state", &self.state())
            .field("stats", &self.stats)
            .finish()
    }
}

impl WsClient {
    /// Parses the URL and prepares the client; nothing is connected until the first
    /// [`poll`](Self::poll). `tls` is used for `wss://` (build it once with
    /// [`tls_config`]).
    pub fn new(cfg: WsConfig, tls: Arc<ClientConfig>, token: Token) -> Result<WsClient, WsError> {
        let target = parse_url(&cfg.url)?;
        // Let tungstenite's request parser validate the URL now rather than at connect.
        {
            use tungstenite::client::IntoClientRequest;
            cfg.url.as_str().into_client_request()?;
        }
        let server_name = if target.tls {
            Some(ServerName::try_from(target.host.clone()).map_err(|_| WsError::Url(cfg.url.clone()))?)
        } else {
            None
        };
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let seed = t ^ (token.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut addrs = ArrayVec::new();
        let resolver = match target.host.parse::<IpAddr>() {
            Ok(ip) => {
                addrs.push(SocketAddr::new(ip, target.port));
                None
            }
            Err(_) => {
                let mut r = Resolver::spawn(target.host.clone(), target.port, cfg.resolve)?;
                r.request();
                Some(r)
            }
        };
        Ok(WsClient {
            cfg,
            target,
            server_name,
            tls,
            token,
            conn: Conn::Idle { until: Ts::MIN },
            stats: WsStats::default(),
            failures: 0,
            rng: XorShift::new(seed),
            readable: false,
            writable: false,
            want_flush: false,
            connected_now: false,
            generation: 0,
            last_error: None,
            addrs,
            resolver,
            resolve_error: None,
            peer_end: None,
        })
    }

    /// The mio token this client registers its socket with.
    pub fn token(&self) -> Token {
        self.token
    }

    /// The configuration.
    pub fn config(&self) -> &WsConfig {
        &self.cfg
    }

    /// Records readiness from a mio event. Events for other tokens are ignored.
    #[inline]
    pub fn on_event(&mut self, ev: &mio::event::Event) {
        if ev.token() == self.token {
            // Errors and hangups surface as read errors.
            self.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
            self.writable |= ev.is_writable() || ev.is_write_closed();
        }
    }

    /// Open and not closing.
    #[inline]
    pub fn is_open(&self) -> bool {
        matches!(self.conn, Conn::Open { closing: None, .. })
    }

    /// The current state.
    pub fn state(&self) -> WsState {
        match &self.conn {
            Conn::Idle { until } => WsState::Disconnected { until: *until },
            Conn::Connecting { .. } => WsState::Connecting,
            Conn::Handshaking { .. } => WsState::Handshaking,
            Conn::Open { closing: None, .. } => WsState::Open,
            Conn::Open { closing: Some(_), .. } => WsState::Closing,
        }
    }

    /// The counters.
    #[inline]
    pub fn stats(&self) -> WsStats {
        self.stats
    }

    /// True if the last [`poll`](Self::poll) opened a connection (subscribes sent):
    /// the caller must resync its books.
    #[inline]
    pub fn connected_since_last_poll(&self) -> bool {
        self.connected_now
    }

    /// Number of connections opened so far; changes on every (re)connect. Compare with
    /// a remembered value to detect reconnects without polling the flag each time.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The last failure, if any.
    pub fn last_error(&self) -> Option<&WsError> {
        self.last_error.as_ref()
    }

    /// How the peer ended the last connection that was open: `None` while it is open,
    /// before the first one, or if this client ended it (planned close, timeout).
    #[inline]
    pub fn peer_end(&self) -> Option<PeerEnd> {
        self.peer_end
    }

    /// The host's addresses as last resolved (empty until the resolver answers).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Queues a text message and tries to send it now; the rest goes out on later polls.
    /// Allocates the message: meant for subscribes and auth, not the hot path.
    pub fn send_text(&mut self, s: &str) -> Result<(), WsError> {
        let Conn::Open { ws, closing: None, .. } = &mut self.conn else {
            return Err(WsError::NotOpen);
        };
        self.want_flush = true;
        match ws.send(Message::text(s)) {
            Ok(()) => Ok(()),
            // Queued; flushed on WRITABLE / next poll.
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            // Everything else also breaks the connection; poll notices it on the next
            // read. Report it to the caller here.
            Err(e) => Err(WsError::Ws(e)),
        }
    }

    /// Starts a graceful close now (as for a planned reconnect), then reconnects.
    pub fn reconnect_now(&mut self, now: Ts) {
        self.begin_close(now, true);
    }

    /// Drives the client: connect/handshake progress and timeouts, reconnects, planned
    /// lifetime closes, reading the available messages into `on_msg` (text and binary
    /// payloads; at most [`WsConfig::max_messages_per_poll`], the rest on the next
    /// calls), pongs and pending writes. Returns the number of messages delivered.
    /// Never blocks; connection failures are handled here, not returned.
    pub fn poll(&mut self, registry: &Registry, now: Ts, mut on_msg: impl FnMut(&[u8])) -> usize {
        self.connected_now = false;
        let mut delivered = 0;
        // A few transitions may chain in one poll (e.g. connect -> handshake -> open).
        for _ in 0..4 {
            match &mut self.conn {
                Conn::Idle { until } => {
                    if now < *until {
                        return delivered;
                    }
                    if !self.start_connect(registry, now) {
                        return delivered;
                    }
                    // connect on loopback may already be done; try once more below
                }
                Conn::Connecting { sock, deadline } => {
                    let deadline = *deadline;
                    let Some(s) = sock.as_mut() else {
                        self.end(registry, now, End::Failed, None);
                        return delivered;
                    };
                    match connect_status(s) {
                        Ok(false) => {
                            if now >= deadline {
                                self.end(registry, now, End::Failed, Some(WsError::Timeout("connecting")));
                            }
                            return delivered;
                        }
                        Ok(true) => {
                            let s = sock.take();
                            self.start_handshake(registry, now, deadline, s);
                        }
                        Err(e) => {
                            self.end(registry, now, End::Failed, Some(WsError::Io(e)));
                            return delivered;
                        }
                    }
                }
                Conn::Handshaking { mid, deadline } => {
                    let deadline = *deadline;
                    let Some(m) = mid.take() else {
                        self.end(registry, now, End::Failed, None);
                        return delivered;
                    };
                    match m.handshake() {
                        Ok((ws, _resp)) => {
                            // Return before reading: the caller sees the new generation
                            // (and resets what the old connection built) before the first
                            // message of the new one; its frames are read on the next poll.
                            self.opened(now, ws);
                            return delivered;
                        }
                        Err(HandshakeError::Interrupted(m)) => {
                            if now >= deadline {
                                self.conn = Conn::Handshaking { mid: Some(m), deadline };
                                self.end(registry, now, End::Failed, Some(WsError::Timeout("handshaking")));
                            } else {
                                self.conn = Conn::Handshaking { mid: Some(m), deadline };
                            }
                            return delivered;
                        }
                        Err(HandshakeError::Failure(e)) => {
                            self.end(registry, now, End::Failed, Some(WsError::Ws(e)));
                            return delivered;
                        }
                    }
                }
                Conn::Open { .. } => {
                    delivered += self.service_open(registry, now, &mut on_msg);
                    return delivered;
                }
            }
        }
        delivered
    }

    fn service_open(&mut self, registry: &Registry, now: Ts, on_msg: &mut impl FnMut(&[u8])) -> usize {
        let mut delivered = 0usize;
        let Conn::Open { ws, since, closing } = &mut self.conn else {
            return 0;
        };
        let since = *since;
        let mut end: Option<(End, Option<WsError>)> = None;
        let mut got_close = false;
        let budget = self.cfg.max_messages_per_poll.max(1);
        if self.readable {
            self.readable = false;
            loop {
                if delivered >= budget {
                    // More may be buffered or on the socket, and mio will not report it
                    // again: read on at the next poll.
                    self.readable = true;
                    break;
                }
                match ws.read() {
                    Ok(Message::Text(t)) => {
                        let b: &[u8] = t.as_ref();
                        self.stats.messages += 1;
                        self.stats.bytes += b.len() as u64;
                        delivered += 1;
                        on_msg(b);
                    }
                    Ok(Message::Binary(b)) => {
                        self.stats.messages += 1;
                        self.stats.bytes += b.len() as u64;
                        delivered += 1;
                        on_msg(&b);
                    }
                    Ok(Message::Ping(_)) => {
                        // tungstenite queued the pong; flushed below.
                        self.stats.pings += 1;
                        self.want_flush = true;
                    }
                    Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => {}
                    Ok(Message::Close(_)) => {
                        // tungstenite queued the close reply; the server closes TCP next.
                        self.want_flush = true;
                        got_close = true;
                        if closing.is_none() {
                            self.peer_end = Some(PeerEnd::Close);
                        }
                    }
                    Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                        let planned = closing.map(|c| c.planned).unwrap_or(false);
                        end =
                            Some(if planned { (End::Planned, None) } else { (End::PeerClosed, Some(WsError::Closed)) });
                        break;
                    }
                    Err(e) => {
                        let planned = closing.map(|c| c.planned).unwrap_or(false);
                        if !planned && self.peer_end.is_none() {
                            let eof = matches!(
                                e,
                                tungstenite::Error::Protocol(
                                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                                )
                            );
                            self.peer_end = Some(if eof { PeerEnd::Eof } else { PeerEnd::Error });
                        }
                        end = Some(if planned { (End::Planned, None) } else { (End::Failed, Some(WsError::Ws(e))) });
                        break;
                    }
                }
            }
        }
        if got_close && closing.is_none() {
            *closing =
                Some(Closing { deadline: now.saturating_add(ms_to_ns(self.cfg.connect_timeout_ms)), planned: false });
        }
        if end.is_none() && (self.want_flush || self.writable) {
            self.writable = false;
            match ws.flush() {
                Ok(()) => self.want_flush = false,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                    end = Some((End::PeerClosed, Some(WsError::Closed)));
                }
                // After we sent/received Close, write errors just mean the peer is gone.
                Err(_) if closing.is_some() => {}
                Err(e) => {
                    self.peer_end.get_or_insert(PeerEnd::Error);
                    end = Some((End::Failed, Some(WsError::Ws(e))));
                }
            }
        }
        if end.is_none() {
            if let Some(c) = *closing {
                if now >= c.deadline {
                    end = Some(if c.planned {
                        (End::Planned, None)
                    } else {
                        (End::PeerClosed, Some(WsError::Timeout("closing")))
                    });
                }
            } else if self.cfg.max_lifetime_ms > 0 && now.saturating_sub(since) >= ms_to_ns(self.cfg.max_lifetime_ms) {
                self.begin_close(now, true);
                return delivered;
            }
        }
        if let Some((kind, err)) = end {
            self.end(registry, now, kind, err);
        }
        delivered
    }

    fn begin_close(&mut self, now: Ts, planned: bool) {
        let deadline = now.saturating_add(ms_to_ns(self.cfg.connect_timeout_ms));
        if let Conn::Open { ws, closing, .. } = &mut self.conn {
            if closing.is_some() {
                return;
            }
            if planned {
                self.stats.planned_reconnects += 1;
            }
            *closing = Some(Closing { deadline, planned });
            // Queues the close frame; WouldBlock leaves it buffered.
            let _ = ws.close(None);
            let _ = ws.flush();
            self.want_flush = true;
            self.readable = true;
        }
    }

    /// Takes the resolver's newest answer into the cache (never blocks).
    fn take_resolved(&mut self) {
        let Some(r) = self.resolver.as_mut() else { return };
        match r.take() {
            Some(Ok(a)) if !a.is_empty() => {
                self.addrs = a;
                self.resolve_error = None;
            }
            Some(Ok(_)) => self.resolve_error = Some("no addresses".into()),
            Some(Err(e)) => self.resolve_error = Some(e),
            None => {}
        }
    }

    /// Starts a connection attempt to a cached address; returns false (and leaves the
    /// client idle) while the first resolution is still on its way.
    fn start_connect(&mut self, registry: &Registry, now: Ts) -> bool {
        self.take_resolved();
        if self.addrs.is_empty() {
            let Some(msg) = self.resolve_error.take() else {
                // Still resolving (off this thread): look again on the next poll.
                if let Some(r) = self.resolver.as_mut() {
                    r.request();
                }
                return false;
            };
            self.stats.attempts += 1;
            if let Some(r) = self.resolver.as_mut() {
                r.request();
            }
            let err = WsError::Resolve { host: self.target.host.clone(), msg };
            self.end(registry, now, End::Failed, Some(err));
            return true;
        }
        if self.failures > 0 {
            // The last attempt failed: refresh the addresses for the next one, in the
            // background.
            if let Some(r) = self.resolver.as_mut() {
                r.request();
            }
        }
        self.stats.attempts += 1;
        let deadline = now.saturating_add(ms_to_ns(self.cfg.connect_timeout_ms));
        // Rotate through the addresses on consecutive failures.
        let addr = self.addrs[self.failures as usize % self.addrs.len()];
        let mut sock = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                self.end(registry, now, End::Failed, Some(WsError::Io(e)));
                return true;
            }
        };
        if let Err(e) = registry.register(&mut sock, self.token, Interest::READABLE | Interest::WRITABLE) {
            self.end(registry, now, End::Failed, Some(WsError::Io(e)));
            return true;
        }
        self.readable = false;
        self.writable = false;
        self.conn = Conn::Connecting { sock: Some(sock), deadline };
        true
    }

    fn start_handshake(&mut self, registry: &Registry, now: Ts, deadline: Ts, sock: Option<TcpStream>) {
        let Some(sock) = sock else {
            self.end(registry, now, End::Failed, None);
            return;
        };
        let _ = sock.set_nodelay(true);
        let stream = match &self.server_name {
            None => Stream::Plain(sock),
            Some(name) => match ClientConnection::new(self.tls.clone(), name.clone()) {
                Ok(c) => Stream::Tls(Box::new(StreamOwned::new(c, sock))),
                Err(e) => {
                    let mut s = Stream::Plain(sock);
                    let _ = registry.deregister(s.tcp_mut());
                    self.end(registry, now, End::Failed, Some(WsError::Tls(e)));
                    return;
                }
            },
        };
        let ws_cfg = WebSocketConfig::default().read_buffer_size(self.cfg.read_buffer_size.max(256));
        match tungstenite::client::client_with_config(self.cfg.url.as_str(), stream, Some(ws_cfg)) {
            Ok((ws, _resp)) => self.opened(now, ws),
            Err(HandshakeError::Interrupted(m)) => {
                self.conn = Conn::Handshaking { mid: Some(m), deadline };
            }
            Err(HandshakeError::Failure(e)) => {
                // The stream is gone with the error; its fd closes on drop and leaves epoll.
                self.conn = Conn::Idle { until: now };
                self.end(registry, now, End::Failed, Some(WsError::Ws(e)));
            }
        }
    }

    fn opened(&mut self, now: Ts, mut ws: WebSocket<Stream>) {
        self.stats.connects += 1;
        if self.generation > 0 {
            self.stats.reconnects += 1;
        }
        self.generation += 1;
        self.connected_now = true;
        self.peer_end = None;
        for s in &self.cfg.subscribe {
            // Queue; flushed in service_open. A failure shows up on the next read.
            let _ = ws.write(Message::text(s.as_str()));
        }
        self.want_flush = true;
        // tungstenite may hold frames that arrived with the HTTP response.
        self.readable = true;
        self.conn = Conn::Open { ws, since: now, closing: None };
    }

    /// Drops the current connection (if any) and schedules the next attempt.
    fn end(&mut self, registry: &Registry, now: Ts, kind: End, err: Option<WsError>) {
        let old = std::mem::replace(&mut self.conn, Conn::Idle { until: now });
        let was_open = matches!(old, Conn::Open { .. });
        if let Conn::Open { since, .. } = &old {
            // A connection that stayed open for at least the backoff cap resets the
            // backoff; one that dies right after opening keeps growing it.
            if now.saturating_sub(*since) >= ms_to_ns(self.cfg.backoff_max_ms) {
                self.failures = 0;
            }
        }
        match old {
            Conn::Idle { .. } => {}
            Conn::Connecting { sock, .. } => {
                if let Some(mut s) = sock {
                    let _ = registry.deregister(&mut s);
                }
            }
            Conn::Handshaking { mid, .. } => {
                if let Some(mut m) = mid {
                    let _ = registry.deregister(m.get_mut().get_mut().tcp_mut());
                }
            }
            Conn::Open { mut ws, .. } => {
                let _ = registry.deregister(ws.get_mut().tcp_mut());
            }
        }
        if was_open {
            self.stats.disconnects += 1;
        }
        self.readable = false;
        self.writable = false;
        self.want_flush = false;
        if kind != End::Planned {
            self.stats.errors += 1;
        }
        if let Some(e) = err {
            self.stats.last_failure = Failure::of(&e);
            self.last_error = Some(e);
        }
        let until = match kind {
            End::Planned => now,
            End::Failed | End::PeerClosed => {
                let d = self.backoff_ms();
                self.failures = self.failures.saturating_add(1);
                now.saturating_add(ms_to_ns(d))
            }
        };
        self.conn = Conn::Idle { until };
    }

    fn backoff_ms(&mut self) -> u64 {
        let min = self.cfg.backoff_min_ms.max(1);
        let max = self.cfg.backoff_max_ms.max(min);
        let shift = self.failures.min(32);
        let d = min.saturating_mul(1u64 << shift).min(max);
        let j = self.cfg.jitter.clamp(0.0, 1.0);
        let f = 1.0 - j * self.rng.next_f64();
        ((d as f64) * f).max(0.0) as u64
    }
}

/// Milliseconds to nanoseconds, saturating (huge configured values must not overflow).
#[inline]
fn ms_to_ns(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX).saturating_mul(NS_PER_MS)
}

/// `Ok(true)` once the non-blocking connect completed, `Ok(false)` while in progress.
fn connect_status(s: &TcpStream) -> io::Result<bool> {
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    match s.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_survives_its_word_and_names_its_cause() {
        let refused = io::Error::from_raw_os_error(111);
        let all = [
            Failure::None,
            Failure::Url,
            Failure::TlsConfig,
            Failure::Resolve,
            Failure::of(&WsError::Io(refused)),
            Failure::Io(0),
            Failure::Tls,
            Failure::WebSocket,
            Failure::of(&WsError::Timeout("connecting")),
            Failure::of(&WsError::Timeout("handshaking")),
            Failure::of(&WsError::Timeout("closing")),
            Failure::Closed,
            Failure::NotOpen,
        ];
        for f in all {
            assert_eq!(Failure::from_word(f.to_word()), f, "{f:?}");
        }
        assert_eq!(all[4], Failure::Io(111));
        assert_eq!(all[4].to_string(), "io: Connection refused (os error 111)");
        assert_eq!(all[9].to_string(), "timeout while handshaking");
        // A word no failure packs to is no failure, not a panic.
        assert_eq!(Failure::from_word(u64::MAX), Failure::None);
        assert_eq!(Failure::from_word(7 << 32 | 9), Failure::None);
    }

    #[test]
    fn parses_urls() {
        let t = parse_url("wss://stream.binance.com:9443/ws/btcusdt@bookTicker").unwrap();
        assert!(t.tls);
        assert_eq!(t.host, "stream.binance.com");
        assert_eq!(t.port, 9443);
        let t = parse_url("ws://127.0.0.1/x?y=1").unwrap();
        assert!(!t.tls);
        assert_eq!(t.port, 80);
        let t = parse_url("wss://example.com?x").unwrap();
        assert_eq!(t.port, 443);
        let t = parse_url("ws://[::1]:8080/").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, 8080);
        assert!(parse_url("http://x/").is_err());
        assert!(parse_url("ws://:80/").is_err());
        assert!(parse_url("ws://h:notaport/").is_err());
        assert!(parse_url("ws://u@h/").is_err());
    }

    #[test]
    fn backoff_grows_capped_with_jitter() {
        let mut cfg = WsConfig::new("ws://127.0.0.1:1/");
        cfg.backoff_min_ms = 100;
        cfg.backoff_max_ms = 1000;
        cfg.jitter = 0.5;
        let tls = tls_config(&[]).unwrap();
        let mut c = WsClient::new(cfg, tls, Token(7)).unwrap();
        for i in 0..10u32 {
            c.failures = i;
            let d = c.backoff_ms();
            let full = (100u64 << i).min(1000);
            assert!(d <= full && d >= full / 2, "i={i} d={d}");
        }
    }

    /// A peer faster than the caller: one poll delivers at most `max_messages_per_poll`
    /// messages, and the following polls read the rest although mio reports no new
    /// readiness for data that was already there.
    #[test]
    fn one_poll_delivers_at_most_the_budget() {
        use std::sync::mpsc::channel;
        use std::time::{Duration, Instant};

        const N: usize = 600;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (sent_tx, sent_rx) = channel();
        let (stop_tx, stop_rx) = channel::<()>();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut ws = tungstenite::accept(s).unwrap();
            for i in 0..N {
                ws.send(Message::text(format!("message {i}"))).unwrap();
            }
            sent_tx.send(()).unwrap();
            // Keep the connection open until the client has read everything.
            let _ = stop_rx.recv_timeout(Duration::from_secs(10));
        });
        let mut cfg = WsConfig::new(format!("ws://{addr}/"));
        cfg.max_messages_per_poll = 100;
        let mut c = WsClient::new(cfg, tls_config(&[]).unwrap(), Token(1)).unwrap();
        let mut poll = mio::Poll::new().unwrap();
        let mut events = mio::Events::with_capacity(8);
        let t0 = Instant::now();
        let now = || 1_700_000_000_000_000_000 + t0.elapsed().as_nanos() as Ts;
        let mut total = 0;
        let mut spin = |c: &mut WsClient, total: &mut usize| {
            poll.poll(&mut events, Some(Duration::from_millis(1))).unwrap();
            for ev in events.iter() {
                c.on_event(ev);
            }
            let n = c.poll(poll.registry(), now(), |_| {});
            assert!(n <= 100, "{n} messages in one poll");
            *total += n;
        };
        while !c.is_open() && t0.elapsed() < Duration::from_secs(5) {
            spin(&mut c, &mut total);
        }
        sent_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        while total < N && t0.elapsed() < Duration::from_secs(5) {
            spin(&mut c, &mut total);
        }
        assert_eq!(total, N);
        stop_tx.send(()).unwrap();
        server.join().unwrap();
    }

    #[test]
    fn xorshift_uniform_range() {
        let mut r = XorShift::new(0);
        for _ in 0..1000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
