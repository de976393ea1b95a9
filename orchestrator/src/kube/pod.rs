//! One Pod: the containers of a service and of the services that join its network
//! namespace, with everything Compose sets per container (command, environment, probes,
//! resources, security) and per sandbox (hosts, DNS, sysctls, namespaces).

use std::collections::BTreeMap;

use indexmap::IndexMap;
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort,
    EnvFromSource, EnvVar, ExecAction, HostAlias, Lifecycle, LifecycleHandler, PodDNSConfig,
    PodDNSConfigOption, PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, Sysctl,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

use super::convert::{internal_ports, network_label, ConvertError, Ctx};
use super::names::{derived, dns_label, is_env_key, is_qualified_key};
use super::storage;
use super::warnings::LOST;
use crate::stack::model::{Condition, Healthcheck, PullPolicy, Service, ServiceHook};

/// The image the init containers that wait for a dependency run.
pub const WAIT_IMAGE: &str = "busybox:1.37";

pub(super) struct PodParts {
    pub spec: PodSpec,
    pub network_labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Keys `container`, `pod_level` and `storage` handle (fully or with their own warnings).
const HANDLED: &[&str] = &[
    "annotations",
    "build",
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "container_name",
    "cpu_period",
    "cpu_quota",
    "cpu_shares",
    "cpus",
    "depends_on",
    "deploy",
    "dns",
    "dns_opt",
    "dns_search",
    "entrypoint",
    "environment",
    "expose",
    "extra_hosts",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "ipc",
    "labels",
    "links",
    "mem_limit",
    "mem_reservation",
    "network_mode",
    "networks",
    "pid",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "sysctls",
    "tmpfs",
    "tty",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

pub(super) fn pod(
    ctx: &mut Ctx<'_>,
    root: &str,
    members: &[String],
    pods: &IndexMap<String, Vec<String>>,
) -> Result<PodParts, ConvertError> {
    let loaded = ctx.loaded;
    let project = &loaded.project;
    let mut spec = PodSpec::default();
    let mut network_labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut sysctls: Vec<Sysctl> = Vec::new();
    let mut groups: Vec<i64> = Vec::new();
    let mut init: Vec<Container> = Vec::new();
    let mut grace: Option<i64> = None;

    for m in members {
        let svc = &project.services[m];
        attribute_warnings(ctx, m, svc);
        for net in svc.networks.keys() {
            network_labels.insert(network_label(net), "true".to_string());
        }
        for (k, v) in &svc.annotations {
            if is_qualified_key(k) {
                annotations.insert(k.clone(), v.clone());
            } else {
                ctx.warnings.service(
                    m,
                    &format!("annotations.{k}"),
                    "not a valid Kubernetes annotation key; dropped",
                );
            }
        }
        let mut c = container(ctx, m, svc)?;
        storage::mounts(ctx, m, svc, &mut c, &mut spec)?;
        spec.containers.push(c);
        for (k, v) in &svc.sysctls {
            if !sysctls.iter().any(|s| &s.name == k) {
                sysctls.push(Sysctl {
                    name: k.clone(),
                    value: v.clone(),
                });
            }
        }
        for g in &svc.group_add {
            match g.parse::<i64>() {
                Ok(n) => groups.push(n),
                Err(_) => ctx.warnings.service(
                    m,
                    "group_add",
                    format!("{g:?}: Kubernetes takes numeric group ids only"),
                ),
            }
        }
        if let Some(d) = svc.stop_grace_period {
            let s = d.0.as_secs_f64().ceil() as i64;
            grace = Some(grace.map_or(s, |g: i64| g.max(s)));
        }
        for (dep, d) in &svc.depends_on {
            if members.contains(dep) || !project.services.contains_key(dep) {
                continue;
            }
            let key = format!("depends_on.{dep}");
            if !pods.contains_key(dep) && !pods.values().any(|ms| ms.contains(dep)) {
                if d.required {
                    ctx.warnings.service(m, &key, format!("{dep} is not converted (not named on the command line); nothing waits for it"));
                }
                continue;
            }
            if d.restart {
                ctx.warnings.service(
                    m,
                    &format!("{key}.restart"),
                    "Kubernetes does not restart a workload when another one changes",
                );
            }
            match d.condition {
                Condition::CompletedSuccessfully => ctx.warnings.service(
                    m,
                    &key,
                    format!("service_completed_successfully: {dep} becomes a Job, but waiting for a Job needs API access from the Pod; this Pod starts without waiting"),
                ),
                Condition::Started | Condition::Healthy => {
                    let ports = internal_ports(ctx, dep);
                    let owner = pods
                        .iter()
                        .find(|(_, ms)| ms.contains(dep))
                        .map(|(o, _)| o.clone())
                        .unwrap_or_else(|| dep.clone());
                    match ports.iter().find(|(_, proto, _)| *proto == "TCP") {
                        Some((port, _, _)) => {
                            let host = dns_label(&owner);
                            let what = if d.condition == Condition::Healthy { "ready (its healthcheck passes)" } else { "up" };
                            init.push(Container {
                                name: derived("wait-for", dep),
                                image: Some(WAIT_IMAGE.into()),
                                command: Some(vec![
                                    "sh".into(),
                                    "-c".into(),
                                    format!("echo waiting for {host}:{port} to be {what}; until nc -z -w 2 {host} {port}; do sleep 1; done"),
                                ]),
                                ..Default::default()
                            });
                        }
                        None => ctx.warnings.service(
                            m,
                            &key,
                            format!("{dep} has no TCP port in `ports` or `expose`, so there is no Service to wait for; this Pod starts without waiting"),
                        ),
                    }
                }
            }
        }
    }
    // Only internal networks: no way out of them, as Compose's internal networks have none.
    let all_internal = members.iter().all(|m| {
        let nets = &project.services[m].networks;
        !nets.is_empty()
            && nets.keys().all(|n| {
                project
                    .networks
                    .get(n)
                    .is_some_and(|n| n.internal == Some(true))
            })
    });
    if project.services[root].network_mode.as_deref() == Some("none") {
        network_labels.insert(super::NO_NETWORK_LABEL.to_string(), "true".to_string());
    }
    if all_internal {
        network_labels.insert(super::INTERNAL_LABEL.to_string(), "true".to_string());
    }
    let svc = &project.services[root];
    for m in members.iter().filter(|m| *m != root) {
        for (key, set) in pod_level_keys(&project.services[m]) {
            if set {
                ctx.warnings.service(
                    m,
                    key,
                    format!("a Pod-level setting; {m} shares {root}'s Pod, whose setting applies"),
                );
            }
        }
    }
    pod_level(ctx, root, svc, &mut spec, members);
    if !sysctls.is_empty() || !groups.is_empty() {
        let sc = spec
            .security_context
            .get_or_insert_with(PodSecurityContext::default);
        if !sysctls.is_empty() {
            sc.sysctls = Some(sysctls);
        }
        if !groups.is_empty() {
            sc.supplemental_groups = Some(groups);
        }
    }
    if !init.is_empty() {
        spec.init_containers = Some(init);
    }
    spec.termination_grace_period_seconds = grace;
    Ok(PodParts {
        spec,
        network_labels,
        annotations,
    })
}

/// Attributes a joining member sets that only the Pod's owner can.
fn pod_level_keys(s: &Service) -> [(&'static str, bool); 6] {
    [
        ("hostname", s.hostname.is_some()),
        ("dns", !s.dns.is_empty()),
        ("dns_search", !s.dns_search.is_empty()),
        ("dns_opt", !s.dns_opt.is_empty()),
        ("extra_hosts", !s.extra_hosts.is_empty()),
        ("runtime", s.runtime.is_some()),
    ]
}

/// Warnings for whole attributes with no form, found by walking the attributes the
/// service sets (its normalized serialization), so none can slip by unnamed.
fn attribute_warnings(ctx: &mut Ctx<'_>, name: &str, svc: &Service) {
    let Ok(Value::Object(map)) = serde_json::to_value(svc) else {
        return;
    };
    for key in map.keys() {
        if HANDLED.contains(&key.as_str()) || super::warnings::NOT_RUNTIME.contains(&key.as_str()) {
            continue;
        }
        let reason = LOST
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, r)| *r)
            .unwrap_or("has no Kubernetes form");
        ctx.warnings
            .service(name, key, format!("{reason}; dropped"));
    }
}

/// The container for one service.
fn container(ctx: &mut Ctx<'_>, name: &str, svc: &Service) -> Result<Container, ConvertError> {
    let loaded = ctx.loaded;
    let mut c = Container {
        name: dns_label(name),
        ..Default::default()
    };
    let image = match (&svc.image, &svc.build) {
        (Some(i), Some(_)) => {
            ctx.warnings.service(name, "build", format!("Kubernetes does not build images: build {i} and push it to a registry the cluster pulls from"));
            i.clone()
        }
        (Some(i), None) => i.clone(),
        (None, _) => {
            let i = format!("{}-{}", loaded.name, name);
            ctx.warnings.service(name, "build", format!("Kubernetes does not build images: build the image, push it to a registry the cluster pulls from, and set `image:` (the manifest names {i})"));
            i
        }
    };
    c.image = Some(image);
    c.command = svc.entrypoint.clone().filter(|e| !e.is_empty());
    if svc.entrypoint.as_ref().is_some_and(|e| e.is_empty()) {
        ctx.warnings.service(
            name,
            "entrypoint",
            "an empty entrypoint (no ENTRYPOINT) cannot be said on Kubernetes; the image's applies",
        );
    }
    c.args = svc.command.clone();
    c.working_dir = svc.working_dir.clone();
    c.tty = svc.tty;
    c.stdin = svc.stdin_open;
    c.image_pull_policy = match svc.pull_policy {
        None => None,
        Some(PullPolicy::Always) => Some("Always".into()),
        Some(PullPolicy::Never) => Some("Never".into()),
        Some(PullPolicy::Missing) => Some("IfNotPresent".into()),
        Some(p) => {
            ctx.warnings.service(
                name,
                "pull_policy",
                format!("{p:?} has no Kubernetes form; the kubelet's default applies"),
            );
            None
        }
    };

    // Environment: with env files, all of it goes to a ConfigMap the container reads
    // whole (`envFrom`), as Compose reads the file; otherwise inline.
    let had_env_file =
        crate::stack::project::node_at(&loaded.root, &["services", name, "env_file"]).is_some();
    let mut env: Vec<EnvVar> = Vec::new();
    let mut data = BTreeMap::new();
    for (k, v) in &svc.environment {
        let Some(v) = v else { continue };
        if had_env_file && is_env_key(k) {
            data.insert(k.clone(), v.clone());
        } else {
            env.push(EnvVar {
                name: k.clone(),
                value: Some(v.clone()),
                value_from: None,
            });
        }
    }
    if !data.is_empty() {
        let cm_name = derived(name, "env");
        let cm = ConfigMap {
            metadata: ctx.meta(&cm_name, Some(name)),
            data: Some(data),
            ..Default::default()
        };
        ctx.add("ConfigMap", &cm_name, &cm);
        c.env_from = Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: cm_name,
                optional: None,
            }),
            ..Default::default()
        }]);
    }
    if !env.is_empty() {
        c.env = Some(env);
    }

    let ports: Vec<ContainerPort> = internal_ports(ctx, name)
        .into_iter()
        .map(|(port, proto, _)| ContainerPort {
            container_port: i32::from(port),
            protocol: Some(proto.to_string()),
            ..Default::default()
        })
        .collect();
    if !ports.is_empty() {
        c.ports = Some(ports);
    }

    if let Some(h) = &svc.healthcheck {
        let (ready, live) = probes(ctx, name, h);
        c.readiness_probe = ready;
        c.liveness_probe = live;
    }
    c.resources = resources(ctx, name, svc);
    c.security_context = security(ctx, name, svc);
    c.lifecycle = lifecycle(ctx, name, svc);
    Ok(c)
}

fn exec_test(test: &[String]) -> Option<Vec<String>> {
    match test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        _ => None,
    }
}

fn secs(d: Option<crate::stack::model::Duration>, default: i32) -> i32 {
    d.map(|d| (d.0.as_secs_f64().ceil() as i32).max(1))
        .unwrap_or(default)
}

/// Readiness (the dependency's "healthy") and liveness probes from a healthcheck, with
/// Docker's defaults (30 s interval and timeout, 3 retries).
fn probes(ctx: &mut Ctx<'_>, name: &str, h: &Healthcheck) -> (Option<Probe>, Option<Probe>) {
    if h.disable == Some(true) {
        return (None, None);
    }
    let Some(cmd) = h.test.as_deref().and_then(exec_test) else {
        if h.test
            .as_deref()
            .is_some_and(|t| t.first().is_some_and(|k| k != "NONE"))
        {
            ctx.warnings
                .service(name, "healthcheck.test", "an empty test has no probe form");
        }
        return (None, None);
    };
    if h.start_interval.is_some() {
        ctx.warnings.service(
            name,
            "healthcheck.start_interval",
            "probes run at one interval on Kubernetes; the start interval is dropped",
        );
    }
    let probe = Probe {
        exec: Some(ExecAction { command: Some(cmd) }),
        period_seconds: Some(secs(h.interval, 30)),
        timeout_seconds: Some(secs(h.timeout, 30)),
        failure_threshold: Some(h.retries.map(|r| r.max(1) as i32).unwrap_or(3)),
        ..Default::default()
    };
    let live = Probe {
        initial_delay_seconds: h.start_period.map(|d| d.0.as_secs_f64().ceil() as i32),
        ..probe.clone()
    };
    (Some(probe), Some(live))
}

fn cpu(cores: f64) -> Quantity {
    Quantity(format!("{}m", (cores * 1000.0).round() as i64))
}

fn mem(bytes: u64) -> Quantity {
    const MI: u64 = 1024 * 1024;
    if bytes % MI == 0 && bytes > 0 {
        Quantity(format!("{}Mi", bytes / MI))
    } else {
        Quantity(bytes.to_string())
    }
}

/// Limits and requests from `deploy.resources` and the legacy attributes (`cpus`,
/// `mem_limit`, `cpu_quota`/`cpu_period`, `cpu_shares`, `mem_reservation`).
fn resources(ctx: &mut Ctx<'_>, name: &str, svc: &Service) -> Option<ResourceRequirements> {
    let res = svc.deploy.as_ref().and_then(|d| d.resources.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let reservations = res.and_then(|r| r.reservations.as_ref());
    let mut lim = BTreeMap::new();
    let mut req = BTreeMap::new();
    let quota_cpus = match (svc.cpu_quota, svc.cpu_period) {
        (Some(q), p) if q > 0 => Some(q as f64 / p.unwrap_or(100_000).max(1) as f64),
        (None, Some(_)) => {
            ctx.warnings.service(
                name,
                "cpu_period",
                "without cpu_quota it limits nothing; dropped",
            );
            None
        }
        _ => None,
    };
    if let Some(c) = limits
        .and_then(|l| l.cpus)
        .or(svc.cpus)
        .or(quota_cpus)
        .filter(|c| *c > 0.0)
    {
        lim.insert("cpu".to_string(), cpu(c));
    }
    if let Some(m) = limits.and_then(|l| l.memory).or(svc.mem_limit) {
        lim.insert("memory".to_string(), mem(m.0));
    }
    // The kubelet turns a CPU request into cgroup shares at 1024 per core: the inverse.
    let shares = svc.cpu_shares.map(|s| s as f64 / 1024.0);
    if let Some(c) = reservations
        .and_then(|r| r.cpus)
        .or(shares)
        .filter(|c| *c > 0.0)
    {
        req.insert("cpu".to_string(), cpu(c));
    }
    if let Some(m) = reservations.and_then(|r| r.memory).or(svc.mem_reservation) {
        req.insert("memory".to_string(), mem(m.0));
    }
    if lim.is_empty() && req.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        limits: (!lim.is_empty()).then_some(lim),
        requests: (!req.is_empty()).then_some(req),
        ..Default::default()
    })
}

fn cap(c: &str) -> String {
    c.strip_prefix("CAP_").unwrap_or(c).to_string()
}

fn security(ctx: &mut Ctx<'_>, name: &str, svc: &Service) -> Option<SecurityContext> {
    let mut sc = SecurityContext::default();
    let mut set = false;
    if let Some(user) = &svc.user {
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        match (u.parse::<i64>(), g.map(str::parse::<i64>)) {
            (Ok(u), None) => sc.run_as_user = Some(u),
            (Ok(u), Some(Ok(g))) => {
                sc.run_as_user = Some(u);
                sc.run_as_group = Some(g);
            }
            _ => ctx.warnings.service(
                name,
                "user",
                format!(
                    "{user:?}: Kubernetes takes numeric uid[:gid] only; the image's user applies"
                ),
            ),
        }
        set |= sc.run_as_user.is_some();
    }
    if !svc.cap_add.is_empty() || !svc.cap_drop.is_empty() {
        sc.capabilities = Some(Capabilities {
            add: (!svc.cap_add.is_empty()).then(|| svc.cap_add.iter().map(|c| cap(c)).collect()),
            drop: (!svc.cap_drop.is_empty()).then(|| svc.cap_drop.iter().map(|c| cap(c)).collect()),
        });
        set = true;
    }
    if let Some(p) = svc.privileged {
        sc.privileged = Some(p);
        set = true;
    }
    if let Some(r) = svc.read_only {
        sc.read_only_root_filesystem = Some(r);
        set = true;
    }
    for opt in &svc.security_opt {
        let (k, v) = opt.split_once([':', '=']).unwrap_or((opt.as_str(), "true"));
        match (k, v) {
            ("no-new-privileges", "true") => {
                sc.allow_privilege_escalation = Some(false);
                set = true;
            }
            ("no-new-privileges", "false") => {}
            ("seccomp", "unconfined") => {
                sc.seccomp_profile = Some(SeccompProfile {
                    type_: "Unconfined".into(),
                    localhost_profile: None,
                });
                set = true;
            }
            ("apparmor", "unconfined") => {
                sc.app_armor_profile = Some(AppArmorProfile {
                    type_: "Unconfined".into(),
                    localhost_profile: None,
                });
                set = true;
            }
            _ => ctx.warnings.service(
                name,
                "security_opt",
                format!("{opt:?} has no Kubernetes form (profiles live on the node); dropped"),
            ),
        }
    }
    set.then_some(sc)
}

fn hook(
    ctx: &mut Ctx<'_>,
    name: &str,
    key: &str,
    hooks: &[ServiceHook],
) -> Option<LifecycleHandler> {
    let first = hooks.first()?;
    if hooks.len() > 1 {
        ctx.warnings.service(
            name,
            key,
            "Kubernetes runs one hook of each kind; only the first is kept",
        );
    }
    if first.user.is_some()
        || first.privileged.is_some()
        || first.working_dir.is_some()
        || !first.environment.is_empty()
    {
        ctx.warnings.service(name, key, "a hook's own user, privileges, working directory and environment have no Kubernetes form; it runs as the container does");
    }
    Some(LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(first.command.clone()),
        }),
        ..Default::default()
    })
}

fn lifecycle(ctx: &mut Ctx<'_>, name: &str, svc: &Service) -> Option<Lifecycle> {
    let post_start = hook(ctx, name, "post_start", &svc.post_start);
    let pre_stop = hook(ctx, name, "pre_stop", &svc.pre_stop);
    (post_start.is_some() || pre_stop.is_some()).then(|| Lifecycle {
        post_start,
        pre_stop,
        ..Default::default()
    })
}

/// What the Pod's owner sets for the whole sandbox.
fn pod_level(ctx: &mut Ctx<'_>, name: &str, svc: &Service, spec: &mut PodSpec, members: &[String]) {
    let loaded = ctx.loaded;
    if let Some(h) = &svc.hostname {
        if dns_label(h) == *h {
            spec.hostname = Some(h.clone());
        } else {
            ctx.warnings.service(
                name,
                "hostname",
                format!("{h:?} is not a DNS label; Kubernetes names the Pod"),
            );
        }
    }
    match svc.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => {}
        Some("host") => spec.host_network = Some(true),
        // A deny-all NetworkPolicy (see convert::networks) stands for no network.
        Some("none") => {}
        Some(m) => ctx.warnings.service(
            name,
            "network_mode",
            format!("{m:?} has no Kubernetes form; the Pod gets the cluster network"),
        ),
    }
    let in_pod = |x: &str| members.iter().any(|m| m == x);
    match svc.ipc.as_deref() {
        None | Some("private") | Some("shareable") => {}
        Some("host") => spec.host_ipc = Some(true),
        Some(m) if m.strip_prefix("service:").is_some_and(in_pod) => {}
        Some(m) => ctx.warnings.service(
            name,
            "ipc",
            format!("{m:?}: only containers of one Pod share IPC on Kubernetes"),
        ),
    }
    let mut share_pid = false;
    for m in members {
        if let Some(x) = loaded.project.services[m]
            .pid
            .as_deref()
            .and_then(|p| p.strip_prefix("service:"))
        {
            if in_pod(x) {
                share_pid = true;
            } else {
                ctx.warnings.service(m, "pid", format!("service:{x}: only containers of one Pod share a PID namespace on Kubernetes"));
            }
        }
    }
    match svc.pid.as_deref() {
        Some("host") => spec.host_pid = Some(true),
        None | Some("private") => {}
        Some(p) if p.starts_with("service:") => {}
        Some(p) => ctx
            .warnings
            .service(name, "pid", format!("{p:?} has no Kubernetes form")),
    }
    if share_pid {
        spec.share_process_namespace = Some(true);
    }
    if let Some(u) = svc.uts.as_deref() {
        if !(u == "host" && spec.host_network == Some(true)) {
            ctx.warnings.service(
                name,
                "uts",
                format!("{u:?}: a Pod shares the node's UTS namespace only with hostNetwork"),
            );
        }
    }
    match svc.userns_mode.as_deref() {
        None => {}
        Some("host") => spec.host_users = Some(true),
        // The node picks the Pod's range, as Berth does for `auto`.
        Some("auto" | "private") => spec.host_users = Some(false),
        Some(m) => ctx.warnings.service(
            name,
            "userns_mode",
            format!("{m:?}: Kubernetes only knows host or a Pod user namespace (hostUsers: false)"),
        ),
    }
    if let Some(r) = &svc.runtime {
        spec.runtime_class_name = Some(r.clone());
    }
    if let Some(p) = &svc.platform {
        let mut parts = p.split('/');
        let mut sel = BTreeMap::new();
        if let Some(os) = parts.next() {
            sel.insert("kubernetes.io/os".to_string(), os.to_string());
        }
        if let Some(arch) = parts.next() {
            sel.insert("kubernetes.io/arch".to_string(), arch.to_string());
        }
        if parts.next().is_some() {
            ctx.warnings.service(
                name,
                "platform",
                "the CPU variant has no well-known node label; only os and arch are kept",
            );
        }
        spec.node_selector = Some(sel);
    }
    if let Some(constraints) = svc
        .deploy
        .as_ref()
        .and_then(|d| d.placement.as_ref())
        .map(|p| &p.constraints)
    {
        for c in constraints {
            match c.split_once("==") {
                Some((k, v)) if k.trim().starts_with("node.labels.") => {
                    let k = k.trim().trim_start_matches("node.labels.").to_string();
                    spec.node_selector.get_or_insert_with(BTreeMap::new).insert(k, v.trim().to_string());
                }
                Some((k, v)) if k.trim() == "node.platform.os" => {
                    spec.node_selector.get_or_insert_with(BTreeMap::new).insert("kubernetes.io/os".into(), v.trim().into());
                }
                Some((k, v)) if k.trim() == "node.platform.arch" => {
                    spec.node_selector.get_or_insert_with(BTreeMap::new).insert("kubernetes.io/arch".into(), v.trim().into());
                }
                Some((k, v)) if k.trim() == "node.hostname" => {
                    spec.node_selector.get_or_insert_with(BTreeMap::new).insert("kubernetes.io/hostname".into(), v.trim().into());
                }
                _ => ctx.warnings.service(name, "deploy.placement.constraints", format!("{c:?} has no nodeSelector form (only `==` on node labels, hostname, os and arch)")),
            }
        }
    }
    let mut aliases: Vec<HostAlias> = Vec::new();
    for (host, ips) in &svc.extra_hosts.0 {
        for ip in ips {
            if ip == crate::stack::model::HOST_GATEWAY {
                ctx.warnings.service(
                    name,
                    "extra_hosts",
                    format!("{host}:host-gateway: there is no host gateway address on Kubernetes"),
                );
                continue;
            }
            match aliases.iter_mut().find(|a| a.ip == *ip) {
                Some(a) => a.hostnames.get_or_insert_with(Vec::new).push(host.clone()),
                None => aliases.push(HostAlias {
                    ip: ip.clone(),
                    hostnames: Some(vec![host.clone()]),
                }),
            }
        }
    }
    if !aliases.is_empty() {
        spec.host_aliases = Some(aliases);
    }
    if !svc.dns.is_empty() || !svc.dns_search.is_empty() || !svc.dns_opt.is_empty() {
        if !svc.dns.is_empty() {
            ctx.warnings.service(name, "dns", "the servers are added after the cluster's DNS, which answers first (service names must keep resolving)");
        }
        spec.dns_config = Some(PodDNSConfig {
            nameservers: (!svc.dns.is_empty()).then(|| svc.dns.clone()),
            searches: (!svc.dns_search.is_empty()).then(|| svc.dns_search.clone()),
            options: (!svc.dns_opt.is_empty()).then(|| {
                svc.dns_opt
                    .iter()
                    .map(|o| {
                        let (n, v) = match o.split_once(':') {
                            Some((n, v)) => (n.to_string(), Some(v.to_string())),
                            None => (o.clone(), None),
                        };
                        PodDNSConfigOption {
                            name: Some(n),
                            value: v,
                        }
                    })
                    .collect()
            }),
        });
    }
}
