//! Codegen's reading of hostile `.proto` files: protobuf-parse's parser and
//! type checker behind the bounds and checks Weft puts around them
//! (`Builder::check`). Any input gives an error or passes: never a panic
//! that escapes, a hang or a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_fuzz::quiet_caught_panics();
    let path = weft_fuzz::idl_file("fuzz.proto", data);
    let _ = weft_codegen::Builder::new().idl(&path).check();
});
