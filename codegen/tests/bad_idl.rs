//! Every broken IDL file in `tests/codegen/bad-idl` gets exactly the
//! diagnostics its `// expect:` lines list, at their lines and columns.

use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/codegen/bad-idl")
}

/// `(file, expected lines)` for every case, sorted by name.
fn cases() -> Vec<(PathBuf, Vec<String>)> {
    let dir = cases_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "thrift"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let expect = text
                .lines()
                .filter_map(|l| l.strip_prefix("// expect: "))
                .map(|l| {
                    format!(
                        "{}:{}",
                        f.display(),
                        l.replace("{dir}", &dir.display().to_string())
                    )
                })
                .collect();
            (f, expect)
        })
        .collect()
}

#[test]
fn every_broken_file_gets_its_diagnostics() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    let mut accepted = 0;
    for (file, expect) in &cases {
        assert!(
            !expect.is_empty(),
            "{}: no `// expect:` line",
            file.display()
        );
        let result = weft_codegen::Builder::new()
            .idl(file)
            .include_dir(cases_dir().join("inc"))
            .check();
        let only_warnings = expect.iter().all(|l| l.contains(": warning: "));
        let got: Vec<String> = match &result {
            Ok(warnings) => warnings.iter().map(ToString::to_string).collect(),
            Err(e) => {
                assert!(e.is_located(), "{}: {e}", file.display());
                e.to_string().lines().map(str::to_string).collect()
            }
        };
        if result.is_ok() != only_warnings {
            failures.push(format!(
                "{}: accepted = {}, but the expected lines {} errors",
                file.display(),
                result.is_ok(),
                if only_warnings { "have no" } else { "have" }
            ));
        }
        if &got != expect {
            failures.push(format!(
                "{}:\n  want {expect:#?}\n  got  {got:#?}",
                file.display()
            ));
        }
        accepted += usize::from(result.is_ok());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(accepted >= 5, "only {accepted} accepted cases");
}

/// The diagnostics name the file given (as written), so that editors can
/// jump to them; errors in an included file name that file.
#[test]
fn diagnostics_in_an_included_file_name_that_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lib.thrift"),
        "struct S {\n  1: i32 a,\n  1: i32 b\n}\n",
    )
    .unwrap();
    let main = dir.path().join("main.thrift");
    std::fs::write(&main, "include \"lib.thrift\"\nstruct T { 1: lib.S s }\n").unwrap();
    let err = weft_codegen::Builder::new().idl(&main).check().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3:3: error: field id 1 is used twice in struct S (first at 2:3)",
            dir.path().join("lib.thrift").display()
        )
    );
}

/// Found by the `idl_thrift` fuzz target: a typedef whose type annotation
/// never closes (`typedef i32 (` at the end of the file) made the
/// normaliser slice past the end of the text and panic. It is an error
/// like any other broken file now.
#[test]
fn a_typedef_whose_annotation_never_closes_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("weft-bad-idl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, text) in [
        "typedef i32 (",
        "typedef map<string, string> (cpp.type = \"x\"",
        "struct S { 1: i32 a }\ntypedef list<S> (",
    ]
    .into_iter()
    .enumerate()
    {
        let file = dir.join(format!("unclosed{i}.thrift"));
        std::fs::write(&file, text).unwrap();
        let result = std::panic::catch_unwind(|| weft_codegen::Builder::new().idl(&file).check());
        let result = result.unwrap_or_else(|_| panic!("{text:?}: the check panicked"));
        assert!(result.is_err(), "{text:?} was accepted");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
