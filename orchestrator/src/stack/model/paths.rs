//! Making the model's host paths absolute.
//!
//! The Specification resolves relative paths against the directory of the Compose file
//! that declares them (the project directory for the first file), and `~` against the
//! user's home. The loader knows which directory that is for each part of the merged
//! model; these methods do the rewriting once it calls them. Windows paths (`C:\…`,
//! `\\…`) are kept as written: they are meaningful only to a Windows engine.

use std::path::{Component, Path, PathBuf};

use super::build::is_local_context;
use super::service::Service;
use super::top::Project;
use super::volumes::{is_windows_path, VolumeType};

/// `path` made absolute against `base`, with `~` expanded and `.`/`..` removed lexically
/// (symbolic links are not followed: the path may not exist yet).
pub fn absolutize(path: &str, base: &Path, home: Option<&Path>) -> String {
    if is_windows_path(path) {
        return path.to_owned();
    }
    let joined: PathBuf = if path == "~" || path.starts_with("~/") {
        match home {
            Some(home) => home.join(path.trim_start_matches('~').trim_start_matches('/')),
            None => return path.to_owned(),
        }
    } else {
        base.join(path)
    };
    clean(&joined).to_string_lossy().into_owned()
}

/// Lexical normalization, like Go's `filepath.Clean` on an absolute path.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn resolve(path: &mut String, base: &Path, home: Option<&Path>) {
    *path = absolutize(path, base, home);
}

impl Service {
    /// Makes this service's host paths absolute: bind-mount sources, `env_file` and
    /// `label_file` entries, a local build context and local additional contexts,
    /// `extends.file`, and `develop.watch` paths. Call it with the directory of the
    /// file that declared the service, before merging with services from other
    /// directories.
    pub fn resolve_paths(&mut self, base_dir: &Path, home: Option<&Path>) {
        for volume in &mut self.volumes {
            if volume.kind == VolumeType::Bind {
                if let Some(source) = &mut volume.source {
                    resolve(source, base_dir, home);
                }
            }
        }
        for env_file in &mut self.env_file {
            resolve(&mut env_file.path, base_dir, home);
        }
        for label_file in &mut self.label_file {
            resolve(label_file, base_dir, home);
        }
        if let Some(build) = &mut self.build {
            if let Some(context) = &mut build.context {
                if is_local_context(context) {
                    resolve(context, base_dir, home);
                }
            }
            for context in build.additional_contexts.values_mut() {
                if is_local_context(context) {
                    resolve(context, base_dir, home);
                }
            }
        }
        if let Some(file) = self.extends.as_mut().and_then(|e| e.file.as_mut()) {
            resolve(file, base_dir, home);
        }
        if let Some(develop) = &mut self.develop {
            for rule in &mut develop.watch {
                resolve(&mut rule.path, base_dir, home);
            }
        }
    }
}

impl Project {
    /// Makes every host path of the project absolute against `base_dir` (see
    /// [`Service::resolve_paths`]), plus the `file` of secrets and configs and the
    /// `device` of local volumes that bind a host directory (`driver_opts: {o: bind}`).
    pub fn resolve_paths(&mut self, base_dir: &Path, home: Option<&Path>) {
        for service in self.services.values_mut() {
            service.resolve_paths(base_dir, home);
        }
        for object in self.secrets.values_mut().chain(self.configs.values_mut()) {
            if let Some(file) = &mut object.file {
                resolve(file, base_dir, home);
            }
        }
        for volume in self.volumes.values_mut() {
            let local = volume.driver.as_deref().is_none_or(|d| d == "local");
            let binds = volume
                .driver_opts
                .get("o")
                .is_some_and(|o| o.split(',').any(|opt| opt == "bind"));
            if local && binds {
                if let Some(device) = volume.driver_opts.get_mut("device") {
                    resolve(device, base_dir, home);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absolutize_rules() {
        let base = Path::new("/work/app");
        let home = Some(Path::new("/home/me"));
        assert_eq!(absolutize("./data", base, home), "/work/app/data");
        assert_eq!(absolutize("data", base, home), "/work/app/data");
        assert_eq!(absolutize("../shared/./x", base, home), "/work/shared/x");
        assert_eq!(absolutize(".", base, home), "/work/app");
        assert_eq!(absolutize("/abs/../p", base, home), "/p");
        assert_eq!(absolutize("~/configs", base, home), "/home/me/configs");
        assert_eq!(absolutize("~", base, home), "/home/me");
        assert_eq!(absolutize("~/x", base, None), "~/x");
        assert_eq!(absolutize("~other/x", base, home), "/work/app/~other/x");
        assert_eq!(absolutize("C:\\data", base, home), "C:\\data");
        assert_eq!(
            absolutize("\\\\server\\share", base, home),
            "\\\\server\\share"
        );
        assert_eq!(absolutize("/../..", base, home), "/");
    }

    #[test]
    fn service_paths() {
        let mut s: Service = serde_json::from_value(json!({
            "build": {"context": "./app", "additional_contexts": {"res": "../res", "img": "docker-image://alpine"}},
            "volumes": ["./cache:/tmp/cache", "~/cfg:/etc/cfg:ro", "named:/data", "/abs:/abs", "C:\\w:/w"],
            "env_file": ["./a.env", {"path": "b.env", "required": false}],
            "label_file": "./labels",
            "extends": {"file": "../base.yaml", "service": "base"},
            "develop": {"watch": [{"path": "./src", "action": "sync", "target": "/app/src"}]}
        }))
        .unwrap();
        s.resolve_paths(Path::new("/p/proj"), Some(Path::new("/home/u")));
        assert_eq!(
            s.build.as_ref().unwrap().context.as_deref(),
            Some("/p/proj/app")
        );
        assert_eq!(
            s.build.as_ref().unwrap().additional_contexts["res"],
            "/p/res"
        );
        assert_eq!(
            s.build.as_ref().unwrap().additional_contexts["img"],
            "docker-image://alpine"
        );
        let sources: Vec<_> = s.volumes.iter().map(|v| v.source.as_deref()).collect();
        assert_eq!(
            sources,
            [
                Some("/p/proj/cache"),
                Some("/home/u/cfg"),
                Some("named"),
                Some("/abs"),
                Some("C:\\w")
            ]
        );
        assert_eq!(s.env_file[0].path, "/p/proj/a.env");
        assert_eq!(s.env_file[1].path, "/p/proj/b.env");
        assert_eq!(s.label_file, ["/p/proj/labels"]);
        assert_eq!(
            s.extends.as_ref().unwrap().file.as_deref(),
            Some("/p/base.yaml")
        );
        assert_eq!(s.develop.as_ref().unwrap().watch[0].path, "/p/proj/src");
    }

    #[test]
    fn remote_build_context_is_kept() {
        let mut s: Service =
            serde_json::from_value(json!({"build": "https://github.com/x/y.git#main"})).unwrap();
        s.resolve_paths(Path::new("/p"), None);
        assert_eq!(
            s.build.unwrap().context.as_deref(),
            Some("https://github.com/x/y.git#main")
        );
    }

    #[test]
    fn project_paths() {
        let mut p: Project = serde_json::from_value(json!({
            "services": {"web": {"volumes": ["./html:/usr/share/nginx/html"]}},
            "secrets": {"s": {"file": "./secret.txt"}},
            "configs": {"c": {"file": "conf/app.conf"}},
            "volumes": {"bound": {"driver": "local", "driver_opts": {"type": "none", "o": "bind", "device": "./data"}},
                        "nfs": {"driver_opts": {"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"}}}
        }))
        .unwrap();
        p.resolve_paths(Path::new("/srv/app"), None);
        assert_eq!(
            p.services["web"].volumes[0].source.as_deref(),
            Some("/srv/app/html")
        );
        assert_eq!(p.secrets["s"].file.as_deref(), Some("/srv/app/secret.txt"));
        assert_eq!(
            p.configs["c"].file.as_deref(),
            Some("/srv/app/conf/app.conf")
        );
        assert_eq!(p.volumes["bound"].driver_opts["device"], "/srv/app/data");
        assert_eq!(p.volumes["nfs"].driver_opts["device"], ":/export");
    }
}
