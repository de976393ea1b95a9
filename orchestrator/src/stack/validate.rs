//! Cross-reference checks on the typed project, before anything touches the host: every
//! name a service uses must exist, no two services may publish the same host port, and
//! the dependency graph must have no cycle.

use std::collections::HashMap;
use std::net::IpAddr;

use super::error::StackError;
use super::model::{Project, Service, VolumeType, HOST_GATEWAY};
use super::project::span_at;
use super::yaml::Node;
use crate::graph::{Condition, EdgeKind, GraphError, ServiceGraph};

/// Checks the project and builds its dependency graph. With `strict` off (library
/// callers that load partial stacks), references to unknown names are dropped instead
/// of refused; a cycle is always refused.
pub fn check(
    project: &Project,
    root: &Node,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<ServiceGraph, StackError> {
    if strict {
        check_resources(project, root)?;
    }
    // A host-port clash is legal Compose (docker compose config prints it; the engine
    // fails at start): `config` warns, and `up` refuses it before touching the host
    // (see [`check_runnable`]).
    if let Err(e) = check_ports(project, root) {
        warnings.push(e.to_string());
    }
    let graph = build_graph(project, root, strict)?;
    for dropped in graph.warnings() {
        warnings.push(dropped.to_string());
    }
    Ok(graph)
}

/// What must hold before a stack is brought up, beyond loading: no two services bind the
/// same host port; `extra_hosts` Docker would accept; every secret or config taken from an
/// environment variable has it.
pub fn check_runnable(loaded: &super::Loaded) -> Result<(), StackError> {
    check_ports(&loaded.project, &loaded.root)?;
    for (name, svc) in &loaded.project.services {
        check_extra_hosts(name, svc).map_err(|m| {
            StackError::at(
                &span_at(&loaded.root, &["services", name, "extra_hosts"]),
                format!("services.{name}.extra_hosts"),
                m,
            )
        })?;
    }
    check_environment_sources(loaded)
}

/// Refuses what Docker refuses at create time, before `up` makes anything: an address
/// that is neither an IP nor `host-gateway`, `host-gateway` in a container with no
/// network to reach the host through, and entries for a container that shares another
/// one's network namespace (and so its /etc/hosts).
fn check_extra_hosts(name: &str, svc: &Service) -> Result<(), String> {
    let mode = svc.network_mode.as_deref().unwrap_or_default();
    for (host, ips) in &svc.extra_hosts.0 {
        if mode.starts_with("service:") || mode.starts_with("container:") {
            return Err(format!(
                "service {name:?}: `extra_hosts` cannot be combined with `network_mode: {mode}`: the container uses the /etc/hosts of the namespace it joins (Docker refuses this too); drop one of the two"
            ));
        }
        for ip in ips {
            if ip == HOST_GATEWAY {
                if mode == "none" {
                    return Err(format!(
                        "service {name:?}: extra host {host}:{HOST_GATEWAY}: with `network_mode: none` there is no network to reach the host through"
                    ));
                }
            } else if ip.parse::<IpAddr>().is_err() {
                return Err(format!(
                    "service {name:?}: extra host {host}:{ip}: {ip:?} is not an IP address (nor {HOST_GATEWAY})"
                ));
            }
        }
    }
    Ok(())
}

/// A secret or config a service uses with `environment: VAR` needs VAR set (in the
/// environment or `.env`) before anything is made. The error names the variable, never
/// a value.
fn check_environment_sources(loaded: &super::Loaded) -> Result<(), StackError> {
    let p = &loaded.project;
    for svc in p.services.values() {
        for (kind, name, top) in p.file_objects_of(svc) {
            let Some(var) = top.and_then(|t| t.environment.as_ref()) else {
                continue;
            };
            if !loaded.environment.contains_key(var) {
                return Err(StackError::at(
                    &span_at(&loaded.root, &[kind, name, "environment"]),
                    format!("{kind}.{name}.environment"),
                    super::model::unset_variable(kind, name, var),
                ));
            }
        }
    }
    Ok(())
}

/// The services `svc` names, each with how: `depends_on` (with its condition),
/// `network_mode`/`ipc`/`pid: service:X`, `volumes_from` (not `container:`), `links`.
/// The one list of service-to-service references: the dependency graph's edges, and
/// what a service enabled by a profile or on the command line brings along
/// (`load::apply_profiles`).
pub fn references(svc: &Service) -> Vec<(String, EdgeKind)> {
    let mut out = Vec::new();
    for (dep, d) in &svc.depends_on {
        out.push((
            dep.clone(),
            EdgeKind::DependsOn {
                condition: match d.condition.as_str() {
                    "service_healthy" => Condition::Healthy,
                    "service_completed_successfully" => Condition::CompletedSuccessfully,
                    _ => Condition::Started,
                },
                required: d.required,
                restart: d.restart,
            },
        ));
    }
    let service_ref = |v: &Option<String>| {
        v.as_deref()
            .and_then(|s| s.strip_prefix("service:"))
            .map(str::to_string)
    };
    if let Some(s) = service_ref(&svc.network_mode) {
        out.push((s, EdgeKind::NetworkMode));
    }
    if let Some(s) = service_ref(&svc.ipc) {
        out.push((s, EdgeKind::Ipc));
    }
    if let Some(s) = service_ref(&svc.pid) {
        out.push((s, EdgeKind::Pid));
    }
    for v in &svc.volumes_from {
        if !v.starts_with("container:") {
            out.push((
                v.split(':').next().unwrap_or(v).to_string(),
                EdgeKind::VolumesFrom,
            ));
        }
    }
    for l in &svc.links {
        out.push((
            l.split(':').next().unwrap_or(l).to_string(),
            EdgeKind::Links,
        ));
    }
    out
}

fn edges(project: &Project, name: &str, strict: bool) -> Vec<(String, EdgeKind)> {
    let mut out = references(&project.services[name]);
    if !strict {
        out.retain(|(dep, _)| project.services.contains_key(dep));
    }
    out
}

fn build_graph(project: &Project, root: &Node, strict: bool) -> Result<ServiceGraph, StackError> {
    let input = project
        .services
        .keys()
        .map(|name| (name.clone(), edges(project, name, strict)));
    ServiceGraph::build(input).map_err(|e| match &e {
        GraphError::UnknownService { service, kind, .. } => StackError::at(
            &span_at(root, &["services", service, kind]),
            format!("services.{service}.{kind}"),
            e.to_string(),
        ),
        GraphError::Cycle { path } => StackError::at(
            &span_at(root, &["services", &path[0], "depends_on"]),
            format!("services.{}", path[0]),
            e.to_string(),
        ),
        _ => StackError::Invalid(e.to_string()),
    })
}

/// `userns_mode` is one Berth knows, and nothing else of the service needs the host's
/// ids. As Docker refuses them with user namespaces on: `privileged` (it means the
/// host's root), and sharing the host's network, pid, ipc or uts namespace or another
/// service's pid or ipc namespace (those belong to the host's user namespace: the
/// mapped root could not mount their /proc or mqueue). `network_mode: service:X` is
/// fine: a network namespace can be joined from any user namespace.
fn check_userns(name: &str, svc: &super::model::Service) -> Result<(), String> {
    use super::model::userns::{parse, UsernsMode};
    if parse(svc.userns_mode.as_deref())? == UsernsMode::Host {
        return Ok(());
    }
    let mode = svc.userns_mode.as_deref().unwrap_or_default();
    if svc.privileged == Some(true) {
        return Err(format!(
            "service {name:?}: `privileged: true` cannot be combined with `userns_mode: {mode}`: privileged means the host's root; drop one of the two"
        ));
    }
    for (key, value) in [
        ("network_mode", &svc.network_mode),
        ("pid", &svc.pid),
        ("ipc", &svc.ipc),
        ("uts", &svc.uts),
    ] {
        let Some(v) = value.as_deref() else { continue };
        let shares = v == "host" || (key != "network_mode" && v.starts_with("service:"));
        if shares {
            return Err(format!(
                "service {name:?}: `{key}: {v}` cannot be combined with `userns_mode: {mode}`: that namespace belongs to the host's user namespace (use `userns_mode: host`, or drop `{key}`)"
            ));
        }
    }
    Ok(())
}

fn check_resources(project: &Project, root: &Node) -> Result<(), StackError> {
    for (name, svc) in &project.services {
        let at = |key: &str, message: String| {
            StackError::at(
                &span_at(root, &["services", name, key]),
                format!("services.{name}.{key}"),
                message,
            )
        };
        if svc.image.is_none() && svc.build.is_none() && svc.provider.is_none() {
            return Err(StackError::at(
                &span_at(root, &["services", name]),
                format!("services.{name}"),
                format!("service {name:?} has neither an image nor a build context specified: add `image:` or `build:`"),
            ));
        }
        check_userns(name, svc).map_err(|m| at("userns_mode", m))?;
        if svc.network_mode.is_some() && svc.networks.keys().any(|n| n != "default") {
            return Err(at(
                "network_mode",
                format!("service {name} declares mutually exclusive `network_mode` and `networks`: keep one"),
            ));
        }
        for net in svc.networks.keys() {
            if !project.networks.contains_key(net) {
                return Err(at(
                    "networks",
                    format!("service {name:?} refers to undefined network {net:?}: declare it under the top-level `networks:`"),
                ));
            }
        }
        for vol in &svc.volumes {
            match vol.kind {
                VolumeType::Volume => {
                    if let Some(src) = &vol.source {
                        if !project.volumes.contains_key(src) {
                            return Err(at(
                                "volumes",
                                format!("service {name:?} refers to undefined volume {src:?}: declare it under the top-level `volumes:`"),
                            ));
                        }
                    }
                }
                VolumeType::Bind if vol.source.as_deref().is_none_or(str::is_empty) => {
                    return Err(at(
                        "volumes",
                        format!("invalid mount config for type \"bind\": the source of the bind mount at {} must not be empty", vol.target),
                    ));
                }
                _ => {}
            }
        }
        for secret in &svc.secrets {
            if !project.secrets.contains_key(&secret.source) {
                return Err(at(
                    "secrets",
                    format!("service {name:?} refers to undefined secret {:?}: declare it under the top-level `secrets:`", secret.source),
                ));
            }
        }
        for config in &svc.configs {
            if !project.configs.contains_key(&config.source) {
                return Err(at(
                    "configs",
                    format!("service {name:?} refers to undefined config {:?}: declare it under the top-level `configs:`", config.source),
                ));
            }
        }
    }
    Ok(())
}

/// A host port range one port entry binds: (host IP, protocol, first, last).
fn host_ports(p: &super::model::Port) -> Option<(String, String, u16, u16)> {
    let published = p.published.as_deref()?;
    let (a, b) = match published.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let v: u16 = published.parse().ok()?;
            (v, v)
        }
    };
    let ip = p.host_ip.clone().unwrap_or_default();
    Some((ip, p.protocol.as_str().to_string(), a, b))
}

/// Two services binding the same host port on overlapping addresses cannot both start;
/// say so now, not half-way through `up`. (A host range, `8000-8010:80`, is a pool to
/// pick one port from, so only single ports are compared.)
fn check_ports(project: &Project, root: &Node) -> Result<(), StackError> {
    let mut taken: HashMap<(String, u16), Vec<(String, String)>> = HashMap::new();
    for (name, svc) in &project.services {
        for p in &svc.ports {
            let Some((ip, proto, a, b)) = host_ports(p) else {
                continue;
            };
            if a != b {
                continue;
            }
            let users = taken.entry((proto.clone(), a)).or_default();
            for (other, other_ip) in users.iter() {
                let overlap = ip.is_empty()
                    || other_ip.is_empty()
                    || ip == *other_ip
                    || ip == "0.0.0.0"
                    || other_ip == "0.0.0.0"
                    || ip == "::"
                    || other_ip == "::";
                if overlap && other != name {
                    return Err(StackError::at(
                        &span_at(root, &["services", name, "ports"]),
                        format!("services.{name}.ports"),
                        format!(
                            "host port {a}/{proto} is published by both {other:?} and {name:?}: give one of them another host port"
                        ),
                    ));
                }
            }
            users.push((name.clone(), ip));
        }
    }
    Ok(())
}
