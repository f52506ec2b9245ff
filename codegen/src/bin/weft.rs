//! The `weft` command: generate Rust from Thrift IDL or `.proto` files, start a service crate.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use weft_codegen::{Builder, InitOptions, WeftDependency};

/// Weft's command-line tool: typed Rust clients and servers from Thrift IDL and .proto files
#[derive(Debug, Parser)]
#[command(name = "weft", version, propagate_version = true)]
#[command(after_help = "See 'weft help <command>' for more information on a specific command.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate Rust from Thrift IDL or .proto files into one file
    Gen(GenArgs),
    /// Create a new service crate from an IDL file
    Init(InitArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
The output holds one module named after the file (echo.rs: `pub mod echo`) \
with a module per IDL namespace inside: message types, and for each service \
a handler trait, XxxServer and XxxClient. Include it with `mod echo;` or \
`include!(\"echo.rs\");`.

Example:
    weft gen idl/echo.thrift -I idl/common -o src/echo.rs")]
struct GenArgs {
    /// The IDL files (.thrift, or .proto) to generate code for (their includes and imports come along)
    #[arg(required = true, value_name = "IDL")]
    idls: Vec<PathBuf>,
    /// Search DIR for included files, after the including file's directory
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    include_dirs: Vec<PathBuf>,
    /// Write to FILE [default: <first IDL in snake case>.rs]
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Only generate types a service uses
    #[arg(long)]
    only_used: bool,
    /// The path generated code reaches pilota by [default: ::weft::thrift::pilota, or ::weft::protobuf::pilota for .proto files]
    #[arg(long, value_name = "PATH")]
    pilota_path: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "\
The crate holds the IDL (idl/), the generated code (src/generated.rs), a \
server with a handler stub per method (src/main.rs), a client that calls \
every method (examples/client.rs) and a README. It depends on the weft-rpc \
package from crates.io, of this weft's version unless --weft-version says \
otherwise, or on a checkout of Weft with --weft-path.

Example:
    weft init echo-service --idl idl/echo.thrift
    cd echo-service && cargo run")]
struct InitArgs {
    /// Directory of the new crate (created; must be empty if it exists)
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The IDL file; the crate serves its first service
    #[arg(long, value_name = "FILE")]
    idl: PathBuf,
    /// Search DIR for included files, after the IDL's directory
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    include_dirs: Vec<PathBuf>,
    /// Package name [default: the directory's name]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Depend on the Weft checkout at DIR (the root holding the weft-rpc package) instead of crates.io
    #[arg(long, value_name = "DIR", conflicts_with = "weft_version")]
    weft_path: Option<PathBuf>,
    /// Depend on weft-rpc VERSION from crates.io [default: this weft's version]
    #[arg(long, value_name = "VERSION")]
    weft_version: Option<String>,
}

fn run(cli: Cli) -> Result<(), weft_codegen::Error> {
    match cli.command {
        Command::Gen(a) => {
            let mut b = Builder::new()
                .idls(a.idls)
                .generate_unused(!a.only_used)
                .emit_rerun_if_changed(false);
            if let Some(p) = a.pilota_path {
                b = b.pilota_path(p);
            }
            for d in a.include_dirs {
                b = b.include_dir(d);
            }
            // Outside a build script there is no OUT_DIR: default to the
            // current directory.
            let out = match a.out {
                Some(out) => out,
                None => PathBuf::from(format!(
                    "{}.rs",
                    weft_codegen::module_name(b.first_idl().ok_or(weft_codegen::Error::NoInput)?)
                )),
            };
            let b = b.output(out);
            let out = b.generate()?;
            eprintln!("   Generated {}", out.display());
            Ok(())
        }
        Command::Init(a) => {
            let weft = WeftDependency::from_flags(a.weft_path, a.weft_version)?;
            let opts = InitOptions {
                dir: a.dir.clone(),
                idl: a.idl,
                include_dirs: a.include_dirs,
                name: a.name,
                weft,
            };
            weft_codegen::init(&opts)?;
            eprintln!(
                "     Created service crate `{}`\n\n  cd {} && cargo run                    # the server\n  cargo run --example client             # calls every method",
                a.dir.display(),
                a.dir.display()
            );
            Ok(())
        }
    }
}

/// Runs `f` with stdout (fd 1) sent to a temporary file, then drops the
/// `cargo:` directives found there and passes anything else to stderr.
///
/// pilota-build prints `cargo:rerun-if-changed=` for every file it reads
/// (and the odd `cargo:warning=`), which a build script needs and a
/// command's stdout must not carry: `weft` prints on stdout only what was
/// asked (help, version).
#[cfg(unix)]
fn quiet_stdout<T>(f: impl FnOnce() -> T) -> T {
    use std::io::{Read, Seek, Write};
    let (Ok(saved), Ok(mut capture)) = (rustix::io::dup(std::io::stdout()), tempfile::tempfile())
    else {
        return f();
    };
    let _ = std::io::stdout().flush();
    if rustix::stdio::dup2_stdout(&capture).is_err() {
        return f();
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let _ = std::io::stdout().flush();
    let _ = rustix::stdio::dup2_stdout(&saved);
    let mut text = String::new();
    let _ = capture.rewind();
    let _ = capture.read_to_string(&mut text);
    for line in text.lines() {
        if let Some(warning) = line.strip_prefix("cargo:warning=") {
            eprintln!("warning: {warning}");
        } else if !line.starts_with("cargo:") {
            eprintln!("{line}");
        }
    }
    result.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Elsewhere stdout is left alone.
#[cfg(not(unix))]
fn quiet_stdout<T>(f: impl FnOnce() -> T) -> T {
    f()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // pilota-build reports some IDL errors by panicking; those are caught
    // and reported below, so keep the default hook's backtrace noise out.
    std::panic::set_hook(Box::new(|_| {}));
    match std::panic::catch_unwind(|| quiet_stdout(|| run(cli))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if e.is_located() => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            eprintln!("error: internal error in weft: {msg}");
            ExitCode::FAILURE
        }
    }
}
