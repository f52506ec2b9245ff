//! The accept loop: a slot per connection up to `max_connections`, one task
//! per connection, and the drain when shutdown starts.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinSet};
use tower::Service;

use super::{conn, Shared};
use crate::{
    codec::ServerCodec,
    message::{Request, Response},
    status::Status,
    transport::Listener,
};

/// Time connections get, after the drain timeout cancelled their calls, to
/// write the cancellations, half-close and linger, before they are dropped.
const HARD_STOP_GRACE: Duration = Duration::from_secs(2);

pub(super) async fn accept_loop<C, F, S>(
    listener: Listener,
    make_codec: F,
    service: S,
    shared: Arc<Shared>,
    drain_timeout: Duration,
) where
    C: ServerCodec,
    F: Fn() -> C + Send + Sync + 'static,
    S: Service<Request<C::Req>, Response = Response<C::Resp>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn_slots = Arc::new(Semaphore::new(shared.limits.max_connections));
    let mut conns = JoinSet::new();
    // Once the drain starts, the loop takes only the connections already
    // waiting in the backlog: closing the listener would reset them,
    // leaving their calls in doubt though no handler saw them. Taken, they
    // drain from the start, so their calls are answered "not processed".
    let mut backlog_only = false;
    loop {
        // Reap finished connections so the set stays small.
        while conns.try_join_next().is_some() {}
        let permit = match conn_slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) if backlog_only => break,
            Err(_) => {
                // At the limit: new connections wait in the listen backlog
                // (they are held, not refused) until one closes.
                shared
                    .limit_reached
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::select! {
                    _ = shared.graceful.cancelled() => break,
                    p = conn_slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = if backlog_only {
            match listener.accept_waiting() {
                Ok(Some(c)) => Ok(c),
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "accepting the backlog at the drain failed");
                    break;
                }
            }
        } else {
            tokio::select! {
                _ = shared.graceful.cancelled() => {
                    backlog_only = true;
                    continue;
                }
                a = listener.accept() => a,
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                let codec = make_codec();
                let serve =
                    conn::serve(stream, peer, codec, service.clone(), shared.clone(), permit);
                spawn(&mut conns, serve, &shared);
            }
            Err(e) => {
                // Out of descriptors and similar: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // New connections are refused from here on; the open ones drain.
    drop(listener);
    *shared.drain_deadline.lock() = Some(std::time::Instant::now() + drain_timeout);
    let aborted = shared.aborted.clone();
    let drained = tokio::select! {
        r = tokio::time::timeout(drain_timeout, join_all(&mut conns)) => r.is_ok(),
        _ = aborted.cancelled() => false,
    };
    if !drained && !aborted.is_cancelled() {
        tracing::warn!("drain timeout elapsed; cancelling the calls still running");
        shared
            .signalled
            .store(true, std::sync::atomic::Ordering::Release);
        shared.hard.cancel();
        tokio::select! {
            _ = tokio::time::timeout(HARD_STOP_GRACE, join_all(&mut conns)) => {}
            _ = aborted.cancelled() => {}
        }
    }
    // Whatever is left (or everything, on abort) is dropped now.
    conns.abort_all();
    join_all(&mut conns).await;
}

/// Run one connection's future on the set, counted as accepted and open.
fn spawn(
    conns: &mut JoinSet<()>,
    serve: impl std::future::Future<Output = ()> + Send + 'static,
    shared: &Shared,
) {
    shared
        .accepted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let open = Open::new(&shared.open);
    conns.spawn(async move {
        let _open = open;
        serve.await
    });
}

/// Counts a connection as open until it is dropped, however its task ends
/// (finished, or aborted at a hard stop).
struct Open(Arc<std::sync::atomic::AtomicUsize>);

impl Open {
    fn new(open: &Arc<std::sync::atomic::AtomicUsize>) -> Open {
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Open(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn join_all(conns: &mut JoinSet<()>) {
    while conns.join_next().await.is_some() {}
}
