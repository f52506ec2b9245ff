//! Shared pieces of the client tests: a tiny codec, frame helpers for
//! hand-written test servers, and a tracing subscriber that counts events.

#![allow(dead_code, unreachable_pub)]

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use weft_core::{ClientCodec, Code, Context, Status};

/// Frames are a 4-byte big-endian length of the rest, a 4-byte sequence id
/// and the payload. Requests and responses are raw payload bytes.
#[derive(Debug, Default)]
pub struct TestCodec;

pub const HEADER: usize = 8;

/// An answer the codec decodes as the server's "not processed" refusal
/// (an echo server answers it to a request of these bytes).
pub const REFUSED: &[u8] = b"refused: not processed";

pub fn frame(seq: i32, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + payload.len());
    b.put_u32((4 + payload.len()) as u32);
    b.put_i32(seq);
    b.put_slice(payload);
    b.freeze()
}

impl ClientCodec for TestCodec {
    type Req = Bytes;
    type Resp = Bytes;

    fn encode(&self, seq_id: i32, _cx: &Context, req: &Bytes) -> Result<Bytes, Status> {
        Ok(frame(seq_id, req))
    }

    fn decode_frame(&self, src: &mut BytesMut) -> Result<Option<(i32, Bytes)>, Status> {
        if src.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_be_bytes(src[..4].try_into().unwrap()) as usize;
        if src.len() < 4 + len {
            return Ok(None);
        }
        let mut f = src.split_to(4 + len).freeze();
        f.advance(4);
        let seq = f.get_i32();
        Ok(Some((seq, f)))
    }

    fn decode(&self, cx: &mut Context, frame: Bytes) -> Result<Bytes, Status> {
        cx.metainfo.upstream.insert("decoded", "yes");
        // What a server says when it refuses a call before running it.
        if &frame[..] == REFUSED {
            return Err(Status::refused(Code::ResourceExhausted, "busy"));
        }
        Ok(frame)
    }

    fn oneway_response(&self, _cx: &Context) -> Result<Bytes, Status> {
        Ok(Bytes::new())
    }
}

/// Read one frame: `(seq, payload)`, or `None` at end of stream.
pub async fn read_frame(s: &mut TcpStream) -> Option<(i32, Bytes)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let len = u32::from_be_bytes(len) as usize;
    let mut rest = vec![0u8; len];
    s.read_exact(&mut rest).await.ok()?;
    let mut rest = Bytes::from(rest);
    let seq = rest.get_i32();
    Some((seq, rest))
}

pub async fn write_frame(s: &mut TcpStream, seq: i32, payload: &[u8]) {
    let _ = s.write_all(&frame(seq, payload)).await;
}

pub async fn listener() -> (TcpListener, weft_core::Address) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().into();
    (l, addr)
}

/// A server that answers every frame with its own payload, in order.
pub async fn echo_server() -> weft_core::Address {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                while let Some((seq, p)) = read_frame(&mut s).await {
                    write_frame(&mut s, seq, &p).await;
                }
            });
        }
    });
    addr
}

/// Counts tracing events with one target, on the thread it is installed on.
#[derive(Debug, Clone, Default)]
pub struct EventCounter {
    target: &'static str,
    count: Arc<AtomicUsize>,
}

impl EventCounter {
    pub fn new(target: &'static str) -> Self {
        EventCounter {
            target,
            count: Arc::default(),
        }
    }
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl tracing::Subscriber for EventCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == self.target {
            self.count.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
