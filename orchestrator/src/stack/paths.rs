//! Relative paths in a stack file resolve from the directory of the file that wrote
//! them (Compose rule), so they are made absolute per file, before files, `include`s and
//! `extends` bases are merged and that knowledge is lost.

use std::path::Path;

use super::merge::split_short_volume;
use super::model::paths::absolutize;
use super::model::volumes::is_host_path;
use super::yaml::{Node, Style, Value};

/// Joins `rel` onto `base`, expands `~` and removes `.`/`..` lexically: the model's
/// [`absolutize`], except that `remote:` references and URLs are left as written (they
/// name resources elsewhere, not paths on this host).
pub fn absolute(base: &Path, rel: &str, home: Option<&str>) -> String {
    if rel.starts_with("remote:") || rel.contains("://") {
        return rel.to_string();
    }
    absolutize(rel, base, home.map(Path::new))
}

/// A build context that is a URL (git, http) is not a path.
fn is_remote(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/")
}

fn set_scalar(node: &mut Node, f: impl FnOnce(&str) -> Option<String>) {
    if let Value::Scalar(s, _) = &node.value {
        if let Some(new) = f(s) {
            node.value = Value::Scalar(new, Style::Quoted);
        }
    }
}

/// Makes the paths of one file's top-level node absolute against `dir`. `file_dir` is
/// the directory of the file itself: an `extends.file` that does not exist relative to
/// `dir` (the spec's rule) is looked for there, as users writing a file next to its base
/// expect.
pub fn resolve_file(top: &mut Node, dir: &Path, file_dir: &Path, home: Option<&str>) {
    let Some(map) = top.as_map_mut() else { return };
    if let Some(services) = map.get_mut("services").and_then(Node::as_map_mut) {
        for service in services.values_mut() {
            resolve_service(service, dir, home);
            if dir != file_dir {
                resolve_extends_near_file(service, dir, file_dir, home);
            }
        }
    }
    for kind in ["secrets", "configs"] {
        if let Some(items) = map.get_mut(kind).and_then(Node::as_map_mut) {
            for item in items.values_mut() {
                if let Some(file) = item.as_map_mut().and_then(|m| m.get_mut("file")) {
                    set_scalar(file, |s| Some(absolute(dir, s, home)));
                }
            }
        }
    }
}

fn resolve_extends_near_file(service: &mut Node, dir: &Path, file_dir: &Path, home: Option<&str>) {
    let Some(Value::Map(m)) = service
        .as_map_mut()
        .and_then(|s| s.get_mut("extends"))
        .map(|n| &mut n.value)
    else {
        return;
    };
    let Some(file) = m.get_mut("file") else {
        return;
    };
    set_scalar(file, |s| {
        if Path::new(s).exists() {
            return None;
        }
        let rel = Path::new(s)
            .strip_prefix(dir)
            .ok()?
            .to_string_lossy()
            .into_owned();
        let near = absolute(file_dir, &rel, home);
        Path::new(&near).exists().then_some(near)
    });
}

/// Makes the paths of one service node absolute against `dir`.
pub fn resolve_service(service: &mut Node, dir: &Path, home: Option<&str>) {
    let Some(svc) = service.as_map_mut() else {
        return;
    };
    if let Some(build) = svc.get_mut("build") {
        match &mut build.value {
            Value::Scalar(..) => {
                set_scalar(build, |s| (!is_remote(s)).then(|| absolute(dir, s, home)))
            }
            Value::Map(m) => {
                if let Some(ctx) = m.get_mut("context") {
                    set_scalar(ctx, |s| (!is_remote(s)).then(|| absolute(dir, s, home)));
                }
            }
            _ => {}
        }
    }
    for key in ["env_file", "label_file"] {
        let Some(node) = svc.get_mut(key) else {
            continue;
        };
        match &mut node.value {
            Value::Scalar(..) => set_scalar(node, |s| Some(absolute(dir, s, home))),
            Value::Seq(items) => {
                for item in items {
                    match &mut item.value {
                        Value::Scalar(..) => set_scalar(item, |s| Some(absolute(dir, s, home))),
                        Value::Map(m) => {
                            if let Some(p) = m.get_mut("path") {
                                set_scalar(p, |s| Some(absolute(dir, s, home)));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(Value::Map(m)) = svc.get_mut("extends").map(|n| &mut n.value) {
        if let Some(file) = m.get_mut("file") {
            set_scalar(file, |s| Some(absolute(dir, s, home)));
        }
    }
    if let Some(Value::Seq(volumes)) = svc.get_mut("volumes").map(|n| &mut n.value) {
        for volume in volumes {
            match &mut volume.value {
                Value::Scalar(..) => set_scalar(volume, |s| {
                    let parts = split_short_volume(s);
                    if parts.len() < 2 || !is_host_path(parts[0]) {
                        return None;
                    }
                    let mut parts: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                    parts[0] = absolute(dir, &parts[0], home);
                    Some(parts.join(":"))
                }),
                Value::Map(m) => {
                    let is_bind = m
                        .get("type")
                        .and_then(Node::as_str)
                        .is_none_or(|t| t == "bind");
                    if is_bind {
                        if let Some(src) = m.get_mut("source") {
                            set_scalar(src, |s| is_host_path(s).then(|| absolute(dir, s, home)));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_cleans() {
        let base = Path::new("/p/q");
        assert_eq!(absolute(base, "./a/../b", None), "/p/q/b");
        assert_eq!(absolute(base, "../x", None), "/p/x");
        assert_eq!(absolute(base, "/abs", None), "/abs");
        assert_eq!(absolute(base, "~/c", Some("/home/u")), "/home/u/c");
        assert_eq!(absolute(base, "C:\\docker", None), "C:\\docker");
    }

    #[test]
    fn short_volume_sources_resolve_and_named_volumes_do_not() {
        let mut n = crate::stack::yaml::parse_str(
            "services:\n  a:\n    volumes: ['./data:/data:ro', 'named:/x', '/abs:/y']\n    env_file: .env\n",
        )
        .unwrap()
        .remove(0);
        resolve_file(&mut n, Path::new("/proj"), Path::new("/proj"), None);
        let svc = n.get("services").unwrap().get("a").unwrap();
        let vols: Vec<&str> = svc
            .get("volumes")
            .unwrap()
            .as_seq()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(vols, vec!["/proj/data:/data:ro", "named:/x", "/abs:/y"]);
        assert_eq!(svc.get("env_file").unwrap().as_str(), Some("/proj/.env"));
    }
}
