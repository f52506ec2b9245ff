//! Hostile input over real sockets. Each bad connection gets a typed error
//! (a `TApplicationException` answer) or the close of that connection alone —
//! no panic, no allocation sized by an unchecked length — while a
//! well-behaved client on another connection keeps getting answers.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use pilota::thrift::{
    ApplicationException, ApplicationExceptionKind, Message, TInputProtocol, TMessageType,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use weft::core::{Address, ConnectionMode, Context, Limits, ServerBuilder, ServerHandle};
use weft::thrift::{frame::split_frame, BinaryInput, DecodeLimits, Protocol, Transport};
use weft_interop::{serve, EchoClient, EchoHandler};

// ===== building frames by hand =====

fn call(name: &str, seq: i32, args: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&0x8001_0001u32.to_be_bytes());
    m.extend_from_slice(&(name.len() as i32).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(args);
    m
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut f = (message.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(message);
    f
}

fn field(t: u8, id: i16) -> Vec<u8> {
    let mut f = vec![t];
    f.extend_from_slice(&id.to_be_bytes());
    f
}

/// `add(1: i64 a, 2: i64 b)` args.
fn add_args(a: i64, b: i64) -> Vec<u8> {
    let mut v = field(10, 1);
    v.extend_from_slice(&a.to_be_bytes());
    v.extend(field(10, 2));
    v.extend_from_slice(&b.to_be_bytes());
    v.push(0);
    v
}

/// `echo(1: Payload payload)` whose payload holds `inner` as its fields.
fn echo_args(payload_fields: &[u8]) -> Vec<u8> {
    let mut v = field(12, 1);
    v.extend_from_slice(payload_fields);
    v.push(0); // end of payload
    v.push(0); // end of args
    v
}

/// Read one binary reply of `transport`; its message type, sequence id and,
/// for exceptions, the exception. `None` when the server closed instead.
async fn read_reply_on(
    s: &mut TcpStream,
    transport: Transport,
) -> Option<(TMessageType, i32, Option<ApplicationException>)> {
    let mut buf = bytes::BytesMut::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let frame = loop {
        if let Some(f) = split_frame(
            &mut buf,
            transport,
            Protocol::Binary,
            1 << 24,
            DecodeLimits::default(),
        )
        .expect("the server's reply is well formed")
        {
            break f;
        }
        let n = tokio::time::timeout_at(deadline, s.read_buf(&mut buf))
            .await
            .expect("server neither answered nor closed")
            .ok()?;
        if n == 0 {
            return None;
        }
    };
    let mut b = frame.payload;
    let mut p = BinaryInput::new(&mut b, DecodeLimits::default());
    let id = p.read_message_begin().unwrap();
    let exc = (id.message_type == TMessageType::Exception)
        .then(|| ApplicationException::decode(&mut p).unwrap());
    Some((id.message_type, id.sequence_number, exc))
}

async fn read_reply(
    s: &mut TcpStream,
) -> Option<(TMessageType, i32, Option<ApplicationException>)> {
    read_reply_on(s, Transport::Framed).await
}

/// True when the server closed the connection (EOF or reset) before `limit`.
async fn closed_by_server(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

// ===== a well-behaved neighbour =====

struct Neighbour {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

fn neighbour(addr: &Address) -> Neighbour {
    let client = EchoClient::new(
        addr,
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
    let task = tokio::spawn(async move {
        let mut i = 0i64;
        while !s.load(Ordering::Relaxed) {
            match client.add(Context::default(), i, 1).await {
                Ok(n) if n == i + 1 => o.fetch_add(1, Ordering::Relaxed),
                _ => f.fetch_add(1, Ordering::Relaxed),
            };
            i += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    Neighbour {
        stop,
        ok,
        failed,
        task,
    }
}

impl Neighbour {
    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let (ok, failed) = (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        assert!(ok > 0, "the well-behaved client made no calls");
        assert_eq!(
            failed, 0,
            "the well-behaved client saw {failed} failures ({ok} ok)"
        );
    }
}

async fn server(limits: Limits) -> ServerHandle {
    serve(
        "127.0.0.1:0",
        ServerBuilder::new().limits(limits),
        EchoHandler::default(),
    )
    .await
    .unwrap()
}

async fn connect(h: &ServerHandle) -> TcpStream {
    match h.local_addr() {
        Address::Tcp(a) => TcpStream::connect(a).await.unwrap(),
        Address::Unix(_) | Address::Host(..) => unreachable!(),
    }
}

// ===== the cases =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frame_lengths_close_only_their_connection() {
    let h = server(Limits::default()).await;
    let n = neighbour(h.local_addr());
    // Length 0, negative, and above the 16 MiB limit, each followed by the
    // start of a strict binary message so the server takes it for framed.
    for len in [0u32, 0xffff_fff0, 0x7fff_ffff, (16 << 20) + 1] {
        let mut s = connect(&h).await;
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x80, 0x01, 0x00, 0x01]);
        s.write_all(&bytes).await.unwrap();
        assert!(
            closed_by_server(&mut s, Duration::from_secs(5)).await,
            "length {len:#x}"
        );
    }
    n.finish().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cut_at_every_byte_is_never_answered_and_never_crashes() {
    let h = server(Limits::default()).await;
    let n = neighbour(h.local_addr());
    for transport_framed in [true, false] {
        let msg = call("add", 9, &add_args(20, 22));
        let whole = if transport_framed { framed(&msg) } else { msg };
        for cut in 1..whole.len() {
            // The peer vanishes mid-request: the server closes without answering.
            let mut s = connect(&h).await;
            s.write_all(&whole[..cut]).await.unwrap();
            s.shutdown().await.unwrap();
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
                .await
                .expect("server kept a half-closed connection open");
            assert!(rest.is_empty(), "answered a request cut at {cut}");

            // The same bytes in two writes are one whole request.
            let mut s = connect(&h).await;
            s.write_all(&whole[..cut]).await.unwrap();
            s.flush().await.unwrap();
            tokio::task::yield_now().await;
            s.write_all(&whole[cut..]).await.unwrap();
            let transport = if transport_framed {
                Transport::Framed
            } else {
                Transport::Buffered
            };
            let (kind, seq, _) = read_reply_on(&mut s, transport).await.expect("no reply");
            assert_eq!((kind, seq), (TMessageType::Reply, 9), "cut at {cut}");
        }
    }
    n.finish().await;
    h.shutdown().await;
}

/// Frames that are delimited but malformed get a typed exception, and the
/// connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_typed_errors_and_the_connection_survives() {
    let h = server(Limits::default()).await;
    let n = neighbour(h.local_addr());

    // tags (field 5, list<string>) declaring 2^31-1 elements in a tiny frame.
    let mut huge_list = field(15, 5);
    huge_list.push(11);
    huge_list.extend_from_slice(&i32::MAX.to_be_bytes());
    // text (field 1) with a negative length.
    let mut negative = field(11, 1);
    negative.extend_from_slice(&(-2i32).to_be_bytes());
    // An unknown field nested 10,000 structs deep: skipping it must stop.
    let mut deep = Vec::new();
    for _ in 0..10_000 {
        deep.extend(field(12, 99));
    }
    // A field whose type id does not exist.
    let mut bad_type = field(0x42, 3);
    bad_type.extend_from_slice(&[0; 8]);
    // text (field 1) that is not UTF-8.
    let mut not_utf8 = field(11, 1);
    not_utf8.extend_from_slice(&2i32.to_be_bytes());
    not_utf8.extend_from_slice(&[0xc3, 0x28]);
    // A map declaring 2^31-1 entries.
    let mut huge_map = field(13, 6);
    huge_map.extend_from_slice(&[11, 10]);
    huge_map.extend_from_slice(&i32::MAX.to_be_bytes());

    let cases: [(&str, Vec<u8>); 6] = [
        ("huge list", echo_args(&huge_list)),
        ("negative string length", echo_args(&negative)),
        ("10,000 levels of nesting", echo_args(&deep)),
        ("unknown type id", echo_args(&bad_type)),
        ("invalid UTF-8", echo_args(&not_utf8)),
        ("huge map", echo_args(&huge_map)),
    ];
    let mut s = connect(&h).await;
    for (i, (what, args)) in cases.iter().enumerate() {
        let seq = 100 + i as i32;
        s.write_all(&framed(&call("echo", seq, args)))
            .await
            .unwrap();
        let (kind, got_seq, exc) = read_reply(&mut s)
            .await
            .unwrap_or_else(|| panic!("{what}: closed"));
        assert_eq!((kind, got_seq), (TMessageType::Exception, seq), "{what}");
        let exc = exc.unwrap();
        assert_eq!(
            exc.kind(),
            ApplicationExceptionKind::PROTOCOL_ERROR,
            "{what}: {exc:?}"
        );
    }
    // An unknown method.
    s.write_all(&framed(&call("nope", 7, &[0]))).await.unwrap();
    let (kind, _, exc) = read_reply(&mut s).await.unwrap();
    assert_eq!(kind, TMessageType::Exception);
    assert_eq!(
        exc.unwrap().kind(),
        ApplicationExceptionKind::UNKNOWN_METHOD
    );
    // And the connection still serves a good call.
    s.write_all(&framed(&call("add", 8, &add_args(1, 2))))
        .await
        .unwrap();
    let (kind, seq, _) = read_reply(&mut s).await.unwrap();
    assert_eq!((kind, seq), (TMessageType::Reply, 8));
    n.finish().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_garbage_is_answered_or_dropped_never_crashes() {
    let h = server(Limits::default()).await;
    let n = neighbour(h.local_addr());
    // xorshift: deterministic garbage, no extra dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..200 {
        let len = (next() % 512) as usize + 1;
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half of the time make it look like a framed binary call so the
        // garbage reaches deeper decoders.
        if next() % 2 == 0 && junk.len() > 12 {
            let l = (junk.len() - 4) as u32;
            junk[..4].copy_from_slice(&l.to_be_bytes());
            junk[4..8].copy_from_slice(&0x8001_0001u32.to_be_bytes());
        }
        let mut s = connect(&h).await;
        let _ = s.write_all(&junk).await;
        let _ = s.shutdown().await;
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink))
            .await
            .expect("server kept a garbage connection open")
            .ok();
    }
    n.finish().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_one_byte_a_second_is_cut_off() {
    let limits = Limits {
        read_timeout: Duration::from_millis(1500),
        ..Limits::default()
    };
    let h = server(limits).await;
    let n = neighbour(h.local_addr());
    let whole = framed(&call("add", 1, &add_args(1, 1)));
    let mut s = connect(&h).await;
    let started = tokio::time::Instant::now();
    let mut closed = false;
    for b in &whole {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        if closed_by_server(&mut s, Duration::from_secs(1)).await {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a slow sender kept its connection for {:?}",
        started.elapsed()
    );
    n.finish().await;
    h.shutdown().await;
}
