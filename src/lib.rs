//! Weft facade
pub use weft_core as core;
