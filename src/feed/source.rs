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

impl MarketSource for BinanceFeed {
    #[inline]
    fn poll(&mut self, on_event: &mut impl FnMut(&MarketEvent)) -> Polled {
        if self.ended {
            return Polled::End;
        }
        let before = self.stats.events;
        self.pump(on_event);
        if self.stats.events > before {
            Polled::Events
        } else if self.ended {
            Polled::End
        } else {
            Polled::Idle
        }
    }

    #[inline]
    fn now(&self) -> Ts {
        self.now
    }
}
