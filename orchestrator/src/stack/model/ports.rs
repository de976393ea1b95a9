//! `ports`: the short syntax `[[IP:]HOST:]CONTAINER[/PROTOCOL]` and the long syntax,
//! normalized to one long entry per container port as Compose does.
//!
//! Short syntax rules (the Specification, read as docker's `nat.ParsePortSpec` reads it):
//! - the container part is after the last `:`; before it comes the host port (or range),
//!   and before that the host IP, which may be IPv6 with or without brackets
//!   (`[::1]:6001:6001`, `::1:6000:6000`);
//! - a container range expands to one entry per port; a host range must then have the
//!   same length (`9090-9091:8080-8081` → 9090→8080, 9091→8081);
//! - a host range with a single container port stays a range in `published`
//!   (`8000-9000:80`), meaning "any free port in the range";
//! - an empty host port (`127.0.0.1::80`) lets the engine pick one.

use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::de::{long_form, scalar, string_enum, Scalar};
use super::Extensions;

string_enum! {
    /// Transport protocol of a port; Compose lower-cases what users write.
    #[derive(Default)]
    pub enum Protocol ("port protocol") {
        #[default]
        Tcp = "tcp",
        Udp = "udp",
        Sctp = "sctp",
    }
}

string_enum! {
    /// `ingress` (the default) or `host`, as in Compose's long syntax.
    #[derive(Default)]
    pub enum PortMode ("port mode") {
        #[default]
        Ingress = "ingress",
        Host = "host",
    }
}

/// One published or exposed container port, in the long syntax.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Port {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// Without brackets for IPv6 (`::1`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "host_ip"
    )]
    pub host_ip: Option<String>,
    #[serde(default)]
    pub mode: PortMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "protocol")]
    pub protocol: Protocol,
    /// The host port, or a host range (`"8000-8010"`) to pick a free port from; `None`
    /// lets the engine choose.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "published"
    )]
    pub published: Option<String>,
    #[serde(deserialize_with = "target")]
    pub target: u16,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// Parses `text` as one port number, naming it `what` in errors.
fn port_number(spec: &str, what: &str, text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid port {spec:?}: {what} {text:?} is not a number"
        ));
    }
    text.parse::<u16>()
        .map_err(|_| format!("invalid port {spec:?}: {what} {text} is larger than 65535"))
}

/// Parses `N` or `N-M` into an inclusive range.
fn port_range(spec: &str, what: &str, text: &str) -> Result<(u16, u16), String> {
    match text.split_once('-') {
        None => port_number(spec, what, text).map(|p| (p, p)),
        Some((a, b)) => {
            let start = port_number(spec, what, a)?;
            let end = port_number(spec, what, b)?;
            if end < start {
                return Err(format!(
                    "invalid port {spec:?}: {what} range {text} ends before it starts"
                ));
            }
            Ok((start, end))
        }
    }
}

/// Strips IPv6 brackets and checks the address.
fn parse_host_ip(spec: &str, text: &str) -> Result<String, String> {
    let ip = match text.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(|| {
            format!("invalid port {spec:?}: host IP {text:?} opens a bracket it does not close")
        })?,
        None => text,
    };
    ip.parse::<IpAddr>()
        .map_err(|_| format!("invalid port {spec:?}: host IP {text:?} is not an IP address"))?;
    Ok(ip.to_owned())
}

fn parse_protocol(spec: &str, text: &str) -> Result<Protocol, String> {
    text.to_ascii_lowercase()
        .parse()
        .map_err(|e: String| format!("invalid port {spec:?}: {e}"))
}

/// Expands one short-syntax port into long entries.
pub fn parse_port_spec(spec: &str) -> Result<Vec<Port>, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let n = parts.len();
    let (ip, host, container) = match n {
        1 => ("", "", parts[0]),
        2 => ("", parts[0], parts[1]),
        3 => (parts[0], parts[1], parts[2]),
        _ => {
            let ip_len = parts[..n - 2].iter().map(|p| p.len() + 1).sum::<usize>() - 1;
            (&spec[..ip_len], parts[n - 2], parts[n - 1])
        }
    };
    let (container, protocol) = match container.split_once('/') {
        Some((port, "")) => (port, Protocol::Tcp),
        Some((port, proto)) => (port, parse_protocol(spec, proto)?),
        None => (container, Protocol::Tcp),
    };
    if container.is_empty() {
        return Err(format!("invalid port {spec:?}: no container port"));
    }
    let host_ip = match ip {
        "" => None,
        ip => Some(parse_host_ip(spec, ip)?),
    };
    let (start, end) = port_range(spec, "container port", container)?;
    if start == 0 {
        return Err(format!(
            "invalid port {spec:?}: container port 0 is not a port"
        ));
    }
    let host_range = match host {
        "" => None,
        h => Some(port_range(spec, "host port", h)?),
    };
    if let Some((hstart, hend)) = host_range {
        if end != start && hend - hstart != end - start {
            return Err(format!(
                "invalid port {spec:?}: host range {host} and container range {container} have different lengths"
            ));
        }
    }
    Ok((start..=end)
        .map(|target| {
            let published = host_range.map(|(hstart, hend)| {
                if start == end && hstart != hend {
                    format!("{hstart}-{hend}")
                } else {
                    (hstart + (target - start)).to_string()
                }
            });
            Port {
                host_ip: host_ip.clone(),
                protocol,
                published,
                target,
                ..Port::default()
            }
        })
        .collect())
}

// --- long-syntax fields -----------------------------------------------------------------

fn target<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let text = match scalar(d, "a container port number")? {
        Scalar::Int(i) => i.to_string(),
        Scalar::Str(s) => s,
        other => {
            return Err(de::Error::custom(format!(
                "invalid target {}: expected a port number from 1 to 65535",
                other.describe()
            )))
        }
    };
    let port = port_number(&text, "target", &text).map_err(|_| {
        de::Error::custom(format!(
            "invalid target {text:?}: expected a port number from 1 to 65535"
        ))
    })?;
    if port == 0 {
        return Err(de::Error::custom(
            "invalid target 0: expected a port number from 1 to 65535",
        ));
    }
    Ok(port)
}

fn published<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = match scalar(d, "a host port or range")? {
        Scalar::Null => return Ok(None),
        Scalar::Int(i) => i.to_string(),
        Scalar::Str(s) => s,
        other => {
            return Err(de::Error::custom(format!(
                "invalid published port {}: expected a port number or a range like \"8000-8010\"",
                other.describe()
            )))
        }
    };
    if text.is_empty() {
        return Ok(None);
    }
    port_range(&text, "published port", &text).map_err(|_| {
        de::Error::custom(format!(
            "invalid published port {text:?}: expected a port number up to 65535 or a range like \"8000-8010\""
        ))
    })?;
    Ok(Some(text))
}

fn host_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    parse_host_ip(&text, &text)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("invalid host_ip {text:?}: not an IP address")))
}

fn protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    let text = String::deserialize(d)?;
    text.to_ascii_lowercase().parse().map_err(de::Error::custom)
}

// --- serde ------------------------------------------------------------------------------

/// One item of a `ports` list: a short spec (possibly a range, so several entries) or a
/// long-syntax mapping.
struct PortItem(Vec<Port>);

struct PortItemVisitor;

impl<'de> Visitor<'de> for PortItemVisitor {
    type Value = PortItem;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a port number, a string like \"8080:80\", or a mapping with `target`")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortItem, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortItem, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<PortItem, E> {
        parse_port_spec(v).map(PortItem).map_err(E::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PortItem, A::Error> {
        long_form(map, Port::deserialize).map(|p| PortItem(vec![p]))
    }
}

impl<'de> Deserialize<'de> for PortItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PortItemVisitor)
    }
}

/// A single port; a short spec must give exactly one (ranges belong in `ports` lists).
impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let PortItem(mut ports) = PortItem::deserialize(d)?;
        if ports.len() != 1 {
            return Err(de::Error::custom(format!(
                "port range expands to {} ports; write it in a list of ports",
                ports.len()
            )));
        }
        Ok(ports.remove(0))
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Port::serialize(self, s)
    }
}

/// The `ports` field: every item expanded and flattened, in the order written.
pub(crate) fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Port>, D::Error> {
    let items = Option::<Vec<PortItem>>::deserialize(d)?.unwrap_or_default();
    Ok(items.into_iter().flat_map(|i| i.0).collect())
}

/// The `expose` field: ports or ranges with an optional protocol, kept as text.
pub(crate) fn expose<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = super::de::text_list(d)?;
    for item in &items {
        let (range, proto) = match item.split_once('/') {
            Some((r, p)) => (r, Some(p)),
            None => (item.as_str(), None),
        };
        port_range(item, "port", range).map_err(|_| {
            de::Error::custom(format!(
                "invalid exposed port {item:?}: expected a port or range with an optional protocol, like \"8080-8085/tcp\""
            ))
        })?;
        if let Some(p) = proto {
            parse_protocol(item, p).map_err(de::Error::custom)?;
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn short(spec: &str) -> Vec<(Option<String>, Option<String>, u16, Protocol)> {
        parse_port_spec(spec)
            .unwrap()
            .into_iter()
            .map(|p| (p.host_ip, p.published, p.target, p.protocol))
            .collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn container_port_only() {
        assert_eq!(short("3000"), [(None, None, 3000, Protocol::Tcp)]);
    }

    #[test]
    fn container_range() {
        let ports = short("3000-3002");
        assert_eq!(ports.len(), 3);
        assert_eq!(ports[2], (None, None, 3002, Protocol::Tcp));
    }

    #[test]
    fn host_and_container() {
        assert_eq!(short("8000:8000"), [(None, s("8000"), 8000, Protocol::Tcp)]);
        assert_eq!(short("49100:22"), [(None, s("49100"), 22, Protocol::Tcp)]);
    }

    #[test]
    fn ranges_pairwise() {
        assert_eq!(
            short("9090-9091:8080-8081"),
            [
                (None, s("9090"), 8080, Protocol::Tcp),
                (None, s("9091"), 8081, Protocol::Tcp)
            ]
        );
    }

    #[test]
    fn host_range_single_container() {
        assert_eq!(
            short("8000-9000:80"),
            [(None, s("8000-9000"), 80, Protocol::Tcp)]
        );
    }

    #[test]
    fn host_ip() {
        assert_eq!(
            short("127.0.0.1:8001:8001"),
            [(s("127.0.0.1"), s("8001"), 8001, Protocol::Tcp)]
        );
        let ports = short("127.0.0.1:5000-5010:5000-5010");
        assert_eq!(ports.len(), 11);
        assert_eq!(ports[10], (s("127.0.0.1"), s("5010"), 5010, Protocol::Tcp));
    }

    #[test]
    fn ipv6_host_ip() {
        assert_eq!(
            short("[::1]:6001:6001"),
            [(s("::1"), s("6001"), 6001, Protocol::Tcp)]
        );
        assert_eq!(
            short("::1:6000:6000"),
            [(s("::1"), s("6000"), 6000, Protocol::Tcp)]
        );
    }

    #[test]
    fn empty_host_port() {
        assert_eq!(
            short("0.0.0.0::80"),
            [(s("0.0.0.0"), None, 80, Protocol::Tcp)]
        );
    }

    #[test]
    fn protocols() {
        assert_eq!(
            short("6060:6060/udp"),
            [(None, s("6060"), 6060, Protocol::Udp)]
        );
        assert_eq!(short("53/UDP"), [(None, None, 53, Protocol::Udp)]);
        assert_eq!(short("80/"), [(None, None, 80, Protocol::Tcp)]);
        assert_eq!(short("9/sctp"), [(None, None, 9, Protocol::Sctp)]);
    }

    fn refused(spec: &str) -> String {
        parse_port_spec(spec).unwrap_err()
    }

    #[test]
    fn refusals() {
        assert_eq!(
            refused("80:abc"),
            "invalid port \"80:abc\": container port \"abc\" is not a number"
        );
        assert_eq!(
            refused("abc:80"),
            "invalid port \"abc:80\": host port \"abc\" is not a number"
        );
        assert_eq!(
            refused("70000"),
            "invalid port \"70000\": container port 70000 is larger than 65535"
        );
        assert_eq!(
            refused("9090-9092:8080-8081"),
            "invalid port \"9090-9092:8080-8081\": host range 9090-9092 and container range 8080-8081 have different lengths"
        );
        assert_eq!(
            refused("80/xyz"),
            "invalid port \"80/xyz\": invalid port protocol \"xyz\": expected \"tcp\", \"udp\" or \"sctp\""
        );
        assert_eq!(
            refused("1.2.3:80:80"),
            "invalid port \"1.2.3:80:80\": host IP \"1.2.3\" is not an IP address"
        );
        assert_eq!(refused("80:"), "invalid port \"80:\": no container port");
        assert_eq!(
            refused("90-80"),
            "invalid port \"90-80\": container port range 90-80 ends before it starts"
        );
        assert_eq!(
            refused("0"),
            "invalid port \"0\": container port 0 is not a port"
        );
        assert!(refused("[::1:80:80").contains("opens a bracket"));
    }

    #[derive(Debug, Deserialize)]
    struct Svc {
        #[serde(deserialize_with = "ports")]
        ports: Vec<Port>,
    }

    fn list(v: serde_json::Value) -> Result<Vec<Port>, String> {
        serde_json::from_value::<Svc>(json!({ "ports": v }))
            .map(|s| s.ports)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn list_mixes_numbers_strings_and_long_form() {
        let ports =
            list(json!([80, "3000-3001", {"target": 443, "published": 8443, "x-note": "tls"}]))
                .unwrap();
        assert_eq!(ports.len(), 4);
        assert_eq!(ports[0].target, 80);
        assert_eq!(ports[2].target, 3001);
        assert_eq!(ports[3].published.as_deref(), Some("8443"));
        assert_eq!(ports[3].mode, PortMode::Ingress);
        assert_eq!(ports[3].protocol, Protocol::Tcp);
        assert_eq!(ports[3].extensions["x-note"], json!("tls"));
    }

    #[test]
    fn long_form_fields() {
        let ports = list(json!([{
            "name": "web", "target": "80", "host_ip": "[::1]", "published": "8083-9000",
            "protocol": "UDP", "app_protocol": "http", "mode": "host"
        }]))
        .unwrap();
        let p = &ports[0];
        assert_eq!(p.name.as_deref(), Some("web"));
        assert_eq!(p.target, 80);
        assert_eq!(p.host_ip.as_deref(), Some("::1"));
        assert_eq!(p.published.as_deref(), Some("8083-9000"));
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.mode, PortMode::Host);
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            json!({"app_protocol": "http", "host_ip": "::1", "mode": "host", "name": "web",
                   "protocol": "udp", "published": "8083-9000", "target": 80})
        );
    }

    #[test]
    fn long_form_refusals() {
        let err = list(json!([{"target": "http"}])).unwrap_err();
        assert!(
            err.contains("invalid target \"http\": expected a port number from 1 to 65535"),
            "{err}"
        );
        let err = list(json!([{"target": 80, "published": "80-"}])).unwrap_err();
        assert!(err.contains("invalid published port \"80-\""), "{err}");
        let err = list(json!([{"target": 80, "mode": "bridge"}])).unwrap_err();
        assert!(
            err.contains("invalid port mode \"bridge\": expected \"ingress\" or \"host\""),
            "{err}"
        );
        let err = list(json!([{"target": 80, "host_ip": "localhost"}])).unwrap_err();
        assert!(
            err.contains("invalid host_ip \"localhost\": not an IP address"),
            "{err}"
        );
        let err = list(json!([{"published": 80}])).unwrap_err();
        assert!(err.contains("missing field `target`"), "{err}");
        let err = list(json!([{"target": 80, "publish": 80}])).unwrap_err();
        assert!(err.contains("unknown field `publish`"), "{err}");
        let err = list(json!(["80:abc"])).unwrap_err();
        assert!(
            err.contains("invalid port \"80:abc\": container port \"abc\" is not a number"),
            "{err}"
        );
        let err = list(json!([true])).unwrap_err();
        assert!(
            err.contains("a port number, a string like \"8080:80\", or a mapping"),
            "{err}"
        );
    }

    #[test]
    fn single_port() {
        let p: Port = serde_json::from_value(json!("8080:80")).unwrap();
        assert_eq!(p.target, 80);
        let err = serde_json::from_value::<Port>(json!("80-81")).unwrap_err();
        assert!(
            err.to_string().contains("port range expands to 2 ports"),
            "{err}"
        );
    }

    #[test]
    fn round_trip() {
        let ports =
            list(json!(["127.0.0.1:8000-8001:80-81/udp", "8000-9000:80", {"target": 1, "x-a": 1}]))
                .unwrap();
        let printed = serde_json::to_value(&ports).unwrap();
        let mut again = list(printed).unwrap();
        again[3].extensions = ports[3].extensions.clone();
        assert_eq!(again, ports);
    }

    #[derive(Debug, Deserialize)]
    struct Exp {
        #[serde(deserialize_with = "expose")]
        expose: Vec<String>,
    }

    #[test]
    fn expose_items() {
        let e: Exp =
            serde_json::from_value(json!({"expose": [3000, "8000", "8080-8085/tcp"]})).unwrap();
        assert_eq!(e.expose, ["3000", "8000", "8080-8085/tcp"]);
        let err = serde_json::from_value::<Exp>(json!({"expose": ["http"]})).unwrap_err();
        assert!(
            err.to_string().contains("invalid exposed port \"http\""),
            "{err}"
        );
    }
}
