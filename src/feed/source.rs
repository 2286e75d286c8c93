//! The live Binance market-data source of the hot thread, and the [`MarketSource`] trait
//! every source of the hot loop implements (here, below the live loop that polls it).
//!
//! One combined-stream WebSocket connection carries `<symbol>@bookTicker`,
//! `<symbol>@depth@100ms` and `<symbol>@trade` (or `@aggTrade`) for both legs. Each
//! turn of the hot loop calls [`MarketSource::poll`], which hands out a buffered event
//! if there is one; otherwise it polls mio with a zero timeout, lets the
//! [`WsClient`] read every message available, tees each raw message to the recorder,
//! parses it with simd-json ([`BinanceParser`]), runs depth diffs through the
//! per-instrument [`DepthSync`] (Binance's local-book procedure, with snapshots fetched
//! off the hot thread by [`SnapshotFetcher`]) and queues the resulting events.
//!
//! # Snapshot retries
//!
//! A snapshot that is older than the first buffered diff, or that failed, is asked for
//! again after an exponential back-off with jitter, per instrument: the `n`-th retry in
//! a row waits `d = min(SNAPSHOT_BACKOFF_MIN * 2^(n-1), SNAPSHOT_BACKOFF_MAX)`, drawn
//! from `[d/2, d)` ("equal jitter", M. Brooker, "Exponential Backoff And Jitter", AWS
//! Architecture Blog, 2015) by a hash of the instrument and `n`, so runs are
//! reproducible and the two legs do not retry in step. A good sync resets `n`. A
//! 429/418 back-off or a refusal by the shared per-IP budget
//! ([`crate::ratelimit::IpBudget`]) pushes the retry to at least the end of the
//! block. Retries are scheduled on the wall clock, whatever [`FeedClock`] says: a
//! replay faster than real time must not make them faster. Counted in [`FeedStats`].
//!
//! # Disconnects
//!
//! When the connection drops (the client leaves the open state) every book is cleared
//! at once ([`crate::event::EventKind::Clear`]), not only when the next connection
//! opens, so the core pulls its quotes during the outage. With
//! [`FeedConfig::end_on_close`] only a clean end by the peer (a Close frame, or an
//! orderly EOF) ends the feed; a reset or another failure reconnects
//! ([`crate::feed::ws::PeerEnd`]).
//!
//! Book tickers are applied only while their instrument's book is synced and only if
//! their update id is newer than the book's, so a ticker that lags the diff stream
//! never deletes live levels. While a leg is unsynced (start-up, reconnect, gap) its
//! book has been cleared with [`crate::event::EventKind::Clear`], so the core has no market for it and
//! pulls its quotes.
//!
//! Everything is allocated in [`BinanceFeed::new`]: the event queue, the level buffer,
//! the parser's buffers. The steady state allocates only inside tungstenite and rustls
//! (one payload per message; see [`crate::feed::ws`]).

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll, Token};
use thiserror::Error;

use crate::clock::{Stamp, StampClock};
use crate::event::MarketEvent;
use crate::feed::binance::{BinanceParser, DepthLevel, Parsed};
use crate::feed::clock::ExchangeClock;
use crate::feed::config::{FeedClock, FeedConfig};
use crate::feed::record::RecordTap;
use crate::feed::snapshot::{wall_ns, SnapshotError, SnapshotFetcher};
use crate::feed::sync::{DepthSync, SyncAction};
use crate::feed::ws::{tls_config, Failure, PeerEnd, WsClient, WsConfig, WsError};
use crate::ratelimit::{IpBudget, DEFAULT_RETRY_AFTER_CAP_S};
use crate::types::{InstId, Instrument, Ts, NS_PER_MS, NS_PER_SEC};

/// What one poll of a market source did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// Events were handed to the callback.
    Events,
    /// Nothing was ready.
    Idle,
    /// The source is finished (end of a recording, server closed a replay).
    End,
}

/// A source of market events for the hot thread: a socket feed, or a recording.
///
/// `poll` hands every event that is ready now to `on_event`, in order, and must not
/// block. A socket source delivers everything one read produced (a message can carry
/// hundreds of levels, a snapshot thousands), so the events go straight into the
/// strategy instead of through a bounded queue that could overflow.
pub trait MarketSource {
    /// Hands the ready events to `on_event`; never blocks.
    fn poll(&mut self, on_event: &mut impl FnMut(&MarketEvent)) -> Polled;
    /// As [`MarketSource::poll`], with each event's [`FeedStamps`]: when its message's
    /// bytes were in hand and when the message was parsed, for the stage latencies. A
    /// source without them (a replay) gives zeros, the default.
    #[inline]
    fn poll_stamped(&mut self, on_event: &mut impl FnMut(&MarketEvent, FeedStamps)) -> Polled {
        self.poll(&mut |ev| on_event(ev, FeedStamps::default()))
    }
    /// Local time now: the wall clock for a live feed, the event clock for a replay.
    fn now(&self) -> Ts;
    /// True if [`MarketSource::now`] and the events' `local_ts` are the local receive
    /// clock (a replay of recorded events); false for a live source, whose local
    /// receive clock is the hot loop's own, whatever clock `now` keeps.
    const RECORDED: bool = false;

    /// The source's running counters, read by the hot loop for the monitor thread
    /// (`crate::monitor`). Plain field reads: no allocation, no system call. A replay
    /// source has no connection and books always in sync, the default.
    #[inline]
    fn counters(&self) -> FeedCounters {
        FeedCounters { synced: [true; 2], ..FeedCounters::default() }
    }
}

/// When an event's message reached the feed, on the [`StampClock`] (0: not stamped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStamps {
    /// The server sent the message (its send stamp, `feed.wire_stamps`; same host only).
    pub sent: Stamp,
    /// The message's bytes were read from the socket and framed (the WebSocket client
    /// handed it over).
    pub read: Stamp,
    /// The message was parsed.
    pub parsed: Stamp,
}

/// What a source tells the monitor: its connection and book-sync counters, and
/// whether the pair's two books are in sync now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedCounters {
    /// Raw messages received.
    pub messages: u64,
    /// Connections that reached `Open`.
    pub connects: u64,
    /// Open connections lost or closed.
    pub disconnects: u64,
    /// Connection failures (connect, TLS, handshake, I/O, protocol, timeouts).
    pub errors: u64,
    /// Books (re)built from a snapshot, all instruments.
    pub resyncs: u64,
    /// Sequence gaps and buffer overflows, all instruments (each forces a resync).
    pub gaps: u64,
    /// Messages that failed to parse (counted, skipped).
    pub parse_errors: u64,
    /// Snapshot requests that failed or came back stale (retried with back-off).
    pub snapshot_errors: u64,
    /// What the last connection failure was.
    pub last_failure: Failure,
    /// Whether the book of each of the first two instruments (the pair's legs) is in
    /// sync: built from a snapshot and following its diffs.
    pub synced: [bool; 2],
}

/// Longest wait in epoll per poll with `feed.busy_poll = false`.
const BLOCKING_POLL: Duration = Duration::from_millis(1);

/// Buffered diffs per instrument while a snapshot is on its way.
const SYNC_BUFFER: usize = 4096;
/// First snapshot retry delay (before jitter).
pub const SNAPSHOT_BACKOFF_MIN_NS: Ts = 500 * NS_PER_MS;
/// Cap of the snapshot retry delay.
pub const SNAPSHOT_BACKOFF_MAX_NS: Ts = 30 * NS_PER_SEC;

/// The delay before the `n`-th snapshot retry in a row (`n >= 1`) of instrument `inst`:
/// `d = min(MIN * 2^(n-1), MAX)`, then equal jitter in `[d/2, d)` from a splitmix64
/// hash of `(inst, n)` (see the module docs).
#[inline]
pub fn snapshot_backoff_ns(inst: InstId, n: u32) -> Ts {
    let shift = n.saturating_sub(1).min(16);
    let d = SNAPSHOT_BACKOFF_MIN_NS.saturating_mul(1 << shift).min(SNAPSHOT_BACKOFF_MAX_NS);
    let mut z = ((inst as u64) << 32 | n as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let half = d / 2;
    half + (z % half.max(1) as u64) as Ts
}

/// Why a feed could not start.
#[derive(Debug, Error)]
pub enum FeedError {
    /// The WebSocket client refused its configuration.
    #[error("websocket: {0}")]
    Ws(#[from] WsError),
    /// mio or the snapshot thread could not start.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Counters of the feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeedStats {
    /// Raw messages received.
    pub messages: u64,
    /// Messages that failed to parse (counted, skipped).
    pub parse_errors: u64,
    /// Snapshots requested.
    pub snapshots_requested: u64,
    /// Snapshots that failed (HTTP, parse, rate limited), retried.
    pub snapshot_errors: u64,
    /// Snapshots older than the first buffered diff, retried.
    pub snapshot_stale: u64,
    /// Snapshot retries scheduled (each after a back-off).
    pub snapshot_retries: u64,
    /// 429 / 418 answers to snapshot requests (the per-IP budget backs off).
    pub snapshot_backoffs: u64,
    /// Snapshot requests the per-IP budget refused before sending.
    pub snapshot_limited: u64,
    /// Book tickers dropped as older than the book or for an unsynced book.
    pub stale_tickers: u64,
    /// Events handed to the hot loop.
    pub events: u64,
    /// Messages not recorded (recorder pool exhausted).
    pub record_drops: u64,
    /// Exchange-clock jumps refused (one absurd stamp; see [`ExchangeClock`]).
    pub clock_jumps: u64,
}

/// Binance combined streams for a set of instruments, as a [`MarketSource`].
#[derive(Debug)]
pub struct BinanceFeed {
    poll: Poll,
    events: Events,
    ws: WsClient,
    parser: BinanceParser,
    syncs: Vec<DepthSync>,
    /// Per instrument: wall time of the next snapshot request, `Ts::MAX` when none is
    /// due.
    snapshot_due: Vec<Ts>,
    /// Per instrument: a request is out, its response not yet in.
    snapshot_out: Vec<bool>,
    /// Per instrument: snapshot failures in a row since the last good sync.
    snapshot_failures: Vec<u32>,
    snapshots: SnapshotFetcher,
    levels: Vec<DepthLevel>,
    tap: Option<RecordTap>,
    clock: FeedClock,
    end_on_close: bool,
    ended: bool,
    generation: u64,
    /// The client was open at the end of the previous pump.
    was_open: bool,
    now: Ts,
    /// The exchange clock (`clock = "exchange"`): a running maximum that refuses
    /// unconfirmed jumps.
    exch_clock: ExchangeClock,
    stats: FeedStats,
    /// Stamps each message's arrival and parse ([`FeedStamps`]).
    stamp_clock: StampClock,
    /// `feed.wire_stamps`: 8-byte binary frames are the server's send stamps.
    wire_stamps: bool,
    /// The send stamp for the next message (0: none).
    pending_sent: Stamp,
    /// How long a poll may block in epoll: zero to busy-poll (`feed.busy_poll`).
    poll_timeout: Duration,
}

/// The combined-stream URL for `instruments` on `base` (`wss://host:9443/stream`).
pub fn stream_url(base: &str, instruments: &[Instrument], agg_trades: bool) -> String {
    let trade = if agg_trades { "aggTrade" } else { "trade" };
    let streams: Vec<String> = instruments
        .iter()
        .flat_map(|i| {
            let s = i.symbol.to_ascii_lowercase();
            [format!("{s}@bookTicker"), format!("{s}@depth@100ms"), format!("{s}@{trade}")]
        })
        .collect();
    format!("{base}?streams={}", streams.join("/"))
}

impl BinanceFeed {
    /// A feed for `instruments` (their index is their [`InstId`]) as configured; `tap`
    /// receives every raw message with its local receive time, and every REST snapshot
    /// fetched as a tagged snapshot line ([`crate::feed::record`]). Snapshots draw on a
    /// per-IP budget of their own (Binance's 6000 weight per minute); use
    /// [`Self::with_budget`] to share the gateway's.
    pub fn new(cfg: &FeedConfig, instruments: &[Instrument], tap: Option<RecordTap>) -> Result<Self, FeedError> {
        Self::with_budget(cfg, instruments, tap, Arc::new(IpBudget::new(6_000, DEFAULT_RETRY_AFTER_CAP_S)))
    }

    /// As [`Self::new`], with snapshot requests counted against `budget`, the per-IP
    /// request-weight budget shared with the gateway.
    pub fn with_budget(
        cfg: &FeedConfig,
        instruments: &[Instrument],
        tap: Option<RecordTap>,
        budget: Arc<IpBudget>,
    ) -> Result<Self, FeedError> {
        let poll = Poll::new()?;
        let mut ws_cfg = WsConfig::new(stream_url(&cfg.ws_url, instruments, cfg.agg_trades));
        ws_cfg.read_buffer_size = cfg.read_buffer_size;
        let ws = WsClient::new(ws_cfg, tls_config(&[])?, Token(0))?;
        let symbols = instruments.iter().map(|i| i.symbol.clone()).collect();
        // The snapshot thread records what it fetches through its own producer handle.
        let snap_tap = tap.as_ref().map(RecordTap::producer);
        let snapshots = SnapshotFetcher::spawn(
            &cfg.rest_url,
            symbols,
            cfg.snapshot_limit,
            Duration::from_secs(10),
            budget,
            snap_tap,
        )?;
        let max_levels = (2 * cfg.snapshot_limit as usize).max(4096);
        Ok(BinanceFeed {
            poll,
            events: Events::with_capacity(64),
            ws,
            parser: BinanceParser::new(instruments, max_levels),
            syncs: (0..instruments.len()).map(|i| DepthSync::new(i as InstId, SYNC_BUFFER)).collect(),
            snapshot_due: vec![Ts::MAX; instruments.len()],
            snapshot_out: vec![false; instruments.len()],
            snapshot_failures: vec![0; instruments.len()],
            snapshots,
            levels: Vec::with_capacity(max_levels),
            tap,
            clock: cfg.clock,
            end_on_close: cfg.end_on_close,
            ended: false,
            generation: 0,
            was_open: false,
            // The exchange clock starts at the first event time seen.
            now: if cfg.clock == FeedClock::Wall { wall_ns() } else { 0 },
            exch_clock: ExchangeClock::default(),
            stats: FeedStats::default(),
            stamp_clock: StampClock::new(),
            wire_stamps: cfg.wire_stamps,
            pending_sent: 0,
            poll_timeout: if cfg.busy_poll { Duration::ZERO } else { BLOCKING_POLL },
        })
    }

    /// Counters.
    pub fn stats(&self) -> FeedStats {
        self.stats
    }

    /// Waits at most `timeout` for socket readiness and hands it to the WebSocket
    /// client, for a caller that is not a busy-polling hot thread (`statarb record`):
    /// the next [`MarketSource::poll`] then reads what arrived. An interrupted wait (a
    /// signal) is an `Err` of kind [`std::io::ErrorKind::Interrupted`].
    pub fn wait(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.poll.poll(&mut self.events, Some(timeout))?;
        for ev in self.events.iter() {
            self.ws.on_event(ev);
        }
        Ok(())
    }

    /// The WebSocket client (state, counters).
    pub fn ws(&self) -> &WsClient {
        &self.ws
    }

    /// The synchroniser of instrument `inst`.
    pub fn sync(&self, inst: InstId) -> &DepthSync {
        &self.syncs[inst as usize]
    }

    /// One round of I/O: snapshots, socket readiness, messages.
    fn pump(&mut self, on_event: &mut impl FnMut(&MarketEvent, FeedStamps)) {
        let wall = wall_ns();
        // The stamps of the message being handled; snapshots' events carry none.
        let stamps = Cell::new(FeedStamps::default());
        if self.clock == FeedClock::Wall {
            self.now = wall;
        }
        let now = self.now;
        let BinanceFeed {
            parser, syncs, levels, stats, snapshot_due, snapshot_out, snapshot_failures, snapshots, ..
        } = self;
        let mut push = |ev: MarketEvent| {
            stats.events += 1;
            on_event(&ev, stamps.get());
        };
        while let Some(snap) = snapshots.poll() {
            let i = snap.inst as usize;
            let Some(sync) = syncs.get_mut(i) else { continue };
            snapshot_out[i] = false;
            // Not before this (wall ns): the end of a server back-off or budget refusal.
            let mut not_before = Ts::MIN;
            let retry = match &snap.body {
                Ok(body) => match parser.parse_snapshot(body, snap.inst, levels) {
                    Ok(last_id) => {
                        let action = sync.on_snapshot(last_id, levels, now, &mut push);
                        if sync.is_synced() {
                            snapshot_failures[i] = 0;
                            snapshot_due[i] = Ts::MAX;
                            false
                        } else if action == SyncAction::NeedSnapshot {
                            stats.snapshot_stale += 1;
                            true
                        } else {
                            // Nothing buffered to check it against: the next diff asks.
                            false
                        }
                    }
                    Err(_) => {
                        stats.snapshot_errors += 1;
                        true
                    }
                },
                Err(e) => {
                    stats.snapshot_errors += 1;
                    match e {
                        SnapshotError::Backoff { until, .. } => {
                            stats.snapshot_backoffs += 1;
                            not_before = *until;
                        }
                        SnapshotError::Limited { limited, .. } => {
                            stats.snapshot_limited += 1;
                            not_before = limited.retry_at;
                        }
                        _ => {}
                    }
                    true
                }
            };
            if retry {
                snapshot_failures[i] = snapshot_failures[i].saturating_add(1);
                let delay = snapshot_backoff_ns(snap.inst, snapshot_failures[i]);
                snapshot_due[i] = wall.saturating_add(delay).max(not_before);
                stats.snapshot_retries += 1;
            }
        }
        for (i, due) in snapshot_due.iter_mut().enumerate() {
            if wall >= *due && !snapshot_out[i] && snapshots.request(i as InstId) {
                stats.snapshots_requested += 1;
                snapshot_out[i] = true;
                *due = Ts::MAX;
            }
        }
        if self.poll.poll(&mut self.events, Some(self.poll_timeout)).is_ok() {
            for ev in self.events.iter() {
                self.ws.on_event(ev);
            }
        }
        let BinanceFeed {
            ws,
            poll,
            parser,
            syncs,
            levels,
            stats,
            snapshot_due,
            snapshot_out,
            snapshot_failures,
            tap,
            clock,
            exch_clock,
            stamp_clock,
            wire_stamps,
            pending_sent,
            ..
        } = self;
        let mut push = |ev: MarketEvent| {
            stats.events += 1;
            on_event(&ev, stamps.get());
        };
        let exchange_clock = *clock == FeedClock::Exchange;
        let mut stale_tickers = 0;
        let mut t = now;
        ws.poll(poll.registry(), wall, |msg| {
            let read = stamp_clock.raw();
            if *wire_stamps {
                if let Ok(sent) = <[u8; 8]>::try_from(msg) {
                    *pending_sent = u64::from_le_bytes(sent);
                    return;
                }
            }
            if let Some(tap) = tap {
                // Never blocks; a full pool drops and counts (see `record_drops`).
                tap.record(wall, msg);
            }
            let parsed = parser.parse(msg, t, levels);
            // With send stamps, only the stamped messages are timed: the server's
            // unstamped warm-up would otherwise mix into the wire stages.
            let sent = std::mem::take(pending_sent);
            stamps.set(if *wire_stamps && sent == 0 {
                FeedStamps::default()
            } else {
                FeedStamps { sent, read, parsed: stamp_clock.raw() }
            });
            if let (true, Ok(Parsed::Depth { exch_ts, .. } | Parsed::Trade { exch_ts, .. })) = (exchange_clock, &parsed)
            {
                t = exch_clock.observe(*exch_ts);
            }
            match parsed {
                Ok(Parsed::Depth { inst, exch_ts, first_id, last_id }) => {
                    let i = inst as usize;
                    if syncs[i].on_depth(first_id, last_id, exch_ts, levels, t, &mut push) == SyncAction::NeedSnapshot
                        && snapshot_due[i] == Ts::MAX
                        && !snapshot_out[i]
                    {
                        // At once after a good sync; after failures, not before the
                        // back-off says.
                        let n = snapshot_failures[i];
                        snapshot_due[i] = if n == 0 { wall } else { wall.saturating_add(snapshot_backoff_ns(inst, n)) };
                    }
                }
                Ok(p @ Parsed::BookTicker { inst, update_id, .. }) => {
                    let s = &syncs[inst as usize];
                    // A ticker at the book's own update id describes that same state.
                    if s.is_synced() && update_id >= s.last_update_id() {
                        p.emit(levels, t, &mut push);
                    } else {
                        stale_tickers += 1;
                    }
                }
                Ok(p) => p.emit(levels, t, &mut push),
                Err(_) => {}
            }
        });
        self.stats.stale_tickers += stale_tickers;
        if exchange_clock {
            self.now = t;
        }
        self.stats.messages = self.parser.stats().messages;
        self.stats.parse_errors = self.parser.stats().errors;
        self.stats.clock_jumps = self.exch_clock.refused();
        if let Some(tap) = &self.tap {
            self.stats.record_drops = tap.stats().dropped;
        }
        let open = self.ws.is_open();
        if self.end_on_close && self.generation > 0 && !open && ends_data(self.ws.peer_end()) {
            // The end of the data: the books keep their last state.
            self.ended = true;
            return;
        }
        // Dropped (the client left the open state), or (re)connected: messages were or
        // will be lost, so every book starts over now; each synchroniser asks for a
        // snapshot on its first diff of the new connection.
        let dropped = self.was_open && !open;
        self.was_open = open;
        if dropped || self.ws.generation() != self.generation {
            self.generation = self.ws.generation();
            let BinanceFeed { syncs, stats, .. } = self;
            for s in syncs.iter_mut() {
                s.reset(now, &mut |ev| {
                    stats.events += 1;
                    on_event(&ev, FeedStamps::default());
                });
            }
        }
    }
}

/// True if the peer ended the connection cleanly (Close frame or orderly EOF): the end
/// of the data for a feed with `end_on_close`. A reset or another failure is not.
#[inline]
fn ends_data(end: Option<PeerEnd>) -> bool {
    matches!(end, Some(PeerEnd::Close | PeerEnd::Eof))
}

/// What a poll that pumped the socket returns: events first, then the end.
#[inline]
fn polled(delivered: bool, ended: bool) -> Polled {
    if delivered {
        Polled::Events
    } else if ended {
        Polled::End
    } else {
        Polled::Idle
    }
}

impl MarketSource for BinanceFeed {
    #[inline]
    fn counters(&self) -> FeedCounters {
        let ws = self.ws.stats();
        let (mut resyncs, mut gaps) = (0, 0);
        for sync in &self.syncs {
            let s = sync.stats();
            resyncs += s.syncs;
            gaps += s.gaps + s.overflows;
        }
        let synced = |i: usize| self.syncs.get(i).is_some_and(DepthSync::is_synced);
        FeedCounters {
            messages: self.stats.messages,
            connects: ws.connects,
            disconnects: ws.disconnects,
            errors: ws.errors,
            last_failure: ws.last_failure,
            resyncs,
            gaps,
            parse_errors: self.stats.parse_errors,
            snapshot_errors: self.stats.snapshot_errors + self.stats.snapshot_stale,
            synced: [synced(0), synced(1)],
        }
    }

    #[inline]
    fn poll(&mut self, on_event: &mut impl FnMut(&MarketEvent)) -> Polled {
        self.poll_stamped(&mut |ev, _| on_event(ev))
    }

    #[inline]
    fn poll_stamped(&mut self, on_event: &mut impl FnMut(&MarketEvent, FeedStamps)) -> Polled {
        if self.ended {
            return Polled::End;
        }
        let before = self.stats.events;
        self.pump(on_event);
        polled(self.stats.events > before, self.ended)
    }

    #[inline]
    fn now(&self) -> Ts {
        self.now
    }
}

/// Where an Alpaca session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlpacaState {
    /// No connection, or waiting for the server's `connected`.
    Connecting,
    /// `auth` sent, waiting for `authenticated`.
    Authenticating,
    /// `subscribe` sent; market data flows.
    Subscribed,
    /// The server refused the credentials (or another fatal error): the feed ends.
    Failed,
}

/// Counters of an Alpaca feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AlpacaFeedStats {
    /// Raw messages received.
    pub messages: u64,
    /// Messages that failed to parse (counted, skipped).
    pub parse_errors: u64,
    /// Sessions authenticated (1 + reconnects that got through).
    pub authenticated: u64,
    /// `error` messages from the server.
    pub server_errors: u64,
    /// Last error code the server sent (0: none).
    pub last_error_code: i64,
    /// Events handed to the hot loop.
    pub events: u64,
    /// Messages not recorded (recorder pool exhausted).
    pub record_drops: u64,
    /// Exchange-clock jumps refused (one absurd stamp; see [`ExchangeClock`]).
    pub clock_jumps: u64,
}

/// Alpaca's codes after which retrying cannot help: 401 not authenticated, 402 auth
/// failed, 404 auth timeout, 409 insufficient subscription (the "Real-time Stock
/// Pricing Data" page's error table, shared by the crypto stream).
const ALPACA_FATAL: [i64; 4] = [401, 402, 404, 409];

/// Alpaca crypto quotes and trades over one WebSocket, as a [`MarketSource`].
///
/// The session follows Alpaca's protocol: the server greets with
/// `[{"T":"success","msg":"connected"}]`, the client sends `auth` with the key and
/// secret (from the environment variables named in config), the server answers
/// `authenticated`, the client subscribes to `trades` and `quotes` of both legs. Every
/// (re)connection clears both books ([`crate::event::EventKind::Clear`]) until the first
/// quote of the new session, so the core never quotes across a gap. Quotes are the
/// top of the book (`BestBid` + `BestAsk`); Alpaca's crypto stream has no diff depth
/// in this source.
#[derive(Debug)]
pub struct AlpacaFeed {
    poll: Poll,
    events: Events,
    ws: WsClient,
    parser: crate::feed::alpaca::AlpacaParser,
    auth: crate::feed::alpaca::AlpacaAuth,
    subscribe: String,
    tap: Option<RecordTap>,
    clock: FeedClock,
    state: AlpacaState,
    end_on_close: bool,
    ended: bool,
    generation: u64,
    instruments: usize,
    now: Ts,
    /// The exchange clock (`clock = "exchange"`): a running maximum that refuses
    /// unconfirmed jumps.
    exch_clock: ExchangeClock,
    stats: AlpacaFeedStats,
}

/// Why an Alpaca feed could not start.
#[derive(Debug, Error)]
pub enum AlpacaFeedError {
    /// The feed config lacks a key or secret variable name.
    #[error("feed.{0} is required for venue \"alpaca\"")]
    MissingSetting(&'static str),
    /// The named environment variable is not set (its value is never printed).
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The WebSocket client or mio could not start.
    #[error(transparent)]
    Feed(#[from] FeedError),
}

impl AlpacaFeed {
    /// A feed for `instruments`, whose symbols are Alpaca's (`BTC/USD`; their index is
    /// their [`InstId`]). Reads the credentials from the environment variables named by
    /// `cfg.key_env` and `cfg.secret_env`.
    pub fn new(cfg: &FeedConfig, instruments: &[Instrument], tap: Option<RecordTap>) -> Result<Self, AlpacaFeedError> {
        let var = |name: &Option<String>, key: &'static str| -> Result<String, AlpacaFeedError> {
            let name = name.as_ref().ok_or(AlpacaFeedError::MissingSetting(key))?;
            std::env::var(name).map_err(|_| AlpacaFeedError::MissingEnv(name.clone()))
        };
        let auth =
            crate::feed::alpaca::AlpacaAuth::new(var(&cfg.key_env, "key_env")?, var(&cfg.secret_env, "secret_env")?);
        let symbols: Vec<&str> = instruments.iter().map(|i| i.symbol.as_str()).collect();
        let mut ws_cfg = WsConfig::new(cfg.ws_url.clone());
        ws_cfg.read_buffer_size = cfg.read_buffer_size;
        let ws = WsClient::new(ws_cfg, tls_config(&[]).map_err(FeedError::from)?, Token(0)).map_err(FeedError::from)?;
        Ok(AlpacaFeed {
            poll: Poll::new().map_err(FeedError::from)?,
            events: Events::with_capacity(64),
            ws,
            parser: crate::feed::alpaca::AlpacaParser::new(instruments),
            auth,
            subscribe: crate::feed::alpaca::subscribe_message(&symbols, &symbols),
            tap,
            clock: cfg.clock,
            state: AlpacaState::Connecting,
            end_on_close: cfg.end_on_close,
            ended: false,
            generation: 0,
            instruments: instruments.len(),
            now: if cfg.clock == FeedClock::Wall { wall_ns() } else { 0 },
            exch_clock: ExchangeClock::default(),
            stats: AlpacaFeedStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> AlpacaFeedStats {
        self.stats
    }

    /// Session state.
    pub fn state(&self) -> AlpacaState {
        self.state
    }

    /// The WebSocket client (state, counters).
    pub fn ws(&self) -> &WsClient {
        &self.ws
    }

    fn pump(&mut self, on_event: &mut impl FnMut(&MarketEvent)) {
        use crate::feed::alpaca::{AlpacaMsg, Control};
        if self.clock == FeedClock::Wall {
            self.now = wall_ns();
        }
        if self.poll.poll(&mut self.events, Some(Duration::ZERO)).is_ok() {
            for ev in self.events.iter() {
                self.ws.on_event(ev);
            }
        }
        let AlpacaFeed { ws, poll, parser, tap, clock, exch_clock, stats, state, .. } = self;
        let exchange_clock = *clock == FeedClock::Exchange;
        let subscribed = *state == AlpacaState::Subscribed;
        let mut controls = arrayvec::ArrayVec::<Control, 8>::new();
        let mut t = self.now;
        let wall = wall_ns();
        ws.poll(poll.registry(), wall, |msg| {
            if let Some(tap) = tap {
                tap.record(wall, msg);
            }
            let _ = parser.parse(msg, &mut |m| match m {
                AlpacaMsg::Control(c) => {
                    // More than 8 control messages in one read is not a session.
                    let _ = controls.try_push(c);
                }
                AlpacaMsg::Quote { exch_ts, .. } | AlpacaMsg::Trade { exch_ts, .. } if subscribed => {
                    if exchange_clock {
                        t = exch_clock.observe(exch_ts);
                    }
                    m.emit(t, &mut |ev| {
                        stats.events += 1;
                        on_event(&ev);
                    });
                }
                _ => {}
            });
        });
        if exchange_clock {
            self.now = t;
        }
        self.stats.messages = self.parser.stats().messages;
        self.stats.parse_errors = self.parser.stats().errors;
        self.stats.clock_jumps = self.exch_clock.refused();
        if let Some(tap) = &self.tap {
            self.stats.record_drops = tap.stats().dropped;
        }
        if self.ws.generation() != self.generation {
            // (Re)connected: a new session, whose `connected` greeting may be among the
            // messages just read. Books are invalid until its first quotes.
            self.generation = self.ws.generation();
            self.state = AlpacaState::Connecting;
            for inst in 0..self.instruments {
                self.stats.events += 1;
                on_event(&MarketEvent {
                    exch_ts: self.now,
                    local_ts: self.now,
                    px: 0,
                    qty: 0,
                    inst: inst as InstId,
                    kind: crate::event::EventKind::Clear,
                    flags: MarketEvent::END_OF_BATCH,
                });
            }
        }
        for c in controls {
            self.on_control(c);
        }
        if self.end_on_close && self.generation > 0 && !self.ws.is_open() && ends_data(self.ws.peer_end()) {
            self.ended = true;
        }
    }

    /// Advances the session on a control message.
    fn on_control(&mut self, c: crate::feed::alpaca::Control) {
        use crate::feed::alpaca::Control;
        match c {
            // A failed send means the connection broke: the reconnect starts over.
            Control::Connected
                if self.state == AlpacaState::Connecting && self.ws.send_text(&self.auth.auth_message()).is_ok() =>
            {
                self.state = AlpacaState::Authenticating;
            }
            Control::Authenticated
                if self.state == AlpacaState::Authenticating && self.ws.send_text(&self.subscribe).is_ok() =>
            {
                self.stats.authenticated += 1;
                self.state = AlpacaState::Subscribed;
            }
            Control::Error { code } => {
                self.stats.server_errors += 1;
                self.stats.last_error_code = code;
                if ALPACA_FATAL.contains(&code) {
                    self.state = AlpacaState::Failed;
                    self.ended = true;
                }
            }
            _ => {}
        }
    }
}

impl MarketSource for AlpacaFeed {
    /// Alpaca sends quotes, not a book to keep in sync: the books count as synced
    /// while the session is subscribed.
    #[inline]
    fn counters(&self) -> FeedCounters {
        let ws = self.ws.stats();
        let live = self.state == AlpacaState::Subscribed;
        FeedCounters {
            messages: self.stats.messages,
            connects: ws.connects,
            disconnects: ws.disconnects,
            errors: ws.errors + self.stats.server_errors,
            last_failure: ws.last_failure,
            parse_errors: self.stats.parse_errors,
            synced: [live; 2],
            ..FeedCounters::default()
        }
    }

    #[inline]
    fn poll(&mut self, on_event: &mut impl FnMut(&MarketEvent)) -> Polled {
        if self.ended {
            return Polled::End;
        }
        let before = self.stats.events;
        self.pump(on_event);
        polled(self.stats.events > before, self.ended)
    }

    #[inline]
    fn now(&self) -> Ts {
        self.now
    }
}
