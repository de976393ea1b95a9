//! OCI `linux.resources.devices` rules reduced to what the cgroup v1 `devices`
//! controller would hold after writing them in order: a default (allow or deny) and a
//! set of exceptions. runc does the same before generating its cgroup v2 filter, so a
//! rule list means the same thing on v1 and v2:
//!
//! * a rule of type `a` (or no type) resets everything: allow-all or deny-all;
//! * a rule whose verdict differs from the default adds an exception (access merged);
//! * a rule whose verdict equals the default removes access from the exception with
//!   exactly the same type/major/minor. Removing access that a *wider* wildcard
//!   exception grants cannot be expressed (v1 silently ignores it); like runc, Berth
//!   refuses such a rule instead of leaving the user with a false sense of safety.

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::cgroups::{CgroupError, Result};

/// Device kinds, valued as the kernel's BPF_DEVCG_DEV_* (the low half of access_type).
/// Ordered block first, as runc orders its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DevType {
    Block = 1,
    Char = 2,
}

/// Access bits, valued as the kernel's BPF_DEVCG_ACC_* (the high half of access_type).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access(pub u8);

impl Access {
    pub const MKNOD: u8 = 1;
    pub const READ: u8 = 2;
    pub const WRITE: u8 = 4;
    pub const ALL: Access = Access(7);

    /// Parses "rwm"-style letters; an empty string grants nothing (as runc reads it).
    pub fn parse(s: &str) -> Option<Access> {
        let mut a = 0;
        for ch in s.chars() {
            a |= match ch {
                'm' => Access::MKNOD,
                'r' => Access::READ,
                'w' => Access::WRITE,
                _ => return None,
            };
        }
        Some(Access(a))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The device(s) an exception is about; `None` is the `*` wildcard. Field order gives
/// runc's block order: by major, then minor (wildcards first), then type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Match {
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub typ: DevType,
}

impl Match {
    fn covers(&self, typ: DevType, major: u32, minor: u32) -> bool {
        self.typ == typ
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

/// The reduced rule set: a default verdict and its exceptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub default_allow: bool,
    pub exceptions: BTreeMap<Match, Access>,
}

impl Default for RuleSet {
    /// Before any rule: deny everything (the start of an allow-list), as runc.
    fn default() -> Self {
        RuleSet {
            default_allow: false,
            exceptions: BTreeMap::new(),
        }
    }
}

impl RuleSet {
    /// Reduces the spec's rules, in order. Errors name the offending rule.
    pub fn from_oci(rules: &[LinuxDeviceCgroup]) -> Result<RuleSet> {
        let mut set = RuleSet::default();
        for (i, r) in rules.iter().enumerate() {
            set.apply(i, r)?;
        }
        Ok(set)
    }

    fn apply(&mut self, i: usize, r: &LinuxDeviceCgroup) -> Result<()> {
        let field = |f: &str| format!("linux.resources.devices[{i}]{f}");
        let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => {
                // "a" means every device and every access, whatever else the rule says.
                *self = RuleSet {
                    default_allow: r.allow(),
                    exceptions: BTreeMap::new(),
                };
                return Ok(());
            }
            LinuxDeviceType::B => DevType::Block,
            LinuxDeviceType::C => DevType::Char,
            other => {
                return Err(CgroupError::Invalid {
                    what: field(".type"),
                    why: format!(
                        "{:?} cannot be used in a device cgroup rule; use a, b or c",
                        other.as_str()
                    ),
                })
            }
        };
        let number = |v: Option<i64>, name: &str| -> Result<Option<u32>> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) => u32::try_from(n).map(Some).map_err(|_| CgroupError::Invalid {
                    what: field(&format!(".{name}")),
                    why: format!("{n} is not a device number; give 0..=4294967295, or leave it out (or -1) for any"),
                }),
            }
        };
        let m = Match {
            typ,
            major: number(r.major(), "major")?,
            minor: number(r.minor(), "minor")?,
        };
        let access = match r.access().as_deref() {
            None => Access::ALL,
            Some(s) => Access::parse(s).ok_or_else(|| CgroupError::Invalid {
                what: field(".access"),
                why: format!("{s:?} must be made of r, w and m"),
            })?,
        };
        if r.allow() != self.default_allow {
            let e = self.exceptions.entry(m).or_default();
            e.0 |= access.0;
            if e.is_empty() {
                self.exceptions.remove(&m);
            }
            return Ok(());
        }
        // Removing an exception: refuse to punch a hole in a wider wildcard one.
        for wider in [
            Match { major: None, ..m },
            Match { minor: None, ..m },
            Match {
                major: None,
                minor: None,
                ..m
            },
        ] {
            if wider == m {
                continue;
            }
            if let Some(a) = self.exceptions.get(&wider) {
                if a.0 & access.0 != 0 {
                    return Err(CgroupError::Invalid {
                        what: field(""),
                        why: format!(
                            "cannot {} {} inside the wider rule {} that {} it earlier (device cgroups cannot punch holes in wildcard rules); reorder or narrow the rules",
                            if r.allow() { "allow" } else { "deny" },
                            describe(&m),
                            describe(&wider),
                            if r.allow() { "denies" } else { "allows" },
                        ),
                    });
                }
            }
        }
        if let Some(e) = self.exceptions.get_mut(&m) {
            e.0 &= !access.0;
            if e.is_empty() {
                self.exceptions.remove(&m);
            }
        }
        Ok(())
    }

    /// The verdict the v1 controller gives for one access (the reference semantics the
    /// generated program must reproduce): in an allow-list one exception must grant all
    /// of the access; in a deny-list any exception that touches part of it denies.
    pub fn allows(&self, typ: DevType, major: u32, minor: u32, access: Access) -> bool {
        let mut hits = self
            .exceptions
            .iter()
            .filter(|(m, _)| m.covers(typ, major, minor));
        if self.default_allow {
            !hits.any(|(_, a)| a.0 & access.0 != 0)
        } else {
            hits.any(|(_, a)| a.0 & access.0 == access.0)
        }
    }
}

fn describe(m: &Match) -> String {
    let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
    let t = match m.typ {
        DevType::Block => 'b',
        DevType::Char => 'c',
    };
    format!("{t} {}:{}", n(m.major), n(m.minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rules(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn docker_defaults_reduce_to_an_allow_list() {
        let set =
            RuleSet::from_oci(&rules(crate::runtime::defaults::DOCKER_DEVICE_RULES())).unwrap();
        assert!(!set.default_allow);
        assert_eq!(set.exceptions.len(), 12);
        let c = DevType::Char;
        assert!(set.allows(c, 1, 3, Access(Access::READ | Access::WRITE)));
        assert!(set.allows(c, 136, 7, Access(Access::WRITE)));
        assert!(set.allows(DevType::Block, 7, 0, Access(Access::MKNOD)));
        assert!(!set.allows(DevType::Block, 7, 0, Access(Access::READ)));
        assert!(!set.allows(c, 1, 11, Access(Access::READ)));
        // A read+write open needs one rule granting both.
        assert!(!set.allows(c, 1, 11, Access(Access::MKNOD | Access::READ)));
    }

    #[test]
    fn a_rule_resets_and_same_verdict_rules_remove_access() {
        let set = RuleSet::from_oci(&rules(serde_json::json!([
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": false, "type": "a", "major": 9, "access": "r"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rw"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw"},
            {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "w"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": ""},
        ])))
        .unwrap();
        assert!(!set.default_allow);
        let want: BTreeMap<Match, Access> = [(
            Match {
                typ: DevType::Char,
                major: Some(1),
                minor: Some(5),
            },
            Access(Access::READ),
        )]
        .into();
        assert_eq!(set.exceptions, want);
    }

    #[test]
    fn deny_list_denies_on_any_overlap() {
        let set = RuleSet::from_oci(&rules(serde_json::json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "access": "w"},
        ])))
        .unwrap();
        assert!(set.default_allow);
        let b = DevType::Block;
        assert!(set.allows(b, 8, 0, Access(Access::READ)));
        assert!(!set.allows(b, 8, 0, Access(Access::READ | Access::WRITE)));
        assert!(set.allows(DevType::Char, 8, 0, Access(Access::WRITE)));
    }

    #[test]
    fn bad_rules_are_refused_with_their_index() {
        for (v, want) in [
            (
                serde_json::json!([{"allow": true, "type": "c", "major": -2}]),
                "devices[0].major",
            ),
            (
                serde_json::json!([{"allow": true, "type": "c", "minor": 1i64 << 33}]),
                "devices[0].minor",
            ),
            (
                serde_json::json!([{"allow": true}, {"allow": true, "type": "u"}]),
                "devices[1].type",
            ),
            (
                serde_json::json!([{"allow": true, "type": "c", "access": "rx"}]),
                "devices[0].access",
            ),
            (
                serde_json::json!([
                    {"allow": true, "type": "c", "major": 1, "access": "rw"},
                    {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "r"}
                ]),
                "punch holes",
            ),
        ] {
            let e = RuleSet::from_oci(&rules(v)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
