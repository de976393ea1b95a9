//! The builder on the real kernel, as root: Dockerfiles under tests/fixtures built into
//! a temporary image store (busybox imported from Debian's busybox-static), RUN steps in
//! real containers through berth-runtime, then the image's layers and config checked.
//! Each test has its own BERTH_ROOT/BERTH_RUN and checks that no mount is left.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use berth_builder::view::View;
use berth_builder::{build, BuildError, BuildOptions, BuildReport, DockerfileSource, Quiet};
use berth_engine::image::{import, Images};

struct Env {
    dir: tempfile::TempDir,
    images: Images,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

impl Env {
    fn new() -> Env {
        let runtime = berth_builder::default_runtime();
        assert!(
            runtime.exists(),
            "build the workspace first: berth-runtime must be beside the test binaries ({})",
            runtime.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-build-")
            .tempdir()
            .unwrap();
        let tar = berth_tests::busybox_tar(dir.path()).unwrap();
        let images = Images::open(&dir.path().join("root")).unwrap();
        import::import_rootfs(images.store(), &tar, "busybox:latest").unwrap();
        Env { dir, images }
    }

    /// A copy of a fixture directory to build from (tests change files in it).
    fn context(&self, fixture: &str) -> PathBuf {
        let to = self.dir.path().join("ctx").join(fixture);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let st = Command::new("cp")
            .args([
                "-a",
                fixtures().join(fixture).to_str().unwrap(),
                to.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(st.success());
        to
    }

    fn options(&self, context: &Path, tag: &str) -> BuildOptions {
        let mut o = BuildOptions::new(context);
        o.tags = vec![tag.into()];
        o.run_root = self.dir.path().join("run");
        o
    }

    fn build(&self, o: &BuildOptions) -> BuildReport {
        build(&self.images, o, &Quiet).unwrap_or_else(|e| panic!("build failed: {e}"))
    }

    fn view(&self, name: &str) -> View {
        let img = self.images.resolve(name).unwrap();
        View::new(self.images.unpack(&img).unwrap())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        let left = mounts.contains(&root);
        if left && !std::thread::panicking() {
            panic!("a mount under {root} is left");
        }
    }
}

#[test]
fn multi_stage_args_env_dockerignore_and_deletion() {
    let env = Env::new();
    let ctx = env.context("multistage");
    let mut o = env.options(&ctx, "multi:1");
    o.build_args.insert("WHO".into(), "berth".into());
    let r = env.build(&o);
    // builder RUN + final RUN; the `unused` stage (RUN exit 1) is never built.
    assert_eq!(r.runs, 2, "{r:?}");
    let v = env.view("multi:1");
    assert_eq!(
        String::from_utf8(v.read("srv/greeting").unwrap()).unwrap(),
        "hello, berth\n"
    );
    assert!(v.read("srv/marker").is_some());
    assert!(
        v.lookup("var/www/index.html").is_none(),
        "a file deleted by RUN is gone"
    );
    assert!(v.lookup("var/www").is_some());
    assert!(v.read("app/kept.txt").is_some());
    assert!(
        v.lookup("app/secret.txt").is_none(),
        ".dockerignore honoured"
    );
    assert!(
        v.lookup("app/logs").is_none(),
        ".dockerignore honoured for a directory"
    );
    let (_, m) = v.lookup("data").unwrap();
    assert!(m.is_dir());
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&m),
        65534,
        "WORKDIR made for USER nobody"
    );
    let img = env.images.resolve("multi:1").unwrap();
    let c = &img.config.config;
    assert_eq!(c.user.as_deref(), Some("nobody"));
    assert_eq!(c.working_dir.as_deref(), Some("/data"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    let env_list = c.env.clone().unwrap();
    assert!(env_list.contains(&"GREETING_FILE=/srv/greeting".to_string()));
    assert!(
        !env_list.iter().any(|e| e.starts_with("WHO=")),
        "ARGs stay out of the image"
    );
    let ports = c.exposed_ports.clone().unwrap();
    assert!(ports.contains_key("8080/tcp") && ports.contains_key("9001/tcp"));
    let labels = c.labels.clone().unwrap();
    assert_eq!(labels["org.example.stage"], "final");
    assert_eq!(
        c.healthcheck.as_ref().unwrap().interval,
        Some(5_000_000_000)
    );
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    let env = Env::new();
    let ctx = env.context("multistage");
    let mut o = env.options(&ctx, "multi:builder");
    o.target = Some("builder".into());
    let r = env.build(&o);
    assert_eq!(r.runs, 1);
    let v = env.view("multi:builder");
    assert!(v.read("out/greeting").is_some());
    assert!(v.lookup("app").is_none());
    o.target = Some("nope".into());
    let e = build(&env.images, &o, &Quiet).unwrap_err();
    assert!(e.to_string().contains("target stage \"nope\""), "{e}");
}

#[test]
fn from_scratch_with_a_static_binary() {
    let env = Env::new();
    let ctx = env.context("scratch");
    std::fs::copy(berth_tests::BUSYBOX, ctx.join("busybox")).unwrap();
    let r = env.build(&env.options(&ctx, "tiny:1"));
    assert_eq!(r.runs, 0);
    let img = env.images.resolve("tiny:1").unwrap();
    assert_eq!(img.config.rootfs.diff_ids.len(), 1, "one layer: the COPY");
    assert_eq!(
        img.config.config.entrypoint.as_deref(),
        Some(&["/bin/busybox".to_string()][..])
    );
    let v = env.view("tiny:1");
    assert!(v.lookup("bin/busybox").is_some());
    assert!(v.lookup("bin/sh").is_none());
}

#[test]
fn second_build_runs_nothing_and_one_changed_file_reruns_only_what_follows() {
    let env = Env::new();
    let ctx = env.context("cache");
    let o = env.options(&ctx, "cached:1");
    let first = env.build(&o);
    assert_eq!((first.runs, first.cached, first.steps), (2, 0, 4));

    let started = Instant::now();
    let second = env.build(&o);
    let took = started.elapsed();
    assert_eq!((second.runs, second.cached), (0, 4), "{second:?}");
    assert_eq!(
        second.id, first.id,
        "an unchanged rebuild gives the same image"
    );
    assert!(took.as_secs_f64() < 1.0, "a cached rebuild took {took:?}");

    // b.txt is copied last: only its COPY is redone, no RUN.
    std::fs::write(ctx.join("b.txt"), "two, changed\n").unwrap();
    let third = env.build(&o);
    assert_eq!((third.runs, third.cached), (0, 3), "{third:?}");
    assert_ne!(third.id, first.id);

    // a.txt is copied second: its COPY and the RUN after it are redone, not the first RUN.
    std::fs::write(ctx.join("a.txt"), "one, changed\n").unwrap();
    let fourth = env.build(&o);
    assert_eq!((fourth.runs, fourth.cached), (1, 1), "{fourth:?}");
    let v = env.view("cached:1");
    assert_eq!(v.read("from-a").unwrap(), b"one, changed\n");

    // --no-cache runs everything again.
    let mut nc = o.clone();
    nc.no_cache = true;
    let fifth = env.build(&nc);
    assert_eq!((fifth.runs, fifth.cached), (2, 0));
}

fn refusal(env: &Env, ctx: &Path, file: &str) -> (usize, String) {
    let mut o = env.options(ctx, "refused:1");
    o.dockerfile = DockerfileSource::Path(file.into());
    match build(&env.images, &o, &Quiet) {
        Err(BuildError::Dockerfile {
            file: f,
            line,
            message,
        }) => {
            assert!(f.ends_with(file), "{f}");
            (line, message)
        }
        Err(e) => panic!("{file}: not a Dockerfile error: {e}"),
        Ok(r) => panic!("{file}: built {r:?}"),
    }
}

#[test]
fn refusals_name_the_dockerfile_line() {
    let env = Env::new();
    let ctx = env.context("refuse");
    std::fs::write(ctx.parent().unwrap().join("outside.txt"), "x").unwrap();
    let (line, msg) = refusal(&env, &ctx, "syntax.Dockerfile");
    assert_eq!(line, 3);
    assert!(msg.contains("unknown instruction COPPY"), "{msg}");
    let (line, msg) = refusal(&env, &ctx, "outside.Dockerfile");
    assert_eq!(line, 3);
    assert!(msg.contains("outside the build context"), "{msg}");
    let (line, msg) = refusal(&env, &ctx, "nostage.Dockerfile");
    assert_eq!(line, 4);
    assert!(msg.contains("no stage named \"nosuchstage\""), "{msg}");
    let (line, msg) = refusal(&env, &ctx, "runfails.Dockerfile");
    assert_eq!(line, 2);
    assert!(msg.contains("exited with code 3"), "{msg}");
    let (line, msg) = refusal(&env, &ctx, "user.Dockerfile");
    assert_eq!(line, 3);
    assert!(msg.contains("\"ghost\""), "{msg}");
    // Nothing was named.
    assert!(env.images.resolve("refused:1").is_err());
}

#[test]
fn inline_dockerfile_add_archive_chown_chmod_and_shell() {
    let env = Env::new();
    let ctx = env.dir.path().join("inline");
    std::fs::create_dir_all(ctx.join("tree/sub")).unwrap();
    std::fs::write(ctx.join("tree/sub/f.txt"), "in a tar\n").unwrap();
    let st = Command::new("tar")
        .args([
            "-C",
            ctx.join("tree").to_str().unwrap(),
            "-czf",
            ctx.join("t.tar.gz").to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(ctx.join("script.sh"), "echo hi\n").unwrap();
    let mut o = env.options(&ctx, "inline:1");
    o.dockerfile = DockerfileSource::Inline(
        "FROM busybox\nADD t.tar.gz /unpacked/\nCOPY --chown=nobody:nogroup --chmod=750 script.sh /opt/\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN test \"$(stat -c %u:%g:%a /opt/script.sh)\" = 65534:65534:750 \\\n && cat /unpacked/sub/f.txt > /copied\n".into(),
    );
    let r = env.build(&o);
    assert_eq!(r.runs, 1);
    let v = env.view("inline:1");
    assert_eq!(v.read("copied").unwrap(), b"in a tar\n");
}

#[test]
fn independent_stages_build_at_the_same_time() {
    let env = Env::new();
    let ctx = env.dir.path().join("parallel");
    std::fs::create_dir_all(&ctx).unwrap();
    // Each stage notes when its RUN started and ended (host uptime: /proc/uptime is not
    // namespaced). Built one after the other, the two intervals could not overlap.
    let stage = |name: &str| {
        format!("FROM busybox AS {name}\nRUN cut -d' ' -f1 /proc/uptime > /start && sleep 1 && cut -d' ' -f1 /proc/uptime > /end\n")
    };
    let mut o = env.options(&ctx, "parallel:1");
    o.dockerfile = DockerfileSource::Inline(format!(
        "{}{}FROM busybox\nCOPY --from=a /start /a.start\nCOPY --from=a /end /a.end\nCOPY --from=b /start /b.start\nCOPY --from=b /end /b.end\n",
        stage("a"),
        stage("b")
    ));
    let r = env.build(&o);
    assert_eq!(r.runs, 2);
    let v = env.view("parallel:1");
    let t = |f: &str| -> f64 {
        String::from_utf8(v.read(f).unwrap())
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (a0, a1, b0, b1) = (t("a.start"), t("a.end"), t("b.start"), t("b.end"));
    assert!(
        a0 < b1 && b0 < a1,
        "a ran {a0}..{a1}, b ran {b0}..{b1}: not at the same time"
    );
}
