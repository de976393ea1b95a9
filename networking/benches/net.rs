//! Networking benchmark (not a timed test): prints medians and ratios, each ratio between
//! figures measured in the same run, interleaved so that load from other processes hits
//! both sides alike.
//!
//! - TCP throughput (iperf3, Debian's) between two namespaces over a Berth network,
//!   against two namespaces joined by a bare veth pair (the kernel's limit);
//! - TCP connection rate, same two setups;
//! - throughput through a published port (127.0.0.1 -> DNAT -> container) against the
//!   container's address directly, and through Berth's userspace proxy (the fallback,
//!   which does what Docker's userland proxy does; Docker itself is not compared here);
//! - time to attach one namespace to a network, and to detach it.
//!
//! Run as root: `cargo bench -p berth-networking --bench net`. Traffic stays in
//! namespaces the bench makes and on 127.0.0.1; everything is removed at the end.

#[path = "../tests/common/mod.rs"]
mod common;

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
const IPERF_SECONDS: &str = "1";

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

/// One iperf3 run: server in `server_ns` on `port`, client in `client_ns` (None: the
/// host) to `addr`; returns Gbit/s received.
fn iperf(server_ns: &Netns, port: u16, client_ns: Option<&Netns>, addr: SocketAddr) -> f64 {
    let p = port.to_string();
    let _srv = Killer(
        nsenter(Some(server_ns), &["iperf3", "-s", "-1", "-p", &p])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 (Debian package iperf3) is installed"),
    );
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
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            return bps / 1e9;
        }
        std::thread::sleep(Duration::from_millis(50)); // the server was not up yet
    }
    panic!("iperf3 never connected to {addr}");
}

/// Connections per second (connect, read to EOF, close) for `secs`.
fn conn_rate(server_ns: &Netns, port: u16, client_ns: &Netns, addr: SocketAddr, secs: f64) -> f64 {
    let listener = server_ns
        .run(move || TcpListener::bind(("0.0.0.0", port)))
        .unwrap()
        .unwrap();
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
    let n = client_ns
        .run(move || {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed().as_secs_f64() < secs {
                let mut c = TcpStream::connect(addr).unwrap();
                let mut b = [0u8; 1];
                let _ = c.read(&mut b);
                n += 1;
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    srv.join().unwrap();
    n
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

    // Two namespaces joined by a bare veth pair: eth0 in v1 <-> eth0 in v2.
    let v1 = env.netns("v1");
    let v2 = env.netns("v2");
    let bare = env.subnet(3);
    let ip1 = Ipv4Net::new(Ipv4Addr::from(u32::from(bare.network()) + 1), 24).unwrap();
    let ip2 = Ipv4Net::new(Ipv4Addr::from(u32::from(bare.network()) + 2), 24).unwrap();
    let v2file = v2.open().unwrap();
    v1.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_veth("eth0", None, "eth0", v2file.as_fd(), None)
            .unwrap();
        let l = nl.link_by_name("eth0").unwrap().unwrap();
        nl.add_address(l.index, ip1).unwrap();
        nl.set_up(l.index).unwrap();
    })
    .unwrap();
    v2.run(|| {
        let mut nl = Netlink::open().unwrap();
        let l = nl.link_by_name("eth0").unwrap().unwrap();
        nl.add_address(l.index, ip2).unwrap();
        nl.set_up(l.index).unwrap();
    })
    .unwrap();

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

    let mut t_proxy = vec![];
    let (mut t_bare, mut t_berth, mut t_pub, mut t_direct) = (vec![], vec![], vec![], vec![]);
    let (mut c_bare, mut c_berth) = (vec![], vec![]);
    for _ in 0..ROUNDS {
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
        t_direct.push(iperf(
            &b2,
            5301,
            None,
            SocketAddr::from((e2.address.addr(), 5301)),
        ));
        t_pub.push(iperf(
            &b2,
            5301,
            None,
            SocketAddr::from((Ipv4Addr::LOCALHOST, pub_port)),
        ));
        t_proxy.push(iperf(
            &b3,
            5301,
            None,
            SocketAddr::from((Ipv4Addr::LOCALHOST, proxy_port)),
        ));
        c_bare.push(conn_rate(
            &v2,
            6000,
            &v1,
            SocketAddr::from((ip2.addr(), 6000)),
            1.0,
        ));
        c_berth.push(conn_rate(
            &b2,
            6000,
            &b1,
            SocketAddr::from((e2.address.addr(), 6000)),
            1.0,
        ));
    }

    // Attach and detach times, one namespace at a time, on a warm network.
    let mut attach_ms = vec![];
    let mut detach_ms = vec![];
    for i in 0..30 {
        let ns = Netns::create(&env.net.config().run, &env.name(&format!("a{i}"))).unwrap();
        let t = Instant::now();
        env.net
            .attach(
                &ns,
                &[AttachRequest {
                    network: net.name.clone(),
                    ..Default::default()
                }],
            )
            .unwrap();
        attach_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        env.net.detach(&ns, None).unwrap();
        detach_ms.push(t.elapsed().as_secs_f64() * 1e3);
        ns.remove().unwrap();
    }

    // Ratios per round (both sides measured back to back), then the median: load from
    // other processes moves both sides of a round alike.
    let ratio =
        |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| 100.0 * x / y).collect());
    let r_berth = ratio(&t_berth, &t_bare);
    let r_pub = ratio(&t_pub, &t_direct);
    let r_proxy = ratio(&t_proxy, &t_pub);
    let r_conn = ratio(&c_berth, &c_bare);
    let (tb, tn, tp, td) = (
        median(t_bare),
        median(t_berth),
        median(t_pub),
        median(t_direct),
    );
    let (cb, cn) = (median(c_bare), median(c_berth));
    let tx = median(t_proxy);
    let (am, dm) = (median(attach_ms), median(detach_ms));
    println!(
        "berth-networking bench ({ROUNDS} rounds, iperf3 -t {IPERF_SECONDS}; medians; ratios are medians of per-round ratios)"
    );
    println!("tcp throughput, bare veth pair      : {tb:8.2} Gbit/s");
    println!(
        "tcp throughput, Berth network       : {tn:8.2} Gbit/s  ({r_berth:.1}% of bare veth; target >= 90%)"
    );
    println!("tcp throughput, host -> container ip: {td:8.2} Gbit/s");
    println!("tcp throughput, published 127.0.0.1 : {tp:8.2} Gbit/s  ({r_pub:.1}% of direct)");
    println!("tcp throughput, userspace proxy     : {tx:8.2} Gbit/s  ({r_proxy:.1}% of DNAT)");
    println!("tcp connections/s, bare veth pair   : {cb:8.0}");
    println!("tcp connections/s, Berth network    : {cn:8.0}  ({r_conn:.1}% of bare veth)");
    println!("attach one namespace                : {am:8.2} ms  (target < 5 ms)");
    println!("detach one namespace                : {dm:8.2} ms  (mostly the kernel's veth unregistration)");
    let docker = std::path::Path::new("/var/run/docker.sock").exists();
    println!(
        "docker userland proxy               : {}",
        if docker {
            "a Docker daemon runs here; not compared (Berth's own userspace proxy above does the same job)"
        } else {
            "not measured (no Docker daemon)"
        }
    );
}
