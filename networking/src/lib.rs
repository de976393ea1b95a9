//! berth-networking: network namespaces, bridges, veth pairs, IPAM, firewall and DNS.
//!
//! The orchestrator drives everything through [`Networking`] with typed values (neither
//! YAML nor Compose is known here):
//!
//! | call | makes / removes |
//! |---|---|
//! | [`Netns::create`] / [`Netns::remove`] | a persistent namespace file under `BERTH_RUN/netns/` |
//! | [`Networking::ensure_network`] | a bridge `berthbrXXXXXXXX` with the gateway address, firewall chains, the network's record |
//! | [`Networking::attach`] | per network: a veth pair (`berthvXXXXXXXXX` on the bridge, `ethN` inside), an address, the default route |
//! | [`Networking::publish`] | DNAT rules for `ports:` (or the userspace proxy, see [`PublishMode`]) |
//! | [`Networking::start_dns`] | the network's DNS responder process on the gateway |
//! | [`Networking::detach`] | the veth pairs, published ports and leases of a namespace |
//! | [`Networking::remove_network`] | everything of the network, also what a crashed run left |
//!
//! ```no_run
//! use berth_networking::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = Networking::with_nftables(Config::from_env());
//! let front = net.ensure_network(&NetworkSpec {
//!     name: "shop_front".into(),
//!     ipam: IpamConfig { subnet: Some("10.90.1.0/24".parse()?), ..Default::default() },
//!     ..Default::default()
//! })?;
//! net.start_dns(&front.name, &DnsOptions {
//!     program: HelperProgram { program: "/usr/lib/berth/berth-dns".into(), args: vec![] },
//!     upstreams: None, // the host's resolvers
//! })?;
//!
//! // One namespace per container (or per group sharing one: network_mode: service:X).
//! let ns = Netns::create(&net.config().run, "shop-web-1")?;
//! let eths = net.attach(&ns, &[AttachRequest {
//!     network: front.name.clone(),
//!     dns_names: vec!["web".into(), "shop-web-1".into()],
//!     ..Default::default() // ipv4_address, ipv6_address, priority
//! }])?;
//! net.publish(&ns, &front.name, &[PortMapping::tcp(8080, 80)])?;
//! let resolv = dns::resolv_conf(&[front.gateway.into()], &[], &[], &[]);
//! let hosts = dns::hosts_file("web", &[eths[0].address.addr().into()], &[]);
//! // ... the engine writes resolv/hosts and starts the container in ns.path() ...
//! # let _ = (resolv, hosts);
//!
//! // `down`:
//! net.detach(&ns, None)?;
//! ns.remove()?;
//! net.remove_network(&front.name)?;
//! # Ok(()) }
//! ```
//!
//! How it is built, and why:
//! - Kernel objects are made through netlink ([`netlink`], a small synchronous client over
//!   `netlink-packet-route`), never by running `ip`. A veth pair is made in one request
//!   with its inner end created directly inside the container's namespace.
//! - Namespace switches (`unshare`, `setns`) happen only on short-lived dedicated threads
//!   ([`Netns::run`]), never on the caller's threads, so the crate is safe to call from a
//!   multi-threaded program; sockets opened there stay in that namespace.
//! - Firewall rules live in an nftables table of Berth's own ([`Nftables`]), behind the
//!   [`FirewallDriver`] trait ([`NoFirewall`] changes nothing).
//! - Every record is written before the object it describes is made, so a crash at any
//!   point leaves something [`Networking::remove_network`] finds; every call is
//!   idempotent, and calling it again after a crash converges.
//! - Unicast between two members of a network skips the bridge (and the host's
//!   netfilter hooks that `br_netfilter` adds to it): a tc BPF program on each member's
//!   host-side veth hands it to the other member with `bpf_redirect_peer` (the L2 fast
//!   path, `NetworkSpec::fast_path`; networking/README.md says why and how).
//! - Every interface name contains `berth` and fits in 15 bytes.
//! - Host settings changed: `net.ipv4.ip_forward=1` for non-internal networks (as
//!   Docker does) and `route_localnet=1` on Berth's bridges (for published ports reached
//!   at 127.0.0.1).
//!
//! IPv6 (`enable_ipv6`, [`NetworkSpec::ipv6`]): dual-stack subnets (configured, or /64s
//! of a ULA pool), addresses, default routes, AAAA answers, isolation, masquerade, and
//! published ports on IPv6 host addresses (by DNAT every address but `::1`, which IPv6
//! cannot route out of the host; the userspace proxy serves `::1` too).
//!
//! A port published on every host address as host port 53 leaves what comes from Berth's
//! bridges to the DNS responders (containers ask their gateways, which are host addresses).

pub mod dns;
mod error;
mod fastpath;
mod fault;
pub mod firewall;
mod helper;
pub mod ipam;
mod manager;
mod names;
pub mod netlink;
mod netns;
mod ports;
pub mod proxy;
mod state;
mod sysctl;

pub use dns::DnsOptions;
pub use error::{NetError, Result, TeardownError};
pub use fastpath::FastPathError;
pub use firewall::{FirewallDriver, FirewallNetwork, Nftables, NoFirewall, PublishTarget};
pub use helper::HelperProgram;
pub use ipam::{IpamConfig, Ipv6Config, Pool};
pub use manager::{
    AttachRequest, Attachment, Config, NetworkInfo, NetworkSpec, Networking, PublishMode,
};
pub use netns::Netns;
pub use ports::{PortMapping, Protocol};
