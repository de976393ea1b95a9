//! Networking on the real kernel, as root: real namespaces, bridges, veth pairs and
//! nftables rules. Every test makes its own and removes them even when it fails (the
//! `TestEnv` guard). Packets go only to namespaces the test made and to 127.0.0.1.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use berth_networking::{AttachRequest, IpamConfig, NetError, Netns, NetworkSpec};
use common::*;

fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn two_namespaces_on_one_network_reach_each_other_by_ip() {
    let env = TestEnv::new(1);
    let net = env.network("front", 0, false);
    let a = env.netns("a");
    let b = env.netns("b");
    let ea = env.attach(&a, &net);
    let eb = env.attach(&b, &net);
    assert_eq!(ea.interface, "eth0");
    assert!(net.subnet.contains(&ea.address.addr()));
    assert_ne!(ea.address, eb.address);

    // What a user would look at: the address on eth0, lo up, the default route.
    let addr = sh_in(&a, "ip", &["-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains(&ea.address.to_string()), "{addr}");
    let lo = sh_in(&a, "ip", &["-o", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");
    let routes = sh_in(&a, "ip", &["route"]);
    assert!(
        routes.contains(&format!("default via {}", net.gateway)),
        "{routes}"
    );

    let _srv = Server::tcp(&b, 8080, "hello from b");
    let got = tcp_get(Some(&a), sock(eb.address.addr(), 8080)).unwrap();
    assert_eq!(got, "hello from b");
    // And the other way, and the gateway answers too (it is the host).
    let _srv_a = Server::tcp(&a, 8081, "hello from a");
    assert_eq!(
        tcp_get(Some(&b), sock(ea.address.addr(), 8081)).unwrap(),
        "hello from a"
    );
}

#[test]
fn attach_to_two_networks_names_eth0_eth1_and_routes_by_priority() {
    let env = TestEnv::new(2);
    let n1 = env.network("one", 0, false);
    let n2 = env.network("two", 1, false);
    let ns = env.netns("multi");
    let eths = env
        .net
        .attach(
            &ns,
            &[
                AttachRequest {
                    network: n1.name.clone(),
                    ..Default::default()
                },
                AttachRequest {
                    network: n2.name.clone(),
                    priority: 10,
                    ..Default::default()
                },
            ],
        )
        .unwrap();
    assert_eq!(eths[0].interface, "eth0");
    assert_eq!(eths[1].interface, "eth1");
    assert!(!eths[0].default_route && eths[1].default_route);
    let routes = sh_in(&ns, "ip", &["route"]);
    assert!(
        routes.contains(&format!("default via {} dev eth1", n2.gateway)),
        "{routes}"
    );
    // Attaching again returns what is there and makes nothing new.
    let again = env
        .net
        .attach(
            &ns,
            &[AttachRequest {
                network: n1.name.clone(),
                ..Default::default()
            }],
        )
        .unwrap();
    assert_eq!(again[0].address, eths[0].address);
    assert_eq!(again[0].interface, "eth0");
    let links = sh_in(&ns, "ip", &["-o", "link"]);
    assert_eq!(links.lines().count(), 3, "{links}"); // lo, eth0, eth1
}

#[test]
fn mtu_from_the_network_options_is_applied() {
    let env = TestEnv::new(3);
    let name = env.name("mtu");
    env.track_network(&name);
    let info = env
        .net
        .ensure_network(&NetworkSpec {
            name,
            mtu: Some(1400),
            ipam: IpamConfig {
                subnet: Some(env.subnet(0)),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
    let ns = env.netns("m");
    env.attach(&ns, &info);
    let l = sh_in(&ns, "ip", &["-o", "link", "show", "eth0"]);
    assert!(l.contains("mtu 1400"), "{l}");
    let br = sh("ip", &["-o", "link", "show", &info.bridge]);
    assert!(br.contains("mtu 1400"), "{br}");
}

#[test]
fn static_address_is_honoured_and_a_conflicting_one_refused() {
    let env = TestEnv::new(4);
    let net = env.network("static", 0, false);
    let want = Ipv4Addr::from(u32::from(net.subnet.network()) + 42);
    let a = env.netns("a");
    let b = env.netns("b");
    let ea = env
        .net
        .attach(
            &a,
            &[AttachRequest {
                network: net.name.clone(),
                ipv4_address: Some(want),
                ..Default::default()
            }],
        )
        .unwrap();
    assert_eq!(ea[0].address.addr(), want);
    let addr = sh_in(&a, "ip", &["-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{want}/24")), "{addr}");

    let err = env
        .net
        .attach(
            &b,
            &[AttachRequest {
                network: net.name.clone(),
                ipv4_address: Some(want),
                ..Default::default()
            }],
        )
        .unwrap_err();
    assert!(matches!(err, NetError::AddressInUse { .. }), "{err}");
    assert!(err.to_string().contains(a.name()), "{err}");
    // Refused before anything was made: b has no eth0, no veth was left on the host.
    let links = sh_in(&b, "ip", &["-o", "link"]);
    assert!(!links.contains("eth0"), "{links}");

    // Outside the subnet: refused, naming the subnet.
    let err = env
        .net
        .attach(
            &b,
            &[AttachRequest {
                network: net.name.clone(),
                ipv4_address: Some(Ipv4Addr::new(10, 213, 255, 9)),
                ..Default::default()
            }],
        )
        .unwrap_err();
    assert!(err.to_string().contains("outside the subnet"), "{err}");
}

#[test]
fn overlapping_subnet_is_refused_before_touching_the_host() {
    let env = TestEnv::new(5);
    let first = env.network("first", 0, false);
    let name = env.name("second");
    env.track_network(&name);
    let err = env
        .net
        .ensure_network(&NetworkSpec {
            name: name.clone(),
            ipam: IpamConfig {
                subnet: Some(first.subnet),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, NetError::SubnetOverlap { .. }), "{err}");
    assert!(err.to_string().contains(&first.subnet.to_string()), "{err}");
    assert!(!env.net.state_file(&name).exists());
    assert_eq!(env.net.networks().unwrap().len(), 1);
}

#[test]
fn pool_subnet_is_stable_across_down_and_up() {
    let env = TestEnv::new(6);
    let name = env.name("pooled");
    env.track_network(&name);
    let spec = NetworkSpec {
        name: name.clone(),
        ..Default::default()
    };
    let first = env.net.ensure_network(&spec).unwrap();
    assert!(env.subnet(0).supernet().is_some());
    env.net.remove_network(&name).unwrap();
    let second = env.net.ensure_network(&spec).unwrap();
    assert_eq!(first.subnet, second.subnet);
    assert_eq!(first.bridge, second.bridge);
}

#[test]
fn teardown_leaves_nothing_behind() {
    let env = TestEnv::new(7);
    let net = env.network("gone", 0, false);
    let ns = env.netns("x");
    let e = env.attach(&ns, &net);
    // Everything a service can have: published ports (TCP and UDP) and the DNS responder.
    env.net
        .publish(
            &ns,
            &net.name,
            &[
                berth_networking::PortMapping::tcp(env.port(0), 80),
                berth_networking::PortMapping::udp(env.port(1), 53),
            ],
        )
        .unwrap();
    env.net
        .start_dns(
            &net.name,
            &berth_networking::DnsOptions {
                program: berth_networking::HelperProgram {
                    program: env!("CARGO_BIN_EXE_berth-dns").into(),
                    args: vec![],
                },
                upstreams: Some(vec![]),
            },
        )
        .unwrap();
    let rules = sh("nft", &["list", "ruleset"]);
    assert!(
        rules.contains(&env.table) && rules.contains("dnat ip to"),
        "{rules}"
    );
    assert!(!env.leftovers().is_empty());
    let host_veth = sh("ip", &["-o", "link", "show", &e.host_interface]);
    assert!(
        host_veth.contains(&format!("master {}", net.bridge)),
        "{host_veth}"
    );

    env.net.detach(&ns, None).unwrap();
    // The lease is freed and both ends of the pair are gone.
    let state = std::fs::read_to_string(env.net.state_file(&net.name)).unwrap();
    assert!(!state.contains(ns.name()), "{state}");
    assert!(sh("ip", &["-o", "link"])
        .lines()
        .all(|l| !l.contains(&e.host_interface)));
    assert!(!sh_in(&ns, "ip", &["-o", "link"]).contains("eth0"));
    // Detaching twice is fine.
    env.net.detach(&ns, None).unwrap();

    ns.remove().unwrap();
    ns.remove().unwrap();
    env.net.remove_network(&net.name).unwrap();
    env.net.remove_network(&net.name).unwrap();
    let left = env.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
    let rules = sh("nft", &["list", "ruleset"]);
    assert!(
        !rules.contains(&env.table) && !rules.contains(&net.bridge),
        "{rules}"
    );
    assert!(!env.net.dns_running(&net.name));
    let all_netns = sh("ip", &["-all", "netns"]);
    assert!(!all_netns.contains(&env.id), "{all_netns}");
}

/// `release` (what `berth down` does for each container): the namespaces go, the
/// kernel takes their veth pairs with them, and published ports, leases and files go too;
/// several at once, as `down` does, and again without harm.
#[test]
fn release_takes_namespaces_their_pairs_ports_and_leases() {
    let env = TestEnv::new(60);
    let net = env.network("rel", 0, false);
    let spaces: Vec<(Netns, String)> = (0..4)
        .map(|i| {
            let ns = env.netns(&format!("r{i}"));
            let e = env.attach(&ns, &net);
            (ns, e.host_interface)
        })
        .collect();
    env.net
        .publish(
            &spaces[0].0,
            &net.name,
            &[berth_networking::PortMapping::tcp(env.port(0), 80)],
        )
        .unwrap();
    let rules = || sh("nft", &["list", "table", "inet", &env.table]);
    assert!(rules().contains("dnat ip to"), "{}", rules());
    std::thread::scope(|s| {
        for (ns, _) in &spaces {
            let net = &env.net;
            s.spawn(move || net.release(ns).unwrap());
        }
    });
    let links = sh("ip", &["-o", "link"]);
    let state = std::fs::read_to_string(env.net.state_file(&net.name)).unwrap();
    for (ns, host_if) in &spaces {
        assert!(
            !links.contains(host_if.as_str()),
            "{host_if} left:\n{links}"
        );
        assert!(
            !state.contains(ns.name()),
            "lease of {} left: {state}",
            ns.name()
        );
        assert!(!ns.exists(), "{} still there", ns.path().display());
        // Releasing again is fine.
        env.net.release(ns).unwrap();
    }
    assert!(!rules().contains("dnat ip to"), "{}", rules());
    env.net.remove_network(&net.name).unwrap();
    let left = env.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// The helper the crash test runs in a child process: makes a network and attaches a
/// namespace until the crash point named in BERTH_NET_CRASH_AT kills it.
#[test]
#[ignore = "run by crash_half_way_then_remove_cleans_everything in a child process"]
fn crash_helper() {
    let Some(root) = std::env::var_os("CRASH_ROOT") else {
        return;
    };
    let run = std::env::var_os("CRASH_RUN").unwrap();
    let table = std::env::var("CRASH_TABLE").unwrap();
    let subnet = std::env::var("CRASH_SUBNET").unwrap();
    let net = berth_networking::Networking::new(
        berth_networking::Config {
            root: root.into(),
            run: run.clone().into(),
            pool: Default::default(),
        },
        Box::new(berth_networking::Nftables::new(table)),
    );
    let info = net
        .ensure_network(&NetworkSpec {
            name: std::env::var("CRASH_NET").unwrap(),
            ipam: IpamConfig {
                subnet: Some(subnet.parse().unwrap()),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
    net.start_dns(
        &info.name,
        &berth_networking::DnsOptions {
            program: berth_networking::HelperProgram {
                program: env!("CARGO_BIN_EXE_berth-dns").into(),
                args: vec![],
            },
            upstreams: Some(vec![]),
        },
    )
    .unwrap();
    let ns = Netns::create(
        std::path::Path::new(&run),
        &std::env::var("CRASH_NS").unwrap(),
    )
    .unwrap();
    net.attach(
        &ns,
        &[AttachRequest {
            network: info.name.clone(),
            ..Default::default()
        }],
    )
    .unwrap();
    net.publish(
        &ns,
        &info.name,
        &[berth_networking::PortMapping::tcp(
            std::env::var("CRASH_PORT").unwrap().parse().unwrap(),
            80,
        )],
    )
    .unwrap();
    // Not reached when the crash point fires; the "after everything" case dies here.
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn crash_half_way_then_remove_cleans_everything() {
    for (i, point) in [
        "ensure-after-record",
        "ensure-after-bridge",
        "attach-after-lease",
        "attach-after-veth",
        "end",
    ]
    .into_iter()
    .enumerate()
    {
        let env = TestEnv::new(8 + i as u8);
        let netname = env.name("crash");
        let nsname = env.name("c");
        env.track_network(&netname);
        let out = crash_child(&env, &netname, &nsname, point);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "helper should die by SIGKILL at {point}: {out:?}"
        );
        env.track_netns(&Netns::at(&env.net.config().run, &nsname).unwrap());
        assert!(
            !env.leftovers().is_empty(),
            "the crash at {point} should have left something"
        );
        // What `berth down` does after a crash: remove the namespace and the networks on
        // record, with the same calls as always.
        let ns = Netns::at(&env.net.config().run, &nsname).unwrap();
        env.net.release(&ns).unwrap();
        for n in env.net.networks().unwrap() {
            env.net.remove_network(&n.name).unwrap();
        }
        let left = env.leftovers();
        assert!(left.is_empty(), "after crash at {point}, left: {left:#?}");
    }
}

fn crash_child(env: &TestEnv, netname: &str, nsname: &str, point: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_helper", "--ignored", "--nocapture"])
        .env("CRASH_ROOT", &env.net.config().root)
        .env("CRASH_RUN", &env.net.config().run)
        .env("CRASH_TABLE", &env.table)
        .env("CRASH_SUBNET", env.subnet(0).to_string())
        .env("CRASH_NET", netname)
        .env("CRASH_NS", nsname)
        .env("CRASH_PORT", env.port(0).to_string())
        .env("BERTH_NET_CRASH_AT", point)
        .output()
        .unwrap()
}

#[test]
fn running_again_after_a_crash_converges() {
    let env = TestEnv::new(13);
    let netname = env.name("conv");
    let nsname = env.name("c");
    env.track_network(&netname);
    let out = crash_child(&env, &netname, &nsname, "attach-after-veth");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    let ns = Netns::create(&env.net.config().run, &nsname).unwrap();
    env.track_netns(&ns);
    // The crash left the pair made but the inside unconfigured; `up` again finishes it.
    let info = env
        .net
        .ensure_network(&NetworkSpec {
            name: netname.clone(),
            ipam: IpamConfig {
                subnet: Some(env.subnet(0)),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
    let e = env.attach(&ns, &info);
    let addr = sh_in(&ns, "ip", &["-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains(&e.address.to_string()), "{addr}");
    let peer = env.netns("peer");
    env.attach(&peer, &info);
    let _srv = Server::tcp(&ns, 8080, "converged");
    assert_eq!(
        tcp_get(Some(&peer), sock(e.address.addr(), 8080)).unwrap(),
        "converged"
    );
    // One pair, one address: nothing doubled.
    assert_eq!(sh_in(&ns, "ip", &["-o", "link"]).lines().count(), 2);
}

#[test]
fn a_bridge_name_held_by_something_else_is_not_taken_over() {
    let env = TestEnv::new(14);
    let name = env.name("held");
    env.track_network(&name);
    let bridge = env.net.bridge_name(&name);
    // Something else made a link by that name (here: a bridge with no Berth record).
    let mut nl = berth_networking::netlink::Netlink::open().unwrap();
    nl.create_bridge(&bridge, None, [0x02, 0, 0, 0, 0, 0x14])
        .unwrap();
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let mut nl = berth_networking::netlink::Netlink::open().unwrap();
            let _ = nl.delete_link(&self.0);
        }
    }
    let _del = Del(bridge.clone());
    let err = env
        .net
        .ensure_network(&NetworkSpec {
            name: name.clone(),
            ipam: IpamConfig {
                subnet: Some(env.subnet(0)),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, NetError::NameTaken { .. }), "{err}");
    assert!(err.to_string().contains(&bridge), "{err}");
    // Untouched: no address added to it, no record written.
    let addrs = sh("ip", &["-4", "-o", "addr", "show", &bridge]);
    assert!(addrs.trim().is_empty(), "{addrs}");
    assert!(!env.net.state_file(&name).exists());
    // And removal (as `down` would run it) leaves it alone too.
    env.net.remove_network(&name).unwrap();
    assert!(sh("ip", &["-o", "link", "show", &bridge]).contains(&bridge));
}

#[test]
fn concurrent_attaches_get_distinct_addresses() {
    let env = TestEnv::new(15);
    let net = env.network("busy", 0, false);
    let namespaces: Vec<Netns> = (0..8).map(|i| env.netns(&format!("n{i}"))).collect();
    // Each thread has its own Networking (as separate `berth` processes would): only the
    // lock file keeps them from handing out the same address.
    let addrs: Vec<Ipv4Addr> = std::thread::scope(|s| {
        let handles: Vec<_> = namespaces
            .iter()
            .map(|ns| {
                let config = env.net.config().clone();
                let name = net.name.clone();
                s.spawn(move || {
                    let n = berth_networking::Networking::without_firewall(config);
                    n.attach(
                        ns,
                        &[AttachRequest {
                            network: name,
                            ..Default::default()
                        }],
                    )
                    .unwrap()[0]
                        .address
                        .addr()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::BTreeSet<_> = addrs.iter().collect();
    assert_eq!(distinct.len(), 8, "{addrs:?}");
    let state = std::fs::read_to_string(env.net.state_file(&net.name)).unwrap();
    for a in &addrs {
        assert!(
            state.contains(&a.to_string()),
            "lease of {a} missing: {state}"
        );
    }
}

#[test]
fn ipam_config_gateway_and_ip_range_are_honoured() {
    let env = TestEnv::new(16);
    let name = env.name("ranged");
    env.track_network(&name);
    let subnet = env.subnet(0);
    let base = u32::from(subnet.network());
    let gateway = Ipv4Addr::from(base + 254);
    let info = env
        .net
        .ensure_network(&NetworkSpec {
            name,
            ipam: IpamConfig {
                subnet: Some(subnet),
                gateway: Some(gateway),
                ip_range: Some(ipnet::Ipv4Net::new(Ipv4Addr::from(base + 128), 26).unwrap()),
            },
            ..Default::default()
        })
        .unwrap();
    assert_eq!(info.gateway, gateway);
    let br = sh("ip", &["-4", "-o", "addr", "show", &info.bridge]);
    assert!(br.contains(&format!("{gateway}/24")), "{br}");
    let a = env.netns("a");
    let e = env.attach(&a, &info);
    assert_eq!(e.address.addr(), Ipv4Addr::from(base + 129));
    let routes = sh_in(&a, "ip", &["route"]);
    assert!(
        routes.contains(&format!("default via {gateway}")),
        "{routes}"
    );
}

#[test]
fn a_bad_request_for_one_network_attaches_to_none() {
    let env = TestEnv::new(17);
    let n1 = env.network("good", 0, false);
    let n2 = env.network("bad", 1, false);
    let ns = env.netns("x");
    let err = env
        .net
        .attach(
            &ns,
            &[
                AttachRequest {
                    network: n1.name.clone(),
                    ..Default::default()
                },
                AttachRequest {
                    network: n2.name.clone(),
                    // The gateway: refused.
                    ipv4_address: Some(n2.gateway),
                    ..Default::default()
                },
            ],
        )
        .unwrap_err();
    assert!(err.to_string().contains("gateway"), "{err}");
    let links = sh_in(&ns, "ip", &["-o", "link"]);
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
    let state = std::fs::read_to_string(env.net.state_file(&n1.name)).unwrap();
    assert!(!state.contains(ns.name()), "{state}");
}

#[test]
fn bridge_and_both_veth_ends_get_the_big_tcp_gso_size() {
    use berth_networking::netlink::{Netlink, BIG_TCP_IPV4_SIZE};
    let env = TestEnv::new(8);
    let info = env.network("gso", 0, false);
    let ns = env.netns("g");
    let e = env.attach(&ns, &info);
    let mut nl = Netlink::open().unwrap();
    let br = nl.link_by_name(&info.bridge).unwrap().unwrap();
    // Kernels before 6.3 have no IPv4 GSO size to report (nor to set): nothing to check.
    let Some(size) = br.gso_ipv4_max_size else {
        eprintln!("kernel without gso_ipv4_max_size: skipped");
        return;
    };
    assert_eq!(size, BIG_TCP_IPV4_SIZE, "bridge {}", info.bridge);
    let host = nl.link_by_name(&e.host_interface).unwrap().unwrap();
    assert_eq!(host.gso_ipv4_max_size, Some(BIG_TCP_IPV4_SIZE), "host end");
    let inner = ns
        .run(|| {
            let mut nl = Netlink::open().unwrap();
            nl.link_by_name("eth0").unwrap().unwrap()
        })
        .unwrap();
    assert_eq!(inner.gso_ipv4_max_size, Some(BIG_TCP_IPV4_SIZE), "eth0");
    // And the setting can be put back (the bench's default-veth reference does).
    nl.set_ipv4_gso_max_size(host.index, 65_536).unwrap();
    let host = nl.link_by_name(&e.host_interface).unwrap().unwrap();
    assert_eq!(host.gso_ipv4_max_size, Some(65_536));
}

/// A run killed between making a namespace and bringing its `lo` up (another thread of
/// it took the kill) leaves a namespace whose 127.0.0.1 answers nothing: making it again
/// brings `lo` up (the fault tests hung on a healthcheck of 127.0.0.1 without this).
#[test]
fn making_a_namespace_again_brings_its_loopback_up() {
    let env = TestEnv::new(61);
    let ns = Netns::create(&env.net.config().run, &env.name("lo")).unwrap();
    env.track_netns(&ns);
    let lo_up = |ns: &Netns| {
        ns.run(|| {
            let mut nl = berth_networking::netlink::Netlink::open().unwrap();
            nl.link_by_name("lo").unwrap().unwrap().up
        })
        .unwrap()
    };
    assert!(lo_up(&ns));
    ns.run(|| {
        Command::new("ip")
            .args(["link", "set", "lo", "down"])
            .status()
            .unwrap()
    })
    .unwrap();
    assert!(!lo_up(&ns), "lo did not go down");
    let again = Netns::create(&env.net.config().run, ns.name()).unwrap();
    assert!(lo_up(&again));
}
