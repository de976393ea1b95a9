//! The container's filesystem: propagation, the spec's mounts, /dev, pivot_root,
//! masked and read-only paths. Runs inside the container's new mount namespace; every
//! kernel call goes through [`Syscall`].

use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::{makedev, Mode, SFlag};
use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};

use super::error::{invalid, Result, RuntimeError};
use super::syscall::Syscall;
use crate::cgroups::Layout;

/// What a mount's `options` say, split into kernel flags, propagation and fs data.
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    /// `rro` or `ro` on an `rbind`: read-only all the way down.
    pub recursive_ro: bool,
}

pub fn parse_options(opts: &[String]) -> MountOptions {
    let mut m = MountOptions {
        flags: MsFlags::empty(),
        propagation: vec![],
        data: vec![],
        recursive_ro: false,
    };
    for o in opts {
        let (set, flag) = match o.as_str() {
            "defaults" => continue,
            "ro" => (true, MsFlags::MS_RDONLY),
            "rw" => (false, MsFlags::MS_RDONLY),
            "nosuid" => (true, MsFlags::MS_NOSUID),
            "suid" => (false, MsFlags::MS_NOSUID),
            "nodev" => (true, MsFlags::MS_NODEV),
            "dev" => (false, MsFlags::MS_NODEV),
            "noexec" => (true, MsFlags::MS_NOEXEC),
            "exec" => (false, MsFlags::MS_NOEXEC),
            "sync" => (true, MsFlags::MS_SYNCHRONOUS),
            "async" => (false, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (true, MsFlags::MS_DIRSYNC),
            "remount" => (true, MsFlags::MS_REMOUNT),
            "mand" => (true, MsFlags::MS_MANDLOCK),
            "nomand" => (false, MsFlags::MS_MANDLOCK),
            "atime" => (false, MsFlags::MS_NOATIME),
            "noatime" => (true, MsFlags::MS_NOATIME),
            "diratime" => (false, MsFlags::MS_NODIRATIME),
            "nodiratime" => (true, MsFlags::MS_NODIRATIME),
            "relatime" => (true, MsFlags::MS_RELATIME),
            "norelatime" => (false, MsFlags::MS_RELATIME),
            "strictatime" => (true, MsFlags::MS_STRICTATIME),
            "nostrictatime" => (false, MsFlags::MS_STRICTATIME),
            "bind" => (true, MsFlags::MS_BIND),
            "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
            "rro" => {
                m.recursive_ro = true;
                (true, MsFlags::MS_RDONLY)
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                m.propagation.push(propagation(o).expect("listed above"));
                continue;
            }
            // Accepted for compatibility, nothing to enforce here.
            "tmpcopyup" | "rrw" | "idmap" | "ridmap" => continue,
            other => {
                m.data.push(other.to_string());
                continue;
            }
        };
        if set {
            m.flags |= flag;
        } else {
            m.flags &= !flag;
        }
    }
    if m.flags.contains(MsFlags::MS_REC | MsFlags::MS_BIND) && m.flags.contains(MsFlags::MS_RDONLY)
    {
        m.recursive_ro = true;
    }
    m
}

/// Propagation names as the spec spells them (`rootfsPropagation`, mount options).
pub fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Joins `unsafe_path` below `root`, resolving symlinks as if `root` were "/": the
/// result never leaves `root`, whatever links the (untrusted) rootfs holds.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    let mut pending: Vec<PathBuf> = unsafe_path
        .components()
        .rev()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut cur = PathBuf::new(); // relative to root
    let mut links = 0;
    while let Some(part) = pending.pop() {
        match part.components().next() {
            None | Some(Component::RootDir) | Some(Component::CurDir) => continue,
            Some(Component::ParentDir) => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let candidate = cur.join(&part);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(invalid(
                        "mounts",
                        format!("too many symlinks resolving {}", unsafe_path.display()),
                    ));
                }
                let target = std::fs::read_link(&full)
                    .map_err(super::error::sys(format!("readlink {}", full.display())))?;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                for c in target.components().rev() {
                    pending.push(PathBuf::from(c.as_os_str()));
                }
            }
            _ => cur = candidate,
        }
    }
    Ok(root.join(cur))
}

/// Everything the filesystem setup needs to know besides the spec.
pub struct RootfsContext<'a> {
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// Host cgroup layout, for `cgroup` mounts.
    pub cgroups: Option<&'a Layout>,
    /// In a new user namespace device nodes cannot be made: bind them from the host.
    pub in_userns: bool,
    /// In a new user namespace: the rootfs and bind sources as detached mounts the
    /// runtime took as host root (the mapped root may not traverse BERTH_ROOT), with
    /// `rootfs` then `.` (the init's working directory is the rootfs).
    pub detached: Option<&'a Detached>,
}

/// Detached clones of the rootfs and of every bind mount's source (by mount index),
/// taken before the user namespace exists. `rootfs` must be the working directory when
/// the new mount namespace is made: the root tree is attached on it.
pub struct Detached {
    pub root: std::os::fd::OwnedFd,
    /// Per spec mount: the clone and whether it is a directory.
    pub binds: Vec<Option<(std::os::fd::OwnedFd, bool)>>,
}

/// Opens the detached clones [`Detached`] describes (as host root, before any
/// namespace of the container exists).
pub fn open_detached(spec: &Spec, rootfs: &Path, bundle: &Path) -> Result<Detached> {
    use super::syscall::open_tree;
    let root = open_tree(rootfs, true).map_err(mount_err(format!(
        "cloning rootfs {} for the user namespace",
        rootfs.display()
    )))?;
    let mut binds = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let opts = parse_options(m.options().as_deref().unwrap_or_default());
        let typ = m.typ().as_deref().unwrap_or("bind");
        if typ != "bind" && !opts.flags.contains(MsFlags::MS_BIND) {
            binds.push(None);
            continue;
        }
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            bundle.join(src)
        };
        let fd = open_tree(&src, opts.flags.contains(MsFlags::MS_REC))
            .map_err(mount_err(format!("cloning bind source {}", src.display())))?;
        binds.push(Some((fd, src.is_dir())));
    }
    Ok(Detached { root, binds })
}

fn mount_err(what: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Sys { op: what, source }
}

/// Mount namespace and rootfs before pivot_root: propagation, the rootfs bind,
/// every spec mount, and /dev.
pub fn prepare(sys: &dyn Syscall, spec: &Spec, ctx: &RootfsContext) -> Result<()> {
    let linux = spec.linux().as_ref();
    // Keep host mount events flowing in but never ours out: rslave unless asked.
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .map(|p| {
            propagation(p).ok_or_else(|| {
                invalid(
                    "linux.rootfsPropagation",
                    format!("{p:?} is not a propagation mode"),
                )
            })
        })
        .transpose()?
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    let root_prop = if prop.contains(MsFlags::MS_SHARED) {
        // pivot_root refuses a shared parent; share after the pivot instead.
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        prop
    };
    sys.mount(None, Path::new("/"), None, root_prop, None)
        .map_err(mount_err(
            "making / ".to_string() + &format!("{root_prop:?}"),
        ))?;
    // pivot_root needs the new root to be a mount point.
    if let Some(d) = ctx.detached {
        use std::os::fd::AsFd;
        // On the working directory (the rootfs, carried into this namespace), then into
        // it: every path below is relative to it.
        sys.move_mount(d.root.as_fd(), Path::new("."))
            .map_err(mount_err("attaching the rootfs".into()))?;
        sys.fchdir(d.root.as_fd())
            .map_err(mount_err("entering the rootfs".into()))?;
    } else {
        sys.mount(
            Some(ctx.rootfs),
            ctx.rootfs,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(mount_err(format!(
            "bind-mounting rootfs {}",
            ctx.rootfs.display()
        )))?;
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mount_one(sys, i, m, ctx).map_err(|e| match e {
            RuntimeError::Sys { op, source } => RuntimeError::Sys {
                op: format!("mounts[{i}] ({}): {op}", m.destination().display()),
                source,
            },
            e => e,
        })?;
    }
    setup_dev(sys, spec, ctx)
}

fn mount_one(sys: &dyn Syscall, index: usize, m: &Mount, ctx: &RootfsContext) -> Result<()> {
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let dest = secure_join(ctx.rootfs, m.destination())?;
    let typ = m.typ().as_deref().unwrap_or("bind");
    let is_bind = typ == "bind" || opts.flags.contains(MsFlags::MS_BIND);
    if is_bind {
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            ctx.bundle.join(src)
        };
        let clone = ctx
            .detached
            .and_then(|d| d.binds.get(index))
            .and_then(|b| b.as_ref());
        let is_dir = match clone {
            Some((_, dir)) => *dir,
            None => src.is_dir(),
        };
        if is_dir {
            sys.mkdir_all(&dest)
                .map_err(mount_err(format!("mkdir {}", dest.display())))?;
        } else {
            if let Some(parent) = dest.parent() {
                sys.mkdir_all(parent)
                    .map_err(mount_err(format!("mkdir {}", parent.display())))?;
            }
            sys.create_file(&dest)
                .map_err(mount_err(format!("creating {}", dest.display())))?;
        }
        let bind = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        match clone {
            Some((fd, _)) => {
                use std::os::fd::AsFd;
                sys.move_mount(fd.as_fd(), &dest)
            }
            None => sys.mount(Some(&src), &dest, None, bind, None),
        }
        .map_err(mount_err(format!(
            "bind {} on {}",
            src.display(),
            dest.display()
        )))?;
        // A bind ignores other flags: apply them by remounting the new mount.
        let rest = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !rest.is_empty() {
            sys.mount(
                None,
                &dest,
                None,
                rest | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
                None,
            )
            .map_err(mount_err(format!(
                "remounting {} with {rest:?}",
                dest.display()
            )))?;
        }
        if opts.recursive_ro {
            sys.mount_setattr_ro(&dest, true)
                .map_err(mount_err(format!(
                    "making {} read-only recursively",
                    dest.display()
                )))?;
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        mount_cgroup(sys, &dest, &opts, ctx)?;
    } else {
        sys.mkdir_all(&dest)
            .map_err(mount_err(format!("mkdir {}", dest.display())))?;
        let src = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        let data = opts.data.join(",");
        let data = (!data.is_empty()).then_some(data.as_str());
        match sys.mount(Some(&src), &dest, Some(typ), opts.flags, data) {
            // sysfs belongs to the network namespace's owner: one the networking made
            // (the host's user namespace) cannot be mounted from a new user namespace.
            // Bind the host's, read-only, as runc does.
            Err(e) if typ == "sysfs" && ctx.in_userns && e.raw_os_error() == Some(libc::EPERM) => {
                sys.mount(
                    Some(Path::new("/sys")),
                    &dest,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(mount_err(format!("binding /sys on {}", dest.display())))?;
                sys.mount_setattr_ro(&dest, true)
                    .map_err(mount_err(format!("making {} read-only", dest.display())))?;
            }
            r => r.map_err(mount_err(format!("mount {typ} on {}", dest.display())))?,
        }
    }
    for p in &opts.propagation {
        sys.mount(None, &dest, None, *p, None)
            .map_err(mount_err(format!(
                "setting propagation of {}",
                dest.display()
            )))?;
    }
    Ok(())
}

/// A `cgroup` mount shows the container its cgroups: cgroup2 on a unified host; on a
/// v1 host a tmpfs with one mount per hierarchy, as runc does.
fn mount_cgroup(
    sys: &dyn Syscall,
    dest: &Path,
    opts: &MountOptions,
    ctx: &RootfsContext,
) -> Result<()> {
    let flags = opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    sys.mkdir_all(dest)
        .map_err(mount_err(format!("mkdir {}", dest.display())))?;
    match ctx.cgroups {
        Some(Layout::V1 { hierarchies, .. }) => {
            let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
            sys.mount(
                Some(Path::new("tmpfs")),
                dest,
                Some("tmpfs"),
                tmpfs_flags,
                Some("mode=755"),
            )
            .map_err(mount_err(format!("tmpfs on {}", dest.display())))?;
            // One mount per distinct hierarchy, named after its mount point (cpu,cpuacct).
            let mut done = std::collections::BTreeSet::new();
            for (ctl, root) in hierarchies {
                let Some(name) = root.file_name() else {
                    continue;
                };
                if !done.insert(name.to_owned()) {
                    continue;
                }
                let opts: Vec<&str> = hierarchies
                    .iter()
                    .filter(|(_, r)| *r == root)
                    .map(|(c, _)| c.as_str())
                    .collect();
                let _ = ctl;
                let sub = dest.join(name);
                sys.mkdir_all(&sub)
                    .map_err(mount_err(format!("mkdir {}", sub.display())))?;
                sys.mount(
                    Some(Path::new("cgroup")),
                    &sub,
                    Some("cgroup"),
                    flags,
                    Some(&opts.join(",")),
                )
                .map_err(mount_err(format!(
                    "cgroup {} on {}",
                    opts.join(","),
                    sub.display()
                )))?;
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                sys.mount(
                    None,
                    dest,
                    None,
                    tmpfs_flags | MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT,
                    Some("mode=755"),
                )
                .map_err(mount_err(format!(
                    "remounting {} read-only",
                    dest.display()
                )))?;
            }
        }
        _ => {
            sys.mount(
                Some(Path::new("cgroup2")),
                dest,
                Some("cgroup2"),
                flags,
                None,
            )
            .map_err(mount_err(format!("cgroup2 on {}", dest.display())))?;
        }
    }
    Ok(())
}

struct Dev {
    path: &'static str,
    major: u64,
    minor: u64,
}

/// The devices every container gets (OCI runtime spec, "Default Devices").
const DEFAULT_DEVICES: &[Dev] = &[
    Dev {
        path: "/dev/null",
        major: 1,
        minor: 3,
    },
    Dev {
        path: "/dev/zero",
        major: 1,
        minor: 5,
    },
    Dev {
        path: "/dev/full",
        major: 1,
        minor: 7,
    },
    Dev {
        path: "/dev/random",
        major: 1,
        minor: 8,
    },
    Dev {
        path: "/dev/urandom",
        major: 1,
        minor: 9,
    },
    Dev {
        path: "/dev/tty",
        major: 5,
        minor: 0,
    },
];

#[allow(clippy::too_many_arguments)]
fn make_node(
    sys: &dyn Syscall,
    ctx: &RootfsContext,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    owner: (Option<u32>, Option<u32>),
) -> Result<()> {
    let dest = secure_join(ctx.rootfs, path)?;
    if let Some(parent) = dest.parent() {
        sys.mkdir_all(parent)
            .map_err(mount_err(format!("mkdir {}", parent.display())))?;
    }
    if ctx.in_userns {
        sys.create_file(&dest)
            .map_err(mount_err(format!("creating {}", dest.display())))?;
        sys.mount(Some(path), &dest, None, MsFlags::MS_BIND, None)
            .map_err(mount_err(format!(
                "binding host {} into the container",
                path.display()
            )))?;
        return Ok(());
    }
    if dest.symlink_metadata().is_ok() {
        // Already there (a rootfs that ships /dev): replace it with the real node.
        let _ = std::fs::remove_file(&dest);
    }
    sys.mknod(
        &dest,
        kind,
        Mode::from_bits_truncate(mode),
        makedev(major, minor),
    )
    .map_err(mount_err(format!("mknod {}", dest.display())))?;
    if owner.0.is_some() || owner.1.is_some() {
        sys.chown(&dest, owner.0, owner.1)
            .map_err(mount_err(format!("chown {}", dest.display())))?;
    }
    Ok(())
}

fn setup_dev(sys: &dyn Syscall, spec: &Spec, ctx: &RootfsContext) -> Result<()> {
    let devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for d in DEFAULT_DEVICES {
        if devices.iter().any(|sd| sd.path() == Path::new(d.path)) {
            continue;
        }
        make_node(
            sys,
            ctx,
            Path::new(d.path),
            SFlag::S_IFCHR,
            d.major,
            d.minor,
            0o666,
            (None, None),
        )?;
    }
    for (i, d) in devices.iter().enumerate() {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(invalid(
                    format!("linux.devices[{i}].type"),
                    "\"a\" is a cgroup rule, not a device node type",
                ))
            }
        };
        make_node(
            sys,
            ctx,
            d.path(),
            kind,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            (d.uid(), d.gid()),
        )?;
    }
    let dev = secure_join(ctx.rootfs, Path::new("/dev"))?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let l = dev.join(link);
        if l.symlink_metadata().is_ok() {
            continue;
        }
        sys.symlink(Path::new(target), &l)
            .map_err(mount_err(format!("symlink {}", l.display())))?;
    }
    for d in ["pts", "shm"] {
        let p = dev.join(d);
        sys.mkdir_all(&p)
            .map_err(mount_err(format!("mkdir {}", p.display())))?;
    }
    Ok(())
}

/// pivot_root into the rootfs; the old root is detached, never just chrooted away.
pub fn pivot(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    sys.pivot_root(rootfs)
        .map_err(mount_err(format!("pivot_root into {}", rootfs.display())))
}

/// After pivot_root: read-only and masked paths, a read-only root, shared propagation.
pub fn finish(sys: &dyn Syscall, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        let path = Path::new(p);
        if path.symlink_metadata().is_err() {
            continue; // nothing to protect
        }
        sys.mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(mount_err(format!("binding read-only path {p}")))?;
        sys.mount_setattr_ro(path, true)
            .map_err(mount_err(format!("making {p} read-only")))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        let path = Path::new(p);
        let Ok(md) = path.symlink_metadata() else {
            continue;
        };
        if md.is_dir() {
            sys.mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )
            .map_err(mount_err(format!("masking directory {p}")))?;
        } else {
            sys.mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            )
            .map_err(mount_err(format!("masking {p}")))?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        sys.mount_setattr_ro(Path::new("/"), false)
            .map_err(mount_err("making the root filesystem read-only".into()))?;
    }
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if let Some(f) = propagation(p).filter(|f| f.contains(MsFlags::MS_SHARED)) {
            sys.mount(None, Path::new("/"), None, f, None)
                .map_err(mount_err("making / shared".into()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::syscall::RecordingSyscall;

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = parse_options(&[
            "nosuid".into(),
            "ro".into(),
            "rslave".into(),
            "size=65536k".into(),
            "mode=755".into(),
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, vec!["size=65536k", "mode=755"]);
        assert!(!o.recursive_ro);
        let o = parse_options(&["rbind".into(), "ro".into()]);
        assert!(o.recursive_ro);
        let o = parse_options(&["ro".into(), "rw".into()]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn secure_join_stays_inside_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("a/up")).unwrap();
        assert_eq!(
            secure_join(root, Path::new("/a/abs/x")).unwrap(),
            root.join("etc/x")
        );
        assert_eq!(
            secure_join(root, Path::new("/a/up/etc")).unwrap(),
            root.join("etc")
        );
        assert_eq!(
            secure_join(root, Path::new("/../../x")).unwrap(),
            root.join("x")
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(secure_join(root, Path::new("/loop")).is_err());
    }

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn prepare_binds_rootfs_mounts_and_makes_dev() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let src = tmp.path().join("data");
        std::fs::create_dir_all(&src).unwrap();
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro"]},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
            ],
            "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]}
        }));
        let sys = RecordingSyscall::default();
        let ctx = RootfsContext {
            rootfs: &rootfs,
            bundle: tmp.path(),
            cgroups: None,
            in_userns: false,
            detached: None,
        };
        prepare(&sys, &s, &ctx).unwrap();
        let calls = sys.take();
        let r = rootfs.display().to_string();
        assert_eq!(calls[0], "mount - / - MS_REC | MS_SLAVE -");
        assert_eq!(calls[1], format!("mount {r} {r} - MS_BIND | MS_REC -"));
        let has = |s: &str| calls.iter().any(|c| c == s);
        assert!(
            has(&format!("mount proc {r}/proc proc (empty) -")),
            "{calls:#?}"
        );
        assert!(
            has(&format!(
                "mount {} {r}/data - MS_BIND | MS_REC -",
                src.display()
            )),
            "{calls:#?}"
        );
        assert!(
            has(&format!(
                "mount - {r}/data - MS_RDONLY | MS_REMOUNT | MS_BIND -"
            )),
            "{calls:#?}"
        );
        assert!(
            has(&format!("setattr_ro {r}/data recursive=true")),
            "{calls:#?}"
        );
        assert!(
            has(&format!("mknod {r}/dev/null SFlag(S_IFCHR) 666 1:3")),
            "{calls:#?}"
        );
        assert!(
            has(&format!("mknod {r}/dev/fuse SFlag(S_IFCHR) 666 10:229")),
            "{calls:#?}"
        );
        assert!(
            has(&format!("symlink {r}/dev/ptmx -> pts/ptmx")),
            "{calls:#?}"
        );
    }

    #[test]
    fn userns_binds_devices_instead_of_mknod() {
        let tmp = tempfile::tempdir().unwrap();
        let s = spec(serde_json::json!({"ociVersion": "1.0.2"}));
        let sys = RecordingSyscall::default();
        let ctx = RootfsContext {
            rootfs: tmp.path(),
            bundle: tmp.path(),
            cgroups: None,
            in_userns: true,
            detached: None,
        };
        prepare(&sys, &s, &ctx).unwrap();
        let calls = sys.take();
        assert!(!calls.iter().any(|c| c.starts_with("mknod")));
        assert!(calls.iter().any(|c| c.starts_with("mount /dev/null ")));
    }

    #[test]
    fn a_failing_mount_names_the_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [{"destination": "/sys", "type": "sysfs", "source": "sysfs"}]
        }));
        let sys = RecordingSyscall {
            fail_on: Some("sysfs".into()),
            ..Default::default()
        };
        let ctx = RootfsContext {
            rootfs: tmp.path(),
            bundle: tmp.path(),
            cgroups: None,
            in_userns: false,
            detached: None,
        };
        let e = prepare(&sys, &s, &ctx).unwrap_err().to_string();
        assert!(
            e.contains("mounts[0] (/sys)") && e.contains("Operation not permitted"),
            "{e}"
        );
    }

    #[test]
    fn v1_cgroup_mount_is_a_tmpfs_of_hierarchies_made_read_only() {
        let tmp = tempfile::tempdir().unwrap();
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]}]
        }));
        let mut h = std::collections::BTreeMap::new();
        h.insert(
            "cpu".to_string(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
        );
        h.insert(
            "cpuacct".to_string(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
        );
        h.insert("memory".to_string(), PathBuf::from("/sys/fs/cgroup/memory"));
        let layout = Layout::V1 {
            hierarchies: h,
            unified: None,
        };
        let sys = RecordingSyscall::default();
        let ctx = RootfsContext {
            rootfs: tmp.path(),
            bundle: tmp.path(),
            cgroups: Some(&layout),
            in_userns: false,
            detached: None,
        };
        prepare(&sys, &s, &ctx).unwrap();
        let r = tmp.path().display().to_string();
        let calls = sys.take();
        let has = |c: &str| calls.iter().any(|x| x == c);
        assert!(
            has(&format!(
                "mount tmpfs {r}/sys/fs/cgroup tmpfs MS_NOSUID | MS_NODEV | MS_NOEXEC mode=755"
            )),
            "{calls:#?}"
        );
        assert!(has(&format!("mount cgroup {r}/sys/fs/cgroup/cpu,cpuacct cgroup MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC cpu,cpuacct")), "{calls:#?}");
        assert!(has(&format!("mount cgroup {r}/sys/fs/cgroup/memory cgroup MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC memory")), "{calls:#?}");
        assert!(has(&format!("mount - {r}/sys/fs/cgroup - MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REMOUNT mode=755")), "{calls:#?}");
    }

    #[test]
    fn finish_masks_and_protects_existing_paths_only() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": true},
            "linux": {
                "maskedPaths": ["/proc/self/status", "/tmp", "/nonexistent-berth"],
                "readonlyPaths": ["/etc"]
            }
        }));
        let sys = RecordingSyscall::default();
        finish(&sys, &s).unwrap();
        let calls = sys.take();
        assert_eq!(
            calls,
            vec![
                "mount /etc /etc - MS_BIND | MS_REC -".to_string(),
                "setattr_ro /etc recursive=true".into(),
                "mount /dev/null /proc/self/status - MS_BIND -".into(),
                "mount tmpfs /tmp tmpfs MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC size=0".into(),
                "setattr_ro / recursive=false".into(),
            ]
        );
    }
}
