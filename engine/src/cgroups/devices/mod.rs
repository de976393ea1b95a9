//! Device access control for cgroup v2: `linux.resources.devices` rules become a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the group's directory (v2 has no
//! `devices` controller; the kernel runs the program on every mknod and device open of
//! the group's processes). One job per module:
//!
//! * [`rules`]: the OCI rules reduced as the v1 controller would (default + exceptions);
//! * [`program`]: that reduction as eBPF instructions, built with berth-bpf's assembler;
//! * [`sys`]: load, attach, replace, detach, query through berth-bpf's bpf(2) calls,
//!   the only part that needs the kernel.

#[cfg(test)]
mod interp;
pub mod program;
pub mod rules;
pub mod sys;

use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use super::Result;
use berth_bpf::asm::Insn;

/// A checked, generated filter, ready to load: [`compile`] before touching the host,
/// [`install`] once the group exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub insns: Vec<Insn>,
}

/// Validates the rules and generates their program.
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Result<Filter> {
    let set = rules::RuleSet::from_oci(rules)?;
    Ok(Filter {
        insns: program::generate(&set)?,
    })
}

/// Loads `filter` and makes it the one device program of the group at `dir`: it
/// replaces a single earlier one atomically (BPF_F_REPLACE), or is attached before the
/// earlier ones are detached, so the group is never left unfiltered. Returns the new
/// program's kernel id.
pub fn install(dir: &Path, filter: &Filter) -> Result<u32> {
    sys::replace_device_program(dir, &filter.insns)
}

/// Ids of the device programs attached to the group at `dir` itself.
pub fn attached(dir: &Path) -> Result<Vec<u32>> {
    sys::attached(dir)
}

/// Whether the kernel still holds the program with this id (false once the last group
/// it was attached to is gone).
pub fn program_exists(id: u32) -> bool {
    sys::program_exists(id)
}
