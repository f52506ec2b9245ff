//! 1,000 calls on one connection are in flight at the handler at once, on
//! a multiplexed transport and on the ordered ones (framed and buffered,
//! pipelined): the handler holds every call until it has seen all of them,
//! so a server or client that serialised them, or capped them below 1,000,
//! would stall and fail here rather than pass slowly. On the ordered
//! transports the handlers then finish out of order, and the answers must
//! still come back in request order.

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

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};
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

// ===== ordered transports: pipelined, finished out of order =====

/// Calls on each ordered connection in the test below.
const PIPELINED: usize = 1000;
/// Connections, each with its own ordered transport.
const ORDERED: [&str; 2] = ["framed", "buffered"];

/// Holds every call until all `PIPELINED × ORDERED.len()` have arrived,
/// then lets them finish one at a time in a scrambled order (call `a` — its
/// global index — waits for its turn), so that the server must park nearly
/// every answer behind an earlier request's.
#[derive(Clone)]
struct Scrambler {
    inner: EchoHandler,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    /// Whose turn it is to finish: `None` until every call has arrived.
    turn: watch::Sender<Option<usize>>,
    finished: Arc<std::sync::Mutex<Vec<usize>>>,
}

/// The finishing order: rank `r` finishes call `scramble(r)`. 7919 is prime
/// to the total, so this is a permutation, and call 0 (the first on the
/// framed connection) finishes late.
fn scramble(rank: usize, total: usize) -> usize {
    (total - 1) - (rank * 7919) % total
}

impl Service<Request<EchoRequest>> for Scrambler {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<EchoResponse>, Status>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let this = self.clone();
        let total = PIPELINED * ORDERED.len();
        let EchoRequest::Add(args) = &req.message else {
            return Box::pin(async { Err(Status::invalid_argument("only add")) });
        };
        let me = args.a as usize;
        Box::pin(async move {
            let now = this.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            this.peak.fetch_max(now, Ordering::SeqCst);
            if now == total {
                this.turn.send_replace(Some(0));
            }
            let mut rx = this.turn.subscribe();
            // Bounded, so that a server that never lets them all in fails
            // the assertions below instead of hanging the test.
            let turn = tokio::time::timeout(
                Duration::from_secs(20),
                rx.wait_for(|t| t.is_some_and(|r| scramble(r, total) == me)),
            )
            .await
            .ok()
            .and_then(|t| t.ok().and_then(|t| *t));
            let r = tower::ServiceExt::oneshot(this.inner.clone(), req).await;
            this.in_flight.fetch_sub(1, Ordering::SeqCst);
            this.finished.lock().unwrap().push(me);
            if let Some(rank) = turn {
                this.turn.send_replace(Some(rank + 1));
            }
            r
        })
    }
}

/// A binary `add(a, b)` call with sequence id `seq`, unframed.
fn add_call(seq: i32, a: i64, b: i64) -> Vec<u8> {
    let mut m = vec![0x80, 0x01, 0x00, 0x01];
    m.extend_from_slice(&3i32.to_be_bytes());
    m.extend_from_slice(b"add");
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&[10, 0, 1]);
    m.extend_from_slice(&a.to_be_bytes());
    m.extend_from_slice(&[10, 0, 2]);
    m.extend_from_slice(&b.to_be_bytes());
    m.push(0);
    m
}

/// Read one binary reply to `add` (framed or not) and return its sequence
/// id and result; panics, naming what it found, on anything else.
async fn read_add_reply(s: &mut TcpStream, framed: bool) -> (i32, i64) {
    // The whole reply is fixed-size: version, name "add", seq, a struct of
    // field 0 (i64) and a stop.
    const LEN: usize = 4 + 4 + 3 + 4 + 3 + 8 + 1;
    if framed {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.expect("frame length");
        assert_eq!(u32::from_be_bytes(len) as usize, LEN, "frame length");
    }
    let mut m = [0u8; LEN];
    s.read_exact(&mut m).await.expect("a whole reply");
    assert_eq!(
        &m[..4],
        &[0x80, 0x01, 0x00, 0x02],
        "not a binary reply: {m:?}"
    );
    assert_eq!(&m[4..11], b"\0\0\0\x03add", "not add's reply: {m:?}");
    let seq = i32::from_be_bytes(m[11..15].try_into().unwrap());
    assert_eq!(&m[15..18], &[10, 0, 0], "not a success: {m:?}");
    assert_eq!(m[26], 0, "no stop: {m:?}");
    (seq, i64::from_be_bytes(m[18..26].try_into().unwrap()))
}

/// Framed and buffered Thrift answer in request order. Two connections, one
/// of each, pipeline 1,000 `add` calls each in one write; the handler holds
/// all 2,000 at once and lets them finish in a scrambled order, so the
/// server's reordering path parks answers and releases them as the gaps
/// before them fill. Every answer must come back in request order with its
/// own sequence id and value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_transports_answer_in_order_when_handlers_finish_out_of_order() {
    let total = PIPELINED * ORDERED.len();
    let gate = Scrambler {
        inner: EchoHandler::default(),
        in_flight: Arc::default(),
        peak: Arc::default(),
        turn: watch::Sender::new(None),
        finished: Arc::default(),
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
    let Address::Tcp(addr) = server.local_addr().clone() else {
        unreachable!("a TCP listener")
    };
    let conns: Vec<_> = ORDERED
        .iter()
        .enumerate()
        .map(|(c, &transport)| {
            tokio::spawn(async move {
                let framed = transport == "framed";
                let mut wire = Vec::new();
                for k in 0..PIPELINED {
                    let call = add_call(k as i32, (c * PIPELINED + k) as i64, 1000);
                    if framed {
                        wire.extend_from_slice(&(call.len() as u32).to_be_bytes());
                    }
                    wire.extend(call);
                }
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(&wire).await.unwrap();
                let mut answers = Vec::with_capacity(PIPELINED);
                for _ in 0..PIPELINED {
                    answers.push(read_add_reply(&mut s, framed).await);
                }
                (transport, answers)
            })
        })
        .collect();
    for (c, conn) in conns.into_iter().enumerate() {
        let (transport, answers) = conn.await.unwrap();
        for (k, got) in answers.into_iter().enumerate() {
            let want = (k as i32, (c * PIPELINED + k) as i64 + 1000);
            assert_eq!(got, want, "{transport}: answer {k} (sequence id, sum)");
        }
    }
    assert_eq!(
        gate.peak.load(Ordering::SeqCst),
        total,
        "peak calls in flight at the handler"
    );
    // The handlers did finish in the scrambled order, not in request order:
    // the answers above were put back in order by the server.
    let want: Vec<usize> = (0..total).map(|r| scramble(r, total)).collect();
    assert_eq!(*gate.finished.lock().unwrap(), want, "finishing order");
    assert_eq!(server.accepted(), ORDERED.len());
}
