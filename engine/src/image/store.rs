//! The content-addressed store under `BERTH_ROOT/image`:
//!
//! ```text
//! blobs/sha256/<hex>   every blob (manifests, configs, layers as they came), verified on write
//! layers/<hex>/        each layer unpacked once, named by its diff_id (uncompressed digest)
//! tmp/                 blobs and layers being written; partial downloads kept for resuming
//! images.json          name:tag -> manifest digest, replaced atomically
//! lock                 flock: shared by readers and pulls, exclusive by record writers and prune
//! ```
//!
//! A blob only ever appears under `blobs/` by `rename` after its sha256 was checked and
//! its bytes fsynced, so a reader never sees half a blob and a crash leaves at most a
//! temp file, which `prune` collects.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::digest::{Digest, HashingWriter};
use super::error::{io_err, malformed, ImageError, Result};

/// One image known by name: what `berth images` lists.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// The normalized reference (`docker.io/library/redis:7`, or `…@sha256:…`).
    pub name: String,
    /// Digest of the image manifest (never an index: indexes are resolved on pull).
    pub manifest: Digest,
    /// Media type of that manifest (OCI or Docker schema 2), kept to push it back as it came.
    pub media_type: String,
    /// Digest of the index the manifest was chosen from, when pulled through one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
}

#[derive(Default, Serialize, Deserialize)]
struct Records {
    images: BTreeMap<String, ImageRecord>,
}

/// A held file lock; released on drop.
pub struct LockGuard(#[allow(dead_code)] Flock<File>);

/// The store. Cheap to clone; every method opens what it needs.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the image store under `berth_root/image`.
    pub fn open(berth_root: &Path) -> Result<Store> {
        let root = berth_root.join("image");
        for d in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        }
        crate::fsalloc::mark_top_dir(&root.join("tmp"));
        Ok(Store { root })
    }

    /// `BERTH_ROOT` from the environment, else `/var/lib/berth`.
    pub fn berth_root() -> PathBuf {
        std::env::var_os("BERTH_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/lib/berth"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_path(diff_id).is_dir()
    }

    fn lock(&self, name: &str, arg: FlockArg) -> Result<LockGuard> {
        let path = self.root.join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("opening lock", &path))?;
        Flock::lock(f, arg)
            .map(LockGuard)
            .map_err(|(_, e)| io_err("locking", &path)(e.into()))
    }
    /// Shared lock: readers and pulls (which only add) hold it; prune waits for them.
    pub fn lock_shared(&self) -> Result<LockGuard> {
        self.lock("lock", FlockArg::LockShared)
    }
    /// Exclusive lock: record updates and prune.
    pub fn lock_exclusive(&self) -> Result<LockGuard> {
        self.lock("lock", FlockArg::LockExclusive)
    }
    /// Removes the layers a killed pull, import or container start left half-unpacked in
    /// `tmp/` (`layer-*`; partial blob downloads stay, for resuming). Only when no one
    /// else uses the store: every unpack holds the shared lock, so with the exclusive
    /// lock taken without waiting, no `layer-*` directory is in use. Returns how many went.
    pub fn sweep_half_unpacked(&self) -> Result<usize> {
        let Ok(_alone) = self.lock("lock", FlockArg::LockExclusiveNonblock) else {
            return Ok(0); // in use: the next sweep gets them
        };
        let mut removed = 0;
        for e in fs::read_dir(self.tmp_dir())
            .map_err(io_err("reading", self.tmp_dir()))?
            .flatten()
        {
            let is_layer = e.file_name().to_string_lossy().starts_with("layer-");
            if is_layer && e.path().is_dir() {
                fs::remove_dir_all(e.path()).map_err(io_err("removing", e.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Serializes the fetch of one blob or the unpack of one layer between processes, so
    /// two pulls of the same image at once do the work once.
    pub fn lock_item(&self, kind: &str, d: &Digest) -> Result<LockGuard> {
        self.lock(
            &format!("tmp/{kind}-{}.lock", d.hex()),
            FlockArg::LockExclusive,
        )
    }

    /// Writes a blob from `reader`: to a temp file, hashed as it goes, fsynced, checked
    /// against `expected`, then renamed into place. On a mismatch nothing stays.
    pub fn put_blob(
        &self,
        expected: Option<&Digest>,
        reader: &mut dyn Read,
    ) -> Result<(Digest, u64)> {
        let tmp = tempfile::NamedTempFile::new_in(self.tmp_dir())
            .map_err(io_err("creating a temp file in", self.tmp_dir()))?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, tmp));
        io::copy(reader, &mut w).map_err(io_err("writing a blob to", self.tmp_dir()))?;
        let digest = w.digest();
        let size = w.count;
        let tmp = w
            .inner
            .into_inner()
            .map_err(|e| io_err("writing a blob to", self.tmp_dir())(e.into_error()))?;
        self.commit_blob(tmp, expected, digest.clone())?;
        Ok((digest, size))
    }

    pub fn put_blob_bytes(&self, expected: Option<&Digest>, bytes: &[u8]) -> Result<Digest> {
        Ok(self.put_blob(expected, &mut &bytes[..])?.0)
    }

    /// Moves a fully written temp file whose content hashes to `actual` into the store.
    pub fn commit_blob(
        &self,
        tmp: tempfile::NamedTempFile,
        expected: Option<&Digest>,
        actual: Digest,
    ) -> Result<Digest> {
        if let Some(exp) = expected {
            if *exp != actual {
                // Dropping the temp file removes it: nothing half-written stays.
                drop(tmp);
                return Err(ImageError::DigestMismatch {
                    expected: exp.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        tmp.as_file()
            .sync_all()
            .map_err(io_err("syncing", tmp.path()))?;
        let dest = self.blob_path(&actual);
        tmp.persist(&dest)
            .map_err(|e| io_err("storing blob", &dest)(e.error))?;
        sync_dir(dest.parent().unwrap_or(&self.root));
        Ok(actual)
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.blob_path(d);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::NotFound(format!("blob {d}"))
            } else {
                io_err("opening blob", &p)(e)
            }
        })
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open_blob(d)?
            .read_to_end(&mut v)
            .map_err(io_err("reading blob", self.blob_path(d)))?;
        // Small documents (manifests, configs) are checked on every read too: a blob
        // corrupted on disk after it was stored is refused rather than trusted.
        let actual = Digest::of(&v);
        if actual != *d {
            return Err(ImageError::DigestMismatch {
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(v)
    }

    fn records_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn read_records(&self) -> Result<Records> {
        let p = self.records_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| malformed(p.display().to_string(), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Records::default()),
            Err(e) => Err(io_err("reading", &p)(e)),
        }
    }

    fn write_records(&self, r: &Records) -> Result<()> {
        let p = self.records_path();
        let bytes = serde_json::to_vec_pretty(r).map_err(|e| malformed("image records", e))?;
        write_atomic(&p, &bytes)
    }

    /// All image records, by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let _g = self.lock_shared()?;
        Ok(self.read_records()?.images.into_values().collect())
    }

    pub fn get(&self, name: &str) -> Result<Option<ImageRecord>> {
        let _g = self.lock_shared()?;
        Ok(self.read_records()?.images.get(name).cloned())
    }

    /// Adds or replaces records, under the exclusive lock.
    pub fn put_records(&self, recs: &[ImageRecord]) -> Result<()> {
        let _g = self.lock_exclusive()?;
        let mut r = self.read_records()?;
        for rec in recs {
            r.images.insert(rec.name.clone(), rec.clone());
        }
        self.write_records(&r)
    }

    /// Removes records by name, returning those that existed.
    pub fn remove_records(&self, names: &[String]) -> Result<Vec<ImageRecord>> {
        let _g = self.lock_exclusive()?;
        let mut r = self.read_records()?;
        let gone: Vec<_> = names.iter().filter_map(|n| r.images.remove(n)).collect();
        self.write_records(&r)?;
        Ok(gone)
    }

    /// Records as they are, for a caller already holding the exclusive lock (prune).
    pub(crate) fn records_locked(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.read_records()?.images.into_values().collect())
    }
}

/// Writes a small file atomically: temp file beside it, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(io_err("creating a temp file in", dir))?;
    tmp.write_all(bytes)
        .map_err(io_err("writing", tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err("syncing", tmp.path()))?;
    tmp.persist(path)
        .map_err(|e| io_err("replacing", path)(e.error))?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Best effort: the rename is durable once the directory is synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_is_marked_as_a_top_directory_where_the_file_system_has_inode_flags() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let s = Store::open(dir.path()).unwrap();
        let tmp = File::open(s.tmp_dir()).unwrap();
        let Some(flags) = crate::fsalloc::inode_flags(&tmp) else {
            eprintln!("skipped: the file system under /var/tmp has no inode flags");
            return;
        };
        assert_ne!(
            flags & crate::fsalloc::FS_TOPDIR_FL,
            0,
            "tmp/ lacks crate::fsalloc::FS_TOPDIR_FL: {flags:#x}"
        );
        // Opening again leaves it as it is.
        Store::open(dir.path()).unwrap();
        assert_eq!(crate::fsalloc::inode_flags(&tmp), Some(flags));
    }

    #[test]
    fn blob_verified_and_nothing_left_on_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let d = s.put_blob_bytes(None, b"hello").unwrap();
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        let wrong = Digest::of(b"other");
        let err = s.put_blob_bytes(Some(&wrong), b"hello!").unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert!(!s.has_blob(&wrong));
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let rec = ImageRecord {
            name: "docker.io/library/x:1".into(),
            manifest: Digest::of(b"m"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            index: None,
        };
        s.put_records(std::slice::from_ref(&rec)).unwrap();
        assert_eq!(s.get(&rec.name).unwrap(), Some(rec.clone()));
        assert_eq!(
            s.remove_records(std::slice::from_ref(&rec.name)).unwrap(),
            vec![rec]
        );
        assert!(s.list().unwrap().is_empty());
    }
}
