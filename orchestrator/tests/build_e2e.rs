//! `build:` end to end, as root: a stack file whose services are built from the
//! Dockerfiles in builder/tests/fixtures (a multi-stage build with ARG/ENV, USER and
//! WORKDIR, .dockerignore and a RUN that deletes a base-image file; a FROM scratch image
//! of Debian's static busybox), brought up with `berth up`, then checked the way a user
//! would: logs and exec. Own BERTH_ROOT/BERTH_RUN, project names and 10.222.x subnets;
//! `berth down` in a guard.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

struct Stack {
    dir: tempfile::TempDir,
    project: String,
}

impl Stack {
    fn new(project: &str) -> Stack {
        let bin = Path::new(berth_bin()).parent().unwrap();
        assert!(
            bin.join("berth-monitor").exists() && bin.join("berth-runtime").exists(),
            "build the whole workspace first (berth-monitor and berth-runtime beside berth)"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-build-e2e-")
            .tempdir()
            .unwrap();
        let s = Stack {
            dir,
            project: project.to_string(),
        };
        let proj = s.proj();
        std::fs::create_dir_all(&proj).unwrap();
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
        let tar = berth_tests::busybox_tar(s.dir.path()).unwrap();
        s.ok(&["image", "import", tar.to_str().unwrap(), "busybox:latest"]);
        s
    }

    fn proj(&self) -> PathBuf {
        self.dir.path().join("proj")
    }

    fn berth(&self, args: &[&str]) -> Output {
        Command::new(berth_bin())
            .args(["-p", &self.project])
            .args(args)
            .current_dir(self.proj())
            .env("BERTH_ROOT", self.dir.path().join("root"))
            .env("BERTH_RUN", self.dir.path().join("run"))
            .env_remove("BERTH_PROJECT_NAME")
            .output()
            .unwrap()
    }

    /// Runs a verb that must succeed; returns stdout and stderr.
    fn ok(&self, args: &[&str]) -> (String, String) {
        let o = self.berth(args);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(o.status.success(), "berth {args:?} failed:\n{out}\n{err}");
        (out, err)
    }

    fn logs_until(&self, service: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let (out, _) = self.ok(&["logs", "--no-log-prefix", service]);
            if out.contains(needle) {
                return out;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{service} never logged {needle:?}; logs:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.berth(&["down", "-v", "-t", "0"]);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        if mounts.contains(&root) && !std::thread::panicking() {
            panic!("a mount under {root} is left");
        }
    }
}

fn subnet(seed: u32) -> String {
    format!("10.222.{}.0/24", seed * 50 + std::process::id() % 50)
}

#[test]
fn up_builds_then_runs_built_images() {
    let s = Stack::new(&format!("bld{}", std::process::id()));
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
        subnet(1)
    );
    std::fs::write(s.proj().join("compose.yaml"), compose).unwrap();
    let (_, err) = s.ok(&["up", "-d"]);
    assert!(
        err.contains("RUN rm /var/www/index.html"),
        "the build shows its steps:\n{err}"
    );

    // What the user checks: the programs ran as the Dockerfiles said.
    let tiny = s.logs_until("tiny", "hello from scratch");
    assert_eq!(tiny.trim(), "hello from scratch");
    let app = s.logs_until("app", "write=ok");
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
    let (out, _) = s.ok(&["exec", "app", "cat", "/srv/marker"]);
    assert_eq!(
        out.trim(),
        "built-by-builder",
        "copied from the builder stage"
    );
    let (out, _) = s.ok(&["exec", "app", "id", "-u"]);
    assert_eq!(out.trim(), "65534");
    let (out, _) = s.ok(&["image", "inspect", &format!("{}-app", s.project)]);
    assert!(
        out.contains("org.example.from-compose"),
        "build.labels:\n{out}"
    );

    // Up again: app's image is there and is not built again; tiny (`pull_policy:
    // build`) is, all from the cache. Nothing is recreated (tiny, which exited, is only
    // started again, as compose does).
    let (_, err) = s.ok(&["up", "-d"]);
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
    let (_, err) = s.ok(&["up", "-d", "--build"]);
    assert!(err.contains("CACHED") && !err.contains("recreate"), "{err}");

    // `berth build`: every step from the cache, no RUN runs, well under a second.
    let started = Instant::now();
    let (_, err) = s.ok(&["build", "--progress", "plain", "app"]);
    let took = started.elapsed();
    assert!(err.contains("CACHED"), "{err}");
    assert!(err.contains("5 of 5 steps cached"), "{err}");
    assert!(took < Duration::from_secs(2), "cached build took {took:?}");

    // up --build with a changed build arg rebuilds from the RUN that uses it and
    // recreates the container.
    let (_, err) = s.ok(&["build", "--build-arg", "WHO=everyone", "app"]);
    assert!(!err.contains("5 of 5 steps cached"), "{err}");
    let (_, err) = s.ok(&["up", "-d"]);
    assert!(
        err.contains("recreate") && err.contains("app-1"),
        "a new image recreates the container:\n{err}"
    );
    s.logs_until("app", "hello, everyone");
}

#[test]
fn build_refusals_name_the_line() {
    let s = Stack::new(&format!("bldr{}", std::process::id()));
    std::fs::create_dir_all(s.proj().join("bad")).unwrap();
    std::fs::write(
        s.proj().join("bad/Dockerfile"),
        "FROM busybox\n\nCOPY ../../etc/passwd /x\n",
    )
    .unwrap();
    std::fs::write(
        s.proj().join("compose.yaml"),
        "services:\n  bad:\n    build: ./bad\n  inline:\n    build:\n      context: .\n      dockerfile_inline: |\n        FROM busybox AS a\n        COPY --from=b /x /x\n",
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
    let (out, _) = s.ok(&["ps", "-a"]);
    assert!(!out.contains("bad"), "{out}");
}
