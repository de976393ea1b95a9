//! The top level of a Compose file: the project and its shared resources (`networks`,
//! `volumes`, `secrets`, `configs`, `models`).

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::de::{map_null_default, mapping, null_as_empty, text_map};
use super::service::Service;
use super::Extensions;

/// A whole Compose project, after the loader has merged the files, resolved
/// `include` and `extends`, and interpolated variables.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "map_null_default"
    )]
    pub configs: IndexMap<String, Config>,
    /// Resolved by the loader before the model is built; accepted and never printed.
    #[serde(default, skip_serializing)]
    pub include: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub models: IndexMap<String, Model>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "map_null_default"
    )]
    pub networks: IndexMap<String, Network>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "map_null_default"
    )]
    pub secrets: IndexMap<String, Secret>,
    /// A service written as `name:` with no value is a service with every default.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "map_null_default"
    )]
    pub services: IndexMap<String, Service>,
    /// Obsolete: accepted (so the loader can warn about it) and never printed.
    #[serde(default, skip_serializing)]
    pub version: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "map_null_default"
    )]
    pub volumes: IndexMap<String, Volume>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

// ---------------------------------------------------------------------------------------
// `external`
// ---------------------------------------------------------------------------------------

/// `external:` as written: a boolean, or the legacy `{name: …}` mapping, which means
/// `external: true` plus that name.
#[derive(Debug, Clone, PartialEq)]
enum ExternalRaw {
    Flag(bool),
    Legacy(Option<String>),
}

impl<'de> Deserialize<'de> for ExternalRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExternalRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, or (obsolete) a mapping with `name`")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ExternalRaw, E> {
                Ok(ExternalRaw::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExternalRaw, E> {
                match v.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "y" | "on" => Ok(ExternalRaw::Flag(true)),
                    "false" | "no" | "n" | "off" => Ok(ExternalRaw::Flag(false)),
                    _ => Err(E::custom(format!(
                        "invalid external {v:?}: expected true or false"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExternalRaw, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => name = Some(map.next_value::<String>()?),
                        k if k.starts_with("x-") || k == super::de::EXTENSIONS_KEY => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                        other => return Err(de::Error::unknown_field(other, &["name"])),
                    }
                }
                Ok(ExternalRaw::Legacy(name))
            }
        }
        d.deserialize_any(V)
    }
}

/// Applies the legacy `external.name`: it becomes the resource's `name`, as Compose
/// does, and may not contradict one given there.
fn resolve_external(
    external: Option<ExternalRaw>,
    name: &mut Option<String>,
) -> Result<Option<bool>, String> {
    match external {
        None => Ok(None),
        Some(ExternalRaw::Flag(b)) => Ok(Some(b)),
        Some(ExternalRaw::Legacy(None)) => Ok(Some(true)),
        Some(ExternalRaw::Legacy(Some(legacy))) => {
            if name.as_ref().is_some_and(|n| *n != legacy) {
                return Err("`name` and `external.name` conflict; only use `name`".into());
            }
            *name = Some(legacy);
            Ok(Some(true))
        }
    }
}

/// An external resource exists already: Compose neither creates nor configures it, so
/// settings that only apply when creating it are contradictions.
fn check_external(external: Option<bool>, set: &[(&str, bool)]) -> Result<(), String> {
    if external == Some(true) {
        if let Some((what, _)) = set.iter().find(|(_, present)| *present) {
            return Err(format!(
                "conflicting parameters \"external\" and {what:?} specified: an external resource is not created by Compose"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Networks
// ---------------------------------------------------------------------------------------

/// A top-level network.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "NetworkRaw")]
pub struct Network {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub driver_opts: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing)]
    pub extensions: Extensions,
}

#[derive(Deserialize)]
#[serde(rename = "Network", deny_unknown_fields)]
struct NetworkRaw {
    #[serde(default)]
    attachable: Option<bool>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default, deserialize_with = "text_map")]
    driver_opts: IndexMap<String, String>,
    #[serde(default)]
    enable_ipv4: Option<bool>,
    #[serde(default)]
    enable_ipv6: Option<bool>,
    #[serde(default)]
    external: Option<ExternalRaw>,
    #[serde(default)]
    internal: Option<bool>,
    #[serde(default)]
    ipam: Option<Ipam>,
    #[serde(default, deserialize_with = "mapping")]
    labels: IndexMap<String, String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "__x", default)]
    extensions: Extensions,
}

impl TryFrom<NetworkRaw> for Network {
    type Error = String;
    fn try_from(raw: NetworkRaw) -> Result<Self, String> {
        let mut name = raw.name;
        let external = resolve_external(raw.external, &mut name)?;
        check_external(
            external,
            &[
                ("driver", raw.driver.is_some()),
                ("driver_opts", !raw.driver_opts.is_empty()),
                ("ipam", raw.ipam.is_some()),
                ("labels", !raw.labels.is_empty()),
            ],
        )?;
        Ok(Network {
            attachable: raw.attachable,
            driver: raw.driver,
            driver_opts: raw.driver_opts,
            enable_ipv4: raw.enable_ipv4,
            enable_ipv6: raw.enable_ipv6,
            external,
            internal: raw.internal,
            ipam: raw.ipam,
            labels: raw.labels,
            name,
            extensions: raw.extensions,
        })
    }
}

/// `networks.*.ipam`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub config: Vec<IpamPool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "text_map"
    )]
    pub options: IndexMap<String, String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// One address pool of a network.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamPool {
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "text_map"
    )]
    pub aux_addresses: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

// ---------------------------------------------------------------------------------------
// Volumes
// ---------------------------------------------------------------------------------------

/// A top-level (named) volume.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "VolumeRaw")]
pub struct Volume {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub driver_opts: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing)]
    pub extensions: Extensions,
}

#[derive(Deserialize)]
#[serde(rename = "Volume", deny_unknown_fields)]
struct VolumeRaw {
    #[serde(default)]
    driver: Option<String>,
    #[serde(default, deserialize_with = "text_map")]
    driver_opts: IndexMap<String, String>,
    #[serde(default)]
    external: Option<ExternalRaw>,
    #[serde(default, deserialize_with = "mapping")]
    labels: IndexMap<String, String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "__x", default)]
    extensions: Extensions,
}

impl TryFrom<VolumeRaw> for Volume {
    type Error = String;
    fn try_from(raw: VolumeRaw) -> Result<Self, String> {
        let mut name = raw.name;
        let external = resolve_external(raw.external, &mut name)?;
        check_external(
            external,
            &[
                ("driver", raw.driver.is_some()),
                ("driver_opts", !raw.driver_opts.is_empty()),
                ("labels", !raw.labels.is_empty()),
            ],
        )?;
        Ok(Volume {
            driver: raw.driver,
            driver_opts: raw.driver_opts,
            external,
            labels: raw.labels,
            name,
            extensions: raw.extensions,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Secrets and configs
// ---------------------------------------------------------------------------------------

/// A top-level secret or config: its content comes from a file, an environment
/// variable, inline `content`, or exists already (`external`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "FileObjectRaw")]
pub struct FileObject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub driver_opts: IndexMap<String, String>,
    /// Name of the environment variable holding the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    /// Made absolute by `resolve_paths`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
    #[serde(skip_serializing)]
    pub extensions: Extensions,
}

/// A top-level secret.
pub type Secret = FileObject;

/// A top-level config.
pub type Config = FileObject;

impl Project {
    /// The secrets and configs `svc` refers to, as (`"secrets"` or `"configs"`, name,
    /// the top-level definition when there is one).
    pub fn file_objects_of<'a>(
        &'a self,
        svc: &'a Service,
    ) -> impl Iterator<Item = (&'static str, &'a str, Option<&'a FileObject>)> + 'a {
        let secrets = svc
            .secrets
            .iter()
            .map(|r| ("secrets", r.source.as_str(), self.secrets.get(&r.source)));
        let configs = svc
            .configs
            .iter()
            .map(|r| ("configs", r.source.as_str(), self.configs.get(&r.source)));
        secrets.chain(configs)
    }
}

/// What to say when a secret or config's `environment:` variable is not set (the
/// variable's name, as there is no value).
pub fn unset_variable(kind: &str, name: &str, var: &str) -> String {
    format!(
        "{kind}.{name} takes its value from the environment variable {var}, which is not set: set it (or put it in .env) and run again"
    )
}

#[derive(Deserialize)]
#[serde(rename = "FileObject", deny_unknown_fields)]
struct FileObjectRaw {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default, deserialize_with = "text_map")]
    driver_opts: IndexMap<String, String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    external: Option<ExternalRaw>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default, deserialize_with = "mapping")]
    labels: IndexMap<String, String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    template_driver: Option<String>,
    #[serde(rename = "__x", default)]
    extensions: Extensions,
}

impl TryFrom<FileObjectRaw> for FileObject {
    type Error = String;
    fn try_from(raw: FileObjectRaw) -> Result<Self, String> {
        let mut name = raw.name;
        let external = resolve_external(raw.external, &mut name)?;
        check_external(
            external,
            &[
                ("file", raw.file.is_some()),
                ("environment", raw.environment.is_some()),
                ("content", raw.content.is_some()),
            ],
        )?;
        let sources = [&raw.file, &raw.environment, &raw.content]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if sources > 1 {
            return Err("only one of `file`, `environment` and `content` may be set".into());
        }
        Ok(FileObject {
            content: raw.content,
            driver: raw.driver,
            driver_opts: raw.driver_opts,
            environment: raw.environment,
            external,
            file: raw.file,
            labels: raw.labels,
            name,
            template_driver: raw.template_driver,
            extensions: raw.extensions,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------

/// A top-level AI model, run by the platform's model runner.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_size: Option<u64>,
    /// The model reference (an OCI artifact, e.g. `ai/smollm2`).
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_flags: Vec<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(v: serde_json::Value) -> Result<Project, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn null_entries_are_defaults() {
        let p = project(
            json!({"volumes": {"data": null}, "networks": {"back": null},
            "secrets": {"s": {"file": "./s.txt"}}, "configs": {"c": {"content": "hello"}}}),
        )
        .unwrap();
        assert_eq!(p.volumes["data"], Volume::default());
        assert_eq!(p.networks["back"], Network::default());
        assert_eq!(
            serde_json::to_value(&p.volumes).unwrap(),
            json!({"data": {}})
        );
    }

    #[test]
    fn version_and_include_are_accepted_not_printed() {
        let p = project(
            json!({"version": "3.8", "include": ["a.yaml"], "name": "demo",
            "services": {"web": {"image": "nginx"}}}),
        )
        .unwrap();
        assert_eq!(p.version.as_deref(), Some("3.8"));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"name": "demo", "services": {"web": {"image": "nginx"}}})
        );
    }

    #[test]
    fn network_attributes() {
        let p = project(json!({"networks": {"front": {
            "driver": "bridge", "driver_opts": {"com.docker.network.bridge.mtu": 1400},
            "attachable": true, "enable_ipv4": false, "enable_ipv6": true, "internal": true,
            "labels": ["a=b"], "name": "my-front",
            "ipam": {"driver": "default", "options": {"foo": "bar"}, "config": [
                {"subnet": "172.28.0.0/16", "ip_range": "172.28.5.0/24", "gateway": "172.28.5.254",
                 "aux_addresses": {"host1": "172.28.1.5"}}]},
            "__x": {"x-owner": "me"}
        }}}))
        .unwrap();
        let n = &p.networks["front"];
        assert_eq!(n.driver_opts["com.docker.network.bridge.mtu"], "1400");
        assert_eq!(n.enable_ipv6, Some(true));
        assert_eq!(
            n.ipam.as_ref().unwrap().config[0].aux_addresses["host1"],
            "172.28.1.5"
        );
        assert_eq!(n.labels["a"], "b");
        assert_eq!(n.extensions["x-owner"], json!("me"));
        let again = project(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(again.networks["front"].ipam, n.ipam);
    }

    #[test]
    fn external_forms() {
        let p = project(json!({
            "volumes": {"a": {"external": true}, "b": {"external": {"name": "real-b"}}, "c": {"external": false, "driver": "local"}},
            "networks": {"n": {"external": {"name": "net"}}},
            "secrets": {"s": {"external": {}}}
        }))
        .unwrap();
        assert_eq!(p.volumes["a"].external, Some(true));
        assert_eq!(p.volumes["b"].external, Some(true));
        assert_eq!(p.volumes["b"].name.as_deref(), Some("real-b"));
        assert_eq!(p.networks["n"].name.as_deref(), Some("net"));
        assert_eq!(p.secrets["s"].external, Some(true));
        assert_eq!(
            serde_json::to_value(&p.volumes["b"]).unwrap(),
            json!({"external": true, "name": "real-b"})
        );
    }

    #[test]
    fn external_refusals() {
        let err =
            project(json!({"volumes": {"v": {"external": true, "driver": "foobar"}}})).unwrap_err();
        assert!(
            err.contains("conflicting parameters \"external\" and \"driver\" specified"),
            "{err}"
        );
        let err = project(json!({"volumes": {"v": {"external": true, "driver_opts": {"a": "b"}}}}))
            .unwrap_err();
        assert!(
            err.contains("conflicting parameters \"external\" and \"driver_opts\" specified"),
            "{err}"
        );
        let err =
            project(json!({"volumes": {"v": {"external": true, "labels": ["a=b"]}}})).unwrap_err();
        assert!(
            err.contains("conflicting parameters \"external\" and \"labels\" specified"),
            "{err}"
        );
        let err = project(json!({"volumes": {"v": {"name": "user", "external": {"name": "ext"}}}}))
            .unwrap_err();
        assert!(
            err.contains("`name` and `external.name` conflict; only use `name`"),
            "{err}"
        );
        let err =
            project(json!({"networks": {"n": {"name": "user", "external": {"name": "ext"}}}}))
                .unwrap_err();
        assert!(err.contains("`name` and `external.name` conflict"), "{err}");
        let err = project(json!({"secrets": {"s": {"name": "user", "external": {"name": "ext"}}}}))
            .unwrap_err();
        assert!(err.contains("`name` and `external.name` conflict"), "{err}");
        let err = project(json!({"volumes": {"v": {"external": {"nme": "x"}}}})).unwrap_err();
        assert!(err.contains("unknown field `nme`"), "{err}");
        let err = project(json!({"volumes": {"v": {"external": "maybe"}}})).unwrap_err();
        assert!(err.contains("invalid external \"maybe\""), "{err}");
    }

    #[test]
    fn secrets_and_configs() {
        let p = project(json!({
            "secrets": {"a": {"file": "./a.txt"}, "b": {"environment": "TOKEN"}, "c": {"external": true, "name": "prod_c"},
                        "d": {"driver": "vault", "driver_opts": {"path": "x"}, "labels": {"k": "v"}}},
            "configs": {"x": {"content": "hello ${NAME}", "template_driver": "golang"}}
        }))
        .unwrap();
        assert_eq!(p.secrets["a"].file.as_deref(), Some("./a.txt"));
        assert_eq!(p.secrets["b"].environment.as_deref(), Some("TOKEN"));
        assert_eq!(p.configs["x"].template_driver.as_deref(), Some("golang"));
        let err = project(json!({"configs": {"x": {"file": "a", "content": "b"}}})).unwrap_err();
        assert!(
            err.contains("only one of `file`, `environment` and `content` may be set"),
            "{err}"
        );
        let err = project(json!({"secrets": {"x": {"external": true, "file": "a"}}})).unwrap_err();
        assert!(
            err.contains("conflicting parameters \"external\" and \"file\""),
            "{err}"
        );
        let err = project(json!({"secrets": {"x": {"fiel": "a"}}})).unwrap_err();
        assert!(err.contains("unknown field `fiel`"), "{err}");
    }

    #[test]
    fn models() {
        let p = project(
            json!({"models": {"llm": {"model": "ai/smollm2", "context_size": 1024,
            "runtime_flags": ["--no-prefill"], "name": "small"}}}),
        )
        .unwrap();
        assert_eq!(p.models["llm"].model, "ai/smollm2");
        assert_eq!(p.models["llm"].context_size, Some(1024));
        let err = project(json!({"models": {"llm": {"name": "x"}}})).unwrap_err();
        assert!(err.contains("missing field `model`"), "{err}");
    }

    #[test]
    fn project_round_trips() {
        let p = project(json!({
            "name": "shop",
            "services": {
                "web": {"image": "nginx", "ports": ["8080:80"], "depends_on": ["db"], "networks": ["front", "back"],
                        "secrets": ["token"], "configs": ["site"], "volumes": ["static:/srv"]},
                "db": {"image": "postgres:16", "volumes": ["db-data:/var/lib/postgresql/data"], "networks": {"back": null},
                       "healthcheck": {"test": "pg_isready", "interval": "5s"}, "models": ["llm"]},
                "bare": null
            },
            "networks": {"front": null, "back": {"internal": true, "ipam": {"config": [{"subnet": "10.5.0.0/16"}]}},
                         "outside": {"external": {"name": "corp"}}},
            "volumes": {"db-data": {"driver": "local", "labels": {"backup": "daily"}}, "static": null},
            "secrets": {"token": {"environment": "TOKEN"}},
            "configs": {"site": {"file": "./site.conf"}},
            "models": {"llm": {"model": "ai/smollm2"}}
        }))
        .unwrap();
        assert_eq!(p.services["bare"], Service::default());
        assert_eq!(p.networks["outside"].name.as_deref(), Some("corp"));
        let printed = serde_json::to_value(&p).unwrap();
        assert_eq!(project(printed.clone()).unwrap(), p);
        assert_eq!(
            printed["networks"]["outside"],
            json!({"external": true, "name": "corp"})
        );
        let keys: Vec<&String> = printed.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["configs", "models", "name", "networks", "secrets", "services", "volumes"]
        );
    }

    #[test]
    fn unknown_top_level_key() {
        let err = project(json!({"service": {}})).unwrap_err();
        assert!(err.contains("unknown field `service`"), "{err}");
    }
}
