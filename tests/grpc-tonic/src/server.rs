//! The interop `TestService` in tonic.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt};
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use tonic::{codec::SingleMessageCompressionOverride, Code, Request, Response, Status, Streaming};

use crate::pb::*;

pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Debug, Clone, Default)]
pub struct Interop;

fn payload(size: i32) -> Result<Payload, Status> {
    let size = usize::try_from(size)
        .map_err(|_| Status::invalid_argument(format!("negative size {size}")))?;
    Ok(Payload {
        r#type: PayloadType::Compressable as i32,
        body: vec![0; size],
    })
}

fn check_status(s: &Option<EchoStatus>) -> Result<(), Status> {
    match s {
        Some(s) if s.code != 0 => Err(Status::new(Code::from_i32(s.code), s.message.clone())),
        _ => Ok(()),
    }
}

/// tonic hides each message's compressed flag; the request's
/// `grpc-encoding` says whether the client compresses at all.
fn compressed<T>(req: &Request<T>) -> bool {
    req.metadata()
        .get("grpc-encoding")
        .is_some_and(|e| e != "identity")
}

fn check_compressed(expect: &Option<BoolValue>, compressed: bool) -> Result<(), Status> {
    if expect.as_ref().is_some_and(|e| e.value) && !compressed {
        return Err(Status::invalid_argument(
            "expected a compressed request message",
        ));
    }
    Ok(())
}

fn outputs(params: Vec<ResponseParameters>) -> BoxStream<StreamingOutputCallResponse> {
    futures::stream::iter(params)
        .then(|p| async move {
            if p.interval_us > 0 {
                tokio::time::sleep(Duration::from_micros(p.interval_us as u64)).await;
            }
            Ok(StreamingOutputCallResponse {
                payload: Some(payload(p.size)?),
            })
        })
        .boxed()
}

#[tonic::async_trait]
impl test_service_server::TestService for Interop {
    async fn empty_call(&self, _req: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn unary_call(
        &self,
        req: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let was_compressed = compressed(&req);
        let req = req.into_inner();
        check_compressed(&req.expect_compressed, was_compressed)?;
        check_status(&req.response_status)?;
        let mut resp = Response::new(SimpleResponse {
            payload: Some(payload(req.response_size)?),
            ..Default::default()
        });
        if !req.response_compressed.is_some_and(|b| b.value) {
            resp.extensions_mut()
                .insert(SingleMessageCompressionOverride::Disable);
        }
        Ok(resp)
    }

    async fn cacheable_unary_call(
        &self,
        req: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        self.unary_call(req).await
    }

    type StreamingOutputCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn streaming_output_call(
        &self,
        req: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<Self::StreamingOutputCallStream>, Status> {
        let req = req.into_inner();
        check_status(&req.response_status)?;
        Ok(Response::new(outputs(req.response_parameters)))
    }

    async fn streaming_input_call(
        &self,
        req: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let was_compressed = compressed(&req);
        let mut s = req.into_inner();
        let mut total = 0usize;
        while let Some(m) = s.message().await? {
            check_compressed(&m.expect_compressed, was_compressed)?;
            total += m.payload.map_or(0, |p| p.body.len());
        }
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size: total as i32,
        }))
    }

    type FullDuplexCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn full_duplex_call(
        &self,
        req: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::FullDuplexCallStream>, Status> {
        let out = req
            .into_inner()
            .map(|r| {
                r.and_then(|r| {
                    check_status(&r.response_status)?;
                    Ok(outputs(r.response_parameters))
                })
            })
            .flat_map(|r| match r {
                Ok(s) => s,
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            });
        Ok(Response::new(out.boxed()))
    }

    type HalfDuplexCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn half_duplex_call(
        &self,
        req: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::HalfDuplexCallStream>, Status> {
        let mut s = req.into_inner();
        let mut params = Vec::new();
        while let Some(m) = s.message().await? {
            params.extend(m.response_parameters);
        }
        Ok(Response::new(outputs(params)))
    }

    async fn unimplemented_call(&self, _req: Request<Empty>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented(
            "UnimplementedCall is not implemented",
        ))
    }
}

/// The interop metadata echo at the HTTP level (tonic's handlers cannot
/// set a unary call's trailers): the initial value goes back as a header,
/// the trailing one is added to the trailers, whatever the call's shape.
#[derive(Debug, Clone)]
pub struct EchoMetadata<S>(pub S);

impl<S, B> tower::Service<http::Request<B>> for EchoMetadata<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let initial = req.headers().get(ECHO_INITIAL).cloned();
        let trailing = req.headers().get(ECHO_TRAILING).cloned();
        let call = self.0.call(req);
        Box::pin(async move {
            let mut resp = call.await?;
            if let Some(v) = initial {
                resp.headers_mut().insert(ECHO_INITIAL, v);
            }
            let Some(v) = trailing else {
                return Ok(resp);
            };
            Ok(resp.map(|body| tonic::body::Body::new(add_trailer(body, v))))
        })
    }
}

fn add_trailer(
    body: tonic::body::Body,
    v: HeaderValue,
) -> impl http_body::Body<Data = bytes::Bytes, Error = Status> + Send + 'static {
    body.map_frame(move |frame| match frame.into_trailers() {
        Ok(mut t) => {
            t.insert(HeaderName::from_static(ECHO_TRAILING), v.clone());
            http_body::Frame::trailers(t)
        }
        Err(frame) => frame,
    })
}
