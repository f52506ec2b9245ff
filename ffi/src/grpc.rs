//! gRPC calls through the shim: the caller's already encoded protobuf
//! request, framed and sent on a method path it names; the encoded reply
//! message, or the call's status, back. On the server, a C handler's reply
//! message is checked to be protobuf's wire format before it is sent.

use std::{collections::HashMap, sync::OnceLock};

use bytes::{BufMut, BytesMut};
use parking_lot::Mutex;
use weft_core::{Code, Status};
use weft_protobuf::{GrpcCall, MethodDesc, MethodKind};

/// The most distinct method paths one process may call: each is kept for
/// the life of the process (the gRPC client names methods by a `'static`
/// descriptor), so a caller that made up paths must not grow it forever.
pub const MAX_METHOD_PATHS: usize = 4096;

fn methods() -> &'static Mutex<HashMap<String, &'static MethodDesc>> {
    static METHODS: OnceLock<Mutex<HashMap<String, &'static MethodDesc>>> = OnceLock::new();
    METHODS.get_or_init(Mutex::default)
}

/// Check a method path, `/package.Service/Method`, and return its service
/// and method names.
pub(crate) fn split_path(path: &str) -> Result<(&str, &str), Status> {
    let bad = || {
        Status::invalid_argument(format!(
            "gRPC method {path:?} is not a path /package.Service/Method"
        ))
    };
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    let (service, method) = rest.split_once('/').ok_or_else(bad)?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if !ok(service) || !ok(method) {
        return Err(bad());
    }
    Ok((service, method))
}

/// The descriptor of the unary method at `path`, made once per path.
pub(crate) fn method(path: &str) -> Result<&'static MethodDesc, Status> {
    let (_, name) = split_path(path)?;
    let mut map = methods().lock();
    if let Some(m) = map.get(path) {
        return Ok(m);
    }
    if map.len() >= MAX_METHOD_PATHS {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!("more than {MAX_METHOD_PATHS} distinct gRPC method paths called"),
        ));
    }
    let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
    let name = &path[path.len() - name.len()..];
    let desc: &'static MethodDesc = Box::leak(Box::new(MethodDesc {
        name,
        path,
        kind: MethodKind::Unary,
    }));
    map.insert(path.to_owned(), desc);
    Ok(desc)
}

/// A unary call of `method` with `message`, an encoded protobuf message,
/// framed as gRPC sends it (uncompressed).
pub(crate) fn call(method: &'static MethodDesc, message: &[u8]) -> Result<GrpcCall, Status> {
    let len = u32::try_from(message.len())
        .map_err(|_| Status::invalid_argument("the request is over 4 GiB"))?;
    let mut buf = BytesMut::with_capacity(weft_protobuf::PREFIX_LEN + message.len());
    buf.put_u8(0);
    buf.put_u32(len);
    buf.put_slice(message);
    Ok(GrpcCall {
        method,
        message: buf.freeze(),
    })
}

/// Deepest nesting of groups a reply may have: groups are the only nesting
/// the wire format shows without a schema.
const MAX_GROUP_DEPTH: usize = 64;

/// Check that `bytes` is a well-formed protobuf message on the wire: every
/// field a valid tag (field number 1 to 2^29-1, a known wire type) and a
/// value of that type within the bytes, groups closed in order. The fields'
/// meaning is the peer's business (Weft has no schema here); an empty
/// message is valid.
pub(crate) fn validate_message(bytes: &[u8], what: &str) -> Result<(), Status> {
    let bad =
        |why: String| Status::invalid_argument(format!("{what} is not a protobuf message: {why}"));
    let mut at = 0;
    let mut groups: Vec<u64> = Vec::new();
    while at < bytes.len() {
        let start = at;
        let key = varint(bytes, &mut at).ok_or_else(|| bad(format!("a bad tag at {start}")))?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 || field > (1 << 29) - 1 {
            return Err(bad(format!("field number {field} at {start}")));
        }
        let skip = |n: usize, at: &mut usize| {
            if bytes.len() - *at < n {
                return Err(bad(format!("field {field} at {start} runs past the end")));
            }
            *at += n;
            Ok(())
        };
        match wire {
            0 => {
                varint(bytes, &mut at)
                    .ok_or_else(|| bad(format!("a bad varint in field {field} at {start}")))?;
            }
            1 => skip(8, &mut at)?,
            2 => {
                let len = varint(bytes, &mut at)
                    .ok_or_else(|| bad(format!("a bad length in field {field} at {start}")))?;
                skip(usize::try_from(len).unwrap_or(usize::MAX), &mut at)?;
            }
            3 => {
                if groups.len() == MAX_GROUP_DEPTH {
                    return Err(bad(format!("groups nested over {MAX_GROUP_DEPTH} deep")));
                }
                groups.push(field);
            }
            4 => {
                if groups.pop() != Some(field) {
                    return Err(bad(format!("an unmatched end of group {field} at {start}")));
                }
            }
            5 => skip(4, &mut at)?,
            w => return Err(bad(format!("wire type {w} in field {field} at {start}"))),
        }
    }
    if let Some(g) = groups.last() {
        return Err(bad(format!("group {g} is not closed")));
    }
    Ok(())
}

/// A varint of at most 10 bytes at `bytes[*at..]`, moving `at` past it.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *bytes.get(*at + i)?;
        if i == 9 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *at += i + 1;
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_and_kept_once() {
        let a = method("/weft.interop.echo.Echo/Unary").unwrap();
        let b = method("/weft.interop.echo.Echo/Unary").unwrap();
        assert!(std::ptr::eq(a, b));
        assert_eq!(a.name, "Unary");
        for bad in [
            "", "Unary", "/Echo", "/Echo/", "//Unary", "/a/b/c", "/a b/c",
        ] {
            assert_eq!(
                method(bad).unwrap_err().code(),
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_call_is_framed() {
        let m = method("/p.S/M").unwrap();
        let c = call(m, b"\x08\x01").unwrap();
        assert_eq!(&c.message[..], b"\x00\x00\x00\x00\x02\x08\x01");
    }

    #[test]
    fn reply_messages_are_checked_for_the_wire_format() {
        for ok in [
            &b""[..],
            b"\x08\x96\x01",                         // 1: varint 150
            b"\x12\x03abc",                          // 2: "abc"
            b"\x19\x01\x02\x03\x04\x05\x06\x07\x08", // 3: fixed64
            b"\x25\x01\x02\x03\x04",                 // 4: fixed32
            b"\x2b\x08\x01\x2c",                     // 5: group { 1: 1 }
        ] {
            validate_message(ok, "reply").unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            &b"\x00"[..],                                    // field 0
            b"\x08",                                         // a varint missing
            b"\x08\xff\xff",                                 // a varint cut short
            b"\x12\x05abc",                                  // a length past the end
            b"\x0e",                                         // wire type 6
            b"\x2b\x08\x01",                                 // an open group
            b"\x2c",                                         // a group end without its start
            b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", // a varint past 64 bits
        ] {
            let e = validate_message(bad, "reply").unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
        }
    }
}
