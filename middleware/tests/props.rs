//! Property tests of the governance state machines, driven through their
//! public API under arbitrary event sequences, on tokio's paused clock (the
//! clock these types read is `tokio::time::Instant`, so `advance` moves it).
//!
//! - the retry budget never lets through more extra attempts than
//!   `max(ratio × calls, floor)` of the window, and never refuses one that
//!   is within that bound;
//! - the circuit breaker is closed only as the outcomes say, never lets more
//!   probes through than configured, and once every permit is back it is
//!   never stuck half-open;
//! - the adaptive limit stays within `[min, max]`, and never admits more
//!   calls at once than its limit.
//!
//! The consistent-hash ring (crate-private) has its properties beside it,
//! in `src/balance/ring.rs`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use proptest::prelude::*;
use tokio::sync::oneshot;
use tower::Service;
use weft_core::{Code, Delivery, Status};
use weft_middleware::{
    breaker::{Breaker, BreakerConfig, BreakerState},
    limit::{AdaptiveConfig, AdaptiveLimit, RateLimit},
    RetryBudget,
};

/// Runs `f` on a current-thread runtime whose clock only moves when told.
fn paused<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(f)
}

fn config() -> ProptestConfig {
    // Each case is cheap; 256 keep every property under a few seconds.
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

// ===== the retry budget =====

#[derive(Debug, Clone)]
enum BudgetOp {
    /// `n` calls.
    Deposit(u16),
    /// `n` withdrawals attempted.
    Withdraw(u8),
    /// The clock moves on, in milliseconds.
    Advance(u16),
}

fn budget_op() -> impl Strategy<Value = BudgetOp> {
    prop_oneof![
        (1u16..300).prop_map(BudgetOp::Deposit),
        (1u8..60).prop_map(BudgetOp::Withdraw),
        (0u16..3000).prop_map(BudgetOp::Advance),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// With `ttl` split into ten slots, a withdrawal at `t` is judged on the
    /// slots covering at least `(t - 0.9 ttl, t]` and at most
    /// `(t - ttl, t]`. So every one granted fits within
    /// `max(ratio × calls in (t - ttl, t], floor)` counted over
    /// `(t - 0.9 ttl, t]`, and every one refused would have overdrawn
    /// `max(ratio × calls in (t - 0.9 ttl, t], floor)` counted over
    /// `(t - ttl, t]`.
    #[test]
    fn the_retry_budget_keeps_to_its_ratio_and_floor(
        ttl_s in 1u64..20,
        min_per_sec in 0u32..5,
        ratio_pct in 0u32..150,
        ops in prop::collection::vec(budget_op(), 1..60),
    ) {
        paused(async move {
            let ttl = Duration::from_secs(ttl_s);
            let ratio = f64::from(ratio_pct) / 100.0;
            let budget = RetryBudget::new(ttl, min_per_sec, ratio);
            // In thousandths, as the budget counts.
            let deposit = (ratio * 1000.0).round() as u64;
            let floor = (f64::from(min_per_sec) * ttl.as_secs_f64() * 1000.0) as u64;
            let ttl_ms = (ttl_s * 1000) as i64;
            let inner_ms = ttl_ms * 9 / 10;
            let mut now = 0i64;
            // When (ms) each call and each granted extra attempt happened.
            let (mut calls, mut granted) = (Vec::new(), Vec::<i64>::new());
            // How many of `v` fall in (now - len, now].
            let within = |v: &[i64], len: i64, now: i64| {
                v.iter().filter(|&&t| t > now - len && t <= now).count() as u64
            };
            for op in ops {
                match op {
                    BudgetOp::Deposit(n) => {
                        for _ in 0..n {
                            budget.deposit();
                            calls.push(now);
                        }
                    }
                    BudgetOp::Advance(ms) => {
                        tokio::time::advance(Duration::from_millis(u64::from(ms))).await;
                        now += i64::from(ms);
                    }
                    BudgetOp::Withdraw(n) => {
                        for _ in 0..n {
                            if budget.withdraw() {
                                granted.push(now);
                                let w = within(&granted, inner_ms, now);
                                let d = within(&calls, ttl_ms, now);
                                prop_assert!(
                                    w * 1000 <= (d * deposit).max(floor),
                                    "granted {w} extra attempts in {inner_ms} ms at {now} ms \
                                     on {d} calls in {ttl_ms} ms (ratio {ratio}, floor {floor}‰)"
                                );
                            } else {
                                let w = within(&granted, ttl_ms, now);
                                let d = within(&calls, inner_ms, now);
                                prop_assert!(
                                    (w + 1) * 1000 > (d * deposit).max(floor),
                                    "refused at {now} ms with {w} granted in {ttl_ms} ms \
                                     and {d} calls in {inner_ms} ms (ratio {ratio}, floor {floor}‰)"
                                );
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
}

// ===== the circuit breaker =====

#[derive(Debug, Clone)]
enum BreakerOp {
    Acquire,
    /// Record the outcome of the `n`th held permit (modulo how many).
    Record(usize, bool),
    /// Drop the `n`th held permit unrecorded (an abandoned call).
    Drop(usize),
    Advance(u16),
}

fn breaker_op() -> impl Strategy<Value = BreakerOp> {
    prop_oneof![
        3 => Just(BreakerOp::Acquire),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| BreakerOp::Record(i, ok)),
        1 => any::<usize>().prop_map(BreakerOp::Drop),
        2 => (0u16..2000).prop_map(BreakerOp::Advance),
    ]
}

/// A held permit and the half-open spell it was taken in (`None`: taken
/// while closed).
struct Held {
    permit: weft_middleware::breaker::Permit,
    spell: Option<u64>,
}

proptest! {
    #![proptest_config(config())]

    /// Against a model of the half-open and open states (the closed state's
    /// window is only bounded, not modelled):
    /// - closed lets every call through; open refuses every one, "not sent";
    /// - open lasts exactly `open_for`, then reads half-open;
    /// - half-open lets a call through exactly when fewer than `probes` of
    ///   its own probes are out: so with every permit back it is never stuck;
    /// - half-open closes when `probes` of its probes succeeded, opens on one
    ///   failed probe, and nothing else (stale permits) moves it;
    /// - closed opens only when an outcome is recorded, with a failure among
    ///   those since it last closed, and only after `consecutive_failures`
    ///   failures in a row or `min_samples` outcomes since then.
    #[test]
    fn the_breaker_follows_its_state_machine(
        min_samples in 1u32..12,
        error_pct in 1u32..=100,
        probes in 1u32..4,
        consecutive in prop::option::of(1u32..8),
        open_ms in 1u64..3000,
        ops in prop::collection::vec(breaker_op(), 1..120),
    ) {
        paused(async move {
            let open_for = Duration::from_millis(open_ms);
            let b = Breaker::new(BreakerConfig {
                window: Duration::from_secs(10),
                buckets: 10,
                min_samples,
                error_rate: f64::from(error_pct) / 100.0,
                open_for,
                probes,
                consecutive_failures: consecutive,
            });
            let mut held: Vec<Held> = Vec::new();
            let mut state = BreakerState::Closed;
            let mut spell = 0u64;
            let mut probe_successes = 0u32;
            let mut opened_at = tokio::time::Instant::now();
            // Outcomes recorded while closed since it last closed, and the
            // failures in a row among them.
            let (mut closed_outcomes, mut closed_failures, mut in_a_row) = (0u32, 0u32, 0u32);
            for op in ops {
                let before = state;
                let out = |h: &[Held], spell: u64| {
                    h.iter().filter(|p| p.spell == Some(spell)).count() as u32
                };
                let mut recorded: Option<(Option<u64>, bool)> = None;
                match op {
                    BreakerOp::Acquire => {
                        let expect = match state {
                            BreakerState::Closed => true,
                            BreakerState::Open => false,
                            BreakerState::HalfOpen => out(&held, spell) < probes,
                        };
                        prop_assert_eq!(b.is_available(), expect, "is_available in {:?}", state);
                        match b.try_acquire() {
                            Ok(permit) => {
                                prop_assert!(expect, "let a call through in {:?} with {} probes out", state, out(&held, spell));
                                let spell = (state == BreakerState::HalfOpen).then_some(spell);
                                held.push(Held { permit, spell });
                            }
                            Err(e) => {
                                prop_assert!(!expect, "refused in {:?} with {} of {} probes out", state, out(&held, spell), probes);
                                prop_assert_eq!(e.code(), Code::Unavailable);
                                prop_assert_eq!(e.delivery(), Delivery::NotSent);
                            }
                        }
                    }
                    BreakerOp::Record(i, ok) if !held.is_empty() => {
                        let h = held.swap_remove(i % held.len());
                        recorded = Some((h.spell, ok));
                        b.record(h.permit, ok);
                    }
                    BreakerOp::Drop(i) if !held.is_empty() => {
                        drop(held.swap_remove(i % held.len()));
                    }
                    BreakerOp::Advance(ms) => {
                        tokio::time::advance(Duration::from_millis(u64::from(ms))).await;
                    }
                    _ => {}
                }
                // What the model says follows.
                let now = tokio::time::Instant::now();
                let mut expect = state;
                match (state, recorded) {
                    (BreakerState::HalfOpen, Some((Some(s), ok))) if s == spell => {
                        if ok {
                            probe_successes += 1;
                            if probe_successes >= probes {
                                expect = BreakerState::Closed;
                            }
                        } else {
                            expect = BreakerState::Open;
                        }
                    }
                    (BreakerState::Closed, Some((None, ok))) => {
                        closed_outcomes += 1;
                        closed_failures += u32::from(!ok);
                        in_a_row = if ok { 0 } else { in_a_row + 1 };
                    }
                    _ => {}
                }
                let got = b.state();
                if before == BreakerState::Closed && got == BreakerState::Open {
                    prop_assert!(
                        matches!(recorded, Some((None, _))) && closed_failures > 0,
                        "opened on {op:?} with {closed_failures} failures since it closed"
                    );
                    prop_assert!(
                        consecutive.is_some_and(|n| in_a_row >= n) || closed_outcomes >= min_samples,
                        "opened after {in_a_row} failures in a row and {closed_outcomes} outcomes \
                         since it closed (consecutive {consecutive:?}, min_samples {min_samples})"
                    );
                    expect = BreakerState::Open;
                } else if before == BreakerState::Closed {
                    if let Some(n) = consecutive {
                        if matches!(recorded, Some((None, false))) {
                            prop_assert!(in_a_row < n, "{in_a_row} failures in a row left it closed (bound {n})");
                        }
                    }
                }
                if expect == BreakerState::Open && before != BreakerState::Open {
                    opened_at = now;
                }
                if expect == BreakerState::Open && now >= opened_at + open_for {
                    expect = BreakerState::HalfOpen;
                }
                prop_assert_eq!(got, expect, "after {:?} from {:?}", op, before);
                if got == BreakerState::HalfOpen && before != BreakerState::HalfOpen {
                    spell += 1;
                    probe_successes = 0;
                }
                if got == BreakerState::Closed && before != BreakerState::Closed {
                    closed_outcomes = 0;
                    closed_failures = 0;
                    in_a_row = 0;
                }
                state = got;
            }
            // Every permit back: a half-open breaker takes a probe.
            held.clear();
            if b.state() == BreakerState::HalfOpen {
                prop_assert!(b.try_acquire().is_ok(), "stuck half-open with every permit back");
            }
            Ok(())
        })?;
    }
}

// ===== the adaptive limit =====

type Ender = oneshot::Sender<Result<(), Status>>;
type CallFuture = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// A service whose calls end when and how the test says.
#[derive(Clone, Default)]
struct Scripted {
    pending: std::sync::Arc<std::sync::Mutex<Vec<Ender>>>,
}

impl Service<()> for Scripted {
    type Response = ();
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: ()) -> Self::Future {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().push(tx);
        Box::pin(async move { rx.await.unwrap_or(Err(Status::cancelled("dropped"))) })
    }
}

#[derive(Debug, Clone)]
enum LimitOp {
    Call,
    /// End the `n`th call in flight after `ms`: 0 answers, 1 times out, 2 is
    /// shed inside, 3 fails otherwise, 4 is dropped by its caller.
    End(usize, u8, u16),
    Advance(u16),
}

fn limit_op() -> impl Strategy<Value = LimitOp> {
    prop_oneof![
        4 => Just(LimitOp::Call),
        4 => (any::<usize>(), 0u8..5, 0u16..500).prop_map(|(i, k, ms)| LimitOp::End(i, k, ms)),
        1 => (0u16..5000).prop_map(LimitOp::Advance),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// The limit stays within `[min, max]` after every event, and a call is
    /// admitted exactly when fewer than the limit are in flight; shed calls
    /// fail `ResourceExhausted`, "not sent".
    #[test]
    fn the_adaptive_limit_stays_in_bounds_and_admits_to_it(
        min in 1usize..10,
        span in 0usize..40,
        initial_at in 0usize..50,
        samples_per_update in 1u32..6,
        ops in prop::collection::vec(limit_op(), 1..200),
    ) {
        paused(async move {
            let max = min + span;
            let cfg = AdaptiveConfig {
                initial: (min + initial_at % (span + 1)).clamp(min, max),
                min,
                max,
                smoothing: 0.5,
                samples_per_update,
                probe_interval: Duration::from_secs(3),
            };
            let inner = Scripted::default();
            let mut svc = AdaptiveLimit::new(inner.clone(), cfg);
            let mut flying: Vec<(CallFuture, Ender)> = Vec::new();
            for op in ops {
                match op {
                    LimitOp::Call => {
                        let limit = svc.limit();
                        let mut fut: CallFuture = Box::pin(svc.call(()));
                        match futures::poll!(fut.as_mut()) {
                            Poll::Pending => {
                                prop_assert!(flying.len() < limit, "admitted with {} in flight, limit {limit}", flying.len());
                                let tx = inner.pending.lock().unwrap().pop().unwrap();
                                flying.push((fut, tx));
                            }
                            Poll::Ready(Err(e)) => {
                                prop_assert!(flying.len() >= limit, "shed with {} in flight, limit {limit}", flying.len());
                                prop_assert_eq!(e.code(), Code::ResourceExhausted);
                                prop_assert_eq!(e.delivery(), Delivery::NotSent);
                            }
                            Poll::Ready(Ok(())) => prop_assert!(false, "answered before its end"),
                        }
                    }
                    LimitOp::End(i, kind, ms) if !flying.is_empty() => {
                        tokio::time::advance(Duration::from_millis(u64::from(ms))).await;
                        let (mut fut, tx) = flying.swap_remove(i % flying.len());
                        let outcome = match kind {
                            0 => Ok(()),
                            1 => Err(Status::deadline_exceeded("late")),
                            2 => Err(Status::resource_exhausted("shed inside")),
                            3 => Err(Status::invalid_argument("bad")),
                            _ => {
                                drop(fut);
                                continue;
                            }
                        };
                        let _ = tx.send(outcome.clone());
                        let got = futures::poll!(fut.as_mut());
                        prop_assert_eq!(got.map(|r| r.map_err(|e| e.code())), Poll::Ready(outcome.map_err(|e| e.code())));
                    }
                    LimitOp::Advance(ms) => {
                        tokio::time::advance(Duration::from_millis(u64::from(ms))).await;
                    }
                    _ => {}
                }
                let limit = svc.limit();
                prop_assert!((min..=max).contains(&limit), "limit {limit} outside [{min}, {max}]");
            }
            Ok(())
        })?;
    }
}

/// Failures before an opening do not count again after it closes: a breaker
/// that opened on its error rate with failures in a row behind it, then
/// recovered, needs `consecutive_failures` new ones in a row to reopen.
#[test]
fn failures_in_a_row_start_again_when_the_breaker_closes() {
    paused(async {
        let b = Breaker::new(BreakerConfig {
            window: Duration::from_secs(10),
            buckets: 10,
            min_samples: 3,
            error_rate: 0.5,
            open_for: Duration::from_millis(100),
            probes: 1,
            consecutive_failures: Some(5),
        });
        // Three failures: open on the rate, three in a row counted.
        for _ in 0..3 {
            b.record(b.try_acquire().unwrap(), false);
        }
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(100)).await;
        b.record(b.try_acquire().unwrap(), true);
        assert_eq!(b.state(), BreakerState::Closed);
        // Two failures after closing: below both min_samples and five in a row.
        for _ in 0..2 {
            b.record(b.try_acquire().unwrap(), false);
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "reopened on failures from before it closed"
        );
    });
}

// ===== the rate limit =====

proptest! {
    #![proptest_config(config())]

    /// However calls and time interleave, the rate limit admits no more
    /// than `burst` plus `rate` × the time gone by, and never sheds a call
    /// while a whole token is due (lock-free GCRA against the token bucket
    /// it replaces, replayed here in integer milliseconds).
    #[test]
    fn the_rate_limit_keeps_to_its_rate_and_burst(
        per_sec in 1u32..2000,
        burst in 1u32..20,
        ops in prop::collection::vec(prop_oneof![
            (1u8..40).prop_map(|n| (n, 0u16)),
            (0u16..500).prop_map(|ms| (0u8, ms)),
        ], 1..60),
    ) {
        paused(async move {
            let mut svc = RateLimit::new(
                tower::service_fn(|()| async { Ok::<(), Status>(()) }),
                f64::from(per_sec),
                burst,
            );
            let (mut admitted, mut elapsed_ms) = (0u64, 0u64);
            // The bucket a mutex used to guard, in exact arithmetic
            // (tokens × 1000 to stay in integers).
            let (mut milli_tokens, cap) = (u64::from(burst) * 1000, u64::from(burst) * 1000);
            for (calls, ms) in ops {
                if ms > 0 {
                    tokio::time::advance(Duration::from_millis(u64::from(ms))).await;
                    elapsed_ms += u64::from(ms);
                    milli_tokens = (milli_tokens + u64::from(ms) * u64::from(per_sec)).min(cap);
                }
                for _ in 0..calls {
                    let r = svc.call(()).await;
                    match &r {
                        Ok(()) => {
                            admitted += 1;
                            milli_tokens = milli_tokens.saturating_sub(1000);
                        }
                        Err(e) => {
                            prop_assert_eq!(e.code(), Code::ResourceExhausted);
                            // The interval is whole nanoseconds rounded up: up
                            // to 1 ns late per interval gone by is the only
                            // slack allowed.
                            let late_ns = elapsed_ms * u64::from(per_sec) / 1000 + 1;
                            let slack = (late_ns * u64::from(per_sec)).div_ceil(1_000_000) + 1;
                            prop_assert!(milli_tokens < 1000 + slack, "shed with {milli_tokens} milli-tokens due");
                        }
                    }
                    let most = u64::from(burst) + elapsed_ms * u64::from(per_sec) / 1000;
                    prop_assert!(admitted <= most, "admitted {admitted} > {most}");
                }
            }
            Ok(())
        })?;
    }
}
