//! The typed container configuration the orchestrator hands the engine (no YAML, no
//! Compose): what to run, from which root filesystem, with which limits and policies.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What an image says about how to run it (the "config" of an OCI image). The images
/// branch fills it; tests fill it by hand. Container settings override it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<Healthcheck>,
}

/// Everything `Engine::create` needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Unique among this engine's containers (`PROJECT-SERVICE-N`).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// A prepared root filesystem (an overlay mount made by the images code, or a
    /// plain directory).
    pub rootfs: PathBuf,
    pub image: ImageConfig,
    /// Replaces the image's entrypoint (and then its cmd too, as Docker does).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd.
    pub command: Option<Vec<String>>,
    /// `KEY=VALUE`, added to (and overriding) the image's.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub tty: bool,
    /// Keep the container's stdin open (a pipe the monitor holds, or the terminal with
    /// `tty`) for attached clients to write to; without it stdin is /dev/null.
    #[serde(default)]
    pub stdin_open: bool,
    pub hostname: Option<String>,
    pub mounts: Vec<MountSpec>,
    pub namespaces: JoinNamespaces,
    pub resources: Resources,
    pub ulimits: Vec<Ulimit>,
    pub sysctls: BTreeMap<String, String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub read_only: bool,
    pub devices: Vec<DeviceSpec>,
    pub restart: RestartPolicy,
    /// Overrides the image's healthcheck; `Some(test: None)` disables it.
    pub healthcheck: Option<Healthcheck>,
    /// e.g. `SIGTERM` (default), `SIGQUIT`, `15`.
    pub stop_signal: Option<String>,
    /// Time between the stop signal and SIGKILL (default 10 s).
    pub stop_grace_period: Option<Duration>,
    /// A minimal init as PID 1 that forwards signals and reaps zombies.
    pub init: bool,
    pub log: LogConfig,
    /// seccomp and no_new_privs (Compose `security_opt`); `privileged` lifts them.
    #[serde(default)]
    pub security: Security,
    /// A new user namespace: container ids `0..size` are host ids `host..` (the
    /// `rootfs` must have been made for the same mapping). `None`: the host's ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<crate::userns::IdMap>,
}

/// Confinement beyond capabilities. The defaults confine: Berth's seccomp profile
/// ([`crate::runtime::seccomp_profile`]) and no_new_privs, unless `privileged`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub seccomp: SeccompPolicy,
    /// `Some(false)` lets setuid binaries gain privileges (`no-new-privileges:false`);
    /// `None`: on, off when privileged.
    pub no_new_privileges: Option<bool>,
}

/// Which seccomp filter a container gets (`security_opt: seccomp=...`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompPolicy {
    /// Berth's default profile (none when privileged, as Docker).
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`).
    Unconfined,
    /// An OCI `linux.seccomp` JSON profile from this host file (`seccomp=FILE`).
    Profile(PathBuf),
}

/// A mount into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    /// A host path.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    /// A named volume: a directory the volumes code made under BERTH_ROOT.
    Volume {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    /// A secret: the host file is copied into the container's record directory (root's
    /// alone) and that copy bound read-only, with `mode` (default 0400) and owned by
    /// `uid`/`gid` (default: the container's user), so the user's file keeps its own mode.
    Secret {
        source: PathBuf,
        target: String,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    /// A fresh tmpfs.
    Tmpfs {
        target: String,
        size: Option<u64>,
        mode: Option<u32>,
    },
}

/// Existing namespaces to join by path (e.g. a netns file made by the networking
/// crate, or `/proc/PID/ns/net` of another container). `None`: a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub pid: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

/// cgroup limits. `None` leaves a limit unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<i64>,
    /// Memory plus swap, bytes (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    /// Microseconds per period.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_shares: Option<u64>,
    /// e.g. `0-1`.
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// e.g. `nofile`, `nproc`, `core`.
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub host_path: PathBuf,
    pub container_path: String,
    /// Some of `rwm`.
    pub permissions: String,
}

/// When the monitor brings a container back after it exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    /// Restart on a non-zero exit, at most `max_retries` times (None: without end).
    OnFailure {
        max_retries: Option<u32>,
    },
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = String;
    /// Compose spelling: `no`, `always`, `on-failure`, `on-failure:3`, `unless-stopped`.
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "no" | "" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure { max_retries: None },
            s => match s.strip_prefix("on-failure:") {
                Some(n) => RestartPolicy::OnFailure {
                    max_retries: Some(n.parse().map_err(|_| {
                        format!("restart policy {s:?}: {n:?} is not a count (on-failure:3)")
                    })?),
                },
                None => {
                    return Err(format!(
                        "restart policy {s:?} is not one of no, always, on-failure[:max], unless-stopped"
                    ))
                }
            },
        })
    }
}

/// How to probe a container's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthTest {
    /// Run these arguments directly (`CMD`).
    Cmd(Vec<String>),
    /// Run with `/bin/sh -c` (`CMD-SHELL`).
    CmdShell(String),
    /// Disable the image's healthcheck (`NONE`).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    pub test: HealthTest,
    /// Between probes (default 30 s).
    pub interval: Option<Duration>,
    /// A probe running longer is killed and counts as a failure (default 30 s).
    pub timeout: Option<Duration>,
    /// Consecutive failures before `unhealthy` (default 3).
    pub retries: Option<u32>,
    /// Failures during this time after start do not count (default 0).
    pub start_period: Option<Duration>,
    /// Between probes during the start period (default 5 s).
    pub start_interval: Option<Duration>,
}

/// Where and how much of the container's output is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Rotate the log when it passes this many bytes (None: never).
    pub max_size: Option<u64>,
    /// Files kept, the current one included (default 1 when max_size is set).
    pub max_file: Option<u32>,
}

/// A process to run in a running container (`exec`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecConfig {
    pub args: Vec<String>,
    /// Added to the container's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
}
