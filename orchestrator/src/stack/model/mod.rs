//! The typed, normalized model of a Compose file.
//!
//! Every attribute of the Compose Specification has a Rust type here. `Deserialize`
//! accepts every short and long syntax the Specification allows and normalizes to one
//! form (short port specs expand to one long entry per port, volume strings become
//! mounts, `depends_on` lists become maps, string commands become argument lists, byte
//! sizes become integers …). `Serialize` prints that normalized long form, with struct
//! fields in alphabetical order of their YAML names, as `docker compose config` does,
//! and only what was set.
//!
//! The loader deserializes a [`Project`] from its YAML node tree (see the conventions in
//! `de.rs`: `x-` keys arrive under `__x`, scalars through the typed calls), then calls
//! [`Project::resolve_paths`] (or [`Service::resolve_paths`] per file directory).
//! Rules that tie several attributes of one service together run during
//! deserialization ([`Service::check`]), so their errors carry the service's location.
//!
//! `x-` extensions are kept in each struct's `extensions` and not serialized: the printer
//! adds them back.

pub(crate) mod de;

pub mod build;
pub mod depends_on;
pub mod deploy;
pub mod env;
pub mod healthcheck;
pub mod hooks;
pub mod networks;
pub mod paths;
pub mod ports;
pub mod references;
pub mod resources;
pub mod service;
pub mod shell_words;
pub mod top;
pub mod units;
pub mod volumes;

pub use build::Build;
pub use depends_on::{Condition, Dependency};
pub use deploy::{
    Deploy, DeployRestartPolicy, DeviceCount, DeviceRequest, DiscreteResourceSpec, GenericResource,
    Placement, PlacementPreference, ResourceLimits, ResourceReservations, Resources, UpdateConfig,
    UpdateOrder,
};
pub use env::{EnvFile, ExtraHosts};
pub use healthcheck::Healthcheck;
pub use hooks::{Develop, PreStartHook, ServiceHook, WatchAction, WatchRule};
pub use networks::{ServiceModel, ServiceNetwork};
pub use ports::{Port, PortMode, Protocol};
pub use references::FileReference;
pub use resources::{
    BlkioBytesLimit, BlkioConfig, BlkioIopsLimit, BlkioWeight, DeviceMapping, Ulimit,
};
pub use service::{
    CgroupMode, CredentialSpec, Extends, Logging, Provider, PullPolicy, RestartPolicy, Service,
};
pub use top::{Config, FileObject, Ipam, IpamPool, Model, Network, Project, Secret, Volume};
pub use units::{ByteSize, Duration, FileMode, Microseconds, SwapLimit};
pub use volumes::{
    BindOptions, BindRecursive, ImageOptions, Propagation, SeLinux, ServiceVolume, TmpfsOptions,
    VolumeOptions, VolumeType,
};

/// `x-` extensions of a mapping, kept in the order written.
pub type Extensions = indexmap::IndexMap<String, serde_json::Value>;
