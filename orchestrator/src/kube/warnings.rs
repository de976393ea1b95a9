//! What a conversion cannot carry over, said per service and key.

use std::fmt;

/// One attribute (or part of one) with no faithful Kubernetes form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The key path in the stack file: `services.web.devices`, `volumes.data.driver`.
    pub key: String,
    /// What happened to it, and what to do about it where something can be done.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Collects warnings in the order found.
#[derive(Debug, Default)]
pub struct Warnings(pub Vec<Warning>);

impl Warnings {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let w = Warning {
            key: key.into(),
            message: message.into(),
        };
        if !self.0.contains(&w) {
            self.0.push(w);
        }
    }

    /// `services.SVC.KEY`.
    pub fn service(&mut self, svc: &str, key: &str, message: impl Into<String>) {
        self.push(format!("services.{svc}.{key}"), message);
    }
}

/// Service attributes with no Kubernetes form at all, and why. Every attribute the
/// converter does not list here nor handle is warned about generically, so a new
/// attribute in the model can never be dropped silently.
pub const LOST: &[(&str, &str)] = &[
    ("blkio_config", "block-I/O weights and limits have no Kubernetes form"),
    ("cgroup", "the cgroup namespace mode cannot be chosen on Kubernetes"),
    ("cgroup_parent", "the kubelet places Pods in its own cgroups"),
    ("cpu_count", "Windows-only CPU count has no Kubernetes form"),
    ("cpu_percent", "Windows-only CPU percentage has no Kubernetes form"),
    ("cpu_rt_period", "real-time CPU scheduling has no Kubernetes form"),
    ("cpu_rt_runtime", "real-time CPU scheduling has no Kubernetes form"),
    ("cpuset", "CPU pinning is the kubelet's CPU manager policy, not a Pod field"),
    ("credential_spec", "Windows credential specs are set per node on Kubernetes"),
    ("develop", "`develop` (watch and sync) is a local development loop; nothing runs it on a cluster"),
    ("device_cgroup_rules", "device cgroup rules have no Kubernetes form"),
    ("devices", "host devices need a device plugin on Kubernetes"),
    ("domainname", "a Pod's domain comes from the cluster (a subdomain needs a headless Service)"),
    ("external_links", "links to containers outside the stack have no Kubernetes form"),
    ("gpus", "GPUs need a device plugin's extended resource (e.g. nvidia.com/gpu) named by hand"),
    ("init", "Kubernetes runs no init process in the container"),
    ("isolation", "Windows isolation modes have no Kubernetes form"),
    ("logging", "logs are collected by the node's kubelet and runtime"),
    ("mac_address", "Pod MAC addresses are chosen by the network plugin"),
    ("mem_swappiness", "swap behaviour is a node setting on Kubernetes"),
    ("memswap_limit", "swap limits are a node setting on Kubernetes"),
    ("models", "AI models need the platform's model runner, which Kubernetes does not have"),
    ("oom_kill_disable", "the OOM killer cannot be turned off for a Pod"),
    ("oom_score_adj", "the kubelet sets OOM scores from the Pod's QoS class"),
    ("pids_limit", "process limits are a node setting (kubelet podPidsLimit)"),
    ("pre_start", "pre-start hooks have no Kubernetes form (an init container does not share the service's filesystem)"),
    ("provider", "provider services are run by Compose plugins, not by a cluster"),
    ("pull_refresh_after", "the kubelet decides when to pull again"),
    ("stop_signal", "the stop signal is an alpha Kubernetes feature (ContainerStopSignals); bake it into the image (STOPSIGNAL)"),
    ("storage_opt", "per-container storage driver options have no Kubernetes form"),
    ("ulimits", "rlimits cannot be set per Pod on Kubernetes"),
    ("use_api_socket", "there is no container engine API socket to hand to a Pod"),
];

/// Service attributes that need no Kubernetes form: they only steer the Berth CLI, or the
/// loader already applied them.
pub const NOT_RUNTIME: &[&str] = &["attach", "env_file", "extends", "label_file", "profiles"];
