//! `top`, `port`, `ls`, `version`: read-only views of the stack and the host's projects.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use berth_engine::container::{Engine, LabelFilter, Status};
use clap::Args;

use super::GlobalArgs;
use crate::reconcile::backend::{EngineBackend, Paths};
use crate::reconcile::translate::{LABEL_PROJECT, LABEL_SERVICE};
use crate::stack;

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth top`: the processes of each running container.
pub fn top(global: &GlobalArgs, args: &TopArgs) -> anyhow::Result<i32> {
    let loaded = Arc::new(stack::load(&global.load_options(&[])?)?);
    let backend =
        EngineBackend::new(Arc::clone(&loaded), Paths::from_env()).map_err(|e| anyhow!(e))?;
    let mut list = backend
        .engine
        .list(&LabelFilter::new().with(LABEL_PROJECT, &loaded.name))?;
    list.sort_by(|a, b| a.name.cmp(&b.name));
    for c in list {
        let service = c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
        if c.state != Status::Running
            || (!args.services.is_empty() && !args.services.contains(&service))
        {
            continue;
        }
        println!("{}", c.name);
        println!("{:<8} {:<8} {:<6} {:<3} CMD", "PID", "PPID", "UID", "S");
        for p in backend.engine.top(&c.id)? {
            println!(
                "{:<8} {:<8} {:<6} {:<3} {}",
                p.pid, p.ppid, p.uid, p.state, p.cmd
            );
        }
        println!();
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PortArgs {
    /// Protocol
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Which replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    /// The container port
    pub private_port: u16,
}

/// `berth port`: the host address a container port is published on.
pub fn port(global: &GlobalArgs, args: &PortArgs) -> anyhow::Result<i32> {
    let loaded = stack::load(&global.load_options(&[])?)?;
    let Some(svc) = loaded.project.services.get(&args.service) else {
        bail!("no such service: {}", args.service);
    };
    let found = svc.ports.iter().find(|p| {
        p.target == args.private_port && p.protocol.as_str() == args.protocol.to_ascii_lowercase()
    });
    match found.and_then(|p| p.published.as_ref().map(|h| (p.host_ip.clone(), h.clone()))) {
        Some((ip, host)) => {
            println!("{}:{host}", ip.unwrap_or_else(|| "0.0.0.0".into()));
            Ok(0)
        }
        None => bail!(
            "port {}/{} of service {} is not published",
            args.private_port,
            args.protocol,
            args.service
        ),
    }
}

/// `berth ls`: every project with containers on this host, with their states.
pub fn ls() -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let engine = Engine::new(&paths.root, &paths.run)?;
    let mut projects: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for c in engine.list(&LabelFilter::new().has(LABEL_PROJECT))? {
        let p = c.labels.get(LABEL_PROJECT).cloned().unwrap_or_default();
        *projects
            .entry(p)
            .or_default()
            .entry(c.state.to_string())
            .or_default() += 1;
    }
    println!("{:<24} STATUS", "NAME");
    for (name, states) in projects {
        let status: Vec<String> = states.iter().map(|(s, n)| format!("{s}({n})")).collect();
        println!("{name:<24} {}", status.join(", "));
    }
    Ok(0)
}

/// `berth version`.
pub fn version() -> anyhow::Result<i32> {
    println!("berth version {}", env!("CARGO_PKG_VERSION"));
    Ok(0)
}
