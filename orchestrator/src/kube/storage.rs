//! What a container mounts: named volumes as PVCs, anonymous ones and tmpfs as
//! emptyDirs, configs and secrets (and bind-mounted files, copied) as ConfigMaps and
//! Secrets.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, KeyToPath,
    PersistentVolumeClaimVolumeSource, PodSpec, Secret, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::ByteString;

use super::convert::{claim, ConvertError, Ctx};
use super::names::{data_key, derived, dns_label};
use crate::stack::model::{FileReference, Service, VolumeType};

/// ConfigMaps and Secrets hold at most 1 MiB.
const MAX_DATA: u64 = 1024 * 1024;

fn add_volume(spec: &mut PodSpec, v: Volume) {
    let vols = spec.volumes.get_or_insert_with(Vec::new);
    if !vols.iter().any(|x| x.name == v.name) {
        vols.push(v);
    }
}

fn mount(c: &mut Container, m: VolumeMount) {
    c.volume_mounts.get_or_insert_with(Vec::new).push(m);
}

fn empty_volume(name: String) -> Volume {
    Volume {
        name,
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn claim_volume(name: String, claim_name: String) -> Volume {
    Volume {
        name,
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name,
            read_only: None,
        }),
        ..Default::default()
    }
}

fn mount_at(path: &str, read_only: Option<bool>, sub_path: Option<String>) -> VolumeMount {
    VolumeMount {
        mount_path: path.to_string(),
        read_only,
        sub_path,
        ..Default::default()
    }
}

/// Adds `volume` to the Pod (once) and mounts it in the container as `at` says.
fn attach(spec: &mut PodSpec, c: &mut Container, volume: Volume, mut at: VolumeMount) {
    at.name = volume.name.clone();
    add_volume(spec, volume);
    mount(c, at);
}

fn memory_dir(size: Option<u64>) -> EmptyDirVolumeSource {
    EmptyDirVolumeSource {
        medium: Some("Memory".into()),
        size_limit: size.map(|s| Quantity(s.to_string())),
    }
}

pub(super) fn mounts(
    ctx: &mut Ctx<'_>,
    name: &str,
    svc: &Service,
    c: &mut Container,
    spec: &mut PodSpec,
) -> Result<(), ConvertError> {
    let loaded = ctx.loaded;
    let project = &loaded.project;
    let cname = dns_label(name);
    for (i, v) in svc.volumes.iter().enumerate() {
        let key = format!("volumes[{i}]");
        let read_only = v.read_only.then_some(true);
        match v.kind {
            VolumeType::Volume => {
                let sub_path = v.volume.as_ref().and_then(|o| o.subpath.clone());
                // `nocopy` needs nothing: Kubernetes never copies the image's files into a
                // volume (Docker does, without it; the README says so).
                match &v.source {
                    Some(src) => {
                        let users = volume_users(project, src);
                        if users > 1 {
                            ctx.warnings.service(name, &key, format!("volume {src} is shared by {users} services: its claim asks for ReadWriteMany, which needs a storage class that offers it"));
                        }
                        let claim_name = claim(ctx, src, users > 1);
                        let vol_name = derived("data", src);
                        attach(
                            spec,
                            c,
                            claim_volume(vol_name, claim_name),
                            mount_at(&v.target, read_only, sub_path),
                        );
                    }
                    None => {
                        let vol_name = derived(&format!("{cname}-anon"), &i.to_string());
                        attach(
                            spec,
                            c,
                            empty_volume(vol_name),
                            mount_at(&v.target, read_only, None),
                        );
                    }
                }
            }
            VolumeType::Tmpfs => {
                let vol_name = derived(&format!("{cname}-tmpfs"), &i.to_string());
                let t = v.tmpfs.as_ref();
                if t.and_then(|t| t.mode).is_some() {
                    ctx.warnings.service(
                        name,
                        &format!("{key}.tmpfs.mode"),
                        "an emptyDir's mode cannot be set",
                    );
                }
                attach(
                    spec,
                    c,
                    Volume {
                        name: vol_name,
                        empty_dir: Some(memory_dir(t.and_then(|t| t.size).map(|s| s.0))),
                        ..Default::default()
                    },
                    mount_at(&v.target, read_only, None),
                );
            }
            VolumeType::Bind => bind(ctx, name, &key, v, c, spec)?,
            _ => ctx.warnings.service(
                name,
                &key,
                format!("a {:?} mount has no Kubernetes form; dropped", v.kind),
            ),
        }
        if v.bind.as_ref().is_some_and(|b| b.propagation.is_some()) {
            ctx.warnings.service(
                name,
                &format!("{key}.bind.propagation"),
                "bind propagation applies to node paths, which are not mounted; dropped",
            );
        }
    }
    for (i, from) in svc.volumes_from.iter().enumerate() {
        volumes_from(ctx, name, &format!("volumes_from[{i}]"), from, c, spec);
    }
    for (i, t) in svc.tmpfs.iter().enumerate() {
        let (path, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        let mut size = None;
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o.strip_prefix("size=") {
                Some(s) => {
                    size = crate::stack::model::units::parse_byte_size(s)
                        .ok()
                        .map(|b| b.0)
                }
                None => ctx.warnings.service(
                    name,
                    &format!("tmpfs[{i}]"),
                    format!("option {o:?} has no emptyDir form"),
                ),
            }
        }
        let vol_name = derived(&format!("{cname}-tmpfs-list"), &i.to_string());
        attach(
            spec,
            c,
            Volume {
                name: vol_name,
                empty_dir: Some(memory_dir(size)),
                ..Default::default()
            },
            VolumeMount {
                mount_path: path.to_string(),
                ..Default::default()
            },
        );
    }
    if let Some(shm) = svc.shm_size {
        let vol_name = derived(&cname, "shm");
        attach(
            spec,
            c,
            Volume {
                name: vol_name,
                empty_dir: Some(memory_dir(Some(shm.0))),
                ..Default::default()
            },
            VolumeMount {
                mount_path: "/dev/shm".into(),
                ..Default::default()
            },
        );
    }
    for (i, r) in svc.configs.iter().enumerate() {
        file_object(ctx, name, &format!("configs[{i}]"), r, false, c, spec)?;
    }
    for (i, r) in svc.secrets.iter().enumerate() {
        file_object(ctx, name, &format!("secrets[{i}]"), r, true, c, spec)?;
    }
    Ok(())
}

/// A bind mount: a file or a flat directory is copied into a ConfigMap (a warning says
/// that it is a copy); anything else becomes an empty directory, with a warning.
fn bind(
    ctx: &mut Ctx<'_>,
    name: &str,
    key: &str,
    v: &crate::stack::model::ServiceVolume,
    c: &mut Container,
    spec: &mut PodSpec,
) -> Result<(), ConvertError> {
    let src_abs = v.source.clone().unwrap_or_default();
    let path = Path::new(&src_abs);
    // Said as the user wrote it (relative to the project), not as resolved.
    let src = match path.strip_prefix(&ctx.loaded.working_dir) {
        Ok(rel) => format!("./{}", rel.display()),
        Err(_) => src_abs.clone(),
    };
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| ConvertError::Read {
            key: format!("services.{name}.{key}"),
            path: p.display().to_string(),
            source,
        })
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut single = None;
    let meta = std::fs::metadata(path).ok();
    let fits = |len: u64| len <= MAX_DATA;
    if meta.as_ref().is_some_and(|m| m.is_file() && fits(m.len())) {
        let k = data_key(
            &path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into()),
        );
        files.insert(k.clone(), read(path)?);
        single = Some(k);
    } else if meta.as_ref().is_some_and(|m| m.is_dir()) {
        let mut total = 0;
        let mut flat = true;
        if let Ok(entries) = std::fs::read_dir(path) {
            let mut entries: Vec<_> = entries.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let Ok(m) = e.metadata() else {
                    flat = false;
                    break;
                };
                if !m.is_file() {
                    flat = false;
                    break;
                }
                total += m.len();
                files.insert(data_key(&e.file_name().to_string_lossy()), read(&e.path())?);
            }
        }
        if !flat || !fits(total) || files.is_empty() {
            files.clear();
        }
    }
    let vol_name = derived(
        &format!("{}-bind", dns_label(name)),
        key.trim_start_matches("volumes[").trim_end_matches(']'),
    );
    if files.is_empty() {
        ctx.warnings.service(name, key, format!("bind mount of {src}: a host path has no cluster form (only a file or a flat directory under 1 MiB is copied into a ConfigMap); an empty directory is mounted instead"));
        attach(
            spec,
            c,
            empty_volume(vol_name),
            mount_at(&v.target, v.read_only.then_some(true), None),
        );
        return Ok(());
    }
    ctx.warnings.service(name, key, format!("bind mount of {src} is copied into a ConfigMap: later edits on the host are not seen, and the container cannot write it"));
    let cm_name = derived(
        &dns_label(name),
        &format!(
            "bind-{}",
            &key.trim_start_matches("volumes[").trim_end_matches(']')
        ),
    );
    let cm = config_map(ctx, &cm_name, Some(name), files);
    ctx.add("ConfigMap", &cm_name, &cm);
    attach(
        spec,
        c,
        Volume {
            name: vol_name,
            config_map: Some(ConfigMapVolumeSource {
                name: cm_name,
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeMount {
            mount_path: v.target.clone(),
            read_only: Some(true),
            sub_path: single,
            ..Default::default()
        },
    );
    Ok(())
}

fn config_map(
    ctx: &Ctx<'_>,
    name: &str,
    service: Option<&str>,
    files: BTreeMap<String, Vec<u8>>,
) -> ConfigMap {
    let mut data = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for (k, bytes) in files {
        match String::from_utf8(bytes) {
            Ok(s) => {
                data.insert(k, s);
            }
            Err(e) => {
                binary.insert(k, ByteString(e.into_bytes()));
            }
        }
    }
    ConfigMap {
        metadata: ctx.meta(name, service),
        data: (!data.is_empty()).then_some(data),
        binary_data: (!binary.is_empty()).then_some(binary),
        ..Default::default()
    }
}

/// A config or secret reference: its object (made once) and a mount of its one key at
/// the target path.
fn file_object(
    ctx: &mut Ctx<'_>,
    name: &str,
    key: &str,
    r: &FileReference,
    secret: bool,
    c: &mut Container,
    spec: &mut PodSpec,
) -> Result<(), ConvertError> {
    let loaded = ctx.loaded;
    let (kind, top) = if secret {
        ("secrets", &loaded.project.secrets)
    } else {
        ("configs", &loaded.project.configs)
    };
    let Some(obj) = top.get(&r.source) else {
        return Ok(());
    };
    if r.uid.is_some() || r.gid.is_some() {
        ctx.warnings.service(
            name,
            &format!("{key}.uid"),
            "projected files are owned by root (or the Pod's fsGroup); uid and gid are dropped",
        );
    }
    let data_name = data_key(&r.source);
    let object_name = if obj.external == Some(true) {
        dns_label(obj.name.as_deref().unwrap_or(&r.source))
    } else {
        let object_name = derived(if secret { "secret" } else { "config" }, &r.source);
        let bytes: Vec<u8> = if let Some(f) = &obj.file {
            match std::fs::read(f) {
                Ok(b) => b,
                // Not there (yet): the Pod names the object, and waits until it exists.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let what = if secret {
                        "secret generic"
                    } else {
                        "configmap"
                    };
                    ctx.warnings.push(
                        format!("{kind}.{}.file", r.source),
                        format!("{f} does not exist, so no object is written; create it in the cluster: kubectl create {what} {object_name} --from-file={data_name}=FILE"),
                    );
                    mount_object(name, r, secret, object_name, data_name, c, spec);
                    return Ok(());
                }
                Err(source) => {
                    return Err(ConvertError::Read {
                        key: format!("{kind}.{}.file", r.source),
                        path: f.clone(),
                        source,
                    })
                }
            }
        } else if let Some(text) = &obj.content {
            text.clone().into_bytes()
        } else if let Some(var) = &obj.environment {
            match loaded.environment.get(var) {
                Some(v) => v.clone().into_bytes(),
                None => {
                    ctx.warnings.push(
                        format!("{kind}.{}.environment", r.source),
                        format!("{var} is not set; the object is empty"),
                    );
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let mut labels = ctx.labels(None);
        for (k, v) in &obj.labels {
            if super::names::is_qualified_key(k) && super::names::is_label_value(v) {
                labels.insert(k.clone(), v.clone());
            }
        }
        if secret {
            let s = Secret {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    labels: Some(labels),
                    ..ctx.meta(&object_name, None)
                },
                data: Some(BTreeMap::from([(data_name.clone(), ByteString(bytes))])),
                type_: Some("Opaque".into()),
                ..Default::default()
            };
            ctx.add("Secret", &object_name, &s);
        } else {
            let mut cm = config_map(
                ctx,
                &object_name,
                None,
                BTreeMap::from([(data_name.clone(), bytes)]),
            );
            cm.metadata.labels = Some(labels);
            ctx.add("ConfigMap", &object_name, &cm);
        }
        object_name
    };
    mount_object(name, r, secret, object_name, data_name, c, spec);
    Ok(())
}

/// Mounts key `data_name` of the ConfigMap or Secret `object_name` at the reference's
/// target.
fn mount_object(
    _service: &str,
    r: &FileReference,
    secret: bool,
    object_name: String,
    data_name: String,
    c: &mut Container,
    spec: &mut PodSpec,
) {
    let target = match &r.target {
        Some(t) if t.starts_with('/') => t.clone(),
        Some(t) if secret => format!("/run/secrets/{t}"),
        Some(t) => format!("/{t}"),
        None if secret => format!("/run/secrets/{}", r.source),
        None => format!("/{}", r.source),
    };
    let mode = r.mode.map(|m| m.0 as i32);
    let items = Some(vec![KeyToPath {
        key: data_name.clone(),
        path: data_name.clone(),
        mode,
    }]);
    let vol_name = derived(if secret { "secret" } else { "config" }, &r.source);
    let volume = if secret {
        Volume {
            name: vol_name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(object_name),
                items,
                ..Default::default()
            }),
            ..Default::default()
        }
    } else {
        Volume {
            name: vol_name.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: object_name,
                items,
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    add_volume(spec, volume);
    mount(
        c,
        VolumeMount {
            name: vol_name,
            mount_path: target,
            read_only: Some(true),
            sub_path: Some(data_name),
            ..Default::default()
        },
    );
}

/// Whether service `s` mounts top-level volume `src`.
fn mounts_volume(s: &Service, src: &str) -> bool {
    s.volumes
        .iter()
        .any(|x| x.kind == VolumeType::Volume && x.source.as_deref() == Some(src))
}

/// The service a `volumes_from` entry names, and whether it asks for read-only.
fn volumes_from_target(entry: &str) -> Option<(&str, bool)> {
    let rest = entry.strip_prefix("service:").unwrap_or(entry);
    if entry.starts_with("container:") {
        return None;
    }
    Some(match rest.rsplit_once(':') {
        Some((svc, "ro")) => (svc, true),
        Some((svc, "rw")) => (svc, false),
        _ => (rest, false),
    })
}

/// How many services mount top-level volume `src`, directly or through `volumes_from`.
fn volume_users(project: &crate::stack::model::Project, src: &str) -> usize {
    project
        .services
        .values()
        .filter(|s| {
            mounts_volume(s, src)
                || s.volumes_from.iter().any(|f| {
                    volumes_from_target(f)
                        .and_then(|(x, _)| project.services.get(x))
                        .is_some_and(|x| mounts_volume(x, src))
                })
        })
        .count()
}

/// `volumes_from`: the other service's named volumes are mounted from the same claims at
/// the same paths; what lives only in its Pod (anonymous volumes, tmpfs) cannot be shared.
fn volumes_from(
    ctx: &mut Ctx<'_>,
    name: &str,
    key: &str,
    entry: &str,
    c: &mut Container,
    spec: &mut PodSpec,
) {
    let loaded = ctx.loaded;
    let Some((other, ro)) = volumes_from_target(entry) else {
        ctx.warnings.service(
            name,
            key,
            format!("{entry:?}: a container outside the stack has no Kubernetes form; dropped"),
        );
        return;
    };
    let Some(src_svc) = loaded.project.services.get(other) else {
        return;
    };
    for v in &src_svc.volumes {
        match (&v.kind, &v.source) {
            (VolumeType::Volume, Some(src)) => {
                let users = volume_users(&loaded.project, src);
                let claim_name = claim(ctx, src, users > 1);
                let vol_name = derived("data", src);
                let sub_path = v.volume.as_ref().and_then(|o| o.subpath.clone());
                let read_only = (ro || v.read_only).then_some(true);
                attach(spec, c, claim_volume(vol_name, claim_name), mount_at(&v.target, read_only, sub_path));
            }
            _ => ctx.warnings.service(
                name,
                key,
                format!("{other}'s mount at {} is not a named volume; only named volumes (claims) can be shared between Pods", v.target),
            ),
        }
    }
}
