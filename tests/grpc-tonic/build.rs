//! The interop `.proto` files through tonic-prost-build (needs `protoc`;
//! `scripts/test.sh` installs Debian's `protobuf-compiler`).

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/idl/proto/grpc/testing");
    println!("cargo:rerun-if-changed={}", dir.display());
    tonic_prost_build::configure()
        .compile_protos(&[dir.join("test.proto")], &[dir])
        .expect("tonic-prost-build compiles the interop protos (needs protoc)");
}
