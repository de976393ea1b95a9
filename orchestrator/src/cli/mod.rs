//! The `berth` verbs, one module each, with flags spelt as `docker compose` spells them.

mod build;
mod config;
mod control;
mod down;
mod events;
mod exec;
mod image;
mod info;
mod kube;
mod logs;
mod progress;
mod ps;
mod rm;
mod run;
mod stats;
mod system;
mod up;
mod wait;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::reconcile::backend::{EngineBackend, Paths};
use crate::stack::load::Options;

/// The stack's service containers (one-off `run` containers left out), of the named
/// services or all, sorted by name; an unknown service name is an error.
pub(crate) fn service_containers(
    backend: &EngineBackend,
    services: &[String],
) -> anyhow::Result<Vec<berth_engine::container::ContainerSummary>> {
    use crate::reconcile::translate::{LABEL_ONEOFF, LABEL_PROJECT, LABEL_SERVICE};
    for s in services {
        if !backend.loaded.project.services.contains_key(s) {
            anyhow::bail!("no such service: {s}");
        }
    }
    let mut list = backend.engine.list(
        &berth_engine::container::LabelFilter::new().with(LABEL_PROJECT, &backend.loaded.name),
    )?;
    list.retain(|c| {
        !c.labels.contains_key(LABEL_ONEOFF)
            && (services.is_empty()
                || c.labels
                    .get(LABEL_SERVICE)
                    .is_some_and(|s| services.contains(s)))
    });
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list)
}

/// Runs multi-container stacks from a Compose-format stack file on Berth's own engine.
#[derive(Parser, Debug)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb takes.
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Stack file(s), merged in order (default: compose.yaml, compose.yml,
    /// docker-compose.yaml, docker-compose.yml, and the override file beside it)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name (default: `name:` in the stack file, else the directory's name)
    #[arg(
        short = 'p',
        long = "project-name",
        global = true,
        env = "BERTH_PROJECT_NAME"
    )]
    pub project_name: Option<String>,
    /// Directory that relative paths and `.env` resolve from (default: the first file's)
    #[arg(long, global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Enable services of this profile (repeatable; also BERTH_PROFILES=a,b)
    #[arg(
        long = "profile",
        id = "profile",
        global = true,
        value_name = "PROFILE"
    )]
    pub profiles: Vec<String>,
    /// Env file(s) to interpolate with, instead of the project's `.env` (repeatable)
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// When to colour output
    #[arg(long, global = true, value_enum, default_value_t = Ansi::Auto)]
    pub ansi: Ansi,
    /// How `up`, `create` and `build` show their work: `tty` (a live line per service), `plain`
    /// (one line per action), `json` (one object per line) or `quiet`; default: `tty` on a
    /// terminal, else `plain`
    #[arg(long, global = true, value_enum, default_value_t = progress::Mode::Auto)]
    pub progress: progress::Mode,
    /// More detail on stderr (-v: info, -vv: debug, -vvv: trace); before the verb, as
    /// `down -v` means volumes
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ansi {
    Never,
    Always,
    Auto,
}

impl GlobalArgs {
    /// The loader's options for these flags and, for verbs that take them, service names.
    pub fn load_options(&self, services: &[String]) -> anyhow::Result<Options> {
        // `-f -` reads the stack file from standard input, once.
        let stdin = if self.files.iter().any(|f| crate::stack::load::is_stdin(f)) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
                anyhow::anyhow!("cannot read the stack file from standard input: {e}")
            })?;
            Some(text)
        } else {
            None
        };
        Ok(Options {
            stdin,
            files: self.files.clone(),
            project_directory: self.project_directory.clone(),
            project_name: self.project_name.clone(),
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
            services: services.to_vec(),
            ..Options::default()
        })
    }

    /// Loads the stack and opens the engine and networking for it.
    pub fn open(&self) -> anyhow::Result<EngineBackend> {
        let loaded = Arc::new(crate::stack::load(&self.load_options(&[])?)?);
        EngineBackend::new(loaded, Paths::from_env()).map_err(|e| anyhow::anyhow!(e))
    }

    /// Whether to colour what goes to stdout (log prefixes).
    pub fn colour_stdout(&self) -> bool {
        match self.ansi {
            Ansi::Always => true,
            Ansi::Never => false,
            Ansi::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn colour(&self) -> bool {
        match self.ansi {
            Ansi::Always => true,
            Ansi::Never => false,
            Ansi::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse, resolve and render the stack file in canonical form
    Config(config::ConfigArgs),
    /// Create and start the stack's containers, in dependency order
    Up(up::UpArgs),
    /// Build the images of services with `build:` from their Dockerfiles
    Build(build::BuildArgs),
    /// Stop and remove the stack's containers and networks
    Down(down::DownArgs),
    /// Create the stack's containers without starting them
    Create(up::CreateArgs),
    /// Run a one-off command in a new container of a service
    Run(run::RunArgs),
    /// Remove the stack's stopped containers
    Rm(rm::RmArgs),
    /// Live memory, CPU and process figures of the stack's containers (from their cgroups)
    Stats(stats::StatsArgs),
    /// Wait until the services' containers stop; exit with the first one's exit code
    Wait(wait::WaitArgs),
    /// Print the stack's container events as they happen
    Events(events::EventsArgs),
    /// List the stack's containers
    Ps(ps::PsArgs),
    /// Show the stack's container logs
    Logs(logs::LogsArgs),
    /// Run a command in a running service container
    Exec(exec::ExecArgs),
    /// Stop the stack's containers (kept; `start` starts them again)
    Stop(control::ControlArgs),
    /// Start the stack's existing containers
    Start(control::ControlArgs),
    /// Restart the stack's containers
    Restart(control::ControlArgs),
    /// Send a signal to the stack's containers (-s, default SIGKILL)
    Kill(control::ControlArgs),
    /// Freeze the stack's containers (cgroup freezer)
    Pause(control::ControlArgs),
    /// Thaw paused containers
    Unpause(control::ControlArgs),
    /// The processes running in the stack's containers
    Top(info::TopArgs),
    /// The host address a service's container port is published on
    Port(info::PortArgs),
    /// Every project with containers on this host
    Ls,
    /// Berth's version
    Version,
    /// Pull the images of the stack's services
    Pull(image::PullArgs),
    /// List the images of the stack's services
    Images(image::ImagesArgs),
    /// Manage the image store: ls, rm, prune, inspect, load, import, save, push, tag, pull
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// The stack on Kubernetes: convert, apply, down, ps
    #[command(subcommand)]
    Kube(kube::KubeCommand),
    /// Berth on this host: `check [--fix]` finds leaked objects, `prune` removes them
    #[command(subcommand)]
    System(system::SystemCommand),
}

/// Prints an error with its chain of causes and, for a stack-file error, the line at fault.
pub fn report(error: &anyhow::Error, colour: bool) {
    let label = if colour {
        "\x1b[1;31merror:\x1b[0m"
    } else {
        "error:"
    };
    eprintln!("{label} {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    let text = format!("{error:#}");
    if !text.contains("the disk is full") {
        let paths = crate::reconcile::backend::Paths::from_env();
        if let Some(hint) = paths.full_disk_hint(&text) {
            eprintln!("hint: {hint}");
        }
    }
    if let Some(located) = error
        .downcast_ref::<crate::stack::error::StackError>()
        .and_then(|e| e.located())
    {
        if let Some(snippet) = located.snippet() {
            eprintln!("{snippet}");
        }
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        // netlink-packet-route warns about every kernel attribute newer than itself.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{level},netlink_packet_route=error"))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse_from(run::rewrite_publish(std::env::args().collect()));
    init_tracing(cli.global.verbose);
    let colour = cli.global.colour();
    let result = match &cli.command {
        Command::Config(args) => config::run(&cli.global, args),
        Command::Up(args) => up::run(&cli.global, args),
        Command::Build(args) => build::run(&cli.global, args),
        Command::Down(args) => down::run(&cli.global, args),
        Command::Create(args) => up::create(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Rm(args) => rm::run(&cli.global, args),
        Command::Stats(args) => stats::run(&cli.global, args),
        Command::Wait(args) => wait::run(&cli.global, args),
        Command::Events(args) => events::run(&cli.global, args),
        Command::Ps(args) => ps::run(&cli.global, args),
        Command::Logs(args) => logs::run(&cli.global, args),
        Command::Exec(args) => exec::run(&cli.global, args),
        Command::Stop(args) => control::run(&cli.global, control::Verb::Stop, args),
        Command::Start(args) => control::run(&cli.global, control::Verb::Start, args),
        Command::Restart(args) => control::run(&cli.global, control::Verb::Restart, args),
        Command::Kill(args) => control::run(&cli.global, control::Verb::Kill, args),
        Command::Pause(args) => control::run(&cli.global, control::Verb::Pause, args),
        Command::Unpause(args) => control::run(&cli.global, control::Verb::Unpause, args),
        Command::Top(args) => info::top(&cli.global, args),
        Command::Port(args) => info::port(&cli.global, args),
        Command::Ls => info::ls(),
        Command::Version => info::version(),
        Command::Pull(args) => image::pull(&cli.global, args),
        Command::Images(args) => image::images(&cli.global, args),
        Command::Image(cmd) => image::image(&cli.global, cmd),
        Command::Kube(cmd) => kube::run(&cli.global, cmd),
        Command::System(cmd) => system::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&e, colour);
            1
        }
    }
}
