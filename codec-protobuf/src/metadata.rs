//! What travels in HTTP/2 headers: `grpc-timeout`, `grpc-status` and its
//! message and details, and metadata, mapped to [`Context`]'s deadline and
//! [`Metainfo`](weft_core::Metainfo) so that Thrift and gRPC hops carry the
//! same facts.
//!
//! Metainfo on the wire, in the names Kitex uses for HTTP headers:
//! persistent values as `rpc-persist-<key>`, transient ones as
//! `rpc-transit-<key>` (W3C `traceparent`/`tracestate` go as plain
//! metadata, which is where every trace-aware gRPC peer reads them; the
//! context's typed trace slot, [`Context::trace`], goes as `traceparent`
//! after the transient values, and a version-00 `traceparent` received
//! without a `tracestate` lands in it rather than in upstream metainfo); the
//! caller's service name as `source-service`. On the server, `rpc-transit-`
//! and plain metadata arrive as upstream values, `rpc-persist-` as
//! persistent ones and `source-service` as [`Context::caller`]; Kitex's
//! other routing headers (`source-method`, `destination-service`, ...) are
//! not metainfo. Backward values go back as plain response metadata. The
//! full headers, `-bin` values included, are in the context's extensions
//! as [`Metadata`] (request) and [`ResponseMetadata`] (response).
//!
//! HTTP/2 names are lower case, so a key's case does not survive a gRPC
//! hop. Weft reads a key in the header's lower-case form, so lower-case
//! keys round-trip between Weft peers unchanged; Kitex reads it in CGI
//! form (`rpc-persist-tenant` is `TENANT`, `-` becomes `_`). A Kitex key
//! `TENANT` thus reaches a Weft handler as `tenant`, and a Weft key
//! `tenant` reaches a Kitex handler as `TENANT`.

use std::{fmt::Write as _, time::Duration};

use base64::Engine as _;
use bytes::Bytes;
use faststr::FastStr;
use http::{HeaderMap, HeaderName, HeaderValue};
use weft_core::{Code, Context, Status, TraceParent, TraceSlot, TRACEPARENT, TRACESTATE};

/// Request metadata: on the client, extra headers to send (put it in the
/// call's context extensions); on the server, every header the call came
/// with beyond the standard ones.
#[derive(Debug, Clone, Default)]
pub struct Metadata(pub HeaderMap);

/// Response metadata: on the server, extra headers and trailers to send
/// (put it in the response context's extensions); on the client, the ones
/// that came back.
#[derive(Debug, Clone, Default)]
pub struct ResponseMetadata {
    /// Initial metadata, sent with the response headers.
    pub headers: HeaderMap,
    /// Trailing metadata, sent with `grpc-status`.
    pub trailers: HeaderMap,
}

pub(crate) const PERSIST_PREFIX: &str = "rpc-persist-";
pub(crate) const TRANSIT_PREFIX: &str = "rpc-transit-";
/// The caller's service name, in Kitex's header for it.
pub(crate) const SOURCE_SERVICE: &str = "source-service";

/// Kitex's routing headers besides [`SOURCE_SERVICE`]: request metadata,
/// never metainfo (a Kitex server does not make them metainfo either).
fn is_kitex_routing(name: &str) -> bool {
    matches!(
        name,
        "source-method"
            | "destination-service"
            | "destination-method"
            | "destination-addr"
            | "stream-log-id"
    )
}

/// Transient keys sent as plain metadata rather than `rpc-transit-`: the
/// W3C trace context, read under these names by every tracing peer.
fn is_plain_transient(key: &str) -> bool {
    key.eq_ignore_ascii_case("traceparent") || key.eq_ignore_ascii_case("tracestate")
}

/// Headers gRPC and HTTP/2 define: never metadata.
pub(crate) fn is_reserved(name: &str) -> bool {
    name.starts_with("grpc-")
        || matches!(
            name,
            "content-type"
                | "te"
                | "user-agent"
                | "content-length"
                | "accept-encoding"
                | "host"
                | "connection"
        )
}

// ===== grpc-timeout =====

/// Parse a `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`), as the spec says.
pub fn parse_timeout(v: &[u8]) -> Result<Duration, Status> {
    let bad = || {
        Status::invalid_argument(format!(
            "grpc: malformed grpc-timeout {:?}",
            String::from_utf8_lossy(v)
        ))
    };
    let (digits, unit) = match v.split_last() {
        Some((u, d)) if !d.is_empty() && d.len() <= 8 => (d, *u),
        _ => return Err(bad()),
    };
    let mut n: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(bad());
        }
        n = n * 10 + u64::from(c - b'0');
    }
    Ok(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(bad()),
    })
}

/// Format `d` as a `grpc-timeout` value, in the finest unit that fits in
/// 8 digits (rounding up, so a deadline is never extended... nor cut to 0).
pub fn format_timeout(d: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = d.as_nanos().max(1);
    let units: [(u128, u8); 6] = [
        (1, b'n'),
        (1_000, b'u'),
        (1_000_000, b'm'),
        (1_000_000_000, b'S'),
        (60_000_000_000, b'M'),
        (3_600_000_000_000, b'H'),
    ];
    let mut buf = [0u8; 9];
    for (scale, unit) in units {
        let v = nanos.div_ceil(scale);
        if v <= MAX || unit == b'H' {
            let v = v.min(MAX) as u64;
            let mut i = 8;
            let mut x = v;
            loop {
                i -= 1;
                buf[i] = b'0' + (x % 10) as u8;
                x /= 10;
                if x == 0 {
                    break;
                }
            }
            buf[8] = unit;
            return HeaderValue::from_bytes(&buf[i..]).expect("digits and a letter");
        }
    }
    unreachable!("hours always fit")
}

// ===== status =====

/// The status `headers` (trailers, or a trailers-only response) carry;
/// `None` without `grpc-status`.
pub fn status_from_headers(headers: &HeaderMap) -> Option<Status> {
    let code = headers.get("grpc-status")?;
    let code = std::str::from_utf8(code.as_bytes())
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
        .map(Code::from_i32)
        .unwrap_or(Code::Unknown);
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    let mut status = Status::new(code, message);
    if let Some(d) = headers.get("grpc-status-details-bin") {
        if let Ok(details) = decode_bin(d.as_bytes()) {
            status = status.with_details(Bytes::from(details));
        }
    }
    // The server answered: whatever it did, it saw the call.
    Some(status.with_delivery(weft_core::Delivery::MaybeSent))
}

/// Write `status` as `grpc-status`, `grpc-message` and
/// `grpc-status-details-bin` into `headers`.
pub fn status_to_headers(status: &Status, headers: &mut HeaderMap) {
    headers.insert("grpc-status", code_value(status.code()));
    if !status.message().is_empty() {
        let encoded = percent_encode(status.message());
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            headers.insert("grpc-message", v);
        }
    }
    if !status.details().is_empty() {
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.details());
        if let Ok(v) = HeaderValue::from_str(&b64) {
            headers.insert("grpc-status-details-bin", v);
        }
    }
}

fn code_value(code: Code) -> HeaderValue {
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    let i = code.as_i32();
    match usize::try_from(i).ok().and_then(|i| CODES.get(i)) {
        Some(s) => HeaderValue::from_static(s),
        None => HeaderValue::from_static("2"),
    }
}

/// gRPC's percent-encoding of `grpc-message`: bytes outside printable
/// ASCII, and `%`, as `%XX` of the UTF-8 bytes.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The reverse of [`percent_encode`]; malformed escapes are kept as they
/// are, and invalid UTF-8 replaced, as the spec asks of receivers.
pub fn percent_decode(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decode a `-bin` value: base64 with or without padding.
pub fn decode_bin(v: &[u8]) -> Result<Vec<u8>, Status> {
    let trimmed: &[u8] = match v.iter().rposition(|&c| c != b'=') {
        Some(end) => &v[..=end],
        None => &[],
    };
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .map_err(|e| Status::invalid_argument(format!("grpc: a -bin value is not base64: {e}")))
}

/// Encode a `-bin` value (unpadded base64, as gRPC sends it).
pub fn encode_bin(v: &[u8]) -> HeaderValue {
    let s = base64::engine::general_purpose::STANDARD_NO_PAD.encode(v);
    HeaderValue::from_str(&s).expect("base64 is a valid header value")
}

// ===== metainfo =====

/// Fill `cx` from a request's headers: metainfo from metadata, and the
/// headers themselves as [`Metadata`] when there is any metadata at all.
pub(crate) fn request_into_cx(headers: HeaderMap, cx: &mut Context) {
    let mut custom = false;
    let (mut parent, mut state) = (None, None);
    for (name, value) in &headers {
        let name = name.as_str();
        if is_reserved(name) {
            continue;
        }
        custom = true;
        if name.ends_with("-bin") {
            continue;
        }
        let Ok(v) = value.to_str() else { continue };
        if let Some(k) = name.strip_prefix(PERSIST_PREFIX) {
            cx.metainfo
                .persistent
                .insert(FastStr::new(k), FastStr::new(v));
        } else if name == SOURCE_SERVICE {
            cx.caller = FastStr::new(v);
        } else if is_kitex_routing(name) {
            // Request metadata only.
        } else if let Some(k) = name.strip_prefix(TRANSIT_PREFIX) {
            cx.metainfo
                .upstream
                .insert(FastStr::new(k), FastStr::new(v));
        } else if name == TRACEPARENT {
            // To the typed slot below, not a string in the list. The last
            // of a repeated header counts, as in the list.
            parent = Some(v);
        } else if name == TRACESTATE {
            state = Some(v);
        } else {
            cx.metainfo
                .upstream
                .insert(FastStr::new(name), FastStr::new(v));
        }
    }
    // A version-00 `traceparent` that came alone goes to the typed slot
    // (and is given back byte for byte by
    // `Context::upstream_trace_into_metainfo`); any other, and a
    // `tracestate`, stay strings in upstream metainfo, as all came before.
    match (parent.map(|p| (p, TraceParent::parse(p.as_bytes()))), state) {
        (Some((_, Some(p))), None) => cx.trace = TraceSlot::received(p),
        (parent, state) => {
            if let Some((p, _)) = parent {
                cx.metainfo.upstream.insert(TRACEPARENT, FastStr::new(p));
            }
            if let Some(s) = state {
                cx.metainfo.upstream.insert(TRACESTATE, FastStr::new(s));
            }
        }
    }
    if custom {
        cx.extensions.insert(Metadata(headers));
    }
}

/// Add a call's metainfo and [`Metadata`] to the request headers.
pub(crate) fn cx_into_request(cx: &Context, headers: &mut HeaderMap) {
    for (k, v) in cx.metainfo.transient.iter() {
        let prefix = if is_plain_transient(k) {
            ""
        } else {
            TRANSIT_PREFIX
        };
        append(headers, prefix, k, v);
    }
    // Where an observing layer once put the strings: last of the
    // transient values.
    if let Some(p) = cx.trace.outgoing() {
        headers.append(TRACEPARENT, traceparent_value(&p));
    }
    for (k, v) in cx.metainfo.persistent.iter() {
        append(headers, PERSIST_PREFIX, k, v);
    }
    if !cx.caller.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&cx.caller) {
            headers.insert(SOURCE_SERVICE, v);
        }
    }
    if let Some(Metadata(extra)) = cx.extensions.get::<Metadata>() {
        for (name, value) in extra {
            if !is_reserved(name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

/// Add the response's backward metainfo and [`ResponseMetadata`] headers.
pub(crate) fn cx_into_response(cx: &Context, headers: &mut HeaderMap) {
    for (k, v) in cx.metainfo.backward.iter() {
        append(headers, "", k, v);
    }
    if let Some(extra) = cx.extensions.get::<ResponseMetadata>() {
        for (name, value) in &extra.headers {
            if !is_reserved(name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

/// Add the response's [`ResponseMetadata`] trailers.
pub(crate) fn cx_into_trailers(cx: &Context, trailers: &mut HeaderMap) {
    if let Some(extra) = cx.extensions.get::<ResponseMetadata>() {
        for (name, value) in &extra.trailers {
            if !is_reserved(name.as_str()) {
                trailers.append(name.clone(), value.clone());
            }
        }
    }
}

/// Fill a response's context from its headers and trailers: backward
/// metainfo from the plain metadata, all of it as [`ResponseMetadata`].
pub(crate) fn response_into_cx(headers: HeaderMap, trailers: Option<HeaderMap>, cx: &mut Context) {
    let mut custom = false;
    for (name, value) in headers.iter().chain(trailers.iter().flatten()) {
        let name = name.as_str();
        if is_reserved(name) {
            continue;
        }
        custom = true;
        if name.ends_with("-bin") {
            continue;
        }
        if let Ok(v) = value.to_str() {
            cx.metainfo
                .backward
                .insert(FastStr::new(name), FastStr::new(v));
        }
    }
    if custom {
        cx.extensions.insert(ResponseMetadata {
            headers,
            trailers: trailers.unwrap_or_default(),
        });
    }
}

/// `traceparent` values per arena chunk.
const TRACEPARENTS_PER_CHUNK: usize = 64;

thread_local! {
    /// Where `traceparent` values are written and split off, so a chunk
    /// allocation serves many calls; a value of its own would cost one
    /// allocation per traced call (`HeaderValue::from_bytes` copies).
    static TRACEPARENTS: std::cell::RefCell<bytes::BytesMut> =
        std::cell::RefCell::new(bytes::BytesMut::new());
}

/// `p` as a header value, sharing a per-thread chunk.
fn traceparent_value(p: &TraceParent) -> HeaderValue {
    let shared = TRACEPARENTS.with(|arena| {
        let mut arena = arena.borrow_mut();
        if arena.capacity() < TraceParent::LEN {
            *arena = bytes::BytesMut::with_capacity(TRACEPARENTS_PER_CHUNK * TraceParent::LEN);
        }
        arena.extend_from_slice(&p.to_bytes());
        arena.split().freeze()
    });
    HeaderValue::from_maybe_shared(shared).expect("hex digits and dashes")
}

fn append(headers: &mut HeaderMap, prefix: &str, k: &str, v: &str) {
    let name = if prefix.is_empty() {
        HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
    } else {
        HeaderName::from_bytes(format!("{prefix}{}", k.to_ascii_lowercase()).as_bytes())
    };
    match (name, HeaderValue::from_str(v)) {
        (Ok(n), Ok(v)) if !n.as_str().ends_with("-bin") && !is_reserved(n.as_str()) => {
            headers.append(n, v);
        }
        _ => tracing::debug!(key = k, "metainfo not sendable as gRPC metadata; dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"1S").unwrap(), Duration::from_secs(1));
        assert_eq!(
            parse_timeout(b"99999999n").unwrap(),
            Duration::from_nanos(99_999_999)
        );
        assert_eq!(parse_timeout(b"2H").unwrap(), Duration::from_secs(7200));
        for bad in [&b""[..], b"S", b"123456789S", b"1x", b"-1S", b"1 S", b"12"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
        for d in [
            Duration::from_nanos(1),
            Duration::from_millis(1500),
            Duration::from_secs(100_000),
            Duration::from_secs(u64::MAX),
        ] {
            let v = format_timeout(d);
            let back = parse_timeout(v.as_bytes()).unwrap();
            assert!(
                back >= d.min(Duration::from_secs(99_999_999 * 3600)),
                "{d:?} -> {v:?}"
            );
            assert!(v.len() <= 9);
        }
        assert_eq!(
            format_timeout(Duration::from_millis(1500))
                .to_str()
                .unwrap(),
            "1500000u"
        );
    }

    #[test]
    fn messages_and_details() {
        let s = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n 100%";
        let enc = percent_encode(s);
        assert!(enc.is_ascii() && !enc.contains('\n'));
        assert_eq!(percent_decode(enc.as_bytes()), s);
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
        let mut h = HeaderMap::new();
        let st = Status::new(Code::NotFound, s).with_details(Bytes::from_static(b"\x00\xff"));
        status_to_headers(&st, &mut h);
        let back = status_from_headers(&h).unwrap();
        assert_eq!(back.code(), Code::NotFound);
        assert_eq!(back.message(), s);
        assert_eq!(&back.details()[..], b"\x00\xff");
    }

    #[test]
    fn metainfo_travels_in_kitexs_header_names() {
        let mut cx = Context::new("s", "m");
        cx.caller = "weft-caller".into();
        cx.metainfo.transient.insert("hop", "1");
        cx.metainfo.transient.insert("traceparent", "00-ab-cd-01");
        cx.metainfo.persistent.insert("tenant", "blue");
        let mut h = HeaderMap::new();
        cx_into_request(&cx, &mut h);
        assert_eq!(h.get("rpc-transit-hop").unwrap(), "1");
        assert_eq!(h.get("rpc-persist-tenant").unwrap(), "blue");
        assert_eq!(h.get("traceparent").unwrap(), "00-ab-cd-01");
        assert_eq!(h.get("source-service").unwrap(), "weft-caller");
        assert!(h.get("hop").is_none() && h.get("rpc-transit-traceparent").is_none());

        // What a Kitex client sends: its routing headers are not metainfo.
        h.insert("destination-service", HeaderValue::from_static("s"));
        h.insert("source-method", HeaderValue::from_static(""));
        let mut srv = Context::default();
        request_into_cx(h, &mut srv);
        assert_eq!(srv.caller, "weft-caller");
        assert_eq!(srv.metainfo.upstream.get("hop").unwrap(), "1");
        assert_eq!(
            srv.metainfo.upstream.get("traceparent").unwrap(),
            "00-ab-cd-01"
        );
        assert_eq!(srv.metainfo.persistent.get("tenant").unwrap(), "blue");
        assert_eq!(
            srv.metainfo.upstream.len(),
            2,
            "{:?}",
            srv.metainfo.upstream
        );
    }

    #[test]
    fn a_typed_trace_context_travels_as_the_traceparent_string_did() {
        let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let headers = |slot: bool| {
            let mut cx = Context::new("s", "m");
            cx.metainfo.transient.insert("hop", "1");
            if slot {
                cx.trace = TraceSlot::to_send(TraceParent::parse(w3c.as_bytes()).unwrap());
            } else {
                cx.metainfo.transient.insert(TRACEPARENT, w3c);
            }
            cx.metainfo.persistent.insert("tenant", "blue");
            let mut h = HeaderMap::new();
            cx_into_request(&cx, &mut h);
            h
        };
        let (typed, strings) = (headers(true), headers(false));
        let pairs = |h: &HeaderMap| {
            h.iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect::<Vec<_>>()
        };
        // The same headers in the same order: HPACK writes the same bytes.
        assert_eq!(pairs(&typed), pairs(&strings));
        assert_eq!(typed.get(TRACEPARENT).unwrap(), w3c);

        let mut srv = Context::default();
        request_into_cx(typed, &mut srv);
        let p = srv.trace.incoming().expect("a received trace");
        assert_eq!(
            (p.trace_id, p.span_id, p.flags),
            (0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 1)
        );
        assert!(srv.metainfo.upstream.get(TRACEPARENT).is_none());
        assert_eq!(srv.metainfo.upstream.get("hop").unwrap(), "1");
        // The header itself is still in the request's metadata.
        let md = srv.extensions.get::<Metadata>().unwrap();
        assert_eq!(md.0.get(TRACEPARENT).unwrap(), w3c);

        // Not version 00, or with a tracestate: strings, as before.
        let later = format!("cc{}-more", &w3c[2..]);
        for (parent, state) in [
            (later.as_str(), None),
            ("00-ab-cd-01", None),
            (w3c, Some("k=v")),
        ] {
            let mut h = HeaderMap::new();
            h.insert(TRACEPARENT, HeaderValue::from_str(parent).unwrap());
            if let Some(s) = state {
                h.insert(TRACESTATE, HeaderValue::from_str(s).unwrap());
            }
            let mut srv = Context::default();
            request_into_cx(h, &mut srv);
            assert!(srv.trace.is_empty(), "{parent}");
            assert_eq!(srv.metainfo.upstream.get(TRACEPARENT).unwrap(), parent);
            assert_eq!(
                srv.metainfo.upstream.get(TRACESTATE).map(|s| s.as_str()),
                state
            );
        }
    }

    #[test]
    fn metainfo_round_trip() {
        let mut cx = Context::new("s", "m");
        cx.metainfo.transient.insert("x-hop", "1");
        cx.metainfo.persistent.insert("tenant", "blue");
        let mut extra = HeaderMap::new();
        extra.insert("trace-bin", encode_bin(b"\x01\x02"));
        cx.extensions.insert(Metadata(extra));
        let mut h = HeaderMap::new();
        cx_into_request(&cx, &mut h);
        let mut srv = Context::default();
        request_into_cx(h, &mut srv);
        assert_eq!(srv.metainfo.upstream.get("x-hop").unwrap(), "1");
        assert_eq!(srv.metainfo.persistent.get("tenant").unwrap(), "blue");
        let md = srv.extensions.get::<Metadata>().unwrap();
        assert_eq!(
            decode_bin(md.0.get("trace-bin").unwrap().as_bytes()).unwrap(),
            b"\x01\x02"
        );
    }
}
