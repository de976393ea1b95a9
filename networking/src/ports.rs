//! Published ports as typed values (the orchestrator turns Compose's short and long
//! `ports:` syntax into these; a range becomes one mapping per port with
//! [`PortMapping::range`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One host port forwarded to one container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// Only connections to this host address are forwarded; `None` means every address of
    /// the host (Compose's default): IPv4 ones, 127.0.0.1 included, and IPv6 ones (not
    /// `::1`) when the container has an IPv6 address on the network.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// `host_port:container_port/tcp` on every host address.
    pub fn tcp(host_port: u16, container_port: u16) -> Self {
        PortMapping {
            host_ip: None,
            host_port,
            container_port,
            protocol: Protocol::Tcp,
        }
    }

    /// `host_port:container_port/udp` on every host address.
    pub fn udp(host_port: u16, container_port: u16) -> Self {
        PortMapping {
            protocol: Protocol::Udp,
            ..Self::tcp(host_port, container_port)
        }
    }

    /// A range (`8000-8003:9000-9003`) as one mapping per port; both ranges must be the
    /// same length, as Compose requires.
    pub fn range(
        host_ip: Option<IpAddr>,
        host: (u16, u16),
        container: (u16, u16),
        protocol: Protocol,
    ) -> Result<Vec<Self>> {
        let spec = format!(
            "{}-{}:{}-{}/{protocol}",
            host.0, host.1, container.0, container.1
        );
        if host.0 > host.1 || container.0 > container.1 {
            return Err(NetError::InvalidPort {
                spec,
                problem: "a range must go from low to high".into(),
            });
        }
        if host.1 - host.0 != container.1 - container.0 {
            return Err(NetError::InvalidPort {
                spec,
                problem: "host and container ranges differ in length".into(),
            });
        }
        Ok((0..=host.1 - host.0)
            .map(|i| PortMapping {
                host_ip,
                host_port: host.0 + i,
                container_port: container.0 + i,
                protocol,
            })
            .collect())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.host_port == 0 || self.container_port == 0 {
            return Err(NetError::InvalidPort {
                spec: self.to_string(),
                problem: "port 0 cannot be published".into(),
            });
        }
        Ok(())
    }

    /// Two mappings that would claim the same host socket.
    pub(crate) fn clashes(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (None, _) | (_, None) => true,
                (Some(a), Some(b)) => a == b,
            }
    }

    /// Refuses a host port that a process on the host already listens on: the kernel
    /// would otherwise silently steer that port's traffic away from it. Must run in the
    /// host's network namespace.
    pub(crate) fn check_host_port_free(&self) -> Result<()> {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let addr = SocketAddr::new(ip, self.host_port);
        let res = match self.protocol {
            Protocol::Tcp => TcpListener::bind(addr).map(drop),
            Protocol::Udp => UdpSocket::bind(addr).map(drop),
        };
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(NetError::PortInUse {
                host_ip: ip,
                port: self.host_port,
                protocol: self.protocol,
                by: Some("another process on this host".into()),
            }),
            // A host_ip that is not an address of this host.
            Err(e) => Err(NetError::InvalidPort {
                spec: self.to_string(),
                problem: format!("cannot use host address {ip}: {e}"),
            }),
        }
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_and_are_checked() {
        let r = PortMapping::range(None, (8000, 8002), (9000, 9002), Protocol::Udp).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[2].to_string(), "8002:9002/udp");
        assert!(PortMapping::range(None, (8000, 8002), (9000, 9001), Protocol::Tcp).is_err());
    }

    #[test]
    fn clashes_consider_ip_and_protocol() {
        let a = PortMapping::tcp(8080, 80);
        let mut b = PortMapping::tcp(8080, 81);
        assert!(a.clashes(&b));
        b.protocol = Protocol::Udp;
        assert!(!a.clashes(&b));
        let c = PortMapping {
            host_ip: Some(Ipv4Addr::LOCALHOST.into()),
            ..PortMapping::tcp(8080, 80)
        };
        let d = PortMapping {
            host_ip: Some(Ipv4Addr::new(127, 0, 0, 2).into()),
            ..PortMapping::tcp(8080, 80)
        };
        assert!(!c.clashes(&d));
        assert!(a.clashes(&c));
        let e = PortMapping {
            host_ip: Some("fd00::5".parse().unwrap()),
            ..PortMapping::tcp(8080, 80)
        };
        assert_eq!(e.to_string(), "[fd00::5]:8080:80/tcp");
    }
}
