//! The per-method table: metric handles registered once per service and
//! method, found again on every call without a lock or an allocation.
//!
//! A fixed array of write-once slots, open-addressed by a hash of the
//! service and method names. A lookup reads slots (an acquire load each)
//! and compares names; only the first call of a method writes, into an
//! empty slot. The array never grows: past its capacity, methods share one
//! `_other` entry, so a peer that sends arbitrary method names cannot grow
//! the series a scraper has to store.

use std::sync::{
    atomic::{AtomicI64, AtomicU64, Ordering},
    OnceLock,
};

use faststr::FastStr;
use metrics::{Counter, Gauge, Histogram};
use weft_core::Code;

use super::Side;
use crate::table::hash;

/// Distinct service/method pairs one layer keeps its own series for, by
/// default: far more than any IDL service declares, few enough that a
/// flood of made-up method names stays cheap to scrape.
pub const DEFAULT_MAX_METHODS: usize = 256;

/// The method label of calls beyond the table's capacity.
pub const OTHER_METHOD: &str = "_other";

/// Number of status codes (`Code` is 0..=16).
const CODES: usize = 17;

/// A status code's Prometheus label value: gRPC's canonical name.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// Metric names of one side.
struct Names {
    calls: &'static str,
    duration: &'static str,
    in_flight: &'static str,
    request_bytes: &'static str,
    response_bytes: &'static str,
}

const SERVER: Names = Names {
    calls: "weft_server_calls_total",
    duration: "weft_server_call_duration_seconds",
    in_flight: "weft_server_calls_in_flight",
    request_bytes: "weft_server_request_bytes",
    response_bytes: "weft_server_response_bytes",
};

const CLIENT: Names = Names {
    calls: "weft_client_calls_total",
    duration: "weft_client_call_duration_seconds",
    in_flight: "weft_client_calls_in_flight",
    request_bytes: "weft_client_request_bytes",
    response_bytes: "weft_client_response_bytes",
};

/// One service/method's handles and live counts.
pub(crate) struct MethodEntry {
    pub(crate) service: FastStr,
    pub(crate) method: FastStr,
    side: Side,
    /// Registered on a code's first use: a method that never fails shows
    /// no zero-valued error series.
    calls: [OnceLock<Counter>; CODES],
    duration: Histogram,
    in_flight_gauge: Gauge,
    request_bytes: Histogram,
    response_bytes: Histogram,
    /// What `/status` reports, kept beside the recorder's copy because a
    /// `metrics` handle cannot be read back.
    pub(crate) in_flight: AtomicI64,
    pub(crate) total: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl MethodEntry {
    fn new(side: Side, service: FastStr, method: FastStr) -> MethodEntry {
        let names = names(side);
        let labels = [
            ("service", service.to_string()),
            ("method", method.to_string()),
        ];
        MethodEntry {
            duration: metrics::histogram!(names.duration, &labels),
            in_flight_gauge: metrics::gauge!(names.in_flight, &labels),
            request_bytes: metrics::histogram!(names.request_bytes, &labels),
            response_bytes: metrics::histogram!(names.response_bytes, &labels),
            service,
            method,
            side,
            calls: Default::default(),
            in_flight: AtomicI64::new(0),
            total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Which end of calls the entry counts.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn side(&self) -> Side {
        self.side
    }

    /// A call starts.
    pub(crate) fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.in_flight_gauge.increment(1.0);
    }

    /// A call that started ends with `code` after `seconds`.
    pub(crate) fn end(&self, code: Code, seconds: f64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.in_flight_gauge.decrement(1.0);
        self.total.fetch_add(1, Ordering::Relaxed);
        if code != Code::Ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.duration.record(seconds);
        let slot = &self.calls[code.as_i32() as usize % CODES];
        slot.get_or_init(|| {
            metrics::counter!(
                names(self.side).calls,
                "service" => self.service.to_string(),
                "method" => self.method.to_string(),
                "code" => code_name(code),
            )
        })
        .increment(1);
    }
}

/// Tell the recorder what the metrics of `side` mean (Prometheus `# HELP`).
pub(crate) fn describe(side: Side) {
    let names = names(side);
    let (calls, what) = match side {
        Side::Server => ("Calls answered, by status code.", "served"),
        Side::Client => (
            "Calls made, by status code (retries within one call).",
            "waiting for an answer",
        ),
    };
    metrics::describe_counter!(names.calls, calls);
    metrics::describe_histogram!(
        names.duration,
        metrics::Unit::Seconds,
        "Time from a call reaching the layer to its answer."
    );
    metrics::describe_gauge!(names.in_flight, format!("Calls being {what}."));
    let (request, response) = match side {
        Side::Server => (
            "Request frames received, as read off the wire.",
            "Answer frames sent, as encoded on the wire.",
        ),
        Side::Client => (
            "Request frames sent, as encoded on the wire (one per attempt).",
            "Response frames received, as read off the wire (one per attempt answered).",
        ),
    };
    metrics::describe_histogram!(names.request_bytes, metrics::Unit::Bytes, request);
    metrics::describe_histogram!(names.response_bytes, metrics::Unit::Bytes, response);
}

fn names(side: Side) -> &'static Names {
    match side {
        Side::Server => &SERVER,
        Side::Client => &CLIENT,
    }
}

/// The table of one layer (shared by its clones).
pub(crate) struct MethodTable {
    side: Side,
    /// The service label of every call when not empty, in place of the
    /// one the call's context names.
    default_service: FastStr,
    slots: Box<[OnceLock<MethodEntry>]>,
    other: OnceLock<MethodEntry>,
}

impl MethodTable {
    pub(crate) fn new(side: Side, default_service: FastStr, max_methods: usize) -> MethodTable {
        // Twice the entries, so that probe runs stay short when full.
        let n = max_methods.max(1).saturating_mul(2).next_power_of_two();
        MethodTable {
            side,
            default_service,
            slots: (0..n).map(|_| OnceLock::new()).collect(),
            other: OnceLock::new(),
        }
    }

    /// Entries that hold at most this many methods before `_other`.
    fn max_methods(&self) -> usize {
        self.slots.len() / 2
    }

    /// The service label of a call whose context names `service`.
    pub(crate) fn service<'a>(&'a self, service: &'a FastStr) -> &'a FastStr {
        if self.default_service.is_empty() {
            service
        } else {
            &self.default_service
        }
    }

    /// The entry at `index`, as [`MethodTable::entry`] returned it.
    pub(crate) fn at(&self, index: usize) -> Option<&MethodEntry> {
        match self.slots.get(index) {
            Some(slot) => slot.get(),
            None => self.other.get(),
        }
    }

    /// The entry of `service` (or the configured one) and `method`, made
    /// on first use, and its index for [`MethodTable::at`].
    pub(crate) fn entry(&self, service: &FastStr, method: &FastStr) -> (usize, &MethodEntry) {
        let service = self.service(service);
        let mask = self.slots.len() - 1;
        let start = hash(service, method) as usize;
        // Probing stops after max_methods slots: then the table counts as
        // full for this key even if a far slot is free, which bounds the
        // work of a miss.
        for i in 0..self.max_methods() {
            let index = (start.wrapping_add(i)) & mask;
            let slot = &self.slots[index];
            let e = match slot.get() {
                Some(e) => e,
                None => slot
                    .get_or_init(|| MethodEntry::new(self.side, service.clone(), method.clone())),
            };
            if e.method == *method && e.service == *service {
                return (index, e);
            }
        }
        let other = self.other.get_or_init(|| {
            MethodEntry::new(
                self.side,
                self.default_service.clone(),
                FastStr::from_static_str(OTHER_METHOD),
            )
        });
        (usize::MAX, other)
    }

    /// Every entry made so far.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &MethodEntry> {
        self.slots
            .iter()
            .filter_map(OnceLock::get)
            .chain(self.other.get())
    }
}

/// The sizes the transports report, into the entry a sink names.
impl weft_core::wire::RecordSizes for MethodTable {
    fn request(&self, slot: usize, bytes: usize) {
        if let Some(e) = self.at(slot) {
            e.request_bytes.record(bytes as f64);
        }
    }

    fn response(&self, slot: usize, bytes: usize) {
        if let Some(e) = self.at(slot) {
            e.response_bytes.record(bytes as f64);
        }
    }
}

impl std::fmt::Debug for MethodTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodTable")
            .field("side", &self.side)
            .field("default_service", &self.default_service)
            .field("methods", &self.entries().count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_again_and_bounded() {
        let t = MethodTable::new(Side::Server, "svc".into(), 4);
        let (ia, a) = t.entry(&"".into(), &"a".into());
        let a = a as *const MethodEntry;
        assert_eq!(a, t.entry(&"other".into(), &"a".into()).1 as *const _);
        assert_eq!(a, t.at(ia).unwrap() as *const _);
        assert_ne!(a, t.entry(&"".into(), &"b".into()).1 as *const _);
        assert_eq!(t.entry(&"".into(), &"b".into()).1.service, "svc");
        for i in 0..100 {
            let e = t.entry(&"".into(), &FastStr::new(format!("m{i}"))).1;
            assert!(e.method.starts_with('m') || e.method == OTHER_METHOD);
        }
        let named = t.entries().filter(|e| e.method != OTHER_METHOD).count();
        assert!(named <= 8, "{named} entries past a bound of 4 methods");
        assert_eq!(t.entries().filter(|e| e.method == OTHER_METHOD).count(), 1);
        // Once full, a known method is still found under its own name.
        assert_eq!(t.entry(&"".into(), &"a".into()).1.method, "a");
        let (io, o) = t.entry(&"".into(), &"m99-not-there".into());
        assert_eq!(o.method, OTHER_METHOD);
        assert_eq!(t.at(io).unwrap().method, OTHER_METHOD);
    }
}
