//! A live session: the engine on a live market source with the configured venue behind
//! the gateway thread, from the checks before the first quote to the reconciliation
//! after the last.
//!
//! [`run_live`] is what `statarb run` does once its feed is connected:
//!
//! - **Paper** (`gateway.venue = "paper"`): the backtester's matching engine on the
//!   gateway thread, fed the live data, with `replay`'s queue model, fees and bad-data
//!   band ([`run_paper`]).
//! - **Binance**: before the first quote, the open orders of earlier sessions are
//!   cancelled ([`crate::gateway::binance::BinanceSpot::reconcile`]) and the balances
//!   read as the session's baseline. With `gateway.journal`, the positions of earlier
//!   sessions are restored from the journal ([`restore_from_journal`]): the fills of the
//!   orders it left open are recovered from the venue, and each leg's position is
//!   checked against the venue's balance change since the journal began; a mismatch is
//!   an error, because the engine does not quote on positions the venue does not hold.
//!   After the run, [`reconcile_session`] compares each leg's position change with its
//!   base asset's balance change.
//!
//! A driver (the CLI) is above this module: it reads the configuration and decides
//! where the session's notes go. This module prints nothing; what an operator should
//! read (journal state, rejects, warnings) goes to the `note` sink each function takes,
//! one line per call. Reconciliation results are `tracing` events of their own
//! ([`RECONCILE`]: symbol, asset, both quantities and `ok` as fields; `error` on a
//! mismatch, `warn` for leftover orders), so that an alert can match them. They are
//! logged on the session's thread, before the hot thread starts and after it ends,
//! when there is no loop for the monitor to watch. While the engine runs, [`run_live`]
//! keeps a monitor thread ([`crate::monitor`]) beside it: log lines of what happens,
//! the status line and the `/metrics` endpoint of `[monitor]`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::{error, info, warn};

use crate::backtest::queue::{ProbLog, ProbPower, QueueConfig, QueueModel, RiskAverse};
use crate::backtest::{Backtest, BacktestError};
use crate::config::{Config, GatewayVenue};
use crate::core::Core;
use crate::feed::snapshot::wall_ns;
use crate::feed::source::{AlpacaFeed, BinanceFeed, MarketSource};
use crate::gateway::binance::{split_symbol, BinanceSpot, GatewayError};
use crate::gateway::{Balance, Exchange, VenueError};
use crate::journal::{self, Journal, JournalError, Journaled, LegCheck, OpenError};
use crate::live::{self, RunOptions, RunOutcome};
use crate::metrics::Latencies;
use crate::monitor::telemetry::Telemetry;
use crate::monitor::Monitor;
use crate::portfolio::Position;
use crate::ratelimit::IpBudget;
use crate::report::Summary;
use crate::types::Instrument;

/// How long the Binance session waits at start for the user data stream to subscribe
/// before it goes on, settling orders by queries instead.
const STREAM_READY_WAIT: Duration = Duration::from_secs(10);

/// Why a live session could not start or ended in error.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The configuration's core parameters do not build (checked at load already).
    #[error("core parameters: {0}")]
    Config(#[source] crate::config::ConfigError),
    /// The paper venue's latency models do not build (a series file unreadable).
    #[error("paper venue: {0}")]
    Backtest(#[from] BacktestError),
    /// The monitor could not start: `monitor.metrics_addr` cannot be bound, or a
    /// thread cannot be spawned.
    #[error("starting the monitor (monitor.metrics_addr {addr}): {source}")]
    Monitor {
        /// The configured endpoint address, or "none".
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The Binance gateway failed at a step of the session (`what`).
    #[error("{what}: {source}")]
    Gateway {
        /// The step: "creating the Binance gateway", "reconciling open orders", ...
        what: &'static str,
        /// The gateway's error.
        #[source]
        source: GatewayError,
    },
    /// The venue did not give its balances at a step of the session.
    #[error("reading balances {what}: {source}")]
    Balances {
        /// When: "at start", "for the journal check".
        what: &'static str,
        /// The venue's answer.
        #[source]
        source: VenueError,
    },
    /// A leg's symbol does not split into a base and a quote asset.
    #[error("{0}: no base asset in the symbol")]
    Symbol(String),
    /// The position journal could not be opened.
    #[error("opening the position journal {path}: {source}")]
    JournalOpen {
        /// The journal.
        path: PathBuf,
        /// Why.
        #[source]
        source: OpenError,
    },
    /// The journal's open orders could not be settled with the venue.
    #[error("settling the open orders of the journal {path} with the venue: {source}")]
    JournalRecover {
        /// The journal.
        path: PathBuf,
        /// The venue's answer.
        #[source]
        source: GatewayError,
    },
    /// The journal's positions could not be checked against the venue.
    #[error("checking the journal {path} against the venue: {source}")]
    JournalCheck {
        /// The journal.
        path: PathBuf,
        /// Why.
        #[source]
        source: JournalError,
    },
    /// A leg's journal position is not what the venue holds.
    #[error(
        "{path}: the journal's {symbol} position ({expected} {asset}) is not the venue's ({actual}); not quoting on it. \
         Settle the account or start a new journal"
    )]
    Mismatch {
        /// The journal.
        path: PathBuf,
        /// The leg.
        symbol: String,
        /// The base asset.
        asset: String,
        /// The journal's position less its base-asset fees, base units.
        expected: f64,
        /// The venue's balance change since the journal began, base units.
        actual: f64,
    },
}

/// A live source's counters, for the end-of-run report.
pub trait FeedReport {
    /// The source's counters as text, one line per part (feed, socket, books).
    fn report(&self, instruments: &[Instrument]) -> String;
}

impl FeedReport for BinanceFeed {
    fn report(&self, instruments: &[Instrument]) -> String {
        let syncs: Vec<String> = (0..instruments.len())
            .map(|i| {
                let s = self.sync(i as u16).stats();
                format!("{} syncs {} gaps {} overflows {}", instruments[i].symbol, s.syncs, s.gaps, s.overflows)
            })
            .collect();
        format!(
            "feed: {:?}\nwebsocket: {:?}{}\nbooks: {}",
            self.stats(),
            self.ws().stats(),
            self.ws().last_error().map(|e| format!(", last error: {e}")).unwrap_or_default(),
            syncs.join("; ")
        )
    }
}

impl FeedReport for AlpacaFeed {
    fn report(&self, _: &[Instrument]) -> String {
        format!(
            "feed: {:?} (session {:?})\nwebsocket: {:?}{}",
            self.stats(),
            self.state(),
            self.ws().stats(),
            self.ws().last_error().map(|e| format!(", last error: {e}")).unwrap_or_default(),
        )
    }
}

/// What a live session leaves for the report.
#[derive(Debug)]
pub struct LiveResult {
    /// The run summary (with the venue's counters for the paper venue).
    pub summary: Summary,
    /// The hot thread's latency histograms.
    pub latencies: Latencies,
    /// The end-of-session check of each leg against the venue (Binance only, and only
    /// if the venue gave its final balances).
    pub reconciliation: Vec<LegReconciliation>,
}

/// One leg's end-of-session check: the position change over the session, less the
/// fees the venue took in the base asset, against the base asset's balance change.
#[derive(Debug, Clone, PartialEq)]
pub struct LegReconciliation {
    /// The leg's symbol.
    pub symbol: String,
    /// Its base asset.
    pub asset: String,
    /// The session's position change, base units.
    pub position_change: f64,
    /// The session's fees taken in the base asset, base units.
    pub fees_base: f64,
    /// The venue's change of the base asset's total (free + locked) balance.
    pub balance_change: f64,
    /// `|balance_change - (position_change - fees_base)| <= lot / 2`.
    pub ok: bool,
}

impl fmt::Display for LegReconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { symbol, asset, position_change, fees_base, balance_change, ok } = self;
        write!(
            f,
            "reconcile {symbol}: position change {position_change} less {fees_base} {asset} of fees vs {asset} balance change {balance_change}: {}",
            if *ok { "match" } else { "MISMATCH" }
        )
    }
}

/// The end-of-session check of every leg whose symbol has a base asset: `start` and
/// `end` are the positions the session began and ended with, `before` and `after` the
/// venue's balances at the same two moments. The venue keeps base-asset commissions
/// out of the balance, so the balance moves by the position change less them.
pub fn reconcile_session(
    instruments: &[Instrument],
    start: &[Position],
    end: &[Position],
    before: &[Balance],
    after: &[Balance],
) -> Vec<LegReconciliation> {
    let total = |bals: &[Balance], asset: &str| {
        bals.iter().find(|b| b.asset == asset).map(|b| b.free.to_f64() + b.locked.to_f64()).unwrap_or(0.0)
    };
    instruments
        .iter()
        .zip(start.iter().zip(end))
        .filter_map(|(inst, (s, e))| {
            let (asset, _) = split_symbol(&inst.symbol)?;
            let balance_change = total(after, &asset) - total(before, &asset);
            let position_change = inst.qty_f64(e.qty - s.qty);
            let fees_base = e.fees_base - s.fees_base;
            let ok = (balance_change - (position_change - fees_base)).abs() <= inst.lot_f64() / 2.0;
            Some(LegReconciliation {
                symbol: inst.symbol.clone(),
                asset,
                position_change,
                fees_base,
                balance_change,
                ok,
            })
        })
        .collect()
}

/// Runs the engine on `source` with the configured venue behind the gateway thread
/// until the source ends or `stop` is set. A Binance gateway draws request weight from
/// `budget`, the per-IP budget the feed's snapshots also draw from. See the module doc
/// for the steps around the run.
#[allow(clippy::too_many_arguments)]
pub fn run_live<S: MarketSource + Send + FeedReport>(
    cfg: &Config,
    core: Core,
    source: S,
    session_id: u32,
    opts: &RunOptions,
    stop: &AtomicBool,
    budget: &Arc<IpBudget>,
    note: &mut dyn FnMut(&str),
) -> Result<LiveResult, SessionError> {
    let telemetry = Arc::new(Telemetry::new());
    let mopts = cfg.monitor_options();
    let addr = mopts.metrics_addr.map_or_else(|| "none".to_string(), |a| a.to_string());
    let monitor =
        Monitor::spawn(Arc::clone(&telemetry), mopts).map_err(|source| SessionError::Monitor { addr, source })?;
    let t = &telemetry;
    let result = match cfg.gateway.venue {
        // The queue model is picked here, once; each is its own monomorphised run.
        GatewayVenue::Paper => match cfg.backtest.queue {
            QueueConfig::RiskAverse {} => run_paper(cfg, core, source, RiskAverse, opts, stop, t, note),
            QueueConfig::ProbPower { n } => run_paper(cfg, core, source, ProbPower::new(n), opts, stop, t, note),
            QueueConfig::ProbLog {} => run_paper(cfg, core, source, ProbLog, opts, stop, t, note),
        },
        GatewayVenue::Binance => run_binance(cfg, core, source, session_id, opts, stop, budget, t, note),
    };
    let scrapes = monitor.stop();
    if scrapes > 0 {
        note(&format!("metrics: {scrapes} scrapes answered"));
    }
    result
}

/// A live run against the paper venue with queue model `queue`: the backtester's
/// matching engine, built as [`Backtest::engine`] builds it for `replay` (the fees and
/// the bad-data band), behind `replay`'s entry and response latency
/// ([`crate::backtest::paper`]), so that paper fills come no sooner than real ones could.
/// The hot thread publishes into `telemetry` for a monitor.
#[allow(clippy::too_many_arguments)]
pub fn run_paper<S: MarketSource + Send + FeedReport, Q: QueueModel + Send>(
    cfg: &Config,
    core: Core,
    source: S,
    queue: Q,
    opts: &RunOptions,
    stop: &AtomicBool,
    telemetry: &Arc<Telemetry>,
    note: &mut dyn FnMut(&str),
) -> Result<LiveResult, SessionError> {
    let instruments = cfg.instruments();
    let params = cfg.core_params().map_err(SessionError::Config)?;
    let bt = Backtest::new(&cfg.backtest, &params, cfg.fees)?;
    let venue = bt.paper_venue(&instruments, queue);
    let outcome = live::run_observed(core, source, venue, opts, stop, Arc::clone(telemetry));
    finish(cfg, &instruments, &outcome, note);
    let (stats, lag) = (outcome.exchange.inner().stats(), outcome.exchange.lag_stats());
    note(&format!("paper venue: {stats:?}"));
    note(&format!(
        "paper latency: {} commands and {} reports delayed ({} and {} released by the wall clock), \
         at most {} and {} held",
        lag.commands, lag.reports, lag.commands_by_wall, lag.reports_by_wall, lag.peak_commands, lag.peak_reports
    ));
    let mut summary = Summary::of_run(&outcome);
    summary.venue = Some(stats);
    Ok(LiveResult { summary, latencies: outcome.latencies, reconciliation: Vec::new() })
}

/// The Binance session: reconcile, restore, run (journalled if configured), reconcile.
#[allow(clippy::too_many_arguments)]
fn run_binance<S: MarketSource + Send + FeedReport>(
    cfg: &Config,
    mut core: Core,
    source: S,
    session_id: u32,
    opts: &RunOptions,
    stop: &AtomicBool,
    budget: &Arc<IpBudget>,
    telemetry: &Arc<Telemetry>,
    note: &mut dyn FnMut(&str),
) -> Result<LiveResult, SessionError> {
    let gw = |what| move |source| SessionError::Gateway { what, source };
    let instruments = cfg.instruments();
    let mut venue = BinanceSpot::new(cfg.gateway.binance.clone(), instruments.clone(), cfg.fees)
        .map_err(gw("creating the Binance gateway"))?;
    venue.share_budget(Arc::clone(budget));
    venue.start().map_err(gw("starting the Binance gateway"))?;
    // Before the first quote: leftover orders of earlier sessions are cancelled, and the
    // balances are the baseline the session's positions are counted from.
    let leftover = venue.reconcile(session_id).map_err(gw("reconciling open orders"))?;
    if !leftover.is_empty() {
        warn!(target: RECONCILE, open_orders = leftover.len(), "reconcile: open orders of earlier sessions found at start, cancelled");
    }
    let journal = match &cfg.gateway.journal {
        Some(path) => {
            let (j, positions) = restore_from_journal(cfg, path, &mut venue, &instruments, session_id, note)?;
            core.restore_positions(positions);
            Some(j)
        }
        None => None,
    };
    let start = [*core.portfolio().position(0), *core.portfolio().position(1)];
    let deadline = Instant::now() + STREAM_READY_WAIT;
    let mut reports = Vec::new();
    while !venue.stream_ready() && Instant::now() < deadline {
        venue.poll(0, &mut reports);
        std::thread::sleep(Duration::from_millis(5));
    }
    if !venue.stream_ready() {
        note("warning: the user data stream is not subscribed; orders settle by queries");
    }
    let before = venue.balances().map_err(|source| SessionError::Balances { what: "at start", source })?;
    let mut outcome = match journal {
        Some(j) => {
            let o = live::run_observed(core, source, Journaled::new(venue, j), opts, stop, Arc::clone(telemetry));
            let js = o.exchange.stats();
            note(&format!(
                "journal: {} records in {} writes, {} write errors, {} orders refused",
                js.records, js.writes, js.write_errors, js.refused
            ));
            o.map_exchange(|e| e.into_parts().0)
        }
        None => live::run_observed(core, source, venue, opts, stop, Arc::clone(telemetry)),
    };
    finish(cfg, &instruments, &outcome, note);
    for r in outcome.exchange.take_rejects() {
        note(&format!("venue reject: {r:?}"));
    }
    note(&format!("binance gateway: {:?}", outcome.exchange.stats()));
    let reconciliation = match outcome.exchange.balances() {
        Ok(after) => {
            let end = [*outcome.core.portfolio().position(0), *outcome.core.portfolio().position(1)];
            let checks = reconcile_session(&instruments, &start, &end, &before, &after);
            for c in &checks {
                log_session_check(c);
            }
            checks
        }
        Err(e) => {
            note(&format!("warning: final balances unavailable: {e}"));
            Vec::new()
        }
    };
    let summary = Summary::of_run(&outcome);
    Ok(LiveResult { summary, latencies: outcome.latencies, reconciliation })
}

/// Opens the position journal at `path` (creating it with the venue's balances as the
/// baseline), recovers from the venue the fills of orders the journal left open, and
/// checks each leg's position against the venue's balance change since the baseline.
/// Returns the journal, open for the session, and the positions to start from; a
/// mismatch is [`SessionError::Mismatch`].
pub fn restore_from_journal(
    cfg: &Config,
    path: &Path,
    venue: &mut BinanceSpot,
    instruments: &[Instrument],
    session_id: u32,
    note: &mut dyn FnMut(&str),
) -> Result<(Journal, [Position; 2]), SessionError> {
    let insts = [instruments[0].clone(), instruments[1].clone()];
    let base =
        |i: &Instrument| split_symbol(&i.symbol).map(|(b, _)| b).ok_or_else(|| SessionError::Symbol(i.symbol.clone()));
    let assets = [base(&insts[0])?, base(&insts[1])?];
    let (mut journal, mut state) = Journal::open(
        path,
        &insts,
        [assets[0].as_str(), assets[1].as_str()],
        || venue.balances(),
        session_id,
        cfg.gateway.journal_fsync,
        wall_ns().max(0) as u64,
    )
    .map_err(|source| SessionError::JournalOpen { path: path.into(), source })?;
    let verb = if state.created { "created" } else { "read" };
    note(&format!(
        "journal {verb}: {} ({} earlier sessions, {} fills, {} orders to settle{})",
        path.display(),
        state.sessions,
        state.fills.len(),
        state.pending.len(),
        if state.torn_tail { ", a torn last line dropped" } else { "" }
    ));
    let fee_bps = (cfg.fees.maker_bps, cfg.fees.taker_bps);
    let found = journal
        .recover(&mut state, &insts, fee_bps, true, |p| venue.query_order(p.leg, p.id))
        .map_err(|source| SessionError::JournalRecover { path: path.into(), source })?;
    if found > 0 {
        note(&format!("journal: {found} fills found at the venue that no report carried (fees estimated)"));
    }
    let positions = state.positions(insts.clone());
    let now = venue.balances().map_err(|source| SessionError::Balances { what: "for the journal check", source })?;
    let checks = journal::reconcile(&state, &positions, &insts, &now)
        .map_err(|source| SessionError::JournalCheck { path: path.into(), source })?;
    for c in &checks {
        let LegCheck { symbol, asset, expected, actual, ok } = c;
        let verdict = if *ok { "match" } else { "MISMATCH" };
        let text = format!(
            "reconcile {symbol} at start: journal position less base fees {expected} {asset} vs balance change since the journal began {actual}: {verdict}"
        );
        if *ok {
            info!(target: RECONCILE, %symbol, %asset, expected, actual, ok, "{text}");
        } else {
            error!(target: RECONCILE, %symbol, %asset, expected, actual, ok, "{text}");
        }
    }
    if let Some(LegCheck { symbol, asset, expected, actual, .. }) = checks.iter().find(|c| !c.ok).cloned() {
        return Err(SessionError::Mismatch { path: path.into(), symbol, asset, expected, actual });
    }
    Ok((journal, positions))
}

/// The `tracing` target of reconciliation results: structured (symbol, asset, the
/// two quantities, `ok`), `info` on a match and `error` on a mismatch, so that a log
/// filter or alert can pick them out of the session's narrative lines.
pub const RECONCILE: &str = "statarb::reconcile";

/// Logs one leg's end-of-session reconciliation ([`RECONCILE`]).
fn log_session_check(c: &LegReconciliation) {
    let LegReconciliation { symbol, asset, position_change, fees_base, balance_change, ok } = c;
    if *ok {
        info!(target: RECONCILE, %symbol, %asset, position_change, fees_base, balance_change, ok, "{c}");
    } else {
        error!(target: RECONCILE, %symbol, %asset, position_change, fees_base, balance_change, ok, "{c}");
    }
}

/// The warnings and counters every live run ends with, to `note`.
fn finish<S: FeedReport, E>(
    cfg: &Config,
    instruments: &[Instrument],
    outcome: &RunOutcome<S, E>,
    note: &mut dyn FnMut(&str),
) {
    for w in &outcome.warnings {
        note(&format!("warning: {w}"));
    }
    note(&outcome.source.report(instruments));
    let g = &outcome.gateway_stats;
    if g.stop_timed_out {
        note(&format!(
            "warning: {} orders not confirmed cancelled within {} ms of the stop",
            g.unconfirmed_at_stop, cfg.gateway.cancel_timeout_ms
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Decimal;

    fn inst(symbol: &str, lot: &str) -> Instrument {
        Instrument::new(symbol, "0.01".parse().unwrap(), lot.parse().unwrap())
    }

    fn bal(asset: &str, free: &str) -> Balance {
        Balance { asset: asset.into(), free: free.parse().unwrap(), locked: Decimal::ZERO }
    }

    fn pos(qty: i64, fees_base: f64) -> Position {
        Position { qty, fees_base, ..Position::default() }
    }

    #[test]
    fn a_leg_matches_when_the_balance_moves_by_the_position_less_base_fees() {
        let insts = [inst("ETHUSDT", "0.001"), inst("BTCUSDT", "0.00001")];
        // ETH: bought 2.5 (2,500 lots) paying 0.0025 ETH of fees; BTC: nothing.
        let start = [pos(1000, 0.001), pos(0, 0.0)];
        let end = [pos(3500, 0.0035), pos(0, 0.0)];
        let before = [bal("ETH", "1.0"), bal("BTC", "0.5")];
        let after = [bal("ETH", "3.4975"), bal("BTC", "0.5")];
        let r = reconcile_session(&insts, &start, &end, &before, &after);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|c| c.ok), "{r:?}");
        assert_eq!(r[0].asset, "ETH");
        assert!((r[0].position_change - 2.5).abs() < 1e-12);
        assert!((r[0].fees_base - 0.0025).abs() < 1e-12);
        assert!(r[0].to_string().ends_with(": match"), "{}", r[0]);
    }

    #[test]
    fn a_balance_off_by_more_than_half_a_lot_is_a_mismatch() {
        let insts = [inst("ETHUSDT", "0.001")];
        let r =
            reconcile_session(&insts, &[pos(0, 0.0)], &[pos(1000, 0.0)], &[bal("ETH", "0")], &[bal("ETH", "0.998")]);
        assert!(!r[0].ok);
        assert!(r[0].to_string().ends_with("MISMATCH"));
        // A missing balance is 0 (the venue omits zero balances).
        let r = reconcile_session(&insts, &[pos(0, 0.0)], &[pos(0, 0.0)], &[], &[]);
        assert!(r[0].ok);
    }

    #[test]
    fn a_symbol_without_a_known_quote_asset_is_left_out() {
        let insts = [inst("FOOBAR", "1")];
        assert!(reconcile_session(&insts, &[pos(0, 0.0)], &[pos(0, 0.0)], &[], &[]).is_empty());
    }
}
