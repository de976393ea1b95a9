//! `berth up` / `ps` / `logs` / `down` end to end on the real kernel, as root: real
//! containers from a busybox image, a real bridge, nftables, DNS and cgroups. Each test
//! has its own BERTH_ROOT/BERTH_RUN, project name and subnet, and a guard that runs
//! `berth down -v` and checks nothing is left, even when the test fails.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{berth_bin, free_port, http_get, wait_for, Stack};

/// A subnet of this file's block (10.214.0.0/16), away from the networking tests'.
fn subnet(seed: u32) -> String {
    common::subnet_in(214, seed)
}

fn compose(port: u16, subnet: &str, web_memory: &str) -> String {
    format!(
        r#"services:
  web:
    image: busybox:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
    ports: ["127.0.0.1:{port}:8080"]
    mem_limit: {web_memory}
    networks:
      default:
        aliases: [www]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]
      interval: 1s
      start_interval: 200ms
      retries: 10
  client:
    image: busybox:latest
    command: ["sh", "-c", "wget -q -O - http://web:8080/ && wget -q -O - http://www:8080/ && exec sleep 3600"]
    depends_on:
      web:
        condition: service_healthy
  sidecar:
    image: busybox:latest
    network_mode: "service:web"
    pid: "service:web"
    volumes: ["/scratch"]
    command: ["sh", "-c", "wget -q -O - http://127.0.0.1:8080/ && exec sleep 3600"]
    depends_on: [web]
networks:
  default:
    ipam:
      config: [{{subnet: {subnet}}}]
"#
    )
}

/// The host pid of the process matching `pattern` in container `name` of stack `s`
/// (other tests run processes with the same command line: the container's cgroup,
/// named after its id, tells them apart).
fn container_pid(s: &Stack, name: &str, pattern: &str) -> u32 {
    let id = std::fs::read_dir(s.root().join("containers"))
        .unwrap()
        .flatten()
        .find(|e| {
            std::fs::read_to_string(e.path().join("record.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|r| r["config"]["name"] == name)
        })
        .unwrap_or_else(|| panic!("no record of {name}"))
        .file_name()
        .to_string_lossy()
        .into_owned();
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .find(|pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(&id))
        })
        .unwrap_or_else(|| panic!("no process of {name} matches {pattern}"))
}

#[test]
fn up_runs_the_stack_in_order_and_down_leaves_nothing() {
    let port = free_port();
    let net = subnet(1);
    let s = Stack::new("e2eup", &compose(port, &net, "24m"));
    let started = Instant::now();
    let out = s.berth(&["up", "-d"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("up took {:?}", started.elapsed());

    // Every service runs; web is healthy before client started (client needs it).
    let ps = s.ok(&["ps"]);
    for name in ["e2eup-web-1", "e2eup-client-1", "e2eup-sidecar-1"] {
        assert!(ps.contains(name), "{name} missing from ps:\n{ps}");
    }
    assert!(ps.contains("running (healthy)"), "{ps}");

    // The published port answers on the host's loopback.
    wait_for("the published port", || {
        http_get(port).is_some_and(|b| b.contains("hello from berth"))
    });

    // client reached web by service name and by alias; sidecar over the shared
    // namespace's 127.0.0.1.
    wait_for("client's two fetches", || {
        s.ok(&["logs", "client"])
            .matches("hello from berth")
            .count()
            == 2
    });
    wait_for("sidecar's fetch", || {
        s.ok(&["logs", "sidecar"]).contains("hello from berth")
    });
    let logs = s.ok(&["logs", "client"]);
    assert!(logs.lines().all(|l| l.starts_with("client-1 | ")), "{logs}");

    // The memory limit is in web's own cgroup.
    let pid = container_pid(&s, "e2eup-web-1", "httpd -f -p 8080 -h /var/www");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mem = cgroup
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect("a v1 memory cgroup");
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes"))
            .unwrap();
    assert_eq!(limit.trim(), (24 * 1024 * 1024).to_string());

    // exec lands in the service's container and returns its exit code.
    assert!(s
        .ok(&[
            "exec",
            "-T",
            "web",
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8080/"
        ])
        .contains("hello from berth"));
    assert_eq!(
        s.berth(&["exec", "web", "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    // pid: service:web — the sidecar sees web's httpd; its anonymous volume exists.
    assert!(
        s.ok(&["exec", "sidecar", "ps"]).contains("httpd"),
        "pid namespace not shared"
    );
    let anon = s.root().join("volumes");
    let anon_count = || {
        std::fs::read_dir(&anon)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().contains("-anon"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(anon_count(), 1, "the sidecar's anonymous volume");
    // top, port, ls.
    assert!(s.ok(&["top", "web"]).contains("httpd -f -p 8080"));
    assert_eq!(
        s.ok(&["port", "web", "8080"]).trim(),
        format!("127.0.0.1:{port}")
    );
    let ls = s.ok(&["ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("e2eup") && l.contains("running(3)")),
        "{ls}"
    );
    // stop keeps the container; start starts it again.
    s.ok(&["stop", "-t", "0", "sidecar"]);
    assert!(s
        .ok(&["ps", "-a"])
        .lines()
        .any(|l| l.starts_with("e2eup-sidecar-1") && l.contains("exited")));
    s.ok(&["start", "sidecar"]);
    assert!(s
        .ok(&["ps"])
        .lines()
        .any(|l| l.starts_with("e2eup-sidecar-1") && l.contains("running")));

    // `up` again changes nothing.
    let again = s.berth(&["up", "-d"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to do"));

    // Editing one service recreates it alone.
    s.set_compose(&compose(port, &net, "40m"));
    assert_eq!(
        s.ok(&["up", "-d", "--dry-run"]),
        "recreate e2eup-web-1 (configuration changed)\n"
    );

    let out = s.berth(&["down", "-t", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.assert_nothing_left();
    assert!(
        s.ok(&["ps", "-a"]).lines().count() == 1,
        "only the header is left"
    );
}

#[test]
fn an_orphan_is_reported_and_removed_on_request() {
    let net = subnet(2);
    let two = format!(
        "services:\n  a:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n  b:\n    image: busybox:latest\n    command: [sleep, '3600']\nnetworks:\n  default:\n    ipam:\n      config: [{{subnet: {net}}}]\n"
    );
    let s = Stack::new("e2eorphan", &two);
    s.ok(&["up", "-d"]);
    s.set_compose(&two.replace(
        "  b:\n    image: busybox:latest\n    command: [sleep, '3600']\n",
        "",
    ));
    let plan = s.ok(&["up", "-d", "--dry-run"]);
    assert!(plan.contains("orphan e2eorphan-b-1"), "{plan}");
    s.ok(&["up", "-d", "--remove-orphans"]);
    let ps = s.ok(&["ps", "-a"]);
    assert!(!ps.contains("e2eorphan-b-1"), "{ps}");
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn a_failing_service_is_named_with_its_reason() {
    let net = subnet(3);
    let s = Stack::new(
        "e2efail",
        &format!(
            "services:\n  db:\n    image: 127.0.0.1:1/none:1\n  web:\n    image: busybox:latest\n    command: [sleep, '3600']\n    depends_on: [db]\nnetworks:\n  default:\n    ipam:\n      config: [{{subnet: {net}}}]\n"
        ),
    );
    let out = s.berth(&["up", "-d"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: service db: create db #1 failed: image 127.0.0.1:1/none:1"),
        "{err}"
    );
    assert!(
        err.contains("error: service web: dependency db failed to start"),
        "{err}"
    );
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn berth_killed_in_the_middle_of_up_converges_when_run_again() {
    let net = subnet(4);
    let mut text = String::from("services:\n");
    for i in 1..=12 {
        text.push_str(&format!(
            "  s{i}:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n"
        ));
        if i > 1 {
            text.push_str(&format!("    depends_on: [s{}]\n", i - 1));
        }
    }
    text.push_str(&format!(
        "networks:\n  default:\n    ipam:\n      config: [{{subnet: {net}}}]\n"
    ));
    let s = Stack::new("e2ekill", &text);
    for delay_ms in [30u64, 120, 300] {
        let mut child = Command::new(berth_bin())
            .args(["-p", "e2ekill", "up", "-d"])
            .current_dir(s.dir.path().join("proj"))
            .env("BERTH_ROOT", s.root())
            .env("BERTH_RUN", s.dir.path().join("run"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL, wherever it is
        let _ = child.wait();
        s.ok(&["up", "-d"]);
        let running = s
            .ok(&["ps"])
            .lines()
            .filter(|l| l.contains("running"))
            .count();
        assert_eq!(running, 12, "after a kill at {delay_ms} ms and a second up");
        s.ok(&["down", "-t", "0"]);
        s.assert_nothing_left();
    }
}

/// An HTTP GET of `path` on 127.0.0.1: the body, if the server answered 200.
fn http_get_path(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(2),
    )
    .ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut resp = String::new();
    c.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

/// The count the webapp example's web service reports from its cache.
fn jobs_done(port: u16) -> Option<u64> {
    http_get_path(port, "/cgi-bin/stats")?
        .trim()
        .strip_prefix("jobs done: ")?
        .trim()
        .parse()
        .ok()
}

/// The stack the README's Quick start runs (examples/webapp), as a user checks it:
/// the worker counts jobs in the cache by service name, web reads the count through the
/// published port, the probe reaches web over the shared namespace's 127.0.0.1, limits
/// are in each service's cgroup, and the cache's named volume keeps its data across a
/// plain `down` and goes with `down -v`.
#[test]
fn the_webapp_example_runs_and_keeps_its_volume_across_down() {
    let port = free_port();
    let s = Stack::new("e2eweb", "");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/webapp");
    let proj = s.dir.path().join("proj");
    let st = Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", example.display()),
            proj.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    // The example as it is, but on this test's own port and subnet.
    std::fs::write(
        proj.join("compose.override.yaml"),
        format!(
            "services:\n  web:\n    ports: !override [\"127.0.0.1:{port}:80\"]\n\
             networks:\n  default:\n    ipam:\n      config: [{{subnet: {}}}]\n",
            common::subnet_in(225, 1)
        ),
    )
    .unwrap();
    let out = s.berth(&["up", "-d"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ps = s.ok(&["ps"]);
    for svc in ["cache", "worker", "web", "probe"] {
        assert!(
            ps.lines()
                .any(|l| l.starts_with(&format!("e2eweb-{svc}-1")) && l.contains("running")),
            "{svc} not running:\n{ps}"
        );
    }
    // The worker's jobs are counted, and web (asking the cache by name) sees them grow.
    let mut first = 0;
    wait_for("a job count from web", || {
        jobs_done(port).is_some_and(|n| {
            first = n;
            n > 0
        })
    });
    wait_for("the count to grow", || {
        jobs_done(port).is_some_and(|n| n > first)
    });
    assert!(s.ok(&["logs", "worker"]).contains("worker-1 | job "));
    // The worker was built from its Dockerfile: its USER and WORKDIR hold at run time.
    assert_eq!(s.ok(&["exec", "-T", "worker", "id", "-u"]), "65534\n");
    assert_eq!(s.ok(&["exec", "-T", "worker", "pwd"]), "/app\n");
    // The probe shares web's network namespace: 127.0.0.1 there is web.
    wait_for("the probe's fetch over 127.0.0.1", || {
        s.ok(&["logs", "probe"]).contains("jobs done: ")
    });
    // Limits are in each service's own cgroup (gone after `down`).
    let mut cgroups = Vec::new();
    for (name, pattern, bytes) in [
        ("e2eweb-worker-1", "sh /app/worker.sh", 32),
        ("e2eweb-web-1", "httpd -f -p 80 -h /www", 32),
    ] {
        let pid = container_pid(&s, name, pattern);
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let mem = cgroup
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
            .expect("a v1 memory cgroup");
        let limit =
            std::fs::read_to_string(format!("/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes"))
                .unwrap();
        assert_eq!(limit.trim(), (bytes * 1024 * 1024).to_string(), "{pattern}");
        cgroups.push(format!("/sys/fs/cgroup/memory{mem}"));
    }

    // A plain `down` keeps the cache's volume: after `up` the count goes on from there.
    s.ok(&["down", "-t", "0"]);
    for cg in &cgroups {
        assert!(!Path::new(cg).exists(), "cgroup {cg} is left after down");
    }
    let before = std::fs::read_to_string(s.root().join("volumes/e2eweb_cache-data/_data/jobs"))
        .expect("the count in the named volume")
        .trim()
        .parse::<u64>()
        .unwrap();
    assert!(before >= first);
    s.ok(&["up", "-d"]);
    wait_for("the count to go on from the kept volume", || {
        jobs_done(port).is_some_and(|n| n > before)
    });
    s.ok(&["down", "-v", "-t", "0"]);
    assert!(
        !s.root().join("volumes/e2eweb_cache-data").exists(),
        "down -v removes the named volume"
    );
    s.assert_nothing_left();
}

/// A new named volume takes the image's content at its mount point (as Docker's do); a
/// volume that already holds data is never seeded again, and `nocopy` seeds nothing.
#[test]
fn a_new_named_volume_is_seeded_from_the_image_once() {
    let s = Stack::new(
        "e2eseed",
        &format!(
            r#"services:
  seeded:
    image: busybox:latest
    command: ["sleep", "3600"]
    volumes: ["www:/var/www"]
  bare:
    image: busybox:latest
    command: ["sleep", "3600"]
    volumes: [{{type: volume, source: empty, target: /var/www, volume: {{nocopy: true}}}}]
networks:
  default:
    ipam:
      config: [{{subnet: {}}}]
volumes:
  www:
  empty:
"#,
            common::subnet_in(225, 2)
        ),
    );
    s.ok(&["up", "-d"]);
    let www = s.root().join("volumes/e2eseed_www/_data");
    assert_eq!(
        std::fs::read_to_string(www.join("index.html")).unwrap(),
        "hello from berth\n",
        "the image's /var/www seeded the volume"
    );
    assert_eq!(
        s.ok(&["exec", "-T", "seeded", "cat", "/var/www/index.html"]),
        "hello from berth\n"
    );
    let empty = s.root().join("volumes/e2eseed_empty/_data");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "nocopy");
    // The user's change to the volume survives a new container: no second seeding.
    s.ok(&[
        "exec",
        "-T",
        "seeded",
        "sh",
        "-c",
        "rm /var/www/index.html && echo mine > /var/www/own",
    ]);
    s.ok(&["up", "-d", "--force-recreate"]);
    assert!(
        !www.join("index.html").exists(),
        "seeded again over the user's data"
    );
    assert_eq!(std::fs::read_to_string(www.join("own")).unwrap(), "mine\n");
    s.ok(&["down", "-v", "-t", "0"]);
    s.assert_nothing_left();
}

/// `enable_ipv6` with an IPv6 pool: each service gets an address from it and its name
/// resolves to it (AAAA) in the stack's DNS; services talk over it.
#[test]
fn an_ipv6_network_gives_services_ipv6_addresses_and_names() {
    let tag = std::process::id() % 250;
    let s = Stack::new(
        "e2esix",
        &format!(
            r#"services:
  web:
    image: busybox:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
  client:
    image: busybox:latest
    command: ["sleep", "3600"]
networks:
  default:
    enable_ipv6: true
    ipam:
      config:
        - subnet: fd42:225:{tag}::/64
        - subnet: {v4}
"#,
            v4 = common::subnet_in(225, 3)
        ),
    );
    s.ok(&["up", "-d"]);
    let addrs = s.ok(&["exec", "-T", "web", "ip", "-6", "addr", "show", "eth0"]);
    let prefix = format!("fd42:225:{tag}:");
    let web6 = addrs
        .split_whitespace()
        .find(|w| w.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no address from the pool on web's eth0:\n{addrs}"))
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let lookup = s.ok(&["exec", "-T", "client", "nslookup", "-type=AAAA", "web"]);
    assert!(lookup.contains(&web6), "AAAA for web:\n{lookup}");
    let body = s.ok(&[
        "exec",
        "-T",
        "client",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://[{web6}]:8080/"),
    ]);
    assert_eq!(body, "hello from berth\n");
    s.ok(&["down", "-v", "-t", "0"]);
    s.assert_nothing_left();
}

/// Dependency order and concurrency as a user sees them, through files the services
/// write into a shared bind mount: a dependant starts only once its dependency is
/// healthy (the dependency makes its marker when it turns healthy, the dependant looks
/// for it as it starts), and an independent service starts while that dependency is
/// still on its way to healthy (not queued behind the slow branch).
#[test]
fn a_dependant_waits_for_health_and_an_independent_service_does_not() {
    let net = subnet(5);
    let s = Stack::new(
        "e2eorder",
        &format!(
            r#"services:
  db:
    image: busybox:latest
    command: ["sh", "-c", "sleep 4; touch /shared/db-ready /tmp/ok; exec sleep 3600"]
    volumes: ["./shared:/shared"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
      start_interval: 100ms
      start_period: 10s
  app:
    image: busybox:latest
    command: ["sh", "-c", "if [ -f /shared/db-ready ]; then echo after > /shared/app; else echo before > /shared/app; fi; exec sleep 3600"]
    volumes: ["./shared:/shared"]
    depends_on:
      db:
        condition: service_healthy
  other:
    image: busybox:latest
    command: ["sh", "-c", "if [ -f /shared/db-ready ]; then echo after > /shared/other; else echo before > /shared/other; fi; exec sleep 3600"]
    volumes: ["./shared:/shared"]
networks:
  default:
    ipam:
      config: [{{subnet: {net}}}]
"#
        ),
    );
    std::fs::create_dir_all(s.dir.path().join("proj").join("shared")).unwrap();
    s.ok(&["up", "-d"]);
    let seen = |who: &str| {
        std::fs::read_to_string(s.dir.path().join("proj").join("shared").join(who))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    wait_for("app and other to look", || {
        !seen("app").is_empty() && !seen("other").is_empty()
    });
    assert_eq!(seen("app"), "after", "app started before db was healthy");
    assert_eq!(
        seen("other"),
        "before",
        "other (no dependencies) waited for db to become healthy"
    );
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}
