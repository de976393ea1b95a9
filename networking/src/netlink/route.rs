//! Routes of the main table, one code path for both address families: the family is the
//! address type ([`Ipv4Addr`] or [`Ipv6Addr`]) and [`Family`] says what differs.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, Result};

/// An address family, named by its address type.
pub trait Family: Copy + fmt::Display + fmt::Debug {
    /// A prefix of this family.
    type Net: Copy + fmt::Debug;
    const FAMILY: AddressFamily;
    /// For messages: `IPv4`, `IPv6`.
    const NAME: &'static str;
    const UNSPECIFIED: Self;
    fn to_route(self) -> RouteAddress;
    /// `None` for an address of the other family.
    fn from_route(a: &RouteAddress) -> Option<Self>;
    /// `None` for a prefix length too long for the family.
    fn net(self, prefix_len: u8) -> Option<Self::Net>;
}

impl Family for Ipv4Addr {
    type Net = Ipv4Net;
    const FAMILY: AddressFamily = AddressFamily::Inet;
    const NAME: &'static str = "IPv4";
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;
    fn to_route(self) -> RouteAddress {
        RouteAddress::Inet(self)
    }
    fn from_route(a: &RouteAddress) -> Option<Self> {
        match a {
            RouteAddress::Inet(a) => Some(*a),
            _ => None,
        }
    }
    fn net(self, prefix_len: u8) -> Option<Ipv4Net> {
        Ipv4Net::new(self, prefix_len).ok()
    }
}

impl Family for Ipv6Addr {
    type Net = Ipv6Net;
    const FAMILY: AddressFamily = AddressFamily::Inet6;
    const NAME: &'static str = "IPv6";
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;
    fn to_route(self) -> RouteAddress {
        RouteAddress::Inet6(self)
    }
    fn from_route(a: &RouteAddress) -> Option<Self> {
        match a {
            RouteAddress::Inet6(a) => Some(*a),
            _ => None,
        }
    }
    fn net(self, prefix_len: u8) -> Option<Ipv6Net> {
        Ipv6Net::new(self, prefix_len).ok()
    }
}

/// A route of the main table (IPv4 unless said).
#[derive(Debug, Clone)]
pub struct Route<A: Family = Ipv4Addr> {
    /// The destination; the default route shows as `0.0.0.0/0` or `::/0`.
    pub dst: A::Net,
    pub gateway: Option<A>,
    /// Index of the link the route goes out of.
    pub oif: Option<u32>,
}

impl Netlink {
    /// The routes of family `A` in the main table.
    pub fn routes<A: Family>(&mut self) -> Result<Vec<Route<A>>> {
        let mut req = RouteMessage::default();
        req.header.address_family = A::FAMILY;
        let msgs = self.dump(RouteNetlinkMessage::GetRoute(req), || {
            format!("list {} routes", A::NAME)
        })?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            if r.header.address_family != A::FAMILY {
                continue;
            }
            let mut table = u32::from(r.header.table);
            let mut dst = A::UNSPECIFIED;
            let mut gateway = None;
            let mut oif = None;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Oif(o) => oif = Some(*o),
                    RouteAttribute::Destination(d) => dst = A::from_route(d).unwrap_or(dst),
                    RouteAttribute::Gateway(g) => gateway = A::from_route(g).or(gateway),
                    _ => {}
                }
            }
            if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
                continue;
            }
            if let Some(dst) = dst.net(r.header.destination_prefix_length) {
                out.push(Route { dst, gateway, oif });
            }
        }
        Ok(out)
    }

    /// Destinations of the IPv6 routes of the main table, link-local ones and the
    /// default route left out: the prefixes the host's networks use.
    pub fn routes_v6(&mut self) -> Result<Vec<Ipv6Net>> {
        Ok(self
            .routes::<Ipv6Addr>()?
            .into_iter()
            .map(|r| r.dst)
            .filter(|d| d.prefix_len() > 0 && (d.addr().segments()[0] & 0xffc0) != 0xfe80)
            .collect())
    }

    /// Adds the default route of `gateway`'s family via `gateway`; one already there is
    /// fine.
    pub fn add_default_route<A: Family>(&mut self, gateway: A) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = A::FAMILY;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Static;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(gateway.to_route()));
        self.create(RouteNetlinkMessage::NewRoute(msg), || {
            format!("add {} default route via {gateway}", A::NAME)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_takes_only_its_own_addresses() {
        let v4 = Ipv4Addr::new(10, 232, 0, 1);
        let v6: Ipv6Addr = "fd00::1".parse().unwrap();
        assert_eq!(Ipv4Addr::from_route(&v4.to_route()), Some(v4));
        assert_eq!(Ipv6Addr::from_route(&v6.to_route()), Some(v6));
        assert_eq!(Ipv4Addr::from_route(&v6.to_route()), None);
        assert_eq!(Ipv6Addr::from_route(&v4.to_route()), None);
        assert_eq!(
            v4.net(24).map(|n| n.to_string()),
            Some("10.232.0.1/24".into())
        );
        assert_eq!(v4.net(33), None);
        assert_eq!(v6.net(129), None);
    }

    #[test]
    fn both_families_list_and_add_routes_in_a_namespace_of_their_own() {
        // A namespace that lives as long as this thread (nothing to clean up after it).
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let mut nl = Netlink::open().unwrap();
            nl.create_bridge("berthrt0", None, [2, 0, 0, 0xe8, 0, 1])
                .unwrap();
            let br = nl.link_by_name("berthrt0").unwrap().unwrap();
            nl.add_address(br.index, "10.232.1.1/24".parse().unwrap())
                .unwrap();
            nl.add_address6(br.index, "fd00:e8::1/64".parse().unwrap())
                .unwrap();
            nl.set_up(br.index).unwrap();
            let gw4 = Ipv4Addr::new(10, 232, 1, 254);
            let gw6: Ipv6Addr = "fd00:e8::fe".parse().unwrap();
            nl.add_default_route(gw4).unwrap();
            nl.add_default_route(gw6).unwrap();
            // Again: one already there is fine.
            nl.add_default_route(gw4).unwrap();
            nl.add_default_route(gw6).unwrap();

            let v4 = nl.routes::<Ipv4Addr>().unwrap();
            let subnet = v4
                .iter()
                .find(|r| r.dst.to_string() == "10.232.1.0/24")
                .unwrap_or_else(|| panic!("no subnet route in {v4:?}"));
            assert_eq!((subnet.oif, subnet.gateway), (Some(br.index), None));
            let default = v4.iter().find(|r| r.dst.prefix_len() == 0).unwrap();
            assert_eq!(default.gateway, Some(gw4), "{v4:?}");

            let v6 = nl.routes::<Ipv6Addr>().unwrap();
            let default6 = v6.iter().find(|r| r.dst.prefix_len() == 0).unwrap();
            assert_eq!(default6.gateway, Some(gw6), "{v6:?}");
            // The host's prefixes: the subnet, not the default route nor link-local ones.
            let subnets6 = nl.routes_v6().unwrap();
            assert_eq!(
                subnets6,
                vec!["fd00:e8::/64".parse::<Ipv6Net>().unwrap()],
                "{v6:?}"
            );
        })
        .join()
        .unwrap();
    }
}
