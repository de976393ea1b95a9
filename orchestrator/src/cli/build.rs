//! `berth build [SERVICE…]`: the images of services with `build:`, from their
//! Dockerfiles, on Berth's own builder (berth-builder); and the part of `berth up` that
//! builds what is missing (`--build`, `--no-build`, `pull_policy: build`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context};
use berth_builder::{BuildOptions, DockerfileSource, Progress};
use berth_engine::image::{Images, Store};
use clap::{Args, ValueEnum};

use super::GlobalArgs;
use crate::stack::model::{PullPolicy, Service};
use crate::stack::{self, Loaded};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// tty when standard error is a terminal, else plain
    #[default]
    Auto,
    /// One line per step and per line of output
    Plain,
    /// As plain, with colour
    Tty,
    /// Nothing but errors
    Quiet,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Do not use the step cache
    #[arg(long)]
    pub no_cache: bool,
    /// Pull base images even when they are in the store
    #[arg(long)]
    pub pull: bool,
    /// A build argument (KEY=VALUE; KEY alone takes it from the environment); repeatable
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Print nothing but errors (as --progress quiet; `--progress` is the global flag)
    #[arg(short, long)]
    pub quiet: bool,
    /// Services to build (default: every service with `build:`)
    pub services: Vec<String>,
}

impl From<super::progress::Mode> for ProgressMode {
    /// The global `--progress`: JSON events are `up`'s; a build shows plain lines then.
    fn from(m: super::progress::Mode) -> Self {
        use super::progress::Mode;
        match m {
            Mode::Auto => ProgressMode::Auto,
            Mode::Tty => ProgressMode::Tty,
            Mode::Plain | Mode::Json => ProgressMode::Plain,
            Mode::Quiet => ProgressMode::Quiet,
        }
    }
}

/// What the command line adds to every service's `build:`.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub no_cache: bool,
    pub pull: bool,
    pub build_args: BTreeMap<String, String>,
    pub progress: ProgressMode,
}

/// The image a service runs: `image:`, else `PROJECT-SERVICE` (what `up` creates from).
pub fn image_name(loaded: &Loaded, service: &str, svc: &Service) -> String {
    svc.image
        .clone()
        .unwrap_or_else(|| format!("{}-{service}", loaded.name))
}

fn env_value(loaded: &Loaded, key: &str) -> Option<String> {
    loaded
        .environment
        .get(key)
        .cloned()
        .or_else(|| std::env::var(key).ok())
}

/// The builder's options for one service.
pub fn options(
    loaded: &Loaded,
    service: &str,
    svc: &Service,
    flags: &Flags,
) -> anyhow::Result<BuildOptions> {
    let b = svc
        .build
        .as_ref()
        .ok_or_else(|| anyhow!("service {service} has no `build:` section"))?;
    let context = b.context.clone().unwrap_or_else(|| ".".into());
    if !b.has_local_context() {
        bail!("service {service}: build context {context:?} is not a local directory; Berth builds from local contexts only (clone or download it first)");
    }
    let context = loaded.working_dir.join(&context);
    let mut o = BuildOptions::new(&context);
    o.dockerfile = match (&b.dockerfile_inline, &b.dockerfile) {
        (Some(text), _) => DockerfileSource::Inline(text.clone()),
        (None, Some(p)) => DockerfileSource::Path(p.into()),
        (None, None) => DockerfileSource::Path("Dockerfile".into()),
    };
    for (k, v) in &b.args {
        if let Some(v) = v.clone().or_else(|| env_value(loaded, k)) {
            o.build_args.insert(k.clone(), v);
        }
    }
    o.build_args.extend(flags.build_args.clone());
    o.target = b.target.clone();
    o.tags = vec![image_name(loaded, service, svc)];
    o.tags.extend(b.tags.iter().cloned());
    o.labels = b
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    o.no_cache = flags.no_cache || b.no_cache == Some(true);
    o.pull = flags.pull || b.pull == Some(true);
    o.network = b.network.clone();
    o.shm_size = b.shm_size.map(|s| s.bytes());
    for (host, ips) in &b.extra_hosts.0 {
        for ip in ips {
            o.extra_hosts.push((host.clone(), ip.clone()));
        }
    }
    let ignored: Vec<&str> = [
        ("secrets", !b.secrets.is_empty()),
        ("ssh", !b.ssh.is_empty()),
        ("cache_from", !b.cache_from.is_empty()),
        ("cache_to", !b.cache_to.is_empty()),
        ("additional_contexts", !b.additional_contexts.is_empty()),
        ("platforms", !b.platforms.is_empty()),
        ("privileged", b.privileged == Some(true)),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if !ignored.is_empty() {
        eprintln!(
            "warning: service {service}: build.{} not supported by Berth's builder yet; ignored",
            ignored.join(", build.")
        );
    }
    o.run_root = crate::reconcile::backend::Paths::from_env().run;
    Ok(o)
}

/// Step lines on standard error, as `docker build --progress plain` prints them.
struct Lines {
    service: String,
    colour: bool,
    quiet: bool,
    out: Mutex<std::io::Stderr>,
}

impl Progress for Lines {
    fn step(&self, n: usize, stage: &str, text: &str, cached: bool) {
        if self.quiet {
            return;
        }
        let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let head = format!("#{n} [{} {stage}] {text}", self.service);
        let _ = if self.colour {
            writeln!(o, "\x1b[1;34m{head}\x1b[0m")
        } else {
            writeln!(o, "{head}")
        };
        if cached {
            let _ = writeln!(o, "#{n} CACHED");
        }
    }
    fn output(&self, n: usize, line: &str) {
        if self.quiet {
            return;
        }
        let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = if self.colour {
            writeln!(o, "\x1b[2m#{n}\x1b[0m {line}")
        } else {
            writeln!(o, "#{n} {line}")
        };
    }
    fn done(&self, n: usize, seconds: f64) {
        if !self.quiet {
            let _ = writeln!(
                self.out.lock().unwrap_or_else(|e| e.into_inner()),
                "#{n} DONE {seconds:.1}s"
            );
        }
    }
    fn warn(&self, message: &str) {
        let _ = writeln!(
            self.out.lock().unwrap_or_else(|e| e.into_inner()),
            "warning: {message}"
        );
    }
}

/// Builds the named services' images, one after the other.
pub fn build_services(loaded: &Loaded, services: &[String], flags: &Flags) -> anyhow::Result<()> {
    let images = Images::open(&Store::berth_root()).context("opening the image store")?;
    for name in services {
        let svc = loaded
            .project
            .services
            .get(name)
            .ok_or_else(|| anyhow!("no service {name} in the stack"))?;
        let opts = options(loaded, name, svc, flags)?;
        let colour = match flags.progress {
            ProgressMode::Tty => true,
            ProgressMode::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
            _ => false,
        };
        let lines = Lines {
            service: name.clone(),
            colour,
            quiet: flags.progress == ProgressMode::Quiet,
            out: Mutex::new(std::io::stderr()),
        };
        let started = std::time::Instant::now();
        let report = berth_builder::build(&images, &opts, &lines)
            .with_context(|| format!("building service {name}"))?;
        if flags.progress != ProgressMode::Quiet {
            eprintln!(
                " ✔ {name}: built {} ({}) in {:.2}s, {} of {} steps cached",
                report.record.name,
                report.id.short(),
                started.elapsed().as_secs_f64(),
                report.cached,
                report.steps
            );
        }
    }
    Ok(())
}

fn parse_build_args(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in list {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            Some(_) => bail!("--build-arg {a:?}: the name is empty (KEY=VALUE)"),
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

pub fn run(global: &GlobalArgs, args: &BuildArgs) -> anyhow::Result<i32> {
    let opts = global.load_options(&args.services)?;
    let loaded = stack::load(&opts)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let services: Vec<String> = if args.services.is_empty() {
        loaded
            .project
            .services
            .iter()
            .filter(|(_, s)| s.build.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    } else {
        for s in &args.services {
            if loaded
                .project
                .services
                .get(s)
                .is_some_and(|x| x.build.is_none())
            {
                bail!("service {s} has no `build:` section: there is nothing to build");
            }
        }
        args.services.clone()
    };
    if services.is_empty() {
        eprintln!(
            "{}: no service has a `build:` section; nothing to build",
            loaded.name
        );
        return Ok(0);
    }
    let flags = Flags {
        no_cache: args.no_cache,
        pull: args.pull,
        build_args: parse_build_args(&args.build_args)?,
        progress: if args.quiet {
            ProgressMode::Quiet
        } else {
            ProgressMode::from(global.progress)
        },
    };
    build_services(&loaded, &services, &flags)?;
    Ok(0)
}

/// `up`'s share: build services with `build:` whose image is missing, or all of them
/// with `--build` or `pull_policy: build`; nothing with `--no-build`.
pub fn before_up(loaded: &Loaded, build: bool, no_build: bool) -> anyhow::Result<()> {
    if no_build {
        return Ok(());
    }
    let images = Images::open(&Store::berth_root()).context("opening the image store")?;
    let todo: Vec<String> = loaded
        .project
        .services
        .iter()
        .filter(|(_, s)| s.build.is_some())
        .filter(|(n, s)| {
            build
                || s.pull_policy == Some(PullPolicy::Build)
                || images.resolve(&image_name(loaded, n, s)).is_err()
        })
        .map(|(n, _)| n.clone())
        .collect();
    build_services(loaded, &todo, &Flags::default())
}
