//! The name → id index of containers: `BERTH_ROOT/containers/.names/by-name/NAME`, a
//! symlink to the container's id. Without it, finding a container by name read every
//! record, and `up` and `down` look up each container several times: a stack paid for
//! its size squared (a 50-service `down` read 10,000 records).
//!
//! Kept under the engine's global names lock (creators hold it), and written before the
//! record: a link whose record is missing or names someone else is stale and counts for
//! nothing, so a creator killed in between leaves nothing that blocks the name. Once the
//! index exists it is authoritative; it is built from the records, under the same lock,
//! the first time a creator finds it missing (a store from before the index).

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub(super) struct Names {
    index: PathBuf,
}

impl Names {
    /// The index beside the names lock in `names_dir` (`containers/.names`).
    pub(super) fn new(names_dir: &Path) -> Self {
        Names {
            index: names_dir.join("by-name"),
        }
    }

    /// Whether the index exists (and so answers for every container).
    pub(super) fn built(&self) -> bool {
        self.index.is_dir()
    }

    /// The id `name` points at, if any (the caller checks the record).
    pub(super) fn get(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.index.join(name)).ok()?;
        target.to_str().map(str::to_string)
    }

    /// Builds the index from `records()` (name, id pairs) unless it exists: in a
    /// directory of its own, renamed into place whole.
    pub(super) fn ensure_built(
        &self,
        records: impl FnOnce() -> Vec<(String, String)>,
    ) -> io::Result<()> {
        if self.built() {
            return Ok(());
        }
        let tmp = self
            .index
            .with_file_name(format!("by-name.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        for (name, id) in records() {
            std::os::unix::fs::symlink(&id, tmp.join(&name))?;
        }
        std::fs::rename(&tmp, &self.index)
    }

    /// Points `name` at `id`, replacing what was there (the caller found it stale).
    pub(super) fn set(&self, name: &str, id: &str) -> io::Result<()> {
        let link = self.index.join(name);
        let tmp = self.index.join(format!(".{name}.{id}"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(id, &tmp)?;
        std::fs::rename(&tmp, &link)
    }

    /// Removes `name`'s link if it still points at `id`.
    pub(super) fn unset(&self, name: &str, id: &str) {
        if self.get(name).as_deref() == Some(id) {
            let _ = std::fs::remove_file(self.index.join(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_once_then_set_get_unset() {
        let t = tempfile::tempdir().unwrap();
        let n = Names::new(t.path());
        assert!(!n.built());
        assert_eq!(n.get("web"), None);
        n.ensure_built(|| vec![("web".into(), "a".repeat(32))])
            .unwrap();
        assert!(n.built());
        assert_eq!(n.get("web"), Some("a".repeat(32)));
        // Built once: a second build does not read the records again.
        n.ensure_built(|| panic!("rebuilt")).unwrap();
        n.set("web", &"b".repeat(32)).unwrap();
        assert_eq!(n.get("web"), Some("b".repeat(32)));
        // Only the id it points at takes it away.
        n.unset("web", &"a".repeat(32));
        assert_eq!(n.get("web"), Some("b".repeat(32)));
        n.unset("web", &"b".repeat(32));
        assert_eq!(n.get("web"), None);
    }
}
