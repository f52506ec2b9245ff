//! Entry points for the fuzz targets in `fuzz/`, not a stable API: the
//! parsers that otherwise run only inside an HTTP/2 stream, reachable
//! without one. Each is the code a call runs, not a copy of it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use weft_core::{Context, Status};

use crate::{compression::Encoding, frame, metadata};

/// gRPC's length-prefixed message reassembly, as a call's body runs it.
#[derive(Debug)]
pub struct MessageDecoder(frame::Decoder);

impl MessageDecoder {
    /// Messages of at most `max` bytes (after decompression too), compressed
    /// with `encoding` when their flag says so.
    pub fn new(max: usize, encoding: Option<Encoding>) -> MessageDecoder {
        MessageDecoder(frame::Decoder::new(max, encoding))
    }

    /// Add a received DATA chunk; call [`MessageDecoder::next`] until it
    /// gives `None` before pushing another.
    pub fn push(&mut self, chunk: Bytes) {
        self.0.push(chunk);
    }

    /// The next whole message, decompressed, or `None` until more arrives.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Bytes>, Status> {
        self.0.next()
    }

    /// Whether bytes of an unfinished message are held.
    pub fn is_mid_message(&self) -> bool {
        self.0.is_mid_message()
    }

    /// Whether the last message came compressed.
    pub fn last_compressed(&self) -> bool {
        self.0.last_compressed()
    }
}

/// Append `msg` to `dst` as one length-prefixed message, compressed with
/// `encoding` when given, as a call sends it.
pub fn frame_message(
    msg: &[u8],
    encoding: Option<Encoding>,
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), Status> {
    let start = frame::begin(dst);
    dst.extend_from_slice(msg);
    frame::seal(dst, start, encoding, max)
}

/// The compression and timeout the server reads from a request's headers
/// (`grpc-encoding`, `grpc-timeout`).
pub fn request_head(headers: &HeaderMap) -> Result<(Option<Encoding>, Option<Duration>), Status> {
    crate::server::request_head(headers)
}

/// What the server puts into a call's context from its request headers.
pub fn request_into_cx(headers: HeaderMap, cx: &mut Context) {
    metadata::request_into_cx(headers, cx);
}

/// What the client puts into a call's context from response headers and
/// trailers.
pub fn response_into_cx(headers: HeaderMap, trailers: Option<HeaderMap>, cx: &mut Context) {
    metadata::response_into_cx(headers, trailers, cx);
}
