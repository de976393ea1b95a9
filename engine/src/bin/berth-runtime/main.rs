//! berth-runtime: the OCI runtime command line (as runc answers it) over
//! berth_engine::runtime. One function per verb; all logic lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use berth_engine::runtime::{CreateOptions, ExecResult, Runtime, RuntimeError};
use clap::{Parser, Subcommand};
use nix::sys::signal::Signal;

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    version,
    about = "Berth's OCI container runtime"
)]
struct Cli {
    /// Directory holding container state.
    #[arg(
        long,
        global = true,
        default_value = "/run/berth/runtime",
        env = "BERTH_RUNTIME_ROOT"
    )]
    root: PathBuf,
    /// Accepted for compatibility with runc's callers; errors go to stderr.
    #[arg(long, global = true, hide = true)]
    log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, hide = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container from a bundle; its process waits for `start`.
    Create {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
        id: String,
    },
    /// Start a created container's process.
    Start { id: String },
    /// Print the OCI state JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or with --all to every process.
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Remove a stopped container (--force: kill it first).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create, start, wait, delete; exits with the container's exit code.
    Run {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(short, long)]
        detach: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
        id: String,
    },
    /// Run a new process in a running container.
    Exec {
        /// A process.json (the spec's `process` object) instead of a command line.
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        detach: bool,
        /// Give the process a terminal; its master side goes to --console-socket.
        #[arg(short, long)]
        tty: bool,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(short, long = "env")]
        env: Vec<String>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// uid[:gid]
        #[arg(short, long)]
        user: Option<String>,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Freeze every process of a running container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List the host pids of the container's processes (one per line, or --format json).
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
    },
    /// Print the container's resource usage as JSON (memory, CPU, pids).
    Stats { id: String },
    /// Write a default config.json into the bundle directory.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Docker's defaults (its 14 capabilities, /dev/mqueue, no_new_privs off)
        /// instead of runc's.
        #[arg(long)]
        docker: bool,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
}

fn parse_signal(s: Option<&str>) -> Result<Signal, RuntimeError> {
    let Some(s) = s else {
        return Ok(Signal::SIGTERM);
    };
    let bad = || RuntimeError::InvalidConfig {
        field: "signal".into(),
        problem: format!("{s:?} is not a signal (use a name like TERM, SIGKILL or a number)"),
    };
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

fn run(cli: Cli) -> Result<i32, RuntimeError> {
    let rt = Runtime::new(&cli.root);
    match cli.cmd {
        Cmd::Create {
            bundle,
            pid_file,
            console_socket,
            preserve_fds,
            id,
        } => {
            rt.create(&CreateOptions {
                id,
                bundle,
                pid_file,
                console_socket,
                preserve_fds,
            })?;
            Ok(0)
        }
        Cmd::Start { id } => rt.start(&id).map(|_| 0),
        Cmd::State { id } => {
            let s = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&s).expect("json"));
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => {
            let sig = parse_signal(signal.as_deref())?;
            rt.kill(&id, sig, all).map(|_| 0)
        }
        Cmd::Delete { force, id } => rt.delete(&id, force).map(|_| 0),
        Cmd::Pause { id } => rt.pause(&id).map(|_| 0),
        Cmd::Resume { id } => rt.resume(&id).map(|_| 0),
        Cmd::Ps { format, id } => {
            let pids = rt.pids(&id)?;
            if format == "json" {
                println!("{}", serde_json::to_string(&pids).expect("json"));
            } else {
                for p in pids {
                    println!("{p}");
                }
            }
            Ok(0)
        }
        Cmd::Stats { id } => {
            let s = rt.stats(&id)?;
            println!("{}", serde_json::to_string_pretty(&s).expect("json"));
            Ok(0)
        }
        Cmd::Run {
            bundle,
            pid_file,
            console_socket,
            detach,
            preserve_fds,
            id,
        } => rt.run(
            &CreateOptions {
                id,
                bundle,
                pid_file,
                console_socket,
                preserve_fds,
            },
            detach,
        ),
        Cmd::Exec {
            process,
            detach,
            tty,
            console_socket,
            env,
            cwd,
            user,
            pid_file,
            id,
            command,
        } => {
            let mut p = match process {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|source| {
                        RuntimeError::ReadConfig {
                            path: path.clone(),
                            source,
                        }
                    })?;
                    serde_json::from_str(&text).map_err(|e| RuntimeError::ParseConfig {
                        path: path.clone(),
                        message: e.to_string(),
                    })?
                }
                None => {
                    // Start from the container's own process: env, user, caps, rlimits.
                    let spec = rt.root.load_config(&id)?;
                    let mut p = spec.process().clone().unwrap_or_default();
                    p.set_args(Some(command.clone()));
                    p.set_terminal(Some(tty));
                    p
                }
            };
            if !env.is_empty() {
                let mut e = p.env().clone().unwrap_or_default();
                e.extend(env);
                p.set_env(Some(e));
            }
            if let Some(c) = cwd {
                p.set_cwd(c);
            }
            if let Some(u) = user {
                let (uid, gid) = u.split_once(':').unwrap_or((&u, "0"));
                let bad = || RuntimeError::InvalidConfig {
                    field: "--user".into(),
                    problem: format!("{u:?} is not uid[:gid] in numbers"),
                };
                let mut usr = p.user().clone();
                usr.set_uid(uid.parse().map_err(|_| bad())?);
                usr.set_gid(gid.parse().map_err(|_| bad())?);
                p.set_user(usr);
            }
            if tty {
                p.set_terminal(Some(true));
            }
            match rt.exec_with_console(&id, &p, !detach, console_socket.as_deref())? {
                ExecResult::Started(pid) => {
                    if let Some(pf) = pid_file {
                        std::fs::write(&pf, pid.to_string()).map_err(|source| {
                            RuntimeError::Sys {
                                op: format!("writing {}", pf.display()),
                                source,
                            }
                        })?;
                    }
                    Ok(0)
                }
                ExecResult::Exited(code) => Ok(code),
            }
        }
        Cmd::Spec { bundle, docker } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(RuntimeError::InvalidConfig {
                    field: "spec".into(),
                    problem: format!("{} exists already; remove it first", path.display()),
                });
            }
            let mut spec = if docker {
                berth_engine::runtime::defaults::container_spec(
                    "ID",
                    std::path::Path::new("rootfs"),
                    vec!["sh".into()],
                )
            } else {
                oci_spec::runtime::Spec::default()
            };
            if let Some(p) = spec.process_mut() {
                p.set_terminal(Some(false));
            }
            if docker {
                // The cgroup path follows the container ID when none is given.
                if let Some(l) = spec.linux_mut() {
                    l.set_cgroups_path(None);
                }
            }
            let text = serde_json::to_string_pretty(&spec).expect("json");
            std::fs::write(&path, text + "\n").map_err(|source| RuntimeError::Sys {
                op: format!("writing {}", path.display()),
                source,
            })?;
            Ok(0)
        }
        Cmd::List { format, quiet } => {
            let list = rt.list()?;
            if quiet {
                for r in &list {
                    println!("{}", r.id);
                }
            } else if format == "json" {
                let v: Vec<_> = list.iter().map(|r| r.oci_state()).collect();
                println!("{}", serde_json::to_string(&v).expect("json"));
            } else {
                println!("{:<24} {:<8} {:<10} BUNDLE", "ID", "PID", "STATUS");
                for r in &list {
                    println!(
                        "{:<24} {:<8} {:<10} {}",
                        r.id,
                        r.pid,
                        r.current_status(),
                        r.bundle.display()
                    );
                }
            }
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("berth-runtime: error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::from(1)
        }
    }
}
