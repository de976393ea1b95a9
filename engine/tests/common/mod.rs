//! Fixture for the runtime's end-to-end tests: a temporary state root, a busybox
//! rootfs, bundles, and a Drop guard that force-deletes every container it made.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub rootfs: PathBuf,
    pub prefix: String,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Fixture {
    /// `name` keeps IDs (and so cgroup paths) apart between tests.
    pub fn new(name: &str) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .unwrap();
        let root = tmp.path().join("state");
        // Containers outlive the `create` that made them; make them our orphans so
        // Drop can reap them (this host's PID 1 does not reap).
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let rootfs = tmp.path().join("rootfs");
        berth_tests::busybox_rootfs(&rootfs).unwrap();
        Fixture {
            prefix: format!("berth-e2e-{name}-{}", std::process::id()),
            tmp,
            root,
            rootfs,
            ids: Default::default(),
        }
    }

    pub fn id(&self, n: &str) -> String {
        let id = format!("{}-{n}", self.prefix);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A runc-like config for `args`: new namespaces, the usual mounts, read-only root
    /// with a tmpfs /tmp, Docker's default capabilities, the default masked paths.
    pub fn config(&self, id: &str, args: &[&str]) -> Value {
        let caps = [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ];
        json!({
            "ociVersion": "1.0.2",
            "root": {"path": self.rootfs, "readonly": true},
            "process": {
                "args": args,
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": true,
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
            },
            "hostname": "berthbox",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
            ],
            "linux": {
                "cgroupsPath": format!("/{id}"),
                "namespaces": [
                    {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                    {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
                ],
                "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
            }
        })
    }

    /// Writes `cfg` as the bundle of `id` and returns the bundle directory.
    pub fn bundle(&self, id: &str, cfg: &Value) -> PathBuf {
        let b = self.tmp.path().join("bundles").join(id);
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(
            b.join("config.json"),
            serde_json::to_vec_pretty(cfg).unwrap(),
        )
        .unwrap();
        b
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(RUNTIME);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Runs berth-runtime with `args` and captures its output.
    pub fn rt(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `run` a container to completion: (exit code, stdout, stderr).
    pub fn run(&self, id: &str, cfg: &Value) -> (i32, String, String) {
        let b = self.bundle(id, cfg);
        let o = self.rt(&["run", "--bundle", b.to_str().unwrap(), id]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// create + start a long-running container; its stdio goes to /dev/null so the
    /// runtime's pipes do not stay open. Returns the init's host pid.
    pub fn start_detached(&self, id: &str, cfg: &Value) -> i32 {
        let b = self.bundle(id, cfg);
        // Not a pipe: the container inherits it and would hold it open.
        let errf = self.tmp.path().join(format!("{id}.create.err"));
        let o = self
            .cmd(&["create", "--bundle", b.to_str().unwrap(), id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errf).unwrap())
            .status()
            .unwrap();
        assert!(o.success(), "create failed: {}", read(&errf));
        let o = self.rt(&["start", id]);
        assert!(
            o.status.success(),
            "start failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        self.state(id)["pid"].as_i64().unwrap() as i32
    }

    pub fn state(&self, id: &str) -> Value {
        let o = self.rt(&["state", id]);
        assert!(
            o.status.success(),
            "state failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// `exec` a command and capture its output.
    pub fn exec(&self, id: &str, args: &[&str]) -> (i32, String, String) {
        let mut a = vec!["exec", id];
        a.extend_from_slice(args);
        let o = self.rt(&a);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    pub fn wait_stopped(&self, id: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.state(id)["status"] == "stopped" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn delete(&self, id: &str) {
        let pid = self.init_pid(id);
        let o = self.rt(&["delete", "--force", id]);
        reap(pid);
        assert!(
            o.status.success(),
            "delete failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn init_pid(&self, id: &str) -> Option<i32> {
        self.cmd(&["state", id])
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .and_then(|v| v["pid"].as_i64())
            .map(|p| p as i32)
    }

    /// The directory of controller `ctl` for cgroup path `/id` on this v1 host.
    pub fn cgroup_v1(&self, ctl: &str, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup").join(ctl).join(id)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let pid = self.init_pid(id);
            let _ = self
                .cmd(&["delete", "--force", id])
                .stderr(Stdio::null())
                .output();
            reap(pid);
        }
    }
}

/// Reaps a container's init that came to us as subreaper (only that pid: under
/// `cargo test` other tests' children in this process are not ours to take).
fn reap(pid: Option<i32>) {
    if let Some(pid) = pid {
        // SAFETY: waitpid on one pid, non-blocking.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

/// Every cgroup directory named `name` under the host's hierarchies.
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in rd.flatten() {
            let p = h.path().join(name);
            if p.exists() {
                out.push(p);
            }
        }
    }
    out
}

pub fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}
