//! The interop client's test cases, as gRPC's
//! `doc/interop-test-descriptions.md` words them.

use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Result};
use bytes::Bytes;
use futures::StreamExt;
use weft::{
    core::{http::HeaderValue, Code, Context, Status},
    protobuf::{metadata, GrpcClient, Metadata, ResponseMetadata},
};

use crate::{
    pb::*,
    server::{ECHO_INITIAL, ECHO_TRAILING},
    service::TestServiceClient,
};

/// Every case this client implements, in the descriptions' order.
pub const CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "client_compressed_streaming",
    "server_streaming",
    "server_compressed_streaming",
    "ping_pong",
    "empty_stream",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
];

/// The clients a case may use: plain, and compressing requests.
pub struct Clients {
    pub plain: TestServiceClient<GrpcClient>,
    pub gzip: TestServiceClient<GrpcClient>,
}

impl Clients {
    pub fn new(addr: weft::core::Address) -> Clients {
        Clients {
            plain: TestServiceClient::new(GrpcClient::new(addr.clone())),
            gzip: TestServiceClient::new(
                GrpcClient::builder(addr)
                    .send_compressed(weft::protobuf::Encoding::Gzip)
                    .build(),
            ),
        }
    }
}

fn cx() -> Context {
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_secs(10));
    cx
}

fn zeros(n: usize) -> Payload {
    Payload {
        r#type: PayloadType::COMPRESSABLE,
        body: Bytes::from(vec![0u8; n]),
    }
}

fn bool_value(v: bool) -> Option<BoolValue> {
    Some(BoolValue { value: v })
}

fn params(sizes: &[i32]) -> Vec<ResponseParameters> {
    sizes
        .iter()
        .map(|&size| ResponseParameters {
            size,
            ..Default::default()
        })
        .collect()
}

fn expect_code<T>(r: Result<T, Status>, code: Code) -> Result<Status> {
    match r {
        Ok(_) => bail!("expected {code:?}, got a success"),
        Err(s) if s.code() == code => Ok(s),
        Err(s) => bail!("expected {code:?}, got {s}"),
    }
}

/// Run one case by name.
pub async fn run(c: &Clients, case: &str) -> Result<()> {
    match case {
        "empty_unary" => {
            c.plain.empty_call(cx(), &Empty {}).await?;
        }
        "large_unary" => {
            let resp = c.plain.unary_call(cx(), &large_request()).await?.message;
            check_payload(resp.payload, 314_159)?;
        }
        "client_compressed_unary" => {
            // A probe the server must refuse: it says compressed, it is not.
            let mut probe = large_request();
            probe.expect_compressed = bool_value(true);
            expect_code(
                c.plain.unary_call(cx(), &probe).await,
                Code::InvalidArgument,
            )?;
            let resp = c.gzip.unary_call(cx(), &probe).await?.message;
            check_payload(resp.payload, 314_159)?;
            let mut plain = large_request();
            plain.expect_compressed = bool_value(false);
            let resp = c.plain.unary_call(cx(), &plain).await?.message;
            check_payload(resp.payload, 314_159)?;
        }
        "server_compressed_unary" => {
            for compressed in [true, false] {
                let mut req = large_request();
                req.response_compressed = bool_value(compressed);
                let resp = c.plain.unary_call(cx(), &req).await?.message;
                check_payload(resp.payload, 314_159)?;
            }
        }
        "client_streaming" => {
            let reqs: Vec<_> = [27_182, 8, 1828, 45_904]
                .into_iter()
                .map(|n| StreamingInputCallRequest {
                    payload: Some(zeros(n)),
                    ..Default::default()
                })
                .collect();
            let resp = c
                .plain
                .streaming_input_call(cx(), futures::stream::iter(reqs))
                .await?
                .message;
            ensure!(
                resp.aggregated_payload_size == 74_922,
                "aggregated {}",
                resp.aggregated_payload_size
            );
        }
        "client_compressed_streaming" => {
            let probe = StreamingInputCallRequest {
                payload: Some(zeros(27_182)),
                expect_compressed: bool_value(true),
            };
            expect_code(
                c.plain
                    .streaming_input_call(cx(), futures::stream::iter([probe.clone()]))
                    .await,
                Code::InvalidArgument,
            )?;
            let resp = c
                .gzip
                .streaming_input_call(cx(), futures::stream::iter([probe]))
                .await?
                .message;
            ensure!(
                resp.aggregated_payload_size == 27_182,
                "aggregated {}",
                resp.aggregated_payload_size
            );
        }
        "server_streaming" | "server_compressed_streaming" => {
            let sizes = [31_415, 9, 2653, 58_979];
            let mut p = params(&sizes);
            if case == "server_compressed_streaming" {
                p[0].compressed = bool_value(true);
            }
            let req = StreamingOutputCallRequest {
                response_parameters: p,
                ..Default::default()
            };
            let mut s = c.plain.streaming_output_call(cx(), &req).await?.message;
            for n in sizes {
                let m = s
                    .message()
                    .await?
                    .ok_or_else(|| anyhow!("stream ended early"))?;
                check_payload(m.payload, n as usize)?;
            }
            ensure!(s.message().await?.is_none(), "more responses than asked");
        }
        "ping_pong" => {
            let (tx, rx) = futures::channel::mpsc::unbounded();
            let mut s = c.plain.full_duplex_call(cx(), rx).await?.message;
            for (resp, req) in [(31_415, 27_182), (9, 8), (2653, 1828), (58_979, 45_904)] {
                tx.unbounded_send(StreamingOutputCallRequest {
                    response_parameters: params(&[resp]),
                    payload: Some(zeros(req)),
                    ..Default::default()
                })?;
                let m = s
                    .message()
                    .await?
                    .ok_or_else(|| anyhow!("stream ended early"))?;
                check_payload(m.payload, resp as usize)?;
            }
            drop(tx);
            ensure!(s.message().await?.is_none(), "more responses than requests");
        }
        "empty_stream" => {
            let mut s = c
                .plain
                .full_duplex_call(cx(), futures::stream::empty())
                .await?
                .message;
            ensure!(s.message().await?.is_none(), "a response to no request");
        }
        "custom_metadata" => {
            let mut md = Metadata::default();
            md.0.insert(
                ECHO_INITIAL,
                HeaderValue::from_static("test_initial_metadata_value"),
            );
            md.0.insert(ECHO_TRAILING, metadata::encode_bin(b"\xab\xab\xab"));
            let mut call_cx = cx();
            call_cx.extensions.insert(md.clone());
            let mut req = large_request();
            req.response_size = 1;
            req.payload = Some(zeros(1));
            let resp = c.plain.unary_call(call_cx, &req).await?;
            check_echo(resp.cx.extensions.get::<ResponseMetadata>(), None)?;

            let mut call_cx = cx();
            call_cx.extensions.insert(md);
            let one = StreamingOutputCallRequest {
                response_parameters: params(&[1]),
                payload: Some(zeros(1)),
                ..Default::default()
            };
            let resp = c
                .plain
                .full_duplex_call(call_cx, futures::stream::iter([one]))
                .await?;
            let mut s = resp.message;
            while s.message().await?.is_some() {}
            let md = ResponseMetadata {
                headers: s.headers().cloned().unwrap_or_default(),
                trailers: s.trailers().cloned().unwrap_or_default(),
            };
            check_echo(Some(&md), None)?;
        }
        "status_code_and_message" | "special_status_message" => {
            let message = if case == "status_code_and_message" {
                "test status message"
            } else {
                "\t\ntest with whitespace\r\nand Unicode BMP \u{263A} and non-BMP \u{1F608}\t\n"
            };
            let status = Some(EchoStatus {
                code: 2,
                message: message.into(),
            });
            let req = SimpleRequest {
                response_status: status.clone(),
                ..Default::default()
            };
            let s = expect_code(c.plain.unary_call(cx(), &req).await, Code::Unknown)?;
            ensure!(s.message() == message, "message {:?}", s.message());
            if case == "status_code_and_message" {
                let req = StreamingOutputCallRequest {
                    response_status: status,
                    ..Default::default()
                };
                let mut st = c
                    .plain
                    .full_duplex_call(cx(), futures::stream::iter([req]))
                    .await?
                    .message;
                let s = expect_code(drain(&mut st).await, Code::Unknown)?;
                ensure!(s.message() == message, "stream message {:?}", s.message());
            }
        }
        "unimplemented_method" => {
            expect_code(
                c.plain.unimplemented_call(cx(), &Empty {}).await,
                Code::Unimplemented,
            )?;
        }
        "unimplemented_service" => {
            expect_code(
                c.plain.unimplemented_service_call(cx(), &Empty {}).await,
                Code::Unimplemented,
            )?;
        }
        "cancel_after_begin" => {
            // Start a client stream, send nothing, give up: the call ends
            // cancelled and the server is told (the stream is reset).
            let call = c
                .plain
                .streaming_input_call(cx(), futures::stream::pending());
            let r = tokio::time::timeout(Duration::from_millis(100), call).await;
            ensure!(
                r.is_err(),
                "the call ended on its own: {:?}",
                r.map(|r| r.map(|_| ()))
            );
        }
        "cancel_after_first_response" => {
            let (tx, rx) = futures::channel::mpsc::unbounded();
            tx.unbounded_send(StreamingOutputCallRequest {
                response_parameters: params(&[31_415]),
                payload: Some(zeros(27_182)),
                ..Default::default()
            })?;
            let mut s = c.plain.full_duplex_call(cx(), rx).await?.message;
            let m = s
                .message()
                .await?
                .ok_or_else(|| anyhow!("no first response"))?;
            check_payload(m.payload, 31_415)?;
            drop(s);
            drop(tx);
        }
        "timeout_on_sleeping_server" => {
            let mut call_cx = Context::default();
            call_cx.set_timeout(Duration::from_millis(1));
            let req = StreamingOutputCallRequest {
                payload: Some(zeros(27_182)),
                ..Default::default()
            };
            let r = async {
                let mut s = c
                    .plain
                    .full_duplex_call(
                        call_cx,
                        futures::stream::iter([req]).chain(futures::stream::pending()),
                    )
                    .await?
                    .message;
                drain(&mut s).await
            };
            expect_code(r.await, Code::DeadlineExceeded)?;
        }
        other => bail!("unknown test case {other}"),
    }
    Ok(())
}

fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_type: PayloadType::COMPRESSABLE,
        response_size: 314_159,
        payload: Some(zeros(271_828)),
        ..Default::default()
    }
}

fn check_payload(p: Option<Payload>, n: usize) -> Result<()> {
    let p = p.ok_or_else(|| anyhow!("no payload"))?;
    ensure!(
        p.body.len() == n,
        "payload of {} bytes, expected {n}",
        p.body.len()
    );
    ensure!(p.body.iter().all(|&b| b == 0), "payload not zeros");
    Ok(())
}

async fn drain<M: weft::protobuf::Message>(
    s: &mut weft::protobuf::Streaming<M>,
) -> Result<(), Status> {
    while s.message().await?.is_some() {}
    Ok(())
}

fn check_echo(
    md: Option<&ResponseMetadata>,
    stream_trailers: Option<&weft::core::http::HeaderMap>,
) -> Result<()> {
    let md = md.ok_or_else(|| anyhow!("no response metadata"))?;
    let initial = md
        .headers
        .get(ECHO_INITIAL)
        .ok_or_else(|| anyhow!("no initial echo"))?;
    ensure!(
        initial == "test_initial_metadata_value",
        "initial {initial:?}"
    );
    let trailing = stream_trailers
        .and_then(|t| t.get(ECHO_TRAILING))
        .or_else(|| md.trailers.get(ECHO_TRAILING))
        .ok_or_else(|| anyhow!("no trailing echo"))?;
    ensure!(
        metadata::decode_bin(trailing.as_bytes())? == b"\xab\xab\xab",
        "trailing {trailing:?}"
    );
    Ok(())
}
