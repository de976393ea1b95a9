//! `berth logs`: the stack's container logs, prefixed `service-N |` as Compose does
//! (coloured per container on a terminal); also what `up` in the foreground shows, and
//! how it stops (Ctrl-C, a container exiting with --abort-on-container-exit).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail};
use berth_engine::container::{ContainerSummary, LogOptions, Status, Stream};
use clap::Args;

use super::GlobalArgs;
use crate::reconcile::backend::EngineBackend;
use crate::reconcile::translate::{LABEL_NUMBER, LABEL_SERVICE};

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing new lines
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each container (`all`: every line)
    #[arg(short = 'n', long)]
    pub tail: Option<String>,
    /// Prefix each line with its time
    #[arg(short, long)]
    pub timestamps: bool,
    /// Lines since a time: RFC 3339 (2024-05-01T10:00:00Z), Unix seconds, or a
    /// duration ago (42m, 1h30m)
    #[arg(long)]
    pub since: Option<String>,
    /// Lines before a time (same forms as --since)
    #[arg(long)]
    pub until: Option<String>,
    /// No colours
    #[arg(long)]
    pub no_color: bool,
    /// No `service-N |` prefix
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `--since`/`--until` as Docker takes them.
fn parse_time(flag: &str, text: &str) -> anyhow::Result<SystemTime> {
    if let Ok(secs) = text.parse::<f64>() {
        if secs >= 0.0 {
            return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
        }
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(SystemTime::now() - d);
    }
    bail!("{flag} {text:?}: give an RFC 3339 time (2024-05-01T10:00:00Z), Unix seconds, or a duration ago (10m, 1h30m)")
}

/// How log lines are shown.
#[derive(Clone, Copy)]
struct Show {
    timestamps: bool,
    prefix: bool,
    colour: bool,
}

/// Colours of the prefixes, one per container in turn, as Compose cycles them.
const PALETTE: [u8; 10] = [36, 33, 32, 35, 34, 96, 93, 92, 95, 94];

/// Prints the logs of the given containers, one thread each (a followed log blocks).
fn print_logs(
    backend: &EngineBackend,
    chosen: Vec<ContainerSummary>,
    opts: LogOptions,
    show: Show,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let label = |c: &ContainerSummary| {
        let service = c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
        let number = c.labels.get(LABEL_NUMBER).cloned().unwrap_or_default();
        format!("{service}-{number}")
    };
    // Prefixes are padded to the longest shown, as Compose does.
    let width = chosen.iter().map(|c| label(c).len()).max().unwrap_or(0);
    let mut threads = Vec::new();
    for (i, c) in chosen.into_iter().enumerate() {
        let label = format!("{:<width$} | ", label(&c));
        let label = if show.colour {
            format!("\x1b[{}m{label}\x1b[0m", PALETTE[i % PALETTE.len()])
        } else {
            label
        };
        let stream = backend.engine.logs(&c.id, opts.clone())?;
        threads.push(std::thread::spawn(move || {
            for line in stream {
                let text = line.display(show.timestamps);
                let prefix = if show.prefix { label.as_str() } else { "" };
                // A container's stderr goes to ours when shown alone, as Compose does.
                let r = if !show.prefix && line.stream == Stream::Stderr {
                    writeln!(std::io::stderr().lock(), "{text}")
                } else {
                    writeln!(std::io::stdout().lock(), "{prefix}{text}")
                };
                if r.is_err() {
                    break;
                }
            }
        }));
    }
    Ok(threads)
}

pub fn run(global: &GlobalArgs, args: &LogsArgs) -> anyhow::Result<i32> {
    let backend = global.open()?;
    let tail = match args.tail.as_deref() {
        None | Some("all") | Some("-1") => None,
        Some(n) => Some(
            n.parse()
                .map_err(|_| anyhow!("--tail {n:?}: give a number of lines, or `all`"))?,
        ),
    };
    let opts = LogOptions {
        follow: args.follow,
        tail,
        since: args
            .since
            .as_deref()
            .map(|t| parse_time("--since", t))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_time("--until", t))
            .transpose()?,
    };
    let show = Show {
        timestamps: args.timestamps,
        prefix: !args.no_log_prefix,
        colour: !args.no_color && global.colour_stdout(),
    };
    let chosen = super::service_containers(&backend, &args.services)?;
    for t in print_logs(&backend, chosen, opts, show)? {
        let _ = t.join();
    }
    Ok(0)
}

/// How `up` in the foreground behaves.
pub struct Foreground {
    pub services: Vec<String>,
    /// `--abort-on-container-exit`: the first container to stop stops them all.
    pub abort_on_exit: bool,
    /// `--exit-code-from`: whose exit code `up` returns.
    pub exit_code_from: Option<String>,
    pub stop_timeout: Option<Duration>,
    pub colour: bool,
}

fn service_of(c: &ContainerSummary) -> &str {
    c.labels
        .get(LABEL_SERVICE)
        .map(String::as_str)
        .unwrap_or("")
}

fn stopped(c: &ContainerSummary) -> bool {
    matches!(c.state, Status::Exited | Status::Dead)
}

/// Stops the containers, dependants first; a second Ctrl-C (`interrupt`) kills instead.
fn stop_all(
    backend: &Arc<EngineBackend>,
    runtime: &tokio::runtime::Runtime,
    interrupt: &mut tokio::signal::unix::Signal,
    services: &[String],
    timeout: Option<Duration>,
) {
    let b = Arc::clone(backend);
    let services = services.to_vec();
    let stopper = std::thread::spawn(move || {
        let list = super::service_containers(&b, &services).unwrap_or_default();
        let order = b.loaded.graph.stop_order();
        let rank = |c: &ContainerSummary| order.iter().position(|o| *o == service_of(c));
        let mut list = list;
        list.sort_by_key(rank);
        std::thread::scope(|scope| {
            for c in &list {
                let b = &b;
                scope.spawn(move || {
                    let _ = b.engine.stop(&c.id, timeout);
                    eprintln!(" ✔ stopped {}", c.name);
                });
            }
        });
    });
    runtime.block_on(async {
        tokio::select! {
            _ = interrupt.recv() => {
                eprintln!("Killing...");
                for c in super::service_containers(backend, &[]).unwrap_or_default() {
                    let _ = backend.engine.kill(&c.id, nix::sys::signal::Signal::SIGKILL);
                }
            }
            _ = tokio::task::spawn_blocking(move || stopper.join()) => {}
        }
    });
}

/// `up` in the foreground: follow the logs until Ctrl-C (then stop the stack; a second
/// Ctrl-C kills it), until every container stopped, or, with `abort_on_exit`, until one
/// did. Returns the exit code Compose would.
pub fn foreground(
    backend: &Arc<EngineBackend>,
    runtime: &tokio::runtime::Runtime,
    how: &Foreground,
) -> anyhow::Result<i32> {
    let opts = LogOptions {
        follow: true,
        ..LogOptions::default()
    };
    let show = Show {
        timestamps: false,
        prefix: true,
        colour: how.colour,
    };
    let chosen = super::service_containers(backend, &how.services)?;
    let threads = print_logs(backend, chosen, opts, show)?;
    let mut interrupt = {
        let _guard = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?
    };
    loop {
        let interrupted = runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => true,
                _ = tokio::time::sleep(Duration::from_millis(200)) => false,
            }
        });
        let stop = |interrupt: &mut tokio::signal::unix::Signal| {
            stop_all(backend, runtime, interrupt, &how.services, how.stop_timeout)
        };
        if interrupted {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            stop(&mut interrupt);
            return Ok(130);
        }
        let list = super::service_containers(backend, &how.services)?;
        let code_of = |service: &str| {
            list.iter()
                .filter(|c| service_of(c) == service)
                .find_map(|c| c.exit_code)
        };
        if how.abort_on_exit {
            if let Some(first) = list.iter().find(|c| stopped(c)) {
                eprintln!(
                    "{} exited with code {}",
                    first.name,
                    first.exit_code.unwrap_or(-1)
                );
                eprintln!("Aborting on container exit...");
                stop(&mut interrupt);
                let code = match &how.exit_code_from {
                    Some(s) => {
                        // Its code once it has stopped (it may be the one that was stopped).
                        let list = super::service_containers(backend, std::slice::from_ref(s))?;
                        list.iter().find_map(|c| c.exit_code).unwrap_or(-1)
                    }
                    None => first.exit_code.unwrap_or(-1),
                };
                finish(threads);
                return Ok(code);
            }
        } else if !list.is_empty() && list.iter().all(stopped) {
            finish(threads);
            return Ok(how.exit_code_from.as_deref().and_then(code_of).unwrap_or(0));
        }
    }
}

/// Lets the log threads print what is left (their streams end with the containers).
fn finish(threads: Vec<std::thread::JoinHandle<()>>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for t in threads {
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
