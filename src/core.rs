//! The strategy core: one deterministic state machine that knows nothing about sockets,
//! threads or files.
//!
//! ```text
//! on_market(ev) -> book -> (every sample_ms) Kalman -> z -> pair targets
//!                       -> per leg: A-S/GLFT quote, q = (pos - target)/size
//!                       -> risk check -> order diff -> OrderCmd
//! on_exec(rep)  -> order state, portfolio -> hedge target -> requote both legs
//! ```
//!
//! # Execution
//!
//! The signal sets the Y target; the X target is `-beta` times the Y leg's actual
//! position (`pairs.hedge = "fills"`, [`crate::signal::pairs::Hedge`]) or the planned hedge. Each leg is
//! quoted in one of two modes ([`QuoteMode`]):
//!
//! - `execute` (default): only the side that moves the position toward the target,
//!   sized `min(|target - position| - pending, order_qty)`, where `pending` is what
//!   other orders of that side (IOCs in flight, quotes awaiting their cancel) may
//!   still fill, so the leg can never overshoot its target and the last order is the
//!   remainder, not a whole quote. Nothing rests once the leg is at its target. The
//!   price is the A-S/GLFT model price for `q = (position - target) / order_qty` with
//!   `T - t` the time left on an execution horizon (`quote.horizon_secs`) that starts
//!   when the pair's targets change (a hedge that follows fills does not restart it).
//!   The A-S skew `q gamma sigma^2 (T - t)` is largest right after the signal, when the
//!   spread is widest and a fill is worth most: for a mean-reverting spread the edge
//!   decays with time, so leaning early is the right shape. At the horizon the rest is
//!   completed with IOC limit orders at the far touch (`quote.complete = "taker"`), or
//!   quoted on (`"none"`).
//! - `market_make`: both sides around the A-S/GLFT reservation price with the same
//!   `q`, on a rolling session of `quote.session_secs` (the market maker skewed toward
//!   its target that the engine was before this mode existed).
//!
//! Both drivers, live and replay, call the same methods with the same inputs, so a
//! backtest result is a statement about the code that trades. Time is passed in
//! ([`Clocks`]): the core never reads a clock. `now` drives the strategy (sampling,
//! volatility, sessions, horizons, the order rate); `local`, the driver's local
//! receive clock, judges staleness. They are one clock except in a live run with
//! `feed.clock = "exchange"`, where `now` is the feed's exchange clock, which stands
//! still while the feed stalls: a stall must still make the market stale.
//!
//! # Bad data
//!
//! Every market event is screened before it reaches the leg's book
//! ([`crate::book::Book::screen`]: positive price and size, price within
//! `risk.data_band_bps` of the last good mid) and its exchange time checked against
//! the local receive time (at most `risk.max_clock_jump_ms` ahead). A refused event is
//! counted per reason ([`CoreStats::data_rejects`]) and changes nothing: not the
//! book, not the exchange clock, not the leg's freshness. Only accepted events refresh
//! a leg (`last_update`); a `Clear` empties the book but does not make the leg fresh.
//!
//! # Marks
//!
//! A leg is marked at its mid, or after a gap at its last good mid (the book's
//! [`crate::book::Book::last_mid`]); only a leg that never had a mid is marked at its
//! average cost. A leg that had a mid and has had none for longer than `stale_ms`
//! counts one [`Reject::Unmarked`] risk event per gap, and its quotes are pulled (it
//! has no two-sided book to quote on, and no new signal is taken without both mids).
//! It does not trip the kill switch: a gap is a data fault that ends with the next
//! snapshot, while the kill switch is permanent (targets flattened for the session).
//! The loss check keeps running on the last good marks, and the first mid after the
//! gap re-marks the position.
//!
//! Order diff: a side keeps its resting quote while the new price is within
//! `min_replace_ticks` of it and the size is unchanged (a partly filled quote is
//! kept; one larger than wanted is replaced); otherwise one [`OrderCmd::Replace`]
//! cancels the old quote and sends the new one in one message, not waiting for the
//! cancel's acknowledgement. A quote the venue has not acknowledged yet (no `New`
//! report) is cancelled and the new one sent as two commands instead: it may still be
//! rejected (a post-only that would take), and a replace of an order the venue does
//! not have fails and takes the replacement with it. A quote that is only pulled (no replacement wanted, or
//! the replacement refused by the risk check) gets a plain `Cancel`; a side change is
//! never a replace (each side has its own quote). Orders awaiting a cancel, the old
//! half of a replace included, still count against the position and open-order limits
//! until the venue confirms them gone (a `Canceled`, `Fill` or other final report);
//! the new half counts from the moment it is sent. If the venue's cancel fails (the
//! old order filled first), the new order is rejected (`-2022`) and leaves the book.

use arrayvec::ArrayVec;

use crate::book::{Book, DataReject, DataRejects};
use crate::clock::{Stamp, StampClock};
use crate::event::{EventKind, ExecKind, ExecReport, MarketEvent, NewOrder, OrderCmd, OrderId, Tif};
use crate::portfolio::Portfolio;
use crate::quote::{Complete, QuoteError, QuoteMode, QuoteModel, QuoteParams, Quoter, Session, SigmaEstimator};
use crate::risk::{OrderCheck, Reject, Risk, RiskParamError, RiskParams};
use crate::signal::kalman::{Kalman, KalmanError, KalmanOutput, KalmanParams};
use crate::signal::pairs::{Pairs, PairsError, PairsParams, SpreadState, Targets};
use crate::types::{InstId, Instrument, Px, Qty, Side, Ts, NS_PER_SEC};

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
    /// Market events refused as bad data (counted, skipped): the total of
    /// [`CoreStats::data_rejects`].
    pub bad_events: u64,
    /// Refused market events per reason.
    pub data_rejects: DataRejects,
    /// Kalman updates accepted.
    pub signals: u64,
    /// Kalman updates skipped (non-finite input, non-positive Q).
    pub signals_skipped: u64,
    /// Times a leg's quote was recomputed.
    pub quote_updates: u64,
    /// New orders sent (the new halves of replaces included).
    pub orders: u64,
    /// Cancels sent (the cancel halves of replaces included).
    pub cancels: u64,
    /// Of [`Self::orders`], those sent as an [`OrderCmd::Replace`] of the resting quote.
    pub replaces: u64,
    /// Fill reports (partial or full).
    pub fills: u64,
    /// Execution reports for orders the core does not know.
    pub unknown_reports: u64,
    /// Commands dropped because the command buffer was full (a bug if ever > 0).
    pub dropped_cmds: u64,
}

/// The two clocks of a core call (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    /// The strategy clock: signal sampling, volatility, sessions, execution horizons
    /// and the order rate. The local clock, or the feed's exchange clock with
    /// `feed.clock = "exchange"`.
    pub now: Ts,
    /// The local receive clock: staleness, unmarked legs and the clock-jump check.
    pub local: Ts,
}

impl Clocks {
    /// One clock for both: the replay driver, and a live run on the wall clock.
    #[inline]
    pub const fn same(t: Ts) -> Clocks {
        Clocks { now: t, local: t }
    }
}

/// An order the core has sent and not yet seen finish.
#[derive(Debug, Clone, Copy)]
struct Order {
    id: OrderId,
    leg: usize,
    side: Side,
    px: Px,
    leaves: Qty,
    cancel_sent: bool,
    /// An IOC of an `execute` leg completing at its horizon (never a resting quote).
    ioc: bool,
    /// True once the venue has acknowledged the order (a `New` or fill report): only
    /// then is it replaced by an [`OrderCmd::Replace`].
    acked: bool,
    /// The resting order this one replaces (the old half of its `Replace`). If this
    /// order is rejected the venue may not have cancelled the old one (a request
    /// refused whole: rate limit, timestamp, timeout), so the old order's cancel is
    /// sent again on its own; a venue that had cancelled it answers "unknown order".
    replaces: Option<OrderId>,
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
    /// Local receive time of the last accepted market event (a `Clear` excepted),
    /// `Ts::MIN` before the first.
    last_update: Ts,
    /// Latest exchange time of the accepted events, `Ts::MIN` before the first.
    last_exch: Ts,
    /// Local time the leg's book stopped being two-sided after having been so;
    /// `Ts::MAX` while it has a mid (or never had one).
    unmarked_since: Ts,
    /// True once the current gap has been counted as [`Reject::Unmarked`].
    unmarked_counted: bool,
    /// The resting quote per side (`Side::idx`), if any.
    quotes: [Option<OrderId>; 2],
    mode: QuoteMode,
    /// Local time the pair's targets last changed: the start of the execution horizon.
    horizon_start: Ts,
}

/// One leg as the core trades it, from config `[y]` or `[x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LegParams {
    /// The instrument: its symbol, tick and lot must match the data's table.
    pub instrument: Instrument,
    /// The leg's quote-model parameters.
    pub quote: QuoteParams,
    /// Size of each quote, lots (> 0).
    pub order_lots: Qty,
    /// Absolute position limit, lots (> 0).
    pub max_position_lots: Qty,
    /// How the leg is quoted.
    pub mode: QuoteMode,
}

/// Everything a [`Core`] is built from: each component's own parameters and the
/// core's intervals, already in nanoseconds. Built once, before a run (the
/// configuration loader's `Config::core_params`); [`Core::new`] checks it, so a
/// `CoreParams` written by hand cannot make a core that panics or wraps.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreParams {
    /// The Y (dependent, [`LEG_Y`]) and X (hedge, [`LEG_X`]) legs, in that order.
    pub legs: [LegParams; 2],
    /// The Kalman filter of the hedge ratio.
    pub kalman: KalmanParams,
    /// Entry, exit and sizing of the pair.
    pub pairs: PairsParams,
    /// Pre-trade limits; `max_open_orders` at most [`MAX_ORDERS`].
    pub risk: RiskParams,
    /// The quote model of both legs.
    pub model: QuoteModel,
    /// Half-life of the volatility EWMA, seconds (finite, > 0).
    pub sigma_halflife_s: f64,
    /// Length of the rolling session of `market_make` legs, ns (> 0).
    pub session_ns: i64,
    /// Execution horizon of `execute` legs, ns (>= 0; 0: complete at once).
    pub horizon_ns: i64,
    /// What `execute` legs do with the remainder at the horizon.
    pub complete: Complete,
    /// Kalman update interval, ns of the strategy clock (>= 0; 0: every market batch).
    pub sample_ns: i64,
    /// Longest wait of a due sample for both legs' data, ns of local time (>= 0).
    pub refresh_ns: i64,
    /// A resting quote is replaced only when its price moves by at least this many
    /// ticks (>= 1) or its size changes.
    pub min_replace_ticks: i64,
}

impl CoreParams {
    /// Checks what the components' constructors do not: positive leg sizes, two
    /// distinct symbols, the pair and risk limits, the open-order capacity and the
    /// intervals. The quote, volatility and Kalman parameters are checked by their
    /// constructors in [`Core::new`].
    pub fn validate(&self) -> Result<(), CoreError> {
        for leg in &self.legs {
            for (param, lots) in [("order_lots", leg.order_lots), ("max_position_lots", leg.max_position_lots)] {
                if lots <= 0 {
                    return Err(CoreError::Lots { symbol: leg.instrument.symbol.clone(), param, lots });
                }
            }
        }
        if self.legs[LEG_Y].instrument.symbol == self.legs[LEG_X].instrument.symbol {
            return Err(CoreError::SameSymbol(self.legs[LEG_Y].instrument.symbol.clone()));
        }
        self.pairs.validate()?;
        self.risk.validate()?;
        if self.risk.max_open_orders > MAX_ORDERS {
            return Err(CoreError::TooManyOrders { max_open_orders: self.risk.max_open_orders });
        }
        for (param, ns, ok, requirement) in [
            ("session_ns", self.session_ns, self.session_ns > 0, "> 0"),
            ("horizon_ns", self.horizon_ns, self.horizon_ns >= 0, ">= 0"),
            ("sample_ns", self.sample_ns, self.sample_ns >= 0, ">= 0"),
            ("refresh_ns", self.refresh_ns, self.refresh_ns >= 0, ">= 0"),
        ] {
            if !ok {
                return Err(CoreError::Duration { param, ns, requirement });
            }
        }
        if self.min_replace_ticks < 1 {
            return Err(CoreError::MinReplaceTicks(self.min_replace_ticks));
        }
        Ok(())
    }
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
    horizon_ns: i64,
    complete: Complete,
    sample_ns: i64,
    refresh_ns: i64,
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
    /// The clock of the stage stamps, once [`Core::enable_stamps`] is called.
    stamp_clock: Option<StampClock>,
    /// The stages of the last batch end.
    stamps: CoreStamps,
    /// When the A-S quote of the leg being requoted was done (0: none computed).
    quote_done: Stamp,
}

/// Where the last batch end's time went inside the core, for the stage latencies of
/// the live driver. All zero unless [`Core::enable_stamps`] was called, and for events
/// that are not a batch end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreStamps {
    /// The book update was applied and the leg's volatility fed.
    pub book: Stamp,
    /// The signal was sampled (or the sample was not due) and the targets set.
    pub signal: Stamp,
    /// ns in the A-S / GLFT quote, summed over the legs requoted.
    pub quote_ns: u64,
    /// ns in risk checks and the order diff, summed over the legs requoted.
    pub risk_ns: u64,
}

/// Why a core could not be built: the data does not match the parameters, or a
/// parameter is out of range (each component's own error, unflattened).
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
    /// Both legs trade the same symbol.
    #[error("both legs trade {0}")]
    SameSymbol(String),
    /// A leg's quote size or position limit is not positive.
    #[error("{symbol}: {param} = {lots} must be > 0")]
    Lots {
        /// The leg's symbol.
        symbol: String,
        /// `order_lots` or `max_position_lots`.
        param: &'static str,
        /// The value, lots.
        lots: Qty,
    },
    /// The Kalman filter refused its parameters.
    #[error(transparent)]
    Kalman(#[from] KalmanError),
    /// The pair's thresholds or sizing are out of range.
    #[error(transparent)]
    Pairs(#[from] PairsError),
    /// A risk limit is out of range.
    #[error(transparent)]
    Risk(#[from] RiskParamError),
    /// More open orders allowed than the core can track.
    #[error("risk.max_open_orders = {max_open_orders} must be <= {MAX_ORDERS}")]
    TooManyOrders {
        /// The configured limit.
        max_open_orders: usize,
    },
    /// The quote model, the volatility estimator or the session refused its parameters.
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// An interval is out of range.
    #[error("{param} = {ns} ns must be {requirement}")]
    Duration {
        /// The field of [`CoreParams`].
        param: &'static str,
        /// Its value.
        ns: i64,
        /// What it must satisfy.
        requirement: &'static str,
    },
    /// The replace threshold is below one tick.
    #[error("min_replace_ticks = {0} must be >= 1")]
    MinReplaceTicks(i64),
}

impl Core {
    /// A core for `params` (see [`CoreParams::validate`]), trading its legs' symbols,
    /// whose ids are their index in `instruments` (the data source's table).
    /// `session_id` (e.g. the start time in seconds) makes client order ids unique
    /// across restarts.
    pub fn new(params: &CoreParams, instruments: &[Instrument], session_id: u32) -> Result<Core, CoreError> {
        params.validate()?;
        let leg = |lp: &LegParams| -> Result<Leg, CoreError> {
            let inst = lp.instrument.clone();
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
            Ok(Leg {
                id: id as InstId,
                inst,
                book: Book::default(),
                sigma: SigmaEstimator::new(lp.quote.sigma0, params.sigma_halflife_s, NS_PER_SEC)?,
                quoter: Quoter::new(params.model, lp.quote)?,
                order_lots: lp.order_lots,
                max_position: lp.max_position_lots,
                last_update: Ts::MIN,
                last_exch: Ts::MIN,
                unmarked_since: Ts::MAX,
                unmarked_counted: false,
                quotes: [None, None],
                mode: lp.mode,
                horizon_start: 0,
            })
        };
        let legs = [leg(&params.legs[LEG_Y])?, leg(&params.legs[LEG_X])?];
        let kalman = Kalman::new(&params.kalman)?;
        let portfolio = Portfolio::new([legs[LEG_Y].inst.clone(), legs[LEG_X].inst.clone()]);
        Ok(Core {
            legs,
            kalman,
            pairs: Pairs::new(params.pairs),
            risk: Risk::new(params.risk),
            portfolio,
            session: Session::new(0, params.session_ns)?,
            horizon_ns: params.horizon_ns,
            complete: params.complete,
            sample_ns: params.sample_ns,
            refresh_ns: params.refresh_ns,
            next_sample: Ts::MIN,
            last_signal: None,
            min_replace_ticks: params.min_replace_ticks,
            orders: ArrayVec::new(),
            id_prefix: (session_id as u64) << 32,
            next_seq: 0,
            quoting: true,
            last_reject: None,
            stamp_clock: None,
            stamps: CoreStamps::default(),
            quote_done: 0,
            stats: CoreStats::default(),
        })
    }

    /// Handles one market event at local time `now` (one clock, [`Clocks::same`]);
    /// appends any orders to `out`.
    #[inline]
    pub fn on_market(&mut self, ev: &MarketEvent, now: Ts, out: &mut Commands) {
        self.on_market_at(ev, Clocks::same(now), out);
    }

    /// Handles one market event at times `t`; appends any orders to `out`. A refused
    /// event (see the module docs) is counted and otherwise ignored.
    #[inline]
    pub fn on_market_at(&mut self, ev: &MarketEvent, t: Clocks, out: &mut Commands) {
        self.stats.events += 1;
        let Some(l) = self.leg_of(ev.inst) else {
            self.stats.unknown_instrument += 1;
            return;
        };
        let band = self.risk.params().data_band();
        let max_jump = self.risk.params().max_clock_jump_ns();
        let leg = &mut self.legs[l];
        let verdict = match leg.book.screen(ev, band) {
            // A Clear is the feed's own verdict on its data: never refused.
            Ok(()) if ev.kind != EventKind::Clear && ev.exch_ts.saturating_sub(t.local) > max_jump => {
                Err(DataReject::ClockJump)
            }
            v => v,
        };
        if let Err(reason) = verdict {
            self.stats.bad_events += 1;
            self.stats.data_rejects.count(reason);
            return;
        }
        leg.book.apply(ev);
        if ev.kind != EventKind::Clear {
            leg.last_update = t.local;
            leg.last_exch = leg.last_exch.max(ev.exch_ts);
        }
        if leg.book.top().is_some() {
            leg.unmarked_since = Ts::MAX;
            leg.unmarked_counted = false;
        } else if leg.unmarked_since == Ts::MAX && leg.book.last_mid().is_some() {
            leg.unmarked_since = t.local;
        }
        if !ev.is_batch_end() || ev.kind.is_trade() {
            return;
        }
        if let Some(mid) = leg.book.mid_ticks() {
            leg.sigma.on_mid(t.now, mid * leg.inst.tick_f64());
        }
        self.stamps = CoreStamps { book: self.stamp(), ..CoreStamps::default() };
        self.check_unmarked(t.local, out);
        let resampled = self.maybe_sample(t, out);
        self.stamps.signal = self.stamp();
        if resampled {
            self.requote(LEG_Y, t, out);
            self.requote(LEG_X, t, out);
        } else {
            self.requote(l, t, out);
        }
    }

    /// Turns the stage stamps on ([`Core::stamps`]): a few clock reads per batch end,
    /// for the live driver's stage latencies. Off by default (replays and benches).
    pub fn enable_stamps(&mut self, clock: StampClock) {
        self.stamp_clock = Some(clock);
    }

    /// The stages of the last batch end (all zero unless enabled).
    #[inline]
    pub fn stamps(&self) -> CoreStamps {
        self.stamps
    }

    /// A stage stamp now, or 0 when stamps are off.
    #[inline]
    fn stamp(&self) -> Stamp {
        self.stamp_clock.as_ref().map_or(0, StampClock::raw)
    }

    /// Requotes leg `l` ([`Core::requote_leg`]), timing its quote and risk stages when
    /// stamps are on.
    #[inline]
    fn requote(&mut self, l: usize, t: Clocks, out: &mut Commands) {
        if self.stamp_clock.is_none() {
            return self.requote_leg(l, t, out);
        }
        let start = self.stamp();
        self.quote_done = 0;
        self.requote_leg(l, t, out);
        let end = self.stamp();
        // No quote computed (stale, no market, flat target): all of it was risk.
        let quoted = if self.quote_done == 0 { start } else { self.quote_done };
        if let Some(c) = &self.stamp_clock {
            self.stamps.quote_ns += c.nanos(start, quoted);
            self.stamps.risk_ns += c.nanos(quoted, end);
        }
    }

    /// Handles an execution report at local time `now` (one clock, [`Clocks::same`]);
    /// appends any orders to `out`.
    #[inline]
    pub fn on_exec(&mut self, rep: &ExecReport, now: Ts, out: &mut Commands) {
        self.on_exec_at(rep, Clocks::same(now), out);
    }

    /// Handles an execution report at times `t`; appends any orders to `out`.
    #[inline]
    pub fn on_exec_at(&mut self, rep: &ExecReport, t: Clocks, out: &mut Commands) {
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
                self.orders[i].acked |= matches!(rep.kind, ExecKind::New | ExecKind::PartialFill);
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
                    if rep.kind == ExecKind::Rejected {
                        self.cancel_replaced(o, out);
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
            // A Y fill moves the X target when the hedge follows fills.
            self.requote(LEG_Y, t, out);
            self.requote(LEG_X, t, out);
        }
    }

    /// Periodic housekeeping at local time `now` (one clock, [`Clocks::same`]).
    #[inline]
    pub fn on_timer(&mut self, now: Ts, out: &mut Commands) {
        self.on_timer_at(Clocks::same(now), out);
    }

    /// Periodic housekeeping between events: pulls the quotes of legs whose data went
    /// stale (on the local clock, `t.local`) and counts legs left unmarked. Cheap; the
    /// drivers call it every loop turn or on a timer.
    #[inline]
    pub fn on_timer_at(&mut self, t: Clocks, out: &mut Commands) {
        for l in [LEG_Y, LEG_X] {
            let leg = &self.legs[l];
            if leg.quotes.iter().any(Option::is_some) && self.risk.is_stale(leg.last_update, t.local) {
                self.risk.count(Reject::Stale);
                self.cancel_leg(l, out);
            }
        }
        self.check_unmarked(t.local, out);
    }

    /// Counts a [`Reject::Unmarked`] risk event, once per gap, for each leg that has
    /// been without a mid for longer than `stale_ms` of local time, and pulls its
    /// quotes (see the module docs for why it does not trip the kill switch).
    #[inline]
    fn check_unmarked(&mut self, local: Ts, out: &mut Commands) {
        for l in [LEG_Y, LEG_X] {
            let leg = &self.legs[l];
            if leg.unmarked_counted || leg.unmarked_since == Ts::MAX || !self.risk.is_stale(leg.unmarked_since, local) {
                continue;
            }
            self.legs[l].unmarked_counted = true;
            self.risk.count(Reject::Unmarked);
            self.cancel_leg(l, out);
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
    fn maybe_sample(&mut self, t: Clocks, out: &mut Commands) -> bool {
        let now = t.now;
        if now < self.next_sample {
            return false;
        }
        // Refresh-time sampling (Barndorff-Nielsen, Hansen, Lunde & Shephard 2011,
        // "Multivariate realised kernels", J. Econometrics 162): both prices must be
        // from after the sampling time, or a move of one leg that the other has not
        // shown yet is read as a broken hedge ratio (the Epps effect).
        let due = self.next_sample;
        if self.legs.iter().any(|leg| leg.last_exch < due) && now < due.saturating_add(self.refresh_ns) {
            return false;
        }
        let (Some(y), Some(x)) = (self.mid(LEG_Y), self.mid(LEG_X)) else {
            return false;
        };
        // The books hold positive prices only; this keeps a NaN or zero mid (a broken
        // tick conversion, say) from ever reaching the filter.
        if !(x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite()) {
            self.stats.signals_skipped += 1;
            return false;
        }
        if self.legs.iter().any(|leg| self.risk.is_stale(leg.last_update, t.local)) {
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
        let hedge = self.kalman.hedge_ratio(x, y);
        let changed = self.pairs.on_signal(sig.z, hedge, y, yi, xi) != before;
        if changed {
            for leg in &mut self.legs {
                leg.horizon_start = now;
            }
        }
        changed
    }

    /// Recomputes leg `l`'s quotes and diffs them against the resting ones.
    #[inline]
    fn requote_leg(&mut self, l: usize, t: Clocks, out: &mut Commands) {
        if !self.quoting {
            self.cancel_leg(l, out);
            return;
        }
        self.stats.quote_updates += 1;
        let leg = &self.legs[l];
        let reason = if self.risk.killed() {
            Some(Reject::Killed)
        } else if self.risk.is_stale(leg.last_update, t.local) {
            Some(Reject::Stale)
        } else {
            None
        };
        let (None, Some((bid, ask))) = (reason, leg.book.top()) else {
            self.risk.count(reason.unwrap_or(Reject::NoMarket));
            self.cancel_leg(l, out);
            return;
        };
        let position = self.portfolio.position(l).qty;
        let target = self.target(l);
        let mid = (bid + ask) as f64 * 0.5 * leg.inst.tick_f64();
        let q = (position - target) as f64 / leg.order_lots as f64;
        let top = Some((bid, ask));
        match leg.mode {
            QuoteMode::MarketMake => {
                let tau = self.session.time_left_s(t.now);
                let Some(quote) = leg.quoter.quote(&leg.inst, mid, q, leg.sigma.sigma(), tau, bid, ask) else {
                    self.risk.count(Reject::NoMarket);
                    self.cancel_leg(l, out);
                    return;
                };
                self.quote_done = self.stamp();
                let lots = leg.order_lots;
                self.place(l, Side::Buy, quote.bid, lots, top, t, out);
                self.place(l, Side::Sell, quote.ask, lots, top, t, out);
            }
            QuoteMode::Execute => self.execute(l, target - position, q, mid, (bid, ask), t, out),
        }
    }

    /// Works leg `l` toward its target, `need = target - position` lots away (see the
    /// module docs): one passive quote on the side that reduces `|need|`, or IOCs at
    /// the far touch once the horizon has passed.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn execute(&mut self, l: usize, need: Qty, q: f64, mid: f64, top: (Px, Px), t: Clocks, out: &mut Commands) {
        if need == 0 {
            self.cancel_leg(l, out);
            return;
        }
        let side = if need > 0 { Side::Buy } else { Side::Sell };
        self.cancel_side(l, side.opposite(), out);
        let leg = &self.legs[l];
        let left_ns = self.horizon_ns.saturating_sub(t.now.saturating_sub(leg.horizon_start));
        if left_ns <= 0 && self.complete == Complete::Taker {
            // Completion: pull the passive quote, cross with the rest.
            self.cancel_side(l, side, out);
            let leg = &self.legs[l];
            if self.orders.iter().any(|o| o.leg == l && o.ioc) {
                return;
            }
            let lots = (need.abs() - self.pending(l, side, None)).min(leg.order_lots);
            if lots > 0 {
                let px = if side == Side::Buy { top.1 } else { top.0 };
                self.send(l, side, px, lots, Tif::Ioc, Some(top), t, out);
            }
            return;
        }
        let tau = left_ns.max(0) as f64 / NS_PER_SEC as f64;
        let Some(quote) = leg.quoter.quote(&leg.inst, mid, q, leg.sigma.sigma(), tau, top.0, top.1) else {
            self.risk.count(Reject::NoMarket);
            self.cancel_leg(l, out);
            return;
        };
        self.quote_done = self.stamp();
        let resting = leg.quotes[side.idx()];
        let lots = (need.abs() - self.pending(l, side, resting)).min(leg.order_lots);
        let px = if side == Side::Buy { quote.bid } else { quote.ask };
        self.place(l, side, px, lots, Some(top), t, out);
    }

    /// Leaves of leg `l`'s orders on `side` other than `except`: what they may still
    /// fill (IOCs in flight, quotes whose cancel is not confirmed).
    #[inline]
    fn pending(&self, l: usize, side: Side, except: Option<OrderId>) -> Qty {
        self.orders.iter().filter(|o| o.leg == l && o.side == side && Some(o.id) != except).map(|o| o.leaves).sum()
    }

    /// Keeps, replaces or places the quote of `qty` lots on one side of one leg; a
    /// `qty <= 0` only pulls the resting quote.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn place(&mut self, l: usize, side: Side, px: Px, qty: Qty, top: Option<(Px, Px)>, t: Clocks, out: &mut Commands) {
        if qty <= 0 {
            self.cancel_side(l, side, out);
            return;
        }
        let slot = side.idx();
        let resting = self.legs[l].quotes[slot].and_then(|id| self.orders.iter().position(|o| o.id == id));
        if let Some(i) = resting {
            let o = &self.orders[i];
            // A partly filled quote is kept; one larger than wanted is replaced.
            if (o.px - px).abs() < self.min_replace_ticks && o.leaves <= qty {
                return;
            }
        }
        // Check the replacement before touching the resting quote. Orders on this side,
        // the one about to be cancelled included, count until the venue confirms them
        // gone: it may fill first.
        let verdict = self.check(l, side, px, qty, top, t);
        if verdict == Err(Reject::RateLimit) && resting.is_some() {
            // Out of order rate: a slightly old quote beats none at all.
            return;
        }
        if verdict.is_err() {
            self.cancel_side(l, side, out);
            return;
        }
        // Replace only what the venue has acknowledged: a quote still in flight may be
        // rejected (a post-only that would take), and a replace of it would fail and
        // take its replacement down too (STOP_ON_FAILURE).
        let old = match resting {
            Some(i) if self.orders[i].acked => self.take_quote(l, side),
            _ => {
                self.cancel_side(l, side, out);
                None
            }
        };
        self.push_new(l, side, px, qty, Tif::PostOnly, old, out);
    }

    /// Sends a new order that is not a resting quote (an IOC), after the risk check.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        l: usize,
        side: Side,
        px: Px,
        qty: Qty,
        tif: Tif,
        top: Option<(Px, Px)>,
        t: Clocks,
        out: &mut Commands,
    ) {
        if self.check(l, side, px, qty, top, t).is_ok() {
            self.push_new(l, side, px, qty, tif, None, out);
        }
    }

    /// The pre-trade risk check of a new order on leg `l`.
    #[inline]
    fn check(
        &mut self,
        l: usize,
        side: Side,
        px: Px,
        qty: Qty,
        top: Option<(Px, Px)>,
        t: Clocks,
    ) -> Result<(), Reject> {
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
            now: t.now,
            local: t.local,
        };
        self.risk.check(&check)
    }

    /// Records and emits a new order that passed the risk check; a resting
    /// (post-only) order becomes the side's quote. With `replaces`, the old quote
    /// (already taken off its slot by [`Self::take_quote`]) is cancelled by the same
    /// message, an [`OrderCmd::Replace`]; if the new order cannot be recorded the old
    /// one is still cancelled.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn push_new(
        &mut self,
        l: usize,
        side: Side,
        px: Px,
        qty: Qty,
        tif: Tif,
        replaces: Option<OrderId>,
        out: &mut Commands,
    ) {
        if self.orders.is_full() || out.remaining_capacity() == 0 {
            if let Some(old) = replaces {
                let inst = self.legs[l].id;
                self.emit(OrderCmd::Cancel { id: old, inst }, out);
            }
            return;
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        let id = self.id_prefix | self.next_seq as u64;
        let inst = self.legs[l].id;
        let ioc = tif == Tif::Ioc;
        self.orders.push(Order { id, leg: l, side, px, leaves: qty, cancel_sent: false, ioc, acked: false, replaces });
        if !ioc {
            self.legs[l].quotes[side.idx()] = Some(id);
        }
        let new = NewOrder { id, inst, side, px, qty, tif };
        match replaces {
            Some(old) => {
                self.emit(OrderCmd::Replace { old, new }, out);
                self.stats.replaces += 1;
            }
            None => self.emit(OrderCmd::New(new), out),
        }
        self.stats.orders += 1;
    }

    /// Takes the resting quote off one side of one leg, marking its cancel as sent
    /// (the caller sends it): the order keeps counting against the limits until the
    /// venue confirms it gone.
    #[inline]
    fn take_quote(&mut self, l: usize, side: Side) -> Option<OrderId> {
        let id = self.legs[l].quotes[side.idx()].take()?;
        if let Some(o) = self.orders.iter_mut().find(|o| o.id == id) {
            o.cancel_sent = true;
        }
        self.stats.cancels += 1;
        Some(id)
    }

    /// After the new half of a replace was rejected: cancels the old order again if the
    /// venue has not confirmed it gone (see [`Order::replaces`]).
    #[inline]
    fn cancel_replaced(&mut self, rejected: Order, out: &mut Commands) {
        let Some(old) = rejected.replaces else { return };
        if self.orders.iter().any(|o| o.id == old) {
            let inst = self.legs[rejected.leg].id;
            self.stats.cancels += 1;
            self.emit(OrderCmd::Cancel { id: old, inst }, out);
        }
    }

    /// Cancels the resting quote on one side of one leg, if any.
    #[inline]
    fn cancel_side(&mut self, l: usize, side: Side, out: &mut Commands) {
        if let Some(id) = self.take_quote(l, side) {
            let inst = self.legs[l].id;
            self.emit(OrderCmd::Cancel { id, inst }, out);
        }
    }

    /// Cancels the resting quotes of one leg.
    #[inline]
    fn cancel_leg(&mut self, l: usize, out: &mut Commands) {
        self.cancel_side(l, Side::Buy, out);
        self.cancel_side(l, Side::Sell, out);
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

    /// The target of leg `l` in lots: the pair's Y target, and for X the hedge of
    /// Y's actual position (or the plan, see [`crate::signal::pairs::Hedge`]).
    #[inline]
    fn target(&self, l: usize) -> Qty {
        if l == LEG_Y {
            self.pairs.targets().y
        } else {
            let y_pos = self.portfolio.position(LEG_Y).qty;
            self.pairs.hedge_target(y_pos, &self.legs[LEG_Y].inst, &self.legs[LEG_X].inst)
        }
    }

    /// Target of leg `l` in lots (see [`Core::targets`] for the pair's plan).
    pub fn leg_target(&self, l: usize) -> Qty {
        self.target(l)
    }

    /// Mid of leg `l` in price units, if its book is two-sided.
    #[inline]
    pub fn mid(&self, l: usize) -> Option<f64> {
        let leg = &self.legs[l];
        leg.book.mid_ticks().map(|m| m * leg.inst.tick_f64())
    }

    /// True if leg `l`'s book is two-sided and its last accepted update is no older than
    /// `risk.stale_ms` at local receive time `local`: the leg may be quoted.
    #[inline]
    pub fn leg_fresh(&self, l: usize, local: Ts) -> bool {
        let leg = &self.legs[l];
        leg.book.mid_ticks().is_some() && !self.risk.is_stale(leg.last_update, local)
    }

    /// Net PnL at [`Core::marks`].
    pub fn net_pnl(&self) -> f64 {
        self.portfolio.net_pnl(&self.marks())
    }

    /// Mark prices per leg: the mid; during a gap the last good mid; the average cost
    /// only for a leg that never had a mid.
    pub fn marks(&self) -> [f64; 2] {
        [LEG_Y, LEG_X].map(|l| {
            let leg = &self.legs[l];
            match leg.book.last_mid() {
                Some(m) => m * leg.inst.tick_f64(),
                None => self.portfolio.position(l).avg_px,
            }
        })
    }

    /// The portfolio.
    pub fn portfolio(&self) -> &Portfolio<2> {
        &self.portfolio
    }

    /// Starts from positions carried over from earlier sessions (the position journal's,
    /// reconciled with the venue), before the first event: cost, realized PnL and fees
    /// as they were, so that risk limits and the loss limit count them.
    pub fn restore_positions(&mut self, positions: [crate::portfolio::Position; 2]) {
        for (l, p) in positions.into_iter().enumerate() {
            self.portfolio.restore(l, p);
        }
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
    use crate::config::Config;

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

    /// The core parameters of the built-in config.
    fn builtin() -> CoreParams {
        Config::builtin().core_params().unwrap()
    }

    /// The built-in config with both legs market making.
    fn mm() -> CoreParams {
        let cfg = Config::from_toml("extends = \"default\"\n[quote]\nmode = \"market_make\"\n", "mm.toml").unwrap();
        cfg.core_params().unwrap()
    }

    /// The new orders sent, the new halves of replaces included.
    fn news(out: &Commands) -> Vec<NewOrder> {
        out.iter()
            .filter_map(|c| match c {
                OrderCmd::New(n) | OrderCmd::Replace { new: n, .. } => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// The replaces sent, as (old id, new order).
    fn replaces(out: &Commands) -> Vec<(OrderId, NewOrder)> {
        out.iter()
            .filter_map(|c| if let OrderCmd::Replace { old, new } = c { Some((*old, *new)) } else { None })
            .collect()
    }

    fn report(id: OrderId, inst: InstId, side: Side, kind: ExecKind, leaves: Qty, code: i32) -> ExecReport {
        ExecReport {
            fee_base: 0.0,
            msg: crate::event::RejectMsg::new(),
            id,
            inst,
            side,
            kind,
            px: 0,
            qty: 0,
            leaves,
            fee: 0.0,
            maker: false,
            code,
            exch_ts: NS_PER_SEC,
        }
    }

    #[test]
    fn quotes_both_legs_on_tick_inside_the_band() {
        let mut core = Core::new(&mm(), &instruments(), 7).unwrap();
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

    /// The venue's `New` report for each of `orders`.
    fn ack(core: &mut Core, orders: &[NewOrder]) {
        let mut out = Commands::new();
        for o in orders {
            core.on_exec(&report(o.id, o.inst, o.side, ExecKind::New, o.qty, 0), NS_PER_SEC, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn an_unacknowledged_quote_is_cancelled_and_sent_again_not_replaced() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        out.clear();
        core.on_market(&ev(0, EventKind::BestAsk, 6_100_201, 100_000, NS_PER_SEC + 2), NS_PER_SEC + 2, &mut out);
        assert!(replaces(&out).is_empty(), "{out:?}");
        assert_eq!(out.iter().filter(|c| matches!(c, OrderCmd::Cancel { .. })).count(), 2, "{out:?}");
        assert_eq!(news(&out).len(), 2);
    }

    #[test]
    fn small_moves_keep_quotes_large_moves_replace() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        ack(&mut core, &news(&out));
        out.clear();
        market(&mut core, NS_PER_SEC + 1, 6_100_000, 260_000, &mut out);
        assert!(out.is_empty(), "unchanged market, unchanged quotes: {out:?}");
        // The BTC ask moves up 200 ticks: one book event, one requote of that leg.
        core.on_market(&ev(0, EventKind::BestAsk, 6_100_201, 100_000, NS_PER_SEC + 2), NS_PER_SEC + 2, &mut out);
        // The BTC leg moved: each of its two quotes is one Replace, nothing else.
        assert_eq!(out.len(), 2, "{out:?}");
        let r = replaces(&out);
        assert_eq!(r.len(), 2, "{out:?}");
        assert!(r.iter().all(|(old, new)| new.inst == 0 && *old != new.id && new.tif == Tif::PostOnly));
        assert_eq!(r.iter().map(|(_, n)| n.side).collect::<Vec<_>>(), vec![Side::Buy, Side::Sell]);
        assert_eq!((core.stats().replaces, core.stats().cancels), (2, 2));
    }

    #[test]
    fn a_replaced_quote_counts_against_the_limits_until_its_cancel_is_confirmed() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        let first = news(&out);
        ack(&mut core, &first);
        assert_eq!(core.open_orders(), 4);
        out.clear();
        core.on_market(&ev(0, EventKind::BestAsk, 6_100_201, 100_000, NS_PER_SEC + 2), NS_PER_SEC + 2, &mut out);
        let r = replaces(&out);
        assert_eq!(r.len(), 2);
        // The two new BTC quotes count from the send, the two old ones until the venue
        // says they are gone.
        assert_eq!(core.open_orders(), 6);
        let (old_bid, new_bid) = r[0];
        let (old_ask, new_ask) = r[1];
        assert!(first.iter().any(|o| o.id == old_bid) && first.iter().any(|o| o.id == old_ask));
        // The old bid could still fill: the buy-side exposure the risk check sees is
        // both bids, so a position limit of one bid's size refuses more bids.
        let pending =
            core.orders.iter().filter(|o| o.leg == LEG_X && o.side == Side::Buy).map(|o| o.leaves).sum::<Qty>();
        assert_eq!(pending, new_bid.qty * 2);
        out.clear();
        core.on_exec(&report(old_bid, 0, Side::Buy, ExecKind::Canceled, new_bid.qty, 0), NS_PER_SEC + 3, &mut out);
        assert_eq!(core.open_orders(), 5);
        // The old ask filled before the replace reached the venue: the cancel fails
        // and the venue rejects the new ask (-2022). The fill counts; the requote it
        // causes does not replace the new ask, which the venue has not acknowledged.
        let old_ask_order = first.iter().find(|o| o.id == old_ask).unwrap();
        out.clear();
        core.on_exec(&fill(old_ask_order, old_ask_order.qty, 0, NS_PER_SEC + 3), NS_PER_SEC + 3, &mut out);
        assert_eq!(core.portfolio().position(LEG_X).qty, -old_ask_order.qty);
        assert!(replaces(&out).iter().all(|(old, _)| *old != new_ask.id), "{out:?}");
        let open = core.open_orders();
        let mut rej =
            report(new_ask.id, 0, Side::Sell, ExecKind::Rejected, 0, crate::venue_codes::REJECT_REPLACE_FAILED);
        rej.px = new_ask.px;
        out.clear();
        core.on_exec(&rej, NS_PER_SEC + 3, &mut out);
        assert_eq!(core.open_orders(), open - 1, "the new ask is gone");
        assert_eq!(core.last_reject().map(|(c, _)| c), Some(-2022));
        assert!(out.is_empty(), "a reject alone sends nothing: {out:?}");
    }

    #[test]
    fn a_replace_refused_whole_cancels_the_old_quote_again() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        ack(&mut core, &news(&out));
        out.clear();
        core.on_market(&ev(0, EventKind::BestAsk, 6_100_201, 100_000, NS_PER_SEC + 2), NS_PER_SEC + 2, &mut out);
        let (old_bid, new_bid) = replaces(&out)[0];
        let cancels = core.stats().cancels;
        // The venue refused the whole request (rate limit): the old bid still rests,
        // so its cancel goes out again on its own.
        out.clear();
        core.on_exec(&report(new_bid.id, 0, Side::Buy, ExecKind::Rejected, 0, -1003), NS_PER_SEC + 3, &mut out);
        assert_eq!(out.as_slice(), &[OrderCmd::Cancel { id: old_bid, inst: 0 }]);
        assert_eq!(core.stats().cancels, cancels + 1);
        // The venue had cancelled it after all: "unknown order" ends it, nothing more is sent.
        out.clear();
        core.on_exec(&report(old_bid, 0, Side::Buy, ExecKind::Rejected, 0, -2011), NS_PER_SEC + 4, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert!(core.orders.iter().all(|o| o.id != old_bid));
    }

    #[test]
    fn fills_update_position_and_skew_quotes() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
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
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
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
        let mut core = Core::new(&builtin(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        core.on_market(&ev(9, EventKind::BestBid, 1, 1, 0), 0, &mut out);
        core.on_market(&ev(0, EventKind::BestBid, -5, 1, 0), 0, &mut out);
        assert_eq!(core.stats().unknown_instrument, 1);
        assert_eq!(core.stats().bad_events, 1);
        assert!(out.is_empty());
    }

    #[test]
    fn absurd_data_is_refused_per_reason_and_changes_nothing() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        let t = NS_PER_SEC;
        market(&mut core, t, 6_100_000, 260_000, &mut out);
        let (top, exch) = (core.book(LEG_Y).top(), core.legs[LEG_Y].last_exch);
        out.clear();
        let year_2100 = 4_102_444_800 * NS_PER_SEC;
        let bad = [
            ev(1, EventKind::BestBid, 0, 100_000, t + 1),
            ev(1, EventKind::BidLevel, 259_000, -1, t + 1),
            ev(1, EventKind::TradeSell, 259_000, 0, t + 1),
            // 92233720368547758.07 at a 0.01 tick.
            ev(1, EventKind::TradeBuy, i64::MAX, 5, t + 1),
            ev(1, EventKind::BestAsk, 2 * 260_000, 100_000, t + 1),
            ev(1, EventKind::BestBid, 260_000, 100_000, year_2100),
        ];
        for e in &bad {
            core.on_market(e, t + 1, &mut out);
        }
        let r = core.stats().data_rejects;
        assert_eq!((r.price, r.size, r.band, r.clock_jump), (1, 2, 2, 1));
        assert_eq!(core.stats().bad_events, 6);
        assert_eq!(core.book(LEG_Y).top(), top, "the book is untouched");
        assert_eq!(core.legs[LEG_Y].last_exch, exch, "the exchange clock did not follow the year 2100");
        assert_eq!(core.legs[LEG_Y].last_update, t, "refused events do not refresh the leg");
        assert!(out.is_empty(), "{out:?}");
        // In band, and the exchange clock a little ahead of ours: accepted.
        core.on_market(&ev(1, EventKind::BestAsk, 260_002, 100_000, t + 2 + NS_PER_SEC), t + 2, &mut out);
        assert_eq!(core.stats().bad_events, 6);
        assert_eq!(core.book(LEG_Y).top(), Some((260_000, 260_002)));
    }

    #[test]
    fn the_data_band_is_configurable() {
        let text = "extends = \"default\"\n[risk]\ndata_band_bps = 10.0\nmax_clock_jump_ms = 1000\n";
        let cfg = Config::from_toml(text, "band.toml").unwrap();
        let mut core = Core::new(&cfg.core_params().unwrap(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        // 0.1 % of the ETH mid (260 000.5 ticks) is 260.0005 ticks: 261.5 away is out,
        // 259.5 in.
        core.on_market(&ev(1, EventKind::BidLevel, 260_000 - 261, 1, NS_PER_SEC), NS_PER_SEC, &mut out);
        core.on_market(&ev(1, EventKind::BidLevel, 260_000 - 259, 1, NS_PER_SEC), NS_PER_SEC, &mut out);
        core.on_market(&ev(1, EventKind::BidLevel, 259_999, 1, 3 * NS_PER_SEC), NS_PER_SEC, &mut out);
        let r = core.stats().data_rejects;
        assert_eq!((r.band, r.clock_jump, core.stats().bad_events), (1, 1, 2));
    }

    #[test]
    fn refused_events_do_not_keep_a_leg_fresh() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        out.clear();
        // Only zero prices for 3 s (stale_ms = 2000): both legs go stale.
        let later = 4 * NS_PER_SEC;
        for i in [0u16, 1] {
            core.on_market(&ev(i, EventKind::BestBid, 0, 100_000, later), later, &mut out);
        }
        core.on_timer(later, &mut out);
        assert_eq!(out.iter().filter(|c| matches!(c, OrderCmd::Cancel { .. })).count(), 4, "{out:?}");
        assert_eq!(core.stats().data_rejects.price, 2);
    }

    #[test]
    fn staleness_runs_on_the_local_clock_when_the_strategy_clock_stands_still() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        out.clear();
        // An exchange clock during a stall: `now` does not move, local time does.
        core.on_timer_at(Clocks { now: NS_PER_SEC, local: 2 * NS_PER_SEC }, &mut out);
        assert!(out.is_empty(), "1 s of local time is not stale: {out:?}");
        core.on_timer_at(Clocks { now: NS_PER_SEC, local: 4 * NS_PER_SEC }, &mut out);
        assert_eq!(out.iter().filter(|c| matches!(c, OrderCmd::Cancel { .. })).count(), 4, "{out:?}");
        // And a strategy clock far ahead does not make a fresh leg stale.
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        out.clear();
        market(&mut core, NS_PER_SEC, 6_100_000, 260_000, &mut out);
        out.clear();
        core.on_timer_at(Clocks { now: 100 * NS_PER_SEC, local: NS_PER_SEC + 1 }, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_gap_marks_at_the_last_good_mid_and_counts_once_when_it_lasts() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        let t = NS_PER_SEC;
        market(&mut core, t, 6_100_000, 260_000, &mut out);
        let bid = news(&out).into_iter().find(|o| o.inst == 1 && o.side == Side::Buy).unwrap();
        out.clear();
        core.on_exec(&fill(&bid, bid.qty, 0, t), t, &mut out);
        out.clear();
        // ETH falls 1 %, then its feed drops: the book is cleared.
        market(&mut core, t + 1, 6_100_000, 257_400, &mut out);
        let marked = core.marks()[LEG_Y];
        assert!((marked - 2_574.005).abs() < 1e-9, "{marked}");
        let loss = core.net_pnl();
        assert!(loss < 0.0, "{loss}");
        out.clear();
        let clear = MarketEvent { flags: MarketEvent::END_OF_BATCH, ..ev(1, EventKind::Clear, 0, 0, t + 2) };
        core.on_market(&clear, t + 2, &mut out);
        assert_eq!(core.mid(LEG_Y), None);
        assert_eq!(core.marks()[LEG_Y], marked, "marked at the last good mid, not the entry cost");
        assert_eq!(core.net_pnl(), loss, "the loss stays visible to the kill switch");
        assert_eq!(core.legs[LEG_Y].last_update, t + 1, "a Clear does not make the leg fresh");
        // X keeps trading; Y stays unmarked past stale_ms (2 s): one risk event.
        core.on_timer(t + 3 * NS_PER_SEC, &mut out);
        assert_eq!(core.risk().count_of(Reject::Unmarked), 1);
        core.on_timer(t + 4 * NS_PER_SEC, &mut out);
        let x = ev(0, EventKind::BestBid, 6_100_000, 100_000, t + 5 * NS_PER_SEC);
        core.on_market(&x, t + 5 * NS_PER_SEC, &mut out);
        assert_eq!(core.risk().count_of(Reject::Unmarked), 1, "once per gap");
        assert!(!core.risk().killed(), "a gap does not trip the kill switch");
        assert!(core.legs[LEG_Y].quotes.iter().all(Option::is_none));
        // The book returns: marked again; a second long gap counts again.
        let t2 = t + 6 * NS_PER_SEC;
        market(&mut core, t2, 6_100_000, 257_000, &mut out);
        assert!((core.marks()[LEG_Y] - 2_570.005).abs() < 1e-9);
        core.on_market(&MarketEvent { exch_ts: t2, local_ts: t2, ..clear }, t2, &mut out);
        core.on_timer(t2 + 3 * NS_PER_SEC, &mut out);
        assert_eq!(core.risk().count_of(Reject::Unmarked), 2);
    }

    #[test]
    fn a_leg_that_never_had_a_mid_is_marked_at_its_cost_and_not_counted() {
        let mut core = Core::new(&mm(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        core.on_timer(10 * NS_PER_SEC, &mut out);
        assert_eq!(core.risk().count_of(Reject::Unmarked), 0);
        assert_eq!(core.marks(), [0.0, 0.0]);
    }

    #[test]
    fn config_must_match_the_data_instruments() {
        let mut inst = instruments();
        inst[0] = Instrument::new("BTCUSDT", "0.1".parse().unwrap(), "0.00001".parse().unwrap());
        assert!(matches!(Core::new(&builtin(), &inst, 1), Err(CoreError::IncrementMismatch { .. })));
        assert!(matches!(Core::new(&builtin(), &inst[..1], 1), Err(CoreError::UnknownSymbol(_))));
    }

    #[test]
    fn hand_made_params_are_refused_with_the_components_own_errors() {
        let ok = builtin();
        let new = |p: CoreParams| Core::new(&p, &instruments(), 1).map(|_| ()).unwrap_err();
        let mut p = ok.clone();
        p.legs[LEG_X].order_lots = 0;
        assert!(matches!(new(p), CoreError::Lots { param: "order_lots", lots: 0, .. }));
        let mut p = ok.clone();
        p.legs[LEG_X].instrument = p.legs[LEG_Y].instrument.clone();
        assert!(matches!(new(p), CoreError::SameSymbol(_)));
        let e = new(CoreParams { pairs: PairsParams { entry_z: -1.0, ..ok.pairs }, ..ok.clone() });
        assert!(matches!(e, CoreError::Pairs(PairsError::Invalid { key: "entry_z", .. })), "{e}");
        let e = new(CoreParams { risk: RiskParams { stale_ms: 0, ..ok.risk }, ..ok.clone() });
        assert!(matches!(e, CoreError::Risk(RiskParamError { key: "stale_ms", .. })), "{e}");
        let e = new(CoreParams { risk: RiskParams { max_open_orders: MAX_ORDERS + 1, ..ok.risk }, ..ok.clone() });
        assert_eq!(e, CoreError::TooManyOrders { max_open_orders: MAX_ORDERS + 1 });
        let e = new(CoreParams { kalman: KalmanParams { p0: -1.0, ..ok.kalman }, ..ok.clone() });
        assert!(matches!(e, CoreError::Kalman(_)), "{e}");
        let e = new(CoreParams { sigma_halflife_s: f64::NAN, ..ok.clone() });
        assert!(matches!(e, CoreError::Quote(_)), "{e}");
        let e = new(CoreParams { session_ns: 0, ..ok.clone() });
        assert!(matches!(e, CoreError::Duration { param: "session_ns", ns: 0, .. }), "{e}");
        let e = new(CoreParams { sample_ns: -1, ..ok.clone() });
        assert!(matches!(e, CoreError::Duration { param: "sample_ns", .. }), "{e}");
        assert_eq!(new(CoreParams { min_replace_ticks: 0, ..ok }), CoreError::MinReplaceTicks(0));
    }

    fn fill(o: &NewOrder, qty: Qty, leaves: Qty, ts: Ts) -> ExecReport {
        ExecReport {
            fee_base: 0.0,
            msg: crate::event::RejectMsg::new(),
            id: o.id,
            inst: o.inst,
            side: o.side,
            kind: if leaves == 0 { ExecKind::Fill } else { ExecKind::PartialFill },
            px: o.px,
            qty,
            leaves,
            fee: 0.0,
            maker: o.tif == Tif::PostOnly,
            code: 0,
            exch_ts: ts,
        }
    }

    /// An execute-mode core at a two-sided market, long the spread with a Y target of
    /// 0.75 ETH (7 500 lots; the quote size is 2 500) and an entry hedge of 0.0445 BTC
    /// per ETH.
    fn long_core(horizon_start: Ts) -> Core {
        let mut core = Core::new(&builtin(), &instruments(), 1).unwrap();
        let mut out = Commands::new();
        market(&mut core, horizon_start, 6_100_000, 260_000, &mut out);
        assert!(out.is_empty(), "flat and at target: nothing rests");
        core.pairs.force(SpreadState::Long, Targets { y: 7_500, x: -3_338 }, 0.0445);
        for leg in &mut core.legs {
            leg.horizon_start = horizon_start;
        }
        core
    }

    #[test]
    fn execute_quotes_only_the_side_toward_the_target() {
        let t = NS_PER_SEC;
        let mut core = long_core(t);
        let mut out = Commands::new();
        market(&mut core, t + 1, 6_100_000, 260_000, &mut out);
        let n = news(&out);
        assert_eq!(n.len(), 1, "Y buys, X has nothing to hedge yet: {out:?}");
        let (bid, ask) = core.book(LEG_Y).top().unwrap();
        assert_eq!((n[0].inst, n[0].side, n[0].qty, n[0].tif), (1, Side::Buy, 2_500, Tif::PostOnly));
        assert!(n[0].px <= bid && n[0].px < ask, "post-only at or behind the touch");
        assert_eq!(core.leg_target(LEG_X), 0, "the hedge follows fills");

        // A partial fill of the bid: X now hedges what Y holds; the bid is kept.
        out.clear();
        core.on_exec(&fill(&n[0], 1_000, 1_500, t + 2), t + 2, &mut out);
        assert_eq!(core.leg_target(LEG_X), -445, "-0.0445 * 0.1 ETH = -0.00445 BTC");
        let n2 = news(&out);
        assert_eq!(n2.len(), 1, "{out:?}");
        assert_eq!((n2[0].inst, n2[0].side, n2[0].qty), (0, Side::Sell, 445));
        assert!(!out.iter().any(|c| matches!(c, OrderCmd::Cancel { .. })), "the partly filled bid stays: {out:?}");

        // The rest of the bid fills: the next Y slice is the remainder, never more.
        out.clear();
        core.on_exec(&fill(&n[0], 1_500, 0, t + 3), t + 3, &mut out);
        let y = news(&out).into_iter().find(|o| o.inst == 1).expect("next Y slice");
        assert_eq!((y.side, y.qty), (Side::Buy, 2_500));
        out.clear();
        core.on_exec(&fill(&y, 2_500, 0, t + 4), t + 4, &mut out);
        let y = news(&out).into_iter().find(|o| o.inst == 1).expect("last Y slice");
        assert_eq!((y.side, y.qty), (Side::Buy, 2_500));
        out.clear();
        core.on_exec(&fill(&y, 2_000, 500, t + 5), t + 5, &mut out);
        assert_eq!(core.portfolio().position(LEG_Y).qty, 7_000);
        // 500 lots to go, resting already; with less to do the model bid is lower, so
        // it may be re-priced, but never for more than the 500 left.
        assert!(news(&out).iter().all(|o| o.inst != 1 || o.qty == 500), "{out:?}");
        out.clear();
        core.on_exec(&fill(&y, 500, 0, t + 6), t + 6, &mut out);
        assert_eq!(core.portfolio().position(LEG_Y).qty, 7_500);
        assert!(news(&out).iter().all(|o| o.inst != 1), "at target, Y rests nothing: {out:?}");
        assert_eq!(core.leg_target(LEG_X), -3_338);
    }

    #[test]
    fn execute_completes_with_ioc_at_the_horizon() {
        let t = NS_PER_SEC;
        let mut core = long_core(t);
        let mut out = Commands::new();
        market(&mut core, t + 1, 6_100_000, 260_000, &mut out);
        let bid = news(&out)[0];
        out.clear();
        let after = t + core.horizon_ns + 1;
        market(&mut core, after, 6_100_000, 260_000, &mut out);
        assert!(out.contains(&OrderCmd::Cancel { id: bid.id, inst: 1 }), "the passive bid is pulled: {out:?}");
        // The cancelled bid may still fill, so nothing more than the target minus it
        // is crossed: 7 500 - 2 500 = 5 000, in slices of 2 500.
        let ioc = news(&out);
        assert_eq!(ioc.len(), 1, "{out:?}");
        let (_, ask) = core.book(LEG_Y).top().unwrap();
        assert_eq!((ioc[0].side, ioc[0].qty, ioc[0].tif, ioc[0].px), (Side::Buy, 2_500, Tif::Ioc, ask));
        // One IOC at a time.
        out.clear();
        market(&mut core, after + 1, 6_100_000, 260_000, &mut out);
        assert!(news(&out).iter().all(|o| o.inst != 1), "{out:?}");
    }

    #[test]
    fn market_make_and_taker_completion_contradict() {
        let text = "extends = \"default\"\n[quote]\nmode = \"market_make\"\ncomplete = \"taker\"\n";
        let e = Config::from_toml(text, "c.toml").unwrap_err().to_string();
        assert!(e.contains("quote.complete") && e.contains("quote.mode"), "{e}");
        let text = "extends = \"default\"\n[x]\nmode = \"market_make\"\n[quote]\ncomplete = \"taker\"\n";
        let e = Config::from_toml(text, "c.toml").unwrap_err().to_string();
        assert!(e.contains("quote.complete") && e.contains("x.mode"), "{e}");
        assert!(Config::from_toml("extends = \"default\"\n[quote]\nmode = \"market_make\"\n", "c.toml").is_ok());
    }
}
