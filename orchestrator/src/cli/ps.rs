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
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
}

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
    list.retain(|c| args.all || c.state == Status::Running);
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
