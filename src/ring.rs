//! A bounded single-producer single-consumer ring between two threads.
//!
//! The storage is crossbeam's [`ArrayQueue`]: a fixed array allocated once, lock-free
//! push and pop (Vyukov's bounded queue with per-slot stamps), no allocation after
//! construction. `ArrayQueue` itself allows many producers and consumers; this module
//! narrows it to exactly one of each by ownership: [`Producer`] and [`Consumer`] are
//! neither `Clone` nor `Sync`-shared, so the single-producer single-consumer contract
//! the hot loop relies on (FIFO order between the two threads) is a type property,
//! not a convention.

use std::fmt;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

/// Creates a ring holding at most `capacity` items (`capacity > 0`).
pub fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let q = Arc::new(ArrayQueue::new(capacity));
    (Producer { q: Arc::clone(&q) }, Consumer { q })
}

/// The sending half.
pub struct Producer<T> {
    q: Arc<ArrayQueue<T>>,
}

/// The receiving half.
pub struct Consumer<T> {
    q: Arc<ArrayQueue<T>>,
}

/// A push into a full ring hands the value back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> Producer<T> {
    /// Appends `v`, or hands it back if the ring is full.
    #[inline]
    pub fn push(&mut self, v: T) -> Result<(), Full<T>> {
        self.q.push(v).map_err(Full)
    }

    /// Free slots now (a lower bound: the consumer may be freeing more).
    #[inline]
    pub fn slots(&self) -> usize {
        self.q.capacity() - self.q.len()
    }

    /// True once the consumer has been dropped.
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.q) == 1
    }
}

impl<T> Consumer<T> {
    /// Takes the oldest item, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        self.q.pop()
    }

    /// Items waiting now (a lower bound: the producer may be adding more).
    #[inline]
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// True if nothing is waiting now.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// True if the ring is full now (the producer cannot push until this side pops).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.q.is_full()
    }

    /// True once the producer has been dropped.
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.q) == 1
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer").field("capacity", &self.q.capacity()).field("len", &self.q.len()).finish()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer").field("capacity", &self.q.capacity()).field("len", &self.q.len()).finish()
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
