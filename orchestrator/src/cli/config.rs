//! `berth config`: the resolved, normalized stack, as `docker compose config` prints it.

use std::io::Write;

use clap::{Args, ValueEnum};

use super::GlobalArgs;
use crate::stack::{self, config::Format};

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub format: OutputFormat,
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one per line
    #[arg(long)]
    pub networks: bool,
    /// Print the profile names, one per line
    #[arg(long)]
    pub profiles: bool,
    /// Print the image names, one per line
    #[arg(long)]
    pub images: bool,
    /// Print the config hash of services: a comma-separated list, or '*' for all
    #[arg(long, value_name = "SERVICES")]
    pub hash: Option<String>,
    /// Only validate the stack; the exit code says whether it is valid
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the dependency graph in Graphviz DOT
    #[arg(long)]
    pub graph: bool,
    /// Write the output to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Services to show (default: all enabled ones)
    pub service_names: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Yaml,
    Json,
}

pub fn run(global: &GlobalArgs, args: &ConfigArgs) -> anyhow::Result<i32> {
    let opts = global.load_options(&args.service_names)?;
    let loaded = stack::load(&opts)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if args.quiet {
        return Ok(0);
    }
    let project = &loaded.project;
    let lines = |items: Vec<String>| items.iter().map(|s| format!("{s}\n")).collect::<String>();
    let text = if args.services {
        lines(project.services.keys().cloned().collect())
    } else if args.volumes {
        lines(project.volumes.keys().cloned().collect())
    } else if args.networks {
        lines(project.networks.keys().cloned().collect())
    } else if args.profiles {
        lines(loaded.all_profiles.clone())
    } else if args.images {
        lines(
            project
                .services
                .iter()
                .map(|(name, s)| {
                    s.image
                        .clone()
                        .unwrap_or_else(|| format!("{}-{name}", loaded.name))
                })
                .collect(),
        )
    } else if let Some(spec) = &args.hash {
        let wanted: Vec<String> = if spec.trim() == "*" {
            project.services.keys().cloned().collect()
        } else {
            spec.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut out = String::new();
        for name in wanted {
            let hash = stack::config::service_hash(&loaded, &name)
                .ok_or_else(|| anyhow::anyhow!("no such service: {name}"))?;
            out.push_str(&format!("{name} {hash}\n"));
        }
        out
    } else if args.graph {
        loaded.graph.to_dot()
    } else {
        let format = match args.format {
            OutputFormat::Yaml => Format::Yaml,
            OutputFormat::Json => Format::Json,
        };
        stack::config::render(&loaded, format)
    };
    match &args.output {
        Some(path) => std::fs::write(path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`berth config | head`) is not an error worth a message.
            let _ = out.write_all(text.as_bytes());
        }
    }
    Ok(0)
}
