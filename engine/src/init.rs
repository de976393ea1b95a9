//! `init: true`: Berth's minimal init. With the annotation [`ANNOTATION`] on a spec,
//! the runtime's container init forks right before exec: the child becomes the
//! user's program, and this process stays PID 1 of the container to forward signals
//! to it and reap every orphan that comes back to PID 1 (the job of tini /
//! docker-init). Being our own code already inside the container, it needs no binary
//! in the image's root filesystem.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Set to "true" on a spec whose PID 1 is to be Berth's init.
pub const ANNOTATION: &str = "io.berth.init";

pub fn wanted(spec: &oci_spec::runtime::Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Forwards signals to `child` and reaps zombies until `child` exits, then exits
/// with its status (128+N when a signal N killed it).
pub fn supervise(child: i32) -> ! {
    // Every signal waits for sigwaitinfo: PID 1 has no default actions anyway.
    let all = SigSet::all();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None);
    // SAFETY: syscalls with integer arguments. Nothing but the wait loop needs any
    // fd (the start socket, the runtime's channels), and this process needs no
    // privilege: drop every capability and forbid gaining any.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    let _ = crate::runtime::capabilities::capset(0, 0, 0);
    // This process is a copy of the monitor that set the container up: keep only
    // the pages the wait loop needs.
    crate::monitor::shed::shed_startup_pages();
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waiting on the blocked set with our out-parameter.
        let sig = unsafe { libc::sigwaitinfo(all.as_ref(), &mut info) };
        if sig < 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            if let Ok(s) = Signal::try_from(sig) {
                let _ = nix::sys::signal::kill(Pid::from_raw(child), s);
            }
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, c)) if p.as_raw() == child => exit(c),
                Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == child => exit(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: leave without the runtime's exit handlers.
    unsafe { libc::_exit(code) }
}
