//! The live Binance market-data source of the hot thread.
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
//! Book tickers are applied only while their instrument's book is synced and only if
//! their update id is newer than the book's, so a ticker that lags the diff stream
//! never deletes live levels. While a leg is unsynced (start-up, reconnect, gap) its
//! book has been cleared with [`crate::event::EventKind::Clear`], so the core has no market for it and
//! pulls its quotes.
//!
//! Everything is allocated in [`BinanceFeed::new`]: the event queue, the level buffer,
//! the parser's buffers. The steady state allocates only inside tungstenite and rustls
//! (one payload per message; see [`crate::feed::ws`]).

use std::time::Duration;

use mio::{Events, Poll, Token};
use thiserror::Error;

use crate::config::{FeedClock, FeedConfig};
use crate::event::MarketEvent;
use crate::feed::binance::{BinanceParser, DepthLevel, Parsed};
use crate::feed::record::RecordTap;
use crate::feed::snapshot::{wall_ns, SnapshotFetcher};
use crate::feed::sync::{DepthSync, SyncAction};
use crate::feed::ws::{tls_config, WsClient, WsConfig, WsError};
use crate::live::{MarketSource, Polled};
use crate::types::{InstId, Instrument, Ts, NS_PER_SEC};

/// Buffered diffs per instrument while a snapshot is on its way.
const SYNC_BUFFER: usize = 4096;
/// Wait before asking again after a failed snapshot.
const SNAPSHOT_RETRY_NS: i64 = NS_PER_SEC;

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
    /// Snapshots that failed (HTTP or parse), retried.
    pub snapshot_errors: u64,
    /// Book tickers dropped as older than the book or for an unsynced book.
    pub stale_tickers: u64,
    /// Events handed to the hot loop.
    pub events: u64,
    /// Messages not recorded (recorder pool exhausted).
    pub record_drops: u64,
}

/// Binance combined streams for a set of instruments, as a [`MarketSource`].
#[derive(Debug)]
pub struct BinanceFeed {
    poll: Poll,
    events: Events,
    ws: WsClient,
    parser: BinanceParser,
    syncs: Vec<DepthSync>,
    /// Per instrument: time of the next snapshot request, `Ts::MAX` when none is due.
    snapshot_due: Vec<Ts>,
    snapshots: SnapshotFetcher,
    levels: Vec<DepthLevel>,
    tap: Option<RecordTap>,
    clock: FeedClock,
    end_on_close: bool,
    ended: bool,
    generation: u64,
    now: Ts,
    stats: FeedStats,
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
    /// receives every raw message with its local receive time.
    pub fn new(cfg: &FeedConfig, instruments: &[Instrument], tap: Option<RecordTap>) -> Result<Self, FeedError> {
        let poll = Poll::new()?;
        let mut ws_cfg = WsConfig::new(stream_url(&cfg.ws_url, instruments, cfg.agg_trades));
        ws_cfg.read_buffer_size = cfg.read_buffer_size;
        let ws = WsClient::new(ws_cfg, tls_config(&[])?, Token(0))?;
        let symbols = instruments.iter().map(|i| i.symbol.clone()).collect();
        let snapshots = SnapshotFetcher::spawn(&cfg.rest_url, symbols, cfg.snapshot_limit, Duration::from_secs(10))?;
        let max_levels = (2 * cfg.snapshot_limit as usize).max(4096);
        Ok(BinanceFeed {
            poll,
            events: Events::with_capacity(64),
            ws,
            parser: BinanceParser::new(instruments, max_levels),
            syncs: (0..instruments.len()).map(|i| DepthSync::new(i as InstId, SYNC_BUFFER)).collect(),
            snapshot_due: vec![Ts::MAX; instruments.len()],
            snapshots,
            levels: Vec::with_capacity(max_levels),
            tap,
            clock: cfg.clock,
            end_on_close: cfg.end_on_close,
            ended: false,
            generation: 0,
            // The exchange clock starts at the first event time seen.
            now: if cfg.clock == FeedClock::Wall { wall_ns() } else { 0 },
            stats: FeedStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> FeedStats {
        self.stats
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
    fn pump(&mut self, on_event: &mut impl FnMut(&MarketEvent)) {
        if self.clock == FeedClock::Wall {
            self.now = wall_ns();
        }
        let now = self.now;
        let BinanceFeed { parser, syncs, levels, stats, snapshot_due, snapshots, .. } = self;
        let mut push = |ev: MarketEvent| {
            stats.events += 1;
            on_event(&ev);
        };
        while let Some(snap) = snapshots.poll() {
            let i = snap.inst as usize;
            let parsed = match &snap.body {
                Ok(body) => parser.parse_snapshot(body, snap.inst, levels).map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            match parsed {
                Ok(last_id) => {
                    if syncs[i].on_snapshot(last_id, levels, now, &mut push) == SyncAction::NeedSnapshot {
                        snapshot_due[i] = now;
                    }
                }
                Err(_) => {
                    stats.snapshot_errors += 1;
                    snapshot_due[i] = now + SNAPSHOT_RETRY_NS;
                }
            }
        }
        for (i, due) in snapshot_due.iter_mut().enumerate() {
            if now >= *due && snapshots.request(i as InstId) {
                stats.snapshots_requested += 1;
                *due = Ts::MAX;
            }
        }
        if self.poll.poll(&mut self.events, Some(Duration::ZERO)).is_ok() {
            for ev in self.events.iter() {
                self.ws.on_event(ev);
            }
        }
        let BinanceFeed { ws, poll, parser, syncs, levels, stats, snapshot_due, tap, clock, .. } = self;
        let mut push = |ev: MarketEvent| {
            stats.events += 1;
            on_event(&ev);
        };
        let exchange_clock = *clock == FeedClock::Exchange;
        let mut stale_tickers = 0;
        let mut t = now;
        let wall = wall_ns();
        ws.poll(poll.registry(), wall, |msg| {
            if let Some(tap) = tap {
                // Never blocks; a full pool drops and counts (see `record_drops`).
                tap.record(wall, msg);
            }
            let parsed = parser.parse(msg, t, levels);
            if let (true, Ok(Parsed::Depth { exch_ts, .. } | Parsed::Trade { exch_ts, .. })) = (exchange_clock, &parsed)
            {
                t = t.max(*exch_ts);
            }
            match parsed {
                Ok(Parsed::Depth { inst, exch_ts, first_id, last_id }) => {
                    let i = inst as usize;
                    if syncs[i].on_depth(first_id, last_id, exch_ts, levels, t, &mut push) == SyncAction::NeedSnapshot
                        && snapshot_due[i] == Ts::MAX
                    {
                        snapshot_due[i] = now;
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
        if let Some(tap) = &self.tap {
            self.stats.record_drops = tap.stats().dropped;
        }
        if self.ws.generation() != self.generation {
            // (Re)connected: messages were lost, so every book starts over; each
            // synchroniser asks for a snapshot on its first diff.
            self.generation = self.ws.generation();
            let BinanceFeed { syncs, stats, .. } = self;
            for s in syncs.iter_mut() {
                s.reset(now, &mut |ev| {
                    stats.events += 1;
                    on_event(&ev);
                });
            }
        }
        if self.end_on_close && self.generation > 0 && !self.ws.is_open() {
            self.ended = true;
        }
    }
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
        let AlpacaFeed { ws, poll, parser, tap, clock, stats, state, .. } = self;
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
                        t = t.max(exch_ts);
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
        if self.end_on_close && self.generation > 0 && !self.ws.is_open() {
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
