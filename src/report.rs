//! The run summary printed by `statarb replay` and written to `summary.json`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::backtest::matching::MatchStats;
use crate::book::DataReject;
use crate::core::{Core, CoreStats, LEG_X, LEG_Y};
use crate::live::{LoopStats, RunOutcome};
use crate::metrics::{Percentiles, Stage};
use crate::risk::Reject;

/// One leg's end state.
#[derive(Debug, Clone, Serialize)]
pub struct LegSummary {
    /// Symbol.
    pub symbol: String,
    /// Final position, exact decimal in units of the asset.
    pub position: String,
    /// Realized PnL before fees.
    pub realized: f64,
    /// Fees paid, valued in the quote asset.
    pub fees: f64,
    /// The part of the fees taken in the base asset, base units.
    pub fees_base: f64,
    /// Fills.
    pub fills: u64,
    /// Traded notional.
    pub volume: f64,
    /// Final mark (mid).
    pub mark: f64,
}

/// The summary of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Market events processed.
    pub events: u64,
    /// Quote recomputations.
    pub quote_updates: u64,
    /// New orders sent.
    pub orders: u64,
    /// Cancels sent.
    pub cancels: u64,
    /// Fill reports.
    pub fills: u64,
    /// Net PnL (quote asset), after fees, marked at the final mids.
    pub pnl: f64,
    /// PnL before fees.
    pub pnl_gross: f64,
    /// Fees paid.
    pub fees: f64,
    /// Final positions per symbol, exact decimals.
    pub positions: BTreeMap<String, String>,
    /// Per-leg detail.
    pub legs: Vec<LegSummary>,
    /// Pair entries.
    pub entries: u64,
    /// Kalman updates; the last hedge ratio and z.
    pub signals: u64,
    /// Last beta.
    pub beta: Option<f64>,
    /// Last z.
    pub z: Option<f64>,
    /// Risk rejections by reason.
    pub rejects: BTreeMap<&'static str, u64>,
    /// Market events refused as bad data, by reason ([`crate::book::DataReject`]).
    pub bad_data: BTreeMap<&'static str, u64>,
    /// The venue's last reject, `code: message`.
    pub last_venue_reject: Option<String>,
    /// Tick-to-quote latency in ns (event read to last order pushed).
    pub tick_to_quote_ns: Percentiles,
    /// Strategy latency in ns (event read to core done), every batch end.
    pub strategy_ns: Percentiles,
    /// Core counters.
    pub core: CoreStats,
    /// Hot-loop counters.
    pub hot_loop: LoopStats,
    /// The simulated venue's counters (its matching engine's; simulated venues only).
    pub venue: Option<MatchStats>,
    /// Gateway thread counters (threaded runs only).
    pub gateway: Option<crate::live::GatewayStats>,
    /// Wall time of the hot loop, seconds.
    pub elapsed_s: f64,
    /// Events per second of wall time.
    pub events_per_sec: f64,
}

impl Summary {
    /// Summarises a threaded run; the caller adds venue-specific counters.
    pub fn of_run<S, E>(out: &RunOutcome<S, E>) -> Summary {
        let core = &out.core;
        let mut s = Summary::of_core(core);
        s.tick_to_quote_ns = Percentiles::of(out.latencies.get(Stage::TickToQuote));
        s.strategy_ns = Percentiles::of(out.latencies.get(Stage::Strategy));
        s.hot_loop = out.loop_stats;
        s.gateway = Some(out.gateway_stats);
        s.elapsed_s = out.elapsed.as_secs_f64();
        s.events_per_sec = s.events as f64 / s.elapsed_s.max(1e-9);
        s
    }

    /// The strategy part of a summary, from the core alone.
    pub fn of_core(core: &Core) -> Summary {
        let marks = core.marks();
        let pf = core.portfolio();
        let legs: Vec<LegSummary> = [LEG_Y, LEG_X]
            .iter()
            .map(|&l| {
                let p = pf.position(l);
                let inst = core.instrument(l);
                LegSummary {
                    symbol: inst.symbol.clone(),
                    position: inst.qty_decimal(p.qty).to_string(),
                    realized: p.realized,
                    fees: p.fees,
                    fees_base: p.fees_base,
                    fills: p.fills,
                    volume: p.volume,
                    mark: marks[l],
                }
            })
            .collect();
        let st = core.stats();
        let sig = core.last_signal();
        Summary {
            events: st.events,
            quote_updates: st.quote_updates,
            orders: st.orders,
            cancels: st.cancels,
            fills: st.fills,
            pnl: pf.net_pnl(&marks),
            pnl_gross: pf.gross_pnl(&marks),
            fees: pf.fees(),
            positions: legs.iter().map(|l| (l.symbol.clone(), l.position.clone())).collect(),
            legs,
            entries: core.entries(),
            signals: st.signals,
            beta: sig.map(|s| s.beta),
            z: sig.map(|s| s.z),
            rejects: Reject::ALL.iter().map(|r| (r.name(), core.risk().count_of(*r))).collect(),
            bad_data: DataReject::ALL.iter().map(|r| (r.name(), st.data_rejects.get(*r))).collect(),
            last_venue_reject: core.last_reject().map(|(c, m)| format!("{c}: {m}")),
            tick_to_quote_ns: Percentiles::default(),
            strategy_ns: Percentiles::default(),
            core: *st,
            hot_loop: LoopStats::default(),
            venue: None,
            gateway: None,
            elapsed_s: 0.0,
            events_per_sec: 0.0,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "events          {:>14}   ({:.2} M events/s over {:.3} s)",
            self.events,
            self.events_per_sec / 1e6,
            self.elapsed_s
        )?;
        writeln!(f, "signals         {:>14}   entries {}", self.signals, self.entries)?;
        if let (Some(b), Some(z)) = (self.beta, self.z) {
            writeln!(f, "last beta, z    {:>14.6}   {:.3}", b, z)?;
        }
        writeln!(f, "quote updates   {:>14}", self.quote_updates)?;
        writeln!(f, "orders          {:>14}   cancels {}", self.orders, self.cancels)?;
        writeln!(f, "fills           {:>14}", self.fills)?;
        for l in &self.legs {
            writeln!(
                f,
                "  {:<10} position {:>14}  fills {:>6}  volume {:>14.2}  realized {:>10.2}  fees {:>8.2}",
                l.symbol, l.position, l.fills, l.volume, l.realized, l.fees
            )?;
        }
        writeln!(f, "pnl gross       {:>14.2}", self.pnl_gross)?;
        writeln!(f, "fees            {:>14.2}", self.fees)?;
        writeln!(f, "pnl net         {:>14.2}", self.pnl)?;
        let rejects: Vec<String> =
            self.rejects.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k}={n}")).collect();
        writeln!(f, "risk rejects    {}", if rejects.is_empty() { "none".into() } else { rejects.join(" ") })?;
        let bad: Vec<String> = self.bad_data.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k}={n}")).collect();
        writeln!(f, "bad data        {}", if bad.is_empty() { "none".into() } else { bad.join(" ") })?;
        if let Some(r) = &self.last_venue_reject {
            writeln!(f, "venue reject    last: {r}")?;
        }
        let p = &self.tick_to_quote_ns;
        writeln!(
            f,
            "tick-to-quote   p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns  ({} quotes)",
            p.p50, p.p99, p.p999, p.max, p.count
        )?;
        let p = &self.strategy_ns;
        write!(f, "strategy        p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns", p.p50, p.p99, p.p999, p.max)
    }
}
