//! Sending messages on an HTTP/2 stream with backpressure: the next message
//! is produced only once the stream has window for more, so at most one
//! message per stream waits in h2's send buffer, and a peer that reads
//! slowly slows the producer instead of growing memory.

use std::task::{ready, Context as TaskContext, Poll};

/// Ready when `send` can take another message; `Err` when the stream is
/// gone (reset by the peer, or the connection closed).
pub(crate) fn poll_ready<B: bytes::Buf>(
    send: &mut h2::SendStream<B>,
    cx: &mut TaskContext<'_>,
) -> Poll<Result<(), h2::Error>> {
    // Capacity counts what is buffered: asking for one byte means "once the
    // last message has gone out, or there is window for one more byte".
    send.reserve_capacity(1);
    while send.capacity() == 0 {
        match ready!(send.poll_capacity(cx)) {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Poll::Ready(Err(e)),
            None => return Poll::Ready(Err(h2::Error::from(h2::Reason::STREAM_CLOSED))),
        }
    }
    Poll::Ready(Ok(()))
}
