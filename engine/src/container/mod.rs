//! The engine's container API: typed values in (no YAML), supervised containers out.
//! Each started container has its own monitor process ([`crate::monitor`]), so the
//! calling `berth` command may exit while its containers keep running, logging,
//! restarting and being health-checked.
//!
//! Calls that fork (start, exec) spawn the `berth-monitor` binary with
//! `std::process::Command`, so this API is safe to call from a multi-threaded
//! (tokio) process; the rest only reads and writes files and sockets. Calls block:
//! from async code, use `spawn_blocking`.
//!
//! ```no_run
//! use berth_engine::container::{Engine, ContainerConfig, ImageConfig, LabelFilter,
//!     RestartPolicy, LogOptions, WaitCondition};
//! use std::time::Duration;
//!
//! let engine = Engine::new("/var/lib/berth", "/run/berth")?;
//! let id = engine.create(ContainerConfig {
//!     name: "demo-web-1".into(),
//!     labels: [("io.berth.project".into(), "demo".into())].into(),
//!     rootfs: "/var/lib/berth/rootfs/web".into(),
//!     image: ImageConfig { cmd: vec!["httpd".into(), "-f".into()], ..Default::default() },
//!     restart: RestartPolicy::OnFailure { max_retries: Some(3) },
//!     stop_grace_period: Some(Duration::from_secs(5)),
//!     ..Default::default()
//! })?;
//! engine.start(&id)?;
//! for c in engine.list(&LabelFilter::new().with("io.berth.project", "demo"))? {
//!     println!("{} {} {:?}", c.name, c.state, c.health);
//! }
//! for line in engine.logs(&id, LogOptions { tail: Some(10), ..Default::default() })? {
//!     println!("{}", line.display(true));
//! }
//! engine.stop(&id, None)?;
//! let exit = engine.wait(&id, WaitCondition::Exited, Some(Duration::from_secs(10)))?;
//! engine.remove(&id, false)?;
//! # Ok::<(), berth_engine::container::EngineError>(())
//! ```

pub mod config;
mod names;
pub mod private_dirs;
pub mod spec;
mod types;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

pub use crate::logs::{LogLine, LogOptions, LogStream, Stream};
pub use crate::state::{Health, HealthStatus, ProbeResult, Status};
pub use config::*;
pub use types::*;

use types::io_err;

use crate::monitor::control::{self, Request};
use crate::monitor::{self as mon, CONTAINER_LOG, CONTROL_SOCK};
use crate::runtime::Runtime;
use crate::state::{process_start, Record, StateError, Store};

/// The container engine over one BERTH_ROOT / BERTH_RUN pair.
#[derive(Debug, Clone)]
pub struct Engine {
    root: PathBuf,
    run: PathBuf,
    store: Store,
    monitor_program: PathBuf,
    /// Arguments before the monitor's own (the embedded form's hidden argument).
    monitor_prefix: Vec<String>,
    /// Whether this engine swept crashed creators' leftovers yet: once per process is
    /// enough (it reads every container directory), not once per create.
    swept: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn new_id() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where `berth-monitor` is: $BERTH_MONITOR, else found by [`helper_program`].
fn default_monitor_program() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_MONITOR") {
        return p.into();
    }
    helper_program("berth-monitor")
}

/// Where one of Berth's helper programs (`berth-monitor`, `berth-dns`,
/// `berth-port-proxy`) is: beside the running program (or one directory above, for test
/// binaries in `deps/`), else `/usr/local/bin`.
pub fn helper_program(name: &str) -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let p = dir.join(name);
            if p.exists() {
                return p;
            }
        }
    }
    PathBuf::from("/usr/local/bin").join(name)
}

fn validate_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 128
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidConfig {
            field: "name".into(),
            problem: format!("{n:?}: use 1 to 128 letters, digits, '_', '.', '-', starting with a letter or digit"),
        })
    }
}

impl Engine {
    /// An engine keeping records under `root` (BERTH_ROOT) and sockets and runtime
    /// state under `run` (BERTH_RUN). Creates both if needed.
    pub fn new(root: impl Into<PathBuf>, run: impl Into<PathBuf>) -> Result<Engine> {
        let root = std::path::absolute(root.into()).map_err(io_err("resolving BERTH_ROOT"))?;
        let run = std::path::absolute(run.into()).map_err(io_err("resolving BERTH_RUN"))?;
        private_dirs::ensure_private_dir("BERTH_ROOT", &root)?;
        private_dirs::ensure_private_dir("BERTH_RUN", &run)?;
        let store = Store::new(&root, &run);
        // Records (environments, secrets among them), logs and control sockets: root's.
        for d in [store.root_dir().to_path_buf(), run.join("containers")] {
            private_dirs::make_private(&d)?;
        }
        Ok(Engine {
            root,
            run,
            store,
            monitor_program: default_monitor_program(),
            monitor_prefix: vec![],
            swept: Default::default(),
        })
    }

    /// Uses this `berth-monitor` binary.
    pub fn with_monitor_program(mut self, p: impl Into<PathBuf>) -> Self {
        self.monitor_program = p.into();
        self.monitor_prefix.clear();
        self
    }

    /// Runs monitors as this very program started with a hidden argument; its `main`
    /// must call [`crate::monitor::dispatch`] before starting any thread. (A separate
    /// `berth-monitor` binary is smaller per container: it is the default.)
    pub fn with_embedded_monitor(self) -> Result<Self> {
        let exe = std::env::current_exe().map_err(io_err("finding this program"))?;
        Ok(self.with_monitor_command(exe, &[mon::EMBEDDED_ARG]))
    }

    /// Runs monitors as `program` with `prefix` before the monitor's own arguments.
    pub fn with_monitor_command(mut self, program: impl Into<PathBuf>, prefix: &[&str]) -> Self {
        self.monitor_program = program.into();
        self.monitor_prefix = prefix.iter().map(|s| s.to_string()).collect();
        self
    }

    fn monitor_command(&self) -> Command {
        let mut c = Command::new(&self.monitor_program);
        c.args(&self.monitor_prefix);
        c
    }

    fn runtime(&self) -> Runtime {
        Runtime::new(mon::runtime_root(&self.run)).quiet()
    }

    /// ID or name to ID.
    pub fn resolve(&self, id_or_name: &str) -> Result<ContainerId> {
        if id_or_name.len() == 32 && self.store.dir(id_or_name).join("record.json").exists() {
            return Ok(id_or_name.to_string());
        }
        let names = self.names();
        if let Some(id) = names.get(id_or_name) {
            if self
                .store
                .load(&id)
                .is_ok_and(|r| r.config.name == id_or_name)
            {
                return Ok(id);
            }
        }
        if names.built() {
            return Err(EngineError::NotFound(id_or_name.to_string()));
        }
        for id in self.store.ids() {
            if let Ok(r) = self.store.load(&id) {
                if r.config.name == id_or_name {
                    return Ok(id);
                }
            }
        }
        Err(EngineError::NotFound(id_or_name.to_string()))
    }

    fn load(&self, id_or_name: &str) -> Result<Record> {
        let id = self.resolve(id_or_name)?;
        self.store.load(&id).map_err(|e| match e {
            StateError::Missing(_) => EngineError::NotFound(id_or_name.into()),
            e => e.into(),
        })
    }

    /// Whether the record's monitor process is alive.
    fn monitor_alive(r: &Record) -> bool {
        r.monitor_pid > 0 && process_start(r.monitor_pid) == Some(r.monitor_start)
    }

    /// The state as it is, not as a dead monitor last wrote it.
    fn effective(&self, r: &Record) -> (Status, Option<String>) {
        let supervised = matches!(
            r.status,
            Status::Running | Status::Paused | Status::Restarting
        );
        if !supervised || Self::monitor_alive(r) {
            return (r.status, r.error.clone());
        }
        if !self.store.run_dir(&r.id).exists() {
            // BERTH_RUN is gone: the host rebooted, and the container with it.
            return (
                Status::Exited,
                Some("the host restarted while the container ran".into()),
            );
        }
        (
            Status::Dead,
            Some(format!(
                "its monitor (pid {}) died: exits are no longer recorded; stop or remove the container",
                r.monitor_pid
            )),
        )
    }

    /// Copies each secret into `<record dir>/secrets/N` with its mode and owner and points
    /// the spec's bind at the copy.
    fn stage_secrets(
        &self,
        id: &str,
        cfg: &ContainerConfig,
        mut oci: serde_json::Value,
    ) -> Result<serde_json::Value> {
        use std::os::unix::fs::PermissionsExt;
        let uid = oci["process"]["user"]["uid"].as_u64().unwrap_or(0) as u32;
        let gid = oci["process"]["user"]["gid"].as_u64().unwrap_or(0) as u32;
        for (i, m) in cfg.mounts.iter().enumerate() {
            let MountSpec::Secret {
                source,
                target,
                mode,
                uid: u,
                gid: g,
            } = m
            else {
                continue;
            };
            let dir = self.store.dir(id).join("secrets");
            private_dirs::make_private(&dir)?;
            let copy = dir.join(i.to_string());
            std::fs::copy(source, &copy).map_err(io_err(format!(
                "copying secret {} for {target}",
                source.display()
            )))?;
            // In a user namespace the container's ids are a range of host ids.
            let host = |id: u32| match &cfg.userns {
                Some(map) => map.to_host(id).ok_or_else(|| EngineError::InvalidConfig {
                    field: format!("mounts[{i}]"),
                    problem: format!(
                        "secret owner {id} is outside the container's user namespace (0..{})",
                        map.size
                    ),
                }),
                None => Ok(id),
            };
            let (su, sg) = (host(u.unwrap_or(uid))?, host(g.unwrap_or(gid))?);
            std::os::unix::fs::chown(&copy, Some(su), Some(sg))
                .map_err(io_err(format!("chown of the secret for {target}")))?;
            std::fs::set_permissions(
                &copy,
                std::fs::Permissions::from_mode(mode.unwrap_or(0o400)),
            )
            .map_err(io_err(format!("chmod of the secret for {target}")))?;
            for mnt in oci["mounts"].as_array_mut().into_iter().flatten() {
                if mnt["destination"] == target.as_str()
                    && mnt["source"] == serde_json::json!(source)
                {
                    mnt["source"] = serde_json::json!(copy);
                }
            }
        }
        Ok(oci)
    }

    /// Records a new container; nothing runs until `start`. Refuses bad input before
    /// touching the host.
    pub fn create(&self, cfg: ContainerConfig) -> Result<ContainerId> {
        validate_name(&cfg.name)?;
        if !cfg.rootfs.is_absolute() || !cfg.rootfs.is_dir() {
            return Err(EngineError::InvalidConfig {
                field: "rootfs".into(),
                problem: format!(
                    "{} must be an existing absolute directory",
                    cfg.rootfs.display()
                ),
            });
        }
        if let Some(s) = cfg
            .stop_signal
            .as_deref()
            .or(cfg.image.stop_signal.as_deref())
        {
            if mon::parse_signal(s).is_none() {
                return Err(EngineError::InvalidConfig {
                    field: "stop_signal".into(),
                    problem: format!("{s:?} is not a signal (SIGTERM, SIGQUIT, 15, ...)"),
                });
            }
        }
        if cfg.log.max_size == Some(0) {
            return Err(EngineError::InvalidConfig {
                field: "log.max_size".into(),
                problem: "must be above 0".into(),
            });
        }
        let id = new_id();
        // Build the spec now so a bad config is refused before anything exists.
        let oci = spec::build(&id, &cfg)?;
        let sock = self.store.run_dir(&id).join(CONTROL_SOCK);
        if sock.as_os_str().len() >= 108 {
            return Err(EngineError::InvalidConfig {
                field: "BERTH_RUN".into(),
                problem: format!(
                    "{} is too long for a unix socket path; use a shorter BERTH_RUN",
                    self.run.display()
                ),
            });
        }
        // Names are claimed under a global lock so two creators cannot both win.
        let names_lock = self.global_lock()?;
        let names = self.names();
        names
            .ensure_built(|| {
                self.store
                    .ids()
                    .into_iter()
                    .filter_map(|id| Some((self.store.load(&id).ok()?.config.name, id)))
                    .collect()
            })
            .map_err(io_err("indexing container names"))?;
        if let Some(other) = names.get(&cfg.name) {
            if self
                .store
                .load(&other)
                .is_ok_and(|r| r.config.name == cfg.name)
            {
                return Err(EngineError::NameInUse {
                    name: cfg.name,
                    id: other,
                });
            }
        }
        if !self.swept.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.sweep_locked();
        }
        // The name first: a creator killed from here on leaves a stale link, no block.
        names
            .set(&cfg.name, &id)
            .map_err(io_err("indexing the container's name"))?;
        let name = cfg.name.clone();
        let forget = |e: EngineError| {
            let _ = self.store.remove(&id);
            names.unset(&name, &id);
            e
        };
        self.store.make_dirs(&id).map_err(|e| forget(e.into()))?;
        let oci = self.stage_secrets(&id, &cfg, oci).map_err(forget)?;
        // Written unsynced under the lock (every creator waits for it), then synced
        // after it: a crash loses at worst what a crash before the call would.
        let dir = self.store.dir(&id);
        let res = (|| {
            crate::state::write_atomic(
                &dir.join("config.json"),
                &serde_json::to_vec_pretty(&oci).expect("spec serialises"),
                false,
            )?;
            self.store.save_unsynced(&Record::created(&id, cfg))
        })();
        res.map_err(|e| forget(e.into()))?;
        drop(names_lock);
        crate::state::sync_files(&dir, &["config.json", "record.json"])
            .map_err(|e| forget(e.into()))?;
        Ok(id)
    }

    /// Removes what a creator killed half-way left: container directories with no record.
    pub fn sweep_incomplete(&self) -> Result<()> {
        let _g = self.global_lock()?;
        self.sweep_locked();
        Ok(())
    }

    /// Creators hold the global lock from making a container's directories to saving its
    /// record, so under that lock a directory without a record is a crashed creator's.
    fn sweep_locked(&self) {
        for half_made in self.store.incomplete_ids() {
            let _ = self.store.remove(&half_made);
        }
    }

    fn names(&self) -> names::Names {
        names::Names::new(&self.store.root_dir().join(".names"))
    }

    fn global_lock(&self) -> Result<crate::state::Lock> {
        let p = self.store.root_dir().join(".names");
        std::fs::create_dir_all(&p).map_err(io_err("creating the names lock"))?;
        let s = Store::new(&p, &p);
        let d = s.dir("all");
        std::fs::create_dir_all(&d).map_err(io_err("creating the names lock"))?;
        Ok(s.lock("all")?)
    }

    /// Starts the container under a new monitor; returns once its process runs (or
    /// with the reason it could not start).
    pub fn start(&self, id_or_name: &str) -> Result<()> {
        self.start_monitor(id_or_name, false)
    }

    /// Starts the container with the caller attached, as `docker run` without `-d`
    /// does: the container's program starts only once the attach is in place, so its
    /// first byte of output reaches our stdout/stderr and it reads our stdin (with
    /// `stdin_open`; our end closes it). With `tty` it has a terminal relayed to ours
    /// (raw mode while it runs, its size following ours). Returns when the container
    /// exited, with its exit code (125 when the attach itself failed).
    pub fn start_attached(&self, id_or_name: &str) -> Result<i32> {
        let id = self.resolve(id_or_name)?;
        self.start_monitor(&id, true)?;
        let status = self
            .monitor_command()
            .arg("attach")
            .arg(&self.root)
            .arg(&self.run)
            .arg(&id)
            .status()
            .map_err(io_err(format!(
                "running {}",
                self.monitor_program.display()
            )))?;
        Ok(status.code().unwrap_or(-1))
    }

    fn start_monitor(&self, id_or_name: &str, wait_attach: bool) -> Result<()> {
        let id = self.resolve(id_or_name)?;
        let _one_at_a_time = self.store.start_lock(&id)?;
        let rec = self.load(&id)?;
        let (status, _) = self.effective(&rec);
        match status {
            Status::Running | Status::Paused | Status::Restarting => return Ok(()),
            Status::Dead => {
                return Err(EngineError::WrongState {
                    name: rec.config.name,
                    status,
                    op: "start",
                    hint: " (its monitor died; stop it first)",
                })
            }
            Status::Created | Status::Exited => {}
        }
        if !self.monitor_program.exists() {
            return Err(EngineError::NoMonitorProgram(self.monitor_program.clone()));
        }
        // The last monitor may still be finishing (the record says exited already).
        self.wait_monitor_gone(&rec, Duration::from_secs(15))?;
        // The monitor marks the record wanted-running (restart count and error reset) in
        // the same write that names it, one fsync'd record write fewer per start.
        let mut cmd = self.monitor_command();
        cmd.arg("run").arg(&self.root).arg(&self.run).arg(&rec.id);
        if wait_attach {
            cmd.arg("attach");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err(format!(
                "running {}",
                self.monitor_program.display()
            )))?;
        let out = child.stdout.take().expect("piped");
        let _ = child.wait();
        mon::read_report(out).map(|_| ()).map_err(|message| {
            // Nothing is starting it any more (`remove` waits for a start in flight).
            let _ = self.store.update(&rec.id, |r| {
                if r.status == Status::Created {
                    r.desired_running = false;
                }
            });
            EngineError::Start {
                name: rec.config.name,
                message,
            }
        })
    }

    fn call(&self, rec: &Record, req: &Request) -> Result<control::Response> {
        let sock = self.store.run_dir(&rec.id).join(CONTROL_SOCK);
        let (resp, _) = control::call(&sock, req).map_err(|e| EngineError::Monitor {
            name: rec.config.name.clone(),
            message: format!("cannot be reached at {}: {e}", sock.display()),
        })?;
        if !resp.ok {
            return Err(EngineError::Monitor {
                name: rec.config.name.clone(),
                message: format!("refused: {}", resp.error.clone().unwrap_or_default()),
            });
        }
        Ok(resp)
    }

    fn grace(rec: &Record, timeout: Option<Duration>) -> Duration {
        timeout
            .or(rec.config.stop_grace_period)
            .unwrap_or(Duration::from_secs(10))
    }

    /// Stop signal, then SIGKILL after `timeout` (default: the config's grace
    /// period, else 10 s). No restart follows. Returns when the container is down.
    pub fn stop(&self, id_or_name: &str, timeout: Option<Duration>) -> Result<()> {
        let rec = self.load(id_or_name)?;
        let grace = Self::grace(&rec, timeout);
        let (status, _) = self.effective(&rec);
        match status {
            Status::Created | Status::Exited => {
                self.store.update(&rec.id, |r| r.desired_running = false)?;
                Ok(())
            }
            Status::Dead => self.stop_unsupervised(&rec, grace),
            Status::Running | Status::Paused | Status::Restarting => {
                let req = Request::Stop {
                    timeout_ms: grace.as_millis() as u64,
                };
                // A monitor drops a connection that sends nothing for a second: on a
                // host this loaded (500 `down` threads on 2 cores) the request can come
                // too late, so a refused call is tried again while the monitor lives.
                let mut attempts = 0;
                while let Err(e) = self.call(&rec, &req) {
                    // The container may have exited on its own meanwhile, its monitor
                    // closing the socket as it leaves: that is a stop too.
                    if self.wait_monitor_gone(&rec, Duration::from_secs(2)).is_ok() {
                        return Ok(());
                    }
                    attempts += 1;
                    if attempts == 3 {
                        return Err(e);
                    }
                }
                // Stopped once its record says the container exited: the monitor's
                // cleanup after that (cgroups, its last record write) is waited for by
                // whoever needs the monitor gone (`start`, `remove`), so a `down` stopping
                // a chain of dependants one after another does not wait for it each time.
                self.wait_monitor(&rec, grace + Duration::from_secs(10), |r| {
                    !matches!(
                        r.status,
                        Status::Running | Status::Paused | Status::Restarting
                    )
                })
            }
        }
    }

    fn wait_monitor_gone(&self, rec: &Record, limit: Duration) -> Result<()> {
        self.wait_monitor(rec, limit, |_| false)
    }

    /// Waits until `rec`'s monitor is gone or its record meets `done`.
    fn wait_monitor(
        &self,
        rec: &Record,
        limit: Duration,
        done: impl Fn(&Record) -> bool,
    ) -> Result<()> {
        let start = Instant::now();
        // Woken by the monitor's exit (a pidfd) rather than by polling: the record still
        // decides, since the pid may have been reused before the pidfd was opened.
        let exit = ProcessExit::watch(rec.monitor_pid);
        loop {
            // Reap it if it came to us (a subreaper caller); never waitpid(0 or -1).
            if rec.monitor_pid > 0 {
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(rec.monitor_pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            }
            let now = self.store.load(&rec.id)?;
            if !Self::monitor_alive(&now) || done(&now) {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(EngineError::Timeout(limit));
            }
            exit.wait(Duration::from_millis(50));
        }
    }

    /// A container whose monitor died: signal it through the runtime, then clean up.
    fn stop_unsupervised(&self, rec: &Record, grace: Duration) -> Result<()> {
        let rt = self.runtime();
        let sig = rec
            .config
            .stop_signal
            .as_deref()
            .and_then(mon::parse_signal)
            .unwrap_or(Signal::SIGTERM);
        if let Ok(r) = rt.root.load(&rec.id) {
            if matches!(
                r.current_status(),
                crate::runtime::Status::Running | crate::runtime::Status::Created
            ) {
                let _ = rt.kill(&rec.id, sig, false);
                let start = Instant::now();
                while start.elapsed() < grace
                    && matches!(
                        r.current_status(),
                        crate::runtime::Status::Running | crate::runtime::Status::Created
                    )
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            rt.delete(&rec.id, true)?;
        }
        let _ = std::fs::remove_file(self.store.run_dir(&rec.id).join(CONTROL_SOCK));
        self.store.update(&rec.id, |r| {
            r.status = Status::Exited;
            r.desired_running = false;
            r.pid = 0;
            r.monitor_pid = 0;
            r.monitor_start = 0;
            r.finished_at = Some(SystemTime::now());
            r.error = Some("stopped after its monitor had died; the exit code is unknown".into());
        })?;
        Ok(())
    }

    /// Sends `signal` to the container's first process.
    pub fn kill(&self, id_or_name: &str, signal: Signal) -> Result<()> {
        let rec = self.load(id_or_name)?;
        let (status, _) = self.effective(&rec);
        match status {
            Status::Running | Status::Paused => {
                self.call(
                    &rec,
                    &Request::Kill {
                        signal: signal as i32,
                    },
                )?;
                Ok(())
            }
            Status::Dead => Ok(self.runtime().kill(&rec.id, signal, false)?),
            status => Err(EngineError::WrongState {
                name: rec.config.name,
                status,
                op: "kill",
                hint: " (it is not running)",
            }),
        }
    }

    /// stop then start.
    pub fn restart(&self, id_or_name: &str, timeout: Option<Duration>) -> Result<()> {
        self.stop(id_or_name, timeout)?;
        self.start(id_or_name)
    }

    /// Freezes every process of the container (cgroup freezer).
    pub fn pause(&self, id_or_name: &str) -> Result<()> {
        self.live_op(id_or_name, Request::Pause, "pause")
    }

    pub fn unpause(&self, id_or_name: &str) -> Result<()> {
        self.live_op(id_or_name, Request::Unpause, "unpause")
    }

    fn live_op(&self, id_or_name: &str, req: Request, op: &'static str) -> Result<()> {
        let rec = self.load(id_or_name)?;
        let (status, _) = self.effective(&rec);
        if !matches!(status, Status::Running | Status::Paused) {
            return Err(EngineError::WrongState {
                name: rec.config.name,
                status,
                op,
                hint: " (it is not running)",
            });
        }
        self.call(&rec, &req)?;
        Ok(())
    }

    /// Removes the container, its log and its records. A running one needs `force`
    /// (then it is killed). Leaves no process, mount, cgroup, socket or file.
    pub fn remove(&self, id_or_name: &str, force: bool) -> Result<()> {
        let id = self.resolve(id_or_name)?;
        // No start may be half-way while the container goes.
        let _no_start = self.store.start_lock(&id)?;
        let mut rec = self.load(&id)?;
        // A start whose caller was killed may have left its monitor starting the
        // container (the record still says created): let it report how that went, so a
        // running container is stopped rather than deleted under its monitor's feet.
        let deadline = Instant::now() + Duration::from_secs(5);
        while rec.status == Status::Created && rec.desired_running && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            rec = self.load(&id)?;
        }
        let (status, _) = self.effective(&rec);
        if matches!(
            status,
            Status::Running | Status::Paused | Status::Restarting
        ) {
            if !force {
                return Err(EngineError::WrongState {
                    name: rec.config.name,
                    status,
                    op: "remove",
                    hint: " (stop it first, or remove with force)",
                });
            }
            self.stop(&rec.id, Some(Duration::ZERO))?;
        } else if status == Status::Dead {
            self.stop_unsupervised(&rec, Duration::ZERO)?;
        }
        // Its monitor writes the end of the record, then goes: let it go first.
        let _ = self.wait_monitor_gone(&self.load(&id)?, Duration::from_secs(5));
        let rt = self.runtime();
        if rt.root.dir(&rec.id).exists() {
            rt.delete(&rec.id, true)?;
        }
        self.store.remove(&rec.id)?;
        self.names().unset(&rec.config.name, &rec.id);
        Ok(())
    }

    fn summary(&self, r: &Record) -> ContainerSummary {
        let (state, _) = self.effective(r);
        ContainerSummary {
            id: r.id.clone(),
            name: r.config.name.clone(),
            labels: r.config.labels.clone(),
            state,
            exit_code: r.exit_code,
            health: r.health.as_ref().map(|h| h.status),
        }
    }

    /// Containers whose labels match `filter`, by name.
    pub fn list(&self, filter: &LabelFilter) -> Result<Vec<ContainerSummary>> {
        let mut out: Vec<ContainerSummary> = self
            .store
            .ids()
            .iter()
            .filter_map(|id| self.store.load(id).ok())
            .filter(|r| filter.matches(&r.config.labels))
            .map(|r| self.summary(&r))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn inspect(&self, id_or_name: &str) -> Result<ContainerInfo> {
        let r = self.load(id_or_name)?;
        let (state, error) = self.effective(&r);
        let running = matches!(state, Status::Running | Status::Paused);
        Ok(ContainerInfo {
            log_path: self.store.dir(&r.id).join(CONTAINER_LOG),
            id: r.id,
            name: r.config.name.clone(),
            created: r.created,
            state,
            pid: running.then_some(r.pid).filter(|p| *p > 0),
            exit_code: r.exit_code,
            started_at: r.started_at,
            finished_at: r.finished_at,
            restart_count: r.restart_count,
            health: r.health,
            error,
            monitor_pid: (r.monitor_pid > 0 && state != Status::Dead).then_some(r.monitor_pid),
            config: r.config,
        })
    }

    /// Waits for `cond` (polling the record), up to `timeout` (None: without end).
    pub fn wait(
        &self,
        id_or_name: &str,
        cond: WaitCondition,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome> {
        let id = self.resolve(id_or_name)?;
        let start = Instant::now();
        loop {
            let r = self.load(&id)?;
            let (state, _) = self.effective(&r);
            let out = WaitOutcome {
                state,
                exit_code: r.exit_code,
                health: r.health.as_ref().map(|h| h.status),
            };
            // Exited counts once its monitor has finished too, so what follows (start,
            // remove) never races the old monitor's clean-up.
            let settled = match state {
                Status::Exited => !Self::monitor_alive(&r),
                Status::Dead | Status::Created => true,
                _ => false,
            };
            match cond {
                WaitCondition::Exited if settled => return Ok(out),
                WaitCondition::Running if state == Status::Running => return Ok(out),
                WaitCondition::Healthy
                    if out.health == Some(HealthStatus::Healthy) && state == Status::Running =>
                {
                    return Ok(out)
                }
                WaitCondition::Healthy
                    if out.health == Some(HealthStatus::Unhealthy) || settled =>
                {
                    return Err(EngineError::WrongState {
                        name: r.config.name,
                        status: state,
                        op: "become healthy",
                        hint: if settled {
                            " (it is not running)"
                        } else {
                            " (its healthcheck fails: see inspect)"
                        },
                    })
                }
                WaitCondition::Running if settled && r.status != Status::Created => {
                    return Err(EngineError::WrongState {
                        name: r.config.name,
                        status: state,
                        op: "be running",
                        hint: "",
                    })
                }
                _ => {}
            }
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                return Err(EngineError::Timeout(timeout.unwrap_or_default()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The container's output, oldest first. Readable while it runs and after it
    /// exited; with `follow`, the iterator ends when the container stops for good.
    pub fn logs(&self, id_or_name: &str, opts: LogOptions) -> Result<LogStream> {
        let r = self.load(id_or_name)?;
        let path = self.store.dir(&r.id).join(CONTAINER_LOG);
        let me = self.clone();
        let id = r.id.clone();
        let alive = Box::new(move || {
            me.store
                .load(&id)
                .map(|r| Self::monitor_alive(&r))
                .unwrap_or(false)
        });
        LogStream::open(&path, opts, alive).map_err(io_err(format!("reading {}", path.display())))
    }

    /// The live output of a running container, line by line as the monitor writes
    /// it, until the container stops (or the stream is dropped).
    pub fn attach(&self, id_or_name: &str) -> Result<Attach> {
        let rec = self.load(id_or_name)?;
        let (status, _) = self.effective(&rec);
        if !matches!(
            status,
            Status::Running | Status::Paused | Status::Restarting
        ) {
            return Err(EngineError::WrongState {
                name: rec.config.name,
                status,
                op: "attach",
                hint: " (it is not running; read its logs instead)",
            });
        }
        let sock = self.store.run_dir(&rec.id).join(CONTROL_SOCK);
        let (resp, conn) = control::call(
            &sock,
            &Request::Attach {
                raw: false,
                stdin_once: false,
                size: None,
            },
        )
        .map_err(|e| EngineError::Monitor {
            name: rec.config.name.clone(),
            message: format!("cannot be reached at {}: {e}", sock.display()),
        })?;
        if !resp.ok {
            return Err(EngineError::Monitor {
                name: rec.config.name,
                message: resp.error.unwrap_or_default(),
            });
        }
        let _ = conn.get_ref().set_read_timeout(None);
        Ok(Attach { conn })
    }

    /// The record of a container that must be running for an `exec`.
    fn running_for_exec(&self, id_or_name: &str) -> Result<Record> {
        let rec = self.load(id_or_name)?;
        let (status, _) = self.effective(&rec);
        if status != Status::Running {
            return Err(EngineError::WrongState {
                name: rec.config.name,
                status,
                op: "exec",
                hint: " (exec needs a running container)",
            });
        }
        Ok(rec)
    }

    /// Runs a process in the running container (its namespaces and cgroup) and
    /// collects its output.
    pub fn exec(&self, id_or_name: &str, e: &ExecConfig) -> Result<ExecOutput> {
        let rec = self.running_for_exec(id_or_name)?;
        let process = spec::exec_process(&rec.config, e)?;
        let out = self
            .monitor_command()
            .arg("exec")
            .arg(&self.root)
            .arg(&self.run)
            .arg(&rec.id)
            .arg(process.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(format!(
                "running {}",
                self.monitor_program.display()
            )))?;
        Ok(ExecOutput {
            exit_code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Runs a process in the running container connected to the caller, as `docker
    /// exec` does: [`ExecStdio::Inherit`] hands it our stdin, stdout and stderr;
    /// [`ExecStdio::Terminal`] gives it a terminal inside the container relayed to ours
    /// (raw mode); [`ExecStdio::Detached`] starts it and returns 0. Returns its exit code.
    pub fn exec_attached(&self, id_or_name: &str, e: &ExecConfig, how: ExecStdio) -> Result<i32> {
        let rec = self.running_for_exec(id_or_name)?;
        let mut process = spec::exec_process(&rec.config, e)?;
        let mode = match how {
            ExecStdio::Inherit => "wait",
            ExecStdio::Terminal => {
                process["terminal"] = serde_json::Value::Bool(true);
                // Programs read TERM to know what the terminal understands; Docker sets it.
                if let Some(env) = process["env"].as_array_mut() {
                    if !env
                        .iter()
                        .any(|v| v.as_str().is_some_and(|s| s.starts_with("TERM=")))
                    {
                        env.push("TERM=xterm".into());
                    }
                }
                "tty"
            }
            ExecStdio::Detached => "detach",
        };
        let mut cmd = self.monitor_command();
        cmd.arg("exec")
            .arg(&self.root)
            .arg(&self.run)
            .arg(&rec.id)
            .arg(process.to_string())
            .arg(mode);
        if how == ExecStdio::Detached {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
        let status = cmd.status().map_err(io_err(format!(
            "running {}",
            self.monitor_program.display()
        )))?;
        Ok(status.code().unwrap_or(-1))
    }

    fn cgroup(&self, rec: &Record, op: &'static str) -> Result<Box<dyn crate::cgroups::Manager>> {
        let (status, _) = self.effective(rec);
        if !matches!(status, Status::Running | Status::Paused | Status::Dead) {
            return Err(EngineError::WrongState {
                name: rec.config.name.clone(),
                status,
                op,
                hint: " (it is not running)",
            });
        }
        Ok(crate::cgroups::host_manager(&format!("/berth-{}", rec.id))?)
    }

    /// Memory, CPU and process figures from the container's cgroup.
    pub fn stats(&self, id_or_name: &str) -> Result<ContainerStats> {
        let rec = self.load(id_or_name)?;
        let mgr = self.cgroup(&rec, "report stats")?;
        Ok(ContainerStats {
            cgroup: mgr.stats()?,
            pids: mgr.pids()?,
        })
    }

    /// The container's processes (from its cgroup and /proc), zombies included.
    pub fn top(&self, id_or_name: &str) -> Result<Vec<ProcessInfo>> {
        let rec = self.load(id_or_name)?;
        let mgr = self.cgroup(&rec, "list processes")?;
        let mut out = vec![];
        // The cgroup lists live tasks only; zombies are found as their parents' children.
        let mut pids = mgr.pids()?;
        let mut i = 0;
        while i < pids.len() {
            let p = pids[i];
            let kids =
                std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse().ok()) {
                if !pids.contains(&k) {
                    pids.push(k);
                }
            }
            i += 1;
        }
        for pid in pids {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let f: Vec<&str> = stat[close + 2..].split(' ').collect();
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    b.split(|c| *c == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|l| l.split_whitespace().next().and_then(|u| u.parse().ok()))
                })
                .unwrap_or(0);
            out.push(ProcessInfo {
                pid,
                ppid: f.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
                uid,
                state: f.first().and_then(|s| s.chars().next()).unwrap_or('?'),
                cmd,
            });
        }
        out.sort_by_key(|p| p.pid);
        Ok(out)
    }

    /// After a reboot (BERTH_RUN emptied, BERTH_ROOT kept): starts again the containers
    /// that were running with `always` or `unless-stopped`. Returns their IDs.
    pub fn recover(&self) -> Result<Vec<ContainerId>> {
        let mut started = vec![];
        for id in self.store.ids() {
            let Ok(r) = self.store.load(&id) else {
                continue;
            };
            let was_running = matches!(
                r.status,
                Status::Running | Status::Paused | Status::Restarting
            );
            let policy = matches!(
                r.config.restart,
                RestartPolicy::Always | RestartPolicy::UnlessStopped
            );
            if was_running
                && policy
                && r.desired_running
                && !Self::monitor_alive(&r)
                && !self.store.run_dir(&id).exists()
            {
                let rt = self.runtime();
                if rt.root.dir(&id).exists() {
                    let _ = rt.delete(&id, true);
                }
                self.store.update(&id, |r| r.status = Status::Exited)?;
                self.start(&id)?;
                started.push(id);
            }
        }
        Ok(started)
    }

    /// BERTH_ROOT and BERTH_RUN of this engine.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.root, &self.run)
    }
}

/// The exit of a process, as a pidfd to wait on (Linux 5.3+); where there is none (an old
/// kernel, a pid already gone), waiting is a short sleep and the caller looks again.
struct ProcessExit(Option<std::os::fd::OwnedFd>);

impl ProcessExit {
    fn watch(pid: i32) -> Self {
        if pid <= 0 {
            return Self(None);
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        Self((fd >= 0).then(|| {
            // SAFETY: the kernel just gave us this fd, and nothing else owns it.
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) }
        }))
    }

    /// Returns when the process exited or `max` passed, whichever comes first.
    fn wait(&self, max: Duration) {
        match &self.0 {
            Some(fd) => {
                use std::os::fd::AsFd;
                let mut fds = [nix::poll::PollFd::new(
                    fd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let ms = u16::try_from(max.as_millis()).unwrap_or(u16::MAX);
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            }
            None => std::thread::sleep(Duration::from_millis(10).min(max)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn label_filter_matches_pairs_and_keys() {
        let labels: BTreeMap<String, String> = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]
        .into();
        assert!(LabelFilter::new().matches(&labels));
        assert!(LabelFilter::new().with("a", "1").has("b").matches(&labels));
        assert!(!LabelFilter::new().with("a", "2").matches(&labels));
        assert!(!LabelFilter::new().has("c").matches(&labels));
    }

    #[test]
    fn restart_policies_parse_as_compose_spells_them() {
        assert_eq!("no".parse::<RestartPolicy>().unwrap(), RestartPolicy::No);
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure {
                max_retries: Some(3)
            }
        );
        assert_eq!(
            "unless-stopped".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::UnlessStopped
        );
        assert!("on-failure:x"
            .parse::<RestartPolicy>()
            .unwrap_err()
            .contains("count"));
        assert!("sometimes".parse::<RestartPolicy>().is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("proj-web-1").is_ok());
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn monitor_reports_are_read() {
        assert_eq!(mon::read_report(&b"ok 42\n"[..]), Ok(42));
        assert_eq!(
            mon::read_report(&b"error no such file\n"[..]),
            Err("no such file".to_string())
        );
        assert!(mon::read_report(&b""[..])
            .unwrap_err()
            .contains("monitor.log"));
    }
}
