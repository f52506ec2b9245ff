//! The Rust a Thrift service becomes: entry messages (one enum of
//! arguments, one of results), an error enum per method with declared
//! exceptions, the handler trait's methods, a server that routes by method
//! name and a typed client.
//!
//! Everything is emitted as source text that pilota-build places in the
//! service's module and formats; paths to the runtime are absolute
//! (`::weft::...`) so the code compiles wherever it is included.

use std::fmt::Write as _;

/// The names of the items generated for a service named `name`:
/// `{name}Request`, `{name}Response`, `{name}Server`, `{name}Client` and
/// `{name}WithContext`. Where the IDL already declares an item of that
/// name in the same module (a message `EchoRequest` beside a service
/// `Echo` is common), the generated one becomes `{name}Service…`, then
/// gains `_`s until it is free, so the module compiles.
#[derive(Debug, Clone)]
pub(crate) struct ItemNames {
    /// The request entry enum.
    pub(crate) req: String,
    /// The response entry enum.
    pub(crate) resp: String,
    /// The server.
    pub(crate) server: String,
    /// The client.
    pub(crate) client: String,
    /// The client's view with a context (Thrift only).
    pub(crate) view: String,
}

impl ItemNames {
    /// `taken`: the Rust names of the IDL's items in the service's module.
    pub(crate) fn new(name: &str, taken: &std::collections::HashSet<String>) -> ItemNames {
        let mut used: Vec<String> = Vec::new();
        let mut pick = |suffix: &str| {
            let mut n = format!("{name}{suffix}");
            if taken.contains(&n) || used.contains(&n) {
                n = format!("{name}Service{suffix}");
            }
            while taken.contains(&n) || used.contains(&n) {
                n.push('_');
            }
            used.push(n.clone());
            n
        };
        ItemNames {
            req: pick("Request"),
            resp: pick("Response"),
            server: pick("Server"),
            client: pick("Client"),
            view: pick("WithContext"),
        }
    }
}

/// The Rust names of the items the IDL declares in the module of item
/// `def_id`, other than `def_id` itself: every file of the same package
/// shares one module.
pub(crate) fn module_names(
    cx: &pilota_build::Context,
    def_id: pilota_build::DefId,
) -> std::collections::HashSet<String> {
    use pilota_build::db::RirDatabase as _;
    let Some(file) = cx.node(def_id).and_then(|n| cx.file(n.file_id)) else {
        return Default::default();
    };
    cx.files()
        .values()
        .filter(|f| f.package == file.package)
        .flat_map(|f| f.items.iter().copied())
        .filter(|&d| d != def_id)
        .map(|d| cx.rust_name(d).to_string())
        .collect()
}

/// A service as the templates see it.
#[derive(Debug, Clone)]
pub(crate) struct ServiceInfo {
    /// The name in the IDL (`ThriftTest`), as it travels on the wire.
    pub(crate) idl_name: String,
    /// The Rust name of the handler trait (`ThriftTest`).
    pub(crate) name: String,
    /// The generated items' names.
    pub(crate) names: ItemNames,
    /// Every method, inherited ones included.
    pub(crate) methods: Vec<MethodInfo>,
}

/// A method as the templates see it.
#[derive(Debug, Clone)]
pub(crate) struct MethodInfo {
    /// The name on the wire (`testVoid`).
    pub(crate) idl_name: String,
    /// The Rust function name (`test_void`, keywords escaped).
    pub(crate) fn_name: String,
    /// The enum variant name (`TestVoid`).
    pub(crate) variant: String,
    /// Argument names and types.
    pub(crate) args: Vec<(String, String)>,
    /// The return type (`()` for `void`).
    pub(crate) ret: String,
    /// A `oneway` method.
    pub(crate) oneway: bool,
    /// Declared by this service rather than inherited through `extends`.
    pub(crate) own: bool,
    /// Path of pilota's arguments struct.
    pub(crate) args_ty: String,
    /// Path of pilota's result enum.
    pub(crate) result_ty: String,
    /// The declared exceptions, if any.
    pub(crate) error: Option<ErrorInfo>,
}

/// A method's error enum.
#[derive(Debug, Clone)]
pub(crate) struct ErrorInfo {
    /// Path of the enum.
    pub(crate) path: String,
    /// Declared exceptions: variant name and type.
    pub(crate) variants: Vec<(String, String)>,
    /// The variant holding any other failure: `Status` unless an exception
    /// is called that.
    pub(crate) status_variant: String,
}

impl ErrorInfo {
    pub(crate) fn new(path: String, variants: Vec<(String, String)>) -> ErrorInfo {
        let mut status_variant = "Status".to_string();
        while variants.iter().any(|(v, _)| *v == status_variant) {
            status_variant.push('_');
        }
        ErrorInfo {
            path,
            variants,
            status_variant,
        }
    }

    /// The last path segment: the enum's name.
    fn name(&self) -> &str {
        self.path.rsplit("::").next().unwrap_or(&self.path)
    }
}

/// Rust's keywords (strict, reserved and edition-2018+), which an IDL
/// name may be.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// `name` as a Rust identifier: a keyword becomes a raw identifier, or
/// gets a trailing `_` where Rust allows no raw form (`self`, `Self`,
/// `crate`, `super`). The wire name is kept elsewhere, unchanged.
pub(crate) fn rust_ident(name: &str) -> String {
    if name.starts_with("r#") || !KEYWORDS.contains(&name) {
        name.to_string()
    } else if matches!(name, "self" | "Self" | "crate" | "super") {
        format!("{name}_")
    } else {
        format!("r#{name}")
    }
}

const STATUS: &str = "::weft::core::Status";
const CONTEXT: &str = "::weft::core::Context";
const RESULT: &str = "::std::result::Result";

/// Client helpers a method must not be named after; such a method's client
/// function gets a trailing `_`.
const CLIENT_RESERVED: &[&str] = &[
    "new",
    "builder",
    "with_codec",
    "from_service",
    "inner",
    "into_inner",
    "call",
    "with_context",
];

impl MethodInfo {
    /// The error type of the method's handler and client functions.
    pub(crate) fn error_ty(&self) -> String {
        match &self.error {
            Some(e) => e.path.clone(),
            None => STATUS.to_string(),
        }
    }

    /// A name for the context parameter that no argument uses.
    pub(crate) fn cx_name(&self) -> String {
        let mut name = "cx".to_string();
        while self
            .args
            .iter()
            .any(|(a, _)| a.trim_start_matches("r#") == name)
        {
            name.push('_');
        }
        name
    }

    /// `a: A, b: B` (with a leading comma when not empty).
    pub(crate) fn params(&self) -> String {
        self.args.iter().fold(String::new(), |mut s, (name, ty)| {
            let _ = write!(s, ", {name}: {ty}");
            s
        })
    }

    fn arg_names(&self) -> String {
        self.args
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn client_fn_name(&self) -> String {
        if CLIENT_RESERVED.contains(&self.fn_name.as_str()) {
            format!("{}_", self.fn_name)
        } else {
            self.fn_name.clone()
        }
    }

    fn signature_doc(&self) -> String {
        let args = self
            .args
            .iter()
            .map(|(n, _)| n.trim_start_matches("r#"))
            .collect::<Vec<_>>()
            .join(", ");
        let throws = match &self.error {
            Some(e) => format!(
                " throws ({})",
                e.variants
                    .iter()
                    .map(|(v, _)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        let oneway = if self.oneway { "oneway " } else { "" };
        format!("`{oneway}{}({args}){throws}`", self.idl_name)
    }
}

/// One method of the handler trait.
pub(crate) fn trait_method(m: &MethodInfo) -> String {
    let cx = m.cx_name();
    let note = if m.oneway {
        "\n/// One-way: the caller gets no answer, whatever this returns."
    } else {
        ""
    };
    format!(
        "/// Handles {sig}.{note}\n\
         fn {name}(&self, {cx}: &mut {CONTEXT}{params}) -> impl ::std::future::Future<Output = {RESULT}<{ret}, {err}>> + ::std::marker::Send;\n",
        sig = m.signature_doc(),
        name = m.fn_name,
        params = m.params(),
        ret = m.ret,
        err = m.error_ty(),
    )
}

/// The service's entry messages, error enums, server and client.
pub(crate) fn render(s: &ServiceInfo) -> String {
    let mut out = String::new();
    out.push_str(&entry_messages(s));
    for m in s.methods.iter().filter(|m| m.own) {
        if let Some(e) = &m.error {
            out.push_str(&error_enum(s, m, e));
        }
    }
    out.push_str(&server(s));
    out.push_str(&client(s));
    out
}

fn entry_messages(s: &ServiceInfo) -> String {
    let idl = &s.idl_name;
    let req = &s.names.req;
    let resp = &s.names.resp;
    let mut req_variants = String::new();
    let mut resp_variants = String::new();
    let mut encode = String::new();
    let mut size = String::new();
    let mut req_decode = String::new();
    let mut resp_decode = String::new();
    let mut method_names = String::new();
    let mut oneway = String::new();
    let mut oneway_result = String::new();
    let mut names = Vec::new();
    for m in &s.methods {
        let v = &m.variant;
        let _ = writeln!(
            req_variants,
            "/// The arguments of `{}`.\n{v}({}),",
            m.idl_name, m.args_ty
        );
        let _ = writeln!(
            resp_variants,
            "/// The result of `{}`.\n{v}({}),",
            m.idl_name, m.result_ty
        );
        let _ = writeln!(
            encode,
            "Self::{v}(m) => ::pilota::thrift::Message::encode(m, __p),"
        );
        let _ = writeln!(
            size,
            "Self::{v}(m) => ::pilota::thrift::Message::size(m, __p),"
        );
        let _ = writeln!(
            req_decode,
            "\"{}\" => {RESULT}::Ok(Self::{v}(<{} as ::pilota::thrift::Message>::decode(__p)?)),",
            m.idl_name, m.args_ty
        );
        let _ = writeln!(
            resp_decode,
            "\"{}\" => {RESULT}::Ok(Self::{v}(<{} as ::pilota::thrift::Message>::decode(__p)?)),",
            m.idl_name, m.result_ty
        );
        let _ = writeln!(method_names, "Self::{v}(_) => \"{}\",", m.idl_name);
        let _ = writeln!(oneway, "Self::{v}(_) => {},", m.oneway);
        if m.oneway {
            let _ = writeln!(
                oneway_result,
                "\"{}\" => ::std::option::Option::Some(Self::{v}(::std::default::Default::default())),",
                m.idl_name
            );
        }
        names.push(format!("\"{}\"", m.idl_name));
    }
    let (encode, size, method_names, oneway) = if s.methods.is_empty() {
        let empty = "_ => match *self {},".to_string();
        (empty.clone(), empty.clone(), empty.clone(), empty)
    } else {
        (encode, size, method_names, oneway)
    };
    let accepts = if names.is_empty() {
        "false".to_string()
    } else {
        format!(
            "(__service.is_empty() || __service == \"{idl}\") && matches!(__method, {})",
            names.join(" | ")
        )
    };
    let unknown = format!(
        "__other => {RESULT}::Err(::pilota::thrift::new_application_exception(\
            ::pilota::thrift::ApplicationExceptionKind::UNKNOWN_METHOD, \
            ::std::format!(\"{idl} has no method {{__other}}\"))),"
    );
    let entry = |ty: &str, decode: &str, service_check: &str, oneway_fn: &str| {
        format!(
            r#"
impl ::weft::thrift::EntryMessage for {ty} {{
    fn encode<P: ::pilota::thrift::TOutputProtocol>(&self, __p: &mut P) -> {RESULT}<(), ::pilota::thrift::ThriftException> {{
        match self {{
            {encode}
        }}
    }}

    fn decode<P: ::pilota::thrift::TInputProtocol<Buf = ::pilota::Bytes>>(
        __p: &mut P,
        __service: &str,
        __method: &str,
    ) -> {RESULT}<Self, ::pilota::thrift::ThriftException> {{
        {service_check}
        match __method {{
            {decode}
            {unknown}
        }}
    }}

    fn size<P: ::pilota::thrift::TLengthProtocol>(&self, __p: &mut P) -> usize {{
        match self {{
            {size}
        }}
    }}
    {oneway_fn}
    fn accepts(__service: &str, __method: &str) -> bool {{
        {accepts}
    }}
}}
"#
        )
    };
    let service_check = format!(
        "if !__service.is_empty() && __service != \"{idl}\" {{\n\
            return {RESULT}::Err(::pilota::thrift::new_application_exception(\
                ::pilota::thrift::ApplicationExceptionKind::UNKNOWN_METHOD, \
                ::std::format!(\"no service {{__service}} here (this is {idl})\")));\n\
        }}"
    );
    let oneway_fn = format!(
        r#"
    fn oneway_result(_service: &str, __method: &str) -> ::std::option::Option<Self> {{
        match __method {{
            {oneway_result}
            _ => ::std::option::Option::None,
        }}
    }}
"#
    );
    let req_impl = entry(req, &req_decode, &service_check, "");
    let resp_impl = entry(resp, &resp_decode, "", &oneway_fn);
    format!(
        r#"
/// The arguments of a call to `{idl}`: one variant per method.
#[derive(Debug, Clone)]
pub enum {req} {{
    {req_variants}
}}

impl {req} {{
    /// The method's name on the wire.
    pub fn method(&self) -> &'static str {{
        match self {{
            {method_names}
        }}
    }}

    /// Whether the method is `oneway`.
    pub fn is_oneway(&self) -> bool {{
        match self {{
            {oneway}
        }}
    }}
}}

/// The result of a call to `{idl}`: one variant per method.
#[derive(Debug, Clone)]
pub enum {resp} {{
    {resp_variants}
}}
{req_impl}
{resp_impl}
"#
    )
}

fn error_enum(s: &ServiceInfo, m: &MethodInfo, e: &ErrorInfo) -> String {
    let name = e.name();
    let sv = &e.status_variant;
    let what = format!("{}.{}", s.idl_name, m.idl_name);
    let mut variants = String::new();
    let mut display = String::new();
    let mut from = String::new();
    for (v, ty) in &e.variants {
        let _ = writeln!(variants, "/// The declared exception `{v}`.\n{v}({ty}),");
        let _ = writeln!(
            display,
            "Self::{v}(e) => ::std::write!(f, \"{what} threw {v}: {{e:?}}\"),"
        );
        if e.variants.iter().filter(|(_, t)| t == ty).count() == 1 {
            let _ = writeln!(
                from,
                "impl ::std::convert::From<{ty}> for {name} {{\n\
                    fn from(e: {ty}) -> Self {{ Self::{v}(e) }}\n\
                }}"
            );
        }
    }
    format!(
        r#"
/// How `{what}` fails: one of its declared exceptions, or any other failure
/// as a [`Status`](::weft::core::Status), which travels as a
/// `TApplicationException`.
#[derive(Debug, Clone)]
pub enum {name} {{
    {variants}
    /// A failure the IDL does not declare.
    {sv}({STATUS}),
}}

impl ::std::convert::From<{STATUS}> for {name} {{
    fn from(s: {STATUS}) -> Self {{
        Self::{sv}(s)
    }}
}}

{from}

impl ::std::fmt::Display for {name} {{
    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{
        match self {{
            {display}
            Self::{sv}(s) => ::std::fmt::Display::fmt(s, f),
        }}
    }}
}}

impl ::std::error::Error for {name} {{
    fn source(&self) -> ::std::option::Option<&(dyn ::std::error::Error + 'static)> {{
        match self {{
            Self::{sv}(s) => ::std::option::Option::Some(s),
            #[allow(unreachable_patterns)]
            _ => ::std::option::Option::None,
        }}
    }}
}}
"#
    )
}

fn server(s: &ServiceInfo) -> String {
    let name = &s.name;
    let idl = &s.idl_name;
    let server = &s.names.server;
    let req = &s.names.req;
    let resp = &s.names.resp;
    let mut arms = String::new();
    for m in &s.methods {
        let v = &m.variant;
        let args = m
            .args
            .iter()
            .map(|(n, _)| format!(", __args.{n}"))
            .collect::<String>();
        let call = format!("__handler.{}(&mut __cx{args}).await", m.fn_name);
        let result = &m.result_ty;
        let body = match &m.error {
            None => format!("{result}::Ok({call}?)"),
            Some(e) => {
                let mut arms = format!("{RESULT}::Ok(v) => {result}::Ok(v),\n");
                for (ev, _) in &e.variants {
                    let _ = writeln!(
                        arms,
                        "{RESULT}::Err({}::{ev}(e)) => {result}::{ev}(e),",
                        e.path
                    );
                }
                let _ = writeln!(
                    arms,
                    "{RESULT}::Err({}::{}(s)) => return {RESULT}::Err(s),",
                    e.path, e.status_variant
                );
                format!("match {call} {{\n{arms}}}")
            }
        };
        let _ = writeln!(arms, "{req}::{v}(__args) => {resp}::{v}({body}),");
    }
    if s.methods.is_empty() {
        arms.push_str("_ => match __message {},");
    }
    format!(
        r#"
/// Serves `{idl}` with a [`{name}`] handler: a `tower::Service` that routes
/// each call by method name. An unknown method is answered with
/// `TApplicationException` `UNKNOWN_METHOD`; a handler's undeclared
/// [`Status`](::weft::core::Status) with the exception kind its code maps to
/// (`INTERNAL_ERROR` for [`Status::internal`](::weft::core::Status::internal)).
pub struct {server}<H> {{
    handler: ::std::sync::Arc<H>,
}}

impl<H> ::std::clone::Clone for {server}<H> {{
    fn clone(&self) -> Self {{
        Self {{ handler: ::std::sync::Arc::clone(&self.handler) }}
    }}
}}

impl<H> ::std::fmt::Debug for {server}<H> {{
    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{
        f.debug_struct("{server}").finish_non_exhaustive()
    }}
}}

impl<H> {server}<H> {{
    /// The service's name in the IDL.
    pub const SERVICE_NAME: &'static str = "{idl}";

    /// A server calling `handler`.
    pub fn new(handler: H) -> Self {{
        Self {{ handler: ::std::sync::Arc::new(handler) }}
    }}

    /// A server calling a shared handler.
    pub fn from_arc(handler: ::std::sync::Arc<H>) -> Self {{
        Self {{ handler }}
    }}

    /// The handler.
    pub fn handler(&self) -> &::std::sync::Arc<H> {{
        &self.handler
    }}

    /// A Thrift server codec for one connection: every transport and
    /// protocol, detected from the first bytes.
    pub fn codec(limits: &::weft::core::Limits) -> ::weft::thrift::ThriftServerCodec<{req}, {resp}> {{
        ::weft::thrift::ThriftServerCodec::new(limits)
    }}
}}

impl<H: {name} + ::std::marker::Send + ::std::marker::Sync + 'static> {server}<H> {{
    /// Bind `addr` and serve this service alone on it.
    pub async fn serve(
        self,
        builder: ::weft::core::ServerBuilder,
        addr: &::weft::core::Address,
    ) -> ::std::io::Result<::weft::core::ServerHandle> {{
        let limits = builder.limits_ref().clone();
        builder.serve(addr, move || Self::codec(&limits), self).await
    }}
}}

impl<H: {name} + ::std::marker::Send + ::std::marker::Sync + 'static>
    ::weft::core::tower::Service<::weft::core::Request<{req}>> for {server}<H>
{{
    type Response = ::weft::core::Response<{resp}>;
    type Error = {STATUS};
    type Future = ::std::pin::Pin<::std::boxed::Box<
        dyn ::std::future::Future<Output = {RESULT}<Self::Response, {STATUS}>> + ::std::marker::Send,
    >>;

    fn poll_ready(&mut self, _: &mut ::std::task::Context<'_>) -> ::std::task::Poll<{RESULT}<(), {STATUS}>> {{
        ::std::task::Poll::Ready({RESULT}::Ok(()))
    }}

    fn call(&mut self, req: ::weft::core::Request<{req}>) -> Self::Future {{
        let __handler = ::std::sync::Arc::clone(&self.handler);
        ::std::boxed::Box::pin(async move {{
            let ::weft::core::Request {{ cx: mut __cx, message: __message }} = req;
            let __message = match __message {{
                {arms}
            }};
            {RESULT}::Ok(::weft::core::Response::new(__cx, __message))
        }})
    }}
}}
"#
    )
}

fn client(s: &ServiceInfo) -> String {
    let idl = &s.idl_name;
    let client = &s.names.client;
    let req = &s.names.req;
    let resp = &s.names.resp;
    let view = &s.names.view;
    let mut methods = String::new();
    let mut with_methods = String::new();
    for m in &s.methods {
        let v = &m.variant;
        let result = &m.result_ty;
        let mut arms = format!("{resp}::{v}({result}::Ok(v)) => {RESULT}::Ok((v, __resp.cx)),\n");
        if let Some(e) = &m.error {
            for (ev, _) in &e.variants {
                let _ = writeln!(
                    arms,
                    "{resp}::{v}({result}::{ev}(e)) => {RESULT}::Err({}::{ev}(e)),",
                    e.path
                );
            }
        }
        let note = if m.oneway {
            "\n    /// One-way: returns once the call is written, with no answer."
        } else {
            ""
        };
        let with_note = if m.oneway {
            "\n    /// One-way: returns once the call is written; the context\n    /// returned is the request's, as no answer comes back."
        } else {
            ""
        };
        let fn_name = m.client_fn_name();
        let _ = write!(
            methods,
            r#"
    /// Calls {sig} with a default context.{note}
    pub async fn {fn_name}(&self{params}) -> {RESULT}<{ret}, {err}> {{
        let __cx = {CONTEXT}::default();
        {view} {{ client: self, cx: &__cx }}.{fn_name}({arg_names}).await.map(|(v, _)| v)
    }}
"#,
            sig = m.signature_doc(),
            params = m.params(),
            ret = m.ret,
            err = m.error_ty(),
            arg_names = m.arg_names(),
        );
        let _ = write!(
            with_methods,
            r#"
    /// Calls {sig} with this view's context; returns the reply's context
    /// too (backward metainfo, the peer that answered).{with_note}
    pub async fn {fn_name}(&self{params}) -> {RESULT}<({ret}, {CONTEXT}), {err}> {{
        let __req = {req}::{v}({args_ty} {{ {arg_names} }});
        let __resp = self.client.call(self.cx.clone(), __req).await?;
        #[allow(unreachable_patterns)]
        match __resp.message {{
            {arms}
            _ => {RESULT}::Err({STATUS}::internal("{idl}.{idl_name}: the answer is another method's").into()),
        }}
    }}
"#,
            sig = m.signature_doc(),
            params = m.params(),
            ret = m.ret,
            err = m.error_ty(),
            args_ty = m.args_ty,
            arg_names = m.arg_names(),
            idl_name = m.idl_name,
        );
    }
    format!(
        r#"
/// A typed client of `{idl}`: one `async fn` per method over any
/// `tower::Service` that carries [`{req}`] to [`{resp}`], by default a
/// Weft client, so every client option and layer applies.
///
/// `client.method(args)` sends a default context and returns the answer;
/// `client.with_context(&cx).method(args)` sends `cx` and returns
/// `(answer, reply context)`, whose `metainfo.backward` holds what the
/// server set and whose `peer` is the instance that answered.
#[derive(Debug, Clone)]
pub struct {client}<T = ::weft::core::Client<::weft::thrift::ThriftClientCodec<{req}, {resp}>>> {{
    inner: T,
}}

impl {client} {{
    /// The common case: a client of `service` (the callee's name, which
    /// discovery looks up) with governance built in — a 5 s total
    /// timeout, retries of what is safe, balancing, breakers, TTHeader,
    /// a multiplexed connection per instance; every default is on
    /// [`ThriftClientBuilder`](::weft::client::ThriftClientBuilder). Give it
    /// `.address(..)`, `.addresses(..)` or `.discover(..)`, then `.build()`.
    pub fn builder(
        service: impl ::std::convert::Into<::weft::core::faststr::FastStr>,
    ) -> ::weft::client::ThriftClientBuilder<{req}, {resp}, {client}<::weft::client::ThriftStack<{req}, {resp}>>> {{
        ::weft::client::ThriftClientBuilder::new(service, {client}::<::weft::client::ThriftStack<{req}, {resp}>>::from_service)
    }}

    /// A client of the server `builder` names, speaking `transport` and
    /// `protocol` within the builder's limits.
    pub fn new(
        builder: ::weft::core::ClientBuilder,
        transport: ::weft::thrift::Transport,
        protocol: ::weft::thrift::Protocol,
    ) -> Self {{
        let codec = ::weft::thrift::ThriftClientCodec::new(transport, protocol, builder.limits_ref());
        Self {{ inner: builder.build(codec) }}
    }}

    /// A client from a builder and a configured codec (for example one
    /// that prefixes method names for `TMultiplexedProtocol`).
    pub fn with_codec(
        builder: ::weft::core::ClientBuilder,
        codec: ::weft::thrift::ThriftClientCodec<{req}, {resp}>,
    ) -> Self {{
        Self {{ inner: builder.build(codec) }}
    }}
}}

impl<T> {client}<T> {{
    /// The service's name in the IDL.
    pub const SERVICE_NAME: &'static str = "{idl}";

    /// A client over `inner`, such as a Weft client wrapped in layers.
    pub fn from_service(inner: T) -> Self {{
        Self {{ inner }}
    }}

    /// The service calls go through.
    pub fn inner(&self) -> &T {{
        &self.inner
    }}

    /// The service calls go through.
    pub fn into_inner(self) -> T {{
        self.inner
    }}
}}

impl<T> {client}<T>
where
    T: ::weft::core::tower::Service<
            ::weft::core::Request<{req}>,
            Response = ::weft::core::Response<{resp}>,
            Error = {STATUS},
        > + ::std::clone::Clone,
{{
    /// Sends `req` with `cx` and returns the whole response, context
    /// included (backward metainfo). Sets the context's method and one-way
    /// flag from `req`, and its service to `{idl}` when empty.
    pub async fn call(&self, mut cx: {CONTEXT}, req: {req}) -> {RESULT}<::weft::core::Response<{resp}>, {STATUS}> {{
        if cx.service.is_empty() {{
            cx.service = ::weft::core::faststr::FastStr::from_static_str("{idl}");
        }}
        cx.method = ::weft::core::faststr::FastStr::from_static_str(req.method());
        cx.oneway = req.is_oneway();
        ::weft::core::tower::ServiceExt::oneshot(self.inner.clone(), ::weft::core::Request::new(cx, req)).await
    }}

    /// A view of this client whose typed calls send `cx` (caller,
    /// deadline, metainfo) and return the reply's context with the
    /// answer: `client.with_context(&cx).method(args).await?` gives
    /// `(answer, reply_cx)`. A declared exception or a failure returns
    /// the error alone.
    pub fn with_context<'a>(&'a self, cx: &'a {CONTEXT}) -> {view}<'a, T> {{
        {view} {{ client: self, cx }}
    }}
    {methods}
}}

/// [`{client}`] with a context: each typed call sends a copy of the
/// context and returns `(answer, reply context)`; made by
/// [`{client}::with_context`].
#[derive(Debug)]
pub struct {view}<'a, T> {{
    client: &'a {client}<T>,
    cx: &'a {CONTEXT},
}}

impl<T> ::std::clone::Clone for {view}<'_, T> {{
    fn clone(&self) -> Self {{
        *self
    }}
}}

impl<T> ::std::marker::Copy for {view}<'_, T> {{}}

impl<T> {view}<'_, T>
where
    T: ::weft::core::tower::Service<
            ::weft::core::Request<{req}>,
            Response = ::weft::core::Response<{resp}>,
            Error = {STATUS},
        > + ::std::clone::Clone,
{{
    {with_methods}
}}
"#
    )
}
