//! Raw routes (`GrpcServer::add_raw_service`, `GrpcServer::fallback`): a
//! handler that takes encoded request messages and answers encoded replies,
//! called by Weft's generated client over a real socket. The unary interop
//! cases pass through one as through a generated service: compression both
//! ways, status and message, unknown methods and services.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use weft::{
    core::{tower::service_fn, Code, Context, Request, Response, ServerBuilder, Status},
    protobuf::{self as pb_rt, GrpcClient, GrpcLimits, GrpcServer, RawRequest},
};
use weft_grpc_tests::{
    cases::{run, Clients},
    pb::{Empty, Payload, SimpleRequest},
    server::Interop,
    service::{TestService, TestServiceClient},
};

/// What a raw handler saw of one call.
#[derive(Debug, Clone, Default)]
struct Seen {
    path: String,
    service: String,
    method: String,
    deadline: bool,
    persistent: Option<String>,
}

fn encode<M: pb_rt::Message>(m: &M) -> Bytes {
    let mut b = BytesMut::new();
    pb_rt::encode_into(m, &mut b);
    b.freeze()
}

/// `TestService`'s unary methods, served by decoding and encoding by hand
/// around the interop handler; anything else is `UNIMPLEMENTED`.
async fn interop_raw(
    seen: Arc<Mutex<Vec<Seen>>>,
    req: Request<RawRequest>,
) -> Result<Response<Bytes>, Status> {
    let Request {
        mut cx,
        message: call,
    } = req;
    seen.lock().unwrap().push(Seen {
        path: call.path.to_string(),
        service: cx.service.to_string(),
        method: cx.method.to_string(),
        deadline: cx.deadline.is_some(),
        persistent: cx.metainfo.persistent.get("tenant").map(|v| v.to_string()),
    });
    if let Some(v) = cx.metainfo.persistent.get("tenant").cloned() {
        cx.metainfo.backward.insert("served-for", v);
    }
    let reply = match &*call.path {
        "/grpc.testing.TestService/EmptyCall" => {
            let req: Empty = pb_rt::decode(call.message)?;
            encode(&Interop.empty_call(&mut cx, req).await?)
        }
        "/grpc.testing.TestService/UnaryCall" => {
            let req: SimpleRequest = pb_rt::decode(call.message)?;
            encode(&Interop.unary_call(&mut cx, req).await?)
        }
        p => return Err(Status::unimplemented(format!("no method {p}"))),
    };
    // The request's context goes back: backward metainfo, the echoed
    // metadata and a `Compress` the handler set ride on it.
    Ok(Response::new(cx, reply))
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn serve(server: impl FnOnce(Log) -> GrpcServer) -> (weft::core::ServerHandle, Log) {
    let log = Log::default();
    let handle = server(log.clone())
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (handle, log)
}

fn raw_service(
    log: Log,
) -> impl weft::core::tower::Service<
    Request<RawRequest>,
    Response = Response<Bytes>,
    Error = Status,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    service_fn(move |req| interop_raw(log.clone(), req))
}

fn cx() -> Context {
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_secs(10));
    cx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unary_interop_cases_pass_through_a_raw_service() {
    let (handle, log) = serve(|log| {
        GrpcServer::new().add_raw_service("grpc.testing.TestService", raw_service(log))
    })
    .await;
    let clients = Clients::new(handle.local_addr().clone());
    for case in [
        "empty_unary",
        "large_unary",
        "client_compressed_unary",
        "server_compressed_unary",
        "special_status_message",
        "unimplemented_method",
        "unimplemented_service",
    ] {
        run(&clients, case)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e:#}"));
    }
    let seen = log.lock().unwrap().clone();
    assert!(
        seen.iter().all(|s| s.service == "grpc.testing.TestService"),
        "only its own service reaches a named raw route: {seen:?}"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_call_carries_names_deadline_and_metainfo_both_ways() {
    let (handle, log) = serve(|log| {
        GrpcServer::new().add_raw_service("grpc.testing.TestService", raw_service(log))
    })
    .await;
    let client = TestServiceClient::new(GrpcClient::new(handle.local_addr().clone()));
    let mut call = cx();
    call.metainfo.persistent.insert("tenant", "acme");
    let req = SimpleRequest {
        response_size: 3,
        payload: Some(Payload {
            body: Bytes::from_static(b"abc"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let resp = client.unary_call(call, &req).await.unwrap();
    assert_eq!(
        resp.message.payload.map(|p| p.body.len()),
        Some(3),
        "the reply message arrives whole"
    );
    assert_eq!(
        resp.cx.metainfo.backward.get("served-for").map(|v| &**v),
        Some("acme")
    );
    let seen = log.lock().unwrap().pop().unwrap();
    assert_eq!(seen.path, "/grpc.testing.TestService/UnaryCall");
    assert_eq!(seen.service, "grpc.testing.TestService");
    assert_eq!(seen.method, "UnaryCall");
    assert!(seen.deadline, "grpc-timeout becomes the context's deadline");
    assert_eq!(seen.persistent.as_deref(), Some("acme"));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_takes_every_service_and_without_one_they_are_unimplemented() {
    // Only a fallback: every well-formed path reaches it.
    let (handle, log) = serve(|log| GrpcServer::new().fallback(raw_service(log))).await;
    let client = TestServiceClient::new(GrpcClient::new(handle.local_addr().clone()));
    client.empty_call(cx(), &Empty {}).await.unwrap();
    let e = client
        .unimplemented_service_call(cx(), &Empty {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    let seen = log.lock().unwrap().clone();
    let paths: Vec<_> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/grpc.testing.TestService/EmptyCall",
            "/grpc.testing.UnimplementedService/UnimplementedCall"
        ],
        "both calls reached the fallback"
    );
    assert_eq!(seen[1].service, "grpc.testing.UnimplementedService");
    assert_eq!(seen[1].method, "UnimplementedCall");
    handle.shutdown().await;

    // A named raw route only: another service is the server's UNIMPLEMENTED,
    // and never reaches the handler.
    let (handle, log) = serve(|log| {
        GrpcServer::new().add_raw_service("grpc.testing.TestService", raw_service(log))
    })
    .await;
    let client = TestServiceClient::new(GrpcClient::new(handle.local_addr().clone()));
    let e = client
        .unimplemented_service_call(cx(), &Empty {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    assert!(log.lock().unwrap().is_empty());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_request_is_refused_before_the_raw_handler() {
    let (handle, log) = serve(|log| {
        GrpcServer::new()
            .limits(GrpcLimits {
                max_recv_message: 1024,
                ..GrpcLimits::default()
            })
            .fallback(raw_service(log))
    })
    .await;
    let client = TestServiceClient::new(GrpcClient::new(handle.local_addr().clone()));
    let big = SimpleRequest {
        payload: Some(Payload {
            body: Bytes::from(vec![7u8; 4096]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = client.unary_call(cx(), &big).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(log.lock().unwrap().is_empty(), "the handler never ran");
    // The connection and server serve on.
    client.empty_call(cx(), &Empty {}).await.unwrap();
    handle.shutdown().await;
}
