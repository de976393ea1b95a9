//! The values the container API takes and returns, and its error type.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::config::ContainerConfig;
use crate::logs::LogLine;
use crate::state::{Health, HealthStatus, StateError, Status};

/// A container's ID: 32 lowercase hex digits.
pub type ContainerId = String;

/// What went wrong, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A config value is not acceptable; nothing was changed on the host.
    #[error("invalid container config: {field}: {problem}")]
    InvalidConfig { field: String, problem: String },
    /// No container has this ID or name.
    #[error("no such container {0:?} (see `berth ps -a`)")]
    NotFound(String),
    /// The name is taken.
    #[error("the container name {name:?} is already used by {id}; remove that container or pick another name")]
    NameInUse { name: String, id: String },
    /// The operation does not fit the container's state.
    #[error("container {name:?} is {status}: cannot {op}{hint}")]
    WrongState {
        name: String,
        status: Status,
        op: &'static str,
        hint: &'static str,
    },
    /// The container could not be started.
    #[error("starting container {name:?} failed: {message}")]
    Start { name: String, message: String },
    /// The monitor could not be reached or refused the request.
    #[error("the monitor of container {name:?} {message}")]
    Monitor { name: String, message: String },
    /// Waiting ran out of time.
    #[error("timed out after {0:?} waiting for the container")]
    Timeout(Duration),
    /// The `berth-monitor` binary is missing.
    #[error("cannot find the berth-monitor program at {0} (install it beside berth, or set BERTH_MONITOR)")]
    NoMonitorProgram(PathBuf),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
}

pub type Result<T> = std::result::Result<T, EngineError>;

pub(crate) fn io_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
    let op = op.into();
    move |source| EngineError::Io { op, source }
}

/// Live output from [`Engine::attach`].
pub struct Attach {
    pub(super) conn: std::io::BufReader<std::os::unix::net::UnixStream>,
}

impl Iterator for Attach {
    type Item = LogLine;
    fn next(&mut self) -> Option<LogLine> {
        use std::io::BufRead;
        let mut pending = String::new();
        loop {
            let mut line = String::new();
            match self.conn.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let Some((time, stream, full, msg)) =
                crate::logs::parse_record(line.trim_end_matches('\n'))
            else {
                continue;
            };
            pending.push_str(msg);
            if full {
                return Some(LogLine {
                    time,
                    stream,
                    message: pending,
                });
            }
        }
    }
}

/// One line of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSummary {
    pub id: ContainerId,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: Status,
    pub exit_code: Option<i32>,
    pub health: Option<HealthStatus>,
}

/// Everything `inspect` knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: ContainerId,
    pub name: String,
    pub config: ContainerConfig,
    pub created: SystemTime,
    pub state: Status,
    /// Host pid of the container's first process while it runs.
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub restart_count: u32,
    pub health: Option<Health>,
    /// Why the last start failed, or that the monitor died.
    pub error: Option<String>,
    pub monitor_pid: Option<i32>,
    pub log_path: PathBuf,
}

/// Label selector for `list`: every pair must match (`key` alone: key present).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelFilter(pub Vec<(String, Option<String>)>);

impl LabelFilter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, k: &str, v: &str) -> Self {
        self.0.push((k.into(), Some(v.into())));
        self
    }
    pub fn has(mut self, k: &str) -> Self {
        self.0.push((k.into(), None));
        self
    }
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, v)| match v {
            Some(v) => labels.get(k) == Some(v),
            None => labels.contains_key(k),
        })
    }
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Not running and not going to restart (exited, or dead).
    Exited,
    /// Health status `healthy` (an error if it turns `unhealthy` or exits first).
    Healthy,
    /// Running (started, or restarted).
    Running,
}

/// What `wait` saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    pub state: Status,
    pub exit_code: Option<i32>,
    pub health: Option<HealthStatus>,
}

/// Resource use of a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub cgroup: crate::cgroups::Stats,
    pub pids: Vec<i32>,
}

/// One process of `top`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Host pid.
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    /// Process state letter (R, S, Z, ...).
    pub state: char,
    pub cmd: String,
}

/// Output of an `exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// How [`crate::container::Engine::exec_attached`] connects the process to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStdio {
    /// Our stdin, stdout and stderr, passed through.
    Inherit,
    /// A terminal made in the container, relayed to ours.
    Terminal,
    /// Started, not waited for; no stdio.
    Detached,
}
