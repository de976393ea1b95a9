//! `berth wait`: block until the services' containers stop; exit with the exit code of
//! the first that did (as `docker compose wait`).

use std::sync::mpsc;

use anyhow::bail;
use berth_engine::container::WaitCondition;
use clap::Args;

use super::GlobalArgs;

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Run `down` once the first container stopped
    #[arg(long)]
    pub down_project: bool,
    /// Services to wait for
    #[arg(required = true)]
    pub services: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: &WaitArgs) -> anyhow::Result<i32> {
    let backend = global.open()?;
    let list = super::service_containers(&backend, &args.services)?;
    if list.is_empty() {
        bail!(
            "no containers of {} (is the stack up?)",
            args.services.join(", ")
        );
    }
    let (tx, rx) = mpsc::channel();
    for c in list {
        let engine = backend.engine.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = engine.wait(&c.id, WaitCondition::Exited, None);
            let _ = tx.send((c.name, r));
        });
    }
    drop(tx);
    let (name, outcome) = rx
        .recv()
        .map_err(|_| anyhow::anyhow!("every wait ended without an answer"))?;
    let code = match outcome {
        Ok(o) => o.exit_code.unwrap_or(-1),
        Err(e) => bail!("waiting for {name}: {e}"),
    };
    if args.down_project {
        let down = super::down::DownArgs {
            volumes: false,
            remove_orphans: false,
            timeout: None,
        };
        super::down::run(global, &down)?;
    }
    Ok(code)
}
