//! `userns_mode`: the Compose value `host` and the Podman values people put in
//! Compose files (`auto`, `auto:size=N`, `private`), as one typed choice.

/// What `userns_mode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernsMode {
    /// The host's ids (no `userns_mode`, `host`, or empty).
    Host,
    /// A new user namespace whose root is `size` unprivileged host ids Berth picks
    /// (`auto`, `private`, `auto:size=N`).
    Auto { size: u32 },
}

/// Podman's `auto` size: a 16-bit id space.
pub const DEFAULT_SIZE: u32 = 65536;

/// The values Berth accepts, for error messages.
pub const ACCEPTED: &str = "host, auto, auto:size=N (N from 1 to 1073741824), private";

/// Reads a `userns_mode` value; the error says what is wrong and what is accepted.
pub fn parse(value: Option<&str>) -> Result<UsernsMode, String> {
    let v = match value.map(str::trim) {
        None | Some("") | Some("host") => return Ok(UsernsMode::Host),
        Some(v) => v,
    };
    if v == "auto" || v == "private" {
        return Ok(UsernsMode::Auto { size: DEFAULT_SIZE });
    }
    if let Some(opts) = v.strip_prefix("auto:") {
        let mut size = DEFAULT_SIZE;
        for o in opts.split(',') {
            match o.split_once('=') {
                Some(("size", n)) => {
                    size = n
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=1 << 30).contains(n))
                        .ok_or_else(|| {
                            format!("userns_mode {v:?}: size must be a number from 1 to 1073741824")
                        })?
                }
                _ => {
                    return Err(format!(
                        "userns_mode {v:?}: Berth knows only the `size=N` option of `auto` (accepted values: {ACCEPTED})"
                    ))
                }
            }
        }
        return Ok(UsernsMode::Auto { size });
    }
    let hint = match v.split(':').next().unwrap_or(v) {
        "keep-id" | "nomap" => " (rootless Podman modes: Berth runs as root, use auto)",
        "ns" | "container" => " (joining another user namespace is not supported)",
        _ => "",
    };
    Err(format!(
        "unknown userns_mode {v:?}{hint}; accepted values: {ACCEPTED}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_users_write_are_read() {
        assert_eq!(parse(None), Ok(UsernsMode::Host));
        assert_eq!(parse(Some("host")), Ok(UsernsMode::Host));
        assert_eq!(parse(Some("")), Ok(UsernsMode::Host));
        assert_eq!(parse(Some("auto")), Ok(UsernsMode::Auto { size: 65536 }));
        assert_eq!(parse(Some("private")), Ok(UsernsMode::Auto { size: 65536 }));
        assert_eq!(
            parse(Some("auto:size=1024")),
            Ok(UsernsMode::Auto { size: 1024 })
        );
    }

    #[test]
    fn other_values_are_refused_with_the_accepted_ones() {
        for bad in [
            "remap",
            "auto:size=0",
            "auto:size=x",
            "auto:uidmapping=0:1:1",
            "keep-id",
        ] {
            let e = parse(Some(bad)).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        let e = parse(Some("remap")).unwrap_err();
        assert!(e.contains("accepted values: host, auto"), "{e}");
        assert!(parse(Some("keep-id")).unwrap_err().contains("rootless"));
    }
}
