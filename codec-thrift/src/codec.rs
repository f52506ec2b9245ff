//! The Thrift server and client codecs that plug into `weft-rpc-core`'s
//! connections, and the [`EntryMessage`] trait typed services implement.

use std::{marker::PhantomData, time::Duration};

use bytes::{Bytes, BytesMut};
use faststr::FastStr;
use pilota::thrift::{
    binary::TBinaryProtocol, ApplicationException, Message, TInputProtocol, TLengthProtocol,
    TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, ThriftException,
};
use weft_core::{
    ClientCodec, Context, Inbound, KvList, Limits, Request, Response, ServerCodec, Status,
    TraceParent, TraceSlot, TRACEPARENT, TRACESTATE,
};

use crate::{
    biz::{BizStatus, BIZ_EXTRA_KEY, BIZ_MESSAGE_KEY, BIZ_STATUS_KEY},
    frame::{self, int_key, prefix, Frame, Header, Transport},
    protocol::{BinaryInput, CompactInput, CompactOutput, DecodeLimits, Protocol, Walker},
    status::{status_from_exception, to_application_exception},
};

/// A message at the top of a Thrift call: the arguments of a request or the
/// result of a response, chosen by method name. Generated code implements
/// it as an enum with a variant per method.
pub trait EntryMessage: Sized + Send + Sync + 'static {
    /// Encode the struct (not the envelope).
    fn encode<P: TOutputProtocol>(&self, p: &mut P) -> Result<(), ThriftException>;
    /// Decode the struct for `method` of `service` (`service` is empty when
    /// the peer named none). An unknown method is an `ApplicationException`
    /// of kind `UNKNOWN_METHOD`.
    fn decode<P: TInputProtocol<Buf = Bytes>>(
        p: &mut P,
        service: &str,
        method: &str,
    ) -> Result<Self, ThriftException>;
    /// The encoded size in `p`'s protocol, to size buffers once.
    fn size<P: TLengthProtocol>(&self, p: &mut P) -> usize;
    /// The result of the one-way method `method`, which no server sends.
    fn oneway_result(service: &str, method: &str) -> Option<Self> {
        let _ = (service, method);
        None
    }
    /// Whether this message serves `method` of `service`: how
    /// [`Routed`](crate::route::Routed) picks a service on a shared port.
    fn accepts(service: &str, method: &str) -> bool {
        let _ = (service, method);
        true
    }
}

/// The TTHeader string key in which Kitex and Volo name the IDL service.
pub const IDL_SERVICE_NAME: &str = "isn";

/// The TTHeader string key by which a Kitex server draining a connection
/// tells the client to send no more on it (Kitex's
/// `HeaderConnectionReadyToReset`); its value is `"1"`.
pub const CONNECTION_RESET_KEY: &str = "crrst";

/// The separator `TMultiplexedProtocol` puts between service and method.
pub const MULTIPLEX_SEPARATOR: char = ':';
const MULTIPLEX_PREFIX_SEPARATOR: &str = ":";

/// Run `$body` with `$p` bound to an input protocol of `$protocol` over
/// `$payload`; monomorphised once per protocol, no dynamic dispatch.
macro_rules! with_input {
    ($protocol:expr, $payload:expr, $limits:expr, |$p:ident| $body:expr) => {
        match $protocol {
            Protocol::Binary => {
                let mut $p = BinaryInput::new($payload, $limits);
                $body
            }
            Protocol::Compact => {
                let mut $p = CompactInput::new($payload, $limits);
                $body
            }
        }
    };
}

/// Run `$body` with `$p` bound to an output protocol of `$protocol` on `$dst`.
macro_rules! with_output {
    ($protocol:expr, $dst:expr, |$p:ident| $body:expr) => {
        match $protocol {
            Protocol::Binary => {
                let mut $p = TBinaryProtocol::new($dst, false);
                $body
            }
            Protocol::Compact => {
                let mut $p = CompactOutput::new($dst);
                $body
            }
        }
    };
}

/// Write an envelope then a body.
fn write_message<P: TOutputProtocol>(
    p: &mut P,
    id: &TMessageIdentifier,
    body: impl FnOnce(&mut P) -> Result<(), ThriftException>,
) -> Result<(), ThriftException> {
    p.write_message_begin(id)?;
    body(p)?;
    p.write_message_end()
}

thread_local! {
    /// Frames are encoded into a per-thread arena and split off it, so one
    /// allocation serves many frames; a buffer per frame would cost two (the
    /// buffer, and the shared header `freeze` adds when it is not full).
    static ARENA: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// Size of a fresh arena chunk: many small frames per allocation.
const ARENA_CHUNK: usize = 64 * 1024;

/// Encode one frame with `f` into the thread's arena and split it off.
fn encode_frame(
    hint: usize,
    f: impl FnOnce(&mut BytesMut) -> Result<(), Status>,
) -> Result<Bytes, Status> {
    ARENA.with(|arena| {
        let mut arena = arena.borrow_mut();
        if arena.capacity() < hint {
            *arena = BytesMut::with_capacity(hint.max(ARENA_CHUNK));
        }
        let mut rewind = Rewind::new(&mut arena);
        f(rewind.buf)?;
        rewind.keep();
        Ok(rewind.buf.split().freeze())
    })
}

/// Truncates a buffer back to where a frame started when encoding it fails
/// or panics, so the partial frame is not sent ahead of the next one.
struct Rewind<'a> {
    buf: &'a mut BytesMut,
    start: usize,
}

impl<'a> Rewind<'a> {
    fn new(buf: &'a mut BytesMut) -> Self {
        let start = buf.len();
        Rewind { buf, start }
    }

    /// The frame is whole: keep it.
    fn keep(&mut self) {
        self.start = usize::MAX;
    }
}

impl Drop for Rewind<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.start);
    }
}

fn size_hint<M: EntryMessage>(m: &M) -> usize {
    m.size(&mut TBinaryProtocol::new((), false))
}

/// A header value as text, when it is.
fn text(value: Option<&[u8]>) -> Option<&str> {
    value.and_then(|v| std::str::from_utf8(v).ok())
}

fn status_of(e: ThriftException) -> Status {
    status_from_exception(&e)
}

/// Put string headers into the scopes of `metainfo` they belong to, in
/// time linear in their number (a header may carry thousands).
fn absorb_strings(header: &Header, transport: Transport, on_server: bool, cx: &mut Context) {
    let scoped = |pre: &'static str| header.scoped(pre);
    if on_server {
        cx.metainfo
            .persistent
            .insert_all(scoped(prefix::PERSISTENT));
        // The trace context goes to its typed slot, not the list (which
        // would grow for it on every traced call), read from the frame's
        // bytes without a string. The last of a repeated key counts, as in
        // the list.
        let (mut parent, mut state) = (None, None);
        cx.metainfo
            .upstream
            .insert_all(header.raw_strings().filter_map(|(k, v)| {
                let k = k.strip_prefix(prefix::TRANSIENT.as_bytes())?;
                let slot = if k == TRACEPARENT.as_bytes() {
                    &mut parent
                } else if k == TRACESTATE.as_bytes() {
                    &mut state
                } else {
                    return Some((header.shared(k)?, header.shared(v)?));
                };
                *slot = Some(v);
                None
            }));
        absorb_trace(header, parent, state, cx);
    } else {
        cx.metainfo.backward.insert_all(scoped(prefix::BACKWARD));
        if transport == Transport::TTHeader {
            // Kitex's servers send backward values under their bare keys
            // (Volo's, and Weft's, under `RPC_BACKWARD_`).
            cx.metainfo.backward.insert_all(
                header
                    .strings()
                    .filter(|(k, _)| is_bare_backward_key(k))
                    .map(|(k, v)| (header.fast(k), header.fast(v))),
            );
        }
    }
}

/// Put a received `traceparent` and `tracestate` into the context: the
/// typed slot when the parent is a version-00 value (which
/// [`Context::upstream_trace_into_metainfo`] gives back byte for byte)
/// and came alone, upstream metainfo as strings otherwise, as every value
/// came before.
fn absorb_trace(header: &Header, parent: Option<&[u8]>, state: Option<&[u8]>, cx: &mut Context) {
    if let (Some(p), None) = (parent, state) {
        if let Some(p) = TraceParent::parse(p) {
            cx.trace = TraceSlot::received(p);
            return;
        }
    }
    for (key, value) in [(TRACEPARENT, parent), (TRACESTATE, state)] {
        if let Some(v) = value.and_then(|v| header.shared(v)) {
            cx.metainfo.upstream.insert(key, v);
        }
    }
}

/// Whether a TTHeader response's string key is a backward value as Kitex
/// writes it: not scoped by a metainfo prefix, and none of the keys the
/// frameworks use themselves.
fn is_bare_backward_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with("RPC_")
        && ![
            CONNECTION_RESET_KEY,
            IDL_SERVICE_NAME,
            BIZ_STATUS_KEY,
            BIZ_MESSAGE_KEY,
            BIZ_EXTRA_KEY,
        ]
        .contains(&key)
}

/// A call's trace context as the transient value `traceparent`, where an
/// observing layer once put the string (last of the transient values):
/// the same bytes, formatted on the stack.
fn write_trace(w: &mut frame::HeaderWriter<'_>, trace: &TraceSlot) {
    if let Some(p) = trace.outgoing() {
        w.text(prefix::TRANSIENT, TRACEPARENT, &p.to_bytes());
    }
}

fn write_strings(w: &mut frame::HeaderWriter<'_>, pre: &str, kv: &KvList) {
    for (k, v) in kv.iter() {
        w.string(pre, k, v);
    }
}

// ===== server =====

/// What the server needs to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    transport: Transport,
    protocol: Protocol,
    seq_id: i32,
    header_seq: i32,
    flags: u16,
    inner_framed: bool,
    name: FastStr,
    max_frame_len: usize,
}

/// Serves Thrift on any transport: detects TTHeader, THeader, framed or
/// buffered, binary or compact, from the connection's first bytes.
pub struct ThriftServerCodec<Req, Resp> {
    detected: Option<(Transport, Protocol)>,
    /// Where the walk of a partly received unframed message stopped.
    walker: Option<Walker>,
    max_frame_len: usize,
    limits: DecodeLimits,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> std::fmt::Debug for ThriftServerCodec<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThriftServerCodec")
            .field("detected", &self.detected)
            .finish()
    }
}

impl<Req, Resp> ThriftServerCodec<Req, Resp> {
    /// A codec for one connection, bounded by `limits`.
    pub fn new(limits: &Limits) -> Self {
        ThriftServerCodec {
            detected: None,
            walker: None,
            max_frame_len: limits.max_frame_len,
            limits: DecodeLimits::from(limits),
            _types: PhantomData,
        }
    }

    fn split(
        &mut self,
        src: &mut BytesMut,
        transport: Transport,
        protocol: Protocol,
    ) -> Result<Option<Frame>, Status> {
        if transport != Transport::Buffered {
            return frame::split_frame(src, transport, protocol, self.max_frame_len, self.limits)
                .map_err(status_of);
        }
        // Resume the walk where the last read left it: a large message in
        // many reads is walked once.
        let (max_frame_len, limits) = (self.max_frame_len, self.limits);
        let walker = self
            .walker
            .get_or_insert_with(|| Walker::message(protocol, max_frame_len, limits));
        match walker.message_len(src).map_err(status_of)? {
            Some(n) => frame::parse_frame(src.split_to(n).freeze(), transport, protocol, limits)
                .map(Some)
                .map_err(status_of),
            None => Ok(None),
        }
    }

    /// The transport and protocol the peer speaks, once known.
    pub fn detected(&self) -> Option<(Transport, Protocol)> {
        self.detected
    }
}

impl<Req: EntryMessage, Resp: EntryMessage> ServerCodec for ThriftServerCodec<Req, Resp> {
    type Req = Req;
    type Resp = Resp;
    type Reply = Reply;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound<Req, Reply>>, Status> {
        let (transport, protocol) = match self.detected {
            Some(d) => d,
            None => match frame::detect(src).map_err(status_of)? {
                Some(d) => {
                    self.detected = Some(d);
                    d
                }
                None => return Ok(None),
            },
        };
        let Frame {
            transport,
            protocol,
            header,
            mut payload,
            inner_framed,
        } = match self.split(src, transport, protocol)? {
            Some(f) => f,
            None => return Ok(None),
        };
        // A header names its own protocol; answer in the one the peer used.
        self.detected = Some((transport, protocol));

        // Kitex and Volo name the IDL service in the "isn" header.
        let isn = header.as_ref().and_then(|h| h.string(IDL_SERVICE_NAME));
        let (id, body) = with_input!(protocol, &mut payload, self.limits, |p| {
            // An unreadable envelope leaves nothing to answer to.
            let id = p.read_message_begin().map_err(status_of)?;
            let (service, method) = match id.name.split_once(MULTIPLEX_SEPARATOR) {
                Some((s, m)) => (s, m),
                None => (isn.unwrap_or(""), id.name.as_str()),
            };
            let body = Req::decode(&mut p, service, method);
            (id, body)
        });

        let (service, method) = match id.name.split_once(MULTIPLEX_SEPARATOR) {
            Some((s, m)) => (FastStr::new(s), FastStr::new(m)),
            None => (
                match (&header, isn) {
                    (Some(h), Some(isn)) => h.fast(isn),
                    _ => FastStr::default(),
                },
                id.name.clone(),
            ),
        };
        let reply = Reply {
            transport,
            protocol,
            seq_id: id.sequence_number,
            header_seq: header.as_ref().map_or(id.sequence_number, |h| h.seq_id),
            flags: header.as_ref().map_or(0, |h| h.flags),
            inner_framed,
            name: method.clone(),
            max_frame_len: self.max_frame_len,
        };
        let oneway = match id.message_type {
            // The IDL decides, as in Apache's processors: Apache's Go client
            // sends one-way methods as CALL and reads no answer, so one
            // would be read as the answer to its next call.
            TMessageType::Call => Resp::oneway_result(&service, &method).is_some(),
            TMessageType::OneWay => true,
            other => {
                return Ok(Some(Inbound::Reject(
                    reply,
                    Status::internal(format!("expected a call, got {other:?}")),
                )))
            }
        };
        let message = match body {
            Ok(m) => m,
            Err(e) => {
                let status = status_of(e);
                if oneway {
                    // No one to tell: report it and let the caller read on.
                    // Not a loop here: a buffer of many bad one-way frames
                    // costs one call each, never a deeper stack.
                    return Ok(Some(Inbound::Discard(status)));
                }
                return Ok(Some(Inbound::Reject(reply, status)));
            }
        };

        let mut cx = Context::new(service, method);
        cx.seq_id = id.sequence_number;
        cx.oneway = oneway;
        let mut timeout = None;
        if let Some(h) = &header {
            // One walk over the int keys for the three read here. The first
            // of a repeated key counts, as a lookup by key would find it.
            let (mut from, mut to, mut rpc) = (None, None, None);
            for (key, value) in h.raw_ints() {
                let slot = match key {
                    int_key::FROM_SERVICE => &mut from,
                    int_key::TO_SERVICE => &mut to,
                    int_key::RPC_TIMEOUT => &mut rpc,
                    _ => continue,
                };
                slot.get_or_insert(value);
            }
            if let Some(from) = text(from) {
                cx.caller = h.fast(from);
            }
            if let Some(to) = text(to) {
                if cx.service.is_empty() {
                    cx.service = h.fast(to);
                }
            }
            timeout = text(rpc).and_then(rpc_timeout);
            absorb_strings(h, transport, true, &mut cx);
        }
        Ok(Some(Inbound::Request {
            req: Request::new(cx, message),
            reply: if oneway { None } else { Some(reply) },
            timeout,
        }))
    }

    fn ordered(&self) -> bool {
        !self.detected.is_some_and(|(t, _)| t.has_header())
    }

    fn encode(
        reply: Reply,
        result: Result<Response<Resp>, Status>,
        closing: bool,
        dst: &mut BytesMut,
    ) -> Result<(), Status> {
        // On error or panic the write buffer is left as it was, so the
        // caller can encode the error in its place.
        let mut rewind = Rewind::new(dst);
        encode_response(&reply, &result, closing, rewind.buf)?;
        rewind.keep();
        Ok(())
    }
}

/// The remaining timeout a TTHeader states, in milliseconds; zero or
/// unreadable means none. Any u64 is accepted: `Duration` holds it, and the
/// transport saturates when it adds it to its clock.
fn rpc_timeout(ms: &str) -> Option<Duration> {
    match ms.parse::<u64>() {
        Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
        _ => None,
    }
}

/// Append one response frame to `dst`; on error `dst` may hold a partial
/// frame, which [`ServerCodec::encode`] truncates. No arena here: the
/// connection's write buffer already batches frames.
fn encode_response<Resp: EntryMessage>(
    reply: &Reply,
    result: &Result<Response<Resp>, Status>,
    closing: bool,
    dst: &mut BytesMut,
) -> Result<(), Status> {
    let hint = match result {
        Ok(r) => size_hint(&r.message),
        Err(s) => s.message().len() + 16,
    };
    dst.reserve(hint + reply.name.len() + 64);
    let backward = result.as_ref().ok().map(|r| &r.cx.metainfo.backward);
    // Kitex answers a business status error with an empty REPLY and the
    // status in headers; only TTHeader has them for Kitex to read.
    let biz = match (reply.transport, result) {
        (Transport::TTHeader, Err(status)) => BizStatus::of(status),
        _ => None,
    };
    let msg_type = if result.is_ok() || biz.is_some() {
        TMessageType::Reply
    } else {
        TMessageType::Exception
    };
    let mark = frame::begin_frame(
        &mut *dst,
        reply.transport,
        reply.protocol,
        reply.header_seq,
        reply.flags,
        reply.inner_framed,
        |w| {
            if let Some(b) = backward {
                write_strings(w, prefix::BACKWARD, b);
                if reply.transport == Transport::TTHeader {
                    // Kitex's clients read backward values under their bare
                    // keys, Volo's under the prefix: write both.
                    for (k, v) in b.iter().filter(|(k, _)| is_bare_backward_key(k)) {
                        w.string("", k, v);
                    }
                }
            }
            if let Some(biz) = biz {
                w.string("", BIZ_STATUS_KEY, &biz.code().to_string());
                w.string("", BIZ_MESSAGE_KEY, biz.message());
                if let Some(extra) = biz.extra_json() {
                    w.string("", BIZ_EXTRA_KEY, &extra);
                }
            }
            if closing {
                // Kitex's client retires a connection whose response carries
                // this, instead of sending more on it.
                w.string("", CONNECTION_RESET_KEY, "1");
            }
            w.ints(&[(int_key::MSG_TYPE, &[msg_type as u8])]);
        },
    );
    let id = TMessageIdentifier::new(reply.name.clone(), msg_type, reply.seq_id);
    let written = match result {
        Ok(r) => with_output!(reply.protocol, &mut *dst, |p| write_message(
            &mut p,
            &id,
            |p| r.message.encode(p)
        )),
        // The result struct with no field set.
        Err(_) if biz.is_some() => with_output!(reply.protocol, &mut *dst, |p| write_message(
            &mut p,
            &id,
            |p| {
                p.write_struct_begin(&TStructIdentifier { name: "result" })?;
                p.write_field_stop()?;
                p.write_struct_end()
            }
        )),
        Err(status) => {
            let e = to_application_exception(status);
            with_output!(reply.protocol, &mut *dst, |p| write_message(
                &mut p,
                &id,
                |p| e.encode(p)
            ))
        }
    };
    written.map_err(|e| Status::internal(format!("encoding the response: {e}")))?;
    frame::finish_frame(&mut *dst, mark, reply.max_frame_len).map_err(status_of)?;
    Ok(())
}

// ===== client =====

/// How a client names the service of its calls on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ServiceName {
    /// Not at all: the server serves one service, or routes by method.
    Unnamed,
    /// `TMultiplexedProtocol`'s `service:` prefix, the same for every call.
    Fixed(FastStr),
    /// Each call's own `Context::service`, so calls of several services
    /// share one connection.
    PerCall,
}

/// Calls a Thrift server over a chosen transport and protocol.
pub struct ThriftClientCodec<Req, Resp> {
    transport: Transport,
    protocol: Protocol,
    service_name: ServiceName,
    max_frame_len: usize,
    limits: DecodeLimits,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> std::fmt::Debug for ThriftClientCodec<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThriftClientCodec")
            .field("transport", &self.transport)
            .field("protocol", &self.protocol)
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl<Req, Resp> ThriftClientCodec<Req, Resp> {
    /// A codec speaking `transport` and `protocol`, bounded by `limits`.
    pub fn new(transport: Transport, protocol: Protocol, limits: &Limits) -> Self {
        ThriftClientCodec {
            transport,
            protocol,
            service_name: ServiceName::Unnamed,
            max_frame_len: limits.max_frame_len,
            limits: DecodeLimits::from(limits),
            _types: PhantomData,
        }
    }

    /// Prefix method names with `service:`, as `TMultiplexedProtocol` does.
    #[must_use]
    pub fn multiplexed(mut self, service: impl Into<FastStr>) -> Self {
        self.service_name = ServiceName::Fixed(service.into());
        self
    }

    /// Name each call's own service (its `Context::service`, which typed
    /// clients set to their IDL service) on the wire: as
    /// `TMultiplexedProtocol`'s `service:` prefix, or, on
    /// [`Transport::TTHeader`], in the `isn` header that Kitex's
    /// multi-service servers read (they know no prefix). With
    /// [`Routed`](crate::route::Routed) messages, one connection then
    /// carries the calls of several services, as Apache's
    /// `TMultiplexedProtocol`s over one transport do; see
    /// [`route::split`](crate::route::split).
    #[must_use]
    pub fn multiplexed_per_call(mut self) -> Self {
        self.service_name = ServiceName::PerCall;
        self
    }

    /// The name of the call in its envelope, and the service to name in
    /// an `isn` header. Short names stay inline: no allocation per call.
    fn wire_names<'a>(&self, cx: &'a Context) -> (FastStr, Option<&'a str>) {
        let prefixed = |service: &str| {
            [service, MULTIPLEX_PREFIX_SEPARATOR, cx.method.as_str()]
                .into_iter()
                .collect::<FastStr>()
        };
        match &self.service_name {
            ServiceName::Unnamed => (cx.method.clone(), None),
            ServiceName::Fixed(s) => (prefixed(s), None),
            ServiceName::PerCall if cx.service.is_empty() => (cx.method.clone(), None),
            ServiceName::PerCall if self.transport == Transport::TTHeader => {
                (cx.method.clone(), Some(cx.service.as_str()))
            }
            ServiceName::PerCall => (prefixed(&cx.service), None),
        }
    }

    fn peek_seq(&self, raw: &Bytes) -> Result<i32, Status> {
        // Header transports carry the sequence id at a fixed offset: no need
        // to parse the header twice.
        let at = self.transport.header_at() + 4;
        if self.transport.has_header() && raw.len() >= at + 4 {
            return Ok(i32::from_be_bytes([
                raw[at],
                raw[at + 1],
                raw[at + 2],
                raw[at + 3],
            ]));
        }
        let frame = frame::parse_frame(raw.clone(), self.transport, self.protocol, self.limits)
            .map_err(status_of)?;
        if let Some(h) = frame.header {
            return Ok(h.seq_id);
        }
        let mut payload = frame.payload;
        with_input!(frame.protocol, &mut payload, self.limits, |p| p
            .read_message_begin())
        .map(|id| id.sequence_number)
        .map_err(status_of)
    }
}

impl<Req: EntryMessage, Resp: EntryMessage> ClientCodec for ThriftClientCodec<Req, Resp> {
    type Req = Req;
    type Resp = Resp;

    fn encode(&self, seq_id: i32, cx: &Context, req: &Req) -> Result<Bytes, Status> {
        let (name, isn) = self.wire_names(cx);
        encode_frame(size_hint(req) + name.len() + 128, |dst| {
            // Every call has a deadline by default: its digits go through a
            // stack buffer, not a `String` per call.
            let mut digits = [0u8; 20];
            let timeout_ms = cx.remaining().map(|d| {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
                decimal(ms, &mut digits)
            });
            let mark = frame::begin_frame(
                &mut *dst,
                self.transport,
                self.protocol,
                seq_id,
                0,
                false,
                |w| {
                    write_strings(w, prefix::PERSISTENT, &cx.metainfo.persistent);
                    write_strings(w, prefix::TRANSIENT, &cx.metainfo.transient);
                    write_trace(w, &cx.trace);
                    if let Some(isn) = isn {
                        w.string("", IDL_SERVICE_NAME, isn);
                    }
                    let mut ints: [(u16, &[u8]); 5] = [
                        (int_key::WITH_HEADER, b"3"),
                        (int_key::FROM_SERVICE, cx.caller.as_bytes()),
                        (int_key::TO_METHOD, cx.method.as_bytes()),
                        (int_key::TO_SERVICE, cx.service.as_bytes()),
                        (int_key::RPC_TIMEOUT, b""),
                    ];
                    let n = match &timeout_ms {
                        Some(t) => {
                            ints[4].1 = t;
                            5
                        }
                        None => 4,
                    };
                    w.ints(&ints[..n]);
                },
            );
            let kind = if cx.oneway {
                TMessageType::OneWay
            } else {
                TMessageType::Call
            };
            let id = TMessageIdentifier::new(name, kind, seq_id);
            with_output!(self.protocol, &mut *dst, |p| write_message(
                &mut p,
                &id,
                |p| req.encode(p)
            ))
            .map_err(|e| Status::invalid_argument(format!("encoding the request: {e}")))?;
            frame::finish_frame(&mut *dst, mark, self.max_frame_len).map_err(status_of)?;
            Ok(())
        })
    }

    fn decode_frame(&self, src: &mut BytesMut) -> Result<Option<(i32, Bytes)>, Status> {
        let n = match frame::frame_len(
            src,
            self.transport,
            self.protocol,
            self.max_frame_len,
            self.limits,
        )
        .map_err(|e| not_thrift(src).unwrap_or_else(|| status_of(e)))?
        {
            Some(n) => n,
            None => return Ok(None),
        };
        let raw = src.split_to(n).freeze();
        let seq = self.peek_seq(&raw)?;
        Ok(Some((seq, raw)))
    }

    fn closing(&self, raw: &Bytes) -> bool {
        let at = self.transport.header_at() + 8;
        if !self.transport.has_header() || raw.len() < at + 2 {
            return false;
        }
        // Look for the key in the header's bytes rather than parse the
        // header twice per response; a value that happens to spell it only
        // costs a reconnect.
        let words = u16::from_be_bytes([raw[at], raw[at + 1]]) as usize;
        let header = &raw[at + 2..raw.len().min(at + 2 + words * 4)];
        header
            .windows(CONNECTION_RESET_KEY.len())
            .any(|w| w == CONNECTION_RESET_KEY.as_bytes())
    }

    fn closed_early_hint(&self) -> Option<&'static str> {
        Some(match self.transport {
            // What a Weft user meets first: TTHeader is the default, and an
            // Apache server reads its frame as garbage and hangs up.
            Transport::TTHeader => {
                "a server that closes at once on a TTHeader frame probably speaks plain \
                 framed or buffered Thrift (an Apache Thrift server?): try Transport::Framed \
                 or Transport::Buffered, and the protocol it serves"
            }
            Transport::THeader | Transport::FramedTHeader => {
                "the server may not speak Apache's header protocol, or speak it over the \
                 other transport (Transport::THeader is header over buffered, \
                 Transport::FramedTHeader header over framed)"
            }
            Transport::Framed | Transport::Buffered => {
                "the server may speak another transport or protocol (framed, buffered, \
                 TTHeader or THeader; binary or compact)"
            }
        })
    }

    fn oneway_response(&self, cx: &Context) -> Result<Resp, Status> {
        Resp::oneway_result(&cx.service, &cx.method)
            .ok_or_else(|| Status::internal(format!("{} is not a one-way method", cx.method)))
    }

    fn decode(&self, cx: &mut Context, raw: Bytes) -> Result<Resp, Status> {
        let frame = frame::parse_frame(raw, self.transport, self.protocol, self.limits)
            .map_err(status_of)?;
        if let Some(h) = &frame.header {
            absorb_strings(h, frame.transport, false, cx);
        }
        let mut payload = frame.payload;
        let method = cx.method.clone();
        let service = cx.service.clone();
        let (id, body) = with_input!(frame.protocol, &mut payload, self.limits, |p| {
            let id = p.read_message_begin().map_err(status_of)?;
            // A reply names the method it answers (with the service before
            // a `:` from a multiplexing server): another method's result
            // decoded as this one's could pass for a value.
            let answered = id
                .name
                .rsplit_once(MULTIPLEX_SEPARATOR)
                .map_or(id.name.as_str(), |(_, m)| m);
            if id.message_type == TMessageType::Reply && answered != method.as_str() {
                return Err(Status::internal(format!(
                    "the server answered method {:?} to a call of {:?} (sequence id {})",
                    id.name.as_str(),
                    method.as_str(),
                    id.sequence_number
                )));
            }
            let body = match id.message_type {
                TMessageType::Reply => Resp::decode(&mut p, &service, &method).map(Ok),
                TMessageType::Exception => ApplicationException::decode(&mut p).map(Err),
                other => Err(pilota::thrift::new_protocol_exception(
                    pilota::thrift::ProtocolExceptionKind::InvalidData,
                    format!("expected a reply, got {other:?}"),
                )),
            };
            (id, body)
        });
        if id.sequence_number != cx.seq_id {
            return Err(Status::internal(format!(
                "reply sequence id {} does not match {}",
                id.sequence_number, cx.seq_id
            )));
        }
        // A Kitex business status error: the headers say it, whatever the
        // (empty) result says.
        if let Some(h) = &frame.header {
            if let Some(biz) = BizStatus::from_header(h)? {
                return Err(biz.into());
            }
        }
        match body.map_err(status_of)? {
            Ok(resp) => Ok(resp),
            Err(app) => Err(status_from_exception(&ThriftException::Application(app))),
        }
    }
}

/// Bytes at the start of an answer that cannot be delimited as Thrift, when
/// they say what the peer speaks instead: an HTTP server's status line, or
/// text. Only looked at once delimiting has failed, so it costs nothing on
/// the way of a good answer.
fn not_thrift(src: &[u8]) -> Option<Status> {
    if src.starts_with(b"HTTP/") {
        let line = src
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or(src);
        let line = String::from_utf8_lossy(&line[..line.len().min(120)]);
        return Some(Status::unavailable(format!(
            "the server answered in HTTP, not Thrift ({line:?}): is this the Thrift port?"
        )));
    }
    let head = &src[..src.len().min(16)];
    if head.len() >= 4 && head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Some(Status::unavailable(format!(
            "the answer is not Thrift: it starts with the text {:?}",
            String::from_utf8_lossy(head)
        )));
    }
    None
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits() {
        let mut b = [0u8; 20];
        for n in [0, 1, 9, 10, 250, 30_000, u64::MAX] {
            assert_eq!(decimal(n, &mut b), n.to_string().as_bytes());
        }
    }
    use bytes::BufMut;
    use pilota::thrift::{ApplicationExceptionKind, TType};
    use weft_core::Code;

    /// A service with one method, `ping(1: i32)`; `Boom` panics when encoded.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum Msg {
        Ping(i32),
        Boom,
    }

    impl EntryMessage for Msg {
        fn encode<P: TOutputProtocol>(&self, p: &mut P) -> Result<(), ThriftException> {
            let v = match self {
                Msg::Ping(v) => *v,
                Msg::Boom => {
                    p.write_struct_begin(&TStructIdentifier { name: "Boom" })?;
                    p.write_field_begin(TType::I32, 1)?;
                    panic!("encode panicked half way");
                }
            };
            p.write_struct_begin(&TStructIdentifier { name: "Ping" })?;
            p.write_field_begin(TType::I32, 1)?;
            p.write_i32(v)?;
            p.write_field_end()?;
            p.write_field_stop()?;
            p.write_struct_end()
        }

        fn decode<P: TInputProtocol<Buf = Bytes>>(
            p: &mut P,
            _service: &str,
            method: &str,
        ) -> Result<Self, ThriftException> {
            if method != "ping" && method != "notify" {
                return Err(ThriftException::Application(ApplicationException::new(
                    ApplicationExceptionKind::UNKNOWN_METHOD,
                    format!("unknown method {method}"),
                )));
            }
            let mut v = 0;
            p.read_struct_begin()?;
            loop {
                let f = p.read_field_begin()?;
                match (f.field_type, f.id) {
                    (TType::Stop, _) => break,
                    (TType::I32, Some(1)) => v = p.read_i32()?,
                    (t, _) => {
                        p.skip(t)?;
                    }
                }
                p.read_field_end()?;
            }
            p.read_struct_end()?;
            Ok(Msg::Ping(v))
        }

        fn size<P: TLengthProtocol>(&self, _p: &mut P) -> usize {
            16
        }

        /// `notify` is one-way.
        fn oneway_result(_service: &str, method: &str) -> Option<Self> {
            (method == "notify").then_some(Msg::Ping(0))
        }
    }

    type Server = ThriftServerCodec<Msg, Msg>;
    type Client = ThriftClientCodec<Msg, Msg>;

    fn client(transport: Transport) -> Client {
        ThriftClientCodec::new(transport, Protocol::Binary, &Limits::default())
    }

    /// One framed, strict-binary message: envelope `name`/`kind`, then an
    /// empty struct.
    fn put_framed(dst: &mut BytesMut, name: &str, kind: TMessageType, seq: i32) {
        dst.put_u32((4 + 4 + name.len() + 4 + 1) as u32);
        dst.put_u32(0x8001_0000 | kind as u32);
        dst.put_u32(name.len() as u32);
        dst.put_slice(name.as_bytes());
        dst.put_i32(seq);
        dst.put_u8(0);
    }

    #[test]
    fn a_oneway_method_sent_as_a_call_gets_no_answer() {
        let mut buf = BytesMut::new();
        put_framed(&mut buf, "notify", TMessageType::Call, 3);
        put_framed(&mut buf, "ping", TMessageType::Call, 4);
        let mut codec = Server::new(&Limits::default());
        for (seq, oneway) in [(3, true), (4, false)] {
            match codec.decode(&mut buf).unwrap() {
                Some(Inbound::Request { req, reply, .. }) => {
                    assert_eq!(req.cx.seq_id, seq);
                    assert_eq!((req.cx.oneway, reply.is_none()), (oneway, oneway), "{seq}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn many_bad_oneway_frames_are_discarded_one_by_one() {
        // Run on a small stack: the old codec recursed once per bad one-way
        // frame and overflowed it long before the end of the buffer.
        let t = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                const N: usize = 100_000;
                let mut buf = BytesMut::new();
                for i in 0..N {
                    put_framed(&mut buf, "nope", TMessageType::OneWay, i as i32);
                }
                put_framed(&mut buf, "ping", TMessageType::OneWay, -1);
                let mut codec = Server::new(&Limits::default());
                let mut discarded = 0;
                loop {
                    match codec.decode(&mut buf).unwrap() {
                        Some(Inbound::Discard(_)) => discarded += 1,
                        Some(Inbound::Request { req, reply, .. }) => {
                            assert!(reply.is_none() && req.cx.oneway);
                            assert_eq!(req.cx.seq_id, -1);
                            break;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                assert_eq!(discarded, N);
                assert!(buf.is_empty());
            })
            .unwrap();
        t.join().unwrap();
    }

    /// A TTHeader request for `ping` whose header states `timeout_ms`.
    fn tt_request_with_timeout(timeout_ms: &str) -> BytesMut {
        let mut buf = BytesMut::new();
        let mark = frame::begin_frame(
            &mut buf,
            Transport::TTHeader,
            Protocol::Binary,
            1,
            0,
            false,
            |w| w.ints(&[(int_key::RPC_TIMEOUT, timeout_ms.as_bytes())]),
        );
        let id = TMessageIdentifier::new("ping".into(), TMessageType::Call, 1);
        write_message(&mut TBinaryProtocol::new(&mut buf, false), &id, |p| {
            Msg::Ping(3).encode(p)
        })
        .unwrap();
        frame::finish_frame(&mut buf, mark, 1 << 20).unwrap();
        buf
    }

    #[test]
    fn rpc_timeout_is_reported_not_turned_into_a_deadline() {
        let cases: [(&str, Option<Duration>); 6] = [
            ("250", Some(Duration::from_millis(250))),
            ("0", None),
            ("-5", None),
            ("soon", None),
            // Would overflow any clock it is added to: reported as is.
            (
                "18446744073709551615",
                Some(Duration::from_millis(u64::MAX)),
            ),
            ("18446744073709551616", None),
        ];
        for (wire, want) in cases {
            let mut buf = tt_request_with_timeout(wire);
            let mut codec = Server::new(&Limits::default());
            match codec.decode(&mut buf).unwrap() {
                Some(Inbound::Request { req, timeout, .. }) => {
                    assert_eq!(timeout, want, "{wire}");
                    assert!(req.cx.deadline.is_none());
                    assert_eq!(req.message, Msg::Ping(3));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn served(transport: Transport) -> (Reply, BytesMut) {
        let c = client(transport);
        let cx = Context::new("svc", "ping");
        let mut buf = BytesMut::from(&c.encode(5, &cx, &Msg::Ping(1)).unwrap()[..]);
        let mut codec = Server::new(&Limits::default());
        match codec.decode(&mut buf).unwrap() {
            Some(Inbound::Request {
                reply: Some(reply), ..
            }) => (reply, buf),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// What Apache's Python library writes for `ping()` (seq 7) with
    /// `THeaderProtocol` over `TFramedTransport`: a THeader frame inside a
    /// frame. Printed by `TFramedTransport(TMemoryBuffer())` under
    /// `THeaderProtocolFactory` with thrift 0.25.0.
    const APACHE_FRAMED_THEADER_PING: &str =
        "000000230000001f0fff000000000007000100000000800100010000000470696e670000000700";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn apache_header_over_framed_is_detected_served_and_answered_the_same_way() {
        let wire = hex(APACHE_FRAMED_THEADER_PING);
        // Detection needs no more than the first ten bytes.
        assert_eq!(frame::detect(&wire[..9]).unwrap(), None);
        assert_eq!(
            frame::detect(&wire[..10]).unwrap(),
            Some((Transport::FramedTHeader, Protocol::Binary))
        );
        let mut buf = BytesMut::from(&wire[..]);
        let mut codec = Server::new(&Limits::default());
        let reply = match codec.decode(&mut buf).unwrap() {
            Some(Inbound::Request {
                req,
                reply: Some(reply),
                ..
            }) => {
                assert_eq!((req.cx.method.as_str(), req.cx.seq_id), ("ping", 7));
                reply
            }
            other => panic!("unexpected {other:?}"),
        };
        assert!(buf.is_empty());
        assert_eq!(
            codec.detected(),
            Some((Transport::FramedTHeader, Protocol::Binary))
        );
        let mut dst = BytesMut::new();
        let resp = Response::new(Context::new("svc", "ping"), Msg::Ping(3));
        Server::encode(reply, Ok(resp), false, &mut dst).unwrap();
        // The answer is framed twice too, as Apache's client reads it.
        let outer = u32::from_be_bytes(dst[0..4].try_into().unwrap()) as usize;
        let inner = u32::from_be_bytes(dst[4..8].try_into().unwrap()) as usize;
        assert_eq!((outer, inner), (dst.len() - 4, dst.len() - 8));
        assert_eq!(&dst[8..10], &[0x0f, 0xff]);
        assert_eq!(&dst[12..16], &7i32.to_be_bytes());
        // And Weft's client, asked for this transport, reads the answer.
        let c = client(Transport::FramedTHeader);
        let (seq, raw) = c.decode_frame(&mut dst).unwrap().unwrap();
        assert_eq!(seq, 7);
        let mut cx = Context::new("svc", "ping");
        cx.seq_id = 7;
        assert!(matches!(c.decode(&mut cx, raw).unwrap(), Msg::Ping(3)));
    }

    #[test]
    fn a_framed_theader_frame_whose_lengths_disagree_is_refused() {
        let mut wire = hex(APACHE_FRAMED_THEADER_PING);
        wire[7] -= 1; // the inner length one short of the frame
        let e = frame::parse_frame(
            Bytes::from(wire),
            Transport::FramedTHeader,
            Protocol::Binary,
            DecodeLimits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("inner frame"), "{e}");
    }

    #[test]
    fn the_client_sees_the_reset_flag_of_a_draining_server() {
        for transport in [
            Transport::TTHeader,
            Transport::THeader,
            Transport::FramedTHeader,
            Transport::Framed,
        ] {
            let c = client(transport);
            for closing in [false, true] {
                let (reply, _) = served(transport);
                let mut dst = BytesMut::new();
                let resp = Response::new(Context::new("svc", "ping"), Msg::Ping(9));
                Server::encode(reply, Ok(resp), closing, &mut dst).unwrap();
                let (_, raw) = c.decode_frame(&mut dst).unwrap().unwrap();
                // Framed Thrift has nowhere to say it.
                let expect = closing && transport != Transport::Framed;
                assert_eq!(c.closing(&raw), expect, "{transport:?} closing={closing}");
            }
        }
    }

    #[test]
    fn a_business_status_travels_in_ttheader_headers_and_as_an_exception_elsewhere() {
        let status: Status = BizStatus::new(4001, "sold out")
            .with_extra("sku", "a\"b")
            .into();
        for transport in [
            Transport::TTHeader,
            Transport::THeader,
            Transport::FramedTHeader,
            Transport::Framed,
        ] {
            let c = client(transport);
            let (reply, _) = served(transport);
            let mut dst = BytesMut::new();
            Server::encode(reply, Err(status.clone()), false, &mut dst).unwrap();
            let (_, raw) = c.decode_frame(&mut dst).unwrap().unwrap();
            let mut cx = Context::new("svc", "ping");
            cx.seq_id = 5;
            let e = c.decode(&mut cx, raw.clone()).unwrap_err();
            assert_eq!(e.code(), Code::Unknown, "{transport:?}");
            assert_eq!(e.message(), "sold out");
            let f = frame::parse_frame(raw, transport, Protocol::Binary, DecodeLimits::default())
                .unwrap();
            if transport == Transport::TTHeader {
                let biz = BizStatus::of(&e).expect("the business status");
                assert_eq!((biz.code(), biz.extra_value("sku")), (4001, Some("a\"b")));
                let h = f.header.unwrap();
                assert_eq!(h.string(BIZ_STATUS_KEY).unwrap(), "4001");
                assert_eq!(h.string(BIZ_MESSAGE_KEY).unwrap(), "sold out");
                assert_eq!(h.string(BIZ_EXTRA_KEY).unwrap(), r#"{"sku":"a\"b"}"#);
                // An empty REPLY, as Kitex sends.
                let mut payload = f.payload;
                let mut p = BinaryInput::new(&mut payload, DecodeLimits::default());
                let id = p.read_message_begin().unwrap();
                assert_eq!(id.message_type, TMessageType::Reply);
                p.read_struct_begin().unwrap();
                assert_eq!(p.read_field_begin().unwrap().field_type, TType::Stop);
            } else {
                assert!(BizStatus::of(&e).is_none(), "{transport:?}");
            }
        }
        // Not a business status: an exception, as before.
        let (reply, _) = served(Transport::TTHeader);
        let mut dst = BytesMut::new();
        Server::encode(reply, Err(Status::internal("boom")), false, &mut dst).unwrap();
        let c = client(Transport::TTHeader);
        let (_, raw) = c.decode_frame(&mut dst).unwrap().unwrap();
        let mut cx = Context::new("svc", "ping");
        cx.seq_id = 5;
        let e = c.decode(&mut cx, raw).unwrap_err();
        assert_eq!(
            (e.code(), BizStatus::of(&e).is_none()),
            (Code::Internal, true)
        );
    }

    #[test]
    fn backward_values_travel_as_kitex_and_volo_expect() {
        for transport in [
            Transport::TTHeader,
            Transport::THeader,
            Transport::FramedTHeader,
        ] {
            let (reply, _) = served(transport);
            let mut cx = Context::new("svc", "ping");
            cx.metainfo.backward.insert("trace", "t1");
            let mut dst = BytesMut::new();
            Server::encode(reply, Ok(Response::new(cx, Msg::Ping(1))), false, &mut dst).unwrap();
            let c = client(transport);
            let (_, raw) = c.decode_frame(&mut dst).unwrap().unwrap();
            let f = frame::parse_frame(
                raw.clone(),
                transport,
                Protocol::Binary,
                DecodeLimits::default(),
            )
            .unwrap();
            let h = f.header.unwrap();
            assert_eq!(h.string("RPC_BACKWARD_trace").unwrap(), "t1");
            // Bare, for Kitex's clients: TTHeader only.
            assert_eq!(
                h.string("trace").is_some(),
                transport == Transport::TTHeader
            );
            let mut back = Context::new("svc", "ping");
            back.seq_id = 5;
            c.decode(&mut back, raw).unwrap();
            let got: Vec<_> = back.metainfo.backward.iter().collect();
            assert_eq!(
                got,
                [(&FastStr::new("trace"), &FastStr::new("t1"))],
                "{transport:?}"
            );
        }

        // A Kitex server's answer: bare backward keys among its own headers.
        let mut buf = BytesMut::new();
        let mark = frame::begin_frame(
            &mut buf,
            Transport::TTHeader,
            Protocol::Binary,
            5,
            0,
            false,
            |w| {
                w.string("", "trace", "t2");
                w.string("", CONNECTION_RESET_KEY, "1");
                w.string("", IDL_SERVICE_NAME, "svc");
                w.string("", "RPC_PERSIST_", "stray");
                w.ints(&[]);
            },
        );
        let id = TMessageIdentifier::new("ping".into(), TMessageType::Reply, 5);
        write_message(&mut TBinaryProtocol::new(&mut buf, false), &id, |p| {
            Msg::Ping(2).encode(p)
        })
        .unwrap();
        frame::finish_frame(&mut buf, mark, 1 << 20).unwrap();
        let c = client(Transport::TTHeader);
        let (_, raw) = c.decode_frame(&mut buf).unwrap().unwrap();
        let mut back = Context::new("svc", "ping");
        back.seq_id = 5;
        assert_eq!(c.decode(&mut back, raw).unwrap(), Msg::Ping(2));
        let got: Vec<_> = back.metainfo.backward.iter().collect();
        assert_eq!(got, [(&FastStr::new("trace"), &FastStr::new("t2"))]);
    }

    #[test]
    fn server_encode_appends_and_marks_closing() {
        let (reply, _) = served(Transport::TTHeader);
        let mut dst = BytesMut::from(&b"earlier"[..]);
        let resp = Response::new(Context::new("svc", "ping"), Msg::Ping(9));
        Server::encode(reply.clone(), Ok(resp), true, &mut dst).unwrap();
        assert_eq!(&dst[..7], b"earlier");
        let mut frame = dst.split_off(7);
        let f = frame::split_frame(
            &mut frame,
            Transport::TTHeader,
            Protocol::Binary,
            1 << 20,
            DecodeLimits::default(),
        )
        .unwrap()
        .unwrap();
        let h = f.header.unwrap();
        assert_eq!(h.string(CONNECTION_RESET_KEY).unwrap(), "1");
        assert_eq!(h.seq_id, 5);

        // Not draining: no reset header.
        let mut dst = BytesMut::new();
        let resp = Response::new(Context::new("svc", "ping"), Msg::Ping(9));
        Server::encode(reply, Ok(resp), false, &mut dst).unwrap();
        let f = frame::split_frame(
            &mut dst,
            Transport::TTHeader,
            Protocol::Binary,
            1 << 20,
            DecodeLimits::default(),
        )
        .unwrap()
        .unwrap();
        assert!(f.header.unwrap().string(CONNECTION_RESET_KEY).is_none());
    }

    #[test]
    fn oversized_metainfo_is_refused_not_wrapped() {
        let big = "v".repeat(70_000);
        for transport in [
            Transport::TTHeader,
            Transport::THeader,
            Transport::FramedTHeader,
        ] {
            let c = client(transport);
            let mut cx = Context::new("svc", "ping");
            cx.metainfo.persistent.insert("k", big.clone());
            let result = c.encode(1, &cx, &Msg::Ping(1));
            if transport == Transport::TTHeader {
                let e = result.unwrap_err();
                assert!(e.message().contains("value length"), "{e}");
            } else {
                // THeader lengths are varints: 70,000 bytes fit.
                result.unwrap();
            }
        }

        // On the server, a huge backward value fails the encode and leaves
        // the write buffer as it was.
        let (reply, _) = served(Transport::TTHeader);
        let mut cx = Context::new("svc", "ping");
        cx.metainfo.backward.insert("k", big);
        let mut dst = BytesMut::from(&b"earlier"[..]);
        let e = Server::encode(reply, Ok(Response::new(cx, Msg::Ping(1))), false, &mut dst)
            .unwrap_err();
        assert!(e.message().contains("SizeLimit"), "{e}");
        assert_eq!(&dst[..], b"earlier");
    }

    #[test]
    fn a_panicking_encode_leaves_nothing_behind() {
        let c = client(Transport::Framed);
        let cx = Context::new("svc", "ping");
        let expected = std::thread::spawn(|| {
            client(Transport::Framed)
                .encode(2, &Context::new("svc", "ping"), &Msg::Ping(1))
                .unwrap()
        })
        .join()
        .unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.encode(1, &cx, &Msg::Boom)
        }));
        assert!(panicked.is_err());
        // Same thread, so the same arena: the half-written frame is gone.
        assert_eq!(c.encode(2, &cx, &Msg::Ping(1)).unwrap(), expected);
    }

    #[test]
    fn a_panicking_server_encode_leaves_the_write_buffer_as_it_was() {
        let (reply, _) = served(Transport::TTHeader);
        let mut dst = BytesMut::from(&b"earlier"[..]);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let resp = Response::new(Context::new("svc", "ping"), Msg::Boom);
            Server::encode(reply.clone(), Ok(resp), false, &mut dst)
        }));
        assert!(panicked.is_err());
        assert_eq!(&dst[..], b"earlier");
    }

    #[test]
    fn a_full_header_is_absorbed_with_later_values_winning() {
        let max = Limits::default().max_header_entries;
        let mut buf = BytesMut::new();
        let mark = frame::begin_frame(
            &mut buf,
            Transport::TTHeader,
            Protocol::Binary,
            1,
            0,
            false,
            |w| {
                // As many strings as allowed: keys 0..512, then 0..256 twice
                // more with new values.
                for i in 0..512 {
                    w.string(prefix::PERSISTENT, &i.to_string(), "old");
                }
                for v in ["", "new"] {
                    for i in 0..256 {
                        w.string(prefix::PERSISTENT, &i.to_string(), v);
                    }
                }
                w.ints(&[]);
            },
        );
        let id = TMessageIdentifier::new("ping".into(), TMessageType::Call, 1);
        write_message(&mut TBinaryProtocol::new(&mut buf, false), &id, |p| {
            Msg::Ping(3).encode(p)
        })
        .unwrap();
        frame::finish_frame(&mut buf, mark, 1 << 20).unwrap();
        let mut codec = Server::new(&Limits::default());
        let Some(Inbound::Request { req, .. }) = codec.decode(&mut buf).unwrap() else {
            panic!("not a request");
        };
        let kv = &req.cx.metainfo.persistent;
        assert_eq!(512 + 2 * 256, max);
        assert_eq!(kv.len(), 512);
        assert_eq!(kv.get("0").unwrap(), "new");
        assert_eq!(kv.get("255").unwrap(), "new");
        assert_eq!(kv.get("256").unwrap(), "old");
        // First insertion fixes the order.
        let keys: Vec<_> = kv.iter().take(3).map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["0", "1", "2"]);
    }

    const W3C: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// The context a traced call's client sends, with its trace context in
    /// the typed slot (`slot`) or as the string an observing layer used
    /// to put last in its transient metainfo.
    fn traced_cx(slot: bool) -> Context {
        let mut cx = Context::new("svc", "ping");
        cx.caller = "front".into();
        cx.metainfo.persistent.insert("tenant", "blue");
        cx.metainfo.transient.insert("hop", "1");
        if slot {
            cx.trace = TraceSlot::to_send(TraceParent::parse(W3C.as_bytes()).unwrap());
        } else {
            cx.metainfo.transient.insert(TRACEPARENT, W3C);
        }
        cx
    }

    /// The request a server's codec reads from `frame`.
    fn served_request(frame: &[u8]) -> Request<Msg> {
        let mut buf = BytesMut::from(frame);
        match Server::new(&Limits::default()).decode(&mut buf).unwrap() {
            Some(Inbound::Request { req, .. }) => req,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_typed_trace_context_goes_on_the_wire_as_the_strings_did() {
        for transport in [Transport::TTHeader, Transport::THeader] {
            let c = client(transport);
            let typed = c.encode(9, &traced_cx(true), &Msg::Ping(1)).unwrap();
            let strings = c.encode(9, &traced_cx(false), &Msg::Ping(1)).unwrap();
            assert_eq!(typed, strings, "{transport:?}");
            if transport == Transport::TTHeader {
                let mut kv = b"\x00\x17RPC_TRANSIT_traceparent\x00\x37".to_vec();
                kv.extend_from_slice(W3C.as_bytes());
                assert!(typed.windows(kv.len()).any(|w| w == kv), "{typed:?}");
            }
            // The server's codec reads it into its slot, the ids exact, and
            // not into upstream metainfo.
            let req = served_request(&typed);
            let got = req.cx.trace.incoming().expect("a received trace");
            assert_eq!(
                (got.trace_id, got.span_id, got.flags),
                (0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 1)
            );
            let up = &req.cx.metainfo.upstream;
            assert_eq!(up.len(), 1, "{up:?}");
            assert_eq!(up.get("hop").unwrap(), "1");
            assert_eq!(req.cx.metainfo.persistent.get("tenant").unwrap(), "blue");
        }
        // A received one is never sent on; framed Thrift has no header to
        // carry one.
        let mut cx = traced_cx(true);
        let plain = client(Transport::TTHeader)
            .encode(9, &Context::new("svc", "ping"), &Msg::Ping(1))
            .unwrap();
        cx.trace = TraceSlot::received(cx.trace.outgoing().unwrap());
        cx.metainfo = Default::default();
        cx.caller = Default::default();
        let received = client(Transport::TTHeader)
            .encode(9, &cx, &Msg::Ping(1))
            .unwrap();
        assert_eq!(received, plain);
        let framed = client(Transport::Framed)
            .encode(9, &traced_cx(true), &Msg::Ping(1))
            .unwrap();
        let req = served_request(&framed);
        assert!(req.cx.trace.is_empty() && req.cx.metainfo.upstream.is_empty());
    }

    #[test]
    fn a_traceparent_not_in_version_00_stays_a_string_in_upstream_metainfo() {
        let later = format!("cc{}-more", &W3C[2..]);
        let zeros = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let upper = W3C.to_uppercase();
        for bad in [later.as_str(), zeros, &upper, "", "00-ab-cd-01", &W3C[..54]] {
            for state in [None, Some("k=v")] {
                let c = client(Transport::TTHeader);
                let mut cx = Context::new("svc", "ping");
                cx.metainfo.transient.insert(TRACEPARENT, FastStr::new(bad));
                if let Some(s) = state {
                    cx.metainfo.transient.insert(TRACESTATE, s);
                }
                let req = served_request(&c.encode(1, &cx, &Msg::Ping(1)).unwrap());
                assert!(req.cx.trace.is_empty(), "{bad:?}");
                let up = &req.cx.metainfo.upstream;
                assert_eq!(up.get(TRACEPARENT).unwrap(), bad);
                assert_eq!(up.get(TRACESTATE).map(|s| s.as_str()), state);
            }
        }
        // A valid one with a tracestate stays with it, as strings.
        let mut cx = traced_cx(false);
        cx.metainfo.transient.insert(TRACESTATE, "k=v");
        let req = served_request(
            &client(Transport::TTHeader)
                .encode(1, &cx, &Msg::Ping(1))
                .unwrap(),
        );
        assert!(req.cx.trace.is_empty());
        assert_eq!(req.cx.metainfo.upstream.get(TRACEPARENT).unwrap(), W3C);
        assert_eq!(req.cx.metainfo.upstream.get(TRACESTATE).unwrap(), "k=v");
        // A repeated key: the last counts, as it did in the list.
        let mut buf = BytesMut::new();
        let mark = frame::begin_frame(
            &mut buf,
            Transport::TTHeader,
            Protocol::Binary,
            1,
            0,
            false,
            |w| {
                w.string(prefix::TRANSIENT, TRACEPARENT, W3C);
                w.string(prefix::TRANSIENT, TRACEPARENT, "00-junk");
                w.ints(&[]);
            },
        );
        let id = TMessageIdentifier::new("ping".into(), TMessageType::Call, 1);
        write_message(&mut TBinaryProtocol::new(&mut buf, false), &id, |p| {
            Msg::Ping(3).encode(p)
        })
        .unwrap();
        frame::finish_frame(&mut buf, mark, 1 << 20).unwrap();
        let req = served_request(&buf);
        assert!(req.cx.trace.is_empty());
        assert_eq!(
            req.cx.metainfo.upstream.get(TRACEPARENT).unwrap(),
            "00-junk"
        );
    }

    #[test]
    fn http_on_a_thrift_port_is_refused_at_once() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        let mut codec = Server::new(&Limits::default());
        let e = codec.decode(&mut buf).unwrap_err();
        assert_eq!(
            codec.detected(),
            Some((Transport::Buffered, Protocol::Binary))
        );
        assert!(e.message().contains("SizeLimit"), "{e}");
    }

    #[test]
    fn a_buffered_message_in_pieces_is_decoded_once_whole() {
        let c = ThriftClientCodec::<Msg, Msg>::new(
            Transport::Buffered,
            Protocol::Compact,
            &Limits::default(),
        );
        let cx = Context::new("svc", "ping");
        let mut wire = c.encode(4, &cx, &Msg::Ping(77)).unwrap().to_vec();
        wire.extend_from_slice(&c.encode(5, &cx, &Msg::Ping(78)).unwrap());
        let mut codec = Server::new(&Limits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.put_u8(b);
            while let Some(inbound) = codec.decode(&mut buf).unwrap() {
                let Inbound::Request { req, .. } = inbound else {
                    panic!("not a request");
                };
                got.push((req.cx.seq_id, req.message));
            }
        }
        assert_eq!(got, [(4, Msg::Ping(77)), (5, Msg::Ping(78))]);
        assert!(buf.is_empty());
    }

    #[test]
    fn an_http_answer_is_reported_as_http_not_as_a_huge_frame() {
        for transport in [
            Transport::Framed,
            Transport::Buffered,
            Transport::TTHeader,
            Transport::THeader,
            Transport::FramedTHeader,
        ] {
            let c = client(transport);
            let mut buf =
                BytesMut::from(&b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"[..]);
            let e = c.decode_frame(&mut buf).unwrap_err();
            assert_eq!(e.code(), Code::Unavailable, "{transport:?}");
            assert!(
                e.message().contains("answered in HTTP") && e.message().contains("400 Bad Request"),
                "{transport:?}: {e}"
            );
            // Other text is called text.
            let mut buf = BytesMut::from(&b"SSH-2.0-OpenSSH_9.6\r\n"[..]);
            let e = c.decode_frame(&mut buf).unwrap_err();
            assert!(e.message().contains("not Thrift"), "{transport:?}: {e}");
        }
        // A frame too large that is not text keeps its own error.
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff, 0, 0][..]);
        let e = client(Transport::Framed)
            .decode_frame(&mut buf)
            .unwrap_err();
        assert!(e.message().contains("exceeds the limit"), "{e}");
    }

    #[test]
    fn per_call_multiplexing_names_each_calls_service() {
        let id_of = |transport: Transport, service: &str| {
            let c = client(transport).multiplexed_per_call();
            let mut cx = Context::new(FastStr::new(service), "ping");
            cx.deadline = None;
            let raw = c.encode(1, &cx, &Msg::Ping(1)).unwrap();
            let f = frame::parse_frame(raw, transport, Protocol::Binary, DecodeLimits::default())
                .unwrap();
            let isn = f
                .header
                .as_ref()
                .and_then(|h| h.string(IDL_SERVICE_NAME).map(str::to_owned));
            let mut payload = f.payload;
            let id = BinaryInput::new(&mut payload, DecodeLimits::default())
                .read_message_begin()
                .unwrap();
            (id.name.to_string(), isn)
        };
        for transport in [Transport::Framed, Transport::Buffered, Transport::THeader] {
            assert_eq!(id_of(transport, "A"), ("A:ping".to_owned(), None));
            assert_eq!(id_of(transport, "B"), ("B:ping".to_owned(), None));
            // A call that names no service is sent as it is.
            assert_eq!(id_of(transport, ""), ("ping".to_owned(), None));
        }
        // Kitex's multi-service servers read the service from `isn`.
        assert_eq!(
            id_of(Transport::TTHeader, "A"),
            ("ping".to_owned(), Some("A".to_owned()))
        );
        // And Weft's server reads it from either.
        for transport in [Transport::Framed, Transport::TTHeader] {
            let c = client(transport).multiplexed_per_call();
            let cx = Context::new("A", "ping");
            let mut buf = BytesMut::from(&c.encode(1, &cx, &Msg::Ping(4)).unwrap()[..]);
            let Some(Inbound::Request { req, .. }) =
                Server::new(&Limits::default()).decode(&mut buf).unwrap()
            else {
                panic!("not a request");
            };
            assert_eq!(
                (req.cx.service.as_str(), req.cx.method.as_str()),
                ("A", "ping"),
                "{transport:?}"
            );
        }
    }
}
