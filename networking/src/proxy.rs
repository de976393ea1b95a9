//! The userspace port proxy: the fallback for published ports where the kernel path
//! (nftables DNAT) is unavailable, or when asked for. One helper process per attachment
//! (see [`crate::HelperProgram`]) listens on the host ports and copies bytes to the container.
//! The container sees connections from the gateway address, as with Docker's
//! `docker-proxy`. It exits by itself when the network's record is removed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{NetError, Result};
use crate::firewall::PublishTarget;
use crate::ports::{PortMapping, Protocol};

/// The `SO_MARK` of the proxy's listening sockets (ASCII "brth"), which the firewall's
/// input chain accepts from containers (see `firewall::nft`). Packets the proxy sends
/// to its clients carry it too; nothing of Berth's routes by it.
pub const PROXY_SOCKET_MARK: u32 = 0x6272_7468;

/// How long a UDP client's session lives without traffic.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// The `--map` argument for one mapping: `PROTO,LISTEN,TARGET[,TARGET6]` (socket
/// addresses, so IPv6 ones keep their brackets), e.g. `tcp,[::]:8080,10.89.0.2:80,[fd00::2]:80`.
/// A mapping on every host address listens on `[::]` (IPv4 and IPv6 alike, `::1` and
/// 127.0.0.1 included) and sends IPv6 clients to the container's IPv6 address when it has
/// one; a mapping on one host address goes to the container's address of that family.
pub(crate) fn map_arg(p: &PortMapping, target: &PublishTarget) -> Option<String> {
    let v4 = SocketAddr::new(IpAddr::V4(target.v4), p.container_port);
    let v6 = target
        .v6
        .map(|a| SocketAddr::new(IpAddr::V6(a), p.container_port));
    let (listen, to, to6) = match p.host_ip {
        Some(ip @ IpAddr::V6(_)) => (ip, v6?, None),
        Some(ip) => (ip, v4, None),
        None => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), v4, v6),
    };
    let mut arg = format!(
        "{},{},{}",
        p.protocol,
        SocketAddr::new(listen, p.host_port),
        to
    );
    if let Some(t6) = to6 {
        arg.push_str(&format!(",{t6}"));
    }
    Some(arg)
}

#[derive(Debug, Clone, Copy)]
struct Map {
    protocol: Protocol,
    listen: SocketAddr,
    targets: Targets,
}

/// Where a client goes: `main`, or `v6` for a (native) IPv6 client when there is one.
#[derive(Debug, Clone, Copy)]
struct Targets {
    main: SocketAddr,
    v6: Option<SocketAddr>,
}

impl Targets {
    fn pick(&self, client: IpAddr) -> SocketAddr {
        match client {
            IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => self.v6.unwrap_or(self.main),
            _ => self.main,
        }
    }
}

fn parse_map(s: &str) -> Option<Map> {
    let mut parts = s.split(',');
    let protocol = match parts.next()? {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    let listen = parts.next()?.parse().ok()?;
    let main = parts.next()?.parse().ok()?;
    let v6 = match parts.next() {
        Some(t) => Some(t.parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Map {
        protocol,
        listen,
        targets: Targets { main, v6 },
    })
}

/// Binds `[::]` where the host has IPv6, else `0.0.0.0`, for a listen address of `[::]`.
fn bind_any<T>(listen: SocketAddr, bind: impl Fn(SocketAddr) -> io::Result<T>) -> io::Result<T> {
    match bind(listen) {
        Err(e)
            if listen.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                && e.kind() != io::ErrorKind::AddrInUse =>
        {
            bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                listen.port(),
            ))
        }
        r => r,
    }
}

/// Gives a listening socket [`PROXY_SOCKET_MARK`]: the firewall lets containers reach
/// the host only where a socket with that mark listens (besides DNS and replies), so the
/// proxy's ports stay open to them, as published ports are, and nothing else on the host.
fn mark_listener(sock: &impl std::os::fd::AsRawFd, listen: SocketAddr) -> Result<()> {
    let mark: libc::c_uint = PROXY_SOCKET_MARK;
    // SAFETY: a valid fd borrowed for the call, and a pointer to a c_uint of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&mark as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(NetError::io(
            format!("mark the socket on {listen} (SO_MARK needs CAP_NET_ADMIN)"),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Runs the proxy: `--map PROTO,LISTEN,TARGET ... --state FILE [--ready FILE]`;
/// serves until FILE (the network's record) is gone.
pub fn run_from_args(args: impl IntoIterator<Item = OsString>) -> Result<()> {
    let bad = |m: String| NetError::InvalidArguments {
        helper: "berth-port-proxy",
        problem: m,
    };
    let mut maps = Vec::new();
    let mut state = None;
    let mut ready = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy().to_string();
        let v = it
            .next()
            .ok_or_else(|| bad(format!("{a} needs a value")))?
            .to_string_lossy()
            .to_string();
        match a.as_str() {
            "--map" => maps.push(parse_map(&v).ok_or_else(|| bad(format!("bad --map {v}")))?),
            "--state" => state = Some(PathBuf::from(v)),
            "--ready" => ready = Some(PathBuf::from(v)),
            _ => return Err(bad(format!("unknown argument {a}"))),
        }
    }
    let state = state.ok_or_else(|| bad("--state is required".into()))?;
    for m in &maps {
        match m.protocol {
            Protocol::Tcp => {
                let l = bind_any(m.listen, TcpListener::bind)
                    .map_err(|e| NetError::io(format!("bind tcp {}", m.listen), e))?;
                mark_listener(&l, m.listen)?;
                let targets = m.targets;
                std::thread::spawn(move || tcp_accept(l, targets));
            }
            Protocol::Udp => {
                let s = bind_any(m.listen, UdpSocket::bind)
                    .map_err(|e| NetError::io(format!("bind udp {}", m.listen), e))?;
                mark_listener(&s, m.listen)?;
                let targets = m.targets;
                std::thread::spawn(move || udp_relay(s, targets));
            }
        }
    }
    if let Some(r) = &ready {
        crate::helper::signal_ready(r)?;
    }
    while state.exists() {
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

fn tcp_accept(l: TcpListener, targets: Targets) {
    for client in l.incoming().flatten() {
        let Ok(peer) = client.peer_addr() else {
            continue;
        };
        let target = targets.pick(peer.ip());
        std::thread::spawn(move || {
            let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
                return; // dropping the client closes it: the container is not answering
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let up = std::thread::spawn(move || pipe(client, server));
            pipe(s2, c2);
            let _ = up.join();
        });
    }
}

/// Copies until EOF, then passes the half-close on.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

fn udp_relay(sock: UdpSocket, targets: Targets) {
    let sessions: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, client)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let existing = sessions.lock().expect("lock").get(&client).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let target = targets.pick(client.ip());
                let any: SocketAddr = if target.is_ipv4() {
                    "0.0.0.0:0".parse().expect("literal")
                } else {
                    "[::]:0".parse().expect("literal")
                };
                let Ok(u) = UdpSocket::bind(any) else {
                    continue;
                };
                if u.connect(target).is_err() {
                    continue;
                }
                let _ = u.set_read_timeout(Some(UDP_IDLE));
                let u = Arc::new(u);
                sessions.lock().expect("lock").insert(client, u.clone());
                let (u2, back, sessions) = (u.clone(), sock.try_clone(), sessions.clone());
                std::thread::spawn(move || {
                    let Ok(back) = back else { return };
                    let mut b = vec![0u8; 65535];
                    while let Ok(n) = u2.recv(&mut b) {
                        let _ = back.send_to(&b[..n], client);
                    }
                    sessions.lock().expect("lock").remove(&client);
                });
                u
            }
        };
        let _ = upstream.send(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_arguments_round_trip() {
        let target = PublishTarget {
            v4: "10.9.0.2".parse().unwrap(),
            v6: Some("fd00:9::2".parse().unwrap()),
        };
        let a = map_arg(&PortMapping::udp(5353, 53), &target).unwrap();
        assert_eq!(a, "udp,[::]:5353,10.9.0.2:53,[fd00:9::2]:53");
        let m = parse_map(&a).unwrap();
        assert_eq!(m.listen.port(), 5353);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(m.targets.pick(ip("127.0.0.1")).to_string(), "10.9.0.2:53");
        assert_eq!(
            m.targets.pick(ip("::ffff:127.0.0.1")).to_string(),
            "10.9.0.2:53"
        );
        assert_eq!(m.targets.pick(ip("::1")).to_string(), "[fd00:9::2]:53");
        let six = PortMapping {
            host_ip: Some("fd00::1".parse().unwrap()),
            ..PortMapping::tcp(8080, 80)
        };
        let a = map_arg(&six, &target).unwrap();
        assert_eq!(a, "tcp,[fd00::1]:8080,[fd00:9::2]:80");
        assert!(map_arg(&six, &PublishTarget { v6: None, ..target }).is_none());
        let four = PortMapping {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            ..PortMapping::tcp(8080, 80)
        };
        assert_eq!(
            map_arg(&four, &target).unwrap(),
            "tcp,127.0.0.1:8080,10.9.0.2:80"
        );
        assert!(parse_map("sctp,0.0.0.0:1,1.2.3.4:1").is_none());
        assert!(parse_map("tcp,1,2").is_none());
    }
}
