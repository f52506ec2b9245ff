//! The engine tests' small wire protocol, their service and helpers,
//! shared by `server.rs` and `attack.rs`: a length-prefixed codec that
//! states exactly what went over the wire, and a service whose payloads
//! script what the handler does.
#![allow(dead_code, unreachable_pub)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
};
use weft_core::{
    Address, Delivery, Inbound, Request, Response, ServerBuilder, ServerCodec, ServerHandle, Status,
};

// ===== the test protocol =====
//
// request:  len u32 | kind u8 | seq u32 | timeout_ms u64 | payload
// response: len u32 | code u8 | closing u8 | not_sent u8 | seq u32 | payload or message

pub const CALL: u8 = 0;
pub const ONEWAY: u8 = 1;
pub const BAD: u8 = 2;
pub const BAD_ONEWAY: u8 = 3;
/// A call whose answer (and error) the codec cannot encode at all.
pub const UNENCODABLE: u32 = u32::MAX;

#[derive(Debug)]
pub struct TestCodec {
    pub ordered: bool,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub seq: u32,
}

impl ServerCodec for TestCodec {
    type Req = Bytes;
    type Resp = Bytes;
    type Reply = Reply;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound<Bytes, Reply>>, Status> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if !(13..=1 << 20).contains(&len) {
            return Err(Status::invalid_argument(format!("frame length {len}")));
        }
        if src.len() < 4 + len {
            return Ok(None);
        }
        let mut f = src.split_to(4 + len).freeze();
        f.advance(4);
        let kind = f.get_u8();
        let seq = f.get_u32();
        let timeout = match f.get_u64() {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        let reply = Reply { seq };
        let cx = weft_core::Context::new("test", "call");
        Ok(Some(match kind {
            CALL | ONEWAY => Inbound::Request {
                req: Request::new(
                    {
                        let mut cx = cx;
                        cx.oneway = kind == ONEWAY;
                        cx.seq_id = seq as i32;
                        cx
                    },
                    f,
                ),
                reply: (kind == CALL).then_some(reply),
                timeout,
            },
            BAD => Inbound::Reject(reply, Status::invalid_argument("bad frame")),
            BAD_ONEWAY => Inbound::Discard(Status::invalid_argument("bad one-way frame")),
            other => return Err(Status::invalid_argument(format!("kind {other}"))),
        }))
    }

    fn ordered(&self) -> bool {
        self.ordered
    }

    fn encode(
        reply: Reply,
        result: Result<Response<Bytes>, Status>,
        closing: bool,
        dst: &mut BytesMut,
    ) -> Result<(), Status> {
        if reply.seq == UNENCODABLE {
            return Err(Status::internal("this reply cannot be encoded at all"));
        }
        let start = dst.len();
        let (code, not_sent, body) = match result {
            Ok(r) => {
                if &r.message[..] == b"fail-encode" {
                    return Err(Status::internal("cannot encode this"));
                }
                (0u8, 0u8, r.message)
            }
            Err(s) => (
                s.code() as u8,
                u8::from(s.delivery() == Delivery::NotSent),
                Bytes::copy_from_slice(s.message().as_bytes()),
            ),
        };
        dst.put_u32(0);
        dst.put_u8(code);
        dst.put_u8(u8::from(closing));
        dst.put_u8(not_sent);
        dst.put_u32(reply.seq);
        if &body[..] == b"panic-encode" {
            // Leave half a frame behind, as a real encoder would.
            panic!("encoder panicked");
        }
        dst.put_slice(&body);
        let len = (dst.len() - start - 4) as u32;
        dst[start..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

pub fn frame(kind: u8, seq: u32, timeout_ms: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(21 + payload.len());
    f.extend_from_slice(&((13 + payload.len()) as u32).to_be_bytes());
    f.push(kind);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&timeout_ms.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u8,
    pub closing: bool,
    pub not_sent: bool,
    pub seq: u32,
    pub body: Bytes,
}

/// The next answer, or `None` once the server closed the connection
/// cleanly. A reset is a test failure: answers would have been lost.
pub async fn answer<R: AsyncRead + Unpin>(s: &mut R, buf: &mut BytesMut) -> Option<Answer> {
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() >= 4 + len {
                let mut f = buf.split_to(4 + len).freeze();
                f.advance(4);
                return Some(Answer {
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
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => panic!("connection failed instead of closing: {e}"),
        }
    }
}

// ===== the service =====

#[derive(Debug, Default)]
pub struct Counters {
    pub calls: AtomicUsize,
    pub oneway: AtomicUsize,
    pub running: AtomicUsize,
    pub peak_running: AtomicUsize,
}

/// Payloads: `sleep:<ms>`, `gate` (waits for a permit of the gate),
/// `panic`, `big:<n>` (answers n bytes); anything else is echoed.
pub fn service(
    counters: Arc<Counters>,
    gate: Arc<Semaphore>,
) -> impl tower::Service<
    Request<Bytes>,
    Response = Response<Bytes>,
    Error = Status,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |req: Request<Bytes>| {
        let counters = counters.clone();
        let gate = gate.clone();
        async move {
            if req.cx.oneway {
                counters.oneway.fetch_add(1, Ordering::SeqCst);
            } else {
                counters.calls.fetch_add(1, Ordering::SeqCst);
            }
            let now = counters.running.fetch_add(1, Ordering::SeqCst) + 1;
            counters.peak_running.fetch_max(now, Ordering::SeqCst);
            struct Done(Arc<Counters>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.running.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _done = Done(counters.clone());
            let body = req.message.clone();
            let text = std::str::from_utf8(&body).unwrap_or("");
            let out = if let Some(ms) = text.strip_prefix("sleep:") {
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
                body
            } else if text == "gate" {
                let _p = gate.acquire().await.unwrap();
                body
            } else if text == "panic" {
                panic!("handler panicked on purpose");
            } else if let Some(n) = text.strip_prefix("big:") {
                Bytes::from(vec![b'x'; n.parse().unwrap()])
            } else {
                body
            };
            Ok(Response::new(req.cx, out))
        }
    })
}

pub struct Server {
    pub handle: ServerHandle,
    pub counters: Arc<Counters>,
    pub gate: Arc<Semaphore>,
}

pub async fn start(builder: ServerBuilder, ordered: bool) -> Server {
    let counters = Arc::new(Counters::default());
    let gate = Arc::new(Semaphore::new(0));
    let addr: Address = "127.0.0.1:0".parse().unwrap();
    let handle = builder
        .serve(
            &addr,
            move || TestCodec { ordered },
            service(counters.clone(), gate.clone()),
        )
        .await
        .unwrap();
    Server {
        handle,
        counters,
        gate,
    }
}

pub async fn connect(h: &ServerHandle) -> TcpStream {
    let Address::Tcp(a) = h.local_addr() else {
        unreachable!()
    };
    let s = TcpStream::connect(a).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// One call on a fresh connection.
pub async fn call_once(h: &ServerHandle, payload: &[u8]) -> Option<Answer> {
    let mut s = connect(h).await;
    s.write_all(&frame(CALL, 1, 0, payload)).await.unwrap();
    answer(&mut s, &mut BytesMut::new()).await
}

pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}
