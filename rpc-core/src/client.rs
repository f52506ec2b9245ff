//! The client: a `tower::Service` over one peer, with multiplexed or pooled
//! connections.
//!
//! *Multiplexed*: many calls in flight on one connection, correlated by
//! sequence id, one writer task that batches frames and one reader task that
//! routes responses. For peers that answer out of order (TTHeader).
//! *Pooled*: one call at a time per connection, idle connections kept in a
//! bounded lock-free pool. For plain framed or buffered Thrift peers.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicI32, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::{
    codec::ClientCodec,
    context::Context,
    limits::Limits,
    message::{Request, Response},
    server::write_all_vectored,
    status::{Delivery, Status},
    transport::{Address, Connector, ReadHalf, Stream, WriteHalf},
};

/// How a client uses connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionMode {
    /// Many calls in flight on one connection (TTHeader peers).
    Multiplexed,
    /// One call at a time per connection, idle ones pooled.
    Pooled,
}

/// Idle connections a pooled client keeps by default: enough that a burst
/// of concurrent callers does not close and reopen connections on check-in.
pub const DEFAULT_MAX_IDLE: usize = 1024;
/// Time an idle pooled connection is kept by default; servers commonly close
/// idle connections after a minute or more, so this stays below that.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures a [`Client`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    addr: Address,
    mode: ConnectionMode,
    connector: Connector,
    limits: Limits,
    max_idle: usize,
    idle_timeout: Duration,
    timeout: Option<Duration>,
}

impl ClientBuilder {
    /// A client of the server at `addr`.
    pub fn new(addr: Address) -> Self {
        ClientBuilder {
            addr,
            mode: ConnectionMode::Multiplexed,
            connector: Connector::default(),
            limits: Limits::default(),
            max_idle: DEFAULT_MAX_IDLE,
            idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            timeout: None,
        }
    }

    /// Connection mode. Default [`ConnectionMode::Multiplexed`].
    pub fn mode(mut self, mode: ConnectionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Socket options and connect timeout. Default [`Connector::default`].
    pub fn connector(mut self, connector: Connector) -> Self {
        self.connector = connector;
        self
    }

    /// Wire limits for responses. Default [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Idle connections kept by a pooled client. Default 1024.
    pub fn max_idle(mut self, n: usize) -> Self {
        self.max_idle = n.max(1);
        self
    }

    /// How long a pooled connection may stay idle. Default 30 s.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Timeout of a call that sets no deadline of its own. Default none.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// The limits this builder will use (codecs take them too).
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }

    /// Build the client around `codec`. Connections open on first use.
    pub fn build<C: ClientCodec>(self, codec: C) -> Client<C> {
        Client {
            inner: Arc::new(Inner {
                codec: Arc::new(codec),
                pool: ArrayQueue::new(self.max_idle),
                mux: tokio::sync::Mutex::new(None),
                mux_fast: Mutex::new(None),
                cfg: self,
            }),
        }
    }
}

/// A client of one server: a `tower::Service` from `Request<C::Req>` to
/// `Response<C::Resp>`. Cheap to clone; clones share connections.
pub struct Client<C: ClientCodec> {
    inner: Arc<Inner<C>>,
}

impl<C: ClientCodec> Clone for Client<C> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
        }
    }
}

impl<C: ClientCodec> fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.cfg.addr)
            .field("mode", &self.inner.cfg.mode)
            .finish()
    }
}

struct Inner<C> {
    codec: Arc<C>,
    cfg: ClientBuilder,
    pool: ArrayQueue<PooledConn>,
    // Serialises connecting so a burst of first calls opens one connection.
    mux: tokio::sync::Mutex<Option<Arc<MuxConn>>>,
    mux_fast: Mutex<Option<Arc<MuxConn>>>,
}

/// The future of a client call.
pub struct ResponseFuture<T> {
    inner: Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>,
}

impl<T> fmt::Debug for ResponseFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<T> Future for ResponseFuture<T> {
    type Output = Result<T, Status>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<C: ClientCodec> Service<Request<C::Req>> for Client<C> {
    type Response = Response<C::Resp>;
    type Error = Status;
    type Future = ResponseFuture<Response<C::Resp>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<C::Req>) -> Self::Future {
        let inner = self.inner.clone();
        ResponseFuture {
            inner: Box::pin(async move { inner.call(req).await }),
        }
    }
}

impl<C: ClientCodec> Client<C> {
    /// The server this client talks to.
    pub fn address(&self) -> &Address {
        &self.inner.cfg.addr
    }

    /// The codec, for typed wrappers.
    pub fn codec(&self) -> &C {
        &self.inner.codec
    }
}

impl<C: ClientCodec> Inner<C> {
    async fn call(&self, req: Request<C::Req>) -> Result<Response<C::Resp>, Status> {
        let Request { mut cx, message } = req;
        if cx.deadline.is_none() {
            if let Some(t) = self.cfg.timeout {
                cx.deadline = Some(Instant::now() + t);
            }
        }
        if cx.is_expired() {
            return Err(
                Status::deadline_exceeded("deadline passed before the call was sent")
                    .with_delivery(Delivery::NotSent),
            );
        }
        let deadline = cx.deadline;
        let work = async {
            match self.cfg.mode {
                ConnectionMode::Multiplexed => self.call_mux(&mut cx, &message).await,
                ConnectionMode::Pooled => self.call_pooled(&mut cx, &message).await,
            }
        };
        let frame = match deadline {
            Some(d) => match tokio::time::timeout_at(d, work).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "{} timed out",
                        cx.method
                    )))
                }
            },
            None => work.await?,
        };
        cx.peer = Some(self.cfg.addr.clone());
        let message = match frame {
            Some(frame) => self.codec.decode(&mut cx, frame)?,
            None => self.codec.oneway_response(&cx)?,
        };
        Ok(Response { cx, message })
    }

    // ===== multiplexed =====

    async fn mux_conn(&self) -> Result<Arc<MuxConn>, Status> {
        if let Some(c) = self.mux_fast.lock().as_ref() {
            if c.is_open() {
                return Ok(c.clone());
            }
        }
        let mut slot = self.mux.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.is_open() {
                return Ok(c.clone());
            }
        }
        let stream = self
            .cfg
            .connector
            .connect(&self.cfg.addr)
            .await
            .map_err(|e| Status::from_io(e, Delivery::NotSent))?;
        let max = self.cfg.limits.max_frame_len.saturating_add(64 * 1024);
        let conn = MuxConn::start(stream, self.codec.clone(), max);
        if let Some(old) = slot.replace(conn.clone()) {
            old.stop.cancel();
        }
        *self.mux_fast.lock() = Some(conn.clone());
        Ok(conn)
    }

    async fn call_mux(&self, cx: &mut Context, req: &C::Req) -> Result<Option<Bytes>, Status> {
        let conn = self.mux_conn().await?;
        let seq = conn.next_seq();
        cx.seq_id = seq;
        let frame = self
            .codec
            .encode(seq, cx, req)
            .map_err(|s| s.with_delivery(Delivery::NotSent))?;
        if cx.oneway {
            conn.send(frame)?;
            return Ok(None);
        }
        let rx = conn.register(seq)?;
        let guard = PendingGuard { conn: &conn, seq };
        conn.send(frame)?;
        let result = match rx.await {
            Ok(r) => r,
            Err(_) => Err(Status::unavailable("connection closed")),
        };
        std::mem::forget(guard);
        result.map(Some)
    }

    // ===== pooled =====

    async fn call_pooled(&self, cx: &mut Context, req: &C::Req) -> Result<Option<Bytes>, Status> {
        let mut conn = match self.checkout() {
            Some(c) => c,
            None => PooledConn {
                stream: self
                    .cfg
                    .connector
                    .connect(&self.cfg.addr)
                    .await
                    .map_err(|e| Status::from_io(e, Delivery::NotSent))?,
                buf: BytesMut::with_capacity(8 * 1024),
                last_used: Instant::now(),
                seq: 0,
            },
        };
        conn.seq = conn.seq.wrapping_add(1);
        let seq = conn.seq;
        cx.seq_id = seq;
        let frame = self
            .codec
            .encode(seq, cx, req)
            .map_err(|s| s.with_delivery(Delivery::NotSent))?;
        conn.stream
            .write_all(&frame)
            .await
            .map_err(|e| Status::from_io(e, Delivery::MaybeSent))?;
        if cx.oneway {
            self.checkin(conn);
            return Ok(None);
        }
        loop {
            if let Some((got, frame)) = self
                .codec
                .decode_frame(&mut conn.buf)
                .map_err(|s| s.with_delivery(Delivery::MaybeSent))?
            {
                if got != seq {
                    return Err(Status::internal(format!(
                        "response sequence id {got} does not match request {seq}"
                    )));
                }
                if conn.buf.is_empty() {
                    self.checkin(conn);
                }
                return Ok(Some(frame));
            }
            if conn.buf.len() > self.cfg.limits.max_frame_len.saturating_add(64 * 1024) {
                return Err(Status::internal("response exceeds the frame limit"));
            }
            conn.buf.reserve(8 * 1024);
            let n = conn
                .stream
                .read_buf(&mut conn.buf)
                .await
                .map_err(|e| Status::from_io(e, Delivery::MaybeSent))?;
            if n == 0 {
                return Err(Status::unavailable(
                    "server closed the connection before answering",
                ));
            }
        }
    }

    fn checkout(&self) -> Option<PooledConn> {
        while let Some(conn) = self.pool.pop() {
            if conn.last_used.elapsed() > self.cfg.idle_timeout {
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
        None
    }

    fn checkin(&self, mut conn: PooledConn) {
        conn.last_used = Instant::now();
        let _ = self.pool.push(conn);
    }
}

struct PooledConn {
    stream: Stream,
    buf: BytesMut,
    last_used: Instant,
    seq: i32,
}

impl<C> Drop for Inner<C> {
    fn drop(&mut self) {
        // The last handle is gone: close the multiplexed connection too.
        if let Some(c) = self.mux_fast.get_mut().take() {
            c.stop.cancel();
        }
    }
}

type Pending = HashMap<i32, oneshot::Sender<Result<Bytes, Status>>>;

struct MuxState {
    pending: Pending,
    closed: Option<Status>,
}

struct MuxConn {
    tx: mpsc::UnboundedSender<Bytes>,
    stop: CancellationToken,
    state: Mutex<MuxState>,
    next_seq: AtomicI32,
}

/// Removes a pending call's entry if its future is dropped (timeout,
/// cancellation), so late responses are discarded and nothing leaks.
struct PendingGuard<'a> {
    conn: &'a MuxConn,
    seq: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.conn.state.lock().pending.remove(&self.seq);
    }
}

impl MuxConn {
    fn start<C: ClientCodec>(stream: Stream, codec: Arc<C>, max_buffer: usize) -> Arc<MuxConn> {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Arc::new(MuxConn {
            tx,
            stop: CancellationToken::new(),
            state: Mutex::new(MuxState {
                pending: HashMap::new(),
                closed: None,
            }),
            next_seq: AtomicI32::new(1),
        });
        let (rd, wr) = stream.into_split();
        tokio::spawn(mux_writer(wr, rx, Arc::downgrade(&conn)));
        tokio::spawn(mux_reader(rd, codec, conn.clone(), max_buffer));
        conn
    }

    fn is_open(&self) -> bool {
        self.state.lock().closed.is_none()
    }

    fn next_seq(&self) -> i32 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn register(&self, seq: i32) -> Result<oneshot::Receiver<Result<Bytes, Status>>, Status> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.lock();
        if let Some(err) = &st.closed {
            return Err(err.clone().with_delivery(Delivery::NotSent));
        }
        st.pending.insert(seq, tx);
        Ok(rx)
    }

    fn send(&self, frame: Bytes) -> Result<(), Status> {
        self.tx
            .send(frame)
            .map_err(|_| Status::unavailable("connection closed").with_delivery(Delivery::NotSent))
    }

    fn close(&self, status: Status) {
        let pending = {
            let mut st = self.state.lock();
            if st.closed.is_none() {
                st.closed = Some(status.clone());
            }
            std::mem::take(&mut st.pending)
        };
        for (_, tx) in pending {
            let _ = tx.send(Err(status.clone()));
        }
    }
}

async fn mux_writer(
    mut wr: WriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    conn: std::sync::Weak<MuxConn>,
) {
    const MAX_BATCH: usize = 64;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        if let Err(e) = write_all_vectored(&mut wr, &mut batch).await {
            if let Some(conn) = conn.upgrade() {
                conn.close(Status::from_io(e, Delivery::MaybeSent));
            }
            return;
        }
    }
}

async fn mux_reader<C: ClientCodec>(
    mut rd: ReadHalf,
    codec: Arc<C>,
    conn: Arc<MuxConn>,
    max: usize,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let status = loop {
        match codec.decode_frame(&mut buf) {
            Ok(Some((seq, frame))) => {
                let tx = conn.state.lock().pending.remove(&seq);
                match tx {
                    Some(tx) => {
                        let _ = tx.send(Ok(frame));
                    }
                    None => tracing::debug!(seq, "response for an unknown or abandoned call"),
                }
                continue;
            }
            Ok(None) => {}
            Err(status) => break status,
        }
        if buf.len() > max {
            break Status::internal("response exceeds the frame limit");
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        tokio::select! {
            _ = conn.stop.cancelled() => break Status::unavailable("client closed"),
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => break Status::unavailable("server closed the connection"),
                Ok(_) => {}
                Err(e) => break Status::from_io(e, Delivery::MaybeSent),
            },
        }
    };
    conn.close(status);
}
