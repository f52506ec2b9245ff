//! Observability over gRPC: the trace context across a hop (the observed
//! client stack sends `traceparent` as plain gRPC metadata, and the
//! observed server continues that trace for its handler), and the message
//! sizes both stacks record.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use weft::{
    core::{bytes::Bytes, tower, Code, Context, Request, ServerBuilder, StaticDiscover},
    middleware::{
        observe::{TraceContext, TRACEPARENT},
        ClientStack, ObserveLayer, ServerStack, System,
    },
    protobuf::{encoded_len, GrpcClient, GrpcServer, Metadata, PREFIX_LEN},
};
use weft_grpc_tests::{
    pb::*,
    server::Interop,
    service::{TestServiceClient, TestServiceRequest, TestServiceResponse, TestServiceServer},
};

/// What the handler saw: the `traceparent` header, the caller's context
/// as the codec read it, and the context current while it ran.
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
            upstream: TraceContext::received(&req.cx),
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
    let sent = seen.upstream.expect("the caller's traceparent");
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

/// `name`'s `_count` and `_sum` for `service`/`method` in Prometheus text.
fn histogram(text: &str, name: &str, service: &str, method: &str) -> (f64, f64) {
    let find = |suffix: &str| {
        let head = format!("{name}_{suffix}{{service=\"{service}\",method=\"{method}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(head.as_str()))
            .map_or(0.0, |v| v.parse().unwrap())
    };
    (find("count"), find("sum"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_sizes_are_the_length_prefixed_messages_on_the_wire() {
    let prometheus = weft_middleware::observe::admin::prometheus_builder()
        .install_recorder()
        .unwrap();
    let svc = "grpc.testing.TestService";
    let stack = ServerStack::new().observe(Some(ObserveLayer::server(System::Grpc)));
    let server = GrpcServer::new()
        .add_service::<TestServiceRequest, TestServiceResponse, _>(
            stack.build(TestServiceServer::new(Interop)),
        )
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let discover = StaticDiscover::from_addresses([server.local_addr().clone()]);
    let stack = ClientStack::new()
        .observe(Some(ObserveLayer::client(System::Grpc)))
        .retry(None)
        .build(&discover, svc, |inst| GrpcClient::new(inst.address.clone()))
        .unwrap();
    let client = TestServiceClient::new(stack);
    let cx = || {
        let mut cx = Context::default();
        cx.set_timeout(Duration::from_secs(5));
        cx
    };
    let payload = |n: usize| Payload {
        r#type: PayloadType::COMPRESSABLE,
        body: Bytes::from(vec![7u8; n]),
    };
    // Two answered calls whose sizes the messages give; one answered in
    // gzip, whose wire size is what the compressor made of it; one that
    // fails (trailers only: no response message).
    let mut want_req = 0;
    let mut want_resp = 0;
    for (size, response_size) in [(10, 100), (3000, 1)] {
        let req = SimpleRequest {
            response_size,
            payload: Some(payload(size)),
            ..Default::default()
        };
        let resp = client.unary_call(cx(), &req).await.unwrap();
        want_req += PREFIX_LEN + encoded_len(&req);
        want_resp += PREFIX_LEN + encoded_len(&resp.message);
    }
    let gzip = SimpleRequest {
        response_size: 64 * 1024,
        response_compressed: Some(BoolValue { value: true }),
        ..Default::default()
    };
    let resp = client.unary_call(cx(), &gzip).await.unwrap();
    let plain = PREFIX_LEN + encoded_len(&resp.message);
    want_req += PREFIX_LEN + encoded_len(&gzip);
    let failing = SimpleRequest {
        response_status: Some(EchoStatus {
            code: 2,
            message: "scripted".into(),
        }),
        ..Default::default()
    };
    let err = client.unary_call(cx(), &failing).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown, "{err}");
    want_req += PREFIX_LEN + encoded_len(&failing);

    // The server records an answer once it is handed to h2, after its own
    // layer finished: wait until all four calls are in.
    let mut text = prometheus.render();
    for _ in 0..100 {
        if histogram(&text, "weft_server_response_bytes", svc, "UnaryCall").0 == 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        text = prometheus.render();
    }
    for side in ["client", "server"] {
        let req = histogram(
            &text,
            &format!("weft_{side}_request_bytes"),
            svc,
            "UnaryCall",
        );
        assert_eq!(req, (4.0, want_req as f64), "{side} requests in\n{text}");
        let (n, sum) = histogram(
            &text,
            &format!("weft_{side}_response_bytes"),
            svc,
            "UnaryCall",
        );
        assert_eq!(n, 3.0, "{side} answers with a message in\n{text}");
        // The gzip answer's size is its compressed bytes: far below the
        // 64 KiB of zeros it decodes to.
        let gz = sum - want_resp as f64;
        assert!(
            gz > 0.0 && gz < plain as f64 / 10.0,
            "{side}: gzip answer {gz} of {plain}"
        );
    }
    let server_sum = histogram(&text, "weft_server_response_bytes", svc, "UnaryCall").1;
    let client_sum = histogram(&text, "weft_client_response_bytes", svc, "UnaryCall").1;
    assert_eq!(server_sum, client_sum, "answer bytes as sent and as read");
    server.shutdown().await;
}
