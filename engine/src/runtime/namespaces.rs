//! Namespaces: which to make new, which to join by path, and joining a running
//! container's set for exec.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use super::error::{errno, Result};

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(0x80),
    }
}

/// Name under /proc/PID/ns/.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Order for setns: user first (it grants the rights for the others), mount last (it
/// changes how later paths resolve).
const JOIN_ORDER: &[LinuxNamespaceType] = &[
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
];

/// The plan for a new container: flags to unshare and fds to setns.
pub struct NsPlan {
    pub new: CloneFlags,
    pub join: Vec<(LinuxNamespaceType, OwnedFd, PathBuf)>,
}

/// Opens every namespace to join now, while host paths still resolve.
pub fn plan(list: &[LinuxNamespace]) -> Result<NsPlan> {
    let mut new = CloneFlags::empty();
    let mut join = vec![];
    for t in JOIN_ORDER.iter().chain([LinuxNamespaceType::Time].iter()) {
        let Some(ns) = list.iter().find(|n| n.typ() == *t) else {
            continue;
        };
        match ns.path() {
            None => new |= clone_flag(*t),
            Some(p) => {
                let fd = open(
                    p.as_path(),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno(format!(
                    "opening {} namespace {}",
                    proc_name(*t),
                    p.display()
                )))?;
                join.push((*t, fd, p.clone()));
            }
        }
    }
    Ok(NsPlan { new, join })
}

pub fn join(t: LinuxNamespaceType, fd: &OwnedFd, what: &Path) -> Result<()> {
    nix::sched::setns(fd, clone_flag(t)).map_err(errno(format!(
        "joining {} namespace {}",
        proc_name(t),
        what.display()
    )))
}

/// The namespaces of `pid` that differ from ours, opened in join order for exec: the
/// user namespace last. The caller is host root, with rights over every namespace; a
/// container's network namespace made by the networking belongs to the host's user
/// namespace, which a process already in the container's could no longer join.
pub fn of_process(pid: i32) -> Result<Vec<(LinuxNamespaceType, OwnedFd, PathBuf)>> {
    let mut out = vec![];
    let user_last = JOIN_ORDER[1..]
        .iter()
        .chain(std::iter::once(&LinuxNamespaceType::User));
    for t in user_last {
        let name = proc_name(*t);
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let ours = PathBuf::from(format!("/proc/self/ns/{name}"));
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            continue;
        };
        if a.ino() == b.ino() && a.dev() == b.dev() {
            continue; // shared with us: setns would fail for user, and is a no-op otherwise
        }
        let fd = open(
            theirs.as_path(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno(format!("opening {}", theirs.display())))?;
        out.push((*t, fd, theirs));
    }
    Ok(out)
}
