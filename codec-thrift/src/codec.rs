//! The Thrift server and client codecs that plug into `weft-core`'s
//! connections, and the [`EntryMessage`] trait typed services implement.

use std::{marker::PhantomData, time::Duration};

use bytes::{Bytes, BytesMut};
use faststr::FastStr;
use pilota::thrift::{
    binary::TBinaryProtocol, ApplicationException, Message, TInputProtocol, TLengthProtocol,
    TMessageIdentifier, TMessageType, TOutputProtocol, ThriftException,
};
use tokio::time::Instant;
use weft_core::{
    ClientCodec, Context, Inbound, KvList, Limits, Request, Response, ServerCodec, Status,
};

use crate::{
    frame::{self, int_key, prefix, Frame, Header, Transport},
    protocol::{BinaryInput, CompactInput, CompactOutput, DecodeLimits, Protocol},
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

/// The separator `TMultiplexedProtocol` puts between service and method.
pub const MULTIPLEX_SEPARATOR: char = ':';

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
        match f(&mut arena) {
            Ok(()) => Ok(arena.split().freeze()),
            Err(e) => {
                arena.clear();
                Err(e)
            }
        }
    })
}

fn size_hint<M: EntryMessage>(m: &M) -> usize {
    m.size(&mut TBinaryProtocol::new((), false))
}

fn status_of(e: ThriftException) -> Status {
    status_from_exception(&e)
}

/// Put string headers into the scopes of `metainfo` they belong to.
fn absorb_strings(header: &Header, on_server: bool, cx: &mut Context) {
    for (k, v) in &header.strings {
        if on_server {
            if let Some(key) = k.strip_prefix(prefix::PERSISTENT) {
                cx.metainfo.persistent.insert(FastStr::new(key), v.clone());
            } else if let Some(key) = k.strip_prefix(prefix::TRANSIENT) {
                cx.metainfo.upstream.insert(FastStr::new(key), v.clone());
            }
        } else if let Some(key) = k.strip_prefix(prefix::BACKWARD) {
            cx.metainfo.backward.insert(FastStr::new(key), v.clone());
        }
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
            max_frame_len: limits.max_frame_len,
            limits: DecodeLimits::from(limits),
            _types: PhantomData,
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
        } = match frame::split_frame(src, transport, protocol, self.max_frame_len, self.limits)
            .map_err(status_of)?
        {
            Some(f) => f,
            None => return Ok(None),
        };
        // A header names its own protocol; answer in the one the peer used.
        self.detected = Some((transport, protocol));

        let (id, body) = with_input!(protocol, &mut payload, self.limits, |p| {
            // An unreadable envelope leaves nothing to answer to.
            let id = p.read_message_begin().map_err(status_of)?;
            let (service, method) = match id.name.split_once(MULTIPLEX_SEPARATOR) {
                Some((s, m)) => (s, m),
                // Kitex and Volo name the IDL service in the "isn" header.
                None => (
                    header
                        .as_ref()
                        .and_then(|h| h.string(IDL_SERVICE_NAME))
                        .map_or("", |s| s.as_str()),
                    id.name.as_str(),
                ),
            };
            let body = Req::decode(&mut p, service, method);
            (id, body)
        });

        let (service, method) = match id.name.split_once(MULTIPLEX_SEPARATOR) {
            Some((s, m)) => (FastStr::new(s), FastStr::new(m)),
            None => (
                header
                    .as_ref()
                    .and_then(|h| h.string(IDL_SERVICE_NAME).cloned())
                    .unwrap_or_default(),
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
            TMessageType::Call => false,
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
                    // A one-way call has no one to tell; drop it and go on.
                    tracing::debug!(%status, "dropping a malformed one-way call");
                    return self.decode(src);
                }
                return Ok(Some(Inbound::Reject(reply, status)));
            }
        };

        let mut cx = Context::new(service, method);
        cx.seq_id = id.sequence_number;
        cx.oneway = oneway;
        if let Some(h) = &header {
            if let Some(from) = h.int(int_key::FROM_SERVICE) {
                cx.caller = from.clone();
            }
            if let Some(to) = h.int(int_key::TO_SERVICE) {
                if cx.service.is_empty() {
                    cx.service = to.clone();
                }
            }
            if let Some(ms) = h
                .int(int_key::RPC_TIMEOUT)
                .and_then(|v| v.parse::<u64>().ok())
            {
                if ms > 0 {
                    cx.deadline = Some(Instant::now() + Duration::from_millis(ms));
                }
            }
            absorb_strings(h, true, &mut cx);
        }
        let req = Request::new(cx, message);
        Ok(Some(Inbound::Request(
            req,
            if oneway { None } else { Some(reply) },
        )))
    }

    fn ordered(&self) -> bool {
        !matches!(
            self.detected,
            Some((Transport::TTHeader | Transport::THeader, _))
        )
    }

    fn encode(reply: Reply, result: Result<Response<Resp>, Status>) -> Result<Bytes, Status> {
        let hint = match &result {
            Ok(r) => size_hint(&r.message),
            Err(s) => s.message().len() + 16,
        };
        encode_frame(hint + reply.name.len() + 64, |dst| {
            let backward = result.as_ref().ok().map(|r| &r.cx.metainfo.backward);
            let msg_type = if result.is_ok() {
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
                    }
                    w.ints(&[(int_key::MSG_TYPE, &[msg_type as u8])]);
                },
            );
            let id = TMessageIdentifier::new(reply.name.clone(), msg_type, reply.seq_id);
            let written = match &result {
                Ok(r) => with_output!(reply.protocol, &mut *dst, |p| write_message(
                    &mut p,
                    &id,
                    |p| r.message.encode(p)
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
        })
    }
}

// ===== client =====

/// Calls a Thrift server over a chosen transport and protocol.
pub struct ThriftClientCodec<Req, Resp> {
    transport: Transport,
    protocol: Protocol,
    service_prefix: Option<FastStr>,
    max_frame_len: usize,
    limits: DecodeLimits,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> std::fmt::Debug for ThriftClientCodec<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThriftClientCodec")
            .field("transport", &self.transport)
            .field("protocol", &self.protocol)
            .field("service_prefix", &self.service_prefix)
            .finish()
    }
}

impl<Req, Resp> ThriftClientCodec<Req, Resp> {
    /// A codec speaking `transport` and `protocol`, bounded by `limits`.
    pub fn new(transport: Transport, protocol: Protocol, limits: &Limits) -> Self {
        ThriftClientCodec {
            transport,
            protocol,
            service_prefix: None,
            max_frame_len: limits.max_frame_len,
            limits: DecodeLimits::from(limits),
            _types: PhantomData,
        }
    }

    /// Prefix method names with `service:`, as `TMultiplexedProtocol` does.
    #[must_use]
    pub fn multiplexed(mut self, service: impl Into<FastStr>) -> Self {
        self.service_prefix = Some(service.into());
        self
    }

    fn peek_seq(&self, raw: &Bytes) -> Result<i32, Status> {
        // Header transports carry the sequence id at a fixed offset: no need
        // to parse the header twice.
        if matches!(self.transport, Transport::TTHeader | Transport::THeader) && raw.len() >= 12 {
            return Ok(i32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]));
        }
        let frame =
            frame::parse_frame(raw.clone(), self.transport, self.protocol).map_err(status_of)?;
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
        let name: FastStr = match &self.service_prefix {
            Some(s) => format!("{s}{MULTIPLEX_SEPARATOR}{}", cx.method).into(),
            None => cx.method.clone(),
        };
        encode_frame(size_hint(req) + name.len() + 128, |dst| {
            let timeout_ms = cx
                .remaining()
                .map(|d| itoa_u64(d.as_millis().max(1) as u64));
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
                    let mut ints: [(u16, &[u8]); 5] = [
                        (int_key::WITH_HEADER, b"3"),
                        (int_key::FROM_SERVICE, cx.caller.as_bytes()),
                        (int_key::TO_METHOD, cx.method.as_bytes()),
                        (int_key::TO_SERVICE, cx.service.as_bytes()),
                        (int_key::RPC_TIMEOUT, b""),
                    ];
                    let n = match &timeout_ms {
                        Some(t) => {
                            ints[4].1 = t.as_bytes();
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
        .map_err(status_of)?
        {
            Some(n) => n,
            None => return Ok(None),
        };
        let raw = src.split_to(n).freeze();
        let seq = self.peek_seq(&raw)?;
        Ok(Some((seq, raw)))
    }

    fn oneway_response(&self, cx: &Context) -> Result<Resp, Status> {
        Resp::oneway_result(&cx.service, &cx.method)
            .ok_or_else(|| Status::internal(format!("{} is not a one-way method", cx.method)))
    }

    fn decode(&self, cx: &mut Context, raw: Bytes) -> Result<Resp, Status> {
        let frame = frame::parse_frame(raw, self.transport, self.protocol).map_err(status_of)?;
        if let Some(h) = &frame.header {
            absorb_strings(h, false, cx);
        }
        let mut payload = frame.payload;
        let method = cx.method.clone();
        let service = cx.service.clone();
        let (id, body) = with_input!(frame.protocol, &mut payload, self.limits, |p| {
            let id = p.read_message_begin().map_err(status_of)?;
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
        match body.map_err(status_of)? {
            Ok(resp) => Ok(resp),
            Err(app) => Err(status_from_exception(&ThriftException::Application(app))),
        }
    }
}

fn itoa_u64(n: u64) -> String {
    n.to_string()
}
