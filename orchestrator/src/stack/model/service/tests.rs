use super::*;
use crate::stack::model::{
    Condition, DeviceCount, FileMode, PortMode, Protocol, ServiceVolume, VolumeType,
};
use serde_json::{json, Value};

fn service(v: Value) -> Result<Service, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn refused(v: Value) -> String {
    service(v).expect_err("expected an error")
}

#[test]
fn minimal_service_prints_only_what_was_set() {
    let s = service(json!({"image": "nginx:1.0"})).unwrap();
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!({"image": "nginx:1.0"})
    );
}

#[test]
fn fields_print_in_alphabetical_order() {
    let s =
        service(json!({"user": "1000", "image": "x", "command": "a", "annotations": {"a": "b"}}))
            .unwrap();
    let printed = serde_json::to_value(&s).unwrap();
    let keys: Vec<&String> = printed.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["annotations", "command", "image", "user"]);
}

#[test]
fn unknown_attribute_is_refused_with_its_name() {
    let err = refused(json!({"image": "x", "port": ["80"]}));
    assert!(
        err.starts_with("unknown field `port`, expected one of"),
        "{err}"
    );
}

#[test]
fn extensions_are_kept_and_not_printed() {
    let s = service(json!({"image": "x", "__x": {"x-magic": {"foo": "bar"}}})).unwrap();
    assert_eq!(s.extensions["x-magic"], json!({"foo": "bar"}));
    assert_eq!(serde_json::to_value(&s).unwrap(), json!({"image": "x"}));
}

// --- command / entrypoint ---------------------------------------------------------------

#[test]
fn command_string_and_list() {
    let s = service(json!({"command": "bundle exec thin -p 3000", "entrypoint": ["/code/entrypoint.sh", "-p", "3000"]})).unwrap();
    assert_eq!(s.command.unwrap(), ["bundle", "exec", "thin", "-p", "3000"]);
    assert_eq!(s.entrypoint.unwrap(), ["/code/entrypoint.sh", "-p", "3000"]);
}

#[test]
fn command_empty_clears_image_value_and_null_keeps_it() {
    let s = service(json!({"command": "", "entrypoint": null})).unwrap();
    assert_eq!(s.command, Some(vec![]));
    assert_eq!(s.entrypoint, None);
    assert_eq!(serde_json::to_value(&s).unwrap(), json!({"command": []}));
}

// --- environment, labels, mappings ------------------------------------------------------

#[test]
fn environment_list_and_map() {
    let s = service(json!({"environment": ["RACK_ENV=development", "SHOW=true", "USER_INPUT"]}))
        .unwrap();
    assert_eq!(s.environment["RACK_ENV"].as_deref(), Some("development"));
    assert_eq!(s.environment["USER_INPUT"], None);
    let s = service(json!({"environment": {"RACK_ENV": "development", "SHOW": true, "N": 1, "F": 1.5, "USER_INPUT": null}})).unwrap();
    assert_eq!(s.environment["SHOW"].as_deref(), Some("true"));
    assert_eq!(s.environment["N"].as_deref(), Some("1"));
    assert_eq!(s.environment["F"].as_deref(), Some("1.5"));
    assert_eq!(s.environment["USER_INPUT"], None);
    assert_eq!(
        serde_json::to_value(&s).unwrap()["environment"],
        json!({"RACK_ENV": "development", "SHOW": "true", "N": "1", "F": "1.5", "USER_INPUT": null})
    );
}

#[test]
fn environment_refusals() {
    let err = refused(json!({"environment": ["DEBUG = true"]}));
    assert!(
        err.contains("\"DEBUG\" is declared with a trailing space before `=`"),
        "{err}"
    );
    let err = refused(json!({"environment": {"FOO": ["1"]}}));
    assert!(
        err.contains("expected a boolean, null, number or string"),
        "{err}"
    );
    let err = refused(json!({"environment": "FOO=1"}));
    assert!(
        err.contains("expected a mapping or a list of KEY=VALUE strings"),
        "{err}"
    );
}

#[test]
fn labels_sysctls_annotations_storage_opt() {
    let s = service(json!({
        "labels": ["com.example.description=Accounting webapp", "com.example.empty"],
        "sysctls": {"net.core.somaxconn": 1024, "net.ipv4.tcp_syncookies": 0},
        "annotations": ["com.example.foo=bar"],
        "storage_opt": {"size": "1G"}
    }))
    .unwrap();
    assert_eq!(s.labels["com.example.description"], "Accounting webapp");
    assert_eq!(s.labels["com.example.empty"], "");
    assert_eq!(s.sysctls["net.core.somaxconn"], "1024");
    assert_eq!(s.annotations["com.example.foo"], "bar");
    assert_eq!(s.storage_opt["size"], "1G");
    let s = service(json!({"sysctls": ["net.core.somaxconn=1024"]})).unwrap();
    assert_eq!(s.sysctls["net.core.somaxconn"], "1024");
}

#[test]
fn env_file_and_label_file() {
    let s = service(json!({"env_file": ".env", "label_file": "./app.labels"})).unwrap();
    assert_eq!(s.env_file[0].path, ".env");
    assert!(s.env_file[0].required);
    assert_eq!(s.label_file, ["./app.labels"]);
    let s = service(
        json!({"env_file": [{"path": "./o.env", "required": false}], "label_file": ["a", "b"]}),
    )
    .unwrap();
    assert!(!s.env_file[0].required);
    assert_eq!(s.label_file, ["a", "b"]);
}

// --- string-or-list attributes ----------------------------------------------------------

#[test]
fn dns_and_tmpfs_string_or_list() {
    let s =
        service(json!({"dns": "8.8.8.8", "dns_search": "example.com", "tmpfs": "/run"})).unwrap();
    assert_eq!(s.dns, ["8.8.8.8"]);
    assert_eq!(s.dns_search, ["example.com"]);
    assert_eq!(s.tmpfs, ["/run"]);
    let s = service(json!({"dns": ["8.8.8.8", "9.9.9.9"], "dns_opt": ["use-vc"], "tmpfs": ["/data:mode=755,uid=1009", "/run"]})).unwrap();
    assert_eq!(s.dns.len(), 2);
    assert_eq!(s.tmpfs[0], "/data:mode=755,uid=1009");
    assert_eq!(
        serde_json::to_value(&s).unwrap()["dns"],
        json!(["8.8.8.8", "9.9.9.9"])
    );
}

#[test]
fn expose_and_group_add_accept_numbers() {
    let s =
        service(json!({"expose": [3000, "8080-8085/tcp"], "group_add": ["mail", 1000]})).unwrap();
    assert_eq!(s.expose, ["3000", "8080-8085/tcp"]);
    assert_eq!(s.group_add, ["mail", "1000"]);
}

// --- ports and volumes inside a service --------------------------------------------------

#[test]
fn ports_short_and_long_in_a_service() {
    let s = service(
        json!({"ports": ["3000", "127.0.0.1:8001:8001", "6060:6060/udp",
        {"target": 80, "published": "8080", "mode": "host", "protocol": "tcp"}]}),
    )
    .unwrap();
    assert_eq!(s.ports.len(), 4);
    assert_eq!(s.ports[1].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(s.ports[2].protocol, Protocol::Udp);
    assert_eq!(s.ports[3].mode, PortMode::Host);
    assert_eq!(
        serde_json::to_value(&s).unwrap()["ports"][0],
        json!({"mode": "ingress", "protocol": "tcp", "target": 3000})
    );
    let err = refused(json!({"ports": ["80:abc"]}));
    assert!(
        err.contains("invalid port \"80:abc\": container port \"abc\" is not a number"),
        "{err}"
    );
}

#[test]
fn volumes_short_and_long_in_a_service() {
    let s = service(
        json!({"volumes": ["db-data:/var/lib/mysql", "./html:/usr/share/nginx/html:ro",
        {"type": "tmpfs", "target": "/cache", "tmpfs": {"size": "100m"}}]}),
    )
    .unwrap();
    assert_eq!(s.volumes[0].kind, VolumeType::Volume);
    assert_eq!(s.volumes[1].kind, VolumeType::Bind);
    assert!(s.volumes[1].read_only);
    assert_eq!(
        s.volumes[2].tmpfs.as_ref().unwrap().size,
        Some(ByteSize(100 << 20))
    );
    let err = refused(json!({"volumes": [{"type": "bind", "target": "/app"}]}));
    assert_eq!(err, "a mount of type \"bind\" needs a `source`");
}

#[test]
fn volumes_from_and_links_are_kept() {
    let s = service(
        json!({"volumes_from": ["bar", "bar:ro", "container:x"], "links": ["db", "db:database"],
        "external_links": ["redis_1"]}),
    )
    .unwrap();
    assert_eq!(s.volumes_from, ["bar", "bar:ro", "container:x"]);
    assert_eq!(s.links, ["db", "db:database"]);
    assert_eq!(s.external_links, ["redis_1"]);
}

// --- dependencies, networks ------------------------------------------------------------

#[test]
fn depends_on_list_becomes_map() {
    let s = service(json!({"depends_on": ["db", "redis"]})).unwrap();
    assert_eq!(s.depends_on["db"].condition, Condition::Started);
    assert!(s.depends_on["db"].required);
    let s = service(json!({"depends_on": {"db": {"condition": "service_healthy", "restart": true, "required": false}}})).unwrap();
    assert_eq!(s.depends_on["db"].condition, Condition::Healthy);
    assert!(!s.depends_on["db"].required);
}

#[test]
fn networks_and_network_mode() {
    let s = service(json!({"networks": ["front"]})).unwrap();
    assert!(s.networks.contains_key("front"));
    let s = service(json!({"network_mode": "service:web"})).unwrap();
    assert_eq!(s.network_mode.as_deref(), Some("service:web"));
    let err = refused(json!({"network_mode": "bridge", "networks": {"gratheon": null}}));
    assert_eq!(
        err,
        "`network_mode` and `networks` are mutually exclusive: with network_mode \"bridge\" the service joins no Compose network"
    );
}

#[test]
fn extra_hosts_forms() {
    let s = service(json!({"extra_hosts": ["somehost=162.242.195.82", "myhostv6:::1"]})).unwrap();
    assert_eq!(s.extra_hosts.0["myhostv6"], ["::1"]);
    let s = service(json!({"extra_hosts": {"somehost": "162.242.195.82"}})).unwrap();
    assert_eq!(
        serde_json::to_value(&s).unwrap()["extra_hosts"],
        json!(["somehost=162.242.195.82"])
    );
}

// --- secrets, configs ---------------------------------------------------------------------

#[test]
fn secrets_and_configs_short_and_long() {
    let s = service(json!({"secrets": ["server-certificate", {"source": "key", "target": "k", "mode": "0400"}],
        "configs": ["my_config", {"source": "other", "target": "/etc/o.conf", "uid": "103", "gid": "103", "mode": "0440"}]}))
    .unwrap();
    assert_eq!(
        s.secrets[0].target.as_deref(),
        Some("/run/secrets/server-certificate")
    );
    assert_eq!(s.secrets[1].target.as_deref(), Some("/run/secrets/k"));
    assert_eq!(s.configs[0].target.as_deref(), Some("/my_config"));
    assert_eq!(s.configs[1].mode, Some(FileMode(0o440)));
}

// --- numbers, units ---------------------------------------------------------------------

#[test]
fn cpu_fields() {
    let s = service(json!({"cpus": "0.5", "cpu_count": 2, "cpu_percent": 50, "cpu_shares": 512,
        "cpu_period": 100000, "cpu_quota": 50000, "cpu_rt_runtime": "400ms", "cpu_rt_period": 11000, "cpuset": "0-3"}))
    .unwrap();
    assert_eq!(s.cpus, Some(0.5));
    assert_eq!(s.cpu_rt_runtime, Some(Microseconds(400_000)));
    assert_eq!(s.cpu_rt_period, Some(Microseconds(11_000)));
    assert_eq!(service(json!({"cpus": 2})).unwrap().cpus, Some(2.0));
    assert_eq!(service(json!({"cpus": 0.25})).unwrap().cpus, Some(0.25));
    let err = refused(json!({"cpu_percent": 150}));
    assert!(
        err.contains("invalid percentage 150: expected a number from 0 to 100"),
        "{err}"
    );
    let err = refused(json!({"cpus": "lots"}));
    assert!(err.contains("invalid number \"lots\""), "{err}");
}

#[test]
fn memory_fields() {
    let s = service(
        json!({"mem_limit": "1gb", "mem_reservation": 536870912, "memswap_limit": -1,
        "mem_swappiness": 60, "shm_size": "64m"}),
    )
    .unwrap();
    assert_eq!(s.mem_limit, Some(ByteSize(1 << 30)));
    assert_eq!(s.mem_reservation, Some(ByteSize(512 << 20)));
    assert_eq!(s.memswap_limit, Some(SwapLimit::Unlimited));
    assert_eq!(s.shm_size, Some(ByteSize(64 << 20)));
    let printed = serde_json::to_value(&s).unwrap();
    assert_eq!(printed["mem_limit"], json!(1073741824));
    assert_eq!(printed["memswap_limit"], json!(-1));
    let err = refused(json!({"mem_limit": "1 gigabyte"}));
    assert!(
        err.contains("invalid byte size \"1 gigabyte\": unknown unit"),
        "{err}"
    );
}

#[test]
fn oom_and_pids() {
    let s = service(json!({"oom_score_adj": -500, "oom_kill_disable": true, "pids_limit": -1}))
        .unwrap();
    assert_eq!(s.oom_score_adj, Some(-500));
    assert_eq!(s.pids_limit, Some(-1));
    let err = refused(json!({"oom_score_adj": 1001}));
    assert_eq!(
        err,
        "invalid oom_score_adj 1001: expected a value from -1000 to 1000"
    );
}

#[test]
fn stop_grace_period_and_signal() {
    let s = service(json!({"stop_grace_period": "1m30s", "stop_signal": "SIGUSR1"})).unwrap();
    assert_eq!(s.stop_grace_period, Some(Duration::from_secs(90)));
    assert_eq!(
        serde_json::to_value(&s).unwrap()["stop_grace_period"],
        json!("1m30s")
    );
    let err = refused(json!({"stop_grace_period": "10"}));
    assert!(
        err.contains("invalid duration \"10\": missing unit"),
        "{err}"
    );
}

#[test]
fn ulimits_forms() {
    let s = service(json!({"ulimits": {"nproc": 65535, "nofile": {"soft": 20000, "hard": 40000}}}))
        .unwrap();
    assert_eq!(
        (s.ulimits["nproc"].soft, s.ulimits["nproc"].hard),
        (65535, 65535)
    );
    assert_eq!(
        (s.ulimits["nofile"].soft, s.ulimits["nofile"].hard),
        (20000, 40000)
    );
    assert_eq!(
        serde_json::to_value(&s).unwrap()["ulimits"],
        json!({"nproc": {"hard": 65535, "soft": 65535}, "nofile": {"hard": 40000, "soft": 20000}})
    );
}

// --- enumerated attributes ----------------------------------------------------------------

#[test]
fn restart_policies() {
    for (text, want) in [
        ("no", RestartPolicy::No),
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure { max_retries: None }),
        (
            "on-failure:3",
            RestartPolicy::OnFailure {
                max_retries: Some(3),
            },
        ),
        ("unless-stopped", RestartPolicy::UnlessStopped),
    ] {
        let s = service(json!({ "restart": text })).unwrap();
        assert_eq!(s.restart, Some(want));
        assert_eq!(serde_json::to_value(&s).unwrap()["restart"], json!(text));
    }
}

#[test]
fn restart_refusals() {
    let err = refused(json!({"restart": "allways"}));
    assert_eq!(
        err,
        "invalid restart policy \"allways\": expected \"no\", \"always\", \"on-failure[:max-retries]\" or \"unless-stopped\" (did you mean \"always\"?)"
    );
    let err = refused(json!({"restart": "on-failure:many"}));
    assert_eq!(
        err,
        "invalid restart policy \"on-failure:many\": the retry count \"many\" is not a number"
    );
}

#[test]
fn pull_policies() {
    let s = service(json!({"pull_policy": "if_not_present"})).unwrap();
    assert_eq!(s.pull_policy, Some(PullPolicy::Missing));
    assert_eq!(
        serde_json::to_value(&s).unwrap()["pull_policy"],
        json!("missing")
    );
    let s = service(json!({"pull_policy": "every_12h"})).unwrap();
    assert_eq!(
        s.pull_policy.unwrap().refresh_interval(),
        Some(std::time::Duration::from_secs(12 * 3600))
    );
    let again = service(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(again.pull_policy, s.pull_policy);
    for p in ["always", "never", "build", "refresh", "daily", "weekly"] {
        assert!(service(json!({ "pull_policy": p })).is_ok(), "{p}");
    }
    let err = refused(json!({"pull_policy": "allways"}));
    assert!(
        err.starts_with("invalid pull_policy \"allways\": expected"),
        "{err}"
    );
    let err = refused(json!({"pull_policy": "every_x"}));
    assert!(
        err.contains("invalid pull_policy \"every_x\": invalid duration \"x\""),
        "{err}"
    );
}

#[test]
fn cgroup_mode() {
    assert_eq!(
        service(json!({"cgroup": "host"})).unwrap().cgroup,
        Some(CgroupMode::Host)
    );
    let err = refused(json!({"cgroup": "hots"}));
    assert_eq!(
        err,
        "invalid cgroup mode \"hots\": expected \"host\" or \"private\" (did you mean \"host\"?)"
    );
}

#[test]
fn container_name_rule() {
    assert!(service(json!({"container_name": "my-web_1.a"})).is_ok());
    let err = refused(json!({"container_name": "-web"}));
    assert!(err.starts_with("invalid container_name \"-web\""), "{err}");
}

// --- composite attributes -----------------------------------------------------------------

#[test]
fn build_string_and_long() {
    let s = service(json!({"build": "."})).unwrap();
    assert_eq!(s.build.as_ref().unwrap().context.as_deref(), Some("."));
    let s = service(json!({"build": {"context": "backend", "target": "dev", "args": {"A": 1}}}))
        .unwrap();
    assert_eq!(s.build.as_ref().unwrap().args["A"].as_deref(), Some("1"));
}

#[test]
fn healthcheck_in_service() {
    let s = service(json!({"healthcheck": {"test": "curl -f http://localhost", "interval": "30s", "retries": 3}})).unwrap();
    assert_eq!(
        s.healthcheck.unwrap().test.unwrap(),
        ["CMD-SHELL", "curl -f http://localhost"]
    );
}

#[test]
fn logging_options() {
    let s = service(json!({"logging": {"driver": "syslog", "options": {"syslog-address": "tcp://192.168.0.42:123", "max-file": 3, "tag": null}}})).unwrap();
    let l = s.logging.unwrap();
    assert_eq!(l.options["max-file"].as_deref(), Some("3"));
    assert_eq!(l.options["tag"], None);
}

#[test]
fn extends_forms() {
    let s = service(json!({"extends": "base"})).unwrap();
    assert_eq!(s.extends.unwrap().service, "base");
    let s = service(json!({"extends": {"file": "common.yml", "service": "webapp"}})).unwrap();
    assert_eq!(
        s.extends.as_ref().unwrap().file.as_deref(),
        Some("common.yml")
    );
    let err = refused(json!({"extends": {"file": "common.yml"}}));
    assert!(err.contains("missing field `service`"), "{err}");
}

#[test]
fn devices_gpus_and_blkio() {
    let s = service(json!({"devices": ["/dev/ttyUSB0:/dev/ttyUSB0", {"source": "/dev/sda", "permissions": "r"}],
        "gpus": "all", "device_cgroup_rules": ["c 1:3 mr"],
        "blkio_config": {"weight": 300, "device_read_bps": [{"path": "/dev/sdb", "rate": "12mb"}]}}))
    .unwrap();
    assert_eq!(s.devices[0].permissions, "rwm");
    assert_eq!(s.devices[1].target, "/dev/sda");
    assert_eq!(s.gpus[0].count, Some(DeviceCount::All));
    assert_eq!(s.blkio_config.unwrap().weight, Some(300));
}

#[test]
fn provider_options() {
    let s = service(json!({"provider": {"type": "awesomecloud", "options": {"type": "mysql", "size": 256, "tags": ["a", "b"]}}})).unwrap();
    let p = s.provider.as_ref().unwrap();
    assert_eq!(p.kind, "awesomecloud");
    assert_eq!(p.options["size"], ["256"]);
    assert_eq!(
        serde_json::to_value(&s).unwrap()["provider"],
        json!({"options": {"type": "mysql", "size": "256", "tags": ["a", "b"]}, "type": "awesomecloud"})
    );
    let err = refused(json!({"provider": {"options": {}}}));
    assert!(err.contains("missing field `type`"), "{err}");
}

#[test]
fn hooks_and_models() {
    let s = service(json!({
        "post_start": [{"command": "./start.sh", "user": "root"}],
        "pre_stop": [{"command": ["./stop.sh"]}],
        "pre_start": [{"command": ["./manage.py", "migrate"]}, {"image": "busybox", "command": "true"}],
        "models": ["my_model"]
    }))
    .unwrap();
    assert_eq!(s.post_start[0].command, ["./start.sh"]);
    assert_eq!(s.pre_start[1].image.as_deref(), Some("busybox"));
    assert!(s.models.contains_key("my_model"));
}

#[test]
fn scale_must_agree_with_replicas() {
    assert!(service(json!({"scale": 2, "deploy": {"replicas": 2}})).is_ok());
    let err = refused(json!({"scale": 2, "deploy": {"replicas": 3}}));
    assert_eq!(
        err,
        "`scale` (2) and `deploy.replicas` (3) must be consistent"
    );
}

#[test]
fn limits_must_agree_with_deploy() {
    let err =
        refused(json!({"mem_limit": "1g", "deploy": {"resources": {"limits": {"memory": "2g"}}}}));
    assert_eq!(
        err,
        "`mem_limit` (1073741824) and `deploy.resources.limits.memory` (2147483648) must be consistent"
    );
    let err = refused(json!({"cpus": 1, "deploy": {"resources": {"limits": {"cpus": "0.5"}}}}));
    assert!(
        err.contains("`cpus` (1) and `deploy.resources.limits.cpus` (0.5) must be consistent"),
        "{err}"
    );
    assert!(
        service(json!({"pids_limit": 10, "deploy": {"resources": {"limits": {"pids": 10}}}}))
            .is_ok()
    );
}

#[test]
fn simple_scalars() {
    let s = service(json!({
        "attach": false, "cgroup_parent": "m-executor-abcd", "domainname": "foo.com", "hostname": "web",
        "init": true, "ipc": "shareable", "isolation": "default", "mac_address": "02:42:ac:11:65:43",
        "pid": "host", "platform": "linux/arm64/v8", "privileged": true, "profiles": ["debug"],
        "read_only": true, "runtime": "runc", "security_opt": ["label=user:USER"], "stdin_open": true,
        "tty": true, "use_api_socket": true, "user": "postgresql", "userns_mode": "host", "uts": "host",
        "working_dir": "/code", "pull_refresh_after": "1h", "cap_add": ["ALL"], "cap_drop": ["NET_ADMIN"],
        "credential_spec": {"file": "my-credential-spec.json"}
    }))
    .unwrap();
    assert_eq!(s.attach, Some(false));
    assert_eq!(s.profiles, ["debug"]);
    assert_eq!(
        s.credential_spec.as_ref().unwrap().file.as_deref(),
        Some("my-credential-spec.json")
    );
    let again = service(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(again, s);
}

// --- round trip -----------------------------------------------------------------------------

/// A service using (nearly) every attribute, in its short forms where it has one.
fn rich_service() -> Value {
    // Built in parts: one `json!` this large exceeds the macro recursion limit.
    let parts = [
        json!({
            "annotations": ["com.example.foo=bar"],
            "attach": true,
            "blkio_config": {
                "weight": 300,
                "weight_device": [{"path": "/dev/sda", "weight": 400}],
                "device_read_bps": [{"path": "/dev/sdb", "rate": "12mb"}],
                "device_read_iops": [{"path": "/dev/sdb", "rate": 120}],
                "device_write_bps": [{"path": "/dev/sdb", "rate": "1024k"}],
                "device_write_iops": [{"path": "/dev/sdb", "rate": 30}]
            },
            "build": {"context": "./dir", "dockerfile": "Dockerfile-alt", "args": ["A=1", "B"],
                      "ssh": ["default"], "secrets": ["npm"], "extra_hosts": ["h=1.2.3.4"], "shm_size": "1g",
                      "ulimits": {"nofile": 1024}, "labels": ["l=v"], "cache_from": ["x"], "tags": ["t"]},
            "cap_add": ["NET_ADMIN"],
            "cap_drop": ["ALL"],
            "cgroup": "private",
            "cgroup_parent": "parent",
            "command": "bundle exec thin -p 3000 \"quoted arg\"",
            "configs": ["cfg", {"source": "cfg2", "target": "/etc/cfg2", "mode": "0440", "uid": 1, "gid": "2"}],
            "container_name": "my-web",
            "cpu_count": 2,
            "cpu_percent": 50,
            "cpu_period": 100000,
            "cpu_quota": 50000,
            "cpu_rt_period": "1400us",
            "cpu_rt_runtime": 95000,
            "cpu_shares": 73,
            "cpus": "1.5",
            "cpuset": "0,1",
            "credential_spec": {"registry": "my-credential-spec"},
            "depends_on": ["db", "cache"]
        }),
        json!({
            "deploy": {
                "mode": "replicated", "replicas": 2, "labels": {"a": "b"}, "endpoint_mode": "vip",
                "update_config": {"parallelism": 2, "delay": "10s", "order": "start-first", "max_failure_ratio": 0.5},
                "rollback_config": {"parallelism": 1, "monitor": "1m"},
                "restart_policy": {"condition": "on-failure", "delay": "5s", "max_attempts": 3, "window": "2m"},
                "placement": {"constraints": ["node.role==manager"], "preferences": [{"spread": "zone"}], "max_replicas_per_node": 1},
                "resources": {"limits": {"cpus": "1.5", "memory": "1536m", "pids": 100},
                              "reservations": {"cpus": 0.25, "memory": "512m",
                                               "devices": [{"capabilities": ["gpu"], "count": 1, "driver": "nvidia", "options": {"o": "v"}}],
                                               "generic_resources": [{"discrete_resource_spec": {"kind": "SSD", "value": 1}}]}}
            },
            "develop": {"watch": [{"path": "./src", "action": "sync+restart", "target": "/app", "ignore": ["*.tmp"],
                                   "include": "*.py", "initial_sync": true},
                                  {"path": "./conf", "action": "sync+exec", "target": "/etc/conf", "exec": {"command": "kill -HUP 1"}}]},
            "device_cgroup_rules": ["c 1:3 mr", "a 7:* rmw"],
            "devices": ["/dev/ttyUSB0", "/dev/sda:/dev/xvda:r", {"source": "/dev/nvidia0"}],
            "dns": "8.8.8.8",
            "dns_opt": ["use-vc", "no-tld-query"],
            "dns_search": ["dc1.example.com", "dc2.example.com"],
            "domainname": "foo.com",
            "entrypoint": ["php", "-d", "memory_limit=-1", "vendor/bin/phpunit"],
            "env_file": [".env", {"path": "./other.env", "required": false, "format": "raw"}],
            "environment": {"RACK_ENV": "development", "SHOW": true, "COUNT": 3, "UNSET": null},
            "expose": [3000, "8000-8010/udp"],
            "extends": {"file": "common.yml", "service": "webapp"},
            "external_links": ["redis_1", "project_db_1:mysql"],
            "extra_hosts": {"somehost": "162.242.195.82", "v6": "[::1]"},
            "gpus": [{"driver": "nvidia", "count": 2}],
            "group_add": ["mail", 42]
        }),
        json!({
            "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost"], "interval": "1m30s",
                            "timeout": "10s", "retries": 3, "start_period": "40s", "start_interval": "5s"},
            "hostname": "web",
            "image": "redis:5",
            "init": true,
            "ipc": "shareable",
            "isolation": "process",
            "label_file": ["./app.labels"],
            "labels": {"com.example.description": "Accounting webapp", "com.example.number": 1},
            "links": ["db:database"],
            "logging": {"driver": "json-file", "options": {"max-size": "200k", "max-file": 10}},
            "mac_address": "02:42:ac:11:65:43",
            "mem_limit": "1.5g",
            "mem_reservation": "512m",
            "mem_swappiness": 10,
            "memswap_limit": "2g",
            "models": {"llm": {"endpoint_var": "AI_URL"}, "other": null},
            "networks": {"front": {"aliases": ["web"], "ipv4_address": "172.16.238.10", "priority": 10,
                                   "driver_opts": {"mtu": 1400}, "link_local_ips": ["57.123.22.11"]},
                         "back": null},
            "oom_kill_disable": true,
            "oom_score_adj": -100,
            "pid": "host",
            "pids_limit": 100,
            "platform": "linux/amd64"
        }),
        json!({
            "ports": ["3000-3001", "127.0.0.1:8001:8001", "[::1]:6001:6001/udp", "8000-9000:80",
                      {"name": "web", "target": 443, "published": "8443", "host_ip": "0.0.0.0", "app_protocol": "https", "mode": "host"}],
            "post_start": [{"command": "./on-start.sh", "user": "root", "privileged": true, "environment": ["FOO=BAR"]}],
            "pre_start": [{"image": "busybox", "command": "chown -R 1000 /data", "per_replica": true}],
            "pre_stop": [{"command": ["./on-stop.sh"], "working_dir": "/app"}],
            "privileged": false,
            "profiles": ["frontend", "debug"],
            "pull_policy": "every_1d",
            "pull_refresh_after": "2h",
            "read_only": true,
            "restart": "on-failure:5",
            "runtime": "runc",
            "scale": 2,
            "secrets": ["server-certificate", {"source": "key", "target": "server.key", "mode": "0400"}],
            "security_opt": ["label=user:USER", "no-new-privileges:true"],
            "shm_size": "64m",
            "stdin_open": true,
            "stop_grace_period": "1m30s",
            "stop_signal": "SIGUSR1",
            "storage_opt": {"size": "1G"},
            "sysctls": ["net.core.somaxconn=1024"],
            "tmpfs": "/run",
            "tty": true,
            "ulimits": {"nproc": 65535, "nofile": {"soft": 20000, "hard": 40000}, "memlock": -1},
            "use_api_socket": false,
            "user": "1000:1000",
            "userns_mode": "host",
            "uts": "host",
            "volumes": ["/data", "./cache:/tmp/cache:rw,z", "~/configs:/etc/configs:ro", "named:/var/lib/x:nocopy",
                        {"type": "tmpfs", "target": "/scratch", "tmpfs": {"size": 1048576, "mode": "1777"}},
                        {"type": "image", "source": "alpine", "target": "/img", "image": {"subpath": "etc"}},
                        {"type": "bind", "source": "/host", "target": "/mnt", "bind": {"propagation": "rshared", "create_host_path": false}}],
            "volumes_from": ["other:ro"],
            "working_dir": "/code",
            "__x": {"x-note": "kept"}
        }),
    ];
    let mut all = serde_json::Map::new();
    for part in parts {
        if let Value::Object(m) = part {
            all.extend(m);
        }
    }
    Value::Object(all)
}

#[test]
fn rich_service_round_trips() {
    let original = service(rich_service()).unwrap();
    assert_eq!(original.ports.len(), 6);
    assert_eq!(
        original.command.as_ref().unwrap().last().unwrap(),
        "quoted arg"
    );
    assert_eq!(original.extensions["x-note"], json!("kept"));

    let printed = serde_json::to_value(&original).unwrap();
    let again = service(printed.clone()).unwrap();
    // Extensions are printed by the printer, not by `Serialize`.
    assert_eq!(
        Service {
            extensions: original.extensions.clone(),
            ..again.clone()
        },
        original
    );
    // And printing the re-read value gives the same text.
    assert_eq!(serde_json::to_value(&again).unwrap(), printed);
}

#[test]
fn rich_service_normalized_forms() {
    let s = service(rich_service()).unwrap();
    let printed = serde_json::to_value(&s).unwrap();
    assert_eq!(
        printed["command"],
        json!(["bundle", "exec", "thin", "-p", "3000", "quoted arg"])
    );
    assert_eq!(
        printed["depends_on"]["db"],
        json!({"condition": "service_started", "required": true})
    );
    assert_eq!(printed["dns"], json!(["8.8.8.8"]));
    assert_eq!(printed["environment"]["SHOW"], json!("true"));
    assert_eq!(printed["cpu_rt_period"], json!(1400));
    assert_eq!(printed["cpus"], json!(1.5));
    assert_eq!(printed["mem_limit"], json!(1610612736));
    assert_eq!(
        printed["ports"][4],
        json!({"mode": "ingress", "protocol": "tcp", "published": "8000-9000", "target": 80})
    );
    assert_eq!(
        printed["ports"][3],
        json!({"host_ip": "::1", "mode": "ingress", "protocol": "udp", "published": "6001", "target": 6001})
    );
    assert_eq!(
        printed["volumes"][0],
        json!({"target": "/data", "type": "volume", "volume": {}})
    );
    assert_eq!(
        printed["volumes"][1],
        json!({"bind": {"create_host_path": true, "selinux": "z"}, "source": "./cache", "target": "/tmp/cache", "type": "bind"})
    );
    assert_eq!(
        printed["volumes"][4]["tmpfs"],
        json!({"mode": "01777", "size": 1048576})
    );
    assert_eq!(
        printed["ulimits"]["memlock"],
        json!({"hard": -1, "soft": -1})
    );
    assert_eq!(printed["healthcheck"]["interval"], json!("1m30s"));
    assert_eq!(printed["pull_policy"], json!("every_24h0m0s"));
    assert_eq!(
        printed["secrets"][1]["target"],
        json!("/run/secrets/server.key")
    );
    assert_eq!(printed["gpus"][0]["capabilities"], json!(["gpu"]));
    assert_eq!(
        printed["extra_hosts"],
        json!(["somehost=162.242.195.82", "v6=::1"])
    );
    assert!(printed.get("__x").is_none());
    let _: &ServiceVolume = &s.volumes[0];
}
