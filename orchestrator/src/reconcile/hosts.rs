//! A service's `extra_hosts` as /etc/hosts entries, with Docker's special address
//! `host-gateway` ("the host, as this container reaches it") resolved, and the
//! /etc/resolv.conf and /etc/hosts of a container on the host's network. `up` checked the
//! addresses before anything was made (`stack::validate::check_runnable`).

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

use berth_networking::dns::{self, ExtraHost};

use crate::stack::model::{Service, HOST_GATEWAY};

/// What `host-gateway` stands for in a container sharing the host's network namespace:
/// the host is the container's own loopback there. (Docker uses its default bridge's
/// address, docker0, also a host address; Berth has no such bridge.)
pub const HOST_NETWORK_GATEWAY: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The entries of `svc.extra_hosts`, in the order written; `host-gateway` becomes each of
/// `gateway` (the gateway of the container's first network, IPv4 then IPv6: the bridge's
/// address on the host, or [`HOST_NETWORK_GATEWAY`]). Addresses were checked by
/// `up`; one that does not parse is skipped rather than written.
pub fn entries(svc: &Service, gateway: &[IpAddr]) -> Vec<ExtraHost> {
    let mut out = Vec::new();
    for (name, ips) in &svc.extra_hosts.0 {
        for ip in ips {
            let addresses = match ip.as_str() {
                HOST_GATEWAY => gateway.to_vec(),
                other => other.parse().into_iter().collect(),
            };
            out.extend(addresses.into_iter().map(|address| ExtraHost {
                name: name.clone(),
                address,
            }));
        }
    }
    out
}

/// `network_mode: host`, as Docker does it: the host's /etc/resolv.conf (or, when the
/// service sets `dns`, `dns_search` or `dns_opt`, one made from those and the host's
/// nameservers) and the host's /etc/hosts with `extra_hosts` appended, `host-gateway`
/// being [`HOST_NETWORK_GATEWAY`].
pub fn host_network_files(svc: &Service) -> Result<(String, String), String> {
    let read = |path: &str| match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("reading the host's {path}: {e}")),
    };
    let mut resolv = read("/etc/resolv.conf")?;
    if !svc.dns.is_empty() || !svc.dns_search.is_empty() || !svc.dns_opt.is_empty() {
        let host_servers: Vec<IpAddr> = resolv
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        let servers: Vec<IpAddr> = svc.dns.iter().filter_map(|d| d.parse().ok()).collect();
        resolv = dns::resolv_conf(&host_servers, &servers, &svc.dns_search, &svc.dns_opt);
    }
    let mut hosts = read("/etc/hosts")?;
    if !hosts.is_empty() && !hosts.ends_with('\n') {
        hosts.push('\n');
    }
    for e in entries(svc, &[HOST_NETWORK_GATEWAY]) {
        let _ = writeln!(hosts, "{}\t{}", e.address, e.name);
    }
    Ok((resolv, hosts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(yaml: serde_json::Value) -> Service {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn host_gateway_becomes_every_gateway_address_in_place() {
        let svc = service(serde_json::json!({
            "extra_hosts": ["a=1.2.3.4", "gw=host-gateway", "v6=::1"]
        }));
        let gw: Vec<IpAddr> = vec!["10.233.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        let got: Vec<String> = entries(&svc, &gw)
            .iter()
            .map(|e| format!("{} {}", e.address, e.name))
            .collect();
        assert_eq!(got, ["1.2.3.4 a", "10.233.0.1 gw", "fd00::1 gw", "::1 v6"]);
    }

    #[test]
    fn a_host_network_container_gets_the_hosts_files_and_its_extra_hosts() {
        let svc = service(serde_json::json!({
            "extra_hosts": ["gw=host-gateway", "db=10.233.9.9"], "network_mode": "host"
        }));
        let (resolv, hosts) = host_network_files(&svc).unwrap();
        let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        assert!(hosts.starts_with(&host_hosts), "{hosts}");
        assert!(
            hosts.ends_with("127.0.0.1\tgw\n10.233.9.9\tdb\n"),
            "{hosts}"
        );
        assert_eq!(
            resolv,
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
        );
        let svc = service(serde_json::json!({"dns": ["10.233.0.53"], "dns_search": ["x"]}));
        let (resolv, _) = host_network_files(&svc).unwrap();
        assert_eq!(resolv, "nameserver 10.233.0.53\nsearch x\n");
    }
}
