//! Networks: make (or check and repair) one, remove one, list them.

use super::*;

impl Networking {
    /// Makes the network (bridge, gateway address, firewall rules) or checks and repairs
    /// the one already there. The subnet is kept in the record, so the same network keeps
    /// its subnet while it exists, and gets the same one back after removal when it is
    /// still free (the pool search starts at a place fixed by the network's name).
    pub fn ensure_network(&self, spec: &NetworkSpec) -> Result<NetworkInfo> {
        validate_name("network", &spec.name)?;
        if let Some(mtu) = spec.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(NetError::InvalidNetwork {
                    network: spec.name.clone(),
                    problem: format!("mtu {mtu} is outside 68..65535"),
                });
            }
        }
        if spec.ipam.subnet.is_none()
            && (spec.ipam.gateway.is_some() || spec.ipam.ip_range.is_some())
        {
            return Err(NetError::InvalidNetwork {
                network: spec.name.clone(),
                problem: "gateway and ip_range need a subnet in the same ipam.config entry".into(),
            });
        }
        let fast_path = spec
            .fast_path
            .unwrap_or_else(crate::fastpath::default_enabled);
        let lock = self.store.lock()?;
        let mut nl = host_netlink()?;
        let state = match self.store.load(&lock, &spec.name)? {
            Some(mut state) => {
                if let Some(want) = spec.ipam.subnet {
                    if want.trunc() != state.subnet {
                        return Err(NetError::InvalidNetwork {
                            network: spec.name.clone(),
                            problem: format!(
                                "it exists with subnet {}, not {want}; remove it (berth down) to change its subnet",
                                state.subnet
                            ),
                        });
                    }
                }
                if spec.ipv6.is_some() != state.subnet6.is_some() {
                    return Err(NetError::InvalidNetwork {
                        network: spec.name.clone(),
                        problem: format!(
                            "it exists {} IPv6; remove it (berth down) to change enable_ipv6",
                            if state.subnet6.is_some() {
                                "with"
                            } else {
                                "without"
                            }
                        ),
                    });
                }
                if let (Some(want), Some(have)) =
                    (spec.ipv6.as_ref().and_then(|c| c.subnet), state.subnet6)
                {
                    if want.trunc() != have {
                        return Err(NetError::InvalidNetwork {
                            network: spec.name.clone(),
                            problem: format!(
                                "it exists with IPv6 subnet {have}, not {want}; remove it (berth down) to change its subnet"
                            ),
                        });
                    }
                }
                if spec.internal != state.internal {
                    return Err(NetError::InvalidNetwork {
                        network: spec.name.clone(),
                        problem: format!(
                            "it exists with internal: {}; remove it (berth down) to change that",
                            state.internal
                        ),
                    });
                }
                if state.fast_path != fast_path {
                    state.fast_path = fast_path;
                    self.store.save(&lock, &state)?;
                }
                state
            }
            None => {
                let bridge = names::bridge_name(&self.config.root, &spec.name);
                // No record, yet the bridge is there: not ours to take over (our records
                // are written before our bridges are made).
                if nl.link_by_name(&bridge)?.is_some() {
                    return Err(NetError::NameTaken {
                        name: bridge,
                        what: "the bridge this network would get",
                    });
                }
                let mut taken = host_taken_subnets(&mut nl, &bridge)?;
                for other in self.store.all(&lock)? {
                    taken.push(Taken {
                        net: other.subnet,
                        by: Some(format!("Berth network {}", other.name)),
                    });
                }
                let hash = names::network_hash(&self.config.root, &spec.name);
                let subnet =
                    ipam::choose_subnet(&spec.name, &spec.ipam, &self.config.pool, hash, &taken)?;
                let (gateway, ip_range) = ipam::gateway_and_range(&spec.name, subnet, &spec.ipam)?;
                let (subnet6, gateway6) = match &spec.ipv6 {
                    None => (None, None),
                    Some(cfg6) => {
                        let mut taken6: Vec<(Ipv6Net, Option<String>)> =
                            nl.routes_v6()?.into_iter().map(|r| (r, None)).collect();
                        for other in self.store.all(&lock)? {
                            if let Some(s6) = other.subnet6 {
                                taken6.push((s6, Some(format!("Berth network {}", other.name))));
                            }
                        }
                        let s6 = ipam::choose_subnet6(&spec.name, cfg6, hash, &taken6)?;
                        (Some(s6), Some(ipam::gateway6(&spec.name, s6, cfg6)?))
                    }
                };
                let state = NetworkState {
                    subnet6,
                    gateway6,
                    name: spec.name.clone(),
                    bridge,
                    subnet,
                    gateway,
                    ip_range,
                    internal: spec.internal,
                    mtu: spec.mtu,
                    fast_path,
                    leases: Default::default(),
                };
                // Recorded before the bridge exists: a crash from here on is found by
                // remove_network through this file.
                self.store.save(&lock, &state)?;
                crate::fault::point("ensure-after-record");
                state
            }
        };
        self.make_bridge(&mut nl, &state)?;
        crate::fault::point("ensure-after-bridge");
        if !state.internal {
            // Published ports and the way out are forwarded by the host.
            sysctl::enable_ip_forward()?;
            if state.subnet6.is_some() {
                sysctl::enable_ip6_forward()?;
            }
        }
        self.firewall.setup_network(&fw_net(&state))?;
        Ok(NetworkInfo::of(&state))
    }

    fn make_bridge(&self, nl: &mut Netlink, state: &NetworkState) -> Result<()> {
        let link = match nl.link_by_name(&state.bridge)? {
            Some(l) => l,
            None => {
                nl.create_bridge(
                    &state.bridge,
                    state.mtu,
                    names::bridge_mac(&self.config.root, &state.name),
                )?;
                nl.link_by_name(&state.bridge)?.ok_or_else(|| {
                    NetError::io(
                        format!("bridge {} vanished after creation", state.bridge),
                        std::io::Error::from_raw_os_error(libc::ENODEV),
                    )
                })?
            }
        };
        // Before the bridge goes up, so its link-local address is usable at once: while
        // that address is tentative the kernel sends no neighbour solicitation for packets
        // it forwards, and the first IPv6 packets into the network wait a second.
        sysctl::disable_dad(&state.bridge)?;
        let gw = Ipv4Net::new(state.gateway, state.subnet.prefix_len()).expect("valid prefix");
        nl.add_address(link.index, gw)?;
        if let (Some(s6), Some(g6)) = (state.subnet6, state.gateway6) {
            nl.add_address6(
                link.index,
                Ipv6Net::new(g6, s6.prefix_len()).expect("prefix"),
            )?;
        }
        if !link.up {
            nl.set_up(link.index)?;
        }
        // Lets DNAT send connections from 127.0.0.1 to the bridge (they are masqueraded
        // to the gateway address on the way; see the firewall).
        sysctl::set_route_localnet(&state.bridge)?;
        Ok(())
    }

    /// Removes the network: every veth pair still on it, its bridge, its firewall rules
    /// and its record. Keeps going past errors and reports them all; removing a network
    /// that is not there (or half there after a crash) succeeds.
    pub fn remove_network(&self, name: &str) -> Result<(), TeardownError> {
        if let Err(e) = validate_name("network", name) {
            return Err(TeardownError(vec![e]));
        }
        let mut errors = Vec::new();
        let lock = match self.store.lock() {
            Ok(l) => l,
            Err(e) => return Err(TeardownError(vec![e])),
        };
        // Our records are written before our links are made, so without a record the links
        // by our names are not ours (another root's, or something else's): leave them. A
        // corrupt record is still ours: remove what the name tells us about.
        let (state, links_are_ours) = match self.store.load(&lock, name) {
            Ok(s) => {
                let ours = s.is_some();
                (s, ours)
            }
            Err(e) => {
                errors.push(e);
                (None, true)
            }
        };
        let bridge = state
            .as_ref()
            .map(|s| s.bridge.clone())
            .unwrap_or_else(|| names::bridge_name(&self.config.root, name));
        let fw = FirewallNetwork {
            name,
            bridge: &bridge,
            subnet: state.as_ref().map(|s| s.subnet).unwrap_or_default(),
            subnet6: state.as_ref().and_then(|s| s.subnet6),
            gateway6: state.as_ref().and_then(|s| s.gateway6),
            gateway: state
                .as_ref()
                .map(|s| s.gateway)
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            internal: state.as_ref().is_some_and(|s| s.internal),
        };
        // The helpers and the firewall rules go on a thread of their own while the links
        // go here: neither needs the other gone, and deleting a bridge waits for an RCU
        // grace period, stopping a helper for its exit, the rules for an `nft` process.
        let (links, others) = std::thread::scope(|scope| {
            let others = scope.spawn(|| {
                let mut errors = Vec::new();
                if let Err(e) = dns_helper(&self.config.run, name).stop() {
                    errors.push(e);
                }
                for proxy in Helper::list(&self.config.run, &format!("proxy-{bridge}-")) {
                    if let Err(e) = proxy.stop() {
                        errors.push(e);
                    }
                }
                if let Err(e) = self.firewall.teardown_network(&fw) {
                    errors.push(e);
                }
                errors
            });
            let links = self.remove_bridge(&bridge, state.as_ref(), links_are_ours);
            (links, others.join())
        });
        errors.extend(links);
        match others {
            Ok(e) => errors.extend(e),
            Err(_) => errors.push(NetError::io(
                "network teardown thread",
                std::io::Error::other("panicked"),
            )),
        }
        if errors.is_empty() {
            if let Err(e) = self.store.remove(&lock, name) {
                errors.push(e);
            }
        }
        TeardownError::check(errors)
    }

    /// Deletes `bridge` (when `links_are_ours`) and every port of it, leased or not.
    fn remove_bridge(
        &self,
        bridge: &str,
        state: Option<&NetworkState>,
        links_are_ours: bool,
    ) -> Vec<NetError> {
        let mut errors = Vec::new();
        let mut host = match host_netlink() {
            Ok(h) => h,
            Err(e) => return vec![e],
        };
        // Every port of the bridge, whether a lease names it or not.
        let mut ports: BTreeSet<String> = state
            .iter()
            .flat_map(|s| s.leases.values().map(|l| l.host_interface.clone()))
            .collect();
        match host.link_by_name(bridge) {
            Ok(Some(_)) if !links_are_ours => {}
            Ok(Some(br)) => match host.links() {
                Ok(links) => ports.extend(
                    links
                        .into_iter()
                        .filter(|l| l.controller == Some(br.index))
                        .map(|l| l.name),
                ),
                Err(e) => errors.push(e.into()),
            },
            Ok(None) => {}
            Err(e) => errors.push(e.into()),
        }
        self.fast_maps.forget(bridge);
        for port in ports {
            if let Err(e) = host.delete_link(&port) {
                errors.push(e.into());
            }
        }
        if links_are_ours {
            if let Err(e) = host.delete_link(bridge) {
                errors.push(e.into());
            }
        }
        errors
    }

    /// The members on the L2 fast path of `network` (see networking/README.md,
    /// "Throughput between containers"): per member, the MAC of its interface and the
    /// ifindex of the host end of its veth pair. Empty when none (or no such network).
    pub fn fast_path_members(&self, network: &str) -> Result<Vec<([u8; 6], u32)>> {
        let bridge = names::bridge_name(&self.config.root, network);
        Ok(crate::fastpath::members(&mut host_netlink()?, &bridge)?)
    }

    /// The networks on record (including ones a crashed run left), for `down` to remove.
    pub fn networks(&self) -> Result<Vec<NetworkInfo>> {
        let lock = self.store.lock()?;
        Ok(self
            .store
            .all(&lock)?
            .into_iter()
            .map(|s| NetworkInfo::of(&s))
            .collect())
    }
}
