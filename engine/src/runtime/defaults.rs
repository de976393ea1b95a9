//! A container spec with Docker's defaults, for callers (the orchestrator) that start
//! from an image's rootfs and a command rather than from a hand-written config.json.

use std::path::Path;

use oci_spec::runtime::Spec;

use super::capabilities::docker_default_set;

/// Docker's device cgroup rules: nodes may be made (CAP_MKNOD) but only the harmless
/// ones opened, so a container cannot read the host's disks through a node it makes.
#[allow(non_snake_case)]
pub fn DOCKER_DEVICE_RULES() -> serde_json::Value {
    serde_json::json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "b", "access": "m"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
    ])
}

/// Docker-like defaults: new pid/net/ipc/uts/mount/cgroup namespaces, /proc, /dev (tmpfs,
/// pts, shm, mqueue), read-only /sys and cgroups, the default masked and read-only paths,
/// Docker's 14 capabilities and device rules, no_new_privs off (as Docker), cgroupsPath
/// `/berth-ID`.
pub fn container_spec(id: &str, rootfs: &Path, args: Vec<String>) -> Spec {
    let mounts = serde_json::json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    ]);
    let v = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": rootfs, "readonly": false},
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "noNewPrivileges": false
        },
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/berth-{id}"),
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "resources": {"devices": DOCKER_DEVICE_RULES()},
            "maskedPaths": oci_spec::runtime::get_default_maskedpaths(),
            "readonlyPaths": oci_spec::runtime::get_default_readonly_paths()
        }
    });
    let mut spec: Spec = serde_json::from_value(v).expect("the defaults are a valid spec");
    if let Some(p) = spec.process_mut() {
        p.set_capabilities(Some(docker_default_set()));
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_carry_docker_caps() {
        let s = container_spec("x", Path::new("/tmp/rootfs"), vec!["sh".into()]);
        super::super::spec::validate(&s).unwrap();
        let caps = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert_eq!(
            s.linux().as_ref().unwrap().cgroups_path().as_ref().unwrap(),
            Path::new("/berth-x")
        );
    }
}
