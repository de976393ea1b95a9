//! The last steps before the user's program runs, in a security-driven order:
//! rlimits, cwd, (seccomp if no_new_privs is off), bounding set, user and groups,
//! capabilities, no_new_privs, (seccomp if on: last), umask, signals, execve.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use oci_spec::runtime::{LinuxSeccomp, PosixRlimitType, Process};

use super::capabilities::{self, CapMasks};
use super::error::{Result, RuntimeError};

fn fail(stage: &str, message: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Child {
        stage: stage.to_string(),
        message: message.to_string(),
    }
}

pub fn rlimit_resource(t: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    Some(match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

pub fn apply_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().iter().flatten() {
        let Some(res) = rlimit_resource(r.typ()) else {
            return Err(fail("rlimits", format!("{:?} is not supported", r.typ())));
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: plain struct argument.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(fail(
                "rlimits",
                format!(
                    "setrlimit {:?} soft={} hard={}: {e} (raising a hard limit needs CAP_SYS_RESOURCE, which this host's bounding set may lack; lower it to the host's hard limit)",
                    r.typ(),
                    r.soft(),
                    r.hard()
                ),
            ));
        }
    }
    Ok(())
}

/// Finds `prog` on the container's PATH (from the process env, not ours).
pub fn resolve_program(prog: &str, env: &[String]) -> Result<PathBuf> {
    if prog.contains('/') {
        return Ok(PathBuf::from(prog));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(prog);
        if let Ok(md) = std::fs::metadata(&cand) {
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(fail(
        "exec",
        format!("executable {prog:?} not found in PATH {path:?} inside the container"),
    ))
}

/// Marks every fd from `first` up close-on-exec, so nothing of the runtime leaks.
pub fn cloexec_from(first: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// Resets what the runtime changed (Rust ignores SIGPIPE) so the program starts clean.
pub fn reset_signals() {
    for s in Signal::iterator() {
        if s == Signal::SIGKILL || s == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound.
        let _ = unsafe { signal::signal(s, SigHandler::SigDfl) };
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

fn drop_bounding(keep: u64) -> Result<()> {
    for cap in 0..=capabilities::last_cap() {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                continue; // capability unknown to this kernel
            }
            return Err(fail(
                "capabilities",
                format!("dropping capability {cap} from the bounding set: {e}"),
            ));
        }
    }
    Ok(())
}

fn set_user(p: &Process) -> Result<()> {
    let u = p.user();
    let groups: Vec<nix::unistd::Gid> = u
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups)
        .map_err(|e| fail("user", format!("setgroups {:?}: {e}", u.additional_gids())))?;
    let gid = nix::unistd::Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| fail("user", format!("setgid {}: {e}", u.gid())))?;
    let uid = nix::unistd::Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| fail("user", format!("setuid {}: {e}", u.uid())))?;
    Ok(())
}

/// Everything a process needs to become the user's program.
pub struct ExecPlan<'a> {
    pub process: &'a Process,
    pub seccomp: Option<&'a LinuxSeccomp>,
    pub caps: CapMasks,
    /// Extra fds (from 3) handed to the program (`--preserve-fds`).
    pub preserve_fds: u32,
}

/// Sets up credentials and security and execs. Returns only on failure.
pub fn finalize_and_exec(plan: &ExecPlan) -> Result<Infallible> {
    let p = plan.process;
    apply_rlimits(p)?;
    let cwd = p.cwd();
    nix::unistd::chdir(cwd).map_err(|e| fail("cwd", format!("chdir {}: {e}", cwd.display())))?;
    let nnp = p.no_new_privileges().unwrap_or(false);
    if !nnp {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while we have it.
        if let Some(s) = plan.seccomp {
            super::seccomp::load(s)?;
        }
    }
    // Keep permitted capabilities across the uid change; effective ones are set after.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    drop_bounding(plan.caps.bounding)?;
    set_user(p)?;
    let c = plan.caps;
    capabilities::capset(c.effective, c.permitted, c.inheritable)
        .map_err(|e| fail("capabilities", format!("capset: {e}")))?;
    for cap in 0..=capabilities::last_cap() {
        if c.ambient & (1u64 << cap) != 0 {
            // SAFETY: prctl with integer arguments.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            if r != 0 {
                return Err(fail(
                    "capabilities",
                    format!("raising ambient capability {cap}: {} (it must be permitted and inheritable)", std::io::Error::last_os_error()),
                ));
            }
        }
    }
    if nnp {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(fail("no_new_privs", std::io::Error::last_os_error()));
        }
        if let Some(s) = plan.seccomp {
            super::seccomp::load(s)?;
        }
    }
    let umask = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        umask as libc::mode_t,
    ));
    exec(p, plan.preserve_fds)
}

fn exec(p: &Process, preserve_fds: u32) -> Result<Infallible> {
    let args = p.args().clone().unwrap_or_default();
    let env = p.env().clone().unwrap_or_default();
    let prog = resolve_program(&args[0], &env)?;
    let cstr =
        |s: &str| CString::new(s).map_err(|_| fail("exec", format!("{s:?} contains a NUL byte")));
    let c_args = args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let c_env = env.iter().map(|e| cstr(e)).collect::<Result<Vec<_>>>()?;
    let c_prog = cstr(&prog.to_string_lossy())?;
    cloexec_from(3 + preserve_fds);
    reset_signals();
    let e = nix::unistd::execve(&c_prog, &c_args, &c_env).unwrap_err();
    Err(fail("exec", format!("exec {}: {e}", prog.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_is_found_on_the_containers_path() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert_eq!(
            resolve_program("sh", &env).unwrap(),
            PathBuf::from("/bin/sh")
        );
        assert_eq!(
            resolve_program("/x/y", &env).unwrap(),
            PathBuf::from("/x/y")
        );
        let e = resolve_program("no-such-prog-berth", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found in PATH"), "{e}");
    }
}
