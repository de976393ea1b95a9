//! `exec` with a terminal: the process gets a pty made inside the container (the
//! runtime sends its master side over a console socket, as for `create`), and this
//! helper relays between the caller's stdin/stdout and that master, with the caller's
//! terminal in raw mode so keys (Ctrl-C included) reach the process as typed.
//!
//! It runs in the separate exec helper process (single-threaded, see `exec_helper`),
//! which is a subreaper: the exec'd process comes back to it and is waited for here.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::runtime::{ExecResult, Runtime};

nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);

/// Puts the caller's terminal back as it was, however the relay ends.
struct RawGuard(Option<Termios>);

impl Drop for RawGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: fd 0 stays open for the life of the process.
            let stdin = unsafe { BorrowedFd::borrow_raw(0) };
            let _ = termios::tcsetattr(stdin, SetArg::TCSADRAIN, t);
        }
    }
}

fn raw_stdin() -> RawGuard {
    // SAFETY: fd 0 stays open for the life of the process.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let Ok(saved) = termios::tcgetattr(stdin) else {
        // Not a terminal (a pipe): relay bytes as they come.
        return RawGuard(None);
    };
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    let _ = termios::tcsetattr(stdin, SetArg::TCSANOW, &raw);
    RawGuard(Some(saved))
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return false,
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            Err(_) => return false,
        }
    }
    true
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
    // The process's terminal starts the size of ours, and follows it (SIGWINCH).
    copy_size(&master);
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    let resized = winch
        .thread_block()
        .ok()
        .and_then(|_| SignalFd::with_flags(&winch, SfdFlags::SFD_NONBLOCK).ok());
    let guard = raw_stdin();
    let code = relay(&master, pid, resized.as_ref());
    drop(guard);
    code
}

/// Gives the container's terminal the size of ours.
fn copy_size(master: &OwnedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a winsize we own.
    if unsafe { get_winsize(0, &mut ws) }.is_ok() {
        let _ = unsafe { set_winsize(master.as_raw_fd(), &ws) };
    }
}

fn relay(master: &OwnedFd, pid: Pid, resized: Option<&SignalFd>) -> i32 {
    // SAFETY: fds 0 and 1 stay open for the life of the process.
    let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    let mut status = None;
    loop {
        if let Some(sfd) = resized {
            // Drain pending SIGWINCHs, then pass the new size on.
            let mut any = false;
            while let Ok(Some(_)) = sfd.read_signal() {
                any = true;
            }
            if any {
                copy_size(master);
            }
        }
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if let Some(sfd) = resized {
            fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        }
        let stdin_at = fds.len();
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
        let master_ev = fds[0].revents().unwrap_or(PollFlags::empty());
        let stdin_ev = fds
            .get(stdin_at)
            .filter(|_| stdin_open)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        if !master_ev.is_empty() {
            match nix::unistd::read(master, &mut buf) {
                Ok(n) if n > 0 => {
                    if !write_all(stdout, &buf[..n]) {
                        break;
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                // EOF or EIO: every holder of the terminal's other side closed it.
                _ => break,
            }
        }
        if !stdin_ev.is_empty() {
            match nix::unistd::read(stdin, &mut buf) {
                Ok(n) if n > 0 => {
                    if !write_all(master.as_fd(), &buf[..n]) {
                        stdin_open = false;
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                _ => {
                    // Our stdin ended (a pipe): tell the terminal, as Ctrl-D would.
                    stdin_open = false;
                    let _ = write_all(master.as_fd(), &[4]);
                }
            }
        }
        if let Ok(s) = waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            if let Some(c) = exit_code(s) {
                status = Some(c);
                // Drain what the process wrote before it ended.
                loop {
                    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
                    if !matches!(poll(&mut fds, PollTimeout::from(50u16)), Ok(n) if n > 0) {
                        break;
                    }
                    match nix::unistd::read(master, &mut buf) {
                        Ok(n) if n > 0 && write_all(stdout, &buf[..n]) => {}
                        _ => break,
                    }
                }
                break;
            }
        }
    }
    match status {
        Some(c) => c,
        None => waitpid(pid, None).ok().and_then(exit_code).unwrap_or(1),
    }
}
