//! The stack on Kubernetes: `berth kube convert|apply|down|ps`.
//!
//! Everything here starts from the loaded, normalized model ([`crate::stack::Loaded`]),
//! never from YAML: the same interpolation, merging, `extends`, profiles and env-file
//! precedence as `berth up`. [`convert`] turns it into typed Kubernetes objects
//! (k8s-openapi), saying in a [`warnings::Warning`] every attribute it cannot carry;
//! [`render`] prints them; [`apply`] sends them to a cluster through kube-rs.

pub mod apply;
pub mod convert;
pub mod names;
mod pod;
pub mod render;
mod storage;
pub mod warnings;

pub use convert::{convert, Conversion, ConvertError, ConvertOptions, Manifest, ServiceType};
pub use warnings::Warning;

/// The label every object Berth writes carries: `apply --prune`, `down` and `ps` find the
/// project's objects by it.
pub const PROJECT_LABEL: &str = "io.berth.project";
/// The service a workload, Service or ConfigMap belongs to; also the Pod selector.
pub const SERVICE_LABEL: &str = "io.berth.service";
/// Prefix of the per-network Pod labels the NetworkPolicies select on.
pub const NETWORK_LABEL_PREFIX: &str = "io.berth.network/";
/// On Pods whose every network is `internal: true`: their egress is held to those
/// networks (and the cluster DNS).
pub const INTERNAL_LABEL: &str = "io.berth.internal-only";
/// On Pods of `network_mode: none` services: a NetworkPolicy lets nothing in or out.
pub const NO_NETWORK_LABEL: &str = "io.berth.network-none";
/// Server-side apply's field manager.
pub const FIELD_MANAGER: &str = "berth";
