//! Every Users call through the builder client (a timeout, retries, three
//! addresses of which one refuses), each answer checked:
//! `cargo run --example check -- ADDR ADDR ADDR`. Exits non-zero on the
//! first wrong answer.

use std::time::Duration;

use users_svc::generated::users::{Place, State, UsersClient, UsersCreateError, UsersGetError};
use weft::middleware::{RetryLayer, RetryPolicy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addrs: Vec<String> = std::env::args().skip(1).collect();
    assert_eq!(addrs.len(), 3, "three addresses");
    let client = UsersClient::builder("users")
        .addresses(addrs)
        .timeout(Duration::from_secs(5))
        .retry(RetryLayer::new(RetryPolicy::default().max_attempts(3)).idempotent(["get", "scores"]))
        .caller("newcomer")
        .build()?;

    // Enough calls that every address is picked, the refusing one too.
    for id in 0..20i64 {
        let u = client.get(id).await?;
        assert_eq!(u.id, id);
        assert_eq!(&*u.name, format!("user-{id}"));
        let want = if id % 2 == 0 { State::ACTIVE } else { State::SUSPENDED };
        assert_eq!(u.state, Some(want));
        assert_eq!(u.tags.as_deref().map(|t| t.len()), Some(2));
        assert_eq!(u.scores.as_ref().and_then(|s| s.get("id")).copied(), Some(id as i32));
        let place = u.place.expect("place");
        assert_eq!(&*place.city, "Lyon");
        assert_eq!(place.zip, None);
    }
    match client.get(-1).await {
        Err(UsersGetError::Missing(e)) => assert_eq!(e.id, Some(-1)),
        other => panic!("get(-1) should throw NotFound, got {other:?}"),
    }

    let place = Place { city: "Oslo".into(), zip: Some("0150".into()) };
    let u = client.create("ada".into(), vec!["x".into()], place.clone()).await?;
    assert_eq!((u.id, &*u.name), (7, "ada"));
    assert_eq!(u.place, Some(place.clone()));
    assert_eq!(u.tags.as_deref().map(|t| t.len()), Some(1));
    match client.create("".into(), vec![], place).await {
        Err(UsersCreateError::Invalid(e)) => assert_eq!(e.reason.as_deref(), Some("empty name")),
        other => panic!("create(\"\") should throw Invalid, got {other:?}"),
    }

    let s = client.scores(vec![1, 2, 30]).await?;
    assert_eq!(s.len(), 3);
    assert_eq!((s["1"], s["2"], s["30"]), (2, 4, 60));

    // The typed call with a context returns the reply's context: the peer.
    let cx = weft::core::Context::default();
    let (_, reply) = client.with_context(&cx).get(3).await?;
    assert!(reply.peer.is_some(), "the reply names its peer");

    client.audit("newcomer was here".into()).await?;
    println!("newcomer: every call answered as expected");
    Ok(())
}
