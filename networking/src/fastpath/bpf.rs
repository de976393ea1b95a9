//! The fast path's eBPF side: its hash map, its program (22 instructions, assembled with
//! berth-bpf's assembler: no clang, no compiled object), and finding both again by the
//! program's id. The bpf(2) calls themselves are berth-bpf's.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use berth_bpf::asm::{helper, Asm, Insn, Reg};
use berth_bpf::map::{Map, MapType};
use berth_bpf::prog::{self, ProgType};
use berth_bpf::BpfError;

use super::FastPathError;
use crate::netlink::Link;

/// The map's key: a destination MAC address, padded to 8 bytes with zeros.
pub(crate) type MacKey = [u8; 8];
/// The map's value: the ifindex of the member's host-side veth.
type Ifindex = u32;

pub(crate) fn mac_key(mac: [u8; 6]) -> MacKey {
    let mut k = [0u8; 8];
    k[..6].copy_from_slice(&mac);
    k
}

/// The name the program and its map are made with (at most 15 bytes), by which the
/// program is known again.
pub(crate) const PROGRAM_NAME: &str = "berth_fastpath";

/// Most members one network's map holds (a full map only means later members' traffic
/// goes through the bridge).
const MAX_MEMBERS: u32 = 4096;

/// `offsetof(struct __sk_buff, data)` and `data_end`.
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;
const TC_ACT_OK: i32 = 0;

/// A new hash map: MAC (8-byte key) -> ifindex of the member's host-side veth.
pub(crate) fn create_map() -> Result<Map, BpfError> {
    let key = std::mem::size_of::<MacKey>() as u32;
    let value = std::mem::size_of::<Ifindex>() as u32;
    Map::create(MapType::Hash, PROGRAM_NAME, key, value, MAX_MEMBERS)
}

/// Sets `key` to `ifindex` (made or replaced).
pub(crate) fn map_set(map: &Map, key: &MacKey, ifindex: Ifindex) -> Result<(), BpfError> {
    map.update(key, &ifindex.to_ne_bytes())
}

/// Deletes `key`; `Ok(false)` when it was not there.
pub(crate) fn map_delete(map: &Map, key: &MacKey) -> Result<bool, BpfError> {
    map.delete(key)
}

/// Every entry of the map: (key, ifindex).
pub(crate) fn map_entries(map: &Map) -> Result<Vec<(MacKey, Ifindex)>, BpfError> {
    // The sizes are ours (checked when the map was found), so every entry converts.
    Ok(map
        .entries()?
        .into_iter()
        .filter_map(|(k, v)| {
            Some((
                k.try_into().ok()?,
                Ifindex::from_ne_bytes(v.try_into().ok()?),
            ))
        })
        .collect())
}

/// The program, for `map`. At a member's host-side veth ingress (the frame's data starts
/// at its Ethernet header): look the destination MAC up; a member's MAC →
/// `bpf_redirect_peer` to that member's veth (the frame enters the member's `ethN`
/// directly, in its namespace); anything else → `TC_ACT_OK` (on to the bridge).
fn program(map: BorrowedFd<'_>) -> Result<Vec<Insn>, BpfError> {
    use Reg::*;
    let mut a = Asm::new();
    let pass = a.label();
    a.push(Insn::ldx_w(R2, R1, SKB_DATA));
    a.push(Insn::ldx_w(R3, R1, SKB_DATA_END));
    a.push(Insn::mov64_reg(R4, R2));
    a.push(Insn::add64(R4, 6));
    a.jgt_reg(R4, R3, pass); // shorter than a MAC
                             // The key on the stack at fp-8: the 6-byte MAC, then two zero bytes.
    a.push(Insn::ldx_w(R5, R2, 0));
    a.push(Insn::stx_w(R10, -8, R5));
    a.push(Insn::ldx_h(R5, R2, 4));
    a.push(Insn::stx_h(R10, -4, R5));
    a.push(Insn::st_h(R10, -2, 0));
    a.extend(Insn::ld_map_fd(R1, map));
    a.push(Insn::mov64_reg(R2, R10));
    a.push(Insn::add64(R2, -8));
    a.push(Insn::call(helper::MAP_LOOKUP_ELEM));
    a.jeq(R0, 0, pass); // not a member
    a.push(Insn::ldx_w(R1, R0, 0));
    a.push(Insn::mov64(R2, 0));
    a.push(Insn::call(helper::REDIRECT_PEER));
    a.push(Insn::exit());
    a.bind(pass);
    a.push(Insn::mov64(R0, TC_ACT_OK));
    a.push(Insn::exit());
    a.finish().map_err(|e| BpfError::Invalid {
        what: "fast path program".into(),
        why: e.to_string(),
    })
}

/// Loads the program for `map` (a `sched_cls` program, run by cls_bpf in direct-action
/// mode). A program the kernel refuses comes back with the verifier's log.
pub(crate) fn load_program(map: &Map) -> Result<OwnedFd, BpfError> {
    let insns = program(map.as_fd())?;
    prog::load(ProgType::SchedCls, PROGRAM_NAME, c"Dual MIT/GPL", &insns)
}

/// The map the loaded program with id `prog_id` (in `bridge`'s block) uses, if the
/// program is Berth's (by its name) and its map is shaped like Berth's.
pub(crate) fn map_of_program(bridge: &Link, prog_id: u32) -> Result<Map, FastPathError> {
    let err = |op| super::bpf_err(bridge, op);
    let p = prog::fd_by_id(prog_id).map_err(err("open the block's program"))?;
    let info = prog::info(p.as_fd()).map_err(err("read the block's program"))?;
    let foreign = |why: String| FastPathError::ForeignProgram {
        bridge: bridge.name.clone(),
        prog: prog_id,
        why,
    };
    if info.name != PROGRAM_NAME {
        return Err(foreign(format!("is named {:?}", info.name)));
    }
    let [map_id] = info.map_ids[..] else {
        return Err(foreign(format!("uses {} maps", info.map_ids.len())));
    };
    let map = Map::from_id(map_id).map_err(err("open the map of the block's program"))?;
    let sizes = (map.key_size(), map.value_size());
    if sizes
        != (
            std::mem::size_of::<MacKey>(),
            std::mem::size_of::<Ifindex>(),
        )
    {
        return Err(foreign(format!(
            "uses a map of {}-byte keys and {}-byte values",
            sizes.0, sizes.1
        )));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_program_is_the_listing_it_always_was() {
        // The hand-encoded listing the fast path shipped with (code, regs, off, imm),
        // the map fd at 10: the assembler must produce it to the byte.
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = f.as_raw_fd();
        let want: Vec<(u8, u8, i16, i32)> = vec![
            /* 0 */ (0x61, 0x12, 76, 0),
            /* 1 */ (0x61, 0x13, 80, 0),
            /* 2 */ (0xbf, 0x24, 0, 0),
            /* 3 */ (0x07, 0x04, 0, 6),
            /* 4 */ (0x2d, 0x34, 15, 0),
            /* 5 */ (0x61, 0x25, 0, 0),
            /* 6 */ (0x63, 0x5a, -8, 0),
            /* 7 */ (0x69, 0x25, 4, 0),
            /* 8 */ (0x6b, 0x5a, -4, 0),
            /* 9 */ (0x6a, 0x0a, -2, 0),
            /* 10 */ (0x18, 0x11, 0, fd),
            /* 11 */ (0x00, 0x00, 0, 0),
            /* 12 */ (0xbf, 0xa2, 0, 0),
            /* 13 */ (0x07, 0x02, 0, -8),
            /* 14 */ (0x85, 0x00, 0, 1),
            /* 15 */ (0x15, 0x00, 4, 0),
            /* 16 */ (0x61, 0x01, 0, 0),
            /* 17 */ (0xb7, 0x02, 0, 0),
            /* 18 */ (0x85, 0x00, 0, 155),
            /* 19 */ (0x95, 0x00, 0, 0),
            /* 20 */ (0xb7, 0x00, 0, 0),
            /* 21 */ (0x95, 0x00, 0, 0),
        ];
        let got: Vec<_> = program(f.as_fd())
            .unwrap()
            .iter()
            .map(|i| (i.code, i.regs, i.off, i.imm))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_program_loads_and_its_map_is_found_from_it() {
        let map = create_map().unwrap();
        let p = load_program(&map).unwrap();
        let id = prog::info(p.as_fd()).unwrap().id;
        let bridge = Link {
            index: 0,
            name: "berthbr-test".into(),
            controller: None,
            up: false,
            gso_ipv4_max_size: None,
            mac: None,
        };
        map_set(&map, &mac_key([2, 0, 0, 0, 0, 1]), 7).unwrap();
        let again = map_of_program(&bridge, id).unwrap();
        assert_eq!(
            map_entries(&again).unwrap(),
            vec![(mac_key([2, 0, 0, 0, 0, 1]), 7)]
        );
        assert!(map_delete(&again, &mac_key([2, 0, 0, 0, 0, 1])).unwrap());
        assert!(!map_delete(&map, &mac_key([2, 0, 0, 0, 0, 1])).unwrap());
    }
}
