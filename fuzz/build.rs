//! Generates, with Weft's own codegen as the test crates do, the types the
//! typed targets decode: Apache Thrift's `ThriftTest` (every Thrift type,
//! the service's entry messages) and two `.proto` files (maps, oneofs,
//! recursion, well-known types; gRPC's interop messages).
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let shared = manifest.join("../../shared/idl");
    let jobs = [
        (shared.join("thrift/ThriftTest.thrift"), "thrift_test"),
        (
            manifest.join("../tests/codegen-proto/proto/features.proto"),
            "pb_features",
        ),
        (
            shared.join("proto/grpc/testing/messages.proto"),
            "pb_messages",
        ),
    ];
    for (idl, module) in jobs {
        println!("cargo:rerun-if-changed={}", idl.display());
        if let Err(e) = weft_codegen::Builder::new()
            .idl(&idl)
            .emit_warnings(false)
            .output(out.join(format!("{module}.rs")))
            .generate()
        {
            panic!("{e}");
        }
    }
}
