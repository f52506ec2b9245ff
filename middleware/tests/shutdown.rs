//! Graceful shutdown under load: three servers registered in one discover,
//! a client with the default stack (balancer, retries of what was not
//! processed, breakers) pipelining non-idempotent and one-way calls over
//! TTHeader (multiplexed) and framed (pooled) connections, and one server
//! shutting down in the middle. Every call gets one outcome, none is lost,
//! and no side effect happens twice: each server counts what it ran.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc, Mutex,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use futures::{stream, StreamExt};
use tower::{Service, ServiceExt};
use weft::core::{
    Address, ConnectionMode, Context, Instance, Request, Response, ServerBuilder, ServerHandle,
    StaticDiscover, Status,
};
use weft::thrift::{Protocol, ThriftServerCodec, Transport};
use weft_interop::{
    EchoAddArgsSend, EchoAddResultSend, EchoClient, EchoHandler, EchoNotifyArgsSend, EchoRequest,
    EchoResponse,
};
use weft_middleware::{ClientStack, RetryBudget, RetryLayer};

/// What the servers ran, by call id, summed over all of them.
#[derive(Debug, Default)]
struct Ledger {
    adds: Mutex<HashMap<i64, usize>>,
    notes: Mutex<HashMap<String, usize>>,
}

/// The echo handler, writing each call into the ledger first.
#[derive(Clone)]
struct Counting {
    ledger: Arc<Ledger>,
    inner: EchoHandler,
}

impl Service<Request<EchoRequest>> for Counting {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = <EchoHandler as Service<Request<EchoRequest>>>::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        match &req.message {
            EchoRequest::Add(a) => *self.ledger.adds.lock().unwrap().entry(a.a).or_default() += 1,
            EchoRequest::Notify(n) => {
                *self
                    .ledger
                    .notes
                    .lock()
                    .unwrap()
                    .entry(n.text.to_string())
                    .or_default() += 1
            }
            _ => {}
        }
        self.inner.call(req)
    }
}

async fn server(discover: &Arc<StaticDiscover>, ledger: &Arc<Ledger>) -> ServerHandle {
    let builder = ServerBuilder::new()
        .register(
            discover.clone(),
            "Echo",
            Instance::new("127.0.0.1:0".parse().unwrap()),
        )
        // Deregister and drain at once, so that calls race the drain.
        .deregister_grace(Duration::ZERO);
    let limits = builder.limits_ref().clone();
    let addr: Address = "127.0.0.1:0".parse().unwrap();
    builder
        .serve(
            &addr,
            move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
            Counting {
                ledger: ledger.clone(),
                inner: EchoHandler::default(),
            },
        )
        .await
        .unwrap()
}

async fn shutdown_under_load(transport: Transport, mode: ConnectionMode) {
    let discover = Arc::new(StaticDiscover::new([]));
    let ledger = Arc::new(Ledger::default());
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(server(&discover, &ledger).await);
    }
    assert_eq!(discover.current().len(), 3);
    let client = ClientStack::new()
        // Retries are safe only for what was not processed: `add` and
        // `notify` are not idempotent. The budget is not what is tested.
        .retry(Some(RetryLayer::default().budget(RetryBudget::unlimited())))
        .build(&*discover, "Echo", move |inst: &Instance| {
            EchoClient::new(&inst.address, transport, Protocol::Binary, mode).inner
        })
        .unwrap();

    let next = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, next, stop) = (client.clone(), next.clone(), stop.clone());
        tokio::spawn(async move {
            let callers = stream::iter(0..16).map(|_| {
                let (client, next, stop) = (client.clone(), next.clone(), stop.clone());
                async move {
                    let mut outcomes = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let id = next.fetch_add(1, Ordering::SeqCst);
                        let (method, message) = if id % 4 == 3 {
                            let text = format!("note-{id}").into();
                            ("notify", EchoRequest::Notify(EchoNotifyArgsSend { text }))
                        } else {
                            ("add", EchoRequest::Add(EchoAddArgsSend { a: id, b: 1 }))
                        };
                        let mut cx = Context::new("Echo", method);
                        cx.oneway = method == "notify";
                        cx.set_timeout(Duration::from_secs(5));
                        let r = client.clone().oneshot(Request::new(cx, message)).await;
                        outcomes.push((id, r.map(|r| r.message)));
                    }
                    outcomes
                }
            });
            callers
                .buffer_unordered(16)
                .flat_map(stream::iter)
                .collect::<Vec<_>>()
                .await
        })
    };

    // Counted in calls made, not waited for: the load is under way before
    // the shutdown and goes on after it.
    until("calls before the shutdown", || {
        next.load(Ordering::SeqCst) >= 500
    })
    .await;
    let leaving = servers.remove(0);
    let before = next.load(Ordering::SeqCst);
    leaving.shutdown().await;
    let after = next.load(Ordering::SeqCst);
    until("calls after the shutdown", || {
        next.load(Ordering::SeqCst) >= after + 500
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = load.await.unwrap();
    assert!(after > before, "calls were made while the server drained");
    // A one-way call returns once it is written, before the server runs
    // it: count only once every server has drained what it was sent.
    for s in servers {
        s.shutdown().await;
    }

    let adds = ledger.adds.lock().unwrap().clone();
    let notes = ledger.notes.lock().unwrap().clone();
    let mut failed = Vec::new();
    for (id, outcome) in &outcomes {
        match outcome {
            Ok(EchoResponse::Add(EchoAddResultSend::Ok(n))) => {
                assert_eq!(*n, id + 1);
                assert_eq!(adds.get(id), Some(&1), "add #{id} ran exactly once");
            }
            Ok(EchoResponse::Notify(_)) => {
                let ran = notes.get(&format!("note-{id}")).copied().unwrap_or(0);
                assert_eq!(ran, 1, "one-way #{id} ran exactly once");
            }
            Ok(other) => panic!("#{id}: unexpected {other:?}"),
            Err(status) => failed.push((*id, status.clone())),
        }
    }
    assert!(
        adds.values().all(|&n| n == 1) && notes.values().all(|&n| n == 1),
        "no side effect twice"
    );
    assert!(
        failed.is_empty(),
        "{} of {} calls failed, e.g. {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(3)]
    );
    eprintln!(
        "{transport:?}/{mode:?}: {} calls, {} during the drain, none lost, none twice",
        outcomes.len(),
        after - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_loses_nothing_over_ttheader_multiplexed() {
    shutdown_under_load(Transport::TTHeader, ConnectionMode::Multiplexed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_loses_nothing_over_framed_pooled() {
    shutdown_under_load(Transport::Framed, ConnectionMode::Pooled).await;
}

/// Wait until `cond` holds, polling, for at most 10 s.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
