//! A bounded single-producer single-consumer ring between two threads.
//!
//! The storage is [`rtrb`]'s ring buffer: a fixed array allocated once, wait-free push
//! and pop, no allocation after construction. Each side keeps its own index and a
//! cached copy of the other side's, each on its own cache line, so a push or pop that
//! finds room (or an item) in the cache touches no shared line but the slot itself.
//!
//! Why `rtrb` and not crossbeam's `ArrayQueue`, which this module wrapped before:
//! `ArrayQueue` is a many-producer many-consumer queue (Vyukov's, per-slot stamps and a
//! compare-and-swap on each side). Narrowed to one of each it still pays for the
//! generality: across two pinned cores a hop is 154.9 ns median with `ArrayQueue` and
//! 62.8 ns with `rtrb` on the development VM, over a core-to-core floor of 56 ns (588
//! and 291 ns on a slower day, whose floor was 268 ns; `cargo bench --bench stages --
//! ring/hop`, figures in the README). The choice follows that figure.
//!
//! [`Producer`] and [`Consumer`] are neither `Clone` nor `Sync`-shared, so the
//! single-producer single-consumer contract the hot loop relies on (FIFO order between
//! the two threads) is a type property, not a convention.

use std::fmt;

/// Creates a ring holding at most `capacity` items (`capacity > 0`).
pub fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity);
    (Producer { tx }, Consumer { rx })
}

/// The sending half.
pub struct Producer<T> {
    tx: rtrb::Producer<T>,
}

/// The receiving half.
pub struct Consumer<T> {
    rx: rtrb::Consumer<T>,
}

/// A push into a full ring hands the value back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> Producer<T> {
    /// Appends `v`, or hands it back if the ring is full.
    #[inline]
    pub fn push(&mut self, v: T) -> Result<(), Full<T>> {
        self.tx.push(v).map_err(|rtrb::PushError::Full(v)| Full(v))
    }

    /// Free slots now (a lower bound: the consumer may be freeing more).
    #[inline]
    pub fn slots(&self) -> usize {
        self.tx.slots()
    }

    /// True once the consumer has been dropped.
    pub fn is_abandoned(&self) -> bool {
        self.tx.is_abandoned()
    }
}

impl<T> Consumer<T> {
    /// Takes the oldest item, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        self.rx.pop().ok()
    }

    /// Items waiting now (a lower bound: the producer may be adding more).
    #[inline]
    pub fn len(&self) -> usize {
        self.rx.slots()
    }

    /// True if nothing is waiting now.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// True if the ring is full now (the producer cannot push until this side pops).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.rx.slots() == self.rx.buffer().capacity()
    }

    /// True once the producer has been dropped.
    pub fn is_abandoned(&self) -> bool {
        self.rx.is_abandoned()
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cap = self.tx.buffer().capacity();
        f.debug_struct("Producer").field("capacity", &cap).field("len", &(cap - self.tx.slots())).finish()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.rx.buffer().capacity())
            .field("len", &self.rx.slots())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_hands_the_value_back() {
        let (mut p, mut c) = ring(2);
        assert_eq!(p.push(1), Ok(()));
        assert_eq!(p.push(2), Ok(()));
        assert_eq!(p.push(3), Err(Full(3)));
        assert_eq!(c.pop(), Some(1));
        assert_eq!(p.slots(), 1);
        assert_eq!(c.pop(), Some(2));
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn full_and_empty_as_the_consumer_sees_them() {
        let (mut p, mut c) = ring(2);
        assert!(c.is_empty() && !c.is_full());
        p.push(1).unwrap();
        assert_eq!(c.len(), 1);
        p.push(2).unwrap();
        assert!(c.is_full());
        assert_eq!(c.pop(), Some(1));
        assert!(!c.is_full() && !c.is_empty());
        drop(p);
        assert!(c.is_abandoned());
        assert_eq!(c.pop(), Some(2), "items pushed before the producer left are still read");
    }

    #[test]
    fn fifo_across_threads() {
        const N: u64 = 200_000;
        let (mut p, mut c) = ring::<u64>(64);
        let t = std::thread::spawn(move || {
            for i in 0..N {
                let mut v = i;
                while let Err(Full(back)) = p.push(v) {
                    v = back;
                    std::hint::spin_loop();
                }
            }
        });
        let mut next = 0;
        while next < N {
            if let Some(v) = c.pop() {
                assert_eq!(v, next);
                next += 1;
            }
        }
        t.join().unwrap();
        assert!(c.is_abandoned());
    }
}
