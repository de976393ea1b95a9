//! File-descriptor plumbing of the monitor: pipes, and lending fds 0-2 to a process
//! the runtime forks (the runtime's children inherit the caller's stdio).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;

/// A pipe whose read end does not block; both ends close on exec.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    set_nonblocking(r.as_raw_fd())?;
    Ok((r, w))
}

/// A container's stdin: (read end, blocking, for the container; write end, ours,
/// non-blocking so a container that does not read never stalls the monitor).
pub fn stdin_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    set_nonblocking(w.as_raw_fd())?;
    Ok((r, w))
}

pub fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on an fd the caller owns.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Runs `f` with fds 0, 1, 2 pointing at `fds`, then puts ours back.
pub fn with_stdio<T>(fds: [RawFd; 3], f: impl FnOnce() -> T) -> T {
    // SAFETY: dup/dup2/close on fds 0-2 and on fds we just made.
    let saved: Vec<RawFd> = (0..3)
        .map(|i| unsafe { libc::fcntl(i, libc::F_DUPFD_CLOEXEC, 10) })
        .collect();
    for (i, fd) in fds.iter().enumerate() {
        unsafe { libc::dup2(*fd, i as RawFd) };
    }
    let out = f();
    for (i, fd) in saved.iter().enumerate() {
        if *fd >= 0 {
            unsafe {
                libc::dup2(*fd, i as RawFd);
                libc::close(*fd);
            }
        }
    }
    out
}

/// Reads what is there without blocking. Ok(None) on EOF.
pub fn read_some(fd: RawFd, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            return Ok(Some(n as usize));
        }
        if n == 0 {
            return Ok(None);
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(Some(0)),
            _ => return Err(e),
        }
    }
}

/// /dev/null opened read-write.
pub fn devnull() -> std::io::Result<OwnedFd> {
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    Ok(OwnedFd::from(f))
}

/// Takes ownership of a raw fd.
///
/// # Safety
/// `fd` must be open and owned by nobody else.
pub unsafe fn own(fd: RawFd) -> OwnedFd {
    OwnedFd::from_raw_fd(fd)
}

/// Accepts one connection on `l` and receives the fd it sends (SCM_RIGHTS), as the
/// runtime sends a terminal's master side over a console socket.
pub fn recv_fd(l: &std::os::unix::net::UnixListener) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::io::IoSliceMut;
    let (conn, _) = l.accept()?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut name = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this fd.
                return Ok(unsafe { own(*fd) });
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "the console socket carried no file descriptor",
    ))
}
