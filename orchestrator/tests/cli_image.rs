//! The image verbs as a user runs them: `berth pull`, `berth images` and
//! `berth image …`, against a real docker-registry on 127.0.0.1 and a temporary
//! BERTH_ROOT.

#[path = "../../engine/tests/image_support/mod.rs"]
mod image_support;

use std::path::Path;
use std::process::{Command, Output};

use image_support::*;

fn berth(dir: &Path, root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env("BERTH_ROOT", root)
        .env_remove("BERTH_PROJECT_NAME")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn pull_images_save_rm_prune_load_push_as_a_user_runs_them() {
    let reg = Registry::start(None);
    let digest = skopeo_push_busybox(&reg.addr, "lab/busybox:latest", None);
    let root = TestRoot::new();
    let store = root.path().join("berth");
    let proj = root.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let image = format!("{}/lab/busybox:latest", reg.addr);
    std::fs::write(
        proj.join("compose.yaml"),
        format!("services:\n  web:\n    image: {image}\n  worker:\n    image: {image}\n  app:\n    build: .\n"),
    )
    .unwrap();

    let out = ok(&berth(&proj, &store, &["pull"]));
    assert!(out.contains("pull complete"), "{out}");
    assert!(out.contains(&digest), "{out}");
    let again = ok(&berth(&proj, &store, &["pull", "web"]));
    assert!(again.contains("0 fetched"), "{again}");

    let listed = ok(&berth(&proj, &store, &["images"]));
    assert!(
        listed.contains(&format!("{}/lab/busybox", reg.addr)) && listed.contains("latest"),
        "{listed}"
    );
    let ls = ok(&berth(&proj, &store, &["image", "ls", "--digests"]));
    assert!(ls.contains(&digest), "{ls}");

    let inspect = ok(&berth(&proj, &store, &["image", "inspect", &image]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(v[0]["ManifestDigest"], serde_json::json!(digest));

    ok(&berth(
        &proj,
        &store,
        &["image", "tag", &image, "mine/bb:2"],
    ));
    let saved = root.path().join("bb.tar");
    ok(&berth(
        &proj,
        &store,
        &["image", "save", "-o", saved.to_str().unwrap(), "mine/bb:2"],
    ));
    assert!(saved.metadata().unwrap().len() > 500_000);

    ok(&berth(&proj, &store, &["image", "rm", &image, "mine/bb:2"]));
    let empty = ok(&berth(&proj, &store, &["image", "ls", "-q"]));
    assert!(empty.trim().is_empty(), "{empty}");
    let pruned = ok(&berth(&proj, &store, &["image", "prune"]));
    assert!(
        pruned.contains("Deleted 3 blob(s) and 1 unpacked layer(s)"),
        "{pruned}"
    );

    let loaded = ok(&berth(
        &proj,
        &store,
        &["image", "load", "-i", saved.to_str().unwrap()],
    ));
    assert!(
        loaded.contains("Loaded image: docker.io/mine/bb:2"),
        "{loaded}"
    );
    let pushed = ok(&berth(
        &proj,
        &store,
        &[
            "image",
            "push",
            "mine/bb:2",
            &format!("{}/lab/again:1", reg.addr),
        ],
    ));
    assert!(pushed.contains("digest: sha256:"), "{pushed}");

    let bad = berth(&proj, &store, &["image", "inspect", "nope:1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no image docker.io/library/nope:1"),
        "{bad:?}"
    );
}

#[test]
fn two_berth_processes_pulling_the_same_image_at_once_both_succeed_and_store_it_once() {
    let reg = Registry::start(None);
    skopeo_push_busybox(&reg.addr, "lab/busybox:latest", None);
    let root = TestRoot::new();
    let store = root.path().join("berth");
    let image = format!("{}/lab/busybox:latest", reg.addr);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["image", "pull", &image])
            .env("BERTH_ROOT", &store)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (oa, ob) = (ok(&a), ok(&b));
    // Each blob came down once: the fetched counts of the two add up to two blobs.
    let fetched = |o: &str| -> usize {
        let i = o.find(" fetched, ").unwrap_or_else(|| panic!("{o}"));
        let start = o[..i].rfind('(').unwrap() + 1;
        o[start..i].parse().unwrap()
    };
    assert_eq!(fetched(&oa) + fetched(&ob), 2, "{oa}\n{ob}");
    assert_eq!(files_under(&store.join("image/blobs/sha256")), 3);
    assert_eq!(files_under(&store.join("image/layers")), 1);
    let ls = ok(&berth(root.path(), &store, &["image", "ls", "-q"]));
    assert_eq!(ls.lines().count(), 1, "{ls}");
}

#[test]
fn a_pull_killed_half_way_resumes_where_it_stopped() {
    use std::os::unix::process::ExitStatusExt;
    let reg = Registry::start(None);
    // One 48 MB layer of incompressible bytes, so the download takes a while.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut data = Vec::with_capacity(48 << 20);
    while data.len() < 48 << 20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        data.extend_from_slice(&seed.to_le_bytes());
    }
    let raw = layer(&[E::File("big", 0o644, &data)]);
    drop(data);
    let layout = tempfile::tempdir().unwrap();
    oci_layout(
        layout.path(),
        &[(raw.clone(), raw.clone())],
        "big",
        &["/big"],
    );
    skopeo_push_layout(layout.path(), "big", &reg.addr, "lab/big:1", None);
    let image = format!("{}/lab/big:1", reg.addr);
    let root = TestRoot::new();
    let store = root.path().join("berth");
    // skopeo compresses the layer on the way to the registry: ask it which blob it is.
    let served = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{image}")));
    let manifest: serde_json::Value = serde_json::from_str(&served).unwrap();
    let blob = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob_size = manifest["layers"][0]["size"].as_u64().unwrap();
    let partial = store.join(format!("image/tmp/{}.partial", &blob[7..]));

    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["image", "pull", "-q", &image])
        .env("BERTH_ROOT", &store)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let mut killed_at = 0;
    while start.elapsed() < std::time::Duration::from_secs(60) {
        let len = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if len > (4 << 20) {
            child.kill().unwrap();
            killed_at = len;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the pull was not caught half-way ({status:?} after {:?}; {:?})",
        start.elapsed(),
        std::fs::read_dir(store.join("image/tmp"))
            .map(|r| r.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(
        kept >= killed_at && kept < blob_size,
        "{kept} of {blob_size}"
    );

    // The next pull fetches only what is missing, and the blob is whole and verified.
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config_size = manifest["config"]["size"].as_u64().unwrap();
    let config_left = if store
        .join("image/blobs/sha256")
        .join(&config_digest[7..])
        .exists()
    {
        0
    } else {
        config_size
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let images = berth_engine::image::Images::open(&store).unwrap();
    let rep = rt
        .block_on(berth_engine::image::pull(
            &images,
            &image,
            &Default::default(),
            std::sync::Arc::new(berth_engine::image::registry::Quiet),
        ))
        .unwrap();
    assert_eq!(
        rep.bytes,
        blob_size - kept + config_left,
        "resumed at byte {kept}"
    );
    assert!(!partial.exists());
    let img = images.resolve(&image).unwrap();
    let dirs = images.unpack(&img).unwrap();
    assert_eq!(
        std::fs::metadata(dirs[0].join("big")).unwrap().len(),
        48 << 20
    );
}
