//! Bytes of request messages a server holds, per connection and for the
//! whole server. Received bytes are charged as they land; past either
//! bound the flow-control window they used is not given back until their
//! call ends, so a peer can add at most one connection window on top of
//! the bound, however many streams it opens.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

/// The counters one connection charges: its own and the server's.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    conn: Arc<AtomicUsize>,
    conn_max: usize,
    server: Arc<AtomicUsize>,
    server_max: usize,
}

impl Budget {
    pub(crate) fn new(server: Arc<AtomicUsize>, server_max: usize, conn_max: usize) -> Budget {
        Budget {
            conn: Arc::default(),
            conn_max,
            server,
            server_max,
        }
    }

    /// Charge `n` bytes; whether both counters are still within bounds.
    pub(crate) fn charge(&self, n: usize) -> bool {
        let c = self.conn.fetch_add(n, Ordering::Relaxed) + n;
        let s = self.server.fetch_add(n, Ordering::Relaxed) + n;
        c <= self.conn_max && s <= self.server_max
    }

    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.conn.fetch_sub(n, Ordering::Relaxed);
            self.server.fetch_sub(n, Ordering::Relaxed);
        }
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
