//! Protobuf decoding as a gRPC call runs it (`weft_protobuf::decode`:
//! pilota's decoder, then UTF-8 validation), for messages with maps,
//! oneofs, recursion, well-known types and gRPC's interop messages; what
//! decodes re-encodes to bytes that decode to the same value, of the
//! length `encoded_len` states.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use weft_fuzz::gen::{
    pb_features::{google::protobuf as wkt, weft::features as f},
    pb_messages::grpc::testing as t,
};
use weft_fuzz::same_value;
use weft_protobuf::{decode, encode_into, encoded_len, Message};

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(first) = decode::<M>(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut wire = BytesMut::new();
    encode_into(&first, &mut wire);
    assert_eq!(
        wire.len(),
        encoded_len(&first),
        "encoded_len is not the encoded length"
    );
    let wire = wire.freeze();
    let again = decode::<M>(wire.clone()).expect("re-decoding what was encoded");
    // Fields with presence holding their default are compared too: Weft's
    // codegen sends them (see `weft_protobuf::presence`).
    assert!(same_value(&first, &again), "{first:?} != {again:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    match which % 12 {
        0 => round_trip::<f::Outer>(data),
        1 => round_trip::<f::Inner>(data),
        2 => round_trip::<f::outer::Deep>(data),
        3 => round_trip::<wkt::Struct>(data),
        4 => round_trip::<wkt::Value>(data),
        5 => round_trip::<wkt::Timestamp>(data),
        6 => round_trip::<t::SimpleRequest>(data),
        7 => round_trip::<t::SimpleResponse>(data),
        8 => round_trip::<t::StreamingOutputCallRequest>(data),
        9 => round_trip::<t::StreamingInputCallRequest>(data),
        10 => round_trip::<t::ReconnectInfo>(data),
        _ => round_trip::<t::Payload>(data),
    }
});
