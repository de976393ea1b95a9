//! The firewall seam. [`Nftables`] is the real driver; [`NoFirewall`] does nothing, for
//! hosts where the user manages the firewall and for tests of everything else.

mod nft;

pub use nft::Nftables;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::Result;
use crate::ports::PortMapping;

/// What the firewall needs to know of a network.
#[derive(Debug, Clone)]
pub struct FirewallNetwork<'a> {
    pub name: &'a str,
    pub bridge: &'a str,
    pub subnet: Ipv4Net,
    /// The bridge's own address (the host, on this network).
    pub gateway: Ipv4Addr,
    /// The IPv6 subnet and gateway, on networks with IPv6.
    pub subnet6: Option<ipnet::Ipv6Net>,
    pub gateway6: Option<std::net::Ipv6Addr>,
    pub internal: bool,
}

/// The addresses a published port leads to: the container's on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishTarget {
    pub v4: Ipv4Addr,
    /// On networks with IPv6: ports published on every host address (or on an IPv6 one)
    /// also answer over IPv6.
    pub v6: Option<std::net::Ipv6Addr>,
}

/// Rules for networks and published ports. Every method is idempotent; `teardown_*` of
/// something absent succeeds, so removal after a crash is the same call.
pub trait FirewallDriver: Send + Sync {
    /// Isolation from other networks, and masquerade or no way out (`internal`).
    fn setup_network(&self, net: &FirewallNetwork<'_>) -> Result<()>;
    /// Removes every rule of the network, its published ports included.
    fn teardown_network(&self, net: &FirewallNetwork<'_>) -> Result<()>;
    /// Forwards `ports` to `container` (an attachment named by `key`).
    fn publish(
        &self,
        net: &FirewallNetwork<'_>,
        key: &str,
        container: &PublishTarget,
        ports: &[PortMapping],
    ) -> Result<()>;
    /// Removes the published ports of attachment `key`.
    fn unpublish(&self, net: &FirewallNetwork<'_>, key: &str) -> Result<()>;
}

/// A driver that changes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFirewall;

impl FirewallDriver for NoFirewall {
    fn setup_network(&self, _: &FirewallNetwork<'_>) -> Result<()> {
        Ok(())
    }
    fn teardown_network(&self, _: &FirewallNetwork<'_>) -> Result<()> {
        Ok(())
    }
    fn publish(
        &self,
        _: &FirewallNetwork<'_>,
        _: &str,
        _: &PublishTarget,
        _: &[PortMapping],
    ) -> Result<()> {
        Ok(())
    }
    fn unpublish(&self, _: &FirewallNetwork<'_>, _: &str) -> Result<()> {
        Ok(())
    }
}
