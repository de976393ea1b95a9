//! A service of the stack, as the engine's typed container configuration: the one place
//! where Compose attributes become engine settings (limits, mounts, policies, labels).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use berth_engine::container::{
    ContainerConfig, DeviceSpec, HealthTest, Healthcheck, ImageConfig, JoinNamespaces, LogConfig,
    MountSpec, Resources, RestartPolicy, SeccompPolicy, Security, Ulimit,
};

use crate::stack::model::{self, Project, Service, SwapLimit, VolumeType};

/// Labels Berth puts on every container, to find a project's containers again.
pub const LABEL_PROJECT: &str = "io.berth.project";
pub const LABEL_SERVICE: &str = "io.berth.service";
pub const LABEL_NUMBER: &str = "io.berth.container-number";
pub const LABEL_HASH: &str = "io.berth.config-hash";
pub const LABEL_IMAGE_DIGEST: &str = "io.berth.image-digest";
/// On a one-off container (`berth run`): not a replica, so `up` leaves it alone.
pub const LABEL_ONEOFF: &str = "io.berth.oneoff";

/// The CPU period Docker and Compose use to turn `cpus` into a quota.
const CPU_PERIOD_US: u64 = 100_000;

/// Where one replica of a service goes: what the engine, images and networking already
/// prepared for it.
#[derive(Debug, Clone)]
pub struct Placement {
    pub project: String,
    pub service: String,
    pub number: u32,
    pub name: String,
    pub config_hash: String,
    pub image_digest: Option<String>,
    pub rootfs: PathBuf,
    pub image: ImageConfig,
    /// The network namespace to join (its own, or the one of `network_mode: service:X`).
    pub netns: Option<PathBuf>,
    /// Namespaces of other containers to share (`ipc: service:X`, `pid: service:X`).
    pub ipc: Option<PathBuf>,
    pub pid: Option<PathBuf>,
    /// `BERTH_ROOT/volumes`: named volume `NAME` lives in `<dir>/NAME/_data`.
    pub volumes_dir: PathBuf,
    /// Files the networking prepared (`/etc/resolv.conf`, `/etc/hosts`, `/etc/hostname`).
    pub etc_files: Vec<(PathBuf, String)>,
    /// The id range allocated for `userns_mode: auto` (the rootfs was made for it).
    pub userns: Option<berth_engine::userns::IdMap>,
    /// Secrets and configs given by `content:` or `environment:`, written to files (see
    /// [`super::inline_files`]), by [`super::inline_files::key`].
    pub inline_files: std::collections::BTreeMap<String, PathBuf>,
}

fn duration(d: &model::Duration) -> StdDuration {
    d.as_std()
}

fn env_list(svc: &Service) -> Vec<String> {
    // A variable listed without a value and not set in the environment is left out,
    // as Compose does.
    svc.environment
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect()
}

fn restart(svc: &Service) -> RestartPolicy {
    match svc.restart {
        Some(model::RestartPolicy::Always) => RestartPolicy::Always,
        Some(model::RestartPolicy::UnlessStopped) => RestartPolicy::UnlessStopped,
        Some(model::RestartPolicy::OnFailure { max_retries }) => RestartPolicy::OnFailure {
            max_retries: max_retries.map(|n| n.min(u32::MAX as u64) as u32),
        },
        _ => RestartPolicy::No,
    }
}

fn healthcheck(svc: &Service) -> Option<Healthcheck> {
    let h = svc.healthcheck.as_ref()?;
    let test = if h.disable == Some(true) {
        HealthTest::None
    } else {
        match h.test.as_deref() {
            None => return None,
            Some([kind, rest @ ..]) if kind == "CMD" => HealthTest::Cmd(rest.to_vec()),
            Some([kind, rest @ ..]) if kind == "CMD-SHELL" => HealthTest::CmdShell(rest.join(" ")),
            Some([kind, ..]) if kind == "NONE" => HealthTest::None,
            Some(other) => HealthTest::Cmd(other.to_vec()),
        }
    };
    Some(Healthcheck {
        test,
        interval: h.interval.as_ref().map(duration),
        timeout: h.timeout.as_ref().map(duration),
        retries: h.retries.map(|r| r.min(u32::MAX as u64) as u32),
        start_period: h.start_period.as_ref().map(duration),
        start_interval: h.start_interval.as_ref().map(duration),
    })
}

/// cgroup limits from `deploy.resources.limits` first, then the legacy keys.
fn resources(svc: &Service) -> Resources {
    let limits = svc
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let memory = limits
        .and_then(|l| l.memory)
        .or(svc.mem_limit)
        .map(|b| b.bytes() as i64);
    let cpus = limits.and_then(|l| l.cpus).or(svc.cpus);
    let (cpu_quota, cpu_period) = match (cpus, svc.cpu_quota) {
        (Some(c), _) if c > 0.0 => (
            Some((c * CPU_PERIOD_US as f64).round() as i64),
            Some(CPU_PERIOD_US),
        ),
        (_, Some(q)) => (Some(q), svc.cpu_period.or(Some(CPU_PERIOD_US))),
        _ => (None, svc.cpu_period),
    };
    Resources {
        memory,
        memory_swap: match svc.memswap_limit {
            Some(SwapLimit::Unlimited) => Some(-1),
            Some(SwapLimit::Limit(b)) => Some(b.bytes() as i64),
            None => None,
        },
        cpu_quota,
        cpu_period,
        cpu_shares: svc.cpu_shares,
        cpuset_cpus: svc.cpuset.clone(),
        pids_limit: limits.and_then(|l| l.pids).or(svc.pids_limit),
    }
}

fn mounts(svc: &Service, project: &Project, p: &Placement) -> Result<Vec<MountSpec>, String> {
    let mut out = Vec::new();
    for v in &svc.volumes {
        match v.kind {
            VolumeType::Bind => out.push(MountSpec::Bind {
                source: PathBuf::from(v.source.clone().unwrap_or_default()),
                target: v.target.clone(),
                read_only: v.read_only,
            }),
            VolumeType::Volume => {
                // A named volume's engine name is `PROJECT_NAME` (or its `name:`); an
                // anonymous one belongs to this container alone.
                let dir = match &v.source {
                    Some(src) => {
                        let name = project
                            .volumes
                            .get(src)
                            .and_then(|vol| vol.name.clone())
                            .unwrap_or_else(|| format!("{}_{src}", p.project));
                        volume_dir(&p.volumes_dir, &name)
                    }
                    None => volume_dir(&p.volumes_dir, &anonymous_volume(&p.name, &v.target)),
                };
                out.push(MountSpec::Volume {
                    source: dir,
                    target: v.target.clone(),
                    read_only: v.read_only,
                });
            }
            VolumeType::Tmpfs => out.push(MountSpec::Tmpfs {
                target: v.target.clone(),
                size: v.tmpfs.as_ref().and_then(|t| t.size).map(|s| s.bytes()),
                mode: v.tmpfs.as_ref().and_then(|t| t.mode).map(|m| m.0),
            }),
            other => {
                return Err(format!(
                    "volume type {other:?} at {} is not supported by Berth's engine",
                    v.target
                ))
            }
        }
    }
    for t in &svc.tmpfs {
        let target = t.split(':').next().unwrap_or(t).to_string();
        out.push(MountSpec::Tmpfs {
            target,
            size: None,
            mode: None,
        });
    }
    for (refs, top, default_dir) in [
        (&svc.secrets, &project.secrets, "/run/secrets/"),
        (&svc.configs, &project.configs, "/"),
    ] {
        let is_secret = default_dir == "/run/secrets/";
        let kind = if is_secret { "secrets" } else { "configs" };
        for r in refs {
            let file = top
                .get(&r.source)
                .and_then(|s| s.file.clone())
                .or_else(|| {
                    p.inline_files
                        .get(&super::inline_files::key(kind, &r.source))
                        .map(|f| f.display().to_string())
                })
                .ok_or_else(|| {
                    format!(
                        "{kind}.{}: no `file`, `content` or `environment` Berth can mount (external ones are Swarm's)",
                        r.source
                    )
                })?;
            let target = r
                .target
                .clone()
                .unwrap_or_else(|| format!("{default_dir}{}", r.source));
            let id = |v: &Option<String>, what: &str| -> Result<Option<u32>, String> {
                v.as_deref()
                    .map(|t| {
                        t.parse().map_err(|_| {
                            format!("secret {:?}: {what} {t:?} is not a number", r.source)
                        })
                    })
                    .transpose()
            };
            out.push(if is_secret {
                // Copied, read-only, 0400 unless the stack says otherwise.
                MountSpec::Secret {
                    source: PathBuf::from(file),
                    target,
                    mode: r.mode.as_ref().map(|m| m.0),
                    uid: id(&r.uid, "uid")?,
                    gid: id(&r.gid, "gid")?,
                }
            } else {
                MountSpec::Bind {
                    source: PathBuf::from(file),
                    target,
                    read_only: true,
                }
            });
        }
    }
    for (host, target) in &p.etc_files {
        out.push(MountSpec::Bind {
            source: host.clone(),
            target: target.clone(),
            read_only: false,
        });
    }
    Ok(out)
}

/// The engine's configuration for replica `p.number` of `svc`.
pub fn container_config(
    svc: &Service,
    project: &Project,
    p: &Placement,
) -> Result<ContainerConfig, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_PROJECT.into(), p.project.clone());
    labels.insert(LABEL_SERVICE.into(), p.service.clone());
    labels.insert(LABEL_NUMBER.into(), p.number.to_string());
    labels.insert(LABEL_HASH.into(), p.config_hash.clone());
    if let Some(d) = &p.image_digest {
        labels.insert(LABEL_IMAGE_DIGEST.into(), d.clone());
    }
    let log = svc
        .logging
        .as_ref()
        .map(|l| LogConfig {
            max_size: l
                .options
                .get("max-size")
                .and_then(|s| s.as_deref())
                .and_then(|s| model::units::parse_byte_size(s).ok())
                .map(|b| b.bytes()),
            max_file: l
                .options
                .get("max-file")
                .and_then(|s| s.as_deref())
                .and_then(|s| s.parse().ok()),
        })
        .unwrap_or_default();
    Ok(ContainerConfig {
        name: p.name.clone(),
        labels,
        rootfs: p.rootfs.clone(),
        image: p.image.clone(),
        entrypoint: svc.entrypoint.clone(),
        command: svc.command.clone(),
        env: env_list(svc),
        user: svc.user.clone(),
        working_dir: svc.working_dir.clone(),
        tty: svc.tty.unwrap_or(false),
        stdin_open: svc.stdin_open.unwrap_or(false),
        hostname: svc.hostname.clone(),
        mounts: mounts(svc, project, p)?,
        namespaces: JoinNamespaces {
            net: p.netns.clone(),
            ipc: p.ipc.clone(),
            pid: p.pid.clone(),
            uts: None,
        },
        resources: resources(svc),
        ulimits: svc
            .ulimits
            .iter()
            .map(|(name, u)| Ulimit {
                name: name.clone(),
                soft: u.soft.max(0) as u64,
                hard: u.hard.max(0) as u64,
            })
            .collect(),
        sysctls: svc
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cap_add: svc.cap_add.clone(),
        cap_drop: svc.cap_drop.clone(),
        privileged: svc.privileged.unwrap_or(false),
        read_only: svc.read_only.unwrap_or(false),
        devices: svc
            .devices
            .iter()
            .map(|d| DeviceSpec {
                host_path: PathBuf::from(&d.source),
                container_path: d.target.clone(),
                permissions: d.permissions.clone(),
            })
            .collect(),
        restart: restart(svc),
        healthcheck: healthcheck(svc),
        stop_signal: svc.stop_signal.clone(),
        stop_grace_period: svc.stop_grace_period.as_ref().map(duration),
        init: svc.init.unwrap_or(false),
        log,
        security: security(svc)?,
        userns: p.userns,
    })
}

/// `security_opt` as Docker reads it: `no-new-privileges[:true|false]`,
/// `seccomp=unconfined|FILE`; `label` and
/// `apparmor` are accepted and not enforced (this host has neither LSM).
fn security(svc: &Service) -> Result<Security, String> {
    let mut out = Security::default();
    for opt in &svc.security_opt {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => out.no_new_privileges = Some(true),
            ("no-new-privileges", Some("false")) => out.no_new_privileges = Some(false),
            ("seccomp", Some("unconfined")) => out.seccomp = SeccompPolicy::Unconfined,
            ("seccomp", Some(file)) if !file.is_empty() => {
                // Relative to where `berth` runs, as `docker run --security-opt` reads it.
                let path = std::path::absolute(file)
                    .map_err(|e| format!("security_opt {opt:?}: {e}"))?;
                out.seccomp = SeccompPolicy::Profile(path)
            }
            ("label" | "apparmor", Some(_)) => {}
            _ => {
                return Err(format!(
                    "security_opt {opt:?}: use no-new-privileges[:true|false], \
                     seccomp=unconfined or seccomp=FILE (label= and apparmor= are accepted, not enforced)"
                ))
            }
        }
    }
    Ok(out)
}

/// Where a volume's data lives.
pub fn volume_dir(volumes_dir: &Path, engine_name: &str) -> PathBuf {
    volumes_dir.join(engine_name).join("_data")
}

/// The engine name of a container's anonymous volume (`volumes: [/data]`): it belongs to
/// that container alone and goes when the container is removed.
pub fn anonymous_volume(container: &str, target: &str) -> String {
    format!(
        "{}{}",
        anonymous_prefix(container),
        target.replace('/', "_")
    )
}

pub fn anonymous_prefix(container: &str) -> String {
    format!("{container}-anon")
}
