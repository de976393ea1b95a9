//! berth-orchestrator: knows stacks, never syscalls.
//!
//! - [`stack`]: the stack file, from YAML text to a typed, normalized model.
//! - [`graph`]: the service dependency graph (start and stop order).
//! - [`cli`]: one module per `berth` verb.

pub mod cli;
pub mod fault;
pub mod graph;
pub mod kube;
pub mod project_lock;
pub mod reconcile;
pub mod stack;
