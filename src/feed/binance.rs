//! Binance Spot market-data parser: combined-stream messages to prices in ticks.
//!
//! What: decodes `<symbol>@bookTicker`, `<symbol>@depth` / `<symbol>@depth@100ms`
//! (`depthUpdate`), `<symbol>@trade` and `<symbol>@aggTrade` messages, either wrapped as
//! combined-stream events (`{"stream":"btcusdt@bookTicker","data":{...}}`) or raw, and the
//! REST depth snapshot (`GET /api/v3/depth`, `{"lastUpdateId":N,"bids":[..],"asks":[..]}`,
//! see [`BinanceParser::parse_snapshot`]). Field meanings follow Binance's
//! "WebSocket Streams for Binance" (binance/binance-spot-api-docs, `web-socket-streams.md`)
//! and the REST `GET /api/v3/depth` reference.
//!
//! Why this shape: the parser sits on the hot path, so after a warm-up it allocates
//! nothing. Each payload is copied into a reused scratch `Vec` (simd-json rewrites strings
//! in place, so it needs a mutable copy) and parsed with [`simd_json::fill_tape`] into a
//! reused [`simd_json::Tape`] with reused [`simd_json::Buffers`], the zero-allocation
//! pattern of simd-json's own `tests/alloc.rs`. The tape's lifetime is tied to the
//! scratch buffer, so between calls it is kept empty as `Tape<'static>` and re-borrowed
//! with [`simd_json::Tape::reset`]. The tape is walked directly (one pass over each
//! object), and prices and sizes are converted from their decimal strings to exact
//! ticks and lots with [`Instrument::parse_price`] / [`Instrument::parse_qty`]: an
//! off-tick price is an error, never silently rounded.
//!
//! Depth levels go into a caller-provided `Vec<DepthLevel>` that is cleared per message
//! and never grown beyond the cap given to [`BinanceParser::new`]
//! ([`ParseError::TooManyLevels`] beyond it), so a caller that preallocates the cap never
//! sees it reallocate.
//!
//! One shape skips simd-json: a combined-stream `bookTicker` exactly as Binance sends it,
//! `{"stream":"<sym>@bookTicker","data":{"u":N,"s":"SYM","b":"P","B":"Q","a":"P","A":"Q"}}`
//! with no whitespace, no escapes and nothing else ([`fast_book_ticker`]). It is most of
//! the feed's messages, and a byte-by-byte match of that template costs a fraction of a
//! tape. Anything else, and any field the template's checks refuse (an unknown symbol,
//! a price off the grid, a leading zero, control bytes), falls back to the general path,
//! so results and counters are the general path's for every input: a property test
//! (`the_book_ticker_fast_path_agrees_with_the_general_path`) compares the two.
//!
//! Unknown streams, unknown symbols and unknown fields are ignored and counted
//! ([`ParseStats`]); malformed JSON, missing or mistyped fields and off-grid numbers are
//! a [`ParseError`]. Nothing here panics on any input.
//!
//! `buyer_is_maker` (`m`) true means the resting order was the buy, so the aggressor
//! sold: [`EventKind::TradeSell`]. Binance's bookTicker carries no event time, so its
//! events use the local receive time as exchange time.

use std::fmt;

use simd_json::{Buffers, Node, StaticNode, Tape};
use thiserror::Error;

use crate::event::{EventKind, MarketEvent};
use crate::types::{Decimal, DecimalError, InstId, Instrument, Px, Qty, Round, Side, Ts, NS_PER_MS, POW10};

/// Initial capacity of the scratch and parser buffers: larger than any stream message
/// (REST snapshots of 1000+ levels grow them once, during warm-up).
const INITIAL_BUF: usize = 16 * 1024;

/// Errors from decoding a Binance message. The message is dropped; nothing panics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Not valid JSON.
    #[error("malformed JSON")]
    Json,
    /// Valid JSON of an unexpected shape (top level not an object, `data` not an object).
    #[error("unexpected message shape")]
    Shape,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field has the wrong JSON type (or an integer out of range).
    #[error("field `{0}` has the wrong type or range")]
    Type(&'static str),
    /// A price string is not a decimal or not on the instrument's tick grid.
    #[error("bad price in `{field}`: {err}")]
    Price {
        /// Field name.
        field: &'static str,
        /// What was wrong.
        err: DecimalError,
    },
    /// A size string is not a decimal or not on the instrument's lot grid.
    #[error("bad quantity in `{field}`: {err}")]
    Qty {
        /// Field name.
        field: &'static str,
        /// What was wrong.
        err: DecimalError,
    },
    /// A price <= 0 or a negative size.
    #[error("value out of range in `{0}`")]
    Range(&'static str),
    /// More depth levels than the parser's cap.
    #[error("more than {0} depth levels in one message")]
    TooManyLevels(usize),
}

/// One depth level of a diff or snapshot: the new total size at a price (0 deletes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthLevel {
    /// `Buy` for a bid level, `Sell` for an ask level.
    pub side: Side,
    /// Price in ticks.
    pub px: Px,
    /// Total size at the price in lots; 0 removes the level.
    pub qty: Qty,
}

/// What one message said. Depth levels are in the caller's level buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// `<symbol>@bookTicker`: the best bid and ask (no event time on Spot).
    BookTicker {
        /// Instrument.
        inst: InstId,
        /// Order book update id (`u`).
        update_id: u64,
        /// Best bid in ticks (`b`).
        bid: Px,
        /// Best bid size in lots (`B`).
        bid_qty: Qty,
        /// Best ask in ticks (`a`).
        ask: Px,
        /// Best ask size in lots (`A`).
        ask_qty: Qty,
    },
    /// `depthUpdate`: a diff; its levels (bids then asks) are in the level buffer.
    Depth {
        /// Instrument.
        inst: InstId,
        /// Event time (`E`), ns.
        exch_ts: Ts,
        /// First update id in the event (`U`).
        first_id: u64,
        /// Final update id in the event (`u`).
        last_id: u64,
    },
    /// `trade` or `aggTrade`.
    Trade {
        /// Instrument.
        inst: InstId,
        /// Event time (`E`), ns.
        exch_ts: Ts,
        /// Price in ticks (`p`).
        px: Px,
        /// Size in lots (`q`).
        qty: Qty,
        /// `m`: the buyer was the maker, so the aggressor sold.
        buyer_is_maker: bool,
    },
    /// A stream, event type or symbol we do not handle (counted in [`ParseStats`]).
    Ignored,
}

impl Parsed {
    /// Converts the message to market events: a book ticker to `BestBid` + `BestAsk`, a
    /// trade to `TradeBuy`/`TradeSell`, a depth diff to `BidLevel`/`AskLevel` events
    /// (feed raw diffs through [`crate::feed::sync::DepthSync`] instead to keep a book
    /// consistent). The last event carries [`MarketEvent::END_OF_BATCH`].
    #[inline]
    pub fn emit(&self, levels: &[DepthLevel], local_ts: Ts, out: &mut impl FnMut(MarketEvent)) {
        match *self {
            Parsed::BookTicker { inst, bid, bid_qty, ask, ask_qty, .. } => {
                out(event(inst, local_ts, local_ts, EventKind::BestBid, bid, bid_qty, 0));
                out(event(inst, local_ts, local_ts, EventKind::BestAsk, ask, ask_qty, MarketEvent::END_OF_BATCH));
            }
            Parsed::Trade { inst, exch_ts, px, qty, buyer_is_maker } => {
                let kind = if buyer_is_maker { EventKind::TradeSell } else { EventKind::TradeBuy };
                out(event(inst, exch_ts, local_ts, kind, px, qty, MarketEvent::END_OF_BATCH));
            }
            Parsed::Depth { inst, exch_ts, .. } => emit_levels(inst, exch_ts, local_ts, levels, out),
            Parsed::Ignored => {}
        }
    }
}

/// Emits depth levels as `BidLevel`/`AskLevel` events, `END_OF_BATCH` on the last.
#[inline]
pub fn emit_levels(inst: InstId, exch_ts: Ts, local_ts: Ts, levels: &[DepthLevel], out: &mut impl FnMut(MarketEvent)) {
    let n = levels.len();
    for (i, l) in levels.iter().enumerate() {
        let kind = match l.side {
            Side::Buy => EventKind::BidLevel,
            Side::Sell => EventKind::AskLevel,
        };
        let flags = if i + 1 == n { MarketEvent::END_OF_BATCH } else { 0 };
        out(event(inst, exch_ts, local_ts, kind, l.px, l.qty, flags));
    }
}

#[inline]
fn event(inst: InstId, exch_ts: Ts, local_ts: Ts, kind: EventKind, px: Px, qty: Qty, flags: u8) -> MarketEvent {
    MarketEvent { exch_ts, local_ts, px, qty, inst, kind, flags }
}

/// Counters of what the parser saw and skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Messages given to `parse`.
    pub messages: u64,
    /// Messages of a stream or event type we do not handle.
    pub ignored_streams: u64,
    /// Messages for a symbol not in the instrument table.
    pub unknown_symbols: u64,
    /// Fields not known for their message type (skipped).
    pub unknown_fields: u64,
    /// Messages whose event time is earlier than the previous one of their instrument
    /// (kept: the local order is the order of arrival).
    pub out_of_order_ts: u64,
    /// Messages rejected with a [`ParseError`].
    pub errors: u64,
    /// Depth levels off the instrument's grid: a size finer than the lot is rounded
    /// to the nearest lot (at least one, so the level stays), a price off the tick is
    /// skipped. Binance sends such far-away levels now and then (seen in the shared
    /// recordings: BTCUSDT asks at 200000.00 x 25.426189); failing the whole message
    /// would turn each into a sequence gap and a resync.
    pub off_grid_levels: u64,
}

/// Case-insensitive symbol -> instrument table, built once from the session's
/// instruments.
struct SymbolTable {
    /// Upper-case symbols, indexed by `InstId`.
    symbols: Vec<Vec<u8>>,
    instruments: Vec<Instrument>,
    /// Per instrument, `(tick, lot)` as `Some(k)` where the increment is exactly
    /// `10^-k` (every Binance Spot filter seen so far), for [`Cursor::on_grid`].
    grids: Vec<(Option<u32>, Option<u32>)>,
}

impl SymbolTable {
    fn new(instruments: &[Instrument]) -> Self {
        SymbolTable {
            symbols: instruments.iter().map(|i| i.symbol.as_bytes().to_ascii_uppercase()).collect(),
            instruments: instruments.to_vec(),
            grids: instruments.iter().map(|i| (pow10_scale(i.tick), pow10_scale(i.lot))).collect(),
        }
    }

    /// Linear scan: a session trades a handful of instruments.
    #[inline]
    fn lookup(&self, sym: &[u8]) -> Option<InstId> {
        self.symbols.iter().position(|s| s.eq_ignore_ascii_case(sym)).and_then(|i| InstId::try_from(i).ok())
    }
}

/// Binance Spot message parser with reused buffers (see the module docs).
pub struct BinanceParser {
    table: SymbolTable,
    scratch: Vec<u8>,
    buffers: Buffers,
    /// Always empty between calls; re-borrowed per message with `Tape::reset`.
    tape: Tape<'static>,
    max_levels: usize,
    last_ts: Vec<Ts>,
    stats: ParseStats,
}

impl fmt::Debug for BinanceParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceParser")
            .field("symbols", &self.table.instruments.iter().map(|i| &i.symbol).collect::<Vec<_>>())
            .field("max_levels", &self.max_levels)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl BinanceParser {
    /// A parser for the given instruments (index in the slice = `InstId`; symbols match
    /// case-insensitively) accepting at most `max_levels` depth levels per message
    /// (bids and asks together). Preallocate the level buffer with
    /// `Vec::with_capacity(max_levels)`.
    pub fn new(instruments: &[Instrument], max_levels: usize) -> Self {
        BinanceParser {
            table: SymbolTable::new(instruments),
            scratch: Vec::with_capacity(INITIAL_BUF),
            buffers: Buffers::new(INITIAL_BUF),
            tape: Tape(Vec::with_capacity(INITIAL_BUF / 8)),
            max_levels,
            last_ts: vec![Ts::MIN; instruments.len()],
            stats: ParseStats::default(),
        }
    }

    /// The per-message level cap.
    #[inline]
    pub fn max_levels(&self) -> usize {
        self.max_levels
    }

    /// Counters so far.
    #[inline]
    pub fn stats(&self) -> &ParseStats {
        &self.stats
    }

    /// The instrument id of a symbol (case-insensitive).
    #[inline]
    pub fn inst_id(&self, symbol: &str) -> Option<InstId> {
        self.table.lookup(symbol.as_bytes())
    }

    /// Parses one WebSocket message. `levels` is cleared and receives a depth diff's
    /// levels (bids first, then asks, in message order). `local_ts` is only used for
    /// bookkeeping here; pass it again to [`Parsed::emit`].
    #[inline]
    pub fn parse(&mut self, msg: &[u8], local_ts: Ts, levels: &mut Vec<DepthLevel>) -> Result<Parsed, ParseError> {
        let _ = local_ts;
        levels.clear();
        self.stats.messages += 1;
        if let Some(p) = fast_book_ticker(msg, &self.table) {
            return Ok(p);
        }
        self.parse_general(msg, levels)
    }

    /// [`BinanceParser::parse`] without the `bookTicker` fast path (after `messages` is
    /// counted).
    fn parse_general(&mut self, msg: &[u8], levels: &mut Vec<DepthLevel>) -> Result<Parsed, ParseError> {
        self.scratch.clear();
        self.scratch.extend_from_slice(msg);
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let res = match simd_json::fill_tape(&mut self.scratch[..], &mut self.buffers, &mut tape) {
            Ok(()) => decode(&tape.0, &self.table, &mut self.stats, self.max_levels, levels),
            Err(_) => Err(ParseError::Json),
        };
        self.tape = tape.reset();
        match res {
            Ok(p) => {
                let ts = match p {
                    Parsed::Depth { inst, exch_ts, .. } | Parsed::Trade { inst, exch_ts, .. } => Some((inst, exch_ts)),
                    _ => None,
                };
                if let Some((inst, ts)) = ts {
                    if let Some(last) = self.last_ts.get_mut(inst as usize) {
                        if ts < *last {
                            self.stats.out_of_order_ts += 1;
                        } else {
                            *last = ts;
                        }
                    }
                }
                Ok(p)
            }
            Err(e) => {
                self.stats.errors += 1;
                levels.clear();
                Err(e)
            }
        }
    }

    /// Parses a REST depth snapshot (`{"lastUpdateId":N,"bids":[[p,q],..],"asks":[..]}`)
    /// for `inst` (the snapshot names no symbol) into `levels` (bids then asks, best
    /// first as Binance sends them) and returns `lastUpdateId`. Not on the hot path, but
    /// it also reuses the parser's buffers.
    pub fn parse_snapshot(
        &mut self,
        msg: &[u8],
        inst: InstId,
        levels: &mut Vec<DepthLevel>,
    ) -> Result<u64, ParseError> {
        levels.clear();
        let Some(instrument) = self.table.instruments.get(inst as usize) else {
            return Err(ParseError::Range("inst"));
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(msg);
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let res = match simd_json::fill_tape(&mut self.scratch[..], &mut self.buffers, &mut tape) {
            Ok(()) => decode_snapshot(&tape.0, instrument, self.max_levels, levels, &mut self.stats.off_grid_levels),
            Err(_) => Err(ParseError::Json),
        };
        self.tape = tape.reset();
        if res.is_err() {
            levels.clear();
        }
        res
    }
}

// ---------------------------------------------------------------------------------------
// Tape walking. A tape is a flat pre-order list of nodes; `Object { len, count }` and
// `Array { len, count }` are followed by their `count` descendant nodes.

/// Nodes a value occupies, itself included.
#[inline]
pub(crate) fn span(n: &Node<'_>) -> usize {
    match n {
        Node::Object { count, .. } | Node::Array { count, .. } => count.saturating_add(1),
        _ => 1,
    }
}

/// Calls `f(key, value_index)` for each field of the object at `at`.
#[inline]
pub(crate) fn for_each_field<'i>(
    nodes: &[Node<'i>],
    at: usize,
    mut f: impl FnMut(&'i str, usize) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let Some(&Node::Object { len, .. }) = nodes.get(at) else {
        return Err(ParseError::Shape);
    };
    let mut i = at + 1;
    for _ in 0..len {
        let Some(&Node::String(key)) = nodes.get(i) else {
            return Err(ParseError::Shape);
        };
        let v = i + 1;
        let val = nodes.get(v).ok_or(ParseError::Shape)?;
        f(key, v)?;
        i = v + span(val);
    }
    Ok(())
}

#[inline]
pub(crate) fn str_at<'i>(nodes: &[Node<'i>], at: Option<usize>, name: &'static str) -> Result<&'i [u8], ParseError> {
    match nodes.get(at.ok_or(ParseError::Missing(name))?) {
        Some(&Node::String(s)) => Ok(s.as_bytes()),
        _ => Err(ParseError::Type(name)),
    }
}

#[inline]
fn u64_at(nodes: &[Node<'_>], at: Option<usize>, name: &'static str) -> Result<u64, ParseError> {
    match nodes.get(at.ok_or(ParseError::Missing(name))?) {
        Some(&Node::Static(StaticNode::U64(v))) => Ok(v),
        Some(&Node::Static(StaticNode::I64(v))) => u64::try_from(v).map_err(|_| ParseError::Type(name)),
        _ => Err(ParseError::Type(name)),
    }
}

/// A millisecond timestamp as ns.
#[inline]
fn ms_at(nodes: &[Node<'_>], at: Option<usize>, name: &'static str) -> Result<Ts, ParseError> {
    let ms = u64_at(nodes, at, name)?;
    i64::try_from(ms).ok().and_then(|v| v.checked_mul(NS_PER_MS)).ok_or(ParseError::Type(name))
}

#[inline]
pub(crate) fn bool_at(nodes: &[Node<'_>], at: Option<usize>, name: &'static str) -> Result<bool, ParseError> {
    match nodes.get(at.ok_or(ParseError::Missing(name))?) {
        Some(&Node::Static(StaticNode::Bool(b))) => Ok(b),
        _ => Err(ParseError::Type(name)),
    }
}

#[inline]
fn price(inst: &Instrument, s: &[u8], field: &'static str) -> Result<Px, ParseError> {
    let px = inst.parse_price(s).map_err(|err| ParseError::Price { field, err })?;
    if px <= 0 {
        return Err(ParseError::Range(field));
    }
    Ok(px)
}

/// The `bookTicker` fast path (see the module docs): the message if it is exactly the
/// template, every field checked as the general path checks it, else `None`.
#[inline]
fn fast_book_ticker(msg: &[u8], table: &SymbolTable) -> Option<Parsed> {
    let mut c = Cursor { rest: msg };
    c.lit(br#"{"stream":""#)?;
    if kind_of_stream(c.string()?) != Kind::BookTicker {
        return None;
    }
    c.lit(br#"","data":{"u":"#)?;
    let update_id = c.uint()?;
    c.lit(br#","s":""#)?;
    let inst = table.lookup(c.string()?)?;
    let &(tick, lot) = table.grids.get(inst as usize)?;
    let (tick, lot) = (tick?, lot?);
    c.lit(br#"","b":""#)?;
    let bid = c.on_grid(tick).filter(|&px| px > 0)?;
    c.lit(br#"","B":""#)?;
    let bid_qty = c.on_grid(lot)?;
    c.lit(br#"","a":""#)?;
    let ask = c.on_grid(tick).filter(|&px| px > 0)?;
    c.lit(br#"","A":""#)?;
    let ask_qty = c.on_grid(lot)?;
    c.lit(br#""}}"#)?;
    c.rest.is_empty().then_some(Parsed::BookTicker { inst, update_id, bid, bid_qty, ask, ask_qty })
}

/// `Some(k)` if `inc` is exactly `10^-k` (`0.01`, `0.010`, `1`), else `None`.
fn pow10_scale(inc: Decimal) -> Option<u32> {
    let (mut m, mut k) = (inc.mantissa(), inc.scale());
    while m % 10 == 0 && m != 0 && k > 0 {
        m /= 10;
        k -= 1;
    }
    (m == 1).then_some(k)
}

/// A forward-only reader of [`fast_book_ticker`]'s template.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// Consumes `lit` exactly.
    #[inline]
    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        self.rest = self.rest.strip_prefix(lit)?;
        Some(())
    }

    /// The bytes up to the next `"` (not consumed): printable ASCII only, so no escape,
    /// no control byte and no multi-byte character (the general path takes those).
    #[inline]
    fn string(&mut self) -> Option<&'a [u8]> {
        let mut end = 0;
        loop {
            match *self.rest.get(end)? {
                b'"' => break,
                b'\\' => return None,
                0x20..=0x7e => end += 1,
                _ => return None,
            }
        }
        let (s, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(s)
    }

    /// A JSON unsigned integer that fits a `u64`: digits, no leading zero.
    #[inline]
    fn uint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut n = 0;
        while let Some(&d) = self.rest.get(n).filter(|d| d.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            n += 1;
        }
        if n == 0 || (n > 1 && self.rest[0] == b'0') {
            return None;
        }
        self.rest = &self.rest[n..];
        Some(v)
    }

    /// The decimal up to the next `"` (not consumed) in units of `10^-k`, read in one
    /// pass with no division: `Decimal::parse_bytes` followed by `to_increments` on a
    /// grid of `10^-k`, for the inputs it takes.
    ///
    /// With `d` the digits and `f` of them after the point, the value `d * 10^-f` is on
    /// the grid iff every fractional digit past the `k`-th is `0`, and is then
    /// `d' * 10^(k - min(f, k))` increments, `d'` being `d` without those zeros. Only
    /// the plain case is taken: digits with at most one `.`, no sign, at most 18
    /// digits (so the mantissa cannot overflow), on the grid, and in `i64` range.
    /// Anything else is `None`, and the general path gives the answer or the error.
    #[inline]
    fn on_grid(&mut self, k: u32) -> Option<i64> {
        let mut v = 0i64;
        let (mut digits, mut frac, mut point) = (0u32, 0u32, false);
        let mut n = 0;
        loop {
            match *self.rest.get(n)? {
                c @ b'0'..=b'9' => {
                    digits += 1;
                    if digits > 18 {
                        return None;
                    }
                    if point {
                        frac += 1;
                        if frac > k {
                            // Past the grid: only zeros keep the value on it.
                            if c != b'0' {
                                return None;
                            }
                            n += 1;
                            continue;
                        }
                    }
                    v = v * 10 + i64::from(c - b'0');
                }
                b'.' if !point => point = true,
                b'"' => break,
                _ => return None,
            }
            n += 1;
        }
        if digits == 0 {
            return None;
        }
        self.rest = &self.rest[n..];
        v.checked_mul(*POW10.get((k - frac.min(k)) as usize)?)
    }
}

#[inline]
fn qty(inst: &Instrument, s: &[u8], field: &'static str) -> Result<Qty, ParseError> {
    let q = inst.parse_qty(s).map_err(|err| ParseError::Qty { field, err })?;
    if q < 0 {
        return Err(ParseError::Range(field));
    }
    Ok(q)
}

/// Appends the `[[price, qty, ...], ...]` array at `at` to `out` as `side` levels.
#[inline]
#[allow(clippy::too_many_arguments)]
fn levels_at(
    nodes: &[Node<'_>],
    at: Option<usize>,
    name: &'static str,
    side: Side,
    inst: &Instrument,
    cap: usize,
    out: &mut Vec<DepthLevel>,
    off_grid: &mut u64,
) -> Result<(), ParseError> {
    let at = at.ok_or(ParseError::Missing(name))?;
    let Some(&Node::Array { len, .. }) = nodes.get(at) else {
        return Err(ParseError::Type(name));
    };
    let mut i = at + 1;
    for _ in 0..len {
        let el = nodes.get(i).ok_or(ParseError::Shape)?;
        // Each level is [price, qty] (old docs add a third, ignored element).
        let (Node::Array { len: n, .. }, Some(&Node::String(p)), Some(&Node::String(q))) =
            (*el, nodes.get(i + 1), nodes.get(i + 2))
        else {
            return Err(ParseError::Type(name));
        };
        if n < 2 {
            return Err(ParseError::Type(name));
        }
        if out.len() >= cap {
            return Err(ParseError::TooManyLevels(cap));
        }
        i += span(el);
        let px = match price(inst, p.as_bytes(), name) {
            Ok(px) => px,
            Err(ParseError::Price { err: DecimalError::OffGrid, .. }) => {
                *off_grid += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let qty = match qty(inst, q.as_bytes(), name) {
            Ok(q) => q,
            Err(ParseError::Qty { err: DecimalError::OffGrid, .. }) => {
                *off_grid += 1;
                let v = Decimal::parse_bytes(q.as_bytes()).map_err(|err| ParseError::Qty { field: name, err })?;
                inst.qty_to_lots(v.to_f64(), Round::Nearest).ok_or(ParseError::Range(name))?.max(1)
            }
            Err(e) => return Err(e),
        };
        out.push(DepthLevel { side, px, qty });
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    BookTicker,
    Depth,
    Trade,
    AggTrade,
    Unknown,
}

impl Kind {
    /// The fields documented for the kind; others are counted as unknown.
    fn known(self) -> &'static [&'static str] {
        match self {
            Kind::BookTicker => &["u", "s", "b", "B", "a", "A"],
            Kind::Depth => &["e", "E", "s", "U", "u", "b", "a"],
            Kind::Trade => &["e", "E", "s", "t", "p", "q", "b", "a", "T", "m", "M"],
            Kind::AggTrade => &["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"],
            Kind::Unknown => &[],
        }
    }
}

/// The kind from a stream name such as `btcusdt@depth@100ms`.
#[inline]
fn kind_of_stream(name: &[u8]) -> Kind {
    let Some(at) = name.iter().position(|&c| c == b'@') else {
        return Kind::Unknown;
    };
    match &name[at + 1..] {
        b"bookTicker" => Kind::BookTicker,
        b"depth" | b"depth@100ms" | b"depth@1000ms" => Kind::Depth,
        b"trade" => Kind::Trade,
        b"aggTrade" => Kind::AggTrade,
        _ => Kind::Unknown,
    }
}

/// Indices of the fields of a stream payload we read.
#[derive(Default)]
struct Fields {
    e: Option<usize>,
    big_e: Option<usize>,
    s: Option<usize>,
    big_u: Option<usize>,
    u: Option<usize>,
    b: Option<usize>,
    big_b: Option<usize>,
    a: Option<usize>,
    big_a: Option<usize>,
    p: Option<usize>,
    q: Option<usize>,
    m: Option<usize>,
}

fn decode(
    nodes: &[Node<'_>],
    table: &SymbolTable,
    stats: &mut ParseStats,
    cap: usize,
    levels: &mut Vec<DepthLevel>,
) -> Result<Parsed, ParseError> {
    // Envelope: {"stream": .., "data": {..}} or a raw payload.
    let mut stream = None;
    let mut data = None;
    for_each_field(nodes, 0, |k, v| {
        match k {
            "stream" => stream = Some(v),
            "data" => data = Some(v),
            _ => {}
        }
        Ok(())
    })?;
    let (mut kind, obj) = match (stream, data) {
        (Some(_), Some(d)) => (kind_of_stream(str_at(nodes, stream, "stream")?), d),
        (None, None) => (Kind::Unknown, 0),
        _ => return Err(ParseError::Shape),
    };
    if !matches!(nodes.get(obj), Some(Node::Object { .. })) {
        return Err(ParseError::Shape);
    }

    let mut f = Fields::default();
    let mut keys = 0usize;
    let mut unknown = 0u64;
    for_each_field(nodes, obj, |k, v| {
        keys += 1;
        match k {
            "e" => f.e = Some(v),
            "E" => f.big_e = Some(v),
            "s" => f.s = Some(v),
            "U" => f.big_u = Some(v),
            "u" => f.u = Some(v),
            "b" => f.b = Some(v),
            "B" => f.big_b = Some(v),
            "a" => f.a = Some(v),
            "A" => f.big_a = Some(v),
            "p" => f.p = Some(v),
            "q" => f.q = Some(v),
            "m" => f.m = Some(v),
            _ => {}
        }
        Ok(())
    })?;

    if stream.is_none() {
        // Raw payload: the event type names the kind; a book ticker has none.
        kind = match f.e.map(|_| str_at(nodes, f.e, "e")).transpose()? {
            Some(b"depthUpdate") => Kind::Depth,
            Some(b"trade") => Kind::Trade,
            Some(b"aggTrade") => Kind::AggTrade,
            Some(_) => Kind::Unknown,
            None if f.big_b.is_some() && f.big_a.is_some() && f.u.is_some() => Kind::BookTicker,
            None => Kind::Unknown,
        };
    }
    if kind == Kind::Unknown {
        stats.ignored_streams += 1;
        return Ok(Parsed::Ignored);
    }
    // Count unknown fields (second pass only over keys, cheap: payloads have <= 12).
    let known = kind.known();
    let _ = keys;
    for_each_field(nodes, obj, |k, _| {
        if !known.contains(&k) {
            unknown += 1;
        }
        Ok(())
    })?;
    stats.unknown_fields += unknown;

    let Some(inst) = table.lookup(str_at(nodes, f.s, "s")?) else {
        stats.unknown_symbols += 1;
        return Ok(Parsed::Ignored);
    };
    let instrument = table.instruments.get(inst as usize).ok_or(ParseError::Range("s"))?;

    match kind {
        Kind::BookTicker => Ok(Parsed::BookTicker {
            inst,
            update_id: u64_at(nodes, f.u, "u")?,
            bid: price(instrument, str_at(nodes, f.b, "b")?, "b")?,
            bid_qty: qty(instrument, str_at(nodes, f.big_b, "B")?, "B")?,
            ask: price(instrument, str_at(nodes, f.a, "a")?, "a")?,
            ask_qty: qty(instrument, str_at(nodes, f.big_a, "A")?, "A")?,
        }),
        Kind::Depth => {
            let exch_ts = ms_at(nodes, f.big_e, "E")?;
            let first_id = u64_at(nodes, f.big_u, "U")?;
            let last_id = u64_at(nodes, f.u, "u")?;
            if last_id < first_id {
                return Err(ParseError::Range("u"));
            }
            levels_at(nodes, f.b, "b", Side::Buy, instrument, cap, levels, &mut stats.off_grid_levels)?;
            levels_at(nodes, f.a, "a", Side::Sell, instrument, cap, levels, &mut stats.off_grid_levels)?;
            Ok(Parsed::Depth { inst, exch_ts, first_id, last_id })
        }
        Kind::Trade | Kind::AggTrade => Ok(Parsed::Trade {
            inst,
            exch_ts: ms_at(nodes, f.big_e, "E")?,
            px: price(instrument, str_at(nodes, f.p, "p")?, "p")?,
            qty: qty(instrument, str_at(nodes, f.q, "q")?, "q")?,
            buyer_is_maker: bool_at(nodes, f.m, "m")?,
        }),
        Kind::Unknown => Ok(Parsed::Ignored),
    }
}

fn decode_snapshot(
    nodes: &[Node<'_>],
    inst: &Instrument,
    cap: usize,
    levels: &mut Vec<DepthLevel>,
    off_grid: &mut u64,
) -> Result<u64, ParseError> {
    let (mut id, mut bids, mut asks) = (None, None, None);
    for_each_field(nodes, 0, |k, v| {
        match k {
            "lastUpdateId" => id = Some(v),
            "bids" => bids = Some(v),
            "asks" => asks = Some(v),
            _ => {}
        }
        Ok(())
    })?;
    let id = u64_at(nodes, id, "lastUpdateId")?;
    levels_at(nodes, bids, "bids", Side::Buy, inst, cap, levels, off_grid)?;
    levels_at(nodes, asks, "asks", Side::Sell, inst, cap, levels, off_grid)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Decimal;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn parser() -> BinanceParser {
        let insts = [
            Instrument::new("BNBBTC", d("0.0001"), d("1")),
            Instrument::new("BNBUSDT", d("0.0001"), d("0.01")),
            Instrument::new("BTCUSDT", d("0.01"), d("0.00001")),
        ];
        BinanceParser::new(&insts, 64)
    }

    /// Parses `msg` with and without the fast path: the same result and the same
    /// counters, or the test fails. Returns the result.
    fn both_paths(msg: &[u8]) -> Result<Parsed, ParseError> {
        let (mut fast, mut general) = (parser(), parser());
        let (mut l1, mut l2) = (Vec::new(), Vec::new());
        let a = fast.parse(msg, 0, &mut l1);
        general.stats.messages += 1;
        let b = general.parse_general(msg, &mut l2);
        assert_eq!(a, b, "{}", String::from_utf8_lossy(msg));
        assert_eq!(fast.stats(), general.stats(), "{}", String::from_utf8_lossy(msg));
        a
    }

    #[test]
    fn the_book_ticker_fast_path_takes_the_documented_message_and_refuses_the_rest() {
        let doc = DOC_BOOK_TICKER.as_bytes();
        assert!(fast_book_ticker(doc, &parser().table).is_some());
        assert!(matches!(both_paths(doc), Ok(Parsed::BookTicker { update_id: 400900217, .. })));
        let refused = [
            DOC_BOOK_TICKER.replace("bnbusdt@bookTicker", "bnbusdt@x@bookTicker"),
            DOC_BOOK_TICKER.replace("BNBUSDT", "XRPUSDT"),
            DOC_BOOK_TICKER.replace("BNBUSDT", "BNB\\u0055SDT"),
            DOC_BOOK_TICKER.replace("400900217", "0400900217"),
            DOC_BOOK_TICKER.replace("400900217", "18446744073709551616"),
            DOC_BOOK_TICKER.replace("25.35190000", "25.35195"),
            DOC_BOOK_TICKER.replace("\"A\"", "\"A\" "),
            DOC_BOOK_TICKER.replace("}}", "}, \"x\":1}"),
            DOC_BOOK_TICKER.to_string() + " ",
            DOC_BOOK_TICKER.replace("BNBUSDT", "BNB\tUSDT"),
        ];
        for m in &refused {
            assert!(fast_book_ticker(m.as_bytes(), &parser().table).is_none(), "{m}");
            let _ = both_paths(m.as_bytes());
        }
    }

    #[test]
    fn power_of_ten_grids_are_recognised() {
        let g = |s: &str| pow10_scale(s.parse().unwrap());
        assert_eq!(g("0.01"), Some(2));
        assert_eq!(g("0.0100"), Some(2));
        assert_eq!(g("1"), Some(0));
        assert_eq!(g("0.00000001"), Some(8));
        assert_eq!(g("0.05"), None);
        assert_eq!(g("10"), None);
        assert_eq!(g("0.25"), None);
    }

    proptest::proptest! {
        /// The fast path agrees with the general path on book tickers and their
        /// near misses: case, symbols, ids, prices on and off the grid, cut or
        /// padded messages.
        #[test]
        fn the_book_ticker_fast_path_agrees_with_the_general_path(
            sym in proptest::sample::select(vec!["BNBUSDT", "bnbusdt", "BTCUSDT", "BNBBTC", "ETHUSDT", ""]),
            stream in proptest::sample::select(vec!["bnbusdt@bookTicker", "x@bookTicker", "bnbusdt@depth", "bookTicker"]),
            u in proptest::prelude::any::<u64>(),
            b in "[0-9]{1,4}(\\.[0-9]{0,9})?",
            big_b in "[0-9]{0,12}(\\.[0-9]{0,12})?",
            a in "[-+]?[0-9]{0,14}(\\.[0-9]{0,9})?(0{0,6})",
            big_a in "[0-9]{1,3}|[0-9.]{0,4}|9{15,22}",
            cut in 0usize..4,
        ) {
            let m = format!(r#"{{"stream":"{stream}","data":{{"u":{u},"s":"{sym}","b":"{b}","B":"{big_b}","a":"{a}","A":"{big_a}"}}}}"#);
            let m = &m.as_bytes()[..m.len() - cut.min(1) * cut];
            let _ = both_paths(m);
        }
    }

    // Payloads from Binance's "WebSocket Streams for Binance"
    // (binance/binance-spot-api-docs, web-socket-streams.md), comments stripped,
    // wrapped as combined-stream events.
    const DOC_BOOK_TICKER: &str = r#"{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#;
    const DOC_DEPTH: &str = r#"{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}"#;
    const DOC_TRADE: &str = r#"{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}"#;
    const DOC_AGG_TRADE: &str = r#"{"stream":"bnbbtc@aggTrade","data":{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,"T":1672515782136,"m":true,"M":true}}"#;
    // 2018 edition of the same document (binance-exchange/binance-official-api-docs):
    // levels carry a third, ignored element.
    const DOC_DEPTH_2018: &str = r#"{"e":"depthUpdate","E":123456789,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10",[]]],"a":[["0.0026","100",[]]]}"#;

    #[test]
    fn off_grid_levels_are_counted_not_fatal() {
        // The shape of btcusdt_20240808.gz line 34306 in ../shared/data/binance-spot: a
        // far ask whose size is finer than the 0.00001 lot, beside normal levels.
        let msg = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161535942,"s":"BTCUSDT","U":50093390101,"u":50093390112,"b":[["61682.72000000","1.23888000"],["61682.725","1.0"]],"a":[["200000.00000000","25.426189"],["61683.00000000","0.00000000"]]}}"#;
        let mut p = parser();
        let mut lv = Vec::with_capacity(64);
        let r = p.parse(msg.as_bytes(), 0, &mut lv).unwrap();
        assert!(matches!(r, Parsed::Depth { inst: 2, first_id: 50093390101, last_id: 50093390112, .. }));
        // The off-tick bid is skipped; the off-lot ask is kept at the nearest lot.
        let got: Vec<(Side, Px, Qty)> = lv.iter().map(|l| (l.side, l.px, l.qty)).collect();
        assert_eq!(got, [(Side::Buy, 6168272, 123888), (Side::Sell, 20000000, 2542619), (Side::Sell, 6168300, 0)]);
        assert_eq!(p.stats().off_grid_levels, 2);
        assert_eq!(p.stats().errors, 0);
    }

    #[test]
    fn documented_book_ticker() {
        let mut p = parser();
        let mut lv = Vec::with_capacity(64);
        let r = p.parse(DOC_BOOK_TICKER.as_bytes(), 7, &mut lv).unwrap();
        assert_eq!(
            r,
            Parsed::BookTicker {
                inst: 1,
                update_id: 400900217,
                bid: 253519,
                bid_qty: 3121,
                ask: 253652,
                ask_qty: 4066
            }
        );
        let mut evs = Vec::new();
        r.emit(&lv, 7, &mut |e| evs.push(e));
        assert_eq!(evs.len(), 2);
        assert_eq!((evs[0].kind, evs[0].exch_ts, evs[0].flags), (EventKind::BestBid, 7, 0));
        assert_eq!((evs[1].kind, evs[1].flags), (EventKind::BestAsk, MarketEvent::END_OF_BATCH));
    }

    #[test]
    fn documented_depth_update() {
        let mut p = parser();
        let mut lv = Vec::with_capacity(64);
        for msg in [DOC_DEPTH, DOC_DEPTH_2018] {
            let r = p.parse(msg.as_bytes(), 0, &mut lv).unwrap();
            let Parsed::Depth { inst: 0, first_id: 157, last_id: 160, exch_ts, .. } = r else { panic!("{r:?}") };
            assert!(exch_ts == 1672515782136 * NS_PER_MS || exch_ts == 123456789 * NS_PER_MS);
            assert_eq!(
                lv,
                [DepthLevel { side: Side::Buy, px: 24, qty: 10 }, DepthLevel { side: Side::Sell, px: 26, qty: 100 }]
            );
        }
        assert_eq!(p.stats().out_of_order_ts, 1, "the 2018 example's E is earlier");
    }

    #[test]
    fn documented_trades() {
        let mut p = parser();
        let mut lv = Vec::new();
        for msg in [DOC_TRADE, DOC_AGG_TRADE] {
            let r = p.parse(msg.as_bytes(), 0, &mut lv).unwrap();
            assert_eq!(
                r,
                Parsed::Trade { inst: 0, exch_ts: 1672515782136 * NS_PER_MS, px: 10, qty: 100, buyer_is_maker: true }
            );
            let mut evs = Vec::new();
            r.emit(&lv, 0, &mut |e| evs.push(e));
            assert_eq!(evs[0].kind, EventKind::TradeSell);
            assert!(evs[0].is_batch_end());
        }
        assert_eq!(p.stats().unknown_fields, 0);
    }

    #[test]
    fn edge_cases() {
        let mut p = parser();
        let mut lv = Vec::new();
        // Many decimals, zero quantity, empty sides, unknown fields, upper-case stream.
        let m = r#"{"stream":"BTCUSDT@depth","data":{"e":"depthUpdate","E":5,"s":"btcusdt","U":1,"u":1,"x":{"y":[1,2]},"b":[],"a":[["0.01000000","0.00000000"]],"zz":null}}"#;
        let r = p.parse(m.as_bytes(), 0, &mut lv).unwrap();
        assert!(matches!(r, Parsed::Depth { inst: 2, exch_ts: 5_000_000, .. }));
        assert_eq!(lv, [DepthLevel { side: Side::Sell, px: 1, qty: 0 }]);
        assert_eq!(p.stats().unknown_fields, 2);
        // Unknown stream / unknown symbol are ignored and counted.
        let k = r#"{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}"#;
        assert_eq!(p.parse(k.as_bytes(), 0, &mut lv), Ok(Parsed::Ignored));
        let u = DOC_TRADE.replace("BNBBTC", "XRPBTC");
        assert_eq!(p.parse(u.as_bytes(), 0, &mut lv), Ok(Parsed::Ignored));
        assert_eq!((p.stats().ignored_streams, p.stats().unknown_symbols), (1, 1));
    }

    #[test]
    fn errors_never_panic() {
        let mut p = parser();
        let mut lv = Vec::new();
        let off_tick = DOC_TRADE.replace("\"0.001\"", "\"0.00105\"");
        assert!(matches!(p.parse(off_tick.as_bytes(), 0, &mut lv), Err(ParseError::Price { field: "p", .. })));
        let missing = DOC_TRADE.replace("\"m\":true,", "");
        assert_eq!(p.parse(missing.as_bytes(), 0, &mut lv), Err(ParseError::Missing("m")));
        let typed = DOC_DEPTH.replace("\"U\":157", "\"U\":\"157\"");
        assert_eq!(p.parse(typed.as_bytes(), 0, &mut lv), Err(ParseError::Type("U")));
        assert_eq!(p.parse(b"{\"stream\":", 0, &mut lv), Err(ParseError::Json));
        assert_eq!(p.parse(b"[1,2]", 0, &mut lv), Err(ParseError::Shape));
        assert_eq!(p.parse(b"", 0, &mut lv), Err(ParseError::Json));
        let neg = DOC_TRADE.replace("\"100\"", "\"-100\"");
        assert_eq!(p.parse(neg.as_bytes(), 0, &mut lv), Err(ParseError::Range("q")));
        let bad_level = DOC_DEPTH.replace("[\"0.0024\",\"10\"]", "[\"0.0024\"]");
        assert_eq!(p.parse(bad_level.as_bytes(), 0, &mut lv), Err(ParseError::Type("b")));
        let mut small = BinanceParser::new(&[Instrument::new("BNBBTC", d("0.0001"), d("1"))], 1);
        assert_eq!(small.parse(DOC_DEPTH.as_bytes(), 0, &mut lv), Err(ParseError::TooManyLevels(1)));
        assert!(lv.is_empty());
        // Every truncation of a valid message is an error or a value, never a panic.
        for m in [DOC_BOOK_TICKER, DOC_DEPTH, DOC_TRADE, DOC_AGG_TRADE] {
            for n in 0..m.len() {
                let _ = p.parse(&m.as_bytes()[..n], 0, &mut lv);
            }
        }
    }

    #[test]
    fn documented_snapshot() {
        // REST GET /api/v3/depth response example (binance-spot-api-docs, rest-api.md).
        let s =
            r#"{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#;
        let mut p = BinanceParser::new(&[Instrument::new("BNBBTC", d("0.00000001"), d("0.01"))], 64);
        let mut lv = Vec::new();
        assert_eq!(p.parse_snapshot(s.as_bytes(), 0, &mut lv), Ok(1027024));
        assert_eq!(
            lv,
            [
                DepthLevel { side: Side::Buy, px: 400_000_000, qty: 43_100 },
                DepthLevel { side: Side::Sell, px: 400_000_200, qty: 1_200 }
            ]
        );
        assert_eq!(p.parse_snapshot(s.as_bytes(), 9, &mut lv), Err(ParseError::Range("inst")));
        assert_eq!(p.parse_snapshot(b"{\"bids\":[]}", 0, &mut lv), Err(ParseError::Missing("lastUpdateId")));
    }
}
