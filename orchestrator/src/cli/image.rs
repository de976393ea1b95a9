//! The image verbs: `berth pull` and `berth images` (the stack's images), and
//! `berth image ls|rm|prune|inspect|load|import|save|push|tag|pull` (the store's).
//! The store lives under `BERTH_ROOT` (default /var/lib/berth).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};
use berth_engine::image::export::{self, Format};
use berth_engine::image::registry::Progress;
use berth_engine::image::{import, Digest, Images, RegistryOptions, Store};
use clap::{Args, Subcommand, ValueEnum};

use super::GlobalArgs;
use crate::stack;

/// Flags every verb that talks to a registry takes.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Allow plain HTTP to this registry (host[:port]); repeatable. Loopback registries
    /// (localhost, 127.0.0.1) always may. Also BERTH_INSECURE_REGISTRIES=a,b
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Docker-style config.json with registry credentials (default ~/.docker/config.json)
    #[arg(long = "authfile", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
}

impl RegistryArgs {
    fn options(&self) -> RegistryOptions {
        let mut insecure = self.insecure.clone();
        if let Ok(v) = std::env::var("BERTH_INSECURE_REGISTRIES") {
            insecure.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        RegistryOptions {
            insecure,
            auth_file: self.auth_file.clone(),
            credentials: None,
            max_concurrent: 0,
        }
    }
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    /// Report images that fail to pull, and go on with the others
    #[arg(long)]
    pub ignore_pull_failures: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Services whose images to pull (default: all enabled ones)
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Services whose images to list (default: all enabled ones)
    pub services: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images in the store
    #[command(alias = "list")]
    Ls {
        /// Only image IDs
        #[arg(short, long)]
        quiet: bool,
        /// Show manifest digests
        #[arg(long)]
        digests: bool,
    },
    /// Remove image names (refused while a container uses the image, unless --force)
    #[command(alias = "remove")]
    Rm {
        /// Remove the name even while containers use the image (their layers stay
        /// until they are removed); `-f` is taken by the global `--file`
        #[arg(long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove every blob and unpacked layer no image or container references
    Prune {
        /// Accepted for docker compatibility: Berth does not ask
        #[arg(long)]
        force: bool,
    },
    /// Show an image's record, manifest and config as JSON
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load images from a docker-archive or OCI archive (or `oci:DIR[:TAG]`)
    Load {
        #[arg(short, long, value_name = "FILE")]
        input: String,
        /// Name for an image the archive leaves unnamed (OCI layouts)
        #[arg(long)]
        name: Option<String>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Make a one-layer image from a root filesystem tarball
    Import { file: PathBuf, name: String },
    /// Write images to an archive that `docker load` and skopeo read
    Save {
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[arg(long, value_enum, default_value_t = SaveFormat::DockerArchive)]
        format: SaveFormat,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Push an image to a registry (blobs it has are not sent again)
    Push {
        image: String,
        /// Destination reference (default: the image's own name)
        destination: Option<String>,
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Give an image another name
    Tag { source: String, target: String },
    /// Pull images by reference
    Pull {
        #[arg(required = true)]
        references: Vec<String>,
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    DockerArchive,
    OciArchive,
}

fn open() -> anyhow::Result<Images> {
    let root = Store::berth_root();
    Images::open(&root).with_context(|| format!("opening the image store under {}", root.display()))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Progress: a bar per blob on a terminal, plain lines otherwise.
struct Bars {
    multi: Option<indicatif::MultiProgress>,
    bars: Mutex<std::collections::HashMap<Digest, indicatif::ProgressBar>>,
    quiet: bool,
    prefix: String,
}

impl Bars {
    fn new(quiet: bool, prefix: &str) -> Arc<Bars> {
        let tty = std::io::stdout().is_terminal();
        Arc::new(Bars {
            multi: (tty && !quiet).then(indicatif::MultiProgress::new),
            bars: Mutex::new(Default::default()),
            quiet,
            prefix: prefix.to_string(),
        })
    }
    fn line(&self, s: String) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None => println!("{s}"),
        }
    }
}

impl Progress for Bars {
    fn start(&self, d: &Digest, size: u64, what: &str) {
        if let Some(m) = &self.multi {
            let b = m.add(indicatif::ProgressBar::new(size));
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(format!("{}{}", self.prefix, d.short()));
            b.set_message(what.to_string());
            if let Ok(mut bars) = self.bars.lock() {
                bars.insert(d.clone(), b);
            }
        } else {
            self.line(format!("{}{}: {what} {size} bytes", self.prefix, d.short()));
        }
    }
    fn advance(&self, d: &Digest, done: u64) {
        if let Some(b) = self.bars.lock().ok().and_then(|b| b.get(d).cloned()) {
            b.set_position(done);
        }
    }
    fn finish(&self, d: &Digest, note: &str) {
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(d));
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        self.line(format!("{}{}: {note}", self.prefix, d.short()));
    }
}

fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        let n = format!("{v:.3}");
        format!(
            "{}{}",
            n.trim_end_matches('0').trim_end_matches('.'),
            units[i]
        )
    }
}

/// Pulls references in parallel; returns how many failed.
fn pull_refs(
    refs: &[String],
    reg: &RegistryArgs,
    quiet: bool,
    keep_going: bool,
) -> anyhow::Result<i32> {
    let images = open()?;
    let opts = reg.options();
    let rt = runtime()?;
    let started = Instant::now();
    let results = rt.block_on(async {
        let jobs = refs.iter().map(|r| {
            let images = images.clone();
            let opts = opts.clone();
            let prefix = if refs.len() > 1 {
                format!("{r} ")
            } else {
                String::new()
            };
            let bars = Bars::new(quiet, &prefix);
            let r = r.clone();
            async move {
                if !quiet {
                    println!("Pulling {r}");
                }
                let res = berth_engine::image::pull(&images, &r, &opts, bars).await;
                (r, res)
            }
        });
        futures_join_all(jobs).await
    })?;
    let mut failed = 0;
    for (r, res) in results {
        match res {
            Ok(rep) => {
                if !quiet {
                    println!(
                        "{}: {} ({} fetched, {})",
                        rep.record.name,
                        rep.record.manifest,
                        rep.fetched.len(),
                        human(rep.bytes)
                    );
                }
            }
            Err(e) => {
                failed += 1;
                let err = anyhow::Error::new(e).context(format!("pulling {r}"));
                if keep_going {
                    super::report(&err, false);
                } else if refs.len() == 1 {
                    return Err(err);
                } else {
                    super::report(&err, false);
                }
            }
        }
    }
    if !quiet {
        eprintln!(
            "pulled {} image(s) in {:.1}s",
            refs.len() - failed,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if failed > 0 && !keep_going { 1 } else { 0 })
}

/// Runs the pulls as tasks on the runtime (so they use every worker) and collects them.
async fn futures_join_all<F>(jobs: impl Iterator<Item = F>) -> anyhow::Result<Vec<F::Output>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = jobs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.context("a pull task failed")?);
    }
    Ok(out)
}

/// `berth pull [SERVICE...]`
pub fn pull(global: &GlobalArgs, args: &PullArgs) -> anyhow::Result<i32> {
    let refs = stack_images(global, &args.services)?;
    if refs.is_empty() {
        if !args.quiet {
            println!("no service has an image to pull");
        }
        return Ok(0);
    }
    pull_refs(&refs, &args.registry, args.quiet, args.ignore_pull_failures)
}

/// The distinct images of the selected services, in service order.
fn stack_images(global: &GlobalArgs, services: &[String]) -> anyhow::Result<Vec<String>> {
    let opts = global.load_options(services)?;
    let loaded = stack::load(&opts)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (name, svc) in &loaded.project.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        match &svc.image {
            Some(i) => {
                if seen.insert(i.clone()) {
                    out.push(i.clone());
                }
            }
            None => tracing::info!("service {name} has no image (it is built); skipped"),
        }
    }
    Ok(out)
}

/// `berth images [SERVICE...]`
pub fn images(global: &GlobalArgs, args: &ImagesArgs) -> anyhow::Result<i32> {
    let refs = stack_images(global, &args.services)?;
    let store = open()?;
    if !args.quiet {
        println!(
            "{:<50} {:<20} {:<14} {:>10}",
            "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
        );
    }
    for r in refs {
        match store.resolve(&r) {
            Ok(img) => {
                if args.quiet {
                    println!("{}", img.id().short());
                } else {
                    let (repo, tag) = split_name(&img.record.name);
                    println!(
                        "{repo:<50} {tag:<20} {:<14} {:>10}",
                        img.id().short(),
                        human(img.size())
                    );
                }
            }
            Err(_) if !args.quiet => {
                println!("{r:<50} {:<20} {:<14} {:>10}", "", "(not pulled)", "")
            }
            Err(_) => {}
        }
    }
    Ok(0)
}

fn split_name(name: &str) -> (String, String) {
    if let Some((repo, digest)) = name.split_once('@') {
        return (
            repo.to_string(),
            format!("@{}", &digest[..digest.len().min(19)]),
        );
    }
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[slash..].rfind(':') {
        Some(i) => (
            name[..slash + i].to_string(),
            name[slash + i + 1..].to_string(),
        ),
        None => (name.to_string(), "<none>".to_string()),
    }
}

/// `berth image …`
pub fn image(_global: &GlobalArgs, cmd: &ImageCommand) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Ls { quiet, digests } => {
            let store = open()?;
            let mut list = store.list()?;
            list.sort_by(|a, b| a.record.name.cmp(&b.record.name));
            if !quiet {
                if *digests {
                    println!(
                        "{:<50} {:<20} {:<72} {:<14} {:>10}",
                        "REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "SIZE"
                    );
                } else {
                    println!(
                        "{:<50} {:<20} {:<14} {:>10}",
                        "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
                    );
                }
            }
            for img in list {
                if *quiet {
                    println!("{}", img.id().short());
                    continue;
                }
                let (repo, tag) = split_name(&img.record.name);
                if *digests {
                    println!(
                        "{repo:<50} {tag:<20} {:<72} {:<14} {:>10}",
                        img.record.manifest.to_string(),
                        img.id().short(),
                        human(img.size())
                    );
                } else {
                    println!(
                        "{repo:<50} {tag:<20} {:<14} {:>10}",
                        img.id().short(),
                        human(img.size())
                    );
                }
            }
            Ok(0)
        }
        ImageCommand::Rm { force, images } => {
            let store = open()?;
            let mut failed = 0;
            for i in images {
                match store.remove(i, *force) {
                    Ok(rec) => println!("Untagged: {}", rec.name),
                    Err(e) => {
                        failed += 1;
                        super::report(&anyhow::Error::new(e), false);
                    }
                }
            }
            Ok(if failed > 0 { 1 } else { 0 })
        }
        ImageCommand::Prune { force: _ } => {
            let store = open()?;
            let r = store.prune()?;
            println!(
                "Deleted {} blob(s) and {} unpacked layer(s)\nTotal reclaimed space: {}",
                r.blobs,
                r.layers,
                human(r.bytes)
            );
            Ok(0)
        }
        ImageCommand::Inspect { images } => {
            let store = open()?;
            let mut out = Vec::new();
            for i in images {
                let img = store.resolve(i)?;
                let config: serde_json::Value =
                    serde_json::from_slice(&store.store().read_blob(img.id())?)?;
                out.push(serde_json::json!({
                    "Id": img.id().to_string(),
                    "Name": img.record.name,
                    "ManifestDigest": img.record.manifest.to_string(),
                    "ManifestMediaType": img.record.media_type,
                    "IndexDigest": img.record.index.as_ref().map(|d| d.to_string()),
                    "Size": img.size(),
                    "Architecture": img.config.architecture,
                    "Os": img.config.os,
                    "Config": config.get("config").cloned().unwrap_or_default(),
                    "RootFS": config.get("rootfs").cloned().unwrap_or_default(),
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        ImageCommand::Load { input, name, quiet } => {
            let store = open()?;
            let recs = if let Some(spec) = input.strip_prefix("oci:") {
                import::load_oci(store.store(), spec, name.as_deref())?
            } else if let Some(p) = input.strip_prefix("docker-archive:") {
                import::load_docker_archive(store.store(), &PathBuf::from(p))?
            } else {
                let p = PathBuf::from(input);
                if p.is_dir() {
                    import::load_oci(store.store(), input, name.as_deref())?
                } else {
                    import::load_archive(store.store(), &p, name.as_deref())?
                }
            };
            if !quiet {
                for r in recs {
                    println!("Loaded image: {}", r.name);
                }
            }
            Ok(0)
        }
        ImageCommand::Import { file, name } => {
            let store = open()?;
            let rec = import::import_rootfs(store.store(), file, name)?;
            let img = store.resolve(&rec.name)?;
            println!("{}", img.id());
            Ok(0)
        }
        ImageCommand::Save {
            output,
            format,
            images,
        } => {
            let store = open()?;
            let f = match format {
                SaveFormat::DockerArchive => Format::DockerArchive,
                SaveFormat::OciArchive => Format::OciArchive,
            };
            export::save(&store, images, output, f)?;
            Ok(0)
        }
        ImageCommand::Push {
            image,
            destination,
            quiet,
            registry,
        } => {
            let store = open()?;
            let rt = runtime()?;
            let bars = Bars::new(*quiet, "");
            let rep = rt.block_on(berth_engine::image::push(
                &store,
                image,
                destination.as_deref(),
                &registry.options(),
                bars,
            ))?;
            if !quiet {
                println!(
                    "{}: digest: {} ({} blob(s) sent, {} already there)",
                    rep.reference,
                    rep.manifest,
                    rep.sent.len(),
                    rep.skipped.len()
                );
            }
            Ok(0)
        }
        ImageCommand::Tag { source, target } => {
            let store = open()?;
            store.tag(source, target)?;
            Ok(0)
        }
        ImageCommand::Pull {
            references,
            quiet,
            registry,
        } => {
            if references.is_empty() {
                bail!("name an image to pull");
            }
            pull_refs(references, registry, *quiet, false)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_verbs_parse() {
        use clap::CommandFactory;
        super::super::Cli::command().debug_assert();
    }

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(super::human(999), "999B");
        assert_eq!(super::human(1_234_000), "1.234MB");
        assert_eq!(super::human(2_000_000_000), "2GB");
    }
}
