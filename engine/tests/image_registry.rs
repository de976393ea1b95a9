//! Pulls and pushes against a real `docker-registry` (Debian) started by each test on
//! 127.0.0.1, with the busybox test image pushed by skopeo or by Berth itself.

mod image_support;

use std::fs;
use std::process::Command;
use std::sync::Arc;

use berth_engine::image::registry::Quiet;
use berth_engine::image::{pull, push, ImageError, Images, RegistryOptions};
use berth_engine::rootfs;
use image_support::*;

fn opts() -> RegistryOptions {
    RegistryOptions::default()
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_by_tag_and_by_digest_and_a_second_pull_fetches_nothing() {
    let reg = Registry::start(None);
    let digest = skopeo_push_busybox(&reg.addr, "lab/busybox:latest", None);
    let root = TestRoot::new();
    let images = Images::open(root.path()).unwrap();

    let name = format!("{}/lab/busybox", reg.addr);
    let first = pull(&images, &name, &opts(), Arc::new(Quiet))
        .await
        .unwrap();
    assert_eq!(first.record.name, format!("{name}:latest"));
    assert_eq!(first.record.manifest.as_str(), digest);
    assert_eq!(
        first.fetched.len(),
        2,
        "config and one layer: {:?}",
        first.fetched
    );
    assert!(
        first.bytes > 500_000,
        "busybox layer is about 1 MB: {}",
        first.bytes
    );

    let r = rootfs::prepare(&images, &name, "pulled-1", &Default::default()).unwrap();
    let out = run(Command::new(r.path.join("bin/busybox")).args(["cat", "/proc/self/comm"]));
    assert_eq!(out.trim(), "busybox");
    assert_eq!(
        fs::read_to_string(r.path.join("var/www/index.html")).unwrap(),
        "hello from lab/busybox\n"
    );
    rootfs::remove(root.path(), "pulled-1").unwrap();

    let second = pull(&images, &name, &opts(), Arc::new(Quiet))
        .await
        .unwrap();
    assert!(second.fetched.is_empty(), "{:?}", second.fetched);
    assert_eq!(second.bytes, 0);

    let by_digest = pull(
        &images,
        &format!("{name}@{digest}"),
        &opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap();
    assert!(by_digest.fetched.is_empty());
    assert_eq!(by_digest.record.name, format!("{name}@{digest}"));
    assert_eq!(by_digest.record.manifest, first.record.manifest);
    let img = images.resolve(&format!("{name}@{digest}")).unwrap();
    assert_eq!(
        img.config.config.cmd.as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );

    // A digest the registry does not have is a clear error.
    let missing = format!("{name}@sha256:{}", "0".repeat(64));
    let err = pull(&images, &missing, &opts(), Arc::new(Quiet))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_blob_from_the_registry_is_refused_and_nothing_half_written_stays() {
    let reg = Registry::start(None);
    skopeo_push_busybox(&reg.addr, "lab/busybox:latest", None);
    // Flip one byte of the biggest blob in the registry's own storage.
    let blobs = reg.dir.path().join("data/docker/registry/v2/blobs/sha256");
    let mut biggest = None;
    for p in fs::read_dir(&blobs).unwrap().flatten() {
        for b in fs::read_dir(p.path()).unwrap().flatten() {
            let data = b.path().join("data");
            let len = fs::metadata(&data).unwrap().len();
            if biggest.as_ref().is_none_or(|(l, _)| len > *l) {
                biggest = Some((len, data));
            }
        }
    }
    let (_, data) = biggest.unwrap();
    let mut bytes = fs::read(&data).unwrap();
    let i = bytes.len() / 3;
    bytes[i] ^= 0x55;
    fs::write(&data, &bytes).unwrap();

    let root = TestRoot::new();
    let images = Images::open(root.path()).unwrap();
    let err = pull(
        &images,
        &format!("{}/lab/busybox", reg.addr),
        &opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    let layer_hex = data.parent().unwrap().file_name().unwrap().to_owned();
    assert!(!root
        .path()
        .join("image/blobs/sha256")
        .join(&layer_hex)
        .exists());
    let tmp: Vec<_> = fs::read_dir(root.path().join("image/tmp"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(tmp.is_empty(), "left behind: {tmp:?}");
    assert_eq!(files_under(&root.path().join("image/layers")), 0);
    assert!(images.store().list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_pull_resumes_where_it_stopped() {
    let reg = Registry::start(None);
    skopeo_push_busybox(&reg.addr, "lab/busybox:latest", None);
    let name = format!("{}/lab/busybox", reg.addr);
    // A first store pulls the image to learn its layer; a second one gets half of it
    // as a partial download, as a pull killed half-way leaves it.
    let full = TestRoot::new();
    let full_images = Images::open(full.path()).unwrap();
    pull(&full_images, &name, &opts(), Arc::new(Quiet))
        .await
        .unwrap();
    let img = full_images.resolve(&name).unwrap();
    let layer =
        berth_engine::image::manifest::descriptor_digest(&img.manifest.layers()[0]).unwrap();
    let bytes = fs::read(full_images.store().blob_path(&layer)).unwrap();

    let root = TestRoot::new();
    let images = Images::open(root.path()).unwrap();
    let half = bytes.len() / 2;
    fs::write(
        root.path()
            .join(format!("image/tmp/{}.partial", layer.hex())),
        &bytes[..half],
    )
    .unwrap();
    let rep = pull(&images, &name, &opts(), Arc::new(Quiet))
        .await
        .unwrap();
    let config_size = img.manifest.config().size();
    assert_eq!(
        rep.bytes,
        (bytes.len() - half) as u64 + config_size,
        "only the rest was fetched"
    );
    assert_eq!(fs::read(images.store().blob_path(&layer)).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_pulls_of_the_same_image_at_once_both_succeed_and_store_it_once() {
    let reg = Registry::start(None);
    skopeo_push_busybox(&reg.addr, "lab/busybox:latest", None);
    let name = format!("{}/lab/busybox", reg.addr);
    let root = TestRoot::new();
    let a = Images::open(root.path()).unwrap();
    let b = Images::open(root.path()).unwrap();
    let o = opts();
    let (ra, rb) = tokio::join!(
        pull(&a, &name, &o, Arc::new(Quiet)),
        pull(&b, &name, &o, Arc::new(Quiet))
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.record, rb.record);
    assert_eq!(
        ra.fetched.len() + rb.fetched.len(),
        2,
        "each blob fetched once: {ra:?} {rb:?}"
    );
    // manifest, config, layer: three blobs, one unpacked layer, one record.
    assert_eq!(files_under(&root.path().join("image/blobs/sha256")), 3);
    assert_eq!(files_under(&root.path().join("image/layers")), 1);
    assert_eq!(a.store().list().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_resolves_to_this_hosts_platform() {
    let reg = Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    let amd = busybox_layout(layout.path());
    // Add an arm64 image whose layer says so, and an index over both.
    let arm_layout = tempfile::tempdir().unwrap();
    let raw = layer(&[E::File("ARCH", 0o644, b"arm64")]);
    let arm = oci_layout(
        arm_layout.path(),
        &[(raw.clone(), raw)],
        "x",
        &["/bin/false"],
    );
    for e in fs::read_dir(arm_layout.path().join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        fs::copy(
            e.path(),
            layout.path().join("blobs/sha256").join(e.file_name()),
        )
        .unwrap();
    }
    let size = |d: &str| {
        fs::metadata(layout.path().join("blobs/sha256").join(&d[7..]))
            .unwrap()
            .len()
    };
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
          {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": size(&arm), "platform": {"os": "linux", "architecture": "arm64"}},
          {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": size(&amd), "platform": {"os": "linux", "architecture": "amd64"}}]}))
    .unwrap();
    let id = sha(&index);
    fs::write(layout.path().join("blobs/sha256").join(&id[7..]), &index).unwrap();
    fs::write(
        layout.path().join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": index.len(),
         "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
        .unwrap(),
    )
    .unwrap();
    // skopeo may re-serialize the index; what counts is what the registry serves.
    let served = skopeo_push_layout(layout.path(), "multi", &reg.addr, "lab/multi:1", None);

    let root = TestRoot::new();
    let images = Images::open(root.path()).unwrap();
    let rep = pull(
        &images,
        &format!("{}/lab/multi:1", reg.addr),
        &opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap();
    assert_eq!(
        rep.record.manifest.as_str(),
        amd,
        "amd64 chosen on this x86_64 host"
    );
    assert_eq!(
        rep.record.index.as_ref().map(|d| d.to_string()),
        Some(served)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth_pull_and_a_push_by_berth_that_pulls_back_identical() {
    let token = TokenServer::start("berth", "s3cret");
    let reg = Registry::start(Some(&token.registry_auth()));
    let digest = skopeo_push_busybox(&reg.addr, "lab/busybox:latest", Some("berth:s3cret"));
    let name = format!("{}/lab/busybox:latest", reg.addr);
    let root = TestRoot::new();
    let images = Images::open(root.path()).unwrap();

    // Anonymous and wrong credentials are refused with the registry's reason.
    let err = pull(&images, &name, &opts(), Arc::new(Quiet))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err}");
    let wrong = RegistryOptions {
        credentials: Some(("berth".into(), "nope".into())),
        ..opts()
    };
    let err = pull(&images, &name, &wrong, Arc::new(Quiet))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err}");

    // Credentials from a Docker-style config.json.
    let cfg = root.path().join("config.json");
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("berth:s3cret");
    fs::write(
        &cfg,
        serde_json::to_vec(&serde_json::json!({"auths": {reg.addr.clone(): {"auth": auth}}}))
            .unwrap(),
    )
    .unwrap();
    let good = RegistryOptions {
        auth_file: Some(cfg),
        ..opts()
    };
    let rep = pull(&images, &name, &good, Arc::new(Quiet)).await.unwrap();
    assert_eq!(rep.record.manifest.as_str(), digest);
    assert!(token.requests.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // Berth pushes it under a new name; every blob is new there except none.
    let dest = format!("{}/lab/copy:v1", reg.addr);
    let pushed = push(&images, &name, Some(&dest), &good, Arc::new(Quiet))
        .await
        .unwrap();
    assert_eq!(pushed.manifest.as_str(), digest);
    // The registry already had both blobs (same repository storage is per repo, so
    // they are sent once to lab/copy); a second push sends nothing.
    let again = push(&images, &name, Some(&dest), &good, Arc::new(Quiet))
        .await
        .unwrap();
    assert!(again.sent.is_empty(), "{again:?}");
    assert_eq!(again.skipped.len(), 2);

    // A fresh store pulls it back identical, and skopeo sees the same digest.
    let other = TestRoot::new();
    let other_images = Images::open(other.path()).unwrap();
    let back = pull(&other_images, &dest, &good, Arc::new(Quiet))
        .await
        .unwrap();
    assert_eq!(back.record.manifest.as_str(), digest);
    let raw = run(Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "berth:s3cret",
        ])
        .arg(format!("docker://{dest}")));
    assert_eq!(sha(raw.as_bytes()), digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_schema2_image_pulls_and_pushes_back_as_it_came() {
    let reg = Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    run(Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:latest", layout.path().display()))
        .arg(format!("docker://{}/lab/docker:v2", reg.addr)));
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/lab/docker:v2", reg.addr)));
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );

    let root = TestRoot::new();
    let images = Images::open(root.path()).unwrap();
    let rep = pull(
        &images,
        &format!("{}/lab/docker:v2", reg.addr),
        &opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap();
    assert_eq!(
        rep.record.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(rep.record.manifest.as_str(), sha(raw.as_bytes()));
    let r = rootfs::prepare(&images, &rep.record.name, "docker-1", &Default::default()).unwrap();
    assert!(r.path.join("bin/busybox").is_file());
    rootfs::remove(root.path(), "docker-1").unwrap();

    // Pushed back under another name, the registry serves the very same bytes.
    let dest = format!("{}/lab/docker-copy:v2", reg.addr);
    push(
        &images,
        &rep.record.name,
        Some(&dest),
        &opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap();
    let back = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{dest}")));
    assert_eq!(back, raw);
}
