//! What the end-to-end stack tests share (stack_e2e, stack_cli_e2e, faults, build_e2e, …): a project
//! directory with its own BERTH_ROOT, BERTH_RUN and busybox image ([`Stack`]), a guard
//! that runs `berth down -v` however the test ends, and the check that nothing of the
//! stack is left on the host, with `berth system check` as one more witness.
#![allow(dead_code)] // each test file uses its own part

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub project: String,
    /// Every container ID seen in the store, to check their cgroups are gone at the end.
    seen: RefCell<BTreeSet<String>>,
}

pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

impl Stack {
    /// A project directory with a busybox image imported into its own store.
    pub fn new(project: &str, compose: &str) -> Stack {
        Self::with_root(project, compose, |_| {})
    }

    /// As `new`, with `prepare_root` run on the empty BERTH_ROOT before anything is
    /// written there (the full-disk test mounts a small tmpfs on it).
    pub fn with_root(project: &str, compose: &str, prepare_root: impl FnOnce(&Path)) -> Stack {
        let bin = Path::new(berth_bin()).parent().unwrap();
        for helper in ["berth-monitor", "berth-dns", "berth-runtime"] {
            assert!(
                bin.join(helper).exists(),
                "build the whole workspace first ({helper} beside berth)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .unwrap();
        let s = Stack {
            dir,
            project: project.to_string(),
            seen: RefCell::new(BTreeSet::new()),
        };
        for d in ["root", "run", "proj"] {
            std::fs::create_dir_all(s.dir.path().join(d)).unwrap();
        }
        prepare_root(&s.root());
        s.set_compose(compose);
        let tar = berth_tests::busybox_tar(s.dir.path()).unwrap();
        s.ok(&["image", "import", tar.to_str().unwrap(), "busybox:latest"]);
        let _ = std::fs::remove_file(&tar);
        s
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Lines of `berth ps` that say running.
    pub fn running(&self) -> usize {
        self.ok(&["ps"])
            .lines()
            .filter(|l| l.contains("running"))
            .count()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        self.remember_containers();
        out
    }

    /// A `berth` command of this stack, to spawn (pipes, a terminal) rather than run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.args(["-p", &self.project])
            .args(args)
            .current_dir(self.dir.path().join("proj"))
            .env("BERTH_ROOT", self.root())
            .env("BERTH_RUN", self.run_dir())
            .env_remove("BERTH_PROJECT_NAME")
            .env_remove("BERTH_FAULT");
        c
    }

    /// Notes the IDs of the containers in the store now.
    pub fn remember_containers(&self) {
        if let Ok(d) = std::fs::read_dir(self.root().join("containers")) {
            for e in d.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    self.seen.borrow_mut().insert(name);
                }
            }
        }
    }

    /// Runs a verb that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with_stderr(args).0
    }

    /// Runs a verb that must succeed; returns its stdout and stderr.
    pub fn ok_with_stderr(&self, args: &[&str]) -> (String, String) {
        let o = self.berth(args);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(o.status.success(), "berth {args:?} failed:\n{out}\n{err}");
        (out, err)
    }

    pub fn set_compose(&self, compose: &str) {
        std::fs::write(self.dir.path().join("proj/compose.yaml"), compose).unwrap();
    }

    /// Nothing of this project may be left on the host.
    pub fn assert_nothing_left(&self) {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let base = self.dir.path().display().to_string();
        let root = self.root().display().to_string();
        // The root itself may be a disk of its own (the full-disk test's tmpfs).
        let stray: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|mp| mp.starts_with(&base) && *mp != root)
            .collect();
        assert!(stray.is_empty(), "mounts left: {stray:?}");
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let ps = String::from_utf8_lossy(&ps.stdout);
        assert!(
            !ps.contains(&base),
            "a process of this stack is left:\n{ps}"
        );
        let netns = self.dir.path().join("run/netns");
        let left: Vec<_> = std::fs::read_dir(&netns)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "network namespaces left: {left:?}");
        let nft = Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        let nft = String::from_utf8_lossy(&nft.stdout);
        assert!(
            !nft.contains(&format!("{}_", self.project)),
            "nftables rules of the stack are left:\n{nft}"
        );
        // No container record, cgroup, rootfs, per-container file, network record or lease.
        self.remember_containers();
        let records: Vec<_> = std::fs::read_dir(self.root().join("containers"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        assert!(records.is_empty(), "container records left: {records:?}");
        for id in self.seen.borrow().iter() {
            for ctl in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
                let cg = ctl.path().join(format!("berth-{id}"));
                assert!(!cg.exists(), "cgroup {} is left", cg.display());
            }
        }
        for sub in ["etc", "rootfs", "networks", "userns"] {
            let left: Vec<_> = std::fs::read_dir(self.root().join(sub))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| !n.starts_with('.')) // Berth's lock files
                        .collect()
                })
                .unwrap_or_default();
            assert!(left.is_empty(), "{sub} left: {left:?}");
        }
        // No bridge of the default network (veths go with their namespaces, checked above).
        let net = berth_networking::Networking::with_nftables(berth_networking::Config {
            root: self.root(),
            run: self.dir.path().join("run"),
            ..berth_networking::Config::from_env()
        });
        let bridge = net.bridge_name(&format!("{}_default", self.project));
        let link = Command::new("ip")
            .args(["link", "show", &bridge])
            .output()
            .unwrap();
        assert!(!link.status.success(), "bridge {bridge} is left");
        // And Berth's own leak check agrees.
        // Only what is this root's: other tests' stacks run beside this one.
        let check = self
            .command(&["system", "check", "--root-only"])
            .output()
            .unwrap();
        assert_eq!(
            check.status.code(),
            Some(0),
            "berth system check after down:\n{}\n{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Every service whatever its profile, and orphans too: a test that failed
        // half-way may have left either.
        let _ = self.berth(&[
            "--profile",
            "*",
            "down",
            "-v",
            "--remove-orphans",
            "-t",
            "0",
        ]);
        // A root on a disk of its own (`with_root`) goes after the stack.
        let root = self.root().display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(root.as_str()))
        {
            let _ = Command::new("umount").args(["-l", &root]).status();
        }
    }
}

/// `sh -c SCRIPT` in a service (`berth exec -T`): (exit code, stdout + stderr).
pub fn sh(s: &Stack, service: &str, script: &str) -> (i32, String) {
    let o = s.berth(&["exec", "-T", service, "sh", "-c", script]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET of `/` on 127.0.0.1 (the host's busybox wget is not reliable here).
pub fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(2),
    )
    .ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    c.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    c.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.").then_some(body)
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A /24 of test block `10.BLOCK.0.0/16` for test `seed` (1..=10): each seed a band of
/// 25, picked by pid, so that parallel test processes (whose pids differ) and the tests
/// of one file (whose seeds differ) never pick the same subnet. Blocks: 214 stack_e2e, 222 build_e2e,
/// 224 stack_cli_e2e, 225 stack_e2e's example/volume/IPv6 tests, 226 faults, 228 the
/// hardening tests (escape.rs's gateway test, secrets), 233 stack_cli_e2e's extra_hosts
/// and profile tests.
pub fn subnet_in(block: u8, seed: u32) -> String {
    assert!((1..=10).contains(&seed));
    format!(
        "10.{block}.{}.0/24",
        (seed - 1) * 25 + std::process::id() % 25
    )
}

/// A /24 of the CLI tests' block (10.224.0.0/16).
pub fn cli_subnet(seed: u32) -> String {
    subnet_in(224, seed)
}

/// A /24 of the fault tests' block (10.226.0.0/16).
pub fn fault_subnet(seed: u32) -> String {
    subnet_in(226, seed)
}

/// Reads a non-blocking pty master until `want` shows up (20 s at most); returns all
/// that was read.
pub fn pty_read_until(master: &mut std::fs::File, want: &str) -> String {
    use std::io::Read;
    let mut seen = Vec::new();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(want) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no {want:?} on the terminal; read: {:?}",
            String::from_utf8_lossy(&seen)
        );
        match master.read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Waits (30 s at most) for `child`, which has a pty, to end, keeping the master
/// drained so its relay never blocks on a full terminal; returns its exit code.
pub fn pty_wait_exit(child: &mut std::process::Child, master: &mut std::fs::File) -> i32 {
    use std::io::Read;
    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        let mut buf = [0u8; 4096];
        let _ = master.read(&mut buf);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the command under the terminal did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
