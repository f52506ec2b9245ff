//! Weft's quickstart: the `Hello` service generated from `idl/hello.thrift`
//! by `weft-rpc-codegen` (in `build.rs`), and a handler for it.
//!
//! ```text
//! cargo run -p weft-example-hello --bin quickstart   # server and client in one process
//! cargo run -p weft-example-hello --bin server       # or apart
//! cargo run -p weft-example-hello --bin client
//! ```
//!
//! The generated client, built in one chain against a server on a free
//! port:
//!
//! ```
//! use weft::core::{Context, ServerBuilder};
//! use weft_example_hello::{Greeter, HelloClient, HelloLookupError, HelloServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = HelloServer::new(Greeter).serve(ServerBuilder::new(), &"127.0.0.1:0".parse()?).await?;
//! let client = HelloClient::builder("hello")
//!     .address(server.local_addr().to_string())
//!     .build()?;
//!
//! let g = client.greet("world".into(), 2).await?;
//! assert_eq!(g.count, Some(2));
//! // A declared exception is a variant of the method's error enum.
//! assert!(matches!(client.lookup("nobody".into()).await, Err(HelloLookupError::Missing(_))));
//! // `with_context` sends a context and returns the reply's.
//! let (_, reply) = client.with_context(&Context::default()).greet("again".into(), 1).await?;
//! assert_eq!(reply.peer.as_ref(), Some(server.local_addr()));
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![allow(missing_docs)]

mod gen {
    #![allow(missing_docs, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/hello.rs"));
}

pub use gen::hello::hello::*;

use weft::core::{faststr::FastStr, Context, Status};

/// The address the server and client binaries meet at.
pub const ADDRESS: &str = "127.0.0.1:9090";

/// Answers `Hello` calls.
#[derive(Debug, Clone, Default)]
pub struct Greeter;

impl Hello for Greeter {
    async fn greet(&self, cx: &mut Context, name: FastStr, times: i64) -> Result<Greeting, Status> {
        println!("server: greet({name:?}, {times}) from {:?}", cx.caller);
        Ok(Greeting {
            text: Some(format!("hello, {name}").into()),
            count: Some(times),
            tags: Some(vec!["weft".into(), "quickstart".into()]),
        })
    }

    async fn lookup(&self, cx: &mut Context, name: FastStr) -> Result<FastStr, HelloLookupError> {
        println!("server: lookup({name:?})");
        // Backward metainfo travels to the caller with the answer.
        cx.metainfo.backward.insert("served-by", "greeter");
        match name.as_str() {
            "weft" => Ok("an RPC framework".into()),
            _ => Err(HelloLookupError::Missing(NotFound { name: Some(name) })),
        }
    }

    async fn log(&self, _cx: &mut Context, line: FastStr) -> Result<(), Status> {
        println!("server: log({line:?})");
        Ok(())
    }
}

/// The client side of the quickstart: every kind of call, printed.
pub async fn talk(addr: &weft::core::Address) -> anyhow::Result<()> {
    // The common case: governance built in (5 s timeout, retries of what
    // is safe, balancing, breakers), TTHeader over one multiplexed
    // connection per instance.
    let client = HelloClient::builder("hello")
        .address(addr.to_string())
        .timeout(std::time::Duration::from_secs(2))
        .caller("quickstart-client")
        .build()?;

    let g = client.greet("world".into(), 3).await?;
    println!(
        "client: greet(\"world\", 3) -> {:?} (count {:?})",
        g.text, g.count
    );

    // A context of the caller's own goes in; the reply's comes back with
    // the answer (backward metainfo, the instance that answered).
    let mut cx = Context::default();
    cx.metainfo.persistent.insert("tenant", "demo");
    match client.with_context(&cx).lookup("weft".into()).await {
        Ok((v, reply)) => println!(
            "client: lookup(\"weft\") -> {v:?} from {:?}, backward {:?}",
            reply.peer,
            reply.metainfo.backward.get("served-by")
        ),
        Err(e) => anyhow::bail!("lookup(weft) failed: {e:?}"),
    }
    match client.lookup("nobody".into()).await {
        Err(HelloLookupError::Missing(e)) => {
            println!(
                "client: lookup(\"nobody\") -> declared exception NotFound({:?})",
                e.name
            )
        }
        other => anyhow::bail!("lookup(nobody) should throw NotFound, got {other:?}"),
    }

    client.log("one-way: no answer expected".into()).await?;
    println!("client: log(...) sent one-way");
    Ok(())
}
