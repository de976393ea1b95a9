//! Berth's default seccomp profile, as a table of its own: the system calls Docker's
//! default profile keeps from a container, each with the capability that lifts the block
//! (as Docker's profile does: a container given CAP_SYS_ADMIN may mount), and why.
//!
//! Docker's profile is an allow list (about 350 names, everything else EPERM); this one
//! is a deny list of what that allow list leaves out on x86_64 and aarch64, which keeps
//! the table readable and reviewable, and fails open only for system calls newer than the
//! table. Foreign ABIs are not in the filter at all: a 32-bit (`int 0x80`) or x32 call
//! from an x86_64 container gets ENOSYS (libseccomp's bad-arch action, set in
//! [`super::seccomp::build`]).

use serde_json::{json, Value};

/// One row: these calls fail with `errno` unless the container holds one of `unless`.
struct Block {
    names: &'static [&'static str],
    /// Capabilities that lift the block (any one); empty: blocked for everyone.
    unless: &'static [&'static str],
    errno: i32,
    /// Only when argument `.0` equals `.1`.
    arg_eq: Option<(u32, u64)>,
    #[allow(dead_code)] // read by people: why the row is here
    why: &'static str,
}

const EPERM: i32 = libc::EPERM;
const ENOSYS: i32 = libc::ENOSYS;

const fn block(
    names: &'static [&'static str],
    unless: &'static [&'static str],
    why: &'static str,
) -> Block {
    Block {
        names,
        unless,
        errno: EPERM,
        arg_eq: None,
        why,
    }
}

/// The namespace flags of clone(2); a new namespace needs CAP_SYS_ADMIN (as unshare).
const CLONE_NS_FLAGS: &[(u64, &str)] = &[
    (libc::CLONE_NEWNS as u64, "mount"),
    (libc::CLONE_NEWUTS as u64, "uts"),
    (libc::CLONE_NEWIPC as u64, "ipc"),
    (libc::CLONE_NEWUSER as u64, "user"),
    (libc::CLONE_NEWPID as u64, "pid"),
    (libc::CLONE_NEWNET as u64, "net"),
    (libc::CLONE_NEWCGROUP as u64, "cgroup"),
];

#[rustfmt::skip]
const TABLE: &[Block] = &[
    block(&["init_module", "finit_module", "delete_module", "create_module",
            "get_kernel_syms", "query_module"],
          &["CAP_SYS_MODULE"], "kernel modules run code in the host kernel"),
    block(&["kexec_load", "kexec_file_load", "reboot"],
          &["CAP_SYS_BOOT"], "load a new kernel, reboot the host"),
    block(&["mount", "umount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick",
            "open_tree", "move_mount", "mount_setattr", "pivot_root"],
          &["CAP_SYS_ADMIN"], "mounts: reach host filesystems, hide or replace files"),
    block(&["unshare", "setns"],
          &["CAP_SYS_ADMIN"], "new namespaces (a user namespace grants every capability inside it)"),
    block(&["quotactl", "quotactl_fd", "lookup_dcookie", "fanotify_init",
            "sethostname", "setdomainname", "swapon", "swapoff"],
          &["CAP_SYS_ADMIN"], "host-wide administration: quotas, swap, filesystem watches"),
    block(&["bpf"], &["CAP_SYS_ADMIN", "CAP_BPF"], "eBPF programs read kernel memory and attach anywhere"),
    block(&["perf_event_open"], &["CAP_SYS_ADMIN", "CAP_PERFMON"], "profiling leaks kernel addresses and other processes"),
    block(&["open_by_handle_at"], &["CAP_DAC_READ_SEARCH"], "opens host files by handle: the `shocker` escape"),
    block(&["settimeofday", "stime", "clock_settime", "clock_settime64",
            "clock_adjtime", "clock_adjtime64"],
          &["CAP_SYS_TIME"], "the clock is not namespaced: it is the host's"),
    block(&["iopl", "ioperm"], &["CAP_SYS_RAWIO"], "raw I/O port access"),
    block(&["vhangup"], &["CAP_SYS_TTY_CONFIG"], "hangs up the terminal"),
    block(&["acct"], &["CAP_SYS_PACCT"], "process accounting to a file of the caller's choice"),
    block(&["syslog"], &["CAP_SYSLOG"], "the kernel log: addresses, other containers' messages"),
    block(&["kcmp", "pidfd_getfd"], &["CAP_SYS_PTRACE"], "inspect or steal another process's files"),
    block(&["keyctl", "add_key", "request_key"], &[], "the kernel keyring is not namespaced"),
    block(&["userfaultfd"], &["CAP_SYS_PTRACE"], "stalls kernel page faults: a race-exploit tool"),
    block(&["io_uring_setup", "io_uring_enter", "io_uring_register"], &[],
          "a second syscall interface that seccomp cannot see into"),
    block(&["uselib", "ustat", "_sysctl", "sysfs", "nfsservctl", "vm86", "vm86old"], &[],
          "obsolete interfaces, only attack surface today"),
    Block { names: &["clone3"], unless: &["CAP_SYS_ADMIN"], errno: ENOSYS, arg_eq: None,
            why: "its flags are in memory, out of seccomp's sight: ENOSYS makes libc fall back to clone" },
    Block { names: &["socket"], unless: &[], errno: EPERM, arg_eq: Some((0, libc::AF_VSOCK as u64)),
            why: "vsock reaches the hypervisor, not the container's network" },
];

/// The default profile as an OCI `linux.seccomp` value for a container holding `caps`
/// (the capability names of its bounding set). Everything not in the table is allowed.
pub fn default_profile(caps: &[String]) -> Value {
    let has = |unless: &[&str]| unless.iter().any(|c| caps.iter().any(|h| h == c));
    let mut syscalls = vec![];
    for b in TABLE.iter().filter(|b| !has(b.unless)) {
        let mut rule = json!({"names": b.names, "action": "SCMP_ACT_ERRNO", "errnoRet": b.errno});
        if let Some((index, value)) = b.arg_eq {
            // socket(AF_VSOCK, ...): the domain is a value, not a flag.
            rule["args"] = json!([{"index": index, "value": value, "op": "SCMP_CMP_EQ"}]);
        }
        syscalls.push(rule);
    }
    if !has(&["CAP_SYS_ADMIN"]) {
        for (flag, _) in CLONE_NS_FLAGS {
            // MASKED_EQ: value is the mask, valueTwo what the masked argument must equal.
            syscalls.push(json!({
                "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                "args": [{"index": clone_flags_arg(), "value": flag, "valueTwo": flag,
                          "op": "SCMP_CMP_MASKED_EQ"}]
            }));
        }
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls})
}

/// clone's flags are its first argument everywhere but s390 (second).
const fn clone_flags_arg() -> u32 {
    if cfg!(target_arch = "s390x") {
        1
    } else {
        0
    }
}

/// Every system call name the table blocks for a container without capabilities (for
/// documentation and tests).
pub fn blocked_names() -> Vec<&'static str> {
    TABLE
        .iter()
        .flat_map(|b| b.names.iter().copied())
        .chain(["clone"])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccomp;

    fn names(v: &Value) -> Vec<String> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn default_profile_compiles_and_blocks_the_dangerous_calls() {
        let v = default_profile(&[]);
        let s: LinuxSeccomp = serde_json::from_value(v.clone()).unwrap();
        crate::runtime::seccomp::validate(&s).unwrap();
        let f = crate::runtime::seccomp::build(&s).unwrap();
        let tmp = tempfile::tempfile().unwrap();
        f.export_bpf(&tmp).unwrap();
        let n = names(&v);
        for must in [
            "mount",
            "unshare",
            "setns",
            "init_module",
            "finit_module",
            "kexec_load",
            "reboot",
            "keyctl",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "open_by_handle_at",
            "settimeofday",
            "clock_settime",
            "swapon",
            "swapoff",
            "clone",
        ] {
            assert!(n.iter().any(|x| x == must), "{must} is not blocked");
        }
    }

    #[test]
    fn a_capability_lifts_its_rows_only() {
        let v = default_profile(&["CAP_SYS_ADMIN".into(), "CAP_SYS_TIME".into()]);
        let n = names(&v);
        assert!(!n
            .iter()
            .any(|x| x == "mount" || x == "clone" || x == "settimeofday"));
        assert!(n.iter().any(|x| x == "init_module"));
        assert!(
            n.iter().any(|x| x == "keyctl"),
            "no capability lifts keyctl"
        );
    }
}
