//! The Rust a gRPC service becomes: a method descriptor per method, the
//! request and response enums the runtime drives (`ServiceRequest`,
//! `ServiceResponse`), the handler trait's methods, a server that routes to
//! the handler and a typed client. Source text that pilota-build places in
//! the service's module; runtime paths are absolute (`::weft::...`).

use std::{collections::HashSet, fmt::Write as _};

use crate::service::ItemNames;

const STATUS: &str = "::weft::core::Status";
const CONTEXT: &str = "::weft::core::Context";
const RESULT: &str = "::std::result::Result";
const PB: &str = "::weft::protobuf";

/// Marks the handler trait's body so [`finish_traits`] can give the trait
/// its documentation and bounds (pilota-build writes the `trait` line).
const MARK: &str = "/*weft:grpc-trait ";

/// The shape of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Unary,
    ClientStreaming,
    ServerStreaming,
    BidiStreaming,
}

impl Kind {
    fn variant(self) -> &'static str {
        match self {
            Kind::Unary => "Unary",
            Kind::ClientStreaming => "ClientStreaming",
            Kind::ServerStreaming => "ServerStreaming",
            Kind::BidiStreaming => "BidiStreaming",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ClientStreaming => "client streaming",
            Kind::ServerStreaming => "server streaming",
            Kind::BidiStreaming => "bidirectional streaming",
        }
    }

    pub(crate) fn streams_requests(self) -> bool {
        matches!(self, Kind::ClientStreaming | Kind::BidiStreaming)
    }

    pub(crate) fn streams_responses(self) -> bool {
        matches!(self, Kind::ServerStreaming | Kind::BidiStreaming)
    }
}

/// A method as the templates see it.
#[derive(Debug, Clone)]
pub(crate) struct GrpcMethod {
    /// The name in the `.proto` (`UnaryCall`), as on the wire.
    pub(crate) name: String,
    /// The Rust function name (`unary_call`, keywords escaped).
    pub(crate) fn_name: String,
    /// The enum variant (`UnaryCall`).
    pub(crate) variant: String,
    pub(crate) kind: Kind,
    /// The request message type.
    pub(crate) req: String,
    /// The response message type.
    pub(crate) resp: String,
}

/// A service as the templates see it.
#[derive(Debug, Clone)]
pub(crate) struct GrpcService {
    /// `package.Service`.
    pub(crate) full_name: String,
    /// The handler trait's Rust name.
    pub(crate) name: String,
    pub(crate) methods: Vec<GrpcMethod>,
    /// Per method, the name of its descriptor constant.
    consts: Vec<String>,
    /// The generated items' names.
    pub(crate) names: ItemNames,
}

/// Client helpers a method must not be named after.
const CLIENT_RESERVED: &[&str] = &["new", "inner", "into_inner"];

fn screaming(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.trim_start_matches("r#").chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c);
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    out
}

impl GrpcService {
    /// The service, with variant, function and constant names made unique
    /// (`Foo` and `foo` are different methods in a `.proto`), and its
    /// generated items named clear of `taken`, the names of the IDL's
    /// items in its module.
    pub(crate) fn new(
        full_name: String,
        name: String,
        mut methods: Vec<GrpcMethod>,
        taken: &HashSet<String>,
    ) -> Self {
        let mut variants = Vec::<String>::new();
        let mut fns = Vec::<String>::new();
        for m in &mut methods {
            // The one capitalised keyword an upper-camel name can be.
            if m.variant == "Self" {
                m.variant.push('_');
            }
            while variants.contains(&m.variant) {
                m.variant.push('_');
            }
            variants.push(m.variant.clone());
            while fns.contains(&m.fn_name) {
                m.fn_name.push('_');
            }
            fns.push(m.fn_name.clone());
        }
        let service = screaming(&name);
        let mut consts = Vec::<String>::new();
        for m in &methods {
            let mut c = format!("{service}_{}", screaming(&m.variant));
            while consts.contains(&c) {
                c.push('_');
            }
            consts.push(c);
        }
        GrpcService {
            names: ItemNames::new(&name, taken),
            full_name,
            name,
            methods,
            consts,
        }
    }

    fn path(&self, m: &GrpcMethod) -> String {
        format!("/{}/{}", self.full_name, m.name)
    }
}

impl GrpcMethod {
    fn req_param(&self) -> String {
        if self.kind.streams_requests() {
            format!("{PB}::Streaming<{}>", self.req)
        } else {
            self.req.clone()
        }
    }

    fn resp_value(&self) -> String {
        if self.kind.streams_responses() {
            format!("{PB}::ResponseStream<{}>", self.resp)
        } else {
            self.resp.clone()
        }
    }

    pub(crate) fn client_fn_name(&self) -> String {
        if CLIENT_RESERVED.contains(&self.fn_name.as_str()) {
            format!("{}_", self.fn_name)
        } else {
            self.fn_name.clone()
        }
    }
}

/// The comment [`finish_traits`] looks for in the trait's body.
pub(crate) fn trait_marker(s: &GrpcService) -> String {
    format!("{MARK}{}*/\n", s.full_name)
}

/// One method of the handler trait.
pub(crate) fn trait_method(s: &GrpcService, m: &GrpcMethod) -> String {
    format!(
        "/// Handles `{path}` ({kind}).\n\
         fn {f}(&self, cx: &mut {CONTEXT}, req: {req}) -> impl ::std::future::Future<Output = {RESULT}<{resp}, {STATUS}>> + ::std::marker::Send;\n",
        path = s.path(m),
        kind = m.kind.words(),
        f = m.fn_name,
        req = m.req_param(),
        resp = m.resp_value(),
    )
}

/// Give each marked handler trait its documentation and bounds: the
/// runtime shares one handler between connections and tasks.
pub(crate) fn finish_traits(code: &str) -> String {
    let mut lines: Vec<String> = code.lines().map(str::to_string).collect();
    let mut i = 0;
    while i < lines.len() {
        let Some(at) = lines[i].find(MARK) else {
            i += 1;
            continue;
        };
        let rest = &lines[i][at + MARK.len()..];
        let full_name = rest.split("*/").next().unwrap_or("").trim().to_string();
        lines.remove(i);
        // The `pub trait X {` line above.
        if let Some(t) = (0..i)
            .rev()
            .find(|&j| lines[j].trim_start().starts_with("pub trait "))
        {
            let indent: String = lines[t].chars().take_while(|c| c.is_whitespace()).collect();
            if let Some(head) = lines[t].trim_end().strip_suffix('{') {
                let head = head.trim_end().to_string();
                lines[t] =
                    format!("{head}: ::std::marker::Send + ::std::marker::Sync + 'static {{");
                lines.insert(
                    t,
                    format!(
                        "{indent}/// The handler of gRPC service `{full_name}`: one method per \
                         RPC, each given the call's context and its request."
                    ),
                );
                i += 1;
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Everything after the handler trait.
pub(crate) fn render(s: &GrpcService) -> String {
    let mut out = String::new();
    out.push_str(&consts(s));
    out.push_str(&enums(s));
    out.push_str(&server(s));
    out.push_str(&client(s));
    out
}

fn consts(s: &GrpcService) -> String {
    let mut out = String::new();
    for (m, c) in s.methods.iter().zip(&s.consts) {
        let _ = write!(
            out,
            r#"
/// `{path}`: {kind}.
pub const {c}: {PB}::MethodDesc = {PB}::MethodDesc {{
    name: "{name}",
    path: "{path}",
    kind: {PB}::MethodKind::{variant},
}};
"#,
            path = s.path(m),
            kind = m.kind.words(),
            name = m.name,
            variant = m.kind.variant(),
        );
    }
    out
}

fn enums(s: &GrpcService) -> String {
    let full = &s.full_name;
    let req = &s.names.req;
    let resp = &s.names.resp;
    let mut req_variants = String::new();
    let mut resp_variants = String::new();
    let mut from_body = String::new();
    let mut method_arms = String::new();
    let mut sink = String::new();
    let mut debug = String::new();
    for (i, (m, c)) in s.methods.iter().zip(&s.consts).enumerate() {
        let v = &m.variant;
        let _ = writeln!(
            req_variants,
            "/// The request of `{}`.\n{v}({}),",
            m.name,
            m.req_param()
        );
        let _ = writeln!(
            resp_variants,
            "/// The response of `{}`.\n{v}({}),",
            m.name,
            m.resp_value()
        );
        let body = if m.kind.streams_requests() {
            "stream"
        } else {
            "message"
        };
        let _ = writeln!(
            from_body,
            "{i} => {RESULT}::Ok(Self::{v}(__body.{body}()?)),"
        );
        let _ = writeln!(method_arms, "Self::{v}(_) => &{c},");
        if m.kind.streams_responses() {
            let _ = writeln!(sink, "Self::{v}(__s) => __sink.stream(__s),");
            let _ = writeln!(
                debug,
                "Self::{v}(_) => f.debug_tuple(\"{v}\").field(&\"<stream>\").finish(),"
            );
        } else {
            let _ = writeln!(sink, "Self::{v}(__m) => __sink.message(&__m),");
            let _ = writeln!(
                debug,
                "Self::{v}(__m) => f.debug_tuple(\"{v}\").field(__m).finish(),"
            );
        }
    }
    if s.methods.is_empty() {
        method_arms.push_str("_ => match *self {},");
        sink.push_str("_ => match self {},");
        debug.push_str("_ => match *self {},");
    }
    let methods_list = s.consts.join(", ");
    format!(
        r#"
/// A call to `{full}` as the server receives it: one variant per method,
/// holding its request (a stream of them for client and bidirectional
/// streaming methods).
#[derive(Debug)]
pub enum {req} {{
    {req_variants}
}}

impl {req} {{
    /// The method called.
    pub fn method(&self) -> &'static {PB}::MethodDesc {{
        match self {{
            {method_arms}
        }}
    }}
}}

impl {PB}::ServiceRequest for {req} {{
    const SERVICE: &'static str = "{full}";
    const METHODS: &'static [{PB}::MethodDesc] = &[{methods_list}];

    fn from_body(__method: usize, __body: {PB}::RequestBody) -> {RESULT}<Self, {STATUS}> {{
        match __method {{
            {from_body}
            _ => {RESULT}::Err({STATUS}::unimplemented(::std::format!("{full} has no method number {{__method}}"))),
        }}
    }}
}}

/// The answer of a `{full}` handler: one variant per method, holding its
/// response (a stream of them for server and bidirectional streaming
/// methods).
pub enum {resp} {{
    {resp_variants}
}}

impl ::std::fmt::Debug for {resp} {{
    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{
        match self {{
            {debug}
        }}
    }}
}}

impl {PB}::ServiceResponse for {resp} {{
    fn into_sink(self, __sink: &mut {PB}::ResponseSink<'_>) -> {RESULT}<(), {STATUS}> {{
        match self {{
            {sink}
        }}
    }}
}}
"#
    )
}

fn server(s: &GrpcService) -> String {
    let name = &s.name;
    let full = &s.full_name;
    let server = &s.names.server;
    let req = &s.names.req;
    let resp = &s.names.resp;
    let mut arms = String::new();
    for m in &s.methods {
        let v = &m.variant;
        let _ = writeln!(
            arms,
            "{req}::{v}(__r) => {resp}::{v}(__handler.{}(&mut __cx, __r).await?),",
            m.fn_name
        );
    }
    if s.methods.is_empty() {
        arms.push_str("_ => match __message {},");
    }
    let bound = format!("H: {name} + ::std::marker::Send + ::std::marker::Sync + 'static");
    format!(
        r#"
/// Serves `{full}` with a [`{name}`] handler: a `tower::Service` from
/// [`{req}`] to [`{resp}`] that calls the handler's method. Add it to a
/// [`GrpcServer`](::weft::protobuf::GrpcServer) with
/// [`register`](Self::register), wrap it in middleware first, or
/// [`serve`](Self::serve) it alone.
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
    /// The service's full name, `package.Service`.
    pub const SERVICE_NAME: &'static str = "{full}";

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
}}

impl<{bound}> {server}<H> {{
    /// `server` serving this service too.
    pub fn register(self, server: {PB}::GrpcServer) -> {PB}::GrpcServer {{
        server.add_service::<{req}, {resp}, _>(self)
    }}

    /// Bind `addr` and serve this service alone on it over gRPC.
    pub async fn serve(
        self,
        builder: ::weft::core::ServerBuilder,
        addr: &::weft::core::Address,
    ) -> ::std::io::Result<::weft::core::ServerHandle> {{
        {PB}::GrpcServer::new()
            .add_service::<{req}, {resp}, _>(self)
            .serve(builder, addr)
            .await
    }}
}}

impl<{bound}> ::weft::core::tower::Service<::weft::core::Request<{req}>> for {server}<H> {{
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

fn client(s: &GrpcService) -> String {
    let full = &s.full_name;
    let client = &s.names.client;
    let mut unary = String::new();
    let mut streams = String::new();
    for (m, c) in s.methods.iter().zip(&s.consts) {
        let f = m.client_fn_name();
        let path = s.path(m);
        let (rq, rs) = (&m.req, &m.resp);
        match m.kind {
            Kind::Unary => {
                let _ = write!(
                    unary,
                    r#"
    /// Calls `{path}`: the response and its context (response metadata).
    pub async fn {f}(&self, cx: {CONTEXT}, req: &{rq}) -> {RESULT}<::weft::core::Response<{rs}>, {STATUS}> {{
        {PB}::client::unary(&self.inner, cx, &{c}, req).await
    }}
"#
                );
            }
            Kind::ServerStreaming => {
                let _ = write!(
                    streams,
                    r#"
    /// Calls `{path}` (server streaming): the responses as they arrive.
    pub async fn {f}(&self, cx: {CONTEXT}, req: &{rq}) -> {RESULT}<::weft::core::Response<{PB}::Streaming<{rs}>>, {STATUS}> {{
        {PB}::client::server_streaming(self.inner.grpc_client(), cx, &{c}, req).await
    }}
"#
                );
            }
            Kind::ClientStreaming => {
                let _ = write!(
                    streams,
                    r#"
    /// Calls `{path}` (client streaming): sends what `reqs` yields, then
    /// returns the one response.
    pub async fn {f}<S>(&self, cx: {CONTEXT}, reqs: S) -> {RESULT}<::weft::core::Response<{rs}>, {STATUS}>
    where
        S: {PB}::message::Stream<Item = {rq}> + ::std::marker::Send + 'static,
    {{
        {PB}::client::client_streaming(self.inner.grpc_client(), cx, &{c}, reqs).await
    }}
"#
                );
            }
            Kind::BidiStreaming => {
                let _ = write!(
                    streams,
                    r#"
    /// Calls `{path}` (bidirectional streaming): sends what `reqs`
    /// yields while the responses arrive.
    pub async fn {f}<S>(&self, cx: {CONTEXT}, reqs: S) -> {RESULT}<::weft::core::Response<{PB}::Streaming<{rs}>>, {STATUS}>
    where
        S: {PB}::message::Stream<Item = {rq}> + ::std::marker::Send + 'static,
    {{
        {PB}::client::bidi_streaming(self.inner.grpc_client(), cx, &{c}, reqs).await
    }}
"#
                );
            }
        }
    }
    format!(
        r#"
/// A typed client of `{full}`: unary methods over any `tower::Service`
/// that carries a [`GrpcCall`](::weft::protobuf::GrpcCall) (a
/// [`GrpcClient`](::weft::protobuf::GrpcClient) or middleware around one),
/// streaming methods over a client that can stream.
#[derive(Debug, Clone)]
pub struct {client}<T = {PB}::GrpcClient> {{
    inner: T,
}}

impl<T> {client}<T> {{
    /// The service's full name, `package.Service`.
    pub const SERVICE_NAME: &'static str = "{full}";

    /// A client making its calls through `inner`.
    pub fn new(inner: T) -> Self {{
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
            ::weft::core::Request<{PB}::GrpcCall>,
            Response = ::weft::core::Response<::weft::core::bytes::Bytes>,
            Error = {STATUS},
        > + ::std::clone::Clone
        + ::std::marker::Send,
{{
    {unary}
}}

impl<T: {PB}::client::Streams> {client}<T> {{
    {streams}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screaming_names() {
        assert_eq!(screaming("TestService"), "TEST_SERVICE");
        assert_eq!(screaming("UnaryCall"), "UNARY_CALL");
        assert_eq!(screaming("r#type"), "TYPE");
        assert_eq!(screaming("V1Api"), "V1_API");
    }

    #[test]
    fn traits_get_bounds_and_docs() {
        let code = "mod a {\n    pub trait Greeter {\n        /*weft:grpc-trait helloworld.Greeter*/\n        fn f(&self);\n    }\n}\n";
        let out = finish_traits(code);
        assert!(
            out.contains("    /// The handler of gRPC service `helloworld.Greeter`"),
            "{out}"
        );
        assert!(
            out.contains(
                "    pub trait Greeter: ::std::marker::Send + ::std::marker::Sync + 'static {\n        fn f"
            ),
            "{out}"
        );
    }
}
