//! Service attributes with a small structure of their own: `logging`,
//! `credential_spec`, `extends` and `provider`.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::de::{long_form_strict, opt_text_map, Text};
use super::Extensions;

/// `logging`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "opt_text_map"
    )]
    pub options: IndexMap<String, Option<String>>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// `credential_spec` (Windows gMSA).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// `extends`: a service name in the same file, or `{service, file}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Extends {
    /// Made absolute by `resolve_paths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub service: String,
}

impl<'de> Deserialize<'de> for Extends {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Extends;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a service name or a mapping with `service` and `file`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Extends, E> {
                Ok(Extends {
                    file: None,
                    service: v.to_owned(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Extends, A::Error> {
                long_form_strict(map, Extends::deserialize)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Extends {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Extends::serialize(self, s)
    }
}

/// `provider`: a service managed by an external component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Each option may be given once or as a list; always a list here.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "provider_options",
        serialize_with = "serialize_provider_options"
    )]
    pub options: IndexMap<String, Vec<String>>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// One option value: a scalar or a list of scalars.
struct OptionValues(Vec<String>);

impl<'de> Deserialize<'de> for OptionValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OptionValues;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or a list of them")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OptionValues, E> {
                Ok(OptionValues(vec![v.to_string()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OptionValues, E> {
                Ok(OptionValues(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OptionValues, E> {
                Ok(OptionValues(vec![v.to_string()]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<OptionValues, E> {
                Ok(OptionValues(vec![super::de::float_text(v)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OptionValues, E> {
                Ok(OptionValues(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OptionValues, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Text>()? {
                    out.push(v.0);
                }
                Ok(OptionValues(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn provider_options<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Vec<String>>, D::Error> {
    let raw = Option::<IndexMap<String, OptionValues>>::deserialize(d)?.unwrap_or_default();
    Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// A single value prints as a scalar, several as a list.
fn serialize_provider_options<S: Serializer>(
    options: &IndexMap<String, Vec<String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    struct Values<'a>(&'a [String]);
    impl Serialize for Values<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                [one] => s.serialize_str(one),
                many => {
                    let mut seq = s.serialize_seq(Some(many.len()))?;
                    for v in many {
                        seq.serialize_element(v)?;
                    }
                    seq.end()
                }
            }
        }
    }
    s.collect_map(options.iter().map(|(k, v)| (k, Values(v))))
}
