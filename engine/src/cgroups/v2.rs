//! cgroup v2: one unified tree. Controllers must be enabled in every ancestor's
//! `cgroup.subtree_control` before a group can use them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use super::fsutil::{self, keyed, read, read_pids, read_u64_opt, write};
use super::{devices, poll_until, CgroupError, Manager, Result, Stats};

/// Controllers a container may need; enabled in ancestors when the host offers them.
const WANTED: &[&str] = &["cpu", "cpuset", "io", "memory", "pids"];

#[derive(Debug, Clone)]
pub struct V2Manager {
    root: PathBuf,
    rel: PathBuf,
}

/// cgroup v1 cpu.shares (2..=262144) to v2 cpu.weight (1..=10000), as runc maps it.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// v1 blkio.weight (10..=1000) to v2 io.weight (1..=10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

impl V2Manager {
    pub fn new(root: PathBuf, rel: PathBuf) -> Self {
        V2Manager { root, rel }
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.rel)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Writes a control file whose controller may be missing here: a missing file
    /// means the controller is not enabled for this group.
    fn write_ctl(&self, name: &str, value: &str) -> Result<()> {
        let p = self.file(name);
        if !p.exists() {
            let ctl = name.split('.').next().unwrap_or(name);
            return Err(CgroupError::Invalid {
                what: name.into(),
                why: format!(
                    "the {ctl} controller is not available in {} (it is not listed in the parent's cgroup.subtree_control; on a hybrid host it is bound to cgroup v1)",
                    self.dir().display()
                ),
            });
        }
        write(&p, value)
    }

    /// Enables the wanted controllers the host offers, from the root down to the parent.
    fn enable_controllers(&self) -> Result<()> {
        let mut cur = self.root.clone();
        for comp in self.rel.components() {
            let avail = read(&cur.join("cgroup.controllers")).unwrap_or_default();
            let enable: Vec<String> = avail
                .split_whitespace()
                .filter(|c| WANTED.contains(c))
                .map(|c| format!("+{c}"))
                .collect();
            if !enable.is_empty() {
                let sc = cur.join("cgroup.subtree_control");
                let have = read(&sc).unwrap_or_default();
                for e in enable {
                    if !have.split_whitespace().any(|h| h == &e[1..]) {
                        write(&sc, &e)?;
                    }
                }
            }
            cur.push(comp);
            if !cur.exists() {
                fsutil::mkdir_all(&cur)?;
            }
        }
        Ok(())
    }
}

impl Manager for V2Manager {
    fn version(&self) -> &'static str {
        "v2"
    }

    fn create(&self) -> Result<()> {
        self.enable_controllers()?;
        fsutil::mkdir_all(&self.dir())
    }

    fn apply(&self, r: &LinuxResources) -> Result<Vec<String>> {
        // v2 has no devices controller: the rules become an eBPF program on the group.
        // Compiled (and so validated) before anything is written.
        let filter = match r.devices() {
            Some(rules) if !rules.is_empty() => Some(devices::compile(rules)?),
            _ => None,
        };
        if let Some(m) = r.memory() {
            if let Some(l) = m.limit() {
                self.write_ctl("memory.max", &limit_str("memory.limit", l)?)?;
            }
            if let Some(rsv) = m.reservation() {
                self.write_ctl("memory.low", &limit_str("memory.reservation", rsv)?)?;
            }
            if let Some(s) = m.swap() {
                // v1 swap is memory+swap; v2 swap.max is swap alone.
                let v = match (s, m.limit()) {
                    (-1, _) => "max".to_string(),
                    (s, Some(l)) if l > 0 && s >= l => (s - l).to_string(),
                    (s, l) => {
                        return Err(CgroupError::Invalid {
                            what: "memory.swap".into(),
                            why: format!("{s} with memory.limit {l:?}; swap is memory+swap and needs a limit no larger than it"),
                        })
                    }
                };
                self.write_ctl("memory.swap.max", &v)?;
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(s) = c.shares() {
                self.write_ctl("cpu.weight", &shares_to_weight(s).to_string())?;
            }
            if c.quota().is_some() || c.period().is_some() {
                let q = match c.quota() {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_string(),
                };
                let p = c.period().unwrap_or(100_000);
                self.write_ctl("cpu.max", &format!("{q} {p}"))?;
            }
            if let Some(cpus) = c.cpus() {
                self.write_ctl("cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                self.write_ctl("cpuset.mems", mems)?;
            }
        }
        if let Some(p) = r.pids() {
            let v = if p.limit() <= 0 {
                "max".into()
            } else {
                p.limit().to_string()
            };
            self.write_ctl("pids.max", &v)?;
        }
        if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
            if !(10..=1000).contains(&w) {
                return Err(CgroupError::Invalid {
                    what: "blockIO.weight".into(),
                    why: format!("{w} is outside 10..=1000"),
                });
            }
            self.write_ctl("io.weight", &blkio_to_io_weight(w).to_string())?;
        }
        if let Some(u) = r.unified() {
            for (k, v) in u {
                if k.contains('/') || k.starts_with('.') || k.is_empty() {
                    return Err(CgroupError::Invalid {
                        what: format!("unified.{k}"),
                        why: "is not a control file name".into(),
                    });
                }
                self.write_ctl(k, v)?;
            }
        }
        if let Some(f) = filter {
            devices::install(&self.dir(), &f)?;
        }
        // Every setting is enforced or refused: nothing to warn about.
        Ok(vec![])
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        write(&self.file("cgroup.procs"), &pid.to_string())
    }

    fn join_self(&self) -> Result<()> {
        write(&self.file("cgroup.procs"), "0")
    }

    fn pids(&self) -> Result<Vec<i32>> {
        read_pids(&self.file("cgroup.procs"))
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats {
            memory_usage: read_u64_opt(&self.file("memory.current"))?,
            memory_peak: read_u64_opt(&self.file("memory.peak"))?,
            pids_current: read_u64_opt(&self.file("pids.current"))?,
            ..Stats::default()
        };
        let ev = self.file("memory.events");
        if ev.exists() {
            s.oom_kills = keyed(&read(&ev)?, "oom_kill");
        }
        // cpu.stat is a core file: present even without the cpu controller.
        let cs = self.file("cpu.stat");
        if cs.exists() {
            s.cpu_usage_ns = keyed(&read(&cs)?, "usage_usec").map(|u| u * 1000);
        }
        if s.pids_current.is_none() {
            s.pids_current = Some(self.pids()?.len() as u64);
        }
        Ok(s)
    }

    fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn destroy(&self, wait: Duration) -> Result<()> {
        let d = self.dir();
        if !d.exists() {
            return Ok(());
        }
        // Wait for exiting tasks: "populated 0" in cgroup.events once they are gone.
        let ev = self.file("cgroup.events");
        poll_until(wait, || {
            read(&ev)
                .map(|s| keyed(&s, "populated") != Some(1))
                .unwrap_or(true)
        });
        super::v1::remove_dir_waiting(&d, wait)
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir()]
    }
}

impl V2Manager {
    fn set_frozen(&self, on: bool) -> Result<()> {
        write(&self.file("cgroup.freeze"), if on { "1" } else { "0" })?;
        let want = if on { 1 } else { 0 };
        let ev = self.file("cgroup.events");
        let wait = Duration::from_secs(5);
        let ok = poll_until(wait, || {
            read(&ev)
                .map(|s| keyed(&s, "frozen") == Some(want))
                .unwrap_or(false)
        });
        if !ok {
            return Err(CgroupError::FreezeTimeout {
                path: self.dir(),
                want: if on { "frozen" } else { "thawed" },
                waited: wait,
            });
        }
        Ok(())
    }

    /// Kills every process of the group at once (kernel 5.14+), else returns false.
    pub fn kill_all(&self) -> Result<bool> {
        let p = self.file("cgroup.kill");
        if !p.exists() {
            return Ok(false);
        }
        write(&p, "1")?;
        Ok(true)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn limit_str(what: &str, v: i64) -> Result<String> {
    match v {
        -1 => Ok("max".into()),
        v if v > 0 => Ok(v.to_string()),
        v => Err(CgroupError::Invalid {
            what: what.into(),
            why: format!("{v} bytes; give a positive number of bytes or -1 for unlimited"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };

    /// A fake unified tree: the root offers controllers, the group has its files.
    fn fake(tmp: &Path, controllers: &str) -> V2Manager {
        std::fs::write(tmp.join("cgroup.controllers"), controllers).unwrap();
        std::fs::write(tmp.join("cgroup.subtree_control"), "").unwrap();
        let g = tmp.join("berth-t");
        std::fs::create_dir_all(&g).unwrap();
        for f in [
            "memory.max",
            "memory.low",
            "memory.swap.max",
            "cpu.max",
            "cpu.weight",
            "cpuset.cpus",
            "pids.max",
            "io.weight",
            "cgroup.procs",
            "cgroup.freeze",
        ] {
            std::fs::write(g.join(f), "").unwrap();
        }
        V2Manager::new(tmp.to_path_buf(), "berth-t".into())
    }

    fn get(tmp: &Path, f: &str) -> String {
        std::fs::read_to_string(tmp.join("berth-t").join(f)).unwrap()
    }

    #[test]
    fn create_enables_offered_controllers_in_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path(), "cpu memory pids hugetlb\n");
        m.create().unwrap();
        // Each write of a fake file replaces it: the last one enabled stays.
        let sc = std::fs::read_to_string(tmp.path().join("cgroup.subtree_control")).unwrap();
        assert_eq!(sc, "+pids");
    }

    #[test]
    fn writes_converted_limits() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path(), "");
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .reservation(16 << 20)
                    .swap(96 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000)
                    .period(100_000u64)
                    .shares(1024u64)
                    .cpus("0-1")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(0).build().unwrap())
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(500u16)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        m.apply(&r).unwrap();
        assert_eq!(get(tmp.path(), "memory.max"), "67108864");
        assert_eq!(get(tmp.path(), "memory.low"), "16777216");
        assert_eq!(get(tmp.path(), "memory.swap.max"), "33554432");
        assert_eq!(get(tmp.path(), "cpu.max"), "50000 100000");
        assert_eq!(get(tmp.path(), "cpu.weight"), "39");
        assert_eq!(get(tmp.path(), "cpuset.cpus"), "0-1");
        assert_eq!(get(tmp.path(), "pids.max"), "max");
        assert_eq!(get(tmp.path(), "io.weight"), "4950");
    }

    #[test]
    fn missing_controller_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path(), "");
        std::fs::remove_file(tmp.path().join("berth-t/memory.max")).unwrap();
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(1 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let e = m.apply(&r).unwrap_err().to_string();
        assert!(e.contains("memory controller is not available"), "{e}");
    }

    #[test]
    fn swap_below_limit_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path(), "");
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(1 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert!(m.apply(&r).is_err());
    }

    #[test]
    fn bad_device_rules_are_refused_before_any_write() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path(), "");
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576},
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "access": "rx"}]
        }))
        .unwrap();
        let e = m.apply(&r).unwrap_err().to_string();
        assert!(e.contains("devices[1].access"), "{e}");
        assert_eq!(get(tmp.path(), "memory.max"), "");
    }

    #[test]
    fn device_rules_are_enforced_not_dropped() {
        // A fake tree is no cgroup: the filter cannot attach, and apply says so rather
        // than carrying on unfiltered. (engine/tests/devices_bpf.rs attaches for real.)
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path(), "");
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}]
        }))
        .unwrap();
        let e = m.apply(&r).unwrap_err().to_string();
        assert!(e.contains("device filter program"), "{e}");
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn stats_read_v2_files() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path(), "");
        let g = tmp.path().join("berth-t");
        std::fs::write(g.join("memory.current"), "100\n").unwrap();
        std::fs::write(g.join("memory.peak"), "200\n").unwrap();
        std::fs::write(
            g.join("memory.events"),
            "low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(g.join("cpu.stat"), "usage_usec 7\nuser_usec 5\n").unwrap();
        std::fs::write(g.join("cgroup.procs"), "12\n13\n").unwrap();
        let s = m.stats().unwrap();
        assert_eq!(s.memory_usage, Some(100));
        assert_eq!(s.memory_peak, Some(200));
        assert_eq!(s.oom_kills, Some(1));
        assert_eq!(s.cpu_usage_ns, Some(7000));
        assert_eq!(s.pids_current, Some(2));
    }
}
