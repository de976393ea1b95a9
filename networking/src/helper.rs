//! Helper processes (the DNS responder, the userspace port proxy): Berth has no daemon and
//! containers outlive the `berth` command, so what must keep running runs as a small
//! detached process of its own. Each is known by an id; its files live under
//! `BERTH_RUN/helpers/`: `<id>.pid`, `<id>.log`, and `<id>.ready`, which the helper writes
//! (its pid) once it is serving. The helper's command line carries `--ready <path>`, which
//! is how a pid found in a pid file is checked to still be that helper.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::error::{NetError, Result};

/// A program to run as a helper: the crate's binary, or any that calls the helper's
/// `run_from_args` with the arguments after `args`.
#[derive(Debug, Clone)]
pub struct HelperProgram {
    pub program: PathBuf,
    /// Arguments before the helper's own (e.g. a hidden verb of the `berth` CLI).
    pub args: Vec<OsString>,
}

pub(crate) struct Helper {
    dir: PathBuf,
    id: String,
}

impl Helper {
    pub(crate) fn new(run: &Path, id: &str) -> Self {
        Helper {
            dir: run.join("helpers"),
            id: id.to_string(),
        }
    }

    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.id))
    }

    pub(crate) fn ready_path(&self) -> PathBuf {
        self.file("ready")
    }

    /// The helper's pid while it runs (not a zombie, and its command line names our ready
    /// file: a pid file can outlive its process and the pid be reused). A helper whose
    /// starter was killed before it wrote the pid file is found by its command line.
    pub(crate) fn running(&self) -> Option<Pid> {
        let from_file = fs::read_to_string(self.file("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .filter(|pid| self.is_ours(*pid));
        from_file.or_else(|| self.find_orphan()).map(Pid::from_raw)
    }

    /// Whether `pid` is this helper, alive (not a zombie).
    fn is_ours(&self, pid: i32) -> bool {
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        let ready = self.ready_path();
        let ours = cmdline
            .split(|b| *b == 0)
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0] == b"--ready" && w[1] == ready.as_os_str().as_encoded_bytes());
        ours && !zombie
    }

    /// A live process running this helper, pid file or not.
    fn find_orphan(&self) -> Option<i32> {
        fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| self.is_ours(*pid))
    }

    /// Waits until the running helper `pid` says it is serving.
    fn wait_ready(&self, pid: Pid, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if fs::read_to_string(self.ready_path()).is_ok_and(|p| p.trim() == pid.to_string()) {
                return true;
            }
            if !self.is_ours(pid.as_raw()) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    /// Starts the helper (unless it runs) and waits until it says it is serving.
    pub(crate) fn start(&self, prog: &HelperProgram, args: &[OsString]) -> Result<()> {
        if let Some(pid) = self.running() {
            // One a killed starter left may still be coming up: let it finish; one that
            // never says it serves is replaced.
            if self.wait_ready(pid, Duration::from_secs(5)) {
                let _ = fs::create_dir_all(&self.dir);
                let _ = fs::write(self.file("pid"), pid.to_string());
                return Ok(());
            }
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        fs::create_dir_all(&self.dir)
            .map_err(|e| NetError::io(format!("create {}", self.dir.display()), e))?;
        let ready = self.ready_path();
        let _ = fs::remove_file(&ready);
        let log = File::create(self.file("log"))
            .map_err(|e| NetError::io(format!("create {}", self.file("log").display()), e))?;
        let mut cmd = Command::new(&prog.program);
        cmd.args(&prog.args)
            .args(args)
            .arg("--ready")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // Its own session: the helper outlives the `berth` command and its terminal.
        // SAFETY: setsid is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| NetError::io(format!("start {}", prog.program.display()), e))?;
        // The pid file first: a `berth` killed while the helper gets ready must leave a
        // helper that the next run finds (and `stop` can stop), not an unknown process
        // holding the helper's port.
        let forget = |child: &mut std::process::Child| {
            let _ = child.kill();
            let _ = child.wait();
            let _ = fs::remove_file(self.file("pid"));
        };
        if let Err(e) = fs::write(self.file("pid"), child.id().to_string()) {
            forget(&mut child);
            return Err(NetError::io(
                format!("write {}", self.file("pid").display()),
                e,
            ));
        }
        crate::fault::point("helper-after-spawn");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if fs::read_to_string(&ready).is_ok_and(|p| p.trim() == child.id().to_string()) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let _ = fs::remove_file(self.file("pid"));
                let log = fs::read_to_string(self.file("log")).unwrap_or_default();
                return Err(NetError::io(
                    format!("helper {} exited ({status}): {}", self.id, log.trim()),
                    std::io::Error::other("helper failed"),
                ));
            }
            if Instant::now() > deadline {
                forget(&mut child);
                return Err(NetError::io(
                    format!("helper {} did not start within 5s", self.id),
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Stops the helper (if it runs) and removes its files. Idempotent.
    pub(crate) fn stop(&self) -> Result<()> {
        // A helper that already exited by itself (its network's record went) and is our
        // child waits as a zombie: reap it (ECHILD, harmless, when it is not ours).
        if let Some(pid) = fs::read_to_string(self.file("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            if self.running().is_none() {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
            }
        }
        if let Some(pid) = self.running() {
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                // Reap it if it is our child (a zombie still answers kill(0)).
                let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
                if self.running().is_none() {
                    // It may have become a zombie just after the waitpid above: reap it
                    // now (a no-op when it is not our child).
                    let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
                    break;
                }
                if Instant::now() > deadline {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        for ext in ["pid", "log", "ready"] {
            let f = self.file(ext);
            match fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NetError::io(format!("remove {}", f.display()), e)),
            }
        }
        let _ = fs::remove_dir(&self.dir); // only when empty
        Ok(())
    }

    /// Every helper id under `run` whose id starts with `prefix` (for removal after a
    /// crash, when no record names them).
    pub(crate) fn list(run: &Path, prefix: &str) -> Vec<Helper> {
        let dir = run.join("helpers");
        let mut ids: Vec<String> = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.to_string();
                let (id, _) = n.rsplit_once('.')?;
                id.starts_with(prefix).then(|| id.to_string())
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids.into_iter().map(|id| Helper::new(run, &id)).collect()
    }
}

/// Writes the ready file: the last step of a helper's start-up.
pub(crate) fn signal_ready(path: &Path) -> Result<()> {
    if let Some(d) = path.parent() {
        let _ = fs::create_dir_all(d);
    }
    fs::write(path, std::process::id().to_string())
        .map_err(|e| NetError::io(format!("write {}", path.display()), e))
}
