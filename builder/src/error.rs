//! The builder's error type. Everything a Dockerfile causes names the file and line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A fault of the Dockerfile (syntax, a missing stage, a step that failed), at a line.
    #[error("{file}:{line}: {message}")]
    Dockerfile {
        file: String,
        line: usize,
        message: String,
    },
    /// The build's inputs outside the Dockerfile (context, options).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Image(#[from] berth_engine::image::ImageError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

impl BuildError {
    /// An error at `line` of the Dockerfile (the file is named by [`BuildError::in_file`]).
    pub fn at(line: usize, message: impl Into<String>) -> BuildError {
        BuildError::Dockerfile {
            file: "Dockerfile".into(),
            line,
            message: message.into(),
        }
    }
    /// Names the Dockerfile an error points into.
    pub fn in_file(self, name: &str) -> BuildError {
        match self {
            BuildError::Dockerfile { line, message, .. } => BuildError::Dockerfile {
                file: name.to_string(),
                line,
                message,
            },
            e => e,
        }
    }
}

pub fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Io { what, path, source }
}
