//! gRPC's length-prefixed messages: a compressed flag, a 4-byte length, the
//! message. Decoding slices whole messages out of the received DATA chunks
//! without copying when a message lies within one chunk, and checks every
//! length against the limit before holding a byte of it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use weft_core::{Code, Status};

use crate::compression::Encoding;

/// The prefix before every message.
pub const PREFIX_LEN: usize = 5;

/// Reassembles messages from DATA chunks.
#[derive(Debug)]
pub(crate) struct Decoder {
    /// The rest of the last chunk.
    current: Bytes,
    /// A message that spans chunks, prefix included, as far as received.
    partial: BytesMut,
    /// The length of the message in `partial`, once its prefix is whole.
    want: Option<(bool, usize)>,
    max: usize,
    encoding: Option<Encoding>,
    last_compressed: bool,
    /// The last message's size on the wire: prefix and (compressed) body.
    last_wire_len: usize,
}

impl Decoder {
    /// Messages of at most `max` bytes (after decompression too), compressed
    /// with `encoding` when their flag says so.
    pub(crate) fn new(max: usize, encoding: Option<Encoding>) -> Decoder {
        Decoder {
            current: Bytes::new(),
            partial: BytesMut::new(),
            want: None,
            max,
            encoding,
            last_compressed: false,
            last_wire_len: 0,
        }
    }

    /// Whether bytes of an unfinished message are held.
    pub(crate) fn is_mid_message(&self) -> bool {
        !self.current.is_empty() || !self.partial.is_empty()
    }

    /// Whether the last message came compressed.
    pub(crate) fn last_compressed(&self) -> bool {
        self.last_compressed
    }

    /// The last message's size as it came over the wire, prefix included.
    pub(crate) fn last_wire_len(&self) -> usize {
        self.last_wire_len
    }

    /// Add a received chunk; call [`Decoder::next`] until it gives `None`
    /// before pushing another.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        debug_assert!(self.current.is_empty());
        self.current = chunk;
    }

    /// The next whole message, decompressed, or `None` until more arrives.
    pub(crate) fn next(&mut self) -> Result<Option<Bytes>, Status> {
        if self.partial.is_empty() {
            if self.current.len() < PREFIX_LEN {
                if self.current.is_empty() {
                    return Ok(None);
                }
                self.partial.put_slice(&self.current);
                self.current.clear();
                return Ok(None);
            }
            let (compressed, len) = self.prefix(&self.current[..PREFIX_LEN])?;
            if self.current.len() >= PREFIX_LEN + len {
                let mut msg = self.current.split_to(PREFIX_LEN + len);
                msg.advance(PREFIX_LEN);
                return self.finish(compressed, msg).map(Some);
            }
            // It spans chunks: gather it, never more than its stated length.
            self.want = Some((compressed, len));
            self.partial.reserve(PREFIX_LEN + len.min(64 * 1024));
            self.partial.put_slice(&self.current);
            self.current.clear();
            return Ok(None);
        }
        if self.want.is_none() {
            let take = (PREFIX_LEN - self.partial.len()).min(self.current.len());
            self.partial.put_slice(&self.current[..take]);
            self.current.advance(take);
            if self.partial.len() < PREFIX_LEN {
                return Ok(None);
            }
            let want = self.prefix(&self.partial[..PREFIX_LEN])?;
            self.want = Some(want);
        }
        let (compressed, len) = self.want.expect("set above");
        let take = (PREFIX_LEN + len - self.partial.len()).min(self.current.len());
        self.partial.put_slice(&self.current[..take]);
        self.current.advance(take);
        if self.partial.len() < PREFIX_LEN + len {
            return Ok(None);
        }
        self.want = None;
        let mut msg = self.partial.split().freeze();
        msg.advance(PREFIX_LEN);
        self.finish(compressed, msg).map(Some)
    }

    fn prefix(&self, p: &[u8]) -> Result<(bool, usize), Status> {
        let compressed = match p[0] {
            0 => false,
            1 => true,
            f => {
                return Err(Status::internal(format!(
                    "grpc: invalid compressed flag {f} in a message prefix"
                )))
            }
        };
        let len = u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize;
        if len > self.max {
            return Err(too_large(len, self.max));
        }
        if compressed && self.encoding.is_none() {
            return Err(Status::internal(
                "grpc: a compressed message on a stream without grpc-encoding",
            ));
        }
        Ok((compressed, len))
    }

    fn finish(&mut self, compressed: bool, msg: Bytes) -> Result<Bytes, Status> {
        self.last_compressed = compressed;
        self.last_wire_len = PREFIX_LEN + msg.len();
        if !compressed {
            return Ok(msg);
        }
        let encoding = self.encoding.expect("checked in prefix");
        encoding.decompress(&msg, self.max)
    }
}

/// The status for a message over the limit, in grpc-go's words.
pub(crate) fn too_large(len: usize, max: usize) -> Status {
    Status::new(
        Code::ResourceExhausted,
        format!("grpc: received message larger than max ({len} vs. {max})"),
    )
}

/// Frame `dst[start..]` (a message encoded after `PREFIX_LEN` reserved
/// bytes at `start`): fill in the prefix, compressing first when
/// `encoding` says so and it pays.
pub(crate) fn seal(
    dst: &mut BytesMut,
    start: usize,
    encoding: Option<Encoding>,
    max: usize,
) -> Result<(), Status> {
    let len = dst.len() - start - PREFIX_LEN;
    if let Some(enc) = encoding {
        let compressed = enc.compress(&dst[start + PREFIX_LEN..])?;
        dst.truncate(start + PREFIX_LEN);
        dst.put_slice(&compressed);
        let clen = compressed.len();
        write_prefix(&mut dst[start..start + PREFIX_LEN], true, clen, max)
    } else {
        write_prefix(&mut dst[start..start + PREFIX_LEN], false, len, max)
    }
}

fn write_prefix(p: &mut [u8], compressed: bool, len: usize, max: usize) -> Result<(), Status> {
    if len > max {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!("grpc: trying to send message larger than max ({len} vs. {max})"),
        ));
    }
    let len32 = u32::try_from(len).map_err(|_| too_large(len, max))?;
    p[0] = u8::from(compressed);
    p[1..5].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

/// Reserve the prefix of a message about to be encoded at the end of `dst`;
/// returns where it starts, for [`seal`].
pub(crate) fn begin(dst: &mut BytesMut) -> usize {
    let start = dst.len();
    dst.put_bytes(0, PREFIX_LEN);
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            out.push(0);
            out.extend_from_slice(&(m.len() as u32).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    #[test]
    fn messages_come_whole_from_any_chunking() {
        let msgs: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i * 7]).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        let wire = framed(&refs);
        for chunk in [1, 2, 3, 5, 6, 64, 1000, wire.len()] {
            let mut d = Decoder::new(1 << 20, None);
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                d.push(Bytes::copy_from_slice(c));
                while let Some(m) = d.next().unwrap() {
                    got.push(m.to_vec());
                }
            }
            assert_eq!(got, msgs, "chunks of {chunk}");
            assert!(!d.is_mid_message());
        }
    }

    #[test]
    fn a_message_in_one_chunk_is_a_slice_of_it() {
        let wire = Bytes::from(framed(&[b"hello", b"world"]));
        let mut d = Decoder::new(100, None);
        d.push(wire.clone());
        let m = d.next().unwrap().unwrap();
        assert_eq!(&m[..], b"hello");
        assert_eq!(m.as_ptr(), wire[5..].as_ptr(), "copied instead of sliced");
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_any_byte_is_held() {
        let mut d = Decoder::new(1024, None);
        d.push(Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]));
        let e = d.next().unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);
        let mut d = Decoder::new(4, None);
        d.push(Bytes::from_static(&[0, 0, 0]));
        assert!(d.next().unwrap().is_none());
        d.push(Bytes::from_static(&[0, 5, 1]));
        assert_eq!(d.next().unwrap_err().code(), Code::ResourceExhausted);
    }

    #[test]
    fn a_bad_flag_or_an_undeclared_compression_is_an_error() {
        let mut d = Decoder::new(1024, None);
        d.push(Bytes::from_static(&[2, 0, 0, 0, 0]));
        assert_eq!(d.next().unwrap_err().code(), Code::Internal);
        let mut d = Decoder::new(1024, None);
        d.push(Bytes::from_static(&[1, 0, 0, 0, 0]));
        assert_eq!(d.next().unwrap_err().code(), Code::Internal);
    }
}
