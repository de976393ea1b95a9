//! What the crate's calls can fail with.

use std::io;

use crate::sys::Cmd;

/// A failed bpf(2) call, a program the kernel refused, or an argument refused before
/// the kernel was asked.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// One bpf(2) command failed; [`BpfError::errno`] says how.
    #[error("{cmd}: {source}")]
    Call {
        cmd: Cmd,
        #[source]
        source: io::Error,
    },
    /// The kernel refused to load a program.
    #[error("the kernel refused BPF program {name} ({insns} instructions): {source}{}", verifier_log(.log))]
    Load {
        name: String,
        insns: usize,
        #[source]
        source: io::Error,
        /// What the verifier said, if anything.
        log: String,
    },
    /// An argument that cannot be passed to the kernel (checked before any call).
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },
}

impl BpfError {
    /// The errno the kernel answered, if it was asked.
    pub fn errno(&self) -> Option<i32> {
        match self {
            BpfError::Call { source, .. } | BpfError::Load { source, .. } => source.raw_os_error(),
            BpfError::Invalid { .. } => None,
        }
    }
}

fn verifier_log(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("\nverifier log:\n{log}")
    }
}
