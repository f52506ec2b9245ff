//! One client connection carries the calls of several services, and a Weft
//! server serves several services on one connection: the cross-test
//! clients of `ThriftTest` and `SecondService`, split from one Weft client,
//! against the Weft cross-test server on loopback, which counts the
//! connections it accepts. (Against Apache's single-threaded Python
//! `TSimpleServer`, see `cross_test.rs`.)

use std::time::Duration;

use weft::{
    core::{faststr::FastStr, Address, ClientBuilder, ConnectionMode, Context},
    thrift::{route, Protocol, ThriftClientCodec, Transport},
};
use weft_codegen_tests::{
    cross::{self, CrossRequest, CrossResponse},
    thrift_test::thrifttest::{SecondServiceClient, ThriftTestClient},
};

const TRANSPORTS: [Transport; 5] = [
    Transport::Framed,
    Transport::Buffered,
    Transport::TTHeader,
    Transport::THeader,
    Transport::FramedTHeader,
];

fn loopback() -> Address {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn both_services_share_one_pooled_connection_on_every_transport() {
    for transport in TRANSPORTS {
        for protocol in [Protocol::Binary, Protocol::Compact] {
            for multiplexed in [true, false] {
                let what = format!("{transport:?}/{protocol:?}, multiplexed={multiplexed}");
                let server = cross::serve(&loopback()).await.unwrap();
                let (first, second) =
                    cross::clients(server.local_addr(), protocol, multiplexed, transport);
                let errors = cross::battery(&first, Some(&second)).await;
                assert!(errors.is_empty(), "{what}: {errors:?}");
                // And once more in the other order.
                let v = second.secondtest_string("bar".into()).await.unwrap();
                assert_eq!(v, "testString(\"bar\")", "{what}");
                first.test_void().await.unwrap();
                assert_eq!(server.accepted(), 1, "{what}: connections accepted");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_of_both_services_share_one_multiplexed_connection() {
    for transport in [
        Transport::TTHeader,
        Transport::THeader,
        Transport::FramedTHeader,
    ] {
        let server = cross::serve(&loopback()).await.unwrap();
        let builder = ClientBuilder::new(server.local_addr().clone())
            .mode(ConnectionMode::Multiplexed)
            .timeout(Duration::from_secs(10));
        let codec = ThriftClientCodec::<CrossRequest, CrossResponse>::new(
            transport,
            Protocol::Binary,
            builder.limits_ref(),
        )
        .multiplexed_per_call();
        let (first, second) = route::split(builder.build(codec));
        let (first, second) = (
            ThriftTestClient::from_service(first),
            SecondServiceClient::from_service(second),
        );
        let mut calls = Vec::new();
        for i in 0..50 {
            let (first, second) = (first.clone(), second.clone());
            calls.push(tokio::spawn(async move {
                let s = FastStr::new(format!("s{i}"));
                let a = first.test_string(s.clone()).await?;
                let b = second.secondtest_string(s).await?;
                Ok::<_, weft::core::Status>((a, b))
            }));
        }
        for (i, call) in calls.into_iter().enumerate() {
            let (a, b) = call.await.unwrap().unwrap();
            assert_eq!(a, format!("s{i}"), "{transport:?}");
            assert_eq!(b, format!("testString(\"s{i}\")"), "{transport:?}");
        }
        assert_eq!(server.accepted(), 1, "{transport:?}: connections accepted");
    }
}

/// A call whose context names another service goes to that service, which
/// refuses a method it does not have.
#[tokio::test]
async fn a_context_naming_the_other_service_is_an_error() {
    let server = cross::serve(&loopback()).await.unwrap();
    let (first, _) = cross::clients(
        server.local_addr(),
        Protocol::Binary,
        true,
        Transport::Framed,
    );
    let mut cx = Context::default();
    cx.service = FastStr::from_static_str("SecondService");
    let e = first
        .with_context(&cx)
        .test_void()
        .await
        .map(|(v, _)| v)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("SecondService has no method testVoid"),
        "{e}"
    );
}
