//! The `Bench` echo service on `volo-thrift` 0.12, with the glue volo-build
//! would generate taken from `weft_interop::volo`.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use faststr::FastStr;
use volo::service::{BoxCloneService, Service};
use volo_thrift::{
    context::{ClientContext, ServerContext},
    ClientError, ServerError,
};
use weft_interop::volo::MkVoloClient;

use crate::types::{
    BenchEchoArgsSend, BenchEchoBinArgsSend, BenchEchoBinResultSend, BenchEchoResultSend,
};

weft_interop::volo_entry_message!(
    /// The arguments of every `Bench` method, for Volo.
    pub VoloBenchRequest {
        "echo" => Echo(BenchEchoArgsSend),
        "echo_bin" => EchoBin(BenchEchoBinArgsSend),
    }
);

weft_interop::volo_entry_message!(
    /// The results of every `Bench` method, for Volo.
    pub VoloBenchResponse {
        "echo" => Echo(BenchEchoResultSend),
        "echo_bin" => EchoBin(BenchEchoBinResultSend),
    }
);

/// The echo handler as a Volo server service, counting calls.
#[derive(Debug, Clone, Default)]
pub struct VoloBenchServer {
    calls: Arc<AtomicU64>,
}

impl VoloBenchServer {
    /// A handler counting into `calls`.
    pub fn with_counter(calls: Arc<AtomicU64>) -> Self {
        VoloBenchServer { calls }
    }
}

impl Service<ServerContext, VoloBenchRequest> for VoloBenchServer {
    type Response = VoloBenchResponse;
    type Error = ServerError;

    async fn call(
        &self,
        _cx: &mut ServerContext,
        req: VoloBenchRequest,
    ) -> Result<VoloBenchResponse, ServerError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(match req {
            VoloBenchRequest::Echo(a) => VoloBenchResponse::Echo(BenchEchoResultSend::Ok(a.msg)),
            VoloBenchRequest::EchoBin(a) => {
                VoloBenchResponse::EchoBin(BenchEchoBinResultSend::Ok(a.data))
            }
        })
    }
}

/// Serve `handler` on `listener` with Volo's default server (its default
/// codec, TTHeader around framed binary, detected per connection);
/// `multiplex` serves many calls of a connection at once. Runs until the
/// task is aborted.
pub fn spawn_server(
    listener: tokio::net::TcpListener,
    handler: VoloBenchServer,
    multiplex: bool,
) -> tokio::task::JoinHandle<()> {
    let server = volo_thrift::server::Server::new(handler).multiplex(multiplex);
    tokio::spawn(async move {
        if let Err(e) = server
            .run(volo::net::incoming::DefaultIncoming::from(listener))
            .await
        {
            eprintln!("volo server failed: {e}");
        }
    })
}

/// The untyped client `ClientBuilder::build` makes.
pub type VoloClient = volo_thrift::Client<
    BoxCloneService<ClientContext, VoloBenchRequest, Option<VoloBenchResponse>, ClientError>,
>;

/// A Volo client of `addr` on Volo's default codec (TTHeader around framed
/// binary) and default pool, or one multiplexed connection.
pub fn client(addr: SocketAddr, multiplex: bool) -> VoloClient {
    volo_thrift::client::ClientBuilder::<_, _, _, VoloBenchRequest, VoloBenchResponse, _, _, _>::new(
        "Bench",
        MkVoloClient,
    )
    .address(addr)
    .caller_name("weft-benches")
    // The default, one second, would turn a stall under load into errors.
    .rpc_timeout(Some(Duration::from_secs(10)))
    .multiplex(multiplex)
    .build()
}

/// `Bench.echo` through a Volo client.
pub async fn echo(client: &VoloClient, msg: FastStr) -> Result<FastStr, ClientError> {
    let mut cx = client.make_cx("echo", false);
    match Service::call(
        client,
        &mut cx,
        VoloBenchRequest::Echo(BenchEchoArgsSend { msg }),
    )
    .await?
    {
        Some(VoloBenchResponse::Echo(BenchEchoResultSend::Ok(s))) => Ok(s),
        other => panic!("unexpected response {other:?}"),
    }
}
