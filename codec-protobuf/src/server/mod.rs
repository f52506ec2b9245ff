//! The gRPC server: a [`Protocol`] for Weft's [`ServerBuilder`], so gRPC is
//! served beside Thrift on one port, or alone.
//!
//! - `conn`: one HTTP/2 connection, its streams polled on its own task.
//! - `call`: one stream: headers to context, the body, the handler, the
//!   answer and its trailers.
//! - `raw`: routes whose handler takes and gives encoded messages.

mod call;
mod conn;
mod raw;

pub use raw::RawRequest;

use std::{collections::HashMap, fmt, future::Future, io, pin::Pin, sync::Arc};

use faststr::FastStr;
use futures::future::BoxFuture;
use tower::{Service, ServiceExt};
use weft_core::{
    Accepted, Address, Context, Protocol, Request, Response, ServerBuilder, ServerHandle, Status,
};

use crate::{
    compression::Encoding,
    limits::GrpcLimits,
    service::{
        EncodeStream, MethodKind, RequestBody, ResponseSink, ServiceRequest, ServiceResponse,
    },
};

/// The bytes an HTTP/2 connection begins with (RFC 9113, 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Ask the server to compress a response: put it in the response context's
/// extensions. Honoured when the client accepts the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compress(pub Encoding);

/// Marks a request whose message came compressed: the server puts it in
/// the call's context extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressed;

/// A gRPC server: services by name, and the bounds of its connections.
#[derive(Clone)]
#[must_use]
pub struct GrpcServer {
    routes: Arc<HashMap<FastStr, Arc<dyn Route>>>,
    /// Where a path that names no service in `routes` goes.
    fallback: Option<Arc<dyn Route>>,
    limits: GrpcLimits,
    compress: Option<Encoding>,
    /// Request bytes and unwritten answers held by all connections of this
    /// server.
    in_flight: Arc<crate::budget::Server>,
}

impl fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServer")
            .field("services", &self.routes.keys().collect::<Vec<_>>())
            .field("fallback", &self.fallback.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Default for GrpcServer {
    fn default() -> Self {
        GrpcServer::new()
    }
}

impl GrpcServer {
    /// A server with no services and default limits.
    pub fn new() -> GrpcServer {
        GrpcServer {
            routes: Arc::default(),
            fallback: None,
            limits: GrpcLimits::default(),
            compress: None,
            in_flight: Arc::default(),
        }
    }

    /// The HTTP/2 and message bounds. Default [`GrpcLimits::default`].
    pub fn limits(mut self, limits: GrpcLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Compress every response with `encoding` when the client accepts it.
    /// Default: only when a handler asks ([`Compress`]).
    pub fn send_compressed(mut self, encoding: Encoding) -> Self {
        self.compress = Some(encoding);
        self
    }

    /// Serve `service`, a generated `XServer` or any middleware around it,
    /// under its `.proto` name. A later service of the same name replaces
    /// an earlier one.
    pub fn add_service<Req, Resp, S>(mut self, service: S) -> Self
    where
        Req: ServiceRequest,
        Resp: ServiceResponse,
        S: Service<Request<Req>, Response = Response<Resp>, Error = Status>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let route: Arc<dyn Route> = Arc::new(ServiceRoute::<Req, Resp, S> {
            service,
            _types: std::marker::PhantomData,
        });
        Arc::make_mut(&mut self.routes).insert(FastStr::from_static_str(Req::SERVICE), route);
        self
    }

    /// Serve every unary method of the service named `name`
    /// (`package.Service`) with `service`, which takes each call's encoded
    /// request message and answers with the encoded reply
    /// ([`RawRequest`]): for services known only at run time. Limits,
    /// deadlines, metadata, compression and status trailers are as for a
    /// generated service; the handler sees every method name, and answers
    /// [`Status::unimplemented`] for those it does not serve. A later
    /// service of the same name, generated or raw, replaces an earlier one.
    pub fn add_raw_service<S>(mut self, name: impl Into<FastStr>, service: S) -> Self
    where
        S: Service<Request<RawRequest>, Response = Response<bytes::Bytes>, Error = Status>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let route: Arc<dyn Route> = Arc::new(raw::RawRoute { service });
        Arc::make_mut(&mut self.routes).insert(name.into(), route);
        self
    }

    /// Serve every call whose path names no added service with `service`,
    /// as [`GrpcServer::add_raw_service`] does (grpc-go's
    /// `UnknownServiceHandler`). Default: such calls get `UNIMPLEMENTED`.
    /// Paths that are not `/service/method` get `UNIMPLEMENTED` either way.
    pub fn fallback<S>(mut self, service: S) -> Self
    where
        S: Service<Request<RawRequest>, Response = Response<bytes::Bytes>, Error = Status>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.fallback = Some(Arc::new(raw::RawRoute { service }));
        self
    }

    /// Bind `addr` and serve gRPC alone on it (add the server to a
    /// [`ServerBuilder`] with [`ServerBuilder::protocol`] to serve it beside
    /// Thrift instead).
    pub async fn serve(self, builder: ServerBuilder, addr: &Address) -> io::Result<ServerHandle> {
        builder.protocol(self).serve_protocols(addr).await
    }
}

impl Protocol for GrpcServer {
    fn name(&self) -> &'static str {
        "grpc"
    }

    fn preface(&self) -> &'static [u8] {
        PREFACE
    }

    fn serve(&self, conn: Accepted) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let shared = Arc::new(conn::Shared {
            routes: self.routes.clone(),
            fallback: self.fallback.clone(),
            limits: self.limits.clone(),
            conn_limits: conn.limits.clone(),
            compress: self.compress,
            budget: crate::budget::Budget::new(
                self.in_flight.clone(),
                conn.limits.max_in_flight_bytes,
                conn.limits.max_in_flight_bytes_per_connection,
            ),
        });
        Box::pin(conn::serve(shared, conn))
    }
}

/// What a handler's answer becomes before it is written.
pub(crate) enum Answer {
    /// One message, encoded after a reserved prefix.
    One(bytes::BytesMut),
    /// Messages as they come.
    Stream(EncodeStream),
}

/// A method a [`Route`] serves.
pub(crate) struct RouteMethod {
    /// Its index, handed back to [`Route::call`].
    pub(crate) index: usize,
    /// Its name for the context; `None`: the name in the path.
    pub(crate) name: Option<&'static str>,
    /// Its shape.
    pub(crate) kind: MethodKind,
}

/// A call's answer: its context, the message(s), and where to report the
/// answer's size.
pub(crate) type Routed = (Context, Answer, Option<weft_core::wire::SizeSink>);

/// One service, its request and response types erased.
pub(crate) trait Route: Send + Sync {
    /// A method by name, if served.
    fn method(&self, name: &str) -> Option<RouteMethod>;

    /// Run the call to its answer; `path` is the call's, for raw routes
    /// (empty for generated ones, which know their paths). The answer
    /// comes with the sink an observing layer of the service offered for
    /// its sizes (told `request_bytes`, the one request message's size on
    /// the wire, when there is one).
    fn call(
        &self,
        method: usize,
        path: FastStr,
        cx: Context,
        body: RequestBody,
        request_bytes: Option<usize>,
    ) -> BoxFuture<'static, Result<Routed, Status>>;
}

struct ServiceRoute<Req, Resp, S> {
    service: S,
    _types: std::marker::PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp, S> Route for ServiceRoute<Req, Resp, S>
where
    Req: ServiceRequest,
    Resp: ServiceResponse,
    S: Service<Request<Req>, Response = Response<Resp>, Error = Status>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    fn method(&self, name: &str) -> Option<RouteMethod> {
        Req::METHODS
            .iter()
            .enumerate()
            .find(|(_, m)| m.name == name)
            .map(|(i, m)| RouteMethod {
                index: i,
                name: Some(m.name),
                kind: m.kind,
            })
    }

    fn call(
        &self,
        method: usize,
        _path: FastStr,
        cx: Context,
        body: RequestBody,
        request_bytes: Option<usize>,
    ) -> BoxFuture<'static, Result<Routed, Status>> {
        let mut service = self.service.clone();
        Box::pin(async move {
            let req = Req::from_body(method, body)?;
            let (resp, sizes) =
                call_observed(&mut service, Request::new(cx, req), request_bytes).await?;
            let mut one = bytes::BytesMut::new();
            let start = crate::frame::begin(&mut one);
            debug_assert_eq!(start, 0);
            let mut sink = ResponseSink::new(&mut one);
            resp.message.into_sink(&mut sink)?;
            let answer = match sink.stream.take() {
                Some(stream) => Answer::Stream(stream),
                None => Answer::One(one),
            };
            Ok((resp.cx, answer, sizes))
        })
    }
}

/// Call `service` with `req`, taking the size sink an observing layer of
/// the service offers from inside `call()`, which runs right here on this
/// thread (see `weft_core::wire`), and telling it `request_bytes`.
pub(crate) async fn call_observed<S, T, U>(
    service: &mut S,
    req: Request<T>,
    request_bytes: Option<usize>,
) -> Result<(Response<U>, Option<weft_core::wire::SizeSink>), Status>
where
    S: Service<Request<T>, Response = Response<U>, Error = Status>,
{
    service.ready().await?;
    drop(weft_core::wire::take());
    let fut = service.call(req);
    let sizes = weft_core::wire::take();
    if let (Some(sizes), Some(n)) = (&sizes, request_bytes) {
        sizes.request(n);
    }
    Ok((fut.await?, sizes))
}

pub(crate) use call::head as request_head;
