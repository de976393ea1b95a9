//! The userspace port proxy: the fallback for published ports where the kernel path
//! (nftables DNAT) is unavailable, or when asked for. One helper process per attachment
//! (see [`crate::HelperProgram`]) listens on the host ports and copies bytes to the container.
//! The container sees connections from the gateway address, as with Docker's
//! `docker-proxy`. It exits by itself when the network's record is removed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{NetError, Result};
use crate::ports::{PortMapping, Protocol};

/// How long a UDP client's session lives without traffic.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// The `--map` argument for one mapping: `tcp:HOST_IP:HOST_PORT:CONTAINER_IP:PORT`.
pub(crate) fn map_arg(p: &PortMapping, container: Ipv4Addr) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        p.protocol,
        p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        p.host_port,
        container,
        p.container_port
    )
}

#[derive(Debug, Clone, Copy)]
struct Map {
    protocol: Protocol,
    listen: SocketAddr,
    target: SocketAddr,
}

fn parse_map(s: &str) -> Option<Map> {
    let parts: Vec<&str> = s.split(':').collect();
    let [proto, hip, hport, cip, cport] = parts.as_slice() else {
        return None;
    };
    let protocol = match *proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    Some(Map {
        protocol,
        listen: SocketAddr::new(hip.parse::<IpAddr>().ok()?, hport.parse().ok()?),
        target: SocketAddr::new(cip.parse::<IpAddr>().ok()?, cport.parse().ok()?),
    })
}

/// Runs the proxy: `--map tcp:HIP:HPORT:CIP:CPORT ... --state FILE [--ready FILE]`;
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
                let l = TcpListener::bind(m.listen)
                    .map_err(|e| NetError::io(format!("bind tcp {}", m.listen), e))?;
                let target = m.target;
                std::thread::spawn(move || tcp_accept(l, target));
            }
            Protocol::Udp => {
                let s = UdpSocket::bind(m.listen)
                    .map_err(|e| NetError::io(format!("bind udp {}", m.listen), e))?;
                let target = m.target;
                std::thread::spawn(move || udp_relay(s, target));
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

fn tcp_accept(l: TcpListener, target: SocketAddr) {
    for client in l.incoming().flatten() {
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

fn udp_relay(sock: UdpSocket, target: SocketAddr) {
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
                let Ok(u) = UdpSocket::bind("0.0.0.0:0") else {
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
        let p = PortMapping::udp(5353, 53);
        let a = map_arg(&p, "10.9.0.2".parse().unwrap());
        assert_eq!(a, "udp:0.0.0.0:5353:10.9.0.2:53");
        let m = parse_map(&a).unwrap();
        assert_eq!(m.listen.port(), 5353);
        assert_eq!(m.target.to_string(), "10.9.0.2:53");
        assert!(parse_map("sctp:0.0.0.0:1:1.2.3.4:1").is_none());
        assert!(parse_map("tcp:1:2").is_none());
    }
}
