//! A small Thrift reader that keeps where each name, id and value was
//! written, for [`crate::validate`]: pilota-thrift-parser's tree has no
//! positions. It runs only on files pilota-thrift-parser accepted, so it
//! can be lenient; it reads the text as written (before
//! [`crate::normalize`]), which Apache Thrift accepts too.

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) col: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    /// A number that does not fit in an i64 or is not an integer.
    Double(String),
    Str(String),
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: Pos,
}

/// A name and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Named {
    pub(crate) name: String,
    pub(crate) pos: Pos,
}

/// A type as written.
#[derive(Debug, Clone)]
pub(crate) enum Ty {
    /// `i32`, `string`, ...
    Base(&'static str),
    List(Box<TyRef>),
    Set(Box<TyRef>),
    Map(Box<TyRef>, Box<TyRef>),
    /// A struct, enum, typedef, ... by name, maybe `include.Name`.
    Named(String),
}

/// A type and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct TyRef {
    pub(crate) ty: Ty,
    pub(crate) pos: Pos,
}

impl std::fmt::Display for TyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ty {
            Ty::Base(b) => f.write_str(b),
            Ty::List(t) => write!(f, "list<{t}>"),
            Ty::Set(t) => write!(f, "set<{t}>"),
            Ty::Map(k, v) => write!(f, "map<{k},{v}>"),
            Ty::Named(n) => f.write_str(n),
        }
    }
}

/// A constant value as written.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(i64),
    Double,
    Str(String),
    /// `true`, `false`, an enum value or another constant.
    Ident(String),
    List(Vec<ValueRef>),
    Map(Vec<(ValueRef, ValueRef)>),
}

/// A value and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct ValueRef {
    pub(crate) value: Value,
    pub(crate) pos: Pos,
}

/// `required` or `optional`, where written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Req {
    Required,
    Optional,
}

/// A field of a struct, or an argument or exception of a method.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The id as written, and where.
    pub(crate) id: Option<(i64, Pos)>,
    pub(crate) req: Option<(Req, Pos)>,
    pub(crate) ty: TyRef,
    pub(crate) name: Named,
    pub(crate) default: Option<ValueRef>,
}

/// A method of a service.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub(crate) oneway: bool,
    /// `None` for `void`.
    pub(crate) ret: Option<TyRef>,
    pub(crate) name: Named,
    pub(crate) args: Vec<Field>,
    /// Where `throws` was written, and the exceptions.
    pub(crate) throws: Option<(Pos, Vec<Field>)>,
}

/// `struct`, `union` or `exception`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StructKind {
    Struct,
    Union,
    Exception,
}

impl StructKind {
    pub(crate) fn word(self) -> &'static str {
        match self {
            StructKind::Struct => "struct",
            StructKind::Union => "union",
            StructKind::Exception => "exception",
        }
    }
}

/// A top-level definition.
#[derive(Debug, Clone)]
pub(crate) enum Def {
    Typedef {
        ty: TyRef,
        name: Named,
    },
    Const {
        ty: TyRef,
        name: Named,
        value: ValueRef,
    },
    Enum {
        name: Named,
        values: Vec<(Named, Option<(i64, Pos)>)>,
    },
    Struct {
        kind: StructKind,
        name: Named,
        fields: Vec<Field>,
    },
    Service {
        name: Named,
        extends: Option<Named>,
        functions: Vec<Function>,
    },
}

impl Def {
    pub(crate) fn name(&self) -> &Named {
        match self {
            Def::Typedef { name, .. }
            | Def::Const { name, .. }
            | Def::Enum { name, .. }
            | Def::Struct { name, .. }
            | Def::Service { name, .. } => name,
        }
    }

    /// What the definition is, for messages: `struct`, `enum`, ...
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Def::Typedef { .. } => "typedef",
            Def::Const { .. } => "const",
            Def::Enum { .. } => "enum",
            Def::Struct { kind, .. } => kind.word(),
            Def::Service { .. } => "service",
        }
    }
}

/// One file's includes and definitions.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdlFile {
    /// Each include's path as written, and where the path was written.
    pub(crate) includes: Vec<(String, Pos)>,
    pub(crate) defs: Vec<Def>,
}

/// Why the reader stopped: where, and what it found.
#[derive(Debug, Clone)]
pub(crate) struct ReadError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

fn tokenize(text: &str) -> Result<Vec<Token>, ReadError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    // Advance over `n` chars, counting lines.
    let step = |i: &mut usize, line: &mut usize, col: &mut usize, n: usize| {
        for _ in 0..n {
            if chars.get(*i) == Some(&'\n') {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, col };
        if c.is_whitespace() {
            step(&mut i, &mut line, &mut col, 1);
        } else if c == '#' || (c == '/' && chars.get(i + 1) == Some(&'/')) {
            let n = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .unwrap_or(chars.len() - i);
            step(&mut i, &mut line, &mut col, n);
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let n = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                .map_or(chars.len() - i, |j| j + 2 - i);
            step(&mut i, &mut line, &mut col, n);
        } else if c == '"' || c == '\'' {
            let mut j = i + 1;
            let mut s = String::new();
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' && j + 1 < chars.len() {
                    j += 1;
                }
                s.push(chars[j]);
                j += 1;
            }
            out.push(Token {
                tok: Tok::Str(s),
                pos,
            });
            let n = (j + 1).min(chars.len()) - i;
            step(&mut i, &mut line, &mut col, n);
        } else if c.is_ascii_digit()
            || ((c == '-' || c == '+')
                && chars
                    .get(i + 1)
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.'))
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let mut j = i + 1;
            while j < chars.len()
                && (chars[j].is_ascii_alphanumeric()
                    || chars[j] == '.'
                    || ((chars[j] == '-' || chars[j] == '+')
                        && matches!(chars[j - 1], 'e' | 'E')
                        && !chars[i..j].iter().any(|c| matches!(c, 'x' | 'X'))))
            {
                j += 1;
            }
            let s: String = chars[i..j].iter().collect();
            let (neg, digits) = match s.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, s.strip_prefix('+').unwrap_or(&s)),
            };
            let parsed = match digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
            {
                Some(hex) => i64::from_str_radix(hex, 16).ok(),
                None => digits.parse::<i64>().ok(),
            };
            let tok = match parsed {
                Some(v) => Tok::Int(if neg { -v } else { v }),
                None => Tok::Double(s),
            };
            out.push(Token { tok, pos });
            let n = j - i;
            step(&mut i, &mut line, &mut col, n);
        } else if c.is_alphabetic() || c == '_' {
            let mut j = i + 1;
            while j < chars.len()
                && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '.')
            {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Ident(chars[i..j].iter().collect()),
                pos,
            });
            let n = j - i;
            step(&mut i, &mut line, &mut col, n);
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                pos,
            });
            step(&mut i, &mut line, &mut col, 1);
        }
    }
    Ok(out)
}

struct Reader {
    toks: Vec<Token>,
    at: usize,
    end: Pos,
}

const BASE: [&str; 12] = [
    "bool", "byte", "i8", "i16", "i32", "i64", "double", "string", "binary", "uuid", "slist",
    "void",
];

impl Reader {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.tok)
    }

    fn pos(&self) -> Pos {
        self.toks.get(self.at).map_or(self.end, |t| t.pos)
    }

    fn err<T>(&self, what: &str) -> Result<T, ReadError> {
        let found = match self.peek() {
            None => "the end of the file".to_string(),
            Some(Tok::Ident(s)) | Some(Tok::Double(s)) => format!("`{s}`"),
            Some(Tok::Int(i)) => format!("`{i}`"),
            Some(Tok::Str(s)) => format!("\"{s}\""),
            Some(Tok::Punct(c)) => format!("`{c}`"),
        };
        Err(ReadError {
            pos: self.pos(),
            message: format!("expected {what}, found {found}"),
        })
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == w)
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let yes = self.is_punct(c);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn expect_punct(&mut self, c: char) -> Result<(), ReadError> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            self.err(&format!("`{c}`"))
        }
    }

    fn ident(&mut self) -> Result<Named, ReadError> {
        match self.toks.get(self.at) {
            Some(Token {
                tok: Tok::Ident(s),
                pos,
            }) => {
                let n = Named {
                    name: s.clone(),
                    pos: *pos,
                };
                self.at += 1;
                Ok(n)
            }
            _ => self.err("a name"),
        }
    }

    fn string(&mut self) -> Result<(String, Pos), ReadError> {
        match self.toks.get(self.at) {
            Some(Token {
                tok: Tok::Str(s),
                pos,
            }) => {
                let r = (s.clone(), *pos);
                self.at += 1;
                Ok(r)
            }
            _ => self.err("a string"),
        }
    }

    fn sep(&mut self) {
        if !self.eat_punct(',') {
            self.eat_punct(';');
        }
    }

    /// `( key = "value", key2, ... )`, if there.
    fn annotations(&mut self) -> Result<(), ReadError> {
        if !self.eat_punct('(') {
            return Ok(());
        }
        while !self.eat_punct(')') {
            if self.peek().is_none() {
                return self.err("`)`");
            }
            self.at += 1;
        }
        Ok(())
    }

    fn ty(&mut self) -> Result<TyRef, ReadError> {
        let pos = self.pos();
        let name = self.ident()?;
        let ty = match name.name.as_str() {
            "list" | "set" => {
                self.expect_punct('<')?;
                let inner = Box::new(self.ty()?);
                self.expect_punct('>')?;
                if name.name == "list" {
                    Ty::List(inner)
                } else {
                    Ty::Set(inner)
                }
            }
            "map" => {
                self.expect_punct('<')?;
                let k = Box::new(self.ty()?);
                self.expect_punct(',')?;
                let v = Box::new(self.ty()?);
                self.expect_punct('>')?;
                Ty::Map(k, v)
            }
            n => match BASE.iter().find(|b| **b == n) {
                Some(b) => Ty::Base(match *b {
                    "byte" => "i8",
                    "slist" => "string",
                    b => b,
                }),
                None => Ty::Named(n.to_string()),
            },
        };
        // `cpp_type "..."` after a container.
        if self.eat_word("cpp_type") {
            self.string()?;
        }
        self.annotations()?;
        Ok(TyRef { ty, pos })
    }

    fn value(&mut self) -> Result<ValueRef, ReadError> {
        let pos = self.pos();
        let value = match self.peek().cloned() {
            Some(Tok::Int(i)) => {
                self.at += 1;
                Value::Int(i)
            }
            Some(Tok::Double(_)) => {
                self.at += 1;
                Value::Double
            }
            Some(Tok::Str(s)) => {
                self.at += 1;
                Value::Str(s)
            }
            Some(Tok::Ident(s)) => {
                self.at += 1;
                Value::Ident(s)
            }
            Some(Tok::Punct('[')) => {
                self.at += 1;
                let mut items = Vec::new();
                while !self.eat_punct(']') {
                    items.push(self.value()?);
                    self.sep();
                }
                Value::List(items)
            }
            Some(Tok::Punct('{')) => {
                self.at += 1;
                let mut items = Vec::new();
                while !self.eat_punct('}') {
                    let k = self.value()?;
                    self.expect_punct(':')?;
                    let v = self.value()?;
                    items.push((k, v));
                    self.sep();
                }
                Value::Map(items)
            }
            _ => return self.err("a value"),
        };
        Ok(ValueRef { value, pos })
    }

    fn field(&mut self) -> Result<Field, ReadError> {
        let mut id = None;
        if let Some(Tok::Int(i)) = self.peek().cloned() {
            if self.toks.get(self.at + 1).map(|t| &t.tok) == Some(&Tok::Punct(':')) {
                id = Some((i, self.pos()));
                self.at += 2;
            }
        }
        let req_pos = self.pos();
        let req = if self.eat_word("required") {
            Some((Req::Required, req_pos))
        } else if self.eat_word("optional") {
            Some((Req::Optional, req_pos))
        } else {
            None
        };
        let ty = self.ty()?;
        // The C++ reference marker.
        self.eat_punct('&');
        let name = self.ident()?;
        let default = if self.eat_punct('=') {
            Some(self.value()?)
        } else {
            None
        };
        self.annotations()?;
        self.sep();
        Ok(Field {
            id,
            req,
            ty,
            name,
            default,
        })
    }

    fn fields_until(&mut self, close: char) -> Result<Vec<Field>, ReadError> {
        let mut fields = Vec::new();
        while !self.eat_punct(close) {
            if self.peek().is_none() {
                return self.err(&format!("`{close}`"));
            }
            fields.push(self.field()?);
        }
        Ok(fields)
    }

    fn function(&mut self) -> Result<Function, ReadError> {
        let oneway = self.eat_word("oneway") || self.eat_word("async");
        let ret = if self.eat_word("void") {
            None
        } else {
            Some(self.ty()?)
        };
        let name = self.ident()?;
        self.expect_punct('(')?;
        let args = self.fields_until(')')?;
        let throws_pos = self.pos();
        let throws = if self.eat_word("throws") {
            self.expect_punct('(')?;
            Some((throws_pos, self.fields_until(')')?))
        } else {
            None
        };
        self.annotations()?;
        self.sep();
        Ok(Function {
            oneway,
            ret,
            name,
            args,
            throws,
        })
    }

    fn definition(&mut self, file: &mut IdlFile) -> Result<(), ReadError> {
        let word = self.ident()?;
        match word.name.as_str() {
            "include" | "cpp_include" => {
                let (path, pos) = self.string()?;
                if word.name == "include" {
                    file.includes.push((path, pos));
                }
            }
            "namespace" => {
                // The scope (maybe `*`), then the name.
                if !self.eat_punct('*') {
                    self.ident()?;
                }
                self.ident()?;
                self.annotations()?;
            }
            "typedef" => {
                let ty = self.ty()?;
                let name = self.ident()?;
                self.annotations()?;
                file.defs.push(Def::Typedef { ty, name });
            }
            "const" => {
                let ty = self.ty()?;
                let name = self.ident()?;
                self.expect_punct('=')?;
                let value = self.value()?;
                self.annotations()?;
                file.defs.push(Def::Const { ty, name, value });
            }
            "enum" => {
                let name = self.ident()?;
                self.expect_punct('{')?;
                let mut values = Vec::new();
                while !self.eat_punct('}') {
                    let v = self.ident()?;
                    let mut n = None;
                    if self.eat_punct('=') {
                        let pos = self.pos();
                        match self.peek().cloned() {
                            Some(Tok::Int(i)) => {
                                self.at += 1;
                                n = Some((i, pos));
                            }
                            _ => return self.err("an integer"),
                        }
                    }
                    self.annotations()?;
                    self.sep();
                    values.push((v, n));
                }
                self.annotations()?;
                file.defs.push(Def::Enum { name, values });
            }
            "senum" => {
                self.ident()?;
                self.expect_punct('{')?;
                while !self.eat_punct('}') {
                    self.string()?;
                    self.sep();
                }
                self.annotations()?;
            }
            "struct" | "union" | "exception" => {
                let kind = match word.name.as_str() {
                    "struct" => StructKind::Struct,
                    "union" => StructKind::Union,
                    _ => StructKind::Exception,
                };
                let name = self.ident()?;
                self.eat_word("xsd_all");
                self.expect_punct('{')?;
                let fields = self.fields_until('}')?;
                self.annotations()?;
                file.defs.push(Def::Struct { kind, name, fields });
            }
            "service" => {
                let name = self.ident()?;
                let extends = if self.eat_word("extends") {
                    Some(self.ident()?)
                } else {
                    None
                };
                self.expect_punct('{')?;
                let mut functions = Vec::new();
                while !self.eat_punct('}') {
                    if self.peek().is_none() {
                        return self.err("`}`");
                    }
                    functions.push(self.function()?);
                }
                self.annotations()?;
                file.defs.push(Def::Service {
                    name,
                    extends,
                    functions,
                });
            }
            _ => {
                self.at -= 1;
                return self.err("a definition");
            }
        }
        self.sep();
        Ok(())
    }
}

/// Read `text`'s includes and definitions.
pub(crate) fn read(text: &str) -> Result<IdlFile, ReadError> {
    let toks = tokenize(text)?;
    let end = Pos {
        line: text.lines().count().max(1),
        col: text.lines().last().map_or(1, |l| l.chars().count() + 1),
    };
    let mut r = Reader { toks, at: 0, end };
    let mut file = IdlFile::default();
    while r.peek().is_some() {
        r.definition(&mut file)?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_positions() {
        let f = read(
            "include \"a.thrift\"\nstruct S {\n  1: required list<i32> xs = [1, -2],\n  -3: optional a.T t (x.y)\n  map<string,i8> m = {\"k\": 0x10}\n}\nservice Q extends a.P {\n  oneway void f(1: i32 a) throws (1: E e),\n  i64 g()\n}\n",
        )
        .unwrap();
        assert_eq!(f.includes[0].1, Pos { line: 1, col: 9 });
        let Def::Struct { fields, .. } = &f.defs[0] else {
            panic!()
        };
        assert_eq!(fields[0].id, Some((1, Pos { line: 3, col: 3 })));
        assert_eq!(fields[0].ty.to_string(), "list<i32>");
        assert_eq!(fields[1].id.map(|i| i.0), Some(-3));
        assert_eq!(fields[1].name.name, "t");
        assert!(fields[2].id.is_none());
        assert_eq!(fields[2].name.pos, Pos { line: 5, col: 18 });
        let Def::Service {
            functions, extends, ..
        } = &f.defs[1]
        else {
            panic!()
        };
        assert_eq!(extends.as_ref().unwrap().name, "a.P");
        assert!(functions[0].oneway && functions[0].throws.is_some());
        assert_eq!(functions[1].ret.as_ref().unwrap().to_string(), "i64");
    }
}
