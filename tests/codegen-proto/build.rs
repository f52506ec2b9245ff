//! Generates Rust with weft-rpc-codegen for every `.proto` file in
//! `../shared/idl/proto` (the directory tree walked) and for
//! `proto/features.proto` and `proto/collisions.proto`, each into its own
//! module, so that building this crate proves they all compile.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            proto_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "proto") {
            out.push(p);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let corpus = manifest.join("../../../shared/idl/proto");
    let googleapis = corpus.join("googleapis");
    println!("cargo:rerun-if-changed={}", corpus.display());

    let mut files = vec![
        manifest.join("proto/features.proto"),
        manifest.join("proto/collisions.proto"),
    ];
    proto_files(&corpus, &mut files);
    let mut index = String::new();
    let mut generated = Vec::new();
    let mut failures = Vec::new();
    for idl in &files {
        let rel = idl
            .strip_prefix(&corpus)
            .or_else(|_| idl.strip_prefix(manifest.join("proto")))
            .unwrap_or(idl);
        let module = rel
            .with_extension("")
            .to_string_lossy()
            .replace(['/', '.', '-'], "_");
        let module = format!("pb_{module}");
        let file = out.join(format!("{module}.rs"));
        let mut b = weft_codegen::Builder::new().idl(idl).output(&file);
        if idl.starts_with(&googleapis) {
            b = b.include_dir(&googleapis);
        }
        match b.generate() {
            Ok(_) => {
                let _ = writeln!(
                    index,
                    "include!(concat!(env!(\"OUT_DIR\"), \"/{module}.rs\"));"
                );
                generated.push((rel.display().to_string(), module));
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    let _ = writeln!(
        index,
        "/// The `.proto` files generated, each with its module.\npub const GENERATED: &[(&str, &str)] = &[{}];",
        generated
            .iter()
            .map(|(f, m)| format!("({f:?}, {m:?})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(out.join("generated.rs"), index).unwrap();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("error: {f}");
        }
        panic!("{} .proto files failed to generate", failures.len());
    }
}
