//! Manifests as text: one multi-document YAML stream, or one file per object.

use std::path::{Path, PathBuf};

use super::convert::Manifest;
use crate::stack::emit::to_yaml;

/// All manifests as one YAML stream, `---` between documents, in the conversion's order.
pub fn to_stream(manifests: &[Manifest]) -> String {
    let mut out = String::new();
    for (i, m) in manifests.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(&m.value));
    }
    out
}

/// The file a manifest is written to with `-o DIR`: `NN-kind-name.yaml`, numbered so a
/// directory listing (and `kubectl apply -f DIR`) keeps the order.
pub fn file_name(index: usize, m: &Manifest) -> String {
    format!(
        "{:03}-{}-{}.yaml",
        index + 1,
        m.kind.to_ascii_lowercase(),
        m.name
    )
}

/// Writes one file per manifest into `dir` (created if missing); returns the paths.
pub fn write_dir(dir: &Path, manifests: &[Manifest]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (i, m) in manifests.iter().enumerate() {
        let p = dir.join(file_name(i, m));
        std::fs::write(&p, to_yaml(&m.value))?;
        out.push(p);
    }
    Ok(out)
}
