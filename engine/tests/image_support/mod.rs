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
        let mut cmd = Command::new("/usr/bin/docker-registry");
        // If the test process is killed (a timeout), the registry dies with it.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
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

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token service on 127.0.0.1 of the kind Docker Hub runs: it answers `GET /token`
/// with a JWT (RS256, signed by a throw-away certificate the registry trusts) when the
/// request carries the right basic credentials, and 401 otherwise.
pub struct TokenServer {
    pub realm: String,
    pub cert: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    addr: String,
    _dir: tempfile::TempDir,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

pub const TOKEN_SERVICE: &str = "berth-test-registry";
pub const TOKEN_ISSUER: &str = "berth-test-issuer";

impl TokenServer {
    pub fn start(user: &str, password: &str) -> TokenServer {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=berth-test-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&der)]});
        let claims = serde_json::json!({"iss": TOKEN_ISSUER, "sub": user, "aud": TOKEN_SERVICE,
            "exp": now + 3600, "nbf": now - 60, "iat": now, "jti": "berth-test",
            "access": [{"type": "repository", "name": "*", "actions": ["pull", "push"]},
                       {"type": "repository", "name": "lab/busybox", "actions": ["pull", "push"]},
                       {"type": "repository", "name": "lab/copy", "actions": ["pull", "push"]}]});
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let input = dir.path().join("input");
        std::fs::write(&input, &signing_input).unwrap();
        let sig = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key)
            .arg(&input)
            .output()
            .unwrap();
        assert!(sig.status.success());
        let jwt = format!("{signing_input}.{}", b64url(&sig.stdout));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop2, req2) = (stop.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                req2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match std::io::Read::read(&mut s, &mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf);
                let authorized = text.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == expected
                    })
                });
                let (status, body) = if authorized {
                    (
                        "200 OK",
                        serde_json::json!({"token": jwt, "access_token": jwt, "expires_in": 3600})
                            .to_string(),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#
                            .to_string(),
                    )
                };
                let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        TokenServer {
            realm: format!("http://{addr}/token"),
            cert,
            stop,
            addr,
            _dir: dir,
            requests,
        }
    }

    /// The registry's `auth:` section for this service.
    pub fn registry_auth(&self) -> String {
        format!(
            "  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            self.realm,
            self.cert.display()
        )
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

/// Pushes the busybox image to `registry` as `repo:tag` with skopeo; returns the
/// manifest digest the registry serves.
pub fn skopeo_push_busybox(registry: &str, repo: &str, creds: Option<&str>) -> String {
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    skopeo_push_layout(layout.path(), "latest", registry, repo, creds)
}

pub fn skopeo_push_layout(
    layout: &Path,
    tag: &str,
    registry: &str,
    repo: &str,
    creds: Option<&str>,
) -> String {
    let mut c = Command::new("skopeo");
    c.args(["copy", "--quiet", "--all", "--dest-tls-verify=false"]);
    if let Some(cr) = creds {
        c.arg("--dest-creds").arg(cr);
    }
    c.arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{registry}/{repo}"));
    run(&mut c);
    let mut i = Command::new("skopeo");
    i.args(["inspect", "--tls-verify=false", "--raw"]);
    if let Some(cr) = creds {
        i.arg("--creds").arg(cr);
    }
    let raw = run(i.arg(format!("docker://{registry}/{repo}")));
    sha(raw.as_bytes())
}
