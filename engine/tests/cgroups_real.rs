//! cgroup managers against the real kernel (root). v1 on this host's controller
//! hierarchies; v2 on the host's cgroup2 mount (on a hybrid host that tree has no
//! controllers, so the v2 test covers the core interface: procs, freeze, events, rmdir).

use std::process::{Child, Command};
use std::time::Duration;

use berth_engine::cgroups::{self, Layout, Manager};
use oci_spec::runtime::{LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

/// Kills the child and removes the group even when an assertion fails.
struct Guard {
    child: Child,
    mgr: Box<dyn Manager>,
}
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.mgr.thaw();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.mgr.destroy(Duration::from_secs(5));
    }
}

fn proc_state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

fn busy_child() -> Child {
    // A shell loop that keeps running, so freezing shows in its state.
    Command::new("/bin/busybox")
        .args(["sh", "-c", "while :; do :; done"])
        .spawn()
        .unwrap()
}

#[test]
fn v1_limits_stats_freeze_and_removal_on_real_kernel() {
    let layout = cgroups::layout::host_layout().unwrap();
    let Layout::V1 { hierarchies, .. } = layout.clone() else {
        eprintln!("host is cgroup v2 only; v1 test not applicable");
        return;
    };
    let path = format!("/berth-cgtest-v1-{}", std::process::id());
    let mgr = cgroups::manager_for(&layout, &path).unwrap();
    mgr.create().unwrap();
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(32 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(7).build().unwrap())
        .build()
        .unwrap();
    mgr.apply(&r).unwrap();
    let child = busy_child();
    let pid = child.id();
    let g = Guard { child, mgr };
    g.mgr.add_task(pid as i32).unwrap();
    let mem = hierarchies["memory"].join(path.trim_start_matches('/'));
    let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (32u64 << 20).to_string());
    assert_eq!(g.mgr.pids().unwrap(), vec![pid as i32]);
    let s = g.mgr.stats().unwrap();
    assert_eq!(s.pids_current, Some(1));
    // v1 charges memory where it was faulted in, not where the task moved: just present.
    assert!(s.memory_usage.is_some());
    g.mgr.freeze().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let cpu1 = g.mgr.stats().unwrap().cpu_usage_ns.unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let cpu2 = g.mgr.stats().unwrap().cpu_usage_ns.unwrap();
    assert_eq!(cpu1, cpu2, "a frozen group uses no CPU");
    g.mgr.thaw().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(g.mgr.stats().unwrap().cpu_usage_ns.unwrap() > cpu2);
    // Removal refuses while the process lives, then succeeds once it is gone.
    let e = g.mgr.destroy(Duration::from_millis(100)).unwrap_err();
    assert!(e.to_string().contains("still holds processes"), "{e}");
    let paths = g.mgr.paths();
    drop(g);
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn v2_core_interface_on_real_cgroup2() {
    let layout = cgroups::layout::host_layout().unwrap();
    let root = match layout {
        Layout::Unified { root } => root,
        Layout::V1 {
            unified: Some(u), ..
        } => u,
        Layout::V1 { unified: None, .. } => {
            eprintln!("no cgroup2 mount on this host");
            return;
        }
    };
    let rel = format!("berth-cgtest-v2-{}", std::process::id());
    let v2 = cgroups::v2::V2Manager::new(root.clone(), rel.clone().into());
    v2.create().unwrap();
    let child = busy_child();
    let pid = child.id();
    let g = Guard {
        child,
        mgr: Box::new(v2.clone()),
    };
    g.mgr.add_task(pid as i32).unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&format!("0::/{rel}")), "{cg}");
    assert_eq!(g.mgr.stats().unwrap().pids_current, Some(1));
    g.mgr.freeze().unwrap();
    // A frozen task sleeps in the freezer (state S or D), never R.
    std::thread::sleep(Duration::from_millis(50));
    assert_ne!(proc_state(pid), 'R');
    g.mgr.thaw().unwrap();
    assert!(v2.kill_all().unwrap(), "cgroup.kill exists on this kernel");
    let dir = v2.dir();
    drop(g);
    assert!(!dir.exists());
}
