//! Image references normalized as Docker does: `redis` is
//! `docker.io/library/redis:latest`, `ghcr.io/o/r@sha256:…` keeps its digest.

use std::fmt;

use super::digest::Digest;
use super::error::{ImageError, Result};

pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`…
    pub registry: String,
    /// `library/redis`
    pub repository: String,
    /// `7-alpine`; `None` only when a digest is given without a tag.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes a reference as `docker pull` does.
    pub fn parse(input: &str) -> Result<Reference> {
        let bad = |reason: &str| ImageError::BadReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() || input.len() > 4096 {
            return Err(bad("empty or longer than 4096 characters"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d)?)),
            None => (input, None),
        };
        // The tag is after the last ':' that comes after the last '/', so a registry
        // port (`localhost:5000/x`) is not mistaken for one.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad(
                    "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -",
                ));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
            _ => registry,
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if repository.is_empty()
            || repository.split('/').any(|c| {
                c.is_empty()
                    || !c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
                    || c.starts_with(['.', '_', '-'])
            })
        {
            return Err(bad(
                "repository path components are lowercase letters, digits and . _ - separated by /",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether plain HTTP is allowed without being asked: only the loopback registries.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => self.registry.as_str(),
        };
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
    }

    /// The same reference as the registry client spells it.
    pub fn to_oci(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.to_string(),
            ),
            (_, Some(d)) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.to_string(),
            ),
            (t, None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn n(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }
    #[test]
    fn normalizes_like_docker() {
        assert_eq!(n("redis"), "docker.io/library/redis:latest");
        assert_eq!(n("redis:7-alpine"), "docker.io/library/redis:7-alpine");
        assert_eq!(n("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(
            n("index.docker.io/library/redis:7"),
            "docker.io/library/redis:7"
        );
        assert_eq!(n("ghcr.io/o/r/x:v1"), "ghcr.io/o/r/x:v1");
        assert_eq!(
            n("localhost:5000/lab/busybox"),
            "localhost:5000/lab/busybox:latest"
        );
        assert_eq!(n("127.0.0.1:5000/bb:1"), "127.0.0.1:5000/bb:1");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            n(&format!("redis@{d}")),
            format!("docker.io/library/redis@{d}")
        );
        assert_eq!(
            n(&format!("redis:7@{d}")),
            format!("docker.io/library/redis:7@{d}")
        );
        assert!(Reference::parse("127.0.0.1:5000/bb:1")
            .unwrap()
            .is_loopback());
        assert!(!Reference::parse("redis").unwrap().is_loopback());
    }
    #[test]
    fn refuses_bad() {
        for s in [
            "",
            "Redis",
            "redis:",
            "redis@sha256:12",
            "a//b",
            "redis:-x",
            ":x",
            "/x",
        ] {
            assert!(Reference::parse(s).is_err(), "{s:?}");
        }
    }
}
