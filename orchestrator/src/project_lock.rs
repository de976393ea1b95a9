//! One `berth` at a time per project: `up`, `down` and the other verbs that change a
//! project's containers hold an exclusive `flock` on `BERTH_RUN/projects/NAME.lock`.
//! A second one on the same project says what it waits for and waits (up to
//! `BERTH_LOCK_TIMEOUT` seconds, default 900), then refuses clearly; different
//! projects never wait for each other. The kernel drops the lock when its holder
//! dies, however it dies, so a killed `berth` never leaves a project locked.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Held while the verb runs; dropping it (or dying) unlocks.
pub struct ProjectLock {
    _all: Flock<File>,
    _project: Option<Flock<File>>,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);

fn timeout() -> Duration {
    std::env::var("BERTH_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Takes project `project`'s lock for `verb` (`up`, `down`, ...), waiting for another
/// `berth` that holds it. Also holds the lock of all projects shared, which
/// `berth system check` takes alone.
pub fn lock(run: &Path, project: &str, verb: &str) -> anyhow::Result<ProjectLock> {
    let all = acquire(run, ".all", false, "Berth's projects", verb)?;
    let one = acquire(run, project, true, &format!("project {project}"), verb)?;
    Ok(ProjectLock {
        _all: all,
        _project: Some(one),
    })
}

/// Every project of this `BERTH_RUN` at once (for `berth system check`): waits until no
/// `up`, `down` or other changing verb runs, and keeps new ones waiting.
pub fn lock_all(run: &Path) -> anyhow::Result<ProjectLock> {
    let all = acquire(run, ".all", true, "Berth's projects", "system check")?;
    Ok(ProjectLock {
        _all: all,
        _project: None,
    })
}

fn acquire(
    run: &Path,
    file: &str,
    exclusive: bool,
    what: &str,
    verb: &str,
) -> anyhow::Result<Flock<File>> {
    let dir = run.join("projects");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the project lock directory {}", dir.display()))?;
    let path = dir.join(format!("{file}.lock"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the project lock {}", path.display()))?;
    let started = Instant::now();
    let limit = timeout();
    let mut said = false;
    let kind = if exclusive {
        FlockArg::LockExclusiveNonblock
    } else {
        FlockArg::LockSharedNonblock
    };
    let mut held = loop {
        match Flock::lock(file, kind) {
            Ok(l) => break l,
            Err((f, Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = (&f).rewind();
                let _ = (&f).read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another berth".to_string()
                } else {
                    format!("another berth ({holder})")
                };
                if started.elapsed() >= limit {
                    bail!(
                        "{who} is working on {what} and did not finish within {limit:?}; \
                         run `berth {verb}` again when it has (BERTH_LOCK_TIMEOUT sets how long to wait)"
                    );
                }
                if !said {
                    eprintln!("waiting for {who} on {what}");
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(100));
                file = f;
            }
            Err((_, e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    };
    if exclusive {
        // Who holds it, for the message of the next one to come.
        let _ = held.set_len(0);
        let _ = held.rewind();
        let _ = writeln!(held, "pid {}, `berth {verb}`", std::process::id());
    }
    Ok(held)
}
