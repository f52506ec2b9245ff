//! The future of [`Observe`](super::Observe).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tracing::Span;
use weft_core::{Code, Response, Status};

use super::{
    access::{self, Who},
    record_peer,
    table::code_name,
    trace::PollScope,
    EndFields, Shared, Side, System, TraceContext,
};

pin_project! {
    /// Runs the call (inside its span, with its trace context current) and
    /// records how it ended.
    ///
    /// The span is entered around each poll of the call, by hand rather
    /// than through `tracing::Instrumented`, which also enters it to drop
    /// the finished call and is cloned to be read at the end: each is a
    /// round trip into the subscriber per call.
    ///
    /// The trace context (when Weft keeps it) is made current the same
    /// way, by hand around each poll (`trace::PollScope`), rather than by
    /// wrapping the call in tokio's `TaskLocalFuture`: that moves the
    /// call's whole future once more and swaps the task-local through its
    /// own machinery on every poll, about 2k instructions per call.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Weft's trace context of the call, current while it is polled
        // (`None` while a poll runs: it is in the thread-local then).
        tc: Option<TraceContext>,
        span: Option<Span>,
        shared: Arc<Shared>,
        entry: Option<usize>,
        start: Instant,
        // Boxed: only the access log wants it, and it is off by default,
        // while every call's future would carry its room.
        who: Option<Box<Who>>,
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
    /// The future of a call whose inner future is `inner`, built in place
    /// by `Observe::call`: the inner future is large (every layer below
    /// nests its own), so it is moved as few times as possible.
    #[inline(always)]
    pub(super) fn new(
        inner: F,
        tc: Option<TraceContext>,
        span: Option<Span>,
        shared: Arc<Shared>,
        entry: Option<usize>,
        who: Option<Box<Who>>,
    ) -> Self {
        ResponseFuture {
            inner,
            tc,
            span,
            shared,
            entry,
            start: Instant::now(),
            who,
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
        let res = {
            let _in = this.span.as_ref().map(Span::enter);
            let _cx = PollScope::enter(this.tc);
            ready!(this.inner.poll(cx))
        };
        let span = this.span.as_ref();
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
        if let Some(span) = span {
            finish_span(span, sh, &res, code);
        }
        if let Some(log) = &sh.access {
            if log.sampled(&sh.access_seen, code) {
                let _in_span = span.map(Span::enter);
                if let Some(who) = this.who.as_ref() {
                    let trace = this.tc.as_ref().map(|t| t.trace_id);
                    access::emit(sh, who, &res, code, elapsed, trace);
                }
            }
        }
        Poll::Ready(res)
    }
}

fn finish_span<R>(span: &Span, sh: &Shared, res: &Result<Response<R>, Status>, code: Code) {
    let Some(f) = EndFields::of(sh.side, span) else {
        return;
    };
    if sh.side == Side::Client {
        // The balancer picked the instance: the answer names it.
        if let Ok(r) = res {
            if let Some(peer) = &r.cx.peer {
                record_peer(span, f, sh.side, peer);
            }
        }
    }
    let name = code_name(code);
    if let Some(field) = &f.status {
        span.record(field, name);
    }
    if sh.system == System::Grpc {
        if let Some(field) = &f.grpc_status {
            span.record(field, code.as_i32());
        }
    }
    if code != Code::Ok {
        if let Some(field) = &f.otel_status {
            span.record(field, "ERROR");
        }
        if let Some(field) = &f.error_type {
            span.record(field, name);
        }
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
