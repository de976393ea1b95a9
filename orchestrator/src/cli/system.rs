//! `berth system check [--fix]` and `berth system prune`: find what Berth made that
//! belongs to no live container — state records, sockets, mounts, network namespaces,
//! cgroups, links, nftables chains, leases and networks — and, when asked, remove it.
//!
//! What counts as Berth's, kind by kind (the host is shared: objects of another
//! `BERTH_ROOT`, or of anything else, must never be taken):
//! - records, sockets, namespaces, root filesystems, mounts, leases, networks: by path,
//!   under this `BERTH_ROOT`/`BERTH_RUN`, compared with this root's container records;
//! - cgroups (`berth-<32 hex>`, one hierarchy for every root): this root's container
//!   that no longer runs, or any such cgroup with no process in it, older than a minute
//!   (a container's cgroup has its first process from the moment it is made);
//! - links: a `berthv…` veth whose peer is not inside a container's namespace (Berth's
//!   are made with the peer inside one; both ends on the host is never Berth's doing);
//! - nftables: a chain of Berth's table for one of this root's bridges that no longer
//!   exists (another root's chains may be between their bridge's making and their own).
//!
//! `--root-only` leaves out the two host-wide kinds (empty cgroups of no container,
//! veths with both ends on the host): nothing in them names a root, so beside another
//! root's `berth` (parallel CI jobs, the test suite) they may be its objects of the
//! moment. Marking them with their root would take the engine (cgroups) and networking
//! (links) recording it; until then this is the honest split.
//!
//! Runs under the lock of every project of this root, so no `up` or `down` here is
//! half-way through while it looks. Exit code 1 when leaks are found and left.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};
use berth_engine::container::{Engine, LabelFilter, Status};
use berth_engine::state::Store;
use berth_networking::{Config as NetConfig, Netns, Networking};
use clap::{Args, Subcommand};
use nix::fcntl::{Flock, FlockArg};

use crate::reconcile::backend::Paths;
use crate::reconcile::translate::LABEL_PROJECT;

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// List what belongs to no live container (exit code 1 if anything is found)
    Check(CheckArgs),
    /// Remove what `system check` finds
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Remove what is found
    #[arg(long)]
    pub fix: bool,
    #[command(flatten)]
    pub scope: Scope,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub force: bool,
    #[command(flatten)]
    pub scope: Scope,
}

/// Which objects are judged.
#[derive(Args, Debug, Clone, Copy)]
pub struct Scope {
    /// Judge only what this BERTH_ROOT can be shown to own: skip empty `berth-*` cgroups
    /// of no container and veths with both ends on the host, which may belong to another
    /// root's berth running beside this one (parallel CI jobs, test suites)
    #[arg(long)]
    pub root_only: bool,
}

/// Objects younger than this are not judged: they may be half-way through being made
/// by a `berth` of another root (this root's are excluded by the project locks).
fn min_age() -> Duration {
    std::env::var("BERTH_CHECK_MIN_AGE")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60))
}

/// How to remove one leak.
#[derive(Debug)]
enum Fix {
    /// A container's two state directories.
    Record(String),
    Path(PathBuf),
    Unmount(PathBuf),
    Netns(String),
    Rootfs(String),
    Cgroup(Vec<PathBuf>),
    Link(String),
    Chain(String),
    Lease {
        network: String,
        netns: String,
    },
    Network(String),
}

#[derive(Debug)]
struct Finding {
    kind: &'static str,
    what: String,
    why: String,
    /// None: reported, left to the user (a dead container is `up`'s or `down`'s).
    fix: Option<Fix>,
}

pub fn run(cmd: &SystemCommand) -> anyhow::Result<i32> {
    let (fix, scope) = match cmd {
        SystemCommand::Check(a) => (a.fix, a.scope),
        SystemCommand::Prune(a) => {
            if !a.force && !confirm()? {
                eprintln!("nothing removed");
                return Ok(0);
            }
            (true, a.scope)
        }
    };
    let paths = Paths::from_env();
    let _all = crate::project_lock::lock_all(&paths.run)?;
    let findings = scan(&paths, scope)?;
    if findings.is_empty() {
        eprintln!(
            "nothing leaked: every object under {} and {} belongs to a live container{}",
            paths.root.display(),
            paths.run.display(),
            if scope.root_only {
                " (host-wide cgroups and veths not judged: --root-only)"
            } else {
                ""
            }
        );
        return Ok(0);
    }
    println!("{:<10} {:<60} WHY", "KIND", "OBJECT");
    for f in &findings {
        println!("{:<10} {:<60} {}", f.kind, f.what, f.why);
    }
    if !fix {
        eprintln!(
            "{} leaked object(s); `berth system check --fix` removes them",
            findings.len()
        );
        return Ok(1);
    }
    let net = Networking::with_nftables(NetConfig {
        root: paths.root.clone(),
        run: paths.run.clone(),
        ..NetConfig::from_env()
    });
    let mut left = 0;
    for f in &findings {
        match &f.fix {
            None => {
                left += 1;
                eprintln!(" - left {} {}: {}", f.kind, f.what, f.why);
            }
            Some(fx) => match apply(fx, &paths, &net) {
                Ok(()) => eprintln!(" ✔ removed {} {}", f.kind, f.what),
                Err(e) => {
                    left += 1;
                    eprintln!("error: {} {}: {e:#}", f.kind, f.what);
                }
            },
        }
    }
    Ok(if left == 0 { 0 } else { 1 })
}

fn confirm() -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        bail!("`berth system prune` removes what `berth system check` finds; confirm with -f (standard input is not a terminal)");
    }
    eprint!("This removes every leaked object `berth system check` lists. Continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn age(p: &Path) -> Duration {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// What this root's container records say.
struct Live {
    ids: BTreeSet<String>,
    /// Container names, also the names of their namespaces and root filesystems.
    names: BTreeSet<String>,
    /// Containers whose process runs (or waits for a restart) under a monitor.
    running_ids: BTreeSet<String>,
    projects: BTreeSet<String>,
}

fn scan(paths: &Paths, scope: Scope) -> anyhow::Result<Vec<Finding>> {
    let mut out = Vec::new();
    let store = Store::new(&paths.root, &paths.run);
    let engine = Engine::new(&paths.root, &paths.run).map_err(|e| anyhow!(e))?;
    let mut live = Live {
        ids: BTreeSet::new(),
        names: BTreeSet::new(),
        running_ids: BTreeSet::new(),
        projects: BTreeSet::new(),
    };
    // Records: a directory without a readable record is a `create` that died half-way.
    for id in dir_names(store.root_dir()) {
        match store.load(&id) {
            Ok(r) => {
                live.ids.insert(id);
                live.names.insert(r.config.name.clone());
                if let Some(p) = r.config.labels.get(LABEL_PROJECT) {
                    live.projects.insert(p.clone());
                }
            }
            Err(e) if age(&store.dir(&id)) >= min_age() => out.push(Finding {
                kind: "record",
                what: store.dir(&id).display().to_string(),
                why: format!("no container: {e}"),
                fix: Some(Fix::Record(id)),
            }),
            Err(_) => {}
        }
    }
    for c in engine.list(&LabelFilter::new()).map_err(|e| anyhow!(e))? {
        match c.state {
            Status::Running | Status::Paused | Status::Restarting => {
                live.running_ids.insert(c.id.clone());
            }
            Status::Dead => out.push(Finding {
                kind: "container",
                what: c.name.clone(),
                why: "dead: its monitor is gone, nobody supervises it; `berth up` starts it again under a new monitor, `berth down` removes it".into(),
                fix: None,
            }),
            _ => {}
        }
    }
    // Run directories and control sockets.
    let run_containers = paths.run.join("containers");
    for id in dir_names(&run_containers) {
        let dir = run_containers.join(&id);
        if !live.ids.contains(&id) {
            if !store.dir(&id).exists() {
                out.push(Finding {
                    kind: "record",
                    what: dir.display().to_string(),
                    why: "run directory of no container".into(),
                    fix: Some(Fix::Path(dir)),
                });
            }
            continue;
        }
        let sock = dir.join("control.sock");
        if sock.exists() && std::os::unix::net::UnixStream::connect(&sock).is_err() {
            out.push(Finding {
                kind: "socket",
                what: sock.display().to_string(),
                why: "no monitor listens on it".into(),
                fix: Some(Fix::Path(sock)),
            });
        }
    }
    // Network namespaces and root filesystems, named after their containers.
    let mut reported_names = BTreeSet::new();
    for ns in Netns::list(&paths.run).map_err(|e| anyhow!(e))? {
        if !live.names.contains(ns.name()) {
            reported_names.insert(format!("netns/{}", ns.name()));
            out.push(Finding {
                kind: "netns",
                what: ns.path().display().to_string(),
                why: "network namespace of no container".into(),
                fix: Some(Fix::Netns(ns.name().to_string())),
            });
        }
    }
    let rootfs_dir = paths.root.join("rootfs");
    for name in dir_names(&rootfs_dir) {
        if !live.names.contains(&name) {
            reported_names.insert(format!("rootfs/{name}"));
            out.push(Finding {
                kind: "rootfs",
                what: rootfs_dir.join(&name).display().to_string(),
                why: "root filesystem of no container".into(),
                fix: Some(Fix::Rootfs(name)),
            });
        }
    }
    // Mounts under BERTH_ROOT/BERTH_RUN that the two kinds above do not explain.
    for mp in mount_points()? {
        let Some(rel) = [&paths.root, &paths.run]
            .iter()
            .find_map(|base| mp.strip_prefix(base).ok())
        else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue; // BERTH_ROOT or BERTH_RUN itself (a disk of its own)
        }
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let owner = match parts.as_slice() {
            [kind, name, ..] if kind == "netns" || kind == "rootfs" => {
                if reported_names.contains(&format!("{kind}/{name}")) {
                    continue; // removed with its namespace or root filesystem
                }
                Some(name.clone())
            }
            _ => None,
        };
        if owner.is_some_and(|n| live.names.contains(&n)) {
            continue;
        }
        out.push(Finding {
            kind: "mount",
            what: mp.display().to_string(),
            why: "mount of no container".into(),
            fix: Some(Fix::Unmount(mp)),
        });
    }
    image_tmp(paths, &mut out);
    cgroups(&live, scope, &mut out);
    let bridges = networks(paths, &live, &mut out)?;
    let links = links()?;
    for (name, veth_peer_on_host) in &links {
        if name.starts_with("berthv") && *veth_peer_on_host && !scope.root_only {
            out.push(Finding {
                kind: "link",
                what: name.clone(),
                why: "veth with both ends on the host (Berth's have one in a container)".into(),
                fix: Some(Fix::Link(name.clone())),
            });
        }
    }
    // Chains are judged only for this root's bridges: another root's network may be
    // half-way through being made or removed (chains without their bridge) right now.
    for chain in nft_chains()? {
        let bridge = chain.split('-').next().unwrap_or_default();
        if bridges.contains(bridge) && !links.contains_key(bridge) {
            out.push(Finding {
                kind: "nftables",
                what: format!("inet {NFT_TABLE} {chain}"),
                why: format!("chain of bridge {bridge}, which is gone"),
                fix: Some(Fix::Chain(chain)),
            });
        }
    }
    Ok(out)
}

/// Mount points, from /proc/self/mountinfo (octal escapes undone).
fn mount_points() -> anyhow::Result<Vec<PathBuf>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|mp| {
            let mut s = String::new();
            let mut rest = mp;
            while let Some(i) = rest.find('\\') {
                s.push_str(&rest[..i]);
                match u8::from_str_radix(rest.get(i + 1..i + 4).unwrap_or(""), 8) {
                    Ok(b) => {
                        s.push(b as char);
                        rest = &rest[i + 4..];
                    }
                    Err(_) => {
                        s.push('\\');
                        rest = &rest[i + 1..];
                    }
                }
            }
            s.push_str(rest);
            PathBuf::from(s)
        })
        .collect())
}

/// What a killed pull or unpack left in the image store's `tmp/`: half-unpacked layer
/// directories, and partial downloads of blobs stored since. Judged only while no pull
/// or unpack holds a lock there (they lock `tmp/<kind>-<digest>.lock` while working).
fn image_tmp(paths: &Paths, out: &mut Vec<Finding>) {
    let tmp = paths.root.join("image/tmp");
    let names = dir_names(&tmp);
    let busy = names.iter().filter(|n| n.ends_with(".lock")).any(|n| {
        std::fs::File::open(tmp.join(n))
            .is_ok_and(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err())
    });
    if busy {
        return;
    }
    for n in names {
        let p = tmp.join(&n);
        let why = if n.starts_with("layer-") && p.is_dir() {
            "a layer half-unpacked by a pull or import that was killed"
        } else if let Some(hex) = n.strip_suffix(".partial") {
            if !paths.root.join("image/blobs/sha256").join(hex).exists() {
                continue; // kept on purpose: the next pull resumes it
            }
            "a partial download of a blob stored since"
        } else {
            continue;
        };
        out.push(Finding {
            kind: "image-tmp",
            what: p.display().to_string(),
            why: why.into(),
            fix: Some(Fix::Path(p)),
        });
    }
}

fn is_container_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `berth-<id>` cgroups in every hierarchy, grouped by id.
fn cgroups(live: &Live, scope: Scope, out: &mut Vec<Finding>) {
    let mut by_id: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut hierarchies: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    // cgroup v2 alone: /sys/fs/cgroup itself is the hierarchy.
    hierarchies.push(PathBuf::from("/sys/fs/cgroup"));
    for h in hierarchies {
        for name in dir_names(&h) {
            if let Some(id) = name.strip_prefix("berth-").filter(|i| is_container_id(i)) {
                by_id.entry(id.to_string()).or_default().push(h.join(&name));
            }
        }
    }
    for (id, dirs) in by_id {
        // A process anywhere below (a v1 hierarchy may hold sub-cgroups) makes it busy.
        let busy = dirs.iter().any(|d| {
            walk_dirs(d).iter().chain(std::iter::once(d)).any(|c| {
                std::fs::read_to_string(c.join("cgroup.procs")).is_ok_and(|s| !s.trim().is_empty())
            })
        });
        if busy {
            continue;
        }
        let why = if live.ids.contains(&id) {
            if live.running_ids.contains(&id) {
                continue;
            }
            "cgroup of a container that does not run"
        } else if !scope.root_only && dirs.iter().all(|d| age(d) >= min_age()) {
            "empty cgroup of no container"
        } else {
            continue;
        };
        out.push(Finding {
            kind: "cgroup",
            what: format!(
                "berth-{id} ({} hierarch{})",
                dirs.len(),
                if dirs.len() == 1 { "y" } else { "ies" }
            ),
            why: why.into(),
            fix: Some(Fix::Cgroup(dirs)),
        });
    }
}

/// Leases of containers that are gone, and networks no project of this root uses.
/// Returns the bridges of the networks in use (the others go whole, chains and all).
fn networks(
    paths: &Paths,
    live: &Live,
    out: &mut Vec<Finding>,
) -> anyhow::Result<BTreeSet<String>> {
    let mut bridges = BTreeSet::new();
    let dir = paths.root.join("networks");
    for file in dir_names(&dir) {
        let Some(network) = file.strip_suffix(".json") else {
            continue;
        };
        let path = dir.join(&file);
        let Ok(state) = std::fs::read(&path)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(serde_json::from_slice::<serde_json::Value>(&b)?))
        else {
            out.push(Finding {
                kind: "network",
                what: network.to_string(),
                why: format!("its record {} is unreadable", path.display()),
                fix: Some(Fix::Network(network.to_string())),
            });
            continue;
        };
        let mut leases_left = 0;
        if let Some(leases) = state.get("leases").and_then(|l| l.as_object()) {
            for (netns, lease) in leases {
                if live.names.contains(netns) {
                    leases_left += 1;
                    continue;
                }
                let addr = lease.get("address").and_then(|a| a.as_str()).unwrap_or("?");
                out.push(Finding {
                    kind: "lease",
                    what: format!("{network} {addr} ({netns})"),
                    why: "lease of no container".into(),
                    fix: Some(Fix::Lease {
                        network: network.to_string(),
                        netns: netns.clone(),
                    }),
                });
            }
        }
        let used = leases_left > 0
            || live
                .projects
                .iter()
                .any(|p| network.starts_with(&format!("{p}_")));
        if used {
            if let Some(b) = state.get("bridge").and_then(|b| b.as_str()) {
                bridges.insert(b.to_string());
            }
        } else {
            // Removed whole: bridge, DNS responder, chains, record.
            out.push(Finding {
                kind: "network",
                what: network.to_string(),
                why: "no container of its project is left (bridge, DNS responder, rules)".into(),
                fix: Some(Fix::Network(network.to_string())),
            });
        }
    }
    Ok(bridges)
}

/// `berth…` links: name -> whether it is a veth whose peer is on the host too.
fn links() -> anyhow::Result<BTreeMap<String, bool>> {
    let o = std::process::Command::new("ip")
        .args(["-j", "-d", "link", "show"])
        .output()
        .context("running `ip -j -d link show`")?;
    if !o.status.success() {
        bail!(
            "`ip -j -d link show` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let all: Vec<serde_json::Value> =
        serde_json::from_slice(&o.stdout).context("reading `ip -j -d link show`")?;
    Ok(all
        .iter()
        .filter_map(|l| {
            let name = l.get("ifname")?.as_str()?;
            if !name.starts_with("berth") {
                return None;
            }
            let veth = l.pointer("/linkinfo/info_kind").and_then(|k| k.as_str()) == Some("veth");
            Some((name.to_string(), veth && l.get("link_netnsid").is_none()))
        })
        .collect())
}

const NFT_TABLE: &str = "berth";

fn nft_chains() -> anyhow::Result<Vec<String>> {
    let o = std::process::Command::new("nft")
        .args(["-j", "list", "table", "inet", NFT_TABLE])
        .output()
        .context("running `nft -j list table`")?;
    if !o.status.success() {
        return Ok(Vec::new()); // no table: no chains
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&o.stdout).context("reading `nft -j list table`")?;
    Ok(doc
        .get("nftables")
        .and_then(|n| n.as_array())
        .into_iter()
        .flatten()
        .filter_map(|o| o.pointer("/chain/name")?.as_str().map(String::from))
        .collect())
}

fn apply(fix: &Fix, paths: &Paths, net: &Networking) -> anyhow::Result<()> {
    match fix {
        Fix::Record(id) => Store::new(&paths.root, &paths.run)
            .remove(id)
            .map_err(|e| anyhow!(e)),
        Fix::Path(p) => if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        }
        .with_context(|| format!("removing {}", p.display())),
        Fix::Unmount(p) => nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {}", p.display())),
        Fix::Netns(name) => {
            let ns = Netns::at(&paths.run, name).map_err(|e| anyhow!(e))?;
            net.detach(&ns, None).map_err(|e| anyhow!(e))?;
            ns.remove().map_err(|e| anyhow!(e))
        }
        Fix::Rootfs(name) => {
            berth_engine::rootfs::remove(&paths.root, name).map_err(|e| anyhow!(e))
        }
        Fix::Cgroup(dirs) => {
            for d in dirs {
                // Children first (a v1 hierarchy may hold sub-cgroups).
                let mut subs: Vec<PathBuf> = walk_dirs(d);
                subs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
                for s in subs.iter().chain(std::iter::once(d)) {
                    match std::fs::remove_dir(s) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(e).with_context(|| format!("removing {}", s.display()))
                        }
                    }
                }
            }
            Ok(())
        }
        Fix::Link(name) => {
            let mut nl = berth_networking::netlink::Netlink::open()?;
            nl.delete_link(name).map(|_| ()).map_err(|e| anyhow!(e))
        }
        Fix::Chain(chain) => {
            let script = format!(
                "flush chain inet {NFT_TABLE} {chain}\ndelete chain inet {NFT_TABLE} {chain}\n"
            );
            let mut child = std::process::Command::new("nft")
                .args(["-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .context("running nft")?;
            std::io::Write::write_all(&mut child.stdin.take().expect("piped"), script.as_bytes())?;
            if !child.wait()?.success() {
                bail!("nft refused to delete chain {chain}");
            }
            Ok(())
        }
        Fix::Lease { network, netns } => {
            let ns = Netns::at(&paths.run, netns).map_err(|e| anyhow!(e))?;
            net.detach(&ns, Some(&[network.as_str()]))
                .map_err(|e| anyhow!(e))
        }
        Fix::Network(name) => net.remove_network(name).map_err(|e| anyhow!(e)),
    }
}

fn walk_dirs(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk_dirs(&p));
            out.push(p);
        }
    }
    out
}
