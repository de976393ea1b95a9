//! `stop`, `start`, `restart`, `kill`, `pause`, `unpause`: one action on the stack's
//! containers (all, or those of the named services). They share one shape, so they
//! share one module.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use berth_engine::container::ContainerSummary;
use clap::Args;

use super::GlobalArgs;
use crate::reconcile::translate::LABEL_SERVICE;

#[derive(Args, Debug)]
pub struct ControlArgs {
    /// Seconds to wait for a container to stop before killing it (stop, restart)
    #[arg(short, long)]
    pub timeout: Option<u64>,
    /// Signal to send (kill), e.g. SIGTERM, HUP, 9
    #[arg(short, long, default_value = "SIGKILL")]
    pub signal: String,
    /// Services (default: all)
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub enum Verb {
    Stop,
    Start,
    Restart,
    Kill,
    Pause,
    Unpause,
}

fn parse_signal(s: &str) -> anyhow::Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| anyhow!("no signal number {n}"));
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .map_err(|_| anyhow!("{s:?} is not a signal name (try SIGTERM, HUP or 9)"))
}

pub fn run(global: &GlobalArgs, verb: Verb, args: &ControlArgs) -> anyhow::Result<i32> {
    let backend = global.open()?;
    let loaded = Arc::clone(&backend.loaded);
    let verb_name = format!("{verb:?}").to_lowercase();
    let _lock = crate::project_lock::lock(&backend.paths.run, &loaded.name, &verb_name)?;
    let mut list: Vec<ContainerSummary> = super::service_containers(&backend, &args.services)?;
    // Stop dependants first; start dependencies first.
    let order = loaded.graph.start_order();
    let rank = |c: &ContainerSummary| {
        let s = c
            .labels
            .get(LABEL_SERVICE)
            .map(String::as_str)
            .unwrap_or("");
        order.iter().position(|o| *o == s).unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
    if matches!(verb, Verb::Stop | Verb::Kill | Verb::Pause) {
        list.reverse();
    }
    let timeout = args.timeout.map(Duration::from_secs);
    let signal = parse_signal(&args.signal)?;
    let mut failed = 0;
    for c in &list {
        let e = &backend.engine;
        let r = match verb {
            Verb::Stop => e.stop(&c.id, timeout),
            Verb::Start => e.start(&c.id),
            Verb::Restart => e.restart(&c.id, timeout),
            Verb::Kill => e.kill(&c.id, signal),
            Verb::Pause => e.pause(&c.id),
            Verb::Unpause => e.unpause(&c.id),
        };
        match r {
            Ok(()) => eprintln!(" ✔ {verb:?} {}", c.name),
            Err(err) => {
                failed += 1;
                eprintln!("error: {}: {err}", c.name);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} containers failed", list.len());
    }
    Ok(0)
}
