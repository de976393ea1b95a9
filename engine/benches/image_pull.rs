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
    if !std::env::args().any(|a| a == "--bench") {
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

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let docker = docker_daemon();
    let (mut berth, mut peer, mut dock) = (Vec::new(), Vec::new(), Vec::new());
    for run_no in 0..runs {
        // Berth: a fresh store each run, so every byte is fetched and unpacked.
        let root = tempfile::tempdir_in(work.path()).unwrap();
        let images = Images::open(root.path()).unwrap();
        let t = Instant::now();
        let rep = rt
            .block_on(pull(
                &images,
                &name,
                &RegistryOptions::default(),
                Arc::new(Quiet),
            ))
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(rep.fetched.len(), 6);
        berth.push(secs);
        drop(root);

        // skopeo copy + umoci unpack, into fresh directories.
        let dir = tempfile::tempdir_in(work.path()).unwrap();
        let t = Instant::now();
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{name}"))
            .arg(format!("oci:{}:x", dir.path().join("oci").display())));
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:x", dir.path().join("oci").display()))
            .arg(dir.path().join("bundle")));
        let psecs = t.elapsed().as_secs_f64();
        peer.push(psecs);
        drop(dir);

        let mut line = format!(
            "run {}: berth {secs:.2}s, skopeo+umoci {psecs:.2}s",
            run_no + 1
        );
        if docker {
            let _ = Command::new("docker").args(["rmi", "-f", &name]).output();
            let t = Instant::now();
            let ok = Command::new("docker")
                .args(["pull", "-q", &name])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            let d = t.elapsed().as_secs_f64();
            if ok {
                dock.push(d);
                line += &format!(", docker pull {d:.2}s");
            } else {
                line += ", docker pull failed (the daemon went away?)";
            }
            let _ = Command::new("docker").args(["rmi", "-f", &name]).output();
        }
        eprintln!("{line}");
    }
    let (b, p) = (median(berth), median(peer));
    println!();
    println!(
        "| pull + unpack, 5 layers, {:.0} MB unpacked ({runs} runs, medians) | s | ratio |",
        unpacked as f64 / 1e6
    );
    println!("|---|---:|---:|");
    println!("| berth pull (in process) | {b:.2} | 1 |");
    println!(
        "| skopeo copy + umoci unpack | {p:.2} | berth {:.1}x faster |",
        p / b
    );
    if !dock.is_empty() {
        let d = median(dock);
        println!("| docker pull | {d:.2} | berth {:.1}x faster |", d / b);
    } else {
        println!("| docker pull | - | no Docker daemon on this host |");
    }
}
