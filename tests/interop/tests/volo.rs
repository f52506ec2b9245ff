//! Interoperability with CloudWeGo's `volo-thrift` 0.12 over TTHeader, on real
//! loopback sockets, in both directions:
//!
//! - a Volo client calls a Weft server, with Volo's default codec (a TTHeader
//!   around a framed binary message) and with a TTHeader around the bare
//!   message, and
//! - a Weft client (TTHeader, binary; multiplexed and pooled) calls a Volo
//!   server,
//!
//! each carrying a 1 MiB payload unchanged, a plain call, a declared exception
//! and an undeclared error, and metainfo: persistent and transient values
//! forward, a backward value on the way back.
//!
//! What volo-build would generate for `Echo` is written by hand: entry
//! messages over the pilota-generated argument and result structs (with
//! `weft_interop::volo_entry_message!`, shared with the benchmarks), a typed
//! client around the `volo_thrift::Client` that `ClientBuilder` builds, and a
//! server service.

use std::{cell::RefCell, net::SocketAddr, time::Duration};

use futures::future::join_all;
use metainfo::{Backward, Forward, MetaInfo, METAINFO};
use pilota::{
    thrift::{ApplicationException, ApplicationExceptionKind},
    FastStr,
};
use volo::service::{BoxCloneService, Service};
use volo_thrift::{
    codec::default::{thrift::MakeThriftCodec, ttheader::MakeTTHeaderCodec, DefaultMakeCodec},
    context::{ClientContext, ServerContext},
    ClientError, ServerError,
};
use weft::{
    core::{Address, Code, ConnectionMode, Context, ServerBuilder},
    thrift::{Protocol, Transport},
};
use weft_interop::{
    sample_payload, serve, volo::MkVoloClient, EchoAddArgsSend, EchoAddResultSend, EchoClient,
    EchoEchoArgsSend, EchoEchoResultSend, EchoError, EchoFailArgsSend, EchoFailResultSend,
    EchoHandler, EchoMetainfoArgsSend, EchoMetainfoResultSend, EchoNotifyArgsSend,
    EchoNotifyResultSend, EchoPingArgsSend, EchoPingResultSend, EchoSlowArgsSend,
    EchoSlowResultSend, Payload,
};

weft_interop::volo_entry_message!(
    /// The arguments of every `Echo` method, for Volo.
    VoloRequest {
        "echo" => Echo(EchoEchoArgsSend),
        "fail" => Fail(EchoFailArgsSend),
        "add" => Add(EchoAddArgsSend),
        "metainfo" => Metainfo(EchoMetainfoArgsSend),
        "ping" => Ping(EchoPingArgsSend),
        "notify" => Notify(EchoNotifyArgsSend),
        "slow" => Slow(EchoSlowArgsSend),
    }
);

weft_interop::volo_entry_message!(
    /// The results of every `Echo` method, for Volo.
    VoloResponse {
        "echo" => Echo(EchoEchoResultSend),
        "fail" => Fail(EchoFailResultSend),
        "add" => Add(EchoAddResultSend),
        "metainfo" => Metainfo(EchoMetainfoResultSend),
        "ping" => Ping(EchoPingResultSend),
        "notify" => Notify(EchoNotifyResultSend),
        "slow" => Slow(EchoSlowResultSend),
    }
);

// ===== Volo client =====

/// A typed Volo client of `Echo`.
#[derive(Clone)]
struct VoloEchoClient<C>(C);

type VoloClient = VoloEchoClient<
    volo_thrift::Client<
        BoxCloneService<ClientContext, VoloRequest, Option<VoloResponse>, ClientError>,
    >,
>;

/// How a Volo client frames its calls.
#[derive(Debug, Clone, Copy)]
enum VoloCodec {
    /// Volo's default (`DefaultMakeCodec::ttheader_framed()`): a TTHeader
    /// whose payload is itself a framed message, a 4-byte length first.
    TTHeaderFramed,
    /// A TTHeader whose payload is the bare message.
    TTHeader,
}

/// Volo's multiplexed client (TTHeader framed, every call on one
/// connection, answers matched by sequence id).
fn volo_mux_client(addr: SocketAddr) -> VoloClient {
    VoloEchoClient(
        volo_thrift::client::ClientBuilder::<_, _, _, VoloRequest, VoloResponse, _, _, _>::new(
            "Echo",
            MkVoloClient,
        )
        .address(addr)
        .caller_name("volo-mux-interop")
        .rpc_timeout(Some(Duration::from_secs(30)))
        .multiplex(true)
        .build(),
    )
}

fn volo_client(addr: SocketAddr, codec: VoloCodec) -> VoloClient {
    let builder =
        volo_thrift::client::ClientBuilder::<_, _, _, VoloRequest, VoloResponse, _, _, _>::new(
            "Echo",
            MkVoloClient,
        )
        .address(addr)
        .caller_name("volo-interop")
        // Debug builds move a mebibyte slowly; the default is one second.
        .rpc_timeout(Some(Duration::from_secs(30)));
    VoloEchoClient(match codec {
        VoloCodec::TTHeaderFramed => builder.build(),
        VoloCodec::TTHeader => builder
            .make_codec(DefaultMakeCodec::new(MakeTTHeaderCodec::new(
                MakeThriftCodec::new(),
            )))
            .build(),
    })
}

impl<S> VoloEchoClient<volo_thrift::Client<S>>
where
    S: Service<ClientContext, VoloRequest, Response = Option<VoloResponse>, Error = ClientError>
        + Send
        + Sync
        + 'static,
{
    async fn call(&self, method: &str, req: VoloRequest) -> Result<VoloResponse, ClientError> {
        let mut cx = self.0.make_cx(method, false);
        let resp = Service::call(&self.0, &mut cx, req).await?;
        Ok(resp.expect("a two-way call has a response"))
    }

    async fn echo(&self, payload: Payload) -> Result<Payload, ClientError> {
        match self
            .call("echo", VoloRequest::Echo(EchoEchoArgsSend { payload }))
            .await?
        {
            VoloResponse::Echo(EchoEchoResultSend::Ok(p)) => Ok(p),
            other => panic!("unexpected response {other:?}"),
        }
    }

    /// `Ok(Err(e))` is the declared exception.
    async fn fail(
        &self,
        code: i32,
        message: &str,
    ) -> Result<Result<Payload, EchoError>, ClientError> {
        let req = VoloRequest::Fail(EchoFailArgsSend {
            code,
            message: FastStr::new(message),
        });
        match self.call("fail", req).await? {
            VoloResponse::Fail(EchoFailResultSend::Ok(p)) => Ok(Ok(p)),
            VoloResponse::Fail(EchoFailResultSend::Err(e)) => Ok(Err(e)),
            other => panic!("unexpected response {other:?}"),
        }
    }

    async fn add(&self, a: i64, b: i64) -> Result<i64, ClientError> {
        match self
            .call("add", VoloRequest::Add(EchoAddArgsSend { a, b }))
            .await?
        {
            VoloResponse::Add(EchoAddResultSend::Ok(n)) => Ok(n),
            other => panic!("unexpected response {other:?}"),
        }
    }

    async fn metainfo(&self, key: &str) -> Result<FastStr, ClientError> {
        let req = VoloRequest::Metainfo(EchoMetainfoArgsSend {
            key: FastStr::new(key),
        });
        match self.call("metainfo", req).await? {
            VoloResponse::Metainfo(EchoMetainfoResultSend::Ok(v)) => Ok(v),
            other => panic!("unexpected response {other:?}"),
        }
    }

    /// One-way: resolves once Volo has sent it.
    async fn notify(&self, text: &str) -> Result<(), ClientError> {
        let mut cx = self.0.make_cx("notify", true);
        let req = VoloRequest::Notify(EchoNotifyArgsSend {
            text: FastStr::new(text),
        });
        let resp = Service::call(&self.0, &mut cx, req).await?;
        assert!(resp.is_none(), "a one-way call got a response: {resp:?}");
        Ok(())
    }

    async fn slow(&self, payload: Payload, millis: i32) -> Result<Payload, ClientError> {
        match self
            .call(
                "slow",
                VoloRequest::Slow(EchoSlowArgsSend { payload, millis }),
            )
            .await?
        {
            VoloResponse::Slow(EchoSlowResultSend::Ok(p)) => Ok(p),
            other => panic!("unexpected response {other:?}"),
        }
    }

    async fn ping(&self) -> Result<(), ClientError> {
        match self
            .call("ping", VoloRequest::Ping(EchoPingArgsSend {}))
            .await?
        {
            VoloResponse::Ping(EchoPingResultSend::Ok(())) => Ok(()),
            other => panic!("unexpected response {other:?}"),
        }
    }
}

// ===== Volo server =====

/// The `Echo` handler as a Volo server service, like the generated
/// `EchoServer` wrapping a user's implementation.
#[derive(Clone, Default)]
struct VoloEchoServer {
    /// The texts of the one-way `notify` calls it received, in order.
    notes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Service<ServerContext, VoloRequest> for VoloEchoServer {
    type Response = VoloResponse;
    type Error = ServerError;

    async fn call(
        &self,
        _cx: &mut ServerContext,
        req: VoloRequest,
    ) -> Result<VoloResponse, ServerError> {
        Ok(match req {
            VoloRequest::Echo(a) => VoloResponse::Echo(EchoEchoResultSend::Ok(a.payload)),
            VoloRequest::Fail(a) => {
                if a.code < 0 {
                    return Err(ServerError::Application(ApplicationException::new(
                        ApplicationExceptionKind::INTERNAL_ERROR,
                        a.message,
                    )));
                }
                VoloResponse::Fail(EchoFailResultSend::Err(EchoError {
                    code: Some(a.code),
                    message: Some(a.message),
                }))
            }
            VoloRequest::Add(a) => VoloResponse::Add(EchoAddResultSend::Ok(a.a.wrapping_add(a.b))),
            VoloRequest::Metainfo(a) => {
                // Volo's TTHeader decoder filled the task's METAINFO:
                // persistent values as persistents, transient as upstreams.
                let value = METAINFO.with(|mi| {
                    let mut mi = mi.borrow_mut();
                    let value = mi
                        .get_persistent(&a.key)
                        .or_else(|| mi.get_upstream(&a.key))
                        .unwrap_or_default();
                    mi.set_backward_transient(format!("echo-{}", a.key), value.clone());
                    value
                });
                VoloResponse::Metainfo(EchoMetainfoResultSend::Ok(value))
            }
            VoloRequest::Ping(_) => VoloResponse::Ping(EchoPingResultSend::Ok(())),
            VoloRequest::Notify(a) => {
                self.notes.lock().unwrap().push(a.text.to_string());
                VoloResponse::Notify(EchoNotifyResultSend::Ok(()))
            }
            VoloRequest::Slow(a) => {
                tokio::time::sleep(Duration::from_millis(a.millis.max(0) as u64)).await;
                VoloResponse::Slow(EchoSlowResultSend::Ok(a.payload))
            }
        })
    }
}

/// A Volo server on a loopback port. Dropping it aborts `Server::run`; the
/// tasks that spawned (accept loop, connections) end with the test's runtime.
struct VoloServer {
    addr: SocketAddr,
    notes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for VoloServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn volo_server() -> VoloServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = VoloEchoServer::default();
    let notes = service.notes.clone();
    let server = volo_thrift::server::Server::new(service);
    let task = tokio::spawn(async move {
        if let Err(e) = server
            .run(volo::net::incoming::DefaultIncoming::from(listener))
            .await
        {
            panic!("volo server failed: {e}");
        }
    });
    VoloServer { addr, notes, task }
}

fn socket_addr(a: &Address) -> SocketAddr {
    match a {
        Address::Tcp(a) => *a,
        other => panic!("not a TCP address: {other}"),
    }
}

// ===== tests =====

/// Echo, add, ping, a declared exception, an undeclared error and
/// concurrent calls from a Volo client to a Weft server.
async fn volo_client_calls_weft_server(codec: VoloCodec) {
    let server = serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap();
    let client = volo_client(socket_addr(server.local_addr()), codec);

    let p = sample_payload(1 << 20);
    assert_eq!(client.echo(p.clone()).await.unwrap(), p);
    assert_eq!(client.add(40, 2).await.unwrap(), 42);
    client.ping().await.unwrap();

    let e = client.fail(7, "boom").await.unwrap().unwrap_err();
    assert_eq!(e.code, Some(7));
    assert_eq!(e.message.as_deref(), Some("boom"));

    match client.fail(-1, "undeclared").await {
        Err(ClientError::Application(a)) => {
            assert_eq!(a.kind(), ApplicationExceptionKind::INTERNAL_ERROR);
            assert_eq!(a.message(), "undeclared");
        }
        other => panic!("expected an application exception, got {other:?}"),
    }

    // Concurrent calls, on as many pooled connections as the client opens.
    let sums = join_all((0..16i64).map(|i| {
        let client = client.clone();
        async move { client.add(i, 1000).await.unwrap() }
    }))
    .await;
    assert_eq!(sums, (0..16i64).map(|i| i + 1000).collect::<Vec<_>>());

    server.shutdown().await;
}

/// Persistent and transient metainfo from a Volo client reach a Weft
/// server, and its backward value reaches the Volo client.
async fn volo_client_metainfo_crosses_to_weft_server_and_back(codec: VoloCodec) {
    let server = serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap();
    let client = volo_client(socket_addr(server.local_addr()), codec);

    let mut mi = MetaInfo::new();
    mi.set_persistent("tenant", "blue");
    mi.set_transient("hop", "one");
    METAINFO
        .scope(RefCell::new(mi), async {
            // Persistent: RPC_PERSIST_tenant.
            assert_eq!(client.metainfo("tenant").await.unwrap(), "blue");
            let back = METAINFO.with(|mi| mi.borrow().get_backward_downstream("echo-tenant"));
            assert_eq!(back.as_deref(), Some("blue"));

            // Transient: RPC_TRANSIT_hop, an upstream value at the server.
            assert_eq!(client.metainfo("hop").await.unwrap(), "one");
            let all = METAINFO.with(|mi| mi.borrow().get_all_backward_downstreams().cloned());
            let all = all.expect("backward values arrived");
            assert_eq!(all.get("echo-hop").map(|v| v.as_str()), Some("one"));
            assert_eq!(all.get("echo-tenant").map(|v| v.as_str()), Some("blue"));

            // A key nobody sent comes back empty, not as someone else's value.
            assert_eq!(client.metainfo("absent").await.unwrap(), "");
        })
        .await;

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volo_default_client_calls_weft_server() {
    volo_client_calls_weft_server(VoloCodec::TTHeaderFramed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volo_default_client_metainfo_crosses_to_weft_server_and_back() {
    volo_client_metainfo_crosses_to_weft_server_and_back(VoloCodec::TTHeaderFramed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volo_unframed_ttheader_client_calls_weft_server() {
    volo_client_calls_weft_server(VoloCodec::TTHeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volo_unframed_ttheader_client_metainfo_crosses_to_weft_server_and_back() {
    volo_client_metainfo_crosses_to_weft_server_and_back(VoloCodec::TTHeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_client_calls_volo_server_over_ttheader() {
    let server = volo_server().await;
    let addr = Address::Tcp(server.addr);
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let client = EchoClient::new(&addr, Transport::TTHeader, Protocol::Binary, mode);

        let p = sample_payload(1 << 20);
        let got = client.echo(Context::default(), p.clone()).await;
        assert_eq!(got.unwrap(), p, "{mode:?}");
        assert_eq!(
            client.add(Context::default(), 40, 2).await.unwrap(),
            42,
            "{mode:?}"
        );
        client.ping(Context::default()).await.unwrap();

        let e = client
            .fail(Context::default(), 7, "boom")
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_deref()),
            (Some(7), Some("boom")),
            "{mode:?}"
        );

        let s = client
            .fail(Context::default(), -1, "undeclared")
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::Internal, "{mode:?}");
        assert_eq!(s.message(), "undeclared", "{mode:?}");

        // Concurrent calls: pipelined on one connection when multiplexed,
        // which Volo's ping-pong server answers in order.
        let sums = join_all((0..16i64).map(|i| {
            let client = client.clone();
            async move { client.add(Context::default(), i, 1000).await.unwrap() }
        }))
        .await;
        assert_eq!(
            sums,
            (0..16i64).map(|i| i + 1000).collect::<Vec<_>>(),
            "{mode:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_client_metainfo_crosses_to_volo_server_and_back() {
    let server = volo_server().await;
    let addr = Address::Tcp(server.addr);
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let client = EchoClient::new(&addr, Transport::TTHeader, Protocol::Binary, mode);
        let mut cx = Context::default();
        cx.metainfo.persistent.insert("k", "v");
        cx.metainfo.transient.insert("hop", "one");

        let (v, resp) = client.metainfo(cx.clone(), "k").await.unwrap();
        assert_eq!(v, "v", "{mode:?}");
        assert_eq!(
            resp.metainfo.backward.get("echo-k").map(|v| v.as_str()),
            Some("v"),
            "{mode:?}"
        );

        let (v, resp) = client.metainfo(cx, "hop").await.unwrap();
        assert_eq!(v, "one", "{mode:?}");
        assert_eq!(
            resp.metainfo.backward.get("echo-hop").map(|v| v.as_str()),
            Some("one"),
            "{mode:?}"
        );
        // Volo clears METAINFO between calls on a connection: nothing leaks.
        assert_eq!(resp.metainfo.backward.get("echo-k"), None, "{mode:?}");

        let (v, _) = client.metainfo(Context::default(), "k").await.unwrap();
        assert_eq!(v, "", "{mode:?}: a value leaked from an earlier call");
    }
}

/// Wait (bounded) until `notes` holds `n` entries; then what it holds.
async fn notes_when(n: usize, notes: impl Fn() -> Vec<String>) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = notes();
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// One-way calls from a Volo client reach the Weft server, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volo_oneway_calls_reach_a_weft_server_exactly_once() {
    for codec in [VoloCodec::TTHeaderFramed, VoloCodec::TTHeader] {
        let handler = EchoHandler::default();
        let notes = handler.notes.clone();
        let server = serve("127.0.0.1:0", ServerBuilder::new(), handler)
            .await
            .unwrap();
        let client = volo_client(socket_addr(server.local_addr()), codec);
        let sent: Vec<String> = (0..16).map(|i| format!("note {i}")).collect();
        for t in &sent {
            client.notify(t).await.unwrap();
        }
        // A two-way call after them: the one-way ones were not answered
        // into its place.
        assert_eq!(client.add(1, 2).await.unwrap(), 3);
        let got = notes_when(sent.len(), || {
            notes.try_lock().map(|n| n.clone()).unwrap_or_default()
        })
        .await;
        assert_eq!(sorted(got), sorted(sent.clone()), "{codec:?}");
        // And no more arrive (a duplicate would show after a round trip).
        client.ping().await.unwrap();
        assert_eq!(notes.lock().await.len(), sent.len(), "{codec:?}");
        server.shutdown().await;
    }
}

/// One-way calls from a Weft client reach the Volo server, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_oneway_calls_reach_a_volo_server_exactly_once() {
    let server = volo_server().await;
    let addr = Address::Tcp(server.addr);
    let mut all = Vec::new();
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let client = EchoClient::new(&addr, Transport::TTHeader, Protocol::Binary, mode);
        for i in 0..16 {
            let t = format!("{mode:?} note {i}");
            client.notify(Context::default(), &t).await.unwrap();
            all.push(t);
        }
        client.ping(Context::default()).await.unwrap();
    }
    let notes = server.notes.clone();
    let got = notes_when(all.len(), || notes.lock().unwrap().clone()).await;
    assert_eq!(sorted(got), sorted(all));
}

/// Volo's multiplexed client against a Weft server that answers out of
/// order (each call sleeps less than the one before it): every call gets
/// its own answer; the caller name and the deadline Volo sends arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volo_multiplexed_client_gets_its_own_answers_out_of_order() {
    let server = serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap();
    let client = volo_mux_client(socket_addr(server.local_addr()));
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let answers = join_all((0..16i32).map(|i| {
        let (client, order) = (client.clone(), order.clone());
        async move {
            let p = Payload {
                text: Some(format!("call {i}").into()),
                ..Default::default()
            };
            let got = client.slow(p, (16 - i) * 15).await.unwrap();
            order.lock().unwrap().push(i);
            got.text.map(|t| t.to_string()).unwrap_or_default()
        }
    }))
    .await;
    assert_eq!(
        answers,
        (0..16).map(|i| format!("call {i}")).collect::<Vec<_>>()
    );
    // The answers did come out of order: the last call sent finished first.
    let order = order.lock().unwrap().clone();
    assert_ne!(
        order,
        (0..16).collect::<Vec<_>>(),
        "answered in order: {order:?}"
    );

    assert_eq!(
        client.metainfo("@caller").await.unwrap(),
        "volo-mux-interop"
    );
    let ms: u64 = client
        .metainfo("@timeout_ms")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms > 0 && ms <= 30_000, "the server saw a {ms} ms deadline");
    server.shutdown().await;
}
