//! Generates the benchmark's message types with pilota-build, as
//! `tests/interop` does.
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for name in ["bench", "thrift_test"] {
        let idl = std::path::PathBuf::from(format!("idl/{name}.thrift"));
        println!("cargo:rerun-if-changed={}", idl.display());
        pilota_build::Builder::thrift()
            .ignore_unused(false)
            .compile_with_config(
                vec![pilota_build::IdlService::from_path(idl)],
                pilota_build::Output::File(out.join(format!("{name}.rs"))),
            );
    }
    // The gRPC benchmark's message, by pilota-build's protobuf backend.
    println!("cargo:rerun-if-changed=idl/echo.proto");
    pilota_build::Builder::pb()
        .include_dirs(vec!["idl".into()])
        .ignore_unused(false)
        .compile_with_config(
            vec![pilota_build::IdlService::from_path("idl/echo.proto".into())],
            pilota_build::Output::File(out.join("echo_pb.rs")),
        );
}
