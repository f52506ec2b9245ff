//! The contract and the transport every Weft crate builds on.
//!
//! Every client and server is a [`tower::Service`] from [`Request<T>`] to
//! [`Response<U>`] with [`Status`] as the error. A request carries a
//! [`Context`]: service and method, caller, deadline, and [`Metainfo`] in the
//! three scopes Kitex and Volo use. Wire protocols plug in through
//! [`ServerCodec`] and [`ClientCodec`], which turn bytes into messages without
//! doing I/O; [`ServerBuilder`] and [`ClientBuilder`] drive them over TCP or
//! Unix sockets, with multiplexed or pooled client connections, batched writes,
//! [`Limits`] on everything the wire says, and graceful shutdown.
//!
//! ```
//! use std::time::Duration;
//! use weft_core::{Code, Context, Request, Status};
//!
//! let mut cx = Context::new("echo", "Echo");
//! cx.set_timeout(Duration::from_millis(200));
//! cx.metainfo.persistent.insert("tenant", "blue");
//! let req = Request::new(cx, "hello");
//! assert_eq!(req.cx.method, "Echo");
//!
//! let err = Status::new(Code::Unavailable, "no instance");
//! assert!(!err.is_not_sent()); // may have reached a server: retry with care
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
pub mod context;
pub mod discover;
pub mod limits;
pub mod message;
pub mod server;
pub mod status;
pub mod transport;
pub mod wire;

pub use client::{Client, ClientBuilder, ConnectionMode};
pub use codec::{ClientCodec, Inbound, ServerCodec};
pub use context::{Context, KvList, Metainfo, TraceParent, TraceSlot, TRACEPARENT, TRACESTATE};
pub use discover::{
    Discover, Instance, Instances, Registry, RegistryFuture, StaticDiscover, DEFAULT_WEIGHT,
};
pub use limits::Limits;
pub use message::{Request, Response};
pub use server::{
    Accepted, Prefixed, Protocol, ServerBuilder, ServerHandle, ServerWatch, Shutdown,
};
pub use status::{Code, Delivery, Status};
pub use transport::{Address, Connector, Listener, SocketOptions, Stream};

/// Re-exported so users need not depend on them directly.
pub use {bytes, faststr, http, tower};
