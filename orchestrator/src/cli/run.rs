//! `berth run`: a one-off container of a service, `PROJECT-SERVICE-run-<id>`, on the
//! service's networks, after what it depends on (unless --no-deps). Attached, it is
//! connected to us as `docker compose run` is: a terminal when our stdin and stdout are
//! terminals (not with `-T`), our stdin passed on (not with `-i=false`), its output from
//! the first byte, and our exit code is the command's; `--rm` removes the container and
//! everything made for it (rootfs, network namespace, anonymous volumes) afterwards.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use berth_engine::container::WaitCondition;
use clap::{ArgAction, Args};

use super::up::{converge, waits, ConvergeArgs, ConvergeMode, Pull};
use super::GlobalArgs;
use crate::reconcile::backend::{EngineBackend, OneOff};
use crate::reconcile::execute::wait_condition;
use crate::reconcile::execute::Timing;
use crate::stack::model::{paths::absolutize, ports, shell_words, volumes, Service};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Remove the container (and its anonymous volumes) when it exits
    #[arg(long)]
    pub rm: bool,
    /// Detached: print the container's name and return
    #[arg(short, long)]
    pub detach: bool,
    /// Set an environment variable: KEY=VALUE, or KEY to take it from here (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Do not start the services this one depends on
    #[arg(long)]
    pub no_deps: bool,
    /// Replace the image's entrypoint (a command line)
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Publish a container port: [IP:]HOST:CONTAINER[/PROTO] (repeatable; `-p` after
    /// `run` means this, not the project name)
    #[arg(long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish the service's own ports too
    #[arg(long)]
    pub service_ports: bool,
    /// Mount a volume: SOURCE:TARGET[:ro] (repeatable)
    #[arg(short = 'v', long = "volume", value_name = "VOLUME")]
    pub volumes: Vec<String>,
    /// Run as this user
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// No terminal, even when stdin and stdout are terminals (they give one by default)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// A terminal when stdin and stdout are terminals (the default; for `-it`)
    #[arg(short = 't', long = "tty", hide = true)]
    pub tty: bool,
    /// Keep stdin open and pass ours to the command (default true; `-i=false` to not)
    #[arg(
        short = 'i',
        long,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_name = "BOOL"
    )]
    pub interactive: bool,
    /// The container's name (default: PROJECT-SERVICE-run-<id>)
    #[arg(long)]
    pub name: Option<String>,
    /// Pull the image first: always, missing, never
    #[arg(long, value_enum)]
    pub pull: Option<Pull>,
    /// The service to run
    pub service: String,
    /// The command (default: the service's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The flags of `run` that take a value, so `-p` can be told from the command's own.
const VALUE_FLAGS: [&str; 13] = [
    "-e",
    "--env",
    "--entrypoint",
    "-p",
    "--publish",
    "-v",
    "--volume",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--name",
    "--pull",
];

/// `docker compose run -p 8080:80` publishes a port, while `-p` elsewhere is the project
/// name: `-p` between `run` and the service name becomes `--publish` before parsing.
pub fn rewrite_publish(args: Vec<String>) -> Vec<String> {
    // The verb is the first word that is neither a global flag nor a global flag's value.
    const GLOBAL_VALUE_FLAGS: [&str; 9] = [
        "--ansi",
        "--progress",
        "-f",
        "--file",
        "-p",
        "--project-name",
        "--project-directory",
        "--profile",
        "--env-file",
    ];
    let mut i = 1;
    while i < args.len() && args[i].starts_with('-') {
        i += if GLOBAL_VALUE_FLAGS.contains(&args[i].as_str()) {
            2
        } else {
            1
        };
    }
    if args.get(i).map(String::as_str) != Some("run") {
        return args;
    }
    let mut out = args;
    i += 1;
    while i < out.len() {
        let a = out[i].as_str();
        if a == "--" || !a.starts_with('-') {
            break;
        }
        if a == "-p" {
            out[i] = "--publish".into();
        } else if let Some(v) = a.strip_prefix("-p").filter(|v| !v.is_empty()) {
            out[i] = format!("--publish={v}");
        }
        if VALUE_FLAGS.contains(&out[i].as_str()) {
            i += 1;
        }
        i += 1;
    }
    out
}

fn short_id() -> String {
    let mut b = [0u8; 6];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            ^ u128::from(std::process::id());
        b.copy_from_slice(&n.to_le_bytes()[..6]);
    }
    hex::encode(b)
}

/// Whether the one-off gets a terminal: as compose decides, when not turned off and
/// both our stdin and stdout are terminals (a pipe on either side wants plain bytes).
fn wants_tty(args: &RunArgs) -> bool {
    !args.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The service as the command line changes it for this one container.
fn one_off_service(backend: &EngineBackend, args: &RunArgs) -> anyhow::Result<Service> {
    let loaded = &backend.loaded;
    let mut svc = loaded.project.services[&args.service].clone();
    if !args.command.is_empty() {
        svc.command = Some(args.command.clone());
    }
    if let Some(e) = &args.entrypoint {
        let words = shell_words::split(e).map_err(|why| anyhow!("--entrypoint {e:?}: {why}"))?;
        svc.entrypoint = Some(words);
        if args.command.is_empty() {
            // A new entrypoint drops the service's command too, as Compose does.
            svc.command = Some(Vec::new());
        }
    }
    for kv in &args.env {
        match kv.split_once('=') {
            Some((k, v)) => svc.environment.insert(k.to_string(), Some(v.to_string())),
            None => svc.environment.insert(kv.clone(), std::env::var(kv).ok()),
        };
    }
    if args.user.is_some() {
        svc.user = args.user.clone();
    }
    if args.workdir.is_some() {
        svc.working_dir = args.workdir.clone();
    }
    if !args.service_ports {
        svc.ports.clear();
    }
    for p in &args.publish {
        svc.ports
            .extend(ports::parse_port_spec(p).map_err(|e| anyhow!("--publish: {e}"))?);
    }
    for v in &args.volumes {
        let mut vol = volumes::parse_volume_spec(v).map_err(|e| anyhow!("--volume: {e}"))?;
        if let Some(src) = &vol.source {
            if volumes::is_host_path(src) {
                vol.source = Some(absolutize(src, &loaded.working_dir, None));
            }
        }
        svc.volumes.push(vol);
    }
    // A one-off is never restarted, and has no fixed name to clash with its service's.
    svc.restart = None;
    svc.container_name = None;
    svc.tty = Some(wants_tty(args));
    svc.stdin_open = Some(args.interactive);
    Ok(svc)
}

/// Removes the one-off container and what was made for it, saying so on failure.
fn remove(backend: &EngineBackend, name: &str) {
    if let Err(e) = backend.remove_container(name, Some(Duration::ZERO)) {
        eprintln!("warning: removing {name}: {e}; `berth down` finishes it");
    }
}

pub fn run(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<i32> {
    let converge_args = ConvergeArgs {
        remove_orphans: false,
        force_recreate: false,
        no_recreate: false,
        no_deps: args.no_deps,
        scale: Vec::new(),
        pull: args.pull,
        build: false,
        no_build: false,
        services: vec![args.service.clone()],
    };
    let mode = ConvergeMode {
        no_start: false,
        dry_run: false,
        wait_timeout: Duration::from_secs(300),
        stop_timeout: None,
        except: Some(args.service.clone()),
    };
    let Some(mut c) = converge(global, &converge_args, &mode)? else {
        return Ok(0);
    };
    // The one-off runs as long as its command: it does not hold the project's lock.
    drop(c.lock.take());
    let backend = &c.backend;
    // The one-off starts once its dependencies meet their conditions, as the service would.
    if !args.no_deps {
        let deps = waits(&backend.loaded)
            .remove(&args.service)
            .unwrap_or_default();
        for w in deps {
            if let Err(why) = c
                .runtime
                .block_on(wait_condition(backend, &w, Timing::default()))
            {
                if w.required {
                    bail!("dependency {} {why}", w.service);
                }
                eprintln!("warning: optional dependency {} {why}", w.service);
            }
        }
    }
    let name = args.name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}-run-{}",
            backend.loaded.name,
            args.service,
            short_id()
        )
    });
    let oneoff = OneOff {
        name: name.clone(),
        service: one_off_service(backend, args)?,
    };
    let id = match backend.create_container(&args.service, 1, Some(&oneoff)) {
        Ok(id) => id,
        Err(e) => {
            remove(backend, &name);
            bail!("creating {name}: {e}");
        }
    };
    if args.detach {
        if let Err(e) = backend.engine.start(&id) {
            if args.rm {
                remove(backend, &name);
            }
            return Err(anyhow!(e).context(format!("starting {name}")));
        }
        println!("{name}");
        return Ok(0);
    }
    // Ctrl-C goes to the command (SIGINT); a second one kills it. (With a terminal our
    // terminal is raw: Ctrl-C is a byte for the container and raises nothing here.)
    let b = Arc::clone(backend);
    let target = id.clone();
    c.runtime.spawn(async move {
        let mut n = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            n += 1;
            let sig = if n == 1 {
                nix::sys::signal::Signal::SIGINT
            } else {
                nix::sys::signal::Signal::SIGKILL
            };
            let _ = b.engine.kill(&target, sig);
        }
    });
    // The container starts once attached: its output from the first byte, our stdin.
    if let Err(e) = backend.engine.start_attached(&id) {
        if args.rm {
            remove(backend, &name);
        }
        return Err(anyhow!(e).context(format!("starting {name}")));
    }
    let outcome = backend
        .engine
        .wait(&id, WaitCondition::Exited, None)
        .with_context(|| format!("waiting for {name}"));
    if let Ok(info) = backend.engine.inspect(&id) {
        if let Some(e) = info.error {
            eprintln!("error: {name}: {e}");
        }
    }
    if args.rm {
        remove(backend, &name);
    }
    Ok(outcome?.exit_code.unwrap_or(-1))
}

#[cfg(test)]
mod tests {
    use super::rewrite_publish;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn dash_p_after_run_publishes_and_before_it_names_the_project() {
        assert_eq!(
            rewrite_publish(words("berth -p proj run --rm -p 80:80 -e A=1 web sh -p x")),
            words("berth -p proj run --rm --publish 80:80 -e A=1 web sh -p x")
        );
        assert_eq!(
            rewrite_publish(words("berth -p run up -p x")),
            words("berth -p run up -p x")
        );
        assert_eq!(
            rewrite_publish(words("berth run -p8080:80 web")),
            words("berth run --publish=8080:80 web")
        );
    }
}
