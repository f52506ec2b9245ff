//! What observing a call costs, for a profiler: `N` calls of the generated
//! `Bench` service over loopback, client and server in this process on one
//! current-thread runtime each, with the observe layer on (`on`) or off
//! (`off`). Run it under `valgrind --tool=callgrind` and compare the two
//! (instructions are deterministic where wall time on a shared machine is
//! not):
//!
//! ```sh
//! cargo build --release -p weft-benches --example observe_cost
//! valgrind --tool=callgrind target/release/examples/observe_cost on 20000
//! ```

use std::sync::{atomic::AtomicU64, Arc};

use weft::core::{faststr::FastStr, Address, ConnectionMode};
use weft_benches::generated;

fn main() {
    let mut args = std::env::args().skip(1);
    let observe = match args.next().as_deref() {
        Some("on") => true,
        Some("off") => false,
        _ => panic!("usage: observe_cost on|off [calls]"),
    };
    let calls: usize = args.next().map_or(20_000, |n| n.parse().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let handle = generated::serve_with(
                "127.0.0.1:0",
                generated::Echo::with_counter(Arc::new(AtomicU64::new(0))),
                observe,
            )
            .await
            .unwrap();
            tx.send(handle.local_addr().clone()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let addr: Address = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let callers = 16;
        let client =
            generated::client_with(&addr, ConnectionMode::Multiplexed, callers, observe).unwrap();
        let msg = FastStr::from_static_str(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\
             0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        );
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let client = client.clone();
                let msg = msg.clone();
                tokio::spawn(async move {
                    for _ in 0..calls / callers {
                        client.echo(msg.clone()).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    eprintln!("{calls} calls, observe {observe}");
}
