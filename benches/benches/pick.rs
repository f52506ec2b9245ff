//! The cost of one load-balancer pick over 1,000 instances, per strategy:
//! `Balance::call` on an endpoint service that answers at once, and the
//! answer recorded (latency, breaker, in-flight), as a call pays it.
//!
//! `cargo bench -p weft-benches --bench pick`

use std::{
    future::{ready, Ready},
    hint::black_box,
    task::{Context as TaskContext, Poll},
};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures::FutureExt;
use tower::Service;
use weft::core::{Address, Context, Instance, Request, StaticDiscover, Status};
use weft::middleware::balance::{Balance, BalanceConfig, Strategy};

/// An endpoint that answers every call at once.
#[derive(Clone)]
struct Answer;

impl Service<Request<u64>> for Answer {
    type Response = u64;
    type Error = Status;
    type Future = Ready<Result<u64, Status>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<u64>) -> Self::Future {
        ready(Ok(req.message))
    }
}

fn instances(n: u16) -> StaticDiscover {
    StaticDiscover::new((0..n).map(|i| {
        let addr: Address = format!("10.0.{}.{}:9090", i / 250, i % 250)
            .parse()
            .unwrap();
        // Weights 1..=10, as a registry with mixed instance sizes hands out.
        Instance::new(addr).with_weight(u32::from(i % 10) + 1)
    }))
}

fn pick(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let discover = instances(1_000);
    let strategies = [
        ("round_robin", Strategy::RoundRobin),
        ("weighted_random", Strategy::WeightedRandom),
        ("p2c", Strategy::PowerOfTwoChoices),
        (
            "consistent_hash",
            Strategy::consistent_hash(|cx: &Context| {
                cx.metainfo.persistent.get("key").map(|k| hash(k))
            }),
        ),
    ];
    let mut group = c.benchmark_group("pick_1000_instances");
    for (name, strategy) in strategies {
        let config = BalanceConfig {
            strategy,
            ..BalanceConfig::default()
        };
        let mut lb = Balance::new(&discover, "svc", |_: &Instance| Answer, config).unwrap();
        let mut cx = Context::new("svc", "get");
        cx.metainfo.persistent.insert("key", "user-4217");
        let mut n = 0u64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                n += 1;
                let fut = lb.call(Request::new(cx.clone(), n));
                black_box(fut.now_or_never())
            })
        });
    }
    group.finish();
}

fn hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

criterion_group!(benches, pick);
criterion_main!(benches);
