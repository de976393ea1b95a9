//! `berth kube apply|down|ps` against recorded API-server exchanges.
//!
//! No Kubernetes API server can be run on this machine (Debian 12 and PyPI ship none),
//! so these tests use kube-rs's own test seam: a `kube::Client` over a tower-test mock
//! service. Each test scripts the exchanges a real API server has with kubectl-like
//! clients (method, path and query in; status and JSON body out, in the shapes the
//! API server answers with), checks every request Berth sends against the script in
//! order, and fails on any request the script does not expect or any it leaves unsent.
//! An unreachable cluster is tested for real: a kubeconfig pointing at a closed
//! loopback port.

use std::path::PathBuf;
use std::time::Duration;

use ::kube::client::Body;
use berth_orchestrator::kube::apply::{self, Cluster, KubeError};
use berth_orchestrator::kube::{self, ConvertOptions};
use berth_orchestrator::stack::{self, load::Options};
use http::{Request, Response};
use indexmap::IndexMap;
use serde_json::{json, Value};

/// One recorded exchange.
struct Exchange {
    method: &'static str,
    /// Path and query, as sent.
    uri: String,
    status: u16,
    body: Value,
    /// What the request body must contain (a JSON subset), when given.
    sent: Option<Value>,
}

fn ex(method: &'static str, uri: impl Into<String>, status: u16, body: Value) -> Exchange {
    Exchange {
        method,
        uri: uri.into(),
        status,
        body,
        sent: None,
    }
}

fn contains(big: &Value, small: &Value) -> bool {
    match (big, small) {
        (Value::Object(b), Value::Object(s)) => s
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|bv| contains(bv, v))),
        _ => big == small,
    }
}

/// A cluster that answers with the script, and a handle that checks it was all used.
fn scripted(script: Vec<Exchange>) -> (Cluster, tokio::task::JoinHandle<Vec<String>>) {
    let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = ::kube::Client::new(mock, "default");
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for step in script {
            let Some((req, send)) = handle.next_request().await else {
                panic!("the client stopped before {} {}", step.method, step.uri);
            };
            let uri = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let method = req.method().to_string();
            assert_eq!(
                (method.as_str(), uri.as_str()),
                (step.method, step.uri.as_str()),
                "unexpected request"
            );
            let body = req.into_body().collect_bytes().await.unwrap();
            if let Some(want) = &step.sent {
                let got: Value = serde_json::from_slice(&body).unwrap();
                assert!(
                    contains(&got, want),
                    "{method} {uri} sent {got}, wanted at least {want}"
                );
            }
            seen.push(format!("{method} {uri}"));
            let resp = Response::builder()
                .status(step.status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&step.body).unwrap()))
                .unwrap();
            send.send_response(resp);
        }
        seen
    });
    (
        Cluster {
            client,
            server: "https://recorded.invalid".into(),
        },
        task,
    )
}

fn hello() -> (stack::Loaded, kube::Conversion) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/hello/compose.yaml");
    let loaded = stack::load(&Options {
        files: vec![file],
        environment: Some(IndexMap::new()),
        ..Options::default()
    })
    .unwrap();
    let c = kube::convert(&loaded, &ConvertOptions::default()).unwrap();
    (loaded, c)
}

const SSA: &str = "?&force=true&fieldManager=berth";

fn apply_path(kind: &str, name: &str) -> String {
    let base = match kind {
        "Namespace" => return format!("/api/v1/namespaces/{name}{SSA}"),
        "Service" => "/api/v1/namespaces/hello/services",
        "NetworkPolicy" => "/apis/networking.k8s.io/v1/namespaces/hello/networkpolicies",
        "Deployment" => "/apis/apps/v1/namespaces/hello/deployments",
        other => panic!("{other}"),
    };
    format!("{base}/{name}{SSA}")
}

fn object(m: &kube::Manifest) -> Value {
    let mut v = m.value.clone();
    v["metadata"]["uid"] = json!("0f3c");
    v["metadata"]["resourceVersion"] = json!("1");
    v
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {"resourceVersion": "7"}, "items": items})
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})
}

const SELECTOR: &str = "labelSelector=io.berth.project%3Dhello";

fn list_path(kind: &str) -> String {
    let base = match kind {
        "Job" => "/apis/batch/v1/namespaces/hello/jobs",
        "DaemonSet" => "/apis/apps/v1/namespaces/hello/daemonsets",
        "StatefulSet" => "/apis/apps/v1/namespaces/hello/statefulsets",
        "Deployment" => "/apis/apps/v1/namespaces/hello/deployments",
        "NetworkPolicy" => "/apis/networking.k8s.io/v1/namespaces/hello/networkpolicies",
        "Service" => "/api/v1/namespaces/hello/services",
        "PersistentVolumeClaim" => "/api/v1/namespaces/hello/persistentvolumeclaims",
        "Secret" => "/api/v1/namespaces/hello/secrets",
        "ConfigMap" => "/api/v1/namespaces/hello/configmaps",
        other => panic!("{other}"),
    };
    format!("{base}?&{SELECTOR}")
}

#[tokio::test]
async fn apply_sends_every_object_with_server_side_apply_as_berth() {
    let (loaded, c) = hello();
    let script = c
        .manifests
        .iter()
        .map(|m| Exchange {
            sent: Some(json!({"kind": m.kind, "metadata": {"name": m.name, "labels": {"io.berth.project": "hello"}}})),
            ..ex("PATCH", apply_path(m.kind, &m.name), 200, object(m))
        })
        .collect();
    let (cluster, task) = scripted(script);
    let report = apply::apply(&cluster, &loaded.name, &c.namespace, &c.manifests, false)
        .await
        .unwrap();
    assert_eq!(
        report.applied,
        [
            "namespace/hello",
            "service/web",
            "networkpolicy/network-default",
            "deployment/client",
            "deployment/web"
        ]
    );
    assert!(report.pruned.is_empty());
    assert_eq!(task.await.unwrap().len(), 5);
}

#[tokio::test]
async fn prune_deletes_only_what_the_stack_no_longer_has() {
    let (loaded, c) = hello();
    let mut script: Vec<Exchange> = c
        .manifests
        .iter()
        .map(|m| ex("PATCH", apply_path(m.kind, &m.name), 200, object(m)))
        .collect();
    let web = c
        .manifests
        .iter()
        .find(|m| m.kind == "Deployment" && m.name == "web")
        .unwrap();
    let mut old = object(web);
    old["metadata"]["name"] = json!("old-worker");
    for kind in apply::REMOVAL_ORDER {
        let items = match *kind {
            // Still in the stack: kept. Gone from it: deleted.
            "Deployment" => vec![object(web), old.clone()],
            _ => vec![],
        };
        script.push(ex("GET", list_path(kind), 200, list(kind, items)));
        if *kind == "Deployment" {
            script.push(ex(
                "DELETE",
                "/apis/apps/v1/namespaces/hello/deployments/old-worker?",
                200,
                status(200, "", ""),
            ));
        }
    }
    let (cluster, task) = scripted(script);
    let report = apply::apply(&cluster, &loaded.name, &c.namespace, &c.manifests, true)
        .await
        .unwrap();
    assert_eq!(report.pruned, ["deployment/old-worker"]);
    task.await.unwrap();
}

#[tokio::test]
async fn down_removes_the_labelled_objects_and_the_project_namespace() {
    let (loaded, c) = hello();
    let mut script = Vec::new();
    for kind in apply::REMOVAL_ORDER {
        let items: Vec<Value> = c
            .manifests
            .iter()
            .filter(|m| m.kind == *kind)
            .map(object)
            .collect();
        let names: Vec<String> = items
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        script.push(ex("GET", list_path(kind), 200, list(kind, items)));
        for n in names {
            let base = list_path(kind);
            let base = base.split('?').next().unwrap();
            // A 404 on delete (removed meanwhile) is fine too.
            let code = if n == "client" { 404 } else { 200 };
            script.push(ex(
                "DELETE",
                format!("{base}/{n}?"),
                code,
                status(code, if code == 404 { "NotFound" } else { "" }, ""),
            ));
        }
    }
    let ns = c.manifests.iter().find(|m| m.kind == "Namespace").unwrap();
    script.push(ex("GET", "/api/v1/namespaces/hello", 200, object(ns)));
    script.push(ex("DELETE", "/api/v1/namespaces/hello?", 200, object(ns)));
    let (cluster, task) = scripted(script);
    let removed = apply::down(&cluster, &loaded.name, "hello", true)
        .await
        .unwrap();
    assert_eq!(
        removed,
        [
            "deployment/client",
            "deployment/web",
            "networkpolicy/network-default",
            "service/web",
            "namespace/hello"
        ]
    );
    task.await.unwrap();
}

#[tokio::test]
async fn ps_reports_each_workload_and_its_state() {
    let (loaded, c) = hello();
    let mut web = object(
        c.manifests
            .iter()
            .find(|m| m.name == "web" && m.kind == "Deployment")
            .unwrap(),
    );
    web["metadata"]["generation"] = json!(1);
    web["status"] =
        json!({"observedGeneration": 1, "replicas": 1, "availableReplicas": 1, "readyReplicas": 1});
    let mut client = object(c.manifests.iter().find(|m| m.name == "client").unwrap());
    client["metadata"]["generation"] = json!(2);
    client["status"] = json!({"observedGeneration": 1, "replicas": 1});
    let script = vec![
        ex(
            "GET",
            list_path("Deployment"),
            200,
            list("Deployment", vec![web, client]),
        ),
        ex(
            "GET",
            list_path("StatefulSet"),
            200,
            list("StatefulSet", vec![]),
        ),
        ex(
            "GET",
            list_path("DaemonSet"),
            200,
            list("DaemonSet", vec![]),
        ),
        ex("GET", list_path("Job"), 200, list("Job", vec![])),
    ];
    let (cluster, task) = scripted(script);
    let rows = apply::ps(&cluster, &loaded.name, "hello").await.unwrap();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|w| (w.name.clone(), w.ready.clone(), w.state.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("client".into(), "0/1".into(), "progressing".into()),
            ("web".into(), "1/1".into(), "running".into())
        ]
    );
    task.await.unwrap();
}

#[tokio::test]
async fn wait_polls_until_the_deployments_are_available() {
    let (_, c) = hello();
    let ready = |m: &kube::Manifest, available: i64| {
        let mut v = object(m);
        v["metadata"]["generation"] = json!(1);
        v["status"] = json!({"observedGeneration": 1, "availableReplicas": available});
        v
    };
    let client = c.manifests.iter().find(|m| m.name == "client").unwrap();
    let web = c
        .manifests
        .iter()
        .find(|m| m.name == "web" && m.kind == "Deployment")
        .unwrap();
    let script = vec![
        ex(
            "GET",
            "/apis/apps/v1/namespaces/hello/deployments/client",
            200,
            ready(client, 0),
        ),
        ex(
            "GET",
            "/apis/apps/v1/namespaces/hello/deployments/web",
            200,
            ready(web, 1),
        ),
        ex(
            "GET",
            "/apis/apps/v1/namespaces/hello/deployments/client",
            200,
            ready(client, 1),
        ),
        ex(
            "GET",
            "/apis/apps/v1/namespaces/hello/deployments/web",
            200,
            ready(web, 1),
        ),
    ];
    let (cluster, task) = scripted(script);
    apply::wait(
        &cluster,
        "hello",
        &c.manifests,
        Duration::from_secs(30),
        Duration::from_millis(10),
    )
    .await
    .unwrap();
    assert_eq!(task.await.unwrap().len(), 4);
}

#[tokio::test]
async fn forbidden_and_rejected_say_what_and_why() {
    let (loaded, c) = hello();
    let script = vec![ex(
        "PATCH",
        apply_path("Namespace", "hello"),
        403,
        status(403, "Forbidden", "namespaces \"hello\" is forbidden: User \"dev\" cannot patch resource \"namespaces\" in API group \"\" at the cluster scope"),
    )];
    let (cluster, task) = scripted(script);
    let e = apply::apply(&cluster, &loaded.name, &c.namespace, &c.manifests, false)
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Forbidden { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("forbidden: applying namespace/hello: namespaces \"hello\" is forbidden"),
        "{text}"
    );
    assert!(
        text.contains("use -n for a namespace you may write"),
        "{text}"
    );
    task.await.unwrap();

    let script = vec![
        ex("PATCH", apply_path("Namespace", "hello"), 200, object(&c.manifests[0])),
        ex(
            "PATCH",
            apply_path("Service", "web"),
            422,
            status(422, "Invalid", "Service \"web\" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"),
        ),
    ];
    let (cluster, task) = scripted(script);
    let e = apply::apply(&cluster, &loaded.name, &c.namespace, &c.manifests, false)
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Rejected { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("the cluster rejected applying service/web: Service \"web\" is invalid"),
        "{e}"
    );
    task.await.unwrap();
}

#[tokio::test]
async fn an_unreachable_cluster_is_named_with_its_address() {
    // A real client and a kubeconfig for a loopback port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    std::fs::write(
        &cfg,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: me\nusers:\n- name: me\n  user:\n    token: t\ncurrent-context: gone\n"
        ),
    )
    .unwrap();
    // SAFETY: this test binary's tests that read KUBECONFIG are this one only.
    unsafe { std::env::set_var("KUBECONFIG", &cfg) };
    let cluster = Cluster::connect(Some("gone")).await.unwrap();
    let e = apply::ps(&cluster, "hello", "hello").await.unwrap_err();
    assert!(matches!(e, KubeError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!(
            "cannot reach the Kubernetes API server at http://127.0.0.1:{port}/"
        )),
        "{e}"
    );

    let e = Cluster::connect(Some("missing")).await.err().unwrap();
    assert!(e.to_string().contains("context \"missing\""), "{e}");
}

#[test]
fn apply_refuses_an_image_only_berth_has() {
    use berth_engine::image::{Digest, ImageRecord, Images};
    let root = tempfile::tempdir().unwrap();
    let images = Images::open(root.path()).unwrap();
    let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
    images
        .store()
        .put_records(&[
            ImageRecord {
                name: "127.0.0.1:5000/shop/web:dev".into(),
                manifest: digest.clone(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                index: None,
            },
            ImageRecord {
                name: "docker.io/library/built-app:latest".into(),
                manifest: digest,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                index: None,
            },
        ])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "name: shop\nservices:\n  web:\n    image: 127.0.0.1:5000/shop/web:dev\n  app:\n    image: built-app\n    build: .\n  db:\n    image: postgres:16\n",
    )
    .unwrap();
    let loaded = stack::load(&Options {
        files: vec![dir.path().join("compose.yaml")],
        environment: Some(IndexMap::new()),
        ..Options::default()
    })
    .unwrap();
    let local = apply::local_only_images(&loaded, &images, &[]);
    let text: Vec<String> = local.iter().map(|l| l.to_string()).collect();
    assert_eq!(local.len(), 2, "{text:#?}");
    assert!(text[0].starts_with("service web: image 127.0.0.1:5000/shop/web:dev exists only in Berth's local image store, under a loopback registry"), "{}", text[0]);
    assert!(
        text[0].contains("berth image push 127.0.0.1:5000/shop/web:dev REGISTRY/NAME:TAG"),
        "{}",
        text[0]
    );
    assert!(
        text[1].contains("service app: image built-app exists only in Berth's local image store"),
        "{}",
        text[1]
    );
    assert!(
        text[1].contains("`berth image push built-app` (to docker.io)"),
        "{}",
        text[1]
    );

    // The CLI refuses before it looks for a cluster.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("-f")
        .arg(dir.path().join("compose.yaml"))
        .args(["kube", "apply"])
        .env("BERTH_ROOT", root.path())
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exists only in Berth's local image store"),
        "{err}"
    );
    assert!(!err.contains("Kubernetes configuration"), "{err}");
}

#[test]
fn no_kubeconfig_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("-f")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/hello/compose.yaml"))
        .args(["kube", "ps"])
        .env("KUBECONFIG", dir.path().join("missing"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: no usable Kubernetes configuration"),
        "{err}"
    );
    assert!(err.contains("$KUBECONFIG, else ~/.kube/config"), "{err}");
}
