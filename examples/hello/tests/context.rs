//! Typed calls with a context: `client.with_context(&cx).method(..)` sends
//! the caller's context and returns the reply's (backward metainfo, the
//! peer that answered), over real loopback sockets.

use std::time::Duration;

use weft::core::{faststr::FastStr, Context, ServerBuilder, Status};
use weft_example_hello::{Greeting, Hello, HelloClient, HelloLookupError, HelloServer};

/// Answers with what came in and sets backward metainfo on the way out.
#[derive(Clone, Default)]
struct Mirror;

impl Hello for Mirror {
    async fn greet(&self, cx: &mut Context, name: FastStr, times: i64) -> Result<Greeting, Status> {
        let tenant = cx.metainfo.persistent.get("tenant").cloned();
        cx.metainfo.backward.insert("served-by", "mirror");
        cx.metainfo
            .backward
            .insert("tenant-seen", tenant.unwrap_or_default());
        Ok(Greeting {
            text: Some(format!("{name} from {}", cx.caller).into()),
            count: Some(times),
            tags: None,
        })
    }
    async fn lookup(&self, cx: &mut Context, name: FastStr) -> Result<FastStr, HelloLookupError> {
        cx.metainfo.backward.insert("served-by", "mirror");
        Ok(name)
    }
    async fn log(&self, _: &mut Context, _: FastStr) -> Result<(), Status> {
        Ok(())
    }
}

#[tokio::test]
async fn backward_metainfo_and_peer_come_back_through_the_typed_call() {
    let server = HelloServer::new(Mirror)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = HelloClient::builder("hello")
        .address(server.local_addr().to_string())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();

    let mut cx = Context::default();
    cx.caller = "context-test".into();
    cx.metainfo.persistent.insert("tenant", "acme");
    let (g, reply) = client
        .with_context(&cx)
        .greet("world".into(), 7)
        .await
        .unwrap();
    assert_eq!(g.text.as_deref(), Some("world from context-test"));
    assert_eq!(g.count, Some(7));
    assert_eq!(
        reply.metainfo.backward.get("served-by").map(|v| v.as_str()),
        Some("mirror")
    );
    assert_eq!(
        reply
            .metainfo
            .backward
            .get("tenant-seen")
            .map(|v| v.as_str()),
        Some("acme")
    );
    assert_eq!(reply.peer.as_ref(), Some(server.local_addr()));
    // The caller's context is borrowed, not consumed or changed.
    assert!(cx.metainfo.backward.is_empty());

    // The view is reusable; a second call answers on its own.
    let view = client.with_context(&cx);
    let (v, reply) = view.lookup("x".into()).await.unwrap();
    assert_eq!(&*v, "x");
    assert_eq!(
        reply.metainfo.backward.get("served-by").map(|v| v.as_str()),
        Some("mirror")
    );
    assert!(reply.metainfo.backward.get("tenant-seen").is_none());

    // The common case takes no context at all.
    let g = client.greet("plain".into(), 1).await.unwrap();
    assert_eq!(g.text.as_deref(), Some("plain from "));
    server.shutdown().await;
}

#[tokio::test]
async fn a_context_deadline_is_kept() {
    let server = HelloServer::new(Mirror)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = HelloClient::builder("hello")
        .address(server.local_addr().to_string())
        .build()
        .unwrap();
    // An already-expired deadline fails the call before it is sent.
    let mut cx = Context::default();
    cx.deadline = Some(tokio::time::Instant::now() - Duration::from_millis(1));
    let err = client
        .with_context(&cx)
        .greet("late".into(), 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), weft::core::Code::DeadlineExceeded, "{err}");
    server.shutdown().await;
}
