//! Service `secrets` and `configs` (and `build.secrets`): a name, or the long form
//! `{source, target, uid, gid, mode}`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::de::{long_form, opt_text};
use super::units::FileMode;
use super::Extensions;

/// A service's grant of a top-level secret or config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct FileReference {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_text"
    )]
    pub gid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    /// The key under the top-level `secrets` / `configs`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_text"
    )]
    pub uid: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

struct RefVisitor;

impl<'de> Visitor<'de> for RefVisitor {
    type Value = FileReference;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a name or a mapping with `source`")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<FileReference, E> {
        Ok(FileReference {
            source: v.to_owned(),
            ..FileReference::default()
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileReference, A::Error> {
        long_form(map, FileReference::deserialize)
    }
}

impl<'de> Deserialize<'de> for FileReference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RefVisitor)
    }
}

impl Serialize for FileReference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        FileReference::serialize(self, s)
    }
}

/// Service `secrets` and `build.secrets`: the Specification mounts a secret at
/// `/run/secrets/<source>` by default, and a relative `target` under `/run/secrets/`.
pub(crate) fn secret_refs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FileReference>, D::Error> {
    let mut refs = super::de::null_as_empty::<D, FileReference>(d)?;
    for r in &mut refs {
        let target = match r.target.take() {
            None => format!("/run/secrets/{}", r.source),
            Some(t) if t.starts_with('/') || super::volumes::is_windows_path(&t) => t,
            Some(t) => format!("/run/secrets/{t}"),
        };
        r.target = Some(target);
    }
    Ok(refs)
}

/// Service `configs`: the Specification mounts a config at `/<source>` by default.
pub(crate) fn config_refs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FileReference>, D::Error> {
    let mut refs = super::de::null_as_empty::<D, FileReference>(d)?;
    for r in &mut refs {
        if r.target.is_none() {
            r.target = Some(format!("/{}", r.source));
        }
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct S {
        #[serde(default, deserialize_with = "secret_refs")]
        secrets: Vec<FileReference>,
        #[serde(default, deserialize_with = "config_refs")]
        configs: Vec<FileReference>,
    }

    fn s(v: serde_json::Value) -> Result<S, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn short_names() {
        let s = s(json!({"secrets": ["server-certificate"], "configs": ["my_config"]})).unwrap();
        assert_eq!(s.secrets[0].source, "server-certificate");
        assert_eq!(
            s.secrets[0].target.as_deref(),
            Some("/run/secrets/server-certificate")
        );
        assert_eq!(s.configs[0].target.as_deref(), Some("/my_config"));
    }

    #[test]
    fn long_form() {
        let s = s(json!({
            "secrets": [{"source": "cert", "target": "server.cert", "uid": "103", "gid": 103, "mode": "0440", "x-k": 1},
                        {"source": "key", "target": "/etc/key"}],
            "configs": [{"source": "c", "target": "/redis_config", "mode": "0o440"}]
        }))
        .unwrap();
        let cert = &s.secrets[0];
        assert_eq!(cert.target.as_deref(), Some("/run/secrets/server.cert"));
        assert_eq!(cert.uid.as_deref(), Some("103"));
        assert_eq!(cert.gid.as_deref(), Some("103"));
        assert_eq!(cert.mode, Some(FileMode(0o440)));
        assert_eq!(cert.extensions["x-k"], json!(1));
        assert_eq!(s.secrets[1].target.as_deref(), Some("/etc/key"));
        assert_eq!(s.configs[0].mode, Some(FileMode(0o440)));
        assert_eq!(
            serde_json::to_value(cert).unwrap(),
            json!({"gid": "103", "mode": "0440", "source": "cert", "target": "/run/secrets/server.cert", "uid": "103"})
        );
    }

    #[test]
    fn refusals() {
        let err = s(json!({"secrets": [{"target": "/x"}]})).unwrap_err();
        assert!(err.contains("missing field `source`"), "{err}");
        let err = s(json!({"secrets": [{"source": "a", "mode": "rw"}]})).unwrap_err();
        assert!(err.contains("invalid file mode \"rw\""), "{err}");
        let err = s(json!({"configs": [{"source": "a", "owner": "me"}]})).unwrap_err();
        assert!(err.contains("unknown field `owner`"), "{err}");
    }
}
