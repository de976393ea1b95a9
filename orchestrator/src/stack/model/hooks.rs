//! Lifecycle hooks (`post_start`, `pre_stop`, `pre_start`) and `develop`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::de::{environment, null_as_empty, string_enum, string_or_list};
use super::shell_words::{command, opt_command};
use super::Extensions;

/// A command run inside the service's container (`post_start`, `pre_stop`,
/// `develop.watch[].exec`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceHook {
    /// Exec form; the string form is split into words.
    #[serde(deserialize_with = "command")]
    pub command: Vec<String>,
    /// Added to (or overriding) the service's environment.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "environment"
    )]
    pub environment: IndexMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// An init container run to completion before the service's container starts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreStartHook {
    /// Optional: the image's entrypoint may already do the work.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_command"
    )]
    pub command: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "environment"
    )]
    pub environment: IndexMap<String, Option<String>>,
    /// Defaults to the service's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Run once per replica instead of once for the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_replica: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

/// `develop`: what `watch` mode does when files change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Develop {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub watch: Vec<WatchRule>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

string_enum! {
    /// What a watch rule does on a change.
    pub enum WatchAction ("watch action") {
        Rebuild = "rebuild",
        Sync = "sync",
        Restart = "restart",
        SyncRestart = "sync+restart",
        SyncExec = "sync+exec",
    }
}

/// One `develop.watch` rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRule {
    pub action: WatchAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ServiceHook>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    pub ignore: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_sync: Option<bool>,
    /// Made absolute by `resolve_paths`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(rename(deserialize = "__x"), default, skip_serializing)]
    pub extensions: Extensions,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hooks() {
        let h: ServiceHook = serde_json::from_value(json!({
            "command": "./do_something_on_startup.sh", "user": "root", "privileged": true,
            "environment": ["FOO=BAR"], "working_dir": "/app"
        }))
        .unwrap();
        assert_eq!(h.command, ["./do_something_on_startup.sh"]);
        assert_eq!(h.environment["FOO"].as_deref(), Some("BAR"));
        let err = serde_json::from_value::<ServiceHook>(json!({"user": "root"})).unwrap_err();
        assert!(err.to_string().contains("missing field `command`"), "{err}");
        let p: PreStartHook = serde_json::from_value(
            json!({"image": "busybox", "command": "sh -c 'chown -R 1000:1000 /data'"}),
        )
        .unwrap();
        assert_eq!(p.command.unwrap(), ["sh", "-c", "chown -R 1000:1000 /data"]);
        let p: PreStartHook = serde_json::from_value(json!({"per_replica": true})).unwrap();
        assert_eq!(p.command, None);
    }

    #[test]
    fn develop_watch() {
        let d: Develop = serde_json::from_value(json!({"watch": [
            {"path": "./src", "action": "sync", "target": "/app/src", "ignore": "node_modules/", "initial_sync": true},
            {"path": "package.json", "action": "rebuild"},
            {"path": "./conf", "action": "sync+exec", "target": "/etc/conf", "exec": {"command": ["kill", "-HUP", "1"]}}
        ]}))
        .unwrap();
        assert_eq!(d.watch[0].action, WatchAction::Sync);
        assert_eq!(d.watch[0].ignore, ["node_modules/"]);
        assert_eq!(
            d.watch[2].exec.as_ref().unwrap().command,
            ["kill", "-HUP", "1"]
        );
    }

    #[test]
    fn develop_refusals() {
        let err =
            serde_json::from_value::<Develop>(json!({"watch": [{"path": "./src"}]})).unwrap_err();
        assert!(err.to_string().contains("missing field `action`"), "{err}");
        let err =
            serde_json::from_value::<Develop>(json!({"watch": [{"path": ".", "action": "copy"}]}))
                .unwrap_err();
        assert!(
            err.to_string().contains("invalid watch action \"copy\""),
            "{err}"
        );
    }
}
