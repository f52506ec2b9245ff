//! `/loglevel` over HTTP: the admin endpoint switches the program's own
//! `tracing_subscriber::reload` filter at run time, and refuses what the
//! filter cannot parse.

#![cfg(feature = "admin")]

use std::{
    str::FromStr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{level_filters::LevelFilter, Event, Subscriber};
use tracing_subscriber::{layer::Context, prelude::*, reload, Layer};
use weft_middleware::observe::admin::Admin;

/// Counts the events that pass the filter, by their message's tag.
#[derive(Clone, Default)]
struct Count(Arc<AtomicUsize>);

impl<S: Subscriber> Layer<S> for Count {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "loglevel_probe" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `method path` over a fresh HTTP/1.1 connection: (status, body).
async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

#[tokio::test]
async fn put_loglevel_switches_the_programs_reload_filter() {
    let (filter, handle) = reload::Layer::new(LevelFilter::INFO);
    let count = Count::default();
    tracing_subscriber::registry()
        .with(count.clone().with_filter(filter))
        .init();
    let admin = Admin::new()
        .log_filter("info", move |directive: &str| {
            let level = LevelFilter::from_str(directive).map_err(|e| e.to_string())?;
            handle.reload(level).map_err(|e| e.to_string())
        })
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = admin.local_addr();
    // The callsite's interest is re-evaluated on reload, so one macro is
    // enough to see both levels.
    let probe = || tracing::debug!(target: "loglevel_probe", "probe");

    probe();
    assert_eq!(count.0.load(Ordering::SeqCst), 0, "debug is off at info");
    assert_eq!(
        request(addr, "GET", "/loglevel").await,
        (200, "info\n".into())
    );

    assert_eq!(
        request(addr, "PUT", "/loglevel?filter=debug").await,
        (200, "debug\n".into())
    );
    probe();
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "debug is on");
    assert_eq!(
        request(addr, "GET", "/loglevel").await,
        (200, "debug\n".into())
    );

    // Refused: the filter stays as it was.
    let (status, body) = request(addr, "PUT", "/loglevel?filter=loud%20please").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad filter \"loud please\""), "{body}");
    let (status, _) = request(addr, "PUT", "/loglevel?filter=%zz").await;
    assert_eq!(status, 400);
    let (status, _) = request(addr, "PUT", "/loglevel").await;
    assert_eq!(status, 400);
    let (status, _) = request(addr, "DELETE", "/loglevel").await;
    assert_eq!(status, 405);
    probe();
    assert_eq!(count.0.load(Ordering::SeqCst), 2, "still debug");

    // POST works too, and back to warn turns debug off again.
    assert_eq!(
        request(addr, "POST", "/loglevel?filter=WARN").await,
        (200, "WARN\n".into())
    );
    probe();
    assert_eq!(count.0.load(Ordering::SeqCst), 2, "debug is off at warn");
    // The other paths are still GET only.
    assert_eq!(request(addr, "PUT", "/healthz").await.0, 405);
    admin.shutdown().await;
}

#[tokio::test]
async fn loglevel_is_not_found_without_a_switch() {
    let admin = Admin::new()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        request(admin.local_addr(), "PUT", "/loglevel?filter=debug")
            .await
            .0,
        404
    );
    admin.shutdown().await;
}
