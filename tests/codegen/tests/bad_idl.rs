//! The broken IDL files of `bad-idl/` that codegen accepts with warnings
//! only are exactly those generated into this crate (whose build proves
//! their code compiles), and their code works as the warnings say.

use std::path::Path;

use weft_codegen_tests::{bad_idl, BAD_IDL_ACCEPTED};

#[test]
fn exactly_the_warning_only_files_are_generated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bad-idl");
    let mut want = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "thrift") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let expect: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("// expect: "))
            .collect();
        if !expect.is_empty() && expect.iter().all(|l| l.contains(": warning: ")) {
            want.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    want.sort();
    assert!(want.len() >= 5, "{want:?}");
    assert_eq!(BAD_IDL_ACCEPTED, want.as_slice());
}

/// `optional` on an argument is ignored, as Apache Thrift ignores it: the
/// handler takes the argument itself, not an `Option`.
#[test]
fn an_optional_argument_is_an_ordinary_one() {
    let args = bad_idl::idl_01_optional_argument::idl_01_optional_argument::GreeterHelloArgsSend {
        name: "ann".into(),
        times: 2,
    };
    assert_eq!(args.name, "ann");
}

/// Of two enum names for one value, `Debug` prints the first.
#[test]
fn enums_print_their_names() {
    // The file's module re-exports its namespace's items.
    use bad_idl::idl_13_duplicate_enum_value::Color;
    assert_eq!(format!("{:?}", Color::BLUE), "BLUE");
    assert_eq!(format!("{:?}", Color::CRIMSON), "RED");
    assert_eq!(format!("{:?}", Color::from(9)), "Color(9)");
}
