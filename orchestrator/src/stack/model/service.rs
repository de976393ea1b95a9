//! A service: every attribute of the Specification's `service` definition.

use indexmap::IndexMap;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::build::Build;
use super::de::{
    environment, mapping, null_as_empty, opt_cpus, opt_percent, string_enum, string_or_list,
    text_list, text_map,
};
use super::depends_on::{depends_on, Dependency};
use super::deploy::{gpus, Deploy, DeviceRequest};
use super::env::{env_files, label_files, EnvFile, ExtraHosts};
use super::healthcheck::Healthcheck;
use super::hooks::{Develop, PreStartHook, ServiceHook};
use super::networks::{service_models, service_networks, ServiceModel, ServiceNetwork};
use super::options::{CredentialSpec, Extends, Logging, Provider};
use super::policies::{PullPolicy, RestartPolicy};
use super::ports::{expose, ports, Port};
use super::references::{config_refs, secret_refs, FileReference};
use super::resources::{BlkioConfig, DeviceMapping, Ulimit};
use super::shell_words::opt_command;
use super::units::{ByteSize, Duration, Microseconds, SwapLimit};
use super::volumes::ServiceVolume;
use super::Extensions;

/// One service of a project.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Service {
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "mapping"
    )]
    pub annotations: IndexMap<String, String>,
    /// Whether `up` attaches to this service's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// `None`: the image's `CMD`; `Some(vec![])`: none at all.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_command"
    )]
    pub command: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "config_refs"
    )]
    pub configs: Vec<FileReference>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "container_name"
    )]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_percent"
    )]
    pub cpu_percent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<Microseconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<Microseconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// Number of CPUs, fractional; `0` means no limit.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_cpus"
    )]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpec>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "depends_on"
    )]
    pub depends_on: IndexMap<String, Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub develop: Option<Develop>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub devices: Vec<DeviceMapping>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// `None`: the image's `ENTRYPOINT`; `Some(vec![])`: none at all.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_command"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "env_files"
    )]
    pub env_file: Vec<EnvFile>,
    /// `None` values are taken from the environment, or left unset.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "environment"
    )]
    pub environment: IndexMap<String, Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "expose"
    )]
    pub expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<Extends>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    #[serde(default, skip_serializing_if = "ExtraHosts::is_empty")]
    pub extra_hosts: ExtraHosts,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "gpus"
    )]
    pub gpus: Vec<DeviceRequest>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "text_list"
    )]
    pub group_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "label_files"
    )]
    pub label_file: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "mapping"
    )]
    pub labels: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_reservation: Option<ByteSize>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_percent"
    )]
    pub mem_swappiness: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<SwapLimit>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "service_models"
    )]
    pub models: IndexMap<String, Option<ServiceModel>>,
    /// `bridge`, `host`, `none`, `service:NAME` or `container:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// `None` values join with the defaults (the short list form).
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "service_networks"
    )]
    pub networks: IndexMap<String, Option<ServiceNetwork>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "oom_score_adj"
    )]
    pub oom_score_adj: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// `-1` for unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// One entry per container port (short-syntax ranges are expanded).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "ports"
    )]
    pub ports: Vec<Port>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub post_start: Vec<ServiceHook>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub pre_start: Vec<PreStartHook>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub pre_stop: Vec<ServiceHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_refresh_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "secret_refs"
    )]
    pub secrets: Vec<FileReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "text_map"
    )]
    pub storage_opt: IndexMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "mapping"
    )]
    pub sysctls: IndexMap<String, String>,
    /// `PATH[:OPTIONS]` entries.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    pub tmpfs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub ulimits: IndexMap<String, Ulimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_api_socket: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub volumes: Vec<ServiceVolume>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

impl Service {
    /// Rules that tie several attributes together. Each is an error in Compose too, or
    /// would leave it to chance which of two contradicting values applies.
    pub fn check(&self) -> Result<(), String> {
        if let Some(mode) = &self.network_mode {
            if !self.networks.is_empty() {
                return Err(format!(
                    "`network_mode` and `networks` are mutually exclusive: with network_mode {mode:?} the service joins no Compose network"
                ));
            }
        }
        let deploy = self.deploy.as_ref();
        if let (Some(scale), Some(replicas)) = (self.scale, deploy.and_then(|d| d.replicas)) {
            if scale != replicas {
                return Err(format!(
                    "`scale` ({scale}) and `deploy.replicas` ({replicas}) must be consistent"
                ));
            }
        }
        let limits = deploy
            .and_then(|d| d.resources.as_ref())
            .and_then(|r| r.limits.as_ref());
        let reservations = deploy
            .and_then(|d| d.resources.as_ref())
            .and_then(|r| r.reservations.as_ref());
        let pairs: [(&str, Option<String>, &str, Option<String>); 4] = [
            (
                "cpus",
                self.cpus.map(|c| c.to_string()),
                "deploy.resources.limits.cpus",
                limits.and_then(|l| l.cpus).map(|c| c.to_string()),
            ),
            (
                "mem_limit",
                self.mem_limit.map(|m| m.0.to_string()),
                "deploy.resources.limits.memory",
                limits.and_then(|l| l.memory).map(|m| m.0.to_string()),
            ),
            (
                "pids_limit",
                self.pids_limit.map(|p| p.to_string()),
                "deploy.resources.limits.pids",
                limits.and_then(|l| l.pids).map(|p| p.to_string()),
            ),
            (
                "mem_reservation",
                self.mem_reservation.map(|m| m.0.to_string()),
                "deploy.resources.reservations.memory",
                reservations.and_then(|r| r.memory).map(|m| m.0.to_string()),
            ),
        ];
        for (name, value, deploy_name, deploy_value) in pairs {
            if let (Some(a), Some(b)) = (value, deploy_value) {
                if a != b {
                    return Err(format!(
                        "`{name}` ({a}) and `{deploy_name}` ({b}) must be consistent"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Service {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let service = Service::deserialize(d)?;
        service.check().map_err(de::Error::custom)?;
        Ok(service)
    }
}

impl Serialize for Service {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Service::serialize(self, s)
    }
}

/// Docker's rule for container names.
fn container_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let name = String::deserialize(d)?;
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || name.len() < 2 {
        return Err(de::Error::custom(format!(
            "invalid container_name {name:?}: expected a letter or digit followed by letters, digits, `_`, `.` or `-`"
        )));
    }
    Ok(Some(name))
}

/// The kernel's range for `oom_score_adj`.
fn oom_score_adj<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = i64::deserialize(d)?;
    if !(-1000..=1000).contains(&v) {
        return Err(de::Error::custom(format!(
            "invalid oom_score_adj {v}: expected a value from -1000 to 1000"
        )));
    }
    Ok(Some(v))
}

string_enum! {
    /// The cgroup namespace of the container.
    pub enum CgroupMode ("cgroup mode") {
        Host = "host",
        Private = "private",
    }
}

#[cfg(test)]
mod tests;
