//! What travels in gRPC's HTTP/2 headers: `grpc-timeout` (parsed, and
//! formatted then parsed back never shorter), `grpc-encoding` and
//! `grpc-accept-encoding`, `grpc-status` / `grpc-message` (a status sent
//! comes back with its code and message), `-bin` values and
//! percent-encoding (both round trip), and arbitrary metadata taken into a
//! call's metainfo on the server and on the client.
#![no_main]

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use weft_core::{Code, Context, Status};
use weft_protobuf::{
    fuzzing::{request_head, request_into_cx, response_into_cx},
    metadata::{
        decode_bin, encode_bin, format_timeout, parse_timeout, percent_decode, percent_encode,
        status_from_headers, status_to_headers,
    },
    Encoding,
};

/// The longest timeout gRPC can state: 99,999,999 hours.
const MAX_TIMEOUT: Duration = Duration::from_secs(99_999_999 * 3600);

fuzz_target!(|data: &[u8]| {
    // Names and values, as h2 would hand them over: split at 0xff bytes,
    // kept when they are valid header names and values.
    let pieces: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let names = [
        "grpc-timeout",
        "grpc-encoding",
        "grpc-accept-encoding",
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "rpc-persist-k",
        "rpc-transit-k",
        "x-bin",
        "content-type",
    ];
    let mut headers = HeaderMap::new();
    for kv in pieces.chunks(2) {
        let (k, v) = (kv[0], kv.get(1).copied().unwrap_or_default());
        let name = match k.first() {
            Some(&b) if b < 40 => HeaderName::from_static(names[usize::from(b) % names.len()]),
            _ => match HeaderName::from_bytes(k) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Ok(v) = HeaderValue::from_bytes(v) {
            headers.append(name, v);
        }
    }

    let _ = request_head(&headers);
    let _ = status_from_headers(&headers);
    if let Some(v) = headers
        .get("grpc-accept-encoding")
        .and_then(|v| v.to_str().ok())
    {
        let _ = Encoding::from_accept(v);
    }
    let mut cx = Context::new("s", "m");
    request_into_cx(headers.clone(), &mut cx);
    let mut cx = Context::new("s", "m");
    response_into_cx(headers.clone(), Some(headers), &mut cx);

    for p in &pieces {
        if let Ok(d) = parse_timeout(p) {
            assert!(d <= MAX_TIMEOUT);
            let back =
                parse_timeout(format_timeout(d).as_bytes()).expect("a formatted timeout parses");
            assert!(back >= d, "{d:?} formatted and parsed back as {back:?}");
        }
        let _ = decode_bin(p);
        let b = decode_bin(encode_bin(p).as_bytes()).expect("an encoded -bin value decodes");
        assert_eq!(&b[..], *p, "-bin round trip");
        let text = String::from_utf8_lossy(p);
        assert_eq!(
            percent_decode(percent_encode(&text).as_bytes()),
            text,
            "percent round trip"
        );
        let _ = percent_decode(p);
    }
    // A status sent in trailers comes back as it went.
    if let Some(&c) = data.first() {
        let code = Code::from_i32(i32::from(c % 17));
        let message =
            String::from_utf8_lossy(pieces.last().copied().unwrap_or_default()).into_owned();
        let status = Status::new(code, message.clone());
        let mut trailers = HeaderMap::new();
        status_to_headers(&status, &mut trailers);
        let back = status_from_headers(&trailers).expect("a grpc-status was written");
        assert_eq!(back.code(), code);
        if code != Code::Ok {
            assert_eq!(back.message(), message, "grpc-message round trip");
        }
    }
});
