//! Secrets and configs whose value the stack file gives inline (`content:`) or names an
//! environment variable for (`environment:`, read from the environment the stack was
//! loaded with, as docker compose does). The engine mounts files, so each value is
//! written to a root-only file under `BERTH_ROOT/etc/CONTAINER/inline/` for it: a secret's
//! file is removed again once the engine has its own copy (mode 0400 by default), a
//! config's stays for its read-only bind while the container lives.
//!
//! The value goes nowhere else: not into the container's record (only the path), its
//! labels, the events or any message (errors name the secret and the variable).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::stack::model::{unset_variable, FileObject, Service};
use crate::stack::Loaded;

/// The written files, by `secrets/NAME` or `configs/NAME`.
#[derive(Debug, Default)]
pub struct InlineFiles {
    pub files: BTreeMap<String, PathBuf>,
    /// The secrets' files: removed by [`InlineFiles::drop_secrets`] once copied.
    secrets: Vec<PathBuf>,
}

/// The key [`InlineFiles::files`] uses for a reference.
pub fn key(kind: &str, source: &str) -> String {
    format!("{kind}/{source}")
}

impl InlineFiles {
    /// Writes the inline and environment values `svc` refers to into `dir` (made 0700).
    pub fn write(svc: &Service, loaded: &Loaded, dir: &Path) -> Result<InlineFiles, String> {
        let mut out = InlineFiles::default();
        for (i, (kind, source, top)) in loaded.project.file_objects_of(svc).enumerate() {
            let Some(value) = value_of(kind, source, top, loaded)? else {
                continue;
            };
            if out.files.is_empty() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            let path = dir.join(format!("{}-{i}", &kind[..kind.len() - 1]));
            let _ = std::fs::remove_file(&path);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(value.as_bytes()))
                .map_err(|e| format!("writing {kind}.{source} to {}: {e}", path.display()))?;
            if kind == "secrets" {
                out.secrets.push(path.clone());
            }
            out.files.insert(key(kind, source), path);
        }
        Ok(out)
    }

    /// Removes the secrets' files (the engine copied them when it created the container).
    pub fn drop_secrets(&self) {
        for p in &self.secrets {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The value of a secret or config given inline or by variable; None for a `file:` one.
fn value_of<'a>(
    kind: &str,
    source: &str,
    top: Option<&'a FileObject>,
    loaded: &'a Loaded,
) -> Result<Option<&'a str>, String> {
    let Some(top) = top else { return Ok(None) };
    if top.file.is_some() {
        return Ok(None);
    }
    if let Some(c) = &top.content {
        return Ok(Some(c));
    }
    if let Some(var) = &top.environment {
        return loaded
            .environment
            .get(var)
            .map(|v| Some(v.as_str()))
            .ok_or_else(|| unset_variable(kind, source, var));
    }
    Ok(None)
}
