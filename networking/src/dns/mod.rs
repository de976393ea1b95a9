//! Service discovery: a DNS responder on a network's gateway address, plus the
//! `/etc/resolv.conf` and `/etc/hosts` each container gets.
//!
//! The responder is a small process of its own (Berth has no daemon, and the containers
//! outlive the `berth` command): [`crate::Networking::start_dns`] starts it, detached,
//! running [`run_from_args`] in a [`crate::HelperProgram`]: the `berth-dns` binary of this
//! crate, or any program that calls that function (the `berth` CLI can, from a hidden
//! verb). It answers from the lease files, re-read whenever they change, so attaching and
//! detaching need no signal; it exits by itself when its network's record is removed.
//!
//! Answers: A records for every name of every lease (service name, aliases, container
//! name, hostname — all replicas of a service) on the networks the asking container is on
//! (this network first; a container on several networks resolves through any of its
//! responders), nothing of networks it is not on; for a known name with no IPv6 address
//! an empty NOERROR to AAAA (so resolvers do not treat the name as missing); NXDOMAIN for
//! an unknown single-label name (a name "in the stack"); everything else is forwarded to
//! the upstream resolvers (the host's, from its `/etc/resolv.conf`; none for `internal`
//! networks unless asked).

mod files;
mod server;

pub use files::{hosts_file, resolv_conf, ExtraHost};
pub use server::{answer, run_from_args, serve, Decision, Records, ServeOptions};

use std::net::SocketAddr;

use crate::helper::HelperProgram;

/// How to run a network's responder.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// The `berth-dns` binary, or a program that calls [`run_from_args`].
    pub program: HelperProgram,
    /// Upstream resolvers; `None`: the host's (its /etc/resolv.conf); `Some(vec![])`:
    /// none (names outside the stack get SERVFAIL).
    pub upstreams: Option<Vec<SocketAddr>>,
}
