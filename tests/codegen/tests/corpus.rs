//! Every Thrift file in `../shared/idl/thrift` is generated into a module of
//! this crate, so building the crate proves the generated code compiles;
//! these tests check that none was skipped and poke at what the tricky
//! files turn into.

use std::path::Path;

use weft_codegen_tests::GENERATED;

#[test]
fn every_corpus_file_is_generated() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/idl/thrift");
    let mut expected = Vec::new();
    for dir in [corpus.clone(), corpus.join("jaeger")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "thrift") {
                expected.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(
        expected.len() >= 22,
        "corpus has only {} files",
        expected.len()
    );
    for f in &expected {
        assert!(
            GENERATED.iter().any(|(idl, _)| idl == f),
            "{f} was not generated"
        );
    }
}

#[test]
fn recursive_types_are_boxed_and_values_round_trip() {
    use weft_codegen_tests::recursive::recursive::{CoRec, CoRec2, RecTree};
    let tree = RecTree {
        children: Some(vec![RecTree::default()]),
        item: Some(7),
    };
    assert_eq!(tree.children.as_ref().unwrap().len(), 1);
    // Mutual recursion through struct fields is boxed.
    let _ = CoRec {
        other: Some(Box::new(CoRec2 { other: None })),
    };
}
