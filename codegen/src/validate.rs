//! Checks Thrift IDL as Apache Thrift's compiler does before any code is
//! generated, so that what would not compile (or would not interoperate)
//! is a diagnostic naming the file, line, column and the IDL's own names,
//! not a Rust compile error in generated code. Where Apache only warns and
//! Weft can still generate working code, this warns too.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use crate::{
    error::{Diagnostic, Severity},
    idl::{Def, Field, IdlFile, Pos, Req, StructKind, Ty, TyRef, Value, ValueRef},
};

/// One file read for validation, with where each of its includes led.
#[derive(Debug)]
pub(crate) struct Unit {
    pub(crate) path: PathBuf,
    pub(crate) file: IdlFile,
    /// The index in the unit list of each include, by the name it is
    /// referred to with (the file's stem: `shared` for `"a/shared.thrift"`).
    pub(crate) includes: HashMap<String, usize>,
}

/// The largest field id the wire format can carry.
const MAX_FIELD_ID: i64 = i16::MAX as i64;

struct Checker<'a> {
    units: &'a [Unit],
    out: Vec<Diagnostic>,
}

/// A type with typedefs looked through.
enum Kind<'a> {
    Base(&'static str),
    List(&'a TyRef),
    Set(&'a TyRef),
    Map(&'a TyRef, &'a TyRef),
    Enum(usize, &'a Def),
    Struct(usize, &'a Def),
    /// A service, or a name not found (reported elsewhere).
    Other,
}

/// The reference `name` as written in unit `u` resolves to unit and definition.
fn lookup<'a>(units: &'a [Unit], u: usize, name: &str) -> Option<(usize, &'a Def)> {
    let local = units[u].file.defs.iter().find(|d| d.name().name == name);
    if let Some(d) = local {
        return Some((u, d));
    }
    let (prefix, rest) = name.split_once('.')?;
    let &target = units[u].includes.get(prefix)?;
    units[target]
        .file
        .defs
        .iter()
        .find(|d| d.name().name == rest)
        .map(|d| (target, d))
}

impl<'a> Checker<'a> {
    fn diag(&mut self, u: usize, pos: Pos, severity: Severity, message: String) {
        self.out.push(Diagnostic {
            path: self.units[u].path.clone(),
            line: pos.line,
            column: pos.col,
            severity,
            message,
        });
    }

    fn error(&mut self, u: usize, pos: Pos, message: String) {
        self.diag(u, pos, Severity::Error, message);
    }

    fn warn(&mut self, u: usize, pos: Pos, message: String) {
        self.diag(u, pos, Severity::Warning, message);
    }

    /// `10:5`, or `other.thrift:10:5` when `at` is in another file than `u`.
    fn at(&self, u: usize, at_unit: usize, pos: Pos) -> String {
        if u == at_unit {
            format!("{}:{}", pos.line, pos.col)
        } else {
            format!(
                "{}:{}:{}",
                self.units[at_unit].path.display(),
                pos.line,
                pos.col
            )
        }
    }

    fn kind(&self, u: usize, ty: &'a TyRef) -> Kind<'a> {
        let (mut u, mut ty) = (u, ty);
        // A typedef chain cannot be longer than the definitions there are.
        for _ in 0..=self.units.iter().map(|x| x.file.defs.len()).sum::<usize>() {
            return match &ty.ty {
                Ty::Base(b) => Kind::Base(b),
                Ty::List(t) => Kind::List(t),
                Ty::Set(t) => Kind::Set(t),
                Ty::Map(k, v) => Kind::Map(k, v),
                Ty::Named(n) => match lookup(self.units, u, n) {
                    Some((tu, Def::Typedef { ty: inner, .. })) => {
                        u = tu;
                        ty = inner;
                        continue;
                    }
                    Some((tu, d @ Def::Enum { .. })) => Kind::Enum(tu, d),
                    Some((tu, d @ Def::Struct { .. })) => Kind::Struct(tu, d),
                    _ => Kind::Other,
                },
            };
        }
        Kind::Other
    }

    /// Every named type in `ty` is defined, and is a type.
    fn check_type(&mut self, u: usize, ty: &TyRef, whose: &str) {
        match &ty.ty {
            Ty::Base("void") => self.error(u, ty.pos, format!("{whose} cannot be void")),
            Ty::Base(_) => {}
            Ty::List(t) | Ty::Set(t) => self.check_type(u, t, whose),
            Ty::Map(k, v) => {
                self.check_type(u, k, whose);
                self.check_type(u, v, whose);
            }
            Ty::Named(n) => match lookup(self.units, u, n) {
                None => {
                    let hint = match n.split_once('.') {
                        Some((prefix, _)) if !self.units[u].includes.contains_key(prefix) => {
                            format!(" (no included file is named {prefix}.thrift)")
                        }
                        _ => String::new(),
                    };
                    self.error(u, ty.pos, format!("unknown type {n} in {whose}{hint}"));
                }
                Some((_, d @ (Def::Const { .. } | Def::Service { .. }))) => {
                    let word = d.word();
                    self.error(
                        u,
                        ty.pos,
                        format!("{n} in {whose} is {}, not a type", article(word)),
                    );
                }
                Some(_) => {}
            },
        }
    }

    /// `value`, written in unit `u`, fits `ty`, written in unit `tu` (they
    /// differ for the fields of a struct from another file); `what` names
    /// the value in messages.
    fn check_value(&mut self, tu: usize, ty: &'a TyRef, u: usize, value: &ValueRef, what: &str) {
        let describe = |v: &Value| match v {
            Value::Int(i) => format!("the integer {i}"),
            Value::Double => "a double".to_string(),
            Value::Str(s) => format!("the string \"{s}\""),
            Value::Ident(s) => s.clone(),
            Value::List(_) => "a list".to_string(),
            Value::Map(_) => "a map".to_string(),
        };
        let mismatch = |me: &mut Self| {
            let msg = format!(
                "type error: {what} is declared as {ty} but its value is {}",
                describe(&value.value)
            );
            me.error(u, value.pos, msg);
        };
        // A named value: an enum value, or another constant.
        if let Value::Ident(name) = &value.value {
            if matches!(self.kind(tu, ty), Kind::Base("bool"))
                && (name == "true" || name == "false")
            {
                return;
            }
            // As Apache does, only the last part of `Enum.VALUE` counts: it
            // names a value of the declared enum (whatever enum it is
            // written through).
            if let Kind::Enum(
                _,
                Def::Enum {
                    name: ename,
                    values,
                },
            ) = self.kind(tu, ty)
            {
                if let Some((_, vn)) = name.rsplit_once('.') {
                    if !values.iter().any(|(v, _)| v.name == vn) {
                        let msg = format!(
                            "type error: {what} is declared as enum {}, which has no value {vn}",
                            ename.name
                        );
                        self.error(u, value.pos, msg);
                    }
                    return;
                }
            }
            match lookup(self.units, u, name) {
                Some((cu, Def::Const { ty: cty, .. })) => {
                    let (want, got) = (self.type_name(tu, ty), self.type_name(cu, cty));
                    if want != got && !(want == "double" && is_int(&got)) {
                        let msg = format!(
                            "type error: {what} is declared as {ty} but its value, const {name}, is {cty}"
                        );
                        self.error(u, value.pos, msg);
                    }
                }
                _ if name.contains('.')
                    && lookup(self.units, u, name.rsplit_once('.').map_or("", |p| p.0))
                        .is_some_and(|(_, d)| matches!(d, Def::Enum { .. })) =>
                {
                    let (en, vn) = name.rsplit_once('.').unwrap_or_default();
                    match lookup(self.units, u, en) {
                        Some((_, Def::Enum { values, .. }))
                            if !values.iter().any(|(v, _)| v.name == vn) =>
                        {
                            let msg =
                                format!("unknown constant {name}: enum {en} has no value {vn}");
                            self.error(u, value.pos, msg);
                        }
                        // An enum value used where it does not belong.
                        _ if !matches!(self.kind(tu, ty), Kind::Base(b) if is_int(b)) => {
                            mismatch(self)
                        }
                        _ => {}
                    }
                }
                _ => {
                    let msg = format!("unknown constant {name} in {what}");
                    self.error(u, value.pos, msg);
                }
            }
            return;
        }
        match (self.kind(tu, ty), &value.value) {
            (Kind::Base(b), Value::Int(i)) if is_int(b) => {
                let (lo, hi) = int_range(b);
                if *i < lo || *i > hi {
                    let msg = format!("{what} is declared as {ty}, which cannot hold {i}");
                    self.error(u, value.pos, msg);
                }
            }
            (Kind::Base("bool"), Value::Int(0 | 1)) => {}
            (Kind::Base("double"), Value::Int(_) | Value::Double) => {}
            (Kind::Base("string" | "binary" | "uuid"), Value::Str(_)) => {}
            (Kind::Enum(_, Def::Enum { name, values }), Value::Int(i)) => {
                if !values_of(values).any(|v| v == *i) {
                    let msg = format!(
                        "type error: {what} is declared as enum {}, which has no value {i}",
                        name.name
                    );
                    self.error(u, value.pos, msg);
                }
            }
            (Kind::List(t) | Kind::Set(t), Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.check_value(tu, t, u, item, &format!("element {} of {what}", i + 1));
                }
            }
            // `{}`: an empty set written as a map, which Apache accepts.
            (Kind::Set(_), Value::Map(items)) if items.is_empty() => {}
            (Kind::Map(_, _), Value::List(items)) if items.is_empty() => {}
            (Kind::Map(k, v), Value::Map(items)) => {
                for (i, (key, val)) in items.iter().enumerate() {
                    self.check_value(tu, k, u, key, &format!("key {} of {what}", i + 1));
                    self.check_value(tu, v, u, val, &format!("value {} of {what}", i + 1));
                }
            }
            (Kind::Struct(su, Def::Struct { name, fields, .. }), Value::Map(items)) => {
                for (key, val) in items {
                    let Value::Str(field) = &key.value else {
                        let msg = format!(
                            "type error: {what} is a struct {}, whose keys must be field names in quotes",
                            name.name
                        );
                        self.error(u, key.pos, msg);
                        continue;
                    };
                    match fields.iter().find(|f| &f.name.name == field) {
                        Some(f) => {
                            self.check_value(su, &f.ty, u, val, &format!("field {field} of {what}"))
                        }
                        None => {
                            let msg =
                                format!("{} has no field named {field} (in {what})", name.name);
                            self.error(u, key.pos, msg);
                        }
                    }
                }
            }
            (Kind::Other, _) => {}
            _ => mismatch(self),
        }
    }

    /// A type's name with typedefs looked through, to compare constants.
    fn type_name(&self, u: usize, ty: &'a TyRef) -> String {
        match self.kind(u, ty) {
            Kind::Base(b) => b.to_string(),
            Kind::List(t) => format!("list<{}>", self.type_name(u, t)),
            Kind::Set(t) => format!("set<{}>", self.type_name(u, t)),
            Kind::Map(k, v) => format!("map<{},{}>", self.type_name(u, k), self.type_name(u, v)),
            Kind::Enum(eu, d) | Kind::Struct(eu, d) => format!("{eu}:{}", d.name().name),
            Kind::Other => ty.to_string(),
        }
    }

    /// Field ids and names of one field list: positive, in range, unique.
    fn check_fields(&mut self, u: usize, fields: &'a [Field], whose: &str, in_args: bool) {
        let mut ids: HashMap<i64, Pos> = HashMap::new();
        let mut names: HashMap<&str, Pos> = HashMap::new();
        for f in fields {
            let name = &f.name.name;
            if let Some((id, pos)) = f.id {
                if id <= 0 {
                    // Apache warns and numbers the field itself, with a
                    // negative id; Weft cannot name fields after those.
                    self.error(
                        u,
                        pos,
                        format!("field {name} in {whose} has id {id}; field ids must be positive (1 to {MAX_FIELD_ID})"),
                    );
                } else if id > MAX_FIELD_ID {
                    self.error(
                        u,
                        pos,
                        format!("field {name} in {whose} has id {id}, more than the largest field id, {MAX_FIELD_ID}"),
                    );
                } else if let Some(first) = ids.get(&id) {
                    let msg = format!(
                        "field id {id} is used twice in {whose} (first at {}:{})",
                        first.line, first.col
                    );
                    self.error(u, pos, msg);
                } else {
                    ids.insert(id, pos);
                }
            } else {
                self.warn(
                    u,
                    f.name.pos,
                    format!("no field id for {name} in {whose}: the wire format may conflict or not be backward compatible (give it one)"),
                );
            }
            if let Some(first) = names.get(name.as_str()) {
                let msg = format!(
                    "field name {name} is used twice in {whose} (first at {}:{})",
                    first.line, first.col
                );
                self.error(u, f.name.pos, msg);
            } else {
                names.insert(name, f.name.pos);
            }
            if let Some((Req::Optional, pos)) = f.req {
                if in_args {
                    self.warn(
                        u,
                        pos,
                        format!(
                            "optional keyword is ignored in argument lists ({name} in {whose})"
                        ),
                    );
                }
            }
            self.check_type(u, &f.ty, &format!("field {name} of {whose}"));
            if let Some(d) = &f.default {
                self.check_value(
                    u,
                    &f.ty,
                    u,
                    d,
                    &format!("the default of field {name} in {whose}"),
                );
            }
        }
    }

    /// Every method `service` (in unit `u`) inherits, by name, with where
    /// it is declared and by which service; guards against cycles.
    fn inherited(
        &self,
        u: usize,
        extends: &Option<crate::idl::Named>,
    ) -> HashMap<String, (usize, Pos, String)> {
        let mut out = HashMap::new();
        let (mut u, mut next) = (u, extends.clone());
        let mut hops = 0;
        while let Some(base) = next.take() {
            hops += 1;
            if hops > 64 {
                break;
            }
            let Some((
                bu,
                Def::Service {
                    name,
                    extends,
                    functions,
                },
            )) = lookup(self.units, u, &base.name)
            else {
                break;
            };
            for f in functions {
                out.entry(f.name.name.clone())
                    .or_insert((bu, f.name.pos, name.name.clone()));
            }
            u = bu;
            next = extends.clone();
        }
        out
    }

    fn check_unit(&mut self, u: usize) {
        let unit = &self.units[u];
        let mut names: HashMap<&str, (Pos, &'static str)> = HashMap::new();
        for def in &unit.file.defs {
            let n = def.name();
            if let Some((first, word)) = names.get(n.name.as_str()) {
                let msg = format!(
                    "{} is defined twice: here as {} and first as {} (at {}:{})",
                    n.name,
                    article(def.word()),
                    article(word),
                    first.line,
                    first.col
                );
                self.error(u, n.pos, msg);
            } else {
                names.insert(&n.name, (n.pos, def.word()));
            }
        }
        for def in &unit.file.defs {
            match def {
                Def::Typedef { ty, name } => {
                    self.check_type(u, ty, &format!("typedef {}", name.name));
                }
                Def::Const { ty, name, value } => {
                    self.check_type(u, ty, &format!("const {}", name.name));
                    self.check_value(u, ty, u, value, &format!("const {}", name.name));
                }
                Def::Enum { name, values } => {
                    let mut seen_names: HashMap<&str, Pos> = HashMap::new();
                    let mut seen_values: HashMap<i64, (&str, Pos)> = HashMap::new();
                    let mut next = 0i64;
                    for (v, explicit) in values {
                        if let Some(first) = seen_names.get(v.name.as_str()) {
                            let msg = format!(
                                "enum value {}.{} is defined twice (first at {}:{})",
                                name.name, v.name, first.line, first.col
                            );
                            self.error(u, v.pos, msg);
                        } else {
                            seen_names.insert(&v.name, v.pos);
                        }
                        let (n, pos) = match explicit {
                            Some((n, pos)) => (*n, *pos),
                            None => (next, v.pos),
                        };
                        if n < i64::from(i32::MIN) || n > i64::from(i32::MAX) {
                            let msg = format!(
                                "enum value {}.{} = {n} does not fit in an i32",
                                name.name, v.name
                            );
                            self.error(u, pos, msg);
                        } else if let Some((first, fpos)) = seen_values.get(&n) {
                            let msg = format!(
                                "enum values {0}.{1} and {0}.{first} (at {2}:{3}) are both {n}; Debug prints {first}",
                                name.name, v.name, fpos.line, fpos.col
                            );
                            self.warn(u, pos, msg);
                        } else {
                            seen_values.insert(n, (&v.name, pos));
                        }
                        next = n.saturating_add(1);
                    }
                }
                Def::Struct { kind, name, fields } => {
                    let whose = format!("{} {}", kind.word(), name.name);
                    self.check_fields(u, fields, &whose, false);
                }
                Def::Service {
                    name,
                    extends,
                    functions,
                } => {
                    if let Some(base) = extends {
                        match lookup(self.units, u, &base.name) {
                            Some((_, Def::Service { .. })) => {}
                            Some((_, d)) => {
                                let msg = format!(
                                    "service {} extends {}, which is {}, not a service",
                                    name.name,
                                    base.name,
                                    article(d.word())
                                );
                                self.error(u, base.pos, msg);
                            }
                            None => {
                                let msg = format!(
                                    "service {} extends {}, which is not defined",
                                    name.name, base.name
                                );
                                self.error(u, base.pos, msg);
                            }
                        }
                    }
                    let inherited = self.inherited(u, extends);
                    let mut own: HashMap<&str, Pos> = HashMap::new();
                    for f in functions {
                        let fname = &f.name.name;
                        let whose = format!("{}.{fname}", name.name);
                        if let Some(first) = own.get(fname.as_str()) {
                            let msg = format!(
                                "method {fname} is defined twice in service {} (first at {}:{})",
                                name.name, first.line, first.col
                            );
                            self.error(u, f.name.pos, msg);
                        } else {
                            own.insert(fname, f.name.pos);
                        }
                        if let Some((bu, bpos, base)) = inherited.get(fname.as_str()) {
                            let msg = format!(
                                "method {fname} of service {} is already defined in service {base}, which it extends (at {})",
                                name.name,
                                self.at(u, *bu, *bpos)
                            );
                            self.error(u, f.name.pos, msg);
                        }
                        self.check_fields(u, &f.args, &format!("the arguments of {whose}"), true);
                        if let Some(ret) = &f.ret {
                            self.check_type(u, ret, &format!("the result of {whose}"));
                            if f.oneway {
                                self.warn(
                                    u,
                                    ret.pos,
                                    format!("oneway method {whose} should return void: its result {ret} is never sent"),
                                );
                            }
                        }
                        if let Some((tpos, throws)) = &f.throws {
                            if f.oneway && !throws.is_empty() {
                                self.error(
                                    u,
                                    *tpos,
                                    format!("oneway method {whose} cannot throw exceptions"),
                                );
                            }
                            self.check_fields(u, throws, &format!("the throws of {whose}"), true);
                            for t in throws {
                                match self.kind(u, &t.ty) {
                                    Kind::Struct(
                                        _,
                                        Def::Struct {
                                            kind: StructKind::Exception,
                                            ..
                                        },
                                    )
                                    | Kind::Other => {}
                                    k => {
                                        let what = match k {
                                            Kind::Struct(_, d) | Kind::Enum(_, d) => {
                                                article(d.word())
                                            }
                                            _ => "not an exception type".to_string(),
                                        };
                                        let what = if what.starts_with("not") {
                                            what
                                        } else {
                                            format!("{what}, not an exception")
                                        };
                                        let msg =
                                            format!("{whose} throws {}, which is {what}", t.ty);
                                        self.error(u, t.ty.pos, msg);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `a struct`, `an enum`.
fn article(word: &str) -> String {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {word}")
    } else {
        format!("a {word}")
    }
}

fn is_int(b: &str) -> bool {
    matches!(b, "i8" | "i16" | "i32" | "i64")
}

fn int_range(b: &str) -> (i64, i64) {
    match b {
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    }
}

/// The numbers of an enum's values, counting as Thrift does.
fn values_of(values: &[(crate::idl::Named, Option<(i64, Pos)>)]) -> impl Iterator<Item = i64> + '_ {
    let mut next = 0i64;
    values.iter().map(move |(_, explicit)| {
        let n = explicit.map_or(next, |(n, _)| n);
        next = n.saturating_add(1);
        n
    })
}

/// Check every unit; returns every diagnostic, errors and warnings, in
/// file order.
pub(crate) fn validate(units: &[Unit]) -> Vec<Diagnostic> {
    let mut c = Checker {
        units,
        out: Vec::new(),
    };
    for u in 0..units.len() {
        let from = c.out.len();
        c.check_unit(u);
        c.out[from..].sort_by_key(|d| (d.line, d.column));
    }
    c.out
}

/// The name an include is referred to by: its file stem.
pub(crate) fn include_name(include: &str) -> String {
    let file = Path::new(include)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".thrift").unwrap_or(&file).to_string()
}
