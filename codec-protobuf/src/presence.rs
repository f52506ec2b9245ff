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

use bytes::BufMut as _;
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

/// The value a map entry's encoder leaves out when it holds its type's
/// default, by wire type: what [`map`] writes in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zero {
    /// A varint `0`.
    Varint,
    /// A length-delimited value of length 0.
    Len,
    /// Four zero bytes.
    Fixed32,
    /// Eight zero bytes.
    Fixed64,
    /// An encoder that always writes (a message): nothing to add.
    Never,
}

impl Zero {
    #[inline]
    fn len(self, tag: u32) -> usize {
        match self {
            Zero::Varint | Zero::Len => key_len(tag) + 1,
            Zero::Fixed32 => key_len(tag) + 4,
            Zero::Fixed64 => key_len(tag) + 8,
            Zero::Never => 0,
        }
    }

    #[inline]
    fn write(self, tag: u32, buf: &mut LinkedBytes) {
        let (wire, zeros): (WireType, &[u8]) = match self {
            Zero::Varint => (WireType::Varint, &[0]),
            Zero::Len => (WireType::LengthDelimited, &[0]),
            Zero::Fixed32 => (WireType::ThirtyTwoBit, &[0; 4]),
            Zero::Fixed64 => (WireType::SixtyFourBit, &[0; 8]),
            Zero::Never => return,
        };
        encode_key(tag, wire, buf);
        buf.put_slice(zeros);
    }
}

/// Map fields whose entries always carry both their key (field 1) and
/// value (field 2), as protoc's C++ and Go runtimes write them. pilota's
/// `hash_map`/`btree_map` leave out a key or value that holds its
/// default, which the spec allows a parser to accept, but Kitex's decoder
/// (prutal) refuses such an entry, failing the whole call. Weft's codegen
/// calls these with pilota's own element encoders and the [`Zero`] each
/// leaves out.
pub mod map {
    use pilota::pb::encoding::{
        encode_key, encode_varint, encoded_len_varint, key_len, EncodeLengthContext, WireType,
    };
    use pilota::LinkedBytes;

    use super::Zero;

    #[inline]
    fn entry_len<K, V>(
        cx: &mut EncodeLengthContext,
        (key_len_of, kz): (&impl Fn(&mut EncodeLengthContext, u32, &K) -> usize, Zero),
        (val_len_of, vz): (&impl Fn(&mut EncodeLengthContext, u32, &V) -> usize, Zero),
        k: &K,
        v: &V,
    ) -> usize {
        let kl = key_len_of(cx, 1, k);
        let vl = val_len_of(cx, 2, v);
        (if kl == 0 { kz.len(1) } else { kl }) + (if vl == 0 { vz.len(2) } else { vl })
    }

    /// Write every entry of `values` as field `tag`, key and value always.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn encode<'a, M, K: 'a, V: 'a, KE, KL, VE, VL>(
        key_encode: KE,
        key_encoded_len: KL,
        kz: Zero,
        val_encode: VE,
        val_encoded_len: VL,
        vz: Zero,
        tag: u32,
        values: &'a M,
        buf: &mut LinkedBytes,
    ) where
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        KE: Fn(u32, &K, &mut LinkedBytes),
        KL: Fn(&mut EncodeLengthContext, u32, &K) -> usize,
        VE: Fn(u32, &V, &mut LinkedBytes),
        VL: Fn(&mut EncodeLengthContext, u32, &V) -> usize,
    {
        for (k, v) in values {
            // The lengths only: a fresh context, as pilota does while
            // encoding (the zero-copy count was taken when sizing).
            let len = entry_len(
                &mut EncodeLengthContext::default(),
                (&key_encoded_len, kz),
                (&val_encoded_len, vz),
                k,
                v,
            );
            encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(len as u64, buf);
            let at = buf.len();
            key_encode(1, k, buf);
            if buf.len() == at {
                kz.write(1, buf);
            }
            let at = buf.len();
            val_encode(2, v, buf);
            if buf.len() == at {
                vz.write(2, buf);
            }
        }
    }

    /// The encoded length of what [`encode`] writes.
    #[inline]
    pub fn encoded_len<'a, M, K: 'a, V: 'a, KL, VL>(
        cx: &mut EncodeLengthContext,
        key_encoded_len: KL,
        kz: Zero,
        val_encoded_len: VL,
        vz: Zero,
        tag: u32,
        values: &'a M,
    ) -> usize
    where
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        KL: Fn(&mut EncodeLengthContext, u32, &K) -> usize,
        VL: Fn(&mut EncodeLengthContext, u32, &V) -> usize,
    {
        values
            .into_iter()
            .map(|(k, v)| {
                let len = entry_len(cx, (&key_encoded_len, kz), (&val_encoded_len, vz), k, v);
                key_len(tag) + encoded_len_varint(len as u64) + len
            })
            .sum()
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
