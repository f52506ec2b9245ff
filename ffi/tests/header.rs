//! The checked-in header `include/weft.h` is what cbindgen makes of the
//! code now: a test, rather than a build script, so that building the
//! library never writes into the source tree, and CI fails on drift.

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 header");
    let path = dir.join("include/weft.h");
    if std::env::var_os("WEFT_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("writing include/weft.h");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "ffi/include/weft.h is out of date with ffi/src. Update it with\n\n    \
         WEFT_UPDATE_HEADER=1 cargo test -p weft-ffi --test header\n\nand commit the result."
    );
}
