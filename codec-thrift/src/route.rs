//! Several services on one port: [`Routed`] picks the service a call is for
//! by the name the peer gave (`TMultiplexedProtocol`'s `Service:` prefix or
//! the TTHeader `isn` header), and [`Route`] hands it to that service's
//! handler. Nest them for more than two services.
//!
//! On the client side, [`split`] turns one client of [`Routed`] messages
//! into a client per service, so that several typed clients share one
//! connection.

use std::{
    future::Future,
    marker::PhantomData,
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

// ===== client side =====

/// Split a client of two services (one whose messages are [`Routed`], such
/// as a Weft client over one connection) into a client of each: the typed
/// clients built on them share its connections.
///
/// With a codec that names each call's service
/// ([`ThriftClientCodec::multiplexed_per_call`](crate::ThriftClientCodec::multiplexed_per_call)),
/// this is how a program calls several services of one Apache
/// `TMultiplexedProcessor` over one connection, which a single-threaded
/// Apache server (`TSimpleServer`) needs. Split the second half again for
/// a third service (`Routed<A, Routed<B, C>>`).
///
/// ```ignore
/// let codec = ThriftClientCodec::<Routed<AReq, BReq>, Routed<AResp, BResp>>::new(
///     Transport::Framed, Protocol::Binary, builder.limits_ref(),
/// )
/// .multiplexed_per_call();
/// let (a, b) = route::split(builder.mode(ConnectionMode::Pooled).build(codec));
/// let (a, b) = (AClient::from_service(a), BClient::from_service(b));
/// ```
pub fn split<S: Clone, B, A>(shared: S) -> (First<S, B>, Second<S, A>) {
    (
        First {
            inner: shared.clone(),
            _other: PhantomData,
        },
        Second {
            inner: shared,
            _other: PhantomData,
        },
    )
}

/// The first service's calls over a service of [`Routed`] messages, whose
/// second service's requests are `B`. Made by [`split`].
pub struct First<S, B> {
    inner: S,
    _other: PhantomData<fn() -> B>,
}

/// The second service's calls over a service of [`Routed`] messages, whose
/// first service's requests are `A`. Made by [`split`].
pub struct Second<S, A> {
    inner: S,
    _other: PhantomData<fn() -> A>,
}

macro_rules! half {
    ($half:ident, $variant:ident, $other:ident, $req:ident, $resp:ident, $what:literal) => {
        impl<S, $other> $half<S, $other> {
            /// The shared service.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }
        }

        impl<S: Clone, $other> Clone for $half<S, $other> {
            fn clone(&self) -> Self {
                $half {
                    inner: self.inner.clone(),
                    _other: PhantomData,
                }
            }
        }

        impl<S: std::fmt::Debug, $other> std::fmt::Debug for $half<S, $other> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($half)).field(&self.inner).finish()
            }
        }

        impl<S, A, B, RA, RB> Service<Request<$req>> for $half<S, $other>
        where
            S: Service<Request<Routed<A, B>>, Response = Response<Routed<RA, RB>>, Error = Status>,
        {
            type Response = Response<$resp>;
            type Error = Status;
            type Future = HalfFuture<S::Future, RA, RB, $resp>;

            fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, req: Request<$req>) -> Self::Future {
                HalfFuture {
                    inner: self.inner.call(req.map(Routed::$variant)),
                    pick: |r| match r {
                        Routed::$variant(r) => Some(r),
                        _ => None,
                    },
                    what: $what,
                }
            }
        }
    };
}

half!(First, First, B, A, RA, "the first");
half!(Second, Second, A, B, RB, "the second");

pin_project_lite::pin_project! {
    /// The future of a call made through [`First`] or [`Second`].
    pub struct HalfFuture<F, RA, RB, R> {
        #[pin]
        inner: F,
        pick: fn(Routed<RA, RB>) -> Option<R>,
        what: &'static str,
    }
}

impl<F, RA, RB, R> std::fmt::Debug for HalfFuture<F, RA, RB, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HalfFuture").finish_non_exhaustive()
    }
}

impl<F, RA, RB, R> Future for HalfFuture<F, RA, RB, R>
where
    F: Future<Output = Result<Response<Routed<RA, RB>>, Status>>,
{
    type Output = Result<Response<R>, Status>;

    fn poll(self: Pin<&mut Self>, tcx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Response { cx, message } = std::task::ready!(this.inner.poll(tcx))?;
        Poll::Ready(match (this.pick)(message) {
            Some(message) => Ok(Response { cx, message }),
            // The codec picks the service by the call's context; a
            // context naming the other service gets here.
            None => Err(Status::internal(format!(
                "{}.{}: the answer decoded as another service's, not {} service's",
                cx.service, cx.method, this.what
            ))),
        })
    }
}
