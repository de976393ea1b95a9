//! A [`RuleSet`] as a BPF_PROG_TYPE_CGROUP_DEVICE program. The layout follows runc's
//! (itself from crun): load the context into registers, then one block per exception
//! that jumps to the next block on any mismatch and otherwise returns the exception's
//! verdict, then the default verdict.
//!
//! The kernel calls the program with `struct bpf_cgroup_dev_ctx { u32 access_type;
//! u32 major; u32 minor; }`, access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*;
//! returning 0 refuses the access with EPERM.

use std::ffi::CStr;

use berth_bpf::asm::{Asm, AsmError, Insn, Reg};

use super::rules::{Access, RuleSet};
use crate::cgroups::{CgroupError, Result};

/// The license the kernel records for the program: Berth's. The program calls no
/// helper, so no GPL-only one either.
pub const LICENSE: &CStr = c"Apache-2.0";

/// The name the kernel shows for the program (`bpftool prog`).
pub const NAME: &str = "berth_devices";

/// Generates the filter for `set`.
pub fn generate(set: &RuleSet) -> Result<Vec<Insn>> {
    let mut a = Asm::new();
    // R2 <- device type, R3 <- access, R4 <- major, R5 <- minor.
    a.push(Insn::ldx_w(Reg::R2, Reg::R1, 0));
    a.push(Insn::and32(Reg::R2, 0xffff));
    a.push(Insn::ldx_w(Reg::R3, Reg::R1, 0));
    a.push(Insn::rsh32(Reg::R3, 16));
    a.push(Insn::ldx_w(Reg::R4, Reg::R1, 4));
    a.push(Insn::ldx_w(Reg::R5, Reg::R1, 8));
    // Every exception's verdict is the opposite of the default.
    let verdict = i32::from(!set.default_allow);
    for (m, access) in &set.exceptions {
        // A 64-bit compare against a sign-extended immediate cannot name a number above
        // i32::MAX; no device has one (majors are 12 bits, minors 20), so such a rule
        // matches nothing and needs no block.
        let (Ok(major), Ok(minor)) = (
            m.major.map(i32::try_from).transpose(),
            m.minor.map(i32::try_from).transpose(),
        ) else {
            continue;
        };
        let next = a.label();
        a.jne(Reg::R2, m.typ as i32, next);
        if *access != Access::ALL {
            // R1 <- requested & granted (R1, the context, is no longer needed).
            a.push(Insn::mov32_reg(Reg::R1, Reg::R3));
            a.push(Insn::and32(Reg::R1, i32::from(access.0)));
            if set.default_allow {
                // A deny exception applies when it touches any of the request.
                a.jeq(Reg::R1, 0, next);
            } else {
                // An allow exception applies when it grants all of the request.
                a.jne_reg(Reg::R1, Reg::R3, next);
            }
        }
        if let Some(major) = major {
            a.jne(Reg::R4, major, next);
        }
        if let Some(minor) = minor {
            a.jne(Reg::R5, minor, next);
        }
        a.push(Insn::mov32(Reg::R0, verdict));
        a.push(Insn::exit());
        a.bind(next);
    }
    a.push(Insn::mov32(Reg::R0, i32::from(set.default_allow)));
    a.push(Insn::exit());
    a.finish().map_err(|e: AsmError| CgroupError::Invalid {
        what: "linux.resources.devices".into(),
        why: format!("too many rules for one device filter program: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::interp::run;
    use super::super::rules::{DevType, RuleSet};
    use super::*;
    use proptest::prelude::*;

    fn rules(v: serde_json::Value) -> RuleSet {
        RuleSet::from_oci(&serde_json::from_value::<Vec<_>>(v).unwrap()).unwrap()
    }

    fn prologue() -> Vec<Insn> {
        vec![
            Insn::ldx_w(Reg::R2, Reg::R1, 0),
            Insn::and32(Reg::R2, 0xffff),
            Insn::ldx_w(Reg::R3, Reg::R1, 0),
            Insn::rsh32(Reg::R3, 16),
            Insn::ldx_w(Reg::R4, Reg::R1, 4),
            Insn::ldx_w(Reg::R5, Reg::R1, 8),
        ]
    }

    /// A jump as runc's listing shows it: `JNEImm dst: rD imm: I <block-N>`, `off` being
    /// the distance to that block.
    fn jne(r: Reg, imm: i32, off: i16) -> Insn {
        Insn {
            off,
            ..jne0(r, imm)
        }
    }
    fn jne0(r: Reg, imm: i32) -> Insn {
        let mut a = Asm::new();
        let l = a.label();
        a.jne(r, imm, l);
        a.bind(l);
        a.finish().unwrap()[0]
    }

    #[test]
    fn no_rules_deny_everything_like_runc() {
        // runc's TestDeviceFilter_Nil.
        let mut want = prologue();
        want.extend([Insn::mov32(Reg::R0, 0), Insn::exit()]);
        assert_eq!(generate(&RuleSet::default()).unwrap(), want);
    }

    #[test]
    fn privileged_and_single_denial_match_runc() {
        // runc's TestDeviceFilter_Privileged.
        let mut want = prologue();
        want.extend([Insn::mov32(Reg::R0, 1), Insn::exit()]);
        let set = rules(serde_json::json!([{"allow": true, "type": "a", "access": "rwm"}]));
        assert_eq!(generate(&set).unwrap(), want);
        // runc's TestDeviceFilter_PrivilegedExceptSingleDevice and _Weird (8:1 denied
        // before the reset, so only 8:2 stays denied).
        let mut want = prologue();
        want.extend([
            jne(Reg::R2, 1, 4),
            jne(Reg::R4, 8, 3),
            jne(Reg::R5, 2, 2),
            Insn::mov32(Reg::R0, 0),
            Insn::exit(),
            Insn::mov32(Reg::R0, 1),
            Insn::exit(),
        ]);
        let set = rules(serde_json::json!([
            {"allow": false, "type": "b", "major": 8, "minor": 1, "access": "rwm"},
            {"allow": true, "type": "a", "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "minor": 2, "access": "rwm"},
        ]));
        assert_eq!(generate(&set).unwrap(), want);
    }

    #[test]
    fn builtin_allow_list_matches_runcs_listing() {
        // The rules and expected program of runc's TestDeviceFilter_BuiltInAllowList.
        let set = rules(serde_json::json!([
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
        ]));
        let mut want = prologue();
        // block-0 (b *:* m) and block-1 (c *:* m)
        for t in [1, 2] {
            want.extend([
                jne(Reg::R2, t, 5),
                Insn::mov32_reg(Reg::R1, Reg::R3),
                Insn::and32(Reg::R1, 1),
                Insn {
                    off: 2,
                    ..Insn {
                        code: berth_bpf::asm::op::JNE_X,
                        regs: 0x31,
                        off: 0,
                        imm: 0,
                    }
                },
                Insn::mov32(Reg::R0, 1),
                Insn::exit(),
            ]);
        }
        // blocks 2..=9: c MAJ:MIN rwm
        for (maj, min) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (10, 200),
        ] {
            want.extend([
                jne(Reg::R2, 2, 4),
                jne(Reg::R4, maj, 3),
                jne(Reg::R5, min, 2),
                Insn::mov32(Reg::R0, 1),
                Insn::exit(),
            ]);
        }
        // block-10: c 136:* rwm, then the default.
        want.extend([
            jne(Reg::R2, 2, 3),
            jne(Reg::R4, 136, 2),
            Insn::mov32(Reg::R0, 1),
            Insn::exit(),
            Insn::mov32(Reg::R0, 0),
            Insn::exit(),
        ]);
        let got = generate(&set).unwrap();
        assert_eq!(got.len(), 64, "runc's listing has 64 instructions");
        assert_eq!(got, want);
    }

    /// (type, major, minor, access bits, allowed?)
    type Request = (DevType, u32, u32, u8, bool);

    /// Checks each request against both the rule semantics and the generated program.
    fn check(v: serde_json::Value, reqs: &[Request]) {
        let set = rules(v.clone());
        let p = generate(&set).unwrap();
        for &(typ, maj, min, acc, want) in reqs {
            let a = Access(acc);
            let what = format!("{v} {typ:?} {maj}:{min} access {acc}");
            assert_eq!(set.allows(typ, maj, min, a), want, "semantics: {what}");
            assert_eq!(run(&p, typ, maj, min, a), want, "program: {what}");
        }
    }

    const B: DevType = DevType::Block;
    const C: DevType = DevType::Char;
    const M: u8 = Access::MKNOD;
    const R: u8 = Access::READ;
    const W: u8 = Access::WRITE;

    #[test]
    fn table_docker_defaults_behave() {
        check(
            crate::runtime::defaults::DOCKER_DEVICE_RULES(),
            &[
                (C, 1, 3, R | W, true),   // /dev/null
                (C, 1, 5, R, true),       // /dev/zero
                (C, 136, 4, R | W, true), // a pty
                (C, 5, 2, R | W, true),   // /dev/ptmx
                (C, 10, 200, R | W, true),
                (C, 1, 11, R, false), // /dev/kmsg
                (C, 1, 1, R, false),  // /dev/mem
                (C, 1, 11, M, true),  // mknod of any char device
                (B, 7, 0, M, true),   // mknod of a block device
                (B, 7, 0, R, false),  // but not opening it
                (B, 254, 0, R | W, false),
                (C, 10, 201, W, false),
                (C, 5, 3, R, false),
            ],
        );
    }

    #[test]
    fn table_allow_all_and_deny_lists_behave() {
        check(
            serde_json::json!([{"allow": true, "access": "rwm"}]),
            &[(B, 7, 0, R | W, true), (C, 1, 11, R, true)],
        );
        check(
            serde_json::json!([{"allow": false, "access": "rwm"}]),
            &[(C, 1, 3, R, false)],
        );
        check(
            serde_json::json!([
                {"allow": true},
                {"allow": false, "type": "b", "major": 254, "access": "w"},
                {"allow": false, "type": "c", "minor": 11}
            ]),
            &[
                (B, 254, 0, R, true),
                (B, 254, 0, R | W, false),
                (B, 253, 0, W, true),
                (C, 1, 11, R, false),
                (C, 4, 11, W, false),
                (C, 1, 12, R | W, true),
            ],
        );
        // The last reset wins; later allows add to it.
        check(
            serde_json::json!([
                {"allow": true},
                {"allow": false},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "w"}
            ]),
            &[
                (C, 1, 3, R | W, true),
                (C, 1, 5, R, false),
                (B, 1, 3, R, false),
            ],
        );
    }

    fn arb_rule() -> impl Strategy<Value = serde_json::Value> {
        (
            any::<bool>(),
            prop::sample::select(vec!["a", "b", "c"]),
            prop::option::of(0i64..4),
            prop::option::of(0i64..4),
            prop::sample::select(vec!["r", "w", "m", "rw", "rm", "wm", "rwm"]),
        )
            .prop_map(|(allow, t, maj, min, acc)| {
                let mut r = serde_json::json!({"allow": allow, "type": t, "access": acc});
                if let Some(m) = maj {
                    r["major"] = m.into();
                }
                if let Some(m) = min {
                    r["minor"] = m.into();
                }
                r
            })
    }

    proptest! {
        /// Whatever the rules, the program decides every request as the v1 controller.
        #[test]
        fn program_agrees_with_the_rule_semantics(
            rs in prop::collection::vec(arb_rule(), 0..12),
            reqs in prop::collection::vec((any::<bool>(), 0u32..5, 0u32..5, 1u8..8), 1..40),
        ) {
            let parsed: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
                serde_json::from_value(serde_json::Value::Array(rs)).unwrap();
            // Hole-punching sets are refused, not compiled: nothing to compare.
            let Ok(set) = RuleSet::from_oci(&parsed) else { return Ok(()) };
            let p = generate(&set).unwrap();
            for (blk, maj, min, acc) in reqs {
                let typ = if blk { DevType::Block } else { DevType::Char };
                prop_assert_eq!(
                    run(&p, typ, maj, min, Access(acc)),
                    set.allows(typ, maj, min, Access(acc))
                );
            }
        }
    }
}
