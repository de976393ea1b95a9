//! IP address management: which subnet a network gets, which address an attachment gets.
//! Pure functions over plain values, so every rule here is unit-tested without root; the
//! leases themselves are persisted by the state module (JSON files under `BERTH_ROOT/networks`).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
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
                subnet: subnet.into(),
                existing: t.net.into(),
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
            pool: pool.base.into(),
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
                address: ip.into(),
                subnet: subnet.into(),
                reason,
            });
        }
        if let Some((_, holder)) = used.iter().find(|(u, _)| *u == ip) {
            return Err(NetError::AddressInUse {
                network: network.into(),
                address: ip.into(),
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
            range: range.into(),
        })
}

// ------------------------------------------------------------------------ IPv6

/// Where IPv6 networks without a configured subnet take theirs from: a ULA /48 cut into
/// /64s (65536 of them), searched from a place fixed by the network's name.
pub const DEFAULT_POOL6: &str = "fdb3:7e11:a5f0::/48";

/// The IPv6 `ipam.config` entry of a network with `enable_ipv6`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Config {
    pub subnet: Option<Ipv6Net>,
    pub gateway: Option<Ipv6Addr>,
}

/// Like [`choose_subnet`], for IPv6: the configured subnet unless it overlaps `taken`,
/// else the first free /64 of [`DEFAULT_POOL6`] from the hash's place.
pub fn choose_subnet6(
    network: &str,
    cfg: &Ipv6Config,
    hash: u64,
    taken: &[(Ipv6Net, Option<String>)],
) -> Result<Ipv6Net> {
    let clash = |c: Ipv6Net| {
        taken
            .iter()
            .find(|(t, _)| t.contains(&c.network()) || c.contains(&t.network()))
    };
    if let Some(subnet) = cfg.subnet {
        let subnet = subnet.trunc();
        if let Some((t, by)) = clash(subnet) {
            return Err(NetError::SubnetOverlap {
                network: network.into(),
                subnet: subnet.into(),
                existing: (*t).into(),
                by: by.clone(),
            });
        }
        return Ok(subnet);
    }
    let pool: Ipv6Net = DEFAULT_POOL6.parse().expect("literal");
    let n: u64 = 1 << (64 - pool.prefix_len());
    let base = u128::from(pool.network());
    let start = hash % n;
    (0..n)
        .map(|i| {
            let idx = u128::from((start + i) % n);
            Ipv6Net::new(Ipv6Addr::from(base + (idx << 64)), 64).expect("/64")
        })
        .find(|c| clash(*c).is_none())
        .ok_or(NetError::PoolExhausted {
            network: network.into(),
            pool: pool.into(),
            prefix: 64,
        })
}

/// The IPv6 gateway: configured (checked), else the subnet's first address.
pub fn gateway6(network: &str, subnet: Ipv6Net, cfg: &Ipv6Config) -> Result<Ipv6Addr> {
    if subnet.prefix_len() > 126 {
        return Err(NetError::InvalidNetwork {
            network: network.into(),
            problem: format!("IPv6 subnet {subnet} is too small (/126 at most)"),
        });
    }
    match cfg.gateway {
        Some(g) if subnet.contains(&g) && g != subnet.network() => Ok(g),
        Some(g) => Err(NetError::InvalidNetwork {
            network: network.into(),
            problem: format!("gateway {g} is not a usable address of subnet {subnet}"),
        }),
        None => Ok(Ipv6Addr::from(u128::from(subnet.network()) + 1)),
    }
}

/// Picks an IPv6 address: the static `ipv6_address` (checked), else the lowest free one
/// from the subnet's second address on.
pub fn allocate6(
    network: &str,
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    requested: Option<Ipv6Addr>,
    used: &[(Ipv6Addr, String)],
) -> Result<Ipv6Addr> {
    if let Some(ip) = requested {
        let reason = if !subnet.contains(&ip) {
            Some("it is outside the subnet")
        } else if ip == subnet.network() {
            Some("it is the subnet-router anycast address")
        } else if ip == gateway {
            Some("it is the gateway")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(NetError::InvalidAddress {
                network: network.into(),
                address: ip.into(),
                subnet: subnet.into(),
                reason,
            });
        }
        if let Some((_, holder)) = used.iter().find(|(u, _)| *u == ip) {
            return Err(NetError::AddressInUse {
                network: network.into(),
                address: ip.into(),
                holder: holder.clone(),
            });
        }
        return Ok(ip);
    }
    let used: BTreeSet<Ipv6Addr> = used.iter().map(|(ip, _)| *ip).collect();
    let base = u128::from(subnet.network());
    let size: u128 = if subnet.prefix_len() >= 128 {
        1
    } else {
        1u128 << (128 - subnet.prefix_len())
    };
    // A bounded search: far more addresses than one network ever has members.
    (1..size.min(1 << 20))
        .map(|i| Ipv6Addr::from(base + i))
        .find(|ip| *ip != gateway && !used.contains(ip))
        .ok_or(NetError::SubnetExhausted {
            network: network.into(),
            range: subnet.into(),
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
    fn ipv6_subnets_addresses_and_checks() {
        let cfg = Ipv6Config::default();
        let a = choose_subnet6("n", &cfg, 7, &[]).unwrap();
        assert_eq!(a.prefix_len(), 64);
        let pool: Ipv6Net = DEFAULT_POOL6.parse().unwrap();
        assert!(pool.contains(&a));
        let b = choose_subnet6("n", &cfg, 7, &[(a, None)]).unwrap();
        assert_ne!(a, b);
        let g = gateway6("n", a, &cfg).unwrap();
        assert_eq!(u128::from(g), u128::from(a.network()) + 1);
        let first = allocate6("n", a, g, None, &[]).unwrap();
        assert_eq!(u128::from(first), u128::from(a.network()) + 2);
        let used = vec![(first, "x".to_string())];
        assert!(allocate6("n", a, g, Some(first), &used)
            .unwrap_err()
            .to_string()
            .contains("in use by x"));
        assert!(matches!(
            allocate6("n", a, g, Some(g), &used),
            Err(NetError::InvalidAddress { .. })
        ));
        let conf = Ipv6Config {
            subnet: Some("fd00::/64".parse().unwrap()),
            gateway: None,
        };
        let e = choose_subnet6(
            "n",
            &conf,
            0,
            &[("fd00::/64".parse().unwrap(), Some("eth0".into()))],
        )
        .unwrap_err();
        assert!(e.to_string().contains("overlaps fd00::/64"), "{e}");
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
