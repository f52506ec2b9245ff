//! Code weft-rpc-codegen generates from `tests/interop/idl/echo.thrift` and from
//! every Thrift file in `../shared/idl/thrift`, one module per file, and the
//! Apache Thrift cross-test server and client built on `ThriftTest`.
#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/generated.rs"));

pub mod cross;
