//! Networks and their leases on disk: one JSON file per network under
//! `BERTH_ROOT/networks/`, written atomically (temp file, rename), every
//! read-modify-write under one exclusive `flock` so two `berth` processes never hand out
//! the same address or subnet.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};
use crate::ports::PortMapping;

/// What Berth remembers of one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub mtu: Option<u32>,
    /// IPv6 (`enable_ipv6`): the subnet and the gateway, when the network has them.
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// Whether members join the L2 fast path (`crate::fastpath`) when attached. Records
    /// written before it existed read as off.
    #[serde(default)]
    pub fast_path: bool,
    /// Keyed by namespace name: one lease per namespace per network.
    pub leases: BTreeMap<String, Lease>,
}

/// One namespace's address on one network, and what was made for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub address: Ipv4Addr,
    /// On networks with IPv6.
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
    /// Host end of the veth pair; written *before* the pair is made, so a crash between
    /// the two still tells removal what to look for.
    pub host_interface: String,
    /// Inner end, once known (`eth0`, ...).
    pub interface: Option<String>,
    pub netns_path: PathBuf,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// Whether the lease was a static `ipv4_address`.
    #[serde(default)]
    pub fixed: bool,
    /// Names the DNS responder answers with this address.
    #[serde(default)]
    pub dns_names: Vec<String>,
}

/// The on-disk store under `BERTH_ROOT/networks`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Held while the store is being read and changed; dropping it unlocks.
pub struct StoreLock {
    _lock: Flock<File>,
}

impl Store {
    pub fn new(root: &Path) -> Self {
        Store {
            dir: root.join("networks"),
        }
    }

    /// Takes the store's exclusive lock (blocking until other Berth processes are done).
    pub fn lock(&self) -> Result<StoreLock> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| NetError::io(format!("create {}", self.dir.display()), e))?;
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| NetError::io(format!("open {}", path.display()), e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| NetError::io(format!("lock {}", path.display()), e.into()))?;
        Ok(StoreLock { _lock: lock })
    }

    pub fn path_of(&self, network: &str) -> PathBuf {
        self.dir.join(format!("{network}.json"))
    }

    /// The network's state, or `None` if it has none.
    pub fn load(&self, _lock: &StoreLock, network: &str) -> Result<Option<NetworkState>> {
        let path = self.path_of(network);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NetError::io(format!("read {}", path.display()), e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| NetError::CorruptState {
                path,
                problem: e.to_string(),
            })
    }

    /// Every network on record (corrupt files are skipped: they are reported when used).
    pub fn all(&self, lock: &StoreLock) -> Result<Vec<NetworkState>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NetError::io(format!("read {}", self.dir.display()), e)),
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Ok(Some(s)) = self.load(lock, name) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Writes the state atomically: readers see the old file or the new one, never half.
    pub fn save(&self, _lock: &StoreLock, state: &NetworkState) -> Result<()> {
        let path = self.path_of(&state.name);
        let tmp = self.dir.join(format!(".{}.json.tmp", state.name));
        let text = serde_json::to_vec_pretty(state).expect("state serializes");
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&text)?;
            // No fsync, on purpose: temp + rename already keeps a crashed *process* from
            // leaving half a file, and what a lease describes (veth pairs, namespaces in
            // BERTH_RUN) does not survive a power loss either, so the last write is not
            // worth 2-6 ms of fsync on every attach.
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| NetError::io(format!("write {}", path.display()), e))
    }

    /// Deletes the network's file; a missing one is fine.
    pub fn remove(&self, _lock: &StoreLock, network: &str) -> Result<()> {
        let path = self.path_of(network);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::io(format!("remove {}", path.display()), e)),
        }
    }
}
