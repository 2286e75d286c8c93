//! A preallocated two-state Kalman filter for a time-varying hedge ratio.
//!
//! Model (E. Chan, *Algorithmic Trading*, 2013, Example 3.3): the state
//! `m = [beta, alpha]'` follows a random walk and each pair of prices `(x, y)` observes
//! it through the row `h = [x, 1]`:
//!
//! ```text
//! m_t = m_{t-1} + w,   w ~ N(0, Vw),  Vw = delta / (1 - delta) * I
//! y_t = h_t m_t + v,   v ~ N(0, Ve),  h_t = [x_t, 1]
//! ```
//!
//! One step, with `P` the 2x2 state covariance:
//!
//! ```text
//! predict:  m- = m,  P- = P + Vw          (skipped before the first observation)
//! innovate: e = y - h m-,  Q = h P- h' + Ve,  z = e / sqrt(Q)
//! correct:  g = P- h',  K = g / Q,  m = m- + K e,  P = P- - K g'
//! ```
//!
//! The timing is that of pykalman's `KalmanFilter.filter`: the initial mean
//! `[beta0, alpha0]` and covariance `p0 * I` are the prior of the *first* observation,
//! and every later observation is preceded by one prediction. pykalman is the
//! independent reference (`tools/kalman_reference.py`, `tests/kalman_pykalman.rs`).
//!
//! `P` is symmetric by construction (`P- - g g' / Q`), so it is kept as three numbers.
//! Bad input never reaches the state: a non-finite `x` or `y`, a `Q` that is not
//! finite and positive, or a correction whose result is not finite or whose covariance
//! is not positive definite leaves the filter exactly as it was (the prediction of that
//! step is not consumed either) and is only counted, see [`Kalman::skipped`].
//!
//! Everything is inline `f64` fields: no allocation, no branches on the accepted path
//! beyond the validity checks.

use serde::Deserialize;
use thiserror::Error;

/// Filter parameters, from config `[kalman]`.
///
/// `delta` sets how fast the hedge ratio may drift (state noise `Vw = delta/(1-delta)`
/// per step), `ve` is the variance of the spread around the model, `p0` the prior
/// variance of `beta` and `alpha`. Chan's Example 3.3 uses `delta = 1e-4`,
/// `ve = 1e-3`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KalmanParams {
    /// State drift parameter, in `(0, 1)`; `Vw = delta / (1 - delta) * I`.
    pub delta: f64,
    /// Observation noise variance `Ve`, `> 0`.
    pub ve: f64,
    /// Prior variance of both states (`P0 = p0 * I`), `> 0`.
    pub p0: f64,
    /// Prior mean of the hedge ratio.
    #[serde(default)]
    pub beta0: f64,
    /// Prior mean of the intercept.
    #[serde(default)]
    pub alpha0: f64,
}

impl Default for KalmanParams {
    /// Chan's Example 3.3: `delta = 1e-4`, `ve = 1e-3`, with a vague prior `p0 = 1`
    /// around zero.
    fn default() -> Self {
        KalmanParams { delta: 1e-4, ve: 1e-3, p0: 1.0, beta0: 0.0, alpha0: 0.0 }
    }
}

/// Invalid Kalman parameters; the message names the config key and the value.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum KalmanError {
    /// `delta` is not a finite number strictly between 0 and 1.
    #[error("kalman.delta must be in (0,1), got {0}")]
    Delta(f64),
    /// `ve` is not finite and positive.
    #[error("kalman.ve must be finite and > 0, got {0}")]
    Ve(f64),
    /// `p0` is not finite and positive.
    #[error("kalman.p0 must be finite and > 0, got {0}")]
    P0(f64),
    /// `beta0` is not finite.
    #[error("kalman.beta0 must be finite, got {0}")]
    Beta0(f64),
    /// `alpha0` is not finite.
    #[error("kalman.alpha0 must be finite, got {0}")]
    Alpha0(f64),
}

impl KalmanParams {
    /// Checks ranges: `0 < delta < 1`, `ve > 0`, `p0 > 0`, all finite (a NaN fails
    /// every comparison, so it is rejected too).
    pub fn validate(&self) -> Result<(), KalmanError> {
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(KalmanError::Delta(self.delta));
        }
        if !(self.ve.is_finite() && self.ve > 0.0) {
            return Err(KalmanError::Ve(self.ve));
        }
        if !(self.p0.is_finite() && self.p0 > 0.0) {
            return Err(KalmanError::P0(self.p0));
        }
        if !self.beta0.is_finite() {
            return Err(KalmanError::Beta0(self.beta0));
        }
        if !self.alpha0.is_finite() {
            return Err(KalmanError::Alpha0(self.alpha0));
        }
        Ok(())
    }
}

/// The result of one accepted observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KalmanOutput {
    /// Hedge ratio after the correction.
    pub beta: f64,
    /// Intercept after the correction.
    pub alpha: f64,
    /// Innovation `e = y - (beta- * x + alpha-)`, from the predicted state: the spread's
    /// deviation from the model before this observation moved it.
    pub e: f64,
    /// Innovation variance `Q = h P- h' + Ve`, from the predicted covariance.
    pub q: f64,
    /// Standardised innovation `z = e / sqrt(Q)`.
    pub z: f64,
}

/// The filter: state `[beta, alpha]`, its covariance, and counters. See the module
/// documentation for the equations.
#[derive(Debug, Clone)]
pub struct Kalman {
    beta: f64,
    alpha: f64,
    /// Covariance entries `P[0][0]`, `P[0][1] = P[1][0]`, `P[1][1]`.
    p_bb: f64,
    p_ba: f64,
    p_aa: f64,
    /// Variance added to the diagonal by the next prediction: 0 before the first
    /// accepted observation (the prior is used as is), `vw` afterwards.
    q_next: f64,
    /// `delta / (1 - delta)`.
    vw: f64,
    /// Observation noise variance.
    ve: f64,
    steps: u64,
    skipped: u64,
    params: KalmanParams,
}

impl Kalman {
    /// A filter at the prior `[beta0, alpha0]`, `p0 * I`, after validating `params`.
    pub fn new(params: &KalmanParams) -> Result<Kalman, KalmanError> {
        params.validate()?;
        let p = *params;
        Ok(Kalman {
            beta: p.beta0,
            alpha: p.alpha0,
            p_bb: p.p0,
            p_ba: 0.0,
            p_aa: p.p0,
            q_next: 0.0,
            vw: p.delta / (1.0 - p.delta),
            ve: p.ve,
            steps: 0,
            skipped: 0,
            params: p,
        })
    }

    /// Feeds one observation `y ~ beta * x + alpha`: predicts (except before the first
    /// accepted observation), computes the innovation from the prediction, and
    /// corrects.
    ///
    /// Returns `None`, and changes nothing but [`Self::skipped`], when `x` or `y` is
    /// not finite, `Q` is not finite and positive, or the corrected state would not be
    /// finite or its covariance not positive definite.
    #[inline]
    pub fn update(&mut self, x: f64, y: f64) -> Option<KalmanOutput> {
        // Predict (F = I): the mean is unchanged, the diagonal grows by Vw.
        let p_bb = self.p_bb + self.q_next;
        let p_ba = self.p_ba;
        let p_aa = self.p_aa + self.q_next;

        // g = P- h', Q = h g + Ve, e = y - h m-.
        let g_b = p_bb * x + p_ba;
        let g_a = p_ba * x + p_aa;
        let q = x * g_b + g_a + self.ve;
        let e = y - (self.beta * x + self.alpha);
        // Also rejects NaN or infinite x and y: they make e or q non-finite.
        if !(q > 0.0 && q.is_finite() && e.is_finite()) {
            return self.skip();
        }
        let z = e / q.sqrt();

        // K = g / Q; m = m- + K e; P = P- - K g'.
        let inv_q = 1.0 / q;
        let k_b = g_b * inv_q;
        let k_a = g_a * inv_q;
        let beta = self.beta + k_b * e;
        let alpha = self.alpha + k_a * e;
        let n_bb = p_bb - k_b * g_b;
        let n_ba = p_ba - k_b * g_a;
        let n_aa = p_aa - k_a * g_a;

        let finite = beta.is_finite()
            && alpha.is_finite()
            && z.is_finite()
            && n_bb.is_finite()
            && n_ba.is_finite()
            && n_aa.is_finite();
        // Positive definite 2x2: positive diagonal and positive determinant.
        if !(finite && n_bb > 0.0 && n_aa > 0.0 && n_bb * n_aa - n_ba * n_ba > 0.0) {
            return self.skip();
        }

        self.beta = beta;
        self.alpha = alpha;
        self.p_bb = n_bb;
        self.p_ba = n_ba;
        self.p_aa = n_aa;
        self.q_next = self.vw;
        self.steps += 1;
        Some(KalmanOutput { beta, alpha, e, q, z })
    }

    #[cold]
    #[inline(never)]
    fn skip(&mut self) -> Option<KalmanOutput> {
        self.skipped += 1;
        None
    }

    /// Current hedge ratio.
    #[inline]
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// Current intercept.
    #[inline]
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Current (filtered) state covariance `[[P_bb, P_ba], [P_ab, P_aa]]`, symmetric.
    #[inline]
    pub fn covariance(&self) -> [[f64; 2]; 2] {
        [[self.p_bb, self.p_ba], [self.p_ba, self.p_aa]]
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

    /// Back to the prior, as if newly created: state, covariance and both counters.
    pub fn reset(&mut self) {
        let p = self.params;
        self.beta = p.beta0;
        self.alpha = p.alpha0;
        self.p_bb = p.p0;
        self.p_ba = 0.0;
        self.p_aa = p.p0;
        self.q_next = 0.0;
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

    fn assert_pd(k: &Kalman) {
        let p = k.covariance();
        assert_eq!(p[0][1], p[1][0]);
        assert!(p.iter().flatten().all(|v| v.is_finite()), "{p:?}");
        assert!(p[0][0] > 0.0 && p[1][1] > 0.0, "{p:?}");
        assert!(p[0][0] * p[1][1] - p[0][1] * p[1][0] > 0.0, "{p:?}");
    }

    #[test]
    fn validate_names_the_field() {
        let d = KalmanParams::default();
        assert_eq!(d.validate(), Ok(()));
        let bad = KalmanParams { delta: 1.5, ..d };
        assert_eq!(bad.validate(), Err(KalmanError::Delta(1.5)));
        assert_eq!(KalmanError::Delta(1.5).to_string(), "kalman.delta must be in (0,1), got 1.5");
        for delta in [0.0, 1.0, -1e-4, f64::NAN, f64::INFINITY] {
            assert!(matches!(KalmanParams { delta, ..d }.validate(), Err(KalmanError::Delta(_))));
        }
        for ve in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(KalmanParams { ve, ..d }.validate(), Err(KalmanError::Ve(_))));
        }
        for p0 in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(KalmanParams { p0, ..d }.validate(), Err(KalmanError::P0(_))));
        }
        let b = KalmanParams { beta0: f64::NAN, ..d }.validate();
        assert!(matches!(b, Err(KalmanError::Beta0(_))));
        let a = KalmanParams { alpha0: f64::NEG_INFINITY, ..d }.validate();
        assert!(matches!(a, Err(KalmanError::Alpha0(_))));
        assert!(Kalman::new(&KalmanParams { ve: 0.0, ..d }).is_err());
        assert!(KalmanError::Ve(0.0).to_string().starts_with("kalman.ve "));
        assert!(KalmanError::P0(0.0).to_string().starts_with("kalman.p0 "));
    }

    #[test]
    fn params_deserialize_with_defaults_and_reject_unknown_keys() {
        let p: KalmanParams = serde_json::from_str(r#"{"delta":1e-4,"ve":1e-3,"p0":1.0}"#).expect("parses");
        assert_eq!(p, KalmanParams::default());
        let p: KalmanParams =
            serde_json::from_str(r#"{"delta":0.5,"ve":2,"p0":3,"beta0":1.5,"alpha0":-2}"#).expect("parses");
        assert_eq!(p, KalmanParams { delta: 0.5, ve: 2.0, p0: 3.0, beta0: 1.5, alpha0: -2.0 });
        assert!(serde_json::from_str::<KalmanParams>(r#"{"delta":1e-4,"ve":1e-3,"p0":1.0,"gamma":1}"#).is_err());
    }

    /// First step in closed form: prior m0 = [b0, a0], P0 = p0 I, no prediction.
    /// Q = p0 (x^2 + 1) + Ve, e = y - b0 x - a0, K = p0 [x, 1] / Q,
    /// P1 = p0 I - p0^2 h'h / Q.
    /// Second step: P- = P1 + Vw I.
    #[test]
    fn first_and_second_step_by_hand() {
        let params = KalmanParams { delta: 1e-2, ve: 0.5, p0: 2.0, beta0: 0.3, alpha0: -0.1 };
        let mut k = Kalman::new(&params).expect("valid");
        let (x, y) = (3.0, 2.0);
        let q = 2.0 * (9.0 + 1.0) + 0.5;
        let e = 2.0 - (0.3 * 3.0 - 0.1);
        let out = k.update(x, y).expect("accepted");
        assert_close(out.q, q, 1e-15);
        assert_close(out.e, e, 1e-15);
        assert_close(out.z, e / q.sqrt(), 1e-15);
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
        assert_eq!((k.beta(), k.alpha(), k.covariance()), (before.beta, before.alpha, before.covariance()));
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
        assert_pd(&k);
    }

    #[test]
    fn reset_returns_to_the_prior() {
        let mut fresh = chan();
        let mut k = chan();
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Long streams of random finite prices keep P symmetric and positive definite
        /// and every output finite.
        #[test]
        fn covariance_stays_symmetric_positive(
            base in 1.0f64..1000.0,
            moves in prop::collection::vec((-0.05f64..0.05, -5.0f64..5.0, 0.0f64..3.0), 2000..4000),
            delta in 1e-7f64..0.5,
            ve in 1e-8f64..10.0,
        ) {
            let params = KalmanParams { delta, ve, ..KalmanParams::default() };
            let mut k = Kalman::new(&params).expect("valid");
            let mut x = base;
            for (dx, noise, beta) in moves {
                x *= 1.0 + dx;
                let y = beta * x + noise;
                if let Some(o) = k.update(x, y) {
                    prop_assert!(o.beta.is_finite() && o.alpha.is_finite());
                    prop_assert!(o.e.is_finite() && o.z.is_finite());
                    prop_assert!(o.q.is_finite() && o.q > 0.0);
                }
                let p = k.covariance();
                prop_assert_eq!(p[0][1], p[1][0]);
                prop_assert!(p[0][0] > 0.0 && p[1][1] > 0.0);
                prop_assert!(p[0][0] * p[1][1] - p[0][1] * p[0][1] > 0.0, "{:?}", p);
            }
            prop_assert_eq!(k.skipped(), 0);
        }

        /// Any f64 at all (NaN, inf, huge, subnormal) never puts a NaN in the state.
        #[test]
        fn arbitrary_inputs_never_propagate_nan(
            obs in prop::collection::vec((any::<f64>(), any::<f64>()), 1..500),
        ) {
            let mut k = chan();
            let n = obs.len() as u64;
            for (x, y) in obs {
                if let Some(o) = k.update(x, y) {
                    prop_assert!(o.beta.is_finite() && o.alpha.is_finite() && o.z.is_finite());
                }
                prop_assert!(k.beta().is_finite() && k.alpha().is_finite());
                let p = k.covariance();
                prop_assert!(p[0][0] > 0.0 && p[1][1] > 0.0);
                prop_assert!(p[0][0] * p[1][1] - p[0][1] * p[0][1] > 0.0);
            }
            prop_assert_eq!(k.steps() + k.skipped(), n);
        }
    }
}
