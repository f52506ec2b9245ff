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
    /// The IDL parses but breaks Thrift's rules (see [`Diagnostic`]): one
    /// line per problem, errors and the warnings that came with them.
    #[error("{}", .diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every problem found, in file order; at least one is an error.
        diagnostics: Vec<Diagnostic>,
    },
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
    #[error("{}:{line}:1: error: the file is not valid UTF-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The line of the first invalid byte.
        line: usize,
    },
    /// An IDL file does not parse.
    #[error("{}", .errors.iter().map(|e| format!("{}:{}:{}: error: {}", path.display(), e.line, e.column, e.message)).collect::<Vec<_>>().join("\n"))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Each error, in file order.
        errors: Vec<SyntaxError>,
    },
    /// An `include` names a file found neither beside the including file
    /// nor in an include directory.
    #[error("{}:{line}:{column}: error: include \"{include}\" not found (searched {})", path.display(), searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    IncludeNotFound {
        /// The including file.
        path: PathBuf,
        /// The line of the `include`.
        line: usize,
        /// The column of the included path.
        column: usize,
        /// The path as written.
        include: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
    /// A `.proto` `import` names a file found in no include directory
    /// (nor among the well-known types the parser carries).
    #[error("{}:{line}: error: import \"{import}\" not found (searched {})", path.display(), searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
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
    #[error("{}{}: error: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
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

impl Error {
    /// Whether the message already reads like a compiler's, starting with
    /// `file:line:column: error:`; callers print the others after
    /// `error: `.
    pub fn is_located(&self) -> bool {
        matches!(
            self,
            Error::Invalid { .. }
                | Error::NotUtf8 { .. }
                | Error::Syntax { .. }
                | Error::IncludeNotFound { .. }
                | Error::ImportNotFound { .. }
                | Error::Rejected { .. }
        )
    }
}

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Severity {
    /// Generation stops.
    Error,
    /// Apache Thrift's compiler warns here too; code is generated.
    Warning,
}

/// One problem in an IDL file, with the IDL's own names. Displays as a
/// compiler's diagnostic: `echo.thrift:12:5: error: field id 3 is used
/// twice in struct Foo (first at 10:5)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, naming the IDL's definitions.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}
