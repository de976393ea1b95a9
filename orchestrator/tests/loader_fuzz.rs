//! Property tests: no input makes the loader panic, hang or run away with memory. Three
//! kinds of input, 100,000+ in all: Compose-shaped YAML built from the spec's own keys
//! and tricky values, random bytes, and real stack files from the conformance corpus
//! with random bytes flipped, inserted or deleted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_orchestrator::stack::{self, Options};
use indexmap::IndexMap;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Loads a text as `berth config -f -` would, and checks it answered in time.
fn load_text(text: String) {
    let started = Instant::now();
    let opts = Options {
        files: vec![PathBuf::from("-")],
        stdin: Some(text),
        project_name: Some("fuzz".into()),
        environment: Some(IndexMap::from([("SET".to_string(), "value".to_string())])),
        ..Options::default()
    };
    if let Ok(loaded) = stack::load(&opts) {
        // What loads must also print.
        let _ = stack::config::render(&loaded, stack::config::Format::Yaml);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "one input took {:?}",
        started.elapsed()
    );
}

const KEYS: &[&str] = &[
    "services",
    "networks",
    "volumes",
    "secrets",
    "configs",
    "name",
    "include",
    "x-ext",
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "depends_on",
    "condition",
    "required",
    "restart",
    "healthcheck",
    "test",
    "interval",
    "deploy",
    "resources",
    "limits",
    "memory",
    "cpus",
    "replicas",
    "network_mode",
    "ipc",
    "pid",
    "volumes_from",
    "links",
    "labels",
    "ulimits",
    "nofile",
    "soft",
    "hard",
    "tmpfs",
    "extends",
    "service",
    "file",
    "profiles",
    "target",
    "published",
    "protocol",
    "host_ip",
    "source",
    "type",
    "read_only",
    "bind",
    "external",
    "driver",
    "driver_opts",
    "ipam",
    "config",
    "subnet",
    "aliases",
    "ipv4_address",
    "mem_limit",
    "stop_grace_period",
    "sysctls",
    "devices",
    "cap_add",
    "user",
    "logging",
    "options",
    "web",
    "db",
    "<<",
];

const SCALARS: &[&str] = &[
    "0",
    "1",
    "-1",
    "65536",
    "8080:80",
    "127.0.0.1:8080:80/udp",
    "9090-9091:8080-8081",
    "[::1]:6001:6001",
    "./data:/data:ro",
    "named:/x",
    "/a:/b:rw,nocopy",
    "C:\\x:/y",
    "1m30s",
    "10s",
    "-5s",
    "512m",
    "1g",
    "2.5gb",
    "0.5",
    "yes",
    "no",
    "on",
    "~",
    "null",
    "true",
    "''",
    "\"\"",
    "${SET}",
    "${UNSET:-d}",
    "${UNSET:?needed}",
    "${SET:+alt}",
    "$$",
    "${",
    "${A:-${B:-c}}",
    "service:web",
    "service:nope",
    "container:x",
    "host",
    "service_healthy",
    "service_completed_successfully",
    "web",
    "db",
    "always",
    "on-failure:3",
    "!reset []",
    "!override x",
    "*a",
    "&a x",
    "[a, b]",
    "{a: 1}",
    "\"CMD-SHELL\"",
    "é",
    "\t",
    "x: y",
    "- z",
];

/// A random Compose-shaped value, rendered as YAML text at the given indent.
fn render(rng: &mut impl FnMut() -> u64, depth: usize, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let pick = |rng: &mut dyn FnMut() -> u64, items: &[&str]| {
        items[(rng() as usize) % items.len()].to_string()
    };
    match if depth > 4 { 0 } else { rng() % 4 } {
        0 => {
            out.push(' ');
            out.push_str(&pick(rng, SCALARS));
            out.push('\n');
        }
        1 => {
            out.push('\n');
            for _ in 0..(rng() % 4) {
                out.push_str(&pad);
                out.push('-');
                render(rng, depth + 1, indent + 2, out);
            }
        }
        _ => {
            out.push('\n');
            for _ in 0..(1 + rng() % 5) {
                out.push_str(&pad);
                out.push_str(&pick(rng, KEYS));
                out.push(':');
                render(rng, depth + 1, indent + 2, out);
            }
        }
    }
}

fn compose_shaped(seed: u64) -> String {
    let mut state = seed | 1;
    let mut rng = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::from("services:\n");
    for i in 0..(1 + rng() % 4) {
        text.push_str(&format!("  s{i}:"));
        render(&mut rng, 1, 4, &mut text);
    }
    for section in ["networks", "volumes", "x-common"] {
        if rng() % 2 == 0 {
            text.push_str(section);
            text.push(':');
            render(&mut rng, 1, 2, &mut text);
        }
    }
    // Now and then a glitch a person makes: a tab, a lost colon, a stray indent.
    if rng() % 5 == 0 && !text.is_empty() {
        let at = (rng() as usize) % text.len();
        let at = (0..=at)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        let glitch = ["\t", ":", "  ", "\n", "&", "*", "!", "'", "\""][(rng() % 9) as usize];
        text.insert_str(at, glitch);
    }
    text
}

#[test]
fn compose_shaped_yaml_never_panics() {
    let mut runner = TestRunner::new(Config {
        cases: 60_000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&any::<u64>(), |seed| {
            load_text(compose_shaped(seed));
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_bytes_never_panic() {
    let mut runner = TestRunner::new(Config {
        cases: 30_000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..600), |bytes| {
            load_text(String::from_utf8_lossy(&bytes).into_owned());
            Ok(())
        })
        .unwrap();
}

fn corpus_files() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/compose/valid/awesome-compose");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        for name in ["compose.yaml", "compose.yml"] {
            if let Ok(text) = std::fs::read_to_string(entry.path().join(name)) {
                out.push(text);
            }
        }
    }
    assert!(out.len() >= 30, "the corpus is where ../shared says");
    out
}

#[test]
fn mutated_real_files_never_panic() {
    let files = corpus_files();
    let mut runner = TestRunner::new(Config {
        cases: 30_000,
        failure_persistence: None,
        ..Config::default()
    });
    let edits = proptest::collection::vec((any::<u8>(), any::<u16>(), 0u8..3), 1..6);
    runner
        .run(&(0..files.len(), edits), |(index, edits)| {
            let mut bytes = files[index].clone().into_bytes();
            for (byte, pos, op) in edits {
                let at = pos as usize % (bytes.len() + 1);
                match op {
                    0 => bytes.insert(at, byte),
                    1 if at < bytes.len() => bytes[at] = byte,
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            load_text(String::from_utf8_lossy(&bytes).into_owned());
            Ok(())
        })
        .unwrap();
}
