//! Weft's Thrift server codec on a stream of frames delivered in arbitrary
//! chunks: transport and protocol detected from the first bytes (framed,
//! buffered, THeader, framed THeader, TTHeader; binary or compact), the
//! envelope, header metainfo and deadline, `ThriftTest`'s typed arguments,
//! and an answer encoded for every request that wants one. The same stream
//! delivered whole must give the same requests: where chunks fall may not
//! change what the server reads.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use weft_core::{Inbound, Limits, Response, ServerCodec, Status};
use weft_fuzz::{
    gen::thrift_test::thrifttest::{ThriftTestRequest, ThriftTestResponse},
    Chunks,
};
use weft_thrift::ThriftServerCodec;

type Codec = ThriftServerCodec<ThriftTestRequest, ThriftTestResponse>;

/// What the server made of one frame, as compared across deliveries.
#[derive(Debug, PartialEq)]
enum Seen {
    Request(String, i32, bool),
    Reject(String),
    Discard,
    Closed,
}

fn serve<'a>(limits: &Limits, chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Seen> {
    let mut codec = Codec::new(limits);
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut seen = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            let inbound = match codec.decode(&mut buf) {
                Ok(Some(i)) => i,
                Ok(None) => break,
                Err(_) => {
                    seen.push(Seen::Closed);
                    return seen;
                }
            };
            // A frame delivered consumes bytes, or the server would spin.
            assert!(
                buf.len() < before,
                "decode returned a frame without consuming"
            );
            match inbound {
                Inbound::Request { req, reply, .. } => {
                    seen.push(Seen::Request(
                        req.cx.method.to_string(),
                        req.cx.seq_id,
                        req.cx.oneway,
                    ));
                    if let Some(reply) = reply {
                        // Answer as a handler that failed would: the
                        // exception path encodes in the reply's framing.
                        let _ = Codec::encode(
                            reply.clone(),
                            Err(Status::internal("x")),
                            false,
                            &mut out,
                        );
                        let resp =
                            Response::new(req.cx, ThriftTestResponse::TestVoid(Default::default()));
                        let _ = Codec::encode(reply, Ok(resp), true, &mut out);
                    }
                }
                Inbound::Reject(reply, status) => {
                    seen.push(Seen::Reject(status.code().to_string()));
                    let _ = Codec::encode(reply, Err(status), false, &mut out);
                }
                Inbound::Discard(_) => seen.push(Seen::Discard),
            }
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    let mut limits = Limits::default();
    // Small bounds too, so the fuzzer reaches every limit.
    if data.first().is_some_and(|b| b & 0x80 != 0) {
        limits.max_frame_len = 4096;
        limits.max_depth = 8;
        limits.max_container_len = 64;
        limits.max_header_entries = 16;
        limits.max_decoded_size = 8192;
    }
    let chunks = Chunks::new(data);
    let whole = chunks.stream();
    let chunked = serve(&limits, chunks);
    let at_once = serve(&limits, std::iter::once(whole));
    assert_eq!(
        chunked, at_once,
        "the chunking changed what the server read"
    );
});
