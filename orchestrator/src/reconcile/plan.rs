//! The reconciler's pure core: what the stack file wants and what the engine has, in;
//! a plan of actions, out. No I/O here, so every decision (`up` twice does nothing, an
//! edited service is recreated alone, orphans are reported) is checked by golden tests
//! on the plan's text.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use indexmap::IndexMap;

/// What the stack file wants of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredService {
    /// The config hash (`berth config --hash`): a change recreates the containers.
    pub config_hash: String,
    /// The digest of the image the service would run now, when known; a change
    /// recreates the containers too.
    pub image_digest: Option<String>,
    pub replicas: u32,
    /// Dependencies with `restart: true`: a recreated dependency restarts this service.
    pub restart_with: Vec<String>,
}

/// What the stack file wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub project: String,
    /// Services in start order (dependencies first).
    pub services: IndexMap<String, DesiredService>,
    /// Networks and volumes by their engine names (`PROJECT_NAME`).
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    /// Services the file defines but the active profiles leave out: their containers
    /// are left alone, not orphans (Compose counts only services no file defines).
    pub disabled: HashSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    /// Exited, with its exit code.
    Exited(i32),
}

/// One container the engine reports for the project (found by its labels).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedContainer {
    pub name: String,
    pub service: String,
    pub number: u32,
    pub config_hash: String,
    pub image_digest: Option<String>,
    pub state: ContainerState,
}

/// What exists for the project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// How `up` was asked to treat existing containers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpOptions {
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub remove_orphans: bool,
    /// `--no-start`: create what is missing, start nothing.
    pub no_start: bool,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    CreateNetwork(String),
    CreateVolume(String),
    /// Create and start replica `number` of a service.
    Create {
        service: String,
        number: u32,
    },
    /// Replace a container whose configuration or image changed.
    Recreate {
        service: String,
        number: u32,
        container: String,
        reason: String,
    },
    /// Start an existing container that is not running.
    Start {
        container: String,
    },
    /// Restart a running container because a `restart: true` dependency was recreated.
    Restart {
        container: String,
        because: String,
    },
    /// Stop and remove a container: a replica above the wanted scale, or an orphan.
    Remove {
        container: String,
        reason: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateNetwork(n) => write!(f, "create network {n}"),
            Action::CreateVolume(v) => write!(f, "create volume {v}"),
            Action::Create { service, number } => write!(f, "create {service} #{number}"),
            Action::Recreate {
                container, reason, ..
            } => {
                write!(f, "recreate {container} ({reason})")
            }
            Action::Start { container } => write!(f, "start {container}"),
            Action::Restart { container, because } => {
                write!(
                    f,
                    "restart {container} (dependency {because} was recreated)"
                )
            }
            Action::Remove { container, reason } => write!(f, "remove {container} ({reason})"),
        }
    }
}

/// The plan for one service, in the order its actions must run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServicePlan {
    pub actions: Vec<Action>,
}

/// What `up` will do: resources first, then each service's actions once its
/// dependencies meet their conditions (the executor walks the graph's waves).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub resources: Vec<Action>,
    pub services: IndexMap<String, ServicePlan>,
    /// Containers of services the file no longer has, kept unless `--remove-orphans`.
    pub orphans: Vec<String>,
    pub cleanup: Vec<Action>,
}

impl Plan {
    /// True when `up` has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
            && self.cleanup.is_empty()
            && self.services.values().all(|s| s.actions.is_empty())
    }

    /// Every action, in a readable order (resources, services in start order, cleanup).
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.resources
            .iter()
            .chain(self.services.values().flat_map(|s| s.actions.iter()))
            .chain(self.cleanup.iter())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            writeln!(f, "nothing to do: the stack is up to date")?;
        }
        for a in self.actions() {
            writeln!(f, "{a}")?;
        }
        for o in &self.orphans {
            writeln!(
                f,
                "orphan {o} (not in the stack file; --remove-orphans removes it)"
            )?;
        }
        Ok(())
    }
}

/// The container name Compose gives replica `number` of a service.
pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

/// Decides what `up` must do to turn `observed` into `desired`.
pub fn plan_up(desired: &Desired, observed: &Observed, opts: &UpOptions) -> Plan {
    let mut plan = Plan::default();
    let have_nets: HashSet<&str> = observed.networks.iter().map(String::as_str).collect();
    for n in &desired.networks {
        if !have_nets.contains(n.as_str()) {
            plan.resources.push(Action::CreateNetwork(n.clone()));
        }
    }
    let have_vols: HashSet<&str> = observed.volumes.iter().map(String::as_str).collect();
    for v in &desired.volumes {
        if !have_vols.contains(v.as_str()) {
            plan.resources.push(Action::CreateVolume(v.clone()));
        }
    }

    let mut by_service: BTreeMap<&str, Vec<&ObservedContainer>> = BTreeMap::new();
    for c in &observed.containers {
        by_service.entry(c.service.as_str()).or_default().push(c);
    }
    let mut recreated: HashSet<&str> = HashSet::new();
    for (name, want) in &desired.services {
        let mut actions = Vec::new();
        let mut existing = by_service.remove(name.as_str()).unwrap_or_default();
        existing.sort_by_key(|c| c.number);
        for number in 1..=want.replicas {
            match existing.iter().find(|c| c.number == number) {
                None => actions.push(Action::Create {
                    service: name.clone(),
                    number,
                }),
                Some(c) => {
                    let reason = if opts.no_recreate {
                        None
                    } else if opts.force_recreate {
                        Some("--force-recreate".to_string())
                    } else if c.config_hash != want.config_hash {
                        Some("configuration changed".to_string())
                    } else if want.image_digest.is_some() && c.image_digest != want.image_digest {
                        Some("image changed".to_string())
                    } else if c.state == ContainerState::Created && !opts.no_start {
                        // Made but never started: an `up` interrupted half-way. Nothing ran
                        // in it, so it is made again from scratch rather than trusted.
                        Some("never started".to_string())
                    } else {
                        None
                    };
                    match reason {
                        Some(reason) => {
                            recreated.insert(name.as_str());
                            actions.push(Action::Recreate {
                                service: name.clone(),
                                number,
                                container: c.name.clone(),
                                reason,
                            });
                        }
                        None if !matches!(c.state, ContainerState::Running) && !opts.no_start => {
                            actions.push(Action::Start {
                                container: c.name.clone(),
                            })
                        }
                        None => {}
                    }
                }
            }
        }
        for c in existing.iter().filter(|c| c.number > want.replicas) {
            actions.push(Action::Remove {
                container: c.name.clone(),
                reason: format!("scaled down to {}", want.replicas),
            });
        }
        // A running container whose `restart: true` dependency is being recreated
        // restarts after it (Compose's `depends_on.restart`).
        if let Some(dep) = want
            .restart_with
            .iter()
            .find(|d| recreated.contains(d.as_str()))
        {
            for c in &existing {
                let untouched = !actions.iter().any(|a| match a {
                    Action::Recreate { container, .. }
                    | Action::Start { container }
                    | Action::Remove { container, .. } => container == &c.name,
                    _ => false,
                });
                if untouched && c.number <= want.replicas {
                    actions.push(Action::Restart {
                        container: c.name.clone(),
                        because: dep.clone(),
                    });
                }
            }
        }
        plan.services.insert(name.clone(), ServicePlan { actions });
    }
    for (service, containers) in by_service {
        if desired.disabled.contains(service) {
            continue;
        }
        for c in containers {
            if opts.remove_orphans {
                plan.cleanup.push(Action::Remove {
                    container: c.name.clone(),
                    reason: "orphan: its service is not in the stack file".into(),
                });
            } else {
                plan.orphans.push(c.name.clone());
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(hash: &str, replicas: u32) -> DesiredService {
        DesiredService {
            config_hash: hash.into(),
            image_digest: Some("sha256:img".into()),
            replicas,
            restart_with: Vec::new(),
        }
    }

    fn have(service: &str, number: u32, hash: &str, state: ContainerState) -> ObservedContainer {
        ObservedContainer {
            name: container_name("p", service, number),
            service: service.into(),
            number,
            config_hash: hash.into(),
            image_digest: Some("sha256:img".into()),
            state,
        }
    }

    fn desired(services: &[(&str, DesiredService)]) -> Desired {
        Desired {
            project: "p".into(),
            services: services
                .iter()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect(),
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
            disabled: HashSet::new(),
        }
    }

    fn text(plan: &Plan) -> String {
        plan.to_string()
    }

    #[test]
    fn a_fresh_stack_creates_everything_in_start_order() {
        let d = desired(&[("db", want("h1", 1)), ("web", want("h2", 2))]);
        let plan = plan_up(&d, &Observed::default(), &UpOptions::default());
        assert_eq!(
            text(&plan),
            "create network p_default\ncreate volume p_data\ncreate db #1\ncreate web #1\ncreate web #2\n"
        );
    }

    #[test]
    fn an_unchanged_stack_does_nothing() {
        let d = desired(&[("db", want("h1", 1))]);
        let o = Observed {
            containers: vec![have("db", 1, "h1", ContainerState::Running)],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
        };
        let plan = plan_up(&d, &o, &UpOptions::default());
        assert!(plan.is_empty());
        assert_eq!(text(&plan), "nothing to do: the stack is up to date\n");
    }

    #[test]
    fn an_edited_service_is_recreated_alone_and_a_stopped_one_started() {
        let d = desired(&[
            ("db", want("h1", 1)),
            ("web", want("h2-new", 1)),
            ("cache", want("h3", 1)),
        ]);
        let o = Observed {
            containers: vec![
                have("db", 1, "h1", ContainerState::Running),
                have("web", 1, "h2", ContainerState::Running),
                have("cache", 1, "h3", ContainerState::Exited(0)),
            ],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
        };
        let plan = plan_up(&d, &o, &UpOptions::default());
        assert_eq!(
            text(&plan),
            "recreate p-web-1 (configuration changed)\nstart p-cache-1\n"
        );
    }

    #[test]
    fn a_new_image_digest_recreates() {
        let mut w = want("h1", 1);
        w.image_digest = Some("sha256:new".into());
        let d = desired(&[("db", w)]);
        let o = Observed {
            containers: vec![have("db", 1, "h1", ContainerState::Running)],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
        };
        assert_eq!(
            text(&plan_up(&d, &o, &UpOptions::default())),
            "recreate p-db-1 (image changed)\n"
        );
    }

    #[test]
    fn a_container_left_created_by_an_interrupted_up_is_made_again() {
        let d = desired(&[("db", want("h1", 1))]);
        let o = Observed {
            containers: vec![have("db", 1, "h1", ContainerState::Created)],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
        };
        assert_eq!(
            text(&plan_up(&d, &o, &UpOptions::default())),
            "recreate p-db-1 (never started)\n"
        );
    }

    #[test]
    fn scale_up_and_down() {
        let d = desired(&[("web", want("h", 2))]);
        let o = Observed {
            containers: vec![
                have("web", 1, "h", ContainerState::Running),
                have("web", 3, "h", ContainerState::Running),
            ],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
        };
        assert_eq!(
            text(&plan_up(&d, &o, &UpOptions::default())),
            "create web #2\nremove p-web-3 (scaled down to 2)\n"
        );
    }

    #[test]
    fn orphans_are_reported_and_removed_on_request() {
        let d = desired(&[("web", want("h", 1))]);
        let o = Observed {
            containers: vec![
                have("web", 1, "h", ContainerState::Running),
                have("old", 1, "x", ContainerState::Running),
            ],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
        };
        assert_eq!(
            text(&plan_up(&d, &o, &UpOptions::default())),
            "nothing to do: the stack is up to date\norphan p-old-1 (not in the stack file; --remove-orphans removes it)\n"
        );
        let opts = UpOptions {
            remove_orphans: true,
            ..UpOptions::default()
        };
        assert_eq!(
            text(&plan_up(&d, &o, &opts)),
            "remove p-old-1 (orphan: its service is not in the stack file)\n"
        );
        // A service the file defines but the active profiles leave out is no orphan:
        // neither reported nor removed, even with --remove-orphans.
        let mut d = d;
        d.disabled.insert("old".into());
        assert_eq!(
            text(&plan_up(&d, &o, &opts)),
            "nothing to do: the stack is up to date\n"
        );
    }

    #[test]
    fn force_and_no_recreate() {
        let d = desired(&[("web", want("new", 1))]);
        let o = Observed {
            containers: vec![have("web", 1, "old", ContainerState::Running)],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
        };
        let no = UpOptions {
            no_recreate: true,
            ..UpOptions::default()
        };
        assert!(plan_up(&d, &o, &no).is_empty());
        let d2 = desired(&[("web", want("old", 1))]);
        let force = UpOptions {
            force_recreate: true,
            ..UpOptions::default()
        };
        assert_eq!(
            text(&plan_up(&d2, &o, &force)),
            "recreate p-web-1 (--force-recreate)\n"
        );
    }

    #[test]
    fn restart_true_dependants_follow_a_recreated_dependency() {
        let mut web = want("w", 1);
        web.restart_with = vec!["db".into()];
        let d = desired(&[("db", want("db-new", 1)), ("web", web)]);
        let o = Observed {
            containers: vec![
                have("db", 1, "db-old", ContainerState::Running),
                have("web", 1, "w", ContainerState::Running),
            ],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
        };
        assert_eq!(
            text(&plan_up(&d, &o, &UpOptions::default())),
            "recreate p-db-1 (configuration changed)\nrestart p-web-1 (dependency db was recreated)\n"
        );
    }
}
