//! Raw HTTP/2 for the tests that play a hostile or exact peer by hand.

use bytes::{BufMut, BytesMut};

/// The client's connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Append one frame: its 9-byte header (length, type, flags, stream) and
/// `payload`.
pub fn frame(buf: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    buf.put_slice(&len.to_be_bytes()[1..]);
    buf.put_u8(kind);
    buf.put_u8(flags);
    buf.put_u32(stream);
    buf.put_slice(payload);
}
