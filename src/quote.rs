//! The execution quote model, per leg: where to rest the passive bid and ask of one
//! instrument given its mid, our inventory, its volatility and the time left.
//!
//! Two models are available ([`QuoteModel`]):
//!
//! * **Avellaneda-Stoikov** (Avellaneda & Stoikov 2008, "High-frequency trading in a
//!   limit order book", Quantitative Finance 8(3), eqs. (29)-(30)): the reservation
//!   price `r = s - q*gamma*sigma^2*(T-t)` and the total spread
//!   `gamma*sigma^2*(T-t) + (2/gamma)*ln(1 + gamma/k)`, quoted symmetrically around `r`.
//!   It needs a finite horizon, supplied by a rolling [`Session`].
//! * **GLFT** (Gueant, Lehalle & Fernandez-Tapia 2013, "Dealing with the inventory risk:
//!   a solution to the market making problem", Math. Financ. Econ. 7(4); closed-form
//!   asymptotic approximation as written in Gueant 2017, "Optimal market making",
//!   Applied Mathematical Finance 24(2), and in hftbacktest's GLFT tutorial): with
//!   `xi = gamma` and the order size `Delta = 1`,
//!   `c1 = (1/(xi*Delta)) * ln(1 + xi*Delta/k)`,
//!   `c2 = sqrt(gamma/(2*A*Delta*k) * (1 + xi*Delta/k)^(k/(xi*Delta) + 1))`,
//!   `half_spread = c1 + Delta/2*sigma*c2`, `skew = sigma*c2`, bid depth
//!   `half_spread + skew*q`, ask depth `half_spread - skew*q`. It has no horizon.
//!
//! Both share one shape, which is how [`Quoter`] computes them: a reservation price
//! `r = s - q*I` and a half spread `h = c1 + I/2`, where `c1 = (1/gamma)*ln(1 + gamma/k)`
//! in both models and the inventory-risk term `I` is `gamma*sigma^2*(T-t)` (A-S) or
//! `sigma*c2` (GLFT). The model bid is `r - h`, the model ask `r + h`.
//!
//! Units: `s` (mid) and prices in price units, `sigma` in price units per
//! sqrt(second) (see [`SigmaEstimator`]), `T-t` in seconds, `k` per price unit, `A` in
//! orders per second, `gamma` per price unit per order unit, and `q` the inventory in
//! units of the quote size (position minus target, divided by the order size), as an
//! `f64`. Model prices meet the tick grid once, in [`Quoter::quote`]: the bid rounds
//! down and the ask up, so rounding only ever widens the quote.

use serde::Deserialize;
use thiserror::Error;

use crate::types::{Instrument, Px, Round, Ts, NS_PER_SEC};

/// Errors from quote-model and volatility-estimator parameters.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum QuoteError {
    /// A parameter is out of its domain; the message names the field.
    #[error("quote parameter `{field}` must be {requirement}, got {value}")]
    InvalidParam {
        /// Name of the offending field (as spelled in the config).
        field: &'static str,
        /// What the field must satisfy, e.g. `finite and > 0`.
        requirement: &'static str,
        /// The value given.
        value: f64,
    },
    /// The parameters are each valid but their combination overflows a model
    /// coefficient (e.g. GLFT's `(1 + gamma/k)^(k/gamma + 1)` for `gamma >> k`).
    #[error("quote parameters give a non-finite `{0}` coefficient")]
    NonFinite(&'static str),
}

/// Which closed-form quoting model to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuoteModel {
    /// Avellaneda & Stoikov (2008): finite horizon, needs `T-t`.
    As,
    /// Gueant, Lehalle & Fernandez-Tapia (2013): infinite-horizon asymptotics, needs `A`.
    Glft,
}

/// How a leg is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuoteMode {
    /// Only the side that moves the position toward the target, sized
    /// `min(|position - target|, order_qty)`; nothing once at the target.
    #[default]
    Execute,
    /// Both sides around the target, every time (a market maker skewed by the target).
    MarketMake,
}

/// What an `execute` leg does with what is left at the end of its horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Complete {
    /// Cross the spread with IOC limit orders at the far touch.
    #[default]
    Taker,
    /// Keep quoting passively.
    None,
}

/// Parameters of the quote model, as read from the config.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteParams {
    /// Risk aversion `gamma` (> 0), per price unit per order unit: scales the inventory
    /// skew and, through `(1/gamma)*ln(1 + gamma/k)`, the base spread.
    pub gamma: f64,
    /// Order-book liquidity `k` (> 0), per price unit: fill intensity decays as
    /// `A*exp(-k*depth)`, so a larger `k` means a tighter spread.
    pub k: f64,
    /// GLFT arrival intensity `A` (> 0 for GLFT), orders per second at zero depth.
    /// Unused by Avellaneda-Stoikov; defaults to 0.
    #[serde(default)]
    pub a: f64,
    /// Initial volatility `sigma` (>= 0), price units per sqrt(second), used until the
    /// [`SigmaEstimator`] has samples.
    pub sigma0: f64,
}

#[inline]
fn check(field: &'static str, value: f64, ok: bool, requirement: &'static str) -> Result<(), QuoteError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(QuoteError::InvalidParam { field, requirement, value })
    }
}

impl QuoteParams {
    /// Checks every field for `model`: `gamma > 0`, `k > 0`, `sigma0 >= 0`, `a >= 0`
    /// (and `a > 0` for GLFT, whose `c2` divides by it), all finite. The error names
    /// the first offending field.
    pub fn validate(&self, model: QuoteModel) -> Result<(), QuoteError> {
        check("gamma", self.gamma, self.gamma > 0.0, "finite and > 0")?;
        check("k", self.k, self.k > 0.0, "finite and > 0")?;
        check("sigma0", self.sigma0, self.sigma0 >= 0.0, "finite and >= 0")?;
        match model {
            QuoteModel::As => check("a", self.a, self.a >= 0.0, "finite and >= 0"),
            QuoteModel::Glft => check("a", self.a, self.a > 0.0, "finite and > 0 for glft"),
        }
    }
}

/// GLFT coefficients `(c1, c2)` for `xi = gamma` and `Delta = 1` (Gueant 2017; see the
/// module docs): `c1 = (1/gamma)*ln(1 + gamma/k)` and
/// `c2 = sqrt(gamma/(2*A*k) * (1 + gamma/k)^(k/gamma + 1))`.
///
/// `ln_1p` keeps `c1` exact for `gamma << k`, where `ln(1 + gamma/k)` would cancel.
pub fn glft_coeffs(gamma: f64, k: f64, a: f64) -> (f64, f64) {
    let x = gamma / k;
    let c1 = x.ln_1p() / gamma;
    // (1 + x)^(1/x + 1) = exp((1/x + 1) * ln(1 + x)), again via ln_1p.
    let growth = ((1.0 / x + 1.0) * x.ln_1p()).exp();
    let c2 = (gamma / (2.0 * a * k) * growth).sqrt();
    (c1, c2)
}

/// A two-sided quote on the tick grid of its instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Bid price in ticks.
    pub bid: Px,
    /// Ask price in ticks; always `> bid`.
    pub ask: Px,
}

/// A validated quote model with its constant coefficients precomputed, so that
/// [`Quoter::quote`] is a handful of multiplies: no `ln`, `pow` or allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quoter {
    model: QuoteModel,
    params: QuoteParams,
    /// `(1/gamma)*ln(1 + gamma/k)`: the half spread at zero inventory risk (both models).
    c1: f64,
    /// GLFT `c2` (0 for A-S).
    c2: f64,
}

impl Quoter {
    /// A quoter for `model` with `params`, after [`QuoteParams::validate`]; fails with
    /// [`QuoteError::NonFinite`] if a coefficient overflows.
    pub fn new(model: QuoteModel, params: QuoteParams) -> Result<Self, QuoteError> {
        params.validate(model)?;
        let (c1, c2) = match model {
            QuoteModel::As => ((params.gamma / params.k).ln_1p() / params.gamma, 0.0),
            QuoteModel::Glft => glft_coeffs(params.gamma, params.k, params.a),
        };
        if !(c1.is_finite() && c1 > 0.0) {
            return Err(QuoteError::NonFinite("c1"));
        }
        if !c2.is_finite() {
            return Err(QuoteError::NonFinite("c2"));
        }
        Ok(Quoter { model, params, c1, c2 })
    }

    /// The model.
    #[inline]
    pub fn model(&self) -> QuoteModel {
        self.model
    }

    /// The parameters.
    #[inline]
    pub fn params(&self) -> &QuoteParams {
        &self.params
    }

    /// The inventory-risk term `I`: `gamma*sigma^2*(T-t)` for A-S, `sigma*c2` for GLFT
    /// (which ignores `tau_s`). The reservation price moves by `I` per unit of `q`.
    #[inline]
    fn inventory_term(&self, sigma: f64, tau_s: f64) -> f64 {
        match self.model {
            QuoteModel::As => self.params.gamma * sigma * sigma * tau_s,
            QuoteModel::Glft => sigma * self.c2,
        }
    }

    /// Reservation price `r = s - q*I`, the midpoint of the model quotes. For A-S this
    /// is Avellaneda-Stoikov's `r = s - q*gamma*sigma^2*(T-t)`; for GLFT it is
    /// `s - q*sigma*c2` (`tau_s` unused).
    #[inline]
    pub fn reservation_price(&self, mid: f64, q: f64, sigma: f64, tau_s: f64) -> f64 {
        mid - q * self.inventory_term(sigma, tau_s)
    }

    /// Total model spread `ask - bid = 2*c1 + I`. For A-S this is Avellaneda-Stoikov's
    /// `gamma*sigma^2*(T-t) + (2/gamma)*ln(1 + gamma/k)`; for GLFT it is
    /// `2*half_spread = 2*c1 + sigma*c2` (`tau_s` unused). Independent of inventory.
    #[inline]
    pub fn spread(&self, sigma: f64, tau_s: f64) -> f64 {
        2.0 * self.c1 + self.inventory_term(sigma, tau_s)
    }

    /// Unrounded model `(bid, ask)` in price units: `r -/+ spread/2`. No input checks:
    /// non-finite inputs give non-finite prices.
    #[inline]
    pub fn model_prices(&self, mid: f64, q: f64, sigma: f64, tau_s: f64) -> (f64, f64) {
        let inv = self.inventory_term(sigma, tau_s);
        let r = mid - q * inv;
        let half = self.c1 + 0.5 * inv;
        (r - half, r + half)
    }

    /// The post-only quote in ticks, or `None` rather than a wrong quote.
    ///
    /// `mid` is in price units, `q` in quote-size units, `sigma` in price units per
    /// sqrt(second), `tau_s` the session time left `T-t` in seconds (ignored by GLFT but
    /// still checked), `best_bid`/`best_ask` the current top of book in ticks.
    ///
    /// Steps:
    /// 1. `None` unless `mid > 0`, `q`, `sigma >= 0`, `tau_s >= 0` are finite and
    ///    `best_bid < best_ask`.
    /// 2. The model bid rounds down and the ask up ([`Instrument::price_to_ticks`]), so
    ///    rounding never narrows the quote; `None` if either is off the `i64` range.
    /// 3. Post-only clamp: `bid = min(bid, best_ask - 1)`, `ask = max(ask, best_bid + 1)`,
    ///    so neither order can take. Clamping only moves each side away from the other,
    ///    and the model spread is `> 0`, so it cannot make `bid >= ask`.
    /// 4. If the two still share a tick (a model spread below the ~1e-9 relative
    ///    snapping tolerance of the grid conversion), the ask moves to `bid + 1`: raising
    ///    an ask keeps it post-only, and the bid keeps its model (or clamped) price.
    /// 5. `None` if the bid is `<= 0`: a non-positive price is never sent.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn quote(
        &self,
        inst: &Instrument,
        mid: f64,
        q: f64,
        sigma: f64,
        tau_s: f64,
        best_bid: Px,
        best_ask: Px,
    ) -> Option<Quote> {
        let inputs_ok = mid.is_finite()
            && mid > 0.0
            && q.is_finite()
            && sigma.is_finite()
            && sigma >= 0.0
            && tau_s.is_finite()
            && tau_s >= 0.0;
        if !inputs_ok || best_bid >= best_ask {
            return None;
        }
        let (bid_f, ask_f) = self.model_prices(mid, q, sigma, tau_s);
        let mut bid = inst.price_to_ticks(bid_f, Round::Down)?;
        let mut ask = inst.price_to_ticks(ask_f, Round::Up)?;
        // best_bid < best_ask, so neither -1 nor +1 overflows.
        bid = bid.min(best_ask - 1);
        ask = ask.max(best_bid + 1);
        if bid >= ask {
            // bid <= 9e18 (price_to_ticks bound) or best_ask - 1, so no overflow.
            ask = bid + 1;
        }
        if bid <= 0 {
            return None;
        }
        Some(Quote { bid, ask })
    }
}

/// Online volatility of the mid in price units per sqrt(second).
///
/// An exponentially weighted mean of the squared mid change per unit time: for a
/// Brownian mid `dm ~ N(0, sigma^2*dt)`, `E[dm^2/dt] = sigma^2` whatever `dt`, so
/// irregular sampling needs no correction. At most one sample per `sample_ns` (the
/// first mid at or after `last_sample + sample_ns`), which keeps bid-ask bounce and
/// microstructure noise from dominating. Each sample updates
/// `var_rate = w*var_rate + (1-w)*dm^2/dt` with `w = exp(-dt*ln2/halflife)`, so an
/// observation's weight halves every `halflife` seconds of clock time; `sigma` is
/// `sqrt(var_rate)`. Starts at `sigma0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SigmaEstimator {
    /// `ln 2 / halflife_s`, per second.
    decay: f64,
    sample_ns: i64,
    var_rate: f64,
    sigma: f64,
    last_ts: Ts,
    last_mid: f64,
    samples: u64,
}

impl SigmaEstimator {
    /// An estimator starting at `sigma0` (price units per sqrt(second)) with the given
    /// half-life in seconds and minimum sampling interval in nanoseconds (e.g.
    /// [`NS_PER_SEC`]).
    ///
    /// # Errors
    /// [`QuoteError::InvalidParam`] if `sigma0` is negative or non-finite, `halflife_s`
    /// is not finite and `> 0`, or `sample_ns <= 0`.
    pub fn new(sigma0: f64, halflife_s: f64, sample_ns: i64) -> Result<Self, QuoteError> {
        let invalid = |field, requirement, value| Err(QuoteError::InvalidParam { field, requirement, value });
        if !(sigma0.is_finite() && sigma0 >= 0.0) {
            return invalid("sigma0", "finite and >= 0", sigma0);
        }
        if !(halflife_s.is_finite() && halflife_s > 0.0) {
            return invalid("sigma_halflife_s", "finite and > 0", halflife_s);
        }
        if sample_ns <= 0 {
            return invalid("sigma sample interval (ns)", "> 0", sample_ns as f64);
        }
        Ok(SigmaEstimator {
            decay: std::f64::consts::LN_2 / halflife_s,
            sample_ns,
            var_rate: sigma0 * sigma0,
            sigma: sigma0,
            last_ts: 0,
            last_mid: f64::NAN,
            samples: 0,
        })
    }

    /// Feeds a mid (price units) observed at `ts`. The first valid mid only anchors;
    /// later ones update the estimate once `ts - last_sample >= sample_ns`. Non-finite
    /// or non-positive mids and timestamps not after the last sample are ignored.
    #[inline]
    pub fn on_mid(&mut self, ts: Ts, mid: f64) {
        if !(mid.is_finite() && mid > 0.0) {
            return;
        }
        if self.last_mid.is_nan() {
            self.last_ts = ts;
            self.last_mid = mid;
            return;
        }
        let dt_ns = ts.saturating_sub(self.last_ts);
        if ts <= self.last_ts || dt_ns < self.sample_ns {
            return;
        }
        let dt = dt_ns as f64 / NS_PER_SEC as f64;
        let dm = mid - self.last_mid;
        let w = (-dt * self.decay).exp();
        self.var_rate = w * self.var_rate + (1.0 - w) * (dm * dm / dt);
        self.sigma = self.var_rate.sqrt();
        self.last_ts = ts;
        self.last_mid = mid;
        self.samples += 1;
    }

    /// Current estimate, price units per sqrt(second).
    #[inline]
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// Number of samples taken so far (0: still at `sigma0`), for warm-up gating.
    #[inline]
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

/// A rolling trading session of fixed length, giving Avellaneda-Stoikov's `T-t`.
///
/// Sessions tile time from `start`: the one containing `now` ends at
/// `start + n*len` for the smallest `n` with that end `> now`, so at an exact boundary
/// a fresh session (full `T-t`) begins. Before `start` the first session has not begun
/// and `T-t` is the full length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    len_ns: i64,
    start_ns: i64,
}

impl Session {
    /// Sessions of `len_ns` nanoseconds starting at `start_ns`.
    ///
    /// # Errors
    /// [`QuoteError::InvalidParam`] naming `quote.session_secs` if `len_ns <= 0`.
    pub fn new(start_ns: Ts, len_ns: i64) -> Result<Self, QuoteError> {
        if len_ns <= 0 {
            return Err(QuoteError::InvalidParam {
                field: "session_secs",
                requirement: "> 0 (as nanoseconds)",
                value: len_ns as f64,
            });
        }
        Ok(Session { len_ns, start_ns })
    }

    /// Session start, nanoseconds.
    #[inline]
    pub fn start_ns(&self) -> Ts {
        self.start_ns
    }

    /// Session length, nanoseconds.
    #[inline]
    pub fn len_ns(&self) -> i64 {
        self.len_ns
    }

    /// Nanoseconds to the end of the session containing `now`, in `(0, len]`:
    /// `len - (now - start) mod len`, or `len` before `start`.
    #[inline]
    pub fn time_left_ns(&self, now: Ts) -> i64 {
        if now < self.start_ns {
            return self.len_ns;
        }
        // i128: `now - start` cannot overflow whatever the two timestamps are.
        let elapsed = now as i128 - self.start_ns as i128;
        self.len_ns - (elapsed % self.len_ns as i128) as i64
    }

    /// `T-t` in seconds for the session containing `now` (see [`Self::time_left_ns`]).
    #[inline]
    pub fn time_left_s(&self, now: Ts) -> f64 {
        self.time_left_ns(now) as f64 / NS_PER_SEC as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inst(tick: &str) -> Instrument {
        Instrument::new("TEST", tick.parse().unwrap(), "0.001".parse().unwrap())
    }

    /// The paper's example: gamma = 0.1, k = 1.5, sigma = 2, T = 1, s = 100.
    fn paper() -> QuoteParams {
        QuoteParams { gamma: 0.1, k: 1.5, a: 1.0, sigma0: 2.0 }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn as_matches_closed_form() {
        let qt = Quoter::new(QuoteModel::As, paper()).unwrap();
        // (2/0.1)*ln(1 + 0.1/1.5) = 1.2907704227514233; + 0.1*2^2*1 = 0.4.
        assert!(close(qt.spread(2.0, 1.0), 1.6907704227514233));
        assert!(close(qt.reservation_price(100.0, 0.0, 2.0, 1.0), 100.0));
        let (b, a) = qt.model_prices(100.0, 0.0, 2.0, 1.0);
        assert!(close(b, 99.15461478862429) && close(a, 100.84538521137571), "{b} {a}");
        // q = 3: r = 100 - 3*0.1*4*1 = 98.8.
        assert!(close(qt.reservation_price(100.0, 3.0, 2.0, 1.0), 98.8));
        let (b, a) = qt.model_prices(100.0, 3.0, 2.0, 1.0);
        assert!(close(b, 97.95461478862428) && close(a, 99.64538521137571), "{b} {a}");
        // On a 0.01 grid: bid down, ask up.
        let q = qt.quote(&inst("0.01"), 100.0, 0.0, 2.0, 1.0, 9_990, 10_010).unwrap();
        assert_eq!(q, Quote { bid: 9_915, ask: 10_085 });
    }

    #[test]
    fn inventory_skews_both_quotes() {
        for model in [QuoteModel::As, QuoteModel::Glft] {
            let qt = Quoter::new(model, paper()).unwrap();
            let (b0, a0) = qt.model_prices(100.0, 0.0, 2.0, 1.0);
            let (bl, al) = qt.model_prices(100.0, 2.0, 2.0, 1.0);
            let (bs, as_) = qt.model_prices(100.0, -2.0, 2.0, 1.0);
            // Long: both lower (keen to sell, reluctant to buy); short: both higher.
            assert!(bl < b0 && al < a0, "{model:?}");
            assert!(bs > b0 && as_ > a0, "{model:?}");
            // The spread itself does not depend on inventory.
            assert!(close(al - bl, a0 - b0) && close(as_ - bs, a0 - b0));
        }
    }

    #[test]
    fn as_inventory_term_vanishes_at_horizon() {
        let qt = Quoter::new(QuoteModel::As, paper()).unwrap();
        let base = 2.0 / 0.1 * (1.0f64 + 0.1 / 1.5).ln();
        assert!(close(qt.reservation_price(100.0, 7.0, 2.0, 0.0), 100.0));
        assert!(close(qt.spread(2.0, 0.0), base));
        let mut prev = f64::INFINITY;
        for tau in [1.0, 0.1, 0.01, 1e-4, 1e-8] {
            let skew = 100.0 - qt.reservation_price(100.0, 7.0, 2.0, tau);
            assert!(skew > 0.0 && skew < prev);
            prev = skew;
        }
        assert!(prev < 1e-6);
    }

    #[test]
    fn glft_matches_closed_form_and_is_symmetric_at_zero() {
        let qt = Quoter::new(QuoteModel::Glft, paper()).unwrap();
        let (c1, c2) = glft_coeffs(0.1, 1.5, 1.0);
        // c1 = 10*ln(16/15); c2 = sqrt(0.1/3 * (16/15)^16).
        assert!(close(c1, 0.6453852113757116));
        assert!(close(c2, 0.30596317673735657));
        // half_spread = c1 + sigma*c2/2 = 0.95134838811306..., skew = sigma*c2.
        let (b, a) = qt.model_prices(100.0, 0.0, 2.0, 123.0);
        assert!(close(b, 99.04865161188692) && close(a, 100.95134838811308), "{b} {a}");
        assert!(close(100.0 - b, a - 100.0));
        // q = 3: bid depth = hs + 3*skew, ask depth = hs - 3*skew.
        let (b, a) = qt.model_prices(100.0, 3.0, 2.0, 0.0);
        assert!(close(b, 97.21287255146278) && close(a, 99.11556932768893), "{b} {a}");
        // No horizon: tau does not matter.
        assert_eq!(qt.model_prices(100.0, 3.0, 2.0, 0.0), qt.model_prices(100.0, 3.0, 2.0, 1e6));
    }

    #[test]
    fn validation_names_the_field() {
        let ok = paper();
        let cases = [
            (QuoteParams { gamma: 0.0, ..ok }, QuoteModel::As, "gamma"),
            (QuoteParams { gamma: f64::NAN, ..ok }, QuoteModel::As, "gamma"),
            (QuoteParams { k: -1.0, ..ok }, QuoteModel::As, "k"),
            (QuoteParams { k: f64::INFINITY, ..ok }, QuoteModel::Glft, "k"),
            (QuoteParams { sigma0: -0.1, ..ok }, QuoteModel::As, "sigma0"),
            (QuoteParams { a: 0.0, ..ok }, QuoteModel::Glft, "`a`"),
            (QuoteParams { a: -1.0, ..ok }, QuoteModel::As, "`a`"),
        ];
        for (p, m, field) in cases {
            let e = p.validate(m).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
            assert!(Quoter::new(m, p).is_err());
        }
        assert!(QuoteParams { a: 0.0, ..ok }.validate(QuoteModel::As).is_ok());
        // Each field valid, but a subnormal A overflows GLFT's c2.
        let e = Quoter::new(QuoteModel::Glft, QuoteParams { a: 1e-320, ..ok }).unwrap_err();
        assert_eq!(e, QuoteError::NonFinite("c2"));
    }

    #[test]
    fn params_deserialize() {
        let p: QuoteParams = serde_json::from_str(r#"{"gamma":0.1,"k":1.5,"sigma0":2.0}"#).unwrap();
        assert_eq!(p, QuoteParams { a: 0.0, ..paper() });
        assert!(serde_json::from_str::<QuoteParams>(r#"{"gamma":0.1,"k":1.5,"sigma0":2,"x":1}"#).is_err());
        let m: QuoteModel = serde_json::from_str(r#""glft""#).unwrap();
        assert_eq!(m, QuoteModel::Glft);
        assert_eq!(serde_json::from_str::<QuoteModel>(r#""as""#).unwrap(), QuoteModel::As);
    }

    #[test]
    fn refuses_bad_inputs_and_books() {
        let i = inst("0.01");
        for model in [QuoteModel::As, QuoteModel::Glft] {
            let qt = Quoter::new(model, paper()).unwrap();
            assert!(qt.quote(&i, 100.0, 0.0, 2.0, 1.0, 9_990, 10_010).is_some());
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                assert_eq!(qt.quote(&i, bad, 0.0, 2.0, 1.0, 9_990, 10_010), None);
                assert_eq!(qt.quote(&i, 100.0, bad, 2.0, 1.0, 9_990, 10_010), None);
                assert_eq!(qt.quote(&i, 100.0, 0.0, bad, 1.0, 9_990, 10_010), None);
                assert_eq!(qt.quote(&i, 100.0, 0.0, 2.0, bad, 9_990, 10_010), None);
            }
            assert_eq!(qt.quote(&i, 0.0, 0.0, 2.0, 1.0, 9_990, 10_010), None);
            assert_eq!(qt.quote(&i, -5.0, 0.0, 2.0, 1.0, 9_990, 10_010), None);
            assert_eq!(qt.quote(&i, 100.0, 0.0, -1.0, 1.0, 9_990, 10_010), None);
            assert_eq!(qt.quote(&i, 100.0, 0.0, 2.0, -1.0, 9_990, 10_010), None);
            // Crossed and locked books.
            assert_eq!(qt.quote(&i, 100.0, 0.0, 2.0, 1.0, 10_010, 9_990), None);
            assert_eq!(qt.quote(&i, 100.0, 0.0, 2.0, 1.0, 10_000, 10_000), None);
            // A bid that would be at or below zero: a cheap asset, very long.
            assert_eq!(qt.quote(&i, 0.5, 1_000.0, 2.0, 1.0, 40, 60), None);
            // Prices beyond the i64 grid.
            assert_eq!(qt.quote(&i, 1e300, 0.0, 2.0, 1.0, 9_990, 10_010), None);
        }
    }

    #[test]
    fn post_only_clamp() {
        let i = inst("0.01");
        let qt = Quoter::new(QuoteModel::As, paper()).unwrap();
        // Very short: both model quotes far above a book around 100.
        let (mb, ma) = qt.model_prices(100.0, -10.0, 2.0, 1.0);
        assert!(mb > 100.1 && ma > mb);
        let q = qt.quote(&i, 100.0, -10.0, 2.0, 1.0, 9_990, 10_010).unwrap();
        assert_eq!(q.bid, 10_009); // one tick under the best ask
        assert_eq!(q.ask, i.price_to_ticks(ma, Round::Up).unwrap());
        // Very long: the ask would cross the best bid.
        let q = qt.quote(&i, 100.0, 10.0, 2.0, 1.0, 9_990, 10_010).unwrap();
        assert_eq!(q.ask, 9_991);
        assert!(q.bid < q.ask);
        // One-tick book and both sides clamped.
        let q = qt.quote(&i, 100.0, -10.0, 2.0, 1.0, 9_999, 10_000).unwrap();
        assert_eq!(q.bid, 9_999);
        assert!(q.ask >= 10_000);
    }

    #[test]
    fn collapsed_spread_widens_the_ask() {
        // A spread of ~2e-12 around an on-grid mid: both sides snap to 100.00.
        let p = QuoteParams { gamma: 0.1, k: 1e12, a: 1.0, sigma0: 0.0 };
        let qt = Quoter::new(QuoteModel::As, p).unwrap();
        let q = qt.quote(&inst("0.01"), 100.0, 0.0, 0.0, 0.0, 9_990, 10_010).unwrap();
        assert_eq!(q, Quote { bid: 10_000, ask: 10_001 });
    }

    /// xorshift64* and Box-Muller: standard normals without the rand crate.
    struct Normal(u64);

    impl Normal {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
            // 53 random bits in (0, 1]: never 0, so ln is finite.
            ((x >> 11) + 1) as f64 / (1u64 << 53) as f64
        }

        fn next(&mut self) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
    }

    #[test]
    fn sigma_converges_on_brownian_motion() {
        for (seed, true_sigma, step_ms) in [(1u64, 0.5, 100i64), (42, 3.0, 250), (7, 0.05, 37)] {
            let mut rng = Normal(0x9E37_79B9_7F4A_7C15 ^ seed);
            // Start wrong by a factor 4 so the test also shows convergence.
            let mut est = SigmaEstimator::new(4.0 * true_sigma, 300.0, NS_PER_SEC).unwrap();
            let step_ns = step_ms * 1_000_000;
            let sd = true_sigma * (step_ns as f64 / NS_PER_SEC as f64).sqrt();
            let (mut ts, mut mid) = (1_700_000_000 * NS_PER_SEC, 1_000.0);
            // 3 hours: 36 half-lives.
            while ts < 1_700_000_000 * NS_PER_SEC + 3 * 3600 * NS_PER_SEC {
                est.on_mid(ts, mid);
                ts += step_ns;
                mid += sd * rng.next();
            }
            let rel = est.sigma() / true_sigma - 1.0;
            assert!(rel.abs() < 0.10, "seed {seed}: {} vs {true_sigma}", est.sigma());
            assert!(est.samples() > 10_000);
        }
    }

    #[test]
    fn sigma_sampling_and_guards() {
        let mut e = SigmaEstimator::new(1.5, 60.0, NS_PER_SEC).unwrap();
        assert_eq!(e.sigma(), 1.5);
        e.on_mid(0, 100.0); // anchor
        e.on_mid(NS_PER_SEC / 2, 500.0); // too soon
        e.on_mid(-NS_PER_SEC, 100.0); // backwards
        e.on_mid(2 * NS_PER_SEC, f64::NAN);
        e.on_mid(2 * NS_PER_SEC, 0.0);
        e.on_mid(2 * NS_PER_SEC, -1.0);
        assert_eq!((e.sigma(), e.samples()), (1.5, 0));
        // One sample after 2 s, dm = 2: var = w*2.25 + (1-w)*4/2.
        e.on_mid(2 * NS_PER_SEC, 102.0);
        let w = (-2.0 * std::f64::consts::LN_2 / 60.0).exp();
        assert!(close(e.sigma(), (w * 2.25 + (1.0 - w) * 2.0).sqrt()));
        assert_eq!(e.samples(), 1);
        for (s0, hl, ns) in [(-1.0, 60.0, 1), (f64::NAN, 60.0, 1), (1.0, 0.0, 1), (1.0, 60.0, 0)] {
            assert!(SigmaEstimator::new(s0, hl, ns).is_err());
        }
    }

    #[test]
    fn session_rolls() {
        let s = Session::new(1_000 * NS_PER_SEC, 3_600 * NS_PER_SEC).unwrap();
        assert_eq!(s.time_left_s(0), 3_600.0);
        assert_eq!(s.time_left_s(1_000 * NS_PER_SEC), 3_600.0);
        assert_eq!(s.time_left_s(1_600 * NS_PER_SEC), 3_000.0);
        assert_eq!(s.time_left_s(4_599 * NS_PER_SEC), 1.0);
        assert_eq!(s.time_left_s(4_600 * NS_PER_SEC), 3_600.0); // next session
        assert_eq!(s.time_left_s(4_600 * NS_PER_SEC + 10 * 3_600 * NS_PER_SEC - 1), 1e-9);
        assert_eq!(Session::new(i64::MIN, 7).unwrap().time_left_ns(i64::MAX), 6);
        assert!(Session::new(0, 0).is_err());
    }

    fn tick_strategy() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("0.01"), Just("0.5"), Just("0.00001"), Just("1")]
    }

    proptest! {
        #[test]
        fn quotes_are_valid_post_only_and_tight(
            glft in any::<bool>(),
            tick in tick_strategy(),
            best_bid in 1i64..10_000_000,
            width in 1i64..500,
            mid_off in -2.0f64..3.0,
            q in -50.0f64..50.0,
            sigma_ticks in 0.0f64..50.0,
            tau_s in 0.0f64..7_200.0,
            gamma in 1e-4f64..10.0,
            k_ticks in 1e-3f64..10.0,
            a in 0.01f64..100.0,
        ) {
            let i = inst(tick);
            let t = i.tick_f64();
            let best_ask = best_bid + width;
            // Mid between (roughly) the touch, in price units.
            let mid = (best_bid as f64 + mid_off * width as f64 / 2.0 + 0.5 * width as f64) * t;
            prop_assume!(mid > 0.0);
            // Scale-free parameters: k and sigma relative to the tick.
            let p = QuoteParams { gamma: gamma / t, k: k_ticks / t, a, sigma0: 0.0 };
            let model = if glft { QuoteModel::Glft } else { QuoteModel::As };
            let qt = Quoter::new(model, p).unwrap();
            let sigma = sigma_ticks * t / 10.0;
            let (mb, ma) = qt.model_prices(mid, q, sigma, tau_s);
            prop_assert!(mb < ma);
            let mbt = i.price_to_ticks(mb, Round::Down).unwrap();
            let mat = i.price_to_ticks(ma, Round::Up).unwrap();
            match qt.quote(&i, mid, q, sigma, tau_s, best_bid, best_ask) {
                None => prop_assert!(mbt.min(best_ask - 1) <= 0),
                Some(Quote { bid, ask }) => {
                    prop_assert!(bid > 0);
                    prop_assert!(bid < ask);
                    prop_assert!(bid < best_ask && ask > best_bid);
                    prop_assert!(bid <= mbt && ask >= mat);
                    if mbt < best_ask {
                        // Unclamped: the model bid rounded down, within one tick.
                        prop_assert_eq!(bid, mbt);
                        prop_assert!(i.px_f64(bid) <= mb + 1e-9 * mb.abs().max(1.0));
                        prop_assert!(mb - i.px_f64(bid) < t * (1.0 + 1e-6));
                    } else {
                        prop_assert_eq!(bid, best_ask - 1);
                    }
                    if mat > best_bid {
                        prop_assert_eq!(ask, mat);
                        prop_assert!(i.px_f64(ask) >= ma - 1e-9 * ma.abs().max(1.0));
                        prop_assert!(i.px_f64(ask) - ma < t * (1.0 + 1e-6));
                    } else {
                        prop_assert_eq!(ask, best_bid + 1);
                    }
                }
            }
        }

        #[test]
        fn never_quotes_garbage(
            bad in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
            which in 0usize..4,
            best_bid in 1i64..1_000_000,
            below in 0i64..100,
        ) {
            let qt = Quoter::new(QuoteModel::Glft, paper()).unwrap();
            let i = inst("0.01");
            let mut args = [100.0, 0.0, 2.0, 1.0];
            prop_assert!(qt.quote(&i, args[0], args[1], args[2], args[3], 9_990, 10_010).is_some());
            args[which] = bad;
            prop_assert_eq!(qt.quote(&i, args[0], args[1], args[2], args[3], 9_990, 10_010), None);
            // Crossed or locked book.
            prop_assert_eq!(
                qt.quote(&i, 100.0, 0.0, 2.0, 1.0, best_bid, best_bid - below),
                None
            );
        }

        #[test]
        fn session_time_left_in_range(start in -1i64 << 62..1 << 62, len in 1i64..1 << 40, now in any::<i64>()) {
            let s = Session::new(start, len).unwrap();
            let left = s.time_left_ns(now);
            prop_assert!(left > 0 && left <= len);
            if now >= start {
                // now + left is a session end: a whole number of lengths after start.
                let end = now as i128 + left as i128;
                prop_assert_eq!((end - start as i128) % len as i128, 0);
            } else {
                prop_assert_eq!(left, len);
            }
        }
    }
}
