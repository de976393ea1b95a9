//! The resolved stack as `berth config` prints it, and the per-service config hash the
//! reconciler compares to decide what to recreate.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::emit;
use super::Loaded;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// Adds a struct's `x-` extensions back into its serialized form (the typed model keeps
/// them apart so that unknown keys can be refused).
fn with_extensions(mut value: Value, extensions: &indexmap::IndexMap<String, Value>) -> Value {
    if let Value::Object(map) = &mut value {
        for (k, v) in extensions {
            map.insert(k.clone(), v.clone());
        }
    }
    value
}

fn section<T: serde::Serialize>(
    items: &indexmap::IndexMap<String, T>,
    extensions: impl Fn(&T) -> &indexmap::IndexMap<String, Value>,
) -> Value {
    let mut out = Map::new();
    for (name, item) in items {
        let v = serde_json::to_value(item).expect("the model serializes");
        out.insert(name.clone(), with_extensions(v, extensions(item)));
    }
    Value::Object(out)
}

/// The whole project as a JSON value in the Compose Specification's shape.
pub fn to_value(loaded: &Loaded) -> Value {
    let p = &loaded.project;
    let mut top = Map::new();
    top.insert("name".into(), Value::String(loaded.name.clone()));
    top.insert("services".into(), section(&p.services, |s| &s.extensions));
    if !p.networks.is_empty() {
        top.insert("networks".into(), section(&p.networks, |n| &n.extensions));
    }
    if !p.volumes.is_empty() {
        top.insert("volumes".into(), section(&p.volumes, |v| &v.extensions));
    }
    if !p.secrets.is_empty() {
        top.insert("secrets".into(), section(&p.secrets, |s| &s.extensions));
    }
    if !p.configs.is_empty() {
        top.insert("configs".into(), section(&p.configs, |c| &c.extensions));
    }
    if !p.models.is_empty() {
        top.insert(
            "models".into(),
            serde_json::to_value(&p.models).expect("the model serializes"),
        );
    }
    with_extensions(Value::Object(top), &p.extensions)
}

/// The text `berth config` prints: stable (same input, same bytes) and loadable again.
pub fn render(loaded: &Loaded, format: Format) -> String {
    let value = escape_dollars(to_value(loaded));
    match format {
        Format::Yaml => emit::to_yaml(&value),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&value).expect("JSON values serialize");
            s.push('\n');
            s
        }
    }
}

/// The hash of what makes a service's containers what they are. Like Compose, it leaves
/// out what does not change a running container: how the image is built or pulled, how
/// many replicas run, what it depends on and which profiles enable it.
pub fn service_hash(loaded: &Loaded, service: &str) -> Option<String> {
    let svc = loaded.project.services.get(service)?;
    let mut value = with_extensions(
        serde_json::to_value(svc).expect("the model serializes"),
        &svc.extensions,
    );
    if let Value::Object(map) = &mut value {
        for key in ["build", "pull_policy", "scale", "depends_on", "profiles"] {
            map.remove(key);
        }
        if let Some(Value::Object(deploy)) = map.get_mut("deploy") {
            deploy.remove("replicas");
        }
    }
    let bytes = serde_json::to_vec(&canonical(value)).expect("JSON values serialize");
    Some(hex::encode(Sha256::digest(&bytes)))
}

/// Sorts every object's keys, so that writing the same map in another order (say,
/// `environment` entries) gives the same hash.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Values are printed interpolated; a `$` left in one (written `$$` in the file) is
/// escaped again, so that the printed stack means the same when it is loaded.
fn escape_dollars(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('$') => Value::String(s.replace('$', "$$")),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, escape_dollars(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(escape_dollars).collect()),
        other => other,
    }
}
