//! A message plus its [`Context`]: what every Weft service takes and returns.

use crate::context::Context;

/// A request: the message and the call's context.
#[derive(Debug, Clone, Default)]
pub struct Request<T> {
    /// The call's context.
    pub cx: Context,
    /// The message.
    pub message: T,
}

impl<T> Request<T> {
    /// A request with `message` and the given context.
    pub fn new(cx: Context, message: T) -> Request<T> {
        Request { cx, message }
    }

    /// Transform the message, keeping the context.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Request<U> {
        Request {
            cx: self.cx,
            message: f(self.message),
        }
    }
}

/// A response: the message and the context it came back with (backward
/// metainfo, the peer that answered).
#[derive(Debug, Clone, Default)]
pub struct Response<T> {
    /// The call's context as seen when the response arrived.
    pub cx: Context,
    /// The message.
    pub message: T,
}

impl<T> Response<T> {
    /// A response with `message` and the given context.
    pub fn new(cx: Context, message: T) -> Response<T> {
        Response { cx, message }
    }

    /// Transform the message, keeping the context.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            cx: self.cx,
            message: f(self.message),
        }
    }
}
