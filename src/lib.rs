//! Weft facade
pub use weft_core as core;
#[cfg(feature = "thrift")]
pub use weft_thrift as thrift;
