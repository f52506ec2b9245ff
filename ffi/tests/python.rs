//! The Python binding (`ffi/python`) against a Weft Rust echo server:
//! Apache Thrift's generated Python structs round-trip through the shim.
//! Needs `python3` with Apache Thrift's library and the `thrift` compiler
//! (scripts/test.sh installs both); `WEFT_FFI_SKIP_PY=1` skips it.

use std::{path::Path, process::Command};

use weft_core::ServerBuilder;
use weft_interop::EchoHandler;

#[test]
fn python_binding_calls_a_weft_rust_server() {
    if std::env::var_os("WEFT_FFI_SKIP_PY").is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().unwrap().join("libweft.so");
    assert!(lib.exists(), "no {}", lib.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(weft_interop::serve(
            "127.0.0.1:0",
            ServerBuilder::new(),
            EchoHandler::default(),
        ))
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tests/test_echo.py");
    let out = Command::new("python3")
        .arg(&script)
        .env("WEFT_LIB", &lib)
        .env("WEFT_ECHO_ADDR", server.local_addr().to_string())
        .output()
        .expect("running python3 (WEFT_FFI_SKIP_PY=1 skips this test)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python tests failed:\n{stderr}");
    println!("{stderr}");
    rt.block_on(server.shutdown());
}
