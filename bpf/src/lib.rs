//! Berth's eBPF seam, shared by the engine (cgroup v2 device filters) and networking
//! (the tc fast path between a network's members), which must not depend on each other:
//!
//! * [`asm`]: a small instruction assembler with labelled jumps (programs are
//!   hand-assembled: no clang, no compiled BPF object);
//! * [`prog`]: load a program (the verifier's log in the error), find it by id, read its
//!   info, attach it to / detach it from / list it on a cgroup;
//! * [`map`]: create a map or open one by id; look up, update, delete and walk entries.
//!
//! Only `sys` issues bpf(2); everything above it is safe to call.

pub mod asm;
mod error;
pub mod map;
pub mod prog;
mod sys;

pub use error::BpfError;
pub use sys::Cmd;

pub type Result<T> = std::result::Result<T, BpfError>;
