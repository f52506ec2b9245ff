//! Routes for messages the server does not decode: a handler that takes the
//! encoded request message and answers with the encoded reply, for a
//! service known only by name at run time, or for every path no service
//! claims (grpc-go's `UnknownServiceHandler`, tonic's `Routes` fallback).
//! Bridges, proxies and the C shim serve gRPC this way.

use bytes::{BufMut, Bytes, BytesMut};
use faststr::FastStr;
use futures::future::BoxFuture;
use tower::Service;
use weft_core::{Context, Request, Response, Status};

use super::{Answer, Route, RouteMethod, Routed};
use crate::{
    frame::PREFIX_LEN,
    service::{MethodKind, RequestBody},
};

/// One unary call on a raw route.
///
/// The request's [`Context`] carries the service and method names (from
/// the path), the deadline from `grpc-timeout` and the metainfo from the
/// metadata, as for a generated service. The handler answers with the
/// encoded reply message in a [`Response`] (backward metainfo, and a
/// [`Compress`](super::Compress) in its extensions, go back as for a
/// generated service), or with a [`Status`] sent as `grpc-status` and
/// `grpc-message`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RawRequest {
    /// The method's path on the wire, `/package.Service/Method`.
    pub path: FastStr,
    /// The request message, decompressed, still encoded. Within the
    /// server's [`GrpcLimits::max_recv_message`](crate::GrpcLimits).
    pub message: Bytes,
}

/// A raw handler as a [`Route`]: every method name is served, as unary.
pub(crate) struct RawRoute<S> {
    pub(crate) service: S,
}

impl<S> Route for RawRoute<S>
where
    S: Service<Request<RawRequest>, Response = Response<Bytes>, Error = Status>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    fn method(&self, _name: &str) -> Option<RouteMethod> {
        Some(RouteMethod {
            index: 0,
            name: None,
            kind: MethodKind::Unary,
        })
    }

    fn call(
        &self,
        _method: usize,
        path: FastStr,
        cx: Context,
        body: RequestBody,
        request_bytes: Option<usize>,
    ) -> BoxFuture<'static, Result<Routed, Status>> {
        let mut service = self.service.clone();
        Box::pin(async move {
            let message = match body {
                RequestBody::Message(m) => m,
                RequestBody::Stream(_) => {
                    return Err(Status::internal("a raw route got a streaming body"))
                }
            };
            let req = Request::new(cx, RawRequest { path, message });
            let (resp, sizes) = super::call_observed(&mut service, req, request_bytes).await?;
            // The reply goes out after its prefix in one DATA frame, so it
            // is copied once behind the reserved prefix.
            let mut one = BytesMut::with_capacity(PREFIX_LEN + resp.message.len());
            one.put_bytes(0, PREFIX_LEN);
            one.put_slice(&resp.message);
            Ok((resp.cx, Answer::One(one), sizes))
        })
    }
}
