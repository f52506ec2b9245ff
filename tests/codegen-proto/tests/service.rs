//! A generated gRPC service over a real loopback socket: each of the four
//! method shapes through the generated server and client, the method
//! descriptors, and an unknown method.

use futures::StreamExt;
use weft::{
    core::{Context, ServerBuilder, Status},
    protobuf::{GrpcClient, MethodKind, ResponseStream, ServiceRequest, Streaming},
};
use weft_codegen_proto_tests::pb_features::weft::features::{
    Features, FeaturesClient, FeaturesRequest, FeaturesServer, Inner, Outer, FEATURES_CHAT,
    FEATURES_GET,
};

struct Handler;

fn outer(title: &str) -> Outer {
    Outer {
        title: title.to_string().into(),
        ..Default::default()
    }
}

impl Features for Handler {
    async fn get(&self, _cx: &mut Context, req: Inner) -> Result<Outer, Status> {
        Ok(Outer {
            inner: Some(req),
            ..outer("got")
        })
    }

    async fn upload(&self, _cx: &mut Context, mut reqs: Streaming<Inner>) -> Result<Outer, Status> {
        let mut names = Vec::new();
        while let Some(r) = reqs.message().await? {
            names.push(r.name.to_string());
        }
        Ok(outer(&names.join(",")))
    }

    async fn watch(&self, _cx: &mut Context, req: Inner) -> Result<ResponseStream<Outer>, Status> {
        let n = req.tags.len();
        Ok(Box::pin(futures::stream::iter(
            (0..n).map(|i| Ok(outer(&i.to_string()))),
        )))
    }

    async fn chat(
        &self,
        _cx: &mut Context,
        reqs: Streaming<Outer>,
    ) -> Result<ResponseStream<Outer>, Status> {
        Ok(Box::pin(
            reqs.map(|r| r.map(|m| outer(&format!("re: {}", m.title)))),
        ))
    }

    async fn r#type(&self, _cx: &mut Context, req: Inner) -> Result<Inner, Status> {
        Ok(req)
    }

    async fn new(&self, _cx: &mut Context, _req: Inner) -> Result<Inner, Status> {
        Err(Status::unimplemented("not here"))
    }
}

#[test]
fn descriptors_name_the_wire_paths() {
    assert_eq!(FeaturesRequest::SERVICE, "weft.features.Features");
    let paths: Vec<_> = FeaturesRequest::METHODS.iter().map(|m| m.path).collect();
    assert_eq!(
        paths,
        [
            "/weft.features.Features/Get",
            "/weft.features.Features/Upload",
            "/weft.features.Features/Watch",
            "/weft.features.Features/Chat",
            "/weft.features.Features/Type",
            "/weft.features.Features/New",
        ]
    );
    assert_eq!(FEATURES_GET.kind, MethodKind::Unary);
    assert_eq!(FEATURES_CHAT.kind, MethodKind::BidiStreaming);
    assert_eq!(
        FeaturesRequest::METHODS[1].kind,
        MethodKind::ClientStreaming
    );
    assert_eq!(
        FeaturesRequest::METHODS[2].kind,
        MethodKind::ServerStreaming
    );
}

#[tokio::test]
async fn every_method_shape_over_loopback() {
    let handle = FeaturesServer::new(Handler)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = FeaturesClient::new(GrpcClient::new(handle.local_addr().clone()));

    let req = Inner {
        name: "n".into(),
        tags: vec!["a".into(), "b".into(), "c".into()],
    };
    let got = client.get(Context::default(), &req).await.unwrap().message;
    assert_eq!(got.title, "got");
    assert_eq!(got.inner.as_ref(), Some(&req));

    let up = client
        .upload(
            Context::default(),
            futures::stream::iter(["x", "y"].map(|n| Inner {
                name: n.into(),
                tags: vec![],
            })),
        )
        .await
        .unwrap();
    assert_eq!(up.message.title, "x,y");

    let mut watched = client
        .watch(Context::default(), &req)
        .await
        .unwrap()
        .message;
    let mut titles = Vec::new();
    while let Some(m) = watched.message().await.unwrap() {
        titles.push(m.title.to_string());
    }
    assert_eq!(titles, ["0", "1", "2"]);

    let chat = client
        .chat(
            Context::default(),
            futures::stream::iter([outer("hi"), outer("bye")]),
        )
        .await
        .unwrap()
        .message;
    let replies: Vec<String> = chat.map(|r| r.unwrap().title.to_string()).collect().await;
    assert_eq!(replies, ["re: hi", "re: bye"]);

    // Keyword and reserved names: `r#type` in the handler, `new_` on the client.
    assert_eq!(
        client
            .r#type(Context::default(), &req)
            .await
            .unwrap()
            .message,
        req
    );
    let err = client.new_(Context::default(), &req).await.unwrap_err();
    assert_eq!(err.code(), weft::core::Code::Unimplemented, "{err}");
    handle.shutdown().await;
}

mod collisions {
    //! A service `Echo` beside messages named `EchoRequest`,
    //! `EchoResponse`, `EchoServer` and `EchoClient`: the generated items
    //! take `EchoService…` names (the module did not compile before).
    use weft::{
        core::{Context, ServerBuilder, Status},
        protobuf::{GrpcClient, ServiceRequest as _},
    };
    // The flat path: the package's module is re-exported from the file's.
    use weft_codegen_proto_tests::pb_collisions::{
        Echo, EchoClient, EchoRequest, EchoResponse, EchoServer, EchoServiceClient,
        EchoServiceRequest, EchoServiceServer,
    };

    struct Handler;

    impl Echo for Handler {
        async fn echo(&self, _cx: &mut Context, req: EchoRequest) -> Result<EchoResponse, Status> {
            Ok(EchoResponse {
                text: format!("re: {}", req.text).into(),
            })
        }

        async fn who(&self, _cx: &mut Context, req: EchoServer) -> Result<EchoClient, Status> {
            Ok(EchoClient {
                name: format!("client of {}", req.name).into(),
            })
        }
    }

    #[tokio::test]
    async fn generated_items_are_named_clear_of_the_files_messages() {
        assert_eq!(EchoServiceRequest::SERVICE, "weft.collisions.Echo");
        let handle = EchoServiceServer::new(Handler)
            .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = EchoServiceClient::new(GrpcClient::new(handle.local_addr().clone()));
        let got = client
            .echo(Context::default(), &EchoRequest { text: "hi".into() })
            .await
            .unwrap()
            .message;
        assert_eq!(got.text, "re: hi");
        let got = client
            .who(Context::default(), &EchoServer { name: "s".into() })
            .await
            .unwrap()
            .message;
        assert_eq!(got.name, "client of s");
        handle.shutdown().await;
    }
}
