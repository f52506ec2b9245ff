//! The quickstart's calls, checked: generated server and client over a real
//! socket, a declared exception included. Every value the quickstart
//! prints is compared with what the handler answers, and the server is
//! seen to receive what the client sent, the one-way call included.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use weft::core::{faststr::FastStr, Context, ServerBuilder, Status};
use weft_example_hello::{
    talk, Greeter, Greeting, Hello, HelloLookupError, HelloServer, NotFound, Transcript,
};

/// The quickstart's handler, recording each call as the server saw it.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn saw(&self, cx: &Context, call: String) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("{call} from {}", cx.caller));
    }
}

impl Hello for Recorder {
    async fn greet(&self, cx: &mut Context, name: FastStr, times: i64) -> Result<Greeting, Status> {
        self.saw(cx, format!("greet({name}, {times})"));
        Greeter.greet(cx, name, times).await
    }

    async fn lookup(&self, cx: &mut Context, name: FastStr) -> Result<FastStr, HelloLookupError> {
        let tenant = cx.metainfo.persistent.get("tenant").cloned();
        self.saw(cx, format!("lookup({name}) tenant {tenant:?}"));
        Greeter.lookup(cx, name).await
    }

    async fn log(&self, cx: &mut Context, line: FastStr) -> Result<(), Status> {
        self.saw(cx, format!("log({line})"));
        Greeter.log(cx, line).await
    }
}

#[tokio::test]
async fn the_quickstart_conversation_succeeds() {
    let recorder = Recorder::default();
    let server = HelloServer::new(recorder.clone())
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let transcript = talk(server.local_addr()).await.unwrap();
    assert_eq!(
        transcript,
        Transcript {
            greeting: Greeting {
                text: Some("hello, world".into()),
                count: Some(3),
                tags: Some(vec!["weft".into(), "quickstart".into()]),
            },
            found: "an RPC framework".into(),
            served_by: Some("greeter".into()),
            answered_by: Some(server.local_addr().clone()),
            missing: NotFound {
                name: Some("nobody".into()),
            },
        }
    );

    // The one-way call has no answer to wait for: wait for the server to
    // have run it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while recorder.seen.lock().unwrap().len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the one-way call never reached the handler: {:?}",
            recorder.seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        *recorder.seen.lock().unwrap(),
        [
            "greet(world, 3) from quickstart-client",
            "lookup(weft) tenant Some(\"demo\") from quickstart-client",
            "lookup(nobody) tenant None from quickstart-client",
            "log(one-way: no answer expected) from quickstart-client",
        ]
    );
    server.shutdown().await;
}
