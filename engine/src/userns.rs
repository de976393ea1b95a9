//! User namespaces with a uid/gid mapping (`userns_mode: auto`): root in the container is
//! an unprivileged range of host ids.
//!
//! * [`IdMap`]: container ids `0..size` are host ids `host..host+size` (uids and gids
//!   alike, as Podman's `auto` maps them).
//! * [`Allocator`]: hands out free ranges of `size` ids from root's `/etc/subuid` and
//!   `/etc/subgid` entries (both must cover a range), or, without any, from a range Berth
//!   reserves for itself high in the id space. A range is a file in `BERTH_ROOT/userns/`
//!   naming its owner (a container name and its project), taken under a lock: the same
//!   container gets the same range back (across restarts and recreates, so its volume
//!   files keep their owner), and `release` frees it when the container goes.
//! * [`userns_fd`]: a user namespace with a mapping, for idmapped mounts
//!   (`mount_setattr(MOUNT_ATTR_IDMAP)`) of image layers.
//! * [`shift_owner`]: re-owns a tree into a mapping (a freshly seeded volume).

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Podman's default size for `auto`: a full 16-bit id space.
pub const DEFAULT_SIZE: u32 = 65536;

/// Where Berth's own ranges start when root has no /etc/subuid entries: far above any
/// id a distribution hands out (systemd's dynamic and container ranges end below 2^31).
pub const RESERVED_START: u32 = 0x8000_0000;
/// 16384 ranges of 65536 ids.
pub const RESERVED_SIZE: u32 = 0x4000_0000;

/// Container ids `0..size` are host ids `host..host + size`, for uids and gids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdMap {
    pub host: u32,
    pub size: u32,
}

impl IdMap {
    /// The host id of container id `id`, if the mapping covers it.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        (id < self.size).then(|| self.host + id)
    }

    /// `/proc/PID/uid_map` text.
    pub fn proc_map(&self) -> String {
        format!("0 {} {}\n", self.host, self.size)
    }

    fn end(&self) -> u64 {
        self.host as u64 + self.size as u64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("no free range of {size} ids for a user namespace in {pool}; remove containers with `userns_mode` or add ranges for root to /etc/subuid and /etc/subgid")]
    Exhausted { size: u32, pool: String },
    #[error("user namespace size {0} must be between 1 and {RESERVED_SIZE}")]
    BadSize(u32),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("making a user namespace for idmapped mounts: {0}")]
    Namespace(String),
}

pub type Result<T> = std::result::Result<T, UsernsError>;

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> UsernsError {
    let path = path.to_path_buf();
    move |source| UsernsError::Io { op, path, source }
}

/// Root's ranges in a `/etc/subuid`-format text (`name:start:count`, also `0:...`).
pub fn parse_subid(text: &str) -> Vec<IdMap> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != "root" && who != "0" {
                return None;
            }
            let host: u32 = start.trim().parse().ok()?;
            let size: u32 = count.trim().parse().ok()?;
            (size > 0 && host > 0).then_some(IdMap { host, size })
        })
        .collect()
}

/// The parts of `a` also in `b`: ids root may use for both uids and gids.
pub fn intersect(a: &[IdMap], b: &[IdMap]) -> Vec<IdMap> {
    let mut out = vec![];
    for x in a {
        for y in b {
            let lo = x.host.max(y.host) as u64;
            let hi = x.end().min(y.end());
            if hi > lo {
                out.push(IdMap {
                    host: lo as u32,
                    size: (hi - lo) as u32,
                });
            }
        }
    }
    out.sort_by_key(|m| m.host);
    out
}

/// The ids `auto` ranges come from: root's subordinate ids when the host lists any,
/// else Berth's reserved range.
pub fn host_pool() -> Vec<IdMap> {
    let read = |p: &str| {
        fs::read_to_string(p)
            .map(|t| parse_subid(&t))
            .unwrap_or_default()
    };
    let both = intersect(&read("/etc/subuid"), &read("/etc/subgid"));
    if both.is_empty() {
        vec![IdMap {
            host: RESERVED_START,
            size: RESERVED_SIZE,
        }]
    } else {
        both
    }
}

/// The first free `size`-id range of `pool` (aligned to `size` inside each pool entry,
/// so ranges stay tidy), not overlapping `taken`.
pub fn first_free(pool: &[IdMap], taken: &[IdMap], size: u32) -> Option<IdMap> {
    for p in pool {
        let mut start = p.host as u64;
        while start + size as u64 <= p.end() {
            let cand = IdMap {
                host: start as u32,
                size,
            };
            match taken
                .iter()
                .filter(|t| (t.host as u64) < cand.end() && t.end() > start)
                .map(|t| t.end())
                .max()
            {
                None => return Some(cand),
                // Jump past the range in the way.
                Some(end) => start = end.max(start + 1),
            }
        }
    }
    None
}

/// Who holds a range: the container (by name, stable across recreates) and its project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub project: String,
    pub container: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reservation {
    owner: Owner,
    map: IdMap,
}

/// The ranges in use, one file per range in `BERTH_ROOT/userns/`.
pub struct Allocator {
    dir: PathBuf,
    pool: Vec<IdMap>,
}

impl Allocator {
    pub fn new(berth_root: &Path) -> Allocator {
        Allocator::with_pool(berth_root, host_pool())
    }

    pub fn with_pool(berth_root: &Path, pool: Vec<IdMap>) -> Allocator {
        Allocator {
            dir: berth_root.join("userns"),
            pool,
        }
    }

    fn lock(&self) -> Result<fs::File> {
        fs::create_dir_all(&self.dir).map_err(io_err("creating", &self.dir))?;
        let p = self.dir.join(".lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_err("opening", &p))?;
        // SAFETY: flock on an fd we own; released when the file closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err("locking", &p)(io::Error::last_os_error()));
        }
        Ok(f)
    }

    fn entries(&self) -> Vec<(PathBuf, Reservation)> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return vec![];
        };
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| {
                let r = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
                Some((e.path(), r))
            })
            .collect()
    }

    /// The range of `owner` (the one it had, or a new one of `size` ids).
    pub fn allocate(&self, owner: &Owner, size: u32) -> Result<IdMap> {
        if size == 0 || size > RESERVED_SIZE {
            return Err(UsernsError::BadSize(size));
        }
        let _lock = self.lock()?;
        let entries = self.entries();
        if let Some((_, r)) = entries
            .iter()
            .find(|(_, r)| r.owner == *owner && r.map.size == size)
        {
            return Ok(r.map);
        }
        // A different size asked for: the old range goes.
        for (p, _) in entries.iter().filter(|(_, r)| r.owner == *owner) {
            let _ = fs::remove_file(p);
        }
        let taken: Vec<IdMap> = entries
            .iter()
            .filter(|(_, r)| r.owner != *owner)
            .map(|(_, r)| r.map)
            .collect();
        let map = first_free(&self.pool, &taken, size).ok_or_else(|| UsernsError::Exhausted {
            size,
            pool: self
                .pool
                .iter()
                .map(|p| format!("{}+{}", p.host, p.size))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let p = self.dir.join(format!("{}.json", map.host));
        let body = serde_json::to_vec(&Reservation {
            owner: owner.clone(),
            map,
        })
        .expect("serializable");
        let tmp = self.dir.join(format!(".{}.tmp", map.host));
        fs::write(&tmp, body).map_err(io_err("writing", &tmp))?;
        fs::rename(&tmp, &p).map_err(io_err("writing", &p))?;
        Ok(map)
    }

    /// Frees the ranges held by containers of `project` that `keep` does not name
    /// (`keep` = always false: all of the project's).
    pub fn release_where(&self, project: &str, keep: impl Fn(&str) -> bool) -> Result<()> {
        let _lock = self.lock()?;
        for (p, r) in self.entries() {
            if r.owner.project == project && !keep(&r.owner.container) {
                fs::remove_file(&p).map_err(io_err("removing", &p))?;
            }
        }
        Ok(())
    }

    /// The ranges held now, with their owners.
    pub fn list(&self) -> Vec<(Owner, IdMap)> {
        self.entries()
            .into_iter()
            .map(|(_, r)| (r.owner, r.map))
            .collect()
    }
}

/// A user namespace whose ids map as `map` says (a child parked in it long enough to
/// open `/proc/PID/ns/user`). Fork is safe in a threaded caller here: the child only
/// makes async-signal-safe calls (unshare, read, write, _exit).
pub fn userns_fd(map: &IdMap) -> Result<OwnedFd> {
    let err =
        |what: &str| UsernsError::Namespace(format!("{what}: {}", io::Error::last_os_error()));
    let mut up = [0i32; 2];
    let mut down = [0i32; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(up.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(err("pipe"));
    }
    // SAFETY: as above; wrapped right away so they close.
    let (up_r, up_w) = unsafe { (OwnedFd::from_raw_fd(up[0]), OwnedFd::from_raw_fd(up[1])) };
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(down.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(err("pipe"));
    }
    // SAFETY: fresh fds, owned once.
    let (down_r, down_w) =
        unsafe { (OwnedFd::from_raw_fd(down[0]), OwnedFd::from_raw_fd(down[1])) };
    // SAFETY: the child calls only async-signal-safe functions, then _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(err("fork"));
    }
    if pid == 0 {
        // SAFETY: raw syscalls on fds this child holds; no allocation, no locks.
        unsafe {
            // Only our ends stay open here, or the read below never sees the parent's EOF.
            libc::close(down_w.as_raw_fd());
            libc::close(up_r.as_raw_fd());
            let ok: u8 = (libc::unshare(libc::CLONE_NEWUSER) == 0) as u8;
            libc::write(up_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::read(down_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(up_w);
    drop(down_r);
    let result = (|| {
        let mut b = 0u8;
        // SAFETY: one byte into a local.
        let n = unsafe { libc::read(up_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1) };
        if n != 1 || b != 1 {
            return Err(UsernsError::Namespace(
                "the helper could not unshare a user namespace".into(),
            ));
        }
        for f in ["uid_map", "gid_map"] {
            let p = PathBuf::from(format!("/proc/{pid}/{f}"));
            fs::write(&p, map.proc_map()).map_err(io_err("writing", &p))?;
        }
        let p = PathBuf::from(format!("/proc/{pid}/ns/user"));
        let f = fs::File::open(&p).map_err(io_err("opening", &p))?;
        Ok(OwnedFd::from(f))
    })();
    drop(down_w); // the child's read returns: it exits
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

/// Re-owns every entry of `root` (itself included, symlinks not followed) from container
/// ids to host ids of `map`: ids the mapping does not cover become its root's.
pub fn shift_owner(root: &Path, map: &IdMap) -> Result<()> {
    let md = fs::symlink_metadata(root).map_err(io_err("inspecting", root))?;
    let shift = |id: u32| map.to_host(id).unwrap_or(map.host);
    std::os::unix::fs::lchown(root, Some(shift(md.uid())), Some(shift(md.gid())))
        .map_err(io_err("chown", root))?;
    if md.is_dir() {
        // chown clears setuid/setgid bits: put directory modes back.
        fs::set_permissions(
            root,
            std::os::unix::fs::PermissionsExt::from_mode(md.mode() & 0o7777),
        )
        .map_err(io_err("chmod", root))?;
        for e in fs::read_dir(root).map_err(io_err("reading", root))? {
            let e = e.map_err(io_err("reading", root))?;
            shift_owner(&e.path(), map)?;
        }
    } else if md.is_file() && md.mode() & 0o6000 != 0 {
        fs::set_permissions(
            root,
            std::os::unix::fs::PermissionsExt::from_mode(md.mode() & 0o7777),
        )
        .map_err(io_err("chmod", root))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(host: u32, size: u32) -> IdMap {
        IdMap { host, size }
    }

    #[test]
    fn subid_files_give_roots_ranges_in_both() {
        let uid =
            parse_subid("alice:100000:65536\nroot:200000:200000\n0:900000:10\nbad\nroot:x:1\n");
        assert_eq!(uid, vec![m(200000, 200000), m(900000, 10)]);
        let gid = parse_subid("root:300000:65536\n");
        assert_eq!(intersect(&uid, &gid), vec![m(300000, 65536)]);
        assert!(intersect(&uid, &[]).is_empty());
    }

    #[test]
    fn first_free_skips_taken_ranges_and_fails_when_full() {
        let pool = [m(100000, 65536 * 3)];
        assert_eq!(first_free(&pool, &[], 65536), Some(m(100000, 65536)));
        let taken = [m(100000, 65536), m(100000 + 65536 * 2, 65536)];
        assert_eq!(
            first_free(&pool, &taken, 65536),
            Some(m(100000 + 65536, 65536))
        );
        let full = [m(100000, 65536 * 3)];
        assert_eq!(first_free(&pool, &full, 65536), None);
        // A range straddling pool entries never comes out.
        assert_eq!(first_free(&[m(10, 5), m(15, 5)], &[], 8), None);
        // A partly overlapping range pushes the next candidate past its end.
        assert_eq!(first_free(&[m(0, 100)], &[m(5, 10)], 10), Some(m(15, 10)));
    }

    #[test]
    fn allocator_keeps_ranges_per_owner_and_releases_them() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Allocator::with_pool(tmp.path(), vec![m(1_000_000, 65536 * 2)]);
        let own = |p: &str, c: &str| Owner {
            project: p.into(),
            container: c.into(),
        };
        let web = a.allocate(&own("p", "p-web-1"), 65536).unwrap();
        let db = a.allocate(&own("p", "p-db-1"), 65536).unwrap();
        assert_ne!(web, db);
        // Stable: asked again, the same range.
        assert_eq!(a.allocate(&own("p", "p-web-1"), 65536).unwrap(), web);
        // Full: a clear error naming the pool.
        let e = a.allocate(&own("q", "q-x-1"), 65536).unwrap_err();
        assert!(e.to_string().contains("1000000+131072"), "{e}");
        assert_eq!(
            a.allocate(&own("p", "p-web-1"), 0).unwrap_err().to_string(),
            UsernsError::BadSize(0).to_string()
        );
        // Releasing keeps what `keep` names.
        a.release_where("p", |c| c == "p-db-1").unwrap();
        assert_eq!(a.list(), vec![(own("p", "p-db-1"), db)]);
        assert_eq!(a.allocate(&own("q", "q-x-1"), 65536).unwrap(), web);
        a.release_where("p", |_| false).unwrap();
        a.release_where("q", |_| false).unwrap();
        assert!(a.list().is_empty());
    }

    #[test]
    fn mapping_translates_ids() {
        let map = m(100000, 65536);
        assert_eq!(map.to_host(0), Some(100000));
        assert_eq!(map.to_host(65535), Some(165535));
        assert_eq!(map.to_host(65536), None);
        assert_eq!(map.proc_map(), "0 100000 65536\n");
    }
}
