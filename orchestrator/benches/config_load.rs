//! Benchmark: load + validate + graph of a generated 1,000-service stack with
//! dependencies, in process and as `berth config -q`, side by side with Debian's
//! `docker-compose config -q` on the same file, in the same run. Prints a Markdown table
//! of medians and ratios for the README's performance section.
//!
//! Run with `scripts/bench` (installs docker-compose). Not a timed test: it reports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_orchestrator::stack::{self, Options};

/// The peers' stack shape (../shared/peers/gen-compose.sh) at 1,000 services, plus a
/// dependency from every service on one of the previous ten, so the graph is not trivial.
fn generate(n: usize) -> String {
    let mut s = String::from("version: \"2.4\"\nnetworks:\n  labnet: {}\nservices:\n");
    for i in 1..=n {
        s.push_str(&format!(
            "  s{i}:\n    image: lab/busybox:latest\n    command: [\"sleep\", \"3600\"]\n    mem_limit: 32m\n    cpus: 0.1\n    networks: [labnet]\n"
        ));
        if (2..=5).contains(&i) {
            s.push_str(&format!("    depends_on: [s{}]\n", i - 1));
        } else if i == n && n >= 7 {
            let deps: Vec<String> = (6..n).map(|d| format!("s{d}")).collect();
            s.push_str(&format!("    depends_on: [{}]\n", deps.join(", ")));
        } else if i > 10 {
            s.push_str(&format!("    depends_on: [s{}]\n", i - 1 - (i * 7) % 10));
        }
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_command(program: &str, args: &[&str], runs: usize) -> Option<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new(program).args(args).status().ok()?;
        let elapsed = started.elapsed();
        if !status.success() {
            eprintln!("{program} {args:?} failed: {status}");
            return None;
        }
        times.push(elapsed);
    }
    Some(median(times))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file: PathBuf = dir.path().join("compose.yaml");
    std::fs::write(&file, generate(1000)).expect("write stack");
    let opts = Options {
        files: vec![file.clone()],
        project_name: Some("bench".into()),
        ..Options::default()
    };

    // In process: what `berth` spends on the stack itself.
    let loaded = stack::load(&opts).expect("the generated stack loads");
    assert_eq!(loaded.project.services.len(), 1000);
    let mut times = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        let loaded = stack::load(&opts).expect("loads");
        let order = loaded.graph.start_order();
        assert_eq!(order.len(), 1000);
        times.push(started.elapsed());
    }
    let in_process = median(times);

    // As processes, the way a user runs them.
    let berth = env!("CARGO_BIN_EXE_berth");
    let f = file.to_str().unwrap();
    let berth_cli = time_command(berth, &["-p", "bench", "-f", f, "config", "-q"], 20)
        .expect("berth config runs");
    let compose = if Path::new("/usr/bin/docker-compose").exists() {
        time_command(
            "/usr/bin/docker-compose",
            &["-p", "bench", "-f", f, "config", "-q"],
            5,
        )
    } else {
        eprintln!("docker-compose is not installed (scripts/bench installs it); no ratio");
        None
    };

    println!("| what (1,000 services, medians) | ms | ratio |");
    println!("|---|---:|---:|");
    println!(
        "| berth: load + validate + graph, in process (30 runs) | {} | |",
        ms(in_process)
    );
    match compose {
        Some(c) => {
            println!(
                "| `berth config -q` (20 runs) | {} | {:.1}x faster |",
                ms(berth_cli),
                c.as_secs_f64() / berth_cli.as_secs_f64()
            );
            println!(
                "| `docker-compose config -q` 1.29 (5 runs) | {} | 1 |",
                ms(c)
            );
        }
        None => println!("| `berth config -q` (20 runs) | {} | |", ms(berth_cli)),
    }
}
