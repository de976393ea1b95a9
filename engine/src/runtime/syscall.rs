//! The narrow seam between mount/namespace logic and the kernel: [`Syscall`] has one
//! implementation that calls Linux and one that records calls, so the order and
//! arguments of mounts can be unit-tested without root.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

pub trait Syscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    /// Makes `target` read-only without touching its other flags (mount_setattr(2)),
    /// recursively for every mount below it when asked.
    fn mount_setattr_ro(&self, target: &Path, recursive: bool) -> io::Result<()>;
    /// pivot_root into `new_root` and detach the old root (the `pivot_root(".", ".")`
    /// idiom, so no directory is needed inside a possibly read-only rootfs).
    fn pivot_root(&self, new_root: &Path) -> io::Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> io::Result<()>;
    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    fn mkdir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates an empty file (a bind-mount target) if none exists.
    fn create_file(&self, path: &Path) -> io::Result<()>;
    fn sethostname(&self, name: &str) -> io::Result<()>;
    fn setdomainname(&self, name: &str) -> io::Result<()>;
    /// Attaches the detached mount tree `fd` (from [`open_tree`]) on `target`.
    fn move_mount(&self, fd: BorrowedFd, target: &Path) -> io::Result<()>;
    fn fchdir(&self, fd: BorrowedFd) -> io::Result<()>;
}

/// A detached clone of the mount at `path` (recursively with `recursive`): opened by
/// the runtime as host root, it can be attached later from inside a user namespace
/// whose root may not even traverse the directories on the way to `path`.
pub fn open_tree(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let c = c_path(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: a valid C string; the fd is owned right away.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn c_path(p: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// mount_setattr(2): sets `attr_set` on the mount at `path` (or on the mount `fd` is,
/// with `path` empty), with the user namespace `userns` for `MOUNT_ATTR_IDMAP`.
pub fn mount_setattr(
    fd: Option<BorrowedFd>,
    path: &Path,
    flags: libc::c_uint,
    attr_set: u64,
    userns: Option<BorrowedFd>,
) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let c = c_path(path)?;
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |u| u.as_raw_fd() as u64),
    };
    let (dirfd, flags) = match fd {
        Some(fd) => (fd.as_raw_fd(), flags | libc::AT_EMPTY_PATH as libc::c_uint),
        None => (libc::AT_FDCWD, flags),
    };
    // SAFETY: a valid C string and a correctly sized, initialised mount_attr.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the detached mount `fd` the id mapping of user namespace `userns`: a file of
/// host id N shows as the host id that container id N maps to.
pub fn idmap_mount(fd: BorrowedFd, userns: BorrowedFd) -> io::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    mount_setattr(Some(fd), Path::new(""), 0, MOUNT_ATTR_IDMAP, Some(userns))
}

/// move_mount(2): attaches the detached mount `fd` on `target`.
pub fn move_mount(fd: BorrowedFd, target: &Path) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let c = c_path(target)?;
    let empty = std::ffi::CString::default();
    // SAFETY: a valid fd and C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The real thing.
pub struct LinuxSyscall;

fn nix_io(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(nix_io)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        nix::mount::umount2(target, flags).map_err(nix_io)
    }

    fn mount_setattr_ro(&self, target: &Path, recursive: bool) -> io::Result<()> {
        const MOUNT_ATTR_RDONLY: u64 = 0x1;
        const AT_RECURSIVE: libc::c_uint = 0x8000;
        let flags = if recursive { AT_RECURSIVE } else { 0 };
        mount_setattr(None, target, flags, MOUNT_ATTR_RDONLY, None)
    }

    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        use nix::fcntl::{open, OFlag};
        let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let old = open("/", dir, Mode::empty()).map_err(nix_io)?;
        let new = open(new_root, dir, Mode::empty()).map_err(nix_io)?;
        nix::unistd::fchdir(&new).map_err(nix_io)?;
        nix::unistd::pivot_root(".", ".").map_err(nix_io)?;
        // The old root now sits on top of "."; step onto it and detach it, after
        // making it a slave so the unmount does not propagate to the host.
        nix::unistd::fchdir(&old).map_err(nix_io)?;
        nix::mount::mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(nix_io)?;
        nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(nix_io)?;
        nix::unistd::chdir("/").map_err(nix_io)
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> io::Result<()> {
        nix::sys::stat::mknod(path, kind, perm, dev).map_err(nix_io)
    }

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        std::os::unix::fs::chown(path, uid, gid)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn mkdir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        if path.symlink_metadata().is_ok() {
            return Ok(());
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name).map_err(nix_io)
    }

    fn setdomainname(&self, name: &str) -> io::Result<()> {
        // SAFETY: pointer and length describe `name`'s bytes.
        let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn move_mount(&self, fd: BorrowedFd, target: &Path) -> io::Result<()> {
        move_mount(fd, target)
    }

    fn fchdir(&self, fd: BorrowedFd) -> io::Result<()> {
        nix::unistd::fchdir(fd).map_err(nix_io)
    }
}

/// Records every call as a line of text and succeeds; `fail_on` makes calls whose
/// line contains it fail with EPERM, to test error paths.
#[derive(Default)]
pub struct RecordingSyscall {
    pub calls: RefCell<Vec<String>>,
    pub fail_on: Option<String>,
}

impl RecordingSyscall {
    fn rec(&self, line: String) -> io::Result<()> {
        let fail = self
            .fail_on
            .as_ref()
            .is_some_and(|f| line.contains(f.as_str()));
        self.calls.borrow_mut().push(line);
        if fail {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(())
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.borrow_mut())
    }
}

/// "MS_BIND | MS_REC", or "(empty)".
fn flag_names(f: MsFlags) -> String {
    if f.is_empty() {
        return "(empty)".into();
    }
    let s = format!("{f:?}");
    s.strip_prefix("MsFlags(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(&s)
        .to_string()
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.rec(format!(
            "mount {} {} {} {} {}",
            source.map_or("-".into(), |s| s.display().to_string()),
            target.display(),
            fstype.unwrap_or("-"),
            flag_names(flags),
            data.unwrap_or("-")
        ))
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        self.rec(format!("umount2 {} {flags:?}", target.display()))
    }
    fn mount_setattr_ro(&self, target: &Path, recursive: bool) -> io::Result<()> {
        self.rec(format!(
            "setattr_ro {} recursive={recursive}",
            target.display()
        ))
    }
    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        self.rec(format!("pivot_root {}", new_root.display()))
    }
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> io::Result<()> {
        self.rec(format!(
            "mknod {} {kind:?} {:o} {}:{}",
            path.display(),
            perm.bits(),
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev)
        ))
    }
    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        self.rec(format!("chown {} {uid:?} {gid:?}", path.display()))
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.rec(format!(
            "symlink {} -> {}",
            link.display(),
            target.display()
        ))
    }
    fn mkdir_all(&self, path: &Path) -> io::Result<()> {
        self.rec(format!("mkdir {}", path.display()))
    }
    fn create_file(&self, path: &Path) -> io::Result<()> {
        self.rec(format!("touch {}", path.display()))
    }
    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.rec(format!("sethostname {name}"))
    }
    fn setdomainname(&self, name: &str) -> io::Result<()> {
        self.rec(format!("setdomainname {name}"))
    }
    fn move_mount(&self, fd: BorrowedFd, target: &Path) -> io::Result<()> {
        let _ = fd;
        self.rec(format!("move_mount fd {}", target.display()))
    }
    fn fchdir(&self, fd: BorrowedFd) -> io::Result<()> {
        let _ = fd;
        self.rec("fchdir fd".into())
    }
}
