//! seccomp from the spec's `linux.seccomp`, compiled by libseccomp (no hand-written BPF).

use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use super::error::{invalid, Result, RuntimeError};

const EPERM: u32 = libc::EPERM as u32;

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<ScmpAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(EPERM) as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(EPERM) as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(invalid(
                field,
                "SCMP_ACT_NOTIFY needs a seccomp agent, which berth-runtime does not support yet",
            ))
        }
    })
}

fn arch(a: &oci_spec::runtime::Arch) -> Result<ScmpArch> {
    // "ScmpArchX86_64" -> "SCMP_ARCH_X86_64", the names libseccomp parses.
    let dbg = format!("{a:?}");
    let tail = dbg.trim_start_matches("ScmpArch");
    let mut name = String::from("SCMP_ARCH_");
    let mut prev_lower = false;
    for c in tail.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            name.push('_');
        }
        prev_lower = c.is_ascii_lowercase();
        name.push(c.to_ascii_uppercase());
    }
    ScmpArch::from_str(&name).map_err(|_| {
        invalid(
            "linux.seccomp.architectures",
            format!("{name} is not known to libseccomp"),
        )
    })
}

fn op(o: LinuxSeccompOperator, value_two: Option<u64>) -> ScmpCompareOp {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two.unwrap_or(0)),
    }
}

/// One argument condition. For SCMP_CMP_MASKED_EQ the spec's `value` is the mask and
/// `valueTwo` the datum (runc and Docker's profile read it so: `value: 2114060288,
/// valueTwo: 0` on clone), while libseccomp takes the mask in the operator.
fn condition(a: &oci_spec::runtime::LinuxSeccompArg) -> ScmpArgCompare {
    match a.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpArgCompare::new(
            a.index() as u32,
            ScmpCompareOp::MaskedEqual(a.value()),
            a.value_two().unwrap_or(0),
        ),
        o => ScmpArgCompare::new(a.index() as u32, op(o, a.value_two()), a.value()),
    }
}

/// Checks actions and architectures without building a filter.
pub fn validate(s: &LinuxSeccomp) -> Result<()> {
    action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    for a in s.architectures().iter().flatten() {
        arch(a)?;
    }
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        action(
            sc.action(),
            sc.errno_ret(),
            &format!("linux.seccomp.syscalls[{i}].action"),
        )?;
        for a in sc.args().iter().flatten() {
            if a.index() > 5 {
                return Err(invalid(
                    format!("linux.seccomp.syscalls[{i}].args"),
                    format!("argument index {} is above 5", a.index()),
                ));
            }
        }
    }
    Ok(())
}

/// Compiles the filter. Syscall names this libseccomp does not know are skipped, as
/// runc does, so one profile serves several kernels.
pub fn build(s: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let err = |what: &str, e: libseccomp::error::SeccompError| RuntimeError::Child {
        stage: "seccomp".into(),
        message: format!("{what}: {e}"),
    };
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut f = ScmpFilterContext::new(default).map_err(|e| err("new filter", e))?;
    // no_new_privs is the spec's decision (process.noNewPrivileges), not libseccomp's.
    f.set_ctl_nnp(false).map_err(|e| err("ctl_nnp", e))?;
    // A call from an ABI the profile does not list (32-bit `int 0x80`, x32 on x86_64)
    // fails with ENOSYS instead of killing the thread: programs probe and fall back.
    f.set_act_badarch(ScmpAction::Errno(libc::ENOSYS))
        .map_err(|e| err("bad-arch action", e))?;
    for a in s.architectures().iter().flatten() {
        let a = arch(a)?;
        f.add_arch(a).map_err(|e| err("add_arch", e))?;
    }
    for sc in s.syscalls().iter().flatten() {
        let act = action(sc.action(), sc.errno_ret(), "linux.seccomp.syscalls")?;
        if act == default {
            continue; // libseccomp refuses rules equal to the default action
        }
        for name in sc.names() {
            let Ok(num) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let conds: Vec<ScmpArgCompare> = sc.args().iter().flatten().map(condition).collect();
            let r = if conds.is_empty() {
                f.add_rule(act, num)
            } else {
                f.add_rule_conditional(act, num, &conds)
            };
            r.map_err(|e| err(&format!("rule for {name}"), e))?;
        }
    }
    Ok(f)
}

/// Loads the filter into the calling process.
pub fn load(s: &LinuxSeccomp) -> Result<()> {
    let f = build(s)?;
    f.load().map_err(|e| RuntimeError::Child {
        stage: "seccomp".into(),
        message: format!("loading the filter: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_map_to_libseccomp() {
        use oci_spec::runtime::Arch;
        assert_eq!(arch(&Arch::ScmpArchX86_64).unwrap(), ScmpArch::X8664);
        assert_eq!(arch(&Arch::ScmpArchX86).unwrap(), ScmpArch::X86);
        assert_eq!(arch(&Arch::ScmpArchAarch64).unwrap(), ScmpArch::Aarch64);
    }

    #[test]
    fn builds_a_profile_and_skips_unknown_names() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }))
        .unwrap();
        validate(&s).unwrap();
        let f = build(&s).unwrap();
        let tmp = tempfile::tempfile().unwrap();
        f.export_bpf(&tmp).unwrap();
        assert!(tmp.metadata().unwrap().len() > 0);
    }

    #[test]
    fn notify_is_refused() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_NOTIFY"
        }))
        .unwrap();
        assert!(validate(&s).unwrap_err().to_string().contains("NOTIFY"));
    }
}
