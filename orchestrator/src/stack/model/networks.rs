//! A service's attachments: `networks` and `models` entries.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::de::text_map;
use super::Extensions;

/// How a service joins one network (`services.*.networks.<name>`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    /// Extra DNS names of the service on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "text_map"
    )]
    pub driver_opts: IndexMap<String, String>,
    /// Which network provides the default gateway: the highest wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw_priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Order in which networks are connected: the highest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// How a service uses one model (`services.*.models.<name>`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceModel {
    /// Variable that receives the model runner URL (default `<MODEL>_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_var: Option<String>,
    /// Variable that receives the model name (default `<MODEL>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_var: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

pub(crate) fn service_networks<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Option<ServiceNetwork>>, D::Error> {
    super::de::names_or_map(d, "network")
}

pub(crate) fn service_models<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Option<ServiceModel>>, D::Error> {
    super::de::names_or_map(d, "model")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct S {
        #[serde(default, deserialize_with = "service_networks")]
        networks: IndexMap<String, Option<ServiceNetwork>>,
        #[serde(default, deserialize_with = "service_models")]
        models: IndexMap<String, Option<ServiceModel>>,
    }

    #[test]
    fn networks_list_and_map() {
        let s: S = serde_json::from_value(json!({"networks": ["front", "back"]})).unwrap();
        assert_eq!(s.networks.len(), 2);
        assert_eq!(s.networks["front"], None);
        let s: S = serde_json::from_value(json!({"networks": {
            "front": null,
            "back": {"aliases": ["db"], "ipv4_address": "172.16.238.10", "priority": 100, "gw_priority": 1,
                     "driver_opts": {"com.docker.network.bridge.mtu": 1400}, "interface_name": "eth1",
                     "link_local_ips": ["57.123.22.11"], "mac_address": "02:42:ac:11:65:43"}
        }}))
        .unwrap();
        let back = s.networks["back"].as_ref().unwrap();
        assert_eq!(back.aliases, ["db"]);
        assert_eq!(back.priority, Some(100));
        assert_eq!(back.driver_opts["com.docker.network.bridge.mtu"], "1400");
        assert_eq!(
            serde_json::to_value(&s.networks).unwrap()["front"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn models_list_and_map() {
        let s: S = serde_json::from_value(json!({"models": ["llm"]})).unwrap();
        assert_eq!(s.models["llm"], None);
        let s: S = serde_json::from_value(
            json!({"models": {"llm": {"endpoint_var": "URL", "model_var": "M"}}}),
        )
        .unwrap();
        assert_eq!(
            s.models["llm"].as_ref().unwrap().endpoint_var.as_deref(),
            Some("URL")
        );
    }

    #[test]
    fn refusals() {
        let err =
            serde_json::from_value::<S>(json!({"networks": {"a": {"alias": ["x"]}}})).unwrap_err();
        assert!(err.to_string().contains("unknown field `alias`"), "{err}");
        let err = serde_json::from_value::<S>(json!({"networks": "front"})).unwrap_err();
        assert!(
            err.to_string()
                .contains("a list of network names or a mapping"),
            "{err}"
        );
    }
}
