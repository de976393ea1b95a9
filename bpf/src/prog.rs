//! Programs: load, find by id, describe, and attach to cgroups.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::asm::Insn;
use crate::sys::{
    self, bpf, name16, name_of, owned, AttachAttr, Cmd, ProgInfoHead, ProgLoadAttr, QueryAttr,
    ATTR_SIZE,
};
use crate::{BpfError, Result};

/// Program types Berth loads (`enum bpf_prog_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ProgType {
    /// A tc classifier (cls_bpf, direct action).
    SchedCls = 3,
    /// A cgroup v2 device filter.
    CgroupDevice = 15,
}

/// Where a program attaches to a cgroup (`enum bpf_attach_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum AttachType {
    CgroupDevice = 6,
}

/// BPF_PROG_ATTACH flags.
pub const F_ALLOW_MULTI: u32 = 1 << 1;
/// Swap `replace` for the new program atomically (kernel 5.6+).
pub const F_REPLACE: u32 = 1 << 2;

/// Loads a program named `name` (at most 15 bytes). On failure loads it again with the
/// verifier's log switched on (as libbpf does), so the error says why.
pub fn load(typ: ProgType, name: &str, license: &CStr, insns: &[Insn]) -> Result<OwnedFd> {
    let mut attr = ProgLoadAttr {
        prog_type: typ as u32,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name16(name)?,
        _rest: [0; ATTR_SIZE - 64],
    };
    let first = match bpf(Cmd::ProgLoad, &mut attr) {
        Ok(fd) => return Ok(owned(fd)),
        Err(e) => e,
    };
    let mut log = vec![0u8; 1 << 16];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    if let Ok(fd) = bpf(Cmd::ProgLoad, &mut attr) {
        return Ok(owned(fd));
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let source = match first {
        BpfError::Call { source, .. } => source,
        other => return Err(other),
    };
    Err(BpfError::Load {
        name: name.to_string(),
        insns: insns.len(),
        source,
        log: String::from_utf8_lossy(&log[..end]).trim().to_string(),
    })
}

/// A new fd for the loaded program with this id.
pub fn fd_by_id(id: u32) -> Result<OwnedFd> {
    sys::fd_by_id(Cmd::ProgGetFdById, id)
}

/// What the kernel tells of a loaded program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    pub id: u32,
    pub name: String,
    /// Ids of the maps it uses.
    pub map_ids: Vec<u32>,
}

/// Describes the program behind `prog`.
pub fn info(prog: BorrowedFd<'_>) -> Result<ProgInfo> {
    let mut map_ids = vec![0u32; 4];
    loop {
        let mut head = ProgInfoHead {
            nr_map_ids: map_ids.len() as u32,
            map_ids: map_ids.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: prog is a program, ProgInfoHead the head of bpf_prog_info, and map_ids
        // names a buffer of nr_map_ids ids.
        unsafe { sys::obj_info(prog, &mut head)? };
        // The kernel fills at most the room given and says how many there are.
        let n = head.nr_map_ids as usize;
        if n > map_ids.len() {
            map_ids = vec![0u32; n];
            continue;
        }
        map_ids.truncate(n);
        return Ok(ProgInfo {
            id: head.id,
            name: name_of(&head.name),
            map_ids,
        });
    }
}

/// Attaches `prog` to the cgroup `target` with `flags` ([`F_ALLOW_MULTI`], and
/// [`F_REPLACE`] which `replace` then names).
pub fn attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    typ: AttachType,
    flags: u32,
    replace: Option<BorrowedFd<'_>>,
) -> Result<()> {
    attach_cmd(
        Cmd::ProgAttach,
        target,
        prog,
        typ,
        flags,
        replace.map_or(0, |r| r.as_raw_fd() as u32),
    )
}

/// Detaches `prog` from the cgroup `target`.
pub fn detach(target: BorrowedFd<'_>, prog: BorrowedFd<'_>, typ: AttachType) -> Result<()> {
    attach_cmd(Cmd::ProgDetach, target, prog, typ, 0, 0)
}

fn attach_cmd(
    cmd: Cmd,
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    typ: AttachType,
    flags: u32,
    replace: u32,
) -> Result<()> {
    let mut attr = AttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: typ as u32,
        attach_flags: flags,
        replace_bpf_fd: replace,
        _rest: [0; ATTR_SIZE - 20],
    };
    bpf(cmd, &mut attr).map(drop)
}

/// Ids of the programs of type `typ` attached to the cgroup `target` itself (not
/// inherited).
pub fn query(target: BorrowedFd<'_>, typ: AttachType) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    for _ in 0..4 {
        let mut attr = QueryAttr {
            target_fd: target.as_raw_fd() as u32,
            attach_type: typ as u32,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            _rest: [0; ATTR_SIZE - 28],
        };
        match bpf(Cmd::ProgQuery, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // The kernel wrote back how many there are: ask again with room for them.
            Err(e) if e.errno() == Some(libc::ENOSPC) => {
                ids = vec![0u32; attr.prog_cnt as usize + 8];
            }
            Err(e) => return Err(e),
        }
    }
    Err(BpfError::Call {
        cmd: Cmd::ProgQuery,
        source: std::io::Error::other("the set of attached programs kept growing"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::{Insn, Reg};
    use std::os::fd::AsFd;

    const LICENSE: &CStr = c"Apache-2.0";

    #[test]
    fn a_program_the_verifier_refuses_comes_back_with_its_log() {
        // No exit: the verifier refuses to run off the end.
        let bad = [Insn::mov32(Reg::R0, 1)];
        let e = load(ProgType::CgroupDevice, "berth_test", LICENSE, &bad).unwrap_err();
        let BpfError::Load { log, insns, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*insns, 1);
        assert!(!log.is_empty(), "{e}");
        assert!(e.to_string().contains("verifier log"), "{e}");
        assert!(e.to_string().contains("berth_test"), "{e}");
    }

    #[test]
    fn a_loaded_program_is_found_again_by_id_with_its_name() {
        let ok = [Insn::mov32(Reg::R0, 1), Insn::exit()];
        let p = load(ProgType::CgroupDevice, "berth_test", LICENSE, &ok).unwrap();
        let i = info(p.as_fd()).unwrap();
        assert_eq!(i.name, "berth_test");
        assert!(i.map_ids.is_empty());
        let again = fd_by_id(i.id).unwrap();
        assert_eq!(info(again.as_fd()).unwrap(), i);
        drop((p, again));
        // The last fd gone, the kernel frees it (a little later: RCU).
        let t = std::time::Instant::now();
        while fd_by_id(i.id).is_ok() {
            assert!(t.elapsed().as_secs() < 5, "program {} still there", i.id);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(fd_by_id(i.id).unwrap_err().errno(), Some(libc::ENOENT));
    }

    #[test]
    fn a_bad_name_is_refused_before_the_kernel() {
        let e = load(ProgType::SchedCls, "a-name-far-too-long", LICENSE, &[]).unwrap_err();
        assert!(matches!(e, BpfError::Invalid { .. }), "{e}");
        assert_eq!(e.errno(), None);
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup() {
        let tmp = std::env::temp_dir();
        let d = std::fs::File::open(&tmp).unwrap();
        let e = query(d.as_fd(), AttachType::CgroupDevice).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EBADF), "{e}");
        assert!(e.to_string().starts_with("BPF_PROG_QUERY: "), "{e}");
    }
}
