//! The cost of one request through the default client and server stacks:
//! one caller, one call at a time, client and server in this process on one
//! tokio runtime.
//!
//! weft-rpc-core has no in-memory transport, so the calls cross a Unix socket
//! pair (the cheapest transport it has) and, for comparison with Volo, TCP
//! loopback.
//!
//! `cargo bench -p weft-benches --bench stack`

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use faststr::FastStr;
use weft::core::ConnectionMode;
use weft_benches::{
    service::{serve, BenchClient, BenchHandler},
    volo_side,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn payload(n: usize) -> FastStr {
    let s: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    FastStr::from_static_str(Box::leak(s.into_boxed_str()))
}

fn stacks(c: &mut Criterion) {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("weft-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unix = format!("unix:{}", dir.join("bench.sock").display());

    let (weft_unix, weft_tcp, volo_addr) = rt.block_on(async {
        let a = serve(&unix, BenchHandler::default()).await.unwrap();
        let b = serve("127.0.0.1:0", BenchHandler::default()).await.unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let volo_addr = l.local_addr().unwrap();
        volo_side::spawn_server(l, volo_side::VoloBenchServer::default(), false);
        (a, b, volo_addr)
    });

    for size in [128usize, 1024] {
        let msg = payload(size);
        let mut g = c.benchmark_group(format!("one-call/{size}B"));
        g.throughput(Throughput::Elements(1));
        g.measurement_time(Duration::from_secs(3));
        for (transport, server) in [("unix", &weft_unix), ("tcp", &weft_tcp)] {
            for (mode_name, mode) in [
                ("pooled", ConnectionMode::Pooled),
                ("mux", ConnectionMode::Multiplexed),
            ] {
                let client = BenchClient::new(server.local_addr(), mode, 1);
                g.bench_function(
                    BenchmarkId::new(format!("weft-{mode_name}"), transport),
                    |b| {
                        b.iter_custom(|iters| {
                            rt.block_on(async {
                                let start = Instant::now();
                                for _ in 0..iters {
                                    black_box(client.echo(msg.clone()).await.unwrap());
                                }
                                start.elapsed()
                            })
                        })
                    },
                );
            }
        }
        // Volo's pool starts timers: build it inside the runtime.
        let volo = rt.block_on(async { volo_side::client(volo_addr, false) });
        g.bench_function(BenchmarkId::new("volo-pooled", "tcp"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(volo_side::echo(&volo, msg.clone()).await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
        g.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = stacks
}
criterion_main!(benches);
