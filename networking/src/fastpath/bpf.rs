//! The fast path's eBPF side: the bpf(2) calls it needs (a hash map, a program, finding
//! both again by id) and its program, hand-assembled (22 instructions; no clang, no
//! compiled object). The only code of the crate that issues bpf(2).
//!
//! Each `union bpf_attr` variant is a zero-padded 128-byte struct: the kernel reads what
//! it knows and requires the rest to be zero.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// From include/uapi/linux/bpf.h.
const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_MAP_GET_FD_BY_ID: u32 = 14;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
/// Helper ids (`enum bpf_func_id`).
const FN_MAP_LOOKUP_ELEM: i32 = 1;
const FN_REDIRECT_PEER: i32 = 155;

const ATTR_SIZE: usize = 128;

/// The map's key: a destination MAC address, padded to 8 bytes with zeros.
pub(crate) type MacKey = [u8; 8];

pub(crate) fn mac_key(mac: [u8; 6]) -> MacKey {
    let mut k = [0u8; 8];
    k[..6].copy_from_slice(&mac);
    k
}

/// The name the program is loaded with (at most 15 bytes), by which it is known again.
pub(crate) const PROGRAM_NAME: &str = "berth_fastpath";

/// Most members one network's map holds (a full map only means later members' traffic
/// goes through the bridge).
const MAX_MEMBERS: u32 = 4096;

#[repr(C)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    _rest: [u8; ATTR_SIZE - 44],
}

#[repr(C)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    /// `value`, or `next_key` for BPF_MAP_GET_NEXT_KEY.
    value: u64,
    flags: u64,
    _rest: [u8; ATTR_SIZE - 32],
}

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
struct GetFdById {
    id: u32,
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

/// The head of `struct bpf_prog_info`, up to `name`.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// Issues one bpf(2) command; `T` is one of the 128-byte attr structs above.
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

fn name16(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    let b = name.as_bytes();
    let len = b.len().min(15);
    n[..len].copy_from_slice(&b[..len]);
    n
}

/// A new hash map: MAC (8-byte key) -> ifindex of the member's host-side veth.
pub(crate) fn create_map() -> io::Result<OwnedFd> {
    let mut attr = MapCreate {
        map_type: BPF_MAP_TYPE_HASH,
        key_size: 8,
        value_size: 4,
        max_entries: MAX_MEMBERS,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: name16("berth_fastpath"),
        _rest: [0; ATTR_SIZE - 44],
    };
    bpf(BPF_MAP_CREATE, &mut attr).map(owned)
}

fn elem(map: BorrowedFd<'_>, key: &MacKey, value: u64) -> MapElem {
    MapElem {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: key.as_ptr() as u64,
        value,
        flags: 0,
        _rest: [0; ATTR_SIZE - 32],
    }
}

/// Sets `key` to `ifindex` (made or replaced).
pub(crate) fn map_set(map: BorrowedFd<'_>, key: &MacKey, ifindex: u32) -> io::Result<()> {
    let v = ifindex;
    let mut attr = elem(map, key, &v as *const u32 as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
}

/// Deletes `key`; `Ok(false)` when it was not there.
pub(crate) fn map_delete(map: BorrowedFd<'_>, key: &MacKey) -> io::Result<bool> {
    let mut attr = elem(map, key, 0);
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every entry of the map: (key, ifindex).
pub(crate) fn map_entries(map: BorrowedFd<'_>) -> io::Result<Vec<(MacKey, u32)>> {
    let mut out = Vec::new();
    let mut key: Option<MacKey> = None;
    loop {
        let mut next: MacKey = [0; 8];
        // A missing key (first call) asks for the first key.
        let cur = key.unwrap_or([0xff; 8]);
        let mut attr = elem(map, &cur, next.as_mut_ptr() as u64);
        if key.is_none() {
            attr.key = 0;
        }
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e),
        }
        let mut value = 0u32;
        let mut attr = elem(map, &next, &mut value as *mut u32 as u64);
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => out.push((next, value)),
            // Deleted meanwhile: go on from it anyway.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        key = Some(next);
    }
}

/// One instruction, laid out as `struct bpf_insn`.
#[derive(Clone, Copy)]
#[repr(C)]
struct Insn {
    code: u8,
    /// dst register in the low nibble, src register in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes (include/uapi/linux/bpf{,_common}.h).
const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const LDX_H: u8 = 0x69; // dst = *(u16 *)(src + off)
const STX_W: u8 = 0x63; // *(u32 *)(dst + off) = src
const STX_H: u8 = 0x6b; // *(u16 *)(dst + off) = src
const ST_H: u8 = 0x6a; // *(u16 *)(dst + off) = imm
const ADD64_K: u8 = 0x07; // dst += imm
const MOV64_X: u8 = 0xbf; // dst = src
const MOV64_K: u8 = 0xb7; // dst = imm
const JGT_X: u8 = 0x2d; // if dst > src goto +off
const JEQ_K: u8 = 0x15; // if dst == imm goto +off
const LD_IMM64: u8 = 0x18; // dst = imm64 (two instructions)
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
/// `BPF_PSEUDO_MAP_FD`: the imm of a LD_IMM64 is a map fd, turned into the map.
const PSEUDO_MAP_FD: u8 = 1;
/// `offsetof(struct __sk_buff, data)` and `data_end`.
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;
const TC_ACT_OK: i32 = 0;

/// The program, for map `map_fd`. At a member's host-side veth ingress (the frame's data
/// starts at its Ethernet header): look the destination MAC up; a member's MAC →
/// `bpf_redirect_peer` to that member's veth (the frame enters the member's `ethN`
/// directly, in its namespace); anything else → `TC_ACT_OK` (on to the bridge).
fn program(map_fd: i32) -> Vec<Insn> {
    let (r0, r1, r2, r3, r4, r5, r10) = (0, 1, 2, 3, 4, 5, 10);
    vec![
        /* 0 */ insn(LDX_W, r2, r1, SKB_DATA, 0),
        /* 1 */ insn(LDX_W, r3, r1, SKB_DATA_END, 0),
        /* 2 */ insn(MOV64_X, r4, r2, 0, 0),
        /* 3 */ insn(ADD64_K, r4, 0, 0, 6),
        /* 4 */ insn(JGT_X, r4, r3, 15, 0), // shorter than a MAC: pass (20)
        /* 5 */ insn(LDX_W, r5, r2, 0, 0),
        /* 6 */ insn(STX_W, r10, r5, -8, 0),
        /* 7 */ insn(LDX_H, r5, r2, 4, 0),
        /* 8 */ insn(STX_H, r10, r5, -4, 0),
        /* 9 */ insn(ST_H, r10, 0, -2, 0),
        /* 10 */ insn(LD_IMM64, r1, PSEUDO_MAP_FD, 0, map_fd),
        /* 11 */ insn(0, 0, 0, 0, 0),
        /* 12 */ insn(MOV64_X, r2, r10, 0, 0),
        /* 13 */ insn(ADD64_K, r2, 0, 0, -8),
        /* 14 */ insn(CALL, 0, 0, 0, FN_MAP_LOOKUP_ELEM),
        /* 15 */ insn(JEQ_K, r0, 0, 4, 0), // not a member: pass (20)
        /* 16 */ insn(LDX_W, r1, r0, 0, 0),
        /* 17 */ insn(MOV64_K, r2, 0, 0, 0),
        /* 18 */ insn(CALL, 0, 0, 0, FN_REDIRECT_PEER),
        /* 19 */ insn(EXIT, 0, 0, 0, 0),
        /* 20 */ insn(MOV64_K, r0, 0, 0, TC_ACT_OK),
        /* 21 */ insn(EXIT, 0, 0, 0, 0),
    ]
}

/// Loads the program for `map` (a `sched_cls` program, run by cls_bpf in direct-action
/// mode). On failure loads it again with the verifier's log, so the error says why.
pub(crate) fn load_program(map: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let insns = program(map.as_raw_fd());
    let license = c"Dual MIT/GPL";
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_SCHED_CLS,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name16(PROGRAM_NAME),
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
    Err(io::Error::new(
        first.kind(),
        format!(
            "{first}; the verifier said: {}",
            String::from_utf8_lossy(&log[..end]).trim()
        ),
    ))
}

/// The map the loaded program with id `prog_id` uses (its only one), if the program is
/// Berth's (by its name).
pub(crate) fn map_of_program(prog_id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdById {
        id: prog_id,
        next_id: 0,
        open_flags: 0,
        _rest: [0; ATTR_SIZE - 12],
    };
    let prog = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned)?;
    let mut map_id = 0u32;
    let mut info = ProgInfoHead {
        nr_map_ids: 1,
        map_ids: &mut map_id as *mut u32 as u64,
        ..Default::default()
    };
    let mut attr = InfoByFd {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoHead>() as u32,
        info: &mut info as *mut ProgInfoHead as u64,
        _rest: [0; ATTR_SIZE - 16],
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    if info.name != name16(PROGRAM_NAME) {
        let end = info.name.iter().position(|&b| b == 0).unwrap_or(16);
        return Err(io::Error::other(format!(
            "BPF program {prog_id} is not Berth's (it is named {:?})",
            String::from_utf8_lossy(&info.name[..end])
        )));
    }
    if info.nr_map_ids != 1 || map_id == 0 {
        return Err(io::Error::other(format!(
            "BPF program {prog_id} uses {} maps, not Berth's one",
            info.nr_map_ids
        )));
    }
    let mut attr = GetFdById {
        id: map_id,
        next_id: 0,
        open_flags: 0,
        _rest: [0; ATTR_SIZE - 12],
    };
    bpf(BPF_MAP_GET_FD_BY_ID, &mut attr).map(owned)
}
