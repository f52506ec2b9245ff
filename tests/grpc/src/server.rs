//! The interop `TestService`, as gRPC's interop descriptions define it.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use weft::{
    core::{Code, Context, Status},
    protobuf::{
        metadata::ResponseMetadata, Compress, Compressed, Encoding, Metadata, ResponseStream,
        Streaming,
    },
};

use crate::{pb::*, service::TestService};

pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

#[derive(Debug, Clone, Default)]
pub struct Interop;

fn payload(size: i32) -> Result<Payload, Status> {
    let size = usize::try_from(size)
        .map_err(|_| Status::invalid_argument(format!("negative size {size}")))?;
    Ok(Payload {
        r#type: PayloadType::COMPRESSABLE,
        body: Bytes::from(vec![0u8; size]),
    })
}

/// Echo the interop metadata back: initial as headers, trailing as
/// trailers.
fn echo_metadata(cx: &mut Context) {
    let Some(Metadata(md)) = cx.extensions.get::<Metadata>().cloned() else {
        return;
    };
    let mut out = ResponseMetadata::default();
    if let Some(v) = md.get(ECHO_INITIAL) {
        out.headers.insert(ECHO_INITIAL, v.clone());
    }
    if let Some(v) = md.get(ECHO_TRAILING) {
        out.trailers.insert(ECHO_TRAILING, v.clone());
    }
    if !out.headers.is_empty() || !out.trailers.is_empty() {
        cx.extensions.insert(out);
    }
}

fn check_status(s: &Option<EchoStatus>) -> Result<(), Status> {
    match s {
        Some(s) if s.code != 0 => Err(Status::new(Code::from_i32(s.code), s.message.clone())),
        _ => Ok(()),
    }
}

fn check_compressed(expect: &Option<BoolValue>, compressed: bool) -> Result<(), Status> {
    if expect.as_ref().is_some_and(|e| e.value) && !compressed {
        return Err(Status::invalid_argument(
            "expected a compressed request message",
        ));
    }
    Ok(())
}

fn outputs(
    params: Vec<ResponseParameters>,
) -> impl futures::Stream<Item = Result<StreamingOutputCallResponse, Status>> + Send {
    futures::stream::iter(params).then(|p| async move {
        if p.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(p.interval_us as u64)).await;
        }
        Ok(StreamingOutputCallResponse {
            payload: Some(payload(p.size)?),
        })
    })
}

impl TestService for Interop {
    async fn empty_call(&self, cx: &mut Context, _req: Empty) -> Result<Empty, Status> {
        echo_metadata(cx);
        Ok(Empty {})
    }

    async fn unary_call(
        &self,
        cx: &mut Context,
        req: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        echo_metadata(cx);
        check_compressed(
            &req.expect_compressed,
            cx.extensions.get::<Compressed>().is_some(),
        )?;
        check_status(&req.response_status)?;
        if req.response_compressed.as_ref().is_some_and(|b| b.value) {
            cx.extensions.insert(Compress(Encoding::Gzip));
        }
        Ok(SimpleResponse {
            payload: Some(payload(req.response_size)?),
            ..Default::default()
        })
    }

    async fn cacheable_unary_call(
        &self,
        cx: &mut Context,
        req: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        self.unary_call(cx, req).await
    }

    async fn streaming_output_call(
        &self,
        cx: &mut Context,
        req: StreamingOutputCallRequest,
    ) -> Result<ResponseStream<StreamingOutputCallResponse>, Status> {
        echo_metadata(cx);
        check_status(&req.response_status)?;
        if req
            .response_parameters
            .iter()
            .any(|p| p.compressed.as_ref().is_some_and(|c| c.value))
        {
            cx.extensions.insert(Compress(Encoding::Gzip));
        }
        Ok(Box::pin(outputs(req.response_parameters)))
    }

    async fn streaming_input_call(
        &self,
        _cx: &mut Context,
        mut req: Streaming<StreamingInputCallRequest>,
    ) -> Result<StreamingInputCallResponse, Status> {
        let mut total = 0usize;
        while let Some(m) = req.message().await? {
            check_compressed(&m.expect_compressed, req.last_compressed())?;
            total += m.payload.map_or(0, |p| p.body.len());
        }
        Ok(StreamingInputCallResponse {
            aggregated_payload_size: total as i32,
        })
    }

    async fn full_duplex_call(
        &self,
        cx: &mut Context,
        req: Streaming<StreamingOutputCallRequest>,
    ) -> Result<ResponseStream<StreamingOutputCallResponse>, Status> {
        echo_metadata(cx);
        // Each request answered as it comes; a status in a request ends
        // the call with it.
        let out = req
            .map(|r| match r {
                Ok(r) => match check_status(&r.response_status) {
                    Ok(()) => Ok(outputs(r.response_parameters).boxed()),
                    Err(s) => Err(s),
                },
                Err(s) => Err(s),
            })
            .flat_map(|r| match r {
                Ok(s) => s,
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            });
        Ok(Box::pin(out))
    }

    async fn half_duplex_call(
        &self,
        _cx: &mut Context,
        mut req: Streaming<StreamingOutputCallRequest>,
    ) -> Result<ResponseStream<StreamingOutputCallResponse>, Status> {
        let mut params = Vec::new();
        while let Some(m) = req.message().await? {
            params.extend(m.response_parameters);
        }
        Ok(Box::pin(outputs(params)))
    }

    async fn unimplemented_call(&self, _cx: &mut Context, _req: Empty) -> Result<Empty, Status> {
        Err(Status::unimplemented(
            "UnimplementedCall is not implemented",
        ))
    }
}
