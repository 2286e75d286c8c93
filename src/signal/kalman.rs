//! A preallocated two-state Kalman filter for a time-varying hedge ratio.
//!
//! # Model
//!
//! E. Chan, *Algorithmic Trading* (2013), Example 3.3: the state `m = [beta, a]'`
//! follows a random walk and each pair of prices `(x, y)` observes it through the row
//! `h = [x - c, 1]`:
//!
//! ```text
//! m_t = m_{t-1} + w,   w ~ N(0, Vw),  Vw = diag(q_beta, q_alpha)
//! y_t = h_t m_t + s_t,                h_t = [x_t - c_t, 1]
//! s_t = phi * s_{t-1} + v_t,          v ~ N(0, Ve)
//! ```
//!
//! With the defaults (`phi = 0`, `c = 0`, `q_beta = q_alpha = delta / (1 - delta)`)
//! this is Chan's model exactly, and pykalman's `KalmanFilter.filter` is the
//! independent reference (`tools/kalman_reference.py`, `tests/kalman_pykalman.rs`).
//! Three generalisations, each off by default, make it a filter for a real pair:
//!
//! - **Per-state process noise** (`delta_beta`, `delta_alpha`). `x` is a price of
//!   tens of thousands and the intercept is in price units, so one `delta` either
//!   freezes beta or lets it absorb the spread. `q_beta = delta_beta / (1 -
//!   delta_beta)`, `q_alpha` likewise.
//! - **An autocorrelated spread** (`spread_halflife`, in samples; `phi =
//!   2^(-1/spread_halflife)`). A cointegration spread is an Ornstein-Uhlenbeck
//!   process, not white noise. Treating it as white makes every sample look like new
//!   information about the state, so the filter either chases the spread or, tuned
//!   not to, takes an hour to see a break. The observation is therefore
//!   quasi-differenced (Bryson & Henrikson 1968, "Estimation using sampled data
//!   containing sequentially correlated noise", J. Spacecraft 5(6); Gelb, *Applied
//!   Optimal Estimation*, 1974, sec. 4.5), which leaves white noise:
//!
//!   ```text
//!   y*_t = y_t - phi * y_{t-1},  h*_t = [(x_t - c) - phi * (x_{t-1} - c), 1 - phi]
//!   y*_t = h*_t m_t + v_t
//!   ```
//!
//!   (the state change between the two samples is neglected in `h*`: it is the
//!   standard approximation, exact for a constant state). The first observation has
//!   no predecessor and uses the level row `h` with the stationary variance
//!   `Ve / (1 - phi^2)`. Most of the information about beta then comes from how `y`
//!   moves when `x` moves, which is what the data can tell (`feed::gen` states the
//!   standard error this leaves on the built-in data).
//! - **A centred regressor** (`centre_halflife`, in samples). When `x` barely moves
//!   relative to its level (BTC: +-0.5 % around 61,000 in an hour), `a` and `beta`
//!   are nearly collinear: `y ~ (alpha + beta * x_bar) + beta * (x - x_bar)`, and any
//!   change of beta must be paid for by a change of alpha `x_bar` times as large,
//!   which a random walk with a USD-scaled `q_alpha` cannot follow. Measuring `x` from
//!   a slow running mean `c` (an EWMA, `c += w (x - c)`, `w = 1 - 2^(-1/centre_halflife)`,
//!   started at the first `x`) makes `a` the level of `y` at `x = c` and decorrelates
//!   the two states: a break in beta then shows in beta alone. When `c` moves by `d`,
//!   the state is re-expressed exactly, `a += beta * d` and `P <- T P T'` with
//!   `T = [[1, 0], [d, 1]]`, so centring changes the parametrisation, not the
//!   information. The reported `alpha` is always the intercept at `x = 0`,
//!   `a - beta * c`.
//!
//! Prices can be taken as they are or as logarithms (`prices = "log"`): then beta
//! is the elasticity `d ln y / d ln x`, and [`Kalman::hedge_ratio`] turns it into
//! units of `x` per unit of `y` at the current prices (`beta * y / x`).
//!
//! # One step
//!
//! With `P` the 2x2 state covariance and `(h_o, R)` the observation row and noise
//! variance of this step (`h*`, `Ve` after the first observation when `phi > 0`, else
//! `h`, `Ve / (1 - phi^2)`):
//!
//! ```text
//! centre:   d = c' - c,  a += beta d,  P <- T P T'       (centring only)
//! predict:  m- = m,  P- = P + Vw                       (skipped before the first observation)
//! report:   e = y - h m-,  Q = h P- h' + Ve / (1 - phi^2),  z = e / sqrt(Q)
//! correct:  v = y_o - h_o m-,  S = h_o P- h_o' + R,  g = P- h_o',  K = g / S,
//!           m = m- + K v,  P = P- - K g'
//! ```
//!
//! `e`, `Q` and `z` describe the spread *level* (for `phi = 0` they are the
//! innovation itself, as in Chan); `v` and `S` ([`KalmanOutput::innov`],
//! [`KalmanOutput::innov_var`]) are the innovation that corrected the state, whose
//! sum `-1/2 sum (ln(2 pi S) + v^2 / S)` is the log-likelihood that
//! [`crate::signal::fit`] maximises (the prediction-error decomposition, Harvey 1989,
//! *Forecasting, Structural Time Series Models and the Kalman Filter*, ch. 3).
//!
//! # Observation noise
//!
//! `ve` is either a fixed variance or `"adaptive"`: estimated online from the
//! innovations by covariance matching on the post-fit residual (Mohamed & Schwarz
//! 1999, "Adaptive Kalman filtering for INS/GPS", J. Geodesy 73; in the recursive form
//! of Akhlaghi, Zhou & Huang 2017, "Adaptive adjustment of noise covariance in Kalman
//! filter for dynamic state estimation", IEEE PES GM):
//!
//! ```text
//! eps = y_o - h_o m          (residual after the correction)
//! Ve <- lambda Ve + (1 - lambda) (eps^2 + h_o P h_o'),   lambda = 2^(-1/ve_halflife)
//! ```
//!
//! Both terms are non-negative, so `Ve` stays positive without a floor, unlike the
//! innovation form `E[v^2] - h P- h'` (Mehra 1970), which can go negative. The new
//! `Ve` applies from the next observation.
//!
//! The spread level's variance is matched the same way: `Q` is the exponentially
//! weighted mean of `e^2` over the earlier observations (same half-life, weights
//! normalised to sum to one, the first observation left out as it only meets the
//! prior; the model value `h P- h' + Ve / (1 - phi^2)` until 30 observations are in),
//! because `E[e^2] = Q` is what
//! a calibrated score needs, whatever the spread's true autocorrelation beyond the
//! AR(1). `z` is then a score with standard deviation near 1, not a fixed-dollar
//! threshold.
//!
//! # Bad input
//!
//! Bad input never reaches the state: a non-finite `x` or `y` (or a non-positive one
//! under `prices = "log"`), an `S` or `Q` that is not finite and positive, or a
//! correction whose result is not finite or whose covariance is not positive
//! semi-definite leaves the filter exactly as it was (the centre, the prediction and
//! the noise estimate of that step are not consumed either) and is only counted, see
//! [`Kalman::skipped`]. Parameters are checked by [`KalmanParams::validate`], whose
//! errors name the config key.
//!
//! Everything is inline `f64` fields: no allocation, and a handful of branches beyond
//! the validity checks.

use serde::Deserialize;
use thiserror::Error;

/// Observations (in weight) before an adaptive filter scores `z` against the observed
/// spread variance instead of the model's.
const MIN_LEVEL_WEIGHT: f64 = 30.0;

/// How prices enter the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prices {
    /// As they are: `y = alpha + beta x`, beta in units of `y` per unit of `x`.
    #[default]
    Levels,
    /// Natural logarithms: `ln y = alpha + beta ln x`, beta an elasticity.
    Log,
}

/// The observation noise `Ve`: fixed, or estimated online (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "VeSetting")]
pub enum ObsNoise {
    /// A fixed variance, `> 0`.
    Fixed(f64),
    /// Estimated from the innovations, starting at [`KalmanParams::ve0`].
    Adaptive,
}

/// What the config may say for `ve`: a number or the word `"adaptive"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum VeSetting {
    Number(f64),
    Word(String),
}

impl TryFrom<VeSetting> for ObsNoise {
    type Error = String;
    fn try_from(v: VeSetting) -> Result<Self, String> {
        match v {
            VeSetting::Number(x) => Ok(ObsNoise::Fixed(x)),
            VeSetting::Word(w) if w == "adaptive" => Ok(ObsNoise::Adaptive),
            VeSetting::Word(w) => Err(format!("expected a number or \"adaptive\", got {w:?}")),
        }
    }
}

impl std::str::FromStr for ObsNoise {
    type Err = String;
    /// `"adaptive"` or a number, as on the command line.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "adaptive" {
            return Ok(ObsNoise::Adaptive);
        }
        s.parse::<f64>().map(ObsNoise::Fixed).map_err(|_| format!("expected a number or \"adaptive\", got {s:?}"))
    }
}

impl std::fmt::Display for ObsNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObsNoise::Fixed(v) => write!(f, "{v}"),
            ObsNoise::Adaptive => f.write_str("adaptive"),
        }
    }
}

/// Filter parameters, from config `[kalman]`. Every key has a default; the defaults
/// are Chan's Example 3.3 (`delta = 1e-4`, `ve = 1e-3`) with a vague prior `p0 = 1`
/// around zero, white spread noise and no centring.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KalmanParams {
    /// Shorthand for both state drifts: `delta_beta` and `delta_alpha` default to it.
    /// In `(0, 1)`.
    pub delta: f64,
    /// Drift of beta: `q_beta = delta_beta / (1 - delta_beta)` per sample, in `(0, 1)`.
    pub delta_beta: Option<f64>,
    /// Drift of the intercept: `q_alpha = delta_alpha / (1 - delta_alpha)` per
    /// sample, in `(0, 1)`.
    pub delta_alpha: Option<f64>,
    /// Observation noise: a variance `> 0` (of the spread's innovation `v`; the
    /// spread's own variance is `ve / (1 - phi^2)`), or `"adaptive"`.
    pub ve: ObsNoise,
    /// Starting value of an adaptive `ve`, `> 0` (ignored when `ve` is fixed).
    pub ve0: f64,
    /// Half-life of the adaptive `ve` estimate, in samples, `>= 1`.
    pub ve_halflife: f64,
    /// Prior variance of beta (and of the intercept unless `p0_alpha` is set), `>= 0`.
    /// `0` is Chan's setting: the first observation then only anchors the state.
    pub p0: f64,
    /// Prior variance of the intercept, `>= 0` (default: `p0`).
    pub p0_alpha: Option<f64>,
    /// Prior mean of the hedge ratio.
    pub beta0: f64,
    /// Prior mean of the intercept (the level of `y` at `x = c` when centring).
    pub alpha0: f64,
    /// Price transform.
    pub prices: Prices,
    /// Half-life of the spread's autocorrelation, in samples, `>= 0`; `0` treats the
    /// spread as white noise (Chan).
    pub spread_halflife: f64,
    /// Half-life of the running mean `c` that `x` is centred on, in samples, `>= 0`;
    /// `0`: no centring (`c = 0`).
    pub centre_halflife: f64,
}

impl Default for KalmanParams {
    fn default() -> Self {
        KalmanParams {
            delta: 1e-4,
            delta_beta: None,
            delta_alpha: None,
            ve: ObsNoise::Fixed(1e-3),
            ve0: 1e-3,
            ve_halflife: 300.0,
            p0: 1.0,
            p0_alpha: None,
            beta0: 0.0,
            alpha0: 0.0,
            prices: Prices::Levels,
            spread_halflife: 0.0,
            centre_halflife: 0.0,
        }
    }
}

/// Invalid Kalman parameters; the message names the config key and the value.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum KalmanError {
    /// A drift parameter is not a finite number strictly between 0 and 1.
    #[error("kalman.{key} must be in (0,1), got {value}")]
    Delta {
        /// `delta`, `delta_beta` or `delta_alpha`.
        key: &'static str,
        /// The value.
        value: f64,
    },
    /// A fixed `ve`, or `ve0`, is not finite and positive.
    #[error("kalman.{key} must be finite and > 0, got {value}")]
    Ve {
        /// `ve` or `ve0`.
        key: &'static str,
        /// The value.
        value: f64,
    },
    /// A prior variance is not finite and non-negative.
    #[error("kalman.{key} must be finite and >= 0, got {value}")]
    P0 {
        /// `p0` or `p0_alpha`.
        key: &'static str,
        /// The value.
        value: f64,
    },
    /// `beta0` is not finite.
    #[error("kalman.beta0 must be finite, got {0}")]
    Beta0(f64),
    /// `alpha0` is not finite.
    #[error("kalman.alpha0 must be finite, got {0}")]
    Alpha0(f64),
    /// A half-life is out of range.
    #[error("kalman.{key} must be finite and {range}, got {value}")]
    HalfLife {
        /// `ve_halflife`, `spread_halflife` or `centre_halflife`.
        key: &'static str,
        /// The allowed range.
        range: &'static str,
        /// The value.
        value: f64,
    },
}

impl KalmanParams {
    /// Checks every range (a NaN fails every comparison, so it is rejected too); the
    /// error names the first offending key.
    pub fn validate(&self) -> Result<(), KalmanError> {
        let unit = |key, value: f64| {
            if value > 0.0 && value < 1.0 {
                Ok(())
            } else {
                Err(KalmanError::Delta { key, value })
            }
        };
        unit("delta", self.delta)?;
        if let Some(v) = self.delta_beta {
            unit("delta_beta", v)?;
        }
        if let Some(v) = self.delta_alpha {
            unit("delta_alpha", v)?;
        }
        let positive = |key, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(KalmanError::Ve { key, value })
            }
        };
        if let ObsNoise::Fixed(v) = self.ve {
            positive("ve", v)?;
        }
        positive("ve0", self.ve0)?;
        let prior = |key, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(())
            } else {
                Err(KalmanError::P0 { key, value })
            }
        };
        prior("p0", self.p0)?;
        if let Some(v) = self.p0_alpha {
            prior("p0_alpha", v)?;
        }
        if !self.beta0.is_finite() {
            return Err(KalmanError::Beta0(self.beta0));
        }
        if !self.alpha0.is_finite() {
            return Err(KalmanError::Alpha0(self.alpha0));
        }
        let half = |key, value: f64, min: f64, range| {
            if value.is_finite() && value >= min && value <= 1e12 {
                Ok(())
            } else {
                Err(KalmanError::HalfLife { key, range, value })
            }
        };
        half("ve_halflife", self.ve_halflife, 1.0, ">= 1 and <= 1e12")?;
        half("spread_halflife", self.spread_halflife, 0.0, ">= 0 and <= 1e12")?;
        half("centre_halflife", self.centre_halflife, 0.0, ">= 0 and <= 1e12")?;
        Ok(())
    }

    /// Process noise per sample `(q_beta, q_alpha)`.
    pub fn process_noise(&self) -> (f64, f64) {
        let q = |d: f64| d / (1.0 - d);
        (q(self.delta_beta.unwrap_or(self.delta)), q(self.delta_alpha.unwrap_or(self.delta)))
    }

    /// The spread's AR(1) coefficient per sample, `phi = 2^(-1/spread_halflife)` (0
    /// for white noise).
    pub fn phi(&self) -> f64 {
        if self.spread_halflife > 0.0 {
            (-std::f64::consts::LN_2 / self.spread_halflife).exp()
        } else {
            0.0
        }
    }

    /// The starting observation noise: the fixed `ve`, or `ve0` when adaptive.
    pub fn initial_ve(&self) -> f64 {
        match self.ve {
            ObsNoise::Fixed(v) => v,
            ObsNoise::Adaptive => self.ve0,
        }
    }
}

/// The result of one accepted observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KalmanOutput {
    /// Hedge ratio after the correction (in transformed units under `prices = "log"`).
    pub beta: f64,
    /// Intercept at `x = 0` after the correction.
    pub alpha: f64,
    /// Spread level from the predicted state, `e = y - (beta- * x + alpha-)`: the
    /// spread's deviation from the model before this observation moved it.
    pub e: f64,
    /// Variance of `e`: `h P- h' + Ve / (1 - phi^2)`, or with adaptive `ve` the
    /// weighted mean of the earlier `e^2`.
    pub q: f64,
    /// Standardised spread `z = e / sqrt(Q)`.
    pub z: f64,
    /// The innovation that corrected the state (`e` itself when `phi = 0`, else the
    /// quasi-differenced one), for the likelihood.
    pub innov: f64,
    /// Its variance `S`.
    pub innov_var: f64,
}

/// The filter: state `[beta, a]`, its covariance, the centre, the last observation
/// and counters. See the module documentation for the equations.
#[derive(Debug, Clone)]
pub struct Kalman {
    beta: f64,
    /// Intercept at `x = centre`.
    a: f64,
    /// Covariance entries `P[0][0]`, `P[0][1] = P[1][0]`, `P[1][1]` of `[beta, a]`.
    p_bb: f64,
    p_ba: f64,
    p_aa: f64,
    /// False before the first accepted observation: no prediction, no centre, no
    /// predecessor for the quasi-difference.
    started: bool,
    /// Process noise per sample.
    q_b: f64,
    q_a: f64,
    /// Observation noise variance of the spread's innovation (current estimate).
    ve: f64,
    /// Adaptive only: exponentially weighted sums of `e^2` and of the weights.
    level_num: f64,
    level_den: f64,
    adaptive: bool,
    /// EWMA weight of the old `ve`, `2^(-1/ve_halflife)`.
    ve_keep: f64,
    /// Spread AR(1) coefficient and `1 / (1 - phi^2)`.
    phi: f64,
    stationary: f64,
    /// Running mean of `x`, and its EWMA weight (0: no centring).
    centre: f64,
    centre_w: f64,
    /// The last accepted (transformed) observation.
    last_x: f64,
    last_y: f64,
    log: bool,
    steps: u64,
    skipped: u64,
    params: KalmanParams,
}

impl Kalman {
    /// A filter at the prior, after validating `params`.
    pub fn new(params: &KalmanParams) -> Result<Kalman, KalmanError> {
        params.validate()?;
        let p = *params;
        let (q_b, q_a) = p.process_noise();
        let phi = p.phi();
        let mut k = Kalman {
            beta: 0.0,
            a: 0.0,
            p_bb: 0.0,
            p_ba: 0.0,
            p_aa: 0.0,
            started: false,
            q_b,
            q_a,
            ve: 0.0,
            level_num: 0.0,
            level_den: 0.0,
            adaptive: p.ve == ObsNoise::Adaptive,
            ve_keep: (-std::f64::consts::LN_2 / p.ve_halflife).exp(),
            phi,
            stationary: 1.0 / (1.0 - phi * phi),
            centre: 0.0,
            centre_w: if p.centre_halflife > 0.0 {
                1.0 - (-std::f64::consts::LN_2 / p.centre_halflife).exp()
            } else {
                0.0
            },
            last_x: 0.0,
            last_y: 0.0,
            log: p.prices == Prices::Log,
            steps: 0,
            skipped: 0,
            params: p,
        };
        k.reset();
        Ok(k)
    }

    /// Feeds one observation `y ~ beta * x + alpha` (prices as they are; the filter
    /// applies [`KalmanParams::prices`]): re-centres, predicts (except before the first
    /// accepted observation), reports the spread from the prediction, and corrects.
    ///
    /// Returns `None`, and changes nothing but [`Self::skipped`], when an input is not
    /// usable, a variance is not finite and positive, or the corrected state would not
    /// be finite or its covariance not positive semi-definite.
    #[inline]
    pub fn update(&mut self, x: f64, y: f64) -> Option<KalmanOutput> {
        let (x, y) = if self.log {
            // ln of a non-positive or NaN price is NaN or -inf, rejected below.
            if !(x > 0.0 && y > 0.0) {
                return self.skip();
            }
            (x.ln(), y.ln())
        } else {
            (x, y)
        };
        if !(x.is_finite() && y.is_finite()) {
            return self.skip();
        }

        // Centre (an exact change of parameters, a += beta d, P <- T P T') and predict.
        let (centre, d) = if !self.started {
            (if self.centre_w > 0.0 { x } else { 0.0 }, 0.0)
        } else {
            let c = self.centre + self.centre_w * (x - self.centre);
            (c, c - self.centre)
        };
        let a = self.a + self.beta * d;
        let q_b = if self.started { self.q_b } else { 0.0 };
        let q_a = if self.started { self.q_a } else { 0.0 };
        let p_bb = self.p_bb + q_b;
        let p_ba = self.p_ba + d * self.p_bb;
        let p_aa = self.p_aa + 2.0 * d * self.p_ba + d * d * self.p_bb + q_a;

        // Spread level from the prediction: e = y - h m-, Q = h P- h' + Ve / (1 - phi^2).
        let xc = x - centre;
        let e = y - (self.beta * xc + a);
        let q_model = xc * (p_bb * xc + p_ba) + (p_ba * xc + p_aa) + self.ve * self.stationary;
        let level_var = self.level_num / self.level_den;
        let q =
            if self.adaptive && self.level_den >= MIN_LEVEL_WEIGHT && level_var > 0.0 { level_var } else { q_model };

        // The observation that corrects the state: the level, or the quasi-difference.
        let (h_b, h_a, obs, r) = if self.started && self.phi > 0.0 {
            let xp = self.last_x - centre;
            (xc - self.phi * xp, 1.0 - self.phi, y - self.phi * self.last_y, self.ve)
        } else {
            (xc, 1.0, y, self.ve * self.stationary)
        };
        let g_b = p_bb * h_b + p_ba * h_a;
        let g_a = p_ba * h_b + p_aa * h_a;
        let s = h_b * g_b + h_a * g_a + r;
        let v = obs - (self.beta * h_b + a * h_a);
        if !(s > 0.0 && s.is_finite() && v.is_finite() && q > 0.0 && q.is_finite() && e.is_finite()) {
            return self.skip();
        }
        let z = e / q.sqrt();

        // K = g / S; m = m- + K v; P = P- - K g'.
        let inv_s = 1.0 / s;
        let k_b = g_b * inv_s;
        let k_a = g_a * inv_s;
        let beta = self.beta + k_b * v;
        let a = a + k_a * v;
        let n_bb = p_bb - k_b * g_b;
        let n_ba = p_ba - k_b * g_a;
        let n_aa = p_aa - k_a * g_a;
        let alpha = a - beta * centre;
        let finite = beta.is_finite()
            && a.is_finite()
            && alpha.is_finite()
            && z.is_finite()
            && n_bb.is_finite()
            && n_ba.is_finite()
            && n_aa.is_finite();
        // Positive semi-definite 2x2: non-negative diagonal and determinant (P = 0 is
        // Chan's prior, kept by the first observation).
        if !(finite && n_bb >= 0.0 && n_aa >= 0.0 && n_bb * n_aa - n_ba * n_ba >= 0.0) {
            return self.skip();
        }
        if self.adaptive {
            // Covariance matching on the post-fit residual (module docs).
            let eps = obs - (beta * h_b + a * h_a);
            let hph = h_b * (n_bb * h_b + n_ba * h_a) + h_a * (n_ba * h_b + n_aa * h_a);
            let ve = self.ve_keep * self.ve + (1.0 - self.ve_keep) * (eps * eps + hph);
            if ve.is_finite() && ve > 0.0 {
                self.ve = ve;
            }
            if self.started {
                let num = self.ve_keep * self.level_num + e * e;
                if num.is_finite() {
                    self.level_num = num;
                    self.level_den = self.ve_keep * self.level_den + 1.0;
                }
            }
        }

        self.beta = beta;
        self.a = a;
        self.p_bb = n_bb;
        self.p_ba = n_ba;
        self.p_aa = n_aa;
        self.centre = centre;
        self.last_x = x;
        self.last_y = y;
        self.started = true;
        self.steps += 1;
        Some(KalmanOutput { beta, alpha, e, q, z, innov: v, innov_var: s })
    }

    #[cold]
    #[inline(never)]
    fn skip(&mut self) -> Option<KalmanOutput> {
        self.skipped += 1;
        None
    }

    /// Current hedge ratio (in transformed units under `prices = "log"`).
    #[inline]
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// Current intercept at `x = 0`.
    #[inline]
    pub fn alpha(&self) -> f64 {
        self.a - self.beta * self.centre
    }

    /// Units of `x` that hedge one unit of `y` at prices `(x, y)`: beta for levels,
    /// `beta * y / x` for log prices (`d y = beta (y / x) d x`).
    #[inline]
    pub fn hedge_ratio(&self, x: f64, y: f64) -> f64 {
        if self.log {
            self.beta * y / x
        } else {
            self.beta
        }
    }

    /// Current (filtered) covariance of `[beta, a]` (`a` the intercept at the centre),
    /// symmetric.
    #[inline]
    pub fn covariance(&self) -> [[f64; 2]; 2] {
        [[self.p_bb, self.p_ba], [self.p_ba, self.p_aa]]
    }

    /// The centre `c` that `x` is measured from (0 without centring or before the
    /// first observation).
    #[inline]
    pub fn centre(&self) -> f64 {
        self.centre
    }

    /// Current observation noise `Ve` (the estimate, when adaptive).
    #[inline]
    pub fn ve(&self) -> f64 {
        self.ve
    }

    /// Number of accepted observations since creation or [`Self::reset`].
    #[inline]
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Number of rejected observations since creation or [`Self::reset`].
    #[inline]
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The parameters the filter was built with.
    #[inline]
    pub fn params(&self) -> &KalmanParams {
        &self.params
    }

    /// Back to the prior, as if newly created: state, covariance, centre, noise
    /// estimate and both counters.
    pub fn reset(&mut self) {
        let p = self.params;
        self.beta = p.beta0;
        self.a = p.alpha0;
        self.p_bb = p.p0;
        self.p_ba = 0.0;
        self.p_aa = p.p0_alpha.unwrap_or(p.p0);
        self.started = false;
        self.ve = p.initial_ve();
        self.level_num = 0.0;
        self.level_den = 0.0;
        self.centre = 0.0;
        self.last_x = 0.0;
        self.last_y = 0.0;
        self.steps = 0;
        self.skipped = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chan() -> Kalman {
        Kalman::new(&KalmanParams::default()).expect("default params are valid")
    }

    fn assert_close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol * b.abs().max(1.0), "{a} vs {b}");
    }

    fn assert_psd(k: &Kalman) {
        let p = k.covariance();
        assert_eq!(p[0][1], p[1][0]);
        assert!(p.iter().flatten().all(|v| v.is_finite()), "{p:?}");
        assert!(p[0][0] >= 0.0 && p[1][1] >= 0.0, "{p:?}");
        assert!(p[0][0] * p[1][1] - p[0][1] * p[1][0] >= 0.0, "{p:?}");
    }

    /// xoshiro-free test noise: a tiny LCG and Box-Muller, enough for tests.
    struct Noise(u64);
    impl Noise {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    /// Weighted least squares `y ~ b x + a` with weights `w`, by the normal equations.
    fn wls(rows: &[(f64, f64, f64, f64)]) -> (f64, f64) {
        // rows: (h_b, h_a, y, weight)
        let (mut s_bb, mut s_ba, mut s_aa, mut t_b, mut t_a) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(hb, ha, y, w) in rows {
            s_bb += w * hb * hb;
            s_ba += w * hb * ha;
            s_aa += w * ha * ha;
            t_b += w * hb * y;
            t_a += w * ha * y;
        }
        let det = s_bb * s_aa - s_ba * s_ba;
        ((s_aa * t_b - s_ba * t_a) / det, (s_bb * t_a - s_ba * t_b) / det)
    }

    #[test]
    fn validate_names_the_key() {
        let d = KalmanParams::default();
        assert_eq!(d.validate(), Ok(()));
        let bad = KalmanParams { delta: 1.5, ..d };
        assert_eq!(bad.validate(), Err(KalmanError::Delta { key: "delta", value: 1.5 }));
        assert_eq!(bad.validate().unwrap_err().to_string(), "kalman.delta must be in (0,1), got 1.5");
        for delta in [0.0, 1.0, -1e-4, f64::NAN, f64::INFINITY] {
            assert!(matches!(KalmanParams { delta, ..d }.validate(), Err(KalmanError::Delta { .. })));
            let e = KalmanParams { delta_beta: Some(delta), ..d }.validate().unwrap_err();
            assert!(e.to_string().starts_with("kalman.delta_beta "), "{e}");
            let e = KalmanParams { delta_alpha: Some(delta), ..d }.validate().unwrap_err();
            assert!(e.to_string().starts_with("kalman.delta_alpha "), "{e}");
        }
        for ve in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = KalmanParams { ve: ObsNoise::Fixed(ve), ..d }.validate().unwrap_err();
            assert!(e.to_string().starts_with("kalman.ve "), "{e}");
            let e = KalmanParams { ve: ObsNoise::Adaptive, ve0: ve, ..d }.validate().unwrap_err();
            assert!(e.to_string().starts_with("kalman.ve0 "), "{e}");
        }
        for p0 in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(KalmanParams { p0, ..d }.validate(), Err(KalmanError::P0 { key: "p0", .. })));
            let e = KalmanParams { p0_alpha: Some(p0), ..d }.validate().unwrap_err();
            assert!(e.to_string().starts_with("kalman.p0_alpha "), "{e}");
        }
        assert_eq!(KalmanParams { p0: 0.0, ..d }.validate(), Ok(()), "Chan's P = 0 is allowed");
        assert!(matches!(KalmanParams { beta0: f64::NAN, ..d }.validate(), Err(KalmanError::Beta0(_))));
        assert!(matches!(KalmanParams { alpha0: f64::NEG_INFINITY, ..d }.validate(), Err(KalmanError::Alpha0(_))));
        for (key, p) in [
            ("ve_halflife", KalmanParams { ve_halflife: 0.5, ..d }),
            ("spread_halflife", KalmanParams { spread_halflife: -1.0, ..d }),
            ("centre_halflife", KalmanParams { centre_halflife: f64::NAN, ..d }),
        ] {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.starts_with(&format!("kalman.{key} ")), "{e}");
        }
        assert!(Kalman::new(&KalmanParams { ve: ObsNoise::Fixed(0.0), ..d }).is_err());
    }

    #[test]
    fn params_deserialize_with_defaults_and_reject_unknown_keys() {
        let p: KalmanParams = serde_json::from_str(r#"{"delta":1e-4,"ve":1e-3,"p0":1.0}"#).expect("parses");
        assert_eq!(p, KalmanParams::default());
        let p: KalmanParams = serde_json::from_str(r#"{}"#).expect("every key has a default");
        assert_eq!(p, KalmanParams::default());
        let p: KalmanParams = serde_json::from_str(
            r#"{"delta_beta":1e-9,"delta_alpha":1e-4,"ve":"adaptive","ve0":2,"prices":"log","spread_halflife":60,"centre_halflife":600,"p0":0,"p0_alpha":1e8}"#,
        )
        .expect("parses");
        assert_eq!(p.process_noise().0, 1e-9 / (1.0 - 1e-9));
        assert_eq!((p.ve, p.initial_ve(), p.prices, p.p0_alpha), (ObsNoise::Adaptive, 2.0, Prices::Log, Some(1e8)));
        assert!((p.phi() - 0.5f64.powf(1.0 / 60.0)).abs() < 1e-15);
        assert!(serde_json::from_str::<KalmanParams>(r#"{"ve":"adaptiv"}"#).is_err());
        assert!(serde_json::from_str::<KalmanParams>(r#"{"delta":1e-4,"gamma":1}"#).is_err());
        assert_eq!("adaptive".parse::<ObsNoise>(), Ok(ObsNoise::Adaptive));
        assert_eq!("0.5".parse::<ObsNoise>(), Ok(ObsNoise::Fixed(0.5)));
        assert!("x".parse::<ObsNoise>().is_err());
    }

    /// First step in closed form: prior m0 = [b0, a0], P0 = p0 I, no prediction.
    /// Q = p0 (x^2 + 1) + Ve, e = y - b0 x - a0, K = p0 [x, 1] / Q,
    /// P1 = p0 I - p0^2 h'h / Q.
    /// Second step: P- = P1 + Vw I.
    #[test]
    fn first_and_second_step_by_hand() {
        let params = KalmanParams {
            delta: 1e-2,
            ve: ObsNoise::Fixed(0.5),
            p0: 2.0,
            beta0: 0.3,
            alpha0: -0.1,
            ..KalmanParams::default()
        };
        let mut k = Kalman::new(&params).expect("valid");
        let (x, y) = (3.0, 2.0);
        let q = 2.0 * (9.0 + 1.0) + 0.5;
        let e = 2.0 - (0.3 * 3.0 - 0.1);
        let out = k.update(x, y).expect("accepted");
        assert_close(out.q, q, 1e-15);
        assert_close(out.e, e, 1e-15);
        assert_close(out.z, e / q.sqrt(), 1e-15);
        assert_eq!((out.innov, out.innov_var), (out.e, out.q), "white noise: the level is the innovation");
        assert_close(out.beta, 0.3 + 2.0 * 3.0 * e / q, 1e-15);
        assert_close(out.alpha, -0.1 + 2.0 * e / q, 1e-15);
        assert_eq!((k.beta(), k.alpha()), (out.beta, out.alpha));
        let p1 = [[2.0 - 4.0 * 9.0 / q, -4.0 * 3.0 / q], [-4.0 * 3.0 / q, 2.0 - 4.0 / q]];
        let p = k.covariance();
        for i in 0..2 {
            for j in 0..2 {
                assert_close(p[i][j], p1[i][j], 1e-15);
            }
        }
        assert_eq!(k.steps(), 1);

        // Second step predicts with Vw = delta / (1 - delta).
        let vw = 1e-2 / (1.0 - 1e-2);
        let pp = [[p1[0][0] + vw, p1[0][1]], [p1[1][0], p1[1][1] + vw]];
        let (x2, y2) = (-1.0, 0.7);
        let h = [x2, 1.0];
        let g = [pp[0][0] * h[0] + pp[0][1], pp[1][0] * h[0] + pp[1][1]];
        let q2 = h[0] * g[0] + h[1] * g[1] + 0.5;
        let e2 = y2 - (out.beta * x2 + out.alpha);
        let out2 = k.update(x2, y2).expect("accepted");
        assert_close(out2.q, q2, 1e-14);
        assert_close(out2.e, e2, 1e-14);
        assert_close(out2.beta, out.beta + g[0] / q2 * e2, 1e-14);
        assert_close(out2.alpha, out.alpha + g[1] / q2 * e2, 1e-14);
        assert_close(k.covariance()[0][0], pp[0][0] - g[0] * g[0] / q2, 1e-14);
        assert_close(k.covariance()[0][1], pp[0][1] - g[0] * g[1] / q2, 1e-14);
        assert_close(k.covariance()[1][1], pp[1][1] - g[1] * g[1] / q2, 1e-14);
        assert_eq!(k.steps(), 2);
    }

    /// Chan's Example 3.3 starts from P = 0: the first observation gives K = 0 and
    /// leaves the state at the prior with P still 0; the second predicts P- = Vw.
    #[test]
    fn zero_prior_is_chans_start() {
        let params = KalmanParams { p0: 0.0, ..KalmanParams::default() };
        let mut k = Kalman::new(&params).expect("p0 = 0 is valid");
        let out = k.update(20.0, 30.0).expect("accepted");
        assert_eq!((out.beta, out.alpha, out.e, out.q), (0.0, 0.0, 30.0, 1e-3));
        assert_eq!(k.covariance(), [[0.0, 0.0], [0.0, 0.0]]);
        let out = k.update(21.0, 31.0).expect("accepted");
        let vw = 1e-4 / (1.0 - 1e-4);
        assert_close(out.q, vw * (21.0 * 21.0 + 1.0) + 1e-3, 1e-14);
        assert!(out.beta > 0.0 && out.beta < 31.0 / 21.0);
        assert_psd(&k);
    }

    /// Per-state noise: only the state given process noise moves once the prior is
    /// forgotten.
    #[test]
    fn per_state_noise_moves_only_its_state() {
        let params = KalmanParams {
            delta_beta: Some(1e-12),
            delta_alpha: Some(1e-2),
            ve: ObsNoise::Fixed(1e-2),
            ..KalmanParams::default()
        };
        let mut k = Kalman::new(&params).expect("valid");
        let mut n = Noise(7);
        for t in 0..3000 {
            let x = 50.0 + 10.0 * (t as f64 * 0.01).sin();
            // The intercept jumps at t = 1500; beta stays 2.
            let alpha = if t < 1500 { 1.0 } else { 6.0 };
            k.update(x, alpha + 2.0 * x + 0.1 * n.normal());
        }
        assert!((k.beta() - 2.0).abs() < 0.01, "beta {}", k.beta());
        assert!((k.alpha() - 6.0).abs() < 0.5, "alpha {}", k.alpha());
    }

    /// Without drift and from a vague prior, the filter is recursive least squares:
    /// it ends at the OLS fit of all the data, centred or not (centring only changes
    /// the parametrisation).
    #[test]
    fn centring_is_a_reparametrisation_ols_check() {
        let mut n = Noise(3);
        let data: Vec<(f64, f64)> = (0..2000)
            .map(|t| {
                let x = 61_000.0 + 300.0 * (t as f64 * 0.003).sin() + 20.0 * n.normal();
                (x, -60.0 + 0.0445 * x + 0.5 * n.normal())
            })
            .collect();
        let (b_ols, a_ols) = wls(&data.iter().map(|&(x, y)| (x, 1.0, y, 1.0)).collect::<Vec<_>>());
        // Centred, the fit agrees to 1e-7 (the prior and the 1e-15 drift); uncentred, the two states are so
        // collinear (x = 61,000 +- 300) that f64 rounding in P alone costs ~1e-4 of beta.
        for (centre_halflife, tol) in [(200.0, 1e-7), (0.0, 1e-3)] {
            let params = KalmanParams {
                delta: 1e-15,
                ve: ObsNoise::Fixed(0.25),
                p0: 1e2,
                p0_alpha: Some(1e10),
                centre_halflife,
                ..KalmanParams::default()
            };
            let mut k = Kalman::new(&params).expect("valid");
            for &(x, y) in &data {
                k.update(x, y).expect("accepted");
            }
            assert!((k.beta() - b_ols).abs() < tol * b_ols, "centre {centre_halflife}: {} vs {b_ols}", k.beta());
            assert!((k.alpha() - a_ols).abs() < tol * 1e5, "centre {centre_halflife}: {} vs {a_ols}", k.alpha());
            assert_psd(&k);
        }
    }

    /// With an AR(1) spread, no drift and a vague prior, the quasi-differenced filter
    /// is the Prais-Winsten GLS estimator: the first row scaled by sqrt(1 - phi^2), the
    /// others quasi-differenced, by least squares.
    #[test]
    fn autocorrelated_spread_matches_prais_winsten() {
        let phi = 0.5f64.powf(1.0 / 30.0);
        let mut n = Noise(11);
        let mut s = 0.0;
        let mut x = 100.0;
        let mut data = Vec::new();
        for _ in 0..3000 {
            x += n.normal();
            s = phi * s + 0.1 * n.normal();
            data.push((x, 5.0 + 1.7 * x + s));
        }
        let mut rows = vec![(data[0].0, 1.0, data[0].1, 1.0 - phi * phi)];
        for w in data.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            rows.push((x1 - phi * x0, 1.0 - phi, y1 - phi * y0, 1.0));
        }
        let (b_gls, a_gls) = wls(&rows);
        let params = KalmanParams {
            delta: 1e-15,
            ve: ObsNoise::Fixed(0.01),
            p0: 1e6,
            spread_halflife: 30.0,
            ..KalmanParams::default()
        };
        let mut k = Kalman::new(&params).expect("valid");
        let mut last = None;
        for &(x, y) in &data {
            last = k.update(x, y);
        }
        assert!((k.beta() - b_gls).abs() < 1e-6, "{} vs {b_gls}", k.beta());
        assert!((k.alpha() - a_gls).abs() < 1e-3, "{} vs {a_gls}", k.alpha());
        assert!((k.beta() - 1.7).abs() < 0.01);
        let o = last.expect("accepted");
        assert!(o.innov_var < o.q, "the quasi-difference is less noisy than the level");
    }

    /// Adaptive Ve recovers the innovation variance of the spread and calibrates z.
    #[test]
    fn adaptive_ve_recovers_the_noise_and_calibrates_z() {
        let phi = 0.5f64.powf(1.0 / 20.0);
        let sd_v = 0.2;
        let params = KalmanParams {
            delta_beta: Some(1e-10),
            delta_alpha: Some(1e-8),
            ve: ObsNoise::Adaptive,
            ve0: 100.0,
            ve_halflife: 500.0,
            p0: 1.0,
            p0_alpha: Some(1e6),
            spread_halflife: 20.0,
            centre_halflife: 500.0,
            ..KalmanParams::default()
        };
        let mut k = Kalman::new(&params).expect("valid");
        let mut n = Noise(5);
        let (mut x, mut s) = (1000.0, 0.0);
        let mut zs = Vec::new();
        for t in 0..20_000 {
            x += 2.0 * n.normal();
            s = phi * s + sd_v * n.normal();
            if let Some(o) = k.update(x, 3.0 + 0.8 * x + s) {
                if t > 5000 {
                    zs.push(o.z);
                }
            }
        }
        let ve = sd_v * sd_v;
        assert!((k.ve() - ve).abs() < 0.15 * ve, "ve {} vs {ve}", k.ve());
        let mean = zs.iter().sum::<f64>() / zs.len() as f64;
        let sd = (zs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / zs.len() as f64).sqrt();
        assert!((0.85..1.15).contains(&sd), "sd(z) {sd}");
    }

    /// Log prices: beta is the elasticity and the hedge ratio in units follows it.
    #[test]
    fn log_prices_estimate_the_elasticity() {
        let params =
            KalmanParams { prices: Prices::Log, delta: 1e-12, ve: ObsNoise::Fixed(1e-8), ..KalmanParams::default() };
        let mut k = Kalman::new(&params).expect("valid");
        for t in 0..2000 {
            let x = 100.0 * (1.0 + 0.2 * (t as f64 * 0.01).sin());
            k.update(x, 3.0 * x.powf(1.25)).expect("accepted");
        }
        assert!((k.beta() - 1.25).abs() < 1e-4, "{}", k.beta());
        let (x, y) = (100.0, 3.0 * 100f64.powf(1.25));
        assert!((k.hedge_ratio(x, y) - 1.25 * y / x).abs() < 1e-3);
        assert_eq!(k.update(0.0, 5.0), None, "ln 0 is refused");
        assert_eq!(k.update(5.0, -1.0), None);
        assert_eq!(k.skipped(), 2);
    }

    #[test]
    fn non_finite_inputs_are_skipped_and_counted() {
        let mut k = chan();
        let mut fresh = chan();
        for (x, y) in
            [(f64::NAN, 1.0), (1.0, f64::NAN), (f64::INFINITY, 1.0), (1.0, f64::NEG_INFINITY), (f64::NAN, f64::NAN)]
        {
            assert_eq!(k.update(x, y), None);
        }
        assert_eq!((k.steps(), k.skipped()), (0, 5));
        assert_eq!((k.beta(), k.alpha(), k.covariance()), (0.0, 0.0, [[1.0, 0.0], [0.0, 1.0]]));
        // The skipped steps consumed no prediction: the next update is still the first.
        assert_eq!(k.update(50.0, 75.0), fresh.update(50.0, 75.0));
        let before = k.clone();
        assert_eq!(k.update(f64::NAN, 75.0), None);
        assert_eq!(k.update(1e300, 75.0), None, "Q overflows to inf");
        assert_eq!((k.beta(), k.alpha(), k.covariance()), (before.beta(), before.alpha(), before.covariance()));
        assert_eq!((k.steps(), k.skipped()), (1, 7));
        // And the next accepted step predicts exactly once from the last accepted one.
        assert_eq!(k.update(51.0, 76.0), fresh.update(51.0, 76.0));
    }

    #[test]
    fn non_positive_q_is_skipped() {
        let mut k = chan();
        // An (impossible from valid updates) indefinite covariance makes h P h' + Ve <= 0.
        k.p_bb = 1.0;
        k.p_aa = 1.0;
        k.p_ba = -2.0;
        let before = k.clone();
        // h = [1, 1]: Q = 1 - 4 + 1 + 1e-3 < 0.
        assert_eq!(k.update(1.0, 2.0), None);
        assert_eq!(k.skipped(), 1);
        assert_eq!(k.steps(), 0);
        assert_eq!(k.covariance(), before.covariance());
        assert_eq!((k.beta(), k.alpha()), (before.beta(), before.alpha()));
        // Q == 0 exactly is skipped too.
        k.p_ba = -(1.0 + 1e-3 / 2.0);
        assert_eq!(k.update(1.0, 2.0), None);
        assert_eq!(k.skipped(), 2);
    }

    #[test]
    fn converges_to_constant_beta_alpha_on_noiseless_data() {
        let mut k = chan();
        let (beta, alpha) = (1.3, 0.7);
        let mut last = None;
        // x must move relative to its level for alpha and beta to separate: around 10
        // with +-8 swings, the error is below 1e-9 after ~1000 steps.
        for t in 0..2000 {
            let x = 10.0 + 5.0 * (t as f64 * 0.05).sin() + 3.0 * (t as f64 * 0.31).cos();
            last = k.update(x, alpha + beta * x);
        }
        let out = last.expect("accepted");
        assert!((out.beta - beta).abs() < 1e-12, "beta {}", out.beta);
        assert!((out.alpha - alpha).abs() < 1e-11, "alpha {}", out.alpha);
        assert!(out.e.abs() < 1e-12 && out.z.abs() < 1e-10, "{out:?}");
        assert_eq!((k.steps(), k.skipped()), (2000, 0));
        assert_psd(&k);
    }

    #[test]
    fn reset_returns_to_the_prior() {
        let params =
            KalmanParams { ve: ObsNoise::Adaptive, centre_halflife: 10.0, spread_halflife: 5.0, ..Default::default() };
        for p in [KalmanParams::default(), params] {
            let mut fresh = Kalman::new(&p).expect("valid");
            let mut k = Kalman::new(&p).expect("valid");
            for t in 0..100 {
                k.update(10.0 + t as f64, 5.0 + 2.0 * t as f64);
            }
            k.update(f64::NAN, 0.0);
            k.reset();
            assert_eq!((k.steps(), k.skipped()), (0, 0));
            assert_eq!((k.beta(), k.alpha(), k.covariance()), (0.0, 0.0, [[1.0, 0.0], [0.0, 1.0]]));
            assert_eq!(k.update(50.0, 75.0), fresh.update(50.0, 75.0));
            assert_eq!(k.update(51.0, 77.0), fresh.update(51.0, 77.0));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Long streams of random finite prices keep P symmetric and positive
        /// semi-definite and every output finite, in every mode.
        #[test]
        fn covariance_stays_symmetric_positive(
            base in 1.0f64..1000.0,
            moves in prop::collection::vec((-0.05f64..0.05, -5.0f64..5.0, 0.0f64..3.0), 2000..4000),
            delta in 1e-7f64..0.5,
            ve in 1e-8f64..10.0,
            mode in 0usize..4,
        ) {
            let mut params = KalmanParams { delta, ve: ObsNoise::Fixed(ve), ..KalmanParams::default() };
            match mode {
                1 => params.spread_halflife = 10.0,
                2 => { params.centre_halflife = 50.0; params.ve = ObsNoise::Adaptive; params.ve0 = ve; }
                3 => { params.prices = Prices::Log; params.spread_halflife = 3.0; }
                _ => {}
            }
            let mut k = Kalman::new(&params).expect("valid");
            let mut x = base;
            for (dx, noise, beta) in moves {
                x *= 1.0 + dx;
                let y = (beta * x + noise).abs() + 1e-3;
                if let Some(o) = k.update(x, y) {
                    prop_assert!(o.beta.is_finite() && o.alpha.is_finite());
                    prop_assert!(o.e.is_finite() && o.z.is_finite());
                    prop_assert!(o.q.is_finite() && o.q > 0.0);
                    prop_assert!(o.innov_var.is_finite() && o.innov_var > 0.0);
                }
                let p = k.covariance();
                prop_assert_eq!(p[0][1], p[1][0]);
                prop_assert!(p[0][0] >= 0.0 && p[1][1] >= 0.0);
                prop_assert!(p[0][0] * p[1][1] - p[0][1] * p[0][1] >= 0.0, "{:?}", p);
            }
            prop_assert!(k.ve() > 0.0 && k.ve().is_finite());
        }

        /// Any f64 at all (NaN, inf, huge, subnormal) never puts a NaN in the state.
        #[test]
        fn arbitrary_inputs_never_propagate_nan(
            obs in prop::collection::vec((any::<f64>(), any::<f64>()), 1..500),
            centred in any::<bool>(),
        ) {
            let params = KalmanParams {
                centre_halflife: if centred { 20.0 } else { 0.0 },
                spread_halflife: if centred { 5.0 } else { 0.0 },
                ..KalmanParams::default()
            };
            let mut k = Kalman::new(&params).expect("valid");
            let n = obs.len() as u64;
            for (x, y) in obs {
                if let Some(o) = k.update(x, y) {
                    prop_assert!(o.beta.is_finite() && o.alpha.is_finite() && o.z.is_finite());
                }
                prop_assert!(k.beta().is_finite() && k.alpha().is_finite());
                let p = k.covariance();
                prop_assert!(p[0][0] >= 0.0 && p[1][1] >= 0.0);
                prop_assert!(p[0][0] * p[1][1] - p[0][1] * p[0][1] >= 0.0);
            }
            prop_assert_eq!(k.steps() + k.skipped(), n);
        }
    }
}
