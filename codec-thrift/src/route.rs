//! Several services on one port: [`Routed`] picks the service a call is for
//! by the name the peer gave (`TMultiplexedProtocol`'s `Service:` prefix or
//! the TTHeader `isn` header), and [`Route`] hands it to that service's
//! handler. Nest them for more than two services.

use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use bytes::Bytes;
use pilota::thrift::{TInputProtocol, TLengthProtocol, TOutputProtocol, ThriftException};
use tower::Service;
use weft_core::{Request, Response, Status};

use crate::codec::EntryMessage;

/// A message of one of two services.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed<A, B> {
    /// For the first service.
    First(A),
    /// For the second service.
    Second(B),
}

impl<A: EntryMessage, B: EntryMessage> EntryMessage for Routed<A, B> {
    fn encode<P: TOutputProtocol>(&self, p: &mut P) -> Result<(), ThriftException> {
        match self {
            Routed::First(a) => a.encode(p),
            Routed::Second(b) => b.encode(p),
        }
    }

    fn decode<P: TInputProtocol<Buf = Bytes>>(
        p: &mut P,
        service: &str,
        method: &str,
    ) -> Result<Self, ThriftException> {
        if A::accepts(service, method) {
            A::decode(p, service, method).map(Routed::First)
        } else {
            B::decode(p, service, method).map(Routed::Second)
        }
    }

    fn size<P: TLengthProtocol>(&self, p: &mut P) -> usize {
        match self {
            Routed::First(a) => a.size(p),
            Routed::Second(b) => b.size(p),
        }
    }

    fn oneway_result(service: &str, method: &str) -> Option<Self> {
        if A::accepts(service, method) {
            A::oneway_result(service, method).map(Routed::First)
        } else {
            B::oneway_result(service, method).map(Routed::Second)
        }
    }

    fn accepts(service: &str, method: &str) -> bool {
        A::accepts(service, method) || B::accepts(service, method)
    }
}

/// Serves [`Routed`] requests with one handler per service.
#[derive(Debug, Clone)]
pub struct Route<SA, SB> {
    first: SA,
    second: SB,
}

impl<SA, SB> Route<SA, SB> {
    /// Route the first service's calls to `first`, the second's to `second`.
    pub fn new(first: SA, second: SB) -> Self {
        Route { first, second }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>;

impl<A, B, RA, RB, SA, SB> Service<Request<Routed<A, B>>> for Route<SA, SB>
where
    SA: Service<Request<A>, Response = Response<RA>, Error = Status> + Clone + Send + 'static,
    SA::Future: Send + 'static,
    SB: Service<Request<B>, Response = Response<RB>, Error = Status> + Clone + Send + 'static,
    SB::Future: Send + 'static,
    A: Send + 'static,
    B: Send + 'static,
    RA: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<Routed<RA, RB>>;
    type Error = Status;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        // Each inner service is driven to readiness per call below, so one
        // busy service does not hold up the other.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Routed<A, B>>) -> Self::Future {
        use tower::ServiceExt;
        let Request { cx, message } = req;
        match message {
            Routed::First(a) => {
                let svc = self.first.clone();
                Box::pin(async move {
                    let r = svc.oneshot(Request::new(cx, a)).await?;
                    Ok(r.map(Routed::First))
                })
            }
            Routed::Second(b) => {
                let svc = self.second.clone();
                Box::pin(async move {
                    let r = svc.oneshot(Request::new(cx, b)).await?;
                    Ok(r.map(Routed::Second))
                })
            }
        }
    }
}
