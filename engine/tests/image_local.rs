//! Images without a network: imports, layer unpacking against umoci, refusals, the
//! overlay root filesystem, removal and prune. Run as root (overlay mounts, mknod,
//! trusted xattrs), one process per test (cargo nextest).

mod image_support;

use std::fs;
use std::path::Path;
use std::process::Command;

use berth_engine::image::{import, ImageError, Images};
use berth_engine::rootfs;
use image_support::*;

/// Layers that exercise every rule: whiteouts, opaque directories, hard links,
/// symlinks (absolute too), a fifo, owners, set-id modes, xattrs and a file capability.
fn whiteout_layers() -> Vec<Vec<u8>> {
    // security.capability v2 for cap_net_bind_service (bit 10), effective.
    let cap: &[u8] = &[0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let l1 = layer(&[
        E::Dir("a", 0o755),
        E::File("a/x", 0o644, b"x1"),
        E::File("a/y", 0o600, b"y1"),
        E::Dir("b", 0o750),
        E::File("b/old", 0o644, b"old"),
        E::Dir("b/sub", 0o755),
        E::File("b/sub/deep", 0o644, b"deep"),
        E::Dir("c", 0o755),
        E::File("c/keep", 0o644, b"keep"),
        E::FileX(
            "bin/ping",
            0o4755,
            0,
            0,
            b"ELF-ish",
            vec![("security.capability", cap)],
        ),
        E::FileX(
            "home/u/f",
            0o640,
            1000,
            1001,
            b"owned",
            vec![("user.berth", b"hello")],
        ),
        E::Hard("home/u/f2", "home/u/f"),
        E::Sym("etc/abs", "/etc/passwd"),
        E::Sym("etc/rel", "../a/x"),
        E::Fifo("run/fifo"),
        E::File("gone", 0o644, b"bye"),
    ]);
    let l2 = layer(&[
        E::File("a/.wh.x", 0o644, b""),
        E::Dir("b", 0o755),
        E::File("b/.wh..wh..opq", 0o644, b""),
        E::File("b/new", 0o644, b"new"),
        E::File("c/added", 0o644, b"added"),
        E::File(".wh.gone", 0o644, b""),
    ]);
    let l3 = layer(&[
        E::File(".wh.c", 0o644, b""),
        E::Dir("a/x", 0o711),
        E::File("a/x/inside", 0o644, b"now a dir"),
        E::File("a/y", 0o644, b"y3"),
    ]);
    vec![l1, l2, l3]
}

fn load_layers(
    root: &TestRoot,
    layers: Vec<(Vec<u8>, Vec<u8>)>,
    name: &str,
) -> (Images, tempfile::TempDir) {
    let layout = tempfile::tempdir().unwrap();
    oci_layout(layout.path(), &layers, "v1", &["/bin/sh"]);
    let images = Images::open(root.path()).unwrap();
    import::load_oci(
        images.store(),
        &format!("{}:v1", layout.path().display()),
        Some(name),
    )
    .unwrap();
    (images, layout)
}

#[test]
fn whiteouts_and_opaque_dirs_unpack_to_the_tree_umoci_makes() {
    let root = TestRoot::new();
    let raws = whiteout_layers();
    // gzip and plain layers in one image (Debian's umoci reads no zstd; zstd is
    // checked in a_rootfs_tarball_imports_as_a_one_layer_image)
    let layers = vec![
        (gzip(&raws[0]), raws[0].clone()),
        (gzip(&raws[1]), raws[1].clone()),
        (raws[2].clone(), raws[2].clone()),
    ];
    let (images, layout) = load_layers(&root, layers, "localhost/wh:v1");

    // umoci, the reference unpacker, flattens the same layout.
    let bundle = root.path().join("umoci-bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:v1", layout.path().display()))
        .arg(&bundle));
    let expected = tree(&bundle.join("rootfs"));
    let has = |prefix: &str, needle: &str| {
        expected
            .iter()
            .any(|l| l.starts_with(prefix) && l.contains(needle))
    };
    assert!(
        has("bin/ping ", "security.capability=") && has("bin/ping ", " 4755 "),
        "{expected:#?}"
    );
    assert!(
        has("home/u/f ", "1000:1001 user.berth=68656c6c6f"),
        "{expected:#?}"
    );
    assert!(
        has("etc/abs ", "link->/etc/passwd") && has("run/fifo ", "fifo"),
        "{expected:#?}"
    );

    let fs_overlay =
        rootfs::prepare(&images, "localhost/wh:v1", "c-overlay", &Default::default()).unwrap();
    assert_eq!(fs_overlay.mode, rootfs::Mode::Overlay);
    let got = tree(&fs_overlay.path);
    assert_eq!(got, expected, "overlay view differs from umoci's rootfs");

    let fs_copy = rootfs::prepare(
        &images,
        "localhost/wh:v1",
        "c-copy",
        &rootfs::Options {
            copy: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fs_copy.mode, rootfs::Mode::Copy);
    assert_eq!(
        tree(&fs_copy.path),
        expected,
        "copied rootfs differs from umoci's rootfs"
    );

    // The facts a user would check, spelt out.
    let m = &fs_overlay.path;
    assert!(!m.join("gone").exists());
    assert!(!m.join("c").exists());
    assert!(!m.join("b/old").exists() && !m.join("b/sub").exists());
    assert_eq!(fs::read(m.join("b/new")).unwrap(), b"new");
    assert_eq!(fs::read(m.join("a/x/inside")).unwrap(), b"now a dir");
    rootfs::remove(root.path(), "c-overlay").unwrap();
    rootfs::remove(root.path(), "c-copy").unwrap();
    assert!(!root.path().join("rootfs/c-overlay").exists());
}

#[test]
fn overlay_rootfs_writes_land_in_the_upper_layer_only() {
    let root = TestRoot::new();
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    let images = Images::open(root.path()).unwrap();
    let recs = import::load_oci(
        images.store(),
        &format!("{}:latest", layout.path().display()),
        Some("lab/busybox:latest"),
    )
    .unwrap();
    assert_eq!(recs[0].name, "docker.io/lab/busybox:latest");

    let img = images.resolve("lab/busybox").unwrap();
    assert_eq!(
        img.config.config.cmd.as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );
    assert_eq!(img.config.config.working_dir.as_deref(), Some("/"));
    assert_eq!(img.config.config.stop_signal.as_deref(), Some("SIGTERM"));

    let r = rootfs::prepare(&images, "lab/busybox", "web-1", &Default::default()).unwrap();
    assert!(rootfs::is_mountpoint(&r.path));
    // The busybox in the rootfs runs.
    let out = run(Command::new(r.path.join("bin/busybox"))
        .arg("echo")
        .arg("ok"));
    assert_eq!(out.trim(), "ok");
    fs::write(r.path.join("etc/written"), b"mine").unwrap();
    fs::remove_file(r.path.join("var/www/index.html")).unwrap();
    let upper = r.upper.clone().unwrap();
    assert_eq!(fs::read(upper.join("etc/written")).unwrap(), b"mine");
    // The image's layer is untouched: the file is still there, the new one is not.
    let layer = images.store().layer_path(&img.config.rootfs.diff_ids[0]);
    assert!(layer.join("var/www/index.html").is_file());
    assert!(!layer.join("etc/written").exists());
    // A second container from the same image does not see the first one's writes.
    let r2 = rootfs::prepare(&images, "lab/busybox", "web-2", &Default::default()).unwrap();
    assert!(!r2.path.join("etc/written").exists());
    assert!(r2.path.join("var/www/index.html").is_file());

    // The image is in use: rm refuses; after the containers go, it is removed.
    let err = images.remove("lab/busybox", false).unwrap_err();
    assert!(matches!(err, ImageError::InUse { .. }), "{err}");
    rootfs::remove(root.path(), "web-1").unwrap();
    rootfs::remove(root.path(), "web-2").unwrap();
    assert!(!rootfs::is_mountpoint(&r.path));
    images.remove("lab/busybox", false).unwrap();
}

#[test]
fn entries_escaping_their_layer_are_refused_and_nothing_stays() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    let evil_sym = outside.path().display().to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dot-dot", layer(&[E::RawFile(b"a/../../escaped", b"x")])),
        (
            "dot-dot at start",
            layer(&[E::RawFile(b"../escaped", b"x")]),
        ),
        (
            "write through a symlink",
            layer(&[
                E::Sym("link", &evil_sym),
                E::File("link/victim", 0o644, b"pwned"),
            ]),
        ),
        (
            "write through an absolute symlink to /",
            layer(&[
                E::Sym("root", "/"),
                E::File("root/tmp/berth-escape-test", 0o644, b"pwned"),
            ]),
        ),
        (
            "hard link out of the layer",
            layer(&[E::RawHard("h", b"../../../etc/passwd")]),
        ),
        (
            "hard link to a file not in the layer",
            layer(&[E::RawHard("h", b"/etc/passwd")]),
        ),
    ];
    for (what, raw) in cases {
        let root = TestRoot::new();
        let layout = tempfile::tempdir().unwrap();
        oci_layout(layout.path(), &[(raw.clone(), raw)], "v1", &[]);
        let images = Images::open(root.path()).unwrap();
        import::load_oci(
            images.store(),
            &format!("{}:v1", layout.path().display()),
            Some("localhost/evil:v1"),
        )
        .unwrap();
        let img = images.resolve("localhost/evil:v1").unwrap();
        let err = images.unpack(&img).unwrap_err();
        assert!(
            matches!(err, ImageError::UnsafeEntry { .. }),
            "{what}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("refused"), "{what}: {msg}");
        assert!(!victim.exists(), "{what}: wrote outside the layer");
        assert!(!Path::new("/tmp/berth-escape-test").exists(), "{what}");
        // No half-unpacked layer, no temp dir left behind.
        assert_eq!(files_under(&root.path().join("image/layers")), 0, "{what}");
        let leftovers: Vec<_> = fs::read_dir(root.path().join("image/tmp"))
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".lock"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
    }
}

#[test]
fn a_corrupted_blob_is_refused_and_nothing_half_written_stays() {
    let root = TestRoot::new();
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    // Flip a byte in the layer blob (the largest file), keeping its name.
    let blobs = layout.path().join("blobs/sha256");
    let biggest = fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = fs::read(&biggest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&biggest, &bytes).unwrap();
    let images = Images::open(root.path()).unwrap();
    let err = import::load_oci(
        images.store(),
        &format!("{}:latest", layout.path().display()),
        Some("x/y:z"),
    )
    .unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("corrupted"), "{err}");
    let stored: Vec<_> = fs::read_dir(root.path().join("image/blobs/sha256"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        stored
            .iter()
            .all(|e| e.file_name().to_string_lossy()
                != biggest.file_name().unwrap().to_string_lossy()),
        "the corrupted blob was stored"
    );
    assert_eq!(files_under(&root.path().join("image/tmp")), 0);
    assert!(
        images.store().list().unwrap().is_empty(),
        "no image record for a failed load"
    );
}

#[test]
fn docker_archive_from_skopeo_loads_and_runs() {
    let root = TestRoot::new();
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    let archive = root.path().join("bb.tar");
    run(Command::new("skopeo")
        .arg("copy")
        .arg("--quiet")
        .arg(format!("oci:{}:latest", layout.path().display()))
        .arg(format!(
            "docker-archive:{}:lab/busybox:1.0",
            archive.display()
        )));
    let images = Images::open(root.path()).unwrap();
    let recs = import::load_docker_archive(images.store(), &archive).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].name, "docker.io/lab/busybox:1.0");
    let r = rootfs::prepare(&images, "lab/busybox:1.0", "arch-1", &Default::default()).unwrap();
    assert_eq!(
        fs::read_to_string(r.path.join("var/www/index.html")).unwrap(),
        "hello from lab/busybox\n"
    );
    rootfs::remove(root.path(), "arch-1").unwrap();
}

#[test]
fn a_rootfs_tarball_imports_as_a_one_layer_image() {
    let root = TestRoot::new();
    let rfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rfs.path());
    let tarball = root.path().join("rootfs.tar.gz");
    fs::write(&tarball, gzip(&tar_dir(rfs.path()))).unwrap();
    let images = Images::open(root.path()).unwrap();
    let rec = import::import_rootfs(images.store(), &tarball, "my/rootfs:1").unwrap();
    assert_eq!(rec.name, "docker.io/my/rootfs:1");
    let img = images.resolve("my/rootfs:1").unwrap();
    assert_eq!(img.config.rootfs.diff_ids.len(), 1);
    let dirs = images.unpack(&img).unwrap();
    assert!(dirs[0].join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(dirs[0].join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );

    // The same tree compressed with zstd is the same layer (same diff_id): unpacked once.
    let zst = root.path().join("rootfs.tar.zst");
    fs::write(&zst, zstd(&tar_dir(rfs.path()))).unwrap();
    let rec2 = import::import_rootfs(images.store(), &zst, "my/rootfs:zstd").unwrap();
    let img2 = images.resolve(&rec2.name).unwrap();
    assert_eq!(img2.config.rootfs.diff_ids, img.config.rootfs.diff_ids);
    assert_ne!(
        img2.manifest.layers()[0].digest(),
        img.manifest.layers()[0].digest()
    );
    assert_eq!(images.unpack(&img2).unwrap(), dirs);
}

#[test]
fn prune_frees_every_unreferenced_byte() {
    let root = TestRoot::new();
    let raws = whiteout_layers();
    let (images, _l1) = load_layers(
        &root,
        raws.iter().map(|r| (gzip(r), r.clone())).collect(),
        "localhost/wh:v1",
    );
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    import::load_oci(
        images.store(),
        &format!("{}:latest", layout.path().display()),
        Some("lab/busybox"),
    )
    .unwrap();
    let bb = images.resolve("lab/busybox").unwrap();
    images
        .unpack(&images.resolve("localhost/wh:v1").unwrap())
        .unwrap();
    images.unpack(&bb).unwrap();
    // Junk a crash could leave: a stray temp file.
    fs::write(root.path().join("image/tmp/.tmpcrash"), vec![0u8; 4096]).unwrap();

    let used_before = du(&root.path().join("image"));
    // Nothing referenced goes.
    images.remove("localhost/wh:v1", false).unwrap();
    let report = images.prune().unwrap();
    assert!(
        report.bytes > 4096 && report.layers == 3 && report.blobs == 5,
        "{report:?}"
    );
    // busybox still loads and unpacks without refetching anything.
    let bb2 = images.resolve("lab/busybox").unwrap();
    assert!(images.store().has_layer(&bb2.config.rootfs.diff_ids[0]));
    assert_eq!(files_under(&root.path().join("image/blobs/sha256")), 3);

    // A container's rootfs keeps its layers even after its image's name is gone.
    rootfs::prepare(&images, "lab/busybox", "keeper", &Default::default()).unwrap();
    images.remove("lab/busybox", true).unwrap();
    images.prune().unwrap();
    assert!(images.store().has_layer(&bb2.config.rootfs.diff_ids[0]));
    rootfs::remove(root.path(), "keeper").unwrap();
    let report = images.prune().unwrap();
    assert_eq!(report.layers, 1);
    assert_eq!(files_under(&root.path().join("image/blobs/sha256")), 0);
    assert_eq!(files_under(&root.path().join("image/layers")), 0);
    assert_eq!(
        files_under(&root.path().join("image/tmp")),
        0,
        "lock files are collected too"
    );
    let left = du(&root.path().join("image"));
    assert!(left < 4096, "{left} bytes left of {used_before}");
}

fn du(p: &Path) -> u64 {
    berth_engine::image::images::du(p)
}
