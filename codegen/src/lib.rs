//! Weft's code generator: Thrift IDL in, one Rust file out — message types
//! (from [pilota-build](https://crates.io/crates/pilota-build), zero-copy
//! `FastStr` and `Bytes`, keywords escaped, recursive types boxed) and, for
//! each service, including those it `extends`:
//!
//! - `XxxRequest` / `XxxResponse`: the arguments and results of every method,
//!   implementing `weft::thrift::EntryMessage`;
//! - the handler trait `Xxx`, one `async fn` per method taking the call's
//!   `&mut Context` and the arguments by name;
//! - `XxxMethodError` for each method that declares exceptions: one variant
//!   per exception and one for any other failure (a `Status`);
//! - `XxxServer<H>`: a `tower::Service` that routes calls by method name to
//!   the handler, with `serve` to run it alone on an address;
//! - `XxxClient<T>`: a typed client over any `tower::Service` that carries
//!   `XxxRequest` to `XxxResponse`, by default a `weft::core::Client`.
//!
//! From `.proto` files (chosen by extension; parsed and type-checked with
//! protobuf-parse, pure Rust, no `protoc`) it emits pilota-build's protobuf
//! messages, each implementing `weft::protobuf::Validate` (UTF-8 in every
//! `string` field, nested messages, repeated fields, maps and oneofs
//! walked), and per service `package.Service`:
//!
//! - a `weft::protobuf::MethodDesc` constant per method (`SERVICE_METHOD`)
//!   with its path `/package.Service/Method` and shape;
//! - `XxxRequest` / `XxxResponse`: one variant per method, a message or a
//!   stream (`Streaming<M>` in, `ResponseStream<M>` out), implementing
//!   `ServiceRequest` / `ServiceResponse`;
//! - the handler trait `Xxx` (`Send + Sync + 'static`), `XxxServer<H>`
//!   (`register` on a `GrpcServer`, or `serve`) and `XxxClient<T>` over a
//!   `GrpcClient` or middleware around one.
//!
//! The code names the runtime by absolute paths (`::weft::...`), so the crate
//! using it needs only the facade as a dependency, under the name `weft`:
//! `weft = { package = "weft-rpc", version = "..." }`. The same library drives the
//! `weft` command (`weft gen`, `weft init`).
//!
//! From a build script:
//!
//! ```no_run
//! // in build.rs's main:
//! weft_codegen::Builder::new()
//!     .idl("idl/echo.thrift")
//!     .include_dir("idl/shared")
//!     .compile(); // writes $OUT_DIR/echo.rs, or prints file:line: error and exits
//! ```
//!
//! ```ignore
//! // src/lib.rs
//! include!(concat!(env!("OUT_DIR"), "/echo.rs"));
//! use echo::weft_echo::{Echo, EchoClient, EchoServer};
//! ```
//!
//! Before generating, the IDL is checked as Apache Thrift's compiler
//! checks it (field ids positive and unique, methods unique also across
//! `extends`, `oneway` methods without exceptions, `throws` of exceptions
//! only, constants and defaults of their declared types, every type and
//! include found, ...). Each problem is a [`Diagnostic`] such as
//! `echo.thrift:12:5: error: field id 3 is used twice in struct Foo (first
//! at 10:5)`; what Apache only warns about (`optional` on an argument, a
//! field without an id, two enum names for one value) is a warning, and the
//! code generated for it compiles. [`Builder::check`] runs the checks alone.
//!
//! Errors in the IDL come back as an [`Error`] naming the file and line:
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let idl = dir.path().join("bad.thrift");
//! std::fs::write(&idl, "struct A {\n  1: i32 x,\n  2: oops\n}\n").unwrap();
//! let err = weft_codegen::Builder::new()
//!     .idl(&idl)
//!     .output(dir.path().join("bad.rs"))
//!     .generate()
//!     .unwrap_err();
//! // `oops` is read as the field's type, so the name is missing at `}`.
//! assert!(err.to_string().starts_with(&format!("{}:4:1: error: found '}}' expected", idl.display())), "{err}");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod backend;
mod builder;
mod check;
mod error;
mod grpc;
mod idl;
mod init;
mod normalize;
mod pb_backend;
mod presence;
mod proto;
mod service;
mod validate;

pub use builder::{module_name, Builder, DEFAULT_PB_PILOTA_PATH, DEFAULT_PILOTA_PATH};
pub use error::{Diagnostic, Error, Severity, SyntaxError};
pub use init::{init, InitOptions, WeftDependency, FACADE_PACKAGE};
