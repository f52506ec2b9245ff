//! The multiplexed connection: many calls in flight on one socket,
//! correlated by sequence id.
//!
//! Each call owns an entry in a slab of reusable slots; its sequence id is
//! the slot index plus a generation, so an answer to a slot that has since
//! been reused is recognised and dropped. One writer task batches queued
//! frames into vectored writes; one reader task delimits answers and hands
//! them to their slots. Callers poll their slot directly: no channel, no
//! task and no map entry per call.

use std::{
    collections::VecDeque,
    io::IoSlice,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{Notify, Semaphore},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::Inner;
use crate::{
    codec::ClientCodec,
    status::{Delivery, Status},
    transport::{Address, ReadHalf, Stream, WriteHalf},
};

/// Bits of a sequence id that hold the slot index; the rest (less the sign
/// bit, so ids stay positive for peers that dislike negative ones) hold the
/// slot's generation.
const INDEX_BITS: u32 = 16;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
const GEN_MASK: u32 = (1 << (31 - INDEX_BITS)) - 1;
/// The most calls one connection can tell apart with [`INDEX_BITS`].
pub(super) const MAX_SLOTS: usize = 1 << INDEX_BITS;
/// Frames handed to one vectored write: `IOV_MAX` is 1024 on Linux, but past
/// a few dozen the syscall saving is gone and the array lives on the stack.
const MAX_BATCH: usize = 64;
/// Read buffer growth step, and the spare room below which it grows.
const READ_CHUNK: usize = 16 * 1024;

// ===== impl MuxSlot =====

/// One of a client's connections to its peer, across reconnects: the
/// permits that bound its calls, the live connection, and the connect state.
pub(super) struct MuxSlot {
    /// One permit per call in flight on this slot's connection.
    pub(super) permits: Arc<Semaphore>,
    state: Mutex<SlotState>,
    /// Woken when a connect attempt finishes, whatever its outcome.
    connected: Notify,
}

struct SlotState {
    conn: Option<Arc<MuxConn>>,
    connecting: bool,
    /// The wait before the next attempt if this one fails.
    backoff: Duration,
    /// No attempt before this instant; calls fail fast until then.
    retry_at: Option<Instant>,
    last_error: Option<Status>,
}

impl MuxSlot {
    pub(super) fn new(max_pending: usize, backoff: Duration) -> MuxSlot {
        MuxSlot {
            permits: Arc::new(Semaphore::new(max_pending)),
            state: Mutex::new(SlotState {
                conn: None,
                connecting: false,
                backoff,
                retry_at: None,
                last_error: None,
            }),
            connected: Notify::new(),
        }
    }

    /// The open connection, if there is one: the fast path of every call.
    pub(super) fn ready_conn(&self) -> Option<Arc<MuxConn>> {
        let st = self.state.lock();
        st.conn.as_ref().filter(|c| c.is_open()).cloned()
    }

    pub(super) fn shutdown(&self) {
        if let Some(conn) = self.state.lock().conn.take() {
            conn.close(Status::unavailable("client closed"));
        }
    }
}

/// Wait for slot `index` of `inner` to have an open connection. At most one
/// connect is in flight per slot, in a task of its own so that no caller's
/// cancellation abandons it and no lock is held across it; the others wait
/// for its outcome. While backing off after a failure, calls fail at once.
pub(super) async fn connection<C: ClientCodec>(
    inner: Arc<Inner<C>>,
    index: usize,
) -> Result<Arc<MuxConn>, Status> {
    let slot = &inner.slots[index];
    loop {
        let notified = slot.connected.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = slot.state.lock();
            if let Some(c) = st.conn.as_ref().filter(|c| c.is_open()) {
                return Ok(c.clone());
            }
            if !st.connecting {
                if let Some(at) = st.retry_at {
                    if Instant::now() < at {
                        let cause = st
                            .last_error
                            .as_ref()
                            .map_or("unknown error", |s| s.message());
                        return Err(Status::unavailable(format!(
                            "connecting to {} failed ({cause}); backing off for {:?}",
                            inner.cfg.addr,
                            at.saturating_duration_since(Instant::now()),
                        ))
                        .with_delivery(Delivery::NotSent));
                    }
                }
                st.connecting = true;
                tokio::spawn(connect(inner.clone(), index));
            }
        }
        notified.await;
    }
}

async fn connect<C: ClientCodec>(inner: Arc<Inner<C>>, index: usize) {
    let cfg = &inner.cfg;
    tracing::debug!(target: "weft_core::client::connect", addr = %cfg.addr, "connecting");
    let result = cfg.connector.connect(&cfg.addr).await;
    let slot = &inner.slots[index];
    {
        let mut st = slot.state.lock();
        st.connecting = false;
        match result {
            Ok(stream) => {
                let conn = MuxConn::start(stream, inner.codec.clone(), cfg);
                if let Some(old) = st.conn.replace(conn) {
                    // A retiring connection finishes its calls; the server
                    // closes it when they are answered.
                    if !old.is_retiring() {
                        old.close(Status::unavailable("connection replaced"));
                    }
                }
                st.backoff = cfg.reconnect_backoff;
                st.retry_at = None;
                st.last_error = None;
            }
            Err(e) => {
                tracing::debug!(addr = %cfg.addr, error = %e, backoff = ?st.backoff, "connect failed");
                st.last_error = Some(Status::from_io(e, Delivery::NotSent));
                st.retry_at = Instant::now().checked_add(st.backoff);
                st.backoff = st.backoff.saturating_mul(2).min(cfg.max_reconnect_backoff);
            }
        }
    }
    slot.connected.notify_waiters();
}

// ===== impl MuxConn =====

/// One multiplexed connection and the calls on it.
pub(super) struct MuxConn {
    state: Mutex<ConnState>,
    /// Mirrors `state.closed.is_some()` so the fast path need not lock.
    closed: AtomicBool,
    /// The server asked for no more calls here (it is draining): calls in
    /// flight finish, new ones go to a new connection.
    retiring: AtomicBool,
    /// Wakes the writer: the queue went from empty to not.
    writable: Notify,
    stop: CancellationToken,
}

struct ConnState {
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Frames waiting for the writer, by slot index and generation; an entry
    /// whose call was cancelled is skipped (and compacted now and then).
    queue: VecDeque<(u32, u32)>,
    closed: Option<Status>,
}

struct Entry {
    gen: u32,
    state: EntryState,
}

enum EntryState {
    Free,
    /// Taken by a call that is encoding its frame.
    Reserved,
    /// Waiting for the writer.
    Queued {
        frame: Bytes,
        oneway: bool,
        waker: Option<Waker>,
    },
    /// In the writer's hands: some of it may be on the wire.
    Writing {
        oneway: bool,
        waker: Option<Waker>,
    },
    /// Written; waiting for the answer.
    Sent {
        waker: Option<Waker>,
    },
    /// The outcome, for the caller to take. `None` for a written one-way call.
    Done(Result<Option<Bytes>, Status>),
}

impl EntryState {
    fn take_waker(&mut self) -> Option<Waker> {
        match self {
            EntryState::Queued { waker, .. }
            | EntryState::Writing { waker, .. }
            | EntryState::Sent { waker } => waker.take(),
            _ => None,
        }
    }
}

fn seq_of(index: u32, gen: u32) -> i32 {
    ((gen << INDEX_BITS) | index) as i32
}

/// A call's claim on an entry; dropping it before the outcome was taken
/// cancels the call (a frame not yet written is never sent).
pub(super) struct MuxCall {
    conn: Arc<MuxConn>,
    index: u32,
    gen: u32,
    pub(super) seq: i32,
    finished: bool,
}

impl Drop for MuxCall {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.release(self.index, self.gen);
        }
    }
}

impl MuxCall {
    /// Poll for the outcome: the answer frame, `None` once a one-way frame
    /// is written, or the connection's error.
    pub(super) fn poll(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        let mut st = self.conn.state.lock();
        let entry = &mut st.entries[self.index as usize];
        debug_assert_eq!(entry.gen, self.gen);
        match &mut entry.state {
            EntryState::Done(_) => {
                let EntryState::Done(r) = std::mem::replace(&mut entry.state, EntryState::Free)
                else {
                    unreachable!()
                };
                free_entry(&mut st, self.index);
                self.finished = true;
                Poll::Ready(r)
            }
            EntryState::Queued { waker, .. }
            | EntryState::Writing { waker, .. }
            | EntryState::Sent { waker } => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            EntryState::Free | EntryState::Reserved => {
                Poll::Ready(Err(Status::internal("call slot in an impossible state")))
            }
        }
    }

    /// Give up on the call; says whether its frame may have left.
    pub(super) fn cancel(mut self) -> Delivery {
        self.finished = true;
        self.conn.release(self.index, self.gen)
    }
}

fn free_entry(st: &mut ConnState, index: u32) {
    let entry = &mut st.entries[index as usize];
    entry.state = EntryState::Free;
    entry.gen = match (entry.gen + 1) & GEN_MASK {
        0 => 1,
        g => g,
    };
    st.free.push(index);
}

impl MuxConn {
    fn start<C: ClientCodec>(
        stream: Stream,
        codec: Arc<C>,
        cfg: &super::ClientBuilder,
    ) -> Arc<MuxConn> {
        let conn = Arc::new(MuxConn {
            state: Mutex::new(ConnState {
                entries: Vec::new(),
                free: Vec::new(),
                queue: VecDeque::new(),
                closed: None,
            }),
            closed: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
            writable: Notify::new(),
            stop: CancellationToken::new(),
        });
        let (rd, wr) = stream.into_split();
        let max = cfg.limits.max_frame_len.saturating_add(64 * 1024);
        tokio::spawn(writer(
            conn.clone(),
            wr,
            cfg.limits.write_timeout,
            cfg.addr.clone(),
        ));
        tokio::spawn(reader(conn.clone(), rd, codec, max, cfg.addr.clone()));
        conn
    }

    pub(super) fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.retiring.load(Ordering::Acquire)
    }

    fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::Acquire)
    }

    /// Queue a call: take an entry, let `encode` build the frame for its
    /// sequence id (outside the lock), and hand the frame to the writer.
    pub(super) fn enqueue(
        self: Arc<Self>,
        oneway: bool,
        encode: impl FnOnce(i32) -> Result<Bytes, Status>,
    ) -> Result<MuxCall, Status> {
        let (index, gen) = {
            let mut st = self.state.lock();
            if let Some(err) = &st.closed {
                return Err(err.clone().with_delivery(Delivery::NotSent));
            }
            let index = match st.free.pop() {
                Some(i) => i,
                None if st.entries.len() < MAX_SLOTS => {
                    st.entries.push(Entry {
                        gen: 1,
                        state: EntryState::Free,
                    });
                    (st.entries.len() - 1) as u32
                }
                None => {
                    return Err(
                        Status::resource_exhausted("too many calls on one connection")
                            .with_delivery(Delivery::NotSent),
                    )
                }
            };
            let entry = &mut st.entries[index as usize];
            entry.state = EntryState::Reserved;
            (index, entry.gen)
        };
        let call = MuxCall {
            conn: self,
            index,
            gen,
            seq: seq_of(index, gen),
            finished: false,
        };
        let frame = encode(call.seq).map_err(|s| s.with_delivery(Delivery::NotSent))?;
        let wake = {
            let mut st = call.conn.state.lock();
            if let Some(err) = &st.closed {
                return Err(err.clone().with_delivery(Delivery::NotSent));
            }
            st.entries[index as usize].state = EntryState::Queued {
                frame,
                oneway,
                waker: None,
            };
            let was_empty = st.queue.is_empty();
            st.queue.push_back((index, gen));
            // Cancelled calls leave stale queue entries; drop them before they
            // outnumber the live ones.
            if st.queue.len() > 2 * st.entries.len().max(MAX_BATCH) {
                let ConnState { queue, entries, .. } = &mut *st;
                queue.retain(|&(i, g)| entries[i as usize].gen == g);
            }
            was_empty
        };
        if wake {
            call.conn.writable.notify_one();
        }
        Ok(call)
    }

    /// Free a call's entry; says whether its frame may have left.
    fn release(&self, index: u32, gen: u32) -> Delivery {
        let mut st = self.state.lock();
        let entry = &mut st.entries[index as usize];
        if entry.gen != gen {
            return Delivery::MaybeSent;
        }
        let delivery = match entry.state {
            EntryState::Reserved | EntryState::Queued { .. } => Delivery::NotSent,
            _ => Delivery::MaybeSent,
        };
        free_entry(&mut st, index);
        delivery
    }

    /// The answer with sequence id `seq` arrived.
    fn complete(&self, seq: i32) -> Option<CompleteSlot<'_>> {
        let seq = seq as u32;
        let (index, gen) = (seq & INDEX_MASK, (seq >> INDEX_BITS) & GEN_MASK);
        let st = self.state.lock();
        match st.entries.get(index as usize) {
            Some(e)
                if e.gen == gen
                    && matches!(
                        e.state,
                        EntryState::Sent { .. } | EntryState::Writing { oneway: false, .. }
                    ) =>
            {
                Some(CompleteSlot { st, index })
            }
            _ => None,
        }
    }

    /// Fail every call with `status` and stop both tasks. Calls whose frame
    /// was never handed to the writer learn that nothing was sent.
    pub(super) fn close(&self, status: Status) {
        let mut wakers = Vec::new();
        {
            let mut st = self.state.lock();
            if st.closed.is_none() {
                st.closed = Some(status.clone());
            }
            self.closed.store(true, Ordering::Release);
            st.queue.clear();
            for e in &mut st.entries {
                let delivery = match e.state {
                    EntryState::Queued { .. } => Delivery::NotSent,
                    EntryState::Writing { .. } | EntryState::Sent { .. } => Delivery::MaybeSent,
                    _ => continue,
                };
                wakers.extend(e.state.take_waker());
                e.state = EntryState::Done(Err(status.clone().with_delivery(delivery)));
            }
        }
        self.stop.cancel();
        self.writable.notify_one();
        for w in wakers {
            w.wake();
        }
    }
}

struct CompleteSlot<'a> {
    st: parking_lot::MutexGuard<'a, ConnState>,
    index: u32,
}

impl CompleteSlot<'_> {
    fn set(mut self, frame: Bytes) {
        let entry = &mut self.st.entries[self.index as usize];
        let waker = entry.state.take_waker();
        entry.state = EntryState::Done(Ok(Some(frame)));
        drop(self.st);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

// ===== the connection's tasks =====

async fn writer(conn: Arc<MuxConn>, mut wr: WriteHalf, write_timeout: Duration, addr: Address) {
    let mut frames: Vec<Bytes> = Vec::with_capacity(MAX_BATCH);
    let mut ids: Vec<(u32, u32)> = Vec::with_capacity(MAX_BATCH);
    let mut wakers: Vec<Waker> = Vec::new();
    loop {
        {
            let mut st = conn.state.lock();
            if st.closed.is_some() {
                break;
            }
            while frames.len() < MAX_BATCH {
                let Some((i, g)) = st.queue.pop_front() else {
                    break;
                };
                let entry = &mut st.entries[i as usize];
                if entry.gen != g {
                    continue;
                }
                if let EntryState::Queued { .. } = entry.state {
                    let EntryState::Queued {
                        frame,
                        oneway,
                        waker,
                    } = std::mem::replace(&mut entry.state, EntryState::Free)
                    else {
                        unreachable!()
                    };
                    entry.state = EntryState::Writing { oneway, waker };
                    frames.push(frame);
                    ids.push((i, g));
                }
            }
        }
        if frames.is_empty() {
            tokio::select! {
                _ = conn.writable.notified() => continue,
                _ = conn.stop.cancelled() => break,
            }
        }
        match write_batch(&mut wr, &mut frames, write_timeout, &addr).await {
            Ok(()) => {
                let mut st = conn.state.lock();
                for (i, g) in ids.drain(..) {
                    let entry = &mut st.entries[i as usize];
                    if entry.gen != g {
                        continue;
                    }
                    match &mut entry.state {
                        EntryState::Writing {
                            oneway: true,
                            waker,
                        } => {
                            wakers.extend(waker.take());
                            entry.state = EntryState::Done(Ok(None));
                        }
                        EntryState::Writing {
                            oneway: false,
                            waker,
                        } => {
                            let waker = waker.take();
                            entry.state = EntryState::Sent { waker };
                        }
                        _ => {}
                    }
                }
            }
            Err((status, started)) => {
                // Frames after the one being written never left.
                let mut st = conn.state.lock();
                for &(i, g) in &ids[started.min(ids.len())..] {
                    let entry = &mut st.entries[i as usize];
                    if entry.gen == g && matches!(entry.state, EntryState::Writing { .. }) {
                        wakers.extend(entry.state.take_waker());
                        entry.state =
                            EntryState::Done(Err(status.clone().with_delivery(Delivery::NotSent)));
                    }
                }
                drop(st);
                conn.close(status);
                break;
            }
        }
        for w in wakers.drain(..) {
            w.wake();
        }
    }
    for w in wakers.drain(..) {
        w.wake();
    }
    let _ = wr.shutdown().await;
}

/// Write every frame in `frames` with as few syscalls as the kernel allows,
/// without copying them into one buffer. A write that makes no progress
/// for `timeout` fails; the error says how many frames may have started.
async fn write_batch(
    wr: &mut WriteHalf,
    frames: &mut Vec<Bytes>,
    timeout: Duration,
    addr: &Address,
) -> Result<(), (Status, usize)> {
    let mut first = 0;
    while first < frames.len() {
        let mut iov = [IoSlice::new(&[]); MAX_BATCH];
        let mut count = 0;
        for (slot, frame) in iov.iter_mut().zip(&frames[first..]) {
            *slot = IoSlice::new(frame);
            count += 1;
        }
        let n = match tokio::time::timeout(timeout, wr.write_vectored(&iov[..count])).await {
            Ok(Ok(0)) => {
                let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                return Err((Status::from_io(e, Delivery::MaybeSent), first + 1));
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err((Status::from_io(e, Delivery::MaybeSent), first + 1)),
            Err(_) => {
                let status = Status::unavailable(format!(
                    "writing to {addr} made no progress for {timeout:?}; connection closed"
                ));
                return Err((status, first + 1));
            }
        };
        let mut n = n;
        while n > 0 {
            let len = frames[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                frames[first].advance(n);
                n = 0;
            }
        }
    }
    frames.clear();
    Ok(())
}

async fn reader<C: ClientCodec>(
    conn: Arc<MuxConn>,
    mut rd: ReadHalf,
    codec: Arc<C>,
    max: usize,
    addr: Address,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut answered = false;
    let status = loop {
        match codec.decode_frame(&mut buf) {
            Ok(Some((seq, frame))) => {
                answered = true;
                if codec.closing(&frame) && !conn.is_retiring() {
                    tracing::debug!(
                        "the server is draining the connection; new calls go elsewhere"
                    );
                    conn.retiring.store(true, Ordering::Release);
                }
                match conn.complete(seq) {
                    Some(slot) => slot.set(frame),
                    None => tracing::debug!(seq, "answer to an unknown or abandoned call"),
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
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            _ = conn.stop.cancelled() => break Status::unavailable("connection closed"),
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => break super::closed_before_answer(&*codec, &addr, !answered),
                Ok(_) => {}
                Err(e) => break Status::from_io(e, Delivery::MaybeSent),
            },
        }
    };
    conn.close(status);
}
