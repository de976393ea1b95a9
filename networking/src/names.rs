//! Kernel object names. Interface names are at most 15 bytes (IFNAMSIZ - 1) and unique per
//! host, so they are derived from a stable hash of who owns them; each contains "berth" so
//! a leftover is easy to find (`ip link | grep berth`).

use std::path::Path;

/// FNV-1a, 64 bits: stable across Rust versions and builds (std's hasher is not), so a
/// name computed by one run is found again by the next.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Stable 64-bit hash of a network's identity, also used to pick its preferred subnet.
pub(crate) fn network_hash(root: &Path, network: &str) -> u64 {
    fnv1a(&[root.as_os_str().as_encoded_bytes(), network.as_bytes()])
}

/// The bridge of `network` under state root `root`: `berthbr` + 8 hex digits = 15 bytes.
pub(crate) fn bridge_name(root: &Path, network: &str) -> String {
    format!("berthbr{:08x}", network_hash(root, network) as u32)
}

/// A stable MAC address for the bridge of `network`: locally administered, unicast.
pub(crate) fn bridge_mac(root: &Path, network: &str) -> [u8; 6] {
    let h = network_hash(root, network).to_be_bytes();
    [0x02, h[3], h[4], h[5], h[6], h[7]]
}

/// The host end of the veth pair joining namespace `netns` to `network`:
/// `berthv` + 9 hex digits = 15 bytes.
pub(crate) fn host_veth_name(root: &Path, network: &str, netns: &str) -> String {
    let h = fnv1a(&[
        root.as_os_str().as_encoded_bytes(),
        network.as_bytes(),
        netns.as_bytes(),
    ]);
    format!("berthv{:09x}", h & 0xf_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_say_berth() {
        let root = Path::new("/var/lib/berth");
        let b = bridge_name(root, "a-very-long-project-name_with-a-long-network-name");
        let v = host_veth_name(root, "net", "project-service-123");
        for n in [&b, &v] {
            assert!(n.len() <= 15, "{n} is {} bytes", n.len());
            assert!(n.contains("berth"));
        }
    }

    #[test]
    fn bridge_mac_is_local_unicast_and_stable() {
        let r = Path::new("/var/lib/berth");
        let m = bridge_mac(r, "p_default");
        assert_eq!(m[0] & 0x03, 0x02, "locally administered, not multicast");
        assert_eq!(m, bridge_mac(r, "p_default"));
        assert_ne!(m, bridge_mac(r, "p_other"));
    }

    #[test]
    fn names_are_stable_and_distinct() {
        let r1 = Path::new("/var/lib/berth");
        let r2 = Path::new("/tmp/other-root");
        assert_eq!(bridge_name(r1, "p_default"), bridge_name(r1, "p_default"));
        assert_ne!(bridge_name(r1, "p_default"), bridge_name(r2, "p_default"));
        assert_ne!(bridge_name(r1, "p_default"), bridge_name(r1, "p_back"));
        assert_ne!(
            host_veth_name(r1, "n", "p-web-1"),
            host_veth_name(r1, "n", "p-web-2")
        );
    }
}
