//! A service `Echo` beside IDL items named `EchoRequest`, `EchoResponse`,
//! `EchoServer` and `EchoClient` (`idl/collisions.thrift`): the generated
//! entry enums, server and client take `EchoService…` names instead of
//! clashing with them (the module did not compile before), and the calls
//! work over a loopback socket with the IDL's own types.

use std::time::Duration;

use weft::core::{Context, ServerBuilder};
use weft_codegen_tests::collisions::collisions::{
    Echo, EchoClient, EchoEchoError, EchoRequest, EchoResponse, EchoServer, EchoServiceClient,
    EchoServiceRequest, EchoServiceServer,
};

struct Handler;

impl Echo for Handler {
    async fn echo(
        &self,
        _cx: &mut Context,
        req: EchoRequest,
        from: EchoServer,
    ) -> Result<EchoResponse, EchoEchoError> {
        if req.text.as_deref() == Some("fail") {
            return Err(EchoEchoError::Oops(EchoClient {
                why: from.name.clone(),
            }));
        }
        Ok(EchoResponse {
            text: Some(
                format!(
                    "{} from {}",
                    req.text.unwrap_or_default(),
                    from.name.unwrap_or_default()
                )
                .into(),
            ),
        })
    }
}

#[tokio::test]
async fn generated_items_are_named_clear_of_the_idls_own() {
    let server = EchoServiceServer::new(Handler)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = EchoServiceClient::builder("Echo")
        .address(server.local_addr().to_string())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let from = EchoServer {
        name: Some("rust".into()),
    };
    let got = client
        .echo(
            EchoRequest {
                text: Some("hi".into()),
            },
            from.clone(),
        )
        .await
        .unwrap();
    assert_eq!(got.text.as_deref(), Some("hi from rust"));
    match client
        .echo(
            EchoRequest {
                text: Some("fail".into()),
            },
            from,
        )
        .await
    {
        Err(EchoEchoError::Oops(EchoClient { why })) => assert_eq!(why.as_deref(), Some("rust")),
        other => panic!("expected the declared EchoClient exception, got {other:?}"),
    }
    assert_eq!(
        EchoServiceRequest::Echo(Default::default()).method(),
        "echo"
    );
    server.shutdown().await;
}
