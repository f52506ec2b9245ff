//! Other protocols on the same listener: a connection whose first bytes are
//! a registered protocol's preface (HTTP/2's, for gRPC) is handed to that
//! protocol instead of the server's codec.
//!
//! The protocol gets the socket (with the bytes read to recognise it put
//! back in front), the peer, the server's limits and its shutdown signals,
//! and serves the connection on the connection's own task. It holds one of
//! the server's connection slots for as long as it runs, and the server's
//! drain waits for it like for any other connection.

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::Shared;
use crate::{
    limits::Limits,
    transport::{Address, Stream},
};

/// A protocol a [`ServerBuilder`](super::ServerBuilder) serves beside its
/// codec, recognised by the bytes every one of its connections starts with.
pub trait Protocol: Send + Sync + 'static {
    /// A short name for logs ("grpc").
    fn name(&self) -> &'static str;

    /// The bytes every connection of this protocol begins with; at least one
    /// byte, and no prefix of another registered protocol's.
    fn preface(&self) -> &'static [u8];

    /// Serve one connection until it closes. The future runs on the
    /// connection's task; it should drain when [`Shutdown::draining`]
    /// fires, cancel what is left at [`Shutdown::stopping`], and return at
    /// once after [`Shutdown::aborted`].
    fn serve(&self, conn: Accepted) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// A connection handed to a [`Protocol`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted {
    /// The socket, replaying the bytes read to recognise the protocol.
    pub io: Prefixed,
    /// The remote peer.
    pub peer: Option<Address>,
    /// The server's limits.
    pub limits: Limits,
    /// The server's shutdown, as this connection sees it.
    pub shutdown: Shutdown,
    /// How long to linger when closing: the server's
    /// [`ServerBuilder::linger`](super::ServerBuilder::linger). Pass it to
    /// [`Prefixed::linger`].
    pub linger: Duration,
}

/// A [`Stream`] with bytes already read from it put back in front.
#[derive(Debug)]
pub struct Prefixed {
    prefix: Bytes,
    io: Stream,
}

impl Prefixed {
    /// `io`, reading `prefix` first.
    pub fn new(prefix: Bytes, io: Stream) -> Prefixed {
        Prefixed { prefix, io }
    }

    /// The socket underneath.
    pub fn get_ref(&self) -> &Stream {
        &self.io
    }

    /// Close without losing what was written: half-close, then read and
    /// discard until the peer closes its side, the read fails or `within`
    /// passes. Closing a socket that still holds unread bytes makes the
    /// kernel reset the connection, and a reset can destroy what the peer
    /// has received but not yet read (a final GOAWAY, the last answers).
    /// Nothing read is kept: memory stays at one small scratch buffer.
    pub async fn linger(&mut self, within: Duration) {
        let _ = tokio::time::timeout(within, async {
            let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
            let mut scratch = [0u8; 512];
            while let Ok(1..) = self.read(&mut scratch).await {}
        })
        .await;
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The server's shutdown as one connection sees it: three stages, each
/// implying the ones before.
#[derive(Clone)]
pub struct Shutdown {
    graceful: CancellationToken,
    hard: CancellationToken,
    aborted: CancellationToken,
    drain_deadline: Arc<parking_lot::Mutex<Option<Instant>>>,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("draining", &self.is_draining())
            .field("stopping", &self.hard.is_cancelled())
            .field("aborted", &self.aborted.is_cancelled())
            .finish()
    }
}

impl Shutdown {
    pub(super) fn new(shared: &Shared) -> Shutdown {
        Shutdown {
            graceful: shared.graceful.clone(),
            hard: shared.hard.clone(),
            aborted: shared.aborted.clone(),
            drain_deadline: shared.drain_deadline.clone(),
        }
    }

    /// A shutdown that never comes, for connections served outside a server
    /// (tests, embedding).
    pub fn never() -> Shutdown {
        Shutdown {
            graceful: CancellationToken::new(),
            hard: CancellationToken::new(),
            aborted: CancellationToken::new(),
            drain_deadline: Arc::default(),
        }
    }

    /// Resolves when the server starts draining: refuse new work (as "not
    /// processed"), finish what is in flight.
    pub fn draining(&self) -> WaitForCancellationFutureOwned {
        self.graceful.clone().cancelled_owned()
    }

    /// Whether the server is draining (or past it).
    pub fn is_draining(&self) -> bool {
        self.graceful.is_cancelled()
    }

    /// When the drain ends and [`Shutdown::stopping`] fires, once draining
    /// started.
    pub fn drain_deadline(&self) -> Option<Instant> {
        *self.drain_deadline.lock()
    }

    /// Resolves when the drain timeout passed: end every call still running
    /// with a definite error, then close.
    pub fn stopping(&self) -> WaitForCancellationFutureOwned {
        self.hard.clone().cancelled_owned()
    }

    /// Resolves when the server is aborted: return at once.
    pub fn aborted(&self) -> WaitForCancellationFutureOwned {
        self.aborted.clone().cancelled_owned()
    }
}

/// The protocols registered on a server.
#[derive(Clone, Default)]
pub(super) struct Protocols(pub(super) Vec<Arc<dyn Protocol>>);

impl fmt::Debug for Protocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| p.name()))
            .finish()
    }
}

/// What the first bytes of a connection said.
pub(super) enum Sniffed {
    /// One of the protocols: hand the connection over.
    Protocol(Arc<dyn Protocol>, Prefixed),
    /// None of them: the codec serves it, starting with these bytes.
    Codec(Stream, BytesMut),
    /// The peer closed, failed or stalled before saying.
    Gone,
}

impl Protocols {
    /// Read until the first bytes match a preface whole or match none.
    /// Costs nothing more than the codec's first read when no protocol is
    /// registered, and one read otherwise unless the peer trickles bytes.
    pub(super) async fn sniff(&self, mut io: Stream, shared: &Shared) -> Sniffed {
        let mut buf = BytesMut::new();
        if self.0.is_empty() {
            return Sniffed::Codec(io, buf);
        }
        let started = tokio::time::Instant::now();
        loop {
            let mut candidate = false;
            for p in &self.0 {
                let preface = p.preface();
                let n = preface.len().min(buf.len());
                if buf[..n] == preface[..n] {
                    if n == preface.len() {
                        return Sniffed::Protocol(p.clone(), Prefixed::new(buf.freeze(), io));
                    }
                    candidate = true;
                }
            }
            if !candidate && !buf.is_empty() {
                return Sniffed::Codec(io, buf);
            }
            // Before its first byte a connection is idle; a preface begun
            // must be finished like any frame.
            let deadline = started
                + if buf.is_empty() {
                    shared.limits.idle_timeout
                } else {
                    shared.limits.read_timeout
                };
            buf.reserve(4096);
            tokio::select! {
                r = tokio::time::timeout_at(deadline, io.read_buf(&mut buf)) => match r {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Sniffed::Gone,
                    Ok(Ok(_)) => {}
                },
                // Nothing was asked of a connection that has not spoken yet.
                _ = shared.graceful.cancelled(), if buf.is_empty() => return Sniffed::Gone,
            }
        }
    }
}

/// The codec of a server that serves only protocols: whatever reaches it
/// matched no preface, and is refused with the connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unmatched;

impl crate::codec::ServerCodec for Unmatched {
    type Req = ();
    type Resp = ();
    type Reply = ();

    fn decode(
        &mut self,
        _src: &mut BytesMut,
    ) -> Result<Option<crate::codec::Inbound<(), ()>>, crate::status::Status> {
        Err(crate::status::Status::invalid_argument(
            "the connection began with no preface this server knows",
        ))
    }

    fn ordered(&self) -> bool {
        true
    }

    fn encode(
        _reply: (),
        _result: Result<crate::message::Response<()>, crate::status::Status>,
        _closing: bool,
        _dst: &mut BytesMut,
    ) -> Result<(), crate::status::Status> {
        Ok(())
    }
}
