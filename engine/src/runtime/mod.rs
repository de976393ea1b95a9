//! The container runtime: an OCI runtime bundle in, an isolated process out.
//!
//! Order of operations (why it is this order):
//! 1. validate config.json fully before touching the host ([`spec`]);
//! 2. claim the ID (atomic mkdir of the state dir), make the cgroup and apply limits;
//! 3. fork an intermediate, put it in the cgroup, then let it join/unshare namespaces
//!    (user first, mount last) and fork the init, so the init starts inside all of them;
//! 4. init: mounts, /dev, pivot_root (old root detached), masked/read-only paths,
//!    hostname, sysctl, terminal — then reports Ready and waits on `start.sock`;
//! 5. start: rlimits, cwd, bounding set, user/groups, capabilities, no_new_privs,
//!    seccomp last (when no_new_privs is set), close-on-exec of every other fd, exec.

pub mod capabilities;
pub mod channel;
pub mod container;
pub mod defaults;
pub mod error;
pub mod hooks;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod seccomp_profile;
pub mod spec;
pub mod state;
pub mod syscall;
pub mod terminal;

pub use container::{CreateOptions, ExecResult, Runtime};
pub use error::{Result, RuntimeError};
pub use state::{Record, Status};
