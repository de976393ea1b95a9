//! berth-engine: Berth's own container engine (images, root filesystems, namespaces,
//! cgroups, processes). See DESIGN.md, "engine".
//!
//! * [`cgroups`]: one `Manager` trait over cgroup v1 and v2.
//! * [`runtime`]: an OCI runtime bundle in, an isolated process out.
//! * [`container`]: the container API the orchestrator uses (create, start, stop,
//!   list, logs, ...), each container supervised by its own [`monitor`] process.
//! * [`state`]: container records on disk; [`logs`]: the log files.

pub mod cgroups;
pub mod container;
pub mod init;
pub mod logs;
pub mod monitor;
pub mod runtime;
pub mod state;
