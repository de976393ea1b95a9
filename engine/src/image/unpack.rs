//! Unpacks one layer tarball into its own directory, once, with overlayfs whiteouts.
//!
//! The `tar` crate parses; every file-system change is Berth's, because the crate knows
//! nothing of whiteouts and its own unpacker would follow links a hostile layer planted.
//! The rules, in the spirit of umoci and containers/storage:
//! - paths are made relative; a `..` component is refused (it can only mean an escape);
//! - no entry is written through a symlink or a non-directory: every ancestor is
//!   `lstat`ed and must be a real directory of this layer (missing ones are made);
//! - a hard link must name a file already unpacked in this layer;
//! - symlink targets are stored verbatim: they are resolved inside the container's root
//!   at run time and never followed here;
//! - `.wh.NAME` becomes a 0/0 character device `NAME`, `.wh..wh..opq` the
//!   `trusted.overlay.opaque=y` xattr on its directory: what overlayfs reads as whiteouts.
//!
//! The uncompressed stream is hashed as it is read and must match the image config's
//! diff_id; the layer is unpacked into `tmp/` and renamed into `layers/` only when whole.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::libc;
use nix::sys::stat::{mknod, Mode, SFlag};

use super::digest::{Digest, HashingReader};
use super::error::{io_err, ImageError, Result};
use super::store::Store;

pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Wraps a layer's bytes (a blob file, or a download as it arrives) in the right
/// decompressor, chosen by its magic bytes (media types lie more often than magic does).
pub fn decompressed<R: Read + Send + 'static>(mut r: R) -> io::Result<Box<dyn Read + Send>> {
    // Read the head by hand: a stream may hand out fewer than 4 bytes in its first read.
    let mut head = Vec::with_capacity(4);
    while head.len() < 4 {
        let mut b = [0u8; 4];
        let n = match r.read(&mut b[..4 - head.len()]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        head.extend_from_slice(&b[..n]);
    }
    let gz = head.starts_with(&[0x1f, 0x8b]);
    let zst = head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let r = BufReader::with_capacity(1 << 20, io::Cursor::new(head).chain(r));
    if gz {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else if zst {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}

/// Makes sure layer `diff_id` (stored as blob `blob`) is unpacked under `layers/`.
/// Returns whether this call did the work (false: it was already there).
pub fn ensure_layer(store: &Store, blob: &Digest, diff_id: &Digest) -> Result<bool> {
    if store.has_layer(diff_id) {
        return Ok(false);
    }
    let _lock = store.lock_item("layer", diff_id)?;
    if store.has_layer(diff_id) {
        return Ok(false); // another process unpacked it while we waited
    }
    let file = store.open_blob(blob)?;
    let reader = decompressed(file).map_err(io_err("reading layer", store.blob_path(blob)))?;
    let tmp = unpack_to_tmp(store, reader, blob, diff_id)?;
    commit_layer(store, tmp, diff_id)?;
    Ok(true)
}

/// Unpacks a decompressed layer stream into a fresh directory under `tmp/` and checks
/// its diff_id. The caller holds the layer's lock and moves the directory into place
/// with [`commit_layer`] once everything else it checks holds too (a layer unpacked
/// while it downloads waits for its blob's digest). Dropping the result removes it.
pub fn unpack_to_tmp(
    store: &Store,
    reader: impl Read,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<tempfile::TempDir> {
    let tmp = tempfile::Builder::new()
        .prefix("layer-")
        .tempdir_in(store.tmp_dir())
        .map_err(io_err("creating a temp dir in", store.tmp_dir()))?;
    let started = std::time::Instant::now();
    let actual = unpack_into(reader, tmp.path(), diff_id.as_str())?;
    tracing::debug!("layer {diff_id} unpacked in {:?}", started.elapsed());
    if actual != *diff_id {
        return Err(ImageError::DiffIdMismatch {
            layer: blob.to_string(),
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(tmp)
}

/// Moves a layer unpacked by [`unpack_to_tmp`] to `layers/`.
pub fn commit_layer(store: &Store, tmp: tempfile::TempDir, diff_id: &Digest) -> Result<()> {
    let dest = store.layer_path(diff_id);
    crate::fault::point("unpack.before-rename");
    let kept = tmp.keep();
    if let Err(e) = fs::rename(&kept, &dest) {
        let _ = fs::remove_dir_all(&kept);
        return Err(io_err("moving the unpacked layer to", dest)(e));
    }
    Ok(())
}

/// Unpacks a tar stream into `root` (an empty directory) and returns the sha256 of the
/// whole uncompressed stream.
pub fn unpack_into(reader: impl Read, root: &Path, layer: &str) -> Result<Digest> {
    let mut archive = tar::Archive::new(HashingReader::new(reader));
    let mut dir_times = Vec::new();
    // One copy buffer for the whole layer (a fresh 256 KiB per file would be an
    // mmap, page faults and munmap each time).
    let mut buf = vec![0u8; 256 << 10];
    let mut dirs = Dirs::default();
    let bad_tar = |e: io::Error| ImageError::UnsafeEntry {
        layer: layer.to_string(),
        entry: String::new(),
        reason: format!("not a readable tar stream: {e}"),
    };
    for entry in archive.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        unpack_entry(&mut entry, root, layer, &mut dir_times, &mut dirs, &mut buf)?;
        crate::fault::point("unpack.mid-layer");
    }
    // Directory times last: creating their children changed them.
    for (p, t) in dir_times.iter().rev() {
        set_mtime(p, *t);
    }
    let (digest, _) = archive
        .into_inner()
        .finish()
        .map_err(io_err("reading the end of layer", root))?;
    Ok(digest)
}

/// Turns a tar path into a clean relative path, refusing any escape.
pub fn sanitize(raw: &[u8], layer: &str) -> Result<PathBuf> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    let refuse = |reason: &str| ImageError::UnsafeEntry {
        layer: layer.to_string(),
        entry: shown.clone(),
        reason: reason.to_string(),
    };
    if raw.contains(&0) {
        return Err(refuse("the path contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(std::ffi::OsStr::from_bytes(raw)).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(refuse(
                    "the path contains `..`, which would leave the layer",
                ))
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

/// Directories of the layer being unpacked known to be real directories (made or
/// checked by this unpack), so each entry does not `lstat` all its ancestors again.
/// Whatever removes a directory forgets it and everything under it.
#[derive(Default)]
struct Dirs(HashSet<PathBuf>);

impl Dirs {
    fn forget(&mut self, gone: &Path) {
        self.0.retain(|d| !d.starts_with(gone));
    }
}

/// Checks that every ancestor of `rel` under `root` is a real directory, making
/// missing ones, so nothing is ever written through a symlink.
fn prepare_parents(root: &Path, rel: &Path, layer: &str, dirs: &mut Dirs) -> Result<()> {
    let mut cur = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() || dirs.0.contains(&root.join(parent)) {
        return Ok(());
    }
    for c in parent.components() {
        cur.push(c);
        if dirs.0.contains(&cur) {
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {
                dirs.0.insert(cur.clone());
            }
            Ok(m) => {
                return Err(ImageError::UnsafeEntry {
                    layer: layer.to_string(),
                    entry: rel.display().to_string(),
                    reason: format!(
                        "its parent {} is a {} in this layer, not a directory",
                        cur.strip_prefix(root).unwrap_or(&cur).display(),
                        if m.file_type().is_symlink() {
                            "symlink"
                        } else {
                            "file"
                        }
                    ),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(io_err("creating directory", &cur))?;
                let _ = fs::set_permissions(&cur, fs::Permissions::from_mode(0o755));
                dirs.0.insert(cur.clone());
            }
            Err(e) => return Err(io_err("inspecting", &cur)(e)),
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (not following links), unless it is a directory and
/// `keep_dir` is set.
fn clear(path: &Path, keep_dir: bool, dirs: &mut Dirs) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            if keep_dir {
                return Ok(true);
            }
            fs::remove_dir_all(path).map_err(io_err("replacing", path))?;
            dirs.forget(path);
        }
        Ok(_) => fs::remove_file(path).map_err(io_err("replacing", path))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting", path)(e)),
    }
    Ok(false)
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<R>,
    root: &Path,
    layer: &str,
    dir_times: &mut Vec<(PathBuf, i64)>,
    dirs: &mut Dirs,
    buf: &mut [u8],
) -> Result<()> {
    let raw = entry.path_bytes().into_owned();
    let rel = sanitize(&raw, layer)?;
    let kind = entry.header().entry_type();
    if rel.as_os_str().is_empty() {
        // `./` itself: the layer root keeps its own metadata.
        return Ok(());
    }
    let name = rel
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    prepare_parents(root, &rel, layer, dirs)?;
    let full = root.join(&rel);

    if name.starts_with(WHITEOUT_PREFIX.as_bytes()) {
        let parent = full.parent().unwrap_or(root).to_path_buf();
        if name == OPAQUE_MARKER.as_bytes() {
            set_xattr(&parent, OPAQUE_XATTR, b"y")?;
        } else {
            let hidden = &name[WHITEOUT_PREFIX.len()..];
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(ImageError::UnsafeEntry {
                    layer: layer.into(),
                    entry: rel.display().to_string(),
                    reason: "a whiteout must name a file".into(),
                });
            }
            let target = parent.join(std::ffi::OsStr::from_bytes(hidden));
            clear(&target, false, dirs)?;
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| ImageError::Mount {
                what: "making whiteout",
                path: target.clone(),
                source: e,
            })?;
        }
        return Ok(());
    }

    let header = entry.header().clone();
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let mtime = header.mtime().unwrap_or(0) as i64;
    let (mut uid, mut gid) = (
        header.uid().unwrap_or(0) as u32,
        header.gid().unwrap_or(0) as u32,
    );
    let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            if let Some(x) = key.strip_prefix("SCHILY.xattr.") {
                xattrs.push((x.to_string(), ext.value_bytes().to_vec()));
            } else if key == "uid" {
                uid = ext.value().ok().and_then(|v| v.parse().ok()).unwrap_or(uid);
            } else if key == "gid" {
                gid = ext.value().ok().and_then(|v| v.parse().ok()).unwrap_or(gid);
            }
        }
    }

    use tar::EntryType as T;
    match kind {
        T::Directory => {
            if !clear(&full, true, dirs)? {
                fs::create_dir(&full).map_err(io_err("creating directory", &full))?;
            }
            dirs.0.insert(full.clone());
        }
        T::Regular | T::Continuous | T::GNUSparse => {
            let create = || {
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&full)
            };
            // Create first, clear only if something is in the way: in a fresh layer
            // directory nearly nothing ever is, and that saves an lstat per file.
            let mut f = match create() {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    clear(&full, false, dirs)?;
                    create()
                }
                other => other,
            }
            .map_err(io_err("creating", &full))?;
            copy_big(entry, &mut f, buf).map_err(io_err("writing", &full))?;
            // Metadata through the open descriptor: no path walk for each call.
            return finish_file(&f, &full, uid, gid, mode, &xattrs, mtime);
        }
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| ImageError::UnsafeEntry {
                    layer: layer.into(),
                    entry: rel.display().to_string(),
                    reason: "a symlink without a target".into(),
                })?;
            clear(&full, false, dirs)?;
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &full)
                .map_err(io_err("creating symlink", &full))?;
        }
        T::Link => {
            let target_raw = entry.link_name_bytes().unwrap_or_default().into_owned();
            let target_rel = sanitize(&target_raw, layer)?;
            prepare_parents(root, &target_rel, layer, dirs)?;
            let target = root.join(&target_rel);
            match fs::symlink_metadata(&target) {
                Ok(m) if !m.is_dir() => {}
                _ => {
                    return Err(ImageError::UnsafeEntry {
                        layer: layer.into(),
                        entry: rel.display().to_string(),
                        reason: format!(
                            "hard link to {}, which is not a file earlier in this layer",
                            String::from_utf8_lossy(&target_raw)
                        ),
                    })
                }
            }
            if target == full {
                return Ok(());
            }
            clear(&full, false, dirs)?;
            // linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
            fs::hard_link(&target, &full).map_err(io_err("creating hard link", &full))?;
            return Ok(()); // the inode's metadata came with its first name
        }
        T::Char | T::Block | T::Fifo => {
            clear(&full, false, dirs)?;
            let (sflag, dev) = match kind {
                T::Char => (SFlag::S_IFCHR, dev_of(&header)),
                T::Block => (SFlag::S_IFBLK, dev_of(&header)),
                _ => (SFlag::S_IFIFO, 0),
            };
            mknod(&full, sflag, Mode::from_bits_truncate(0o600), dev).map_err(|e| {
                ImageError::Mount {
                    what: "making device node",
                    path: full.clone(),
                    source: e,
                }
            })?;
        }
        other => {
            tracing::warn!(layer, entry = %rel.display(), "skipping tar entry of type {other:?}");
            return Ok(());
        }
    }

    // Owner first (chown clears set-id bits and file capabilities), then mode, then
    // xattrs (security.capability among them), then times.
    std::os::unix::fs::lchown(&full, Some(uid), Some(gid)).map_err(io_err("chown", &full))?;
    if kind != T::Symlink {
        fs::set_permissions(&full, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &full))?;
    }
    for (k, v) in &xattrs {
        if let Err(e) = set_xattr(&full, k, v) {
            // A tmpfs or a kernel without user xattrs refuses some names; that must not
            // stop the pull, but it is worth a line.
            tracing::warn!("{e}");
        }
    }
    if kind == T::Directory {
        dir_times.push((full, mtime));
    } else {
        set_mtime(&full, mtime);
    }
    Ok(())
}

/// Owner, mode, xattrs and mtime of a regular file just written, in the same order as
/// for other entries, through its descriptor.
fn finish_file(
    f: &fs::File,
    full: &Path,
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: &[(String, Vec<u8>)],
    mtime: i64,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    std::os::unix::fs::fchown(f, Some(uid), Some(gid)).map_err(io_err("chown", full))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", full))?;
    for (k, v) in xattrs {
        if let Err(e) = set_xattr(full, k, v) {
            tracing::warn!("{e}");
        }
    }
    let t = libc::timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    // SAFETY: a valid descriptor and a two-element array as futimens requires.
    unsafe { libc::futimens(f.as_raw_fd(), [t, t].as_ptr()) };
    Ok(())
}

/// Copies with a 256 KiB buffer: `io::copy`'s 8 KiB means one write(2) per 8 KiB of
/// every file in the layer.
fn copy_big(r: &mut impl Read, w: &mut fs::File, buf: &mut [u8]) -> io::Result<u64> {
    use std::io::Write as _;
    let mut total = 0;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn dev_of(h: &tar::Header) -> u64 {
    let major = h.device_major().ok().flatten().unwrap_or(0) as u64;
    let minor = h.device_minor().ok().flatten().unwrap_or(0) as u64;
    nix::sys::stat::makedev(major, minor)
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let p = CString::new(path.as_os_str().as_bytes()).expect("paths have no NUL");
    let n = CString::new(name).map_err(|_| ImageError::Unsupported {
        what: "xattr name",
        detail: name.escape_debug().to_string(),
    })?;
    // SAFETY: both strings are NUL-terminated and live across the call.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io_err("setting xattr", path)(io::Error::last_os_error()));
    }
    Ok(())
}

pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: buffer and strings are valid for the call.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return None;
    }
    buf.truncate(rc as usize);
    Some(buf)
}

fn set_mtime(path: &Path, secs: i64) {
    let Ok(p) = CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: valid path and a two-element array as utimensat requires.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_refuses_escapes() {
        assert_eq!(sanitize(b"./a/b", "l").unwrap(), PathBuf::from("a/b"));
        assert_eq!(
            sanitize(b"/etc/passwd", "l").unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert!(sanitize(b"../x", "l").is_err());
        assert!(sanitize(b"a/../../x", "l").is_err());
        assert!(sanitize(b"a\0b", "l").is_err());
    }
}
