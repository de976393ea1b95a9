//! `berth kube convert`: golden manifests for the example and the stacks under
//! tests/kube/, every awesome-compose file converts, warnings name what is lost, and
//! every manifest validates against the Kubernetes schemas (kubernetes-validate).
//!
//! `BERTH_BLESS=1` rewrites the golden files; review the diff before committing it.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_orchestrator::kube::{self, render, ConvertOptions, ServiceType};
use berth_orchestrator::stack::{self, load::Options};
use indexmap::IndexMap;

/// The Kubernetes version manifests are written for (k8s-openapi's `v1_35` feature).
const KUBERNETES_VERSION: &str = "1.35.0";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(file: &Path) -> stack::Loaded {
    let mut env = IndexMap::new();
    env.insert("HOME".to_string(), "/nonexistent".to_string());
    stack::load(&Options {
        files: vec![file.to_path_buf()],
        environment: Some(env),
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn convert(file: &Path, opts: &ConvertOptions) -> kube::Conversion {
    kube::convert(&load(file), opts).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The golden cases: (name, stack file, options).
fn cases() -> Vec<(&'static str, PathBuf, ConvertOptions)> {
    let k = manifest_dir().join("tests/kube");
    vec![
        (
            "hello",
            manifest_dir().join("../examples/hello/compose.yaml"),
            ConvertOptions::default(),
        ),
        (
            "hello-nodeport",
            manifest_dir().join("../examples/hello/compose.yaml"),
            ConvertOptions {
                namespace: Some("demo".into()),
                service_type: ServiceType::NodePort,
                services: vec![],
            },
        ),
        (
            "rich",
            k.join("rich/compose.yaml"),
            ConvertOptions::default(),
        ),
        (
            "rich-loadbalancer",
            k.join("rich/compose.yaml"),
            ConvertOptions {
                service_type: ServiceType::LoadBalancer,
                services: vec!["web".into(), "api-metrics".into()],
                ..ConvertOptions::default()
            },
        ),
        (
            "lossy",
            k.join("lossy/compose.yaml"),
            ConvertOptions::default(),
        ),
    ]
}

fn golden(name: &str, what: &str, actual: &str) {
    let path = manifest_dir()
        .join("tests/kube/golden")
        .join(format!("{name}.{what}"));
    if std::env::var_os("BERTH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with BERTH_BLESS=1 to write it)",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(5)
            .map(|(i, (a, b))| format!("line {}:\n  golden: {a}\n  actual: {b}", i + 1))
            .collect();
        panic!(
            "{} differs from the conversion ({} vs {} lines):\n{}\n(run with BERTH_BLESS=1 to accept, then review the diff)",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

fn warnings_text(c: &kube::Conversion) -> String {
    c.warnings.iter().map(|w| format!("{w}\n")).collect()
}

#[test]
fn golden_manifests_are_stable() {
    for (name, file, opts) in cases() {
        let c = convert(&file, &opts);
        let yaml = render::to_stream(&c.manifests);
        golden(name, "yaml", &yaml);
        golden(name, "warnings", &warnings_text(&c));
        // The same input converts to the same bytes every time.
        let again = convert(&file, &opts);
        assert_eq!(
            render::to_stream(&again.manifests),
            yaml,
            "{name}: not deterministic"
        );
    }
}

#[test]
fn hello_becomes_two_deployments_a_service_and_a_wait() {
    let c = convert(
        &manifest_dir().join("../examples/hello/compose.yaml"),
        &ConvertOptions::default(),
    );
    let kinds: Vec<(&str, &str)> = c
        .manifests
        .iter()
        .map(|m| (m.kind, m.name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Namespace", "hello"),
            ("Service", "web"),
            ("NetworkPolicy", "network-default"),
            ("Deployment", "client"),
            ("Deployment", "web"),
        ]
    );
    let client = &c.manifests[3].value;
    let init = &client["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "wait-for-web");
    assert!(
        init["command"][2]
            .as_str()
            .unwrap()
            .contains("nc -z -w 2 web 8080"),
        "{init}"
    );
    let web = &c.manifests[4].value["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(web["resources"]["limits"]["memory"], "32Mi");
    assert_eq!(web["resources"]["limits"]["cpu"], "500m");
    assert_eq!(web["readinessProbe"]["periodSeconds"], 2);
    assert_eq!(web["livenessProbe"]["failureThreshold"], 5);
    for m in &c.manifests {
        assert_eq!(
            m.value["metadata"]["labels"]["io.berth.project"], "hello",
            "{}",
            m.name
        );
    }
}

#[test]
fn rich_stack_uses_every_workload_kind_it_should() {
    let c = convert(
        &manifest_dir().join("tests/kube/rich/compose.yaml"),
        &ConvertOptions::default(),
    );
    let find = |kind: &str, name: &str| {
        c.manifests
            .iter()
            .find(|m| m.kind == kind && m.name == name)
            .unwrap_or_else(|| panic!("no {kind}/{name}"))
            .value
            .clone()
    };
    // Named volume, one replica: a StatefulSet with its claim; the alias is a Service.
    let db = find("StatefulSet", "db");
    assert_eq!(
        db["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "shop-dbdata"
    );
    assert_eq!(
        find("PersistentVolumeClaim", "shop-dbdata")["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    find("Service", "database");
    // restart "no" and awaited with service_completed_successfully: a Job.
    assert_eq!(
        find("Job", "migrate")["spec"]["template"]["spec"]["restartPolicy"],
        "Never"
    );
    // network_mode service:api: the sidecar is a second container in api's Pod.
    let api = find("Deployment", "api");
    let containers = api["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[1]["name"], "api-metrics");
    assert_eq!(api["spec"]["replicas"], 3);
    let sc = &containers[0]["securityContext"];
    assert_eq!(sc["runAsUser"], 1000);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert_eq!(
        api["spec"]["template"]["spec"]["securityContext"]["sysctls"][0]["name"],
        "net.ipv4.ip_local_port_range"
    );
    assert_eq!(
        containers[0]["envFrom"][0]["configMapRef"]["name"],
        "api-env"
    );
    assert_eq!(
        find("ConfigMap", "api-env")["data"]["FEATURE_FLAGS"],
        "search,cart"
    );
    assert_eq!(
        find("Secret", "secret-db-password")["data"]["db_password"],
        "czNjcjN0Cg=="
    );
    // Networks: a policy each; members carry the label.
    find("NetworkPolicy", "network-front");
    // back is internal: its members alone may send only within it (and to the DNS).
    let internal = find("NetworkPolicy", "network-back-internal");
    assert_eq!(internal["spec"]["policyTypes"][0], "Egress");
    assert_eq!(
        db["spec"]["template"]["metadata"]["labels"]["io.berth.internal-only"],
        "true"
    );
    assert!(api["spec"]["template"]["metadata"]["labels"]
        .get("io.berth.internal-only")
        .is_none());
    // volumes_from: the same claim, read-only; shared, so ReadWriteMany.
    let backup = find("Deployment", "backup");
    let mounts = &backup["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(mounts["mountPath"], "/var/lib/postgresql/data");
    assert_eq!(mounts["readOnly"], true);
    assert_eq!(
        find("PersistentVolumeClaim", "shop-dbdata")["spec"]["accessModes"][0],
        "ReadWriteMany"
    );
    assert_eq!(
        backup["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "shop-dbdata"
    );
    find("NetworkPolicy", "network-back");
    assert_eq!(
        api["spec"]["template"]["metadata"]["labels"]["io.berth.network/back"],
        "true"
    );
    // x-kubernetes service-type: the published port is a NodePort.
    let published = find("Service", "web-published");
    assert_eq!(published["spec"]["type"], "NodePort");
    assert_eq!(published["spec"]["ports"][0]["nodePort"], 30080);
}

#[test]
fn every_lost_attribute_is_named_with_its_service_and_key() {
    let c = convert(
        &manifest_dir().join("tests/kube/lossy/compose.yaml"),
        &ConvertOptions::default(),
    );
    let keys: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
    for key in [
        "services.box.devices",
        "services.box.ulimits",
        "services.box.oom_score_adj",
        "services.box.pids_limit",
        "services.box.cpuset",
        "services.box.cgroup_parent",
        "services.box.init",
        "services.box.logging",
        "services.box.stop_signal",
        "services.box.user",
        "services.box.mac_address",
        "services.box.dns",
        "services.box.domainname",
        "services.box.volumes[0]",
        "services.box.security_opt",
        "services.box.blkio_config",
        "services.box.extra_hosts",
        "services.box.group_add",
        "services.box.restart",
        "services.box.gpus",
        "networks.default.driver_opts",
    ] {
        assert!(keys.contains(&key), "no warning for {key}; got {keys:#?}");
    }
    // ipc: host and pid: host have a form (hostIPC, hostPID): no warning.
    assert!(!keys.contains(&"services.box.ipc"));
    let spec = &c
        .manifests
        .iter()
        .find(|m| m.kind == "Deployment")
        .unwrap()
        .value["spec"]["template"]["spec"];
    assert_eq!(spec["hostIPC"], true);
    assert_eq!(spec["hostPID"], true);
}

#[test]
fn strict_refuses_a_lossy_stack_and_accepts_a_faithful_one() {
    let berth = env!("CARGO_BIN_EXE_berth");
    let lossy = manifest_dir().join("tests/kube/lossy/compose.yaml");
    let out = Command::new(berth)
        .args(["-f"])
        .arg(&lossy)
        .args(["kube", "convert", "--strict"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: services.box.devices:"), "{err}");
    assert!(err.contains("--strict refuses to convert"), "{err}");
    assert!(out.stdout.is_empty(), "nothing is written under --strict");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "name: faithful\nservices:\n  web:\n    image: nginx:1.27\n    restart: always\n    expose: [\"80\"]\n",
    )
    .unwrap();
    let out = Command::new(berth)
        .arg("-f")
        .arg(dir.path().join("compose.yaml"))
        .args(["kube", "convert", "--strict", "-o"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "001-namespace-faithful.yaml",
            "002-service-web.yaml",
            "003-networkpolicy-network-default.yaml",
            "004-deployment-web.yaml"
        ]
    );
}

#[test]
fn unknown_service_and_bad_namespace_are_refused() {
    let loaded = load(&manifest_dir().join("../examples/hello/compose.yaml"));
    let e = kube::convert(
        &loaded,
        &ConvertOptions {
            services: vec!["nope".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "no such service: nope");
    let e = kube::convert(
        &loaded,
        &ConvertOptions {
            namespace: Some("Bad_NS".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("invalid namespace \"Bad_NS\""),
        "{e}"
    );
}

fn awesome_compose_files() -> Vec<PathBuf> {
    let root = manifest_dir().join("../../shared/conformance/compose/valid/awesome-compose");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let dir = e.unwrap().path();
        for name in [
            "compose.yaml",
            "compose.yml",
            "docker-compose.yaml",
            "docker-compose.yml",
        ] {
            if dir.join(name).is_file() {
                out.push(dir.join(name));
                break;
            }
        }
    }
    out.sort();
    out
}

/// Converts every awesome-compose file; returns (file, stream) pairs.
fn awesome_compose_streams() -> Vec<(PathBuf, String)> {
    awesome_compose_files()
        .into_iter()
        .map(|f| {
            let c = convert(&f, &ConvertOptions::default());
            assert!(!c.manifests.is_empty(), "{}: no manifests", f.display());
            (f, render::to_stream(&c.manifests))
        })
        .collect()
}

#[test]
fn all_39_awesome_compose_files_convert() {
    let files = awesome_compose_files();
    assert_eq!(files.len(), 39, "{files:#?}");
    let streams = awesome_compose_streams();
    assert_eq!(streams.len(), 39);
    for (f, s) in &streams {
        assert!(
            s.contains("kind: Deployment") || s.contains("kind: StatefulSet"),
            "{}: no workload",
            f.display()
        );
    }
}

/// Finds kubernetes-validate: on PATH, or as a Python module.
fn validator() -> Option<Vec<String>> {
    let ok = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok(&["kubernetes-validate"]) {
        return Some(vec!["kubernetes-validate".into()]);
    }
    if ok(&["python3", "-m", "kubernetes_validate"]) {
        return Some(vec![
            "python3".into(),
            "-m".into(),
            "kubernetes_validate".into(),
        ]);
    }
    None
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let Some(cmd) = validator() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubernetes-validate is missing in CI: .ci/run must install it"
        );
        eprintln!("\n\n!!!!!! SKIPPED: kubernetes-validate is not installed (pip install kubernetes-validate); the manifests were NOT validated !!!!!!\n\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    // One document per file: the validator reports per file, which names the object.
    let mut write = |tag: &str, c: &kube::Conversion| {
        for (i, m) in c.manifests.iter().enumerate() {
            let p = dir
                .path()
                .join(format!("{tag}-{}", render::file_name(i, m)));
            std::fs::write(&p, berth_orchestrator::stack::emit::to_yaml(&m.value)).unwrap();
            files.push(p);
        }
    };
    for (name, file, opts) in cases() {
        write(name, &convert(&file, &opts));
    }
    for f in awesome_compose_files() {
        let tag = f
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        write(&tag, &convert(&f, &ConvertOptions::default()));
        write(
            &format!("{tag}-lb"),
            &convert(
                &f,
                &ConvertOptions {
                    service_type: ServiceType::LoadBalancer,
                    ..Default::default()
                },
            ),
        );
    }
    assert!(files.len() > 300, "{} files", files.len());
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    eprintln!(
        "kubernetes-validate {KUBERNETES_VERSION} --strict: {} manifests valid",
        files.len()
    );
}

#[test]
fn readme_table_loses_fewer_attributes_than_kompose() {
    let readme = std::fs::read_to_string(manifest_dir().join("../README.md")).unwrap();
    let start = readme
        .find("| Compose attribute | Berth | kompose |")
        .expect("the table");
    let rows: Vec<Vec<&str>> = readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    assert!(
        rows.iter().all(|r| r.len() == 3),
        "every row has three cells"
    );
    let berth = rows.iter().filter(|r| r[1].starts_with("**lost**")).count();
    let kompose = rows.iter().filter(|r| matches!(r[2], "x" | "n")).count();
    assert!(berth < kompose, "Berth loses {berth}, kompose {kompose}");
    let claim = format!(
        "Of these {} rows Berth loses {berth} and kompose {kompose}",
        rows.len()
    );
    assert!(readme.contains(&claim), "the README must say: {claim}");
}
