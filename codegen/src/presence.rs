//! Fields with presence written even when they hold their default.
//!
//! pilota's protobuf backend encodes every scalar field with
//! `pilota::pb::encoding::T::encode` and sizes it with `encoded_len`, which
//! leave out a default value. For a field with presence (proto3 or proto2
//! `optional`, a oneof member) that loses information: the peer reads the
//! field as unset. This pass rewrites those calls in pilota's output: the
//! encode to pilota's own `encode_raw` (always writes), the size through
//! `::weft::protobuf::presence::len`. Implicit-presence fields, repeated
//! fields and messages are left as pilota writes them; maps go through
//! [`rewrite_maps`], so that every entry carries its key and value.

/// Scalar encoding modules and the length of their default value's body.
const SCALARS: &[(&str, usize)] = &[
    ("int32", 1),
    ("int64", 1),
    ("uint32", 1),
    ("uint64", 1),
    ("sint32", 1),
    ("sint64", 1),
    ("bool", 1),
    ("string", 1),
    ("faststr", 1),
    ("bytes", 1),
    ("float", 4),
    ("fixed32", 4),
    ("sfixed32", 4),
    ("double", 8),
    ("fixed64", 8),
    ("sfixed64", 8),
];

/// Which calls to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every scalar call: the `encode`/`encoded_len` of a oneof's enum,
    /// whose members all have presence.
    All,
    /// Calls on the value of an `Option` field (pilota binds it as
    /// `_pilota_inner_value` when encoding and `value` when sizing): a
    /// message's optional fields.
    Optional,
}

/// `code` with the encoding of fields with presence rewritten (see the
/// module docs).
pub(crate) fn rewrite(code: &str, scope: Scope) -> String {
    let mut out = String::with_capacity(code.len() + 64);
    let mut rest = code;
    while let Some(at) = rest.find("pb::encoding::") {
        let after = &rest[at + "pb::encoding::".len()..];
        let Some((module, body)) = SCALARS.iter().find_map(|(m, b)| {
            after
                .strip_prefix(m)
                .filter(|a| a.starts_with("::encode(") || a.starts_with("::encoded_len("))
                .map(|_| (*m, *b))
        }) else {
            out.push_str(&rest[..at + "pb::encoding::".len()]);
            rest = after;
            continue;
        };
        // The path before `pb::encoding::` (`::pilota::` or the configured
        // re-export): walk back over path characters already copied.
        let start = rest[..at]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let path = &rest[start..at];
        let call = &after[module.len() + 2..];
        let (func, open) = if call.starts_with("encode(") {
            ("encode", "encode(".len())
        } else {
            ("encoded_len", "encoded_len(".len())
        };
        let Some(args_len) = closing_paren(&call[open..]) else {
            out.push_str(&rest[..at + "pb::encoding::".len()]);
            rest = after;
            continue;
        };
        let args = &call[open..open + args_len];
        let parts = split_args(args);
        let wanted = match (scope, func) {
            (Scope::All, _) => true,
            (Scope::Optional, "encode") => {
                parts.get(1).map(|a| a.trim()) == Some("_pilota_inner_value")
            }
            (Scope::Optional, _) => parts.get(2).map(|a| a.trim()) == Some("value"),
        };
        let tail = &call[open + args_len + 1..];
        out.push_str(&rest[..start]);
        let original = format!("{path}pb::encoding::{module}::{func}({args})");
        if !wanted {
            out.push_str(&original);
        } else if func == "encode" && module == "bytes" {
            // pilota's `bytes::encode_raw` is private.
            out.push_str(&format!("::weft::protobuf::presence::bytes({args})"));
        } else if func == "encode" {
            out.push_str(&format!("{path}pb::encoding::{module}::encode_raw({args})"));
        } else {
            let tag = parts.get(1).map_or("0", |t| t.trim());
            out.push_str(&format!(
                "::weft::protobuf::presence::len({original}, {tag}, {body})"
            ));
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// What each scalar encoding module leaves out of a map entry when the
/// key or value holds its default: the `::weft::protobuf::presence::Zero`
/// written in its place.
fn zero_of(encoder: &str) -> &'static str {
    // pilota writes the arguments as token streams: `:: pilota :: pb :: …`.
    let encoder: String = encoder.chars().filter(|c| !c.is_whitespace()).collect();
    let module = encoder
        .rsplit_once("pb::encoding::")
        .and_then(|(_, m)| m.split("::").next())
        .unwrap_or("")
        .to_string();
    match module.as_str() {
        "int32" | "int64" | "uint32" | "uint64" | "sint32" | "sint64" | "bool" => "Varint",
        "string" | "faststr" | "bytes" => "Len",
        "float" | "fixed32" | "sfixed32" => "Fixed32",
        "double" | "fixed64" | "sfixed64" => "Fixed64",
        // Messages always write; anything unknown is left as it was.
        _ => "Never",
    }
}

/// `code` with pilota's map encoding (`hash_map`/`btree_map` `encode` and
/// `encoded_len`) replaced by `::weft::protobuf::presence::map`, which
/// writes every entry's key and value even when they hold their default,
/// as protoc's runtimes do and Kitex's decoder requires.
pub(crate) fn rewrite_maps(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + 64);
    let mut rest = code;
    loop {
        let found = ["hash_map::", "btree_map::"]
            .iter()
            .filter_map(|m| rest.find(&format!("pb::encoding::{m}")).map(|at| (at, *m)))
            .min();
        let Some((at, module)) = found else { break };
        let after = &rest[at + "pb::encoding::".len() + module.len()..];
        let (func, open) = if after.starts_with("encode(") {
            ("encode", "encode(".len())
        } else if after.starts_with("encoded_len(") {
            ("encoded_len", "encoded_len(".len())
        } else {
            let skip = at + "pb::encoding::".len();
            out.push_str(&rest[..skip]);
            rest = &rest[skip..];
            continue;
        };
        let Some(args_len) = closing_paren(&after[open..]) else {
            break;
        };
        let parts: Vec<&str> = split_args(&after[open..open + args_len])
            .into_iter()
            .map(str::trim)
            .collect();
        // encode(KE, KL, VE, VL, tag, values, buf);
        // encoded_len(ctx, KL, VL, tag, values).
        let rewritten = match (func, parts.as_slice()) {
            ("encode", [ke, kl, ve, vl, tag, values, buf]) => Some(format!(
                "::weft::protobuf::presence::map::encode({ke}, {kl}, ::weft::protobuf::presence::Zero::{}, {ve}, {vl}, ::weft::protobuf::presence::Zero::{}, {tag}, {values}, {buf})",
                zero_of(ke),
                zero_of(ve)
            )),
            ("encoded_len", [cx, kl, vl, tag, values]) => Some(format!(
                "::weft::protobuf::presence::map::encoded_len({cx}, {kl}, ::weft::protobuf::presence::Zero::{}, {vl}, ::weft::protobuf::presence::Zero::{}, {tag}, {values})",
                zero_of(kl),
                zero_of(vl)
            )),
            _ => None,
        };
        let Some(rewritten) = rewritten else {
            let skip = at + "pb::encoding::".len();
            out.push_str(&rest[..skip]);
            rest = &rest[skip..];
            continue;
        };
        // The path before `pb::encoding::` goes with the call it named.
        let start = rest[..at]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        out.push_str(&rest[..start]);
        out.push_str(&rewritten);
        rest = &after[open + args_len + 1..];
    }
    out.push_str(rest);
    out
}

/// The length of `s` up to (not including) the `)` closing a call whose
/// `(` came just before `s`.
fn closing_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Top-level comma-separated arguments of a call.
fn split_args(args: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0usize, 0);
    for (i, c) in args.char_indices() {
        match c {
            '(' | '[' | '{' | '<' => depth += 1,
            ')' | ']' | '}' | '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&args[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&args[from..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::{rewrite, rewrite_maps, Scope};

    #[test]
    fn map_calls_write_every_key_and_value() {
        let code = "::p::pb::encoding::hash_map::encode(:: p :: pb :: encoding :: faststr :: encode, ::p::pb::encoding::faststr::encoded_len, ::p::pb::encoding::message::encode, ::p::pb::encoding::message::encoded_len, 3, &self.seen, buf);\n\
            + ::p::pb::encoding::btree_map::encoded_len(ctx, ::p::pb::encoding::int32::encoded_len, ::p::pb::encoding::double::encoded_len, 4, &self.m)";
        let got = rewrite_maps(code);
        assert!(got.contains("::weft::protobuf::presence::map::encode(:: p :: pb :: encoding :: faststr :: encode, ::p::pb::encoding::faststr::encoded_len, ::weft::protobuf::presence::Zero::Len, ::p::pb::encoding::message::encode, ::p::pb::encoding::message::encoded_len, ::weft::protobuf::presence::Zero::Never, 3, &self.seen, buf);"), "{got}");
        assert!(got.contains("+ ::weft::protobuf::presence::map::encoded_len(ctx, ::p::pb::encoding::int32::encoded_len, ::weft::protobuf::presence::Zero::Varint, ::p::pb::encoding::double::encoded_len, ::weft::protobuf::presence::Zero::Fixed64, 4, &self.m)"), "{got}");
        assert!(
            !got.contains("hash_map") && !got.contains("btree_map"),
            "{got}"
        );
    }

    #[test]
    fn optional_fields_are_written_and_sized_when_default() {
        let code = "if let Some(_pilota_inner_value) = self.note.as_ref() { \
            ::p::pb::encoding::faststr::encode(2, _pilota_inner_value, buf); }\n\
            ::p::pb::encoding::int32::encode(10, &self.color, buf);\n\
            + self.note.as_ref().map_or(0, |value| { ::p::pb::encoding::faststr::encoded_len(ctx, 2, value) })\n\
            + ::p::pb::encoding::int32::encoded_len(ctx, 10, &self.color)\n\
            ::p::pb::encoding::message::encode(3, _pilota_inner_value, buf);";
        let got = rewrite(code, Scope::Optional);
        assert!(
            got.contains("::p::pb::encoding::faststr::encode_raw(2, _pilota_inner_value, buf)"),
            "{got}"
        );
        assert!(
            got.contains("::p::pb::encoding::int32::encode(10, &self.color, buf)"),
            "{got}"
        );
        assert!(
            got.contains("::weft::protobuf::presence::len(::p::pb::encoding::faststr::encoded_len(ctx, 2, value), 2, 1)"),
            "{got}"
        );
        assert!(
            got.contains("+ ::p::pb::encoding::int32::encoded_len(ctx, 10, &self.color)"),
            "{got}"
        );
        assert!(
            got.contains("::p::pb::encoding::message::encode(3, _pilota_inner_value, buf)"),
            "{got}"
        );
    }

    #[test]
    fn every_oneof_member_is_written_and_sized_when_default() {
        let code = "Kind::NumberValue(value) => { ::p::pb::encoding::double::encode(2, &*value, buf); }\n\
            Kind::NumberValue(value) => { ::p::pb::encoding::double::encoded_len(ctx, 2, &*value) }\n\
            Kind::StructValue(value) => { ::p::pb::encoding::message::encode(5, (&*value), buf); }";
        let got = rewrite(code, Scope::All);
        assert!(
            got.contains("::p::pb::encoding::double::encode_raw(2, &*value, buf)"),
            "{got}"
        );
        assert!(
            got.contains("::weft::protobuf::presence::len(::p::pb::encoding::double::encoded_len(ctx, 2, &*value), 2, 8)"),
            "{got}"
        );
        assert!(
            got.contains("::p::pb::encoding::message::encode(5, (&*value), buf)"),
            "{got}"
        );
    }
}
