//! `berth kube apply|down|ps`: the converted objects on a cluster, through kube-rs.
//!
//! Objects are sent with server-side apply (field manager `berth`, forced: Berth owns
//! what it writes) and carry the project label, so `--prune` and `down` find exactly the
//! project's objects by label and never touch anything else.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ::kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use ::kube::core::ApiResource;
use ::kube::Client;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::Value;

use super::convert::Manifest;
use super::{FIELD_MANAGER, PROJECT_LABEL};

/// Why talking to the cluster failed, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No kubeconfig (or in-cluster configuration) could be found or read.
    #[error("no usable Kubernetes configuration: {0} (kubectl's rules apply: $KUBECONFIG, else ~/.kube/config; --context picks a context)")]
    Config(String),
    /// The API server could not be reached at all.
    #[error("cannot reach the Kubernetes API server at {server}: is the cluster running, and is this the right context? (`kubectl cluster-info` checks the same)")]
    Unreachable {
        server: String,
        #[source]
        source: ::kube::Error,
    },
    /// The credentials were refused.
    #[error("the cluster refused the credentials while {what}: {message} (log in again, or pick another --context)")]
    Unauthorized { what: String, message: String },
    /// The user may not do this.
    #[error("forbidden: {what}: {message} (ask the cluster's administrator for the permission, or use -n for a namespace you may write)")]
    Forbidden { what: String, message: String },
    /// The API server rejected an object.
    #[error("the cluster rejected {what}: {message}")]
    Rejected { what: String, message: String },
    /// Any other answer from the API server.
    #[error("{what} failed: HTTP {code}: {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },
    /// Something else in the client.
    #[error("{what} failed")]
    Client {
        what: String,
        #[source]
        source: ::kube::Error,
    },
    /// `--wait` ran out of time.
    #[error("timed out after {0:?} waiting for: {1}")]
    WaitTimeout(Duration, String),
    /// A Job failed while `--wait` waited for it.
    #[error("job {0} failed")]
    JobFailed(String),
    /// A manifest could not become a dynamic object (a bug, not user input).
    #[error("internal error: manifest {0} is not an object")]
    BadManifest(String),
}

/// A client and the server it talks to, for messages.
pub struct Cluster {
    pub client: Client,
    pub server: String,
}

impl Cluster {
    /// Connects as kubectl would: `$KUBECONFIG` or `~/.kube/config` (in-cluster
    /// configuration when neither exists), with `context` chosen when given.
    pub async fn connect(context: Option<&str>) -> Result<Cluster, KubeError> {
        let config = match context {
            Some(c) => ::kube::Config::from_kubeconfig(&::kube::config::KubeConfigOptions {
                context: Some(c.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| KubeError::Config(format!("context {c:?}: {e}")))?,
            None => ::kube::Config::infer()
                .await
                .map_err(|e| KubeError::Config(e.to_string()))?,
        };
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))?;
        Ok(Cluster { client, server })
    }

    fn classify(&self, what: String, e: ::kube::Error) -> KubeError {
        match e {
            ::kube::Error::Api(s) => {
                let message = if s.message.is_empty() {
                    s.reason.clone()
                } else {
                    s.message.clone()
                };
                match s.code {
                    401 => KubeError::Unauthorized { what, message },
                    403 => KubeError::Forbidden { what, message },
                    400 | 409 | 422 => KubeError::Rejected { what, message },
                    code => KubeError::Api {
                        what,
                        code,
                        message,
                    },
                }
            }
            e @ (::kube::Error::HyperError(_) | ::kube::Error::Service(_)) => {
                KubeError::Unreachable {
                    server: self.server.clone(),
                    source: e,
                }
            }
            source => KubeError::Client { what, source },
        }
    }
}

/// The API resource of a kind Berth writes, and whether it lives in a namespace.
pub fn resource(kind: &str) -> Option<(ApiResource, bool)> {
    Some(match kind {
        "Namespace" => (ApiResource::erase::<Namespace>(&()), false),
        "ConfigMap" => (ApiResource::erase::<ConfigMap>(&()), true),
        "Secret" => (ApiResource::erase::<Secret>(&()), true),
        "PersistentVolumeClaim" => (ApiResource::erase::<PersistentVolumeClaim>(&()), true),
        "Service" => (ApiResource::erase::<Service>(&()), true),
        "NetworkPolicy" => (ApiResource::erase::<NetworkPolicy>(&()), true),
        "Deployment" => (ApiResource::erase::<Deployment>(&()), true),
        "StatefulSet" => (ApiResource::erase::<StatefulSet>(&()), true),
        "DaemonSet" => (ApiResource::erase::<DaemonSet>(&()), true),
        "Job" => (ApiResource::erase::<Job>(&()), true),
        _ => return None,
    })
}

/// The namespaced kinds Berth writes, in the order they are removed (workloads first, so
/// nothing is recreated while its parts go).
pub const REMOVAL_ORDER: &[&str] = &[
    "Job",
    "DaemonSet",
    "StatefulSet",
    "Deployment",
    "NetworkPolicy",
    "Service",
    "PersistentVolumeClaim",
    "Secret",
    "ConfigMap",
];

fn api(cluster: &Cluster, kind: &str, namespace: &str) -> Option<Api<DynamicObject>> {
    let (ar, namespaced) = resource(kind)?;
    Some(if namespaced {
        Api::namespaced_with(cluster.client.clone(), namespace, &ar)
    } else {
        Api::all_with(cluster.client.clone(), &ar)
    })
}

fn selector(project: &str) -> String {
    format!("{PROJECT_LABEL}={project}")
}

/// What `apply` did, one line per object.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub applied: Vec<String>,
    pub pruned: Vec<String>,
}

/// Applies every manifest in order; with `prune`, deletes the project's objects (by
/// label) that the manifests no longer have.
pub async fn apply(
    cluster: &Cluster,
    project: &str,
    namespace: &str,
    manifests: &[Manifest],
    prune: bool,
) -> Result<Report, KubeError> {
    let mut report = Report::default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for m in manifests {
        let what = format!("{}/{}", m.kind.to_ascii_lowercase(), m.name);
        let api =
            api(cluster, m.kind, namespace).ok_or_else(|| KubeError::BadManifest(what.clone()))?;
        if !matches!(m.value, Value::Object(_)) {
            return Err(KubeError::BadManifest(what));
        }
        api.patch(&m.name, &params, &Patch::Apply(&m.value))
            .await
            .map_err(|e| cluster.classify(format!("applying {what}"), e))?;
        report.applied.push(what);
    }
    if prune {
        let keep: BTreeSet<(&str, &str)> = manifests
            .iter()
            .map(|m| (m.kind, m.name.as_str()))
            .collect();
        for kind in REMOVAL_ORDER {
            let api = api(cluster, kind, namespace).expect("known kind");
            let list = api
                .list(&ListParams::default().labels(&selector(project)))
                .await
                .map_err(|e| cluster.classify(format!("listing {kind}s to prune"), e))?;
            for obj in list.items {
                let name = obj.metadata.name.clone().unwrap_or_default();
                if keep.contains(&(*kind, name.as_str())) {
                    continue;
                }
                let what = format!("{}/{name}", kind.to_ascii_lowercase());
                delete(cluster, &api, &name, &what).await?;
                report.pruned.push(what);
            }
        }
    }
    Ok(report)
}

async fn delete(
    cluster: &Cluster,
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
) -> Result<(), KubeError> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        // Gone already: what was wanted.
        Err(::kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(cluster.classify(format!("deleting {what}"), e)),
    }
}

/// Removes every object labelled with the project in `namespace`, and the namespace
/// itself when the project owns it (it carries the label). Returns what was removed.
pub async fn down(
    cluster: &Cluster,
    project: &str,
    namespace: &str,
    owns_namespace: bool,
) -> Result<Vec<String>, KubeError> {
    let mut removed = Vec::new();
    for kind in REMOVAL_ORDER {
        let api = api(cluster, kind, namespace).expect("known kind");
        let list = match api
            .list(&ListParams::default().labels(&selector(project)))
            .await
        {
            Ok(l) => l,
            Err(::kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(cluster.classify(format!("listing {kind}s"), e)),
        };
        for obj in list.items {
            let name = obj.metadata.name.clone().unwrap_or_default();
            let what = format!("{}/{name}", kind.to_ascii_lowercase());
            delete(cluster, &api, &name, &what).await?;
            removed.push(what);
        }
    }
    if owns_namespace {
        let api = api(cluster, "Namespace", namespace).expect("known kind");
        match api.get_opt(namespace).await {
            Ok(Some(ns))
                if ns
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(PROJECT_LABEL))
                    .map(String::as_str)
                    == Some(project) =>
            {
                let what = format!("namespace/{namespace}");
                delete(cluster, &api, namespace, &what).await?;
                removed.push(what);
            }
            Ok(_) => {}
            Err(e) => return Err(cluster.classify(format!("reading namespace {namespace}"), e)),
        }
    }
    Ok(removed)
}

/// One workload as `ps` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub service: String,
    /// `ready/desired`.
    pub ready: String,
    /// `running`, `progressing`, `complete`, `failed`.
    pub state: String,
}

fn int(v: &Value, path: &[&str]) -> i64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return 0,
        }
    }
    cur.as_i64().unwrap_or(0)
}

/// A workload's readiness from its status, as kubectl reads it.
fn state(kind: &str, obj: &DynamicObject) -> (i64, i64, &'static str) {
    let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
    let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
    match kind {
        "Job" => {
            let failed = int(&status, &["failed"]);
            let succeeded = int(&status, &["succeeded"]);
            let want = spec.get("completions").and_then(Value::as_i64).unwrap_or(1);
            let s = if failed > 0 {
                "failed"
            } else if succeeded >= want {
                "complete"
            } else {
                "running"
            };
            (succeeded, want, s)
        }
        "DaemonSet" => {
            let want = int(&status, &["desiredNumberScheduled"]);
            let ready = int(&status, &["numberAvailable"]);
            (
                ready,
                want,
                if ready >= want && want > 0 {
                    "running"
                } else {
                    "progressing"
                },
            )
        }
        _ => {
            let want = spec.get("replicas").and_then(Value::as_i64).unwrap_or(1);
            let ready = if kind == "Deployment" {
                int(&status, &["availableReplicas"])
            } else {
                int(&status, &["readyReplicas"])
            };
            let observed = int(&status, &["observedGeneration"]);
            let current = obj.metadata.generation.unwrap_or(0) <= observed;
            (
                ready,
                want,
                if ready >= want && current {
                    "running"
                } else {
                    "progressing"
                },
            )
        }
    }
}

/// The project's workloads and their state.
pub async fn ps(
    cluster: &Cluster,
    project: &str,
    namespace: &str,
) -> Result<Vec<Workload>, KubeError> {
    let mut out = Vec::new();
    for kind in ["Deployment", "StatefulSet", "DaemonSet", "Job"] {
        let api = api(cluster, kind, namespace).expect("known kind");
        let list = api
            .list(&ListParams::default().labels(&selector(project)))
            .await
            .map_err(|e| cluster.classify(format!("listing {kind}s"), e))?;
        for obj in list.items {
            let (ready, want, s) = state(kind, &obj);
            out.push(Workload {
                kind: kind.to_string(),
                name: obj.metadata.name.clone().unwrap_or_default(),
                service: obj
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(super::SERVICE_LABEL))
                    .cloned()
                    .unwrap_or_default(),
                ready: format!("{ready}/{want}"),
                state: s.to_string(),
            });
        }
    }
    out.sort_by(|a, b| (&a.name, &a.kind).cmp(&(&b.name, &b.kind)));
    Ok(out)
}

/// Polls until every workload of the manifests is available (Jobs: complete).
pub async fn wait(
    cluster: &Cluster,
    namespace: &str,
    manifests: &[Manifest],
    timeout: Duration,
    interval: Duration,
) -> Result<(), KubeError> {
    let start = Instant::now();
    let workloads: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| matches!(m.kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job"))
        .collect();
    loop {
        let mut pending = Vec::new();
        for m in &workloads {
            let api = api(cluster, m.kind, namespace).expect("known kind");
            let what = format!("{}/{}", m.kind.to_ascii_lowercase(), m.name);
            let obj = api
                .get(&m.name)
                .await
                .map_err(|e| cluster.classify(format!("reading {what}"), e))?;
            match state(m.kind, &obj) {
                (_, _, "failed") => return Err(KubeError::JobFailed(m.name.clone())),
                (_, _, "running" | "complete") => {}
                _ => pending.push(what),
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(KubeError::WaitTimeout(timeout, pending.join(", ")));
        }
        tokio::time::sleep(interval).await;
    }
}

/// A service image that only Berth's local store has.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalImage {
    pub service: String,
    pub image: String,
    /// Where to push it: the image's own registry, unless that is this machine's loopback.
    pub registry: Option<String>,
}

impl std::fmt::Display for LocalImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.registry {
            Some(r) => write!(
                f,
                "service {}: image {} exists only in Berth's local image store; the cluster cannot pull it. Push it first: `berth image push {}` (to {r})",
                self.service, self.image, self.image
            ),
            None => write!(
                f,
                "service {}: image {} exists only in Berth's local image store, under a loopback registry the cluster cannot reach. Push it to a registry the cluster pulls from: `berth image push {} REGISTRY/NAME:TAG`, then set `image:` to that name",
                self.service, self.image, self.image
            ),
        }
    }
}

/// The services whose image is in Berth's local store and nowhere the cluster can pull
/// from: built by Berth (`build:`), or named under a loopback registry.
pub fn local_only_images(
    loaded: &crate::stack::Loaded,
    store: &berth_engine::image::images::Images,
    services: &[String],
) -> Vec<LocalImage> {
    use berth_engine::image::reference::Reference;
    let mut out = Vec::new();
    for (name, svc) in &loaded.project.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        let image = svc
            .image
            .clone()
            .unwrap_or_else(|| format!("{}-{}", loaded.name, name));
        let Ok(reference) = Reference::parse(&image) else {
            continue;
        };
        let in_store = store
            .store()
            .get(&reference.to_string())
            .ok()
            .flatten()
            .is_some();
        if !in_store {
            continue;
        }
        let loopback = reference.is_loopback();
        if svc.build.is_some() || loopback {
            out.push(LocalImage {
                service: name.clone(),
                image,
                registry: (!loopback).then(|| reference.registry.clone()),
            });
        }
    }
    out
}
