//! The access log: one structured `tracing` event per call, sampled.

use std::{
    num::NonZeroU64,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use faststr::FastStr;
use weft_core::{Address, Code, Response, Status};

use super::{table::code_name, trace::TraceId, Shared};

/// Which calls the access log records: one in `every`, and, when
/// [`AccessLog::errors`] is on, every failed call besides.
///
/// Each line is an `INFO` event with target `weft::access`, inside the
/// call's span when tracing is on, with the fields `side`, `rpc.system`,
/// `rpc.service`, `rpc.method`, `peer`, `code`, `latency_us` and
/// `trace_id` (Weft's W3C id, when it keeps one). Message sizes are not
/// logged: the transport reports them to the metrics, a server's answer
/// only once encoded, after this line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLog {
    every: NonZeroU64,
    errors: bool,
}

impl AccessLog {
    /// Log every call.
    pub fn all() -> AccessLog {
        AccessLog {
            every: NonZeroU64::MIN,
            errors: false,
        }
    }

    /// Log one call in `every` (counted per layer, so exactly one in
    /// `every` whatever the timing), the first included.
    pub fn one_in(every: NonZeroU64) -> AccessLog {
        AccessLog {
            every,
            errors: false,
        }
    }

    /// Also log every call that fails, sampled or not. Default off.
    pub fn errors(mut self, on: bool) -> AccessLog {
        self.errors = on;
        self
    }

    pub(super) fn sampled(&self, seen: &AtomicU64, code: Code) -> bool {
        let n = seen.fetch_add(1, Ordering::Relaxed);
        n % self.every.get() == 0 || (self.errors && code != Code::Ok)
    }
}

/// Who a logged call was between, kept from its request.
#[derive(Debug)]
pub(super) struct Who {
    pub(super) service: FastStr,
    pub(super) method: FastStr,
    pub(super) peer: Option<Address>,
}

pub(super) fn emit<R>(
    sh: &Shared,
    who: &Who,
    res: &Result<Response<R>, Status>,
    code: Code,
    elapsed: Duration,
    trace: Option<u128>,
) {
    // A client learns its peer from the answer (the balancer chose it).
    let peer = match res {
        Ok(r) if who.peer.is_none() => r.cx.peer.as_ref(),
        _ => who.peer.as_ref(),
    };
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    tracing::info!(
        target: "weft::access",
        side = sh.side.as_str(),
        rpc.system = sh.system.as_str(),
        rpc.service = who.service.as_str(),
        rpc.method = who.method.as_str(),
        peer = peer.map(display),
        code = code_name(code),
        error = res.as_ref().err().map(display),
        latency_us,
        trace_id = trace.map(|t| display(TraceId(t))),
        "rpc call",
    );
}
