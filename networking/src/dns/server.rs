//! The responder process: UDP and TCP on the gateway's port 53, answers from the lease
//! file, forwards the rest. Blocking sockets and a thread per forwarded query or TCP
//! connection: a network's DNS load is small, and a plain loop is easy to reason about.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{
    rdata::{A, AAAA},
    RData, Record, RecordType,
};

use crate::error::{NetError, Result};
use crate::state::NetworkState;

/// How long clients may cache an answer: short, since containers come and go.
const TTL: u32 = 5;
/// Forwarded UDP queries in flight at most.
const MAX_FORWARDS: usize = 64;
/// How long to wait for an upstream resolver.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What the responder serves and where.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `BERTH_ROOT`, where the network's lease file is.
    pub root: PathBuf,
    /// Written with our pid once serving (see `helper`).
    pub ready: Option<PathBuf>,
    pub network: String,
    /// The gateway address, port 53.
    pub listen: SocketAddr,
    /// Resolvers for names outside the stack; empty: answer SERVFAIL for those.
    pub upstreams: Vec<SocketAddr>,
}

/// Names to addresses, from one network's leases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    names: HashMap<String, Vec<Ipv4Addr>>,
    names6: HashMap<String, Vec<Ipv6Addr>>,
}

impl Records {
    /// From `(name, address)` pairs; names are case-insensitive.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, Ipv4Addr)>) -> Self {
        let mut names: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
        for (n, ip) in pairs {
            let v = names.entry(normalize(n)).or_default();
            if !v.contains(&ip) {
                v.push(ip);
            }
        }
        for v in names.values_mut() {
            v.sort();
        }
        Records {
            names,
            names6: HashMap::new(),
        }
    }

    /// The IPv4 addresses of `name`; `None` when the stack has no such name.
    pub fn lookup(&self, name: &str) -> Option<&[Ipv4Addr]> {
        let n = normalize(name);
        match self.names.get(&n) {
            Some(v) => Some(v.as_slice()),
            None if self.names6.contains_key(&n) => Some(&[]),
            None => None,
        }
    }

    /// The IPv6 addresses of `name` (empty for a name with IPv4 only).
    pub fn lookup6(&self, name: &str) -> &[Ipv6Addr] {
        self.names6
            .get(&normalize(name))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// What to do with a query.
#[derive(Debug)]
pub enum Decision {
    /// Send this response.
    Answer(Message),
    /// Not a name of the stack: ask the upstream resolvers.
    Forward,
}

/// Decides the answer to `req` from `records` (pure; the server does the I/O).
pub fn answer(req: &Message, records: &Records) -> Decision {
    let mut resp = response_to(req);
    let Some(q) = req.queries().first() else {
        resp.set_response_code(ResponseCode::FormErr);
        return Decision::Answer(resp);
    };
    if req.op_code() != OpCode::Query || req.queries().len() != 1 {
        resp.set_response_code(ResponseCode::NotImp);
        return Decision::Answer(resp);
    }
    let name = q.name().to_ascii();
    match records.lookup(&name) {
        Some(ips) => {
            resp.set_authoritative(true);
            if q.query_type() == RecordType::A || q.query_type() == RecordType::ANY {
                for ip in ips {
                    resp.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(*ip))));
                }
            }
            if q.query_type() == RecordType::AAAA || q.query_type() == RecordType::ANY {
                for ip in records.lookup6(&name) {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::AAAA(AAAA(*ip)),
                    ));
                }
            }
            // AAAA and the rest: the name exists, with no such data (NOERROR, empty).
            Decision::Answer(resp)
        }
        None if normalize(&name).contains('.') => Decision::Forward,
        None => {
            // A bare name is a name of the stack; one we do not know does not exist.
            resp.set_authoritative(true);
            resp.set_response_code(ResponseCode::NXDomain);
            Decision::Answer(resp)
        }
    }
}

fn response_to(req: &Message) -> Message {
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true);
    for q in req.queries() {
        resp.add_query(q.clone());
    }
    resp
}

fn servfail(req: &Message) -> Vec<u8> {
    let mut r = response_to(req);
    r.set_response_code(ResponseCode::ServFail);
    r.to_vec().unwrap_or_default()
}

/// Every network's lease file under the root, re-read when one changes.
///
/// Why all of them: a container on several networks lists several responders in its
/// resolv.conf, but a resolver stops at the first NXDOMAIN. So each responder answers a
/// client with the names of *every* network that client is on (found by its address on
/// this network), its own network first — and with nothing of networks the client is not
/// on, which keeps the isolation between networks in DNS too (as aardvark-dns does).
struct Cache {
    dir: PathBuf,
    own: String,
    /// (file name, inode, mtime, size) of each file last read: every save is a new file
    /// (temp + rename), so a new inode, even within one timestamp tick.
    seen: Vec<(OsString, u64, SystemTime, u64)>,
    states: Arc<Vec<NetworkState>>,
}

impl Cache {
    fn new(root: &Path, own: &str) -> Self {
        Cache {
            dir: crate::state::Store::new(root)
                .path_of(own)
                .parent()
                .expect("in a dir")
                .to_path_buf(),
            own: own.to_string(),
            seen: Vec::new(),
            states: Arc::new(Vec::new()),
        }
    }

    fn states(&mut self) -> Arc<Vec<NetworkState>> {
        let mut now: Vec<(OsString, u64, SystemTime, u64)> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((e.file_name(), m.ino(), m.modified().ok()?, m.len()))
            })
            .collect();
        now.sort();
        if now != self.seen {
            self.seen = now;
            self.states = Arc::new(
                self.seen
                    .iter()
                    .filter_map(|(name, ..)| fs::read_to_string(self.dir.join(name)).ok())
                    .filter_map(|t| serde_json::from_str::<NetworkState>(&t).ok())
                    .collect(),
            );
        }
        self.states.clone()
    }

    /// The names `client` may resolve.
    fn records_for(&mut self, client: std::net::IpAddr) -> Records {
        let states = self.states();
        records_for(&states, &self.own, client)
    }
}

/// The names a client at `client` (on network `own`) may resolve: its own network's, then
/// those of the other networks its namespace is on.
pub(crate) fn records_for(states: &[NetworkState], own: &str, client: std::net::IpAddr) -> Records {
    let Some(own_state) = states.iter().find(|s| s.name == own) else {
        return Records::default();
    };
    let client_ns = own_state
        .leases
        .iter()
        .find(|(_, l)| std::net::IpAddr::V4(l.address) == client)
        .map(|(k, _)| k.as_str());
    let mut nets: Vec<&NetworkState> = vec![own_state];
    if let Some(ns) = client_ns {
        nets.extend(
            states
                .iter()
                .filter(|s| s.name != own && s.leases.contains_key(ns)),
        );
    }
    // First network listing a name wins it, so the own network's answers come first.
    let mut names: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
    let mut names6: HashMap<String, Vec<Ipv6Addr>> = HashMap::new();
    for net in nets {
        let mut here: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
        let mut here6: HashMap<String, Vec<Ipv6Addr>> = HashMap::new();
        for l in net.leases.values() {
            for n in &l.dns_names {
                here.entry(normalize(n)).or_default().push(l.address);
                if let Some(a6) = l.address6 {
                    here6.entry(normalize(n)).or_default().push(a6);
                }
            }
        }
        for (n, mut ips) in here {
            ips.sort();
            ips.dedup();
            if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(n.clone()) {
                // The network that wins a name gives both its IPv4 and IPv6 answers.
                let mut v6 = here6.remove(&n).unwrap_or_default();
                v6.sort();
                v6.dedup();
                if !v6.is_empty() {
                    names6.insert(n, v6);
                }
                slot.insert(ips);
            }
        }
    }
    Records { names, names6 }
}

/// Parses the responder's command line and serves until the network is removed:
/// `--root DIR --network NAME --listen IP:PORT [--upstream IP:PORT]... [--no-upstream]
/// [--ready FILE]` (without `--upstream`: the nameservers of the host's /etc/resolv.conf).
pub fn run_from_args(args: impl IntoIterator<Item = OsString>) -> Result<()> {
    let mut root = None;
    let mut ready = None;
    let mut network = None;
    let mut listen = None;
    let mut upstreams = Vec::new();
    let mut no_upstream = false;
    let bad = |m: String| NetError::InvalidArguments {
        helper: "berth-dns",
        problem: m,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy().to_string();
        if a == "--no-upstream" {
            no_upstream = true;
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| bad(format!("{a} needs a value")))?
            .to_string_lossy()
            .to_string();
        match a.as_str() {
            "--root" => root = Some(PathBuf::from(v)),
            "--ready" => ready = Some(PathBuf::from(v)),
            "--network" => network = Some(v),
            "--listen" => listen = Some(v.parse().map_err(|_| bad(format!("bad --listen {v}")))?),
            "--upstream" => {
                upstreams.push(v.parse().map_err(|_| bad(format!("bad --upstream {v}")))?)
            }
            _ => return Err(bad(format!("unknown argument {a}"))),
        }
    }
    if upstreams.is_empty() && !no_upstream {
        upstreams = host_resolvers(Path::new("/etc/resolv.conf"));
    }
    serve(ServeOptions {
        root: root.ok_or_else(|| bad("--root is required".into()))?,
        ready,
        network: network.ok_or_else(|| bad("--network is required".into()))?,
        listen: listen.ok_or_else(|| bad("--listen is required".into()))?,
        upstreams,
    })
}

/// The `nameserver` lines of a resolv.conf, port 53.
pub(crate) fn host_resolvers(path: &Path) -> Vec<SocketAddr> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Serves until the network's lease file is gone.
pub fn serve(opts: ServeOptions) -> Result<()> {
    let state_path = crate::state::Store::new(&opts.root).path_of(&opts.network);
    let udp = UdpSocket::bind(opts.listen)
        .map_err(|e| NetError::io(format!("bind udp {}", opts.listen), e))?;
    let tcp = TcpListener::bind(opts.listen)
        .map_err(|e| NetError::io(format!("bind tcp {}", opts.listen), e))?;
    udp.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| NetError::io("set timeout", e))?;
    if let Some(ready) = &opts.ready {
        crate::helper::signal_ready(ready)?;
    }
    let cache = Arc::new(Mutex::new(Cache::new(&opts.root, &opts.network)));
    let upstreams = Arc::new(opts.upstreams.clone());
    {
        let cache = cache.clone();
        let upstreams = upstreams.clone();
        std::thread::spawn(move || {
            for conn in tcp.incoming().flatten() {
                let cache = cache.clone();
                let upstreams = upstreams.clone();
                std::thread::spawn(move || {
                    let _ = serve_tcp(conn, &cache, &upstreams);
                });
            }
        });
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut buf = vec![0u8; 4096];
    loop {
        if !state_path.exists() {
            // The network was removed (maybe by a run that could not reach us): go.
            if let Some(ready) = &opts.ready {
                let _ = fs::remove_file(ready);
            }
            return Ok(());
        }
        let (n, from) = match udp.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue, // the timeout: check the network is still there
        };
        let Ok(req) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let records = cache.lock().expect("cache lock").records_for(from.ip());
        match answer(&req, &records) {
            Decision::Answer(resp) => {
                if let Ok(bytes) = resp.to_vec() {
                    let _ = udp.send_to(&bytes, from);
                }
            }
            Decision::Forward => {
                // One thread per query in flight, capped: a flood of slow upstream
                // queries gets SERVFAIL instead of unbounded threads.
                if in_flight.load(Ordering::Relaxed) >= MAX_FORWARDS {
                    let _ = udp.send_to(&servfail(&req), from);
                    continue;
                }
                let Ok(sock) = udp.try_clone() else { continue };
                let query = buf[..n].to_vec();
                let upstreams = upstreams.clone();
                let in_flight = in_flight.clone();
                in_flight.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || {
                    let resp = forward_udp(&query, &upstreams).unwrap_or_else(|| servfail(&req));
                    let _ = sock.send_to(&resp, from);
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
}

fn forward_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        if s.connect(up).is_err() || s.send(query).is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        if let Ok(n) = s.recv(&mut buf) {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let Ok(mut s) = TcpStream::connect_timeout(up, UPSTREAM_TIMEOUT) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        if write_frame(&mut s, query).is_err() {
            continue;
        }
        if let Ok(resp) = read_frame(&mut s) {
            return Some(resp);
        }
    }
    None
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg)?;
    Ok(msg)
}

fn write_frame(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("message too long"))?;
    s.write_all(&len.to_be_bytes())?;
    s.write_all(msg)
}

fn serve_tcp(
    mut s: TcpStream,
    cache: &Mutex<Cache>,
    upstreams: &[SocketAddr],
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let peer = s.peer_addr()?.ip();
    loop {
        let query = read_frame(&mut s)?;
        let Ok(req) = Message::from_vec(&query) else {
            return Ok(());
        };
        let records = cache.lock().expect("cache lock").records_for(peer);
        let resp = match answer(&req, &records) {
            Decision::Answer(r) => r.to_vec().unwrap_or_default(),
            Decision::Forward => forward_tcp(&query, upstreams).unwrap_or_else(|| servfail(&req)),
        };
        write_frame(&mut s, &resp)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(7)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_str(name).unwrap(), t));
        m
    }

    fn records() -> Records {
        Records::from_pairs([
            ("web", "10.89.0.2".parse().unwrap()),
            ("web", "10.89.0.3".parse().unwrap()),
            ("www", "10.89.0.2".parse().unwrap()),
            ("proj-db-1", "10.89.0.4".parse().unwrap()),
        ])
    }

    #[test]
    fn every_replica_answers_for_the_service_name() {
        let Decision::Answer(r) = answer(&query("web.", RecordType::A), &records()) else {
            panic!("forwarded")
        };
        assert_eq!(r.id(), 7);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        let ips: Vec<String> = r.answers().iter().map(|a| a.data().to_string()).collect();
        assert_eq!(ips, ["10.89.0.2", "10.89.0.3"]);
    }

    #[test]
    fn names_are_case_insensitive_and_aaaa_is_empty_noerror() {
        let Decision::Answer(r) = answer(&query("WWW", RecordType::A), &records()) else {
            panic!()
        };
        assert_eq!(r.answers().len(), 1);
        let Decision::Answer(r) = answer(&query("web", RecordType::AAAA), &records()) else {
            panic!()
        };
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.answers().is_empty());
    }

    #[test]
    fn unknown_bare_names_are_nxdomain_and_dotted_ones_forwarded() {
        let Decision::Answer(r) = answer(&query("nosuch", RecordType::A), &records()) else {
            panic!()
        };
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        assert!(matches!(
            answer(&query("example.org.", RecordType::A), &records()),
            Decision::Forward
        ));
    }

    fn state(name: &str, leases: &[(&str, &str, &[&str])]) -> NetworkState {
        NetworkState {
            fast_path: false,
            name: name.into(),
            bridge: "berthbr00000000".into(),
            subnet: "10.0.0.0/8".parse().unwrap(),
            gateway: "10.0.0.1".parse().unwrap(),
            ip_range: None,
            internal: false,
            mtu: None,
            subnet6: None,
            gateway6: None,
            leases: leases
                .iter()
                .map(|(ns, ip, names)| {
                    (
                        ns.to_string(),
                        crate::state::Lease {
                            address: ip.parse().unwrap(),
                            address6: None,
                            host_interface: "berthv".into(),
                            interface: Some("eth0".into()),
                            netns_path: "/x".into(),
                            ports: vec![],
                            fixed: false,
                            dns_names: names.iter().map(|n| n.to_string()).collect(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn clients_see_the_names_of_every_network_they_are_on_and_no_other() {
        let states = vec![
            state(
                "front",
                &[("web", "10.1.0.2", &["web"]), ("api", "10.1.0.3", &["api"])],
            ),
            state(
                "back",
                &[("web", "10.2.0.2", &["web"]), ("db", "10.2.0.3", &["db"])],
            ),
        ];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // web is on both: from front's responder it resolves db (on back)...
        let r = records_for(&states, "front", ip("10.1.0.2"));
        assert_eq!(r.lookup("db"), Some(&["10.2.0.3".parse().unwrap()][..]));
        // ...and its own name with the front address first.
        assert_eq!(r.lookup("web"), Some(&["10.1.0.2".parse().unwrap()][..]));
        // api is only on front: db does not exist for it.
        let r = records_for(&states, "front", ip("10.1.0.3"));
        assert_eq!(r.lookup("db"), None);
        assert!(r.lookup("web").is_some());
    }

    #[test]
    fn host_resolvers_come_from_nameserver_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolv.conf");
        fs::write(&p, "# x\nnameserver 127.0.0.53\nsearch a\nnameserver ::1\n").unwrap();
        let r = host_resolvers(&p);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].to_string(), "127.0.0.53:53");
    }
}
