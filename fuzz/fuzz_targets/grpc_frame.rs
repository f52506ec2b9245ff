//! gRPC's length-prefixed messages as a call's body receives them: DATA
//! chunks of arbitrary sizes, the compressed flag, lengths against the
//! limit, gzip (bombs included) bounded by it. The same stream delivered
//! whole gives the same messages; and messages the input dictates, framed
//! and maybe compressed as a sender does, come back out whole and unchanged
//! under any chunking.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use weft_fuzz::Chunks;
use weft_protobuf::{
    fuzzing::{frame_message, MessageDecoder},
    Encoding,
};

fn receive<'a>(
    max: usize,
    encoding: Option<Encoding>,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> (Vec<(Bytes, bool)>, bool) {
    let mut d = MessageDecoder::new(max, encoding);
    let mut got = Vec::new();
    for chunk in chunks {
        d.push(Bytes::copy_from_slice(chunk));
        loop {
            match d.next() {
                Ok(Some(m)) => {
                    assert!(m.len() <= max, "a message over the limit came through");
                    got.push((m, d.last_compressed()));
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
    let encoding = (sel & 1 == 1).then_some(Encoding::Gzip);
    let max = if sel & 2 == 0 { 4 << 20 } else { 64 };
    let chunks = Chunks::new(data);
    let whole = chunks.stream();
    if sel & 4 == 0 {
        let chunked = receive(max, encoding, chunks);
        let at_once = receive(max, encoding, std::iter::once(whole));
        assert_eq!(chunked, at_once, "the chunking changed the messages");
        return;
    }
    // Messages split at 0xff bytes, framed as a sender frames them.
    let msgs: Vec<&[u8]> = whole.split(|&b| b == 0xff).collect();
    let mut wire = BytesMut::new();
    // A sender checks the limit on what it sends (compressed), a receiver
    // on what it decompresses too, as in grpc-go: keep to messages both
    // accept.
    if msgs.iter().any(|m| m.len() > max) {
        return;
    }
    for m in &msgs {
        if frame_message(m, encoding, max, &mut wire).is_err() {
            return; // over the limit: refused on the way out
        }
    }
    let sizes: Vec<u8> = data.iter().take(16).copied().collect();
    let mut rest = &wire[..];
    let mut pieces = Vec::new();
    for s in sizes.iter().map(|&s| usize::from(s.max(1))) {
        let (a, b) = rest.split_at(s.min(rest.len()));
        pieces.push(a);
        rest = b;
    }
    pieces.push(rest);
    let (got, failed) = receive(max, encoding, pieces.into_iter());
    assert!(!failed, "a stream we framed was refused");
    let got: Vec<&[u8]> = got.iter().map(|(m, _)| &m[..]).collect();
    assert_eq!(got, msgs, "messages changed on the way");
});
