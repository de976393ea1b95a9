//! The L2 fast path between members of one network: unicast frames from one member to
//! another skip the bridge.
//!
//! Why: a frame crossing a Linux bridge pays for a second veth hop and the bridge and,
//! on hosts where `br_netfilter` is loaded with `net.bridge.bridge-nf-call-iptables=1`
//! (every host that runs Docker), for a walk through every IPv4 netfilter hook of the
//! host. That sysctl is the host's, and the kernel ORs it with the bridge's own option,
//! so Berth cannot turn the walk off for its bridges; it can keep member-to-member frames
//! off the bridge.
//!
//! How: every member's host-side veth gets a `clsact` qdisc whose ingress runs the
//! filters of one tc block shared by the whole network (block index = the bridge's
//! ifindex, unique on the host while the bridge lives). The block holds one cls_bpf
//! filter: a 22-instruction eBPF program ([`bpf`]) that looks the frame's destination
//! MAC up in the network's hash map (member's `ethN` MAC → ifindex of its host-side
//! veth) and, for a member, hands the frame straight to that member's `ethN` with
//! `bpf_redirect_peer` (no second veth hop, no backlog queue, no bridge, no host
//! netfilter: what Cilium does between pods). Everything else (broadcast, multicast,
//! ARP requests, unknown MACs, frames to the gateway, i.e. to the host, DNS, published
//! ports, other networks and the world) is not in the map and goes on to the bridge and
//! the firewall as before. The fast path only ever joins two members of the same
//! network, which the firewall accepts anyway (its first forward rule), so isolation,
//! `internal` and published ports are unchanged. What changes: the bridge (its
//! counters, `tcpdump -i berthbr…`, the bridge family of nftables) no longer sees
//! member-to-member unicast; it shows on the members' veths.
//!
//! Lifecycle: the map and the program are made with the network's first member (found
//! again by later calls through the filter: filter → program id → map id), `join` adds
//! a member's entry after its veth pair is made (idempotent), `leave` removes it before
//! the veth is deleted. A veth's qdisc goes with the veth, the kernel frees a block with
//! its last qdisc, the filter with the block, the program with the filter and the map
//! with the program: removing a network leaves nothing. An entry whose veth vanished
//! without `leave` (a crash, a namespace destroyed under it) stays in a live map,
//! harmless (its MAC was the dead veth's, random, and its target is gone) but a
//! leftover: `leave` for a member whose veth is gone removes every entry whose ifindex
//! is not a port of the bridge.
//!
//! Off with `NetworkSpec::fast_path = Some(false)`, or for networks that do not say, with
//! `BERTH_NET_FAST_PATH=0` in the environment of the process that makes the network.

pub(crate) mod bpf;

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use berth_bpf::map::Map;
use berth_bpf::BpfError;

use crate::netlink::{Link, Netlink, NetlinkError};

/// The priority and handle of the fast path's filter in its block.
const PRIO: u16 = 1;
const HANDLE: u32 = 1;

/// Whether networks that do not say get the fast path: on, unless `BERTH_NET_FAST_PATH`
/// is `0`, `false`, `off` or `no`.
pub(crate) fn default_enabled() -> bool {
    match std::env::var("BERTH_NET_FAST_PATH") {
        Ok(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "off" | "no"
        ),
        Err(_) => true,
    }
}

/// What can go wrong: a netlink request, or a bpf(2) call.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("fast path of bridge {bridge}: tc block {block} holds filters that are not Berth's; its members stay on the bridge")]
    Foreign { bridge: String, block: u32 },
    #[error("fast path of bridge {bridge}: BPF program {prog} of its tc block is not Berth's: it {why}; its members stay on the bridge")]
    ForeignProgram {
        bridge: String,
        prog: u32,
        why: String,
    },
    #[error("fast path of bridge {bridge}: {op}: {source}")]
    Bpf {
        bridge: String,
        op: &'static str,
        #[source]
        source: BpfError,
    },
}

fn bpf_err(bridge: &Link, op: &'static str) -> impl FnOnce(BpfError) -> FastPathError {
    let bridge = bridge.name.clone();
    move |source| FastPathError::Bpf { bridge, op, source }
}

/// The map of `bridge`'s network, found through its block's filter; `None` when the
/// block has no filter (no member joined yet). A block holding anything but Berth's one
/// filter is not Berth's (another tool chose the same block index): an error.
fn find_map(nl: &mut Netlink, bridge: &Link) -> Result<Option<Map>, FastPathError> {
    let filters = nl.block_filters(bridge.index)?;
    let prog = match filters.as_slice() {
        [] => return Ok(None),
        [f] if f.prio == PRIO && f.handle == HANDLE && f.bpf_id.is_some() => f.bpf_id,
        _ => None,
    };
    let foreign = || FastPathError::Foreign {
        bridge: bridge.name.clone(),
        block: bridge.index,
    };
    let prog = prog.ok_or_else(foreign)?;
    bpf::map_of_program(bridge, prog).map(Some)
}

/// The maps of the networks this process put members on, by block (the bridge's
/// ifindex). Finding a map goes through a dump of the block's filters, for which the
/// kernel takes the host-wide rtnl lock: once per network, not once per member, when a
/// stack's containers attach in parallel. Forgotten when this process takes a member
/// off (the block may go with its last member). A block another process emptied
/// meanwhile leaves the entry stale: members then join a map no filter reads and their
/// traffic goes through the bridge, as without the fast path.
#[derive(Default)]
pub(crate) struct Maps(Mutex<HashMap<u32, Arc<Map>>>);

impl Maps {
    fn get(&self, block: u32) -> Option<Arc<Map>> {
        self.0.lock().expect("maps lock").get(&block).cloned()
    }

    fn put(&self, block: u32, map: Map) -> Arc<Map> {
        let map = Arc::new(map);
        self.0
            .lock()
            .expect("maps lock")
            .insert(block, Arc::clone(&map));
        map
    }

    /// Forgets the map of the network whose bridge is `bridge_name`.
    pub(crate) fn forget(&self, bridge_name: &str) {
        if let Some(block) = Netlink::index_of(bridge_name) {
            self.0.lock().expect("maps lock").remove(&block);
        }
    }
}

/// Puts member `host_veth` (the index of a port of `bridge`, the host end of the pair
/// whose inner end has MAC `member_mac`) on its network's fast path.
pub(crate) fn join(
    nl: &mut Netlink,
    bridge: &Link,
    host_veth: u32,
    member_mac: [u8; 6],
    maps: &Maps,
) -> Result<(), FastPathError> {
    // The qdisc first: the block exists from its first qdisc on, and a filter can only be
    // added to an existing block.
    nl.add_clsact_with_ingress_block(host_veth, bridge.index)?;
    if let Some(map) = maps.get(bridge.index) {
        return bpf::map_set(&map, &bpf::mac_key(member_mac), host_veth)
            .map_err(bpf_err(bridge, "add the member to the map"));
    }
    let found = match find_map(nl, bridge) {
        Ok(found) => found,
        Err(e) => {
            // Not our block (or not usable): off it again, so no filter of someone
            // else's runs on our member's traffic.
            let _ = nl.delete_clsact(host_veth);
            return Err(e);
        }
    };
    let map = match found {
        Some(map) => map,
        None => {
            let map = bpf::create_map().map_err(bpf_err(bridge, "create the map"))?;
            let prog = bpf::load_program(&map).map_err(bpf_err(bridge, "load the program"))?;
            // The filter holds the program, which holds the map: both live as long as
            // the block has the filter, not as long as these fds.
            match nl.add_bpf_filter(bridge.index, PRIO, HANDLE, prog.as_fd(), bpf::PROGRAM_NAME) {
                Ok(()) => map,
                // Members attach in parallel: another one's first join made the filter
                // between our look and our add. Theirs is the network's map.
                Err(e) => match find_map(nl, bridge) {
                    Ok(Some(theirs)) => theirs,
                    _ => return Err(e.into()),
                },
            }
        }
    };
    let map = maps.put(bridge.index, map);
    bpf::map_set(&map, &bpf::mac_key(member_mac), host_veth)
        .map_err(bpf_err(bridge, "add the member to the map"))
}

/// Takes member `host_veth_name` off the fast path of the network whose bridge is
/// `bridge_name` (before its veth is deleted), and, when its veth is already gone,
/// removes every entry whose veth is gone. Nothing there is fine.
pub(crate) fn leave(
    nl: &mut Netlink,
    bridge_name: &str,
    host_veth_name: &str,
) -> Result<(), FastPathError> {
    let Some(bridge) = nl.link_by_name(bridge_name)? else {
        return Ok(()); // no bridge, no ports, no block
    };
    let veth = nl.link_by_name(host_veth_name)?;
    if veth
        .as_ref()
        .is_some_and(|v| v.controller != Some(bridge.index))
    {
        return Ok(()); // not a port of this bridge: not ours
    }
    let map = match find_map(nl, &bridge) {
        Ok(Some(map)) => map,
        // No map, or a block that is not ours (join never put anyone on it): nothing of
        // ours to remove.
        Ok(None) | Err(FastPathError::Foreign { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let entries = bpf::map_entries(&map).map_err(bpf_err(&bridge, "list the map's entries"))?;
    let stale: Vec<bpf::MacKey> = match veth {
        Some(v) => entries
            .into_iter()
            .filter(|(_, ifindex)| *ifindex == v.index)
            .map(|(k, _)| k)
            .collect(),
        // Its veth vanished without us (a crash, its namespace destroyed under it): its
        // entry, whose key we no longer know, is among those whose port is gone.
        None => {
            let ports: Vec<u32> = nl
                .links()?
                .into_iter()
                .filter(|l| l.controller == Some(bridge.index))
                .map(|l| l.index)
                .collect();
            entries
                .into_iter()
                .filter(|(_, ifindex)| !ports.contains(ifindex))
                .map(|(k, _)| k)
                .collect()
        }
    };
    for k in stale {
        bpf::map_delete(&map, &k).map_err(bpf_err(&bridge, "delete a map entry"))?;
    }
    Ok(())
}

/// The members on the fast path of the network whose bridge is `bridge_name`: (MAC of
/// the member's `ethN`, ifindex of its host-side veth). Empty when it has none.
pub(crate) fn members(
    nl: &mut Netlink,
    bridge_name: &str,
) -> Result<Vec<([u8; 6], u32)>, FastPathError> {
    let Some(bridge) = nl.link_by_name(bridge_name)? else {
        return Ok(vec![]);
    };
    let Some(map) = find_map(nl, &bridge)? else {
        return Ok(vec![]);
    };
    let entries = bpf::map_entries(&map).map_err(bpf_err(&bridge, "list the map's entries"))?;
    Ok(entries
        .into_iter()
        .map(|(k, ifindex)| {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&k[..6]);
            (mac, ifindex)
        })
        .collect())
}
