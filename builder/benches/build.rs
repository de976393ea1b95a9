//! Benchmark (not a timed test): the same small multi-stage Dockerfile (two stages, two
//! RUN steps, COPY from the context and from the first stage) built by Berth's builder,
//! by `buildah bud` (Debian's buildah, overlay storage, runc) and by `docker build` when
//! a Docker daemon already answers, cold (no cache) and warm (everything cached),
//! interleaved in one run. Every builder starts from the same busybox root filesystem
//! (Debian's busybox-static), imported into its own store beforehand; RUN steps get no
//! network in all of them.
//!
//! Run as root: `cargo bench -p berth-builder --bench build` (BERTH_BENCH_RUNS sets the
//! runs per builder and mode, default 7). Berth is driven through the library, in this
//! process, as `berth build` drives it; its RUN steps use the release berth-runtime,
//! which the bench builds first if it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_builder::{build, BuildOptions, Quiet};
use berth_engine::image::{import, Images};

const DOCKERFILE: &str = r#"ARG BASE=busybox
FROM $BASE AS build
WORKDIR /src
COPY app.sh data.txt ./
RUN sh app.sh > out.txt && gzip -k out.txt

FROM $BASE
COPY --from=build /src/out.txt.gz /srv/
COPY data.txt /srv/
RUN gunzip /srv/out.txt.gz && rm /srv/data.txt
ENV APP=demo
CMD ["cat", "/srv/out.txt"]
"#;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map(|o| {
            if !o.status.success() {
                eprintln!("{:?} failed: {}", cmd, String::from_utf8_lossy(&o.stderr));
            }
            o.status.success()
        })
        .unwrap_or(false)
}

fn release_runtime() -> PathBuf {
    // target/release/deps/build-… -> target/release/berth-runtime
    let exe = std::env::current_exe().unwrap();
    let rel = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("berth-runtime");
    if !rel.exists() {
        eprintln!("building the release berth-runtime first…");
        let ok = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-p",
                "berth-engine",
                "--bin",
                "berth-runtime",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok && rel.exists(), "could not build {}", rel.display());
    }
    rel
}

struct Peer {
    name: &'static str,
    cold: Vec<Duration>,
    warm: Vec<Duration>,
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        println!("build: skipped (needs root)");
        return;
    }
    let runs: usize = std::env::var("BERTH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let tmp = tempfile::Builder::new()
        .prefix("berth-bench-build-")
        .tempdir()
        .unwrap();
    let t = tmp.path();
    let tar = berth_tests::busybox_tar(t).unwrap();
    let ctx = t.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(
        ctx.join("app.sh"),
        "for i in $(seq 1 200); do echo line $i; done\n",
    )
    .unwrap();
    std::fs::write(ctx.join("data.txt"), "some data\n".repeat(100)).unwrap();

    // Berth: its own store.
    let images = Images::open(&t.join("berth-root")).unwrap();
    import::import_rootfs(images.store(), &tar, "busybox:latest").unwrap();
    let mut opts = BuildOptions::new(&ctx);
    opts.tags = vec!["bench:berth".into()];
    opts.run_root = t.join("berth-run");
    opts.runtime = Some(release_runtime());

    // buildah: its own storage (overlay, as a real installation), the base committed.
    let broot = t.join("buildah-root");
    let brun = t.join("buildah-run");
    let buildah = |args: &[&str]| -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root").arg(&broot).arg("--runroot").arg(&brun);
        c.args(["--storage-driver", "overlay"]).args(args);
        c
    };
    let have_buildah = Command::new("buildah")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if have_buildah {
        let out = buildah(&["from", "scratch"]).output().unwrap();
        let ctr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(run(&mut buildah(&[
            "add",
            &ctr,
            tar.to_str().unwrap(),
            "/"
        ])));
        assert!(run(&mut buildah(&[
            "commit",
            "-q",
            &ctr,
            "localhost/bench-busybox:latest"
        ])));
        assert!(run(&mut buildah(&["rm", &ctr])));
    } else {
        println!("buildah not installed (scripts/deps installs it): skipped");
    }
    let have_docker = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have_docker {
        assert!(run(Command::new("docker").args([
            "import",
            tar.to_str().unwrap(),
            "berth-bench-busybox:latest"
        ])));
    } else {
        println!("no Docker daemon answers `docker info`: docker build skipped (not started here)");
    }

    let mut peers = vec![Peer {
        name: "berth build",
        cold: vec![],
        warm: vec![],
    }];
    if have_buildah {
        peers.push(Peer {
            name: "buildah bud",
            cold: vec![],
            warm: vec![],
        });
    }
    if have_docker {
        peers.push(Peer {
            name: "docker build",
            cold: vec![],
            warm: vec![],
        });
    }
    let ctx_s = ctx.to_str().unwrap().to_string();
    let one = |name: &str, cold: bool| -> Duration {
        let started = Instant::now();
        let ok = match name {
            "berth build" => {
                let mut o = opts.clone();
                o.no_cache = cold;
                build(&images, &o, &Quiet)
                    .map_err(|e| eprintln!("berth: {e}"))
                    .is_ok()
            }
            peer => {
                let mut c = if peer == "buildah bud" {
                    let mut c =
                        buildah(&["bud", "--layers", "--network", "none", "--pull-never", "-q"]);
                    c.args(["--build-arg", "BASE=localhost/bench-busybox:latest"]);
                    c.args(["-t", "localhost/bench:buildah"]);
                    c
                } else {
                    let mut c = Command::new("docker");
                    c.args(["build", "-q", "--network", "none"]);
                    c.args(["--build-arg", "BASE=berth-bench-busybox:latest"]);
                    c.args(["-t", "berth-bench:docker"]);
                    c
                };
                if cold {
                    c.arg("--no-cache");
                }
                c.arg(&ctx_s);
                run(&mut c)
            }
        };
        assert!(ok, "{name} failed");
        started.elapsed()
    };
    // One warm-up each (fills the caches the warm runs use), then interleaved runs.
    for p in &peers {
        one(p.name, true);
    }
    for _ in 0..runs {
        for p in peers.iter_mut() {
            p.cold.push(one(p.name, true));
        }
        for p in peers.iter_mut() {
            p.warm.push(one(p.name, false));
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("build of a two-stage Dockerfile (2 RUN, 3 COPY), {runs} runs each, medians; load average {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    let base: Vec<(Duration, Duration)> = peers
        .iter_mut()
        .map(|p| (median(&mut p.cold), median(&mut p.warm)))
        .collect();
    println!(
        "{:<14} {:>10} {:>10} {:>12} {:>12}",
        "builder", "cold", "warm", "cold ratio", "warm ratio"
    );
    for (p, (c, w)) in peers.iter().zip(&base) {
        println!(
            "{:<14} {:>8.0}ms {:>8.0}ms {:>11.2}x {:>11.2}x",
            p.name,
            c.as_secs_f64() * 1e3,
            w.as_secs_f64() * 1e3,
            c.as_secs_f64() / base[0].0.as_secs_f64(),
            w.as_secs_f64() / base[0].1.as_secs_f64(),
        );
    }
    println!("(ratio: the peer's median over Berth's; above 1 means Berth is faster)");
    // Leave nothing: docker's images, buildah's storage (its overlay mounts too).
    if have_docker {
        let _ = run(Command::new("docker").args([
            "rmi",
            "-f",
            "berth-bench:docker",
            "berth-bench-busybox:latest",
        ]));
        let _ = run(Command::new("docker").args(["builder", "prune", "-f"]));
    }
    if have_buildah {
        let _ = run(&mut buildah(&["rmi", "-a", "-f"]));
        let overlay = broot.join("overlay");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if mounts.contains(&format!(" {} ", overlay.display())) {
            let _ = run(Command::new("umount").arg("-R").arg(&overlay));
        }
    }
}
