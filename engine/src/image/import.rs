//! Imports without a network: OCI image layouts (directory or archive), `docker save`
//! archives (old layout and Docker 25's OCI-shaped one), and a root-filesystem tarball as
//! a one-layer image. Every blob goes through [`Store::put_blob`], so each is verified
//! (against its file name where the format names blobs by digest) as it is written.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::digest::{Digest, HashingReader};
use super::error::{io_err, malformed, ImageError, Result};
use super::manifest::{self, Kind, OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST};
use super::reference::Reference;
use super::store::{ImageRecord, Store};
use super::unpack;

const SMALL_FILE: u64 = 16 << 20;

/// What an archive held once read: small metadata files in memory, blobs in the store.
struct Ingested {
    small: HashMap<String, Vec<u8>>,
    blobs: HashMap<String, (Digest, u64)>,
}

impl Ingested {
    fn blob(&self, path: &str, archive: &Path) -> Result<(Digest, u64)> {
        let p = path.trim_start_matches("./");
        self.blobs
            .get(p)
            .cloned()
            .ok_or_else(|| ImageError::BadArchive {
                path: archive.to_path_buf(),
                reason: format!("it names {p}, which it does not contain"),
            })
    }
}

fn is_metadata(path: &str) -> bool {
    matches!(
        path,
        "manifest.json" | "index.json" | "oci-layout" | "repositories"
    )
}

/// Reads a (possibly compressed) tar archive once: metadata into memory, every other
/// regular file into the store. Files under `blobs/sha256/` must hash to their names.
fn ingest(store: &Store, path: &Path) -> Result<Ingested> {
    let f = File::open(path).map_err(io_err("opening", path))?;
    let r = unpack::decompressed(f).map_err(io_err("reading", path))?;
    let mut ar = tar::Archive::new(r);
    let mut out = Ingested {
        small: HashMap::new(),
        blobs: HashMap::new(),
    };
    let mut links: Vec<(String, String)> = Vec::new();
    let not_tar = |e: std::io::Error| ImageError::BadArchive {
        path: path.to_path_buf(),
        reason: format!("not a tar archive Berth can read ({e})"),
    };
    for e in ar.entries().map_err(not_tar)? {
        let mut e = e.map_err(not_tar)?;
        let rel = unpack::sanitize(&e.path_bytes(), &path.display().to_string())?;
        let name = rel.to_string_lossy().into_owned();
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                // Old `docker save` links identical layers to one copy.
                if let Some(t) = e.link_name_bytes() {
                    let base = if e.header().entry_type() == tar::EntryType::Symlink {
                        rel.parent().map(Path::to_path_buf).unwrap_or_default()
                    } else {
                        PathBuf::new()
                    };
                    let target = unpack::sanitize(
                        base.join(String::from_utf8_lossy(&t).as_ref())
                            .to_string_lossy()
                            .as_bytes(),
                        "archive",
                    )
                    .or_else(|_| {
                        // `../x/layer.tar` relative to its directory
                        let joined =
                            normalize_lexically(&base.join(String::from_utf8_lossy(&t).as_ref()));
                        joined.ok_or_else(|| malformed("archive link", "escapes the archive"))
                    })?;
                    links.push((name, target.to_string_lossy().into_owned()));
                }
                continue;
            }
            _ => continue,
        }
        let size = e.header().size().unwrap_or(0);
        if is_metadata(&name)
            || (name.ends_with(".json") && size < SMALL_FILE && !name.starts_with("blobs/"))
        {
            let mut v = Vec::new();
            e.read_to_end(&mut v).map_err(io_err("reading", path))?;
            out.small.insert(name, v);
            continue;
        }
        let expected = name
            .strip_prefix("blobs/sha256/")
            .map(Digest::from_hex)
            .transpose()?;
        let got = store.put_blob(expected.as_ref(), &mut e)?;
        out.blobs.insert(name, got);
    }
    for (from, to) in links {
        if let Some(b) = out.blobs.get(&to).cloned() {
            out.blobs.insert(from, b);
        }
    }
    Ok(out)
}

fn normalize_lexically(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The work of [`load_archive`], without naming the images.
fn load_archive_inner(
    store: &Store,
    path: &Path,
    name_for_untagged: Option<&str>,
) -> Result<Vec<ImageRecord>> {
    let ing = ingest(store, path)?;
    let records = if let Some(m) = ing.small.get("manifest.json") {
        load_docker(store, path, &ing, m)?
    } else if let Some(idx) = ing.small.get("index.json") {
        load_oci_index(store, path, idx, None, name_for_untagged)?
    } else {
        return Err(ImageError::BadArchive {
            path: path.to_path_buf(),
            reason: "neither a docker-archive (manifest.json) nor an OCI archive (index.json)"
                .into(),
        });
    };
    Ok(records)
}

fn load_docker(store: &Store, path: &Path, ing: &Ingested, m: &[u8]) -> Result<Vec<ImageRecord>> {
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(m).map_err(|e| malformed("manifest.json of a docker-archive", e))?;
    let mut records = Vec::new();
    for ent in entries {
        // The config is either a small `<hex>.json` we kept in memory, or a blob.
        let (config, config_size) = match ing.small.get(ent.config.trim_start_matches("./")) {
            Some(bytes) => (store.put_blob_bytes(None, bytes)?, bytes.len() as u64),
            None => ing.blob(&ent.config, path)?,
        };
        let cfg = manifest::parse_config(&store.read_blob(&config)?)?;
        if cfg.rootfs.diff_ids.len() != ent.layers.len() {
            return Err(malformed(
                "docker-archive",
                format!(
                    "{} layers but the config lists {} diff_ids",
                    ent.layers.len(),
                    cfg.rootfs.diff_ids.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for l in &ent.layers {
            layers.push(ing.blob(l, path)?);
        }
        let (digest, media_type) = write_manifest(store, (&config, config_size), &layers)?;
        let names: Vec<String> = match &ent.repo_tags {
            Some(t) if !t.is_empty() => t
                .iter()
                .map(|t| Reference::parse(t).map(|r| r.to_string()))
                .collect::<Result<_>>()?,
            _ => vec![config.to_string()],
        };
        for name in names {
            records.push(ImageRecord {
                name,
                manifest: digest.clone(),
                media_type: media_type.clone(),
                index: None,
            });
        }
    }
    Ok(records)
}

/// Writes an OCI manifest over a config and layers already in the store.
pub fn write_manifest(
    store: &Store,
    config: (&Digest, u64),
    layers: &[(Digest, u64)],
) -> Result<(Digest, String)> {
    let mut ls = Vec::new();
    for (d, size) in layers {
        let f = store.open_blob(d)?;
        let mut head = [0u8; 4];
        let n = (&f).take(4).read(&mut head).unwrap_or(0);
        let mt = if n >= 2 && head.starts_with(&[0x1f, 0x8b]) {
            format!("{OCI_LAYER_TAR}+gzip")
        } else if n == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
            format!("{OCI_LAYER_TAR}+zstd")
        } else {
            OCI_LAYER_TAR.to_string()
        };
        ls.push(serde_json::json!({"mediaType": mt, "digest": d.as_str(), "size": size}));
    }
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0.as_str(), "size": config.1},
        "layers": ls,
    });
    let bytes = serde_json::to_vec(&doc).map_err(|e| malformed("manifest", e))?;
    Ok((
        store.put_blob_bytes(None, &bytes)?,
        OCI_MANIFEST.to_string(),
    ))
}

/// Reads an OCI `index.json` whose blobs are already in the store; picks manifests by
/// `tag` (the `org.opencontainers.image.ref.name` annotation) or takes them all.
fn load_oci_index(
    store: &Store,
    path: &Path,
    index: &[u8],
    tag: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<ImageRecord>> {
    let idx = manifest::parse_index(index)?;
    let mut records = Vec::new();
    for desc in idx.manifests() {
        let ann = desc.annotations().as_ref();
        let ref_name = ann
            .and_then(|a| a.get("org.opencontainers.image.ref.name"))
            .cloned();
        let full_name = ann.and_then(|a| a.get("io.containerd.image.name")).cloned();
        if let Some(t) = tag {
            if ref_name.as_deref() != Some(t) {
                continue;
            }
        }
        let mut d = manifest::descriptor_digest(desc)?;
        let bytes = store.read_blob(&d)?;
        let (mut kind, mut media_type) =
            manifest::kind_of(&bytes, Some(desc.media_type().to_string().as_str()))?;
        let mut index_digest = None;
        if kind == Kind::Index {
            let inner = manifest::parse_index(&bytes)?;
            let chosen = manifest::choose_platform(&inner, &path.display().to_string())?;
            index_digest = Some(d);
            d = manifest::descriptor_digest(&chosen)?;
            let b = store.read_blob(&d)?;
            (kind, media_type) =
                manifest::kind_of(&b, Some(chosen.media_type().to_string().as_str()))?;
            debug_assert_eq!(kind, Kind::Manifest);
        }
        check_complete(store, &d)?;
        let name = match (&full_name, &ref_name, name) {
            (_, _, Some(n)) => Reference::parse(n)?.to_string(),
            (Some(f), _, _) => Reference::parse(f)?.to_string(),
            (None, Some(r), _) if r.contains('/') => Reference::parse(r)?.to_string(),
            (None, Some(r), _) => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_lowercase())
                    .unwrap_or_else(|| "image".into());
                let stem: String = stem
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                Reference::parse(&format!(
                    "localhost/{}:{r}",
                    stem.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                ))?
                .to_string()
            }
            (None, None, _) => d.to_string(),
        };
        records.push(ImageRecord {
            name,
            manifest: d,
            media_type,
            index: index_digest,
        });
    }
    if records.is_empty() {
        return Err(ImageError::BadArchive {
            path: path.to_path_buf(),
            reason: match tag {
                Some(t) => format!("no image tagged {t:?} in its index.json"),
                None => "its index.json lists no image".into(),
            },
        });
    }
    Ok(records)
}

/// Checks the config and every layer of a manifest are in the store.
fn check_complete(store: &Store, manifest_digest: &Digest) -> Result<()> {
    let m = manifest::parse_manifest(&store.read_blob(manifest_digest)?)?;
    let c = manifest::descriptor_digest(m.config())?;
    store.read_blob(&c)?;
    for l in m.layers() {
        let d = manifest::descriptor_digest(l)?;
        if !store.has_blob(&d) {
            return Err(ImageError::NotFound(format!(
                "layer blob {d} of manifest {manifest_digest}"
            )));
        }
    }
    Ok(())
}

/// The work of [`load_oci`], without naming the images.
fn load_oci_inner(store: &Store, spec: &str, name: Option<&str>) -> Result<Vec<ImageRecord>> {
    // PATH may itself contain ':'; the tag is what follows the last ':' if PATH exists without it.
    let (path, tag) = match spec.rsplit_once(':') {
        Some((p, t)) if Path::new(p).exists() && !Path::new(spec).exists() => {
            (PathBuf::from(p), Some(t))
        }
        _ => (PathBuf::from(spec), None),
    };
    if path.is_dir() {
        let index_path = path.join("index.json");
        let index = std::fs::read(&index_path).map_err(io_err("reading", &index_path))?;
        let idx = manifest::parse_index(&index)?;
        // Copy, verified, every blob reachable from the selected manifests.
        let mut todo: Vec<Digest> = Vec::new();
        for d in idx.manifests() {
            if let Some(t) = tag {
                let rn = d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get("org.opencontainers.image.ref.name"));
                if rn.map(String::as_str) != Some(t) {
                    continue;
                }
            }
            todo.push(manifest::descriptor_digest(d)?);
        }
        while let Some(d) = todo.pop() {
            if !store.has_blob(&d) {
                let p = path.join("blobs/sha256").join(d.hex());
                let mut f = File::open(&p).map_err(io_err("opening", &p))?;
                store.put_blob(Some(&d), &mut f)?;
            }
            let bytes = store.read_blob(&d)?;
            // Only JSON documents name further blobs; layers do not parse and are skipped.
            if let Ok((kind, _)) = manifest::kind_of(&bytes, None) {
                match kind {
                    Kind::Index => {
                        let i = manifest::parse_index(&bytes)?;
                        if let Ok(c) = manifest::choose_platform(&i, spec) {
                            todo.push(manifest::descriptor_digest(&c)?);
                        }
                    }
                    Kind::Manifest => {
                        let m = manifest::parse_manifest(&bytes)?;
                        todo.push(manifest::descriptor_digest(m.config())?);
                        for l in m.layers() {
                            let ld = manifest::descriptor_digest(l)?;
                            if !store.has_blob(&ld) {
                                let p = path.join("blobs/sha256").join(ld.hex());
                                let mut f = File::open(&p).map_err(io_err("opening", &p))?;
                                store.put_blob(Some(&ld), &mut f)?;
                            }
                        }
                    }
                }
            }
        }
        load_oci_index(store, &path, &index, tag, name)
    } else {
        let ing = ingest(store, &path)?;
        let idx = ing
            .small
            .get("index.json")
            .ok_or_else(|| ImageError::BadArchive {
                path: path.clone(),
                reason: "not an OCI image layout: no index.json".into(),
            })?;
        load_oci_index(store, &path, idx, tag, name)
    }
}

/// `docker-archive:PATH`
pub fn load_docker_archive(store: &Store, path: &Path) -> Result<Vec<ImageRecord>> {
    load_archive(store, path, None)
}

/// Runs an import under the store's shared lock (so a prune cannot collect the blobs
/// it has written but not yet named), then names the images under the exclusive one.
fn named<T>(
    store: &Store,
    work: impl FnOnce() -> Result<T>,
    records: impl Fn(&T) -> Vec<ImageRecord>,
) -> Result<T> {
    let out = {
        let _shared = store.lock_shared()?;
        work()?
    };
    store.put_records(&records(&out))?;
    Ok(out)
}

/// `berth image load -i FILE`: a docker-archive or an OCI archive. Returns the images
/// it named (an untagged one is named by its config digest, or `name_for_untagged`).
pub fn load_archive(
    store: &Store,
    path: &Path,
    name_for_untagged: Option<&str>,
) -> Result<Vec<ImageRecord>> {
    named(
        store,
        || load_archive_inner(store, path, name_for_untagged),
        Vec::clone,
    )
}

/// `oci:PATH[:TAG]`: an OCI image layout directory, or an archive of one; `name`
/// names the image when the layout does not.
pub fn load_oci(store: &Store, spec: &str, name: Option<&str>) -> Result<Vec<ImageRecord>> {
    named(store, || load_oci_inner(store, spec, name), Vec::clone)
}

/// `berth image import ROOTFS.tar NAME:TAG`: a one-layer image from a root filesystem
/// tarball (plain, gzip or zstd), with a minimal config for this host.
pub fn import_rootfs(store: &Store, tarball: &Path, name: &str) -> Result<ImageRecord> {
    named(
        store,
        || import_rootfs_inner(store, tarball, name),
        |r| vec![r.clone()],
    )
}

/// The work of [`import_rootfs`], without naming the image.
fn import_rootfs_inner(store: &Store, tarball: &Path, name: &str) -> Result<ImageRecord> {
    let reference = Reference::parse(name)?;
    let mut f = File::open(tarball).map_err(io_err("opening", tarball))?;
    let (blob, size) = store.put_blob(None, &mut f)?;
    // The diff_id is the digest of the uncompressed tar.
    let r = unpack::decompressed(store.open_blob(&blob)?).map_err(io_err("reading", tarball))?;
    let (diff_id, _) = HashingReader::new(r)
        .finish()
        .map_err(io_err("reading", tarball))?;
    let (os, arch, variant) = manifest::host_platform();
    let mut cfg = serde_json::json!({
        "architecture": arch, "os": os,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.as_str()]},
        "history": [{"created_by": format!("berth image import {}", tarball.display())}],
    });
    if let Some(v) = variant {
        cfg["variant"] = serde_json::Value::String(v);
    }
    let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| malformed("config", e))?;
    let cfg_digest = store.put_blob_bytes(None, &cfg_bytes)?;
    let (digest, media_type) = write_manifest(
        store,
        (&cfg_digest, cfg_bytes.len() as u64),
        &[(blob, size)],
    )?;
    let rec = ImageRecord {
        name: reference.to_string(),
        manifest: digest,
        media_type,
        index: None,
    };
    Ok(rec)
}
