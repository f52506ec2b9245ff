//! Reads, parses and type-checks every `.proto` file and its imports with
//! protobuf-parse (the pure-Rust parser pilota-build uses) before
//! pilota-build sees them: pilota-build unwraps the parser's result, so a
//! syntax error, a missing import or an unknown type would panic there.
//! Here each is an [`Error`] naming the file and line. It also bounds what
//! would overflow a recursive parser's stack (nesting depth) and refuses
//! import cycles, which protobuf-parse would follow forever.

use std::{
    collections::HashMap,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
};

use protobuf_parse::{pure::parse_dependencies, ProtoPathBuf};

use crate::error::{Error, SyntaxError};

/// Deepest nesting of `{`, `[` and `(` accepted: far beyond any real
/// `.proto` (message nesting past a dozen levels is rare), well within
/// what the recursive parser and pilota-build's passes handle.
pub(crate) const MAX_NESTING: usize = 100;

/// The files protobuf-parse carries itself (well-known types).
const EMBEDDED: &[&str] = &[
    "rustproto.proto",
    "google/protobuf/any.proto",
    "google/protobuf/api.proto",
    "google/protobuf/descriptor.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/empty.proto",
    "google/protobuf/field_mask.proto",
    "google/protobuf/source_context.proto",
    "google/protobuf/struct.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/type.proto",
    "google/protobuf/wrappers.proto",
];

/// pilota-build puts its `pilota.proto` (Rust-specific options) on the
/// include path; its declarations, for type-checking files that import it.
const PILOTA_PROTO: &str = r#"syntax = "proto3";
package pilota;
import "google/protobuf/descriptor.proto";
extend google.protobuf.MessageOptions {
  optional string serde_attribute_message = 1215201;
  optional string name_message = 1215202;
}
extend google.protobuf.FieldOptions {
  optional string serde_attribute_field = 1215201;
  optional string name_field = 1215202;
  optional bool rust_wrapper_arc_field = 1215203;
  optional string rust_type = 1215204;
  optional bool optional_repeated = 1215205;
}
extend google.protobuf.EnumOptions {
  optional string serde_attribute_enum = 1215201;
  optional string name_enum = 1215202;
}
extend google.protobuf.EnumValueOptions {
  optional string serde_attribute_enum_value = 1215201;
}
extend google.protobuf.ServiceOptions {
  optional bool rust_wrapper_arc_all = 1215203;
}
"#;

/// What [`check`] found: the files and include path to hand pilota-build,
/// and the parsed descriptors.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The input files, absolute.
    pub(crate) idls: Vec<PathBuf>,
    /// The include path: the directories given, then the directory of each
    /// input that lies in none of them.
    pub(crate) include_dirs: Vec<PathBuf>,
    /// Every file read from disk, for `cargo:rerun-if-changed`.
    pub(crate) files: Vec<PathBuf>,
}

/// A file read during the check.
#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    text: String,
}

/// Check `idls` and everything they import.
pub(crate) fn check(idls: &[PathBuf], include_dirs: &[PathBuf]) -> Result<Checked, Error> {
    let mut includes: Vec<PathBuf> = include_dirs.iter().map(|d| absolute(d)).collect();
    let mut inputs = Vec::new();
    for idl in idls {
        let path = std::fs::canonicalize(idl).map_err(|source| Error::Io {
            path: idl.clone(),
            source,
        })?;
        if !includes.iter().any(|d| path.starts_with(d)) {
            if let Some(parent) = path.parent() {
                includes.push(parent.to_path_buf());
            }
        }
        let dir = includes
            .iter()
            .find(|d| path.starts_with(d))
            .cloned()
            .unwrap_or_default();
        let rel = path.strip_prefix(&dir).unwrap_or(&path).to_path_buf();
        let proto_path = ProtoPathBuf::from_path(&rel).map_err(|e| Error::Rejected {
            path: idl.clone(),
            line: None,
            message: format!("not a usable .proto path: {e}"),
        })?;
        inputs.push((path, proto_path));
    }

    // Walk the imports: read, bound, parse each file once.
    let mut sources: HashMap<String, Source> = HashMap::new();
    let mut files = Vec::new();
    for (path, proto_path) in &inputs {
        let mut stack = Vec::new();
        walk(
            proto_path.to_str(),
            Some(path),
            None,
            &includes,
            &mut sources,
            &mut files,
            &mut stack,
        )?;
    }

    // Every file is known to exist, parse, and import nothing missing or
    // circular: protobuf-parse's own reading of them is now safe to run
    // for the type check. `pilota.proto` is pilota-build's: put its
    // declarations where the check finds them.
    let mut check_includes = includes.clone();
    let _pilota_dir = if sources.contains_key("pilota.proto") {
        None
    } else {
        let dir = tempfile::tempdir().map_err(|source| Error::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        std::fs::write(dir.path().join("pilota.proto"), PILOTA_PROTO).map_err(|source| {
            Error::Io {
                path: dir.path().join("pilota.proto"),
                source,
            }
        })?;
        check_includes.push(absolute(dir.path()));
        Some(dir)
    };
    let typechecked = catch_unwind(AssertUnwindSafe(|| {
        protobuf_parse::Parser::new()
            .pure()
            .includes(&check_includes)
            .inputs(inputs.iter().map(|(p, _)| p))
            .parse_and_typecheck()
    }));
    match typechecked {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(typecheck_error(&e, &sources, &inputs[0].0)),
        Err(payload) => {
            return Err(Error::Rejected {
                path: inputs[0].0.clone(),
                line: None,
                message: format!("the protobuf parser failed: {}", panic_message(&*payload)),
            })
        }
    };
    Ok(Checked {
        idls: inputs.into_iter().map(|(p, _)| p).collect(),
        include_dirs: includes,
        files,
    })
}

/// `dir` made absolute (and canonical when it exists), so that paths under
/// it compare by prefix as protobuf-parse and pilota-build compare them.
fn absolute(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

/// Read and parse `name` (found at `at` for an input, else on the include
/// path) and, depth first, what it imports. `from` is the importing file
/// and the import's line, for errors; `stack` the chain of imports being
/// walked, to find cycles.
fn walk(
    name: &str,
    at: Option<&Path>,
    from: Option<(&Path, usize)>,
    includes: &[PathBuf],
    sources: &mut HashMap<String, Source>,
    files: &mut Vec<PathBuf>,
    stack: &mut Vec<String>,
) -> Result<(), Error> {
    if let Some(pos) = stack.iter().position(|s| s == name) {
        let (path, line) = from.map_or((PathBuf::new(), 1), |(p, l)| (p.to_path_buf(), l));
        let mut chain = stack[pos..].to_vec();
        chain.push(name.to_string());
        return Err(Error::Rejected {
            path,
            line: Some(line),
            message: format!("import cycle: {}", chain.join(" -> ")),
        });
    }
    if sources.contains_key(name) {
        return Ok(());
    }
    let path = match at {
        Some(p) => Some(p.to_path_buf()),
        None => includes.iter().map(|d| d.join(name)).find(|p| p.is_file()),
    };
    let Some(path) = path else {
        if EMBEDDED.contains(&name) || name == "pilota.proto" {
            return Ok(());
        }
        let (importer, line) = from.map_or((PathBuf::new(), 1), |(p, l)| (p.to_path_buf(), l));
        return Err(Error::ImportNotFound {
            path: importer,
            line,
            import: name.to_string(),
            searched: includes.to_vec(),
        });
    };
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(Error::NotUtf8 { path, line });
        }
    };
    if let Some((line, column)) = too_deep(&text, MAX_NESTING) {
        return Err(Error::Syntax {
            path,
            errors: vec![SyntaxError {
                line,
                column,
                message: format!("nested more than {MAX_NESTING} levels deep"),
            }],
        });
    }
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        parse_dependencies(&text)
            .map_err(|e| (e.line as usize, e.col as usize, e.error.to_string()))
    }));
    let deps = match parsed {
        Ok(Ok(d)) => d,
        Ok(Err((line, column, message))) => {
            return Err(Error::Syntax {
                path,
                errors: vec![SyntaxError {
                    line: line.max(1),
                    column: column.max(1),
                    message: printable(&message),
                }],
            })
        }
        Err(payload) => {
            return Err(Error::Rejected {
                path,
                line: None,
                message: format!("the protobuf parser failed: {}", panic_message(&*payload)),
            })
        }
    };
    files.push(path.clone());
    sources.insert(
        name.to_string(),
        Source {
            path: path.clone(),
            text: text.clone(),
        },
    );
    stack.push(name.to_string());
    for dep in &deps.dependency {
        let line = line_of_import(&text, dep);
        walk(
            dep,
            None,
            Some((&path, line)),
            includes,
            sources,
            files,
            stack,
        )?;
    }
    stack.pop();
    Ok(())
}

/// A type-checking error as `file:line: message`. protobuf-parse says
/// ``error in `PATH`: MESSAGE`` without a line for most of these (an
/// unknown type, a duplicate name): the line is that of the first name in
/// the message found in the file.
fn typecheck_error(e: &anyhow::Error, sources: &HashMap<String, Source>, first: &Path) -> Error {
    let full = format!("{e:#}");
    let full = full.strip_prefix("using pure parser: ").unwrap_or(&full);
    let (file, message) = full
        .strip_prefix("error in `")
        .and_then(|rest| rest.split_once("`: "))
        .map_or((None, full), |(f, m)| (Some(f), m));
    let source = file.and_then(|f| sources.values().find(|s| s.path.display().to_string() == f));
    let path = source.map_or_else(|| first.to_path_buf(), |s| s.path.clone());
    let line = source
        .and_then(|s| line_of_names(&s.text, message))
        .or_else(|| {
            // No file named (a clash found while linking files): the first
            // file holding a name from the message.
            sources
                .values()
                .find_map(|s| line_of_names(&s.text, message))
        });
    Error::Rejected {
        path,
        line: Some(line.unwrap_or(1)),
        message: printable(message),
    }
}

/// The line of the first word of `message` that names something declared
/// or used in `text` (its last dotted segment counts too).
fn line_of_names(text: &str, message: &str) -> Option<usize> {
    let code = strip_comments(text);
    // Names the message quotes (`B`) first, then any other word.
    let quoted = message
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.is_empty());
    let words = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| w.len() > 1);
    for w in quoted.chain(words).map(|w| w.trim_matches('.')) {
        if w.is_empty() || w.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        for candidate in [w, w.rsplit('.').next().unwrap_or(w)] {
            if KEYWORDS.contains(&candidate) {
                continue;
            }
            if let Some(line) = code.lines().position(|l| {
                l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .any(|t| t == candidate || t.rsplit('.').next() == Some(candidate))
            }) {
                return Some(line + 1);
            }
        }
    }
    None
}

/// Words of the language, never the name the message is about.
const KEYWORDS: &[&str] = &[
    "message", "enum", "service", "rpc", "returns", "stream", "import", "package", "option",
    "optional", "repeated", "required", "oneof", "map", "syntax", "proto2", "proto3", "string",
    "bytes", "int32", "int64", "uint32", "uint64", "bool", "double", "float", "field", "type",
    "not", "found", "in", "is", "the", "by", "path", "object", "error",
];

/// `text` with comments blanked out (newlines kept), so names in comments
/// are not taken for declarations.
fn strip_comments(text: &str) -> String {
    let mask = code_mask(text);
    text.char_indices()
        .map(|(i, c)| if mask[i] || c == '\n' { c } else { ' ' })
        .collect()
}

/// For each byte of `text`: whether it is code (not inside a comment or a
/// string literal).
fn code_mask(text: &str) -> Vec<bool> {
    let b = text.as_bytes();
    let mut code = vec![true; b.len()];
    let mut i = 0;
    while i < b.len() {
        let end = match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p),
            b'/' if b.get(i + 1) == Some(&b'*') => b[i + 2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(b.len(), |p| i + 2 + p + 2),
            q @ (b'"' | b'\'') => {
                let mut j = i + 1;
                while j < b.len() && b[j] != q && b[j] != b'\n' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                (j + 1).min(b.len())
            }
            _ => {
                i += 1;
                continue;
            }
        };
        code[i..end].iter_mut().for_each(|c| *c = false);
        i = end.max(i + 1);
    }
    code
}

/// The line and column where nesting first exceeds `max`, if it does.
fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let code = code_mask(text);
    let mut depth = 0usize;
    let (mut line, mut col) = (1, 0);
    for (i, c) in text.char_indices() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            continue;
        }
        if !code[i] {
            continue;
        }
        match c {
            '{' | '[' | '(' | '<' => {
                depth += 1;
                if depth > max {
                    return Some((line, col));
                }
            }
            '}' | ']' | ')' | '>' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The 1-based line of `import "name"` in `text` (1 if not found).
fn line_of_import(text: &str, name: &str) -> usize {
    let code = strip_comments(text);
    let quoted = [format!("\"{name}\""), format!("'{name}'")];
    text.lines()
        .zip(code.lines())
        .position(|(l, c)| c.contains("import") && quoted.iter().any(|q| l.contains(q.as_str())))
        .map_or(1, |n| n + 1)
}

/// Control characters escaped, so a message prints on one line.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".to_string())
}

/// Whether `path` names a `.proto` file.
pub(crate) fn is_proto(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "proto")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded_outside_comments_and_strings() {
        let deep = "{".repeat(101);
        assert_eq!(too_deep(&deep, 100), Some((1, 101)));
        let quoted = format!("option x = \"{}\"; // {}", "{".repeat(200), "[".repeat(200));
        assert_eq!(too_deep(&quoted, 100), None);
        assert_eq!(
            too_deep("message A {\n  message B {}\n}\n", 1),
            Some((2, 13))
        );
    }

    #[test]
    fn names_are_found_in_code_not_comments() {
        let text = "// Foo here\nmessage A {\n  Foo f = 1;\n}\n";
        assert_eq!(
            line_of_names(text, "object is not found by path: Foo"),
            Some(3)
        );
        assert_eq!(
            line_of_import(
                "import \"a.proto\";\n// import \"b.proto\"\nimport \"b.proto\";",
                "b.proto"
            ),
            3
        );
    }
}
