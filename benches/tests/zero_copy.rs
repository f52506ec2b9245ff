//! Payload bytes are never copied between the socket and the handler, nor
//! between the socket and the caller: a received `string` or `binary` field
//! points into the frame the connection read.
//!
//! Both ends read from the socket straight into a `BytesMut` (`read_buf`);
//! the codec splits whole frames off it and decodes fields as sub-slices. So
//! a field whose address lies inside the buffer the frame arrived in was not
//! copied on the way. These tests feed the codecs exactly such a buffer.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use faststr::FastStr;
use weft::{
    core::{ClientCodec, Context, Inbound, Limits, Response, ServerCodec},
    thrift::{Protocol, ThriftClientCodec, ThriftServerCodec, Transport},
};
use weft_benches::{
    service::{BenchRequest, BenchResponse},
    types::{BenchEchoArgsSend, BenchEchoBinArgsSend, BenchEchoBinResultSend, BenchEchoResultSend},
};

/// The addresses `buf` occupies.
fn addresses(buf: &[u8]) -> Range<usize> {
    buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len()
}

/// Whether all of `field` lies within `frame`.
fn points_into(frame: &Range<usize>, field: &[u8]) -> bool {
    let f = addresses(field);
    !field.is_empty() && frame.start <= f.start && f.end <= frame.end
}

/// A request frame as the server's connection would hold it after a read,
/// and the server's decoded request.
fn server_receives(
    transport: Transport,
    protocol: Protocol,
    req: BenchRequest,
    method: &'static str,
) {
    let limits = Limits::default();
    let client =
        ThriftClientCodec::<BenchRequest, BenchResponse>::new(transport, protocol, &limits);
    let cx = Context::new("Bench", method);
    let frame = client.encode(1, &cx, &req).unwrap();
    // The connection's read buffer, as `read_buf` fills it.
    let mut buf = BytesMut::with_capacity(frame.len() + 64);
    buf.extend_from_slice(&frame);
    let received = addresses(&buf);

    let mut server = ThriftServerCodec::<BenchRequest, BenchResponse>::new(&limits);
    let Some(Inbound::Request { req, reply, .. }) = server.decode(&mut buf).unwrap() else {
        panic!("no request decoded");
    };
    let field: &[u8] = match &req.message {
        BenchRequest::Echo(a) => a.msg.as_bytes(),
        BenchRequest::EchoBin(a) => &a.data,
    };
    assert_eq!(field.len(), 1024);
    assert!(
        points_into(&received, field),
        "{transport:?}/{protocol:?} {method}: the server's field was copied out of the frame"
    );

    // And the answer, as the client's connection reads it back.
    let resp = match req.message {
        BenchRequest::Echo(a) => BenchResponse::Echo(BenchEchoResultSend::Ok(a.msg)),
        BenchRequest::EchoBin(a) => BenchResponse::EchoBin(BenchEchoBinResultSend::Ok(a.data)),
    };
    let mut out = BytesMut::new();
    <ThriftServerCodec<BenchRequest, BenchResponse> as ServerCodec>::encode(
        reply.unwrap(),
        Ok(Response::new(req.cx, resp)),
        false,
        &mut out,
    )
    .unwrap();
    let mut rbuf = BytesMut::with_capacity(out.len() + 64);
    rbuf.extend_from_slice(&out);
    let received = addresses(&rbuf);
    let (seq, raw) = client.decode_frame(&mut rbuf).unwrap().unwrap();
    assert_eq!(seq, 1);
    let mut cx = Context::new("Bench", method);
    cx.seq_id = 1;
    let got = client.decode(&mut cx, raw).unwrap();
    let field: &[u8] = match &got {
        BenchResponse::Echo(BenchEchoResultSend::Ok(s)) => s.as_bytes(),
        BenchResponse::EchoBin(BenchEchoBinResultSend::Ok(b)) => b,
    };
    assert_eq!(field.len(), 1024);
    assert!(
        points_into(&received, field),
        "{transport:?}/{protocol:?} {method}: the client's field was copied out of the frame"
    );
}

#[test]
fn received_payloads_point_into_the_received_frame() {
    let text: String = "0123456789abcdef".repeat(64);
    for transport in [Transport::TTHeader, Transport::Framed, Transport::Buffered] {
        for protocol in [Protocol::Binary, Protocol::Compact] {
            server_receives(
                transport,
                protocol,
                BenchRequest::Echo(BenchEchoArgsSend {
                    msg: FastStr::new(&text),
                }),
                "echo",
            );
            server_receives(
                transport,
                protocol,
                BenchRequest::EchoBin(BenchEchoBinArgsSend {
                    data: Bytes::from(text.clone().into_bytes()),
                }),
                "echo_bin",
            );
        }
    }
}
