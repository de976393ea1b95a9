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

/// What our error must say for each case that must be refused (the problem the
/// reference loader names, in Berth's words).
const REJECT_REASONS: &[(&str, &str)] = &[
    ("invalid/compose-go/loader/testdata/compose-depends-on-cycle", "dependency cycle detected: service1 -> service2 -> service3 -> service1"),
    ("invalid/compose-go/loader/testdata/compose-depends-on-self", "dependency cycle detected: service1 -> service1"),
    ("invalid/compose-go/loader/testdata/compose-depends-on-profile-no-cycle", "dependency cycle detected: service1 -> service2 -> service3 -> service1"),
    ("invalid/compose-go/loader/testdata/compose-include-cycle", "include cycle detected"),
    ("invalid/compose-go/loader/testdata/empty", "empty compose file"),
    ("invalid/compose-go/loader/TestLoadWithResourcesCycle", "Circular reference"),
    ("invalid/compose-go/loader/testdata/remote/cycle/compose", "Circular reference"),
    ("invalid/compose-go/loader/TestInvalidTopLevelObjectType-1", "top-level object must be a mapping"),
    ("invalid/compose-go/loader/TestInvalidTopLevelObjectType-2", "top-level object must be a mapping"),
    ("invalid/compose-go/loader/TestInvalidTopLevelObjectType-3", "top-level object must be a mapping"),
    ("invalid/compose-go/loader/TestNonStringKeys-1", "non-string key at top level: 123"),
    ("invalid/compose-go/loader/TestNonStringKeys-2", "non-string key in services: 123"),
    ("invalid/compose-go/loader/TestNonStringKeys-3", "non-string key in networks.default.ipam.config[0]: 123"),
    ("invalid/compose-go/loader/TestNonStringKeys-4", "non-string key in services.dict-env.environment: 1"),
    ("invalid/compose-go/loader/TestV1Unsupported", "Compose file format v1 is not supported"),
    ("invalid/compose-go/loader/TestNonMappingObject-1", "services must be a mapping"),
    ("invalid/compose-go/loader/TestNonMappingObject-2", "services.foo must be a mapping"),
    ("invalid/compose-go/loader/TestNonMappingObject-3", "networks must be a mapping"),
    ("invalid/compose-go/loader/TestNonMappingObject-4", "networks.default must be a mapping"),
    ("invalid/compose-go/loader/TestNonMappingObject-5", "volumes must be a mapping"),
    ("invalid/compose-go/loader/TestNonMappingObject-6", "volumes.data must be a mapping"),
    ("invalid/compose-go/loader/TestNonStringImage", "services.foo.image must be a string"),
    ("invalid/compose-go/loader/TestInvalidEnvironmentValue", "services.dict-env.environment.FOO: invalid type: sequence, expected a boolean, null, number or string"),
    ("invalid/compose-go/loader/TestInvalidEnvironmentObject", "services.dict-env.environment: invalid type"),
    ("invalid/compose-go/loader/TestDecodeErrors", "found a tab"),
    ("invalid/compose-go/loader/TestInvalidResource", "unknown key `impossible`"),
    ("invalid/compose-go/loader/TestInvalidExternalAndDriverCombination", "conflicting parameters \"external\" and \"driver\" specified"),
    ("invalid/compose-go/loader/TestInvalidExternalAndDirverOptsCombination", "conflicting parameters \"external\" and \"driver_opts\" specified"),
    ("invalid/compose-go/loader/TestInvalidExternalAndLabelsCombination", "conflicting parameters \"external\" and \"labels\" specified"),
    ("invalid/compose-go/loader/TestLoadVolumeInvalidExternalNameAndNameCombination", "volumes.external_volume: `name` and `external.name` conflict"),
    ("invalid/compose-go/loader/TestLoadTmpfsVolumeAdditionalPropertyNotAllowed", "services.tmpfs.volumes[0]: unknown key `foo`"),
    ("invalid/compose-go/loader/TestLoadBindMountSourceMustNotBeEmpty", "a mount of type \"bind\" needs a `source`"),
    ("invalid/compose-go/loader/TestLoadTmpfsVolumeSizeMustBeGTEQZero", "services.tmpfs.volumes[0].tmpfs.size: invalid byte size -1: must not be negative"),
    ("invalid/compose-go/loader/TestLoadTmpfsVolumeSizeMustBeInteger", "services.tmpfs.volumes[0].tmpfs.size: invalid byte size 0.0001"),
    ("invalid/compose-go/loader/TestLoadSecretInvalidExternalNameAndNameCombination", "secrets.external_secret: `name` and `external.name` conflict"),
    ("invalid/compose-go/loader/TestLoadNetworkInvalidExternalNameAndNameCombination", "networks.foo: `name` and `external.name` conflict"),
    ("invalid/compose-go/loader/TestServiceDeviceRequestCountInvalidStringType", "some_string"),
    ("invalid/compose-go/loader/TestServiceDeviceRequestCountAndDeviceIdsExclusive", "\"count\" and \"device_ids\""),
    ("invalid/compose-go/loader/TestServiceDeviceRequestCapabilitiesMandatory", "missing `capabilities`"),
    ("invalid/compose-go/loader/TestLoadSSHWithoutValueInBuildConfig", "services.test.build.ssh: invalid type: null"),
    ("invalid/compose-go/loader/TestInvalidProjectNameType", "name must be a string, found 123"),
    ("invalid/compose-go/loader/TestLoadWithMissingResources", "cannot read extends file"),
    ("invalid/compose-go/loader/TestBadDevelopConfig", "services.frontend.develop.watch[0]: missing field `action`"),
    ("invalid/compose-go/loader/TestBadServiceConfig", "`network_mode` and `networks` are mutually exclusive"),
    ("invalid/compose-go/loader/TestLoadEmptyContent_MissingProject", "project name must not be empty"),
    ("invalid/compose-go/loader/TestLoadProjectName", "project name must not be empty"),
    ("invalid/compose-go/loader/TestWithSelectedServicesOption_SkipsMissingEnvFile", "this-file-does-not-exist.env not found"),
    ("invalid/compose-go/loader/TestExtendsWihtMissingService", "extends.test.service is required"),
    ("invalid/compose-go/loader/TestExtendsWithServiceRef-volumes_from", "service \"bar\" depends on undefined service \"zot\" (volumes_from)"),
    ("invalid/compose-go/loader/TestExtendsWithServiceRef-depends_on", "service \"bar\" depends on undefined service \"zot\" (depends_on)"),
    ("invalid/compose-go/loader/TestExtendsWithServiceRef-ipc", "service \"bar\" depends on undefined service \"zot\" (ipc)"),
    ("invalid/compose-go/loader/TestExtendsWithServiceRef-network_mode", "service \"bar\" depends on undefined service \"zot\" (network_mode)"),
    ("invalid/compose-go/loader/TestResetCycle-direct_self_reference_cycle", "alias refers to a node that contains it"),
    ("invalid/compose-go/loader/TestAliasBombPrevented-B9_N9_original_poc", "excessive aliasing"),
    ("invalid/compose-go/loader/TestAliasNodePreservation", "excessive aliasing"),
    ("invalid/compose-go/loader/TestMergeKeyAliasToScalarRejected", "map merge requires map"),
    ("invalid/compose-go/loader/Test_DuplicateReset", "6:6: mapping key \"command\" already defined at line 5"),
    ("invalid/compose-go/loader/tests/TestDevelopMissingAction", "services.web.develop.watch[0]: missing field `action`"),
    ("invalid/compose-go/loader/tests/TestEnvironmentInvalidValue", "services.foo.environment.FOO: invalid type: sequence"),
    ("invalid/compose-go/loader/tests/TestEnvironmentInvalidObject", "services.foo.environment: invalid type"),
    ("invalid/compose-go/loader/tests/TestEnvironmentWhitespace", "\"DEBUG\" is declared with a trailing space"),
];

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
        services: opts.services.clone(),
        no_directory_name: true,
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
            ("reject", Ok(Err(e))) => {
                let reason = REJECT_REASONS
                    .iter()
                    .find(|(case_id, _)| *case_id == id)
                    .map(|(_, r)| *r)
                    .unwrap_or("(no reason listed for this case)");
                Outcome {
                    ok: e.contains(reason),
                    detail: format!("the error must say {reason:?}; it says: {e}"),
                    id,
                }
            }
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
