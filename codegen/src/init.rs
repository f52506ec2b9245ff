//! `weft init`: a new service crate from an IDL file — the generated code,
//! a server with a handler stub per method, a client example and a README.

use std::path::{Path, PathBuf};

use crate::{
    builder::Builder,
    error::Error,
    grpc::{GrpcMethod, GrpcService},
    service::MethodInfo,
};

/// Separates a method's handler stub from its client call in the text the
/// backend hands back through pilota-build's init hook.
const CLIENT_MARK: &str = "/*weft:client*/";
/// Ends one method's text.
const END_MARK: &str = "/*weft:end*/";

/// The package the facade is published as. Its library is `weft`, which is
/// the name generated code reaches it by (`::weft::...`).
pub const FACADE_PACKAGE: &str = "weft-rpc";

/// How the new crate depends on Weft: always under the name `weft`, on the
/// package [`FACADE_PACKAGE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeftDependency {
    /// `weft = { package = "weft-rpc", path = "..." }`: a checkout of Weft,
    /// the directory holding the `weft-rpc` package's `Cargo.toml` (the
    /// workspace root).
    Path(PathBuf),
    /// `weft = { package = "weft-rpc", version = "..." }`: the published
    /// facade, any version requirement Cargo accepts.
    Version(String),
}

impl Default for WeftDependency {
    /// The published facade of this generator's own version.
    fn default() -> Self {
        WeftDependency::Version(env!("CARGO_PKG_VERSION").to_string())
    }
}

impl WeftDependency {
    /// From `weft init`'s flags: the path or the version given, the
    /// [default](Self::default) when neither is; an error, not a guess,
    /// when both are.
    pub fn from_flags(path: Option<PathBuf>, version: Option<String>) -> Result<Self, Error> {
        match (path, version) {
            (Some(p), Some(v)) => Err(Error::WeftDependency(format!(
                "both a path ({}) and a version ({v}) given for weft: choose one",
                p.display()
            ))),
            (Some(p), None) => Ok(WeftDependency::Path(p)),
            (None, Some(v)) => Ok(WeftDependency::Version(v)),
            (None, None) => Ok(WeftDependency::default()),
        }
    }

    /// The `[dependencies]` line, after checking that a path holds the
    /// facade and that a version reads as a version requirement.
    fn manifest_line(&self) -> Result<String, Error> {
        match self {
            WeftDependency::Path(p) => {
                let dir = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                let manifest = dir.join("Cargo.toml");
                let text = std::fs::read_to_string(&manifest).map_err(|e| {
                    Error::WeftDependency(format!(
                        "weft path {}: cannot read {}: {e}",
                        p.display(),
                        manifest.display()
                    ))
                })?;
                match package_name_in(&text) {
                    Some(name) if name == FACADE_PACKAGE => Ok(format!(
                        "weft = {{ package = \"{FACADE_PACKAGE}\", path = {:?} }}",
                        dir.display().to_string()
                    )),
                    found => Err(Error::WeftDependency(format!(
                        "weft path {}: {} is not the {FACADE_PACKAGE} package ({}); give the root of a Weft checkout",
                        p.display(),
                        manifest.display(),
                        found.map_or_else(|| "no [package] name".to_string(), |n| format!("it is `{n}`")),
                    ))),
                }
            }
            WeftDependency::Version(v) => {
                let v = v.trim();
                let ok = v.starts_with(|c: char| c.is_ascii_digit() || "^~=<>*".contains(c))
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".^~=<>*, +-".contains(c));
                if !ok {
                    return Err(Error::WeftDependency(format!(
                        "weft version {v:?} is not a version requirement (like 0.1.0 or ^0.1)"
                    )));
                }
                Ok(format!(
                    "weft = {{ package = \"{FACADE_PACKAGE}\", version = \"{v}\" }}"
                ))
            }
        }
    }
}

/// The `name` in a manifest's `[package]` table, read line by line (enough
/// for a manifest that writes `name = "..."` on a line of its own).
fn package_name_in(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(rest) = line.strip_prefix("name") {
                let value = rest.trim_start().strip_prefix('=')?.trim();
                return Some(value.trim_matches('"').to_string());
            }
        }
    }
    None
}

/// What `weft init` creates.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The directory of the new crate; must not exist or be empty.
    pub dir: PathBuf,
    /// The IDL file whose first service the crate serves.
    pub idl: PathBuf,
    /// Where includes are searched besides the IDL's own directory.
    pub include_dirs: Vec<PathBuf>,
    /// The package name. Default: the directory's name.
    pub name: Option<String>,
    /// How the crate depends on Weft.
    pub weft: WeftDependency,
}

/// The text of the handler stub and the client call for one method.
pub(crate) fn stubs(m: &MethodInfo) -> String {
    let cx = m.cx_name();
    let params: String = m
        .args
        .iter()
        .map(|(n, ty)| format!(", _{}: {ty}", n.trim_start_matches("r#")))
        .collect();
    let defaults = vec!["::std::default::Default::default()"; m.args.len()];
    let call_args = defaults.join(", ");
    format!(
        "    async fn {name}(&self, _{cx}: &mut ::weft::core::Context{params}) -> ::std::result::Result<{ret}, {err}> {{\n\
         \x20       ::std::result::Result::Ok({value})\n\
         \x20   }}\n{CLIENT_MARK}\
         \x20   match client.{cf}({call_args}).await {{\n\
         \x20       Ok(v) => println!(\"{idl}: {{v:?}}\"),\n\
         \x20       Err(e) => {{\n\
         \x20           println!(\"{idl} failed: {{e}}\");\n\
         \x20           failed += 1;\n\
         \x20       }}\n\
         \x20   }}\n{END_MARK}",
        name = m.fn_name,
        cf = m.client_fn_name(),
        ret = m.ret,
        // `Ok(Default::default())` of `()` is clippy's `unit_arg`.
        value = if m.ret == "()" {
            "()"
        } else {
            "::std::default::Default::default()"
        },
        err = m.error_ty(),
        idl = m.idl_name,
    )
}

/// [`stubs`] for a gRPC method: the handler stub returns the default
/// response (an empty stream for streaming responses); the client call
/// sends a default request (one, for streaming requests) and prints what
/// comes back.
pub(crate) fn grpc_stubs(s: &GrpcService, m: &GrpcMethod) -> String {
    let _ = s;
    let pb = "::weft::protobuf";
    let req_param = if m.kind.streams_requests() {
        format!("{pb}::Streaming<{}>", m.req)
    } else {
        m.req.clone()
    };
    let (ret, body) = if m.kind.streams_responses() {
        (
            format!("{pb}::ResponseStream<{}>", m.resp),
            "::std::boxed::Box::pin(futures::stream::empty())",
        )
    } else {
        (m.resp.clone(), "::std::default::Default::default()")
    };
    let args = if m.kind.streams_requests() {
        format!(
            "futures::stream::iter(vec![<{} as ::std::default::Default>::default()])",
            m.req
        )
    } else {
        "&::std::default::Default::default()".to_string()
    };
    let on_ok = if m.kind.streams_responses() {
        format!(
            "\
         \x20       Ok(mut r) => loop {{\n\
         \x20           match r.message.message().await {{\n\
         \x20               Ok(Some(m)) => println!(\"{name}: {{m:?}}\"),\n\
         \x20               Ok(None) => break,\n\
         \x20               Err(e) => {{\n\
         \x20                   println!(\"{name} failed: {{e}}\");\n\
         \x20                   failed += 1;\n\
         \x20                   break;\n\
         \x20               }}\n\
         \x20           }}\n\
         \x20       }},\n",
            name = m.name
        )
    } else {
        format!(
            "\x20       Ok(r) => println!(\"{name}: {{:?}}\", r.message),\n",
            name = m.name
        )
    };
    format!(
        "    async fn {f}(&self, _cx: &mut ::weft::core::Context, _req: {req_param}) -> ::std::result::Result<{ret}, ::weft::core::Status> {{\n\
         \x20       ::std::result::Result::Ok({body})\n\
         \x20   }}\n{CLIENT_MARK}\
         \x20   match client.{cf}(::weft::core::Context::default(), {args}).await {{\n\
         {on_ok}\
         \x20       Err(e) => {{\n\
         \x20           println!(\"{name} failed: {{e}}\");\n\
         \x20           failed += 1;\n\
         \x20       }}\n\
         \x20   }}\n{END_MARK}",
        f = m.fn_name,
        cf = m.client_fn_name(),
        name = m.name,
    )
}

/// Split the hook's text into handler stubs and client calls.
fn split_stubs(text: &str) -> (String, String) {
    let mut handlers = String::new();
    let mut calls = String::new();
    for part in text.split(END_MARK) {
        if let Some((h, c)) = part.split_once(CLIENT_MARK) {
            handlers.push_str(h.trim_start_matches('\n'));
            handlers.push('\n');
            calls.push_str(c);
        }
    }
    (handlers, calls)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

/// A package name from a directory name: `My Service` → `my-service`.
fn package_name(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        name.insert_str(0, "svc-");
    }
    name
}

/// Create the crate. Returns the files written, relative to `dir`.
pub fn init(opts: &InitOptions) -> Result<Vec<PathBuf>, Error> {
    let dir = &opts.dir;
    // Before anything is written: a bad dependency leaves no half a crate.
    let weft_dep = opts.weft.manifest_line()?;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(Error::Io {
                path: dir.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the directory exists and is not empty",
                ),
            });
        }
    }
    let name = opts.name.clone().unwrap_or_else(|| package_name(dir));
    let krate = name.replace('-', "_");
    let grpc = crate::proto::is_proto(&opts.idl);
    let idl_name = opts
        .idl
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "service.thrift".into());

    let builder = opts
        .include_dirs
        .iter()
        .fold(Builder::new().idl(&opts.idl), |b, d| b.include_dir(d))
        .emit_rerun_if_changed(false);
    let (service_path, methods) = builder.init_service(&format!("{krate}::generated"))?;
    if service_path.is_empty() {
        return Err(Error::Rejected {
            path: opts.idl.clone(),
            line: None,
            message: "the file declares no service".into(),
        });
    }
    let service = service_path.rsplit("::").next().unwrap_or(&service_path);
    let trait_path = format!("{krate}::generated::{service_path}");
    let methods = methods.replace("::pilota::", &format!("{}::", crate::DEFAULT_PILOTA_PATH));
    let (handlers, calls) = split_stubs(&methods);

    // Generated first: it is the slowest step and the likeliest to fail.
    let generated = dir.join("src/generated.rs");
    builder.clone().output(&generated).generate()?;
    let mut written = vec![PathBuf::from("src/generated.rs")];
    let mut put = |rel: &str, text: &str| -> Result<(), Error> {
        write(&dir.join(rel), text)?;
        written.push(PathBuf::from(rel));
        Ok(())
    };

    // The IDL, and the files it includes from its own directory tree.
    let idl_dir = opts.idl.parent().map(Path::to_path_buf).unwrap_or_default();
    let read = if grpc {
        crate::proto::check(std::slice::from_ref(&opts.idl), &opts.include_dirs)?.files
    } else {
        crate::check::check(std::slice::from_ref(&opts.idl), &opts.include_dirs)?.files
    };
    let idl_dir = std::fs::canonicalize(&idl_dir).unwrap_or(idl_dir);
    for f in read {
        if let Ok(rel) = f.strip_prefix(&idl_dir) {
            let text = std::fs::read_to_string(&f).map_err(io(&f))?;
            put(&format!("idl/{}", rel.display()), &text)?;
        }
    }

    put(
        "Cargo.toml",
        &format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
{weft_dep}
tokio = {{ version = "1", features = ["rt-multi-thread", "macros", "signal"] }}
{futures}
# A crate of its own, even when created inside another workspace.
[workspace]
"#,
            futures = if grpc { "futures = \"0.3\"\n" } else { "" },
        ),
    )?;

    let includes: String = opts
        .include_dirs
        .iter()
        .map(|d| format!(" -I {}", d.display()))
        .collect();
    let regen = format!("weft gen idl/{idl_name}{includes} -o src/generated.rs");
    put(
        "src/lib.rs",
        &format!(
            r#"//! The `{service}` service: types, handler trait, server and client
//! generated from `idl/{idl_name}`.
//!
//! Regenerate after changing the IDL with `{regen}`.

include!("generated.rs");
"#
        ),
    )?;

    put(
        "src/main.rs",
        &format!(
            r#"//! Serves `{service}`: `cargo run -- [ADDRESS]` (default 127.0.0.1:9090;
//! `unix:/path` for a Unix socket). Stops on Ctrl-C after finishing the
//! calls in flight.

/// Answers every `{service}` call. Each method is a stub that returns the
/// default value: write the service here.
#[derive(Debug, Clone, Default)]
struct Handler;

impl {trait_path} for Handler {{
{handlers}}}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {{
    let addr: weft::core::Address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_string())
        .parse()?;
    let server = {trait_path}Server::new(Handler)
        .serve(weft::core::ServerBuilder::new(), &addr)
        .await?;
    println!("listening on {{}}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}}
"#
        ),
    )?;

    let (client_use, client_new) = if grpc {
        (
            "use weft::protobuf::GrpcClient;\n".to_string(),
            format!("{trait_path}Client::new(GrpcClient::new(addr));"),
        )
    } else {
        (
            String::new(),
            // The builder's governance: a 5 s timeout, retries of what is
            // surely not processed, balancing, breakers, TTHeader.
            format!("{trait_path}Client::builder({service:?})\n        .address(addr.to_string())\n        .build()?;"),
        )
    };
    put(
        "examples/client.rs",
        &format!(
            r#"//! Calls every `{service}` method once with default arguments:
//! `cargo run --example client -- [ADDRESS]` (default 127.0.0.1:9090).
//! Exits with status 1 if a call fails.

{client_use}
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {{
    let addr: weft::core::Address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_string())
        .parse()?;
    let client = {client_new}
    let mut failed = 0;
{calls}    if failed > 0 {{
        std::process::exit(1);
    }}
    Ok(())
}}
"#
        ),
    )?;

    // Best effort: the stubs read better formatted, and compile either way.
    let _ =
        std::process::Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()))
            .args(["--edition", "2021"])
            .arg(dir.join("src/main.rs"))
            .arg(dir.join("examples/client.rs"))
            .output();

    put(
        "README.md",
        &format!(
            r#"# {name}

The `{service}` service from `idl/{idl_name}`, on [Weft](https://example.invalid/weft).

- `src/generated.rs` — generated by `weft init`; do not edit. After changing
  the IDL, regenerate it: `{regen}`.
- `src/main.rs` — the server. Each method of the handler is a stub that
  returns the default value; write the service there.
- `examples/client.rs` — calls every method once.

```sh
cargo run -- 127.0.0.1:9090                          # the server
cargo run --example client -- 127.0.0.1:9090         # in another terminal
```

{answers}
"#,
            answers = if grpc {
                "The server answers gRPC clients (HTTP/2, unary and streaming calls)."
            } else {
                "The server answers Apache Thrift (binary or compact, framed or buffered),\nTHeader and Kitex/Volo TTHeader clients on the same port."
            },
        ),
    )?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        assert_eq!(package_name(Path::new("/tmp/My Service")), "my-service");
        assert_eq!(package_name(Path::new("echo_svc")), "echo_svc");
        assert_eq!(package_name(Path::new("9lives")), "svc-9lives");
    }

    #[test]
    fn weft_dependency_lines() {
        let line = WeftDependency::default().manifest_line().unwrap();
        assert_eq!(
            line,
            format!(
                "weft = {{ package = \"weft-rpc\", version = \"{}\" }}",
                env!("CARGO_PKG_VERSION")
            )
        );
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let line = WeftDependency::Path(checkout.into())
            .manifest_line()
            .unwrap();
        assert!(
            line.starts_with("weft = { package = \"weft-rpc\", path = "),
            "{line}"
        );
        // The codegen crate is not the facade; nor is a missing directory.
        for bad in [
            WeftDependency::Path(env!("CARGO_MANIFEST_DIR").into()),
            WeftDependency::Path("/nonexistent/weft".into()),
            WeftDependency::Version("latest".into()),
            WeftDependency::Version(String::new()),
        ] {
            assert!(bad.manifest_line().is_err(), "{bad:?}");
        }
        assert!(WeftDependency::from_flags(Some(checkout.into()), Some("0.1.0".into())).is_err());
        assert_eq!(
            WeftDependency::from_flags(None, None).unwrap(),
            WeftDependency::default()
        );
    }

    #[test]
    fn package_name_in_manifest() {
        let m = "[workspace]\nmembers = []\n\n[package]\n# c\nname = \"weft-rpc\"\n[lib]\nname = \"weft\"\n";
        assert_eq!(package_name_in(m).as_deref(), Some("weft-rpc"));
        assert_eq!(package_name_in("[lib]\nname = \"weft\"\n"), None);
    }

    /// A `void` method's stub answers `Ok(())`: `Ok(Default::default())`
    /// of a unit is clippy's `unit_arg`, and `weft init` output is
    /// clippy-clean.
    #[test]
    fn void_stubs_answer_unit() {
        let m = crate::service::MethodInfo {
            idl_name: "poke".into(),
            fn_name: "poke".into(),
            variant: "Poke".into(),
            args: Vec::new(),
            ret: "()".into(),
            oneway: true,
            own: true,
            args_ty: "ShopPokeArgsSend".into(),
            result_ty: "ShopPokeResultSend".into(),
            error: None,
        };
        let text = stubs(&m);
        assert!(text.contains("::std::result::Result::Ok(())"), "{text}");
        let m = crate::service::MethodInfo {
            ret: "i32".into(),
            ..m
        };
        assert!(stubs(&m).contains("Ok(::std::default::Default::default())"));
    }
}
