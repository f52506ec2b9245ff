//! The server's connection engine over real loopback sockets, driven by raw
//! clients that misbehave: pipelining without reading, stalling, vanishing,
//! sending during shutdown. A small length-prefixed codec stands in for a
//! wire protocol so each test can state exactly what went over the wire.

use std::{sync::atomic::Ordering, time::Duration};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::{Code, Limits, ServerBuilder};

mod engine;

use engine::*;

// ===== backpressure and memory =====

/// A client that pipelines a million calls, each asking for a 1 KiB answer
/// (a gigabyte of answers), and never reads: the server stops reading it,
/// holds a bounded amount of memory, cuts it off after the write timeout,
/// and serves a neighbour throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_bounded_and_cut_off() {
    let limits = Limits {
        write_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), false).await;
    let before = rss_bytes();

    let mut hog = connect(&srv.handle).await;
    let writer = tokio::spawn(async move {
        let one = frame(CALL, 7, 0, b"big:1024");
        let chunk: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
        let mut sent = 0usize;
        for _ in 0..1000 {
            if hog.write_all(&chunk).await.is_err() {
                return (sent, true);
            }
            sent += 1000;
        }
        // Everything was taken: wait to be cut off.
        let cut = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if hog.write_all(&one).await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok();
        (sent, cut)
    });

    let mut peak = 0usize;
    let mut neighbour_calls = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !writer.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hog was never cut off"
        );
        let a = call_once(&srv.handle, b"hello")
            .await
            .expect("neighbour answered");
        assert_eq!((a.code, &a.body[..]), (0, &b"hello"[..]));
        neighbour_calls += 1;
        peak = peak.max(rss_bytes().saturating_sub(before));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (sent, cut) = writer.await.unwrap();
    assert!(
        cut,
        "the server closed the connection of the client that did not read"
    );
    let served = srv.counters.calls.load(Ordering::SeqCst);
    eprintln!(
        "hog wrote {sent} calls, the server ran {served}, peak RSS growth {} KiB, neighbour made {neighbour_calls} calls",
        peak / 1024
    );
    // Answers the kernel took (the socket buffers on both sides, a few MiB
    // on loopback) are not the server's to hold back.
    assert!(
        served <= Limits::default().max_in_flight_per_connection + 8192 + neighbour_calls,
        "the server kept reading a client that did not read: ran {served} calls"
    );
    assert!(
        peak < 64 << 20,
        "server memory grew by {} MiB for one client that did not read",
        peak >> 20
    );
    srv.handle.shutdown().await;
}

/// On an ordered transport one slow call holds every later answer: the
/// server stops reading at the per-connection bound instead of parking an
/// unbounded queue of answers behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_parked_behind_a_slow_call_are_bounded() {
    let limits = Limits {
        max_in_flight_per_connection: 64,
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), true).await;
    let mut s = connect(&srv.handle).await;
    let mut batch = frame(CALL, 0, 0, b"gate");
    for seq in 1..10_000u32 {
        batch.extend(frame(CALL, seq, 0, b"fast"));
    }
    let (mut rd, mut wr) = s.split();
    let write = async {
        wr.write_all(&batch).await.unwrap();
    };
    let watch = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ran = srv.counters.calls.load(Ordering::SeqCst);
        assert!(
            ran <= 64,
            "{ran} calls ran while the first one held the order (bound 64)"
        );
        srv.gate.add_permits(1);
    };
    let read = async {
        let mut buf = BytesMut::new();
        let mut got = 0u32;
        while got < 10_000 {
            buf.reserve(64 * 1024);
            if rd.read_buf(&mut buf).await.unwrap() == 0 {
                break;
            }
            while buf.len() >= 4 {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if buf.len() < 4 + len {
                    break;
                }
                let mut f = buf.split_to(4 + len);
                f.advance(7);
                assert_eq!(f.get_u32(), got, "answers in request order");
                got += 1;
            }
        }
        got
    };
    let ((), (), got) = tokio::join!(write, watch, read);
    assert_eq!(got, 10_000);
    srv.handle.shutdown().await;
}

/// The server-wide bound on requests in flight holds across connections:
/// calls past it wait unread, and all are answered once the first finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_wide_bound_holds_across_connections() {
    let limits = Limits {
        max_in_flight: 8,
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), false).await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        let mut s = connect(&srv.handle).await;
        let mut batch = Vec::new();
        for seq in 0..25u32 {
            batch.extend(frame(CALL, seq, 0, b"gate"));
        }
        s.write_all(&batch).await.unwrap();
        conns.push(s);
    }
    // The bound fills; what is past it waits (the peak, checked at the
    // end, covers the whole run).
    let c = srv.counters.clone();
    until("the bound fills", || c.running.load(Ordering::SeqCst) == 8).await;
    let running = srv.counters.running.load(Ordering::SeqCst);
    assert!(
        running <= 8,
        "{running} calls running with a server-wide bound of 8"
    );
    srv.gate.add_permits(1000);
    for mut s in conns {
        let mut buf = BytesMut::new();
        for _ in 0..25 {
            let a = answer(&mut s, &mut buf).await.expect("answered");
            assert_eq!(a.code, 0);
        }
    }
    assert!(srv.counters.peak_running.load(Ordering::SeqCst) <= 8);
    srv.handle.shutdown().await;
}

// ===== hostile frames =====

/// A hundred thousand small one-way frames that cannot be served, in one
/// write: each is dropped in turn (no recursion), and the connection and
/// the server go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_one_way_frames_is_dropped_one_by_one() {
    let srv = start(ServerBuilder::new(), false).await;
    let mut s = connect(&srv.handle).await;
    let mut batch = Vec::new();
    for seq in 0..100_000u32 {
        batch.extend(frame(BAD_ONEWAY, seq, 0, b""));
    }
    batch.extend(frame(CALL, 1, 0, b"after"));
    s.write_all(&batch).await.unwrap();
    let a = answer(&mut s, &mut BytesMut::new())
        .await
        .expect("answered");
    assert_eq!(&a.body[..], b"after");
    srv.handle.shutdown().await;
}

/// Rejected frames are answered in order and hold their place like calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_frames_are_answered_in_order() {
    let srv = start(ServerBuilder::new(), true).await;
    let mut s = connect(&srv.handle).await;
    let mut batch = frame(CALL, 0, 0, b"sleep:100");
    batch.extend(frame(BAD, 1, 0, b""));
    batch.extend(frame(CALL, 2, 0, b"x"));
    s.write_all(&batch).await.unwrap();
    let mut buf = BytesMut::new();
    let got: Vec<(u32, u8)> = [(); 3].iter().map(|_| (0, 0)).collect();
    let mut seen = Vec::new();
    for _ in got {
        let a = answer(&mut s, &mut buf).await.unwrap();
        seen.push((a.seq, a.code));
    }
    assert_eq!(seen, vec![(0, 0), (1, Code::InvalidArgument as u8), (2, 0)]);
    srv.handle.shutdown().await;
}

/// A handler that panics and an encoder that panics or fails each cost
/// their call an error answer; the ordered connection keeps its order and
/// the bytes the encoder left behind never reach the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_encoding_failures_answer_with_errors() {
    for spawn in [false, true] {
        let srv = start(ServerBuilder::new().spawn_handlers(spawn), true).await;
        let mut s = connect(&srv.handle).await;
        let mut batch = Vec::new();
        for (seq, p) in ["panic", "panic-encode", "fail-encode", "ok"]
            .iter()
            .enumerate()
        {
            batch.extend(frame(CALL, seq as u32, 0, p.as_bytes()));
        }
        s.write_all(&batch).await.unwrap();
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let a = answer(&mut s, &mut buf).await.unwrap();
            seen.push((a.seq, a.code));
        }
        let internal = Code::Internal as u8;
        assert_eq!(
            seen,
            vec![(0, internal), (1, internal), (2, internal), (3, 0)],
            "spawn_handlers({spawn})"
        );
        srv.handle.shutdown().await;
    }
}

/// A remaining timeout of u64::MAX milliseconds from the wire is no
/// deadline, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_timeout_from_the_wire_is_no_deadline() {
    let srv = start(ServerBuilder::new(), false).await;
    let mut s = connect(&srv.handle).await;
    s.write_all(&frame(CALL, 1, u64::MAX, b"x")).await.unwrap();
    let a = answer(&mut s, &mut BytesMut::new()).await.unwrap();
    assert_eq!((a.code, &a.body[..]), (0, &b"x"[..]));
    srv.handle.shutdown().await;
}

// ===== timeouts =====

/// The idle timeout also closes a connection that has carried calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_it_carried_calls() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), false).await;
    let mut s = connect(&srv.handle).await;
    let mut buf = BytesMut::new();
    for seq in 0..3 {
        s.write_all(&frame(CALL, seq, 0, b"x")).await.unwrap();
        answer(&mut s, &mut buf).await.unwrap();
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), answer(&mut s, &mut buf)).await;
    assert_eq!(closed, Ok(None), "idle connection closed cleanly");
    srv.handle.shutdown().await;
}

/// A call that is busy past the read timeout is not a slow sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_is_not_a_read_timeout() {
    let limits = Limits {
        read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), false).await;
    let mut s = connect(&srv.handle).await;
    s.write_all(&frame(CALL, 1, 0, b"sleep:600")).await.unwrap();
    let a = answer(&mut s, &mut BytesMut::new()).await.unwrap();
    assert_eq!(a.code, 0);
    srv.handle.shutdown().await;
}

// ===== graceful shutdown =====

/// Shutdown while a client pipelines calls and one-way calls: every call
/// already sent gets its answer or a "not processed" refusal marked
/// closing, every one-way call runs, and the connection ends with a clean
/// close, not a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_everything_already_sent() {
    for ordered in [false, true] {
        let srv = start(ServerBuilder::new(), ordered).await;
        let mut s = connect(&srv.handle).await;
        let (mut rd, mut wr) = s.split();
        let counters = srv.counters.clone();
        let handle = srv.handle;
        let n = 2_000u32;
        let write = async {
            let mut oneway = 0;
            for seq in 0..n {
                let mut f = frame(CALL, seq, 0, b"sleep:1");
                if seq % 4 == 0 {
                    f.extend(frame(ONEWAY, 0, 0, b"o"));
                    oneway += 1;
                }
                wr.write_all(&f).await.unwrap();
                if seq % 20 == 0 {
                    // Spread the calls so that shutdown starts among them.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            oneway
        };
        let stop = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            handle.shutdown().await;
        };
        let read = async {
            let mut buf = BytesMut::new();
            let mut s = (0, 0, 0); // answered, refused, refusals marked closing
            let mut seqs = Vec::new();
            loop {
                let got = {
                    loop {
                        if buf.len() >= 4 {
                            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                            if buf.len() >= 4 + len {
                                let mut f = buf.split_to(4 + len).freeze();
                                f.advance(4);
                                break Some((
                                    f.get_u8(),
                                    f.get_u8() == 1,
                                    f.get_u8() == 1,
                                    f.get_u32(),
                                ));
                            }
                        }
                        buf.reserve(64 * 1024);
                        match rd.read_buf(&mut buf).await {
                            Ok(0) => break None,
                            Ok(_) => {}
                            Err(e) => panic!("reset instead of a clean close: {e}"),
                        }
                    }
                };
                let Some((code, closing, not_sent, seq)) = got else {
                    break;
                };
                seqs.push(seq);
                if code == 0 {
                    s.0 += 1;
                } else {
                    assert_eq!(code, Code::Unavailable as u8);
                    assert!(not_sent, "a refusal while draining says not processed");
                    s.1 += 1;
                    if closing {
                        s.2 += 1;
                    }
                }
            }
            (s, seqs)
        };
        let (oneway, (), ((answered, refused, closing), seqs)) = tokio::join!(write, stop, read);
        eprintln!("ordered={ordered}: {answered} answered, {refused} refused, {oneway} one-way");
        assert_eq!(
            answered + refused,
            n as usize,
            "every call sent got one answer"
        );
        assert!(
            answered > 0 && refused > 0,
            "shutdown started among the calls"
        );
        assert_eq!(closing, refused);
        assert_eq!(
            counters.calls.load(Ordering::SeqCst),
            answered,
            "refused calls never ran"
        );
        assert_eq!(
            counters.oneway.load(Ordering::SeqCst),
            oneway,
            "every one-way call ran"
        );
        if ordered {
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
        }
    }
}

/// Calls still running at the drain deadline are answered `Unavailable`
/// before the connection closes, instead of vanishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_drain_deadline_get_a_definite_error() {
    let srv = start(
        ServerBuilder::new().drain_timeout(Duration::from_millis(200)),
        false,
    )
    .await;
    let mut s = connect(&srv.handle).await;
    s.write_all(&frame(CALL, 1, 0, b"sleep:60000"))
        .await
        .unwrap();
    let c = srv.counters.clone();
    until("the call runs", || c.running.load(Ordering::SeqCst) == 1).await;
    let stop = tokio::spawn(srv.handle.shutdown());
    let mut buf = BytesMut::new();
    let a = answer(&mut s, &mut buf)
        .await
        .expect("an answer, not a bare close");
    assert_eq!(
        (a.seq, a.code, a.not_sent),
        (1, Code::Unavailable as u8, false)
    );
    assert_eq!(answer(&mut s, &mut buf).await, None);
    stop.await.unwrap();
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
