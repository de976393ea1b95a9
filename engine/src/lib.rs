//! berth-engine: Berth's own container engine (images, root filesystems, namespaces,
//! cgroups, processes). See DESIGN.md, "engine".
//!
//! * [`cgroups`]: one `Manager` trait over cgroup v1 (this fleet's hybrid hosts) and v2.
//! * [`image`], [`rootfs`]: the image store, pulls and imports, and overlay root filesystems.
//! * [`runtime`]: an OCI runtime bundle in, an isolated process out; the
//!   `berth-runtime` binary answers runc's command line over it.
//!
//! The runtime forks and calls unshare/setns, which misbehave in a multi-threaded
//! process: a caller that runs threads (the orchestrator on tokio) runs containers
//! through the `berth-runtime` binary (`create`, `start`, `state`, `kill`, `delete`,
//! `exec`), never by calling [`runtime::Runtime::create`] from a threaded process.

pub mod cgroups;
pub mod image;
pub mod rootfs;
pub mod runtime;
