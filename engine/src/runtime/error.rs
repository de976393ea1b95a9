//! The runtime's errors. Each says what was wrong and, where there is one, what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// config.json could not be read.
    #[error("cannot read {path}: {source} (is --bundle the directory holding config.json?)")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    /// config.json is not a valid OCI runtime spec (syntax or types).
    #[error("{path} is not a valid OCI runtime config: {message}")]
    ParseConfig { path: PathBuf, message: String },
    /// config.json parsed but asks for something impossible or unsafe.
    #[error("invalid config.json: {field}: {problem}")]
    InvalidConfig { field: String, problem: String },
    /// The container ID is not acceptable.
    #[error("invalid container ID {id:?}: {problem}")]
    InvalidId { id: String, problem: String },
    /// A container with this ID exists already.
    #[error("container {0:?} already exists (delete it first, or pick another ID)")]
    Exists(String),
    /// No container with this ID.
    #[error("container {0:?} does not exist (see `berth-runtime list`)")]
    NotFound(String),
    /// The operation does not fit the container's state.
    #[error("container {id:?} is {status}: cannot {op}{hint}")]
    WrongState {
        id: String,
        status: String,
        op: &'static str,
        hint: &'static str,
    },
    /// Setting up the container failed inside the container's init or exec process.
    #[error("container process failed during {stage}: {message}")]
    Child { stage: String, message: String },
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// A hook failed (hooks that must succeed abort the operation).
    #[error("{hook_kind} hook {path} failed: {message}")]
    Hook {
        hook_kind: &'static str,
        path: PathBuf,
        message: String,
    },
    /// A system call in the runtime failed.
    #[error("{op}: {source}")]
    Sys { op: String, source: std::io::Error },
    /// State on disk could not be read or written.
    #[error("container state {path}: {message}")]
    State { path: PathBuf, message: String },
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// Wraps an io::Error with what we were doing.
pub fn sys(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let op = op.into();
    move |source| RuntimeError::Sys { op, source }
}

/// Wraps a nix errno with what we were doing.
pub fn errno(op: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> RuntimeError {
    let op = op.into();
    move |e| RuntimeError::Sys {
        op,
        source: std::io::Error::from(e),
    }
}

pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidConfig {
        field: field.into(),
        problem: problem.into(),
    }
}
