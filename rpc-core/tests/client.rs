//! The client over real loopback sockets, against hand-written servers that
//! misbehave on command.

mod support;

use std::{
    future::Future,
    pin::pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::Context as TaskContext,
    time::Duration,
};

use bytes::Bytes;
use support::{echo_server, listener, read_frame, write_frame, EventCounter, TestCodec};
use tokio::{io::AsyncReadExt, sync::oneshot};
use tower::{Service, ServiceExt};
use weft_core::{
    Address, Client, ClientBuilder, Code, ConnectionMode, Connector, Context, Delivery, Limits,
    Request, SocketOptions,
};

fn req(payload: &'static [u8]) -> Request<Bytes> {
    Request::new(Context::new("test", "m"), Bytes::from_static(payload))
}

fn req_timeout(payload: &'static [u8], t: Duration) -> Request<Bytes> {
    let mut cx = Context::new("test", "m");
    cx.set_timeout(t);
    Request::new(cx, Bytes::from_static(payload))
}

/// A guard so a regression hangs for seconds, not forever.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("the call should have resolved")
}

fn noop_cx() -> TaskContext<'static> {
    TaskContext::from_waker(futures::task::noop_waker_ref())
}

// ===== basics =====

#[tokio::test]
async fn round_trip_sets_peer_seq_and_backward_metainfo() {
    let addr = echo_server().await;
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let client = ClientBuilder::new(addr.clone()).mode(mode).build(TestCodec);
        for _ in 0..3 {
            let resp = within(client.clone().oneshot(req(b"hi"))).await.unwrap();
            assert_eq!(&resp.message[..], b"hi");
            assert_eq!(resp.cx.peer.as_ref(), Some(&addr));
            assert_ne!(resp.cx.seq_id, 0);
            assert_eq!(resp.cx.metainfo.upstream.get("decoded").unwrap(), "yes");
        }
    }
}

/// `localhost:PORT` as a user writes it: resolved at connect, in both
/// connection modes, with no discovery configured.
#[tokio::test]
async fn a_host_name_address_is_resolved_and_called() {
    let Address::Tcp(ip) = echo_server().await else {
        unreachable!()
    };
    let addr: Address = format!("localhost:{}", ip.port()).parse().unwrap();
    assert!(matches!(addr, Address::Host(..)), "{addr:?}");
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let client = ClientBuilder::new(addr.clone()).mode(mode).build(TestCodec);
        let resp = within(client.clone().oneshot(req(b"by name")))
            .await
            .unwrap();
        assert_eq!(&resp.message[..], b"by name");
        assert_eq!(resp.cx.peer.as_ref(), Some(&addr));
    }
}

#[tokio::test]
async fn answers_out_of_order_reach_their_callers() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        for _ in 0..8 {
            got.push(read_frame(&mut s).await.unwrap());
        }
        for (seq, p) in got.into_iter().rev() {
            write_frame(&mut s, seq, &p).await;
        }
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    let client = ClientBuilder::new(addr).build(TestCodec);
    let calls = (0..8u8).map(|i| {
        let c = client.clone();
        async move {
            let p = Bytes::from(vec![i; 3]);
            let r = c
                .oneshot(Request::new(Context::new("t", "m"), p.clone()))
                .await
                .unwrap();
            assert_eq!(r.message, p);
        }
    });
    within(futures::future::join_all(calls)).await;
}

#[tokio::test]
async fn a_late_answer_to_a_reused_slot_is_dropped() {
    // The first call times out; its slot is reused by the second call. The
    // server then answers the first call's sequence id, then the second's:
    // the second caller must get its own answer.
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let (seq1, _) = read_frame(&mut s).await.unwrap();
        let (seq2, p2) = read_frame(&mut s).await.unwrap();
        write_frame(&mut s, seq1, b"stale").await;
        write_frame(&mut s, seq2, &p2).await;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    let client = ClientBuilder::new(addr).max_pending(1).build(TestCodec);
    let err = within(
        client
            .clone()
            .oneshot(req_timeout(b"one", Duration::from_millis(30))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    let resp = within(client.clone().oneshot(req(b"two"))).await.unwrap();
    assert_eq!(&resp.message[..], b"two");
}

// ===== defect 1: bounded multiplexing =====

#[tokio::test]
async fn poll_ready_waits_for_a_free_slot_and_call_without_one_fails_fast() {
    let (l, addr) = listener().await;
    let (answer_tx, answer_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let (seq, p) = read_frame(&mut s).await.unwrap();
        let _ = answer_rx.await;
        write_frame(&mut s, seq, &p).await;
        while read_frame(&mut s).await.is_some() {}
    });
    let client = ClientBuilder::new(addr).max_pending(2).build(TestCodec);

    let mut a = client.clone();
    within(a.ready()).await.unwrap();
    let fa = tokio::spawn(a.call(req(b"a")));
    let mut b = client.clone();
    within(b.ready()).await.unwrap();
    let fb = b.call(req(b"b"));

    // Both slots are taken: a third caller is not ready...
    let mut c = client.clone();
    assert!(c.poll_ready(&mut noop_cx()).is_pending());
    // ...and one that skips poll_ready is refused without sending anything.
    let mut d = client.clone();
    let err = within(d.call(req(b"d"))).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.delivery(), Delivery::NotSent);

    // Dropping one call frees its slot and wakes the waiting caller.
    drop(fb);
    within(c.ready()).await.unwrap();
    let _ = answer_tx.send(());
    assert_eq!(&within(fa).await.unwrap().unwrap().message[..], b"a");
}

/// A server that accepts one connection, reads nothing until told, then
/// counts the frames it gets until one whose payload is `marker`, answers
/// that one, and reports the count.
async fn stalled_server(
    small_buffers: bool,
) -> (
    weft_core::Address,
    oneshot::Sender<()>,
    oneshot::Receiver<usize>,
) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    if small_buffers {
        sock.set_recv_buffer_size(4096).unwrap();
    }
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = sock.listen(16).unwrap();
    let addr: weft_core::Address = l.local_addr().unwrap().into();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (count_tx, count_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _ = go_rx.await;
        let mut n = 0;
        while let Some((seq, p)) = read_frame(&mut s).await {
            if &p[..] == b"marker" {
                write_frame(&mut s, seq, &p).await;
                let _ = count_tx.send(n);
                break;
            }
            n += 1;
        }
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    (addr, go_tx, count_rx)
}

fn small_send_buffer() -> Connector {
    Connector {
        options: SocketOptions {
            send_buffer_size: Some(4096),
            ..SocketOptions::default()
        },
        ..Connector::default()
    }
}

const BIG: usize = 8 * 1024 * 1024;

#[tokio::test]
async fn calls_cancelled_before_their_frame_is_written_are_never_sent() {
    let (addr, go, count) = stalled_server(true).await;
    let client = ClientBuilder::new(addr)
        .connector(small_send_buffer())
        .no_timeout()
        .build(TestCodec);
    // A large frame the server does not read fills the socket and stalls the
    // writer; everything behind it waits in the client's queue.
    let big = Request::new(Context::new("t", "big"), Bytes::from(vec![7u8; BIG]));
    let big = tokio::spawn(client.clone().oneshot(big));
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Half the queued calls pass their deadline, half are dropped.
    for _ in 0..5 {
        let err = within(
            client
                .clone()
                .oneshot(req_timeout(b"late", Duration::from_millis(20))),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert_eq!(err.delivery(), Delivery::NotSent);
    }
    for _ in 0..5 {
        let mut f = pin!(client.clone().oneshot(req(b"dropped")));
        assert!(f.as_mut().poll(&mut noop_cx()).is_pending());
    }
    let marker = tokio::spawn(client.clone().oneshot(req(b"marker")));
    let _ = go.send(());
    assert_eq!(
        within(count).await.unwrap(),
        1,
        "only the big frame is sent"
    );
    assert_eq!(
        &within(marker).await.unwrap().unwrap().message[..],
        b"marker"
    );
    big.abort();
}

#[tokio::test]
async fn a_writer_that_cannot_progress_closes_the_connection() {
    let (addr, _go, _count) = stalled_server(true).await;
    let limits = Limits {
        write_timeout: Duration::from_millis(50),
        ..Limits::default()
    };
    let client = ClientBuilder::new(addr)
        .connector(small_send_buffer())
        .limits(limits)
        .no_timeout()
        .build(TestCodec);
    let big = Request::new(Context::new("t", "big"), Bytes::from(vec![7u8; BIG]));
    let big = tokio::spawn(client.clone().oneshot(big));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let queued = tokio::spawn(client.clone().oneshot(req(b"queued")));
    let err = within(big).await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.delivery(), Delivery::MaybeSent);
    let err = within(queued).await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.delivery(), Delivery::NotSent);
}

#[tokio::test]
async fn a_huge_timeout_means_no_deadline_and_never_panics() {
    let addr = echo_server().await;
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let client = ClientBuilder::new(addr.clone())
            .mode(mode)
            .timeout(Duration::MAX)
            .build(TestCodec);
        let resp = within(client.oneshot(req(b"x"))).await.unwrap();
        assert_eq!(resp.cx.deadline, None);
    }
}

#[test]
fn calls_get_a_default_timeout() {
    let b = ClientBuilder::new("127.0.0.1:1".parse().unwrap());
    let dbg = format!("{b:?}");
    assert!(
        dbg.contains(&format!(
            "timeout: Some({:?})",
            weft_core::client::DEFAULT_TIMEOUT
        )),
        "{dbg}"
    );
    assert!(format!("{:?}", b.no_timeout()).contains("timeout: None"));
}

#[test]
fn a_oneway_call_is_on_the_wire_when_it_resolves() {
    // The caller's runtime goes away as soon as the call resolves: the frame
    // must already be written by then.
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, got) = server_rt.block_on(async {
        let (l, addr) = listener().await;
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let _ = tx.send(read_frame(&mut s).await.map(|(_, p)| p));
        });
        (addr, rx)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client: Client<TestCodec> = ClientBuilder::new(addr).build(TestCodec);
        let mut cx = Context::new("t", "fire");
        cx.oneway = true;
        let resp = client
            .oneshot(Request::new(cx, Bytes::from_static(b"fire")))
            .await
            .unwrap();
        assert!(resp.message.is_empty());
    });
    drop(rt);
    let got = server_rt.block_on(within(got)).unwrap();
    assert_eq!(got.as_deref(), Some(&b"fire"[..]));
}

#[tokio::test]
async fn calls_spread_over_several_connections() {
    let (l, addr) = listener().await;
    let conns = Arc::new(AtomicUsize::new(0));
    let seen = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while let Some((seq, p)) = read_frame(&mut s).await {
                    write_frame(&mut s, seq, &p).await;
                }
            });
        }
    });
    let client = ClientBuilder::new(addr).connections(3).build(TestCodec);
    for _ in 0..9 {
        within(client.clone().oneshot(req(b"x"))).await.unwrap();
    }
    assert_eq!(conns.load(Ordering::SeqCst), 3);
}

// ===== defect 2: reconnect =====

#[tokio::test]
async fn concurrent_calls_share_one_connect_and_back_off() {
    let counter = EventCounter::new("weft_core::client::connect");
    let _guard = tracing::subscriber::set_default(counter.clone());
    // A port where nothing listens (yet).
    let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sa = std_l.local_addr().unwrap();
    drop(std_l);
    let client = ClientBuilder::new(sa.into())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build(TestCodec);
    let calls = (0..8).map(|_| client.clone().oneshot(req(b"x")));
    for r in within(futures::future::join_all(calls)).await {
        let err = r.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.delivery(), Delivery::NotSent);
    }
    assert_eq!(counter.count(), 1, "one connect attempt for all callers");

    // While backing off, calls fail fast, naming the peer and the cause.
    let err = within(client.clone().oneshot(req(b"x"))).await.unwrap_err();
    assert_eq!(err.delivery(), Delivery::NotSent);
    assert!(err.message().contains(&sa.to_string()), "{err}");
    assert_eq!(counter.count(), 1);

    // A server appears: after the backoff, calls succeed.
    let l = tokio::net::TcpListener::bind(sa).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                while let Some((seq, p)) = read_frame(&mut s).await {
                    write_frame(&mut s, seq, &p).await;
                }
            });
        }
    });
    let mut ok = false;
    for _ in 0..100 {
        if client.clone().oneshot(req(b"x")).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "calls succeed once the server is up");
}

// ===== defect 3: the pool =====

#[tokio::test]
async fn the_pool_opens_at_most_max_connections() {
    let (l, addr) = listener().await;
    let conns = Arc::new(AtomicUsize::new(0));
    let seen = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while let Some((seq, p)) = read_frame(&mut s).await {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    write_frame(&mut s, seq, &p).await;
                }
            });
        }
    });
    let client = ClientBuilder::new(addr)
        .mode(ConnectionMode::Pooled)
        .max_connections(2)
        .build(TestCodec);
    let calls = (0..10).map(|_| client.clone().oneshot(req(b"x")));
    for r in within(futures::future::join_all(calls)).await {
        assert_eq!(&r.unwrap().message[..], b"x");
    }
    assert!(conns.load(Ordering::SeqCst) <= 2, "{conns:?}");
}

#[tokio::test]
async fn a_caller_past_max_connections_gives_up_at_its_deadline() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    let client = ClientBuilder::new(addr)
        .mode(ConnectionMode::Pooled)
        .max_connections(1)
        .build(TestCodec);
    let stuck = tokio::spawn(client.clone().oneshot(req(b"stuck")));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = within(
        client
            .clone()
            .oneshot(req_timeout(b"x", Duration::from_millis(30))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.delivery(), Delivery::NotSent);
    stuck.abort();
}

#[tokio::test]
async fn the_pool_hands_out_the_most_recently_used_connection() {
    // Each connection answers with its accept index. Two calls open two
    // connections; the first is returned to the pool before the second, so
    // the next call must get the second.
    let (l, addr) = listener().await;
    let (release_tx, release_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut s0, _) = l.accept().await.unwrap();
        let (mut s1, _) = l.accept().await.unwrap();
        let (q0, _) = read_frame(&mut s0).await.unwrap();
        let (q1, _) = read_frame(&mut s1).await.unwrap();
        write_frame(&mut s0, q0, b"0").await;
        let _ = release_rx.await;
        write_frame(&mut s1, q1, b"1").await;
        let serve = |mut s: tokio::net::TcpStream, id: &'static [u8]| async move {
            while let Some((seq, _)) = read_frame(&mut s).await {
                write_frame(&mut s, seq, id).await;
            }
        };
        tokio::join!(serve(s0, b"0"), serve(s1, b"1"));
    });
    let client = ClientBuilder::new(addr)
        .mode(ConnectionMode::Pooled)
        .build(TestCodec);
    let a = tokio::spawn(client.clone().oneshot(req(b"a")));
    let b = tokio::spawn(client.clone().oneshot(req(b"b")));
    let (first, second) = match within(futures::future::select(a, b)).await {
        futures::future::Either::Left((r, other)) => (r, other),
        futures::future::Either::Right((r, other)) => (r, other),
    };
    assert_eq!(&first.unwrap().unwrap().message[..], b"0");
    let _ = release_tx.send(());
    assert_eq!(&within(second).await.unwrap().unwrap().message[..], b"1");
    for _ in 0..3 {
        let r = within(client.clone().oneshot(req(b"c"))).await.unwrap();
        assert_eq!(&r.message[..], b"1", "most recently used first");
    }
}

// ===== failures =====

#[test]
fn clients_and_calls_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Client<TestCodec>>();
    send::<<Client<TestCodec> as Service<Request<Bytes>>>::Future>();
}

#[tokio::test]
async fn a_server_that_closes_fails_calls_in_flight_and_the_next_call_reconnects() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        // The first connection reads one call and closes; later ones echo.
        let (mut s, _) = l.accept().await.unwrap();
        let _ = read_frame(&mut s).await;
        drop(s);
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                while let Some((seq, p)) = read_frame(&mut s).await {
                    write_frame(&mut s, seq, &p).await;
                }
            });
        }
    });
    let client = ClientBuilder::new(addr).build(TestCodec);
    let err = within(client.clone().oneshot(req(b"lost")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.delivery(), Delivery::MaybeSent);
    let resp = within(client.clone().oneshot(req(b"again"))).await.unwrap();
    assert_eq!(&resp.message[..], b"again");
}

/// The request a failed call handed back, if any.
fn handed_back(err: &weft_core::Status) -> Option<Request<Bytes>> {
    err.take_unsent::<Request<Bytes>>()
}

#[tokio::test]
async fn a_call_that_was_not_sent_hands_its_request_back() {
    // Nothing listens on `closed`; `addr` echoes, and answers REFUSED with
    // the codec's "not processed" refusal.
    let closed = {
        let (l, addr) = listener().await;
        drop(l);
        addr
    };
    let addr = echo_server().await;
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let client = ClientBuilder::new(closed.clone())
            .mode(mode)
            .build(TestCodec);
        let err = within(client.clone().oneshot(req(b"to nobody")))
            .await
            .unwrap_err();
        assert!(err.is_not_sent(), "{mode:?}: {err:?}");
        let back = handed_back(&err).expect("a refused connect hands the request back");
        assert_eq!(&back.message[..], b"to nobody", "{mode:?}");
        assert_eq!(back.cx.method, "m");
        assert!(handed_back(&err).is_none(), "taken once");

        // Refused by the server: sent, but never run, and handed back too.
        // Twice, so that the pooled client's second call takes the fast
        // path on the connection the first left idle.
        let client = ClientBuilder::new(addr.clone()).mode(mode).build(TestCodec);
        for _ in 0..2 {
            let err = within(client.clone().oneshot(Request::new(
                Context::new("test", "m"),
                Bytes::from_static(support::REFUSED),
            )))
            .await
            .unwrap_err();
            assert!(err.is_refusal() && err.is_not_sent(), "{mode:?}: {err:?}");
            let back = handed_back(&err).expect("a refusal hands the request back");
            assert_eq!(&back.message[..], support::REFUSED);
        }
        // Answered: nothing is kept.
        let resp = within(client.clone().oneshot(req(b"fine"))).await.unwrap();
        assert_eq!(&resp.message[..], b"fine");
    }
}

#[tokio::test]
async fn a_call_that_may_have_been_sent_hands_nothing_back() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        // Reads each call and closes without answering.
        while let Ok((mut s, _)) = l.accept().await {
            let _ = read_frame(&mut s).await;
        }
    });
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let client = ClientBuilder::new(addr.clone()).mode(mode).build(TestCodec);
        let err = within(client.clone().oneshot(req(b"lost")))
            .await
            .unwrap_err();
        assert_eq!(err.delivery(), Delivery::MaybeSent, "{mode:?}: {err:?}");
        assert!(handed_back(&err).is_none(), "{mode:?}");
    }
}

#[tokio::test]
async fn a_call_that_times_out_after_its_frame_was_written_may_have_been_sent() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    let client = ClientBuilder::new(addr).build(TestCodec);
    let err = within(
        client
            .clone()
            .oneshot(req_timeout(b"x", Duration::from_millis(50))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(err.delivery(), Delivery::MaybeSent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_share_few_slots_without_losing_a_wakeup() {
    let addr = echo_server().await;
    let client = ClientBuilder::new(addr)
        .max_pending(8)
        .connections(2)
        .build(TestCodec);
    let tasks: Vec<_> = (0..32u8)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..50u8 {
                    let p = Bytes::from(vec![t, i]);
                    let cx = Context::new("t", "m");
                    let r = client.clone().oneshot(Request::new(cx, p.clone())).await;
                    assert_eq!(r.unwrap().message, p);
                }
            })
        })
        .collect();
    for t in tasks {
        within(t).await.unwrap();
    }
}
