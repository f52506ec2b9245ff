//! Generates the Hello service from `idl/hello.thrift` with weft-rpc-codegen.
fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("hello.rs");
    if let Err(e) = weft_codegen::Builder::new()
        .idl("idl/hello.thrift")
        .output(&out)
        .generate()
    {
        panic!("{e}");
    }
    println!("cargo:rerun-if-changed=idl/hello.thrift");
}
