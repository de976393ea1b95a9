//! berth-runtime end to end, as root on the real kernel, with a busybox rootfs. Each
//! test checks what a user would check, and its Fixture force-deletes its containers.

mod common;

use std::time::Duration;

use common::{cgroup_dirs_named, read, Fixture};
use serde_json::json;

#[test]
fn process_is_pid_1_and_sees_no_host_process() {
    let f = Fixture::new("pid1");
    let id = f.id("c");
    let cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "echo $$; ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '",
        ],
    );
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"), "{out}");
    let pids: Vec<u32> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // sh, ls, grep, tr: a handful of small pids; the host's (this test's own) is not there.
    assert!(pids.iter().all(|p| *p < 10), "{pids:?}");
    assert!(!pids.contains(&std::process::id()));
}

#[test]
fn hostname_and_domainname_are_set() {
    let f = Fixture::new("uts");
    let id = f.id("c");
    let mut cfg = f.config(
        &id,
        &["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
    );
    cfg["hostname"] = json!("berth-host-a");
    cfg["domainname"] = json!("berth.test");
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "berth-host-a\nberth.test\n");
    assert_ne!(read("/proc/sys/kernel/hostname").trim(), "berth-host-a");
}

#[test]
fn masked_paths_are_empty_and_readonly_paths_refuse_writes() {
    let f = Fixture::new("mask");
    let id = f.id("c");
    let host_timer_list = std::fs::metadata("/proc/timer_list").is_ok();
    let script = "cat /proc/timer_list | wc -c; ls -A /proc/acpi | wc -l; \
                  echo 1 > /proc/sys/kernel/printk_ratelimit_burst; echo write=$?; \
                  touch /etc/berth-x; echo rootwrite=$?";
    let cfg = f.config(&id, &["sh", "-c", script]);
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    if host_timer_list {
        assert_eq!(
            lines[0].trim(),
            "0",
            "masked /proc/timer_list shows nothing: {out}"
        );
    }
    assert_eq!(lines[1].trim(), "0", "masked /proc/acpi is empty: {out}");
    assert_eq!(lines[2], "write=1", "{out}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(lines[3], "rootwrite=1", "root.readonly holds: {out}");
}

#[test]
fn without_sys_admin_no_mount_and_without_mknod_no_mknod() {
    let f = Fixture::new("caps");
    let id = f.id("a");
    let cfg = f.config(&id, &["sh", "-c", "mkdir /tmp/m; mount -t tmpfs t /tmp/m; echo mount=$?; mknod /tmp/n c 1 3; echo mknod=$?"]);
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    // Docker's default set has MKNOD but not SYS_ADMIN.
    assert!(
        out.contains("mount=255") || out.contains("mount=1"),
        "{out} {err}"
    );
    assert!(
        out.contains("mknod=0"),
        "with CAP_MKNOD mknod works: {out} {err}"
    );

    let id = f.id("b");
    let mut cfg = f.config(&id, &["sh", "-c", "mknod /tmp/n c 1 3; echo mknod=$?"]);
    let no_mknod: Vec<&str> = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"].to_vec();
    for set in ["bounding", "effective", "permitted"] {
        cfg["process"]["capabilities"][set] = json!(no_mknod);
    }
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mknod=1"), "{out}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn unprivileged_user_runs_with_its_uid_gid_and_groups() {
    let f = Fixture::new("user");
    let id = f.id("c");
    let mut cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; grep CapEff /proc/self/status",
        ],
    );
    cfg["process"]["user"] = json!({"uid": 65534, "gid": 65534, "additionalGids": [1234, 5678]});
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "65534");
    assert_eq!(lines[1], "65534");
    let mut groups: Vec<&str> = lines[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, vec!["1234", "5678", "65534"]);
    // A non-root user keeps no effective capability (no ambient set given).
    assert!(lines[3].ends_with("0000000000000000"), "{out}");
}

#[test]
fn memory_hog_is_oom_killed_at_its_limit_and_neighbour_survives() {
    let f = Fixture::new("oom");
    let calm = f.id("calm");
    let mut cfg = f.config(&calm, &["sleep", "60"]);
    cfg["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}});
    f.start_detached(&calm, &cfg);

    let hog = f.id("hog");
    let limit: u64 = 32 << 20;
    let mut cfg = f.config(
        &hog,
        &[
            "sh",
            "-c",
            "a=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    cfg["linux"]["resources"] = json!({"memory": {"limit": limit, "swap": limit}});
    f.start_detached(&hog, &cfg);
    assert!(
        f.wait_stopped(&hog, Duration::from_secs(30)),
        "the hog did not stop"
    );
    let mem = f.cgroup_v1("memory", &hog);
    let oom = read(mem.join("memory.oom_control"));
    let kills: u64 = oom
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    assert!(
        kills >= 1,
        "the kernel OOM-killed in the hog's group: {oom}"
    );
    let peak: u64 = read(mem.join("memory.max_usage_in_bytes"))
        .trim()
        .parse()
        .unwrap();
    assert!(peak <= limit, "peak {peak} within limit {limit}");
    assert_eq!(
        f.state(&calm)["status"],
        "running",
        "the neighbour is unaffected"
    );
    f.delete(&hog);
    f.delete(&calm);
}

#[test]
fn fork_loop_stops_at_the_pids_limit() {
    let f = Fixture::new("pids");
    let id = f.id("c");
    let mut cfg = f.config(&id, &["sleep", "60"]);
    cfg["linux"]["resources"] = json!({"pids": {"limit": 20}});
    f.start_detached(&id, &cfg);
    // The loop forks until the kernel refuses; the shell then gives up.
    let (code, _, err) = f.exec(
        &id,
        &[
            "sh",
            "-c",
            "while :; do sleep 30 </dev/null >/dev/null 2>&1 & done",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "{err}"
    );
    let pids = f.cgroup_v1("pids", &id);
    let events = read(pids.join("pids.events"));
    assert_ne!(
        events.trim(),
        "max 0",
        "the kernel refused forks at the limit"
    );
    let current: u64 = read(pids.join("pids.current")).trim().parse().unwrap();
    assert!(
        (15..=20).contains(&current),
        "pids.current {current} stops at 20"
    );
    assert_eq!(f.state(&id)["status"], "running");
    f.delete(&id);
}

#[test]
fn cpu_quota_of_half_holds_a_busy_loop_near_half_a_cpu() {
    let f = Fixture::new("cpu");
    let id = f.id("c");
    let mut cfg = f.config(&id, &["sh", "-c", "while :; do :; done"]);
    cfg["linux"]["resources"] = json!({"cpu": {"quota": 50000, "period": 100000}});
    f.start_detached(&id, &cfg);
    let usage = f.cgroup_v1("cpuacct", &id).join("cpuacct.usage");
    std::thread::sleep(Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let u0: u64 = read(&usage).trim().parse().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let u1: u64 = read(&usage).trim().parse().unwrap();
    let share = (u1 - u0) as f64 / t0.elapsed().as_nanos() as f64;
    eprintln!("busy loop used {:.1}% of one CPU", share * 100.0);
    assert!(share <= 0.56, "quota exceeded: {share}");
    // The 2-core host is shared (CI runs beside builds): only check that it ran.
    assert!(share >= 0.05, "the loop barely ran: {share}");
    f.delete(&id);
}

#[test]
fn joining_a_network_namespace_by_path_sees_the_same_interfaces() {
    let f = Fixture::new("netns");
    let a = f.id("a");
    let mut cfg = f.config(&a, &["sleep", "60"]);
    let mut caps = cfg["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .clone();
    caps.push(json!("CAP_NET_ADMIN"));
    for set in ["bounding", "effective", "permitted"] {
        cfg["process"]["capabilities"][set] = json!(caps);
    }
    let pid_a = f.start_detached(&a, &cfg);
    let (code, _, err) = f.exec(&a, &["ip", "link", "add", "berthd0", "type", "bridge"]);
    assert_eq!(code, 0, "{err}");

    let b = f.id("b");
    let mut cfg = f.config(&b, &["cat", "/proc/net/dev"]);
    cfg["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"},
        {"type": "network", "path": format!("/proc/{pid_a}/ns/net")}
    ]);
    let (code, out, err) = f.run(&b, &cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("berthd0"), "b sees a's interface: {out}");
    let (_, a_dev, _) = f.exec(&a, &["cat", "/proc/net/dev"]);
    let names = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|n| n.trim().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&out), names(&a_dev));
    assert!(
        !read("/proc/net/dev").contains("berthd0"),
        "the host does not"
    );
    f.delete(&a);
}

#[test]
fn exec_lands_in_the_same_namespaces_and_cgroup() {
    let f = Fixture::new("exec");
    let id = f.id("c");
    let cfg = f.config(&id, &["sleep", "60"]);
    let pid = f.start_detached(&id, &cfg);
    let kinds = ["pid", "net", "mnt", "uts", "ipc", "cgroup"];
    let script = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k};"))
        .collect::<String>()
        + "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup; echo ---; echo $$";
    let (code, out, err) = f.exec(&id, &["sh", "-c", &script]);
    assert_eq!(code, 0, "{err}");
    let mut parts = out.split("---\n");
    let first = parts.next().unwrap();
    let init_cg = parts.next().unwrap();
    let own_pid: u32 = parts.next().unwrap().trim().parse().unwrap();
    let lines: Vec<&str> = first.lines().collect();
    for (i, k) in kinds.iter().enumerate() {
        let host_view = std::fs::read_link(format!("/proc/{pid}/ns/{k}")).unwrap();
        assert_eq!(lines[i], host_view.to_str().unwrap(), "{k} namespace");
    }
    let exec_cg: Vec<&str> = lines[kinds.len()..].to_vec();
    assert_eq!(
        exec_cg.join("\n"),
        init_cg.trim_end(),
        "same cgroups as init"
    );
    assert!(
        own_pid > 1,
        "a new process in the container's pid namespace"
    );
    // Exit codes come back.
    let (code, _, _) = f.exec(&id, &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    // -u, -e and --cwd, and a process.json.
    let (code, out, err) = f.exec(
        &id,
        &[
            "-u",
            "65534:65534",
            "-e",
            "X=y",
            "--cwd",
            "/tmp",
            "sh",
            "-c",
            "id -u; echo $X; pwd",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "65534\ny\n/tmp\n");
    let pj = f.tmp.path().join("process.json");
    std::fs::write(&pj, json!({"args": ["sh", "-c", "echo from-json; exit 4"], "cwd": "/", "user": {"uid": 0, "gid": 0}}).to_string()).unwrap();
    let (code, out, _) = f.exec(&id, &["--process", pj.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (4, "from-json\n"));
    // A program that is not there is reported, not a silent failure.
    let (code, _, err) = f.exec(&id, &["/no/such/thing"]);
    assert_eq!(code, 1);
    assert!(err.contains("/no/such/thing"), "{err}");
    f.delete(&id);
}

#[test]
fn delete_leaves_no_mount_cgroup_or_state() {
    let f = Fixture::new("delete");
    let id = f.id("c");
    let cfg = f.config(&id, &["sleep", "60"]);
    let pid = f.start_detached(&id, &cfg);
    assert!(!cgroup_dirs_named(&id).is_empty());
    assert!(f.root.join(&id).exists());
    let o = f.rt(&["delete", &id]);
    assert!(
        !o.status.success(),
        "a running container is not deleted without --force"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    f.delete(&id);
    assert!(
        cgroup_dirs_named(&id).is_empty(),
        "{:?}",
        cgroup_dirs_named(&id)
    );
    assert!(!f.root.join(&id).exists(), "state dir removed");
    assert!(
        std::fs::metadata(format!("/proc/{pid}/ns")).is_err() || {
            let s = read(format!("/proc/{pid}/stat"));
            s.contains(") Z")
        },
        "init is gone"
    );
    let mi = read("/proc/self/mountinfo");
    assert!(
        !mi.contains(f.tmp.path().to_str().unwrap()),
        "no mount of the container on the host"
    );
    let o = f.rt(&["state", &id]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
}

#[test]
fn bad_config_is_refused_clearly_and_leaves_nothing() {
    let f = Fixture::new("bad");
    type Mutate = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Mutate, &str)> = vec![
        (
            "noroot",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("root");
            }),
            "root: missing",
        ),
        (
            "types",
            Box::new(|c| c["process"]["args"] = json!("sh")),
            "line",
        ),
        (
            "ns",
            Box::new(|c| c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "bogus"}])),
            "unknown variant `bogus`",
        ),
        (
            "rootpath",
            Box::new(|c| c["root"]["path"] = json!("/nonexistent-berth-root")),
            "root.path",
        ),
    ];
    for (n, mutate, want) in cases {
        let id = f.id(n);
        let mut cfg = f.config(&id, &["true"]);
        mutate(&mut cfg);
        let b = f.bundle(&id, &cfg);
        let o = f.rt(&["create", "--bundle", b.to_str().unwrap(), &id]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{n}: {err}");
        assert!(err.contains(want), "{n}: {err}");
        assert!(!f.root.join(&id).exists(), "{n}: no state left");
        assert!(cgroup_dirs_named(&id).is_empty(), "{n}: no cgroup left");
    }
}

#[test]
fn failures_in_the_child_reach_the_caller() {
    let f = Fixture::new("childerr");
    // exec failure, reported by start.
    let id = f.id("noexe");
    let cfg = f.config(&id, &["/no/such/program"]);
    let (code, _, err) = f.run(&id, &cfg);
    assert_eq!(code, 1);
    assert!(
        err.contains("/no/such/program") && err.contains("No such file"),
        "{err}"
    );
    assert!(!f.root.join(&id).exists());
    // A mount failure during create names the mount.
    let id = f.id("badmount");
    let mut cfg = f.config(&id, &["true"]);
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    let (code, _, err) = f.run(&id, &cfg);
    assert_eq!(code, 1);
    assert!(
        err.contains("mounts[6] (/x)") && err.contains("nosuchfs"),
        "{err}"
    );
    assert!(!f.root.join(&id).exists());
    assert!(cgroup_dirs_named(&id).is_empty());
}

#[test]
fn seccomp_profile_blocks_the_named_syscall() {
    let f = Fixture::new("seccomp");
    let id = f.id("c");
    let mut cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "mkdir /tmp/d; echo mkdir=$?; touch /tmp/f; echo touch=$?",
        ],
    );
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(out.contains("touch=0"), "{out}");
}

#[test]
fn lifecycle_states_and_kill() {
    let f = Fixture::new("life");
    let id = f.id("c");
    let cfg = f.config(&id, &["sleep", "60"]);
    let b = f.bundle(&id, &cfg);
    let pidfile = f.tmp.path().join("pid");
    let o = f
        .cmd(&[
            "create",
            "--bundle",
            b.to_str().unwrap(),
            "--pid-file",
            pidfile.to_str().unwrap(),
            &id,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(o.success());
    let st = f.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(read(&pidfile), st["pid"].to_string());
    // created: the user's program has not run yet, the init is waiting.
    let comm = read(format!("/proc/{}/comm", st["pid"]));
    assert_ne!(comm.trim(), "sleep");
    assert!(f.rt(&["start", &id]).status.success());
    assert_eq!(f.state(&id)["status"], "running");
    let o = f.rt(&["start", &id]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is running: cannot start"));
    assert!(f.rt(&["kill", &id, "KILL"]).status.success());
    assert!(f.wait_stopped(&id, Duration::from_secs(5)));
    let list = String::from_utf8_lossy(&f.rt(&["list"]).stdout).into_owned();
    assert!(list.contains(&id) && list.contains("stopped"), "{list}");
    assert!(f.rt(&["delete", &id]).status.success());
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_host_uid() {
    let f = Fixture::new("userns");
    let id = f.id("c");
    let mut cfg = f.config(&id, &["sh", "-c", "id -u; cat /proc/self/uid_map; sleep 2"]);
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    cfg["linux"]["uidMappings"] = map.clone();
    cfg["linux"]["gidMappings"] = map;
    let b = f.bundle(&id, &cfg);
    let child = f
        .cmd(&["run", "--bundle", b.to_str().unwrap(), &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While it sleeps, the host sees the init as uid 100000.
    let mut host_uid = None;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        let o = f.rt(&["state", &id]);
        if let Ok(st) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
            if let Some(pid) = st["pid"].as_i64() {
                if st["status"] == "running" {
                    let s = read(format!("/proc/{pid}/status"));
                    host_uid = s
                        .lines()
                        .find(|l| l.starts_with("Uid:"))
                        .map(|l| l.to_string());
                    break;
                }
            }
        }
    }
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "root inside: {out}");
    let m: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(m, vec!["0", "100000", "65536"]);
    let host_uid = host_uid.expect("saw the running container");
    assert!(host_uid.contains("100000"), "{host_uid}");
}

#[test]
fn hooks_run_at_their_points_with_the_state() {
    let f = Fixture::new("hooks");
    let id = f.id("c");
    let out_dir = f.tmp.path().join("hookout");
    std::fs::create_dir_all(&out_dir).unwrap();
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}.json", out_dir.display())]});
    let mut cfg = f.config(&id, &["cat", "/tmp/started"]);
    cfg["hooks"] = json!({
        "createRuntime": [hook("createRuntime")],
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/null"]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo inside > /tmp/started"]}],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, "inside\n",
        "startContainer ran in the container before the process"
    );
    for name in ["createRuntime", "poststart", "poststop"] {
        let v: serde_json::Value =
            serde_json::from_str(&read(out_dir.join(format!("{name}.json")))).unwrap();
        assert_eq!(v["id"], id.as_str(), "{name}");
        assert!(v["pid"].as_i64().unwrap() > 0, "{name}");
    }
    // A failing createRuntime hook aborts create, with the hook named.
    let id = f.id("bad");
    let mut cfg = f.config(&id, &["true"]);
    cfg["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    let (code, _, err) = f.run(&id, &cfg);
    assert_eq!(code, 1);
    assert!(
        err.contains("createRuntime hook /bin/false failed"),
        "{err}"
    );
    assert!(!f.root.join(&id).exists());
}

/// Accepts one connection on a console socket and returns the pty master it carries.
fn console_receiver(sock: &std::path::Path) -> std::thread::JoinHandle<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || -> OwnedFd {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&conn),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the fd was just received and is owned by nobody else.
                return unsafe { OwnedFd::from_raw_fd(fds[0]) };
            }
        }
        panic!("no fd received");
    })
}

/// Everything the terminal showed until its last user closed it.
fn read_terminal(master: std::os::fd::OwnedFd) -> String {
    let mut out = Vec::new();
    let mut file = std::fs::File::from(master);
    let mut buf = [0u8; 1024];
    loop {
        match std::io::Read::read(&mut file, &mut buf) {
            Ok(0) | Err(_) => break, // EIO once the slave side is closed
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn terminal_goes_to_the_console_socket() {
    let f = Fixture::new("tty");
    let id = f.id("c");
    let mut cfg = f.config(&id, &["sh", "-c", "tty; echo hello-from-tty"]);
    cfg["process"]["terminal"] = json!(true);
    let sock = f.tmp.path().join("console.sock");
    let receiver = console_receiver(&sock);
    let b = f.bundle(&id, &cfg);
    let o = f
        .cmd(&[
            "create",
            "--bundle",
            b.to_str().unwrap(),
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let master = receiver.join().unwrap();
    assert!(f.rt(&["start", &id]).status.success());
    let out = read_terminal(master);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("hello-from-tty"), "{out}");
    f.delete(&id);
}

#[test]
fn exec_with_a_terminal() {
    let f = Fixture::new("exectty");
    let id = f.id("c");
    let cfg = f.config(&id, &["sleep", "60"]);
    f.start_detached(&id, &cfg);
    let sock = f.tmp.path().join("exec-console.sock");
    let receiver = console_receiver(&sock);
    let (code, _, err) = f.exec(
        &id,
        &[
            "-t",
            "--console-socket",
            sock.to_str().unwrap(),
            "sh",
            "-c",
            "tty; echo exec-tty",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let out = read_terminal(receiver.join().unwrap());
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("exec-tty"), "{out}");
    // -t without a socket is refused clearly.
    let (code, _, err) = f.exec(&id, &["-t", "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("--console-socket"), "{err}");
    f.delete(&id);
}

#[test]
fn process_attributes_are_applied() {
    let f = Fixture::new("procattr");
    let id = f.id("c");
    let script = "pwd; echo $FOO; umask; ulimit -n; cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status";
    let mut cfg = f.config(&id, &["sh", "-c", script]);
    cfg["process"]["cwd"] = json!("/tmp/work/dir");
    cfg["process"]["env"] = json!(["PATH=/bin:/sbin", "FOO=bar baz"]);
    cfg["process"]["user"]["umask"] = json!(0o077);
    cfg["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    cfg["process"]["oomScoreAdj"] = json!(300);
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            "/tmp/work/dir",
            "bar baz",
            "0077",
            "256",
            "300",
            "NoNewPrivs:\t1"
        ],
        "{out}"
    );
}

#[test]
fn an_rlimit_above_the_hosts_hard_limit_is_a_clear_error() {
    let f = Fixture::new("rlimit");
    let id = f.id("c");
    let mut cfg = f.config(&id, &["true"]);
    let huge: u64 = 1 << 40;
    cfg["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": huge, "soft": huge}]);
    let (code, _, err) = f.run(&id, &cfg);
    assert_eq!(code, 1);
    assert!(
        err.contains("RlimitNofile") && err.contains("CAP_SYS_RESOURCE"),
        "{err}"
    );
    assert!(!f.root.join(&id).exists());
}

#[test]
fn pause_freezes_and_resume_thaws_and_stats_report_usage() {
    let f = Fixture::new("pause");
    let id = f.id("c");
    let cfg = f.config(&id, &["sh", "-c", "while :; do :; done"]);
    f.start_detached(&id, &cfg);
    let stats = |f: &Fixture| -> serde_json::Value {
        let o = f.rt(&["stats", &id]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert!(f.rt(&["pause", &id]).status.success());
    assert_eq!(f.state(&id)["status"], "paused");
    let a = stats(&f)["cpu_usage_ns"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let b = stats(&f)["cpu_usage_ns"].as_u64().unwrap();
    assert_eq!(a, b, "no CPU used while paused");
    assert!(f.rt(&["resume", &id]).status.success());
    assert_eq!(f.state(&id)["status"], "running");
    std::thread::sleep(Duration::from_millis(300));
    let s = stats(&f);
    assert!(s["cpu_usage_ns"].as_u64().unwrap() > b);
    assert_eq!(s["pids_current"], 1);
    assert!(s["memory_usage"].as_u64().unwrap() > 0);
    let ps: Vec<i64> =
        serde_json::from_slice(&f.rt(&["ps", "--format", "json", &id]).stdout).unwrap();
    assert_eq!(ps, vec![f.state(&id)["pid"].as_i64().unwrap()]);
    f.delete(&id);
}

#[test]
fn run_forwards_sigterm_to_the_container() {
    let f = Fixture::new("sigfwd");
    let id = f.id("c");
    let cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; while :; do sleep 0.05; done",
        ],
    );
    let b = f.bundle(&id, &cfg);
    let child = f
        .cmd(&["run", "--bundle", b.to_str().unwrap(), &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        let o = f.rt(&["state", &id]);
        if String::from_utf8_lossy(&o.stdout).contains("\"running\"") {
            running = true;
            break;
        }
    }
    assert!(running);
    std::thread::sleep(Duration::from_millis(100)); // let the trap be installed
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got-term\n");
    assert!(!f.root.join(&id).exists(), "run deleted the container");
}

/// On a hybrid host the cgroup2 tree has no controllers, but its core interface is real:
/// a container placed there (BERTH_CGROUP_VERSION=v2) is joined, counted, frozen,
/// thawed and removed through it; limits are refused with a clear error.
#[test]
fn v2_manager_drives_a_container_on_the_real_cgroup2_tree() {
    let layout = berth_engine::cgroups::layout::host_layout().unwrap();
    let v2root = match &layout {
        berth_engine::cgroups::Layout::Unified { root } => root.clone(),
        berth_engine::cgroups::Layout::V1 {
            unified: Some(u), ..
        } => u.clone(),
        _ => {
            eprintln!("no cgroup2 mount: skipped");
            return;
        }
    };
    let f = Fixture::new("v2");
    let id = f.id("c");
    let cfg = f.config(&id, &["sh", "-c", "while :; do :; done"]);
    let b = f.bundle(&id, &cfg);
    let o = f
        .cmd(&["create", "--bundle", b.to_str().unwrap(), &id])
        .env("BERTH_CGROUP_VERSION", "v2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(o.success());
    assert!(f.rt(&["start", &id]).status.success());
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let cg = read(format!("/proc/{pid}/cgroup"));
    assert!(cg.contains(&format!("0::/{id}\n")), "{cg}");
    let dir = v2root.join(&id);
    assert_eq!(read(dir.join("cgroup.procs")).trim(), pid.to_string());
    assert!(f.rt(&["pause", &id]).status.success());
    assert!(read(dir.join("cgroup.events")).contains("frozen 1"));
    assert!(f.rt(&["resume", &id]).status.success());
    assert!(read(dir.join("cgroup.events")).contains("frozen 0"));
    let st: serde_json::Value = serde_json::from_slice(&f.rt(&["stats", &id]).stdout).unwrap();
    assert_eq!(st["pids_current"], 1);
    f.delete(&id);
    assert!(!dir.exists(), "v2 group removed");

    let id = f.id("limit");
    let mut cfg = f.config(&id, &["true"]);
    cfg["linux"]["resources"] = json!({"memory": {"limit": 1 << 25}});
    let b = f.bundle(&id, &cfg);
    let o = f
        .cmd(&["create", "--bundle", b.to_str().unwrap(), &id])
        .env("BERTH_CGROUP_VERSION", "v2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if matches!(layout, berth_engine::cgroups::Layout::V1 { .. }) {
        assert!(!o.status.success());
        assert!(err.contains("memory controller is not available"), "{err}");
        assert!(!v2root.join(&id).exists());
        assert!(!f.root.join(&id).exists());
    }
}

/// Unmounts a host mount made by a test, even when the test fails.
struct HostMount(std::path::PathBuf);
impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn recursive_read_only_bind_protects_submounts_too() {
    let f = Fixture::new("rro");
    let src = f.tmp.path().join("data");
    let sub = src.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(src.join("top.txt"), "top").unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let _guard = HostMount(sub.clone());
    std::fs::write(sub.join("inner.txt"), "inner").unwrap();
    let id = f.id("c");
    let script = "cat /data/top.txt /data/sub/inner.txt; echo; \
                  touch /data/x; echo top=$?; touch /data/sub/x; echo sub=$?; \
                  touch /rw/sub/y; echo rw=$?";
    let mut cfg = f.config(&id, &["sh", "-c", script]);
    let mounts = cfg["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
    );
    mounts.push(json!({"destination": "/rw", "type": "bind", "source": src, "options": ["rbind"]}));
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("topinner"), "{out}");
    assert!(out.contains("top=1"), "{out}");
    assert!(
        out.contains("sub=1"),
        "the submount is read-only too: {out}"
    );
    assert!(out.contains("rw=0"), "a plain rbind stays writable: {out}");
    assert!(sub.join("y").exists());
    // The container's mounts never appear on the host.
    let mi = read("/proc/self/mountinfo");
    assert_eq!(
        mi.matches(f.tmp.path().to_str().unwrap()).count(),
        1,
        "only the test's own tmpfs: {mi}"
    );
}

#[test]
fn spec_writes_configs_that_run() {
    let f = Fixture::new("spec");
    for (n, flag) in [("runc", None), ("docker", Some("--docker"))] {
        let id = f.id(n);
        let b = f.tmp.path().join(format!("spec-{n}"));
        std::fs::create_dir_all(&b).unwrap();
        let mut args = vec!["spec", "--bundle", b.to_str().unwrap()];
        args.extend(flag);
        assert!(f.rt(&args).status.success());
        let again = f.rt(&args);
        assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
        let mut cfg: serde_json::Value =
            serde_json::from_str(&read(b.join("config.json"))).unwrap();
        cfg["root"]["path"] = json!(f.rootfs);
        cfg["process"]["args"] = json!(["sh", "-c", "echo ok; grep -c . /proc/self/mounts"]);
        let (code, out, err) = f.run(&id, &cfg);
        assert_eq!(code, 0, "{n}: {err}");
        assert!(out.starts_with("ok\n"), "{n}: {out}");
    }
}

#[test]
fn device_rules_let_mknod_through_but_not_open() {
    let f = Fixture::new("devices");
    // A block device node (loop0), made inside the container on /dev (no nodev there).
    let script =
        "mknod /dev/disk b 7 0; echo mknod=$?; head -c 1 /dev/disk >/dev/null; echo open=$?; \
                  head -c 1 /dev/zero | wc -c";
    let id = f.id("rules");
    let mut cfg = f.config(&id, &["sh", "-c", script]);
    cfg["linux"]["resources"] =
        json!({"devices": berth_engine::runtime::defaults::DOCKER_DEVICE_RULES()});
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mknod=0"), "{out}");
    assert!(out.contains("open=1"), "{out}");
    assert!(
        err.contains("Operation not permitted"),
        "the device cgroup refuses: {err}"
    );
    assert!(out.ends_with("1\n"), "allowed devices still work: {out}");
    // Control: without the rules the kernel gets as far as the device itself.
    let id = f.id("norules");
    let cfg = f.config(&id, &["sh", "-c", script]);
    let (_, _, err) = f.run(&id, &cfg);
    assert!(!err.contains("Operation not permitted"), "{err}");
}

#[test]
fn exec_enters_a_user_namespaced_container() {
    let f = Fixture::new("userns-exec");
    let id = f.id("c");
    let mut cfg = f.config(&id, &["sleep", "60"]);
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    cfg["linux"]["uidMappings"] = map.clone();
    cfg["linux"]["gidMappings"] = map;
    let pid = f.start_detached(&id, &cfg);
    let (code, out, err) = f.exec(
        &id,
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        vec!["0", "200000", "65536"]
    );
    let host_view = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_eq!(lines[2], host_view.to_str().unwrap());
    f.delete(&id);
}

#[test]
fn sysctls_are_set_even_with_a_read_only_proc_sys() {
    let f = Fixture::new("sysctl");
    let id = f.id("c");
    let mut cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv4/ip_forward; echo w=$?",
        ],
    );
    cfg["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let host_before = read("/proc/sys/net/ipv4/ip_forward");
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, "1\nw=1\n",
        "set for the container, then read-only: {err}"
    );
    assert_eq!(
        read("/proc/sys/net/ipv4/ip_forward"),
        host_before,
        "the host's is untouched"
    );
}

#[test]
fn the_container_sees_its_own_cgroup_read_only() {
    let f = Fixture::new("cgview");
    let id = f.id("c");
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; grep memory /proc/self/cgroup; \
                  mkdir /sys/fs/cgroup/memory/x; echo mkdir=$?";
    let mut cfg = f.config(&id, &["sh", "-c", script]);
    cfg["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    }));
    cfg["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}});
    let (code, out, err) = f.run(&id, &cfg);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], (64u64 << 20).to_string(), "its own limit: {out}");
    assert!(
        lines[1].ends_with(":memory:/"),
        "the cgroup namespace root is its group: {out}"
    );
    assert_eq!(lines[2], "mkdir=1", "read-only: {out} {err}");
}
