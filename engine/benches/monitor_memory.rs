//! Benchmark (not a timed test): what Berth keeps per running container, and how soon
//! a container's first log line can be read after `start` is called.
//!
//! Starts N busybox `sleep` containers (BERTH_BENCH_N, default 100) through the
//! engine's container API, then reads VmRSS and PSS (smaps_rollup) of every process
//! Berth keeps per container: its monitor (and nothing else: no daemon, no shim).
//! With Podman or Docker running on the machine (../shared/peers/01-start-daemons.sh),
//! the same number of `sleep` containers is started under each and conmon /
//! containerd-shim-runc-v2 are measured in the same run; otherwise the peers' figures
//! from shared/peers/RESULTS.md are quoted for comparison.
//!
//! Run as root: `cargo bench -p berth-engine --bench monitor_memory`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_engine::container::{ContainerConfig, Engine, ImageConfig, LabelFilter, LogOptions};

const MONITOR: &str = env!("CARGO_BIN_EXE_berth-monitor");

/// (RSS, PSS) in KiB.
fn mem(pid: i32) -> (u64, u64) {
    let field = |file: &str, key: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    };
    (field("status", "VmRSS:"), field("smaps_rollup", "Pss:"))
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Processes whose executable is named `exe`.
fn pids_of(exe: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/exe"))
                .ok()
                .and_then(|l| l.file_name().map(|n| n.to_string_lossy().starts_with(exe)))
                .unwrap_or(false)
        })
        .collect()
}

fn report(label: &str, pids: &[i32]) {
    let (mut rss, mut pss): (Vec<u64>, Vec<u64>) = pids.iter().map(|p| mem(*p)).unzip();
    let (rs, ps): (u64, u64) = (rss.iter().sum(), pss.iter().sum());
    println!(
        "{label:<28} {:>4} processes  RSS sum {rs:>7} KiB, median {:>5} KiB  |  PSS sum {ps:>7} KiB, median {:>5} KiB",
        pids.len(),
        median(&mut rss),
        median(&mut pss)
    );
}

fn peer(tool: &str, image: &str, n: usize, exe: &str) {
    if !daemon_up(tool) {
        println!("{tool}: not running here (shared/peers/01-start-daemons.sh starts it); see shared/peers/RESULTS.md");
        return;
    }
    let label = format!("berth-bench-{}", std::process::id());
    for i in 0..n {
        let _ = Command::new(tool)
            .args(["run", "-d", "--network", "none", "--label", &label])
            .arg("--name")
            .arg(format!("{label}-{i}"))
            .args([image, "sleep", "3600"])
            .stdout(Stdio::null())
            .status();
    }
    std::thread::sleep(Duration::from_secs(3));
    report(&format!("{tool}: {exe}"), &pids_of(exe));
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{tool} rm -f $({tool} ps -aq --filter label={label}) >/dev/null 2>&1"
        ))
        .status();
}

fn daemon_up(tool: &str) -> bool {
    Command::new(tool)
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Microseconds from `TOOL run` to its first line of output, `runs` times.
fn peer_first_line(tool: &str, runs: usize) -> Option<Vec<u64>> {
    use std::io::Read;
    if !daemon_up(tool) {
        return None;
    }
    let mut out = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        let mut c = Command::new(tool)
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "lab/busybox:latest",
                "echo",
                "hello",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut b = [0u8; 1];
        let got = c.stdout.as_mut()?.read(&mut b).ok()? == 1;
        let el = t.elapsed();
        let _ = c.wait();
        if got {
            out.push(el.as_micros() as u64);
        }
    }
    Some(out)
}

fn main() {
    let n: usize = std::env::var("BERTH_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // Monitors come back to us when their first process exits; we reap them.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let tmp = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir()
        .unwrap();
    let rootfs = tmp.path().join("rootfs");
    berth_tests::busybox_rootfs(&rootfs).unwrap();
    let e = Engine::new(tmp.path().join("root"), tmp.path().join("run"))
        .unwrap()
        .with_monitor_program(MONITOR);
    let cfg = |name: String, script: &str| ContainerConfig {
        name,
        labels: [("bench".to_string(), "berth".to_string())].into(),
        rootfs: rootfs.clone(),
        image: ImageConfig {
            cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
            ..Default::default()
        },
        ..Default::default()
    };

    // Time from `create` to the first log line readable through `logs`.
    let mut first_line = vec![];
    for i in 0..20 {
        let t = Instant::now();
        let id = e
            .create(cfg(format!("berth-bench-echo-{i}"), "echo hello"))
            .unwrap();
        e.start(&id).unwrap();
        loop {
            if e.logs(&id, LogOptions::default()).unwrap().next().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        first_line.push(t.elapsed().as_micros() as u64);
        e.remove(&id, true).unwrap();
    }
    println!(
        "berth: create+start -> first log line: median {:.1} ms (min {:.1}, max {:.1}) over {} runs",
        median(&mut first_line) as f64 / 1000.0,
        first_line[0] as f64 / 1000.0,
        first_line[first_line.len() - 1] as f64 / 1000.0,
        first_line.len()
    );

    let t = Instant::now();
    let mut ids = vec![];
    for i in 0..n {
        let id = e
            .create(cfg(format!("berth-bench-{i}"), "exec sleep 3600"))
            .unwrap();
        e.start(&id).unwrap();
        ids.push(id);
    }
    println!(
        "berth: {n} containers started in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(3));
    let monitors: Vec<i32> = ids
        .iter()
        .map(|id| e.inspect(id).unwrap().monitor_pid.unwrap())
        .collect();
    println!("per-container processes with {n} containers up (the containers' own processes not counted):");
    report("berth: berth-monitor", &monitors);
    if let Some(s) = std::env::var("BERTH_BENCH_HOLD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // Time to look at the monitors by hand (smaps).
        std::thread::sleep(Duration::from_secs(s));
    }
    let bin = std::fs::metadata(MONITOR)
        .map(|m| m.len() / 1024)
        .unwrap_or(0);
    println!("(berth-monitor binary: {bin} KiB)");
    let t = Instant::now();
    for id in &ids {
        e.remove(id, true).unwrap();
    }
    println!(
        "berth: {n} containers removed in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(e.list(&LabelFilter::new()).unwrap().is_empty());
    // SAFETY: non-blocking waitpid on any child.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}

    for tool in ["podman", "docker"] {
        if let Some(mut v) = peer_first_line(tool, 20) {
            println!(
                "{tool}: `{tool} run` -> first output line: median {:.1} ms (min {:.1}, max {:.1}) over {} runs",
                median(&mut v) as f64 / 1000.0,
                v[0] as f64 / 1000.0,
                v[v.len() - 1] as f64 / 1000.0,
                v.len()
            );
        }
    }
    if Path::new("/usr/bin/podman").exists() {
        peer("podman", "lab/busybox:latest", n, "conmon");
    } else {
        println!("podman: not installed (shared/peers/00-install.sh); RESULTS.md: conmon 1966 KiB RSS, 368 KiB PSS per container");
    }
    if Path::new("/usr/bin/docker").exists() {
        peer("docker", "lab/busybox:latest", n, "containerd-shim");
    } else {
        println!("docker: not installed; RESULTS.md: containerd-shim-runc-v2 13154 KiB RSS, 2678 KiB PSS per container (+ ~0.7 MiB in dockerd/containerd)");
    }
}
