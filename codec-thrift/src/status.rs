//! `Status` to and from Thrift's `TApplicationException`, in one place.
//!
//! Apache Thrift's exception kinds map to the nearest [`Code`]. Codes with no
//! Thrift kind (deadline exceeded, resource exhausted, unavailable, …) travel
//! as kind `100 + code`, which Apache peers carry as an opaque integer and
//! Weft peers turn back into the same code, so that shedding or a deadline
//! stays recognisable across a hop.

use pilota::thrift::{
    ApplicationException, ApplicationExceptionKind as K, ProtocolExceptionKind, ThriftException,
};
use weft_core::{Code, Status};

/// Offset of the exception kinds that carry a Weft [`Code`] verbatim.
pub const CODE_KIND_BASE: i32 = 100;

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
        other => {
            let n = other.as_i32() - CODE_KIND_BASE;
            if (1..=16).contains(&n) {
                Code::from_i32(n)
            } else {
                Code::Unknown
            }
        }
    }
}

/// The exception a server sends for `status`.
pub fn to_application_exception(status: &Status) -> ApplicationException {
    ApplicationException::new(kind_for_code(status.code()), status.message().to_owned())
}

/// The status for any Thrift error: an application exception keeps its
/// kind's code, a protocol error (malformed input) is `InvalidArgument`, a
/// transport error is `Unavailable`.
pub fn status_from_exception(e: &ThriftException) -> Status {
    match e {
        ThriftException::Application(a) => {
            Status::new(code_for_kind(a.kind()), a.message().clone())
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
        assert_eq!(code_for_kind(K::from_i32(55)), Code::Unknown);
    }
}
