//! Runs a [`Plan`] on tokio: resources first, then every service as its own task that
//! waits until each dependency meets its `depends_on` condition, so independent
//! branches start in parallel and a dependant never starts early.
//!
//! The engine and networking sit behind [`Backend`], so the ordering rules are tested
//! here with a recording fake, and end to end with the real engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use tokio::sync::watch;

use super::plan::{Action, Plan};
use crate::graph::Condition;

/// What a container is doing, as far as `depends_on` conditions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Running with no healthcheck, or not yet checked.
    Running,
    Starting,
    Healthy,
    Unhealthy,
    Exited(i32),
}

/// The operations the executor needs from the engine and the network. Blocking calls:
/// the executor runs them on tokio's blocking pool.
pub trait Backend: Send + Sync + 'static {
    fn run(&self, action: &Action) -> Result<(), String>;
    /// Does the part of `action` that need not wait for the service's dependencies (a
    /// container is created before its dependencies run, as `docker compose` creates
    /// every container before it starts them in order) and returns what is left to do
    /// once they are met, if anything.
    fn prepare(&self, action: &Action) -> Result<Option<Action>, String> {
        Ok(Some(action.clone()))
    }
    /// The containers of a service that the plan's actions left (names).
    fn containers(&self, service: &str) -> Vec<String>;
    fn health(&self, container: &str) -> Result<Health, String>;
}

/// One dependency edge, as the executor honours it.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub service: String,
    pub condition: Condition,
    /// `required: false`: a dependency that fails is a warning, not a failure.
    pub required: bool,
    /// The dependant's container cannot even be created before this is met (it joins
    /// the dependency's namespaces or mounts its volumes).
    pub before_create: bool,
}

/// Why a service did not come up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceFailure {
    #[error("{action} failed: {message}")]
    Action { action: String, message: String },
    #[error("dependency {dependency} {reason}")]
    Dependency { dependency: String, reason: String },
}

/// The outcome of running a plan: each service that failed and why; warnings for
/// optional dependencies that did not come up.
#[derive(Debug, Default)]
pub struct Report {
    pub failed: IndexMap<String, ServiceFailure>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Progress {
    Pending,
    Done,
    Failed(String),
}

/// How long to wait for a condition, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            timeout: Duration::from_secs(300),
            poll: Duration::from_millis(50),
        }
    }
}

/// Runs the plan. `waits` gives each service's dependencies (services not in it wait
/// for nothing).
pub async fn execute<B: Backend>(
    backend: Arc<B>,
    plan: &Plan,
    waits: &HashMap<String, Vec<Wait>>,
    timing: Timing,
) -> Report {
    let mut report = Report::default();
    for action in plan.resources.iter().chain(plan.cleanup.iter()) {
        let b = Arc::clone(&backend);
        let a = action.clone();
        let result = tokio::task::spawn_blocking(move || b.run(&a))
            .await
            .unwrap_or_else(|e| Err(format!("task failed: {e}")));
        if let Err(message) = result {
            // Without its networks and volumes no service can start.
            for name in plan.services.keys() {
                report.failed.insert(
                    name.clone(),
                    ServiceFailure::Action {
                        action: action.to_string(),
                        message: message.clone(),
                    },
                );
            }
            return report;
        }
    }
    crate::fault::point("up.after-resources");

    let mut senders = HashMap::new();
    let mut receivers = HashMap::new();
    for name in plan.services.keys() {
        let (tx, rx) = watch::channel(Progress::Pending);
        senders.insert(name.clone(), tx);
        receivers.insert(name.clone(), rx);
    }
    let mut tasks = Vec::new();
    for (name, service_plan) in &plan.services {
        let backend = Arc::clone(&backend);
        let actions = service_plan.actions.clone();
        let deps: Vec<(Wait, Option<watch::Receiver<Progress>>)> = waits
            .get(name)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|w| {
                let rx = receivers.get(&w.service).cloned();
                (w, rx)
            })
            .collect();
        let tx = senders.remove(name).expect("one sender per service");
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let mut warnings = Vec::new();
            let outcome = run_service(&backend, &name, actions, deps, timing, &mut warnings).await;
            let _ = tx.send(match &outcome {
                Ok(()) => Progress::Done,
                Err(e) => Progress::Failed(e.to_string()),
            });
            (name, outcome, warnings)
        }));
    }
    for task in tasks {
        match task.await {
            Ok((name, outcome, warnings)) => {
                report.warnings.extend(warnings);
                if let Err(e) = outcome {
                    report.failed.insert(name, e);
                }
            }
            Err(e) => report.warnings.push(format!("a service task failed: {e}")),
        }
    }
    report
}

async fn run_service<B: Backend>(
    backend: &Arc<B>,
    name: &str,
    actions: Vec<Action>,
    deps: Vec<(Wait, Option<watch::Receiver<Progress>>)>,
    timing: Timing,
    warnings: &mut Vec<String>,
) -> Result<(), ServiceFailure> {
    let (early, late): (Vec<_>, Vec<_>) = deps.into_iter().partition(|(w, _)| w.before_create);
    await_dependencies(backend, name, early, timing, warnings).await?;
    // Made while the dependencies come up; only what is left waits for them.
    let mut left = Vec::new();
    for action in actions {
        let rest = run_blocking(backend, &action, |b, a| b.prepare(a)).await?;
        left.extend(rest.map(|r| (action, r)));
    }
    await_dependencies(backend, name, late, timing, warnings).await?;
    for (action, rest) in left {
        run_blocking(backend, &rest, |b, a| b.run(a))
            .await
            // Named as the plan named it.
            .map_err(|e| match e {
                ServiceFailure::Action { message, .. } => ServiceFailure::Action {
                    action: action.to_string(),
                    message,
                },
                other => other,
            })?;
    }
    Ok(())
}

/// Runs `f` (a blocking backend call) on tokio's blocking pool.
async fn run_blocking<B: Backend, T: Send + 'static>(
    backend: &Arc<B>,
    action: &Action,
    f: fn(&B, &Action) -> Result<T, String>,
) -> Result<T, ServiceFailure> {
    let b = Arc::clone(backend);
    let a = action.clone();
    tokio::task::spawn_blocking(move || f(&b, &a))
        .await
        .unwrap_or_else(|e| Err(format!("task failed: {e}")))
        .map_err(|message| ServiceFailure::Action {
            action: action.to_string(),
            message,
        })
}

/// Waits until each dependency meets its condition; a required one that does not fails
/// the service, an optional one is a warning.
async fn await_dependencies<B: Backend>(
    backend: &Arc<B>,
    name: &str,
    deps: Vec<(Wait, Option<watch::Receiver<Progress>>)>,
    timing: Timing,
    warnings: &mut Vec<String>,
) -> Result<(), ServiceFailure> {
    for (wait, rx) in deps {
        let result = match rx {
            // A dependency outside this plan (`--no-deps`, or up to date already) is
            // checked on the engine directly.
            None => Ok(()),
            Some(mut rx) => loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    Progress::Done => break Ok(()),
                    Progress::Failed(reason) => break Err(format!("failed to start: {reason}")),
                    Progress::Pending => {
                        if rx.changed().await.is_err() {
                            break Err("ended without a result".to_string());
                        }
                    }
                }
            },
        };
        let result = match result {
            Ok(()) => wait_condition(backend, &wait, timing).await,
            Err(e) => Err(e),
        };
        if result.is_ok() && wait.condition != Condition::Started {
            crate::fault::point("up.after-dependency");
        }
        if let Err(reason) = result {
            if wait.required {
                return Err(ServiceFailure::Dependency {
                    dependency: wait.service.clone(),
                    reason,
                });
            }
            warnings.push(format!(
                "{name}: optional dependency {} {reason}; starting anyway",
                wait.service
            ));
        }
    }
    Ok(())
}

/// Waits until every container of the dependency meets the condition.
pub async fn wait_condition<B: Backend>(
    backend: &Arc<B>,
    wait: &Wait,
    timing: Timing,
) -> Result<(), String> {
    if wait.condition == Condition::Started {
        return Ok(());
    }
    let started = Instant::now();
    loop {
        let b = Arc::clone(backend);
        let service = wait.service.clone();
        let states = tokio::task::spawn_blocking(move || {
            b.containers(&service)
                .iter()
                .map(|c| b.health(c))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .unwrap_or_else(|e| Err(format!("task failed: {e}")))?;
        let met = !states.is_empty()
            && states.iter().all(|h| match wait.condition {
                Condition::Healthy => *h == Health::Healthy,
                Condition::CompletedSuccessfully => *h == Health::Exited(0),
                Condition::Started => true,
            });
        if met {
            return Ok(());
        }
        for h in &states {
            match (wait.condition, h) {
                (Condition::Healthy, Health::Unhealthy) => return Err("is unhealthy".into()),
                (Condition::Healthy, Health::Exited(code)) => {
                    return Err(format!("exited with code {code} before it was healthy"))
                }
                (Condition::CompletedSuccessfully, Health::Exited(code)) if *code != 0 => {
                    return Err(format!("exited with code {code}"))
                }
                _ => {}
            }
        }
        if started.elapsed() > timing.timeout {
            let what = match wait.condition {
                Condition::Healthy => "to be healthy",
                _ => "to complete",
            };
            return Err(format!(
                "did not come up in time (waited {:?} {what})",
                timing.timeout
            ));
        }
        tokio::time::sleep(timing.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::ServicePlan;
    use std::sync::Mutex;

    /// A backend that records when each action ran and plays scripted health.
    #[derive(Default)]
    struct Fake {
        log: Mutex<Vec<(String, Instant, Instant)>>,
        /// service -> (healthy after this long from its start, exit code to report)
        behaviour: HashMap<String, (Duration, Option<Health>)>,
        started: Mutex<HashMap<String, Instant>>,
        fail: Vec<String>,
    }

    impl Backend for Fake {
        fn run(&self, action: &Action) -> Result<(), String> {
            let begin = Instant::now();
            let service = match action {
                Action::Create { service, .. } => service.clone(),
                other => other.to_string(),
            };
            if self.fail.contains(&service) {
                return Err("image not found".into());
            }
            std::thread::sleep(Duration::from_millis(40));
            self.started
                .lock()
                .unwrap()
                .insert(service.clone(), Instant::now());
            self.log
                .lock()
                .unwrap()
                .push((service, begin, Instant::now()));
            Ok(())
        }
        fn containers(&self, service: &str) -> Vec<String> {
            vec![service.to_string()]
        }
        fn health(&self, container: &str) -> Result<Health, String> {
            let Some(since) = self.started.lock().unwrap().get(container).copied() else {
                return Ok(Health::Starting);
            };
            match self.behaviour.get(container) {
                Some((after, end)) if since.elapsed() >= *after => {
                    Ok(end.unwrap_or(Health::Healthy))
                }
                Some(_) => Ok(Health::Starting),
                None => Ok(Health::Healthy),
            }
        }
    }

    fn plan(services: &[&str]) -> Plan {
        let mut p = Plan::default();
        for s in services {
            p.services.insert(
                s.to_string(),
                ServicePlan {
                    actions: vec![Action::Create {
                        service: s.to_string(),
                        number: 1,
                    }],
                },
            );
        }
        p
    }

    fn waits(edges: &[(&str, &str, Condition, bool)]) -> HashMap<String, Vec<Wait>> {
        let mut m: HashMap<String, Vec<Wait>> = HashMap::new();
        for (s, d, c, r) in edges {
            m.entry(s.to_string()).or_default().push(Wait {
                service: d.to_string(),
                condition: *c,
                required: *r,
                before_create: false,
            });
        }
        m
    }

    fn timing() -> Timing {
        Timing {
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(5),
        }
    }

    fn span(fake: &Fake, service: &str) -> (Instant, Instant) {
        let log = fake.log.lock().unwrap();
        let (_, a, b) = log.iter().find(|(s, _, _)| s == service).unwrap();
        (*a, *b)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_dependant_waits_until_its_dependency_is_healthy() {
        let mut fake = Fake::default();
        fake.behaviour
            .insert("db".into(), (Duration::from_millis(200), None));
        let fake = Arc::new(fake);
        let report = execute(
            Arc::clone(&fake),
            &plan(&["db", "web"]),
            &waits(&[("web", "db", Condition::Healthy, true)]),
            timing(),
        )
        .await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let (_, db_done) = span(&fake, "db");
        let (web_begin, _) = span(&fake, "web");
        assert!(
            web_begin >= db_done + Duration::from_millis(200),
            "web started before db was healthy"
        );
    }

    /// A backend that creates ahead (as the engine's does) and records each step.
    #[derive(Default)]
    struct Ahead {
        steps: Mutex<Vec<String>>,
    }

    impl Backend for Ahead {
        fn prepare(&self, action: &Action) -> Result<Option<Action>, String> {
            let Action::Create { service, .. } = action else {
                return Ok(Some(action.clone()));
            };
            // The dependency takes a while to create: its dependant is made meanwhile.
            if service == "db" {
                std::thread::sleep(Duration::from_millis(100));
            }
            self.steps.lock().unwrap().push(format!("create {service}"));
            Ok(Some(Action::Start {
                container: service.clone(),
            }))
        }
        fn run(&self, action: &Action) -> Result<(), String> {
            self.steps.lock().unwrap().push(action.to_string());
            Ok(())
        }
        fn containers(&self, service: &str) -> Vec<String> {
            vec![service.to_string()]
        }
        fn health(&self, _: &str) -> Result<Health, String> {
            Ok(Health::Running)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn dependants_are_created_early_and_started_after_their_dependencies() {
        let backend = Arc::new(Ahead::default());
        let mut w = waits(&[("web", "db", Condition::Started, true)]);
        // `network_mode: service:db`: not even created before db runs.
        w.entry("sidecar".into()).or_default().push(Wait {
            service: "db".into(),
            condition: Condition::Started,
            required: true,
            before_create: true,
        });
        let report = execute(
            Arc::clone(&backend),
            &plan(&["db", "web", "sidecar"]),
            &w,
            timing(),
        )
        .await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let steps = backend.steps.lock().unwrap().clone();
        let at = |s: &str| steps.iter().position(|x| x == s).expect(s);
        assert!(at("create web") < at("create db"), "{steps:?}");
        assert!(at("start db") < at("start web"), "{steps:?}");
        assert!(at("start db") < at("create sidecar"), "{steps:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn independent_services_start_concurrently() {
        let fake = Arc::new(Fake::default());
        let report = execute(
            Arc::clone(&fake),
            &plan(&["a", "b", "c"]),
            &HashMap::new(),
            timing(),
        )
        .await;
        assert!(report.failed.is_empty());
        let (a0, a1) = span(&fake, "a");
        let (b0, b1) = span(&fake, "b");
        assert!(a0 < b1 && b0 < a1, "a and b did not overlap");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failed_dependency_fails_its_dependants_with_the_reason() {
        let fake = Arc::new(Fake {
            fail: vec!["db".into()],
            ..Fake::default()
        });
        let report = execute(
            Arc::clone(&fake),
            &plan(&["db", "web", "cache"]),
            &waits(&[("web", "db", Condition::Started, true)]),
            timing(),
        )
        .await;
        assert_eq!(
            report.failed["db"].to_string(),
            "create db #1 failed: image not found"
        );
        assert_eq!(
            report.failed["web"].to_string(),
            "dependency db failed to start: create db #1 failed: image not found"
        );
        assert!(!report.failed.contains_key("cache"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn optional_dependencies_and_completion() {
        let mut fake = Fake {
            fail: vec!["metrics".into()],
            ..Fake::default()
        };
        fake.behaviour.insert(
            "migrate".into(),
            (Duration::from_millis(50), Some(Health::Exited(0))),
        );
        fake.behaviour.insert(
            "seed".into(),
            (Duration::from_millis(10), Some(Health::Exited(3))),
        );
        let fake = Arc::new(fake);
        let report = execute(
            Arc::clone(&fake),
            &plan(&["metrics", "migrate", "seed", "web", "worker"]),
            &waits(&[
                ("web", "metrics", Condition::Started, false),
                ("web", "migrate", Condition::CompletedSuccessfully, true),
                ("worker", "seed", Condition::CompletedSuccessfully, true),
            ]),
            timing(),
        )
        .await;
        assert!(!report.failed.contains_key("web"), "{:?}", report.failed);
        assert!(report
            .warnings
            .iter()
            .any(|w| w.contains("optional dependency metrics")));
        assert_eq!(
            report.failed["worker"].to_string(),
            "dependency seed exited with code 3"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_unhealthy_dependency_and_a_timeout() {
        let mut fake = Fake::default();
        fake.behaviour.insert(
            "db".into(),
            (Duration::from_millis(10), Some(Health::Unhealthy)),
        );
        fake.behaviour
            .insert("slow".into(), (Duration::from_secs(60), None));
        let fake = Arc::new(fake);
        let t = Timing {
            timeout: Duration::from_millis(300),
            poll: Duration::from_millis(5),
        };
        let report = execute(
            Arc::clone(&fake),
            &plan(&["db", "slow", "web", "api"]),
            &waits(&[
                ("web", "db", Condition::Healthy, true),
                ("api", "slow", Condition::Healthy, true),
            ]),
            t,
        )
        .await;
        assert_eq!(
            report.failed["web"].to_string(),
            "dependency db is unhealthy"
        );
        assert!(report.failed["api"]
            .to_string()
            .starts_with("dependency slow did not come up in time"));
    }
}
