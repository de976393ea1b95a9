//! `/etc/resolv.conf` and `/etc/hosts` for a container, as text (the engine writes them
//! into the container's root filesystem, or bind-mounts them).

use std::fmt::Write;
use std::net::IpAddr;

/// One `extra_hosts` entry (`host:ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    pub name: String,
    pub address: IpAddr,
}

/// A resolv.conf: the stack's `dns` servers if it set any, else `gateways` (the Berth
/// responders of the container's networks, default network first); `dns_search` domains;
/// `options` (`dns_opt`).
///
/// ```
/// use berth_networking::dns::resolv_conf;
/// let text = resolv_conf(&["10.89.0.1".parse().unwrap()], &[], &[], &[]);
/// assert_eq!(text, "nameserver 10.89.0.1\n");
/// ```
pub fn resolv_conf(
    gateways: &[IpAddr],
    dns: &[IpAddr],
    dns_search: &[String],
    options: &[String],
) -> String {
    let mut out = String::new();
    let servers = if dns.is_empty() { gateways } else { dns };
    // The C library reads at most three nameservers.
    for s in servers.iter().take(3) {
        let _ = writeln!(out, "nameserver {s}");
    }
    if !dns_search.is_empty() {
        let _ = writeln!(out, "search {}", dns_search.join(" "));
    }
    if !options.is_empty() {
        let _ = writeln!(out, "options {}", options.join(" "));
    }
    out
}

/// An /etc/hosts: localhost lines, the container's own `hostname` on each of its
/// addresses, then `extra_hosts`.
pub fn hosts_file(hostname: &str, addresses: &[IpAddr], extra: &[ExtraHost]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for a in addresses {
        let _ = writeln!(out, "{a}\t{hostname}");
    }
    for e in extra {
        let _ = writeln!(out, "{}\t{}", e.address, e.name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_prefers_the_stacks_dns_and_keeps_search_and_options() {
        let gw: IpAddr = "10.89.0.1".parse().unwrap();
        let own: IpAddr = "10.89.9.9".parse().unwrap();
        let t = resolv_conf(
            &[gw],
            &[own],
            &["svc.local".into(), "corp".into()],
            &["ndots:2".into()],
        );
        assert_eq!(
            t,
            "nameserver 10.89.9.9\nsearch svc.local corp\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_file_has_localhost_hostname_and_extra_hosts() {
        let t = hosts_file(
            "web",
            &["10.89.0.2".parse().unwrap()],
            &[ExtraHost {
                name: "db.example".into(),
                address: "10.1.2.3".parse().unwrap(),
            }],
        );
        assert!(t.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(t.contains("10.89.0.2\tweb\n"));
        assert!(t.ends_with("10.1.2.3\tdb.example\n"));
    }
}
