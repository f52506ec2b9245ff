//! Weft's gRPC server at the wire, through h2's own client: compression
//! (`doc/compression.md`) and a unary request's message count.
//!
//! The `#[ignore]`d tests are KNOWN WEFT BUGS in codec-protobuf, kept
//! failing on purpose and ignored so the suite stays green: run them with
//! `cargo test -p weft-grpc-tests --test wire_spec -- --ignored`.

use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use weft_grpc_tests::peers::start_weft_server;

/// A `SimpleRequest` asking for 1,000 bytes, compressed if `compressed`.
fn unary_body(flag: u8, compressed: bool) -> Bytes {
    let msg: &[u8] = if compressed {
        b"\x10\xe8\x07\x32\x02\x08\x01"
    } else {
        b"\x10\xe8\x07"
    };
    let mut b = vec![flag];
    b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    b.extend_from_slice(msg);
    Bytes::from(b)
}

async fn call(headers: &[(&str, &str)], body: Bytes) -> (http::HeaderMap, Vec<u8>) {
    call_path("/grpc.testing.TestService/UnaryCall", headers, body).await
}

async fn call_path(
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (http::HeaderMap, Vec<u8>) {
    let h = start_weft_server().await;
    let addr = h.local_addr().to_string();
    let addr = addr.trim_start_matches("tcp://").to_owned();
    let s = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(conn);
    let mut send = send.ready().await.unwrap();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (resp, mut stream) = send.send_request(req.body(()).unwrap(), false).unwrap();
    stream.send_data(body, true).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("a response in time")
        .unwrap();
    let (parts, mut recv) = resp.into_parts();
    let mut data = Vec::new();
    while let Some(d) = recv.data().await {
        data.extend_from_slice(&d.unwrap());
    }
    h.shutdown().await;
    (parts.headers, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_is_compressed_only_when_asked_and_accepted() {
    let (h, data) = call(&[("grpc-accept-encoding", "gzip")], unary_body(0, true)).await;
    assert_eq!(h.get("grpc-encoding").unwrap(), "gzip");
    assert_eq!(data[0], 1, "the message's compressed flag");
    let (_, data) = call(&[("grpc-accept-encoding", "gzip")], unary_body(0, false)).await;
    assert_eq!(data[0], 0, "not asked: not compressed");
    let (h, data) = call(&[("grpc-accept-encoding", "identity")], unary_body(0, true)).await;
    assert!(h.get("grpc-encoding").is_none_or(|e| e == "identity"));
    assert_eq!(data[0], 0, "gzip not accepted: not compressed");
}

/// compression.md: a message compressed with an algorithm the server does
/// not support is answered UNIMPLEMENTED *with a `grpc-accept-encoding`
/// header listing what it accepts*, so a client can fall back by it (this
/// header was missing once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_request_encoding_lists_what_is_accepted() {
    let (h, _) = call(&[("grpc-encoding", "snappy")], unary_body(1, true)).await;
    assert_eq!(h.get("grpc-status").unwrap(), "12", "UNIMPLEMENTED");
    let accepted = h
        .get("grpc-accept-encoding")
        .expect("grpc-accept-encoding on the UNIMPLEMENTED answer");
    assert!(accepted.to_str().unwrap().contains("gzip"));
}

/// Two whole messages on a unary method, in one DATA frame, are refused as
/// a second message, not as a truncated one (the last chunk's messages were
/// once left undecoded and reported as "the request ended inside a
/// message").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_unary_message_is_named_as_such() {
    let one = unary_body(0, false);
    let two = Bytes::from([one.as_ref(), one.as_ref()].concat());
    let (h, _) = call(&[], two).await;
    let message = h
        .get("grpc-message")
        .map(|m| m.to_str().unwrap().to_owned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("second message")),
        "grpc-status {:?}, grpc-message {message:?}",
        h.get("grpc-status")
    );
}
