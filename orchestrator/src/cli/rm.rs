//! `berth rm`: remove the stack's stopped containers (with `-s`, stop them first), with
//! everything made for them. Berth never asks for confirmation; `-f` is accepted.

use anyhow::bail;
use berth_engine::container::Status;
use clap::Args;

use super::GlobalArgs;

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not ask for confirmation (Berth never asks)
    #[arg(short, long)]
    pub force: bool,
    /// Stop the containers first
    #[arg(short, long)]
    pub stop: bool,
    /// Also remove their anonymous volumes (always removed with their container)
    #[arg(short, long)]
    pub volumes: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: &RmArgs) -> anyhow::Result<i32> {
    let backend = global.open()?;
    let list = super::service_containers(&backend, &args.services)?;
    let mut problems = Vec::new();
    let mut removed = 0;
    for c in &list {
        let live = matches!(
            c.state,
            Status::Running | Status::Paused | Status::Restarting
        );
        if live && !args.stop {
            continue;
        }
        // None: each container's own stop_grace_period.
        match backend.remove_container(&c.name, None) {
            Ok(()) => {
                removed += 1;
                eprintln!(" ✔ removed {}", c.name);
            }
            Err(e) => problems.push(format!("{}: {e}", c.name)),
        }
    }
    if removed == 0 && problems.is_empty() {
        eprintln!("No stopped containers");
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        bail!("{} containers could not be removed", problems.len());
    }
    Ok(0)
}
