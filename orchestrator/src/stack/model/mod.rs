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
//!
//! What the model asks of the deserializer that feeds it:
//! - fields with one shape use the typed calls (`deserialize_u64`, `deserialize_bool`,
//!   `deserialize_string` …); fields with several shapes use `deserialize_any`, and a
//!   long form reached that way gathers its own `x-` keys (see `de.rs`);
//! - values the Specification types as "string or number" inside mappings
//!   (`environment`, `labels`, `driver_opts` …) come through `deserialize_any`, so a
//!   plain YAML number becomes the text of that number (`1.10` → `"1.1"`), as in
//!   Compose; quoting keeps the text exactly;
//! - file modes (`mode: 0440`) are asked with `deserialize_str`, to read the digits as
//!   written (octal), which YAML 1.2 would read as decimal.
//!
//! Types with a short syntax implement `Deserialize` by hand around a derived long form
//! (`#[serde(remote = "Self")]`), which makes the derive an inherent
//! `Type::deserialize` that knows only the long form. Call the trait
//! (`<ServiceVolume as Deserialize>::deserialize`, `serde_json::from_value` …), never the
//! inherent function, when deserializing such a type directly.

pub(crate) mod de;

pub mod build;
pub mod depends_on;
pub mod deploy;
pub mod env;
pub mod healthcheck;
pub mod hooks;
pub mod networks;
pub mod options;
pub mod paths;
pub mod policies;
pub mod ports;
pub mod references;
pub mod resources;
pub mod service;
pub mod shell_words;
pub mod top;
pub mod units;
pub mod userns;
pub mod volumes;

pub use build::Build;
pub use depends_on::{Condition, Dependency};
pub use deploy::{
    Deploy, DeployRestartPolicy, DeviceCount, DeviceRequest, DiscreteResourceSpec, GenericResource,
    Placement, PlacementPreference, ResourceLimits, ResourceReservations, Resources, UpdateConfig,
    UpdateOrder,
};
pub use env::{EnvFile, ExtraHosts, HOST_GATEWAY};
pub use healthcheck::Healthcheck;
pub use hooks::{Develop, PreStartHook, ServiceHook, WatchAction, WatchRule};
pub use networks::{ServiceModel, ServiceNetwork};
pub use options::{CredentialSpec, Extends, Logging, Provider};
pub use policies::{PullPolicy, RestartPolicy};
pub use ports::{Port, PortMode, Protocol};
pub use references::FileReference;
pub use resources::{
    BlkioBytesLimit, BlkioConfig, BlkioIopsLimit, BlkioWeight, DeviceMapping, Ulimit,
};
pub use service::{CgroupMode, Service};
pub use top::{
    unset_variable, Config, FileObject, Ipam, IpamPool, Model, Network, Project, Secret, Volume,
};
pub use units::{ByteSize, Duration, FileMode, Microseconds, SwapLimit};
pub use volumes::{
    BindOptions, BindRecursive, ImageOptions, Propagation, SeLinux, ServiceVolume, TmpfsOptions,
    VolumeOptions, VolumeType,
};

/// `x-` extensions of a mapping, kept in the order written.
pub type Extensions = indexmap::IndexMap<String, serde_json::Value>;
