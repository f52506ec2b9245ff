//! A one-way call returns once its frame is written, on every connection
//! mode: a program that exits right after one does not lose it.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use weft::core::{
    faststr::FastStr, Address, ClientBuilder, ConnectionMode, Context, ServerBuilder, Status,
};
use weft::thrift::{Protocol, Transport};
use weft_example_hello::{Greeting, Hello, HelloClient, HelloLookupError, HelloServer};

/// Counts one-way `log` calls.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Hello for Counter {
    async fn greet(&self, _: &mut Context, _: FastStr, _: i64) -> Result<Greeting, Status> {
        Ok(Greeting::default())
    }
    async fn lookup(&self, _: &mut Context, name: FastStr) -> Result<FastStr, HelloLookupError> {
        Ok(name)
    }
    async fn log(&self, _: &mut Context, _: FastStr) -> Result<(), Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The client runs in a runtime of its own that is dropped, with the
/// client, as soon as the call returns: what a program that exits does.
fn send_one_and_exit(addr: Address, mode: ConnectionMode, transport: Transport) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = HelloClient::new(
                ClientBuilder::new(addr).mode(mode),
                transport,
                Protocol::Binary,
            );
            client.log("bye".into()).await.unwrap();
        });
        drop(rt);
    })
    .join()
    .unwrap();
}

#[test]
fn oneway_survives_the_callers_exit() {
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    for (mode, transport) in [
        (ConnectionMode::Multiplexed, Transport::TTHeader),
        (ConnectionMode::Pooled, Transport::TTHeader),
        (ConnectionMode::Pooled, Transport::Framed),
    ] {
        for _ in 0..20 {
            let counter = Counter::default();
            let count = counter.0.clone();
            let server = server_rt
                .block_on(
                    HelloServer::new(counter)
                        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap()),
                )
                .unwrap();
            send_one_and_exit(server.local_addr().clone(), mode, transport);
            let start = Instant::now();
            while count.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(
                count.load(Ordering::SeqCst),
                1,
                "{mode:?} {transport:?}: the one-way call was lost"
            );
            server_rt.block_on(server.shutdown());
        }
    }
}
