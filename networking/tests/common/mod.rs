//! Shared harness of the kernel tests. Each test gets its own BERTH_ROOT/BERTH_RUN (temp
//! dirs), its own nftables table, names derived from its own id and subnets from its own
//! slot of 10.213.0.0/16 (or of `BERTH_NET_TEST_NET`; checked against the host's routes), and a guard whose Drop
//! removes everything it made, also when the test fails. Traffic only ever goes to
//! namespaces the test made or to 127.0.0.1.
//!
//! Namespace switching: the crate runs every namespace switch on a dedicated thread
//! (`Netns::run`), so these tests work both under nextest (one process per test) and
//! under `cargo test` (threads in one process).

#![allow(dead_code)]

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use berth_networking::netlink::Netlink;
use berth_networking::{
    AttachRequest, Attachment, Config, IpamConfig, Netns, NetworkInfo, NetworkSpec, Networking,
    Nftables, Pool,
};
use ipnet::Ipv4Net;

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub net: Networking,
    /// Short id, part of every name this test makes.
    pub id: String,
    pub table: String,
    slot: u8,
    networks: RefCell<Vec<String>>,
    namespaces: RefCell<Vec<Netns>>,
    links: RefCell<Vec<String>>,
}

/// The /16 the tests' subnets come from: `10.213` unless `BERTH_NET_TEST_NET` names
/// another (e.g. `10.221`, where sessions sharing a machine each get their own block).
fn test_net() -> String {
    std::env::var("BERTH_NET_TEST_NET").unwrap_or_else(|_| "10.213".to_string())
}

impl TestEnv {
    /// `slot` must be unique per test (it picks the subnets 10.213.slot*4+i.0/24 and the
    /// host ports 20000+slot*20+i).
    pub fn new(slot: u8) -> Self {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "kernel tests run as root"
        );
        assert!(slot < 64);
        let dir = tempfile::Builder::new()
            .prefix("berth-net-test")
            .tempdir()
            .unwrap();
        let id = format!("t{slot:02}{:x}", std::process::id() % 0xfff);
        let table = format!("berth_test_{id}");
        let config = Config {
            root: dir.path().join("root"),
            run: dir.path().join("run"),
            pool: Pool {
                base: format!("{}.{}.0/22", test_net(), slot * 4).parse().unwrap(),
                prefix: 24,
            },
        };
        let env = TestEnv {
            net: Networking::new(config, Box::new(Nftables::new(table.clone()))),
            dir,
            id,
            table,
            slot,
            networks: Default::default(),
            namespaces: Default::default(),
            links: Default::default(),
        };
        for i in 0..4 {
            let s = env.subnet(i);
            if let Some(r) = host_routes().into_iter().find(|r| {
                r.prefix_len() > 0 && (r.contains(&s.network()) || s.contains(&r.network()))
            }) {
                panic!("test subnet {s} clashes with host route {r}: pick another slot");
            }
        }
        env
    }

    pub fn subnet(&self, i: u8) -> Ipv4Net {
        format!("{}.{}.0/24", test_net(), self.slot * 4 + i)
            .parse()
            .unwrap()
    }

    pub fn port(&self, i: u16) -> u16 {
        20000 + u16::from(self.slot) * 20 + i
    }

    pub fn name(&self, what: &str) -> String {
        format!("berth-{}-{what}", self.id)
    }

    /// Makes a network on subnet `i` of this test (the L2 fast path as the crate's
    /// default says).
    pub fn network(&self, what: &str, i: u8, internal: bool) -> NetworkInfo {
        self.network_with(what, i, internal, None)
    }

    /// Makes a network on subnet `i` of this test, the L2 fast path on or off as
    /// `fast_path` says (`None`: the crate's default).
    pub fn network_with(
        &self,
        what: &str,
        i: u8,
        internal: bool,
        fast_path: Option<bool>,
    ) -> NetworkInfo {
        let name = self.name(what);
        self.networks.borrow_mut().push(name.clone());
        self.net
            .ensure_network(&NetworkSpec {
                name,
                internal,
                mtu: None,
                ipam: IpamConfig {
                    subnet: Some(self.subnet(i)),
                    ..Default::default()
                },
                ipv6: None,
                fast_path,
            })
            .unwrap()
    }

    /// This test's IPv6 subnet `i`: fdb3:e57:SLOT*4+i::/64 (checked against the host's
    /// routes).
    pub fn subnet6(&self, i: u8) -> ipnet::Ipv6Net {
        let s: ipnet::Ipv6Net = format!(
            "fdb3:e57:{:x}::/64",
            u16::from(self.slot) * 4 + u16::from(i)
        )
        .parse()
        .unwrap();
        let mut nl = Netlink::open().unwrap();
        for r in nl.routes_v6().unwrap() {
            assert!(
                !(r.contains(&s.network()) || s.contains(&r.network())),
                "test subnet {s} clashes with host route {r}"
            );
        }
        s
    }

    /// A dual-stack network on subnets `i` of this test.
    pub fn network6(&self, what: &str, i: u8, internal: bool) -> NetworkInfo {
        let name = self.name(what);
        self.networks.borrow_mut().push(name.clone());
        self.net
            .ensure_network(&NetworkSpec {
                name,
                internal,
                mtu: None,
                ipam: IpamConfig {
                    subnet: Some(self.subnet(i)),
                    ..Default::default()
                },
                ipv6: Some(berth_networking::ipam::Ipv6Config {
                    subnet: Some(self.subnet6(i)),
                    gateway: None,
                }),
                fast_path: None,
            })
            .unwrap()
    }

    pub fn track_network(&self, name: &str) {
        self.networks.borrow_mut().push(name.to_string());
    }

    pub fn netns(&self, what: &str) -> Netns {
        let ns = Netns::create(&self.net.config().run, &self.name(what)).unwrap();
        self.namespaces.borrow_mut().push(ns.clone());
        ns
    }

    pub fn attach(&self, ns: &Netns, net: &NetworkInfo) -> Attachment {
        self.net
            .attach(
                ns,
                &[AttachRequest {
                    network: net.name.clone(),
                    ..Default::default()
                }],
            )
            .unwrap()
            .remove(0)
    }

    /// A namespace outside every Berth network, joined to the host by a veth pair of its
    /// own (host end `berthc<id>`, 10.214.slot.1/30; inside `eth0`, 10.214.slot.2/30 with a
    /// default route via the host end): stands for "another host".
    pub fn outside(&self) -> (Netns, Ipv4Addr, Ipv4Addr) {
        let ns = self.netns("out");
        let host_if = format!("berthc{}", self.id);
        self.links.borrow_mut().push(host_if.clone());
        let host_ip = Ipv4Addr::new(10, 214, self.slot, 1);
        let peer_ip = Ipv4Addr::new(10, 214, self.slot, 2);
        let mut nl = Netlink::open().unwrap();
        let f = ns.open().unwrap();
        use std::os::fd::AsFd;
        nl.create_veth(&host_if, None, "eth0", f.as_fd(), None, None)
            .unwrap();
        let l = nl.link_by_name(&host_if).unwrap().unwrap();
        nl.add_address(l.index, Ipv4Net::new(host_ip, 30).unwrap())
            .unwrap();
        let (host6, peer6) = self.outside6_addrs();
        nl.add_address6(l.index, ipnet::Ipv6Net::new(host6, 64).unwrap())
            .unwrap();
        ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            let l = nl.link_by_name("eth0").unwrap().unwrap();
            nl.add_address(l.index, Ipv4Net::new(peer_ip, 30).unwrap())
                .unwrap();
            nl.add_address6(l.index, ipnet::Ipv6Net::new(peer6, 64).unwrap())
                .unwrap();
            nl.set_up(l.index).unwrap();
            nl.add_default_route(host_ip).unwrap();
            nl.add_default_route(host6).unwrap();
        })
        .unwrap();
        (ns, host_ip, peer_ip)
    }

    /// The IPv6 addresses of the `outside` link: host end, inside end
    /// (fdb3:e58:SLOT::1 and ::2).
    pub fn outside6_addrs(&self) -> (std::net::Ipv6Addr, std::net::Ipv6Addr) {
        let base = format!("fdb3:e58:{:x}::", self.slot);
        (
            format!("{base}1").parse().unwrap(),
            format!("{base}2").parse().unwrap(),
        )
    }

    /// Everything of Berth's this test can see on the host, for "nothing left" checks.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let links = sh("ip", &["-o", "link", "show"]);
        for l in links.lines() {
            if l.contains(&self.id) || self.bridges_and_veths(l) {
                out.push(format!("link: {l}"));
            }
        }
        let tables = sh("nft", &["list", "tables"]);
        for t in tables.lines() {
            if t.contains(&self.table) {
                out.push(format!("nft: {t}"));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = self.dir.path().to_string_lossy().to_string();
        for m in mounts.lines() {
            if m.contains(&root) {
                out.push(format!("mount: {m}"));
            }
        }
        let netns_dir = self.net.config().run.join("netns");
        if let Ok(rd) = std::fs::read_dir(&netns_dir) {
            for e in rd.flatten() {
                out.push(format!("netns file: {}", e.path().display()));
            }
        }
        let helpers = self.net.config().run.join("helpers");
        if let Ok(rd) = std::fs::read_dir(&helpers) {
            for e in rd.flatten() {
                out.push(format!("helper file: {}", e.path().display()));
            }
        }
        // Helper processes (DNS, proxy) carry the run dir in their command line.
        let run = self.net.config().run.to_string_lossy().to_string();
        for p in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(&run) && !cmd.contains("--exact") {
                    out.push(format!(
                        "process {}: {cmd}",
                        p.file_name().to_string_lossy()
                    ));
                }
            }
        }
        let state = self.net.config().root.join("networks");
        if let Ok(rd) = std::fs::read_dir(&state) {
            for e in rd.flatten() {
                if e.file_name() != ".lock" {
                    out.push(format!("state file: {}", e.path().display()));
                }
            }
        }
        out
    }

    fn bridges_and_veths(&self, line: &str) -> bool {
        let nets = self.networks.borrow();
        let nss = self.namespaces.borrow();
        nets.iter().any(|n| {
            line.contains(&self.net.bridge_name(n))
                || nss
                    .iter()
                    .any(|ns| line.contains(&self.net.host_interface_name(n, ns.name())))
        })
    }

    pub fn track_netns(&self, ns: &Netns) {
        self.namespaces.borrow_mut().push(ns.clone());
    }

    /// Removes everything; returns what could not be removed.
    pub fn teardown(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for ns in self.namespaces.borrow().iter() {
            if let Err(e) = self.net.detach(ns, None) {
                problems.push(format!("detach {}: {e}", ns.name()));
            }
            if let Err(e) = ns.remove() {
                problems.push(format!("remove {}: {e}", ns.name()));
            }
        }
        for n in self.networks.borrow().iter() {
            if let Err(e) = self.net.remove_network(n) {
                problems.push(format!("remove network {n}: {e}"));
            }
        }
        if let Ok(mut nl) = Netlink::open() {
            for l in self.links.borrow().iter() {
                let _ = nl.delete_link(l);
            }
        }
        // The table is the test's own: take it away whole.
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .output();
        problems
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let problems = self.teardown();
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("teardown problems: {problems:?}");
        }
    }
}

pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs an inspection command inside a namespace (nsenter, not the crate: an outside
/// view of what the crate made).
pub fn sh_in(ns: &Netns, cmd: &str, args: &[&str]) -> String {
    let net = format!("--net={}", ns.path().display());
    let mut all = vec![net.as_str(), cmd];
    all.extend_from_slice(args);
    sh("nsenter", &all)
}

fn host_routes() -> Vec<Ipv4Net> {
    let mut nl = Netlink::open().unwrap();
    nl.routes::<Ipv4Addr>()
        .unwrap()
        .into_iter()
        .map(|r| r.dst)
        .collect()
}

/// A TCP server in a namespace: answers every connection with `greeting` and closes.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn tcp(ns: &Netns, port: u16, greeting: &str) -> Server {
        Self::tcp_on(
            ns,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            greeting,
        )
    }

    /// The same on IPv6 only.
    pub fn tcp6(ns: &Netns, port: u16, greeting: &str) -> Server {
        Self::tcp_on(
            ns,
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            greeting,
        )
    }

    fn tcp_on(ns: &Netns, addr: SocketAddr, greeting: &str) -> Server {
        Self::serve_tcp(
            ns.run(move || TcpListener::bind(addr)).unwrap().unwrap(),
            greeting,
        )
    }

    /// A service of the host itself (not in a namespace of the test's) on `addr`.
    pub fn host_tcp(addr: SocketAddr, greeting: &str) -> Server {
        Self::serve_tcp(TcpListener::bind(addr).unwrap(), greeting)
    }

    /// The same over UDP.
    pub fn host_udp(addr: SocketAddr, greeting: &str) -> Server {
        Self::serve_udp(UdpSocket::bind(addr).unwrap(), greeting)
    }

    fn serve_tcp(listener: TcpListener, greeting: &str) -> Server {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let greeting = greeting.to_string();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, peer)) => {
                        let _ = c.set_nonblocking(false);
                        let g = greeting.replace("{peer}", &peer.ip().to_string());
                        let _ = c.write_all(g.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            stop,
            thread: Some(thread),
        }
    }

    /// (`{peer}` in the greeting is replaced by the client's address as the server saw it.)
    /// A UDP echo server that answers `greeting` to every datagram.
    pub fn udp(ns: &Netns, port: u16, greeting: &str) -> Server {
        Self::serve_udp(
            ns.run(move || UdpSocket::bind(("0.0.0.0", port)))
                .unwrap()
                .unwrap(),
            greeting,
        )
    }

    fn serve_udp(sock: UdpSocket, greeting: &str) -> Server {
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let greeting = greeting.to_string();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                if let Ok((_, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(greeting.as_bytes(), from);
                }
            }
        });
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from `ns` (or the host when `None`) and returns what the server said.
pub fn tcp_get(ns: Option<&Netns>, addr: SocketAddr) -> std::io::Result<String> {
    let go = move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(1500))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    match ns {
        Some(ns) => ns.run(go).unwrap(),
        None => go(),
    }
}

/// Sends one datagram from `ns` (or the host) and returns the answer.
pub fn udp_get(ns: Option<&Netns>, addr: SocketAddr) -> std::io::Result<String> {
    let go = move || -> std::io::Result<String> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.set_read_timeout(Some(Duration::from_millis(1500)))?;
        s.send_to(b"ping", addr)?;
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).to_string())
    };
    match ns {
        Some(ns) => ns.run(go).unwrap(),
        None => go(),
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
