//! From the merged tree to the typed, normalized, checked project: what every verb gets.

use std::path::PathBuf;

use indexmap::IndexMap;

use super::de::{from_node, Path};
use super::dotenv;
use super::error::StackError;
use super::load::{load_tree, Options, Tree};
use super::model::Project;
use super::validate;
use super::yaml::{Node, Span, Style, Value};
use crate::graph::ServiceGraph;

/// A loaded stack.
#[derive(Debug)]
pub struct Loaded {
    /// The project name (normalized, checked).
    pub name: String,
    pub project: Project,
    pub working_dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// The environment the files were interpolated with.
    pub environment: IndexMap<String, String>,
    /// Things worth saying that do not stop the load (unset variables, dropped optional
    /// dependencies).
    pub warnings: Vec<String>,
    /// Every profile any service names, sorted.
    pub all_profiles: Vec<String>,
    /// Every service the files define, whatever the profiles: the model holds only the
    /// enabled ones, but a container of a disabled one is not an orphan (Compose's rule).
    pub all_services: Vec<String>,
    pub graph: ServiceGraph,
    /// The merged tree the project was typed from: where each value was written, for
    /// errors found after loading.
    pub root: Node,
}

impl Loaded {
    /// What must hold before the stack is brought up, beyond loading (see
    /// [`validate::check_runnable`]).
    pub fn check_runnable(&self) -> Result<(), StackError> {
        validate::check_runnable(self)
    }
}

/// Loads, merges, types, normalizes and checks a stack.
pub fn load(opts: &Options) -> Result<Loaded, StackError> {
    let tree = load_tree(opts)?;
    check_string_types(&tree.root)?;
    let mut project: Project = from_node(&tree.root, Path::Root)?;
    project.name = Some(tree.name.clone());
    // Paths the files wrote are absolute already; this catches the ones the model filled
    // in (a build context defaulting to `.`).
    let home = tree.environment.get("HOME").map(PathBuf::from);
    project.resolve_paths(&tree.working_dir, home.as_deref());
    let mut warnings = tree.warnings.clone();
    normalize(&mut project, &tree, &mut warnings)?;
    let graph = validate::check(&project, &tree.root, !opts.skip_consistency, &mut warnings)?;
    Ok(Loaded {
        name: tree.name,
        project,
        working_dir: tree.working_dir,
        files: tree.files,
        environment: tree.environment,
        warnings,
        all_profiles: tree.all_profiles,
        all_services: tree.all_services,
        graph,
        root: tree.root,
    })
}

/// The node at a key path, for pointing an error at the value the user wrote.
pub fn node_at<'a>(root: &'a Node, path: &[&str]) -> Option<&'a Node> {
    let mut node = root;
    for key in path {
        node = node.get(key)?;
    }
    Some(node)
}

/// The best place to point at for a key path: the deepest node that exists on it.
pub fn span_at(root: &Node, path: &[&str]) -> Span {
    let mut node = root;
    for key in path {
        match node.get(key) {
            Some(n) => node = n,
            None => break,
        }
    }
    node.span.clone()
}

/// Where the Compose schema wants a string, YAML's numbers and booleans are refused
/// rather than silently turned into text (`image: 1` is a mistake, not a tag).
fn check_string_types(root: &Node) -> Result<(), StackError> {
    let strict = |node: &Node, path: &str| -> Result<(), StackError> {
        match &node.value {
            Value::Scalar(s, Style::Plain)
                if !matches!(super::de::resolve_plain(s), super::de::Resolved::Str) =>
            {
                Err(StackError::at(
                    &node.span,
                    path,
                    format!("{path} must be a string, found {s}"),
                ))
            }
            Value::Seq(_) | Value::Map(_) => Err(StackError::at(
                &node.span,
                path,
                format!("{path} must be a string, found {}", node.kind()),
            )),
            _ => Ok(()),
        }
    };
    if let Some(services) = root.get("services").and_then(Node::as_map) {
        for (k, svc) in services {
            for key in ["image", "container_name", "hostname", "platform"] {
                if let Some(n) = svc.get(key) {
                    strict(n, &format!("services.{}.{key}", k.name))?;
                }
            }
        }
    }
    Ok(())
}

/// What Compose fills in after loading: env files read into `environment`, the default
/// network, resource names.
fn normalize(
    project: &mut Project,
    tree: &Tree,
    warnings: &mut Vec<String>,
) -> Result<(), StackError> {
    let name = tree.name.clone();
    let mut uses_default_network = false;
    for (svc_name, svc) in project.services.iter_mut() {
        let place = ["services", svc_name.as_str(), "env_file"];
        // Env files first, then `environment` over them; a key without a value takes the
        // project environment's (EXPECTED.md, "Env-file precedence").
        let mut env: IndexMap<String, Option<String>> = IndexMap::new();
        for file in std::mem::take(&mut svc.env_file) {
            let path = PathBuf::from(&file.path);
            if !path.is_file() {
                if file.required {
                    return Err(StackError::at(
                        &span_at(&tree.root, &place),
                        place.join("."),
                        format!(
                            "env file {} not found; create it, or mark it `required: false`",
                            path.display()
                        ),
                    ));
                }
                continue;
            }
            let service_env = &svc.environment;
            let project_env = &tree.environment;
            let lookup = |k: &str| {
                project_env
                    .get(k)
                    .cloned()
                    .or_else(|| service_env.get(k).cloned().flatten())
            };
            let vars = dotenv::parse_file(&path, &lookup).map_err(|e| {
                StackError::at(&span_at(&tree.root, &place), place.join("."), e.to_string())
            })?;
            for (k, v) in vars {
                env.insert(k, Some(v));
            }
        }
        for (k, v) in std::mem::take(&mut svc.environment) {
            let v = v.or_else(|| tree.environment.get(&k).cloned());
            env.insert(k, v);
        }
        svc.environment = env;

        for file in std::mem::take(&mut svc.label_file) {
            let text = std::fs::read_to_string(&file).map_err(|source| StackError::Read {
                path: PathBuf::from(&file),
                source,
            })?;
            let none = |_: &str| None;
            let labels = dotenv::parse(&text, &none)
                .map_err(|e| StackError::Invalid(format!("label file {file}: {e}")))?;
            for (k, v) in labels {
                svc.labels.entry(k).or_insert(v);
            }
        }

        if svc.network_mode.is_none() && svc.networks.is_empty() {
            svc.networks.insert("default".to_string(), None);
        }
        if svc.networks.contains_key("default") {
            uses_default_network = true;
        }
    }
    if uses_default_network && !project.networks.contains_key("default") {
        project
            .networks
            .insert("default".to_string(), Default::default());
    }
    for (key, net) in project.networks.iter_mut() {
        if net.name.is_none() {
            net.name = Some(if net.external == Some(true) {
                key.clone()
            } else {
                format!("{name}_{key}")
            });
        }
    }
    for (key, vol) in project.volumes.iter_mut() {
        if vol.name.is_none() {
            vol.name = Some(if vol.external == Some(true) {
                key.clone()
            } else {
                format!("{name}_{key}")
            });
        }
    }
    let _ = warnings;
    Ok(())
}
