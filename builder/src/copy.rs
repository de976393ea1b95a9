//! COPY and ADD: which files go where, planned before anything is written, so the plan
//! can be hashed for the cache and only written as a layer on a miss.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::ignore::{clean, glob_match, has_glob, Ignore};
use crate::layer::{join, LayerWriter, Overrides};
use crate::view::View;

/// One entry of the layer to write.
#[derive(Debug, Clone)]
pub enum Item {
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Path {
        path: String,
        src: PathBuf,
        ov: Overrides,
    },
    /// ADD of a local tar archive: its entries under `prefix`.
    Archive {
        prefix: String,
        src: PathBuf,
        ov: Overrides,
    },
}

/// Where sources come from: the build context (with its .dockerignore) or a stage's or
/// image's root filesystem (a read-only mount, with a view to resolve its links).
pub struct Source<'a> {
    pub root: &'a Path,
    pub view: View,
    pub ignore: Option<&'a Ignore>,
    /// How to name it in errors: "the build context", "stage build".
    pub name: String,
}

/// COPY/ADD with variables substituted; `dest` is absolute.
pub struct Request<'a> {
    pub add: bool,
    pub sources: &'a [String],
    pub dest: &'a str,
    pub ov: Overrides,
}

impl Source<'_> {
    fn excluded(&self, rel: &str) -> bool {
        self.ignore.is_some_and(|i| i.excluded(rel))
    }

    /// Every path under the root (not excluded), relative, sorted.
    fn walk(&self, dir: &Path, rel: &str, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            let r = join(rel, &n.to_string_lossy());
            let p = dir.join(&n);
            let is_dir = fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
            if !self.excluded(&r) {
                out.push(r.clone());
            } else if !(is_dir && self.ignore.is_some_and(|i| i.may_reinclude_under(&r))) {
                continue;
            }
            if is_dir {
                self.walk(&p, &r, out);
            }
        }
    }
}

fn looks_like_archive(p: &Path) -> bool {
    let Ok(mut f) = fs::File::open(p) else {
        return false;
    };
    let mut head = vec![0u8; 512];
    let n = f.read(&mut head).unwrap_or(0);
    head.truncate(n);
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (n >= 262 && &head[257..262] == b"ustar")
}

/// Plans a COPY/ADD. Errors are messages; the caller adds the line.
pub fn plan(req: &Request, src: &Source, dest_view: &View) -> Result<Vec<Item>, String> {
    let kw = if req.add { "ADD" } else { "COPY" };
    let mut matched: Vec<String> = Vec::new();
    for s in req.sources {
        if req.add && (s.contains("://") || s.starts_with("git@")) {
            return Err(format!("ADD {s}: remote sources are not supported (builds are offline): download it into the context and COPY it"));
        }
        let Some(c) = clean(s) else {
            return Err(format!(
                "{kw} {s}: the path is outside {}; sources must be inside it",
                src.name
            ));
        };
        if has_glob(&c) {
            let mut all = Vec::new();
            src.walk(src.root, "", &mut all);
            let before = matched.len();
            matched.extend(all.into_iter().filter(|r| glob_match(&c, r)));
            if matched.len() == before {
                return Err(format!("{kw} {s}: no file in {} matches", src.name));
            }
            continue;
        }
        let rel = src.view.resolve(&c, true);
        if src.view.lookup(&rel).is_none() || (!rel.is_empty() && src.excluded(&rel)) {
            return Err(format!(
                "{kw} {s}: not found in {}{}",
                src.name,
                if src.ignore.is_some() {
                    " (or excluded by .dockerignore)"
                } else {
                    ""
                }
            ));
        }
        matched.push(rel);
    }
    let dest = req.dest;
    let ends_slash = dest.ends_with('/');
    let dest_rel = dest_view.resolve(dest, true);
    let dest_exists_dir = dest_view.is_dir(&dest_rel);
    let single_dir =
        matched.len() == 1 && fs::metadata(src.root.join(&matched[0])).is_ok_and(|m| m.is_dir());
    if matched.len() > 1 && !ends_slash && !dest_exists_dir {
        return Err(format!(
            "{kw} with more than one source needs a directory as destination, ending with / ({dest}/)"
        ));
    }
    let into_dir = ends_slash || dest_exists_dir || matched.len() > 1 || single_dir;
    let dir = if into_dir {
        dest_rel.clone()
    } else {
        dest_rel
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default()
    };
    let mut items = Vec::new();
    // The directories on the way keep what the image has; missing ones are made.
    let mut acc = String::new();
    for seg in dir.split('/').filter(|s| !s.is_empty()) {
        acc = join(&acc, seg);
        let (mode, uid, gid) = match dest_view.lookup(&acc) {
            Some((_, m)) if m.is_dir() => (m.mode(), m.uid(), m.gid()),
            _ => {
                let (u, g) = req.ov.owner.unwrap_or((0, 0));
                (0o755, u, g)
            }
        };
        items.push(Item::Dir {
            path: acc.clone(),
            mode,
            uid,
            gid,
        });
    }
    for rel in &matched {
        let host = src.root.join(rel);
        let meta = fs::symlink_metadata(&host).map_err(|e| format!("{kw} {rel}: {e}"))?;
        if meta.is_dir() {
            let mut all = Vec::new();
            src.walk(&host, rel, &mut all);
            for r in all {
                let sub = r
                    .strip_prefix(rel.as_str())
                    .unwrap_or(&r)
                    .trim_start_matches('/');
                items.push(Item::Path {
                    path: join(&dir, sub),
                    src: src.root.join(&r),
                    ov: req.ov,
                });
            }
            continue;
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        if req.add && meta.is_file() && looks_like_archive(&host) {
            items.push(Item::Archive {
                prefix: if into_dir {
                    dir.clone()
                } else {
                    dest_rel.clone()
                },
                src: host,
                ov: req.ov,
            });
            continue;
        }
        items.push(Item::Path {
            path: if into_dir {
                join(&dir, base)
            } else {
                dest_rel.clone()
            },
            src: host,
            ov: req.ov,
        });
    }
    Ok(items)
}

/// A digest of the plan: paths, modes, owners, link targets, and (when `content`)
/// the bytes of every file.
pub fn digest(items: &[Item], content: bool) -> String {
    let mut h = Sha256::new();
    let hash_file = |h: &mut Sha256, p: &Path| {
        if let Ok(mut f) = fs::File::open(p) {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
    };
    for it in items {
        match it {
            Item::Dir {
                path,
                mode,
                uid,
                gid,
            } => h.update(format!("D {path} {mode:o} {uid} {gid}\n").as_bytes()),
            Item::Path { path, src, ov } => {
                let m = fs::symlink_metadata(src).ok();
                let (mode, uid, gid, size) = m
                    .as_ref()
                    .map(|m| (m.mode(), m.uid(), m.gid(), m.len()))
                    .unwrap_or_default();
                let link = fs::read_link(src)
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                h.update(
                    format!(
                        "P {path} {mode:o} {uid} {gid} {size} {link} {:?} {:?}\n",
                        ov.owner, ov.mode
                    )
                    .as_bytes(),
                );
                if content && m.is_some_and(|m| m.is_file()) {
                    hash_file(&mut h, src);
                }
            }
            Item::Archive { prefix, src, ov } => {
                h.update(format!("A {prefix} {:?}\n", ov.owner).as_bytes());
                hash_file(&mut h, src);
            }
        }
    }
    hex::encode(h.finalize())
}

/// Writes the planned entries.
pub fn write(items: &[Item], w: &mut LayerWriter) -> crate::error::Result<()> {
    for it in items {
        match it {
            Item::Dir {
                path,
                mode,
                uid,
                gid,
            } => w.dir(path, *mode, *uid, *gid, crate::layer::now())?,
            Item::Path { path, src, ov } => {
                let m = fs::symlink_metadata(src)
                    .map_err(crate::error::io_err("reading", src.clone()))?;
                w.add(path, src, &m, *ov)?;
            }
            Item::Archive { prefix, src, ov } => w.add_archive(prefix, src, *ov)?,
        }
    }
    Ok(())
}
