//! Images: a content-addressed store, imports, registry pulls and pushes, layers
//! unpacked once each for overlayfs, and garbage collection. See DESIGN.md, "image/".
//!
//! What the orchestrator calls:
//!
//! ```no_run
//! # async fn f() -> berth_engine::image::Result<()> {
//! use std::sync::Arc;
//! use berth_engine::image::{self, Images, RegistryOptions, Store};
//! use berth_engine::rootfs;
//!
//! let images = Images::open(&Store::berth_root())?;          // BERTH_ROOT or /var/lib/berth
//! // `image: redis:7-alpine` -> docker.io/library/redis:7-alpine, unless already stored
//! let img = match images.resolve("redis:7-alpine") {
//!     Ok(img) => img,
//!     Err(_) => {
//!         let rep = image::pull(&images, "redis:7-alpine", &RegistryOptions::default(),
//!                               Arc::new(image::registry::Quiet)).await?;
//!         images.image(rep.record)?
//!     }
//! };
//! let cfg = &img.config.config;   // Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts,
//!                                 // Volumes, Labels, StopSignal, Healthcheck
//! let _ = (&cfg.entrypoint, &cfg.cmd, &cfg.env);
//! // The container's root filesystem: overlayfs (image layers read-only, its own upper).
//! let fs = rootfs::prepare(&images, &img.record.name, "proj-web-1", &rootfs::Options::from_env())?;
//! let _root_for_pivot = &fs.path;
//! rootfs::remove(images.berth_root(), "proj-web-1")?;     // unmount, delete its writes
//! # Ok(()) }
//! ```

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
mod live;

pub use images::{Image, Images, PruneReport};
pub mod registry;

pub use registry::{pull, push, Progress, PullReport, PushReport, RegistryOptions};
pub mod export;
