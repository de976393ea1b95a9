//! `depends_on`: a list of service names, or a map of name → `{condition, required,
//! restart}`. The list is the map with every default, which is what is kept.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::de::{is_false, string_enum, yes};
use super::Extensions;

string_enum! {
    /// What a dependency must reach before the dependent service starts.
    #[derive(Default)]
    pub enum Condition ("depends_on condition") {
        #[default]
        Started = "service_started",
        Healthy = "service_healthy",
        CompletedSuccessfully = "service_completed_successfully",
    }
}

/// One dependency, in the long syntax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// Defaults to `service_started`, as the short syntax means.
    #[serde(default)]
    pub condition: Condition,
    /// When false, a missing or failed dependency only warns. Defaults to true.
    #[serde(default = "yes")]
    pub required: bool,
    /// Restart this service when the dependency is updated by Compose.
    #[serde(default, skip_serializing_if = "is_false")]
    pub restart: bool,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

impl Default for Dependency {
    fn default() -> Self {
        Dependency {
            condition: Condition::Started,
            required: true,
            restart: false,
            extensions: Extensions::new(),
        }
    }
}

struct DependsOnVisitor;

impl<'de> Visitor<'de> for DependsOnVisitor {
    type Value = IndexMap<String, Dependency>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of service names or a mapping of service name to `{condition, required, restart}`")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(IndexMap::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = IndexMap::new();
        while let Some(name) = seq.next_element::<String>()? {
            out.insert(name, Dependency::default());
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = IndexMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let dep: Option<Dependency> = map.next_value()?;
            out.insert(name, dep.unwrap_or_default());
        }
        Ok(out)
    }
}

/// The `depends_on` field.
pub(crate) fn depends_on<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Dependency>, D::Error> {
    d.deserialize_any(DependsOnVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct S {
        #[serde(default, deserialize_with = "depends_on")]
        depends_on: IndexMap<String, Dependency>,
    }

    fn s(v: serde_json::Value) -> Result<IndexMap<String, Dependency>, String> {
        serde_json::from_value::<S>(json!({ "depends_on": v }))
            .map(|s| s.depends_on)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn short_list() {
        let deps = s(json!(["db", "redis"])).unwrap();
        assert_eq!(deps.keys().collect::<Vec<_>>(), ["db", "redis"]);
        assert_eq!(deps["db"], Dependency::default());
        assert_eq!(
            serde_json::to_value(&deps).unwrap(),
            json!({"db": {"condition": "service_started", "required": true},
                   "redis": {"condition": "service_started", "required": true}})
        );
    }

    #[test]
    fn long_map() {
        let deps = s(json!({
            "db": {"condition": "service_healthy", "restart": true},
            "init": {"condition": "service_completed_successfully", "required": false},
            "cache": null
        }))
        .unwrap();
        assert_eq!(deps["db"].condition, Condition::Healthy);
        assert!(deps["db"].restart);
        assert!(deps["db"].required);
        assert_eq!(deps["init"].condition, Condition::CompletedSuccessfully);
        assert!(!deps["init"].required);
        assert_eq!(deps["cache"], Dependency::default());
    }

    #[test]
    fn refusals() {
        let err = s(json!({"db": {"condition": "service_healty"}})).unwrap_err();
        assert!(
            err.contains("invalid depends_on condition \"service_healty\": expected \"service_started\", \"service_healthy\" or \"service_completed_successfully\" (did you mean \"service_healthy\"?)"),
            "{err}"
        );
        let err = s(json!({"db": {"conditon": "service_healthy"}})).unwrap_err();
        assert!(err.contains("unknown field `conditon`"), "{err}");
        let err = s(json!("db")).unwrap_err();
        assert!(
            err.contains("a list of service names or a mapping"),
            "{err}"
        );
    }
}
