//! Every refusal the loader promises, checked by the text a user reads: file:line:column,
//! the key path, what was wrong and what to do.

use std::path::PathBuf;

use berth_orchestrator::stack::{self, Options};
use indexmap::IndexMap;

struct Stack {
    dir: tempfile::TempDir,
}

impl Stack {
    fn new(files: &[(&str, &str)]) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Stack { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn options(&self) -> Options {
        Options {
            files: vec![self.path("compose.yaml")],
            project_name: Some("t".into()),
            environment: Some(IndexMap::new()),
            ..Options::default()
        }
    }

    fn error(&self) -> String {
        self.error_with(self.options())
    }

    fn error_with(&self, opts: Options) -> String {
        match stack::load(&opts) {
            Ok(_) => panic!("the stack loaded, but must be refused"),
            Err(e) => e
                .to_string()
                .replace(&self.dir.path().display().to_string(), "DIR"),
        }
    }
}

fn refused(text: &str) -> String {
    Stack::new(&[("compose.yaml", text)]).error()
}

#[test]
fn unknown_key_names_place_and_nearest_key() {
    assert_eq!(
        refused("services:\n  web:\n    image: nginx\n    prots:\n      - 80\n"),
        "DIR/compose.yaml:4:5: services.web.prots: unknown key `prots` (did you mean `ports`?)"
    );
    assert_eq!(
        refused("servces:\n  web:\n    image: nginx\n"),
        "DIR/compose.yaml:1:1: servces: unknown key `servces` (did you mean `services`?)"
    );
}

#[test]
fn unknown_keys_under_x_are_allowed() {
    let s = Stack::new(&[(
        "compose.yaml",
        "x-common: &c {image: nginx}\nservices:\n  web:\n    <<: *c\n    x-note: free-form\n",
    )]);
    stack::load(&s.options()).unwrap();
}

#[test]
fn wrong_types() {
    let e = refused("services:\n  web:\n    image: nginx\n    read_only: maybe\n");
    assert!(
        e.starts_with("DIR/compose.yaml:4:16: services.web.read_only: "),
        "{e}"
    );
    assert!(e.contains("boolean"), "{e}");
    let e = refused("services:\n  web:\n    image: [nginx]\n");
    assert!(
        e.starts_with("DIR/compose.yaml:3:12: services.web.image: "),
        "{e}"
    );
    let e = refused("services: [web]\n");
    assert!(e.contains("services must be a mapping"), "{e}");
}

#[test]
fn malformed_ports() {
    let e = refused("services:\n  web:\n    image: nginx\n    ports:\n      - \"80:abc\"\n");
    assert!(
        e.starts_with("DIR/compose.yaml:5:9: services.web.ports[0]: "),
        "{e}"
    );
    assert!(e.contains("abc"), "{e}");
    let e = refused("services:\n  web:\n    image: nginx\n    ports: [\"70000:80\"]\n");
    assert!(
        e.contains("services.web.ports[0]") && e.contains("70000"),
        "{e}"
    );
}

#[test]
fn malformed_volumes() {
    let e =
        refused("services:\n  web:\n    image: nginx\n    volumes:\n      - \"./a:/b:bogus\"\n");
    assert!(
        e.starts_with("DIR/compose.yaml:5:9: services.web.volumes[0]: "),
        "{e}"
    );
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn malformed_durations_and_sizes() {
    let e = refused(
        "services:\n  web:\n    image: nginx\n    healthcheck:\n      test: [CMD, x]\n      interval: 10 parsecs\n",
    );
    assert!(
        e.starts_with("DIR/compose.yaml:6:17: services.web.healthcheck.interval: "),
        "{e}"
    );
    assert!(e.contains("10 parsecs"), "{e}");
    let e = refused("services:\n  web:\n    image: nginx\n    mem_limit: 12 potatoes\n");
    assert!(
        e.starts_with("DIR/compose.yaml:4:16: services.web.mem_limit: "),
        "{e}"
    );
    assert!(e.contains("12 potatoes"), "{e}");
}

#[test]
fn references_to_unknown_services() {
    let e = refused("services:\n  web:\n    image: nginx\n    depends_on: [db]\n");
    assert_eq!(
        e,
        "DIR/compose.yaml:4:17: services.web.depends_on: service \"web\" depends on undefined service \"db\" (depends_on)"
    );
    let e = refused("services:\n  web:\n    image: nginx\n    network_mode: service:vpn\n");
    assert!(
        e.starts_with("DIR/compose.yaml:4:19: services.web.network_mode: "),
        "{e}"
    );
    assert!(e.contains("undefined service \"vpn\""), "{e}");
    let e = refused("services:\n  web:\n    image: nginx\n    volumes_from: [data]\n");
    assert!(
        e.contains("services.web.volumes_from") && e.contains("undefined service \"data\""),
        "{e}"
    );
}

#[test]
fn optional_dependency_on_unknown_service_is_a_warning() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    depends_on:\n      db:\n        condition: service_started\n        required: false\n",
    )]);
    let loaded = stack::load(&s.options()).unwrap();
    assert!(
        loaded.warnings.iter().any(|w| w.contains("\"db\"")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn dependency_cycles_print_the_cycle() {
    let e = refused(
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [c]\n  c:\n    image: x\n    depends_on: [a]\n",
    );
    assert!(
        e.ends_with("dependency cycle detected: a -> b -> c -> a"),
        "{e}"
    );
    assert!(e.starts_with("DIR/compose.yaml:4:17: services.a: "), "{e}");
}

#[test]
fn two_services_publishing_one_host_port() {
    // Legal Compose (it loads and `config` warns), refused before anything is brought up.
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    ports: [\"8080:80\"]\n  b:\n    image: x\n    ports: [\"8080:81\"]\n",
    )]);
    let loaded = stack::load(&s.options()).unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("host port 8080/tcp")),
        "{:?}",
        loaded.warnings
    );
    let e = loaded
        .check_runnable()
        .unwrap_err()
        .to_string()
        .replace(&s.dir.path().display().to_string(), "DIR");
    assert_eq!(
        e,
        "DIR/compose.yaml:7:12: services.b.ports: host port 8080/tcp is published by both \"a\" and \"b\": give one of them another host port"
    );
    // Different host addresses or protocols do not clash.
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    ports: [\"127.0.0.1:8080:80\", \"53:53/udp\"]\n  b:\n    image: x\n    ports: [\"127.0.0.2:8080:80\", \"53:53/tcp\"]\n",
    )]);
    stack::load(&s.options()).unwrap().check_runnable().unwrap();
}

/// `extra_hosts` Docker refuses at create time is refused before `up` makes anything;
/// what it accepts (`host-gateway` on a network or the host's) passes.
#[test]
fn extra_hosts_docker_would_refuse() {
    let runnable = |text: &str| {
        let s = Stack::new(&[("compose.yaml", text)]);
        stack::load(&s.options())
            .unwrap()
            .check_runnable()
            .map_err(|e| {
                e.to_string()
                    .replace(&s.dir.path().display().to_string(), "DIR")
            })
    };
    assert_eq!(
        runnable("services:\n  a:\n    image: x\n    extra_hosts: [\"db=10.0.0.300\"]\n").unwrap_err(),
        "DIR/compose.yaml:4:18: services.a.extra_hosts: service \"a\": extra host db:10.0.0.300: \"10.0.0.300\" is not an IP address (nor host-gateway)"
    );
    let e = runnable("services:\n  a:\n    image: x\n    network_mode: none\n    extra_hosts: [\"gw:host-gateway\"]\n").unwrap_err();
    assert!(
        e.contains("with `network_mode: none` there is no network"),
        "{e}"
    );
    let e = runnable("services:\n  a:\n    image: x\n  b:\n    image: x\n    network_mode: service:a\n    extra_hosts: [\"h=1.2.3.4\"]\n").unwrap_err();
    assert!(
        e.contains("services.b.extra_hosts")
            && e.contains("cannot be combined with `network_mode: service:a`"),
        "{e}"
    );
    runnable("services:\n  a:\n    image: x\n    extra_hosts: [\"gw:host-gateway\", \"v6=[::1]\"]\n  b:\n    image: x\n    network_mode: host\n    extra_hosts: {gw: host-gateway}\n").unwrap();
}

#[test]
fn undefined_networks_and_volumes() {
    let e = refused("services:\n  web:\n    image: x\n    networks: [front]\n");
    assert_eq!(
        e,
        "DIR/compose.yaml:4:15: services.web.networks: service \"web\" refers to undefined network \"front\": declare it under the top-level `networks:`"
    );
    let e = refused("services:\n  web:\n    image: x\n    volumes: [\"data:/data\"]\n");
    assert_eq!(
        e,
        "DIR/compose.yaml:4:14: services.web.volumes: service \"web\" refers to undefined volume \"data\": declare it under the top-level `volumes:`"
    );
}

#[test]
fn missing_required_variable_prints_its_message() {
    let e = refused("services:\n  web:\n    image: \"nginx:${TAG:?set TAG to the release}\"\n");
    assert_eq!(
        e,
        "DIR/compose.yaml:3:12: services.web.image: required variable TAG is missing a value: set TAG to the release"
    );
}

#[test]
fn missing_env_file_and_extends_file() {
    let e = refused("services:\n  web:\n    image: x\n    env_file: ./missing.env\n");
    assert!(
        e.starts_with("DIR/compose.yaml:4:15: services.web.env_file: "),
        "{e}"
    );
    assert!(e.contains("DIR/missing.env"), "{e}");
    let e =
        refused("services:\n  web:\n    extends:\n      file: ./base.yaml\n      service: base\n");
    assert!(
        e.starts_with("DIR/compose.yaml:4:7: services.web.extends: "),
        "{e}"
    );
    assert!(e.contains("DIR/base.yaml"), "{e}");
}

#[test]
fn optional_env_file_may_be_missing() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    env_file:\n      - path: ./missing.env\n        required: false\n",
    )]);
    stack::load(&s.options()).unwrap();
}

#[test]
fn alias_bombs_deep_nesting_and_huge_files_are_bounded() {
    let mut bomb = String::from("x-a: &a [l, l, l, l, l, l, l, l, l]\n");
    let names: Vec<char> = ('a'..='k').collect();
    for w in names.windows(2) {
        bomb.push_str(&format!(
            "x-{}: &{} [{}]\n",
            w[1],
            w[1],
            vec![format!("*{}", w[0]); 9].join(", ")
        ));
    }
    bomb.push_str("services:\n  web:\n    image: x\n");
    let started = std::time::Instant::now();
    let e = refused(&bomb);
    assert!(e.contains("excessive aliasing"), "{e}");
    assert!(started.elapsed().as_secs() < 2);

    let mut deep = String::from("services:\n  web:\n    image: x\nx-deep:\n");
    for i in 0..200 {
        deep.push_str(&" ".repeat(2 * i + 2));
        deep.push_str("k:\n");
    }
    assert!(refused(&deep).contains("nesting deeper than"));

    let huge = "x-pad: \"".to_string() + &"a".repeat(17 * 1024 * 1024) + "\"\n";
    assert!(refused(&huge).contains("larger than"));
}

#[test]
fn error_snippet_shows_the_line_and_a_caret() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    prots: [80]\n",
    )]);
    let e = stack::load(&s.options()).unwrap_err();
    let snippet = e.located().unwrap().snippet().unwrap();
    assert_eq!(snippet, "    4 |     prots: [80]\n      |     ^");
}

#[test]
fn unknown_userns_mode_names_place_and_accepted_values() {
    assert_eq!(
        refused("services:\n  web:\n    image: nginx\n    userns_mode: remap\n"),
        "DIR/compose.yaml:4:18: services.web.userns_mode: unknown userns_mode \"remap\"; \
         accepted values: host, auto, auto:size=N (N from 1 to 1073741824), private"
    );
}

#[test]
fn userns_mode_with_the_hosts_namespaces_or_privileged_is_refused() {
    let e = refused(
        "services:\n  web:\n    image: nginx\n    userns_mode: auto\n    privileged: true\n",
    );
    assert!(
        e.starts_with("DIR/compose.yaml:4:18: services.web.userns_mode: ")
            && e.contains("`privileged: true` cannot be combined with `userns_mode: auto`"),
        "{e}"
    );
    for (key, value) in [("network_mode", "host"), ("pid", "host"), ("ipc", "host")] {
        let e = refused(&format!(
            "services:\n  web:\n    image: nginx\n    userns_mode: private\n    {key}: {value}\n"
        ));
        assert!(
            e.contains(&format!(
                "`{key}: {value}` cannot be combined with `userns_mode: private`"
            )),
            "{e}"
        );
    }
    // `host` (and no userns_mode) keeps everything as it was.
    let ok = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    userns_mode: host\n    privileged: true\n    network_mode: host\n",
    )]);
    assert!(stack::load(&ok.options()).is_ok());
}

/// The fuzzer's slow alias bombs (fuzz/regressions/stack_loader/alias-bomb-slow-*.yaml,
/// 422 bytes): refused at once, at the alias that goes over the budget, with the line
/// under it. They took seconds and hundreds of MB before the budget was charged before
/// building (`stack::yaml`; its unit test shows no node of them is built).
#[test]
fn fuzzed_alias_bombs_are_refused_in_milliseconds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/stack_loader");
    for (name, at) in [
        ("alias-bomb-slow-1.yaml", ":10:10: "),
        ("alias-bomb-slow-2.yaml", ":9:34: "),
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let started = std::time::Instant::now();
        let e = refused(&text);
        let took = started.elapsed();
        assert!(
            e.starts_with(&format!("DIR/compose.yaml{at}excessive aliasing")),
            "{name}: {e}"
        );
        // A generous bound for a debug build on a busy machine; it was 2.3 s.
        assert!(
            took < std::time::Duration::from_millis(200),
            "{name}: refused after {took:?}"
        );
    }
}
