//! Persistent network namespaces: files under `BERTH_RUN/netns/` that keep a namespace
//! alive with no process in it, so it exists before its container starts, outlives a
//! container restart, and can be joined by several containers (`network_mode: service:X`).
//!
//! Threads, not the process: `unshare(CLONE_NEWNET)` and `setns(.., CLONE_NEWNET)` change
//! only the calling *thread's* network namespace. Every switch here happens on a dedicated,
//! short-lived thread that is never handed back to a pool, so the caller's threads (and
//! the orchestrator's tokio runtime) never change namespace. A socket keeps the namespace
//! it was opened in, which is how the rest of the crate works inside a namespace: open a
//! socket on such a thread, use it from anywhere.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{NetError, Result};

/// The index the kernel gives each namespace's loopback device, its first link.
const LOOPBACK_IFINDEX: u32 = 1;

/// A network namespace kept alive by a bind mount at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

/// Names are file names and part of lease keys: keep them plain.
pub(crate) fn validate_name(kind: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidName {
            kind,
            name: name.to_string(),
        })
    }
}

impl Netns {
    /// Where the namespace file called `name` lives under `run_dir` (`BERTH_RUN`).
    pub fn at(run_dir: &Path, name: &str) -> Result<Self> {
        validate_name("namespace", name)?;
        Ok(Self {
            name: name.to_string(),
            path: run_dir.join("netns").join(name),
        })
    }

    /// Creates a new, empty network namespace (only `lo`, and `lo` up), or returns the one
    /// already there (so a restarted container finds its namespace again).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), berth_networking::NetError> {
    /// use berth_networking::Netns;
    /// let ns = Netns::create(std::path::Path::new("/run/berth"), "demo-web-1")?;
    /// // hand ns.path() to the engine, which joins it with setns(2) by path
    /// # Ok(()) }
    /// ```
    pub fn create(run_dir: &Path, name: &str) -> Result<Self> {
        let ns = Self::at(run_dir, name)?;
        if ns.exists() {
            // Made by a run killed before it brought `lo` up (another thread of it may
            // have been where the kill came): up now, idempotent.
            ns.loopback_up()?;
            return Ok(ns);
        }
        let dir = ns.path.parent().expect("netns path has a parent");
        fs::create_dir_all(dir)
            .map_err(|e| NetError::io(format!("create {}", dir.display()), e))?;
        // The mount point: an empty file. Left behind only if the mount fails, so remove it
        // then.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&ns.path)
            .map_err(|e| NetError::io(format!("create {}", ns.path.display()), e))?;
        let target = ns.path.clone();
        let made = std::thread::spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            // /proc/thread-self is this thread's view: the new namespace, not the process's.
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            Ok(())
        })
        .join()
        .map_err(|_| NetError::io("create namespace thread", io::Error::other("panicked")))?;
        if let Err(e) = made {
            let _ = fs::remove_file(&ns.path);
            return Err(NetError::io(
                format!("create namespace {}", ns.path.display()),
                e,
            ));
        }
        ns.loopback_up()?;
        Ok(ns)
    }

    /// `lo` up: a namespace without it cannot even talk to itself.
    fn loopback_up(&self) -> Result<()> {
        self.run(|| -> Result<()> {
            let mut nl = crate::netlink::Netlink::open()
                .map_err(|e| NetError::io("open netlink socket", e))?;
            // Every namespace's `lo` is made first, as index 1 (LOOPBACK_IFINDEX).
            nl.set_up(LOOPBACK_IFINDEX)?;
            Ok(())
        })?
    }

    /// The namespace's name (the file name under `BERTH_RUN/netns`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path the engine joins (`setns` on an fd opened from it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file is there and a namespace is mounted on it.
    pub fn exists(&self) -> bool {
        is_nsfs_mount(&self.path)
    }

    /// Opens the namespace (for `setns`, or to move a link into it).
    pub fn open(&self) -> Result<File> {
        File::open(&self.path).map_err(|e| NetError::NamespaceMissing {
            path: self.path.clone(),
            source: e,
        })
    }

    /// Runs `f` on a new thread inside this namespace and returns what it returned. The
    /// thread ends afterwards, so its namespace change goes with it. Sockets `f` opens stay
    /// in this namespace wherever they are used later.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        if !self.exists() {
            return Err(NetError::NamespaceMissing {
                path: self.path.clone(),
                source: io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        let file = self.open()?;
        std::thread::scope(|s| {
            s.spawn(move || {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NetError::io(format!("enter namespace {}", self.path.display()), e.into())
                })?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetError::io("namespace thread", io::Error::other("panicked")))?
        })
    }

    /// Removes the namespace file: unmounts it (lazily, so a process still inside keeps
    /// its namespace until it exits) and deletes it. Removing what is not there is fine.
    pub fn remove(&self) -> Result<()> {
        // A crashed run may have left the file with or without the mount; handle both.
        while is_nsfs_mount(&self.path) {
            umount2(&self.path, MntFlags::MNT_DETACH)
                .map_err(|e| NetError::io(format!("unmount {}", self.path.display()), e.into()))?;
        }
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::io(format!("remove {}", self.path.display()), e)),
        }
    }

    /// Every namespace file under `run_dir/netns` (mounted or left half-made by a crash).
    pub fn list(run_dir: &Path) -> Result<Vec<Netns>> {
        let dir = run_dir.join("netns");
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NetError::io(format!("read {}", dir.display()), e)),
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            if let Some(name) = entry.file_name().to_str() {
                if let Ok(ns) = Netns::at(run_dir, name) {
                    out.push(ns);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// A bind-mounted namespace file lives on `nsfs`; a plain file does not.
fn is_nsfs_mount(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    // The field's integer type differs between architectures; the cast is not a no-op
    // everywhere.
    #[allow(clippy::unnecessary_cast)]
    match nix::sys::statfs::statfs(path) {
        Ok(st) => st.filesystem_type().0 as i64 == NSFS_MAGIC,
        Err(_) => false,
    }
}
