//! Pull + unpack of a 5-layer, ~200 MB (unpacked) image from a local docker-registry
//! on 127.0.0.1: Berth against `skopeo copy` + `umoci unpack` (Debian), and against
//! `docker pull` where a Docker daemon answers. Medians of alternating runs, each
//! figure a ratio measured in the same run. Run as root:
//!
//! ```sh
//! cargo bench -p berth-engine --bench image_pull            # BERTH_BENCH_RUNS=5
//! ```

#[path = "../tests/image_support/mod.rs"]
mod image_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use berth_engine::image::registry::Quiet;
use berth_engine::image::{pull, Images, RegistryOptions};
use image_support::*;

/// A deterministic generator (xorshift) so every run pulls the same image.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One layer of ~40 MB in ~800 files: half random bytes (like binaries already
/// compressed), half text-like repetition (like sources and configs), so gzip
/// shrinks it about as much as it does real images.
fn make_layer(seed: u64, dir: &Path) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let words: Vec<String> = (0..512)
        .map(|i| format!("word{i:03x}_{}", rng.next() % 997))
        .collect();
    for f in 0..800u64 {
        let sub = dir.join(format!("l{seed}/d{}", f % 40));
        std::fs::create_dir_all(&sub).unwrap();
        let size = 10_000 + (rng.next() % 90_000) as usize;
        let mut data = Vec::with_capacity(size);
        if f % 2 == 0 {
            while data.len() < size {
                data.extend_from_slice(&rng.next().to_le_bytes());
            }
        } else {
            while data.len() < size {
                data.extend_from_slice(words[(rng.next() % 512) as usize].as_bytes());
                data.push(if rng.next() % 8 == 0 { b'\n' } else { b' ' });
            }
        }
        data.truncate(size);
        std::fs::write(sub.join(format!("f{f}")), &data).unwrap();
    }
    tar_dir(dir)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// CPU seconds (user + system) used so far by this process (`RUSAGE_SELF`) or by its
/// waited-for children (`RUSAGE_CHILDREN`). CPU time, unlike wall time, hardly moves
/// with the machine's load, so it compares the tools' work on a busy machine too.
fn cpu(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPU seconds used by the Docker daemons (dockerd, containerd) and the children they
/// waited for (a decompressor, a shim), from /proc/PID/stat.
fn daemons_cpu() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !matches!(comm.trim(), "dockerd" | "containerd") {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // Fields after the `(comm)`: state is field 3, utime..cstime are 14..17.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        for i in 11..15 {
            total += f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / hz;
        }
    }
    total
}

/// Seconds on a CPU and waiting for one (runnable, not running), summed over the
/// threads of `pid` that exist now (/proc/PID/task/*/schedstat).
fn sched(pid: &str) -> (f64, f64) {
    let (mut run, mut wait) = (0.0, 0.0);
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        let f: Vec<f64> = s
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() >= 2 {
            run += f[0] / 1e9;
            wait += f[1] / 1e9;
        }
    }
    (run, wait)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` in a session of its own. With the kernel's autogroup scheduling (on by
/// default) CPU time is shared between sessions first; `dockerd` runs in its own, so
/// each tool here gets one too, or on a busy machine the comparison would measure
/// the scheduler rather than the tools.
fn own_session(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        })
    }
}

/// The child side of a timed Berth pull: `--pull-child ROOT REFERENCE`.
fn pull_child(root: &str, name: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let images = Images::open(Path::new(root)).unwrap();
    let rep = rt
        .block_on(pull(
            &images,
            name,
            &RegistryOptions::default(),
            Arc::new(Quiet),
        ))
        .unwrap();
    assert_eq!(rep.fetched.len(), 6);
    if std::env::var_os("BERTH_BENCH_SCHED").is_some() {
        // Where the wall time went: on a CPU, waiting for one, or neither (I/O, locks).
        let (run, wait) = sched("self");
        eprintln!("  berth threads: {run:.2}s on a CPU, {wait:.2}s runnable but waiting");
    }
}

fn docker_daemon() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` and nextest's listing
    // do not, and must not spend a minute pulling 150 MB.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--pull-child") {
        return pull_child(&args[i + 1], &args[i + 2]);
    }
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("image_pull: run with `cargo bench -p berth-engine --bench image_pull`");
        return;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runs: usize = std::env::var("BERTH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let work = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();

    eprintln!("generating the 5-layer image…");
    let layout = work.path().join("layout");
    let mut layers = Vec::new();
    let mut unpacked = 0usize;
    for i in 0..5u64 {
        let d = tempfile::tempdir_in(work.path()).unwrap();
        let raw = make_layer(0x9e37_79b9_7f4a_7c15 ^ (i + 1), d.path());
        unpacked += raw.len();
        layers.push((gzip(&raw), raw));
    }
    let compressed: usize = layers.iter().map(|(g, _)| g.len()).sum();
    oci_layout(&layout, &layers, "bench", &["/bin/sh"]);
    drop(layers);

    let reg = Registry::start(None);
    let name = format!("{}/bench/big:1", reg.addr);
    skopeo_push_layout(&layout, "bench", &reg.addr, "bench/big:1", None);
    eprintln!(
        "image: 5 layers, {:.0} MB unpacked, {:.0} MB compressed, on {}",
        unpacked as f64 / 1e6,
        compressed as f64 / 1e6,
        reg.addr
    );

    let docker = docker_daemon();
    let me = std::env::current_exe().unwrap();
    let (mut berth, mut peer, mut dock) = (Vec::new(), Vec::new(), Vec::new());
    let (mut berth_cpu, mut peer_cpu, mut dock_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let load_before = loadavg();
    for run_no in 0..runs {
        // Berth: a fresh store each run, so every byte is fetched and unpacked; the
        // pull runs in a process (and session) of its own, like dockerd's.
        let root = tempfile::tempdir_in(work.path()).unwrap();
        let c = cpu(libc::RUSAGE_CHILDREN);
        let t = Instant::now();
        let ok = own_session(
            Command::new(&me)
                .arg("--pull-child")
                .arg(root.path())
                .arg(&name),
        )
        .status()
        .unwrap();
        assert!(ok.success(), "berth pull failed: {ok}");
        let secs = t.elapsed().as_secs_f64();
        let bcpu = cpu(libc::RUSAGE_CHILDREN) - c;
        berth.push(secs);
        berth_cpu.push(bcpu);
        drop(root);

        // skopeo copy + umoci unpack, into fresh directories.
        let dir = tempfile::tempdir_in(work.path()).unwrap();
        let c = cpu(libc::RUSAGE_CHILDREN);
        let t = Instant::now();
        run(own_session(
            Command::new("skopeo")
                .args(["copy", "--quiet", "--src-tls-verify=false"])
                .arg(format!("docker://{name}"))
                .arg(format!("oci:{}:x", dir.path().join("oci").display())),
        ));
        run(own_session(
            Command::new("umoci")
                .arg("unpack")
                .arg("--image")
                .arg(format!("{}:x", dir.path().join("oci").display()))
                .arg(dir.path().join("bundle")),
        ));
        let psecs = t.elapsed().as_secs_f64();
        let pcpu = cpu(libc::RUSAGE_CHILDREN) - c;
        peer.push(psecs);
        peer_cpu.push(pcpu);
        drop(dir);

        let mut line = format!(
            "run {}: berth {secs:.2}s (cpu {bcpu:.2}s), skopeo+umoci {psecs:.2}s (cpu {pcpu:.2}s)",
            run_no + 1
        );
        if docker {
            let _ = Command::new("docker").args(["rmi", "-f", &name]).output();
            let (c, cd) = (cpu(libc::RUSAGE_CHILDREN), daemons_cpu());
            let dpid = std::fs::read_to_string("/var/run/docker.pid").unwrap_or_default();
            let s0 = sched(dpid.trim());
            let t = Instant::now();
            let ok = Command::new("docker")
                .args(["pull", "-q", &name])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            let d = t.elapsed().as_secs_f64();
            let dcpu = cpu(libc::RUSAGE_CHILDREN) - c + daemons_cpu() - cd;
            if std::env::var_os("BERTH_BENCH_SCHED").is_some() {
                let s1 = sched(dpid.trim());
                eprintln!(
                    "  dockerd threads: {:.2}s on a CPU, {:.2}s runnable but waiting",
                    s1.0 - s0.0,
                    s1.1 - s0.1
                );
            }
            if ok {
                dock.push(d);
                dock_cpu.push(dcpu);
                line += &format!(", docker pull {d:.2}s (cpu {dcpu:.2}s)");
            } else {
                line += ", docker pull failed (the daemon went away?)";
            }
            let _ = Command::new("docker").args(["rmi", "-f", &name]).output();
        }
        eprintln!("{line}");
    }
    let (b, p) = (median(berth), median(peer));
    let (bc, pc) = (median(berth_cpu), median(peer_cpu));
    println!();
    println!(
        "| pull + unpack, 5 layers, {:.0} MB unpacked ({runs} runs, medians; load {load_before} before, {} after) | wall s | ratio | CPU s | ratio |",
        unpacked as f64 / 1e6,
        loadavg()
    );
    println!("|---|---:|---:|---:|---:|");
    println!("| berth pull (a process of its own) | {b:.2} | 1 | {bc:.2} | 1 |");
    println!(
        "| skopeo copy + umoci unpack | {p:.2} | berth {:.2}x faster | {pc:.2} | berth {:.2}x less |",
        p / b,
        pc / bc
    );
    if !dock.is_empty() {
        let (d, dc) = (median(dock), median(dock_cpu));
        println!(
            "| docker pull | {d:.2} | berth {:.2}x faster | {dc:.2} | berth {:.2}x less |",
            d / b,
            dc / bc
        );
    } else {
        println!("| docker pull | - | no Docker daemon on this host | | |");
    }
}
