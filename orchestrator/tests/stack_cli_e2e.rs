//! The stack verbs beyond `up`/`down` end to end on the real kernel, as root, with a
//! busybox image: `run` (exit code, `--rm` leaves nothing, `-d -p --name`), `exec` with
//! and without a terminal, `up --scale` (replicas and DNS), `up --wait`,
//! `--abort-on-container-exit --exit-code-from`, `stats --no-stream`, `wait`, `create`,
//! `rm`, `events`. Each test has its own store, project and subnet in 10.224.0.0/16,
//! and ends with `down` and the leak check.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    cli_subnet, free_port, http_get, pty_read_until, pty_wait_exit, sh, subnet_in, wait_for, Stack,
};

fn network(subnet: &str) -> String {
    format!("networks:\n  default:\n    ipam:\n      config: [{{subnet: {subnet}}}]\n")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn run_propagates_the_exit_code_and_rm_leaves_nothing() {
    let net = cli_subnet(1);
    let s = Stack::new(
        "clirun",
        &format!(
            "services:\n  db:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n  app:\n    image: busybox:latest\n    command: [echo, from-the-file]\n    volumes: ['/scratch']\n    depends_on: [db]\n{}",
            network(&net)
        ),
    );
    // The command's output, attached; its exit code; the dependency started first.
    let o = s.berth(&[
        "run",
        "--rm",
        "app",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("err"));
    let ps = s.ok(&["ps", "-a"]);
    assert!(ps.contains("clirun-db-1"), "the dependency runs:\n{ps}");
    assert!(!ps.contains("-run-"), "run --rm left its container:\n{ps}");
    // Nothing of the one-off is left: namespace, rootfs, files, anonymous volume.
    let netns: Vec<_> = std::fs::read_dir(s.dir.path().join("run/netns"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(netns, vec!["clirun-db-1".to_string()], "namespaces");
    for sub in ["rootfs", "etc", "volumes"] {
        let left: Vec<_> = std::fs::read_dir(s.root().join(sub))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains("-run-"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{sub}: {left:?}");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("-run-"), "a mount of the one-off is left");

    // The service's command by default; -e, -w, -u, --entrypoint, --no-deps.
    assert_eq!(
        s.ok(&["run", "--rm", "--no-deps", "app"]),
        "from-the-file\n"
    );
    let o = s.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "-w",
        "/tmp",
        "-u",
        "1000",
        "app",
        "sh",
        "-c",
        "echo $GREETING $(pwd) $(id -u)",
    ]);
    assert_eq!(o, "hi /tmp 1000\n");
    assert_eq!(
        s.ok(&["run", "--rm", "--entrypoint", "echo via-entrypoint", "app"]),
        "via-entrypoint\n"
    );
    // A command that is not in the image: a failure code and a message, nothing left.
    let o = s.berth(&["run", "--rm", "app", "no-such-program"]);
    assert!(!o.status.success(), "{}", text(&o));

    // -d --name -p: detached, named, published; `down` removes it with the stack.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let name = s.ok(&[
        "run",
        "-d",
        "--name",
        "clirun-web",
        "-p",
        &publish,
        "app",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/var/www",
    ]);
    assert_eq!(name.trim(), "clirun-web");
    wait_for("the one-off's published port", || {
        http_get(port).is_some_and(|b| b.contains("hello from berth"))
    });
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn exec_works_with_and_without_a_terminal() {
    let net = cli_subnet(2);
    let s = Stack::new(
        "cliexec",
        &format!(
            "services:\n  web:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n{}",
            network(&net)
        ),
    );
    s.ok(&["up", "-d"]);

    // -T: our stdin reaches the command, its stdout and exit code come back.
    let mut child = s
        .command(&[
            "exec",
            "-T",
            "web",
            "sh",
            "-c",
            "read x; echo got $x; [ -t 0 ] || exit 4",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got hello\n");
    assert_eq!(o.status.code(), Some(4), "no terminal with -T");

    // Under a terminal: an interactive shell with a terminal inside the container.
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave: OwnedFd = pty.slave;
    let mut child = s
        .command(&["exec", "web", "sh"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    master
        .write_all(b"[ -t 0 ] && echo inside-a-$((6*7))-tty; tty\n")
        .unwrap();
    // `tty` answers after the test line, so one read covers both.
    let seen = pty_read_until(&mut master, "/dev/pts/");
    assert!(seen.contains("inside-a-42-tty"), "{seen}");
    master.write_all(b"exit 5\n").unwrap();
    assert_eq!(pty_wait_exit(&mut child, &mut master), 5);

    // -d: started in the background.
    s.ok(&["exec", "-d", "web", "sh", "-c", "echo bg > /tmp/bg"]);
    wait_for("the detached exec", || {
        s.berth(&["exec", "-T", "web", "cat", "/tmp/bg"]).stdout == b"bg\n"
    });
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn up_scale_makes_named_replicas_that_dns_returns() {
    let net = cli_subnet(3);
    let s = Stack::new(
        "cliscale",
        &format!(
            "services:\n  web:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n  client:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n{}",
            network(&net)
        ),
    );
    // --progress json: one object per action on stderr.
    let o = s.berth(&["--progress", "json", "up", "-d", "--scale", "web=3"]);
    assert!(o.status.success(), "{}", text(&o));
    let actions: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        actions.iter().any(|a| a["action"] == "create web #3"),
        "{actions:?}"
    );
    let ps = s.ok(&["ps", "--services"]);
    assert_eq!(ps, "client\nweb\n");
    let names = s.ok(&["ps", "-q"]);
    assert_eq!(
        names,
        "cliscale-client-1\ncliscale-web-1\ncliscale-web-2\ncliscale-web-3\n"
    );
    let prefix = net.trim_end_matches("0/24");
    let lookup = || {
        let o = s.berth(&["exec", "-T", "client", "nslookup", "-type=a", "web"]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut addrs: Vec<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("Address:"))
            .map(|a| a.trim().to_string())
            .filter(|a| a.starts_with(prefix) && !a.contains(':'))
            .filter(|a| !a.ends_with(".1"))
            .collect();
        addrs.sort();
        addrs.dedup();
        (addrs, out)
    };
    let (addrs, out) = lookup();
    assert_eq!(addrs.len(), 3, "three replicas in DNS:\n{out}");
    // Scaling down removes the highest numbers, and DNS follows.
    let o = s.berth(&["--progress", "quiet", "up", "-d", "--scale", "web=1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains('✔'), "quiet: {}", text(&o));
    assert_eq!(s.ok(&["ps", "-q", "web"]), "cliscale-web-1\n");
    let (addrs, out) = lookup();
    assert_eq!(addrs.len(), 1, "one replica left in DNS:\n{out}");
    assert!(!s.berth(&["up", "-d", "--scale", "nope=2"]).status.success());
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn up_wait_returns_once_healthy_and_fails_when_a_service_cannot_be() {
    let net = cli_subnet(4);
    let healthy = format!(
        "services:\n  web:\n    image: busybox:latest\n    command: [sh, -c, 'sleep 1; touch /tmp/ready; exec sleep 3600']\n    stop_grace_period: 1s\n    healthcheck:\n      test: [CMD, test, -e, /tmp/ready]\n      interval: 1s\n      start_interval: 200ms\n      retries: 30\n{}",
        network(&net)
    );
    let s = Stack::new("cliwait", &healthy);
    let started = Instant::now();
    let o = s.berth(&["up", "--wait", "--wait-timeout", "60"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "returned before healthy"
    );
    assert!(s.ok(&["ps"]).contains("running (healthy)"));
    s.ok(&["down", "-t", "0"]);
    s.set_compose(
        &healthy
            .replace("test, -e, /tmp/ready", "'false'")
            .replace("retries: 30", "retries: 2"),
    );
    let o = s.berth(&["up", "--wait", "--wait-timeout", "30"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("cliwait-web-1 is unhealthy"),
        "{}",
        text(&o)
    );
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn abort_on_container_exit_returns_the_services_exit_code() {
    let net = cli_subnet(5);
    let s = Stack::new(
        "cliabort",
        &format!(
            "services:\n  web:\n    image: busybox:latest\n    command: [sh, -c, 'echo web-up; exec sleep 3600']\n    stop_grace_period: 1s\n  job:\n    image: busybox:latest\n    command: [sh, -c, 'sleep 1; echo job-done; exit 3']\n{}",
            network(&net)
        ),
    );
    let o = s.berth(&["up", "--exit-code-from", "job", "-t", "1"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("job-1 | job-done"), "{out}");
    assert!(out.contains("web-1 | web-up"), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Aborting on container exit"));
    // Everything was stopped.
    assert!(!s.ok(&["ps"]).contains("running"));
    // Without --exit-code-from: the code of the container that stopped first.
    let o = s.berth(&["up", "--abort-on-container-exit", "-t", "1"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn stats_wait_create_rm_and_events() {
    let net = cli_subnet(6);
    let s = Stack::new(
        "clistats",
        &format!(
            "services:\n  web:\n    image: busybox:latest\n    command: [sleep, '3600']\n    mem_limit: 32m\n    stop_grace_period: 1s\n  job:\n    image: busybox:latest\n    command: [sh, -c, 'sleep 2; exit 4']\n{}",
            network(&net)
        ),
    );
    // create: made, not started.
    s.ok(&["create"]);
    let ps = s.ok(&["ps", "-a", "--status", "created"]);
    assert!(
        ps.contains("clistats-web-1") && ps.contains("clistats-job-1"),
        "{ps}"
    );
    assert_eq!(s.ok(&["ps", "-q"]), "", "nothing runs after create");

    // events sees what happens from here on.
    let events = s
        .command(&["events"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.ok(&["up", "-d"]);

    // wait: the exit code of the job.
    let o = s.berth(&["wait", "job"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));

    // stats: memory in use, within the 32 MiB limit, from the cgroup.
    let json = s.ok(&["stats", "--no-stream", "--format", "json", "web"]);
    let row: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(row["Name"], "clistats-web-1");
    assert_eq!(row["MemLimitBytes"], 32 * 1024 * 1024);
    let used = row["MemBytes"].as_u64().unwrap();
    assert!(used > 0 && used <= 32 * 1024 * 1024, "{row}");
    let table = s.ok(&["stats", "--no-stream"]);
    assert!(
        table.contains("clistats-web-1") && table.contains(" / 32MiB"),
        "{table}"
    );

    // rm: the stopped job goes; the running web stays unless -s.
    s.ok(&["rm", "-f", "job"]);
    assert!(!s.ok(&["ps", "-a"]).contains("clistats-job-1"));
    s.ok(&["rm", "-f"]);
    assert!(s.ok(&["ps"]).contains("clistats-web-1"));
    s.ok(&["rm", "-f", "-s", "web"]);
    assert!(!s.ok(&["ps", "-a"]).contains("clistats-web-1"));
    std::thread::sleep(Duration::from_millis(500));

    let mut events = events;
    let _ = events.kill();
    let out = events.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    for want in [
        "container start",
        "(image=busybox:latest, name=clistats-job-1, exitCode=4)",
        "container destroy",
    ] {
        assert!(lines.contains(want), "no {want:?} in events:\n{lines}");
    }
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn up_in_the_foreground_follows_logs_and_stops_gracefully_on_ctrl_c() {
    let net = cli_subnet(7);
    let s = Stack::new(
        "clifg",
        &format!(
            "services:\n  web:\n    image: busybox:latest\n    command: [sh, -c, 'echo web-up; exec sleep 3600']\n    stop_grace_period: 1s\n{}",
            network(&net)
        ),
    );
    let mut child = s
        .command(&["--ansi", "always", "up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stdout.read_to_string(&mut all);
        all
    });
    wait_for("web to run", || s.ok(&["ps", "-q"]) == "clifg-web-1\n");
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("Gracefully stopping"), "{err}");
    let out = reader.join().unwrap();
    // The prefix is coloured (--ansi always) and padded as Compose does.
    assert!(out.contains("\x1b[36mweb-1 | \x1b[0mweb-up"), "{out:?}");
    assert_eq!(s.ok(&["ps", "-q"]), "", "stopped");
    // logs: the last line alone without its prefix; --since and --until bound the time.
    assert_eq!(
        s.ok(&["logs", "--no-log-prefix", "-n", "1", "web"]),
        "web-up\n"
    );
    assert_eq!(
        s.ok(&["logs", "--no-color", "--since", "1h"]),
        "web-1 | web-up\n"
    );
    assert_eq!(s.ok(&["logs", "--until", "2000-01-01T00:00:00Z"]), "");
    assert!(!s
        .berth(&["logs", "--since", "yesterday-ish"])
        .status
        .success());
    assert!(s.ok(&["ps", "-a"]).contains("clifg-web-1"), "kept");
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

/// `extra_hosts: ["myhost:host-gateway"]` names the host as the container reaches it:
/// the gateway of its network (a host address on the stack's bridge), or
/// on the host's network the loopback, written into a copy of the host's /etc/hosts.
#[test]
fn extra_hosts_host_gateway_is_the_networks_gateway() {
    let net = subnet_in(233, 1);
    let gateway = net.replace(".0/24", ".1");
    let s = Stack::new(
        &format!("hgw{}", std::process::id()),
        &format!(
            "services:\n  web:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n    extra_hosts: ['myhost:host-gateway', 'plain=10.233.250.9']\n  hostnet:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n    network_mode: host\n    extra_hosts: {{myhost: host-gateway}}\n{}",
            network(&net)
        ),
    );
    s.ok(&["up", "-d"]);
    let (code, hosts) = sh(&s, "web", "cat /etc/hosts");
    assert_eq!(code, 0, "{hosts}");
    assert!(
        hosts.contains(&format!("{gateway}\tmyhost\n")) && hosts.contains("10.233.250.9\tplain\n"),
        "web's /etc/hosts lacks myhost -> {gateway}:\n{hosts}"
    );
    // The name reaches the host: the stack's DNS responder there answers through it.
    // (Other host services are out of reach: the networking's input chain lets only
    // DNS, replies and published ports in, see escape.rs.)
    let (code, out) = sh(&s, "web", "nslookup web myhost");
    assert!(
        code == 0 && out.contains(&format!("{gateway}:53")) && out.contains("web"),
        "asking the host's DNS responder through myhost failed:\n{out}"
    );
    let (code, hosts) = sh(&s, "hostnet", "cat /etc/hosts");
    assert_eq!(code, 0, "{hosts}");
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    assert!(
        hosts.starts_with(&host_hosts) && hosts.ends_with("127.0.0.1\tmyhost\n"),
        "hostnet's /etc/hosts is not the host's plus myhost -> 127.0.0.1:\n{hosts}"
    );
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

/// A service the active profiles leave out is still in the file: never an orphan, not
/// for `up SERVICE` with another profile nor for `--remove-orphans`; one the file no
/// longer has is.
#[test]
fn services_of_other_profiles_are_not_orphans() {
    let net = subnet_in(233, 2);
    let project = format!("prof{}", std::process::id());
    let file = |with_gone: bool| {
        format!(
            "services:\n  holder:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n  extra:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n    profiles: [extra]\n{}{}",
            if with_gone {
                "  gone:\n    image: busybox:latest\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n"
            } else {
                ""
            },
            network(&net)
        )
    };
    let s = Stack::new(&project, &file(true));
    s.ok(&["up", "-d"]);
    s.set_compose(&file(false));
    let o = s.berth(&["--profile", "extra", "up", "-d", "extra"]);
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains(&format!("orphan container {project}-gone-1")),
        "the removed service is not reported as an orphan:\n{said}"
    );
    assert!(
        !said.contains(&format!("{project}-holder-1")),
        "holder, in the file, was called an orphan:\n{said}"
    );
    // --remove-orphans takes the removed service only.
    let o = s.berth(&[
        "--profile",
        "extra",
        "up",
        "-d",
        "--remove-orphans",
        "extra",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ps = s.ok(&["ps", "-a"]);
    assert!(!ps.contains(&format!("{project}-gone-1")), "{ps}");
    assert!(
        ps.lines()
            .any(|l| l.contains(&format!("{project}-holder-1")) && l.contains("running")),
        "--remove-orphans took holder:\n{ps}"
    );
    // Without the profile, `down` keeps `extra` (as Compose does) and says why.
    let o = s.berth(&["down", "-t", "0"]);
    let said = text(&o);
    assert!(
        said.contains(&format!("container {project}-extra-1 kept"))
            && said.contains("not enabled by the active profiles")
            && !said.contains("orphan"),
        "{said}"
    );
    s.ok(&["--profile", "extra", "down", "-t", "0"]);
    s.assert_nothing_left();
}
