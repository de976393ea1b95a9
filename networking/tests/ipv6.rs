//! IPv6 (`enable_ipv6`) on the real kernel: dual-stack addresses and default routes,
//! reachability inside a network and isolation between networks over IPv6, static
//! `ipv6_address`, AAAA answers. Traffic stays in namespaces the test made.

mod common;

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use berth_networking::{AttachRequest, DnsOptions, HelperProgram, NetError, Netns};
use common::*;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

fn sock6(ip: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn dual_stack_namespaces_reach_each_other_over_ipv6() {
    let env = TestEnv::new(50);
    let net = env.network6("v6", 0, false);
    let subnet6 = net.subnet6.expect("the network has IPv6");
    let gw6 = net.gateway6.unwrap();
    let a = env.netns("a");
    let b = env.netns("b");
    let ea = env.attach(&a, &net);
    let eb = env.attach(&b, &net);
    let a6 = ea.address6.unwrap();
    assert!(subnet6.contains(&a6.addr()));
    assert_ne!(Some(a6), eb.address6);
    let addrs = sh_in(&a, "ip", &["-6", "-o", "addr", "show", "eth0"]);
    let line = addrs
        .lines()
        .find(|l| l.contains(&a6.to_string()))
        .unwrap_or_else(|| panic!("{a6} not on eth0: {addrs}"));
    // Usable at once: no duplicate address detection holding it back.
    assert!(!line.contains("tentative"), "{line}");
    let routes = sh_in(&a, "ip", &["-6", "route"]);
    assert!(routes.contains(&format!("default via {gw6}")), "{routes}");
    let bridge = sh("ip", &["-6", "-o", "addr", "show", &net.bridge]);
    assert!(bridge.contains(&format!("{gw6}/64")), "{bridge}");

    let _srv = Server::tcp6(&a, 8080, "a over v6");
    assert_eq!(
        tcp_get(Some(&b), sock6(a6.addr(), 8080)).unwrap(),
        "a over v6"
    );
    // IPv4 still works beside it.
    assert_eq!(
        tcp_get(Some(&b), SocketAddr::from((ea.address.addr(), 8080))).unwrap(),
        "a over v6"
    );
}

#[test]
fn ipv6_traffic_between_networks_is_dropped() {
    let env = TestEnv::new(51);
    let n1 = env.network6("one", 0, false);
    let n2 = env.network6("two", 1, false);
    let a = env.netns("a");
    let b = env.netns("b");
    let c = env.netns("c");
    let ea = env.attach(&a, &n1);
    env.attach(&b, &n1);
    env.attach(&c, &n2);
    let a6 = ea.address6.unwrap().addr();
    let _srv = Server::tcp6(&a, 7000, "a");
    assert_eq!(tcp_get(Some(&b), sock6(a6, 7000)).unwrap(), "a");
    // c has a route (default via its gateway, the host forwards IPv6): only the firewall
    // stands in the way.
    assert!(tcp_get(Some(&c), sock6(a6, 7000)).is_err());
}

#[test]
fn static_ipv6_address_is_honoured_and_checked() {
    let env = TestEnv::new(52);
    let net = env.network6("st6", 0, false);
    let v4only = env.network("v4", 1, false);
    let want = Ipv6Addr::from(u128::from(net.subnet6.unwrap().network()) + 0x42);
    let a = env.netns("a");
    let b = env.netns("b");
    let ea = env
        .net
        .attach(
            &a,
            &[AttachRequest {
                network: net.name.clone(),
                ipv6_address: Some(want),
                ..Default::default()
            }],
        )
        .unwrap();
    assert_eq!(ea[0].address6.unwrap().addr(), want);
    let err = env
        .net
        .attach(
            &b,
            &[AttachRequest {
                network: net.name.clone(),
                ipv6_address: Some(want),
                ..Default::default()
            }],
        )
        .unwrap_err();
    assert!(matches!(err, NetError::AddressInUse { .. }), "{err}");
    let err = env
        .net
        .attach(
            &b,
            &[AttachRequest {
                network: v4only.name.clone(),
                ipv6_address: Some(want),
                ..Default::default()
            }],
        )
        .unwrap_err();
    assert!(err.to_string().contains("enable_ipv6"), "{err}");
    assert_eq!(sh_in(&b, "ip", &["-o", "link"]).lines().count(), 1);
}

#[test]
fn aaaa_answers_carry_the_ipv6_addresses() {
    let env = TestEnv::new(53);
    let net = env.network6("dns6", 0, false);
    let server = env
        .net
        .start_dns(
            &net.name,
            &DnsOptions {
                program: HelperProgram {
                    program: env!("CARGO_BIN_EXE_berth-dns").into(),
                    args: vec![],
                },
                upstreams: Some(vec![]),
            },
        )
        .unwrap();
    let a = env.netns("a");
    let b = env.netns("b");
    let ea = env
        .net
        .attach(
            &a,
            &[AttachRequest {
                network: net.name.clone(),
                dns_names: vec!["api".into()],
                ..Default::default()
            }],
        )
        .unwrap();
    env.attach(&b, &net);
    let answer = b
        .run(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut q = Message::new();
            q.set_id(6).add_query(Query::query(
                Name::from_str("api").unwrap(),
                RecordType::AAAA,
            ));
            s.send_to(&q.to_vec().unwrap(), server).unwrap();
            let mut buf = [0u8; 2048];
            let (n, _) = s.recv_from(&mut buf).unwrap();
            Message::from_vec(&buf[..n]).unwrap()
        })
        .unwrap();
    let v6: Vec<Ipv6Addr> = answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(v6, vec![ea[0].address6.unwrap().addr()]);
}

#[test]
fn ipv6_teardown_leaves_nothing() {
    let env = TestEnv::new(54);
    let net = env.network6("gone6", 0, false);
    let ns: Netns = env.netns("x");
    env.attach(&ns, &net);
    env.net.detach(&ns, None).unwrap();
    ns.remove().unwrap();
    env.net.remove_network(&net.name).unwrap();
    let left = env.leftovers();
    assert!(left.is_empty(), "{left:#?}");
    let routes = sh("ip", &["-6", "route"]);
    assert!(
        !routes.contains(&net.subnet6.unwrap().to_string()),
        "{routes}"
    );
}

#[test]
fn ipv6_goes_out_masqueraded_and_internal_ipv6_does_not() {
    let env = TestEnv::new(56);
    let open = env.network6("open6", 0, false);
    let closed = env.network6("closed6", 1, true);
    let (out, _, _) = env.outside();
    let (host6, peer6) = env.outside6_addrs();
    let _srv = Server::tcp6(&out, 7100, "seen {peer}");
    let o = env.netns("o");
    let i = env.netns("i");
    env.attach(&o, &open);
    let ei = env.attach(&i, &closed);
    assert_eq!(
        tcp_get(Some(&o), sock6(peer6, 7100)).unwrap(),
        format!("seen {host6}")
    );
    assert!(ei.address6.is_some());
    let routes = sh_in(&i, "ip", &["-6", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    assert!(tcp_get(Some(&i), sock6(peer6, 7100)).is_err());
}
