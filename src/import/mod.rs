//! Importers: data users already have (our own recordings, Tardis.dev CSV, Binance
//! public-data CSV) normalised into [`MarketEvent`]s, to be written once as a binary
//! event file ([`crate::feed::evfile`]) and replayed fast many times.
//!
//! # Inputs
//!
//! | [`Format`] | what | module |
//! |---|---|---|
//! | [`Format::Recording`] | `<local receive ns> <raw Binance message>` lines, the format of [`crate::feed::record`] and of `/work/shared/data/binance-spot` | [`recording`] |
//! | [`Format::TardisBookL2`] | Tardis `incremental_book_L2` CSV | [`tardis`] |
//! | [`Format::TardisQuotes`] | Tardis `quotes` (or `book_ticker`) CSV | [`tardis`] |
//! | [`Format::TardisTrades`] | Tardis `trades` CSV | [`tardis`] |
//! | [`Format::BinanceTrades`] | Binance public data `trades` (spot; USD-M futures too) | [`binance_csv`] |
//! | [`Format::BinanceAggTrades`] | Binance public data `aggTrades` (spot; USD-M futures too) | [`binance_csv`] |
//! | [`Format::BinanceFuturesBookTicker`] | Binance public data USD-M futures `bookTicker` | [`binance_csv`] |
//!
//! Every file may be plain or gzip (detected by its magic bytes, several gzip members
//! allowed). Zip archives, the form Binance public data is downloaded in, are refused
//! with [`ImportError::Zip`]: unzip them first. [`detect`] names the format from the
//! first line (a recording line, a Tardis or Binance header, the shape of a headerless
//! Binance row) and the file name.
//!
//! # Instruments
//!
//! The caller gives the session's instruments (symbol, tick, lot); an event's
//! [`MarketEvent::inst`] is the index of its symbol in that slice, matched without
//! regard to case. Rows of other symbols are counted
//! ([`ImportStats::skipped_other_symbol`]) and skipped. Binance public-data files name
//! no symbol: it is taken from the file name (`BTCUSDT-trades-2024-08-09.csv` ->
//! `BTCUSDT`) unless [`ImportOptions::symbol`] gives it.
//!
//! Prices and sizes are converted to ticks and lots exactly
//! ([`Instrument::parse_price`], [`Instrument::parse_qty`]; an exponent such as `1e-8`,
//! which Tardis may print for tiny numbers, is accepted too). A price that is not a
//! whole number of ticks, a size that is not a whole number of lots, a price `<= 0`, a
//! negative size, a missing or malformed field, and the absurd values [`Limits`] bounds
//! (a price above [`MAX_TICKS`], a trade of size 0, a time before 2009 or from 2100 on,
//! exchange and receive times an hour apart, a receive time jumping a day ahead): the
//! row is bad, counted (the absurd ones also per reason in [`ImportStats::rejected`])
//! ([`ImportStats::skipped_bad_row`]) and skipped, never rounded; the first
//! [`MAX_REPORTED_BAD_ROWS`] are kept with their file, line and reason
//! ([`ImportStats::bad_rows`]) for the caller's message. A row's batch mates are still
//! imported.
//!
//! # Events
//!
//! The imported stream means what the live stream ([`crate::feed::source`]) means:
//! depth levels are `BidLevel`/`AskLevel` with the new total size (0 deletes), a
//! snapshot starts with a `Clear`, a quote is `BestBid` then `BestAsk`, a trade is
//! `TradeBuy`/`TradeSell` after its aggressor, and the last event of each exchange
//! message carries [`MarketEvent::END_OF_BATCH`] (see each module for its mapping).
//! Times are ns since the Unix epoch; `exch_ts` is the venue's time and `local_ts` our
//! receive time, or the venue's time again where a source has no receive time (Binance
//! public data: see [`binance_csv`]).
//!
//! [`merge`] interleaves the streams of several inputs by `local_ts` into one, keeping
//! batches whole and dropping the trades that overlapping inputs both hold
//! ([`merge_counted`], counted in [`ImportStats::duplicates`]); [`import_files`] does everything (detect, import, merge) for a list of
//! paths and returns a report per input.
//!
//! # Memory and speed
//!
//! Rows are streamed: CSV through one reused [`csv::ByteRecord`], recordings through one
//! reused line buffer and the allocation-free [`crate::feed::binance::BinanceParser`].
//! Both are bounded ([`lines`], [`Limits::max_line_bytes`]): a recording line longer
//! than 1 MiB is skipped without being buffered and counted as a bad row; a CSV row
//! longer than 64 KiB is [`ImportError::LineTooLong`] naming the file and line (CSV is
//! read without quoting, so a row is a line). A UTF-8 byte order mark is dropped and
//! CSV header names are matched trimmed of white space.
//! Nothing is allocated per row except the output events (40 bytes each) and the text
//! of the first few bad rows.

pub mod binance_csv;
pub use crate::lines;
pub mod recording;
pub mod stream;
pub mod tardis;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::read::MultiGzDecoder;
use thiserror::Error;

use self::lines::CappedRecords;
use crate::event::{EventKind, MarketEvent};
use crate::feed::binance::ParseError;
use crate::feed::sync::SyncStats;
use crate::types::{Decimal, DecimalError, InstId, Instrument, Ts, MAX_SCALE, NS_PER_SEC};

/// How many bad rows an [`ImportStats`] keeps with their text (all are counted).
pub const MAX_REPORTED_BAD_ROWS: usize = 10;
/// Longest excerpt of a bad row kept in [`BadRow::text`], in bytes.
const MAX_ROW_TEXT: usize = 160;
/// Read buffer of every input.
const BUF_LEN: usize = 1 << 16;
/// Decompressed bytes [`detect`] looks at.
const DETECT_LEN: usize = 1 << 16;

/// The input formats (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Our recordings: `<local receive ns> <raw Binance message>` per line.
    Recording,
    /// Tardis.dev `incremental_book_L2` CSV.
    TardisBookL2,
    /// Tardis.dev `quotes` CSV (the `book_ticker` data type has the same columns).
    TardisQuotes,
    /// Tardis.dev `trades` CSV.
    TardisTrades,
    /// Binance public data `trades` CSV.
    BinanceTrades,
    /// Binance public data `aggTrades` CSV.
    BinanceAggTrades,
    /// Binance public data USD-M futures `bookTicker` CSV.
    BinanceFuturesBookTicker,
}

impl Format {
    /// Every format, in the order of the enum.
    pub const ALL: [Format; 7] = [
        Format::Recording,
        Format::TardisBookL2,
        Format::TardisQuotes,
        Format::TardisTrades,
        Format::BinanceTrades,
        Format::BinanceAggTrades,
        Format::BinanceFuturesBookTicker,
    ];

    /// The name [`FromStr`] accepts (for a `--format` option).
    pub const fn name(self) -> &'static str {
        match self {
            Format::Recording => "recording",
            Format::TardisBookL2 => "tardis-book",
            Format::TardisQuotes => "tardis-quotes",
            Format::TardisTrades => "tardis-trades",
            Format::BinanceTrades => "binance-trades",
            Format::BinanceAggTrades => "binance-aggtrades",
            Format::BinanceFuturesBookTicker => "binance-bookticker",
        }
    }

    /// True for the Binance public-data formats, whose rows name no symbol.
    pub const fn needs_symbol(self) -> bool {
        matches!(self, Format::BinanceTrades | Format::BinanceAggTrades | Format::BinanceFuturesBookTicker)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    /// One of the [`Format::name`]s, case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format `{s}` (one of: {})", names.join(", "))
        })
    }
}

/// How the book of a recorded instrument is rebuilt (see [`recording`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordingBook {
    /// The live procedure wherever it can work, the diffs where it would need a
    /// snapshot the recording lacks: [`RecordingBook::Diffs`] for an instrument without
    /// a snapshot line, [`RecordingBook::Sync`] for one with, continuing from diffs if
    /// the book loses sync after its last snapshot line.
    #[default]
    Auto,
    /// As the live feed: snapshot lines seed the book through
    /// [`crate::feed::sync::DepthSync`]; nothing of the book is emitted before the first
    /// usable snapshot, and a sequence gap clears it until the next one.
    Sync,
    /// The book from the diffs alone (and the book tickers), as the replay server does
    /// without a snapshot: every diff's levels are emitted; snapshot lines are ignored.
    Diffs,
}

impl FromStr for RecordingBook {
    type Err = String;
    /// `auto`, `sync` or `diffs`, case-insensitive (for a `--book` option).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(RecordingBook::Auto),
            "sync" => Ok(RecordingBook::Sync),
            "diffs" => Ok(RecordingBook::Diffs),
            _ => Err(format!("unknown book mode `{s}` (one of: auto, sync, diffs)")),
        }
    }
}

/// Options of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// The format of every input ([`import_files`]); `None` detects each one.
    pub format: Option<Format>,
    /// The symbol of Binance public-data files, instead of the one in their file name.
    pub symbol: Option<String>,
    /// How recordings rebuild the book.
    pub recording_book: RecordingBook,
    /// Bounds on line lengths and on times (see [`Limits`]).
    pub limits: Limits,
}

/// 2009-01-01T00:00:00Z in ns: no market data of the venues read here is older.
pub const MIN_TS: Ts = 1_230_768_000 * NS_PER_SEC;
/// 2100-01-01T00:00:00Z in ns.
pub const MAX_TS: Ts = 4_102_444_800 * NS_PER_SEC;
/// Largest price in ticks, and size in lots, a reader accepts: 2^53, the largest range
/// in which an `f64` holds every integer, so that the model's `f64` math on prices and
/// the integer sums of the book and the portfolio (`px * qty` in `i128`, `bid + ask`)
/// cannot lose or wrap. (A trade at 92233720368547758.07 with tick 0.01 is `i64::MAX`
/// ticks: it parses, and it is refused here.)
pub const MAX_TICKS: i64 = 1 << 53;

/// What a reader accepts, beyond well-formedness: line lengths, and times. A row
/// outside them is a bad row, counted per reason in [`ImportStats::rejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line of a recording or record of a CSV file, in bytes; `None`:
    /// [`lines::DEFAULT_MAX_LINE_BYTES`] for recordings (a longer line is a counted
    /// bad row), [`lines::DEFAULT_MAX_ROW_BYTES`] for CSV (a longer row is
    /// [`ImportError::LineTooLong`]).
    pub max_line_bytes: Option<usize>,
    /// Earliest time stamp accepted, ns since the epoch (default [`MIN_TS`]).
    pub min_ts: Ts,
    /// Time stamps at or after this are refused (default [`MAX_TS`]).
    pub max_ts: Ts,
    /// Largest difference between a row's exchange and receive times, ns (default
    /// 1 h): one message stamped far from its receive time froze the exchange clock.
    pub max_skew: Ts,
    /// Largest step forward of a row's receive time over the latest one before it in
    /// the same file, ns (default 1 day). A row past it is refused, unless the next row
    /// is past it too and within this bound of the refused one: the data then really
    /// jumped (a gap), and reading goes on from there.
    pub max_jump: Ts,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: None,
            min_ts: MIN_TS,
            max_ts: MAX_TS,
            max_skew: 3600 * NS_PER_SEC,
            max_jump: 86_400 * NS_PER_SEC,
        }
    }
}

impl Limits {
    /// The default line bounds with no bound on times (for data with synthetic times).
    pub fn any_time() -> Self {
        Limits { min_ts: Ts::MIN, max_ts: Ts::MAX, max_skew: Ts::MAX, max_jump: Ts::MAX, ..Limits::default() }
    }

    /// The line bound of recordings.
    pub fn line_bytes(&self) -> usize {
        self.max_line_bytes.unwrap_or(lines::DEFAULT_MAX_LINE_BYTES)
    }

    /// The record bound of CSV files.
    pub fn row_bytes(&self) -> usize {
        self.max_line_bytes.unwrap_or(lines::DEFAULT_MAX_ROW_BYTES)
    }

    /// `t` within `[min_ts, max_ts)`.
    #[inline]
    pub(crate) fn window(&self, t: Ts, col: &'static str) -> Result<(), RowError> {
        if t < self.min_ts || t >= self.max_ts {
            return Err(RowError::TimeRange(col));
        }
        Ok(())
    }

    /// Exchange and receive times both in the window and at most `max_skew` apart.
    #[inline]
    pub(crate) fn pair(&self, exch: Ts, local: Ts) -> Result<(), RowError> {
        self.window(exch, "exchange time")?;
        self.window(local, "receive time")?;
        if exch.abs_diff(local) > self.max_skew.unsigned_abs() {
            return Err(RowError::Skew);
        }
        Ok(())
    }
}

/// The forward-jump check of one file's receive times ([`Limits::max_jump`]).
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// The latest accepted time.
    last: Option<Ts>,
    /// The time of the row refused just before, if the previous row was refused.
    refused: Option<Ts>,
}

impl Clock {
    /// Accepts `t` unless it jumps more than `max_jump` past the latest accepted time.
    #[inline]
    pub(crate) fn check(&mut self, lim: &Limits, t: Ts, col: &'static str) -> Result<(), RowError> {
        let bound = lim.max_jump.unsigned_abs();
        if let Some(last) = self.last {
            if t > last && t.abs_diff(last) > bound {
                if self.refused.is_some_and(|r| t.abs_diff(r) <= bound) {
                    // Two rows past the bound and close together: a real gap.
                    self.refused = None;
                    self.last = Some(t);
                    return Ok(());
                }
                self.refused = Some(t);
                return Err(RowError::TimeJump(col));
            }
        }
        self.refused = None;
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
        Ok(())
    }
}

/// A row's times: both in the window, close together, and the receive time not
/// jumping ahead.
#[derive(Debug, Default)]
pub(crate) struct Times {
    pub(crate) lim: Limits,
    clock: Clock,
}

impl Times {
    pub(crate) fn new(lim: Limits) -> Self {
        Times { lim, clock: Clock::default() }
    }

    #[inline]
    pub(crate) fn check(&mut self, exch: Ts, local: Ts) -> Result<(), RowError> {
        self.lim.pair(exch, local)?;
        self.clock.check(&self.lim, local, "receive time")
    }
}

/// Errors that stop an import. Bad rows do not: they are counted in [`ImportStats`].
#[derive(Debug, Error)]
pub enum ImportError {
    /// A file could not be opened or read (other than a truncated gzip stream, which
    /// ends the file and sets [`ImportStats::truncated`]).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A zip archive (Binance public data is downloaded as zips).
    #[error("{}: zip archives are not supported: unzip it first (`unzip {}`) and import the .csv inside", path.display(), path.display())]
    Zip {
        /// The file.
        path: PathBuf,
    },
    /// The format could not be recognised.
    #[error("{}: unknown input format ({reason}); give the format explicitly", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// What was seen.
        reason: String,
    },
    /// A CSV header lacks a column the format needs, or the file is empty.
    #[error("{}: bad header: {reason}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A Binance public-data file whose name does not start with its symbol, and no
    /// symbol was given.
    #[error("{}: the file name does not start with a symbol (`BTCUSDT-trades-...`); give the symbol explicitly", path.display())]
    NoSymbol {
        /// The file.
        path: PathBuf,
    },
    /// A CSV record longer than [`Limits::max_line_bytes`].
    #[error("{}:{line}: a row longer than {max} bytes (see --max-line-bytes)", path.display())]
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// The 1-based line where the row starts.
        line: u64,
        /// The bound.
        max: usize,
    },
    /// No input files.
    #[error("no input files")]
    NoInput,
}

/// One bad row kept for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Its file.
    pub path: PathBuf,
    /// Its 1-based line (a CSV header is line 1).
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
    /// The start of the row, lossily decoded.
    pub text: String,
}

/// Bad rows refused for a well-formed but absurd value, by reason (each is also one of
/// [`ImportStats::skipped_bad_row`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// A price `<= 0`, above [`MAX_TICKS`], or too large for the tick conversion.
    pub price: u64,
    /// A size `< 0` (`<= 0` for a trade), above [`MAX_TICKS`] lots, or too large for
    /// the lot conversion.
    pub size: u64,
    /// A time stamp outside [`Limits::min_ts`]..[`Limits::max_ts`] or too large for ns.
    pub time: u64,
    /// A receive time more than [`Limits::max_jump`] ahead of the file's latest.
    pub jump: u64,
    /// Exchange and receive times more than [`Limits::max_skew`] apart.
    pub skew: u64,
    /// A recording line longer than [`Limits::max_line_bytes`].
    pub too_long: u64,
}

impl Rejected {
    fn add(&mut self, o: &Rejected) {
        self.price += o.price;
        self.size += o.size;
        self.time += o.time;
        self.jump += o.jump;
        self.skew += o.skew;
        self.too_long += o.too_long;
    }

    /// The counter of `e`, if it is a rejection.
    fn counter(&mut self, e: &RowError) -> Option<&mut u64> {
        Some(match e {
            RowError::Price { err: DecimalError::Overflow, .. } | RowError::PriceRange(_) => &mut self.price,
            RowError::Qty { err: DecimalError::Overflow, .. } | RowError::SizeRange(_) => &mut self.size,
            RowError::Parse(ParseError::Price { err: DecimalError::Overflow, .. }) => &mut self.price,
            RowError::Parse(ParseError::Qty { err: DecimalError::Overflow, .. }) => &mut self.size,
            RowError::Parse(ParseError::Range("p" | "b" | "a")) => &mut self.price,
            RowError::Parse(ParseError::Range("q" | "B" | "A")) => &mut self.size,
            RowError::Time(_) | RowError::TimeRange(_) => &mut self.time,
            RowError::TimeJump(_) => &mut self.jump,
            RowError::Skew => &mut self.skew,
            RowError::TooLong { .. } => &mut self.too_long,
            _ => return None,
        })
    }
}

/// Counters of an import. Every row is either imported (it gave events, or it went into
/// a recording's book synchroniser) or counted in one `skipped_*` field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Data rows (CSV rows after the header, recording lines) read.
    pub rows: u64,
    /// Events produced.
    pub events: u64,
    /// Rows of a symbol not among the instruments.
    pub skipped_other_symbol: u64,
    /// Malformed rows (see [`ImportStats::bad_rows`]).
    pub skipped_bad_row: u64,
    /// Rows that carry nothing to import: recording messages of other streams (and
    /// other JSON), Tardis trades of unknown aggressor side, Tardis quotes with both sides
    /// empty; under [`RecordingBook::Diffs`], snapshot lines and diffs not newer than the
    /// previous one.
    pub skipped_ignored: u64,
    /// Tardis book rows before the symbol's first snapshot (Tardis: "skip these rows
    /// until you encounter the first is_snapshot=true row").
    pub skipped_before_snapshot: u64,
    /// Recording book tickers dropped as the live feed drops them: while the book is
    /// not synced, or older than the book.
    pub skipped_stale_ticker: u64,
    /// Of the `skipped_ignored` rows, Tardis trades whose side is `unknown`.
    pub unknown_side: u64,
    /// Quotes with one side empty: only the other side was emitted.
    pub one_sided_quotes: u64,
    /// Snapshots applied (Tardis snapshot starts; recording syncs and resyncs).
    pub snapshots: u64,
    /// Depth sequence gaps seen in a recording (`U` > previous `u` + 1).
    pub gaps: u64,
    /// Rows whose local time is earlier than the previous row's of the same file.
    pub out_of_order: u64,
    /// Of the `skipped_bad_row` rows, those refused for an absurd value, by reason.
    pub rejected: Rejected,
    /// Trades dropped from the merge of several inputs as copies of a trade of another
    /// input ([`merge_counted`]).
    pub duplicates: u64,
    /// A gzip input ended early (a recording cut by a crash): it was read up to there.
    pub truncated: bool,
    /// Recordings: gap markers the recorder wrote where it had to drop messages
    /// ([`crate::feed::record::GAP_MARKER_KEY`]).
    pub recorder_gaps: u64,
    /// Recordings: messages those markers say were dropped.
    pub recorder_dropped: u64,
    /// Recordings: the synchronisers' counters, summed over instruments.
    pub sync: SyncStats,
    /// Recordings: symbols whose book was rebuilt from diffs only
    /// ([`RecordingBook::Diffs`], or [`RecordingBook::Auto`] without a snapshot).
    pub diffs_only: Vec<String>,
    /// Recordings ([`RecordingBook::Auto`]): symbols whose book was synced from a
    /// snapshot, then lost sync after the last snapshot and continued from diffs.
    pub diffs_after_gap: Vec<String>,
    /// The first [`MAX_REPORTED_BAD_ROWS`] bad rows.
    pub bad_rows: Vec<BadRow>,
}

impl ImportStats {
    /// Adds another file's counters to these.
    pub fn add(&mut self, o: &ImportStats) {
        self.rows += o.rows;
        self.events += o.events;
        self.skipped_other_symbol += o.skipped_other_symbol;
        self.skipped_bad_row += o.skipped_bad_row;
        self.skipped_ignored += o.skipped_ignored;
        self.skipped_before_snapshot += o.skipped_before_snapshot;
        self.skipped_stale_ticker += o.skipped_stale_ticker;
        self.unknown_side += o.unknown_side;
        self.one_sided_quotes += o.one_sided_quotes;
        self.snapshots += o.snapshots;
        self.gaps += o.gaps;
        self.out_of_order += o.out_of_order;
        self.rejected.add(&o.rejected);
        self.duplicates += o.duplicates;
        self.truncated |= o.truncated;
        self.recorder_gaps += o.recorder_gaps;
        self.recorder_dropped += o.recorder_dropped;
        add_sync(&mut self.sync, &o.sync);
        for (mine, theirs) in [(&mut self.diffs_only, &o.diffs_only), (&mut self.diffs_after_gap, &o.diffs_after_gap)] {
            for s in theirs {
                if !mine.contains(s) {
                    mine.push(s.clone());
                }
            }
        }
        for b in &o.bad_rows {
            if self.bad_rows.len() < MAX_REPORTED_BAD_ROWS {
                self.bad_rows.push(b.clone());
            }
        }
    }

    /// Counts a bad row, keeping its text if it is among the first ones.
    fn bad(&mut self, path: &Path, line: u64, reason: &RowError, row: &dyn Fn() -> String) {
        self.skipped_bad_row += 1;
        if let Some(n) = self.rejected.counter(reason) {
            *n += 1;
        }
        if self.bad_rows.len() < MAX_REPORTED_BAD_ROWS {
            let mut text = row();
            if text.len() > MAX_ROW_TEXT {
                let mut cut = MAX_ROW_TEXT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push_str("...");
            }
            self.bad_rows.push(BadRow { path: path.to_path_buf(), line, reason: reason.to_string(), text });
        }
    }
}

fn add_sync(a: &mut SyncStats, b: &SyncStats) {
    a.gaps += b.gaps;
    a.snapshot_requests += b.snapshot_requests;
    a.syncs += b.syncs;
    a.stale_snapshots += b.stale_snapshots;
    a.dropped += b.dropped;
    a.buffered += b.buffered;
    a.overflows += b.overflows;
}

impl fmt::Display for ImportStats {
    /// One summary line, then one line per kept bad row.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rows, {} events", self.rows, self.events)?;
        let counts = [
            ("other symbol", self.skipped_other_symbol),
            ("bad", self.skipped_bad_row),
            ("ignored", self.skipped_ignored),
            ("before first snapshot", self.skipped_before_snapshot),
            ("stale ticker", self.skipped_stale_ticker),
        ];
        let mut first = true;
        for (name, n) in counts {
            if n > 0 {
                write!(f, "{}{n} {name}", if first { "; skipped: " } else { ", " })?;
                first = false;
            }
        }
        for (name, n) in [
            ("snapshots", self.snapshots),
            ("gaps", self.gaps),
            ("recorder gap markers", self.recorder_gaps),
            ("messages the recorder dropped", self.recorder_dropped),
            ("one-sided quotes", self.one_sided_quotes),
            ("out of order", self.out_of_order),
        ] {
            if n > 0 {
                write!(f, "; {n} {name}")?;
            }
        }
        let r = &self.rejected;
        let mut first = true;
        for (name, n) in [
            ("price", r.price),
            ("size", r.size),
            ("time out of range", r.time),
            ("time jump", r.jump),
            ("exchange/receive skew", r.skew),
            ("line too long", r.too_long),
        ] {
            if n > 0 {
                write!(f, "{}{n} {name}", if first { "; bad rows rejected for: " } else { ", " })?;
                first = false;
            }
        }
        if self.duplicates > 0 {
            write!(f, "; {} duplicate trades dropped", self.duplicates)?;
        }
        if self.truncated {
            f.write_str("; truncated gzip input")?;
        }
        if !self.diffs_only.is_empty() {
            write!(f, "; book from diffs only (no snapshot): {}", self.diffs_only.join(", "))?;
        }
        if !self.diffs_after_gap.is_empty() {
            write!(f, "; book from diffs after a gap past the last snapshot: {}", self.diffs_after_gap.join(", "))?;
        }
        for b in &self.bad_rows {
            write!(f, "\n  {}:{}: {}: {}", b.path.display(), b.line, b.reason, b.text)?;
        }
        if self.skipped_bad_row > self.bad_rows.len() as u64 {
            write!(f, "\n  ... and {} more bad rows", self.skipped_bad_row - self.bad_rows.len() as u64)?;
        }
        Ok(())
    }
}

/// The result of [`import_files`].
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// Every input's events, merged by local time ([`merge`]).
    pub events: Vec<MarketEvent>,
    /// One report per input: each CSV file, and all recordings together (they are one
    /// session, see [`recording`]).
    pub reports: Vec<FileReport>,
}

impl Imported {
    /// The reports' counters summed.
    pub fn total(&self) -> ImportStats {
        let mut t = ImportStats::default();
        for r in &self.reports {
            t.add(&r.stats);
        }
        t
    }
}

/// What one input gave.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file (several for recordings imported together).
    pub paths: Vec<PathBuf>,
    /// Its format.
    pub format: Format,
    /// Its counters.
    pub stats: ImportStats,
}

/// Recognises the format of a file from its first line and its name (see the module
/// docs). Reads at most the first 64 KiB (decompressed).
pub fn detect(path: &Path) -> Result<Format, ImportError> {
    let mut r = open(path)?;
    let mut head = Vec::with_capacity(DETECT_LEN);
    if let Err(e) = (&mut r).take(DETECT_LEN as u64).read_to_end(&mut head) {
        if e.kind() != io::ErrorKind::UnexpectedEof || head.is_empty() {
            return Err(io_err(path, e));
        }
    }
    let line = head.split(|&c| c == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if is_recording_line(line) {
        return Ok(Format::Recording);
    }
    if let Some(f) = tardis::detect_header(line).or_else(|| binance_csv::detect_header(line)) {
        return Ok(f);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(f) = binance_csv::detect_name(&name).or_else(|| binance_csv::detect_shape(line)) {
        return Ok(f);
    }
    let reason = if head.is_empty() { "empty file".to_string() } else { format!("first line `{}`", excerpt(line)) };
    Err(ImportError::UnknownFormat { path: path.to_path_buf(), reason })
}

/// Where an importer puts its events, in order: a `Vec` (in memory) or a staged event
/// file ([`stream`]), so that a CSV of any length is imported in constant memory.
///
/// The importer may still set flags on the event it pushed last (a Tardis book batch
/// learns its end from the next row: [`EventSink::last_mut`]), so a streaming sink
/// holds that one event back until the next push or the end.
pub trait EventSink {
    /// Appends `ev`.
    fn push(&mut self, ev: MarketEvent);
    /// The event pushed last, still open to changes of its flags.
    fn last_mut(&mut self) -> Option<&mut MarketEvent>;
    /// Events pushed so far.
    fn count(&self) -> u64;
    /// Discards every event pushed (a recording's second pass starts over).
    fn clear(&mut self);
}

impl EventSink for Vec<MarketEvent> {
    #[inline]
    fn push(&mut self, ev: MarketEvent) {
        Vec::push(self, ev);
    }
    #[inline]
    fn last_mut(&mut self) -> Option<&mut MarketEvent> {
        self.as_mut_slice().last_mut()
    }
    #[inline]
    fn count(&self) -> u64 {
        self.len() as u64
    }
    fn clear(&mut self) {
        Vec::clear(self);
    }
}

/// Imports one file of a known format. A recording is imported alone (see
/// [`import_recordings`] for several). Bad rows are counted in `stats`, which is
/// added to (not reset).
pub fn import_file(
    path: &Path,
    format: Format,
    instruments: &[Instrument],
    opts: &ImportOptions,
    stats: &mut ImportStats,
) -> Result<Vec<MarketEvent>, ImportError> {
    let mut out = Vec::new();
    import_file_into(path, format, instruments, opts, stats, &mut out)?;
    Ok(out)
}

/// [`import_file`] into any [`EventSink`]: rows and lines go to the sink as they are
/// read.
pub fn import_file_into(
    path: &Path,
    format: Format,
    instruments: &[Instrument],
    opts: &ImportOptions,
    stats: &mut ImportStats,
    out: &mut impl EventSink,
) -> Result<(), ImportError> {
    let mut s = ImportStats::default();
    let before = out.count();
    let table = SymbolTable::new(instruments);
    match format {
        Format::Recording => {
            recording::import_into(&[path.to_path_buf()], instruments, opts.recording_book, &opts.limits, &mut s, out)?;
        }
        Format::TardisBookL2 | Format::TardisQuotes | Format::TardisTrades => {
            let input = CappedRecords::new(open(path)?, opts.limits.row_bytes(), false);
            tardis::import(input, path, format, &table, &opts.limits, &mut s, out)?;
        }
        Format::BinanceTrades | Format::BinanceAggTrades | Format::BinanceFuturesBookTicker => {
            let symbol = match &opts.symbol {
                Some(s) => s.clone(),
                None => {
                    binance_csv::symbol_from_name(path).ok_or_else(|| ImportError::NoSymbol { path: path.into() })?
                }
            };
            let input = CappedRecords::new(open(path)?, opts.limits.row_bytes(), false);
            let inst = table.lookup(symbol.as_bytes());
            binance_csv::import(input, path, format, inst, &table, &opts.limits, &mut s, out)?;
        }
    }
    s.events = out.count() - before;
    stats.add(&s);
    Ok(())
}

/// Imports recording files as one session: their lines are merged by receive time
/// (ties: file order) and run through one parser and one synchroniser per instrument,
/// so that a day split over several files (or a rotated recording) continues its book
/// across files exactly as the live feed did. See [`recording`].
pub fn import_recordings(
    paths: &[PathBuf],
    instruments: &[Instrument],
    opts: &ImportOptions,
    stats: &mut ImportStats,
) -> Result<Vec<MarketEvent>, ImportError> {
    if paths.is_empty() {
        return Err(ImportError::NoInput);
    }
    let mut out = Vec::new();
    import_recordings_into(paths, instruments, opts, stats, &mut out)?;
    Ok(out)
}

/// [`import_recordings`] into any [`EventSink`], as the lines are read.
pub fn import_recordings_into(
    paths: &[PathBuf],
    instruments: &[Instrument],
    opts: &ImportOptions,
    stats: &mut ImportStats,
    out: &mut impl EventSink,
) -> Result<(), ImportError> {
    if paths.is_empty() {
        return Err(ImportError::NoInput);
    }
    let mut s = ImportStats::default();
    recording::import_into(paths, instruments, opts.recording_book, &opts.limits, &mut s, out)?;
    s.events = out.count();
    stats.add(&s);
    Ok(())
}

/// Detects (unless [`ImportOptions::format`] is set), imports and merges `paths`:
/// recordings together as one session, each CSV file on its own.
pub fn import_files(
    paths: &[PathBuf],
    instruments: &[Instrument],
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    if paths.is_empty() {
        return Err(ImportError::NoInput);
    }
    let mut formats = Vec::with_capacity(paths.len());
    for p in paths {
        formats.push(match opts.format {
            Some(f) => f,
            None => detect(p)?,
        });
    }
    let recordings: Vec<PathBuf> =
        paths.iter().zip(&formats).filter(|(_, f)| **f == Format::Recording).map(|(p, _)| p.clone()).collect();
    let mut streams = Vec::new();
    let mut reports = Vec::new();
    let mut recordings_done = false;
    for (p, &f) in paths.iter().zip(&formats) {
        let mut stats = ImportStats::default();
        if f == Format::Recording {
            if recordings_done {
                continue;
            }
            recordings_done = true;
            streams.push(import_recordings(&recordings, instruments, opts, &mut stats)?);
            reports.push(FileReport { paths: recordings.clone(), format: f, stats });
        } else {
            streams.push(import_file(p, f, instruments, opts, &mut stats)?);
            reports.push(FileReport { paths: vec![p.clone()], format: f, stats });
        }
    }
    let (events, dups) = merge_counted(streams);
    for (r, d) in reports.iter_mut().zip(dups) {
        r.stats.duplicates += d;
    }
    Ok(Imported { events, reports })
}

/// Merges event streams into one ordered by `local_ts`, keeping each batch (the events
/// up to and including an [`MarketEvent::END_OF_BATCH`]) whole and in place: batches
/// are ordered by the `local_ts` of their first event, stably, so that ties keep the
/// input order (earlier stream first, then the stream's own order). A stream that is
/// itself out of order is put in order the same way. A stream's trailing events without
/// a batch end are closed as a batch (flag set on the last), so that no batch straddles
/// two streams.
///
/// Trades that overlapping inputs both hold are kept once: see [`merge_counted`].
pub fn merge(streams: Vec<Vec<MarketEvent>>) -> Vec<MarketEvent> {
    merge_counted(streams).0
}

/// A trade's identity across inputs: instrument, aggressor side, exchange time, price
/// and size (the event carries no trade id).
type TradeKey = (InstId, EventKind, Ts, i64, i64);

/// [`merge`], also returning per stream how many of its trades were dropped as
/// duplicates. With several streams, a trade of stream `s` is a duplicate when other
/// streams already gave at least as many identical trades ([`TradeKey`]) as `s` has
/// so far: two files that overlap in time thus give each trade once, while identical
/// trades within one file (two fills at the same millisecond, price and size) are all
/// kept. A batch whose events were all dropped disappears.
pub fn merge_counted(streams: Vec<Vec<MarketEvent>>) -> (Vec<MarketEvent>, Vec<u64>) {
    let mut dups = vec![0u64; streams.len()];
    let dedup = streams.len() > 1;
    // Per key: the most identical trades any stream gave so far (= kept), and per
    // (key, stream) how many that stream gave.
    let mut kept: HashMap<TradeKey, u32> = HashMap::new();
    let mut seen: HashMap<(TradeKey, usize), u32> = HashMap::new();
    let total: usize = streams.iter().map(Vec::len).sum();
    // (first local_ts, stream, start, end)
    let mut batches: Vec<(Ts, usize, usize, usize)> = Vec::new();
    for (s, evs) in streams.iter().enumerate() {
        let mut start = 0;
        for (i, e) in evs.iter().enumerate() {
            if e.is_batch_end() || i + 1 == evs.len() {
                batches.push((evs[start].local_ts, s, start, i + 1));
                start = i + 1;
            }
        }
    }
    batches.sort_by_key(|b| b.0);
    let mut out = Vec::with_capacity(total);
    for (_, s, a, b) in batches {
        let before = out.len();
        for e in &streams[s][a..b] {
            if dedup && matches!(e.kind, EventKind::TradeBuy | EventKind::TradeSell) {
                let key = (e.inst, e.kind, e.exch_ts, e.px, e.qty);
                let mine = seen.entry((key, s)).or_insert(0);
                *mine += 1;
                let k = kept.entry(key).or_insert(0);
                if *mine <= *k {
                    dups[s] += 1;
                    continue;
                }
                *k = *mine;
            }
            out.push(*e);
        }
        if out.len() > before {
            if let Some(last) = out.last_mut() {
                last.flags |= MarketEvent::END_OF_BATCH;
            }
        }
    }
    (out, dups)
}

// ---------------------------------------------------------------------------------------
// Shared helpers.

/// Upper-case symbols, indexed by [`InstId`].
#[derive(Debug)]
pub(crate) struct SymbolTable<'a> {
    symbols: Vec<Vec<u8>>,
    instruments: &'a [Instrument],
}

impl<'a> SymbolTable<'a> {
    pub(crate) fn new(instruments: &'a [Instrument]) -> Self {
        SymbolTable {
            symbols: instruments.iter().map(|i| i.symbol.as_bytes().to_ascii_uppercase()).collect(),
            instruments,
        }
    }

    /// The instrument id of a symbol, case-insensitive (a linear scan: a session has a
    /// handful of instruments).
    #[inline]
    pub(crate) fn lookup(&self, sym: &[u8]) -> Option<InstId> {
        self.symbols.iter().position(|s| s.eq_ignore_ascii_case(sym)).and_then(|i| InstId::try_from(i).ok())
    }

    #[inline]
    pub(crate) fn get(&self, inst: InstId) -> &Instrument {
        &self.instruments[inst as usize]
    }
}

/// A plain or gzip input, told apart by the gzip magic bytes.
#[derive(Debug)]
pub(crate) enum Input {
    Plain(BufReader<File>),
    Gzip(Box<BufReader<MultiGzDecoder<BufReader<File>>>>),
}

impl Read for Input {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(r) => r.read(buf),
            Input::Gzip(r) => r.read(buf),
        }
    }
}

impl BufRead for Input {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Input::Plain(r) => r.fill_buf(),
            Input::Gzip(r) => r.fill_buf(),
        }
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        match self {
            Input::Plain(r) => r.consume(n),
            Input::Gzip(r) => r.consume(n),
        }
    }
}

/// Opens `path`, decompressing gzip; a zip archive is [`ImportError::Zip`].
pub(crate) fn open(path: &Path) -> Result<Input, ImportError> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut r = BufReader::with_capacity(BUF_LEN, f);
    let head = r.fill_buf().map_err(|e| io_err(path, e))?;
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Err(ImportError::Zip { path: path.to_path_buf() });
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Input::Gzip(Box::new(BufReader::with_capacity(BUF_LEN, MultiGzDecoder::new(r)))))
    } else {
        Ok(Input::Plain(r))
    }
}

/// An I/O error of `path`; a [`lines::LineTooLong`] from a [`lines::CappedRecords`] is
/// [`ImportError::LineTooLong`].
pub(crate) fn io_err(path: &Path, source: io::Error) -> ImportError {
    match lines::too_long(&source) {
        Some(t) => ImportError::LineTooLong { path: path.to_path_buf(), line: t.line, max: t.max },
        None => ImportError::Io { path: path.to_path_buf(), source },
    }
}

/// A read error: a gzip stream that ends early marks the input truncated and ends it
/// (`Ok`); anything else is an error.
pub(crate) fn read_failed(path: &Path, e: io::Error, stats: &mut ImportStats) -> Result<(), ImportError> {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        stats.truncated = true;
        Ok(())
    } else {
        Err(io_err(path, e))
    }
}

/// True if the CSV header `line` has exactly the columns of `header`, each name
/// trimmed of ASCII white space (`exchange, symbol, ...` is a header too).
pub(crate) fn same_header(line: &[u8], header: &str) -> bool {
    let mut names = line.split(|&c| c == b',').map(<[u8]>::trim_ascii);
    header.split(',').all(|h| names.next() == Some(h.as_bytes())) && names.next().is_none()
}

/// `<digits> {`: the start of a recording line.
fn is_recording_line(line: &[u8]) -> bool {
    let digits = line.iter().take_while(|c| c.is_ascii_digit()).count();
    digits > 0 && line.get(digits) == Some(&b' ') && line.get(digits + 1) == Some(&b'{')
}

/// A row excerpt for messages, lossily decoded and cut.
pub(crate) fn excerpt(b: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(&b[..b.len().min(MAX_ROW_TEXT)]).into_owned();
    if b.len() > MAX_ROW_TEXT {
        s.push_str("...");
    }
    s
}

/// What is wrong with a row. Cheap to build; formatted only for the reported rows.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum RowError {
    /// Too few columns.
    #[error("{found} columns, expected {expected}")]
    Columns { expected: usize, found: usize },
    /// Not an integer (or out of range).
    #[error("column `{0}`: not an integer")]
    Int(&'static str),
    /// A time stamp that overflows ns since the epoch.
    #[error("column `{0}`: time stamp out of range")]
    Time(&'static str),
    /// Not `true`/`false`.
    #[error("column `{0}`: not true or false")]
    Bool(&'static str),
    /// An unknown side.
    #[error("column `{0}`: unknown side")]
    Side(&'static str),
    /// A price that is no decimal or off the tick grid.
    #[error("column `{col}`: {err} (tick {inc})")]
    Price { col: &'static str, err: DecimalError, inc: Decimal },
    /// A size that is no decimal or off the lot grid.
    #[error("column `{col}`: {err} (lot {inc})")]
    Qty { col: &'static str, err: DecimalError, inc: Decimal },
    /// A price `<= 0` or above [`MAX_TICKS`].
    #[error("column `{0}`: price not in 1..=2^53 ticks")]
    PriceRange(&'static str),
    /// A negative size (zero for a trade), or above [`MAX_TICKS`] lots.
    #[error("column `{0}`: size out of range")]
    SizeRange(&'static str),
    /// A time stamp outside [`Limits::min_ts`]..[`Limits::max_ts`].
    #[error("{0}: time stamp outside the accepted years")]
    TimeRange(&'static str),
    /// A receive time more than [`Limits::max_jump`] ahead of the file's latest.
    #[error("{0}: jumps ahead of the previous rows by more than the bound")]
    TimeJump(&'static str),
    /// Exchange and receive times further apart than [`Limits::max_skew`].
    #[error("exchange and receive times further apart than the bound")]
    Skew,
    /// A line longer than the bound (its bytes were not kept).
    #[error("line of {len} bytes, longer than {max}")]
    TooLong { len: u64, max: usize },
    /// A price given without its size or the reverse.
    #[error("columns `{0}`: price and size must both be given or both be empty")]
    HalfQuote(&'static str),
    /// A recording line that is not `<ns> <message>`.
    #[error("not `<receive ns> <message>`")]
    Line,
    /// A recording message the parser refused.
    #[error("{0}")]
    Parse(ParseError),
    /// A snapshot line before any line named its symbol.
    #[error("REST snapshot before any message naming its symbol")]
    SnapshotWithoutSymbol,
    /// A tagged snapshot line (`{"statarb_snapshot":..}`) that is malformed.
    #[error("{0}")]
    SnapshotLine(crate::feed::record::SnapshotLineError),
}

/// A non-negative decimal integer, allocation-free.
#[inline]
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    Some(v)
}

/// `true`/`false` in any case.
#[inline]
pub(crate) fn parse_bool(s: &[u8]) -> Option<bool> {
    if s.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if s.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

/// A decimal, also in exponent form (`1e-8`, `2.5E3`), exactly.
pub(crate) fn parse_decimal(s: &[u8]) -> Result<Decimal, DecimalError> {
    match Decimal::parse_bytes(s) {
        Err(DecimalError::Syntax) => {}
        r => return r,
    }
    let Some(e) = s.iter().position(|&c| c == b'e' || c == b'E') else {
        return Err(DecimalError::Syntax);
    };
    let base = Decimal::parse_bytes(&s[..e])?;
    let exp = match s.get(e + 1..) {
        Some([b'-', d @ ..]) => -parse_int(d).ok_or(DecimalError::Syntax)?,
        Some([b'+', d @ ..]) | Some(d) => parse_int(d).ok_or(DecimalError::Syntax)?,
        None => return Err(DecimalError::Syntax),
    };
    let scale = base.scale() as i64 - exp;
    if scale > MAX_SCALE as i64 {
        return Err(DecimalError::Overflow);
    }
    if scale >= 0 {
        return Ok(Decimal::new(base.mantissa(), scale as u32));
    }
    let k = u32::try_from(-scale).map_err(|_| DecimalError::Overflow)?;
    let m = 10i64.checked_pow(k).and_then(|p| base.mantissa().checked_mul(p)).ok_or(DecimalError::Overflow)?;
    Ok(Decimal::new(m, 0))
}

/// A price in ticks, `> 0`.
#[inline]
pub(crate) fn price(inst: &Instrument, s: &[u8], col: &'static str) -> Result<i64, RowError> {
    let px = parse_decimal(s).and_then(|d| d.to_increments(inst.tick)).map_err(|err| RowError::Price {
        col,
        err,
        inc: inst.tick,
    })?;
    if px <= 0 || px > MAX_TICKS {
        return Err(RowError::PriceRange(col));
    }
    Ok(px)
}

/// A size in lots, `> 0`: a trade's.
#[inline]
pub(crate) fn trade_qty(inst: &Instrument, s: &[u8], col: &'static str) -> Result<i64, RowError> {
    match qty(inst, s, col)? {
        0 => Err(RowError::SizeRange(col)),
        q => Ok(q),
    }
}

/// A size in lots, `>= 0` (0 deletes a level) and at most [`MAX_TICKS`].
#[inline]
pub(crate) fn qty(inst: &Instrument, s: &[u8], col: &'static str) -> Result<i64, RowError> {
    let q = parse_decimal(s).and_then(|d| d.to_increments(inst.lot)).map_err(|err| RowError::Qty {
        col,
        err,
        inc: inst.lot,
    })?;
    if !(0..=MAX_TICKS).contains(&q) {
        return Err(RowError::SizeRange(col));
    }
    Ok(q)
}

/// One event.
#[inline]
pub(crate) fn ev(
    inst: InstId,
    exch_ts: Ts,
    local_ts: Ts,
    kind: EventKind,
    px: i64,
    qty: i64,
    end: bool,
) -> MarketEvent {
    MarketEvent { exch_ts, local_ts, px, qty, inst, kind, flags: if end { MarketEvent::END_OF_BATCH } else { 0 } }
}

/// Counts rows whose local time goes backwards.
#[derive(Debug, Default)]
pub(crate) struct Order {
    last: Option<Ts>,
}

impl Order {
    #[inline]
    pub(crate) fn see(&mut self, local_ts: Ts, stats: &mut ImportStats) {
        if self.last.is_some_and(|l| local_ts < l) {
            stats.out_of_order += 1;
        }
        self.last = Some(local_ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn ev_at(local_ts: Ts, inst: InstId, end: bool) -> MarketEvent {
        ev(inst, local_ts, local_ts, EventKind::BidLevel, 1, 1, end)
    }

    #[test]
    fn decimals_with_exponents() {
        assert_eq!(parse_decimal(b"61234.56"), Ok(d("61234.56")));
        assert_eq!(parse_decimal(b"1e-8"), Ok(Decimal::new(1, 8)));
        assert_eq!(parse_decimal(b"1.5E-7"), Ok(Decimal::new(15, 8)));
        assert_eq!(parse_decimal(b"2.5e3"), Ok(Decimal::new(2500, 0)));
        assert_eq!(parse_decimal(b"2.5e+1"), Ok(Decimal::new(25, 0)));
        assert_eq!(parse_decimal(b"12.34e1"), Ok(Decimal::new(1234, 1)));
        assert_eq!(parse_decimal(b"1e-19"), Err(DecimalError::Overflow));
        assert_eq!(parse_decimal(b"9e30"), Err(DecimalError::Overflow));
        for bad in ["e5", "1e", "1e-", "1ee5", "1e5.0", "", "abc"] {
            assert!(parse_decimal(bad.as_bytes()).is_err(), "{bad}");
        }
        let btc = Instrument::new("BTCUSDT", d("0.01"), d("0.00001"));
        assert_eq!(qty(&btc, b"1e-5", "amount"), Ok(1));
        assert!(matches!(qty(&btc, b"1e-8", "amount"), Err(RowError::Qty { err: DecimalError::OffGrid, .. })));
        assert_eq!(price(&btc, b"0", "price"), Err(RowError::PriceRange("price")));
        assert_eq!(qty(&btc, b"-1", "amount"), Err(RowError::SizeRange("amount")));
    }

    #[test]
    fn ints_and_bools() {
        assert_eq!(parse_int(b"1723161255408000"), Some(1723161255408000));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        for bad in ["", "-1", "1.0", "99999999999999999999", " 1"] {
            assert_eq!(parse_int(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(parse_bool(b"True"), Some(true));
        assert_eq!(parse_bool(b"false"), Some(false));
        assert_eq!(parse_bool(b"1"), None);
    }

    #[test]
    fn format_names_roundtrip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        assert!("zip".parse::<Format>().unwrap_err().contains("tardis-book"));
        assert_eq!("Diffs".parse::<RecordingBook>(), Ok(RecordingBook::Diffs));
        assert!("x".parse::<RecordingBook>().is_err());
        assert!(is_recording_line(b"1723161253937085768 {\"stream\":1}"));
        assert!(!is_recording_line(b"1723161253937085768,{"));
        assert!(!is_recording_line(b" {"));
    }

    #[test]
    fn merge_orders_batches_stably() {
        // Stream 0: a two-event batch at t=10, then t=30. Stream 1: t=10 (tie), t=20.
        let a = vec![ev_at(10, 0, false), ev_at(10, 0, true), ev_at(30, 0, true)];
        let b = vec![ev_at(10, 1, true), ev_at(20, 1, true)];
        let m = merge(vec![a.clone(), b.clone()]);
        assert_eq!(m, vec![a[0], a[1], b[0], b[1], a[2]]);
        // An unordered stream is put in order; an unterminated tail is closed.
        let c = vec![ev_at(5, 0, true), ev_at(3, 0, false), ev_at(3, 0, true), ev_at(4, 0, false)];
        let m = merge(vec![c.clone()]);
        let locals: Vec<_> = m.iter().map(|e| (e.local_ts, e.flags)).collect();
        assert_eq!(locals, [(3, 0), (3, 1), (4, 1), (5, 1)]);
        assert!(merge(vec![]).is_empty());
        assert!(merge(vec![vec![], vec![]]).is_empty());
    }

    #[test]
    fn stats_display_names_bad_rows() {
        let mut s = ImportStats { rows: 5, events: 7, skipped_other_symbol: 1, ..Default::default() };
        for i in 0..12 {
            s.bad(Path::new("x.csv"), i + 2, &RowError::Int("timestamp"), &|| "a".repeat(300));
        }
        assert_eq!(s.skipped_bad_row, 12);
        assert_eq!(s.bad_rows.len(), MAX_REPORTED_BAD_ROWS);
        assert_eq!(s.bad_rows[0].text.len(), MAX_ROW_TEXT + 3);
        let text = s.to_string();
        assert!(text.starts_with("5 rows, 7 events; skipped: 1 other symbol, 12 bad"), "{text}");
        assert!(text.contains("x.csv:2: column `timestamp`: not an integer"), "{text}");
        assert!(text.ends_with("... and 2 more bad rows"), "{text}");
    }
}
