//! The L2 fast path between members of a network (networking/src/fastpath.rs), on the
//! real kernel, as root: member-to-member unicast skips the bridge, networks stay apart,
//! and nothing of it (qdisc, filter, block) outlives its members. Packets go only to
//! namespaces the tests made.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_networking::netlink::Netlink;
use berth_networking::Netns;
use common::*;

/// An nftables table of the bridge family, the test's own, counting the frames the
/// bridges forward (the `forward` hook of the bridge family sees exactly what a bridge
/// switches from one port to another). Deleted on drop.
struct BridgeCounter {
    table: String,
}

impl BridgeCounter {
    /// Counts frames forwarded by the bridge, per input port, for `ports`.
    fn new(env: &TestEnv, ports: &[&str]) -> Self {
        let table = format!("berth_fp_{}", env.id);
        // One `nft` command line (statements separated by `;`), applied as one batch.
        let mut rules = format!(
            "add table bridge {table}; add chain bridge {table} counted {{ type filter hook forward priority 0; policy accept; }}"
        );
        for p in ports {
            rules.push_str(&format!(
                "; add rule bridge {table} counted iifname \"{p}\" counter"
            ));
        }
        let out = Command::new("nft").arg(&rules).output().unwrap();
        assert!(out.status.success(), "nft {rules}: {out:?}");
        BridgeCounter { table }
    }

    /// Bytes the bridge forwarded from port `port`.
    fn bytes(&self, port: &str) -> u64 {
        let out = sh("nft", &["-j", "list", "table", "bridge", &self.table]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut total = 0;
        for item in v["nftables"].as_array().unwrap() {
            let Some(rule) = item.get("rule") else {
                continue;
            };
            let exprs = rule["expr"].as_array().unwrap();
            let on_port = exprs.iter().any(|e| e["match"]["right"] == port);
            if on_port {
                for e in exprs {
                    if let Some(b) = e["counter"]["bytes"].as_u64() {
                        total += b;
                    }
                }
            }
        }
        total
    }
}

impl Drop for BridgeCounter {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "bridge", &self.table])
            .output();
    }
}

/// The MAC address of `eth0` in `ns` (sysfs would show the host's: nsenter does not
/// remount it).
fn eth0_mac(ns: &Netns) -> String {
    let out = sh_in(ns, "ip", &["-j", "link", "show", "eth0"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap().to_string()
}

/// Bytes `eth0` in `ns` received.
fn eth0_rx_bytes(ns: &Netns) -> u64 {
    let out = sh_in(ns, "ip", &["-j", "-s", "link", "show", "eth0"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["stats64"]["rx"]["bytes"].as_u64().unwrap()
}

fn ifindex(name: &str) -> Option<u32> {
    Netlink::open()
        .unwrap()
        .link_by_name(name)
        .unwrap()
        .map(|l| l.index)
}

/// `tc filter show block N`: the fast path's BPF filter, when the block exists.
fn block_filter(block: u32) -> String {
    sh("tc", &["filter", "show", "block", &block.to_string()])
}

/// The host-side veth ifindexes on the fast path of `network`, sorted.
fn members(env: &TestEnv, network: &str) -> Vec<u32> {
    let mut m: Vec<u32> = env
        .net
        .fast_path_members(network)
        .unwrap()
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    m.sort();
    m
}

/// Every clsact qdisc of the host bound to ingress block `block`.
fn qdiscs_on_block(block: u32) -> Vec<String> {
    sh("tc", &["qdisc", "show"])
        .lines()
        .filter(|l| {
            l.contains(&format!("ingress_block {block} "))
                || l.ends_with(&format!("ingress_block {block}"))
        })
        .map(str::to_string)
        .collect()
}

/// Sends `len` bytes from `from` to `to`'s address over TCP and waits until all arrived.
fn transfer(from: &Netns, to: &Netns, to_addr: Ipv4Addr, port: u16, len: usize) {
    let listener = to
        .run(move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
        .unwrap()
        .unwrap();
    let reader = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        got
    });
    from.run(move || {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::from((to_addr, port)), Duration::from_secs(2))
                .unwrap();
        let chunk = vec![7u8; 1 << 16];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            s.write_all(&chunk[..n]).unwrap();
            sent += n;
        }
    })
    .unwrap();
    assert_eq!(reader.join().unwrap(), len);
}

#[test]
fn members_talk_through_the_fast_path_not_the_bridge() {
    let env = TestEnv::new(44);
    let fast = env.network_with("fast", 0, false, Some(true));
    let slow = env.network_with("slow", 1, false, Some(false));
    assert!(fast.fast_path && !slow.fast_path);
    let (a, b) = (env.netns("a"), env.netns("b"));
    let (c, d) = (env.netns("c"), env.netns("d"));
    let ea = env.attach(&a, &fast);
    let eb = env.attach(&b, &fast);
    let ec = env.attach(&c, &slow);
    let ed = env.attach(&d, &slow);
    let counter = BridgeCounter::new(
        &env,
        &[
            &ea.host_interface,
            &eb.host_interface,
            &ec.host_interface,
            &ed.host_interface,
        ],
    );

    // Each member's host veth runs the network's block (index: the bridge's ifindex).
    let block = ifindex(&fast.bridge).unwrap();
    for e in [&ea, &eb] {
        let q = sh("tc", &["qdisc", "show", "dev", &e.host_interface]);
        assert!(
            q.contains("clsact") && q.contains(&format!("ingress_block {block}")),
            "{q}"
        );
    }
    let q = sh("tc", &["qdisc", "show", "dev", &ec.host_interface]);
    assert!(
        !q.contains("clsact"),
        "no fast path on the other network: {q}"
    );
    let f = block_filter(block);
    assert!(
        f.contains("berth_fastpath") && f.contains("direct-action"),
        "{f}"
    );
    let mut want = vec![
        ifindex(&ea.host_interface).unwrap(),
        ifindex(&eb.host_interface).unwrap(),
    ];
    want.sort();
    assert_eq!(members(&env, &fast.name), want, "one entry per member");
    // ... keyed by the MAC of the member's eth0.
    let mac_b = eth0_mac(&b);
    let hb = ifindex(&eb.host_interface).unwrap();
    let by_mac = env.net.fast_path_members(&fast.name).unwrap();
    let (mac, _) = by_mac.iter().find(|(_, i)| *i == hb).unwrap();
    let mac = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(mac, mac_b);
    assert!(members(&env, &slow.name).is_empty());

    const LEN: usize = 8 << 20;
    transfer(&a, &b, eb.address.addr(), 7001, LEN);
    transfer(&c, &d, ed.address.addr(), 7001, LEN);

    // Without the fast path the bridge forwards the whole transfer; with it, only what
    // is not member-to-member unicast (ARP requests are broadcast): next to nothing.
    let slow_bytes = counter.bytes(&ec.host_interface);
    assert!(
        slow_bytes >= LEN as u64,
        "bridge forwarded {slow_bytes} bytes from c"
    );
    let fast_bytes = counter.bytes(&ea.host_interface);
    assert!(
        fast_bytes < 4096,
        "the bridge forwarded {fast_bytes} bytes from a: the fast path was not taken"
    );
    // b received it all on eth0 (bpf_redirect_peer counts it there, not on its veth).
    let rx = eth0_rx_bytes(&b);
    assert!(rx >= LEN as u64, "b's eth0 received {rx} bytes");
    // The gateway (the host) is still reached through the bridge.
    let _srv = Server::tcp(&a, 7002, "a via the host");
    assert_eq!(
        tcp_get(None, SocketAddr::from((ea.address.addr(), 7002))).unwrap(),
        "a via the host"
    );
}

#[test]
fn the_fast_path_keeps_networks_apart() {
    let env = TestEnv::new(45);
    let one = env.network_with("one", 0, false, Some(true));
    let two = env.network_with("two", 1, false, Some(true));
    let (a1, a2, b1) = (env.netns("a1"), env.netns("a2"), env.netns("b1"));
    let ea2 = env.attach(&a2, &one);
    env.attach(&a1, &one);
    let eb1 = env.attach(&b1, &two);
    let _s2 = Server::tcp(&a2, 7101, "same network");
    let _s3 = Server::tcp(&b1, 7101, "other network");
    assert_eq!(
        tcp_get(Some(&a1), SocketAddr::from((ea2.address.addr(), 7101))).unwrap(),
        "same network"
    );
    // Through the gateway: the firewall keeps networks apart.
    assert!(tcp_get(Some(&a1), SocketAddr::from((eb1.address.addr(), 7101))).is_err());
    // Straight at b1's MAC, on-link (what a member with CAP_NET_ADMIN could try): the
    // block of network one has no filter for it, and bridge one does not know it.
    let mac = eth0_mac(&b1);
    let ip = eb1.address.addr().to_string();
    sh_in(
        &a1,
        "ip",
        &["route", "replace", &format!("{ip}/32"), "dev", "eth0"],
    );
    sh_in(
        &a1,
        "ip",
        &[
            "neigh",
            "replace",
            &ip,
            "lladdr",
            mac.as_str(),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    let neigh = sh_in(&a1, "ip", &["neigh", "show", &ip]);
    assert!(neigh.contains(mac.as_str()), "{neigh}");
    assert!(
        tcp_get(Some(&a1), SocketAddr::from((eb1.address.addr(), 7101))).is_err(),
        "a frame to another network's member crossed over"
    );
}

#[test]
fn detach_and_removal_leave_no_qdisc_filter_or_block() {
    let env = TestEnv::new(46);
    let net = env.network_with("tear", 0, false, Some(true));
    let block = ifindex(&net.bridge).unwrap();
    let (a, b, c) = (env.netns("a"), env.netns("b"), env.netns("c"));
    let ea = env.attach(&a, &net);
    let eb = env.attach(&b, &net);
    let ec = env.attach(&c, &net);
    let handles = |_: ()| members(&env, &net.name);
    let (ia, ib, ic) = (
        ifindex(&ea.host_interface).unwrap(),
        ifindex(&eb.host_interface).unwrap(),
        ifindex(&ec.host_interface).unwrap(),
    );
    let mut all = vec![ia, ib, ic];
    all.sort();
    assert_eq!(handles(()), all);
    assert_eq!(
        qdiscs_on_block(block).len(),
        3,
        "{:?}",
        qdiscs_on_block(block)
    );

    // Attaching again (a restarted container) changes nothing.
    env.attach(&b, &net);
    assert_eq!(handles(()), all);

    // Detach takes the member's filter with it.
    env.net.detach(&b, None).unwrap();
    let mut left = vec![ia, ic];
    left.sort();
    assert_eq!(handles(()), left);

    // A namespace destroyed under its member (no detach): its veth goes with it, its
    // filter stays in the live block until detach finds it.
    c.remove().unwrap();
    let t = Instant::now();
    while ifindex(&ec.host_interface).is_some() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "veth of c never went"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(handles(()), left, "the dead member's entry is still there");
    env.net.detach(&c, None).unwrap();
    assert_eq!(handles(()), vec![ia]);
    assert!(block_filter(block).contains("berth_fastpath"));

    // Removing the network removes the rest: no qdisc on the block, no block.
    env.net.detach(&a, None).unwrap();
    env.net.remove_network(&net.name).unwrap();
    assert!(
        qdiscs_on_block(block).is_empty(),
        "{:?}",
        qdiscs_on_block(block)
    );
    assert!(
        block_filter(block).trim().is_empty(),
        "{}",
        block_filter(block)
    );
}

#[test]
fn fast_path_off_by_environment() {
    // The crate's default for networks that do not say: BERTH_NET_FAST_PATH (nextest
    // runs each test in a process of its own, so setting it here touches no other test).
    std::env::set_var("BERTH_NET_FAST_PATH", "0");
    let env = TestEnv::new(47);
    let net = env.network("envoff", 0, false);
    assert!(!net.fast_path);
    let (a, b) = (env.netns("a"), env.netns("b"));
    let ea = env.attach(&a, &net);
    let eb = env.attach(&b, &net);
    let q = sh("tc", &["qdisc", "show", "dev", &ea.host_interface]);
    assert!(!q.contains("clsact"), "{q}");
    let _srv = Server::tcp(&b, 7301, "through the bridge");
    assert_eq!(
        tcp_get(Some(&a), SocketAddr::from((eb.address.addr(), 7301))).unwrap(),
        "through the bridge"
    );
    std::env::remove_var("BERTH_NET_FAST_PATH");
}

#[test]
fn a_block_already_used_by_someone_else_is_left_alone() {
    let env = TestEnv::new(43);
    let net = env.network_with("foreign", 0, false, Some(true));
    let block = ifindex(&net.bridge).unwrap();
    // Another tool's veth, bound to the tc block whose index Berth would use, with a
    // filter of its own (named with the test's id: the leftover check sees it).
    let other = format!("berthx{}", env.id);
    let peer = format!("berthy{}", env.id);
    sh(
        "ip",
        &["link", "add", &other, "type", "veth", "peer", "name", &peer],
    );
    let _del = LinkGuard(other.clone());
    sh(
        "tc",
        &[
            "qdisc",
            "add",
            "dev",
            &other,
            "ingress_block",
            &block.to_string(),
            "clsact",
        ],
    );
    sh(
        "tc",
        &[
            "filter",
            "add",
            "block",
            &block.to_string(),
            "protocol",
            "all",
            "pref",
            "7",
            "u32",
            "match",
            "u32",
            "0",
            "0",
            "classid",
            "1:1",
        ],
    );
    assert!(
        block_filter(block).contains("u32"),
        "{}",
        block_filter(block)
    );

    let (a, b) = (env.netns("a"), env.netns("b"));
    let ea = env.attach(&a, &net);
    let eb = env.attach(&b, &net);
    // Berth's members stay off that block (and on the bridge), and still talk.
    for e in [&ea, &eb] {
        let q = sh("tc", &["qdisc", "show", "dev", &e.host_interface]);
        assert!(!q.contains("clsact"), "{q}");
    }
    assert!(!block_filter(block).contains("berth_fastpath"));
    let _srv = Server::tcp(&b, 7401, "via the bridge");
    assert_eq!(
        tcp_get(Some(&a), SocketAddr::from((eb.address.addr(), 7401))).unwrap(),
        "via the bridge"
    );
    // And detach does not touch it.
    env.net.detach(&a, None).unwrap();
    assert!(block_filter(block).contains("u32"));
}

/// Deletes a link the test made by hand (and with it its qdisc and the block binding).
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = Netlink::open().and_then(|mut nl| {
            nl.delete_link(&self.0)
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
    }
}
