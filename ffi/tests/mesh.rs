//! The shim in the middle of a mesh (issue 13): a Python client (the
//! ffi/python binding) calls a Weft Rust service, which calls a Go server
//! behind the shim (ffi/go's internal/cmd/meshserver), with a deadline and
//! persistent metainfo that cross all three hops. The Go server checks
//! what arrived (the value, a deadline no later than the Python client's
//! but for the hops' transit time, no transient value two hops on) and
//! the Python client checks the answer. Needs Go, python3 with Apache
//! Thrift and the `thrift` compiler; `WEFT_FFI_SKIP_PY=1` skips it, as it
//! does the Python binding's test.

mod support;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use support::{go, lib_dir, Relay};
use weft_core::Address;

#[test]
fn python_to_rust_to_go_carries_deadline_and_metainfo() {
    if std::env::var_os("WEFT_FFI_SKIP_PY").is_some() {
        return;
    }
    let lib = lib_dir();
    let bin = lib.join("go-meshserver");
    let out = go(&["build", "-race", "-o"])
        .arg(&bin)
        .arg("./internal/cmd/meshserver")
        .output()
        .expect("running go build");
    assert!(
        out.status.success(),
        "go build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut server = Command::new(&bin)
        .env("LD_LIBRARY_PATH", &lib)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the Go mesh server");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the Go server said nothing").unwrap();
    let go_addr = first
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();

    let rt = support::runtime();
    let relay = rt.block_on(support::serve(
        "127.0.0.1:0",
        Relay::to(&go_addr.parse::<Address>().unwrap()),
    ));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mesh_client.py");
    let py = Command::new("python3")
        .arg(&script)
        .env("WEFT_LIB", lib.join("libweft.so"))
        .env("WEFT_RELAY_ADDR", relay.local_addr().to_string())
        .output()
        .expect("running python3 (WEFT_FFI_SKIP_PY=1 skips this test)");

    // Closing its stdin stops the Go server; then read all it said.
    drop(server.stdin.take());
    let said: Vec<String> = lines.map_while(Result::ok).collect();
    let status = server.wait().unwrap();
    rt.block_on(relay.shutdown());
    let py_err = String::from_utf8_lossy(&py.stderr);
    println!("Go server:\n{}\nPython:\n{py_err}", said.join("\n"));
    assert!(py.status.success(), "the Python client failed:\n{py_err}");
    assert!(status.success(), "the Go server failed: {status}");
    let calls: Vec<&String> = said.iter().filter(|l| l.starts_with("mesh-call")).collect();
    assert_eq!(calls.len(), 1, "the Go server saw {said:?}");
    assert!(
        calls[0].starts_with("mesh-call ok key=mesh-trace value=\"py-trace-42\""),
        "{}",
        calls[0]
    );
}
