//! A small synchronous rtnetlink client: one `NETLINK_ROUTE` socket, one request at a
//! time, each answered by an ACK or a dump.
//!
//! Why synchronous: a netlink socket belongs to the network namespace it was opened in,
//! for its whole life. Opening one socket per namespace (on a thread that entered it, see
//! [`crate::Netns::run`]) and then talking to it from any thread is simpler and cheaper than
//! running an async runtime per namespace, and every call here is a few microseconds of
//! kernel work. (netavark does the same with its own sync wrapper.)

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

mod route;
mod tc;

pub use route::{Family, Route};

/// What the kernel said no to, with the request that it refused.
#[derive(Debug, thiserror::Error)]
#[error("netlink {op}: {source}")]
pub struct NetlinkError {
    /// The request, e.g. `create bridge berthbr1a2b3c4d`.
    pub op: String,
    #[source]
    pub source: io::Error,
}

impl NetlinkError {
    /// The errno the kernel answered, if any.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

type Result<T> = std::result::Result<T, NetlinkError>;

/// A link as a dump shows it: enough to find ours and clean up.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Index of the bridge this link is a port of.
    pub controller: Option<u32>,
    pub up: bool,
    /// The largest IPv4 GSO packet the stack builds for this link (`gso_ipv4_max_size`);
    /// None on kernels before 6.3, which have no such setting.
    pub gso_ipv4_max_size: Option<u32>,
    /// The link's MAC address (None for links without one, e.g. `lo` on some kernels).
    pub mac: Option<[u8; 6]>,
}

impl Link {
    /// A link known only by index and name (what [`Netlink::index_of`] gives).
    pub fn known(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.to_string(),
            controller: None,
            up: false,
            gso_ipv4_max_size: None,
            mac: None,
        }
    }
}

/// `IFLA_GSO_IPV4_MAX_SIZE` and `IFLA_GRO_IPV4_MAX_SIZE` (linux/if_link.h, kernel 6.3+),
/// which netlink-packet-route does not name yet. Older kernels ignore attributes they do
/// not know in link requests, so sending them is harmless there.
const IFLA_GSO_IPV4_MAX_SIZE: u16 = 63;
const IFLA_GRO_IPV4_MAX_SIZE: u16 = 64;

/// The IPv4 GSO/GRO size ("BIG TCP") Berth gives its bridges and both ends of its veth
/// pairs, instead of the kernel's 64 KiB default. Every packet crossing a bridge pays a
/// fixed cost (the bridge, and on hosts with `br_netfilter` loaded, as Docker's are, a
/// walk through every IP netfilter hook of the host), and between two containers TCP
/// sends one packet per GSO size: eight times fewer, eight times less of that cost. The
/// value is the most a veth accepts (`GSO_MAX_SIZE`, its `tso_max_size`); measured
/// against 192 KiB (Cilium's choice) it cost less CPU per GB on every path
/// (networking/README.md). Packets that leave through a device with a smaller limit are
/// segmented by the kernel on the way out (`gso_features_check`). IPv6 keeps its default:
/// its BIG TCP needs a hop-by-hop jumbo header that not every path handles.
pub const BIG_TCP_IPV4_SIZE: u32 = 524_280;

fn ipv4_gso_attributes(size: u32) -> [LinkAttribute; 2] {
    [
        LinkAttribute::Other(DefaultNla::new(
            IFLA_GSO_IPV4_MAX_SIZE,
            size.to_ne_bytes().to_vec(),
        )),
        LinkAttribute::Other(DefaultNla::new(
            IFLA_GRO_IPV4_MAX_SIZE,
            size.to_ne_bytes().to_vec(),
        )),
    ]
}

/// One rtnetlink socket, bound to the namespace that opened it.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Extended ACKs make the kernel's error strings available in newer kernels; not
        // needed for correctness, so a refusal here is ignored.
        let _ = socket.set_ext_ack(true);
        Ok(Self { socket, seq: 0 })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Sends a request and collects every answer up to the ACK or DONE.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, flags | NLM_F_REQUEST | NLM_F_ACK)?;
        let mut out = Vec::new();
        loop {
            let (buf, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < buf.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += len;
                if msg.header.sequence_number != seq {
                    continue; // a late answer to an earlier request; not ours
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out), // the ACK
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    fn ack(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: impl FnOnce() -> String,
    ) -> Result<()> {
        self.request(msg, flags)
            .map(|_| ())
            .map_err(|source| NetlinkError { op: op(), source })
    }

    /// Every object a dump request answers with.
    fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        op: impl FnOnce() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.request(msg, NLM_F_DUMP)
            .map_err(|source| NetlinkError { op: op(), source })
    }

    /// Creates an object (an address, a route); one already there is fine.
    fn create(&mut self, msg: RouteNetlinkMessage, op: impl FnOnce() -> String) -> Result<()> {
        match self.request(msg, NLM_F_CREATE | NLM_F_EXCL) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(source) => Err(NetlinkError { op: op(), source }),
        }
    }

    // ---------------------------------------------------------------- links

    /// Every link in this namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let msgs = self.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), || {
            "list links".into()
        })?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(to_link(&l)),
                _ => None,
            })
            .collect())
    }

    /// The index of the link called `name` in the calling thread's namespace, or `None`
    /// when there is none: an ioctl the kernel answers under RCU, so it neither waits for
    /// the rtnl lock nor parses a full link message like [`Netlink::link_by_name`].
    pub fn index_of(name: &str) -> Option<u32> {
        let c = std::ffi::CString::new(name).ok()?;
        // SAFETY: a NUL-terminated string that outlives the call.
        match unsafe { libc::if_nametoindex(c.as_ptr()) } {
            0 => None,
            i => Some(i),
        }
    }

    /// The link called `name`, or `None` when there is none.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(to_link(&l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(source) => Err(NetlinkError {
                op: format!("look up link {name}"),
                source,
            }),
        }
    }

    /// Creates a bridge, down (bring it up with [`Netlink::set_up`] once its settings are
    /// made), with the given MTU and MAC address. The MAC is set, not left
    /// to the kernel: a bridge without one takes the lowest MAC of its ports and changes
    /// it when that port leaves, which strands every neighbour's ARP entry for the
    /// gateway for seconds.
    pub fn create_bridge(&mut self, name: &str, mtu: Option<u32>, mac: [u8; 6]) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("create bridge {name}"),
        )
    }

    /// Creates a veth pair in one request: `host_name` here, a port of bridge `controller`
    /// (if given) and up; its peer `peer_name` directly inside the namespace `peer_netns`
    /// (so no interface ever appears in the host namespace under a container's name). The
    /// peer cannot come up in the same request (the kernel refuses with ENOTCONN: the
    /// pair is not joined yet when it applies the peer's flags).
    pub fn create_veth(
        &mut self,
        host_name: &str,
        controller: Option<u32>,
        peer_name: &str,
        peer_netns: BorrowedFd<'_>,
        peer_mac: Option<[u8; 6]>,
        mtu: Option<u32>,
    ) -> Result<()> {
        let request = |gso: Option<u32>| {
            let mut peer = LinkMessage::default();
            peer.attributes
                .push(LinkAttribute::IfName(peer_name.to_string()));
            if let Some(mac) = peer_mac {
                peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
            }
            peer.attributes
                .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
            let mut msg = LinkMessage::default();
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
            msg.attributes
                .push(LinkAttribute::IfName(host_name.to_string()));
            if let Some(mtu) = mtu {
                msg.attributes.push(LinkAttribute::Mtu(mtu));
                peer.attributes.push(LinkAttribute::Mtu(mtu));
            }
            if let Some(size) = gso {
                msg.attributes.extend(ipv4_gso_attributes(size));
                peer.attributes.extend(ipv4_gso_attributes(size));
            }
            if let Some(c) = controller {
                msg.attributes.push(LinkAttribute::Controller(c));
            }
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]));
            RouteNetlinkMessage::NewLink(msg)
        };
        let op = || format!("create veth pair {host_name} <-> {peer_name}");
        match self.ack(
            request(Some(BIG_TCP_IPV4_SIZE)),
            NLM_F_CREATE | NLM_F_EXCL,
            op,
        ) {
            // A kernel whose veth allows less (the size is only an optimization): the
            // kernel's default then. Nothing was made by the refused request.
            Err(e) if e.errno() == Some(libc::EINVAL) => {
                self.ack(request(None), NLM_F_CREATE | NLM_F_EXCL, op)
            }
            other => other,
        }
    }

    /// Sets the IPv4 GSO and GRO sizes of a link (see [`BIG_TCP_IPV4_SIZE`]); the kernel
    /// refuses sizes above the link's `tso_max_size`.
    pub fn set_ipv4_gso_max_size(&mut self, index: u32, size: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.extend(ipv4_gso_attributes(size));
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!("set gso_ipv4_max_size {size} on link #{index}")
        })
    }

    /// Brings a link up.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!("set link #{index} up")
        })
    }

    /// Deletes a link by name; `Ok(false)` when there was none (removal is idempotent).
    pub fn delete_link(&mut self, name: &str) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(source) => Err(NetlinkError {
                op: format!("delete link {name}"),
                source,
            }),
        }
    }

    // ------------------------------------------------------------ addresses

    /// IPv4 addresses on link `index`.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<Ipv4Net>> {
        let mut req = AddressMessage::default();
        req.header.family = AddressFamily::Inet;
        let msgs = self.dump(RouteNetlinkMessage::GetAddress(req), || {
            "list addresses".into()
        })?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.index != index {
                continue;
            }
            for attr in &a.attributes {
                if let AddressAttribute::Local(IpAddr::V4(ip)) = attr {
                    if let Ok(net) = Ipv4Net::new(*ip, a.header.prefix_len) {
                        out.push(net);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Adds `addr` (address and prefix) to link `index`; an address already there is fine.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Net) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = addr.prefix_len();
        msg.header.index = index;
        let ip = IpAddr::V4(addr.addr());
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        if addr.prefix_len() < 31 {
            msg.attributes
                .push(AddressAttribute::Broadcast(addr.broadcast()));
        }
        self.create(RouteNetlinkMessage::NewAddress(msg), || {
            format!("add address {addr} to link #{index}")
        })
    }

    /// Adds an IPv6 address to link `index`, without duplicate address detection (Berth
    /// hands out each address once; DAD would only hold it "tentative" for a second or
    /// two). One already there is fine.
    pub fn add_address6(&mut self, index: u32, addr: Ipv6Net) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.prefix_len = addr.prefix_len();
        msg.header.index = index;
        msg.header.flags = AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V6(addr.addr())));
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        self.create(RouteNetlinkMessage::NewAddress(msg), || {
            format!("add address {addr} to link #{index}")
        })
    }
}

fn to_link(l: &LinkMessage) -> Link {
    let mut name = String::new();
    let mut controller = None;
    let mut gso_ipv4_max_size = None;
    let mut mac = None;
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Controller(c) => controller = Some(*c),
            LinkAttribute::Other(nla) if nla.kind() == IFLA_GSO_IPV4_MAX_SIZE => {
                let mut v = [0u8; 4];
                if nla.value_len() == v.len() {
                    nla.emit_value(&mut v);
                    gso_ipv4_max_size = Some(u32::from_ne_bytes(v));
                }
            }
            _ => {}
        }
    }
    Link {
        index: l.header.index,
        name,
        controller,
        up: l.header.flags.contains(LinkFlags::Up),
        gso_ipv4_max_size,
        mac,
    }
}
