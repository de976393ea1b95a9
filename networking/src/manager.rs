//! The API the orchestrator calls: ensure a network, attach a namespace to networks,
//! publish ports, detach, remove. Each call validates its input before touching the host,
//! records what it is about to make before making it (so a crash half-way is found and
//! finished by removal), and is idempotent.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;

use ipnet::Ipv4Net;

use crate::error::{NetError, Result, TeardownError};
use crate::firewall::{FirewallDriver, FirewallNetwork, Nftables, NoFirewall};
use crate::helper::Helper;
use crate::ipam::{self, IpamConfig, Pool, Taken};
use crate::netlink::Netlink;
use crate::netns::{validate_name, Netns};
use crate::ports::PortMapping;
use crate::state::{Lease, NetworkState, Store};
use crate::{names, sysctl};

/// Where Berth keeps its state, and where new subnets come from.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BERTH_ROOT`: leases and network records (survive a reboot).
    pub root: PathBuf,
    /// `BERTH_RUN`: namespace files (die with the boot).
    pub run: PathBuf,
    /// Subnets for networks without `ipam.config`.
    pub pool: Pool,
}

impl Config {
    /// `BERTH_ROOT` (default `/var/lib/berth`) and `BERTH_RUN` (default `/run/berth`) from
    /// the environment, and the default pool.
    pub fn from_env() -> Self {
        let var = |k: &str, d: &str| {
            std::env::var_os(k)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(d))
        };
        Config {
            root: var("BERTH_ROOT", "/var/lib/berth"),
            run: var("BERTH_RUN", "/run/berth"),
            pool: Pool::default(),
        }
    }
}

/// A network as the stack declares it (already normalized by the orchestrator).
#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    /// Full name, `PROJECT_NETWORK`.
    pub name: String,
    /// `internal: true`: no way in or out except between its members.
    pub internal: bool,
    /// `driver_opts` `com.docker.network.driver.mtu`; `None` keeps the kernel's 1500.
    pub mtu: Option<u32>,
    /// `ipam.config[0]` (IPv4).
    pub ipam: IpamConfig,
}

/// What `ensure_network` made or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub internal: bool,
}

/// One network a namespace joins (from the service's `networks:`).
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    pub network: String,
    /// Static `ipv4_address`.
    pub ipv4_address: Option<Ipv4Addr>,
    /// `priority`: the highest non-internal one gives the default route; ties go to the
    /// first listed.
    pub priority: i32,
    /// Names the network's DNS responder answers with this address: the service name,
    /// its `aliases` on this network, the container name, its `hostname`.
    pub dns_names: Vec<String>,
}

/// One interface made in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub network: String,
    /// Name inside the namespace: `eth0`, `eth1`, ...
    pub interface: String,
    /// Address and prefix, e.g. `10.89.3.2/24`.
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// The host end of the veth pair (a port of the network's bridge).
    pub host_interface: String,
    /// Whether the namespace's default route goes through this network's gateway.
    pub default_route: bool,
}

/// How published ports reach their containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublishMode {
    /// nftables DNAT (the firewall driver) only.
    #[default]
    Kernel,
    /// DNAT, and the userspace proxy where the firewall driver cannot publish (no
    /// nftables NAT on this host).
    KernelElseProxy,
    /// The userspace proxy only.
    Proxy,
}

/// The entry point. Cheap to make; holds no kernel resources between calls.
///
/// Calls must come from a thread in the host's network namespace (any ordinary thread:
/// this crate never moves a caller's thread into another namespace). Calls block for a
/// few milliseconds; from async code use `spawn_blocking`.
///
/// ```no_run
/// use berth_networking::{AttachRequest, Config, Netns, Networking, NetworkSpec, PortMapping};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let net = Networking::with_nftables(Config::from_env());
/// net.ensure_network(&NetworkSpec { name: "shop_default".into(), ..Default::default() })?;
/// let ns = Netns::create(&net.config().run, "shop-web-1")?;
/// let eths = net.attach(&ns, &[AttachRequest { network: "shop_default".into(), ..Default::default() }])?;
/// println!("web is {} on {}", eths[0].address, eths[0].interface);
/// net.publish(&ns, "shop_default", &[PortMapping::tcp(8080, 80)])?;
/// // ... the engine starts the container in ns.path() ...
/// net.detach(&ns, None)?;
/// ns.remove()?;
/// net.remove_network("shop_default")?;
/// # Ok(()) }
/// ```
pub struct Networking {
    config: Config,
    store: Store,
    firewall: Box<dyn FirewallDriver>,
    publish_mode: PublishMode,
    proxy: Option<crate::HelperProgram>,
}

impl Networking {
    /// With a firewall driver of the caller's choice.
    pub fn new(config: Config, firewall: Box<dyn FirewallDriver>) -> Self {
        let store = Store::new(&config.root);
        Networking {
            config,
            store,
            firewall,
            publish_mode: PublishMode::Kernel,
            proxy: None,
        }
    }

    /// Publishes ports through the userspace proxy `program` (the `berth-port-proxy`
    /// binary, or a program calling [`crate::proxy::run_from_args`]) as `mode` says.
    pub fn with_port_proxy(mut self, program: crate::HelperProgram, mode: PublishMode) -> Self {
        self.proxy = Some(program);
        self.publish_mode = mode;
        self
    }

    /// With rules in the nftables table `berth`.
    pub fn with_nftables(config: Config) -> Self {
        Self::new(config, Box::new(Nftables::new("berth")))
    }

    /// With no firewall rules at all.
    pub fn without_firewall(config: Config) -> Self {
        Self::new(config, Box::new(NoFirewall))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The bridge network `network` has (or would have) on this host.
    pub fn bridge_name(&self, network: &str) -> String {
        names::bridge_name(&self.config.root, network)
    }

    /// The host end of the veth pair joining namespace `netns` to `network`.
    pub fn host_interface_name(&self, network: &str, netns: &str) -> String {
        names::host_veth_name(&self.config.root, network, netns)
    }

    /// Where the network's leases are kept.
    pub fn state_file(&self, network: &str) -> PathBuf {
        self.store.path_of(network)
    }

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
        let lock = self.store.lock()?;
        let mut nl = host_netlink()?;
        let state = match self.store.load(&lock, &spec.name)? {
            Some(state) => {
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
                if spec.internal != state.internal {
                    return Err(NetError::InvalidNetwork {
                        network: spec.name.clone(),
                        problem: format!(
                            "it exists with internal: {}; remove it (berth down) to change that",
                            state.internal
                        ),
                    });
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
                let state = NetworkState {
                    name: spec.name.clone(),
                    bridge,
                    subnet,
                    gateway,
                    ip_range,
                    internal: spec.internal,
                    mtu: spec.mtu,
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
        }
        self.firewall.setup_network(&fw_net(&state))?;
        Ok(NetworkInfo {
            name: state.name.clone(),
            bridge: state.bridge.clone(),
            subnet: state.subnet,
            gateway: state.gateway,
            internal: state.internal,
        })
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
        let gw = Ipv4Net::new(state.gateway, state.subnet.prefix_len()).expect("valid prefix");
        nl.add_address(link.index, gw)?;
        if !link.up {
            nl.set_up(link.index)?;
        }
        // Lets DNAT send connections from 127.0.0.1 to the bridge (they are masqueraded
        // to the gateway address on the way; see the firewall).
        sysctl::set_route_localnet(&state.bridge)?;
        Ok(())
    }

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
        let ns_file = ns.open()?;
        let mut inner = ns
            .run(Netlink::open)?
            .map_err(|e| NetError::io("open netlink socket in namespace", e))?;
        let mut host = host_netlink()?;
        // Every request is checked before anything is made: a bad address for the second
        // network must not leave the first one attached.
        for (req, state) in requests.iter().zip(&states) {
            let existing = state.leases.get(ns.name());
            if let (Some(l), Some(want)) = (existing, req.ipv4_address) {
                let host_if = names::host_veth_name(&self.config.root, &state.name, ns.name());
                if want != l.address && host.link_by_name(&host_if)?.is_some() {
                    return Err(NetError::InvalidNetwork {
                        network: state.name.clone(),
                        problem: format!(
                            "namespace {} is attached with address {}; detach it to change its address",
                            ns.name(),
                            l.address
                        ),
                    });
                }
            }
            if existing.is_none() || req.ipv4_address.is_some() {
                let used: Vec<(Ipv4Addr, String)> = state
                    .leases
                    .iter()
                    .filter(|(k, _)| k.as_str() != ns.name())
                    .map(|(k, l)| (l.address, k.clone()))
                    .collect();
                ipam::allocate(
                    &state.name,
                    state.subnet,
                    state.gateway,
                    state.ip_range,
                    req.ipv4_address,
                    &used,
                )?;
            }
        }
        let mut made: Vec<(String, String)> = Vec::new(); // (network, host_if) made by this call
        let mut out = Vec::new();
        let result = (|| -> Result<()> {
            for (i, (req, state)) in requests.iter().zip(states.iter_mut()).enumerate() {
                let host_if = names::host_veth_name(&self.config.root, &state.name, ns.name());
                let existing = state.leases.get(ns.name()).cloned();
                let host_link = host.link_by_name(&host_if)?;
                // Already attached (a restarted container, or `up` run again): keep the
                // pair and the address, and make sure the inside is configured (a crash may
                // have come between making the pair and configuring it).
                let reuse = match &existing {
                    Some(l) if l.interface.is_some() && host_link.is_some() => {
                        if req.ipv4_address.is_some_and(|want| want != l.address) {
                            return Err(NetError::InvalidNetwork {
                                network: state.name.clone(),
                                problem: format!(
                                    "namespace {} is attached with address {}; detach it to change its address",
                                    ns.name(),
                                    l.address
                                ),
                            });
                        }
                        Some(l.clone())
                    }
                    _ => None,
                };
                let (address, ifname) = if let Some(lease) = reuse {
                    if !req.dns_names.is_empty() && req.dns_names != lease.dns_names {
                        let l = state.leases.get_mut(ns.name()).expect("present");
                        l.dns_names = req.dns_names.clone();
                        self.store.save(&lock, state)?;
                    }
                    (lease.address, lease.interface.expect("checked"))
                } else {
                    let bridge = host.link_by_name(&state.bridge)?.ok_or_else(|| {
                        NetError::UnknownNetwork(format!(
                            "{} (its bridge {} is gone: ensure the network again)",
                            state.name, state.bridge
                        ))
                    })?;
                    // A host end by our name is a crash's leftover only if it is on our
                    // bridge (pairs are made on it in the same request); else not ours.
                    if host_link
                        .as_ref()
                        .is_some_and(|l| l.controller != Some(bridge.index))
                    {
                        return Err(NetError::NameTaken {
                            name: host_if.clone(),
                            what: "the host end of this namespace's veth pair",
                        });
                    }
                    // A lease without its link is a crash's leftover: keep its address.
                    let address = match (&existing, req.ipv4_address) {
                        (Some(l), None) => l.address,
                        (Some(l), Some(want)) if l.address == want => want,
                        _ => {
                            let used: Vec<(Ipv4Addr, String)> = state
                                .leases
                                .iter()
                                .filter(|(k, _)| k.as_str() != ns.name())
                                .map(|(k, l)| (l.address, k.clone()))
                                .collect();
                            ipam::allocate(
                                &state.name,
                                state.subnet,
                                state.gateway,
                                state.ip_range,
                                req.ipv4_address,
                                &used,
                            )?
                        }
                    };
                    let taken_names: BTreeSet<String> =
                        inner.links()?.into_iter().map(|l| l.name).collect();
                    let ifname = (0..100)
                        .map(|n| format!("eth{n}"))
                        .find(|n| !taken_names.contains(n))
                        .ok_or_else(|| NetError::NoInterfaceName(ns.name().to_string()))?;
                    state.leases.insert(
                        ns.name().to_string(),
                        Lease {
                            address,
                            host_interface: host_if.clone(),
                            interface: Some(ifname.clone()),
                            netns_path: ns.path().to_path_buf(),
                            ports: existing.map(|l| l.ports).unwrap_or_default(),
                            fixed: req.ipv4_address.is_some(),
                            dns_names: req.dns_names.clone(),
                        },
                    );
                    // Recorded before the pair exists, so removal after a crash finds it.
                    self.store.save(&lock, state)?;
                    made.push((state.name.clone(), host_if.clone()));
                    crate::fault::point("attach-after-lease");
                    // A host end left by a crash (checked above to be on our bridge).
                    if host_link.is_some() {
                        host.delete_link(&host_if)?;
                    }
                    host.create_veth(
                        &host_if,
                        Some(bridge.index),
                        &ifname,
                        ns_file.as_fd(),
                        state.mtu,
                    )?;
                    (address, ifname)
                };
                crate::fault::point("attach-after-veth");
                let link = inner.link_by_name(&ifname)?.ok_or_else(|| {
                    NetError::io(
                        format!("{ifname} did not appear in {}", ns.path().display()),
                        std::io::Error::from_raw_os_error(libc::ENODEV),
                    )
                })?;
                let addr = Ipv4Net::new(address, state.subnet.prefix_len()).expect("prefix");
                inner.add_address(link.index, addr)?;
                inner.set_up(link.index)?;
                if default_idx == Some(i) {
                    inner.add_default_route(state.gateway)?;
                }
                out.push(Attachment {
                    network: state.name.clone(),
                    interface: ifname,
                    address: addr,
                    gateway: state.gateway,
                    host_interface: host_if,
                    default_route: default_idx == Some(i),
                });
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Undo what this call made; the error that stopped it is the one reported.
            for (network, host_if) in made {
                let _ = host.delete_link(&host_if);
                if let Ok(Some(mut s)) = self.store.load(&lock, &network) {
                    s.leases.remove(ns.name());
                    let _ = self.store.save(&lock, &s);
                }
            }
            return Err(e);
        }
        Ok(out)
    }

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
                    host_ip: std::net::IpAddr::V4(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED)),
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
                            host_ip: std::net::IpAddr::V4(
                                p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                            ),
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
        let net = fw_net(&state);
        let use_proxy = match (self.publish_mode, &self.proxy) {
            (PublishMode::Kernel, _) | (_, None) => false,
            (PublishMode::Proxy, Some(_)) => true,
            (PublishMode::KernelElseProxy, Some(_)) => {
                match self
                    .firewall
                    .publish(&net, &lease.host_interface, lease.address, &all_ports)
                {
                    Ok(()) => false,
                    Err(NetError::Firewall(why)) => {
                        tracing::warn!(
                            "kernel port publishing unavailable ({why}); using the userspace proxy"
                        );
                        true
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if !use_proxy {
            return self
                .firewall
                .publish(&net, &lease.host_interface, lease.address, &all_ports);
        }
        let program = self.proxy.as_ref().expect("checked");
        let helper = proxy_helper(&self.config.run, &state.bridge, &lease.host_interface);
        // New ports: a new process with all of them (the old one lets go of its ports).
        helper.stop()?;
        let mut args: Vec<std::ffi::OsString> =
            vec!["--state".into(), self.store.path_of(&state.name).into()];
        for p in &all_ports {
            args.push("--map".into());
            args.push(crate::proxy::map_arg(p, lease.address).into());
        }
        helper.start(program, &args)
    }

    /// Takes namespace `ns` off `networks` (every network it is on when `None`): deletes
    /// the veth pairs, the published ports and the leases. Keeps going past errors and
    /// reports them all. Detaching what is not attached is fine.
    pub fn detach(&self, ns: &Netns, networks: Option<&[&str]>) -> Result<(), TeardownError> {
        let mut errors = Vec::new();
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
        let mut host = match host_netlink() {
            Ok(h) => h,
            Err(e) => return Err(TeardownError(vec![e])),
        };
        for mut state in states {
            let host_if = state
                .leases
                .get(ns.name())
                .map(|l| l.host_interface.clone())
                .unwrap_or_else(|| {
                    names::host_veth_name(&self.config.root, &state.name, ns.name())
                });
            let mut ok = true;
            // Ports are recorded before their rules are made, so a lease without ports
            // has no rules to remove (and the `nft` round trips are skipped). Without a
            // lease (a crash before it was written) look anyway.
            let has_ports = state
                .leases
                .get(ns.name())
                .is_none_or(|l| !l.ports.is_empty());
            if has_ports {
                if let Err(e) = self.firewall.unpublish(&fw_net(&state), &host_if) {
                    errors.push(e);
                    ok = false;
                }
                if let Err(e) = proxy_helper(&self.config.run, &state.bridge, &host_if).stop() {
                    errors.push(e);
                    ok = false;
                }
            }
            // Deleting one end of a veth pair deletes the other, wherever it is.
            if let Err(e) = host.delete_link(&host_if) {
                errors.push(e.into());
                ok = false;
            }
            if ok && state.leases.remove(ns.name()).is_some() {
                if let Err(e) = self.store.save(&lock, &state) {
                    errors.push(e);
                }
            }
        }
        TeardownError::check(errors)
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
        let mut host = match host_netlink() {
            Ok(h) => h,
            Err(e) => return Err(TeardownError(vec![e])),
        };
        // Every port of the bridge, whether a lease names it or not.
        let mut ports: BTreeSet<String> = state
            .iter()
            .flat_map(|s| s.leases.values().map(|l| l.host_interface.clone()))
            .collect();
        match host.link_by_name(&bridge) {
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
        for port in ports {
            if let Err(e) = host.delete_link(&port) {
                errors.push(e.into());
            }
        }
        if links_are_ours {
            if let Err(e) = host.delete_link(&bridge) {
                errors.push(e.into());
            }
        }
        if let Err(e) = dns_helper(&self.config.run, name).stop() {
            errors.push(e);
        }
        for proxy in Helper::list(&self.config.run, &format!("proxy-{bridge}-")) {
            if let Err(e) = proxy.stop() {
                errors.push(e);
            }
        }
        let fw = FirewallNetwork {
            name,
            bridge: &bridge,
            subnet: state.as_ref().map(|s| s.subnet).unwrap_or_default(),
            gateway: state
                .as_ref()
                .map(|s| s.gateway)
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            internal: state.as_ref().is_some_and(|s| s.internal),
        };
        if let Err(e) = self.firewall.teardown_network(&fw) {
            errors.push(e);
        }
        if errors.is_empty() {
            if let Err(e) = self.store.remove(&lock, name) {
                errors.push(e);
            }
        }
        TeardownError::check(errors)
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

    /// The networks on record (including ones a crashed run left), for `down` to remove.
    pub fn networks(&self) -> Result<Vec<NetworkInfo>> {
        let lock = self.store.lock()?;
        Ok(self
            .store
            .all(&lock)?
            .into_iter()
            .map(|s| NetworkInfo {
                name: s.name,
                bridge: s.bridge,
                subnet: s.subnet,
                gateway: s.gateway,
                internal: s.internal,
            })
            .collect())
    }
}

fn fw_net(state: &NetworkState) -> FirewallNetwork<'_> {
    FirewallNetwork {
        name: &state.name,
        bridge: &state.bridge,
        subnet: state.subnet,
        gateway: state.gateway,
        internal: state.internal,
    }
}

fn proxy_helper(run: &std::path::Path, bridge: &str, host_if: &str) -> Helper {
    Helper::new(run, &format!("proxy-{bridge}-{host_if}"))
}

fn dns_helper(run: &std::path::Path, network: &str) -> Helper {
    Helper::new(run, &format!("dns-{network}"))
}

fn host_netlink() -> Result<Netlink> {
    Netlink::open().map_err(|e| NetError::io("open netlink socket", e))
}

/// Subnets routed on the host (the default route aside), naming the interface they go
/// through; a route through our own bridge (a network being re-made) does not count.
fn host_taken_subnets(nl: &mut Netlink, own_bridge: &str) -> Result<Vec<Taken>> {
    let links = nl.links()?;
    let name_of = |idx: u32| {
        links
            .iter()
            .find(|l| l.index == idx)
            .map(|l| l.name.clone())
    };
    let mut out = Vec::new();
    for r in nl.routes_v4()? {
        if r.dst.prefix_len() == 0 {
            continue;
        }
        let by = r.oif.and_then(name_of);
        if by.as_deref() == Some(own_bridge) {
            continue;
        }
        out.push(Taken { net: r.dst, by });
    }
    Ok(out)
}
