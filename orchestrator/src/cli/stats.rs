//! `berth stats`: memory, CPU and process figures of the stack's running containers,
//! read from their cgroups through the engine. Streams (redrawn each second) unless
//! `--no-stream`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::bail;
use berth_engine::container::{ContainerSummary, Status};
use clap::Args;

use super::GlobalArgs;
use crate::reconcile::backend::EngineBackend;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print one sample and return
    #[arg(long)]
    pub no_stream: bool,
    /// `table` (default) or `json` (one object per container per line)
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Also containers that are not running
    #[arg(short, long)]
    pub all: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// One container's figures at one moment.
struct Sample {
    at: Instant,
    cpu_ns: Option<u64>,
    memory: Option<u64>,
    pids: Option<u64>,
}

fn sample(backend: &EngineBackend, c: &ContainerSummary) -> Option<Sample> {
    let s = backend.engine.stats(&c.id).ok()?;
    Some(Sample {
        at: Instant::now(),
        cpu_ns: s.cgroup.cpu_usage_ns,
        memory: s.cgroup.memory_usage,
        pids: s.cgroup.pids_current.or(Some(s.pids.len() as u64)),
    })
}

fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Bytes as Docker shows them (`12.5MiB`).
fn human(bytes: u64) -> String {
    // e.g. 196KiB, 1.234MiB, 32MiB
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    // Four significant digits, trailing zeros dropped, as Docker's `%.4g`.
    let int_digits = format!("{}", v.trunc() as u64).len();
    let mut s = format!("{:.*}", 4usize.saturating_sub(int_digits), v);
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[u])
}

/// One row: name, CPU %, memory used, its limit, memory %, pids.
struct Row {
    name: String,
    cpu: f64,
    memory: u64,
    limit: u64,
    pids: u64,
}

fn rows(
    backend: &EngineBackend,
    list: &[ContainerSummary],
    before: &HashMap<String, Sample>,
    host: u64,
) -> (Vec<Row>, HashMap<String, Sample>) {
    let mut now = HashMap::new();
    let mut out = Vec::new();
    for c in list {
        let limit = backend
            .engine
            .inspect(&c.id)
            .ok()
            .and_then(|i| i.config.resources.memory)
            .and_then(|m| u64::try_from(m).ok())
            .filter(|m| *m > 0)
            .unwrap_or(host);
        let s = sample(backend, c);
        let cpu = match (s.as_ref(), before.get(&c.id)) {
            (Some(a), Some(b)) => match (a.cpu_ns, b.cpu_ns) {
                (Some(x), Some(y)) if a.at > b.at => {
                    let wall = (a.at - b.at).as_nanos() as f64;
                    x.saturating_sub(y) as f64 / wall * 100.0
                }
                _ => 0.0,
            },
            _ => 0.0,
        };
        out.push(Row {
            name: c.name.clone(),
            cpu,
            memory: s.as_ref().and_then(|s| s.memory).unwrap_or(0),
            limit,
            pids: s.as_ref().and_then(|s| s.pids).unwrap_or(0),
        });
        if let Some(s) = s {
            now.insert(c.id.clone(), s);
        }
    }
    (out, now)
}

fn print(rows: &[Row], json: bool) {
    if json {
        for r in rows {
            println!(
                "{}",
                serde_json::json!({
                    "Name": r.name,
                    "CPUPerc": format!("{:.2}%", r.cpu),
                    "MemUsage": format!("{} / {}", human(r.memory), human(r.limit)),
                    "MemPerc": format!("{:.2}%", r.memory as f64 * 100.0 / r.limit.max(1) as f64),
                    "MemBytes": r.memory,
                    "MemLimitBytes": r.limit,
                    "PIDs": r.pids,
                })
            );
        }
        return;
    }
    println!(
        "{:<32} {:>8} {:>24} {:>8} {:>6}",
        "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"
    );
    for r in rows {
        println!(
            "{:<32} {:>7.2}% {:>24} {:>7.2}% {:>6}",
            r.name,
            r.cpu,
            format!("{} / {}", human(r.memory), human(r.limit)),
            r.memory as f64 * 100.0 / r.limit.max(1) as f64,
            r.pids
        );
    }
}

pub fn run(global: &GlobalArgs, args: &StatsArgs) -> anyhow::Result<i32> {
    let json = match args.format.as_str() {
        "table" => false,
        "json" => true,
        other => bail!("--format {other:?}: Berth prints `table` or `json` (no Go templates)"),
    };
    let backend = global.open()?;
    let host = host_memory().unwrap_or(0);
    let list = |all: bool| -> anyhow::Result<Vec<ContainerSummary>> {
        let mut l = super::service_containers(&backend, &args.services)?;
        l.retain(|c| all || c.state == Status::Running);
        Ok(l)
    };
    // CPU % needs two readings: the first is a baseline.
    let (_, mut before) = rows(&backend, &list(args.all)?, &HashMap::new(), host);
    let clear = std::io::stdout().is_terminal() && !json;
    loop {
        std::thread::sleep(if args.no_stream {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(1)
        });
        let (shown, now) = rows(&backend, &list(args.all)?, &before, host);
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        print(&shown, json);
        if args.no_stream {
            return Ok(0);
        }
        before = now;
    }
}
