//! The built-in data set: a cointegrated BTC/ETH pair as Binance Spot would deliver
//! it, generated deterministically from a seed.
//!
//! # Why generated
//!
//! The default replay must work without downloads, be identical on every machine and
//! crate version (so results and golden tests are comparable), and know its own ground
//! truth (the true hedge ratio) so that the signal layer can be tested against it. The
//! random numbers therefore come from [`crate::detmath::Rng`] (xoshiro256** seeded by
//! SplitMix64), normals from the Marsaglia polar form of Box-Muller and exponentials by
//! inversion, and the only transcendental functions are [`crate::detmath::det_ln`] and
//! [`crate::detmath::det_exp`], written with `+ - * /` only: the platform `libm` may
//! differ in the last bit between systems, IEEE basic arithmetic may not. Nothing here
//! depends on hash order, threads or the clock.
//!
//! # Price model
//!
//! Time advances in steps of [`GenParams::depth_interval_ns`] (100 ms), `dt` seconds:
//!
//! - BTC mid `B`: a random walk that moves in jumps, as a traded price does: with
//!   probability [`GenParams::btc_jump_prob`] per step (0.12: the real mid is unchanged
//!   over 88 % of 100 ms intervals) it moves by `btc_sigma * sqrt(dt / p) * Z`, so its
//!   variance per unit time is `btc_sigma^2` whatever `p`.
//! - Hedge ratio `beta_t = c * (1 + x_t)`, `x` a slow Ornstein-Uhlenbeck process around
//!   0 (relative std [`GenParams::beta_drift_std`], half-life
//!   [`GenParams::beta_drift_half_life_s`]); `c` starts at [`GenParams::beta`] and is
//!   multiplied once by `1 + break_size` (default -8 %) at the first step at which
//!   `break_at` (default 60 %) of the events have been produced: a structural break.
//! - ETH fundamental `F = alpha_t + beta_t * B`, driven by `dF = beta_t * dB`: when beta
//!   moves, `alpha` moves by `-B * d(beta)`, so ETH never jumps because beta did (at the
//!   break `alpha` is reset by `-B * (beta_after - beta_before)`, about +210 USD).
//! - ETH mid `= F + s`, with `s` an Ornstein-Uhlenbeck spread (stationary std
//!   [`GenParams::spread_std`], half-life [`GenParams::spread_half_life_s`]), discretised
//!   exactly: `s' = phi * s + spread_std * sqrt(1 - phi^2) * J`, `phi = exp(-ln 2 * dt /
//!   half_life)`, `J` a standard normal that arrives with probability
//!   [`GenParams::spread_jump_prob`] and is scaled by `1 / sqrt(p)` (the same
//!   variance). `ETH - alpha_t - beta_t * BTC` is stationary: the pair is cointegrated.
//!
//! Prices that move in jumps matter for the signal: a quoted mid that lags a
//! continuously moving model mid by up to its requote threshold (the generator's
//! earlier design: BTC requoted only when $5 off) is a measurement error of several
//! dollars in `x`, which biases any estimate of beta from price changes toward zero
//! (errors in variables: by `var(dB) / (var(dB) + var(du))`, about 23 % at 1 s). Here the
//! quoted mid follows the model mid to a tick or two.
//!
//! The true path is returned by [`generate_with_truth`]: one [`TruthSample`] per
//! [`GenParams::truth_interval_ns`] (1 s) and the [`BetaBreak`], with its time and the
//! beta and alpha on both sides of it.
//!
//! In the default data set (seed 1, 2M events, 8 203 s) the break comes at exchange
//! time 2024-08-09T01:21:40.4Z (4 900.4 s in, at event 1 200 072): beta 0.04317 ->
//! 0.03972, alpha +14.3 -> +226.4 USD.
//!
//! # What the data allows
//!
//! How fast any estimator can see a change of beta is limited by how far BTC moves,
//! against the spread's own noise. Quasi-differenced at 1 s (see
//! [`crate::signal::kalman`]), ETH moves by `beta dB` plus the spread's innovation,
//! variance `R = spread_std^2 (1 - phi^2)`, `phi = 2^(-1/80)`: `R = 1.44 * 0.0172 =
//! 0.0247 USD^2` per second, against `var(dB) = btc_sigma^2 = 56.25 USD^2` per second.
//! The least-squares standard error of beta from `n` seconds is `sqrt(R / (n var(dB)))`:
//! for 20 minutes (`n = 1200`) `6.05e-4`, 1.5 % of the post-break beta (0.0397). A
//! filter can do no better than that from 20 minutes after a break, and to forget the
//! old beta it must discount older data, which costs some of it; the default filter
//! comes back within 3 % (and stays there on average) 298 to 982 s after the break on
//! seeds 1 to 5, and 20 minutes after it is within 1.3 to 1.4 % on average, about the
//! standard error (`tests/signal_tracking.rs`, README).
//!
//! # Market data model (per leg, Binance Spot style)
//!
//! Each leg keeps an exact L2 book of [`DEPTH_LEVELS`] (10) levels per side. The quoted
//! mid is sticky, as on the venue: it follows the model mid only when the two are more
//! than `requote_ticks` apart (or to close a spread wider than the drawn one), and then
//! jumps to it. Per step, in this order:
//!
//! 1. *Sweep trades*: when the new best ask is above resting asks, each of those asks is
//!    traded through: a `TradeBuy` at its price, of an aggressor-sized part of it (the
//!    rest is cancelled, as most of a level usually is when the price moves), symmetric
//!    for bids; each trade is its own message ([`MarketEvent::END_OF_BATCH`]).
//! 2. *Diff depth*: one message with the final size (0 = deleted) of every level that
//!    changed since the previous diff, as `depth@100ms` does: first the deletions (bids,
//!    asks), then the new sizes (bids, asks). Deletions first make every prefix of the
//!    message a subset of the new book, hence uncrossed. Besides the requote, `churn`
//!    level changes are drawn per update (resize, cancel, new level in a gap), and each
//!    side is refilled or trimmed to 10 levels (a trimmed level is sent as deleted, so a
//!    consumer's book never keeps stale levels).
//! 3. *Book ticker*: a `BestBid` + `BestAsk` pair (the flag on the second) whenever the
//!    best price or size of either side differs from the last one sent. (On Binance the
//!    ticker of a change usually arrives before the diff that contains it; here the diff
//!    goes first so that a consumer's book is whole, 10 levels per side, at every batch
//!    end, instead of briefly holding only what the ticker left of it.)
//!
//! Between steps, aggressive orders arrive as a Poisson process (`trade_rate` per leg):
//! a lognormal size walks the opposite side (at most 4 levels, and never below 6 left),
//! one `TradeBuy`/`TradeSell` message per level, then a book ticker with the new top.
//! A top level eaten this way leaves a wider spread until the next step, which is how
//! "usually 1 tick, sometimes wider" arises; a requote also opens with a 2-4 tick spread
//! with probability `wide_spread_prob`. The aggressor side leans towards the model mid
//! (`flow_skew`), so order flow carries information, as it does in real data.
//!
//! Sizes are lognormal (heavy-tailed), with the draw clamped to 4 standard deviations:
//! `top_size_*` for a new best level, `depth_size_*` for the others; level gaps are 1
//! tick with probability `gap_one_prob`, else `2 + floor(Exp)` with the mean gap
//! `gap_mean_ticks`.
//!
//! Times: every message gets `local_ts = exch_ts + latency`, latency `latency_min_ns +
//! Exp(latency_extra_mean_ns)` capped at `latency_max_ns` (1 + Exp(1 ms), at most 5
//! ms), then raised to the previous message's `local_ts`: both legs share one
//! connection, which is FIFO. Events are thus sorted by `local_ts`, and `exch_ts <=
//! local_ts`. A message's events share both times.
//!
//! Exactly [`GenParams::events`] events are produced and the last one closes a batch:
//! if the last message does not fit, a diff is cut to its first levels (any prefix of
//! a diff is uncrossed, see above) and a book ticker is reduced to whichever half
//! cannot cross the consumer's book.
//!
//! # Calibration
//!
//! Measured with an ad-hoc script (not committed) over
//! `/work/shared/data/binance-spot/{btc,eth}usdt_{20240808,20240809}.gz`: 651 s of
//! Binance Spot combined streams (bookTicker, depth@100ms, trade), 2024-08-08 23:54:14
//! to 2024-08-09 00:05:05 UTC, book rebuilt from the REST snapshot in the file plus the
//! diffs and tickers. "Aggressor" = trades sharing trade time and side. "Generated" is
//! the default data set (seed 1, 1M events, 3 873 s), printed by the ignored test
//! `print_stats` (`cargo test --release --lib feed::gen::tests::print_stats --
//! --ignored --nocapture`).
//!
//! | Quantity                                  | BTC measured   | BTC generated  | ETH measured   | ETH generated  |
//! |-------------------------------------------|----------------|----------------|----------------|----------------|
//! | mid vol, USD/sqrt(s), 1 s / 10 s / 30 s    | 7.3 / 7.9 / 7.5 | 7.6 / 7.1 / 7.4 | 0.34 / 0.40 / 0.41 | 0.37 / 0.34 / 0.35 |
//! | spread 1 tick: share at diff times        | 99.8 %         | 99.9 %         | 99.4 %         | 99.9 %         |
//! | spread 1 tick: share of book tickers (a)  | 89.3 %         | 99.0 %         | 88.2 %         | 98.6 %         |
//! | best level size at diff times, median     | 1.99 BTC       | `top_size_median` 2.0 | 9.58 ETH | `top_size_median` 9.5 |
//! | book ticker top size median / mean (a)    | 1.14 / 1.69    | 1.94 / 2.34    | 6.38 / 9.86    | 9.14 / 12.8    |
//! | levels 2-10 size median (upper log sd)    | 0.065 (1.3)    | `depth_size_*` same | 1.34 (1.05) | `depth_size_*` 1.3 (1.05) |
//! | gap between top-10 levels: P(1 tick), mean | 0.26, 39 ticks | `gap_*` same   | 0.43, 3.0 ticks | `gap_*` same  |
//! | trade messages per s (b)                  | 30.6           | 23.8           | 22.3           | 20.6           |
//! | aggressors per s (`trade_rate` 10.9 / 7.6) | 10.9          | 12.2 (c)       | 7.6            | 9.1 (c)        |
//! | aggressor size median, log sd             | 0.00316, 2.5   | `trade_size_*` same | 0.026, 2.43 | `trade_size_*` same |
//! | trade message size median / mean          | 0.00067 / 0.022 | 0.0032 / 0.033 | 0.0078 / 0.29 | 0.027 / 0.26  |
//! | depth diffs per s                         | 10.0           | 10.0           | 9.9            | 10.0           |
//! | changed levels per diff in the top 10, median / mean (d) | 5 / 8.9 | 4 / 8.4 | 5 / 8.7     | 3 / 8.3        |
//! | ticker mid unchanged over 100 ms; else median move | 88 %, 272 ticks | 86 %, 594 | 88 %, 17 ticks | 83 %, 27 |
//!
//! Pair, from 1 s samples of both mids: ETH/BTC price ratio 0.04345 (`beta` 0.043,
//! `eth_start` 2 650 at `btc_start` 61 000); correlation of 10 s mid changes 0.82
//! (generated 0.89); OLS residual std 1.5 USD, AR(1) half-life 48 s (`spread_std` 0.8
//! USD, `spread_half_life_s` 30; generated first-half residual 0.91 USD, half-life 21 s,
//! shortened by the quoted mid's lag behind the model mid).
//!
//! Choices: `btc_sigma` 7.5 is the measured value (a calmer 2.5 %/day would be 5.2).
//! The spread: `spread_std` 1.2 USD is 0.8 times the measured OLS residual std (1.5),
//! and the half-life 80 s is 1.67 times the measured 48 s, both within the factor of 2
//! the calibration allows. The earlier values, 0.8 USD and 30 s, left no edge after
//! costs: a round trip from `z = -2` to `z = +0.5` earns about `2.5 * spread_std` per
//! ETH, 1.5 USDT on 2 000 USDT of ETH at the old std, against 0.8 USDT of maker fees
//! on both legs in and out at 1 bp, before adverse selection; at 1.2 USD it is 2.3 USDT.
//! A longer half-life also lowers the noise `R` per second that limits the hedge
//! ratio's estimate (above), so both the signal and the trade gain. The session is
//! 2M events (2.26 h at about 245 events per second) so that the break, at 60 %, has
//! 80 minutes of data before it and 55 after. Notes: (a) Binance sends a ticker on every top change, transient ones
//! included; the generator sends one per message that changes the top, so fewer
//! depleted-top states are seen. (b) One trade per price level, where Binance sends one
//! per maker order (2.8 per aggressor), to spend the event budget on a longer session.
//! (c) Sweep trades of a requote count as aggressors here. (d) `churn` 2 random changes
//! per update plus those of requotes and refills; the ~15 changes per diff beyond the
//! top 10 on Binance are not modelled.

use thiserror::Error;

use crate::detmath::{det_exp, Rng};
use crate::event::{EventKind, MarketEvent};
use crate::types::{Decimal, InstId, Instrument, Px, Qty, Ts, NS_PER_MS, NS_PER_SEC};

/// Index of `BTCUSDT` in [`Dataset::instruments`].
pub const BTC: InstId = 0;
/// Index of `ETHUSDT` in [`Dataset::instruments`].
pub const ETH: InstId = 1;
/// Levels kept per side of each generated book.
pub const DEPTH_LEVELS: usize = 10;
/// 2024-08-09T00:00:00Z in nanoseconds since the Unix epoch: the default start.
pub const DEFAULT_START_TS: Ts = 1_723_161_600 * NS_PER_SEC;

/// Room for levels inserted before a side is trimmed back to [`DEPTH_LEVELS`].
const CAP: usize = 2 * DEPTH_LEVELS + 4;
/// An aggressor never leaves fewer levels than this on the side it walks.
const MIN_KEEP: usize = 6;
/// Most levels one aggressor consumes.
const MAX_WALK: usize = 4;
/// Largest valid [`GenParams::events`]: 2^31 events are 80 GB, beyond any machine.
const MAX_EVENTS: usize = 1 << 31;
/// Model mids are kept within `[MIN_MID_TICKS, MAX_MID_TICKS]` so that every level
/// price stays positive and far from overflow, whatever the parameters.
const MIN_MID_TICKS: f64 = 10_000.0;
/// See [`MIN_MID_TICKS`].
const MAX_MID_TICKS: f64 = 1.0e15;

/// The two instruments of the data set: index [`BTC`] = `BTCUSDT` (tick 0.01, lot
/// 0.00001), index [`ETH`] = `ETHUSDT` (tick 0.01, lot 0.0001), as on Binance Spot.
pub fn instruments() -> Vec<Instrument> {
    vec![
        Instrument::new("BTCUSDT", Decimal::new(1, 2), Decimal::new(1, 5)),
        Instrument::new("ETHUSDT", Decimal::new(1, 2), Decimal::new(1, 4)),
    ]
}

/// Errors from [`GenParams::validate`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GenError {
    /// A parameter is outside its documented range (or not finite).
    #[error("generator parameter `{name}` = {value} is out of range")]
    Invalid {
        /// Field name, `btc.` / `eth.` prefixed for leg parameters.
        name: &'static str,
        /// The offending value.
        value: f64,
    },
}

/// Market-data parameters of one leg. Defaults come from the measurements in the
/// module docs ([`LegParams::btc`], [`LegParams::eth`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LegParams {
    /// Aggressive orders per second (Poisson), `>= 0`.
    pub trade_rate: f64,
    /// Median aggressor size in asset units, `> 0`.
    pub trade_size_median: f64,
    /// Standard deviation of the log aggressor size, `>= 0`.
    pub trade_size_log_sd: f64,
    /// Median size of a new best level in asset units, `> 0`.
    pub top_size_median: f64,
    /// Standard deviation of the log best-level size, `>= 0`.
    pub top_size_log_sd: f64,
    /// Median size of a level behind the best, `> 0`.
    pub depth_size_median: f64,
    /// Standard deviation of the log deeper-level size, `>= 0`.
    pub depth_size_log_sd: f64,
    /// Probability that adjacent levels are 1 tick apart, in `[0, 1]`.
    pub gap_one_prob: f64,
    /// Mean gap between adjacent levels in ticks, `>= 1`.
    pub gap_mean_ticks: f64,
    /// The quoted mid jumps to the model mid once they are this many ticks apart, `>= 0`
    /// (defaults: BTC 500, ETH 22).
    pub requote_ticks: f64,
    /// Mean number of random level changes per depth update (at least one is always
    /// made, as a live book always changes within 100 ms), in `[0, 50]`.
    pub churn: f64,
    /// Probability that a requote opens with a 2-4 tick spread, in `[0, 1]`.
    pub wide_spread_prob: f64,
}

impl LegParams {
    /// BTCUSDT defaults (see the calibration table).
    pub fn btc() -> Self {
        LegParams {
            trade_rate: 10.9,
            trade_size_median: 0.00316,
            trade_size_log_sd: 2.5,
            top_size_median: 2.0,
            top_size_log_sd: 0.6,
            depth_size_median: 0.065,
            depth_size_log_sd: 1.3,
            gap_one_prob: 0.26,
            gap_mean_ticks: 39.0,
            requote_ticks: 1.0,
            churn: 2.0,
            wide_spread_prob: 0.01,
        }
    }

    /// ETHUSDT defaults (see the calibration table).
    pub fn eth() -> Self {
        LegParams {
            trade_rate: 7.6,
            trade_size_median: 0.026,
            trade_size_log_sd: 2.43,
            top_size_median: 9.5,
            top_size_log_sd: 0.8,
            depth_size_median: 1.3,
            depth_size_log_sd: 1.05,
            gap_one_prob: 0.43,
            gap_mean_ticks: 3.0,
            requote_ticks: 2.0,
            churn: 2.0,
            wide_spread_prob: 0.01,
        }
    }

    fn checks(&self, btc: bool) -> [(&'static str, f64, bool); 12] {
        let n = |b: &'static str, e: &'static str| if btc { b } else { e };
        let pos = |v: f64| v.is_finite() && v > 0.0;
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        let prob = |v: f64| (0.0..=1.0).contains(&v);
        [
            (n("btc.trade_rate", "eth.trade_rate"), self.trade_rate, nonneg(self.trade_rate) && self.trade_rate <= 1e4),
            (n("btc.trade_size_median", "eth.trade_size_median"), self.trade_size_median, pos(self.trade_size_median)),
            (
                n("btc.trade_size_log_sd", "eth.trade_size_log_sd"),
                self.trade_size_log_sd,
                nonneg(self.trade_size_log_sd) && self.trade_size_log_sd <= 10.0,
            ),
            (n("btc.top_size_median", "eth.top_size_median"), self.top_size_median, pos(self.top_size_median)),
            (
                n("btc.top_size_log_sd", "eth.top_size_log_sd"),
                self.top_size_log_sd,
                nonneg(self.top_size_log_sd) && self.top_size_log_sd <= 10.0,
            ),
            (n("btc.depth_size_median", "eth.depth_size_median"), self.depth_size_median, pos(self.depth_size_median)),
            (
                n("btc.depth_size_log_sd", "eth.depth_size_log_sd"),
                self.depth_size_log_sd,
                nonneg(self.depth_size_log_sd) && self.depth_size_log_sd <= 10.0,
            ),
            (n("btc.gap_one_prob", "eth.gap_one_prob"), self.gap_one_prob, prob(self.gap_one_prob)),
            (
                n("btc.gap_mean_ticks", "eth.gap_mean_ticks"),
                self.gap_mean_ticks,
                self.gap_mean_ticks.is_finite() && (1.0..=1e4).contains(&self.gap_mean_ticks),
            ),
            (n("btc.requote_ticks", "eth.requote_ticks"), self.requote_ticks, nonneg(self.requote_ticks)),
            (n("btc.churn", "eth.churn"), self.churn, nonneg(self.churn) && self.churn <= 50.0),
            (n("btc.wide_spread_prob", "eth.wide_spread_prob"), self.wide_spread_prob, prob(self.wide_spread_prob)),
        ]
    }

    /// A copy with every invalid field replaced by the default's.
    fn sanitized(&self, default: &LegParams, btc: bool) -> LegParams {
        let ok: Vec<bool> = self.checks(btc).iter().map(|c| c.2).collect();
        let pick = |i: usize, v: f64, d: f64| if ok[i] { v } else { d };
        LegParams {
            trade_rate: pick(0, self.trade_rate, default.trade_rate),
            trade_size_median: pick(1, self.trade_size_median, default.trade_size_median),
            trade_size_log_sd: pick(2, self.trade_size_log_sd, default.trade_size_log_sd),
            top_size_median: pick(3, self.top_size_median, default.top_size_median),
            top_size_log_sd: pick(4, self.top_size_log_sd, default.top_size_log_sd),
            depth_size_median: pick(5, self.depth_size_median, default.depth_size_median),
            depth_size_log_sd: pick(6, self.depth_size_log_sd, default.depth_size_log_sd),
            gap_one_prob: pick(7, self.gap_one_prob, default.gap_one_prob),
            gap_mean_ticks: pick(8, self.gap_mean_ticks, default.gap_mean_ticks),
            requote_ticks: pick(9, self.requote_ticks, default.requote_ticks),
            churn: pick(10, self.churn, default.churn),
            wide_spread_prob: pick(11, self.wide_spread_prob, default.wide_spread_prob),
        }
    }
}

/// Everything [`generate`] needs. The defaults ("default: ...") are the built-in data
/// set.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    /// Seed of the random stream (default: 1).
    pub seed: u64,
    /// Number of events produced, exactly (default: 1 000 000, about 65 minutes of market time).
    pub events: usize,
    /// Exchange time of the first step (default: 2024-08-09T00:00:00Z, [`DEFAULT_START_TS`]).
    pub start_ts: Ts,
    /// BTC mid at the start, USD (default: 61 000).
    pub btc_start: f64,
    /// BTC random-walk volatility, USD per sqrt(second) (default: 7.5).
    pub btc_sigma: f64,
    /// ETH mid at the start, USD (default: 2 650).
    pub eth_start: f64,
    /// Hedge ratio at the start, ETH per BTC (default: 0.043).
    pub beta: f64,
    /// Stationary std of beta's slow drift, relative to its centre (default: 0.02).
    pub beta_drift_std: f64,
    /// Half-life of beta's drift around its centre, seconds (default: 1 800).
    pub beta_drift_half_life_s: f64,
    /// Fraction of [`Self::events`] after which beta breaks; outside `(0, 1)`: no break
    /// (default: 0.6).
    pub break_at: f64,
    /// Relative change of beta at the break, `> -1` (default: -0.08).
    pub break_size: f64,
    /// Stationary std of the OU spread, USD (default: 1.2).
    pub spread_std: f64,
    /// Half-life of the OU spread, seconds (default: 80).
    pub spread_half_life_s: f64,
    /// Probability per model step that BTC moves, in `(0, 1]`; a move is a normal
    /// jump of variance `btc_sigma^2 dt / btc_jump_prob`, so the volatility does not
    /// depend on it (default: 0.12, the share of 100 ms intervals in which the real
    /// mid changes).
    pub btc_jump_prob: f64,
    /// Probability per model step that the spread receives its innovation, in `(0, 1]`,
    /// scaled like [`Self::btc_jump_prob`] (default: 0.12).
    pub spread_jump_prob: f64,
    /// Model step and diff-depth period, ns (default: 100 ms).
    pub depth_interval_ns: i64,
    /// Minimum feed latency, ns (default: 1 ms).
    pub latency_min_ns: i64,
    /// Mean of the exponential latency on top of the minimum, ns (default: 1 ms).
    pub latency_extra_mean_ns: i64,
    /// Latency cap, ns (default: 5 ms).
    pub latency_max_ns: i64,
    /// How strongly the aggressor side leans to the model mid: `P(buy) = 0.5 +
    /// flow_skew * clamp(deviation / requote_ticks, -1, 1)`, in `[0, 0.5]` (default: 0.3).
    pub flow_skew: f64,
    /// Period of the [`TruthSample`]s, ns (default: 1 s).
    pub truth_interval_ns: i64,
    /// BTCUSDT market-data parameters (default: [`LegParams::btc`]).
    pub btc: LegParams,
    /// ETHUSDT market-data parameters (default: [`LegParams::eth`]).
    pub eth: LegParams,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            seed: 1,
            events: 2_000_000,
            start_ts: DEFAULT_START_TS,
            btc_start: 61_000.0,
            btc_sigma: 7.5,
            eth_start: 2_650.0,
            beta: 0.043,
            beta_drift_std: 0.02,
            beta_drift_half_life_s: 1_800.0,
            break_at: 0.6,
            break_size: -0.08,
            spread_std: 1.2,
            spread_half_life_s: 80.0,
            btc_jump_prob: 0.12,
            spread_jump_prob: 0.12,
            depth_interval_ns: 100 * NS_PER_MS,
            latency_min_ns: NS_PER_MS,
            latency_extra_mean_ns: NS_PER_MS,
            latency_max_ns: 5 * NS_PER_MS,
            flow_skew: 0.3,
            truth_interval_ns: NS_PER_SEC,
            btc: LegParams::btc(),
            eth: LegParams::eth(),
        }
    }
}

impl GenParams {
    fn checks(&self) -> [(&'static str, f64, bool); 19] {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        let lat_ok = self.latency_min_ns >= 0
            && self.latency_extra_mean_ns >= 0
            && self.latency_max_ns >= self.latency_min_ns
            && self.latency_max_ns <= NS_PER_SEC;
        [
            ("events", self.events as f64, self.events <= MAX_EVENTS),
            ("start_ts", self.start_ts as f64, self.start_ts >= 0 && self.start_ts <= i64::MAX / 2),
            ("btc_start", self.btc_start, pos(self.btc_start) && self.btc_start < 1e12),
            ("btc_sigma", self.btc_sigma, nonneg(self.btc_sigma) && self.btc_sigma < 1e9),
            ("eth_start", self.eth_start, pos(self.eth_start) && self.eth_start < 1e12),
            ("beta", self.beta, pos(self.beta) && self.beta < 1e6),
            ("beta_drift_std", self.beta_drift_std, nonneg(self.beta_drift_std) && self.beta_drift_std <= 0.5),
            ("beta_drift_half_life_s", self.beta_drift_half_life_s, pos(self.beta_drift_half_life_s)),
            ("break_at", self.break_at, self.break_at.is_finite()),
            (
                "break_size",
                self.break_size,
                self.break_size.is_finite() && self.break_size > -1.0 && self.break_size < 1e3,
            ),
            ("spread_std", self.spread_std, nonneg(self.spread_std) && self.spread_std < 1e9),
            ("spread_half_life_s", self.spread_half_life_s, pos(self.spread_half_life_s)),
            (
                "depth_interval_ns",
                self.depth_interval_ns as f64,
                (NS_PER_MS..=60 * NS_PER_SEC).contains(&self.depth_interval_ns),
            ),
            ("latency_min_ns", self.latency_min_ns as f64, lat_ok),
            ("latency_max_ns", self.latency_max_ns as f64, lat_ok),
            ("flow_skew", self.flow_skew, (0.0..=0.5).contains(&self.flow_skew)),
            ("truth_interval_ns", self.truth_interval_ns as f64, self.truth_interval_ns > 0),
            ("btc_jump_prob", self.btc_jump_prob, self.btc_jump_prob > 0.0 && self.btc_jump_prob <= 1.0),
            ("spread_jump_prob", self.spread_jump_prob, self.spread_jump_prob > 0.0 && self.spread_jump_prob <= 1.0),
        ]
    }

    /// Checks every field against its documented range. [`generate`] does not need
    /// this (it replaces invalid fields by their defaults rather than fail); call it
    /// where parameters come from a user, to report the mistake.
    pub fn validate(&self) -> Result<(), GenError> {
        let leg = self.btc.checks(true).into_iter().chain(self.eth.checks(false));
        match self.checks().into_iter().chain(leg).find(|c| !c.2) {
            Some((name, value, _)) => Err(GenError::Invalid { name, value }),
            None => Ok(()),
        }
    }

    /// A copy with every invalid field replaced by its default.
    fn sanitized(&self) -> GenParams {
        let d = GenParams::default();
        let ok: Vec<bool> = self.checks().iter().map(|c| c.2).collect();
        let lat_ok = ok[13];
        GenParams {
            seed: self.seed,
            events: if ok[0] { self.events } else { d.events },
            start_ts: if ok[1] { self.start_ts } else { d.start_ts },
            btc_start: if ok[2] { self.btc_start } else { d.btc_start },
            btc_sigma: if ok[3] { self.btc_sigma } else { d.btc_sigma },
            eth_start: if ok[4] { self.eth_start } else { d.eth_start },
            beta: if ok[5] { self.beta } else { d.beta },
            beta_drift_std: if ok[6] { self.beta_drift_std } else { d.beta_drift_std },
            beta_drift_half_life_s: if ok[7] { self.beta_drift_half_life_s } else { d.beta_drift_half_life_s },
            break_at: if ok[8] { self.break_at } else { d.break_at },
            break_size: if ok[9] { self.break_size } else { d.break_size },
            spread_std: if ok[10] { self.spread_std } else { d.spread_std },
            spread_half_life_s: if ok[11] { self.spread_half_life_s } else { d.spread_half_life_s },
            depth_interval_ns: if ok[12] { self.depth_interval_ns } else { d.depth_interval_ns },
            latency_min_ns: if lat_ok { self.latency_min_ns } else { d.latency_min_ns },
            latency_extra_mean_ns: if lat_ok { self.latency_extra_mean_ns } else { d.latency_extra_mean_ns },
            latency_max_ns: if lat_ok { self.latency_max_ns } else { d.latency_max_ns },
            flow_skew: if ok[15] { self.flow_skew } else { d.flow_skew },
            truth_interval_ns: if ok[16] { self.truth_interval_ns } else { d.truth_interval_ns },
            btc_jump_prob: if ok[17] { self.btc_jump_prob } else { d.btc_jump_prob },
            spread_jump_prob: if ok[18] { self.spread_jump_prob } else { d.spread_jump_prob },
            btc: self.btc.sanitized(&d.btc, true),
            eth: self.eth.sanitized(&d.eth, false),
        }
    }
}

/// The model's true state at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruthSample {
    /// Exchange time of the step.
    pub ts: Ts,
    /// Model BTC mid, USD.
    pub btc_mid: f64,
    /// Model ETH mid, USD (`alpha + beta * btc_mid + spread`).
    pub eth_mid: f64,
    /// Intercept, USD.
    pub alpha: f64,
    /// Hedge ratio, ETH per BTC.
    pub beta: f64,
    /// OU spread, USD.
    pub spread: f64,
}

/// The structural break of beta.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BetaBreak {
    /// Exchange time of the first step with the new beta.
    pub ts: Ts,
    /// Beta just before.
    pub beta_before: f64,
    /// Beta from `ts` on (`beta_before * (1 + break_size)`).
    pub beta_after: f64,
    /// Alpha just before.
    pub alpha_before: f64,
    /// Alpha from `ts` on, set so that the ETH price is continuous.
    pub alpha_after: f64,
}

/// The generator's ground truth, for tests of the signal layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// One sample per [`GenParams::truth_interval_ns`], the first at the start.
    pub samples: Vec<TruthSample>,
    /// The break, if the session reached it.
    pub beta_break: Option<BetaBreak>,
}

impl Truth {
    /// The last sample at or before `ts`, or `None` before the first.
    pub fn at(&self, ts: Ts) -> Option<&TruthSample> {
        let n = self.samples.partition_point(|s| s.ts <= ts);
        n.checked_sub(1).map(|i| &self.samples[i])
    }

    /// True beta at `ts` (to the sampling period), or `None` before the start.
    pub fn beta_at(&self, ts: Ts) -> Option<f64> {
        self.at(ts).map(|s| s.beta)
    }
}

/// A generated data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// [`instruments()`]: `BTCUSDT`, `ETHUSDT`.
    pub instruments: Vec<Instrument>,
    /// The events, sorted by `local_ts`.
    pub events: Vec<MarketEvent>,
}

/// Generates the data set for `p` (see the module docs). Deterministic: the same
/// parameters give the same events on every platform. Invalid parameters are replaced
/// by their defaults (see [`GenParams::validate`]); never panics.
pub fn generate(p: &GenParams) -> Dataset {
    generate_with_truth(p).0
}

/// [`generate`], plus the model's true path (hedge ratio, intercept, spread, break),
/// for tests of the signal layer. The events are the same as [`generate`]'s.
pub fn generate_with_truth(p: &GenParams) -> (Dataset, Truth) {
    let p = p.sanitized();
    let mut g = Gen::new(&p);
    g.run();
    (Dataset { instruments: instruments(), events: g.out.ev }, g.truth)
}

// ---------------------------------------------------------------------------------
// Random steps.
// ---------------------------------------------------------------------------------

/// A move of standard deviation `sd` per step that happens with probability `p`:
/// `N(0, sd^2 / p)` with probability `p`, else 0, so its variance is `sd^2` whatever
/// `p` (a compound Poisson approximation of the Gaussian step; `p = 1` is the
/// Gaussian step itself).
#[inline]
fn jump(rng: &mut Rng, p: f64, sd: f64) -> f64 {
    if p >= 1.0 {
        return sd * rng.normal();
    }
    if rng.uniform() < p {
        sd / p.sqrt() * rng.normal()
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------------
// Books.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Lvl {
    px: Px,
    qty: Qty,
}

/// One side of a generated book, best level first, plus the prices changed since the
/// last diff was sent.
#[derive(Debug)]
struct SideBook {
    /// -1 for bids (better = higher), +1 for asks (better = lower): `sign * px`
    /// ascends from the best level.
    sign: i64,
    lv: [Lvl; CAP],
    len: usize,
    dirty: Vec<Px>,
}

impl SideBook {
    fn new(sign: i64) -> Self {
        SideBook { sign, lv: [Lvl::default(); CAP], len: 0, dirty: Vec::with_capacity(4 * CAP) }
    }

    #[inline]
    fn levels(&self) -> &[Lvl] {
        &self.lv[..self.len]
    }

    #[inline]
    fn best(&self) -> Option<Lvl> {
        self.levels().first().copied()
    }

    #[inline]
    fn worst(&self) -> Option<Lvl> {
        self.levels().last().copied()
    }

    /// True if `a` ranks before `b` on this side.
    #[inline]
    fn better(&self, a: Px, b: Px) -> bool {
        self.sign * a < self.sign * b
    }

    /// `d` ticks worse than `px` (lower for bids, higher for asks).
    #[inline]
    fn worse_by(&self, px: Px, d: i64) -> Px {
        px.saturating_add(self.sign * d)
    }

    #[inline]
    fn mark(&mut self, px: Px) {
        if !self.dirty.contains(&px) {
            self.dirty.push(px);
        }
    }

    /// Position of `px` and whether a level is there.
    #[inline]
    fn find(&self, px: Px) -> (usize, bool) {
        let i = self.levels().partition_point(|l| self.better(l.px, px));
        (i, i < self.len && self.lv[i].px == px)
    }

    #[inline]
    fn qty_at(&self, px: Px) -> Qty {
        match self.find(px) {
            (i, true) => self.lv[i].qty,
            _ => 0,
        }
    }

    /// Sets the size at `px` (`qty > 0`), inserting the level if needed; a full side
    /// drops its worst level first.
    fn set(&mut self, px: Px, qty: Qty) {
        let (i, exists) = self.find(px);
        if exists {
            self.lv[i].qty = qty;
        } else {
            if self.len == CAP {
                if i == CAP {
                    return;
                }
                self.remove_at(CAP - 1);
            }
            self.lv.copy_within(i..self.len, i + 1);
            self.lv[i] = Lvl { px, qty };
            self.len += 1;
        }
        self.mark(px);
    }

    fn remove_at(&mut self, i: usize) -> Lvl {
        let l = self.lv[i];
        self.lv.copy_within(i + 1..self.len, i);
        self.len -= 1;
        self.mark(l.px);
        l
    }

    fn trim(&mut self, n: usize) {
        while self.len > n {
            self.remove_at(self.len - 1);
        }
    }
}

/// Per-leg generator state.
#[derive(Debug)]
struct Leg {
    inst: InstId,
    p: LegParams,
    tick: f64,
    lot: f64,
    bids: SideBook,
    asks: SideBook,
    /// Last book ticker sent: (bid px, bid qty, ask px, ask qty).
    last_bbo: Option<(Px, Qty, Px, Qty)>,
    /// Model mid in ticks.
    mid: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Bids,
    Asks,
}

impl Leg {
    fn new(inst: InstId, p: &LegParams, instrument: &Instrument) -> Self {
        Leg {
            inst,
            p: p.clone(),
            tick: instrument.tick_f64(),
            lot: instrument.lot_f64(),
            bids: SideBook::new(-1),
            asks: SideBook::new(1),
            last_bbo: None,
            mid: 0.0,
        }
    }

    #[inline]
    fn side(&mut self, w: Which) -> &mut SideBook {
        match w {
            Which::Bids => &mut self.bids,
            Which::Asks => &mut self.asks,
        }
    }

    /// A lognormal size in lots, >= 1.
    #[inline]
    fn size(&self, rng: &mut Rng, median: f64, log_sd: f64) -> Qty {
        let z = rng.normal().clamp(-4.0, 4.0);
        let lots = median * det_exp(log_sd * z) / self.lot;
        if lots.is_finite() {
            (lots.round() as Qty).clamp(1, 1 << 50)
        } else {
            1
        }
    }

    #[inline]
    fn trade_size(&self, rng: &mut Rng) -> Qty {
        self.size(rng, self.p.trade_size_median, self.p.trade_size_log_sd)
    }

    #[inline]
    fn top_size(&self, rng: &mut Rng) -> Qty {
        self.size(rng, self.p.top_size_median, self.p.top_size_log_sd)
    }

    #[inline]
    fn depth_size(&self, rng: &mut Rng) -> Qty {
        self.size(rng, self.p.depth_size_median, self.p.depth_size_log_sd)
    }

    /// A gap between adjacent levels, ticks.
    #[inline]
    fn gap(&self, rng: &mut Rng) -> i64 {
        let p1 = self.p.gap_one_prob;
        if p1 >= 1.0 || rng.uniform() < p1 {
            return 1;
        }
        // Mean of the gaps > 1 so that the overall mean is gap_mean_ticks; floor(Exp)
        // has mean about (mean - 0.5).
        let rest = ((self.p.gap_mean_ticks - p1) / (1.0 - p1)).max(2.0);
        let e = rng.exp((rest - 1.5).max(0.01));
        2 + (e.min(1e4) as i64)
    }

    /// Makes `px` the best level of side `w` with a fresh best size. If the side moved
    /// towards the other side, the old best gets a deeper size and new levels fill the
    /// room between them.
    fn place_top(&mut self, rng: &mut Rng, w: Which, px: Px) {
        let top = self.top_size(rng);
        let old = self.side(w).best();
        self.side(w).set(px, top);
        if let Some(old) = old {
            if self.side(w).better(px, old.px) {
                let q = self.depth_size(rng);
                self.side(w).set(old.px, q);
                let mut at = px;
                for _ in 0..DEPTH_LEVELS - 2 {
                    let g = self.gap(rng);
                    at = self.side(w).worse_by(at, g);
                    if at < 1 || !self.side(w).better(at, old.px) {
                        break;
                    }
                    let q = self.depth_size(rng);
                    self.side(w).set(at, q);
                }
            }
        }
        self.side(w).trim(DEPTH_LEVELS);
    }

    /// Refills side `w` to [`DEPTH_LEVELS`] behind its worst level and trims it.
    fn refill(&mut self, rng: &mut Rng, w: Which) {
        self.side(w).trim(DEPTH_LEVELS);
        while self.side(w).len < DEPTH_LEVELS {
            let Some(worst) = self.side(w).worst() else {
                return;
            };
            let g = self.gap(rng);
            let px = self.side(w).worse_by(worst.px, g);
            if px < 1 {
                return;
            }
            let q = self.depth_size(rng);
            self.side(w).set(px, q);
        }
    }

    /// Target best bid and ask for a `k`-tick spread around the model mid.
    #[inline]
    fn target(&self, k: i64) -> (Px, Px) {
        let b = ((self.mid - k as f64 / 2.0).round() as Px).max(1);
        (b, b + k)
    }

    /// Builds the initial book around the model mid.
    fn init(&mut self, rng: &mut Rng) {
        let (b, a) = self.target(1);
        self.place_top(rng, Which::Bids, b);
        self.place_top(rng, Which::Asks, a);
        self.refill(rng, Which::Bids);
        self.refill(rng, Which::Asks);
    }

    /// One depth step: requote (pushing sweep trades into `trades`), churn, refill.
    fn step(&mut self, rng: &mut Rng, trades: &mut Vec<(EventKind, Px, Qty)>) {
        let k = if rng.uniform() < self.p.wide_spread_prob { 2 + rng.below(3) as i64 } else { 1 };
        let (tb, ta) = self.target(k);
        let (bb, ba) = (self.bids.best(), self.asks.best());
        let new_top = match (bb, ba) {
            (Some(b), Some(a)) => {
                let qmid = (b.px + a.px) as f64 * 0.5;
                if (self.mid - qmid).abs() > self.p.requote_ticks {
                    Some((tb, ta))
                } else if a.px - b.px > k {
                    let nb = tb.clamp(b.px, a.px - 1);
                    let na = ta.clamp(nb + 1, a.px);
                    Some((nb, na))
                } else {
                    None
                }
            }
            _ => Some((tb, ta)),
        };
        if let Some((nb, na)) = new_top {
            if bb.map(|l| l.px) != Some(nb) || ba.map(|l| l.px) != Some(na) {
                while let Some(l) = self.asks.best().filter(|l| l.px < na) {
                    self.asks.remove_at(0);
                    let q = self.trade_size(rng).min(l.qty);
                    trades.push((EventKind::TradeBuy, l.px, q));
                }
                while let Some(l) = self.bids.best().filter(|l| l.px > nb) {
                    self.bids.remove_at(0);
                    let q = self.trade_size(rng).min(l.qty);
                    trades.push((EventKind::TradeSell, l.px, q));
                }
                self.place_top(rng, Which::Bids, nb);
                self.place_top(rng, Which::Asks, na);
            }
        }
        self.churn(rng);
        self.refill(rng, Which::Bids);
        self.refill(rng, Which::Asks);
    }

    /// Random level changes of a live book: resize, cancel, or a new level in a gap.
    fn churn(&mut self, rng: &mut Rng) {
        let n = rng.poisson(self.p.churn).max(1);
        for _ in 0..n {
            let w = if rng.uniform() < 0.5 { Which::Bids } else { Which::Asks };
            let len = self.side(w).len;
            if len < 2 {
                continue;
            }
            let u = rng.uniform();
            if u < 0.5 {
                let i = rng.below(len as u64) as usize;
                let q = if i == 0 { self.top_size(rng) } else { self.depth_size(rng) };
                let px = self.side(w).lv[i].px;
                self.side(w).set(px, q);
            } else if u < 0.75 {
                let i = 1 + rng.below(len as u64 - 1) as usize;
                self.side(w).remove_at(i);
            } else {
                let i = 1 + rng.below(len as u64 - 1) as usize;
                let (a, b) = (self.side(w).lv[i - 1].px, self.side(w).lv[i].px);
                let gap = (a - b).abs();
                let q = self.depth_size(rng);
                if gap >= 2 {
                    let d = 1 + rng.below(gap as u64 - 1) as i64;
                    let px = self.side(w).worse_by(a, d);
                    self.side(w).set(px, q);
                } else {
                    self.side(w).set(b, q);
                }
            }
        }
    }

    /// An aggressive order of `size` lots against side `w` (asks for a buy): fills go to
    /// `trades`, consumed levels are removed.
    fn aggress(&mut self, w: Which, size: Qty, trades: &mut Vec<(EventKind, Px, Qty)>) {
        let kind = if w == Which::Asks { EventKind::TradeBuy } else { EventKind::TradeSell };
        let side = self.side(w);
        let mut rem = size;
        for _ in 0..MAX_WALK {
            let Some(top) = side.best() else { break };
            if rem < top.qty {
                side.set(top.px, top.qty - rem);
                trades.push((kind, top.px, rem));
                break;
            }
            if side.len <= MIN_KEEP {
                break;
            }
            side.remove_at(0);
            trades.push((kind, top.px, top.qty));
            rem -= top.qty;
            if rem == 0 {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The generator.
// ---------------------------------------------------------------------------------

/// The output vector with its fixed target length and the FIFO local clock.
#[derive(Debug)]
struct Out {
    ev: Vec<MarketEvent>,
    target: usize,
    last_local: Ts,
    lat_min: i64,
    lat_mean: f64,
    lat_max: i64,
}

impl Out {
    #[inline]
    fn room(&self) -> usize {
        self.target - self.ev.len()
    }

    /// Local receive time of a message sent at `exch`.
    #[inline]
    fn local(&mut self, rng: &mut Rng, exch: Ts) -> Ts {
        let lat = (self.lat_min + rng.exp(self.lat_mean) as i64).min(self.lat_max);
        self.last_local = exch.saturating_add(lat).max(self.last_local);
        self.last_local
    }
}

#[derive(Debug)]
struct Gen {
    rng: Rng,
    legs: [Leg; 2],
    out: Out,
    truth: Truth,
    trades: Vec<(EventKind, Px, Qty)>,
    // Model state and constants.
    dt_ns: i64,
    sqrt_dt: f64,
    btc: f64,
    fund: f64,
    spread: f64,
    beta_center: f64,
    beta_x: f64,
    beta: f64,
    btc_sigma: f64,
    btc_jump_prob: f64,
    spread_jump_prob: f64,
    spread_phi: f64,
    spread_innov: f64,
    beta_phi: f64,
    beta_innov: f64,
    break_after: Option<usize>,
    break_size: f64,
    flow_skew: f64,
    trade_rates: [f64; 2],
    start_ts: Ts,
    truth_interval: i64,
}

impl Gen {
    fn new(p: &GenParams) -> Self {
        let insts = instruments();
        let mut rng = Rng::new(p.seed);
        let dt = p.depth_interval_ns as f64 / NS_PER_SEC as f64;
        let ou = |half_life: f64| det_exp(-std::f64::consts::LN_2 * dt / half_life);
        let spread_phi = ou(p.spread_half_life_s);
        let beta_phi = ou(p.beta_drift_half_life_s);
        let spread = p.spread_std * rng.normal();
        let break_after = (p.break_at > 0.0 && p.break_at < 1.0).then_some((p.break_at * p.events as f64) as usize);
        let mut ev = Vec::new();
        if ev.try_reserve_exact(p.events).is_err() {
            ev.reserve(p.events.min(1 << 20));
        }
        Gen {
            rng,
            legs: [Leg::new(BTC, &p.btc, &insts[0]), Leg::new(ETH, &p.eth, &insts[1])],
            out: Out {
                ev,
                target: p.events,
                last_local: i64::MIN,
                lat_min: p.latency_min_ns,
                lat_mean: p.latency_extra_mean_ns as f64,
                lat_max: p.latency_max_ns,
            },
            truth: Truth::default(),
            trades: Vec::with_capacity(64),
            dt_ns: p.depth_interval_ns,
            sqrt_dt: dt.sqrt(),
            btc: p.btc_start,
            fund: p.eth_start - spread,
            spread,
            beta_center: p.beta,
            beta_x: 0.0,
            beta: p.beta,
            btc_sigma: p.btc_sigma,
            btc_jump_prob: p.btc_jump_prob,
            spread_jump_prob: p.spread_jump_prob,
            spread_phi,
            spread_innov: p.spread_std * (1.0 - spread_phi * spread_phi).max(0.0).sqrt(),
            beta_phi,
            beta_innov: p.beta_drift_std * (1.0 - beta_phi * beta_phi).max(0.0).sqrt(),
            break_after,
            break_size: p.break_size,
            flow_skew: p.flow_skew,
            trade_rates: [p.btc.trade_rate, p.eth.trade_rate],
            start_ts: p.start_ts,
            truth_interval: p.truth_interval_ns,
        }
    }

    fn alpha(&self) -> f64 {
        self.fund - self.beta * self.btc
    }

    /// Advances the price model by one step.
    fn advance_model(&mut self, t: Ts) {
        let rng = &mut self.rng;
        let d_btc = jump(rng, self.btc_jump_prob, self.btc_sigma * self.sqrt_dt);
        let btc = self.btc + d_btc;
        self.fund += self.beta * (btc - self.btc);
        self.btc = btc;
        self.beta_x = self.beta_phi * self.beta_x + self.beta_innov * rng.normal();
        self.spread = self.spread_phi * self.spread + jump(rng, self.spread_jump_prob, self.spread_innov);
        if self.break_after.is_some_and(|n| self.out.ev.len() >= n) {
            self.break_after = None;
            let (beta_before, alpha_before) = (self.beta, self.alpha());
            self.beta_center *= 1.0 + self.break_size;
            self.beta = self.beta_center * (1.0 + self.beta_x);
            self.truth.beta_break =
                Some(BetaBreak { ts: t, beta_before, beta_after: self.beta, alpha_before, alpha_after: self.alpha() });
        }
        // Beta's drift moves alpha, not the price (`fund` is untouched).
        self.beta = self.beta_center * (1.0 + self.beta_x);
    }

    /// Sets both legs' model mids in ticks.
    fn set_mids(&mut self) {
        let eth = self.fund + self.spread;
        for (leg, usd) in self.legs.iter_mut().zip([self.btc, eth]) {
            let m = usd / leg.tick;
            leg.mid = if m.is_finite() { m.clamp(MIN_MID_TICKS, MAX_MID_TICKS) } else { MIN_MID_TICKS };
        }
    }

    fn sample_truth(&mut self, t: Ts, next: &mut Ts) {
        if t >= *next {
            self.truth.samples.push(TruthSample {
                ts: t,
                btc_mid: self.btc,
                eth_mid: self.fund + self.spread,
                alpha: self.alpha(),
                beta: self.beta,
                spread: self.spread,
            });
            *next = next.saturating_add(self.truth_interval);
        }
    }

    fn run(&mut self) {
        let mut t = self.start_ts;
        let mut next_truth = t;
        let total_rate = self.trade_rates[0] + self.trade_rates[1];
        let mut next_trade =
            if total_rate > 0.0 { t as f64 + self.rng.exp(NS_PER_SEC as f64 / total_rate) } else { f64::INFINITY };
        self.set_mids();
        for i in 0..2 {
            self.legs[i].init(&mut self.rng);
        }
        let mut first = true;
        while self.out.room() > 0 {
            if !first {
                self.advance_model(t);
                self.set_mids();
            }
            self.sample_truth(t, &mut next_truth);
            for i in 0..2 {
                if !first {
                    self.legs[i].step(&mut self.rng, &mut self.trades);
                }
                self.emit_trades(i, t);
                self.emit_diff(i, t);
                self.emit_bbo(i, t);
            }
            first = false;
            let end = t.saturating_add(self.dt_ns);
            while next_trade < end as f64 && self.out.room() > 0 {
                let ts = next_trade as Ts;
                let i = if self.rng.uniform() * total_rate < self.trade_rates[0] { 0 } else { 1 };
                self.aggressor(i, ts);
                next_trade += self.rng.exp(NS_PER_SEC as f64 / total_rate);
            }
            t = end;
        }
    }

    fn aggressor(&mut self, i: usize, ts: Ts) {
        let leg = &mut self.legs[i];
        let (Some(b), Some(a)) = (leg.bids.best(), leg.asks.best()) else {
            return;
        };
        let dev = (leg.mid - (b.px + a.px) as f64 * 0.5) / leg.p.requote_ticks.max(1.0);
        let p_buy = 0.5 + self.flow_skew * dev.clamp(-1.0, 1.0);
        let w = if self.rng.uniform() < p_buy { Which::Asks } else { Which::Bids };
        let size = leg.trade_size(&mut self.rng);
        leg.aggress(w, size, &mut self.trades);
        self.emit_trades(i, ts);
        self.emit_bbo(i, ts);
    }

    /// Sends the pending trades of leg `i`, one message each.
    fn emit_trades(&mut self, i: usize, exch: Ts) {
        let inst = self.legs[i].inst;
        for k in 0..self.trades.len() {
            if self.out.room() == 0 {
                break;
            }
            let (kind, px, qty) = self.trades[k];
            let local = self.out.local(&mut self.rng, exch);
            self.out.ev.push(MarketEvent {
                exch_ts: exch,
                local_ts: local,
                px,
                qty,
                inst,
                kind,
                flags: MarketEvent::END_OF_BATCH,
            });
        }
        self.trades.clear();
    }

    /// Sends a book ticker for leg `i` if its top differs from the last one sent.
    fn emit_bbo(&mut self, i: usize, exch: Ts) {
        let leg = &self.legs[i];
        let (Some(b), Some(a)) = (leg.bids.best(), leg.asks.best()) else {
            return;
        };
        let top = (b.px, b.qty, a.px, a.qty);
        if leg.last_bbo == Some(top) || self.out.room() == 0 {
            return;
        }
        let last = leg.last_bbo;
        let inst = leg.inst;
        self.legs[i].last_bbo = Some(top);
        let local = self.out.local(&mut self.rng, exch);
        let ev = |kind, px, qty, flags| MarketEvent { exch_ts: exch, local_ts: local, px, qty, inst, kind, flags };
        let bid = ev(EventKind::BestBid, b.px, b.qty, 0);
        let ask = ev(EventKind::BestAsk, a.px, a.qty, MarketEvent::END_OF_BATCH);
        if self.out.room() >= 2 {
            self.out.ev.push(bid);
            self.out.ev.push(ask);
        } else if last.is_none_or(|(_, _, last_ask, _)| b.px < last_ask) {
            // Only one slot: the bid alone cannot cross the consumer's book, whose
            // best ask is the last one sent.
            self.out.ev.push(MarketEvent { flags: MarketEvent::END_OF_BATCH, ..bid });
        } else {
            // Then the ask is above the last bid sent (b < a), so it alone is safe.
            self.out.ev.push(ask);
        }
    }

    /// Sends the depth diff of leg `i`: the current size of every changed level,
    /// deletions first (see the module docs), then clears the changed sets.
    fn emit_diff(&mut self, i: usize, exch: Ts) {
        let leg = &self.legs[i];
        if leg.bids.dirty.is_empty() && leg.asks.dirty.is_empty() {
            return;
        }
        if self.out.room() > 0 {
            let local = self.out.local(&mut self.rng, exch);
            let start = self.out.ev.len();
            let leg = &self.legs[i];
            let passes = [
                (&leg.bids, EventKind::BidLevel, true),
                (&leg.asks, EventKind::AskLevel, true),
                (&leg.bids, EventKind::BidLevel, false),
                (&leg.asks, EventKind::AskLevel, false),
            ];
            'passes: for (side, kind, deletions) in passes {
                for &px in &side.dirty {
                    let qty = side.qty_at(px);
                    if (qty == 0) != deletions {
                        continue;
                    }
                    if self.out.ev.len() == self.out.target {
                        break 'passes;
                    }
                    self.out.ev.push(MarketEvent {
                        exch_ts: exch,
                        local_ts: local,
                        px,
                        qty,
                        inst: leg.inst,
                        kind,
                        flags: 0,
                    });
                }
            }
            if self.out.ev.len() > start {
                if let Some(last) = self.out.ev.last_mut() {
                    last.flags |= MarketEvent::END_OF_BATCH;
                }
            }
        }
        self.legs[i].bids.dirty.clear();
        self.legs[i].asks.dirty.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A plain reference book per instrument, applying events by their documented
    /// meaning.
    #[derive(Default, Clone)]
    struct RefBook {
        bids: BTreeMap<Px, Qty>,
        asks: BTreeMap<Px, Qty>,
    }

    impl RefBook {
        fn apply(&mut self, e: &MarketEvent) {
            match e.kind {
                EventKind::BidLevel | EventKind::AskLevel => {
                    let side = if e.kind == EventKind::BidLevel { &mut self.bids } else { &mut self.asks };
                    if e.qty == 0 {
                        side.remove(&e.px);
                    } else {
                        side.insert(e.px, e.qty);
                    }
                }
                EventKind::BestBid => {
                    self.bids.retain(|&p, _| p <= e.px);
                    self.bids.insert(e.px, e.qty);
                }
                EventKind::BestAsk => {
                    self.asks.retain(|&p, _| p >= e.px);
                    self.asks.insert(e.px, e.qty);
                }
                EventKind::Clear => {
                    self.bids.clear();
                    self.asks.clear();
                }
                EventKind::TradeBuy | EventKind::TradeSell => {}
            }
        }

        fn top(&self) -> Option<(Px, Px)> {
            Some((*self.bids.keys().next_back()?, *self.asks.keys().next()?))
        }

        fn mid(&self) -> Option<f64> {
            self.top().map(|(b, a)| (b + a) as f64 * 0.5)
        }
    }

    fn small(events: usize, seed: u64) -> Dataset {
        generate(&GenParams { seed, events, ..GenParams::default() })
    }

    #[test]
    fn exact_count_sorted_and_valid() {
        for n in [0, 1, 2, 3, 17, 50, 1_000, 20_000] {
            let ds = small(n, 3);
            assert_eq!(ds.events.len(), n);
            assert_eq!(ds.instruments, instruments());
            if let Some(last) = ds.events.last() {
                assert!(last.is_batch_end(), "n = {n}");
            }
            for w in ds.events.windows(2) {
                assert!(w[0].local_ts <= w[1].local_ts);
            }
            for e in &ds.events {
                // FIFO never pushes latency past the cap: the previous message's local
                // time is at most its exchange time (<= this one's) plus the cap.
                let lat = e.local_ts - e.exch_ts;
                assert!((NS_PER_MS..=5 * NS_PER_MS).contains(&lat), "{e:?}");
                assert!(e.px > 0 && e.qty >= 0);
                if e.kind.is_trade() || matches!(e.kind, EventKind::BestBid | EventKind::BestAsk) {
                    assert!(e.qty > 0, "{e:?}");
                }
                assert!((e.inst as usize) < 2);
                assert!(e.exch_ts >= DEFAULT_START_TS);
            }
        }
    }

    #[test]
    fn deterministic_per_seed() {
        let p = |seed| GenParams { seed, events: 30_000, ..GenParams::default() };
        let (a, ta) = generate_with_truth(&p(7));
        let (b, tb) = generate_with_truth(&p(7));
        let c = generate(&p(8));
        assert_eq!(a.events, b.events);
        assert_eq!(ta, tb);
        assert_ne!(a.events, c.events);
        assert_eq!(generate(&p(7)).events, a.events);
    }

    /// Fingerprint of the default stream's start: a change here means the data set
    /// changed for every user (update it only on purpose).
    #[test]
    fn golden_fingerprint() {
        let ds = small(50_000, 1);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |v: i64| {
            for b in v.to_le_bytes() {
                h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
        };
        for e in &ds.events {
            eat(e.exch_ts);
            eat(e.local_ts);
            eat(e.px);
            eat(e.qty);
            eat(((e.inst as i64) << 16) | ((e.kind as i64) << 8) | e.flags as i64);
        }
        assert_eq!(h, 0x3361_c3e7_d3a3_9dd3, "fingerprint {h:#x}");
    }

    /// Replays events into reference books; checks at every batch end that each book
    /// is uncrossed and, after its first diff, has 5 to 10 levels per side (except
    /// after the data set's last event, which may be a diff cut short). Returns
    /// (time, btc mid, eth mid) sampled every second of local time.
    fn replay_checked(ds: &Dataset) -> Vec<(Ts, f64, f64)> {
        let mut books = [RefBook::default(), RefBook::default()];
        let mut warm = [false, false];
        let mut samples = Vec::new();
        let mut next = DEFAULT_START_TS;
        for (n, e) in ds.events.iter().enumerate() {
            let i = e.inst as usize;
            books[i].apply(e);
            if !e.is_batch_end() {
                continue;
            }
            if matches!(e.kind, EventKind::BidLevel | EventKind::AskLevel) {
                warm[i] = true;
            }
            if let Some((b, a)) = books[i].top() {
                assert!(b < a, "crossed book {i} at event {n}: {b} >= {a}");
            }
            if warm[i] && n + 1 < ds.events.len() {
                let (nb, na) = (books[i].bids.len(), books[i].asks.len());
                assert!(nb >= 5 && na >= 5, "book {i} thin at event {n}: {nb}/{na}");
                assert!(nb <= DEPTH_LEVELS && na <= DEPTH_LEVELS, "book {i} leaks levels at {n}");
            }
            if warm[0] && warm[1] && e.local_ts >= next {
                samples.push((e.local_ts, books[0].mid().unwrap(), books[1].mid().unwrap()));
                next = e.local_ts + NS_PER_SEC;
            }
        }
        samples
    }

    #[test]
    fn books_never_cross_and_stay_deep() {
        let ds = small(250_000, 11);
        let samples = replay_checked(&ds);
        assert!(samples.len() > 100);
        // Trades print at or through the book: a buy at or above the best ask.
        let mut books = [RefBook::default(), RefBook::default()];
        for e in &ds.events {
            let book = &books[e.inst as usize];
            if let (Some((b, a)), true) = (book.top(), e.kind.is_trade()) {
                match e.kind {
                    EventKind::TradeBuy => assert!(e.px >= a, "{e:?} vs ask {a}"),
                    _ => assert!(e.px <= b, "{e:?} vs bid {b}"),
                }
            }
            books[e.inst as usize].apply(e);
        }
    }

    #[test]
    fn every_truncation_ends_uncrossed() {
        // Cut the stream at every length in a window: the last message may be cut, and
        // must still leave an uncrossed book.
        for n in 2_000..2_300 {
            let ds = small(n, 5);
            replay_checked(&ds);
        }
    }

    fn ols(x: &[f64], y: &[f64]) -> (f64, f64) {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
        let beta = sxy / sxx;
        (my - beta * mx, beta)
    }

    #[test]
    fn pair_is_cointegrated() {
        let (ds, truth) = generate_with_truth(&GenParams::default());
        let samples = replay_checked(&ds);
        let half_ts = ds.events[ds.events.len() / 2].local_ts;
        let first: Vec<_> = samples.iter().filter(|s| s.0 < half_ts).collect();
        let btc: Vec<f64> = first.iter().map(|s| s.1 * 0.01).collect();
        let eth: Vec<f64> = first.iter().map(|s| s.2 * 0.01).collect();
        let (alpha, beta) = ols(&btc, &eth);
        let betas: Vec<f64> = truth.samples.iter().filter(|s| s.ts < half_ts).map(|s| s.beta).collect();
        let true_beta = betas.iter().sum::<f64>() / betas.len() as f64;
        let err = (beta - true_beta).abs() / true_beta;
        assert!(err < 0.10, "OLS beta {beta} vs true {true_beta}");
        // The residual mean-reverts: AR(1) on 1 s samples well below a random walk's.
        let res: Vec<f64> = btc.iter().zip(&eth).map(|(x, y)| y - alpha - beta * x).collect();
        let (_, phi) = ols(&res[..res.len() - 1], &res[1..]);
        let half_life = -std::f64::consts::LN_2 / phi.ln();
        assert!(phi < 1.0 && half_life > 5.0 && half_life < 600.0, "phi {phi}, half-life {half_life}");
        // The break happened at 60 % of the events: beta -8 %, alpha reset, ETH
        // continuous.
        let br = truth.beta_break.expect("break");
        let at_break = ds.events.partition_point(|e| e.exch_ts < br.ts);
        assert!((at_break as f64 / ds.events.len() as f64 - 0.6).abs() < 0.001);
        assert!((br.beta_after / br.beta_before - 0.92).abs() < 1e-3);
        let before = truth.at(br.ts - 1).unwrap();
        let after = truth.samples.iter().find(|s| s.ts >= br.ts).unwrap();
        assert!((after.beta / before.beta - 0.92).abs() < 3e-3);
        assert!((after.eth_mid - before.eth_mid).abs() < 5.0);
        assert!(after.alpha - before.alpha > 150.0, "{before:?} {after:?}");
        assert_eq!(truth.beta_at(after.ts), Some(after.beta));
        assert_eq!(truth.beta_at(DEFAULT_START_TS - 1), None);
    }

    #[test]
    fn invalid_params_fall_back() {
        let bad = GenParams {
            events: 5_000,
            btc_sigma: f64::NAN,
            beta: -1.0,
            depth_interval_ns: 0,
            latency_max_ns: -5,
            btc: LegParams { trade_rate: f64::INFINITY, gap_mean_ticks: 0.0, ..LegParams::btc() },
            eth: LegParams { churn: -3.0, top_size_median: 0.0, ..LegParams::eth() },
            ..GenParams::default()
        };
        assert!(matches!(bad.validate(), Err(GenError::Invalid { name: "btc_sigma", .. })));
        assert_eq!(GenParams::default().validate(), Ok(()));
        let ds = generate(&bad);
        assert_eq!(ds.events.len(), 5_000);
        replay_checked(&ds);
        // Extreme but valid parameters still give valid books.
        let wild = GenParams {
            events: 20_000,
            btc_start: 5.0,
            btc_sigma: 1_000.0,
            eth_start: 1.0,
            spread_std: 50.0,
            btc: LegParams { requote_ticks: 0.0, churn: 50.0, wide_spread_prob: 1.0, ..LegParams::btc() },
            eth: LegParams { trade_rate: 1_000.0, gap_one_prob: 1.0, ..LegParams::eth() },
            ..GenParams::default()
        };
        let ds = generate(&wild);
        assert_eq!(ds.events.len(), 20_000);
        replay_checked(&ds);
    }

    fn median(v: &mut [f64]) -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn sd(v: &[f64]) -> f64 {
        let m = mean(v);
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
    }

    /// First-half OLS beta error and residual half-life of a data set.
    fn pair_stats(ds: &Dataset, truth: &Truth) -> (f64, f64, f64) {
        let samples = replay_checked(ds);
        let half_ts = ds.events[ds.events.len() / 2].local_ts;
        let first: Vec<_> = samples.iter().filter(|s| s.0 < half_ts).collect();
        let btc: Vec<f64> = first.iter().map(|s| s.1 * 0.01).collect();
        let eth: Vec<f64> = first.iter().map(|s| s.2 * 0.01).collect();
        let (alpha, beta) = ols(&btc, &eth);
        let truth: Vec<f64> = truth.samples.iter().filter(|s| s.ts < half_ts).map(|s| s.beta).collect();
        let true_beta = mean(&truth);
        let res: Vec<f64> = btc.iter().zip(&eth).map(|(x, y)| y - alpha - beta * x).collect();
        let (_, phi) = ols(&res[..res.len() - 1], &res[1..]);
        if std::env::var("STATS_VERBOSE").is_ok() {
            println!("  first half: OLS beta {beta:.5}, mean true beta {true_beta:.5}");
        }
        (beta / true_beta - 1.0, -std::f64::consts::LN_2 / phi.ln(), sd(&res))
    }

    /// Statistics of the default data set next to the measured ones (module docs).
    /// `cargo test --release --lib feed::gen::tests::print_stats -- --ignored --nocapture`
    #[test]
    #[ignore = "prints calibration statistics for the module docs; run by hand"]
    fn print_stats() {
        let p = GenParams::default();
        let t0 = std::time::Instant::now();
        let ds = generate(&p);
        let gen_time = t0.elapsed();
        let (_, truth) = generate_with_truth(&p);
        let t0 = std::time::Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gen.evt");
        crate::feed::evfile::write(std::fs::File::create(&path).unwrap(), &ds.instruments, &ds.events).unwrap();
        let write_time = t0.elapsed();
        let t0 = std::time::Instant::now();
        let back = crate::feed::evmap::EventMap::open(&path).unwrap();
        let read_time = t0.elapsed();
        assert!(back.iter().eq(ds.events.iter().copied()));
        let file_len = std::fs::metadata(&path).unwrap().len();
        let ev = &ds.events;
        let span = (ev.last().unwrap().local_ts - ev[0].local_ts) as f64 / 1e9;
        println!(
            "{} events, {:.0} s of market time ({:.0} events/s); generate {:?}, evfile write {:?} map and validate {:?} ({} MB)",
            ev.len(),
            span,
            ev.len() as f64 / span,
            gen_time,
            write_time,
            read_time,
            file_len >> 20
        );
        for (i, inst) in ds.instruments.iter().enumerate() {
            let mut book = RefBook::default();
            let (mut tickers, mut one_tick_t, mut diffs, mut one_tick_d) = (0usize, 0, 0, 0);
            let mut top_sizes = Vec::new();
            let mut trade_sizes = Vec::new();
            let mut diff_len = Vec::new();
            let mut cur_diff = 0usize;
            let mut n_events = 0usize;
            let mut mids_100ms: Vec<f64> = Vec::new();
            let mut next = ev[0].local_ts;
            let mut aggressors = 0usize;
            let mut last_trade = (0, EventKind::Clear);
            for e in ev.iter().filter(|e| e.inst as usize == i) {
                n_events += 1;
                book.apply(e);
                match e.kind {
                    EventKind::BidLevel | EventKind::AskLevel => cur_diff += 1,
                    EventKind::BestAsk => {
                        tickers += 1;
                        let (b, a) = book.top().unwrap();
                        one_tick_t += (a - b == 1) as usize;
                        top_sizes.push(inst.qty_f64(e.qty));
                        top_sizes.push(inst.qty_f64(book.bids[&b]));
                    }
                    EventKind::TradeBuy | EventKind::TradeSell => {
                        trade_sizes.push(inst.qty_f64(e.qty));
                        if last_trade != (e.exch_ts, e.kind) {
                            aggressors += 1;
                        }
                        last_trade = (e.exch_ts, e.kind);
                    }
                    _ => {}
                }
                if e.is_batch_end() && matches!(e.kind, EventKind::BidLevel | EventKind::AskLevel) {
                    diffs += 1;
                    diff_len.push(cur_diff as f64);
                    cur_diff = 0;
                    if let Some((b, a)) = book.top() {
                        one_tick_d += (a - b == 1) as usize;
                    }
                }
                while e.local_ts >= next {
                    if let Some(m) = book.mid() {
                        mids_100ms.push(m);
                    }
                    next += 100 * NS_PER_MS;
                }
            }
            let dm: Vec<f64> = mids_100ms.windows(2).map(|w| w[1] - w[0]).collect();
            let unchanged = dm.iter().filter(|d| **d == 0.0).count() as f64 / dm.len() as f64;
            let mut nonzero: Vec<f64> = dm.iter().filter(|d| **d != 0.0).map(|d| d.abs()).collect();
            let vol = |h: usize| {
                let d: Vec<f64> = mids_100ms
                    .iter()
                    .step_by(h)
                    .collect::<Vec<_>>()
                    .windows(2)
                    .map(|w| (w[1] - w[0]) * inst.tick_f64())
                    .collect();
                sd(&d) / (h as f64 / 10.0).sqrt()
            };
            println!(
                "{}: {:.0} events/s; spread 1 tick: {:.1} % of tickers, {:.1} % at diffs; ticker top size median {:.5} mean {:.5}",
                inst.symbol,
                n_events as f64 / span,
                100.0 * one_tick_t as f64 / tickers as f64,
                100.0 * one_tick_d as f64 / diffs as f64,
                median(&mut top_sizes.clone()),
                mean(&top_sizes)
            );
            println!(
                "  trades {:.1}/s, aggressors {:.1}/s, size median {:.5} mean {:.5}; diffs {:.1}/s, levels per diff median {} mean {:.2}; tickers {:.1}/s",
                trade_sizes.len() as f64 / span,
                aggressors as f64 / span,
                median(&mut trade_sizes.clone()),
                mean(&trade_sizes),
                diffs as f64 / span,
                median(&mut diff_len.clone()),
                mean(&diff_len),
                tickers as f64 / span
            );
            println!(
                "  mid unchanged over 100 ms {:.1} %, else median {} ticks; vol per sqrt(s) at 1/10/30 s: {:.3} {:.3} {:.3}",
                100.0 * unchanged,
                median(&mut nonzero),
                vol(10),
                vol(100),
                vol(300)
            );
        }
        let samples = replay_checked(&ds);
        let d10 = |k: usize| -> Vec<f64> {
            samples
                .iter()
                .step_by(10)
                .collect::<Vec<_>>()
                .windows(2)
                .map(|w| if k == 1 { w[1].1 - w[0].1 } else { w[1].2 - w[0].2 })
                .collect()
        };
        let (db, de) = (d10(1), d10(2));
        let (mb, me) = (mean(&db), mean(&de));
        let cov: f64 = db.iter().zip(&de).map(|(a, b)| (a - mb) * (b - me)).sum::<f64>();
        let corr = cov / (sd(&db) * sd(&de) * db.len() as f64);
        let (err, hl, rsd) = pair_stats(&ds, &truth);
        println!("pair: corr of 10 s changes {corr:.3}; first half OLS beta error {:+.2} %, residual sd {rsd:.2} USD, half-life {hl:.0} s; break {:?}", 100.0 * err, truth.beta_break);
        let seeds: u64 = std::env::var("STATS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut errs = Vec::new();
        for seed in 1..=seeds {
            let (ds, truth) = generate_with_truth(&GenParams { seed, ..GenParams::default() });
            let (err, hl, _) = pair_stats(&ds, &truth);
            println!("  seed {seed}: beta error {:+.2} %, half-life {hl:.0} s", 100.0 * err);
            errs.push(err);
        }
        if !errs.is_empty() {
            let worst = errs.iter().fold(0.0f64, |m, e| m.max(e.abs()));
            println!(
                "  over {seeds} seeds: rms error {:.2} %, worst {:.2} %",
                100.0 * (errs.iter().map(|e| e * e).sum::<f64>() / errs.len() as f64).sqrt(),
                100.0 * worst
            );
        }
    }
}
