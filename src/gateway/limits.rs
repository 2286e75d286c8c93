//! Client-side rate limiting, applied before a request is sent.
//!
//! Binance Spot enforces, per IP, a request weight per minute (`REQUEST_WEIGHT`,
//! 6000/min at the time of writing; each endpoint documents its weight) and, per
//! account, an unfilled order count per 10 s and per day (`ORDERS`, 100/10 s and
//! 200 000/day). Exceeding the weight gives HTTP 429 (code -1003), and persisting after
//! 429s an IP ban with HTTP 418; both carry a `Retry-After` header in seconds. The
//! current counts come back in the response headers `X-MBX-USED-WEIGHT-1M` and
//! `X-MBX-ORDER-COUNT-10S` / `X-MBX-ORDER-COUNT-1D`.
//!
//! [`RateLimiter`] keeps one [`SlidingWindow`] per account limit (orders per 10 s and
//! per day) and draws request weight from an [`IpBudget`], the per-IP budget it may
//! share with the feed's snapshot thread ([`RateLimiter::with_budget`]). Each window
//! only over-counts (see [`crate::ratelimit`]): a request it admits is within the limit
//! in every window of the limit's length, in particular in the exchange's fixed,
//! clock-aligned intervals. When the server reports a higher count than ours (other
//! processes on the same IP or account, requests we did not see answered), the
//! difference is added at the current time: still conservative. A 429/418 blocks every
//! request on the IP until `now + Retry-After`, capped ([`IpBudget::back_off`]).

use std::sync::Arc;

use serde::Deserialize;

use crate::ratelimit::{IpBudget, SlidingWindow, DEFAULT_RETRY_AFTER_CAP_S};
pub use crate::ratelimit::{Limit, RateLimited};
use crate::types::{Ts, NS_PER_MS, NS_PER_SEC};

/// The limits to enforce, from config `[gateway.limits]`. Set them at or below the
/// exchange's (see `GET /api/v3/exchangeInfo` `rateLimits`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// New orders per 10 s (Binance `ORDERS`, interval `SECOND` x 10).
    #[serde(default = "default_orders_10s")]
    pub orders_per_10s: u32,
    /// New orders per day (Binance `ORDERS`, interval `DAY`).
    #[serde(default = "default_orders_day")]
    pub orders_per_day: u32,
    /// Request weight per minute (Binance `REQUEST_WEIGHT`, interval `MINUTE`).
    #[serde(default = "default_weight_min")]
    pub weight_per_minute: u32,
}

fn default_orders_10s() -> u32 {
    100
}
fn default_orders_day() -> u32 {
    200_000
}
fn default_weight_min() -> u32 {
    6_000
}

impl Default for RateLimits {
    /// Binance Spot's published defaults.
    fn default() -> Self {
        RateLimits {
            orders_per_10s: default_orders_10s(),
            orders_per_day: default_orders_day(),
            weight_per_minute: default_weight_min(),
        }
    }
}

/// Counts of requests admitted and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LimiterStats {
    /// Requests admitted.
    pub admitted: u64,
    /// Refused by the orders-per-10 s window.
    pub refused_orders_10s: u64,
    /// Refused by the orders-per-day window.
    pub refused_orders_day: u64,
    /// Refused by the weight window.
    pub refused_weight: u64,
    /// Refused during a server back-off.
    pub refused_backoff: u64,
    /// Server headers that raised our counts.
    pub header_corrections: u64,
}

/// Order and weight limiter with a fake-able clock: every method takes `now`. A clone
/// shares the weight budget and copies the order windows.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    orders_10s: SlidingWindow,
    orders_day: SlidingWindow,
    budget: Arc<IpBudget>,
    stats: LimiterStats,
}

impl RateLimiter {
    /// A limiter for `limits` with a budget of its own (`limits.weight_per_minute`,
    /// `Retry-After` capped at [`DEFAULT_RETRY_AFTER_CAP_S`]). Granularity: 100 ms for
    /// 10 s, 1 s for the minute, 1 min for the day.
    pub fn new(limits: &RateLimits) -> Self {
        Self::with_budget(limits, Arc::new(IpBudget::new(limits.weight_per_minute, DEFAULT_RETRY_AFTER_CAP_S)))
    }

    /// A limiter for the order limits of `limits` that draws request weight from
    /// `budget` (shared with every other client of the same IP; its own weight limit
    /// applies, not `limits.weight_per_minute`).
    pub fn with_budget(limits: &RateLimits, budget: Arc<IpBudget>) -> Self {
        RateLimiter {
            orders_10s: SlidingWindow::new(10 * NS_PER_SEC, 100 * NS_PER_MS, limits.orders_per_10s),
            orders_day: SlidingWindow::new(86_400 * NS_PER_SEC, 60 * NS_PER_SEC, limits.orders_per_day),
            budget,
            stats: LimiterStats::default(),
        }
    }

    /// The per-IP budget this limiter draws weight from.
    pub fn budget(&self) -> &Arc<IpBudget> {
        &self.budget
    }

    /// Admits a request of `weight` that places `orders` new orders (0 for queries and
    /// cancels, which do not count as orders) and counts it, or refuses it without
    /// counting anything.
    pub fn try_acquire(&mut self, now: Ts, weight: u32, orders: u32) -> Result<(), RateLimited> {
        // A back-off first (it says why nothing passes), then the order windows, which
        // are ours alone, then the shared weight, which counts once admitted.
        let refused = match self.budget.check(now, 0) {
            Err(e) => Some(e),
            Ok(()) => [
                (Limit::Orders10s, self.orders_10s.blocked_until(now, orders as u64)),
                (Limit::OrdersDay, self.orders_day.blocked_until(now, orders as u64)),
            ]
            .into_iter()
            .find_map(|(limit, b)| b.map(|retry_at| RateLimited { limit, retry_at }))
            .map_or_else(|| self.budget.try_acquire(now, weight).err(), Some),
        };
        if let Some(e) = refused {
            match e.limit {
                Limit::Orders10s => self.stats.refused_orders_10s += 1,
                Limit::OrdersDay => self.stats.refused_orders_day += 1,
                Limit::Weight => self.stats.refused_weight += 1,
                Limit::Backoff => self.stats.refused_backoff += 1,
            }
            return Err(e);
        }
        self.orders_10s.add(now, orders as u64);
        self.orders_day.add(now, orders as u64);
        self.stats.admitted += 1;
        Ok(())
    }

    /// Refuses every request on the IP until `until`.
    pub fn block_until(&mut self, until: Ts) {
        self.budget.block_until(until);
    }

    /// Takes a 429 or 418 answer at `now` with its `Retry-After` header value (capped,
    /// see [`IpBudget::back_off`]); returns the end of the back-off.
    pub fn back_off(&mut self, now: Ts, status: u16, retry_after: Option<&str>) -> Ts {
        self.budget.back_off(now, status, retry_after)
    }

    /// End of the current server back-off (`Ts::MIN` if none was ever set).
    pub fn blocked_until(&self) -> Ts {
        self.budget.blocked_until()
    }

    /// Takes the server's counts from response headers (`None` where a header was
    /// absent): where the server counts more than we do, the difference is added now.
    pub fn observe(&mut self, now: Ts, used_weight_1m: Option<u32>, orders_10s: Option<u32>, orders_1d: Option<u32>) {
        let fix = |w: &mut SlidingWindow, server: Option<u32>| {
            if let Some(s) = server {
                let ours = w.count(now);
                if s as u64 > ours {
                    w.add(now, s as u64 - ours);
                    return true;
                }
            }
            false
        };
        let a = self.budget.observe(now, used_weight_1m);
        let b = fix(&mut self.orders_10s, orders_10s);
        let c = fix(&mut self.orders_day, orders_1d);
        self.stats.header_corrections += (a as u64) + (b as u64) + (c as u64);
    }

    /// Weight counted in the last minute.
    pub fn used_weight(&mut self, now: Ts) -> u64 {
        self.budget.used_weight(now)
    }

    /// Orders counted in the last 10 s.
    pub fn orders_10s(&mut self, now: Ts) -> u64 {
        self.orders_10s.count(now)
    }

    /// Counters.
    pub fn stats(&self) -> LimiterStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Ts = NS_PER_SEC;

    fn lim(o10: u32, oday: u32, w: u32) -> RateLimiter {
        RateLimiter::new(&RateLimits { orders_per_10s: o10, orders_per_day: oday, weight_per_minute: w })
    }

    #[test]
    fn orders_per_10s_refuse_then_recover() {
        let mut l = lim(3, 1000, 1000);
        let t0 = 1_000 * S;
        for i in 0..3 {
            assert_eq!(l.try_acquire(t0 + i * S, 1, 1), Ok(()));
        }
        let e = l.try_acquire(t0 + 3 * S, 1, 1).unwrap_err();
        assert_eq!(e.limit, Limit::Orders10s);
        // The first order's bucket [t0, t0+100ms) leaves the window at t0 + 10.1 s.
        assert_eq!(e.retry_at, t0 + 10 * S + 100 * NS_PER_MS);
        assert!(l.try_acquire(e.retry_at - 1, 1, 1).is_err());
        assert_eq!(l.try_acquire(e.retry_at, 1, 1), Ok(()));
        // Queries and cancels (0 orders) pass while the order window is full.
        assert_eq!(l.try_acquire(e.retry_at, 1, 0), Ok(()));
    }

    #[test]
    fn weight_and_day_windows() {
        let mut l = lim(100, 2, 10);
        let t0 = 5_000 * S;
        assert_eq!(l.try_acquire(t0, 6, 0), Ok(()));
        let e = l.try_acquire(t0, 6, 0).unwrap_err();
        assert_eq!((e.limit, e.retry_at), (Limit::Weight, t0 + 61 * S));
        assert_eq!(l.try_acquire(t0, 4, 1), Ok(()));
        assert_eq!(l.try_acquire(t0 + 61 * S, 1, 1), Ok(()));
        let e = l.try_acquire(t0 + 62 * S, 1, 1).unwrap_err();
        assert_eq!(e.limit, Limit::OrdersDay);
        // t0 = 5000 s lies in the day window's minute bucket starting at 4980 s.
        assert_eq!(e.retry_at, t0 - 20 * S + 60 * S + 86_400 * S);
        // A request heavier than the whole limit never passes.
        assert_eq!(lim(1, 1, 5).try_acquire(t0, 6, 0).unwrap_err().retry_at, Ts::MAX);
    }

    #[test]
    fn backoff_and_server_headers() {
        let mut l = lim(100, 1000, 100);
        let t0 = 10 * S;
        l.block_until(t0 + 2 * S);
        let e = l.try_acquire(t0, 1, 0).unwrap_err();
        assert_eq!((e.limit, e.retry_at), (Limit::Backoff, t0 + 2 * S));
        assert_eq!(l.try_acquire(t0 + 2 * S, 1, 0), Ok(()));
        // The server says 99 weight used: only 1 more fits.
        l.observe(t0 + 2 * S, Some(99), None, None);
        assert_eq!(l.used_weight(t0 + 2 * S), 99);
        assert_eq!(l.try_acquire(t0 + 2 * S, 1, 0), Ok(()));
        assert!(l.try_acquire(t0 + 2 * S, 1, 0).is_err());
        // A lower server count never lowers ours.
        l.observe(t0 + 2 * S, Some(3), Some(0), Some(0));
        assert_eq!(l.used_weight(t0 + 2 * S), 100);
        assert_eq!(l.stats().header_corrections, 1);
    }

    proptest! {
        /// Whatever the arrival pattern, no 10 s interval (sliding, hence also the
        /// exchange's aligned ones) ever holds more admitted orders than the limit.
        #[test]
        fn never_exceeds_limit(gaps in proptest::collection::vec(0i64..400_000_000, 1..400), limit in 1u32..20) {
            let mut l = lim(limit, 1_000_000, 1_000_000);
            let mut t = 1_000 * S;
            let mut admitted = Vec::new();
            for g in gaps {
                t += g;
                if l.try_acquire(t, 1, 1).is_ok() {
                    admitted.push(t);
                }
            }
            for (i, &a) in admitted.iter().enumerate() {
                let n = admitted[i..].iter().take_while(|&&b| b < a + 10 * S).count();
                prop_assert!(n <= limit as usize);
            }
        }
    }
}
