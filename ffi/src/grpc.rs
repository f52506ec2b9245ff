//! gRPC calls through the shim: the caller's already encoded protobuf
//! request, framed and sent on a method path it names; the encoded reply
//! message, or the call's status, back.

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
}
