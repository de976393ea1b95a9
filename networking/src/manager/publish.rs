//! Published ports and the DNS responder of a network.

use super::*;

impl Networking {
    /// Forwards `ports` of the host to namespace `ns` on `network` (which it must be
    /// attached to). Refuses a host port already published by Berth or held by a process
    /// on the host, naming it. Publishing the same mappings again changes nothing.
    pub fn publish(&self, ns: &Netns, network: &str, ports: &[PortMapping]) -> Result<()> {
        for p in ports {
            p.validate()?;
        }
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].iter().any(|q| q.clashes(p)) {
                return Err(NetError::PortInUse {
                    host_ip: p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into()),
                    port: p.host_port,
                    protocol: p.protocol,
                    by: Some("the same request, twice".into()),
                });
            }
        }
        let lock = self.store.lock()?;
        let mut state = self
            .store
            .load(&lock, network)?
            .ok_or_else(|| NetError::UnknownNetwork(network.to_string()))?;
        let lease = state.leases.get(ns.name()).cloned().ok_or_else(|| {
            NetError::UnknownNetwork(format!(
                "{network} (namespace {} is not attached to it)",
                ns.name()
            ))
        })?;
        if state.internal && !ports.is_empty() {
            return Err(NetError::InvalidPort {
                spec: ports[0].to_string(),
                problem: format!(
                    "network {network} is internal: nothing from outside reaches it; publish on a non-internal network"
                ),
            });
        }
        if lease.address6.is_none() {
            if let Some(p) = ports
                .iter()
                .find(|p| matches!(p.host_ip, Some(std::net::IpAddr::V6(_))))
            {
                return Err(NetError::InvalidPort {
                    spec: p.to_string(),
                    problem: format!(
                        "an IPv6 host address needs an IPv6 address in the container, and network {network} has no IPv6 (enable_ipv6)"
                    ),
                });
            }
        }
        let all = self.store.all(&lock)?;
        for p in ports {
            if lease.ports.contains(p) {
                continue;
            }
            for other in &all {
                for (holder, l) in &other.leases {
                    if other.name == state.name && holder == ns.name() {
                        continue;
                    }
                    if l.ports.iter().any(|q| q.clashes(p)) {
                        return Err(NetError::PortInUse {
                            host_ip: p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into()),
                            port: p.host_port,
                            protocol: p.protocol,
                            by: Some(format!("{holder} on Berth network {}", other.name)),
                        });
                    }
                }
            }
            p.check_host_port_free()?;
        }
        let mut all_ports = lease.ports.clone();
        for p in ports {
            if !all_ports.contains(p) {
                all_ports.push(*p);
            }
        }
        // Recorded first so removal finds the rules even if the process dies right after.
        state.leases.get_mut(ns.name()).expect("checked").ports = all_ports.clone();
        self.store.save(&lock, &state)?;
        if let Err(e) = self.apply_ports(&state, &lease, &all_ports) {
            // Not applied: take the record back, so the ports are not held in name only.
            state.leases.get_mut(ns.name()).expect("checked").ports = lease.ports.clone();
            let _ = self.store.save(&lock, &state);
            return Err(e);
        }
        Ok(())
    }

    /// Makes `ports` (all of the lease's) reach the lease's address, by DNAT or proxy.
    fn apply_ports(
        &self,
        state: &NetworkState,
        lease: &Lease,
        ports: &[PortMapping],
    ) -> Result<()> {
        let net = fw_net(state);
        let target = PublishTarget {
            v4: lease.address,
            v6: lease.address6,
        };
        let program = match (self.publish_mode, &self.proxy) {
            (PublishMode::Kernel, _) | (_, None) => {
                return self
                    .firewall
                    .publish(&net, &lease.host_interface, &target, ports)
            }
            (PublishMode::Proxy, Some(p)) => p,
            (PublishMode::KernelElseProxy, Some(p)) => {
                match self
                    .firewall
                    .publish(&net, &lease.host_interface, &target, ports)
                {
                    Ok(()) => return Ok(()),
                    Err(NetError::Firewall(why)) => {
                        tracing::warn!(
                            "kernel port publishing unavailable ({why}); using the userspace proxy"
                        );
                        p
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let helper = proxy_helper(&self.config.run, &state.bridge, &lease.host_interface);
        // New ports: a new process with all of them (the old one lets go of its ports).
        helper.stop()?;
        let mut args: Vec<std::ffi::OsString> =
            vec!["--state".into(), self.store.path_of(&state.name).into()];
        for p in ports {
            if let Some(m) = crate::proxy::map_arg(p, &target) {
                args.push("--map".into());
                args.push(m.into());
            }
        }
        helper.start(program, &args)
    }

    /// Starts the network's DNS responder on its gateway, port 53 (see [`crate::dns`]), or
    /// leaves the running one alone. Returns the address containers use as nameserver.
    /// On an `internal` network, names outside the stack are not forwarded unless
    /// `opts.upstreams` names resolvers explicitly.
    pub fn start_dns(
        &self,
        network: &str,
        opts: &crate::DnsOptions,
    ) -> Result<std::net::SocketAddr> {
        let state = {
            let lock = self.store.lock()?;
            self.store
                .load(&lock, network)?
                .ok_or_else(|| NetError::UnknownNetwork(network.to_string()))?
        };
        let listen = std::net::SocketAddr::from((state.gateway, 53));
        let mut args: Vec<std::ffi::OsString> = vec![
            "--root".into(),
            self.config.root.clone().into(),
            "--network".into(),
            network.into(),
            "--listen".into(),
            listen.to_string().into(),
        ];
        match &opts.upstreams {
            // An internal network keeps its queries in too: no forwarding unless asked.
            None if state.internal => args.push("--no-upstream".into()),
            None => {}
            Some(u) if u.is_empty() => args.push("--no-upstream".into()),
            Some(u) => {
                for up in u {
                    args.push("--upstream".into());
                    args.push(up.to_string().into());
                }
            }
        }
        dns_helper(&self.config.run, network).start(&opts.program, &args)?;
        Ok(listen)
    }

    /// Whether the network's DNS responder is running.
    pub fn dns_running(&self, network: &str) -> bool {
        dns_helper(&self.config.run, network).running().is_some()
    }
}
