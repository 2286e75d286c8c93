//! What the hot thread shares with the monitor: a [`Sample`] of its counters and
//! gauges, the tick-to-quote histogram, and the venue's rejects one by one.
//!
//! The hot thread is the only writer. Every [`PUBLISH_EVERY`] loop turns it stores a
//! fresh [`Sample`] into [`Telemetry`], word by word, with relaxed atomic stores: no
//! lock, no allocation, no system call, and no read-modify-write instruction. The
//! monitor loads the words back whenever it likes. A load that races a store may mix
//! two consecutive samples field by field; each field is still a value it really had,
//! which is all a status line or a scrape needs.
//!
//! Venue rejects are events, not levels: a counter would lose their codes, so each one
//! goes through a bounded lock-free queue (crossbeam's `ArrayQueue`, preallocated). A
//! full queue drops the notice and counts it; the reject itself is still counted in
//! the sample.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam::queue::ArrayQueue;

use super::hist::AtomicHist;
use crate::event::ExecReport;
use crate::feed::source::FeedCounters;
use crate::feed::ws::Failure;
use crate::risk::Reject;

/// The hot loop publishes a [`Sample`] every this many turns (a few microseconds of a
/// busy-polling loop; once per 64 events of a replay).
pub const PUBLISH_EVERY: u64 = 64;

/// Venue rejects the queue holds before it drops notices.
pub const REJECT_QUEUE: usize = 1024;

/// One leg's gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LegSample {
    /// Position in base units (+ long, - short).
    pub position: f64,
    /// PnL in the quote asset: realized, plus the open position at the mark, less fees.
    pub pnl: f64,
    /// The mark price (the mid, or the last good one).
    pub mark: f64,
    /// The leg's market is two-sided and newer than `risk.stale_ms`.
    pub fresh: bool,
}

/// The hot thread's counters and gauges at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Times published (0: nothing yet).
    pub seq: u64,
    /// Loop turns.
    pub turns: u64,
    /// Market events handled.
    pub events: u64,
    /// Execution reports handled.
    pub reports: u64,
    /// Order commands pushed to the gateway.
    pub commands: u64,
    /// Fills.
    pub fills: u64,
    /// Quotes pushed: ticks that made orders (the tick-to-quote samples).
    pub quotes: u64,
    /// The market source's counters.
    pub feed: FeedCounters,
    /// The pair's legs, y then x.
    pub legs: [LegSample; 2],
    /// Net PnL of the pair at the marks.
    pub net_pnl: f64,
    /// Orders open (sent and not yet final).
    pub open_orders: u64,
    /// The kill switch has tripped.
    pub killed: bool,
    /// Orders refused, per [`Reject`] reason (indexed like [`Reject::ALL`]).
    pub risk_rejects: [u64; Reject::ALL.len()],
}

/// Words in a [`Sample`]'s atomic image.
const WORDS: usize = 8 + 11 + 2 * 4 + 2 + Reject::ALL.len();

impl Sample {
    /// The sample as words: integers as they are, floats by their bits, flags as 0 or 1.
    fn to_words(self) -> [u64; WORDS] {
        let f = &self.feed;
        let mut w = [0u64; WORDS];
        let head =
            [self.seq, self.turns, self.events, self.reports, self.commands, self.fills, self.quotes, self.open_orders];
        let feed = [
            f.messages,
            f.connects,
            f.disconnects,
            f.errors,
            f.resyncs,
            f.gaps,
            f.parse_errors,
            f.snapshot_errors,
            f.last_failure.to_word(),
            f.synced[0] as u64,
            f.synced[1] as u64,
        ];
        let leg = |l: &LegSample| [l.position.to_bits(), l.pnl.to_bits(), l.mark.to_bits(), l.fresh as u64];
        let tail = [self.net_pnl.to_bits(), self.killed as u64];
        let parts: [&[u64]; 6] = [&head, &feed, &leg(&self.legs[0]), &leg(&self.legs[1]), &tail, &self.risk_rejects];
        let mut i = 0;
        for part in parts {
            w[i..i + part.len()].copy_from_slice(part);
            i += part.len();
        }
        debug_assert_eq!(i, WORDS);
        w
    }

    /// The inverse of [`Sample::to_words`].
    fn from_words(w: &[u64; WORDS]) -> Sample {
        let leg = |o: usize| LegSample {
            position: f64::from_bits(w[o]),
            pnl: f64::from_bits(w[o + 1]),
            mark: f64::from_bits(w[o + 2]),
            fresh: w[o + 3] != 0,
        };
        let mut risk_rejects = [0; Reject::ALL.len()];
        risk_rejects.copy_from_slice(&w[WORDS - Reject::ALL.len()..]);
        Sample {
            seq: w[0],
            turns: w[1],
            events: w[2],
            reports: w[3],
            commands: w[4],
            fills: w[5],
            quotes: w[6],
            open_orders: w[7],
            feed: FeedCounters {
                messages: w[8],
                connects: w[9],
                disconnects: w[10],
                errors: w[11],
                resyncs: w[12],
                gaps: w[13],
                parse_errors: w[14],
                snapshot_errors: w[15],
                last_failure: Failure::from_word(w[16]),
                synced: [w[17] != 0, w[18] != 0],
            },
            legs: [leg(19), leg(23)],
            net_pnl: f64::from_bits(w[27]),
            killed: w[28] != 0,
            risk_rejects,
        }
    }

    /// Orders refused for `reason`.
    pub fn rejects(&self, reason: Reject) -> u64 {
        self.risk_rejects[reason as usize]
    }
}

/// The shared state. One hot thread writes; any thread reads.
#[derive(Debug)]
pub struct Telemetry {
    words: [AtomicU64; WORDS],
    /// Tick-to-quote in ns, as the hot loop's `Stage::TickToQuote`.
    pub tick_to_quote: AtomicHist,
    rejects: ArrayQueue<ExecReport>,
    rejects_dropped: AtomicU64,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Everything allocated now: the histogram's buckets and the reject queue.
    pub fn new() -> Self {
        Telemetry {
            words: std::array::from_fn(|_| AtomicU64::new(0)),
            tick_to_quote: AtomicHist::new(),
            rejects: ArrayQueue::new(REJECT_QUEUE),
            rejects_dropped: AtomicU64::new(0),
        }
    }

    /// Publishes `s` (hot thread only).
    #[inline]
    pub fn store(&self, s: &Sample) {
        for (slot, w) in self.words.iter().zip(s.to_words()) {
            slot.store(w, Relaxed);
        }
    }

    /// The last published sample (a default one before the first).
    pub fn load(&self) -> Sample {
        Sample::from_words(&std::array::from_fn(|i| self.words[i].load(Relaxed)))
    }

    /// Hands a venue reject to the monitor (hot thread only): lock-free, no allocation;
    /// dropped and counted if the monitor is [`REJECT_QUEUE`] behind.
    #[inline]
    pub fn notice_reject(&self, rep: &ExecReport) {
        if self.rejects.push(*rep).is_err() {
            let d = &self.rejects_dropped;
            d.store(d.load(Relaxed) + 1, Relaxed);
        }
    }

    /// The next venue reject waiting for the monitor.
    pub fn next_reject(&self) -> Option<ExecReport> {
        self.rejects.pop()
    }

    /// Reject notices dropped because the queue was full.
    pub fn rejects_dropped(&self) -> u64 {
        self.rejects_dropped.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RejectMsg;
    use crate::types::Side;

    #[test]
    fn a_sample_comes_back_as_it_was_stored() {
        let s = Sample {
            seq: 1,
            turns: 2,
            events: 3,
            reports: 4,
            commands: 5,
            fills: 6,
            quotes: 7,
            feed: FeedCounters {
                messages: 8,
                connects: 9,
                disconnects: 10,
                errors: 11,
                resyncs: 12,
                gaps: 13,
                parse_errors: 14,
                snapshot_errors: 15,
                last_failure: Failure::Io(111),
                synced: [true, false],
            },
            legs: [
                LegSample { position: -0.25, pnl: 17.5, mark: 2_500.01, fresh: true },
                LegSample { position: 0.01, pnl: -2.04, mark: f64::NAN, fresh: false },
            ],
            net_pnl: -1e-9,
            open_orders: 16,
            killed: true,
            risk_rejects: std::array::from_fn(|i| 100 + i as u64),
        };
        let t = Telemetry::new();
        assert_eq!(t.load(), Sample::default());
        t.store(&s);
        let back = t.load();
        assert!(back.legs[1].mark.is_nan());
        let nan_free = |mut x: Sample| {
            x.legs[1].mark = 0.0;
            x
        };
        assert_eq!(nan_free(back), nan_free(s));
        assert_eq!(back.rejects(Reject::Exchange), 108);
    }

    #[test]
    fn rejects_queue_up_and_a_full_queue_counts_its_drops() {
        let t = Telemetry::new();
        let rep = ExecReport::rejected(7, 1, Side::Buy, 100, -2010, RejectMsg::from("insufficient").unwrap(), 0);
        for _ in 0..REJECT_QUEUE + 3 {
            t.notice_reject(&rep);
        }
        assert_eq!(t.rejects_dropped(), 3);
        let first = t.next_reject().unwrap();
        assert_eq!((first.id, first.code, first.msg.as_str()), (7, -2010, "insufficient"));
        assert_eq!(std::iter::from_fn(|| t.next_reject()).count(), REJECT_QUEUE - 1);
    }
}
