//! `berth up`: bring the stack to what the file says, in dependency order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;

use super::GlobalArgs;
use crate::graph::EdgeKind;
use crate::reconcile::backend::{EngineBackend, Paths};
use crate::reconcile::desired::desired;
use crate::reconcile::execute::{execute, Timing, Wait};
use crate::reconcile::plan::{plan_up, UpOptions};
use crate::stack::{self, Loaded};

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Detached: return once the services are up (`up` in the foreground follows
    /// their logs until Ctrl-C, then stops them)
    #[arg(short, long)]
    pub detach: bool,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Remove containers of services no longer in the stack file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Recreate containers even if nothing changed
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Never recreate existing containers
    #[arg(long)]
    pub no_recreate: bool,
    /// Create the containers, start none
    #[arg(long)]
    pub no_start: bool,
    /// Seconds to wait for a dependency's condition (healthy, completed)
    #[arg(long, default_value_t = 300)]
    pub wait_timeout: u64,
    /// Services to bring up, with what they depend on (default: all)
    pub services: Vec<String>,
}

/// Each service's `depends_on` edges, as the executor honours them.
pub fn waits(loaded: &Loaded) -> HashMap<String, Vec<Wait>> {
    let mut out: HashMap<String, Vec<Wait>> = HashMap::new();
    for name in loaded.project.services.keys() {
        for (dep, kind) in loaded.graph.dependencies(name) {
            let (condition, required) = match kind {
                EdgeKind::DependsOn {
                    condition,
                    required,
                    ..
                } => (*condition, *required),
                _ => (crate::graph::Condition::Started, true),
            };
            out.entry(name.clone()).or_default().push(Wait {
                service: dep.to_string(),
                condition,
                required,
            });
        }
    }
    out
}

pub fn run(global: &GlobalArgs, args: &UpArgs) -> anyhow::Result<i32> {
    let opts = global.load_options(&args.services)?;
    let loaded = stack::load(&opts)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    loaded.check_runnable()?;
    let loaded = Arc::new(loaded);
    let paths = Paths::from_env();
    // A dry run changes nothing: it needs no lock.
    let lock = match args.dry_run {
        true => None,
        false => Some(crate::project_lock::lock(&paths.run, &loaded.name, "up")?),
    };
    crate::fault::point("up.after-lock");
    let backend = Arc::new(EngineBackend::new(Arc::clone(&loaded), paths).map_err(|e| anyhow!(e))?);
    let observed = backend
        .observe()
        .map_err(|e| anyhow!(e))
        .context("reading what exists")?;
    crate::fault::point("up.after-observe");
    let want = desired(&loaded, &|image| backend.image_digest(image));
    let up_opts = UpOptions {
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        remove_orphans: args.remove_orphans,
        no_start: args.no_start,
    };
    let plan = plan_up(&want, &observed, &up_opts);
    tracing::info!("plan:\n{plan}");
    if args.dry_run {
        print!("{plan}");
        return Ok(0);
    }
    for orphan in &plan.orphans {
        eprintln!("warning: found orphan container {orphan}: its service is not in the stack file; `berth up --remove-orphans` removes it");
    }
    if plan.is_empty() {
        eprintln!("{}: nothing to do, the stack is up to date", loaded.name);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let timing = Timing {
        timeout: Duration::from_secs(args.wait_timeout),
        ..Timing::default()
    };
    let report = runtime.block_on(execute(
        Arc::clone(&backend),
        &plan,
        &waits(&loaded),
        timing,
    ));
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for action in plan.actions() {
        eprintln!(" ✔ {action}");
    }
    if !report.failed.is_empty() {
        let mut all = String::new();
        for (service, why) in &report.failed {
            eprintln!("error: service {service}: {why}");
            all.push_str(&why.to_string());
        }
        let hint = backend
            .paths
            .full_disk_hint(&all)
            .map(|h| format!("\n{h}"))
            .unwrap_or_default();
        bail!(
            "{} of {} services did not come up; `berth up` again retries, `berth down` removes what was made{hint}",
            report.failed.len(),
            plan.services.len()
        );
    }
    // Following the logs is not changing the project: let `down` elsewhere go ahead.
    drop(lock);
    if args.detach || args.no_start {
        return Ok(0);
    }
    super::logs::follow_until_interrupt(&backend, &runtime)
}
