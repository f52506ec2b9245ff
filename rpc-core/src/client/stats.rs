//! What the clients of the process report at scrape time, per peer: pool
//! hits and misses, pooled connections open and idle, multiplexed calls in
//! flight. Read from counters the connections keep anyway (a relaxed
//! atomic per pooled checkout, the multiplexed slots' permits), so a call
//! pays nothing for them.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError, Weak,
    },
};

use crate::transport::Address;

/// The connection counts of every client of one peer, as [`peers`] reads
/// them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PeerStats {
    /// Pooled calls that found an idle connection, since the first client
    /// of this peer was built (clients dropped since included).
    pub pool_hits: u64,
    /// Pooled calls that had to connect, or wait for a connection to come
    /// back (likewise).
    pub pool_misses: u64,
    /// Pooled connections open now, idle or busy.
    pub pool_open: usize,
    /// Pooled connections idle now.
    pub pool_idle: usize,
    /// Calls in flight now on multiplexed connections.
    pub mux_in_flight: usize,
    /// Live pooled clients of this peer.
    pub pooled_clients: usize,
    /// Live multiplexed clients of this peer.
    pub mux_clients: usize,
}

/// The monotonic counters of one peer, shared by all its clients and kept
/// after they are gone, so that they never go backwards.
#[derive(Debug, Default)]
pub(super) struct PeerCounters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
}

/// A client's live counts, read without keeping it alive.
pub(super) trait Live: Send + Sync {
    /// Add this client's counts to `into`.
    fn add_to(&self, into: &mut PeerStats);
}

#[derive(Default)]
struct Registry {
    /// One entry per peer ever connected to: as many as the series a
    /// Prometheus recorder keeps for them anyway.
    peers: HashMap<Address, Arc<PeerCounters>>,
    clients: Vec<(Address, Weak<dyn Live>)>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// The counters of `peer`, for a client being built (once per client, not
/// per call).
pub(super) fn counters(peer: &Address) -> Arc<PeerCounters> {
    let mut r = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let r = r.get_or_insert_with(Registry::default);
    r.peers.entry(peer.clone()).or_default().clone()
}

/// Remember a client just built, weakly.
pub(super) fn register(peer: &Address, client: Weak<dyn Live>) {
    let mut r = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let r = r.get_or_insert_with(Registry::default);
    r.clients.retain(|(_, c)| c.strong_count() > 0);
    r.clients.push((peer.clone(), client));
}

/// Every peer this process's clients have talked to, with their counts,
/// for a metrics scrape or a status page. Takes a lock shared with client
/// construction, and each live pooled client's idle-list lock for a moment.
pub fn peers() -> Vec<(Address, PeerStats)> {
    let mut r = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(r) = r.as_mut() else {
        return Vec::new();
    };
    let mut out: HashMap<&Address, PeerStats> = r
        .peers
        .iter()
        .map(|(peer, c)| {
            let stats = PeerStats {
                pool_hits: c.hits.load(Ordering::Relaxed),
                pool_misses: c.misses.load(Ordering::Relaxed),
                ..PeerStats::default()
            };
            (peer, stats)
        })
        .collect();
    r.clients.retain(|(peer, c)| match c.upgrade() {
        Some(c) => {
            if let Some(into) = out.get_mut(peer) {
                c.add_to(into);
            }
            true
        }
        None => false,
    });
    let mut out: Vec<_> = out.into_iter().map(|(a, s)| (a.clone(), s)).collect();
    out.sort_by_key(|(a, _)| a.to_string());
    out
}
