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
}
