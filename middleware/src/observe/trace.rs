//! W3C Trace Context for Weft's spans: the ids, the `traceparent` header,
//! the task-local "current trace", and the hook that hands propagation to
//! OpenTelemetry instead.
//!
//! Without a [`Propagator`], Weft keeps the ids itself: a server continues
//! the trace its caller's `traceparent` names (or starts one), records
//! `trace_id`, `span_id` and `parent_span_id` on its span, and makes that
//! context current for the handler's future; a client call made inside it
//! becomes a child span and sends its own `traceparent` on. The headers
//! travel where transient metainfo does: `RPC_TRANSIT_traceparent` in
//! TTHeader, plain `traceparent` metadata in gRPC (what every W3C-aware
//! gRPC peer reads). They go from this layer to the codec, and from the
//! codec to the server's layer, in the context's typed slots
//! ([`Context::trace`], [`Context::upstream_trace`]) rather than as
//! strings in metainfo: no string is made or parsed twice on the way. A
//! `traceparent` set by hand in transient metainfo, or one received that
//! is not version 00, still travels as a string.

use std::{cell::Cell, fmt};

use faststr::FastStr;
use tracing::Span;
use weft_core::{Context, KvList, TraceParent, TraceSlot};
pub use weft_core::{TRACEPARENT, TRACESTATE};

/// Longest `tracestate` passed on; the W3C spec lets a hop drop longer ones.
const MAX_TRACESTATE: usize = 512;

tokio::task_local! {
    static CURRENT: TraceContext;
}

thread_local! {
    /// The context of the call whose inner `call()` runs, or whose future
    /// is polled, on this thread now; set only for that synchronous span
    /// (by [`PollScope`]), so it is always the innermost.
    static IN_CALL: std::cell::RefCell<Option<TraceContext>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes a call's trace context current while its future is polled: moved
/// into [`IN_CALL`] as the poll starts and back out as it ends, even when
/// the poll panics (the guard's drop), so a context never outlives its
/// poll on the thread.
pub(crate) struct PollScope<'a> {
    slot: &'a mut Option<TraceContext>,
    prev: Option<TraceContext>,
    entered: bool,
}

impl<'a> PollScope<'a> {
    /// Enter `slot`'s context, if it holds one; a future whose layer keeps
    /// no context of its own (`None`) leaves the current one alone.
    pub(crate) fn enter(slot: &'a mut Option<TraceContext>) -> PollScope<'a> {
        let entered = slot.is_some();
        let prev = if entered {
            IN_CALL.with(|c| c.replace(slot.take()))
        } else {
            None
        };
        PollScope {
            slot,
            prev,
            entered,
        }
    }
}

impl Drop for PollScope<'_> {
    fn drop(&mut self) {
        if self.entered {
            let prev = self.prev.take();
            *self.slot = IN_CALL.with(|c| c.replace(prev));
        }
    }
}

/// A position in a trace: the trace, the span, its flags and vendor state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (never zero).
    pub trace_id: u128,
    /// The span id (never zero).
    pub span_id: u64,
    /// The trace flags; bit 0 is "sampled".
    pub flags: u8,
    /// The `tracestate` received, passed on unchanged.
    pub state: FastStr,
}

impl TraceContext {
    /// A new trace, sampled.
    pub fn root() -> TraceContext {
        TraceContext {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            flags: 1,
            state: FastStr::empty(),
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: new_span_id(),
            flags: self.flags,
            state: self.state.clone(),
        }
    }

    /// The trace context current in this task: the server call or client
    /// call being served or made (while its future is polled, and while
    /// the observe layer calls the service below it); `None` outside any.
    pub fn current() -> Option<TraceContext> {
        IN_CALL
            .with(|c| c.borrow().clone())
            .or_else(|| CURRENT.try_with(TraceContext::clone).ok())
    }

    /// Run `fut` with `self` as the current trace context: for work that a
    /// handler spawns onto another task and whose calls belong to its trace.
    pub fn scope<F: std::future::Future>(
        self,
        fut: F,
    ) -> tokio::task::futures::TaskLocalFuture<TraceContext, F> {
        CURRENT.scope(self, fut)
    }

    /// Parse a `traceparent` value: `00-<32 hex>-<16 hex>-<2 hex>`, lower
    /// case, ids not all zero; a later version may append fields after a
    /// `-`. `None` for anything else (the call then starts a new trace).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let b = traceparent.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = hex64(&b[0..2])? as u8;
        // Version 00 is exactly 55 bytes; ff is forbidden.
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let trace_id = (u128::from(hex64(&b[3..19])?) << 64) | u128::from(hex64(&b[19..35])?);
        let span_id = hex64(&b[36..52])?;
        let flags = hex64(&b[53..55])? as u8;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        let state = match tracestate {
            Some(s) if s.len() <= MAX_TRACESTATE => FastStr::new(s),
            _ => FastStr::empty(),
        };
        Some(TraceContext {
            trace_id,
            span_id,
            flags,
            state,
        })
    }

    /// The `traceparent` value naming this span as the parent.
    pub fn traceparent(&self) -> FastStr {
        self.parent().to_faststr()
    }

    /// This span as the parent of the next, in typed form.
    pub fn parent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: self.flags,
        }
    }

    /// The context a typed `traceparent` names, with no `tracestate`.
    pub fn from_parent(p: TraceParent) -> TraceContext {
        TraceContext {
            trace_id: p.trace_id,
            span_id: p.span_id,
            flags: p.flags,
            state: FastStr::empty(),
        }
    }

    /// The trace context a served call's caller sent: the codec's typed
    /// slot, or else the `traceparent` in upstream metainfo (one not in
    /// version 00, one with a `tracestate`, or one put there by hand).
    pub fn received(cx: &Context) -> Option<TraceContext> {
        match cx.trace.incoming() {
            Some(p) => Some(TraceContext::from_parent(p)),
            None => TraceContext::extract(&cx.metainfo.upstream),
        }
    }

    /// The trace context a client call will send: the typed slot, or else
    /// a `traceparent` in its transient metainfo.
    pub fn sent(cx: &Context) -> Option<TraceContext> {
        match cx.trace.outgoing() {
            Some(p) => Some(TraceContext::from_parent(p)),
            None => TraceContext::extract(&cx.metainfo.transient),
        }
    }

    /// Make this context the parent of the call `cx` makes, replacing any
    /// `traceparent` and `tracestate` set by hand in its transient
    /// metainfo: in the typed slot, which the codec writes as the
    /// `traceparent` string would be, or, with a `tracestate` to pass on
    /// (rare), as both strings in transient metainfo.
    pub fn inject_into(&self, cx: &mut Context) {
        if !self.state.is_empty() {
            cx.trace = TraceSlot::default();
            self.inject(&mut cx.metainfo.transient);
            return;
        }
        let transient = &mut cx.metainfo.transient;
        if !transient.is_empty() {
            transient.remove(TRACEPARENT);
            transient.remove(TRACESTATE);
        }
        cx.trace = TraceSlot::to_send(self.parent());
    }

    /// Read the trace context a caller sent in `metainfo` (upstream values
    /// on a server).
    pub fn extract(metainfo: &KvList) -> Option<TraceContext> {
        let parent = metainfo.get(TRACEPARENT)?;
        TraceContext::parse(parent, metainfo.get(TRACESTATE).map(|s| s.as_str()))
    }

    /// Write this context as the parent of the next hop into `metainfo`
    /// (a client call's transient values).
    pub fn inject(&self, metainfo: &mut KvList) {
        metainfo.insert(TRACEPARENT, self.traceparent());
        if self.state.is_empty() {
            metainfo.remove(TRACESTATE);
        } else {
            metainfo.insert(TRACESTATE, self.state.clone());
        }
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// A trace id as 32 lower-case hex digits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TraceId(pub(crate) u128);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A span id as 16 lower-case hex digits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpanId(pub(crate) u64);

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Lower-case hex digit values; 0xff for every other byte.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Up to 16 lower-case hex digits (a table lookup each: this runs for
/// every call a server serves).
fn hex64(b: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    let mut bad = 0u8;
    for &c in b {
        let d = HEX[c as usize];
        bad |= d;
        v = (v << 4) | u64::from(d & 0xf);
    }
    // Any invalid digit set the high bits.
    (bad & 0xf0 == 0).then_some(v)
}

thread_local! {
    /// xorshift64* state, seeded per thread from the OS-backed generator:
    /// ids need to be unique, not unpredictable, and this costs no lock.
    static RNG: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

fn next_u64() -> u64 {
    RNG.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

fn new_span_id() -> u64 {
    loop {
        let v = next_u64();
        if v != 0 {
            return v;
        }
    }
}

fn new_trace_id() -> u128 {
    (u128::from(next_u64()) << 64) | u128::from(new_span_id())
}

/// Hands trace propagation to another tracing system, such as
/// OpenTelemetry through `tracing-opentelemetry`, in place of Weft's own
/// W3C ids. The carrier is the call's metainfo, which Weft puts on the wire
/// for Thrift (TTHeader) and gRPC alike.
///
/// With `tracing-opentelemetry` and `opentelemetry_sdk`'s
/// `TraceContextPropagator`, an implementation is a few lines:
///
/// ```text
/// struct Otel(TraceContextPropagator);
/// impl Propagator for Otel {
///     fn inject(&self, span: &Span, carrier: &mut KvList) {
///         self.0.inject_context(&span.context(), &mut KvInjector(carrier));
///     }
///     fn extract(&self, carrier: &KvList, span: &Span) {
///         span.set_parent(self.0.extract(&KvExtractor(carrier)));
///     }
/// }
/// ```
///
/// where `KvInjector` and `KvExtractor` adapt [`KvList`] to
/// OpenTelemetry's `Injector` (`insert`) and `Extractor` (`get`, `keys`).
pub trait Propagator: Send + Sync + 'static {
    /// On the client: write the context of `span`, the call's span, into
    /// `carrier`, the call's transient metainfo.
    fn inject(&self, span: &Span, carrier: &mut KvList);

    /// On the server: make `span`, the call's span, continue the trace
    /// that `carrier`, the upstream metainfo, carries.
    fn extract(&self, carrier: &KvList, span: &Span);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let tc = TraceContext::root();
        let s = tc.traceparent();
        assert_eq!(s.len(), 55);
        assert_eq!(TraceContext::parse(&s, None).unwrap(), tc);
        let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = TraceContext::parse(w3c, Some("rojo=00f067aa0ba902b7")).unwrap();
        assert_eq!(p.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(p.span_id, 0x00f067aa0ba902b7);
        assert_eq!(p.flags, 1);
        assert_eq!(p.state, "rojo=00f067aa0ba902b7");
        assert_eq!(p.to_string(), w3c);
        assert_eq!(p.traceparent(), w3c);
        // A later version with an extra field is read; version 00 is exact.
        assert!(TraceContext::parse(&format!("cc{}-what", &w3c[2..]), None).is_some());
        for bad in [
            "",
            &w3c[..54],
            &format!("{w3c}0"),
            &format!("{w3c}-x"),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad:?}");
        }
        let long = "k=".to_string() + &"v".repeat(MAX_TRACESTATE);
        assert!(TraceContext::parse(w3c, Some(&long))
            .unwrap()
            .state
            .is_empty());
    }

    #[test]
    fn children_keep_the_trace_and_get_new_spans() {
        let root = TraceContext::root();
        let a = root.child();
        let b = root.child();
        assert_eq!((a.trace_id, b.trace_id), (root.trace_id, root.trace_id));
        assert!(a.span_id != b.span_id && a.span_id != root.span_id);
        let mut kv = KvList::default();
        a.inject(&mut kv);
        assert_eq!(TraceContext::extract(&kv).unwrap(), a);
    }

    #[test]
    fn the_typed_slot_carries_what_the_strings_did() {
        let a = TraceContext::root().child();
        let mut cx = Context::default();
        cx.metainfo.transient.insert(TRACEPARENT, "00-by-hand");
        cx.metainfo.transient.insert("hop", "1");
        cx.metainfo.transient.insert(TRACESTATE, "old");
        a.inject_into(&mut cx);
        // The hand-set strings give way to the slot; other values stay.
        assert_eq!(cx.metainfo.transient.len(), 1);
        assert_eq!(TraceContext::sent(&cx).unwrap(), a);
        // With a tracestate, both go as strings, as they always did.
        let mut b = a.child();
        b.state = "rojo=1".into();
        b.inject_into(&mut cx);
        assert!(cx.trace.is_empty());
        assert_eq!(cx.metainfo.transient.get(TRACESTATE).unwrap(), "rojo=1");
        assert_eq!(TraceContext::sent(&cx).unwrap(), b);
        // What a server's codec read arrives as it was sent.
        let mut srv = Context::default();
        assert!(TraceContext::received(&srv).is_none());
        srv.trace = TraceSlot::received(a.parent());
        assert_eq!(TraceContext::received(&srv).unwrap(), a);
        // And from upstream metainfo, where a later version arrives.
        srv.upstream_trace_into_metainfo();
        assert!(srv.trace.is_empty());
        assert_eq!(TraceContext::received(&srv).unwrap(), a);
    }
}
