//! Helpers shared by the end-to-end tests (here under tests/tests/ and in the crates'
//! own tests/ directories).

use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// Where Debian's `busybox-static` puts its binary (scripts/deps installs it).
pub const BUSYBOX: &str = "/bin/busybox";

/// Builds a minimal root filesystem in `dir`: a static busybox, one symlink per applet
/// (`busybox --list-full`), /etc/passwd and /etc/group with root and nobody, and the
/// usual empty mount points. The same recipe as shared/peers/02-make-image.sh.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    if !Path::new(BUSYBOX).exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "/bin/busybox missing: install Debian's busybox-static (scripts/deps does)",
        ));
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev", "root", "run",
        "var/www",
    ] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::copy(BUSYBOX, dir.join("bin/busybox"))?;
    std::fs::set_permissions(
        dir.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    let out = Command::new(BUSYBOX).arg("--list-full").output()?;
    if !out.status.success() {
        return Err(io::Error::other("busybox --list-full failed"));
    }
    for p in String::from_utf8_lossy(&out.stdout).lines() {
        let p = p.trim();
        if p.is_empty() || p == "bin/busybox" {
            continue;
        }
        let link = dir.join(p);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if link.symlink_metadata().is_err() {
            symlink("/bin/busybox", &link)?;
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

/// The busybox root filesystem (with `/var/www/index.html`) as `DIR/rootfs.tar`, ready
/// for `berth image import`; returns the tarball's path.
pub fn busybox_tar(dir: &Path) -> io::Result<std::path::PathBuf> {
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs)?;
    std::fs::write(rootfs.join("var/www/index.html"), "hello from berth\n")?;
    let tar = dir.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()?;
    if !st.success() {
        return Err(io::Error::other("tar failed"));
    }
    Ok(tar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_has_shell_and_users() {
        let tmp = std::env::temp_dir().join(format!("berth-rootfs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        busybox_rootfs(&tmp).unwrap();
        assert!(tmp
            .join("bin/sh")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::read_to_string(tmp.join("etc/passwd"))
            .unwrap()
            .contains("nobody"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
