//! Where ext4 puts new inodes: per-container and per-layer directory trees are made and
//! removed by the thousand, and on ext4 *without a journal* (this fleet's root file
//! system) making files where many were just removed is slow: the allocator skips, inode
//! by inode, every inode of the group freed in the last minutes (`recently_deleted`, one
//! buffer lookup each), so a `down` followed by an `up` (or a prune by a pull) paid a
//! scan per new file; perf showed the scan as over half of a pull's CPU and of an `up`'s.
//! Marking the parent of such trees as a "top directory" (`chattr +T`) lets ext4's Orlov
//! allocator start each tree in a block group of its own choosing (few directories, many
//! free inodes) instead of its parent's. Best effort: other file systems refuse the
//! ioctl, and nothing changes.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `FS_TOPDIR_FL` from linux/fs.h (`chattr +T`); the libc crate does not name it.
pub const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Marks `dir` as the top of unrelated directory trees (see the module's text). Once
/// per directory and process: callers ask on every container they make, and the look
/// is an open and an ioctl.
pub fn mark_top_dir(dir: &Path) {
    static MARKED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let marked = || MARKED.lock().unwrap_or_else(|e| e.into_inner());
    if marked().contains(dir) {
        return;
    }
    let Ok(f) = File::open(dir) else { return };
    marked().insert(dir.to_path_buf());
    let Some(flags) = inode_flags(&f) else { return };
    if flags & FS_TOPDIR_FL == 0 {
        let flags = flags | FS_TOPDIR_FL;
        // SAFETY: FS_IOC_SETFLAGS reads one int through a valid pointer.
        unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) };
    }
}

/// The inode flags of an open file (`lsattr`), where the file system has them.
pub fn inode_flags(f: &File) -> Option<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through a valid pointer.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    (rc == 0).then_some(flags)
}
