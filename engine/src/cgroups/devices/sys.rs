//! The bpf(2) calls a device filter needs, and nothing else: the only code here that
//! talks to the kernel. Each `union bpf_attr` variant is a zero-padded 128-byte
//! struct: the kernel reads what it knows, requires the rest to be zero, and may write
//! results (prog_cnt, revision...) anywhere in its own idea of the union.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::asm::Insn;
use crate::cgroups::{CgroupError, Result};

// From include/uapi/linux/bpf.h.
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_ATTACH: u32 = 8;
const BPF_PROG_DETACH: u32 = 9;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_PROG_QUERY: u32 = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
const BPF_F_REPLACE: u32 = 1 << 2;

const ATTR_SIZE: usize = 128;

#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    _rest: [u8; ATTR_SIZE - 64],
}

#[repr(C)]
struct Attach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _rest: [u8; ATTR_SIZE - 20],
}

#[repr(C)]
struct Query {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _rest: [u8; ATTR_SIZE - 28],
}

#[repr(C)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
    _rest: [u8; ATTR_SIZE - 12],
}

#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
    _rest: [u8; ATTR_SIZE - 16],
}

/// The head of `struct bpf_prog_info`: all we read is the id.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    typ: u32,
    id: u32,
}

/// Issues one bpf(2) command. `T` is one of the 128-byte attr structs above.
fn bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    debug_assert_eq!(std::mem::size_of::<T>(), ATTR_SIZE);
    // SAFETY: attr points to a live, writable, fully initialised #[repr(C)] struct of
    // ATTR_SIZE bytes laid out as the kernel's union bpf_attr member for `cmd`; every
    // pointer stored in it refers to memory that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            ATTR_SIZE as libc::c_long,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program. On failure loads it again with the
/// verifier's log switched on (as libbpf does), so the error says why.
pub fn load(insns: &[Insn], license: &str) -> Result<OwnedFd> {
    let license = CString::new(license).map_err(|_| CgroupError::Invalid {
        what: "device filter license".into(),
        why: "contains a NUL byte".into(),
    })?;
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"berth_devices");
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        _rest: [0; ATTR_SIZE - 64],
    };
    let first = match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(owned(fd)),
        Err(e) => e,
    };
    let mut log = vec![0u8; 1 << 16];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr) {
        return Ok(owned(fd));
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    Err(CgroupError::BpfLoad {
        insns: insns.len(),
        source: first,
        log: String::from_utf8_lossy(&log[..end]).trim().to_string(),
    })
}

/// Ids of the device programs attached to the cgroup `dir` itself (not inherited).
pub fn query(dir: BorrowedFd) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    for _ in 0..4 {
        let mut attr = Query {
            target_fd: dir.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            _rest: [0; ATTR_SIZE - 28],
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // The kernel wrote back how many there are: ask again with room for them.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids = vec![0u32; attr.prog_cnt as usize + 8];
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "the set of attached programs kept growing",
    ))
}

/// A new fd for the loaded program with this id.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdById {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
        _rest: [0; ATTR_SIZE - 12],
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned)
}

/// The kernel's id of the program behind `prog`.
pub fn prog_id(prog: BorrowedFd) -> io::Result<u32> {
    let mut info = ProgInfoHead::default();
    let mut attr = InfoByFd {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoHead>() as u32,
        info: &mut info as *mut ProgInfoHead as u64,
        _rest: [0; ATTR_SIZE - 16],
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info.id)
}

/// One BPF_PROG_ATTACH or BPF_PROG_DETACH of a device program on a cgroup.
fn attach_cmd(
    cmd: u32,
    dir: BorrowedFd,
    prog: BorrowedFd,
    flags: u32,
    replace: u32,
) -> io::Result<()> {
    let mut attr = Attach {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: replace,
        _rest: [0; ATTR_SIZE - 20],
    };
    bpf(cmd, &mut attr).map(drop)
}

/// Attaches `prog` to the cgroup beside others (BPF_F_ALLOW_MULTI), in place of
/// `replace` if given (BPF_F_REPLACE, kernel 5.6+).
pub fn attach(dir: BorrowedFd, prog: BorrowedFd, replace: Option<BorrowedFd>) -> io::Result<()> {
    let flags = BPF_F_ALLOW_MULTI | replace.map_or(0, |_| BPF_F_REPLACE);
    let replace = replace.map_or(0, |r| r.as_raw_fd() as u32);
    attach_cmd(BPF_PROG_ATTACH, dir, prog, flags, replace)
}

/// Detaches `prog` from the cgroup.
pub fn detach(dir: BorrowedFd, prog: BorrowedFd) -> io::Result<()> {
    attach_cmd(BPF_PROG_DETACH, dir, prog, 0, 0)
}

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

fn failed<'a>(op: &'static str, dir: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Bpf {
        op,
        path: dir.to_path_buf(),
        source,
    }
}

/// Ids of the device programs attached to the cgroup at `dir`.
pub fn attached(dir: &Path) -> Result<Vec<u32>> {
    let d = open_dir(dir)?;
    query(d.as_fd()).map_err(failed("query", dir))
}

/// Loads `insns` and makes it the only device program attached to the cgroup at `dir`,
/// the way runc updates its filter: one earlier program is swapped atomically; with
/// none, several, or a kernel without BPF_F_REPLACE, the new one is attached first and
/// the earlier ones detached after (both apply meanwhile: stricter, never looser).
pub fn replace_device_program(dir: &Path, insns: &[Insn], license: &str) -> Result<u32> {
    let d = open_dir(dir)?;
    let old = query(d.as_fd()).map_err(failed("query", dir))?;
    let prog = load(insns, license)?;
    let id = prog_id(prog.as_fd()).map_err(failed("identify", dir))?;
    if let [one] = old[..] {
        if let Ok(old_fd) = prog_fd_by_id(one) {
            match attach(d.as_fd(), prog.as_fd(), Some(old_fd.as_fd())) {
                Ok(()) => return Ok(id),
                // EINVAL: no BPF_F_REPLACE here; ENOENT: the old one went meanwhile.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {}
                Err(e) => return Err(failed("replace", dir)(e)),
            }
        }
    }
    attach(d.as_fd(), prog.as_fd(), None).map_err(failed("attach", dir))?;
    for old_id in old {
        match prog_fd_by_id(old_id) {
            Ok(fd) => match detach(d.as_fd(), fd.as_fd()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(failed("detach the earlier", dir)(e)),
            },
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(failed("find the earlier", dir)(e)),
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_are_the_size_we_pass() {
        assert_eq!(std::mem::size_of::<ProgLoad>(), ATTR_SIZE);
        assert_eq!(std::mem::size_of::<Attach>(), ATTR_SIZE);
        assert_eq!(std::mem::size_of::<Query>(), ATTR_SIZE);
        assert_eq!(std::mem::size_of::<GetFdById>(), ATTR_SIZE);
        assert_eq!(std::mem::size_of::<InfoByFd>(), ATTR_SIZE);
        // Field offsets the kernel expects.
        assert_eq!(std::mem::offset_of!(ProgLoad, prog_name), 48);
        assert_eq!(std::mem::offset_of!(Query, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(Query, prog_cnt), 24);
        assert_eq!(std::mem::offset_of!(Attach, replace_bpf_fd), 16);
    }

    #[test]
    fn a_program_the_verifier_refuses_comes_back_with_its_log() {
        // No exit: the verifier refuses to run off the end.
        let bad = [Insn::mov32(super::super::asm::Reg::R0, 1)];
        let e = load(&bad, "Apache-2.0").unwrap_err();
        let CgroupError::BpfLoad { log, .. } = &e else {
            panic!("{e}")
        };
        assert!(!log.is_empty(), "{e}");
        assert!(e.to_string().contains("verifier log"), "{e}");
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let e = attached(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("cannot query the device filter program"), "{e}");
        assert!(e.contains("cgroup v2 directory"), "{e}");
    }
}
