//! Pair targets from the z-score of the Kalman innovation.
//!
//! The spread is `y - beta*x - alpha`; the filter's innovation `e` is its deviation from
//! the model and `z = e / sqrt(Q)` its standardised size (E. Chan, *Algorithmic
//! Trading*, 2013, Example 3.3: enter when `e < -sqrt(Q)` or `e > sqrt(Q)`).
//!
//! - Flat: `z <= -entry` goes long the spread, `z >= entry` short.
//! - Long: back to flat once `z >= -exit` (reverted), or on a stop when `z <= -stop`.
//! - Short: symmetric.
//! - Stopped: no new entry until `|z| <= exit`, so a stop is not re-entered at once.
//!
//! Hysteresis comes from `entry > exit`: a z hovering at one threshold crosses only
//! that threshold and cannot flip the target back and forth. Long the spread is `+N`
//! units of Y and `-beta*N` of X, `N = notional / y_price`, sized once at entry and held
//! until exit, so the hedge does not churn with every beta update.

use serde::Deserialize;
use thiserror::Error;

use crate::types::{Instrument, Qty, Round};

/// Thresholds and sizing, from config `[pairs]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairsParams {
    /// |z| at which a position is opened.
    pub entry_z: f64,
    /// |z| at which it is closed (must be below `entry_z`; may be negative to hold
    /// through the mean).
    pub exit_z: f64,
    /// |z| at which a losing position is stopped out; `None` for no stop.
    #[serde(default)]
    pub stop_z: Option<f64>,
    /// Notional of the Y leg per position, in the quote asset.
    pub notional: f64,
    /// Signal samples to ignore while the filter converges.
    #[serde(default)]
    pub warmup: u32,
    /// How the X target is set (default: `fills`).
    #[serde(default)]
    pub hedge: Hedge,
}

/// Where the X leg's target comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hedge {
    /// `-beta` times the Y leg's actual position, rounded to lots, with beta taken at
    /// entry: the hedge follows the Y fills, so the unhedged notional stays small
    /// while Y is being worked, and nothing is hedged that was not bought.
    #[default]
    Fills,
    /// The planned `-beta N` from entry, whatever Y has filled.
    Plan,
}

/// Invalid pair parameters; the message names the key.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PairsError {
    /// A parameter is out of range.
    #[error("pairs.{key}: {msg}")]
    Invalid {
        /// Offending key.
        key: &'static str,
        /// What is wrong.
        msg: String,
    },
}

impl PairsParams {
    /// Checks ranges: `entry_z > 0`, `exit_z < entry_z`, `stop_z > entry_z`, positive
    /// finite notional.
    pub fn validate(&self) -> Result<(), PairsError> {
        let bad = |key, msg: String| Err(PairsError::Invalid { key, msg });
        if !(self.entry_z.is_finite() && self.entry_z > 0.0) {
            return bad("entry_z", format!("must be > 0, got {}", self.entry_z));
        }
        if !(self.exit_z.is_finite() && self.exit_z < self.entry_z && self.exit_z > -self.entry_z) {
            return bad("exit_z", format!("must be in (-entry_z, entry_z), got {}", self.exit_z));
        }
        if let Some(s) = self.stop_z {
            if !(s.is_finite() && s > self.entry_z) {
                return bad("stop_z", format!("must be > entry_z, got {s}"));
            }
        }
        if !(self.notional.is_finite() && self.notional > 0.0) {
            return bad("notional", format!("must be > 0, got {}", self.notional));
        }
        Ok(())
    }
}

/// Position in the spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpreadState {
    /// No position.
    Flat,
    /// Long the spread: long Y, short beta*X.
    Long,
    /// Short the spread: short Y, long beta*X.
    Short,
    /// Stopped out; waiting for |z| to come back inside `exit_z`.
    Stopped,
}

/// Target positions in lots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Targets {
    /// Y leg.
    pub y: Qty,
    /// X leg.
    pub x: Qty,
}

/// The pair state machine.
#[derive(Debug, Clone)]
pub struct Pairs {
    params: PairsParams,
    state: SpreadState,
    targets: Targets,
    /// Hedge ratio (units of X per unit of Y) at the last entry.
    entry_hedge: f64,
    samples: u32,
    entries: u64,
    stops: u64,
}

impl Pairs {
    /// A flat pair. `params` must have passed [`PairsParams::validate`].
    pub fn new(params: PairsParams) -> Self {
        Pairs {
            params,
            state: SpreadState::Flat,
            targets: Targets::default(),
            entry_hedge: 0.0,
            samples: 0,
            entries: 0,
            stops: 0,
        }
    }

    /// Feeds one signal sample: `z`, the hedge ratio `beta`, and the legs' prices in
    /// price units. Returns the (possibly unchanged) targets. Non-finite inputs leave
    /// the state alone.
    #[inline]
    pub fn on_signal(&mut self, z: f64, beta: f64, y_px: f64, y: &Instrument, x: &Instrument) -> Targets {
        if !(z.is_finite() && beta.is_finite() && y_px.is_finite() && y_px > 0.0) {
            return self.targets;
        }
        self.samples = self.samples.saturating_add(1);
        if self.samples <= self.params.warmup {
            return self.targets;
        }
        let p = &self.params;
        let stop = p.stop_z.unwrap_or(f64::INFINITY);
        let next = match self.state {
            SpreadState::Flat if z <= -p.entry_z => SpreadState::Long,
            SpreadState::Flat if z >= p.entry_z => SpreadState::Short,
            SpreadState::Long if z <= -stop => SpreadState::Stopped,
            SpreadState::Long if z >= -p.exit_z => SpreadState::Flat,
            SpreadState::Short if z >= stop => SpreadState::Stopped,
            SpreadState::Short if z <= p.exit_z => SpreadState::Flat,
            SpreadState::Stopped if z.abs() <= p.exit_z.abs() => SpreadState::Flat,
            s => s,
        };
        if next != self.state {
            self.state = next;
            self.targets = match next {
                SpreadState::Long => self.size(1.0, beta, y_px, y, x),
                SpreadState::Short => self.size(-1.0, beta, y_px, y, x),
                SpreadState::Flat | SpreadState::Stopped => Targets::default(),
            };
            match next {
                SpreadState::Long | SpreadState::Short => {
                    self.entries += 1;
                    self.entry_hedge = beta;
                }
                SpreadState::Stopped => self.stops += 1,
                SpreadState::Flat => {}
            }
        }
        self.targets
    }

    /// `sign*N` units of Y and `-sign*beta*N` of X, each rounded to the nearest lot.
    #[inline]
    fn size(&self, sign: f64, beta: f64, y_px: f64, y: &Instrument, x: &Instrument) -> Targets {
        let y_lots = y.qty_to_lots(self.params.notional / y_px, Round::Nearest).unwrap_or(0);
        let y_units = y.qty_f64(y_lots);
        let x_lots = x.qty_to_lots(beta * y_units, Round::Nearest).unwrap_or(0);
        Targets { y: (sign as i64) * y_lots, x: -(sign as i64) * x_lots }
    }

    /// The X target for a Y position of `y_pos` lots under [`Hedge::Fills`]:
    /// `-hedge * y_units`, rounded to the nearest lot of X, `hedge` the ratio at entry
    /// (so beta's later drift does not churn the hedge). Under [`Hedge::Plan`], the
    /// planned target.
    #[inline]
    pub fn hedge_target(&self, y_pos: Qty, y: &Instrument, x: &Instrument) -> Qty {
        match self.params.hedge {
            Hedge::Plan => self.targets.x,
            Hedge::Fills => {
                if y_pos == 0 {
                    return 0;
                }
                x.qty_to_lots(-self.entry_hedge * y.qty_f64(y_pos), Round::Nearest).unwrap_or(self.targets.x)
            }
        }
    }

    /// Current spread position.
    #[inline]
    pub fn state(&self) -> SpreadState {
        self.state
    }

    /// Current targets.
    #[inline]
    pub fn targets(&self) -> Targets {
        self.targets
    }

    /// Puts the pair in `state` with `targets` and entry hedge ratio `hedge`, as an
    /// entry would (tests of the layers above).
    #[cfg(test)]
    pub(crate) fn force(&mut self, state: SpreadState, targets: Targets, hedge: f64) {
        self.state = state;
        self.targets = targets;
        self.entry_hedge = hedge;
    }

    /// Forces flat targets (kill switch, session end).
    pub fn flatten(&mut self) {
        self.state = SpreadState::Flat;
        self.targets = Targets::default();
    }

    /// Positions opened so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Stops taken so far.
    pub fn stops(&self) -> u64 {
        self.stops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn legs() -> (Instrument, Instrument) {
        let y = Instrument::new("ETHUSDT", "0.01".parse().unwrap(), "0.0001".parse().unwrap());
        let x = Instrument::new("BTCUSDT", "0.01".parse().unwrap(), "0.00001".parse().unwrap());
        (y, x)
    }

    fn params() -> PairsParams {
        PairsParams { entry_z: 2.0, exit_z: 0.5, stop_z: Some(4.0), notional: 10_000.0, warmup: 0, hedge: Hedge::Plan }
    }

    #[test]
    fn enters_exits_and_sizes_the_hedge() {
        let (y, x) = legs();
        let mut p = Pairs::new(params());
        assert_eq!(p.on_signal(-1.9, 0.04, 2500.0, &y, &x), Targets::default());
        let t = p.on_signal(-2.1, 0.04, 2500.0, &y, &x);
        assert_eq!(p.state(), SpreadState::Long);
        // 10_000 / 2500 = 4 ETH = 40_000 lots; hedge 0.04 * 4 = 0.16 BTC = 16_000 lots.
        assert_eq!(t, Targets { y: 40_000, x: -16_000 });
        // Sized at entry: a new beta does not move the targets.
        assert_eq!(p.on_signal(-1.0, 0.05, 2400.0, &y, &x), t);
        assert_eq!(p.on_signal(-0.4, 0.05, 2400.0, &y, &x), Targets::default());
        assert_eq!(p.state(), SpreadState::Flat);
        let t = p.on_signal(2.5, 0.04, 2500.0, &y, &x);
        assert_eq!(t, Targets { y: -40_000, x: 16_000 });
        assert_eq!(p.entries(), 2);
    }

    #[test]
    fn stop_waits_for_the_spread_to_come_back() {
        let (y, x) = legs();
        let mut p = Pairs::new(params());
        p.on_signal(3.0, 0.04, 2500.0, &y, &x);
        p.on_signal(4.5, 0.04, 2500.0, &y, &x);
        assert_eq!(p.state(), SpreadState::Stopped);
        assert_eq!(p.targets(), Targets::default());
        p.on_signal(3.0, 0.04, 2500.0, &y, &x);
        assert_eq!(p.state(), SpreadState::Stopped, "no re-entry straight after a stop");
        p.on_signal(0.2, 0.04, 2500.0, &y, &x);
        assert_eq!(p.state(), SpreadState::Flat);
        assert_eq!(p.stops(), 1);
    }

    #[test]
    fn warmup_and_bad_inputs_hold_state() {
        let (y, x) = legs();
        let mut p = Pairs::new(PairsParams { warmup: 2, ..params() });
        p.on_signal(-5.0, 0.04, 2500.0, &y, &x);
        p.on_signal(-5.0, 0.04, 2500.0, &y, &x);
        assert_eq!(p.state(), SpreadState::Flat);
        p.on_signal(f64::NAN, 0.04, 2500.0, &y, &x);
        p.on_signal(-3.0, f64::INFINITY, 2500.0, &y, &x);
        assert_eq!(p.state(), SpreadState::Flat);
        p.on_signal(-3.0, 0.04, 2500.0, &y, &x);
        assert_eq!(p.state(), SpreadState::Long);
    }

    #[test]
    fn hedge_follows_the_fills_with_the_entry_ratio() {
        let (y, x) = legs();
        let mut p = Pairs::new(PairsParams { hedge: Hedge::Fills, ..params() });
        p.on_signal(-2.1, 0.04, 2500.0, &y, &x);
        assert_eq!(p.targets(), Targets { y: 40_000, x: -16_000 }, "the plan is still sized");
        // 1 ETH filled (10 000 lots): hedge 0.04 BTC = 4 000 lots, whatever beta does now.
        assert_eq!(p.hedge_target(10_000, &y, &x), -4_000);
        p.on_signal(-1.0, 0.05, 2400.0, &y, &x);
        assert_eq!(p.hedge_target(10_000, &y, &x), -4_000);
        assert_eq!(p.hedge_target(0, &y, &x), 0, "nothing bought, nothing hedged");
        // Rounds to the nearest lot: 0.04 * 0.0015 ETH = 0.00006 BTC = 6 lots; 0.04 *
        // 0.0001 ETH = 0.4 lots -> 0.
        assert_eq!(p.hedge_target(15, &y, &x), -6);
        assert_eq!(p.hedge_target(1, &y, &x), 0);
        let plan = Pairs::new(params());
        assert_eq!(plan.hedge_target(10_000, &y, &x), 0, "plan: the flat pair's planned target");
    }

    #[test]
    fn validation_names_the_key() {
        let e = PairsParams { exit_z: 3.0, ..params() }.validate().unwrap_err();
        assert!(e.to_string().starts_with("pairs.exit_z"), "{e}");
        let e = PairsParams { notional: f64::NAN, ..params() }.validate().unwrap_err();
        assert!(e.to_string().starts_with("pairs.notional"), "{e}");
    }

    proptest! {
        /// Hysteresis: z oscillating in a band narrower than entry - exit around either
        /// threshold changes the state at most once.
        #[test]
        fn no_flapping_at_a_threshold(center in prop::sample::select(vec![2.0f64, 0.5, -0.5, -2.0]),
                                      zs in prop::collection::vec(-0.7f64..0.7, 1..200)) {
            let (y, x) = legs();
            let mut p = Pairs::new(PairsParams { stop_z: None, ..params() });
            let mut changes = 0;
            let mut last = p.state();
            for dz in zs {
                p.on_signal(center + dz, 0.04, 2500.0, &y, &x);
                if p.state() != last { changes += 1; last = p.state(); }
            }
            prop_assert!(changes <= 1, "{changes} changes around {center}");
        }
    }
}
