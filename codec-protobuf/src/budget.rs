//! Bytes a server holds, per connection and for the whole server, in two
//! accounts that bound different things:
//!
//! - **request messages**, charged as they land; past either bound the
//!   flow-control window they used is not given back until their call ends,
//!   so a peer can add at most one connection window on top of the bound,
//!   however many streams it opens;
//! - **answers not yet written**: each message handed to h2 is a [`Charged`]
//!   buffer, released when h2 drops it (written out, or discarded with its
//!   stream). Past either bound no handler starts and no streamed message is
//!   produced until the peer reads: a peer that asks for large answers and
//!   never reads holds the bound, not what it asked for. Only answers count
//!   here, not requests: calls waiting for room hold their requests, and
//!   could otherwise wait for one another forever.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll, Waker},
};

use bytes::{Buf, Bytes};

/// The server's side of the accounts, shared by its connections.
#[derive(Debug, Default)]
pub(crate) struct Server {
    requests: AtomicUsize,
    answers: AtomicUsize,
    /// Calls waiting for answer room, on any connection. Touched only when
    /// a bound was reached.
    waiters: parking_lot::Mutex<Vec<Waker>>,
    waiting: AtomicBool,
}

/// The counters one connection charges: its own and the server's. A clone
/// is one reference count.
#[derive(Debug, Clone)]
pub(crate) struct Budget(Arc<Conn>);

#[derive(Debug)]
struct Conn {
    requests: AtomicUsize,
    answers: AtomicUsize,
    max: usize,
    server: Arc<Server>,
    server_max: usize,
}

impl Budget {
    pub(crate) fn new(server: Arc<Server>, server_max: usize, conn_max: usize) -> Budget {
        Budget(Arc::new(Conn {
            requests: AtomicUsize::new(0),
            answers: AtomicUsize::new(0),
            max: conn_max,
            server,
            server_max,
        }))
    }

    /// Charge `n` request bytes; whether both counters are still within
    /// bounds.
    pub(crate) fn charge(&self, n: usize) -> bool {
        let b = &*self.0;
        let c = b.requests.fetch_add(n, Ordering::Relaxed) + n;
        let s = b.server.requests.fetch_add(n, Ordering::Relaxed) + n;
        c <= b.max && s <= b.server_max
    }

    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.0.requests.fetch_sub(n, Ordering::Relaxed);
            self.0.server.requests.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Whether there is room for another answer: below both bounds. An
    /// empty account always has room, however large the answer.
    pub(crate) fn has_answer_room(&self) -> bool {
        let b = &*self.0;
        // SeqCst here and in the release: a waiter's registration and a
        // release's look for waiters must not both miss the other.
        b.answers.load(Ordering::SeqCst) < b.max
            && b.server.answers.load(Ordering::SeqCst) < b.server_max
    }

    /// Ready when another answer may be produced; otherwise woken when
    /// unwritten answers are released.
    pub(crate) fn poll_answer_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.has_answer_room() {
            return Poll::Ready(());
        }
        {
            let server = &self.0.server;
            let mut waiters = server.waiters.lock();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            server.waiting.store(true, Ordering::SeqCst);
        }
        // A release between the check and the registration saw no waiter.
        if self.has_answer_room() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// `bytes` of an answer, charged until h2 drops them.
    pub(crate) fn answer(&self, bytes: Bytes) -> Charged {
        let n = bytes.len();
        self.0.answers.fetch_add(n, Ordering::AcqRel);
        self.0.server.answers.fetch_add(n, Ordering::AcqRel);
        Charged {
            bytes,
            charge: Some((self.clone(), n)),
        }
    }

    fn release_answer(&self, n: usize) {
        let server = &self.0.server;
        self.0.answers.fetch_sub(n, Ordering::SeqCst);
        server.answers.fetch_sub(n, Ordering::SeqCst);
        if server.waiting.load(Ordering::SeqCst) {
            let woken = {
                let mut waiters = server.waiters.lock();
                server.waiting.store(false, Ordering::SeqCst);
                std::mem::take(&mut *waiters)
            };
            // Each re-checks its bounds and waits again if still short.
            for w in woken {
                w.wake();
            }
        }
    }
}

/// A buffer h2 sends on the server: an answer's bytes, charged to the
/// budget until h2 is done with them (written, or dropped with a stream
/// that was reset), so the account cannot drift.
#[derive(Debug)]
pub(crate) struct Charged {
    bytes: Bytes,
    charge: Option<(Budget, usize)>,
}

impl Drop for Charged {
    fn drop(&mut self) {
        if let Some((budget, n)) = self.charge.take() {
            budget.release_answer(n);
        }
    }
}

impl Buf for Charged {
    fn remaining(&self) -> usize {
        self.bytes.remaining()
    }

    fn chunk(&self) -> &[u8] {
        self.bytes.chunk()
    }

    fn advance(&mut self, cnt: usize) {
        self.bytes.advance(cnt)
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        self.bytes.copy_to_bytes(len)
    }
}

/// What one stream holds: bytes charged, and window not yet given back.
/// Dropping it returns the charge (h2 returns the window with the stream).
#[derive(Debug)]
pub(crate) struct Held {
    budget: Budget,
    pub(crate) charged: usize,
    pub(crate) owed: usize,
}

impl Held {
    pub(crate) fn new(budget: Budget) -> Held {
        Held {
            budget,
            charged: 0,
            owed: 0,
        }
    }

    /// Hold a header list of `n` bytes until the call ends; whether both
    /// bounds still hold with it.
    pub(crate) fn hold_head(&mut self, n: usize) -> bool {
        self.charged += n;
        self.budget.charge(n)
    }

    /// A chunk of `n` bytes arrived: how much window to give back now.
    pub(crate) fn received(&mut self, n: usize) -> usize {
        self.charged += n;
        if self.budget.charge(n) && self.owed == 0 {
            n
        } else {
            self.owed += n;
            0
        }
    }

    /// The bytes held so far are no longer ours (a message handed on):
    /// return the charge, and the window owed for them.
    pub(crate) fn settle(&mut self) -> usize {
        self.budget.release(std::mem::take(&mut self.charged));
        std::mem::take(&mut self.owed)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(self.charged);
    }
}
