//! The gRPC rows of the load generator: Weft's gRPC and tonic, both
//! serving `idl/echo.proto`'s `Echo` (one string, echoed), each client on
//! one HTTP/2 connection shared by every caller.
//!
//! Weft's side is written in the shape its `.proto` codegen emits; tonic's
//! service and client are what `tonic-build` generates, written out so the
//! benchmark needs no `protoc`. Each uses its framework's own message
//! type: pilota's (`FastStr`, sliced from the received buffer) and prost's
//! (`String`).

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
};

use faststr::FastStr;
use weft::{
    core::{Address, Context, Request, Response, ServerBuilder, ServerHandle, Status},
    protobuf::{
        client, GrpcClient, GrpcServer, MethodDesc, MethodKind, RequestBody, ResponseSink,
        ServiceRequest, ServiceResponse, Validate,
    },
};

#[allow(clippy::all, missing_docs, unreachable_pub, unused)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/echo_pb.rs"));
}

use pb::echo_pb::bench::EchoMsg;

impl Validate for EchoMsg {
    fn validate(&self) -> Result<(), Status> {
        weft::protobuf::validate::utf8(&self.msg, "EchoMsg.msg")
    }
}

const ECHO: MethodDesc = MethodDesc {
    name: "Echo",
    path: "/bench.Echo/Echo",
    kind: MethodKind::Unary,
};

struct EchoRequest(EchoMsg);
struct EchoResponse(EchoMsg);

impl ServiceRequest for EchoRequest {
    const SERVICE: &'static str = "bench.Echo";
    const METHODS: &'static [MethodDesc] = &[ECHO];
    fn from_body(method: usize, body: RequestBody) -> Result<Self, Status> {
        match method {
            0 => Ok(EchoRequest(body.message()?)),
            _ => Err(Status::unimplemented("no such method")),
        }
    }
}

impl ServiceResponse for EchoResponse {
    fn into_sink(self, sink: &mut ResponseSink<'_>) -> Result<(), Status> {
        sink.message(&self.0)
    }
}

/// Weft's echo handler: returns the argument, counting calls; its future
/// is ready at once, as the Thrift bench handler's.
#[derive(Clone)]
struct WeftEcho(Arc<AtomicU64>);

impl tower::Service<Request<EchoRequest>> for WeftEcho {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = std::future::Ready<Result<Response<EchoResponse>, Status>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        self.0.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(Response::new(req.cx, EchoResponse(req.message.0))))
    }
}

/// Start Weft's gRPC echo server with the default limits.
pub async fn weft_server(calls: Arc<AtomicU64>) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let handle = GrpcServer::new()
        .add_service::<EchoRequest, EchoResponse, _>(WeftEcho(calls))
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse()?)
        .await?;
    let Address::Tcp(addr) = handle.local_addr().clone() else {
        anyhow::bail!("not a TCP address");
    };
    Ok((addr, handle))
}

/// Weft's gRPC client: one connection, shared by every caller.
#[derive(Clone, Debug)]
pub struct WeftGrpcClient(GrpcClient);

impl WeftGrpcClient {
    /// A client of `addr`.
    pub fn new(addr: SocketAddr) -> WeftGrpcClient {
        WeftGrpcClient(GrpcClient::new(Address::Tcp(addr)))
    }

    /// One echo; the length of the answer.
    pub async fn echo(&self, msg: &FastStr) -> anyhow::Result<usize> {
        let req = EchoMsg { msg: msg.clone() };
        let resp: Response<EchoMsg> =
            client::unary(&self.0, Context::default(), &ECHO, &req).await?;
        Ok(resp.message.msg.len())
    }
}

// ===== tonic =====

/// prost's message for `EchoMsg`, as prost-build derives it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TonicEchoMsg {
    #[prost(string, tag = "1")]
    msg: String,
}

/// tonic's server for `bench.Echo`, as tonic-build generates it.
#[derive(Clone)]
struct TonicEchoServer(Arc<AtomicU64>);

impl tonic::server::NamedService for TonicEchoServer {
    const NAME: &'static str = "bench.Echo";
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<B> tower::Service<http::Request<B>> for TonicEchoServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFut<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match req.uri().path() {
            "/bench.Echo/Echo" => {
                struct Svc(Arc<AtomicU64>);
                impl tonic::server::UnaryService<TonicEchoMsg> for Svc {
                    type Response = TonicEchoMsg;
                    type Future = BoxFut<Result<tonic::Response<TonicEchoMsg>, tonic::Status>>;
                    fn call(&mut self, req: tonic::Request<TonicEchoMsg>) -> Self::Future {
                        self.0.fetch_add(1, Ordering::Relaxed);
                        // tonic-build boxes the handler's `async fn`.
                        Box::pin(async move { Ok(tonic::Response::new(req.into_inner())) })
                    }
                }
                let calls = self.0.clone();
                Box::pin(async move {
                    let codec = tonic_prost::ProstCodec::<TonicEchoMsg, TonicEchoMsg>::default();
                    let mut grpc = tonic::server::Grpc::new(codec);
                    Ok(grpc.unary(Svc(calls), req).await)
                })
            }
            _ => Box::pin(
                async move { Ok(tonic::Status::unimplemented("no such method").into_http()) },
            ),
        }
    }
}

/// Start tonic's echo server with its defaults.
pub async fn tonic_server(
    calls: Arc<AtomicU64>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Nagle off on accepted sockets, as Weft's and Volo's servers do (and
    // tonic's own `bind` does): otherwise delayed ACKs add 40 ms.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(TonicEchoServer(calls))
            .serve_with_incoming(incoming)
            .await;
    });
    Ok((addr, task))
}

/// tonic's client: one `Channel` (one connection), cloned per caller, as
/// generated clients are.
#[derive(Clone, Debug)]
pub struct TonicClient(tonic::client::Grpc<tonic::transport::Channel>);

impl TonicClient {
    /// Connect to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<TonicClient> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(TonicClient(tonic::client::Grpc::new(channel)))
    }

    /// One echo; the length of the answer.
    pub async fn echo(&mut self, msg: &FastStr) -> anyhow::Result<usize> {
        self.0.ready().await?;
        let codec = tonic_prost::ProstCodec::<TonicEchoMsg, TonicEchoMsg>::default();
        let req = tonic::Request::new(TonicEchoMsg {
            msg: msg.as_str().to_owned(),
        });
        let path = http::uri::PathAndQuery::from_static("/bench.Echo/Echo");
        let resp = self.0.unary(req, path, codec).await?;
        Ok(resp.into_inner().msg.len())
    }
}
