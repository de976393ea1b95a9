//! `berth-monitor attach ROOT RUN ID`: the caller's side of an attached container
//! (`berth run` without `-d`). It attaches raw to the container's monitor (which, for
//! a container started to wait for its client, starts it now), sends our stdin (when
//! the container keeps stdin open) and our terminal's size, and writes the container's
//! stdout and stderr to ours until the monitor reports the exit; the exit code is the
//! container's. With `tty`, our terminal is raw meanwhile ([`super::relay`]).
//!
//! A separate single-threaded process, as for `exec`: the caller (the `berth` CLI)
//! runs on tokio, where neither a signalfd nor raw-mode guards are safe to own.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::control::{Request, Response};
use super::frames::{self, Decoder};
use super::relay::{self, Peer};
use super::CONTROL_SOCK;
use crate::state::Store;

/// The monitor's control socket, speaking frames.
struct Monitor {
    sock: UnixStream,
    pending: Vec<u8>,
    frames: Decoder,
    exit: Option<i32>,
    /// Our stdout closed (`berth run ... | head -1`): we end as a writer does on SIGPIPE.
    stdout_gone: bool,
}

impl Peer for Monitor {
    fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
    fn pending(&mut self) -> (BorrowedFd<'_>, &mut Vec<u8>) {
        (self.sock.as_fd(), &mut self.pending)
    }
    fn input(&mut self, data: &[u8]) {
        frames::put(&mut self.pending, frames::STDIN, data);
    }
    fn close_input(&mut self) {
        frames::put(&mut self.pending, frames::CLOSE_STDIN, &[]);
    }
    fn resize(&mut self, rows: u16, cols: u16) {
        frames::put_resize(&mut self.pending, rows, cols);
        self.flush();
    }
    fn output(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match (&self.sock).read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => self.frames.push(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                return true
            }
            Err(_) => return false,
        }
        self.take_frames()
    }
    fn finished(&mut self) -> Option<i32> {
        self.exit
    }
    fn end(&mut self) -> i32 {
        if self.stdout_gone {
            return 128 + libc::SIGPIPE;
        }
        eprintln!("berth: lost the connection to the container's monitor before it exited");
        125
    }
}

impl Monitor {
    /// Writes out the output frames received so far; false when we cannot go on.
    fn take_frames(&mut self) -> bool {
        loop {
            match self.frames.next_frame() {
                Ok(Some((frames::STDOUT, data))) => {
                    // SAFETY: fd 1 stays open for the life of the process.
                    if !relay::write_all(unsafe { BorrowedFd::borrow_raw(1) }, &data) {
                        self.stdout_gone = true;
                        return false;
                    }
                }
                Ok(Some((frames::STDERR, data))) => {
                    // SAFETY: fd 2 stays open for the life of the process.
                    let _ = relay::write_all(unsafe { BorrowedFd::borrow_raw(2) }, &data);
                }
                Ok(Some((frames::EXIT, code))) => {
                    let code: [u8; 4] = code.try_into().unwrap_or([0, 0, 0, 125]);
                    self.exit = Some(i32::from_be_bytes(code));
                    return true;
                }
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

pub fn run(root: &Path, run: &Path, id: &str) -> i32 {
    let store = Store::new(root, run);
    let cfg = match store.load(id) {
        Ok(r) => r.config,
        Err(e) => {
            eprintln!("berth: attach: {e}");
            return 125;
        }
    };
    // Ctrl-C at a terminal that is not raw signals our whole process group: the
    // `berth` that started us passes it on to the container, and we keep relaying
    // until the container is done.
    // SAFETY: installing SIG_IGN is always sound.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGINT,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
    let path = store.run_dir(id).join(CONTROL_SOCK);
    let mut monitor = match connect(&path, cfg.tty) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("berth: attaching to {}: {e}", cfg.name);
            return 125;
        }
    };
    relay::relay(&mut monitor, cfg.tty, cfg.stdin_open)
}

/// Sends the attach request and reads the response line; what follows it is frames.
fn connect(path: &Path, tty: bool) -> Result<Monitor, String> {
    let mut sock = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let req = Request::Attach {
        raw: true,
        stdin_once: true,
        size: relay::our_size().filter(|_| tty),
    };
    let mut line = serde_json::to_vec(&req).expect("requests serialise");
    line.push(b'\n');
    sock.write_all(&line).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = got.iter().position(|&b| b == b'\n') {
            break i;
        }
        match sock.read(&mut buf) {
            Ok(0) => return Err("the monitor closed the connection".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    };
    let resp: Response = serde_json::from_slice(&got[..end])
        .map_err(|e| format!("bad response from the monitor: {e}"))?;
    if !resp.ok {
        return Err(resp.error.unwrap_or_default());
    }
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut frames = Decoder::default();
    frames.push(&got[end + 1..]);
    let mut m = Monitor {
        sock,
        pending: vec![],
        frames,
        exit: None,
        stdout_gone: false,
    };
    m.take_frames();
    Ok(m)
}
