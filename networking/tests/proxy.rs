//! The userspace proxy fallback for published ports, on the real kernel: where the
//! firewall driver cannot publish (a driver standing in for a host without nftables NAT),
//! ports still answer on 127.0.0.1 and from "another host" (a namespace the test made,
//! joined to the host by its own veth pair). Traffic stays in the test's namespaces and on
//! loopback.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use berth_networking::{
    Config, FirewallDriver, FirewallNetwork, HelperProgram, IpamConfig, NetError, NetworkSpec,
    Networking, Nftables, PortMapping, PublishMode,
};
use common::*;

/// Isolation works, NAT does not: what a host without nftables NAT support looks like.
struct NoNat(Nftables);

impl FirewallDriver for NoNat {
    fn setup_network(&self, net: &FirewallNetwork<'_>) -> berth_networking::Result<()> {
        self.0.setup_network(net)
    }
    fn teardown_network(&self, net: &FirewallNetwork<'_>) -> berth_networking::Result<()> {
        self.0.teardown_network(net)
    }
    fn publish(
        &self,
        _: &FirewallNetwork<'_>,
        _: &str,
        _: &berth_networking::PublishTarget,
        _: &[PortMapping],
    ) -> berth_networking::Result<()> {
        Err(NetError::Firewall("nat: Operation not supported".into()))
    }
    fn unpublish(&self, net: &FirewallNetwork<'_>, key: &str) -> berth_networking::Result<()> {
        self.0.unpublish(net, key)
    }
}

fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn published_ports_fall_back_to_the_userspace_proxy() {
    // The harness's env gives the dirs, names, subnets and cleanup; the Networking under
    // test is built over the same dirs with the NAT-less driver.
    let env = TestEnv::new(40);
    let config: Config = env.net.config().clone();
    let net = Networking::new(config, Box::new(NoNat(Nftables::new(env.table.clone()))))
        .with_port_proxy(
            HelperProgram {
                program: env!("CARGO_BIN_EXE_berth-port-proxy").into(),
                args: vec![],
            },
            PublishMode::KernelElseProxy,
        );
    let name = env.name("proxied");
    env.track_network(&name);
    let info = net
        .ensure_network(&NetworkSpec {
            name: name.clone(),
            ipam: IpamConfig {
                subnet: Some(env.subnet(0)),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
    let (out, host_ip, _) = env.outside();
    let web = env.netns("web");
    env.track_netns(&web);
    net.attach(
        &web,
        &[berth_networking::AttachRequest {
            network: name.clone(),
            ..Default::default()
        }],
    )
    .unwrap();
    let _tcp = Server::tcp(&web, 80, "proxied hi to {peer}");
    let _udp = Server::udp(&web, 53, "proxied udp");
    let (tp, up) = (env.port(0), env.port(1));
    net.publish(
        &web,
        &name,
        &[PortMapping::tcp(tp, 80), PortMapping::udp(up, 53)],
    )
    .unwrap();

    assert_eq!(
        tcp_get(None, sock(Ipv4Addr::LOCALHOST, tp)).unwrap(),
        format!("proxied hi to {}", info.gateway)
    );
    assert_eq!(
        udp_get(None, sock(Ipv4Addr::LOCALHOST, up)).unwrap(),
        "proxied udp"
    );
    let got = tcp_get(Some(&out), sock(host_ip, tp)).unwrap();
    assert!(got.starts_with("proxied hi"), "{got}");
    assert_eq!(
        udp_get(Some(&out), sock(host_ip, up)).unwrap(),
        "proxied udp"
    );
    // A member of the network reaches it through the host as well (hairpin through the
    // proxy, past the input chain that keeps other host services out of reach).
    let sibling = env.netns("sibling");
    env.track_netns(&sibling);
    net.attach(
        &sibling,
        &[berth_networking::AttachRequest {
            network: name.clone(),
            ..Default::default()
        }],
    )
    .unwrap();
    let got = tcp_get(Some(&sibling), sock(info.gateway, tp)).unwrap();
    assert!(got.starts_with("proxied hi"), "{got}");
    assert_eq!(
        udp_get(Some(&sibling), sock(info.gateway, up)).unwrap(),
        "proxied udp"
    );
    net.detach(&sibling, None).unwrap();
    // No DNAT rule was made: this went through userspace.
    let rules = sh("nft", &["list", "table", "inet", &env.table]);
    assert!(!rules.contains("dnat ip to"), "{rules}");

    // The port is held: a second publisher is refused, naming it.
    let err = env.netns("other");
    net.attach(
        &err,
        &[berth_networking::AttachRequest {
            network: name.clone(),
            ..Default::default()
        }],
    )
    .unwrap();
    let e = net
        .publish(&err, &name, &[PortMapping::tcp(tp, 80)])
        .unwrap_err();
    assert!(e.to_string().contains(&tp.to_string()), "{e}");

    // Detach stops the proxy and frees the port.
    net.detach(&web, None).unwrap();
    assert!(tcp_get(None, sock(Ipv4Addr::LOCALHOST, tp)).is_err());
    net.detach(&err, None).unwrap();
    net.remove_network(&name).unwrap();
    assert!(!env.net.config().run.join("helpers").exists());
    env.teardown();
    let left = env.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn a_publish_that_fails_holds_no_port() {
    let env = TestEnv::new(41);
    let net = Networking::new(
        env.net.config().clone(),
        Box::new(NoNat(Nftables::new(env.table.clone()))),
    );
    let name = env.name("nonat");
    env.track_network(&name);
    net.ensure_network(&NetworkSpec {
        name: name.clone(),
        ipam: IpamConfig {
            subnet: Some(env.subnet(0)),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let a = env.netns("a");
    let b = env.netns("b");
    for ns in [&a, &b] {
        net.attach(
            ns,
            &[berth_networking::AttachRequest {
                network: name.clone(),
                ..Default::default()
            }],
        )
        .unwrap();
    }
    let p = env.port(0);
    // Kernel only, and the kernel path fails: an error that says so...
    let e = net
        .publish(&a, &name, &[PortMapping::tcp(p, 80)])
        .unwrap_err();
    assert!(matches!(e, NetError::Firewall(_)), "{e}");
    // ...and no record of the port: another container may take it.
    let state = std::fs::read_to_string(net.state_file(&name)).unwrap();
    assert!(!state.contains("host_port"), "{state}");
    assert!(state.contains("\"ports\": []"), "{state}");
    let e = net
        .publish(&b, &name, &[PortMapping::tcp(p, 80)])
        .unwrap_err();
    assert!(matches!(e, NetError::Firewall(_)), "not PortInUse: {e}");
}

#[test]
fn the_userspace_proxy_serves_ipv6_clients_too() {
    let env = TestEnv::new(42);
    let net = Networking::new(
        env.net.config().clone(),
        Box::new(NoNat(Nftables::new(env.table.clone()))),
    )
    .with_port_proxy(
        HelperProgram {
            program: env!("CARGO_BIN_EXE_berth-port-proxy").into(),
            args: vec![],
        },
        PublishMode::Proxy,
    );
    let name = env.name("proxied6");
    env.track_network(&name);
    let info = net
        .ensure_network(&NetworkSpec {
            name: name.clone(),
            ipam: IpamConfig {
                subnet: Some(env.subnet(0)),
                ..Default::default()
            },
            ipv6: Some(berth_networking::Ipv6Config {
                subnet: Some(env.subnet6(0)),
                gateway: None,
            }),
            ..Default::default()
        })
        .unwrap();
    let (out, _, _) = env.outside();
    let (host6, _) = env.outside6_addrs();
    let web = env.netns("web");
    net.attach(
        &web,
        &[berth_networking::AttachRequest {
            network: name.clone(),
            ..Default::default()
        }],
    )
    .unwrap();
    let _tcp = Server::tcp6(&web, 80, "to {peer}");
    let _udp = Server::udp(&web, 53, "udp4");
    let (tp, up) = (env.port(0), env.port(1));
    net.publish(
        &web,
        &name,
        &[PortMapping::tcp(tp, 80), PortMapping::udp(up, 53)],
    )
    .unwrap();
    let gw6 = info.gateway6.unwrap();
    // IPv6 clients (::1 too, which DNAT cannot serve) reach the container's IPv6 address...
    assert_eq!(
        tcp_get(None, SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, tp))).unwrap(),
        format!("to {gw6}")
    );
    assert_eq!(
        tcp_get(Some(&out), SocketAddr::from((host6, tp))).unwrap(),
        format!("to {gw6}")
    );
    // ...IPv4 clients its IPv4 address, on the same port.
    assert_eq!(
        tcp_get(None, sock(Ipv4Addr::LOCALHOST, tp)).unwrap(),
        format!("to ::ffff:{}", info.gateway)
    );
    // A UDP service with IPv4 only answers IPv4 clients.
    assert_eq!(
        udp_get(None, sock(Ipv4Addr::LOCALHOST, up)).unwrap(),
        "udp4"
    );
    net.detach(&web, None).unwrap();
    net.remove_network(&name).unwrap();
    env.teardown();
    let left = env.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}
