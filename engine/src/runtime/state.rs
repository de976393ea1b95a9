//! Container records on disk: `<root>/<id>/state.json`, written atomically (temp file,
//! fsync, rename), plus a copy of the config so exec and delete work without the bundle.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Result, RuntimeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Frozen by `pause` (runc's extra state; the OCI spec has no word for it).
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub status: Status,
    /// Init's pid in the runtime's pid namespace (0 before it exists).
    pub pid: i32,
    /// Init's start time (field 22 of /proc/PID/stat): tells a reused pid apart.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub cgroups_path: String,
    /// "v1" or "v2": the tree the group was made in (a hybrid host has both).
    #[serde(default)]
    pub cgroup_version: Option<String>,
    /// Unix seconds.
    pub created: u64,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

/// The directory holding every container's record.
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
}

/// Start time of a process, or None when it is gone.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // fields[0] is field 3 (state); starttime is field 22.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None; // a zombie has exited
    }
    fields.get(19)?.parse().ok()
}

impl Record {
    /// Status as it is now: a created/running container whose init is gone is stopped.
    pub fn current_status(&self) -> Status {
        match self.status {
            Status::Created | Status::Running | Status::Paused if self.pid > 0 => {
                if pid_start_time(self.pid) == Some(self.pid_start) {
                    self.status
                } else {
                    Status::Stopped
                }
            }
            s => s,
        }
    }

    /// The OCI state JSON (runtime spec, "State").
    pub fn oci_state(&self) -> serde_json::Value {
        let status = self.current_status();
        let mut v = serde_json::json!({
            "ociVersion": "1.2.0",
            "id": self.id,
            "status": status.to_string(),
            "bundle": self.bundle,
            "annotations": self.annotations,
        });
        if matches!(status, Status::Created | Status::Running | Status::Paused) {
            v["pid"] = self.pid.into();
        }
        v
    }
}

impl StateRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateRoot { root: root.into() }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn err(path: &Path, m: impl std::fmt::Display) -> RuntimeError {
        RuntimeError::State {
            path: path.to_path_buf(),
            message: m.to_string(),
        }
    }

    /// Claims the ID: mkdir is atomic, so two creators cannot both win.
    pub fn claim(&self, id: &str) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.root).map_err(|e| Self::err(&self.root, e))?;
        crate::fsalloc::mark_top_dir(&self.root);
        let d = self.dir(id);
        match std::fs::create_dir(&d) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
                Ok(d)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(RuntimeError::Exists(id.to_string()))
            }
            Err(e) => Err(Self::err(&d, e)),
        }
    }

    /// Holds an exclusive lock on the container's directory until dropped, so two
    /// commands on one container (start and delete, say) never interleave. None when
    /// the container does not exist.
    pub fn lock(&self, id: &str) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
        let d = self.dir(id);
        let f = match std::fs::File::open(&d) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::err(&d, e)),
        };
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map(Some)
            .map_err(|(_, e)| Self::err(&d, format!("locking: {e}")))
    }

    pub fn save(&self, r: &Record) -> Result<()> {
        let path = self.dir(&r.id).join("state.json");
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(r).expect("record serialises"),
        )
    }

    pub fn load(&self, id: &str) -> Result<Record> {
        let path = self.dir(id).join("state.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => return Err(Self::err(&path, e)),
        };
        serde_json::from_slice(&text).map_err(|e| Self::err(&path, e))
    }

    pub fn save_config(&self, id: &str, spec: &oci_spec::runtime::Spec) -> Result<()> {
        let path = self.dir(id).join("config.json");
        write_atomic(&path, &serde_json::to_vec(spec).expect("spec serialises"))
    }

    pub fn load_config(&self, id: &str) -> Result<oci_spec::runtime::Spec> {
        let path = self.dir(id).join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Self::err(&path, e))?;
        super::spec::parse(&path, &text)
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let d = self.dir(id);
        match std::fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::err(&d, e)),
        }
    }

    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = vec![];
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            if let Some(id) = e.file_name().to_str() {
                if let Ok(r) = self.load(id) {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        // No fsync: the state root lives on a tmpfs (/run) and dies with the boot; the
        // rename alone keeps readers from ever seeing a half-written record.
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| StateRoot::err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_save_load_list_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(tmp.path().join("state"));
        root.claim("c1").unwrap();
        assert!(matches!(root.claim("c1"), Err(RuntimeError::Exists(_))));
        let r = Record {
            id: "c1".into(),
            status: Status::Created,
            pid: std::process::id() as i32,
            pid_start: pid_start_time(std::process::id() as i32).unwrap(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            cgroups_path: "/berth-c1".into(),
            cgroup_version: Some("v1".into()),
            created: 0,
            annotations: HashMap::new(),
        };
        root.save(&r).unwrap();
        let back = root.load("c1").unwrap();
        assert_eq!(back.current_status(), Status::Created);
        assert_eq!(back.oci_state()["pid"], std::process::id());
        let mut dead = back.clone();
        dead.pid_start += 1; // a reused pid is not our init
        assert_eq!(dead.current_status(), Status::Stopped);
        assert_eq!(root.list().unwrap().len(), 1);
        root.remove("c1").unwrap();
        assert!(matches!(root.load("c1"), Err(RuntimeError::NotFound(_))));
    }
}
