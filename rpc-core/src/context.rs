//! The request context: who calls whom, the deadline, metainfo, and the
//! W3C trace context in typed form.

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
        let mut entries = entries.into_iter();
        if self.0.len() + entries.size_hint().0 <= LINEAR_SCAN_MAX {
            // Few entries: scanning beats hashing, and allocates nothing.
            // The hint is only a lower bound (a filtered iterator says 0):
            // past the bound the rest go through the index, or a header of
            // many distinct keys would cost a scan per key.
            loop {
                let Some((k, v)) = entries.next() else { return };
                self.insert(k, v);
                if self.0.len() > LINEAR_SCAN_MAX {
                    break;
                }
            }
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
    /// The W3C trace context in typed form, so that no string is made
    /// for it on the way between an observing layer and the codec. On a
    /// client, the one to send ([`TraceSlot::outgoing`]): the codecs write
    /// it as `traceparent` where transient metainfo goes (TTHeader
    /// `RPC_TRANSIT_traceparent`, after the transient values; gRPC plain
    /// metadata), the bytes the string would be. On a server, the one the
    /// caller sent ([`TraceSlot::incoming`]): a version-00 `traceparent`
    /// that came without a `tracestate` arrives here *instead of* in
    /// [`Metainfo::upstream`] (any other, and a `tracestate`, arrive there
    /// as before); [`Context::upstream_trace_into_metainfo`] puts it back
    /// for code that reads it there. Like transient and upstream metainfo,
    /// [`Context::child`] does not carry it, and an incoming one is never
    /// sent.
    pub trace: TraceSlot,
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

    /// Put a received trace context back into upstream metainfo as the
    /// `traceparent` string the caller sent (byte for byte: only a
    /// canonical version-00 value is ever moved out of it), for code that
    /// reads the trace there: a tracing system's own propagator, a handler
    /// in another language. Costs the string.
    pub fn upstream_trace_into_metainfo(&mut self) {
        if let Some(p) = self.trace.incoming() {
            self.trace = TraceSlot::default();
            self.metainfo.upstream.insert(TRACEPARENT, p.to_faststr());
        }
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

// ===== trace context =====

/// The W3C header that carries trace id, parent span id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header that carries vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// A W3C `traceparent` in typed form: trace id, parent span id, flags.
/// `Copy` and allocation-free, so a call's trace context can travel in its
/// [`Context`] from an observing layer to the codec without a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id (never zero in a parsed value).
    pub trace_id: u128,
    /// The id of the span that is the parent of the next one (never zero
    /// in a parsed value).
    pub span_id: u64,
    /// The trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// The length of a version-00 `traceparent`.
    pub const LEN: usize = 55;

    /// Parse a version-00 `traceparent` exactly as
    /// [`TraceParent::to_bytes`] writes it: `00-<32 hex>-<16 hex>-<2 hex>`,
    /// lower case, ids not all zero. `None` for anything else, a later
    /// version included (so that what is parsed can be written back byte
    /// for byte; the codecs leave other values as strings in metainfo).
    pub fn parse(b: &[u8]) -> Option<TraceParent> {
        let b: &[u8; Self::LEN] = b.try_into().ok()?;
        // Decode the digits without checking them, then write the value
        // back and compare: the writing makes only canonical text, so the
        // two agree exactly when `b` was canonical (dashes, version and
        // lower-case digits included). Branch-free, eight digits at a time:
        // this runs for every call a server serves.
        let word = |at: usize| unhex8(b[at..at + 8].try_into().unwrap_or_default());
        let trace_id = (u128::from(word(3)) << 96)
            | (u128::from(word(11)) << 64)
            | (u128::from(word(19)) << 32)
            | u128::from(word(27));
        let span_id = (u64::from(word(36)) << 32) | u64::from(word(44));
        let flags = unhex8([b'0', b'0', b'0', b'0', b'0', b'0', b[53], b[54]]) as u8;
        let p = TraceParent {
            trace_id,
            span_id,
            flags,
        };
        (trace_id != 0 && span_id != 0 && p.to_bytes() == *b).then_some(p)
    }

    /// The version-00 `traceparent` value: 55 bytes of lower-case hex and
    /// dashes, on the stack.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..3].copy_from_slice(b"00-");
        b[3..11].copy_from_slice(&hex8((self.trace_id >> 96) as u32));
        b[11..19].copy_from_slice(&hex8((self.trace_id >> 64) as u32));
        b[19..27].copy_from_slice(&hex8((self.trace_id >> 32) as u32));
        b[27..35].copy_from_slice(&hex8(self.trace_id as u32));
        b[35] = b'-';
        b[36..44].copy_from_slice(&hex8((self.span_id >> 32) as u32));
        b[44..52].copy_from_slice(&hex8(self.span_id as u32));
        b[52] = b'-';
        b[53..55].copy_from_slice(&hex8(u32::from(self.flags))[6..]);
        b
    }

    /// [`TraceParent::to_bytes`] as a string (one allocation: 55 bytes do
    /// not fit inline).
    pub fn to_faststr(&self) -> FastStr {
        // Hex digits and dashes only: always UTF-8.
        FastStr::new(std::str::from_utf8(&self.to_bytes()).unwrap_or_default())
    }
}

/// Where a [`Context`] holds its W3C trace context: empty, one to send
/// to the next hop, or one received from the caller. 32 bytes and
/// `Copy`: every future that holds a call's context moves it, so it is
/// kept as small as the ids allow (no `u128`, whose alignment would pad
/// the context, and no `tracestate`, which travels as metainfo).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceSlot {
    trace_hi: u64,
    trace_lo: u64,
    span_id: u64,
    flags: u8,
    dir: Dir,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Dir {
    #[default]
    Empty,
    Outgoing,
    Incoming,
}

impl TraceSlot {
    fn with(p: TraceParent, dir: Dir) -> TraceSlot {
        TraceSlot {
            trace_hi: (p.trace_id >> 64) as u64,
            trace_lo: p.trace_id as u64,
            span_id: p.span_id,
            flags: p.flags,
            dir,
        }
    }

    fn get(&self, dir: Dir) -> Option<TraceParent> {
        (self.dir == dir).then_some(TraceParent {
            trace_id: (u128::from(self.trace_hi) << 64) | u128::from(self.trace_lo),
            span_id: self.span_id,
            flags: self.flags,
        })
    }

    /// A slot holding `p` to send to the next hop (a client call's).
    pub fn to_send(p: TraceParent) -> TraceSlot {
        TraceSlot::with(p, Dir::Outgoing)
    }

    /// A slot holding `p` as received from the caller (a served call's).
    pub fn received(p: TraceParent) -> TraceSlot {
        TraceSlot::with(p, Dir::Incoming)
    }

    /// The trace context to send, if the slot holds one.
    pub fn outgoing(&self) -> Option<TraceParent> {
        self.get(Dir::Outgoing)
    }

    /// The trace context received, if the slot holds one.
    pub fn incoming(&self) -> Option<TraceParent> {
        self.get(Dir::Incoming)
    }

    /// True when the slot holds nothing.
    pub fn is_empty(&self) -> bool {
        self.dir == Dir::Empty
    }
}

/// Every byte's low bits set.
const ONES: u64 = 0x0101_0101_0101_0101;

/// `v` as 8 lower-case hex digits, most significant first, computed in
/// one register: each nibble spread to a byte, then made a digit.
fn hex8(v: u32) -> [u8; 8] {
    let x = u64::from(v);
    let x = ((x & 0xffff_0000) << 16) | (x & 0xffff);
    let x = ((x & 0x0000_ff00_0000_ff00) << 8) | (x & 0x0000_00ff_0000_00ff);
    let x = ((x & 0x00f0_00f0_00f0_00f0) << 4) | (x & 0x000f_000f_000f_000f);
    // A nibble of 10 or more carries into bit 4 when 6 is added (no byte
    // overflows: at most 21): those get `'a' - 10` rather than `'0'`.
    let letters = ((x + 6 * ONES) >> 4) & ONES;
    (x + 0x30 * ONES + letters * (b'a' - b'0' - 10) as u64).to_be_bytes()
}

/// The value of 8 hex digits, most significant first, if they are lower
/// case hex; garbage otherwise (no byte can overflow into the next), which
/// the caller catches by writing the value back with [`hex8`].
fn unhex8(b: [u8; 8]) -> u32 {
    let x = u64::from_be_bytes(b);
    // `0`-`9` are 0x30-0x39 and `a`-`f` 0x61-0x66: bit 6 marks a letter,
    // worth 9 more than its low nibble.
    let v = (x & (0x0f * ONES)) + ((x >> 6) & ONES) * 9;
    let v = (v | (v >> 4)) & 0x00ff_00ff_00ff_00ff;
    let v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    ((v | (v >> 16)) & 0xffff_ffff) as u32
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
            // Also through an iterator whose size hint says nothing, as
            // the codecs' filtered header walks do.
            let mut hinted_zero = bulk.clone();
            hinted_zero.insert_all(entries.clone().into_iter().filter(|_| true));
            bulk.insert_all(entries);
            assert_eq!(bulk, one_by_one);
            assert_eq!(hinted_zero, one_by_one);
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
        cx.trace = TraceSlot::received(TraceParent {
            trace_id: 1,
            span_id: 2,
            flags: 1,
        });
        let child = cx.child("back", "load");
        assert_eq!(child.deadline, cx.deadline);
        assert_eq!(child.caller.as_str(), "front");
        assert_eq!(child.metainfo.persistent.get("tenant").unwrap(), "t1");
        assert!(child.metainfo.transient.is_empty() && child.metainfo.upstream.is_empty());
        assert!(child.trace.is_empty());
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(child.is_expired());
        assert_eq!(child.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn traceparent_parses_only_what_it_writes_back_byte_for_byte() {
        let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = TraceParent::parse(w3c.as_bytes()).unwrap();
        assert_eq!(p.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(p.span_id, 0x00f067aa0ba902b7);
        assert_eq!(p.flags, 1);
        assert_eq!(&p.to_bytes()[..], w3c.as_bytes());
        assert_eq!(p.to_faststr(), w3c);
        let max = TraceParent {
            trace_id: u128::MAX,
            span_id: u64::MAX,
            flags: 0xff,
        };
        assert_eq!(TraceParent::parse(&max.to_bytes()), Some(max));
        for bad in [
            "",
            &w3c[..54],
            &format!("{w3c}0"),
            &format!("{w3c}-x"),
            // A later version is valid W3C, but not written back the same.
            &format!("cc{}", &w3c[2..]),
            &format!("01{}", &w3c[2..]),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u{e9}",
        ] {
            assert!(TraceParent::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    /// The W3C rules for a version-00 value, one byte at a time.
    fn canonical(b: &[u8]) -> bool {
        let hex = |r: std::ops::Range<usize>| {
            b[r.clone()]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
                && b[r].iter().any(|&c| c != b'0')
        };
        b.len() == 55
            && &b[..3] == b"00-"
            && b[35] == b'-'
            && b[52] == b'-'
            && hex(3..35)
            && hex(36..52)
            && b[53..55]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    }

    #[test]
    fn traceparent_parse_agrees_with_the_rules_on_every_one_byte_change() {
        let w3c = *b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for at in 0..w3c.len() {
            for c in 0..=255u8 {
                let mut b = w3c;
                b[at] = c;
                let p = TraceParent::parse(&b);
                assert_eq!(p.is_some(), canonical(&b), "{at} {c:#x}");
                if let Some(p) = p {
                    assert_eq!(p.to_bytes(), b);
                }
            }
        }
        // Digits as `format!` writes them, across the whole range.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = TraceParent {
                trace_id: (u128::from(x) << 64) | u128::from(x.rotate_left(17)),
                span_id: x.rotate_left(5) | 1,
                flags: x as u8,
            };
            let text = format!("00-{:032x}-{:016x}-{:02x}", p.trace_id, p.span_id, p.flags);
            assert_eq!(&p.to_bytes()[..], text.as_bytes());
            assert_eq!(TraceParent::parse(text.as_bytes()), Some(p));
        }
    }

    #[test]
    fn a_received_trace_goes_back_into_upstream_metainfo_as_sent() {
        let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let p = TraceParent::parse(w3c.as_bytes()).unwrap();
        let mut cx = Context::default();
        // Nothing received, or one to send: nothing to put back.
        for slot in [TraceSlot::default(), TraceSlot::to_send(p)] {
            cx.trace = slot;
            cx.upstream_trace_into_metainfo();
            assert!(cx.metainfo.upstream.is_empty());
            assert_eq!(cx.trace, slot);
        }
        cx.trace = TraceSlot::received(p);
        assert_eq!(cx.trace.incoming(), Some(p));
        assert_eq!(cx.trace.outgoing(), None);
        cx.upstream_trace_into_metainfo();
        assert!(cx.trace.is_empty());
        assert_eq!(cx.metainfo.upstream.get(TRACEPARENT).unwrap(), w3c);
        let max = TraceParent {
            trace_id: u128::MAX,
            span_id: u64::MAX,
            flags: 0xff,
        };
        assert_eq!(TraceSlot::to_send(max).outgoing(), Some(max));
        // The slot must not make every context, and every future holding
        // one, larger than the ids need.
        assert_eq!(std::mem::size_of::<TraceSlot>(), 32);
        assert_eq!(std::mem::align_of::<Context>(), 8);
    }
}
