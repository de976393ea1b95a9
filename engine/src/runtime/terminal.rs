//! `terminal: true`: the container gets a pseudo-terminal made inside it, and the
//! master side goes to the caller over the console socket (SCM_RIGHTS), as runc does.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use super::error::{errno, Result};

/// Makes a pty from the container's /dev/ptmx, sends the master over `console`, and
/// makes the slave this process's controlling terminal and stdio.
pub fn setup(console: &UnixStream) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(errno("opening /dev/ptmx in the container"))?;
    grantpt(&master).map_err(errno("grantpt"))?;
    unlockpt(&master).map_err(errno("unlockpt"))?;
    let slave_name = ptsname_r(&master).map_err(errno("ptsname"))?;
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(slave_name.as_bytes())];
    sendmsg::<()>(
        console.as_fd().as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .map_err(errno("sending the pty master over --console-socket"))?;
    let slave = nix::fcntl::open(
        slave_name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(errno(format!("opening {slave_name}")))?;
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(errno("dup2 of the pty")(nix::errno::Errno::last()));
        }
    }
    // SAFETY: ioctl on our own stdin, which is now the pty slave.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(errno("making the pty the controlling terminal")(
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}
