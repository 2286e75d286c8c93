//! The feed's clock when it runs on exchange time (`feed.clock = "exchange"`).
//!
//! A replay server sends faster than real time, so the feed's clock is then the
//! running maximum of the exchange times it has seen. One absurd stamp (an `E` in the
//! year 2100) would move that maximum, and with it every later event's time, for good:
//! the signal would freeze until 2100. So a forward step of more than
//! [`MAX_UNCONFIRMED_JUMP_NS`] is taken only once a second message confirms it (its own
//! time within the same bound of the first one's); until then the clock stays where it
//! was and the jump is counted. A real gap in the data (a halt, a reconnect after a long
//! outage) is confirmed by the next message and costs one message's delay; a lone bad
//! stamp costs nothing.

use crate::types::Ts;

/// Largest forward step taken on one message's word: 60 s.
pub const MAX_UNCONFIRMED_JUMP_NS: Ts = 60_000_000_000;

/// A running maximum of exchange times that needs two witnesses for a big jump.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeClock {
    /// The clock; 0 before the first message.
    now: Ts,
    /// A jump seen once and not yet confirmed (0: none).
    candidate: Ts,
    /// Jumps refused (seen once and not confirmed by the next message).
    refused: u64,
}

impl ExchangeClock {
    /// The clock now (0 before the first message).
    #[inline]
    pub fn now(&self) -> Ts {
        self.now
    }

    /// Forward jumps refused so far.
    #[inline]
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Takes one message's exchange time and returns the clock.
    #[inline]
    pub fn observe(&mut self, exch_ts: Ts) -> Ts {
        if self.now == 0 {
            self.now = exch_ts;
        } else if exch_ts > self.now {
            if exch_ts.saturating_sub(self.now) <= MAX_UNCONFIRMED_JUMP_NS {
                self.now = exch_ts;
                self.drop_candidate();
            } else if self.candidate != 0 && exch_ts.abs_diff(self.candidate) <= MAX_UNCONFIRMED_JUMP_NS as u64 {
                self.now = exch_ts;
                self.candidate = 0;
            } else {
                self.drop_candidate();
                self.candidate = exch_ts;
            }
        } else {
            // A message back on the old clock: a pending jump was a lone bad stamp.
            self.drop_candidate();
        }
        self.now
    }

    /// Forgets an unconfirmed jump, counting it as refused.
    #[inline]
    fn drop_candidate(&mut self) {
        if self.candidate != 0 {
            self.candidate = 0;
            self.refused += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Ts = 1_000_000_000;

    #[test]
    fn a_lone_stamp_in_2100_does_not_move_the_clock() {
        let mut c = ExchangeClock::default();
        let t0 = 1_723_161_253 * S;
        assert_eq!(c.observe(t0), t0);
        assert_eq!(c.observe(t0 + S), t0 + S);
        let year_2100 = 4_102_444_800 * S;
        assert_eq!(c.observe(year_2100), t0 + S, "one witness is not enough");
        assert_eq!(c.observe(t0 + 2 * S), t0 + 2 * S);
        assert_eq!(c.refused(), 1);
        // Later stamps keep the clock going as before.
        assert_eq!(c.observe(t0 + 3 * S), t0 + 3 * S);
    }

    #[test]
    fn a_real_gap_is_taken_once_confirmed() {
        let mut c = ExchangeClock::default();
        let t0 = 1_723_161_253 * S;
        c.observe(t0);
        let after_halt = t0 + 600 * S;
        assert_eq!(c.observe(after_halt), t0);
        assert_eq!(c.observe(after_halt + S / 10), after_halt + S / 10);
        assert_eq!(c.refused(), 0);
        // Small steps and old stamps behave as a running maximum.
        assert_eq!(c.observe(after_halt + 30 * S), after_halt + 30 * S);
        assert_eq!(c.observe(after_halt), after_halt + 30 * S);
    }

    #[test]
    fn two_different_absurd_stamps_do_not_confirm_each_other() {
        let mut c = ExchangeClock::default();
        c.observe(S);
        assert_eq!(c.observe(i64::MAX), S);
        assert_eq!(c.observe(i64::MAX / 2), S);
        assert_eq!(c.observe(2 * S), 2 * S);
        assert_eq!(c.refused(), 2);
    }
}
