//! Layers the builder makes: a tar stream written straight into the image store
//! (hashed as it goes: uncompressed, so the blob digest is the diff_id), then unpacked
//! once like any pulled layer. Sources are a RUN step's overlay upper directory (whose
//! 0/0 character devices and opaque directories become `.wh.` whiteouts) or files that
//! COPY/ADD place.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_engine::image::digest::{Digest, HashingWriter};
use berth_engine::image::unpack::{self, get_xattr, OPAQUE_XATTR};
use berth_engine::image::Store;
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use crate::error::{io_err, Result};

/// A layer in the store: its blob (an uncompressed tar, so also its diff_id) and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The diff_id: the digest of the uncompressed tar (the unpacked layer's name).
    pub digest: Digest,
    /// The stored blob, when it differs (a compressed layer of a pulled image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<Digest>,
    pub size: u64,
}

/// Ownership and mode a COPY imposes (`--chown`, `--chmod`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
}

type Sink = HashingWriter<BufWriter<NamedTempFile>>;

pub struct LayerWriter {
    tar: tar::Builder<Sink>,
    tmp_dir: std::path::PathBuf,
    /// (dev, inode) of files written, so hard links stay links.
    links: HashMap<(u64, u64), String>,
    pub entries: usize,
}

fn header(kind: tar::EntryType, mode: u32, uid: u32, gid: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

impl LayerWriter {
    pub fn new(store: &Store) -> Result<LayerWriter> {
        let tmp_dir = store.tmp_dir();
        let tmp =
            NamedTempFile::new_in(&tmp_dir).map_err(io_err("creating a layer in", &tmp_dir))?;
        let mut tar = tar::Builder::new(HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp)));
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        Ok(LayerWriter {
            tar,
            tmp_dir,
            links: HashMap::new(),
            entries: 0,
        })
    }

    fn io(&self) -> impl FnOnce(io::Error) -> crate::error::BuildError {
        io_err("writing a layer in", self.tmp_dir.clone())
    }

    /// A directory entry with explicit metadata.
    pub fn dir(&mut self, path: &str, mode: u32, uid: u32, gid: u32, mtime: u64) -> Result<()> {
        let mut h = header(tar::EntryType::Directory, mode, uid, gid, mtime);
        self.entries += 1;
        let e = self.io();
        self.tar
            .append_data(&mut h, format!("{path}/"), io::empty())
            .map_err(e)
    }

    /// A regular file from bytes.
    pub fn bytes(&mut self, path: &str, data: &[u8], mode: u32, owner: (u32, u32)) -> Result<()> {
        let mut h = header(tar::EntryType::Regular, mode, owner.0, owner.1, now());
        h.set_size(data.len() as u64);
        self.entries += 1;
        let e = self.io();
        self.tar.append_data(&mut h, path, data).map_err(e)
    }

    /// `.wh.NAME`: the layer deletes `path`.
    pub fn whiteout(&mut self, path: &str) -> Result<()> {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path),
        };
        let mut h = header(tar::EntryType::Regular, 0o644, 0, 0, 0);
        self.entries += 1;
        let e = self.io();
        self.tar
            .append_data(&mut h, format!("{dir}.wh.{name}"), io::empty())
            .map_err(e)
    }

    /// One file-system object at `src` as `path` in the layer (directories: the entry
    /// only, not their content).
    pub fn add(
        &mut self,
        path: &str,
        src: &Path,
        meta: &fs::Metadata,
        ov: Overrides,
    ) -> Result<()> {
        let ft = meta.file_type();
        let (uid, gid) = ov.owner.unwrap_or((meta.uid(), meta.gid()));
        let mode = match ov.mode {
            Some(m) if !ft.is_symlink() => m,
            _ => meta.mode(),
        };
        let mtime = meta.mtime().max(0) as u64;
        let e = self.io();
        self.entries += 1;
        if ft.is_dir() {
            return self.dir(path, mode, uid, gid, mtime);
        }
        if ft.is_symlink() {
            let target = fs::read_link(src).map_err(io_err("reading link", src))?;
            let mut h = header(tar::EntryType::Symlink, 0o777, uid, gid, mtime);
            return self.tar.append_link(&mut h, path, target).map_err(e);
        }
        if meta.nlink() > 1 && ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                let mut h = header(tar::EntryType::Link, mode, uid, gid, mtime);
                let first = first.clone();
                return self.tar.append_link(&mut h, path, first).map_err(e);
            }
            self.links.insert(key, path.to_string());
        }
        if ft.is_file() {
            let mut h = header(tar::EntryType::Regular, mode, uid, gid, mtime);
            h.set_size(meta.len());
            let f = File::open(src).map_err(io_err("reading", src))?;
            return self
                .tar
                .append_data(&mut h, path, f.take(meta.len()))
                .map_err(e);
        }
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else if ft.is_fifo() {
            tar::EntryType::Fifo
        } else {
            // Sockets do not go into images (Docker leaves them out too).
            self.entries -= 1;
            return Ok(());
        };
        let mut h = header(kind, mode, uid, gid, mtime);
        let rdev = meta.rdev();
        h.set_device_major(libc::major(rdev)).map_err(self.io())?;
        h.set_device_minor(libc::minor(rdev)).map_err(self.io())?;
        self.tar.append_data(&mut h, path, io::empty()).map_err(e)
    }

    /// A RUN step's changes: the overlay upper directory, whiteouts translated.
    pub fn add_upper(&mut self, prefix: &str, dir: &Path) -> Result<()> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io_err("reading", dir))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let rel = join(prefix, &n.to_string_lossy());
            let p = dir.join(&n);
            let m = fs::symlink_metadata(&p).map_err(io_err("reading", &p))?;
            if m.file_type().is_char_device() && m.rdev() == 0 {
                self.whiteout(&rel)?;
                continue;
            }
            self.add(&rel, &p, &m, Overrides::default())?;
            if m.is_dir() {
                if get_xattr(&p, OPAQUE_XATTR).as_deref() == Some(b"y") {
                    self.whiteout(&format!("{rel}/.wh..opq"))?;
                }
                self.add_upper(&rel, &p)?;
            }
        }
        Ok(())
    }

    /// Entries of a (plain, gzip or zstd) tar archive, re-rooted under `prefix` (ADD).
    pub fn add_archive(&mut self, prefix: &str, archive: &Path, ov: Overrides) -> Result<()> {
        let f = File::open(archive).map_err(io_err("opening", archive))?;
        let r = unpack::decompressed(f).map_err(io_err("reading", archive))?;
        let mut ar = tar::Archive::new(r);
        let bad = io_err("reading the archive", archive);
        for entry in ar
            .entries()
            .map_err(io_err("reading the archive", archive))?
        {
            let mut entry = entry.map_err(io_err("reading the archive", archive))?;
            let name = unpack::sanitize(&entry.path_bytes(), &archive.display().to_string())?;
            let rel = join(prefix, &name.to_string_lossy());
            if rel.is_empty() {
                continue;
            }
            let mut h = entry.header().clone();
            if let Some((u, g)) = ov.owner {
                h.set_uid(u as u64);
                h.set_gid(g as u64);
            }
            self.entries += 1;
            match h.entry_type() {
                tar::EntryType::Link => {
                    let t = entry
                        .link_name_bytes()
                        .map(|t| unpack::sanitize(&t, "archive"))
                        .transpose()?
                        .unwrap_or_default();
                    let t = join(prefix, &t.to_string_lossy());
                    self.tar
                        .append_link(&mut h, &rel, t)
                        .map_err(io_err("writing a layer in", self.tmp_dir.clone()))?;
                }
                tar::EntryType::Symlink => {
                    let t = entry.link_name_bytes().unwrap_or_default().into_owned();
                    self.tar
                        .append_link(&mut h, &rel, String::from_utf8_lossy(&t).as_ref())
                        .map_err(io_err("writing a layer in", self.tmp_dir.clone()))?;
                }
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
                _ => {
                    let e = io_err("writing a layer in", self.tmp_dir.clone());
                    self.tar.append_data(&mut h, &rel, &mut entry).map_err(e)?;
                }
            }
        }
        let _ = bad;
        Ok(())
    }

    /// Ends the tar, stores it as a blob and unpacks it. `None` when nothing was written.
    pub fn finish(self, store: &Store) -> Result<Option<Layer>> {
        let entries = self.entries;
        let tmp_dir = self.tmp_dir.clone();
        let sink = self
            .tar
            .into_inner()
            .map_err(io_err("writing a layer in", &tmp_dir))?;
        if entries == 0 {
            return Ok(None);
        }
        let digest = sink.digest();
        let size = sink.count;
        let tmp = sink
            .inner
            .into_inner()
            .map_err(|e| io_err("writing a layer in", &tmp_dir)(e.into_error()))?;
        let digest = store.commit_blob(tmp, None, digest)?;
        unpack::ensure_layer(store, &digest, &digest)?;
        Ok(Some(Layer {
            digest,
            blob: None,
            size,
        }))
    }
}

/// `prefix/name`, or `name` at the root.
pub fn join(prefix: &str, name: &str) -> String {
    let name = name.trim_start_matches('/');
    if prefix.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
