//! Encoding fields with presence, for generated code.
//!
//! pilota's field encoders (`pilota::pb::encoding::*::encode` and
//! `encoded_len`) leave out a value equal to its type's default, which is
//! right for proto3's implicit-presence fields and wrong for the ones with
//! presence: a proto3 `optional`, a proto2 `optional`, a oneof member. Those
//! must be written whenever they are set, or the peer reads them as unset
//! (an `optional string` set to `""` arrives as absent; a
//! `google.protobuf.Value` holding `0.0` or `null` arrives with no kind).
//! Weft's codegen writes them with pilota's `encode_raw`, which always
//! writes (with [`bytes`] for `bytes` fields), and sizes them with [`len`].

use pilota::pb::encoding::{self, encode_key, encode_varint, key_len, BytesAdapter, WireType};
use pilota::LinkedBytes;

/// A `bytes` field with presence: written even when empty (pilota's
/// `bytes::encode_raw`, which the others use, is private).
#[inline]
pub fn bytes<A: BytesAdapter + PartialEq>(tag: u32, value: &A, buf: &mut LinkedBytes) {
    if *value == A::default() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(0, buf);
    } else {
        encoding::bytes::encode(tag, value, buf);
    }
}

/// The encoded length of a field with presence, from what pilota's
/// `encoded_len` said (`encoded`, zero when it left the default out), the
/// field's `tag` and the length of its default value's body:
/// 1 for varints and length-delimited values (a zero varint, a zero
/// length), 4 for 32-bit and 8 for 64-bit fixed-width values.
#[inline]
pub fn len(encoded: usize, tag: u32, default_body: usize) -> usize {
    if encoded == 0 {
        key_len(tag) + default_body
    } else {
        encoded
    }
}

#[cfg(test)]
mod tests {
    use pilota::pb::encoding::{double, faststr, int64, EncodeLengthContext};
    use pilota::{FastStr, LinkedBytes};

    use super::len;

    #[test]
    fn defaults_are_sized_as_encode_raw_writes_them() {
        let mut cx = EncodeLengthContext::default();
        let mut buf = LinkedBytes::new();
        faststr::encode_raw(7, &FastStr::empty(), &mut buf);
        assert_eq!(
            len(faststr::encoded_len(&mut cx, 7, &FastStr::empty()), 7, 1),
            buf.len()
        );
        let mut buf = LinkedBytes::new();
        int64::encode_raw(300, &0, &mut buf);
        assert_eq!(len(int64::encoded_len(&mut cx, 300, &0), 300, 1), buf.len());
        let mut buf = LinkedBytes::new();
        double::encode_raw(2, &-0.0, &mut buf);
        assert_eq!(len(double::encoded_len(&mut cx, 2, &-0.0), 2, 8), buf.len());
        let mut buf = LinkedBytes::new();
        super::bytes(9, &pilota::Bytes::new(), &mut buf);
        assert_eq!(
            len(
                pilota::pb::encoding::bytes::encoded_len(&mut cx, 9, &pilota::Bytes::new()),
                9,
                1
            ),
            buf.len()
        );
        assert_eq!(buf.len(), 2);
        // A value that is not the default: pilota's own length.
        assert_eq!(len(int64::encoded_len(&mut cx, 1, &5), 1, 1), 2);
    }
}
