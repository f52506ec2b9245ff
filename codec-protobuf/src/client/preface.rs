//! A client connection is used only once the server has sent its first
//! bytes: its SETTINGS, which an HTTP/2 server sends before it reads any
//! stream. A server that is going away closes its listener, and the kernel
//! resets the connections still waiting in its backlog. A call written
//! there would end "connection reset", in doubt, though no server ever read
//! it; waited for this way it ends "not sent", safe to retry anywhere.
//! grpc-go waits the same way before it calls a connection ready. It costs
//! one round trip per connection, none per call.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::oneshot,
};

/// A socket that says when the server's first bytes arrive.
pub(crate) struct Preface<S> {
    io: S,
    spoke: Option<oneshot::Sender<()>>,
}

impl<S> Preface<S> {
    /// `io`, and what is told when the server's first bytes arrive: dropped
    /// untold if the connection ends first.
    pub(crate) fn watch(io: S) -> (Preface<S>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (
            Preface {
                io,
                spoke: Some(tx),
            },
            rx,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Preface<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.spoke.is_some() {
            match &r {
                Poll::Ready(Ok(())) if buf.filled().len() > before => {
                    if let Some(tx) = this.spoke.take() {
                        let _ = tx.send(());
                    }
                }
                // The end of the stream or an error before any byte.
                Poll::Ready(_) => this.spoke = None,
                Poll::Pending => {}
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Preface<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
