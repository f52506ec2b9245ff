//! `Status` to and from Thrift's `TApplicationException`, in one place.
//!
//! Apache Thrift's exception kinds map to the nearest [`Code`]. Codes with no
//! Thrift kind (deadline exceeded, resource exhausted, unavailable, …) travel
//! as kind `100 + code`, which Apache peers carry as an opaque integer and
//! Weft peers turn back into the same code, so that shedding or a deadline
//! stays recognisable across a hop. A status the server marked
//! [`Delivery::NotSent`] — refused before any handler ran (shed by a limit,
//! refused past its deadline, an open breaker) — travels as `200 + code`, so
//! the caller learns the call was not processed and may retry even a call
//! that is not idempotent.

use pilota::thrift::{
    ApplicationException, ApplicationExceptionKind as K, ProtocolExceptionKind, ThriftException,
};
use weft_core::{Code, Delivery, Status};

/// Offset of the exception kinds that carry a Weft [`Code`] verbatim.
pub const CODE_KIND_BASE: i32 = 100;
/// Offset of the kinds that carry a [`Code`] for a request the server refused
/// before processing it.
pub const REFUSED_KIND_BASE: i32 = 200;

/// The `TApplicationException` kind for a code.
pub fn kind_for_code(code: Code) -> K {
    match code {
        Code::Unimplemented => K::UNKNOWN_METHOD,
        Code::Internal => K::INTERNAL_ERROR,
        Code::InvalidArgument => K::PROTOCOL_ERROR,
        Code::Unknown | Code::Ok => K::UNKNOWN,
        other => K::from_i32(CODE_KIND_BASE + other.as_i32()),
    }
}

/// The code for a `TApplicationException` kind.
pub fn code_for_kind(kind: K) -> Code {
    match kind {
        K::UNKNOWN_METHOD
        | K::INVALID_TRANSFORM
        | K::INVALID_PROTOCOL
        | K::UNSUPPORTED_CLIENT_TYPE => Code::Unimplemented,
        K::INVALID_MESSAGE_TYPE
        | K::WRONG_METHOD_NAME
        | K::BAD_SEQUENCE_ID
        | K::MISSING_RESULT
        | K::INTERNAL_ERROR => Code::Internal,
        K::PROTOCOL_ERROR | K::VALIDATION_FAILED => Code::InvalidArgument,
        // The kind comes from the peer: any i32, so no plain subtraction.
        other => match other.as_i32().checked_sub(CODE_KIND_BASE) {
            Some(n) if (1..=16).contains(&n) => Code::from_i32(n),
            _ => Code::Unknown,
        },
    }
}

/// The exception a server sends for `status`.
pub fn to_application_exception(status: &Status) -> ApplicationException {
    let kind = if status.is_not_sent() && status.code() != Code::Unimplemented {
        K::from_i32(REFUSED_KIND_BASE + status.code().as_i32())
    } else {
        kind_for_code(status.code())
    };
    ApplicationException::new(kind, status.message().to_owned())
}

/// The status for any Thrift error: an application exception keeps its
/// kind's code, a protocol error (malformed input) is `InvalidArgument`, a
/// transport error is `Unavailable`.
pub fn status_from_exception(e: &ThriftException) -> Status {
    match e {
        ThriftException::Application(a) => {
            // The kind comes from the peer: any i32 (a fuzzer sent
            // i32::MIN), so no plain subtraction.
            match a.kind().as_i32().checked_sub(REFUSED_KIND_BASE) {
                Some(n) if (1..=16).contains(&n) => {
                    Status::new(Code::from_i32(n), a.message().clone())
                        .with_delivery(Delivery::NotSent)
                }
                _ => Status::new(code_for_kind(a.kind()), a.message().clone()),
            }
        }
        ThriftException::Protocol(p) => {
            let code = match p.kind() {
                ProtocolExceptionKind::NotImplemented => Code::Unimplemented,
                _ => Code::InvalidArgument,
            };
            Status::new(
                code,
                format!("protocol error ({:?}): {}", p.kind(), p.message()),
            )
        }
        ThriftException::Transport(t) => Status::unavailable(t.message().clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_a_round_trip() {
        for n in 1..=16 {
            let code = Code::from_i32(n);
            assert_eq!(code_for_kind(kind_for_code(code)), code, "{code:?}");
        }
        assert_eq!(code_for_kind(K::BAD_SEQUENCE_ID), Code::Internal);
        // Refused before processing: the caller learns it was never handled.
        let shed = Status::resource_exhausted("busy").with_delivery(Delivery::NotSent);
        let back = status_from_exception(&ThriftException::Application(to_application_exception(
            &shed,
        )));
        assert_eq!(back.code(), Code::ResourceExhausted);
        assert!(back.is_not_sent());
        let handled = Status::resource_exhausted("quota");
        let back = status_from_exception(&ThriftException::Application(to_application_exception(
            &handled,
        )));
        assert!(!back.is_not_sent());
        assert_eq!(code_for_kind(K::from_i32(55)), Code::Unknown);
    }
}
