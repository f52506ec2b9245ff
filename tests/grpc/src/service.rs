//! `grpc.testing.TestService` and `UnimplementedService` on Weft's gRPC
//! runtime: the request and response enums, the handler trait, the server
//! and the typed client, written in the shape Weft's `.proto` codegen emits
//! (so the runtime is tested against that contract on its own), and the
//! `Validate` impls for the interop messages.

use std::{future::Future, sync::Arc};

use futures::Stream;
use weft::{
    core::{Context, Request, Response, Status},
    protobuf::{
        client::{self, Streams},
        validate, GrpcCall, GrpcClient, GrpcServer, MethodDesc, MethodKind, RequestBody,
        ResponseSink, ResponseStream, ServiceRequest, ServiceResponse, Streaming, Validate,
    },
};

use crate::pb::*;

macro_rules! always_valid {
    ($($t:ty),*) => {$(
        impl Validate for $t {
            fn validate(&self) -> Result<(), Status> { Ok(()) }
        }
    )*};
}
always_valid!(
    Empty,
    BoolValue,
    Payload,
    StreamingInputCallResponse,
    ReconnectParams,
    ReconnectInfo
);

impl Validate for EchoStatus {
    fn validate(&self) -> Result<(), Status> {
        validate::utf8(&self.message, "EchoStatus.message")
    }
}
impl Validate for ResponseParameters {
    fn validate(&self) -> Result<(), Status> {
        self.compressed.validate()
    }
}
impl Validate for SimpleRequest {
    fn validate(&self) -> Result<(), Status> {
        self.payload.validate()?;
        self.response_compressed.validate()?;
        self.response_status.validate()?;
        self.expect_compressed.validate()
    }
}
impl Validate for SimpleResponse {
    fn validate(&self) -> Result<(), Status> {
        self.payload.validate()?;
        validate::utf8(&self.username, "SimpleResponse.username")?;
        validate::utf8(&self.oauth_scope, "SimpleResponse.oauth_scope")
    }
}
impl Validate for StreamingInputCallRequest {
    fn validate(&self) -> Result<(), Status> {
        self.payload.validate()?;
        self.expect_compressed.validate()
    }
}
impl Validate for StreamingOutputCallRequest {
    fn validate(&self) -> Result<(), Status> {
        validate::all(&self.response_parameters)?;
        self.payload.validate()?;
        self.response_status.validate()
    }
}
impl Validate for StreamingOutputCallResponse {
    fn validate(&self) -> Result<(), Status> {
        self.payload.validate()
    }
}

/// `grpc.testing.TestService`.
pub const TEST_SERVICE: &str = "grpc.testing.TestService";

macro_rules! desc {
    ($c:ident, $svc:literal, $name:literal, $kind:ident) => {
        #[doc = concat!("`/", $svc, "/", $name, "`.")]
        pub const $c: MethodDesc = MethodDesc {
            name: $name,
            path: concat!("/", $svc, "/", $name),
            kind: MethodKind::$kind,
        };
    };
}
desc!(EMPTY_CALL, "grpc.testing.TestService", "EmptyCall", Unary);
desc!(UNARY_CALL, "grpc.testing.TestService", "UnaryCall", Unary);
desc!(
    CACHEABLE_UNARY_CALL,
    "grpc.testing.TestService",
    "CacheableUnaryCall",
    Unary
);
desc!(
    STREAMING_OUTPUT_CALL,
    "grpc.testing.TestService",
    "StreamingOutputCall",
    ServerStreaming
);
desc!(
    STREAMING_INPUT_CALL,
    "grpc.testing.TestService",
    "StreamingInputCall",
    ClientStreaming
);
desc!(
    FULL_DUPLEX_CALL,
    "grpc.testing.TestService",
    "FullDuplexCall",
    BidiStreaming
);
desc!(
    HALF_DUPLEX_CALL,
    "grpc.testing.TestService",
    "HalfDuplexCall",
    BidiStreaming
);
desc!(
    UNIMPLEMENTED_CALL,
    "grpc.testing.TestService",
    "UnimplementedCall",
    Unary
);
desc!(
    UNIMPLEMENTED_SERVICE_CALL,
    "grpc.testing.UnimplementedService",
    "UnimplementedCall",
    Unary
);

/// A call of `TestService`.
#[allow(missing_docs)]
pub enum TestServiceRequest {
    EmptyCall(Empty),
    UnaryCall(SimpleRequest),
    CacheableUnaryCall(SimpleRequest),
    StreamingOutputCall(StreamingOutputCallRequest),
    StreamingInputCall(Streaming<StreamingInputCallRequest>),
    FullDuplexCall(Streaming<StreamingOutputCallRequest>),
    HalfDuplexCall(Streaming<StreamingOutputCallRequest>),
    UnimplementedCall(Empty),
}

/// An answer of `TestService`.
#[allow(missing_docs)]
pub enum TestServiceResponse {
    EmptyCall(Empty),
    UnaryCall(SimpleResponse),
    CacheableUnaryCall(SimpleResponse),
    StreamingOutputCall(ResponseStream<StreamingOutputCallResponse>),
    StreamingInputCall(StreamingInputCallResponse),
    FullDuplexCall(ResponseStream<StreamingOutputCallResponse>),
    HalfDuplexCall(ResponseStream<StreamingOutputCallResponse>),
    UnimplementedCall(Empty),
}

impl ServiceRequest for TestServiceRequest {
    const SERVICE: &'static str = TEST_SERVICE;
    const METHODS: &'static [MethodDesc] = &[
        EMPTY_CALL,
        UNARY_CALL,
        CACHEABLE_UNARY_CALL,
        STREAMING_OUTPUT_CALL,
        STREAMING_INPUT_CALL,
        FULL_DUPLEX_CALL,
        HALF_DUPLEX_CALL,
        UNIMPLEMENTED_CALL,
    ];

    fn from_body(method: usize, body: RequestBody) -> Result<Self, Status> {
        Ok(match method {
            0 => Self::EmptyCall(body.message()?),
            1 => Self::UnaryCall(body.message()?),
            2 => Self::CacheableUnaryCall(body.message()?),
            3 => Self::StreamingOutputCall(body.message()?),
            4 => Self::StreamingInputCall(body.stream()?),
            5 => Self::FullDuplexCall(body.stream()?),
            6 => Self::HalfDuplexCall(body.stream()?),
            7 => Self::UnimplementedCall(body.message()?),
            _ => return Err(Status::unimplemented("no such method")),
        })
    }
}

impl ServiceResponse for TestServiceResponse {
    fn into_sink(self, sink: &mut ResponseSink<'_>) -> Result<(), Status> {
        match self {
            Self::EmptyCall(m) | Self::UnimplementedCall(m) => sink.message(&m),
            Self::UnaryCall(m) | Self::CacheableUnaryCall(m) => sink.message(&m),
            Self::StreamingInputCall(m) => sink.message(&m),
            Self::StreamingOutputCall(s) | Self::FullDuplexCall(s) | Self::HalfDuplexCall(s) => {
                sink.stream(s)
            }
        }
    }
}

/// The handler of `TestService`.
#[allow(missing_docs)]
pub trait TestService: Send + Sync + 'static {
    fn empty_call(
        &self,
        cx: &mut Context,
        req: Empty,
    ) -> impl Future<Output = Result<Empty, Status>> + Send;
    fn unary_call(
        &self,
        cx: &mut Context,
        req: SimpleRequest,
    ) -> impl Future<Output = Result<SimpleResponse, Status>> + Send;
    fn cacheable_unary_call(
        &self,
        cx: &mut Context,
        req: SimpleRequest,
    ) -> impl Future<Output = Result<SimpleResponse, Status>> + Send;
    fn streaming_output_call(
        &self,
        cx: &mut Context,
        req: StreamingOutputCallRequest,
    ) -> impl Future<Output = Result<ResponseStream<StreamingOutputCallResponse>, Status>> + Send;
    fn streaming_input_call(
        &self,
        cx: &mut Context,
        req: Streaming<StreamingInputCallRequest>,
    ) -> impl Future<Output = Result<StreamingInputCallResponse, Status>> + Send;
    fn full_duplex_call(
        &self,
        cx: &mut Context,
        req: Streaming<StreamingOutputCallRequest>,
    ) -> impl Future<Output = Result<ResponseStream<StreamingOutputCallResponse>, Status>> + Send;
    fn half_duplex_call(
        &self,
        cx: &mut Context,
        req: Streaming<StreamingOutputCallRequest>,
    ) -> impl Future<Output = Result<ResponseStream<StreamingOutputCallResponse>, Status>> + Send;
    fn unimplemented_call(
        &self,
        cx: &mut Context,
        req: Empty,
    ) -> impl Future<Output = Result<Empty, Status>> + Send;
}

/// `TestService` as a `tower::Service`.
pub struct TestServiceServer<H> {
    handler: Arc<H>,
}

impl<H> Clone for TestServiceServer<H> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
        }
    }
}

impl<H: TestService> TestServiceServer<H> {
    /// A server calling `handler`.
    pub fn new(handler: H) -> Self {
        Self {
            handler: Arc::new(handler),
        }
    }

    /// Add this service to `server`.
    pub fn register(self, server: GrpcServer) -> GrpcServer {
        server.add_service::<TestServiceRequest, TestServiceResponse, _>(self)
    }
}

impl<H: TestService> weft::core::tower::Service<Request<TestServiceRequest>>
    for TestServiceServer<H>
{
    type Response = Response<TestServiceResponse>;
    type Error = Status;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Response<TestServiceResponse>, Status>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Status>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<TestServiceRequest>) -> Self::Future {
        let h = self.handler.clone();
        Box::pin(async move {
            let Request { mut cx, message } = req;
            let m = match message {
                TestServiceRequest::EmptyCall(r) => {
                    TestServiceResponse::EmptyCall(h.empty_call(&mut cx, r).await?)
                }
                TestServiceRequest::UnaryCall(r) => {
                    TestServiceResponse::UnaryCall(h.unary_call(&mut cx, r).await?)
                }
                TestServiceRequest::CacheableUnaryCall(r) => {
                    TestServiceResponse::CacheableUnaryCall(
                        h.cacheable_unary_call(&mut cx, r).await?,
                    )
                }
                TestServiceRequest::StreamingOutputCall(r) => {
                    TestServiceResponse::StreamingOutputCall(
                        h.streaming_output_call(&mut cx, r).await?,
                    )
                }
                TestServiceRequest::StreamingInputCall(r) => {
                    TestServiceResponse::StreamingInputCall(
                        h.streaming_input_call(&mut cx, r).await?,
                    )
                }
                TestServiceRequest::FullDuplexCall(r) => {
                    TestServiceResponse::FullDuplexCall(h.full_duplex_call(&mut cx, r).await?)
                }
                TestServiceRequest::HalfDuplexCall(r) => {
                    TestServiceResponse::HalfDuplexCall(h.half_duplex_call(&mut cx, r).await?)
                }
                TestServiceRequest::UnimplementedCall(r) => {
                    TestServiceResponse::UnimplementedCall(h.unimplemented_call(&mut cx, r).await?)
                }
            };
            Ok(Response::new(cx, m))
        })
    }
}

/// A typed `TestService` client.
#[derive(Clone, Debug)]
pub struct TestServiceClient<T = GrpcClient> {
    inner: T,
}

impl<T> TestServiceClient<T> {
    /// A client calling through `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner }
    }
}

#[allow(missing_docs)]
impl<T> TestServiceClient<T>
where
    T: weft::core::tower::Service<
            Request<GrpcCall>,
            Response = Response<bytes::Bytes>,
            Error = Status,
        > + Clone
        + Send,
{
    pub async fn empty_call(&self, cx: Context, req: &Empty) -> Result<Response<Empty>, Status> {
        client::unary(&self.inner, cx, &EMPTY_CALL, req).await
    }
    pub async fn unary_call(
        &self,
        cx: Context,
        req: &SimpleRequest,
    ) -> Result<Response<SimpleResponse>, Status> {
        client::unary(&self.inner, cx, &UNARY_CALL, req).await
    }
    pub async fn unimplemented_call(
        &self,
        cx: Context,
        req: &Empty,
    ) -> Result<Response<Empty>, Status> {
        client::unary(&self.inner, cx, &UNIMPLEMENTED_CALL, req).await
    }
    /// `UnimplementedService/UnimplementedCall`, which the server does not
    /// serve.
    pub async fn unimplemented_service_call(
        &self,
        cx: Context,
        req: &Empty,
    ) -> Result<Response<Empty>, Status> {
        client::unary(&self.inner, cx, &UNIMPLEMENTED_SERVICE_CALL, req).await
    }
}

#[allow(missing_docs)]
impl<T: Streams> TestServiceClient<T> {
    pub async fn streaming_output_call(
        &self,
        cx: Context,
        req: &StreamingOutputCallRequest,
    ) -> Result<Response<Streaming<StreamingOutputCallResponse>>, Status> {
        client::server_streaming(self.inner.grpc_client(), cx, &STREAMING_OUTPUT_CALL, req).await
    }
    pub async fn streaming_input_call<S>(
        &self,
        cx: Context,
        reqs: S,
    ) -> Result<Response<StreamingInputCallResponse>, Status>
    where
        S: Stream<Item = StreamingInputCallRequest> + Send + 'static,
    {
        client::client_streaming(self.inner.grpc_client(), cx, &STREAMING_INPUT_CALL, reqs).await
    }
    pub async fn full_duplex_call<S>(
        &self,
        cx: Context,
        reqs: S,
    ) -> Result<Response<Streaming<StreamingOutputCallResponse>>, Status>
    where
        S: Stream<Item = StreamingOutputCallRequest> + Send + 'static,
    {
        client::bidi_streaming(self.inner.grpc_client(), cx, &FULL_DUPLEX_CALL, reqs).await
    }
}
