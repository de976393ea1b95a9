//! berth-engine: Berth's own container engine (images, root filesystems, namespaces,
//! cgroups, processes). See DESIGN.md, "engine".
//!
//! * [`cgroups`]: one `Manager` trait over cgroup v1 (this fleet's hybrid hosts) and v2.
//! * [`image`], [`rootfs`]: the image store, pulls and imports, and overlay root filesystems.
//! * [`container`]: the container API the orchestrator uses (create, start, stop,
//!   list, logs, ...), each container supervised by its own [`monitor`] process.
//! * [`state`]: container records on disk; [`logs`]: the log files.
//! * [`runtime`]: an OCI runtime bundle in, an isolated process out; the
//!   `berth-runtime` binary answers runc's command line over it.
//!
//! `create`, `exec` and `run` fork and call unshare/setns, which misbehave in a
//! multi-threaded process: a caller that runs threads (the orchestrator on tokio) runs
//! those through the `berth-runtime` binary. The other operations of
//! [`runtime::Runtime`] (`start`, `state`, `list`, `kill`, `pause`, `resume`, `stats`,
//! `pids`, `delete`) do not fork and are safe to call in-process.

pub mod cgroups;
pub mod container;
pub mod fault;
pub mod fsalloc;
pub mod image;
pub mod init;
pub mod logs;
pub mod monitor;
pub mod rootfs;
pub mod runtime;
pub mod state;
pub mod userns;
