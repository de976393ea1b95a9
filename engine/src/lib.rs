//! berth-engine: Berth's own container engine (images, root filesystems, namespaces,
//! cgroups, processes). See DESIGN.md, "engine".
//!
//! * [`cgroups`]: one `Manager` trait over cgroup v1 and v2.
//! * [`runtime`]: an OCI runtime bundle in, an isolated process out.

pub mod cgroups;
pub mod runtime;
