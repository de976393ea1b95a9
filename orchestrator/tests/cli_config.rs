//! `berth config` as a user runs it: the binary, its flags, its output and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn berth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env_remove("BERTH_PROJECT_NAME")
        .env_remove("BERTH_PROFILES")
        .env_remove("COMPOSE_PROJECT_NAME")
        .output()
        .expect("berth runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("My Project.")
        .tempdir()
        .unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const STACK: &str = "\
services:
  web:
    image: nginx:${TAG:-1.27}
    ports: ['8080:80']
    depends_on: [db]
    environment: ['MODE=${MODE}']
    command: echo $$HOME
  db:
    image: postgres
    volumes: ['data:/var/lib/postgresql/data']
  debug:
    image: busybox
    profiles: [debug]
volumes:
  data:
";

#[test]
fn prints_the_resolved_stack_in_long_syntax() {
    let dir = project(&[("compose.yaml", STACK), (".env", "MODE=prod\n")]);
    let o = berth(dir.path(), &["config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // The directory name, normalized as Compose does ("My Project.xyz" -> "myprojectxyz").
    let name = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("name: ")
        .unwrap()
        .to_string();
    assert!(
        name.starts_with("myproject") && !name.contains(['.', ' ']),
        "{name}"
    );
    assert!(out.contains("    image: nginx:1.27\n"), "{out}");
    // A `$$` escape stays escaped, so the output means the same when loaded again.
    assert!(out.contains("      - $$HOME\n"), "{out}");
    assert!(
        out.contains("    environment:\n      MODE: prod\n"),
        "{out}"
    );
    assert!(out.contains("      - mode: ingress\n        protocol: tcp\n        published: \"8080\"\n        target: 80\n"), "{out}");
    assert!(out.contains("    depends_on:\n      db:\n        condition: service_started\n        required: true\n"), "{out}");
    assert!(out.contains("      - source: data\n        target: /var/lib/postgresql/data\n        type: volume\n"), "{out}");
    assert!(
        !out.contains("debug:"),
        "a service of an inactive profile is left out: {out}"
    );
    assert!(out.contains(&format!("    name: {name}_data\n")), "{out}");
}

#[test]
fn output_is_stable_and_loads_again_to_the_same_text() {
    let dir = project(&[("compose.yaml", STACK)]);
    let first = stdout(&berth(dir.path(), &["-p", "demo", "config"]));
    let again = stdout(&berth(dir.path(), &["-p", "demo", "config"]));
    assert_eq!(first, again);
    let out = project(&[("compose.yaml", &first)]);
    let reloaded = stdout(&berth(out.path(), &["-p", "demo", "config"]));
    assert_eq!(first, reloaded);
}

#[test]
fn json_format() {
    let dir = project(&[("compose.yaml", STACK)]);
    let o = berth(dir.path(), &["-p", "demo", "config", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["services"]["web"]["image"], "nginx:1.27");
    assert_eq!(v["volumes"]["data"]["name"], "demo_data");
}

#[test]
fn listing_flags() {
    let dir = project(&[("compose.yaml", STACK)]);
    let run = |args: &[&str]| stdout(&berth(dir.path(), args));
    assert_eq!(run(&["config", "--services"]), "web\ndb\n");
    assert_eq!(
        run(&["--profile", "debug", "config", "--services"]),
        "web\ndb\ndebug\n"
    );
    assert_eq!(run(&["config", "--volumes"]), "data\n");
    assert_eq!(run(&["config", "--networks"]), "default\n");
    assert_eq!(run(&["config", "--profiles"]), "debug\n");
    assert_eq!(
        run(&["-p", "demo", "config", "--images"]),
        "nginx:1.27\npostgres\n"
    );
    // Naming a service enables it whatever its profile.
    assert_eq!(run(&["config", "--services", "debug"]), "debug\n");
}

#[test]
fn hash_changes_only_with_the_service() {
    let dir = project(&[("compose.yaml", STACK)]);
    let hashes = |env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.args(["-p", "demo", "config", "--hash", "*"])
            .current_dir(dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        String::from_utf8(c.output().unwrap().stdout).unwrap()
    };
    let a = hashes(&[]);
    let lines: Vec<&str> = a.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("web ") && lines[0].len() == 4 + 64,
        "{a}"
    );
    let b = hashes(&[("TAG", "1.28")]);
    assert_ne!(a.lines().next(), b.lines().next(), "web's image changed");
    assert_eq!(a.lines().nth(1), b.lines().nth(1), "db did not change");
    let one = stdout(&berth(
        dir.path(),
        &["-p", "demo", "config", "--hash", "db"],
    ));
    assert_eq!(one.trim(), lines[1]);
}

#[test]
fn graph_prints_dot() {
    let dir = project(&[("compose.yaml", STACK)]);
    let out = stdout(&berth(dir.path(), &["config", "--graph"]));
    assert!(out.starts_with("digraph"), "{out}");
    assert!(out.contains("\"web\" -> \"db\""), "{out}");
}

#[test]
fn quiet_validates_with_the_exit_code_and_errors_show_the_line() {
    let good = project(&[("compose.yaml", STACK)]);
    let o = berth(good.path(), &["config", "-q"]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());

    let bad = project(&[(
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    prots: ['80']\n",
    )]);
    let o = berth(bad.path(), &["--ansi", "never", "config", "-q"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(
            "compose.yaml:4:5: services.web.prots: unknown key `prots` (did you mean `ports`?)"
        ),
        "{err}"
    );
    assert!(
        err.contains("    4 |     prots: ['80']\n      |     ^"),
        "{err}"
    );
}

#[test]
fn reads_stdin_merges_files_and_takes_env_files() {
    let dir = project(&[
        (
            "base.yaml",
            "services:\n  web:\n    image: nginx:${TAG}\n    environment: {A: '1'}\n",
        ),
        (
            "over.yaml",
            "services:\n  web:\n    environment: {B: '2'}\n",
        ),
        ("custom.env", "TAG=from-env-file\n"),
    ]);
    let o = berth(
        dir.path(),
        &[
            "-p",
            "x",
            "-f",
            "base.yaml",
            "-f",
            "over.yaml",
            "--env-file",
            "custom.env",
            "config",
        ],
    );
    let out = stdout(&o);
    assert!(
        out.contains("image: nginx:from-env-file"),
        "{out}{}",
        stderr(&o)
    );
    assert!(out.contains("      A: \"1\"\n      B: \"2\"\n"), "{out}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-p", "x", "-f", "-", "config", "--services"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"services:\n  from-stdin:\n    image: x\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "from-stdin\n");
}

#[test]
fn finds_the_default_file_and_its_override_from_a_subdirectory() {
    let dir = project(&[
        ("docker-compose.yml", "services:\n  web:\n    image: a\n"),
        (
            "docker-compose.override.yml",
            "services:\n  web:\n    image: b\n",
        ),
        ("sub/deeper/.keep", ""),
    ]);
    let o = berth(
        &PathBuf::from(dir.path()).join("sub/deeper"),
        &["-p", "x", "config"],
    );
    assert!(
        stdout(&o).contains("image: b"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let empty = project(&[]);
    let o = berth(empty.path(), &["config"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no stack file found"), "{}", stderr(&o));
}
