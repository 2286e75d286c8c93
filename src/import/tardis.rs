//! Tardis.dev downloadable CSV: `incremental_book_L2`, `quotes` (and `book_ticker`,
//! same columns), `trades`.
//!
//! Format (Tardis, "Downloadable CSV files", <https://docs.tardis.dev/downloadable-csv-files>):
//! comma-separated, LF lines, a header row, `.` decimal mark, times in **microseconds**
//! since the Unix epoch (UTC). Columns, found by name in the header:
//!
//! - `incremental_book_L2`: `exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount`
//! - `quotes`: `exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount`
//! - `trades`: `exchange,symbol,timestamp,local_timestamp,id,side,price,amount`
//!
//! `timestamp` is the exchange's time (Tardis falls back to `local_timestamp` where the
//! exchange sends none, e.g. Binance Spot book tickers) and becomes `exch_ts`;
//! `local_timestamp` is Tardis' receive time and becomes `local_ts`; both times 1000
//! to ns. `exchange` and `id` are not used.
//!
//! # Mapping
//!
//! - Book rows: `side` `bid` -> `BidLevel`, `ask` -> `AskLevel`, `amount` the level's
//!   new total size (0 deletes it), as Binance's diffs and [`crate::book::Book::apply`].
//!   Consecutive rows of one symbol with the same `timestamp` and `local_timestamp` (one
//!   exchange message: Tardis says rows of a message share `local_timestamp`) form one
//!   batch, `END_OF_BATCH` on its last event. A snapshot (consecutive `is_snapshot=true`
//!   rows of a symbol) is one batch whatever its times, and starts with a `Clear`: Tardis
//!   says "if last update was not a snapshot and current one is, then existing order book
//!   state must be discarded", and the live synchroniser
//!   ([`crate::feed::sync::DepthSync`]) also clears before each snapshot, the first one
//!   included. Incremental rows before a symbol's first snapshot are skipped and counted
//!   ([`ImportStats::skipped_before_snapshot`]), as Tardis advises ("skip these rows
//!   until you encounter the first is_snapshot=true row").
//! - Quotes: `BestBid` then `BestAsk` (the live book ticker's order), `END_OF_BATCH` on
//!   the second. A side whose price and amount are both empty (no order on that side)
//!   is left out and the row counted in [`ImportStats::one_sided_quotes`]; a row with
//!   both sides empty is ignored.
//! - Trades: `side` is the aggressor (`buy` -> `TradeBuy`, `sell` -> `TradeSell`), one
//!   event per row with `END_OF_BATCH`. `unknown` (the venue did not say) is skipped and
//!   counted ([`ImportStats::unknown_side`]).

use std::io::Read;
use std::path::Path;

use csv::{ByteRecord, ReaderBuilder};

use super::{
    ev, excerpt, price, qty, read_failed, trade_qty, EventSink, Format, ImportError, ImportStats, Limits, Order,
    RowError, SymbolTable, Times,
};
use crate::event::{EventKind, MarketEvent};
use crate::types::{InstId, Ts};

/// The `incremental_book_L2` header.
pub const BOOK_L2_HEADER: &str = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount";
/// The `quotes` (and `book_ticker`) header.
pub const QUOTES_HEADER: &str = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount";
/// The `trades` header.
pub const TRADES_HEADER: &str = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount";

/// The format whose header is exactly `line`.
pub(crate) fn detect_header(line: &[u8]) -> Option<Format> {
    [
        (BOOK_L2_HEADER, Format::TardisBookL2),
        (QUOTES_HEADER, Format::TardisQuotes),
        (TRADES_HEADER, Format::TardisTrades),
    ]
    .into_iter()
    .find(|(h, _)| super::same_header(line, h))
    .map(|(_, f)| f)
}

/// Microseconds to ns.
#[inline]
fn us(rec: &ByteRecord, i: usize, col: &'static str) -> Result<Ts, RowError> {
    let v = super::parse_int(rec.get(i).unwrap_or_default()).ok_or(RowError::Int(col))?;
    v.checked_mul(1_000).ok_or(RowError::Time(col))
}

/// Column indices, from the header.
#[derive(Debug, Clone, Copy)]
struct Cols {
    symbol: usize,
    ts: usize,
    local: usize,
    /// `is_snapshot` (book) / `ask_amount` (quotes) / `side` (trades).
    a: usize,
    /// `side` (book) / `ask_price` (quotes) / `price` (trades).
    b: usize,
    /// `price` (book) / `bid_price` (quotes) / `amount` (trades).
    c: usize,
    /// `amount` (book) / `bid_amount` (quotes) / unused (trades).
    d: usize,
    /// Columns a row needs.
    need: usize,
}

impl Cols {
    fn from_header(h: &ByteRecord, format: Format) -> Result<Cols, String> {
        let find = |name: &str| {
            h.iter().position(|c| c.trim_ascii() == name.as_bytes()).ok_or_else(|| format!("no `{name}` column"))
        };
        let (a, b, c, d) = match format {
            Format::TardisBookL2 => ("is_snapshot", "side", "price", "amount"),
            Format::TardisQuotes => ("ask_amount", "ask_price", "bid_price", "bid_amount"),
            _ => ("side", "price", "amount", "amount"),
        };
        let mut cols = Cols {
            symbol: find("symbol")?,
            ts: find("timestamp")?,
            local: find("local_timestamp")?,
            a: find(a)?,
            b: find(b)?,
            c: find(c)?,
            d: find(d)?,
            need: 0,
        };
        cols.need =
            1 + [cols.symbol, cols.ts, cols.local, cols.a, cols.b, cols.c, cols.d].into_iter().max().unwrap_or(0);
        Ok(cols)
    }
}

/// What a batch of book rows shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchKey {
    /// One exchange message of incremental rows.
    Diff { inst: InstId, ts: Ts, local: Ts },
    /// The `n`-th snapshot of the file.
    Snapshot { inst: InstId, n: u64 },
}

/// Per-symbol book state.
#[derive(Debug, Clone, Copy, Default)]
struct BookState {
    seen_snapshot: bool,
    last_was_snapshot: bool,
}

/// Imports one Tardis CSV file of `format` into `out`.
pub(crate) fn import<R: Read>(
    input: R,
    path: &Path,
    format: Format,
    table: &SymbolTable<'_>,
    limits: &Limits,
    stats: &mut ImportStats,
    out: &mut impl EventSink,
) -> Result<(), ImportError> {
    let mut rdr = line_records(input);
    let mut times = Times::new(*limits);
    let mut rec = ByteRecord::new();
    let header_err = |reason: String| ImportError::Header { path: path.to_path_buf(), reason };
    match rdr.read_byte_record(&mut rec) {
        Ok(true) => {}
        Ok(false) => return Err(header_err("empty file".into())),
        Err(e) => return Err(csv_err(path, e)),
    }
    let cols = Cols::from_header(&rec, format).map_err(header_err)?;
    let mut book = vec![BookState::default(); table.symbols.len()];
    let mut open: Option<BatchKey> = None;
    let mut snapshots = 0u64;
    let mut order = Order::default();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                read_failed(path, csv_io(path, e)?, stats)?;
                break;
            }
        }
        stats.rows += 1;
        let line = rec.position().map_or(0, |p| p.line());
        let res = match format {
            Format::TardisBookL2 => {
                book_row(&rec, &cols, table, &mut times, &mut book, &mut open, &mut snapshots, stats, out)
            }
            Format::TardisQuotes => quote_row(&rec, &cols, table, &mut times, stats, out),
            _ => trade_row(&rec, &cols, table, &mut times, stats, out),
        };
        match res {
            Ok(Some(local)) => order.see(local, stats),
            Ok(None) => {}
            Err(e) => stats.bad(path, line, &e, &|| row_text(&rec)),
        }
    }
    if open.is_some() {
        close(out);
    }
    Ok(())
}

/// Sets `END_OF_BATCH` on the last event (the open batch's last).
#[inline]
fn close(out: &mut impl EventSink) {
    if let Some(l) = out.last_mut() {
        l.flags |= MarketEvent::END_OF_BATCH;
    }
}

/// The row's instrument, or `None` (counted) for another symbol.
#[inline]
fn inst_of(
    rec: &ByteRecord,
    cols: &Cols,
    table: &SymbolTable<'_>,
    stats: &mut ImportStats,
) -> Result<Option<InstId>, RowError> {
    if rec.len() < cols.need {
        return Err(RowError::Columns { expected: cols.need, found: rec.len() });
    }
    match table.lookup(rec.get(cols.symbol).unwrap_or_default()) {
        Some(i) => Ok(Some(i)),
        None => {
            stats.skipped_other_symbol += 1;
            Ok(None)
        }
    }
}

/// One book row; `Ok(Some(local_ts))` if it was imported.
#[allow(clippy::too_many_arguments)]
#[inline]
fn book_row(
    rec: &ByteRecord,
    cols: &Cols,
    table: &SymbolTable<'_>,
    times: &mut Times,
    book: &mut [BookState],
    open: &mut Option<BatchKey>,
    snapshots: &mut u64,
    stats: &mut ImportStats,
    out: &mut impl EventSink,
) -> Result<Option<Ts>, RowError> {
    let Some(inst) = inst_of(rec, cols, table, stats)? else { return Ok(None) };
    let instrument = table.get(inst);
    let f = |i: usize| rec.get(i).unwrap_or_default();
    let ts = us(rec, cols.ts, "timestamp")?;
    let local = us(rec, cols.local, "local_timestamp")?;
    times.check(ts, local)?;
    let snap = super::parse_bool(f(cols.a)).ok_or(RowError::Bool("is_snapshot"))?;
    let kind = match f(cols.b) {
        b"bid" => EventKind::BidLevel,
        b"ask" => EventKind::AskLevel,
        _ => return Err(RowError::Side("side")),
    };
    let px = price(instrument, f(cols.c), "price")?;
    let q = qty(instrument, f(cols.d), "amount")?;

    let st = &mut book[inst as usize];
    if !snap && !st.seen_snapshot {
        stats.skipped_before_snapshot += 1;
        return Ok(None);
    }
    let starts_snapshot = snap && !st.last_was_snapshot;
    if starts_snapshot {
        *snapshots += 1;
    }
    let key = if snap { BatchKey::Snapshot { inst, n: *snapshots } } else { BatchKey::Diff { inst, ts, local } };
    if *open != Some(key) {
        if open.is_some() {
            close(out);
        }
        *open = Some(key);
    }
    if starts_snapshot {
        stats.snapshots += 1;
        out.push(ev(inst, ts, local, EventKind::Clear, 0, 0, false));
    }
    st.seen_snapshot |= snap;
    st.last_was_snapshot = snap;
    out.push(ev(inst, ts, local, kind, px, q, false));
    Ok(Some(local))
}

/// One quote row.
#[inline]
fn quote_row(
    rec: &ByteRecord,
    cols: &Cols,
    table: &SymbolTable<'_>,
    times: &mut Times,
    stats: &mut ImportStats,
    out: &mut impl EventSink,
) -> Result<Option<Ts>, RowError> {
    let Some(inst) = inst_of(rec, cols, table, stats)? else { return Ok(None) };
    let instrument = table.get(inst);
    let f = |i: usize| rec.get(i).unwrap_or_default();
    let ts = us(rec, cols.ts, "timestamp")?;
    let local = us(rec, cols.local, "local_timestamp")?;
    times.check(ts, local)?;
    let side = |p: &[u8], a: &[u8], pc, ac, both| -> Result<Option<(i64, i64)>, RowError> {
        match (p.is_empty(), a.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => Ok(Some((price(instrument, p, pc)?, qty(instrument, a, ac)?))),
            _ => Err(RowError::HalfQuote(both)),
        }
    };
    let bid = side(f(cols.c), f(cols.d), "bid_price", "bid_amount", "bid_price,bid_amount")?;
    let ask = side(f(cols.b), f(cols.a), "ask_price", "ask_amount", "ask_price,ask_amount")?;
    match (bid, ask) {
        (Some((bp, bq)), Some((ap, aq))) => {
            out.push(ev(inst, ts, local, EventKind::BestBid, bp, bq, false));
            out.push(ev(inst, ts, local, EventKind::BestAsk, ap, aq, true));
        }
        (Some((bp, bq)), None) => {
            stats.one_sided_quotes += 1;
            out.push(ev(inst, ts, local, EventKind::BestBid, bp, bq, true));
        }
        (None, Some((ap, aq))) => {
            stats.one_sided_quotes += 1;
            out.push(ev(inst, ts, local, EventKind::BestAsk, ap, aq, true));
        }
        (None, None) => {
            stats.skipped_ignored += 1;
            return Ok(None);
        }
    }
    Ok(Some(local))
}

/// One trade row.
#[inline]
fn trade_row(
    rec: &ByteRecord,
    cols: &Cols,
    table: &SymbolTable<'_>,
    times: &mut Times,
    stats: &mut ImportStats,
    out: &mut impl EventSink,
) -> Result<Option<Ts>, RowError> {
    let Some(inst) = inst_of(rec, cols, table, stats)? else { return Ok(None) };
    let instrument = table.get(inst);
    let f = |i: usize| rec.get(i).unwrap_or_default();
    let ts = us(rec, cols.ts, "timestamp")?;
    let local = us(rec, cols.local, "local_timestamp")?;
    times.check(ts, local)?;
    let kind = match f(cols.a) {
        b"buy" => Some(EventKind::TradeBuy),
        b"sell" => Some(EventKind::TradeSell),
        b"unknown" => None,
        _ => return Err(RowError::Side("side")),
    };
    let px = price(instrument, f(cols.b), "price")?;
    let q = trade_qty(instrument, f(cols.c), "amount")?;
    let Some(kind) = kind else {
        stats.unknown_side += 1;
        stats.skipped_ignored += 1;
        return Ok(None);
    };
    out.push(ev(inst, ts, local, kind, px, q, true));
    Ok(Some(local))
}

/// The row as text, for a bad-row report.
pub(crate) fn row_text(rec: &ByteRecord) -> String {
    let mut s = Vec::new();
    for (i, f) in rec.iter().enumerate() {
        if i > 0 {
            s.push(b',');
        }
        s.extend_from_slice(f);
        if s.len() > 200 {
            break;
        }
    }
    excerpt(&s)
}

/// A CSV reader that takes one record per line: no header row, no quoting (neither
/// Tardis nor Binance quotes anything), rows of any width. The caller's
/// `CappedRecords` bounds each line, so a line is all the reader ever buffers.
pub(super) fn line_records<R: Read>(input: R) -> csv::Reader<R> {
    ReaderBuilder::new().has_headers(false).flexible(true).quoting(false).buffer_capacity(1 << 16).from_reader(input)
}

/// A CSV error as an I/O error (the only kind a flexible byte reader returns), or an
/// import error.
pub(crate) fn csv_io(path: &Path, e: csv::Error) -> Result<std::io::Error, ImportError> {
    if e.is_io_error() {
        if let csv::ErrorKind::Io(io) = e.into_kind() {
            return Ok(io);
        }
        return Err(ImportError::Header { path: path.to_path_buf(), reason: "unreadable CSV".into() });
    }
    Err(ImportError::Header { path: path.to_path_buf(), reason: format!("CSV: {e}") })
}

/// A CSV error reading the header.
pub(crate) fn csv_err(path: &Path, e: csv::Error) -> ImportError {
    match csv_io(path, e) {
        Ok(io) => super::io_err(path, io),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Decimal, Instrument};

    fn insts() -> Vec<Instrument> {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        vec![Instrument::new("BTCUSDT", d("0.01"), d("0.00001")), Instrument::new("ETHUSDT", d("0.01"), d("0.0001"))]
    }

    fn run(format: Format, text: &str) -> (Vec<MarketEvent>, ImportStats) {
        let insts = insts();
        let table = SymbolTable::new(&insts);
        let mut stats = ImportStats::default();
        let mut out = Vec::new();
        import(text.as_bytes(), Path::new("t.csv"), format, &table, &Limits::any_time(), &mut stats, &mut out).unwrap();
        (out, stats)
    }

    fn kinds(evs: &[MarketEvent]) -> Vec<(EventKind, i64, i64, u8)> {
        evs.iter().map(|e| (e.kind, e.px, e.qty, e.flags)).collect()
    }

    #[test]
    fn book_batches_snapshots_and_clears() {
        let text = format!(
            "{BOOK_L2_HEADER}\n\
             binance,BTCUSDT,1,1,false,bid,1.00,1\n\
             binance,BTCUSDT,5,6,true,bid,1.00,0.5\n\
             binance,BTCUSDT,5,7,true,ask,1.02,0.25\n\
             binance,BTCUSDT,8,9,false,bid,1.01,0.1\n\
             binance,BTCUSDT,8,9,false,ask,1.02,0\n\
             binance,BNBUSDT,8,9,false,ask,500.1,1\n\
             binance,BTCUSDT,8,9,false,ask,1.03,0.2\n\
             binance,BTCUSDT,10,11,true,bid,0.99,1\n"
        );
        let (evs, st) = run(Format::TardisBookL2, &text);
        use EventKind::*;
        assert_eq!(
            kinds(&evs),
            [
                (Clear, 0, 0, 0),
                (BidLevel, 100, 50_000, 0),
                (AskLevel, 102, 25_000, 1),
                (BidLevel, 101, 10_000, 0),
                (AskLevel, 102, 0, 0),
                (AskLevel, 103, 20_000, 1),
                (Clear, 0, 0, 0),
                (BidLevel, 99, 100_000, 1),
            ]
        );
        assert_eq!((evs[0].exch_ts, evs[0].local_ts), (5_000, 6_000));
        assert_eq!((evs[3].exch_ts, evs[3].local_ts), (8_000, 9_000));
        assert_eq!((st.rows, st.skipped_before_snapshot, st.skipped_other_symbol, st.snapshots), (8, 1, 1, 2));
    }

    #[test]
    fn quotes_and_trades() {
        let q = format!(
            "{QUOTES_HEADER}\n\
             binance,ETHUSDT,10,20,2.5,2683.81,2683.80,3.0292\n\
             binance,ETHUSDT,11,21,,,2683.80,3\n\
             binance,ETHUSDT,12,22,,,,\n\
             binance,ETHUSDT,13,23,1,,2683.80,3\n"
        );
        let (evs, st) = run(Format::TardisQuotes, &q);
        use EventKind::*;
        assert_eq!(
            kinds(&evs),
            [(BestBid, 268_380, 30_292, 0), (BestAsk, 268_381, 25_000, 1), (BestBid, 268_380, 30_000, 1)]
        );
        assert_eq!(evs[0].inst, 1);
        assert_eq!((st.one_sided_quotes, st.skipped_ignored, st.skipped_bad_row), (1, 1, 1));
        assert!(st.bad_rows[0].reason.contains("ask_price,ask_amount"), "{:?}", st.bad_rows);

        let t = format!(
            "{TRADES_HEADER}\n\
             binance,BTCUSDT,10,20,1,buy,61837.64,0.02\n\
             binance,BTCUSDT,11,21,2,sell,61837.63,1e-5\n\
             binance,BTCUSDT,12,22,3,unknown,61837.63,1\n\
             binance,BTCUSDT,13,23,4,BUY,61837.63,1\n"
        );
        let (evs, st) = run(Format::TardisTrades, &t);
        assert_eq!(kinds(&evs), [(TradeBuy, 6_183_764, 2_000, 1), (TradeSell, 6_183_763, 1, 1)]);
        assert_eq!((st.unknown_side, st.skipped_ignored, st.skipped_bad_row), (1, 1, 1));
        assert_eq!(st.bad_rows[0].line, 5);
    }

    #[test]
    fn header_is_required_and_mapped_by_name() {
        let insts = insts();
        let table = SymbolTable::new(&insts);
        let mut st = ImportStats::default();
        let mut out = Vec::new();
        let r =
            import(&b""[..], Path::new("e.csv"), Format::TardisTrades, &table, &Limits::any_time(), &mut st, &mut out);
        assert!(matches!(r, Err(ImportError::Header { .. })));
        let r = import(
            &b"a,b\n1,2\n"[..],
            Path::new("e.csv"),
            Format::TardisTrades,
            &table,
            &Limits::any_time(),
            &mut st,
            &mut out,
        );
        assert!(matches!(r, Err(ImportError::Header { reason, .. }) if reason.contains("symbol")));
        // Columns in another order still map.
        let (evs, _) =
            run(Format::TardisTrades, "price,amount,side,symbol,local_timestamp,timestamp\n1.00,1,sell,BTCUSDT,2,1\n");
        assert_eq!(
            (evs[0].px, evs[0].exch_ts, evs[0].local_ts, evs[0].kind),
            (100, 1_000, 2_000, EventKind::TradeSell)
        );
    }

    #[test]
    fn detects_headers() {
        assert_eq!(detect_header(BOOK_L2_HEADER.as_bytes()), Some(Format::TardisBookL2));
        assert_eq!(detect_header(QUOTES_HEADER.as_bytes()), Some(Format::TardisQuotes));
        assert_eq!(detect_header(TRADES_HEADER.as_bytes()), Some(Format::TardisTrades));
        assert_eq!(detect_header(b"exchange,symbol"), None);
    }
}
