//! Kubernetes names from Compose names: object names are DNS labels (RFC 1123, at most
//! 63 characters), Compose allows `_`, `.` and capitals in service and volume names.

use sha2::{Digest, Sha256};

/// A DNS label for `name`: lower-cased, anything but `[a-z0-9-]` becomes `-`, no `-` at
/// either end, at most 63 characters (a long name keeps a hash of the whole so two long
/// names stay apart).
pub fn dns_label(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches('-').to_string();
    if out.is_empty() {
        out = "x".to_string();
    }
    if out.len() > 63 {
        let hash = hex::encode(&Sha256::digest(name.as_bytes())[..4]);
        out.truncate(54);
        out = format!("{}-{hash}", out.trim_end_matches('-'));
    }
    out
}

/// `dns_label` of `prefix-name`, for objects derived from a Compose name.
pub fn derived(prefix: &str, name: &str) -> String {
    dns_label(&format!("{prefix}-{name}"))
}

/// Whether `value` is a valid label value (at most 63 of `[A-Za-z0-9._-]`, alphanumeric
/// at both ends, or empty).
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Whether `key` is a valid label or annotation key: an optional DNS-subdomain prefix and
/// `/`, then a name as for [`is_label_value`] (not empty).
pub fn is_qualified_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// A ConfigMap or Secret key (`[-._a-zA-Z0-9]+`, at most 253 characters).
pub fn data_key(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out == "." || out == ".." {
        out = format!("_{out}");
    }
    out.truncate(253);
    out
}

/// Whether an environment variable may be a ConfigMap key that `envFrom` exports.
pub fn is_env_key(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_names_become_dns_labels() {
        assert_eq!(dns_label("web"), "web");
        assert_eq!(dns_label("My_DB.primary"), "my-db-primary");
        assert_eq!(dns_label("__"), "x");
        let long = "a".repeat(80);
        let l = dns_label(&long);
        assert!(l.len() <= 63, "{l}");
        assert_ne!(l, dns_label(&"a".repeat(81)));
    }

    #[test]
    fn keys_and_values_are_checked_as_kubernetes_does() {
        assert!(is_qualified_key("com.example.description"));
        assert!(is_qualified_key("io.berth.network/front"));
        assert!(!is_qualified_key("Com.Example/x"));
        assert!(!is_qualified_key("a b"));
        assert!(is_label_value("hello_world"));
        assert!(!is_label_value("-x"));
        assert_eq!(data_key("nginx.conf"), "nginx.conf");
        assert_eq!(data_key("a/b c"), "a_b_c");
    }
}
