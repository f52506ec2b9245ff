//! The pilota-build backend: message types come from pilota's
//! `ThriftBackend`, service code (entry messages, handler traits, servers,
//! clients) from [`crate::service`].

use pilota_build::{
    db::RirDatabase,
    rir::{self, Method},
    tags::RustWrapperArc,
    CodegenBackend, Context, DefId, IdentName, MakeBackend, ThriftBackend,
};

use crate::service::{self, ErrorInfo, MethodInfo, ServiceInfo};

/// Makes a [`WeftBackend`] for pilota-build's `Builder::with_backend`.
#[derive(Debug, Clone, Default)]
pub(crate) struct MkWeftBackend {
    /// The path generated types are reachable under from the stubs
    /// `weft init` writes (`my_service::generated`).
    pub(crate) global_prefix: String,
}

impl MakeBackend for MkWeftBackend {
    type Target = WeftBackend;

    fn make_backend(self, context: Context) -> WeftBackend {
        WeftBackend {
            inner: ThriftBackend::new(context),
            global_prefix: self.global_prefix,
        }
    }
}

/// Forwards every type hook to pilota's `ThriftBackend` and writes Weft's
/// service code.
#[derive(Clone)]
pub(crate) struct WeftBackend {
    inner: ThriftBackend,
    global_prefix: String,
}

/// The Rust name of a method as an enum variant (`test_void` → `TestVoid`),
/// as pilota names the method's argument and result types.
fn variant_name(cx: &Context, def_id: DefId) -> String {
    let name = cx.rust_name(def_id);
    if cx.cache.names.contains_key(&def_id) {
        name.0.to_string()
    } else {
        name.0.upper_camel_ident().to_string()
    }
}

impl WeftBackend {
    /// The path, relative to the current item, of the type pilota (or we)
    /// named `{Service}{Method}{suffix}` for `method`, which may come from an
    /// extended service in another module.
    fn method_ty_path(&self, service_def_id: DefId, method: &Method, suffix: &str) -> String {
        let cx = self.cx();
        match method.source {
            rir::MethodSource::Extend(base) => {
                let ident = format!(
                    "{}{}{suffix}",
                    cx.rust_name(base),
                    variant_name(cx, method.def_id)
                );
                let path = cx.cur_related_item_path(base);
                let mut segs: Vec<&str> = path.split("::").collect();
                segs.pop();
                segs.push(&ident);
                segs.join("::")
            }
            rir::MethodSource::Own => format!(
                "{}{}{suffix}",
                cx.rust_name(service_def_id),
                variant_name(cx, method.def_id)
            ),
        }
    }

    fn ty(&self, ty: &pilota_build::ty::Ty, global: Option<&str>) -> String {
        self.ty_with_tags(ty, ty.tags_id, global)
    }

    /// The Rust type of `ty`, relative to the current item or under
    /// `global`, wrapped in `Arc` when its tags ask for it.
    fn ty_with_tags(
        &self,
        ty: &pilota_build::ty::Ty,
        tags: pilota_build::TagId,
        global: Option<&str>,
    ) -> String {
        let t = self.cx().codegen_item_ty(ty.kind.clone());
        let s = match global {
            Some(prefix) => t.global_path(prefix).to_string(),
            None => t.to_string(),
        };
        let arc = self
            .cx()
            .tags(tags)
            .is_some_and(|tags| matches!(tags.get::<RustWrapperArc>(), Some(RustWrapperArc(true))));
        if arc {
            format!("::std::sync::Arc<{s}>")
        } else {
            s
        }
    }

    /// Everything the service templates need to know about `method`.
    fn method_info(&self, service_def_id: DefId, m: &Method, global: Option<&str>) -> MethodInfo {
        let cx = self.cx();
        let error = m.exceptions.as_ref().map(|p| {
            let item = cx.expect_item(p.did);
            let variants = match &*item {
                rir::Item::Enum(e) => e
                    .variants
                    .iter()
                    .map(|v| {
                        let ty = v
                            .fields
                            .first()
                            .map(|t| self.ty(t, global))
                            .unwrap_or_else(|| "()".to_string());
                        (cx.rust_name(v.did).to_string(), ty)
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let path = match global {
                // `{prefix}::{item path}`, as `CodegenTy::global_path` does.
                Some(prefix) => {
                    let declaring = match m.source {
                        rir::MethodSource::Extend(base) => base,
                        rir::MethodSource::Own => service_def_id,
                    };
                    let mut segs: Vec<String> = vec![prefix.to_string()];
                    segs.extend(cx.item_path(declaring).iter().map(|s| s.to_string()));
                    segs.pop();
                    segs.push(format!(
                        "{}{}Error",
                        cx.rust_name(declaring),
                        variant_name(cx, m.def_id)
                    ));
                    segs.join("::")
                }
                None => self.method_ty_path(service_def_id, m, "Error"),
            };
            ErrorInfo::new(path, variants)
        });
        MethodInfo {
            idl_name: m.name.raw_str().to_string(),
            fn_name: cx.rust_name(m.def_id).to_string(),
            variant: crate::service::rust_ident(&variant_name(cx, m.def_id)),
            args: m
                .args
                .iter()
                .map(|a| {
                    (
                        cx.rust_name(a.def_id).to_string(),
                        self.ty_with_tags(&a.ty, a.tags_id, global),
                    )
                })
                .collect(),
            ret: self.ty(&m.ret, global),
            oneway: m.oneway,
            own: matches!(m.source, rir::MethodSource::Own),
            args_ty: self.method_ty_path(service_def_id, m, "ArgsSend"),
            result_ty: self.method_ty_path(service_def_id, m, "ResultSend"),
            error,
        }
    }

    fn service_info(&self, def_id: DefId, s: &rir::Service) -> ServiceInfo {
        let cx = self.cx();
        let methods = cx.service_methods(def_id);
        let name = cx.rust_name(def_id).to_string();
        ServiceInfo {
            idl_name: s.name.raw_str().to_string(),
            names: service::ItemNames::new(&name, &service::module_names(cx, def_id)),
            name,
            methods: methods
                .iter()
                .map(|m| self.method_info(def_id, m, None))
                .collect(),
        }
    }
}

/// Fix what pilota-build writes. It decodes a list by writing each element through a raw pointer
/// into `Vec::with_capacity(n)` and then `set_len(n)`, in an `unsafe`
/// block. Rewrite what `ThriftBackend` appended to `stream` after `start`
/// into the same loop with `push`, so that crates using generated code can
/// `#![forbid(unsafe_code)]`; the capacity is still reserved up front.
fn make_safe(stream: &mut String, start: usize) {
    const WRITE: &str = "val.as_mut_ptr().offset(i as isize).write(";
    // pilota-build 0.13.12 passes uuids by reference at two sites where
    // pilota 0.13.1, which Weft's runtime pins, takes them by value.
    if stream[start..].contains(".write_uuid(") {
        let tail = stream
            .split_off(start)
            .replace(".write_uuid(", ".write_uuid(*");
        stream.push_str(&tail);
    }
    if !stream[start..].contains(WRITE) {
        return;
    }
    let mut tail = stream.split_off(start);
    // `unsafe {` opens the block whose first statement reads the list header.
    let mut out = String::with_capacity(tail.len());
    let mut rest = tail.as_str();
    while let Some(at) = rest.find("unsafe {") {
        let after = &rest[at + "unsafe {".len()..];
        out.push_str(&rest[..at]);
        if after.trim_start().starts_with("let list_ident") {
            out.push('{');
        } else {
            out.push_str("unsafe {");
        }
        rest = after;
    }
    out.push_str(rest);
    tail = out
        .replace(WRITE, "val.push(")
        .replace(
            "for i in 0..list_ident.size {",
            "for _ in 0..list_ident.size {",
        )
        .replace("val.set_len(list_ident.size);", "");
    stream.push_str(&tail);
}

/// pilota writes an IDL enum as a newtype over `i32` with a constant per
/// value, deriving `Debug` (`Color(1)`) and dropping the values' docs.
/// Replace the derive with a `Debug` that prints the value's name (the
/// first, when several share it) and document each constant; `stream`
/// ends with the enum pilota just wrote.
pub(crate) fn finish_int_enum(cx: &Context, def_id: DefId, stream: &mut String, e: &rir::Enum) {
    let name = cx.rust_name(def_id).to_string();
    let Some(decl) = stream.rfind(&format!("pub struct {name}(")) else {
        return;
    };
    // The derives are among the attributes right before the declaration:
    // `#[derive(Debug)]` apart (Thrift) or `Debug` in a list (protobuf).
    let attrs_start = stream[..decl].rfind(['}', ';']).map_or(0, |i| i + 1);
    let attrs = &stream[attrs_start..decl];
    let mut rewritten = String::with_capacity(attrs.len());
    let mut rest = attrs;
    while let Some(at) = rest.find("#[derive(") {
        let open = at + "#[derive(".len();
        let Some(len) = rest[open..].find(")]") else {
            break;
        };
        rewritten.push_str(&rest[..at]);
        let kept: Vec<&str> = rest[open..open + len]
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "Debug")
            .collect();
        if !kept.is_empty() {
            rewritten.push_str(&format!("#[derive({})]", kept.join(", ")));
        }
        rest = &rest[open + len + ")]".len()..];
    }
    rewritten.push_str(rest);
    stream.replace_range(attrs_start..decl, &rewritten);
    let mut arms = String::new();
    let mut seen = Vec::new();
    for v in &e.variants {
        let vname = cx.rust_name(v.did).to_string();
        let konst = format!("pub const {vname}: Self = Self(");
        if let Some(at) = stream.rfind(&konst) {
            let docs = doc_attrs(&v.leading_comments);
            stream.insert_str(at, &docs);
        }
        let Some(discr) = v.discr else { continue };
        if !seen.contains(&discr) {
            seen.push(discr);
            // The IDL's spelling (`Self`), not the Rust one (`Self_`).
            let idl = v.name.raw_str();
            arms.push_str(&format!("{discr} => f.write_str({idl:?}),\n"));
        }
    }
    stream.push_str(&format!(
        r#"
impl ::std::fmt::Debug for {name} {{
    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{
        match self.0 {{
            {arms}
            other => ::std::write!(f, "{name}({{other}})"),
        }}
    }}
}}
"#
    ));
}

/// The `#[doc]` attributes for an IDL comment when it is a doc comment
/// (`/** ... */` or `///`, as Apache Thrift reads them), else nothing.
/// Written as attributes rather than comments: a Thrift comment may hold
/// `*/` or `/*`, which Rust comments nest. Lines are unindented, and code
/// fences marked `text`, so that rustdoc runs nothing as a doctest.
pub(crate) fn doc_attrs(comments: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut rest = comments.trim();
    while !rest.is_empty() {
        if let Some(body) = rest.strip_prefix("/**").filter(|b| !b.starts_with('/')) {
            let end = body.find("*/").unwrap_or(body.len());
            let body = &body[..end];
            // Doxygen's `/**<` documents what comes before: not ours.
            if !body.starts_with('<') {
                for l in body.lines() {
                    let l = l.trim();
                    let l = l.strip_prefix('*').unwrap_or(l);
                    lines.push(l.trim().to_string());
                }
            }
            rest = body_after(rest, "*/");
        } else if let Some(body) = rest.strip_prefix("///") {
            let end = body.find('\n').unwrap_or(body.len());
            lines.push(body[..end].trim().to_string());
            rest = &body[end..];
        } else if rest.starts_with("/*") {
            rest = body_after(rest, "*/");
        } else {
            let end = rest.find('\n').unwrap_or(rest.len());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    while lines.first().is_some_and(|l| l.is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut in_fence = false;
    lines
        .iter()
        .map(|l| {
            let l = if l.starts_with("```") {
                in_fence = !in_fence;
                if in_fence {
                    "```text"
                } else {
                    "```"
                }
            } else {
                l
            };
            format!("#[doc = {:?}]\n", format!(" {l}"))
        })
        .collect()
}

/// What follows the first `end` in `s` (nothing when there is none).
fn body_after<'a>(s: &'a str, end: &str) -> &'a str {
    s.get(2..)
        .and_then(|t| t.find(end).map(|i| &t[i + end.len()..]))
        .unwrap_or("")
}

/// Carries IDL doc comments to the generated items and fields.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DocPlugin;

impl pilota_build::Plugin for DocPlugin {
    fn on_item(&mut self, cx: &Context, def_id: DefId, item: std::sync::Arc<rir::Item>) {
        let comments = match &*item {
            rir::Item::Message(m) => &m.leading_comments,
            rir::Item::Enum(e) => &e.leading_comments,
            rir::Item::Service(s) => &s.leading_comments,
            rir::Item::NewType(t) => &t.leading_comments,
            rir::Item::Const(c) => &c.leading_comments,
            _ => return,
        };
        add_docs(cx, def_id, comments);
        pilota_build::plugin::walk_item(self, cx, def_id, item);
    }

    fn on_field(&mut self, cx: &Context, def_id: DefId, f: std::sync::Arc<rir::Field>) {
        add_docs(cx, def_id, &f.leading_comments);
    }

    fn on_variant(&mut self, cx: &Context, def_id: DefId, v: std::sync::Arc<rir::EnumVariant>) {
        add_docs(cx, def_id, &v.leading_comments);
    }
}

fn add_docs(cx: &Context, def_id: DefId, comments: &str) {
    let docs = doc_attrs(comments);
    if !docs.is_empty() {
        cx.with_adjust_mut(def_id, |adj| adj.add_attrs(&[docs.into()]));
    }
}

impl CodegenBackend for WeftBackend {
    const PROTOCOL: &'static str = "thrift";

    fn cx(&self) -> &Context {
        self.inner.cx()
    }

    fn codegen_struct_impl(&self, def_id: DefId, stream: &mut String, s: &rir::Message) {
        let start = stream.len();
        self.inner.codegen_struct_impl(def_id, stream, s);
        make_safe(stream, start);
    }

    fn codegen_enum_impl(&self, def_id: DefId, stream: &mut String, e: &rir::Enum) {
        if e.repr.is_some() {
            finish_int_enum(self.cx(), def_id, stream, e);
        }
        let start = stream.len();
        self.inner.codegen_enum_impl(def_id, stream, e);
        make_safe(stream, start);
    }

    fn codegen_newtype_impl(&self, def_id: DefId, stream: &mut String, t: &rir::NewType) {
        let start = stream.len();
        self.inner.codegen_newtype_impl(def_id, stream, t);
        make_safe(stream, start);
    }

    fn codegen_file_descriptor(&self, stream: &mut String, f: &rir::File, has_direct: bool) {
        self.inner.codegen_file_descriptor(stream, f, has_direct)
    }

    fn codegen_register_mod_file_descriptor(
        &self,
        stream: &mut String,
        mods: &[(pilota_build::ModPath, std::sync::Arc<std::path::PathBuf>)],
    ) {
        self.inner
            .codegen_register_mod_file_descriptor(stream, mods)
    }

    fn codegen_pilota_trait(&self, stream: &mut String) {
        self.inner.codegen_pilota_trait(stream)
    }

    fn codegen_service_impl(&self, def_id: DefId, stream: &mut String, s: &rir::Service) {
        let info = self.service_info(def_id, s);
        stream.push_str(&service::render(&info));
    }

    fn codegen_service_method(&self, service_def_id: DefId, method: &Method) -> String {
        let m = self.method_info(service_def_id, method, None);
        service::trait_method(&m)
    }

    fn codegen_service_method_with_global_path(
        &self,
        service_def_id: DefId,
        method: &Method,
    ) -> String {
        let m = self.method_info(service_def_id, method, Some(&self.global_prefix));
        crate::init::stubs(&m)
    }
}

#[cfg(test)]
mod tests {
    use super::doc_attrs;

    #[test]
    fn doc_comments_become_doc_attributes() {
        assert_eq!(
            doc_attrs("/**\n * The user.\n *\n * ```\n * code /* x */\n"),
            "#[doc = \" The user.\"]\n#[doc = \" \"]\n#[doc = \" ```text\"]\n#[doc = \" code /* x\"]\n"
        );
        assert_eq!(
            doc_attrs("/// one\n/// two"),
            "#[doc = \" one\"]\n#[doc = \" two\"]\n"
        );
        // Plain comments and Doxygen's trailing `/**<` are no docs.
        assert_eq!(doc_attrs("// plain\n# hash\n/* block */"), "");
        assert_eq!(doc_attrs("/**< the field before */"), "");
    }
}
