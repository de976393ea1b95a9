//! The one place that issues bpf(2). Each `union bpf_attr` variant is a zero-padded
//! 128-byte `#[repr(C)]` struct: the kernel reads what it knows, requires the rest to be
//! zero, and may write results (prog_cnt, ...) anywhere in its own idea of the union.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::BpfError;

/// The size of every attr struct passed to the kernel.
pub(crate) const ATTR_SIZE: usize = 128;

/// The bpf(2) commands Berth issues (`enum bpf_cmd`, include/uapi/linux/bpf.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Cmd {
    MapCreate = 0,
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    MapGetNextKey = 4,
    ProgLoad = 5,
    ProgAttach = 8,
    ProgDetach = 9,
    ProgGetFdById = 13,
    MapGetFdById = 14,
    ObjGetInfoByFd = 15,
    ProgQuery = 16,
}

impl fmt::Display for Cmd {
    /// The kernel's name of the command, as strace and the docs show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cmd::MapCreate => "BPF_MAP_CREATE",
            Cmd::MapLookupElem => "BPF_MAP_LOOKUP_ELEM",
            Cmd::MapUpdateElem => "BPF_MAP_UPDATE_ELEM",
            Cmd::MapDeleteElem => "BPF_MAP_DELETE_ELEM",
            Cmd::MapGetNextKey => "BPF_MAP_GET_NEXT_KEY",
            Cmd::ProgLoad => "BPF_PROG_LOAD",
            Cmd::ProgAttach => "BPF_PROG_ATTACH",
            Cmd::ProgDetach => "BPF_PROG_DETACH",
            Cmd::ProgGetFdById => "BPF_PROG_GET_FD_BY_ID",
            Cmd::MapGetFdById => "BPF_MAP_GET_FD_BY_ID",
            Cmd::ObjGetInfoByFd => "BPF_OBJ_GET_INFO_BY_FD",
            Cmd::ProgQuery => "BPF_PROG_QUERY",
        })
    }
}

/// One of the 128-byte attr structs below.
///
/// # Safety
/// Implementors are `#[repr(C)]`, exactly [`ATTR_SIZE`] bytes, and laid out as the
/// kernel's `union bpf_attr` member of the commands they are passed with.
pub(crate) unsafe trait Attr {}

#[repr(C)]
pub(crate) struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub _rest: [u8; ATTR_SIZE - 64],
}

#[repr(C)]
pub(crate) struct AttachAttr {
    pub target_fd: u32,
    pub attach_bpf_fd: u32,
    pub attach_type: u32,
    pub attach_flags: u32,
    pub replace_bpf_fd: u32,
    pub _rest: [u8; ATTR_SIZE - 20],
}

#[repr(C)]
pub(crate) struct QueryAttr {
    pub target_fd: u32,
    pub attach_type: u32,
    pub query_flags: u32,
    pub attach_flags: u32,
    pub prog_ids: u64,
    pub prog_cnt: u32,
    pub _rest: [u8; ATTR_SIZE - 28],
}

/// For BPF_PROG_GET_FD_BY_ID and BPF_MAP_GET_FD_BY_ID.
#[repr(C)]
pub(crate) struct GetFdByIdAttr {
    pub id: u32,
    pub next_id: u32,
    pub open_flags: u32,
    pub _rest: [u8; ATTR_SIZE - 12],
}

#[repr(C)]
pub(crate) struct InfoByFdAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
    pub _rest: [u8; ATTR_SIZE - 16],
}

#[repr(C)]
pub(crate) struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; 16],
    pub _rest: [u8; ATTR_SIZE - 44],
}

/// For the BPF_MAP_*_ELEM commands and BPF_MAP_GET_NEXT_KEY.
#[repr(C)]
pub(crate) struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    /// `value`, or `next_key` for BPF_MAP_GET_NEXT_KEY.
    pub value: u64,
    pub flags: u64,
    pub _rest: [u8; ATTR_SIZE - 32],
}

// SAFETY: each is #[repr(C)], ATTR_SIZE bytes (checked by the tests below) and follows
// the kernel's layout of its union member.
unsafe impl Attr for ProgLoadAttr {}
unsafe impl Attr for AttachAttr {}
unsafe impl Attr for QueryAttr {}
unsafe impl Attr for GetFdByIdAttr {}
unsafe impl Attr for InfoByFdAttr {}
unsafe impl Attr for MapCreateAttr {}
unsafe impl Attr for MapElemAttr {}

/// The head of `struct bpf_prog_info`, up to `name` (kernel 4.15+; a kernel with a
/// longer struct fills what we ask for).
#[repr(C)]
#[derive(Default)]
pub(crate) struct ProgInfoHead {
    pub prog_type: u32,
    pub id: u32,
    pub tag: [u8; 8],
    pub jited_prog_len: u32,
    pub xlated_prog_len: u32,
    pub jited_prog_insns: u64,
    pub xlated_prog_insns: u64,
    pub load_time: u64,
    pub created_by_uid: u32,
    pub nr_map_ids: u32,
    pub map_ids: u64,
    pub name: [u8; 16],
}

/// The head of `struct bpf_map_info`, up to `name`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapInfoHead {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; 16],
}

/// Issues one bpf(2) command; an error names the command.
pub(crate) fn bpf<T: Attr>(cmd: Cmd, attr: &mut T) -> Result<i64, BpfError> {
    // SAFETY: attr points to a live, writable, fully initialised struct of ATTR_SIZE
    // bytes laid out as the kernel's union bpf_attr member for `cmd` (the `Attr`
    // contract); callers keep every pointer stored in it alive across the call and make
    // every buffer it names as large as the sizes it states.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            ATTR_SIZE as libc::c_long,
        )
    };
    if r < 0 {
        Err(BpfError::Call {
            cmd,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(r)
    }
}

/// Takes ownership of an fd bpf(2) just returned.
pub(crate) fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// An object name as the kernel stores it: at most 15 bytes of `[A-Za-z0-9_.]` (what
/// the kernel accepts), NUL-padded to 16.
pub(crate) fn name16(name: &str) -> Result<[u8; 16], BpfError> {
    let b = name.as_bytes();
    if b.len() > 15
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.".contains(c))
    {
        return Err(BpfError::Invalid {
            what: format!("BPF object name {name:?}"),
            why: "the kernel takes at most 15 letters, digits, '_' or '.'".into(),
        });
    }
    let mut n = [0u8; 16];
    n[..b.len()].copy_from_slice(b);
    Ok(n)
}

/// A new fd for the program or map (`cmd` says which) with this id.
pub(crate) fn fd_by_id(cmd: Cmd, id: u32) -> Result<OwnedFd, BpfError> {
    let mut attr = GetFdByIdAttr {
        id,
        next_id: 0,
        open_flags: 0,
        _rest: [0; ATTR_SIZE - 12],
    };
    bpf(cmd, &mut attr).map(owned)
}

/// The kernel's info struct of the object behind `fd`, up to `T`'s size.
///
/// # Safety
/// `T` is the head of the kernel's info struct for the kind of object `fd` is, and every
/// pointer in `info` names a buffer as large as the count next to it says.
pub(crate) unsafe fn obj_info<T>(fd: BorrowedFd<'_>, info: &mut T) -> Result<(), BpfError> {
    let mut attr = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<T>() as u32,
        info: info as *mut T as u64,
        _rest: [0; ATTR_SIZE - 16],
    };
    bpf(Cmd::ObjGetInfoByFd, &mut attr).map(drop)
}

/// The name in a kernel's 16-byte name field.
pub(crate) fn name_of(n: &[u8; 16]) -> String {
    let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
    String::from_utf8_lossy(&n[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn attrs_are_the_size_we_pass() {
        assert_eq!(size_of::<ProgLoadAttr>(), ATTR_SIZE);
        assert_eq!(size_of::<AttachAttr>(), ATTR_SIZE);
        assert_eq!(size_of::<QueryAttr>(), ATTR_SIZE);
        assert_eq!(size_of::<GetFdByIdAttr>(), ATTR_SIZE);
        assert_eq!(size_of::<InfoByFdAttr>(), ATTR_SIZE);
        assert_eq!(size_of::<MapCreateAttr>(), ATTR_SIZE);
        assert_eq!(size_of::<MapElemAttr>(), ATTR_SIZE);
        // Field offsets the kernel expects.
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(QueryAttr, prog_ids), 16);
        assert_eq!(offset_of!(QueryAttr, prog_cnt), 24);
        assert_eq!(offset_of!(AttachAttr, replace_bpf_fd), 16);
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(offset_of!(MapElemAttr, flags), 24);
        assert_eq!(offset_of!(ProgInfoHead, nr_map_ids), 52);
        assert_eq!(offset_of!(ProgInfoHead, name), 64);
        assert_eq!(offset_of!(MapInfoHead, name), 24);
    }

    #[test]
    fn names_are_checked_and_padded() {
        let n = name16("berth_devices").unwrap();
        assert_eq!(&n[..13], b"berth_devices");
        assert!(n[13..].iter().all(|&b| b == 0));
        assert_eq!(name_of(&n), "berth_devices");
        assert!(name16("sixteen_bytes_xx").is_err());
        assert!(name16("no-dash").is_err());
        assert!(name16("").is_ok());
    }

    #[test]
    fn commands_show_the_kernels_names() {
        assert_eq!(Cmd::ProgLoad.to_string(), "BPF_PROG_LOAD");
        assert_eq!(Cmd::MapGetNextKey as u32, 4);
        assert_eq!(Cmd::ProgQuery as u32, 16);
    }
}
