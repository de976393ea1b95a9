//! berth-networking: network namespaces, bridges, veth pairs, IPAM, firewall and DNS.
//!
//! The orchestrator drives everything through [`Networking`]: [`Networking::ensure_network`]
//! makes a bridge with a subnet, [`Networking::attach`] joins a persistent [`Netns`] to
//! networks and returns its addresses, [`Networking::publish`] forwards host ports,
//! [`Networking::detach`] and [`Networking::remove_network`] take it all away again.
//! Neither YAML nor Compose is known here: inputs are typed values.
//!
//! Kernel objects are made through netlink (never by running `ip`), firewall rules in an
//! nftables table of Berth's own. Every interface name contains `berth`.

pub mod dns;
mod error;
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
pub use firewall::{FirewallDriver, FirewallNetwork, Nftables, NoFirewall};
pub use helper::HelperProgram;
pub use ipam::{IpamConfig, Pool};
pub use manager::{
    AttachRequest, Attachment, Config, NetworkInfo, NetworkSpec, Networking, PublishMode,
};
pub use netns::Netns;
pub use ports::{PortMapping, Protocol};
