//! Binance public data (<https://data.binance.vision>) CSV: spot `trades` and
//! `aggTrades`, and USD-M futures `bookTicker` (futures `trades`/`aggTrades` too: the
//! same columns minus the last).
//!
//! Columns (binance/binance-public-data `README.md`), by position:
//!
//! - `trades`: `trade Id, price, qty, quoteQty, time, isBuyerMaker, isBestMatch`
//!   (futures: no `isBestMatch`)
//! - `aggTrades`: `Aggregate tradeId, Price, Quantity, First tradeId, Last tradeId,
//!   Timestamp, Was the buyer the maker, Was the trade the best price match` (futures:
//!   no last column)
//! - futures `bookTicker`: `update_id, best_bid_price, best_bid_qty, best_ask_price,
//!   best_ask_qty, transaction_time, event_time`
//!
//! Spot files have no header row; futures files have one
//! (`id,price,qty,quote_qty,time,is_buyer_maker`, ...). A first row whose first field is
//! not a number is taken as a header and skipped. Booleans are `True`/`False` (spot) or
//! `true`/`false` (futures).
//!
//! The rows carry no symbol: it comes from the file name
//! ([`symbol_from_name`]: `BTCUSDT-trades-2024-08-09.csv` -> `BTCUSDT`) or from the
//! caller. If it is not among the instruments every row is counted in
//! [`ImportStats::skipped_other_symbol`].
//!
//! # Times
//!
//! Milliseconds since the epoch, except spot files from 2025-01-01 on, which are in
//! microseconds ("The timestamp for SPOT Data from January 1st 2025 onwards will be in
//! microseconds", same README). The unit is told by magnitude, per value: below
//! 10^14 is ms (10^14 ms is the year 5138), below 10^17 is µs (10^14 µs is 1973), else
//! ns. These files hold only exchange times, so `local_ts = exch_ts`:
//!
//! - trades: `exch_ts = local_ts = time` (the trade time);
//! - `bookTicker`: `exch_ts = local_ts = event_time` (the push time; the live parser
//!   also stamps `exch_ts` with the event time `E`). `transaction_time` is not used.
//!
//! # Mapping
//!
//! Trades: one event with `END_OF_BATCH`; `isBuyerMaker = true` means the resting order
//! was the buy, so the aggressor sold: `TradeSell`; `false` is `TradeBuy` (as the live
//! parser maps `m`). `bookTicker`: `BestBid` then `BestAsk` (`END_OF_BATCH`).

use std::io::Read;
use std::path::Path;

use csv::ByteRecord;

use super::tardis::{csv_io, line_records, row_text};
use super::{
    ev, parse_bool, parse_int, price, qty, read_failed, trade_qty, EventSink, Format, ImportError, ImportStats, Limits,
    Order, RowError, SymbolTable, Times,
};
use crate::event::EventKind;
use crate::types::{InstId, Ts};

/// Futures header rows, by format.
const HEADERS: [(&str, Format); 4] = [
    ("id,price,qty,quote_qty,time,is_buyer_maker", Format::BinanceTrades),
    ("id,price,qty,base_qty,time,is_buyer_maker", Format::BinanceTrades),
    ("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker", Format::BinanceAggTrades),
    (
        "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time",
        Format::BinanceFuturesBookTicker,
    ),
];

/// The format whose (futures) header is exactly `line`.
pub(crate) fn detect_header(line: &[u8]) -> Option<Format> {
    HEADERS.iter().find(|(h, _)| super::same_header(line, h)).map(|&(_, f)| f)
}

/// The format named in a Binance file name (`SYMBOL-trades-...`, `SYMBOL-aggTrades-...`,
/// `SYMBOL-bookTicker-...`).
pub(crate) fn detect_name(name: &str) -> Option<Format> {
    [
        ("-trades-", Format::BinanceTrades),
        ("-aggTrades-", Format::BinanceAggTrades),
        ("-bookTicker-", Format::BinanceFuturesBookTicker),
    ]
    .into_iter()
    .find(|(k, _)| name.contains(k))
    .map(|(_, f)| f)
}

/// The format of a headerless row from its shape: 7 fields ending in two booleans is a
/// spot trade, 8 fields ending in two booleans a spot aggregate trade, 6 fields ending
/// in one a futures trade, 7 fields ending in one after an integer a futures aggregate
/// trade.
pub(crate) fn detect_shape(line: &[u8]) -> Option<Format> {
    let f: Vec<&[u8]> = line.split(|&c| c == b',').collect();
    let is_bool = |i: usize| f.get(i).and_then(|s| parse_bool(s)).is_some();
    let is_int = |i: usize| f.get(i).and_then(|s| parse_int(s)).is_some();
    if !is_int(0) {
        return None;
    }
    match f.len() {
        7 if is_bool(5) && is_bool(6) => Some(Format::BinanceTrades),
        8 if is_bool(6) && is_bool(7) => Some(Format::BinanceAggTrades),
        6 if is_bool(5) => Some(Format::BinanceTrades),
        7 if is_int(5) && is_bool(6) => Some(Format::BinanceAggTrades),
        _ => None,
    }
}

/// The symbol a Binance public-data file name starts with: the part before the first
/// `-`, if it is non-empty and alphanumeric (`BTCUSDT-trades-2024-08-09.csv`).
pub fn symbol_from_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let (sym, _) = name.split_once('-')?;
    (!sym.is_empty() && sym.bytes().all(|c| c.is_ascii_alphanumeric())).then(|| sym.to_ascii_uppercase())
}

/// A Binance time stamp (ms, µs or ns by magnitude, see the module docs) in ns.
#[inline]
pub fn time_ns(v: i64) -> Option<Ts> {
    if v < 100_000_000_000_000 {
        v.checked_mul(1_000_000)
    } else if v < 100_000_000_000_000_000 {
        v.checked_mul(1_000)
    } else {
        Some(v)
    }
}

#[inline]
fn time_at(rec: &ByteRecord, i: usize, col: &'static str) -> Result<Ts, RowError> {
    let v = parse_int(rec.get(i).unwrap_or_default()).ok_or(RowError::Int(col))?;
    time_ns(v).ok_or(RowError::Time(col))
}

/// Imports one Binance public-data file of `format` whose symbol is `inst` (`None`: not
/// among the instruments) into `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn import<R: Read>(
    input: R,
    path: &Path,
    format: Format,
    inst: Option<InstId>,
    table: &SymbolTable<'_>,
    limits: &Limits,
    stats: &mut ImportStats,
    out: &mut impl EventSink,
) -> Result<(), ImportError> {
    let mut rdr = line_records(input);
    let mut times = Times::new(*limits);
    let mut rec = ByteRecord::new();
    let mut first = true;
    let mut order = Order::default();
    let need = match format {
        Format::BinanceTrades => 6,
        _ => 7,
    };
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                read_failed(path, csv_io(path, e)?, stats)?;
                break;
            }
        }
        if std::mem::take(&mut first) && parse_int(rec.get(0).unwrap_or_default().trim_ascii()).is_none() {
            continue; // header row
        }
        stats.rows += 1;
        let Some(inst) = inst else {
            stats.skipped_other_symbol += 1;
            continue;
        };
        let line = rec.position().map_or(0, |p| p.line());
        match row(&rec, format, need, inst, table, &mut times, out) {
            Ok(local) => order.see(local, stats),
            Err(e) => stats.bad(path, line, &e, &|| row_text(&rec)),
        }
    }
    Ok(())
}

/// One row; returns its local time.
#[inline]
fn row(
    rec: &ByteRecord,
    format: Format,
    need: usize,
    inst: InstId,
    table: &SymbolTable<'_>,
    times: &mut Times,
    out: &mut impl EventSink,
) -> Result<Ts, RowError> {
    if rec.len() < need {
        return Err(RowError::Columns { expected: need, found: rec.len() });
    }
    let instrument = table.get(inst);
    let f = |i: usize| rec.get(i).unwrap_or_default();
    match format {
        Format::BinanceFuturesBookTicker => {
            let bid = price(instrument, f(1), "best_bid_price")?;
            let bid_q = qty(instrument, f(2), "best_bid_qty")?;
            let ask = price(instrument, f(3), "best_ask_price")?;
            let ask_q = qty(instrument, f(4), "best_ask_qty")?;
            let t = time_at(rec, 6, "event_time")?;
            times.check(t, t)?;
            out.push(ev(inst, t, t, EventKind::BestBid, bid, bid_q, false));
            out.push(ev(inst, t, t, EventKind::BestAsk, ask, ask_q, true));
            Ok(t)
        }
        _ => {
            let (t_col, m_col) = if format == Format::BinanceTrades { (4, 5) } else { (5, 6) };
            let px = price(instrument, f(1), "price")?;
            let q = trade_qty(instrument, f(2), "qty")?;
            let t = time_at(rec, t_col, "time")?;
            times.check(t, t)?;
            let buyer_is_maker = parse_bool(f(m_col)).ok_or(RowError::Bool("is_buyer_maker"))?;
            let kind = if buyer_is_maker { EventKind::TradeSell } else { EventKind::TradeBuy };
            out.push(ev(inst, t, t, kind, px, q, true));
            Ok(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MarketEvent;
    use crate::types::{Decimal, Instrument, NS_PER_MS};

    fn run(format: Format, text: &str, sym: &str) -> (Vec<MarketEvent>, ImportStats) {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let insts = vec![Instrument::new("BTCUSDT", d("0.01"), d("0.00001"))];
        let table = SymbolTable::new(&insts);
        let mut stats = ImportStats::default();
        let mut out = Vec::new();
        let inst = table.lookup(sym.as_bytes());
        import(text.as_bytes(), Path::new("x.csv"), format, inst, &table, &Limits::any_time(), &mut stats, &mut out)
            .unwrap();
        (out, stats)
    }

    #[test]
    fn time_units_by_magnitude() {
        assert_eq!(time_ns(1_723_161_255_342), Some(1_723_161_255_342 * NS_PER_MS));
        assert_eq!(time_ns(1_735_689_600_010_866), Some(1_735_689_600_010_866_000));
        assert_eq!(time_ns(1_735_689_600_010_866_123), Some(1_735_689_600_010_866_123));
        assert_eq!(time_ns(0), Some(0));
    }

    #[test]
    fn names_and_shapes() {
        assert_eq!(symbol_from_name(Path::new("/d/BTCUSDT-trades-2024-08-09.csv")), Some("BTCUSDT".into()));
        assert_eq!(symbol_from_name(Path::new("ethusdt-aggTrades-2024-08.csv.gz")), Some("ETHUSDT".into()));
        assert_eq!(symbol_from_name(Path::new("trades.csv")), None);
        assert_eq!(symbol_from_name(Path::new("my_file-x.csv")), None);
        assert_eq!(detect_name("BTCUSDT-bookTicker-2024-04-01.csv"), Some(Format::BinanceFuturesBookTicker));
        assert_eq!(detect_name("BTCUSDT-aggTrades-2024-04-01.csv"), Some(Format::BinanceAggTrades));
        assert_eq!(
            detect_shape(b"3735683259,61837.63,0.02,1236.7526,1723161255342,True,True"),
            Some(Format::BinanceTrades)
        );
        assert_eq!(detect_shape(b"0,0.2,50.0,0,0,1735689600010866,False,True"), Some(Format::BinanceAggTrades));
        assert_eq!(detect_shape(b"28457,4.00000100,12.00000000,48.00,1499865549590,true"), Some(Format::BinanceTrades));
        assert_eq!(
            detect_shape(b"26129,0.01633102,4.70443515,27781,27781,1498793709153,true"),
            Some(Format::BinanceAggTrades)
        );
        assert_eq!(detect_shape(b"a,b,c"), None);
        assert_eq!(detect_header(HEADERS[3].0.as_bytes()), Some(Format::BinanceFuturesBookTicker));
    }

    #[test]
    fn rows_map_and_bad_rows_count() {
        let text = "1,61837.63,0.02000000,1236.7526,1723161255342,True,True\n\
                    2,61837.64,0.00100000,61.83764,1723161255400,False,True\n\
                    3,61837.645,0.001,61.8,1723161255401,False,True\n\
                    4,61837.64,0.001,61.8,1723161255402,maybe,True\n\
                    5,61837.64\n";
        let (evs, st) = run(Format::BinanceTrades, text, "BTCUSDT");
        let k: Vec<_> = evs.iter().map(|e| (e.kind, e.px, e.qty, e.exch_ts, e.local_ts, e.flags)).collect();
        assert_eq!(
            k,
            [
                (EventKind::TradeSell, 6_183_763, 2_000, 1_723_161_255_342_000_000, 1_723_161_255_342_000_000, 1),
                (EventKind::TradeBuy, 6_183_764, 100, 1_723_161_255_400_000_000, 1_723_161_255_400_000_000, 1),
            ]
        );
        assert_eq!((st.rows, st.skipped_bad_row), (5, 3));
        let lines: Vec<_> = st.bad_rows.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4, 5]);
        // Another symbol: every row is counted, none imported.
        let (evs, st) = run(Format::BinanceTrades, text, "ETHUSDT");
        assert!(evs.is_empty());
        assert_eq!((st.rows, st.skipped_other_symbol), (5, 5));
    }

    #[test]
    fn futures_header_is_skipped() {
        let text = "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n\
                    9001,61837.63,3.78826,61837.64,1.54698,1723161255342,1723161255345\n";
        let (evs, st) = run(Format::BinanceFuturesBookTicker, text, "BTCUSDT");
        assert_eq!(st.rows, 1);
        let k: Vec<_> = evs.iter().map(|e| (e.kind, e.px, e.qty, e.exch_ts, e.flags)).collect();
        let t = 1_723_161_255_345 * NS_PER_MS;
        assert_eq!(k, [(EventKind::BestBid, 6_183_763, 378_826, t, 0), (EventKind::BestAsk, 6_183_764, 154_698, t, 1)]);
    }
}
