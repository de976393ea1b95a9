//! Benchmark (not a timed test): create + start + wait + delete of `/bin/true` on the
//! same busybox bundle with berth-runtime, runc and crun from Debian, interleaved in one
//! run. Prints each runtime's median and p90 and the ratios.
//!
//! Run as root: `cargo bench -p berth-engine --bench runtime_startup`
//! (BERTH_BENCH_RUNS sets the runs per runtime, default 60).
//!
//! crun 1.8.1 refuses this fleet's hybrid cgroup layout ("cgroups in hybrid mode not
//! supported", also with --cgroup-manager=disabled). So that all three can be compared
//! on equal terms, the benchmark runs in a private mount namespace without the empty
//! cgroup2 mount at /sys/fs/cgroup/unified: every runtime then sees plain cgroup v1,
//! which is what berth-runtime and runc use on the hybrid host anyway.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BERTH: &str = env!("CARGO_BIN_EXE_berth-runtime");

struct Rt {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
    bundle: PathBuf,
    times: Vec<Duration>,
}

fn config(rootfs: &Path, cgroup: &str) -> serde_json::Value {
    // The runc/berth `spec` default, running /bin/true without a terminal.
    let mut spec = oci_spec::runtime::Spec::default();
    let mut v = serde_json::to_value(&spec).unwrap();
    spec.set_hostname(None);
    v["process"]["terminal"] = false.into();
    v["process"]["args"] = serde_json::json!(["/bin/true"]);
    v["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    v["linux"]["cgroupsPath"] = cgroup.into();
    v
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(v: &mut [Duration]) -> Duration {
    v.sort();
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn find(bin: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.exists())
}

fn isolate_cgroup_view() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .expect("unshare mount namespace (run as root)");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if mi.contains(" /sys/fs/cgroup/unified ") {
        umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH).expect("umount unified");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` asks; nothing to list
    }
    if !nix::unistd::geteuid().is_root() {
        println!("runtime_startup: skipped (needs root)");
        return;
    }
    let runs: usize = std::env::var("BERTH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    isolate_cgroup_view();
    let tmp = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir()
        .unwrap();
    let rootfs = tmp.path().join("rootfs");
    berth_tests::busybox_rootfs(&rootfs).unwrap();
    let mut rts = vec![];
    for (name, bin) in [
        ("berth-runtime", Some(PathBuf::from(BERTH))),
        ("crun", find("crun")),
        ("runc", find("runc")),
    ] {
        let Some(bin) = bin else {
            println!("{name}: not installed (apt-get install -y {name}); skipped");
            continue;
        };
        let bundle = tmp.path().join(format!("bundle-{name}"));
        std::fs::create_dir_all(&bundle).unwrap();
        let cfg = config(
            &rootfs,
            &format!("/berth-bench-{name}-{}", std::process::id()),
        );
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&cfg).unwrap(),
        )
        .unwrap();
        rts.push(Rt {
            name,
            bin,
            root: tmp.path().join(format!("state-{name}")),
            bundle,
            times: vec![],
        });
    }
    let warmup = 3;
    let n = rts.len();
    for i in 0..runs + warmup {
        // Rotate the order, and let each run's asynchronous teardown (network namespace
        // cleanup, RCU callbacks) finish before the next starts, so that no runtime pays
        // for another's exit.
        for k in 0..n {
            let rt = &mut rts[(i + k) % n];
            std::thread::sleep(Duration::from_millis(25));
            let id = format!("berth-bench-{}-{i}", rt.name);
            let t = Instant::now();
            let st = Command::new(&rt.bin)
                .arg("--root")
                .arg(&rt.root)
                .args(["run", "--bundle"])
                .arg(&rt.bundle)
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .unwrap();
            let d = t.elapsed();
            if !st.status.success() {
                panic!(
                    "{} run failed: {}",
                    rt.name,
                    String::from_utf8_lossy(&st.stderr)
                );
            }
            if i >= warmup {
                rt.times.push(d);
            }
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "create+start+wait+delete of /bin/true, {runs} runs each, interleaved (load average {}):",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut medians = vec![];
    for rt in rts.iter_mut() {
        let m = median(&mut rt.times);
        let p = p90(&mut rt.times);
        let min = rt.times[0];
        println!(
            "  {:<14} median {:>7.2} ms   p90 {:>7.2} ms   min {:>7.2} ms",
            rt.name,
            m.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3
        );
        medians.push((rt.name, m));
    }
    let berth = medians[0].1.as_secs_f64();
    for (name, m) in &medians[1..] {
        let ratio = m.as_secs_f64() / berth;
        let target = if *name == "runc" { 3.0 } else { 1.0 };
        println!(
            "  {name}/berth-runtime = {ratio:.2}x (target > {target:.0}x: {})",
            if ratio > target { "met" } else { "NOT met" }
        );
    }
    // Nothing left behind by any runtime.
    for rt in &rts {
        let left: Vec<_> = std::fs::read_dir(&rt.root)
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{} left state: {left:?}", rt.name);
    }
}
