//! Parent <-> child synchronisation over a SOCK_SEQPACKET socket pair: one JSON message
//! per packet, EOF when the other side exits or execs (the fds are close-on-exec).

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use super::error::{errno, Result, RuntimeError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// Parent -> child: carry on.
    Go,
    /// Child (new user namespace) -> parent: write my uid/gid maps.
    MapIds,
    /// Intermediate -> parent: the container's init has this pid (host view).
    InitPid(i32),
    /// Init -> parent: mounts are done, run createRuntime hooks now.
    RunHooks,
    /// Init -> parent: set up and waiting for `start`.
    Ready,
    /// Any child -> parent: what failed.
    Error { stage: String, message: String },
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(errno("socketpair"))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, m: &Msg) -> Result<()> {
        let buf = serde_json::to_vec(m).expect("messages serialise");
        nix::unistd::write(self.fd.as_fd(), &buf)
            .map_err(errno("sending to the container process"))?;
        Ok(())
    }

    /// Next message, or None at EOF.
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match nix::unistd::read(self.fd.as_fd(), &mut buf) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.map_err(errno("reading from the container process"))?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| RuntimeError::Child {
                stage: "sync".into(),
                message: format!("garbled message from the container process: {e}"),
            })
    }

    /// Receives and insists on `want`; a child's Error becomes the error returned.
    pub fn expect(&self, want: &Msg, what: &str) -> Result<()> {
        match self.recv()? {
            Some(m) if &m == want => Ok(()),
            Some(Msg::Error { stage, message }) => Err(RuntimeError::Child { stage, message }),
            Some(other) => Err(RuntimeError::Child {
                stage: "sync".into(),
                message: format!("expected {want:?} while {what}, got {other:?}"),
            }),
            None => Err(RuntimeError::Child {
                stage: what.into(),
                message: "the process exited without reporting (killed by a signal, or it crashed)"
                    .into(),
            }),
        }
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}
