//! The strategy core: one deterministic state machine that knows nothing about sockets,
//! threads or files.
//!
//! ```text
//! on_market(ev) -> book -> (every sample_ms) Kalman -> z -> pair targets
//!                       -> per leg: A-S/GLFT quote around the mid, q = (pos - target)/size
//!                       -> risk check -> order diff -> OrderCmd
//! on_exec(rep)  -> order state, portfolio -> requote the leg
//! ```
//!
//! Both drivers, live and replay, call the same methods with the same inputs, so a
//! backtest result is a statement about the code that trades. Time is passed in
//! (`now`, local nanoseconds): the core never reads a clock.
//!
//! Order diff: a side keeps its resting quote while the new price is within
//! `min_replace_ticks` of it and the size is unchanged; otherwise the old quote is
//! cancelled and the new one sent in the same step (cancel-then-new, not waiting for
//! the cancel's acknowledgement). Orders awaiting a cancel still count against the
//! position and open-order limits until the venue confirms them gone.

use arrayvec::ArrayVec;

use crate::book::Book;
use crate::config::Config;
use crate::event::{ExecKind, ExecReport, MarketEvent, NewOrder, OrderCmd, OrderId, Tif};
use crate::portfolio::Portfolio;
use crate::quote::{Quoter, Session, SigmaEstimator};
use crate::risk::{OrderCheck, Reject, Risk};
use crate::signal::kalman::{Kalman, KalmanOutput};
use crate::signal::pairs::{Pairs, SpreadState, Targets};
use crate::types::{InstId, Instrument, Px, Qty, Side, Ts, NS_PER_MS, NS_PER_SEC};

/// Index of the Y (dependent) leg.
pub const LEG_Y: usize = 0;
/// Index of the X (hedge) leg.
pub const LEG_X: usize = 1;
/// Most commands one call can emit: 2 legs x 2 sides x (cancel + new), or a cancel-all.
pub const MAX_CMDS: usize = 16;
/// Most orders tracked at once; `risk.max_open_orders` may not exceed it.
pub const MAX_ORDERS: usize = 64;

/// The buffer a core call writes its commands into; the caller clears it.
pub type Commands = ArrayVec<OrderCmd, MAX_CMDS>;

/// Counters of what the core saw and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CoreStats {
    /// Market events received.
    pub events: u64,
    /// Market events for instruments not in the pair (ignored).
    pub unknown_instrument: u64,
    /// Market events refused by the book as invalid (counted, skipped).
    pub bad_events: u64,
    /// Kalman updates accepted.
    pub signals: u64,
    /// Kalman updates skipped (non-finite input, non-positive Q).
    pub signals_skipped: u64,
    /// Times a leg's quote was recomputed.
    pub quote_updates: u64,
    /// New orders sent.
    pub orders: u64,
    /// Cancels sent.
    pub cancels: u64,
    /// Fill reports (partial or full).
    pub fills: u64,
    /// Execution reports for orders the core does not know.
    pub unknown_reports: u64,
    /// Commands dropped because the command buffer was full (a bug if ever > 0).
    pub dropped_cmds: u64,
}

/// An order the core has sent and not yet seen finish.
#[derive(Debug, Clone, Copy)]
struct Order {
    id: OrderId,
    leg: usize,
    side: Side,
    px: Px,
    qty: Qty,
    leaves: Qty,
    cancel_sent: bool,
}

/// One leg of the pair.
#[derive(Debug, Clone)]
struct Leg {
    id: InstId,
    inst: Instrument,
    book: Book,
    sigma: SigmaEstimator,
    quoter: Quoter,
    order_lots: Qty,
    max_position: Qty,
    /// Local time of the last market event, `Ts::MIN` before the first.
    last_update: Ts,
    /// The resting quote per side (`Side::idx`), if any.
    quotes: [Option<OrderId>; 2],
}

/// The strategy state machine.
#[derive(Debug, Clone)]
pub struct Core {
    legs: [Leg; 2],
    kalman: Kalman,
    pairs: Pairs,
    risk: Risk,
    portfolio: Portfolio<2>,
    session: Session,
    sample_ns: i64,
    next_sample: Ts,
    last_signal: Option<KalmanOutput>,
    min_replace_ticks: i64,
    orders: ArrayVec<Order, MAX_ORDERS>,
    id_prefix: u64,
    next_seq: u32,
    /// False after [`Core::shutdown`]: quotes are only ever pulled.
    quoting: bool,
    /// The venue's last reject: code and message.
    last_reject: Option<(i32, crate::event::RejectMsg)>,
    stats: CoreStats,
}

/// Why a core could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A configured symbol is not in the data source's instrument table.
    #[error("symbol {0} is not in the instrument table")]
    UnknownSymbol(String),
    /// The data source's tick or lot differs from the configuration's.
    #[error("{symbol}: config has tick {cfg_tick} lot {cfg_lot}, the data has tick {data_tick} lot {data_lot}")]
    IncrementMismatch {
        /// Symbol.
        symbol: String,
        /// Configured tick.
        cfg_tick: String,
        /// Configured lot.
        cfg_lot: String,
        /// Tick of the data.
        data_tick: String,
        /// Lot of the data.
        data_lot: String,
    },
    /// A component refused its parameters.
    #[error("{0}")]
    Params(String),
}

impl Core {
    /// A core for a validated config, trading the configured symbols, whose ids are
    /// their index in `instruments` (the data source's table). `session_id` (e.g. the
    /// start time in seconds) makes client order ids unique across restarts.
    pub fn new(cfg: &Config, instruments: &[Instrument], session_id: u32) -> Result<Core, CoreError> {
        let leg = |lc: &crate::config::LegConfig| -> Result<Leg, CoreError> {
            let inst = lc.instrument();
            let id = instruments
                .iter()
                .position(|i| i.symbol == inst.symbol)
                .ok_or_else(|| CoreError::UnknownSymbol(inst.symbol.clone()))?;
            let data = &instruments[id];
            if data.tick != inst.tick || data.lot != inst.lot {
                return Err(CoreError::IncrementMismatch {
                    symbol: inst.symbol.clone(),
                    cfg_tick: inst.tick.to_string(),
                    cfg_lot: inst.lot.to_string(),
                    data_tick: data.tick.to_string(),
                    data_lot: data.lot.to_string(),
                });
            }
            let qp = lc.quote_params();
            Ok(Leg {
                id: id as InstId,
                inst,
                book: Book::default(),
                sigma: SigmaEstimator::new(qp.sigma0, cfg.quote.sigma_halflife_s, NS_PER_SEC),
                quoter: Quoter::new(cfg.quote.model, qp).map_err(|e| CoreError::Params(e.to_string()))?,
                order_lots: lc.order_lots(),
                max_position: lc.max_position_lots(),
                last_update: Ts::MIN,
                quotes: [None, None],
            })
        };
        let legs = [leg(&cfg.y)?, leg(&cfg.x)?];
        let kalman = Kalman::new(&cfg.kalman).map_err(|e| CoreError::Params(e.to_string()))?;
        let portfolio = Portfolio::new([legs[LEG_Y].inst.clone(), legs[LEG_X].inst.clone()]);
        Ok(Core {
            legs,
            kalman,
            pairs: Pairs::new(cfg.pairs),
            risk: Risk::new(cfg.risk),
            portfolio,
            session: Session::new(0, cfg.quote.session_secs as i64 * NS_PER_SEC),
            sample_ns: cfg.signal.sample_ms as i64 * NS_PER_MS,
            next_sample: Ts::MIN,
            last_signal: None,
            min_replace_ticks: cfg.quote.min_replace_ticks,
            orders: ArrayVec::new(),
            id_prefix: (session_id as u64) << 32,
            next_seq: 0,
            quoting: true,
            last_reject: None,
            stats: CoreStats::default(),
        })
    }

    /// Handles one market event at local time `now`; appends any orders to `out`.
    #[inline]
    pub fn on_market(&mut self, ev: &MarketEvent, now: Ts, out: &mut Commands) {
        self.stats.events += 1;
        let Some(l) = self.leg_of(ev.inst) else {
            self.stats.unknown_instrument += 1;
            return;
        };
        let leg = &mut self.legs[l];
        if !leg.book.apply(ev) {
            self.stats.bad_events += 1;
        }
        leg.last_update = now;
        if !ev.is_batch_end() || ev.kind.is_trade() {
            return;
        }
        if let Some(mid) = leg.book.mid_ticks() {
            leg.sigma.on_mid(now, mid * leg.inst.tick_f64());
        }
        if self.maybe_sample(now, out) {
            self.requote(LEG_Y, now, out);
            self.requote(LEG_X, now, out);
        } else {
            self.requote(l, now, out);
        }
    }

    /// Handles an execution report at local time `now`; appends any orders to `out`.
    #[inline]
    pub fn on_exec(&mut self, rep: &ExecReport, now: Ts, out: &mut Commands) {
        let Some(l) = self.leg_of(rep.inst) else {
            self.stats.unknown_reports += 1;
            return;
        };
        let filled = matches!(rep.kind, ExecKind::Fill | ExecKind::PartialFill) && rep.qty > 0;
        if filled {
            // Position state first: a fill counts even for an order we lost track of.
            self.portfolio.on_fill(l, rep);
            self.stats.fills += 1;
        }
        match self.orders.iter().position(|o| o.id == rep.id) {
            Some(i) => {
                self.orders[i].leaves = rep.leaves;
                if rep.kind == ExecKind::Rejected {
                    self.risk.count(Reject::Exchange);
                    self.last_reject = Some((rep.code, rep.msg));
                }
                if rep.is_final() || rep.leaves <= 0 {
                    let o = self.orders.swap_remove(i);
                    let slot = &mut self.legs[o.leg].quotes[o.side.idx()];
                    if *slot == Some(o.id) {
                        *slot = None;
                    }
                }
            }
            None => self.stats.unknown_reports += 1,
        }
        if filled {
            if self.risk.check_loss(self.net_pnl()) {
                self.kill(out);
                return;
            }
            self.requote(l, now, out);
        }
    }

    /// Periodic housekeeping between events: pulls the quotes of legs whose data went
    /// stale. Cheap; the drivers call it every loop turn or on a timer.
    #[inline]
    pub fn on_timer(&mut self, now: Ts, out: &mut Commands) {
        for l in [LEG_Y, LEG_X] {
            let leg = &self.legs[l];
            if leg.quotes.iter().any(Option::is_some) && self.risk.is_stale(leg.last_update, now) {
                self.risk.count(Reject::Stale);
                self.cancel_leg(l, out);
            }
        }
    }

    /// Kill switch: stop quoting, flatten targets and cancel every open order.
    pub fn kill(&mut self, out: &mut Commands) {
        self.risk.kill();
        self.pairs.flatten();
        self.cancel_all(out);
    }

    /// Orderly stop: cancel every open order; quoting resumes on the next event unless
    /// the kill switch is on.
    pub fn cancel_all(&mut self, out: &mut Commands) {
        for o in &mut self.orders {
            o.cancel_sent = true;
        }
        for leg in &mut self.legs {
            leg.quotes = [None, None];
        }
        self.emit(OrderCmd::CancelAll, out);
    }

    /// The venue's last reject of one of our orders: its code and message.
    pub fn last_reject(&self) -> Option<(i32, &str)> {
        self.last_reject.as_ref().map(|(c, m)| (*c, m.as_str()))
    }

    /// Orderly end of a session: cancel every open order and never quote again. Fills
    /// still update the portfolio.
    pub fn shutdown(&mut self, out: &mut Commands) {
        self.quoting = false;
        self.cancel_all(out);
    }

    /// Samples the signal if the interval has elapsed and both legs have a fresh
    /// market. Returns true if the targets changed.
    #[inline]
    fn maybe_sample(&mut self, now: Ts, out: &mut Commands) -> bool {
        if now < self.next_sample {
            return false;
        }
        let (Some(y), Some(x)) = (self.mid(LEG_Y), self.mid(LEG_X)) else {
            return false;
        };
        if self.legs.iter().any(|leg| self.risk.is_stale(leg.last_update, now)) {
            return false;
        }
        self.next_sample = if self.sample_ns > 0 { now - now.rem_euclid(self.sample_ns) + self.sample_ns } else { now };
        let Some(sig) = self.kalman.update(x, y) else {
            self.stats.signals_skipped += 1;
            return false;
        };
        self.stats.signals += 1;
        self.last_signal = Some(sig);
        if self.risk.check_loss(self.net_pnl()) {
            self.kill(out);
            return false;
        }
        if self.risk.killed() {
            return false;
        }
        let before = self.pairs.targets();
        let (yi, xi) = (&self.legs[LEG_Y].inst, &self.legs[LEG_X].inst);
        self.pairs.on_signal(sig.z, sig.beta, y, yi, xi) != before
    }

    /// Recomputes leg `l`'s quotes and diffs them against the resting ones.
    #[inline]
    fn requote(&mut self, l: usize, now: Ts, out: &mut Commands) {
        if !self.quoting {
            self.cancel_leg(l, out);
            return;
        }
        self.stats.quote_updates += 1;
        let leg = &self.legs[l];
        let reason = if self.risk.killed() {
            Some(Reject::Killed)
        } else if self.risk.is_stale(leg.last_update, now) {
            Some(Reject::Stale)
        } else {
            None
        };
        let top = leg.book.top();
        let quote = match (reason, top) {
            (None, Some((bid, ask))) => {
                let mid = (bid + ask) as f64 * 0.5 * leg.inst.tick_f64();
                let q = (self.portfolio.position(l).qty - self.target(l)) as f64 / leg.order_lots as f64;
                let tau = self.session.time_left_s(now);
                leg.quoter.quote(&leg.inst, mid, q, leg.sigma.sigma(), tau, bid, ask)
            }
            _ => None,
        };
        let Some(quote) = quote else {
            self.risk.count(reason.unwrap_or(Reject::NoMarket));
            self.cancel_leg(l, out);
            return;
        };
        self.place(l, Side::Buy, quote.bid, top, now, out);
        self.place(l, Side::Sell, quote.ask, top, now, out);
    }

    /// Keeps, replaces or places the quote on one side of one leg.
    #[inline]
    fn place(&mut self, l: usize, side: Side, px: Px, top: Option<(Px, Px)>, now: Ts, out: &mut Commands) {
        let qty = self.legs[l].order_lots;
        let slot = side.idx();
        let resting = self.legs[l].quotes[slot].and_then(|id| self.orders.iter().position(|o| o.id == id));
        if let Some(i) = resting {
            let o = &self.orders[i];
            if (o.px - px).abs() < self.min_replace_ticks && o.qty == qty {
                return;
            }
        }
        // Check the replacement before touching the resting quote. Orders on this side,
        // the one about to be cancelled included, count until the venue confirms them
        // gone: it may fill first.
        let leg = &self.legs[l];
        let open_same_side = self.orders.iter().filter(|o| o.leg == l && o.side == side).map(|o| o.leaves).sum();
        let check = OrderCheck {
            inst: &leg.inst,
            side,
            px,
            qty,
            top,
            position: self.portfolio.position(l).qty,
            open_same_side,
            max_position: leg.max_position,
            open_orders: self.orders.len(),
            last_update: leg.last_update,
            now,
        };
        let verdict = self.risk.check(&check);
        if verdict == Err(Reject::RateLimit) && resting.is_some() {
            // Out of order rate: a slightly old quote beats none at all.
            return;
        }
        if let Some(i) = resting {
            let o = &mut self.orders[i];
            o.cancel_sent = true;
            let (id, inst) = (o.id, self.legs[l].id);
            self.emit(OrderCmd::Cancel { id, inst }, out);
            self.stats.cancels += 1;
        }
        self.legs[l].quotes[slot] = None;
        if verdict.is_err() || self.orders.is_full() || out.remaining_capacity() == 0 {
            return;
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        let id = self.id_prefix | self.next_seq as u64;
        let inst = self.legs[l].id;
        self.orders.push(Order { id, leg: l, side, px, qty, leaves: qty, cancel_sent: false });
        self.legs[l].quotes[slot] = Some(id);
        self.emit(OrderCmd::New(NewOrder { id, inst, side, px, qty, tif: Tif::PostOnly }), out);
        self.stats.orders += 1;
    }

    /// Cancels the resting quotes of one leg.
    #[inline]
    fn cancel_leg(&mut self, l: usize, out: &mut Commands) {
        for s in 0..2 {
            if let Some(id) = self.legs[l].quotes[s].take() {
                if let Some(o) = self.orders.iter_mut().find(|o| o.id == id) {
                    o.cancel_sent = true;
                }
                let inst = self.legs[l].id;
                self.emit(OrderCmd::Cancel { id, inst }, out);
                self.stats.cancels += 1;
            }
        }
    }

    #[inline]
    fn emit(&mut self, cmd: OrderCmd, out: &mut Commands) {
        if out.try_push(cmd).is_err() {
            self.stats.dropped_cmds += 1;
        }
    }

    #[inline]
    fn leg_of(&self, inst: InstId) -> Option<usize> {
        if inst == self.legs[LEG_Y].id {
            Some(LEG_Y)
        } else if inst == self.legs[LEG_X].id {
            Some(LEG_X)
        } else {
            None
        }
    }

    #[inline]
    fn target(&self, l: usize) -> Qty {
        let t = self.pairs.targets();
        if l == LEG_Y {
            t.y
        } else {
            t.x
        }
    }

    /// Mid of leg `l` in price units, if its book is two-sided.
    #[inline]
    pub fn mid(&self, l: usize) -> Option<f64> {
        let leg = &self.legs[l];
        leg.book.mid_ticks().map(|m| m * leg.inst.tick_f64())
    }

    /// Net PnL marked at the mids (a leg without a mid marks at its entry cost).
    pub fn net_pnl(&self) -> f64 {
        self.portfolio.net_pnl(&self.marks())
    }

    /// Mark prices per leg: the mid, or the average cost when there is no mid.
    pub fn marks(&self) -> [f64; 2] {
        [LEG_Y, LEG_X].map(|l| self.mid(l).unwrap_or(self.portfolio.position(l).avg_px))
    }

    /// The portfolio.
    pub fn portfolio(&self) -> &Portfolio<2> {
        &self.portfolio
    }

    /// The risk controller (limits, kill switch state, rejection counters).
    pub fn risk(&self) -> &Risk {
        &self.risk
    }

    /// Counters.
    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// The last accepted signal.
    pub fn last_signal(&self) -> Option<KalmanOutput> {
        self.last_signal
    }

    /// Current pair targets.
    pub fn targets(&self) -> Targets {
        self.pairs.targets()
    }

    /// Current spread position.
    pub fn spread_state(&self) -> SpreadState {
        self.pairs.state()
    }

    /// Pair entries so far.
    pub fn entries(&self) -> u64 {
        self.pairs.entries()
    }

    /// Orders sent and not yet finished.
    pub fn open_orders(&self) -> usize {
        self.orders.len()
    }

    /// Instrument of leg `l`.
    pub fn instrument(&self, l: usize) -> &Instrument {
        &self.legs[l].inst
    }

    /// Instrument id of leg `l` in the data source's table.
    pub fn instrument_id(&self, l: usize) -> InstId {
        self.legs[l].id
    }

    /// The book of leg `l`.
    pub fn book(&self, l: usize) -> &Book {
        &self.legs[l].book
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn instruments() -> Vec<Instrument> {
        let c = Config::builtin();
        vec![c.x.instrument(), c.y.instrument()]
    }

    fn ev(inst: InstId, kind: EventKind, px: Px, qty: Qty, ts: Ts) -> MarketEvent {
        MarketEvent { exch_ts: ts, local_ts: ts, px, qty, inst, kind, flags: MarketEvent::END_OF_BATCH }
    }

    /// Feeds a two-sided market for both legs at time `ts` (BTC id 0, ETH id 1).
    fn market(core: &mut Core, ts: Ts, btc: Px, eth: Px, out: &mut Commands) {
        for (i, mid) in [(0u16, btc), (1u16, eth)] {
            core.on_market(&ev(i, EventKind::BestBid, mid, 100_000, ts), ts, out);
            core.on_market(&ev(i, EventKind::BestAsk, mid + 1, 100_000, ts), ts, out);
        }
    }

    fn news(out: &Commands) -> Vec<NewOrder> {
        out.iter().filter_map(|c| if let OrderCmd::New(n) = c { Some(*n) } else { None }).collect()
    }

    #[test]
    fn quotes_both_legs_on_tick_inside_the_band() {
        let mut core = Core::new(&Config::builtin(), &instruments(), 7).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        let n = news(&out);
        assert_eq!(n.len(), 4, "{out:?}");
        for o in &n {
            let (bid, ask) = core.book(if o.inst == 1 { LEG_Y } else { LEG_X }).top().unwrap();
            match o.side {
                Side::Buy => assert!(o.px < ask),
                Side::Sell => assert!(o.px > bid),
            }
            assert_eq!(o.tif, Tif::PostOnly);
            assert_eq!(o.id >> 32, 7);
        }
    }

    #[test]
    fn small_moves_keep_quotes_large_moves_replace() {
        let mut core = Core::new(&Config::builtin(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        out.clear();
        market(&mut core, NS_PER_SEC + 1, 6_100_000, 260_000, &mut out);
        assert!(out.is_empty(), "unchanged market, unchanged quotes: {out:?}");
        market(&mut core, NS_PER_SEC + 2, 6_110_000, 260_000, &mut out);
        let cancels = out.iter().filter(|c| matches!(c, OrderCmd::Cancel { .. })).count();
        assert_eq!(cancels, 2, "{out:?}");
        assert_eq!(news(&out).len(), 2);
    }

    #[test]
    fn fills_update_position_and_skew_quotes() {
        let mut core = Core::new(&Config::builtin(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        let bid = news(&out).into_iter().find(|o| o.inst == 1 && o.side == Side::Buy).unwrap();
        let ask_before = news(&out).into_iter().find(|o| o.inst == 1 && o.side == Side::Sell).unwrap().px;
        out.clear();
        let fill = ExecReport {
            fee_base: 0.0,
            msg: crate::event::RejectMsg::new(),
            id: bid.id,
            inst: 1,
            side: Side::Buy,
            kind: ExecKind::Fill,
            px: bid.px,
            qty: bid.qty,
            leaves: 0,
            fee: 0.01,
            maker: true,
            code: 0,
            exch_ts: NS_PER_SEC,
        };
        core.on_exec(&fill, NS_PER_SEC, &mut out);
        assert_eq!(core.portfolio().position(LEG_Y).qty, bid.qty);
        assert!(news(&out).iter().any(|o| o.inst == 1 && o.side == Side::Buy), "the filled bid is replaced: {out:?}");
        // Long inventory: the new ask is no higher than before.
        if let Some(ask) = news(&out).into_iter().find(|o| o.side == Side::Sell) {
            assert!(ask.px <= ask_before);
        }
    }

    #[test]
    fn stale_leg_is_pulled_and_kill_cancels_all() {
        let mut core = Core::new(&Config::builtin(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        out.clear();
        core.on_timer(NS_PER_SEC + 10 * NS_PER_SEC, &mut out);
        assert_eq!(out.iter().filter(|c| matches!(c, OrderCmd::Cancel { .. })).count(), 4);
        assert!(core.risk().count_of(Reject::Stale) >= 2);
        out.clear();
        core.kill(&mut out);
        assert_eq!(out.as_slice(), &[OrderCmd::CancelAll]);
        out.clear();
        market(&mut core, 20 * NS_PER_SEC, 6_100_000, 260_000, &mut out);
        assert!(news(&out).is_empty());
        assert!(core.risk().count_of(Reject::Killed) > 0);
    }

    #[test]
    fn unknown_and_invalid_events_are_counted_not_fatal() {
        let mut core = Core::new(&Config::builtin(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        core.on_market(&ev(9, EventKind::BestBid, 1, 1, 0), 0, &mut out);
        core.on_market(&ev(0, EventKind::BestBid, -5, 1, 0), 0, &mut out);
        assert_eq!(core.stats().unknown_instrument, 1);
        assert_eq!(core.stats().bad_events, 1);
        assert!(out.is_empty());
    }

    #[test]
    fn config_must_match_the_data_instruments() {
        let mut inst = instruments();
        inst[0] = Instrument::new("BTCUSDT", "0.1".parse().unwrap(), "0.00001".parse().unwrap());
        assert!(matches!(Core::new(&Config::builtin(), &inst, 1), Err(CoreError::IncrementMismatch { .. })));
        assert!(matches!(Core::new(&Config::builtin(), &inst[..1], 1), Err(CoreError::UnknownSymbol(_))));
    }
}
