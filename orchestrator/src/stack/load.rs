//! From `-f` files to one merged node tree: file discovery, environment (`.env`,
//! `--env-file`), project name, interpolation, `include`, path resolution, merging,
//! `extends`, profiles. The typed model is made from its result (see [`super::project`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::de::{from_node, Path as KeyPath};
use super::dotenv;
use super::error::StackError;
use super::interpolate;
use super::merge::{clear_tags, merge_files, merge_service};
use super::model::Service;
use super::paths;
use super::validate;
use super::yaml::{self, Key, Map, Node, SourceFile, Value};

/// The default file names, in the order Compose looks for them.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// What the user asked to load.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-f`, in order; empty: look for the default names from the working directory up.
    pub files: Vec<PathBuf>,
    /// `--project-directory`: where relative paths and `.env` resolve from.
    pub project_directory: Option<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--env-file`, in order; empty: `.env` in the project directory, if any.
    pub env_files: Vec<PathBuf>,
    /// `--profile`; `BERTH_PROFILES` (comma-separated) adds to it.
    pub profiles: Vec<String>,
    /// Services named on the command line: enabled whatever their profiles.
    pub services: Vec<String>,
    /// The environment to interpolate with; `None` takes the process environment.
    pub environment: Option<IndexMap<String, String>>,
    /// Where `remote:NAME` includes and extends resolve (test fixtures only); remote
    /// resources are otherwise refused.
    pub remote_dir: Option<PathBuf>,
    /// Skip cross-reference checks (undeclared networks, volumes, services).
    pub skip_consistency: bool,
    /// The text of the file named `-` (standard input, as in `-f -`), read by the caller.
    pub stdin: Option<String>,
    /// Do not fall back to the directory's name for the project name (library callers
    /// that must supply one).
    pub no_directory_name: bool,
}

/// The merged, interpolated tree and what was learnt on the way.
#[derive(Debug)]
pub struct Tree {
    pub root: Node,
    pub name: String,
    pub working_dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub environment: IndexMap<String, String>,
    pub warnings: Vec<String>,
    pub active_profiles: Vec<String>,
    /// Every profile named by any service, sorted, before profiles were applied.
    pub all_profiles: Vec<String>,
    /// Every service the files define, whatever the profiles (in file order): a
    /// container of one of these is never an orphan.
    pub all_services: Vec<String>,
}

/// Finds the default stack file (and its override) from `dir` up to the root.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, StackError> {
    let mut current = Some(dir);
    while let Some(d) = current {
        for name in DEFAULT_FILES {
            let candidate = d.join(name);
            if candidate.is_file() {
                let mut files = vec![candidate];
                let stem = name.rsplit_once('.').map(|(s, _)| s).unwrap_or(name);
                for ext in ["yaml", "yml"] {
                    let over = d.join(format!("{stem}.override.{ext}"));
                    if over.is_file() {
                        files.push(over);
                        break;
                    }
                }
                return Ok(files);
            }
        }
        current = d.parent();
    }
    Err(StackError::NoFile {
        dir: dir.to_path_buf(),
        names: DEFAULT_FILES.join(", "),
    })
}

/// Compose's project-name rule: lower case, `[a-z0-9_-]`, starting with a letter or digit.
pub fn normalize_project_name(raw: &str) -> String {
    let lowered: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lowered.trim_start_matches(['_', '-']).to_string()
}

fn check_project_name(name: &str) -> Result<(), StackError> {
    if name.is_empty() {
        return Err(StackError::Invalid(
            "project name must not be empty: name one with -p, or with `name:` in the stack file"
                .into(),
        ));
    }
    if normalize_project_name(name) != name {
        return Err(StackError::Invalid(format!(
            "{name:?} is not a valid project name: use only lowercase letters, digits, dashes and underscores, starting with a letter or digit"
        )));
    }
    Ok(())
}

/// The path that stands for standard input, as `-f -` spells it.
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

fn read(path: &Path, stdin: Option<&str>) -> Result<Arc<SourceFile>, StackError> {
    if is_stdin(path) {
        return Ok(Arc::new(SourceFile {
            path: PathBuf::from("<stdin>"),
            text: stdin.unwrap_or_default().to_string(),
        }));
    }
    let text = std::fs::read(path).map_err(|source| StackError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(text)
        .map_err(|_| StackError::Invalid(format!("{}: not valid UTF-8 text", path.display())))?;
    Ok(Arc::new(SourceFile {
        path: path.to_path_buf(),
        text,
    }))
}

/// Parses a file into one top-level mapping (documents of a multi-document file merge in
/// order). `None` for an empty file.
fn parse_file(path: &Path, stdin: Option<&str>) -> Result<Option<Node>, StackError> {
    let file = read(path, stdin)?;
    let docs = yaml::parse(Arc::clone(&file))?;
    let mut top: Option<Node> = None;
    for doc in docs {
        if doc.is_null() {
            continue;
        }
        if doc.as_map().is_none() {
            return Err(StackError::at(
                &doc.span,
                "",
                format!("top-level object must be a mapping, found {}", doc.kind()),
            ));
        }
        top = Some(match top {
            None => doc,
            Some(prev) => merge_files(prev, doc),
        });
    }
    if let Some(top) = &top {
        check_keys(top, &mut Vec::new())?;
    }
    Ok(top)
}

/// Compose refuses keys that YAML reads as numbers or booleans (`123:`); `x-` subtrees are
/// free-form and exempt.
fn check_keys(node: &Node, path: &mut Vec<String>) -> Result<(), StackError> {
    match &node.value {
        Value::Map(map) => {
            for (k, v) in map {
                if k.non_string {
                    let place = if path.is_empty() {
                        "at top level".to_string()
                    } else {
                        format!("in {}", path.join("."))
                    };
                    return Err(StackError::at(
                        &k.span,
                        path.join("."),
                        format!(
                            "non-string key {place}: {} (quote it to use it as text)",
                            k.name
                        ),
                    ));
                }
                if k.name.starts_with("x-") {
                    continue;
                }
                path.push(k.name.clone());
                check_keys(v, path)?;
                path.pop();
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let last = path.pop().unwrap_or_default();
                path.push(format!("{last}[{i}]"));
                check_keys(item, path)?;
                path.pop();
                path.push(last);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces `${VAR}` forms in every scalar of a tree.
fn interpolate_tree(
    node: &mut Node,
    env: &IndexMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(), StackError> {
    let lookup = |name: &str| env.get(name).cloned();
    node.walk_scalars_mut(&mut Vec::new(), &mut |path, text, style, span| {
        if !text.contains('$') {
            return Ok(());
        }
        // What interpolation produces is text, whatever it looks like (compose-go
        // casts it only where the schema wants a number or boolean, as the typed
        // model does).
        *style = yaml::Style::Quoted;
        let (value, unset) = interpolate::interpolate_report(text, &lookup)
            .map_err(|e| StackError::at(span, display_path(path), e.to_string()))?;
        for name in unset {
            let w = format!("the {name} variable is not set; defaulting to a blank string");
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        *text = value;
        Ok(())
    })
}

fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if seg.starts_with('[') || out.is_empty() {
            out.push_str(seg);
        } else {
            out.push('.');
            out.push_str(seg);
        }
    }
    out
}

struct Loader<'a> {
    opts: &'a Options,
    env: IndexMap<String, String>,
    warnings: Vec<String>,
    home: Option<String>,
    /// Files being included, to refuse an include cycle.
    including: Vec<PathBuf>,
}

impl Loader<'_> {
    fn remote(&self, value: &str) -> Option<Result<PathBuf, StackError>> {
        let rest = value.strip_prefix("remote:")?;
        Some(match &self.opts.remote_dir {
            Some(dir) => Ok(dir.join(rest)),
            None => Err(StackError::Invalid(format!(
                "remote resource {value:?} is not supported; use a local path"
            ))),
        })
    }

    /// Loads one file as written: parsed, interpolated, includes applied, and relative
    /// paths made absolute against `dir` (the project directory for `-f` files and
    /// includes, the file's own directory for an `extends` base in another file).
    fn load_file(&mut self, path: &Path, dir: &Path) -> Result<Option<Node>, StackError> {
        let Some(mut top) = parse_file(path, self.opts.stdin.as_deref())? else {
            return Ok(None);
        };
        let env = self.env.clone();
        interpolate_tree(&mut top, &env, &mut self.warnings)?;
        let file_dir = path.parent().unwrap_or(Path::new("/"));
        paths::resolve_file(&mut top, dir, file_dir, self.home.as_deref());
        self.apply_include(&mut top, dir)?;
        Ok(Some(top))
    }

    /// `include`: each entry is loaded as a project of its own (its own directory and
    /// env file), then the current file is merged over what they bring.
    fn apply_include(&mut self, top: &mut Node, dir: &Path) -> Result<(), StackError> {
        let Some(map) = top.as_map_mut() else {
            return Ok(());
        };
        let Some(include) = map.shift_remove("include") else {
            return Ok(());
        };
        let entries: Vec<Node> = match include.value {
            Value::Seq(items) => items,
            Value::Null => Vec::new(),
            _ => {
                return Err(StackError::at(
                    &include.span,
                    "include",
                    "include must be a list of files",
                ))
            }
        };
        let mut imported: Option<Node> = None;
        for (i, entry) in entries.iter().enumerate() {
            let place = format!("include[{i}]");
            let (paths_node, project_dir, env_files) = match &entry.value {
                Value::Scalar(..) => (entry.clone(), None, Vec::new()),
                Value::Map(m) => {
                    let p = m.get("path").cloned().ok_or_else(|| {
                        StackError::at(&entry.span, &place, "include entry needs a `path`")
                    })?;
                    let pd = m
                        .get("project_directory")
                        .and_then(Node::as_str)
                        .map(str::to_string);
                    let ef: Vec<String> = match m.get("env_file").map(|n| &n.value) {
                        Some(Value::Scalar(s, _)) => vec![s.clone()],
                        Some(Value::Seq(items)) => items
                            .iter()
                            .filter_map(|n| n.as_str().map(str::to_string))
                            .collect(),
                        _ => Vec::new(),
                    };
                    (p, pd, ef)
                }
                _ => {
                    return Err(StackError::at(
                        &entry.span,
                        &place,
                        "include entry must be a path or a mapping with `path`",
                    ))
                }
            };
            let files: Vec<String> = match &paths_node.value {
                Value::Scalar(s, _) => vec![s.clone()],
                Value::Seq(items) => items
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            let mut resolved = Vec::new();
            for f in &files {
                resolved.push(match self.remote(f) {
                    Some(r) => r?,
                    None => PathBuf::from(paths::absolute(dir, f, self.home.as_deref())),
                });
            }
            let Some(first) = resolved.first().cloned() else {
                continue;
            };
            if self.including.contains(&first) {
                return Err(StackError::at(
                    &entry.span,
                    &place,
                    format!(
                        "include cycle detected: {} includes itself",
                        first.display()
                    ),
                ));
            }
            let sub_dir = match project_dir {
                Some(pd) => PathBuf::from(paths::absolute(dir, &pd, self.home.as_deref())),
                None => first.parent().unwrap_or(Path::new("/")).to_path_buf(),
            };
            // The included project's own environment: its env_file(s) or its `.env`,
            // under the including environment (which wins).
            let env_paths: Vec<PathBuf> = if env_files.is_empty() {
                vec![sub_dir.join(".env")]
            } else {
                env_files
                    .iter()
                    .map(|e| PathBuf::from(paths::absolute(dir, e, self.home.as_deref())))
                    .collect()
            };
            let saved_env = self.env.clone();
            for p in env_paths {
                if !p.is_file() && env_files.is_empty() {
                    continue;
                }
                let lookup = |k: &str| saved_env.get(k).cloned();
                let vars = dotenv::parse_file(&p, &lookup)
                    .map_err(|e| StackError::Invalid(e.to_string()))?;
                for (k, v) in vars {
                    self.env.entry(k).or_insert(v);
                }
            }
            self.including.push(first.clone());
            let mut merged: Option<Node> = None;
            for f in &resolved {
                if let Some(node) = self.load_file(f, &sub_dir)? {
                    merged = Some(match merged {
                        None => node,
                        Some(prev) => merge_files(prev, node),
                    });
                }
            }
            self.including.pop();
            self.env = saved_env;
            let Some(mut sub) = merged else { continue };
            self.apply_extends(&mut sub)?;
            if let Some(m) = sub.as_map_mut() {
                m.shift_remove("name");
            }
            imported = Some(match imported {
                None => sub,
                Some(prev) => merge_imported(prev, sub, &first)?,
            });
        }
        if let Some(imported) = imported {
            let own = std::mem::replace(top, Node::new(Value::Null, include.span.clone()));
            *top = merge_files(imported, own);
        }
        Ok(())
    }

    /// Resolves `extends` for every service of a merged tree.
    fn apply_extends(&mut self, top: &mut Node) -> Result<(), StackError> {
        let Some(services) = top
            .as_map()
            .and_then(|m| m.get("services"))
            .and_then(Node::as_map)
        else {
            return Ok(());
        };
        let names: Vec<String> = services.keys().map(|k| k.name.clone()).collect();
        let snapshot = services.clone();
        let mut done: IndexMap<String, Node> = IndexMap::new();
        for name in &names {
            let mut chain = Vec::new();
            let resolved = self.extend_service(&snapshot, None, name, &mut chain, &mut done)?;
            done.insert(name.clone(), resolved);
        }
        if let Some(services) = top
            .as_map_mut()
            .and_then(|m| m.get_mut("services"))
            .and_then(Node::as_map_mut)
        {
            for (k, v) in services.iter_mut() {
                if let Some(n) = done.shift_remove(k.name.as_str()) {
                    *v = n;
                }
            }
        }
        Ok(())
    }

    /// One service with its `extends` chain applied. `file` is None for the tree being
    /// loaded and the path of another file for bases found there.
    fn extend_service(
        &mut self,
        services: &Map,
        file: Option<&Path>,
        name: &str,
        chain: &mut Vec<(Option<PathBuf>, String)>,
        done: &mut IndexMap<String, Node>,
    ) -> Result<Node, StackError> {
        if file.is_none() {
            if let Some(n) = done.get(name) {
                return Ok(n.clone());
            }
        }
        let key = (file.map(Path::to_path_buf), name.to_string());
        let Some(node) = services.get(name) else {
            return Err(StackError::Invalid(format!(
                "cannot extend service {name:?}: no such service"
            )));
        };
        if chain.contains(&key) {
            let mut names: Vec<String> = chain.iter().map(|(_, n)| n.clone()).collect();
            names.push(name.to_string());
            return Err(StackError::at(
                &node.span,
                format!("services.{name}.extends"),
                format!("Circular reference: extends cycle {}", names.join(" -> ")),
            ));
        }
        let mut service = node.clone();
        if service.is_null() {
            service.value = Value::Map(Map::new());
        }
        let Some(ext) = service.as_map_mut().and_then(|m| m.shift_remove("extends")) else {
            return Ok(service);
        };
        let place = format!("services.{name}.extends");
        let (base_name, base_file) = match &ext.value {
            Value::Scalar(s, _) => (s.clone(), None),
            Value::Map(m) => {
                let Some(s) = m.get("service").and_then(Node::as_str) else {
                    return Err(StackError::at(
                        &ext.span,
                        &place,
                        format!("extends.{name}.service is required"),
                    ));
                };
                (
                    s.to_string(),
                    m.get("file").and_then(Node::as_str).map(str::to_string),
                )
            }
            _ => {
                return Err(StackError::at(
                    &ext.span,
                    &place,
                    "extends must be a service name or a mapping with `service`",
                ))
            }
        };
        chain.push(key);
        let base = match base_file {
            None => {
                if !services.contains_key(base_name.as_str()) {
                    return Err(StackError::at(
                        &ext.span,
                        &place,
                        format!("service {name:?} extends {base_name:?}, which is not defined in this file"),
                    ));
                }
                self.extend_service(services, file, &base_name, chain, done)?
            }
            Some(f) => {
                let path = match self.remote(&f) {
                    Some(r) => r?,
                    None => PathBuf::from(f.clone()),
                };
                if chain
                    .iter()
                    .filter(|(p, _)| p.as_deref() == Some(path.as_path()))
                    .count()
                    > 8
                {
                    return Err(StackError::at(
                        &ext.span,
                        &place,
                        "Circular reference: extends cycle across files",
                    ));
                }
                let other_dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
                let other = self.load_file(&path, &other_dir).map_err(|e| match e {
                    StackError::Read { path, source } => StackError::at(
                        &ext.span,
                        &place,
                        format!("cannot read extends file {}: {source}", path.display()),
                    ),
                    other => other,
                })?;
                let other_services = other
                    .as_ref()
                    .and_then(|n| n.get("services"))
                    .and_then(Node::as_map)
                    .cloned()
                    .unwrap_or_default();
                if !other_services.contains_key(base_name.as_str()) {
                    return Err(StackError::at(
                        &ext.span,
                        &place,
                        format!(
                            "cannot extend service {base_name:?}: not defined in {}",
                            path.display()
                        ),
                    ));
                }
                self.extend_service(
                    &other_services,
                    Some(&path),
                    &base_name,
                    chain,
                    &mut IndexMap::new(),
                )?
            }
        };
        chain.pop();
        Ok(merge_service(base, service))
    }
}

/// Two included projects may bring the same resource only if they define it the same way.
fn merge_imported(mut prev: Node, sub: Node, from: &Path) -> Result<Node, StackError> {
    let (Some(pm), Value::Map(sm)) = (prev.as_map_mut(), sub.value) else {
        return Ok(prev);
    };
    for (section, items) in sm {
        match (
            pm.get_mut(section.name.as_str()).and_then(Node::as_map_mut),
            items.value,
        ) {
            (Some(existing), Value::Map(new)) => {
                for (k, v) in new {
                    match existing.get(k.name.as_str()) {
                        Some(old) if *old != v => {
                            return Err(StackError::at(
                                &k.span,
                                format!("{}.{}", section.name, k.name),
                                format!(
                                    "imported compose file {} defines conflicting {} {:?}",
                                    from.display(),
                                    section.name,
                                    k.name
                                ),
                            ))
                        }
                        Some(_) => {}
                        None => {
                            existing.insert(k, v);
                        }
                    }
                }
            }
            (_, value) => {
                let span = section.span.clone();
                pm.entry(section).or_insert(Node::new(value, span));
            }
        }
    }
    Ok(prev)
}

/// Reads the process or given environment, then `.env`/`--env-file` under it.
fn environment(
    opts: &Options,
    working_dir: &Path,
    cwd: &Path,
) -> Result<IndexMap<String, String>, StackError> {
    let mut env: IndexMap<String, String> = match &opts.environment {
        Some(e) => e.clone(),
        None => std::env::vars().collect(),
    };
    let files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let dotenv = working_dir.join(".env");
        if dotenv.is_file() {
            vec![dotenv]
        } else {
            Vec::new()
        }
    } else {
        opts.env_files.iter().map(|f| cwd.join(f)).collect()
    };
    for file in files {
        let shell = env.clone();
        let lookup = |k: &str| shell.get(k).cloned();
        let vars =
            dotenv::parse_file(&file, &lookup).map_err(|e| StackError::Invalid(e.to_string()))?;
        for (k, v) in vars {
            // The shell's environment wins over env files (Compose precedence).
            env.entry(k).or_insert(v);
        }
    }
    Ok(env)
}

/// Loads, interpolates and merges the stack into one tree.
pub fn load_tree(opts: &Options) -> Result<Tree, StackError> {
    let cwd = std::env::current_dir().map_err(|source| StackError::Read {
        path: PathBuf::from("."),
        source,
    })?;
    let files: Vec<PathBuf> = if opts.files.is_empty() {
        discover(opts.project_directory.as_deref().unwrap_or(&cwd))?
    } else {
        opts.files
            .iter()
            .map(|f| {
                if is_stdin(f) {
                    f.clone()
                } else {
                    PathBuf::from(paths::absolute(&cwd, &f.to_string_lossy(), None))
                }
            })
            .collect()
    };
    let working_dir = match &opts.project_directory {
        Some(d) => PathBuf::from(paths::absolute(&cwd, &d.to_string_lossy(), None)),
        None if is_stdin(&files[0]) => cwd.clone(),
        None => files[0].parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    let mut env = environment(opts, &working_dir, &cwd)?;

    // The name decides `${COMPOSE_PROJECT_NAME}`, so it is read before interpolation:
    // -p, then the environment, then `name:` of the last file that has one, then the
    // directory's name.
    let mut parsed = Vec::new();
    for f in &files {
        parsed.push(parse_file(f, opts.stdin.as_deref())?);
    }
    if parsed.iter().all(Option::is_none) {
        return Err(StackError::Invalid(format!(
            "empty compose file: {} has no content",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for (top, file) in parsed.iter().zip(&files) {
        let Some(m) = top.as_ref().and_then(Node::as_map) else {
            continue;
        };
        let known = [
            "version", "name", "services", "networks", "volumes", "secrets", "configs", "models",
            "include",
        ];
        let unknown: Vec<&str> = m
            .keys()
            .map(|k| k.name.as_str())
            .filter(|k| !k.starts_with("x-") && !known.contains(k))
            .collect();
        // A misspelt `services:` is a typo for the typed stage to point at, not v1.
        let typo = unknown
            .iter()
            .any(|k| super::de::nearest(k, &known).is_some());
        if !m.contains_key("services") && !unknown.is_empty() && !typo {
            return Err(StackError::Invalid(format!(
                "{}: no `services` key: Compose file format v1 is not supported; put the services under `services:`",
                file.display()
            )));
        }
    }
    let mut name: Option<String> = opts
        .project_name
        .clone()
        .or_else(|| env.get("BERTH_PROJECT_NAME").cloned())
        .or_else(|| env.get("COMPOSE_PROJECT_NAME").cloned())
        .filter(|n| !n.is_empty());
    if name.is_none() {
        for top in parsed.iter().flatten() {
            if let Some(n) = top.get("name") {
                match &n.value {
                    Value::Scalar(s, yaml::Style::Plain)
                        if !matches!(super::de::resolve_plain(s), super::de::Resolved::Str) =>
                    {
                        return Err(StackError::at(
                            &n.span,
                            "name",
                            format!("name must be a string, found {s}"),
                        ));
                    }
                    Value::Scalar(s, _) => {
                        let lookup = |k: &str| env.get(k).cloned();
                        let v = interpolate::interpolate(s, &lookup)
                            .map_err(|e| StackError::at(&n.span, "name", e.to_string()))?;
                        name = Some(v);
                    }
                    Value::Null => {}
                    _ => {
                        return Err(StackError::at(
                            &n.span,
                            "name",
                            format!("name must be a string, found {}", n.kind()),
                        ))
                    }
                }
            }
        }
    }
    let name = match name {
        Some(n) => n,
        None if opts.no_directory_name => String::new(),
        None => {
            let dir_name = working_dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            normalize_project_name(&dir_name)
        }
    };
    check_project_name(&name)?;
    env.entry("COMPOSE_PROJECT_NAME".to_string())
        .or_insert_with(|| name.clone());
    drop(parsed);

    let home = env
        .get("HOME")
        .cloned()
        .or_else(|| std::env::var("HOME").ok());
    let mut loader = Loader {
        opts,
        env,
        warnings: Vec::new(),
        home,
        including: files.first().cloned().into_iter().collect(),
    };
    let mut root: Option<Node> = None;
    for f in &files {
        if let Some(top) = loader.load_file(f, &working_dir)? {
            root = Some(match root {
                None => top,
                Some(prev) => merge_files(prev, top),
            });
        }
    }
    let mut root = root.expect("at least one file has content");
    check_sections(&root)?;
    loader.apply_extends(&mut root)?;
    clear_tags(&mut root);
    if let Some(m) = root.as_map_mut() {
        let span = m
            .get("name")
            .map(|n| n.span.clone())
            .unwrap_or_else(|| root_span(&files[0]));
        m.insert(
            Key {
                name: "name".into(),
                span: span.clone(),
                non_string: false,
            },
            Node::new(Value::Scalar(name.clone(), yaml::Style::Quoted), span),
        );
    }
    let mut profiles = opts.profiles.clone();
    if let Some(p) = loader
        .env
        .get("BERTH_PROFILES")
        .or_else(|| loader.env.get("COMPOSE_PROFILES"))
    {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    let all_profiles = all_profiles(&root);
    let all_services = root
        .get("services")
        .and_then(Node::as_map)
        .map(|m| m.keys().map(|k| k.name.clone()).collect())
        .unwrap_or_default();
    apply_profiles(&mut root, &profiles, &opts.services)?;
    Ok(Tree {
        all_profiles,
        all_services,
        root,
        name,
        working_dir,
        files,
        environment: loader.env,
        warnings: loader.warnings,
        active_profiles: profiles,
    })
}

fn root_span(path: &Path) -> yaml::Span {
    yaml::Span {
        file: Arc::new(SourceFile {
            path: path.to_path_buf(),
            text: String::new(),
        }),
        line: 1,
        col: 1,
    }
}

/// The top-level sections that must be mappings, with the error Compose users know.
fn check_sections(root: &Node) -> Result<(), StackError> {
    for section in ["services", "networks", "volumes", "secrets", "configs"] {
        let Some(node) = root.get(section) else {
            continue;
        };
        match &node.value {
            Value::Map(items) => {
                for (k, v) in items {
                    if section == "services" && !matches!(v.value, Value::Map(_) | Value::Null) {
                        return Err(StackError::at(
                            &v.span,
                            format!("{section}.{}", k.name),
                            format!("{section}.{} must be a mapping, found {}", k.name, v.kind()),
                        ));
                    }
                    if section != "services" && !matches!(v.value, Value::Map(_) | Value::Null) {
                        return Err(StackError::at(
                            &v.span,
                            format!("{section}.{}", k.name),
                            format!("{section}.{} must be a mapping, found {}", k.name, v.kind()),
                        ));
                    }
                }
            }
            Value::Null => {}
            _ => {
                return Err(StackError::at(
                    &node.span,
                    section,
                    format!("{section} must be a mapping, found {}", node.kind()),
                ))
            }
        }
    }
    Ok(())
}

fn all_profiles(root: &Node) -> Vec<String> {
    let mut out: Vec<String> = root
        .get("services")
        .and_then(Node::as_map)
        .into_iter()
        .flat_map(|s| s.values())
        .filter_map(|svc| svc.get("profiles").and_then(Node::as_seq))
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Keeps the services that the active profiles enable, those named on the command line,
/// and everything those depend on.
fn apply_profiles(
    root: &mut Node,
    profiles: &[String],
    selected: &[String],
) -> Result<(), StackError> {
    let Some(services) = root
        .as_map_mut()
        .and_then(|m| m.get_mut("services"))
        .and_then(Node::as_map_mut)
    else {
        return Ok(());
    };
    for s in selected {
        if !services.contains_key(s.as_str()) {
            return Err(StackError::Invalid(format!("no such service: {s}")));
        }
    }
    // Services named on the command line are what the user asked for, whatever their
    // profiles; otherwise the active profiles decide.
    let all = profiles.iter().any(|p| p == "*");
    let mut enabled: HashSet<String> = HashSet::new();
    for (k, v) in services.iter() {
        let svc_profiles: Vec<&str> = v
            .get("profiles")
            .and_then(Node::as_seq)
            .map(|s| s.iter().filter_map(Node::as_str).collect())
            .unwrap_or_default();
        let on = if selected.is_empty() {
            svc_profiles.is_empty()
                || all
                || svc_profiles.iter().any(|p| profiles.iter().any(|a| a == p))
        } else {
            selected.contains(&k.name)
        };
        if on {
            enabled.insert(k.name.clone());
        }
    }
    // Dependencies of enabled services are enabled too.
    let mut queue: Vec<String> = enabled.iter().cloned().collect();
    while let Some(name) = queue.pop() {
        let Some(svc) = services.get(name.as_str()) else {
            continue;
        };
        // The typed service's references (the graph's edges, one list). A service that
        // does not type brings nothing along: loading refuses it right after, in order.
        let references = from_node::<Service>(svc, KeyPath::Root)
            .map(|s| validate::references(&s))
            .unwrap_or_default();
        for (dep, _) in references {
            if services.contains_key(dep.as_str()) && enabled.insert(dep.clone()) {
                queue.push(dep);
            }
        }
    }
    services.retain(|k, _| enabled.contains(&k.name));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service a profile enables brings along each service it references, by every
    /// kind of reference the dependency graph knows; the rest stay out, but in
    /// `all_services`.
    #[test]
    fn an_enabled_service_brings_every_service_it_references() {
        let text = "services:\n  app:\n    image: x\n    profiles: [p]\n    depends_on: {db: {condition: service_healthy, required: false}}\n    network_mode: service:net\n    ipc: service:shm\n    pid: service:init\n    volumes_from: ['vol:ro', 'container:outside']\n    links: ['lnk:alias']\n  db: {image: x, profiles: [never]}\n  net: {image: x, profiles: [never]}\n  shm: {image: x, profiles: [never]}\n  init: {image: x, profiles: [never]}\n  vol: {image: x, profiles: [never]}\n  lnk: {image: x, profiles: [never]}\n  off: {image: x, profiles: [never]}\n  plain: {image: x}\n";
        let tree = load_tree(&Options {
            files: vec!["-".into()],
            stdin: Some(text.into()),
            project_name: Some("t".into()),
            profiles: vec!["p".into()],
            environment: Some(IndexMap::new()),
            ..Options::default()
        })
        .unwrap();
        let kept: Vec<&str> = tree
            .root
            .get("services")
            .and_then(Node::as_map)
            .unwrap()
            .keys()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(
            kept,
            ["app", "db", "net", "shm", "init", "vol", "lnk", "plain"]
        );
        assert_eq!(tree.all_services.len(), 9);
        assert!(tree.all_services.iter().any(|s| s == "off"));
    }

    #[test]
    fn project_names_normalize_as_compose_does() {
        assert_eq!(
            normalize_project_name("UNNORMALIZED PATH"),
            "unnormalizedpath"
        );
        assert_eq!(normalize_project_name("_My.App-1"), "myapp-1");
        assert!(check_project_name("").is_err());
        assert!(check_project_name("Bad Name").is_err());
        assert!(check_project_name("good_name-1").is_ok());
    }
}
