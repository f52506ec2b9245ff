//! The layer with a scripted inner service: what each outcome records.

use std::{future::Future, pin::pin, sync::atomic::Ordering};

use tower::{service_fn, Layer, Service, ServiceExt};
use weft_core::{Code, Context, Request, Response, Status};

use super::*;

fn req(method: &'static str) -> Request<()> {
    Request::new(Context::new("svc", method), ())
}

#[tokio::test]
async fn outcomes_and_drops_are_counted_and_in_flight_returns_to_zero() {
    let layer = ObserveLayer::server(System::Thrift).tracing(false);
    let table = layer.table().clone();
    let mut svc = layer.layer(service_fn(|r: Request<()>| async move {
        match r.cx.method.as_str() {
            "ok" => Ok(Response::new(r.cx, ())),
            "hang" => std::future::pending().await,
            _ => Err(Status::internal("boom")),
        }
    }));
    svc.ready().await.unwrap().call(req("ok")).await.unwrap();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(req("bad"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    {
        let mut hung = pin!(svc.ready().await.unwrap().call(req("hang")));
        let waker = std::task::Waker::noop();
        let poll = hung
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
        assert!(poll.is_pending());
        let (_, e) = table.entry(&"svc".into(), &"hang".into());
        assert_eq!(e.in_flight.load(Ordering::Relaxed), 1);
    }
    for (m, total, errors) in [("ok", 1, 0), ("bad", 1, 1), ("hang", 1, 1)] {
        let (_, e) = table.entry(&"svc".into(), &m.into());
        assert_eq!(e.in_flight.load(Ordering::Relaxed), 0, "{m}");
        assert_eq!(e.total.load(Ordering::Relaxed), total, "{m}");
        assert_eq!(e.errors.load(Ordering::Relaxed), errors, "{m}");
    }
}

#[tokio::test]
async fn a_client_call_sends_a_traceparent_continuing_the_current_trace() {
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let mut svc = ObserveLayer::client(System::Grpc).layer(service_fn(move |r: Request<()>| {
        s2.lock().push(TraceContext::sent(&r.cx));
        std::future::ready(Ok::<_, Status>(Response::new(r.cx, ())))
    }));
    let parent = TraceContext::root();
    let p2 = parent.clone();
    let mut inner = svc.clone();
    parent
        .clone()
        .scope(async move {
            assert_eq!(TraceContext::current(), Some(p2));
            inner.ready().await.unwrap().call(req("m")).await.unwrap();
        })
        .await;
    svc.ready().await.unwrap().call(req("m")).await.unwrap();
    let seen = seen.lock();
    let child = seen[0].clone().unwrap();
    assert_eq!(child.trace_id, parent.trace_id);
    assert_ne!(child.span_id, parent.span_id);
    // Outside any trace, a call starts its own.
    let root = seen[1].clone().unwrap();
    assert_ne!(root.trace_id, parent.trace_id);
    assert!(TraceContext::current().is_none());
}

/// The governance layers' metrics, rendered by a Prometheus recorder local
/// to this (current-thread) test.
#[cfg(feature = "admin")]
#[tokio::test(start_paused = true)]
async fn governance_layers_count_sheds_retries_and_breaker_trips() {
    use std::time::Duration;

    use crate::{
        breaker::{BreakerConfig, CircuitBreaker},
        limit::{ConcurrencyLimitLayer, RateLimitLayer},
        retry::{Backoff, RetryLayer, RetryPolicy},
        timeout::script::{ms, Scripted, Step},
    };

    let recorder = admin::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let r = |m: &'static str| Request::new(Context::new("svc", m), 0u32);

    // Sheds: one over a rate of one call per hour, one over a
    // concurrency of one.
    let rate = RateLimitLayer::new(1, Duration::from_secs(3600), 1)
        .layer(Scripted::new([]).then_always(Step::Ok(ms(1))));
    rate.clone().oneshot(r("a")).await.unwrap();
    let e = rate.oneshot(r("a")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    let conc = ConcurrencyLimitLayer::new(1)
        .layer(Scripted::new([]).then_always(Step::Ok(Duration::from_secs(1))));
    let held = tokio::spawn(conc.clone().oneshot(r("a")));
    tokio::task::yield_now().await;
    let e = conc.oneshot(r("a")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    held.await.unwrap().unwrap();

    // Two retries, then success.
    let down = || Step::Err(Duration::ZERO, Status::unavailable("down"));
    let inner = Scripted::new([down(), down(), Step::Ok(ms(1))]);
    let retry =
        RetryLayer::new(RetryPolicy::default().backoff(Backoff::exponential(ms(10), ms(100))))
            .idempotent(["get"])
            .layer(inner.clone());
    retry.oneshot(r("get")).await.unwrap();
    assert_eq!(inner.calls(), 3);

    // A method breaker that opens after three failures in a row.
    let failing = Scripted::new([]).then_always(Step::Err(Duration::ZERO, Status::internal("x")));
    let breaker = CircuitBreaker::new(
        failing,
        BreakerConfig {
            consecutive_failures: Some(3),
            ..BreakerConfig::default()
        },
    );
    for _ in 0..5 {
        let _ = breaker.clone().oneshot(r("m")).await;
    }

    let text = handle.render();
    for line in [
        "weft_server_shed_total{limit=\"rate\"} 1",
        "weft_server_shed_total{limit=\"concurrency\"} 1",
        "weft_client_retries_total 2",
        "weft_breaker_transitions_total{scope=\"method\",to=\"open\"} 1",
        "weft_breaker_state{scope=\"method\",name=\"m\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}

/// A propagator that marks what it was asked to do.
#[derive(Default)]
struct Marker(std::sync::atomic::AtomicUsize);

impl Propagator for Marker {
    fn inject(&self, span: &tracing::Span, carrier: &mut weft_core::KvList) {
        carrier.insert("x-injected", if span.is_none() { "none" } else { "span" });
    }

    fn extract(&self, carrier: &weft_core::KvList, _: &tracing::Span) {
        if carrier.get("x-injected").is_some() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test]
async fn a_propagator_replaces_weft_s_own_trace_context() {
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(None));
    let s2 = seen.clone();
    let client = ObserveLayer::client(System::Thrift)
        .propagator(std::sync::Arc::new(Marker::default()))
        .layer(service_fn(move |r: Request<()>| {
            *s2.lock() = Some(r.cx.metainfo.transient.clone());
            std::future::ready(Ok::<_, Status>(Response::new(r.cx, ())))
        }));
    TraceContext::root()
        .scope(client.oneshot(req("m")))
        .await
        .unwrap();
    let sent = seen.lock().clone().unwrap();
    assert!(sent.get("x-injected").is_some());
    assert!(sent.get(TRACEPARENT).is_none(), "{sent:?}");
    // The server hands the upstream values to the propagator, and keeps
    // no Weft context of its own for the handler.
    let marker = std::sync::Arc::new(Marker::default());
    let server = ObserveLayer::server(System::Thrift)
        .propagator(marker.clone())
        .layer(service_fn(|r: Request<()>| {
            assert!(TraceContext::current().is_none());
            std::future::ready(Ok::<_, Status>(Response::new(r.cx, ())))
        }));
    let mut r = req("m");
    r.cx.metainfo.upstream = sent;
    server.oneshot(r).await.unwrap();
    assert_eq!(marker.0.load(Ordering::Relaxed), 1);
}

/// Records the `traceparent` the carrier held.
#[derive(Default)]
struct Seen(parking_lot::Mutex<Option<weft_core::faststr::FastStr>>);

impl Propagator for Seen {
    fn inject(&self, _: &tracing::Span, _: &mut weft_core::KvList) {}

    fn extract(&self, carrier: &weft_core::KvList, _: &tracing::Span) {
        *self.0.lock() = carrier.get(TRACEPARENT).cloned();
    }
}

#[tokio::test]
async fn a_propagator_reads_a_typed_traceparent_as_the_string_sent() {
    let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let seen = std::sync::Arc::new(Seen::default());
    let server = ObserveLayer::server(System::Thrift)
        .propagator(seen.clone())
        .layer(service_fn(|r: Request<()>| {
            // The handler sees it where the propagator did.
            assert!(r.cx.trace.is_empty());
            assert_eq!(r.cx.metainfo.upstream.get(TRACEPARENT).unwrap(), w3c);
            std::future::ready(Ok::<_, Status>(Response::new(r.cx, ())))
        }));
    let mut r = req("m");
    r.cx.trace =
        weft_core::TraceSlot::received(weft_core::TraceParent::parse(w3c.as_bytes()).unwrap());
    server.oneshot(r).await.unwrap();
    assert_eq!(seen.0.lock().as_deref(), Some(w3c));
}

/// A call's trace context is current only while its future is polled (a
/// client call made inside it continues the trace), is gone between polls
/// and after the call, and does not stay behind on the thread when the
/// handler panics in a poll: the next call on the thread starts a trace of
/// its own rather than joining the dead one.
#[tokio::test]
async fn the_trace_context_is_current_only_inside_the_calls_polls_even_after_a_panic() {
    let server = ObserveLayer::server(System::Thrift);
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let mut svc = server.layer(service_fn(move |r: Request<()>| {
        let seen = s2.clone();
        async move {
            // Current across an await in the handler, not only the first poll.
            tokio::task::yield_now().await;
            seen.lock().push(TraceContext::current());
            if r.cx.method == "panic" {
                panic!("handler panics mid-poll");
            }
            Ok::<_, Status>(Response::new(r.cx, ()))
        }
    }));
    let mut parent = Request::new(Context::new("svc", "ok"), ());
    let root = TraceContext::root();
    parent
        .cx
        .metainfo
        .upstream
        .insert(TRACEPARENT, root.traceparent());
    {
        let mut call = pin!(svc.ready().await.unwrap().call(parent));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(call.as_mut().poll(&mut cx).is_pending());
        // Between polls the call's context is not the thread's.
        assert!(TraceContext::current().is_none());
        assert!(call.as_mut().poll(&mut cx).is_ready());
    }
    let inside = seen.lock()[0].clone().expect("current inside the handler");
    assert_eq!(inside.trace_id, root.trace_id);
    assert!(TraceContext::current().is_none());

    let panicked = std::panic::AssertUnwindSafe(svc.ready().await.unwrap().call(req("panic")));
    let caught = futures::FutureExt::catch_unwind(panicked).await;
    assert!(caught.is_err());
    let dead = seen.lock()[1]
        .clone()
        .expect("current inside the panicking handler");
    assert!(
        TraceContext::current().is_none(),
        "a panicked poll left its context on the thread"
    );
    svc.ready().await.unwrap().call(req("ok")).await.unwrap();
    let next = seen.lock()[2].clone().unwrap();
    assert_ne!(next.trace_id, dead.trace_id);
}
