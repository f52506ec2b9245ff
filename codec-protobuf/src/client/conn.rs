//! The client's HTTP/2 connections: opened on the first call and used once
//! the server has sent its preface, each driven by a task of its own
//! (callers on any task share it), replaced when the peer closes it or
//! sends GOAWAY, with a backoff after failed connects.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::time::Instant;
use weft_core::{Address, Code, Connector, Delivery, Status};

use super::preface::Preface;
use crate::{compression::Encoding, limits::GrpcLimits};

/// Wait after a failed connect before the next attempt: calls meanwhile
/// fail at once ("not sent", so safe to retry elsewhere).
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Inner {
    pub(crate) addr: Address,
    pub(crate) authority: http::uri::Authority,
    connector: Connector,
    pub(crate) limits: GrpcLimits,
    pub(crate) compress: Option<Encoding>,
    slots: Vec<std::sync::Arc<Slot>>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Slot {
    state: parking_lot::Mutex<SlotState>,
    /// One connect at a time per slot; callers that find it connecting wait
    /// for its outcome instead of opening connections of their own.
    connecting: tokio::sync::Mutex<()>,
}

impl Slot {
    fn retire(&self, generation: u64) {
        let mut st = self.state.lock();
        if st.send.as_ref().is_some_and(|(g, _)| *g == generation) {
            st.send = None;
        }
    }
}

#[derive(Default)]
struct SlotState {
    send: Option<(u64, SendRequest<Bytes>)>,
    generation: u64,
    failed: Option<(Instant, Duration, Status)>,
}

impl Inner {
    pub(crate) fn new(
        addr: Address,
        authority: http::uri::Authority,
        connector: Connector,
        limits: GrpcLimits,
        compress: Option<Encoding>,
        connections: usize,
    ) -> Inner {
        Inner {
            addr,
            authority,
            connector,
            limits,
            compress,
            slots: (0..connections)
                .map(|_| std::sync::Arc::default())
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A connection ready for a new stream, and its slot and generation (to
    /// retire it with [`Inner::retire`]).
    pub(crate) async fn sender(&self) -> Result<(usize, u64, SendRequest<Bytes>), Status> {
        let i = if self.slots.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()
        };
        let slot = &self.slots[i];
        if let Some((g, s)) = slot.state.lock().send.clone() {
            return Ok((i, g, s));
        }
        let _connecting = slot.connecting.lock().await;
        {
            let st = slot.state.lock();
            if let Some((g, s)) = st.send.clone() {
                return Ok((i, g, s));
            }
            if let Some((at, backoff, status)) = &st.failed {
                if Instant::now() < *at + *backoff {
                    return Err(status.clone());
                }
            }
        }
        match self.connect(i).await {
            Ok((g, s)) => Ok((i, g, s)),
            Err(status) => {
                let mut st = slot.state.lock();
                let backoff = st.failed.as_ref().map_or(RECONNECT_BACKOFF, |(_, b, _)| {
                    (*b * 2).min(MAX_RECONNECT_BACKOFF)
                });
                st.failed = Some((Instant::now(), backoff, status.clone()));
                Err(status)
            }
        }
    }

    /// Forget connection `generation` of slot `i`: it failed or is going
    /// away; the next call opens a new one.
    pub(crate) fn retire(&self, i: usize, generation: u64) {
        self.slots[i].retire(generation);
    }

    async fn connect(&self, i: usize) -> Result<(u64, SendRequest<Bytes>), Status> {
        let started = Instant::now();
        let not_sent = |what: &str, e: &dyn std::fmt::Display| {
            Status::new(
                Code::Unavailable,
                format!("grpc: {what} {}: {e}", self.addr),
            )
            .with_delivery(Delivery::NotSent)
        };
        let stream = self
            .connector
            .connect(&self.addr)
            .await
            .map_err(|e| not_sent("connecting to", &e))?;
        let (stream, spoke) = Preface::watch(stream);
        let l = &self.limits;
        let mut b = h2::client::Builder::new();
        b.initial_window_size(l.stream_window)
            .initial_connection_window_size(l.connection_window)
            .max_frame_size(l.max_frame_size)
            .max_header_list_size(l.max_header_list_size)
            .max_send_buffer_size(l.max_send_buffer)
            .max_local_error_reset_streams(Some(l.max_local_error_reset_streams))
            .max_pending_accept_reset_streams(l.max_pending_accept_reset_streams)
            .enable_push(false);
        let handshake = tokio::time::timeout(self.connector.connect_timeout, b.handshake(stream));
        let (send, mut conn) = match handshake.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(not_sent("HTTP/2 handshake with", &e)),
            Err(_) => return Err(not_sent("HTTP/2 handshake with", &"timed out")),
        };
        let mut ping = conn.ping_pong();
        let (interval, timeout) = (l.keepalive_interval, l.keepalive_timeout);
        let generation = {
            let mut st = self.slots[i].state.lock();
            st.generation += 1;
            st.generation
        };
        let peer = self.addr.clone();
        // Neither the client nor the slot: the slot holds a `SendRequest`,
        // and h2 ends the connection only when every one is gone, so a task
        // owning the slot would keep the connection (and its task and
        // socket, at both ends) alive after the client is dropped.
        let slot = std::sync::Arc::downgrade(&self.slots[i]);
        let driver = tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            loop {
                tokio::select! {
                    r = &mut conn => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "grpc: connection closed");
                        }
                        break;
                    }
                    _ = tokio::time::sleep(interval) => {
                        // Keepalive: a peer that does not answer a ping in
                        // time is gone; its calls fail instead of hanging.
                        let Some(p) = ping.as_mut() else { continue };
                        if p.send_ping(h2::Ping::opaque()).is_err() {
                            break;
                        }
                        let pong = std::future::poll_fn(|cx| p.poll_pong(cx));
                        tokio::select! {
                            r = &mut conn => { let _ = r; break; }
                            r = tokio::time::timeout(timeout, pong) => {
                                if !matches!(r, Ok(Ok(_))) {
                                    tracing::debug!(%peer, "grpc: keepalive ping unanswered");
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            if let Some(slot) = slot.upgrade() {
                slot.retire(generation);
            }
        });
        // Used only once the server has spoken (see `preface`): until then
        // a call could be written into a backlog no server will accept.
        let left = self
            .connector
            .connect_timeout
            .saturating_sub(started.elapsed());
        match tokio::time::timeout(left, spoke).await {
            Ok(Ok(())) => {}
            failed => {
                driver.abort();
                let why = match failed {
                    Err(_) => "timed out waiting for the server's HTTP/2 preface",
                    _ => "closed before the server's HTTP/2 preface",
                };
                return Err(not_sent("connection to", &why));
            }
        }
        let mut st = self.slots[i].state.lock();
        st.failed = None;
        st.send = Some((generation, send.clone()));
        Ok((generation, send))
    }
}
