//! `berth image save`: images leave the host as they came.
//!
//! - docker-archive: `manifest.json` + config + one uncompressed tar per layer, the
//!   format `docker load` has always read (and skopeo's `docker-archive:`);
//! - oci-archive: an OCI image layout in a tar, blobs byte for byte as stored, so the
//!   manifest digests are those the images were pulled with.
//!
//! The archive is written to a temp file beside the target and renamed when complete.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::digest::{Digest, HashingReader};
use super::error::{io_err, malformed, ImageError, Result};
use super::images::{Image, Images};
use super::manifest;
use super::reference::Reference;
use super::unpack;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DockerArchive,
    OciArchive,
}

/// Writes `names` (images in the store) to `out`.
pub fn save(images: &Images, names: &[String], out: &Path, format: Format) -> Result<()> {
    if names.is_empty() {
        return Err(malformed("save", "name at least one image"));
    }
    let imgs: Vec<Image> = names
        .iter()
        .map(|n| images.resolve(n))
        .collect::<Result<_>>()?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".berth-save-")
        .tempfile_in(dir)
        .map_err(io_err("creating a temp file in", dir))?;
    {
        let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp.as_file()));
        match format {
            Format::DockerArchive => docker_archive(images, &imgs, &mut tar)?,
            Format::OciArchive => oci_archive(images, &imgs, &mut tar)?,
        }
        let w = tar.into_inner().map_err(io_err("writing", out))?;
        w.into_inner()
            .map_err(|e| io_err("writing", out)(e.into_error()))?
            .sync_all()
            .map_err(io_err("syncing", out))?;
    }
    tmp.persist(out)
        .map_err(|e| io_err("writing", out)(e.error))?;
    Ok(())
}

fn add_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut h = header(bytes.len() as u64);
    tar.append_data(&mut h, path, bytes)
        .map_err(io_err("writing archive entry", path))
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_blob<W: Write>(images: &Images, tar: &mut tar::Builder<W>, d: &Digest) -> Result<()> {
    let path = images.store().blob_path(d);
    let f = images.store().open_blob(d)?;
    let size = f.metadata().map_err(io_err("reading", &path))?.len();
    let mut h = header(size);
    tar.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), f)
        .map_err(io_err("writing blob", &path))
}

/// The name as `docker images` shows it (`redis:7`, `ghcr.io/o/r:v1`).
fn familiar(name: &str) -> Option<String> {
    let r = Reference::parse(name).ok()?;
    let tag = r.tag.clone()?;
    let repo = match (r.registry.as_str(), r.repository.strip_prefix("library/")) {
        ("docker.io", Some(short)) => short.to_string(),
        ("docker.io", None) => r.repository.clone(),
        _ => r.name(),
    };
    Some(format!("{repo}:{tag}"))
}

fn docker_archive<W: Write>(
    images: &Images,
    imgs: &[Image],
    tar: &mut tar::Builder<W>,
) -> Result<()> {
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut entries = Vec::new();
    for img in imgs {
        let cfg_name = format!("{}.json", img.config_digest.hex());
        if written.insert(cfg_name.clone()) {
            add_bytes(
                tar,
                &cfg_name,
                &images.store().read_blob(&img.config_digest)?,
            )?;
        }
        let mut layers = Vec::new();
        for (blob, diff_id) in img.layers()? {
            let name = format!("{}/layer.tar", diff_id.hex());
            if written.insert(name.clone()) {
                // Docker's archive holds uncompressed layers, named by diff_id. The size
                // goes in the tar header first, so the layer is decompressed to a temp
                // file (checked against its diff_id on the way).
                let mut tmp = tempfile::tempfile_in(images.store().tmp_dir())
                    .map_err(io_err("creating a temp file in", images.store().tmp_dir()))?;
                let r = unpack::decompressed(images.store().open_blob(&blob)?)
                    .map_err(io_err("reading layer", images.store().blob_path(&blob)))?;
                let mut hr = HashingReader::new(r);
                io::copy(&mut hr, &mut tmp).map_err(io_err(
                    "decompressing layer",
                    images.store().blob_path(&blob),
                ))?;
                let (got, size) = hr
                    .finish()
                    .map_err(io_err("reading layer", images.store().blob_path(&blob)))?;
                if got != diff_id {
                    return Err(ImageError::DiffIdMismatch {
                        layer: blob.to_string(),
                        expected: diff_id.to_string(),
                        actual: got.to_string(),
                    });
                }
                io::Seek::rewind(&mut tmp).map_err(io_err("reading", images.store().tmp_dir()))?;
                let mut h = header(size);
                tar.append_data(&mut h, &name, tmp)
                    .map_err(io_err("writing layer", &name))?;
            }
            layers.push(name);
        }
        let tags: Vec<String> = images
            .store()
            .list()?
            .into_iter()
            .filter(|r| r.manifest == img.record.manifest && r.name == img.record.name)
            .filter_map(|r| familiar(&r.name))
            .collect();
        entries.push(serde_json::json!({"Config": cfg_name, "RepoTags": tags, "Layers": layers}));
    }
    let m = serde_json::to_vec(&entries).map_err(|e| malformed("manifest.json", e))?;
    add_bytes(tar, "manifest.json", &m)
}

fn oci_archive<W: Write>(images: &Images, imgs: &[Image], tar: &mut tar::Builder<W>) -> Result<()> {
    add_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut manifests = Vec::new();
    for img in imgs {
        let mut blobs = vec![img.record.manifest.clone(), img.config_digest.clone()];
        for l in img.manifest.layers() {
            blobs.push(manifest::descriptor_digest(l)?);
        }
        for d in blobs {
            if written.insert(d.clone()) {
                add_blob(images, tar, &d)?;
            }
        }
        let size = File::open(images.store().blob_path(&img.record.manifest))
            .and_then(|f| f.metadata())
            .map(|m| m.len())
            .map_err(io_err(
                "reading",
                images.store().blob_path(&img.record.manifest),
            ))?;
        let tag = Reference::parse(&img.record.name)
            .ok()
            .and_then(|r| r.tag)
            .unwrap_or_else(|| "latest".into());
        manifests.push(serde_json::json!({
            "mediaType": img.record.media_type,
            "digest": img.record.manifest.as_str(),
            "size": size,
            "annotations": {
                "io.containerd.image.name": img.record.name,
                "org.opencontainers.image.ref.name": tag,
            }
        }));
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests});
    add_bytes(
        tar,
        "index.json",
        &serde_json::to_vec(&index).map_err(|e| malformed("index.json", e))?,
    )
}
