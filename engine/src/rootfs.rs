//! A container's root filesystem: an overlayfs mount with the image's unpacked layers
//! read-only as `lowerdir` and a per-container `upperdir`/`workdir`, so writes land in
//! the container's own layer and the image stays untouched. Where overlayfs refuses
//! (or the caller asks), the layers are copied into one tree instead, whiteouts applied.
//!
//! ```text
//! BERTH_ROOT/rootfs/<id>/rootfs.json   which image and layers (keeps them from prune)
//!                        upper/ work/  overlay's read-write layer and scratch
//!                        merged/       the root filesystem the runtime pivots into
//! ```

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::image::digest::Digest;
use crate::image::error::{io_err, malformed, ImageError, Result};
use crate::image::images::Images;
use crate::image::store::write_atomic;
use crate::image::unpack::{get_xattr, set_xattr, OPAQUE_XATTR};
use crate::userns::IdMap;

/// How the root filesystem was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Overlay,
    Copy,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Copy the layers instead of mounting overlayfs.
    pub copy: bool,
    /// A container in a user namespace: its root must own the image's files. The layers
    /// are mounted idmapped (shared, untouched) and the upper layer belongs to the
    /// mapped root; a copied root filesystem is re-owned.
    pub idmap: Option<IdMap>,
}

impl Options {
    /// `BERTH_ROOTFS=copy` asks for copied root filesystems on hosts where overlayfs
    /// mounts but misbehaves; anything else leaves overlayfs (with its own fallback).
    pub fn from_env() -> Options {
        Options {
            copy: std::env::var("BERTH_ROOTFS").is_ok_and(|v| v == "copy"),
            idmap: None,
        }
    }
}

/// A prepared root filesystem (also what `rootfs.json` holds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rootfs {
    pub id: String,
    pub image: String,
    pub manifest: Digest,
    /// diff_ids of the image's layers, bottom first.
    pub layers: Vec<Digest>,
    pub mode: Mode,
    /// The directory to use as the container's root.
    pub path: PathBuf,
    /// Where the container's writes land (overlay); `None` for a copy.
    pub upper: Option<PathBuf>,
    /// The user namespace mapping the files are owned for (`None`: host ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<IdMap>,
}

fn base(berth_root: &Path) -> PathBuf {
    berth_root.join("rootfs")
}

fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ImageError::BadReference {
            reference: id.to_string(),
            reason: "a container id is 1 to 128 of [A-Za-z0-9_.-], not starting with .".into(),
        })
    }
}

/// Makes the root filesystem of container `id` from `image` (a name or ID in the store).
/// Idempotent: a container whose rootfs is already there gets it back (remounted if the
/// host rebooted).
pub fn prepare(images: &Images, image: &str, id: &str, opts: &Options) -> Result<Rootfs> {
    check_id(id)?;
    let dir = base(images.berth_root()).join(id);
    let meta = dir.join("rootfs.json");
    if let Ok(bytes) = fs::read(&meta) {
        let r: Rootfs =
            serde_json::from_slice(&bytes).map_err(|e| malformed(meta.display().to_string(), e))?;
        if r.mode == Mode::Overlay && !is_mountpoint(&r.path) {
            let lowers: Vec<PathBuf> = r
                .layers
                .iter()
                .map(|d| images.store().layer_path(d))
                .collect();
            mount_overlay(&lowers, &dir, r.idmap.as_ref())?;
        }
        if r.idmap != opts.idmap {
            return Err(ImageError::Unsupported {
                what: "root filesystem",
                detail: format!(
                    "{} was made for user namespace {:?}, now {:?} is asked: remove the container first",
                    r.path.display(),
                    r.idmap,
                    opts.idmap
                ),
            });
        }
        return Ok(r);
    }
    // Shared lock until rootfs.json names the layers: prune cannot take them meanwhile.
    let _shared = images.store().lock_shared()?;
    let img = images.resolve(image)?;
    let lowers = images.unpack(&img)?;
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        crate::fsalloc::mark_top_dir(parent);
    }
    fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let merged = dir.join("merged");
    fs::create_dir_all(&merged).map_err(io_err("creating", &merged))?;
    let layers: Vec<Digest> = img.config.rootfs.diff_ids.clone();
    let mut r = Rootfs {
        id: id.to_string(),
        image: img.record.name.clone(),
        manifest: img.record.manifest.clone(),
        layers,
        mode: Mode::Overlay,
        path: merged.clone(),
        upper: Some(dir.join("upper")),
        idmap: opts.idmap,
    };
    // Record first: from here on, prune keeps the layers and `remove` can clean up.
    write_atomic(
        &meta,
        &serde_json::to_vec_pretty(&r).map_err(|e| malformed("rootfs", e))?,
    )?;
    let overlay = if opts.copy || lowers.is_empty() {
        Err(None)
    } else {
        mount_overlay(&lowers, &dir, opts.idmap.as_ref()).map_err(Some)
    };
    if let Err(why) = overlay {
        if let Some(e) = &why {
            tracing::warn!("overlayfs refused ({e}); copying the image's layers instead");
        }
        for l in &lowers {
            copy_layer(l, &merged)?;
        }
        if let Some(map) = &opts.idmap {
            crate::userns::shift_owner(&merged, map).map_err(userns_err)?;
        }
        r.mode = Mode::Copy;
        r.upper = None;
        write_atomic(
            &meta,
            &serde_json::to_vec_pretty(&r).map_err(|e| malformed("rootfs", e))?,
        )?;
    }
    Ok(r)
}

fn userns_err(e: crate::userns::UsernsError) -> ImageError {
    ImageError::Unsupported {
        what: "user namespace",
        detail: e.to_string(),
    }
}

fn mount_overlay(lowers: &[PathBuf], dir: &Path, idmap: Option<&IdMap>) -> Result<()> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    let merged = dir.join("merged");
    for d in [&upper, &work] {
        fs::create_dir_all(d).map_err(io_err("creating", d))?;
    }
    let Some(map) = idmap else {
        return mount_overlay_on(lowers, &upper, &work, &merged);
    };
    // The mapped root owns its writes (copy-ups keep the owners the idmapped layers
    // show, so the upper layer holds host ids of the range).
    for d in [&upper, &work] {
        std::os::unix::fs::chown(d, Some(map.host), Some(map.host)).map_err(io_err("chown", d))?;
    }
    // Each layer idmapped on a detached clone, attached under `lower/` only for as long as
    // the overlay mount needs to name it: overlayfs keeps its own references.
    let ns = crate::userns::userns_fd(map).map_err(userns_err)?;
    let staging = dir.join("lower");
    let mut attached: Vec<PathBuf> = Vec::new();
    let res = (|| {
        let mut idmapped = Vec::new();
        for (i, l) in lowers.iter().enumerate() {
            let at = staging.join(i.to_string());
            fs::create_dir_all(&at).map_err(io_err("creating", &at))?;
            idmapped_clone(l, &at, &ns).map_err(|e| ImageError::Mount {
                what: "idmapping layer on",
                path: at.clone(),
                source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
            attached.push(at.clone());
            idmapped.push(at);
        }
        mount_overlay_on(&idmapped, &upper, &work, &merged)
    })();
    for at in &attached {
        let _ = umount2(at, MntFlags::MNT_DETACH);
    }
    let _ = fs::remove_dir_all(&staging);
    res
}

/// A clone of `src` seen through the user namespace `ns` (files of host id 0 show as
/// the namespace's root), attached on `at`.
fn idmapped_clone(src: &Path, at: &Path, ns: &std::os::fd::OwnedFd) -> io::Result<()> {
    use crate::runtime::syscall;
    use std::os::fd::AsFd;
    let tree = syscall::open_tree(src, false)?;
    syscall::idmap_mount(tree.as_fd(), ns.as_fd())?;
    syscall::move_mount(tree.as_fd(), at)
}

fn mount_overlay_on(lowers: &[PathBuf], upper: &Path, work: &Path, merged: &Path) -> Result<()> {
    let (upper, work, merged) = (
        upper.to_path_buf(),
        work.to_path_buf(),
        merged.to_path_buf(),
    );
    // overlayfs takes the topmost lower layer first.
    let lower: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    for p in lowers.iter().chain([&upper, &work]) {
        let s = p.to_string_lossy();
        if s.contains([':', ',']) {
            return Err(ImageError::Unsupported {
                what: "BERTH_ROOT path",
                detail: format!("{s} contains ':' or ',', which overlayfs options cannot carry"),
            });
        }
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if data.len() >= 4000 {
        return Err(ImageError::Unsupported {
            what: "image",
            detail: format!(
                "{} layers make overlayfs options longer than a page",
                lowers.len()
            ),
        });
    }
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| ImageError::Mount {
        what: "mounting overlayfs on",
        path: merged.clone(),
        source: e,
    })
}

/// Unmounts and deletes container `id`'s root filesystem, including its writes.
/// Removing one that is not there is not an error.
pub fn remove(berth_root: &Path, id: &str) -> Result<()> {
    check_id(id)?;
    let dir = base(berth_root).join(id);
    let merged = dir.join("merged");
    if is_mountpoint(&merged) {
        umount2(&merged, MntFlags::empty())
            .or_else(|_| umount2(&merged, MntFlags::MNT_DETACH))
            .map_err(|e| ImageError::Mount {
                what: "unmounting",
                path: merged.clone(),
                source: e,
            })?;
    }
    match fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", &dir)(e)),
    }
}

/// Every container root filesystem recorded under `berth_root`.
pub fn list(berth_root: &Path) -> Result<Vec<Rootfs>> {
    let b = base(berth_root);
    let rd = match fs::read_dir(&b) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("reading", &b)(e)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let meta = e.path().join("rootfs.json");
        if let Ok(bytes) = fs::read(&meta) {
            out.push(
                serde_json::from_slice(&bytes)
                    .map_err(|e| malformed(meta.display().to_string(), e))?,
            );
        }
    }
    Ok(out)
}

/// Whether `p` is a mount point: its device differs from its parent's, or it is listed
/// in /proc/self/mountinfo (overlay can share the parent's device number).
pub fn is_mountpoint(p: &Path) -> bool {
    let Ok(canon) = fs::canonicalize(p) else {
        return false;
    };
    let want = canon.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .any(|mp| unescape_mountinfo(mp) == want)
        })
        .unwrap_or(false)
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Copies one unpacked layer over `dst`, applying its whiteouts (0/0 character
/// devices remove, an opaque directory first empties its counterpart).
pub fn copy_layer(src: &Path, dst: &Path) -> Result<()> {
    let rd = fs::read_dir(src).map_err(io_err("reading", src))?;
    for e in rd {
        let e = e.map_err(io_err("reading", src))?;
        let s = e.path();
        let d = dst.join(e.file_name());
        let m = fs::symlink_metadata(&s).map_err(io_err("inspecting", &s))?;
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() && m.rdev() == 0 {
            remove_any(&d)?;
            continue;
        }
        if ft.is_dir() {
            let opaque = get_xattr(&s, OPAQUE_XATTR).as_deref() == Some(b"y");
            match fs::symlink_metadata(&d) {
                Ok(dm) if dm.is_dir() => {
                    if opaque {
                        for c in fs::read_dir(&d).map_err(io_err("reading", &d))?.flatten() {
                            remove_any(&c.path())?;
                        }
                    }
                }
                Ok(_) => {
                    remove_any(&d)?;
                    fs::create_dir(&d).map_err(io_err("creating", &d))?;
                }
                Err(_) => fs::create_dir(&d).map_err(io_err("creating", &d))?,
            }
            copy_layer(&s, &d)?;
            copy_meta(&s, &d, &m)?;
            continue;
        }
        remove_any(&d)?;
        if ft.is_symlink() {
            let t = fs::read_link(&s).map_err(io_err("reading link", &s))?;
            std::os::unix::fs::symlink(&t, &d).map_err(io_err("creating symlink", &d))?;
        } else if ft.is_file() {
            fs::copy(&s, &d).map_err(io_err("copying to", &d))?;
        } else {
            let kind = if ft.is_char_device() {
                nix::sys::stat::SFlag::S_IFCHR
            } else if ft.is_block_device() {
                nix::sys::stat::SFlag::S_IFBLK
            } else if ft.is_fifo() {
                nix::sys::stat::SFlag::S_IFIFO
            } else {
                continue; // sockets are not part of images
            };
            nix::sys::stat::mknod(
                &d,
                kind,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                m.rdev(),
            )
            .map_err(|e| ImageError::Mount {
                what: "making device node",
                path: d.clone(),
                source: e,
            })?;
        }
        copy_meta(&s, &d, &m)?;
    }
    Ok(())
}

fn remove_any(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(io_err("removing", p)),
        Ok(_) => fs::remove_file(p).map_err(io_err("removing", p)),
        Err(_) => Ok(()),
    }
}

fn copy_meta(s: &Path, d: &Path, m: &fs::Metadata) -> Result<()> {
    std::os::unix::fs::lchown(d, Some(m.uid()), Some(m.gid())).map_err(io_err("chown", d))?;
    if !m.file_type().is_symlink() {
        fs::set_permissions(d, fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(io_err("chmod", d))?;
    }
    for name in list_xattrs(s) {
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        if let Some(v) = get_xattr(s, &name) {
            let _ = set_xattr(d, &name, &v);
        }
    }
    let Ok(p) = CString::new(d.as_os_str().as_bytes()) else {
        return Ok(());
    };
    let t = [
        nix::libc::timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        nix::libc::timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    ];
    // SAFETY: valid NUL-terminated path and two timespecs.
    unsafe {
        nix::libc::utimensat(
            nix::libc::AT_FDCWD,
            p.as_ptr(),
            t.as_ptr(),
            nix::libc::AT_SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}

fn list_xattrs(p: &Path) -> Vec<String> {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid path and buffer.
    let n = unsafe { nix::libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf.truncate(n as usize);
    buf.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Seeds a new, empty volume with the image's content at the path it is mounted on, as
/// Docker does on a volume's first use: `target` is that path in the container's (merged)
/// root filesystem at `rootfs`, `dst` the volume's data directory. A volume that already holds
/// anything is left alone, so data written by an earlier container is never overwritten;
/// a path the image does not have seeds nothing.
pub fn seed_volume(rootfs: &Path, target: &str, dst: &Path) -> Result<bool> {
    // Walk the target inside the root filesystem without following symbolic links: an
    // image whose `/data` links to `/` must not seed the host's root into a volume.
    let mut src = rootfs.to_path_buf();
    for part in Path::new(target).components() {
        if let std::path::Component::Normal(p) = part {
            src.push(p);
            match fs::symlink_metadata(&src) {
                Ok(m) if m.is_dir() => {}
                _ => return Ok(false),
            }
        }
    }
    let src = src.as_path();
    let Ok(meta) = fs::symlink_metadata(src) else {
        return Ok(false);
    };
    if !meta.is_dir() || src == rootfs {
        return Ok(false);
    }
    let mut entries = fs::read_dir(dst).map_err(io_err("reading", dst))?;
    if entries.next().is_some() {
        return Ok(false);
    }
    copy_layer(src, dst)?;
    // The volume's root takes the owner and mode of the directory it stands for, so a
    // service running as a non-root user can write where its image let it.
    copy_meta(src, dst, &meta)?;
    Ok(true)
}
