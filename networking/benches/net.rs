//! Networking benchmark (not a timed test): prints medians and ratios, each ratio between
//! figures measured in the same run, interleaved so that load from other processes hits
//! both sides alike.
//!
//! - TCP throughput (iperf3, Debian's) between two namespaces over a Berth network,
//!   against two namespaces joined by a bare veth pair (the kernel's limit) made by the
//!   same call with the same link settings (Berth's BIG TCP GSO size); the same over a
//!   Berth network without the L2 fast path (members' unicast through the bridge, as
//!   before it); and a bare pair and a Berth network (no fast path) with the kernel's
//!   default 64 KiB GSO size, to show what that size brings;
//! - TCP connection rate, bare pair and Berth network with and without the fast path;
//! - throughput through a published port (127.0.0.1 -> DNAT -> container) against the
//!   container's address directly, and through Berth's userspace proxy (the fallback,
//!   which does what Docker's userland proxy does);
//! - where a Docker daemon answers (`docker info`), TCP throughput and connection rate
//!   through a port Docker publishes on 127.0.0.1 (its userland proxy, `docker-proxy`,
//!   carries connections from 127.0.0.1) against the same through Berth's published port
//!   (DNAT), in the same rounds. The server runs in a `lab/busybox:latest` container
//!   (see `/work/shared/peers/02-make-image.sh`); busybox has no iperf3, so the host's
//!   `/usr/bin/iperf3` and the libraries `ldd` lists for it are bind-mounted read-only
//!   into it at the same paths. The connection-rate listener is a socket this bench opens
//!   in the container's network namespace (setns on `/proc/PID/ns/net`). No daemon: one
//!   line says so and why, and the rest of the bench runs as before. The container is
//!   removed (`docker rm -f`) by a guard, also when the bench panics;
//! - time to attach one namespace to a network, and to detach it.
//!
//! Run as root: `cargo bench -p berth-networking --bench net`. Traffic stays in
//! namespaces the bench makes and on 127.0.0.1; everything is removed at the end.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_networking::netlink::Netlink;
use berth_networking::{AttachRequest, Netns, PortMapping};
use common::TestEnv;
use ipnet::Ipv4Net;

const ROUNDS: usize = 9;
/// The image 02-make-image.sh in /work/shared/peers makes (busybox-static only).
const DOCKER_IMAGE: &str = "lab/busybox:latest";
const IPERF: &str = "/usr/bin/iperf3";
const IPERF_SECONDS: &str = "1";
/// The kernel's default IPv4 GSO size, for the reference pair and network.
const DEFAULT_GSO: u32 = 65_536;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn nsenter(ns: Option<&Netns>, args: &[&str]) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.path().display())).args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    }
}

struct Killer(Child);
impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one iperf3 run measured.
#[derive(Clone, Copy)]
struct Run {
    /// Gbit/s received.
    gbps: f64,
    /// CPU time of both iperf3 processes per GB received, in ms. On this kernel (tick-based
    /// accounting) a process is also charged the softirq work done on its time (the whole
    /// packet path between two namespaces, mostly), so this is the cost of the path, and it
    /// moves much less than Gbit/s when other processes load the machine.
    cpu_ms_per_gb: f64,
}

/// One iperf3 run: server in `server_ns` on `port`, client in `client_ns` (None: the
/// host) to `addr`.
fn iperf(server_ns: &Netns, port: u16, client_ns: Option<&Netns>, addr: SocketAddr) -> Run {
    let p = port.to_string();
    let _srv = Killer(
        nsenter(Some(server_ns), &["iperf3", "-s", "-1", "-p", &p])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 (Debian package iperf3) is installed"),
    );
    iperf_client(client_ns, addr).unwrap_or_else(|| panic!("iperf3 never connected to {addr}"))
}

/// An iperf3 client in `client_ns` (None: the host) against a server already started;
/// None if it never got a result (50 tries).
fn iperf_client(client_ns: Option<&Netns>, addr: SocketAddr) -> Option<Run> {
    let target = addr.ip().to_string();
    let cport = addr.port().to_string();
    for _ in 0..50 {
        let out = nsenter(
            client_ns,
            &[
                "iperf3",
                "-c",
                &target,
                "-p",
                &cport,
                "-t",
                IPERF_SECONDS,
                "-J",
            ],
        )
        .output()
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let end = &v["end"];
        if let Some(bps) = end["sum_received"]["bits_per_second"].as_f64() {
            let cpu = &end["cpu_utilization_percent"];
            let busy = cpu["host_total"].as_f64().unwrap_or(0.0)
                + cpu["remote_total"].as_f64().unwrap_or(0.0);
            let secs = end["sum_received"]["seconds"].as_f64().unwrap_or(0.0);
            let gb = end["sum_received"]["bytes"].as_f64().unwrap_or(0.0) / 1e9;
            return Some(Run {
                gbps: bps / 1e9,
                cpu_ms_per_gb: if gb > 0.0 {
                    busy / 100.0 * secs * 1e3 / gb
                } else {
                    f64::NAN
                },
            });
        }
        std::thread::sleep(Duration::from_millis(50)); // the server was not up yet
    }
    None
}

/// A listener on `port` (all addresses) in `ns`.
fn listen_in(ns: &Netns, port: u16) -> TcpListener {
    ns.run(move || TcpListener::bind(("0.0.0.0", port)))
        .unwrap()
        .unwrap()
}

/// A listener on `port` (all addresses) in the network namespace of process `pid` (a
/// container's init), opened on a short-lived thread that joins that namespace.
fn listen_in_pid(pid: u32, port: u16) -> std::io::Result<TcpListener> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
        TcpListener::bind(("0.0.0.0", port))
    })
    .join()
    .unwrap()
}

/// Connections per second (connect, read to EOF, close) for `secs`, from `client_ns`
/// (None: the host) to `addr`, which leads to `listener`. Err: a connection failed.
fn conn_rate(
    listener: TcpListener,
    client_ns: Option<&Netns>,
    addr: SocketAddr,
    secs: f64,
) -> std::io::Result<f64> {
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let srv = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((c, _)) => drop(c),
                Err(_) => std::thread::yield_now(),
            }
        }
    });
    let client = move || -> std::io::Result<f64> {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut b = [0u8; 1];
            let _ = c.read(&mut b);
            n += 1;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    };
    let n = match client_ns {
        Some(ns) => ns.run(client).unwrap(),
        None => client(),
    };
    stop.store(true, Ordering::Relaxed);
    srv.join().unwrap();
    n
}

/// Puts IPv4 GSO size `size` on `eth0` of the namespace `nl` belongs to; its index.
fn eth0_gso(nl: &mut Netlink, size: u32) -> u32 {
    let l = nl.link_by_name("eth0").unwrap().unwrap();
    nl.set_ipv4_gso_max_size(l.index, size).unwrap();
    l.index
}

/// Joins `a` and `b` by a bare veth pair, `eth0` <-> `eth0`, made by the same call as
/// Berth's pairs (so with the same link settings), addressed `ip_a` and `ip_b`; `gso`: an
/// IPv4 GSO size to put on both ends instead.
fn bare_pair(a: &Netns, b: &Netns, ip_a: Ipv4Net, ip_b: Ipv4Net, gso: Option<u32>) {
    let bfile = b.open().unwrap();
    a.run(|| {
        Netlink::open()
            .unwrap()
            .create_veth("eth0", None, "eth0", bfile.as_fd(), None, None)
            .unwrap()
    })
    .unwrap();
    for (ns, ip) in [(a, ip_a), (b, ip_b)] {
        ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            let index = match gso {
                Some(size) => eth0_gso(&mut nl, size),
                None => nl.link_by_name("eth0").unwrap().unwrap().index,
            };
            nl.add_address(index, ip).unwrap();
            nl.set_up(index).unwrap();
        })
        .unwrap();
    }
}

/// Runs `docker ARGS`; stdout on success, else why not.
fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `docker`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim().lines().last().unwrap_or("").to_string();
        Err(format!("`docker {}` failed: {err}", args[0]))
    }
}

/// The files the dynamic loader needs for `bin` (from `ldd`): absolute paths as ldd prints
/// them (the container sees them at the same paths).
fn ldd_paths(bin: &str) -> Result<Vec<String>, String> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    if !out.status.success() {
        return Err(format!("ldd {bin} failed"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut paths = vec![];
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            paths.push(p.to_string());
        }
    }
    Ok(paths)
}

/// A `lab/busybox` container running the host's iperf3 as a server on 5301, with
/// 127.0.0.1:`iperf_port` -> 5301 and 127.0.0.1:`conn_port` -> 6000 published by Docker.
/// Dropping it removes the container.
struct DockerPeer {
    name: String,
    pid: u32,
    iperf_port: u16,
    conn_port: u16,
    /// Whether a docker-proxy process listens on the published ports (it should, with
    /// dockerd's default `--userland-proxy=true`).
    proxy_seen: bool,
}

impl Drop for DockerPeer {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

impl DockerPeer {
    fn start(iperf_port: u16, conn_port: u16) -> Result<DockerPeer, String> {
        docker(&["info", "--format", "{{.ServerVersion}}"])
            .map_err(|e| format!("no Docker daemon answers ({e})"))?;
        docker(&["image", "inspect", "--format", "{{.Id}}", DOCKER_IMAGE]).map_err(|_| {
            format!(
                "image {DOCKER_IMAGE} missing (make it with /work/shared/peers/02-make-image.sh)"
            )
        })?;
        // A fixed name: a container left by a killed run (its ports are this bench's, so two
        // runs cannot overlap anyway) is removed first.
        let name = "berth-netbench-iperf".to_string();
        let _ = docker(&["rm", "-f", &name]);
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
        args.push("-p".into());
        args.push(format!("127.0.0.1:{iperf_port}:5301"));
        args.push("-p".into());
        args.push(format!("127.0.0.1:{conn_port}:6000"));
        let mut files = vec![IPERF.to_string()];
        files.extend(ldd_paths(IPERF)?);
        for f in &files {
            let src = std::fs::canonicalize(f).map_err(|e| format!("{f}: {e}"))?;
            args.push("-v".into());
            args.push(format!("{}:{f}:ro", src.display()));
        }
        args.extend([DOCKER_IMAGE, IPERF, "-s", "-p", "5301"].map(String::from));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&argv)?;
        // From here on the guard removes the container whatever happens.
        let mut peer = DockerPeer {
            name,
            pid: 0,
            iperf_port,
            conn_port,
            proxy_seen: false,
        };
        let pid = docker(&["inspect", "--format", "{{.State.Pid}}", &peer.name])?;
        peer.pid = pid
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("container {} is not running", peer.name))?;
        let ss = Command::new("ss")
            .args(["-Hltnp"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        peer.proxy_seen = [iperf_port, conn_port].iter().all(|p| {
            ss.lines()
                .any(|l| l.contains(&format!("127.0.0.1:{p} ")) && l.contains("docker-proxy"))
        });
        Ok(peer)
    }

    fn iperf_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.iperf_port))
    }

    fn conn_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.conn_port))
    }
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("the networking bench runs as root");
        return;
    }
    let env = TestEnv::new(60);
    let net = env.network("bench", 0, false);

    // Two namespaces on a Berth network.
    let b1 = env.netns("b1");
    let b2 = env.netns("b2");
    env.attach(&b1, &net);
    let e2 = env.attach(&b2, &net);

    // Two namespaces on a Berth network without the L2 fast path: member-to-member
    // unicast through the bridge (and, on this host, br_netfilter), as before it.
    let netslow = env.network_with("benchslow", 2, false, Some(false));
    let s1 = env.netns("s1");
    let s2 = env.netns("s2");
    env.attach(&s1, &netslow);
    let es2 = env.attach(&s2, &netslow);

    // Two namespaces joined by a bare veth pair: eth0 in v1 <-> eth0 in v2.
    let v1 = env.netns("v1");
    let v2 = env.netns("v2");
    let bare = env.subnet(3);
    let ip1 = Ipv4Net::new(Ipv4Addr::from(u32::from(bare.network()) + 1), 24).unwrap();
    let ip2 = Ipv4Net::new(Ipv4Addr::from(u32::from(bare.network()) + 2), 24).unwrap();
    bare_pair(&v1, &v2, ip1, ip2, None);

    // The same bare pair with the kernel's default IPv4 GSO size (64 KiB) on both ends,
    // and a second Berth network put back to that default (bridge and both veth ends):
    // what Berth's links were before they got BIG TCP (see `BIG_TCP_IPV4_SIZE`). The
    // ratio target compares like with like, bare pair and Berth network with the same
    // sizes; these two show what the size itself brings.
    let d1 = env.netns("d1");
    let d2 = env.netns("d2");
    let dip1 = Ipv4Net::new(Ipv4Addr::from(u32::from(bare.network()) + 129), 25).unwrap();
    let dip2 = Ipv4Net::new(Ipv4Addr::from(u32::from(bare.network()) + 130), 25).unwrap();
    bare_pair(&d1, &d2, dip1, dip2, Some(DEFAULT_GSO));
    let net64 = env.network_with("bench64", 1, false, Some(false));
    let c1 = env.netns("c1");
    let c2 = env.netns("c2");
    let ec1 = env.attach(&c1, &net64);
    let ec2 = env.attach(&c2, &net64);
    {
        let mut nl = Netlink::open().unwrap();
        for name in [&net64.bridge, &ec1.host_interface, &ec2.host_interface] {
            let l = nl.link_by_name(name).unwrap().unwrap();
            nl.set_ipv4_gso_max_size(l.index, DEFAULT_GSO).unwrap();
        }
        for ns in [&c1, &c2] {
            ns.run(|| eth0_gso(&mut Netlink::open().unwrap(), DEFAULT_GSO))
                .unwrap();
        }
    }

    // A published port on b2.
    let pub_port = env.port(0);
    env.net
        .publish(&b2, &net.name, &[PortMapping::tcp(pub_port, 5301)])
        .unwrap();

    // The same through Berth's userspace proxy (the fallback, and what Docker's userland
    // proxy does), on a third namespace of the same network.
    let b3 = env.netns("b3");
    env.attach(&b3, &net);
    let proxied = berth_networking::Networking::new(
        env.net.config().clone(),
        Box::new(berth_networking::NoFirewall),
    )
    .with_port_proxy(
        berth_networking::HelperProgram {
            program: env!("CARGO_BIN_EXE_berth-port-proxy").into(),
            args: vec![],
        },
        berth_networking::PublishMode::Proxy,
    );
    let proxy_port = env.port(1);
    proxied
        .publish(&b3, &net.name, &[PortMapping::tcp(proxy_port, 5301)])
        .unwrap();

    // Docker's userland proxy on 127.0.0.1, where a daemon answers.
    let (mut dock, mut dock_skip) = match DockerPeer::start(env.port(2), env.port(3)) {
        Ok(d) => (Some(d), None),
        Err(why) => (None, Some(why)),
    };
    let proxy_seen = dock.as_ref().is_some_and(|d| d.proxy_seen);
    let mut dock_note = String::new();
    let (mut t_dock, mut t_pub_d, mut c_dock, mut c_pub_d) = (vec![], vec![], vec![], vec![]);
    let mut c_pub = vec![];

    let mut t_proxy = vec![];
    let (mut t_bare, mut t_berth, mut t_pub, mut t_direct) = (vec![], vec![], vec![], vec![]);
    let (mut c_bare, mut c_berth, mut c_slow) = (vec![], vec![], vec![]);
    let mut t_slow = vec![];
    let (mut t_bare64, mut t_berth64) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        t_bare64.push(iperf(
            &d2,
            5201,
            Some(&d1),
            SocketAddr::from((dip2.addr(), 5201)),
        ));
        t_berth64.push(iperf(
            &c2,
            5201,
            Some(&c1),
            SocketAddr::from((ec2.address.addr(), 5201)),
        ));
        t_bare.push(iperf(
            &v2,
            5201,
            Some(&v1),
            SocketAddr::from((ip2.addr(), 5201)),
        ));
        t_berth.push(iperf(
            &b2,
            5201,
            Some(&b1),
            SocketAddr::from((e2.address.addr(), 5201)),
        ));
        t_slow.push(iperf(
            &s2,
            5201,
            Some(&s1),
            SocketAddr::from((es2.address.addr(), 5201)),
        ));
        t_direct.push(iperf(&b2, 5301, None, SocketAddr::from((e2.address.addr(), 5301))).gbps);
        t_pub.push(
            iperf(
                &b2,
                5301,
                None,
                SocketAddr::from((Ipv4Addr::LOCALHOST, pub_port)),
            )
            .gbps,
        );
        t_proxy.push(
            iperf(
                &b3,
                5301,
                None,
                SocketAddr::from((Ipv4Addr::LOCALHOST, proxy_port)),
            )
            .gbps,
        );
        c_bare.push(
            conn_rate(
                listen_in(&v2, 6000),
                Some(&v1),
                SocketAddr::from((ip2.addr(), 6000)),
                1.0,
            )
            .unwrap(),
        );
        c_berth.push(
            conn_rate(
                listen_in(&b2, 6000),
                Some(&b1),
                SocketAddr::from((e2.address.addr(), 6000)),
                1.0,
            )
            .unwrap(),
        );
        c_slow.push(
            conn_rate(
                listen_in(&s2, 6000),
                Some(&s1),
                SocketAddr::from((es2.address.addr(), 6000)),
                1.0,
            )
            .unwrap(),
        );
        // Berth's published port (DNAT) from the host, the listener on 5301 in b2.
        let pub_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, pub_port));
        let cp = conn_rate(listen_in(&b2, 5301), None, pub_addr, 1.0).unwrap();
        c_pub.push(cp);
        if let Some(d) = &dock {
            // Docker's side right after Berth's: iperf3 through docker-proxy, then connections.
            // The daemon may go away mid-run: then stop comparing, keep the rest.
            let td = iperf_client(None, d.iperf_addr()).map(|r| r.gbps);
            let cd = td.and_then(|_| {
                listen_in_pid(d.pid, 6000)
                    .and_then(|l| conn_rate(l, None, d.conn_addr(), 1.0))
                    .ok()
            });
            match (td, cd) {
                (Some(td), Some(cd)) => {
                    t_dock.push(td);
                    t_pub_d.push(*t_pub.last().unwrap());
                    c_dock.push(cd);
                    c_pub_d.push(cp);
                }
                _ => {
                    dock_note = format!(
                        ", stopped after {} of {ROUNDS}: the container or daemon went away",
                        t_dock.len()
                    );
                    if t_dock.is_empty() {
                        dock_skip = Some(
                            "the container or daemon went away in the first round".to_string(),
                        );
                    }
                    dock = None;
                }
            }
        }
    }
    let dock_rounds = t_dock.len();
    drop(dock); // docker rm -f

    // Attach and detach times, one namespace at a time, on a warm network; alternately
    // on the network with the fast path and on the one without, to show its cost.
    let (mut attach_ms, mut detach_ms) = (vec![], vec![]);
    let (mut attach_slow_ms, mut detach_slow_ms) = (vec![], vec![]);
    for i in 0..60 {
        let ns = Netns::create(&env.net.config().run, &env.name(&format!("a{i}"))).unwrap();
        let (to, a_ms, d_ms) = if i % 2 == 0 {
            (&net, &mut attach_ms, &mut detach_ms)
        } else {
            (&netslow, &mut attach_slow_ms, &mut detach_slow_ms)
        };
        let t = Instant::now();
        env.net
            .attach(
                &ns,
                &[AttachRequest {
                    network: to.name.clone(),
                    ..Default::default()
                }],
            )
            .unwrap();
        a_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        env.net.detach(&ns, None).unwrap();
        d_ms.push(t.elapsed().as_secs_f64() * 1e3);
        ns.remove().unwrap();
    }

    // Ratios per round (both sides measured back to back), then the median: load from
    // other processes moves both sides of a round alike.
    let ratio =
        |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| 100.0 * x / y).collect());
    // Gbit/s and CPU per GB of the four Run series.
    let gbps = |v: &[Run]| v.iter().map(|r| r.gbps).collect::<Vec<_>>();
    let cost = |v: &[Run]| median(v.iter().map(|r| r.cpu_ms_per_gb).collect());
    let k_slow = cost(&t_slow);
    let t_slow = gbps(&t_slow);
    let (k_bare, k_berth, k_bare64, k_berth64) = (
        cost(&t_bare),
        cost(&t_berth),
        cost(&t_bare64),
        cost(&t_berth64),
    );
    let (t_bare, t_berth, t_bare64, t_berth64) = (
        gbps(&t_bare),
        gbps(&t_berth),
        gbps(&t_bare64),
        gbps(&t_berth64),
    );
    let r_berth = ratio(&t_berth, &t_bare);
    let r_pub = ratio(&t_pub, &t_direct);
    let r_proxy = ratio(&t_proxy, &t_pub);
    let r_conn = ratio(&c_berth, &c_bare);
    let r_slow = ratio(&t_slow, &t_bare);
    let r_cslow = ratio(&c_slow, &c_bare);
    let r_fast_over_slow = ratio(&t_berth, &t_slow);
    let (ts, cs) = (median(t_slow), median(c_slow));
    let r_berth64 = ratio(&t_berth64, &t_bare64);
    let r_bare_big = ratio(&t_bare, &t_bare64);
    let r_berth_big = ratio(&t_berth, &t_berth64);
    let (tb64, tn64) = (median(t_bare64), median(t_berth64));
    let (tb, tn, tp, td) = (
        median(t_bare),
        median(t_berth),
        median(t_pub),
        median(t_direct),
    );
    let r_cpub = ratio(&c_pub, &c_berth);
    let (cb, cn) = (median(c_bare), median(c_berth));
    let cp = median(c_pub);
    let tx = median(t_proxy);
    let (am, dm) = (median(attach_ms), median(detach_ms));
    let (ams, dms) = (median(attach_slow_ms), median(detach_slow_ms));
    println!(
        "berth-networking bench ({ROUNDS} rounds, iperf3 -t {IPERF_SECONDS}; medians; ratios are medians of per-round ratios)"
    );
    println!("tcp throughput, bare veth pair      : {tb:8.2} Gbit/s");
    println!(
        "tcp throughput, Berth network       : {tn:8.2} Gbit/s  ({r_berth:.1}% of bare veth; target >= 90%; L2 fast path on)"
    );
    println!(
        "  CPU per GB received (both iperf3 ends, packet path included): bare veth {k_bare:.0} ms, Berth {k_berth:.0} ms ({:.1}% of bare veth's throughput at equal CPU)",
        100.0 * k_bare / k_berth
    );
    println!(
        "tcp throughput, Berth, no fast path : {ts:8.2} Gbit/s  ({r_slow:.1}% of bare veth; the fast path carries {r_fast_over_slow:.1}% of this)"
    );
    println!(
        "  CPU per GB received: bare veth {k_bare:.0} ms, Berth without the fast path {k_slow:.0} ms ({:.1}%)",
        100.0 * k_bare / k_slow
    );
    println!("  same, both with 64 KiB IPv4 GSO (the kernel's default; Berth before BIG TCP, no fast path):");
    println!("  tcp throughput, bare veth pair    : {tb64:8.2} Gbit/s");
    println!(
        "  tcp throughput, Berth network     : {tn64:8.2} Gbit/s  ({r_berth64:.1}% of bare veth)"
    );
    println!(
        "  CPU per GB received: bare veth {k_bare64:.0} ms, Berth {k_berth64:.0} ms ({:.1}%)",
        100.0 * k_bare64 / k_berth64
    );
    println!(
        "  BIG TCP over 64 KiB: bare veth pair {r_bare_big:.1}%, Berth network {r_berth_big:.1}%"
    );
    println!("tcp throughput, host -> container ip: {td:8.2} Gbit/s");
    println!("tcp throughput, published 127.0.0.1 : {tp:8.2} Gbit/s  ({r_pub:.1}% of direct)");
    println!("tcp throughput, userspace proxy     : {tx:8.2} Gbit/s  ({r_proxy:.1}% of DNAT)");
    println!("tcp connections/s, bare veth pair   : {cb:8.0}");
    println!("tcp connections/s, Berth network    : {cn:8.0}  ({r_conn:.1}% of bare veth)");
    println!("tcp connections/s, Berth, no fast path: {cs:6.0}  ({r_cslow:.1}% of bare veth)");
    println!(
        "tcp connections/s, published port   : {cp:8.0}  (host -> 127.0.0.1 -> DNAT; {r_cpub:.1}% of Berth network)"
    );
    println!("attach one namespace                : {am:8.2} ms  (target < 5 ms)");
    println!("detach one namespace                : {dm:8.2} ms  (mostly the kernel's veth unregistration)");
    println!("  the same without the fast path: attach {ams:.2} ms, detach {dms:.2} ms");
    if dock_rounds > 0 {
        // Ratios: Docker's userland proxy over Berth's DNAT, per round, then the median.
        let r_t = ratio(&t_dock, &t_pub_d);
        let r_c = ratio(&c_dock, &c_pub_d);
        let (td, tp) = (median(t_dock), median(t_pub_d));
        let (cd, cp) = (median(c_dock), median(c_pub_d));
        println!(
            "docker userland proxy, 127.0.0.1 ({dock_rounds} rounds{dock_note}; {}):",
            if proxy_seen {
                "docker-proxy seen listening"
            } else {
                "NO docker-proxy seen listening: is dockerd running with --userland-proxy=false?"
            }
        );
        println!("  tcp throughput, Berth DNAT        : {tp:8.2} Gbit/s");
        println!(
            "  tcp throughput, docker-proxy      : {td:8.2} Gbit/s  ({r_t:.1}% of Berth's; Berth {:.2}x)",
            100.0 / r_t
        );
        println!("  tcp connections/s, Berth DNAT     : {cp:8.0}");
        println!(
            "  tcp connections/s, docker-proxy   : {cd:8.0}  ({r_c:.1}% of Berth's; Berth {:.2}x)",
            100.0 / r_c
        );
    } else if let Some(why) = dock_skip {
        println!("docker userland proxy comparison skipped: {why}");
    }
}
