//! `userns_mode: auto` end to end (issue 8): root in the container is an unprivileged
//! range of host ids, with an idmapped image, its own writable layer, a named volume
//! its root owns, a secret it can read, the default confinement, and no way into a
//! host root-only file; `down` frees the range and leaves nothing.
//! Subnets: this file's block is 10.227.0.0/16.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

mod common;

use common::{sh, subnet_in, Stack};

fn compose(subnet: &str) -> String {
    format!(
        r#"
services:
  app:
    image: busybox:latest
    userns_mode: auto
    command: ["sh", "-c", "touch /data/made-inside; exec sleep 300"]
    volumes:
      - data:/data
      - ./root-only.txt:/host/root-only.txt:ro
    secrets: [token]
  plain:
    image: busybox:latest
    command: ["sleep", "300"]
secrets:
  token:
    file: ./token.txt
volumes:
  data: {{}}
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
"#
    )
}

/// The host uids of a service's processes, as `berth top` reports them and as the
/// kernel says in /proc/PID/status.
fn host_uids(s: &Stack, service: &str) -> Vec<(u32, u32)> {
    let top = s.ok(&["top", service]);
    top.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let pid: u32 = f.first()?.parse().ok()?;
            let uid: u32 = f.get(2)?.parse().ok()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let real: u32 = status
                .lines()
                .find(|l| l.starts_with("Uid:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((uid, real))
        })
        .collect()
}

fn ranges(s: &Stack) -> Vec<String> {
    std::fs::read_dir(s.root().join("userns"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn auto_userns_maps_root_to_an_unprivileged_range_and_down_frees_it() {
    let s = Stack::new(
        &format!("userns-{}", std::process::id()),
        &compose(&subnet_in(227, 1)),
    );
    let proj = s.dir.path().join("proj");
    std::fs::write(proj.join("token.txt"), "s3cr3t\n").unwrap();
    // A host file only host root may read, bind-mounted in: the escape check.
    let secret = proj.join("root-only.txt");
    std::fs::write(&secret, "host root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    s.ok(&["up", "-d"]);

    // Root inside, by the container's own map.
    let (code, out) = sh(&s, "app", "id -u; id -g; cat /proc/self/uid_map");
    assert_eq!(code, 0, "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<u64> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(map[0], 0, "{out}");
    assert_eq!(map[2], 65536, "{out}");
    let base = map[1] as u32;
    assert!(base > 0, "root inside must not be root outside: {out}");

    // On the host, every process of the service runs as the range's root.
    let uids = host_uids(&s, "app");
    assert!(!uids.is_empty(), "berth top listed no process");
    for (shown, real) in &uids {
        assert_eq!((*shown, *real), (base, base), "{uids:?}");
    }
    // A service without userns_mode still runs as host root.
    assert!(host_uids(&s, "plain").iter().all(|u| *u == (0, 0)));

    // The image's files are root's inside (idmapped layers), and its writable layer
    // is its own; on the host the upper layer holds the range's ids.
    let (code, out) = sh(
        &s,
        "app",
        "stat -c '%u:%g' /bin/busybox && echo written > /etc/written && cat /etc/written",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "0:0\nwritten\n");
    let upper = s
        .root()
        .join(format!("rootfs/{}-app-1/upper/etc/written", s.project));
    assert_eq!(std::fs::metadata(&upper).unwrap().uid(), base);

    // The named volume belongs to the mapped root: files it makes are the range's on
    // the host.
    let vol = s.root().join(format!("volumes/{}_data/_data", s.project));
    common::wait_for("the file the service makes in its volume", || {
        vol.join("made-inside").exists()
    });
    let md = std::fs::metadata(vol.join("made-inside")).unwrap();
    assert_eq!((md.uid(), md.gid()), (base, base));
    let (code, out) = sh(
        &s,
        "app",
        "echo more > /data/by-exec && stat -c %u /data/by-exec",
    );
    assert_eq!((code, out.as_str()), (0, "0\n"));

    // The secret: 0400, the container root's, readable.
    let (code, out) = sh(
        &s,
        "app",
        "stat -c '%a %u' /run/secrets/token; cat /run/secrets/token",
    );
    assert_eq!((code, out.as_str()), (0, "400 0\ns3cr3t\n"));

    // /dev, /proc, resolv.conf and hosts work.
    let (code, out) = sh(
        &s,
        "app",
        "echo x > /dev/null && head -c 4 /dev/zero | wc -c && grep -c nameserver /etc/resolv.conf && grep -q app /etc/hosts && ls /proc/1/ >/dev/null && echo ok",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("ok\n"), "{out}");

    // The mapped root is nobody to host files: a 0600 host-root file is out of reach.
    let (code, out) = sh(&s, "app", "cat /host/root-only.txt");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    assert!(!out.contains("host root only"));
    // ... while the host's root reads it (the file is there).
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "host root only\n"
    );

    // The default confinement still holds inside the user namespace: seccomp filter,
    // Docker's capability set (no CAP_SYS_ADMIN), masked /proc paths, read-only /proc/sys.
    let (code, out) = sh(
        &s,
        "app",
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; grep CapBnd /proc/self/status; \
         wc -c < /proc/keys; echo 1 > /proc/sys/kernel/domainname; mount -t tmpfs t /mnt; echo done",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    let bnd = out
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .and_then(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .unwrap();
    assert_eq!(bnd & (1 << 21), 0, "CAP_SYS_ADMIN is not granted: {out}");
    assert!(out.contains("\n0\n"), "/proc/keys is masked: {out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.contains("mount: permission denied"),
        "mount is refused: {out}"
    );

    // The range is recorded, and stays the container's across a restart.
    assert_eq!(ranges(&s).len(), 1, "{:?}", ranges(&s));
    s.ok(&["restart", "app"]);
    common::wait_for("app running again", || !host_uids(&s, "app").is_empty());
    assert!(host_uids(&s, "app").iter().all(|u| *u == (base, base)));

    s.ok(&["down", "-v", "-t", "0"]);
    assert!(ranges(&s).is_empty(), "ranges left: {:?}", ranges(&s));
    s.assert_nothing_left();
}
