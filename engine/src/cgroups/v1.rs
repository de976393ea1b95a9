//! cgroup v1: one directory per controller hierarchy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use super::fsutil::{self, keyed, read, read_pids, read_u64_opt, write};
use super::{poll_until, CgroupError, Manager, Result, Stats};

/// A container's group in every v1 hierarchy the host mounts.
#[derive(Debug, Clone)]
pub struct V1Manager {
    /// controller name -> that controller's directory for this group.
    dirs: BTreeMap<String, PathBuf>,
}

impl V1Manager {
    /// `hierarchies` maps controllers to mount points (see [`super::Layout::V1`]);
    /// `rel` is the group's path below each root.
    pub fn new(hierarchies: BTreeMap<String, PathBuf>, rel: PathBuf) -> Self {
        let dirs = hierarchies
            .into_iter()
            .map(|(c, root)| (c, root.join(&rel)))
            .collect();
        V1Manager { dirs }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs.get(controller).map(|p| p.as_path())
    }

    /// Every distinct directory (co-mounted controllers share one).
    fn unique_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.dirs.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    fn need(&self, controller: &str, what: &str) -> Result<&Path> {
        self.dir(controller).ok_or_else(|| CgroupError::Invalid {
            what: what.into(),
            why: format!("the {controller} controller is not mounted on this host"),
        })
    }

    /// A new cpuset group starts with empty cpus/mems and refuses tasks: copy the
    /// parent's values down every level we created.
    fn init_cpuset(&self, dir: &Path) -> Result<()> {
        let mut chain = vec![];
        let mut cur = dir.to_path_buf();
        while cur.join("cpuset.cpus").exists() {
            chain.push(cur.clone());
            if !cur.pop() {
                break;
            }
        }
        // chain: deepest first; walk from the top down.
        for d in chain.iter().rev() {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let p = d.join(f);
                if read(&p)?.trim().is_empty() {
                    if let Some(parent) = d.parent() {
                        let v = read(&parent.join(f))?;
                        write(&p, v.trim())?;
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_memory(&self, r: &LinuxResources, warnings: &mut Vec<String>) -> Result<()> {
        let Some(m) = r.memory() else { return Ok(()) };
        let limit = m.limit();
        let swap = m.swap();
        let reservation = m.reservation();
        if limit.is_none()
            && swap.is_none()
            && reservation.is_none()
            && m.swappiness().is_none()
            && m.disable_oom_killer().is_none()
        {
            return Ok(());
        }
        let dir = self.need("memory", "memory")?;
        if let Some(l) = limit {
            check_limit("memory.limit", l)?;
            write(&dir.join("memory.limit_in_bytes"), &l.to_string())?;
        }
        if let Some(s) = swap {
            check_limit("memory.swap", s)?;
            if let (Some(l), true) = (limit, s > 0) {
                if s < l {
                    return Err(CgroupError::Invalid {
                        what: "memory.swap".into(),
                        why: format!("{s} is below memory.limit {l}; swap is memory+swap in total"),
                    });
                }
            }
            let p = dir.join("memory.memsw.limit_in_bytes");
            if p.exists() {
                write(&p, &s.to_string())?;
            } else {
                warnings.push("memory.swap ignored: this kernel does not account swap (memory.memsw.* missing; boot with swapaccount=1)".into());
            }
        }
        if let Some(r) = reservation {
            check_limit("memory.reservation", r)?;
            write(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(CgroupError::Invalid {
                    what: "memory.swappiness".into(),
                    why: format!("{s} is above 100"),
                });
            }
            write(&dir.join("memory.swappiness"), &s.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            write(&dir.join("memory.oom_control"), "1")?;
        }
        Ok(())
    }

    fn apply_cpu(&self, r: &LinuxResources) -> Result<()> {
        let Some(c) = r.cpu() else { return Ok(()) };
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
            let dir = self.need("cpu", "cpu")?;
            if let Some(s) = c.shares() {
                if s < 2 {
                    return Err(CgroupError::Invalid {
                        what: "cpu.shares".into(),
                        why: format!("{s} is below the minimum 2"),
                    });
                }
                write(&dir.join("cpu.shares"), &s.to_string())?;
            }
            // Period before quota: the kernel checks quota against the current period.
            if let Some(p) = c.period() {
                write(&dir.join("cpu.cfs_period_us"), &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                let q = if q <= 0 { -1 } else { q };
                write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
            }
        }
        if let Some(cpus) = c.cpus() {
            let dir = self.need("cpuset", "cpu.cpus")?;
            write(&dir.join("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = c.mems() {
            let dir = self.need("cpuset", "cpu.mems")?;
            write(&dir.join("cpuset.mems"), mems)?;
        }
        Ok(())
    }

    fn apply_blkio(&self, r: &LinuxResources, warnings: &mut Vec<String>) -> Result<()> {
        let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) else {
            return Ok(());
        };
        if !(10..=1000).contains(&w) {
            return Err(CgroupError::Invalid {
                what: "blockIO.weight".into(),
                why: format!("{w} is outside 10..=1000"),
            });
        }
        let dir = self.need("blkio", "blockIO.weight")?;
        let plain = dir.join("blkio.weight");
        let bfq = dir.join("blkio.bfq.weight");
        if plain.exists() {
            write(&plain, &w.to_string())
        } else if bfq.exists() {
            write(&bfq, &w.to_string())
        } else {
            warnings.push(
                "blockIO.weight ignored: no I/O scheduler here offers weights (blkio.weight and blkio.bfq.weight missing)".into(),
            );
            Ok(())
        }
    }

    fn apply_devices(&self, r: &LinuxResources, warnings: &mut Vec<String>) -> Result<()> {
        let Some(rules) = r.devices() else {
            return Ok(());
        };
        if rules.is_empty() {
            return Ok(());
        }
        let Some(dir) = self.dir("devices") else {
            // Say so rather than run the container with every device open.
            warnings.push("linux.resources.devices NOT enforced: the devices controller is not mounted on this host".into());
            return Ok(());
        };
        for rule in rules {
            let typ = rule.typ().map(|t| t.as_str().to_string());
            let typ = typ.as_deref().unwrap_or("a");
            let major = rule.major().map_or("*".to_string(), |m| m.to_string());
            let minor = rule.minor().map_or("*".to_string(), |m| m.to_string());
            let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
            let line = if typ == "a" && rule.major().is_none() && rule.minor().is_none() {
                "a".to_string()
            } else {
                format!("{typ} {major}:{minor} {access}")
            };
            let file = if rule.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write(&dir.join(file), &line)?;
        }
        Ok(())
    }
}

fn check_limit(what: &str, v: i64) -> Result<()> {
    if v < -1 || v == 0 {
        return Err(CgroupError::Invalid {
            what: what.into(),
            why: format!("{v} bytes; give a positive number of bytes or -1 for unlimited"),
        });
    }
    Ok(())
}

impl Manager for V1Manager {
    fn version(&self) -> &'static str {
        "v1"
    }

    fn create(&self) -> Result<()> {
        for d in self.unique_dirs() {
            fsutil::mkdir_all(&d)?;
        }
        if let Some(d) = self.dir("cpuset") {
            self.init_cpuset(d)?;
        }
        Ok(())
    }

    fn apply(&self, r: &LinuxResources) -> Result<Vec<String>> {
        let mut warnings = vec![];
        self.apply_memory(r, &mut warnings)?;
        self.apply_cpu(r)?;
        if let Some(p) = r.pids() {
            let dir = self.need("pids", "pids.limit")?;
            let v = if p.limit() <= 0 {
                "max".to_string()
            } else {
                p.limit().to_string()
            };
            write(&dir.join("pids.max"), &v)?;
        }
        self.apply_blkio(r, &mut warnings)?;
        self.apply_devices(r, &mut warnings)?;
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            warnings.push("linux.resources.unified ignored: this host uses cgroup v1".into());
        }
        Ok(warnings)
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        for d in self.unique_dirs() {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn join_self(&self) -> Result<()> {
        for d in self.unique_dirs() {
            write(&d.join("tasks"), "0")?;
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        // The pids or freezer hierarchy holds every task; fall back to any.
        let d = self
            .dir("pids")
            .or_else(|| self.dir("freezer"))
            .map(Path::to_path_buf)
            .or_else(|| self.unique_dirs().into_iter().next());
        match d {
            Some(d) => read_pids(&d.join("cgroup.procs")),
            None => Ok(vec![]),
        }
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(d) = self.dir("memory") {
            s.memory_usage = read_u64_opt(&d.join("memory.usage_in_bytes"))?;
            s.memory_peak = read_u64_opt(&d.join("memory.max_usage_in_bytes"))?;
            let oom = d.join("memory.oom_control");
            if oom.exists() {
                s.oom_kills = keyed(&read(&oom)?, "oom_kill");
            }
        }
        if let Some(d) = self.dir("cpuacct") {
            s.cpu_usage_ns = read_u64_opt(&d.join("cpuacct.usage"))?;
        }
        if let Some(d) = self.dir("pids") {
            s.pids_current = read_u64_opt(&d.join("pids.current"))?;
        }
        Ok(s)
    }

    fn freeze(&self) -> Result<()> {
        let d = self.need("freezer", "freeze")?;
        let f = d.join("freezer.state");
        write(&f, "FROZEN")?;
        let wait = Duration::from_secs(5);
        let ok = poll_until(wait, || {
            read(&f).map(|s| s.trim() == "FROZEN").unwrap_or(false)
        });
        if !ok {
            let _ = write(&f, "THAWED");
            return Err(CgroupError::FreezeTimeout {
                path: d.to_path_buf(),
                want: "FROZEN",
                waited: wait,
            });
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        let d = self.need("freezer", "thaw")?;
        write(&d.join("freezer.state"), "THAWED")
    }

    fn destroy(&self, wait: Duration) -> Result<()> {
        let mut first_err = None;
        for d in self.unique_dirs() {
            if let Err(e) = remove_dir_waiting(&d, wait) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.unique_dirs()
    }
}

/// rmdir fails with EBUSY while tasks remain (exiting ones included): retry until
/// the group is empty or `wait` has passed.
pub(crate) fn remove_dir_waiting(d: &Path, wait: Duration) -> Result<()> {
    let mut last = None;
    let ok = poll_until(wait, || match std::fs::remove_dir(d) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            last = Some(e);
            false
        }
    });
    if ok {
        return Ok(());
    }
    let pids = read_pids(&d.join("cgroup.procs")).unwrap_or_default();
    if !pids.is_empty() {
        return Err(CgroupError::NotEmpty {
            path: d.to_path_buf(),
            pids,
            waited: wait,
        });
    }
    Err(CgroupError::Dir {
        op: "remove",
        path: d.to_path_buf(),
        source: last.unwrap_or_else(|| std::io::Error::other("timed out")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };

    /// A fake v1 tree: one root per controller, with the group's control files made
    /// empty as the kernel would make them.
    fn fake(tmp: &Path) -> V1Manager {
        let mut h = BTreeMap::new();
        let files: &[(&str, &[&str])] = &[
            (
                "memory",
                &[
                    "memory.limit_in_bytes",
                    "memory.soft_limit_in_bytes",
                    "memory.usage_in_bytes",
                    "memory.max_usage_in_bytes",
                    "memory.oom_control",
                    "cgroup.procs",
                ],
            ),
            (
                "cpu",
                &[
                    "cpu.shares",
                    "cpu.cfs_quota_us",
                    "cpu.cfs_period_us",
                    "cgroup.procs",
                ],
            ),
            ("cpuset", &["cpuset.cpus", "cpuset.mems", "cgroup.procs"]),
            ("pids", &["pids.max", "pids.current", "cgroup.procs"]),
            ("blkio", &["blkio.bfq.weight", "cgroup.procs"]),
            ("freezer", &["freezer.state", "cgroup.procs"]),
        ];
        for (c, fs) in files {
            let root = tmp.join(c);
            let g = root.join("berth-t");
            std::fs::create_dir_all(&g).unwrap();
            for f in *fs {
                std::fs::write(g.join(f), "").unwrap();
                if f.starts_with("cpuset") {
                    std::fs::write(root.join(f), "0-1\n").unwrap();
                }
            }
            h.insert(c.to_string(), root);
        }
        V1Manager::new(h, "berth-t".into())
    }

    fn get(tmp: &Path, c: &str, f: &str) -> String {
        std::fs::read_to_string(tmp.join(c).join("berth-t").join(f)).unwrap()
    }

    #[test]
    fn writes_every_limit_to_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path());
        m.create().unwrap();
        assert_eq!(get(tmp.path(), "cpuset", "cpuset.cpus"), "0-1");
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .reservation(32 << 20)
                    .swap(128 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000)
                    .period(100_000u64)
                    .shares(512u64)
                    .cpus("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(20).build().unwrap())
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(300u16)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let warnings = m.apply(&r).unwrap();
        assert_eq!(
            get(tmp.path(), "memory", "memory.limit_in_bytes"),
            "67108864"
        );
        assert_eq!(
            get(tmp.path(), "memory", "memory.soft_limit_in_bytes"),
            "33554432"
        );
        assert_eq!(get(tmp.path(), "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(get(tmp.path(), "cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(get(tmp.path(), "cpu", "cpu.shares"), "512");
        assert_eq!(get(tmp.path(), "cpuset", "cpuset.cpus"), "0");
        assert_eq!(get(tmp.path(), "pids", "pids.max"), "20");
        assert_eq!(get(tmp.path(), "blkio", "blkio.bfq.weight"), "300");
        // No memsw file in the fake tree: swap is reported, not silently dropped.
        assert!(warnings.iter().any(|w| w.contains("swap")), "{warnings:?}");
    }

    #[test]
    fn device_rules_without_the_controller_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path());
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}]
        }))
        .unwrap();
        let w = m.apply(&r).unwrap();
        assert!(w.iter().any(|w| w.contains("NOT enforced")), "{w:?}");
    }

    #[test]
    fn bad_values_are_refused_before_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path());
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(0).build().unwrap())
            .build()
            .unwrap();
        let e = m.apply(&r).unwrap_err().to_string();
        assert!(e.contains("memory.limit"), "{e}");
        assert_eq!(get(tmp.path(), "memory", "memory.limit_in_bytes"), "");
    }

    #[test]
    fn stats_read_the_counters() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path());
        let g = |c: &str, f: &str, v: &str| {
            std::fs::write(tmp.path().join(c).join("berth-t").join(f), v).unwrap()
        };
        g("memory", "memory.usage_in_bytes", "4096\n");
        g("memory", "memory.max_usage_in_bytes", "8192\n");
        g(
            "memory",
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        g("pids", "pids.current", "3\n");
        let s = m.stats().unwrap();
        assert_eq!(s.memory_usage, Some(4096));
        assert_eq!(s.memory_peak, Some(8192));
        assert_eq!(s.oom_kills, Some(2));
        assert_eq!(s.pids_current, Some(3));
    }

    #[test]
    fn freeze_writes_frozen() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path());
        // A plain file reads back what we wrote, as the kernel's does once frozen.
        m.freeze().unwrap();
        assert_eq!(get(tmp.path(), "freezer", "freezer.state"), "FROZEN");
        m.thaw().unwrap();
        assert_eq!(get(tmp.path(), "freezer", "freezer.state"), "THAWED");
    }
}
