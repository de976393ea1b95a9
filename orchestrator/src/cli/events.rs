//! `berth events`: the stack's container lifecycle events as they happen (create,
//! start, health_status, pause, unpause, die, destroy), found by polling the engine's
//! records, printed as `docker compose events` prints them (or one JSON object a line).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use berth_engine::container::{ContainerSummary, HealthStatus, LabelFilter, Status};
use clap::Args;

use super::GlobalArgs;
use crate::reconcile::translate::{LABEL_PROJECT, LABEL_SERVICE};

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// What is known of a container between two looks.
struct Seen {
    state: Status,
    health: Option<HealthStatus>,
    summary: ContainerSummary,
}

/// The events that turn `before` into `now` (None: the container is new, or gone).
fn events(before: Option<&Seen>, now: Option<&Seen>) -> Vec<String> {
    use Status::*;
    let mut out = Vec::new();
    match (before, now) {
        (None, Some(n)) => {
            out.push("create".to_string());
            if matches!(n.state, Running | Paused) {
                out.push("start".into());
            }
        }
        (Some(_), None) => out.push("destroy".into()),
        (Some(b), Some(n)) => {
            let was = matches!(b.state, Running | Paused | Restarting);
            let is = matches!(n.state, Running | Paused | Restarting);
            if was && !is {
                out.push("die".into());
            }
            if !was && is {
                out.push("start".into());
            }
            if b.state != Paused && n.state == Paused {
                out.push("pause".into());
            }
            if b.state == Paused && n.state == Running {
                out.push("unpause".into());
            }
            if b.health != n.health {
                if let Some(h) = n.health {
                    out.push(format!("health_status: {h}"));
                }
            }
        }
        (None, None) => {}
    }
    out
}

pub fn run(global: &GlobalArgs, args: &EventsArgs) -> anyhow::Result<i32> {
    let backend = global.open()?;
    for s in &args.services {
        if !backend.loaded.project.services.contains_key(s) {
            anyhow::bail!("no such service: {s}");
        }
    }
    let image_of = |service: &str| {
        backend
            .loaded
            .project
            .services
            .get(service)
            .and_then(|s| s.image.clone())
            .unwrap_or_default()
    };
    let look = || -> anyhow::Result<HashMap<String, Seen>> {
        Ok(backend
            .engine
            .list(&LabelFilter::new().with(LABEL_PROJECT, &backend.loaded.name))?
            .into_iter()
            .filter(|c| {
                args.services.is_empty()
                    || c.labels
                        .get(LABEL_SERVICE)
                        .is_some_and(|s| args.services.contains(s))
            })
            .map(|c| {
                (
                    c.id.clone(),
                    Seen {
                        state: c.state,
                        health: c.health,
                        summary: c,
                    },
                )
            })
            .collect())
    };
    let mut before = look()?;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = look()?;
        let mut ids: Vec<&String> = before.keys().chain(now.keys()).collect();
        ids.sort();
        ids.dedup();
        let time = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        let mut out = std::io::stdout().lock();
        for id in ids {
            let (b, n) = (before.get(id), now.get(id));
            let Some(c) = n.or(b).map(|s| &s.summary) else {
                continue;
            };
            let service = c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
            for action in events(b, n) {
                let image = image_of(&service);
                let line = if args.json {
                    let mut attrs = serde_json::json!({"name": c.name, "image": image});
                    if action == "die" {
                        attrs["exitCode"] = n.and_then(|n| n.summary.exit_code).into();
                    }
                    serde_json::json!({
                        "time": time,
                        "type": "container",
                        "action": action,
                        "id": c.id,
                        "service": service,
                        "attributes": attrs,
                    })
                    .to_string()
                } else {
                    let mut attrs = format!("image={image}, name={}", c.name);
                    if action == "die" {
                        if let Some(code) = n.and_then(|n| n.summary.exit_code) {
                            attrs.push_str(&format!(", exitCode={code}"));
                        }
                    }
                    format!(
                        "{} container {action} {} ({attrs})",
                        time.replace('T', " ").trim_end_matches('Z'),
                        c.id
                    )
                };
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    return Ok(0);
                }
            }
        }
        before = now;
    }
}
