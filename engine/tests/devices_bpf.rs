//! The cgroup v2 device filter on the real kernel (root). On this fleet's hybrid hosts
//! the cgroup2 tree at /sys/fs/cgroup/unified has no controllers, but device programs
//! need none: a group made there, with the filter attached, confines a real process.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_engine::cgroups::devices;
use berth_engine::cgroups::v2::V2Manager;
use berth_engine::cgroups::{self, Layout, Manager};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

/// The cgroup2 mount, whichever layout the host booted with.
fn v2_root() -> Option<PathBuf> {
    match cgroups::layout::host_layout().unwrap() {
        Layout::Unified { root } => Some(root),
        Layout::V1 { unified, .. } => unified,
    }
}

/// Removes the group (killing what is left in it) even when an assertion fails.
struct Group(V2Manager);
impl Drop for Group {
    fn drop(&mut self) {
        let _ = self.0.kill_all();
        let _ = self.0.destroy(Duration::from_secs(5));
    }
}

fn group(name: &str) -> Option<Group> {
    let Some(root) = v2_root() else {
        eprintln!("no cgroup2 mount on this host: skipped");
        return None;
    };
    let rel = format!("berth-devtest-{name}-{}", std::process::id());
    let m = V2Manager::new(root, rel.into());
    m.create().unwrap();
    Some(Group(m))
}

fn rules(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_value(v).unwrap()
}

fn docker_rules() -> Vec<LinuxDeviceCgroup> {
    rules(berth_engine::runtime::defaults::DOCKER_DEVICE_RULES())
}

/// Makes nodes in `tmp` and opens each candidate read-write from a process inside the
/// group; returns path -> "ok" or the error the shell reports.
fn probe(g: &V2Manager, tmp: &Path) -> std::collections::BTreeMap<String, String> {
    let t = tmp.display();
    let script = format!(
        "read go
         for n in 'loop0 b 7 0' 'null c 1 3'; do
           set -- $n
           if err=$(mknod {t}/$n 2>&1); then echo \"mknod-$1=ok\"; else echo \"mknod-$1=$err\"; fi
         done
         for p in /dev/null /dev/zero {t}/null {t}/loop0 /dev/kmsg; do
           if [ ! -e $p ]; then echo \"$p=missing\"
           elif err=$( (exec 3<>$p) 2>&1 ); then echo \"$p=ok\"; else echo \"$p=$err\"; fi
         done"
    );
    let mut child = Command::new("/bin/busybox")
        .args(["sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it if anything below fails, so the group can go.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0 as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _k = Kill(child.id());
    g.add_task(child.id() as i32).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    for f in ["loop0", "null"] {
        let _ = std::fs::remove_file(tmp.join(f));
    }
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(p, r)| (p.replace(&t.to_string(), "$T"), r.to_string()))
        .collect()
}

fn poll_until(wait: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + wait;
    while !f() {
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

const EPERM: &str = "Operation not permitted";

#[test]
fn docker_default_rules_confine_a_process_and_allow_all_lifts_them() {
    let Some(g) = group("docker") else { return };
    // Not under a nodev mount: opening a node there is up to the device filter alone.
    let tmp = tempfile::Builder::new()
        .prefix("berth-devtest-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let dir = g.0.dir();

    let docker = devices::compile(&docker_rules()).unwrap();
    let first = devices::install(&dir, &docker).unwrap();
    assert_eq!(devices::attached(&dir).unwrap(), vec![first]);
    let r = probe(&g.0, tmp.path());
    assert_eq!(r["/dev/null"], "ok", "{r:?}");
    assert_eq!(r["/dev/zero"], "ok", "{r:?}");
    assert_eq!(r["$T/null"], "ok", "a node made here opens: {r:?}");
    assert!(r["$T/loop0"].contains(EPERM), "block device opened: {r:?}");
    assert!(
        r["/dev/kmsg"].contains(EPERM),
        "c 1:11 is not listed: {r:?}"
    );
    assert_eq!(r["mknod-loop0"], "ok", "b *:* m lets nodes be made: {r:?}");

    // An update swaps the program: one attached, the earlier one gone from the kernel.
    let all = devices::compile(&rules(
        serde_json::json!([{"allow": true, "access": "rwm"}]),
    ))
    .unwrap();
    let second = devices::install(&dir, &all).unwrap();
    assert_ne!(first, second);
    assert_eq!(devices::attached(&dir).unwrap(), vec![second]);
    assert!(poll_until(Duration::from_secs(5), || {
        !devices::program_exists(first)
    }));
    let r = probe(&g.0, tmp.path());
    for (p, res) in &r {
        assert_eq!(res, "ok", "{p} under allow-all: {r:?}");
    }

    // Deny-all: even /dev/null is refused.
    let none = devices::compile(&rules(
        serde_json::json!([{"allow": false, "access": "rwm"}]),
    ))
    .unwrap();
    devices::install(&dir, &none).unwrap();
    let r = probe(&g.0, tmp.path());
    assert!(r["/dev/null"].contains(EPERM), "{r:?}");
    assert!(r["mknod-null"].contains(EPERM), "{r:?}");
    assert_eq!(r["$T/null"], "missing", "{r:?}");
}

#[test]
fn v2_manager_attaches_the_filter_and_destroy_releases_it() {
    let Some(g) = group("mgr") else { return };
    let dir = g.0.dir();
    let res = |v: serde_json::Value| -> LinuxResources {
        serde_json::from_value(serde_json::json!({ "devices": v })).unwrap()
    };
    let warnings =
        g.0.apply(&res(berth_engine::runtime::defaults::DOCKER_DEVICE_RULES()))
            .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let ids = devices::attached(&dir).unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(devices::program_exists(ids[0]));
    // Applying again (an update) leaves exactly one program.
    g.0.apply(&res(serde_json::json!([{"allow": true, "access": "rwm"}])))
        .unwrap();
    let now = devices::attached(&dir).unwrap();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, ids);
    // Rules without devices leave the filter as it is.
    g.0.apply(&LinuxResources::default()).unwrap();
    assert_eq!(devices::attached(&dir).unwrap(), now);
    // A rule the filter cannot express is refused and changes nothing.
    let e =
        g.0.apply(&res(serde_json::json!([
            {"allow": true, "type": "c", "major": 1, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "r"}
        ])))
        .unwrap_err();
    assert!(e.to_string().contains("punch holes"), "{e}");
    assert_eq!(devices::attached(&dir).unwrap(), now);
    // Removing the group releases its program in the kernel.
    g.0.destroy(Duration::from_secs(5)).unwrap();
    assert!(!dir.exists());
    assert!(
        poll_until(Duration::from_secs(5), || !devices::program_exists(now[0])),
        "program {} outlived its group",
        now[0]
    );
}

/// What a container sees of devices: makes a block node and an unlisted char node in its
/// /dev (a tmpfs without nodev) and opens each candidate read-write. The char node is
/// loop-control (c 10:237), which needs no capability to open (kmsg would need
/// CAP_SYSLOG and so fail for its own reasons in a default container).
const CONTAINER_PROBE: &str = "
    for n in 'loop0 b 7 0' 'loopctl c 10 237'; do
      set -- $n
      if err=$(mknod /dev/$n 2>&1); then echo \"mknod-$1=ok\"; else echo \"mknod-$1=$err\"; fi
    done
    for p in /dev/null /dev/zero /dev/loop0 /dev/loopctl; do
      if [ ! -e $p ]; then echo \"$p=missing\"
      elif err=$( (exec 3<>$p) 2>&1 ); then echo \"$p=ok\"; else echo \"$p=$err\"; fi
    done";

/// A container placed in the cgroup2 tree (BERTH_CGROUP_VERSION=v2, as on a pure v2
/// host) gets Docker's device rules through the filter program, and behaves as the
/// same container does under the v1 devices controller; allow-all lifts them.
#[test]
fn container_on_cgroup2_is_confined_like_on_v1() {
    let Some(v2root) = v2_root() else {
        eprintln!("no cgroup2 mount: skipped");
        return;
    };
    let f = common::Fixture::new("devbpf");
    let run = |id: &str, version: &str, rules: serde_json::Value| {
        let mut cfg = f.config(id, &["sh", "-c", CONTAINER_PROBE]);
        cfg["linux"]["resources"] = serde_json::json!({ "devices": rules });
        let b = f.bundle(id, &cfg);
        let o = f
            .cmd(&["run", "--bundle", b.to_str().unwrap(), id])
            .env("BERTH_CGROUP_VERSION", version)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(0), "{version}: {err}");
        assert!(!err.contains("NOT enforced"), "{version}: {err}");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let docker = berth_engine::runtime::defaults::DOCKER_DEVICE_RULES();
    let v1_host = matches!(cgroups::layout::host_layout().unwrap(), Layout::V1 { .. });
    let id2 = f.id("v2");
    let on_v2 = run(&id2, "v2", docker.clone());
    assert!(!v2root.join(&id2).exists(), "run removed the v2 group");
    assert_eq!(on_v2["/dev/null"], "ok", "{on_v2:?}");
    assert_eq!(on_v2["/dev/zero"], "ok", "{on_v2:?}");
    assert_eq!(on_v2["mknod-loop0"], "ok", "{on_v2:?}");
    assert_eq!(on_v2["mknod-loopctl"], "ok", "{on_v2:?}");
    assert!(on_v2["/dev/loop0"].contains(EPERM), "{on_v2:?}");
    assert!(on_v2["/dev/loopctl"].contains(EPERM), "{on_v2:?}");
    if v1_host {
        let on_v1 = run(&f.id("v1"), "v1", docker);
        assert_eq!(on_v1, on_v2, "v1 devices controller and v2 filter agree");
    }
    let all = run(
        &f.id("all"),
        "v2",
        serde_json::json!([{"allow": true, "access": "rwm"}]),
    );
    for (p, r) in &all {
        assert_eq!(r, "ok", "{p} under allow-all: {all:?}");
    }
}
