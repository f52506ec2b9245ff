//! Codegen's reading of hostile Thrift IDL: normalisation, pilota's parser,
//! Weft's own IDL reader and every check Apache's compiler makes
//! (`Builder::check`, which runs all of them before generation). Any input
//! gives diagnostics or an error: never a panic, a hang or a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = weft_fuzz::idl_file("fuzz.thrift", data);
    let _ = weft_codegen::Builder::new().idl(&path).check();
});
