//! Weft's Thrift client against a server that misbehaves on purpose: a
//! scripted TCP server (framed, binary) answering with the wrong or an
//! unknown sequence id, garbage, an oversize frame, an answer to a call the
//! client gave up on, the wrong method or message type, or half a frame.
//! Every call gets one definite outcome, well before its timeout where the
//! fault is visible on the wire, and the client keeps working afterwards.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use weft::core::{Address, Code, ConnectionMode, Context, Status};
use weft::thrift::{Protocol, Transport};
use weft_interop::EchoClient;

/// The timeout every call runs under: a fault seen on the wire must end
/// the call long before it.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How soon a call facing a visible fault must end.
const PROMPT: Duration = Duration::from_secs(3);

/// One `add` request as the server reads it.
#[derive(Debug, Clone, Copy)]
struct Call {
    seq: i32,
    a: i64,
    b: i64,
}

/// Read one framed binary `add` call; `None` at EOF.
async fn read_call(s: &mut (impl AsyncReadExt + Unpin)) -> Option<Call> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut f).await.ok()?;
    // version (4), name length (4), name, seq (4), then the args struct:
    // field header (3) + i64 (8), twice.
    let name_len = i32::from_be_bytes(f[4..8].try_into().unwrap()) as usize;
    let at = 8 + name_len;
    let seq = i32::from_be_bytes(f[at..at + 4].try_into().unwrap());
    let args = &f[at + 4..];
    let a = i64::from_be_bytes(args[3..11].try_into().unwrap());
    let b = i64::from_be_bytes(args[14..22].try_into().unwrap());
    Some(Call { seq, a, b })
}

/// A framed binary message: `kind` 1 call, 2 reply, 3 exception.
fn message(kind: u8, name: &str, seq: i32, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0x80, 0x01, 0x00, kind];
    m.extend_from_slice(&(name.len() as i32).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(body);
    let mut f = (m.len() as u32).to_be_bytes().to_vec();
    f.extend(m);
    f
}

/// `add`'s result struct: field 0, i64.
fn sum(n: i64) -> Vec<u8> {
    let mut v = vec![10, 0, 0];
    v.extend_from_slice(&n.to_be_bytes());
    v.push(0);
    v
}

fn reply(c: Call) -> Vec<u8> {
    message(2, "add", c.seq, &sum(c.a + c.b))
}

/// Serve each connection with `script` (connection number, stream).
async fn scripted<F, Fut>(script: F) -> Address
where
    F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = Address::Tcp(l.local_addr().unwrap());
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(script(n, s));
            n += 1;
        }
    });
    addr
}

fn client(addr: &Address, mode: ConnectionMode) -> EchoClient {
    EchoClient::new(addr, Transport::Framed, Protocol::Binary, mode)
}

fn cx(timeout: Duration) -> Context {
    let mut cx = Context::default();
    cx.set_timeout(timeout);
    cx
}

/// Make one call, returning its outcome and how long it took.
async fn add(c: &EchoClient, a: i64, b: i64, timeout: Duration) -> (Result<i64, Status>, Duration) {
    let start = Instant::now();
    // Bounded past the timeout: a call that outlives it has no outcome.
    let r = tokio::time::timeout(timeout + Duration::from_secs(5), c.add(cx(timeout), a, b))
        .await
        .expect("the call got no outcome within its timeout + 5 s");
    (r, start.elapsed())
}

/// A fault on the wire ends the call promptly with a definite error.
fn prompt_error(what: &str, r: Result<i64, Status>, took: Duration) -> Status {
    let e = match r {
        Ok(n) => panic!("{what}: the call succeeded with {n}"),
        Err(e) => e,
    };
    assert!(took < PROMPT, "{what}: the error took {took:?}: {e}");
    e
}

/// After the fault, the next connection is served well: the client works.
async fn works_after(c: &EchoClient, what: &str) {
    let (r, _) = add(c, 20, 22, TIMEOUT).await;
    assert_eq!(
        r.unwrap_or_else(|e| panic!("{what}: the next call failed: {e}")),
        42
    );
}

/// On connection 0 answer the first call with `bad`; serve everything
/// else well.
async fn first_answer_is(bad: fn(Call) -> Vec<u8>) -> Address {
    scripted(move |n, mut s| async move {
        let mut first = n == 0;
        while let Some(c) = read_call(&mut s).await {
            let out = if first { bad(c) } else { reply(c) };
            first = false;
            if s.write_all(&out).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sequence_id_is_an_error_and_the_next_call_works() {
    for mode in [ConnectionMode::Pooled, ConnectionMode::Multiplexed] {
        let addr = first_answer_is(|c| message(2, "add", c.seq + 7, &sum(c.a + c.b))).await;
        let c = client(&addr, mode);
        // Multiplexed, the call is never answered: a short timeout.
        let timeout = match mode {
            ConnectionMode::Pooled => TIMEOUT,
            _ => Duration::from_millis(500),
        };
        let (r, took) = add(&c, 1, 2, timeout).await;
        match mode {
            // One call at a time on the connection: the answer is its
            // own or a protocol violation.
            ConnectionMode::Pooled => {
                let e = prompt_error("pooled, wrong seq", r, took);
                assert!(
                    e.message().contains("seq") || e.message().contains("sequence"),
                    "{e}"
                );
            }
            // Multiplexed: an answer to no call in flight is dropped, and
            // this call, never answered, ends at its timeout.
            _ => {
                let e = r.expect_err("multiplexed, wrong seq: an answer to no call");
                assert_eq!(e.code(), Code::DeadlineExceeded, "{e}");
            }
        }
        works_after(&c, "wrong seq").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_no_call_is_dropped_and_the_real_one_still_arrives() {
    // Multiplexed: an unknown sequence id first, then the call's answer.
    let addr = scripted(|_, mut s| async move {
        while let Some(c) = read_call(&mut s).await {
            let mut out = message(2, "add", c.seq.wrapping_add(1000), &sum(-1));
            out.extend(reply(c));
            if s.write_all(&out).await.is_err() {
                return;
            }
        }
    })
    .await;
    let c = client(&addr, ConnectionMode::Multiplexed);
    for i in 0..5 {
        let (r, _) = add(&c, i, 1, TIMEOUT).await;
        assert_eq!(r.unwrap(), i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_to_an_abandoned_call_never_reaches_the_next_one() {
    // The call with a = 1 is answered 600 ms late, past its 200 ms
    // timeout; every other call at once. The calls after it must get their
    // own answers, never the stale one, on either connection mode: while
    // the stale answer is on its way, and after it was written.
    for mode in [ConnectionMode::Pooled, ConnectionMode::Multiplexed] {
        let (written_tx, mut written) = tokio::sync::mpsc::unbounded_channel::<()>();
        let addr = scripted(move |_, s| {
            let written_tx = written_tx.clone();
            async move {
                let (mut rd, wr) = s.into_split();
                let wr = std::sync::Arc::new(tokio::sync::Mutex::new(wr));
                while let Some(c) = read_call(&mut rd).await {
                    let (wr, written_tx) = (wr.clone(), written_tx.clone());
                    tokio::spawn(async move {
                        if c.a == 1 {
                            tokio::time::sleep(Duration::from_millis(600)).await;
                        }
                        let _ = wr.lock().await.write_all(&reply(c)).await;
                        if c.a == 1 {
                            let _ = written_tx.send(());
                        }
                    });
                }
            }
        })
        .await;
        let c = client(&addr, mode);
        let (r, took) = add(&c, 1, 1, Duration::from_millis(200)).await;
        let e = r.expect_err("a call answered after its timeout succeeded");
        assert_eq!(e.code(), Code::DeadlineExceeded, "{e}");
        assert!(took < Duration::from_millis(590), "{took:?}");
        for (a, b) in [(2, 3), (4, 5)] {
            let (r, _) = add(&c, a, b, TIMEOUT).await;
            assert_eq!(
                r.unwrap(),
                a + b,
                "{mode:?}: a call got another call's answer"
            );
        }
        // Bounded: the stale answer is written 600 ms after its call.
        tokio::time::timeout(Duration::from_secs(10), written.recv())
            .await
            .expect("the server never wrote the late answer");
        for (a, b) in [(6, 7), (8, 9)] {
            let (r, _) = add(&c, a, b, TIMEOUT).await;
            assert_eq!(r.unwrap(), a + b, "{mode:?}: a call got the stale answer");
        }
    }
}

/// A server whose first connection answers the first call with `bytes`
/// and then closes; later connections serve well.
async fn first_reply_bytes(bytes: &'static [u8]) -> Address {
    scripted(move |n, mut s| async move {
        let mut first = n == 0;
        while let Some(c) = read_call(&mut s).await {
            if first {
                let _ = s.write_all(bytes).await;
                let _ = s.shutdown().await;
                return;
            }
            first = false;
            if s.write_all(&reply(c)).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_an_oversize_frame_or_half_a_frame_end_the_call_with_a_clear_error() {
    let cases: [(&str, &'static [u8], &[&str]); 4] = [
        (
            "an HTTP answer",
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            &["HTTP"],
        ),
        // A 2 GiB length: refused from the four bytes, nothing allocated.
        (
            "an oversize frame",
            &[0x7f, 0xff, 0xff, 0xff, 0x80, 0x01],
            &["frame", "limit", "large", "size"],
        ),
        // A frame of 100 bytes cut after 10, then the close.
        (
            "half a frame",
            &[0, 0, 0, 100, 0x80, 0x01, 0, 2, 0, 0, 0, 3, b'a', b'd'],
            &["clos", "end", "eof", "reset", "unavailable"],
        ),
        // Not Thrift at all.
        (
            "random bytes",
            &[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05],
            &[""],
        ),
    ];
    for mode in [ConnectionMode::Pooled, ConnectionMode::Multiplexed] {
        for (what, bytes, words) in cases {
            let addr = first_reply_bytes(bytes).await;
            let c = client(&addr, mode);
            let (r, took) = add(&c, 1, 2, TIMEOUT).await;
            let e = prompt_error(what, r, took);
            let msg = e.message().to_ascii_lowercase();
            assert!(
                words.iter().any(|w| msg.contains(&w.to_ascii_lowercase())),
                "{mode:?}, {what}: the error does not say what happened: {e}"
            );
            works_after(&c, what).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_method_or_message_type_is_an_error_not_a_value() {
    type Bad = fn(Call) -> Vec<u8>;
    let cases: [(&str, Bad); 3] = [
        ("another method's reply", |c| {
            message(2, "sub", c.seq, &sum(c.a + c.b))
        }),
        ("a call instead of a reply", |c| {
            message(1, "add", c.seq, &sum(c.a + c.b))
        }),
        ("a reply with no result", |c| message(2, "add", c.seq, &[0])),
    ];
    for mode in [ConnectionMode::Pooled, ConnectionMode::Multiplexed] {
        for (what, bad) in cases {
            let addr = first_answer_is(bad).await;
            let c = client(&addr, mode);
            let (r, took) = add(&c, 1, 2, TIMEOUT).await;
            prompt_error(what, r, took);
            works_after(&c, what).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_exception_keeps_its_kind_and_message() {
    // TApplicationException { 1: message "no add here", 2: type 1 (UNKNOWN_METHOD) }.
    fn exception(c: Call) -> Vec<u8> {
        let text = b"no add here";
        let mut body = vec![11, 0, 1];
        body.extend_from_slice(&(text.len() as i32).to_be_bytes());
        body.extend_from_slice(text);
        body.extend_from_slice(&[8, 0, 2, 0, 0, 0, 1, 0]);
        message(3, "add", c.seq, &body)
    }
    for mode in [ConnectionMode::Pooled, ConnectionMode::Multiplexed] {
        let addr = first_answer_is(exception).await;
        let c = client(&addr, mode);
        let (r, took) = add(&c, 1, 2, TIMEOUT).await;
        let e = prompt_error("an application exception", r, took);
        assert_eq!(e.code(), Code::Unimplemented, "{e}");
        assert!(e.message().contains("no add here"), "{e}");
        works_after(&c, "an application exception").await;
    }
}

/// An application exception of a kind far outside Thrift's (i32::MIN, as
/// a fuzzer found) is an error of code Unknown, not an arithmetic overflow
/// in the client's codec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_exception_of_an_absurd_kind_is_unknown() {
    // TApplicationException { 1: message "odd", 2: type i32::MIN }.
    fn exception(c: Call) -> Vec<u8> {
        let mut body = vec![11, 0, 1, 0, 0, 0, 3];
        body.extend_from_slice(b"odd");
        body.extend_from_slice(&[8, 0, 2]);
        body.extend_from_slice(&i32::MIN.to_be_bytes());
        body.push(0);
        message(3, "add", c.seq, &body)
    }
    for mode in [ConnectionMode::Pooled, ConnectionMode::Multiplexed] {
        let addr = first_answer_is(exception).await;
        let c = client(&addr, mode);
        let (r, took) = add(&c, 1, 2, TIMEOUT).await;
        let e = prompt_error("an exception of kind i32::MIN", r, took);
        assert_eq!(e.code(), Code::Unknown, "{e}");
        assert!(e.message().contains("odd"), "{e}");
        works_after(&c, "an exception of kind i32::MIN").await;
    }
}
