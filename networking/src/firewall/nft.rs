//! nftables driver (placeholder until the firewall commit).
use super::*;

/// Rules in a table of Berth's own.
#[derive(Debug, Clone)]
pub struct Nftables {
    pub table: String,
}

impl Nftables {
    pub fn new(table: impl Into<String>) -> Self {
        Nftables {
            table: table.into(),
        }
    }
}

impl FirewallDriver for Nftables {
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
        _: Ipv4Addr,
        _: &[PortMapping],
    ) -> Result<()> {
        Ok(())
    }
    fn unpublish(&self, _: &FirewallNetwork<'_>, _: &str) -> Result<()> {
        Ok(())
    }
}
