//! Rust keywords as IDL names (`idl/keywords.thrift`): the generated code
//! compiles (this file builds against it), and every method answers over
//! a real loopback socket under its IDL name on the wire.

use std::time::Duration;

use tokio::sync::mpsc;
use weft::core::{faststr::FastStr, Context, ServerBuilder, Status};
use weft_codegen_tests::keywords::keywords::{
    Fail, Item, Keywords, KeywordsClient, KeywordsMatchError, KeywordsRequest, KeywordsServer, Kind,
};

/// Answers each call with its wire method name in the reply, so the test
/// sees both the Rust name it called and the name that travelled.
#[derive(Clone)]
struct Handler {
    oneway: mpsc::UnboundedSender<(FastStr, FastStr)>,
}

impl Keywords for Handler {
    async fn r#match(
        &self,
        cx: &mut Context,
        self_: Item,
        r#type: FastStr,
        crate_: i32,
    ) -> Result<Item, KeywordsMatchError> {
        if r#type == "fail" {
            return Err(KeywordsMatchError::Super(Fail {
                r#type: Some(cx.method.clone()),
            }));
        }
        Ok(Item {
            r#type: Some(format!("{}:{type}", cx.method, type = r#type).into()),
            r#match: self_.r#match.map(|m| m + crate_),
            r#async: Some(Kind::SUPER),
            ..self_
        })
    }
    async fn r#type(
        &self,
        cx: &mut Context,
        r#async: FastStr,
        super_: FastStr,
        self_: FastStr,
    ) -> Result<FastStr, Status> {
        Ok(format!("{}:{async}{super_}{self_}", cx.method, async = r#async).into())
    }
    async fn self_(&self, cx: &mut Context, r#loop: FastStr) -> Result<(), Status> {
        let _ = self.oneway.send((cx.method.clone(), r#loop));
        Ok(())
    }
    async fn r#async(&self, _: &mut Context) -> Result<(), Status> {
        Ok(())
    }
    async fn crate_(&self, _: &mut Context, r#move: Kind) -> Result<i32, Status> {
        Ok(r#move.inner())
    }
    async fn super_(&self, cx: &mut Context) -> Result<FastStr, Status> {
        Ok(cx.method.clone())
    }
    async fn Self_(&self, cx: &mut Context) -> Result<FastStr, Status> {
        Ok(cx.method.clone())
    }
    async fn call(&self, cx: &mut Context, r#in: FastStr) -> Result<FastStr, Status> {
        Ok(format!("{}:{in}", cx.method, in = r#in).into())
    }
}

#[tokio::test]
async fn keyword_names_compile_and_travel_under_their_idl_names() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = KeywordsServer::new(Handler { oneway: tx })
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = KeywordsClient::builder("keywords")
        .address(server.local_addr().to_string())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let item = Item {
        r#type: Some("t".into()),
        r#match: Some(40),
        self_: Some("s".into()),
        crate_: Some("c".into()),
        ..Default::default()
    };
    let got = client.r#match(item.clone(), "x".into(), 2).await.unwrap();
    assert_eq!(got.r#type.as_deref(), Some("match:x"));
    assert_eq!(got.r#match, Some(42));
    assert_eq!(got.self_.as_deref(), Some("s"));
    assert_eq!(got.crate_.as_deref(), Some("c"));
    assert_eq!(got.r#async, Some(Kind::SUPER));
    match client.r#match(item, "fail".into(), 0).await {
        Err(KeywordsMatchError::Super(f)) => assert_eq!(f.r#type.as_deref(), Some("match")),
        other => panic!("expected the declared exception, got {other:?}"),
    }

    let t = client
        .r#type("a".into(), "b".into(), "c".into())
        .await
        .unwrap();
    assert_eq!(&*t, "type:abc");
    client.r#async().await.unwrap();
    assert_eq!(client.crate_(Kind::CRATE).await.unwrap(), 6);
    assert_eq!(&*client.super_().await.unwrap(), "super");
    assert_eq!(&*client.Self_().await.unwrap(), "Self");
    // `call` is a client helper too: the typed call is `call_`.
    assert_eq!(&*client.call_("i".into()).await.unwrap(), "call:i");

    client.self_("l".into()).await.unwrap();
    let (method, line) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&*method, &*line), ("self", "l"));

    // The entry messages name the IDL methods, not the Rust ones.
    let names: Vec<&str> = [
        KeywordsRequest::Match(Default::default()),
        KeywordsRequest::self_(Default::default()),
        KeywordsRequest::Self_(Default::default()),
    ]
    .iter()
    .map(|r| r.method())
    .collect();
    assert_eq!(names, ["match", "self", "Self"]);
    // Debug prints the IDL's spelling, not the Rust one (`SUPER`, `Self_`).
    assert_eq!(format!("{:?}", Kind::SUPER), "super");
    assert_eq!(format!("{:?}", Kind::Self_), "Self");
    assert_eq!(format!("{:?}", Kind::self_), "self");
    server.shutdown().await;
}
