//! `berth kube convert|apply|down|ps`: the stack on Kubernetes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::GlobalArgs;
use crate::kube::apply::{self, Cluster};
use crate::kube::{self as k, names::dns_label, render, ConvertOptions, ServiceType};

#[derive(Subcommand, Debug)]
pub enum KubeCommand {
    /// Write the stack as Kubernetes manifests (multi-document YAML)
    Convert(ConvertArgs),
    /// Send the stack to a cluster with server-side apply
    Apply(ApplyArgs),
    /// Remove every object of the project from the cluster
    Down(ClusterArgs),
    /// List the project's workloads on the cluster and their state
    Ps(ClusterArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ConversionArgs {
    /// Namespace (default: one named after the project, created and removed with it)
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Fail when any attribute has no faithful Kubernetes form
    #[arg(long)]
    pub strict: bool,
    /// How published ports are exposed (a service's `x-kubernetes: {service-type: …}` wins)
    #[arg(long, value_enum, default_value_t = ServiceType::ClusterIp)]
    pub service_type: ServiceType,
    /// Only these services (and the services whose Pod they join)
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// `-` (standard output, the default) or a directory for one file per object
    #[arg(short = 'o', long, value_name = "DIR|-")]
    pub output: Option<String>,
    #[command(flatten)]
    pub conversion: ConversionArgs,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// kubeconfig context (default: the current one)
    #[arg(long)]
    pub context: Option<String>,
    /// Delete the project's objects that the stack no longer has
    #[arg(long)]
    pub prune: bool,
    /// Wait until the Deployments, StatefulSets and DaemonSets are available and the Jobs complete
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, in seconds
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    #[command(flatten)]
    pub conversion: ConversionArgs,
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// kubeconfig context (default: the current one)
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace (default: the project's)
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Loads and converts, printing the warnings; `--strict` makes them an error.
fn convert(
    global: &GlobalArgs,
    args: &ConversionArgs,
) -> anyhow::Result<(crate::stack::Loaded, k::Conversion)> {
    let loaded = crate::stack::load(&global.load_options(&args.services)?)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let conversion = k::convert(
        &loaded,
        &ConvertOptions {
            namespace: args.namespace.clone(),
            service_type: args.service_type,
            services: args.services.clone(),
        },
    )?;
    for w in &conversion.warnings {
        eprintln!("warning: {w}");
    }
    if args.strict && !conversion.warnings.is_empty() {
        anyhow::bail!(
            "{} attribute(s) have no faithful Kubernetes form (listed above); --strict refuses to convert",
            conversion.warnings.len()
        );
    }
    Ok((loaded, conversion))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run(global: &GlobalArgs, cmd: &KubeCommand) -> anyhow::Result<i32> {
    match cmd {
        KubeCommand::Convert(args) => {
            let (_, conversion) = convert(global, &args.conversion)?;
            match args.output.as_deref() {
                None | Some("-") => print!("{}", render::to_stream(&conversion.manifests)),
                Some(dir) => {
                    let files = render::write_dir(&PathBuf::from(dir), &conversion.manifests)
                        .with_context(|| format!("writing manifests to {dir}"))?;
                    eprintln!("{} manifest(s) written to {dir}", files.len());
                }
            }
            Ok(0)
        }
        KubeCommand::Apply(args) => {
            let (loaded, conversion) = convert(global, &args.conversion)?;
            // Refuse before touching the cluster.
            let root = berth_engine::image::Store::berth_root();
            if let Ok(store) = berth_engine::image::Images::open(&root) {
                let local = apply::local_only_images(&loaded, &store, &args.conversion.services);
                if !local.is_empty() {
                    let lines: Vec<String> = local.iter().map(|l| l.to_string()).collect();
                    anyhow::bail!("{}", lines.join("\n"));
                }
            }
            let rt = runtime()?;
            rt.block_on(async {
                let cluster = Cluster::connect(args.context.as_deref()).await?;
                let report = apply::apply(
                    &cluster,
                    &loaded.name,
                    &conversion.namespace,
                    &conversion.manifests,
                    args.prune,
                )
                .await?;
                for a in &report.applied {
                    println!("{a} applied");
                }
                for p in &report.pruned {
                    println!("{p} pruned");
                }
                if args.wait {
                    apply::wait(
                        &cluster,
                        &conversion.namespace,
                        &conversion.manifests,
                        Duration::from_secs(args.timeout),
                        Duration::from_secs(2),
                    )
                    .await?;
                    println!("all workloads available");
                }
                anyhow::Ok(0)
            })
        }
        KubeCommand::Down(args) | KubeCommand::Ps(args) => {
            let loaded = crate::stack::load(&global.load_options(&[])?)?;
            let (namespace, owns) = match &args.namespace {
                Some(n) => (n.clone(), false),
                None => (dns_label(&loaded.name), true),
            };
            let project = if crate::kube::names::is_label_value(&loaded.name) {
                loaded.name.clone()
            } else {
                dns_label(&loaded.name)
            };
            let rt = runtime()?;
            let down = matches!(cmd, KubeCommand::Down(_));
            rt.block_on(async {
                let cluster = Cluster::connect(args.context.as_deref()).await?;
                if down {
                    for r in apply::down(&cluster, &project, &namespace, owns).await? {
                        println!("{r} removed");
                    }
                } else {
                    println!(
                        "{:<30} {:<12} {:<20} {:<7} STATE",
                        "NAME", "KIND", "SERVICE", "READY"
                    );
                    for w in apply::ps(&cluster, &project, &namespace).await? {
                        println!(
                            "{:<30} {:<12} {:<20} {:<7} {}",
                            w.name, w.kind, w.service, w.ready, w.state
                        );
                    }
                }
                anyhow::Ok(0)
            })
        }
    }
}
