//! Positions, cost and PnL from fills.
//!
//! Per instrument: position in lots, average entry cost, realized PnL (average-cost
//! method: a fill that reduces the position realizes `(fill - avg) * closed` for a long,
//! the negative for a short), fees, traded volume. Unrealized PnL marks the open
//! position to a price. Net PnL = realized + unrealized - fees. A cash ledger is kept
//! alongside as an independent check: `cash + sum(position * mark) - fees` equals the
//! net PnL up to rounding.

use crate::event::ExecReport;
use crate::types::{Instrument, Qty};

/// One instrument's position and PnL.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Position {
    /// Position in lots (+ long, - short).
    pub qty: Qty,
    /// Average entry price of the open position in price units (0 when flat).
    pub avg_px: f64,
    /// Realized PnL in the quote asset, before fees.
    pub realized: f64,
    /// Fees paid, valued in the quote asset (negative for net rebates).
    pub fees: f64,
    /// The part of `fees` the venue took in the base asset, in base units: fees by
    /// asset are `fees_base` of the base and `fees - fees_base * price` of the quote.
    /// The base balance moves by the position change minus this.
    pub fees_base: f64,
    /// Quote-asset cash flow of all fills (sells +, buys -), before fees.
    pub cash: f64,
    /// Traded notional in the quote asset.
    pub volume: f64,
    /// Number of fills.
    pub fills: u64,
    /// Number of fills that added liquidity.
    pub maker_fills: u64,
}

impl Position {
    /// PnL of the open position marked at `mark` (price units).
    #[inline]
    pub fn unrealized(&self, inst: &Instrument, mark: f64) -> f64 {
        (mark - self.avg_px) * inst.qty_f64(self.qty)
    }
}

/// Positions of a fixed set of instruments, indexed like the session's instrument
/// table.
#[derive(Debug, Clone)]
pub struct Portfolio<const N: usize> {
    instruments: [Instrument; N],
    positions: [Position; N],
}

impl<const N: usize> Portfolio<N> {
    /// Flat positions in the given instruments.
    pub fn new(instruments: [Instrument; N]) -> Self {
        Portfolio { instruments, positions: [Position::default(); N] }
    }

    /// Starts from known positions (e.g. exchange balances at start-up), at cost `avg_px`.
    pub fn set_position(&mut self, i: usize, qty: Qty, avg_px: f64) {
        let p = &mut self.positions[i];
        p.qty = qty;
        p.avg_px = if qty == 0 { 0.0 } else { avg_px };
    }

    /// Replaces instrument `i`'s position, PnL and counters with `p` (a position carried
    /// over from an earlier session).
    pub fn restore(&mut self, i: usize, p: Position) {
        self.positions[i] = p;
    }

    /// Applies the fill in `rep` to instrument `i`; reports without a fill are ignored.
    #[inline]
    pub fn on_fill(&mut self, i: usize, rep: &ExecReport) {
        if rep.qty <= 0 {
            return;
        }
        let inst = &self.instruments[i];
        let p = &mut self.positions[i];
        let px = inst.px_f64(rep.px);
        let signed = rep.side.sign() * rep.qty;
        let units = inst.qty_f64(rep.qty);
        p.cash -= px * inst.qty_f64(signed);
        p.fees += rep.fee;
        p.fees_base += rep.fee_base;
        p.volume += px * units;
        p.fills += 1;
        p.maker_fills += rep.maker as u64;
        let old = p.qty;
        let new = old + signed;
        if old == 0 || old.signum() == signed.signum() {
            // Opening or adding: weighted average cost.
            let total = inst.qty_f64(new).abs();
            p.avg_px = (p.avg_px * inst.qty_f64(old).abs() + px * units) / total;
        } else {
            // Reducing, closing or flipping.
            let closed = signed.abs().min(old.abs());
            p.realized += (px - p.avg_px) * inst.qty_f64(closed) * old.signum() as f64;
            if new == 0 {
                p.avg_px = 0.0;
            } else if new.signum() != old.signum() {
                p.avg_px = px;
            }
        }
        p.qty = new;
    }

    /// Position of instrument `i`.
    #[inline]
    pub fn position(&self, i: usize) -> &Position {
        &self.positions[i]
    }

    /// Instrument `i`.
    pub fn instrument(&self, i: usize) -> &Instrument {
        &self.instruments[i]
    }

    /// Total fees.
    pub fn fees(&self) -> f64 {
        self.positions.iter().map(|p| p.fees).sum()
    }

    /// Gross PnL (realized + unrealized at `marks`, before fees).
    pub fn gross_pnl(&self, marks: &[f64; N]) -> f64 {
        (0..N).map(|i| self.positions[i].realized + self.positions[i].unrealized(&self.instruments[i], marks[i])).sum()
    }

    /// Net PnL: gross minus fees.
    #[inline]
    pub fn net_pnl(&self, marks: &[f64; N]) -> f64 {
        self.gross_pnl(marks) - self.fees()
    }

    /// Net PnL from the cash ledger, the independent cross-check of [`Self::net_pnl`].
    pub fn net_pnl_by_cash(&self, marks: &[f64; N]) -> f64 {
        (0..N)
            .map(|i| {
                let p = &self.positions[i];
                p.cash + self.instruments[i].qty_f64(p.qty) * marks[i] - p.fees
            })
            .sum()
    }

    /// Gross exposure `sum |position * mark|` and net exposure `sum position * mark`.
    pub fn exposure(&self, marks: &[f64; N]) -> (f64, f64) {
        (0..N).fold((0.0, 0.0), |(g, n), i| {
            let v = self.instruments[i].qty_f64(self.positions[i].qty) * marks[i];
            (g + v.abs(), n + v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ExecKind;
    use crate::types::Side;
    use proptest::prelude::*;

    fn inst() -> Instrument {
        Instrument::new("ETHUSDT", "0.01".parse().unwrap(), "0.0001".parse().unwrap())
    }

    fn fill(side: Side, px: i64, qty: Qty, fee: f64) -> ExecReport {
        ExecReport {
            fee_base: 0.0,
            msg: crate::event::RejectMsg::new(),
            id: 1,
            inst: 0,
            side,
            kind: ExecKind::Fill,
            px,
            qty,
            leaves: 0,
            fee,
            maker: true,
            code: 0,
            exch_ts: 0,
        }
    }

    #[test]
    fn average_cost_and_realized() {
        let mut p = Portfolio::new([inst()]);
        p.on_fill(0, &fill(Side::Buy, 10_000, 10_000, 0.1)); // 1 @ 100
        p.on_fill(0, &fill(Side::Buy, 11_000, 10_000, 0.1)); // 1 @ 110
        assert!((p.position(0).avg_px - 105.0).abs() < 1e-12);
        p.on_fill(0, &fill(Side::Sell, 12_000, 5_000, 0.1)); // 0.5 @ 120: +7.5
        assert!((p.position(0).realized - 7.5).abs() < 1e-9);
        // Flip: sell 2 @ 100 closes 1.5 (-7.5) and opens short 0.5 @ 100.
        p.on_fill(0, &fill(Side::Sell, 10_000, 20_000, 0.1));
        assert_eq!(p.position(0).qty, -5_000);
        assert!((p.position(0).realized - 0.0).abs() < 1e-9);
        assert!((p.position(0).avg_px - 100.0).abs() < 1e-12);
        let marks = [90.0];
        assert!((p.gross_pnl(&marks) - 5.0).abs() < 1e-9);
        assert!((p.net_pnl(&marks) - 4.6).abs() < 1e-9);
        assert!((p.net_pnl_by_cash(&marks) - p.net_pnl(&marks)).abs() < 1e-9);
        assert_eq!(p.position(0).fills, 4);
    }

    proptest! {
        #[test]
        fn cost_method_agrees_with_cash_ledger(fills in prop::collection::vec((any::<bool>(), 9_000i64..11_000, 1i64..50_000), 1..100),
                                              mark in 80.0f64..120.0) {
            let mut p = Portfolio::new([inst()]);
            for (buy, px, qty) in fills {
                let side = if buy { Side::Buy } else { Side::Sell };
                p.on_fill(0, &fill(side, px, qty, 0.01));
            }
            let a = p.net_pnl(&[mark]);
            let b = p.net_pnl_by_cash(&[mark]);
            prop_assert!((a - b).abs() < 1e-6 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }
}
