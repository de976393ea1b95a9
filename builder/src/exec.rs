//! The build: stages in dependency order (independent ones in parallel threads), each
//! instruction applied to the stage's state (layers, image config, cache chain), RUN in
//! the sandbox, COPY/ADD written as layers directly, and the target stage stored as an
//! image with its tags.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use berth_engine::image::{self, manifest, unpack, Digest, ImageRecord, Images, Reference};
use serde_json::{json, Map, Value};

use crate::cache::{self, Cache, Entry};
use crate::copy::{self, Request, Source};
use crate::dockerfile::{self, words, Command, Copy, Dockerfile, Health, Kind, Stage};
use crate::error::{io_err, BuildError, Result};
use crate::ignore::Ignore;
use crate::layer::{Layer, LayerWriter, Overrides};
use crate::run::{self, Sandbox, Step};
use crate::view::View;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the Dockerfile comes from.
#[derive(Debug, Clone)]
pub enum DockerfileSource {
    /// A path, relative to the context unless absolute.
    Path(PathBuf),
    /// The text itself (`dockerfile_inline`).
    Inline(String),
}

/// What to build and how.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub context: PathBuf,
    pub dockerfile: DockerfileSource,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// Names for the image; the first is the main one.
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// Pull base images even when they are in the store.
    pub pull: bool,
    /// `none` (default) or `host`.
    pub network: Option<String>,
    pub shm_size: Option<u64>,
    pub extra_hosts: Vec<(String, String)>,
    /// `berth-runtime` (default: beside this program, else /usr/local/bin).
    pub runtime: Option<PathBuf>,
    /// BERTH_RUN, for the runtime's state.
    pub run_root: PathBuf,
}

impl BuildOptions {
    pub fn new(context: impl Into<PathBuf>) -> BuildOptions {
        BuildOptions {
            context: context.into(),
            dockerfile: DockerfileSource::Path("Dockerfile".into()),
            build_args: BTreeMap::new(),
            target: None,
            tags: Vec::new(),
            labels: BTreeMap::new(),
            no_cache: false,
            pull: false,
            network: None,
            shm_size: None,
            extra_hosts: Vec::new(),
            runtime: None,
            run_root: std::env::var_os("BERTH_RUN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/run/berth")),
        }
    }
}

/// Where the build reports what it does.
pub trait Progress: Sync {
    /// A step starts (`cached`: it was found in the cache and will not run).
    fn step(&self, number: usize, stage: &str, text: &str, cached: bool);
    /// A line of a RUN step's output.
    fn output(&self, number: usize, line: &str);
    /// A step finished.
    fn done(&self, _number: usize, _seconds: f64) {}
    fn warn(&self, message: &str);
}

/// Says nothing.
pub struct Quiet;
impl Progress for Quiet {
    fn step(&self, _: usize, _: &str, _: &str, _: bool) {}
    fn output(&self, _: usize, _: &str) {}
    fn warn(&self, _: &str) {}
}

#[derive(Debug, Clone)]
pub struct BuildReport {
    pub record: ImageRecord,
    /// The image ID (config digest).
    pub id: Digest,
    /// Steps that made or reused a layer.
    pub steps: usize,
    pub cached: usize,
    /// RUN steps that ran a container.
    pub runs: usize,
}

/// A stage as it is built.
#[derive(Debug, Clone)]
struct State {
    layers: Vec<Layer>,
    /// The whole image config document.
    config: Map<String, Value>,
    history: Vec<Value>,
    chain: String,
    args: BTreeMap<String, Option<String>>,
    shell: Vec<String>,
    cmd_set: bool,
    created: Option<String>,
}

impl State {
    fn cfg(&mut self) -> &mut Map<String, Value> {
        let c = self
            .config
            .entry("config")
            .or_insert_with(|| Value::Object(Map::new()));
        if !c.is_object() {
            *c = Value::Object(Map::new());
        }
        c.as_object_mut().expect("made an object above")
    }
    fn cfg_str(&self, key: &str) -> Option<String> {
        self.config
            .get("config")
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    }
    fn env(&self) -> Vec<String> {
        self.config
            .get("config")
            .and_then(|c| c.get("Env"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn env_get(&self, k: &str) -> Option<String> {
        self.env().iter().find_map(|e| {
            e.split_once('=')
                .filter(|(a, _)| *a == k)
                .map(|(_, v)| v.to_string())
        })
    }
    fn env_set(&mut self, k: &str, v: &str) {
        let mut env = self.env();
        env.retain(|e| e.split_once('=').map(|(a, _)| a) != Some(k));
        env.push(format!("{k}={v}"));
        self.cfg().insert("Env".into(), json!(env));
    }
    /// ENV wins over ARG, as in Docker.
    fn lookup(&self, k: &str) -> Option<String> {
        self.env_get(k)
            .or_else(|| self.args.get(k).cloned().flatten())
    }
    fn workdir(&self) -> String {
        self.cfg_str("WorkingDir").unwrap_or_else(|| "/".into())
    }
    fn map_insert(&mut self, key: &str, k: String, v: Value) {
        let m = self.cfg().entry(key).or_insert_with(|| json!({}));
        if !m.is_object() {
            *m = json!({});
        }
        if let Some(o) = m.as_object_mut() {
            o.insert(k, v);
        }
    }
}

/// Everything the stages share during one build.
struct Ctx<'a> {
    images: &'a Images,
    opts: &'a BuildOptions,
    df: Dockerfile,
    file: String,
    context: PathBuf,
    ignore: Ignore,
    cache: Cache,
    sandbox: Sandbox,
    progress: &'a dyn Progress,
    globals: BTreeMap<String, Option<String>>,
    used_args: Mutex<HashSet<String>>,
    counter: AtomicUsize,
    steps: AtomicUsize,
    cached: AtomicUsize,
    runs: AtomicUsize,
    done: Mutex<HashMap<usize, State>>,
}

fn now_rfc3339() -> String {
    // RFC 3339 in UTC without a date crate: civil-from-days (Howard Hinnant).
    let secs = crate::layer::now() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `berth-runtime` beside this program (or one directory up, for test binaries).
pub fn default_runtime() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            let p = dir.join("berth-runtime");
            if p.exists() {
                return p;
            }
        }
    }
    PathBuf::from("/usr/local/bin/berth-runtime")
}

/// Platform values BuildKit predefines (`ARG TARGETARCH` picks them up).
fn predefined(name: &str) -> Option<String> {
    let (os, arch, variant) = manifest::host_platform();
    let platform = match &variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    };
    Some(match name {
        "TARGETPLATFORM" | "BUILDPLATFORM" => platform,
        "TARGETOS" | "BUILDOS" => os,
        "TARGETARCH" | "BUILDARCH" => arch,
        "TARGETVARIANT" | "BUILDVARIANT" => variant.unwrap_or_default(),
        _ => return None,
    })
}

/// Reads the Dockerfile and checks everything that can be checked before building.
pub fn load(opts: &BuildOptions) -> Result<(Dockerfile, String)> {
    let (text, file) = match &opts.dockerfile {
        DockerfileSource::Inline(t) => (t.clone(), "dockerfile_inline".to_string()),
        DockerfileSource::Path(p) => {
            let path = if p.is_absolute() {
                p.clone()
            } else {
                opts.context.join(p)
            };
            let t = std::fs::read_to_string(&path).map_err(|e| {
                BuildError::Invalid(format!(
                    "cannot read the Dockerfile {}: {e}",
                    path.display()
                ))
            })?;
            (t, path.display().to_string())
        }
    };
    let df = dockerfile::parse(&text).map_err(|e| e.in_file(&file))?;
    Ok((df, file))
}

/// Builds the image `opts` describe.
pub fn build(images: &Images, opts: &BuildOptions, progress: &dyn Progress) -> Result<BuildReport> {
    let (df, file) = load(opts)?;
    let context = std::fs::canonicalize(&opts.context).map_err(|e| {
        BuildError::Invalid(format!(
            "the build context {} is not a directory here: {e}",
            opts.context.display()
        ))
    })?;
    if !context.is_dir() {
        return Err(BuildError::Invalid(format!(
            "the build context {} is not a directory",
            context.display()
        )));
    }
    for t in &opts.tags {
        Reference::parse(t)?;
    }
    match opts.network.as_deref() {
        None | Some("none") | Some("default") | Some("host") => {}
        Some(other) => {
            return Err(BuildError::Invalid(format!(
                "build network {other:?}: Berth builds with `none` (the default) or `host`"
            )))
        }
    }
    let ignore = std::fs::read_to_string(context.join(".dockerignore"))
        .map(|t| Ignore::parse(&t))
        .unwrap_or_default();
    let root = images.berth_root().to_path_buf();
    let mut ctx = Ctx {
        images,
        opts,
        file,
        context,
        ignore,
        cache: Cache::open(&root),
        sandbox: Sandbox {
            runtime: opts.runtime.clone().unwrap_or_else(default_runtime),
            state: opts.run_root.join("build-runtime"),
            scratch: root.join("build/tmp"),
        },
        progress,
        globals: BTreeMap::new(),
        used_args: Mutex::new(HashSet::new()),
        counter: AtomicUsize::new(0),
        steps: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
        runs: AtomicUsize::new(0),
        done: Mutex::new(HashMap::new()),
        df: df.clone(),
    };
    // Global ARGs: build args override their defaults; each may use the ones before it.
    for (line, words_) in &df.global_args {
        for w in words_ {
            let (name, value) = ctx.arg_value(
                w,
                &|d| ctx.expand(*line, d, &|k| ctx.globals.get(k).cloned().flatten()),
                &predefined,
            )?;
            ctx.globals.insert(name, value);
        }
    }
    let target = match &opts.target {
        Some(t) => {
            let tl = t.to_ascii_lowercase();
            df.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(tl.as_str()))
                .ok_or_else(|| {
                    BuildError::Invalid(format!(
                        "target stage {t:?} is not in {} (stages: {})",
                        ctx.file,
                        df.stages
                            .iter()
                            .filter_map(|s| s.name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?
        }
        None => df.stages.len() - 1,
    };
    let deps: Vec<Vec<usize>> = (0..df.stages.len())
        .map(|i| ctx.stage_deps(i))
        .collect::<Result<_>>()?;
    // Only the stages the target needs, in waves of independent ones.
    let mut needed = HashSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed.insert(i) {
            todo.extend(deps[i].iter().copied());
        }
    }
    let _shared = images.store().lock_shared()?;
    run::sweep(&ctx.sandbox.scratch);
    loop {
        let done: HashSet<usize> = ctx
            .done
            .lock()
            .map(|d| d.keys().copied().collect())
            .unwrap_or_default();
        if done.contains(&target) {
            break;
        }
        let ready: Vec<usize> = (0..df.stages.len())
            .filter(|i| needed.contains(i) && !done.contains(i))
            .filter(|i| deps[*i].iter().all(|d| done.contains(d)))
            .collect();
        if ready.is_empty() {
            return Err(BuildError::Invalid(
                "the stages depend on each other in a circle".into(),
            ));
        }
        let ctx_ref = &ctx;
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let hs: Vec<_> = ready
                .iter()
                .map(|&i| {
                    s.spawn(move || {
                        let st = ctx_ref.build_stage(i)?;
                        if let Ok(mut d) = ctx_ref.done.lock() {
                            d.insert(i, st);
                        }
                        Ok(())
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BuildError::Invalid("a build thread panicked".into()))
                    })
                })
                .collect()
        });
        for r in results {
            r?;
        }
    }
    let state = ctx
        .done
        .lock()
        .ok()
        .and_then(|mut d| d.remove(&target))
        .ok_or_else(|| BuildError::Invalid("the target stage was not built".into()))?;
    let unused: Vec<String> = {
        let used = ctx.used_args.lock().map(|u| u.clone()).unwrap_or_default();
        opts.build_args
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect()
    };
    if !unused.is_empty() {
        progress.warn(&format!(
            "build-args not consumed by any ARG: {}",
            unused.join(", ")
        ));
    }
    let (record_name, record, id) = ctx.commit(state)?;
    drop(_shared);
    let mut recs = vec![ImageRecord {
        name: record_name,
        ..record.clone()
    }];
    for t in opts.tags.iter().skip(1) {
        recs.push(ImageRecord {
            name: Reference::parse(t)?.to_string(),
            ..record.clone()
        });
    }
    images.store().put_records(&recs)?;
    Ok(BuildReport {
        record: recs.swap_remove(0),
        id,
        steps: ctx.steps.load(Ordering::Relaxed),
        cached: ctx.cached.load(Ordering::Relaxed),
        runs: ctx.runs.load(Ordering::Relaxed),
    })
}

fn stage_label(s: &Stage, i: usize) -> String {
    s.name.clone().unwrap_or_else(|| format!("stage-{i}"))
}

impl Ctx<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> BuildError {
        BuildError::at(line, msg).in_file(&self.file)
    }

    /// `NAME[=DEFAULT]` of an ARG: the build arg if given (noted as used), else the
    /// default substituted by `expand`, else `fallback(NAME)`.
    fn arg_value(
        &self,
        word: &str,
        expand: &dyn Fn(&str) -> Result<String>,
        fallback: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, Option<String>)> {
        let (name, default) = match word.split_once('=') {
            Some((n, d)) => (n, Some(d)),
            None => (word, None),
        };
        let value = match (self.opts.build_args.get(name), default) {
            (Some(v), _) => {
                self.used(name);
                Some(v.clone())
            }
            (None, Some(d)) => Some(expand(d)?),
            (None, None) => fallback(name),
        };
        Ok((name.to_string(), value))
    }

    fn used(&self, name: &str) {
        if let Ok(mut u) = self.used_args.lock() {
            u.insert(name.to_string());
        }
    }

    fn expand(
        &self,
        line: usize,
        word: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String> {
        words::expand(word, self.df.escape, lookup).map_err(|m| self.err(line, m))
    }

    /// A stage named (or numbered) `name`, before stage `before`.
    fn stage_ref(&self, name: &str, before: usize) -> Option<usize> {
        let n = name.to_ascii_lowercase();
        if let Some(i) = self.df.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(n.as_str()))
        {
            return Some(i);
        }
        n.parse::<usize>().ok().filter(|i| *i < before)
    }

    fn stage_deps(&self, i: usize) -> Result<Vec<usize>> {
        let s = &self.df.stages[i];
        let mut out = Vec::new();
        let g = |k: &str| self.globals.get(k).cloned().flatten();
        let base = self.expand(s.line, &s.base, &g)?;
        if let Some(d) = self.stage_ref(&base, i) {
            out.push(d);
        }
        for ins in &s.instructions {
            if let Kind::Copy(Copy { from: Some(f), .. }) = &ins.kind {
                // `--from` may use the stage's ARGs; the globals are the best guess here.
                let f = self.expand(ins.line, f, &g).unwrap_or_else(|_| f.clone());
                if let Some(d) = self.stage_ref(&f, i) {
                    out.push(d);
                } else if self
                    .df
                    .stages
                    .iter()
                    .skip(i)
                    .any(|s| s.name.as_deref() == Some(f.to_ascii_lowercase().as_str()))
                {
                    return Err(self.err(ins.line, format!("COPY --from={f}: stage {f} is defined after this one; a stage can only copy from stages before it")));
                }
            }
        }
        Ok(out)
    }

    fn next_step(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// An image from the store (pulled if missing, or always with --pull).
    fn image(&self, line: usize, name: &str, pull: bool) -> Result<image::Image> {
        if !pull {
            if let Ok(i) = self.images.resolve(name) {
                return Ok(i);
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err("starting a runtime for", "pull"))?;
        let pulled = rt.block_on(image::pull(
            self.images,
            name,
            &image::RegistryOptions::default(),
            Arc::new(image::registry::Quiet),
        ));
        match pulled {
            Ok(rep) => Ok(self.images.image(rep.record)?),
            Err(e) => Err(self.err(
                line,
                format!("image {name} is not in the store and could not be pulled: {e}"),
            )),
        }
    }

    fn state_of_image(&self, img: &image::Image) -> Result<State> {
        let bytes = self.images.store().read_blob(&img.config_digest)?;
        let config: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|e| BuildError::Invalid(format!("image {}: config: {e}", img.record.name)))?;
        let layers = img
            .layers()?
            .into_iter()
            .zip(img.manifest.layers().iter())
            .map(|((blob, diff_id), desc)| {
                // Pulled layers may be compressed: the blob and the diff_id differ.
                unpack::ensure_layer(self.images.store(), &blob, &diff_id)?;
                Ok(Layer {
                    blob: (blob != diff_id).then_some(blob),
                    digest: diff_id,
                    size: desc.size(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let history = config
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let created = config
            .get("created")
            .and_then(Value::as_str)
            .map(String::from);
        Ok(State {
            layers,
            config,
            history,
            chain: cache::chain("image", img.record.manifest.as_str()),
            args: BTreeMap::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            cmd_set: false,
            created,
        })
    }

    fn scratch() -> State {
        let (os, arch, variant) = manifest::host_platform();
        let mut config = Map::new();
        config.insert("architecture".into(), json!(arch));
        config.insert("os".into(), json!(os));
        if let Some(v) = variant {
            config.insert("variant".into(), json!(v));
        }
        config.insert("config".into(), json!({"Env": [DEFAULT_PATH]}));
        State {
            layers: Vec::new(),
            config,
            history: Vec::new(),
            chain: cache::chain("scratch", ""),
            args: BTreeMap::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            cmd_set: false,
            created: None,
        }
    }

    fn layer_dirs(&self, layers: &[Layer]) -> Vec<PathBuf> {
        layers
            .iter()
            .map(|l| self.images.store().layer_path(&l.digest))
            .collect()
    }

    fn build_stage(&self, i: usize) -> Result<State> {
        let s = &self.df.stages[i];
        let label = stage_label(s, i);
        let n = self.next_step();
        let g = |k: &str| self.globals.get(k).cloned().flatten();
        let base = self.expand(s.line, &s.base, &g)?;
        if base.is_empty() {
            return Err(self.err(
                s.line,
                format!(
                    "FROM {}: the image name is empty after substitution",
                    s.base
                ),
            ));
        }
        if let Some(p) = &s.platform {
            let p = self.expand(s.line, p, &g)?;
            let (os, arch, _) = manifest::host_platform();
            if !p.starts_with(&format!("{os}/{arch}")) && !p.starts_with("$") {
                self.progress.warn(&format!(
                    "{}:{}: FROM --platform={p}: Berth builds for this host ({os}/{arch}) only",
                    self.file, s.line
                ));
            }
        }
        self.progress
            .step(n, &label, &format!("FROM {base}"), false);
        let mut st = if base.eq_ignore_ascii_case("scratch") {
            Self::scratch()
        } else if let Some(d) = self.stage_ref(&base, i) {
            let mut st = self
                .done
                .lock()
                .ok()
                .and_then(|m| m.get(&d).cloned())
                .ok_or_else(|| self.err(s.line, format!("stage {base} was not built")))?;
            st.args.clear();
            st
        } else {
            let img = self.image(s.line, &base, self.opts.pull)?;
            self.state_of_image(&img)?
        };
        let total = s.instructions.len();
        for (k, ins) in s.instructions.iter().enumerate() {
            self.instruction(&mut st, i, &label, k + 1, total, ins)?;
        }
        Ok(st)
    }

    fn instruction(
        &self,
        st: &mut State,
        stage: usize,
        label: &str,
        k: usize,
        total: usize,
        ins: &dockerfile::Instruction,
    ) -> Result<()> {
        let line = ins.line;
        let lk = |st: &State| {
            let st = st.clone();
            move |k: &str| st.lookup(k)
        };
        let x = |st: &State, w: &str| -> Result<String> {
            let f = lk(st);
            self.expand(line, w, &f)
        };
        let step_name = format!("{label} {k}/{total}");
        match &ins.kind {
            Kind::Run { command, network } => {
                let argv = match command {
                    Command::Exec(a) => a.clone(),
                    Command::Shell(s) => {
                        let mut a = st.shell.clone();
                        a.push(s.clone());
                        a
                    }
                };
                if argv.is_empty() {
                    return Err(self.err(line, "RUN [] runs nothing"));
                }
                let net = network.clone().or_else(|| self.opts.network.clone());
                let host_network = match net.as_deref() {
                    None | Some("none") | Some("default") => false,
                    Some("host") => true,
                    Some(o) => {
                        return Err(self.err(line, format!("RUN --network={o}: use none or host")))
                    }
                };
                let mut env = st.env();
                for (k2, v) in &st.args {
                    if let Some(v) = v {
                        if !env
                            .iter()
                            .any(|e| e.split_once('=').map(|(a, _)| a) == Some(k2))
                        {
                            env.push(format!("{k2}={v}"));
                        }
                    }
                }
                let step = Step {
                    argv,
                    env,
                    user: st.cfg_str("User"),
                    workdir: st.workdir(),
                    host_network,
                    shm_size: self.opts.shm_size,
                    extra_hosts: self.opts.extra_hosts.clone(),
                };
                let key = cache::chain(
                    &st.chain,
                    &json!({"run": step.argv, "env": step.env, "user": step.user, "dir": step.workdir,
                        "net": host_network, "shm": step.shm_size, "hosts": step.extra_hosts})
                    .to_string(),
                );
                let lowers = self.layer_dirs(&st.layers);
                self.layer_step(st, &step_name, &ins.text, key, |n| {
                    self.runs.fetch_add(1, Ordering::Relaxed);
                    let mut m = run::mount_layers(&self.sandbox.scratch, &lowers, true)?;
                    let code = self
                        .sandbox
                        .run(&m, &step, &mut |l| self.progress.output(n, l))
                        .map_err(|e| self.err(line, format!("{}: {e}", ins.text)))?;
                    m.unmount()?;
                    if code != 0 {
                        return Err(self.err(
                            line,
                            format!("{} failed: the command exited with code {code}", ins.text),
                        ));
                    }
                    let mut w = LayerWriter::new(self.images.store())?;
                    w.add_upper("", &m.upper())?;
                    w.finish(self.images.store())
                })?;
            }
            Kind::Copy(c) => self.copy(st, stage, &step_name, ins, c)?,
            Kind::Env { words: w, legacy } => {
                let pairs = self.pairs(st, line, w, *legacy)?;
                for (k2, v) in &pairs {
                    st.env_set(k2, v);
                }
                self.meta(st, &ins.text, &json!({"env": pairs}));
            }
            Kind::Label { words: w, legacy } => {
                let pairs = self.pairs(st, line, w, *legacy)?;
                for (k2, v) in &pairs {
                    st.map_insert("Labels", k2.clone(), json!(v));
                }
                self.meta(st, &ins.text, &json!({"label": pairs}));
            }
            Kind::Arg(ws) => {
                for w in ws {
                    let (name, value) = self.arg_value(w, &|d| x(st, d), &|n| {
                        self.globals
                            .get(n)
                            .cloned()
                            .flatten()
                            .or_else(|| predefined(n))
                    })?;
                    st.args.insert(name, value);
                }
                let args = st.args.clone();
                self.meta(st, &ins.text, &json!({"arg": args}));
            }
            Kind::Workdir(w) => {
                let w = x(st, w)?;
                let path = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{}", st.workdir().trim_end_matches('/'), w)
                };
                let path = format!("/{}", crate::ignore::clean(&path).unwrap_or_default());
                st.cfg().insert("WorkingDir".into(), json!(path));
                // Made when missing, owned by the USER in effect (as BuildKit does).
                let view = View::new(self.layer_dirs(&st.layers));
                if view.is_dir(&path) {
                    self.meta(st, &ins.text, &json!({"workdir": path}));
                } else {
                    let owner = match st.cfg_str("User") {
                        Some(u) => view
                            .owner(&u)
                            .map_err(|m| self.err(line, format!("WORKDIR: {m}")))?,
                        None => (0, 0),
                    };
                    let key = cache::chain(
                        &st.chain,
                        &json!({"mkdir": path, "owner": owner}).to_string(),
                    );
                    let items = copy::plan(
                        &Request {
                            add: false,
                            sources: &[],
                            dest: &format!("{path}/"),
                            ov: Overrides {
                                owner: Some(owner),
                                mode: None,
                            },
                        },
                        &Source {
                            root: &self.context,
                            view: View::new(vec![self.context.clone()]),
                            ignore: None,
                            name: "the build context".into(),
                        },
                        &view,
                    )
                    .map_err(|m| self.err(line, m))?;
                    self.layer_step(st, &step_name, &ins.text, key, |_| {
                        let mut w = LayerWriter::new(self.images.store())?;
                        copy::write(&items, &mut w)?;
                        w.finish(self.images.store())
                    })?;
                }
            }
            Kind::User(u) => {
                let u = x(st, u)?;
                st.cfg().insert("User".into(), json!(u));
                self.meta(st, &ins.text, &json!({"user": u}));
            }
            Kind::Cmd(c) => {
                let v = self.command(st, c);
                st.cfg().insert("Cmd".into(), json!(v));
                st.cmd_set = true;
                self.meta(st, &ins.text, &json!({"cmd": v}));
            }
            Kind::Entrypoint(c) => {
                let v = self.command(st, c);
                st.cfg().insert("Entrypoint".into(), json!(v));
                // A new ENTRYPOINT drops a CMD inherited from the base image.
                if !st.cmd_set {
                    st.cfg().remove("Cmd");
                }
                self.meta(st, &ins.text, &json!({"entrypoint": v}));
            }
            Kind::Expose(ports) => {
                for p in ports {
                    let p = x(st, p)?;
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
                        return Err(self.err(
                            line,
                            format!("EXPOSE {p}: the protocol is tcp, udp or sctp"),
                        ));
                    }
                    let (a, b) = num.split_once('-').unwrap_or((num, num));
                    let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) else {
                        return Err(self.err(line, format!("EXPOSE {p}: not a port or port range")));
                    };
                    if a > b {
                        return Err(self.err(line, format!("EXPOSE {p}: the range is backwards")));
                    }
                    for port in a..=b {
                        st.map_insert("ExposedPorts", format!("{port}/{proto}"), json!({}));
                    }
                }
                self.meta(st, &ins.text, &json!({"expose": ports}));
            }
            Kind::Volume(vs) => {
                for v in vs {
                    let v = x(st, v)?;
                    if v.is_empty() {
                        return Err(self.err(line, "VOLUME with an empty path"));
                    }
                    st.map_insert("Volumes", v, json!({}));
                }
                self.meta(st, &ins.text, &json!({"volume": vs}));
            }
            Kind::StopSignal(s) => {
                let s = x(st, s)?;
                st.cfg().insert("StopSignal".into(), json!(s));
                self.meta(st, &ins.text, &json!({"stopsignal": s}));
            }
            Kind::Healthcheck(h) => {
                let v = match h {
                    Health::None => json!({"Test": ["NONE"]}),
                    Health::Check {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let mut t = match test {
                            Command::Exec(a) => {
                                let mut v = vec!["CMD".to_string()];
                                v.extend(a.iter().cloned());
                                json!({"Test": v})
                            }
                            Command::Shell(s) => json!({"Test": ["CMD-SHELL", s]}),
                        };
                        for (k2, d) in [
                            ("Interval", interval),
                            ("Timeout", timeout),
                            ("StartPeriod", start_period),
                            ("StartInterval", start_interval),
                        ] {
                            if let Some(d) = d {
                                t[k2] = json!(d.as_nanos() as u64);
                            }
                        }
                        if let Some(r) = retries {
                            t["Retries"] = json!(r);
                        }
                        t
                    }
                };
                st.cfg().insert("Healthcheck".into(), v.clone());
                self.meta(st, &ins.text, &json!({"health": v}));
            }
            Kind::Shell(s) => {
                st.shell = s.clone();
                st.cfg().insert("Shell".into(), json!(s));
                self.meta(st, &ins.text, &json!({"shell": s}));
            }
            Kind::Onbuild(t) => {
                let list = st.cfg().entry("OnBuild").or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(t));
                }
                self.meta(st, &ins.text, &json!({"onbuild": t}));
            }
            Kind::Maintainer(m) => {
                st.config.insert("author".into(), json!(m));
                self.meta(st, &ins.text, &json!({"maintainer": m}));
            }
        }
        Ok(())
    }

    /// `k=v` words (or one legacy `k v` pair), substituted.
    fn pairs(
        &self,
        st: &State,
        line: usize,
        w: &[String],
        legacy: bool,
    ) -> Result<Vec<(String, String)>> {
        let f = {
            let st = st.clone();
            move |k: &str| st.lookup(k)
        };
        if legacy {
            let v = self.expand(line, &w[1], &f)?;
            return Ok(vec![(self.expand(line, &w[0], &f)?, v)]);
        }
        w.iter()
            .map(|p| {
                let e = self.expand(line, p, &f)?;
                let (k, v) = e.split_once('=').unwrap_or((&e, ""));
                if k.is_empty() {
                    return Err(self.err(line, format!("{p:?}: the name is empty")));
                }
                Ok((k.to_string(), v.to_string()))
            })
            .collect()
    }

    fn command(&self, st: &State, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(a) => a.clone(),
            Command::Shell(s) => {
                let mut a = st.shell.clone();
                a.push(s.clone());
                a
            }
        }
    }

    /// A step that changes only the config: the chain moves on, history notes it.
    fn meta(&self, st: &mut State, text: &str, what: &Value) {
        st.chain = cache::chain(&st.chain, &what.to_string());
        st.history
            .push(json!({"created_by": text, "empty_layer": true, "comment": "berth build"}));
    }

    /// A step that makes a layer: from the cache, or by `make`.
    fn layer_step(
        &self,
        st: &mut State,
        step_name: &str,
        text: &str,
        key: String,
        make: impl FnOnce(usize) -> Result<Option<Layer>>,
    ) -> Result<()> {
        let n = self.next_step();
        self.steps.fetch_add(1, Ordering::Relaxed);
        let hit = if self.opts.no_cache {
            None
        } else {
            self.cache.get(&key, self.images.store())
        };
        let started = Instant::now();
        let entry = match hit {
            Some(e) => {
                self.progress.step(n, step_name, text, true);
                self.cached.fetch_add(1, Ordering::Relaxed);
                if let Some(l) = &e.layer {
                    unpack::ensure_layer(self.images.store(), &l.digest, &l.digest)?;
                }
                e
            }
            None => {
                self.progress.step(n, step_name, text, false);
                let layer = make(n)?;
                let e = Entry {
                    layer,
                    created: now_rfc3339(),
                };
                self.cache.put(&key, &e);
                e
            }
        };
        self.progress.done(n, started.elapsed().as_secs_f64());
        st.chain = key;
        let empty = entry.layer.is_none();
        if let Some(l) = entry.layer {
            st.layers.push(l);
        }
        st.history.push(json!({"created": entry.created, "created_by": text, "empty_layer": empty, "comment": "berth build"}));
        if st
            .created
            .as_deref()
            .is_none_or(|c| c < entry.created.as_str())
        {
            st.created = Some(entry.created);
        }
        Ok(())
    }

    fn copy(
        &self,
        st: &mut State,
        stage: usize,
        step_name: &str,
        ins: &dockerfile::Instruction,
        c: &Copy,
    ) -> Result<()> {
        let line = ins.line;
        let f = {
            let st2 = st.clone();
            move |k: &str| st2.lookup(k)
        };
        let mut sources = Vec::new();
        for s in &c.sources {
            sources.push(self.expand(line, s, &f)?);
        }
        let dest = self.expand(line, &c.dest, &f)?;
        let dest = if dest.starts_with('/') {
            dest
        } else {
            let keep_slash = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
            let d = format!("{}/{}", st.workdir().trim_end_matches('/'), dest);
            if keep_slash && !d.ends_with('/') {
                format!("{d}/")
            } else {
                d
            }
        };
        let dest_view = View::new(self.layer_dirs(&st.layers));
        let owner = match &c.chown {
            Some(o) => {
                let o = self.expand(line, o, &f)?;
                Some(
                    dest_view
                        .owner(&o)
                        .map_err(|m| self.err(line, format!("--chown={o}: {m}")))?,
                )
            }
            None => None,
        };
        let mode = match &c.chmod {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                self.err(
                    line,
                    format!("--chmod={m}: an octal mode (0755) is expected"),
                )
            })?),
            None => None,
        };
        let ov = Overrides { owner, mode };
        let req = Request {
            add: c.add,
            sources: &sources,
            dest: &dest,
            ov,
        };
        // The source: the context, or a stage / image mounted read-only.
        let (items, source_key, _mount) = match &c.from {
            None => {
                let src = Source {
                    root: &self.context,
                    view: View::new(vec![self.context.clone()]),
                    ignore: Some(&self.ignore),
                    name: "the build context".into(),
                };
                let items = copy::plan(&req, &src, &dest_view).map_err(|m| self.err(line, m))?;
                let k = copy::digest(&items, true);
                (items, k, None)
            }
            Some(from) => {
                let from = self.expand(line, from, &f)?;
                let layers = match self.stage_ref(&from, stage) {
                    Some(d) => self
                        .done
                        .lock()
                        .ok()
                        .and_then(|m| m.get(&d).map(|s| s.layers.clone()))
                        .ok_or_else(|| self.err(line, format!("stage {from} was not built")))?,
                    None => {
                        let img = match self.images.resolve(&from) {
                            Ok(i) => i,
                            Err(_) => {
                                return Err(self.err(line, format!(
                                    "{} --from={from}: there is no stage named {from:?} before this line, and no image {from} in the store",
                                    if c.add { "ADD" } else { "COPY" }
                                )))
                            }
                        };
                        self.state_of_image(&img)?.layers
                    }
                };
                let dirs = self.layer_dirs(&layers);
                let m = run::mount_layers(&self.sandbox.scratch, &dirs, false)?;
                let src = Source {
                    root: m.root(),
                    view: View::new(dirs),
                    ignore: None,
                    name: format!("stage {from}"),
                };
                let items = copy::plan(&req, &src, &dest_view).map_err(|m| self.err(line, m))?;
                // Layers are content-addressed: their digests stand for the files' bytes.
                let k = format!(
                    "{}:{}",
                    copy::digest(&items, false),
                    layers
                        .iter()
                        .map(|l| l.digest.hex().to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                (items, k, Some(m))
            }
        };
        let key = cache::chain(
            &st.chain,
            &json!({"copy": sources, "dest": dest, "add": c.add, "owner": owner, "mode": mode, "content": source_key}).to_string(),
        );
        self.layer_step(st, step_name, &ins.text, key, |_| {
            let mut w = LayerWriter::new(self.images.store())?;
            copy::write(&items, &mut w)?;
            w.finish(self.images.store())
        })
    }

    /// Writes the config and manifest of the final stage; returns the main name.
    fn commit(&self, mut st: State) -> Result<(String, ImageRecord, Digest)> {
        let store = self.images.store();
        for (k, v) in &self.opts.labels {
            st.map_insert("Labels", k.clone(), json!(v));
        }
        // Pulled layers keep their (maybe compressed) blobs; the builder's are plain tars.
        let mut blobs = Vec::new();
        for l in &st.layers {
            let blob = l.blob.clone().unwrap_or_else(|| l.digest.clone());
            let size = std::fs::metadata(store.blob_path(&blob))
                .map(|m| m.len())
                .unwrap_or(l.size);
            blobs.push((blob, size));
        }
        st.config.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": st.layers.iter().map(|l| l.digest.as_str()).collect::<Vec<_>>()}),
        );
        st.config
            .insert("history".into(), Value::Array(st.history.clone()));
        if let Some(c) = &st.created {
            st.config.insert("created".into(), json!(c));
        }
        let bytes =
            serde_json::to_vec(&st.config).map_err(|e| BuildError::Invalid(e.to_string()))?;
        let cfg = store.put_blob_bytes(None, &bytes)?;
        let (manifest, media_type) =
            image::import::write_manifest(store, (&cfg, bytes.len() as u64), &blobs)?;
        let name = match self.opts.tags.first() {
            Some(t) => Reference::parse(t)?.to_string(),
            None => cfg.to_string(),
        };
        let rec = ImageRecord {
            name: name.clone(),
            manifest,
            media_type,
            index: None,
        };
        Ok((name, rec, cfg))
    }
}
