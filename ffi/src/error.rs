//! Status codes, the error handle, and the guard every `extern "C"`
//! function runs its body in (no panic crosses the boundary).
//!
//! Every fallible function returns a `weft_code` (`WEFT_OK` or one of
//! Weft's `Code` values) and takes a last argument `weft_error **err`: when
//! it is not null, it is set to NULL on entry and, on failure, to a new
//! error handle holding the code and the message, which the caller frees
//! with `weft_error_free`. The message travels in a handle the caller owns,
//! not in thread-local "last error" state, because a Go goroutine may move
//! to another OS thread between two cgo calls, and completions arrive on
//! Weft's own threads: state bound to a thread would be read on the wrong
//! one.

use std::{
    ffi::{c_char, CStr, CString},
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
};

use weft_core::{Code, Status};

use crate::handle::handle_type;

/// A status code: `WEFT_OK` (0) or one of the gRPC codes Weft's `Code`
/// set uses (`WEFT_CANCELLED` ... `WEFT_UNAUTHENTICATED`).
#[allow(non_camel_case_types)]
pub type weft_code = i32;

/// Success.
pub const WEFT_OK: weft_code = 0;
/// The call was cancelled (by the caller, or a server shutting down).
pub const WEFT_CANCELLED: weft_code = 1;
/// An error with no better code, e.g. a peer's undeclared exception.
pub const WEFT_UNKNOWN: weft_code = 2;
/// An argument was null, malformed or out of range.
pub const WEFT_INVALID_ARGUMENT: weft_code = 3;
/// The deadline passed before the call finished.
pub const WEFT_DEADLINE_EXCEEDED: weft_code = 4;
/// Something looked up (a metainfo key, ...) does not exist.
pub const WEFT_NOT_FOUND: weft_code = 5;
/// It exists already.
pub const WEFT_ALREADY_EXISTS: weft_code = 6;
/// The caller may not do this.
pub const WEFT_PERMISSION_DENIED: weft_code = 7;
/// A limit was reached (load shed, too many in flight).
pub const WEFT_RESOURCE_EXHAUSTED: weft_code = 8;
/// The object is not in a state that allows this (a freed handle, a
/// responder already answered, a blocking call on a Weft thread).
pub const WEFT_FAILED_PRECONDITION: weft_code = 9;
/// Aborted.
pub const WEFT_ABORTED: weft_code = 10;
/// Out of range.
pub const WEFT_OUT_OF_RANGE: weft_code = 11;
/// Not implemented (an unknown method).
pub const WEFT_UNIMPLEMENTED: weft_code = 12;
/// An internal error (a panic inside Weft, an invalid reply from a handler).
pub const WEFT_INTERNAL: weft_code = 13;
/// No instance could be reached; retrying may help.
pub const WEFT_UNAVAILABLE: weft_code = 14;
/// Data loss.
pub const WEFT_DATA_LOSS: weft_code = 15;
/// Unauthenticated.
pub const WEFT_UNAUTHENTICATED: weft_code = 16;

/// What an error handle holds.
#[derive(Debug)]
pub(crate) struct ErrorInner {
    pub(crate) code: weft_code,
    pub(crate) message: CString,
}

/// An error: a code and a message. Owned by whoever received it; free
/// with `weft_error_free`.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_error {
    _opaque: [u8; 0],
}

handle_type!(weft_error, ErrorInner, ERRORS, 0x01, "weft_error");

impl weft_error {
    /// A new error handle for `status`.
    pub(crate) fn of(status: &Status) -> *mut weft_error {
        let message = CString::new(status.message().replace('\0', "\\0"))
            .unwrap_or_else(|_| CString::from(c"(unprintable message)"));
        weft_error::register(Arc::new(ErrorInner {
            code: status.code().as_i32(),
            message,
        }))
    }
}

/// The code of `status`, never `WEFT_OK` (a `Status` of code `Ok` that
/// reaches C as a failure would read as success).
pub(crate) fn code_of(status: &Status) -> weft_code {
    match status.code() {
        Code::Ok => WEFT_UNKNOWN,
        c => c.as_i32(),
    }
}

/// The message of a caught panic.
fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Run `f` as the body of an `extern "C"` function: a panic becomes
/// `WEFT_INTERNAL`, an `Err` its code, and `err` (when not null) receives
/// the error handle.
pub(crate) fn guard(
    err: *mut *mut weft_error,
    f: impl FnOnce() -> Result<(), Status>,
) -> weft_code {
    if !err.is_null() {
        // SAFETY: the header documents `err` as null or pointing to a
        // writable `weft_error *`.
        unsafe { err.write(std::ptr::null_mut()) };
    }
    let status = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return WEFT_OK,
        Ok(Err(status)) => status,
        Err(p) => Status::internal(format!("panic inside weft: {}", panic_message(&*p))),
    };
    if !err.is_null() {
        let e = weft_error::of(&status);
        // SAFETY: as above.
        unsafe { err.write(e) };
    }
    code_of(&status)
}

/// Run `f` as the body of an `extern "C"` function that cannot report an
/// error (a free, an accessor): a panic is swallowed and `fallback` returned.
pub(crate) fn quiet<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

// ===== pointer arguments =====

/// Write `value` through the out-pointer `out`.
pub(crate) fn write_out<T>(out: *mut T, what: &str, value: T) -> Result<(), Status> {
    if out.is_null() {
        return Err(Status::invalid_argument(format!("{what} is null")));
    }
    // SAFETY: not null, and the header documents `out` as pointing to a
    // writable `T`.
    unsafe { out.write(value) };
    Ok(())
}

/// Check an out-pointer before doing work whose result it will receive.
pub(crate) fn check_out<T>(out: *mut T, what: &str) -> Result<(), Status> {
    if out.is_null() {
        return Err(Status::invalid_argument(format!("{what} is null")));
    }
    Ok(())
}

/// A NUL-terminated UTF-8 string argument.
pub(crate) fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Status> {
    if p.is_null() {
        return Err(Status::invalid_argument(format!("{what} is null")));
    }
    // SAFETY: not null, and the header documents it as a NUL-terminated
    // string valid for the duration of the call.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| Status::invalid_argument(format!("{what} is not UTF-8: {e}")))
}

/// A byte buffer argument `(p, len)`; `p` may be null when `len` is 0.
pub(crate) fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Status> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Status::invalid_argument(format!(
            "{what} is null with length {len}"
        )));
    }
    if len > isize::MAX as usize {
        return Err(Status::invalid_argument(format!(
            "{what} length {len} is too large"
        )));
    }
    // SAFETY: not null, length in range, and the header documents `(p,
    // len)` as readable for the duration of the call.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

// ===== extern "C" =====

/// The code of an error; `WEFT_INVALID_ARGUMENT` for a null or invalid
/// handle. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_error_code(err: *const weft_error) -> weft_code {
    quiet(WEFT_INTERNAL, || match weft_error::get(err) {
        Ok(e) => e.code,
        Err(_) => WEFT_INVALID_ARGUMENT,
    })
}

/// The message of an error, NUL-terminated UTF-8, valid until the error
/// is freed. For a null or invalid handle, a static string saying so
/// (never NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn weft_error_message(err: *const weft_error) -> *const c_char {
    quiet(c"weft: panic reading an error".as_ptr(), || {
        match weft_error::get(err) {
            // The registry holds its own reference until `weft_error_free`,
            // so the string outlives this `Arc`.
            Ok(e) => e.message.as_ptr(),
            Err(_) => c"weft: not a valid weft_error handle".as_ptr(),
        }
    })
}

/// Free an error. NULL is ignored; a freed or invalid handle is ignored
/// (nothing is freed twice). Thread-safe.
#[no_mangle]
pub extern "C" fn weft_error_free(err: *mut weft_error) {
    quiet((), || {
        let _ = weft_error::take(err);
    })
}

/// The name of a code (`"DEADLINE_EXCEEDED"`), a static string; `"UNKNOWN"`
/// for a value outside the set. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_code_name(code: weft_code) -> *const c_char {
    let name: &'static CStr = match code {
        WEFT_OK => c"OK",
        WEFT_CANCELLED => c"CANCELLED",
        WEFT_INVALID_ARGUMENT => c"INVALID_ARGUMENT",
        WEFT_DEADLINE_EXCEEDED => c"DEADLINE_EXCEEDED",
        WEFT_NOT_FOUND => c"NOT_FOUND",
        WEFT_ALREADY_EXISTS => c"ALREADY_EXISTS",
        WEFT_PERMISSION_DENIED => c"PERMISSION_DENIED",
        WEFT_RESOURCE_EXHAUSTED => c"RESOURCE_EXHAUSTED",
        WEFT_FAILED_PRECONDITION => c"FAILED_PRECONDITION",
        WEFT_ABORTED => c"ABORTED",
        WEFT_OUT_OF_RANGE => c"OUT_OF_RANGE",
        WEFT_UNIMPLEMENTED => c"UNIMPLEMENTED",
        WEFT_INTERNAL => c"INTERNAL",
        WEFT_UNAVAILABLE => c"UNAVAILABLE",
        WEFT_DATA_LOSS => c"DATA_LOSS",
        WEFT_UNAUTHENTICATED => c"UNAUTHENTICATED",
        _ => c"UNKNOWN",
    };
    name.as_ptr()
}

/// The number of live Weft objects of every kind (handles not yet freed,
/// buffers and errors included, and the context and responder of each call
/// a server is serving): 0 once a program has freed all it got. Leak checks
/// need it because the objects are reachable from Weft's registries, where
/// LeakSanitizer does not count them as leaked. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_live_handles() -> usize {
    quiet(0, || {
        ERRORS.live()
            + crate::buf::BUFFERS.live()
            + crate::runtime::RUNTIMES.live()
            + crate::ctx::CTXS.live()
            + crate::client::CLIENT_OPTIONS.live()
            + crate::client::CLIENTS.live()
            + crate::queue::QUEUES.live()
            + crate::server::SERVER_OPTIONS.live()
            + crate::server::RESPONDERS.live()
            + crate::server::SERVERS.live()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let mut err = std::ptr::null_mut();
        let code = guard(&mut err, || panic!("boom in a body"));
        assert_eq!(code, WEFT_INTERNAL);
        assert_eq!(weft_error_code(err), WEFT_INTERNAL);
        // SAFETY: a NUL-terminated string the live error handle owns.
        let msg = unsafe { CStr::from_ptr(weft_error_message(err)) };
        assert!(msg.to_str().unwrap().contains("boom in a body"), "{msg:?}");
        weft_error_free(err);
        // An `Ok` status reaching C as a failure is not read as success.
        assert_eq!(
            guard(std::ptr::null_mut(), || Err(Status::new(Code::Ok, "odd"))),
            WEFT_UNKNOWN
        );
        // A message with a NUL byte is kept, escaped.
        let mut err = std::ptr::null_mut();
        guard(&mut err, || Err(Status::internal("a\0b")));
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(weft_error_message(err)) };
        assert_eq!(msg.to_str().unwrap(), "a\\0b");
        weft_error_free(err);
    }
}
