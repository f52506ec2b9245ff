//! `HelloClient::builder`: the common-case client with governance built
//! in, over real loopback sockets.

use std::time::Duration;

use weft::client::BuildError;
use weft::core::{faststr::FastStr, Context, ServerBuilder, Status};
use weft::middleware::{RetryLayer, RetryPolicy};
use weft_example_hello::{Greeting, Hello, HelloClient, HelloLookupError, HelloServer};

/// Answers with the caller's name, so the test sees `.caller(..)` arrive.
#[derive(Clone, Default)]
struct Echo;

impl Hello for Echo {
    async fn greet(&self, cx: &mut Context, name: FastStr, times: i64) -> Result<Greeting, Status> {
        Ok(Greeting {
            text: Some(format!("{name} from {}", cx.caller).into()),
            count: Some(times),
            tags: None,
        })
    }
    async fn lookup(&self, _: &mut Context, name: FastStr) -> Result<FastStr, HelloLookupError> {
        Ok(name)
    }
    async fn log(&self, _: &mut Context, _: FastStr) -> Result<(), Status> {
        Ok(())
    }
}

#[tokio::test]
async fn three_addresses_one_dead_timeout_retry_caller() {
    let a = HelloServer::new(Echo)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = HelloServer::new(Echo)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // A port that refuses: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = HelloClient::builder("hello")
        .addresses([
            a.local_addr().to_string(),
            b.local_addr().to_string(),
            dead.to_string(),
        ])
        .timeout(Duration::from_secs(2))
        .retry(RetryLayer::new(RetryPolicy::default().max_attempts(3)).idempotent(["greet"]))
        .caller("builder-test")
        .build()
        .unwrap();
    for i in 0..30 {
        let g = client.greet("world".into(), i).await.unwrap();
        assert_eq!(g.text.as_deref(), Some("world from builder-test"));
        assert_eq!(g.count, Some(i));
    }
    assert_eq!(&*client.lookup("x".into()).await.unwrap(), "x");
    client.log("line".into()).await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_host_name_address_works() {
    let server = HelloServer::new(Echo)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = server
        .local_addr()
        .to_string()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let client = HelloClient::builder("hello")
        .address(format!("localhost:{port}"))
        .build()
        .unwrap();
    let g = client.greet("n".into(), 1).await.unwrap();
    assert_eq!(g.count, Some(1));
    server.shutdown().await;
}

#[tokio::test]
async fn bad_configuration_is_an_error_not_a_panic() {
    let err = HelloClient::builder("hello").build().unwrap_err();
    assert!(matches!(err, BuildError::NoAddress { .. }), "{err}");
    assert!(err.to_string().contains(".address("), "{err}");
    let none: [&str; 0] = [];
    let err = HelloClient::builder("hello")
        .addresses(none)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::NoAddress { .. }), "{err}");
    let err = HelloClient::builder("hello")
        .addresses(["127.0.0.1:9090", "not an address"])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("not an address"), "{err}");
}

#[test]
fn build_outside_a_runtime_is_an_error() {
    let err = HelloClient::builder("hello")
        .address("127.0.0.1:9090")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::NoRuntime), "{err}");
}
