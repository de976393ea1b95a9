//! `build` (the Compose Build Specification): a context path, or the long form.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::de::{dict_with_equals, long_form, mapping, opt_text, string_or_list};
use super::env::ExtraHosts;
use super::references::{secret_refs, FileReference};
use super::resources::Ulimit;
use super::units::ByteSize;
use super::Extensions;

/// How to build a service's image.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Build {
    /// Named contexts: a path, a URL, `docker-image://…` or `target:…`.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "mapping"
    )]
    pub additional_contexts: IndexMap<String, String>,
    /// Build arguments; a name without value is taken from the environment.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "args"
    )]
    pub args: IndexMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_to: Vec<String>,
    /// A path (made absolute by `resolve_paths`) or a URL. Defaults to `.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Relative to the context. Defaults to `Dockerfile` unless `dockerfile_inline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
    #[serde(default, skip_serializing_if = "ExtraHosts::is_empty")]
    pub extra_hosts: ExtraHosts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "mapping"
    )]
    pub labels: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cache: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    pub no_cache_filter: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// `true`, `false` or a provenance mode (`mode=max`), kept as text.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_text"
    )]
    pub provenance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<bool>,
    /// `true`, `false` or SBOM generator options, kept as text.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_text"
    )]
    pub sbom: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "secret_refs"
    )]
    pub secrets: Vec<FileReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<ByteSize>,
    /// SSH agent sockets or keys: `default`, or id → path.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "ssh"
    )]
    pub ssh: IndexMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub ulimits: IndexMap<String, Ulimit>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

impl Build {
    /// The defaults `docker compose config` prints: context `.`, and `Dockerfile` when
    /// no inline Dockerfile is given.
    fn with_defaults(mut self) -> Self {
        if self.context.is_none() {
            self.context = Some(".".into());
        }
        if self.dockerfile.is_none() && self.dockerfile_inline.is_none() {
            self.dockerfile = Some("Dockerfile".into());
        }
        self
    }

    /// Whether the context is a directory on this host (not a Git or HTTP URL).
    pub fn has_local_context(&self) -> bool {
        self.context.as_deref().is_some_and(is_local_context)
    }
}

/// A build context or additional context that names a local path, as opposed to a URL
/// (`https://…`, `git@…`, `github.com/…`) or a reference (`docker-image://…`,
/// `target:…`, `service:…`, `oci-layout://…`).
pub fn is_local_context(context: &str) -> bool {
    const REMOTE: &[&str] = &[
        "git@",
        "github.com/",
        "docker-image:",
        "target:",
        "service:",
        "oci-layout:",
    ];
    !(context.contains("://") || REMOTE.iter().any(|p| context.starts_with(p)))
}

fn args<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, Option<String>>, D::Error> {
    dict_with_equals(d, "build argument")
}

/// `ssh`: unlike other list-or-dict attributes, an empty `ssh:` is an error, since it
/// almost always means a forgotten value.
fn ssh<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, Option<String>>, D::Error> {
    struct NotNull;
    impl<'de> Visitor<'de> for NotNull {
        type Value = IndexMap<String, Option<String>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list like [default] or a mapping of id to socket or key path")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            dict_with_equals(de::value::SeqAccessDeserializer::new(seq), "ssh")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            dict_with_equals(de::value::MapAccessDeserializer::new(map), "ssh")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut m = IndexMap::new();
            match v.split_once('=') {
                Some((id, path)) => m.insert(id.to_owned(), Some(path.to_owned())),
                None => m.insert(v.to_owned(), None),
            };
            Ok(m)
        }
    }
    d.deserialize_any(NotNull)
}

struct BuildVisitor;

impl<'de> Visitor<'de> for BuildVisitor {
    type Value = Build;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a build context path or a mapping with `context`, `dockerfile` …")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Build, E> {
        Ok(Build {
            context: Some(v.to_owned()),
            ..Build::default()
        }
        .with_defaults())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Build, A::Error> {
        long_form(map, Build::deserialize).map(Build::with_defaults)
    }
}

impl<'de> Deserialize<'de> for Build {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BuildVisitor)
    }
}

impl Serialize for Build {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Build::serialize(self, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(v: serde_json::Value) -> Result<Build, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn short_context() {
        let b = build(json!("./dir")).unwrap();
        assert_eq!(b.context.as_deref(), Some("./dir"));
        assert_eq!(b.dockerfile.as_deref(), Some("Dockerfile"));
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"context": "./dir", "dockerfile": "Dockerfile"})
        );
    }

    #[test]
    fn long_form() {
        let b = build(json!({
            "context": ".", "dockerfile": "webapp.Dockerfile",
            "args": ["GIT_COMMIT=cdc3b19", "EMPTY"], "ssh": ["default", "myproject=~/.ssh/id_rsa"],
            "cache_from": ["alpine:latest"], "cache_to": ["type=local,dest=/tmp"],
            "additional_contexts": {"resources": "/path/to/resources"},
            "extra_hosts": ["somehost=162.242.195.82"], "labels": {"com.example.x": "y"},
            "network": "host", "no_cache": true, "no_cache_filter": "stage", "pull": true,
            "provenance": true, "sbom": "generator=x", "secrets": ["npm_token"], "shm_size": "2gb",
            "tags": ["myimage:mytag"], "target": "prod", "platforms": ["linux/amd64"],
            "ulimits": {"nofile": {"soft": 1, "hard": 2}}, "privileged": true,
            "entitlements": ["network.host"], "isolation": "default", "x-hint": 1
        }))
        .unwrap();
        assert_eq!(b.args["GIT_COMMIT"].as_deref(), Some("cdc3b19"));
        assert_eq!(b.args["EMPTY"], None);
        assert_eq!(b.ssh["default"], None);
        assert_eq!(b.ssh["myproject"].as_deref(), Some("~/.ssh/id_rsa"));
        assert_eq!(b.no_cache_filter, ["stage"]);
        assert_eq!(b.provenance.as_deref(), Some("true"));
        assert_eq!(
            b.secrets[0].target.as_deref(),
            Some("/run/secrets/npm_token")
        );
        assert_eq!(b.shm_size, Some(ByteSize(2 << 30)));
        assert_eq!(b.extensions["x-hint"], json!(1));
        let again = build(serde_json::to_value(&b).unwrap()).unwrap();
        assert_eq!(
            Build {
                extensions: b.extensions.clone(),
                ..again
            },
            b
        );
    }

    #[test]
    fn inline_dockerfile_needs_no_default() {
        let b = build(json!({"dockerfile_inline": "FROM alpine"})).unwrap();
        assert_eq!(b.dockerfile, None);
        assert_eq!(b.context.as_deref(), Some("."));
    }

    #[test]
    fn refusals() {
        let err = build(json!({"context": ".", "ssh": null})).unwrap_err();
        assert!(
            err.contains("a list like [default] or a mapping of id to socket or key path"),
            "{err}"
        );
        let err = build(json!({"contxt": "."})).unwrap_err();
        assert!(err.contains("unknown field `contxt`"), "{err}");
    }

    #[test]
    fn local_contexts() {
        assert!(is_local_context("."));
        assert!(is_local_context("../app"));
        assert!(!is_local_context("https://github.com/docker/app.git"));
        assert!(!is_local_context("git@github.com:docker/app.git"));
        assert!(!is_local_context("docker-image://alpine"));
        assert!(!is_local_context("target:base"));
    }
}
