//! The future of [`Balance`](super::Balance): one call on the picked
//! endpoint, its outcome recorded when it ends.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{util::Oneshot, Service};
use weft_core::{Code, Status};

use super::{InFlight, FAILURE_PENALTY};
use crate::breaker::{is_breaker_failure, Permit};

/// The picked endpoint, held while its call runs.
struct Picked<S> {
    // Dropping it gives back the endpoint's in-flight count, however the
    // call ends (a dropped future included).
    guard: InFlight<S>,
    permit: Option<Permit>,
    started: Instant,
    decay: Duration,
}

pin_project! {
    /// Runs a call on the endpoint [`Balance`](super::Balance) picked and
    /// records its latency, breaker outcome and reachability.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        call: Option<Oneshot<S, Req>>,
        picked: Option<Picked<S>>,
        refused: Option<Status>,
    }
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    pub(super) fn new(
        call: Oneshot<S, Req>,
        guard: InFlight<S>,
        permit: Option<Permit>,
        decay: Duration,
    ) -> Self {
        ResponseFuture {
            call: Some(call),
            picked: Some(Picked {
                guard,
                permit,
                started: Instant::now(),
                decay,
            }),
            refused: None,
        }
    }

    /// A call refused before any endpoint was called.
    pub(super) fn refused(status: Status) -> Self {
        ResponseFuture {
            call: None,
            picked: None,
            refused: Some(status),
        }
    }
}

impl<S, Req, R> Future for ResponseFuture<S, Req>
where
    S: Service<Req, Response = R, Error = Status>,
{
    type Output = Result<R, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(status) = this.refused.take() {
            return Poll::Ready(Err(status));
        }
        let Some(call) = this.call.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Status::internal(
                "balance future polled after completion",
            )));
        };
        let result = std::task::ready!(call.poll(cx));
        this.call.set(None);
        if let Some(p) = this.picked.take() {
            let ep = p.guard.endpoint();
            // A failure that answers fast must not look attractive: it is
            // recorded as a slow answer, so P2C steers away from it.
            let rtt = match &result {
                Err(e) if is_breaker_failure(e) => p.started.elapsed().max(FAILURE_PENALTY),
                _ => p.started.elapsed(),
            };
            ep.observe(rtt, p.decay);
            if let (Some(b), Some(permit)) = (&ep.breaker, p.permit) {
                let ok = match &result {
                    Ok(_) => true,
                    Err(e) => !is_breaker_failure(e),
                };
                b.record(permit, ok);
            }
            let unreachable =
                matches!(&result, Err(e) if e.is_not_sent() && e.code() == Code::Unavailable);
            ep.reachable(!unreachable);
            if let Err(e) = result {
                return Poll::Ready(Err(naming_instance(e, &ep.instance.address)));
            }
        }
        Poll::Ready(result)
    }
}

/// `status` saying which instance it came from, when the failure is about
/// that instance or the way to it (unreachable, slow, overloaded, broken)
/// and the message does not name it already (a client's own errors do).
///
/// An answer about the request itself (unimplemented, invalid argument,
/// not found, permission denied, ...) would be the same from every
/// instance: it passes unchanged, so a caller that matches on its
/// server's message sees exactly what the handler sent.
fn naming_instance(status: Status, address: &weft_core::Address) -> Status {
    if !matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Internal
            | Code::Unknown
            | Code::DataLoss
            | Code::Aborted
    ) {
        return status;
    }
    let address = address.to_string();
    if status.message().contains(&address) {
        return status;
    }
    let message = format!("instance {address}: {}", status.message());
    status.with_message(message)
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("running", &self.call.is_some())
            .field("refused", &self.refused)
            .finish()
    }
}
