//! The request context: who calls whom, the deadline, and metainfo.

use std::{
    collections::{hash_map::Entry, HashMap},
    time::Duration,
};

use faststr::FastStr;
use tokio::time::Instant;

use crate::transport::Address;

/// Up to this many entries, [`KvList::insert_all`] scans instead of indexing.
const LINEAR_SCAN_MAX: usize = 16;

/// Ordered string key/values. Small and allocation-free while empty, which is
/// the common case on the hot path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvList(Vec<(FastStr, FastStr)>);

impl KvList {
    /// Set `key` to `value`, replacing an existing value.
    pub fn insert(&mut self, key: impl Into<FastStr>, value: impl Into<FastStr>) {
        let key = key.into();
        let value = value.into();
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.0.push((key, value));
        }
    }

    /// Insert many key/values as [`KvList::insert`] would one by one (a
    /// later value replaces an earlier one for the same key; first
    /// insertion fixes the order), in time linear in the entries: a
    /// received header of thousands of keys must not cost their square.
    pub fn insert_all<K, V>(&mut self, entries: impl IntoIterator<Item = (K, V)>)
    where
        K: Into<FastStr>,
        V: Into<FastStr>,
    {
        let entries = entries.into_iter();
        if self.0.len() + entries.size_hint().0 <= LINEAR_SCAN_MAX {
            // Few entries: scanning beats hashing, and allocates nothing.
            for (k, v) in entries {
                self.insert(k, v);
            }
            return;
        }
        let mut index: HashMap<FastStr, usize> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        for (k, v) in entries {
            let (k, v) = (k.into(), v.into());
            match index.entry(k) {
                Entry::Occupied(slot) => self.0[*slot.get()].1 = v,
                Entry::Vacant(slot) => {
                    self.0.push((slot.key().clone(), v));
                    slot.insert(self.0.len() - 1);
                }
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&FastStr> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Remove `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<FastStr> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// Iterate in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&FastStr, &FastStr)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// String key/values that travel with a call, in the three scopes Kitex and
/// Volo define.
///
/// - *transient*: sent to the next hop only. On the server, values the caller
///   sent as transient arrive in [`Metainfo::upstream`] and are not forwarded.
/// - *persistent*: sent to every hop downstream. A server's received persistent
///   values are forwarded by its own outgoing calls when the context is
///   propagated.
/// - *backward*: set by the callee, returned to the caller with the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metainfo {
    /// Values for the next hop only.
    pub transient: KvList,
    /// Transient values received from the previous hop (server side).
    pub upstream: KvList,
    /// Values for every hop downstream.
    pub persistent: KvList,
    /// Values travelling from callee back to caller.
    pub backward: KvList,
}

impl Metainfo {
    /// True when no scope holds a value.
    pub fn is_empty(&self) -> bool {
        self.transient.is_empty()
            && self.upstream.is_empty()
            && self.persistent.is_empty()
            && self.backward.is_empty()
    }

    /// The metainfo a server hands to its own outgoing calls: persistent values
    /// carry on, transient and upstream values stop here.
    pub fn for_next_hop(&self) -> Metainfo {
        Metainfo {
            persistent: self.persistent.clone(),
            ..Metainfo::default()
        }
    }
}

/// Everything about a call except its message.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Context {
    /// The callee's service name.
    pub service: FastStr,
    /// The method called.
    pub method: FastStr,
    /// The caller's service name, when known.
    pub caller: FastStr,
    /// The remote peer: the server for a client, the client for a server.
    pub peer: Option<Address>,
    /// The sequence id on the wire.
    pub seq_id: i32,
    /// When the call must be finished by. Travels across hops as a remaining
    /// timeout, so clocks need not agree.
    pub deadline: Option<Instant>,
    /// Key/values that travel with the call.
    pub metainfo: Metainfo,
    /// A one-way call expects no response.
    pub oneway: bool,
    /// Protocol-specific facts, by type: a gRPC call's full metadata and
    /// trailers, say, beside the protocol-neutral [`Metainfo`]. Empty costs
    /// nothing; [`Context::child`] does not carry them to the next hop.
    pub extensions: http::Extensions,
    /// Where the client connection reports the sizes of the frames it
    /// writes and reads for this call (set by an observing layer; see
    /// [`wire`](crate::wire)). Not carried to the next hop, and cleared from
    /// the response's context once reported.
    pub sizes: Option<crate::wire::SizeSink>,
}

impl Context {
    /// A context for calling `method` of `service`.
    pub fn new(service: impl Into<FastStr>, method: impl Into<FastStr>) -> Context {
        Context {
            service: service.into(),
            method: method.into(),
            ..Context::default()
        }
    }

    /// Set the deadline `timeout` from now.
    pub fn set_timeout(&mut self, timeout: Duration) {
        // A timeout too large to add to the clock is no deadline at all.
        self.deadline = Instant::now().checked_add(timeout);
    }

    /// Time left before the deadline; `None` without a deadline, zero when it passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// True when a deadline is set and has passed.
    pub fn is_expired(&self) -> bool {
        self.deadline.is_some_and(|d| d <= Instant::now())
    }

    /// A context for a downstream call made while serving this one: the
    /// deadline and persistent metainfo carry over, the caller becomes this
    /// service.
    pub fn child(&self, service: impl Into<FastStr>, method: impl Into<FastStr>) -> Context {
        Context {
            service: service.into(),
            method: method.into(),
            caller: self.service.clone(),
            deadline: self.deadline,
            metainfo: self.metainfo.for_next_hop(),
            ..Context::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_list_replaces_and_removes() {
        let mut kv = KvList::default();
        kv.insert("a", "1");
        kv.insert("b", "2");
        kv.insert("a", "3");
        assert_eq!(kv.len(), 2);
        assert_eq!(kv.get("a").map(|v| v.as_str()), Some("3"));
        assert_eq!(kv.remove("a").as_deref(), Some("3"));
        assert!(kv.get("a").is_none());
    }

    #[test]
    fn insert_all_matches_insert_one_by_one() {
        for n in [3, 1024] {
            // Distinct keys, then every other key again with a new value.
            let entries: Vec<(String, String)> = (0..n)
                .map(|i| (format!("k{i}"), format!("a{i}")))
                .chain(
                    (0..n)
                        .step_by(2)
                        .map(|i| (format!("k{i}"), format!("b{i}"))),
                )
                .collect();
            let mut one_by_one = KvList::default();
            one_by_one.insert("k1", "before");
            one_by_one.insert("z", "kept");
            let mut bulk = one_by_one.clone();
            for (k, v) in entries.clone() {
                one_by_one.insert(k, v);
            }
            bulk.insert_all(entries);
            assert_eq!(bulk, one_by_one);
            assert_eq!(bulk.len(), n + 1);
            assert_eq!(bulk.get("k0").unwrap(), "b0");
            assert_eq!(bulk.get("k1").unwrap(), "a1");
            assert_eq!(bulk.iter().nth(1).unwrap().0, "z");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn child_inherits_deadline_and_persistent_only() {
        let mut cx = Context::new("front", "get");
        cx.set_timeout(Duration::from_millis(500));
        cx.metainfo.persistent.insert("tenant", "t1");
        cx.metainfo.upstream.insert("hop", "only");
        let child = cx.child("back", "load");
        assert_eq!(child.deadline, cx.deadline);
        assert_eq!(child.caller.as_str(), "front");
        assert_eq!(child.metainfo.persistent.get("tenant").unwrap(), "t1");
        assert!(child.metainfo.transient.is_empty() && child.metainfo.upstream.is_empty());
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(child.is_expired());
        assert_eq!(child.remaining(), Some(Duration::ZERO));
    }
}
