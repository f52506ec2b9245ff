//! Hostile clients against the server's connection engine, over real
//! loopback sockets: half-closes, resets, slow senders, peers that never
//! read, huge frames, tiny budgets, shutdown and abort under load. Each of
//! the budget, slot, encoding and abort tests failed on the first version
//! of the engine (written by a reviewer attacking it) and passes now.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use bytes::{Buf, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use weft_core::{Address, Code, Limits, ServerBuilder};

mod engine;

use engine::*;

// ===== attack helpers =====

/// What a raw client saw next on a connection.
#[derive(Debug)]
enum Seen {
    Answer(Answer),
    Eof,
    Reset,
}

async fn next_seen<R: AsyncRead + Unpin>(s: &mut R, buf: &mut BytesMut) -> Seen {
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() >= 4 + len {
                let mut f = buf.split_to(4 + len).freeze();
                f.advance(4);
                return Seen::Answer(Answer {
                    code: f.get_u8(),
                    closing: f.get_u8() == 1,
                    not_sent: f.get_u8() == 1,
                    seq: f.get_u32(),
                    body: f,
                });
            }
        }
        buf.reserve(64 * 1024);
        match s.read_buf(buf).await {
            Ok(0) => return Seen::Eof,
            Ok(_) => {}
            Err(_) => return Seen::Reset,
        }
    }
}

/// Close with a reset (SO_LINGER 0) instead of a FIN.
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Read until the server closes; `true` for a clean FIN. Answers are skipped.
async fn until_closed<R: AsyncRead + Unpin>(s: &mut R, secs: u64) -> Option<bool> {
    let mut buf = BytesMut::new();
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            match next_seen(s, &mut buf).await {
                Seen::Answer(_) => {}
                Seen::Eof => return true,
                Seen::Reset => return false,
            }
        }
    })
    .await
    .ok()
}

fn tiny_bytes() -> Limits {
    Limits {
        max_in_flight_bytes: 1024,
        ..Limits::default()
    }
}

// ===== half-close, reset =====

/// A peer pipelines thousands of calls (past the per-connection bound) and
/// half-closes at once: every call is answered exactly once, then FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_after_a_pipeline_gets_every_answer_then_fin() {
    for ordered in [false, true] {
        let limits = Limits {
            max_in_flight_per_connection: 64,
            ..Limits::default()
        };
        let srv = start(ServerBuilder::new().limits(limits), ordered).await;
        let s = connect(&srv.handle).await;
        let n = 5000u32;
        let mut batch = Vec::new();
        for seq in 0..n {
            let p: &[u8] = if seq % 50 == 0 { b"sleep:2" } else { b"x" };
            batch.extend(frame(CALL, seq, 0, p));
        }
        let (mut rd, mut wr) = s.into_split();
        let w = tokio::spawn(async move {
            wr.write_all(&batch).await.unwrap();
            wr.shutdown().await.unwrap();
            wr
        });
        let mut buf = BytesMut::new();
        let mut seen = vec![false; n as usize];
        let mut last = None;
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match next_seen(&mut rd, &mut buf).await {
                    Seen::Answer(a) => {
                        assert_eq!(a.code, 0);
                        assert!(!seen[a.seq as usize], "seq {} answered twice", a.seq);
                        seen[a.seq as usize] = true;
                        if ordered {
                            assert!(last.is_none_or(|l| l + 1 == a.seq), "in order");
                        }
                        last = Some(a.seq);
                    }
                    other => return other,
                }
            }
        })
        .await
        .expect("the server answered and closed");
        assert!(matches!(end, Seen::Eof), "ordered={ordered}: {end:?}");
        assert!(
            seen.iter().all(|s| *s),
            "ordered={ordered}: every call answered"
        );
        let _ = w.await;
        srv.handle.shutdown().await;
    }
}

/// Peers reset their connections while handlers run and while more calls
/// wait for the server-wide bound: every slot comes back (a fresh
/// connection then runs max_in_flight calls at once), for inline and
/// spawned handlers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_mid_pipeline_give_back_every_slot() {
    for spawn in [false, true] {
        let limits = Limits {
            max_in_flight: 8,
            ..Limits::default()
        };
        let srv = start(
            ServerBuilder::new().limits(limits).spawn_handlers(spawn),
            false,
        )
        .await;
        for _ in 0..3 {
            let mut s = connect(&srv.handle).await;
            let mut batch = Vec::new();
            for seq in 0..8 {
                batch.extend(frame(CALL, seq, 0, b"gate"));
            }
            for seq in 8..200 {
                batch.extend(frame(CALL, seq, 0, b"x"));
            }
            s.write_all(&batch).await.unwrap();
            let c = srv.counters.clone();
            wait_for("8 running", 3, || c.running.load(Ordering::SeqCst) == 8).await;
            reset(s);
            wait_for("handlers dropped", 3, || {
                c.running.load(Ordering::SeqCst) == 0
            })
            .await;
        }
        let mut s = connect(&srv.handle).await;
        let mut batch = Vec::new();
        for seq in 0..8 {
            batch.extend(frame(CALL, seq, 0, b"gate"));
        }
        s.write_all(&batch).await.unwrap();
        let c = srv.counters.clone();
        wait_for("8 running on a fresh connection", 3, || {
            c.running.load(Ordering::SeqCst) == 8
        })
        .await;
        srv.gate.add_permits(8);
        let mut buf = BytesMut::new();
        for _ in 0..8 {
            assert_eq!(answer(&mut s, &mut buf).await.unwrap().code, 0);
        }
        srv.handle.shutdown().await;
    }
}

// ===== slow senders, huge frames, connection limit =====

/// Fifty connections each send part of a frame and stop, ten more trickle
/// a byte at a time: each is closed cleanly after the read timeout, and a
/// neighbour is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_cut_off_and_neighbours_served() {
    let limits = Limits {
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let srv = start(
        ServerBuilder::new()
            .limits(limits)
            .linger(Duration::from_millis(100)),
        false,
    )
    .await;
    let f = frame(CALL, 1, 0, b"hello, slowly");
    let mut tasks = Vec::new();
    for i in 0..60 {
        let mut s = connect(&srv.handle).await;
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            if i < 50 {
                s.write_all(&f[..10]).await.unwrap();
                until_closed(&mut s, 4).await
            } else {
                let (mut rd, mut wr) = s.into_split();
                let trickle = tokio::spawn(async move {
                    for b in &f[..f.len() - 1] {
                        if wr.write_all(&[*b]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    wr
                });
                let r = until_closed(&mut rd, 4).await;
                trickle.abort();
                r
            }
        }));
    }
    for _ in 0..5 {
        let a = call_once(&srv.handle, b"neighbour").await.expect("served");
        assert_eq!(&a.body[..], b"neighbour");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            Some(true),
            "closed cleanly after the read timeout"
        );
    }
    srv.handle.shutdown().await;
}

/// A frame header that declares a large frame, followed by silence; one
/// past the codec's bound; one past `Limits::max_frame_len` (the codec
/// would take it): each connection is closed, a neighbour is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_declared_frames_close_only_their_connection() {
    let limits = Limits {
        read_timeout: Duration::from_millis(300),
        max_frame_len: 4096,
        ..Limits::default()
    };
    let srv = start(
        ServerBuilder::new()
            .limits(limits)
            .linger(Duration::from_millis(200)),
        false,
    )
    .await;
    // Declares 1 MiB (the codec's bound), sends 100 bytes.
    let mut a = connect(&srv.handle).await;
    let mut head = (1u32 << 20).to_be_bytes().to_vec();
    head.extend(vec![0u8; 100]);
    a.write_all(&head).await.unwrap();
    // Declares 4 GiB.
    let mut b = connect(&srv.handle).await;
    b.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0])
        .await
        .unwrap();
    // A whole 512 KiB frame the codec takes, past max_frame_len.
    let c = connect(&srv.handle).await;
    let (mut c_rd, mut c_wr) = c.into_split();
    let big = frame(CALL, 1, 0, &vec![b'a'; 512 * 1024]);
    let cw = tokio::spawn(async move {
        let _ = c_wr.write_all(&big).await;
        c_wr
    });
    let n = call_once(&srv.handle, b"neighbour").await.expect("served");
    assert_eq!(&n.body[..], b"neighbour");
    assert_eq!(until_closed(&mut a, 3).await, Some(true));
    assert_eq!(until_closed(&mut b, 3).await, Some(true));
    let mut buf = BytesMut::new();
    let seen = tokio::time::timeout(Duration::from_secs(3), next_seen(&mut c_rd, &mut buf))
        .await
        .expect("closed");
    assert!(matches!(seen, Seen::Eof), "past max_frame_len: {seen:?}");
    cw.abort();
    srv.handle.shutdown().await;
}

/// Connections past `max_connections` wait in the backlog and are served
/// once a slot frees; forty callers through two slots are all served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_wait_and_are_served() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), false).await;
    let a = connect(&srv.handle).await;
    let b = connect(&srv.handle).await;
    let h = &srv.handle;
    wait_for("both connections accepted", 3, || h.open() == 2).await;
    let mut c = connect(&srv.handle).await;
    c.write_all(&frame(CALL, 1, 0, b"third")).await.unwrap();
    let mut buf = BytesMut::new();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), answer(&mut c, &mut buf))
            .await
            .is_err(),
        "a third connection is not served while two hold the slots"
    );
    drop(a);
    let got = tokio::time::timeout(Duration::from_secs(3), answer(&mut c, &mut buf))
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert_eq!(&got.body[..], b"third");
    drop(c);
    drop(b);
    let h = Arc::new(srv.handle);
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let p = format!("c{i}");
            let a = call_once(&h, p.as_bytes()).await.expect("answered");
            assert_eq!(&a.body[..], p.as_bytes());
        }));
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("forty callers through two slots");
    Arc::into_inner(h).unwrap().shutdown().await;
}

/// A bad frame after a running call: the call is answered (marked
/// closing), then FIN; the neighbour is not disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_closes_only_its_connection_after_answering() {
    let srv = start(
        ServerBuilder::new().linger(Duration::from_millis(200)),
        false,
    )
    .await;
    let mut s = connect(&srv.handle).await;
    let mut batch = frame(CALL, 1, 0, b"sleep:200");
    let mut bad = frame(CALL, 2, 0, b"x");
    bad[4] = 9; // unknown kind: the codec fails the stream
    batch.extend(bad);
    s.write_all(&batch).await.unwrap();
    let n = call_once(&srv.handle, b"neighbour").await.expect("served");
    assert_eq!(&n.body[..], b"neighbour");
    let mut buf = BytesMut::new();
    let a = answer(&mut s, &mut buf)
        .await
        .expect("the running call is answered");
    assert_eq!((a.seq, a.code, a.closing), (1, 0, true));
    assert_eq!(answer(&mut s, &mut buf).await, None);
    srv.handle.shutdown().await;
}

// ===== the server-wide byte bound =====

/// With a byte bound below one frame, "a bound below one frame slows the
/// server to one at a time instead of wedging it": a lone 100 KB call must
/// be answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_large_call_passes_a_tiny_byte_bound() {
    let srv = start(ServerBuilder::new().limits(tiny_bytes()), false).await;
    let payload = vec![b'a'; 100_000];
    let a = tokio::time::timeout(Duration::from_secs(3), call_once(&srv.handle, &payload))
        .await
        .expect("a lone call is never wedged")
        .unwrap();
    assert_eq!(a.body.len(), 100_000);
    srv.handle.shutdown().await;
}

/// A pipeline of small calls on one connection (no other connection) under
/// a tiny byte bound: served one read at a time, never wedged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_call_pipeline_passes_a_tiny_byte_bound() {
    let srv = start(ServerBuilder::new().limits(tiny_bytes()), false).await;
    let s = connect(&srv.handle).await;
    let n = 10_000u32;
    let mut batch = Vec::new();
    for seq in 0..n {
        batch.extend(frame(CALL, seq, 0, b"x"));
    }
    let (mut rd, mut wr) = s.into_split();
    let w = tokio::spawn(async move {
        wr.write_all(&batch).await.unwrap();
        wr
    });
    let mut buf = BytesMut::new();
    let got = tokio::time::timeout(Duration::from_secs(4), async {
        for _ in 0..n {
            answer(&mut rd, &mut buf).await.expect("answered");
        }
    })
    .await;
    assert!(got.is_ok(), "the pipeline wedged");
    let _ = w.await;
    srv.handle.shutdown().await;
}

/// Under a tiny byte bound, an idle connection (it sent nothing) must not
/// keep every other connection from being read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_does_not_starve_others_of_the_byte_bound() {
    let srv = start(ServerBuilder::new().limits(tiny_bytes()), false).await;
    let _idle = connect(&srv.handle).await;
    let h = &srv.handle;
    wait_for("the idle connection accepted", 3, || h.open() == 1).await;
    let a = tokio::time::timeout(Duration::from_secs(2), call_once(&srv.handle, b"x"))
        .await
        .expect("a lone call on a second connection is served")
        .unwrap();
    assert_eq!(&a.body[..], b"x");
    srv.handle.shutdown().await;
}

/// Two peers each send 400 KB of a 700 KB call, then the rest, with a
/// 1 MiB server-wide byte bound: both hold a partial frame and wait for
/// the bytes the other holds; neither is timed out (the wait is "ours").
/// Each frame alone fits: one must be served, then the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_frames_on_two_connections_do_not_deadlock_the_byte_bound() {
    let limits = Limits {
        max_in_flight_bytes: 1 << 20,
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), false).await;
    let f = frame(CALL, 1, 0, &vec![b'a'; 700_000]);
    let mut a = connect(&srv.handle).await;
    let mut b = connect(&srv.handle).await;
    a.write_all(&f[..400_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.write_all(&f[..400_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut ar, mut aw) = a.into_split();
    let (mut br, mut bw) = b.into_split();
    let rest = f[400_000..].to_vec();
    let rest2 = rest.clone();
    let wa = tokio::spawn(async move {
        let _ = aw.write_all(&rest).await;
        aw
    });
    let wb = tokio::spawn(async move {
        let _ = bw.write_all(&rest2).await;
        bw
    });
    let both = tokio::time::timeout(Duration::from_secs(4), async {
        let x = answer(&mut ar, &mut BytesMut::new()).await;
        let y = answer(&mut br, &mut BytesMut::new()).await;
        (x, y)
    })
    .await
    .expect("both calls answered, one after the other");
    assert_eq!(both.0.unwrap().body.len(), 700_000);
    assert_eq!(both.1.unwrap().body.len(), 700_000);
    wa.abort();
    wb.abort();
    srv.handle.shutdown().await;
}

// ===== the server-wide request bound =====

/// A connection whose whole call waits in its read buffer for a
/// server-wide request slot is not a slow sender: the read timeout must
/// not close it (and drop the call unanswered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_server_wide_slot_is_not_a_read_timeout() {
    let limits = Limits {
        max_in_flight: 1,
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), false).await;
    let mut a = connect(&srv.handle).await;
    a.write_all(&frame(CALL, 1, 0, b"gate")).await.unwrap();
    let c = srv.counters.clone();
    wait_for("the gate call", 3, || c.running.load(Ordering::SeqCst) == 1).await;
    let mut b = connect(&srv.handle).await;
    b.write_all(&frame(CALL, 2, 0, b"waits")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    srv.gate.add_permits(1);
    assert_eq!(answer(&mut a, &mut BytesMut::new()).await.unwrap().code, 0);
    let got = tokio::time::timeout(Duration::from_secs(3), answer(&mut b, &mut BytesMut::new()))
        .await
        .expect("no hang");
    let got = got.expect("the waiting call is answered, not dropped by a read timeout");
    assert_eq!(&got.body[..], b"waits");
    srv.handle.shutdown().await;
}

/// A peer that sends a call and half-closes while the call waits for a
/// server-wide request slot: the call must still be answered before FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_while_waiting_for_a_server_wide_slot_is_answered() {
    let limits = Limits {
        max_in_flight: 1,
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), false).await;
    let mut a = connect(&srv.handle).await;
    a.write_all(&frame(CALL, 1, 0, b"gate")).await.unwrap();
    let c = srv.counters.clone();
    wait_for("the gate call", 3, || c.running.load(Ordering::SeqCst) == 1).await;
    let mut b = connect(&srv.handle).await;
    b.write_all(&frame(CALL, 2, 0, b"waits")).await.unwrap();
    b.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.gate.add_permits(1);
    assert_eq!(answer(&mut a, &mut BytesMut::new()).await.unwrap().code, 0);
    let got = tokio::time::timeout(Duration::from_secs(3), answer(&mut b, &mut BytesMut::new()))
        .await
        .expect("no hang")
        .expect("the call sent before the half-close is answered before FIN");
    assert_eq!(&got.body[..], b"waits");
    srv.handle.shutdown().await;
}

// ===== encoding that fails outright =====

/// A reply the codec cannot encode, not even as an error: the connection
/// must close ("the peer would lose its place: close the connection").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unencodable_answer_closes_the_connection() {
    let srv = start(
        ServerBuilder::new().linger(Duration::from_millis(100)),
        false,
    )
    .await;
    let mut s = connect(&srv.handle).await;
    s.write_all(&frame(CALL, UNENCODABLE, 0, b"x"))
        .await
        .unwrap();
    assert_eq!(
        until_closed(&mut s, 3).await,
        Some(true),
        "the connection closes cleanly"
    );
    srv.handle.shutdown().await;
}

// ===== idle timeout =====

/// The idle timeout never closes a connection while a call or a one-way
/// call runs, inline or spawned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_waits_for_running_calls() {
    for spawn in [false, true] {
        let limits = Limits {
            idle_timeout: Duration::from_millis(150),
            read_timeout: Duration::from_millis(150),
            ..Limits::default()
        };
        let srv = start(
            ServerBuilder::new().limits(limits).spawn_handlers(spawn),
            false,
        )
        .await;
        let mut s = connect(&srv.handle).await;
        s.write_all(&frame(CALL, 1, 0, b"sleep:600")).await.unwrap();
        let mut buf = BytesMut::new();
        let a = answer(&mut s, &mut buf)
            .await
            .expect("answered, not closed as idle");
        assert_eq!((a.seq, a.code), (1, 0));
        // A one-way call keeps the connection busy too.
        let mut s = connect(&srv.handle).await;
        s.write_all(&frame(ONEWAY, 0, 0, b"sleep:500"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        s.write_all(&frame(CALL, 2, 0, b"after")).await.unwrap();
        let a = answer(&mut s, &mut BytesMut::new())
            .await
            .expect("still open");
        assert_eq!(&a.body[..], b"after");
        srv.handle.shutdown().await;
    }
}

// ===== graceful shutdown =====

/// Shutdown while a peer never reads the answers it asked for (tens of MB):
/// the write timeout ends it, and shutdown returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_while_a_peer_never_reads() {
    let limits = Limits {
        write_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits), false).await;
    let mut s = connect(&srv.handle).await;
    let mut batch = Vec::new();
    for seq in 0..200 {
        batch.extend(frame(CALL, seq, 0, b"big:200000"));
    }
    s.write_all(&batch).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(4), srv.handle.shutdown())
        .await
        .expect("shutdown returns");
    drop(s);
}

/// Shutdown with spawned handlers: finished calls are answered, calls
/// running at the drain timeout get Unavailable (not "not sent"), calls
/// sent during the drain are refused NotSent with the closing flag; then
/// FIN; every spawned handler is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_spawned_handlers_gives_each_call_one_outcome() {
    let srv = start(
        ServerBuilder::new()
            .spawn_handlers(true)
            .drain_timeout(Duration::from_millis(400))
            .linger(Duration::from_millis(100)),
        false,
    )
    .await;
    let mut s = connect(&srv.handle).await;
    let mut batch = Vec::new();
    for seq in 0..20 {
        batch.extend(frame(CALL, seq, 0, b"sleep:100"));
    }
    for seq in 20..25 {
        batch.extend(frame(CALL, seq, 0, b"sleep:60000"));
    }
    s.write_all(&batch).await.unwrap();
    let c = srv.counters.clone();
    wait_for("25 running", 3, || c.running.load(Ordering::SeqCst) == 25).await;
    let stop = tokio::spawn(srv.handle.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut late = Vec::new();
    for seq in 25..35 {
        late.extend(frame(CALL, seq, 0, b"x"));
    }
    s.write_all(&late).await.unwrap();
    let mut buf = BytesMut::new();
    let mut got = std::collections::HashMap::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), next_seen(&mut s, &mut buf))
            .await
            .expect("no hang")
        {
            Seen::Answer(a) => assert!(got.insert(a.seq, a).is_none(), "one outcome per call"),
            Seen::Eof => break,
            Seen::Reset => panic!("reset instead of FIN"),
        }
    }
    assert_eq!(got.len(), 35);
    for seq in 0..20 {
        assert_eq!(got[&seq].code, 0, "seq {seq}");
    }
    for seq in 20..25 {
        let a = &got[&seq];
        assert_eq!(
            (a.code, a.not_sent, a.closing),
            (Code::Unavailable as u8, false, true)
        );
    }
    for seq in 25..35 {
        let a = &got[&seq];
        assert_eq!(
            (a.code, a.not_sent, a.closing),
            (Code::Unavailable as u8, true, true)
        );
    }
    tokio::time::timeout(Duration::from_secs(3), stop)
        .await
        .expect("shutdown returns")
        .unwrap();
    wait_for("spawned handlers aborted", 3, || {
        c.running.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(
        c.calls.load(Ordering::SeqCst),
        25,
        "refused calls never ran"
    );
}

/// Ordered transport, drain timeout: the first call still runs, later ones
/// finished and wait behind it; the cancellation releases them in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_on_an_ordered_connection_keeps_the_order() {
    let srv = start(
        ServerBuilder::new()
            .drain_timeout(Duration::from_millis(300))
            .linger(Duration::from_millis(100)),
        true,
    )
    .await;
    let mut s = connect(&srv.handle).await;
    let mut batch = frame(CALL, 0, 0, b"sleep:60000");
    for seq in 1..4 {
        batch.extend(frame(CALL, seq, 0, b"x"));
    }
    s.write_all(&batch).await.unwrap();
    let c = srv.counters.clone();
    wait_for("4 calls", 3, || c.calls.load(Ordering::SeqCst) == 4).await;
    let stop = tokio::spawn(srv.handle.shutdown());
    let mut buf = BytesMut::new();
    let mut seen = Vec::new();
    while let Some(a) = tokio::time::timeout(Duration::from_secs(3), answer(&mut s, &mut buf))
        .await
        .expect("no hang")
    {
        seen.push((a.seq, a.code));
    }
    let un = Code::Unavailable as u8;
    assert_eq!(seen, vec![(0, un), (1, 0), (2, 0), (3, 0)]);
    stop.await.unwrap();
}

/// A one-way flood during the drain keeps the connection draining only
/// until the drain timeout; then FIN, and shutdown returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_flood_during_the_drain_ends_at_the_drain_timeout() {
    let srv = start(
        ServerBuilder::new()
            .drain_timeout(Duration::from_millis(500))
            .linger(Duration::from_millis(300)),
        false,
    )
    .await;
    let s = connect(&srv.handle).await;
    let (mut rd, mut wr) = s.into_split();
    let stop_writing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop_writing.clone();
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        for _ in 0..50 {
            batch.extend(frame(ONEWAY, 0, 0, b"o"));
        }
        while !flag.load(Ordering::SeqCst) {
            if wr.write_all(&batch).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        wr
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stop = tokio::spawn(srv.handle.shutdown());
    let mut buf = BytesMut::new();
    let seen = tokio::time::timeout(Duration::from_secs(3), next_seen(&mut rd, &mut buf))
        .await
        .expect("the drain ends");
    stop_writing.store(true, Ordering::SeqCst);
    assert!(matches!(seen, Seen::Eof), "{seen:?}");
    tokio::time::timeout(Duration::from_secs(4), stop)
        .await
        .expect("shutdown returns")
        .unwrap();
    assert!(srv.counters.oneway.load(Ordering::SeqCst) > 0);
    let _ = writer.await;
}

/// New connections keep arriving while the server shuts down: each call
/// sent gets an answer or a NotSent refusal marked closing; a connection
/// that reached the backlog after the server took the waiting ones is
/// reset; none ends in a bare FIN without its answer. Shutdown returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_racing_shutdown_get_an_outcome_for_every_call() {
    let srv = start(
        ServerBuilder::new().linger(Duration::from_millis(100)),
        false,
    )
    .await;
    let Address::Tcp(addr) = srv.handle.local_addr().clone() else {
        unreachable!()
    };
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let mut outcomes = (0usize, 0usize, 0usize, 0usize); // ok, refused, reset, refused connect
            while !done.load(Ordering::SeqCst) {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    outcomes.3 += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                if s.write_all(&frame(CALL, 7, 0, b"sleep:5")).await.is_err() {
                    outcomes.2 += 1;
                    continue;
                }
                let mut buf = BytesMut::new();
                match tokio::time::timeout(Duration::from_secs(3), next_seen(&mut s, &mut buf))
                    .await
                    .expect("no hang")
                {
                    Seen::Answer(a) if a.code == 0 => outcomes.0 += 1,
                    Seen::Answer(a) => {
                        assert_eq!(
                            (a.code, a.not_sent, a.closing),
                            (Code::Unavailable as u8, true, true)
                        );
                        outcomes.1 += 1;
                    }
                    Seen::Reset => outcomes.2 += 1,
                    Seen::Eof => panic!("a call was accepted and then dropped without an outcome"),
                }
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    tokio::time::timeout(Duration::from_secs(4), srv.handle.shutdown())
        .await
        .expect("shutdown returns");
    tokio::time::sleep(Duration::from_millis(100)).await;
    done.store(true, Ordering::SeqCst);
    let mut total = (0, 0, 0, 0);
    for c in clients {
        let o = c.await.unwrap();
        total = (total.0 + o.0, total.1 + o.1, total.2 + o.2, total.3 + o.3);
    }
    eprintln!("ok, refused, reset, connect refused: {total:?}");
    assert!(total.0 > 0);
}

/// Connections waiting in the listen backlog when the drain starts (the
/// accept loop had not reached them) are accepted and answered "not
/// processed", not reset when the listener closes: a reset would leave
/// their calls in doubt though no handler saw them. The connections are
/// made while the runtime's only thread is busy, so none is accepted before
/// the shutdown.
#[tokio::test]
async fn calls_waiting_in_the_backlog_when_the_drain_starts_are_refused_not_reset() {
    use std::io::Write;
    let srv = start(ServerBuilder::new(), false).await;
    let Address::Tcp(addr) = srv.handle.local_addr().clone() else {
        unreachable!()
    };
    let mut waiting = Vec::new();
    for seq in 0..20u32 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&frame(CALL, seq, 0, b"x")).unwrap();
        s.set_nonblocking(true).unwrap();
        waiting.push(TcpStream::from_std(s).unwrap());
    }
    let shutdown = tokio::spawn(srv.handle.shutdown());
    let mut refused = 0;
    for mut s in waiting {
        let mut buf = BytesMut::new();
        match tokio::time::timeout(Duration::from_secs(5), next_seen(&mut s, &mut buf))
            .await
            .expect("no hang")
        {
            Seen::Answer(a) if a.code == 0 => {}
            Seen::Answer(a) => {
                assert_eq!(
                    (a.code, a.not_sent, a.closing),
                    (Code::Unavailable as u8, true, true)
                );
                refused += 1;
            }
            other => panic!("a call waiting in the backlog ended {other:?}"),
        }
    }
    assert!(
        refused > 0,
        "every waiting connection was accepted before the drain"
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown returns")
        .unwrap();
}

// ===== abort =====

/// `abort` under load from eight pipelining peers: every call sees at most
/// one outcome (an answer or Unavailable), each connection ends in FIN,
/// and abort returns; nothing panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_under_load_ends_every_connection() {
    let srv = start(
        ServerBuilder::new().linger(Duration::from_millis(200)),
        false,
    )
    .await;
    let mut peers = Vec::new();
    for _ in 0..8 {
        let mut s = connect(&srv.handle).await;
        let mut batch = Vec::new();
        for seq in 0..500u32 {
            let p: &[u8] = if seq % 3 == 0 { b"sleep:20" } else { b"x" };
            batch.extend(frame(CALL, seq, 0, p));
        }
        s.write_all(&batch).await.unwrap();
        peers.push(tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let mut seen = std::collections::HashSet::new();
            loop {
                match tokio::time::timeout(Duration::from_secs(4), next_seen(&mut s, &mut buf))
                    .await
                    .expect("no hang")
                {
                    Seen::Answer(a) => {
                        assert!(a.code == 0 || a.code == Code::Unavailable as u8, "{a:?}");
                        assert!(seen.insert(a.seq), "seq {} answered twice", a.seq);
                    }
                    Seen::Eof => return seen.len(),
                    Seen::Reset => panic!("reset instead of FIN"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    tokio::time::timeout(Duration::from_secs(4), srv.handle.abort())
        .await
        .expect("abort returns");
    for p in peers {
        p.await.unwrap();
    }
}

/// `abort` ("close everything now") while a peer never reads: it must not
/// wait for the write timeout or the drain timeout (30 s each by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_does_not_wait_for_a_peer_that_never_reads() {
    let srv = start(ServerBuilder::new(), false).await;
    let mut s = connect(&srv.handle).await;
    let mut batch = Vec::new();
    for seq in 0..100 {
        batch.extend(frame(CALL, seq, 0, b"big:200000"));
    }
    s.write_all(&batch).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(4), srv.handle.abort())
        .await
        .expect("abort closes everything now");
    drop(s);
}

// ===== leaks =====

/// A barrage of hostile connections on one server (resets with calls
/// running, a peer that never reads, slow senders, bad frames, huge
/// headers, half-closes); once they are gone, a fresh connection runs
/// max_in_flight calls at once and a frame of nearly the whole byte bound
/// passes: nothing was leaked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_is_whole_again_after_a_barrage() {
    let limits = Limits {
        max_in_flight: 16,
        max_in_flight_bytes: 1 << 20,
        read_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let srv = start(
        ServerBuilder::new()
            .limits(limits)
            .linger(Duration::from_millis(100)),
        false,
    )
    .await;
    let h = &srv.handle;
    let mut closers = Vec::new();
    for round in 0..3u32 {
        // Reset with calls running.
        let mut s = connect(h).await;
        let mut b = Vec::new();
        for seq in 0..4 {
            b.extend(frame(CALL, seq, 0, b"gate"));
        }
        b.extend(frame(ONEWAY, 0, 0, b"gate"));
        s.write_all(&b).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        reset(s);
        // Never reads 4 MB of answers.
        let mut s = connect(h).await;
        let mut b = Vec::new();
        for seq in 0..20 {
            b.extend(frame(CALL, seq, 0, b"big:200000"));
        }
        s.write_all(&b).await.unwrap();
        closers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            drop(s);
        }));
        // Slow sender.
        let mut s = connect(h).await;
        s.write_all(&frame(CALL, 1, 0, b"slow")[..7]).await.unwrap();
        closers.push(tokio::spawn(async move {
            until_closed(&mut s, 3).await;
        }));
        // Bad frame after a running call.
        let mut s = connect(h).await;
        let mut b = frame(CALL, 1, 0, b"sleep:50");
        b.extend([0, 0, 0, 20, 9, 9, 9]);
        s.write_all(&b).await.unwrap();
        closers.push(tokio::spawn(async move {
            until_closed(&mut s, 3).await;
        }));
        // A huge header.
        let mut s = connect(h).await;
        s.write_all(&[0xff; 8]).await.unwrap();
        closers.push(tokio::spawn(async move {
            until_closed(&mut s, 3).await;
        }));
        // Pipeline and half-close, then reset before reading.
        let mut s = connect(h).await;
        let mut b = Vec::new();
        for seq in 0..300 {
            b.extend(frame(
                CALL,
                seq,
                0,
                if seq % 2 == 0 {
                    b"sleep:3"
                } else {
                    b"big:5000"
                },
            ));
        }
        s.write_all(&b).await.unwrap();
        s.shutdown().await.unwrap();
        if round % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            reset(s);
        } else {
            closers.push(tokio::spawn(async move {
                until_closed(&mut s, 3).await;
            }));
        }
    }
    for c in closers {
        c.await.unwrap();
    }
    let c = srv.counters.clone();
    wait_for("hostile handlers gone", 3, || {
        c.running.load(Ordering::SeqCst) == 0
    })
    .await;
    // Every request slot is free.
    let mut s = connect(h).await;
    let mut b = Vec::new();
    for seq in 0..16 {
        b.extend(frame(CALL, seq, 0, b"gate"));
    }
    s.write_all(&b).await.unwrap();
    wait_for("16 calls at once", 3, || {
        c.running.load(Ordering::SeqCst) == 16
    })
    .await;
    srv.gate.add_permits(16);
    let mut buf = BytesMut::new();
    for _ in 0..16 {
        assert_eq!(answer(&mut s, &mut buf).await.unwrap().code, 0);
    }
    drop(s);
    // Nearly the whole byte bound is free.
    let a = tokio::time::timeout(
        Duration::from_secs(3),
        call_once(h, &vec![b'z'; 900 * 1024]),
    )
    .await
    .expect("a frame of nearly the whole byte bound passes")
    .unwrap();
    assert_eq!(a.body.len(), 900 * 1024);
    srv.handle.shutdown().await;
}
