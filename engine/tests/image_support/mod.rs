//! Helpers shared by the image tests: a temporary BERTH_ROOT cleaned up by Drop (mounts
//! included), layer tarballs built entry by entry (PAX xattrs, whiteouts, hostile
//! paths), OCI layouts written by hand, the busybox image, and a real `docker-registry`
//! on 127.0.0.1 that a Drop guard stops.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

pub fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A temporary BERTH_ROOT; on drop, every mount under it is detached and it is removed.
pub struct TestRoot {
    pub dir: tempfile::TempDir,
}

impl TestRoot {
    pub fn new() -> TestRoot {
        let dir = tempfile::Builder::new()
            .prefix("berth-img-")
            .tempdir_in("/var/tmp")
            .unwrap();
        TestRoot { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        let root = self.dir.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mine: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
            .collect();
        mine.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mine {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// One entry of a layer built by hand.
pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    /// path, mode, uid, gid, content, xattrs
    FileX(&'a str, u32, u64, u64, &'a [u8], Vec<(&'a str, &'a [u8])>),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Fifo(&'a str),
    /// A raw name written as-is (no `..` check), for hostile layers.
    RawFile(&'a [u8], &'a [u8]),
    RawHard(&'a str, &'a [u8]),
}

fn set_raw_name(h: &mut tar::Header, name: &[u8]) {
    let b = h.as_mut_bytes();
    b[..100].fill(0);
    b[..name.len()].copy_from_slice(name);
}

fn pax(b: &mut tar::Builder<Vec<u8>>, recs: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (k, v) in recs {
        let body_len = 1 + k.len() + 1 + v.len() + 1;
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeaders/x").unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
}

/// Builds an uncompressed layer tarball.
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_path(p).unwrap();
                h.set_mode(*m);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::File(p, m, c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_path(p).unwrap();
                h.set_mode(*m);
                h.set_size(c.len() as u64);
                h.set_cksum();
                b.append(&h, *c).unwrap();
            }
            E::FileX(p, m, u, g, c, x) => {
                let recs: Vec<(String, &[u8])> = x
                    .iter()
                    .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                    .collect();
                let recs: Vec<(&str, &[u8])> = recs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                pax(&mut b, &recs);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_path(p).unwrap();
                h.set_mode(*m);
                h.set_uid(*u);
                h.set_gid(*g);
                h.set_size(c.len() as u64);
                h.set_cksum();
                b.append(&h, *c).unwrap();
            }
            E::Sym(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_path(p).unwrap();
                h.set_link_name_literal(t).unwrap();
                h.set_mode(0o777);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Hard(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_path(p).unwrap();
                h.set_link_name_literal(t).unwrap();
                h.set_mode(0o644);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Fifo(p) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_path(p).unwrap();
                h.set_mode(0o600);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::RawFile(p, c) => {
                h.set_entry_type(tar::EntryType::Regular);
                set_raw_name(&mut h, p);
                h.set_mode(0o644);
                h.set_size(c.len() as u64);
                h.set_cksum();
                b.append(&h, *c).unwrap();
            }
            E::RawHard(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_path(p).unwrap();
                let bytes = h.as_mut_bytes();
                bytes[157..257].fill(0);
                bytes[157..157 + t.len()].copy_from_slice(t);
                h.set_mode(0o644);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

/// Tars a directory (symlinks kept as symlinks), as `docker export` would.
pub fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

/// The busybox root filesystem of the project's peers' recipe (02-make-image.sh §1).
pub fn busybox_rootfs(dir: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev", "root",
        "var/www", "run",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .unwrap();
    for p in String::from_utf8_lossy(&list.stdout).lines() {
        if p == "bin/busybox" || p.is_empty() {
            continue;
        }
        let _ = std::os::unix::fs::symlink("/bin/busybox", dir.join(p));
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(dir.join("var/www/index.html"), "hello from lab/busybox\n").unwrap();
}

/// Writes an OCI image layout with one image of `layers` (blobs as given, compressed
/// or not; `diff_ids` their uncompressed digests), tagged `tag`.
pub fn oci_layout(dir: &Path, layers: &[(Vec<u8>, Vec<u8>)], tag: &str, cmd: &[&str]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        std::fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let mut ls = Vec::new();
    let mut diff_ids = Vec::new();
    for (blob, raw) in layers {
        let mt = if blob.starts_with(&[0x1f, 0x8b]) {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        ls.push(serde_json::json!({"mediaType": mt, "digest": put(blob), "size": blob.len()}));
        diff_ids.push(sha(raw));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": cmd, "WorkingDir": "/",
                   "Labels": {"org.example": "berth-test"}, "StopSignal": "SIGTERM",
                   "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": ls,
    }))
    .unwrap();
    let md = put(&manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
             "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
        .unwrap(),
    )
    .unwrap();
    md
}

/// The busybox image as an OCI layout (one gzip layer); returns the manifest digest.
pub fn busybox_layout(dir: &Path) -> String {
    let rootfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rootfs.path());
    let raw = tar_dir(rootfs.path());
    oci_layout(dir, &[(gzip(&raw), raw)], "latest", &["/bin/sh"])
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real `docker-registry` on 127.0.0.1 with its own storage; stopped and removed on drop.
pub struct Registry {
    pub addr: String,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// `auth` is extra YAML for the `auth:` section (indented two spaces), if any.
    pub fn start(auth: Option<&str>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-reg-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{}",
            dir.path().join("data").display(),
            auth.map(|a| format!("auth:\n{a}")).unwrap_or_default()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry) must be installed");
        let reg = Registry {
            addr: addr.clone(),
            child,
            dir,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "registry did not start: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lists a tree as lines a user could diff: path, type, mode, owner, size, content hash,
/// link target and the xattrs that matter (user.*, security.capability).
pub fn tree(root: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut es: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        es.sort_by_key(|e| e.file_name());
        for e in es {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let kind = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("link->{}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                format!(
                    "file {} {}",
                    m.len(),
                    &sha(&std::fs::read(&p).unwrap())[7..19]
                )
            } else if ft.is_fifo() {
                "fifo".into()
            } else if ft.is_char_device() {
                format!("chr {}", m.rdev())
            } else {
                "other".into()
            };
            let mode = if ft.is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            };
            let mut x = Vec::new();
            for name in ["user.berth", "security.capability"] {
                if let Some(v) = xattr_get(&p, name) {
                    x.push(format!("{name}={}", hex::encode(v)));
                }
            }
            out.push(format!(
                "{rel} {kind} {mode:o} {}:{} {}",
                m.uid(),
                m.gid(),
                x.join(",")
            ));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

fn xattr_get(p: &Path, name: &str) -> Option<Vec<u8>> {
    berth_engine::image::unpack::get_xattr(p, name)
}

pub fn files_under(p: &Path) -> usize {
    std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0)
}

pub fn path_of(p: &Path, rel: &str) -> PathBuf {
    p.join(rel)
}
