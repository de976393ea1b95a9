//! Images: a content-addressed store, imports, registry pulls and pushes, layers
//! unpacked once each for overlayfs, and garbage collection. See DESIGN.md, "image/".

pub mod digest;
pub mod error;
pub mod manifest;
pub mod reference;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::{ImageError, Result};
pub use reference::Reference;
pub use store::{ImageRecord, Store};
pub mod images;
pub mod import;

pub use images::{Image, Images, PruneReport};
pub mod registry;

pub use registry::{pull, push, Progress, PullReport, PushReport, RegistryOptions};
pub mod export;
