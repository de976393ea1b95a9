//! `berth up`: bring the stack to what the file says, in dependency order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};

use super::{progress, GlobalArgs};
use crate::graph::EdgeKind;
use crate::reconcile::backend::{EngineBackend, Paths};
use crate::reconcile::desired::desired;
use crate::reconcile::execute::{execute, Backend, Health, Timing, Wait};
use crate::reconcile::plan::{plan_up, UpOptions};
use crate::stack::{self, Loaded};

/// `--pull`: when to pull the services' images.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    Always,
    Missing,
    Never,
}

/// What `up` and `create` share.
#[derive(Args, Debug, Clone)]
pub struct ConvergeArgs {
    /// Remove containers of services no longer in the stack file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Recreate containers even if nothing changed
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Never recreate existing containers
    #[arg(long)]
    pub no_recreate: bool,
    /// Do not start the services the named ones depend on
    #[arg(long)]
    pub no_deps: bool,
    /// Run N containers of a service: SERVICE=N (repeatable; overrides `scale`/`deploy.replicas`)
    #[arg(long, value_name = "SERVICE=N")]
    pub scale: Vec<String>,
    /// Pull images first: always, missing (default: only what is not here), never
    #[arg(long, value_enum)]
    pub pull: Option<Pull>,
    /// Build images before starting containers (default: only missing ones)
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Do not build images, even when missing
    #[arg(long)]
    pub no_build: bool,
    /// Services (default: all), with what they depend on
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Detached: return once the services are up (`up` in the foreground follows
    /// their logs until Ctrl-C, then stops them)
    #[arg(short, long)]
    pub detach: bool,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Create the containers, start none
    #[arg(long)]
    pub no_start: bool,
    /// Return once every service runs (and is healthy, with a healthcheck); non-zero if
    /// one does not. Implies --detach
    #[arg(long)]
    pub wait: bool,
    /// Seconds to wait for a dependency's condition (healthy, completed), and for --wait
    #[arg(long, default_value_t = 300)]
    pub wait_timeout: u64,
    /// Stop every container when one stops (foreground only)
    #[arg(long, conflicts_with_all = ["detach", "wait"])]
    pub abort_on_container_exit: bool,
    /// Exit with this service's exit code (implies --abort-on-container-exit)
    #[arg(long, value_name = "SERVICE", conflicts_with_all = ["detach", "wait"])]
    pub exit_code_from: Option<String>,
    /// Seconds to wait for containers to stop (Ctrl-C, abort, recreate) before killing them
    #[arg(short, long)]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub converge: ConvergeArgs,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub converge: ConvergeArgs,
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
                before_create: matches!(
                    kind,
                    EdgeKind::NetworkMode | EdgeKind::Ipc | EdgeKind::Pid | EdgeKind::VolumesFrom
                ),
            });
        }
    }
    out
}

/// The named services and, unless `no_deps`, everything they depend on (all services
/// when none are named).
pub fn selection(loaded: &Loaded, named: &[String], no_deps: bool) -> anyhow::Result<Vec<String>> {
    for s in named {
        if !loaded.project.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    if named.is_empty() {
        return Ok(loaded.project.services.keys().cloned().collect());
    }
    let mut out: Vec<String> = named.to_vec();
    let mut i = 0;
    while i < out.len() && !no_deps {
        for (dep, _) in loaded.graph.dependencies(&out[i]) {
            if !out.iter().any(|o| o == dep) && loaded.project.services.contains_key(dep) {
                out.push(dep.to_string());
            }
        }
        i += 1;
    }
    Ok(out)
}

fn parse_scale(loaded: &Loaded, specs: &[String]) -> anyhow::Result<HashMap<String, u32>> {
    let mut out = HashMap::new();
    for spec in specs {
        let (s, n) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--scale {spec}: write SERVICE=N, e.g. --scale web=3"))?;
        if !loaded.project.services.contains_key(s) {
            bail!("--scale {spec}: no such service: {s}");
        }
        let n: u32 = n
            .parse()
            .map_err(|_| anyhow!("--scale {spec}: {n:?} is not a number of containers"))?;
        out.insert(s.to_string(), n);
    }
    Ok(out)
}

/// `--pull always` pulls every selected service's image; `never` checks they are all
/// here before anything is touched.
fn pull_images(
    backend: &EngineBackend,
    services: &[String],
    pull: Option<Pull>,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    use berth_engine::image;
    for s in services {
        let svc = &backend.loaded.project.services[s];
        let Some(reference) = &svc.image else {
            continue;
        };
        match pull {
            Some(Pull::Always) => {
                runtime
                    .block_on(image::pull(
                        &backend.images,
                        reference,
                        &image::RegistryOptions::default(),
                        Arc::new(image::registry::Quiet),
                    ))
                    .with_context(|| format!("service {s}: pulling {reference}"))?;
            }
            Some(Pull::Never) if backend.images.resolve(reference).is_err() => bail!(
                "service {s}: image {reference} is not here and --pull never forbids pulling it; `berth pull` or `berth image load` brings it"
            ),
            _ => {}
        }
    }
    Ok(())
}

/// What one converge run leaves for the verb that asked for it.
pub struct Converged {
    pub backend: Arc<EngineBackend>,
    pub runtime: tokio::runtime::Runtime,
    pub selected: Vec<String>,
    /// The project's lock, held while the stack changes (none for a dry run).
    pub lock: Option<crate::project_lock::ProjectLock>,
}

/// Options of [`converge`] beyond the shared flags.
pub struct ConvergeMode {
    pub no_start: bool,
    pub dry_run: bool,
    pub wait_timeout: Duration,
    pub stop_timeout: Option<Duration>,
    /// `run`: bring up what this service depends on, but not the service itself.
    pub except: Option<String>,
}

/// Brings the selected services to what the file says: plan, print, execute. None
/// after a dry run.
pub fn converge(
    global: &GlobalArgs,
    args: &ConvergeArgs,
    mode: &ConvergeMode,
) -> anyhow::Result<Option<Converged>> {
    let opts = global.load_options(&args.services)?;
    let loaded = stack::load(&opts)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    loaded.check_runnable()?;
    let mut selected = selection(&loaded, &args.services, args.no_deps)?;
    let scale = parse_scale(&loaded, &args.scale)?;
    if !mode.dry_run {
        super::build::before_up(&loaded, args.build, args.no_build)?;
    }
    let loaded = Arc::new(loaded);
    let paths = Paths::from_env();
    // A dry run changes nothing: it needs no lock.
    let lock = match mode.dry_run {
        true => None,
        false => Some(crate::project_lock::lock(&paths.run, &loaded.name, "up")?),
    };
    crate::fault::point("up.after-lock");
    let mut backend = EngineBackend::new(Arc::clone(&loaded), paths)
        .map_err(|e| anyhow!(e))?
        .with_stop_timeout(mode.stop_timeout);
    if mode.no_start {
        backend = backend.without_start();
    }
    let backend = Arc::new(backend);
    if !mode.dry_run {
        // Layers a killed `berth` left half-unpacked (skipped while the store is in use).
        let _ = backend.images.store().sweep_half_unpacked();
    }
    let runtime = tokio::runtime::Runtime::new()?;
    pull_images(&backend, &selected, args.pull, &runtime)?;
    if let Some(except) = &mode.except {
        selected.retain(|s| s != except);
    }
    let observed = backend
        .observe()
        .map_err(|e| anyhow!(e))
        .context("reading what exists")?;
    crate::fault::point("up.after-observe");
    let mut want = desired(&loaded, &|image| backend.image_digest(image));
    for (s, n) in &scale {
        if let Some(d) = want.services.get_mut(s) {
            d.replicas = *n;
        }
    }
    let up_opts = UpOptions {
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        remove_orphans: args.remove_orphans,
        no_start: mode.no_start,
    };
    let mut plan = plan_up(&want, &observed, &up_opts);
    // Services outside the selection are neither touched nor orphans.
    for (name, p) in plan.services.iter_mut() {
        if !selected.contains(name) {
            p.actions.clear();
        }
    }
    tracing::info!("plan:\n{plan}");
    if mode.dry_run {
        print!("{plan}");
        return Ok(None);
    }
    for orphan in &plan.orphans {
        eprintln!("warning: found orphan container {orphan}: its service is not in the stack file; `berth up --remove-orphans` removes it");
    }
    if plan.is_empty() && mode.except.is_none() {
        eprintln!("{}: nothing to do, the stack is up to date", loaded.name);
    }
    let timing = Timing {
        timeout: mode.wait_timeout,
        ..Timing::default()
    };
    let live = progress::live(global.progress, &backend, selected.clone());
    let report = runtime.block_on(execute(
        Arc::clone(&backend),
        &plan,
        &waits(&loaded),
        timing,
    ));
    drop(live);
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    global.progress.actions(plan.actions());
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
            selected.len()
        );
    }
    Ok(Some(Converged {
        backend,
        runtime,
        selected,
        lock,
    }))
}

/// `--wait`: every container of the selected services running, and healthy where the
/// service has a healthcheck; an error names the first that is not.
fn wait_ready(c: &Converged, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let has_check = |s: &str| {
        c.backend.loaded.project.services[s]
            .healthcheck
            .as_ref()
            .is_some_and(|h| h.disable != Some(true) && h.test.is_some())
    };
    loop {
        let mut pending = None;
        for s in &c.selected {
            for name in c.backend.containers(s) {
                let h = c.backend.health(&name).map_err(|e| anyhow!(e))?;
                let ready = match h {
                    Health::Healthy => true,
                    Health::Running => !has_check(s),
                    Health::Starting => false,
                    Health::Unhealthy => bail!("container {name} is unhealthy"),
                    Health::Exited(0) => true,
                    Health::Exited(code) => bail!("container {name} exited with code {code}"),
                };
                if !ready && pending.is_none() {
                    pending = Some(name);
                }
            }
        }
        let Some(name) = pending else {
            return Ok(());
        };
        if started.elapsed() > timeout {
            bail!("container {name} was not ready after {timeout:?} (--wait-timeout)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn run(global: &GlobalArgs, args: &UpArgs) -> anyhow::Result<i32> {
    if let Some(s) = &args.exit_code_from {
        if !args.converge.services.is_empty() && !args.converge.services.contains(s) {
            bail!("--exit-code-from {s}: {s} is not among the services to bring up");
        }
    }
    let mode = ConvergeMode {
        no_start: args.no_start,
        dry_run: args.dry_run,
        wait_timeout: Duration::from_secs(args.wait_timeout),
        stop_timeout: args.timeout.map(Duration::from_secs),
        except: None,
    };
    let Some(c) = converge(global, &args.converge, &mode)? else {
        return Ok(0);
    };
    if let Some(s) = &args.exit_code_from {
        if !c.backend.loaded.project.services.contains_key(s) {
            bail!("--exit-code-from {s}: no such service");
        }
    }
    if args.wait {
        wait_ready(&c, mode.wait_timeout)?;
        return Ok(0);
    }
    // Following the logs is not changing the project: let `down` elsewhere go ahead.
    let mut c = c;
    drop(c.lock.take());
    if args.detach || args.no_start {
        return Ok(0);
    }
    let foreground = super::logs::Foreground {
        services: c.selected.clone(),
        abort_on_exit: args.abort_on_container_exit || args.exit_code_from.is_some(),
        exit_code_from: args.exit_code_from.clone(),
        stop_timeout: mode.stop_timeout,
        colour: global.colour_stdout(),
    };
    super::logs::foreground(&c.backend, &c.runtime, &foreground)
}

/// `berth create`: `up --no-start`.
pub fn create(global: &GlobalArgs, args: &CreateArgs) -> anyhow::Result<i32> {
    let mode = ConvergeMode {
        no_start: true,
        dry_run: false,
        wait_timeout: Duration::from_secs(300),
        stop_timeout: None,
        except: None,
    };
    converge(global, &args.converge, &mode)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{load, Options};

    fn loaded() -> Loaded {
        let text = "services:\n  web:\n    image: x\n    depends_on: [api]\n  api:\n    image: x\n    depends_on: [db]\n  db:\n    image: x\n  other:\n    image: x\n";
        load(&Options {
            files: vec!["-".into()],
            stdin: Some(text.into()),
            project_name: Some("p".into()),
            environment: Some(Default::default()),
            ..Options::default()
        })
        .unwrap()
    }

    #[test]
    fn named_services_bring_their_dependencies_unless_no_deps() {
        let l = loaded();
        let mut all = selection(&l, &[], false).unwrap();
        all.sort();
        assert_eq!(all, ["api", "db", "other", "web"]);
        assert_eq!(
            selection(&l, &["web".into()], false).unwrap(),
            ["web", "api", "db"]
        );
        assert_eq!(selection(&l, &["web".into()], true).unwrap(), ["web"]);
        assert_eq!(
            selection(&l, &["nope".into()], false)
                .unwrap_err()
                .to_string(),
            "no such service: nope"
        );
    }

    #[test]
    fn scale_is_service_equals_count() {
        let l = loaded();
        assert_eq!(parse_scale(&l, &["web=3".into()]).unwrap()["web"], 3);
        for bad in ["web", "web=x", "nope=2"] {
            assert!(parse_scale(&l, &[bad.into()]).is_err(), "{bad}");
        }
    }
}
