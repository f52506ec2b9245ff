//! Code weft-rpc-codegen generates from every `.proto` file in
//! `../shared/idl/proto` and from `proto/features.proto`, one module per
//! file, so that building this crate proves it compiles.
#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/generated.rs"));
