//! The API the orchestrator calls: ensure a network, attach a namespace to networks,
//! publish ports, detach, remove. Each call validates its input before touching the host,
//! records what it is about to make before making it (so a crash half-way is found and
//! finished by removal), and is idempotent.
//!
//! `network` makes and removes networks, `attach` joins and detaches namespaces,
//! `publish` forwards ports and runs the DNS responder; the types and helpers they share
//! are here.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{NetError, Result, TeardownError};
use crate::firewall::{FirewallDriver, FirewallNetwork, Nftables, NoFirewall, PublishTarget};
use crate::helper::Helper;
use crate::ipam::{self, IpamConfig, Ipv6Config, Pool, Taken};
use crate::netlink::Netlink;
use crate::netns::{validate_name, Netns};
use crate::ports::PortMapping;
use crate::state::{Lease, NetworkState, Store};
use crate::{names, sysctl};

mod attach;
mod network;
mod publish;

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
    /// `enable_ipv6: true`, with the IPv6 `ipam.config` entry if any.
    pub ipv6: Option<Ipv6Config>,
    /// Whether unicast between two members skips the bridge (see networking/README.md,
    /// "Throughput between containers"); `None`: on unless `BERTH_NET_FAST_PATH=0`.
    /// Changing it on an existing network applies to members attached from then on.
    pub fast_path: Option<bool>,
}

/// What `ensure_network` made or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    pub subnet6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    /// Whether members attached from now on join the L2 fast path.
    pub fast_path: bool,
}

/// One network a namespace joins (from the service's `networks:`).
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    pub network: String,
    /// Static `ipv4_address`.
    pub ipv4_address: Option<Ipv4Addr>,
    /// Static `ipv6_address` (the network must have IPv6).
    pub ipv6_address: Option<Ipv6Addr>,
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
    /// On networks with IPv6: address and prefix, and the gateway.
    pub address6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
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
    /// Fast-path maps found or made by this process (see [`crate::fastpath::Maps`]).
    fast_maps: crate::fastpath::Maps,
    /// Bridges (by ifindex) this process gave the big GSO size (see `big_tcp_on_bridge`).
    tuned_bridges: std::sync::Mutex<BTreeSet<u32>>,
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
            fast_maps: Default::default(),
            tuned_bridges: Default::default(),
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
}

fn fw_net(state: &NetworkState) -> FirewallNetwork<'_> {
    FirewallNetwork {
        name: &state.name,
        bridge: &state.bridge,
        subnet: state.subnet,
        gateway: state.gateway,
        subnet6: state.subnet6,
        gateway6: state.gateway6,
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
impl NetworkInfo {
    fn of(state: &NetworkState) -> Self {
        NetworkInfo {
            name: state.name.clone(),
            bridge: state.bridge.clone(),
            subnet: state.subnet,
            gateway: state.gateway,
            internal: state.internal,
            subnet6: state.subnet6,
            gateway6: state.gateway6,
            fast_path: state.fast_path,
        }
    }
}

fn host_taken_subnets(nl: &mut Netlink, own_bridge: &str) -> Result<Vec<Taken>> {
    let links = nl.links()?;
    let name_of = |idx: u32| {
        links
            .iter()
            .find(|l| l.index == idx)
            .map(|l| l.name.clone())
    };
    let mut out = Vec::new();
    for r in nl.routes::<Ipv4Addr>()? {
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
