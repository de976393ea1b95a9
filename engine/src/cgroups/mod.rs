//! cgroups: one [`Manager`] trait, two implementations.
//!
//! * [`v2::V2Manager`] drives the unified hierarchy (most hosts).
//! * [`v1::V1Manager`] drives one directory per controller hierarchy (this fleet's
//!   hosts, which boot "hybrid": every controller on v1, an empty cgroup2 beside them).
//!
//! [`detect`] reads `/proc/self/mountinfo` and picks the implementation that can
//! actually enforce limits: a cgroup2 mount with no controllers is not enough.

pub mod devices;
pub mod fsutil;
pub mod layout;
pub mod v1;
pub mod v2;

use std::path::PathBuf;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

pub use layout::{detect, Layout};

/// Errors from cgroup operations. Each names the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Writing a control file failed (value out of range, controller missing...).
    #[error("cannot write {value:?} to {path}: {source} (check the value and that the controller is available on this host)")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    /// Reading a control file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A control file held something we could not parse.
    #[error("cannot parse {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
    /// Creating or removing the group's directory failed.
    #[error("cannot {op} cgroup directory {path}: {source}")]
    Dir {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The group still holds processes after the wait.
    #[error("cgroup {path} still holds processes {pids:?} after {waited:?}; kill them first (e.g. `berth-runtime delete --force`)")]
    NotEmpty {
        path: PathBuf,
        pids: Vec<i32>,
        waited: Duration,
    },
    /// A requested limit is not valid.
    #[error("invalid cgroup setting {what}: {why}")]
    Invalid { what: String, why: String },
    /// Freezing did not finish.
    #[error("cgroup {path} did not reach state {want} within {waited:?}")]
    FreezeTimeout {
        path: PathBuf,
        want: &'static str,
        waited: Duration,
    },
    /// A bpf(2) call on a group's device filter failed.
    #[error("cannot {op} the device filter program of cgroup {path}: {source}{}", bpf_hint(.source.errno()))]
    Bpf {
        op: &'static str,
        path: PathBuf,
        source: berth_bpf::BpfError,
    },
    /// The kernel refused to load a device filter program.
    #[error("the kernel refused the device filter program ({insns} instructions): {source}{}{}", bpf_hint(.source.raw_os_error()), verifier_log(.log))]
    BpfLoad {
        insns: usize,
        source: std::io::Error,
        /// What the verifier said, if anything.
        log: String,
    },
    /// No usable cgroup hierarchy on this host.
    #[error("no usable cgroup hierarchy found in /proc/self/mountinfo: mount cgroup2 at /sys/fs/cgroup or the v1 controllers under it")]
    NoHierarchy,
}

/// What to do about a failed bpf(2) call, by errno.
fn bpf_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EPERM) => " (needs root with CAP_SYS_ADMIN or CAP_BPF; kernels before 5.11 also charge programs to RLIMIT_MEMLOCK)",
        Some(libc::EBADF) => " (is it a cgroup v2 directory?)",
        Some(libc::ENOSYS | libc::EOPNOTSUPP) => " (this kernel lacks cgroup device programs: it needs Linux 4.15+ with CONFIG_CGROUP_BPF)",
        _ => "",
    }
}

fn verifier_log(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("\nverifier log:\n{log}")
    }
}

pub type Result<T> = std::result::Result<T, CgroupError>;

/// What a group reports about its use of resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Memory in use now, bytes.
    pub memory_usage: Option<u64>,
    /// Highest memory use seen, bytes.
    pub memory_peak: Option<u64>,
    /// Times the OOM killer killed a process of this group.
    pub oom_kills: Option<u64>,
    /// CPU time used by all processes, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Processes (tasks) in the group now.
    pub pids_current: Option<u64>,
}

/// One container's cgroup, whatever the host's cgroup version.
pub trait Manager {
    /// "v1" or "v2".
    fn version(&self) -> &'static str;
    /// Make the group (idempotent).
    fn create(&self) -> Result<()>;
    /// Write the spec's limits. Returns warnings for settings this host cannot enforce.
    fn apply(&self, resources: &LinuxResources) -> Result<Vec<String>>;
    /// Move a process (and its threads) into the group.
    fn add_task(&self, pid: i32) -> Result<()>;
    /// Moves the calling (single-threaded) process into the group. On v1 this writes
    /// "0" to `tasks`, which the kernel does without the global threadgroup lock and so
    /// without waiting for an RCU grace period (~10 ms per attach otherwise).
    fn join_self(&self) -> Result<()>;
    /// Processes in the group now.
    fn pids(&self) -> Result<Vec<i32>>;
    /// Usage figures.
    fn stats(&self) -> Result<Stats>;
    /// Stop every process of the group until [`Manager::thaw`].
    fn freeze(&self) -> Result<()>;
    /// Let a frozen group run again.
    fn thaw(&self) -> Result<()>;
    /// Remove the group, waiting up to `wait` for its processes to exit.
    fn destroy(&self, wait: Duration) -> Result<()>;
    /// Directories this group lives in (one on v2, one per hierarchy on v1).
    fn paths(&self) -> Vec<PathBuf>;
}

/// Validates a spec `cgroupsPath` and turns it into a path relative to a hierarchy root.
pub fn relative_path(cgroups_path: &str) -> Result<PathBuf> {
    let trimmed = cgroups_path.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(CgroupError::Invalid {
            what: "cgroupsPath".into(),
            why: "is empty or the root; give a path such as /berth-ID".into(),
        });
    }
    let mut out = PathBuf::new();
    for part in trimmed.split('/') {
        match part {
            "" | "." => continue,
            ".." => {
                return Err(CgroupError::Invalid {
                    what: "cgroupsPath".into(),
                    why: format!("{cgroups_path:?} contains \"..\"; give a path below the root"),
                })
            }
            p => out.push(p),
        }
    }
    Ok(out)
}

/// Picks the manager for this host's layout.
pub fn manager_for(layout: &Layout, cgroups_path: &str) -> Result<Box<dyn Manager>> {
    let rel = relative_path(cgroups_path)?;
    Ok(match layout {
        Layout::Unified { root } => Box::new(v2::V2Manager::new(root.clone(), rel)),
        Layout::V1 { hierarchies, .. } => Box::new(v1::V1Manager::new(hierarchies.clone(), rel)),
    })
}

/// Manager for the host this process runs on.
pub fn host_manager(cgroups_path: &str) -> Result<Box<dyn Manager>> {
    let layout = layout::host_layout()?;
    manager_for(&layout, cgroups_path)
}

/// Polls `f` every few milliseconds until it returns true or `wait` has passed.
pub(crate) fn poll_until(wait: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= wait {
            return false;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_host_keeps_devices_on_v1_and_pure_v2_gets_the_filter() {
        // Hybrid: controllers (devices among them) on v1, an empty cgroup2 beside them.
        let hybrid = "\
31 30 0:27 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices
32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let m = manager_for(&detect(hybrid).unwrap(), "/berth-x").unwrap();
        assert_eq!(m.version(), "v1");
        assert!(m
            .paths()
            .contains(&PathBuf::from("/sys/fs/cgroup/devices/berth-x")));
        let v2 = "30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let m = manager_for(&detect(v2).unwrap(), "/berth-x").unwrap();
        assert_eq!(m.version(), "v2");
    }

    #[test]
    fn relative_path_refuses_escape_and_root() {
        assert!(relative_path("/").is_err());
        assert!(relative_path("/a/../b").is_err());
        assert_eq!(relative_path("/berth/x").unwrap(), PathBuf::from("berth/x"));
        assert_eq!(relative_path("berth-x").unwrap(), PathBuf::from("berth-x"));
    }
}
