//! The lifecycle: create (two forks into new namespaces, the init waits), start (the
//! init execs), state, kill, delete (nothing left behind), exec, run.
//!
//! Process tree during create:
//!   runtime (parent) --fork--> intermediate: joins/unshares namespaces
//!                                 --fork--> init (PID 1 in a new pid namespace):
//!                                   mounts, pivot_root, waits on start.sock, execs
//! The intermediate exists because unshare(CLONE_NEWPID) and setns into a pid
//! namespace only affect children. No threads exist when we fork (no async runtime).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::capabilities;
use super::channel::{self, Channel, Msg};
use super::error::{errno, invalid, sys, Result, RuntimeError};
use super::hooks;
use super::namespaces;
use super::process::{self, ExecPlan};
use super::rootfs::{self, RootfsContext};
use super::spec::{self, Bundle};
use super::state::{pid_start_time, Record, StateRoot, Status};
use super::syscall::{LinuxSyscall, Syscall};
use crate::cgroups::{self, Layout, Manager};

/// What `create` needs besides the bundle.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Extra fds from 3 up passed to the container's process.
    pub preserve_fds: u32,
}

/// Entry point of the library: containers under one state root.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: StateRoot,
    /// Warnings for the caller to show (limits or capabilities the host cannot honour).
    warn_to_stderr: bool,
}

const START_SOCK: &str = "start.sock";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn default_cgroups_path(id: &str) -> String {
    format!("/berth-{id}")
}

/// Runs `f` in a forked child; its error goes to the parent over `chan`. Never returns.
fn child_main(chan: &Channel, f: impl FnOnce() -> Result<Infallible>) -> ! {
    let err = match f() {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let (stage, message) = match err {
        RuntimeError::Child { stage, message } => (stage, message),
        e => ("setup".to_string(), e.to_string()),
    };
    let _ = chan.send(&Msg::Error { stage, message });
    // SAFETY: _exit skips atexit handlers and buffers that belong to the parent.
    unsafe { libc::_exit(1) }
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime {
            root: StateRoot::new(root),
            warn_to_stderr: true,
        }
    }

    /// Keeps warnings off stderr (library callers that collect them differently).
    pub fn quiet(mut self) -> Self {
        self.warn_to_stderr = false;
        self
    }

    fn warn(&self, w: &str) {
        if self.warn_to_stderr {
            eprintln!("berth-runtime: warning: {w}");
        }
    }

    /// The manager for a group. `version` ("v1"/"v2") picks the hierarchy on a hybrid
    /// host; None means the one that enforces limits (v1 there, v2 on unified hosts).
    fn cgroup_manager(
        &self,
        path: &str,
        version: Option<&str>,
    ) -> Result<(Layout, Box<dyn Manager>)> {
        let host = cgroups::layout::host_layout()?;
        let layout = match (version, &host) {
            (
                Some("v2"),
                Layout::V1 {
                    unified: Some(u), ..
                },
            ) => Layout::Unified { root: u.clone() },
            (Some("v2"), Layout::V1 { unified: None, .. })
            | (Some("v1"), Layout::Unified { .. }) => {
                return Err(invalid(
                    "BERTH_CGROUP_VERSION",
                    format!(
                        "cgroup {} is not mounted on this host",
                        version.unwrap_or_default()
                    ),
                ))
            }
            (None | Some("v1") | Some("v2"), _) => host,
            (Some(other), _) => {
                return Err(invalid(
                    "BERTH_CGROUP_VERSION",
                    format!("{other:?}: use v1 or v2"),
                ))
            }
        };
        let mgr = cgroups::manager_for(&layout, path)?;
        Ok((layout, mgr))
    }

    /// `create`: everything set up, the init waiting for `start`.
    pub fn create(&self, opts: &CreateOptions) -> Result<Record> {
        self.create_inner(opts, false)
    }

    /// `create`; with `start_now` (for `run`) the init does not wait for `start` but
    /// execs as soon as it is set up, and exec errors come back over the sync channel.
    fn create_inner(&self, opts: &CreateOptions, start_now: bool) -> Result<Record> {
        spec::validate_id(&opts.id)?;
        let bundle = spec::load_bundle(&opts.bundle)?;
        let process = bundle.spec.process().as_ref().expect("validated");
        let terminal = process.terminal().unwrap_or(false);
        if terminal && opts.console_socket.is_none() {
            return Err(invalid(
                "process.terminal",
                "is true but no --console-socket was given to receive the terminal",
            ));
        }
        if !terminal && opts.console_socket.is_some() {
            return Err(invalid(
                "process.terminal",
                "is false but --console-socket was given; set terminal: true or drop the socket",
            ));
        }
        let cgroups_path = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| default_cgroups_path(&opts.id));
        // BERTH_CGROUP_VERSION=v2 puts the container in the cgroup2 tree of a hybrid
        // host (no limits there: its controllers are bound to v1). Only reads mountinfo.
        let version = std::env::var("BERTH_CGROUP_VERSION")
            .ok()
            .filter(|v| !v.is_empty());
        let (layout, mgr) = self.cgroup_manager(&cgroups_path, version.as_deref())?;
        let dir = self.root.claim(&opts.id)?;
        let sock = dir.join(START_SOCK);
        if sock.as_os_str().len() >= 108 {
            let _ = self.root.remove(&opts.id);
            return Err(RuntimeError::State {
                path: sock,
                message: "path too long for a unix socket (108 bytes); use a shorter --root or ID"
                    .into(),
            });
        }
        let mut rec = Record {
            id: opts.id.clone(),
            status: Status::Creating,
            pid: 0,
            pid_start: 0,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            cgroups_path: cgroups_path.clone(),
            cgroup_version: Some(layout.version().to_string()),
            created: now(),
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        };
        let mut guard = CreateGuard {
            rt: self,
            id: opts.id.clone(),
            pid: None,
            cgroups_path: None,
            armed: true,
        };
        self.root.save(&rec)?;
        self.root.save_config(&opts.id, &bundle.spec)?;
        guard.cgroups_path = Some((cgroups_path.clone(), version.clone()));
        mgr.create()?;
        if let Some(r) = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
        {
            for w in mgr.apply(r)? {
                self.warn(&w);
            }
        }
        if process.apparmor_profile().is_some() || process.selinux_label().is_some() {
            self.warn("apparmorProfile/selinuxLabel accepted but not enforced: this host has neither AppArmor nor SELinux");
        }
        let (caps, dropped) = capabilities::masks(
            process.capabilities().as_ref(),
            capabilities::host_bounding(),
        );
        if !dropped.is_empty() {
            self.warn(&format!(
                "capabilities not in this host's bounding set are not granted: {}",
                dropped.join(", ")
            ));
        }
        let ns_list = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let ns = namespaces::plan(&ns_list)?;
        let userns = ns.new.contains(nix::sched::CloneFlags::CLONE_NEWUSER);
        let (parent_chan, child_chan) = channel::pair()?;
        let listener =
            UnixListener::bind(&sock).map_err(sys(format!("binding {}", sock.display())))?;
        let console = match &opts.console_socket {
            Some(p) => Some(
                UnixStream::connect(p)
                    .map_err(sys(format!("connecting to console socket {}", p.display())))?,
            ),
            None => None,
        };
        let init_ctx = InitContext {
            start_now,
            oom_score_adj: process.oom_score_adj(),
            mgr: mgr.as_ref(),
            bundle: &bundle,
            layout: &layout,
            listener,
            console,
            caps,
            userns,
            detached: if userns {
                Some(rootfs::open_detached(
                    &bundle.spec,
                    &bundle.rootfs,
                    &bundle.dir,
                )?)
            } else {
                None
            },
            preserve_fds: opts.preserve_fds,
            state_dir: &dir,
            id: &opts.id,
        };
        // SAFETY: this process is single-threaded (the CLI never starts threads).
        let child = match unsafe { fork() }.map_err(errno("fork"))? {
            ForkResult::Child => {
                drop(parent_chan);
                child_main(&child_chan, || intermediate(&child_chan, ns, &init_ctx))
            }
            ForkResult::Parent { child } => child,
        };
        drop(child_chan);
        // The init holds the listener and the console now; our copies would only keep
        // `start` connecting to a dead container.
        drop(init_ctx);
        let res = self.parent_side(&parent_chan, child, &bundle, &mut rec, &mut guard);
        // Always reap the intermediate.
        let _ = waitpid(child, None);
        res?;
        if start_now {
            // EOF: the process exec'd (the channel is close-on-exec); else its error.
            match parent_chan.recv()? {
                None => {}
                Some(Msg::Error { stage, message }) => {
                    return Err(RuntimeError::Child { stage, message })
                }
                Some(m) => {
                    return Err(RuntimeError::Child {
                        stage: "start".into(),
                        message: format!("unexpected {m:?} from init"),
                    })
                }
            }
            rec.status = Status::Running;
        } else {
            if pid_start_time(rec.pid) != Some(rec.pid_start) {
                return Err(RuntimeError::Child {
                    stage: "create".into(),
                    message: "the container's init exited right after setup".into(),
                });
            }
            rec.status = Status::Created;
        }
        self.root.save(&rec)?;
        if let Some(pf) = &opts.pid_file {
            super::state::write_atomic(pf, rec.pid.to_string().as_bytes())?;
        }
        guard.armed = false;
        Ok(rec)
    }

    fn parent_side(
        &self,
        chan: &Channel,
        child: Pid,
        bundle: &Bundle,
        rec: &mut Record,
        guard: &mut CreateGuard,
    ) -> Result<()> {
        let linux = bundle.spec.linux().as_ref().expect("validated");
        let userns = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
        if userns {
            chan.expect(&Msg::MapIds, "creating the user namespace")?;
            write_id_maps(child.as_raw(), linux)?;
            chan.send(&Msg::Go)?;
        }
        // The intermediate and the init share the channel: on a loaded machine the
        // init's first message can overtake the intermediate's InitPid. Keep it.
        let mut early = None;
        let pid = loop {
            match chan.recv()? {
                Some(Msg::InitPid(p)) => break p,
                Some(m @ (Msg::Ready | Msg::RunHooks)) if early.is_none() => early = Some(m),
                Some(Msg::Error { stage, message }) => {
                    return Err(RuntimeError::Child { stage, message })
                }
                other => {
                    return Err(RuntimeError::Child {
                        stage: "namespaces".into(),
                        message: format!(
                            "the intermediate process ended without starting init ({other:?})"
                        ),
                    })
                }
            }
        };
        guard.pid = Some(pid);
        rec.pid = pid;
        // Read now, while the init is certainly alive (with start_now it may soon exit).
        rec.pid_start = pid_start_time(pid).unwrap_or(0);
        loop {
            let next = match early.take() {
                Some(m) => Some(m),
                None => chan.recv()?,
            };
            match next {
                Some(Msg::Ready) => return Ok(()),
                Some(Msg::RunHooks) => {
                    let st = rec.oci_state_with("creating");
                    if let Some(h) = bundle.spec.hooks() {
                        hooks::run("prestart", h.prestart().as_deref().unwrap_or_default(), &st)?;
                        hooks::run(
                            "createRuntime",
                            h.create_runtime().as_deref().unwrap_or_default(),
                            &st,
                        )?;
                    }
                    chan.send(&Msg::Go)?;
                }
                Some(Msg::Error { stage, message }) => return Err(RuntimeError::Child { stage, message }),
                Some(m) => {
                    return Err(RuntimeError::Child {
                        stage: "sync".into(),
                        message: format!("unexpected {m:?} from init"),
                    })
                }
                None => {
                    return Err(RuntimeError::Child {
                        stage: "init".into(),
                        message: "the container's init exited during setup without reporting (killed by a signal?)".into(),
                    })
                }
            }
        }
    }

    /// `start`: lets the waiting init exec the user's program. Errors of that last
    /// step (exec, user, capabilities, seccomp) come back here with their cause.
    pub fn start(&self, id: &str) -> Result<()> {
        let _lock = self.root.lock(id)?;
        let mut rec = self.root.load(id)?;
        let status = rec.current_status();
        if status != Status::Created {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                op: "start",
                hint: " (only a created container can be started)",
            });
        }
        let sock = self.root.dir(id).join(START_SOCK);
        let mut conn = UnixStream::connect(&sock).map_err(|e| RuntimeError::Child {
            stage: "start".into(),
            message: format!(
                "cannot reach the container's init at {}: {e}",
                sock.display()
            ),
        })?;
        let mut report = String::new();
        let _ = conn.read_to_string(&mut report);
        if !report.is_empty() {
            let (stage, message) = report
                .split_once('\n')
                .unwrap_or(("start", report.as_str()));
            return Err(RuntimeError::Child {
                stage: stage.into(),
                message: message.into(),
            });
        }
        rec.status = Status::Running;
        self.root.save(&rec)?;
        let spec = self.root.load_config(id)?;
        if let Some(h) = spec.hooks() {
            if let Err(e) = hooks::run(
                "poststart",
                h.poststart().as_deref().unwrap_or_default(),
                &rec.oci_state_with("running"),
            ) {
                self.warn(&e.to_string());
            }
        }
        Ok(())
    }

    pub fn state(&self, id: &str) -> Result<serde_json::Value> {
        Ok(self.root.load(id)?.oci_state())
    }

    pub fn list(&self) -> Result<Vec<Record>> {
        self.root.list()
    }

    /// `kill`: a signal to the init, or with `all` to every process of the container.
    pub fn kill(&self, id: &str, sig: Signal, all: bool) -> Result<()> {
        let rec = self.root.load(id)?;
        let status = rec.current_status();
        if !matches!(status, Status::Created | Status::Running | Status::Paused) {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                op: "kill",
                hint: " (it has no process left)",
            });
        }
        if all {
            let (_, mgr) = self.cgroup_manager(&rec.cgroups_path, rec.cgroup_version.as_deref())?;
            for p in mgr.pids()? {
                let _ = nix::sys::signal::kill(Pid::from_raw(p), sig);
            }
        }
        nix::sys::signal::kill(Pid::from_raw(rec.pid), sig)
            .map_err(errno(format!("kill {sig} {}", rec.pid)))
    }

    /// `delete`: kills what is left (with `force`), removes the cgroup, runs poststop
    /// hooks, and removes the state. Leaves no mount (the mount namespace dies with its
    /// processes), no cgroup and no state file.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        spec::validate_id(id)?;
        let _lock = self.root.lock(id)?;
        let rec = match self.root.load(id) {
            Ok(r) => r,
            Err(RuntimeError::NotFound(_)) if self.root.dir(id).exists() => {
                // A create that died half-way: remove what it left.
                return self.root.remove(id);
            }
            Err(e) => return Err(e),
        };
        let status = rec.current_status();
        let alive = matches!(status, Status::Created | Status::Running | Status::Paused)
            || (status == Status::Creating && pid_start_time(rec.pid).is_some());
        if alive && !force {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                op: "delete",
                hint: " (stop it with `kill` first, or use `delete --force`)",
            });
        }
        let (_, mgr) = self.cgroup_manager(&rec.cgroups_path, rec.cgroup_version.as_deref())?;
        if matches!(status, Status::Created | Status::Running | Status::Paused) {
            let _ = nix::sys::signal::kill(Pid::from_raw(rec.pid), Signal::SIGKILL);
        }
        kill_cgroup(mgr.as_ref());
        cgroups::poll_until(Duration::from_secs(5), || {
            pid_start_time(rec.pid) != Some(rec.pid_start)
        });
        mgr.destroy(Duration::from_secs(10))?;
        let spec = self.root.load_config(id).ok();
        let st = rec.oci_state_with("stopped");
        self.root.remove(id)?;
        if let Some(h) = spec.as_ref().and_then(|s| s.hooks().as_ref()) {
            if let Err(e) = hooks::run("poststop", h.poststop().as_deref().unwrap_or_default(), &st)
            {
                self.warn(&e.to_string());
            }
        }
        Ok(())
    }

    /// `pause`: freezes every process of the container (cgroup freezer).
    pub fn pause(&self, id: &str) -> Result<()> {
        let _lock = self.root.lock(id)?;
        let mut rec = self.root.load(id)?;
        let status = rec.current_status();
        if status != Status::Running {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                op: "pause",
                hint: " (only a running container can be paused)",
            });
        }
        let (_, mgr) = self.cgroup_manager(&rec.cgroups_path, rec.cgroup_version.as_deref())?;
        mgr.freeze()?;
        rec.status = Status::Paused;
        self.root.save(&rec)
    }

    /// `resume`: thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let _lock = self.root.lock(id)?;
        let mut rec = self.root.load(id)?;
        let status = rec.current_status();
        if status != Status::Paused {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                op: "resume",
                hint: " (only a paused container can be resumed)",
            });
        }
        let (_, mgr) = self.cgroup_manager(&rec.cgroups_path, rec.cgroup_version.as_deref())?;
        mgr.thaw()?;
        rec.status = Status::Running;
        self.root.save(&rec)
    }

    /// Host pids of every process of the container (from its cgroup).
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let rec = self.root.load(id)?;
        let (_, mgr) = self.cgroup_manager(&rec.cgroups_path, rec.cgroup_version.as_deref())?;
        let mut p = mgr.pids()?;
        p.sort_unstable();
        Ok(p)
    }

    /// Resource usage of the container's cgroup.
    pub fn stats(&self, id: &str) -> Result<cgroups::Stats> {
        let rec = self.root.load(id)?;
        let (_, mgr) = self.cgroup_manager(&rec.cgroups_path, rec.cgroup_version.as_deref())?;
        Ok(mgr.stats()?)
    }

    /// `exec`: a new process in a running container's namespaces and cgroup. Returns
    /// its pid; with `wait`, waits and returns its exit code instead.
    pub fn exec(&self, id: &str, proc_spec: &Process, wait: bool) -> Result<ExecResult> {
        self.exec_with_console(id, proc_spec, wait, None)
    }

    /// `exec` whose process gets a terminal (`process.terminal`), the master side sent
    /// over `console_socket` as for `create`.
    pub fn exec_with_console(
        &self,
        id: &str,
        proc_spec: &Process,
        wait: bool,
        console_socket: Option<&Path>,
    ) -> Result<ExecResult> {
        let terminal = proc_spec.terminal().unwrap_or(false);
        if terminal != console_socket.is_some() {
            return Err(invalid(
                "process.terminal",
                "a terminal (-t) and --console-socket go together: give both or neither",
            ));
        }
        let console = match console_socket {
            Some(p) => Some(
                UnixStream::connect(p)
                    .map_err(sys(format!("connecting to console socket {}", p.display())))?,
            ),
            None => None,
        };
        let rec = self.root.load(id)?;
        let status = rec.current_status();
        if !matches!(status, Status::Created | Status::Running) {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                op: "exec",
                hint: " (exec needs a running container)",
            });
        }
        let spec = self.root.load_config(id)?;
        if proc_spec.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(invalid("process.args", "must name the program to run"));
        }
        let (_, mgr) = self.cgroup_manager(&rec.cgroups_path, rec.cgroup_version.as_deref())?;
        let (caps, dropped) = capabilities::masks(
            proc_spec.capabilities().as_ref(),
            capabilities::host_bounding(),
        );
        if !dropped.is_empty() {
            self.warn(&format!(
                "capabilities not granted (not in the host's bounding set): {}",
                dropped.join(", ")
            ));
        }
        let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
        let ns = namespaces::of_process(rec.pid)?;
        set_subreaper();
        if wait {
            block_forwarded();
        }
        let (parent_chan, child_chan) = channel::pair()?;
        // SAFETY: single-threaded process.
        let child = match unsafe { fork() }.map_err(errno("fork"))? {
            ForkResult::Child => {
                drop(parent_chan);
                child_main(&child_chan, || {
                    mgr.join_self()?;
                    for (t, fd, p) in &ns {
                        namespaces::join(*t, fd, p)?;
                    }
                    // SAFETY: still single-threaded.
                    match unsafe { fork() }.map_err(errno("fork"))? {
                        ForkResult::Parent { child } => {
                            child_chan.send(&Msg::InitPid(child.as_raw()))?;
                            // SAFETY: leave without running the parent's exit handlers.
                            unsafe { libc::_exit(0) }
                        }
                        ForkResult::Child => {
                            if let Some(c) = &console {
                                nix::unistd::setsid().map_err(errno("setsid"))?;
                                super::terminal::setup(c)?;
                            }
                            let plan = ExecPlan {
                                process: proc_spec,
                                seccomp: seccomp.as_ref(),
                                caps,
                                preserve_fds: 0,
                            };
                            process::finalize_and_exec(&plan)
                        }
                    }
                })
            }
            ForkResult::Parent { child } => child,
        };
        drop(child_chan);
        let res = (|| match parent_chan.recv()? {
            Some(Msg::InitPid(p)) => Ok(p),
            Some(Msg::Error { stage, message }) => Err(RuntimeError::Child { stage, message }),
            _ => Err(RuntimeError::Child {
                stage: "exec".into(),
                message: "the helper process exited without starting the process".into(),
            }),
        })();
        let _ = waitpid(child, None);
        let pid = res?;
        // EOF (close-on-exec) means exec succeeded; a message means it did not.
        match parent_chan.recv()? {
            None => {}
            Some(Msg::Error { stage, message }) => {
                let _ = waitpid(Pid::from_raw(pid), None);
                return Err(RuntimeError::Child { stage, message });
            }
            Some(m) => {
                return Err(RuntimeError::Child {
                    stage: "exec".into(),
                    message: format!("unexpected {m:?}"),
                })
            }
        }
        if let Some(adj) = proc_spec.oom_score_adj() {
            let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string());
        }
        if !wait {
            return Ok(ExecResult::Started(pid));
        }
        Ok(ExecResult::Exited(wait_exit(Pid::from_raw(pid))?))
    }

    /// `run`: create, start, wait for the init, delete. Returns the exit code.
    pub fn run(&self, opts: &CreateOptions, detach: bool) -> Result<i32> {
        set_subreaper();
        if !detach {
            block_forwarded();
        }
        // One process does create and start: no start.sock round trip.
        let rec = self.create_inner(opts, true)?;
        if let Some(h) = self.root.load_config(&opts.id)?.hooks() {
            let st = rec.oci_state_with("running");
            if let Err(e) = hooks::run(
                "poststart",
                h.poststart().as_deref().unwrap_or_default(),
                &st,
            ) {
                self.warn(&e.to_string());
            }
        }
        if detach {
            return Ok(0);
        }
        let code = wait_exit(Pid::from_raw(rec.pid));
        let del = self.delete(&opts.id, true);
        let code = code?;
        del?;
        Ok(code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecResult {
    Started(i32),
    Exited(i32),
}

impl Record {
    fn oci_state_with(&self, status: &str) -> serde_json::Value {
        let mut v = self.oci_state();
        v["status"] = status.into();
        v["pid"] = self.pid.into();
        v
    }
}

/// Orphans of our children come to us, so `run` and `exec` can wait for them.
fn set_subreaper() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Signals `run` and `exec` pass on to the container's process, as runc does.
const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn forwarded_set() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks the forwarded signals and SIGCHLD before any child exists, so none is lost
/// before [`wait_exit`] waits for them. Children reset their mask before exec.
fn block_forwarded() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&forwarded_set()),
        None,
    );
}

/// Waits for `pid`, forwarding signals to it, and returns a shell-style exit code
/// (128+signal when killed).
fn wait_exit(pid: Pid) -> Result<i32> {
    let set = forwarded_set();
    loop {
        match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(errno(format!("waiting for {pid}"))(e)),
        }
        // SIGCHLD is blocked, so an exit between waitpid and here stays pending.
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
    }
}

/// SIGKILL every process of the group; freezing first stops a fork loop from racing.
fn kill_cgroup(mgr: &dyn Manager) {
    for _ in 0..10 {
        let pids = mgr.pids().unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        let frozen = mgr.freeze().is_ok();
        for p in mgr.pids().unwrap_or_default() {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        if frozen {
            let _ = mgr.thaw();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write_id_maps(pid: i32, linux: &oci_spec::runtime::Linux) -> Result<()> {
    let fmt = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    std::fs::write(format!("/proc/{pid}/uid_map"), fmt(linux.uid_mappings()))
        .map_err(sys("writing uid_map (check linux.uidMappings)"))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), fmt(linux.gid_mappings()))
        .map_err(sys("writing gid_map (check linux.gidMappings)"))?;
    Ok(())
}

/// Undoes a failed create: kills the init, removes the cgroup and the state.
struct CreateGuard<'a> {
    rt: &'a Runtime,
    id: String,
    pid: Option<i32>,
    cgroups_path: Option<(String, Option<String>)>,
    armed: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(p) = self.pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
            // Reap it if it is ours (run), else wait for it to go.
            let _ = waitpid(Pid::from_raw(p), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        }
        if let Some(Ok((_, m))) = self
            .cgroups_path
            .as_ref()
            .map(|(p, v)| self.rt.cgroup_manager(p, v.as_deref()))
        {
            kill_cgroup(m.as_ref());
            let _ = m.destroy(Duration::from_secs(5));
        }
        let _ = self.rt.root.remove(&self.id);
    }
}

/// What the forked processes need; borrowed from the parent's memory (fork copies it).
struct InitContext<'a> {
    start_now: bool,
    oom_score_adj: Option<i32>,
    mgr: &'a dyn Manager,
    bundle: &'a Bundle,
    layout: &'a Layout,
    /// Bound by the runtime before forking: in a new user namespace the init may no
    /// longer reach the state directory.
    listener: UnixListener,
    console: Option<UnixStream>,
    caps: capabilities::CapMasks,
    userns: bool,
    /// With a new user namespace: the rootfs and bind sources, cloned as host root.
    detached: Option<rootfs::Detached>,
    preserve_fds: u32,
    state_dir: &'a Path,
    id: &'a str,
}

/// The intermediate: enters the namespaces, forks the init, reports its pid, exits.
fn intermediate(chan: &Channel, ns: namespaces::NsPlan, ctx: &InitContext) -> Result<Infallible> {
    // Into the cgroup before any namespace or process of the container exists.
    ctx.mgr.join_self()?;
    // Join existing namespaces while we still hold the host's rights over them.
    for (t, fd, p) in &ns.join {
        namespaces::join(*t, fd, p)?;
    }
    if ctx.userns {
        // The mount namespace made below carries the working directory over: the init
        // attaches the rootfs there (the mapped root may not walk the path to it).
        nix::unistd::chdir(&ctx.bundle.rootfs)
            .map_err(errno(format!("chdir {}", ctx.bundle.rootfs.display())))?;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
            .map_err(errno("unshare user namespace"))?;
        chan.send(&Msg::MapIds)?;
        chan.expect(&Msg::Go, "waiting for uid/gid maps")?;
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .map_err(errno("setgid 0 in the user namespace"))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .map_err(errno("setuid 0 in the user namespace"))?;
    }
    let flags = ns.new - nix::sched::CloneFlags::CLONE_NEWUSER;
    nix::sched::unshare(flags).map_err(errno(format!("unshare {flags:?}")))?;
    // SAFETY: single-threaded.
    match unsafe { fork() }.map_err(errno("fork init"))? {
        ForkResult::Parent { child } => {
            chan.send(&Msg::InitPid(child.as_raw()))?;
            // SAFETY: leave without the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => init(chan, ctx),
    }
}

/// The container's init: filesystem, identity, then wait for `start` and exec.
fn init(chan: &Channel, ctx: &InitContext) -> Result<Infallible> {
    let spec: &Spec = &ctx.bundle.spec;
    let sys = LinuxSyscall;
    nix::unistd::setsid().map_err(errno("setsid"))?;
    if let Some(adj) = ctx.oom_score_adj {
        // Through the host's /proc, before pivot_root, so it holds from the first
        // instruction of the user's program.
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(sys_err(format!(
            "setting oom_score_adj {adj} (lowering it needs CAP_SYS_RESOURCE)"
        )))?;
    }
    // Device nodes get exactly the modes the spec asks for.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    // Bound before pivot_root, while the state directory is reachable.
    let listener = &ctx.listener;
    let console = ctx.console.as_ref();
    let root: &Path = if ctx.detached.is_some() {
        Path::new(".")
    } else {
        &ctx.bundle.rootfs
    };
    let rctx = RootfsContext {
        rootfs: root,
        bundle: &ctx.bundle.dir,
        cgroups: Some(ctx.layout),
        in_userns: ctx.userns,
        detached: ctx.detached.as_ref(),
    };
    rootfs::prepare(&sys, spec, &rctx)?;
    let hooks = spec.hooks().as_ref();
    let has = |l: Option<&Vec<oci_spec::runtime::Hook>>| l.is_some_and(|v| !v.is_empty());
    if hooks.is_some_and(|h| {
        has(h.prestart().as_ref())
            || has(h.create_runtime().as_ref())
            || has(h.create_container().as_ref())
    }) {
        chan.send(&Msg::RunHooks)?;
        chan.expect(&Msg::Go, "running createRuntime hooks")?;
        let st = serde_json::json!({
            "ociVersion": "1.2.0", "id": ctx.id, "status": "creating",
            "pid": std::process::id(), "bundle": ctx.bundle.dir,
        });
        if let Some(h) = hooks {
            hooks::run(
                "createContainer",
                h.create_container().as_deref().unwrap_or_default(),
                &st,
            )?;
        }
    }
    rootfs::pivot(&sys, root)?;
    // A missing working directory is made, as runc does (before the root turns read-only).
    if let Some(p) = spec.process().as_ref() {
        let _ = std::fs::create_dir_all(p.cwd());
    }
    // sysctls before read-only paths: /proc/sys is one of them.
    for (k, v) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&p, v).map_err(sys_err(format!("sysctl {k}={v}")))?;
    }
    rootfs::finish(&sys, spec)?;
    if let Some(h) = spec.hostname() {
        sys.sethostname(h)
            .map_err(sys_err(format!("sethostname {h:?}")))?;
    }
    if let Some(d) = spec.domainname() {
        sys.setdomainname(d)
            .map_err(sys_err(format!("setdomainname {d:?}")))?;
    }
    if let Some(c) = console {
        super::terminal::setup(c)?;
    }
    let _ = ctx.state_dir;
    chan.send(&Msg::Ready)?;
    let process = spec.process().as_ref().expect("validated");
    let plan = ExecPlan {
        process,
        seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
        caps: ctx.caps,
        preserve_fds: ctx.preserve_fds,
    };
    let start_state = || {
        serde_json::json!({
            "ociVersion": "1.2.0", "id": ctx.id, "status": "created",
            "pid": std::process::id(), "bundle": ctx.bundle.dir,
        })
    };
    if ctx.start_now {
        // `run`: no waiting; errors go back over the channel.
        if let Some(h) = hooks {
            hooks::run(
                "startContainer",
                h.start_container().as_deref().unwrap_or_default(),
                &start_state(),
            )?;
        }
        return process::finalize_and_exec(&plan);
    }
    // Wait for `start`.
    let (mut conn, _) = loop {
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r.map_err(sys_err("waiting for start"))?,
        }
    };
    let mut report = |e: RuntimeError| -> ! {
        let (stage, message) = match e {
            RuntimeError::Child { stage, message } => (stage, message),
            e => ("start".into(), e.to_string()),
        };
        let _ = conn.write_all(format!("{stage}\n{message}").as_bytes());
        // SAFETY: leave at once; the caller has the report.
        unsafe { libc::_exit(127) }
    };
    if let Some(h) = hooks {
        if let Err(e) = hooks::run(
            "startContainer",
            h.start_container().as_deref().unwrap_or_default(),
            &start_state(),
        ) {
            report(e);
        }
    }
    if crate::init::wanted(spec) {
        // Berth's minimal init stays PID 1; the child goes on to exec the program.
        // SAFETY: single-threaded.
        match unsafe { fork() } {
            Ok(ForkResult::Parent { child }) => crate::init::supervise(child.as_raw()),
            Ok(ForkResult::Child) => {}
            Err(e) => report(errno("fork for init")(e)),
        }
    }
    let e = match process::finalize_and_exec(&plan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report(e)
}

fn sys_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    sys(op)
}
