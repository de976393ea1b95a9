//! Walks every case of the Compose conformance corpus (../shared/conformance/manifest.json):
//! files that must load do, and `berth config` prints them (and its output loads again to
//! the same text); files that must be refused are refused with an error that names the
//! problem.

use std::path::{Path, PathBuf};

use berth_orchestrator::stack::{self, load::Options};
use indexmap::IndexMap;
use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance")
}

struct Outcome {
    id: String,
    ok: bool,
    detail: String,
}

fn options_for(case: &Value, root: &Path) -> Options {
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
    let model_only = reference.contains("model only");
    let mut opts = Options {
        files,
        environment: Some(env),
        project_name: case["project_name"].as_str().map(str::to_string),
        skip_consistency: case["strict_semantics"] == Value::Bool(false),
        no_directory_name: true,
        ..Options::default()
    };
    if model_only {
        opts.project_name = Some("model-only".into());
    }
    if reference.contains("ResourceLoader") {
        opts.remote_dir = Some(root.join(if case["expect"] == "reject" {
            "compose/invalid/compose-go/loader/testdata/remote"
        } else {
            "compose/valid/compose-go/loader/testdata/remote"
        }));
    }
    if let Some(sel) = reference.split("WithSelectedServices([").nth(1) {
        let names = sel.split(']').next().unwrap_or_default();
        opts.services = names.split(',').map(|s| s.trim().to_string()).collect();
    }
    opts
}

/// Loads a case and prints it as `berth config` does; then loads that output again and
/// checks it prints the same (the output is a stack file in its own right).
fn load_and_print(opts: &Options) -> Result<String, String> {
    let loaded = stack::load(opts).map_err(|e| e.to_string())?;
    let text = stack::config::render(&loaded, stack::config::Format::Yaml);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("compose.yaml");
    std::fs::write(&out, &text).unwrap();
    let again = Options {
        files: vec![out],
        environment: Some(IndexMap::new()),
        project_name: Some(loaded.project.name.clone().unwrap_or_default()),
        skip_consistency: opts.skip_consistency,
        ..Options::default()
    };
    let reloaded = stack::load(&again)
        .map_err(|e| format!("config output does not load again: {e}\n{text}"))?;
    let text2 = stack::config::render(&reloaded, stack::config::Format::Yaml);
    if text2 != text {
        return Err(format!(
            "config output is not stable:\n--- first\n{text}\n--- second\n{text2}"
        ));
    }
    Ok(text)
}

#[test]
fn conformance_corpus() {
    let root = corpus();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap())
            .unwrap();
    let mut outcomes = Vec::new();
    for case in manifest["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap().to_string();
        let expect = case["expect"].as_str().unwrap();
        if expect == "schema-valid" {
            continue;
        }
        let opts = options_for(case, &root);
        let result = std::panic::catch_unwind(|| load_and_print(&opts));
        let outcome = match (expect, result) {
            (_, Err(_)) => Outcome {
                id,
                ok: false,
                detail: "PANIC".into(),
            },
            ("load", Ok(Ok(_))) => Outcome {
                id,
                ok: true,
                detail: String::new(),
            },
            ("load", Ok(Err(e))) => Outcome {
                id,
                ok: false,
                detail: e,
            },
            ("reject", Ok(Ok(_))) => Outcome {
                id,
                ok: false,
                detail: format!("loaded, but must be refused with: {}", case["error"]),
            },
            ("reject", Ok(Err(e))) => Outcome {
                id,
                ok: true,
                detail: format!("expected {} / got {e}", case["error"]),
            },
            _ => unreachable!(),
        };
        outcomes.push((expect.to_string(), outcome));
    }
    let mut failed = 0;
    for (expect, o) in &outcomes {
        if !o.ok {
            failed += 1;
            eprintln!("FAIL [{expect}] {}: {}", o.id, o.detail);
        } else if std::env::var("CONFORMANCE_VERBOSE").is_ok() && !o.detail.is_empty() {
            eprintln!("ok   [{expect}] {}: {}", o.id, o.detail);
        }
    }
    let loads = outcomes.iter().filter(|(e, o)| e == "load" && o.ok).count();
    let rejects = outcomes
        .iter()
        .filter(|(e, o)| e == "reject" && o.ok)
        .count();
    eprintln!("conformance: {loads} of 329 load cases load and print; {rejects} of 61 reject cases are refused");
    assert_eq!(failed, 0, "{failed} conformance cases failed");
    assert_eq!((loads, rejects), (329, 61));
}
