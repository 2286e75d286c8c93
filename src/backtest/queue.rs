//! Queue-position models: where our resting order stands in the FIFO queue of its price
//! level when the data shows only each level's total size (L2, market by price).
//!
//! An order joins the back of its level, so the size ahead of it starts as the level's
//! size. Two things move it forward:
//!
//! - *Trades at the level* (a sell aggressor at our bid price, a buy aggressor at our
//!   ask price) consume the front of the queue: `ahead -= traded`. What a trade prints
//!   beyond `ahead` fills us (see [`QueuePos::take_fill`]).
//! - *Level decreases* without a trade are cancellations, somewhere in the queue. Where
//!   they were is unknown; the models differ here.
//!
//! Increases join behind us and never move us back. In every model `ahead` never
//! exceeds the level's size after an update (`ahead = min(ahead, new_qty)`).
//!
//! # Models (as published in hftbacktest's documentation, nkaz001, "Queue Models")
//!
//! - [`RiskAverse`]: cancels are always behind us; only trades advance the queue. On a
//!   level change `ahead = min(ahead, new_qty)`. The most conservative estimate.
//! - [`ProbPower`] and [`ProbLog`] (Rigtorp's estimator): a decrease not explained by
//!   trades, `chg = prev - new - traded_at_level` (trades since the level's last
//!   update are subtracted so that they are not counted twice, once as a trade and again
//!   as the decrease the venue reports for it), is split between the queue ahead and
//!   the queue behind. With `f = ahead` (front) and `b = prev - ahead` (back), the
//!   share taken from behind is `p = g(b) / (g(b) + g(f))`:
//!
//!   ```text
//!   ahead' = ahead - (1 - p) * chg + min(b - p * chg, 0)
//!   ahead  = min(ahead', new)
//!   ```
//!
//!   (`min(b - p chg, 0)`: what the back cannot absorb comes from the front; and
//!   `ahead'` is floored at 0, because a cancel never fills us.) With
//!   `g(x) = x^n` ([`ProbPower`]) the front is eaten faster the nearer we are to the
//!   back; `n = 1` is proportional, larger `n` lets us advance only when most of the
//!   queue is ahead. `g(x) = ln(1 + x)` ([`ProbLog`]) flattens the dependence on size.
//!   If `chg <= 0` (an increase, or a decrease fully explained by trades) only the
//!   `min` applies.
//!
//! The powers and logarithms use [`det_ln`] / [`det_exp`] (basic IEEE arithmetic only),
//! so that a replay gives the same bits on every platform.
//!
//! The matching engine is generic over [`QueueModel`] (monomorphised, no dynamic
//! dispatch per event); [`QueueConfig`] picks one at run time and the driver matches on
//! it once, at the top of a run.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::detmath::{det_exp, det_ln};
use crate::types::Qty;

/// Where one of our orders stands in its level's queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueuePos {
    /// Size ahead of us in lots (fractional under the probabilistic models). Negative
    /// after a trade printed more than was ahead: the excess is ours to fill. `+inf`
    /// while unknown (after the book was cleared): the next size seen at our price
    /// seeds it.
    pub ahead: f64,
    /// Lots traded at our level since the level's size last changed.
    pub traded: f64,
}

impl QueuePos {
    /// Position unknown (after a [`crate::event::EventKind::Clear`]).
    pub const UNKNOWN: QueuePos = QueuePos { ahead: f64::INFINITY, traded: 0.0 };

    /// Takes the part of a trade that reached past the queue ahead: returns the lots
    /// that fill us now, at most `leaves`, and moves us to the front (`ahead = 0`).
    /// The excess is rounded to whole lots, nearest (the probabilistic models leave
    /// fractions).
    #[inline]
    pub fn take_fill(&mut self, leaves: Qty) -> Qty {
        if self.ahead >= 0.0 {
            return 0;
        }
        let excess = (-self.ahead).round();
        self.ahead = 0.0;
        if excess >= leaves as f64 {
            leaves
        } else {
            excess as Qty
        }
    }
}

/// How trades and level changes move an order's queue position. See the module docs
/// for the formulas.
pub trait QueueModel: Copy + Send + std::fmt::Debug {
    /// Position of an order joining the back of a level of `level_qty` lots.
    #[inline]
    fn place(&self, level_qty: Qty) -> QueuePos {
        QueuePos { ahead: level_qty as f64, traded: 0.0 }
    }

    /// A trade of `qty` lots at our level (aggressor on the other side).
    #[inline]
    fn trade(&self, pos: &mut QueuePos, qty: Qty) {
        pos.ahead -= qty as f64;
        pos.traded += qty as f64;
    }

    /// The level's size changed from `prev` to `new` lots. `pos.ahead` is finite.
    fn level_change(&self, pos: &mut QueuePos, prev: Qty, new: Qty);
}

/// Only trades advance the queue; cancels are assumed behind us.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RiskAverse;

impl QueueModel for RiskAverse {
    #[inline]
    fn level_change(&self, pos: &mut QueuePos, _prev: Qty, new: Qty) {
        pos.ahead = pos.ahead.min(new as f64);
        pos.traded = 0.0;
    }
}

/// Probabilistic model with `g(x) = x^n`: `p = b^n / (b^n + f^n)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbPower {
    n: f64,
}

impl ProbPower {
    /// The model with exponent `n` (`> 0`, finite; see [`QueueConfig::validate`]).
    pub fn new(n: f64) -> Self {
        ProbPower { n }
    }

    /// Share of a decrease taken from behind, `b^n / (b^n + f^n)`, computed as
    /// `1 / (1 + exp(n (ln f - ln b)))` so that large sizes do not overflow. `f <= 0`
    /// (we are at the front) gives 1, `b <= 0` (we are at the back) gives 0.
    #[inline]
    pub fn prob(&self, front: f64, back: f64) -> f64 {
        if front <= 0.0 {
            return 1.0;
        }
        if back <= 0.0 {
            return 0.0;
        }
        1.0 / (1.0 + det_exp(self.n * (det_ln(front) - det_ln(back))))
    }
}

impl QueueModel for ProbPower {
    #[inline]
    fn level_change(&self, pos: &mut QueuePos, prev: Qty, new: Qty) {
        prob_level_change(pos, prev, new, |f, b| self.prob(f, b));
    }
}

/// Probabilistic model with `g(x) = ln(1 + x)`: `p = ln(1+b) / (ln(1+b) + ln(1+f))`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProbLog;

impl ProbLog {
    /// Share of a decrease taken from behind. `f <= 0` gives 1, `b <= 0` gives 0.
    #[inline]
    pub fn prob(&self, front: f64, back: f64) -> f64 {
        if front <= 0.0 {
            return 1.0;
        }
        if back <= 0.0 {
            return 0.0;
        }
        let (lb, lf) = (det_ln(1.0 + back), det_ln(1.0 + front));
        lb / (lb + lf)
    }
}

impl QueueModel for ProbLog {
    #[inline]
    fn level_change(&self, pos: &mut QueuePos, prev: Qty, new: Qty) {
        prob_level_change(pos, prev, new, |f, b| self.prob(f, b));
    }
}

/// The probabilistic update shared by [`ProbPower`] and [`ProbLog`].
#[inline]
fn prob_level_change(pos: &mut QueuePos, prev: Qty, new: Qty, prob: impl Fn(f64, f64) -> f64) {
    let (prev, new) = (prev as f64, new as f64);
    let chg = prev - new - pos.traded;
    pos.traded = 0.0;
    if chg > 0.0 {
        let front = pos.ahead.max(0.0);
        let back = prev - front;
        let p = prob(front, back);
        let p = if p.is_finite() { p.clamp(0.0, 1.0) } else { 1.0 };
        // Cancels never fill us: the estimate stops at the front.
        pos.ahead = (pos.ahead - (1.0 - p) * chg + (back - p * chg).min(0.0)).max(0.0);
    }
    pos.ahead = pos.ahead.min(new);
}

/// The queue model of a backtest, from config `[backtest] queue = { kind = ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueConfig {
    /// `{ kind = "risk_averse" }`: [`RiskAverse`].
    RiskAverse {},
    /// `{ kind = "prob_power", n = 2.0 }`: [`ProbPower`].
    ProbPower {
        /// Exponent, `> 0`.
        n: f64,
    },
    /// `{ kind = "prob_log" }`: [`ProbLog`].
    ProbLog {},
}

impl Default for QueueConfig {
    /// `prob_power` with `n = 2` (hftbacktest's "square" model): cancels are split by
    /// queue position instead of all being put behind us, which is the risk-averse
    /// model's worst case. (With the built-in configuration and data set the quotes
    /// mostly rest 10 to 50 ticks behind the touch, at prices where no level is, and
    /// fill when the market moves through them, so the models give the same fills
    /// there; they differ for quotes at the touch.)
    fn default() -> Self {
        QueueConfig::ProbPower { n: 2.0 }
    }
}

/// A queue configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QueueError {
    /// `prob_power` needs a finite `n > 0`.
    #[error("queue model prob_power: n = {0} must be finite and > 0")]
    PowerExponent(f64),
}

impl QueueConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), QueueError> {
        match *self {
            QueueConfig::ProbPower { n } if !(n.is_finite() && n > 0.0) => Err(QueueError::PowerExponent(n)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pos(ahead: f64) -> QueuePos {
        QueuePos { ahead, traded: 0.0 }
    }

    #[test]
    fn joins_back_of_queue() {
        assert_eq!(RiskAverse.place(30), pos(30.0));
        assert_eq!(ProbPower::new(2.0).place(0), pos(0.0));
    }

    #[test]
    fn risk_averse_trades_advance_cancels_do_not() {
        let m = RiskAverse;
        let mut p = m.place(30);
        // 10 cancelled somewhere: assumed behind us.
        m.level_change(&mut p, 30, 20);
        assert_eq!(p.ahead, 20.0, "capped by the level: everything ahead is still there");
        m.level_change(&mut p, 20, 50);
        assert_eq!(p.ahead, 20.0, "joiners go behind us");
        m.trade(&mut p, 15);
        assert_eq!(p.ahead, 5.0);
        assert_eq!(p.take_fill(10), 0);
        m.trade(&mut p, 8);
        assert_eq!(p.take_fill(10), 3, "the trade's excess over the queue ahead fills us");
        assert_eq!(p.ahead, 0.0);
        m.trade(&mut p, 100);
        assert_eq!(p.take_fill(7), 7, "never more than leaves");
    }

    #[test]
    fn prob_power_closed_form() {
        // ahead 10, level 40 -> 30 with nothing traded: chg 10, front 10, back 30,
        // n = 2: p = 900 / (900 + 100) = 0.9; ahead' = 10 - 0.1 * 10 + min(30 - 9, 0) = 9.
        let m = ProbPower::new(2.0);
        assert!((m.prob(10.0, 30.0) - 0.9).abs() < 1e-12);
        let mut p = pos(10.0);
        m.level_change(&mut p, 40, 30);
        assert!((p.ahead - 9.0).abs() < 1e-12, "{}", p.ahead);
        // n = 1 is proportional: ahead 10 of 40, 20 cancelled: p = 30/40, ahead' = 10 - 0.25 * 20 = 5.
        let mut p = pos(10.0);
        ProbPower::new(1.0).level_change(&mut p, 40, 20);
        assert!((p.ahead - 5.0).abs() < 1e-12, "{}", p.ahead);
    }

    #[test]
    fn prob_log_closed_form() {
        // front 10, back 30: p = ln 31 / (ln 31 + ln 11).
        let m = ProbLog;
        let want = 31f64.ln() / (31f64.ln() + 11f64.ln());
        assert!((m.prob(10.0, 30.0) - want).abs() < 1e-12);
        let mut p = pos(10.0);
        m.level_change(&mut p, 40, 30);
        let expect = 10.0 - (1.0 - want) * 10.0;
        assert!((p.ahead - expect).abs() < 1e-12);
    }

    #[test]
    fn prob_back_exhausted_takes_from_front() {
        // ahead 35 of 40 (back 5), 20 cancelled, n = 1: p = 5/40 = 0.125.
        // ahead' = 35 - 0.875 * 20 + min(5 - 2.5, 0) = 17.5; capped by new 20: 17.5.
        let mut p = pos(35.0);
        ProbPower::new(1.0).level_change(&mut p, 40, 20);
        assert!((p.ahead - 17.5).abs() < 1e-12);
        // At the very back (back 0): everything cancelled comes from the front.
        let mut p = pos(40.0);
        ProbPower::new(3.0).level_change(&mut p, 40, 25);
        assert_eq!(p.ahead, 25.0);
        // At the front: nothing to gain.
        let mut p = pos(0.0);
        ProbLog.level_change(&mut p, 40, 25);
        assert_eq!(p.ahead, 0.0);
    }

    #[test]
    fn prob_subtracts_trades_from_the_next_decrease() {
        // ahead 10 of 40; 6 trade at the level, then the venue reports 40 -> 34: the
        // decrease is the trade, not a cancel: ahead stays 4.
        let m = ProbPower::new(2.0);
        let mut p = pos(10.0);
        m.trade(&mut p, 6);
        assert_eq!(p.ahead, 4.0);
        m.level_change(&mut p, 40, 34);
        assert_eq!(p.ahead, 4.0);
        assert_eq!(p.traded, 0.0, "the trade memory resets at each level update");
        // A decrease larger than the trade: only the rest counts as cancels.
        let mut p = pos(10.0);
        m.trade(&mut p, 6);
        m.level_change(&mut p, 40, 24); // chg = 16 - 6 = 10, front 4, back 36
        let pr = 36.0 * 36.0 / (36.0 * 36.0 + 16.0);
        assert!((p.ahead - (4.0 - (1.0 - pr) * 10.0)).abs() < 1e-12);
    }

    #[test]
    fn unknown_position_never_fills_by_queue() {
        let mut p = QueuePos::UNKNOWN;
        RiskAverse.trade(&mut p, 1_000_000);
        assert_eq!(p.take_fill(5), 0);
    }

    #[test]
    fn config_parses_and_validates() {
        let c: QueueConfig = toml::from_str("kind = \"prob_power\"\nn = 3.0").unwrap();
        assert_eq!(c, QueueConfig::ProbPower { n: 3.0 });
        let c: QueueConfig = toml::from_str("kind = \"risk_averse\"").unwrap();
        assert_eq!(c, QueueConfig::RiskAverse {});
        assert!(toml::from_str::<QueueConfig>("kind = \"prob_log\"\nn = 3.0").is_err(), "unknown field");
        assert!(toml::from_str::<QueueConfig>("kind = \"fifo\"").is_err());
        assert_eq!(QueueConfig::ProbPower { n: 0.0 }.validate(), Err(QueueError::PowerExponent(0.0)));
        assert!(QueueConfig::ProbPower { n: f64::NAN }.validate().is_err());
        assert!(QueueConfig::default().validate().is_ok());
    }

    proptest! {
        /// Whatever the sequence, ahead stays within [0, level] after each level
        /// update, and the probabilistic models never put us further back than the
        /// risk-averse one.
        #[test]
        fn ahead_bounded_and_prob_not_behind_risk_averse(
            start in 0i64..1_000,
            ops in prop::collection::vec((any::<bool>(), 0i64..1_000), 1..60),
            n in 0.2f64..5.0,
        ) {
            let (ra, pp, pl) = (RiskAverse, ProbPower::new(n), ProbLog);
            let (mut a, mut b, mut c) = (ra.place(start), pp.place(start), pl.place(start));
            let mut level = start;
            for (is_trade, v) in ops {
                if is_trade {
                    let q = v.min(level);
                    ra.trade(&mut a, q);
                    pp.trade(&mut b, q);
                    pl.trade(&mut c, q);
                    for p in [&mut a, &mut b, &mut c] { p.take_fill(Qty::MAX); }
                } else {
                    ra.level_change(&mut a, level, v);
                    pp.level_change(&mut b, level, v);
                    pl.level_change(&mut c, level, v);
                    level = v;
                    for p in [a, b, c] {
                        prop_assert!(p.ahead >= -1e-9 && p.ahead <= level as f64 + 1e-9, "{p:?} level {level}");
                    }
                }
                prop_assert!(b.ahead <= a.ahead + 1e-9 && c.ahead <= a.ahead + 1e-9, "{a:?} {b:?} {c:?}");
            }
        }
    }
}
