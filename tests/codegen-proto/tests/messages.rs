//! Generated messages: every corpus file generated, values round-trip
//! through the protobuf encoding, and decoding rejects invalid UTF-8 in
//! any `string` field, naming the field.

use std::path::Path;

use weft::protobuf::{
    pilota::{Bytes, FastStr},
    PbMessage,
};
use weft_codegen_proto_tests::{
    pb_features::{
        google::protobuf::{StringValue, Timestamp},
        weft::features::{outer, Color, Inner, Outer},
    },
    GENERATED,
};

fn encode<M: weft::protobuf::Message>(m: &M) -> Bytes {
    let mut buf = weft::core::bytes::BytesMut::new();
    weft::protobuf::encode_into(m, &mut buf);
    buf.freeze()
}

#[test]
fn every_corpus_file_is_generated() {
    fn walk(dir: &Path, out: &mut Vec<String>, root: &Path) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out, root);
            } else if p.extension().is_some_and(|x| x == "proto") {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/idl/proto");
    let mut expected = Vec::new();
    walk(&corpus, &mut expected, &corpus);
    assert!(
        expected.len() >= 13,
        "corpus has only {} files",
        expected.len()
    );
    for f in &expected {
        assert!(
            GENERATED.iter().any(|(g, _)| g == f),
            "{f} was not generated"
        );
    }
}

fn sample() -> Outer {
    Outer {
        title: "title".into(),
        note: Some("note".into()),
        inner: Some(Inner {
            name: "inner".into(),
            tags: vec!["a".into(), "b".into()],
        }),
        items: vec![
            Inner::default(),
            Inner {
                name: "second".into(),
                tags: vec![],
            },
        ],
        labels: [("k".into(), "v".into())].into_iter().collect(),
        by_id: [(
            7,
            Inner {
                name: "seven".into(),
                tags: vec![],
            },
        )]
        .into_iter()
        .collect(),
        choice: Some(outer::Choice::Text("chosen".into())),
        color: Color::RED,
        at: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        }),
        maybe: Some(StringValue {
            value: "wrapped".into(),
        }),
        child: Some(Box::new(Outer {
            title: "child".into(),
            ..Default::default()
        })),
        raw: Bytes::from_static(b"\xff\x00"),
        deep: Some(outer::Deep {
            deeper: Some(outer::deep::Deeper {
                leaf: "leaf".into(),
            }),
        }),
        ..Default::default()
    }
}

#[test]
fn messages_round_trip() {
    let m = sample();
    let back: Outer = weft::protobuf::decode(encode(&m)).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.color, Color::RED);
    // An unset proto3 `optional` stays unset; a oneof holds the last member.
    let m = Outer {
        choice: Some(outer::Choice::Number(-3)),
        ..Default::default()
    };
    let back: Outer = weft::protobuf::decode(encode(&m)).unwrap();
    assert_eq!(back.note, None);
    assert_eq!(back.choice, Some(outer::Choice::Number(-3)));
}

/// `m` with every occurrence of the marker `"@@"` in its encoding replaced
/// by two bytes that are not UTF-8 (same length, so lengths stay right).
fn corrupt(m: &Outer) -> Bytes {
    let mut bytes = encode(m).to_vec();
    let mut found = false;
    for i in 0..bytes.len().saturating_sub(1) {
        if &bytes[i..i + 2] == b"@@" {
            bytes[i] = 0xc3;
            bytes[i + 1] = 0x28;
            found = true;
        }
    }
    assert!(found, "no marker in the encoding");
    Bytes::from(bytes)
}

#[test]
fn invalid_utf8_is_rejected_naming_the_field() {
    let bad: FastStr = "x@@y".into();
    let cases: Vec<(&str, Outer)> = vec![
        (
            "Outer.title",
            Outer {
                title: bad.clone(),
                ..Default::default()
            },
        ),
        (
            "Outer.note",
            Outer {
                note: Some(bad.clone()),
                ..Default::default()
            },
        ),
        (
            "Inner.name",
            Outer {
                inner: Some(Inner {
                    name: bad.clone(),
                    tags: vec![],
                }),
                ..Default::default()
            },
        ),
        (
            "Inner.tags",
            Outer {
                items: vec![Inner {
                    name: "ok".into(),
                    tags: vec!["ok".into(), bad.clone()],
                }],
                ..Default::default()
            },
        ),
        (
            "Outer.labels",
            Outer {
                labels: [(bad.clone(), "v".into())].into_iter().collect(),
                ..Default::default()
            },
        ),
        (
            "Outer.labels",
            Outer {
                labels: [("k".into(), bad.clone())].into_iter().collect(),
                ..Default::default()
            },
        ),
        (
            "Inner.name",
            Outer {
                by_id: [(
                    1,
                    Inner {
                        name: bad.clone(),
                        tags: vec![],
                    },
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            },
        ),
        (
            "Outer.text",
            Outer {
                choice: Some(outer::Choice::Text(bad.clone())),
                ..Default::default()
            },
        ),
        (
            "Inner.name",
            Outer {
                choice: Some(outer::Choice::Nested(Inner {
                    name: bad.clone(),
                    tags: vec![],
                })),
                ..Default::default()
            },
        ),
        (
            "StringValue.value",
            Outer {
                maybe: Some(StringValue { value: bad.clone() }),
                ..Default::default()
            },
        ),
        (
            "Outer.title",
            Outer {
                child: Some(Box::new(Outer {
                    title: bad.clone(),
                    ..Default::default()
                })),
                ..Default::default()
            },
        ),
        (
            "Deeper.leaf",
            Outer {
                deep: Some(outer::Deep {
                    deeper: Some(outer::deep::Deeper { leaf: bad.clone() }),
                }),
                ..Default::default()
            },
        ),
    ];
    for (field, m) in cases {
        let bytes = corrupt(&m);
        // pilota's decoder alone takes it: the check is Weft's.
        assert!(Outer::decode(bytes.clone()).is_ok(), "{field}");
        let err = weft::protobuf::decode::<Outer>(bytes).unwrap_err();
        assert!(err.message().contains(field), "{field}: {err}");
    }
    // Invalid bytes in a `bytes` field are fine.
    let ok = Outer {
        raw: Bytes::from_static(b"\xc3\x28"),
        ..sample()
    };
    assert!(weft::protobuf::decode::<Outer>(encode(&ok)).is_ok());
}

/// Fields with presence (a proto3 `optional`, a oneof member, a
/// `google.protobuf.Value` inside a `Struct`) are sent even when they hold
/// their type's default, as protoc's encoders do: otherwise the peer reads
/// them as unset (a oneof with no member, an absent `optional`).
#[test]
fn fields_with_presence_are_sent_when_they_hold_the_default() {
    use weft_codegen_proto_tests::pb_features::google::protobuf::{value::Kind, Struct, Value};

    // The bytes protoc writes: field 2 (length-delimited) of length 0;
    // field 9 (varint) holding 0; field 7 (length-delimited) of length 0.
    let m = Outer {
        note: Some("".into()),
        ..Default::default()
    };
    assert_eq!(&encode(&m)[..], &[0x12, 0x00]);
    assert_eq!(weft::protobuf::encoded_len(&m), 2);
    let m = Outer {
        choice: Some(outer::Choice::Number(0)),
        ..Default::default()
    };
    assert_eq!(&encode(&m)[..], &[0x48, 0x00]);
    assert_eq!(weft::protobuf::encoded_len(&m), 2);
    let m = Outer {
        choice: Some(outer::Choice::Text("".into())),
        ..Default::default()
    };
    assert_eq!(&encode(&m)[..], &[0x3a, 0x00]);

    // Each comes back as it was sent.
    for m in [
        Outer {
            note: Some("".into()),
            choice: Some(outer::Choice::Text("".into())),
            ..Default::default()
        },
        Outer {
            choice: Some(outer::Choice::Number(0)),
            ..Default::default()
        },
    ] {
        let back: Outer = weft::protobuf::decode(encode(&m)).unwrap();
        assert_eq!(back, m);
    }

    // A `Struct` of defaults: null, 0.0, -0.0 (its sign kept), "", false.
    let values = [
        ("null", Kind::NullValue(Default::default())),
        ("zero", Kind::NumberValue(0.0)),
        ("negative_zero", Kind::NumberValue(-0.0)),
        ("empty", Kind::StringValue("".into())),
        ("no", Kind::BoolValue(false)),
    ];
    let m = Outer {
        extra: Some(Struct {
            fields: values
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).into(),
                        Value {
                            kind: Some(v.clone()),
                        },
                    )
                })
                .collect(),
        }),
        ..Default::default()
    };
    let bytes = encode(&m);
    assert_eq!(bytes.len(), weft::protobuf::encoded_len(&m));
    let back: Outer = weft::protobuf::decode(bytes).unwrap();
    let fields = &back.extra.as_ref().unwrap().fields;
    for (k, v) in &values {
        let got = fields[*k]
            .kind
            .as_ref()
            .unwrap_or_else(|| panic!("{k} came back unset"));
        assert_eq!(got, v, "{k}");
    }
    let Some(Kind::NumberValue(z)) = &fields["negative_zero"].kind else {
        unreachable!()
    };
    assert!(z.is_sign_negative(), "-0.0 came back as {z}");
}

#[test]
fn map_entries_carry_key_and_value_even_when_they_hold_the_default() {
    // protoc's C++ and Go runtimes write both fields of every map entry;
    // Kitex's protobuf decoder (prutal) requires them, and refused a
    // `map<string, string>` entry whose value was "" ("val field num not
    // match, got -1 expect 2").
    let one = |labels: &[(&str, &str)], by_id: &[(i32, Inner)]| Outer {
        labels: labels
            .iter()
            .map(|(k, v)| (FastStr::new(*k), FastStr::new(*v)))
            .collect(),
        by_id: by_id.iter().cloned().collect(),
        ..Default::default()
    };
    let cases: [(Outer, &[u8]); 4] = [
        // Field 5, entry {1: "k", 2: ""}.
        (
            one(&[("k", "")], &[]),
            &[0x2a, 0x05, 0x0a, 0x01, 0x6b, 0x12, 0x00],
        ),
        // Field 5, entry {1: "", 2: "v"}.
        (
            one(&[("", "v")], &[]),
            &[0x2a, 0x05, 0x0a, 0x00, 0x12, 0x01, 0x76],
        ),
        // Field 6, entry {1: 0, 2: Inner {}}.
        (
            one(&[], &[(0, Inner::default())]),
            &[0x32, 0x04, 0x08, 0x00, 0x12, 0x00],
        ),
        // A value that is not the default, for comparison.
        (
            one(&[("k", "v")], &[]),
            &[0x2a, 0x06, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76],
        ),
    ];
    for (m, want) in cases {
        assert_eq!(&encode(&m)[..], want, "{m:?}");
        assert_eq!(weft::protobuf::encoded_len(&m), want.len(), "{m:?}");
        let back: Outer = weft::protobuf::decode(encode(&m)).unwrap();
        assert_eq!(back, m);
    }
}

#[test]
fn enums_print_their_idl_names() {
    assert_eq!(format!("{:?}", Color::RED), "RED");
    assert_eq!(
        format!("{:?}", Color::COLOR_UNSPECIFIED),
        "COLOR_UNSPECIFIED"
    );
    // A value the IDL does not name (a newer peer's) prints as a number.
    assert_eq!(format!("{:?}", Color::from(9)), "Color(9)");
    let m = Outer {
        color: Color::RED,
        ..Default::default()
    };
    assert!(format!("{m:?}").contains("color: RED"), "{m:?}");
}
