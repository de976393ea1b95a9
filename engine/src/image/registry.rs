//! Pull and push over the OCI distribution spec, with `oci-client` doing HTTP, the
//! `WWW-Authenticate` bearer-token dance and basic auth. Berth keeps the parts that
//! decide what lands on disk: manifests are stored byte for byte (so digests hold and
//! a push gives back the same image), indexes are resolved to this host here, every
//! blob is verified before it is renamed into the store, a partial download is kept
//! and resumed with a range request, and a blob already stored is never fetched again.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use super::digest::{Digest, HashingWriter};
use super::error::{io_err, ImageError, Result};
use super::images::{Image, Images};
use super::live::LiveUnpack;
use super::manifest::{self, Kind, ACCEPTED};
use super::reference::Reference;
use super::store::{ImageRecord, Store};
use super::unpack;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) that may be reached over plain HTTP. Loopback
    /// registries (`localhost`, `127.0.0.1`, `[::1]`) always may.
    pub insecure: Vec<String>,
    /// A Docker-style `config.json` with `auths`; default `$REGISTRY_AUTH_FILE`, else
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub auth_file: Option<PathBuf>,
    /// Explicit credentials, used before any file.
    pub credentials: Option<(String, String)>,
    /// Blobs fetched or sent at once (0 means the default, 8).
    pub max_concurrent: usize,
}

impl RegistryOptions {
    fn concurrency(&self) -> usize {
        if self.max_concurrent == 0 {
            8
        } else {
            self.max_concurrent
        }
    }
}

/// Told what a pull or push does, layer by layer (the CLI draws bars from it).
pub trait Progress: Send + Sync {
    /// A blob is about to move; `size` as the manifest says.
    fn start(&self, _digest: &Digest, _size: u64, _what: &str) {}
    /// `done` bytes of it have moved so far.
    fn advance(&self, _digest: &Digest, _done: u64) {}
    /// Finished; `note` says how ("downloaded", "already present", "pushed", …).
    fn finish(&self, _digest: &Digest, _note: &str) {}
}

/// Reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    pub record: ImageRecord,
    /// Blobs downloaded by this pull (manifests not counted).
    pub fetched: Vec<Digest>,
    /// Bytes downloaded (including a resumed remainder only).
    pub bytes: u64,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    pub reference: String,
    pub manifest: Digest,
    pub sent: Vec<Digest>,
    pub skipped: Vec<Digest>,
}

fn reg_err(r: &Reference) -> impl Fn(oci_client::errors::OciDistributionError) -> ImageError + '_ {
    move |e| ImageError::Registry {
        registry: r.registry.clone(),
        message: e.to_string(),
    }
}

/// Plain HTTP only where the user said so, or on loopback; TLS everywhere else.
pub fn plain_http(r: &Reference, opts: &RegistryOptions) -> bool {
    r.is_loopback() || opts.insecure.iter().any(|i| i == &r.registry)
}

fn client_for(r: &Reference, opts: &RegistryOptions) -> Client {
    let plain = plain_http(r, opts);
    // ring is the TLS provider (no C toolchain needed for aws-lc); installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol: if plain {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        platform_resolver: None,
        max_concurrent_download: opts.concurrency(),
        max_concurrent_upload: opts.concurrency(),
        connect_timeout: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    })
}

/// Credentials for a registry: explicit ones, else the auth file's `auths` entry.
pub fn credentials_for(r: &Reference, opts: &RegistryOptions) -> RegistryAuth {
    if let Some((u, p)) = &opts.credentials {
        return RegistryAuth::Basic(u.clone(), p.clone());
    }
    let file = opts.auth_file.clone().or_else(|| {
        std::env::var_os("REGISTRY_AUTH_FILE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("DOCKER_CONFIG").map(|d| PathBuf::from(d).join("config.json"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
            })
    });
    let Some(file) = file else {
        return RegistryAuth::Anonymous;
    };
    let Ok(bytes) = fs::read(&file) else {
        return RegistryAuth::Anonymous;
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        tracing::warn!("{}: not JSON; pulling anonymously", file.display());
        return RegistryAuth::Anonymous;
    };
    let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
        return RegistryAuth::Anonymous;
    };
    for (key, entry) in auths {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        let host = match host {
            "index.docker.io" | "registry-1.docker.io" => "docker.io",
            h => h,
        };
        if host != r.registry {
            continue;
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(|v| v.as_str()),
            entry.get("password").and_then(|v| v.as_str()),
        ) {
            return RegistryAuth::Basic(u.into(), p.into());
        }
        if let Some(a) = entry.get("auth").and_then(|v| v.as_str()) {
            use base64::Engine as _;
            if let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(a.trim()) {
                if let Some((u, p)) = String::from_utf8_lossy(&dec).split_once(':') {
                    return RegistryAuth::Basic(u.into(), p.into());
                }
            }
        }
    }
    RegistryAuth::Anonymous
}

/// Pulls `reference` into the store, unpacks its layers, and names it.
pub async fn pull(
    images: &Images,
    reference: &str,
    opts: &RegistryOptions,
    progress: Arc<dyn Progress>,
) -> Result<PullReport> {
    let r = Reference::parse(reference)?;
    let client = client_for(&r, opts);
    let auth = credentials_for(&r, opts);
    let oref = r.to_oci();
    client
        .auth(&oref, &auth, RegistryOperation::Pull)
        .await
        .map_err(reg_err(&r))?;
    let store = images.store().clone();
    // Readers' lock for the whole fetch: prune waits until this pull has named its image.
    let shared = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.lock_shared())
            .await
            .map_err(|e| join_err(&r, e))??
    };

    let (bytes, digest) = client
        .pull_manifest_raw(&oref, &auth, ACCEPTED)
        .await
        .map_err(reg_err(&r))?;
    let mut digest = check_manifest_digest(&bytes, &digest, r.digest.as_ref())?;
    let (mut kind, mut media_type) = manifest::kind_of(&bytes, None)?;
    let mut manifest_bytes = bytes.to_vec();
    let mut index = None;
    if kind == Kind::Index {
        store.put_blob_bytes(Some(&digest), &manifest_bytes)?;
        let idx = manifest::parse_index(&manifest_bytes)?;
        let chosen = manifest::choose_platform(&idx, &r.to_string())?;
        let want = manifest::descriptor_digest(&chosen)?;
        let by_digest = oci_client::Reference::with_digest(
            r.registry.clone(),
            r.repository.clone(),
            want.to_string(),
        );
        let (b, d) = client
            .pull_manifest_raw(&by_digest, &auth, ACCEPTED)
            .await
            .map_err(reg_err(&r))?;
        index = Some(digest);
        digest = check_manifest_digest(&b, &d, Some(&want))?;
        (kind, media_type) = manifest::kind_of(&b, Some(chosen.media_type().as_ref()))?;
        if kind != Kind::Manifest {
            return Err(ImageError::Unsupported {
                what: "image index",
                detail: "an index inside an index".into(),
            });
        }
        manifest_bytes = b.to_vec();
    }
    store.put_blob_bytes(Some(&digest), &manifest_bytes)?;
    crate::fault::point("pull.after-manifest");
    let m = manifest::parse_manifest(&manifest_bytes)?;

    let mut fetched = Vec::new();
    let mut total = 0u64;
    let config_digest = manifest::descriptor_digest(m.config())?;
    if let Some(n) = fetch_blob(
        &client,
        &r,
        &store,
        &config_digest,
        m.config().size(),
        None,
        &*progress,
        "config",
    )
    .await?
    {
        fetched.push(config_digest.clone());
        total += n;
        progress.finish(&config_digest, "config fetched");
    }
    let config = manifest::parse_config(&store.read_blob(&config_digest)?)?;
    if config.rootfs.diff_ids.len() != m.layers().len() {
        return Err(super::error::malformed(
            format!("image {r}"),
            "the manifest and the config disagree on the number of layers",
        ));
    }
    // Layers in parallel: each is fetched (unless stored) then unpacked (unless done).
    // The work list is owned so the future stays `Send` (callers spawn pulls).
    let work: Vec<(Digest, u64, Digest)> = m
        .layers()
        .iter()
        .zip(config.rootfs.diff_ids.iter())
        .map(|(l, diff_id)| Ok((manifest::descriptor_digest(l)?, l.size(), diff_id.clone())))
        .collect::<Result<_>>()?;
    // Downloads are cheap on the CPU and run `max_concurrent` at once; unpacking
    // (decompress, hash, write thousands of files) is not, and runs one per core
    // (BERTH_UNPACK_JOBS overrides, for tuning), so layers unpack as soon as they
    // arrive without starving each other.
    let cores = std::env::var("BERTH_UNPACK_JOBS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
    let unpackers = Arc::new(tokio::sync::Semaphore::new(cores));
    let jobs = work.into_iter().map(|(d, size, diff_id)| {
        let client = &client;
        let store = store.clone();
        let r = &r;
        let progress = progress.clone();
        let unpackers = unpackers.clone();
        async move {
            // The layer is unpacked as it downloads where it can; `ensure_layer` below
            // then finds it there, or unpacks from the blob (a resumed or skipped download).
            let got = fetch_blob(
                client,
                r,
                &store,
                &d,
                size,
                Some(&diff_id),
                &*progress,
                "layer",
            )
            .await?;
            let (s, bd, did) = (store.clone(), d.clone(), diff_id.clone());
            let permit = unpackers
                .acquire_owned()
                .await
                .map_err(|e| ImageError::Registry {
                    registry: r.registry.clone(),
                    message: format!("unpack queue closed: {e}"),
                })?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                unpack::ensure_layer(&s, &bd, &did)
            })
            .await
            .map_err(|e| join_err(r, e))??;
            progress.finish(
                &d,
                if got.is_some() {
                    "pull complete"
                } else {
                    "already exists"
                },
            );
            Ok::<_, ImageError>(got.map(|n| (d, n)))
        }
    });
    let results: Vec<Option<(Digest, u64)>> = futures_util::stream::iter(jobs)
        .buffer_unordered(opts.concurrency())
        .try_collect()
        .boxed()
        .await?;
    for (d, n) in results.into_iter().flatten() {
        fetched.push(d);
        total += n;
    }
    drop(shared);
    let name = match (&r.tag, &r.digest) {
        (Some(_), Some(_)) | (None, Some(_)) => {
            format!(
                "{}@{}",
                r.name(),
                r.digest.as_ref().map(|d| d.to_string()).unwrap_or_default()
            )
        }
        _ => r.to_string(),
    };
    let record = ImageRecord {
        name,
        manifest: digest,
        media_type,
        index,
    };
    // Off the async thread: waiting for the exclusive lock must not stall other pulls
    // sharing this runtime (they hold the shared lock until they finish).
    crate::fault::point("pull.before-record");
    {
        let (s, rec) = (store.clone(), record.clone());
        tokio::task::spawn_blocking(move || s.put_records(std::slice::from_ref(&rec)))
            .await
            .map_err(|e| join_err(&r, e))??;
    }
    Ok(PullReport {
        record,
        fetched,
        bytes: total,
    })
}

fn join_err(r: &Reference, e: tokio::task::JoinError) -> ImageError {
    ImageError::Registry {
        registry: r.registry.clone(),
        message: format!("a worker failed: {e}"),
    }
}

fn check_manifest_digest(bytes: &[u8], reported: &str, wanted: Option<&Digest>) -> Result<Digest> {
    let actual = Digest::of(bytes);
    if let Some(w) = wanted {
        if *w != actual {
            return Err(ImageError::DigestMismatch {
                expected: w.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    if !reported.is_empty() && reported.starts_with("sha256:") && reported != actual.as_str() {
        return Err(ImageError::DigestMismatch {
            expected: reported.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(actual)
}

/// Fetches one blob into the store unless it is there. Returns the bytes downloaded, or
/// `None` when nothing was fetched. A partial file from an interrupted pull is resumed.
/// For a layer (`diff_id` given) downloaded from its first byte, the layer is unpacked
/// from the stream at the same time and moved into place once both digests hold.
#[allow(clippy::too_many_arguments)]
async fn fetch_blob(
    client: &Client,
    r: &Reference,
    store: &Store,
    d: &Digest,
    size: u64,
    diff_id: Option<&Digest>,
    progress: &dyn Progress,
    what: &str,
) -> Result<Option<u64>> {
    if store.has_blob(d) {
        return Ok(None);
    }
    // One fetcher per blob across threads and processes; the others wait, then find it.
    let lock = {
        let (s, d) = (store.clone(), d.clone());
        tokio::task::spawn_blocking(move || s.lock_item("blob", &d))
            .await
            .map_err(|e| join_err(r, e))??
    };
    if store.has_blob(d) {
        return Ok(None);
    }
    progress.start(d, size, what);
    let started = std::time::Instant::now();
    let partial = store.tmp_dir().join(format!("{}.partial", d.hex()));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&partial)
        .map_err(io_err("opening", &partial))?;
    let have = file.metadata().map(|m| m.len()).unwrap_or(0);
    let oref = r.to_oci();
    let desc = oci_client::manifest::OciDescriptor {
        digest: d.to_string(),
        size: size as i64,
        ..Default::default()
    };
    let mut hw = HashingWriter::new(std::io::BufWriter::with_capacity(
        1 << 20,
        file.try_clone().map_err(io_err("opening", &partial))?,
    ));
    // Always a range request, from 0 or from what a broken-off pull left: the answer
    // (206) is then not hashed by the client a second time; Berth's own check below
    // is the one that decides. A registry that ignores ranges answers 200 and the
    // whole blob, and the file starts over.
    let offset = if have > 0 && have < size { have } else { 0 };
    if offset == 0 {
        file.set_len(0).map_err(io_err("truncating", &partial))?;
    }
    let stream = match client
        .pull_blob_stream_partial(&oref, &desc, offset, None)
        .await
        .map_err(reg_err(r))?
    {
        BlobResponse::Partial(s) => {
            if offset > 0 {
                // Hash what is already on disk, then append.
                let mut buf = vec![0u8; 1 << 20];
                file.seek(SeekFrom::Start(0))
                    .map_err(io_err("reading", &partial))?;
                loop {
                    let n = file.read(&mut buf).map_err(io_err("reading", &partial))?;
                    if n == 0 {
                        break;
                    }
                    hw.absorb(&buf[..n]);
                }
                tracing::info!("resuming {d} at byte {offset}");
            }
            hw.inner
                .get_mut()
                .seek(SeekFrom::End(0))
                .map_err(io_err("seeking", &partial))?;
            s.stream
        }
        BlobResponse::Full(s) => {
            file.set_len(0).map_err(io_err("truncating", &partial))?;
            hw.inner
                .get_mut()
                .seek(SeekFrom::Start(0))
                .map_err(io_err("seeking", &partial))?;
            s.stream
        }
    };
    let resumed_from = hw.count;
    let mut stream = stream;
    // A resumed download unpacks from the blob afterwards (the start is on disk only).
    let mut live = match diff_id {
        Some(id) if resumed_from == 0 && !store.has_layer(id) => {
            Some((LiveUnpack::start(store, d, id), id))
        }
        _ => None,
    };
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            // The client checks the digest itself and fails the stream's end; all bytes
            // are here then, and our own check below names the fault.
            Err(_) if hw.count >= size => break,
            Err(e) => {
                // Keep what arrived: the next pull resumes from here.
                let _ = hw.flush();
                if let Some((l, id)) = live.take() {
                    let _ = l.finish(store, id, false).await;
                }
                return Err(ImageError::Registry {
                    registry: r.registry.clone(),
                    message: format!(
                        "download of {d} broke off after {} bytes ({e}); pull again to resume",
                        hw.count
                    ),
                });
            }
        };
        if hw.count + chunk.len() as u64 > size {
            // More than the manifest's size: a broken or hostile registry. Stop before
            // it fills the disk; the bytes so far are useless, drop them.
            drop(hw);
            let _ = fs::remove_file(&partial);
            if let Some((l, id)) = live.take() {
                let _ = l.finish(store, id, false).await;
            }
            return Err(ImageError::Registry {
                registry: r.registry.clone(),
                message: format!(
                    "blob {d} is larger than the {size} bytes its manifest says; refused"
                ),
            });
        }
        hw.write_all(&chunk).map_err(io_err("writing", &partial))?;
        if let Some((l, _)) = &mut live {
            l.feed(&chunk).await;
        }
        crate::fault::point("pull.mid-blob");
        progress.advance(d, hw.count);
    }
    hw.flush().map_err(io_err("writing", &partial))?;
    let actual = hw.digest();
    let got = hw.count - resumed_from;
    drop(hw);
    if actual != *d {
        let _ = fs::remove_file(&partial);
        if let Some((l, id)) = live.take() {
            // Waits for the unpacker and removes what it wrote: nothing half-done stays.
            let _ = l.finish(store, id, false).await;
        }
        return Err(ImageError::DigestMismatch {
            expected: d.to_string(),
            actual: actual.to_string(),
        });
    }
    let downloaded = started.elapsed();
    // fsync off the async threads, while the unpacker (if any) finishes its last files.
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(|e| join_err(r, e))?
        .map_err(io_err("syncing", &partial))?;
    tracing::debug!(
        "{d}: {got} bytes downloaded and hashed in {downloaded:?}, synced in {:?}",
        started.elapsed() - downloaded
    );
    let dest = store.blob_path(d);
    fs::rename(&partial, &dest).map_err(io_err("storing blob", &dest))?;
    // The blob is stored (as before, a layer that fails to unpack keeps its good blob).
    if let Some((l, id)) = live.take() {
        l.finish(store, id, true).await?;
        tracing::debug!(
            "{d}: unpacked as it downloaded, done after {:?}",
            started.elapsed()
        );
    }
    crate::fault::point("pull.after-blob");
    drop(lock);
    Ok(Some(got))
}

/// Pushes image `source` (a name in the store) to `dest` (default: its own name).
/// Blobs the registry already has are not sent; the manifest goes up byte for byte.
pub async fn push(
    images: &Images,
    source: &str,
    dest: Option<&str>,
    opts: &RegistryOptions,
    progress: Arc<dyn Progress>,
) -> Result<PushReport> {
    let img: Image = images.resolve(source)?;
    let r = Reference::parse(dest.unwrap_or(&img.record.name))?;
    if r.tag.is_none() {
        return Err(ImageError::BadReference {
            reference: r.to_string(),
            reason: "push needs a tag to name the image by".into(),
        });
    }
    let r = Reference { digest: None, ..r };
    let client = client_for(&r, opts);
    let auth = credentials_for(&r, opts);
    let oref = r.to_oci();
    client
        .auth(&oref, &auth, RegistryOperation::Push)
        .await
        .map_err(reg_err(&r))?;
    let store = images.store();
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    for l in img.manifest.layers() {
        blobs.push((manifest::descriptor_digest(l)?, l.size()));
    }
    blobs.push((img.config_digest.clone(), img.manifest.config().size()));
    let mut sent = Vec::new();
    let mut skipped = Vec::new();
    let jobs = blobs.into_iter().map(|(d, size)| {
        let client = &client;
        let oref = &oref;
        let r = &r;
        let progress = progress.clone();
        async move {
            if client
                .blob_exists(oref, d.as_str())
                .await
                .map_err(reg_err(r))?
            {
                progress.finish(&d, "layer already exists");
                return Ok::<_, ImageError>((d, false));
            }
            progress.start(&d, size, "push");
            let path = store.blob_path(&d);
            let file = fs::File::open(&path).map_err(io_err("opening blob", &path))?;
            let stream = file_stream(file);
            client
                .push_blob_stream(oref, stream, d.as_str(), Some(size))
                .await
                .map_err(reg_err(r))?;
            progress.finish(&d, "pushed");
            Ok((d, true))
        }
    });
    let results: Vec<(Digest, bool)> = futures_util::stream::iter(jobs)
        .buffer_unordered(opts.concurrency())
        .try_collect()
        .boxed()
        .await?;
    for (d, was_sent) in results {
        if was_sent {
            sent.push(d)
        } else {
            skipped.push(d)
        }
    }
    let bytes = store.read_blob(&img.record.manifest)?;
    let ct = img
        .record
        .media_type
        .parse()
        .map_err(|_| ImageError::Unsupported {
            what: "media type",
            detail: img.record.media_type.clone(),
        })?;
    client
        .push_manifest_raw(&oref, bytes, ct)
        .await
        .map_err(reg_err(&r))?;
    Ok(PushReport {
        reference: r.to_string(),
        manifest: img.record.manifest.clone(),
        sent,
        skipped,
    })
}

/// A file as a stream of 1 MiB chunks, read on demand (layers are not buffered whole).
fn file_stream(
    file: fs::File,
) -> impl futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static {
    futures_util::stream::try_unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 1 << 20];
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((bytes::Bytes::from(buf), f)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_registries_marked_insecure() {
        let opts = RegistryOptions {
            insecure: vec!["registry.lan:5000".into()],
            ..Default::default()
        };
        let p = |r: &str| plain_http(&Reference::parse(r).unwrap(), &opts);
        assert!(p("127.0.0.1:5000/a"));
        assert!(p("localhost/a"));
        assert!(p("registry.lan:5000/a"));
        assert!(
            !p("registry.lan/a"),
            "another port of an insecure host is not insecure"
        );
        assert!(!p("redis"));
        assert!(!p("ghcr.io/o/r"));
    }

    #[test]
    fn credentials_from_a_docker_config() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        fs::write(
            &file,
            serde_json::json!({"auths": {
                "https://index.docker.io/v1/": {"auth": enc("hub:pw1")},
                "ghcr.io": {"username": "gh", "password": "pw2"},
                "127.0.0.1:5000": {"auth": enc("local:pw:with:colons")},
            }})
            .to_string(),
        )
        .unwrap();
        let opts = RegistryOptions {
            auth_file: Some(file),
            ..Default::default()
        };
        let get = |r: &str| match credentials_for(&Reference::parse(r).unwrap(), &opts) {
            RegistryAuth::Basic(u, p) => format!("{u}:{p}"),
            RegistryAuth::Anonymous => "anonymous".into(),
            RegistryAuth::Bearer(_) => "bearer".into(),
        };
        assert_eq!(get("redis"), "hub:pw1");
        assert_eq!(get("ghcr.io/o/r"), "gh:pw2");
        assert_eq!(get("127.0.0.1:5000/x"), "local:pw:with:colons");
        assert_eq!(get("quay.io/x/y"), "anonymous");
    }
}
