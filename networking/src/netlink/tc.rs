//! Traffic-control requests: a `clsact` qdisc bound to a shared filter block, and a BPF
//! filter in that block (what `tc qdisc add dev X ingress_block N clsact` and `tc filter
//! add block N protocol all pref P handle H bpf direct-action skip_hw fd F` send).

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{DefaultNla, Nla, NlasIterator, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcHeader, TcMessage, TcOption};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Netlink, NetlinkError, Result};

/// `TCA_INGRESS_BLOCK` (linux/rtnetlink.h), which netlink-packet-route does not name.
const TCA_INGRESS_BLOCK: u16 = 13;
/// `TC_H_CLSACT` / `TC_H_INGRESS`: the parent of a clsact qdisc.
const TC_H_CLSACT: TcHandle = TcHandle {
    major: 0xffff,
    minor: 0xfff1,
};
/// The handle every ingress/clsact qdisc has (`ffff:`).
const CLSACT_HANDLE: TcHandle = TcHandle {
    major: 0xffff,
    minor: 0,
};
/// `ETH_P_ALL`: the filter sees every frame, whatever its ethertype.
const ETH_P_ALL: u16 = 0x0003;
/// `TCA_CLS_FLAGS_SKIP_HW`: veth has no offload; do not ask for it.
const TCA_CLS_FLAGS_SKIP_HW: u32 = 1;
/// cls_bpf's attributes (linux/pkt_cls.h), which netlink-packet-route does not name.
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_FLAGS_GEN: u16 = 9;
const TCA_BPF_ID: u16 = 11;
/// `TCA_BPF_FLAG_ACT_DIRECT`: the program's return value is the verdict.
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;

/// A filter of a shared block, as a dump lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockFilter {
    pub prio: u16,
    pub handle: u32,
    /// For a cls_bpf filter, the id of the program it runs.
    pub bpf_id: Option<u32>,
}

/// The header addressing a filter of shared block `block` with priority `prio`.
fn block_filter_header(block: u32, prio: u16, handle: u32) -> TcHeader {
    TcHeader {
        // `tcm_ifindex` TCM_IFINDEX_MAGIC_BLOCK: `tcm_parent` holds the block index.
        index: TcHeader::TCM_IFINDEX_MAGIC_BLOCK as i32,
        parent: TcHandle {
            major: (block >> 16) as u16,
            minor: block as u16,
        },
        handle: TcHandle {
            major: (handle >> 16) as u16,
            minor: handle as u16,
        },
        // tcm_info: priority in the upper 16 bits, protocol (network order) below.
        info: (u32::from(prio) << 16) | u32::from(ETH_P_ALL.to_be()),
        ..Default::default()
    }
}

fn is_gone(e: &std::io::Error) -> bool {
    // ENOENT: no such filter (or no filter at that priority); EINVAL: the block itself is
    // gone (the kernel frees a block when its last qdisc unbinds). Either way, nothing to
    // remove.
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINVAL))
}

impl Netlink {
    /// Adds a `clsact` qdisc to link `index` whose ingress hook runs the filters of shared
    /// block `block` (made by the kernel with the first qdisc bound to it). A clsact qdisc
    /// already on the link is replaced (it may be bound to another block: a bridge re-made
    /// since).
    pub fn add_clsact_with_ingress_block(&mut self, index: u32, block: u32) -> Result<()> {
        let request = || {
            let mut msg = TcMessage::with_index(index as i32);
            msg.header.parent = TC_H_CLSACT;
            msg.header.handle = CLSACT_HANDLE;
            msg.attributes.push(TcAttribute::Kind("clsact".into()));
            msg.attributes.push(TcAttribute::Other(DefaultNla::new(
                TCA_INGRESS_BLOCK,
                block.to_ne_bytes().to_vec(),
            )));
            RouteNetlinkMessage::NewQueueDiscipline(msg)
        };
        let op = || format!("add clsact qdisc (ingress block {block}) to link #{index}");
        match self.request(request(), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.delete_clsact(index)?;
                self.ack(request(), NLM_F_CREATE | NLM_F_EXCL, op)
            }
            Err(source) => Err(NetlinkError { op: op(), source }),
        }
    }

    /// Deletes the `clsact` qdisc of link `index`; `Ok(false)` when it had none.
    pub fn delete_clsact(&mut self, index: u32) -> Result<bool> {
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.parent = TC_H_CLSACT;
        msg.header.handle = CLSACT_HANDLE;
        match self.request(RouteNetlinkMessage::DelQueueDiscipline(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINVAL)) => {
                Ok(false)
            }
            Err(source) => Err(NetlinkError {
                op: format!("delete clsact qdisc of link #{index}"),
                source,
            }),
        }
    }

    /// Adds filter `handle` at priority `prio` of shared block `block`: the `sched_cls`
    /// BPF program `prog` run by cls_bpf in direct-action mode (its return value is the
    /// verdict), named `name` (what `tc filter show` prints). Fails with EEXIST when the
    /// filter is there.
    pub fn add_bpf_filter(
        &mut self,
        block: u32,
        prio: u16,
        handle: u32,
        prog: BorrowedFd<'_>,
        name: &str,
    ) -> Result<()> {
        let mut name_z = name.as_bytes().to_vec();
        name_z.push(0);
        let mut msg = TcMessage::default();
        msg.header = block_filter_header(block, prio, handle);
        msg.attributes.push(TcAttribute::Kind("bpf".into()));
        msg.attributes.push(TcAttribute::Options(vec![
            TcOption::Other(DefaultNla::new(
                TCA_BPF_FD,
                (prog.as_raw_fd() as u32).to_ne_bytes().to_vec(),
            )),
            TcOption::Other(DefaultNla::new(TCA_BPF_NAME, name_z)),
            TcOption::Other(DefaultNla::new(
                TCA_BPF_FLAGS,
                TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes().to_vec(),
            )),
            TcOption::Other(DefaultNla::new(
                TCA_BPF_FLAGS_GEN,
                TCA_CLS_FLAGS_SKIP_HW.to_ne_bytes().to_vec(),
            )),
        ]));
        self.ack(
            RouteNetlinkMessage::NewTrafficFilter(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("add BPF filter {handle} ({name}) to tc block {block}"),
        )
    }

    /// Deletes filter `handle` at priority `prio` of block `block`; `Ok(false)` when it
    /// (or the block) is not there.
    pub fn delete_block_filter(&mut self, block: u32, prio: u16, handle: u32) -> Result<bool> {
        let mut msg = TcMessage::default();
        msg.header = block_filter_header(block, prio, handle);
        match self.request(RouteNetlinkMessage::DelTrafficFilter(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if is_gone(&e) => Ok(false),
            Err(source) => Err(NetlinkError {
                op: format!("delete filter {handle} of tc block {block}"),
                source,
            }),
        }
    }

    /// Every filter of block `block`. Empty when the block does not exist.
    pub fn block_filters(&mut self, block: u32) -> Result<Vec<BlockFilter>> {
        let mut msg = TcMessage::default();
        msg.header = block_filter_header(block, 0, 0);
        msg.header.info = 0; // every priority and protocol; filtered below
        let msgs = match self.request(RouteNetlinkMessage::GetTrafficFilter(msg), NLM_F_DUMP) {
            Ok(m) => m,
            Err(e) if is_gone(&e) => return Ok(vec![]),
            Err(source) => {
                return Err(NetlinkError {
                    op: format!("list filters of tc block {block}"),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewTrafficFilter(f) = m else {
                continue;
            };
            // A dump also lists each priority's classifier itself, with handle 0.
            if f.header.handle == TcHandle::UNSPEC {
                continue;
            }
            let handle =
                (u32::from(f.header.handle.major) << 16) | u32::from(f.header.handle.minor);
            let id = f.attributes.iter().find_map(|a| match a {
                TcAttribute::Options(opts) => opts.iter().find_map(|o| match o {
                    TcOption::Other(nla) => bpf_id(nla),
                    _ => None,
                }),
                _ => None,
            });
            out.push(BlockFilter {
                prio: (f.header.info >> 16) as u16,
                handle,
                bpf_id: id,
            });
        }
        Ok(out)
    }
}

/// `TCA_BPF_ID` out of a cls_bpf filter's options, which netlink-packet-route hands over
/// unparsed: the whole `TCA_OPTIONS` nest as one attribute.
fn bpf_id(options: &DefaultNla) -> Option<u32> {
    let mut nest = vec![0u8; options.value_len()];
    options.emit_value(&mut nest);
    NlasIterator::new(&nest[..]).find_map(|nla| {
        let nla = nla.ok()?;
        let v = nla.value();
        (nla.kind() == TCA_BPF_ID && v.len() == 4)
            .then(|| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
    })
}
