//! The chaos test's server process: the Thrift `Echo` service behind the
//! default server stack, on a loopback port, registered as `Echo` in etcd.
//!
//! `chaos-server <etcd-url> <port> <ttl-secs>` (port 0: any). Prints
//! `READY <port>` once it serves and is registered, then `RAN <id>` for
//! every `add` it runs (the id is the call's `a`), before the answer is
//! sent. Stops gracefully when its standard input closes (deregisters,
//! drains) and prints `DONE <adds run>`. Logs errors to standard error
//! (`WEFT_CHAOS_LOG=warn` for warnings too).

use std::{
    io::{BufRead, Write},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use anyhow::Context as _;
use tower::Service;
use weft::{
    core::{Address, Instance, Request, Response, ServerBuilder, Status},
    discovery::EtcdRegistry,
    middleware::ServerStack,
    thrift::ThriftServerCodec,
};
use weft_chaos::etcd_config;
use weft_interop::{EchoHandler, EchoRequest, EchoResponse};

/// The echo handler, with every `add` written to the ledger first.
#[derive(Clone)]
struct Ledgered {
    inner: EchoHandler,
    adds: Arc<AtomicU64>,
}

impl Service<Request<EchoRequest>> for Ledgered {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = <EchoHandler as Service<Request<EchoRequest>>>::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        if let EchoRequest::Add(a) = &req.message {
            self.adds.fetch_add(1, Ordering::SeqCst);
            // Through the pipe before the answer leaves: a SIGKILL after
            // this point cannot lose the record.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "RAN {}", a.a);
            let _ = out.flush();
        }
        self.inner.call(req)
    }
}

#[tokio::main(worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    // Errors only by default: discovery warns at every keep-alive retry,
    // which chaos makes many of. `WEFT_CHAOS_LOG=warn` shows them.
    let level = match std::env::var("WEFT_CHAOS_LOG").as_deref() {
        Ok("warn") => tracing::Level::WARN,
        Ok("info") => tracing::Level::INFO,
        _ => tracing::Level::ERROR,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let etcd = args.next().context("etcd url")?;
    let port: u16 = args.next().context("port")?.parse()?;
    let ttl: u64 = args.next().context("ttl")?.parse()?;
    let config = etcd_config().lease_ttl(Duration::from_secs(ttl));
    let registry = Arc::new(EtcdRegistry::connect(&[&etcd], config).await?);
    let adds = Arc::new(AtomicU64::new(0));
    let addr: Address = format!("127.0.0.1:{port}").parse()?;

    // A port just freed by a killed process can be taken for a moment
    // (the listener sets SO_REUSEADDR, so TIME_WAIT does not count).
    let mut tries = 0;
    let server = loop {
        let builder = ServerBuilder::new()
            .register(registry.clone(), "Echo", Instance::new(addr.clone()))
            .deregister_grace(Duration::from_millis(200))
            .drain_timeout(Duration::from_secs(2));
        let limits = builder.limits_ref().clone();
        let handler = ServerStack::new().concurrency_limit(256).build(Ledgered {
            inner: EchoHandler::default(),
            adds: adds.clone(),
        });
        match builder
            .serve(
                &addr,
                move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
                handler,
            )
            .await
        {
            Ok(s) => break s,
            Err(e) if tries < 100 => {
                tries += 1;
                eprintln!("chaos-server: serving {addr}: {e}; again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context(format!("serving {addr}")),
        }
    };
    let port = match server.local_addr() {
        Address::Tcp(a) => a.port(),
        other => anyhow::bail!("bound {other}"),
    };
    println!("READY {port}");
    std::io::stdout().flush()?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while stdin.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
        let _ = stop_tx.send(());
    });
    let _ = stop_rx.await;
    server.shutdown().await;
    println!("DONE {}", adds.load(Ordering::SeqCst));
    Ok(())
}
