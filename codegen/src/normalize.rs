//! Rewrites Thrift that Apache Thrift's compiler accepts but pilota-build
//! does not into equivalent Thrift that it does, before pilota-build reads
//! it. Each rewrite keeps the wire format and the line numbers:
//!
//! - `set<T> x = {}` (an empty set written as a map) becomes `= []`;
//! - fields without an id get ids counting down from 32767 (Apache Thrift
//!   assigns -1, -2, ..., which pilota-build cannot name variables after,
//!   so such fields do not interoperate with Apache's code; Apache has long
//!   deprecated them);
//! - the C++ reference marker `&` after a field type is dropped (pilota
//!   boxes recursive struct fields itself), and a union with one becomes a
//!   struct of optional fields (same wire format; pilota cannot box a
//!   union's variants);
//! - an annotation without a value, `(cpp.customostream)`, gets `= "1"`;
//! - `uuid` constants become strings (pilota-build has no uuid literals),
//!   and uuid values in struct constants are left to the field's default;
//! - fields whose sets or map keys hold containers (or structs that do)
//!   get `pilota.rust_type = "btree"`, see [`btree_edits`];
//! - an enum field's default named through another enum
//!   (`MyEnum2 x = MyEnum1.A`, legal since enums are integers) is dropped.

/// Which bytes are inside comments or string literals.
fn mask(text: &str) -> Vec<bool> {
    let b = text.as_bytes();
    let mut m = vec![false; b.len()];
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let end = match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => find_from(b, i, b"\n"),
            b'#' => find_from(b, i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => find_from(b, i + 2, b"*/") + 2,
            q @ (b'"' | b'\'') => {
                let mut j = i + 1;
                while j < b.len() && b[j] != q {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                j + 1
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let end = end.min(b.len());
        m[start..end].iter_mut().for_each(|x| *x = true);
        i = end;
    }
    m
}

fn find_from(b: &[u8], from: usize, pat: &[u8]) -> usize {
    b[from.min(b.len())..]
        .windows(pat.len())
        .position(|w| w == pat)
        .map_or(b.len(), |p| from + p)
}

/// The index of the bracket closing the one at `open`.
fn matching(b: &[u8], m: &[bool], open: usize) -> usize {
    let mut depth = 0;
    for j in open..b.len() {
        if m[j] {
            continue;
        }
        match b[j] {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    b.len()
}

/// Whether `s` (a quoted literal) holds a uuid, with or without braces.
fn is_uuid_literal(s: &str) -> bool {
    let s = s.trim_matches(|c| c == '\'' || c == '"');
    let s = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(s);
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// The spans of `key: 'uuid'` entries (with their separator) in a map
/// literal's body.
fn uuid_entries(text: &str, m: &[bool], from: usize, to: usize) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut start = from;
    let mut depth = 0;
    for j in from..=to {
        let at_end = j == to;
        if !at_end && (m[j] || !matches!(b[j], b',' | b';' | b'{' | b'[' | b'}' | b']')) {
            continue;
        }
        if !at_end {
            match b[j] {
                b'{' | b'[' => {
                    depth += 1;
                    continue;
                }
                b'}' | b']' => {
                    depth -= 1;
                    continue;
                }
                _ if depth > 0 => continue,
                _ => {}
            }
        }
        let entry = &text[start..j];
        if let Some((_, v)) = entry.split_once(':') {
            if is_uuid_literal(v.trim()) {
                out.push((start, if at_end { j } else { j + 1 }));
            }
        }
        start = j + 1;
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Positions of the keyword `word` outside comments and strings.
fn keyword_positions(text: &str, m: &[bool], word: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = text[from..].find(word) {
        let at = from + p;
        from = at + word.len();
        let before_ok = at == 0 || !is_ident(b[at - 1]);
        let after_ok = b.get(at + word.len()).is_none_or(|&c| !is_ident(c));
        if before_ok && after_ok && !m[at] {
            out.push(at);
        }
    }
    out
}

/// Whether byte `at` is inside parentheses inside a `service { ... }`:
/// in a method's argument list or `throws`.
fn in_service_parens(b: &[u8], m: &[bool], at: usize) -> bool {
    // Each open `{` with whether `service` came before it, and the depth
    // of parentheses.
    let mut braces: Vec<bool> = Vec::new();
    let mut parens = 0usize;
    let mut last_word_service = false;
    let mut j = 0;
    while j < at {
        if m[j] {
            j += 1;
            continue;
        }
        match b[j] {
            b'{' => braces.push(last_word_service),
            b'}' => {
                braces.pop();
                last_word_service = false;
            }
            b'(' => parens += 1,
            b')' => parens = parens.saturating_sub(1),
            c if is_ident(c) => {
                let start = j;
                while j < at && is_ident(b[j]) {
                    j += 1;
                }
                if &b[start..j] == b"service" {
                    last_word_service = true;
                } else if &b[start..j] == b"struct"
                    || &b[start..j] == b"union"
                    || &b[start..j] == b"exception"
                    || &b[start..j] == b"enum"
                {
                    last_word_service = false;
                }
                continue;
            }
            _ => {}
        }
        j += 1;
    }
    parens > 0 && braces.last() == Some(&true)
}

/// Text edits: (start, end, replacement), applied back to front.
type Edits = Vec<(usize, usize, String)>;

fn apply(text: &str, mut edits: Edits) -> String {
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_string();
    for (start, end, with) in edits {
        out.replace_range(start..end, &with);
    }
    out
}

/// The rewritten text, or `None` when nothing needs rewriting.
pub(crate) fn normalize(text: &str) -> Option<String> {
    let m = mask(text);
    let b = text.as_bytes();
    let mut edits: Edits = Vec::new();

    // C++ reference markers. A union with one is recursive, and pilota
    // only boxes struct fields: make it a struct, which has the same wire
    // format (a union is a struct with one field set).
    let unions = keyword_positions(text, &m, "union");
    let decls: Vec<usize> = {
        let mut d = unions.clone();
        d.extend(keyword_positions(text, &m, "struct"));
        d.extend(keyword_positions(text, &m, "exception"));
        d.sort_unstable();
        d
    };
    let mut structs_made = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        if c == b'&' && !m[i] {
            edits.push((i, i + 1, " ".into()));
            if let Some(&decl) = decls.iter().rev().find(|&&d| d < i) {
                if unions.contains(&decl) && !structs_made.contains(&decl) {
                    structs_made.push(decl);
                    edits.push((decl, decl + 5, "struct".into()));
                }
            }
        }
    }

    // Annotations without a value: `(a.b)`.
    for (i, &c) in b.iter().enumerate() {
        if c != b'(' || m[i] {
            continue;
        }
        let Some(close) = (i + 1..b.len()).find(|&j| b[j] == b')' && !m[j]) else {
            continue;
        };
        let inner = text[i + 1..close].trim();
        if !inner.is_empty()
            && !inner.starts_with(|c: char| c.is_ascii_digit())
            && inner.bytes().all(|c| is_ident(c) || c == b'.')
        {
            edits.push((close, close, " = \"1\"".into()));
        }
    }

    // uuid constants as strings.
    for at in keyword_positions(text, &m, "const") {
        let eq = (at..b.len())
            .find(|&j| b[j] == b'=' && !m[j])
            .unwrap_or(b.len());
        let decl = &text[at..eq];
        let mut from = 0;
        while let Some(p) = decl[from..].find("uuid") {
            let s = at + from + p;
            from += p + 4;
            if (s == 0 || !is_ident(b[s - 1])) && b.get(s + 4).is_none_or(|&c| !is_ident(c)) {
                edits.push((s, s + 4, "string".into()));
            }
        }
    }

    // uuid values inside struct constants: `'id': '{0011...}'` entries go.
    for at in keyword_positions(text, &m, "const") {
        let Some(eq) = (at..b.len()).find(|&j| b[j] == b'=' && !m[j]) else {
            continue;
        };
        let ty = text[at + 5..eq].split_whitespace().next().unwrap_or("");
        let plain = ty.bytes().all(|c| is_ident(c) || c == b'.')
            && !matches!(ty, "string" | "binary" | "uuid");
        let Some(open) = (eq + 1..b.len()).find(|&j| !b[j].is_ascii_whitespace()) else {
            continue;
        };
        if plain && (b[open] == b'\'' || b[open] == b'"') {
            // `const myUUID X = '...'` through a typedef of uuid.
            let end = (open + 1..b.len())
                .find(|&j| b[j] == b[open])
                .unwrap_or(b.len());
            if is_uuid_literal(&text[open..=end.min(b.len() - 1)]) {
                let ty_at = at + 5 + text[at + 5..].find(ty).unwrap_or(0);
                edits.push((ty_at, ty_at + ty.len(), "string".into()));
            }
            continue;
        }
        // Struct values, also nested in containers; a container of strings
        // keeps its strings.
        let decl = &text[at + 5..eq];
        if b[open] != b'{' || decl.contains("string") || decl.contains("uuid") {
            continue;
        }
        let close = matching(b, &m, open);
        for j in open..close {
            if b[j] == b'{' && !m[j] {
                let end = matching(b, &m, j);
                for (s, e) in uuid_entries(text, &m, j + 1, end) {
                    edits.push((s, e, String::new()));
                }
            }
        }
    }

    // Enum defaults named through another enum.
    for (i, &c) in b.iter().enumerate() {
        if c != b'=' || m[i] {
            continue;
        }
        // `TYPE NAME = OTHER.VALUE` inside a struct body.
        let before: Vec<&str> = text[..i].split_whitespace().rev().take(2).collect();
        let after = text[i + 1..].trim_start();
        let value: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        if let ([_, ty], Some((prefix, _))) = (before.as_slice(), value.split_once('.')) {
            let ty = ty.rsplit('.').next().unwrap_or(ty);
            let first = ty.as_bytes().first().copied().unwrap_or(b'a');
            if first.is_ascii_uppercase() && prefix != ty && !prefix.contains('.') {
                let start = i;
                let end = i + 1 + (text[i + 1..].len() - after.len()) + value.len();
                if value.chars().filter(|&c| c == '.').count() == 1 {
                    edits.push((start, end, String::new()));
                }
            }
        }
    }

    edits.extend(btree_edits(text, &m));

    // Fields without ids.
    for kw in ["struct", "union", "exception"] {
        for at in keyword_positions(text, &m, kw) {
            let Some(open) = (at..b.len()).find(|&j| !m[j] && (b[j] == b'{' || b[j] == b';'))
            else {
                continue;
            };
            if b[open] != b'{' {
                continue;
            }
            let mut next_id = i16::MAX;
            let mut depth = 0i32;
            let mut field_start = true;
            let mut j = open + 1;
            while j < b.len() {
                if m[j] || b[j].is_ascii_whitespace() {
                    j += 1;
                    continue;
                }
                if field_start && depth == 0 {
                    field_start = false;
                    if b[j] == b'}' {
                        break;
                    }
                    if !(b[j].is_ascii_digit() || b[j] == b'-' || b[j] == b'+') {
                        edits.push((j, j, format!("{next_id}: ")));
                        next_id -= 1; // ids are distinct per struct
                    }
                }
                match b[j] {
                    b'<' | b'(' | b'[' | b'{' => depth += 1,
                    b'>' | b')' | b']' => depth -= 1,
                    b'}' if depth == 0 => break,
                    b'}' => depth -= 1,
                    b',' | b';' if depth == 0 => field_start = true,
                    _ => {}
                }
                j += 1;
            }
        }
    }

    // `optional` on a method's argument or exception: Apache Thrift warns
    // that it is ignored, so the argument is an ordinary one (pilota would
    // make it an `Option` the service code does not expect).
    for at in keyword_positions(text, &m, "optional") {
        if in_service_parens(b, &m, at) {
            edits.push((at, at + "optional".len(), " ".repeat("optional".len())));
        }
    }

    let text2 = if edits.is_empty() {
        None
    } else {
        Some(apply(text, edits))
    };
    let base = text2.as_deref().unwrap_or(text);
    match crate::check::patch_empty_sets(base) {
        Some(t) => Some(t),
        None => text2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_arguments_become_ordinary() {
        let idl = "struct S { 1: optional i32 a }\nservice Q {\n  void f(1: optional i32 x (k = \"optional\")) throws (1: optional E e)\n}\n";
        let out = normalize(idl).unwrap();
        assert_eq!(
            out,
            "struct S { 1: optional i32 a }\nservice Q {\n  void f(1:          i32 x (k = \"optional\")) throws (1:          E e)\n}\n"
        );
    }

    #[test]
    fn apache_only_syntax() {
        let idl =
            "struct R {\n  1: optional R & next, // a & b\n  string name;\n  optional i32 x;\n}\n\
                   enum E { A } (cpp.customostream)\n\
                   const uuid U = '{00112233-4455-6677-8899-aaBBccDDeeFF}'\n\
                   service S { void f(1: i32 x) }\n";
        let out = normalize(idl).unwrap();
        assert_eq!(
            out,
            "struct R {\n  1: optional R   next, // a & b\n  32767: string name;\n  32766: optional i32 x;\n}\n\
             enum E { A } (cpp.customostream = \"1\")\n\
             const string U = '{00112233-4455-6677-8899-aaBBccDDeeFF}'\n\
             service S { void f(1: i32 x) }\n"
        );
        assert_eq!(normalize("struct A { 1: i32 a }"), None);
        let nested = "struct I { 1: map<i32, string> m, 2: double d }\n\
                      struct C {\n  1: set<I> s,\n  2: list<map<set<i32> (x = \"\"), i32>> l (y = \"1\")\n  3: i32 n\n}";
        assert_eq!(
            normalize(nested).unwrap(),
            "struct I { 1: map<i32, string> m (pilota.rust_type = \"btree\"), 2: double d }\n\
             struct C {\n  1: set<I> s,\n  2: list<map<set<i32> (x = \"\"), i32>> l (pilota.rust_type = \"btree\", y = \"1\")\n  3: i32 n\n}"
        );
        let consts = "const thing T = { 'a' : 3, 'id' : '{00112233-4455-6677-8899-aaBBccDDeeFF}', 'b': 'x' }\n\
                      struct S {\n  1: MyEnum2 e = MyEnum1.ME2_2\n  2: MyEnum3 f = MyEnum3.X\n}";
        assert_eq!(
            normalize(consts).unwrap(),
            "const thing T = { 'a' : 3, 'b': 'x' }\n\
             struct S {\n  1: MyEnum2 e \n  2: MyEnum3 f = MyEnum3.X\n}"
        );
    }
}

// ===== btree =====
//
// pilota maps `set<T>` and `map<K, V>` to hash containers, which need
// `T: Hash + Eq`; a set of sets, a map keyed by a map or by a struct that
// holds one does not compile. pilota's annotation `pilota.rust_type =
// "btree"` turns every container in a field's type into `BTreeSet` /
// `BTreeMap`, which are `Hash + Ord` themselves, and a struct whose
// containers are all B-trees derives `Hash`, `Eq` and `Ord`. So: annotate
// each field whose set elements or map keys hold a container, and every
// container field of each struct used as a set element or map key (or
// inside a B-tree), transitively. The wire format is unchanged.

/// A Thrift type, as far as hashing is concerned.
#[derive(Debug, Clone)]
enum Ty {
    Name(String),
    List(Box<Ty>),
    Set(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
}

/// Parse a type at `from`; returns it and where it ends.
fn parse_ty(b: &[u8], m: &[bool], from: usize) -> Option<(Ty, usize)> {
    let mut i = from;
    while i < b.len() && (b[i].is_ascii_whitespace() || m[i]) {
        i += 1;
    }
    let start = i;
    while i < b.len() && (is_ident(b[i]) || b[i] == b'.') {
        i += 1;
    }
    if i == start {
        return None;
    }
    let name = std::str::from_utf8(&b[start..i]).ok()?.to_string();
    let skip_ws = |mut j: usize| {
        while j < b.len() && (b[j].is_ascii_whitespace() || m[j]) {
            j += 1;
        }
        j
    };
    let mut j = skip_ws(i);
    let ty = match name.as_str() {
        "list" | "set" | "map" if b.get(j) == Some(&b'<') => {
            let (a, end) = parse_ty(b, m, j + 1)?;
            j = skip_ws(end);
            let ty = if name == "map" {
                if b.get(j) != Some(&b',') {
                    return None;
                }
                let (v, end) = parse_ty(b, m, j + 1)?;
                j = skip_ws(end);
                Ty::Map(Box::new(a), Box::new(v))
            } else if name == "set" {
                Ty::Set(Box::new(a))
            } else {
                Ty::List(Box::new(a))
            };
            if b.get(j) != Some(&b'>') {
                return None;
            }
            i = j + 1;
            j = skip_ws(i);
            ty
        }
        _ => Ty::Name(name),
    };
    // Type annotations.
    if b.get(j) == Some(&b'(') {
        let close = matching(b, m, j);
        // Never closed: not a type (the parser reports the file); its end
        // would be past the text.
        if close >= b.len() {
            return None;
        }
        i = close + 1;
    }
    Some((ty, i))
}

/// A struct field: its type and where its annotations go.
#[derive(Debug)]
struct FieldAt {
    ty: Ty,
    /// Insert `(pilota.rust_type = "btree")` here...
    end: usize,
    /// ...or after this `(` of existing field annotations.
    annotations: Option<usize>,
}

/// The fields of each struct, union and exception, by name.
fn struct_fields(text: &str, m: &[bool]) -> Vec<(String, Vec<FieldAt>)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for kw in ["struct", "union", "exception"] {
        for at in keyword_positions(text, m, kw) {
            let name: String = text[at + kw.len()..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let Some(open) = (at..b.len()).find(|&j| !m[j] && b[j] == b'{') else {
                continue;
            };
            let close = matching(b, m, open);
            let mut fields = Vec::new();
            let mut j = open + 1;
            while j < close {
                // One field: `ID: [required|optional] TYPE NAME [= V] [(A)]`.
                while j < close
                    && (b[j].is_ascii_whitespace() || m[j] || b[j] == b',' || b[j] == b';')
                {
                    j += 1;
                }
                if j >= close {
                    break;
                }
                let Some(colon) = (j..close).find(|&k| !m[k] && b[k] == b':') else {
                    break;
                };
                let mut k = colon + 1;
                let rest = &text[k..close];
                let trimmed = rest.trim_start();
                for q in ["required", "optional"] {
                    if trimmed.starts_with(q) {
                        k += rest.len() - trimmed.len() + q.len();
                    }
                }
                let Some((ty, after_ty)) = parse_ty(b, m, k) else {
                    break;
                };
                // The name, then up to the field's end.
                let mut e = after_ty;
                while e < close && (b[e].is_ascii_whitespace() || m[e]) {
                    e += 1;
                }
                while e < close && is_ident(b[e]) {
                    e += 1;
                }
                let name_end = e;
                let mut depth = 0;
                let mut last = name_end;
                let mut annotations = None;
                while e < close {
                    if m[e] {
                        e += 1;
                        continue;
                    }
                    match b[e] {
                        b'{' | b'[' | b'(' => {
                            if depth == 0 && b[e] == b'(' {
                                annotations = Some(e);
                            }
                            depth += 1;
                        }
                        b'}' | b']' | b')' => depth -= 1,
                        b',' | b';' if depth == 0 => break,
                        c if depth == 0 && c.is_ascii_digit() => {
                            // The next field's id, when there is no separator.
                            let next =
                                text[e..close].trim_start_matches(|c: char| c.is_ascii_digit());
                            if next.trim_start().starts_with(':') && text[last..e].contains('\n') {
                                break;
                            }
                        }
                        _ => {}
                    }
                    if !b[e].is_ascii_whitespace() {
                        last = e + 1;
                    }
                    e += 1;
                }
                fields.push(FieldAt {
                    ty,
                    end: last,
                    annotations: annotations.filter(|&a| matching(b, m, a) + 1 == last),
                });
                j = e;
            }
            out.push((name, fields));
        }
    }
    out
}

impl Ty {
    /// `self` with typedef names replaced by what they stand for.
    fn resolve<'a>(&'a self, typedefs: &'a [(String, Ty)], depth: usize) -> &'a Ty {
        match self {
            Ty::Name(n) if depth < 16 => typedefs
                .iter()
                .find(|(t, _)| t == n)
                .map_or(self, |(_, ty)| ty.resolve(typedefs, depth + 1)),
            _ => self,
        }
    }

    fn has_container(&self, typedefs: &[(String, Ty)]) -> bool {
        match self.resolve(typedefs, 0) {
            Ty::Name(_) => false,
            Ty::List(t) => t.has_container(typedefs),
            Ty::Set(_) | Ty::Map(..) => true,
        }
    }

    /// Every name the type mentions, typedefs resolved.
    fn names(&self, typedefs: &[(String, Ty)], out: &mut Vec<String>) {
        match self.resolve(typedefs, 0) {
            Ty::Name(n) => out.push(n.rsplit('.').next().unwrap_or(n).to_string()),
            Ty::List(t) | Ty::Set(t) => t.names(typedefs, out),
            Ty::Map(k, v) => {
                k.names(typedefs, out);
                v.names(typedefs, out);
            }
        }
    }

    /// Set elements and map keys, at any depth.
    fn keys<'a>(&'a self, typedefs: &'a [(String, Ty)], out: &mut Vec<&'a Ty>) {
        match self.resolve(typedefs, 0) {
            Ty::Name(_) => {}
            Ty::List(t) => t.keys(typedefs, out),
            Ty::Set(t) => {
                out.push(t);
                t.keys(typedefs, out);
            }
            Ty::Map(k, v) => {
                out.push(k);
                k.keys(typedefs, out);
                v.keys(typedefs, out);
            }
        }
    }
}

/// Edits adding `pilota.rust_type = "btree"` where hash containers would
/// not compile.
fn btree_edits(text: &str, m: &[bool]) -> Edits {
    let b = text.as_bytes();
    let structs = struct_fields(text, m);
    let mut typedefs = Vec::new();
    for at in keyword_positions(text, m, "typedef") {
        if let Some((ty, end)) = parse_ty(b, m, at + "typedef".len()) {
            let name: String = text[end..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            typedefs.push((name, ty));
        }
    }
    // Structs that must be hashable: seeded by every set element and map
    // key in the file (fields, arguments, results, typedefs, constants).
    let mut hashable: Vec<String> = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        let generic = (c == b's' && text[i..].starts_with("set"))
            || (c == b'm' && text[i..].starts_with("map"));
        if !generic || m[i] || (i > 0 && is_ident(b[i - 1])) {
            continue;
        }
        if let Some((ty, _)) = parse_ty(b, m, i) {
            let mut keys = Vec::new();
            ty.keys(&typedefs, &mut keys);
            for k in keys {
                k.names(&typedefs, &mut hashable);
            }
        }
    }
    let mut btree: Vec<(usize, usize)> = Vec::new();
    loop {
        let before = (hashable.len(), btree.len());
        for (si, (name, fields)) in structs.iter().enumerate() {
            let in_h = hashable.contains(name);
            for (fi, f) in fields.iter().enumerate() {
                let mut keys = Vec::new();
                f.ty.keys(&typedefs, &mut keys);
                let needs = (in_h && f.ty.has_container(&typedefs))
                    || keys.iter().any(|k| k.has_container(&typedefs));
                if needs && !btree.contains(&(si, fi)) {
                    btree.push((si, fi));
                }
                if in_h || btree.contains(&(si, fi)) {
                    let mut names = Vec::new();
                    f.ty.names(&typedefs, &mut names);
                    for n in names {
                        if structs.iter().any(|(s, _)| *s == n) && !hashable.contains(&n) {
                            hashable.push(n);
                        }
                    }
                }
            }
        }
        if (hashable.len(), btree.len()) == before {
            break;
        }
    }
    btree
        .into_iter()
        .map(|(si, fi)| {
            let f = &structs[si].1[fi];
            match f.annotations {
                Some(open) => (
                    open + 1,
                    open + 1,
                    "pilota.rust_type = \"btree\", ".to_string(),
                ),
                None => (f.end, f.end, " (pilota.rust_type = \"btree\")".to_string()),
            }
        })
        .collect()
}
