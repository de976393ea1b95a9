//! Typed errors: each says what was wrong and, where there is one, what to do.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::netlink::NetlinkError;

/// Everything the networking crate can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A name (network, namespace) with characters that cannot be a file name.
    #[error("invalid {kind} name {name:?}: use letters, digits, '-', '_' and '.', not starting with '.'")]
    InvalidName { kind: &'static str, name: String },

    /// A subnet from the stack overlaps one already routed on this host.
    #[error("subnet {subnet} of network {network} overlaps {existing}, already routed on this host{by}; choose another subnet in ipam.config",
        by = by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default())]
    SubnetOverlap {
        network: String,
        subnet: IpNet,
        existing: IpNet,
        by: Option<String>,
    },

    /// No subnet of the pool is free.
    #[error("no free subnet left in the address pool {pool} for network {network}: every /{prefix} is routed on this host or used by another network; remove unused networks or set ipam.config subnet")]
    PoolExhausted {
        network: String,
        pool: IpNet,
        prefix: u8,
    },

    /// Every address of a network is leased.
    #[error("no free address left in {range} for network {network}: detach unused containers or use a larger subnet")]
    SubnetExhausted { network: String, range: IpNet },

    /// A network spec (`ipam.config`, options, a change to an existing network) that
    /// cannot be honoured.
    #[error("network {network}: {problem}")]
    InvalidNetwork { network: String, problem: String },

    /// A static `ipv4_address` outside the network's subnet or on a reserved address.
    #[error("address {address} cannot be used on network {network} ({subnet}): {reason}")]
    InvalidAddress {
        network: String,
        address: IpAddr,
        subnet: IpNet,
        reason: &'static str,
    },

    /// A static `ipv4_address` already leased to another attachment.
    #[error("address {address} on network {network} is already in use by {holder}")]
    AddressInUse {
        network: String,
        address: IpAddr,
        holder: String,
    },

    /// An interface name Berth derived is held by something that is not Berth's record of
    /// it (another Berth root, or a leftover whose record was deleted by hand).
    #[error("interface {name} ({what}) already exists on this host and is not on Berth's record; remove it (ip link del {name}) if it is a leftover")]
    NameTaken { name: String, what: &'static str },

    /// The network was never ensured (or was removed).
    #[error("network {0} does not exist: ensure it first")]
    UnknownNetwork(String),

    /// A namespace path that is not a mounted namespace.
    #[error("network namespace {path} is not there: {source}")]
    NamespaceMissing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A namespace already has as many interfaces as Berth names (eth0..eth99).
    #[error("namespace {0} has no free interface name (eth0..eth99 all taken)")]
    NoInterfaceName(String),

    /// A host port that something else holds.
    #[error("host port {host_ip}:{port}/{protocol} is already in use{by}; pick another host port in `ports:`",
        by = by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default())]
    PortInUse {
        host_ip: std::net::IpAddr,
        port: u16,
        protocol: crate::ports::Protocol,
        by: Option<String>,
    },

    /// A `ports:` entry that does not hold together.
    #[error("invalid port mapping {spec:?}: {problem}")]
    InvalidPort { spec: String, problem: String },

    /// The kernel refused a netlink request.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),

    /// The L2 fast path between members could not be set up or taken down.
    #[error(transparent)]
    FastPath(#[from] crate::fastpath::FastPathError),

    /// `nft` refused a change or could not be run.
    #[error(
        "nftables: {0}; is the `nft` binary installed (Debian package nftables) and are we root?"
    )]
    Firewall(String),

    /// A state file that cannot be read back.
    #[error("state file {path} is corrupt: {problem}; remove the network with `berth down` or delete the file")]
    CorruptState { path: PathBuf, problem: String },

    /// A helper process (DNS responder, port proxy) started with bad arguments.
    #[error("{helper}: {problem}")]
    InvalidArguments {
        helper: &'static str,
        problem: String,
    },

    /// Any other system call failing.
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
}

impl NetError {
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        NetError::Io {
            op: op.into(),
            source,
        }
    }
}

/// Crate-wide result.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// Teardown keeps going past errors; this carries all of them.
#[derive(Debug, thiserror::Error)]
#[error("teardown left {} problem(s): {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct TeardownError(pub Vec<NetError>);

impl TeardownError {
    /// `Ok(())` when nothing went wrong.
    pub fn check(errors: Vec<NetError>) -> Result<(), TeardownError> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TeardownError(errors))
        }
    }
}
