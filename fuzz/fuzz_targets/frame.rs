//! Thrift's transports on their own, for a transport and protocol chosen by
//! the first byte: detection from the first bytes (a verdict, once given,
//! stands as more bytes arrive; an error stays an error), then a stream of
//! frames delivered in arbitrary chunks through `frame_len`, `split_frame`
//! and `parse_frame`, which must agree with each other.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use weft_fuzz::{pick, tight_limits, Chunks, TRANSPORTS};
use weft_thrift::{
    frame::{detect, frame_len, parse_frame, split_frame},
    DecodeLimits, Protocol,
};

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
    let limits = if sel & 0x40 == 0 {
        weft_core::Limits::default()
    } else {
        tight_limits()
    };
    let (max, dl) = (limits.max_frame_len, DecodeLimits::from(&limits));

    let chunks = Chunks::new(data);
    let stream = chunks.stream();
    let mut verdict = None;
    for n in 0..=stream.len().min(64) {
        match (detect(&stream[..n]), &verdict) {
            (Ok(None), None) => {}
            (Ok(Some(d)), None) => verdict = Some(Ok(d)),
            (Err(_), None) => verdict = Some(Err(())),
            (Ok(Some(d)), Some(Ok(v))) => {
                assert_eq!(d, *v, "detection changed its mind at {n} bytes")
            }
            (Err(_), Some(Err(()))) => {}
            (got, Some(v)) => panic!("detection went from {v:?} to {got:?} at {n} bytes"),
        }
    }

    let mut buf = BytesMut::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let len = frame_len(&buf, transport, protocol, max, dl);
            let before = buf.len();
            let split = split_frame(&mut buf, transport, protocol, max, dl);
            match (len, split) {
                (Ok(None), Ok(None)) => break,
                (Ok(Some(n)), Ok(Some(frame))) => {
                    assert_eq!(
                        before - buf.len(),
                        n,
                        "split_frame took other than frame_len said"
                    );
                    assert!(n > 0, "an empty frame");
                    let _ = frame;
                }
                (Ok(Some(n)), Err(_)) => {
                    // The frame is delimited but its header is bad: it was
                    // taken off, as parse_frame alone would refuse it.
                    assert_eq!(before - buf.len(), n);
                    return;
                }
                (Err(_), Err(_)) => return,
                (len, split) => panic!("frame_len {len:?} but split_frame {split:?}"),
            }
        }
    }
    // What is left, taken as one frame, parses or errors: never panics.
    let _ = parse_frame(buf.freeze(), transport, protocol, dl);
});
