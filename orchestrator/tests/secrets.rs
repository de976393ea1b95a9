//! No secret value leaves the mounted file (issue 8): with one secret from a file and
//! one from an environment variable (`.env`), each with a distinctive value, nothing a
//! user or another process can read shows either value: `ps` (table and JSON), `top`,
//! `port`, `stats`, `ls`, `config` (YAML, JSON, `--hash`), `logs`, `events`, the error
//! messages of a failing `up`, `exec` and `run`, the host's process list, and every file
//! under BERTH_ROOT and BERTH_RUN but the engine's staged copies, which are what the
//! container mounts. (An inline `content:` config is mounted too.) `config` prints an environment-sourced secret as docker compose
//! does, by the variable's name (`environment: NAME`); Berth has no flag that prints
//! secret values (nor does docker compose), so "only when asked" means: never.
//!
//! Subnet: the hardening block, 10.228.0.0/16.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

mod common;

use common::{subnet_in, Stack};

const FILE_VALUE: &str = "file-secret-7Hq2xZ-do-not-print";
const ENV_VALUE: &str = "env-secret-Kp9wVt-do-not-print";

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every regular file under `dir` that contains either value, with `allowed` left out.
fn files_with_a_value(dir: &Path, allowed: &dyn Fn(&Path) -> bool, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            files_with_a_value(&path, allowed, found);
        } else if ft.is_file() && !allowed(&path) {
            if let Ok(bytes) = std::fs::read(&path) {
                let t = String::from_utf8_lossy(&bytes);
                if t.contains(FILE_VALUE) || t.contains(ENV_VALUE) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
}

fn assert_no_value(what: &str, out: &str) {
    assert!(
        !out.contains(FILE_VALUE) && !out.contains(ENV_VALUE),
        "a secret value shows in {what}:\n{out}"
    );
}

#[test]
fn no_secret_value_shows_anywhere_but_in_the_mounted_files() {
    let subnet = subnet_in(228, 2);
    let s = Stack::new(
        &format!("sec{}", std::process::id()),
        &format!(
            r#"services:
  holder:
    image: busybox:latest
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    secrets:
      - filesec
      - source: envsec
        target: /run/secrets/from-env
    configs:
      - source: greeting
        target: /etc/greeting
  # Fails once its secrets are staged: the runtime cannot start what does not exist.
  broken:
    image: busybox:latest
    entrypoint: ["/no/such/program"]
    profiles: [broken]
    secrets: [filesec, envsec]
secrets:
  filesec:
    file: ./file-secret.txt
  envsec:
    environment: BERTH_TEST_TOKEN
configs:
  greeting:
    content: "hello from an inline config"
networks:
  default:
    ipam:
      config: [{{subnet: {subnet}}}]
"#
        ),
    );
    let proj = s.dir.path().join("proj");
    std::fs::write(proj.join("file-secret.txt"), format!("{FILE_VALUE}\n")).unwrap();
    std::fs::write(proj.join(".env"), format!("BERTH_TEST_TOKEN={ENV_VALUE}\n")).unwrap();

    let events = s
        .command(&["events", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let up = s.berth(&["up", "-d"]);
    assert!(up.status.success(), "up: {}", text(&up));
    let mut shown = vec![("up".to_string(), text(&up))];

    // The container does get both values, 0400, read-only (and the inline config).
    let o = s.berth(&[
        "exec",
        "-T",
        "holder",
        "sh",
        "-c",
        "stat -c %a /run/secrets/filesec /run/secrets/from-env; cat /run/secrets/filesec /run/secrets/from-env; echo; cat /etc/greeting",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("400\n400\n{FILE_VALUE}\n{ENV_VALUE}\nhello from an inline config"),
        "{}",
        text(&o)
    );

    // What users read.
    for args in [
        &["ps"][..],
        &["ps", "-a"],
        &["ps", "--format", "json"],
        &["top"],
        &["port", "holder", "80"],
        &["stats", "--no-stream"],
        &["stats", "--no-stream", "--format", "json"],
        &["ls"],
        &["logs"],
        &["logs", "-t", "holder"],
        &["config"],
        &["config", "--format", "json"],
        &["config", "--hash", "*"],
        &["images"],
    ] {
        let o = s.berth(args);
        shown.push((format!("berth {}", args.join(" ")), text(&o)));
    }
    // `config` names the variable, as docker compose does, and the file by its path.
    let config = s.ok(&["config"]);
    assert!(
        config.contains("environment: BERTH_TEST_TOKEN") && config.contains("file-secret.txt"),
        "{config}"
    );

    // Error paths: a service that fails to start with both secrets staged, an exec of
    // what is not there, a one-off container that fails the same way.
    let o = s.berth(&["--profile", "broken", "up", "-d", "broken"]);
    assert!(
        !o.status.success(),
        "the broken service started: {}",
        text(&o)
    );
    shown.push(("failing up".into(), text(&o)));
    let o = s.berth(&["exec", "-T", "holder", "/no/such/program"]);
    assert!(!o.status.success());
    shown.push(("failing exec".into(), text(&o)));
    let o = s.berth(&["--profile", "broken", "run", "--rm", "broken"]);
    assert!(!o.status.success());
    shown.push(("failing run".into(), text(&o)));
    let o = s.berth(&["--profile", "broken", "logs", "broken"]);
    shown.push(("logs of the broken service".into(), text(&o)));
    s.ok(&["restart", "holder"]);

    // The host's process list (monitors, helpers, the container's own processes).
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    shown.push(("the host's ps".into(), text(&ps)));

    // State, logs and helpers' files: only the engine's staged copies hold a value
    // (BERTH_ROOT/containers/ID/secrets/N, what the container mounts).
    let staged = |p: &Path| {
        p.parent().and_then(|d| d.file_name()) == Some("secrets".as_ref())
            && p.ancestors()
                .any(|a| a.file_name() == Some("containers".as_ref()))
    };
    let mut found = Vec::new();
    files_with_a_value(&s.root(), &staged, &mut found);
    files_with_a_value(&s.run_dir(), &staged, &mut found);
    assert!(
        found.is_empty(),
        "files under BERTH_ROOT/BERTH_RUN hold a secret value: {found:#?}"
    );
    // The staged copies are there (so the walk looked where the values are).
    let mut copies = Vec::new();
    files_with_a_value(&s.root(), &|_| false, &mut copies);
    assert!(
        copies.len() >= 2,
        "no staged secret copies found under {}: {copies:?}",
        s.root().display()
    );

    s.ok(&["--profile", "broken", "down", "-v", "-t", "0"]);
    let mut events = events;
    std::thread::sleep(Duration::from_millis(500));
    let _ = events.kill();
    let out = events.wait_with_output().unwrap();
    let ev = text(&out);
    assert!(ev.contains("holder"), "events saw nothing: {ev}");
    shown.push(("events --json".into(), ev));

    for (what, out) in &shown {
        if what.starts_with("failing") {
            eprintln!("{what}: {}", out.trim());
        }
        assert_no_value(what, out);
    }
    s.assert_nothing_left();
}

/// `up` refuses a secret whose variable is not set before making anything, naming the
/// secret and the variable.
#[test]
fn an_unset_secret_variable_is_refused_before_anything_is_made() {
    let s = Stack::new(
        &format!("secu{}", std::process::id()),
        &format!(
            "services:\n  holder:\n    image: busybox:latest\n    command: [sleep, '3600']\n    secrets: [envsec]\nsecrets:\n  envsec:\n    environment: BERTH_TEST_UNSET_TOKEN\nnetworks:\n  default:\n    ipam:\n      config: [{{subnet: {}}}]\n",
            subnet_in(228, 3)
        ),
    );
    let o = s
        .command(&["up", "-d"])
        .env_remove("BERTH_TEST_UNSET_TOKEN")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("secrets.envsec")
            && t.contains("BERTH_TEST_UNSET_TOKEN")
            && t.contains("not set"),
        "{t}"
    );
    assert!(s.ok(&["ps", "-a", "-q"]).is_empty());
    s.assert_nothing_left();
}
