//! The pilota-build backend for `.proto` files: message types come from
//! pilota's `ProtobufBackend`, to which this adds a `Validate` impl per
//! message and enum (UTF-8 in `string` fields, recursively), and gRPC
//! service code from [`crate::grpc`].

use pilota_build::{
    codegen::pb::ProtobufBackend,
    db::RirDatabase,
    middle::ext::{FileExts, ItemExts, ModExts},
    rir::{self, Method},
    tags::protobuf::{ClientStreaming, OneOf, ServerStreaming},
    ty::{Ty, TyKind},
    CodegenBackend, Context, DefId, IdentName, MakeBackend, ModPath, Symbol,
};
use protobuf::Message as _;

use crate::grpc::{self, GrpcMethod, GrpcService, Kind};
use crate::presence::{self, Scope};

/// Makes a [`WeftPbBackend`].
#[derive(Debug, Clone, Default)]
pub(crate) struct MkWeftPbBackend {
    /// The path generated types are reachable under from `weft init`'s stubs.
    pub(crate) global_prefix: String,
}

impl MakeBackend for MkWeftPbBackend {
    type Target = WeftPbBackend;

    fn make_backend(self, context: Context) -> WeftPbBackend {
        WeftPbBackend {
            inner: ProtobufBackend::new(context),
            global_prefix: self.global_prefix,
        }
    }
}

/// Forwards every type hook to pilota's `ProtobufBackend`, adds
/// validation, and writes Weft's gRPC service code.
#[derive(Clone)]
pub(crate) struct WeftPbBackend {
    inner: ProtobufBackend,
    global_prefix: String,
}

const VALIDATE: &str = "::weft::protobuf::Validate";
const STATUS: &str = "::weft::core::Status";

impl WeftPbBackend {
    /// Statements validating `expr` (a reference to a value of type `ty`)
    /// as field `label`, or `None` when the type needs no check.
    fn check(&self, ty: &Ty, expr: &str, label: &str, depth: usize) -> Option<String> {
        match &ty.kind {
            TyKind::FastStr => Some(format!(
                "::weft::protobuf::validate::utf8({expr}, \"{label}\")?;"
            )),
            TyKind::Vec(t) | TyKind::Set(t) | TyKind::BTreeSet(t) => {
                let v = format!("__v{depth}");
                self.check(t, &v, label, depth + 1)
                    .map(|c| format!("for {v} in {expr} {{ {c} }}"))
            }
            TyKind::Map(k, v) | TyKind::BTreeMap(k, v) => {
                let (kn, vn) = (format!("__k{depth}"), format!("__v{depth}"));
                let ck = self.check(k, &kn, label, depth + 1);
                let cv = self.check(v, &vn, label, depth + 1);
                if ck.is_none() && cv.is_none() {
                    return None;
                }
                Some(format!(
                    "for ({kn}, {vn}) in {expr} {{ {} {} }}",
                    ck.unwrap_or_default(),
                    cv.unwrap_or_default()
                ))
            }
            TyKind::Arc(t) => self.check(t, &format!("&**{expr}"), label, depth),
            TyKind::Path(p) => {
                let item = self.cx().expect_item(p.did);
                match &*item {
                    rir::Item::Message(_) => Some(format!("{VALIDATE}::validate({expr})?;")),
                    rir::Item::Enum(_) if self.cx().node_contains_tag::<OneOf>(p.did) => {
                        Some(format!("{VALIDATE}::validate({expr})?;"))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn validate_impl(name: &str, body: &str) -> String {
        format!(
            r#"
impl {VALIDATE} for {name} {{
    #[allow(unused_variables)]
    fn validate(&self) -> ::std::result::Result<(), {STATUS}> {{
        {body}
        ::std::result::Result::Ok(())
    }}
}}
"#
        )
    }

    /// The service's full name, `package.Service`.
    fn full_name(&self, def_id: DefId, s: &rir::Service) -> String {
        let cx = self.cx();
        let package = cx
            .node(def_id)
            .and_then(|n| cx.files().get(&n.file_id).cloned())
            .and_then(|f| {
                protobuf::descriptor::FileDescriptorProto::parse_from_bytes(f.descriptor.as_ref())
                    .ok()
            })
            .map(|d| d.package().to_string())
            .unwrap_or_default();
        if package.is_empty() {
            s.name.raw_str().to_string()
        } else {
            format!("{package}.{}", s.name.raw_str())
        }
    }

    fn msg_ty(&self, ty: &Ty, global: Option<&str>) -> String {
        let ty = match &ty.kind {
            TyKind::Arc(inner) => inner,
            _ => ty,
        };
        let t = self.cx().codegen_item_ty(ty.kind.clone());
        match global {
            Some(prefix) => t.global_path(prefix).to_string(),
            None => t.to_string(),
        }
    }

    fn method(&self, m: &Method, global: Option<&str>) -> GrpcMethod {
        let cx = self.cx();
        let client = cx.node_contains_tag::<ClientStreaming>(m.def_id);
        let server = cx.node_contains_tag::<ServerStreaming>(m.def_id);
        let kind = match (client, server) {
            (false, false) => Kind::Unary,
            (true, false) => Kind::ClientStreaming,
            (false, true) => Kind::ServerStreaming,
            (true, true) => Kind::BidiStreaming,
        };
        GrpcMethod {
            name: m.name.raw_str().to_string(),
            fn_name: cx.rust_name(m.def_id).to_string(),
            variant: m.name.raw_str().upper_camel_ident().to_string(),
            kind,
            req: m
                .args
                .first()
                .map(|a| self.msg_ty(&a.ty, global))
                .unwrap_or_else(|| "()".into()),
            resp: self.msg_ty(&m.ret, global),
        }
    }

    fn service(&self, def_id: DefId, s: &rir::Service, global: Option<&str>) -> GrpcService {
        let cx = self.cx();
        let methods = cx.service_methods(def_id);
        GrpcService::new(
            self.full_name(def_id, s),
            cx.rust_name(def_id).to_string(),
            methods.iter().map(|m| self.method(m, global)).collect(),
            &crate::service::module_names(cx, def_id),
        )
    }
}

impl CodegenBackend for WeftPbBackend {
    const PROTOCOL: &'static str = "protobuf";

    fn cx(&self) -> &Context {
        self.inner.cx()
    }

    fn codegen_struct_impl(&self, def_id: DefId, stream: &mut String, s: &rir::Message) {
        let mut own = String::new();
        self.inner.codegen_struct_impl(def_id, &mut own, s);
        stream.push_str(&presence::rewrite_maps(&presence::rewrite(
            &own,
            Scope::Optional,
        )));
        let name = self.cx().rust_name(def_id).to_string();
        let idl = s.name.raw_str();
        let mut body = String::new();
        for f in &s.fields {
            let field = self.cx().rust_name(f.did);
            let label = format!("{idl}.{}", f.name.raw_str());
            if f.is_optional() {
                if let Some(c) = self.check(&f.ty, "__o", &label, 0) {
                    body.push_str(&format!(
                        "if let ::std::option::Option::Some(__o) = &self.{field} {{ {c} }}\n"
                    ));
                }
            } else if let Some(c) = self.check(&f.ty, &format!("&self.{field}"), &label, 0) {
                body.push_str(&c);
                body.push('\n');
            }
        }
        stream.push_str(&Self::validate_impl(&name, &body));
    }

    fn codegen_enum_impl(&self, def_id: DefId, stream: &mut String, e: &rir::Enum) {
        let name = self.cx().rust_name(def_id).to_string();
        if !self.cx().node_contains_tag::<OneOf>(def_id) {
            if e.repr.is_some() {
                crate::backend::finish_int_enum(self.cx(), def_id, stream, e);
            }
            self.inner.codegen_enum_impl(def_id, stream, e);
            stream.push_str(&Self::validate_impl(&name, ""));
            return;
        }
        let mut own = String::new();
        self.inner.codegen_enum_impl(def_id, &mut own, e);
        stream.push_str(&presence::rewrite(&own, Scope::All));
        // A oneof: its members are fields of the enclosing message.
        let parent = match &e.item_exts {
            ItemExts::Pb(pb) => {
                pb.parent
                    .as_ref()
                    .and_then(|p| match &*self.cx().expect_item(p.did) {
                        rir::Item::Message(m) => Some(m.name.raw_str().to_string()),
                        _ => None,
                    })
            }
            _ => None,
        }
        .unwrap_or_else(|| e.name.raw_str().to_string());
        let mut arms = String::new();
        for v in &e.variants {
            let variant = self.cx().rust_name(v.did);
            let label = format!("{parent}.{}", v.name.raw_str());
            let check = v
                .fields
                .first()
                .and_then(|t| self.check(t, "__m", &label, 0))
                .unwrap_or_default();
            arms.push_str(&format!("Self::{variant}(__m) => {{ {check} }}\n"));
        }
        let body = if arms.is_empty() {
            String::new()
        } else {
            format!("match self {{ {arms} }}")
        };
        stream.push_str(&Self::validate_impl(&name, &body));
    }

    fn codegen_newtype_impl(&self, def_id: DefId, stream: &mut String, t: &rir::NewType) {
        self.inner.codegen_newtype_impl(def_id, stream, t)
    }

    fn codegen_file_descriptor(&self, stream: &mut String, f: &rir::File, has_direct: bool) {
        self.inner.codegen_file_descriptor(stream, f, has_direct)
    }

    fn codegen_register_mod_file_descriptor(
        &self,
        stream: &mut String,
        mods: &[(ModPath, std::sync::Arc<std::path::PathBuf>)],
    ) {
        self.inner
            .codegen_register_mod_file_descriptor(stream, mods)
    }

    fn codegen_pilota_trait(&self, stream: &mut String) {
        self.inner.codegen_pilota_trait(stream)
    }

    fn codegen_file_descriptor_at_mod(
        &self,
        stream: &mut String,
        f: &rir::File,
        mod_path: &ModPath,
        has_direct: bool,
    ) {
        self.inner
            .codegen_file_descriptor_at_mod(stream, f, mod_path, has_direct)
    }

    fn codegen_file_exts(
        &self,
        stream: &mut String,
        suffix: &str,
        cur_pkg: &[Symbol],
        extensions: &FileExts,
    ) {
        self.inner
            .codegen_file_exts(stream, suffix, cur_pkg, extensions)
    }

    fn codegen_mod_exts(
        &self,
        stream: &mut String,
        suffix: &str,
        cur_pkg: &[Symbol],
        extensions: &ModExts,
    ) {
        self.inner
            .codegen_mod_exts(stream, suffix, cur_pkg, extensions)
    }

    fn codegen_impl_enum_message(&self, name: &str) -> String {
        self.inner.codegen_impl_enum_message(name)
    }

    fn codegen_service_impl(&self, def_id: DefId, stream: &mut String, s: &rir::Service) {
        let info = self.service(def_id, s, None);
        stream.push_str(&grpc::render(&info));
    }

    fn codegen_service_method(&self, service_def_id: DefId, method: &Method) -> String {
        let s = match &*self.cx().expect_item(service_def_id) {
            rir::Item::Service(s) => self.service(service_def_id, s, None),
            _ => return String::new(),
        };
        let first = s
            .methods
            .first()
            .is_some_and(|m| m.name == method.name.raw_str());
        let m = s
            .methods
            .iter()
            .find(|m| m.name == method.name.raw_str())
            .cloned()
            .unwrap_or_else(|| self.method(method, None));
        let mut out = String::new();
        if first {
            out.push_str(&grpc::trait_marker(&s));
        }
        out.push_str(&grpc::trait_method(&s, &m));
        out
    }

    fn codegen_service_method_with_global_path(
        &self,
        service_def_id: DefId,
        method: &Method,
    ) -> String {
        let m = self.method(method, Some(&self.global_prefix));
        let s = match &*self.cx().expect_item(service_def_id) {
            rir::Item::Service(s) => self.service(service_def_id, s, Some(&self.global_prefix)),
            _ => return String::new(),
        };
        let m = s
            .methods
            .iter()
            .find(|x| x.name == m.name)
            .cloned()
            .unwrap_or(m);
        crate::init::grpc_stubs(&s, &m)
    }
}
