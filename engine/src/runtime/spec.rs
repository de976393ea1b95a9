//! Reading and validating a bundle's config.json before anything on the host changes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::error::{invalid, Result, RuntimeError};

/// A bundle whose config passed validation.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    pub spec: Spec,
    /// The root filesystem, absolute and canonical.
    pub rootfs: PathBuf,
}

/// Parses config.json text; serde's message carries line and column.
pub fn parse(path: &Path, text: &str) -> Result<Spec> {
    serde_json::from_str::<Spec>(text).map_err(|e| RuntimeError::ParseConfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Loads `<bundle>/config.json` and validates it against the host.
pub fn load_bundle(dir: &Path) -> Result<Bundle> {
    let dir = std::path::absolute(dir).map_err(super::error::sys("resolving bundle path"))?;
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| RuntimeError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    let spec = parse(&path, &text)?;
    validate(&spec)?;
    let root = spec.root().as_ref().expect("validated").path();
    let rootfs = if root.is_absolute() {
        root.clone()
    } else {
        dir.join(root)
    };
    let rootfs = rootfs.canonicalize().map_err(|e| {
        invalid(
            "root.path",
            format!(
                "{}: {e}; the root filesystem must be an existing directory",
                rootfs.display()
            ),
        )
    })?;
    if !rootfs.is_dir() {
        return Err(invalid(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = m.options().clone().unwrap_or_default();
        let is_bind =
            m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        if is_bind {
            let src = m.source().clone().unwrap_or_default();
            let src = if src.is_absolute() {
                src
            } else {
                dir.join(src)
            };
            if !src.exists() {
                return Err(invalid(
                    format!("mounts[{i}].source"),
                    format!("bind source {} does not exist", src.display()),
                ));
            }
        }
    }
    Ok(Bundle { dir, spec, rootfs })
}

/// Container IDs name directories and cgroups: keep them to a safe alphabet.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |p: &str| RuntimeError::InvalidId {
        id: id.to_string(),
        problem: p.to_string(),
    };
    if id.is_empty() || id.len() > 128 {
        return Err(bad("must be 1 to 128 characters"));
    }
    if id.starts_with('.') || id.starts_with('-') {
        return Err(bad("must not start with '.' or '-'"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
    {
        return Err(bad("use only letters, digits, '.', '_', '-' and '+'"));
    }
    Ok(())
}

fn absolute(field: String, p: &Path) -> Result<()> {
    if !p.is_absolute() {
        return Err(invalid(
            field,
            format!("{} must be an absolute path", p.display()),
        ));
    }
    Ok(())
}

/// Checks what serde cannot: presence, consistency, paths, ranges.
pub fn validate(spec: &Spec) -> Result<()> {
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            format!("{:?} is not a 1.x runtime spec version", spec.version()),
        ));
    }
    let Some(root) = spec.root() else {
        return Err(invalid(
            "root",
            "missing; give root.path, the root filesystem directory",
        ));
    };
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "is empty"));
    }
    let Some(process) = spec.process() else {
        return Err(invalid("process", "missing; give process.args at least"));
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid("process.args", "must name the program to run"));
    }
    absolute("process.cwd".into(), process.cwd())?;
    let mut seen_rl = HashSet::new();
    for r in process.rlimits().iter().flatten() {
        if !seen_rl.insert(format!("{:?}", r.typ())) {
            return Err(invalid(
                "process.rlimits",
                format!("{:?} given twice", r.typ()),
            ));
        }
        if r.soft() > r.hard() {
            return Err(invalid(
                "process.rlimits",
                format!("{:?}: soft {} above hard {}", r.typ(), r.soft(), r.hard()),
            ));
        }
    }
    // Asked for but not implemented: refuse rather than run without it.
    let unsupported = |field: &str| {
        invalid(
            field,
            "is not supported by berth-runtime yet; remove it from config.json",
        )
    };
    if process.scheduler().is_some() {
        return Err(unsupported("process.scheduler"));
    }
    if process.io_priority().is_some() {
        return Err(unsupported("process.ioPriority"));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(unsupported("process.execCPUAffinity"));
    }
    let Some(linux) = spec.linux() else {
        return Err(invalid(
            "linux",
            "missing; a Linux container needs at least linux.namespaces",
        ));
    };
    if linux.personality().is_some() {
        return Err(unsupported("linux.personality"));
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported("linux.intelRdt"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(unsupported("linux.netDevices"));
    }
    if linux.memory_policy().is_some() {
        return Err(unsupported("linux.memoryPolicy"));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(unsupported("linux.timeOffsets"));
    }
    let mut types = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !types.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}]"),
                format!("namespace {} listed twice", ns.typ()),
            ));
        }
        if ns.typ() == LinuxNamespaceType::Time {
            return Err(invalid(
                format!("linux.namespaces[{i}]"),
                "time namespaces are not supported by berth-runtime yet; remove it",
            ));
        }
        if let Some(p) = ns.path() {
            if ns.typ() == LinuxNamespaceType::User {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    "joining a user namespace by path is not supported yet",
                ));
            }
            if ns.typ() == LinuxNamespaceType::Mount {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    "joining a mount namespace by path is not supported: the root filesystem is set up in a new one (use exec to enter a running container)",
                ));
            }
            absolute(format!("linux.namespaces[{i}].path"), p)?;
            if !p.exists() {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!(
                        "{} does not exist (was the namespace removed?)",
                        p.display()
                    ),
                ));
            }
        }
    }
    if !types.contains(&LinuxNamespaceType::Mount) {
        return Err(invalid(
            "linux.namespaces",
            "a mount namespace is required (add {\"type\": \"mount\"})",
        ));
    }
    let new_ns = |t| {
        linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    if (spec.hostname().is_some() || spec.domainname().is_some())
        && !new_ns(LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "hostname",
            "setting hostname or domainname needs a new uts namespace",
        ));
    }
    if new_ns(LinuxNamespaceType::User)
        && (linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty())
            || linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()))
    {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if let Some(p) = linux.cgroups_path() {
        crate::cgroups::relative_path(&p.to_string_lossy())
            .map_err(|e| invalid("linux.cgroupsPath", e.to_string()))?;
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        absolute(format!("mounts[{i}].destination"), m.destination())?;
        if m.typ().is_none()
            && !m
                .options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
        {
            return Err(invalid(
                format!("mounts[{i}].type"),
                "missing, and options do not say bind/rbind",
            ));
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        absolute(format!("linux.devices[{i}].path"), d.path())?;
        if !d.path().starts_with("/dev") {
            return Err(invalid(
                format!("linux.devices[{i}].path"),
                "device nodes must live under /dev",
            ));
        }
    }
    for (field, list) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for (i, p) in list.iter().flatten().enumerate() {
            absolute(format!("{field}[{i}]"), Path::new(p))?;
        }
    }
    let has_ns = |t| linux.namespaces().iter().flatten().any(|n| n.typ() == t);
    for k in linux.sysctl().iter().flat_map(|m| m.keys()) {
        if k.contains('/') || k.contains("..") || k.is_empty() {
            return Err(invalid(
                "linux.sysctl",
                format!("{k:?} is not a sysctl name (use dots: net.ipv4.ip_forward)"),
            ));
        }
        // Only namespaced sysctls: anything else would change the host.
        const IPC: &[&str] = &[
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
            "kernel.shmmax",
            "kernel.shmmni",
            "kernel.shm_rmid_forced",
        ];
        let ok = if IPC.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
            has_ns(LinuxNamespaceType::Ipc)
        } else if k.starts_with("net.") {
            has_ns(LinuxNamespaceType::Network)
        } else {
            false
        };
        if !ok {
            return Err(invalid(
                "linux.sysctl",
                format!("{k:?} is not namespaced for this container (net.* needs a network namespace, kernel IPC keys an ipc one; others would change the host)"),
            ));
        }
    }
    if let Some(s) = linux.seccomp() {
        super::seccomp::validate(s)?;
    }
    if let Some(h) = spec.hooks() {
        for (kind, list) in [
            ("prestart", h.prestart()),
            ("createRuntime", h.create_runtime()),
            ("createContainer", h.create_container()),
            ("startContainer", h.start_container()),
            ("poststart", h.poststart()),
            ("poststop", h.poststop()),
        ] {
            for (i, hook) in list.iter().flatten().enumerate() {
                absolute(format!("hooks.{kind}[{i}].path"), hook.path())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<()> {
        let s = parse(Path::new("config.json"), &v.to_string())?;
        validate(&s)
    }

    #[test]
    fn base_is_valid() {
        check(base()).unwrap();
    }

    #[test]
    fn missing_root_is_named() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("root");
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("root") && e.contains("missing"), "{e}");
    }

    #[test]
    fn wrong_types_are_refused_with_position() {
        let mut v = base();
        v["process"]["args"] = serde_json::json!("sh");
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("line") && e.contains("column"), "{e}");
    }

    #[test]
    fn unknown_namespace_is_refused() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "bogus"}]);
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn hostname_without_uts_is_refused() {
        let mut v = base();
        v["hostname"] = serde_json::json!("x");
        assert!(check(v).unwrap_err().to_string().contains("uts"));
    }

    #[test]
    fn duplicate_namespace_and_missing_mount_ns() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "mount"}]);
        assert!(check(v).unwrap_err().to_string().contains("twice"));
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
        assert!(check(v)
            .unwrap_err()
            .to_string()
            .contains("mount namespace"));
    }

    #[test]
    fn joined_namespaces_must_exist_and_not_be_mount() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "network", "path": "/nonexistent/berth-ns"}]);
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        let mut v = base();
        v["linux"]["namespaces"] =
            serde_json::json!([{"type": "mount", "path": "/proc/self/ns/mnt"}]);
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("mount namespace by path"), "{e}");
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        let mut v = base();
        v["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"});
        let e = check(v).unwrap_err().to_string();
        assert!(
            e.contains("linux.personality") && e.contains("not supported"),
            "{e}"
        );
    }

    #[test]
    fn only_namespaced_sysctls_are_accepted() {
        let mut v = base();
        v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "10"});
        assert!(check(v).unwrap_err().to_string().contains("vm.swappiness"));
        let mut v = base();
        v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
        assert!(check(v).is_err(), "no network namespace in base()");
        let mut v = base();
        v["linux"]["namespaces"] =
            serde_json::json!([{"type": "mount"}, {"type": "network"}, {"type": "ipc"}]);
        v["linux"]["sysctl"] =
            serde_json::json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000000"});
        check(v).unwrap();
    }

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("berth-1").is_ok());
        assert!(validate_id("../x").is_err());
        assert!(validate_id("").is_err());
        assert!(validate_id("a/b").is_err());
    }

    mod no_panic {
        use super::*;
        use proptest::prelude::*;

        /// A JSON value tree of bounded size, to splice into a valid config.
        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                "[a-z/._ -]{0,12}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                    prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_bytes_give_a_result_not_a_panic(text in ".{0,200}") {
                if let Ok(s) = parse(Path::new("config.json"), &text) {
                    let _ = validate(&s);
                }
            }

            #[test]
            fn any_value_at_any_key_gives_a_result_not_a_panic(
                path in prop::sample::select(vec![
                    "/root", "/root/path", "/process", "/process/args", "/process/cwd",
                    "/process/user", "/process/rlimits", "/process/capabilities",
                    "/linux", "/linux/namespaces", "/linux/resources", "/linux/seccomp",
                    "/linux/devices", "/linux/maskedPaths", "/mounts", "/hooks", "/hostname",
                ]),
                value in json_value(),
            ) {
                let mut v = base();
                if let Some(slot) = v.pointer_mut(path) {
                    *slot = value;
                } else if let Some((parent, key)) = path.rsplit_once('/') {
                    if let Some(obj) = v.pointer_mut(if parent.is_empty() { "" } else { parent }).and_then(|p| p.as_object_mut()) {
                        obj.insert(key.to_string(), value);
                    }
                }
                let _ = check(v);
            }
        }
    }
}
