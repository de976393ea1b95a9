//! Supervised containers end to end, as root on the real kernel, with the busybox
//! rootfs: the engine's container API, its monitors, logs, restart policies,
//! healthchecks. Every test has its own BERTH_ROOT/BERTH_RUN and a Drop guard that
//! force-removes its containers and checks nothing is left.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_engine::container::{
    ContainerConfig, Engine, ExecConfig, HealthStatus, HealthTest, Healthcheck, ImageConfig,
    LabelFilter, LogOptions, RestartPolicy, Status, Stream, WaitCondition,
};

const MONITOR: &str = env!("CARGO_BIN_EXE_berth-monitor");

struct Fixture {
    tmp: tempfile::TempDir,
    engine: Engine,
    rootfs: PathBuf,
    name: String,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        // Monitors come back to us when their first process exits, so we reap them.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let tmp = tempfile::Builder::new()
            .prefix("berth-mon-")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        berth_tests::busybox_rootfs(&rootfs).unwrap();
        let engine = Engine::new(tmp.path().join("root"), tmp.path().join("run"))
            .unwrap()
            .with_monitor_program(MONITOR);
        Fixture {
            tmp,
            engine,
            rootfs,
            name: format!("berth-{name}-{}", std::process::id()),
        }
    }

    fn config(&self, n: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            name: format!("{}-{n}", self.name),
            labels: [("io.berth.project".to_string(), self.name.clone())].into(),
            rootfs: self.rootfs.clone(),
            image: ImageConfig {
                cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
                ..Default::default()
            },
            stop_grace_period: Some(Duration::from_secs(2)),
            ..Default::default()
        }
    }

    fn run(&self, cfg: ContainerConfig) -> String {
        let id = self.engine.create(cfg).unwrap();
        self.engine.start(&id).unwrap();
        id
    }

    fn logs(&self, id: &str) -> Vec<String> {
        self.engine
            .logs(id, LogOptions::default())
            .unwrap()
            .map(|l| l.message)
            .collect()
    }

    /// Waits for `n` log lines; panics showing what came.
    fn wait_lines(&self, id: &str, n: usize) -> Vec<String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let l = self.logs(id);
            if l.len() >= n {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "wanted {n} log lines, got {:?} ({:?})",
            self.logs(id),
            self.engine.inspect(id).map(|i| (i.state, i.exit_code))
        );
    }

    /// Polls `f` until it holds or `secs` pass.
    fn eventually(&self, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out after {secs}s waiting for: {what}");
    }
}

fn reap() {
    // SAFETY: non-blocking waitpid on any child of this (one-test) process.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

/// Cgroup directories, sockets, records and mounts of a container.
fn leftovers(root: &Path, id: &str) -> Vec<String> {
    let mut out = vec![];
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = h.path().join(format!("berth-{id}"));
        if p.exists() {
            out.push(p.display().to_string());
        }
    }
    for p in [
        root.join("root/containers").join(id),
        root.join("run/containers").join(id),
        root.join("run/runtime").join(id),
    ] {
        if p.exists() {
            out.push(p.display().to_string());
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in mounts.lines().filter(|l| l.contains(id)) {
        out.push(l.to_string());
    }
    out
}

fn zombies_of_ours() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        if f[0] == "Z" && f[1] == me {
            out.push(stat);
        }
    }
    out
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let ids: Vec<String> = self
            .engine
            .list(&LabelFilter::new())
            .map(|l| l.into_iter().map(|c| c.id).collect())
            .unwrap_or_default();
        for id in &ids {
            if let Err(e) = self.engine.remove(id, true) {
                eprintln!("cleanup: removing {id}: {e}");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        reap();
        if !std::thread::panicking() {
            for id in &ids {
                let l = leftovers(self.tmp.path(), id);
                assert!(l.is_empty(), "left behind: {l:?}");
            }
            let z = zombies_of_ours();
            assert!(z.is_empty(), "zombies left: {z:?}");
        }
    }
}

#[test]
fn monitor_container_outlives_the_caller_and_keeps_logging() {
    let f = Fixture::new("detach");
    let cfg = f.config(
        "c",
        "trap 'echo got TERM; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    );
    let id = f.engine.create(cfg).unwrap();
    // The caller that starts it is a separate process that exits at once.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_from_another_process",
            "--ignored",
            "--nocapture",
        ])
        .env("BERTH_TEST_ROOT", f.tmp.path())
        .env("BERTH_TEST_ID", &id)
        .status()
        .unwrap();
    assert!(status.success());
    let info = f.engine.inspect(&id).unwrap();
    assert_eq!(info.state, Status::Running);
    let pid = info.pid.unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let n = f.logs(&id).len();
    f.eventually(20, "more log lines after the caller exited", || {
        f.logs(&id).len() >= n + 3
    });
    let lines = f.logs(&id);
    assert!(lines[0].starts_with("tick 0"), "{lines:?}");
    f.engine.stop(&id, None).unwrap();
    let info = f.engine.inspect(&id).unwrap();
    assert_eq!(info.state, Status::Exited);
    // The stop signal reached the program (PID 1 of its namespace, so only a handler
    // can act on it) and its exit code was recorded.
    assert_eq!(info.exit_code, Some(0));
    assert_eq!(f.logs(&id).last().unwrap(), "got TERM");
}

/// Run by the test above in a child process: starts a container and exits.
#[test]
#[ignore]
fn helper_start_from_another_process() {
    let (Ok(root), Ok(id)) = (
        std::env::var("BERTH_TEST_ROOT"),
        std::env::var("BERTH_TEST_ID"),
    ) else {
        return;
    };
    let root = PathBuf::from(root);
    let e = Engine::new(root.join("root"), root.join("run"))
        .unwrap()
        .with_monitor_program(MONITOR);
    e.start(&id).unwrap();
}

#[test]
fn monitor_exit_code_and_time_are_recorded() {
    let f = Fixture::new("exit");
    let id = f.run(f.config("c", "echo out; echo err >&2; exit 7"));
    let w = f
        .engine
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!((w.state, w.exit_code), (Status::Exited, Some(7)));
    let info = f.engine.inspect(&id).unwrap();
    assert!(info.finished_at.unwrap() >= info.started_at.unwrap());
    let lines: Vec<_> = f
        .engine
        .logs(&id, LogOptions::default())
        .unwrap()
        .map(|l| (l.stream, l.message))
        .collect();
    assert!(lines.contains(&(Stream::Stdout, "out".into())), "{lines:?}");
    assert!(lines.contains(&(Stream::Stderr, "err".into())), "{lines:?}");
    // Summary by label.
    let l = f
        .engine
        .list(&LabelFilter::new().with("io.berth.project", &f.name))
        .unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].exit_code, Some(7));
    assert!(f
        .engine
        .list(&LabelFilter::new().with("io.berth.project", "other"))
        .unwrap()
        .is_empty());
}

#[test]
fn monitor_bad_input_is_refused_with_a_reason() {
    let f = Fixture::new("bad");
    let mut c = f.config("c", "true");
    c.name = "bad name/x".into();
    assert!(f.engine.create(c).unwrap_err().to_string().contains("name"));
    let mut c = f.config("c", "true");
    c.rootfs = "/nonexistent-berth".into();
    assert!(f
        .engine
        .create(c)
        .unwrap_err()
        .to_string()
        .contains("rootfs"));
    let mut c = f.config("c", "true");
    c.stop_signal = Some("SIGNOPE".into());
    assert!(f
        .engine
        .create(c)
        .unwrap_err()
        .to_string()
        .contains("stop_signal"));
    let c = f.config("dup", "true");
    f.engine.create(c.clone()).unwrap();
    assert!(f
        .engine
        .create(c)
        .unwrap_err()
        .to_string()
        .contains("already used"));
    // A program that does not exist: start says why.
    let mut c = f.config("noprog", "true");
    c.image.cmd = vec!["/no/such/berth-prog".into()];
    let id = f.engine.create(c).unwrap();
    let e = f.engine.start(&id).unwrap_err().to_string();
    assert!(e.contains("berth-prog"), "{e}");
    assert!(matches!(
        f.engine.inspect("no-such-container"),
        Err(berth_engine::container::EngineError::NotFound(_))
    ));
}

#[test]
fn monitor_stop_escalates_to_sigkill_after_the_grace_period() {
    let f = Fixture::new("stopkill");
    let mut c = f.config(
        "c",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    );
    c.stop_grace_period = Some(Duration::from_millis(700));
    let id = f.run(c);
    f.eventually(20, "ready", || f.logs(&id).contains(&"ready".to_string()));
    let t = Instant::now();
    f.engine.stop(&id, None).unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(f.engine.inspect(&id).unwrap().exit_code, Some(137));
}

#[test]
fn monitor_on_failure_3_restarts_exactly_three_times() {
    let f = Fixture::new("onfail");
    let mut c = f.config("c", "echo run; exit 3");
    c.restart = RestartPolicy::OnFailure {
        max_retries: Some(3),
    };
    let id = f.run(c);
    let w = f
        .engine
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(w.exit_code, Some(3));
    let info = f.engine.inspect(&id).unwrap();
    assert_eq!(info.restart_count, 3);
    let runs = f.logs(&id).iter().filter(|l| *l == "run").count();
    assert_eq!(runs, 4, "one start and three restarts");
}

#[test]
fn monitor_always_restarts_after_a_crash_but_not_after_stop() {
    let f = Fixture::new("always");
    let mut c = f.config("c", "echo up; sleep 0.3; exit 1");
    c.restart = RestartPolicy::Always;
    let id = f.run(c);
    f.eventually(20, "two restarts", || {
        f.engine.inspect(&id).unwrap().restart_count >= 2
    });
    f.engine.stop(&id, None).unwrap();
    let info = f.engine.inspect(&id).unwrap();
    assert_eq!(info.state, Status::Exited);
    let n = info.restart_count;
    std::thread::sleep(Duration::from_secs(1));
    let info = f.engine.inspect(&id).unwrap();
    assert_eq!((info.state, info.restart_count), (Status::Exited, n));
}

#[test]
fn monitor_healthcheck_goes_starting_healthy_unhealthy() {
    let f = Fixture::new("health");
    // Healthy only once /tmp/ok exists, a second after start.
    let mut c = f.config(
        "c",
        "sleep 1; touch /tmp/ok; while true; do sleep 0.1; done",
    );
    c.mounts = vec![berth_engine::container::MountSpec::Tmpfs {
        target: "/tmp".into(),
        size: None,
        mode: None,
    }];
    c.healthcheck = Some(Healthcheck {
        test: HealthTest::CmdShell("test -e /tmp/ok && echo fine".into()),
        interval: Some(Duration::from_millis(200)),
        timeout: Some(Duration::from_secs(2)),
        retries: Some(2),
        start_period: Some(Duration::from_secs(30)),
        start_interval: Some(Duration::from_millis(100)),
    });
    let id = f.engine.create(c).unwrap();
    f.engine.start(&id).unwrap();
    assert_eq!(
        f.engine.inspect(&id).unwrap().health.unwrap().status,
        HealthStatus::Starting
    );
    let w = f
        .engine
        .wait(&id, WaitCondition::Healthy, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(w.health, Some(HealthStatus::Healthy));
    let h = f.engine.inspect(&id).unwrap().health.unwrap();
    assert_eq!(h.log.back().unwrap().output.trim(), "fine");
    // The probe starts failing.
    let o = f
        .engine
        .exec(
            &id,
            &ExecConfig {
                args: vec!["rm".into(), "/tmp/ok".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(o.exit_code, 0, "{}", String::from_utf8_lossy(&o.stderr));
    f.eventually(20, "unhealthy", || {
        f.engine.inspect(&id).unwrap().health.unwrap().status == HealthStatus::Unhealthy
    });
    assert_eq!(f.engine.inspect(&id).unwrap().state, Status::Running);
}

#[test]
fn monitor_hanging_probe_is_timed_out_and_the_container_lives() {
    let f = Fixture::new("hang");
    let mut c = f.config("c", "while true; do sleep 0.1; done");
    c.healthcheck = Some(Healthcheck {
        test: HealthTest::Cmd(vec!["sleep".into(), "100".into()]),
        interval: Some(Duration::from_millis(200)),
        timeout: Some(Duration::from_millis(300)),
        retries: Some(1),
        start_period: None,
        start_interval: None,
    });
    let id = f.run(c);
    f.eventually(20, "unhealthy by timeout", || {
        f.engine
            .inspect(&id)
            .unwrap()
            .health
            .is_some_and(|h| h.status == HealthStatus::Unhealthy)
    });
    let info = f.engine.inspect(&id).unwrap();
    let last = info.health.unwrap().log.back().unwrap().clone();
    assert_eq!(last.exit_code, -1);
    assert!(last.output.contains("timeout"), "{}", last.output);
    assert!(last.end.duration_since(last.start).unwrap() < Duration::from_secs(3));
    assert_eq!(info.state, Status::Running);
    // No probe left running in the container.
    let top = f.engine.top(&id).unwrap();
    assert!(!top.iter().any(|p| p.cmd.contains("sleep 100")), "{top:?}");
}

#[test]
fn monitor_logs_in_order_with_timestamps_tail_and_follow() {
    let f = Fixture::new("logs");
    let id = f.run(f.config(
        "c",
        "for i in 1 2 3 4 5; do echo line $i; done; sleep 0.5; echo late; sleep 0.3",
    ));
    // Follow from the start: every line, in order, and the stream ends with the container.
    let t = Instant::now();
    let followed: Vec<_> = f
        .engine
        .logs(
            &id,
            LogOptions {
                follow: true,
                ..Default::default()
            },
        )
        .unwrap()
        .collect();
    assert!(t.elapsed() < Duration::from_secs(10));
    let msgs: Vec<_> = followed.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["line 1", "line 2", "line 3", "line 4", "line 5", "late"]
    );
    assert!(followed.windows(2).all(|w| w[0].time <= w[1].time));
    let shown = followed[0].display(true);
    assert!(
        shown.ends_with(" line 1") && shown.contains('T') && shown.contains('Z'),
        "{shown}"
    );
    let tail: Vec<_> = f
        .engine
        .logs(
            &id,
            LogOptions {
                tail: Some(2),
                ..Default::default()
            },
        )
        .unwrap()
        .map(|l| l.message)
        .collect();
    assert_eq!(tail, ["line 5", "late"]);
    let since = followed[5].time;
    let late: Vec<_> = f
        .engine
        .logs(
            &id,
            LogOptions {
                since: Some(since),
                ..Default::default()
            },
        )
        .unwrap()
        .map(|l| l.message)
        .collect();
    assert_eq!(late, ["late"]);
}

fn zombies_in(f: &Fixture, id: &str) -> usize {
    f.engine
        .top(id)
        .unwrap()
        .iter()
        .filter(|p| p.state == 'Z')
        .count()
}

#[test]
fn monitor_init_reaps_an_orphaned_zombie() {
    let f = Fixture::new("init");
    // The inner shell leaves `sleep 0.2` behind as an orphan; it comes to PID 1.
    let script = "sh -c 'sleep 0.2 &'; echo spawned; exec sleep 100";
    let mut with = f.config("with", script);
    with.init = true;
    let with = f.run(with);
    let without = f.run(f.config("without", script));
    for id in [&with, &without] {
        f.eventually(20, "spawned", || {
            f.logs(id).contains(&"spawned".to_string())
        });
    }
    std::thread::sleep(Duration::from_millis(600));
    // Without init, PID 1 is `sleep 100`, which never waits: the orphan stays a zombie.
    assert_eq!(zombies_in(&f, &without), 1, "{:?}", f.engine.top(&without));
    assert_eq!(zombies_in(&f, &with), 0, "{:?}", f.engine.top(&with));
    // PID 1 is the init (a copy of the monitor), the program its child.
    let top = f.engine.top(&with).unwrap();
    let init = f.engine.inspect(&with).unwrap().pid.unwrap();
    let prog = top.iter().find(|p| p.cmd == "sleep 100").unwrap();
    assert_eq!(prog.ppid, init);
    // Signals are forwarded: the stop signal reaches `sleep`, which dies of it.
    let t = Instant::now();
    f.engine.stop(&with, Some(Duration::from_secs(20))).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(f.engine.inspect(&with).unwrap().exit_code, Some(143));
}

#[test]
fn monitor_pause_freezes_a_busy_loop_and_unpause_resumes_it() {
    let f = Fixture::new("pause");
    let id = f.run(f.config("c", "while :; do :; done"));
    let cpu = || f.engine.stats(&id).unwrap().cgroup.cpu_usage_ns.unwrap();
    std::thread::sleep(Duration::from_millis(200));
    f.engine.pause(&id).unwrap();
    assert_eq!(f.engine.inspect(&id).unwrap().state, Status::Paused);
    let a = cpu();
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu() - a;
    assert!(used < 5_000_000, "a frozen loop used {used} ns of CPU");
    f.engine.unpause(&id).unwrap();
    assert_eq!(f.engine.inspect(&id).unwrap().state, Status::Running);
    let a = cpu();
    std::thread::sleep(Duration::from_millis(1000));
    let used = cpu() - a;
    assert!(
        used > 20_000_000,
        "the loop used only {used} ns after unpause"
    );
    // Stop works on a paused container too.
    f.engine.pause(&id).unwrap();
    f.engine
        .stop(&id, Some(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(f.engine.inspect(&id).unwrap().state, Status::Exited);
}

#[test]
fn monitor_killed_is_noticed_and_its_container_can_be_removed() {
    let f = Fixture::new("lost");
    let id = f.run(f.config("c", "while true; do sleep 0.1; done"));
    let info = f.engine.inspect(&id).unwrap();
    let (mon, pid) = (info.monitor_pid.unwrap(), info.pid.unwrap());
    // SAFETY: kill with integer arguments, on the monitor we started.
    unsafe { libc::kill(mon, libc::SIGKILL) };
    f.eventually(20, "monitor gone", || {
        reap();
        !Path::new(&format!("/proc/{mon}")).exists()
    });
    let info = f.engine.inspect(&id).unwrap();
    assert_eq!(info.state, Status::Dead);
    assert!(info.error.unwrap().contains("monitor"));
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the container runs on"
    );
    f.engine
        .stop(&id, Some(Duration::from_millis(500)))
        .unwrap();
    reap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(f.engine.inspect(&id).unwrap().state, Status::Exited);
    f.engine.remove(&id, false).unwrap();
    assert!(leftovers(f.tmp.path(), &id).is_empty());
}

#[test]
fn monitor_config_reaches_the_container() {
    use berth_engine::container::{MountSpec, Resources, Ulimit};
    let f = Fixture::new("cfg");
    let host = f.tmp.path().join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("file"), "from host\n").unwrap();
    let mut c = f.config(
        "c",
        "id -u; id -g; pwd; echo $GREETING; hostname; cat /data/file; \
         touch /data/x 2>/dev/null && echo bind-rw || echo bind-ro; \
         touch /rootfile 2>/dev/null && echo root-rw || echo root-ro; \
         touch /scratch/x && echo tmpfs-rw; ulimit -n; \
         cat /proc/sys/net/ipv4/ip_forward; readlink /proc/self/ns/net; \
         grep CapEff /proc/self/status; sleep 100",
    );
    c.user = Some("nobody".into());
    c.working_dir = Some("/tmp".into());
    c.image.env = vec!["GREETING=image".into()];
    c.env = vec!["GREETING=hello".into()];
    c.hostname = Some("berth-box".into());
    c.read_only = true;
    c.mounts = vec![
        MountSpec::Bind {
            source: host.clone(),
            target: "/data".into(),
            read_only: true,
        },
        MountSpec::Tmpfs {
            target: "/scratch".into(),
            size: Some(1 << 20),
            mode: Some(0o1777),
        },
    ];
    c.ulimits = vec![Ulimit {
        name: "nofile".into(),
        soft: 512,
        hard: 512,
    }];
    c.sysctls = [("net.ipv4.ip_forward".to_string(), "1".to_string())].into();
    c.cap_drop = vec!["ALL".into()];
    c.resources = Resources {
        memory: Some(64 << 20),
        pids_limit: Some(50),
        cpu_shares: Some(512),
        ..Default::default()
    };
    let id = f.run(c);
    let out = f.wait_lines(&id, 13);
    assert_eq!(
        out[..12],
        [
            "65534",
            "65534",
            "/tmp",
            "hello",
            "berth-box",
            "from host",
            "bind-ro",
            "root-ro",
            "tmpfs-rw",
            "512",
            "1",
            out[11].as_str()
        ],
        "{out:?}"
    );
    assert_eq!(out[12], "CapEff:\t0000000000000000");
    let cg = |ctl: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/berth-{id}/{file}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        cg("memory", "memory.limit_in_bytes"),
        (64 << 20).to_string()
    );
    assert_eq!(cg("pids", "pids.max"), "50");
    assert_eq!(cg("cpu", "cpu.shares"), "512");
    // A second container joins the first one's network namespace by path.
    let pid = f.engine.inspect(&id).unwrap().pid.unwrap();
    let mut c2 = f.config("joiner", "readlink /proc/self/ns/net");
    c2.namespaces.net = Some(format!("/proc/{pid}/ns/net").into());
    let id2 = f.run(c2);
    f.engine
        .wait(&id2, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(f.logs(&id2), [out[11].clone()]);
    assert_ne!(
        std::fs::read_link("/proc/self/ns/net")
            .unwrap()
            .to_string_lossy(),
        out[11]
    );
}

/// Resident memory (VmRSS) of a process in KiB.
fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[test]
fn monitor_100_containers_start_stop_and_leave_nothing_behind() {
    let f = Fixture::new("hundred");
    let mut ids = vec![];
    for i in 0..100 {
        let mut c = f.config(
            &format!("c{i}"),
            "trap 'exit 0' TERM; echo up; sleep 1000 & wait",
        );
        c.stop_grace_period = Some(Duration::from_secs(5));
        ids.push(f.run(c));
    }
    let running = f
        .engine
        .list(&LabelFilter::new().with("io.berth.project", &f.name))
        .unwrap();
    assert_eq!(running.len(), 100);
    assert!(running.iter().all(|c| c.state == Status::Running));
    let monitors: Vec<i32> = ids
        .iter()
        .map(|id| f.engine.inspect(id).unwrap().monitor_pid.unwrap())
        .collect();
    let total: u64 = monitors.iter().map(|p| rss_kib(*p)).sum();
    eprintln!(
        "100 monitors: {} KiB resident in all, {} KiB each on average",
        total,
        total / 100
    );
    for id in &ids {
        f.engine.stop(id, None).unwrap();
        f.engine.remove(id, false).unwrap();
    }
    reap();
    for id in &ids {
        let l = leftovers(f.tmp.path(), id);
        assert!(l.is_empty(), "left behind: {l:?}");
    }
    for m in monitors {
        assert!(
            !Path::new(&format!("/proc/{m}")).exists(),
            "monitor {m} lives on"
        );
    }
    assert!(zombies_of_ours().is_empty());
    let sockets = std::fs::read_dir(f.tmp.path().join("run/containers"))
        .unwrap()
        .count();
    assert_eq!(sockets, 0);
}

#[test]
fn monitor_logs_rotate_and_survive_a_restart() {
    let f = Fixture::new("rotate");
    let mut c = f.config(
        "c",
        "i=0; while [ $i -lt 300 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done",
    );
    c.log.max_size = Some(4096);
    c.log.max_file = Some(3);
    let id = f.run(c);
    f.engine
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    let log = f.engine.inspect(&id).unwrap().log_path;
    let dir = log.parent().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("container.log"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["container.log", "container.log.1", "container.log.2"]
    );
    for f in &files {
        assert!(std::fs::metadata(dir.join(f)).unwrap().len() <= 4096);
    }
    let lines = f.logs(&id);
    assert!(lines.len() < 300, "old lines rotated away");
    assert_eq!(
        lines.last().unwrap(),
        "line-299-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    );
    // In order, no gaps, across the three files.
    let nums: Vec<usize> = lines
        .iter()
        .map(|l| l.split('-').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    // A new monitor (start again) appends to the same log.
    f.engine.start(&id).unwrap();
    f.engine
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    let again = f.logs(&id);
    assert_eq!(
        again.last().unwrap(),
        "line-299-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    );
}

#[test]
fn monitor_restart_policies_come_back_after_a_reboot() {
    let f = Fixture::new("reboot");
    let mk = |n: &str, p: RestartPolicy| {
        let mut c = f.config(n, "echo booted; exec sleep 1000");
        c.restart = p;
        c.stop_grace_period = Some(Duration::from_millis(200));
        f.run(c)
    };
    let always = mk("always", RestartPolicy::Always);
    let unless = mk("unless", RestartPolicy::UnlessStopped);
    let stopped = mk("stopped", RestartPolicy::UnlessStopped);
    let no = mk("no", RestartPolicy::No);
    f.engine.stop(&stopped, None).unwrap();
    // The "reboot": every monitor and container dies at once, BERTH_RUN is emptied,
    // cgroups vanish; BERTH_ROOT stays.
    for id in [&always, &unless, &no] {
        let i = f.engine.inspect(id).unwrap();
        // SAFETY: kill with integer arguments.
        unsafe { libc::kill(i.monitor_pid.unwrap(), libc::SIGKILL) };
    }
    let run = f.tmp.path().join("run");
    let rt = berth_engine::runtime::Runtime::new(run.join("runtime")).quiet();
    for id in [&always, &unless, &no] {
        rt.delete(id, true).unwrap();
    }
    reap();
    std::fs::remove_dir_all(&run).unwrap();
    let e = Engine::new(f.tmp.path().join("root"), &run)
        .unwrap()
        .with_monitor_program(MONITOR);
    assert_eq!(e.inspect(&always).unwrap().state, Status::Exited);
    let mut back = e.recover().unwrap();
    back.sort();
    let mut want = vec![always.clone(), unless.clone()];
    want.sort();
    assert_eq!(back, want);
    for id in [&always, &unless] {
        assert_eq!(e.inspect(id).unwrap().state, Status::Running);
        assert_eq!(f.wait_lines(id, 2), ["booted", "booted"]);
    }
    assert_eq!(e.inspect(&no).unwrap().state, Status::Exited);
    assert_eq!(e.inspect(&stopped).unwrap().state, Status::Exited);
}

#[test]
fn monitor_attach_streams_the_live_output() {
    let f = Fixture::new("attach");
    let id = f.run(f.config(
        "c",
        "sleep 0.3; for i in 1 2 3; do echo live $i; sleep 0.1; done; echo oops >&2",
    ));
    let got: Vec<_> = f
        .engine
        .attach(&id)
        .unwrap()
        .map(|l| (l.stream, l.message))
        .collect();
    assert_eq!(
        got,
        [
            (Stream::Stdout, "live 1".to_string()),
            (Stream::Stdout, "live 2".to_string()),
            (Stream::Stdout, "live 3".to_string()),
            (Stream::Stderr, "oops".to_string()),
        ]
    );
    f.engine
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    assert!(f.engine.attach(&id).is_err());
}

#[test]
fn monitor_tty_gives_the_container_a_terminal_and_logs_its_output() {
    let f = Fixture::new("tty");
    let mut c = f.config("c", "tty; test -t 0 && echo stdin-is-a-tty; echo done");
    c.tty = true;
    let id = f.run(c);
    let w = f
        .engine
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(w.exit_code, Some(0));
    let lines: Vec<String> = f
        .logs(&id)
        .iter()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    assert_eq!(lines, ["/dev/pts/0", "stdin-is-a-tty", "done"]);
}

#[test]
fn monitor_exec_stats_and_top_see_the_running_container() {
    let f = Fixture::new("exec");
    let mut c = f.config("c", "echo started; exec sleep 1000");
    c.env = vec!["FROM_CONTAINER=yes".into()];
    c.init = true;
    let id = f.run(c);
    let o = f
        .engine
        .exec(
            &id,
            &ExecConfig {
                args: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo $FROM_CONTAINER $EXTRA $(id -u) $(pwd); echo err >&2; exit 3".into(),
                ],
                env: vec!["EXTRA=more".into()],
                user: Some("65534".into()),
                working_dir: Some("/tmp".into()),
            },
        )
        .unwrap();
    assert_eq!(o.exit_code, 3);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "yes more 65534 /tmp\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    let bad = f
        .engine
        .exec(
            &id,
            &ExecConfig {
                args: vec!["/no/such/berth-prog".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_ne!(bad.exit_code, 0);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("berth-prog"));
    let s = f.engine.stats(&id).unwrap();
    assert_eq!(s.pids.len(), 2, "init and sleep: {:?}", s.pids);
    assert!(s.cgroup.memory_usage.unwrap() > 0);
    let top = f.engine.top(&id).unwrap();
    assert!(top.iter().any(|p| p.cmd == "sleep 1000"), "{top:?}");
    // Log filters: until before the first line gives nothing.
    let first = f
        .engine
        .logs(&id, LogOptions::default())
        .unwrap()
        .next()
        .unwrap();
    let none: Vec<_> = f
        .engine
        .logs(
            &id,
            LogOptions {
                until: Some(first.time - Duration::from_millis(1)),
                ..Default::default()
            },
        )
        .unwrap()
        .collect();
    assert!(none.is_empty());
    f.engine.stop(&id, None).unwrap();
    assert!(f.engine.exec(&id, &ExecConfig::default()).is_err());
    assert!(f.engine.stats(&id).is_err());
}

#[test]
fn monitor_engine_is_usable_from_async_code() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<Engine>();
    send::<berth_engine::container::LogStream>();
    send::<berth_engine::container::Attach>();
    send_sync::<berth_engine::container::EngineError>();
}

#[test]
fn monitor_devices_and_privileged_reach_the_container() {
    use berth_engine::container::DeviceSpec;
    let f = Fixture::new("dev");
    let mut c = f.config(
        "dev",
        "echo hi > /dev/berth-null && echo wrote; ls -l /dev/berth-null | cut -c1",
    );
    c.devices = vec![DeviceSpec {
        host_path: "/dev/null".into(),
        container_path: "/dev/berth-null".into(),
        permissions: "rwm".into(),
    }];
    let id = f.run(c);
    f.engine
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(f.logs(&id), ["wrote", "c"]);
    let mut p = f.config(
        "priv",
        "grep CapEff /proc/self/status; wc -c < /proc/timer_list",
    );
    p.privileged = true;
    let id = f.run(p);
    f.engine
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    let out = f.logs(&id);
    // Everything in this host's bounding set (which lacks CAP_SYS_RESOURCE), and no
    // masked /proc paths.
    let host = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(out[0], format!("CapEff:\t{host}"), "{out:?}");
    assert_ne!(out[1], "0", "{out:?}");
    let mut bad = f.config("bad", "true");
    bad.devices = vec![DeviceSpec {
        host_path: "/etc/passwd".into(),
        container_path: "/dev/x".into(),
        permissions: "rw".into(),
    }];
    let e = f.engine.create(bad).unwrap_err().to_string();
    assert!(
        e.contains("devices[0]") && e.contains("not a device"),
        "{e}"
    );
}

#[test]
fn monitor_healthcheck_start_period_forgives_early_failures() {
    let f = Fixture::new("startp");
    // Healthy only after a second; the start period covers that.
    let mut c = f.config("c", "sleep 1; touch /tmp/ready; exec sleep 1000");
    c.healthcheck = Some(Healthcheck {
        test: HealthTest::Cmd(vec!["test".into(), "-e".into(), "/tmp/ready".into()]),
        interval: Some(Duration::from_secs(30)),
        timeout: Some(Duration::from_secs(2)),
        retries: Some(1),
        start_period: Some(Duration::from_secs(5)),
        start_interval: Some(Duration::from_millis(100)),
    });
    let id = f.run(c);
    std::thread::sleep(Duration::from_millis(600));
    let h = f.engine.inspect(&id).unwrap().health.unwrap();
    assert_eq!(h.status, HealthStatus::Starting, "{h:?}");
    assert!(
        !h.log.is_empty() && h.log.iter().all(|p| p.exit_code == 1),
        "{h:?}"
    );
    // start_interval (not the 30 s interval) drives the probes until healthy.
    let w = f
        .engine
        .wait(&id, WaitCondition::Healthy, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(w.health, Some(HealthStatus::Healthy));
}

#[test]
fn monitor_survives_garbage_on_its_control_socket() {
    use std::io::{BufRead, BufReader, Write};
    let f = Fixture::new("garbage");
    let id = f.run(f.config("c", "exec sleep 1000"));
    let sock = f
        .tmp
        .path()
        .join("run/containers")
        .join(&id)
        .join("control.sock");
    for junk in [
        &b"not json\n"[..],
        b"{\"op\":\"kill\",\"signal\":999}\n",
        b"\xff\xfe\n",
        b"",
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(junk).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut line = String::new();
        let _ = BufReader::new(&s).read_line(&mut line);
        if !junk.is_empty() {
            assert!(line.contains("\"ok\":false"), "{junk:?} -> {line}");
        }
    }
    assert_eq!(f.engine.inspect(&id).unwrap().state, Status::Running);
    f.engine
        .kill(&id, nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let w = f
        .engine
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(w.exit_code, Some(137));
}

#[test]
fn monitor_embedded_form_runs_through_dispatch() {
    let f = Fixture::new("embed");
    let (root, run) = (f.tmp.path().join("root"), f.tmp.path().join("run"));
    let e = Engine::new(&root, &run)
        .unwrap()
        .with_monitor_command(MONITOR, &[berth_engine::monitor::EMBEDDED_ARG]);
    let id = e.create(f.config("c", "echo embedded; exit 4")).unwrap();
    e.start(&id).unwrap();
    let w = e
        .wait(&id, WaitCondition::Exited, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(w.exit_code, Some(4));
    assert_eq!(f.logs(&id), ["embedded"]);
    let o = std::process::Command::new(MONITOR)
        .arg("bogus")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usage"));
}

#[test]
fn monitor_concurrent_starts_give_one_monitor() {
    let f = Fixture::new("race");
    let id = f
        .engine
        .create(f.config("c", "echo once; exec sleep 1000"))
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| f.engine.start(&id).unwrap());
        }
    });
    let info = f.engine.inspect(&id).unwrap();
    assert_eq!(info.state, Status::Running);
    assert_eq!(f.wait_lines(&id, 1), ["once"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.logs(&id), ["once"], "started more than once");
    let monitors = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&id))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(monitors, 1);
}
