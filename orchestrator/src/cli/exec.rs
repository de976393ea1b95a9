//! `berth exec`: run a command in a running service container. With a terminal on
//! stdin it gets a real one inside the container (relayed in raw mode), as `docker
//! compose exec` does; `-T` gives it our stdin/stdout/stderr as they are instead.

use std::io::IsTerminal;

use anyhow::bail;
use berth_engine::container::{ExecConfig, ExecStdio};
use clap::Args;

use super::GlobalArgs;
use crate::reconcile::translate::LABEL_NUMBER;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached: start the command and return
    #[arg(short, long)]
    pub detach: bool,
    /// No terminal, even when stdin is one
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
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: &ExecArgs) -> anyhow::Result<i32> {
    let backend = global.open()?;
    let index = args.index.to_string();
    let Some(c) = super::service_containers(&backend, std::slice::from_ref(&args.service))?
        .into_iter()
        .find(|c| c.labels.get(LABEL_NUMBER) == Some(&index))
    else {
        bail!(
            "service {} has no container #{} (is it up?)",
            args.service,
            args.index
        );
    };
    let how = if args.detach {
        ExecStdio::Detached
    } else if !args.no_tty && std::io::stdin().is_terminal() {
        ExecStdio::Terminal
    } else {
        ExecStdio::Inherit
    };
    let env = args
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some(_) => kv.clone(),
            None => format!("{kv}={}", std::env::var(kv).unwrap_or_default()),
        })
        .collect();
    Ok(backend.engine.exec_attached(
        &c.id,
        &ExecConfig {
            args: args.command.clone(),
            env,
            user: args.user.clone(),
            working_dir: args.workdir.clone(),
        },
        how,
    )?)
}
