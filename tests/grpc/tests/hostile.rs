//! Hostile HTTP/2 and gRPC peers against Weft's gRPC server, over real
//! sockets. Each attack is bounded (a clear status, or only the offending
//! stream or connection closed), memory stays bounded, and a neighbour
//! connection keeps being served throughout.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use weft::{
    core::{Address, Code, Context, Limits, ServerBuilder, ServerHandle},
    protobuf::{GrpcClient, GrpcLimits, GrpcServer},
};
use weft_grpc_tests::{
    pb::Empty,
    server::Interop,
    service::TestServiceClient,
    service::TestServiceServer,
    wire::{frame, PREFACE},
};

async fn start(limits: GrpcLimits, conn: Limits) -> ServerHandle {
    TestServiceServer::new(Interop)
        .register(GrpcServer::new().limits(limits))
        .serve(
            ServerBuilder::new().limits(conn),
            &"127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap()
}

fn tcp(h: &ServerHandle) -> std::net::SocketAddr {
    match h.local_addr() {
        Address::Tcp(a) => *a,
        _ => unreachable!(),
    }
}

/// A well-behaved neighbour on a connection of its own answers in time.
async fn neighbour_ok(h: &ServerHandle) {
    let client = TestServiceClient::new(GrpcClient::new(h.local_addr().clone()));
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_secs(5));
    client
        .empty_call(cx, &Empty {})
        .await
        .expect("a neighbour is served");
}

/// The tests measure the process's memory: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process grew by less than `bound` bytes since `before`.
fn assert_grew_less(before: usize, bound: usize) {
    let now = rss();
    assert!(
        now < before + bound,
        "memory grew by {} MiB",
        now.saturating_sub(before) >> 20
    );
}

fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

// ===== raw HTTP/2 =====

fn hpack_int(out: &mut Vec<u8>, prefix_bits: u8, first: u8, mut v: usize) {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literal fields, never indexed, no Huffman.
fn hpack(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in headers {
        out.push(0x00);
        hpack_int(&mut out, 7, 0, k.len());
        out.extend_from_slice(k.as_bytes());
        hpack_int(&mut out, 7, 0, v.len());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn grpc_headers(path: &str) -> Vec<u8> {
    hpack(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ])
}

/// Connect and say hello: preface and empty SETTINGS.
async fn raw(h: &ServerHandle) -> TcpStream {
    let mut s = TcpStream::connect(tcp(h)).await.unwrap();
    let mut b = BytesMut::new();
    b.put_slice(PREFACE);
    frame(&mut b, 4, 0, 0, &[]);
    s.write_all(&b).await.unwrap();
    s
}

/// Read frames until the server sends GOAWAY or closes; the GOAWAY's error
/// code, `Some(u32::MAX)` for a plain close, `None` if neither came in time.
async fn wait_goaway(s: &mut TcpStream, within: Duration) -> Option<u32> {
    let mut buf = BytesMut::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let f = buf.split_to(9 + len);
            if f[3] == 7 && len >= 8 {
                return Some(u32::from_be_bytes([f[13], f[14], f[15], f[16]]));
            }
        }
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(u32::MAX),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ===== valid HTTP/2, hostile gRPC: through h2's own client =====

async fn h2_call(
    h: &ServerHandle,
    path: &str,
    extra: &[(&str, &str)],
    body: Bytes,
    end: bool,
) -> (http::HeaderMap, h2::RecvStream) {
    let s = TcpStream::connect(tcp(h)).await.unwrap();
    let (send, conn) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(conn);
    let mut send = send.ready().await.unwrap();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let (resp, mut stream) = send.send_request(req.body(()).unwrap(), false).unwrap();
    stream.send_data(body, end).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("a response in time")
        .unwrap();
    // Keep the request stream open as long as the response is read.
    std::mem::forget(stream);
    let (parts, recv) = resp.into_parts();
    (parts.headers, recv)
}

/// The status a response ended with: in a trailers-only head, or in the
/// trailers after the body.
async fn status_of(headers: http::HeaderMap, mut recv: h2::RecvStream) -> (Code, String) {
    let st = |h: &http::HeaderMap| {
        h.get("grpc-status").map(|v| {
            (
                Code::from_i32(v.to_str().unwrap().parse().unwrap()),
                h.get("grpc-message")
                    .map(|m| m.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
            )
        })
    };
    if let Some(s) = st(&headers) {
        return s;
    }
    while let Some(d) = recv.data().await {
        d.unwrap();
    }
    let t = recv.trailers().await.unwrap().expect("trailers");
    st(&t).expect("grpc-status")
}

fn prefix(compressed: bool, len: u32) -> Vec<u8> {
    let mut p = vec![u8::from(compressed)];
    p.extend_from_slice(&len.to_be_bytes());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_gib_length_prefix_is_refused_before_any_byte_is_held() {
    let _serial = SERIAL.lock().await;
    let h = start(GrpcLimits::default(), Limits::default()).await;
    let before = rss();
    let (hd, recv) = h2_call(
        &h,
        "/grpc.testing.TestService/UnaryCall",
        &[],
        Bytes::from(prefix(false, u32::MAX)),
        false,
    )
    .await;
    let (code, msg) = status_of(hd, recv).await;
    assert_eq!(code, Code::ResourceExhausted, "{msg}");
    assert!(msg.contains("larger than max"), "{msg}");
    assert_grew_less(before, 64 << 20);
    neighbour_ok(&h).await;
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_one_byte_over_the_limit_is_refused_and_one_at_it_is_served() {
    let _serial = SERIAL.lock().await;
    let limits = GrpcLimits {
        max_recv_message: 1024,
        ..GrpcLimits::default()
    };
    let h = start(limits, Limits::default()).await;
    // Empty's encoding tolerates unknown fields: one bytes field (tag 15,
    // wire type 2) padded to the exact length wanted.
    let msg = |total: usize| {
        let body_len = total - 3;
        let mut m = vec![0x7a, (body_len & 0x7f) as u8 | 0x80, (body_len >> 7) as u8];
        m.resize(total, 0);
        let mut out = prefix(false, total as u32);
        out.extend_from_slice(&m);
        Bytes::from(out)
    };
    let (hd, recv) = h2_call(
        &h,
        "/grpc.testing.TestService/EmptyCall",
        &[],
        msg(1025),
        true,
    )
    .await;
    let (code, msg_text) = status_of(hd, recv).await;
    assert_eq!(code, Code::ResourceExhausted, "{msg_text}");
    let (hd, recv) = h2_call(
        &h,
        "/grpc.testing.TestService/EmptyCall",
        &[],
        msg(1024),
        true,
    )
    .await;
    assert_eq!(status_of(hd, recv).await.0, Code::Ok);
    neighbour_ok(&h).await;
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_at_the_limit() {
    let _serial = SERIAL.lock().await;
    let h = start(GrpcLimits::default(), Limits::default()).await;
    // 64 MiB of zeros gzip to ~64 KiB; the limit is 4 MiB decompressed.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut e, &vec![0u8; 64 << 20]).unwrap();
    let z = e.finish().unwrap();
    assert!(z.len() < 128 * 1024, "{}", z.len());
    let mut body = prefix(true, z.len() as u32);
    body.extend_from_slice(&z);
    let before = rss();
    let (hd, recv) = h2_call(
        &h,
        "/grpc.testing.TestService/EmptyCall",
        &[("grpc-encoding", "gzip")],
        Bytes::from(body),
        true,
    )
    .await;
    let (code, msg) = status_of(hd, recv).await;
    assert_eq!(code, Code::ResourceExhausted, "{msg}");
    assert_grew_less(before, 32 << 20);
    neighbour_ok(&h).await;
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_ends_is_answered_at_the_read_timeout() {
    let _serial = SERIAL.lock().await;
    let conn = Limits {
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let h = start(GrpcLimits::default(), conn).await;
    // Half a message, and the stream left open.
    let mut body = prefix(false, 100);
    body.extend_from_slice(&[0u8; 10]);
    let started = tokio::time::Instant::now();
    let (hd, recv) = h2_call(
        &h,
        "/grpc.testing.TestService/EmptyCall",
        &[],
        Bytes::from(body),
        false,
    )
    .await;
    let (code, _) = status_of(hd, recv).await;
    assert_ne!(code, Code::Ok);
    assert!(started.elapsed() < Duration::from_secs(5));
    neighbour_ok(&h).await;
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_grpc_timeout_is_an_error_not_a_deadline() {
    let _serial = SERIAL.lock().await;
    let h = start(GrpcLimits::default(), Limits::default()).await;
    for bad in ["123456789S", "1x", "S", "-5m"] {
        let (hd, recv) = h2_call(
            &h,
            "/grpc.testing.TestService/EmptyCall",
            &[("grpc-timeout", bad)],
            Bytes::from(prefix(false, 0)),
            true,
        )
        .await;
        let (code, msg) = status_of(hd, recv).await;
        assert_eq!(code, Code::Internal, "{bad}: {msg}");
    }
    neighbour_ok(&h).await;
    h.abort().await;
}

// ===== protocol-level floods: raw frames =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_bounded() {
    let _serial = SERIAL.lock().await;
    let h = start(GrpcLimits::default(), Limits::default()).await;
    let before = rss();
    let mut s = raw(&h).await;
    let block = grpc_headers("/grpc.testing.TestService/EmptyCall");
    let mut b = BytesMut::new();
    for i in 0..20_000u32 {
        let id = 2 * i + 1;
        frame(&mut b, 1, 0x4, id, &block); // HEADERS, END_HEADERS
        frame(&mut b, 3, 0, id, &8u32.to_be_bytes()); // RST_STREAM CANCEL
    }
    // The server may close the connection part way: that is the defence.
    let _ = s.write_all(&b).await;
    let code = wait_goaway(&mut s, Duration::from_secs(10)).await;
    eprintln!("rapid reset: GOAWAY {code:?}");
    neighbour_ok(&h).await;
    assert_grew_less(before, 128 << 20);
    // Either the server told it to calm down, or it kept up with every
    // reset without holding anything: both leave the neighbour served.
    if let Some(c) = code {
        assert!(c == 0xb || c == u32::MAX || c == 0, "GOAWAY code {c:#x}");
    }
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_closes_the_connection() {
    let _serial = SERIAL.lock().await;
    let h = start(GrpcLimits::default(), Limits::default()).await;
    let before = rss();
    let mut s = raw(&h).await;
    let mut b = BytesMut::new();
    // HEADERS without END_HEADERS, then CONTINUATIONs that never end it.
    frame(
        &mut b,
        1,
        0,
        1,
        &grpc_headers("/grpc.testing.TestService/EmptyCall"),
    );
    let filler = hpack(&[("x-filler", &"a".repeat(4000))]);
    let mut sent_goaway = None;
    for _ in 0..2000 {
        frame(&mut b, 9, 0, 1, &filler);
        if b.len() > 256 * 1024 {
            if s.write_all(&b).await.is_err() {
                break;
            }
            b.clear();
        }
    }
    if sent_goaway.is_none() {
        sent_goaway = wait_goaway(&mut s, Duration::from_secs(5)).await;
    }
    assert!(sent_goaway.is_some(), "the flood was not cut off");
    assert_grew_less(before, 64 << 20);
    neighbour_ok(&h).await;
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_list_over_the_limit_is_refused() {
    let _serial = SERIAL.lock().await;
    let h = start(GrpcLimits::default(), Limits::default()).await;
    let big = "v".repeat(20 * 1024);
    let (hd, recv) = {
        let s = TcpStream::connect(tcp(&h)).await.unwrap();
        let (send, conn) = h2::client::Builder::new()
            .max_header_list_size(1 << 20)
            .handshake::<_, Bytes>(s)
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut send = send.ready().await.unwrap();
        let req = http::Request::builder()
            .method("POST")
            .uri("http://localhost/grpc.testing.TestService/EmptyCall")
            .header("content-type", "application/grpc")
            .header("x-big", big.as_str())
            .body(())
            .unwrap();
        let (resp, mut st) = send.send_request(req, false).unwrap();
        let _ = st.send_data(Bytes::from(prefix(false, 0)), true);
        match tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .unwrap()
        {
            Ok(r) => {
                let (p, b) = r.into_parts();
                (Some(p), Some(b))
            }
            Err(_) => (None, None), // reset: refused
        }
    };
    if let (Some(p), Some(_)) = (hd, recv) {
        // h2 answers 431 Request Header Fields Too Large.
        assert_eq!(p.status, http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    neighbour_ok(&h).await;
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_ping_floods_from_a_peer_that_does_not_read_are_bounded() {
    let _serial = SERIAL.lock().await;
    let h = start(GrpcLimits::default(), Limits::default()).await;
    let before = rss();
    for kind in [4u8, 6] {
        let mut s = raw(&h).await;
        let mut b = BytesMut::new();
        for i in 0..50_000u64 {
            if kind == 4 {
                // SETTINGS_INITIAL_WINDOW_SIZE, each asking for an ACK.
                let mut p = vec![0, 4];
                p.extend_from_slice(&(65_535u32 + (i % 7) as u32).to_be_bytes());
                frame(&mut b, 4, 0, 0, &p);
            } else {
                frame(&mut b, 6, 0, 0, &i.to_be_bytes());
            }
        }
        // Never read: the answers pile up on the server's side unless it
        // stops reading us (backpressure) or cuts us off.
        let w = tokio::time::timeout(Duration::from_secs(5), s.write_all(&b)).await;
        let _ = w;
        neighbour_ok(&h).await;
        drop(s);
    }
    assert_grew_less(before, 64 << 20);
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_update_that_overflows_the_window_closes_the_connection() {
    let _serial = SERIAL.lock().await;
    let h = start(GrpcLimits::default(), Limits::default()).await;
    let mut s = raw(&h).await;
    let mut b = BytesMut::new();
    frame(&mut b, 8, 0, 0, &0x7fff_ffffu32.to_be_bytes());
    frame(&mut b, 8, 0, 0, &0x7fff_ffffu32.to_be_bytes());
    s.write_all(&b).await.unwrap();
    let code = wait_goaway(&mut s, Duration::from_secs(5)).await;
    // FLOW_CONTROL_ERROR (0x3), as RFC 9113 6.9.1 requires.
    assert_eq!(code, Some(0x3));
    neighbour_ok(&h).await;
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_messages_on_many_streams_are_bounded_by_the_byte_budget() {
    let _serial = SERIAL.lock().await;
    let conn = Limits {
        max_in_flight_bytes_per_connection: 16 << 20,
        ..Limits::default()
    };
    let h = start(GrpcLimits::default(), conn).await;
    let before = rss();
    let s = TcpStream::connect(tcp(&h)).await.unwrap();
    let (send, conn) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(conn);
    // 200 streams, each 4 MiB - 1 KiB into a 4 MiB message: 800 MiB the
    // server would hold if it kept taking them. One buffer, shared.
    let mut body = prefix(false, 4 << 20);
    body.resize(5 + (4 << 20) - 1024, 0);
    let body = Bytes::from(body);
    let mut streams = Vec::new();
    for _ in 0..200 {
        let mut send = send.clone().ready().await.unwrap();
        let req = http::Request::builder()
            .method("POST")
            .uri("http://localhost/grpc.testing.TestService/UnaryCall")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let (resp, mut st) = send.send_request(req, false).unwrap();
        st.send_data(body.clone(), false).unwrap();
        streams.push((resp, st));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = rss().saturating_sub(before);
    neighbour_ok(&h).await;
    eprintln!(
        "800 MiB offered on 200 streams: server memory grew by {} MiB",
        grown >> 20
    );
    assert!(
        grown < 96 << 20,
        "server memory grew by {} MiB",
        grown >> 20
    );
    drop(streams);
    h.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_keepalive_pings_is_closed() {
    let _serial = SERIAL.lock().await;
    let limits = GrpcLimits {
        keepalive_interval: Duration::from_millis(100),
        keepalive_timeout: Duration::from_millis(200),
        ..GrpcLimits::default()
    };
    let h = start(limits, Limits::default()).await;
    // Handshake, then silence: the server's PINGs are read, never answered.
    let mut s = raw(&h).await;
    let started = tokio::time::Instant::now();
    let code = wait_goaway(&mut s, Duration::from_secs(5)).await;
    assert!(code.is_some(), "a dead peer was kept");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    neighbour_ok(&h).await;
    h.abort().await;
}

/// A peer that opens the largest window HTTP/2 allows and asks on `streams`
/// streams for 1 MiB answers (`SimpleRequest { response_size: 1 MiB }`);
/// the caller never reads the socket it gets.
async fn asks_and_never_reads(h: &ServerHandle, streams: u32) -> TcpStream {
    let mut s = TcpStream::connect(tcp(h)).await.unwrap();
    let mut b = BytesMut::new();
    b.put_slice(PREFACE);
    // SETTINGS_INITIAL_WINDOW_SIZE = 2^31 - 1, and the connection's window
    // opened as far.
    let mut settings = vec![0, 4];
    settings.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    frame(&mut b, 4, 0, 0, &settings);
    frame(&mut b, 8, 0, 0, &(0x7fff_ffffu32 - 65_535).to_be_bytes());
    let msg = [0x10, 0x80, 0x80, 0x40];
    let mut body = prefix(false, msg.len() as u32);
    body.extend_from_slice(&msg);
    let headers = grpc_headers("/grpc.testing.TestService/UnaryCall");
    for i in 0..streams {
        frame(&mut b, 1, 0x4, 2 * i + 1, &headers);
        frame(&mut b, 0, 0x1, 2 * i + 1, &body);
    }
    s.write_all(&b).await.unwrap();
    s
}

/// A peer that opens the largest window HTTP/2 allows, asks on 1024 streams
/// for 1 MiB answers and never reads one: the answers the server holds
/// unwritten count against the connection's byte budget, so the server
/// stops producing them (their handlers wait) instead of holding 1 GiB for
/// one socket. The neighbour is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_peer_never_reads_are_bounded_by_the_byte_budget() {
    let _serial = SERIAL.lock().await;
    let h = start(GrpcLimits::default(), Limits::default()).await;
    let before = rss();
    let s = asks_and_never_reads(&h, 1024).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = rss().saturating_sub(before);
    neighbour_ok(&h).await;
    eprintln!(
        "1 GiB of answers asked for and never read: server memory grew by {} MiB",
        grown >> 20
    );
    assert!(
        grown < 160 << 20,
        "server memory grew by {} MiB",
        grown >> 20
    );
    drop(s);
    h.abort().await;
}

/// The same peer, against a server with a short write timeout: once
/// nothing could be written to it for that long, its connection is cut off
/// (and the answers held for it freed), while a neighbour is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_cut_off_at_the_write_timeout() {
    let _serial = SERIAL.lock().await;
    let conn = Limits {
        write_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let h = start(GrpcLimits::default(), conn).await;
    let mut s = asks_and_never_reads(&h, 256).await;
    // Not a byte read for 2 s: far past the write timeout.
    tokio::time::sleep(Duration::from_secs(2)).await;
    neighbour_ok(&h).await;
    // What the kernel took before the stall comes first, then the end. A
    // server still serving would keep writing its 256 MiB instead.
    let mut chunk = vec![0u8; 1 << 16];
    let mut read = 0usize;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok() && read < 64 << 20,
        "the connection was not cut off ({} MiB read)",
        read >> 20
    );
    h.abort().await;
}

/// Header lists held by calls in flight count as request bytes: streams
/// that open past the server's byte bound are refused at once
/// (REFUSED_STREAM, safe to retry elsewhere) instead of each holding up to
/// 16 KiB of headers. Here 400 streams with 12 KiB of headers each, none
/// ever sending its message, against a 1 MiB server bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_lists_of_calls_in_flight_are_bounded_by_the_byte_budget() {
    let _serial = SERIAL.lock().await;
    let conn = Limits {
        max_in_flight_bytes: 1 << 20,
        ..Limits::default()
    };
    let h = start(GrpcLimits::default(), conn).await;
    let mut refused = 0;
    let mut held = Vec::new();
    for _ in 0..4 {
        let s = TcpStream::connect(tcp(&h)).await.unwrap();
        let (send, conn) = h2::client::handshake(s).await.unwrap();
        tokio::spawn(conn);
        let mut pending = Vec::new();
        for i in 0..100 {
            let mut send = send.clone().ready().await.unwrap();
            let req = http::Request::builder()
                .method("POST")
                .uri("http://localhost/grpc.testing.TestService/UnaryCall")
                .header("content-type", "application/grpc")
                .header("x-pad", format!("{i:0>12288}"))
                .body(())
                .unwrap();
            let (resp, st) = send.send_request(req, false).unwrap();
            pending.push(resp);
            held.push(st);
        }
        // Refusals come back at once; what is left waits for a message.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for resp in pending {
            match tokio::time::timeout(Duration::ZERO, resp).await {
                Ok(Err(e)) if e.reason() == Some(h2::Reason::REFUSED_STREAM) => refused += 1,
                // Still waiting for its message: held by the server.
                Err(_) => {}
                other => panic!("unexpected outcome: {other:?}"),
            }
        }
    }
    // 1 MiB holds about 85 such lists; the other 315 are refused.
    assert!(
        refused >= 250,
        "only {refused} of 400 streams were refused past a 1 MiB bound"
    );
    drop(held);
    h.abort().await;
}
