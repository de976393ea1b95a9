//! The step cache: `BUILD_ROOT/cache/<key>.json` says which layer (if any) a step made,
//! where the key hashes the step's parent chain, the instruction as it ran (variables
//! substituted), the environment and, for COPY/ADD, the content of the files copied.
//! An entry whose blob was pruned is a miss.

use std::fs;
use std::path::{Path, PathBuf};

use berth_engine::image::store::write_atomic;
use berth_engine::image::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::layer::Layer;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub layer: Option<Layer>,
    /// When the step first ran (RFC 3339): a cached rebuild keeps the image identical.
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// The next link of a cache chain: sha256 of the parent key and this step's text.
pub fn chain(parent: &str, step: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update(b"\n");
    h.update(step.as_bytes());
    hex::encode(h.finalize())
}

impl Cache {
    pub fn open(berth_root: &Path) -> Cache {
        Cache {
            dir: berth_root.join("build/cache"),
        }
    }

    pub fn get(&self, key: &str, store: &Store) -> Option<Entry> {
        let bytes = fs::read(self.dir.join(format!("{key}.json"))).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        match &e.layer {
            Some(l) if !store.has_blob(&l.digest) => None,
            _ => Some(e),
        }
    }

    pub fn put(&self, key: &str, e: &Entry) {
        // A cache that cannot be written only costs time on the next build.
        if fs::create_dir_all(&self.dir).is_ok() {
            if let Ok(b) = serde_json::to_vec(e) {
                let _ = write_atomic(&self.dir.join(format!("{key}.json")), &b);
            }
        }
    }
}
