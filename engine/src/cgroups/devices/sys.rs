//! Putting a device filter on a cgroup, through berth-bpf's bpf(2) calls: the only part
//! of the device filter that needs the kernel.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use berth_bpf::asm::Insn;
use berth_bpf::prog::{self, AttachType, ProgType, F_ALLOW_MULTI, F_REPLACE};
use berth_bpf::BpfError;

use super::program::{LICENSE, NAME};
use crate::cgroups::{CgroupError, Result};

const DEVICE: AttachType = AttachType::CgroupDevice;

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map(OwnedFd::from)
        .map_err(|source| CgroupError::Dir {
            op: "open",
            path: dir.to_path_buf(),
            source,
        })
}

fn failed<'a>(op: &'static str, dir: &'a Path) -> impl FnOnce(BpfError) -> CgroupError + 'a {
    move |source| CgroupError::Bpf {
        op,
        path: dir.to_path_buf(),
        source,
    }
}

/// Loads the filter; a program the kernel refuses comes back with the verifier's log.
fn load(insns: &[Insn], dir: &Path) -> Result<OwnedFd> {
    prog::load(ProgType::CgroupDevice, NAME, LICENSE, insns).map_err(|e| match e {
        BpfError::Load {
            insns, source, log, ..
        } => CgroupError::BpfLoad { insns, source, log },
        e => failed("load", dir)(e),
    })
}

/// Ids of the device programs attached to the cgroup at `dir`.
pub fn attached(dir: &Path) -> Result<Vec<u32>> {
    let d = open_dir(dir)?;
    prog::query(d.as_fd(), DEVICE).map_err(failed("query", dir))
}

/// Whether the kernel still holds the program with this id.
pub fn program_exists(id: u32) -> bool {
    prog::fd_by_id(id).is_ok()
}

/// Loads `insns` and makes it the only device program attached to the cgroup at `dir`,
/// the way runc updates its filter: one earlier program is swapped atomically; with
/// none, several, or a kernel without BPF_F_REPLACE, the new one is attached first and
/// the earlier ones detached after (both apply meanwhile: stricter, never looser).
pub fn replace_device_program(dir: &Path, insns: &[Insn]) -> Result<u32> {
    let d = open_dir(dir)?;
    let old = prog::query(d.as_fd(), DEVICE).map_err(failed("query", dir))?;
    let p = load(insns, dir)?;
    let id = prog::info(p.as_fd()).map_err(failed("identify", dir))?.id;
    if let [one] = old[..] {
        if let Ok(old_fd) = prog::fd_by_id(one) {
            let flags = F_ALLOW_MULTI | F_REPLACE;
            match prog::attach(d.as_fd(), p.as_fd(), DEVICE, flags, Some(old_fd.as_fd())) {
                Ok(()) => return Ok(id),
                // EINVAL: no BPF_F_REPLACE here; ENOENT: the old one went meanwhile.
                Err(e) if matches!(e.errno(), Some(libc::EINVAL | libc::ENOENT)) => {}
                Err(e) => return Err(failed("replace", dir)(e)),
            }
        }
    }
    prog::attach(d.as_fd(), p.as_fd(), DEVICE, F_ALLOW_MULTI, None)
        .map_err(failed("attach", dir))?;
    for old_id in old {
        match prog::fd_by_id(old_id) {
            Ok(fd) => match prog::detach(d.as_fd(), fd.as_fd(), DEVICE) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                Err(e) => return Err(failed("detach the earlier", dir)(e)),
            },
            Err(e) if e.errno() == Some(libc::ENOENT) => {}
            Err(e) => return Err(failed("find the earlier", dir)(e)),
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_bpf::asm::Reg;

    #[test]
    fn a_program_the_verifier_refuses_comes_back_with_its_log() {
        // No exit: the verifier refuses to run off the end.
        let bad = [Insn::mov32(Reg::R0, 1)];
        let e = load(&bad, Path::new("/sys/fs/cgroup")).unwrap_err();
        let CgroupError::BpfLoad { log, .. } = &e else {
            panic!("{e}")
        };
        assert!(!log.is_empty(), "{e}");
        assert!(e.to_string().contains("verifier log"), "{e}");
        assert!(e.to_string().contains("device filter program"), "{e}");
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let e = attached(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("cannot query the device filter program"), "{e}");
        assert!(e.contains("cgroup v2 directory"), "{e}");
    }
}
