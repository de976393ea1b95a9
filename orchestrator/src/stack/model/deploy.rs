//! `deploy` (the Compose Deploy Specification) and `gpus`, which shares its device
//! requests.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::de::{mapping, null_as_empty, opt_cpus, opt_f64, string_enum};
use super::units::{ByteSize, Duration};
use super::Extensions;

/// `deploy`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// `vip` or `dnsrr` (swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "mapping"
    )]
    pub labels: IndexMap<String, String>,
    /// `replicated` (default), `global`, `replicated-job` or `global-job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<DeployRestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// `deploy.placement` (swarm).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementPreference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

string_enum! {
    /// Whether new tasks start before old ones stop during an update or rollback.
    pub enum UpdateOrder ("update order") {
        StopFirst = "stop-first",
        StartFirst = "start-first",
    }
}

/// `deploy.update_config` and `deploy.rollback_config`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// `continue`, `rollback` or `pause`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_f64"
    )]
    pub max_failure_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<UpdateOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u64>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// `deploy.restart_policy`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRestartPolicy {
    /// `none`, `on-failure` or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// `deploy.resources`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceReservations>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// `deploy.resources.limits`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_cpus"
    )]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// `deploy.resources.reservations`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceReservations {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_cpus"
    )]
    pub cpus: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "device_reservations"
    )]
    pub devices: Vec<DeviceRequest>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub generic_resources: Vec<GenericResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// A user-defined resource (swarm).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discrete_resource_spec: Option<DiscreteResourceSpec>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscreteResourceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// How many devices a request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCount {
    All,
    Count(u64),
}

impl<'de> Deserialize<'de> for DeviceCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DeviceCount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"all\" or a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DeviceCount, E> {
                Ok(DeviceCount::Count(v))
            }
            /// Compose writes "all" as -1 internally and accepts it back.
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DeviceCount, E> {
                match v {
                    -1 => Ok(DeviceCount::All),
                    v if v >= 0 => Ok(DeviceCount::Count(v as u64)),
                    v => Err(E::custom(format!(
                        "invalid device count {v}: the only value allowed is \"all\" or a number"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DeviceCount, E> {
                if v.eq_ignore_ascii_case("all") {
                    return Ok(DeviceCount::All);
                }
                match v.trim().parse::<i64>() {
                    Ok(n) => self.visit_i64(n),
                    Err(_) => Err(E::custom(format!(
                        "invalid device count {v:?}: the only value allowed is \"all\" or a number"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for DeviceCount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DeviceCount::All => s.serialize_str("all"),
            DeviceCount::Count(n) => s.serialize_u64(*n),
        }
    }
}

/// A request for devices (GPUs …) from a driver.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct DeviceRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<DeviceCount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "mapping"
    )]
    pub options: IndexMap<String, String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

impl<'de> Deserialize<'de> for DeviceRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = DeviceRequest::deserialize(d)?;
        // A request names either how many devices or which ones.
        if r.count.is_some() && !r.device_ids.is_empty() {
            return Err(de::Error::custom(
                "\"count\" and \"device_ids\" are exclusive: ask for a number of devices or for specific ones",
            ));
        }
        Ok(r)
    }
}

impl Serialize for DeviceRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DeviceRequest::serialize(self, s)
    }
}

/// `deploy.resources.reservations.devices`: each request must say which capabilities
/// it needs, as the Deploy Specification requires.
fn device_reservations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DeviceRequest>, D::Error> {
    let requests: Vec<DeviceRequest> = null_as_empty(d)?;
    if let Some(i) = requests.iter().position(|r| r.capabilities.is_empty()) {
        return Err(de::Error::custom(format!(
            "device reservation {} is missing `capabilities` (for example [gpu])",
            i + 1
        )));
    }
    Ok(requests)
}

struct GpusVisitor;

impl<'de> Visitor<'de> for GpusVisitor {
    type Value = Vec<DeviceRequest>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("\"all\" or a list of device requests")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v != "all" {
            return Err(E::custom(format!(
                "invalid gpus {v:?}: expected \"all\" or a list of device requests"
            )));
        }
        Ok(vec![DeviceRequest {
            count: Some(DeviceCount::All),
            ..DeviceRequest::default()
        }])
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(r) = seq.next_element::<DeviceRequest>()? {
            out.push(r);
        }
        Ok(out)
    }
}

/// Service `gpus`: `all`, or device requests; each is a device request with the `gpu`
/// capability implied, as the Specification says, so the model states it.
pub(crate) fn gpus<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DeviceRequest>, D::Error> {
    let mut requests = d.deserialize_any(GpusVisitor)?;
    for r in &mut requests {
        if r.capabilities.is_empty() {
            r.capabilities.push("gpu".into());
        }
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(v: serde_json::Value) -> Result<Deploy, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn full_deploy() {
        let d = deploy(json!({
            "mode": "replicated", "replicas": 6, "endpoint_mode": "dnsrr",
            "labels": ["com.example.description=This label will appear on the web service"],
            "update_config": {"parallelism": 2, "delay": "10s", "order": "stop-first",
                              "failure_action": "continue", "monitor": "60s", "max_failure_ratio": "0.3"},
            "rollback_config": {"parallelism": 0, "order": "start-first"},
            "restart_policy": {"condition": "on-failure", "delay": "5s", "max_attempts": 3, "window": "120s"},
            "placement": {"constraints": ["node.role == manager"], "preferences": [{"spread": "node.labels.zone"}],
                          "max_replicas_per_node": 1},
            "resources": {
                "limits": {"cpus": "0.50", "memory": "50M", "pids": 1},
                "reservations": {"cpus": 0.25, "memory": "20M",
                    "devices": [{"capabilities": ["gpu"], "driver": "nvidia", "count": "all"}],
                    "generic_resources": [{"discrete_resource_spec": {"kind": "gpu", "value": 2}}]}
            }
        }))
        .unwrap();
        assert_eq!(d.replicas, Some(6));
        let u = d.update_config.as_ref().unwrap();
        assert_eq!(u.max_failure_ratio, Some(0.3));
        assert_eq!(u.order, Some(UpdateOrder::StopFirst));
        let r = d.resources.as_ref().unwrap();
        let limits = r.limits.as_ref().unwrap();
        assert_eq!(limits.cpus, Some(0.5));
        assert_eq!(limits.memory, Some(ByteSize(50 << 20)));
        let res = r.reservations.as_ref().unwrap();
        assert_eq!(res.devices[0].count, Some(DeviceCount::All));
        assert_eq!(
            d.restart_policy.as_ref().unwrap().window,
            Some(Duration::from_secs(120))
        );
        let again: Deploy = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(again, d);
    }

    #[test]
    fn device_count_forms() {
        for (v, want) in [
            (json!(2), DeviceCount::Count(2)),
            (json!("2"), DeviceCount::Count(2)),
            (json!("ALL"), DeviceCount::All),
            (json!(-1), DeviceCount::All),
        ] {
            assert_eq!(serde_json::from_value::<DeviceCount>(v).unwrap(), want);
        }
        assert_eq!(
            serde_json::to_value(DeviceCount::All).unwrap(),
            json!("all")
        );
    }

    #[test]
    fn refusals() {
        let err = deploy(json!({"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "capabilities": ["gpu"], "count": "some_string"}]}}}))
        .unwrap_err();
        assert!(err.contains("invalid device count \"some_string\": the only value allowed is \"all\" or a number"), "{err}");
        let err = deploy(json!({"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "capabilities": ["gpu"], "count": 2, "device_ids": ["my-device-id"]}]}}}))
        .unwrap_err();
        assert!(
            err.contains("\"count\" and \"device_ids\" are exclusive"),
            "{err}"
        );
        let err = deploy(
            json!({"resources": {"reservations": {"devices": [{"driver": "nvidia", "count": 1}]}}}),
        )
        .unwrap_err();
        assert!(
            err.contains("device reservation 1 is missing `capabilities`"),
            "{err}"
        );
        let err = deploy(json!({"resources": {"impossible": {"x": 1}}})).unwrap_err();
        assert!(err.contains("unknown field `impossible`"), "{err}");
        let err = deploy(json!({"resources": {"limits": {"devices": []}}})).unwrap_err();
        assert!(err.contains("unknown field `devices`"), "{err}");
        let err = deploy(json!({"update_config": {"order": "first"}})).unwrap_err();
        assert!(err.contains("invalid update order \"first\""), "{err}");
        let err = deploy(json!({"resources": {"limits": {"cpus": -1}}})).unwrap_err();
        assert!(err.contains("must not be negative"), "{err}");
    }

    #[derive(Debug, Deserialize)]
    struct G {
        #[serde(deserialize_with = "gpus")]
        gpus: Vec<DeviceRequest>,
    }

    #[test]
    fn gpus_forms() {
        let g: G = serde_json::from_value(json!({"gpus": "all"})).unwrap();
        assert_eq!(g.gpus[0].count, Some(DeviceCount::All));
        assert_eq!(g.gpus[0].capabilities, ["gpu"]);
        let g: G =
            serde_json::from_value(json!({"gpus": [{"driver": "3dfx", "count": 2}]})).unwrap();
        assert_eq!(g.gpus[0].driver.as_deref(), Some("3dfx"));
        assert_eq!(g.gpus[0].count, Some(DeviceCount::Count(2)));
        let err = serde_json::from_value::<G>(json!({"gpus": "some"})).unwrap_err();
        assert!(err.to_string().contains("invalid gpus \"some\""), "{err}");
    }
}
