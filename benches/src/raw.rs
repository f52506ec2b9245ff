//! The floor no framework can beat on this machine: a tokio TCP echo of
//! 4-byte big-endian length-prefixed frames, one read and one write per call
//! when the kernel allows, no parsing beyond the length.

use std::{
    io,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use bytes::{Buf, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Accept connections on `listener` and echo every frame back, counting
/// frames in `calls`. Runs until the task is aborted.
pub fn spawn_server(listener: TcpListener, calls: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let calls = calls.clone();
            tokio::spawn(async move {
                let _ = serve_connection(stream, calls).await;
            });
        }
    })
}

async fn serve_connection(mut stream: TcpStream, calls: Arc<AtomicU64>) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        // Echo every whole frame the read brought, in one write.
        let mut whole = 0;
        let mut frames = 0;
        while buf.len() >= whole + 4 {
            let len = u32::from_be_bytes(buf[whole..whole + 4].try_into().expect("4 bytes"));
            let end = whole + 4 + len as usize;
            if buf.len() < end {
                break;
            }
            whole = end;
            frames += 1;
        }
        if whole > 0 {
            stream.write_all(&buf[..whole]).await?;
            buf.advance(whole);
            calls.fetch_add(frames, Ordering::Relaxed);
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
    }
}

/// One connection of the raw client: sends a frame, waits for it to come
/// back whole.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    frame: Vec<u8>,
    buf: BytesMut,
}

impl RawConn {
    /// Connect to `addr`, to echo frames of `payload` bytes.
    pub async fn connect(addr: std::net::SocketAddr, payload: usize) -> io::Result<RawConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut frame = Vec::with_capacity(payload + 4);
        frame.extend_from_slice(&(payload as u32).to_be_bytes());
        frame.extend((0..payload).map(|i| b'a' + (i % 26) as u8));
        Ok(RawConn {
            stream,
            frame,
            buf: BytesMut::with_capacity(payload + 16 * 1024),
        })
    }

    /// One round trip.
    pub async fn call(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.frame).await?;
        let want = self.frame.len();
        while self.buf.len() < want {
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        if self.buf[..4] != self.frame[..4] {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "wrong length"));
        }
        self.buf.advance(want);
        if self.buf.capacity() < want {
            self.buf.reserve(want + 16 * 1024);
        }
        Ok(())
    }
}
