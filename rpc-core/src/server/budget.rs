//! What a whole server may hold at once, shared by its connections: requests
//! in flight and bytes of frames. A connection that cannot take its share
//! stops reading and waits here, so memory stays bounded whatever the peers
//! send or fail to read.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    task::Waker,
};

use parking_lot::Mutex;

use crate::limits::Limits;

/// Server-wide counters. Uncontended takes and gives are one atomic each;
/// the waiter list is touched only while the server is at a bound.
pub(super) struct Budget {
    requests: Counter,
    bytes: Counter,
    /// One connection at a time may finish a frame past the byte bound, so
    /// that peers each holding part of one cannot wedge the server: memory
    /// stays within the bound plus one frame.
    frame_pass: AtomicBool,
    waiting: AtomicBool,
    generation: AtomicU64,
    waiters: Mutex<Vec<Waker>>,
}

struct Counter {
    used: AtomicUsize,
    max: usize,
}

impl Counter {
    fn try_take(&self, n: usize) -> bool {
        let before = self.used.fetch_add(n, Ordering::AcqRel);
        // With nothing held anything passes, so a bound below one frame
        // slows the server to one at a time instead of wedging it.
        if before != 0 && before + n > self.max {
            self.used.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Whether `n` more would fit, counting what the asker holds itself
    /// (`own`) as free: a connection that is the only holder always
    /// proceeds, so no bound can wedge a lone peer.
    fn has_room(&self, n: usize, own: usize) -> bool {
        let used = self.used.load(Ordering::Acquire);
        used <= own || used + n <= self.max
    }
}

impl Budget {
    pub(super) fn new(limits: &Limits) -> Budget {
        Budget {
            requests: Counter {
                used: AtomicUsize::new(0),
                max: limits.max_in_flight.max(1),
            },
            bytes: Counter {
                used: AtomicUsize::new(0),
                max: limits.max_in_flight_bytes,
            },
            frame_pass: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Take one request slot.
    pub(super) fn take_request(&self) -> bool {
        self.requests.try_take(1)
    }

    /// Whether a connection holding `own` bytes may read `n` more. Reads
    /// are charged after the fact ([`Budget::charge_bytes`]), so the server
    /// may go past its bound by one read per connection reading at that
    /// moment, never more.
    pub(super) fn has_room_for_bytes(&self, n: usize, own: usize) -> bool {
        self.bytes.has_room(n, own)
    }

    /// Charge `n` bytes that are already held (read, or encoded).
    pub(super) fn charge_bytes(&self, n: usize) {
        self.bytes.used.fetch_add(n, Ordering::AcqRel);
    }

    /// Take the pass to finish one frame past the byte bound.
    pub(super) fn take_frame_pass(&self) -> bool {
        self.frame_pass
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Give the pass back, waking connections that wait.
    pub(super) fn give_frame_pass(&self) {
        self.frame_pass.store(false, Ordering::Release);
        self.give(0, 0);
    }

    /// Give back `requests` slots and `bytes` bytes, waking connections that
    /// wait for them.
    pub(super) fn give(&self, requests: usize, bytes: usize) {
        if requests > 0 {
            self.requests.used.fetch_sub(requests, Ordering::AcqRel);
        }
        if bytes > 0 {
            self.bytes.used.fetch_sub(bytes, Ordering::AcqRel);
        }
        if self.waiting.load(Ordering::Acquire) {
            let waiters = {
                let mut w = self.waiters.lock();
                self.waiting.store(false, Ordering::Release);
                self.generation.fetch_add(1, Ordering::AcqRel);
                std::mem::take(&mut *w)
            };
            for w in waiters {
                w.wake();
            }
        }
    }

    /// Wake `waker` the next time anything is given back. `registered` is
    /// the caller's note of the generation it registered in, so a connection
    /// polled again before that wake does not register twice. The caller
    /// tries again after registering: a give that raced with the
    /// registration must not be missed.
    pub(super) fn wait(&self, waker: &Waker, registered: &mut Option<u64>) {
        let mut w = self.waiters.lock();
        let generation = self.generation.load(Ordering::Acquire);
        if *registered == Some(generation) {
            return;
        }
        w.push(waker.clone());
        *registered = Some(generation);
        self.waiting.store(true, Ordering::Release);
    }

    /// Requests and bytes held now, for tests and metrics.
    #[cfg(test)]
    pub(super) fn used(&self) -> (usize, usize) {
        (
            self.requests.used.load(Ordering::Acquire),
            self.bytes.used.load(Ordering::Acquire),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_up_to_the_bound_and_one_always_passes_when_empty() {
        let limits = Limits {
            max_in_flight: 2,
            max_in_flight_bytes: 100,
            ..Limits::default()
        };
        let b = Budget::new(&limits);
        assert!(
            b.has_room_for_bytes(1000, 0),
            "nothing held: a read past the bound passes"
        );
        b.charge_bytes(1000);
        assert!(!b.has_room_for_bytes(1, 0));
        assert!(
            b.has_room_for_bytes(1, 1000),
            "the only holder always proceeds"
        );
        b.give(0, 1000);
        b.charge_bytes(60);
        assert!(b.has_room_for_bytes(40, 0) && !b.has_room_for_bytes(41, 0));
        b.give(0, 60);
        assert!(
            b.take_frame_pass() && !b.take_frame_pass(),
            "one frame pass at a time"
        );
        b.give_frame_pass();
        assert!(b.take_frame_pass());
        assert!(b.take_request() && b.take_request() && !b.take_request());
        b.give(2, 0);
        assert_eq!(b.used(), (0, 0));
    }

    #[test]
    fn a_give_wakes_every_waiter_once() {
        use std::sync::{atomic::AtomicUsize, Arc};
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let b = Budget::new(&Limits::default());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut reg = None;
        b.wait(&waker, &mut reg);
        b.wait(&waker, &mut reg); // same generation: not twice
        b.give(0, 0);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        b.give(0, 0); // nobody waits any more
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
