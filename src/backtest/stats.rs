//! The backtest report: performance, execution and inventory statistics computed from
//! a [`Trace`], written to `report.json` and printed as a summary.
//!
//! Every statistic is a plain function of the trace, defined in the doc of its
//! [`Report`] field. Conventions:
//!
//! - PnL, fees, drawdown and turnover are in the quote asset (USDT for the built-in
//!   pair), positions in base-asset units of their leg.
//! - Samples are taken at a fixed event-time interval, so an average over samples is a
//!   time average.
//! - Values that are undefined for the trace at hand (a Sharpe ratio without variance, a
//!   maker share without fills, ...) are `None` (`null` in JSON, `n/a` when printed),
//!   never `NaN` or infinity.
//! - Samples with a non-finite value are skipped for the statistics that need that
//!   value (mids and PnL are `NaN` while a book is one-sided); fills with a leg index
//!   out of range or a non-finite price, size or fee are skipped and counted in
//!   [`Report::invalid_fills`].

use std::fmt;

use serde::Serialize;

use super::trace::{FillRecord, Trace};
use crate::types::{Ts, NS_PER_SEC};

/// Seconds in the 365-day year used to annualise the Sharpe ratio (crypto trades
/// every day of the year).
pub const SECONDS_PER_YEAR: f64 = 365.0 * 86_400.0;

/// A position is flat when its magnitude is at most this fraction of the largest fill
/// size of its leg. Positions are rebuilt by summing fill sizes in `f64`, which leaves
/// a rounding residue (`0.1 + 0.2 - 0.3 != 0`) of a few ulps of the largest position;
/// a real non-zero position is at least one lot, orders of magnitude above this.
const FLAT_REL_TOL: f64 = 1e-9;

/// The backtest report. See the module docs for units and conventions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Symbols `[y, x]`.
    pub symbols: [String; 2],
    /// Number of samples in the trace.
    pub samples: usize,
    /// Time from the first to the last sample, seconds.
    pub duration_s: f64,
    /// Sampling interval used for the Sharpe ratio, seconds: [`Trace::sample_interval_ns`]
    /// when positive, else the mean spacing of the samples; `None` if neither is
    /// positive.
    pub sample_interval_s: Option<f64>,
    /// PnL before fees at the last sample with finite PnL, marked at the mids (quote
    /// asset).
    pub pnl_gross: Option<f64>,
    /// Fees paid up to that same sample (quote asset; negative for net rebates).
    pub fees: Option<f64>,
    /// `pnl_gross - fees` at that same sample (quote asset).
    pub pnl_net: Option<f64>,
    /// Annualised Sharpe ratio of net PnL: with `d_i = net_i - net_{i-1}` the changes
    /// between consecutive samples (both finite), `mean(d) / sd(d) * sqrt(n_year)`, `sd`
    /// the sample standard deviation (divisor `n - 1`) and `n_year` =
    /// [`Report::samples_per_year`]. No risk-free rate (PnL is already an excess
    /// return on no capital). `None` with fewer than 2 changes, zero variance or no
    /// sampling interval.
    pub sharpe: Option<f64>,
    /// Samples per 365-day year, `365 * 86400 / sample_interval_s`: the annualisation
    /// factor of [`Report::sharpe`] is its square root.
    pub samples_per_year: Option<f64>,
    /// Largest peak-to-trough drop of net PnL over the samples: `max_j (max_{i <= j}
    /// net_i - net_j)`, quote asset, `>= 0` (0 if PnL never fell).
    pub max_drawdown: f64,
    /// Time of the peak that starts [`Report::max_drawdown`], seconds from the first
    /// sample; `None` if there was no drawdown.
    pub max_drawdown_peak_s: Option<f64>,
    /// Time of the trough that ends [`Report::max_drawdown`], seconds from the first
    /// sample; `None` if there was no drawdown.
    pub max_drawdown_trough_s: Option<f64>,
    /// Traded notional, `sum |px * qty|` over the fills (quote asset).
    pub turnover: f64,
    /// [`Report::turnover`] per leg.
    pub turnover_per_leg: [f64; 2],
    /// Fills counted (one per fill record: a partly filled order can have several).
    pub fills: u64,
    /// [`Report::fills`] per leg.
    pub fills_per_leg: [u64; 2],
    /// New orders that reached the matching engine ([`Trace::orders`]).
    pub orders: u64,
    /// Orders rejected by the matching engine.
    pub rejects: u64,
    /// Cancels confirmed by the matching engine.
    pub cancels: u64,
    /// Pair round trips: times the pair went from flat (both legs' positions zero) to
    /// not flat and back to flat. Positions are rebuilt from the fills, starting flat.
    pub round_trips: u64,
    /// Round trips per leg: times that leg's position went from zero to non-zero and
    /// back to zero (a sign flip without passing through zero does not end one).
    pub round_trips_per_leg: [u64; 2],
    /// `fills / orders`; can exceed 1 when orders fill in parts. `None` without orders.
    pub fill_ratio: Option<f64>,
    /// Maker fills / fills, by count. `None` without fills.
    pub maker_share: Option<f64>,
    /// Maker notional / total notional. `None` without turnover.
    pub maker_share_notional: Option<f64>,
    /// Mean of [`FillRecord::queue_wait_ns`] over maker fills, milliseconds. `None`
    /// without maker fills.
    pub mean_queue_wait_ms: Option<f64>,
    /// Mean `|position|` per leg over the samples with a finite position (base units):
    /// a time average, samples being equally spaced.
    pub inventory_mean_abs: [f64; 2],
    /// Largest `|position|` per leg over the samples (base units).
    pub inventory_max_abs: [f64; 2],
    /// Fraction of the samples (with finite positions) at which both legs are flat, in
    /// `[0, 1]`. `None` without such samples.
    pub time_flat: Option<f64>,
    /// Fills skipped: leg index out of range, or non-finite price, size or fee.
    pub invalid_fills: u64,
}

/// `true` if a fill can be used: leg 0 or 1, finite price, size and fee.
#[inline]
fn fill_ok(f: &FillRecord) -> bool {
    f.leg < 2 && f.px.is_finite() && f.qty.is_finite() && f.fee.is_finite()
}

/// Seconds from `t0` to `t`.
#[inline]
fn secs(t: Ts, t0: Ts) -> f64 {
    (t - t0) as f64 / NS_PER_SEC as f64
}

/// Mean and sample standard deviation (divisor `n - 1`), two-pass; `None` for `n < 2`.
fn mean_sd(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.len() < 2 {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    Some((mean, var.sqrt()))
}

/// A running sum with Neumaier's compensation, so that a position rebuilt from many
/// fills returns to (almost exactly) zero when it should.
#[derive(Debug, Clone, Copy, Default)]
struct CompensatedSum {
    sum: f64,
    comp: f64,
}

impl CompensatedSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// Peak-to-trough analysis of a series: `(drawdown, peak index, trough index)`, the
/// indices `None` when the series never fell.
fn max_drawdown(points: &[(usize, f64)]) -> (f64, Option<(usize, usize)>) {
    let mut best = 0.0;
    let mut at = None;
    let mut peak: Option<(usize, f64)> = None;
    for &(i, v) in points {
        match peak {
            Some((_, p)) if p >= v => {
                if p - v > best {
                    best = p - v;
                    at = peak.map(|(pi, _)| (pi, i));
                }
            }
            _ => peak = Some((i, v)),
        }
    }
    (best, at)
}

impl Report {
    /// Computes the report of a trace. Never panics: empty traces, `NaN` samples and
    /// malformed fills give `None`s and counts, as documented on each field.
    pub fn from_trace(trace: &Trace) -> Report {
        let samples = &trace.samples;
        let t0 = samples.first().map_or(0, |s| s.ts);
        let duration_s = samples.last().map_or(0.0, |s| secs(s.ts, t0));

        // Sampling interval and annualisation.
        let sample_interval_s = if trace.sample_interval_ns > 0 {
            Some(trace.sample_interval_ns as f64 / NS_PER_SEC as f64)
        } else if samples.len() >= 2 && duration_s > 0.0 {
            Some(duration_s / (samples.len() - 1) as f64)
        } else {
            None
        };
        let samples_per_year = sample_interval_s.map(|dt| SECONDS_PER_YEAR / dt);

        // PnL at the last sample with a finite PnL.
        let last_pnl =
            samples.iter().rev().find(|s| s.gross_pnl.is_finite() && s.net_pnl.is_finite() && s.fees.is_finite());
        let net: Vec<(usize, f64)> =
            samples.iter().enumerate().filter(|(_, s)| s.net_pnl.is_finite()).map(|(i, s)| (i, s.net_pnl)).collect();

        // Sharpe over changes between consecutive finite samples.
        let changes: Vec<f64> = net.windows(2).filter(|w| w[1].0 == w[0].0 + 1).map(|w| w[1].1 - w[0].1).collect();
        let sharpe = match (mean_sd(&changes), samples_per_year) {
            (Some((m, sd)), Some(n_year)) if sd > 0.0 && sd.is_finite() => {
                Some(m / sd * n_year.sqrt()).filter(|s| s.is_finite())
            }
            _ => None,
        };

        let (max_dd, dd_at) = max_drawdown(&net);

        // Fills: turnover, maker share, queue wait, positions and round trips.
        let mut turnover_per_leg = [0.0; 2];
        let mut fills_per_leg = [0u64; 2];
        let mut maker_fills = 0u64;
        let mut maker_notional = 0.0;
        let mut queue_wait_ns = 0.0;
        let mut invalid_fills = 0u64;
        let mut max_fill = [0.0f64; 2];
        for f in &trace.fills {
            if !fill_ok(f) {
                invalid_fills += 1;
                continue;
            }
            let notional = (f.px * f.qty).abs();
            turnover_per_leg[f.leg] += notional;
            fills_per_leg[f.leg] += 1;
            max_fill[f.leg] = max_fill[f.leg].max(f.qty.abs());
            if f.maker {
                maker_fills += 1;
                maker_notional += notional;
                queue_wait_ns += f.queue_wait_ns as f64;
            }
        }
        let eps = [max_fill[0] * FLAT_REL_TOL, max_fill[1] * FLAT_REL_TOL];
        let flat = |leg: usize, q: f64| q.abs() <= eps[leg];

        let mut pos = [CompensatedSum::default(); 2];
        let mut round_trips_per_leg = [0u64; 2];
        let mut round_trips = 0u64;
        for f in trace.fills.iter().filter(|f| fill_ok(f)) {
            let before = [pos[0].value(), pos[1].value()];
            pos[f.leg].add(f.side.sign() as f64 * f.qty);
            let after = [pos[0].value(), pos[1].value()];
            if !flat(f.leg, before[f.leg]) && flat(f.leg, after[f.leg]) {
                round_trips_per_leg[f.leg] += 1;
            }
            let pair_flat = |q: [f64; 2]| flat(0, q[0]) && flat(1, q[1]);
            if !pair_flat(before) && pair_flat(after) {
                round_trips += 1;
            }
        }
        let fills = fills_per_leg[0] + fills_per_leg[1];
        let turnover = turnover_per_leg[0] + turnover_per_leg[1];

        // Inventory over the samples.
        let mut inv_sum = [0.0; 2];
        let mut inv_n = [0usize; 2];
        let mut inv_max = [0.0f64; 2];
        let mut flat_samples = 0usize;
        let mut pos_samples = 0usize;
        for s in samples {
            for leg in 0..2 {
                let q = s.position[leg];
                if q.is_finite() {
                    inv_sum[leg] += q.abs();
                    inv_n[leg] += 1;
                    inv_max[leg] = inv_max[leg].max(q.abs());
                }
            }
            if s.position.iter().all(|q| q.is_finite()) {
                pos_samples += 1;
                if flat(0, s.position[0]) && flat(1, s.position[1]) {
                    flat_samples += 1;
                }
            }
        }
        let inventory_mean_abs = [0, 1].map(|leg| if inv_n[leg] > 0 { inv_sum[leg] / inv_n[leg] as f64 } else { 0.0 });

        let ratio = |num: f64, den: f64| if den > 0.0 { Some(num / den) } else { None };
        Report {
            symbols: trace.symbols.clone(),
            samples: samples.len(),
            duration_s,
            sample_interval_s,
            pnl_gross: last_pnl.map(|s| s.gross_pnl),
            fees: last_pnl.map(|s| s.fees),
            pnl_net: last_pnl.map(|s| s.net_pnl),
            sharpe,
            samples_per_year,
            max_drawdown: max_dd,
            max_drawdown_peak_s: dd_at.map(|(p, _)| secs(samples[p].ts, t0)),
            max_drawdown_trough_s: dd_at.map(|(_, t)| secs(samples[t].ts, t0)),
            turnover,
            turnover_per_leg,
            fills,
            fills_per_leg,
            orders: trace.orders,
            rejects: trace.rejects,
            cancels: trace.cancels,
            round_trips,
            round_trips_per_leg,
            fill_ratio: ratio(fills as f64, trace.orders as f64),
            maker_share: ratio(maker_fills as f64, fills as f64),
            maker_share_notional: ratio(maker_notional, turnover),
            mean_queue_wait_ms: ratio(queue_wait_ns / 1e6, maker_fills as f64),
            inventory_mean_abs,
            inventory_max_abs: inv_max,
            time_flat: ratio(flat_samples as f64, pos_samples as f64),
            invalid_fills,
        }
    }
}

/// `value` with `prec` decimals, or `n/a`.
fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.prec$}"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [y, x] = &self.symbols;
        let interval = opt(self.sample_interval_s, 3);
        writeln!(
            f,
            "period          {:>14.1} s   ({:.2} h, {} samples every {} s)",
            self.duration_s,
            self.duration_s / 3600.0,
            self.samples,
            interval
        )?;
        writeln!(f, "pnl gross       {:>14}   (quote asset, marked at the mids)", opt(self.pnl_gross, 2))?;
        writeln!(f, "fees            {:>14}", opt(self.fees, 2))?;
        writeln!(f, "pnl net         {:>14}", opt(self.pnl_net, 2))?;
        writeln!(
            f,
            "sharpe          {:>14}   (net-PnL changes per {} s sample, x sqrt({} samples per 365-day year))",
            opt(self.sharpe, 2),
            interval,
            opt(self.samples_per_year, 0)
        )?;
        match (self.max_drawdown_peak_s, self.max_drawdown_trough_s) {
            (Some(p), Some(t)) => {
                writeln!(f, "max drawdown    {:>14.2}   (peak at {p:.1} s, trough at {t:.1} s)", self.max_drawdown)?
            }
            _ => writeln!(f, "max drawdown    {:>14.2}", self.max_drawdown)?,
        }
        writeln!(
            f,
            "turnover        {:>14.2}   ({y} {:.2}, {x} {:.2})",
            self.turnover, self.turnover_per_leg[0], self.turnover_per_leg[1]
        )?;
        writeln!(f, "orders          {:>14}   rejects {}, cancels {}", self.orders, self.rejects, self.cancels)?;
        writeln!(
            f,
            "fills           {:>14}   ({y} {}, {x} {}), fill ratio {}",
            self.fills,
            self.fills_per_leg[0],
            self.fills_per_leg[1],
            opt(self.fill_ratio, 3)
        )?;
        writeln!(
            f,
            "maker share     {:>14}   by count; {} by notional; mean queue wait {} ms",
            opt(self.maker_share, 3),
            opt(self.maker_share_notional, 3),
            opt(self.mean_queue_wait_ms, 2)
        )?;
        writeln!(
            f,
            "round trips     {:>14}   pair ({y} {}, {x} {})",
            self.round_trips, self.round_trips_per_leg[0], self.round_trips_per_leg[1]
        )?;
        for (leg, sym) in self.symbols.iter().enumerate() {
            writeln!(
                f,
                "inventory       {:>14.6}   {sym}: mean |position|, max {:.6} (base units)",
                self.inventory_mean_abs[leg], self.inventory_max_abs[leg]
            )?;
        }
        write!(f, "time flat       {:>14}   (fraction of samples with both legs flat)", opt(self.time_flat, 3))?;
        if self.invalid_fills > 0 {
            write!(f, "\ninvalid fills   {:>14}   (skipped)", self.invalid_fills)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::backtest::trace::Sample;
    use crate::types::Side;

    fn sample(ts: Ts, net: f64, position: [f64; 2]) -> Sample {
        Sample {
            ts,
            mid: [100.0, 50.0],
            beta: 0.5,
            z: 0.0,
            position,
            target: position,
            gross_pnl: net + 1.0,
            fees: 1.0,
            net_pnl: net,
        }
    }

    fn fill(leg: usize, side: Side, px: f64, qty: f64, maker: bool, wait_ms: i64) -> FillRecord {
        FillRecord { ts: 0, leg, side, px, qty, fee: 0.01, maker, queue_wait_ns: wait_ms * 1_000_000 }
    }

    fn trace(samples: Vec<Sample>, fills: Vec<FillRecord>, orders: u64) -> Trace {
        Trace {
            symbols: ["YYY".into(), "XXX".into()],
            entry_z: 2.0,
            exit_z: 0.5,
            sample_interval_ns: NS_PER_SEC,
            samples,
            fills,
            orders,
            rejects: 1,
            cancels: 2,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    /// Net PnL 0, 10, 4, 8, 2 at 1 s intervals. Changes 10, -6, 4, -6: mean 0.5,
    /// squared deviations 90.25 + 42.25 + 12.25 + 42.25 = 187, sample variance 187/3.
    /// Per-sample Sharpe 0.5 / sqrt(62.333) = 0.063330; 31 536 000 one-second samples
    /// a year, sqrt = 5615.69; annualised 355.64. Drawdown: peak 10 at 1 s, trough 2 at
    /// 4 s, 8.
    #[test]
    fn five_sample_equity_sharpe_and_drawdown() {
        let nets = [0.0, 10.0, 4.0, 8.0, 2.0];
        let s = nets.iter().enumerate().map(|(i, &n)| sample(i as i64 * 1_000_000_000, n, [0.0; 2])).collect();
        let r = Report::from_trace(&trace(s, vec![], 0));
        let sharpe = r.sharpe.unwrap();
        assert!((sharpe - 355.64).abs() < 0.01, "{sharpe}");
        assert!(close(sharpe, 0.5 / (187.0f64 / 3.0).sqrt() * 31_536_000f64.sqrt()));
        assert_eq!(r.samples_per_year, Some(31_536_000.0));
        assert_eq!(r.sample_interval_s, Some(1.0));
        assert_eq!(r.max_drawdown, 8.0);
        assert_eq!(r.max_drawdown_peak_s, Some(1.0));
        assert_eq!(r.max_drawdown_trough_s, Some(4.0));
        assert_eq!(r.pnl_net, Some(2.0));
        assert_eq!(r.pnl_gross, Some(3.0));
        assert_eq!(r.fees, Some(1.0));
        assert_eq!(r.duration_s, 4.0);
        assert_eq!(r.time_flat, Some(1.0));
    }

    /// Two pair round trips. Fills, in order:
    /// 1. y buy 1 @ 100, maker, 2 ms     -> y 1,   x 0    (pair opens)
    /// 2. x sell 2 @ 50, taker           -> y 1,   x -2
    /// 3. y sell 1 @ 101, maker, 4 ms    -> y 0,   x -2   (y round trip 1)
    /// 4. x buy 2 @ 49, maker, 6 ms      -> y 0,   x 0    (x round trip 1, pair 1)
    /// 5. y buy 0.1 @ 10, taker
    /// 6. y buy 0.2 @ 10, taker
    /// 7. y sell 0.3 @ 10, taker         -> y 0 up to f64 rounding (0.1 + 0.2 - 0.3 is
    ///    5.6e-17 in f64): y round trip 2, pair 2.
    ///
    /// Turnover 100 + 100 + 101 + 98 + 1 + 2 + 3 = 405; maker 3 of 7 fills, notional
    /// 299 / 405; mean queue wait (2 + 4 + 6) / 3 = 4 ms; 14 orders -> fill ratio 0.5.
    /// Samples: positions [0,0], [1,-2], [1,-2], [0,-2], [0,0]: mean |y| 2/5, |x| 6/5,
    /// max 1 and 2, flat in 2 of 5 samples.
    #[test]
    fn fills_round_trips_and_inventory() {
        let fills = vec![
            fill(0, Side::Buy, 100.0, 1.0, true, 2),
            fill(1, Side::Sell, 50.0, 2.0, false, 0),
            fill(0, Side::Sell, 101.0, 1.0, true, 4),
            fill(1, Side::Buy, 49.0, 2.0, true, 6),
            fill(0, Side::Buy, 10.0, 0.1, false, 0),
            fill(0, Side::Buy, 10.0, 0.2, false, 0),
            fill(0, Side::Sell, 10.0, 0.3, false, 0),
        ];
        let pos = [[0.0, 0.0], [1.0, -2.0], [1.0, -2.0], [0.0, -2.0], [0.0, 0.0]];
        let s = pos.iter().enumerate().map(|(i, &p)| sample(i as i64 * 1_000_000_000, 0.0, p)).collect();
        let r = Report::from_trace(&trace(s, fills, 14));
        assert_eq!(r.fills, 7);
        assert_eq!(r.fills_per_leg, [5, 2]);
        assert!(close(r.turnover, 405.0));
        assert!(close(r.turnover_per_leg[0], 207.0));
        assert!(close(r.turnover_per_leg[1], 198.0));
        assert_eq!(r.fill_ratio, Some(0.5));
        assert!(close(r.maker_share.unwrap(), 3.0 / 7.0));
        assert!(close(r.maker_share_notional.unwrap(), 299.0 / 405.0));
        assert!(close(r.mean_queue_wait_ms.unwrap(), 4.0));
        assert_eq!(r.round_trips, 2);
        assert_eq!(r.round_trips_per_leg, [2, 1]);
        assert!(close(r.inventory_mean_abs[0], 0.4));
        assert!(close(r.inventory_mean_abs[1], 1.2));
        assert_eq!(r.inventory_max_abs, [1.0, 2.0]);
        assert_eq!(r.time_flat, Some(0.4));
        assert_eq!((r.orders, r.rejects, r.cancels, r.invalid_fills), (14, 1, 2, 0));
        // PnL is flat at 0: no variance, no Sharpe, no drawdown.
        assert_eq!(r.sharpe, None);
        assert_eq!(r.max_drawdown, 0.0);
        assert_eq!(r.max_drawdown_peak_s, None);
    }

    /// A sign flip (long to short in one fill) does not end a round trip.
    #[test]
    fn sign_flip_is_not_a_round_trip() {
        let fills = vec![
            fill(0, Side::Buy, 10.0, 1.0, false, 0),
            fill(0, Side::Sell, 10.0, 2.0, false, 0),
            fill(0, Side::Buy, 10.0, 1.0, false, 0),
        ];
        let r = Report::from_trace(&trace(vec![], fills, 3));
        assert_eq!(r.round_trips_per_leg, [1, 0]);
        assert_eq!(r.round_trips, 1);
    }

    #[test]
    fn empty_and_degenerate_traces_give_none_not_nan() {
        let r = Report::from_trace(&Trace::default());
        assert_eq!(r.samples, 0);
        assert_eq!((r.sharpe, r.samples_per_year, r.sample_interval_s), (None, None, None));
        assert_eq!(
            (r.pnl_net, r.fill_ratio, r.maker_share, r.mean_queue_wait_ms, r.time_flat),
            (None, None, None, None, None)
        );
        assert_eq!(r.max_drawdown, 0.0);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"sharpe\":null"));
        assert!(!r.to_string().contains("NaN"));

        // One sample, and two samples (a single change has no sample variance).
        for n in [1, 2] {
            let s = (0..n).map(|i| sample(i * 1_000_000_000, i as f64, [0.0; 2])).collect();
            assert_eq!(Report::from_trace(&trace(s, vec![], 0)).sharpe, None);
        }
        // Constant PnL: zero variance.
        let s = (0..10).map(|i| sample(i * 1_000_000_000, 5.0, [0.0; 2])).collect();
        assert_eq!(Report::from_trace(&trace(s, vec![], 0)).sharpe, None);
    }

    /// NaN PnL samples are skipped: no change is taken across them, the PnL comes from
    /// the last finite sample, bad fills are counted, and nothing prints as NaN.
    #[test]
    fn nan_samples_and_bad_fills_are_skipped() {
        let nets = [f64::NAN, 0.0, 2.0, f64::NAN, 10.0, 6.0, 7.0, f64::NAN];
        let mut s: Vec<Sample> =
            nets.iter().enumerate().map(|(i, &n)| sample(i as i64 * 1_000_000_000, n, [0.0; 2])).collect();
        s[2].position[1] = f64::NAN;
        let fills = vec![
            fill(0, Side::Buy, f64::NAN, 1.0, true, 1),
            fill(2, Side::Buy, 1.0, 1.0, true, 1),
            fill(1, Side::Buy, 5.0, 2.0, true, 3),
        ];
        let r = Report::from_trace(&trace(s, fills, 2));
        assert_eq!(r.invalid_fills, 2);
        assert_eq!(r.fills, 1);
        assert_eq!(r.turnover, 10.0);
        assert_eq!(r.mean_queue_wait_ms, Some(3.0));
        assert_eq!(r.pnl_net, Some(7.0));
        // Changes: 2 (1->2), -4 (4->5), 1 (5->6); the 2 -> 10 jump spans a gap.
        let d: [f64; 3] = [2.0, -4.0, 1.0];
        let m = -1.0 / 3.0;
        let var = d.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 2.0;
        assert!(close(r.sharpe.unwrap(), m / var.sqrt() * 31_536_000f64.sqrt()));
        // Peak 10 at 4 s, trough 6 at 5 s.
        assert_eq!((r.max_drawdown, r.max_drawdown_peak_s, r.max_drawdown_trough_s), (4.0, Some(4.0), Some(5.0)));
        // Sample 2 has a NaN x position: 7 samples count for time flat, 7 for x.
        assert_eq!(r.time_flat, Some(1.0));
        assert!(!r.to_string().contains("NaN"));
        assert!(!serde_json::to_string(&r).unwrap().contains("NaN"));
    }

    /// Without a configured interval, the mean sample spacing is used.
    #[test]
    fn interval_falls_back_to_sample_spacing() {
        let s = [0.0, 1.0, 3.0].iter().enumerate().map(|(i, &n)| sample(i as i64 * 500_000_000, n, [0.0; 2])).collect();
        let mut t = trace(s, vec![], 0);
        t.sample_interval_ns = 0;
        let r = Report::from_trace(&t);
        assert_eq!(r.sample_interval_s, Some(0.5));
        assert_eq!(r.samples_per_year, Some(63_072_000.0));
    }

    #[test]
    fn display_is_aligned_and_complete() {
        let s = (0..5).map(|i| sample(i * 1_000_000_000, (i % 3) as f64, [0.0; 2])).collect();
        let r = Report::from_trace(&trace(s, vec![fill(0, Side::Buy, 100.0, 1.0, true, 2)], 2));
        let text = r.to_string();
        for key in [
            "pnl gross",
            "fees",
            "pnl net",
            "sharpe",
            "max drawdown",
            "turnover",
            "fills",
            "maker share",
            "round trips",
            "inventory",
            "time flat",
        ] {
            assert!(text.contains(key), "{key} missing:\n{text}");
        }
        // Labels take 16 columns and values are right-aligned to column 30.
        for line in text.lines() {
            let b = line.as_bytes();
            assert!(b.len() >= 30 && b[15] == b' ' && b[29] != b' ', "{line}");
        }
        println!("{text}");
    }

    proptest! {
        /// Drawdown invariants: `0 <= dd <= max - min`, zero for a non-decreasing
        /// series, and the Sharpe ratio is finite or `None`.
        #[test]
        fn drawdown_bounds(nets in proptest::collection::vec(-1e6f64..1e6, 0..60)) {
            let s: Vec<Sample> =
                nets.iter().enumerate().map(|(i, &n)| sample(i as i64 * 1_000_000_000, n, [0.0; 2])).collect();
            let r = Report::from_trace(&trace(s, vec![], 0));
            let (lo, hi) = nets.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
            prop_assert!(r.max_drawdown >= 0.0);
            if !nets.is_empty() {
                prop_assert!(r.max_drawdown <= hi - lo);
            }
            prop_assert!(r.sharpe.is_none_or(f64::is_finite));
            let mut sorted = nets.clone();
            sorted.sort_by(f64::total_cmp);
            let s: Vec<Sample> =
                sorted.iter().enumerate().map(|(i, &n)| sample(i as i64 * 1_000_000_000, n, [0.0; 2])).collect();
            prop_assert_eq!(Report::from_trace(&trace(s, vec![], 0)).max_drawdown, 0.0);
        }
    }
}
