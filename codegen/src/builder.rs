//! [`Builder`]: which IDL files, include directories and output file.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
};

use crate::{
    backend::{DocPlugin, MkWeftBackend},
    check::check,
    error::{Diagnostic, Error},
    normalize::normalize,
    pb_backend::MkWeftPbBackend,
    proto,
};

/// Where generated code finds pilota by default: through the facade, so a
/// crate using generated code needs no `pilota` dependency of its own and
/// always gets the version Weft's runtime was built with.
pub const DEFAULT_PILOTA_PATH: &str = "::weft::thrift::pilota";

/// Where code generated from `.proto` files finds pilota by default:
/// through the facade's `grpc` feature.
pub const DEFAULT_PB_PILOTA_PATH: &str = "::weft::protobuf::pilota";

/// Generates one Rust file from Thrift IDL files: message types, and for
/// each service entry messages, a handler trait, a server and a client.
///
/// ```no_run
/// // in build.rs's main:
/// weft_codegen::Builder::new()
///     .idl("idl/echo.thrift")
///     .include_dir("idl/common")
///     .compile(); // writes $OUT_DIR/echo.rs
/// ```
///
/// and in the crate:
///
/// ```ignore
/// include!(concat!(env!("OUT_DIR"), "/echo.rs"));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    idls: Vec<PathBuf>,
    include_dirs: Vec<PathBuf>,
    output: Option<PathBuf>,
    generate_unused: bool,
    pilota_path: Option<String>,
    rerun_if_changed: Option<bool>,
    emit_warnings: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with no IDL yet.
    pub fn new() -> Self {
        Builder {
            idls: Vec::new(),
            include_dirs: Vec::new(),
            output: None,
            generate_unused: true,
            pilota_path: None,
            rerun_if_changed: None,
            emit_warnings: true,
        }
    }

    /// Generate code for `path` (and whatever it includes).
    pub fn idl(mut self, path: impl Into<PathBuf>) -> Self {
        self.idls.push(path.into());
        self
    }

    /// Generate code for each of `paths`, into the same file.
    pub fn idls(mut self, paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.idls.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Look for `include`d files in `dir` too, after the including file's
    /// own directory.
    pub fn include_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.include_dirs.push(dir.into());
        self
    }

    /// Write to `path`. Default `$OUT_DIR/<first IDL's name in snake case>.rs`.
    /// The file holds one module named after the file (`echo.rs` → `pub mod
    /// echo`), with a module per IDL namespace inside.
    pub fn output(mut self, path: impl Into<PathBuf>) -> Self {
        self.output = Some(path.into());
        self
    }

    /// Generate every type the files declare, not only those a service
    /// uses. Default `true`.
    pub fn generate_unused(mut self, on: bool) -> Self {
        self.generate_unused = on;
        self
    }

    /// The path generated code reaches pilota by. Default
    /// [`DEFAULT_PILOTA_PATH`] for Thrift, [`DEFAULT_PB_PILOTA_PATH`] for
    /// `.proto` files; `"::pilota"` keeps pilota-build's own paths (the
    /// crate then needs the same `pilota` version as Weft).
    pub fn pilota_path(mut self, path: impl Into<String>) -> Self {
        self.pilota_path = Some(path.into());
        self
    }

    /// Print `cargo:rerun-if-changed` for every IDL file read. Default: when
    /// running in a build script (`OUT_DIR` is set).
    pub fn emit_rerun_if_changed(mut self, on: bool) -> Self {
        self.rerun_if_changed = Some(on);
        self
    }

    /// Print warnings about the IDL (those Apache Thrift's compiler prints
    /// too; see [`check`](Self::check)) while generating. Default `true`.
    pub fn emit_warnings(mut self, on: bool) -> Self {
        self.emit_warnings = on;
        self
    }

    /// The first IDL file given.
    pub fn first_idl(&self) -> Option<&Path> {
        self.idls.first().map(PathBuf::as_path)
    }

    /// The file [`generate`](Self::generate) writes.
    pub fn output_path(&self) -> Result<PathBuf, Error> {
        if let Some(p) = &self.output {
            return Ok(p.clone());
        }
        let first = self.idls.first().ok_or(Error::NoInput)?;
        let out_dir = std::env::var_os("OUT_DIR")
            .map(PathBuf::from)
            .ok_or_else(|| Error::Io {
                path: PathBuf::from("$OUT_DIR"),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "OUT_DIR is not set (not in a build script): set an output file",
                ),
            })?;
        Ok(out_dir.join(format!("{}.rs", module_name(first))))
    }

    /// Whether the inputs are `.proto` files (all of them; mixing kinds is
    /// an error).
    fn is_proto(&self) -> Result<bool, Error> {
        let first = self.idls.first().ok_or(Error::NoInput)?;
        let proto = proto::is_proto(first);
        if let Some(other) = self.idls.iter().find(|p| proto::is_proto(p) != proto) {
            return Err(Error::MixedIdl {
                path: other.clone(),
                first: first.clone(),
            });
        }
        Ok(proto)
    }

    /// Check the IDL as [`generate`](Self::generate) does first, without
    /// generating: the warnings (Apache Thrift's compiler warns about the
    /// same), or the errors as [`Error::Invalid`] (or a syntax error, a
    /// missing include, ...). Only Thrift IDL is checked here; `.proto`
    /// files are checked when generated.
    pub fn check(&self) -> Result<Vec<Diagnostic>, Error> {
        if self.idls.is_empty() {
            return Err(Error::NoInput);
        }
        if self.is_proto()? {
            proto::check(&self.idls, &self.include_dirs)?;
            return Ok(Vec::new());
        }
        Ok(check(&self.idls, &self.include_dirs)?.warnings)
    }

    /// Generate, returning the file written. Warnings about the IDL go
    /// to stderr, or to Cargo (`cargo:warning=`) in a build script.
    pub fn generate(self) -> Result<PathBuf, Error> {
        if self.idls.is_empty() {
            return Err(Error::NoInput);
        }
        if self.is_proto()? {
            return self.generate_proto();
        }
        let out = self.output_path()?;
        let checked = check(&self.idls, &self.include_dirs)?;
        let in_build_script = self
            .rerun_if_changed
            .unwrap_or_else(|| std::env::var_os("OUT_DIR").is_some());
        if in_build_script {
            for f in &checked.files {
                println!("cargo:rerun-if-changed={}", f.display());
            }
        }
        for w in checked.warnings.iter().filter(|_| self.emit_warnings) {
            if in_build_script {
                println!("cargo:warning={w}");
            } else {
                eprintln!("{w}");
            }
        }
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mk = MkWeftBackend {
            global_prefix: String::new(),
        };
        let input = self.prepare()?;
        let services = input
            .idls
            .iter()
            .map(|p| pilota_build::IdlService::from_path(p.clone()))
            .collect();
        let include_dirs = input.include_dirs.clone();
        let ignore_unused = !self.generate_unused;
        let first = self.idls[0].clone();
        write_as_module(&out, move |target| {
            guard(&first, move || {
                pilota_build::Builder::thrift()
                    .with_backend(mk)
                    .plugin(DocPlugin)
                    .ignore_unused(ignore_unused)
                    .include_dirs(include_dirs)
                    .compile_with_config(services, pilota_build::Output::File(target))
            })
        })?;
        self.finish(&out)?;
        Ok(out)
    }

    /// [`generate`](Self::generate) for `.proto` files: checked with
    /// protobuf-parse first, then pilota-build's protobuf backend with
    /// Weft's validation and gRPC service code.
    fn generate_proto(self) -> Result<PathBuf, Error> {
        let out = self.output_path()?;
        let checked = proto::check(&self.idls, &self.include_dirs)?;
        if self
            .rerun_if_changed
            .unwrap_or_else(|| std::env::var_os("OUT_DIR").is_some())
        {
            for f in &checked.files {
                println!("cargo:rerun-if-changed={}", f.display());
            }
        }
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mk = MkWeftPbBackend {
            global_prefix: String::new(),
        };
        let services = checked
            .idls
            .iter()
            .map(|p| pilota_build::IdlService::from_path(p.clone()))
            .collect();
        let include_dirs = checked.include_dirs.clone();
        let ignore_unused = !self.generate_unused;
        let first = self.idls[0].clone();
        write_as_module(&out, move |target| {
            guard(&first, move || {
                pilota_build::Builder::pb()
                    .with_backend(mk)
                    .ignore_unused(ignore_unused)
                    .include_dirs(include_dirs)
                    .compile_with_config(services, pilota_build::Output::File(target))
            })
        })?;
        self.finish(&out)?;
        Ok(out)
    }

    /// Generate, or print the error and exit with status 1: for build
    /// scripts, where that is the clearest way to fail.
    pub fn compile(self) {
        if let Err(e) = self.generate() {
            if e.is_located() {
                eprintln!("{e}");
            } else {
                eprintln!("error: {e}");
            }
            std::process::exit(1);
        }
    }

    /// The path to the first service of the first IDL and the handler
    /// stubs of its methods, for `weft init`.
    pub(crate) fn init_service(&self, global_prefix: &str) -> Result<(String, String), Error> {
        let first = self.idls.first().ok_or(Error::NoInput)?.clone();
        if self.is_proto()? {
            let checked = proto::check(&self.idls, &self.include_dirs)?;
            let mk = MkWeftPbBackend {
                global_prefix: global_prefix.to_string(),
            };
            let include_dirs = checked.include_dirs.clone();
            let service = pilota_build::IdlService::from_path(checked.idls[0].clone());
            let r = guard(&first, move || {
                pilota_build::Builder::pb()
                    .with_backend(mk)
                    .include_dirs(include_dirs)
                    .init_service(service)
            })?;
            return r.map_err(|e| rejected(&first, e.to_string()));
        }
        check(&self.idls, &self.include_dirs)?;
        let mk = MkWeftBackend {
            global_prefix: global_prefix.to_string(),
        };
        let input = self.prepare()?;
        let include_dirs = input.include_dirs.clone();
        let service = pilota_build::IdlService::from_path(input.idls[0].clone());
        let r = guard(&first, move || {
            pilota_build::Builder::thrift()
                .with_backend(mk)
                .plugin(DocPlugin)
                .include_dirs(include_dirs)
                .init_service(service)
        })?;
        r.map_err(|e| rejected(&first, e.to_string()))
    }

    /// The files and include directories to hand pilota-build: the IDL
    /// files as given, except those [`normalize`] rewrites, which are
    /// copied to a directory of their own (whose original directory then
    /// leads the include path, so their includes still resolve).
    fn prepare(&self) -> Result<Input, Error> {
        let mut input = Input {
            idls: Vec::new(),
            include_dirs: Vec::new(),
            _temp: None,
        };
        for idl in &self.idls {
            let text = std::fs::read_to_string(idl).map_err(|source| Error::Io {
                path: idl.clone(),
                source,
            })?;
            let normal = normalize(&text);
            // Without `namespace rs`, pilota names the file's module after
            // the file, which is no Rust identifier when it starts with a
            // digit: name it as `module_name` does. On line 1, so the
            // lines stay where they were.
            let module = module_name(idl);
            let base = normal.as_deref().unwrap_or(&text);
            let renamed = (module.starts_with("idl_") && !has_rs_namespace(base))
                .then(|| format!("namespace rs {module} {base}"));
            let Some(patched) = renamed.or(normal) else {
                input.idls.push(idl.clone());
                continue;
            };
            // In a build script the copy stays in OUT_DIR, untouched while
            // unchanged, since pilota-build names it in
            // `cargo:rerun-if-changed`; elsewhere it goes to a temporary
            // directory.
            let dir = match std::env::var_os("OUT_DIR") {
                Some(out) => PathBuf::from(out).join("weft-patched-idl"),
                None => {
                    if input._temp.is_none() {
                        input._temp = Some(tempfile::tempdir().map_err(|source| Error::Io {
                            path: std::env::temp_dir(),
                            source,
                        })?);
                    }
                    input
                        ._temp
                        .as_ref()
                        .map(|t| t.path().to_path_buf())
                        .unwrap_or_default()
                }
            };
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            let copy = dir.join(idl.file_name().unwrap_or_default());
            if std::fs::read_to_string(&copy).ok().as_deref() != Some(patched.as_str()) {
                std::fs::write(&copy, patched).map_err(|source| Error::Io {
                    path: copy.clone(),
                    source,
                })?;
            }
            if let Some(parent) = idl.parent() {
                input.include_dirs.push(parent.to_path_buf());
            }
            input.idls.push(copy);
        }
        input.include_dirs.extend(self.include_dirs.iter().cloned());
        Ok(input)
    }

    /// Re-export the first IDL's namespace (Thrift) or package (protobuf)
    /// module from the file's module, so that users write
    /// `echo::EchoClient` rather than `echo::weft_echo::EchoClient` or
    /// `echo::weft::interop::echo::EchoClient` (the long path keeps working).
    fn flatten(&self, code: String, proto: bool) -> String {
        let Some(text) = self
            .idls
            .first()
            .and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return code;
        };
        let namespace = if proto {
            // `package a.b.c;`, possibly with the `;` apart or a comment after.
            let Some(package) = text.lines().find_map(|l| {
                let rest = l.trim_start().strip_prefix("package")?;
                rest.starts_with(char::is_whitespace).then(|| {
                    rest.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .replace('.', "::")
                })
            }) else {
                // No package: the items are the file's module's own.
                return code;
            };
            Some(package)
        } else {
            text.lines().find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("namespace") && words.next() == Some("rs"))
                    .then(|| words.next().map(str::to_string))
                    .flatten()
            })
        };
        let path = match namespace {
            Some(ns) => ns.replace('.', "::"),
            None => module_name(&self.idls[0]),
        };
        // The modules directly inside the file's module, as formatted.
        let children: Vec<&str> = code
            .lines()
            .filter_map(|l| l.strip_prefix("    pub mod ")?.strip_suffix(" {"))
            .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        let first = path.split("::").next().unwrap_or("");
        let path = if children.contains(&first) {
            path.clone()
        } else if proto {
            // pilota named the package's modules otherwise: leave it.
            return code;
        } else if let [only] = children.as_slice() {
            // pilota names a file without `namespace rs` its own way.
            only.to_string()
        } else {
            return code;
        };
        match code.trim_end().rfind('}') {
            Some(end) => format!(
                "{}    pub use self::{path}::*;\n{}",
                &code[..end],
                &code[end..]
            ),
            None => code,
        }
    }

    /// Point pilota paths where they should go and mark the file generated.
    fn finish(&self, out: &Path) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: out.to_path_buf(),
            source,
        };
        let code = std::fs::read_to_string(out).map_err(io)?;
        let proto = self.is_proto()?;
        let code = if proto {
            crate::grpc::finish_traits(&code)
        } else {
            code
        };
        let pilota_path = self.pilota_path.as_deref().unwrap_or(if proto {
            DEFAULT_PB_PILOTA_PATH
        } else {
            DEFAULT_PILOTA_PATH
        });
        let code = if pilota_path == "::pilota" {
            code
        } else {
            code.replace("::pilota::", &format!("{pilota_path}::"))
        };
        let code = self.flatten(code, proto);
        let sources = self
            .idls
            .iter()
            .map(|p| {
                p.file_name()
                    .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
            })
            .collect::<Vec<_>>()
            .join(", ");
        let header = format!(
            "// @generated by weft-rpc-codegen {} from {sources}. Do not edit.\n",
            env!("CARGO_PKG_VERSION")
        );
        // The file's one module, documented for crates that deny missing docs.
        let header = if code.trim_start().starts_with("pub mod ") {
            format!("{header}/// Types and services generated from {sources}.\n")
        } else {
            header
        };
        std::fs::write(out, header + &code).map_err(io)
    }
}

/// Run `write` (pilota-build) to produce `out`. pilota-build wraps the
/// code in a module named after the output file up to its first dot,
/// which is no Rust identifier for `-o my-types.rs`: then it writes into a
/// temporary directory beside `out` under a name [`module_name`] makes,
/// and the file is moved to `out`.
fn write_as_module(
    out: &Path,
    write: impl FnOnce(PathBuf) -> Result<(), Error>,
) -> Result<(), Error> {
    let file = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = file.split('.').next().unwrap_or("");
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        return write(out.to_path_buf());
    }
    let parent = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::tempdir_in(parent).map_err(|source| Error::Io {
        path: parent.to_path_buf(),
        source,
    })?;
    let target = tmp
        .path()
        .join(format!("{}.rs", module_name(Path::new(name))));
    write(target.clone())?;
    std::fs::rename(&target, out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })
}

/// Whether `text` has a `namespace rs` line (outside comments, roughly:
/// at the start of a line).
fn has_rs_namespace(text: &str) -> bool {
    text.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some("namespace") && words.next() == Some("rs")
    })
}

/// What pilota-build reads.
struct Input {
    idls: Vec<PathBuf>,
    include_dirs: Vec<PathBuf>,
    /// Holds patched copies; removed when generation is done.
    _temp: Option<tempfile::TempDir>,
}

/// Run pilota-build, turning its panics into [`Error::Rejected`].
fn guard<T>(idl: &Path, f: impl FnOnce() -> T) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "pilota-build rejected the IDL (its errors are above)".to_string());
        rejected(idl, message)
    })
}

/// pilota-build's complaint about `idl`, with the line of the name it could
/// not resolve when it says which (`can not find path X in ...`).
fn rejected(idl: &Path, message: String) -> Error {
    let unresolved = message
        .strip_prefix("can not find path ")
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string);
    if let Some(name) = unresolved {
        let text = std::fs::read_to_string(idl).unwrap_or_default();
        let line = text.lines().position(|l| {
            let code = l.split("//").next().unwrap_or("");
            code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .any(|w| w == name)
        });
        return Error::Rejected {
            path: idl.to_path_buf(),
            line: line.map(|l| l + 1),
            message: format!("unknown type or constant `{name}`"),
        };
    }
    Error::Rejected {
        path: idl.to_path_buf(),
        line: None,
        message,
    }
}

/// The module (and default file) name for an IDL file:
/// `ThriftTest.uuid.thrift` → `thrift_test_uuid`.
pub fn module_name(idl: &Path) -> String {
    let stem = idl
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem
        .strip_suffix(".thrift")
        .or_else(|| stem.strip_suffix(".proto"))
        .unwrap_or(&stem);
    let mut out = String::new();
    let mut prev_lower = false;
    for c in stem.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = true;
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "idl_");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(
            module_name(Path::new("a/ThriftTest.uuid.thrift")),
            "thrift_test_uuid"
        );
        assert_eq!(module_name(Path::new("echo.thrift")), "echo");
        assert_eq!(
            module_name(Path::new("DebugProtoTest.thrift")),
            "debug_proto_test"
        );
        assert_eq!(module_name(Path::new("9x.thrift")), "idl_9x");
        assert_eq!(module_name(Path::new("route_guide.proto")), "route_guide");
    }
}
