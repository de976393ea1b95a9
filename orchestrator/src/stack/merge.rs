//! The Compose Specification's merge rules, on node trees: used for `-f a -f b` (later
//! files over earlier ones) and for `extends` (the service over its base).
//!
//! Mappings merge key by key; sequences append; `command`, `entrypoint` and
//! `healthcheck.test` are replaced; `ports`, `volumes`, `secrets`, `configs` and `devices`
//! merge by their unique key; attributes that may be written as a list or a map
//! (`environment`, `labels`, `depends_on`, service `networks`, …) are brought to the map
//! form first so that both spellings merge. `!reset` removes the inherited value;
//! `!override` replaces it whole.

use super::yaml::{Key, Map, Node, Style, Tag, Value};

/// How one attribute merges.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    /// The later value replaces the earlier one.
    Replace,
    /// List or map form, merged as a map (`KEY=VALUE` entries, or bare names).
    AsMap(Separator),
    /// A scalar or a list, merged as a list without repeats.
    AsList,
    /// A list whose entries are identified by a unique key.
    Unique(UniqueKey),
    /// `build: ./dir` is `build: {context: ./dir}`, so either form merges with the other.
    Build,
    /// The generic rule: maps merge, sequences append, scalars replace.
    Default,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Separator {
    /// `KEY=VALUE` (environment, labels, sysctls, build args).
    Equals,
    /// Bare names whose map form has options as values (depends_on, networks).
    Names,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum UniqueKey {
    MountTarget,
    Port,
    SecretTarget,
}

/// The rule for a key path inside a service.
fn service_rule(path: &[&str]) -> Rule {
    match path {
        ["command"] | ["entrypoint"] | ["healthcheck", "test"] => Rule::Replace,
        ["environment"]
        | ["labels"]
        | ["annotations"]
        | ["sysctls"]
        | ["build", "args"]
        | ["build", "labels"]
        | ["deploy", "labels"] => Rule::AsMap(Separator::Equals),
        ["depends_on"] | ["networks"] | ["links"] => {
            if path == ["links"] {
                Rule::AsList
            } else {
                Rule::AsMap(Separator::Names)
            }
        }
        ["dns"]
        | ["dns_search"]
        | ["dns_opt"]
        | ["env_file"]
        | ["label_file"]
        | ["tmpfs"]
        | ["cap_add"]
        | ["cap_drop"]
        | ["expose"]
        | ["external_links"]
        | ["volumes_from"]
        | ["security_opt"]
        | ["profiles"]
        | ["group_add"]
        | ["extra_hosts"]
        | ["device_cgroup_rules"] => Rule::AsList,
        ["volumes"] | ["devices"] => Rule::Unique(UniqueKey::MountTarget),
        ["ports"] => Rule::Unique(UniqueKey::Port),
        ["build"] => Rule::Build,
        ["secrets"] | ["configs"] => Rule::Unique(UniqueKey::SecretTarget),
        _ => Rule::Default,
    }
}

/// The rule for a key path from the top of the file.
fn rule(path: &[&str]) -> Rule {
    match path {
        ["services", _, rest @ ..] if !rest.is_empty() => service_rule(rest),
        [_, _, "labels"] | [_, _, "driver_opts"] => Rule::AsMap(Separator::Equals),
        _ => Rule::Default,
    }
}

/// Merges a later file's top-level node over an earlier one's.
pub fn merge_files(base: Node, over: Node) -> Node {
    merge(base, over, &mut Vec::new())
}

/// Merges a service over the base it `extends`.
pub fn merge_service(base: Node, over: Node) -> Node {
    let mut path = vec!["services".to_string(), "_".to_string()];
    merge(base, over, &mut path)
}

fn merge(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    if over.tag == Some(Tag::Override) {
        return over;
    }
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    match rule(&names) {
        Rule::Replace => over,
        Rule::AsMap(sep) => merge_maps(to_map(base, sep), to_map(over, sep), path),
        Rule::AsList => append_unique(to_list(base), to_list(over)),
        Rule::Unique(key) => merge_unique(base, over, key),
        Rule::Build => merge_maps(build_map(base), build_map(over), path),
        Rule::Default => match (base.value, over.value) {
            (Value::Map(b), Value::Map(o)) => merge_maps_inner(b, o, over.span, over.tag, path),
            (Value::Seq(mut b), Value::Seq(o)) => {
                b.extend(o);
                Node {
                    value: Value::Seq(b),
                    span: over.span,
                    tag: over.tag,
                }
            }
            (_, value) => Node {
                value,
                span: over.span,
                tag: over.tag,
            },
        },
    }
}

fn merge_maps(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    match (base.value, over.value) {
        (Value::Map(b), Value::Map(o)) => merge_maps_inner(b, o, over.span, over.tag, path),
        (_, value) => Node {
            value,
            span: over.span,
            tag: over.tag,
        },
    }
}

fn merge_maps_inner(
    mut base: Map,
    over: Map,
    span: super::yaml::Span,
    tag: Option<Tag>,
    path: &mut Vec<String>,
) -> Node {
    for (key, value) in over {
        if value.tag == Some(Tag::Reset) {
            base.shift_remove(key.name.as_str());
            continue;
        }
        match base.shift_remove_full(key.name.as_str()) {
            Some((index, _, old)) => {
                path.push(key.name.clone());
                let merged = merge(old, value, path);
                path.pop();
                base.shift_insert(index, key, merged);
            }
            None => {
                base.insert(key, value);
            }
        }
    }
    Node {
        value: Value::Map(base),
        span,
        tag,
    }
}

/// Brings a list-or-map attribute to its map form: `["A=1", "B"]` → `{A: "1", B: null}`.
fn to_map(node: Node, sep: Separator) -> Node {
    let Value::Seq(items) = node.value else {
        return node;
    };
    let mut map = Map::new();
    for item in items {
        let span = item.span.clone();
        let (name, value) = match (&item.value, sep) {
            (Value::Scalar(s, _), Separator::Equals) => match s.split_once('=') {
                Some((k, v)) => (
                    k.to_string(),
                    Node::new(Value::Scalar(v.to_string(), Style::Quoted), span.clone()),
                ),
                None => (s.clone(), Node::new(Value::Null, span.clone())),
            },
            (Value::Scalar(s, _), Separator::Names) => {
                (s.clone(), Node::new(Value::Null, span.clone()))
            }
            // Not a list of names: leave it for the typed model to refuse with a place.
            _ => {
                return Node {
                    value: Value::Seq(vec![item]),
                    span: node.span,
                    tag: node.tag,
                }
            }
        };
        map.insert(
            Key {
                name,
                span,
                non_string: false,
            },
            value,
        );
    }
    Node {
        value: Value::Map(map),
        span: node.span,
        tag: node.tag,
    }
}

fn build_map(node: Node) -> Node {
    match node.value {
        Value::Scalar(..) => {
            let span = node.span.clone();
            let mut map = Map::new();
            map.insert(
                Key {
                    name: "context".into(),
                    span: span.clone(),
                    non_string: false,
                },
                Node::new(node.value, span),
            );
            Node {
                value: Value::Map(map),
                span: node.span,
                tag: node.tag,
            }
        }
        _ => node,
    }
}

fn to_list(node: Node) -> Node {
    match node.value {
        Value::Seq(_) => node,
        Value::Null => Node {
            value: Value::Seq(Vec::new()),
            ..node
        },
        value => {
            let span = node.span.clone();
            Node {
                value: Value::Seq(vec![Node::new(value, span)]),
                span: node.span,
                tag: node.tag,
            }
        }
    }
}

fn append_unique(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Seq(mut b), Value::Seq(o)) => {
            for item in o {
                if !b.contains(&item) {
                    b.push(item);
                }
            }
            Node {
                value: Value::Seq(b),
                span: over.span,
                tag: over.tag,
            }
        }
        (_, value) => Node {
            value,
            span: over.span,
            tag: over.tag,
        },
    }
}

fn merge_unique(base: Node, over: Node, key: UniqueKey) -> Node {
    match (base.value, over.value) {
        (Value::Seq(mut b), Value::Seq(o)) => {
            for item in o {
                let k = unique_key(&item, key);
                match b
                    .iter()
                    .position(|e| k.is_some() && unique_key(e, key) == k)
                {
                    Some(i) => b[i] = item,
                    None => b.push(item),
                }
            }
            Node {
                value: Value::Seq(b),
                span: over.span,
                tag: over.tag,
            }
        }
        (_, value) => Node {
            value,
            span: over.span,
            tag: over.tag,
        },
    }
}

/// The part of a list entry that makes it unique (spec, "Unique resources").
fn unique_key(item: &Node, key: UniqueKey) -> Option<String> {
    match (&item.value, key) {
        (Value::Scalar(s, _), UniqueKey::MountTarget) => Some(short_mount_target(s)),
        (Value::Map(_), UniqueKey::MountTarget) => item
            .get("target")
            .and_then(Node::as_str)
            .map(str::to_string),
        (Value::Scalar(s, _), UniqueKey::SecretTarget) => Some(s.clone()),
        (Value::Map(_), UniqueKey::SecretTarget) => item
            .get("target")
            .or_else(|| item.get("source"))
            .and_then(Node::as_str)
            .map(str::to_string),
        (Value::Scalar(s, _), UniqueKey::Port) => Some(s.clone()),
        (Value::Map(_), UniqueKey::Port) => Some(
            ["host_ip", "target", "published", "protocol"]
                .iter()
                .map(|k| item.get(k).and_then(Node::as_str).unwrap_or(""))
                .collect::<Vec<_>>()
                .join("|"),
        ),
        _ => None,
    }
}

/// The container path of a short volume/device entry `SRC:TARGET[:MODE]` (or `TARGET`),
/// allowing a Windows drive letter in the source.
pub fn short_mount_target(s: &str) -> String {
    let parts = split_short_volume(s);
    match parts.len() {
        1 => parts[0].to_string(),
        _ => parts[1].to_string(),
    }
}

/// Splits a short volume spec on `:`, keeping a Windows drive letter (`C:\x`) whole.
pub fn split_short_volume(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            let is_drive = i == start + 1
                && bytes[start].is_ascii_alphabetic()
                && matches!(bytes.get(i + 1), Some(b'\\') | Some(b'/'));
            if !is_drive {
                parts.push(&s[start..i]);
                start = i + 1;
            }
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

/// Removes what the tags asked for once nothing is left to merge with: `!reset` entries
/// go, other tags are dropped.
pub fn clear_tags(node: &mut Node) {
    node.tag = None;
    match &mut node.value {
        Value::Map(map) => {
            map.retain(|_, v| v.tag != Some(Tag::Reset));
            for v in map.values_mut() {
                clear_tags(v);
            }
        }
        Value::Seq(items) => {
            items.retain(|v| v.tag != Some(Tag::Reset));
            for v in items.iter_mut() {
                clear_tags(v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::de::{from_node, Path};
    use crate::stack::yaml::parse_str;

    fn merged(a: &str, b: &str) -> serde_json::Value {
        let a = parse_str(a).unwrap().remove(0);
        let b = parse_str(b).unwrap().remove(0);
        let mut m = merge_files(a, b);
        clear_tags(&mut m);
        from_node(&m, Path::Root).unwrap()
    }

    #[test]
    fn mappings_merge_and_scalars_override() {
        let v = merged(
            "services:\n  foo:\n    key1: value1\n    key2: value2\n",
            "services:\n  foo:\n    key2: VALUE\n    key3: value3\n",
        );
        assert_eq!(
            v,
            serde_json::json!({"services": {"foo": {"key1": "value1", "key2": "VALUE", "key3": "value3"}}})
        );
    }

    #[test]
    fn sequences_append_and_commands_replace() {
        let v = merged(
            "services:\n  foo:\n    dns: [1.1.1.1]\n    command: [echo, foo]\n",
            "services:\n  foo:\n    dns: 8.8.8.8\n    command: [echo, bar]\n",
        );
        assert_eq!(
            v["services"]["foo"]["dns"],
            serde_json::json!(["1.1.1.1", "8.8.8.8"])
        );
        assert_eq!(
            v["services"]["foo"]["command"],
            serde_json::json!(["echo", "bar"])
        );
    }

    #[test]
    fn volumes_merge_by_target() {
        let v = merged(
            "services:\n  foo:\n    volumes: ['foo:/work', '/a:/b']\n",
            "services:\n  foo:\n    volumes: ['bar:/work']\n",
        );
        assert_eq!(
            v["services"]["foo"]["volumes"],
            serde_json::json!(["bar:/work", "/a:/b"])
        );
    }

    #[test]
    fn environment_list_and_map_merge_by_key() {
        let v = merged(
            "services:\n  foo:\n    environment: [A=1, B=2]\n",
            "services:\n  foo:\n    environment: {B: 3, C: 4}\n",
        );
        assert_eq!(
            v["services"]["foo"]["environment"],
            serde_json::json!({"A": "1", "B": 3, "C": 4})
        );
    }

    #[test]
    fn reset_removes_and_override_replaces() {
        let v = merged(
            "services:\n  app:\n    image: myapp\n    ports: ['8080:80']\n    environment: {FOO: BAR}\n    dns: [a]\n",
            "services:\n  app:\n    ports: !reset []\n    environment:\n      FOO: !reset null\n    dns: !override [b]\n",
        );
        assert_eq!(
            v,
            serde_json::json!({"services": {"app": {"image": "myapp", "environment": {}, "dns": ["b"]}}})
        );
    }

    #[test]
    fn ports_merge_by_their_unique_key_and_secrets_by_target() {
        let v = merged(
            "services:\n  foo:\n    ports: ['8080:80', '9090:90']\n    secrets: [a, {source: b, target: t}]\n",
            "services:\n  foo:\n    ports: ['8080:80', '7070:70']\n    secrets: [{source: c, target: t}]\n",
        );
        assert_eq!(
            v["services"]["foo"]["ports"],
            serde_json::json!(["8080:80", "9090:90", "7070:70"])
        );
        assert_eq!(
            v["services"]["foo"]["secrets"],
            serde_json::json!(["a", {"source": "c", "target": "t"}])
        );
    }

    #[test]
    fn depends_on_and_networks_merge_across_list_and_map_forms() {
        let v = merged(
            "services:\n  foo:\n    depends_on: [a]\n    networks: [front]\n",
            "services:\n  foo:\n    depends_on: {b: {condition: service_healthy}}\n    networks: {back: {aliases: [x]}}\n",
        );
        assert_eq!(
            v["services"]["foo"]["depends_on"],
            serde_json::json!({"a": null, "b": {"condition": "service_healthy"}})
        );
        assert_eq!(
            v["services"]["foo"]["networks"],
            serde_json::json!({"front": null, "back": {"aliases": ["x"]}})
        );
    }

    #[test]
    fn build_string_and_map_merge() {
        let v = merged(
            "services:\n  foo:\n    build: ./app\n",
            "services:\n  foo:\n    build: {dockerfile: Dockerfile.dev}\n",
        );
        assert_eq!(
            v["services"]["foo"]["build"],
            serde_json::json!({"context": "./app", "dockerfile": "Dockerfile.dev"})
        );
        let v = merged(
            "services:\n  foo:\n    build: {context: ., args: {A: '0', C: '3'}}\n",
            "services:\n  foo:\n    build: {args: [A=1, B=2]}\n",
        );
        assert_eq!(
            v["services"]["foo"]["build"]["args"],
            serde_json::json!({"A": "1", "C": "3", "B": "2"})
        );
    }

    #[test]
    fn labels_of_top_level_resources_merge_by_key() {
        let v = merged(
            "volumes:\n  data:\n    labels: [a=1]\n",
            "volumes:\n  data:\n    labels: {b: '2'}\n    driver: local\n",
        );
        assert_eq!(
            v["volumes"]["data"],
            serde_json::json!({"labels": {"a": "1", "b": "2"}, "driver": "local"})
        );
    }

    #[test]
    fn healthcheck_test_is_replaced_but_its_other_keys_merge() {
        let v = merged(
            "services:\n  foo:\n    healthcheck: {test: [CMD, a], interval: 10s}\n",
            "services:\n  foo:\n    healthcheck: {test: [CMD, b]}\n",
        );
        assert_eq!(
            v["services"]["foo"]["healthcheck"],
            serde_json::json!({"test": ["CMD", "b"], "interval": "10s"})
        );
    }

    #[test]
    fn windows_drive_letters_stay_in_the_source() {
        assert_eq!(
            split_short_volume("C:\\data:/data:ro"),
            vec!["C:\\data", "/data", "ro"]
        );
        assert_eq!(short_mount_target("/data"), "/data");
    }
}
