//! Invalid UTF-8 in a string argument, through a generated server: the call
//! is answered with a `TApplicationException` of kind `PROTOCOL_ERROR`
//! and the handler never runs.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft::core::{faststr::FastStr, Address, Context, ServerBuilder, Status};
use weft_codegen_tests::echo::weft_echo::*;

#[derive(Clone, Default)]
struct Handler(Arc<AtomicUsize>);

fn no<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not in this test"))
}

impl Echo for Handler {
    async fn echo(&self, _: &mut Context, _: Payload) -> Result<Payload, Status> {
        no()
    }
    async fn fail(&self, _: &mut Context, _: i32, _: FastStr) -> Result<Payload, EchoFailError> {
        Ok(no()?)
    }
    async fn add(&self, _: &mut Context, _: i64, _: i64) -> Result<i64, Status> {
        no()
    }
    async fn metainfo(&self, _: &mut Context, key: FastStr) -> Result<FastStr, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(key)
    }
    async fn ping(&self, _: &mut Context) -> Result<(), Status> {
        Ok(())
    }
    async fn notify(&self, _: &mut Context, _: FastStr) -> Result<(), Status> {
        Ok(())
    }
    async fn slow(&self, _: &mut Context, _: Payload, _: i32) -> Result<Payload, Status> {
        no()
    }
}

/// A framed, strict binary call of `metainfo` with `key` as raw bytes.
fn call(key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x80, 0x01, 0x00, 0x01];
    body.extend_from_slice(&8u32.to_be_bytes());
    body.extend_from_slice(b"metainfo");
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&[11, 0, 1]);
    body.extend_from_slice(&(key.len() as u32).to_be_bytes());
    body.extend_from_slice(key);
    body.push(0);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

async fn answer(addr: &Address, key: &[u8]) -> Vec<u8> {
    let Address::Tcp(sa) = addr else {
        unreachable!()
    };
    let mut s = tokio::net::TcpStream::connect(sa).await.unwrap();
    s.write_all(&call(key)).await.unwrap();
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    body
}

#[tokio::test]
async fn invalid_utf8_in_a_string_argument_is_a_protocol_error() {
    let handler = Handler::default();
    let calls = handler.0.clone();
    let server = EchoServer::new(handler)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr().clone();

    // Valid UTF-8 is answered with a reply.
    let ok = answer(&addr, "ключ".as_bytes()).await;
    assert_eq!(&ok[..4], &[0x80, 0x01, 0x00, 0x02], "a REPLY");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Invalid UTF-8: an EXCEPTION whose type (field 2, i32) is PROTOCOL_ERROR (7).
    let bad = answer(&addr, &[b'k', 0xff, 0xfe]).await;
    assert_eq!(&bad[..4], &[0x80, 0x01, 0x00, 0x03], "an EXCEPTION");
    assert!(
        bad.windows(7).any(|w| w == [8, 0, 2, 0, 0, 0, 7]),
        "not PROTOCOL_ERROR: {bad:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran");
    server.shutdown().await;
}
