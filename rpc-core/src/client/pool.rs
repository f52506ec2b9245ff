//! Pooled connections: one call at a time per connection, for peers that
//! answer in order (plain framed or buffered Thrift).
//!
//! Open connections are bounded by a semaphore (one permit per connection,
//! idle or busy). Idle ones are kept on a stack so the most recently used
//! is handed out first: it is the one most likely still open at the peer,
//! and the ones at the bottom age out instead of all being kept barely warm.

use std::{
    future::Future,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use super::{stats::PeerCounters, ClientBuilder, Inner};
use crate::{
    codec::ClientCodec,
    context::Context,
    message::Response,
    status::{Delivery, Status},
    transport::Stream,
};

/// Initial read buffer of a pooled connection, and its growth step.
const READ_CHUNK: usize = 8 * 1024;

pub(super) struct Pool {
    /// A short lock: held for one push or pop, never across I/O.
    idle: Mutex<Vec<PooledConn>>,
    permits: Arc<Semaphore>,
    /// Woken when a connection goes back on the stack.
    returned: Notify,
    /// Checkouts that found an idle connection, and those that had to
    /// connect or wait: the peer's, shared with its other clients.
    counters: Arc<PeerCounters>,
}

struct PooledConn {
    stream: Stream,
    buf: BytesMut,
    last_used: Instant,
    seq: i32,
    /// Whether the server answered anything on it yet.
    answered: bool,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub(super) fn new(max_connections: usize, counters: Arc<PeerCounters>) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max_connections)),
            returned: Notify::new(),
            counters,
        }
    }

    /// Connections open (of at most `max`), and idle.
    pub(super) fn open_idle(&self, max: usize) -> (usize, usize) {
        let open = max.saturating_sub(self.permits.available_permits());
        (open, self.idle.lock().len())
    }

    /// An idle connection for a call, counted as a hit.
    fn take_idle(&self, idle_timeout: Duration) -> Option<PooledConn> {
        let conn = self.pop_idle(idle_timeout)?;
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        Some(conn)
    }

    /// The most recently used idle connection that is still usable.
    fn pop_idle(&self, idle_timeout: Duration) -> Option<PooledConn> {
        loop {
            let conn = self.idle.lock().pop()?;
            if conn.last_used.elapsed() > idle_timeout {
                continue;
            }
            // A readable idle connection is either closed by the peer or out
            // of sync; neither can carry a call.
            let mut probe = [0u8; 1];
            match conn.stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(conn),
                _ => continue,
            }
        }
    }

    fn checkin(&self, mut conn: PooledConn, cfg: &ClientBuilder) {
        conn.last_used = Instant::now();
        {
            let mut idle = self.idle.lock();
            // The oldest sit at the bottom; let expired ones go (and give
            // back their permits) rather than wait for a pop to reach them.
            let expired = idle
                .iter()
                .take_while(|c| c.last_used.elapsed() > cfg.idle_timeout)
                .count();
            if expired > 0 {
                idle.drain(..expired);
            }
            if idle.len() >= cfg.max_idle {
                return;
            }
            idle.push(conn);
        }
        self.returned.notify_one();
    }

    /// An idle connection, or a new one if fewer than the maximum are open,
    /// or the first to come back, waiting no later than `deadline`.
    async fn checkout(
        &self,
        cfg: &ClientBuilder,
        deadline: Option<Instant>,
    ) -> Result<PooledConn, Status> {
        let mut counted = false;
        loop {
            let returned = self.returned.notified();
            let mut returned = std::pin::pin!(returned);
            returned.as_mut().enable();
            if let Some(c) = self.pop_idle(cfg.idle_timeout) {
                if !counted {
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(c);
            }
            // No idle connection at hand (one that comes back while this
            // call waits is still a miss: the call waited for it).
            if !counted {
                counted = true;
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
            }
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    tokio::select! {
                        _ = returned => continue,
                        p = self.permits.clone().acquire_owned() => match p {
                            Ok(p) => p,
                            Err(_) => return Err(Status::unavailable("client closed")
                                .with_delivery(Delivery::NotSent)),
                        },
                        _ = until(deadline) => {
                            return Err(Status::resource_exhausted(format!(
                                "all {} connections to {} stayed busy until the deadline",
                                cfg.max_connections, cfg.addr
                            ))
                            .with_delivery(Delivery::NotSent))
                        }
                    }
                }
            };
            let connect = cfg.connector.connect(&cfg.addr);
            let stream = match deadline {
                Some(d) => match tokio::time::timeout_at(d, connect).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(Status::deadline_exceeded(format!(
                            "deadline passed while connecting to {}",
                            cfg.addr
                        ))
                        .with_delivery(Delivery::NotSent))
                    }
                },
                None => connect.await,
            }
            .map_err(|e| {
                Status::unavailable(format!("connecting to {} failed: {e}", cfg.addr))
                    .with_source(e)
                    .with_delivery(Delivery::NotSent)
            })?;
            return Ok(PooledConn {
                stream,
                buf: BytesMut::with_capacity(READ_CHUNK),
                last_used: Instant::now(),
                seq: 0,
                answered: false,
                _permit: permit,
            });
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn bounded<F: Future>(deadline: Option<Instant>, f: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, f).await.ok(),
        None => Some(f.await),
    }
}

/// One call on a pooled connection, start to finish.
pub(super) async fn call<C: ClientCodec>(
    inner: Arc<Inner<C>>,
    mut cx: Context,
    req: C::Req,
) -> Result<Response<C::Resp>, Status> {
    let answer = exchange(&inner, &mut cx, &req).await;
    match answer.and_then(|frame| super::decode(&inner, &mut cx, frame)) {
        Ok(message) => Ok(Response { cx, message }),
        // Unsent (no connection, or the server's "not processed"): the
        // request goes back to the caller, who may send it elsewhere.
        Err(status) => Err(super::hand_back(status, Some(cx), Some(req))),
    }
}

/// Write the request on a pooled connection and read its answer frame
/// (none for a one-way call).
async fn exchange<C: ClientCodec>(
    inner: &Inner<C>,
    cx: &mut Context,
    req: &C::Req,
) -> Result<Option<Bytes>, Status> {
    let cfg = &inner.cfg;
    let deadline = cx.deadline;
    let mut conn = inner.pool.checkout(cfg, deadline).await?;
    conn.seq = conn.seq.wrapping_add(1);
    let seq = conn.seq;
    cx.seq_id = seq;
    let frame =
        super::encode(inner, seq, cx, req).map_err(|s| s.with_delivery(Delivery::NotSent))?;
    let oneway = cx.oneway;
    let io = async {
        write(&mut conn, &frame, cfg).await?;
        if oneway {
            return Ok(None);
        }
        read(&mut conn, &*inner.codec, seq, cfg).await.map(Some)
    };
    let answer = match bounded(deadline, io).await {
        Some(r) => r?,
        None => {
            return Err(Status::deadline_exceeded(format!(
                "{} to {} timed out",
                cx.method, cfg.addr
            )))
        }
    };
    // A connection the server is draining carries no more calls.
    if conn.buf.is_empty() && !answer.as_ref().is_some_and(|a| inner.codec.closing(a)) {
        inner.pool.checkin(conn, cfg);
    }
    Ok(answer)
}

async fn write(conn: &mut PooledConn, frame: &Bytes, cfg: &ClientBuilder) -> Result<(), Status> {
    match tokio::time::timeout(cfg.limits.write_timeout, conn.stream.write_all(frame)).await {
        Ok(r) => r.map_err(|e| Status::from_io(e, Delivery::MaybeSent)),
        Err(_) => Err(Status::unavailable(format!(
            "writing to {} made no progress for {:?}",
            cfg.addr, cfg.limits.write_timeout
        ))),
    }
}

async fn read<C: ClientCodec>(
    conn: &mut PooledConn,
    codec: &C,
    seq: i32,
    cfg: &ClientBuilder,
) -> Result<Bytes, Status> {
    let max = cfg.limits.max_frame_len.saturating_add(64 * 1024);
    loop {
        if let Some((got, frame)) = codec
            .decode_frame(&mut conn.buf)
            .map_err(|s| s.with_delivery(Delivery::MaybeSent))?
        {
            if got != seq {
                return Err(Status::internal(format!(
                    "response sequence id {got} does not match request {seq}"
                )));
            }
            conn.answered = true;
            return Ok(frame);
        }
        if conn.buf.len() > max {
            return Err(Status::internal("response exceeds the frame limit"));
        }
        conn.buf.reserve(READ_CHUNK);
        let n = conn
            .stream
            .read_buf(&mut conn.buf)
            .await
            .map_err(|e| Status::from_io(e, Delivery::MaybeSent))?;
        if n == 0 {
            return Err(super::closed_before_answer(
                codec,
                &cfg.addr,
                !conn.answered,
            ));
        }
    }
}

// ===== the fast path =====

/// A pooled call on an idle connection that was at hand when it was made:
/// driven by the client's `ResponseFuture` itself, so it needs no future
/// (and no allocation) of its own. Calls that must wait for a connection
/// or open one take the boxed [`call`] instead.
pub(super) struct FastCall {
    conn: Option<PooledConn>,
    frame: Bytes,
    written: usize,
    reading: bool,
    seq: i32,
    /// Armed only when a write cannot finish at once (the rare case).
    write_timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl FastCall {
    /// Take the most recently used idle connection and encode the call for
    /// it; `None` when no idle connection is at hand.
    pub(super) fn start<C: ClientCodec>(
        inner: &Inner<C>,
        cx: &mut Context,
        req: &C::Req,
    ) -> Option<Result<FastCall, Status>> {
        let mut conn = inner.pool.take_idle(inner.cfg.idle_timeout)?;
        let seq = conn.seq.wrapping_add(1);
        cx.seq_id = seq;
        let frame = match super::encode(inner, seq, cx, req) {
            Ok(f) => f,
            Err(s) => {
                inner.pool.checkin(conn, &inner.cfg);
                return Some(Err(s.with_delivery(Delivery::NotSent)));
            }
        };
        conn.seq = seq;
        Some(Ok(FastCall {
            conn: Some(conn),
            frame,
            written: 0,
            reading: false,
            seq,
            write_timer: None,
        }))
    }

    /// Whether any of the request may have reached the server.
    pub(super) fn delivery(&self) -> Delivery {
        if self.written == 0 {
            Delivery::NotSent
        } else {
            Delivery::MaybeSent
        }
    }

    /// Write the request, then read the answer (none for one-way calls);
    /// on success the connection goes back to the pool.
    pub(super) fn poll<C: ClientCodec>(
        &mut self,
        inner: &Inner<C>,
        oneway: bool,
        tcx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Option<Bytes>, Status>> {
        use std::task::Poll;
        use tokio::io::AsyncWrite;
        let cfg = &inner.cfg;
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Err(Status::internal("polled after completion")));
        };
        while !self.reading {
            if self.written == self.frame.len() {
                self.reading = true;
                self.write_timer = None;
                if oneway {
                    return Poll::Ready(Ok(self.done(inner, None)));
                }
                break;
            }
            match std::pin::Pin::new(&mut conn.stream).poll_write(tcx, &self.frame[self.written..])
            {
                Poll::Ready(Ok(0)) => {
                    let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                    return Poll::Ready(Err(Status::from_io(e, self.delivery())));
                }
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(Status::from_io(e, self.delivery())));
                }
                Poll::Pending => {
                    let timer = self.write_timer.get_or_insert_with(|| {
                        Box::pin(tokio::time::sleep(cfg.limits.write_timeout))
                    });
                    if timer.as_mut().poll(tcx).is_ready() {
                        return Poll::Ready(Err(Status::unavailable(format!(
                            "writing to {} made no progress for {:?}",
                            cfg.addr, cfg.limits.write_timeout
                        ))
                        .with_delivery(self.delivery())));
                    }
                    return Poll::Pending;
                }
            }
        }
        let max = cfg.limits.max_frame_len.saturating_add(64 * 1024);
        loop {
            let decoded = inner
                .codec
                .decode_frame(&mut conn.buf)
                .map_err(|s| s.with_delivery(Delivery::MaybeSent));
            match decoded {
                Err(s) => return Poll::Ready(Err(s)),
                Ok(Some((got, frame))) => {
                    if got != self.seq {
                        return Poll::Ready(Err(Status::internal(format!(
                            "response sequence id {got} does not match request {}",
                            self.seq
                        ))));
                    }
                    conn.answered = true;
                    return Poll::Ready(Ok(self.done(inner, Some(frame))));
                }
                Ok(None) => {}
            }
            if conn.buf.len() > max {
                return Poll::Ready(Err(Status::internal("response exceeds the frame limit")));
            }
            conn.buf.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(
                std::pin::Pin::new(&mut conn.stream),
                tcx,
                &mut conn.buf,
            ) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(super::closed_before_answer(
                        &*inner.codec,
                        &cfg.addr,
                        !conn.answered,
                    )))
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(Status::from_io(e, Delivery::MaybeSent)))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The call is answered: the connection goes back unless it has bytes
    /// left over or the server is draining it.
    fn done<C: ClientCodec>(&mut self, inner: &Inner<C>, answer: Option<Bytes>) -> Option<Bytes> {
        if let Some(conn) = self.conn.take() {
            if conn.buf.is_empty() && !answer.as_ref().is_some_and(|a| inner.codec.closing(a)) {
                inner.pool.checkin(conn, &inner.cfg);
            }
        }
        answer
    }
}
