//! `src/generated.rs` is checked in: this fails when it is not what
//! `weft gen` writes from `idl/hello.proto` today. Regenerate with
//!
//! ```text
//! cargo run -p weft-rpc-codegen --bin weft -- gen examples/grpc-hello/idl/hello.proto -o examples/grpc-hello/src/generated.rs
//! ```

use std::path::{Path, PathBuf};

#[test]
fn generated_code_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The file's name is its module's: write a `generated.rs` too.
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("grpc-hello");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("generated.rs");
    weft_codegen::Builder::new()
        .idl(dir.join("idl/hello.proto"))
        .generate_unused(true)
        .emit_rerun_if_changed(false)
        .output(&out)
        .generate()
        .unwrap();
    let fresh = std::fs::read_to_string(&out).unwrap();
    let checked_in = std::fs::read_to_string(dir.join("src/generated.rs")).unwrap();
    assert!(
        fresh == checked_in,
        "examples/grpc-hello/src/generated.rs has drifted from idl/hello.proto: regenerate it with\n  \
         cargo run -p weft-rpc-codegen --bin weft -- gen examples/grpc-hello/idl/hello.proto -o examples/grpc-hello/src/generated.rs"
    );
}
