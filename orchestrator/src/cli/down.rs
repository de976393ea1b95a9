//! `berth down`: stop and remove the stack's containers and networks (and, with `-v`,
//! its named volumes), leaving nothing behind.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Args;

use super::GlobalArgs;
use crate::reconcile::backend::{EngineBackend, Paths};
use crate::stack;

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Also remove the stack's named volumes (kept by default)
    #[arg(short, long)]
    pub volumes: bool,
    /// Also remove containers of services no longer in the stack file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Seconds to wait for a container to stop before killing it
    #[arg(short, long)]
    pub timeout: Option<u64>,
}

pub fn run(global: &GlobalArgs, args: &DownArgs) -> anyhow::Result<i32> {
    let opts = global.load_options(&[])?;
    let loaded = Arc::new(stack::load(&opts)?);
    let paths = Paths::from_env();
    let _lock = crate::project_lock::lock(&paths.run, &loaded.name, "down")?;
    crate::fault::point("down.after-lock");
    let backend = EngineBackend::new(Arc::clone(&loaded), paths).map_err(|e| anyhow!(e))?;
    let observed = backend.observe().map_err(|e| anyhow!(e))?;
    let timeout = args.timeout.map(Duration::from_secs);
    let mut problems = Vec::new();
    // Dependants first: the start waves in reverse, each wave's containers at once.
    let waves = loaded.graph.start_waves();
    let wave_of = |service: &str| {
        waves
            .iter()
            .position(|w| w.contains(&service))
            .unwrap_or(usize::MAX)
    };
    let mut by_wave: std::collections::BTreeMap<std::cmp::Reverse<usize>, Vec<&str>> =
        Default::default();
    for c in &observed.containers {
        let known = loaded.project.services.contains_key(&c.service);
        // Defined, but left out by the active profiles: kept, as Compose keeps it (it
        // is no orphan, so --remove-orphans does not take it either).
        if !known && loaded.all_services.contains(&c.service) {
            eprintln!(
                "warning: container {} kept: its service {} is not enabled by the active profiles; `berth --profile PROFILE down` with one of its profiles removes it",
                c.name, c.service
            );
            continue;
        }
        if !known && !args.remove_orphans {
            eprintln!(
                "warning: orphan container {} kept; `berth down --remove-orphans` removes it",
                c.name
            );
            continue;
        }
        by_wave
            .entry(std::cmp::Reverse(wave_of(&c.service)))
            .or_default()
            .push(&c.name);
    }
    // One-off `run` containers go first: nothing depends on them.
    let oneoffs = backend.oneoff_containers().map_err(|e| anyhow!(e))?;
    if !oneoffs.is_empty() {
        by_wave
            .entry(std::cmp::Reverse(usize::MAX))
            .or_default()
            .extend(oneoffs.iter().map(String::as_str));
    }
    // Stopped in that order, then removed all at once: removing (namespaces, mounts,
    // records) needs no order, and a wave of one container (a `depends_on` chain) would
    // otherwise wait for a whole removal before the next wave is even stopped.
    for names in by_wave.values() {
        for (name, r) in each_at_once(names, |name| backend.stop_container(name, timeout)) {
            if let Err(e) = r {
                problems.push(format!("{name}: {e}"));
            }
        }
    }
    let all: Vec<&str> = by_wave.values().flatten().copied().collect();
    for (name, r) in each_at_once(&all, |name| backend.remove_container(name, timeout)) {
        match r {
            Ok(()) => eprintln!(" ✔ removed {name}"),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    crate::fault::point("down.after-containers");
    // The id ranges of `userns_mode: auto` containers that are gone.
    if let Err(e) = backend.release_userns() {
        problems.push(format!("user namespace ranges: {e}"));
    }
    // Layers a `berth` killed in the middle of unpacking one left.
    if let Err(e) = backend.images.store().sweep_half_unpacked() {
        problems.push(format!("image store: {e}"));
    }
    // What a `berth` killed in the middle of creating a container left.
    if let Err(e) = backend.engine.sweep_incomplete() {
        problems.push(format!("container records: {e}"));
    }
    // Removal is idempotent (it also finds what a crashed run left); only a network
    // that was on record is reported as removed.
    let existing: Vec<String> = backend
        .net
        .networks()
        .map(|n| n.into_iter().map(|i| i.name).collect())
        .unwrap_or_default();
    for net in loaded.project.networks.values() {
        if net.external == Some(true) {
            continue;
        }
        let Some(name) = &net.name else { continue };
        match backend.net.remove_network(name) {
            Ok(()) if existing.contains(name) => {
                eprintln!(" ✔ removed network {name}");
                crate::fault::point("down.after-network");
            }
            Ok(()) => {}
            Err(e) => problems.push(format!("network {name}: {e}")),
        }
    }
    if args.volumes {
        for vol in loaded.project.volumes.values() {
            if vol.external == Some(true) {
                continue;
            }
            let Some(name) = &vol.name else { continue };
            let dir = backend.paths.volumes().join(name);
            if dir.exists() {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => eprintln!(" ✔ removed volume {name}"),
                    Err(e) => problems.push(format!("volume {name}: {e}")),
                }
            }
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        bail!("`down` could not remove everything; run it again to finish");
    }
    Ok(0)
}

/// Runs `f` for each name on a thread of its own; the results in the names' order.
fn each_at_once<'a>(
    names: &[&'a str],
    f: impl Fn(&str) -> Result<(), String> + Sync,
) -> Vec<(&'a str, Result<(), String>)> {
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = names
            .iter()
            .map(|name| scope.spawn(move || (*name, f(name))))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}
