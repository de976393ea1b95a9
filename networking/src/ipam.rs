//! IP address management: which subnet a network gets, which address an attachment gets.
//! Pure functions over plain values, so every rule here is unit-tested without root; the
//! leases themselves are persisted by the state module (JSON files under `BERTH_ROOT/networks`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// Where networks without an `ipam.config` subnet take theirs from: `base` cut into
/// subnets of length `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub base: Ipv4Net,
    pub prefix: u8,
}

impl Default for Pool {
    /// `10.89.0.0/16` in `/24`s: the range Podman uses too, away from Docker's 172.17+.
    fn default() -> Self {
        Pool {
            base: "10.89.0.0/16".parse().expect("valid literal"),
            prefix: 24,
        }
    }
}

/// The `ipam.config` entry of a network (IPv4), all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// Dynamic addresses come only from here (static ones from anywhere in the subnet).
    pub ip_range: Option<Ipv4Net>,
}

/// A subnet already routed on the host, and by what (for the error message).
#[derive(Debug, Clone)]
pub struct Taken {
    pub net: Ipv4Net,
    pub by: Option<String>,
}

/// Picks the subnet for `network`. With a configured subnet: it, unless it overlaps one
/// in `taken`. Otherwise the first free subnet of the pool, starting from one chosen by
/// the network's stable hash, so the same network gets the same subnet across `down`/`up`
/// (as long as it stays free) without any state kept after removal.
pub fn choose_subnet(
    network: &str,
    cfg: &IpamConfig,
    pool: &Pool,
    hash: u64,
    taken: &[Taken],
) -> Result<Ipv4Net> {
    if let Some(subnet) = cfg.subnet {
        let subnet = subnet.trunc();
        if let Some(t) = taken.iter().find(|t| overlaps(t.net, subnet)) {
            return Err(NetError::SubnetOverlap {
                network: network.into(),
                subnet,
                existing: t.net,
                by: t.by.clone(),
            });
        }
        return Ok(subnet);
    }
    let candidates: Vec<Ipv4Net> = pool
        .base
        .subnets(pool.prefix)
        .map_err(|_| NetError::InvalidNetwork {
            network: network.into(),
            problem: format!("pool {} cannot be cut into /{}", pool.base, pool.prefix),
        })?
        .collect();
    let n = candidates.len();
    let start = (hash % n as u64) as usize;
    (0..n)
        .map(|i| candidates[(start + i) % n])
        .find(|c| !taken.iter().any(|t| overlaps(t.net, *c)))
        .ok_or(NetError::PoolExhausted {
            network: network.into(),
            pool: pool.base,
            prefix: pool.prefix,
        })
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Checks an `ipam.config` against the chosen subnet and returns (gateway, ip_range).
pub fn gateway_and_range(
    network: &str,
    subnet: Ipv4Net,
    cfg: &IpamConfig,
) -> Result<(Ipv4Addr, Option<Ipv4Net>)> {
    let bad = |problem: String| NetError::InvalidNetwork {
        network: network.into(),
        problem,
    };
    if subnet.prefix_len() > 30 {
        return Err(bad(format!(
            "subnet {subnet} is too small: it needs room for a gateway and a container (/30 at most)"
        )));
    }
    let gateway = match cfg.gateway {
        Some(g) => {
            if !usable(subnet, g) {
                return Err(bad(format!(
                    "gateway {g} is not a usable address of subnet {subnet}"
                )));
            }
            g
        }
        None => subnet.hosts().next().expect("a /30 or larger has hosts"),
    };
    if let Some(r) = cfg.ip_range {
        if !subnet.contains(&r) {
            return Err(bad(format!("ip_range {r} is not inside subnet {subnet}")));
        }
    }
    Ok((gateway, cfg.ip_range))
}

/// Not the network address, not the broadcast address, inside the subnet.
fn usable(subnet: Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
}

/// Picks an address for a new lease. `requested` is a static `ipv4_address`; otherwise the
/// lowest free address of `ip_range` (or the subnet). `used` holds every leased address
/// with its holder's name.
pub fn allocate(
    network: &str,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    ip_range: Option<Ipv4Net>,
    requested: Option<Ipv4Addr>,
    used: &[(Ipv4Addr, String)],
) -> Result<Ipv4Addr> {
    if let Some(ip) = requested {
        let reason = if !subnet.contains(&ip) {
            Some("it is outside the subnet")
        } else if ip == subnet.network() {
            Some("it is the network address")
        } else if ip == subnet.broadcast() {
            Some("it is the broadcast address")
        } else if ip == gateway {
            Some("it is the gateway")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(NetError::InvalidAddress {
                network: network.into(),
                address: ip,
                subnet,
                reason,
            });
        }
        if let Some((_, holder)) = used.iter().find(|(u, _)| *u == ip) {
            return Err(NetError::AddressInUse {
                network: network.into(),
                address: ip,
                holder: holder.clone(),
            });
        }
        return Ok(ip);
    }
    let range = ip_range.unwrap_or(subnet);
    let used: BTreeSet<Ipv4Addr> = used.iter().map(|(ip, _)| *ip).collect();
    range
        .hosts()
        .chain(std::iter::once(range.broadcast()))
        .chain(std::iter::once(range.network()))
        .find(|ip| usable(subnet, *ip) && *ip != gateway && !used.contains(ip))
        .ok_or(NetError::SubnetExhausted {
            network: network.into(),
            range,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn pool_skips_routed_subnets_and_is_stable() {
        let pool = Pool {
            base: net("10.50.0.0/22"),
            prefix: 24,
        };
        let cfg = IpamConfig::default();
        let a = choose_subnet("n", &cfg, &pool, 1, &[]).unwrap();
        assert_eq!(a, net("10.50.1.0/24"));
        assert_eq!(choose_subnet("n", &cfg, &pool, 1, &[]).unwrap(), a);
        let taken = vec![Taken {
            net: net("10.50.0.0/23"),
            by: None,
        }];
        assert_eq!(
            choose_subnet("n", &cfg, &pool, 1, &taken).unwrap(),
            net("10.50.2.0/24")
        );
    }

    #[test]
    fn pool_exhausted_is_an_error() {
        let pool = Pool {
            base: net("10.50.0.0/23"),
            prefix: 24,
        };
        let taken = vec![Taken {
            net: net("10.0.0.0/8"),
            by: Some("eth9".into()),
        }];
        let e = choose_subnet("n", &IpamConfig::default(), &pool, 0, &taken).unwrap_err();
        assert!(matches!(e, NetError::PoolExhausted { .. }), "{e}");
    }

    #[test]
    fn configured_subnet_overlapping_a_route_is_refused() {
        let cfg = IpamConfig {
            subnet: Some(net("192.0.2.128/25")),
            ..Default::default()
        };
        let taken = vec![Taken {
            net: net("192.0.2.0/24"),
            by: Some("eth0".into()),
        }];
        let e = choose_subnet("n", &cfg, &Pool::default(), 0, &taken).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("overlaps 192.0.2.0/24") && msg.contains("eth0"),
            "{msg}"
        );
    }

    #[test]
    fn gateway_defaults_to_first_host_and_is_checked() {
        let s = net("10.9.0.0/24");
        let (g, r) = gateway_and_range("n", s, &IpamConfig::default()).unwrap();
        assert_eq!((g, r), (ip("10.9.0.1"), None));
        let bad = IpamConfig {
            gateway: Some(ip("10.9.1.1")),
            ..Default::default()
        };
        assert!(gateway_and_range("n", s, &bad).is_err());
        let bad = IpamConfig {
            ip_range: Some(net("10.9.0.0/23")),
            ..Default::default()
        };
        assert!(gateway_and_range("n", s, &bad).is_err());
    }

    #[test]
    fn allocation_skips_gateway_and_used_and_honours_range() {
        let s = net("10.9.0.0/24");
        let g = ip("10.9.0.1");
        let used = vec![(ip("10.9.0.2"), "a".to_string())];
        assert_eq!(
            allocate("n", s, g, None, None, &used).unwrap(),
            ip("10.9.0.3")
        );
        assert_eq!(
            allocate("n", s, g, Some(net("10.9.0.128/25")), None, &used).unwrap(),
            ip("10.9.0.129")
        );
    }

    #[test]
    fn static_addresses_are_checked() {
        let s = net("10.9.0.0/24");
        let g = ip("10.9.0.1");
        let used = vec![(ip("10.9.0.5"), "proj-web-1".to_string())];
        assert_eq!(
            allocate("n", s, g, None, Some(ip("10.9.0.7")), &used).unwrap(),
            ip("10.9.0.7")
        );
        let e = allocate("n", s, g, None, Some(ip("10.9.0.5")), &used).unwrap_err();
        assert!(e.to_string().contains("in use by proj-web-1"), "{e}");
        for bad in ["10.9.0.1", "10.9.0.0", "10.9.0.255", "10.9.1.5"] {
            assert!(matches!(
                allocate("n", s, g, None, Some(ip(bad)), &used),
                Err(NetError::InvalidAddress { .. })
            ));
        }
    }

    #[test]
    fn exhaustion_is_an_error() {
        let s = net("10.9.0.0/30"); // .1 gateway, .2 the only other host
        let g = ip("10.9.0.1");
        let used = vec![(ip("10.9.0.2"), "x".to_string())];
        assert!(matches!(
            allocate("n", s, g, None, None, &used),
            Err(NetError::SubnetExhausted { .. })
        ));
    }
}
