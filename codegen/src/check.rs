//! Reads and parses every IDL file and its includes before pilota-build
//! sees them: pilota-build exits the process on a syntax error or a missing
//! include, and reads files as UTF-8 without checking. Here each of those is
//! an [`Error`] naming the file and line.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
};

use pilota_thrift_parser::{FileParser, FileSource};

use crate::{
    error::{Diagnostic, Error, Severity, SyntaxError},
    idl::IdlFile,
    validate::{include_name, validate, Unit},
};

/// What [`check`] found: every file read and the warnings.
#[derive(Debug)]
pub(crate) struct Checked {
    /// Every file read, for `cargo:rerun-if-changed`.
    pub(crate) files: Vec<PathBuf>,
    /// Problems Apache Thrift's compiler only warns about.
    pub(crate) warnings: Vec<Diagnostic>,
}

/// Check `idls` and everything they include: syntax, includes, then
/// Thrift's rules ([`crate::validate`]).
pub(crate) fn check(idls: &[PathBuf], include_dirs: &[PathBuf]) -> Result<Checked, Error> {
    let mut index: HashMap<PathBuf, usize> = HashMap::new();
    let mut units: Vec<Unit> = Vec::new();
    let mut queue: VecDeque<(PathBuf, bool, usize)> = VecDeque::new();
    for p in idls {
        let key = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        if index.contains_key(&key) {
            continue;
        }
        index.insert(key, units.len());
        queue.push_back((p.clone(), true, units.len()));
        units.push(Unit {
            path: p.clone(),
            file: IdlFile::default(),
            includes: HashMap::new(),
        });
    }
    while let Some((path, top, at)) = queue.pop_front() {
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
        // The files given are read through `normalize`, as generation will
        // read them; included files as they are.
        match crate::normalize::normalize(&text).filter(|_| top) {
            Some(normal) => parse(&path, &normal)?,
            None => parse(&path, &text)?,
        };
        let file = crate::idl::read(&text).map_err(|e| Error::Invalid {
            diagnostics: vec![Diagnostic {
                path: path.clone(),
                line: e.pos.line,
                column: e.pos.col,
                severity: Severity::Error,
                message: format!(
                    "{} (Weft's IDL checker cannot read this; please report it)",
                    e.message
                ),
            }],
        })?;
        let mut includes = HashMap::new();
        for (inc, pos) in &file.includes {
            let target =
                resolve(&path, inc, include_dirs).map_err(|searched| Error::IncludeNotFound {
                    line: pos.line,
                    column: pos.col,
                    path: path.clone(),
                    include: inc.clone(),
                    searched,
                })?;
            let key = std::fs::canonicalize(&target).unwrap_or_else(|_| target.clone());
            let idx = match index.get(&key) {
                Some(&i) => i,
                None => {
                    let i = units.len();
                    index.insert(key, i);
                    units.push(Unit {
                        path: target.clone(),
                        file: IdlFile::default(),
                        includes: HashMap::new(),
                    });
                    queue.push_back((target, false, i));
                    i
                }
            };
            includes.insert(include_name(inc), idx);
        }
        units[at].file = file;
        units[at].includes = includes;
    }
    let diagnostics = validate(&units);
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return Err(Error::Invalid { diagnostics });
    }
    Ok(Checked {
        files: units.into_iter().map(|u| u.path).collect(),
        warnings: diagnostics,
    })
}

/// Parse one file, turning the parser's error into [`Error::Syntax`].
fn parse(path: &Path, text: &str) -> Result<pilota_thrift_parser::File, Error> {
    let source = FileSource::new_with_path(path.to_path_buf(), text).map_err(|_| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
    })?;
    match FileParser::new(source).parse() {
        Ok(f) => Ok(f),
        Err(pilota_thrift_parser::Error::Syntax { summary, .. }) => Err(Error::Syntax {
            path: path.to_path_buf(),
            errors: syntax_errors(path, &summary),
        }),
        Err(pilota_thrift_parser::Error::IO(source)) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
        Err(pilota_thrift_parser::Error::FileNotFound(p)) => Err(Error::Io {
            path: p,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        }),
    }
}

/// The parser summarises its errors as `Failed to parse thrift file: PATH
/// at line L:C - REASON`, or with `N. Line L:C - REASON` lines when there
/// are several; take them apart so they print like compiler diagnostics.
fn syntax_errors(path: &Path, summary: &str) -> Vec<SyntaxError> {
    let prefix = format!("Failed to parse thrift file: {}", path.display());
    let rest = summary.strip_prefix(&prefix).unwrap_or(summary);
    let parse_one = |s: &str| -> Option<SyntaxError> {
        let (pos, reason) = s.split_once(" - ")?;
        let (line, column) = pos.trim().split_once(':')?;
        Some(SyntaxError {
            line: line.trim().parse().ok()?,
            column: column.trim().parse().ok()?,
            message: reason
                .trim()
                .chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        })
    };
    let mut errors = Vec::new();
    if let Some(one) = rest.strip_prefix(" at line ") {
        errors.extend(parse_one(one));
    } else {
        for l in rest.lines() {
            let l = l.trim_start();
            if let Some((_, after)) = l.split_once(". Line ") {
                errors.extend(parse_one(after));
            }
        }
    }
    if errors.is_empty() {
        errors.push(SyntaxError {
            line: 1,
            column: 1,
            message: summary.to_string(),
        });
    }
    errors
}

/// Find an include as pilota-build does: beside the including file first,
/// then in each include directory. Returns the directories searched when
/// it is nowhere.
fn resolve(from: &Path, include: &str, include_dirs: &[PathBuf]) -> Result<PathBuf, Vec<PathBuf>> {
    let here = from
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dirs: Vec<PathBuf> = std::iter::once(here)
        .chain(include_dirs.iter().cloned())
        .collect();
    dirs.iter()
        .map(|d| d.join(include))
        .find(|p| p.is_file())
        .ok_or(dirs)
}

/// pilota-build panics on `set<T> x = {}`, an empty set written as an empty
/// map literal, which Apache Thrift's compiler accepts (`ThriftTest.thrift`
/// has it). Rewrite each as `[]`, the same empty set; `None` when the text
/// has none.
pub(crate) fn patch_empty_sets(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    while let Some(at) = text[i..].find("set") {
        let start = i + at;
        i = start + 3;
        let word_start =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut j = skip_ws(i);
        if !word_start || bytes.get(j) != Some(&b'<') {
            continue;
        }
        // The matching `>`.
        let mut depth = 0;
        while j < bytes.len() {
            match bytes[j] {
                b'<' => depth += 1,
                b'>' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        j = skip_ws(j + 1);
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        j = skip_ws(j);
        if bytes.get(j) != Some(&b'=') {
            continue;
        }
        let open = skip_ws(j + 1);
        if bytes.get(open) != Some(&b'{') {
            continue;
        }
        let close = skip_ws(open + 1);
        if bytes.get(close) != Some(&b'}') {
            continue;
        }
        out.push_str(&text[copied..open]);
        out.push_str("[]");
        copied = close + 1;
        i = copied;
    }
    (copied > 0).then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sets_become_lists() {
        let idl = "struct A {\n  1: optional set<binary> s = {}\n  2: map<i32,i32> m = {}\n  3: set<set<i8>> t={ }\n}";
        let patched = patch_empty_sets(idl).unwrap();
        assert_eq!(
            patched,
            "struct A {\n  1: optional set<binary> s = []\n  2: map<i32,i32> m = {}\n  3: set<set<i8>> t=[]\n}"
        );
        assert_eq!(patch_empty_sets("struct B { 1: set<i32> s }"), None);
        assert_eq!(patch_empty_sets("struct C { 1: i32 offset = 3 }"), None);
    }

    #[test]
    fn one_and_several_syntax_errors() {
        let p = Path::new("/x/a.thrift");
        let one = syntax_errors(
            p,
            "Failed to parse thrift file: /x/a.thrift at line 3:7 - found 'x' expected '}'",
        );
        assert_eq!(
            one,
            vec![SyntaxError {
                line: 3,
                column: 7,
                message: "found 'x' expected '}'".into()
            }]
        );
        let two = syntax_errors(
            p,
            "Failed to parse thrift file: /x/a.thrift (2 errors found):\n  1. Line 1:2 - a\n  2. Line 4:5 - b",
        );
        assert_eq!(two.len(), 2);
        assert_eq!(
            (two[1].line, two[1].column, two[1].message.as_str()),
            (4, 5, "b")
        );
    }
}
