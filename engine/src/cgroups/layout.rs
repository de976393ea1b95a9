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
    let path = std::path::Path::new("/proc/self/mountinfo");
    let s = super::fsutil::read(path)?;
    detect(&s)
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
