//! The one error type: a [`Code`], a message, optional details, and whether the
//! request may have reached the server.

use std::{
    any::Any,
    fmt,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use faststr::FastStr;

/// Status codes, the gRPC set, so that one vocabulary serves Thrift and gRPC alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Not an error; returned on success.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error, for example an exception from an unknown error space.
    Unknown = 2,
    /// The client sent an argument the server cannot accept.
    InvalidArgument = 3,
    /// The deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// A requested entity was not found.
    NotFound = 5,
    /// The entity that a client tried to create already exists.
    AlreadyExists = 6,
    /// The caller lacks permission.
    PermissionDenied = 7,
    /// A resource (quota, concurrency, memory) is exhausted; the request was shed.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted, typically due to a concurrency issue.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The method is not implemented or not known by the server.
    Unimplemented = 12,
    /// An internal invariant was broken, or the peer sent something malformed.
    Internal = 13,
    /// The service is currently unavailable; retrying may help.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request does not have valid authentication credentials.
    Unauthenticated = 16,
}

impl Code {
    /// The code for a numeric gRPC status value; unknown values map to [`Code::Unknown`].
    pub fn from_i32(value: i32) -> Code {
        match value {
            0 => Code::Ok,
            1 => Code::Cancelled,
            2 => Code::Unknown,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// The numeric gRPC value of this code.
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Whether a failed request may have been seen by the server. Retries of calls
/// that are not idempotent are only safe when it was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The request never left this process (no connection, refused before the write).
    NotSent,
    /// Some or all of the request may have reached the server.
    MaybeSent,
}

/// The error type of every Weft client, server and layer.
#[derive(Clone)]
pub struct Status {
    code: Code,
    message: FastStr,
    details: Bytes,
    delivery: Delivery,
    refusal: bool,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
    unsent: Option<Unsent>,
}

/// The request a not-sent error hands back ([`Status::with_unsent`]).
/// Shared by the status's clones, and taken at most once; only refusals
/// make one, so the call that succeeds never pays for it.
#[derive(Clone)]
struct Unsent(Arc<Mutex<Option<Box<dyn Any + Send>>>>);

impl Status {
    /// A status with the given code and message. The request is assumed to
    /// possibly have reached the server, the safe default for retries.
    pub fn new(code: Code, message: impl Into<FastStr>) -> Status {
        Status {
            code,
            message: message.into(),
            details: Bytes::new(),
            delivery: Delivery::MaybeSent,
            refusal: false,
            source: None,
            unsent: None,
        }
    }

    /// A server's own refusal of a call before its handler ran (load shed,
    /// deadline already passed, draining): the only kind of error a server
    /// sends back as "not processed", safe for the caller to retry
    /// elsewhere even when the call is not idempotent.
    ///
    /// Whatever else a handler returns travels as "may have been
    /// processed", even a [`Delivery::NotSent`] error from one of its own
    /// downstream calls: by then the handler may have done its work.
    pub fn refused(code: Code, message: impl Into<FastStr>) -> Status {
        Status {
            delivery: Delivery::NotSent,
            refusal: true,
            ..Status::new(code, message)
        }
    }

    /// Mark this status as the server's own refusal ([`Status::refused`]),
    /// keeping its code, message, details and source.
    #[must_use]
    pub fn into_refusal(mut self) -> Status {
        self.delivery = Delivery::NotSent;
        self.refusal = true;
        self
    }

    /// True for a server's own refusal ([`Status::refused`]).
    pub fn is_refusal(&self) -> bool {
        self.refusal
    }

    /// Shorthand for [`Code::Cancelled`].
    pub fn cancelled(message: impl Into<FastStr>) -> Status {
        Status::new(Code::Cancelled, message)
    }
    /// Shorthand for [`Code::Unknown`].
    pub fn unknown(message: impl Into<FastStr>) -> Status {
        Status::new(Code::Unknown, message)
    }
    /// Shorthand for [`Code::InvalidArgument`].
    pub fn invalid_argument(message: impl Into<FastStr>) -> Status {
        Status::new(Code::InvalidArgument, message)
    }
    /// Shorthand for [`Code::DeadlineExceeded`].
    pub fn deadline_exceeded(message: impl Into<FastStr>) -> Status {
        Status::new(Code::DeadlineExceeded, message)
    }
    /// Shorthand for [`Code::ResourceExhausted`].
    pub fn resource_exhausted(message: impl Into<FastStr>) -> Status {
        Status::new(Code::ResourceExhausted, message)
    }
    /// Shorthand for [`Code::Unimplemented`].
    pub fn unimplemented(message: impl Into<FastStr>) -> Status {
        Status::new(Code::Unimplemented, message)
    }
    /// Shorthand for [`Code::Internal`].
    pub fn internal(message: impl Into<FastStr>) -> Status {
        Status::new(Code::Internal, message)
    }
    /// Shorthand for [`Code::Unavailable`].
    pub fn unavailable(message: impl Into<FastStr>) -> Status {
        Status::new(Code::Unavailable, message)
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same status with `message` instead: how a layer adds where it
    /// happened (which instance, how many attempts) and keeps the code,
    /// delivery, details and source.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<FastStr>) -> Status {
        self.message = message.into();
        self
    }

    /// Opaque details (gRPC's `grpc-status-details-bin`); empty when absent.
    pub fn details(&self) -> &Bytes {
        &self.details
    }

    /// Attach details bytes.
    #[must_use]
    pub fn with_details(mut self, details: Bytes) -> Status {
        self.details = details;
        self
    }

    /// Attach the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Status {
        self.source = Some(Arc::new(source));
        self
    }

    /// Mark whether the request may have reached the server. A request
    /// handed back ([`Status::with_unsent`]) is dropped when it may have.
    #[must_use]
    pub fn with_delivery(mut self, delivery: Delivery) -> Status {
        self.delivery = delivery;
        self.refusal &= delivery == Delivery::NotSent;
        if delivery == Delivery::MaybeSent {
            self.unsent = None;
        }
        self
    }

    /// Hand back the request this error did not send, so that a retry can
    /// send it again without having kept a copy of every call. Only a
    /// [`Delivery::NotSent`] error carries one (on any other this does
    /// nothing): a request that may have reached the server is no longer
    /// the caller's to repeat unless the call is idempotent, and the retry
    /// layer keeps its own copy of those.
    ///
    /// Every Weft client and layer that refuses a call hands back what it
    /// was given, a `Request<T>` of the type it was called with; a service
    /// of your own can do the same.
    #[must_use]
    pub fn with_unsent<T: Send + 'static>(mut self, request: T) -> Status {
        if self.delivery == Delivery::NotSent {
            self.unsent = Some(Unsent(Arc::new(Mutex::new(Some(Box::new(request))))));
        }
        self
    }

    /// Take back the request handed back with this error
    /// ([`Status::with_unsent`]), when it is a `T`. Clones of a status share
    /// it: the first to take it gets it.
    pub fn take_unsent<T: 'static>(&self) -> Option<T> {
        let unsent = self.unsent.as_ref()?;
        let mut slot = unsent.0.lock().unwrap_or_else(|e| e.into_inner());
        if !slot.as_ref().is_some_and(|b| b.is::<T>()) {
            return None;
        }
        slot.take()?.downcast().ok().map(|b| *b)
    }

    /// Whether the request may have reached the server.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// True when the request certainly never reached the server, so even a
    /// non-idempotent call may be retried.
    pub fn is_not_sent(&self) -> bool {
        self.delivery == Delivery::NotSent
    }

    /// The status for an I/O error on a connection.
    pub fn from_io(err: std::io::Error, delivery: Delivery) -> Status {
        let code = match err.kind() {
            std::io::ErrorKind::TimedOut => Code::DeadlineExceeded,
            _ => Code::Unavailable,
        };
        Status::new(code, err.to_string())
            .with_delivery(delivery)
            .with_source(err)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Status");
        d.field("code", &self.code).field("message", &self.message);
        if !self.details.is_empty() {
            d.field("details", &self.details);
        }
        d.field("delivery", &self.delivery);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Status {
    fn from(err: std::io::Error) -> Self {
        Status::from_io(err, Delivery::MaybeSent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_are_refusals() {
        let r = Status::refused(Code::ResourceExhausted, "shed");
        assert!(r.is_refusal() && r.is_not_sent());
        // A downstream call's NotSent error is not the server's refusal.
        let downstream = Status::unavailable("refused").with_delivery(Delivery::NotSent);
        assert!(downstream.is_not_sent() && !downstream.is_refusal());
        // Once it may have been processed, it is no refusal any more.
        assert!(!r.clone().with_delivery(Delivery::MaybeSent).is_refusal());
        let kept = Status::deadline_exceeded("late")
            .with_source(std::io::Error::other("why"))
            .into_refusal();
        assert!(kept.is_refusal() && std::error::Error::source(&kept).is_some());
    }

    #[test]
    fn codes_round_trip_through_i32() {
        for v in 0..=16 {
            assert_eq!(Code::from_i32(v).as_i32(), v);
        }
        assert_eq!(Code::from_i32(99), Code::Unknown);
    }

    #[test]
    fn default_delivery_is_conservative() {
        let s = Status::internal("x");
        assert_eq!(s.delivery(), Delivery::MaybeSent);
        assert!(!s.is_not_sent());
        assert!(Status::unavailable("y")
            .with_delivery(Delivery::NotSent)
            .is_not_sent());
    }
}
