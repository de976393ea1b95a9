//! `healthcheck`.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::units::Duration;
use super::Extensions;

/// How the engine decides that a service's container is healthy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// Turns off the image's healthcheck (the same as `test: ["NONE"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    /// Always the list form: `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "test"
    )]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

const TEST_KINDS: &[&str] = &["CMD", "CMD-SHELL", "NONE"];

struct TestVisitor;

impl<'de> Visitor<'de> for TestVisitor {
    type Value = Option<Vec<String>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a shell command string or a list starting with \"CMD\", \"CMD-SHELL\" or \"NONE\"",
        )
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    /// The string form runs in the container's shell, as `CMD-SHELL`.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(vec!["CMD-SHELL".to_owned(), v.to_owned()]))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items: Vec<String> = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        if let Some(first) = items.first() {
            if !TEST_KINDS.contains(&first.as_str()) {
                return Err(de::Error::custom(format!(
                    "invalid healthcheck test {items:?}: the first item must be {}; write [\"CMD\", {:?}, …] to run it directly, or a string to run it in a shell",
                    super::de::one_of(TEST_KINDS),
                    first
                )));
            }
        }
        Ok(Some(items))
    }
}

fn test<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    d.deserialize_any(TestVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hc(v: serde_json::Value) -> Result<Healthcheck, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn string_test_is_cmd_shell() {
        let h = hc(json!({"test": "curl -f http://localhost || exit 1"})).unwrap();
        assert_eq!(
            h.test.unwrap(),
            ["CMD-SHELL", "curl -f http://localhost || exit 1"]
        );
    }

    #[test]
    fn full_form() {
        let h = hc(json!({"test": ["CMD", "curl", "-f", "http://localhost"], "interval": "1m30s",
            "timeout": "10s", "retries": 3, "start_period": "40s", "start_interval": "5s", "__x": {"x-a": 1}}))
        .unwrap();
        assert_eq!(h.test.as_ref().unwrap()[0], "CMD");
        assert_eq!(h.interval, Some(Duration::from_secs(90)));
        assert_eq!(h.retries, Some(3));
        assert_eq!(h.extensions["x-a"], json!(1));
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            json!({"interval": "1m30s", "retries": 3, "start_interval": "5s", "start_period": "40s",
                   "test": ["CMD", "curl", "-f", "http://localhost"], "timeout": "10s"})
        );
    }

    #[test]
    fn disabled() {
        let h = hc(json!({"test": ["NONE"]})).unwrap();
        assert_eq!(h.test.unwrap(), ["NONE"]);
        let h = hc(json!({"disable": true})).unwrap();
        assert_eq!(h.disable, Some(true));
    }

    #[test]
    fn refusals() {
        let err = hc(json!({"test": ["curl", "-f"]})).unwrap_err();
        assert!(err.contains("invalid healthcheck test [\"curl\", \"-f\"]: the first item must be \"CMD\", \"CMD-SHELL\" or \"NONE\""), "{err}");
        let err = hc(json!({"interval": "10"})).unwrap_err();
        assert!(
            err.contains("invalid duration \"10\": missing unit"),
            "{err}"
        );
        let err = hc(json!({"intervall": "10s"})).unwrap_err();
        assert!(err.contains("unknown field `intervall`"), "{err}");
    }
}
