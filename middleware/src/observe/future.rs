//! The future of [`Observe`](super::Observe).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use pin_project_lite::pin_project;
use tokio::{task::futures::TaskLocalFuture, time::Instant};
use tracing::{instrument::Instrumented, Instrument, Span};
use weft_core::{Code, Response, Status};

use super::{
    access::{self, Who},
    record_peer,
    table::code_name,
    Shared, Side, System, TraceContext,
};

pin_project! {
    #[project = InnerProj]
    enum Inner<F> {
        // Tracing off.
        Plain { #[pin] fut: F },
        // A propagator keeps the trace context.
        Spanned { #[pin] fut: Instrumented<F> },
        // Weft keeps the trace context, current while the call runs; not
        // sampled, so no span.
        Scoped { #[pin] fut: TaskLocalFuture<TraceContext, F> },
        // Weft keeps the trace context, current while the call runs.
        Traced { #[pin] fut: Instrumented<TaskLocalFuture<TraceContext, F>> },
    }
}

pin_project! {
    /// Runs the call (inside its span, with its trace context current) and
    /// records how it ended.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Inner<F>,
        shared: Arc<Shared>,
        entry: Option<usize>,
        start: Instant,
        trace: Option<u128>,
        who: Option<Who>,
        done: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                // Dropped before it ended: the caller gave up on it.
                if let Some(e) = this.entry.and_then(|i| this.shared.table.at(i)) {
                    e.end(Code::Cancelled, this.start.elapsed().as_secs_f64());
                }
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    /// Keep who the call is between, for the access log.
    pub(super) fn with_who(mut self, who: Option<Who>) -> Self {
        self.who = who;
        self
    }

    pub(super) fn plain(
        fut: F,
        shared: Arc<Shared>,
        entry: Option<usize>,
        trace: Option<u128>,
    ) -> Self {
        Self::new(Inner::Plain { fut }, shared, entry, trace)
    }

    pub(super) fn spanned(fut: F, shared: Arc<Shared>, entry: Option<usize>, span: Span) -> Self {
        let fut = fut.instrument(span);
        Self::new(Inner::Spanned { fut }, shared, entry, None)
    }

    pub(super) fn traced(
        fut: F,
        shared: Arc<Shared>,
        entry: Option<usize>,
        span: Span,
        tc: TraceContext,
    ) -> Self
    where
        F: Future,
    {
        let trace = Some(tc.trace_id);
        let fut = tc.scope(fut).instrument(span);
        Self::new(Inner::Traced { fut }, shared, entry, trace)
    }

    pub(super) fn scoped(
        fut: F,
        shared: Arc<Shared>,
        entry: Option<usize>,
        tc: TraceContext,
    ) -> Self
    where
        F: Future,
    {
        let trace = Some(tc.trace_id);
        let fut = tc.scope(fut);
        Self::new(Inner::Scoped { fut }, shared, entry, trace)
    }

    fn new(
        inner: Inner<F>,
        shared: Arc<Shared>,
        entry: Option<usize>,
        trace: Option<u128>,
    ) -> Self {
        ResponseFuture {
            inner,
            shared,
            entry,
            start: Instant::now(),
            trace,
            who: None,
            done: false,
        }
    }
}

impl<F, R> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, Status>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (res, span) = match this.inner.project() {
            InnerProj::Plain { fut } => (ready!(fut.poll(cx)), None),
            InnerProj::Scoped { fut } => (ready!(fut.poll(cx)), None),
            InnerProj::Spanned { mut fut } => {
                let res = ready!(fut.as_mut().poll(cx));
                (res, Some(fut.span().clone()))
            }
            InnerProj::Traced { mut fut } => {
                let res = ready!(fut.as_mut().poll(cx));
                (res, Some(fut.span().clone()))
            }
        };
        *this.done = true;
        let sh = &**this.shared;
        let code = match &res {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        };
        let elapsed = this.start.elapsed();
        if let Some(e) = this.entry.and_then(|i| sh.table.at(i)) {
            e.end(code, elapsed.as_secs_f64());
        }
        if let Some(span) = &span {
            finish_span(span, sh, &res, code);
        }
        if let Some(log) = &sh.access {
            if log.sampled(&sh.access_seen, code) {
                let _in_span = span.as_ref().map(Span::enter);
                if let Some(who) = this.who.as_ref() {
                    access::emit(sh, who, &res, code, elapsed, *this.trace);
                }
            }
        }
        Poll::Ready(res)
    }
}

fn finish_span<R>(span: &Span, sh: &Shared, res: &Result<Response<R>, Status>, code: Code) {
    if sh.side == Side::Client {
        // The balancer picked the instance: the answer names it.
        if let Ok(r) = res {
            if let Some(peer) = &r.cx.peer {
                record_peer(span, sh.side, peer);
            }
        }
    }
    span.record("rpc.response.status_code", code_name(code));
    if sh.system == System::Grpc {
        span.record("rpc.grpc.status_code", code.as_i32());
    }
    if code != Code::Ok {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", code_name(code));
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("entry", &self.entry)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}
