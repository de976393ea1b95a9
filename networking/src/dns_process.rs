//! Starting and stopping a network's DNS responder process (see [`crate::dns`]).

use std::ffi::OsString;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::dns::server_ready_file;
use crate::error::{NetError, Result};

/// How to run the responder.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// The program: the `berth-dns` binary, or any that calls
    /// [`crate::dns::run_from_args`] with the arguments after `args`.
    pub program: PathBuf,
    /// Arguments before the responder's own (e.g. a hidden verb of the `berth` CLI).
    pub args: Vec<OsString>,
    /// Upstream resolvers; `None`: the host's (its /etc/resolv.conf); `Some(vec![])`:
    /// none (names outside the stack get SERVFAIL).
    pub upstreams: Option<Vec<SocketAddr>>,
}

fn dir(run: &Path) -> PathBuf {
    run.join("dns")
}

fn pid_file(run: &Path, network: &str) -> PathBuf {
    dir(run).join(format!("{network}.pid"))
}

fn log_file(run: &Path, network: &str) -> PathBuf {
    dir(run).join(format!("{network}.log"))
}

/// The responder of `network`, if one runs: its pid, checked against its command line
/// (a pid file can outlive its process, and the pid be reused).
pub(crate) fn running(run: &Path, network: &str) -> Option<Pid> {
    let pid: i32 = fs::read_to_string(pid_file(run, network))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z'));
    let ours = cmdline
        .split(|b| *b == 0)
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] == b"--network" && w[1] == network.as_bytes());
    (ours && !zombie).then_some(Pid::from_raw(pid))
}

pub(crate) fn start(
    run: &Path,
    root: &Path,
    network: &str,
    listen: SocketAddr,
    opts: &DnsOptions,
) -> Result<()> {
    if running(run, network).is_some() {
        return Ok(());
    }
    fs::create_dir_all(dir(run))
        .map_err(|e| NetError::io(format!("create {}", dir(run).display()), e))?;
    let ready = server_ready_file(run, network);
    let _ = fs::remove_file(&ready);
    let log =
        File::create(log_file(run, network)).map_err(|e| NetError::io("create the DNS log", e))?;
    let mut cmd = Command::new(&opts.program);
    cmd.args(&opts.args)
        .arg("--root")
        .arg(root)
        .arg("--run")
        .arg(run)
        .arg("--network")
        .arg(network)
        .arg("--listen")
        .arg(listen.to_string());
    match &opts.upstreams {
        None => {}
        Some(u) if u.is_empty() => {
            cmd.arg("--no-upstream");
        }
        Some(u) => {
            for up in u {
                cmd.arg("--upstream").arg(up.to_string());
            }
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    // Its own session: the responder outlives the `berth` command and its terminal.
    // SAFETY: setsid is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| NetError::io(format!("start {}", opts.program.display()), e))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if fs::read_to_string(&ready).is_ok_and(|p| p.trim() == child.id().to_string()) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(log_file(run, network)).unwrap_or_default();
            return Err(NetError::io(
                format!(
                    "DNS responder for {network} exited ({status}): {}",
                    log.trim()
                ),
                std::io::Error::other("responder failed"),
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NetError::io(
                format!("DNS responder for {network} did not start within 5s"),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    fs::write(pid_file(run, network), child.id().to_string())
        .map_err(|e| NetError::io("write the DNS pid file", e))?;
    Ok(())
}

/// Stops the responder (if any) and removes its files. Idempotent.
pub(crate) fn stop(run: &Path, network: &str) -> Result<()> {
    if let Some(pid) = running(run, network) {
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            // Reap it if it is our child (a zombie still answers kill(0)).
            let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
            if running(run, network).is_none() {
                break;
            }
            if Instant::now() > deadline {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for f in [
        pid_file(run, network),
        log_file(run, network),
        server_ready_file(run, network),
    ] {
        match fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetError::io(format!("remove {}", f.display()), e)),
        }
    }
    let _ = fs::remove_dir(dir(run)); // only when empty
    Ok(())
}
