//! The real [`Backend`]: Berth's engine (images, containers under their monitors) and
//! networking, driven from a loaded stack. `observe` and `down` live here too: they read
//! and remove what the same pieces made.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_engine::container::{self as ec, Engine, HealthStatus, LabelFilter, Status};
use berth_engine::image::{self, Images};
use berth_engine::rootfs;
use berth_engine::userns::{Allocator, IdMap, Owner};
use berth_networking::{
    dns, AttachRequest, Config as NetConfig, DnsOptions, HelperProgram, IpamConfig, Ipv6Config,
    Netns, NetworkSpec, Networking, PortMapping,
};

use super::execute::{Backend, Health};
use super::hosts;
use super::inline_files::InlineFiles;
use super::plan::{container_name, Action, ContainerState, Observed, ObservedContainer};
use super::translate::{
    anonymous_prefix, container_config, volume_dir, Placement, LABEL_HASH, LABEL_IMAGE_DIGEST,
    LABEL_NUMBER, LABEL_ONEOFF, LABEL_PROJECT, LABEL_SERVICE,
};
use crate::stack::config::service_hash;
use crate::stack::model::userns::{self, UsernsMode};
use crate::stack::model::{Protocol as PortProtocol, Service};
use crate::stack::Loaded;

/// Where Berth keeps things: `BERTH_ROOT` (survives a reboot) and `BERTH_RUN`.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub run: PathBuf,
}

impl Paths {
    pub fn from_env() -> Paths {
        let var = |k: &str, d: &str| {
            std::env::var_os(k)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(d))
        };
        Paths {
            root: var("BERTH_ROOT", "/var/lib/berth"),
            run: var("BERTH_RUN", "/run/berth"),
        }
    }

    /// When an error says a disk is full (ENOSPC), which of Berth's directories it is
    /// and what to do: the engine's messages name the file, not the remedy.
    pub fn full_disk_hint(&self, error_text: &str) -> Option<String> {
        if !error_text.contains("No space left on device") {
            return None;
        }
        let mut full = Vec::new();
        for (var, dir) in [("BERTH_ROOT", &self.root), ("BERTH_RUN", &self.run)] {
            if let Ok(st) = nix::sys::statvfs::statvfs(dir.as_path()) {
                let free = st.blocks_available() * st.fragment_size();
                if free < 1 << 20 {
                    full.push(format!(
                        "{var} ({}: {} KiB free)",
                        dir.display(),
                        free >> 10
                    ));
                }
            }
        }
        let which = if full.is_empty() {
            "a disk Berth writes to".to_string()
        } else {
            full.join(" and ")
        };
        Some(format!(
            "the disk is full: {which}; free some space, then run the command again (what was written is either whole or not there: records are replaced atomically)"
        ))
    }

    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// Per-container files Berth writes (resolv.conf, hosts).
    fn etc(&self, container: &str) -> PathBuf {
        self.root.join("etc").join(container)
    }
}

pub struct EngineBackend {
    pub loaded: Arc<Loaded>,
    pub paths: Paths,
    pub engine: Engine,
    pub images: Images,
    pub net: Networking,
    /// Image digests resolved during this run, by image reference.
    digests: Mutex<HashMap<String, String>>,
    /// False for `create` / `up --no-start`: containers are made, not started.
    start_created: bool,
    /// `up -t`: how long a container being replaced or removed gets to stop.
    stop_timeout: Option<Duration>,
    /// Containers this run created ahead of their start ([`Backend::prepare`]): one that
    /// then fails to start goes, as a failed create does.
    fresh: Mutex<std::collections::HashSet<String>>,
}

/// A one-off container of a service (`berth run`): its own name, and the service as the
/// command line changed it (command, environment, user, ports, volumes, …).
pub struct OneOff {
    pub name: String,
    pub service: Service,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A field of the stack parsed as an address or subnet (validated when the stack loaded).
fn parsed<T: std::str::FromStr>(field: Option<&String>) -> Option<T> {
    field.and_then(|s| s.parse().ok())
}

impl EngineBackend {
    pub fn new(loaded: Arc<Loaded>, paths: Paths) -> Result<EngineBackend, String> {
        let engine = Engine::new(&paths.root, &paths.run).map_err(err)?;
        let images = Images::open(&paths.root).map_err(err)?;
        let net = Networking::with_nftables(NetConfig {
            root: paths.root.clone(),
            run: paths.run.clone(),
            ..NetConfig::from_env()
        });
        Ok(EngineBackend {
            loaded,
            paths,
            engine,
            images,
            net,
            digests: Mutex::new(HashMap::new()),
            start_created: true,
            stop_timeout: None,
            fresh: Mutex::new(Default::default()),
        })
    }

    /// How long containers the plan replaces or removes get to stop (`up -t`; None: each
    /// container's `stop_grace_period`).
    pub fn with_stop_timeout(mut self, timeout: Option<Duration>) -> EngineBackend {
        self.stop_timeout = timeout;
        self
    }

    /// Containers the plan creates are left created, not started (`create`, `--no-start`).
    pub fn without_start(mut self) -> EngineBackend {
        self.start_created = false;
        self
    }

    fn project(&self) -> &str {
        &self.loaded.name
    }

    /// The image of a service in the store, pulled if missing.
    fn image(&self, reference: &str) -> Result<image::Image, String> {
        if let Ok(found) = self.images.resolve(reference) {
            return Ok(found);
        }
        let handle = tokio::runtime::Handle::try_current().map_err(err)?;
        handle
            .block_on(image::pull(
                &self.images,
                reference,
                &image::RegistryOptions::default(),
                Arc::new(image::registry::Quiet),
            ))
            .map_err(|e| format!("image {reference} is not here and could not be pulled: {e}"))?;
        self.images.resolve(reference).map_err(err)
    }

    /// The digest the service's image resolves to now, if it is in the store.
    pub fn image_digest(&self, reference: &str) -> Option<String> {
        if let Some(d) = self.digests.lock().ok()?.get(reference) {
            return Some(d.clone());
        }
        let d = self
            .images
            .resolve(reference)
            .ok()?
            .record
            .manifest
            .to_string();
        self.digests
            .lock()
            .ok()?
            .insert(reference.to_string(), d.clone());
        Some(d)
    }

    fn network_spec(&self, engine_name: &str) -> Option<NetworkSpec> {
        let (_, n) = self
            .loaded
            .project
            .networks
            .iter()
            .find(|(_, n)| n.name.as_deref() == Some(engine_name))?;
        // `ipam.config` may hold an IPv4 and an IPv6 pool, in either order.
        let pools = n.ipam.as_ref().map(|i| i.config.as_slice()).unwrap_or(&[]);
        let v4 = pools.iter().find(|p| {
            p.subnet
                .as_deref()
                .is_none_or(|s| s.parse::<ipnet::Ipv4Net>().is_ok())
        });
        let v6 = pools.iter().find(|p| {
            p.subnet
                .as_deref()
                .is_some_and(|s| s.parse::<ipnet::Ipv6Net>().is_ok())
        });
        Some(NetworkSpec {
            name: engine_name.to_string(),
            internal: n.internal.unwrap_or(false),
            mtu: n
                .driver_opts
                .get("com.docker.network.driver.mtu")
                .and_then(|v| v.parse().ok()),
            ipam: IpamConfig {
                subnet: parsed(v4.and_then(|p| p.subnet.as_ref())),
                gateway: parsed(v4.and_then(|p| p.gateway.as_ref())),
                ip_range: parsed(v4.and_then(|p| p.ip_range.as_ref())),
            },
            ipv6: (n.enable_ipv6 == Some(true) || v6.is_some()).then(|| Ipv6Config {
                subnet: parsed(v6.and_then(|p| p.subnet.as_ref())),
                gateway: parsed(v6.and_then(|p| p.gateway.as_ref())),
            }),
            // The L2 fast path between members: the networking crate's default
            // (`BERTH_NET_FAST_PATH`).
            fast_path: None,
        })
    }

    fn create_network(&self, name: &str) -> Result<(), String> {
        let spec = self
            .network_spec(name)
            .ok_or_else(|| format!("network {name} is not in the stack"))?;
        let info = self.net.ensure_network(&spec).map_err(err)?;
        crate::fault::point("up.after-network");
        if !self.net.dns_running(&info.name) {
            self.net
                .start_dns(
                    &info.name,
                    &DnsOptions {
                        program: HelperProgram {
                            program: berth_engine::container::helper_program("berth-dns"),
                            args: vec![],
                        },
                        upstreams: None,
                    },
                )
                .map_err(err)?;
            crate::fault::point("up.after-dns");
        }
        Ok(())
    }

    fn service(&self, name: &str) -> Result<&Service, String> {
        self.loaded
            .project
            .services
            .get(name)
            .ok_or_else(|| format!("no service {name} in the stack"))
    }

    /// The network namespace a replica runs in: its own, or another service's.
    fn netns_for(
        &self,
        svc: &Service,
        name: &str,
    ) -> Result<(Option<Netns>, Option<PathBuf>), String> {
        match svc.network_mode.as_deref() {
            // Berth's own network namespace, the host's (a new, empty one was made
            // before: `network_mode: host` had no network at all, not even loopback).
            Some("host") => Ok((None, Some(PathBuf::from("/proc/self/ns/net")))),
            Some(mode) if mode.starts_with("service:") => {
                let other = &mode["service:".len()..];
                let other_name = container_name(self.project(), other, 1);
                let ns = Netns::at(&self.paths.run, &other_name).map_err(err)?;
                if !ns.exists() {
                    return Err(format!(
                        "network_mode {mode}: {other_name} has no network namespace (is it up?)"
                    ));
                }
                Ok((None, Some(ns.path().to_path_buf())))
            }
            Some(mode) if mode.starts_with("container:") => Err(format!(
                "network_mode {mode}: joining a container outside the stack is not supported yet"
            )),
            _ => {
                let ns = Netns::create(&self.paths.run, name).map_err(err)?;
                let path = ns.path().to_path_buf();
                Ok((Some(ns), Some(path)))
            }
        }
    }

    /// `ipc:`/`pid:` as a namespace path to join: `host`, or `service:X` (replica 1 of X,
    /// which the dependency graph started first). Anything else is refused rather than
    /// silently ignored.
    fn shared_namespace(&self, mode: Option<&str>, kind: &str) -> Result<Option<PathBuf>, String> {
        match mode {
            None | Some("") | Some("private") | Some("shareable") => Ok(None),
            // The namespaces Berth itself runs in (the runtime opens this path before it
            // joins anything): PID 1's may be out of reach (a sandbox, a PID namespace).
            Some("host") => Ok(Some(PathBuf::from(format!("/proc/self/ns/{kind}")))),
            Some(m) if m.starts_with("service:") => {
                let other = container_name(self.project(), &m["service:".len()..], 1);
                let pid = self
                    .engine
                    .inspect(&other)
                    .map_err(err)?
                    .pid
                    .ok_or_else(|| format!("{kind}: {m}: {other} is not running"))?;
                Ok(Some(PathBuf::from(format!("/proc/{pid}/ns/{kind}"))))
            }
            Some(m) => Err(format!(
                "{kind}: {m:?} is not supported yet (use host or service:NAME)"
            )),
        }
    }

    /// Whether `container` was created by this run's [`Backend::prepare`] and not yet
    /// started (once: the start takes it off the list).
    fn take_fresh(&self, container: &str) -> bool {
        self.fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(container)
    }

    fn create(&self, service: &str, number: u32) -> Result<(), String> {
        let id = self.create_container(service, number, None)?;
        if self.start_created {
            self.engine.start(&id).map_err(err)?;
            crate::fault::point("up.after-start");
        }
        Ok(())
    }

    /// Makes replica `number` of a service (or, with `oneoff`, a one-off container of
    /// it) with its rootfs, network namespace and files; returns the engine's ID.
    pub fn create_container(
        &self,
        service: &str,
        number: u32,
        oneoff: Option<&OneOff>,
    ) -> Result<String, String> {
        let svc = match oneoff {
            Some(o) => &o.service,
            None => self.service(service)?,
        };
        let reference = svc
            .image
            .clone()
            .unwrap_or_else(|| format!("{}-{service}", self.project()));
        let image = self.image(&reference)?;
        let name = match oneoff {
            Some(o) => o.name.clone(),
            None => container_name(self.project(), service, number),
        };
        let userns = self.userns_map(svc, &name)?;
        let rootfs = rootfs::prepare(
            &self.images,
            &reference,
            &name,
            &rootfs::Options {
                idmap: userns,
                ..Default::default()
            },
        )
        .map_err(err)?;
        crate::fault::point("up.after-rootfs");
        let (own_ns, netns) = self.netns_for(svc, &name)?;
        crate::fault::point("up.after-netns");
        let mut etc_files = Vec::new();
        // The container's /etc/resolv.conf and /etc/hosts, when Berth writes them.
        let mut etc: Option<(String, String)> = None;
        if let Some(ns) = &own_ns {
            let mut requests = Vec::new();
            for (net_key, opts) in &svc.networks {
                let Some(engine_name) = self
                    .loaded
                    .project
                    .networks
                    .get(net_key)
                    .and_then(|n| n.name.clone())
                else {
                    continue;
                };
                // A one-off container answers to its own name only, not the service's.
                let mut dns_names = vec![name.clone()];
                if oneoff.is_none() {
                    dns_names.push(service.to_string());
                    if let Some(o) = opts {
                        dns_names.extend(o.aliases.iter().cloned());
                    }
                }
                if let Some(h) = &svc.hostname {
                    dns_names.push(h.clone());
                }
                requests.push(AttachRequest {
                    network: engine_name,
                    ipv4_address: opts
                        .as_ref()
                        .and_then(|o| o.ipv4_address.as_deref())
                        .and_then(|a| a.parse().ok()),
                    ipv6_address: opts
                        .as_ref()
                        .and_then(|o| o.ipv6_address.as_deref())
                        .and_then(|a| a.parse().ok()),
                    priority: opts.as_ref().and_then(|o| o.priority).unwrap_or(0) as i32,
                    dns_names,
                });
            }
            let attachments = self.net.attach(ns, &requests).map_err(err)?;
            crate::fault::point("up.after-attach");
            if let Some(first) = requests.first() {
                let ports: Vec<PortMapping> = svc
                    .ports
                    .iter()
                    .filter_map(|p| {
                        let host: u16 = p.published.as_deref()?.split('-').next()?.parse().ok()?;
                        let mut m = match p.protocol {
                            PortProtocol::Udp => PortMapping::udp(host, p.target),
                            _ => PortMapping::tcp(host, p.target),
                        };
                        m.host_ip = p.host_ip.as_deref().and_then(|ip| ip.parse().ok());
                        Some(m)
                    })
                    .collect();
                if !ports.is_empty() {
                    self.net.publish(ns, &first.network, &ports).map_err(err)?;
                }
            }
            crate::fault::point("up.after-publish");
            let gateways: Vec<std::net::IpAddr> =
                attachments.iter().map(|a| a.gateway.into()).collect();
            let servers: Vec<std::net::IpAddr> =
                svc.dns.iter().filter_map(|d| d.parse().ok()).collect();
            let resolv = dns::resolv_conf(&gateways, &servers, &svc.dns_search, &svc.dns_opt);
            let addrs: Vec<std::net::IpAddr> = attachments
                .iter()
                .map(|a| a.address.addr().into())
                .collect();
            let host = svc.hostname.clone().unwrap_or_else(|| name.clone());
            // `host-gateway`: the host as the container reaches it, the gateway (a
            // host address on the bridge) of its first network.
            let host_gateway: Vec<std::net::IpAddr> = attachments
                .first()
                .map(|a| {
                    std::iter::once(a.gateway.into())
                        .chain(a.gateway6.map(Into::into))
                        .collect()
                })
                .unwrap_or_default();
            let extra = hosts::entries(svc, &host_gateway);
            etc = Some((resolv, dns::hosts_file(&host, &addrs, &extra)));
        } else if svc.network_mode.as_deref() == Some("host") {
            etc = Some(hosts::host_network_files(svc)?);
        }
        if let Some((resolv, hosts)) = etc {
            let dir = self.paths.etc(&name);
            std::fs::create_dir_all(&dir).map_err(err)?;
            if let Some(parent) = dir.parent() {
                berth_engine::fsalloc::mark_top_dir(parent);
            }
            std::fs::write(dir.join("resolv.conf"), resolv).map_err(err)?;
            std::fs::write(dir.join("hosts"), hosts).map_err(err)?;
            etc_files.push((dir.join("resolv.conf"), "/etc/resolv.conf".to_string()));
            etc_files.push((dir.join("hosts"), "/etc/hosts".to_string()));
            crate::fault::point("up.after-etc");
        }
        let hash = service_hash(&self.loaded, service).unwrap_or_default();
        let inline = InlineFiles::write(svc, &self.loaded, &self.paths.etc(&name).join("inline"))?;
        let placement = Placement {
            project: self.project().to_string(),
            service: service.to_string(),
            number,
            name: name.clone(),
            config_hash: hash,
            image_digest: Some(image.record.manifest.to_string()),
            rootfs: rootfs.path.clone(),
            image: engine_image_config(&image),
            netns,
            ipc: self.shared_namespace(svc.ipc.as_deref(), "ipc")?,
            pid: self.shared_namespace(svc.pid.as_deref(), "pid")?,
            volumes_dir: self.paths.volumes(),
            etc_files,
            userns,
            inline_files: inline.files.clone(),
        };
        for v in &svc.volumes {
            if let (crate::stack::model::VolumeType::Bind, Some(src)) = (v.kind, &v.source) {
                let create = v.bind.as_ref().map(|b| b.create_host_path).unwrap_or(true);
                if create && !Path::new(src).exists() {
                    std::fs::create_dir_all(src)
                        .map_err(|e| format!("creating bind source {src}: {e}"))?;
                }
            }
        }
        let created = self.create_with(svc, &placement, oneoff.is_some());
        // The engine keeps its own copy of each secret (or failed): ours goes either way.
        inline.drop_secrets();
        created
    }

    /// The engine's container for `placement` (volumes made and seeded first).
    fn create_with(
        &self,
        svc: &Service,
        placement: &Placement,
        oneoff: bool,
    ) -> Result<String, String> {
        let mut cfg = container_config(svc, &self.loaded.project, placement)?;
        if oneoff {
            cfg.labels
                .insert(LABEL_ONEOFF.to_string(), "True".to_string());
        }
        for m in &cfg.mounts {
            if let ec::MountSpec::Volume { source, target, .. } = m {
                std::fs::create_dir_all(source).map_err(err)?;
                let nocopy = svc
                    .volumes
                    .iter()
                    .any(|v| &v.target == target && v.volume.as_ref().is_some_and(|o| o.nocopy));
                let seeded = !nocopy
                    && rootfs::seed_volume(&placement.rootfs, target, source)
                        .map_err(|e| format!("seeding the volume at {target}: {e}"))?;
                // A new volume of a user-namespaced service belongs to its mapped root
                // (seeded ones already carry the ids the idmapped image shows).
                if let (Some(map), false) = (&placement.userns, seeded) {
                    let empty = std::fs::read_dir(source)
                        .map(|mut d| d.next().is_none())
                        .unwrap_or(false);
                    if empty {
                        std::os::unix::fs::chown(source, Some(map.host), Some(map.host)).map_err(
                            |e| {
                                format!(
                                    "giving the volume at {target} to the container's root: {e}"
                                )
                            },
                        )?;
                    }
                }
            }
        }
        let id = self.engine.create(cfg).map_err(err)?;
        crate::fault::point("up.after-create");
        Ok(id)
    }

    /// The id range of a service with `userns_mode: auto`: the one its container had
    /// (so files it wrote keep their owner), or a free one.
    fn userns_map(&self, svc: &Service, name: &str) -> Result<Option<IdMap>, String> {
        match userns::parse(svc.userns_mode.as_deref())? {
            UsernsMode::Host => Ok(None),
            UsernsMode::Auto { size } => self
                .userns_allocator()
                .allocate(
                    &Owner {
                        project: self.project().to_string(),
                        container: name.to_string(),
                    },
                    size,
                )
                .map(Some)
                .map_err(err),
        }
    }

    pub fn userns_allocator(&self) -> Allocator {
        Allocator::new(&self.paths.root)
    }

    /// Frees the id ranges of the project's containers that are gone (`down`).
    pub fn release_userns(&self) -> Result<(), String> {
        self.userns_allocator()
            .release_where(self.project(), |c| self.engine.resolve(c).is_ok())
            .map_err(err)
    }

    /// The project's one-off containers (`berth run`), by name: `down` removes them,
    /// `up` leaves them alone.
    pub fn oneoff_containers(&self) -> Result<Vec<String>, String> {
        Ok(self
            .engine
            .list(
                &LabelFilter::new()
                    .with(LABEL_PROJECT, self.project())
                    .has(LABEL_ONEOFF),
            )
            .map_err(err)?
            .into_iter()
            .map(|c| c.name)
            .collect())
    }

    /// Stops a container (if there is one by that name) as `down` does before removing.
    pub fn stop_container(&self, name: &str, timeout: Option<Duration>) -> Result<(), String> {
        if self.engine.resolve(name).is_ok() {
            self.engine.stop(name, timeout).map_err(err)?;
            crate::fault::point("down.after-stop");
        }
        Ok(())
    }

    /// Stops and removes a container with everything made for it.
    pub fn remove_container(&self, name: &str, timeout: Option<Duration>) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.engine.resolve(name).is_ok() {
            if let Err(e) = self.engine.stop(name, timeout) {
                problems.push(e.to_string());
            }
            crate::fault::point("down.after-stop");
            if let Err(e) = self.engine.remove(name, true) {
                problems.push(e.to_string());
            }
            crate::fault::point("down.after-remove");
        }
        if let Ok(ns) = Netns::at(&self.paths.run, name) {
            // Release also finds what a crashed run left, namespace file or not; the
            // kernel takes the veth pairs with the namespace (see `Networking::release`).
            if let Err(e) = self.net.release(&ns) {
                problems.push(e.to_string());
            }
            crate::fault::point("down.after-detach");
        }
        if let Err(e) = rootfs::remove(&self.paths.root, name) {
            problems.push(e.to_string());
        }
        crate::fault::point("down.after-rootfs");
        let _ = std::fs::remove_dir_all(self.paths.etc(name));
        // Anonymous volumes are the container's own: they go with it.
        let prefix = anonymous_prefix(name);
        if let Ok(entries) = std::fs::read_dir(self.paths.volumes()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    if let Err(err) = std::fs::remove_dir_all(e.path()) {
                        problems.push(format!("anonymous volume {}: {err}", e.path().display()));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// What exists for the project: containers by label, networks and volumes by name.
    pub fn observe(&self) -> Result<Observed, String> {
        let list = self
            .engine
            .list(&LabelFilter::new().with(LABEL_PROJECT, self.project()))
            .map_err(err)?;
        let containers = list
            .into_iter()
            .filter(|c| !c.labels.contains_key(LABEL_ONEOFF))
            .map(|c| ObservedContainer {
                service: c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                number: c
                    .labels
                    .get(LABEL_NUMBER)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                config_hash: c.labels.get(LABEL_HASH).cloned().unwrap_or_default(),
                image_digest: c.labels.get(LABEL_IMAGE_DIGEST).cloned(),
                state: match c.state {
                    Status::Running => ContainerState::Running,
                    Status::Paused => ContainerState::Paused,
                    Status::Created => ContainerState::Created,
                    _ => ContainerState::Exited(c.exit_code.unwrap_or(0)),
                },
                name: c.name,
            })
            .collect();
        let networks = self
            .net
            .networks()
            .map_err(err)?
            .into_iter()
            .filter(|n| self.net.dns_running(&n.name))
            .map(|n| n.name)
            .collect();
        let volumes = std::fs::read_dir(self.paths.volumes())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Observed {
            containers,
            networks,
            volumes,
        })
    }
}

fn engine_image_config(image: &image::Image) -> ec::ImageConfig {
    let c = &image.config.config;
    ec::ImageConfig {
        entrypoint: c.entrypoint.clone().unwrap_or_default(),
        cmd: c.cmd.clone().unwrap_or_default(),
        env: c.env.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        user: c.user.clone().filter(|u| !u.is_empty()),
        stop_signal: c.stop_signal.clone(),
        healthcheck: None,
    }
}

impl Backend for EngineBackend {
    fn run(&self, action: &Action) -> Result<(), String> {
        match action {
            Action::CreateNetwork(name) => self.create_network(name),
            Action::CreateVolume(name) => {
                std::fs::create_dir_all(volume_dir(&self.paths.volumes(), name))
                    .map_err(|e| format!("creating volume {name}: {e}"))?;
                crate::fault::point("up.after-volume");
                Ok(())
            }
            // The whole action: what `prepare` does, then the start it leaves.
            Action::Create { .. } => match self.prepare(action)? {
                Some(rest) => self.run(&rest),
                None => Ok(()),
            },
            Action::Recreate {
                service,
                number,
                container,
                ..
            } => {
                self.remove_container(container, self.stop_timeout)?;
                self.create(service, *number)
            }
            Action::Start { container } if self.take_fresh(container) => {
                self.engine.start(container).map_err(err).inspect_err(|_| {
                    // As a failed create: the next `up` starts clean.
                    let _ = self.remove_container(container, Some(Duration::ZERO));
                })?;
                crate::fault::point("up.after-start");
                Ok(())
            }
            Action::Start { container } => {
                // A container whose monitor was killed reads as dead: its process may
                // still run, unsupervised. Stop that, then start it under a new monitor.
                if self.engine.inspect(container).map_err(err)?.state == Status::Dead {
                    self.engine
                        .stop(container, Some(Duration::ZERO))
                        .map_err(err)?;
                }
                self.engine.start(container).map_err(err)
            }
            Action::Restart { container, .. } => self
                .engine
                .restart(container, self.stop_timeout)
                .map_err(err),
            Action::Remove { container, .. } => self.remove_container(container, self.stop_timeout),
        }
    }

    fn prepare(&self, action: &Action) -> Result<Option<Action>, String> {
        let Action::Create { service, number } = action else {
            return Ok(Some(action.clone()));
        };
        let name = container_name(self.project(), service, *number);
        self.create_container(service, *number, None)
            .inspect_err(|_| {
                // Leave nothing half-made: the next `up` starts clean.
                let _ = self.remove_container(&name, Some(Duration::ZERO));
            })?;
        if !self.start_created {
            return Ok(None);
        }
        self.fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone());
        Ok(Some(Action::Start { container: name }))
    }

    fn containers(&self, service: &str) -> Vec<String> {
        self.engine
            .list(
                &LabelFilter::new()
                    .with(LABEL_PROJECT, self.project())
                    .with(LABEL_SERVICE, service),
            )
            .map(|l| {
                l.into_iter()
                    .filter(|c| !c.labels.contains_key(LABEL_ONEOFF))
                    .map(|c| c.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn health(&self, container: &str) -> Result<Health, String> {
        let info = self.engine.inspect(container).map_err(err)?;
        Ok(match (info.state, info.health.as_ref().map(|h| h.status)) {
            (Status::Running, Some(HealthStatus::Healthy)) => Health::Healthy,
            (Status::Running, Some(HealthStatus::Unhealthy)) => Health::Unhealthy,
            (Status::Running, Some(HealthStatus::Starting)) => Health::Starting,
            (Status::Running, _) => Health::Running,
            (Status::Created, _) => Health::Starting,
            _ => Health::Exited(info.exit_code.unwrap_or(-1)),
        })
    }
}
