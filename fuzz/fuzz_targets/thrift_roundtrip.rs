//! Decode → encode → decode is the identity for `ThriftTest`'s structs, in
//! binary and compact, and across them (a value decoded from binary,
//! encoded in compact, decodes to itself); what the encoder writes is
//! always readable by the decoder under the same limits.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weft_fuzz::{decode, encode, same_value, with_thrift_test_type};
use weft_thrift::{DecodeLimits, Protocol};

fn round_trip<T>(from: Protocol, data: &[u8])
where
    T: pilota::thrift::Message + PartialEq + std::fmt::Debug,
{
    let limits = DecodeLimits::default();
    let mut buf = Bytes::copy_from_slice(data);
    let Ok(first) = decode::<T>(from, &mut buf, limits) else {
        return;
    };
    for to in [Protocol::Binary, Protocol::Compact] {
        let wire = encode(to, &first).expect("encoding a decoded value");
        let mut rest = wire.clone();
        let again = decode::<T>(to, &mut rest, limits)
            .unwrap_or_else(|e| panic!("{from:?} → {to:?}: re-decoding {wire:02x?}: {e}"));
        assert!(
            rest.is_empty(),
            "{to:?}: {} bytes left after re-decoding",
            rest.len()
        );
        assert!(
            same_value(&first, &again),
            "{from:?} → {to:?}: {first:?} != {again:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let from = if which & 0x80 == 0 {
        Protocol::Binary
    } else {
        Protocol::Compact
    };
    with_thrift_test_type!(which & 0x7f, |T| round_trip::<T>(from, data));
});
