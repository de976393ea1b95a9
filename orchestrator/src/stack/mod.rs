//! The stack file: loading, interpolation, merging and the typed model.
//!
//! Pipeline (see DESIGN.md, "stack"): each file is parsed into a [`yaml::Node`] tree that
//! keeps file:line:column for every value, interpolated ([`interpolate`]) with the
//! environment ([`dotenv`]), `include`d and `extends`-resolved, merged over the earlier
//! files, then deserialized into the typed [`model`] and checked for consistency.

pub mod config;
pub mod de;
pub mod dotenv;
pub mod emit;
pub mod error;
pub mod interpolate;
pub mod load;
pub mod merge;
pub mod model;
pub mod paths;
pub mod project;
pub mod validate;
pub mod yaml;

pub use load::Options;
pub use project::{load, Loaded};
