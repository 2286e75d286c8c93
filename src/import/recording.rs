//! Our recordings: text lines `<local receive ns> <raw message>`, plain or gzip, the
//! format of [`crate::feed::record`] and of `/work/shared/data/binance-spot/*.gz`.
//!
//! # What the events mean
//!
//! Each message goes through the live feed's own code, so that the imported stream is
//! the one the live feed ([`crate::feed::source`]) would have produced from the same
//! messages: [`BinanceParser`] decodes it (`local_ts` = the recorded receive time), and
//!
//! - a depth diff goes to the instrument's [`DepthSync`] (Binance's local-book
//!   procedure: buffer diffs, seed from a snapshot, apply contiguous diffs, clear on a
//!   gap), which emits `Clear`/`BidLevel`/`AskLevel` batches;
//! - a tagged REST snapshot line, `{"statarb_snapshot":"BTCUSDT","data":{..}}`, as
//!   [`crate::feed::record`] writes every snapshot the live feed fetched, is given to
//!   the named instrument's [`DepthSync::on_snapshot`], exactly where the live feed
//!   passes a fetched snapshot (and names the symbol for untagged lines after it); a
//!   malformed one is a bad row naming its line ([`RowError::SnapshotLine`]). An
//!   untagged snapshot line (`{"lastUpdateId":..,"bids":..,"asks":..}`, as the shared
//!   recordings hold; it names no symbol) belongs, as in [`crate::serve`], to the
//!   symbol of the last message line before it in the same file, and is used the same
//!   way. A stale snapshot (older than the buffered diffs) cannot be
//!   fetched again: the book waits for the next snapshot line (counted in
//!   [`ImportStats::sync`]);
//! - a book ticker is emitted as the live feed emits it: only while the instrument's
//!   book is synced and if its update id is not older than the book's, else counted in
//!   [`ImportStats::skipped_stale_ticker`]. Exception: before the first depth message of
//!   an instrument (a recording of book tickers and trades only, or its leading
//!   tickers) tickers are emitted as from a ticker-only feed; at the first depth message
//!   the book is cleared (`Clear`) and waits for its snapshot like the live feed;
//! - a trade is always emitted.
//!
//! Events released late keep `local_ts` monotonic: the buffered diffs that a snapshot
//! releases are stamped with the snapshot line's time (they could not be applied
//! earlier), not their own.
//!
//! # Without a snapshot
//!
//! A recording without snapshot lines (one made by `statarb record` before it recorded
//! the feed's snapshots, or of streams without depth snapshots) would never sync a book
//! by the live procedure; and where a recording does hold snapshots, a gap after the
//! last one (a lost message, or one the parser refuses:
//! the shared recordings hold depth messages with far-away levels whose size is finer
//! than the lot) would leave the book cleared for the rest of the file, where the live
//! feed would have fetched a new snapshot. [`RecordingBook`] chooses:
//!
//! - [`RecordingBook::Sync`]: the live procedure only. Without a usable snapshot line an
//!   instrument's book is not emitted (its diffs are buffered and dropped, counted in
//!   [`ImportStats::sync`]; its tickers counted as stale); trades are imported.
//! - [`RecordingBook::Diffs`]: every diff's levels are emitted as they come (diffs not
//!   newer than the previous one are skipped; gaps are counted in
//!   [`ImportStats::gaps`] and passed over), and every book ticker. The book then holds
//!   the levels seen in diffs, with its top of book set by the tickers
//!   ([`crate::book::Book::apply`] removes levels better than a `BestBid`/`BestAsk`),
//!   as the replay server's book without a snapshot. Snapshot lines are ignored.
//! - [`RecordingBook::Auto`] (default): the live procedure wherever it can work, diffs
//!   where it would need a snapshot the recording does not have. An instrument without
//!   any snapshot line runs as `Diffs` ([`ImportStats::diffs_only`]); one with snapshots
//!   runs as `Sync` until its last snapshot line, and from a depth message after that
//!   line that finds its book unsynced or shows a gap, continues as `Diffs`
//!   ([`ImportStats::diffs_after_gap`]): the book is kept (not cleared), missing only the
//!   levels of the lost message until they change again. The input is read once as
//!   `Sync`, and a second time only if an instrument ended that first reading with
//!   depth messages but no synced book.
//!
//! # Several files
//!
//! Files given together are one session: their lines are merged by receive time (ties:
//! file order) and share the parser and the synchronisers, so a day split over two files
//! (`btcusdt_20240808.gz`, `btcusdt_20240809.gz`) or a rotated recording continues its
//! book across the split. Each file keeps its own snapshot attribution.
//!
//! # Bad lines
//!
//! A line that is not `<ns> <message>`, a message the parser refuses (malformed JSON, a
//! price off the tick grid, ...), a snapshot before any line named its symbol: counted
//! as bad rows with their line number; so are a line longer than
//! [`super::Limits::max_line_bytes`] (skipped without being buffered), a receive or
//! exchange time outside the accepted years or a receive time jumping ahead, and prices
//! or sizes beyond [`MAX_TICKS`] or a trade of size 0 ([`ImportStats::rejected`]). Unknown streams and other JSON (subscription
//! replies) are ignored and counted; messages of other symbols are counted. A gzip file
//! cut short (a crash) is read up to the cut ([`ImportStats::truncated`]). Empty lines
//! are not rows.

use std::path::{Path, PathBuf};

use super::{
    excerpt, open, read_failed, Clock, EventSink, ImportError, ImportStats, Input, Limits, Order, RecordingBook,
    RowError, SymbolTable, MAX_TICKS,
};
use crate::event::{EventKind, MarketEvent};
use crate::feed::binance::{emit_levels, BinanceParser, DepthLevel, Parsed};
use crate::feed::record::parse_snapshot_line;
use crate::feed::sync::DepthSync;
use crate::lines::{BoundedLines, Line};
use crate::types::{InstId, Instrument, Ts};

/// Depth levels one message may carry (a REST snapshot of 5000 per side fits).
const MAX_LEVELS: usize = 16 * 1024;
/// Diffs buffered per instrument while waiting for a snapshot: the live feed's value.
const SYNC_BUFFER: usize = 4096;

/// Imports recording files as one session (see the module docs) into `out`, as the
/// lines are read, filling `stats`. In [`RecordingBook::Auto`]
/// a second pass may be needed (modes chosen from the first): the sink is then
/// [`EventSink::clear`]ed and filled again.
pub(crate) fn import_into(
    paths: &[PathBuf],
    instruments: &[Instrument],
    book: RecordingBook,
    lim: &Limits,
    stats: &mut ImportStats,
    out: &mut impl EventSink,
) -> Result<(), ImportError> {
    let n = instruments.len();
    let first = if book == RecordingBook::Diffs { Mode::Diffs } else { Mode::Sync };
    let mut s = ImportStats::default();
    let mut pass = run(paths, instruments, vec![first; n], lim, &mut s, out)?;
    if book == RecordingBook::Auto && (0..n).any(|i| pass.depth_msgs[i] > 0 && !pass.synced[i]) {
        let modes = pass.last_snapshot.iter().map(|l| l.map_or(Mode::Diffs, Mode::SyncUntil)).collect();
        s = ImportStats::default();
        out.clear();
        pass = run(paths, instruments, modes, lim, &mut s, out)?;
    }
    for (i, inst) in instruments.iter().enumerate() {
        if pass.depth_msgs[i] == 0 {
            continue;
        }
        if pass.modes[i] == Mode::Diffs && !pass.switched[i] {
            s.diffs_only.push(inst.symbol.clone());
        } else if pass.switched[i] {
            s.diffs_after_gap.push(inst.symbol.clone());
        }
    }
    stats.add(&s);
    Ok(())
}

/// How an instrument's book is rebuilt during a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The live procedure.
    Sync,
    /// Diffs as they come.
    Diffs,
    /// The live procedure; past this line (the last snapshot line), a depth message that
    /// finds the book unsynced or shows a gap switches to `Diffs`.
    SyncUntil(u64),
}

/// What a pass produced, and per instrument what it saw.
struct Pass {
    /// Depth messages.
    depth_msgs: Vec<u64>,
    /// Session line number of the last snapshot line.
    last_snapshot: Vec<Option<u64>>,
    /// The book was synced at the end.
    synced: Vec<bool>,
    /// The mode at the end.
    modes: Vec<Mode>,
    /// Switched from `SyncUntil` to `Diffs`.
    switched: Vec<bool>,
}

/// One input file with one line of lookahead.
struct Source {
    path: PathBuf,
    input: BoundedLines<Input>,
    /// The current line's time and message bounds in the reader's line, if there is a
    /// current line.
    cur: Option<(Ts, usize, usize)>,
    /// Receive times: window and forward jumps.
    clock: Clock,
    /// Symbol of the last message line: `None` before any, `Some(None)` for a symbol
    /// not among the instruments.
    last_sym: Option<Option<InstId>>,
    order: Order,
}

impl Source {
    /// Loads the next line that has a time stamp into `cur` (bad ones are counted).
    /// Lines longer than [`Limits::line_bytes`] are skipped (unbuffered) and counted as
    /// bad rows; so are receive times outside the window or jumping ahead
    /// ([`Limits::max_jump`]).
    fn advance(&mut self, lim: &Limits, stats: &mut ImportStats) -> Result<(), ImportError> {
        self.cur = None;
        loop {
            match self.input.next_line() {
                Ok(None) => return Ok(()),
                Ok(Some(Line::Text(_))) => {}
                Ok(Some(Line::TooLong { len })) => {
                    stats.rows += 1;
                    let e = RowError::TooLong { len, max: lim.line_bytes() };
                    stats.bad(&self.path, self.input.line(), &e, &String::new);
                    continue;
                }
                Err(e) => return read_failed(&self.path, e, stats),
            }
            let n = self.input.line();
            let line = self.input.current();
            let end = line.iter().rposition(|&c| c != b'\r' && c != b'\n').map_or(0, |i| i + 1);
            if end == 0 {
                continue;
            }
            let line = &line[..end];
            let digits = line.iter().take_while(|c| c.is_ascii_digit()).count();
            let ts = super::parse_int(&line[..digits]);
            let checked =
                ts.map(|t| lim.window(t, "receive time").and_then(|()| self.clock.check(lim, t, "receive time")));
            match (ts, line.get(digits), checked) {
                (Some(ts), Some(b' '), Some(Ok(()))) => {
                    self.cur = Some((ts, digits + 1, end));
                    return Ok(());
                }
                (Some(_), Some(b' '), Some(Err(e))) => {
                    stats.rows += 1;
                    stats.bad(&self.path, n, &e, &|| excerpt(line));
                }
                _ => {
                    stats.rows += 1;
                    stats.bad(&self.path, n, &RowError::Line, &|| excerpt(line));
                }
            }
        }
    }
}

/// The output, with `local_ts` kept monotonic.
struct Sink<'s, S> {
    out: &'s mut S,
    last_local: Ts,
}

impl<S: EventSink> Sink<'_, S> {
    #[inline]
    fn push(&mut self, mut e: MarketEvent) {
        if e.local_ts < self.last_local {
            e.local_ts = self.last_local;
        } else {
            self.last_local = e.local_ts;
        }
        self.out.push(e);
    }
}

/// The live feed's pieces, one per session.
struct Session<'a, 's, S> {
    table: SymbolTable<'a>,
    /// Per instrument: the current mode.
    modes: Vec<Mode>,
    /// Per instrument: switched from `SyncUntil` to `Diffs`.
    switched: Vec<bool>,
    /// Session line number of the current line (all files, in merged order).
    seq: u64,
    parser: BinanceParser,
    levels: Vec<DepthLevel>,
    syncs: Vec<DepthSync>,
    /// Per instrument: a depth message was seen.
    depth_seen: Vec<bool>,
    /// Per instrument: tickers were emitted before the first depth message.
    ticker_only: Vec<bool>,
    /// Per instrument (diffs mode): the last diff's `u`.
    last_u: Vec<Option<u64>>,
    depth_msgs: Vec<u64>,
    last_snapshot: Vec<Option<u64>>,
    sink: Sink<'s, S>,
    lim: Limits,
}

fn run(
    paths: &[PathBuf],
    instruments: &[Instrument],
    modes: Vec<Mode>,
    lim: &Limits,
    stats: &mut ImportStats,
    out: &mut impl EventSink,
) -> Result<Pass, ImportError> {
    let n = instruments.len();
    let mut sources = Vec::with_capacity(paths.len());
    for p in paths {
        let mut s = Source {
            path: p.clone(),
            input: BoundedLines::new(open(p)?, lim.line_bytes()),
            cur: None,
            clock: Clock::default(),
            last_sym: None,
            order: Order::default(),
        };
        s.advance(lim, stats)?;
        sources.push(s);
    }
    let mut ses = Session {
        table: SymbolTable::new(instruments),
        modes,
        switched: vec![false; n],
        seq: 0,
        parser: BinanceParser::new(instruments, MAX_LEVELS),
        levels: Vec::with_capacity(MAX_LEVELS),
        syncs: (0..n).map(|i| DepthSync::new(i as InstId, SYNC_BUFFER)).collect(),
        depth_seen: vec![false; n],
        ticker_only: vec![false; n],
        last_u: vec![None; n],
        depth_msgs: vec![0; n],
        last_snapshot: vec![None; n],
        sink: Sink { out, last_local: Ts::MIN },
        lim: *lim,
    };
    loop {
        // The earliest current line; ties go to the earlier file.
        let mut best: Option<(usize, Ts)> = None;
        for (k, s) in sources.iter().enumerate() {
            if let Some((ts, _, _)) = s.cur {
                if best.is_none_or(|(_, t)| ts < t) {
                    best = Some((k, ts));
                }
            }
        }
        let Some((k, ts)) = best else { break };
        let src = &mut sources[k];
        if let Some((_, a, b)) = src.cur {
            src.order.see(ts, stats);
            ses.seq += 1;
            let line = src.input.line();
            let Source { input, last_sym, path, .. } = src;
            let msg = input.current().get(a..b).unwrap_or_default();
            ses.line(msg, ts, last_sym, path, line, stats);
        }
        src.advance(lim, stats)?;
    }
    for s in &ses.syncs {
        super::add_sync(&mut stats.sync, s.stats());
    }
    stats.snapshots += stats.sync.syncs;
    stats.gaps += stats.sync.gaps;
    Ok(Pass {
        synced: ses.syncs.iter().map(DepthSync::is_synced).collect(),
        depth_msgs: ses.depth_msgs,
        last_snapshot: ses.last_snapshot,
        modes: ses.modes,
        switched: ses.switched,
    })
}

/// The dropped count of a recorder gap marker, `{"statarb_gap":{"dropped":N}}`.
fn gap_marker(msg: &[u8]) -> Option<u64> {
    let rest = msg.strip_prefix(b"{\"")?.strip_prefix(crate::feed::record::GAP_MARKER_KEY.as_bytes())?;
    let digits = rest.strip_prefix(b"\":{\"dropped\":")?.strip_suffix(b"}}")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A REST depth snapshot: Binance puts `lastUpdateId` first.
#[inline]
fn is_snapshot(msg: &[u8]) -> bool {
    msg.starts_with(b"{\"lastUpdateId\"")
}

/// The symbol a message names: the stream prefix of a combined-stream message
/// (`{"stream":"btcusdt@...`), else a raw payload's `"s":"..."`.
fn line_symbol(msg: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = msg.strip_prefix(b"{\"stream\":\"") {
        let end = rest.iter().position(|&c| c == b'@' || c == b'"')?;
        return Some(&rest[..end]);
    }
    const KEY: &[u8] = b"\"s\":\"";
    let at = msg.windows(KEY.len()).position(|w| w == KEY)?;
    let rest = &msg[at + KEY.len()..];
    let end = rest.iter().position(|&c| c == b'"')?;
    Some(&rest[..end])
}

impl<S: EventSink> Session<'_, '_, S> {
    /// One message line.
    fn line(
        &mut self,
        msg: &[u8],
        ts: Ts,
        last_sym: &mut Option<Option<InstId>>,
        path: &Path,
        line: u64,
        stats: &mut ImportStats,
    ) {
        stats.rows += 1;
        if let Some(dropped) = gap_marker(msg) {
            // Messages lost in the recorder: the depth sync finds the missing update
            // ids itself and resyncs; the marker says how many messages went.
            stats.recorder_gaps += 1;
            stats.recorder_dropped = stats.recorder_dropped.saturating_add(dropped);
            return;
        }
        if let Some(tagged) = parse_snapshot_line(msg) {
            match tagged {
                Err(e) => stats.bad(path, line, &RowError::SnapshotLine(e), &|| excerpt(msg)),
                Ok((sym, data)) => {
                    let inst = self.table.lookup(sym);
                    *last_sym = Some(inst);
                    match inst {
                        None => stats.skipped_other_symbol += 1,
                        Some(inst) => self.snapshot(inst, data, ts, path, line, stats),
                    }
                }
            }
            return;
        }
        if is_snapshot(msg) {
            match *last_sym {
                None => stats.bad(path, line, &RowError::SnapshotWithoutSymbol, &|| excerpt(msg)),
                Some(None) => stats.skipped_other_symbol += 1,
                Some(Some(inst)) => self.snapshot(inst, msg, ts, path, line, stats),
            }
            return;
        }
        if let Some(sym) = line_symbol(msg) {
            *last_sym = Some(self.table.lookup(sym));
        }
        let unknown_before = self.parser.stats().unknown_symbols;
        let parsed = self.parser.parse(msg, ts, &mut self.levels).map_err(RowError::Parse);
        match parsed.and_then(|p| self.sane(&p, ts).map(|()| p)) {
            Err(e) => stats.bad(path, line, &e, &|| excerpt(msg)),
            Ok(Parsed::Ignored) => {
                if self.parser.stats().unknown_symbols > unknown_before {
                    stats.skipped_other_symbol += 1;
                } else {
                    stats.skipped_ignored += 1;
                }
            }
            Ok(Parsed::Depth { inst, exch_ts, first_id, last_id }) => {
                self.depth(inst, exch_ts, first_id, last_id, ts, stats);
            }
            Ok(p @ Parsed::BookTicker { inst, update_id, .. }) => {
                let i = inst as usize;
                let emit = match self.modes[i] {
                    Mode::Diffs => true,
                    _ if self.depth_seen[i] => {
                        let s = &self.syncs[i];
                        s.is_synced() && update_id >= s.last_update_id()
                    }
                    _ => {
                        self.ticker_only[i] = true;
                        true
                    }
                };
                if emit {
                    let Session { levels, sink, .. } = self;
                    p.emit(levels, ts, &mut |e| sink.push(e));
                } else {
                    stats.skipped_stale_ticker += 1;
                }
            }
            Ok(p @ Parsed::Trade { .. }) => {
                let Session { levels, sink, .. } = self;
                p.emit(levels, ts, &mut |e| sink.push(e));
            }
        }
    }

    /// The checks beyond the parser's (which refuses prices `<= 0` and negative sizes):
    /// prices and sizes at most [`MAX_TICKS`], a trade's size `> 0`, the exchange time
    /// in the window and close to the receive time `ts`.
    fn sane(&self, p: &Parsed, ts: Ts) -> Result<(), RowError> {
        let px = |v: i64, col| if v > 0 && v <= MAX_TICKS { Ok(()) } else { Err(RowError::PriceRange(col)) };
        let q = |v: i64, col| if (0..=MAX_TICKS).contains(&v) { Ok(()) } else { Err(RowError::SizeRange(col)) };
        match *p {
            Parsed::Depth { exch_ts, .. } => {
                self.lim.pair(exch_ts, ts)?;
                for l in &self.levels {
                    px(l.px, "level price")?;
                    q(l.qty, "level size")?;
                }
            }
            Parsed::Trade { exch_ts, px: p, qty, .. } => {
                self.lim.pair(exch_ts, ts)?;
                px(p, "p")?;
                q(qty, "q")?;
                if qty == 0 {
                    return Err(RowError::SizeRange("q"));
                }
            }
            Parsed::BookTicker { bid, bid_qty, ask, ask_qty, .. } => {
                px(bid, "b")?;
                px(ask, "a")?;
                q(bid_qty, "B")?;
                q(ask_qty, "A")?;
            }
            Parsed::Ignored => {}
        }
        Ok(())
    }

    /// A depth diff, its levels in `self.levels`.
    fn depth(&mut self, inst: InstId, exch_ts: Ts, first_id: u64, last_id: u64, ts: Ts, stats: &mut ImportStats) {
        let i = inst as usize;
        self.depth_msgs[i] += 1;
        let Session { syncs, levels, sink, depth_seen, ticker_only, last_u, modes, switched, seq, .. } = self;
        if let Mode::SyncUntil(last) = modes[i] {
            let s = &syncs[i];
            let gap = s.is_synced() && first_id > s.last_update_id().saturating_add(1);
            if *seq > last && (!s.is_synced() || gap) {
                // The live feed would fetch a snapshot here; the recording has none left.
                modes[i] = Mode::Diffs;
                switched[i] = true;
                last_u[i] = s.is_synced().then(|| s.last_update_id());
            }
        }
        if modes[i] == Mode::Diffs {
            if let Some(u) = last_u[i] {
                if last_id <= u {
                    stats.skipped_ignored += 1;
                    return;
                }
                if first_id > u.saturating_add(1) {
                    stats.gaps += 1;
                }
            }
            last_u[i] = Some(last_id);
            emit_levels(inst, exch_ts, ts, levels, &mut |e| sink.push(e));
            return;
        }
        if !depth_seen[i] {
            depth_seen[i] = true;
            if ticker_only[i] {
                // The book so far came from tickers: from here on it is the live book,
                // empty until synced.
                let clear = MarketEvent {
                    exch_ts: ts,
                    local_ts: ts,
                    px: 0,
                    qty: 0,
                    inst,
                    kind: EventKind::Clear,
                    flags: MarketEvent::END_OF_BATCH,
                };
                sink.push(clear);
            }
        }
        // `NeedSnapshot` is answered by the recording's next snapshot line, if any.
        let _ = syncs[i].on_depth(first_id, last_id, exch_ts, levels, ts, &mut |e| sink.push(e));
    }

    /// A REST snapshot line attributed to `inst`.
    fn snapshot(&mut self, inst: InstId, msg: &[u8], ts: Ts, path: &Path, line: u64, stats: &mut ImportStats) {
        let i = inst as usize;
        self.last_snapshot[i] = Some(self.seq);
        if self.modes[i] == Mode::Diffs {
            stats.skipped_ignored += 1;
            return;
        }
        match self.parser.parse_snapshot(msg, inst, &mut self.levels) {
            Err(e) => stats.bad(path, line, &RowError::Parse(e), &|| excerpt(msg)),
            Ok(_) if self.levels.iter().any(|l| l.px > MAX_TICKS || l.qty > MAX_TICKS) => {
                let e = if self.levels.iter().any(|l| l.px > MAX_TICKS) {
                    RowError::PriceRange("level price")
                } else {
                    RowError::SizeRange("level size")
                };
                stats.bad(path, line, &e, &|| excerpt(msg));
            }
            Ok(id) => {
                let Session { syncs, levels, sink, .. } = self;
                let _ = syncs[i].on_snapshot(id, levels, ts, &mut |e| sink.push(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Book;
    use crate::feed::record::SnapshotLineError;
    use crate::types::Decimal;
    use std::io::Write;

    /// [`import_into`] a `Vec`.
    fn import(
        paths: &[PathBuf],
        instruments: &[Instrument],
        book: RecordingBook,
        lim: &Limits,
        stats: &mut ImportStats,
    ) -> Result<Vec<MarketEvent>, ImportError> {
        let mut out = Vec::new();
        import_into(paths, instruments, book, lim, stats, &mut out)?;
        Ok(out)
    }

    fn btc() -> Vec<Instrument> {
        vec![Instrument::new("BTCUSDT", "0.01".parse::<Decimal>().unwrap(), "0.00001".parse::<Decimal>().unwrap())]
    }

    fn depth(e: u64, u0: u64, u1: u64, bids: &str, asks: &str) -> String {
        format!(
            r#"{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":{e},"s":"BTCUSDT","U":{u0},"u":{u1},"b":[{bids}],"a":[{asks}]}}}}"#
        )
    }

    fn ticker(u: u64, b: &str, a: &str) -> String {
        format!(
            r#"{{"stream":"btcusdt@bookTicker","data":{{"u":{u},"s":"BTCUSDT","b":"{b}","B":"1.00000000","a":"{a}","A":"2.00000000"}}}}"#
        )
    }

    fn file(lines: &[(Ts, String)]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for (t, l) in lines {
            writeln!(f, "{t} {l}").unwrap();
        }
        f.flush().unwrap();
        f
    }

    fn lines() -> Vec<(Ts, String)> {
        vec![
            (100, ticker(9, "10.00", "10.05")),
            (200, depth(1, 10, 12, r#"["10.01","1"]"#, "")),
            (300, ticker(12, "10.01", "10.05")),
            (400, r#"{"lastUpdateId":11,"bids":[["10.00","3"]],"asks":[["10.05","4"]]}"#.to_string()),
            (500, depth(2, 13, 13, "", r#"["10.04","0.5"]"#)),
            (600, ticker(13, "10.01", "10.04")),
            (700, "garbage".to_string()),
            (800, r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":3,"s":"BTCUSDT","t":1,"p":"10.04","q":"0.1","T":3,"m":false,"M":true}}"#.to_string()),
        ]
    }

    #[test]
    fn recorder_gap_markers_are_counted_not_parsed() {
        assert_eq!(gap_marker(br#"{"statarb_gap":{"dropped":12}}"#), Some(12));
        assert_eq!(gap_marker(br#"{"statarb_gap":{"dropped":x}}"#), None);
        assert_eq!(gap_marker(br#"{"stream":"btcusdt@trade"}"#), None);
        let mut l = lines();
        l.insert(2, (250, r#"{"statarb_gap":{"dropped":7}}"#.to_string()));
        let f = file(&l);
        let mut st = ImportStats::default();
        import(&[f.path().to_path_buf()], &btc(), RecordingBook::Auto, &Limits::any_time(), &mut st).unwrap();
        // The marker is not a bad row: only the "garbage" line is.
        assert_eq!((st.recorder_gaps, st.recorder_dropped, st.skipped_bad_row), (1, 7, 1));
    }

    #[test]
    fn sync_mode_follows_the_live_procedure() {
        let f = file(&lines());
        let mut st = ImportStats::default();
        let evs = import(&[f.path().to_path_buf()], &btc(), RecordingBook::Auto, &Limits::any_time(), &mut st).unwrap();
        use EventKind::*;
        let k: Vec<_> = evs.iter().map(|e| (e.kind, e.px, e.qty, e.local_ts, e.flags)).collect();
        assert_eq!(
            k,
            [
                // Leading ticker: emitted as from a ticker-only feed.
                (BestBid, 1000, 100_000, 100, 0),
                (BestAsk, 1005, 200_000, 100, 1),
                // First depth message: the book is the live one from here, empty.
                (Clear, 0, 0, 200, 1),
                // (ticker at 300 stale: not synced)
                // Snapshot 11 syncs; the buffered diff 10..12 is released at 400, in
                // the same batch as the snapshot (the sync is one batch).
                (Clear, 0, 0, 400, 0),
                (BidLevel, 1000, 300_000, 400, 0),
                (AskLevel, 1005, 400_000, 400, 0),
                (BidLevel, 1001, 100_000, 400, 1),
                (AskLevel, 1004, 50_000, 500, 1),
                (BestBid, 1001, 100_000, 600, 0),
                (BestAsk, 1004, 200_000, 600, 1),
                (TradeBuy, 1004, 10_000, 800, 1),
            ]
        );
        assert_eq!(evs[6].exch_ts, 1_000_000, "a diff keeps its event time");
        assert_eq!((st.rows, st.skipped_stale_ticker, st.skipped_bad_row, st.snapshots), (8, 1, 1, 1));
        assert_eq!(st.bad_rows[0].line, 7);
        assert!(st.diffs_only.is_empty());
        let mut book = Book::default();
        for e in &evs {
            book.apply(e);
        }
        assert_eq!(book.top(), Some((1001, 1004)));
    }

    #[test]
    fn without_a_snapshot_auto_uses_the_diffs() {
        let mut l = lines();
        l.remove(3);
        l.push((900, depth(4, 20, 21, r#"["10.02","1"]"#, "")));
        l.push((950, depth(4, 18, 19, r#"["10.03","1"]"#, "")));
        let f = file(&l);
        let p = [f.path().to_path_buf()];
        let mut st = ImportStats::default();
        let evs = import(&p, &btc(), RecordingBook::Auto, &Limits::any_time(), &mut st).unwrap();
        use EventKind::*;
        let k: Vec<_> = evs.iter().map(|e| (e.kind, e.px)).collect();
        assert_eq!(
            k,
            [
                (BestBid, 1000),
                (BestAsk, 1005),
                (BidLevel, 1001),
                (BestBid, 1001),
                (BestAsk, 1005),
                (AskLevel, 1004),
                (BestBid, 1001),
                (BestAsk, 1004),
                (TradeBuy, 1004),
                (BidLevel, 1002),
            ]
        );
        assert_eq!(st.diffs_only, ["BTCUSDT"]);
        assert_eq!((st.gaps, st.skipped_ignored, st.rows), (1, 1, 9));
        // Forced sync: no book at all, trades still there.
        let mut st = ImportStats::default();
        let evs = import(&p, &btc(), RecordingBook::Sync, &Limits::any_time(), &mut st).unwrap();
        let k: Vec<_> = evs.iter().map(|e| e.kind).collect();
        assert_eq!(k, [BestBid, BestAsk, Clear, TradeBuy]);
        assert_eq!(st.skipped_stale_ticker, 2);
    }

    #[test]
    fn a_gap_after_the_last_snapshot_continues_from_diffs() {
        let mut l = lines();
        l.push((900, depth(4, 20, 21, r#"["10.02","1"]"#, "")));
        l.push((950, ticker(21, "10.02", "10.04")));
        l.push((960, depth(5, 22, 22, "", r#"["10.05","0"]"#)));
        let f = file(&l);
        let p = [f.path().to_path_buf()];
        let (mut auto, mut sync) = (ImportStats::default(), ImportStats::default());
        let a = import(&p, &btc(), RecordingBook::Auto, &Limits::any_time(), &mut auto).unwrap();
        let s = import(&p, &btc(), RecordingBook::Sync, &Limits::any_time(), &mut sync).unwrap();
        // Identical up to the gap (the 11 events of the sync test).
        assert_eq!(a[..11], s[..11]);
        use EventKind::*;
        let tail = |v: &[MarketEvent]| v[11..].iter().map(|e| (e.kind, e.px, e.local_ts)).collect::<Vec<_>>();
        // Sync: the gap clears the book for good.
        assert_eq!(tail(&s), [(Clear, 0, 900)]);
        assert_eq!(sync.skipped_stale_ticker, 2);
        // Auto: the book is kept and follows the diffs and tickers.
        assert_eq!(
            tail(&a),
            [(BidLevel, 1002, 900), (BestBid, 1002, 950), (BestAsk, 1004, 950), (AskLevel, 1005, 960)]
        );
        assert_eq!((auto.gaps, auto.skipped_stale_ticker), (1, 1));
        assert_eq!(auto.diffs_after_gap, ["BTCUSDT"]);
        assert!(auto.diffs_only.is_empty());
        let mut book = Book::default();
        for e in &a {
            book.apply(e);
        }
        assert_eq!(book.top(), Some((1002, 1004)));

        // A gap before a later snapshot is the live procedure's: clear, then resync.
        let mut l = lines();
        l.push((900, depth(4, 20, 21, r#"["10.02","1"]"#, "")));
        l.push((950, r#"{"lastUpdateId":20,"bids":[["10.01","1"]],"asks":[["10.06","1"]]}"#.to_string()));
        let f = file(&l);
        let mut st = ImportStats::default();
        let a = import(&[f.path().to_path_buf()], &btc(), RecordingBook::Auto, &Limits::any_time(), &mut st).unwrap();
        let k: Vec<_> = a[11..].iter().map(|e| (e.kind, e.px, e.local_ts)).collect();
        assert_eq!(
            k,
            [(Clear, 0, 900), (Clear, 0, 950), (BidLevel, 1001, 950), (AskLevel, 1006, 950), (BidLevel, 1002, 950)]
        );
        assert_eq!((st.gaps, st.snapshots), (1, 2));
        assert!(st.diffs_after_gap.is_empty());
    }

    #[test]
    fn symbols_and_snapshot_attribution() {
        assert_eq!(line_symbol(br#"{"stream":"btcusdt@trade","data":{}}"#), Some(&b"btcusdt"[..]));
        assert_eq!(line_symbol(br#"{"e":"trade","E":1,"s":"ETHUSDT","t":1}"#), Some(&b"ETHUSDT"[..]));
        assert_eq!(line_symbol(br#"{"result":null,"id":1}"#), None);
        let l = vec![
            (1, r#"{"lastUpdateId":11,"bids":[],"asks":[]}"#.to_string()),
            (2, r#"{"stream":"ethusdt@trade","data":{"e":"trade","E":3,"s":"ETHUSDT","t":1,"p":"1","q":"1","T":3,"m":false}}"#.to_string()),
            (3, r#"{"lastUpdateId":11,"bids":[],"asks":[]}"#.to_string()),
            (4, r#"{"result":null,"id":1}"#.to_string()),
            (5, "x y".to_string()),
        ];
        let f = file(&l);
        let mut st = ImportStats::default();
        let evs = import(&[f.path().to_path_buf()], &btc(), RecordingBook::Auto, &Limits::any_time(), &mut st).unwrap();
        assert!(evs.is_empty());
        assert_eq!((st.rows, st.skipped_bad_row, st.skipped_other_symbol, st.skipped_ignored), (5, 2, 2, 1));
        assert_eq!(st.bad_rows[0].reason, RowError::SnapshotWithoutSymbol.to_string());
        assert_eq!(st.bad_rows[1].line, 5);
    }

    /// A tagged snapshot line syncs the book it names, with no message of that symbol
    /// before it, and names the symbol for an untagged line after it; malformed tagged
    /// lines are bad rows naming their line, not panics.
    #[test]
    fn tagged_snapshot_lines_sync_the_named_book() {
        let tagged = |id: u64, sym: &str| {
            format!(
                r#"{{"statarb_snapshot":"{sym}","data":{{"lastUpdateId":{id},"bids":[["10.00","3"]],"asks":[["10.05","4"]]}}}}"#
            )
        };
        let mut l = lines();
        // The untagged snapshot at 400 is replaced by a tagged one, ahead of every
        // message of the symbol (so no last symbol could attribute an untagged one).
        l.remove(3);
        l.remove(0);
        l.insert(0, (50, tagged(11, "ETHUSDT")));
        l.insert(1, (60, r#"{"lastUpdateId":11,"bids":[],"asks":[]}"#.to_string()));
        l.insert(2, (150, r#"{"statarb_snapshot":"BTCUSDT","data":{"lastUpdateId":11"#.to_string()));
        l.insert(3, (160, r#"{"statarb_snapshot":"BTC USDT","data":{}}"#.to_string()));
        l.insert(4, (170, r#"{"statarb_snapshot":"BTCUSDT","data":{"lastUpdateId":"x"}}"#.to_string()));
        l.insert(6, (300, tagged(11, "btcusdt")));
        let f = file(&l);
        let mut st = ImportStats::default();
        let evs = import(&[f.path().to_path_buf()], &btc(), RecordingBook::Sync, &Limits::any_time(), &mut st).unwrap();
        use EventKind::*;
        let k: Vec<_> = evs.iter().map(|e| (e.kind, e.px, e.local_ts)).collect();
        assert_eq!(
            k,
            [
                // No ticker before the first diff: no leading Clear. The tagged
                // snapshot syncs; the diff buffered at 200 is released with it.
                (Clear, 0, 300),
                (BidLevel, 1000, 300),
                (AskLevel, 1005, 300),
                (BidLevel, 1001, 300),
                // The ticker at 300 comes after the sync: emitted.
                (BestBid, 1001, 300),
                (BestAsk, 1005, 300),
                (AskLevel, 1004, 500),
                (BestBid, 1001, 600),
                (BestAsk, 1004, 600),
                (TradeBuy, 1004, 800),
            ]
        );
        assert_eq!(st.snapshots, 1);
        // ETHUSDT's tagged snapshot and the untagged one it names: other symbol.
        assert_eq!(st.skipped_other_symbol, 2);
        let bad: Vec<_> = st.bad_rows.iter().map(|b| (b.line, b.reason.clone())).collect();
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert_eq!(bad[0].0, 3);
        assert_eq!(bad[0].1, SnapshotLineError::Data.to_string());
        assert_eq!((bad[1].0, bad[1].1.as_str()), (4, SnapshotLineError::SymbolChars.to_string().as_str()));
        assert_eq!(bad[2].0, 5, "a body the snapshot parser refuses: {}", bad[2].1);
        assert_eq!(bad[3].0, 11, "the garbage line");
    }
}
