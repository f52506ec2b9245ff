//! `ThriftTest`'s structs decoded through Weft's bounded binary and compact
//! input protocols, several values in a row from one buffer as a frame
//! holds them; each value's type and protocol chosen by a byte before it.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weft_fuzz::{decode, tight_limits, with_thrift_test_type};
use weft_thrift::{DecodeLimits, Protocol};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let limits = if sel & 1 == 0 {
        DecodeLimits::default()
    } else {
        DecodeLimits::from(&tight_limits())
    };
    let mut buf = Bytes::copy_from_slice(data);
    while let Some(&which) = buf.first() {
        let _ = bytes::Buf::get_u8(&mut buf);
        let protocol = if which & 0x80 == 0 {
            Protocol::Binary
        } else {
            Protocol::Compact
        };
        let before = buf.len();
        let ok = with_thrift_test_type!(which & 0x7f, |T| decode::<T>(protocol, &mut buf, limits)
            .is_ok());
        if !ok {
            break;
        }
        assert!(buf.len() < before, "a value decoded from no bytes");
    }
});
