fn main() {
    let idl = std::path::PathBuf::from("idl/echo.thrift");
    println!("cargo:rerun-if-changed={}", idl.display());
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("echo.rs");
    pilota_build::Builder::thrift()
        .ignore_unused(false)
        .compile_with_config(
            vec![pilota_build::IdlService::from_path(idl)],
            pilota_build::Output::File(out),
        );

    // The gRPC echo service Kitex's nphttp2 side talks to (kitex_grpc test),
    // generated as a user's build.rs would: weft-rpc-codegen.
    let proto = std::path::PathBuf::from("idl/echo.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("echo_grpc.rs");
    weft_codegen::Builder::new()
        .idl(&proto)
        .output(&out)
        .generate()
        .unwrap_or_else(|e| panic!("{}: {e}", proto.display()));
}
