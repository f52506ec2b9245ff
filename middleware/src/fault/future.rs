//! The future of [`Fault`](super::Fault).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;
use weft_core::{Delivery, Status};

/// What happens once any delay is over.
#[derive(Debug)]
pub(super) enum Action {
    Pass,
    Fail(Status),
    Abort,
}

pin_project! {
    /// Delays, fails or aborts a call, or passes it through.
    pub struct ResponseFuture<S, R, F> {
        #[pin]
        state: State<S, R, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, R, F> {
        Delay {
            #[pin]
            sleep: Sleep,
            call: Option<(S, R, Action)>,
        },
        Call {
            #[pin]
            fut: F,
            abort: bool,
        },
        Fail {
            status: Option<Status>,
        },
    }
}

impl<S, R, F> ResponseFuture<S, R, F> {
    pub(super) fn call(fut: F, abort: bool) -> Self {
        ResponseFuture {
            state: State::Call { fut, abort },
        }
    }

    pub(super) fn fail(status: Status) -> Self {
        ResponseFuture {
            state: State::Fail {
                status: Some(status),
            },
        }
    }

    pub(super) fn delayed(delay: Duration, svc: S, req: R, action: Action) -> Self {
        ResponseFuture {
            state: State::Delay {
                sleep: tokio::time::sleep(delay),
                call: Some((svc, req, action)),
            },
        }
    }
}

fn aborted() -> Status {
    Status::unavailable("call aborted by fault injection").with_delivery(Delivery::MaybeSent)
}

impl<S, R, F, T> Future for ResponseFuture<S, R, F>
where
    S: Service<R, Future = F, Error = Status>,
    F: Future<Output = Result<T, Status>>,
{
    type Output = Result<T, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Delay { sleep, call } => {
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let Some((mut svc, req, action)) = call.take() else {
                        return Poll::Ready(Err(Status::internal("fault future polled again")));
                    };
                    // `svc` was made ready by the `poll_ready` before `call`.
                    let next = match action {
                        Action::Fail(status) => State::Fail {
                            status: Some(status),
                        },
                        Action::Pass => State::Call {
                            fut: svc.call(req),
                            abort: false,
                        },
                        Action::Abort => State::Call {
                            fut: svc.call(req),
                            abort: true,
                        },
                    };
                    state.set(next);
                }
                StateProj::Call { fut, abort } => {
                    let out = fut.poll(cx);
                    if !*abort {
                        return out;
                    }
                    // Started: now cut it off.
                    state.set(State::Fail {
                        status: Some(aborted()),
                    });
                }
                StateProj::Fail { status } => {
                    return Poll::Ready(Err(status
                        .take()
                        .unwrap_or_else(|| Status::internal("fault future polled again"))));
                }
            }
        }
    }
}

impl<S, R, F> fmt::Debug for ResponseFuture<S, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Delay { .. } => "delay",
            State::Call { abort: false, .. } => "call",
            State::Call { abort: true, .. } => "abort",
            State::Fail { .. } => "fail",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
