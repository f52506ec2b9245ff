//! The Users server a newcomer writes into the crate `weft init` made:
//! `users-svc ADDRESS`; one-way `audit` lines are appended to the file
//! named by `NEWCOMER_AUDIT`.

use std::io::Write as _;

use users_svc::generated::users::{
    Invalid, NotFound, Place, State, User, Users, UsersCreateError, UsersGetError, UsersServer,
};
use weft::core::{faststr::FastStr, Context, ServerBuilder, Status};
use weft::thrift::pilota::AHashMap;

#[derive(Debug, Clone, Default)]
struct Handler;

impl Users for Handler {
    async fn get(&self, _cx: &mut Context, id: i64) -> Result<User, UsersGetError> {
        if id < 0 {
            return Err(UsersGetError::Missing(NotFound { id: Some(id) }));
        }
        let mut scores = AHashMap::default();
        scores.insert(FastStr::from("id"), id as i32);
        Ok(User {
            id,
            name: format!("user-{id}").into(),
            state: Some(if id % 2 == 0 { State::ACTIVE } else { State::SUSPENDED }),
            tags: Some(vec!["a".into(), "b".into()]),
            scores: Some(scores),
            place: Some(Place { city: "Lyon".into(), zip: None }),
        })
    }

    async fn create(
        &self,
        _cx: &mut Context,
        name: FastStr,
        tags: Vec<FastStr>,
        place: Place,
    ) -> Result<User, UsersCreateError> {
        if name.is_empty() {
            return Err(UsersCreateError::Invalid(Invalid { reason: Some("empty name".into()) }));
        }
        Ok(User {
            id: 7,
            name,
            state: Some(State::ACTIVE),
            tags: Some(tags),
            scores: None,
            place: Some(place),
        })
    }

    async fn scores(&self, _cx: &mut Context, ids: Vec<i64>) -> Result<AHashMap<FastStr, i32>, Status> {
        Ok(ids.iter().map(|id| (FastStr::from(id.to_string()), (*id * 2) as i32)).collect())
    }

    async fn audit(&self, _cx: &mut Context, line: FastStr) -> Result<(), Status> {
        if let Some(path) = std::env::var_os("NEWCOMER_AUDIT") {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Status::internal(e.to_string()))?;
            writeln!(f, "{line}").map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: weft::core::Address = std::env::args().nth(1).ok_or("usage: users-svc ADDRESS")?.parse()?;
    let server = UsersServer::new(Handler).serve(ServerBuilder::new(), &addr).await?;
    println!("listening on {}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
