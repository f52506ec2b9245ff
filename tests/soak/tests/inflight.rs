//! 1,000 calls on one multiplexed connection are in flight at the handler
//! at once: the handler holds every call until it has seen all of them, so
//! a server or client that serialised them, or capped them below 1,000,
//! would stall and fail here rather than pass slowly.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use tokio::sync::watch;
use tower::Service;
use weft::{
    core::{Address, ConnectionMode, Context, Limits, Request, Response, ServerBuilder, Status},
    thrift::{Protocol, ThriftServerCodec, Transport},
};
use weft_interop::{EchoClient, EchoHandler, EchoRequest, EchoResponse};

const CALLS: usize = 1000;

/// Counts calls in flight and holds each until `CALLS` have arrived.
#[derive(Clone)]
struct Gate {
    inner: EchoHandler,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    open: watch::Sender<bool>,
}

impl Service<Request<EchoRequest>> for Gate {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<EchoResponse>, Status>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let now = this.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            this.peak.fetch_max(now, Ordering::SeqCst);
            if now >= CALLS {
                this.open.send_replace(true);
            }
            let mut rx = this.open.subscribe();
            // Bounded, so that a server that never lets 1,000 in fails the
            // assertion below instead of hanging the test.
            let _ = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|o| *o)).await;
            let r = tower::ServiceExt::oneshot(this.inner.clone(), req).await;
            this.in_flight.fetch_sub(1, Ordering::SeqCst);
            r
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_calls_are_in_flight_at_once() {
    let gate = Gate {
        inner: EchoHandler::default(),
        in_flight: Arc::default(),
        peak: Arc::default(),
        open: watch::Sender::new(false),
    };
    let limits = Limits::default();
    let server = ServerBuilder::new()
        .serve(
            &"127.0.0.1:0".parse::<Address>().unwrap(),
            move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
            gate.clone(),
        )
        .await
        .unwrap();
    let client = EchoClient::new(
        server.local_addr(),
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    let calls: Vec<_> = (0..CALLS as i64)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { (i, c.add(Context::default(), i, 1000).await) })
        })
        .collect();
    for call in calls {
        let (i, r) = call.await.unwrap();
        assert_eq!(r.unwrap(), i + 1000, "call {i}");
    }
    assert_eq!(
        gate.peak.load(Ordering::SeqCst),
        CALLS,
        "peak calls in flight at the handler"
    );
    assert_eq!(server.accepted(), 1, "all on one connection");
}
