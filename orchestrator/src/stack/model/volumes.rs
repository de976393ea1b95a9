//! Service `volumes`: the short syntax `[SOURCE:]TARGET[:MODE]` and the long syntax,
//! normalized to the long syntax as Compose does.
//!
//! Short syntax rules (the Specification, read as compose-go's `ParseVolume` reads it):
//! - one part is an anonymous volume at that target; two are `SOURCE:TARGET`; three add
//!   comma-separated options; an empty part or a fourth part is an error;
//! - a drive letter (`C:\data`, `C:/data`) is part of a path, not a separator;
//! - a source that starts with `.`, `/`, `~`, `\\` or a drive letter is a host path
//!   (type `bind`, with `create_host_path: true` as legacy docker-compose did); any other
//!   source names a volume (type `volume`);
//! - options: `ro`/`rw`, `nocopy` (volumes), `z`/`Z` (SELinux relabel), a propagation
//!   (`shared`, `slave`, `private`, `rshared`, `rslave`, `rprivate`; binds) and a
//!   consistency (`consistent`, `cached`, `delegated`). Compose ignores anything else;
//!   here it is an error, since a typo there (`:r0`) would silently mount read-write.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::de::{is_false, long_form, mapping, string_enum, yes};
use super::units::{ByteSize, FileMode};
use super::Extensions;

string_enum! {
    /// What a service volume mounts.
    pub enum VolumeType ("volume type") {
        Bind = "bind",
        Volume = "volume",
        Tmpfs = "tmpfs",
        Npipe = "npipe",
        Cluster = "cluster",
        Image = "image",
    }
}

string_enum! {
    /// Mount propagation of a bind mount.
    pub enum Propagation ("bind propagation") {
        Rprivate = "rprivate",
        Private = "private",
        Rshared = "rshared",
        Shared = "shared",
        Rslave = "rslave",
        Slave = "slave",
    }
}

string_enum! {
    /// SELinux relabelling: `z` shared between containers, `Z` private to this one.
    pub enum SeLinux ("SELinux relabel option") {
        Shared = "z",
        Private = "Z",
    }
}

string_enum! {
    /// How a bind mount treats submounts of its source.
    pub enum BindRecursive ("bind recursive mode") {
        Enabled = "enabled",
        Disabled = "disabled",
        Writable = "writable",
        Readonly = "readonly",
    }
}

/// One mount of a service, in the long syntax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ServiceVolume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// `consistent`, `cached` or `delegated`: a hint for file-sharing platforms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOptions>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// Host path (bind), volume name (volume; `None` for an anonymous volume), image
    /// reference (image) or pipe (npipe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
    #[serde(rename = "type")]
    pub kind: VolumeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// Options of a bind mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    /// Create the host path when missing. Compose defaults it to true, for the short
    /// syntax and for a `bind:` block that does not say otherwise.
    #[serde(default = "yes")]
    pub create_host_path: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<Propagation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<BindRecursive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<SeLinux>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            create_host_path: true,
            propagation: None,
            recursive: None,
            selinux: None,
            extensions: Extensions::new(),
        }
    }
}

/// Options of a volume mount.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    #[serde(
        default,
        skip_serializing_if = "indexmap::IndexMap::is_empty",
        deserialize_with = "mapping"
    )]
    pub labels: indexmap::IndexMap<String, String>,
    /// Do not copy the image's content at the target into a new volume.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nocopy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// Options of a tmpfs mount.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// Options of an image mount.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// `C:\…`, `C:/…`: a Windows drive path.
pub fn is_windows_drive_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && (b.len() == 2 || b[2] == b'\\' || b[2] == b'/')
}

/// Windows paths (drive letters and `\\` UNC or pipe paths) are kept as written.
pub fn is_windows_path(s: &str) -> bool {
    is_windows_drive_path(s) || s.starts_with("\\\\")
}

/// Whether a short-syntax source is a host path rather than a volume name.
pub fn is_host_path(source: &str) -> bool {
    source.starts_with(['.', '/', '~']) || is_windows_path(source)
}

fn is_absolute_target(target: &str) -> bool {
    target.starts_with('/') || is_windows_path(target)
}

const SHORT_OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "nocopy",
    "z",
    "Z",
    "shared",
    "slave",
    "private",
    "rshared",
    "rslave",
    "rprivate",
    "consistent",
    "cached",
    "delegated",
];

/// Parses one short-syntax volume.
pub fn parse_volume_spec(spec: &str) -> Result<ServiceVolume, String> {
    let bad = |why: String| format!("invalid volume {spec:?}: {why}");
    if spec.is_empty() {
        return Err("invalid volume \"\": empty volume spec".into());
    }
    // Split on `:`, except after a lone drive letter at the start of a part.
    let mut parts: Vec<String> = Vec::new();
    let mut part = String::new();
    for c in spec.chars() {
        if c == ':' && !(part.len() == 1 && part.as_bytes()[0].is_ascii_alphabetic()) {
            parts.push(std::mem::take(&mut part));
        } else {
            part.push(c);
        }
    }
    parts.push(part);
    if parts.iter().any(String::is_empty) {
        return Err(bad("empty section between colons".into()));
    }
    let (source, target, options) = match parts.as_slice() {
        [target] => (None, target.clone(), None),
        [source, target] => (Some(source.clone()), target.clone(), None),
        [source, target, options] => (Some(source.clone()), target.clone(), Some(options.as_str())),
        _ => {
            return Err(bad(
                "too many colons; the form is [SOURCE:]TARGET[:MODE]".into()
            ))
        }
    };
    if !is_absolute_target(&target) {
        return Err(bad(format!(
            "the path in the container {target:?} must be absolute"
        )));
    }
    let bind = source.as_deref().is_some_and(is_host_path);
    let mut volume = ServiceVolume {
        bind: bind.then(BindOptions::default),
        consistency: None,
        image: None,
        read_only: false,
        source,
        target,
        tmpfs: None,
        kind: if bind {
            VolumeType::Bind
        } else {
            VolumeType::Volume
        },
        volume: (!bind).then(VolumeOptions::default),
        extensions: Extensions::new(),
    };
    for option in options.into_iter().flat_map(|o| o.split(',')) {
        match option {
            "ro" => volume.read_only = true,
            "rw" => volume.read_only = false,
            "nocopy" if !bind => volume.volume.get_or_insert_with(Default::default).nocopy = true,
            "z" | "Z" => {
                let selinux = option.parse().ok();
                volume.bind.get_or_insert_with(Default::default).selinux = selinux;
            }
            "consistent" | "cached" | "delegated" => volume.consistency = Some(option.into()),
            _ => match option.parse::<Propagation>() {
                Ok(p) if bind => {
                    volume.bind.get_or_insert_with(Default::default).propagation = Some(p)
                }
                Ok(_) => {
                    return Err(bad(format!(
                        "option {option:?} only applies to bind mounts (a host path as source)"
                    )))
                }
                Err(_) if option == "nocopy" => {
                    return Err(bad(
                        "option \"nocopy\" only applies to volumes, not to a host path".into(),
                    ))
                }
                Err(_) => {
                    let mut why = format!(
                        "unknown option {option:?}, expected {}",
                        super::de::one_of(SHORT_OPTIONS)
                    );
                    if let Some(near) = super::de::suggest(option, SHORT_OPTIONS) {
                        why.push_str(&format!(" (did you mean {near:?}?)"));
                    }
                    return Err(bad(why));
                }
            },
        }
    }
    Ok(volume)
}

impl ServiceVolume {
    /// Checks the long syntax against the rules the engine would enforce later, so the
    /// error points at the file instead.
    fn check(&self) -> Result<(), String> {
        let kind = self.kind;
        let has_source = self.source.as_deref().is_some_and(|s| !s.is_empty());
        match kind {
            VolumeType::Bind | VolumeType::Npipe | VolumeType::Image | VolumeType::Cluster
                if !has_source =>
            {
                return Err(format!(
                    "a mount of type {:?} needs a `source`",
                    kind.as_str()
                ));
            }
            VolumeType::Tmpfs if has_source => {
                return Err("a mount of type \"tmpfs\" takes no `source`".into());
            }
            _ => {}
        }
        if self.target.is_empty() {
            return Err("a mount needs a `target`".into());
        }
        if !is_absolute_target(&self.target) {
            return Err(format!(
                "the mount target {:?} must be an absolute path in the container",
                self.target
            ));
        }
        // A named volume may still carry an SELinux relabel (`data:/x:z`), nothing else.
        let bind_ok = kind == VolumeType::Bind
            || (kind == VolumeType::Volume
                && self
                    .bind
                    .as_ref()
                    .is_some_and(|b| b.propagation.is_none() && b.recursive.is_none()));
        let blocks = [
            ("bind", self.bind.is_some(), bind_ok),
            ("volume", self.volume.is_some(), kind == VolumeType::Volume),
            ("tmpfs", self.tmpfs.is_some(), kind == VolumeType::Tmpfs),
            ("image", self.image.is_some(), kind == VolumeType::Image),
        ];
        for (name, present, allowed) in blocks {
            if present && !allowed {
                return Err(format!(
                    "`{name}` options do not apply to a mount of type {:?}",
                    kind.as_str()
                ));
            }
        }
        Ok(())
    }
}

struct VolumeVisitor;

impl<'de> Visitor<'de> for VolumeVisitor {
    type Value = ServiceVolume;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a volume string like \"./data:/data:ro\" or a mapping with `type` and `target`",
        )
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ServiceVolume, E> {
        parse_volume_spec(v).map_err(E::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ServiceVolume, A::Error> {
        let v = long_form(map, ServiceVolume::deserialize)?;
        v.check().map_err(de::Error::custom)?;
        Ok(v)
    }
}

impl<'de> Deserialize<'de> for ServiceVolume {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(VolumeVisitor)
    }
}

impl Serialize for ServiceVolume {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ServiceVolume::serialize(self, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn short(spec: &str) -> ServiceVolume {
        parse_volume_spec(spec).unwrap()
    }

    #[test]
    fn anonymous_volume() {
        let v = short("/data");
        assert_eq!(v.kind, VolumeType::Volume);
        assert_eq!(v.source, None);
        assert_eq!(v.target, "/data");
        assert_eq!(v.volume, Some(VolumeOptions::default()));
        assert_eq!(v.bind, None);
    }

    #[test]
    fn relative_bind() {
        let v = short("./cache:/tmp/cache");
        assert_eq!(v.kind, VolumeType::Bind);
        assert_eq!(v.source.as_deref(), Some("./cache"));
        assert_eq!(v.target, "/tmp/cache");
        assert!(v.bind.as_ref().unwrap().create_host_path);
        assert_eq!(v.volume, None);
        assert!(!v.read_only);
    }

    #[test]
    fn home_bind_read_only() {
        let v = short("~/configs:/etc/configs:ro");
        assert_eq!(v.kind, VolumeType::Bind);
        assert_eq!(v.source.as_deref(), Some("~/configs"));
        assert!(v.read_only);
    }

    #[test]
    fn named_volume_with_options() {
        let v = short("named:/var/lib/x:rw,nocopy");
        assert_eq!(v.kind, VolumeType::Volume);
        assert_eq!(v.source.as_deref(), Some("named"));
        assert!(!v.read_only);
        assert!(v.volume.as_ref().unwrap().nocopy);
    }

    #[test]
    fn windows_paths() {
        let v = short("C:\\path:/x");
        assert_eq!(v.kind, VolumeType::Bind);
        assert_eq!(v.source.as_deref(), Some("C:\\path"));
        assert_eq!(v.target, "/x");
        let v = short("c:/data:C:\\data:ro");
        assert_eq!(v.source.as_deref(), Some("c:/data"));
        assert_eq!(v.target, "C:\\data");
        assert!(v.read_only);
        let v = short("\\\\.\\pipe\\docker_engine:\\\\.\\pipe\\docker_engine");
        assert_eq!(v.kind, VolumeType::Bind);
        assert_eq!(v.target, "\\\\.\\pipe\\docker_engine");
    }

    #[test]
    fn bind_options() {
        let v = short("/src:/dst:ro,Z,rslave,cached");
        let bind = v.bind.unwrap();
        assert_eq!(bind.selinux, Some(SeLinux::Private));
        assert_eq!(bind.propagation, Some(Propagation::Rslave));
        assert_eq!(v.consistency.as_deref(), Some("cached"));
        assert!(v.read_only);
        let v = short("data:/dst:z");
        assert_eq!(v.kind, VolumeType::Volume);
        assert_eq!(v.bind.unwrap().selinux, Some(SeLinux::Shared));
        for mode in ["consistent", "delegated"] {
            assert_eq!(
                short(&format!("./a:/b:{mode}")).consistency.as_deref(),
                Some(mode)
            );
        }
    }

    fn refused(spec: &str) -> String {
        parse_volume_spec(spec).unwrap_err()
    }

    #[test]
    fn short_refusals() {
        assert_eq!(refused(""), "invalid volume \"\": empty volume spec");
        assert_eq!(
            refused("db::/b"),
            "invalid volume \"db::/b\": empty section between colons"
        );
        assert_eq!(
            refused("db:/b:ro:x"),
            "invalid volume \"db:/b:ro:x\": too many colons; the form is [SOURCE:]TARGET[:MODE]"
        );
        assert_eq!(
            refused("./a:/b:r0"),
            "invalid volume \"./a:/b:r0\": unknown option \"r0\", expected \"ro\", \"rw\", \"nocopy\", \"z\", \"Z\", \"shared\", \"slave\", \"private\", \"rshared\", \"rslave\", \"rprivate\", \"consistent\", \"cached\" or \"delegated\" (did you mean \"ro\"?)"
        );
        assert_eq!(
            refused("data:ro"),
            "invalid volume \"data:ro\": the path in the container \"ro\" must be absolute"
        );
        assert_eq!(
            refused("./a:/b:nocopy"),
            "invalid volume \"./a:/b:nocopy\": option \"nocopy\" only applies to volumes, not to a host path"
        );
        assert_eq!(
            refused("data:/b:rshared"),
            "invalid volume \"data:/b:rshared\": option \"rshared\" only applies to bind mounts (a host path as source)"
        );
    }

    fn long(v: serde_json::Value) -> Result<ServiceVolume, String> {
        serde_json::from_value::<ServiceVolume>(v).map_err(|e| e.to_string())
    }

    #[test]
    fn long_bind() {
        let v = long(json!({"type": "bind", "source": "./static", "target": "/opt/app/static",
            "read_only": true, "bind": {"propagation": "rshared", "selinux": "z", "recursive": "readonly"}}))
        .unwrap();
        assert_eq!(v.kind, VolumeType::Bind);
        let bind = v.bind.as_ref().unwrap();
        assert!(bind.create_host_path, "defaults to true in a bind block");
        assert_eq!(bind.recursive, Some(BindRecursive::Readonly));
        let v = long(json!({"type": "bind", "source": "/a", "target": "/b", "bind": {"create_host_path": false}})).unwrap();
        assert!(!v.bind.unwrap().create_host_path);
    }

    #[test]
    fn long_volume_tmpfs_image_npipe() {
        let v = long(json!({"type": "volume", "source": "db", "target": "/data",
            "volume": {"nocopy": true, "subpath": "sub", "labels": ["a=b"]}, "x-backup": true}))
        .unwrap();
        let opts = v.volume.as_ref().unwrap();
        assert!(opts.nocopy);
        assert_eq!(opts.subpath.as_deref(), Some("sub"));
        assert_eq!(opts.labels["a"], "b");
        assert_eq!(v.extensions["x-backup"], json!(true));

        let v = long(
            json!({"type": "tmpfs", "target": "/app", "tmpfs": {"size": "1kb", "mode": "01777"}}),
        )
        .unwrap();
        let t = v.tmpfs.unwrap();
        assert_eq!(t.size, Some(ByteSize(1024)));
        assert_eq!(t.mode, Some(FileMode(0o1777)));
        let v = long(json!({"type": "tmpfs", "target": "/app", "tmpfs": {"size": 1024}})).unwrap();
        assert_eq!(v.tmpfs.unwrap().size, Some(ByteSize(1024)));

        let v = long(json!({"type": "image", "source": "alpine", "target": "/mnt", "image": {"subpath": "etc"}})).unwrap();
        assert_eq!(v.image.unwrap().subpath.as_deref(), Some("etc"));

        let v =
            long(json!({"type": "npipe", "source": "\\\\.\\pipe\\x", "target": "\\\\.\\pipe\\x"}))
                .unwrap();
        assert_eq!(v.kind, VolumeType::Npipe);
    }

    #[test]
    fn long_refusals() {
        let err = long(json!({"type": "bind", "target": "/app"})).unwrap_err();
        assert_eq!(err, "a mount of type \"bind\" needs a `source`");
        let err = long(json!({"type": "tmpfs", "source": "x", "target": "/app"})).unwrap_err();
        assert_eq!(err, "a mount of type \"tmpfs\" takes no `source`");
        let err =
            long(json!({"type": "tmpfs", "target": "/app", "tmpfs": {"size": -1}})).unwrap_err();
        assert!(
            err.contains("invalid byte size -1: must not be negative"),
            "{err}"
        );
        let err = long(json!({"type": "tmpfs", "target": "/app", "tmpfs": {"size": 0.0001}}))
            .unwrap_err();
        assert!(err.contains("must be a whole number of bytes"), "{err}");
        let err = long(json!({"type": "tmpfs", "target": "/app", "foo": 1})).unwrap_err();
        assert!(err.contains("unknown field `foo`"), "{err}");
        let err =
            long(json!({"type": "volume", "source": "x", "target": "/a", "tmpfs": {"size": 1}}))
                .unwrap_err();
        assert_eq!(
            err,
            "`tmpfs` options do not apply to a mount of type \"volume\""
        );
        let err = long(json!({"type": "bnid", "source": "x", "target": "/a"})).unwrap_err();
        assert!(err.contains("invalid volume type \"bnid\""), "{err}");
        assert!(err.contains("did you mean \"bind\"?"), "{err}");
        let err = long(json!({"source": "x", "target": "/a"})).unwrap_err();
        assert!(err.contains("missing field `type`"), "{err}");
        let err = long(json!({"type": "volume", "target": "data"})).unwrap_err();
        assert_eq!(
            err,
            "the mount target \"data\" must be an absolute path in the container"
        );
        let err = long(json!(42)).unwrap_err();
        assert!(err.contains("a volume string like"), "{err}");
    }

    #[test]
    fn serialized_long_form() {
        let v = short("./a:/b:ro");
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            json!({"bind": {"create_host_path": true}, "read_only": true, "source": "./a",
                   "target": "/b", "type": "bind"})
        );
        let v = short("data:/b");
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            json!({"source": "data", "target": "/b", "type": "volume", "volume": {}})
        );
        for spec in [
            "/data",
            "./a:/b:ro,z,rslave,cached",
            "data:/x:nocopy",
            "C:\\p:/x",
        ] {
            let v = short(spec);
            let again = long(serde_json::to_value(&v).unwrap()).unwrap();
            assert_eq!(again, v, "{spec}");
        }
    }
}
