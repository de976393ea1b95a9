//! Capability sets: the spec's names to kernel bits, Docker's default set, and the
//! rule "grant what the host has" (root's bounding set here lacks CAP_SYS_RESOURCE).

use std::collections::HashSet;
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

/// Docker's default capability set, for when the orchestrator asks for defaults.
pub const DOCKER_DEFAULTS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// The five sets filled with Docker's defaults (ambient left empty, as Docker does).
pub fn docker_default_set() -> LinuxCapabilities {
    let set: Capabilities = DOCKER_DEFAULTS.iter().copied().collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set));
    c.set_inheritable(None);
    c.set_ambient(None);
    c
}

/// The kernel's capability for a spec name (`Capability` displays as `SYS_ADMIN`).
pub fn to_kernel(c: &Capability) -> Option<caps::Capability> {
    caps::Capability::from_str(&format!("CAP_{c}")).ok()
}

/// Kernel bit mask of a set, keeping only capabilities in `allowed` (the host's
/// bounding set); the names left out are returned so the caller can warn.
pub fn mask(set: Option<&Capabilities>, allowed: u64) -> (u64, Vec<String>) {
    let mut bits = 0u64;
    let mut dropped = vec![];
    for c in set.into_iter().flatten() {
        match to_kernel(c) {
            Some(k) if allowed & k.bitmask() != 0 => bits |= k.bitmask(),
            Some(k) => dropped.push(k.to_string()),
            None => dropped.push(format!("CAP_{c}")),
        }
    }
    dropped.sort();
    dropped.dedup();
    (bits, dropped)
}

/// The calling process's bounding set as a bit mask.
pub fn host_bounding() -> u64 {
    caps::read(None, caps::CapSet::Bounding)
        .unwrap_or_default()
        .iter()
        .fold(0, |m, c| m | c.bitmask())
}

/// Every capability the kernel knows (0..=cap_last_cap).
pub fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The five masks a process will run with.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CapMasks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// Computes the masks from the spec, limited to the host's bounding set.
pub fn masks(c: Option<&LinuxCapabilities>, allowed: u64) -> (CapMasks, Vec<String>) {
    let mut warnings = HashSet::new();
    let mut one = |s: &Option<Capabilities>| {
        let (m, d) = mask(s.as_ref(), allowed);
        warnings.extend(d);
        m
    };
    let m = match c {
        None => CapMasks::default(),
        Some(c) => CapMasks {
            bounding: one(c.bounding()),
            effective: one(c.effective()),
            permitted: one(c.permitted()),
            inheritable: one(c.inheritable()),
            ambient: one(c.ambient()),
        },
    };
    let mut w: Vec<String> = warnings.into_iter().collect();
    w.sort();
    (m, w)
}

/// capset(2) with all three sets in one call, so no ordering dance between them.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const V3: u32 = 0x2008_0522;
    let hdr = Header {
        version: V3,
        pid: 0,
    };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs as capset(2) v3 requires.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_kernel_bits() {
        assert_eq!(
            to_kernel(&Capability::SysAdmin),
            Some(caps::Capability::CAP_SYS_ADMIN)
        );
        assert_eq!(
            to_kernel(&Capability::NetBindService),
            Some(caps::Capability::CAP_NET_BIND_SERVICE)
        );
    }

    #[test]
    fn capabilities_the_host_lacks_are_dropped_and_named() {
        let set: Capabilities = [Capability::SysResource, Capability::Chown]
            .into_iter()
            .collect();
        let allowed = caps::Capability::CAP_CHOWN.bitmask();
        let (bits, dropped) = mask(Some(&set), allowed);
        assert_eq!(bits, caps::Capability::CAP_CHOWN.bitmask());
        assert_eq!(dropped, vec!["CAP_SYS_RESOURCE".to_string()]);
    }

    #[test]
    fn docker_defaults_have_no_sys_admin() {
        let d = docker_default_set();
        assert!(!d
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        assert!(d.effective().as_ref().unwrap().contains(&Capability::Mknod));
        assert_eq!(d.bounding().as_ref().unwrap().len(), 14);
    }
}
