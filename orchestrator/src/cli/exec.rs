//! `berth exec`: run a command in a running service container.

use std::io::Write;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use berth_engine::container::{ExecConfig, LabelFilter};
use clap::Args;

use super::GlobalArgs;
use crate::reconcile::backend::{EngineBackend, Paths};
use crate::reconcile::translate::{LABEL_NUMBER, LABEL_PROJECT, LABEL_SERVICE};
use crate::stack;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// No terminal (the only mode so far; accepted for compatibility)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Set an environment variable (repeatable)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Run as this user
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Which replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    #[arg(trailing_var_arg = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: &ExecArgs) -> anyhow::Result<i32> {
    let loaded = Arc::new(stack::load(&global.load_options(&[])?)?);
    if !loaded.project.services.contains_key(&args.service) {
        bail!("no such service: {}", args.service);
    }
    let backend =
        EngineBackend::new(Arc::clone(&loaded), Paths::from_env()).map_err(|e| anyhow!(e))?;
    let index = args.index.to_string();
    let Some(c) = backend
        .engine
        .list(
            &LabelFilter::new()
                .with(LABEL_PROJECT, &loaded.name)
                .with(LABEL_SERVICE, &args.service)
                .with(LABEL_NUMBER, &index),
        )?
        .into_iter()
        .next()
    else {
        bail!(
            "service {} has no container #{} (is it up?)",
            args.service,
            args.index
        );
    };
    let out = backend.engine.exec(
        &c.id,
        &ExecConfig {
            args: args.command.clone(),
            env: args.env.clone(),
            user: args.user.clone(),
            working_dir: args.workdir.clone(),
        },
    )?;
    std::io::stdout().write_all(&out.stdout)?;
    std::io::stderr().write_all(&out.stderr)?;
    Ok(out.exit_code)
}
