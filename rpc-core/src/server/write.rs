//! A connection's write buffer: answers are encoded straight into it, so
//! every answer ready at one moment goes out in one write, and the permits
//! of their requests are held until the bytes are handed to the kernel.

use std::{
    io,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use bytes::{Buf, BytesMut};
use tokio::{io::AsyncWrite, time::Instant};

use crate::{codec::ServerCodec, message::Response, status::Status};

/// A write buffer that grew past this for one large answer is let go once
/// written, so a connection does not keep its peak forever.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// Encoded answers not yet written, and what their requests hold.
#[derive(Debug, Default)]
pub(super) struct WriteBuf {
    buf: BytesMut,
    /// Answers in `buf`, and the bytes of their requests: released when
    /// `buf` is empty, so a peer that does not read holds them.
    answers: usize,
    request_bytes: usize,
    /// Since when the writer has been waiting to make progress.
    stalled_since: Option<Instant>,
}

impl WriteBuf {
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// When the write timeout started counting, if anything waits.
    pub(super) fn stalled_since(&self) -> Option<Instant> {
        self.stalled_since
    }

    /// Append the answer to one request. An encoding error or panic leaves
    /// nothing of that attempt behind and the error is encoded instead;
    /// `false` means not even the error could be encoded (the peer would
    /// lose its place in an ordered stream: close the connection).
    /// Otherwise the size of the frame appended.
    pub(super) fn answer<C: ServerCodec>(
        &mut self,
        reply: C::Reply,
        result: Result<Response<C::Resp>, Status>,
        closing: bool,
        request_bytes: usize,
        now: Instant,
    ) -> Option<usize> {
        let mark = self.buf.len();
        let buf = &mut self.buf;
        let first = std::panic::catch_unwind(AssertUnwindSafe(|| {
            C::encode(reply.clone(), result, closing, buf)
        }));
        let ok = match first {
            Ok(Ok(())) => true,
            failed => {
                let status = match failed {
                    Ok(Err(status)) => status,
                    _ => Status::internal("encoding the response panicked"),
                };
                tracing::warn!(%status, "failed to encode a response");
                self.buf.truncate(mark);
                let buf = &mut self.buf;
                let second = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    C::encode(reply, Err(status), closing, buf)
                }));
                if !matches!(second, Ok(Ok(()))) {
                    self.buf.truncate(mark);
                }
                matches!(second, Ok(Ok(())))
            }
        };
        if ok {
            if self.stalled_since.is_none() {
                self.stalled_since = Some(now);
            }
            self.answers += 1;
            self.request_bytes += request_bytes;
            return Some(self.buf.len() - mark);
        }
        None
    }

    /// Write as much as the socket takes. `Ready(Ok(released))` once the
    /// buffer is empty, with the answers and request bytes that were
    /// waiting for it; `Pending` while the socket is full.
    pub(super) fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut TaskContext<'_>,
        now: Instant,
    ) -> Poll<io::Result<(usize, usize)>> {
        while !self.buf.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, &self.buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.buf.advance(n);
                    self.stalled_since = Some(now);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.stalled_since = None;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
        let released = (self.answers, self.request_bytes);
        self.answers = 0;
        self.request_bytes = 0;
        Poll::Ready(Ok(released))
    }
}
