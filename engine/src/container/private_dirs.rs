//! BERTH_ROOT and BERTH_RUN hold what must stay root's: records with the containers'
//! environments (secrets, often), logs, control sockets that start and kill processes.
//! A directory another user can write (or one on the way to it) would let that user
//! swap a record or a socket, so Berth refuses it before using it; what it creates
//! itself is root's alone (0700).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::types::{EngineError, Result};

const GROUP_OR_OTHER_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

fn refuse(what: &str, path: &Path, problem: String) -> EngineError {
    EngineError::InvalidConfig {
        field: what.to_string(),
        problem: format!("{}: {problem}", path.display()),
    }
}

/// Checks `dir` (`what` is `BERTH_ROOT` or `BERTH_RUN`) and its ancestors, then creates
/// what is missing with mode 0700.
///
/// Refused: `dir` writable by group or others, or owned by another user; an ancestor
/// another user can write without the sticky bit (/tmp, 1777, is fine: others cannot
/// rename what is ours in it).
pub fn ensure_private_dir(what: &str, dir: &Path) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let mut existing = Some(dir);
    let mut missing = vec![];
    while let Some(p) = existing {
        match std::fs::symlink_metadata(p) {
            Ok(_) => break,
            Err(_) => {
                missing.push(p);
                existing = p.parent();
            }
        }
    }
    for anc in existing.into_iter().flat_map(Path::ancestors) {
        let md = std::fs::metadata(anc).map_err(|e| refuse(what, anc, e.to_string()))?;
        let mode = md.permissions().mode();
        let is_dir_itself = anc == dir;
        if is_dir_itself {
            if mode & GROUP_OR_OTHER_WRITE != 0 {
                return Err(refuse(
                    what,
                    anc,
                    format!(
                        "is writable by other users (mode {:o}); run `chmod go-w {}` or choose another directory",
                        mode & 0o7777,
                        anc.display()
                    ),
                ));
            }
            if md.uid() != me && md.uid() != 0 {
                return Err(refuse(
                    what,
                    anc,
                    format!("belongs to uid {}, not to the user running Berth", md.uid()),
                ));
            }
        } else if mode & GROUP_OR_OTHER_WRITE != 0 && mode & STICKY == 0 {
            return Err(refuse(
                what,
                anc,
                format!(
                    "is on the way to {} and writable by other users (mode {:o}) without the sticky bit: they could replace it",
                    dir.display(),
                    mode & 0o7777
                ),
            ));
        }
    }
    for p in missing.into_iter().rev() {
        match std::fs::create_dir(p) {
            Ok(()) => std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| refuse(what, p, e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(refuse(what, p, format!("cannot create it: {e}"))),
        }
    }
    Ok(())
}

/// Creates `dir` if needed and makes it root's alone (0700), whatever it was.
pub fn make_private(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(super::types::io_err(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
        super::types::io_err(format!("chmod 0700 {}", dir.display())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(p: &Path, m: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    #[test]
    fn a_writable_root_is_refused_and_a_new_one_is_private() {
        let t = tempfile::tempdir().unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let e = ensure_private_dir("BERTH_ROOT", &open)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("writable by other users") && e.contains("chmod go-w"),
            "{e}"
        );
        chmod(&open, 0o775);
        assert!(
            ensure_private_dir("BERTH_ROOT", &open).is_err(),
            "group-writable"
        );

        // Under a world-writable parent without the sticky bit: refused too.
        let under = open.join("root");
        chmod(&open, 0o757);
        let e = ensure_private_dir("BERTH_RUN", &under)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sticky"), "{e}");

        // Created fresh: 0700, every level Berth made.
        chmod(&open, 0o755);
        let fresh = open.join("a/b");
        ensure_private_dir("BERTH_ROOT", &fresh).unwrap();
        for p in [open.join("a"), fresh] {
            let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o700, "{}", p.display());
        }
        // Under /tmp (1777, sticky): fine.
        ensure_private_dir("BERTH_ROOT", t.path()).unwrap();
    }
}
