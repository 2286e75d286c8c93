//! A WebSocket replay server speaking Binance Spot's combined-stream format, with a
//! REST depth snapshot and fault injection: a test venue for our WebSocket client and
//! book synchroniser, and a way to replay recordings through the real network path.
//!
//! # What it serves
//!
//! - `ws://HOST:PORT/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker/...`: the
//!   messages of the requested streams, each a text frame
//!   `{"stream":"<name>","data":{...}}` as Binance sends them. Without a `streams`
//!   parameter every stream of the source is sent.
//! - `GET /api/v3/depth?symbol=BTCUSDT&limit=N` (plain HTTP/1.1, on the WebSocket port
//!   and on [`ServeConfig::http_bind`] if set): `{"lastUpdateId":..,"bids":[["p","q"],..],
//!   "asks":[..]}` from the server's own full book of every depth message the replay
//!   has passed so far, whether the client subscribed to it or not (the book is the
//!   venue's; a message skipped by the gap fault is lost on the way, so it *is* in the
//!   book). `lastUpdateId` is the `u` of the last depth message of that symbol. `limit`
//!   defaults to 100 and is clamped to 1..=5000. Unknown symbol: 400 with Binance's
//!   `{"code":-1121,"msg":"Invalid symbol."}`; other paths: 404.
//!
//! # Sources
//!
//! - [`Source::Recording`]: text lines `<local receive ns> <raw message>`, gzip or
//!   plain (detected by the magic bytes), the format of
//!   the shared Binance recordings (`../shared/data/binance-spot/*.gz`) and of [`crate::feed::record`]. Several
//!   files are merged by time stamp (ties: file order). A line that is a REST snapshot
//!   is not sent; it seeds the server's book of its symbol, and the recent diffs with
//!   a later `u` are re-applied on top. The symbol is the one a tagged line names
//!   (`{"statarb_snapshot":"BTCUSDT","data":{"lastUpdateId":..}}`, as our recorder
//!   writes every snapshot the live feed fetched), or for an untagged one
//!   (`{"lastUpdateId":..}`, as the shared files contain) the symbol last seen in the
//!   same file. Without a snapshot the server's book holds only
//!   the levels seen in diffs. Unparseable lines are skipped and counted; a truncated
//!   gzip (a recording cut by a crash) ends its file without error.
//! - [`Source::Generated`]: the built-in data set ([`crate::feed::gen`]) rendered as
//!   Binance messages. Per instrument a depth batch (consecutive
//!   `BidLevel`/`AskLevel` events closed by `END_OF_BATCH`) becomes a `depthUpdate`
//!   whose levels each take their own update id (so `U` = previous `u` + 1, starting at
//!   `U` = 1); a `BestBid`+`BestAsk` pair becomes a `bookTicker` whose `u` is the
//!   current book id (the last depth `u`, as on Binance, where tickers do not consume
//!   ids); every trade event becomes a `trade` (`t` from 1 per instrument, `m` = true
//!   for `TradeSell`: the buyer was the maker). `E`/`T` are the exchange time in ms.
//!   A lone ticker half (the data set's last message may be one) is completed from the
//!   last ticker sent. Prices and sizes are exact decimal strings.
//!
//! # Sessions
//!
//! One replay client at a time: a second WebSocket connection waits until the first
//! one ends. Each new WebSocket connection restarts the replay from the start, with
//! the server's books reset (deterministic: a reconnecting client after a drop fault
//! sees the same data again, and must resynchronise from a new snapshot). HTTP
//! requests are served concurrently, one thread per connection, one request per
//! connection (`Connection: close`). The server does not read client frames during a
//! replay (pings are not answered). Connections (and so threads) are bounded: beyond
//! [`ServeConfig::max_connections`] open at once, a new connection is refused at
//! accept (an HTTP `503` written without waiting, then closed) and counted in
//! [`ServeStats::refused`]; a connection that has not sent its request head (HTTP
//! request or WebSocket upgrade) within [`ServeConfig::handshake_timeout_ms`] is
//! closed and counted in [`ServeStats::handshake_timeouts`]. So idle or slow clients
//! cannot grow the thread count without bound.
//!
//! # Pacing
//!
//! [`Pacing::Recorded`] sends each message at its recorded local time relative to the
//! first one, [`Pacing::Speed`] `n` times faster, [`Pacing::Rate`] at a fixed number
//! of messages per second (message `i` due at `i / rate` s; a late message goes at once,
//! so the average rate holds), and [`Pacing::Max`] as fast as the client reads (writes
//! block when the socket buffers are full: backpressure). The rate's last 200 us are
//! waited out by spinning, since a sleep on Linux overshoots by ~60 us.
//!
//! # Send stamps
//!
//! With [`ServeConfig::wire_stamps`] every text frame is preceded by an 8-byte binary
//! frame: the [`StampClock`] reading (little-endian) just before the text frame is
//! written. A client on the same host (the same TSC) subtracts it from its own receive
//! stamp: the wire stage of `statarb latency --wire` (`feed.wire_stamps`).
//!
//! # Faults
//!
//! [`Faults`] counts per session: messages sent (text frames of the replay, not
//! counting malformed extras) and depth messages reached (of the subscribed streams).
//! `drop_every: N` closes the TCP connection (FIN, no Close frame) right after the
//! N-th message; `gap_every: N` skips every N-th depth message (the client then sees
//! `U > last u + 1`); `malformed_every: N` sends an extra text frame that is not valid
//! JSON after every N-th message; `stall_every: N` pauses `stall_ms` after every N-th
//! message. Each occurrence is counted in [`ServeStats`].
//!
//! # End of data
//!
//! When the source is exhausted the server sends a WebSocket Close frame (code 1000,
//! reason [`END_OF_DATA`]), which a client treats as the end of the replay, waits
//! briefly for the client's Close and ends the session.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use serde_json::Value;
use thiserror::Error;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::clock::StampClock;
use crate::event::{EventKind, MarketEvent};
use crate::feed::gen::Dataset;
use crate::feed::record::parse_snapshot_line;
use crate::lines::{BoundedLines, Line, DEFAULT_MAX_LINE_BYTES};
use crate::types::{Decimal, Instrument, Px, Qty, Ts, NS_PER_MS};

/// Reason of the Close frame that ends a replay.
pub const END_OF_DATA: &str = "end of data";
/// The text of a malformed-JSON fault frame.
pub const MALFORMED: &str = r#"{"stream":"malformed","data":{"e":"depthUpdate","b":[["1.0""#;
/// Diffs kept per symbol to re-apply after a recorded snapshot.
const RECENT_DIFFS: usize = 256;
/// How often idle accept loops look at the stop flag.
const POLL: Duration = Duration::from_millis(10);

/// Errors of the replay server.
#[derive(Debug, Error)]
pub enum ServeError {
    /// A socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A recording could not be opened.
    #[error("cannot open recording {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A bad configuration value (speed not finite and positive, no recording).
    #[error("invalid serve configuration: {0}")]
    Config(String),
    /// Other socket or thread error.
    #[error("serve I/O: {0}")]
    Io(#[from] io::Error),
}

/// How fast the replay goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// At the recorded pace (local receive times).
    Recorded,
    /// `n` times faster than recorded (`n` finite, > 0).
    Speed(f64),
    /// A fixed number of messages per second (finite, > 0).
    Rate(f64),
    /// As fast as the client reads.
    Max,
}

impl FromStr for Pacing {
    type Err = ServeError;
    /// `recorded`, `max`, a factor such as `10x` / `10`, or a rate such as `100000/s`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "recorded" | "1x" => Ok(Pacing::Recorded),
            "max" => Ok(Pacing::Max),
            f if f.ends_with("/s") => match f.trim_end_matches("/s").parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => Ok(Pacing::Rate(r)),
                _ => Err(ServeError::Config(format!("pacing `{s}`: a rate is N/s with N > 0"))),
            },
            f => {
                let n: f64 = f
                    .strip_suffix('x')
                    .unwrap_or(f)
                    .parse()
                    .map_err(|_| ServeError::Config(format!("pacing `{s}`: expected recorded, max or Nx")))?;
                if n.is_finite() && n > 0.0 {
                    Ok(Pacing::Speed(n))
                } else {
                    Err(ServeError::Config(format!("pacing `{s}`: factor must be > 0")))
                }
            }
        }
    }
}

/// Fault injection, per session (see the module docs). `None` or `Some(0)` disables
/// a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    /// Close the TCP connection abruptly after every N messages.
    pub drop_every: Option<u64>,
    /// Skip one depth message every N depth messages (a sequence gap).
    pub gap_every: Option<u64>,
    /// Send a text frame that is not valid JSON after every N messages.
    pub malformed_every: Option<u64>,
    /// Pause `stall_ms` after every N messages.
    pub stall_every: Option<u64>,
    /// Length of a stall.
    pub stall_ms: u64,
}

/// Server configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// WebSocket (and HTTP) address; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Optional second address serving only the HTTP snapshot endpoint.
    pub http_bind: Option<SocketAddr>,
    /// Replay pace.
    pub pacing: Pacing,
    /// Faults to inject.
    pub faults: Faults,
    /// Most connections served at once (each has a thread), at least 1; more are
    /// refused at accept.
    pub max_connections: usize,
    /// Time a new connection has to send its request head (HTTP request or WebSocket
    /// upgrade), and to finish the WebSocket handshake, ms.
    pub handshake_timeout_ms: u64,
    /// Precede every text frame with its send stamp (see the module docs).
    pub wire_stamps: bool,
    /// Messages sent first as fast as the client reads, without send stamps, before
    /// the pacing and the stamps start: a warm-up, so that a measurement at a low
    /// [`Pacing::Rate`] sees a warmed-up strategy.
    pub warmup_messages: u64,
}

/// Default of [`ServeConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default of [`ServeConfig::handshake_timeout_ms`].
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

impl Default for ServeConfig {
    /// `127.0.0.1:0`, no extra HTTP port, [`Pacing::Max`], no faults, at most 64
    /// connections, 5 s to send a request head.
    fn default() -> Self {
        ServeConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_bind: None,
            pacing: Pacing::Max,
            faults: Faults::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            wire_stamps: false,
            warmup_messages: 0,
        }
    }
}

/// What the server replays.
#[derive(Debug, Clone)]
pub enum Source {
    /// Recording files, merged by time.
    Recording(Vec<PathBuf>),
    /// The built-in data set, rendered as Binance messages.
    Generated(Arc<Dataset>),
}

/// Counters of a server, as a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeStats {
    /// WebSocket sessions started.
    pub sessions: u64,
    /// Sessions that reached the end of the data.
    pub completed: u64,
    /// Replay messages sent (all sessions).
    pub messages: u64,
    /// Of those, depth messages.
    pub depth_messages: u64,
    /// Connections dropped by the drop fault.
    pub drops: u64,
    /// Depth messages skipped by the gap fault.
    pub gaps: u64,
    /// Malformed frames sent.
    pub malformed: u64,
    /// Stalls made.
    pub stalls: u64,
    /// HTTP requests answered (any status).
    pub http_requests: u64,
    /// Recording lines skipped as unparseable.
    pub bad_lines: u64,
    /// Connections refused because `max_connections` were open.
    pub refused: u64,
    /// Connections closed for not sending a request head in time.
    pub handshake_timeouts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sessions: AtomicU64,
    completed: AtomicU64,
    messages: AtomicU64,
    depth_messages: AtomicU64,
    drops: AtomicU64,
    gaps: AtomicU64,
    malformed: AtomicU64,
    stalls: AtomicU64,
    http_requests: AtomicU64,
    bad_lines: AtomicU64,
    refused: AtomicU64,
    handshake_timeouts: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ServeStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServeStats {
            sessions: l(&self.sessions),
            completed: l(&self.completed),
            messages: l(&self.messages),
            depth_messages: l(&self.depth_messages),
            drops: l(&self.drops),
            gaps: l(&self.gaps),
            malformed: l(&self.malformed),
            stalls: l(&self.stalls),
            http_requests: l(&self.http_requests),
            bad_lines: l(&self.bad_lines),
            refused: l(&self.refused),
            handshake_timeouts: l(&self.handshake_timeouts),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------
// Frames: what a source yields.
// ---------------------------------------------------------------------------------

/// A depth diff, for the server's book.
#[derive(Debug, Clone)]
struct Diff {
    symbol: String,
    last: u64,
    bids: Vec<(String, String)>,
    asks: Vec<(String, String)>,
}

#[derive(Debug)]
enum Kind {
    Depth(Diff),
    /// A REST snapshot line of a recording: seeds the book, not sent.
    Snapshot(Diff),
    Other,
}

/// One message of a source.
#[derive(Debug)]
struct Frame {
    /// Local receive time (pacing).
    ts: Ts,
    /// Stream name (empty for a snapshot).
    stream: String,
    /// The combined-stream JSON text.
    text: String,
    kind: Kind,
}

type Frames = Box<dyn Iterator<Item = Frame> + Send>;

fn open_frames(source: &Source, counters: &Arc<Counters>) -> Result<Frames, ServeError> {
    match source {
        Source::Generated(ds) => Ok(Box::new(GenFrames::new(ds.clone()))),
        Source::Recording(paths) => {
            if paths.is_empty() {
                return Err(ServeError::Config("no recording files".into()));
            }
            let mut files = Vec::with_capacity(paths.len());
            for p in paths {
                files.push(RecFile::open(p, counters.clone())?);
            }
            Ok(Box::new(Merge { files }))
        }
    }
}

/// Symbols of a source known before replay (the generated instruments).
fn known_symbols(source: &Source) -> Vec<String> {
    match source {
        Source::Generated(ds) => ds.instruments.iter().map(|i| i.symbol.to_ascii_uppercase()).collect(),
        Source::Recording(_) => Vec::new(),
    }
}

/// One recording file, one line of lookahead. Lines are read through one bounded
/// buffer ([`crate::lines::DEFAULT_MAX_LINE_BYTES`], as `import` reads recordings): a
/// longer line is dropped unread and counted as a bad line.
struct RecFile {
    lines: BoundedLines<Box<dyn BufRead + Send>>,
    next: Option<Frame>,
    last_symbol: Option<String>,
    counters: Arc<Counters>,
}

impl RecFile {
    fn open(path: &PathBuf, counters: Arc<Counters>) -> Result<Self, ServeError> {
        let err = |source| ServeError::Open { path: path.clone(), source };
        let mut f = File::open(path).map_err(err)?;
        let mut magic = [0u8; 2];
        let n = f.read(&mut magic).map_err(err)?;
        let f = File::open(path).map_err(err)?;
        let lines: Box<dyn BufRead + Send> = if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(f)))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, f))
        };
        let lines = BoundedLines::new(lines, DEFAULT_MAX_LINE_BYTES);
        let mut r = RecFile { lines, next: None, last_symbol: None, counters };
        r.advance();
        Ok(r)
    }

    /// Loads the next valid frame into `next` (None at the end or on a read error).
    fn advance(&mut self) {
        self.next = None;
        loop {
            let line = match self.lines.next_line() {
                Ok(Some(Line::Text(t))) => t,
                Ok(Some(Line::TooLong { .. })) => {
                    bump(&self.counters.bad_lines);
                    continue;
                }
                Ok(None) | Err(_) => return,
            };
            if line.is_empty() {
                continue;
            }
            let Ok(line) = std::str::from_utf8(line) else {
                bump(&self.counters.bad_lines);
                continue;
            };
            match parse_line(line, &mut self.last_symbol) {
                Some(f) => {
                    self.next = Some(f);
                    return;
                }
                None => bump(&self.counters.bad_lines),
            }
        }
    }
}

fn str_pairs(v: &Value) -> Option<Vec<(String, String)>> {
    v.as_array()?
        .iter()
        .map(|l| {
            let l = l.as_array()?;
            Some((l.first()?.as_str()?.to_string(), l.get(1)?.as_str()?.to_string()))
        })
        .collect()
}

/// Parses `<ns> <json>`; `last_symbol` attributes snapshot lines.
fn parse_line(line: &str, last_symbol: &mut Option<String>) -> Option<Frame> {
    let (ts, msg) = line.split_once(' ')?;
    let ts: Ts = ts.parse().ok()?;
    if let Some(tagged) = parse_snapshot_line(msg.as_bytes()) {
        // A malformed tagged line is a bad line (counted by the caller).
        let (sym, data) = tagged.ok()?;
        let symbol = std::str::from_utf8(sym).ok()?.to_ascii_uppercase();
        let v: Value = serde_json::from_slice(data).ok()?;
        *last_symbol = Some(symbol.clone());
        return snapshot_frame(ts, symbol, &v);
    }
    let v: Value = serde_json::from_str(msg).ok()?;
    if let Some(stream) = v.get("stream").and_then(Value::as_str) {
        let data = v.get("data")?;
        let symbol = stream.split('@').next()?.to_ascii_uppercase();
        *last_symbol = Some(symbol.clone());
        let kind = if data.get("e").and_then(Value::as_str) == Some("depthUpdate") {
            Kind::Depth(Diff {
                symbol,
                last: data.get("u")?.as_u64()?,
                bids: str_pairs(data.get("b")?)?,
                asks: str_pairs(data.get("a")?)?,
            })
        } else {
            Kind::Other
        };
        return Some(Frame { ts, stream: stream.to_string(), text: msg.to_string(), kind });
    }
    v.get("lastUpdateId")?;
    snapshot_frame(ts, last_symbol.clone()?, &v)
}

/// The frame of a REST snapshot body `v` of `symbol`.
fn snapshot_frame(ts: Ts, symbol: String, v: &Value) -> Option<Frame> {
    let id = v.get("lastUpdateId")?.as_u64()?;
    let diff = Diff { symbol, last: id, bids: str_pairs(v.get("bids")?)?, asks: str_pairs(v.get("asks")?)? };
    Some(Frame { ts, stream: String::new(), text: String::new(), kind: Kind::Snapshot(diff) })
}

/// K-way merge of recording files by time (ties: file order).
struct Merge {
    files: Vec<RecFile>,
}

impl Iterator for Merge {
    type Item = Frame;
    fn next(&mut self) -> Option<Frame> {
        let mut best: Option<(usize, Ts)> = None;
        for (i, f) in self.files.iter().enumerate() {
            if let Some(fr) = &f.next {
                if best.is_none_or(|(_, t)| fr.ts < t) {
                    best = Some((i, fr.ts));
                }
            }
        }
        let (i, _) = best?;
        let f = &mut self.files[i];
        let out = f.next.take();
        f.advance();
        out
    }
}

/// The built-in data set rendered as Binance messages.
struct GenFrames {
    ds: Arc<Dataset>,
    pos: usize,
    /// Per instrument: last depth update id.
    ids: Vec<u64>,
    /// Per instrument: last trade id.
    trade_ids: Vec<u64>,
    /// Per instrument: last ticker sent (bid, bid qty, ask, ask qty).
    tickers: Vec<Option<(Px, Qty, Px, Qty)>>,
    pending: VecDeque<Frame>,
}

impl GenFrames {
    fn new(ds: Arc<Dataset>) -> Self {
        let n = ds.instruments.len();
        GenFrames {
            ds,
            pos: 0,
            ids: vec![0; n],
            trade_ids: vec![0; n],
            tickers: vec![None; n],
            pending: VecDeque::new(),
        }
    }

    /// Renders the next batch (events of one instrument up to `END_OF_BATCH`).
    fn render_batch(&mut self) {
        let ds = self.ds.clone();
        let evs = &ds.events;
        let start = self.pos;
        let mut end = start;
        while end < evs.len() {
            let last = evs[end].is_batch_end() || evs.get(end + 1).is_some_and(|n| n.inst != evs[start].inst);
            end += 1;
            if last {
                break;
            }
        }
        self.pos = end;
        let batch = &evs[start..end];
        let Some(first) = batch.first() else { return };
        let ii = first.inst as usize;
        let Some(inst) = ds.instruments.get(ii) else { return };
        let sym = inst.symbol.to_ascii_uppercase();
        let low = sym.to_ascii_lowercase();
        let e_ms = first.exch_ts.div_euclid(NS_PER_MS);
        let ts = first.local_ts;
        let mut bids = Vec::new();
        let mut asks = Vec::new();
        let mut tb: Option<(Px, Qty)> = None;
        let mut ta: Option<(Px, Qty)> = None;
        for ev in batch {
            match ev.kind {
                EventKind::BidLevel => bids.push(pair(inst, ev)),
                EventKind::AskLevel => asks.push(pair(inst, ev)),
                EventKind::BestBid => tb = Some((ev.px, ev.qty)),
                EventKind::BestAsk => ta = Some((ev.px, ev.qty)),
                EventKind::TradeBuy | EventKind::TradeSell => {
                    self.trade_ids[ii] += 1;
                    let t_ms = ev.exch_ts.div_euclid(NS_PER_MS);
                    let data = format!(
                        r#"{{"e":"trade","E":{t_ms},"s":"{sym}","t":{},"p":"{}","q":"{}","T":{t_ms},"m":{},"M":true}}"#,
                        self.trade_ids[ii],
                        inst.price_decimal(ev.px),
                        inst.qty_decimal(ev.qty),
                        ev.kind == EventKind::TradeSell
                    );
                    self.push(ev.local_ts, format!("{low}@trade"), data, Kind::Other);
                }
                EventKind::Clear => {}
            }
        }
        if !bids.is_empty() || !asks.is_empty() {
            let n = (bids.len() + asks.len()) as u64;
            let first_id = self.ids[ii] + 1;
            self.ids[ii] += n;
            let last_id = self.ids[ii];
            let mut data = format!(r#"{{"e":"depthUpdate","E":{e_ms},"s":"{sym}","U":{first_id},"u":{last_id},"b":"#);
            levels_json(&mut data, &bids);
            data.push_str(r#","a":"#);
            levels_json(&mut data, &asks);
            data.push('}');
            let diff = Diff { symbol: sym.clone(), last: last_id, bids, asks };
            self.push(ts, format!("{low}@depth@100ms"), data, Kind::Depth(diff));
        }
        if tb.is_some() || ta.is_some() {
            let prev = self.tickers[ii];
            let bid = tb.or(prev.map(|p| (p.0, p.1)));
            let ask = ta.or(prev.map(|p| (p.2, p.3)));
            if let (Some(b), Some(a)) = (bid, ask) {
                self.tickers[ii] = Some((b.0, b.1, a.0, a.1));
                let data = format!(
                    r#"{{"u":{},"s":"{sym}","b":"{}","B":"{}","a":"{}","A":"{}"}}"#,
                    self.ids[ii],
                    inst.price_decimal(b.0),
                    inst.qty_decimal(b.1),
                    inst.price_decimal(a.0),
                    inst.qty_decimal(a.1)
                );
                self.push(ts, format!("{low}@bookTicker"), data, Kind::Other);
            }
        }
    }

    fn push(&mut self, ts: Ts, stream: String, data: String, kind: Kind) {
        let text = format!(r#"{{"stream":"{stream}","data":{data}}}"#);
        self.pending.push_back(Frame { ts, stream, text, kind });
    }
}

fn pair(inst: &Instrument, ev: &MarketEvent) -> (String, String) {
    (inst.price_decimal(ev.px).to_string(), inst.qty_decimal(ev.qty).to_string())
}

fn levels_json(out: &mut String, levels: &[(String, String)]) {
    out.push('[');
    for (i, (p, q)) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"["{p}","{q}"]"#);
    }
    out.push(']');
}

impl Iterator for GenFrames {
    type Item = Frame;
    fn next(&mut self) -> Option<Frame> {
        while self.pending.is_empty() {
            if self.pos >= self.ds.events.len() {
                return None;
            }
            self.render_batch();
        }
        self.pending.pop_front()
    }
}

// ---------------------------------------------------------------------------------
// The server's books.
// ---------------------------------------------------------------------------------

/// A price as an exactly comparable integer: units of 1e-18.
fn price_key(s: &str) -> Option<i128> {
    let d = Decimal::parse_bytes(s.as_bytes()).ok()?;
    Some(d.mantissa() as i128 * 10i128.pow(18 - d.scale()))
}

fn is_zero(q: &str) -> bool {
    Decimal::parse_bytes(q.as_bytes()).is_ok_and(|d| d.mantissa() == 0)
}

#[derive(Debug, Default)]
struct SymBook {
    bids: BTreeMap<i128, (String, String)>,
    asks: BTreeMap<i128, (String, String)>,
    /// `u` of the last depth message.
    last_id: u64,
    /// `lastUpdateId` of an installed recorded snapshot: older diffs are not applied.
    snap_id: u64,
    recent: VecDeque<Diff>,
}

impl SymBook {
    fn apply(&mut self, d: &Diff) {
        if d.last <= self.snap_id {
            return;
        }
        for (side, levels) in [(&mut self.bids, &d.bids), (&mut self.asks, &d.asks)] {
            for (p, q) in levels {
                let Some(k) = price_key(p) else { continue };
                if is_zero(q) {
                    side.remove(&k);
                } else {
                    side.insert(k, (p.clone(), q.clone()));
                }
            }
        }
    }

    fn on_depth(&mut self, d: Diff) {
        self.apply(&d);
        self.last_id = self.last_id.max(d.last);
        if self.recent.len() == RECENT_DIFFS {
            self.recent.pop_front();
        }
        self.recent.push_back(d);
    }

    fn on_snapshot(&mut self, s: &Diff) {
        self.bids.clear();
        self.asks.clear();
        self.snap_id = 0;
        self.apply(s);
        self.snap_id = s.last;
        let recent = std::mem::take(&mut self.recent);
        for d in &recent {
            self.apply(d);
        }
        self.recent = recent;
        self.last_id = self.last_id.max(s.last);
    }

    fn to_json(&self, limit: usize) -> String {
        let mut out = format!(r#"{{"lastUpdateId":{},"bids":"#, self.last_id);
        let bids: Vec<(String, String)> = self.bids.values().rev().take(limit).cloned().collect();
        let asks: Vec<(String, String)> = self.asks.values().take(limit).cloned().collect();
        levels_json(&mut out, &bids);
        out.push_str(r#","asks":"#);
        levels_json(&mut out, &asks);
        out.push('}');
        out
    }
}

#[derive(Debug, Default)]
struct Books {
    by_symbol: HashMap<String, SymBook>,
}

// ---------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------

#[derive(Debug)]
struct Shared {
    cfg: ServeConfig,
    source: Source,
    counters: Arc<Counters>,
    books: Mutex<Books>,
    stop: AtomicBool,
    session: Mutex<()>,
    /// The socket of the running session, to shut down on stop.
    current: Mutex<Option<TcpStream>>,
    active: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running server: its addresses, stats, and [`ServerHandle::stop`].
#[derive(Debug)]
pub struct ServerHandle {
    ws_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The bound WebSocket (and HTTP) address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// The bound extra HTTP address, if configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Counters so far.
    pub fn stats(&self) -> ServeStats {
        self.shared.counters.snapshot()
    }

    /// Stops accepting, ends the running session (its socket is shut down) and waits
    /// up to 2 s for connection threads; returns the final counters.
    pub fn stop(mut self) -> ServeStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(s) = lock(&self.shared.current).as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.shared.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds the sockets and starts the server threads. Recording files are opened once
/// here to report a missing file early (and again for each session).
pub fn spawn(cfg: ServeConfig, source: Source) -> Result<ServerHandle, ServeError> {
    if let Pacing::Speed(n) | Pacing::Rate(n) = cfg.pacing {
        if !(n.is_finite() && n > 0.0) {
            return Err(ServeError::Config(format!("pacing {n} must be finite and > 0")));
        }
    }
    let counters = Arc::new(Counters::default());
    drop(open_frames(&source, &counters)?);
    let bind = |addr: SocketAddr| -> Result<TcpListener, ServeError> {
        let l = TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    let ws = bind(cfg.bind)?;
    let ws_addr = ws.local_addr()?;
    let http = cfg.http_bind.map(bind).transpose()?;
    let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
    let shared = Arc::new(Shared {
        cfg,
        source,
        counters,
        books: Mutex::new(Books::default()),
        stop: AtomicBool::new(false),
        session: Mutex::new(()),
        current: Mutex::new(None),
        active: AtomicUsize::new(0),
    });
    let mut threads = Vec::new();
    let sh = shared.clone();
    threads.push(std::thread::Builder::new().name("serve-ws".into()).spawn(move || accept_loop(ws, sh, true))?);
    if let Some(http) = http {
        let sh = shared.clone();
        threads
            .push(std::thread::Builder::new().name("serve-http".into()).spawn(move || accept_loop(http, sh, false))?);
    }
    Ok(ServerHandle { ws_addr, http_addr, shared, threads })
}

/// [`spawn`], then blocks until `stop` is set (polling every 10 ms), then stops the
/// server and returns its counters. For the command line.
pub fn run(cfg: ServeConfig, source: Source, stop: &AtomicBool) -> Result<ServeStats, ServeError> {
    let h = spawn(cfg, source)?;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(POLL);
    }
    Ok(h.stop())
}

fn accept_loop(l: TcpListener, sh: Arc<Shared>, ws: bool) {
    let max = sh.cfg.max_connections.max(1);
    while !sh.stop.load(Ordering::Acquire) {
        match l.accept() {
            Ok((s, _)) => {
                if sh.active.load(Ordering::Acquire) >= max {
                    // Refused without a thread and without waiting: the answer fits
                    // the socket buffer of a fresh connection, or is lost.
                    bump(&sh.counters.refused);
                    let mut s = s;
                    let _ = s.set_nonblocking(true);
                    let _ = s.write_all(REFUSED.as_bytes());
                    let _ = s.shutdown(Shutdown::Both);
                    continue;
                }
                let sh2 = sh.clone();
                sh.active.fetch_add(1, Ordering::AcqRel);
                let r = std::thread::Builder::new().name("serve-conn".into()).spawn(move || {
                    let _ = handle_conn(s, &sh2, ws);
                    sh2.active.fetch_sub(1, Ordering::AcqRel);
                });
                if r.is_err() {
                    sh.active.fetch_sub(1, Ordering::AcqRel);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// The answer to a connection beyond `max_connections`.
const REFUSED: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Peeks the request head (without consuming it) until `\r\n\r\n`, within `timeout`
/// (`TimedOut` after it, `InvalidData` if the head is over 8 KiB).
fn peek_head(s: &TcpStream, timeout: Duration) -> io::Result<String> {
    let mut buf = vec![0u8; 8192];
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        let n = match s.peek(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(io::ErrorKind::TimedOut.into())
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(String::from_utf8_lossy(&buf[..end + 4]).into_owned());
        }
        if n == buf.len() {
            return Err(io::ErrorKind::InvalidData.into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn handle_conn(mut s: TcpStream, sh: &Shared, ws_port: bool) -> io::Result<()> {
    s.set_nonblocking(false)?;
    let timeout = Duration::from_millis(sh.cfg.handshake_timeout_ms.max(1));
    let head = match peek_head(&s, timeout) {
        Ok(h) => h,
        Err(e) => {
            if e.kind() == io::ErrorKind::TimedOut {
                bump(&sh.counters.handshake_timeouts);
            }
            return Err(e);
        }
    };
    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let upgrade = head.to_ascii_lowercase().contains("upgrade: websocket");
    if ws_port && upgrade && path == "/stream" {
        let streams: Option<HashSet<String>> = query_param(query, "streams")
            .filter(|v| !v.is_empty())
            .map(|v| v.split('/').map(normalize_stream).collect());
        s.set_read_timeout(Some(timeout))?;
        let ws = tungstenite::accept(s).map_err(|e| io::Error::other(e.to_string()))?;
        return session(ws, sh, streams.as_ref());
    }
    // Plain HTTP: consume the head, answer, close.
    let mut sink = vec![0u8; head.len()];
    s.read_exact(&mut sink)?;
    bump(&sh.counters.http_requests);
    let (status, body) = http_answer(&head, path, query, sh);
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(resp.as_bytes())?;
    s.flush()?;
    let _ = s.shutdown(Shutdown::Write);
    Ok(())
}

/// `BTCUSDT@bookTicker` -> `btcusdt@bookTicker`: symbols are matched case-blind, the
/// stream type as Binance spells it.
fn normalize_stream(s: &str) -> String {
    match s.split_once('@') {
        Some((sym, kind)) => format!("{}@{kind}", sym.to_ascii_lowercase()),
        None => s.to_ascii_lowercase(),
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.replace("%2F", "/").replace("%2f", "/"))
    })
}

fn http_answer(head: &str, path: &str, query: &str, sh: &Shared) -> (&'static str, String) {
    if !head.starts_with("GET ") {
        return ("405 Method Not Allowed", r#"{"code":-1,"msg":"Method not allowed."}"#.into());
    }
    if path != "/api/v3/depth" {
        return ("404 Not Found", r#"{"code":-1,"msg":"Not found."}"#.into());
    }
    let bad_symbol = ("400 Bad Request", r#"{"code":-1121,"msg":"Invalid symbol."}"#.to_string());
    let Some(sym) = query_param(query, "symbol").map(|s| s.to_ascii_uppercase()) else {
        return bad_symbol;
    };
    let limit = match query_param(query, "limit") {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) => n.clamp(1, 5000),
            Err(_) => {
                return (
                    "400 Bad Request",
                    r#"{"code":-1100,"msg":"Illegal characters found in parameter 'limit'."}"#.into(),
                )
            }
        },
    };
    let books = lock(&sh.books);
    match books.by_symbol.get(&sym) {
        Some(b) => ("200 OK", b.to_json(limit)),
        None => bad_symbol,
    }
}

fn every(n: Option<u64>, count: u64) -> bool {
    matches!(n, Some(n) if n > 0 && count.is_multiple_of(n))
}

/// Sleeps until `until`, in slices, returning false if stop was requested.
fn sleep_until(until: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// [`sleep_until`], with the last 200 us spun (yielding) rather than slept.
fn spin_until(until: Instant, stop: &AtomicBool) -> bool {
    const SPIN: Duration = Duration::from_micros(200);
    if until.saturating_duration_since(Instant::now()) > SPIN && !sleep_until(until - SPIN, stop) {
        return false;
    }
    while Instant::now() < until {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

fn session(mut ws: WebSocket<TcpStream>, sh: &Shared, streams: Option<&HashSet<String>>) -> io::Result<()> {
    let _one = lock(&sh.session);
    if sh.stop.load(Ordering::Acquire) {
        return Ok(());
    }
    bump(&sh.counters.sessions);
    *lock(&sh.current) = ws.get_ref().try_clone().ok();
    {
        let mut books = lock(&sh.books);
        books.by_symbol.clear();
        for s in known_symbols(&sh.source) {
            books.by_symbol.insert(s, SymBook::default());
        }
    }
    let _ = ws.get_ref().set_nodelay(true);
    let _ = ws.get_ref().set_read_timeout(None);
    let result = replay(&mut ws, sh, streams);
    *lock(&sh.current) = None;
    result
}

fn replay(ws: &mut WebSocket<TcpStream>, sh: &Shared, streams: Option<&HashSet<String>>) -> io::Result<()> {
    let werr = |e: tungstenite::Error| io::Error::other(e.to_string());
    let frames = match open_frames(&sh.source, &sh.counters) {
        Ok(f) => f,
        Err(e) => {
            let reason = format!("source error: {e}");
            let reason: String = reason.chars().take(100).collect();
            let _ = ws.close(Some(CloseFrame { code: CloseCode::Error, reason: reason.into() }));
            let _ = ws.flush();
            return Ok(());
        }
    };
    let f = sh.cfg.faults;
    let c = &sh.counters;
    let speed = match sh.cfg.pacing {
        Pacing::Recorded => Some(1.0),
        Pacing::Speed(n) => Some(n),
        Pacing::Rate(_) | Pacing::Max => None,
    };
    let ns_per_msg = match sh.cfg.pacing {
        Pacing::Rate(r) => Some(1e9 / r),
        _ => None,
    };
    let stamps = StampClock::new();
    let start = Instant::now();
    let mut rate_start = start;
    let mut ts0: Option<Ts> = None;
    let (mut sent, mut depth_seen) = (0u64, 0u64);
    for frame in frames {
        if sh.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Some(speed) = speed {
            let t0 = *ts0.get_or_insert(frame.ts);
            let dt = ((frame.ts - t0).max(0) as f64 / speed) as u64;
            if !sleep_until(start + Duration::from_nanos(dt), &sh.stop) {
                return Ok(());
            }
        }
        let is_depth = match frame.kind {
            Kind::Snapshot(s) => {
                lock(&sh.books).by_symbol.entry(s.symbol.clone()).or_default().on_snapshot(&s);
                continue;
            }
            Kind::Depth(d) => {
                lock(&sh.books).by_symbol.entry(d.symbol.clone()).or_default().on_depth(d);
                true
            }
            Kind::Other => false,
        };
        if streams.is_some_and(|s| !s.contains(&frame.stream)) {
            continue;
        }
        if is_depth {
            depth_seen += 1;
            if every(f.gap_every, depth_seen) {
                bump(&c.gaps);
                continue;
            }
        }
        let warm = sent >= sh.cfg.warmup_messages;
        if let (Some(ns), true) = (ns_per_msg, warm) {
            let paced = sent - sh.cfg.warmup_messages;
            if paced == 0 {
                rate_start = Instant::now();
            }
            if !spin_until(rate_start + Duration::from_nanos((paced as f64 * ns) as u64), &sh.stop) {
                return Ok(());
            }
        }
        if sh.cfg.wire_stamps && warm {
            ws.write(Message::binary(stamps.raw().to_le_bytes().to_vec())).map_err(werr)?;
        }
        ws.send(Message::text(frame.text)).map_err(werr)?;
        sent += 1;
        bump(&c.messages);
        if is_depth {
            bump(&c.depth_messages);
        }
        if every(f.malformed_every, sent) {
            ws.send(Message::text(MALFORMED)).map_err(werr)?;
            bump(&c.malformed);
        }
        if every(f.stall_every, sent) {
            bump(&c.stalls);
            if !sleep_until(Instant::now() + Duration::from_millis(f.stall_ms), &sh.stop) {
                return Ok(());
            }
        }
        if every(f.drop_every, sent) {
            bump(&c.drops);
            let _ = ws.get_mut().flush();
            let _ = ws.get_ref().shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: END_OF_DATA.into() })).map_err(werr)?;
    let _ = ws.flush();
    bump(&c.completed);
    // Wait briefly for the client's Close.
    let _ = ws.get_ref().set_read_timeout(Some(Duration::from_secs(2)));
    while ws.read().is_ok() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::gen::{generate, GenParams};

    #[test]
    fn an_overlong_recording_line_is_a_counted_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rec.txt");
        let msg = r#"{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}"#;
        let long = format!("2 {{\"stream\":\"{}\"}}", "x".repeat(DEFAULT_MAX_LINE_BYTES));
        std::fs::write(&p, format!("1 {msg}\n{long}\n3 {msg}\n")).unwrap();
        let counters = Arc::new(Counters::default());
        let mut f = RecFile::open(&p, Arc::clone(&counters)).unwrap();
        assert_eq!(f.next.as_ref().map(|x| x.ts), Some(1));
        f.advance();
        assert_eq!(f.next.as_ref().map(|x| x.ts), Some(3), "the long line is skipped");
        assert_eq!(counters.bad_lines.load(Ordering::Relaxed), 1);
        assert!(f.lines.capacity() <= 2 * DEFAULT_MAX_LINE_BYTES + 8, "the buffer stays bounded");
        f.advance();
        assert!(f.next.is_none());
    }

    #[test]
    fn pacing_parses() {
        assert_eq!("max".parse::<Pacing>().unwrap(), Pacing::Max);
        assert_eq!("recorded".parse::<Pacing>().unwrap(), Pacing::Recorded);
        assert_eq!("10x".parse::<Pacing>().unwrap(), Pacing::Speed(10.0));
        assert_eq!("100000/s".parse::<Pacing>().unwrap(), Pacing::Rate(100_000.0));
        assert!("0/s".parse::<Pacing>().is_err() && "x/s".parse::<Pacing>().is_err());
        assert!("0x".parse::<Pacing>().is_err());
        assert!("fast".parse::<Pacing>().is_err());
    }

    #[test]
    fn recorded_lines_parse() {
        let mut last = None;
        let f = parse_line(
            r#"5 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":3,"u":4,"b":[["1.00","2"]],"a":[]}}"#,
            &mut last,
        )
        .unwrap();
        assert!(matches!(f.kind, Kind::Depth(ref d) if d.last == 4 && d.bids.len() == 1));
        assert_eq!(last.as_deref(), Some("BTCUSDT"));
        let s = parse_line(r#"6 {"lastUpdateId":9,"bids":[],"asks":[["2.0","1.0"]]}"#, &mut last).unwrap();
        assert!(matches!(s.kind, Kind::Snapshot(ref d) if d.symbol == "BTCUSDT" && d.last == 9));
        // A tagged snapshot names its own symbol, and names it for the lines after it.
        let t = parse_line(
            r#"7 {"statarb_snapshot":"ethusdt","data":{"lastUpdateId":12,"bids":[["3.0","1"]],"asks":[]}}"#,
            &mut last,
        )
        .unwrap();
        assert!(matches!(t.kind, Kind::Snapshot(ref d) if d.symbol == "ETHUSDT" && d.last == 12 && d.bids.len() == 1));
        assert_eq!(last.as_deref(), Some("ETHUSDT"));
        // Malformed tagged lines: skipped (counted by the caller), not panics.
        for bad in [
            r#"8 {"statarb_snapshot":"ETHUSDT","data":{"lastUpdateId":12}"#,
            r#"8 {"statarb_snapshot":"ETH USDT","data":{}}"#,
            r#"8 {"statarb_snapshot":"ETHUSDT","data":{"lastUpdateId":"x","bids":[],"asks":[]}}"#,
            r#"8 {"statarb_snapshot":"ETHUSDT","data":{"bids":[],"asks":[]}}"#,
        ] {
            assert!(parse_line(bad, &mut last).is_none(), "{bad}");
        }
        assert!(parse_line("x {}", &mut last).is_none());
        assert!(parse_line("7 not json", &mut last).is_none());
    }

    #[test]
    fn snapshot_then_recent_diffs() {
        let d = |last, b: &[(&str, &str)]| Diff {
            symbol: "X".into(),
            last,
            bids: b.iter().map(|(p, q)| (p.to_string(), q.to_string())).collect(),
            asks: vec![],
        };
        let mut b = SymBook::default();
        b.on_depth(d(10, &[("1.0", "1")]));
        b.on_depth(d(20, &[("2.0", "1")]));
        b.on_snapshot(&d(15, &[("3.00", "5")]));
        // The diff up to 10 is older than the snapshot; the one up to 20 is re-applied.
        assert_eq!(b.to_json(10), r#"{"lastUpdateId":20,"bids":[["3.00","5"],["2.0","1"]],"asks":[]}"#);
        b.on_depth(d(21, &[("3.0", "0")]));
        assert_eq!(b.to_json(10), r#"{"lastUpdateId":21,"bids":[["2.0","1"]],"asks":[]}"#);
    }

    #[test]
    fn generated_ids_are_consecutive() {
        let ds = Arc::new(generate(&GenParams { events: 2_000, ..GenParams::default() }));
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut n = 0;
        for f in GenFrames::new(ds) {
            let v: Value = serde_json::from_str(&f.text).unwrap();
            if v["data"]["e"] == "depthUpdate" {
                let s = v["data"]["s"].as_str().unwrap().to_string();
                let prev = last.get(&s).copied().unwrap_or(0);
                assert_eq!(v["data"]["U"].as_u64().unwrap(), prev + 1);
                last.insert(s, v["data"]["u"].as_u64().unwrap());
                n += 1;
            }
        }
        assert!(n > 10);
    }
}
