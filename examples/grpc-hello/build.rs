//! Generates the Greeter service from `idl/hello.proto` with weft-rpc-codegen
//! (pure Rust: no protoc).
fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("hello.rs");
    if let Err(e) = weft_codegen::Builder::new()
        .idl("idl/hello.proto")
        .output(&out)
        .generate()
    {
        panic!("{e}");
    }
    println!("cargo:rerun-if-changed=idl/hello.proto");
}
