//! The Avellaneda-Stoikov (2008) Monte Carlo: the paper's own simulation of the
//! inventory strategy against the symmetric one (`statarb as-sim`).
//!
//! # Model (Avellaneda & Stoikov, "High-frequency trading in a limit order book",
//! Quantitative Finance 8(3), 2008, section 3.3)
//!
//! The mid `s` starts at `s0` and moves by `+sigma*sqrt(dt)` or `-sigma*sqrt(dt)` with
//! probability 1/2 each per step (the paper's binomial step; a driftless Brownian
//! motion in the limit). At each of the `N = T/dt` quoting instants `t_j = j*dt`,
//! `j = 0..N-1`, the agent quotes a bid and an ask; over the following step an order
//! hits the bid with probability `A*exp(-k*delta_b)*dt` and lifts the ask with
//! probability `A*exp(-k*delta_a)*dt`, independently, `delta` being the quote's
//! distance from the mid (negative when it crosses the mid). A fill trades one unit at
//! the quote: the bid adds one to the inventory `q` and pays `s - delta_b` in cash,
//! the ask the reverse. Then the mid moves. The profit is `cash + q*s_T`.
//!
//! - *Inventory strategy*: reservation price `r = s - q*gamma*sigma^2*(T-t)` (eq. 29),
//!   total spread `gamma*sigma^2*(T-t) + (2/gamma)*ln(1 + gamma/k)` (eq. 30), quotes
//!   `r -/+ spread/2`.
//! - *Symmetric strategy*: "uses the average bid/ask spread of the inventory strategy
//!   over the time period, but centres it around the mid-price": a constant spread
//!   equal to the mean of the inventory strategy's `N` quoted spreads,
//!   `gamma*sigma^2*(T - (N-1)*dt/2) + (2/gamma)*ln(1 + gamma/k)`, quoted at
//!   `s -/+ spread/2`.
//!
//! The fill probability is the paper's `lambda*dt` taken literally (a uniform draw
//! below it; it acts as 1 if `lambda*dt > 1`). At the paper's values `A*dt = 0.7`, so
//! it is not a small-probability approximation: the exact Poisson probability of at
//! least one arrival, `1 - exp(-lambda*dt)`, would give about 10 % fewer fills. The
//! literal form is kept because it is what the paper describes and what reproduces
//! its tables.
//!
//! Both strategies run on common random numbers: the same mid path and the same
//! uniform draws for the fill decisions (each strategy compares them with its own
//! probabilities), which makes their difference less noisy without changing either
//! one's distribution.
//!
//! # Determinism
//!
//! Path `i` draws from its own [`Rng`], seeded by a SplitMix64-style hash of `(seed,
//! i)`, so a path's numbers do not depend on which thread runs it. Paths run in
//! parallel (rayon) in chunks; the per-path outcomes of a chunk are collected in path
//! order and accumulated sequentially, so the result is bit-identical for any thread
//! count. `ln` and `exp` are the crate's [`det_ln`] and [`det_exp`] (basic IEEE
//! arithmetic only), so it is also identical across platforms.
//!
//! # The paper's tables
//!
//! Two versions of the paper circulate with different tables. The published article
//! (Quantitative Finance, 2008; gamma = 0.1, 0.01, 1) prints average spreads 1.49,
//! 1.35 and 3.02, which are the time averages of eq. (30), and this simulation
//! reproduces its Tables 1-3 within Monte Carlo error (see the tests). The earlier
//! working paper (gamma = 0.1, 0.01, 0.5) prints spreads 1.29, 1.33 and 1.15, which
//! equal `(2/gamma)*ln(1 + gamma/k)` alone, without the `gamma*sigma^2*(T-t)` term,
//! so its figures do not follow from eq. (30) as stated; at gamma = 0.5 its inventory
//! profit (33.92) is not reproduced here (about 48.5 with eq. 30).

use std::fmt;

use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::detmath::{det_exp, det_ln, Rng};

/// Largest number of time steps accepted (`T/dt`).
pub const MAX_STEPS: u64 = 10_000_000;

/// Paths simulated in parallel per chunk before their outcomes are accumulated.
const CHUNK: u64 = 1 << 16;

/// Errors from [`AsSimParams::validate`] and [`simulate`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AsSimError {
    /// A parameter is outside its documented range (or not finite).
    #[error("as-sim parameter `{name}` = {value} is out of range ({rule})")]
    Invalid {
        /// Field name.
        name: &'static str,
        /// The offending value.
        value: f64,
        /// The range it must be in.
        rule: &'static str,
    },
}

/// Parameters of the simulation. [`Default`] gives the paper's section 3.3 values with
/// gamma = 0.1, 1000 paths and seed 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsSimParams {
    /// Initial mid price, finite.
    pub s0: f64,
    /// Horizon `T`, `> 0`.
    pub horizon: f64,
    /// Mid volatility `sigma` (price units per unit time^0.5), `>= 0`.
    pub sigma: f64,
    /// Time step `dt`, `> 0`, dividing `horizon` into a whole number of steps (at most
    /// [`MAX_STEPS`]).
    pub dt: f64,
    /// Decay `k` of the fill intensity with the distance from the mid, `> 0`.
    pub k: f64,
    /// Fill intensity `A` at zero distance, per unit time, `>= 0`.
    pub a: f64,
    /// Risk aversion `gamma`, `> 0`.
    pub gamma: f64,
    /// Number of simulated paths, `>= 2` (standard deviations need two).
    pub paths: u64,
    /// Seed of the random numbers.
    pub seed: u64,
}

impl Default for AsSimParams {
    fn default() -> Self {
        AsSimParams {
            s0: 100.0,
            horizon: 1.0,
            sigma: 2.0,
            dt: 0.005,
            k: 1.5,
            a: 140.0,
            gamma: 0.1,
            paths: 1000,
            seed: 1,
        }
    }
}

impl AsSimParams {
    /// Number of time steps, `round(horizon / dt)`.
    pub fn steps(&self) -> u64 {
        let n = (self.horizon / self.dt).round();
        if n.is_finite() && n >= 0.0 {
            n as u64
        } else {
            0
        }
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), AsSimError> {
        let n = self.horizon / self.dt;
        let whole = n.is_finite() && n.round() >= 1.0 && (n - n.round()).abs() <= 1e-9 * n.round();
        let checks: [(&'static str, f64, bool, &'static str); 9] = [
            ("s0", self.s0, self.s0.is_finite(), "finite"),
            ("horizon", self.horizon, self.horizon.is_finite() && self.horizon > 0.0, "> 0"),
            ("sigma", self.sigma, self.sigma.is_finite() && self.sigma >= 0.0, ">= 0"),
            ("dt", self.dt, self.dt.is_finite() && self.dt > 0.0 && whole, "> 0, horizon / dt a whole number"),
            ("dt", self.dt, self.steps() <= MAX_STEPS, "horizon / dt <= 10 000 000"),
            ("k", self.k, self.k.is_finite() && self.k > 0.0, "> 0"),
            ("a", self.a, self.a.is_finite() && self.a >= 0.0, ">= 0"),
            ("gamma", self.gamma, self.gamma.is_finite() && self.gamma > 0.0, "> 0"),
            ("paths", self.paths as f64, self.paths >= 2, ">= 2"),
        ];
        match checks.into_iter().find(|c| !c.2) {
            Some((name, value, _, rule)) => Err(AsSimError::Invalid { name, value, rule }),
            None => Ok(()),
        }
    }
}

/// One strategy's statistics over the paths.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StrategyStats {
    /// Mean total quoted spread (ask - bid) over the quoting instants (price units).
    pub spread_mean: f64,
    /// Mean final profit `cash + q*s_T` over the paths.
    pub profit_mean: f64,
    /// Sample standard deviation (divisor `paths - 1`) of the final profit.
    pub profit_sd: f64,
    /// Mean final inventory `q_T` (units).
    pub final_q_mean: f64,
    /// Sample standard deviation of the final inventory.
    pub final_q_sd: f64,
    /// Mean number of fills per path (both sides).
    pub fills_mean: f64,
}

/// The result of [`simulate`]: both strategies on the same paths.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsSimResult {
    /// The parameters simulated.
    pub params: AsSimParams,
    /// Time steps per path.
    pub steps: u64,
    /// The inventory (reservation-price) strategy.
    pub inventory: StrategyStats,
    /// The symmetric strategy, same average spread centred on the mid.
    pub symmetric: StrategyStats,
}

/// The end state of one strategy on one path.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    profit: f64,
    q: i64,
    fills: u64,
}

/// Cash, inventory and fills of one strategy along a path.
#[derive(Debug, Clone, Copy, Default)]
struct Book {
    cash: f64,
    q: i64,
    fills: u64,
}

impl Book {
    /// Applies the step's fills: the ask at `ask` if `u_ask < p_ask`, the bid at `bid`
    /// if `u_bid < p_bid`.
    #[inline]
    fn step(&mut self, bid: f64, ask: f64, p_bid: f64, p_ask: f64, u_bid: f64, u_ask: f64) {
        if u_ask < p_ask {
            self.q -= 1;
            self.cash += ask;
            self.fills += 1;
        }
        if u_bid < p_bid {
            self.q += 1;
            self.cash -= bid;
            self.fills += 1;
        }
    }

    fn outcome(&self, s: f64) -> Outcome {
        Outcome { profit: self.cash + self.q as f64 * s, q: self.q, fills: self.fills }
    }
}

/// Quantities shared by every path.
#[derive(Debug)]
struct Setup {
    steps: u64,
    /// `sigma * sqrt(dt)`.
    move_size: f64,
    /// `gamma * sigma^2`.
    g_s2: f64,
    /// `(2/gamma) * ln(1 + gamma/k)`.
    spread_const: f64,
    /// The symmetric strategy's constant spread.
    sym_spread: f64,
    /// The symmetric strategy's fill probability per side and step.
    sym_p: f64,
}

impl Setup {
    fn new(p: &AsSimParams) -> Setup {
        let steps = p.steps();
        let mut c = Setup {
            steps,
            move_size: p.sigma * p.dt.sqrt(),
            g_s2: p.gamma * p.sigma * p.sigma,
            spread_const: 2.0 / p.gamma * det_ln(1.0 + p.gamma / p.k),
            sym_spread: 0.0,
            sym_p: 0.0,
        };
        // "The average bid/ask spread of the inventory strategy over the time period".
        c.sym_spread = (0..steps).map(|j| c.spread(c.tau(p, j))).sum::<f64>() / steps as f64;
        c.sym_p = p.a * det_exp(-p.k * c.sym_spread / 2.0) * p.dt;
        c
    }

    /// Time to the horizon at quoting instant `j`, `T - j*dt`.
    #[inline]
    fn tau(&self, p: &AsSimParams, j: u64) -> f64 {
        p.horizon - j as f64 * p.dt
    }

    /// The inventory strategy's total spread with `tau` to go (eq. 30).
    #[inline]
    fn spread(&self, tau: f64) -> f64 {
        self.g_s2 * tau + self.spread_const
    }
}

/// SplitMix64's output function (Steele, Lea & Flood 2014): a bijective 64-bit mix.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of path `path`'s own stream: a hash of `(seed, path)`.
#[inline]
fn path_seed(seed: u64, path: u64) -> u64 {
    mix64(mix64(seed ^ 0x5851_F42D_4C95_7F2D).wrapping_add(path.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// Simulates path `path` for both strategies: `[inventory, symmetric]`.
fn run_path(p: &AsSimParams, c: &Setup, path: u64) -> [Outcome; 2] {
    let mut rng = Rng::new(path_seed(p.seed, path));
    let mut s = p.s0;
    let (mut inv, mut sym) = (Book::default(), Book::default());
    let half_sym = c.sym_spread / 2.0;
    for j in 0..c.steps {
        let tau = c.tau(p, j);
        let half = c.spread(tau) / 2.0;
        // Reservation price offset from the mid: -q*gamma*sigma^2*(T-t).
        let skew = -(inv.q as f64) * c.g_s2 * tau;
        let (bid, ask) = (s + skew - half, s + skew + half);
        let p_bid = p.a * det_exp(-p.k * (s - bid)) * p.dt;
        let p_ask = p.a * det_exp(-p.k * (ask - s)) * p.dt;
        let (u_bid, u_ask) = (rng.uniform(), rng.uniform());
        inv.step(bid, ask, p_bid, p_ask, u_bid, u_ask);
        sym.step(s - half_sym, s + half_sym, c.sym_p, c.sym_p, u_bid, u_ask);
        s += if rng.uniform() < 0.5 { c.move_size } else { -c.move_size };
    }
    [inv.outcome(s), sym.outcome(s)]
}

/// Running mean and variance (Welford), fed in path order.
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    fn sd(&self) -> f64 {
        if self.n > 1.0 {
            (self.m2 / (self.n - 1.0)).sqrt()
        } else {
            0.0
        }
    }
}

/// Accumulated statistics of one strategy.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    profit: Moments,
    q: Moments,
    fills: Moments,
}

impl Acc {
    fn push(&mut self, o: &Outcome) {
        self.profit.push(o.profit);
        self.q.push(o.q as f64);
        self.fills.push(o.fills as f64);
    }

    fn stats(&self, spread_mean: f64) -> StrategyStats {
        StrategyStats {
            spread_mean,
            profit_mean: self.profit.mean,
            profit_sd: self.profit.sd(),
            final_q_mean: self.q.mean,
            final_q_sd: self.q.sd(),
            fills_mean: self.fills.mean,
        }
    }
}

/// Runs the simulation in chunks of `chunk` paths (each chunk in parallel).
fn simulate_chunked(p: &AsSimParams, chunk: u64) -> Result<AsSimResult, AsSimError> {
    p.validate()?;
    let c = Setup::new(p);
    let mut acc = [Acc::default(); 2];
    let mut start = 0;
    while start < p.paths {
        let end = p.paths.min(start.saturating_add(chunk.max(1)));
        let outcomes: Vec<[Outcome; 2]> = (start..end).into_par_iter().map(|i| run_path(p, &c, i)).collect();
        for o in &outcomes {
            acc[0].push(&o[0]);
            acc[1].push(&o[1]);
        }
        start = end;
    }
    // The inventory strategy's quoted spread does not depend on the path: its mean over
    // the quoting instants is the symmetric strategy's constant spread by definition.
    Ok(AsSimResult {
        params: p.clone(),
        steps: c.steps,
        inventory: acc[0].stats(c.sym_spread),
        symmetric: acc[1].stats(c.sym_spread),
    })
}

/// Runs the Monte Carlo of the module docs for both strategies. Errors if the
/// parameters fail [`AsSimParams::validate`].
pub fn simulate(p: &AsSimParams) -> Result<AsSimResult, AsSimError> {
    simulate_chunked(p, CHUNK)
}

impl fmt::Display for AsSimResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(f, "Avellaneda-Stoikov (2008) simulation: gamma {}, {} paths, seed {}", p.gamma, p.paths, p.seed)?;
        writeln!(
            f,
            "s0 {}, T {}, sigma {}, dt {} ({} steps), k {}, A {}; fill probability A*exp(-k*delta)*dt per side and step",
            p.s0, p.horizon, p.sigma, p.dt, self.steps, p.k, p.a
        )?;
        writeln!(
            f,
            "{:<10} {:>8} {:>10} {:>11} {:>9} {:>12} {:>9}",
            "strategy", "spread", "profit", "sd(profit)", "final q", "sd(final q)", "fills"
        )?;
        for (name, s) in [("inventory", &self.inventory), ("symmetric", &self.symmetric)] {
            writeln!(
                f,
                "{:<10} {:>8.4} {:>10.2} {:>11.2} {:>9.3} {:>12.2} {:>9.1}",
                name, s.spread_mean, s.profit_mean, s.profit_sd, s.final_q_mean, s.final_q_sd, s.fills_mean
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(gamma: f64, paths: u64, seed: u64) -> AsSimParams {
        AsSimParams { gamma, paths, seed, ..AsSimParams::default() }
    }

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
    }

    #[test]
    fn deterministic_for_any_thread_count_and_chunking() {
        let p = params(0.1, 200, 7);
        let a = simulate(&p).unwrap();
        assert_eq!(a, simulate(&p).unwrap());
        assert_eq!(a, in_pool(1, || simulate(&p).unwrap()));
        assert_eq!(a, in_pool(3, || simulate(&p).unwrap()));
        assert_eq!(a, in_pool(2, || simulate_chunked(&p, 7).unwrap()));
        let b = simulate(&params(0.1, 200, 8)).unwrap();
        assert_ne!(a.inventory.profit_mean, b.inventory.profit_mean);
        // Paths are independent of how many there are: the first 100 of 200 are the
        // 100 of a 100-path run (checked through the mean of the first half).
        let half = simulate(&params(0.1, 100, 7)).unwrap();
        let c = Setup::new(&p);
        let first: f64 = (0..100).map(|i| run_path(&p, &c, i)[0].profit).sum::<f64>() / 100.0;
        assert!((half.inventory.profit_mean - first).abs() < 1e-9);
    }

    /// The inventory strategy's mean spread is the average of eq. (30) over the
    /// quoting instants t_j = j*dt, j = 0..N-1, which sums in closed form to
    /// gamma*sigma^2*(T - (N-1)*dt/2) + (2/gamma)*ln(1 + gamma/k); the symmetric
    /// strategy quotes that same spread. Within gamma*sigma^2*dt/2 of the continuous
    /// average gamma*sigma^2*T/2 + (2/gamma)*ln(1 + gamma/k), whose values 1.49, 1.35
    /// and 3.02 are the published tables' "average spread".
    #[test]
    fn mean_spread_matches_closed_form() {
        for (gamma, printed) in [(0.1, 1.49), (0.01, 1.35), (1.0, 3.02), (0.5, f64::NAN)] {
            let p = params(gamma, 2, 1);
            let r = simulate(&p).unwrap();
            let (t, s2, dt, n) = (p.horizon, p.sigma * p.sigma, p.dt, 200.0);
            let constant = 2.0 / gamma * (1.0 + gamma / p.k).ln();
            let discrete = gamma * s2 * (t - (n - 1.0) * dt / 2.0) + constant;
            let continuous = gamma * s2 * t / 2.0 + constant;
            assert!((r.inventory.spread_mean - discrete).abs() < 1e-12, "{gamma}: {}", r.inventory.spread_mean);
            assert_eq!(r.symmetric.spread_mean, r.inventory.spread_mean);
            assert!((r.inventory.spread_mean - continuous).abs() <= gamma * s2 * dt / 2.0 + 1e-12);
            if printed.is_finite() {
                assert!((continuous - printed).abs() < 0.005, "{gamma}: {continuous}");
            }
        }
        assert_eq!(simulate(&params(0.1, 2, 1)).unwrap().steps, 200);
    }

    /// With a constant mid (sigma = 0) every symmetric fill earns exactly half the
    /// spread, and each side fills with probability A*exp(-k*spread/2)*dt per step.
    #[test]
    fn constant_mid_closed_forms() {
        let p = AsSimParams { sigma: 0.0, paths: 2000, ..AsSimParams::default() };
        let r = simulate(&p).unwrap();
        let spread = 2.0 / p.gamma * (1.0 + p.gamma / p.k).ln();
        assert!((r.symmetric.spread_mean - spread).abs() < 1e-12);
        let sym = &r.symmetric;
        assert!((sym.profit_mean - sym.fills_mean * spread / 2.0).abs() < 1e-9);
        let prob = p.a * (-p.k * spread / 2.0).exp() * p.dt;
        let n = 200.0;
        // Fills per path: a sum of 2N Bernoulli(prob); 5 standard errors of the mean.
        let expected = 2.0 * n * prob;
        let se = (2.0 * n * prob * (1.0 - prob) / p.paths as f64).sqrt();
        assert!((sym.fills_mean - expected).abs() < 5.0 * se, "{} vs {expected}", sym.fills_mean);
        // No intensity: nothing trades.
        let r = simulate(&AsSimParams { a: 0.0, paths: 10, ..AsSimParams::default() }).unwrap();
        for s in [r.inventory, r.symmetric] {
            assert_eq!((s.profit_mean, s.profit_sd, s.final_q_sd, s.fills_mean), (0.0, 0.0, 0.0, 0.0));
        }
    }

    /// The published tables (Quantitative Finance 8(3), 2008, Tables 1-3: 1000
    /// simulations each) against 1000 paths of ours, as (profit mean, sd, final q
    /// mean, sd) for the inventory then the symmetric strategy.
    ///
    /// Tolerances: the paper's numbers are themselves 1000-path estimates from an
    /// unknown seed, so we compare two independent estimates. A difference of two means
    /// has standard error sqrt(2)*sd/sqrt(1000); we allow 4 of them (sd taken from the
    /// paper). A sample standard deviation has a relative standard error of about
    /// 1/sqrt(2n) = 2.2 % for normal data, 3.2 % for a difference of two, more for the
    /// heavier-tailed profit; and the paper's symmetric sd(profit) at gamma 0.1 and 0.01
    /// (12.7, 12.8) sits 5-6 % below our 100 000-path values (13.40, 13.59), so we allow
    /// 20 %. Over seeds 1-40 the worst deviations seen were 2.5 standard errors for a
    /// mean and 17 % for a standard deviation.
    #[test]
    fn reproduces_the_published_tables() {
        let tables = [
            (0.1, [65.0, 6.6, 0.08, 2.9], [68.4, 12.7, 0.26, 8.4]),
            (0.01, [68.6, 8.7, 0.12, 5.1], [68.8, 12.8, 0.09, 8.7]),
            (1.0, [31.4, 5.0, 0.02, 1.7], [44.0, 11.0, 0.00, 5.1]),
        ];
        for (gamma, inv, sym) in tables {
            let r = simulate(&params(gamma, 1000, 2024)).unwrap();
            println!("{r}");
            for (name, got, want) in [("inventory", r.inventory, inv), ("symmetric", r.symmetric, sym)] {
                let tol_mean = |sd: f64| 4.0 * 2f64.sqrt() * sd / 1000f64.sqrt();
                let ctx = format!("gamma {gamma} {name}: {got:?} vs {want:?}");
                assert!((got.profit_mean - want[0]).abs() < tol_mean(want[1]), "{ctx}");
                assert!((got.profit_sd / want[1] - 1.0).abs() < 0.2, "{ctx}");
                assert!((got.final_q_mean - want[2]).abs() < tol_mean(want[3]), "{ctx}");
                assert!((got.final_q_sd / want[3] - 1.0).abs() < 0.2, "{ctx}");
            }
        }
    }

    /// The paper's qualitative result at every gamma of both versions of the paper:
    /// the inventory strategy has a much smaller dispersion of profit and of final
    /// inventory and a lower mean profit than the symmetric one; the gap closes as
    /// gamma goes to 0 (the strategies coincide in the limit).
    #[test]
    fn inventory_strategy_trades_profit_for_lower_risk() {
        let mut profit_gap = Vec::new();
        for gamma in [0.01, 0.1, 0.5, 1.0] {
            let r = simulate(&params(gamma, 1000, 99)).unwrap();
            let (inv, sym) = (r.inventory, r.symmetric);
            let bound = if gamma < 0.05 { 0.8 } else { 0.6 };
            assert!(inv.profit_sd < bound * sym.profit_sd, "{r}");
            assert!(inv.final_q_sd < bound * sym.final_q_sd, "{r}");
            assert!(inv.profit_mean < sym.profit_mean, "{r}");
            assert!(inv.profit_mean > 0.0, "{r}");
            profit_gap.push(sym.profit_mean - inv.profit_mean);
        }
        assert!(profit_gap.windows(2).all(|w| w[0] < w[1]), "{profit_gap:?}");
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        let bad = [
            AsSimParams { gamma: 0.0, ..AsSimParams::default() },
            AsSimParams { gamma: f64::NAN, ..AsSimParams::default() },
            AsSimParams { dt: 0.0, ..AsSimParams::default() },
            AsSimParams { dt: 0.3, ..AsSimParams::default() },
            AsSimParams { dt: 2.0, ..AsSimParams::default() },
            AsSimParams { dt: 1e-9, ..AsSimParams::default() },
            AsSimParams { k: -1.0, ..AsSimParams::default() },
            AsSimParams { a: f64::INFINITY, ..AsSimParams::default() },
            AsSimParams { sigma: -2.0, ..AsSimParams::default() },
            AsSimParams { horizon: 0.0, ..AsSimParams::default() },
            AsSimParams { s0: f64::NAN, ..AsSimParams::default() },
            AsSimParams { paths: 1, ..AsSimParams::default() },
        ];
        for p in bad {
            assert!(matches!(simulate(&p), Err(AsSimError::Invalid { .. })), "{p:?}");
        }
        assert_eq!(AsSimParams::default().validate(), Ok(()));
        let msg = AsSimParams { paths: 1, ..AsSimParams::default() }.validate().unwrap_err().to_string();
        assert!(msg.contains("paths") && msg.contains(">= 2"), "{msg}");
    }

    #[test]
    fn json_and_table() {
        let r = simulate(&params(0.1, 50, 1)).unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["params"]["gamma"], 0.1);
        assert!(json["inventory"]["profit_sd"].is_f64() && json["symmetric"]["final_q_sd"].is_f64());
        let text = r.to_string();
        assert!(text.contains("inventory") && text.contains("symmetric") && text.contains("sd(final q)"));
    }
}
