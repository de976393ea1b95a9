//! A RUN step: an overlay of the stage's layers with a fresh upper directory, an OCI
//! bundle made the way the engine makes a container's (`container::spec::build`), and
//! `berth-runtime run` on it in a new process (the CLI is multi-threaded, so nothing
//! here forks into namespaces). The step's output streams back line by line; its
//! changes are the upper directory, which the caller turns into a layer.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_engine::container::{self as ec, spec};
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde_json::json;

use crate::error::{io_err, BuildError, Result};

/// What a RUN step runs, and how.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: String,
    /// Share the host's network (`network: host`); otherwise a namespace with only `lo`.
    pub host_network: bool,
    pub shm_size: Option<u64>,
    /// Lines added to /etc/hosts (`extra_hosts`).
    pub extra_hosts: Vec<(String, String)>,
}

/// Where RUN steps run: the runtime program and the scratch directories.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub runtime: PathBuf,
    /// The runtime's state root (under BERTH_RUN).
    pub state: PathBuf,
    /// Overlay mounts and bundles (under BERTH_ROOT, beside the layers).
    pub scratch: PathBuf,
}

/// The mounted root filesystem of one step; unmounted and deleted on drop. Its lock
/// tells [`sweep`] the step is alive.
pub struct Mounted {
    pub dir: tempfile::TempDir,
    merged: PathBuf,
    mounted: bool,
    _lock: Flock<fs::File>,
}

/// Removes what steps of builds that were killed left under `scratch` (their lock is
/// free): the overlay mount and the directory.
pub fn sweep(scratch: &Path) {
    let Ok(rd) = fs::read_dir(scratch) else {
        return;
    };
    for e in rd.flatten() {
        let lock = e.path().join("lock");
        let Ok(f) = fs::File::open(&lock) else {
            continue;
        };
        if Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok() {
            let merged = e.path().join("merged");
            let _ = umount2(&merged, MntFlags::MNT_DETACH);
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl Mounted {
    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }
    pub fn root(&self) -> &Path {
        &self.merged
    }
    pub fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            umount2(&self.merged, MntFlags::empty())
                .or_else(|_| umount2(&self.merged, MntFlags::MNT_DETACH))
                .map_err(|e| {
                    BuildError::Invalid(format!("unmounting {}: {e}", self.merged.display()))
                })?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

/// Mounts `lowers` (bottom first) under `scratch`: writable (a fresh upper) or not.
pub fn mount_layers(scratch: &Path, lowers: &[PathBuf], writable: bool) -> Result<Mounted> {
    fs::create_dir_all(scratch).map_err(io_err("creating", scratch))?;
    let dir = tempfile::Builder::new()
        .prefix("step-")
        .tempdir_in(scratch)
        .map_err(io_err("creating a directory in", scratch))?;
    let d = dir.path();
    let lock_path = d.join("lock");
    let lock = fs::File::create(&lock_path)
        .map_err(io_err("creating", &lock_path))
        .and_then(|f| {
            Flock::lock(f, FlockArg::LockExclusive)
                .map_err(|(_, e)| io_err("locking", &lock_path)(e.into()))
        })?;
    for sub in ["upper", "work", "merged", "l", "empty"] {
        fs::create_dir_all(d.join(sub)).map_err(io_err("creating", d.join(sub)))?;
    }
    // Short links keep the mount options under a page however many layers there are.
    let mut lower: Vec<String> = Vec::new();
    for (i, l) in lowers.iter().enumerate().rev() {
        let link = d.join("l").join(format!("{i:x}"));
        symlink(l, &link).map_err(io_err("linking", &link))?;
        lower.push(format!("l/{i:x}"));
    }
    // overlayfs needs two lowers without an upper, one with.
    if lower.is_empty() || (!writable && lower.len() < 2) {
        lower.push("empty".into());
    }
    let abs: Vec<String> = lower
        .iter()
        .map(|l| d.join(l).display().to_string())
        .collect();
    let mut data = format!("lowerdir={}", abs.join(":"));
    if writable {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            d.join("upper").display(),
            d.join("work").display()
        ));
    }
    if d.to_string_lossy().contains([',', ':']) {
        return Err(BuildError::Invalid(format!(
            "{} contains ',' or ':', which overlayfs options cannot carry",
            d.display()
        )));
    }
    if data.len() >= 4000 {
        return Err(BuildError::Invalid(format!(
            "{} layers make the overlayfs options longer than a page: merge RUN steps",
            lowers.len()
        )));
    }
    let merged = d.join("merged");
    let flags = if writable {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| BuildError::Invalid(format!("mounting overlayfs on {}: {e}", merged.display())))?;
    Ok(Mounted {
        dir,
        merged,
        mounted: true,
        _lock: lock,
    })
}

impl Sandbox {
    /// Runs `step` on `root` (a writable mount). Output lines go to `out`; returns the
    /// exit code.
    pub fn run(&self, root: &Mounted, step: &Step, out: &mut dyn FnMut(&str)) -> Result<i32> {
        let id = format!(
            "build-{}",
            root.dir
                .path()
                .file_name()
                .map(|n| n
                    .to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), ""))
                .unwrap_or_default()
        );
        let cfg = ec::ContainerConfig {
            name: id.clone(),
            rootfs: root.root().to_path_buf(),
            image: ec::ImageConfig {
                env: step.env.clone(),
                working_dir: Some(step.workdir.clone()),
                user: step.user.clone(),
                ..Default::default()
            },
            entrypoint: Some(step.argv.clone()),
            command: Some(Vec::new()),
            hostname: Some("berth-build".into()),
            ..Default::default()
        };
        let mut spec = spec::build(&id, &cfg).map_err(|e| BuildError::Invalid(e.to_string()))?;
        if step.host_network {
            if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "network");
            }
        }
        if let Some(size) = step.shm_size {
            if let Some(ms) = spec["mounts"].as_array_mut() {
                for m in ms.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
                    m["options"] = json!([
                        "nosuid",
                        "noexec",
                        "nodev",
                        "mode=1777",
                        format!("size={size}")
                    ]);
                }
            }
        }
        let bundle = root.dir.path().join("bundle");
        fs::create_dir_all(&bundle).map_err(io_err("creating", &bundle))?;
        // Name resolution files are mounted over the image's, so they stay out of the layer.
        let etc = root.root().join("etc");
        let mut extra_mounts = Vec::new();
        if etc.join("hosts").is_file() && !step.extra_hosts.is_empty()
            || step.host_network && etc.join("hosts").is_file()
        {
            let mut hosts =
                String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
            for (h, ip) in &step.extra_hosts {
                hosts.push_str(&format!("{ip}\t{h}\n"));
            }
            let p = bundle.join("hosts");
            fs::write(&p, hosts).map_err(io_err("writing", &p))?;
            extra_mounts.push(json!({"destination": "/etc/hosts", "type": "bind", "source": p, "options": ["rbind", "ro"]}));
        }
        if step.host_network && etc.join("resolv.conf").is_file() {
            extra_mounts.push(json!({"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf", "options": ["rbind", "ro"]}));
        }
        if let Some(ms) = spec["mounts"].as_array_mut() {
            ms.extend(extra_mounts);
        }
        let cfg_path = bundle.join("config.json");
        fs::write(
            &cfg_path,
            serde_json::to_vec_pretty(&spec).unwrap_or_default(),
        )
        .map_err(io_err("writing", &cfg_path))?;
        fs::create_dir_all(&self.state).map_err(io_err("creating", &self.state))?;
        let (r, w) =
            nix::unistd::pipe().map_err(|e| io_err("making a pipe for", &bundle)(e.into()))?;
        let w2 = w
            .try_clone()
            .map_err(io_err("making a pipe for", &bundle))?;
        let mut child = Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.state)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .stderr(Stdio::from(w2))
            .spawn()
            .map_err(|e| {
                BuildError::Invalid(format!(
                    "cannot start the runtime {} ({e}): berth-runtime must be installed beside berth",
                    self.runtime.display()
                ))
            })?;
        // The command's own copies of the write ends are gone with it: EOF when it exits.
        let reader = BufReader::new(fs::File::from(r));
        for line in reader.split(b'\n') {
            match line {
                Ok(l) => out(String::from_utf8_lossy(&l).trim_end_matches('\r')),
                Err(_) => break,
            }
        }
        let status = child.wait().map_err(io_err("waiting for", &self.runtime))?;
        Ok(status.code().unwrap_or(128 + 9))
    }
}
