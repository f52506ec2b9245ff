//! Trace context across a gRPC hop: the observed client stack sends
//! `traceparent` as plain gRPC metadata, and the observed server continues
//! that trace for its handler.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use weft::{
    core::{tower, Context, Request, ServerBuilder, StaticDiscover},
    middleware::{
        observe::{TraceContext, TRACEPARENT},
        ClientStack, ObserveLayer, ServerStack, System,
    },
    protobuf::{GrpcClient, GrpcServer, Metadata},
};
use weft_grpc_tests::{
    pb::*,
    server::Interop,
    service::{TestServiceClient, TestServiceRequest, TestServiceResponse, TestServiceServer},
};

/// What the handler saw: the `traceparent` header, the caller's context
/// as upstream metainfo, and the context current while it ran.
#[derive(Debug, Default, Clone)]
struct Seen {
    header: Option<String>,
    upstream: Option<TraceContext>,
    current: Option<TraceContext>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_crosses_a_grpc_hop_in_metadata() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let inner = TestServiceServer::new(Interop);
    let handler = tower::service_fn(move |req: Request<TestServiceRequest>| {
        let mut inner = inner.clone();
        *s2.lock().unwrap() = Seen {
            header: req
                .cx
                .extensions
                .get::<Metadata>()
                .and_then(|m| m.0.get(TRACEPARENT))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            upstream: TraceContext::extract(&req.cx.metainfo.upstream),
            current: TraceContext::current(),
        };
        async move { tower::Service::call(&mut inner, req).await }
    });
    let stack = ServerStack::new().observe(Some(ObserveLayer::server(System::Grpc)));
    let server = GrpcServer::new()
        .add_service::<TestServiceRequest, TestServiceResponse, _>(stack.build(handler))
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let discover = StaticDiscover::from_addresses([server.local_addr().clone()]);
    let stack = ClientStack::new()
        .observe(Some(ObserveLayer::client(System::Grpc)))
        .build(&discover, "grpc.testing.TestService", |inst| {
            GrpcClient::new(inst.address.clone())
        })
        .unwrap();
    let client = TestServiceClient::new(stack);
    let root = TraceContext::root();
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_secs(5));
    root.clone()
        .scope(client.empty_call(cx, &Empty {}))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    // The client's span: a child of the root, sent as the W3C header.
    let sent = seen.upstream.expect("a traceparent in upstream metainfo");
    assert_eq!(seen.header.as_deref(), Some(sent.to_string().as_str()));
    assert_eq!(sent.trace_id, root.trace_id);
    assert_ne!(sent.span_id, root.span_id);
    // The server's span: same trace, a span of its own, current for the
    // handler (so its own calls would continue the trace).
    let current = seen.current.expect("the server's trace context");
    assert_eq!(current.trace_id, root.trace_id);
    assert!(current.span_id != sent.span_id && current.span_id != root.span_id);
    server.shutdown().await;
}
