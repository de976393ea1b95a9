//! `env_file` and `extra_hosts`: attributes with a short list form and a long form.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::de::{long_form_strict, yes};

/// One `env_file` entry, in the long syntax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct EnvFile {
    /// `raw` reads values as-is, without Compose's quoting and interpolation rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub path: String,
    /// A missing file is an error unless `required: false`; Compose defaults to true.
    #[serde(default = "yes")]
    pub required: bool,
}

impl EnvFile {
    pub fn new(path: impl Into<String>) -> Self {
        EnvFile {
            format: None,
            path: path.into(),
            required: true,
        }
    }
}

struct EnvFileVisitor;

impl<'de> Visitor<'de> for EnvFileVisitor {
    type Value = EnvFile;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a path or a mapping with `path`, `required` and `format`")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvFile, E> {
        Ok(EnvFile::new(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EnvFile, A::Error> {
        long_form_strict(map, EnvFile::deserialize)
    }
}

impl<'de> Deserialize<'de> for EnvFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EnvFileVisitor)
    }
}

impl Serialize for EnvFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EnvFile::serialize(self, s)
    }
}

struct EnvFilesVisitor;

impl<'de> Visitor<'de> for EnvFilesVisitor {
    type Value = Vec<EnvFile>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a path or a list of paths or `{path, required, format}` mappings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(vec![EnvFile::new(v)])
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<EnvFile>()? {
            out.push(item);
        }
        Ok(out)
    }
}

/// The `env_file` field: one path, or a list of paths and long-form entries.
pub(crate) fn env_files<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EnvFile>, D::Error> {
    d.deserialize_any(EnvFilesVisitor)
}

/// The `extra_hosts` address Docker (and Podman) replace by the host's address, as the
/// container reaches it.
pub const HOST_GATEWAY: &str = "host-gateway";

/// `extra_hosts`: host name → addresses, in the order written.
///
/// Read from a list of `HOST=IP` (or the older `HOST:IP`; `IP` may list several
/// addresses separated by commas) or from a mapping of host to address(es). IPv6
/// brackets are removed. Printed as the list `HOST=IP`, one line per address, which is
/// what `docker compose config` prints and what reads back unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtraHosts(pub IndexMap<String, Vec<String>>);

impl ExtraHosts {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn add(&mut self, host: &str, ips: impl IntoIterator<Item = String>) -> Result<(), String> {
        if host.is_empty() || host.contains([':', '=']) {
            return Err(format!("invalid extra host name {host:?}"));
        }
        let ips = ips.into_iter().map(|ip| {
            match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
                Some(inner) => inner.to_owned(),
                None => ip,
            }
        });
        self.0.entry(host.to_owned()).or_default().extend(ips);
        Ok(())
    }
}

struct ExtraHostsVisitor;

impl<'de> Visitor<'de> for ExtraHostsVisitor {
    type Value = ExtraHosts;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of HOST=IP strings or a mapping of host to IP address(es)")
    }
    fn visit_unit<E: de::Error>(self) -> Result<ExtraHosts, E> {
        Ok(ExtraHosts::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ExtraHosts, A::Error> {
        let mut hosts = ExtraHosts::default();
        while let Some(entry) = seq.next_element::<String>()? {
            let Some((host, ips)) = entry.split_once('=').or_else(|| entry.split_once(':')) else {
                return Err(de::Error::custom(format!(
                    "invalid extra host {entry:?}: expected HOST=IP"
                )));
            };
            hosts
                .add(host, ips.split(',').map(str::to_owned))
                .map_err(|e| de::Error::custom(format!("invalid extra host {entry:?}: {e}")))?;
        }
        Ok(hosts)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExtraHosts, A::Error> {
        let mut hosts = ExtraHosts::default();
        while let Some(host) = map.next_key::<String>()? {
            let IpList(ips) = map.next_value()?;
            hosts.add(&host, ips).map_err(de::Error::custom)?;
        }
        Ok(hosts)
    }
}

/// The value of one host in the mapping form: an address, a list of them, or null.
struct IpList(Vec<String>);

impl<'de> Deserialize<'de> for IpList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IpList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an IP address or a list of IP addresses")
            }
            fn visit_unit<E: de::Error>(self) -> Result<IpList, E> {
                Ok(IpList(vec![String::new()]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IpList, E> {
                Ok(IpList(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IpList, A::Error> {
                let mut out = Vec::new();
                while let Some(ip) = seq.next_element::<String>()? {
                    out.push(ip);
                }
                Ok(IpList(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ExtraHosts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ExtraHostsVisitor)
    }
}

impl Serialize for ExtraHosts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for (host, ips) in &self.0 {
            for ip in ips {
                seq.serialize_element(&format!("{host}={ip}"))?;
            }
        }
        seq.end()
    }
}

/// `label_file`: one path or a list of them.
pub(crate) fn label_files<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    super::de::string_or_list(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct S {
        #[serde(default, deserialize_with = "env_files")]
        env_file: Vec<EnvFile>,
        #[serde(default)]
        extra_hosts: ExtraHosts,
    }

    fn s(v: serde_json::Value) -> Result<S, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn env_file_string() {
        let s = s(json!({"env_file": ".env"})).unwrap();
        assert_eq!(s.env_file, [EnvFile::new(".env")]);
    }

    #[test]
    fn env_file_list_and_long() {
        let s = s(json!({"env_file": ["./a.env", {"path": "./b.env", "required": false, "format": "raw"}, {"path": "c"}]})).unwrap();
        assert_eq!(s.env_file[0], EnvFile::new("./a.env"));
        assert_eq!(
            s.env_file[1],
            EnvFile {
                format: Some("raw".into()),
                path: "./b.env".into(),
                required: false
            }
        );
        assert!(s.env_file[2].required);
        assert_eq!(
            serde_json::to_value(&s.env_file[1]).unwrap(),
            json!({"format": "raw", "path": "./b.env", "required": false})
        );
    }

    #[test]
    fn env_file_refusals() {
        let err = s(json!({"env_file": [{"required": false}]})).unwrap_err();
        assert!(err.contains("missing field `path`"), "{err}");
        let err = s(json!({"env_file": [{"path": "a", "x-y": 1}]})).unwrap_err();
        assert!(err.contains("unknown field `x-y`"), "{err}");
        let err = s(json!({"env_file": 3})).unwrap_err();
        assert!(err.contains("a path or a list of paths"), "{err}");
    }

    #[test]
    fn extra_hosts_list() {
        let s = s(
            json!({"extra_hosts": ["somehost=162.242.195.82", "otherhost:50.31.209.229",
            "myhostv6=[::1]", "old6:::1", "multi=10.0.0.1,10.0.0.2", "somehost=1.2.3.4"]}),
        )
        .unwrap();
        let h = &s.extra_hosts.0;
        assert_eq!(h["somehost"], ["162.242.195.82", "1.2.3.4"]);
        assert_eq!(h["otherhost"], ["50.31.209.229"]);
        assert_eq!(h["myhostv6"], ["::1"]);
        assert_eq!(h["old6"], ["::1"]);
        assert_eq!(h["multi"], ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn extra_hosts_map() {
        let s = s(
            json!({"extra_hosts": {"somehost": "162.242.195.82", "v6": "[::1]",
            "many": ["1.1.1.1", "2.2.2.2"], "gw": "host-gateway"}}),
        )
        .unwrap();
        let h = &s.extra_hosts.0;
        assert_eq!(h["v6"], ["::1"]);
        assert_eq!(h["many"], ["1.1.1.1", "2.2.2.2"]);
        assert_eq!(h["gw"], ["host-gateway"]);
        assert_eq!(
            serde_json::to_value(&s.extra_hosts).unwrap(),
            json!([
                "somehost=162.242.195.82",
                "v6=::1",
                "many=1.1.1.1",
                "many=2.2.2.2",
                "gw=host-gateway"
            ])
        );
    }

    #[test]
    fn extra_hosts_refusals() {
        let err = s(json!({"extra_hosts": ["nohost"]})).unwrap_err();
        assert!(
            err.contains("invalid extra host \"nohost\": expected HOST=IP"),
            "{err}"
        );
        let err = s(json!({"extra_hosts": ["=1.2.3.4"]})).unwrap_err();
        assert!(err.contains("invalid extra host name \"\""), "{err}");
        let err = s(json!({"extra_hosts": "a=b"})).unwrap_err();
        assert!(
            err.contains("a list of HOST=IP strings or a mapping"),
            "{err}"
        );
    }
}
