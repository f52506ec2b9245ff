//! The soak test's server process: three servers on loopback ports, each
//! serving the Thrift `Echo` service and the gRPC `Greeter` on one port.
//!
//! Prints `PORT n` for each, then `READY`, then once a second a
//! `SAMPLE rss_kib fds tasks` line of this process and `NOTIFIES n` (oneway
//! calls received so far). Stops gracefully when its standard input closes,
//! and prints `DONE notifies`.

use std::{
    future::Future,
    io::{BufRead, Write},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use tower::Service;
use weft::{
    core::{Address, Context, Limits, Request, Response, ServerBuilder, Status},
    protobuf::GrpcServer,
    thrift::ThriftServerCodec,
};
use weft_example_grpc_hello::{GreeterServer, Hello};
use weft_interop::{EchoHandler, EchoNotifyResultSend, EchoRequest, EchoResponse};
use weft_soak::Sample;

/// The echo handler, except that oneway `notify` calls are counted rather
/// than kept: the interop handler stores every note, which over a soak is
/// growth by design.
#[derive(Clone)]
struct Counting {
    inner: EchoHandler,
    notifies: Arc<AtomicU64>,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<EchoResponse>, Status>> + Send>>;

impl Service<Request<EchoRequest>> for Counting {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<EchoRequest>) -> BoxFuture {
        if let EchoRequest::Notify(_) = req.message {
            self.notifies.fetch_add(1, Ordering::SeqCst);
            let cx = Context::new(req.cx.service.clone(), req.cx.method.clone());
            let resp = Response::new(cx, EchoResponse::Notify(EchoNotifyResultSend::Ok(())));
            return Box::pin(std::future::ready(Ok(resp)));
        }
        self.inner.call(req)
    }
}

#[tokio::main(worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let notifies = Arc::new(AtomicU64::new(0));
    let mut servers = Vec::new();
    let addr: Address = "127.0.0.1:0".parse()?;
    for _ in 0..3 {
        let handler = Counting {
            inner: EchoHandler::default(),
            notifies: notifies.clone(),
        };
        let limits = Limits::default();
        let grpc = GreeterServer::new(Hello).register(GrpcServer::new());
        let server = ServerBuilder::new()
            .protocol(grpc)
            .serve(
                &addr,
                move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
                handler,
            )
            .await?;
        println!("PORT {}", server.local_addr());
        servers.push(server);
    }
    println!("READY");
    std::io::stdout().flush()?;

    // Standard input closing is the signal to stop; a thread reads it, as
    // tokio's stdin is a blocking thread anyway.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while stdin.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
        let _ = stop_tx.send(());
    });

    let metrics = tokio::runtime::Handle::current().metrics();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let s = Sample::of_self(metrics.num_alive_tasks());
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", s.to_line())?;
                writeln!(out, "NOTIFIES {}", notifies.load(Ordering::SeqCst))?;
                out.flush()?;
            }
            _ = &mut stop_rx => break,
        }
    }
    for s in servers {
        s.shutdown().await;
    }
    println!("DONE {}", notifies.load(Ordering::SeqCst));
    Ok(())
}
