//! Generates Rust with weft-rpc-codegen for the echo service, for
//! `idl/keywords.thrift` (Rust keywords as IDL names), `idl/collisions.thrift`
//! (IDL items named as the generated ones would be) and for every
//! Thrift file in `../shared/idl/thrift` (jaeger/ included), each into its
//! own module, so that building this crate proves they all compile.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

fn thrift_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "thrift"))
        .collect();
    files.sort();
    files
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let corpus = manifest.join("../../../shared/idl/thrift");
    println!("cargo:rerun-if-changed={}", corpus.display());
    println!("cargo:rerun-if-changed={}", corpus.join("jaeger").display());

    let mut jobs = vec![
        (
            manifest.join("../interop/idl/echo.thrift"),
            "echo".to_string(),
        ),
        (manifest.join("idl/keywords.thrift"), "keywords".to_string()),
        (
            manifest.join("idl/collisions.thrift"),
            "collisions".to_string(),
        ),
    ];
    println!("cargo:rerun-if-changed={}", manifest.join("idl").display());
    for f in thrift_files(&corpus) {
        jobs.push((f.clone(), weft_codegen::module_name(&f)));
    }
    for f in thrift_files(&corpus.join("jaeger")) {
        let module = format!("jaeger_{}", weft_codegen::module_name(&f));
        jobs.push((f, module));
    }

    let mut index = String::new();
    let mut failures = Vec::new();
    for (idl, module) in &jobs {
        let file = out.join(format!("{module}.rs"));
        match weft_codegen::Builder::new()
            .idl(idl)
            .emit_warnings(false)
            .output(&file)
            .generate()
        {
            Ok(_) => {
                let _ = writeln!(
                    index,
                    "include!(concat!(env!(\"OUT_DIR\"), \"/{module}.rs\"));"
                );
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    let _ = writeln!(
        index,
        "/// The IDL files generated, one module each.\npub const GENERATED: &[(&str, &str)] = &[{}];",
        jobs.iter()
            .map(|(idl, m)| format!("({:?}, {m:?})", idl.file_name().unwrap().to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    bad_idl(&manifest, &out, &mut index);
    std::fs::write(out.join("generated.rs"), index).unwrap();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("error: {f}");
        }
        panic!("{} IDL files failed to generate", failures.len());
    }
}

/// The broken IDL files in `bad-idl/` that codegen accepts (with warnings)
/// are generated into `pub mod bad_idl`, so that building this crate
/// proves their code compiles; `BAD_IDL_ACCEPTED` lists them. Those it
/// rejects are `codegen/tests/bad_idl.rs`'s business.
fn bad_idl(manifest: &Path, out: &Path, index: &mut String) {
    let dir = manifest.join("bad-idl");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut accepted = Vec::new();
    let _ = writeln!(
        index,
        "/// Code generated from the accepted files of `bad-idl/`.\npub mod bad_idl {{"
    );
    for f in thrift_files(&dir) {
        let module = weft_codegen::module_name(&f);
        let file = out.join("bad_idl").join(format!("{module}.rs"));
        let generated = weft_codegen::Builder::new()
            .idl(&f)
            .include_dir(dir.join("inc"))
            .emit_warnings(false)
            .output(&file)
            .generate();
        if generated.is_ok() {
            let _ = writeln!(
                index,
                "    include!(concat!(env!(\"OUT_DIR\"), \"/bad_idl/{module}.rs\"));"
            );
            accepted.push(f.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    let _ = writeln!(index, "}}");
    let _ = writeln!(
        index,
        "/// The files of `bad-idl/` generated into [`bad_idl`].\npub const BAD_IDL_ACCEPTED: &[&str] = &{accepted:?};"
    );
}
