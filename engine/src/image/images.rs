//! The face of the image store the orchestrator and the CLI use: look an image up,
//! read its config, make sure its layers are unpacked, tag, remove, prune.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageManifest;

use super::digest::Digest;
use super::error::{io_err, ImageError, Result};
use super::manifest::{self, ImageConfig};
use super::reference::Reference;
use super::store::{ImageRecord, Store};
use super::unpack;

/// An image found in the store, with its manifest and config read and verified.
#[derive(Debug, Clone)]
pub struct Image {
    pub record: ImageRecord,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfig,
}

impl Image {
    /// The image ID as Docker shows it: the config digest.
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }
    /// Layer blobs with their diff_ids, bottom first.
    pub fn layers(&self) -> Result<Vec<(Digest, Digest)>> {
        let blobs = self
            .manifest
            .layers()
            .iter()
            .map(manifest::descriptor_digest)
            .collect::<Result<Vec<_>>>()?;
        if blobs.len() != self.config.rootfs.diff_ids.len() {
            return Err(super::error::malformed(
                format!("image {}", self.record.name),
                format!(
                    "the manifest has {} layers but the config {} diff_ids",
                    blobs.len(),
                    self.config.rootfs.diff_ids.len()
                ),
            ));
        }
        Ok(blobs
            .into_iter()
            .zip(self.config.rootfs.diff_ids.iter().cloned())
            .collect())
    }
    /// Total size of the blobs (as stored: compressed when they came compressed).
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum::<u64>() + self.manifest.config().size()
    }
}

/// What `prune` removed.
#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Images {
    store: Store,
    berth_root: PathBuf,
}

impl Images {
    /// Opens the store under `berth_root` (see [`Store::berth_root`] for the default).
    pub fn open(berth_root: &Path) -> Result<Images> {
        Ok(Images {
            store: Store::open(berth_root)?,
            berth_root: berth_root.to_path_buf(),
        })
    }
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn berth_root(&self) -> &Path {
        &self.berth_root
    }

    /// Finds an image by name (normalized as Docker does), by full or short image ID
    /// (config digest), or by manifest digest.
    pub fn resolve(&self, name: &str) -> Result<Image> {
        if let Ok(r) = Reference::parse(name) {
            if let Some(rec) = self.store.get(&r.to_string())? {
                return self.image(rec);
            }
            // `name@digest` pulled by digest is recorded under the digest form only
            if r.digest.is_some() {
                if let Some(rec) = self.store.list()?.into_iter().find(|x| {
                    Some(&x.manifest) == r.digest.as_ref() && x.name.starts_with(&r.name())
                }) {
                    return self.image(rec);
                }
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            for rec in self.store.list()? {
                if rec.manifest.hex().starts_with(hex) {
                    return self.image(rec);
                }
                // A damaged image elsewhere in the store must not hide this one.
                if let Ok(img) = self.image(rec) {
                    if img.config_digest.hex().starts_with(hex) {
                        return Ok(img);
                    }
                }
            }
        }
        Err(ImageError::NotFound(
            Reference::parse(name)
                .map(|r| r.to_string())
                .unwrap_or_else(|_| name.to_string()),
        ))
    }

    /// Reads the manifest and config of a record.
    pub fn image(&self, record: ImageRecord) -> Result<Image> {
        let manifest = manifest::parse_manifest(&self.store.read_blob(&record.manifest)?)?;
        let config_digest = manifest::descriptor_digest(manifest.config())?;
        let config = manifest::parse_config(&self.store.read_blob(&config_digest)?)?;
        Ok(Image {
            record,
            manifest,
            config_digest,
            config,
        })
    }

    pub fn list(&self) -> Result<Vec<Image>> {
        self.store
            .list()?
            .into_iter()
            .map(|r| self.image(r))
            .collect()
    }

    /// Unpacks every layer not yet unpacked; returns the layer directories, bottom first.
    pub fn unpack(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let _shared = self.store.lock_shared()?; // prune waits for unpacks in flight
        let layers = image.layers()?;
        let mut dirs = Vec::new();
        for (blob, diff_id) in layers {
            unpack::ensure_layer(&self.store, &blob, &diff_id)?;
            dirs.push(self.store.layer_path(&diff_id));
        }
        Ok(dirs)
    }

    /// `berth image tag SRC NEW`
    pub fn tag(&self, source: &str, new: &str) -> Result<ImageRecord> {
        let img = self.resolve(source)?;
        let rec = ImageRecord {
            name: Reference::parse(new)?.to_string(),
            ..img.record
        };
        self.store.put_records(std::slice::from_ref(&rec))?;
        Ok(rec)
    }

    /// `berth image rm NAME`: drops the name; refused while a container's root
    /// filesystem is made from that image (unless `force`). Blobs go at the next prune.
    pub fn remove(&self, name: &str, force: bool) -> Result<ImageRecord> {
        let img = self.resolve(name)?;
        if !force {
            let users: Vec<String> = crate::rootfs::list(&self.berth_root)?
                .into_iter()
                .filter(|c| c.manifest == img.record.manifest)
                .map(|c| c.id)
                .collect();
            // Another name for the same manifest keeps the containers' image alive.
            let other_names = self
                .store
                .list()?
                .into_iter()
                .filter(|r| r.manifest == img.record.manifest && r.name != img.record.name)
                .count();
            if !users.is_empty() && other_names == 0 {
                return Err(ImageError::InUse {
                    image: img.record.name,
                    containers: users.join(", "),
                });
            }
        }
        self.store
            .remove_records(std::slice::from_ref(&img.record.name))?;
        Ok(img.record)
    }

    /// Removes every blob, unpacked layer and leftover temp file that no image record
    /// and no container root filesystem references. Holds the exclusive lock, so no pull
    /// or reader is half-way through.
    pub fn prune(&self) -> Result<PruneReport> {
        let _g = self.store.lock_exclusive()?;
        let mut blobs: BTreeSet<Digest> = BTreeSet::new();
        let mut layers: BTreeSet<Digest> = BTreeSet::new();
        for rec in self.store.records_locked()? {
            blobs.insert(rec.manifest.clone());
            if let Some(i) = &rec.index {
                blobs.insert(i.clone());
            }
            // An image whose blobs are damaged keeps what it names, so prune never
            // makes things worse; it is reported by inspect/pull instead.
            if let Ok(img) = self.image(rec) {
                blobs.insert(img.config_digest.clone());
                if let Ok(ls) = img.layers() {
                    for (b, d) in ls {
                        blobs.insert(b);
                        layers.insert(d);
                    }
                }
            }
        }
        for c in crate::rootfs::list(&self.berth_root)? {
            layers.extend(c.layers);
        }
        let mut report = PruneReport::default();
        let blob_dir = self.store.root().join("blobs/sha256");
        for e in fs::read_dir(&blob_dir)
            .map_err(io_err("reading", &blob_dir))?
            .flatten()
        {
            let keep = Digest::from_hex(&e.file_name().to_string_lossy())
                .map(|d| blobs.contains(&d))
                .unwrap_or(false);
            if !keep {
                report.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path()).map_err(io_err("removing", e.path()))?;
                report.blobs += 1;
            }
        }
        let layer_dir = self.store.root().join("layers");
        for e in fs::read_dir(&layer_dir)
            .map_err(io_err("reading", &layer_dir))?
            .flatten()
        {
            let keep = Digest::from_hex(&e.file_name().to_string_lossy())
                .map(|d| layers.contains(&d))
                .unwrap_or(false);
            if !keep {
                report.bytes += du(&e.path());
                fs::remove_dir_all(e.path()).map_err(io_err("removing", e.path()))?;
                report.layers += 1;
            }
        }
        // Temp files: partial downloads, unfinished unpacks, and the per-blob lock
        // files. No pull runs now (pulls hold the shared lock), so no one waits on a
        // lock file; one still held (a crashed holder cannot hold it) is left alone.
        let tmp = self.store.tmp_dir();
        for e in fs::read_dir(&tmp)
            .map_err(io_err("reading", &tmp))?
            .flatten()
        {
            if e.file_name().to_string_lossy().ends_with(".lock") {
                if let Ok(f) = fs::File::open(e.path()) {
                    if let Ok(_held) =
                        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
                    {
                        let _ = fs::remove_file(e.path());
                    }
                }
                continue;
            }
            report.bytes += du(&e.path());
            let p = e.path();
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(io_err("removing", &p))?;
        }
        Ok(report)
    }
}

/// Bytes used by a tree (apparent sizes), not following links.
pub fn du(p: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    if m.is_dir() {
        fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    } else {
        m.len()
    }
}
