//! `build:` end to end, as root: a stack file whose services are built from the
//! Dockerfiles in builder/tests/fixtures (a multi-stage build with ARG/ENV, USER and
//! WORKDIR, .dockerignore and a RUN that deletes a base-image file; a FROM scratch image
//! of Debian's static busybox), brought up with `berth up`, then checked the way a user
//! would: logs and exec. On the shared harness (tests/common): own BERTH_ROOT/BERTH_RUN,
//! project names and 10.222.x subnets, `berth down` in a guard, and the leak check at
//! the end of each test.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{subnet_in, wait_for, Stack};

/// A stack (common's harness: own store, busybox imported, `down` in a guard) whose
/// project directory holds the builder's fixtures.
fn build_stack(project: &str, compose: &str) -> Stack {
    let s = Stack::new(project, compose);
    let proj = s.dir.path().join("proj");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../builder/tests/fixtures");
    for f in ["multistage", "scratch"] {
        let st = Command::new("cp")
            .args([
                "-a",
                fixtures.join(f).to_str().unwrap(),
                proj.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::fs::copy(berth_tests::BUSYBOX, proj.join("scratch/busybox")).unwrap();
    s
}

/// The logs of `service` once they hold `needle`.
fn logs_until(s: &Stack, service: &str, needle: &str) -> String {
    let mut out = String::new();
    wait_for(&format!("{service} to log {needle:?}"), || {
        out = s.ok(&["logs", "--no-log-prefix", service]);
        out.contains(needle)
    });
    out
}

#[test]
fn up_builds_then_runs_built_images() {
    let compose = format!(
        r#"services:
  app:
    build:
      context: ./multistage
      args:
        WHO: berth
      labels:
        org.example.from-compose: "yes"
  tiny:
    build: ./scratch
    image: tiny-scratch:1
    pull_policy: build
    restart: "no"
networks:
  default:
    ipam:
      config: [{{subnet: {}}}]
"#,
        subnet_in(222, 1)
    );
    let s = build_stack(&format!("bld{}", std::process::id()), &compose);
    let (_, err) = s.ok_with_stderr(&["up", "-d"]);
    assert!(
        err.contains("RUN rm /var/www/index.html"),
        "the build shows its steps:\n{err}"
    );

    // What the user checks: the programs ran as the Dockerfiles said.
    let tiny = logs_until(&s, "tiny", "hello from scratch");
    assert_eq!(tiny.trim(), "hello from scratch");
    let app = logs_until(&s, "app", "write=ok");
    assert!(
        app.contains("uid=65534 pwd=/data"),
        "USER and WORKDIR at run time:\n{app}"
    );
    assert!(
        app.contains("hello, berth"),
        "ARG from compose args, ENV at run time:\n{app}"
    );
    assert!(
        app.contains("index=gone"),
        "a file deleted by RUN is gone:\n{app}"
    );
    assert!(app.contains("kept.txt"), "{app}");
    assert!(
        !app.contains("secret.txt") && !app.contains("logs"),
        ".dockerignore:\n{app}"
    );
    let out = s.ok(&["exec", "app", "cat", "/srv/marker"]);
    assert_eq!(
        out.trim(),
        "built-by-builder",
        "copied from the builder stage"
    );
    let out = s.ok(&["exec", "app", "id", "-u"]);
    assert_eq!(out.trim(), "65534");
    let out = s.ok(&["image", "inspect", &format!("{}-app", s.project)]);
    assert!(
        out.contains("org.example.from-compose"),
        "build.labels:\n{out}"
    );

    // Up again: app's image is there and is not built again; tiny (`pull_policy:
    // build`) is, all from the cache. Nothing is recreated (tiny, which exited, is only
    // started again, as compose does).
    let (_, err) = s.ok_with_stderr(&["up", "-d"]);
    assert!(
        !err.contains("RUN ") && !err.contains("[app"),
        "app not rebuilt:\n{err}"
    );
    assert!(
        err.contains("[tiny") && err.contains("CACHED"),
        "pull_policy: build always builds:\n{err}"
    );
    assert!(!err.contains("recreate"), "{err}");

    // `up --build` builds again (all from the cache: the same image, nothing recreated).
    let (_, err) = s.ok_with_stderr(&["up", "-d", "--build"]);
    assert!(err.contains("CACHED") && !err.contains("recreate"), "{err}");

    // `berth build`: every step from the cache, no RUN runs, well under a second.
    let started = Instant::now();
    let (_, err) = s.ok_with_stderr(&["build", "--progress", "plain", "app"]);
    let took = started.elapsed();
    assert!(err.contains("CACHED"), "{err}");
    assert!(err.contains("5 of 5 steps cached"), "{err}");
    assert!(took < Duration::from_secs(2), "cached build took {took:?}");

    // up --build with a changed build arg rebuilds from the RUN that uses it and
    // recreates the container.
    let (_, err) = s.ok_with_stderr(&["build", "--build-arg", "WHO=everyone", "app"]);
    assert!(!err.contains("5 of 5 steps cached"), "{err}");
    let (_, err) = s.ok_with_stderr(&["up", "-d"]);
    assert!(
        err.contains("recreate") && err.contains("app-1"),
        "a new image recreates the container:\n{err}"
    );
    logs_until(&s, "app", "hello, everyone");
    s.ok(&["down", "-v", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn build_refusals_name_the_line() {
    let s = build_stack(
        &format!("bldr{}", std::process::id()),
        "services:\n  bad:\n    build: ./bad\n  inline:\n    build:\n      context: .\n      dockerfile_inline: |\n        FROM busybox AS a\n        COPY --from=b /x /x\n",
    );
    let proj = s.dir.path().join("proj");
    std::fs::create_dir_all(proj.join("bad")).unwrap();
    std::fs::write(
        proj.join("bad/Dockerfile"),
        "FROM busybox\n\nCOPY ../../etc/passwd /x\n",
    )
    .unwrap();
    let o = s.berth(&["build", "bad"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("Dockerfile:3:") && err.contains("outside the build context"),
        "{err}"
    );
    let o = s.berth(&["build", "inline"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("dockerfile_inline:2:") && err.contains("no stage named \"b\""),
        "{err}"
    );
    // `up` refuses the same way before creating anything.
    let o = s.berth(&["up", "-d"]);
    assert!(!o.status.success());
    let out = s.ok(&["ps", "-a"]);
    assert!(!out.contains("bad"), "{out}");
    s.ok(&["down", "-v", "-t", "0"]);
    s.assert_nothing_left();
}
