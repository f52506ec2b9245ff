//! Untyped skipping (`TInputProtocol::skip`, the walker that steps over
//! unknown fields and finds where unframed messages end) through Weft's
//! binary and compact input protocols, several values in a row, each
//! type chosen by a byte before it. A struct skipped whole must take the
//! same bytes as the same struct decoded as one with no known fields
//! (every field skipped one by one) when both accept it.
#![no_main]

use bytes::{Buf, Bytes};
use libfuzzer_sys::fuzz_target;
use pilota::thrift::{TInputProtocol, TType};
use weft_fuzz::{decode, gen::thrift_test::thrifttest::EmptyStruct, tight_limits};
use weft_thrift::{BinaryInput, CompactInput, DecodeLimits, Protocol};

const TYPES: [TType; 14] = [
    TType::Stop,
    TType::Void,
    TType::Bool,
    TType::I8,
    TType::Double,
    TType::I16,
    TType::I32,
    TType::I64,
    TType::Binary,
    TType::Struct,
    TType::Map,
    TType::Set,
    TType::List,
    TType::Uuid,
];

fn skip(protocol: Protocol, buf: &mut Bytes, t: TType, limits: DecodeLimits) -> bool {
    match protocol {
        Protocol::Binary => BinaryInput::new(buf, limits).skip(t).is_ok(),
        Protocol::Compact => CompactInput::new(buf, limits).skip(t).is_ok(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let protocol = if sel & 0x80 == 0 {
        Protocol::Binary
    } else {
        Protocol::Compact
    };
    let limits = if sel & 0x40 == 0 {
        DecodeLimits::default()
    } else {
        DecodeLimits::from(&tight_limits())
    };
    // The walker and the field-by-field decoder on the same struct.
    let whole = Bytes::copy_from_slice(data);
    let mut walked = whole.clone();
    let walked_ok = skip(protocol, &mut walked, TType::Struct, limits);
    let mut decoded = whole.clone();
    let decoded_ok = decode::<EmptyStruct>(protocol, &mut decoded, limits).is_ok();
    if walked_ok && decoded_ok {
        assert_eq!(
            walked.len(),
            decoded.len(),
            "skip and decode took different lengths"
        );
    }
    // Validity is not compared: the walker is more lenient than the
    // decoder in places (a compact field id beyond i16 is walked, refused
    // when decoded), which delimits a frame the decoder then rejects.

    // A stream of values of chosen types.
    let mut buf = whole;
    while buf.has_remaining() {
        let t = TYPES[usize::from(buf.get_u8()) % TYPES.len()];
        let before = buf.len();
        if !skip(protocol, &mut buf, t, limits) {
            break;
        }
        assert!(
            buf.len() < before || t == TType::Void,
            "{t:?} skipped in no bytes"
        );
    }
});
