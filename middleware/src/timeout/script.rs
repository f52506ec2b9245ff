//! A scripted inner service for the unit tests of this crate's layers: each
//! call plays the next step of a script and is recorded.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::Instant;
use tower::Service;
use weft_core::{Request, Response, Status};

/// What one call does.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Answer after the delay.
    Ok(Duration),
    /// Fail with the status after the delay.
    Err(Duration, Status),
}

/// What the service saw of a call.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) at: Instant,
    pub(crate) deadline: Option<Instant>,
    pub(crate) previous_attempts: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Scripted {
    steps: Arc<Mutex<VecDeque<Step>>>,
    /// Every call, in order.
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    /// Calls whose future was dropped before it finished.
    pub(crate) cancelled: Arc<AtomicUsize>,
    /// Used when the script runs out.
    fallback: Arc<Mutex<Option<Step>>>,
}

impl Scripted {
    pub(crate) fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        let s = Scripted::default();
        s.steps.lock().extend(steps);
        s
    }

    /// Play `step` for every call past the script.
    pub(crate) fn then_always(self, step: Step) -> Self {
        *self.fallback.lock() = Some(step);
        self
    }

    pub(crate) fn calls(&self) -> usize {
        self.seen.lock().len()
    }

    pub(crate) fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
}

struct Guard {
    done: bool,
    cancelled: Arc<AtomicUsize>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

type BoxFut = Pin<Box<dyn Future<Output = Result<Response<u32>, Status>> + Send>>;

impl Service<Request<u32>> for Scripted {
    type Response = Response<u32>;
    type Error = Status;
    type Future = BoxFut;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<u32>) -> BoxFut {
        let n = {
            let mut seen = self.seen.lock();
            seen.push(Seen {
                at: Instant::now(),
                deadline: req.cx.deadline,
                previous_attempts: req
                    .cx
                    .metainfo
                    .transient
                    .get(crate::retry::PREVIOUS_ATTEMPTS)
                    .map(|v| v.to_string()),
            });
            seen.len() as u32
        };
        let step = self
            .steps
            .lock()
            .pop_front()
            .or_else(|| self.fallback.lock().clone())
            .expect("the script ran out");
        let guard = Guard {
            done: false,
            cancelled: self.cancelled.clone(),
        };
        Box::pin(async move {
            let mut guard = guard;
            let out = match step {
                Step::Ok(d) => {
                    tokio::time::sleep(d).await;
                    Ok(Response::new(req.cx, n))
                }
                Step::Err(d, status) => {
                    tokio::time::sleep(d).await;
                    // As Weft's own services do: an unsent call's request
                    // goes back with its error (a retry sends it again).
                    Err(status.with_unsent(req))
                }
            };
            guard.done = true;
            out
        })
    }
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
