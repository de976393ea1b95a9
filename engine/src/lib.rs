//! berth-engine: Berth's own container engine (images, root filesystems, namespaces,
//! cgroups, processes). See DESIGN.md, "engine". Grows with the engine issues.

pub mod image;
pub mod rootfs;
