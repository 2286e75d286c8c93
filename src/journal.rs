//! The position journal: a write-ahead log of our orders and fills, so that a restarted
//! engine knows its positions before it quotes again.
//!
//! A session's positions live in the core's portfolio, in memory; `kill -9`, a panic or
//! a power cut takes them. The venue keeps only balances, and a balance is the sum of
//! what the account held before the strategy ever ran and of what the strategy traded.
//! The journal keeps both halves:
//!
//! - an `open` record, once, with the balances of each leg's base asset when the journal
//!   was created: the baseline the strategy's position is counted from;
//! - a `session` record at every start;
//! - an `order` record for every new order, written *before* the order goes to the
//!   venue (write-ahead): whatever happened after it, the restarted engine knows the id
//!   to ask the venue about;
//! - a `fill` record for every fill the venue reports, and a `done` record when an
//!   order ends (filled, cancelled, rejected, expired);
//! - a `recovered` record for a fill found at restart that no report carried (the
//!   engine died after the venue filled the order, or before the report was written).
//!
//! Records are JSON lines (`{"t":"fill",...}`), one `write(2)` per batch of reports, so
//! a record is in the kernel's page cache, and survives the process, as soon as the
//! venue call that produced it returns; `fsync = true` adds an `fdatasync` per batch
//! with a fill, for power loss. A crash can tear only the last line; [`Journal::open`]
//! drops a torn last line (counted) and cuts the file back to the last whole record.
//!
//! At restart ([`Journal::open`] then [`JournalState::recover`]): the fills are replayed
//! through a [`Portfolio`], so average cost and realized PnL come back exactly; every
//! order the journal does not know to be over is asked of the venue, and executed size
//! the journal has no fill for becomes a `recovered` fill (at the order's average
//! price, fee from the configured schedule, marked estimated); then [`reconcile`]
//! checks each leg's position, less the base-asset fees, against the venue's balance
//! change since the baseline. A mismatch is not quoted on.
//!
//! Bad input: a line that is not a record, other than a torn last one, is an error
//! naming the file and line; so are records of other instruments than the config's legs
//! and a line over [`MAX_LINE_BYTES`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::{reject_msg, ExecKind, ExecReport, MarketEvent, OrderCmd, OrderId};
use crate::gateway::{Balance, Exchange, OpenOrder, VenueError, VenueOrder};
use crate::lines::{BoundedLines, Line};
use crate::portfolio::{Portfolio, Position};
use crate::types::{Decimal, InstId, Instrument, Px, Qty, Side, Ts};

/// Longest journal line: a record is under 300 bytes.
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// The code of a local reject when the journal cannot be written: the order is not sent,
/// since a fill of it could not be recorded.
pub const REJECT_JOURNAL: i32 = -9001;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// The journal's first record: the legs and their base assets' balances.
    Open {
        /// Wall time, ns since the Unix epoch.
        ts_ns: u64,
        /// Each leg's symbol, in leg order.
        symbols: Vec<String>,
        /// Each leg's base asset, in leg order.
        assets: Vec<String>,
        /// Each base asset's total balance (free + locked) when the journal was created,
        /// as the venue's decimal text.
        baseline: Vec<String>,
    },
    /// A start of the engine.
    Session {
        /// The session id (the high half of its order ids).
        id: u32,
        /// Wall time, ns since the Unix epoch.
        ts_ns: u64,
    },
    /// A new order, before it was sent.
    Order {
        /// Client order id.
        id: OrderId,
        /// Leg.
        leg: InstId,
        /// Side.
        side: Side,
        /// Limit price, ticks.
        px: Px,
        /// Size, lots.
        qty: Qty,
    },
    /// A fill reported by the venue.
    Fill(FillRecord),
    /// A fill found at restart that no report carried; its fee is estimated.
    Recovered(FillRecord),
    /// The order is over: nothing of it can fill any more.
    Done {
        /// Client order id.
        id: OrderId,
    },
}

/// A fill, as journalled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillRecord {
    /// Client order id.
    pub id: OrderId,
    /// Leg.
    pub leg: InstId,
    /// Side.
    pub side: Side,
    /// Price, ticks.
    pub px: Px,
    /// Size, lots.
    pub qty: Qty,
    /// Fee in the quote asset (see [`ExecReport::fee`]).
    pub fee: f64,
    /// The part of the fee taken in the base asset, base units.
    pub fee_base: f64,
    /// True if the fill added liquidity.
    pub maker: bool,
}

impl FillRecord {
    /// The fill in `rep`.
    fn of(rep: &ExecReport) -> Self {
        FillRecord {
            id: rep.id,
            leg: rep.inst,
            side: rep.side,
            px: rep.px,
            qty: rep.qty,
            fee: rep.fee,
            fee_base: rep.fee_base,
            maker: rep.maker,
        }
    }

    /// The fill as the report the portfolio takes.
    fn report(&self) -> ExecReport {
        ExecReport {
            id: self.id,
            inst: self.leg,
            side: self.side,
            kind: ExecKind::PartialFill,
            px: self.px,
            qty: self.qty,
            leaves: 0,
            fee: self.fee,
            fee_base: self.fee_base,
            maker: self.maker,
            code: 0,
            msg: Default::default(),
            exch_ts: 0,
        }
    }
}

/// Why the journal could not be read, written or reconciled.
#[derive(Debug, Error)]
pub enum JournalError {
    /// Opening, reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The journal.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A line that is not a journal record.
    #[error("{path}:{line}: not a journal record: {source}")]
    Bad {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A line longer than [`MAX_LINE_BYTES`].
    #[error("{path}:{line}: longer than {MAX_LINE_BYTES} bytes")]
    TooLong {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: u64,
    },
    /// A well-formed record out of place (no `open` first, a second `open`, a leg
    /// outside the legs).
    #[error("{path}:{line}: {what}")]
    Invalid {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// The journal is of other instruments than the configuration's legs.
    #[error("{path}: the journal is of {journal:?}, the configuration trades {config:?}; use a journal per pair")]
    Legs {
        /// The journal.
        path: PathBuf,
        /// The journal's symbols.
        journal: Vec<String>,
        /// The configuration's symbols.
        config: Vec<String>,
    },
    /// The venue's balance of an asset is missing or not a number.
    #[error("the venue has no readable balance of {asset}")]
    Balance {
        /// The asset.
        asset: String,
    },
    /// Asking the venue about an order failed.
    #[error("querying order {id} at the venue: {source}")]
    Query {
        /// Client order id.
        id: OrderId,
        /// The venue's answer.
        #[source]
        source: VenueError,
    },
}

/// An order the journal does not know to be over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingOrder {
    /// Client order id.
    pub id: OrderId,
    /// Leg.
    pub leg: InstId,
    /// Side.
    pub side: Side,
    /// Limit price, ticks.
    pub px: Px,
    /// Size, lots.
    pub qty: Qty,
    /// Size journalled as filled, lots.
    pub filled: Qty,
    /// Notional journalled as filled, ticks times lots.
    pub filled_ticks: i128,
}

/// The journal as read at start.
#[derive(Debug, Clone)]
pub struct JournalState {
    /// Each leg's base asset.
    pub assets: Vec<String>,
    /// Each base asset's baseline balance.
    pub baseline: Vec<Decimal>,
    /// Every fill, reported and recovered, in journal order.
    pub fills: Vec<FillRecord>,
    /// How many of `fills` were recovered.
    pub recovered: u64,
    /// Orders not known to be over, by id.
    pub pending: BTreeMap<OrderId, PendingOrder>,
    /// Sessions before this one.
    pub sessions: u64,
    /// True if a torn last line was dropped.
    pub torn_tail: bool,
    /// True if the journal was created by this start.
    pub created: bool,
}

impl JournalState {
    fn apply(&mut self, rec: &Record) -> Result<(), &'static str> {
        let legs = self.assets.len();
        match *rec {
            Record::Open { .. } => return Err("a second `open` record"),
            Record::Session { .. } => self.sessions += 1,
            Record::Order { id, leg, side, px, qty } => {
                if leg as usize >= legs {
                    return Err("an order of a leg the journal does not have");
                }
                if !(in_range(px) && in_range(qty)) {
                    return Err("an order with a price or size outside (0, 2^53]");
                }
                self.pending.insert(id, PendingOrder { id, leg, side, px, qty, filled: 0, filled_ticks: 0 });
            }
            Record::Fill(f) | Record::Recovered(f) => {
                if f.leg as usize >= legs {
                    return Err("a fill of a leg the journal does not have");
                }
                if !(in_range(f.px) && in_range(f.qty) && f.fee.is_finite() && f.fee_base.is_finite()) {
                    return Err("a fill with a price or size outside (0, 2^53] or a fee that is not a number");
                }
                if let Some(p) = self.pending.get_mut(&f.id) {
                    p.filled += f.qty;
                    p.filled_ticks += f.px as i128 * f.qty as i128;
                }
                self.recovered += matches!(rec, Record::Recovered(_)) as u64;
                self.fills.push(f);
            }
            Record::Done { id } => {
                self.pending.remove(&id);
            }
        }
        Ok(())
    }

    /// The positions the fills add up to, by replaying them through a portfolio.
    pub fn positions(&self, instruments: [Instrument; 2]) -> [Position; 2] {
        let mut p = Portfolio::new(instruments);
        for f in &self.fills {
            p.on_fill(f.leg as usize, &f.report());
        }
        [*p.position(0), *p.position(1)]
    }
}

/// Largest price or size a journal record may carry, ticks or lots: the readers' bound
/// (2^53, exact in an `f64`), so that sums of a hostile journal cannot overflow.
const MAX_UNITS: i64 = 1 << 53;

/// True for a price or size in `(0, MAX_UNITS]`.
fn in_range(v: i64) -> bool {
    v > 0 && v <= MAX_UNITS
}

/// The journal file, open for appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    fsync: bool,
    line: Vec<u8>,
    /// Bytes of a batch not yet written.
    batch: Vec<u8>,
    batch_has_fill: bool,
    failed: Option<io::ErrorKind>,
    stats: JournalStats,
}

/// Journal counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JournalStats {
    /// Records written.
    pub records: u64,
    /// Writes (one per batch).
    pub writes: u64,
    /// Failed writes.
    pub write_errors: u64,
    /// Orders refused locally because the journal could not be written.
    pub refused: u64,
}

impl Journal {
    /// Opens the journal at `path`, creating it with `baseline` (called only if the file
    /// is new: the venue's balances now) and the legs, or reading it and checking that
    /// it is of `instruments`; appends a `session` record. `assets` are the legs' base
    /// assets.
    pub fn open(
        path: &Path,
        instruments: &[Instrument; 2],
        assets: [&str; 2],
        baseline: impl FnOnce() -> Result<Vec<Balance>, VenueError>,
        session_id: u32,
        fsync: bool,
        now_ns: u64,
    ) -> Result<(Journal, JournalState), OpenError> {
        let io_err = |source| JournalError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let symbols: Vec<String> = instruments.iter().map(|i| i.symbol.clone()).collect();
        let mut journal = Journal {
            file: file.try_clone().map_err(io_err)?,
            path: path.to_path_buf(),
            fsync,
            line: Vec::with_capacity(512),
            batch: Vec::with_capacity(64 << 10),
            batch_has_fill: false,
            failed: None,
            stats: JournalStats::default(),
        };
        let state = if len == 0 {
            let bals = baseline().map_err(OpenError::Baseline)?;
            let mut total = Vec::with_capacity(2);
            for a in assets {
                total.push(total_balance(&bals, a).ok_or_else(|| JournalError::Balance { asset: a.to_string() })?);
            }
            let open = Record::Open {
                ts_ns: now_ns,
                symbols,
                assets: assets.iter().map(|a| a.to_string()).collect(),
                baseline: total.iter().map(|d| d.to_string()).collect(),
            };
            journal.append(&open);
            JournalState {
                assets: assets.iter().map(|a| a.to_string()).collect(),
                baseline: total,
                fills: Vec::new(),
                recovered: 0,
                pending: BTreeMap::new(),
                sessions: 0,
                torn_tail: false,
                created: true,
            }
        } else {
            let (state, good) = read(path, &mut file, &symbols)?;
            if good < len {
                // A torn last record: cut it off so that the next record starts a line.
                file.set_len(good).map_err(io_err)?;
            } else if good > len {
                // A whole last record torn before its newline.
                journal.batch.push(b'\n');
            }
            state
        };
        journal.append(&Record::Session { id: session_id, ts_ns: now_ns });
        journal.commit().map_err(io_err)?;
        Ok((journal, state))
    }

    /// Adds `rec` to the batch.
    fn append(&mut self, rec: &Record) {
        self.line.clear();
        // Serialising these plain records cannot fail.
        if serde_json::to_writer(&mut self.line, rec).is_ok() {
            self.line.push(b'\n');
            self.batch.extend_from_slice(&self.line);
            self.stats.records += 1;
            self.batch_has_fill |= matches!(rec, Record::Fill(_) | Record::Recovered(_));
        }
    }

    /// Writes the batch (and with `fsync`, syncs it if it holds a fill).
    fn commit(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let res = self.file.write_all(&self.batch).and_then(|()| {
            if self.fsync && self.batch_has_fill {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        self.batch.clear();
        self.batch_has_fill = false;
        self.stats.writes += 1;
        if let Err(e) = &res {
            self.stats.write_errors += 1;
            self.failed.get_or_insert(e.kind());
        }
        res
    }

    /// Adds the records of `reports` (fills, and `done` for the orders they end).
    fn reports(&mut self, reports: &[ExecReport]) {
        for r in reports {
            if r.qty > 0 && matches!(r.kind, ExecKind::Fill | ExecKind::PartialFill) {
                self.append(&Record::Fill(FillRecord::of(r)));
            }
            let over = match r.kind {
                ExecKind::Fill | ExecKind::Canceled | ExecKind::Rejected | ExecKind::Expired => true,
                ExecKind::PartialFill => r.leaves == 0,
                ExecKind::New => false,
            };
            if over {
                self.append(&Record::Done { id: r.id });
            }
        }
    }

    /// Asks the venue (through `query`) about every pending order, journals the fills it
    /// executed that the journal has no record of, and the orders that are over. `fees`
    /// gives the estimated fee rate in basis points (maker, taker); `base_fee_on_buys`
    /// says the venue takes a buyer's commission in the base asset (Binance).
    pub fn recover<E>(
        &mut self,
        state: &mut JournalState,
        instruments: &[Instrument; 2],
        fee_bps: (f64, f64),
        base_fee_on_buys: bool,
        mut query: impl FnMut(&PendingOrder) -> Result<Option<VenueOrder>, E>,
    ) -> Result<u64, E> {
        let mut found = 0;
        let pending: Vec<PendingOrder> = state.pending.values().copied().collect();
        for p in pending {
            let Some(v) = query(&p)? else {
                // The venue never had it (lost before it was sent, or rejected).
                self.append(&Record::Done { id: p.id });
                state.pending.remove(&p.id);
                continue;
            };
            let missing = v.executed - p.filled;
            // A venue answer beyond the journal's bounds would make the journal unreadable.
            if in_range(missing) {
                let inst = &instruments[p.leg as usize];
                let filled_quote = inst.px_f64(1) * inst.qty_f64(1) * p.filled_ticks as f64;
                let quote = (v.executed_quote - filled_quote).max(0.0);
                let units = inst.qty_f64(missing);
                let avg = if quote > 0.0 { (quote / units / inst.px_f64(1)).round() as Px } else { p.px };
                let px = if in_range(avg) { avg } else { p.px };
                let bps = if v.maker { fee_bps.0 } else { fee_bps.1 };
                let notional = inst.px_f64(px) * units;
                let fee = notional * bps / 1e4;
                let fee_base = if base_fee_on_buys && p.side == Side::Buy { units * bps / 1e4 } else { 0.0 };
                let f =
                    FillRecord { id: p.id, leg: p.leg, side: p.side, px, qty: missing, fee, fee_base, maker: v.maker };
                let rec = Record::Recovered(f);
                self.append(&rec);
                let _ = state.apply(&rec);
                found += 1;
            }
            if v.done {
                self.append(&Record::Done { id: p.id });
                state.pending.remove(&p.id);
            }
        }
        // The recovered fills are as durable as reported ones.
        let _ = self.commit();
        Ok(found)
    }

    /// Counters.
    pub fn stats(&self) -> JournalStats {
        self.stats
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why [`Journal::open`] failed.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The journal itself.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A new journal needs the venue's balances, and the venue did not give them.
    #[error("reading the baseline balances for a new journal: {0}")]
    Baseline(#[source] VenueError),
}

/// Reads the journal; returns the state and the length of its whole records.
fn read(path: &Path, file: &mut File, symbols: &[String]) -> Result<(JournalState, u64), JournalError> {
    let io_err = |source| JournalError::Io { path: path.to_path_buf(), source };
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut lines = BoundedLines::new(BufReader::new(&mut *file), MAX_LINE_BYTES);
    let mut state: Option<JournalState> = None;
    let mut good: u64 = 0;
    let mut pending_err: Option<JournalError> = None;
    loop {
        let n = lines.line() + 1;
        let line = match lines.next_line().map_err(io_err)? {
            None => break,
            Some(Line::TooLong { .. }) => return Err(JournalError::TooLong { path: path.into(), line: n }),
            Some(Line::Text(t)) => t,
        };
        // Only the last line may be torn: an error stands once another line follows.
        if let Some(e) = pending_err.take() {
            return Err(e);
        }
        let len = line.len() as u64 + 1;
        let rec: Record = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(source) => {
                pending_err = Some(JournalError::Bad { path: path.into(), line: n, source });
                continue;
            }
        };
        let invalid = |what| JournalError::Invalid { path: path.into(), line: n, what };
        match (&mut state, rec) {
            (None, Record::Open { symbols: js, assets, baseline, .. }) => {
                if js != symbols {
                    return Err(JournalError::Legs { path: path.into(), journal: js, config: symbols.to_vec() });
                }
                if assets.len() != 2 || baseline.len() != 2 {
                    return Err(invalid("an `open` record needs two assets and two baselines"));
                }
                let mut b = Vec::with_capacity(2);
                for s in &baseline {
                    b.push(s.parse::<Decimal>().map_err(|_| invalid("a baseline that is not a decimal"))?);
                }
                state = Some(JournalState {
                    assets,
                    baseline: b,
                    fills: Vec::new(),
                    recovered: 0,
                    pending: BTreeMap::new(),
                    sessions: 0,
                    torn_tail: false,
                    created: false,
                });
            }
            (None, _) => return Err(invalid("the first record is not `open`")),
            (Some(st), rec) => st.apply(&rec).map_err(invalid)?,
        }
        good += len;
    }
    let torn = pending_err.is_some();
    let mut state = state.ok_or(JournalError::Invalid { path: path.into(), line: 1, what: "no `open` record" })?;
    state.torn_tail = torn;
    Ok((state, good))
}

/// The total (free + locked) balance of `asset`, if the venue lists it (a venue that
/// omits zero balances omits it when it is 0: that is 0).
fn total_balance(bals: &[Balance], asset: &str) -> Option<Decimal> {
    match bals.iter().find(|b| b.asset == asset) {
        Some(b) => b.free.checked_add(b.locked),
        None => Some(Decimal::ZERO),
    }
}

/// One leg's reconciliation: the journal's position against the venue.
#[derive(Debug, Clone, PartialEq)]
pub struct LegCheck {
    /// The leg's symbol.
    pub symbol: String,
    /// The base asset.
    pub asset: String,
    /// The journal's position less its base-asset fees, base units.
    pub expected: f64,
    /// The venue's balance now less the baseline, base units.
    pub actual: f64,
    /// True if they agree within half a lot.
    pub ok: bool,
}

/// Checks each leg's position from the journal (less the fees the venue took in the
/// base asset) against the venue's balance change since the journal's baseline.
pub fn reconcile(
    state: &JournalState,
    positions: &[Position; 2],
    instruments: &[Instrument; 2],
    now: &[Balance],
) -> Result<[LegCheck; 2], JournalError> {
    let check = |l: usize| -> Result<LegCheck, JournalError> {
        let asset = &state.assets[l];
        let bal = total_balance(now, asset).ok_or_else(|| JournalError::Balance { asset: asset.clone() })?;
        let inst = &instruments[l];
        let expected = inst.qty_f64(positions[l].qty) - positions[l].fees_base;
        let actual = bal.to_f64() - state.baseline[l].to_f64();
        Ok(LegCheck {
            symbol: inst.symbol.clone(),
            asset: asset.clone(),
            expected,
            actual,
            ok: (expected - actual).abs() <= inst.lot_f64() / 2.0,
        })
    };
    Ok([check(0)?, check(1)?])
}

/// A venue whose orders and fills go through the journal: new orders are journalled
/// before they are sent, and reports as they come back. If the journal cannot be
/// written, new orders are refused locally with [`REJECT_JOURNAL`] (cancels still go
/// out): a fill that cannot be recorded is a position that a crash would lose.
#[derive(Debug)]
pub struct Journaled<E> {
    inner: E,
    journal: Journal,
}

impl<E> Journaled<E> {
    /// `inner` with `journal`.
    pub fn new(inner: E, journal: Journal) -> Self {
        Journaled { inner, journal }
    }

    /// The venue.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The venue, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }

    /// The journal's counters.
    pub fn stats(&self) -> JournalStats {
        self.journal.stats()
    }

    /// The venue and the journal.
    pub fn into_parts(self) -> (E, Journal) {
        (self.inner, self.journal)
    }

    /// Journals the reports `inner` appended past `from`.
    #[inline]
    fn after(&mut self, out: &[ExecReport], from: usize) {
        if out.len() > from {
            self.journal.reports(&out[from..]);
            let _ = self.journal.commit();
        }
    }
}

impl<E: Exchange> Exchange for Journaled<E> {
    fn needs_market(&self) -> bool {
        self.inner.needs_market()
    }

    fn supports_replace(&self) -> bool {
        self.inner.supports_replace()
    }

    /// A new order, or the new half of a replace, is journaled before it is sent; if
    /// the journal cannot be written it is refused (the old order of a replace is
    /// then still cancelled).
    fn on_order(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>) {
        if let OrderCmd::New(o) | OrderCmd::Replace { new: o, .. } = cmd {
            if self.journal.failed.is_none() {
                self.journal.append(&Record::Order { id: o.id, leg: o.inst, side: o.side, px: o.px, qty: o.qty });
                let _ = self.journal.commit();
            }
            if self.journal.failed.is_some() {
                self.journal.stats.refused += 1;
                let msg = reject_msg("the position journal cannot be written");
                out.push(ExecReport::rejected(o.id, o.inst, o.side, o.px, REJECT_JOURNAL, msg, now));
                if let OrderCmd::Replace { old, new } = *cmd {
                    // The Core counts the old order as cancelled: cancel it still.
                    let from = out.len();
                    self.inner.on_order(&OrderCmd::Cancel { id: old, inst: new.inst }, now, out);
                    self.after(out, from);
                }
                return;
            }
        }
        let from = out.len();
        self.inner.on_order(cmd, now, out);
        self.after(out, from);
    }

    fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<ExecReport>) {
        let from = out.len();
        self.inner.on_market(ev, out);
        self.after(out, from);
    }

    fn poll(&mut self, now: Ts, out: &mut Vec<ExecReport>) {
        let from = out.len();
        self.inner.poll(now, out);
        self.after(out, from);
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    fn open_orders(&mut self) -> Result<Vec<OpenOrder>, VenueError> {
        self.inner.open_orders()
    }

    fn balances(&mut self) -> Result<Vec<Balance>, VenueError> {
        self.inner.balances()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{NewOrder, Tif};

    fn instruments() -> [Instrument; 2] {
        let c = crate::config::Config::builtin();
        [c.y.instrument(), c.x.instrument()]
    }

    fn bal(asset: &str, free: &str) -> Balance {
        Balance { asset: asset.into(), free: free.parse().unwrap(), locked: Decimal::ZERO }
    }

    /// A venue that fills every new order at once, in full.
    struct Filler;
    impl Exchange for Filler {
        fn needs_market(&self) -> bool {
            false
        }
        fn on_order(&mut self, cmd: &OrderCmd, now: Ts, out: &mut Vec<ExecReport>) {
            if let OrderCmd::New(o) = cmd {
                let mut r = ExecReport::rejected(o.id, o.inst, o.side, o.px, 0, Default::default(), now);
                r.kind = ExecKind::Fill;
                r.qty = o.qty;
                r.leaves = 0;
                r.fee = 0.25;
                r.fee_base = if o.side == Side::Buy { 0.001 } else { 0.0 };
                r.maker = true;
                out.push(r);
            }
        }
        fn on_market(&mut self, _: &MarketEvent, _: &mut Vec<ExecReport>) {}
    }

    fn order(id: OrderId, inst: InstId, side: Side, px: Px, qty: Qty) -> OrderCmd {
        OrderCmd::New(NewOrder { id, inst, side, px, qty, tif: Tif::PostOnly })
    }

    fn open(path: &Path, session: u32) -> (Journal, JournalState) {
        let insts = instruments();
        Journal::open(path, &insts, ["ETH", "BTC"], || Ok(vec![bal("ETH", "100"), bal("BTC", "10")]), session, false, 1)
            .unwrap()
    }

    #[test]
    fn positions_survive_a_restart_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (j, st) = open(&path, 1);
        assert!(st.created);
        let mut venue = Journaled::new(Filler, j);
        let mut out = Vec::new();
        venue.on_order(&order(1, 0, Side::Buy, 300_000, 50), 0, &mut out);
        venue.on_order(&order(2, 0, Side::Sell, 300_500, 20), 0, &mut out);
        venue.on_order(&order(3, 1, Side::Sell, 9_000_000, 3), 0, &mut out);
        let insts = instruments();
        let mut live = Portfolio::new(insts.clone());
        for r in &out {
            live.on_fill(r.inst as usize, r);
        }
        drop(venue);
        let (_, st) = open(&path, 2);
        assert!(!st.created);
        assert_eq!(st.sessions, 1);
        assert!(st.pending.is_empty(), "every order ended");
        let restored = st.positions(insts);
        assert_eq!(restored, [*live.position(0), *live.position(1)], "cost and PnL replayed exactly");
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (j, _) = open(&path, 1);
        let mut venue = Journaled::new(Filler, j);
        venue.on_order(&order(1, 0, Side::Buy, 300_000, 50), 0, &mut Vec::new());
        drop(venue);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"t\":\"fill\",\"id\":2,\"le").unwrap();
        drop(f);
        let (_, st) = open(&path, 2);
        assert!(st.torn_tail);
        assert_eq!(st.fills.len(), 1);
        // The next start reads a clean file.
        let (_, st) = open(&path, 3);
        assert!(!st.torn_tail);
        assert_eq!(st.sessions, 2);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        drop(open(&path, 1));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"garbage\n{\"t\":\"session\",\"id\":3,\"ts_ns\":1}\n").unwrap();
        drop(f);
        let insts = instruments();
        let e = Journal::open(&path, &insts, ["ETH", "BTC"], || Ok(vec![]), 2, false, 1).unwrap_err();
        assert!(e.to_string().contains(":3: not a journal record"), "{e}");
    }

    #[test]
    fn absurd_sizes_prices_and_fees_are_errors_naming_the_line() {
        for bad in [
            r#"{"t":"fill","id":1,"leg":0,"side":"buy","px":300000,"qty":9223372036854775807,"fee":0.0,"fee_base":0.0,"maker":true}"#,
            r#"{"t":"fill","id":1,"leg":0,"side":"buy","px":0,"qty":5,"fee":0.0,"fee_base":0.0,"maker":true}"#,
            r#"{"t":"fill","id":1,"leg":0,"side":"buy","px":300000,"qty":-5,"fee":0.0,"fee_base":0.0,"maker":true}"#,
            r#"{"t":"fill","id":1,"leg":0,"side":"buy","px":300000,"qty":5,"fee":1e400,"fee_base":0.0,"maker":true}"#,
            r#"{"t":"order","id":1,"leg":0,"side":"sell","px":-1,"qty":5}"#,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.jsonl");
            drop(open(&path, 1));
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            writeln!(f, "{bad}\n{{\"t\":\"session\",\"id\":3,\"ts_ns\":1}}").unwrap();
            drop(f);
            let insts = instruments();
            let e = Journal::open(&path, &insts, ["ETH", "BTC"], || Ok(vec![]), 2, false, 1).unwrap_err();
            assert!(e.to_string().contains(":3:"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_journal_of_other_legs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        drop(open(&path, 1));
        let mut insts = instruments();
        insts.swap(0, 1);
        let e = Journal::open(&path, &insts, ["BTC", "ETH"], || Ok(vec![]), 2, false, 1).unwrap_err();
        assert!(e.to_string().contains("use a journal per pair"), "{e}");
    }

    #[test]
    fn fills_the_journal_missed_are_recovered_from_the_venue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let insts = instruments();
        let (mut j, mut st) = open(&path, 1);
        // Order 7 was journalled and sent; the engine died before any report.
        j.append(&Record::Order { id: 7, leg: 0, side: Side::Buy, px: 300_000, qty: 40 });
        j.commit().unwrap();
        st.apply(&Record::Order { id: 7, leg: 0, side: Side::Buy, px: 300_000, qty: 40 }).unwrap();
        let units = insts[0].qty_f64(30);
        let quote = insts[0].px_f64(300_000) * units;
        let found = j
            .recover::<VenueError>(&mut st, &insts, (1.0, 4.0), true, |p| {
                assert_eq!(p.id, 7);
                Ok(Some(VenueOrder { executed: 30, executed_quote: quote, done: true, maker: true }))
            })
            .unwrap();
        assert_eq!(found, 1);
        assert!(st.pending.is_empty());
        let pos = st.positions(insts.clone());
        assert_eq!(pos[0].qty, 30);
        assert!((pos[0].avg_px - insts[0].px_f64(300_000)).abs() < 1e-9);
        // The venue's balance moved by the fill less its base-asset fee.
        let eth = 100.0 + units - units * 1e-4;
        let now = [bal("ETH", &format!("{eth:.8}")), bal("BTC", "10")];
        let checks = reconcile(&st, &pos, &insts, &now).unwrap();
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        // And the next start reads the recovered fill from the file.
        drop(j);
        let (_, st2) = open(&path, 2);
        assert_eq!(st2.recovered, 1);
        assert_eq!(st2.positions(insts), pos);
    }

    #[test]
    fn a_position_the_venue_does_not_hold_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let insts = instruments();
        let (j, _) = open(&path, 1);
        let mut venue = Journaled::new(Filler, j);
        venue.on_order(&order(1, 1, Side::Sell, 9_000_000, 3), 0, &mut Vec::new());
        drop(venue);
        let (_, st) = open(&path, 2);
        let pos = st.positions(insts.clone());
        let checks = reconcile(&st, &pos, &insts, &[bal("ETH", "100"), bal("BTC", "10")]).unwrap();
        assert!(checks[0].ok);
        assert!(!checks[1].ok, "{checks:?}");
    }

    #[test]
    fn orders_are_refused_when_the_journal_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (mut j, _) = open(&path, 1);
        j.failed = Some(io::ErrorKind::StorageFull);
        let mut venue = Journaled::new(Filler, j);
        let mut out = Vec::new();
        venue.on_order(&order(1, 0, Side::Buy, 300_000, 50), 0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, ExecKind::Rejected);
        assert_eq!(out[0].code, REJECT_JOURNAL);
        assert_eq!(venue.stats().refused, 1);
    }
}
