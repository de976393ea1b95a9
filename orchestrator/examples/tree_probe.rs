use berth_orchestrator::stack::load::{load_tree, Options};
use indexmap::IndexMap;
use serde_json::Value;
use std::path::{Path, PathBuf};
fn main() {
    let root = Path::new("/work/shared/conformance");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap())
            .unwrap();
    for case in manifest["cases"].as_array().unwrap() {
        let expect = case["expect"].as_str().unwrap();
        if expect == "schema-valid" {
            continue;
        }
        let files: Vec<PathBuf> = case["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| root.join(f.as_str().unwrap()))
            .collect();
        let env: IndexMap<String, String> = case["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let reference = case["reference_options"].to_string();
        let mut opts = Options {
            files,
            environment: Some(env),
            project_name: case["project_name"].as_str().map(str::to_string),
            no_directory_name: true,
            ..Options::default()
        };
        if reference.contains("model only") {
            opts.project_name = Some("x".into());
        }
        if reference.contains("ResourceLoader") {
            opts.remote_dir = Some(root.join(if expect == "reject" {
                "compose/invalid/compose-go/loader/testdata/remote"
            } else {
                "compose/valid/compose-go/loader/testdata/remote"
            }));
        }
        let r =
            std::panic::catch_unwind(|| load_tree(&opts).map(|_| ()).map_err(|e| e.to_string()));
        match (expect, r) {
            (_, Err(_)) => println!("PANIC {}", case["id"]),
            ("load", Ok(Err(e))) => println!("LOADFAIL {}: {}", case["id"], e),
            ("reject", Ok(Ok(()))) => println!("NOTREJ {} ({})", case["id"], case["error"]),
            ("reject", Ok(Err(e))) => println!("rej-ok {} | {} | {}", case["id"], case["error"], e),
            _ => {}
        }
    }
}
