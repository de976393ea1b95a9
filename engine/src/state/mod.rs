//! Container records on disk. `BERTH_ROOT/containers/<id>/record.json` survives a
//! reboot (config, last exit, restart count, health); `BERTH_RUN/containers/<id>/`
//! dies with the boot (monitor pid, control socket). Records are written atomically
//! (temp file, fsync, rename) under an exclusive `flock` on the container's `lock`
//! file, so a monitor and two `berth` commands never lose each other's updates.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::container::config::ContainerConfig;

/// Errors reading or writing records.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container state {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("container record {path} is damaged: {message} (remove the container with force)")]
    Corrupt { path: PathBuf, message: String },
    #[error("no container record {0}")]
    Missing(String),
}

pub type Result<T> = std::result::Result<T, StateError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a container is in its life, as its monitor last wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started (or stopped and kept).
    Created,
    Running,
    /// Frozen by the cgroup freezer.
    Paused,
    /// Exited; the monitor waits out the back-off before starting it again.
    Restarting,
    Exited,
    /// Its monitor is gone while the record says it was supervised: nobody records
    /// exits or applies the restart policy any more. Stop or remove it.
    Dead,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        })
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub start: SystemTime,
    pub end: SystemTime,
    /// -1 when the probe could not run or was killed by the timeout.
    pub exit_code: i32,
    /// Its output, cut to 4 KiB.
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: u32,
    /// The last five probes, oldest first.
    pub log: VecDeque<ProbeResult>,
}

/// Everything known about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub config: ContainerConfig,
    pub created: SystemTime,
    pub status: Status,
    /// Host pid of the container's first process while it runs.
    pub pid: i32,
    pub exit_code: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Restarts done by the monitor since the last `start`.
    pub restart_count: u32,
    /// What the user last asked for: true after `start`, false after `stop`.
    /// `unless-stopped` and reboot recovery read it.
    pub desired_running: bool,
    pub health: Option<Health>,
    /// Why the last start or the monitor failed, if it did.
    pub error: Option<String>,
    pub monitor_pid: i32,
    /// Start time (/proc/PID/stat field 22) of the monitor, to tell a reused pid apart.
    pub monitor_start: u64,
}

impl Record {
    /// The record of a container just created from `config`: not started, nothing run.
    pub fn created(id: &str, config: ContainerConfig) -> Record {
        Record {
            id: id.to_string(),
            config,
            created: SystemTime::now(),
            status: Status::Created,
            pid: 0,
            exit_code: None,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            desired_running: false,
            health: None,
            error: None,
            monitor_pid: 0,
            monitor_start: 0,
        }
    }
}

/// The record files of every container.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    run: PathBuf,
}

/// Holds a container's lock until dropped.
pub struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: flock on an fd we own.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Store {
    pub fn new(root: &Path, run: &Path) -> Store {
        Store {
            root: root.join("containers"),
            run: run.join("containers"),
        }
    }

    /// `BERTH_ROOT/containers/<id>`: record, OCI bundle, logs.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// `BERTH_RUN/containers/<id>`: control socket, monitor's own log.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.run.join(id)
    }

    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// Creates the directories of a new container.
    pub fn make_dirs(&self, id: &str) -> Result<()> {
        let d = self.dir(id);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
        for parent in [d.parent(), self.run_dir(id).parent()]
            .into_iter()
            .flatten()
        {
            crate::fsalloc::mark_top_dir(parent);
        }
        // The record holds the environment (secrets, often) and the log: root only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).map_err(io(&d))?;
        Ok(())
    }

    /// Takes the container's exclusive lock on its record (blocking).
    pub fn lock(&self, id: &str) -> Result<Lock> {
        self.lock_named(id, "lock")
    }

    /// Serialises starts of one container: held by `start` until its monitor runs,
    /// so two callers can never give a container two monitors. (Apart from the record
    /// lock, which the new monitor itself needs meanwhile.)
    pub fn start_lock(&self, id: &str) -> Result<Lock> {
        self.lock_named(id, "start.lock")
    }

    fn lock_named(&self, id: &str, name: &str) -> Result<Lock> {
        let p = self.dir(id).join(name);
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    StateError::Missing(id.to_string())
                } else {
                    StateError::Io {
                        path: p.clone(),
                        source: e,
                    }
                }
            })?;
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(StateError::Io { path: p, source: e });
            }
        }
    }

    pub fn load(&self, id: &str) -> Result<Record> {
        let p = self.dir(id).join("record.json");
        let data = match std::fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing(id.to_string()))
            }
            Err(e) => return Err(StateError::Io { path: p, source: e }),
        };
        serde_json::from_slice(&data).map_err(|e| StateError::Corrupt {
            path: p,
            message: e.to_string(),
        })
    }

    /// Writes the record; the caller holds the lock.
    pub fn save(&self, rec: &Record) -> Result<()> {
        let p = self.dir(&rec.id).join("record.json");
        let data = serde_json::to_vec_pretty(rec).expect("records serialise");
        write_atomic(&p, &data, true)
    }

    /// [`Self::save`] without the fsync, for a caller that syncs later ([`sync_files`]).
    pub fn save_unsynced(&self, rec: &Record) -> Result<()> {
        let p = self.dir(&rec.id).join("record.json");
        let data = serde_json::to_vec_pretty(rec).expect("records serialise");
        write_atomic(&p, &data, false)
    }

    /// Load, change, save under the lock.
    pub fn update<T>(&self, id: &str, f: impl FnOnce(&mut Record) -> T) -> Result<T> {
        let _l = self.lock(id)?;
        let mut rec = self.load(id)?;
        let out = f(&mut rec);
        self.save(&rec)?;
        Ok(out)
    }

    /// IDs of every container with a record.
    pub fn ids(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("record.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        out.sort();
        out
    }

    /// Directories with no record: what a creator killed between making a container's
    /// directories and saving its record leaves behind (dot entries are Berth's locks).
    pub fn incomplete_ids(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir() && !e.path().join("record.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    /// Removes everything of a container (both directories).
    pub fn remove(&self, id: &str) -> Result<()> {
        for d in [self.run_dir(id), self.dir(id)] {
            // A monitor that has just recorded its container's end may still be closing
            // its files there: a directory that fills while it is emptied is tried again.
            let mut tries = 0;
            loop {
                match std::fs::remove_dir_all(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < 50 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => return Err(StateError::Io { path: d, source: e }),
                }
            }
        }
        Ok(())
    }
}

/// Temp file, optional fsync, rename: a reader sees the old or the new file, never a
/// half-written one. `sync` for files on persistent disks (BERTH_ROOT).
pub fn write_atomic(path: &Path, data: &[u8], sync: bool) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_data()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io(path))
}

/// Makes `names` in `dir` (written with [`write_atomic`] unsynced) and the directory's
/// entries for them durable.
pub fn sync_files(dir: &Path, names: &[&str]) -> Result<()> {
    for n in names {
        let p = dir.join(n);
        File::open(&p).and_then(|f| f.sync_data()).map_err(io(&p))?;
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Start time of a live (non-zombie) process, or None.
pub fn process_start(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    crate::runtime::state::pid_start_time(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_is_atomic_and_locked() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(&t.path().join("root"), &t.path().join("run"));
        s.make_dirs("c1").unwrap();
        let rec = Record::created("c1", ContainerConfig::default());
        s.save(&rec).unwrap();
        s.update("c1", |r| r.restart_count += 2).unwrap();
        assert_eq!(s.load("c1").unwrap().restart_count, 2);
        assert_eq!(s.ids(), vec!["c1".to_string()]);
        assert!(matches!(s.load("nope"), Err(StateError::Missing(_))));
        std::fs::write(s.dir("c1").join("record.json"), "{").unwrap();
        assert!(matches!(s.load("c1"), Err(StateError::Corrupt { .. })));
        s.remove("c1").unwrap();
        assert!(s.ids().is_empty());
        // A creator killed before saving leaves a directory with no record.
        s.make_dirs("c2").unwrap();
        std::fs::create_dir_all(t.path().join("root/.names")).unwrap();
        assert!(s.ids().is_empty());
        assert_eq!(s.incomplete_ids(), vec!["c2".to_string()]);
    }
}
