//! What can go wrong turning IDL into Rust, with the file and line to blame.

use std::path::PathBuf;

/// A failure to generate code. Displays like a compiler diagnostic:
/// `path:line:column: message`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No IDL file was given.
    #[error("no IDL file given")]
    NoInput,
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// An IDL file is not UTF-8.
    #[error("{}:{line}: the file is not valid UTF-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The line of the first invalid byte.
        line: usize,
    },
    /// An IDL file does not parse.
    #[error("{}", .errors.iter().map(|e| format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)).collect::<Vec<_>>().join("\n"))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Each error, in file order.
        errors: Vec<SyntaxError>,
    },
    /// An `include` names a file found neither beside the including file
    /// nor in an include directory.
    #[error("{}:{line}: include \"{include}\" not found (searched {})", path.display(), searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    IncludeNotFound {
        /// The including file.
        path: PathBuf,
        /// The line of the `include`.
        line: usize,
        /// The path as written.
        include: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
    /// A `.proto` `import` names a file found in no include directory
    /// (nor among the well-known types the parser carries).
    #[error("{}:{line}: import \"{import}\" not found (searched {})", path.display(), searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    ImportNotFound {
        /// The importing file.
        path: PathBuf,
        /// The line of the `import`.
        line: usize,
        /// The path as written.
        import: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
    /// Thrift and `.proto` files given to one generation: each output
    /// holds one or the other.
    #[error("{}: cannot generate .thrift and .proto files into one output (first was {})", path.display(), first.display())]
    MixedIdl {
        /// The file of the other kind.
        path: PathBuf,
        /// The first file given.
        first: PathBuf,
    },
    /// The IDL parses but pilota-build rejected it (an unknown type, a
    /// duplicate name, ...).
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Rejected {
        /// The IDL file being generated.
        path: PathBuf,
        /// The line to blame, when it could be found.
        line: Option<usize>,
        /// pilota-build's complaint.
        message: String,
    },
    /// `weft init` was told to depend on Weft in a way it will not guess
    /// at: both a path and a version, a path that is not the facade, a
    /// version that is not one.
    #[error("{0}")]
    WeftDependency(String),
}

/// One syntax error in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What the parser expected or found.
    pub message: String,
}
