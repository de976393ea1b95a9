//! Which cgroup layout the host booted with, read from mountinfo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CgroupError, Result};

/// v1 controllers we know by name (anything else in a v1 mount's options is a flag).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2 only: one tree rooted here.
    Unified { root: PathBuf },
    /// cgroup v1 controllers (hybrid hosts too). `hierarchies` maps each controller
    /// (and `name=systemd`-style named hierarchies) to its mount point; `unified` is the
    /// cgroup2 mount beside them, if any.
    V1 {
        hierarchies: BTreeMap<String, PathBuf>,
        unified: Option<PathBuf>,
    },
}

impl Layout {
    pub fn version(&self) -> &'static str {
        match self {
            Layout::Unified { .. } => "v2",
            Layout::V1 { .. } => "v1",
        }
    }
}

/// Unescapes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text. A v1 controller mount wins over a cgroup2 mount: on a hybrid
/// host the cgroup2 tree has no controllers and cannot enforce limits.
pub fn detect(mountinfo: &str) -> Result<Layout> {
    let mut hierarchies = BTreeMap::new();
    let mut unified: Option<PathBuf> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let lf: Vec<&str> = left.split(' ').collect();
        let rf: Vec<&str> = right.split(' ').collect();
        if lf.len() < 5 || rf.len() < 3 {
            continue;
        }
        let mountpoint = PathBuf::from(unescape(lf[4]));
        match rf[0] {
            // Prefer the conventional place if there are several.
            "cgroup2" if unified.is_none() || mountpoint == Path::new("/sys/fs/cgroup") => {
                unified = Some(mountpoint);
            }
            "cgroup" => {
                for opt in rf[2].split(',') {
                    if V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=") {
                        hierarchies
                            .entry(opt.to_string())
                            .or_insert_with(|| mountpoint.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let has_controller = hierarchies.keys().any(|k| !k.starts_with("name="));
    if has_controller {
        Ok(Layout::V1 {
            hierarchies,
            unified,
        })
    } else if let Some(root) = unified {
        Ok(Layout::Unified { root })
    } else {
        Err(CgroupError::NoHierarchy)
    }
}

/// The layout of the host this process sees.
pub fn host_layout() -> Result<Layout> {
    if let Some(l) = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| conventional(&c, Path::new("/sys/fs/cgroup"), &statfs_kind))
    {
        return Ok(l);
    }
    let path = std::path::Path::new("/proc/self/mountinfo");
    let s = super::fsutil::read(path)?;
    detect(&s)
}

/// What statfs says a path is: a v1 cgroup hierarchy, the cgroup2 tree, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FsKind {
    V1,
    V2,
    Other,
}

fn statfs_kind(p: &Path) -> FsKind {
    match nix::sys::statfs::statfs(p).map(|s| s.filesystem_type()) {
        Ok(t) if t == nix::sys::statfs::CGROUP_SUPER_MAGIC => FsKind::V1,
        Ok(t) if t == nix::sys::statfs::CGROUP2_SUPER_MAGIC => FsKind::V2,
        _ => FsKind::Other,
    }
}

/// The layout without reading mountinfo: the kernel writes out every mount of the
/// namespace there (an overlay's line is hundreds of bytes), so each read costs as much as
/// the host has mounts, and with one read per container start a stack paid for its size
/// squared. Each hierarchy `/proc/self/cgroup` names is looked for where hosts mount it
/// (`base/cpu,cpuacct`, `base/systemd` for `name=systemd`, the cgroup2 tree at `base` or
/// `base/unified`) and taken only if statfs finds that kind of cgroup there; anything
/// else gives `None`, and the caller reads mountinfo.
fn conventional(proc_cgroup: &str, base: &Path, kind: &dyn Fn(&Path) -> FsKind) -> Option<Layout> {
    let mut hierarchies = BTreeMap::new();
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers) = (f.next()?, f.next()?);
        if controllers.is_empty() {
            unified = [base.to_path_buf(), base.join("unified")]
                .into_iter()
                .find(|p| kind(p) == FsKind::V2);
            unified.as_ref()?;
            continue;
        }
        let dir = base.join(controllers.strip_prefix("name=").unwrap_or(controllers));
        if kind(&dir) != FsKind::V1 {
            return None;
        }
        for c in controllers.split(',') {
            if V1_CONTROLLERS.contains(&c) || c.starts_with("name=") {
                hierarchies
                    .entry(c.to_string())
                    .or_insert_with(|| dir.clone());
            }
        }
    }
    if hierarchies.keys().any(|k| !k.starts_with("name=")) {
        Some(Layout::V1 {
            hierarchies,
            unified,
        })
    } else {
        unified.map(|root| Layout::Unified { root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 24 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn conventional_places_are_taken_only_where_statfs_agrees() {
        let base = Path::new("/sys/fs/cgroup");
        let hybrid = "12:cpu,cpuacct:/\n3:memory:/x\n1:name=systemd:/init.scope\n0::/init.scope\n";
        let kind = |p: &Path| match p.to_str().unwrap() {
            "/sys/fs/cgroup/cpu,cpuacct" | "/sys/fs/cgroup/memory" | "/sys/fs/cgroup/systemd" => {
                FsKind::V1
            }
            "/sys/fs/cgroup/unified" => FsKind::V2,
            _ => FsKind::Other,
        };
        let l = conventional(hybrid, base, &kind).unwrap();
        let Layout::V1 {
            hierarchies,
            unified,
        } = l
        else {
            panic!("want v1: {l:?}")
        };
        assert_eq!(hierarchies["cpuacct"], base.join("cpu,cpuacct"));
        assert_eq!(hierarchies["memory"], base.join("memory"));
        assert_eq!(hierarchies["name=systemd"], base.join("systemd"));
        assert_eq!(unified, Some(base.join("unified")));
        // Pure v2.
        let v2 = |p: &Path| {
            if p == base {
                FsKind::V2
            } else {
                FsKind::Other
            }
        };
        assert_eq!(
            conventional("0::/user.slice\n", base, &v2),
            Some(Layout::Unified {
                root: base.to_path_buf()
            })
        );
        // A hierarchy mounted somewhere unusual: mountinfo decides.
        let odd = |p: &Path| {
            if p.ends_with("memory") {
                FsKind::Other
            } else {
                kind(p)
            }
        };
        assert_eq!(conventional(hybrid, base, &odd), None);
    }

    #[test]
    fn the_fast_look_agrees_with_mountinfo_on_this_host() {
        let slow = detect(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        let fast = conventional(
            &std::fs::read_to_string("/proc/self/cgroup").unwrap(),
            Path::new("/sys/fs/cgroup"),
            &statfs_kind,
        );
        // This fleet mounts its hierarchies where hosts do, so the fast look must answer
        // (were it to give up, every container start would read mountinfo again) and
        // must say what mountinfo says.
        assert!(
            fast.is_some(),
            "the fast look gave up on this host: {slow:?}"
        );
        assert_eq!(fast, slow.ok());
    }

    #[test]
    fn hybrid_is_v1_with_unified_beside() {
        let l = detect(HYBRID).unwrap();
        let Layout::V1 {
            hierarchies,
            unified,
        } = l
        else {
            panic!("want v1")
        };
        assert_eq!(hierarchies["cpu"], PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(
            hierarchies["cpuacct"],
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            hierarchies["memory"],
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        assert!(hierarchies.contains_key("name=systemd"));
        assert_eq!(unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn pure_v2_is_unified() {
        let s = "30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            detect(s).unwrap(),
            Layout::Unified {
                root: "/sys/fs/cgroup".into()
            }
        );
    }

    #[test]
    fn nothing_mounted_is_an_error() {
        assert!(matches!(
            detect("1 0 0:1 / / rw - ext4 /dev/sda rw\n"),
            Err(CgroupError::NoHierarchy)
        ));
    }

    #[test]
    fn unescapes_spaces() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
