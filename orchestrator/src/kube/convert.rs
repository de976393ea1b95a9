//! From the loaded stack to Kubernetes objects.
//!
//! One Pod template per service, except that services with `network_mode: service:X`
//! join X's Pod as more containers (they share X's network namespace, as in Compose).
//! The workload around a Pod is a Deployment, a StatefulSet (named volumes, one
//! replica), a Job (`restart: "no"` and another service waits for it to complete), or a
//! DaemonSet (`deploy.mode: global`). Services, ConfigMaps, Secrets, PVCs and
//! NetworkPolicies follow from ports, configs, secrets, volumes and networks.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, DeploymentStrategy,
    RollingUpdateDeployment, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodTemplateSpec, Service,
    ServicePort, ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde_json::Value;

use super::names::{derived, dns_label, is_label_value, is_qualified_key};
use super::pod::{self, PodParts};
use super::warnings::{Warning, Warnings};
use super::{NETWORK_LABEL_PREFIX, PROJECT_LABEL, SERVICE_LABEL};
use crate::stack::model::{Condition, Port, Protocol, RestartPolicy, VolumeType};
use crate::stack::Loaded;

/// How published ports are exposed outside the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ServiceType {
    /// Not at all: services are reachable inside the cluster only (a warning says so).
    #[default]
    #[value(name = "ClusterIP")]
    ClusterIp,
    #[value(name = "NodePort")]
    NodePort,
    #[value(name = "LoadBalancer")]
    LoadBalancer,
}

impl ServiceType {
    fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }

    fn parse(s: &str) -> Option<ServiceType> {
        match s {
            "ClusterIP" => Some(ServiceType::ClusterIp),
            "NodePort" => Some(ServiceType::NodePort),
            "LoadBalancer" => Some(ServiceType::LoadBalancer),
            _ => None,
        }
    }
}

/// What `berth kube convert` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// `-n`: the namespace; `None`: one named after the project (and written out).
    pub namespace: Option<String>,
    /// `--service-type`: how published ports are exposed (a service's
    /// `x-kubernetes.service-type` overrides it).
    pub service_type: ServiceType,
    /// Services to convert; empty: all. Services whose Pod a named one joins come along.
    pub services: Vec<String>,
}

/// One Kubernetes object, serialized.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub kind: &'static str,
    pub name: String,
    pub value: Value,
}

/// The objects, in a stable order, and what could not be carried.
#[derive(Debug, Default)]
pub struct Conversion {
    pub namespace: String,
    /// Whether the namespace is the project's own (written out, removed by `down`).
    pub owns_namespace: bool,
    pub manifests: Vec<Manifest>,
    pub warnings: Vec<Warning>,
}

/// Why a stack cannot be converted at all.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A service named on the command line is not in the stack.
    #[error("no such service: {0}")]
    NoSuchService(String),
    /// `-n` is not a valid namespace name.
    #[error("invalid namespace {0:?}: a namespace is a DNS label (lower-case letters, digits and `-`, at most 63)")]
    BadNamespace(String),
    /// A file a config, secret or bind mount names could not be read.
    #[error("{key}: cannot read {path}")]
    Read {
        key: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Two services or aliases map to the same Kubernetes name.
    #[error("{0}")]
    NameClash(String),
}

/// Kinds in the order they are written: what others refer to comes first.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Service",
    "NetworkPolicy",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
];

/// Everything a conversion step needs.
pub(super) struct Ctx<'a> {
    pub loaded: &'a Loaded,
    pub namespace: String,
    pub project_label: String,
    pub warnings: Warnings,
    pub objects: BTreeMap<(usize, String), Manifest>,
}

impl Ctx<'_> {
    /// The labels of every object of the project (and of one service, when given).
    pub fn labels(&self, service: Option<&str>) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        l.insert(PROJECT_LABEL.to_string(), self.project_label.clone());
        if let Some(s) = service {
            l.insert(SERVICE_LABEL.to_string(), dns_label(s));
        }
        l
    }

    pub fn meta(&self, name: &str, service: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(service)),
            ..Default::default()
        }
    }

    /// Adds an object; the first of a kind and name wins (shared ConfigMaps, PVCs).
    pub fn add<T: Serialize>(&mut self, kind: &'static str, name: &str, object: &T) {
        let rank = KIND_ORDER
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KIND_ORDER.len());
        let value = serde_json::to_value(object).unwrap_or(Value::Null);
        self.objects
            .entry((rank, name.to_string()))
            .or_insert(Manifest {
                kind,
                name: name.to_string(),
                value,
            });
    }

    pub fn has(&self, kind: &str, name: &str) -> bool {
        let rank = KIND_ORDER
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KIND_ORDER.len());
        self.objects.contains_key(&(rank, name.to_string()))
    }
}

/// Converts the stack.
pub fn convert(loaded: &Loaded, opts: &ConvertOptions) -> Result<Conversion, ConvertError> {
    let project = &loaded.project;
    for s in &opts.services {
        if !project.services.contains_key(s) {
            return Err(ConvertError::NoSuchService(s.clone()));
        }
    }
    let (namespace, owns_namespace) = match &opts.namespace {
        Some(ns) => {
            if dns_label(ns) != *ns {
                return Err(ConvertError::BadNamespace(ns.clone()));
            }
            (ns.clone(), false)
        }
        None => (dns_label(&loaded.name), true),
    };
    let mut ctx = Ctx {
        loaded,
        namespace: namespace.clone(),
        project_label: if is_label_value(&loaded.name) {
            loaded.name.clone()
        } else {
            dns_label(&loaded.name)
        },
        warnings: Warnings::default(),
        objects: BTreeMap::new(),
    };
    if owns_namespace {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some(ctx.labels(None)),
                ..Default::default()
            },
            ..Default::default()
        };
        ctx.add("Namespace", &namespace, &ns);
    }

    // Pods: each service whose network_mode is not `service:X` owns one; the others join
    // their owner's.
    let owner = |name: &str| -> String {
        let mut cur = name.to_string();
        for _ in 0..project.services.len() {
            match project.services[&cur]
                .network_mode
                .as_deref()
                .and_then(|m| m.strip_prefix("service:"))
            {
                Some(next) if project.services.contains_key(next) => cur = next.to_string(),
                _ => break,
            }
        }
        cur
    };
    let mut selected: BTreeSet<String> = if opts.services.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        opts.services.iter().cloned().collect()
    };
    let owners: Vec<String> = selected.iter().map(|s| owner(s)).collect();
    selected.extend(owners);
    let mut pods: IndexMap<String, Vec<String>> = IndexMap::new();
    for name in project.services.keys() {
        if selected.contains(name) {
            pods.entry(owner(name)).or_default().push(name.clone());
        }
    }
    // Members come after their owner, in file order.
    for (root, members) in pods.iter_mut() {
        members.sort_by_key(|m| (m != root, project.services.get_index_of(m)));
    }

    // Kubernetes names must not collide.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for root in pods.keys() {
        if let Some(other) = seen.insert(dns_label(root), root.clone()) {
            return Err(ConvertError::NameClash(format!(
                "services {other:?} and {root:?} both become {:?} on Kubernetes; rename one",
                dns_label(root)
            )));
        }
    }

    // Who waits for whom to complete: those dependencies run as Jobs.
    let mut awaited: BTreeSet<&str> = BTreeSet::new();
    for svc in project.services.values() {
        for (dep, d) in &svc.depends_on {
            if d.condition == Condition::CompletedSuccessfully {
                awaited.insert(dep.as_str());
            }
        }
    }

    for (root, members) in &pods {
        convert_pod(&mut ctx, root, members, &pods, &awaited, opts)?;
    }
    networks(&mut ctx, &pods);
    top_level_warnings(&mut ctx);

    let mut manifests: Vec<Manifest> = std::mem::take(&mut ctx.objects).into_values().collect();
    for m in &mut manifests {
        strip_empty(&mut m.value);
    }
    Ok(Conversion {
        namespace,
        owns_namespace,
        manifests,
        warnings: ctx.warnings.0,
    })
}

/// k8s-openapi writes `metadata: {}`-style empties for required-but-empty parts; drop
/// empty maps under metadata so the output stays minimal.
fn strip_empty(v: &mut Value) {
    if let Value::Object(map) = v {
        for (_, child) in map.iter_mut() {
            strip_empty(child);
        }
        map.retain(|k, child| {
            let null_stamp = k == "creationTimestamp" && child.is_null();
            let empty_meta = matches!(k.as_str(), "labels" | "annotations")
                && child.as_object().is_some_and(|o| o.is_empty());
            !null_stamp && !empty_meta
        });
    } else if let Value::Array(items) = v {
        for child in items {
            strip_empty(child);
        }
    }
}

#[derive(PartialEq)]
enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

fn convert_pod(
    ctx: &mut Ctx<'_>,
    root: &str,
    members: &[String],
    pods: &IndexMap<String, Vec<String>>,
    awaited: &BTreeSet<&str>,
    opts: &ConvertOptions,
) -> Result<(), ConvertError> {
    let loaded = ctx.loaded;
    let project = &loaded.project;
    let svc = &project.services[root];
    let name = dns_label(root);
    let parts: PodParts = pod::pod(ctx, root, members, pods)?;

    let deploy = svc.deploy.as_ref();
    let replicas = deploy.and_then(|d| d.replicas).or(svc.scale).unwrap_or(1);
    let restart = svc.restart.unwrap_or_default();
    let global = deploy.and_then(|d| d.mode.as_deref()) == Some("global");
    let named_volumes = members.iter().any(|m| {
        project.services[m]
            .volumes
            .iter()
            .any(|v| v.kind == VolumeType::Volume && v.source.is_some())
    });
    let kind = if matches!(restart, RestartPolicy::No) && awaited.contains(root) {
        WorkloadKind::Job
    } else if global {
        WorkloadKind::DaemonSet
    } else if named_volumes && replicas == 1 {
        WorkloadKind::StatefulSet
    } else {
        WorkloadKind::Deployment
    };
    if kind != WorkloadKind::Job {
        match restart {
            RestartPolicy::Always | RestartPolicy::UnlessStopped => {}
            RestartPolicy::No if svc.restart.is_none() => ctx.warnings.service(
                root,
                "restart",
                "not set (Compose: never restart); Kubernetes restarts the containers of a long-running workload always",
            ),
            _ => ctx.warnings.service(
                root,
                "restart",
                format!(
                    "{:?} has no form for a long-running workload; Kubernetes restarts its containers always",
                    restart_text(restart)
                ),
            ),
        }
    }
    if let Some(d) = deploy {
        deploy_warnings(ctx, root, d, &kind);
    }

    let mut workload_labels = ctx.labels(Some(root));
    let mut annotations = BTreeMap::new();
    for (k, v) in &svc.labels {
        if is_qualified_key(k) {
            annotations.insert(k.clone(), v.clone());
        } else {
            ctx.warnings.service(
                root,
                &format!("labels.{k}"),
                "not a valid Kubernetes annotation key; dropped",
            );
        }
    }
    if let Some(d) = deploy {
        for (k, v) in &d.labels {
            if is_qualified_key(k) && is_label_value(v) {
                workload_labels.insert(k.clone(), v.clone());
            } else if is_qualified_key(k) {
                annotations.insert(k.clone(), v.clone());
            } else {
                ctx.warnings.service(
                    root,
                    &format!("deploy.labels.{k}"),
                    "not a valid Kubernetes label or annotation key; dropped",
                );
            }
        }
    }
    let mut pod_labels = ctx.labels(Some(root));
    pod_labels.extend(parts.network_labels.clone());
    let mut pod_annotations = parts.annotations.clone();
    pod_annotations.extend(annotations.clone());
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: (!pod_annotations.is_empty()).then_some(pod_annotations),
            ..Default::default()
        }),
        spec: Some(parts.spec.clone()),
    };
    let meta = ObjectMeta {
        annotations: (!annotations.is_empty()).then_some(annotations),
        labels: Some(workload_labels),
        ..ctx.meta(&name, Some(root))
    };
    let selector = LabelSelector {
        match_labels: Some(ctx.labels(Some(root))),
        ..Default::default()
    };
    let service_name = services(ctx, root, members, opts)?;
    match kind {
        WorkloadKind::Job => {
            let mut template = template;
            if let Some(spec) = template.spec.as_mut() {
                spec.restart_policy = Some("Never".into());
            }
            let job = Job {
                metadata: meta,
                spec: Some(JobSpec {
                    backoff_limit: Some(0),
                    completions: (replicas != 1).then_some(replicas as i32),
                    parallelism: (replicas != 1).then_some(replicas as i32),
                    template,
                    ..Default::default()
                }),
                ..Default::default()
            };
            ctx.add("Job", &name, &job);
        }
        WorkloadKind::DaemonSet => {
            let ds = DaemonSet {
                metadata: meta,
                spec: Some(DaemonSetSpec {
                    selector,
                    template,
                    ..Default::default()
                }),
                ..Default::default()
            };
            ctx.add("DaemonSet", &name, &ds);
        }
        WorkloadKind::StatefulSet => {
            let sts = StatefulSet {
                metadata: meta,
                spec: Some(StatefulSetSpec {
                    replicas: Some(1),
                    selector,
                    service_name: Some(service_name.unwrap_or_else(|| name.clone())),
                    template,
                    ..Default::default()
                }),
                ..Default::default()
            };
            ctx.add("StatefulSet", &name, &sts);
        }
        WorkloadKind::Deployment => {
            let strategy = deploy.and_then(|d| d.update_config.as_ref()).map(|u| {
                let n = IntOrString::Int(u.parallelism.unwrap_or(1).max(1) as i32);
                let zero = IntOrString::Int(0);
                let start_first =
                    matches!(u.order, Some(crate::stack::model::UpdateOrder::StartFirst));
                DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(if start_first { n.clone() } else { zero.clone() }),
                        max_unavailable: Some(if start_first { zero } else { n }),
                    }),
                }
            });
            let dep = Deployment {
                metadata: meta,
                spec: Some(DeploymentSpec {
                    replicas: Some(replicas as i32),
                    selector,
                    strategy,
                    template,
                    ..Default::default()
                }),
                ..Default::default()
            };
            ctx.add("Deployment", &name, &dep);
        }
    }
    Ok(())
}

fn restart_text(r: RestartPolicy) -> String {
    match r {
        RestartPolicy::No => "no".into(),
        RestartPolicy::Always => "always".into(),
        RestartPolicy::UnlessStopped => "unless-stopped".into(),
        RestartPolicy::OnFailure { max_retries: None } => "on-failure".into(),
        RestartPolicy::OnFailure {
            max_retries: Some(n),
        } => format!("on-failure:{n}"),
    }
}

fn deploy_warnings(
    ctx: &mut Ctx<'_>,
    svc: &str,
    d: &crate::stack::model::Deploy,
    kind: &WorkloadKind,
) {
    let w = &mut ctx.warnings;
    if d.restart_policy.is_some() {
        w.service(svc, "deploy.restart_policy", "swarm restart policies have no Kubernetes form; the workload's own restart rules apply");
    }
    if d.rollback_config.is_some() {
        w.service(
            svc,
            "deploy.rollback_config",
            "Kubernetes does not roll back by itself (kubectl rollout undo)",
        );
    }
    if let Some(u) = &d.update_config {
        if *kind != WorkloadKind::Deployment {
            w.service(
                svc,
                "deploy.update_config",
                "only Deployments take an update strategy here",
            );
        }
        for (set, key) in [
            (u.delay.is_some(), "delay"),
            (u.failure_action.is_some(), "failure_action"),
            (u.monitor.is_some(), "monitor"),
            (u.max_failure_ratio.is_some(), "max_failure_ratio"),
        ] {
            if set {
                w.service(
                    svc,
                    &format!("deploy.update_config.{key}"),
                    "has no Kubernetes rolling-update form",
                );
            }
        }
    }
    if let Some(mode) = &d.mode {
        if !matches!(mode.as_str(), "global" | "replicated") {
            w.service(
                svc,
                "deploy.mode",
                format!("{mode:?} has no Kubernetes form; converted as replicated"),
            );
        }
    }
    if let Some(r) = d.resources.as_ref().and_then(|r| r.reservations.as_ref()) {
        if !r.generic_resources.is_empty() {
            w.service(
                svc,
                "deploy.resources.reservations.generic_resources",
                "swarm generic resources have no Kubernetes form",
            );
        }
        if !r.devices.is_empty() {
            w.service(
                svc,
                "deploy.resources.reservations.devices",
                "devices need a device plugin's extended resource on Kubernetes",
            );
        }
    }
    if d.resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.pids)
        .is_some()
    {
        w.service(
            svc,
            "deploy.resources.limits.pids",
            "process limits are a node setting (kubelet podPidsLimit)",
        );
    }
    if let Some(p) = &d.placement {
        if !p.preferences.is_empty() {
            w.service(
                svc,
                "deploy.placement.preferences",
                "spread preferences have no direct form (use topologySpreadConstraints by hand)",
            );
        }
        if p.max_replicas_per_node.is_some() {
            w.service(
                svc,
                "deploy.placement.max_replicas_per_node",
                "has no direct form (use topologySpreadConstraints by hand)",
            );
        }
    }
}

/// One container port or `expose` entry: (port, protocol).
fn port_key(p: &Port) -> (u16, &'static str) {
    (p.target, protocol(p.protocol))
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// The ports other services reach a service's Pod on: `ports` targets and `expose`.
pub(super) fn internal_ports(
    ctx: &mut Ctx<'_>,
    svc_name: &str,
) -> Vec<(u16, &'static str, Option<String>)> {
    let svc = &ctx.loaded.project.services[svc_name];
    let mut out: Vec<(u16, &'static str, Option<String>)> = Vec::new();
    let mut push = |port: u16, proto: &'static str, app: Option<String>| {
        if !out.iter().any(|(p, pr, _)| *p == port && *pr == proto) {
            out.push((port, proto, app));
        }
    };
    for p in &svc.ports {
        let (port, proto) = port_key(p);
        push(port, proto, p.app_protocol.clone());
    }
    for (i, e) in svc.expose.iter().enumerate() {
        let (range, proto) = match e.split_once('/') {
            Some((r, p)) => (r, p.to_ascii_lowercase()),
            None => (e.as_str(), "tcp".to_string()),
        };
        let proto = match proto.as_str() {
            "udp" => "UDP",
            "sctp" => "SCTP",
            _ => "TCP",
        };
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (a.parse::<u16>().ok(), b.parse::<u16>().ok()),
            None => (range.parse::<u16>().ok(), range.parse::<u16>().ok()),
        };
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi && hi - lo < 100 => {
                for p in lo..=hi {
                    push(p, proto, None);
                }
            }
            _ => ctx.warnings.service(
                svc_name,
                &format!("expose[{i}]"),
                format!("{e:?} is not a port or a range of fewer than 100 ports; dropped"),
            ),
        }
    }
    out
}

fn service_ports(ports: &[(u16, &'static str, Option<String>)]) -> Vec<ServicePort> {
    ports
        .iter()
        .map(|(port, proto, app)| ServicePort {
            name: Some(format!("{}-{port}", proto.to_ascii_lowercase())),
            port: i32::from(*port),
            target_port: Some(IntOrString::Int(i32::from(*port))),
            protocol: Some(proto.to_string()),
            app_protocol: app.clone(),
            ..Default::default()
        })
        .collect()
}

/// The Services of a Pod: one per service name and alias for the ports other services
/// use, and one of the chosen type for the published ports. Returns the main Service's
/// name, when there is one.
fn services(
    ctx: &mut Ctx<'_>,
    root: &str,
    members: &[String],
    opts: &ConvertOptions,
) -> Result<Option<String>, ConvertError> {
    let loaded = ctx.loaded;
    let project = &loaded.project;
    let svc = &project.services[root];
    let mut ports = Vec::new();
    for m in members {
        for p in internal_ports(ctx, m) {
            if !ports
                .iter()
                .any(|(a, b, _): &(u16, &str, Option<String>)| a == &p.0 && b == &p.1)
            {
                ports.push(p);
            }
        }
    }
    let headless = svc.deploy.as_ref().and_then(|d| d.endpoint_mode.as_deref()) == Some("dnsrr");
    let selector = ctx.labels(Some(root));
    let name = dns_label(root);

    // DNS names other services may use for this Pod: network aliases, container_name,
    // link aliases; each becomes a Service over the same Pods.
    let mut aliases: Vec<(String, String)> = Vec::new(); // (alias, where)
    for m in members {
        let s = &project.services[m];
        for (net, cfg) in &s.networks {
            if let Some(cfg) = cfg {
                for a in &cfg.aliases {
                    aliases.push((a.clone(), format!("services.{m}.networks.{net}.aliases")));
                }
            }
        }
        if let Some(c) = &s.container_name {
            aliases.push((c.clone(), format!("services.{m}.container_name")));
        }
        if m != root {
            aliases.push((m.clone(), format!("services.{m}")));
        }
    }
    for (other, s) in &project.services {
        for link in &s.links {
            if let Some((target, alias)) = link.split_once(':') {
                if members.iter().any(|m| m == target) {
                    aliases.push((alias.to_string(), format!("services.{other}.links")));
                }
            }
        }
    }

    if ports.is_empty() {
        for (alias, key) in &aliases {
            if dns_label(alias) != name {
                ctx.warnings.push(
                    key.clone(),
                    format!("{alias:?} cannot be a Kubernetes Service name: the service has no `ports` or `expose` to serve"),
                );
            }
        }
        if headless {
            ctx.warnings.service(
                root,
                "deploy.endpoint_mode",
                "dnsrr needs a port to make a headless Service; dropped",
            );
        }
        return Ok(None);
    }
    let spec = |ports: Vec<ServicePort>| ServiceSpec {
        cluster_ip: headless.then(|| "None".to_string()),
        ports: Some(ports),
        selector: Some(selector.clone()),
        ..Default::default()
    };
    let main = Service {
        metadata: ctx.meta(&name, Some(root)),
        spec: Some(spec(service_ports(&ports))),
        ..Default::default()
    };
    ctx.add("Service", &name, &main);
    for (alias, key) in aliases {
        let alias_name = dns_label(&alias);
        if alias_name == name {
            continue;
        }
        if alias_name != alias {
            ctx.warnings.push(
                key.clone(),
                format!("{alias:?} is not a DNS label; the Service is named {alias_name:?}"),
            );
        }
        let other_service = project
            .services
            .keys()
            .any(|s| dns_label(s) == alias_name && !members.contains(s));
        if ctx.has("Service", &alias_name) || other_service {
            ctx.warnings.push(
                key,
                format!("{alias:?} is already the name of another service or alias; Kubernetes has one Service per name, so it is not added here"),
            );
            continue;
        }
        let s = Service {
            metadata: ctx.meta(&alias_name, Some(root)),
            spec: Some(spec(service_ports(&ports))),
            ..Default::default()
        };
        ctx.add("Service", &alias_name, &s);
    }

    // Published ports.
    let kind = svc
        .extensions
        .get("x-kubernetes")
        .and_then(|x| x.get("service-type"))
        .and_then(Value::as_str)
        .and_then(ServiceType::parse)
        .unwrap_or(opts.service_type);
    let mut published = Vec::new();
    for m in members {
        let s = &project.services[m];
        for (i, p) in s.ports.iter().enumerate() {
            let key = format!("ports[{i}]");
            if let Some(ip) = &p.host_ip {
                ctx.warnings.service(
                    m,
                    &format!("{key}.host_ip"),
                    format!("{ip}: Kubernetes does not bind to one node address"),
                );
            }
            if p.mode == crate::stack::model::PortMode::Host {
                ctx.warnings.service(
                    m,
                    &format!("{key}.mode"),
                    "host mode (a port on the node itself) is converted as ingress",
                );
            }
            let Some(pubd) = &p.published else { continue };
            if kind == ServiceType::ClusterIp {
                ctx.warnings.service(
                    m,
                    &format!("{key}.published"),
                    format!("{pubd} is reachable inside the cluster only (as {}:{}); use --service-type NodePort or LoadBalancer to publish it", name, p.target),
                );
                continue;
            }
            let first = pubd.split('-').next().and_then(|x| x.parse::<u16>().ok());
            let Some(first) = first else { continue };
            if pubd.contains('-') {
                ctx.warnings.service(
                    m,
                    &format!("{key}.published"),
                    format!("the range {pubd} is published as its first port, {first}"),
                );
            }
            let node_port = if kind == ServiceType::NodePort {
                if (30000..=32767).contains(&first) {
                    Some(i32::from(first))
                } else {
                    ctx.warnings.service(m, &format!("{key}.published"), format!("{first} is outside the NodePort range 30000-32767; the cluster picks the node port"));
                    None
                }
            } else {
                None
            };
            if published.iter().any(|sp: &ServicePort| {
                sp.port == i32::from(first) && sp.protocol.as_deref() == Some(protocol(p.protocol))
            }) {
                continue;
            }
            published.push(ServicePort {
                name: Some(format!(
                    "{}-{first}",
                    protocol(p.protocol).to_ascii_lowercase()
                )),
                port: i32::from(first),
                target_port: Some(IntOrString::Int(i32::from(p.target))),
                node_port,
                protocol: Some(protocol(p.protocol).to_string()),
                app_protocol: p.app_protocol.clone(),
            });
        }
    }
    if !published.is_empty() {
        let pub_name = derived(&name, "published");
        let targets: Vec<NetworkPolicyPort> = published
            .iter()
            .map(|p| NetworkPolicyPort {
                port: p.target_port.clone(),
                protocol: p.protocol.clone(),
                ..Default::default()
            })
            .collect();
        let s = Service {
            metadata: ctx.meta(&pub_name, Some(root)),
            spec: Some(ServiceSpec {
                type_: Some(kind.as_str().to_string()),
                ports: Some(published),
                selector: Some(selector.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        ctx.add("Service", &pub_name, &s);
        // Published ports are open to everyone, as on the host.
        let np = NetworkPolicy {
            metadata: ctx.meta(&pub_name, Some(root)),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(selector),
                    ..Default::default()
                }),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(targets),
                }]),
                ..Default::default()
            }),
        };
        ctx.add("NetworkPolicy", &pub_name, &np);
    }
    Ok(Some(name))
}

/// A NetworkPolicy per stack network: its members take traffic only from each other
/// (policies add up, so a Pod on two networks hears both).
fn networks(ctx: &mut Ctx<'_>, pods: &IndexMap<String, Vec<String>>) {
    let loaded = ctx.loaded;
    let project = &loaded.project;
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for members in pods.values() {
        for m in members {
            for net in project.services[m].networks.keys() {
                used.insert(net);
            }
        }
    }
    if pods
        .keys()
        .any(|root| project.services[root].network_mode.as_deref() == Some("none"))
    {
        // No rules for both directions: nothing in, nothing out, as with no network.
        let name = "network-none";
        let np = NetworkPolicy {
            metadata: ctx.meta(name, None),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        super::NO_NETWORK_LABEL.to_string(),
                        "true".to_string(),
                    )])),
                    ..Default::default()
                }),
                policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                ..Default::default()
            }),
        };
        ctx.add("NetworkPolicy", name, &np);
    }
    for (key, net) in &project.networks {
        if !used.contains(key.as_str()) {
            continue;
        }
        if net.external == Some(true) {
            ctx.warnings.push(
                format!("networks.{key}.external"),
                "an external network joins other stacks; on Kubernetes its members are reachable from the rest of the namespace's project networks only",
            );
        }
        let label = network_label(key);
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([(label, "true".to_string())])),
            ..Default::default()
        };
        let name = derived("network", key);
        let np = NetworkPolicy {
            metadata: ctx.meta(&name, None),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(sel.clone()),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(sel),
                        ..Default::default()
                    }]),
                    ports: None,
                }]),
                ..Default::default()
            }),
        };
        ctx.add("NetworkPolicy", &name, &np);
        if net.internal == Some(true) {
            internal_network(ctx, key, sel_for(key));
        }
    }
}

fn sel_for(key: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(network_label(key), "true".to_string())])),
        ..Default::default()
    }
}

/// An internal network: the Pods on internal networks only may send to the network's
/// members and to the cluster DNS, nowhere else (egress policies add up too, so a Pod on
/// two internal networks reaches both).
fn internal_network(ctx: &mut Ctx<'_>, key: &str, members: LabelSelector) {
    let mut only = members.clone();
    if let Some(l) = only.match_labels.as_mut() {
        l.insert(super::INTERNAL_LABEL.to_string(), "true".to_string());
    }
    let dns_port = |proto: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(53)),
        protocol: Some(proto.to_string()),
        ..Default::default()
    };
    let name = derived("network", &format!("{key}-internal"));
    let np = NetworkPolicy {
        metadata: ctx.meta(&name, None),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(only),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(members),
                        ..Default::default()
                    }]),
                    ports: None,
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                "k8s-app".to_string(),
                                "kube-dns".to_string(),
                            )])),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ports: Some(vec![dns_port("UDP"), dns_port("TCP")]),
                },
            ]),
            ..Default::default()
        }),
    };
    ctx.add("NetworkPolicy", &name, &np);
}

/// The Pod label that says "member of stack network `key`".
pub(super) fn network_label(key: &str) -> String {
    format!("{NETWORK_LABEL_PREFIX}{}", dns_label(key))
}

/// The PVC for a top-level volume (made once, however many services mount it).
pub(super) fn claim(ctx: &mut Ctx<'_>, key: &str, shared: bool) -> String {
    let loaded = ctx.loaded;
    let project = &loaded.project;
    let vol = project.volumes.get(key).cloned().unwrap_or_default();
    let resolved = vol.name.clone().unwrap_or_else(|| key.to_string());
    let name = dns_label(&resolved);
    if vol.external == Some(true) {
        return name;
    }
    if ctx.has("PersistentVolumeClaim", &name) {
        return name;
    }
    if vol.driver.is_some() {
        ctx.warnings.push(
            format!("volumes.{key}.driver"),
            "volume drivers are storage classes on Kubernetes; the cluster's default class is used",
        );
    }
    if !vol.driver_opts.is_empty() {
        ctx.warnings.push(
            format!("volumes.{key}.driver_opts"),
            "driver options have no Kubernetes form; the cluster's default storage class is used",
        );
    }
    let size = vol
        .extensions
        .get("x-kubernetes")
        .and_then(|x| x.get("size"))
        .and_then(Value::as_str)
        .unwrap_or("1Gi")
        .to_string();
    let mut meta = ctx.meta(&name, None);
    let ann: BTreeMap<String, String> = vol
        .labels
        .iter()
        .filter(|(k, _)| is_qualified_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !ann.is_empty() {
        meta.annotations = Some(ann);
    }
    let pvc = PersistentVolumeClaim {
        metadata: meta,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![if shared {
                "ReadWriteMany"
            } else {
                "ReadWriteOnce"
            }
            .into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    ctx.add("PersistentVolumeClaim", &name, &pvc);
    name
}

/// Top-level attributes with no Kubernetes form.
fn top_level_warnings(ctx: &mut Ctx<'_>) {
    let loaded = ctx.loaded;
    let project = &loaded.project;
    let mut w = std::mem::take(&mut ctx.warnings);
    for (key, net) in &project.networks {
        let set = [
            ("driver", net.driver.as_ref().is_some_and(|d| d != "bridge")),
            ("driver_opts", !net.driver_opts.is_empty()),
            ("ipam", net.ipam.is_some()),
            ("enable_ipv6", net.enable_ipv6 == Some(true)),
            ("enable_ipv4", net.enable_ipv4 == Some(false)),
            ("attachable", net.attachable.is_some()),
            ("labels", !net.labels.is_empty()),
        ];
        for (attr, on) in set {
            if on {
                w.push(
                    format!("networks.{key}.{attr}"),
                    "a stack network becomes a NetworkPolicy; this has no Kubernetes form",
                );
            }
        }
    }
    for (kind, map) in [("configs", &project.configs), ("secrets", &project.secrets)] {
        for (key, obj) in map {
            for (attr, on) in [
                ("driver", obj.driver.is_some()),
                ("driver_opts", !obj.driver_opts.is_empty()),
                ("template_driver", obj.template_driver.is_some()),
            ] {
                if on {
                    w.push(
                        format!("{kind}.{key}.{attr}"),
                        "has no Kubernetes form; the content is stored as it is",
                    );
                }
            }
        }
    }
    for key in project.models.keys() {
        w.push(
            format!("models.{key}"),
            "AI models need the platform's model runner, which Kubernetes does not have",
        );
    }
    ctx.warnings = w;
}
