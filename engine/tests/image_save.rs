//! `berth image save`: what Berth writes, skopeo (and Berth) read back unchanged.

mod image_support;

use std::process::Command;

use berth_engine::image::export::{save, Format};
use berth_engine::image::{import, Images};
use image_support::*;

fn busybox_store(root: &TestRoot) -> Images {
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    let images = Images::open(root.path()).unwrap();
    import::load_oci(
        images.store(),
        &format!("{}:latest", layout.path().display()),
        Some("lab/busybox:1.0"),
    )
    .unwrap();
    images
}

#[test]
fn a_docker_archive_saved_by_berth_loads_into_skopeo_unchanged() {
    let root = TestRoot::new();
    let images = busybox_store(&root);
    let img = images.resolve("lab/busybox:1.0").unwrap();
    let out = root.path().join("saved.tar");
    save(
        &images,
        &["lab/busybox:1.0".into()],
        &out,
        Format::DockerArchive,
    )
    .unwrap();

    // skopeo reads it and names it as docker would.
    let info = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", out.display())));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["RepoTags"], serde_json::json!([]), "{info}"); // skopeo lists registry tags only
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    let copied = root.path().join("copied");
    run(Command::new("skopeo")
        .arg("copy")
        .arg("--quiet")
        .arg(format!("docker-archive:{}", out.display()))
        .arg(format!("oci:{}:x", copied.display())));

    // Back into a fresh store: same config, same files.
    let other = TestRoot::new();
    let back = Images::open(other.path()).unwrap();
    import::load_oci(
        back.store(),
        &format!("{}:x", copied.display()),
        Some("back/busybox:x"),
    )
    .unwrap();
    let img2 = back.resolve("back/busybox:x").unwrap();
    // skopeo re-serializes the config when it converts to OCI (key order), so the
    // documents are compared, not their bytes.
    let json = |i: &Images, d| {
        serde_json::from_slice::<serde_json::Value>(&i.store().read_blob(d).unwrap()).unwrap()
    };
    assert_eq!(json(&back, img2.id()), json(&images, img.id()));
    let a = images.unpack(&img).unwrap();
    let b = back.unpack(&img2).unwrap();
    assert_eq!(tree(&a[0]), tree(&b[0]));

    // Berth loads its own archive too, under the name it was saved with.
    let third = TestRoot::new();
    let again = Images::open(third.path()).unwrap();
    let recs = import::load_archive(again.store(), &out, None).unwrap();
    assert_eq!(recs[0].name, "docker.io/lab/busybox:1.0");
    assert_eq!(again.resolve("lab/busybox:1.0").unwrap().id(), img.id());
}

#[test]
fn an_oci_archive_saved_by_berth_keeps_the_manifest_digest() {
    let root = TestRoot::new();
    let images = busybox_store(&root);
    let img = images.resolve("lab/busybox:1.0").unwrap();
    let out = root.path().join("saved-oci.tar");
    save(
        &images,
        &["lab/busybox:1.0".into()],
        &out,
        Format::OciArchive,
    )
    .unwrap();
    let raw = run(Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .arg(format!("oci-archive:{}:1.0", out.display())));
    assert_eq!(sha(raw.as_bytes()), img.record.manifest.as_str());

    let other = TestRoot::new();
    let back = Images::open(other.path()).unwrap();
    let recs = import::load_archive(back.store(), &out, None).unwrap();
    assert_eq!(recs[0].name, "docker.io/lab/busybox:1.0");
    assert_eq!(recs[0].manifest, img.record.manifest);
    // Nothing but the archive's target is left in the directory.
    let names: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.to_string_lossy().starts_with(".berth-save-")),
        "{names:?}"
    );
}

/// Where a Docker daemon answers, `docker load` reads what Berth saved and runs it.
/// (Skipped, saying so, on hosts without one.)
#[test]
fn a_docker_archive_saved_by_berth_loads_into_docker_where_a_daemon_runs() {
    let daemon = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !daemon {
        eprintln!("skipped: no Docker daemon answers on this host");
        return;
    }
    let root = TestRoot::new();
    let images = busybox_store(&root);
    // A name of this test's own, so the daemon's other images are left alone.
    let name = format!("berth-test/busybox:save-{}", std::process::id());
    images.tag("lab/busybox:1.0", &name).unwrap();
    let out = root.path().join("for-docker.tar");
    save(
        &images,
        std::slice::from_ref(&name),
        &out,
        Format::DockerArchive,
    )
    .unwrap();
    let loaded = run(Command::new("docker").arg("load").arg("-i").arg(&out));
    struct Rmi(String);
    impl Drop for Rmi {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
        }
    }
    let _rmi = Rmi(name.clone());
    assert!(
        loaded.contains(&format!("Loaded image: {name}")),
        "{loaded}"
    );
    let id = run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &name]));
    let img = images.resolve(&name).unwrap();
    assert_eq!(
        id.trim(),
        img.id().as_str(),
        "docker's image ID is Berth's config digest"
    );
}
