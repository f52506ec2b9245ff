//! Weft's governance as `tower` layers.
#![forbid(unsafe_code)]
