//! What peers get wrong is logged at warn, with the peer and the reason,
//! at most once a second per server: a flood of bad frames is neither
//! silent nor a flood of log lines.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::io::AsyncWriteExt;
use weft_core::ServerBuilder;

mod engine;

use engine::*;

/// Every event at warn or above, as one line of its fields.
#[derive(Debug, Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl tracing::field::Visit for Line<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = String::new();
        event.record(&mut Line(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A frame of an unknown kind: the codec fails the stream.
fn unreadable(seq: u32) -> Vec<u8> {
    let mut f = frame(CALL, seq, 0, b"x");
    f[4] = 9;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_warned_of_with_peer_and_reason_once_a_second() {
    let warnings = Warnings::default();
    // The server's connections run on the runtime's threads: global.
    tracing::subscriber::set_global_default(warnings.clone()).unwrap();
    let srv = start(ServerBuilder::new(), false).await;

    // Fifty peers each send a frame of a kind the codec cannot read at all.
    let mut peers = Vec::new();
    for i in 0..50 {
        let mut s = connect(&srv.handle).await;
        peers.push(s.local_addr().unwrap());
        s.write_all(&unreadable(i)).await.unwrap();
        // Each is closed: the read ends.
        assert_eq!(answer(&mut s, &mut bytes::BytesMut::new()).await, None);
    }
    let lines = warnings.0.lock().unwrap().clone();
    let bad: Vec<_> = lines.iter().filter(|l| l.contains("a bad frame")).collect();
    // One a second: fifty bad frames take well under five seconds.
    assert!(
        (1..=5).contains(&bad.len()),
        "{} warnings for 50 bad frames: {lines:#?}",
        bad.len()
    );
    let first = bad[0];
    assert!(
        first.contains(&peers[0].to_string()),
        "the first warning names its peer {}: {first}",
        peers[0]
    );
    assert!(first.contains("reason="), "{first}");

    // After a quiet second the next one is logged, with the count of the
    // ones held back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut s = connect(&srv.handle).await;
    s.write_all(&unreadable(99)).await.unwrap();
    assert_eq!(answer(&mut s, &mut bytes::BytesMut::new()).await, None);
    let lines = warnings.0.lock().unwrap().clone();
    let last = lines
        .iter()
        .rev()
        .find(|l| l.contains("a bad frame"))
        .unwrap();
    let held_back = 50 - bad.len();
    assert!(
        last.contains(&format!("suppressed={held_back}")),
        "{held_back} held back: {last}"
    );
    // The server serves on.
    let a = call_once(&srv.handle, b"still here").await.expect("served");
    assert_eq!(&a.body[..], b"still here");
    srv.handle.shutdown().await;
}
