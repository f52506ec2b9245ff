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
        s2.lock().push(r.cx.metainfo.transient.clone());
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
    let child = TraceContext::extract(&seen[0]).unwrap();
    assert_eq!(child.trace_id, parent.trace_id);
    assert_ne!(child.span_id, parent.span_id);
    // Outside any trace, a call starts its own.
    let root = TraceContext::extract(&seen[1]).unwrap();
    assert_ne!(root.trace_id, parent.trace_id);
    assert!(TraceContext::current().is_none());
}
