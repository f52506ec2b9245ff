//! What the Go and mesh tests share: the Rust services they call (an echo
//! server that reports the deadline it saw, a relay that forwards to a Go
//! server) and running the Go toolchain against this build's library.
#![allow(dead_code, unreachable_pub)]

use std::{
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    process::Command,
    task::{Context as TaskContext, Poll},
};

use tower::{Service, ServiceExt};
use weft_core::{
    Address, ConnectionMode, Context, Limits, Request, Response, ServerBuilder, ServerHandle,
    Status,
};
use weft_interop::{EchoClient, EchoHandler, EchoRequest, EchoResponse};
use weft_thrift::{Protocol, ThriftServerCodec, Transport};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The backward metainfo key under which [`DeadlineReporter`] sends the
/// time the server saw left before the call's deadline, in milliseconds.
pub const REMAINING_KEY: &str = "deadline-remaining-ms";

/// weft-interop's echo handler, answering every call with the time left
/// before its deadline ([`REMAINING_KEY`]) and the caller's name
/// (`caller`) as backward metainfo.
#[derive(Debug, Clone, Default)]
pub struct DeadlineReporter(pub EchoHandler);

impl Service<Request<EchoRequest>> for DeadlineReporter {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<EchoResponse>, Status>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let left = req.cx.remaining();
        let caller = req.cx.caller.clone();
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            if let Some(left) = left {
                resp.cx
                    .metainfo
                    .backward
                    .insert(REMAINING_KEY, left.as_millis().to_string());
            }
            if !caller.is_empty() {
                resp.cx.metainfo.backward.insert("caller", caller);
            }
            Ok(resp)
        })
    }
}

/// An Echo service that forwards each call with a Weft Rust client (over
/// TTHeader), in a child context (deadline and persistent metainfo carry
/// over), and returns the answer with its backward metainfo.
#[derive(Debug, Clone)]
pub struct Relay {
    client: EchoClient,
}

impl Relay {
    pub fn to(addr: &Address) -> Relay {
        Relay {
            client: EchoClient::new(
                addr,
                Transport::TTHeader,
                Protocol::Binary,
                ConnectionMode::Multiplexed,
            ),
        }
    }
}

impl Service<Request<EchoRequest>> for Relay {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<EchoResponse>, Status>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let client = self.client.inner.clone();
        Box::pin(async move {
            let Request { cx, message } = req;
            let mut child = cx.child(cx.service.clone(), cx.method.clone());
            child.oneway = cx.oneway;
            let resp = client.oneshot(Request::new(child, message)).await?;
            let mut out = Context::new(cx.service.clone(), cx.method.clone());
            out.metainfo.backward = resp.cx.metainfo.backward;
            Ok(Response::new(out, resp.message))
        })
    }
}

/// Serve `service` as Echo on `addr`.
pub async fn serve<S>(addr: &str, service: S) -> ServerHandle
where
    S: Service<Request<EchoRequest>, Response = Response<EchoResponse>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let limits = Limits::default();
    let addr: Address = addr.parse().unwrap();
    ServerBuilder::new()
        .serve(
            &addr,
            move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
            service,
        )
        .await
        .unwrap()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Where cargo put the `libweft.so` of this build: beside the test binary.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_path_buf();
    assert!(
        dir.join("libweft.so").exists(),
        "no libweft.so in {}",
        dir.display()
    );
    dir
}

pub fn go_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("go")
}

/// `go <args>` in ffi/go, linked against this build's library (rpath set,
/// so programs it builds find it too). A missing toolchain panics: the Go
/// binding is part of what this crate promises.
pub fn go(args: &[&str]) -> Command {
    let lib = lib_dir();
    let go = ["/usr/local/go/bin/go", "go"]
        .into_iter()
        .find(|g| {
            Command::new(g)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect(
            "no Go toolchain (go on PATH or /usr/local/go/bin/go): the Go binding's tests need one",
        );
    let mut cmd = Command::new(go);
    cmd.args(args)
        .current_dir(go_dir())
        .env("CGO_ENABLED", "1")
        // No VCS stamping of the binaries built here (a worktree or an
        // exported tree must build alike).
        .env("GOFLAGS", "-buildvcs=false")
        .env(
            "CGO_LDFLAGS",
            format!("-L{0} -Wl,-rpath,{0}", lib.display()),
        )
        .env("LD_LIBRARY_PATH", &lib);
    cmd
}
