//! TTHeader and THeader key/values, both ways: headers the input dictates
//! (string and integer keys, metainfo prefixes, repeats, oversize values)
//! are written by the header writer, read back by the frame parser exactly
//! as written, and absorbed by the server codec into the call's metainfo
//! with the last value of a key winning; and the raw input, after a header
//! prologue, parsed as a header for each header transport.
#![no_main]

use bytes::{Bytes, BytesMut};
use faststr::FastStr;
use libfuzzer_sys::fuzz_target;
use weft_core::{Inbound, Limits, ServerCodec, TRACEPARENT, TRACESTATE};
use weft_fuzz::gen::thrift_test::thrifttest::{ThriftTestRequest, ThriftTestResponse};
use weft_thrift::{
    frame::{begin_frame, finish_frame, parse_frame, prefix},
    DecodeLimits, Protocol, ThriftServerCodec, Transport,
};

/// Splits the input into short strings at 0xff bytes.
fn pieces(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0xff)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

fn write_read(transport: Transport, protocol: Protocol, data: &[u8]) {
    let p = pieces(data);
    let mut strings: Vec<(String, String)> = Vec::new();
    let mut ints: Vec<(u16, Vec<u8>)> = Vec::new();
    for kv in p.chunks(2) {
        let (k, v) = (kv[0].clone(), kv.get(1).cloned().unwrap_or_default());
        let k = match k.as_bytes().first().map(|b| b % 4) {
            Some(0) => format!("{}{k}", prefix::PERSISTENT),
            Some(1) => format!("{}{k}", prefix::TRANSIENT),
            Some(2) if transport == Transport::TTHeader => {
                ints.push((u16::from(k.as_bytes()[0]), v.into_bytes()));
                continue;
            }
            _ => k,
        };
        strings.push((k, v));
    }
    let mut dst = BytesMut::new();
    let mark = begin_frame(&mut dst, transport, protocol, 7, 0, false, |w| {
        for (k, v) in &strings {
            w.string("", k, v);
        }
        let refs: Vec<(u16, &[u8])> = ints.iter().map(|(k, v)| (*k, &v[..])).collect();
        w.ints(&refs);
    });
    // An empty call after the header, so the server codec can read it.
    let name: &[u8] = b"testVoid";
    match protocol {
        Protocol::Binary => {
            dst.extend_from_slice(&[0x80, 0x01, 0x00, 0x01]);
            dst.extend_from_slice(&(name.len() as u32).to_be_bytes());
            dst.extend_from_slice(name);
            dst.extend_from_slice(&7i32.to_be_bytes());
            dst.extend_from_slice(&[0]);
        }
        Protocol::Compact => {
            dst.extend_from_slice(&[0x82, 0x21, 7, name.len() as u8]);
            dst.extend_from_slice(name);
            dst.extend_from_slice(&[0]);
        }
    }
    let limits = Limits {
        max_header_entries: 1 << 16,
        ..Limits::default()
    };
    if finish_frame(&mut dst, mark, limits.max_frame_len).is_err() {
        return; // the writer refused it: too many, too long
    }
    let wire = dst.clone().freeze();
    let frame = parse_frame(wire, transport, protocol, DecodeLimits::from(&limits))
        .unwrap_or_else(|e| panic!("reading back a header just written: {e}"));
    let header = frame.header.expect("a header transport has a header");
    let want: Vec<(FastStr, FastStr)> = strings
        .iter()
        .map(|(k, v)| (FastStr::new(k), FastStr::new(v)))
        .collect();
    assert_eq!(
        header
            .strings()
            .map(|(k, v)| (FastStr::new(k), FastStr::new(v)))
            .collect::<Vec<_>>(),
        want,
        "string headers changed on the way"
    );
    let want_ints: Vec<(u16, FastStr)> = ints
        .iter()
        .map(|(k, v)| {
            (
                *k,
                FastStr::new(std::str::from_utf8(v).expect("from a String")),
            )
        })
        .collect();
    assert_eq!(
        header
            .ints()
            .map(|(k, v)| (k, FastStr::new(v)))
            .collect::<Vec<_>>(),
        want_ints,
        "integer headers changed on the way"
    );
    if strings
        .iter()
        .any(|(k, _)| k == weft_thrift::IDL_SERVICE_NAME)
    {
        return; // names a service ThriftTest is not
    }
    // The server codec puts persistent and transient values into the
    // call's metainfo, the last of each key winning; a lone version-00
    // `traceparent` into the typed trace slot instead, byte for byte.
    let sent = |key: &str| {
        let key = format!("{}{key}", prefix::TRANSIENT);
        strings.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v)
    };
    let mut codec = ThriftServerCodec::<ThriftTestRequest, ThriftTestResponse>::new(&limits);
    let Ok(Some(Inbound::Request { req, .. })) = codec.decode(&mut dst) else {
        panic!("the server codec refused a valid call");
    };
    if let Some(p) = req.cx.trace.incoming() {
        assert!(sent(TRACESTATE).is_none(), "a trace slot beside a tracestate");
        assert_eq!(
            sent(TRACEPARENT).map(|v| v.as_bytes()),
            Some(&p.to_bytes()[..]),
            "the trace slot"
        );
    }
    for (scope, list) in [
        (prefix::PERSISTENT, &req.cx.metainfo.persistent),
        (prefix::TRANSIENT, &req.cx.metainfo.upstream),
    ] {
        for (k, _) in strings.iter().filter(|(k, _)| k.starts_with(scope)) {
            let key = &k[scope.len()..];
            if scope == prefix::TRANSIENT && key == TRACEPARENT && !req.cx.trace.is_empty() {
                continue; // checked above
            }
            let last = &strings.iter().rev().find(|(k2, _)| k2 == k).unwrap().1;
            assert_eq!(
                list.get(key).map(|v| v.as_str()),
                Some(last.as_str()),
                "metainfo {k}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let protocol = if sel & 0x80 == 0 {
        Protocol::Binary
    } else {
        Protocol::Compact
    };
    let transport = match sel % 3 {
        0 => Transport::TTHeader,
        1 => Transport::THeader,
        _ => Transport::FramedTHeader,
    };
    if sel & 0x40 != 0 {
        write_read(transport, protocol, data);
        return;
    }
    // Raw: a frame prologue for the transport, then the input as header
    // and payload.
    let mut raw = BytesMut::new();
    let total = 8 + data.len();
    if transport == Transport::FramedTHeader {
        raw.extend_from_slice(&((total + 4) as u32).to_be_bytes());
    }
    raw.extend_from_slice(&(total as u32).to_be_bytes());
    raw.extend_from_slice(if transport == Transport::TTHeader {
        &[0x10, 0x00]
    } else {
        &[0x0f, 0xff]
    });
    raw.extend_from_slice(&[0, 0, 0, 0, 0, 7]);
    raw.extend_from_slice(data);
    let limits = DecodeLimits::default();
    if let Ok(frame) = parse_frame(Bytes::from(raw), transport, protocol, limits) {
        if let Some(h) = frame.header {
            let _ = (h.string("isn"), h.int(12));
        }
    }
});
