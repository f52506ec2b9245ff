//! Telling transports and protocols apart by a connection's first bytes.

use super::*;

/// Work out transport and protocol from a connection's first bytes.
/// `Ok(None)` means more bytes are needed.
pub fn detect(buf: &[u8]) -> Result<Option<(Transport, Protocol)>, ThriftException> {
    if buf.len() < 2 {
        return Ok(None);
    }
    // Unframed messages start with their protocol's signature.
    if buf[0] == 0x80 && buf[1] == 0x01 {
        return Ok(Some((Transport::Buffered, Protocol::Binary)));
    }
    if buf[0] == COMPACT_PROTOCOL_ID && buf[1] & 0x1f == 1 {
        return Ok(Some((Transport::Buffered, Protocol::Compact)));
    }
    if buf.len() < 8 {
        return Ok(None);
    }
    let first = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if buf[4] == 0 {
        // A length after the length: THeader inside a frame, if the magic
        // follows; the two bytes more any real message has.
        if buf.len() < 10 {
            return Ok(None);
        }
        let inner = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if first > 4
            && inner == first as u32 - 4
            && u16::from_be_bytes([buf[8], buf[9]]) == THEADER_MAGIC
        {
            return Ok(Some((Transport::FramedTHeader, Protocol::Binary)));
        }
    }
    let magic = u16::from_be_bytes([buf[4], buf[5]]);
    match magic {
        TTHEADER_MAGIC => return Ok(Some((Transport::TTHeader, Protocol::Binary))),
        THEADER_MAGIC => return Ok(Some((Transport::THeader, Protocol::Binary))),
        0x8001 => return Ok(Some((Transport::Framed, Protocol::Binary))),
        _ => {}
    }
    if buf[4] == COMPACT_PROTOCOL_ID && buf[5] & 0x1f == 1 {
        return Ok(Some((Transport::Framed, Protocol::Compact)));
    }
    if first > 0 {
        // Non-strict binary: a name length. Framed if what follows is itself
        // a small length (0x00 high byte); unframed if it is the name's text.
        return Ok(Some(if buf[4] == 0 {
            (Transport::Framed, Protocol::Binary)
        } else {
            (Transport::Buffered, Protocol::Binary)
        }));
    }
    Err(err(
        ProtocolExceptionKind::BadVersion,
        format!("not a Thrift message: first bytes {:02x?}", &buf[..8]),
    ))
}

/// Whether a header's payload starts with its own length followed by a
/// message: a non-strict binary message cannot look like that, since its
/// name would have to be as long as the rest of the frame.
pub(super) fn is_inner_framed(payload: &[u8]) -> bool {
    payload.len() >= 6
        && u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize
            == payload.len() - 4
        && ((payload[4] == 0x80 && payload[5] == 0x01)
            || (payload[4] == COMPACT_PROTOCOL_ID && payload[5] & 0x1f == 1))
}
