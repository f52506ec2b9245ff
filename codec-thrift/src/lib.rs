//! Apache Thrift for Weft: binary and compact protocols; framed, buffered,
//! Apache THeader and Kitex TTHeader transports; and the codecs that run them
//! over `weft-rpc-core` connections.
//!
//! A server detects what each connection speaks from its first bytes, so one
//! port serves Kitex, Volo, Apache Thrift and Weft clients alike. Decoding is
//! zero-copy: strings are `FastStr` and binaries `Bytes` that slice the
//! received frame, and every length the wire states is checked against the
//! bytes that remain and against [`weft_core::Limits`] before anything is
//! allocated.
//!
//! ```
//! use bytes::BytesMut;
//! use weft_thrift::frame::{begin_frame, detect, finish_frame, split_frame, Transport};
//! use weft_thrift::protocol::{DecodeLimits, Protocol};
//!
//! // A TTHeader frame carrying a persistent metainfo key and an empty body.
//! let mut buf = BytesMut::new();
//! let mark = begin_frame(&mut buf, Transport::TTHeader, Protocol::Binary, 7, 0, false, |w| {
//!     w.string("RPC_PERSIST_", "tenant", "blue");
//!     w.ints(&[]);
//! });
//! finish_frame(&mut buf, mark, 1 << 20).unwrap();
//!
//! assert_eq!(detect(&buf).unwrap(), Some((Transport::TTHeader, Protocol::Binary)));
//! let frame = split_frame(&mut buf, Transport::TTHeader, Protocol::Binary, 1 << 20, DecodeLimits::default())
//!     .unwrap()
//!     .unwrap();
//! let header = frame.header.unwrap();
//! assert_eq!(header.seq_id, 7);
//! assert_eq!(header.string("RPC_PERSIST_tenant").unwrap(), "blue");
//! ```
#![forbid(unsafe_code)]

pub mod biz;
pub mod codec;
pub mod frame;
pub mod protocol;
pub mod route;
pub mod status;

pub use biz::BizStatus;
pub use codec::{
    EntryMessage, Reply, ThriftClientCodec, ThriftServerCodec, CONNECTION_RESET_KEY,
    IDL_SERVICE_NAME, MULTIPLEX_SEPARATOR,
};
pub use frame::{Header, Transport};
pub use protocol::{BinaryInput, CompactInput, DecodeLimits, Protocol};
pub use route::{Route, Routed};

/// Re-exported for generated code.
pub use pilota;
