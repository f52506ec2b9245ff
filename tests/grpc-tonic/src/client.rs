//! The interop client's cases in tonic, as gRPC's
//! `doc/interop-test-descriptions.md` words them.

use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Result};
use futures::StreamExt;
use tonic::{
    codec::CompressionEncoding,
    metadata::{BinaryMetadataValue, MetadataValue},
    transport::Channel,
    Code, Request, Status,
};

use crate::{
    pb::{
        test_service_client::TestServiceClient,
        unimplemented_service_client::UnimplementedServiceClient, *,
    },
    server::{ECHO_INITIAL, ECHO_TRAILING},
};

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

/// The clients a case may use, on one channel.
#[derive(Clone)]
pub struct Clients {
    /// Sends uncompressed, accepts gzip.
    pub plain: TestServiceClient<Channel>,
    /// Sends gzip.
    pub gzip: TestServiceClient<Channel>,
    pub unimplemented: UnimplementedServiceClient<Channel>,
}

impl Clients {
    pub async fn connect(host: &str, port: u16) -> Result<Clients> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{host}:{port}"))?
            .connect()
            .await?;
        let plain =
            TestServiceClient::new(channel.clone()).accept_compressed(CompressionEncoding::Gzip);
        Ok(Clients {
            gzip: plain.clone().send_compressed(CompressionEncoding::Gzip),
            plain,
            unimplemented: UnimplementedServiceClient::new(channel),
        })
    }
}

fn req<T>(m: T) -> Request<T> {
    let mut r = Request::new(m);
    r.set_timeout(Duration::from_secs(10));
    r
}

fn zeros(n: usize) -> Option<Payload> {
    Some(Payload {
        r#type: PayloadType::Compressable as i32,
        body: vec![0; n],
    })
}

fn bool_value(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
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

fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_type: PayloadType::Compressable as i32,
        response_size: 314_159,
        payload: zeros(271_828),
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

fn expect_code<T>(r: Result<T, Status>, code: Code) -> Result<Status> {
    match r {
        Ok(_) => bail!("expected {code:?}, got a success"),
        Err(s) if s.code() == code => Ok(s),
        Err(s) => bail!("expected {code:?}, got {s}"),
    }
}

async fn drain<T>(s: &mut tonic::Streaming<T>) -> Result<(), Status> {
    while s.message().await?.is_some() {}
    Ok(())
}

fn check_echo(
    headers: &tonic::metadata::MetadataMap,
    trailers: Option<&tonic::metadata::MetadataMap>,
) -> Result<()> {
    let initial = headers
        .get(ECHO_INITIAL)
        .ok_or_else(|| anyhow!("no initial echo"))?;
    ensure!(
        initial == "test_initial_metadata_value",
        "initial {initial:?}"
    );
    let trailing = trailers
        .and_then(|t| t.get_bin(ECHO_TRAILING))
        .ok_or_else(|| anyhow!("no trailing echo"))?;
    ensure!(
        trailing.to_bytes()?.as_ref() == b"\xab\xab\xab",
        "trailing {trailing:?}"
    );
    Ok(())
}

fn with_md<T>(mut r: Request<T>) -> Request<T> {
    r.metadata_mut().insert(
        ECHO_INITIAL,
        MetadataValue::from_static("test_initial_metadata_value"),
    );
    r.metadata_mut().insert_bin(
        ECHO_TRAILING,
        BinaryMetadataValue::from_bytes(b"\xab\xab\xab"),
    );
    r
}

/// Run one case by name.
pub async fn run(c: &Clients, case: &str) -> Result<()> {
    let mut plain = c.plain.clone();
    match case {
        "empty_unary" => {
            plain.empty_call(req(Empty {})).await?;
        }
        "large_unary" => {
            let r = plain.unary_call(req(large_request())).await?.into_inner();
            check_payload(r.payload, 314_159)?;
        }
        "client_compressed_unary" => {
            let probe = SimpleRequest {
                expect_compressed: bool_value(true),
                ..large_request()
            };
            expect_code(
                plain.unary_call(req(probe.clone())).await,
                Code::InvalidArgument,
            )?;
            let r = c.gzip.clone().unary_call(req(probe)).await?.into_inner();
            check_payload(r.payload, 314_159)?;
            let r = plain
                .unary_call(req(SimpleRequest {
                    expect_compressed: bool_value(false),
                    ..large_request()
                }))
                .await?
                .into_inner();
            check_payload(r.payload, 314_159)?;
        }
        "server_compressed_unary" => {
            for compressed in [true, false] {
                let r = plain
                    .unary_call(req(SimpleRequest {
                        response_compressed: bool_value(compressed),
                        ..large_request()
                    }))
                    .await?
                    .into_inner();
                check_payload(r.payload, 314_159)?;
            }
        }
        "client_streaming" => {
            let reqs: Vec<_> = [27_182, 8, 1828, 45_904]
                .into_iter()
                .map(|n| StreamingInputCallRequest {
                    payload: zeros(n),
                    ..Default::default()
                })
                .collect();
            let r = plain
                .streaming_input_call(req(futures::stream::iter(reqs)))
                .await?
                .into_inner();
            ensure!(
                r.aggregated_payload_size == 74_922,
                "aggregated {}",
                r.aggregated_payload_size
            );
        }
        "client_compressed_streaming" => {
            let probe = StreamingInputCallRequest {
                payload: zeros(27_182),
                expect_compressed: bool_value(true),
            };
            expect_code(
                plain
                    .streaming_input_call(req(futures::stream::iter([probe.clone()])))
                    .await,
                Code::InvalidArgument,
            )?;
            let second = StreamingInputCallRequest {
                payload: zeros(45_904),
                expect_compressed: bool_value(false),
            };
            let r = c
                .gzip
                .clone()
                .streaming_input_call(req(futures::stream::iter([probe, second])))
                .await?
                .into_inner();
            ensure!(
                r.aggregated_payload_size == 73_086,
                "aggregated {}",
                r.aggregated_payload_size
            );
        }
        "server_streaming" | "server_compressed_streaming" => {
            let (sizes, p): (&[i32], _) = if case == "server_streaming" {
                let s: &[i32] = &[31_415, 9, 2653, 58_979];
                (s, params(s))
            } else {
                let s: &[i32] = &[31_415, 92_653];
                let mut p = params(s);
                p[0].compressed = bool_value(true);
                p[1].compressed = bool_value(false);
                (s, p)
            };
            let mut s = plain
                .streaming_output_call(req(StreamingOutputCallRequest {
                    response_type: PayloadType::Compressable as i32,
                    response_parameters: p,
                    ..Default::default()
                }))
                .await?
                .into_inner();
            for &n in sizes {
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
            let mut s = plain.full_duplex_call(req(rx)).await?.into_inner();
            for (resp, size) in [(31_415, 27_182), (9, 8), (2653, 1828), (58_979, 45_904)] {
                tx.unbounded_send(StreamingOutputCallRequest {
                    response_type: PayloadType::Compressable as i32,
                    response_parameters: params(&[resp]),
                    payload: zeros(size),
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
            let mut s = plain
                .full_duplex_call(req(futures::stream::empty()))
                .await?
                .into_inner();
            ensure!(s.message().await?.is_none(), "a response to no request");
        }
        "custom_metadata" => {
            // Unary: tonic merges the trailers into the response metadata.
            let r = plain
                .unary_call(with_md(req(SimpleRequest {
                    response_size: 1,
                    payload: zeros(1),
                    ..large_request()
                })))
                .await?;
            check_echo(r.metadata(), Some(r.metadata()))?;
            let one = StreamingOutputCallRequest {
                response_type: PayloadType::Compressable as i32,
                response_parameters: params(&[1]),
                payload: zeros(1),
                ..Default::default()
            };
            let r = plain
                .full_duplex_call(with_md(req(futures::stream::iter([one]))))
                .await?;
            let headers = r.metadata().clone();
            let mut s = r.into_inner();
            drain(&mut s).await?;
            let trailers = s.trailers().await?;
            check_echo(&headers, trailers.as_ref())?;
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
            let s = expect_code(
                plain
                    .unary_call(req(SimpleRequest {
                        response_status: status.clone(),
                        ..Default::default()
                    }))
                    .await,
                Code::Unknown,
            )?;
            ensure!(s.message() == message, "message {:?}", s.message());
            if case == "status_code_and_message" {
                let one = StreamingOutputCallRequest {
                    response_status: status,
                    ..Default::default()
                };
                let r = async {
                    let mut s = plain
                        .full_duplex_call(req(futures::stream::iter([one])))
                        .await?
                        .into_inner();
                    drain(&mut s).await
                };
                let s = expect_code(r.await, Code::Unknown)?;
                ensure!(s.message() == message, "stream message {:?}", s.message());
            }
        }
        "unimplemented_method" => {
            expect_code(
                plain.unimplemented_call(req(Empty {})).await,
                Code::Unimplemented,
            )?;
        }
        "unimplemented_service" => {
            expect_code(
                c.unimplemented
                    .clone()
                    .unimplemented_call(req(Empty {}))
                    .await,
                Code::Unimplemented,
            )?;
        }
        "cancel_after_begin" => {
            // Start a client stream, send nothing, give up: dropping the
            // call resets the stream.
            let call = plain.streaming_input_call(req(futures::stream::pending()));
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
                response_type: PayloadType::Compressable as i32,
                response_parameters: params(&[31_415]),
                payload: zeros(27_182),
                ..Default::default()
            })?;
            let mut s = plain.full_duplex_call(req(rx)).await?.into_inner();
            let m = s
                .message()
                .await?
                .ok_or_else(|| anyhow!("no first response"))?;
            check_payload(m.payload, 31_415)?;
            drop(s);
            drop(tx);
        }
        "timeout_on_sleeping_server" => {
            let mut r = Request::new(
                futures::stream::iter([StreamingOutputCallRequest {
                    payload: zeros(27_182),
                    ..Default::default()
                }])
                .chain(futures::stream::pending()),
            );
            r.set_timeout(Duration::from_millis(1));
            let call = async {
                let mut s = plain.full_duplex_call(r).await?.into_inner();
                drain(&mut s).await
            };
            match call.await {
                Err(s) if s.code() == Code::DeadlineExceeded => {}
                // tonic's client enforces the deadline itself too, and when
                // its own timer fires first it reports CANCELLED with
                // "Timeout expired" (a tonic trait, not the server's
                // answer).
                Err(s) if s.code() == Code::Cancelled && s.message() == "Timeout expired" => {}
                other => bail!("expected DeadlineExceeded, got {:?}", other.map(|_| ())),
            }
        }
        other => bail!("unknown test case {other}"),
    }
    Ok(())
}
