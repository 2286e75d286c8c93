//! The per-IP request-weight budget that every REST client of the process shares.
//!
//! Binance Spot counts request weight per IP address (`REQUEST_WEIGHT`, 6000 per
//! minute at the time of writing) over every endpoint: the gateway's signed order
//! requests and the feed's depth snapshots (`GET /api/v3/depth`, weight 5 to 250 by
//! `limit`, see [`depth_weight`]) draw on the same budget. Exceeding it gives HTTP 429
//! (code -1003) with a `Retry-After` header in seconds, and persisting after 429s an IP
//! ban with HTTP 418, which also stops order entry from the same address. So the feed's
//! snapshot thread and the gateway thread hold one [`IpBudget`] between them (an
//! `Arc`; a `Mutex` inside, taken only by those two threads, never by the hot thread),
//! and a back-off that either of them is told about blocks both.
//!
//! [`SlidingWindow`] is the counting primitive, also used for the per-account order
//! limits in [`crate::gateway::limits`]. It counts in buckets of a fixed granularity
//! and counts a bucket for as long as *any* part of it lies inside the window, so it can
//! only over-count (by at most one bucket of events): a request it admits is within the
//! limit in every window of the limit's length, in particular in the exchange's fixed,
//! clock-aligned intervals.
//!
//! `Retry-After` is capped ([`IpBudget::new`]'s `retry_after_cap_s`): a hostile or
//! broken server answering `Retry-After: 4294967295` must not block the process for
//! 136 years. Every time computation saturates.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use crate::types::{Ts, NS_PER_SEC};

/// Back-off when a 429 carries no usable `Retry-After`, s.
pub const DEFAULT_429_BACKOFF_S: u64 = 1;
/// Back-off when a 418 (IP ban) carries no usable `Retry-After`, s.
pub const DEFAULT_418_BACKOFF_S: u64 = 120;
/// The default cap of a server-imposed back-off, s.
pub const DEFAULT_RETRY_AFTER_CAP_S: u64 = 300;

/// Request weight of `GET /api/v3/depth` with `limit` levels (binance-spot-api-docs,
/// `rest-api.md`, "Order book": 1-100: 5, 101-500: 25, 501-1000: 50, 1001-5000: 250).
#[inline]
pub fn depth_weight(limit: u32) -> u32 {
    match limit {
        0..=100 => 5,
        101..=500 => 25,
        501..=1000 => 50,
        _ => 250,
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Orders per 10 s.
    Orders10s,
    /// Orders per day.
    OrdersDay,
    /// Request weight per minute (per IP).
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
pub struct SlidingWindow {
    len: Ts,
    gran: Ts,
    limit: u64,
    /// (bucket start, count), oldest first; at most `len / gran + 2` entries.
    buckets: VecDeque<(Ts, u64)>,
    /// Sum of the buckets' counts.
    total: u64,
}

impl SlidingWindow {
    /// A window of `len` ns in buckets of `gran` ns (`gran >= 1`) admitting `limit`.
    pub fn new(len: Ts, gran: Ts, limit: u32) -> Self {
        let gran = gran.max(1);
        let n = usize::try_from(len / gran).unwrap_or(0).saturating_add(2);
        SlidingWindow { len, gran, limit: limit as u64, buckets: VecDeque::with_capacity(n), total: 0 }
    }

    /// Drops buckets that lie wholly before `now - len`.
    fn expire(&mut self, now: Ts) {
        let from = now.saturating_sub(self.len);
        while let Some(&(start, n)) = self.buckets.front() {
            if start.saturating_add(self.gran) <= from {
                self.buckets.pop_front();
                self.total -= n;
            } else {
                break;
            }
        }
    }

    /// Earliest time at which `n` more fit, or `None` if they fit now (`Ts::MAX` if
    /// `n` exceeds the whole limit).
    pub fn blocked_until(&mut self, now: Ts, n: u64) -> Option<Ts> {
        self.expire(now);
        if self.total.saturating_add(n) <= self.limit {
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
                return Some(start.saturating_add(self.gran).saturating_add(self.len));
            }
            need -= c;
        }
        Some(now.saturating_add(self.len))
    }

    /// Counts `n` at `now`.
    pub fn add(&mut self, now: Ts, n: u64) {
        if n == 0 {
            return;
        }
        let start = now - now.rem_euclid(self.gran);
        match self.buckets.back_mut() {
            Some((s, c)) if *s == start => *c = c.saturating_add(n),
            _ => self.buckets.push_back((start, n)),
        }
        self.total = self.total.saturating_add(n);
    }

    /// The count inside the window ending at `now`.
    pub fn count(&mut self, now: Ts) -> u64 {
        self.expire(now);
        self.total
    }
}

/// Counters of a budget, over every client sharing it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BudgetStats {
    /// Requests admitted.
    pub admitted: u64,
    /// Weight admitted.
    pub weight: u64,
    /// Requests refused by the weight window.
    pub refused_weight: u64,
    /// Requests refused during a server back-off.
    pub refused_backoff: u64,
    /// 429 / 418 answers seen.
    pub backoffs: u64,
    /// `Retry-After` values above the cap (cut to it).
    pub capped: u64,
}

#[derive(Debug)]
struct State {
    weight: SlidingWindow,
    blocked_until: Ts,
    stats: BudgetStats,
}

/// One IP address's request-weight budget and server back-off, shared between threads
/// (see the module docs). Every method takes `now` (wall ns), so tests fake the clock.
#[derive(Debug)]
pub struct IpBudget {
    state: Mutex<State>,
    /// Cap of a `Retry-After`, s (at least 1).
    retry_after_cap_s: u64,
}

impl IpBudget {
    /// A budget of `weight_per_minute` (counted per second over a sliding minute) whose
    /// server back-offs last at most `retry_after_cap_s` seconds.
    pub fn new(weight_per_minute: u32, retry_after_cap_s: u64) -> Self {
        IpBudget {
            state: Mutex::new(State {
                weight: SlidingWindow::new(60 * NS_PER_SEC, NS_PER_SEC, weight_per_minute),
                blocked_until: Ts::MIN,
                stats: BudgetStats::default(),
            }),
            retry_after_cap_s: retry_after_cap_s.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the counts inconsistent (every update is one
        // statement), so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `weight` fits now, without counting it.
    pub fn check(&self, now: Ts, weight: u32) -> Result<(), RateLimited> {
        let mut s = self.lock();
        Self::check_locked(&mut s, now, weight)
    }

    fn check_locked(s: &mut State, now: Ts, weight: u32) -> Result<(), RateLimited> {
        if now < s.blocked_until {
            s.stats.refused_backoff += 1;
            return Err(RateLimited { limit: Limit::Backoff, retry_at: s.blocked_until });
        }
        if let Some(retry_at) = s.weight.blocked_until(now, weight as u64) {
            s.stats.refused_weight += 1;
            return Err(RateLimited { limit: Limit::Weight, retry_at });
        }
        Ok(())
    }

    /// Admits a request of `weight` and counts it, or refuses it without counting.
    pub fn try_acquire(&self, now: Ts, weight: u32) -> Result<(), RateLimited> {
        let mut s = self.lock();
        Self::check_locked(&mut s, now, weight)?;
        s.weight.add(now, weight as u64);
        s.stats.admitted += 1;
        s.stats.weight += weight as u64;
        Ok(())
    }

    /// Refuses every request until `until`.
    pub fn block_until(&self, until: Ts) {
        let mut s = self.lock();
        s.blocked_until = s.blocked_until.max(until);
    }

    /// Takes a 429 or 418 answer received at `now` with its `Retry-After` header value
    /// (seconds; absent or unreadable: 1 s for 429, 120 s for 418), capped at the
    /// budget's cap, and blocks every request until then. Returns the end of the block.
    pub fn back_off(&self, now: Ts, status: u16, retry_after: Option<&str>) -> Ts {
        let default = if status == 418 { DEFAULT_418_BACKOFF_S } else { DEFAULT_429_BACKOFF_S };
        let secs = retry_after.map(str::trim).map_or(default, |v| {
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                // All digits but beyond u64: as long as any cap.
                v.parse::<u64>().unwrap_or(u64::MAX)
            } else {
                default
            }
        });
        let mut s = self.lock();
        s.stats.backoffs += 1;
        if secs > self.retry_after_cap_s {
            s.stats.capped += 1;
        }
        let secs = secs.min(self.retry_after_cap_s);
        let until = now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(NS_PER_SEC));
        s.blocked_until = s.blocked_until.max(until);
        until
    }

    /// End of the current server back-off (`Ts::MIN` if none was ever set).
    pub fn blocked_until(&self) -> Ts {
        self.lock().blocked_until
    }

    /// Takes the server's count (`X-MBX-USED-WEIGHT-1M`): where it is higher than
    /// ours, the difference is added now (other processes on the same IP). True if it
    /// raised our count.
    pub fn observe(&self, now: Ts, used_weight_1m: Option<u32>) -> bool {
        let Some(server) = used_weight_1m else { return false };
        let mut s = self.lock();
        let ours = s.weight.count(now);
        if server as u64 > ours {
            s.weight.add(now, server as u64 - ours);
            return true;
        }
        false
    }

    /// Weight counted in the minute ending at `now`.
    pub fn used_weight(&self, now: Ts) -> u64 {
        self.lock().weight.count(now)
    }

    /// The `Retry-After` cap, s.
    pub fn retry_after_cap_s(&self) -> u64 {
        self.retry_after_cap_s
    }

    /// Counters.
    pub fn stats(&self) -> BudgetStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Ts = NS_PER_SEC;

    #[test]
    fn depth_weights_as_documented() {
        let w: Vec<u32> = [1, 100, 101, 500, 501, 1000, 1001, 5000].into_iter().map(depth_weight).collect();
        assert_eq!(w, [5, 5, 25, 25, 50, 50, 250, 250]);
    }

    #[test]
    fn retry_after_is_capped_and_saturates() {
        let b = IpBudget::new(6000, 300);
        let t0 = 1_700_000_000 * S;
        assert_eq!(b.back_off(t0, 429, Some("4294967295")), t0 + 300 * S);
        assert_eq!(b.back_off(t0, 429, Some("999999999999999999999999")), t0 + 300 * S);
        assert_eq!(b.stats().capped, 2);
        let b = IpBudget::new(6000, u64::MAX);
        assert_eq!(b.back_off(t0, 418, Some("18446744073709551615")), Ts::MAX);
        let b = IpBudget::new(6000, 300);
        assert_eq!(b.back_off(t0, 429, Some(" 7 ")), t0 + 7 * S);
        assert_eq!(b.back_off(t0, 429, Some("-5")), t0 + S);
        assert_eq!(b.back_off(t0, 418, None), t0 + 120 * S);
        assert_eq!(b.try_acquire(t0 + 119 * S, 1).unwrap_err().limit, Limit::Backoff);
        assert_eq!(b.try_acquire(t0 + 120 * S, 1), Ok(()));
    }

    #[test]
    fn shared_between_threads() {
        let b = std::sync::Arc::new(IpBudget::new(100, 300));
        let t0 = 1_000 * S;
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..50).filter(|_| b.try_acquire(t0, 1).is_ok()).count())
            })
            .collect();
        let admitted: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 100);
        assert_eq!(b.used_weight(t0), 100);
    }
}
