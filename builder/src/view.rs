//! A read-only look at a stage's root filesystem through its unpacked layers, without
//! mounting anything: top layer first, whiteouts and opaque directories honoured, and
//! symlinks resolved inside the image's root (never on the host).

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use berth_engine::image::unpack::{get_xattr, OPAQUE_XATTR};

/// Unpacked layer directories, bottom first.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub layers: Vec<PathBuf>,
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

impl View {
    pub fn new(layers: Vec<PathBuf>) -> View {
        View { layers }
    }

    /// The host path of `rel` (clean, relative) in the topmost layer that has it.
    pub fn lookup(&self, rel: &str) -> Option<(PathBuf, fs::Metadata)> {
        if rel.is_empty() {
            let top = self.layers.last()?;
            return fs::symlink_metadata(top).ok().map(|m| (top.clone(), m));
        }
        'layers: for layer in self.layers.iter().rev() {
            // An ancestor whited out or made opaque in this layer hides the lower ones.
            let mut opaque = false;
            let mut acc = layer.clone();
            let segs: Vec<&str> = rel.split('/').collect();
            for (i, seg) in segs.iter().enumerate() {
                acc.push(seg);
                let Ok(m) = fs::symlink_metadata(&acc) else {
                    if opaque {
                        return None;
                    }
                    continue 'layers;
                };
                if is_whiteout(&m) {
                    return None;
                }
                if i + 1 == segs.len() {
                    return Some((acc, m));
                }
                if !m.is_dir() {
                    return None;
                }
                if get_xattr(&acc, OPAQUE_XATTR).as_deref() == Some(b"y") {
                    opaque = true;
                }
            }
        }
        None
    }

    /// Resolves symlinks in `path` inside the image's root; with `follow_last` the last
    /// segment too. The result is clean and relative; it need not exist.
    pub fn resolve(&self, path: &str, follow_last: bool) -> String {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .map(String::from)
            .rev()
            .collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(seg) = todo.pop() {
            if seg == ".." {
                cur.pop();
                continue;
            }
            let mut cand = cur.clone();
            cand.push(seg.clone());
            let last = todo.is_empty();
            if hops < 40 && (follow_last || !last) {
                if let Some((p, m)) = self.lookup(&cand.join("/")) {
                    if m.file_type().is_symlink() {
                        if let Ok(t) = fs::read_link(&p) {
                            hops += 1;
                            let t = t.to_string_lossy().into_owned();
                            if t.starts_with('/') {
                                cur.clear();
                            }
                            todo.extend(
                                t.split('/')
                                    .filter(|s| !s.is_empty() && *s != ".")
                                    .map(String::from)
                                    .rev(),
                            );
                            continue;
                        }
                    }
                }
            }
            cur = cand;
        }
        cur.join("/")
    }

    /// The content of a file (symlinks followed), if it is one.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let rel = self.resolve(path, true);
        let (p, m) = self.lookup(&rel)?;
        m.is_file().then(|| fs::read(p).ok()).flatten()
    }

    /// Whether `path` is a directory (symlinks followed).
    pub fn is_dir(&self, path: &str) -> bool {
        let rel = self.resolve(path, true);
        rel.is_empty() || self.lookup(&rel).is_some_and(|(_, m)| m.is_dir())
    }

    /// uid and gid of a `user[:group]` spec, by the image's /etc/passwd and /etc/group.
    pub fn owner(&self, spec: &str) -> Result<(u32, u32), String> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let passwd =
            String::from_utf8_lossy(&self.read("etc/passwd").unwrap_or_default()).into_owned();
        let group =
            String::from_utf8_lossy(&self.read("etc/group").unwrap_or_default()).into_owned();
        let field = |text: &str, name: &str, i: usize| -> Option<u32> {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > i && f[0] == name)
                    .then(|| f[i].parse().ok())
                    .flatten()
            })
        };
        let uid = match u.parse::<u32>() {
            Ok(n) => n,
            Err(_) => field(&passwd, u, 2)
                .ok_or_else(|| format!("user {u:?} is not in the image's /etc/passwd"))?,
        };
        let gid = match g {
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => field(&group, g, 2)
                    .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?,
            },
            // Docker: the user's primary group when named, else the same number.
            None => match u.parse::<u32>() {
                Ok(n) => n,
                Err(_) => field(&passwd, u, 3).unwrap_or(0),
            },
        };
        Ok((uid, gid))
    }
}
