//! The one error type of the image store, with variants that say what was wrong and
//! what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong with images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file-system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes of a blob do not hash to the digest they were asked for under.
    #[error("blob {expected} is corrupted: its content hashes to {actual}; it was refused and not stored (pull or load the image again)")]
    DigestMismatch { expected: String, actual: String },
    /// A digest string is not `sha256:` and 64 lowercase hex digits.
    #[error("invalid digest {0:?}: expected sha256: followed by 64 hex digits")]
    BadDigest(String),
    /// An image reference does not parse.
    #[error("invalid image reference {reference:?}: {reason}")]
    BadReference { reference: String, reason: String },
    /// No image of that name is in the store.
    #[error("no image {0} in the store (pull, load or import it first)")]
    NotFound(String),
    /// A JSON document (manifest, config, index, record) is malformed.
    #[error("malformed {what}: {reason}")]
    Malformed { what: String, reason: String },
    /// A manifest or layer of a kind Berth does not handle.
    #[error("unsupported {what}: {detail}")]
    Unsupported { what: &'static str, detail: String },
    /// An image index with no entry for this host.
    #[error("image {reference} has no manifest for {platform} (it offers: {offered})")]
    NoPlatform {
        reference: String,
        platform: String,
        offered: String,
    },
    /// A tar entry that would land outside its layer, or go through a link.
    #[error("layer {layer}: entry {entry:?} refused: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: String,
    },
    /// A layer's uncompressed content does not match the diff_id in the image config.
    #[error("layer {layer} unpacks to {actual}, but the image config says {expected}: the image is corrupted")]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },
    /// The registry refused or failed.
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    /// An image still used by a container cannot be removed.
    #[error("image {image} is used by container(s) {containers}: remove them first")]
    InUse { image: String, containers: String },
    /// A mount or unmount failed.
    #[error("{what} {path}: {source}")]
    Mount {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// An archive is not in a format Berth reads.
    #[error("{path}: {reason}")]
    BadArchive { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, ImageError>;

/// `io_err("reading", path)` turns an `io::Error` into an [`ImageError::Io`].
pub(crate) fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.into();
    move |source| ImageError::Io { what, path, source }
}

pub(crate) fn malformed(what: impl Into<String>, reason: impl ToString) -> ImageError {
    ImageError::Malformed {
        what: what.into(),
        reason: reason.to_string(),
    }
}
