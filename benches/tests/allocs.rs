//! Allocations per call through the generated `Bench` service in the
//! default `ServerStack` and the generated client over the default
//! `ClientStack`, over real loopback sockets, counted per side by the
//! counting allocator. Fails if a change adds an allocation per call on
//! either side (issue 9: at most 2 per call on each side; today the server
//! makes 2 — the generated server's boxed handler future and the request
//! string's shared buffer — and either client 1, the answer string's).
//!
//! With the observe layer on (metrics, spans, trace propagation) the
//! bounds are the same, with more slack for what observing amortises.
//!
//! No timing is asserted: only counts.

use std::sync::{atomic::AtomicU64, Arc};

use weft::core::{faststr::FastStr, Address, ConnectionMode};
use weft_benches::{
    alloc::{self, CountingAlloc, Side},
    generated,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Calls before counting: connections, pools, buffers and timers settle.
const WARMUP: usize = 500;
/// Calls counted.
const CALLS: usize = 2_000;
/// Slack per call over the whole allocations expected, for what is
/// amortised (a read buffer replaced every few dozen frames, a timer wheel
/// level, the pool's stack growing): far below one allocation per call.
const SLACK: f64 = 0.1;

/// Starts the server on a thread (and a current-thread runtime) of its own,
/// so its allocations are counted apart from the client's.
fn server(observe: bool) -> Address {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        alloc::set_side(Side::Server);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let calls = Arc::new(AtomicU64::new(0));
            let handle =
                generated::serve_with("127.0.0.1:0", generated::Echo::with_counter(calls), observe)
                    .await
                    .unwrap();
            tx.send(handle.local_addr().clone()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Allocations per call on (server, client) over `CALLS` calls made by
/// `callers` concurrent callers, after a warm-up.
fn per_call(mode: ConnectionMode, callers: usize, observe: bool) -> (f64, f64) {
    let addr = server(observe);
    alloc::set_side(Side::Client);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = generated::client_with(&addr, mode, callers, observe).unwrap();
        // 128 bytes: longer than a FastStr holds inline, as in the benchmark.
        let msg = FastStr::from_static_str(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\
             0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        );
        let run = |n: usize| {
            let client = client.clone();
            let msg = msg.clone();
            async move {
                let one = |client: generated::Client, msg: FastStr| async move {
                    for _ in 0..n / callers {
                        let got = client.echo(msg.clone()).await.unwrap();
                        assert_eq!(got.len(), msg.len());
                    }
                };
                let tasks: Vec<_> = (0..callers)
                    .map(|_| tokio::spawn(one(client.clone(), msg.clone())))
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            }
        };
        run(WARMUP).await;
        let (s0, c0) = (
            alloc::side_count(Side::Server),
            alloc::side_count(Side::Client),
        );
        // The spawns of the measuring loop itself, counted on the client side.
        run(CALLS).await;
        let (s1, c1) = (
            alloc::side_count(Side::Server),
            alloc::side_count(Side::Client),
        );
        let calls = (CALLS / callers * callers) as f64;
        // Each caller task is one spawn (one allocation) and its JoinHandle
        // nothing more; take them off.
        let client = (c1 - c0).saturating_sub(callers as u64) as f64 / calls;
        ((s1 - s0) as f64 / calls, client)
    })
}

fn check(mode: ConnectionMode, callers: usize) {
    let (server, client) = per_call(mode, callers, false);
    eprintln!(
        "{mode:?}, {callers} callers: server {server:.3}, client {client:.3} allocations per call"
    );
    assert!(
        server <= 2.0 + SLACK,
        "{mode:?}: server allocates {server:.3} per call, more than 2"
    );
    assert!(
        client <= 1.0 + SLACK,
        "{mode:?}: client allocates {client:.3} per call, more than 1"
    );
}

// One test: the counters are per side, not per test, so the cases must not
// run at the same time.
#[test]
fn allocations_per_call_through_the_generated_stacks() {
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        for callers in [1, 8] {
            check(mode, callers);
        }
    }
    // Last: it installs a global recorder and subscriber for the process.
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let (server, client) = per_call(mode, 8, true);
        eprintln!(
            "{mode:?}, 8 callers, observed: server {server:.3}, client {client:.3} allocations per call"
        );
        // What observing costs (issue 15 wants it near nothing): metrics
        // none (their handles are resolved once per method), and since
        // the trace context rides in the context's typed slot and the
        // codecs write and read it without a string, the spans and trace
        // propagation none either (they were 2 on the server and 3 on the
        // client: the 55-byte traceparent value and the metainfo lists
        // grown for it). Fails if a change adds one. Twice the slack: the
        // span registry's slabs and the exporter's histogram blocks are
        // amortised too (the client measures about 1.06-1.09).
        assert!(
            server <= 2.0 + 2.0 * SLACK,
            "{mode:?}, observed: server allocates {server:.3} per call, more than 2"
        );
        assert!(
            client <= 1.0 + 2.0 * SLACK,
            "{mode:?}, observed: client allocates {client:.3} per call, more than 1"
        );
    }
}
