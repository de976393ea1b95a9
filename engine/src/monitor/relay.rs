//! The caller's side of an attached process (`exec` with a terminal, `berth run`'s
//! attach): our stdin goes to the container, its output to our stdout and stderr, our
//! terminal is in raw mode while it lasts (keys, Ctrl-C and Ctrl-D included, reach the
//! container as bytes) and its size follows ours (at the start and on SIGWINCH). What
//! is on the other side — a pty master from the runtime, or the monitor's control
//! socket speaking [`super::frames`] — is a [`Peer`].
//!
//! Runs in a single-threaded helper process (a signalfd needs the signal blocked in
//! every thread).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};

nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);

/// The other end of the relay.
pub(super) trait Peer {
    /// Polled for output, and for room while input is queued; non-blocking.
    fn fd(&self) -> BorrowedFd<'_>;
    /// Input (in the peer's encoding) not yet written to [`Peer::fd`].
    fn pending(&mut self) -> (BorrowedFd<'_>, &mut Vec<u8>);
    /// Input is queued that the peer has not taken yet.
    fn wants_write(&mut self) -> bool {
        !self.pending().1.is_empty()
    }
    /// Writes queued input without blocking; on failure drops it and says false.
    fn flush(&mut self) -> bool {
        let (fd, pending) = self.pending();
        write_some(fd, pending)
    }
    fn input(&mut self, data: &[u8]);
    /// Our stdin ended.
    fn close_input(&mut self);
    fn resize(&mut self, rows: u16, cols: u16);
    /// Reads what is there and writes it out; false once the peer ended.
    fn output(&mut self) -> bool;
    /// The exit code, once the other side finished (asked every turn).
    fn finished(&mut self) -> Option<i32>;
    /// The exit code after the relay ended without [`Peer::finished`] saying so.
    fn end(&mut self) -> i32;
}

/// Puts the caller's terminal back as it was, however the relay ends.
struct RawGuard(Option<Termios>);

impl Drop for RawGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = termios::tcsetattr(stdin(), SetArg::TCSADRAIN, t);
        }
    }
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

fn raw_stdin() -> RawGuard {
    let Ok(saved) = termios::tcgetattr(stdin()) else {
        // Not a terminal (a pipe): relay bytes as they come.
        return RawGuard(None);
    };
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    let _ = termios::tcsetattr(stdin(), SetArg::TCSANOW, &raw);
    RawGuard(Some(saved))
}

/// (rows, cols) of our terminal (stdin's, else stdout's), if we have one.
pub(super) fn our_size() -> Option<(u16, u16)> {
    for fd in [0, 1] {
        // SAFETY: zeroed winsize is valid; TIOCGWINSZ fills it.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { get_winsize(fd, &mut ws) }.is_ok() && (ws.ws_row, ws.ws_col) != (0, 0) {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// Sets the size of the terminal whose master is `fd`.
pub(super) fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a winsize we own.
    let _ = unsafe { set_winsize(fd.as_raw_fd(), &ws) };
}

/// Writes all of `buf` to `fd` (waiting out EAGAIN); false when `fd` is gone.
pub(super) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> bool {
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

/// Writes what a non-blocking `fd` takes of `pending` now; false (and `pending`
/// dropped) when `fd` is gone.
pub(super) fn write_some(fd: BorrowedFd<'_>, pending: &mut Vec<u8>) -> bool {
    while !pending.is_empty() {
        match nix::unistd::write(fd, pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(_) => {
                pending.clear();
                return false;
            }
        }
    }
    true
}

/// Relays until the peer finishes; returns its exit code. `raw`: our terminal goes
/// raw for the duration; `stdin`: our stdin is read and sent (its end closes the
/// peer's input). SIGTERM or SIGHUP (our terminal hung up) end the relay with
/// 128+N, our terminal put back first.
pub(super) fn relay(peer: &mut dyn Peer, raw: bool, stdin_wanted: bool) -> i32 {
    let mut watched = SigSet::empty();
    for s in [Signal::SIGWINCH, Signal::SIGTERM, Signal::SIGHUP] {
        watched.add(s);
    }
    let resized = watched
        .thread_block()
        .ok()
        .and_then(|_| SignalFd::with_flags(&watched, SfdFlags::SFD_NONBLOCK).ok());
    if let Some((rows, cols)) = our_size() {
        peer.resize(rows, cols);
    }
    let _guard = raw.then(raw_stdin);
    let mut stdin_open = stdin_wanted;
    let mut buf = [0u8; 8192];
    loop {
        if let Some(code) = peer.finished() {
            return code;
        }
        if let Some(sfd) = &resized {
            // Drain pending signals, then pass the new size on.
            let mut any = false;
            while let Ok(Some(si)) = sfd.read_signal() {
                if si.ssi_signo as i32 != libc::SIGWINCH {
                    return 128 + si.ssi_signo as i32;
                }
                any = true;
            }
            if let Some((rows, cols)) = our_size().filter(|_| any) {
                peer.resize(rows, cols);
            }
        }
        let wants_write = peer.wants_write();
        let mut flags = PollFlags::POLLIN;
        if wants_write {
            flags |= PollFlags::POLLOUT;
        }
        let mut fds = vec![PollFd::new(peer.fd(), flags)];
        if let Some(sfd) = &resized {
            fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        }
        // Our stdin is read only once the peer took the last of it.
        let stdin_at = fds.len();
        if stdin_open && !wants_write {
            fds.push(PollFd::new(stdin(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
        let peer_ev = fds[0].revents().unwrap_or(PollFlags::empty());
        let stdin_ev = fds
            .get(stdin_at)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        drop(fds);
        if peer_ev.contains(PollFlags::POLLOUT) && !peer.flush() {
            stdin_open = false;
        }
        if peer_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            && !peer.output()
        {
            break;
        }
        if !stdin_ev.is_empty() {
            match nix::unistd::read(stdin(), &mut buf) {
                Ok(n) if n > 0 => peer.input(&buf[..n]),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                _ => {
                    stdin_open = false;
                    peer.close_input();
                }
            }
            if !peer.flush() {
                stdin_open = false;
            }
        }
    }
    peer.finished().unwrap_or_else(|| peer.end())
}
