//! The nftables side on the real kernel: isolation between networks, internal networks,
//! masquerade, published ports (TCP and UDP, from 127.0.0.1 and from "another host": a
//! namespace the test made, joined to the host by its own veth pair). Packets go only to
//! namespaces the test made and to 127.0.0.1.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use berth_networking::{NetError, PortMapping, Protocol};
use common::*;

fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn a_namespace_on_another_network_cannot_reach_them() {
    let env = TestEnv::new(20);
    let n1 = env.network("one", 0, false);
    let n2 = env.network("two", 1, false);
    let a = env.netns("a");
    let b = env.netns("b");
    let c = env.netns("c");
    let ea = env.attach(&a, &n1);
    env.attach(&b, &n1);
    let ec = env.attach(&c, &n2);
    let _sa = Server::tcp(&a, 7000, "a");
    let _sc = Server::tcp(&c, 7000, "c");
    assert_eq!(
        tcp_get(Some(&b), sock(ea.address.addr(), 7000)).unwrap(),
        "a"
    );
    // c has a route to a (default via its gateway, and the host forwards), so only the
    // firewall stands between them, both ways.
    let err = tcp_get(Some(&c), sock(ea.address.addr(), 7000)).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ),
        "{err}"
    );
    assert!(tcp_get(Some(&a), sock(ec.address.addr(), 7000)).is_err());
    let rules = sh("nft", &["list", "table", "inet", &env.table]);
    assert!(rules.contains(&format!("{}-fwd", n1.bridge)), "{rules}");
}

#[test]
fn internal_network_has_no_way_out_and_others_are_masqueraded() {
    let env = TestEnv::new(21);
    let open = env.network("open", 0, false);
    let closed = env.network("closed", 1, true);
    let (out, host_ip, out_ip) = env.outside();
    let _srv = Server::tcp(&out, 7100, "seen {peer}");
    let o = env.netns("o");
    let i = env.netns("i");
    env.attach(&o, &open);
    let ei = env.attach(&i, &closed);

    // The non-internal one goes out, masqueraded to the host's address on the way.
    assert_eq!(
        tcp_get(Some(&o), sock(out_ip, 7100)).unwrap(),
        format!("seen {host_ip}")
    );
    // The internal one has no default route at all...
    let routes = sh_in(&i, "ip", &["route"]);
    assert!(!routes.contains("default"), "{routes}");
    assert!(!ei.default_route);
    assert!(tcp_get(Some(&i), sock(out_ip, 7100)).is_err());
    // ...and nothing from outside gets in, even with a route to it.
    let _si = Server::tcp(&i, 7101, "inside");
    assert!(tcp_get(Some(&out), sock(ei.address.addr(), 7101)).is_err());
    // While members of the internal network still reach each other.
    let j = env.netns("j");
    env.attach(&j, &closed);
    assert_eq!(
        tcp_get(Some(&j), sock(ei.address.addr(), 7101)).unwrap(),
        "inside"
    );
}

#[test]
fn published_ports_answer_on_loopback_and_from_another_host() {
    let env = TestEnv::new(22);
    let net = env.network("pub", 0, false);
    let (out, host_ip, _) = env.outside();
    let web = env.netns("web");
    env.attach(&web, &net);
    let _tcp = Server::tcp(&web, 80, "web says hi to {peer}");
    let _udp = Server::udp(&web, 53, "udp answer");
    let tcp_port = env.port(0);
    let udp_port = env.port(1);
    env.net
        .publish(
            &web,
            &net.name,
            &[
                PortMapping::tcp(tcp_port, 80),
                PortMapping::udp(udp_port, 53),
            ],
        )
        .unwrap();
    // From the host's own loopback: the container sees the gateway, never 127.0.0.1.
    assert_eq!(
        tcp_get(None, sock(Ipv4Addr::LOCALHOST, tcp_port)).unwrap(),
        format!("web says hi to {}", net.gateway)
    );
    assert_eq!(
        udp_get(None, sock(Ipv4Addr::LOCALHOST, udp_port)).unwrap(),
        "udp answer"
    );
    // From "another host", at the host's address on the link between them.
    let got = tcp_get(Some(&out), sock(host_ip, tcp_port)).unwrap();
    assert!(got.starts_with("web says hi"), "{got}");
    assert_eq!(
        udp_get(Some(&out), sock(host_ip, udp_port)).unwrap(),
        "udp answer"
    );
    let rules = sh("nft", &["list", "table", "inet", &env.table]);
    assert!(rules.contains("dnat ip to"), "{rules}");
    // Publishing the same again changes nothing; unpublishing (detach) closes the port.
    env.net
        .publish(&web, &net.name, &[PortMapping::tcp(tcp_port, 80)])
        .unwrap();
    env.net.detach(&web, None).unwrap();
    assert!(tcp_get(None, sock(Ipv4Addr::LOCALHOST, tcp_port)).is_err());
    let rules = sh("nft", &["list", "table", "inet", &env.table]);
    assert!(!rules.contains("dnat ip to"), "{rules}");
}

#[test]
fn published_port_bound_to_one_host_ip_answers_only_there() {
    let env = TestEnv::new(23);
    let net = env.network("ip", 0, false);
    let web = env.netns("web");
    env.attach(&web, &net);
    let _tcp = Server::tcp(&web, 80, "hi");
    let p = env.port(0);
    env.net
        .publish(
            &web,
            &net.name,
            &[PortMapping {
                host_ip: Some(Ipv4Addr::new(127, 0, 0, 1).into()),
                ..PortMapping::tcp(p, 80)
            }],
        )
        .unwrap();
    assert_eq!(tcp_get(None, sock(Ipv4Addr::LOCALHOST, p)).unwrap(), "hi");
    // 127.0.0.2 is loopback too, but not the address published on.
    assert!(tcp_get(None, sock(Ipv4Addr::new(127, 0, 0, 2), p)).is_err());
}

#[test]
fn a_host_port_already_taken_is_refused_naming_it() {
    let env = TestEnv::new(24);
    let net = env.network("busy", 0, false);
    let a = env.netns("a");
    let b = env.netns("b");
    env.attach(&a, &net);
    env.attach(&b, &net);
    let held = env.port(0);
    let _holder = TcpListener::bind(("0.0.0.0", held)).unwrap();
    let err = env
        .net
        .publish(&a, &net.name, &[PortMapping::tcp(held, 80)])
        .unwrap_err();
    assert!(matches!(err, NetError::PortInUse { .. }), "{err}");
    assert!(err.to_string().contains(&held.to_string()), "{err}");

    // Taken by another Berth attachment: refused, naming the holder.
    let p = env.port(1);
    env.net
        .publish(&a, &net.name, &[PortMapping::tcp(p, 80)])
        .unwrap();
    let err = env
        .net
        .publish(&b, &net.name, &[PortMapping::tcp(p, 81)])
        .unwrap_err();
    assert!(err.to_string().contains(a.name()), "{err}");
    // The same port over UDP is another socket: fine.
    env.net
        .publish(
            &b,
            &net.name,
            &[PortMapping {
                protocol: Protocol::Udp,
                ..PortMapping::tcp(p, 81)
            }],
        )
        .unwrap();
}

#[test]
fn port_ranges_publish_every_port() {
    let env = TestEnv::new(25);
    let net = env.network("range", 0, false);
    let web = env.netns("web");
    env.attach(&web, &net);
    let _s1 = Server::tcp(&web, 9000, "nine");
    let _s2 = Server::tcp(&web, 9001, "nine-one");
    let base = env.port(0);
    let ports = PortMapping::range(None, (base, base + 1), (9000, 9001), Protocol::Tcp).unwrap();
    env.net.publish(&web, &net.name, &ports).unwrap();
    assert_eq!(
        tcp_get(None, sock(Ipv4Addr::LOCALHOST, base)).unwrap(),
        "nine"
    );
    assert_eq!(
        tcp_get(None, sock(Ipv4Addr::LOCALHOST, base + 1)).unwrap(),
        "nine-one"
    );
}

#[test]
fn published_ports_answer_other_networks_and_the_own_network_through_the_host() {
    let env = TestEnv::new(26);
    let n1 = env.network("srv", 0, false);
    let n2 = env.network("cli", 1, false);
    let closed = env.network("closed", 2, true);
    let web = env.netns("web");
    let sibling = env.netns("sib");
    let other = env.netns("other");
    let inner = env.netns("inner");
    let ew = env.attach(&web, &n1);
    env.attach(&sibling, &n1);
    env.attach(&other, &n2);
    env.attach(&inner, &closed);
    let _srv = Server::tcp(&web, 80, "web to {peer}");
    let p = env.port(0);
    env.net
        .publish(&web, &n1.name, &[PortMapping::tcp(p, 80)])
        .unwrap();
    // Another network reaches it through a host address (its own gateway), as another
    // host would, although the networks are isolated from each other...
    let got = tcp_get(Some(&other), sock(n2.gateway, p)).unwrap();
    assert!(got.starts_with("web to"), "{got}");
    // ...while its address directly stays out of reach.
    assert!(tcp_get(Some(&other), sock(ew.address.addr(), 80)).is_err());
    // A member of the same network, through the host (hairpin): answered, and the answer
    // comes back the way the question went.
    assert_eq!(
        tcp_get(Some(&sibling), sock(n1.gateway, p)).unwrap(),
        format!("web to {}", n1.gateway)
    );
    // An internal network has no way out, published ports included.
    assert!(tcp_get(Some(&inner), sock(closed.gateway, p)).is_err());
}

#[test]
fn a_container_reaches_only_dns_replies_and_published_ports_on_the_host() {
    let env = TestEnv::new(29);
    let net = env.network("host", 0, false);
    let closed = env.network("hostint", 1, true);
    let member = env.netns("member");
    let inner = env.netns("inner");
    let m = env.attach(&member, &net);
    env.attach(&inner, &closed);
    // Services of the host's own on the gateway addresses: one on an unpublished port
    // (TCP and UDP), and a stand-in for the DNS responder on port 53.
    let p = env.port(0);
    let _tcp = Server::host_tcp(sock(net.gateway, p), "host tcp");
    let _udp = Server::host_udp(sock(net.gateway, p), "host udp");
    let _dns = Server::host_udp(sock(net.gateway, 53), "dns");
    let _dns_tcp = Server::host_tcp(sock(net.gateway, 53), "dns over tcp");
    let _dns_int = Server::host_udp(sock(closed.gateway, 53), "internal dns");
    let _int = Server::host_tcp(sock(closed.gateway, p), "internal tcp");
    let got = tcp_get(Some(&member), sock(net.gateway, p));
    assert!(
        got.is_err(),
        "reached the host's {}:{p}: {got:?}",
        net.gateway
    );
    let got = udp_get(Some(&member), sock(net.gateway, p));
    assert!(
        got.is_err(),
        "reached the host's udp {}:{p}: {got:?}",
        net.gateway
    );
    // DNS to the own gateway answers, over UDP and TCP; another network's responder does
    // not (it is a host address like any other).
    assert_eq!(
        udp_get(Some(&member), sock(net.gateway, 53)).unwrap(),
        "dns"
    );
    assert_eq!(
        tcp_get(Some(&member), sock(net.gateway, 53)).unwrap(),
        "dns over tcp"
    );
    assert!(udp_get(Some(&member), sock(closed.gateway, 53)).is_err());
    // An internal network: its DNS only.
    assert_eq!(
        udp_get(Some(&inner), sock(closed.gateway, 53)).unwrap(),
        "internal dns"
    );
    assert!(tcp_get(Some(&inner), sock(closed.gateway, p)).is_err());
    // The host still reaches the container (the answers come in from the bridge).
    let _web = Server::tcp(&member, 80, "member");
    assert_eq!(tcp_get(None, sock(m.address.addr(), 80)).unwrap(), "member");
    // Once the network is gone, so are its rules: nothing of it left in the table.
    env.net.remove_network(&net.name).unwrap();
    let rules = sh("nft", &["list", "ruleset"]);
    assert!(!rules.contains(&net.bridge), "{rules}");
}

#[test]
fn a_container_cannot_reach_the_hosts_loopback_services() {
    let env = TestEnv::new(27);
    let net = env.network("lo", 0, false);
    let evil = env.netns("evil");
    env.attach(&evil, &net);
    // A service of the host's own, on loopback only.
    let p = env.port(0);
    let listener = TcpListener::bind(("127.0.0.1", p)).unwrap();
    listener.set_nonblocking(true).unwrap();
    // Inside, a root user points 127.0.0.0/8 at the gateway (route_localnet is on for
    // the bridge, for published ports, and would otherwise let this through).
    let ns = format!("--net={}", evil.path().display());
    for cmd in [
        "ip addr del 127.0.0.1/8 dev lo",
        "sh -c 'echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet'",
        &format!("ip route add 127.0.0.0/8 via {} dev eth0", net.gateway),
    ] {
        let st = std::process::Command::new("nsenter")
            .arg(&ns)
            .args(["sh", "-c", cmd])
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    }
    let got = tcp_get(Some(&evil), sock(Ipv4Addr::LOCALHOST, p));
    assert!(got.is_err(), "reached the host's 127.0.0.1:{p}: {got:?}");
    assert!(
        listener.accept().is_err(),
        "the host service saw a connection"
    );
}

#[test]
fn published_ports_answer_over_ipv6_from_another_host() {
    let env = TestEnv::new(28);
    let net = env.network6("pub6", 0, false);
    let v4only = env.network("pub4", 1, false);
    let (out, _, _) = env.outside();
    let (host6, _) = env.outside6_addrs();
    let web = env.netns("web");
    let e = env.attach(&web, &net);
    let _tcp = Server::tcp6(&web, 80, "web6 to {peer}");
    let _udp = Server::udp(&web, 53, "udp4 only");
    let (p_any, p_six) = (env.port(0), env.port(1));
    env.net
        .publish(
            &web,
            &net.name,
            &[
                PortMapping::tcp(p_any, 80),
                PortMapping {
                    host_ip: Some(host6.into()),
                    ..PortMapping::tcp(p_six, 80)
                },
            ],
        )
        .unwrap();
    // "Another host" reaches the port on the host's IPv6 address: published on every
    // host address, and on that one address alone.
    for p in [p_any, p_six] {
        let got = tcp_get(Some(&out), SocketAddr::from((host6, p))).unwrap();
        assert!(got.starts_with("web6 to "), "{got}");
    }
    // IPv4 on every host address still works for the same mapping.
    assert!(tcp_get(None, sock(Ipv4Addr::LOCALHOST, p_any))
        .unwrap()
        .starts_with("web6 to"));
    assert!(e.address6.is_some());
    // An IPv6 host address for a container without IPv6: refused, saying why.
    let other = env.netns("v4");
    env.attach(&other, &v4only);
    let err = env
        .net
        .publish(
            &other,
            &v4only.name,
            &[PortMapping {
                host_ip: Some(host6.into()),
                ..PortMapping::tcp(env.port(2), 80)
            }],
        )
        .unwrap_err();
    assert!(err.to_string().contains("enable_ipv6"), "{err}");
}
