//! The future of [`Retry`](super::Retry): attempts, backoff and backups.

use crate::observe::governance;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context as TaskContext, Poll},
};

use futures::{stream::FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::Service;
use tracing::{field::Empty, Span};
use weft_core::{faststr::FastStr, Code, Request, Status};

use crate::observe::table::code_name;

use super::{RetryPolicy, Shared, PREVIOUS_ATTEMPTS};

pin_project! {
    /// One attempt, when it started, and its span (`rpc.attempt`, a child
    /// of the call's span; disabled when there is none).
    struct Attempt<F> {
        #[pin]
        fut: F,
        started: Instant,
        span: Span,
        done: bool,
    }

    impl<F> PinnedDrop for Attempt<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                // Another attempt won, or the caller gave up.
                this.span.record("rpc.response.status_code", "CANCELLED");
            }
        }
    }
}

impl<F> Attempt<F> {
    /// Attempt number `n` (1 for the first), a backup request if `backup`;
    /// `call` starts it inside its span, so that the layers below (the
    /// balancer names the instance) see the span as current.
    ///
    /// Only inside a call's span: a call that is not traced (outside any
    /// span, or not sampled) makes no attempt spans either.
    fn start(n: u32, backup: bool, call: impl FnOnce() -> F) -> Self {
        // Asked of the dispatcher directly: `Span::current()` would clone
        // the current span's handle (and close it again) just to look.
        let traced = tracing::dispatcher::get_default(|d| d.current_span().is_known());
        let span = if !traced {
            Span::none()
        } else {
            tracing::info_span!(
                "rpc.attempt",
                rpc.attempt = n,
                weft.backup = backup,
                network.peer.address = Empty,
                network.peer.port = Empty,
                rpc.response.status_code = Empty,
            )
        };
        let fut = span.in_scope(call);
        Attempt {
            fut,
            started: Instant::now(),
            span,
            done: false,
        }
    }
}

impl<F, R> Future for Attempt<F>
where
    F: Future<Output = Result<R, Status>>,
{
    type Output = (F::Output, Instant);

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = {
            let _in = this.span.enter();
            ready!(this.fut.poll(cx))
        };
        *this.done = true;
        let code = match &out {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        };
        this.span
            .record("rpc.response.status_code", code_name(code));
        Poll::Ready((out, *this.started))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Backoff,
    Hedge,
}

/// Bookkeeping of one call, apart from the futures.
struct State<T> {
    /// The request the next attempt sends. An idempotent call keeps a copy
    /// from the start, as any attempt may have reached the server; any
    /// other call is only ever sent again when an attempt was not sent,
    /// and then that attempt's refusal hands its request back
    /// ([`Status::take_unsent`]), so it is never copied.
    template: Option<Request<T>>,
    /// Whether `template` is a copy to clone for each attempt (idempotent
    /// calls) rather than the request itself.
    keep: bool,
    method: FastStr,
    deadline: Option<Instant>,
    policy: RetryPolicy,
    idempotent: bool,
    shared: Arc<Shared>,
    issued: u32,
    failures: u32,
    want_issue: bool,
    // The attempt to issue next is a backup request (a hedge fired).
    backup: bool,
    timer: Option<Timer>,
    last_error: Option<Status>,
    /// What each failed attempt said, for the error of a call that fails
    /// after several (only kept when the policy allows more than one).
    failed: Vec<FastStr>,
}

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    pub struct ResponseFuture<S, T>
    where
        S: Service<Request<T>>,
    {
        svc: S,
        // The first attempt, in place: a call that needs no other attempt
        // allocates nothing here.
        #[pin]
        first: Option<Attempt<S::Future>>,
        // Retries and backup requests, made on demand.
        others: Option<FuturesUnordered<Attempt<S::Future>>>,
        #[pin]
        sleep: Option<Sleep>,
        state: State<T>,
    }
}

impl<S, T> fmt::Debug for ResponseFuture<S, T>
where
    S: Service<Request<T>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("issued", &self.state.issued)
            .field(
                "in_flight",
                &(usize::from(self.first.is_some()) + self.others.as_ref().map_or(0, |o| o.len())),
            )
            .field("timer", &self.state.timer)
            .finish()
    }
}

enum Next {
    /// Keep waiting for the attempts in flight or the timer.
    Wait,
    /// Arm the timer.
    Arm(Instant, Timer),
    /// The call is over.
    Fail(Status),
}

impl<T: Clone + 'static> State<T> {
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn can_issue(&self) -> bool {
        self.template.is_some() && self.issued < self.policy.max_attempts
    }

    /// The next attempt's request.
    fn next_request(&mut self) -> Option<Request<T>> {
        // The last attempt the policy allows takes the copy itself.
        let mut req = if self.keep && self.issued + 1 < self.policy.max_attempts {
            self.template.as_ref()?.clone()
        } else {
            self.template.take()?
        };
        if self.issued > 0 {
            req.cx
                .metainfo
                .transient
                .insert(PREVIOUS_ATTEMPTS, self.issued.to_string());
        }
        self.issued += 1;
        Some(req)
    }

    /// A backup request after the attempt just issued, if the policy wants one.
    fn hedge_timer(&self) -> Next {
        let (Some(hedge), true, true) = (self.policy.hedge, self.idempotent, self.can_issue())
        else {
            return Next::Wait;
        };
        let at = Instant::now() + self.shared.latencies.delay(&self.method, &hedge);
        if self.deadline().is_some_and(|d| at >= d) {
            return Next::Wait;
        }
        Next::Arm(at, Timer::Hedge)
    }

    /// An attempt failed with `status`; `others` attempts are still running.
    fn on_failure(&mut self, status: Status, others: bool) -> Next {
        if self.policy.max_attempts > 1 {
            self.failed.push(FastStr::new(status.message()));
        }
        if self.template.is_none() {
            // Only an unsent attempt's refusal has one to give.
            self.template = status.take_unsent::<Request<T>>();
        }
        let safe = self.idempotent || status.is_not_sent();
        if !safe || !self.policy.retries_code(&status) {
            // An answer, or not safe to repeat: the first answer wins.
            return Next::Fail(status);
        }
        self.failures += 1;
        self.last_error = Some(status);
        let give_up = || -> Next {
            if others {
                Next::Wait
            } else {
                Next::Fail(self.last_error.clone().unwrap_or_else(gone))
            }
        };
        if !self.can_issue() {
            return give_up();
        }
        if self.timer == Some(Timer::Backoff) {
            return Next::Wait;
        }
        let at = Instant::now() + self.policy.backoff.delay(self.failures);
        if self.deadline().is_some_and(|d| at >= d) {
            return give_up();
        }
        // Withdraw now rather than after the backoff: a call the budget
        // will not retry fails at once instead of waiting for nothing.
        let method = self.method.as_str();
        if !self.shared.budget.withdraw() {
            governance::budget_exhausted(method);
            return give_up();
        }
        governance::retry(method, self.issued + 1, status_code_of(&self.last_error));
        Next::Arm(at, Timer::Backoff)
    }

    /// The timer fired. A retry drew on the budget when it was scheduled,
    /// a backup request draws now.
    fn on_timer(&mut self, kind: Timer, others: bool) -> Next {
        self.timer = None;
        let allowed = self.can_issue()
            && self.deadline().is_none_or(|d| d > Instant::now())
            && (kind == Timer::Backoff || self.shared.budget.withdraw());
        if allowed {
            if kind == Timer::Hedge {
                governance::backup(&self.method, self.issued + 1);
                self.backup = true;
            }
            self.want_issue = true;
            return Next::Wait;
        }
        if kind == Timer::Backoff && !others {
            return Next::Fail(self.last_error.take().unwrap_or_else(gone));
        }
        Next::Wait
    }
}

impl<T> State<T> {
    /// The error the call ends with: after several attempts, it says how
    /// many and what each said (a balancer below names the instances).
    fn report(&self, status: Status) -> Status {
        if self.failed.len() < 2 {
            return status;
        }
        let mut message = format!("{} attempts failed:", self.failed.len());
        for (i, m) in self.failed.iter().enumerate() {
            use std::fmt::Write as _;
            let _ = write!(message, " {}) {m};", i + 1);
        }
        message.pop();
        status.with_message(message)
    }
}

fn status_code_of(s: &Option<Status>) -> Code {
    s.as_ref().map_or(Code::Unknown, Status::code)
}

fn gone() -> Status {
    Status::internal("retry: no attempt left to report")
}

impl<S, T> ResponseFuture<S, T>
where
    S: Service<Request<T>, Error = Status>,
    T: Clone + 'static,
{
    pub(super) fn new(
        mut svc: S,
        req: Request<T>,
        policy: RetryPolicy,
        idempotent: bool,
        shared: Arc<Shared>,
    ) -> Self {
        let keep = idempotent && policy.max_attempts > 1;
        let mut state = State {
            template: None,
            keep,
            method: req.cx.method.clone(),
            deadline: req.cx.deadline,
            policy,
            idempotent,
            shared,
            issued: 1,
            failures: 0,
            want_issue: false,
            backup: false,
            timer: None,
            last_error: None,
            failed: Vec::new(),
        };
        // The service was made ready by `poll_ready`: the first attempt
        // starts now.
        if keep {
            state.template = Some(req.clone());
        }
        let first = Attempt::start(1, false, || svc.call(req));
        let sleep = match state.hedge_timer() {
            Next::Arm(at, kind) => {
                state.timer = Some(kind);
                Some(tokio::time::sleep_until(at))
            }
            _ => None,
        };
        ResponseFuture {
            svc,
            first: Some(first),
            others: None,
            sleep,
            state,
        }
    }
}

impl<S, T> Future for ResponseFuture<S, T>
where
    S: Service<Request<T>, Error = Status>,
    T: Clone + 'static,
{
    type Output = Result<S::Response, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let st = this.state;
        loop {
            if st.want_issue {
                match this.svc.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        st.want_issue = false;
                        let backup = std::mem::take(&mut st.backup);
                        if let Some(req) = st.next_request() {
                            let svc = &mut *this.svc;
                            let attempt = Attempt::start(st.issued, backup, || svc.call(req));
                            this.others
                                .get_or_insert_with(FuturesUnordered::new)
                                .push(attempt);
                            if st.timer.is_none() {
                                if let Next::Arm(at, kind) = st.hedge_timer() {
                                    st.timer = Some(kind);
                                    this.sleep.set(Some(tokio::time::sleep_until(at)));
                                }
                            }
                        }
                    }
                    // A service that fails readiness takes no more calls.
                    Poll::Ready(Err(e)) => {
                        st.want_issue = false;
                        if this.first.is_none() && others_empty(this.others) {
                            return Poll::Ready(Err(e));
                        }
                    }
                    Poll::Pending => {}
                }
            }

            let mut done = None;
            if let Some(first) = this.first.as_mut().as_pin_mut() {
                if let Poll::Ready(out) = first.poll(cx) {
                    this.first.set(None);
                    done = Some(out);
                }
            }
            if done.is_none() {
                if let Some(others) = this.others.as_mut() {
                    if let Poll::Ready(Some(out)) = others.poll_next_unpin(cx) {
                        done = Some(out);
                    }
                }
            }
            match done {
                Some((Ok(resp), started)) => {
                    if st.policy.hedge.is_some() {
                        st.shared.latencies.record(&st.method, started.elapsed());
                    }
                    // The first answer wins: drop (cancel) the others now.
                    this.first.set(None);
                    *this.others = None;
                    return Poll::Ready(Ok(resp));
                }
                Some((Err(status), _)) => {
                    let running = this.first.is_some() || !others_empty(this.others);
                    match st.on_failure(status, running) {
                        Next::Fail(status) => {
                            this.first.set(None);
                            *this.others = None;
                            return Poll::Ready(Err(st.report(status)));
                        }
                        Next::Arm(at, kind) => {
                            st.timer = Some(kind);
                            this.sleep.set(Some(tokio::time::sleep_until(at)));
                        }
                        Next::Wait => {}
                    }
                    continue;
                }
                None => {}
            }

            let running = this.first.is_some() || !others_empty(this.others);
            if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
                if sleep.poll(cx).is_ready() {
                    this.sleep.set(None);
                    let kind = st.timer.unwrap_or(Timer::Backoff);
                    if let Next::Fail(status) = st.on_timer(kind, running) {
                        this.first.set(None);
                        *this.others = None;
                        return Poll::Ready(Err(st.report(status)));
                    }
                    continue;
                }
            }

            if !running && this.sleep.is_none() && !st.want_issue {
                let status = st.last_error.take().unwrap_or_else(gone);
                return Poll::Ready(Err(st.report(status)));
            }
            return Poll::Pending;
        }
    }
}

fn others_empty<F>(others: &Option<FuturesUnordered<F>>) -> bool {
    others.as_ref().is_none_or(|o| o.is_empty())
}
