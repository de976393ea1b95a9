//! `exec` with a terminal: the process gets a pty made inside the container (the
//! runtime sends its master side over a console socket, as for `create`), and this
//! helper relays between the caller's stdin/stdout and that master ([`super::relay`]),
//! with the caller's terminal in raw mode so keys (Ctrl-C included) reach the process
//! as typed.
//!
//! It runs in the separate exec helper process (single-threaded, see `exec_helper`),
//! which is a subreaper: the exec'd process comes back to it and is waited for here.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::relay::{self, Peer};
use crate::runtime::{ExecResult, Runtime};

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

fn stdout() -> BorrowedFd<'static> {
    // SAFETY: fd 1 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(1) }
}

/// The exec'd process's terminal (master side) and the process.
struct Pty {
    master: OwnedFd,
    pid: Pid,
    pending: Vec<u8>,
}

impl Peer for Pty {
    fn fd(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }
    fn pending(&mut self) -> (BorrowedFd<'_>, &mut Vec<u8>) {
        (self.master.as_fd(), &mut self.pending)
    }
    fn input(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }
    fn close_input(&mut self) {
        // Our stdin ended (a pipe): tell the terminal, as Ctrl-D would.
        self.pending.push(4);
    }
    fn resize(&mut self, rows: u16, cols: u16) {
        relay::set_size(self.master.as_fd(), rows, cols);
    }
    fn output(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(n) if n > 0 => relay::write_all(stdout(), &buf[..n]),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => true,
            // EOF or EIO: every holder of the terminal's other side closed it.
            _ => false,
        }
    }
    fn finished(&mut self) -> Option<i32> {
        let code = waitpid(self.pid, Some(WaitPidFlag::WNOHANG))
            .ok()
            .and_then(exit_code)?;
        // Drain what the process wrote before it ended.
        loop {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            if !matches!(poll(&mut fds, PollTimeout::from(50u16)), Ok(n) if n > 0) || !self.output()
            {
                break;
            }
        }
        Some(code)
    }
    fn end(&mut self) -> i32 {
        waitpid(self.pid, None)
            .ok()
            .and_then(exit_code)
            .unwrap_or(1)
    }
}

/// Runs `proc` (whose `terminal` is true) in container `id` and relays its terminal.
/// Returns the process's exit code (126 when it could not be started).
pub fn run(rt: &Runtime, run: &Path, id: &str, proc: &oci_spec::runtime::Process) -> i32 {
    let sock = run.join(format!("exec-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let listener = match UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth: exec: binding {}: {e}", sock.display());
            return 126;
        }
    };
    let started = rt.exec_with_console(id, proc, false, Some(&sock));
    let _ = std::fs::remove_file(&sock);
    let pid = match started {
        Ok(ExecResult::Started(pid)) => Pid::from_raw(pid),
        Ok(ExecResult::Exited(c)) => return c,
        Err(e) => {
            eprintln!("berth: exec failed: {e}");
            return 126;
        }
    };
    let master: OwnedFd = match super::stdio::recv_fd(&listener) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("berth: exec: receiving the terminal: {e}");
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            return waitpid(pid, None).ok().and_then(exit_code).unwrap_or(126);
        }
    };
    let _ = super::stdio::set_nonblocking(master.as_raw_fd());
    let mut pty = Pty {
        master,
        pid,
        pending: vec![],
    };
    relay::relay(&mut pty, true, true)
}
