//! `berth logs`: the stack's container logs, prefixed `service-N |` as Compose does;
//! also what `up` in the foreground shows.

use std::io::Write;
use std::sync::Arc;

use anyhow::anyhow;
use berth_engine::container::{LabelFilter, LogOptions};
use clap::Args;

use super::GlobalArgs;
use crate::reconcile::backend::{EngineBackend, Paths};
use crate::reconcile::translate::{LABEL_NUMBER, LABEL_PROJECT, LABEL_SERVICE};
use crate::stack;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing new lines
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each container
    #[arg(long)]
    pub tail: Option<usize>,
    /// Prefix each line with its time
    #[arg(short, long)]
    pub timestamps: bool,
    /// No `service-N |` prefix
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// Prints the logs of the given containers, one thread each (a followed log blocks).
fn print_logs(
    backend: &EngineBackend,
    services: &[String],
    opts: LogOptions,
    timestamps: bool,
    prefix: bool,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let list = backend
        .engine
        .list(&LabelFilter::new().with(LABEL_PROJECT, &backend.loaded.name))?;
    let label = |c: &berth_engine::container::ContainerSummary| {
        let service = c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
        let number = c.labels.get(LABEL_NUMBER).cloned().unwrap_or_default();
        (service.clone(), format!("{service}-{number}"))
    };
    let chosen: Vec<_> = list
        .into_iter()
        .filter(|c| services.is_empty() || services.contains(&label(c).0))
        .collect();
    // Prefixes are padded to the longest shown, as Compose does.
    let width = chosen.iter().map(|c| label(c).1.len()).max().unwrap_or(0);
    let mut threads = Vec::new();
    for c in chosen {
        let (_, label) = label(&c);
        let stream = backend.engine.logs(&c.id, opts.clone())?;
        threads.push(std::thread::spawn(move || {
            for line in stream {
                let text = line.display(timestamps);
                let mut out = std::io::stdout().lock();
                let r = if prefix {
                    writeln!(out, "{label:<width$} | {text}")
                } else {
                    writeln!(out, "{text}")
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
    let loaded = Arc::new(stack::load(&global.load_options(&[])?)?);
    let backend = EngineBackend::new(loaded, Paths::from_env()).map_err(|e| anyhow!(e))?;
    let opts = LogOptions {
        follow: args.follow,
        tail: args.tail,
        ..LogOptions::default()
    };
    for t in print_logs(
        &backend,
        &args.services,
        opts,
        args.timestamps,
        !args.no_log_prefix,
    )? {
        let _ = t.join();
    }
    Ok(0)
}

/// `up` in the foreground: follow every log until Ctrl-C, then stop the stack.
pub fn follow_until_interrupt(
    backend: &Arc<EngineBackend>,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<i32> {
    let opts = LogOptions {
        follow: true,
        ..LogOptions::default()
    };
    let _threads = print_logs(backend, &[], opts, false, true)?;
    runtime.block_on(tokio::signal::ctrl_c())?;
    eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
    let b = Arc::clone(backend);
    let stopper = std::thread::spawn(move || {
        let list = b
            .engine
            .list(&LabelFilter::new().with(LABEL_PROJECT, &b.loaded.name))
            .unwrap_or_default();
        for c in list {
            let _ = b.engine.stop(&c.id, None);
        }
    });
    runtime.block_on(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                let list = backend
                    .engine
                    .list(&LabelFilter::new().with(LABEL_PROJECT, &backend.loaded.name))
                    .unwrap_or_default();
                for c in list {
                    let _ = backend.engine.kill(&c.id, nix::sys::signal::Signal::SIGKILL);
                }
            }
            _ = tokio::task::spawn_blocking(move || stopper.join()) => {}
        }
    });
    Ok(130)
}
