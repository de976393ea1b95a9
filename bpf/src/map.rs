//! Maps: made or opened by id, each knowing its key and value sizes, so that every call
//! passes the kernel buffers of exactly the size it reads or writes.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sys::{
    self, bpf, name16, name_of, owned, Cmd, MapCreateAttr, MapElemAttr, MapInfoHead, ATTR_SIZE,
};
use crate::{BpfError, Result};

/// Map types Berth makes (`enum bpf_map_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    Hash = 1,
}

/// A map: its fd, and the sizes of its keys and values.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
    name: String,
}

impl AsFd for Map {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Map {
    /// Makes a map named `name` (at most 15 bytes).
    pub fn create(
        typ: MapType,
        name: &str,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> Result<Map> {
        let mut attr = MapCreateAttr {
            map_type: typ as u32,
            key_size,
            value_size,
            max_entries,
            map_flags: 0,
            inner_map_fd: 0,
            numa_node: 0,
            map_name: name16(name)?,
            _rest: [0; ATTR_SIZE - 44],
        };
        let fd = bpf(Cmd::MapCreate, &mut attr).map(owned)?;
        Ok(Map {
            fd,
            key_size: key_size as usize,
            value_size: value_size as usize,
            name: name.to_string(),
        })
    }

    /// Opens the map with this id (its sizes asked of the kernel).
    pub fn from_id(id: u32) -> Result<Map> {
        let fd = sys::fd_by_id(Cmd::MapGetFdById, id)?;
        let mut head = MapInfoHead::default();
        // SAFETY: fd is a map, MapInfoHead the head of bpf_map_info (no pointers).
        unsafe { sys::obj_info(fd.as_fd(), &mut head)? };
        Ok(Map {
            fd,
            key_size: head.key_size as usize,
            value_size: head.value_size as usize,
            name: name_of(&head.name),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_size(&self) -> usize {
        self.key_size
    }

    pub fn value_size(&self) -> usize {
        self.value_size
    }

    /// Refuses a buffer of another size than the map's (the kernel would read or write
    /// past it).
    fn sized(&self, what: &str, buf: &[u8], want: usize) -> Result<u64> {
        if buf.len() != want {
            return Err(BpfError::Invalid {
                what: format!("{what} for BPF map {}", self.name),
                why: format!("{} bytes, the map's are {want}", buf.len()),
            });
        }
        Ok(buf.as_ptr() as u64)
    }

    fn elem(&self, key: u64, value: u64) -> MapElemAttr {
        MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            _pad: 0,
            key,
            value,
            flags: 0,
            _rest: [0; ATTR_SIZE - 32],
        }
    }

    /// Sets `key` to `value`, made or replaced (BPF_ANY).
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let k = self.sized("key", key, self.key_size)?;
        let v = self.sized("value", value, self.value_size)?;
        bpf(Cmd::MapUpdateElem, &mut self.elem(k, v)).map(drop)
    }

    /// Deletes `key`; `Ok(false)` when it was not there.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        let k = self.sized("key", key, self.key_size)?;
        absent_is_false(bpf(Cmd::MapDeleteElem, &mut self.elem(k, 0)))
    }

    /// Reads `key`'s value into `value`; `Ok(false)` when it is not there.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool> {
        let k = self.sized("key", key, self.key_size)?;
        let v = self.sized("value", value, self.value_size)?;
        absent_is_false(bpf(Cmd::MapLookupElem, &mut self.elem(k, v)))
    }

    /// Writes the key after `key` (the first key for `None`) into `next`; `Ok(false)`
    /// after the last.
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool> {
        let k = match key {
            Some(k) => self.sized("key", k, self.key_size)?,
            None => 0,
        };
        let n = self.sized("next key", next, self.key_size)?;
        absent_is_false(bpf(Cmd::MapGetNextKey, &mut self.elem(k, n)))
    }

    /// Every (key, value) of the map. Entries deleted during the walk are left out.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; self.key_size];
            if !self.next_key(key.as_deref(), &mut next)? {
                return Ok(out);
            }
            let mut value = vec![0u8; self.value_size];
            // Deleted meanwhile: go on from it anyway.
            if self.lookup(&next, &mut value)? {
                out.push((next.clone(), value));
            }
            key = Some(next);
        }
    }
}

fn absent_is_false(r: Result<i64>) -> Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prog;

    #[test]
    fn a_hash_map_holds_updates_deletes_and_walks() {
        let m = Map::create(MapType::Hash, "berth_test", 8, 4, 16).unwrap();
        assert_eq!((m.key_size(), m.value_size()), (8, 4));
        assert!(m.entries().unwrap().is_empty());
        m.update(&[1; 8], &7u32.to_ne_bytes()).unwrap();
        m.update(&[2; 8], &8u32.to_ne_bytes()).unwrap();
        m.update(&[1; 8], &9u32.to_ne_bytes()).unwrap(); // replaced
        let mut v = [0u8; 4];
        assert!(m.lookup(&[1; 8], &mut v).unwrap());
        assert_eq!(u32::from_ne_bytes(v), 9);
        assert!(!m.lookup(&[3; 8], &mut v).unwrap());
        let mut all = m.entries().unwrap();
        all.sort();
        assert_eq!(
            all,
            vec![
                (vec![1; 8], 9u32.to_ne_bytes().to_vec()),
                (vec![2; 8], 8u32.to_ne_bytes().to_vec())
            ]
        );
        assert!(m.delete(&[1; 8]).unwrap());
        assert!(!m.delete(&[1; 8]).unwrap());
        assert_eq!(m.entries().unwrap().len(), 1);
    }

    #[test]
    fn buffers_of_the_wrong_size_are_refused() {
        let m = Map::create(MapType::Hash, "berth_test", 8, 4, 4).unwrap();
        let e = m.update(&[1; 6], &[0; 4]).unwrap_err();
        assert!(matches!(e, BpfError::Invalid { .. }), "{e}");
        let mut small = [0u8; 2];
        assert!(m.lookup(&[1; 8], &mut small).is_err());
        assert!(m.next_key(None, &mut small).is_err());
    }

    #[test]
    fn a_map_a_program_uses_is_found_from_the_program() {
        use crate::asm::{Asm, Insn, Reg};
        let m = Map::create(MapType::Hash, "berth_test", 8, 4, 4).unwrap();
        m.update(&[5; 8], &1u32.to_ne_bytes()).unwrap();
        // r1 = map; r2 = fp - 8 (a zeroed key); r0 = lookup; return 0.
        let mut a = Asm::new();
        a.push(Insn::mov64(Reg::R3, 0));
        a.push(Insn::stx_w(Reg::R10, -8, Reg::R3));
        a.push(Insn::stx_w(Reg::R10, -4, Reg::R3));
        a.extend(Insn::ld_map_fd(Reg::R1, m.as_fd()));
        a.push(Insn::mov64_reg(Reg::R2, Reg::R10));
        a.push(Insn::add64(Reg::R2, -8));
        a.push(Insn::call(crate::asm::helper::MAP_LOOKUP_ELEM));
        a.push(Insn::mov64(Reg::R0, 0));
        a.push(Insn::exit());
        let p = prog::load(
            prog::ProgType::SchedCls,
            "berth_test",
            c"GPL",
            &a.finish().unwrap(),
        )
        .unwrap();
        let info = prog::info(p.as_fd()).unwrap();
        assert_eq!(info.map_ids.len(), 1);
        let again = Map::from_id(info.map_ids[0]).unwrap();
        assert_eq!(again.name(), "berth_test");
        assert_eq!((again.key_size(), again.value_size()), (8, 4));
        let mut v = [0u8; 4];
        assert!(again.lookup(&[5; 8], &mut v).unwrap());
        assert_eq!(u32::from_ne_bytes(v), 1);
    }
}
