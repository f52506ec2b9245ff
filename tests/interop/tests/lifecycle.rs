//! Graceful shutdown and multiplexing over real sockets.

use std::{sync::atomic::Ordering, time::Duration};

use weft::core::{Code, ConnectionMode, Context, ServerBuilder};
use weft::thrift::{Protocol, Transport};
use weft_interop::{serve, EchoClient, EchoHandler, Payload};

fn tagged(i: usize) -> Payload {
    Payload {
        text: Some(format!("call-{i}").into()),
        count: Some(i as i64),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_calls_and_refuses_new_connections() {
    let handler = EchoHandler::default();
    let server = serve("127.0.0.1:0", ServerBuilder::new(), handler.clone())
        .await
        .unwrap();
    let addr = server.local_addr().clone();
    // Half the calls multiplexed on one connection, half over pooled framed
    // connections, so both server paths drain.
    let mux = EchoClient::new(
        &addr,
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    let pooled = EchoClient::new(
        &addr,
        Transport::Framed,
        Protocol::Compact,
        ConnectionMode::Pooled,
    );
    let mut calls = Vec::new();
    for i in 0..100 {
        let client = if i % 2 == 0 {
            mux.clone()
        } else {
            pooled.clone()
        };
        calls.push(tokio::spawn(async move {
            client.slow(Context::default(), tagged(i), 400).await
        }));
    }
    // Wait (bounded) until every call is inside the handler.
    for _ in 0..500 {
        if handler.calls.load(Ordering::SeqCst) == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        100,
        "calls never all arrived"
    );
    assert_eq!(
        handler.completed.load(Ordering::SeqCst),
        0,
        "calls finished too early to test draining"
    );

    let shutdown = tokio::spawn(server.shutdown());
    // New connections are refused while the old ones drain.
    let mut refused = false;
    // Calls on connections accepted before the listener closed are served
    // (and counted by the handler); ones reset unread may or may not be.
    let (mut fresh_served, mut fresh_maybe) = (0, 0);
    for _ in 0..200 {
        let fresh = EchoClient::new(
            &addr,
            Transport::Framed,
            Protocol::Binary,
            ConnectionMode::Pooled,
        );
        match fresh.add(Context::default(), 1, 1).await {
            Err(e) => {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                // A connection the kernel completed just before the listener
                // closed is reset unread (the call may have been written, so
                // the client cannot claim otherwise); a refused one never
                // carried the call. Wait for the refusal.
                if e.is_not_sent() {
                    refused = true;
                    break;
                }
                fresh_maybe += 1;
            }
            Ok(_) => {
                fresh_served += 1;
                tokio::time::sleep(Duration::from_millis(2)).await
            }
        }
    }
    assert!(
        refused,
        "new connections were still accepted during shutdown"
    );
    assert!(
        handler.completed.load(Ordering::SeqCst) < 100,
        "drain ended before the check"
    );

    for (i, call) in calls.into_iter().enumerate() {
        let got = call
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("call {i} lost: {e:?}"));
        assert_eq!(got, tagged(i));
    }
    shutdown.await.unwrap();
    let completed = handler.completed.load(Ordering::SeqCst);
    assert!(
        (100 + fresh_served..=100 + fresh_served + fresh_maybe).contains(&completed),
        "{completed} calls completed: 100 in flight, {fresh_served} fresh ones served, \
         {fresh_maybe} fresh ones reset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_closes_calls_that_outlive_it() {
    let handler = EchoHandler::default();
    let server = serve(
        "127.0.0.1:0",
        ServerBuilder::new().drain_timeout(Duration::from_millis(200)),
        handler.clone(),
    )
    .await
    .unwrap();
    let client = EchoClient::new(
        server.local_addr(),
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    client.ping(Context::default()).await.unwrap();
    let long = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .slow(Context::default(), Payload::default(), 30_000)
                .await
        }
    });
    in_handler(&handler, 2).await;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown did not respect its drain deadline");
    let err = tokio::time::timeout(Duration::from_secs(10), long)
        .await
        .expect("the abandoned call never got an outcome")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_share_one_multiplexed_connection() {
    let server = serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap();
    for transport in [Transport::TTHeader, Transport::THeader] {
        let before = server.accepted();
        let client = EchoClient::new(
            server.local_addr(),
            transport,
            Protocol::Binary,
            ConnectionMode::Multiplexed,
        );
        let calls: Vec<_> = (0..1000)
            .map(|i| {
                let client = client.clone();
                // Varying delays make the server answer out of order.
                tokio::spawn(async move {
                    client
                        .slow(Context::default(), tagged(i), (i % 7) as i32)
                        .await
                })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(
                call.await.unwrap().unwrap(),
                tagged(i),
                "{transport:?} call {i}"
            );
        }
        assert_eq!(
            server.accepted() - before,
            1,
            "{transport:?} used more than one connection"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_deadline_passes_gets_deadline_exceeded_and_the_connection_lives_on() {
    let server = serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap();
    let client = EchoClient::new(
        server.local_addr(),
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_millis(50));
    let err = client
        .slow(cx, Payload::default(), 2_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    // The late answer is discarded; the next call on the connection is fine.
    assert_eq!(client.add(Context::default(), 2, 2).await.unwrap(), 4);
    assert_eq!(server.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_vanishes_mid_call_gives_a_definite_error() {
    let handler = EchoHandler::default();
    let server = serve("127.0.0.1:0", ServerBuilder::new(), handler.clone())
        .await
        .unwrap();
    let addr = server.local_addr().clone();
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let client = EchoClient::new(&addr, Transport::TTHeader, Protocol::Binary, mode);
        client.ping(Context::default()).await.unwrap();
    }
    let mux = EchoClient::new(
        &addr,
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    mux.ping(Context::default()).await.unwrap();
    let pending = tokio::spawn({
        let mux = mux.clone();
        async move {
            mux.slow(Context::default(), Payload::default(), 30_000)
                .await
        }
    });
    in_handler(&handler, 4).await;
    server.abort().await;
    let err = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the call never got an outcome")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(!err.is_not_sent(), "the request had reached the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_server_appears_once_listening_and_leaves_before_draining() {
    use std::sync::Arc;
    use weft::core::{Instance, StaticDiscover};

    let registry = Arc::new(StaticDiscover::new([]));
    let placeholder = Instance::new("127.0.0.1:1".parse().unwrap()).with_weight(7);
    let server = serve(
        "127.0.0.1:0",
        ServerBuilder::new()
            .register(registry.clone(), "Echo", placeholder)
            .deregister_grace(Duration::from_millis(300)),
        EchoHandler::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().clone();
    let set = registry.current();
    assert_eq!(set.len(), 1);
    assert_eq!((set[0].address.clone(), set[0].weight), (addr.clone(), 7));

    let client = EchoClient::new(
        &addr,
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    client.ping(Context::default()).await.unwrap();
    let shutdown = tokio::spawn(server.shutdown());
    // Deregistered at once, but still serving through the grace period.
    for _ in 0..100 {
        if registry.current().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        registry.current().is_empty(),
        "still registered during shutdown"
    );
    assert_eq!(client.add(Context::default(), 1, 2).await.unwrap(), 3);
    shutdown.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_new_connections_until_one_closes() {
    let limits = weft::core::Limits {
        max_connections: 1,
        ..weft::core::Limits::default()
    };
    let server = serve(
        "127.0.0.1:0",
        ServerBuilder::new().limits(limits),
        EchoHandler::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().clone();
    let first = EchoClient::new(
        &addr,
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    first.ping(Context::default()).await.unwrap();

    // A second connection waits in the backlog: its call times out.
    let second = EchoClient::new(
        &addr,
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_millis(300));
    let err = second.ping(cx).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(server.accepted(), 1);

    // The first client goes away; the waiting connection is taken and served.
    drop(first);
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_secs(5));
    second.ping(cx).await.unwrap();
    assert_eq!(server.accepted(), 2);
    server.shutdown().await;
}

/// Wait until `handler` has been called `n` times (the last call is then
/// inside it), polling, for at most 10 s.
async fn in_handler(handler: &EchoHandler, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handler.calls.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never reached the handler"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
