//! Manifests, indexes and image configs: parsing, kind detection and platform choice.
//! OCI and Docker schema 2 share one shape, so both parse into oci-spec's types.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{malformed, ImageError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Every manifest type a pull accepts, in the `Accept` header.
pub const ACCEPTED: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Index,
}

/// Decides what a document is from its declared media type, else from its shape.
pub fn kind_of(bytes: &[u8], declared: Option<&str>) -> Result<(Kind, String)> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).map_err(|e| malformed("manifest", e))?;
    if p.schema_version == Some(1) {
        return Err(ImageError::Unsupported {
            what: "manifest",
            detail:
                "Docker schema 1 (deprecated since 2017): push the image again with a current tool"
                    .into(),
        });
    }
    let mt = p
        .media_type
        .or_else(|| declared.map(|d| d.split(';').next().unwrap_or(d).trim().to_string()))
        .filter(|m| !m.is_empty());
    match mt.as_deref() {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => Ok((Kind::Manifest, mt.unwrap())),
        Some(OCI_INDEX | DOCKER_LIST) => Ok((Kind::Index, mt.unwrap())),
        _ if p.manifests.is_some() => Ok((Kind::Index, OCI_INDEX.into())),
        _ if p.layers.is_some() => Ok((Kind::Manifest, OCI_MANIFEST.into())),
        other => Err(ImageError::Unsupported {
            what: "manifest media type",
            detail: other.unwrap_or("none").to_string(),
        }),
    }
}

pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest> {
    serde_json::from_slice(bytes).map_err(|e| malformed("image manifest", e))
}

pub fn parse_index(bytes: &[u8]) -> Result<ImageIndex> {
    serde_json::from_slice(bytes).map_err(|e| malformed("image index", e))
}

pub fn descriptor_digest(d: &Descriptor) -> Result<Digest> {
    Digest::parse(d.digest().as_ref())
}

/// The host's platform as OCI spells it (`linux`, `amd64`/`arm64`/…, variant).
pub fn host_platform() -> (String, String, Option<String>) {
    let (arch, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "x86" => ("386", None),
        "arm" => ("arm", Some("v7")),
        "powerpc64" => ("ppc64le", None),
        other => (other, None),
    };
    ("linux".into(), arch.into(), variant.map(String::from))
}

/// Picks the index entry for this host: same os and architecture; among those, the
/// matching variant first, then one without a variant.
pub fn choose_platform(index: &ImageIndex, reference: &str) -> Result<Descriptor> {
    let (os, arch, variant) = host_platform();
    let mut best: Option<(u8, &Descriptor)> = None;
    for m in index.manifests() {
        let Some(p) = m.platform() else { continue };
        if p.os().to_string() != os || p.architecture().to_string() != arch {
            continue;
        }
        let score = match (p.variant().as_deref(), variant.as_deref()) {
            (Some(a), Some(b)) if a == b => 2,
            (None, _) => 1,
            _ => 0,
        };
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, m));
        }
    }
    best.map(|(_, d)| d.clone())
        .ok_or_else(|| ImageError::NoPlatform {
            reference: reference.to_string(),
            platform: format!("{os}/{arch}"),
            offered: index
                .manifests()
                .iter()
                .filter_map(|m| m.platform().as_ref())
                .map(|p| format!("{}/{}", p.os(), p.architecture()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The runtime part of an image config, as the orchestrator needs it. Docker's
/// `Healthcheck` is kept, which the OCI type has no field for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
}

/// Docker's image healthcheck (durations in nanoseconds, as Docker stores them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// An image config blob: what `berth image inspect` shows and containers start from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: ContainerConfig,
    #[serde(default)]
    pub rootfs: RootFs,
}

pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig> {
    let c: ImageConfig = serde_json::from_slice(bytes).map_err(|e| malformed("image config", e))?;
    if c.rootfs.kind != "layers" {
        return Err(malformed(
            "image config",
            format!("rootfs.type is {:?}, expected \"layers\"", c.rootfs.kind),
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_with_healthcheck() {
        let c = parse_config(br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"StopSignal":"SIGQUIT","ExposedPorts":{"80/tcp":{}}},"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
        assert_eq!(c.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(c.config.healthcheck.unwrap().interval, Some(1_000_000_000));
        assert_eq!(c.config.stop_signal.as_deref(), Some("SIGQUIT"));
    }

    #[test]
    fn kinds() {
        assert_eq!(
            kind_of(br#"{"schemaVersion":2,"manifests":[]}"#, None)
                .unwrap()
                .0,
            Kind::Index
        );
        assert_eq!(kind_of(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[]}"#, None).unwrap().0, Kind::Manifest);
        assert!(kind_of(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(kind_of(b"not json", None).is_err());
    }
}
