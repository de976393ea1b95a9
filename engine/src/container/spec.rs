//! ContainerConfig -> OCI runtime spec (config.json), the way Docker fills one in:
//! new namespaces unless joined by path, the usual mounts, Docker's default
//! capabilities and masked paths, image settings overridden by the container's.

use std::path::Path;

use serde_json::{json, Value};

use super::config::{ContainerConfig, ExecConfig, HealthTest, MountSpec, SeccompPolicy};
use super::EngineError;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn bad(field: &str, problem: impl Into<String>) -> EngineError {
    EngineError::InvalidConfig {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// The program and arguments: entrypoint + cmd, container settings over the image's.
pub fn argv(c: &ContainerConfig) -> Result<Vec<String>, EngineError> {
    let (ep, cmd) = match (&c.entrypoint, &c.command) {
        // A new entrypoint drops the image's cmd (Docker's rule).
        (Some(ep), cmd) => (ep.clone(), cmd.clone().unwrap_or_default()),
        (None, Some(cmd)) => (c.image.entrypoint.clone(), cmd.clone()),
        (None, None) => (c.image.entrypoint.clone(), c.image.cmd.clone()),
    };
    let mut args = ep;
    args.extend(cmd);
    if args.is_empty() {
        return Err(bad(
            "command",
            "nothing to run: neither the container nor the image gives an entrypoint or a command",
        ));
    }
    Ok(args)
}

/// Image env, then container env, later keys winning; PATH defaulted.
pub fn environment(image: &[String], extra: &[String]) -> Result<Vec<String>, EngineError> {
    let mut out: Vec<String> = vec![];
    for e in image.iter().chain(extra) {
        let Some((k, _)) = e.split_once('=') else {
            return Err(bad("env", format!("{e:?} is not KEY=VALUE")));
        };
        if k.is_empty() {
            return Err(bad("env", format!("{e:?} has an empty name")));
        }
        out.retain(|o| o.split_once('=').map(|(ok, _)| ok) != Some(k));
        out.push(e.clone());
    }
    if !out.iter().any(|e| e.starts_with("PATH=")) {
        out.insert(0, DEFAULT_PATH.to_string());
    }
    Ok(out)
}

/// `user`, `uid`, `user:group`, `uid:gid` against the rootfs's /etc/passwd and /etc/group.
pub fn resolve_user(
    rootfs: &Path,
    spec: Option<&str>,
) -> Result<(u32, u32, Vec<u32>), EngineError> {
    let Some(spec) = spec.filter(|s| !s.is_empty()) else {
        return Ok((0, 0, vec![]));
    };
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let find = |text: &str, name: &str| -> Option<(u32, u32)> {
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == name).then(|| {
                (
                    f[2].parse().unwrap_or(0),
                    f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
                )
            })
        })
    };
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(uid) => (
            uid,
            passwd
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 4 && f[2] == u).then(|| f[3].parse().unwrap_or(0))
                })
                .unwrap_or(0),
        ),
        Err(_) => find(&passwd, u).ok_or_else(|| {
            bad(
                "user",
                format!("user {u:?} is not in the image's /etc/passwd; give a numeric uid"),
            )
        })?,
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find(&group, g).map(|(gid, _)| gid).ok_or_else(|| {
                bad(
                    "user",
                    format!("group {g:?} is not in the image's /etc/group; give a numeric gid"),
                )
            })?,
        };
    }
    Ok((uid, gid, vec![]))
}

fn ulimit_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        _ => return None,
    })
}

fn norm_cap(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// Capability names of the host's bounding set (what `privileged` gets here).
fn host_caps() -> Vec<String> {
    caps::read(None, caps::CapSet::Bounding)
        .unwrap_or_default()
        .iter()
        .map(|c| c.to_string())
        .collect()
}

fn capabilities(c: &ContainerConfig) -> Result<Vec<String>, EngineError> {
    if c.privileged {
        return Ok(host_caps());
    }
    let mut set: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for a in &c.cap_add {
        if a.eq_ignore_ascii_case("ALL") {
            set = host_caps();
            continue;
        }
        let n = norm_cap(a);
        if n.parse::<caps::Capability>().is_err() {
            return Err(bad("cap_add", format!("{a:?} is not a capability name")));
        }
        if !set.contains(&n) {
            set.push(n);
        }
    }
    for d in &c.cap_drop {
        if d.eq_ignore_ascii_case("ALL") {
            set.clear();
            continue;
        }
        let n = norm_cap(d);
        if n.parse::<caps::Capability>().is_err() {
            return Err(bad("cap_drop", format!("{d:?} is not a capability name")));
        }
        set.retain(|s| *s != n);
    }
    Ok(set)
}

fn abs_target(field: &str, t: &str) -> Result<(), EngineError> {
    if !t.starts_with('/') || t.split('/').any(|p| p == "..") {
        return Err(bad(
            field,
            format!("{t:?} must be an absolute path inside the container without \"..\""),
        ));
    }
    Ok(())
}

/// Docker's device cgroup rules, one stricter: block nodes may not even be made (Docker
/// lets CAP_MKNOD make any node and only refuses opening it), so a container cannot
/// leave a node of a host disk behind in a volume for a later, privileged one.
fn default_device_rules() -> Vec<Value> {
    crate::runtime::defaults::DOCKER_DEVICE_RULES()
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !(r["type"] == "b" && r.get("major").is_none()))
        .cloned()
        .collect()
}

/// no_new_privs: on unless privileged, or as `security_opt` says.
fn no_new_privileges(c: &ContainerConfig) -> bool {
    c.security.no_new_privileges.unwrap_or(!c.privileged)
}

/// The `linux.seccomp` of the spec: Berth's default profile for the container's
/// capabilities, none when privileged or unconfined, or the user's profile file.
fn seccomp(c: &ContainerConfig, caps: &[String]) -> Result<Option<Value>, EngineError> {
    match &c.security.seccomp {
        SeccompPolicy::Unconfined => Ok(None),
        SeccompPolicy::Default if c.privileged => Ok(None),
        SeccompPolicy::Default => Ok(Some(crate::runtime::seccomp_profile::default_profile(caps))),
        SeccompPolicy::Profile(path) => {
            let field = "security_opt.seccomp";
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(field, format!("reading {}: {e}", path.display())))?;
            let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(&text)
                .map_err(|e| {
                    bad(
                        field,
                        format!(
                            "{} is not an OCI seccomp profile (defaultAction, architectures, syscalls): {e}",
                            path.display()
                        ),
                    )
                })?;
            crate::runtime::seccomp::validate(&profile)
                .map_err(|e| bad(field, format!("{}: {e}", path.display())))?;
            Ok(Some(serde_json::to_value(profile).map_err(|e| {
                bad(field, format!("{}: {e}", path.display()))
            })?))
        }
    }
}

/// Builds the OCI spec of a container whose runtime ID is `id`.
pub fn build(id: &str, c: &ContainerConfig) -> Result<Value, EngineError> {
    let args = argv(c)?;
    let mut env = environment(&c.image.env, &c.env)?;
    // Programs read TERM to know what the terminal understands; Docker sets it.
    if c.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let user = c.user.as_deref().or(c.image.user.as_deref());
    let (uid, gid, groups) = resolve_user(&c.rootfs, user)?;
    let cwd = c
        .working_dir
        .clone()
        .or_else(|| c.image.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    abs_target("working_dir", &cwd)?;
    let caps = capabilities(c)?;
    let mut rlimits = vec![];
    for u in &c.ulimits {
        let t = ulimit_type(&u.name).ok_or_else(|| {
            bad(
                "ulimits",
                format!(
                    "{:?} is not a ulimit name (nofile, nproc, core, ...)",
                    u.name
                ),
            )
        })?;
        if u.soft > u.hard {
            return Err(bad(
                "ulimits",
                format!("{}: soft {} is above hard {}", u.name, u.soft, u.hard),
            ));
        }
        rlimits.push(json!({"type": t, "soft": u.soft, "hard": u.hard}));
    }
    if !c.ulimits.iter().any(|u| u.name == "nofile") {
        // Docker's default; within root's hard limit on hosts without CAP_SYS_RESOURCE.
        rlimits.push(json!({"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if c.privileged { "rw" } else { "ro" }]}),
    ];
    for (i, m) in c.mounts.iter().enumerate() {
        let field = format!("mounts[{i}]");
        match m {
            MountSpec::Bind {
                source,
                target,
                read_only,
            }
            | MountSpec::Volume {
                source,
                target,
                read_only,
            } => {
                abs_target(&field, target)?;
                if !source.is_absolute() || !source.exists() {
                    return Err(bad(
                        &field,
                        format!(
                            "source {} must be an existing absolute host path",
                            source.display()
                        ),
                    ));
                }
                let mut o = vec!["rbind", "rprivate"];
                if *read_only {
                    o.push("ro");
                }
                mounts.push(
                    json!({"destination": target, "type": "bind", "source": source, "options": o}),
                );
            }
            MountSpec::Secret { source, target, .. } => {
                abs_target(&field, target)?;
                if !source.is_absolute() || !source.is_file() {
                    return Err(bad(
                        &field,
                        format!(
                            "secret {} must be an existing absolute host file",
                            source.display()
                        ),
                    ));
                }
                // The source becomes the staged copy (Engine::create, `stage_secrets`).
                mounts.push(
                    json!({"destination": target, "type": "bind", "source": source,
                    "options": ["rbind", "rprivate", "ro"]}),
                );
            }
            MountSpec::Tmpfs { target, size, mode } => {
                abs_target(&field, target)?;
                let mut o = vec!["nosuid".to_string(), "nodev".to_string()];
                if let Some(s) = size {
                    o.push(format!("size={s}"));
                }
                o.push(format!("mode={:o}", mode.unwrap_or(0o1777)));
                mounts.push(json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": o}));
            }
        }
    }
    let mut namespaces = vec![json!({"type": "mount"}), json!({"type": "cgroup"})];
    if let Some(map) = &c.userns {
        if c.privileged {
            return Err(bad(
                "userns",
                "a privileged container runs with the host's ids: drop one of the two",
            ));
        }
        if map.size == 0 || map.host == 0 {
            return Err(bad(
                "userns",
                format!("{map:?} maps no ids or maps host root"),
            ));
        }
        // First, so the other new namespaces belong to it (the runtime unshares it first).
        namespaces.insert(0, json!({"type": "user"}));
    }
    for (t, p) in [
        ("network", &c.namespaces.net),
        ("ipc", &c.namespaces.ipc),
        ("pid", &c.namespaces.pid),
        ("uts", &c.namespaces.uts),
    ] {
        match p {
            Some(p) => {
                if !p.exists() {
                    return Err(bad(
                        &format!("namespaces.{t}"),
                        format!(
                            "{} does not exist (was the namespace removed?)",
                            p.display()
                        ),
                    ));
                }
                namespaces.push(json!({"type": t, "path": p}))
            }
            None => namespaces.push(json!({"type": t})),
        }
    }
    let hostname = if c.namespaces.uts.is_some() {
        if c.hostname.is_some() {
            return Err(bad(
                "hostname",
                "cannot set a hostname while joining another uts namespace",
            ));
        }
        None
    } else {
        Some(
            c.hostname
                .clone()
                .unwrap_or_else(|| id.chars().take(12).collect()),
        )
    };
    let r = &c.resources;
    let mut res = json!({});
    let mut mem = json!({});
    if let Some(m) = r.memory {
        mem["limit"] = m.into();
    }
    if let Some(s) = r.memory_swap {
        mem["swap"] = s.into();
    }
    if mem.as_object().is_some_and(|m| !m.is_empty()) {
        res["memory"] = mem;
    }
    let mut cpu = json!({});
    if let Some(q) = r.cpu_quota {
        cpu["quota"] = q.into();
    }
    if let Some(p) = r.cpu_period {
        cpu["period"] = p.into();
    }
    if let Some(s) = r.cpu_shares {
        cpu["shares"] = s.into();
    }
    if let Some(s) = &r.cpuset_cpus {
        cpu["cpus"] = s.clone().into();
    }
    if cpu.as_object().is_some_and(|m| !m.is_empty()) {
        res["cpu"] = cpu;
    }
    if let Some(p) = r.pids_limit {
        res["pids"] = json!({"limit": p});
    }
    let mut devices = vec![];
    let mut dev_rules = if c.privileged {
        vec![json!({"allow": true, "access": "rwm"})]
    } else {
        default_device_rules()
    };
    for (i, d) in c.devices.iter().enumerate() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let field = format!("devices[{i}]");
        abs_target(&field, &d.container_path)?;
        let md = std::fs::metadata(&d.host_path)
            .map_err(|e| bad(&field, format!("{}: {e}", d.host_path.display())))?;
        let typ = if md.file_type().is_char_device() {
            "c"
        } else if md.file_type().is_block_device() {
            "b"
        } else {
            return Err(bad(
                &field,
                format!("{} is not a device", d.host_path.display()),
            ));
        };
        if d.permissions.is_empty() || !d.permissions.chars().all(|ch| "rwm".contains(ch)) {
            return Err(bad(
                &field,
                format!("permissions {:?} must be some of rwm", d.permissions),
            ));
        }
        let rdev = md.rdev();
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        devices.push(
            json!({"path": d.container_path, "type": typ, "major": major, "minor": minor,
            "fileMode": md.mode() & 0o7777, "uid": 0, "gid": 0}),
        );
        dev_rules.push(json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": d.permissions}));
    }
    res["devices"] = dev_rules.into();
    for k in c.sysctls.keys() {
        if k.is_empty() || k.contains('/') || k.contains("..") {
            return Err(bad(
                "sysctls",
                format!("{k:?} is not a sysctl name (net.ipv4.ip_forward)"),
            ));
        }
    }
    let mut linux = json!({
        "cgroupsPath": format!("/berth-{id}"),
        "namespaces": namespaces,
        "resources": res,
        "devices": devices,
        "sysctl": c.sysctls,
    });
    if let Some(map) = &c.userns {
        let m = json!([{"containerID": 0, "hostID": map.host, "size": map.size}]);
        linux["uidMappings"] = m.clone();
        linux["gidMappings"] = m;
    }
    if !c.privileged {
        linux["maskedPaths"] = json!([
            "/proc/asound",
            "/proc/acpi",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap"
        ]);
        linux["readonlyPaths"] = json!([
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]);
    }
    if let Some(profile) = seccomp(c, &caps)? {
        linux["seccomp"] = profile;
    }
    let mut annotations = json!({});
    if c.init {
        annotations[INIT_ANNOTATION] = "true".into();
    }
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "root": {"path": c.rootfs, "readonly": c.read_only},
        "process": {
            "terminal": c.tty,
            "args": args,
            "env": env,
            "cwd": cwd,
            "user": {"uid": uid, "gid": gid, "additionalGids": groups},
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": no_new_privileges(c),
            "rlimits": rlimits,
        },
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    });
    if let Some(h) = hostname {
        spec["hostname"] = h.into();
    }
    Ok(spec)
}

/// Set on the spec of a container whose PID 1 is Berth's minimal init.
pub const INIT_ANNOTATION: &str = crate::init::ANNOTATION;

/// The OCI process of an `exec` (or a healthcheck probe) in a container made from `c`.
pub fn exec_process(c: &ContainerConfig, e: &ExecConfig) -> Result<Value, EngineError> {
    if e.args.is_empty() {
        return Err(bad("exec.args", "must name the program to run"));
    }
    let mut env = environment(&c.image.env, &c.env)?;
    env = environment(&env, &e.env)?;
    let user = e
        .user
        .as_deref()
        .or(c.user.as_deref())
        .or(c.image.user.as_deref());
    let (uid, gid, groups) = resolve_user(&c.rootfs, user)?;
    let cwd = e
        .working_dir
        .clone()
        .or_else(|| c.working_dir.clone())
        .or_else(|| c.image.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    abs_target("exec.working_dir", &cwd)?;
    let caps = capabilities(c)?;
    Ok(json!({
        "terminal": false,
        "args": e.args,
        "env": env,
        "cwd": cwd,
        "user": {"uid": uid, "gid": gid, "additionalGids": groups},
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privileges(c),
    }))
}

/// The probe's argv for a healthcheck test, or None for `NONE`.
pub fn probe_args(t: &HealthTest) -> Option<Vec<String>> {
    match t {
        HealthTest::Cmd(a) if !a.is_empty() => Some(a.clone()),
        HealthTest::CmdShell(s) => Some(vec!["/bin/sh".into(), "-c".into(), s.clone()]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::config::ImageConfig;

    fn cfg() -> ContainerConfig {
        ContainerConfig {
            name: "berth-t".into(),
            rootfs: "/".into(),
            image: ImageConfig {
                entrypoint: vec!["/bin/ep".into()],
                cmd: vec!["a".into()],
                env: vec!["A=1".into(), "B=2".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn argv_follows_docker_rules() {
        let mut c = cfg();
        assert_eq!(argv(&c).unwrap(), vec!["/bin/ep", "a"]);
        c.command = Some(vec!["b".into()]);
        assert_eq!(argv(&c).unwrap(), vec!["/bin/ep", "b"]);
        c.entrypoint = Some(vec!["/x".into()]);
        c.command = None;
        assert_eq!(argv(&c).unwrap(), vec!["/x"]);
        c.entrypoint = Some(vec![]);
        assert!(argv(&c).unwrap_err().to_string().contains("nothing to run"));
    }

    #[test]
    fn env_overrides_and_bad_input() {
        let e = environment(&["A=1".into(), "B=2".into()], &["A=3".into()]).unwrap();
        assert_eq!(e[1..], ["B=2".to_string(), "A=3".to_string()]);
        assert!(e[0].starts_with("PATH="));
        assert!(environment(&[], &["NOEQ".into()]).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_field() {
        let mut c = cfg();
        c.cap_add = vec!["NOT_A_CAP".into()];
        assert!(build("x", &c).unwrap_err().to_string().contains("cap_add"));
        let mut c = cfg();
        c.mounts = vec![MountSpec::Tmpfs {
            target: "rel".into(),
            size: None,
            mode: None,
        }];
        assert!(build("x", &c)
            .unwrap_err()
            .to_string()
            .contains("mounts[0]"));
        let mut c = cfg();
        c.ulimits = vec![crate::container::config::Ulimit {
            name: "bogus".into(),
            soft: 1,
            hard: 1,
        }];
        assert!(build("x", &c).unwrap_err().to_string().contains("ulimits"));
    }

    #[test]
    fn defaults_confine_and_privileged_lifts_it_all() {
        let c = cfg();
        let v = build("x", &c).unwrap();
        assert_eq!(v["process"]["noNewPrivileges"], true);
        let sc = &v["linux"]["seccomp"];
        assert_eq!(sc["defaultAction"], "SCMP_ACT_ALLOW");
        assert!(sc.to_string().contains("\"mount\""), "{sc}");
        let devs = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(devs[0], json!({"allow": false, "access": "rwm"}));
        assert!(
            !devs.iter().any(|r| r["type"] == "b"),
            "block nodes may not be made: {devs:?}"
        );
        assert!(v["linux"]["maskedPaths"]
            .to_string()
            .contains("/proc/kcore"));
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );

        let mut p = cfg();
        p.privileged = true;
        let v = build("x", &p).unwrap();
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert!(v["linux"].get("seccomp").is_none());
        assert!(v["linux"].get("maskedPaths").is_none());
        assert_eq!(
            v["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
    }

    #[test]
    fn security_opt_overrides() {
        use crate::container::config::{SeccompPolicy, Security};
        let mut c = cfg();
        c.security = Security {
            seccomp: SeccompPolicy::Unconfined,
            no_new_privileges: Some(false),
        };
        let v = build("x", &c).unwrap();
        assert!(v["linux"].get("seccomp").is_none());
        assert_eq!(v["process"]["noNewPrivileges"], false);

        // cap_add SYS_ADMIN lifts the mount rows, as in Docker's profile.
        let mut c = cfg();
        c.cap_add = vec!["SYS_ADMIN".into()];
        let v = build("x", &c).unwrap();
        assert!(!v["linux"]["seccomp"].to_string().contains("\"mount\""));

        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("profile.json");
        std::fs::write(&f, r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#).unwrap();
        let mut c = cfg();
        c.security.seccomp = SeccompPolicy::Profile(f.clone());
        let v = build("x", &c).unwrap();
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        std::fs::write(&f, "{").unwrap();
        let e = build("x", &c).unwrap_err().to_string();
        assert!(
            e.contains("security_opt.seccomp") && e.contains("profile.json"),
            "{e}"
        );
    }
}
