//! One HTTP/2 connection: the handshake, every stream's call polled on the
//! connection's own task (no spawn per call), GOAWAY when the server
//! drains, a definite status for every call still running when it stops,
//! keepalive and idle timeouts, and a lingering close (no reset that could
//! destroy the last frames before the client reads them).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use futures::{stream::FuturesUnordered, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use weft_core::{Accepted, Limits};

use super::{call, Route};
use crate::{compression::Encoding, limits::GrpcLimits};

/// What every stream of one connection reads.
pub(crate) struct Shared {
    pub(crate) routes: Arc<HashMap<faststr::FastStr, Arc<dyn Route>>>,
    pub(crate) fallback: Option<Arc<dyn Route>>,
    pub(crate) limits: GrpcLimits,
    pub(crate) conn_limits: Limits,
    pub(crate) compress: Option<Encoding>,
    pub(crate) budget: crate::budget::Budget,
}

fn builder(limits: &GrpcLimits) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(limits.max_local_error_reset_streams))
        .initial_window_size(limits.stream_window)
        .initial_connection_window_size(limits.connection_window)
        .max_frame_size(limits.max_frame_size)
        .max_send_buffer_size(limits.max_send_buffer);
    b
}

pub(crate) async fn serve(shared: Arc<Shared>, conn: Accepted) {
    let Accepted {
        mut io,
        peer,
        shutdown,
        linger,
        ..
    } = conn;
    let aborted = shutdown.aborted();
    tokio::pin!(aborted);
    let read_timeout = shared.conn_limits.read_timeout;
    let stall = Arc::new(Stall::default());
    let watched = Watched {
        io: &mut io,
        stall: stall.clone(),
    };
    let handshake = builder(&shared.limits).handshake::<_, crate::budget::Charged>(watched);
    let mut h2 = tokio::select! {
        r = tokio::time::timeout(read_timeout, handshake) => match r {
            Ok(Ok(h2)) => h2,
            Ok(Err(e)) => {
                tracing::debug!(?peer, error = %e, "grpc: HTTP/2 handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(?peer, "grpc: HTTP/2 handshake timed out");
                return;
            }
        },
        _ = &mut aborted => return,
    };

    // Calls end with UNAVAILABLE when the drain deadline passes.
    let stop = CancellationToken::new();
    let draining = shutdown.draining();
    let stopping = shutdown.stopping();
    tokio::pin!(draining, stopping);
    let (mut drained, mut stopped) = (false, false);

    let mut calls = FuturesUnordered::new();
    let idle = shared.conn_limits.idle_timeout;
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    let keepalive = shared.limits.keepalive_interval;
    let mut ping = h2.ping_pong();
    let mut next_ping = Instant::now() + keepalive;
    let ping_timer = tokio::time::sleep_until(next_ping);
    tokio::pin!(ping_timer);
    let mut awaiting_pong: Option<Instant> = None;
    // A peer that stops reading holds the answers written to it; past the
    // write timeout without a byte written, it is cut off and they freed.
    let write_timeout = shared.conn_limits.write_timeout;
    let mut stall_check = tokio::time::interval((write_timeout / 2).max(Duration::from_millis(10)));
    stall_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            biased;
            _ = &mut aborted => return,
            _ = &mut stopping, if !stopped => {
                stopped = true;
                stop.cancel();
                h2.graceful_shutdown();
            }
            _ = &mut draining, if !drained => {
                drained = true;
                // GOAWAY: new streams are refused (the client retries them
                // elsewhere), those in flight finish.
                h2.graceful_shutdown();
            }
            Some(()) = calls.next(), if !calls.is_empty() => {
                if calls.is_empty() {
                    idle_timer.as_mut().reset(Instant::now() + idle);
                }
            }
            accepted = h2.accept() => match accepted {
                Some(Ok((req, respond))) => {
                    calls.push(call::serve(shared.clone(), req, respond, peer.clone(), stop.clone()));
                }
                Some(Err(e)) => {
                    tracing::debug!(?peer, error = %e, "grpc: connection error");
                    break;
                }
                None => break,
            },
            _ = &mut idle_timer, if calls.is_empty() && !drained => {
                tracing::debug!(?peer, "grpc: idle connection closed");
                drained = true;
                h2.graceful_shutdown();
            }
            _ = &mut ping_timer => {
                let now = Instant::now();
                match awaiting_pong {
                    Some(sent) if now >= sent + shared.limits.keepalive_timeout => {
                        tracing::debug!(?peer, "grpc: keepalive ping unanswered; closing");
                        h2.abrupt_shutdown(h2::Reason::NO_ERROR);
                        break;
                    }
                    Some(sent) => {
                        ping_timer.as_mut().reset(sent + shared.limits.keepalive_timeout);
                    }
                    None => {
                        if let Some(p) = ping.as_mut() {
                            if p.send_ping(h2::Ping::opaque()).is_ok() {
                                awaiting_pong = Some(now);
                                ping_timer.as_mut().reset(now + shared.limits.keepalive_timeout);
                            }
                        }
                    }
                }
            }
            _ = stall_check.tick() => {
                if stall.stalled_for() >= write_timeout {
                    tracing::debug!(?peer, "grpc: the peer stopped reading; closing");
                    h2.abrupt_shutdown(h2::Reason::NO_ERROR);
                    break;
                }
            }
            pong = pong(&mut ping), if awaiting_pong.is_some() => {
                awaiting_pong = None;
                if pong.is_err() {
                    break;
                }
                next_ping = Instant::now() + keepalive;
                ping_timer.as_mut().reset(next_ping);
            }
        }
    }
    // The connection is gone: what is left cannot be answered. Let the
    // calls still in flight see it (their streams fail) and end.
    stop.cancel();
    let finish = async { while calls.next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), finish).await;
    // h2 has written its last frame (the final GOAWAY on a drain) and
    // stopped reading. Whatever the peer sent since sits unread; closing
    // now would reset the connection and could destroy that GOAWAY before
    // the peer reads it, leaving its calls in doubt instead of refused.
    drop((calls, h2));
    tokio::select! {
        _ = io.linger(linger) => {}
        _ = &mut aborted => {}
    }
}

/// When writes stopped making progress, in milliseconds after `epoch`
/// plus one (0: they make progress).
#[derive(Debug, Default)]
struct Stall {
    since: AtomicU64,
    epoch: std::sync::OnceLock<std::time::Instant>,
}

impl Stall {
    fn now_ms(&self) -> u64 {
        let epoch = *self.epoch.get_or_init(std::time::Instant::now);
        epoch.elapsed().as_millis() as u64 + 1
    }

    /// How long writes have been stuck: zero while they progress.
    fn stalled_for(&self) -> Duration {
        match self.since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since)),
        }
    }

    fn record<T>(&self, r: &Poll<std::io::Result<T>>) {
        match r {
            Poll::Pending => {
                if self.since.load(Ordering::Relaxed) == 0 {
                    self.since.store(self.now_ms(), Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => self.since.store(0, Ordering::Relaxed),
        }
    }
}

/// The socket as h2 sees it, recording in a [`Stall`] whether its writes
/// make progress.
struct Watched<S> {
    io: S,
    stall: Arc<Stall>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.stall.record(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.stall.record(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

async fn pong(ping: &mut Option<h2::PingPong>) -> Result<(), h2::Error> {
    match ping {
        Some(p) => std::future::poll_fn(|cx| p.poll_pong(cx)).await.map(|_| ()),
        None => std::future::pending().await,
    }
}
