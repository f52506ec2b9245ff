//! Weft's Thrift client codec on a stream of response frames delivered in
//! arbitrary chunks, for each transport and protocol (chosen by the first
//! byte): delimiting frames and peeking their sequence ids on the reader,
//! the draining flag, then the response itself (header metainfo, business
//! status, the exception or `ThriftTest`'s typed result for a method the
//! input picks). Delimiting may not depend on where chunks fall.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use weft_core::{ClientCodec, Context, Limits};
use weft_fuzz::{
    gen::thrift_test::thrifttest::{ThriftTestRequest, ThriftTestResponse},
    pick, Chunks, THRIFT_TEST_METHODS, TRANSPORTS,
};
use weft_thrift::{Protocol, ThriftClientCodec};

type Codec = ThriftClientCodec<ThriftTestRequest, ThriftTestResponse>;

fn frames<'a>(codec: &Codec, chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<(i32, usize)>, bool) {
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match codec.decode_frame(&mut buf) {
                Ok(Some((seq, raw))) => {
                    assert_eq!(before - buf.len(), raw.len(), "a frame is what it consumed");
                    assert!(!raw.is_empty(), "an empty frame");
                    got.push((seq, raw.len()));
                    let _ = codec.closing(&raw);
                    let method =
                        THRIFT_TEST_METHODS[pick(raw[raw.len() / 2], THRIFT_TEST_METHODS.len())];
                    let mut cx = Context::new("ThriftTest", method);
                    cx.seq_id = seq;
                    let _ = codec.decode(&mut cx, raw);
                }
                Ok(None) => break,
                Err(_) => return (got, true),
            }
        }
    }
    (got, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let transport = TRANSPORTS[pick(sel, TRANSPORTS.len())];
    let protocol = if sel & 0x80 == 0 {
        Protocol::Binary
    } else {
        Protocol::Compact
    };
    let mut limits = Limits::default();
    if sel & 0x40 != 0 {
        limits.max_frame_len = 4096;
        limits.max_depth = 8;
        limits.max_container_len = 64;
        limits.max_header_entries = 16;
        limits.max_decoded_size = 8192;
    }
    let codec = Codec::new(transport, protocol, &limits);
    let chunks = Chunks::new(data);
    let whole = chunks.stream();
    let chunked = frames(&codec, chunks);
    let at_once = frames(&codec, std::iter::once(whole));
    assert_eq!(
        chunked, at_once,
        "the chunking changed how frames were delimited"
    );
});
