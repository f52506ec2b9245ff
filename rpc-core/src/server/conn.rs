//! One server connection, driven by one task: it reads frames, runs their
//! handlers in place, encodes the answers into one write buffer and writes
//! them, under every bound the server sets.
//!
//! A request holds its permits (a slot among the connection's and the
//! server's requests in flight, and its frame's bytes) from the moment it is
//! decoded until its answer has been handed to the kernel. A peer that does
//! not read therefore stops being read: backpressure, not buffering.
//!
//! The life of a connection: *serving*; *draining* once shutdown starts
//! (still reading: calls in flight finish, new ones are refused "not
//! processed"); *closing* (nothing new is read, calls in flight finish,
//! their answers are written); *shutting down* its write side;
//! *lingering* (reading and discarding, so unread bytes do not make the
//! kernel reset the connection and lose answers the peer has not read);
//! done.

use std::{
    collections::VecDeque,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

use bytes::{BufMut, BytesMut};
use futures::{stream::FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use tokio::{
    io::AsyncWrite,
    sync::OwnedSemaphorePermit,
    task::JoinHandle,
    time::{Instant, Sleep},
};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tower::Service;

use super::{
    protocol::{Accepted, Shutdown, Sniffed},
    write::WriteBuf,
    Shared,
};
use crate::{
    codec::{Inbound, ServerCodec},
    message::{Request, Response},
    status::{Code, Delivery, Status},
    transport::{Address, Stream},
    wire::{self, SizeSink},
};

/// Bytes read at most per read, and the step the read buffer grows by:
/// small frames from many reads share one allocation.
const READ_CHUNK: usize = 64 * 1024;

/// Past this many unwritten bytes, nothing more is read until the peer
/// takes some: answers to what is in flight still go out.
const WRITE_HIGH_WATER: usize = 256 * 1024;

/// Serve one connection until it closes.
pub(super) async fn serve<C, S>(
    stream: Stream,
    peer: Option<Address>,
    codec: C,
    service: S,
    shared: Arc<Shared>,
    slot: OwnedSemaphorePermit,
) where
    C: ServerCodec,
    S: Service<Request<C::Req>, Response = Response<C::Resp>, Error = Status> + Send + 'static,
    S::Future: Send + 'static,
{
    let (stream, rbuf) = match shared.protocols.sniff(stream, &shared).await {
        Sniffed::Codec(stream, rbuf) => (stream, rbuf),
        Sniffed::Protocol(protocol, io) => {
            let accepted = Accepted {
                io,
                peer,
                limits: shared.limits.clone(),
                shutdown: Shutdown::new(&shared),
                linger: shared.linger,
            };
            protocol.serve(accepted).await;
            drop(slot);
            return;
        }
        Sniffed::Gone => return,
    };
    let mut conn = Conn::new(stream, rbuf, peer, codec, service, shared);
    std::future::poll_fn(|cx| conn.poll(cx)).await;
    drop(conn);
    drop(slot);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Serving,
    Draining { last_request: Instant },
    Closing,
    ShuttingDown,
    Lingering { until: Instant },
    Done,
}

/// An answer that is ready but waits for earlier ones (ordered transports).
struct Parked<R, T> {
    reply: R,
    result: Result<T, Status>,
    bytes: usize,
    sizes: Option<SizeSink>,
}

type CallOf<C, S> = Call<
    <S as Service<Request<<C as ServerCodec>::Req>>>::Future,
    Response<<C as ServerCodec>::Resp>,
    <C as ServerCodec>::Reply,
>;
type FinishedOf<C> = Finished<Response<<C as ServerCodec>::Resp>, <C as ServerCodec>::Reply>;
type ParkedOf<C> = Parked<<C as ServerCodec>::Reply, Response<<C as ServerCodec>::Resp>>;

struct Conn<C, S>
where
    C: ServerCodec,
    S: Service<Request<C::Req>, Response = Response<C::Resp>, Error = Status>,
{
    io: Stream,
    peer: Option<Address>,
    codec: C,
    service: S,
    service_ready: bool,
    shared: Arc<Shared>,
    state: State,

    rbuf: BytesMut,
    eof: bool,
    frame_started: Option<Instant>,
    wbuf: WriteBuf,

    /// One call runs in a slot of the connection's own, reused call after
    /// call: a handler that is ready at once (or the only call in flight)
    /// costs no allocation. Calls that overlap it go to `calls`.
    inline: Pin<Box<Option<CallOf<C, S>>>>,
    calls: FuturesUnordered<CallOf<C, S>>,
    /// Known from the first frame: answers must go out in request order.
    ordered: Option<bool>,
    parked: VecDeque<Option<ParkedOf<C>>>,
    next_index: u64,
    next_answer: u64,

    /// Requests decoded whose life has not ended (answer written, one-way
    /// call finished), and their frames' bytes.
    open: usize,
    open_bytes: usize,
    /// Bytes charged to the server's budget: what the read buffer, the open
    /// requests and the write buffer hold, given back in large steps.
    charged: usize,
    budget_wait: Option<u64>,
    /// Reading waits for this connection's own byte bound, not for the
    /// peer: the read timeout does not run.
    read_held: bool,
    /// Whole frames may wait in the read buffer (for a request slot, for
    /// the service to be ready): nothing more is read, and the peer is not
    /// timed out for it.
    decode_held: bool,
    /// This connection holds the server's one pass to finish a frame past
    /// the byte bound.
    finishing_frame: bool,

    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    graceful: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    hard: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// The waker the shutdown futures last saw.
    signal_waker: Option<Waker>,
}

impl<C, S> Conn<C, S>
where
    C: ServerCodec,
    S: Service<Request<C::Req>, Response = Response<C::Resp>, Error = Status> + Send + 'static,
    S::Future: Send + 'static,
{
    fn new(
        io: Stream,
        rbuf: BytesMut,
        peer: Option<Address>,
        codec: C,
        service: S,
        shared: Arc<Shared>,
    ) -> Self {
        let now = Instant::now();
        Conn {
            io,
            peer,
            codec,
            service,
            service_ready: false,
            graceful: Some(Box::pin(shared.graceful.clone().cancelled_owned())),
            hard: Some(Box::pin(shared.hard.clone().cancelled_owned())),
            signal_waker: None,
            shared,
            state: State::Serving,
            rbuf,
            eof: false,
            frame_started: None,
            wbuf: WriteBuf::default(),
            inline: Box::pin(None),
            calls: FuturesUnordered::new(),
            ordered: None,
            parked: VecDeque::new(),
            next_index: 0,
            next_answer: 0,
            open: 0,
            open_bytes: 0,
            charged: 0,
            budget_wait: None,
            read_held: false,
            decode_held: false,
            finishing_frame: false,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed: None,
        }
    }

    fn poll(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        loop {
            let now = Instant::now();
            self.poll_signals(cx, now);
            let mut progress = self.poll_calls(cx, now);
            progress |= self.admit(cx, now);
            match self.poll_write(cx, now) {
                Ok(p) => progress |= p,
                Err(()) => self.state = State::Done,
            }
            match self.poll_read(cx, now) {
                Ok(p) => progress |= p,
                Err(()) => self.state = State::Done,
            }
            progress |= self.advance_state(cx, now, progress);
            self.sync_budget();
            if self.state == State::Done {
                return Poll::Ready(());
            }
            if progress {
                continue;
            }
            if self.poll_timer(cx, now) {
                continue;
            }
            return Poll::Pending;
        }
    }

    // ===== shutdown signals =====

    fn poll_signals(&mut self, cx: &mut TaskContext<'_>, now: Instant) {
        // Nothing fired, and the futures hold this task's waker already.
        let same_waker = self
            .signal_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        if same_waker && !self.shared.signalled.load(Ordering::Acquire) {
            return;
        }
        if !same_waker {
            self.signal_waker = Some(cx.waker().clone());
        }
        if let Some(g) = &mut self.graceful {
            if g.as_mut().poll(cx).is_ready() {
                self.graceful = None;
                if self.state == State::Serving {
                    self.state = State::Draining { last_request: now };
                }
            }
        }
        if let Some(h) = &mut self.hard {
            if h.as_mut().poll(cx).is_ready() {
                self.hard = None;
                self.cancel_calls(now);
                if matches!(self.state, State::Serving | State::Draining { .. }) {
                    self.state = State::Closing;
                }
            }
        }
    }

    /// The drain deadline passed: drop every handler and answer its call
    /// with a definite error (it may have done its work).
    fn cancel_calls(&mut self, now: Instant) {
        let mut cancelled = Vec::new();
        let mut oneway = (0, 0);
        let inline = self.inline.as_mut().as_pin_mut();
        for call in Pin::new(&mut self.calls).iter_pin_mut().chain(inline) {
            let call = call.project();
            match call.reply.take() {
                Some(reply) => {
                    cancelled.push((*call.index, reply, (*call.bytes, call.sizes.take())))
                }
                None => {
                    oneway.0 += 1;
                    oneway.1 += *call.bytes;
                }
            }
        }
        self.calls.clear();
        self.inline.set(None);
        self.release(oneway.0, oneway.1);
        cancelled.sort_by_key(|c| c.0);
        for (index, reply, held) in cancelled {
            let status = Status::unavailable("the server shut down before the call finished");
            self.deliver(index, reply, Err(status), held, now);
        }
    }

    // ===== handlers =====

    fn poll_calls(&mut self, cx: &mut TaskContext<'_>, now: Instant) -> bool {
        let mut progress = false;
        if let Some(call) = self.inline.as_mut().as_pin_mut() {
            if let Poll::Ready(done) = call.poll(cx) {
                self.inline.set(None);
                self.finish(done, now);
                progress = true;
            }
        }
        while let Poll::Ready(Some(done)) = self.calls.poll_next_unpin(cx) {
            self.finish(done, now);
            progress = true;
        }
        progress
    }

    fn finish(&mut self, mut done: FinishedOf<C>, now: Instant) {
        {
            self.last_activity = now;
            if let Err(status) = &mut done.result {
                // Only the server's own refusals travel as "not processed";
                // a handler that returns a downstream call's NotSent error
                // may have done its work before that call.
                if status.is_not_sent() && !status.is_refusal() {
                    *status = std::mem::replace(status, Status::unknown(""))
                        .with_delivery(Delivery::MaybeSent);
                }
            }
            match done.reply {
                None => self.release(1, done.bytes),
                Some(reply) => self.deliver(
                    done.index,
                    reply,
                    done.result,
                    (done.bytes, done.sizes),
                    now,
                ),
            }
        }
    }

    /// Hand an answer to the write buffer, in request order where the
    /// transport needs it. An answer that cannot be encoded at all (not
    /// even as an error) ends its request here and closes the connection:
    /// its peer would wait for it forever, or lose its place in the order.
    fn deliver(
        &mut self,
        index: u64,
        reply: C::Reply,
        result: Result<Response<C::Resp>, Status>,
        (bytes, sizes): (usize, Option<SizeSink>),
        now: Instant,
    ) {
        if self.ordered != Some(true) {
            self.encode(reply, result, bytes, sizes, now);
            return;
        }
        let slot = (index - self.next_answer) as usize;
        while self.parked.len() <= slot {
            self.parked.push_back(None);
        }
        self.parked[slot] = Some(Parked {
            reply,
            result,
            bytes,
            sizes,
        });
        while let Some(Some(_)) = self.parked.front() {
            let Some(Some(p)) = self.parked.pop_front() else {
                break;
            };
            self.next_answer += 1;
            self.encode(p.reply, p.result, p.bytes, p.sizes, now);
        }
    }

    fn encode(
        &mut self,
        reply: C::Reply,
        result: Result<Response<C::Resp>, Status>,
        bytes: usize,
        sizes: Option<SizeSink>,
        now: Instant,
    ) {
        let closing = self.state != State::Serving;
        let encoded = self.wbuf.answer::<C>(reply, result, closing, bytes, now);
        if let (Some(sizes), Some(n)) = (sizes, encoded) {
            sizes.response(n);
        }
        if encoded.is_none() {
            tracing::warn!(peer = ?self.peer, "an answer could not be encoded; closing the connection");
            self.release(1, bytes);
            if matches!(self.state, State::Serving | State::Draining { .. }) {
                self.state = State::Closing;
            }
        }
    }

    /// A request's life ended: give back what it held.
    fn release(&mut self, requests: usize, bytes: usize) {
        if requests == 0 && bytes == 0 {
            return;
        }
        self.open -= requests;
        self.open_bytes -= bytes;
        self.shared.budget.give(requests, 0);
    }

    // ===== reading and decoding =====

    fn reads_requests(&self) -> bool {
        matches!(self.state, State::Serving | State::Draining { .. })
    }

    /// Decode and start what the read buffer holds, while the bounds allow.
    fn admit(&mut self, cx: &mut TaskContext<'_>, now: Instant) -> bool {
        let max_open = self.shared.limits.max_in_flight_per_connection.max(1);
        let mut progress = false;
        let mut consumed = false;
        self.decode_held = false;
        while !self.rbuf.is_empty() && self.reads_requests() {
            if self.open >= max_open {
                self.decode_held = true;
                break;
            }
            if !self.service_ready {
                match self.service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => self.service_ready = true,
                    Poll::Ready(Err(status)) => {
                        tracing::warn!(peer = ?self.peer, %status, "service failed; closing the connection");
                        self.state = State::Closing;
                        break;
                    }
                    Poll::Pending => {
                        self.decode_held = true;
                        break;
                    }
                }
            }
            if !self.take_request_slot(cx) {
                self.decode_held = true;
                break;
            }
            let before = self.rbuf.len();
            let inbound = match self.codec.decode(&mut self.rbuf) {
                Ok(Some(inbound)) => inbound,
                Ok(None) => {
                    self.shared.budget.give(1, 0);
                    break;
                }
                Err(status) => {
                    self.shared.budget.give(1, 0);
                    self.shared
                        .faults
                        .report(self.peer.as_ref(), "a bad frame", &status);
                    self.state = State::Closing;
                    break;
                }
            };
            let bytes = before - self.rbuf.len();
            consumed = true;
            progress = true;
            self.last_activity = now;
            self.open += 1;
            self.open_bytes += bytes;
            if self.ordered.is_none() {
                self.ordered = Some(self.codec.ordered());
            }
            match inbound {
                Inbound::Discard(status) => {
                    self.shared.faults.report(
                        self.peer.as_ref(),
                        "a one-way call that cannot be served was dropped",
                        &status,
                    );
                    self.release(1, bytes);
                }
                Inbound::Reject(reply, status) => {
                    let index = self.next_index();
                    self.deliver(index, reply, Err(status), (bytes, None), now);
                }
                Inbound::Request {
                    mut req,
                    reply,
                    timeout,
                } => {
                    // A remaining time too large for the clock is no deadline.
                    if let Some(t) = timeout {
                        req.cx.deadline = now.checked_add(t);
                    }
                    if req.cx.peer.is_none() {
                        req.cx.peer = self.peer.clone();
                    }
                    if let State::Draining { last_request } = &mut self.state {
                        *last_request = now;
                        if let Some(reply) = reply {
                            let index = self.next_index();
                            let status =
                                Status::refused(Code::Unavailable, "the server is shutting down");
                            self.deliver(index, reply, Err(status), (bytes, None), now);
                            continue;
                        }
                        // A one-way call cannot be told it was refused: it runs.
                    }
                    let index = match reply {
                        Some(_) => self.next_index(),
                        None => u64::MAX,
                    };
                    self.service_ready = false;
                    // A layer of the service may offer a sink for the
                    // sizes while inside call(): see `wire`.
                    drop(wire::take());
                    let fut = self.service.call(req);
                    let sizes = wire::take();
                    if let Some(s) = &sizes {
                        s.request(bytes);
                    }
                    let run = if self.shared.spawn_handlers {
                        Run::Spawned {
                            task: AbortOnDrop(tokio::spawn(fut)),
                        }
                    } else {
                        Run::Inline { fut }
                    };
                    let call = Call {
                        run,
                        reply,
                        index,
                        bytes,
                        sizes,
                    };
                    if self.inline.is_none() {
                        self.inline.set(Some(call));
                        // Most handlers are ready at once: answer now and
                        // keep the slot for the next frame.
                        if let Some(call) = self.inline.as_mut().as_pin_mut() {
                            if let Poll::Ready(done) = call.poll(cx) {
                                self.inline.set(None);
                                self.finish(done, now);
                            }
                        }
                    } else {
                        self.calls.push(call);
                    }
                }
            }
        }
        if consumed && self.finishing_frame {
            self.finishing_frame = false;
            self.shared.budget.give_frame_pass();
        }
        if consumed {
            self.frame_started = if self.rbuf.is_empty() {
                None
            } else {
                Some(now)
            };
        }
        progress
    }

    fn next_index(&mut self) -> u64 {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    fn take_request_slot(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let budget = &self.shared.budget;
        if budget.take_request() {
            return true;
        }
        budget.wait(cx.waker(), &mut self.budget_wait);
        budget.take_request()
    }

    fn held_bytes(&self) -> usize {
        self.rbuf.len() + self.open_bytes + self.wbuf.len()
    }

    fn may_read(&self) -> bool {
        let reading = self.reads_requests() || matches!(self.state, State::Lingering { .. });
        // While whole frames wait, a little more is still read: a peer that
        // resets or closes is noticed (and its handlers dropped) without
        // letting the buffer grow.
        reading
            && !self.eof
            && (!self.decode_held || self.rbuf.len() < READ_CHUNK)
            && self.wbuf.len() < WRITE_HIGH_WATER
    }

    /// Read once if the bounds allow. `Err` when the connection is broken.
    fn poll_read(&mut self, cx: &mut TaskContext<'_>, now: Instant) -> Result<bool, ()> {
        if !self.may_read() {
            return Ok(false);
        }
        let lingering = matches!(self.state, State::Lingering { .. });
        self.read_held = true;
        if !lingering {
            let limits = &self.shared.limits;
            // One whole frame must always fit, whatever the byte bound says.
            let per_conn = limits
                .max_in_flight_bytes_per_connection
                .max(limits.max_frame_len.saturating_add(2 * READ_CHUNK));
            if self.held_bytes() + READ_CHUNK > per_conn {
                return Ok(false);
            }
            self.read_held = false;
            // Waiting for the server's budget keeps the read timeout running:
            // peers that each hold part of a frame cannot wedge the server.
            self.sync_budget();
            let budget = &self.shared.budget;
            if !self.finishing_frame && !budget.has_room_for_bytes(READ_CHUNK, self.charged) {
                budget.wait(cx.waker(), &mut self.budget_wait);
                if !budget.has_room_for_bytes(READ_CHUNK, self.charged) {
                    // Connections that each hold part of a frame would wait
                    // for one another forever: one at a time, server-wide,
                    // may finish its frame past the bound.
                    if self.rbuf.is_empty() || !budget.take_frame_pass() {
                        return Ok(false);
                    }
                    self.finishing_frame = true;
                }
            }
            if self.buf_oversized() {
                // A codec rejects an oversized frame from its header; this
                // catches unframed peers whose message never ends.
                self.shared.faults.report(
                    self.peer.as_ref(),
                    "a frame that never ends",
                    &format_args!(
                        "{} bytes read without a whole frame, past the limit",
                        self.rbuf.len()
                    ),
                );
                self.state = State::Closing;
                return Ok(true);
            }
        }
        self.read_held = false;
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            // Earlier frames are still shared with their handlers, so this
            // allocates: take room for many frames at once.
            self.rbuf.reserve(READ_CHUNK);
        }
        let mut limited = (&mut self.rbuf).limit(READ_CHUNK);
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut limited) {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                Ok(true)
            }
            Poll::Ready(Ok(_)) => {
                if lingering {
                    self.rbuf.clear();
                } else {
                    self.last_activity = now;
                    if self.frame_started.is_none() {
                        self.frame_started = Some(now);
                    }
                }
                Ok(true)
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(peer = ?self.peer, error = %e, "read failed");
                Err(())
            }
            Poll::Pending => Ok(false),
        }
    }

    fn buf_oversized(&self) -> bool {
        self.rbuf.len() > self.shared.limits.max_frame_len.saturating_add(READ_CHUNK)
    }

    /// Bring the bytes charged to the server in line with what this
    /// connection holds. Reads are charged in full at once; bytes given back
    /// go in steps of a read chunk, or all once nothing is held, since the
    /// counter is shared by every connection of the server.
    fn sync_budget(&mut self) {
        if self.finishing_frame && !self.reads_requests() {
            self.finishing_frame = false;
            self.shared.budget.give_frame_pass();
        }
        let held = if self.state == State::Done {
            0
        } else {
            self.held_bytes()
        };
        if held > self.charged {
            self.shared.budget.charge_bytes(held - self.charged);
            self.charged = held;
        } else if self.charged - held >= READ_CHUNK || (held == 0 && self.charged > 0) {
            self.shared.budget.give(0, self.charged - held);
            self.charged = held;
        }
    }

    // ===== writing =====

    fn poll_write(&mut self, cx: &mut TaskContext<'_>, now: Instant) -> Result<bool, ()> {
        if self.wbuf.is_empty() {
            return Ok(false);
        }
        let before = self.wbuf.len();
        match self.wbuf.poll_flush(&mut self.io, cx, now) {
            Poll::Ready(Ok((answers, bytes))) => {
                self.release(answers, bytes);
                Ok(true)
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(peer = ?self.peer, error = %e, "write failed");
                Err(())
            }
            Poll::Pending => Ok(self.wbuf.len() != before),
        }
    }

    // ===== the life of the connection =====

    /// Move on to the next state when this one is finished.
    fn advance_state(&mut self, cx: &mut TaskContext<'_>, now: Instant, progress: bool) -> bool {
        let idle = self.open == 0
            && self.calls.is_empty()
            && self.inline.is_none()
            && self.wbuf.is_empty();
        match self.state {
            State::Serving | State::Draining { .. }
                if self.eof && idle && !progress && !self.decode_held =>
            {
                // The peer finished sending and everything it sent is answered.
                self.state = State::Closing;
                true
            }
            State::Closing if idle => {
                self.state = State::ShuttingDown;
                true
            }
            State::ShuttingDown => match Pin::new(&mut self.io).poll_shutdown(cx) {
                Poll::Ready(_) if self.eof => {
                    self.state = State::Done;
                    true
                }
                Poll::Ready(_) => {
                    self.rbuf.clear();
                    let until = now
                        .checked_add(self.shared.linger)
                        .unwrap_or_else(|| now + Duration::from_secs(86_400));
                    self.state = State::Lingering { until };
                    true
                }
                Poll::Pending => false,
            },
            State::Lingering { .. } if self.eof => {
                self.state = State::Done;
                true
            }
            _ => false,
        }
    }

    /// Act on the deadline that passed, if one did; else arm the timer for
    /// the next. `true` when the state changed.
    fn poll_timer(&mut self, cx: &mut TaskContext<'_>, now: Instant) -> bool {
        let limits = &self.shared.limits;
        let mut next: Option<Instant> = None;
        let mut expired: Option<(State, &'static str)> = None;
        let mut check = |at: Option<Instant>, then: State, why: &'static str| {
            if let Some(at) = at {
                if at <= now {
                    expired.get_or_insert((then, why));
                } else {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        };
        let after = |t: Instant, d: Duration| t.checked_add(d);
        if let Some(since) = self.wbuf.stalled_since() {
            check(
                after(since, limits.write_timeout),
                State::Done,
                "write timed out",
            );
        }
        if self.reads_requests() {
            if self.may_read() && !self.read_held && !self.decode_held {
                if let Some(started) = self.frame_started {
                    check(
                        after(started, limits.read_timeout),
                        State::Closing,
                        "read timed out in the middle of a frame",
                    );
                }
            }
            let idle = self.open == 0 && self.rbuf.is_empty() && self.wbuf.is_empty();
            if idle {
                check(
                    after(self.last_activity, limits.idle_timeout),
                    State::Closing,
                    "idle timeout",
                );
                if let State::Draining { last_request } = self.state {
                    check(
                        after(last_request, self.shared.drain_quiet),
                        State::Closing,
                        "drained",
                    );
                }
            }
        }
        if let State::Lingering { until } = self.state {
            check(Some(until), State::Done, "lingered");
        }
        if let Some((state, why)) = expired {
            tracing::debug!(peer = ?self.peer, "closing the connection: {why}");
            self.state = state;
            self.armed = None;
            return true;
        }
        match next {
            None => self.armed = None,
            Some(at) => {
                // Re-arm only for an earlier deadline: a later one is found
                // when the earlier fires, so busy connections do not touch
                // the timer wheel per request.
                if self.armed.is_none_or(|armed| at < armed) {
                    self.timer.as_mut().reset(at);
                    self.armed = Some(at);
                }
                if self.timer.as_mut().poll(cx).is_ready() {
                    self.armed = None;
                    return true;
                }
            }
        }
        false
    }
}

impl<C, S> Drop for Conn<C, S>
where
    C: ServerCodec,
    S: Service<Request<C::Req>, Response = Response<C::Resp>, Error = Status>,
{
    fn drop(&mut self) {
        if self.finishing_frame {
            self.shared.budget.give_frame_pass();
        }
        self.shared.budget.give(self.open, self.charged);
    }
}

// ===== one call =====

pin_project! {
    /// A handler's future with what its answer needs. Handlers run on the
    /// connection's task unless the server spawns them.
    struct Call<F, T, R> {
        #[pin]
        run: Run<F, T>,
        reply: Option<R>,
        index: u64,
        bytes: usize,
        sizes: Option<SizeSink>,
    }
}

pin_project! {
    #[project = RunProj]
    enum Run<F, T> {
        Inline { #[pin] fut: F },
        Spawned { task: AbortOnDrop<Result<T, Status>> },
    }
}

/// What a finished call hands back to its connection.
struct Finished<T, R> {
    result: Result<T, Status>,
    reply: Option<R>,
    index: u64,
    bytes: usize,
    sizes: Option<SizeSink>,
}

impl<F, T, R> Future for Call<F, T, R>
where
    F: Future<Output = Result<T, Status>>,
{
    type Output = Finished<T, R>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.run.project() {
            RunProj::Inline { fut } => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                    Ok(Poll::Ready(r)) => r,
                    Ok(Poll::Pending) => return Poll::Pending,
                    Err(_) => Err(Status::internal("handler panicked")),
                }
            }
            RunProj::Spawned { task } => match Pin::new(&mut task.0).poll(cx) {
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(e)) if e.is_panic() => Err(Status::internal("handler panicked")),
                Poll::Ready(Err(_)) => Err(Status::unavailable("handler cancelled")),
                Poll::Pending => return Poll::Pending,
            },
        };
        Poll::Ready(Finished {
            result,
            reply: this.reply.take(),
            index: *this.index,
            bytes: *this.bytes,
            sizes: this.sizes.take(),
        })
    }
}

/// A spawned handler is aborted when its connection lets go of it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
