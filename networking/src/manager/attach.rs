//! Attaching a namespace to networks, and detaching it.

use super::*;
use crate::netlink::BIG_TCP_IPV4_SIZE;

impl Networking {
    /// Joins namespace `ns` to each requested network: one veth pair per network, the
    /// inner ends named `eth0`, `eth1`, ... in order, an address from each network's IPAM,
    /// and a default route through the gateway of the highest-priority non-internal
    /// network. Attaching again to a network it is already on returns what is there.
    pub fn attach(&self, ns: &Netns, requests: &[AttachRequest]) -> Result<Vec<Attachment>> {
        let mut seen = BTreeSet::new();
        for r in requests {
            if !seen.insert(r.network.as_str()) {
                return Err(NetError::InvalidNetwork {
                    network: r.network.clone(),
                    problem: "listed twice for the same namespace".into(),
                });
            }
        }
        let ns_file = ns.open()?;
        let mut inner = ns
            .run(Netlink::open)?
            .map_err(|e| NetError::io("open netlink socket in namespace", e))?;
        let mut host = host_netlink()?;
        // What is there already (each request's host end, the namespace's interfaces),
        // looked up before taking the store lock: netlink calls wait for the kernel's
        // rtnl lock, which other attaches hold while they make their pairs.
        let host_ends = requests
            .iter()
            .map(|r| {
                let name = names::host_veth_name(&self.config.root, &r.network, ns.name());
                let link = match Netlink::index_of(&name) {
                    // Usually not there: the cheap look says so without the rtnl lock.
                    None => None,
                    Some(_) => host.link_by_name(&name)?,
                };
                Ok(HostEnd { name, link })
            })
            .collect::<Result<Vec<_>>>()?;
        let taken_names: BTreeSet<String> = inner.links()?.into_iter().map(|l| l.name).collect();
        // Under the store lock only the bookkeeping: check every request, lease the
        // addresses, record them. The pairs and the inside are made after letting go, so
        // the containers of a stack attach in parallel instead of one after another.
        let (states, planned, default_idx) = self.lease(ns, requests, &host_ends, taken_names)?;
        let made: Vec<(String, String)> = planned
            .iter()
            .zip(&states)
            .filter(|(p, _)| p.new_pair)
            .map(|(p, s)| (s.name.clone(), p.host_if.clone()))
            .collect();
        let mut out = Vec::new();
        let result = (|| -> Result<()> {
            for (i, (p, state)) in planned.iter().zip(&states).enumerate() {
                let bridge = crate::netlink::Link::known(bridge_index(state)?, &state.bridge);
                if p.new_pair {
                    // A host end left by a crash (checked under the lock to be on our bridge).
                    if p.leftover {
                        host.delete_link(&p.host_if)?;
                    }
                    host.create_veth(
                        &p.host_if,
                        Some(bridge.index),
                        &p.ifname,
                        ns_file.as_fd(),
                        Some(mac_for(p.address)),
                        state.mtu,
                    )?;
                    self.big_tcp_on_bridge(&mut host, &bridge);
                }
                crate::fault::point("attach-after-veth");
                let link = inner.link_by_name(&p.ifname)?.ok_or_else(|| {
                    NetError::io(
                        format!("{} did not appear in {}", p.ifname, ns.path().display()),
                        std::io::Error::from_raw_os_error(libc::ENODEV),
                    )
                })?;
                let addr = Ipv4Net::new(p.address, state.subnet.prefix_len()).expect("prefix");
                inner.add_address(link.index, addr)?;
                inner.set_up(link.index)?;
                let addr6 = match (p.address6, state.subnet6) {
                    (Some(a), Some(net6)) => {
                        let a = Ipv6Net::new(a, net6.prefix_len()).expect("prefix");
                        inner.add_address6(link.index, a)?;
                        Some(a)
                    }
                    _ => None,
                };
                if state.fast_path {
                    self.fast_path_join(&mut host, state, &bridge, p, &link);
                }
                if default_idx == Some(i) {
                    inner.add_default_route(state.gateway)?;
                    if let (Some(g6), Some(_)) = (state.gateway6, addr6) {
                        inner.add_default_route(g6)?;
                    }
                }
                out.push(Attachment {
                    network: state.name.clone(),
                    interface: p.ifname.clone(),
                    address: addr,
                    gateway: state.gateway,
                    address6: addr6,
                    gateway6: state.gateway6,
                    host_interface: p.host_if.clone(),
                    default_route: default_idx == Some(i),
                });
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Undo what this call made; the error that stopped it is the one reported.
            for (network, host_if) in &made {
                if let Some(s) = states.iter().find(|s| &s.name == network) {
                    self.fast_maps.forget(&s.bridge);
                    let _ = crate::fastpath::leave(&mut host, &s.bridge, host_if);
                }
                let _ = host.delete_link(host_if);
            }
            self.forget_leases(ns, made.iter().map(|(n, _)| n.as_str()));
            return Err(e);
        }
        Ok(out)
    }

    /// The bookkeeping half of [`Self::attach`], under the store lock: loads the
    /// networks, checks every request before anything is made (a bad address for the
    /// second network must not leave the first one attached), and records a lease for
    /// each pair still to be made — before the pair exists, so removal after a crash
    /// finds it. Returns the networks as recorded, what to make on each, and which one
    /// carries the default route.
    fn lease(
        &self,
        ns: &Netns,
        requests: &[AttachRequest],
        host_ends: &[HostEnd],
        mut taken_names: BTreeSet<String>,
    ) -> Result<(Vec<NetworkState>, Vec<Planned>, Option<usize>)> {
        let lock = self.store.lock()?;
        let mut states = Vec::with_capacity(requests.len());
        for r in requests {
            let s = self
                .store
                .load(&lock, &r.network)?
                .ok_or_else(|| NetError::UnknownNetwork(r.network.clone()))?;
            states.push(s);
        }
        // The default route: highest priority among non-internal networks, first wins ties.
        let mut default_idx: Option<usize> = None;
        for (i, (r, s)) in requests.iter().zip(&states).enumerate() {
            if s.internal {
                continue;
            }
            if default_idx.is_none_or(|d| r.priority > requests[d].priority) {
                default_idx = Some(i);
            }
        }
        for ((req, state), end) in requests.iter().zip(&states).zip(host_ends) {
            let existing = state.leases.get(ns.name());
            if let (Some(l), Some(want)) = (existing, req.ipv4_address) {
                if want != l.address && end.link.is_some() {
                    return Err(address_kept(state, ns, l.address));
                }
            }
            if let (Some(subnet6), Some(gateway6)) = (state.subnet6, state.gateway6) {
                let keeps = existing.is_some_and(|l| {
                    l.address6.is_some() && req.ipv6_address.is_none_or(|w| Some(w) == l.address6)
                });
                if !keeps {
                    ipam::allocate6(
                        &state.name,
                        subnet6,
                        gateway6,
                        req.ipv6_address,
                        &used6(state, ns.name()),
                    )?;
                }
            } else if req.ipv6_address.is_some() {
                return Err(NetError::InvalidNetwork {
                    network: state.name.clone(),
                    problem:
                        "an ipv6_address was asked for, but the network has no IPv6 (enable_ipv6)"
                            .into(),
                });
            }
            if existing.is_none() || req.ipv4_address.is_some() {
                allocate4(state, req, ns)?;
            }
        }
        // Inner names are given out in request order; pairs of this call are not made
        // yet, so the names it gave count as taken too.
        let mut planned = Vec::with_capacity(requests.len());
        let mut leased: Vec<String> = Vec::new();
        let result = (|| -> Result<()> {
            for ((req, state), end) in requests.iter().zip(states.iter_mut()).zip(host_ends) {
                let (host_if, host_link) = (end.name.clone(), &end.link);
                let existing = state.leases.get(ns.name()).cloned();
                // Already attached (a restarted container, or `up` run again): keep the
                // pair and the address, and make sure the inside is configured (a crash may
                // have come between making the pair and configuring it).
                if let Some(l) = existing
                    .as_ref()
                    .filter(|l| l.interface.is_some() && host_link.is_some())
                {
                    if req.ipv4_address.is_some_and(|want| want != l.address) {
                        return Err(address_kept(state, ns, l.address));
                    }
                    if !req.dns_names.is_empty() && req.dns_names != l.dns_names {
                        let lease = state.leases.get_mut(ns.name()).expect("present");
                        lease.dns_names = req.dns_names.clone();
                        self.store.save(&lock, state)?;
                    }
                    planned.push(Planned {
                        host_if,
                        ifname: l.interface.clone().expect("checked"),
                        address: l.address,
                        address6: l.address6,
                        new_pair: false,
                        leftover: false,
                    });
                    continue;
                }
                // A host end by our name is a crash's leftover only if it is on our
                // bridge (pairs are made on it in the same request); else not ours.
                if let Some(l) = host_link {
                    if l.controller != Some(bridge_index(state)?) {
                        return Err(NetError::NameTaken {
                            name: host_if.clone(),
                            what: "the host end of this namespace's veth pair",
                        });
                    }
                }
                // A lease without its link is a crash's leftover: keep its address.
                let address = match (&existing, req.ipv4_address) {
                    (Some(l), None) => l.address,
                    (Some(l), Some(want)) if l.address == want => want,
                    _ => allocate4(state, req, ns)?,
                };
                let address6 = match (state.subnet6, state.gateway6) {
                    (Some(subnet6), Some(gateway6)) => match (&existing, req.ipv6_address) {
                        (
                            Some(Lease {
                                address6: Some(a), ..
                            }),
                            None,
                        ) => Some(*a),
                        (
                            Some(Lease {
                                address6: Some(a), ..
                            }),
                            Some(want),
                        ) if *a == want => Some(want),
                        _ => Some(ipam::allocate6(
                            &state.name,
                            subnet6,
                            gateway6,
                            req.ipv6_address,
                            &used6(state, ns.name()),
                        )?),
                    },
                    _ => None,
                };
                let ifname = (0..100)
                    .map(|n| format!("eth{n}"))
                    .find(|n| !taken_names.contains(n))
                    .ok_or_else(|| NetError::NoInterfaceName(ns.name().to_string()))?;
                taken_names.insert(ifname.clone());
                state.leases.insert(
                    ns.name().to_string(),
                    Lease {
                        address,
                        address6,
                        host_interface: host_if.clone(),
                        interface: Some(ifname.clone()),
                        netns_path: ns.path().to_path_buf(),
                        ports: existing.map(|l| l.ports).unwrap_or_default(),
                        fixed: req.ipv4_address.is_some(),
                        dns_names: req.dns_names.clone(),
                    },
                );
                self.store.save(&lock, state)?;
                leased.push(state.name.clone());
                crate::fault::point("attach-after-lease");
                planned.push(Planned {
                    host_if,
                    ifname,
                    address,
                    address6,
                    new_pair: true,
                    leftover: host_link.is_some(),
                });
            }
            Ok(())
        })();
        if let Err(e) = result {
            for network in &leased {
                if let Ok(Some(mut s)) = self.store.load(&lock, network) {
                    s.leases.remove(ns.name());
                    let _ = self.store.save(&lock, &s);
                }
            }
            return Err(e);
        }
        Ok((states, planned, default_idx))
    }

    /// Removes `ns`'s leases on `networks` (an attach that failed half-way), reading
    /// each network again under the lock: other namespaces' leases changed meanwhile.
    fn forget_leases<'a>(&self, ns: &Netns, networks: impl Iterator<Item = &'a str>) {
        let Ok(lock) = self.store.lock() else { return };
        for network in networks {
            if let Ok(Some(mut s)) = self.store.load(&lock, network) {
                if s.leases.remove(ns.name()).is_some() {
                    let _ = self.store.save(&lock, &s);
                }
            }
        }
    }

    /// Takes namespace `ns` off `networks` (every network it is on when `None`): deletes
    /// the veth pairs, the published ports and the leases. Keeps going past errors and
    /// reports them all. Detaching what is not attached is fine.
    pub fn detach(&self, ns: &Netns, networks: Option<&[&str]>) -> Result<(), TeardownError> {
        self.take_off(ns, networks, false)
    }

    /// Takes namespace `ns` off every network and removes its file, for good (its
    /// container is being removed): [`Self::detach`] and [`Netns::remove`] in one, but
    /// faster for many namespaces at once. Instead of deleting each veth pair (a netlink
    /// call that waits for an RCU grace period under the host-wide rtnl lock, ~20 ms each,
    /// one after another), the namespace goes and the kernel destroys it with its veth
    /// pairs, batching every namespace that died meanwhile into one unregister (50
    /// namespaces: 0.2 s against 1.1 s). It waits until the host ends are gone, and
    /// deletes what is still there after a while (a process still in the namespace).
    /// Idempotent and crash-safe like `detach`: the leases go last.
    pub fn release(&self, ns: &Netns) -> Result<(), TeardownError> {
        self.take_off(ns, None, true)
    }

    fn take_off(
        &self,
        ns: &Netns,
        networks: Option<&[&str]>,
        remove_ns: bool,
    ) -> Result<(), TeardownError> {
        let mut errors = Vec::new();
        // What `ns` holds, read under the store lock and let go at once: tearing down is
        // slow and needs no lock, since the leases keep the addresses and names reserved
        // until the end.
        let held: Vec<(NetworkState, String)> = {
            let lock = match self.store.lock() {
                Ok(l) => l,
                Err(e) => return Err(TeardownError(vec![e])),
            };
            let states: Vec<NetworkState> = match networks {
                Some(names) => names
                    .iter()
                    .filter_map(|n| match self.store.load(&lock, n) {
                        Ok(s) => s,
                        Err(e) => {
                            errors.push(e);
                            None
                        }
                    })
                    .collect(),
                None => match self.store.all(&lock) {
                    Ok(all) => all
                        .into_iter()
                        .filter(|s| s.leases.contains_key(ns.name()))
                        .collect(),
                    Err(e) => return Err(TeardownError(vec![e])),
                },
            };
            states
                .into_iter()
                .map(|state| {
                    let host_if = state
                        .leases
                        .get(ns.name())
                        .map(|l| l.host_interface.clone())
                        .unwrap_or_else(|| {
                            names::host_veth_name(&self.config.root, &state.name, ns.name())
                        });
                    (state, host_if)
                })
                .collect()
        };
        let mut host = if held.is_empty() {
            None
        } else {
            match host_netlink() {
                Ok(h) => Some(h),
                Err(e) => return Err(TeardownError(vec![e])),
            }
        };
        let mut done = Vec::new();
        for (state, host_if) in &held {
            // Ports are recorded before their rules are made, so a lease without ports
            // has no rules to remove (and the `nft` round trips are skipped). Without a
            // lease (a crash before it was written) look anyway.
            let has_ports = state
                .leases
                .get(ns.name())
                .is_none_or(|l| !l.ports.is_empty());
            let mut ok = true;
            if has_ports {
                if let Err(e) = self.firewall.unpublish(&fw_net(state), host_if) {
                    errors.push(e);
                    ok = false;
                }
                if let Err(e) = proxy_helper(&self.config.run, &state.bridge, host_if).stop() {
                    errors.push(e);
                    ok = false;
                }
            }
            // Its fast-path entry first (the veth's qdisc goes with the veth; its entry, in
            // the network's shared map, does not).
            if let Some(host) = host.as_mut() {
                self.fast_maps.forget(&state.bridge);
                if let Err(e) = crate::fastpath::leave(host, &state.bridge, host_if) {
                    errors.push(e.into());
                    ok = false;
                }
            }
            done.push(ok);
        }
        if remove_ns {
            if let Err(e) = ns.remove() {
                errors.push(e);
            }
            let host_ifs: Vec<&str> = held.iter().map(|(_, h)| h.as_str()).collect();
            wait_links_gone(&host_ifs, LINKS_GONE_WITHIN);
            crate::fault::point("release-after-netns");
        }
        if let Some(host) = host.as_mut() {
            for ((_, host_if), ok) in held.iter().zip(done.iter_mut()) {
                // Deleting one end of a veth pair deletes the other, wherever it is;
                // after `release` only what the kernel did not take is left.
                if let Err(e) = host.delete_link(host_if) {
                    errors.push(e.into());
                    *ok = false;
                }
            }
        }
        if done.iter().any(|ok| *ok) {
            match self.store.lock() {
                Ok(lock) => {
                    for ((state, _), ok) in held.iter().zip(&done) {
                        if !ok {
                            continue;
                        }
                        // Read again: other namespaces' leases changed meanwhile.
                        match self.store.load(&lock, &state.name) {
                            Ok(Some(mut now)) => {
                                if now.leases.remove(ns.name()).is_some() {
                                    if let Err(e) = self.store.save(&lock, &now) {
                                        errors.push(e);
                                    }
                                }
                            }
                            Ok(None) => {}
                            Err(e) => errors.push(e),
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        TeardownError::check(errors)
    }
}

/// How long [`Networking::release`] lets the kernel take a dead namespace's veth pairs
/// before deleting them itself.
const LINKS_GONE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits until none of `names` is a link in the host's namespace any more, or `within`
/// passed. Looks in /sys/class/net (a stat, no netlink round trip); where that is not
/// the host's, it does not wait (the caller deletes what is left).
fn wait_links_gone(names: &[&str], within: std::time::Duration) {
    let class = std::path::Path::new("/sys/class/net");
    if names.is_empty() || !class.join("lo").exists() {
        return;
    }
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    while names.iter().any(|n| class.join(n).exists()) && start.elapsed() < within {
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(10));
    }
}

/// A namespace attached with `address` asked for another: refused, the lease stays.
fn address_kept(state: &NetworkState, ns: &Netns, address: Ipv4Addr) -> NetError {
    NetError::InvalidNetwork {
        network: state.name.clone(),
        problem: format!(
            "namespace {} is attached with address {address}; detach it to change its address",
            ns.name(),
        ),
    }
}

/// The index of the bridge of `state`'s network, which must be there to attach to it.
fn bridge_index(state: &NetworkState) -> Result<u32> {
    Netlink::index_of(&state.bridge).ok_or_else(|| {
        NetError::UnknownNetwork(format!(
            "{} (its bridge {} is gone: ensure the network again)",
            state.name, state.bridge
        ))
    })
}

/// The MAC address of the member with IPv4 `address`: locally administered `02:42`
/// and the address's four bytes, as Docker gives them. The same address always has the
/// same MAC, so the host's neighbour entry for an address stays right when a new
/// container gets the address of one just removed (a random MAC left the host sending
/// to the old one until the entry expired: seconds without a reply on published ports).
/// Unique on the host, as subnets of networks do not overlap.
fn mac_for(address: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x02, 0x42, a, b, c, d]
}

/// The host end of a namespace's veth pair on one network: its name, and the link if
/// one by that name exists.
struct HostEnd {
    name: String,
    link: Option<crate::netlink::Link>,
}

/// What [`Networking::attach`] makes on one network once the lease is recorded.
struct Planned {
    host_if: String,
    ifname: String,
    address: Ipv4Addr,
    address6: Option<std::net::Ipv6Addr>,
    /// A pair still to be made (else it exists and only the inside is checked).
    new_pair: bool,
    /// A host end by this name left by a crash, to delete before making the pair.
    leftover: bool,
}

/// An IPv4 address on `state`'s network for `ns`: the one `req` asks for if free, else
/// the first free one (checked before anything is made, then again to lease it).
fn allocate4(state: &NetworkState, req: &AttachRequest, ns: &Netns) -> Result<Ipv4Addr> {
    ipam::allocate(
        &state.name,
        state.subnet,
        state.gateway,
        state.ip_range,
        req.ipv4_address,
        &used4(state, ns.name()),
    )
}

/// The IPv4 addresses leased on `state` to namespaces other than `ns`.
fn used4(state: &NetworkState, ns: &str) -> Vec<(Ipv4Addr, String)> {
    state
        .leases
        .iter()
        .filter(|(k, _)| k.as_str() != ns)
        .map(|(k, l)| (l.address, k.clone()))
        .collect()
}

/// The IPv6 addresses leased on `state` to namespaces other than `ns`.
fn used6(state: &NetworkState, ns: &str) -> Vec<(std::net::Ipv6Addr, String)> {
    state
        .leases
        .iter()
        .filter(|(k, _)| k.as_str() != ns)
        .filter_map(|(k, l)| l.address6.map(|a| (a, k.clone())))
        .collect()
}

impl Networking {
    /// Gives the bridge the veth pairs' IPv4 GSO size (see [`BIG_TCP_IPV4_SIZE`]), for
    /// traffic between the host and containers, once it has a port: the kernel refuses it
    /// before, while an empty bridge's `tso_max_size` is 64 KiB. Once per bridge and
    /// process. Only an optimization, so a refusal is logged, not returned.
    fn big_tcp_on_bridge(&self, host: &mut Netlink, bridge: &crate::netlink::Link) {
        if !self
            .tuned_bridges
            .lock()
            .expect("tuned bridges lock")
            .insert(bridge.index)
        {
            return;
        }
        let size = match host.link_by_name(&bridge.name) {
            Ok(Some(l)) => l.gso_ipv4_max_size,
            _ => None,
        };
        if size.is_some_and(|size| size < BIG_TCP_IPV4_SIZE) {
            if let Err(e) = host.set_ipv4_gso_max_size(bridge.index, BIG_TCP_IPV4_SIZE) {
                tracing::debug!("bridge {} keeps its GSO size: {e}", bridge.name);
            }
        }
    }

    /// Puts a member on its network's L2 fast path (see [`crate::fastpath`]). Only an
    /// optimization: where the kernel refuses (no cls_bpf, no `bpf_redirect_peer`), the
    /// member's traffic keeps going through the bridge, so a refusal is logged, not
    /// returned.
    fn fast_path_join(
        &self,
        host: &mut Netlink,
        state: &NetworkState,
        bridge: &crate::netlink::Link,
        planned: &Planned,
        inner: &crate::netlink::Link,
    ) {
        let host_if = &planned.host_if;
        let joined = (|| {
            // A pair this call made is a port of the bridge; one found there is checked.
            let veth = match planned.new_pair {
                true => Netlink::index_of(host_if),
                false => host
                    .link_by_name(host_if)?
                    .filter(|v| v.controller == Some(bridge.index))
                    .map(|v| v.index),
            };
            match (veth, inner.mac) {
                (Some(veth), Some(mac)) => {
                    crate::fastpath::join(host, bridge, veth, mac, &self.fast_maps)
                }
                _ => Ok(()),
            }
        })();
        if let Err(e) = joined {
            tracing::warn!(
                "{host_if} stays off the fast path of network {} (its traffic goes through the bridge): {e}",
                state.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_always_has_the_same_locally_administered_mac() {
        let mac = mac_for(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(mac, [0x02, 0x42, 172, 17, 0, 2]);
        // Locally administered, unicast: never a vendor's, never multicast.
        assert_eq!(mac[0] & 0b11, 0b10);
        assert_ne!(mac, mac_for(Ipv4Addr::new(172, 17, 0, 3)));
    }
}
