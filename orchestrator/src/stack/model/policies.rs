//! `restart` and `pull_policy`: policies written as one word, with arguments for some
//! (`on-failure:3`, `every_12h`).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::de::{one_of, suggest};
use super::units::{parse_duration, Duration};

/// `restart`: what the engine does when the container exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    /// Restart after a non-zero exit, at most `max_retries` times when given.
    OnFailure {
        max_retries: Option<u64>,
    },
    UnlessStopped,
}

const RESTART_POLICIES: &[&str] = &["no", "always", "on-failure", "unless-stopped"];

impl std::str::FromStr for RestartPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "no" => Ok(RestartPolicy::No),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: None }),
            _ => {
                if let Some(n) = s.strip_prefix("on-failure:") {
                    return n
                        .parse()
                        .map(|n| RestartPolicy::OnFailure { max_retries: Some(n) })
                        .map_err(|_| {
                            format!("invalid restart policy {s:?}: the retry count {n:?} is not a number")
                        });
                }
                let mut msg = format!(
                    "invalid restart policy {s:?}: expected \"no\", \"always\", \"on-failure[:max-retries]\" or \"unless-stopped\""
                );
                if let Some(near) = suggest(s, RESTART_POLICIES) {
                    msg.push_str(&format!(" (did you mean {near:?}?)"));
                }
                Err(msg)
            }
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure { max_retries: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for RestartPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RestartPolicy;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "\"no\", \"always\", \"on-failure[:max-retries]\" or \"unless-stopped\"",
                )
            }
            /// `restart: no` is the boolean false to a YAML 1.1 reader.
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RestartPolicy, E> {
                match v {
                    false => Ok(RestartPolicy::No),
                    true => Err(E::custom("invalid restart policy true: expected \"no\", \"always\", \"on-failure[:max-retries]\" or \"unless-stopped\"")),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RestartPolicy, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for RestartPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `pull_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    Never,
    /// Also written `if_not_present`.
    Missing,
    Build,
    Refresh,
    Daily,
    Weekly,
    /// `every_<duration>`: pull when the last pull is older than this.
    Every(Duration),
}

impl PullPolicy {
    /// How old the last pull may be before pulling again, for the periodic policies.
    pub fn refresh_interval(self) -> Option<std::time::Duration> {
        match self {
            PullPolicy::Daily => Some(std::time::Duration::from_secs(86_400)),
            PullPolicy::Weekly => Some(std::time::Duration::from_secs(7 * 86_400)),
            PullPolicy::Every(d) => Some(d.0),
            _ => None,
        }
    }
}

const PULL_POLICIES: &[&str] = &[
    "always",
    "never",
    "missing",
    "if_not_present",
    "build",
    "refresh",
    "daily",
    "weekly",
];

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "always" => PullPolicy::Always,
            "never" => PullPolicy::Never,
            "missing" | "if_not_present" => PullPolicy::Missing,
            "build" => PullPolicy::Build,
            "refresh" => PullPolicy::Refresh,
            "daily" => PullPolicy::Daily,
            "weekly" => PullPolicy::Weekly,
            _ => {
                if let Some(d) = s.strip_prefix("every_") {
                    let d =
                        parse_duration(d).map_err(|e| format!("invalid pull_policy {s:?}: {e}"))?;
                    return Ok(PullPolicy::Every(d));
                }
                let mut msg = format!(
                    "invalid pull_policy {s:?}: expected {} or every_<duration> (like every_12h)",
                    one_of(PULL_POLICIES)
                );
                if let Some(near) = suggest(s, PULL_POLICIES) {
                    msg.push_str(&format!(" (did you mean {near:?}?)"));
                }
                return Err(msg);
            }
        })
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullPolicy::Always => f.write_str("always"),
            PullPolicy::Never => f.write_str("never"),
            PullPolicy::Missing => f.write_str("missing"),
            PullPolicy::Build => f.write_str("build"),
            PullPolicy::Refresh => f.write_str("refresh"),
            PullPolicy::Daily => f.write_str("daily"),
            PullPolicy::Weekly => f.write_str("weekly"),
            PullPolicy::Every(d) => write!(f, "every_{d}"),
        }
    }
}

impl<'de> Deserialize<'de> for PullPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl Serialize for PullPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
