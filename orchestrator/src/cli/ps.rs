//! `berth ps`: the stack's containers.

use std::sync::Arc;

use anyhow::anyhow;
use berth_engine::container::{LabelFilter, Status};
use clap::{Args, ValueEnum};

use super::GlobalArgs;
use crate::reconcile::backend::{EngineBackend, Paths};
use crate::reconcile::translate::{LABEL_PROJECT, LABEL_SERVICE};
use crate::stack;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Also containers that are not running
    #[arg(short, long)]
    pub all: bool,
    /// Only the container names
    #[arg(short, long)]
    pub quiet: bool,
    /// Only the service names
    #[arg(long)]
    pub services: bool,
    /// Only containers in this state (repeatable): created, running, paused,
    /// restarting, exited, dead
    #[arg(long, value_name = "STATUS")]
    pub status: Vec<String>,
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
    /// Services (default: all)
    pub service_names: Vec<String>,
}

const STATES: [&str; 7] = [
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsFormat {
    Table,
    Json,
}

pub fn run(global: &GlobalArgs, args: &PsArgs) -> anyhow::Result<i32> {
    let loaded = Arc::new(stack::load(&global.load_options(&[])?)?);
    let backend =
        EngineBackend::new(Arc::clone(&loaded), Paths::from_env()).map_err(|e| anyhow!(e))?;
    let mut list = backend
        .engine
        .list(&LabelFilter::new().with(LABEL_PROJECT, &loaded.name))?;
    for st in &args.status {
        if !STATES.contains(&st.as_str()) {
            anyhow::bail!("--status {st}: one of {}", STATES.join(", "));
        }
    }
    for s in &args.service_names {
        if !loaded.project.services.contains_key(s) {
            anyhow::bail!("no such service: {s}");
        }
    }
    list.retain(|c| {
        let state_ok = if args.status.is_empty() {
            args.all || c.state == Status::Running
        } else {
            args.status.iter().any(|s| *s == c.state.to_string())
        };
        let service_ok = args.service_names.is_empty()
            || c.labels
                .get(LABEL_SERVICE)
                .is_some_and(|s| args.service_names.contains(s));
        state_ok && service_ok
    });
    list.sort_by(|a, b| a.name.cmp(&b.name));
    if args.quiet {
        for c in &list {
            println!("{}", c.name);
        }
        return Ok(0);
    }
    if args.services {
        let mut services: Vec<String> = list
            .iter()
            .filter_map(|c| c.labels.get(LABEL_SERVICE).cloned())
            .collect();
        services.dedup();
        for s in services {
            println!("{s}");
        }
        return Ok(0);
    }
    if args.format == PsFormat::Json {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|c| {
                serde_json::json!({
                    "Name": c.name,
                    "Service": c.labels.get(LABEL_SERVICE),
                    "State": c.state.to_string(),
                    "Health": c.health.map(|h| h.to_string()),
                    "ExitCode": c.exit_code,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(0);
    }
    println!("{:<32} {:<16} {:<24}", "NAME", "SERVICE", "STATUS");
    for c in &list {
        let mut status = c.state.to_string();
        if let Some(h) = c.health {
            status.push_str(&format!(" ({h})"));
        }
        if let (Status::Exited, Some(code)) = (c.state, c.exit_code) {
            status = format!("exited ({code})");
        }
        println!(
            "{:<32} {:<16} {:<24}",
            c.name,
            c.labels
                .get(LABEL_SERVICE)
                .map(String::as_str)
                .unwrap_or(""),
            status
        );
    }
    Ok(0)
}
