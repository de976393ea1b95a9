//! berth-builder: Dockerfiles to images on Berth's own engine, no daemon, no BuildKit.
//!
//! ```text
//! dockerfile/  the language: directives, continuations, instructions, stages; words/
//!              substitution (${A:-x}) and quote removal
//! ignore       .dockerignore and COPY globs (Docker's matching rules)
//! view         a stage's root filesystem read through its layers (whiteouts, links)
//! copy         COPY/ADD planned (sources, destination, owners) and hashed for the cache
//! layer        layers written as tar straight into the image store, then unpacked
//! run          RUN: overlay over the stage's layers + berth-runtime in a new process
//! cache        step cache: parent chain + instruction + env + content -> layer
//! exec         the build: stages (parallel when independent), config, the final image
//! ```
//!
//! ```no_run
//! use berth_builder::{build, BuildOptions, Quiet};
//! use berth_engine::image::{Images, Store};
//! let images = Images::open(&Store::berth_root()).unwrap();
//! let mut opts = BuildOptions::new("./app");
//! opts.tags = vec!["app:dev".into()];
//! let report = build(&images, &opts, &Quiet).unwrap();
//! println!("{} ({} of {} steps cached)", report.record.name, report.cached, report.steps);
//! ```

pub mod cache;
pub mod copy;
pub mod dockerfile;
pub mod error;
pub mod exec;
pub mod ignore;
pub mod layer;
pub mod run;
pub mod view;

pub use error::{BuildError, Result};
pub use exec::{
    build, default_runtime, load, BuildOptions, BuildReport, DockerfileSource, Progress, Quiet,
};
