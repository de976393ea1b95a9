//! Per-container resource settings with a syntax of their own: `ulimits`,
//! `blkio_config` and `devices`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::de::long_form;
use super::units::ByteSize;
use super::Extensions;

/// One `ulimits` entry. A single number sets both limits, as the Specification says;
/// `-1` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Ulimit {
    pub hard: i64,
    pub soft: i64,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

impl Ulimit {
    pub fn both(limit: i64) -> Self {
        Ulimit {
            hard: limit,
            soft: limit,
            extensions: Extensions::new(),
        }
    }

    /// The kernel refuses a soft limit above the hard one; say so here instead.
    fn check(self) -> Result<Self, String> {
        let unlimited = |v: i64| v == -1;
        for v in [self.soft, self.hard] {
            if v < -1 {
                return Err(format!(
                    "invalid ulimit {v}: expected a number, or -1 for unlimited"
                ));
            }
        }
        if !unlimited(self.hard) && (unlimited(self.soft) || self.soft > self.hard) {
            return Err(format!(
                "invalid ulimit: the soft limit {} is above the hard limit {}",
                self.soft, self.hard
            ));
        }
        Ok(self)
    }
}

struct UlimitVisitor;

impl<'de> Visitor<'de> for UlimitVisitor {
    type Value = Ulimit;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a mapping with `soft` and `hard`")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ulimit, E> {
        Ulimit::both(v).check().map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ulimit, E> {
        let v =
            i64::try_from(v).map_err(|_| E::custom(format!("invalid ulimit {v}: too large")))?;
        self.visit_i64(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Ulimit, E> {
        let n = v
            .trim()
            .parse::<i64>()
            .map_err(|_| E::custom(format!("invalid ulimit {v:?}: expected a number")))?;
        self.visit_i64(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Ulimit, A::Error> {
        long_form(map, Ulimit::deserialize)?
            .check()
            .map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UlimitVisitor)
    }
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Ulimit::serialize(self, s)
    }
}

/// `blkio_config`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlkioConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<BlkioBytesLimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<BlkioIopsLimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<BlkioBytesLimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<BlkioIopsLimit>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_weight"
    )]
    pub weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<BlkioWeight>,
}

/// A bytes-per-second limit on one device.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlkioBytesLimit {
    pub path: String,
    pub rate: ByteSize,
}

/// An operations-per-second limit on one device.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlkioIopsLimit {
    pub path: String,
    pub rate: u64,
}

/// A relative weight for one device.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlkioWeight {
    pub path: String,
    #[serde(deserialize_with = "weight")]
    pub weight: u16,
}

/// Block IO weights are 10 to 1000 (0 leaves the default).
fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let w = u16::deserialize(d)?;
    if w != 0 && !(10..=1000).contains(&w) {
        return Err(de::Error::custom(format!(
            "invalid block IO weight {w}: expected 10 to 1000"
        )));
    }
    Ok(w)
}

fn opt_weight<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    weight(d).map(Some)
}

/// One `devices` entry: a host device made available in the container.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct DeviceMapping {
    /// cgroup access: some of `r`, `w`, `m`. Defaults to `rwm`.
    #[serde(default)]
    pub permissions: String,
    pub source: String,
    /// Defaults to the source path.
    #[serde(default)]
    pub target: String,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

impl DeviceMapping {
    fn with_defaults(mut self) -> Result<Self, String> {
        if self.source.is_empty() {
            return Err("a device mapping needs a `source` (the device on the host)".into());
        }
        if self.target.is_empty() {
            self.target = self.source.clone();
        }
        if self.permissions.is_empty() {
            self.permissions = "rwm".into();
        }
        Ok(self)
    }
}

/// Short syntax `HOST[:CONTAINER[:PERMISSIONS]]`.
pub fn parse_device(spec: &str) -> Result<DeviceMapping, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, permissions) = match parts.as_slice() {
        [s] => (*s, "", ""),
        [s, t] => (*s, *t, ""),
        [s, t, p] => (*s, *t, *p),
        _ => {
            return Err(format!(
                "invalid device {spec:?}: expected HOST[:CONTAINER[:PERMISSIONS]]; use the long syntax for paths with colons"
            ))
        }
    };
    DeviceMapping {
        permissions: permissions.into(),
        source: source.into(),
        target: target.into(),
        extensions: Extensions::new(),
    }
    .with_defaults()
    .map_err(|e| format!("invalid device {spec:?}: {e}"))
}

struct DeviceVisitor;

impl<'de> Visitor<'de> for DeviceVisitor {
    type Value = DeviceMapping;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a device string like \"/dev/ttyUSB0:/dev/ttyUSB0:rwm\" or a mapping with `source`",
        )
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<DeviceMapping, E> {
        parse_device(v).map_err(E::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DeviceMapping, A::Error> {
        long_form(map, DeviceMapping::deserialize)?
            .with_defaults()
            .map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for DeviceMapping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DeviceVisitor)
    }
}

impl Serialize for DeviceMapping {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DeviceMapping::serialize(self, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ulimit(v: serde_json::Value) -> Result<Ulimit, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn ulimit_forms() {
        assert_eq!(ulimit(json!(65535)).unwrap(), Ulimit::both(65535));
        assert_eq!(ulimit(json!("65535")).unwrap(), Ulimit::both(65535));
        assert_eq!(ulimit(json!(-1)).unwrap(), Ulimit::both(-1));
        let u = ulimit(json!({"soft": 20000, "hard": 40000})).unwrap();
        assert_eq!((u.soft, u.hard), (20000, 40000));
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"hard": 40000, "soft": 20000})
        );
        let u = ulimit(json!({"soft": -1, "hard": -1})).unwrap();
        assert_eq!(u, Ulimit::both(-1));
    }

    #[test]
    fn ulimit_refusals() {
        let err = ulimit(json!({"soft": 20})).unwrap_err();
        assert!(err.contains("missing field `hard`"), "{err}");
        let err = ulimit(json!({"soft": 20, "hard": 10})).unwrap_err();
        assert_eq!(
            err,
            "invalid ulimit: the soft limit 20 is above the hard limit 10"
        );
        let err = ulimit(json!("many")).unwrap_err();
        assert_eq!(err, "invalid ulimit \"many\": expected a number");
        let err = ulimit(json!(-5)).unwrap_err();
        assert_eq!(
            err,
            "invalid ulimit -5: expected a number, or -1 for unlimited"
        );
    }

    #[test]
    fn blkio() {
        let b: BlkioConfig = serde_json::from_value(json!({
            "weight": 300,
            "weight_device": [{"path": "/dev/sda", "weight": 400}],
            "device_read_bps": [{"path": "/dev/sdb", "rate": "12mb"}],
            "device_read_iops": [{"path": "/dev/sdb", "rate": 120}],
            "device_write_bps": [{"path": "/dev/sdb", "rate": 1024}],
            "device_write_iops": [{"path": "/dev/sdb", "rate": 30}]
        }))
        .unwrap();
        assert_eq!(b.device_read_bps[0].rate, ByteSize(12 << 20));
        assert_eq!(b.device_read_iops[0].rate, 120);
        assert_eq!(b.weight, Some(300));
        let err = serde_json::from_value::<BlkioConfig>(json!({"weight": 5})).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid block IO weight 5: expected 10 to 1000"),
            "{err}"
        );
    }

    fn device(v: serde_json::Value) -> Result<DeviceMapping, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn device_short() {
        let d = device(json!("/dev/ttyUSB0")).unwrap();
        assert_eq!(
            (d.source.as_str(), d.target.as_str(), d.permissions.as_str()),
            ("/dev/ttyUSB0", "/dev/ttyUSB0", "rwm")
        );
        let d = device(json!("/dev/sda:/dev/xvda:r")).unwrap();
        assert_eq!(
            (d.source.as_str(), d.target.as_str(), d.permissions.as_str()),
            ("/dev/sda", "/dev/xvda", "r")
        );
        let d = device(json!("vendor.com/class=name")).unwrap();
        assert_eq!(d.target, "vendor.com/class=name");
    }

    #[test]
    fn device_long() {
        let d =
            device(json!({"source": "/dev/source", "target": "/dev/target", "permissions": "rw"}))
                .unwrap();
        assert_eq!(d.permissions, "rw");
        let d = device(json!({"source": "/dev/source"})).unwrap();
        assert_eq!(
            (d.target.as_str(), d.permissions.as_str()),
            ("/dev/source", "rwm")
        );
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"permissions": "rwm", "source": "/dev/source", "target": "/dev/source"})
        );
    }

    #[test]
    fn device_refusals() {
        let err = device(json!("/a:/b:rw:x")).unwrap_err();
        assert!(
            err.starts_with(
                "invalid device \"/a:/b:rw:x\": expected HOST[:CONTAINER[:PERMISSIONS]]"
            ),
            "{err}"
        );
        let err = device(json!({"target": "/dev/x"})).unwrap_err();
        assert!(err.contains("missing field `source`"), "{err}");
    }
}
