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
//! [`RateLimiter`] keeps one sliding window per limit. Each window counts in buckets of
//! a fixed granularity and counts a bucket for as long as *any* part of it lies inside
//! the window, so it can only over-count (by at most one bucket of events): a request
//! it admits is within the limit in every window of the limit's length, in particular
//! in the exchange's fixed, clock-aligned intervals. When the server reports a higher
//! count than ours (other processes on the same IP or account, requests we did not
//! see answered), the difference is added at the current time: still conservative.
//! A 429/418 blocks every request until `now + Retry-After` ([`RateLimiter::block_until`]).

use std::collections::VecDeque;

use serde::Deserialize;

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

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Orders per 10 s.
    Orders10s,
    /// Orders per day.
    OrdersDay,
    /// Request weight per minute.
    Weight,
    /// A server-imposed back-off (HTTP 429 or 418 with `Retry-After`).
    Backoff,
}

/// A refused request: which limit, and the earliest time it could pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// The limit that refused.
    pub limit: Limit,
    /// Earliest time at which the same request would be admitted (if nothing else is
    /// sent meanwhile).
    pub retry_at: Ts,
}

/// A sliding window of length `len` counted in buckets of `gran` (see the module docs
/// for why it only over-counts).
#[derive(Debug, Clone)]
struct Window {
    len: Ts,
    gran: Ts,
    limit: u64,
    /// (bucket start, count), oldest first.
    buckets: VecDeque<(Ts, u64)>,
    total: u64,
}

impl Window {
    fn new(len: Ts, gran: Ts, limit: u32) -> Self {
        let n = (len / gran) as usize + 2;
        Window { len, gran, limit: limit as u64, buckets: VecDeque::with_capacity(n), total: 0 }
    }

    /// Drops buckets that lie wholly before `now - len`.
    fn expire(&mut self, now: Ts) {
        while let Some(&(start, n)) = self.buckets.front() {
            if start + self.gran <= now - self.len {
                self.buckets.pop_front();
                self.total -= n;
            } else {
                break;
            }
        }
    }

    /// Earliest time at which `n` more fit, or `None` if they fit now.
    fn blocked_until(&mut self, now: Ts, n: u64) -> Option<Ts> {
        self.expire(now);
        if self.total + n <= self.limit {
            return None;
        }
        if n > self.limit {
            return Some(Ts::MAX);
        }
        // Free enough of the oldest buckets: bucket (start, c) leaves the window at
        // start + gran + len.
        let mut need = self.total + n - self.limit;
        for &(start, c) in &self.buckets {
            if c >= need {
                return Some(start + self.gran + self.len);
            }
            need -= c;
        }
        Some(now + self.len)
    }

    fn add(&mut self, now: Ts, n: u64) {
        if n == 0 {
            return;
        }
        let start = now - now.rem_euclid(self.gran);
        match self.buckets.back_mut() {
            Some((s, c)) if *s == start => *c += n,
            _ => self.buckets.push_back((start, n)),
        }
        self.total += n;
    }

    fn count(&mut self, now: Ts) -> u64 {
        self.expire(now);
        self.total
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

/// Order and weight limiter with a fake-able clock: every method takes `now`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    orders_10s: Window,
    orders_day: Window,
    weight: Window,
    blocked_until: Ts,
    stats: LimiterStats,
}

impl RateLimiter {
    /// A limiter for `limits`. Granularity: 100 ms for 10 s, 1 s for the minute, 1 min
    /// for the day.
    pub fn new(limits: &RateLimits) -> Self {
        RateLimiter {
            orders_10s: Window::new(10 * NS_PER_SEC, 100 * NS_PER_MS, limits.orders_per_10s),
            orders_day: Window::new(86_400 * NS_PER_SEC, 60 * NS_PER_SEC, limits.orders_per_day),
            weight: Window::new(60 * NS_PER_SEC, NS_PER_SEC, limits.weight_per_minute),
            blocked_until: Ts::MIN,
            stats: LimiterStats::default(),
        }
    }

    /// Admits a request of `weight` that places `orders` new orders (0 for queries and
    /// cancels, which do not count as orders) and counts it, or refuses it without
    /// counting anything.
    pub fn try_acquire(&mut self, now: Ts, weight: u32, orders: u32) -> Result<(), RateLimited> {
        if now < self.blocked_until {
            self.stats.refused_backoff += 1;
            return Err(RateLimited { limit: Limit::Backoff, retry_at: self.blocked_until });
        }
        let checks = [
            (Limit::Orders10s, self.orders_10s.blocked_until(now, orders as u64)),
            (Limit::OrdersDay, self.orders_day.blocked_until(now, orders as u64)),
            (Limit::Weight, self.weight.blocked_until(now, weight as u64)),
        ];
        if let Some((limit, Some(retry_at))) = checks.into_iter().find(|(_, b)| b.is_some()) {
            match limit {
                Limit::Orders10s => self.stats.refused_orders_10s += 1,
                Limit::OrdersDay => self.stats.refused_orders_day += 1,
                _ => self.stats.refused_weight += 1,
            }
            return Err(RateLimited { limit, retry_at });
        }
        self.orders_10s.add(now, orders as u64);
        self.orders_day.add(now, orders as u64);
        self.weight.add(now, weight as u64);
        self.stats.admitted += 1;
        Ok(())
    }

    /// Refuses every request until `until` (a 429 or 418 with `Retry-After`).
    pub fn block_until(&mut self, until: Ts) {
        self.blocked_until = self.blocked_until.max(until);
    }

    /// End of the current server back-off (`Ts::MIN` if none was ever set).
    pub fn blocked_until(&self) -> Ts {
        self.blocked_until
    }

    /// Takes the server's counts from response headers (`None` where a header was
    /// absent): where the server counts more than we do, the difference is added now.
    pub fn observe(&mut self, now: Ts, used_weight_1m: Option<u32>, orders_10s: Option<u32>, orders_1d: Option<u32>) {
        let fix = |w: &mut Window, server: Option<u32>| {
            if let Some(s) = server {
                let ours = w.count(now);
                if s as u64 > ours {
                    w.add(now, s as u64 - ours);
                    return true;
                }
            }
            false
        };
        let a = fix(&mut self.weight, used_weight_1m);
        let b = fix(&mut self.orders_10s, orders_10s);
        let c = fix(&mut self.orders_day, orders_1d);
        self.stats.header_corrections += (a as u64) + (b as u64) + (c as u64);
    }

    /// Weight counted in the last minute.
    pub fn used_weight(&mut self, now: Ts) -> u64 {
        self.weight.count(now)
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
