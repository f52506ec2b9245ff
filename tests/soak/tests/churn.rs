//! A dropped client closes its connections: clients made and dropped one
//! after another, of every kind, leave no descriptors and no tasks behind in
//! the client or the server (the leak the soak's connection churn showed).

use std::time::{Duration, Instant};

use weft::{
    core::{Address, Context, Limits, ServerBuilder},
    protobuf::GrpcServer,
    thrift::ThriftServerCodec,
};
use weft_example_grpc_hello::{GreeterClient, GreeterServer, Hello, HelloRequest};
use weft_interop::{EchoClient, EchoHandler, EchoRequest, EchoResponse};
use weft_soak::Sample;

async fn server() -> weft::core::ServerHandle {
    let limits = Limits::default();
    ServerBuilder::new()
        .protocol(GreeterServer::new(Hello).register(GrpcServer::new()))
        .serve(
            &"127.0.0.1:0".parse::<Address>().unwrap(),
            move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
            EchoHandler::default(),
        )
        .await
        .unwrap()
}

fn now() -> Sample {
    Sample::of_self(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
    )
}

/// Waits (up to 5 s) for this process's fds and tasks to come back to
/// `base` plus a little slack; returns what they settled at.
async fn settles(base: Sample) -> Sample {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let s = now();
        if (s.fds <= base.fds + 2 && s.tasks <= base.tasks + 2) || Instant::now() > until {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// One test, the two halves in turn: both count this process's descriptors,
// so they must not run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_clients_close_their_connections() {
    thrift().await;
    grpc().await;
}

async fn thrift() {
    let srv = server().await;
    let addr = srv.local_addr().clone();
    let shapes = weft_soak::CHURN_SHAPES;
    for (t, p, m) in shapes {
        // One round first, so that whatever is made once is counted in the base.
        let c = EchoClient::new(&addr, t, p, m);
        c.add(Context::default(), 1, 2).await.unwrap();
        drop(c);
        let base = settles(now()).await;
        for i in 0..50 {
            let c = EchoClient::new(&addr, t, p, m);
            assert_eq!(c.add(Context::default(), i, 1).await.unwrap(), i + 1);
        }
        let after = settles(base).await;
        assert!(
            after.fds <= base.fds + 2 && after.tasks <= base.tasks + 2,
            "{t:?} {p:?} {m:?}: 50 dropped clients left fds {} → {}, tasks {} → {}",
            base.fds,
            after.fds,
            base.tasks,
            after.tasks
        );
    }
}

async fn grpc() {
    let srv = server().await;
    let addr = srv.local_addr().clone();
    let hello = HelloRequest {
        name: "x".into(),
        times: 0,
    };
    let c = GreeterClient::new(weft::protobuf::GrpcClient::new(addr.clone()));
    c.say_hello(Context::default(), &hello).await.unwrap();
    drop(c);
    let base = settles(now()).await;
    for _ in 0..50 {
        let c = GreeterClient::new(weft::protobuf::GrpcClient::new(addr.clone()));
        c.say_hello(Context::default(), &hello).await.unwrap();
    }
    let after = settles(base).await;
    assert!(
        after.fds <= base.fds + 2 && after.tasks <= base.tasks + 2,
        "50 dropped gRPC clients left fds {} → {}, tasks {} → {}",
        base.fds,
        after.fds,
        base.tasks,
        after.tasks
    );
}
